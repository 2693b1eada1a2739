/*
 * routes_query.c - the HTTP routes of analytics queries (docs/api.md,
 * "Analytics"; semantics in docs/analytics.md):
 *
 *   POST   /api/v1/query/{kind}[?format=csv]   run a query (body: the request)
 *   GET    /api/v1/queries                     the running queries
 *   DELETE /api/v1/query/{id}                  cancel one
 *
 * A query runs on its connection's own thread (the server runs one thread
 * per connection, http.c), so a long query holds up no ingest request; at
 * most WM_QUERIES_RUNNING_MAX run at once, the next one gets 503.
 *
 * Roles: admin, operator and analyst may query, list and cancel; an export
 * (every event with its properties, personal data included) needs admin.
 */
#include <stdio.h>
#include <string.h>

#include "http_internal.h"
#include "waymark/error.h"
#include "waymark/json.h"
#include "waymark/limits.h"
#include "waymark/server.h"

static bool can_query(const char *role)
{
    return !strcmp(role, "admin") || !strcmp(role, "operator") || !strcmp(role, "analyst");
}

static int send_with_id(wm_req_t *r, unsigned status, const char *type, const wm_buf_t *b, const char *id)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(b->len, b->data ? b->data : "", MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", type);
    if (id && *id) {
        MHD_add_response_header(resp, "X-Query-Id", id);
        MHD_add_response_header(resp, "Access-Control-Expose-Headers", "X-Query-Id");
    }
    if (status == 503)
        MHD_add_response_header(resp, "Retry-After", "1");
    wm__http_cors(r, resp);
    int rc = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* {"error":{"code","field"?,"path"?,"message"}}: the API's error shape;
 * path (= field) names the request member at fault. */
static int query_error(wm_req_t *r, int rc, const wm_engine_query_error_t *qe, const char *id)
{
    unsigned status;
    const char *code;
    switch (rc) {
    case WM_EINVAL: status = 400; code = "invalid_query"; break;
    case WM_EBUSY: status = 408; code = "query_timeout"; break;
    case WM_ELIMIT: status = 413; code = "query_too_large"; break;
    case WM_ECLOSED: status = 409; code = "query_cancelled"; break;
    case WM_EEXISTS: status = 409; code = "query_id_in_use"; break;
    case WM_ECONFLICT: status = 503; code = "too_many_queries"; break;
    case WM_ENOTFOUND: status = 404; code = "not_found"; break;
    default: status = 500; code = "internal"; break;
    }
    wm_buf_t b;
    wm_buf_init(&b, 0);
    wm_buf_puts(&b, "{\"error\":{\"code\":");
    wm_buf_json_str(&b, code, strlen(code));
    if (qe->path[0]) {
        wm_buf_puts(&b, ",\"field\":");
        wm_buf_json_str(&b, qe->path, strlen(qe->path));
        wm_buf_puts(&b, ",\"path\":");
        wm_buf_json_str(&b, qe->path, strlen(qe->path));
    }
    const char *msg = qe->msg[0] ? qe->msg : wm_strerror(rc);
    wm_buf_puts(&b, ",\"message\":");
    wm_buf_json_str(&b, msg, strlen(msg));
    wm_buf_puts(&b, "}}");
    int out = send_with_id(r, status, "application/json; charset=utf-8", &b, id);
    wm_buf_release(&b);
    return out;
}

int wm__query_reply(wm_req_t *r, int rc, const wm_engine_query_error_t *qe, const char *id, wm_buf_t *b,
                    unsigned ok_status)
{
    int out = rc ? query_error(r, rc, qe, id)
                 : send_with_id(r, ok_status, "application/json; charset=utf-8", b, id);
    wm_buf_release(b);
    return out;
}

static bool wants_csv(wm_arena_t *a, wm_req_t *r)
{
    const char *f = wm__qparam(a, r, "format");
    if (f)
        return !strcmp(f, "csv");
    const char *accept = wm__http_header(r, "Accept");
    return accept && strstr(accept, "text/csv") != NULL;
}

static int run_query(wm_req_t *r, wm_arena_t *a, const char *kind, const char *project, const char *role)
{
    if (!strcmp(kind, "export") && strcmp(role, "admin"))
        return wm__http_error(r, 403, "forbidden", "", "an export holds personal data: it needs the admin role");
    const char *format = wm__qparam(a, r, "format");
    if (format && strcmp(format, "csv") && strcmp(format, "json"))
        return wm__http_error(r, 400, "invalid_argument", "format", "format is json or csv");
    bool csv = wants_csv(a, r) && strcmp(kind, "export");
    wm_engine_query_opts_t o = {.project = project, .id = wm__http_header(r, "X-Query-Id"),
                                .answer_max = WM_QUERY_ANSWER_BYTES_MAX};
    char id[WM_QUERY_ID_MAX + 1] = "";
    wm_engine_query_error_t qe;
    wm_buf_t b;
    wm_buf_init(&b, WM_QUERY_ANSWER_BYTES_MAX);
    int rc = wm_engine_query(r->engine, kind, r->body, r->body_len, &o, id, &b, &qe);
    int out;
    if (rc) {
        out = query_error(r, rc, &qe, id);
    } else if (!strcmp(kind, "export")) {
        out = send_with_id(r, 200, "application/x-ndjson; charset=utf-8", &b, id);
    } else if (csv) {
        wm_json_t *ans;
        wm_json_error_t je;
        wm_buf_t c;
        wm_buf_init(&c, WM_QUERY_ANSWER_BYTES_MAX);
        rc = wm_json_parse(a, b.data ? b.data : "", b.len, &ans, &je);
        if (!rc)
            rc = wm_server_answer_table(a, kind, ans, WM_TABLE_CSV, &c);
        if (rc) {
            snprintf(qe.path, sizeof qe.path, "%s", "");
            snprintf(qe.msg, sizeof qe.msg, "the answer cannot be written as CSV: %s", wm_strerror(rc));
            out = query_error(r, rc == WM_ELIMIT ? WM_ELIMIT : WM_EIO, &qe, id);
        } else {
            out = send_with_id(r, 200, "text/csv; charset=utf-8", &c, id);
        }
        wm_buf_release(&c);
    } else {
        out = send_with_id(r, 200, "application/json; charset=utf-8", &b, id);
    }
    wm_buf_release(&b);
    return out;
}

int wm__route_query(wm_req_t *r, wm_arena_t *a, const char **seg, int n, const char *project, const char *role)
{
    if (!can_query(role))
        return wm__http_error(r, 403, "forbidden", "", "queries need the analyst, operator or admin role");
    bool del = !strcmp(r->method, "DELETE");
    if (!strcmp(seg[2], "queries") && n == 3 && wm__is_get(r)) {
        wm_buf_t b;
        wm_buf_init(&b, 0);
        return wm__answer(r, wm_engine_queries_json(r->engine, &b), &b, 200);
    }
    if (!strcmp(seg[2], "query") && n == 4 && wm__is_post(r))
        return run_query(r, a, seg[3], project, role);
    if (!strcmp(seg[2], "query") && n == 4 && del) {
        if (wm_engine_query_cancel(r->engine, seg[3]))
            return wm__http_error(r, 404, "not_found", "id", "no running query has this id");
        wm_buf_t b;
        wm_buf_init(&b, 0);
        wm_buf_puts(&b, "{\"id\":");
        wm_buf_json_str(&b, seg[3], strlen(seg[3]));
        wm_buf_puts(&b, ",\"cancelled\":true}");
        return wm__answer(r, 0, &b, 200);
    }
    if (!strcmp(seg[2], "query") && n == 4)
        return wm__http_error(r, 405, "method_not_allowed", "", "POST runs a query, DELETE cancels one");
    return wm__http_error(r, 404, "not_found", "", "no such route");
}
