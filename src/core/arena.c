/*
 * arena.c - bump allocator. Chunks are chained newest-first; a request that
 * needs more than a chunk gets a dedicated chunk of its own size, so a large
 * body does not waste a whole default chunk.
 */
#include "waymark/arena.h"

#include <stdint.h>
#include <string.h>

#include "waymark/alloc.h"

struct wm_arena_chunk {
    wm_arena_chunk_t *prev;
    size_t size;
    size_t used;
    _Alignas(16) unsigned char mem[];
};

void wm_arena_init(wm_arena_t *a, size_t chunk_bytes)
{
    memset(a, 0, sizeof *a);
    a->chunk_bytes = chunk_bytes ? chunk_bytes : 64 * 1024;
}

static wm_arena_chunk_t *chunk_new(size_t size, wm_arena_chunk_t *prev)
{
    if (size > SIZE_MAX - sizeof(wm_arena_chunk_t))
        return NULL;
    wm_arena_chunk_t *c = wm_malloc(sizeof *c + size);
    if (!c)
        return NULL;
    c->prev = prev;
    c->size = size;
    c->used = 0;
    return c;
}

/* The head chunk's `used` is a->next while the fast path runs; these two
 * move it between the chunk and the arena. */
static void head_sync(wm_arena_t *a)
{
    if (a->head)
        a->head->used = (size_t)(a->next - a->head->mem);
}

static void head_load(wm_arena_t *a)
{
    wm_arena_chunk_t *c = a->head;
    a->next = c ? c->mem + c->used : NULL;
    a->end = c ? c->mem + c->size : NULL;
}

static void *alloc_slow(wm_arena_t *a, size_t n);

void *wm__arena_alloc_slow(wm_arena_t *a, size_t n)
{
    head_sync(a);
    void *p = alloc_slow(a, n);
    head_load(a);
    return p;
}

static void *alloc_slow(wm_arena_t *a, size_t n)
{
    if (n > SIZE_MAX - 7)
        return NULL; /* rounding up would wrap to a tiny allocation */
    n = (n + 7) & ~(size_t)7;
    if (a->limit_bytes && a->used_bytes + n > a->limit_bytes)
        return NULL;
    wm_arena_chunk_t *c = a->head;
    if (!c || c->size - c->used < n) {
        size_t size = n > a->chunk_bytes / 2 ? n : a->chunk_bytes;
        if (c && size == n) {
            /* big allocation: own chunk, inserted behind the current one */
            wm_arena_chunk_t *big = chunk_new(size, c->prev);
            if (!big)
                return NULL;
            c->prev = big;
            big->used = n;
            a->used_bytes += n;
            return big->mem;
        }
        c = chunk_new(size, c);
        if (!c)
            return NULL;
        a->head = c;
    }
    void *p = c->mem + c->used;
    c->used += n;
    a->used_bytes += n;
    return p;
}

char *wm_arena_strndup(wm_arena_t *a, const char *s, size_t n)
{
    char *d = wm_arena_alloc(a, n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

void wm_arena_reset(wm_arena_t *a)
{
    wm_arena_chunk_t *c = a->head;
    if (!c)
        return;
    /* keep the newest chunk if it is a default-sized one */
    wm_arena_chunk_t *keep = c->size == a->chunk_bytes ? c : NULL;
    wm_arena_chunk_t *p = keep ? c->prev : c;
    while (p) {
        wm_arena_chunk_t *prev = p->prev;
        wm_free(p);
        p = prev;
    }
    if (keep) {
        keep->prev = NULL;
        keep->used = 0;
    }
    a->head = keep;
    a->used_bytes = 0;
    head_load(a);
}

void wm_arena_release(wm_arena_t *a)
{
    wm_arena_chunk_t *c = a->head;
    while (c) {
        wm_arena_chunk_t *prev = c->prev;
        wm_free(c);
        c = prev;
    }
    a->head = NULL;
    a->used_bytes = 0;
    head_load(a);
}
