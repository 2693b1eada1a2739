/*
 * routes.c - what each HTTP route does. Ingest routes decode with the
 * ingest module and submit to the engine; management routes need a Bearer
 * API key. Status codes follow what the SDKs expect (sensors-protocol.md
 * §1.5): 200 stored, 400 permanently bad (clients drop it), 503 retry.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_internal.h"
#include "waymark/arena.h"
#include "waymark/error.h"
#include "waymark/ingest.h"
#include "waymark/limits.h"
#include "waymark/rules.h"

/* 1x1 transparent GIF for the web SDK's image beacon. */
static const unsigned char GIF_1X1[] = {
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00,
    0x00, 0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x01, 0x44, 0x00, 0x3b};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

bool wm__is_post(const wm_req_t *r) { return strcmp(r->method, "POST") == 0; }
bool wm__is_get(const wm_req_t *r) { return strcmp(r->method, "GET") == 0; }
#define is_post wm__is_post
#define is_get wm__is_get
#define qparam wm__qparam
#define answer wm__answer

/* Query parameter, percent-decoded, in the arena; NULL if absent. */
const char *wm__qparam(wm_arena_t *a, const wm_req_t *r, const char *name)
{
    wm_params_t ps = {0};
    if (wm_form_parse(a, r->query, r->query_len, &ps))
        return NULL;
    const wm_param_t *p = wm_params_get(&ps, name);
    return p ? p->value : NULL;
}

static int status_for_submit_error(int rc)
{
    return rc == WM_EBUSY ? 503 : 503;
}

/* ---- Sensors ---- */

static void first_error_json(wm_buf_t *b, const wm_batch_t *batch)
{
    for (uint32_t i = 0; i < batch->n; i++) {
        const wm_rec_error_t *e = &batch->errors[i];
        if (!e->code)
            continue;
        wm_buf_printf(b, "{\"error\":{\"index\":%u,\"code\":", i);
        wm_buf_json_str(b, e->code, strlen(e->code));
        wm_buf_puts(b, ",\"field\":");
        wm_buf_json_str(b, e->field, strlen(e->field));
        wm_buf_puts(b, ",\"message\":");
        wm_buf_json_str(b, e->msg, strlen(e->msg));
        wm_buf_printf(b, "},\"rejected\":%u,\"total\":%u}", batch->n - batch->n_ok, batch->n);
        return;
    }
}

static int handle_sensors(wm_req_t *r, wm_arena_t *a, bool debug, bool gif)
{
    wm_engine_count_request(r->engine, debug ? "sensors_debug" : "sensors", r->body_len + r->query_len);
    wm_sensors_req_t sr = {.query = r->query, .query_len = r->query_len, .body = r->body,
                           .body_len = is_post(r) ? r->body_len : 0};
    sr.ctx.ip = r->ip;
    sr.ctx.receive_time_ms = sr.ctx.now_ms = now_ms();
    wm_batch_t batch;
    wm_sensors_info_t info;
    char msg[256] = "";
    int rc = wm_sensors_decode(a, &sr, &batch, &info, msg, sizeof msg);
    if (rc) {
        wm_engine_count_rejected(r->engine, rc == WM_EUNSUPPORTED ? "unsupported_encoding" : "bad_payload", 1);
        return wm__http_error(r, 400, rc == WM_EUNSUPPORTED ? "unsupported_encoding" : "bad_payload",
                              "data", msg[0] ? msg : wm_strerror(rc));
    }
    const char *dry = wm__http_header(r, "Dry-Run");
    wm_submit_opts_t o = {.dry_run = dry && strcasecmp(dry, "true") == 0,
                          .deadletter = !debug, .source = "sensors"};
    if (debug && batch.n != 1)
        return wm__http_error(r, 400, "debug_batch", "data_list",
                              "debug mode accepts exactly one record per request");
    wm_submit_result_t res;
    rc = wm_engine_submit(r->engine, &batch, &o, &res);
    if (rc)
        return wm__http_error(r, status_for_submit_error(rc), "retry", "", wm_strerror(rc));
    wm_buf_t b;
    wm_buf_init(&b, 0);
    int out;
    batch.n_ok = res.accepted + res.duplicates + (o.dry_run ? batch.n - res.rejected : 0);
    if (res.rejected && (res.rejected == batch.n || debug)) {
        first_error_json(&b, &batch);
        out = wm__http_json(r, 400, &b);
    } else if (debug) {
        wm_buf_puts(&b, "{}");
        out = wm__http_json(r, 200, &b);
    } else if (gif && is_get(r)) {
        out = wm__http_send(r, 200, "image/gif", GIF_1X1, sizeof GIF_1X1);
    } else {
        wm_buf_printf(&b, "{\"accepted\":%u,\"duplicates\":%u,\"rejected\":%u}", res.accepted,
                      res.duplicates, res.rejected);
        out = wm__http_json(r, 200, &b);
    }
    wm_buf_release(&b);
    return out;
}

