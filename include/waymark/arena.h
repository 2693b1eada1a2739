/*
 * arena.h - bump allocator for request and query lifetimes.
 *
 * A request decodes its body, parses JSON and builds records in one arena and
 * frees everything with one wm_arena_reset()/wm_arena_release(). Memory handed
 * out stays valid until the next reset or release.
 */
#ifndef WAYMARK_ARENA_H
#define WAYMARK_ARENA_H

#include <stddef.h>

typedef struct wm_arena_chunk wm_arena_chunk_t;

typedef struct wm_arena {
    wm_arena_chunk_t *head;    /* current chunk; older chunks chained behind */
    size_t chunk_bytes;        /* default chunk size */
    size_t used_bytes;         /* total handed out, for limits and metrics */
    size_t limit_bytes;        /* 0 = unlimited; else allocations fail past it */
} wm_arena_t;

void wm_arena_init(wm_arena_t *a, size_t chunk_bytes);
/* Returns 8-byte aligned memory or NULL (out of memory or over limit_bytes). */
void *wm_arena_alloc(wm_arena_t *a, size_t n);
/* Copies `n` bytes and appends a NUL; returns NULL on failure. */
char *wm_arena_strndup(wm_arena_t *a, const char *s, size_t n);
/* Frees all but the first chunk and makes the arena empty again. */
void wm_arena_reset(wm_arena_t *a);
/* Frees everything. The arena may be initialised again afterwards. */
void wm_arena_release(wm_arena_t *a);

#endif
