/*
 * hset.c - a fixed-size set of 64-bit hashes for exact distinct counts.
 *
 * Both users count distinct values during eval, which promises no heap
 * allocation: the bucket union (buckets.c) and the did scan (cond_eval.c)
 * hand in a table they own, sized for the most values they can meet. The
 * hashes come from wm__stable_hash, whose avalanche makes the low bits a
 * fine slot index. Linear probing keeps a lookup to a few cache lines while
 * the table is at most ~60% full, which both users guarantee by their `max`.
 */
#include <string.h>

#include "rules/rules_internal.h"
#include "waymark/error.h"

void wm__hset_init(wm__hset_t *s, uint64_t *slot, uint32_t n_slots, uint32_t *filled,
                   uint32_t max)
{
    s->slot = slot;
    s->filled = filled;
    s->mask = n_slots - 1;
    s->used = 0;
    s->max = max < n_slots ? max : n_slots - 1;
    s->has_zero = false;
}

int wm__hset_add(wm__hset_t *s, uint64_t h)
{
    if (h == 0) {
        bool added = !s->has_zero;
        s->has_zero = true;
        return added;
    }
    uint32_t i = (uint32_t)h & s->mask;
    while (s->slot[i]) {
        if (s->slot[i] == h)
            return 0;
        i = (i + 1) & s->mask;
    }
    if (s->used >= s->max)
        return WM_ELIMIT;
    s->slot[i] = h;
    if (s->filled)
        s->filled[s->used] = i;
    s->used++;
    return 1;
}

uint32_t wm__hset_count(const wm__hset_t *s)
{
    return s->used + (s->has_zero ? 1 : 0);
}

void wm__hset_clear(wm__hset_t *s)
{
    if (s->filled) {
        for (uint32_t k = 0; k < s->used; k++)
            s->slot[s->filled[k]] = 0;
    } else {
        memset(s->slot, 0, ((size_t)s->mask + 1) * sizeof *s->slot);
    }
    s->used = 0;
    s->has_zero = false;
}