/* ---- Segment ---- */

static int segment_project(wm_req_t *r, wm_arena_t *a, char *project, size_t len)
{
    const char *auth = wm__http_header(r, "Authorization");
    const char *key = NULL;
    if (auth && strncasecmp(auth, "Basic ", 6) == 0) {
        unsigned char *raw;
        size_t n;
        if (wm_base64_decode(a, auth + 6, strlen(auth + 6), &raw, &n) == 0) {
            char *k = (char *)raw;
            char *colon = memchr(k, ':', n);
            key = wm_arena_strndup(a, k, colon ? (size_t)(colon - k) : n);
        }
    }
    return wm_engine_project_for_key(r->engine, key, project, len);
}

static int handle_segment(wm_req_t *r, wm_arena_t *a, const char *kind_name)
{
    wm_engine_count_request(r->engine, "segment", r->body_len);
    int kind = wm_segspec_kind_parse(kind_name);
    if (kind < 0)
        return wm__http_error(r, 404, "not_found", "", "unknown Segment endpoint");
    if (!is_post(r))
        return wm__http_error(r, 405, "method_not_allowed", "", "use POST");
    char project[128];
    if (segment_project(r, a, project, sizeof project))
        return wm__http_error(r, 401, "invalid_write_key", "Authorization",
                              "the write key does not belong to any project");
    wm_rec_ctx_t ctx = {.project = project, .ip = r->ip};
    ctx.receive_time_ms = ctx.now_ms = now_ms();
    wm_batch_t batch;
    char msg[256] = "";
    int rc = wm_segspec_decode(a, (wm_segspec_kind_t)kind, r->body, r->body_len, &ctx, &batch, msg,
                               sizeof msg);
    if (rc) {
        wm_engine_count_rejected(r->engine, "bad_payload", 1);
        return wm__http_error(r, 400, "bad_payload", "body", msg[0] ? msg : wm_strerror(rc));
    }
    /* the write key authenticated the project: records carry no token of their own */
    for (uint32_t i = 0; i < batch.n; i++) {
        batch.records[i].project = project;
        batch.records[i].token = NULL;
    }
    wm_submit_opts_t o = {.deadletter = true, .source = "segment"};
    wm_submit_result_t res;
    rc = wm_engine_submit(r->engine, &batch, &o, &res);
    if (rc)
        return wm__http_error(r, 503, "retry", "", wm_strerror(rc));
    wm_buf_t b;
    wm_buf_init(&b, 0);
    int out;
    if (res.rejected && res.rejected == batch.n) {
        first_error_json(&b, &batch);
        out = wm__http_json(r, 400, &b);
    } else {
        wm_buf_printf(&b, "{\"success\":true,\"accepted\":%u,\"duplicates\":%u,\"rejected\":%u}",
                      res.accepted, res.duplicates, res.rejected);
        out = wm__http_json(r, 200, &b);
    }
    wm_buf_release(&b);
    return out;
}

/* ---- native ---- */

static int handle_native(wm_req_t *r, wm_arena_t *a)
{
    wm_engine_count_request(r->engine, "native", r->body_len);
    if (!is_post(r))
        return wm__http_error(r, 405, "method_not_allowed", "", "use POST");
    wm_rec_ctx_t ctx = {.project = qparam(a, r, "project"), .token = qparam(a, r, "token"),
                        .ip = r->ip};
    ctx.receive_time_ms = ctx.now_ms = now_ms();
    wm_batch_t batch;
    char msg[256] = "";
    int rc = wm_native_decode(a, r->body, r->body_len, &ctx, &batch, msg, sizeof msg);
    if (rc)
        return wm__http_error(r, 400, "bad_payload", "body", msg[0] ? msg : wm_strerror(rc));
    const char *dry = wm__http_header(r, "Dry-Run");
    wm_submit_opts_t o = {.dry_run = dry && strcasecmp(dry, "true") == 0, .deadletter = true,
                          .source = "native"};
    wm_submit_result_t res;
    rc = wm_engine_submit(r->engine, &batch, &o, &res);
    if (rc)
        return wm__http_error(r, 503, "retry", "", wm_strerror(rc));
    wm_buf_t b;
    wm_buf_init(&b, 0);
    wm_buf_printf(&b, "{\"accepted\":%u,\"duplicates\":%u,\"rejected\":%u,\"results\":[",
                  res.accepted, res.duplicates, res.rejected);
    for (uint32_t i = 0; i < batch.n; i++) {
        const wm_rec_error_t *e = &batch.errors[i];
        if (i)
            wm_buf_putc(&b, ',');
        if (!e->code) {
            wm_buf_printf(&b, "{\"index\":%u,\"ok\":true}", i);
            continue;
        }
        wm_buf_printf(&b, "{\"index\":%u,\"ok\":false,\"code\":", i);
        wm_buf_json_str(&b, e->code, strlen(e->code));
        wm_buf_puts(&b, ",\"field\":");
        wm_buf_json_str(&b, e->field, strlen(e->field));
        wm_buf_puts(&b, ",\"message\":");
        wm_buf_json_str(&b, e->msg, strlen(e->msg));
        wm_buf_putc(&b, '}');
    }
    wm_buf_puts(&b, "]}");
    int out = wm__http_json(r, 200, &b);
    wm_buf_release(&b);
    return out;
}

