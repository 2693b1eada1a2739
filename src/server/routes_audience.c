/*
 * routes_audience.c - the HTTP routes of tags, segments and
 * recommendations (docs/api.md, "Tags", "Segments", "Recommendations").
 *
 *   GET|POST /api/v1/{tags|segments}                 list | create a draft
 *   POST     /api/v1/{tags|segments}/validate        check a definition
 *   GET|PUT  /api/v1/{tags|segments}/{key}           one | replace the draft
 *   POST     /api/v1/{tags|segments}/{key}/publish   publish the draft
 *   POST     /api/v1/{tags|segments}/{key}/import    upload values / list members
 *   GET      /api/v1/tags/{key}/distribution[?at=]
 *   POST     /api/v1/segments/preview                count + sample of a condition
 *   POST     /api/v1/segments/compute                set algebra over segments
 *   GET      /api/v1/segments/{key}/count
 *   GET      /api/v1/segments/{key}/members[?after=&limit=&ids=&fields=]
 *   GET      /api/v1/segments/{key}/export?format=csv|ndjson&ids=&fields=
 *   GET      /api/v1/users/{id}/tags/{key}[?at=]     history / value at a time
 *   PUT|DELETE /api/v1/users/{id}/tags/{key}         manual value
 *   GET      /api/v1/users/{id}/recommendations?type=fund&n=5[&include_held=true]
 */
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"
#include "waymark/audience.h"
#include "waymark/error.h"
#include "waymark/json.h"
#include "waymark/limits.h"
#include "waymark/record.h"

static bool can_write(const char *role)
{
    return !strcmp(role, "admin") || !strcmp(role, "operator");
}

/* [A-Za-z_][A-Za-z0-9_]{0,63}, the key rule of tags and segments. */
static bool valid_key(const char *k)
{
    size_t n = strlen(k);
    if (!n || n > WM_AUD_KEY_MAX || (k[0] >= '0' && k[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= 'A' && k[i] <= 'Z') || (k[i] >= '0' && k[i] <= '9') ||
              k[i] == '_'))
            return false;
    return true;
}

static int not_found(wm_req_t *r, wm_buf_t *b)
{
    wm_buf_release(b);
    return wm__http_error(r, 404, "not_found", "", "no such route");
}

/* "at": epoch ms, or a date / datetime in Asia/Shanghai ("2026-10-01" = the
 * end of that day, so "the tier on 2026-10-01" is the value that day ended with). */
static int64_t at_param(wm_arena_t *a, wm_req_t *r, bool *bad)
{
    const char *at = wm__qparam(a, r, "at");
    *bad = false;
    if (!at || !*at)
        return 0;
    char *end;
    long long ms = strtoll(at, &end, 10);
    if (!*end && ms > 0)
        return ms;
    int64_t t;
    bool date_only = false;
    if (wm_datetime_parse(at, 480, &t, &date_only)) {
        *bad = true;
        return 0;
    }
    return date_only ? t + 86400000 - 1 : t;
}

