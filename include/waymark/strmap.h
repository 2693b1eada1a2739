/*
 * strmap.h - open-addressing hash map from byte-string keys to uint64 values.
 *
 * Keys are copied into the map. Used for small, hot, in-memory indexes
 * (schema registry cache, per-project tables). Not thread-safe: callers lock.
 */
#ifndef WAYMARK_STRMAP_H
#define WAYMARK_STRMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wm_strmap_entry {
    char *key;          /* NULL = empty slot */
    size_t key_len;
    uint64_t hash;
    uint64_t value;
} wm_strmap_entry_t;

typedef struct wm_strmap {
    wm_strmap_entry_t *slots;
    size_t cap;         /* power of two */
    size_t count;
} wm_strmap_t;

void wm_strmap_init(wm_strmap_t *m);
void wm_strmap_release(wm_strmap_t *m);
/* Returns true and *value when found. */
bool wm_strmap_get(const wm_strmap_t *m, const void *key, size_t key_len, uint64_t *value);
/* Inserts or overwrites. Returns 0 or WM_ENOMEM. */
int wm_strmap_put(wm_strmap_t *m, const void *key, size_t key_len, uint64_t value);

/* 64-bit hash used across Waymark for in-memory tables (not persisted). */
uint64_t wm_hash64(const void *data, size_t n, uint64_t seed);

#endif