/* ---- management API ---- */

static const char *auth_role(wm_req_t *r, char *role, size_t len)
{
    const char *auth = wm__http_header(r, "Authorization");
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
        return NULL;
    return wm_engine_key_role(r->engine, auth + 7, role, len);
}

/* Splits the raw path after prefix into up to max percent-decoded parts. */
static int path_parts(wm_arena_t *a, const char *path, const char **seg, int max)
{
    int n = 0;
    const char *p = path;
    while (*p && n < max) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        size_t len = strcspn(p, "/");
        wm_params_t ps = {0};
        /* reuse the form decoder: "x=<segment>" */
        char *tmp = wm_arena_alloc(a, len + 3);
        if (!tmp)
            return -1;
        memcpy(tmp, "x=", 2);
        memcpy(tmp + 2, p, len);
        tmp[len + 2] = '\0';
        if (wm_form_parse(a, tmp, len + 2, &ps) || ps.n != 1)
            return -1;
        seg[n++] = ps.items[0].value;
        p += len;
    }
    return *p ? -1 : n;
}

static int answer_engine(wm_req_t *r, int rc, wm_buf_t *b, const char *what)
{
    if (rc == 0)
        return wm__http_json(r, 200, b);
    if (rc == WM_ENOTFOUND)
        return wm__http_error(r, 404, "not_found", "", what);
    if (rc == WM_EINVAL)
        return wm__http_error(r, 400, "invalid_argument", "", what);
    return wm__http_error(r, 500, "internal", "", wm_strerror(rc));
}

static int handle_users(wm_req_t *r, wm_arena_t *a, const char **seg, int n)
{
    const char *project = qparam(a, r, "project");
    if (!project)
        project = "default";
    const char *id_type = qparam(a, r, "id_type");
    uint64_t uid;
    int rc = wm_engine_find_user(r->engine, project, seg[3], id_type, &uid);
    if (rc == WM_EINVAL)
        return wm__http_error(r, 400, "invalid_argument", "id", "bad user reference");
    if (rc)
        return wm__http_error(r, 404, "not_found", "id", "no such user in this project");
    wm_buf_t b;
    wm_buf_init(&b, 0);
    if (n == 4) {
        rc = wm_engine_user_json(r->engine, project, uid, &b);
    } else if (n == 5 && strcmp(seg[4], "events") == 0) {
        const char *lim = qparam(a, r, "limit");
        rc = wm_engine_user_events_json(r->engine, project, uid,
                                        lim ? (uint32_t)strtoul(lim, NULL, 10) : 50, &b);
    } else {
        wm_buf_release(&b);
        return wm__http_error(r, 404, "not_found", "", "no such route");
    }
    int out = answer_engine(r, rc, &b, "not found");
    wm_buf_release(&b);
    return out;
}

/* ---- journeys, channels, templates, messages, leads ---- */

int wm__answer(wm_req_t *r, int rc, wm_buf_t *b, unsigned ok_status)
{
    int out;
    if (rc == 0)
        out = wm__http_json(r, ok_status, b);
    else if (rc == WM_ENOTFOUND)
        out = wm__http_error(r, 404, "not_found", "", "not found");
    else if (rc == WM_EPARSE)
        out = wm__http_error(r, 400, "bad_json", "body", "the body is not valid JSON");
    else if (rc == WM_EINVAL && b->len)
        out = wm__http_json(r, 422, b);
    else if (rc == WM_EINVAL)
        out = wm__http_error(r, 400, "invalid_argument", "", "invalid request");
    else if (rc == WM_ESTATE)
        out = wm__http_error(r, 409, "invalid_state", "", "not possible in the journey's current state");
    else if (rc == WM_EFORBIDDEN)
        out = wm__http_error(r, 403, "forbidden", "", "not allowed");
    else if (rc == WM_EBUSY)
        out = wm__http_error(r, 503, "retry", "", "busy, retry");
    else
        out = wm__http_error(r, 500, "internal", "", wm_strerror(rc));
    wm_buf_release(b);
    return out;
}