static int handle_defs(wm_req_t *r, wm_arena_t *a, const char **seg, int n, const char *project,
                       const char *role, const char *kind)
{
    wm_buf_t b;
    wm_buf_init(&b, 0);
    bool valid = false;
    wm_engine_t *e = r->engine;
    bool is_tag = !strcmp(kind, "tag");
    if (n == 3 && wm__is_get(r))
        return wm__answer(r, wm_engine_aud_list_json(e, kind, project, &b), &b, 200);
    if (n == 4 && wm__is_get(r))
        return wm__answer(r, wm_engine_aud_json(e, kind, project, seg[3], &b), &b, 200);
    if (n == 5 && is_tag && !strcmp(seg[4], "distribution") && wm__is_get(r)) {
        bool bad;
        int64_t at = at_param(a, r, &bad);
        if (bad) {
            wm_buf_release(&b);
            return wm__http_error(r, 400, "invalid_argument", "at", "at must be epoch ms or YYYY-MM-DD[ HH:MM:SS]");
        }
        return wm__answer(r, wm_engine_tag_distribution_json(e, project, seg[3], at, &b), &b, 200);
    }
    if (!is_tag && n == 5 && !strcmp(seg[4], "count") && wm__is_get(r))
        return wm__answer(r, wm_engine_segment_count_json(e, project, seg[3], &b), &b, 200);
    if (!is_tag && n == 5 && (!strcmp(seg[4], "members") || !strcmp(seg[4], "export")) && wm__is_get(r)) {
        const char *after = wm__qparam(a, r, "after");
        const char *limit = wm__qparam(a, r, "limit");
        const char *format = wm__qparam(a, r, "format");
        bool export = !strcmp(seg[4], "export");
        if (export && !format)
            format = "csv";
        int rc = wm_engine_segment_members(e, project, seg[3], after ? strtoull(after, NULL, 10) : 0,
                                           limit ? (uint32_t)strtoul(limit, NULL, 10) : (export ? WM_AUD_PAGE_MAX : 100),
                                           format, wm__qparam(a, r, "ids"), wm__qparam(a, r, "fields"), role, &b);
        if (rc || !format || !strcmp(format, "json"))
            return wm__answer(r, rc, &b, 200);
        int out = wm__http_send(r, 200, !strcmp(format, "csv") ? "text/csv; charset=utf-8" : "application/x-ndjson",
                                b.data ? b.data : "", b.len);
        wm_buf_release(&b);
        return out;
    }
    if (!can_write(role)) {
        wm_buf_release(&b);
        return wm__http_error(r, 403, "forbidden", "", "changing tags and segments needs the operator or admin role");
    }
    if (n == 4 && !strcmp(seg[3], "validate") && wm__is_post(r))
        return wm__answer(r, wm_engine_aud_validate(e, kind, project, r->body, r->body_len, &valid, &b), &b, 200);
    if (!is_tag && n == 4 && !strcmp(seg[3], "preview") && wm__is_post(r))
        return wm__answer(r, wm_engine_segment_preview(e, project, r->body, r->body_len, &b), &b, 200);
    if (!is_tag && n == 4 && !strcmp(seg[3], "compute") && wm__is_post(r)) {
        wm_json_t *body;
        wm_json_error_t je;
        const char *keys[WM_SEGMENT_OPERANDS_MAX];
        uint32_t nk = 0;
        const char *op = NULL;
        if (r->body_len && wm_json_parse(a, r->body, r->body_len, &body, &je) == 0) {
            op = wm_json_str(wm_json_get(body, "op"));
            const wm_json_t *of = wm_json_get(body, "of");
            bool bad = false;
            for (const wm_json_t *c = of && of->type == WM_JSON_ARRAY ? of->u.child : NULL; c; c = c->next) {
                if (!wm_json_str(c) || nk == WM_SEGMENT_OPERANDS_MAX)
                    bad = true;
                else
                    keys[nk++] = wm_json_str(c);
            }
            if (bad) {
                wm_buf_release(&b);
                return wm__http_error(r, 400, "invalid_argument", "of",
                                      "of must list 1 to 16 segment keys");
            }
        }
        int rc = op && nk ? wm_engine_segment_compute_json(e, project, op, keys, nk, &b) : WM_EINVAL;
        return wm__answer(r, rc, &b, 200);
    }
    if (n == 3 && wm__is_post(r)) {
        int rc = wm_engine_aud_save(e, kind, project, NULL, r->body, r->body_len, &valid, &b);
        return wm__answer(r, rc ? rc : valid ? 0 : WM_EINVAL, &b, 201);
    }
    if (n == 4 && !strcmp(r->method, "PUT")) {
        int rc = wm_engine_aud_save(e, kind, project, seg[3], r->body, r->body_len, &valid, &b);
        return wm__answer(r, rc ? rc : valid ? 0 : WM_EINVAL, &b, 200);
    }
    if (n == 5 && !strcmp(seg[4], "publish") && wm__is_post(r))
        return wm__answer(r, wm_engine_aud_publish(e, kind, project, seg[3], &b), &b, 200);
    if (n == 5 && !strcmp(seg[4], "import") && wm__is_post(r)) {
        const char *format = wm__qparam(a, r, "format");
        const char *ctype = wm__http_header(r, "Content-Type");
        if (!format)
            format = ctype && strstr(ctype, "csv") ? "csv" : "ndjson";
        int rc = wm_engine_aud_import(e, project, kind, seg[3], wm__qparam(a, r, "id_type"), format, r->body,
                                      r->body_len, &b);
        if (rc == WM_ESTATE) {
            wm_buf_release(&b);
            return wm__http_error(r, 409, "invalid_state", "",
                                  is_tag ? "only imported and manual tags take uploads"
                                         : "only static lists (no snapshot_of) take uploads");
        }
        return wm__answer(r, rc, &b, 200);
    }
    return not_found(r, &b);
}

