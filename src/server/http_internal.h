/*
 * http_internal.h - internal: the request view handed to route handlers.
 */
#ifndef WAYMARK_SERVER_HTTP_INTERNAL_H
#define WAYMARK_SERVER_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

#include "waymark/buf.h"
#include "waymark/engine.h"

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
} wm_req_t;

int wm__route(wm_req_t *r);
int wm__http_send(wm_req_t *r, unsigned status, const char *content_type, const void *body,
                  size_t len);
int wm__http_json(wm_req_t *r, unsigned status, const wm_buf_t *b);
int wm__http_error(wm_req_t *r, unsigned status, const char *code, const char *field,
                   const char *msg);
const char *wm__http_header(wm_req_t *r, const char *name);
void wm__http_cors(wm_req_t *r, struct MHD_Response *resp);

#endif