static bool can_write(const char *role)
{
    return !strcmp(role, "admin") || !strcmp(role, "operator");
}

static int user_param(wm_req_t *r, wm_arena_t *a, const char *project, const char *id, uint64_t *uid)
{
    return wm_engine_find_user(r->engine, project, id, qparam(a, r, "id_type"), uid);
}

static const char *body_str(wm_arena_t *a, wm_req_t *r, const char *field)
{
    wm_json_t *body;
    wm_json_error_t je;
    if (!r->body_len || wm_json_parse(a, r->body, r->body_len, &body, &je))
        return NULL;
    return wm_json_str(wm_json_get(body, field));
}

static int handle_journeys(wm_req_t *r, wm_arena_t *a, const char **seg, int n, const char *project,
                           const char *role)
{
    wm_buf_t b;
    wm_buf_init(&b, 0);
    bool valid = false;
    if (n == 3 && is_get(r))
        return answer(r, wm_engine_journeys_json(r->engine, project, &b), &b, 200);
    if (!can_write(role) && !is_get(r)) {
        wm_buf_release(&b);
        return wm__http_error(r, 403, "forbidden", "", "changing journeys needs the operator or admin role");
    }
    if (n == 4 && !strcmp(seg[3], "validate") && is_post(r)) {
        int rc = wm_engine_journey_validate(r->engine, project, r->body, r->body_len, &valid, &b);
        return answer(r, rc, &b, 200);
    }
    if (n == 3 && is_post(r)) {
        int rc = wm_engine_journey_save(r->engine, project, NULL, r->body, r->body_len, &valid, &b);
        return answer(r, rc, &b, valid ? 201 : 200);
    }
    if (n == 4 && is_get(r))
        return answer(r, wm_engine_journey_json(r->engine, project, seg[3], &b), &b, 200);
    if (n == 4 && strcmp(r->method, "PUT") == 0) {
        int rc = wm_engine_journey_save(r->engine, project, seg[3], r->body, r->body_len, &valid, &b);
        return answer(r, rc, &b, 200);
    }
    if (n == 5 && !strcmp(seg[4], "report") && is_get(r) && qparam(a, r, "funnel") &&
        strcmp(qparam(a, r, "funnel"), "0") && strcmp(qparam(a, r, "funnel"), "false")) {
        wm_buf_release(&b);
        return wm__route_journey_funnel(r, a, seg[3], project, role);
    }
    if (n == 5 && !strcmp(seg[4], "report") && is_get(r))
        return answer(r, wm_engine_journey_report(r->engine, project, seg[3], &b), &b, 200);
    if (n == 5 && !strcmp(seg[4], "enter") && is_post(r)) {
        const char *user = qparam(a, r, "user");
        if (!user)
            user = body_str(a, r, "user");
        uint64_t uid;
        int rc = user ? user_param(r, a, project, user, &uid) : WM_EINVAL;
        if (!rc)
            rc = wm_engine_journey_enter(r->engine, project, seg[3], uid, body_str(a, r, "item"));
        if (!rc)
            wm_buf_puts(&b, "{\"ok\":true}");
        return answer(r, rc, &b, 200);
    }
    if (n == 5 && is_post(r)) {
        const char *reason = qparam(a, r, "reason");
        if (!reason)
            reason = body_str(a, r, "reason");
        int rc = wm_engine_journey_action(r->engine, project, seg[3], seg[4], role, reason, &b);
        return answer(r, rc, &b, 200);
    }
    wm_buf_release(&b);
    return wm__http_error(r, 404, "not_found", "", "no such route");
}

static int handle_docs(wm_req_t *r, const char **seg, int n, const char *project, const char *role,
                       const char *table)
{
    wm_buf_t b;
    wm_buf_init(&b, 0);
    if (n == 3 && is_get(r))
        return answer(r, wm_engine_docs_json(r->engine, table, project, &b), &b, 200);
    if (n == 4 && (strcmp(r->method, "PUT") == 0 || is_post(r))) {
        if (!can_write(role)) {
            wm_buf_release(&b);
            return wm__http_error(r, 403, "forbidden", "", "needs the operator or admin role");
        }
        int rc = wm_engine_doc_put(r->engine, table, project, seg[3], r->body, r->body_len);
        if (!rc)
            wm_buf_puts(&b, "{\"ok\":true}");
        return answer(r, rc, &b, 200);
    }
    wm_buf_release(&b);
    return wm__http_error(r, 404, "not_found", "", "no such route");
}