static int handle_user_audience(wm_req_t *r, wm_arena_t *a, const char **seg, int n, const char *project,
                                const char *role)
{
    wm_engine_t *e = r->engine;
    uint64_t uid;
    int rc = wm_engine_find_user(e, project, seg[3], wm__qparam(a, r, "id_type"), &uid);
    if (rc == WM_EINVAL)
        return wm__http_error(r, 400, "invalid_argument", "id", "bad user reference");
    if (rc)
        return wm__http_error(r, 404, "not_found", "id", "no such user in this project");
    wm_buf_t b;
    wm_buf_init(&b, 0);
    if (n == 5 && !strcmp(seg[4], "recommendations") && wm__is_get(r)) {
        const char *type = wm__qparam(a, r, "type");
        const char *num = wm__qparam(a, r, "n");
        const char *held = wm__qparam(a, r, "include_held");
        rc = wm_engine_recommendations_json(e, project, uid, type ? type : "fund",
                                            num ? (uint32_t)strtoul(num, NULL, 10) : 5,
                                            held && (!strcmp(held, "true") || !strcmp(held, "1")), &b);
        return wm__answer(r, rc, &b, 200);
    }
    if (n != 6 || strcmp(seg[4], "tags"))
        return not_found(r, &b);
    if (!valid_key(seg[5])) {
        wm_buf_release(&b);
        return wm__http_error(r, 400, "invalid_argument", "tag",
                              "a tag key is [A-Za-z_][A-Za-z0-9_]{0,63}");
    }
    if (wm__is_get(r)) {
        bool bad;
        int64_t at = at_param(a, r, &bad);
        if (bad) {
            wm_buf_release(&b);
            return wm__http_error(r, 400, "invalid_argument", "at", "at must be epoch ms or YYYY-MM-DD[ HH:MM:SS]");
        }
        return wm__answer(r, wm_engine_user_tag_history_json(e, uid, seg[5], at, &b), &b, 200);
    }
    if (!can_write(role)) {
        wm_buf_release(&b);
        return wm__http_error(r, 403, "forbidden", "", "setting tags needs the operator or admin role");
    }
    if (!strcmp(r->method, "PUT")) {
        wm_json_t *body;
        wm_json_error_t je;
        if (!r->body_len || wm_json_parse(a, r->body, r->body_len, &body, &je) || !wm_json_get(body, "value")) {
            wm_buf_release(&b);
            return wm__http_error(r, 400, "invalid_argument", "value", "the body must be {\"value\": ...}");
        }
        wm_buf_t v;
        wm_buf_init(&v, 0);
        wm_json_write(&v, wm_json_get(body, "value"));
        wm_buf_putc(&v, 0);
        rc = v.err ? v.err : wm_engine_tag_set(e, project, uid, seg[5], v.data, "api");
        wm_buf_release(&v);
    } else if (!strcmp(r->method, "DELETE")) {
        rc = wm_engine_tag_set(e, project, uid, seg[5], NULL, "api");
    } else {
        return not_found(r, &b);
    }
    if (rc == WM_ENOTFOUND || rc == WM_ESTATE || rc == WM_ETYPE) {
        wm_buf_release(&b);
        return rc == WM_ENOTFOUND ? wm__http_error(r, 404, "not_found", "tag", "no published tag of this key")
               : rc == WM_ESTATE  ? wm__http_error(r, 409, "invalid_state", "tag",
                                                   "a computed tag takes no values: only manual and imported tags")
                                  : wm__http_error(r, 400, "invalid_argument", "value",
                                                   "the value does not have the tag's type");
    }
    if (!rc)
        wm_buf_puts(&b, "{\"ok\":true}");
    return wm__answer(r, rc, &b, 200);
}

int wm__route_audience(wm_req_t *r, wm_arena_t *a, const char **seg, int n, const char *project,
                       const char *role)
{
    if (!strcmp(seg[2], "users"))
        return handle_user_audience(r, a, seg, n, project, role);
    return handle_defs(r, a, seg, n, project, role, !strcmp(seg[2], "tags") ? "tag" : "segment");
}
