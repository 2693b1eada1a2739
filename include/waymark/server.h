/*
 * server.h - the HTTP front: ingest (Sensors, Segment, native), health,
 * metrics and the management / customer-360 API, on libmicrohttpd.
 * Routes and answers are documented in docs/api.md.
 */
#ifndef WAYMARK_SERVER_H
#define WAYMARK_SERVER_H

#include <stdint.h>

#include "waymark/engine.h"

typedef struct wm_server wm_server_t;

typedef struct wm_server_opts {
    const char *listen;         /* "HOST:PORT"; port 0 picks a free one */
    wm_engine_t *engine;        /* not owned */
    unsigned connection_limit;  /* 0 -> 1024 */
} wm_server_opts_t;

int wm_server_start(const wm_server_opts_t *opts, wm_server_t **out);
/* The port actually bound (useful with port 0). */
uint16_t wm_server_port(const wm_server_t *s);
void wm_server_stop(wm_server_t *s);

#endif