static int command_json(wm_req_t *r, uint64_t user, wm_buf_t *cmd, wm_buf_t *b)
{
    if (cmd->err)
        return cmd->err;
    int rc = wm_engine_command(r->engine, user, cmd->data, cmd->len);
    if (!rc)
        wm_buf_puts(b, "{\"ok\":true}");
    return rc;
}

static int handle_leads(wm_req_t *r, wm_arena_t *a, const char **seg, int n, const char *project,
                        const char *role)
{
    wm_buf_t b, cmd;
    wm_buf_init(&b, 0);
    wm_buf_init(&cmd, 0);
    int rc;
    if (n == 3 && is_get(r)) {
        const char *lim = qparam(a, r, "limit");
        rc = wm_engine_leads_json(r->engine, qparam(a, r, "project"), qparam(a, r, "queue"),
                                  qparam(a, r, "assignee"), qparam(a, r, "status"),
                                  lim ? (uint32_t)atoi(lim) : 200, role, &b);
    } else if (n == 4 && is_get(r)) {
        rc = wm_engine_lead_json(r->engine, seg[3], role, &b);
    } else if (n == 5 && is_post(r) && (!strcmp(seg[4], "claim") || !strcmp(seg[4], "complete"))) {
        uint64_t user = wm_engine_user_of(seg[3]);
        bool claim = !strcmp(seg[4], "claim");
        const char *who = body_str(a, r, "assignee");
        const char *outcome = body_str(a, r, "outcome");
        static const char *outcomes[] = {"contacted", "interested", "purchased", "declined"};
        bool ok_outcome = false;
        for (size_t i = 0; outcome && i < 4; i++)
            ok_outcome |= !strcmp(outcome, outcomes[i]);
        if (!user || seg[3][0] != 'l') {
            rc = WM_ENOTFOUND;
        } else if (claim ? !who : !ok_outcome) {
            wm_buf_release(&b);
            wm_buf_release(&cmd);
            return wm__http_error(r, 400, "invalid_argument", claim ? "assignee" : "outcome",
                                  claim ? "claim needs {\"assignee\": \"...\"}"
                                        : "outcome must be contacted, interested, purchased or declined");
        } else {
            wm_buf_printf(&cmd, "{\"cmd\":\"%s\",\"lead_id\":", claim ? "lead_claim" : "lead_complete");
            wm_buf_json_str(&cmd, seg[3], strlen(seg[3]));
            if (claim) {
                wm_buf_puts(&cmd, ",\"assignee\":");
                wm_buf_json_str(&cmd, who, strlen(who));
            } else {
                const char *note = body_str(a, r, "note");
                wm_buf_puts(&cmd, ",\"outcome\":");
                wm_buf_json_str(&cmd, outcome, strlen(outcome));
                if (note) {
                    wm_buf_puts(&cmd, ",\"note\":");
                    wm_buf_json_str(&cmd, note, strlen(note));
                }
            }
            wm_buf_putc(&cmd, '}');
            rc = command_json(r, user, &cmd, &b);
        }
    } else {
        wm_buf_release(&cmd);
        wm_buf_release(&b);
        return wm__http_error(r, 404, "not_found", "", "no such route");
    }
    (void)project;
    wm_buf_release(&cmd);
    return answer(r, rc, &b, 200);
}

