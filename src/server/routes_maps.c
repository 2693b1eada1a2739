/*
 * routes_maps.c - saved journey maps and the journey report's funnel
 * (docs/api.md, "Journey maps"; engine_maps.c):
 *
 *   GET    /api/v1/maps                    the project's maps
 *   POST   /api/v1/maps                    create one (201; 409 when the key is taken)
 *   GET    /api/v1/maps/{key}              one
 *   PUT    /api/v1/maps/{key}              replace it (version + 1)
 *   DELETE /api/v1/maps/{key}              delete it
 *   POST   /api/v1/maps/{key}/query        run it: {"from","to","compare"?,"utc_offset_min"?}
 *   GET    /api/v1/journeys/{key}/report?funnel=1&from=&to=[&window=&utc_offset_min=]
 *
 * Roles: maps are analytics definitions: admin, operator and analyst may
 * read, run and change them (an analyst builds maps as it builds queries);
 * advisor and viewer keys get 403. The report's funnel is a query: the same
 * three roles.
 */
#include <string.h>

#include "http_internal.h"
#include "waymark/error.h"
#include "waymark/limits.h"

static bool can_use_maps(const char *role)
{
    return !strcmp(role, "admin") || !strcmp(role, "operator") || !strcmp(role, "analyst");
}

int wm__route_maps(wm_req_t *r, wm_arena_t *a, const char **seg, int n, const char *project, const char *role)
{
    (void)a;
    if (!can_use_maps(role))
        return wm__http_error(r, 403, "forbidden", "", "journey maps need the analyst, operator or admin role");
    wm_engine_t *e = r->engine;
    wm_engine_query_error_t qe;
    memset(&qe, 0, sizeof qe);
    wm_buf_t b;
    wm_buf_init(&b, 0);
    bool del = !strcmp(r->method, "DELETE"), put = !strcmp(r->method, "PUT");
    if (n == 3 && wm__is_get(r))
        return wm__query_reply(r, wm_engine_maps_json(e, project, &b), &qe, NULL, &b, 200);
    if (n == 3 && wm__is_post(r)) {
        int rc = wm_engine_map_save(e, project, NULL, r->body, r->body_len, &b, &qe);
        if (rc == WM_EEXISTS) {
            wm_buf_release(&b);
            return wm__http_error(r, 409, "already_exists", "key",
                                  "a map of this key exists: PUT /api/v1/maps/{key} replaces it");
        }
        return wm__query_reply(r, rc, &qe, NULL, &b, 201);
    }
    if (n == 4 && wm__is_get(r))
        return wm__query_reply(r, wm_engine_map_json(e, project, seg[3], &b), &qe, NULL, &b, 200);
    if (n == 4 && put)
        return wm__query_reply(r, wm_engine_map_save(e, project, seg[3], r->body, r->body_len, &b, &qe), &qe, NULL,
                               &b, 200);
    if (n == 4 && del) {
        int rc = wm_engine_map_delete(e, project, seg[3]);
        if (!rc) {
            wm_buf_puts(&b, "{\"key\":");
            wm_buf_json_str(&b, seg[3], strlen(seg[3]));
            wm_buf_puts(&b, ",\"deleted\":true}");
        }
        return wm__query_reply(r, rc, &qe, NULL, &b, 200);
    }
    if (n == 5 && !strcmp(seg[4], "query") && wm__is_post(r)) {
        wm_engine_query_opts_t o = {.project = project, .id = wm__http_header(r, "X-Query-Id"),
                                    .answer_max = WM_QUERY_ANSWER_BYTES_MAX};
        char id[WM_QUERY_ID_MAX + 1] = "";
        int rc = wm_engine_map_query(e, project, seg[3], r->body, r->body_len, &o, id, &b, &qe);
        return wm__query_reply(r, rc, &qe, id, &b, 200);
    }
    wm_buf_release(&b);
    if (n == 4 || (n == 5 && !strcmp(seg[4], "query")))
        return wm__http_error(r, 405, "method_not_allowed", "",
                              "GET, PUT and DELETE a map; POST its /query to run it");
    return wm__http_error(r, 404, "not_found", "", "no such route");
}

int wm__route_journey_funnel(wm_req_t *r, wm_arena_t *a, const char *key, const char *project, const char *role)
{
    if (!can_use_maps(role))
        return wm__http_error(r, 403, "forbidden", "", "the report's funnel is a query: it needs the analyst, "
                                                         "operator or admin role");
    wm_engine_query_error_t qe;
    memset(&qe, 0, sizeof qe);
    wm_buf_t b;
    wm_buf_init(&b, 0);
    int rc = wm_engine_journey_report_funnel(r->engine, project, key, wm__qparam(a, r, "from"),
                                             wm__qparam(a, r, "to"), wm__qparam(a, r, "utc_offset_min"),
                                             wm__qparam(a, r, "window"), &b, &qe);
    return wm__query_reply(r, rc, &qe, NULL, &b, 200);
}
