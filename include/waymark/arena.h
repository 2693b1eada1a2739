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
    unsigned char *next, *end; /* free space of head, for the inline fast path */
} wm_arena_t;

void wm_arena_init(wm_arena_t *a, size_t chunk_bytes);
void *wm__arena_alloc_slow(wm_arena_t *a, size_t n);

/* Returns 8-byte aligned memory or NULL (out of memory or over limit_bytes).
 * Inline because the JSON parser allocates a node per value: the common case
 * is a bump of `next`; a new chunk, a big allocation or a limit take the call. */
static inline void *wm_arena_alloc(wm_arena_t *a, size_t n)
{
    size_t r = (n + 7) & ~(size_t)7;
    if (r >= n && !a->limit_bytes && (size_t)(a->end - a->next) >= r) {
        void *p = a->next;
        a->next += r;
        a->used_bytes += r;
        return p;
    }
    return wm__arena_alloc_slow(a, n);
}
/* Copies `n` bytes and appends a NUL; returns NULL on failure. */
char *wm_arena_strndup(wm_arena_t *a, const char *s, size_t n);
/* Frees all but the first chunk and makes the arena empty again. */
void wm_arena_reset(wm_arena_t *a);
/* Frees everything. The arena may be initialised again afterwards. */
void wm_arena_release(wm_arena_t *a);

#endif