static int handle_messaging(wm_req_t *r, wm_arena_t *a, const char **seg, int n, const char *project,
                            const char *role)
{
    wm_buf_t b, cmd;
    wm_buf_init(&b, 0);
    wm_buf_init(&cmd, 0);
    int rc = WM_ENOTFOUND;
    uint64_t uid = 0;
    if (!strcmp(seg[2], "messages") && n == 3 && is_get(r)) {
        const char *user = qparam(a, r, "user");
        const char *status = qparam(a, r, "status");
        const char *lim = qparam(a, r, "limit");
        if (!user && status) {
            rc = wm_engine_messages_by_status_json(r->engine, project, status,
                                                   lim ? (uint32_t)atoi(lim) : 100, &b);
        } else {
            rc = user ? user_param(r, a, project, user, &uid) : WM_EINVAL;
            if (!rc)
                rc = wm_engine_messages_json(r->engine, uid, lim ? (uint32_t)atoi(lim) : 100, &b);
        }
    } else if (!strcmp(seg[2], "messages") && n == 5 && !strcmp(seg[4], "retry") && is_post(r)) {
        uid = wm_engine_user_of(seg[3]);
        if (!uid || seg[3][0] != 'm') {
            rc = WM_ENOTFOUND;
        } else {
            wm_buf_puts(&cmd, "{\"cmd\":\"message_retry\",\"message_id\":");
            wm_buf_json_str(&cmd, seg[3], strlen(seg[3]));
            wm_buf_putc(&cmd, '}');
            rc = command_json(r, uid, &cmd, &b);
        }
    } else if (!strcmp(seg[2], "messages") && n == 4 && is_get(r)) {
        rc = wm_engine_message_json(r->engine, seg[3], &b);
    } else if (!strcmp(seg[2], "inbox") && n == 4 && is_get(r)) {
        rc = user_param(r, a, project, seg[3], &uid);
        if (!rc)
            rc = wm_engine_inbox_json(r->engine, uid, &b);
    } else if (!strcmp(seg[2], "inbox") && n == 5 && !strcmp(seg[4], "read") && is_post(r)) {
        const char *mid = qparam(a, r, "message_id");
        if (!mid)
            mid = body_str(a, r, "message_id");
        rc = mid ? user_param(r, a, project, seg[3], &uid) : WM_EINVAL;
        if (!rc) {
            wm_buf_puts(&cmd, "{\"cmd\":\"inbox_read\",\"message_id\":");
            wm_buf_json_str(&cmd, mid, strlen(mid));
            wm_buf_putc(&cmd, '}');
            rc = command_json(r, uid, &cmd, &b);
        }
    } else if (!strcmp(seg[2], "receipts") && n == 3 && is_post(r)) {
        const char *mid = body_str(a, r, "message_id");
        const char *status = body_str(a, r, "status");
        uid = mid ? wm_engine_user_of(mid) : 0;
        if (!mid || !status || !uid) {
            rc = WM_EINVAL;
        } else {
            wm_buf_puts(&cmd, "{\"cmd\":\"receipt\",\"message_id\":");
            wm_buf_json_str(&cmd, mid, strlen(mid));
            wm_buf_puts(&cmd, ",\"status\":");
            wm_buf_json_str(&cmd, status, strlen(status));
            const char *pid = body_str(a, r, "provider_id");
            if (pid) {
                wm_buf_puts(&cmd, ",\"provider_id\":");
                wm_buf_json_str(&cmd, pid, strlen(pid));
            }
            wm_buf_putc(&cmd, '}');
            rc = command_json(r, uid, &cmd, &b);
        }
    } else if (!strcmp(seg[2], "clock") && n == 3) {
        if (is_post(r)) {
            const char *adv = body_str(a, r, "advance");
            int64_t ms = 0;
            rc = adv && !wm_duration_parse(adv, &ms) ? wm_engine_clock_advance(r->engine, ms) : WM_EINVAL;
        } else {
            rc = 0;
        }
        if (!rc)
            wm_buf_printf(&b, "{\"now_ms\":%lld}", (long long)wm_engine_now(r->engine));
    }
    (void)role;
    wm_buf_release(&cmd);
    return answer(r, rc, &b, 200);
}

static int handle_consent(wm_req_t *r, wm_arena_t *a, const char *project, const char *id)
{
    wm_buf_t b, cmd;
    wm_buf_init(&b, 0);
    wm_buf_init(&cmd, 0);
    uint64_t uid;
    const char *channel = body_str(a, r, "channel");
    wm_json_t *body = NULL;
    wm_json_error_t je;
    const wm_json_t *consent = NULL;
    if (r->body_len && wm_json_parse(a, r->body, r->body_len, &body, &je) == 0)
        consent = wm_json_get(body, "consent");
    int rc = channel && consent && (consent->type == WM_JSON_TRUE || consent->type == WM_JSON_FALSE)
                 ? user_param(r, a, project, id, &uid)
                 : WM_EINVAL;
    if (!rc) {
        wm_buf_puts(&cmd, "{\"cmd\":\"consent\",\"project\":");
        wm_buf_json_str(&cmd, project, strlen(project));
        wm_buf_puts(&cmd, ",\"channel\":");
        wm_buf_json_str(&cmd, channel, strlen(channel));
        wm_buf_printf(&cmd, ",\"consent\":%s}", consent->type == WM_JSON_TRUE ? "true" : "false");
        rc = command_json(r, uid, &cmd, &b);
    }
    wm_buf_release(&cmd);
    return answer(r, rc, &b, 200);
}

