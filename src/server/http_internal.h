/*
 * http_internal.h - internal: the request view handed to route handlers.
 */
#ifndef WAYMARK_SERVER_HTTP_INTERNAL_H
#define WAYMARK_SERVER_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

#include "waymark/arena.h"
#include "waymark/buf.h"
#include "waymark/engine.h"

/* The console's built files (static.c). */
typedef struct wm_static wm_static_t;

typedef struct wm_req {
    struct MHD_Connection *conn;
    wm_engine_t *engine;
    const char *method;
    const char *path;           /* raw (percent-encoded) path */
    const char *query;          /* raw query string, "" if none */
    size_t query_len;
    const char *body;
    size_t body_len;
    const char *ip;
    const wm_static_t *web;     /* the console's files; never NULL while serving */
} wm_req_t;

int wm__route(wm_req_t *r);

/* Shared by the route files (routes.c, routes_audience.c). */
bool wm__is_post(const wm_req_t *r);
bool wm__is_get(const wm_req_t *r);
/* Query parameter, percent-decoded, in the arena; NULL if absent. */
const char *wm__qparam(wm_arena_t *a, const wm_req_t *r, const char *name);
/* Answers an engine result: 200/ok_status with b, 404, 400 bad JSON, 422
 * with b (validation errors), 409, 403, 503, 500. Releases b. */
int wm__answer(wm_req_t *r, int rc, wm_buf_t *b, unsigned ok_status);
/* /api/v1/tags..., /api/v1/segments..., /api/v1/users/{id}/tags...,
 * /api/v1/users/{id}/recommendations (routes_audience.c). */
int wm__route_audience(wm_req_t *r, wm_arena_t *a, const char **seg, int n, const char *project,
                       const char *role);
/* /api/v1/query/{kind}, /api/v1/queries, DELETE /api/v1/query/{id} (routes_query.c). */
int wm__route_query(wm_req_t *r, wm_arena_t *a, const char **seg, int n, const char *project,
                    const char *role);
/* An engine query's result (routes_query.c): ok_status with b, or the query
 * error shape {"error":{"code","field","path","message"}} (400 invalid_query,
 * 404, 408, 409, 413, 503, 500). Releases b. */
int wm__query_reply(wm_req_t *r, int rc, const wm_engine_query_error_t *qe, const char *id, wm_buf_t *b,
                    unsigned ok_status);
/* /api/v1/maps... (routes_maps.c). */
int wm__route_maps(wm_req_t *r, wm_arena_t *a, const char **seg, int n, const char *project,
                   const char *role);
/* GET /api/v1/journeys/{key}/report?funnel=1&from=&to= (routes_maps.c). */
int wm__route_journey_funnel(wm_req_t *r, wm_arena_t *a, const char *key, const char *project,
                             const char *role);
/* The console (static.c). dir: the built files (NULL or "": web/dist next to
 * the binary's build directory, else ./web/dist); a missing directory is not
 * an error (the console paths then answer a page saying how to build it).
 * 0 or WM_ENOMEM; *out is freed with wm__static_close. */
int wm__static_open(const char *dir, wm_static_t **out);
void wm__static_close(wm_static_t *st);
/* The directory served (resolved), and whether it holds a built console. */
const char *wm__static_dir(const wm_static_t *st, bool *present);
/* Answers a GET or HEAD of the console: a file, the SPA fallback, 304, 400
 * for a path that tries to leave the directory, 404 under /assets/. */
int wm__static_serve(wm_req_t *r, const wm_static_t *st);
/* Percent-decodes path into out (at most out_len bytes with the NUL) and
 * refuses "." and ".." segments, backslashes and control bytes: 0 or
 * WM_EINVAL. Exposed for the unit test. */
int wm__static_clean_path(const char *path, char *out, size_t out_len);
/* The Content-Type for a file name's extension (application/octet-stream
 * for unknown ones); a static string. */
const char *wm__static_content_type(const char *path);
int wm__http_send(wm_req_t *r, unsigned status, const char *content_type, const void *body,
                  size_t len);
int wm__http_json(wm_req_t *r, unsigned status, const wm_buf_t *b);
int wm__http_error(wm_req_t *r, unsigned status, const char *code, const char *field,
                   const char *msg);
const char *wm__http_header(wm_req_t *r, const char *name);
void wm__http_cors(wm_req_t *r, struct MHD_Response *resp);

#endif
