/*
 * server.h - the HTTP front: ingest (Sensors, Segment, native), health,
 * metrics and the management / customer-360 API, on libmicrohttpd.
 * Routes and answers are documented in docs/api.md.
 */
#ifndef WAYMARK_SERVER_H
#define WAYMARK_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "waymark/arena.h"
#include "waymark/buf.h"
#include "waymark/engine.h"
#include "waymark/json.h"

typedef struct wm_server wm_server_t;

typedef struct wm_server_opts {
    const char *listen;         /* "HOST:PORT"; port 0 picks a free one */
    wm_engine_t *engine;        /* not owned */
    unsigned connection_limit;  /* 0 -> 1024 */
    const char *web_dir;        /* the built console (web/dist); NULL -> next to the
                                   binary's build directory, else ./web/dist */
} wm_server_opts_t;

int wm_server_start(const wm_server_opts_t *opts, wm_server_t **out);
/* The port actually bound (useful with port 0). */
uint16_t wm_server_port(const wm_server_t *s);
void wm_server_stop(wm_server_t *s);
/* The console directory served (valid until wm_server_stop) and whether it
 * holds a built console (index.html). */
const char *wm_server_web_dir(const wm_server_t *s, bool *present);

/* A query answer's main rows (table.c): what `POST /api/v1/query/{kind}?format=csv`
 * answers and `waymark query --format csv|table` prints. */
typedef enum wm_table_format {
    WM_TABLE_CSV = 1,           /* RFC 4180: header line, CRLF line ends, quoted when needed */
    WM_TABLE_TEXT = 2,          /* aligned columns (CJK counted two wide), numbers right-aligned */
} wm_table_format_t;

/* Appends the main rows of answer (the JSON of a kind's answer; steps,
 * rows, cohorts, paths, stages, or interval's figures) to out; scratch in a.
 * 0, WM_EINVAL (answer is not an object), WM_ELIMIT (over 1024 columns),
 * WM_ENOMEM. */
int wm_server_answer_table(wm_arena_t *a, const char *kind, const wm_json_t *answer, wm_table_format_t format,
                           wm_buf_t *out);

#endif