static int handle_api(wm_req_t *r, wm_arena_t *a)
{
    const char *seg[8];
    int n = path_parts(a, r->path, seg, 8);
    if (n < 3)
        return wm__http_error(r, 404, "not_found", "", "no such route");
    char role[32];
    if (!auth_role(r, role, sizeof role))
        return wm__http_error(r, 401, "unauthorized", "Authorization",
                              "a valid API key is required: Authorization: Bearer <key>");
    wm_engine_count_request(r->engine, seg[2], 0);
    const char *project = qparam(a, r, "project");
    if (!project)
        project = "default";
    wm_buf_t b;
    wm_buf_init(&b, 0);
    int rc, out;
    bool admin = strcmp(role, "admin") == 0;
    if (!strcmp(seg[2], "query") || !strcmp(seg[2], "queries")) {
        wm_buf_release(&b);
        return wm__route_query(r, a, seg, n, project, role);
    }
    if (!strcmp(seg[2], "maps")) {
        wm_buf_release(&b);
        return wm__route_maps(r, a, seg, n, project, role);
    }
    if (!strcmp(seg[2], "journeys")) {
        wm_buf_release(&b);
        return handle_journeys(r, a, seg, n, project, role);
    }
    if (!strcmp(seg[2], "tags") || !strcmp(seg[2], "segments") ||
        (!strcmp(seg[2], "users") && n >= 5 &&
         (!strcmp(seg[4], "tags") || !strcmp(seg[4], "recommendations")))) {
        wm_buf_release(&b);
        return wm__route_audience(r, a, seg, n, project, role);
    }
    if (!strcmp(seg[2], "channels") || !strcmp(seg[2], "templates") || !strcmp(seg[2], "settings")) {
        wm_buf_release(&b);
        return handle_docs(r, seg, n, project, role,
                           !strcmp(seg[2], "settings") ? "project_settings" : seg[2]);
    }
    if (!strcmp(seg[2], "leads")) {
        wm_buf_release(&b);
        return handle_leads(r, a, seg, n, project, role);
    }
    if (!strcmp(seg[2], "messages") || !strcmp(seg[2], "inbox") || !strcmp(seg[2], "receipts") ||
        !strcmp(seg[2], "clock")) {
        wm_buf_release(&b);
        return handle_messaging(r, a, seg, n, project, role);
    }
    if (strcmp(seg[2], "users") == 0 && n == 5 && !strcmp(seg[4], "consent") && is_post(r)) {
        wm_buf_release(&b);
        return handle_consent(r, a, project, seg[3]);
    }
    if (strcmp(seg[2], "users") == 0 && n >= 4 && is_get(r)) {
        wm_buf_release(&b);
        return handle_users(r, a, seg, n);
    } else if (strcmp(seg[2], "items") == 0 && n == 5 && is_get(r)) {
        rc = wm_engine_item_json(r->engine, project, seg[3], seg[4], &b);
    } else if (strcmp(seg[2], "schema") == 0 && n == 3 && is_get(r)) {
        rc = wm_engine_schema_json(r->engine, project, &b);
    } else if (strcmp(seg[2], "deadletter") == 0 && n == 3 && is_get(r)) {
        const char *lim = qparam(a, r, "limit");
        rc = wm_engine_deadletter_json(r->engine, project, lim ? (uint32_t)atoi(lim) : 100, &b);
    } else if (strcmp(seg[2], "deadletter") == 0 && n == 4 && strcmp(seg[3], "replay") == 0 &&
               is_post(r)) {
        const char *id = qparam(a, r, "id");
        wm_submit_result_t res;
        rc = wm_engine_deadletter_replay(r->engine, project, id ? atoll(id) : 0, &res);
        wm_buf_printf(&b, "{\"accepted\":%u,\"duplicates\":%u,\"rejected\":%u}", res.accepted,
                      res.duplicates, res.rejected);
    } else if (strcmp(seg[2], "projects") == 0 && n == 3 && is_get(r)) {
        rc = wm_engine_projects_json(r->engine, &b);
    } else if (strcmp(seg[2], "projects") == 0 && n == 3 && is_post(r)) {
        if (!admin) {
            wm_buf_release(&b);
            return wm__http_error(r, 403, "forbidden", "", "creating projects needs the admin role");
        }
        const char *name = qparam(a, r, "name");
        const char *token = qparam(a, r, "token");
        wm_json_t *body = NULL;
        wm_json_error_t je;
        if (r->body_len && wm_json_parse(a, r->body, r->body_len, &body, &je) == 0) {
            name = wm_json_str(wm_json_get(body, "name")) ? wm_json_str(wm_json_get(body, "name")) : name;
            token = wm_json_str(wm_json_get(body, "token")) ? wm_json_str(wm_json_get(body, "token")) : token;
        }
        rc = name ? wm_engine_create_project(r->engine, name, token) : WM_EINVAL;
        if (!rc) {
            wm_buf_puts(&b, "{\"name\":");
            wm_buf_json_str(&b, name, strlen(name));
            wm_buf_printf(&b, ",\"has_token\":%s}", token && *token ? "true" : "false");
        }
    } else if (strcmp(seg[2], "keys") == 0 && n == 3 && is_post(r)) {
        if (!admin) {
            wm_buf_release(&b);
            return wm__http_error(r, 403, "forbidden", "", "creating keys needs the admin role");
        }
        const char *want = qparam(a, r, "role");
        wm_json_t *body = NULL;
        wm_json_error_t je;
        if (r->body_len && wm_json_parse(a, r->body, r->body_len, &body, &je) == 0 &&
            wm_json_str(wm_json_get(body, "role")))
            want = wm_json_str(wm_json_get(body, "role"));
        char key[80];
        rc = want ? wm_engine_create_key(r->engine, want, key, sizeof key) : WM_EINVAL;
        if (!rc) {
            wm_buf_printf(&b, "{\"key\":\"%s\",\"role\":", key);
            wm_buf_json_str(&b, want, strlen(want));
            wm_buf_putc(&b, '}');
        }
    } else {
        wm_buf_release(&b);
        return wm__http_error(r, 404, "not_found", "", "no such route");
    }
    out = answer_engine(r, rc, &b, "not found or invalid");
    wm_buf_release(&b);
    return out;
}

/* ---- health ---- */

static int handle_health(wm_req_t *r, const char *what)
{
    wm_buf_t b;
    wm_buf_init(&b, 0);
    int out;
    if (strcmp(what, "metrics") == 0) {
        wm_engine_metrics(r->engine, &b);
        out = wm__http_send(r, 200, "text/plain; version=0.0.4", b.data, b.len);
    } else if (strcmp(what, "readyz") == 0 && !wm_engine_ready(r->engine)) {
        wm_buf_puts(&b, "{\"status\":\"starting\"}");
        out = wm__http_json(r, 503, &b);
    } else {
        wm_buf_puts(&b, "{\"status\":\"ok\"}");
        out = wm__http_json(r, 200, &b);
    }
    wm_buf_release(&b);
    return out;
}

static int preflight(wm_req_t *r)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    wm__http_cors(r, resp);
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS");
    const char *req_headers = wm__http_header(r, "Access-Control-Request-Headers");
    MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                            req_headers && *req_headers
                                ? req_headers
                                : "Content-Type, Dry-Run, Authorization");
    MHD_add_response_header(resp, "Access-Control-Max-Age", "86400");
    int rc = MHD_queue_response(r->conn, 204, resp);
    MHD_destroy_response(resp);
    return rc;
}

int wm__route(wm_req_t *r)
{
    if (strcmp(r->method, "OPTIONS") == 0)
        return preflight(r);
    const char *path = r->path;
    if (strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0 ||
        strcmp(path, "/metrics") == 0)
        return handle_health(r, path + 1);
    /* the console: every GET or HEAD the routes below do not take */
    bool head = strcmp(r->method, "HEAD") == 0;
    if ((is_get(r) || head) && strncmp(path, "/api/", 5) != 0 && strncmp(path, "/v1/", 4) != 0 &&
        !ends_with(path, "/sa") && !ends_with(path, "/sa.gif") && !ends_with(path, "/debug"))
        return wm__static_serve(r, r->web);
    wm_arena_t a;
    wm_arena_init(&a, 64 * 1024);
    a.limit_bytes = (size_t)WM_DECODED_BYTES_MAX * 4;
    int out;
    if (!is_get(r) && !is_post(r) && strcmp(r->method, "PUT") != 0 && strcmp(r->method, "DELETE") != 0)
        out = wm__http_error(r, 405, "method_not_allowed", "", "method not allowed");
    else if (ends_with(path, "/sa") || ends_with(path, "/sa.gif"))
        out = handle_sensors(r, &a, false, ends_with(path, ".gif"));
    else if (ends_with(path, "/debug"))
        out = handle_sensors(r, &a, true, false);
    else if (strncmp(path, "/v1/", 4) == 0)
        out = handle_segment(r, &a, path + 4);
    else if (strcmp(path, "/api/v1/events") == 0)
        out = handle_native(r, &a);
    else if (strncmp(path, "/api/v1/", 8) == 0)
        out = handle_api(r, &a);
    else
        out = wm__http_error(r, 404, "not_found", "", "no such route");
    wm_arena_release(&a);
    return out;
}
