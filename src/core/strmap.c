/*
 * strmap.c - linear-probing hash map with string keys. No deletion: the
 * tables it serves (schema cache, per-project maps) only grow, which keeps
 * probing simple and lookups branch-light.
 */
#include "waymark/strmap.h"

#include <string.h>

#include "waymark/alloc.h"
#include "waymark/error.h"

uint64_t wm_hash64(const void *data, size_t n, uint64_t seed)
{
    /* FNV-1a over 8-byte words, finished with a splitmix64 avalanche. */
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull ^ seed;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    while (n--) {
        h = (h ^ *p++) * 0x100000001b3ull;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}

void wm_strmap_init(wm_strmap_t *m) { memset(m, 0, sizeof *m); }

void wm_strmap_release(wm_strmap_t *m)
{
    for (size_t i = 0; i < m->cap; i++)
        wm_free(m->slots[i].key);
    wm_free(m->slots);
    memset(m, 0, sizeof *m);
}

static wm_strmap_entry_t *find_slot(wm_strmap_entry_t *slots, size_t cap, const void *key,
                                    size_t key_len, uint64_t h)
{
    size_t i = (size_t)h & (cap - 1);
    for (;;) {
        wm_strmap_entry_t *e = &slots[i];
        if (!e->key || (e->hash == h && e->key_len == key_len && memcmp(e->key, key, key_len) == 0))
            return e;
        i = (i + 1) & (cap - 1);
    }
}

bool wm_strmap_get(const wm_strmap_t *m, const void *key, size_t key_len, uint64_t *value)
{
    if (!m->cap)
        return false;
    uint64_t h = wm_hash64(key, key_len, 0);
    wm_strmap_entry_t *e = find_slot(m->slots, m->cap, key, key_len, h);
    if (!e->key)
        return false;
    if (value)
        *value = e->value;
    return true;
}

static int grow(wm_strmap_t *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    wm_strmap_entry_t *slots = wm_calloc(cap, sizeof *slots);
    if (!slots)
        return WM_ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        wm_strmap_entry_t *old = &m->slots[i];
        if (old->key)
            *find_slot(slots, cap, old->key, old->key_len, old->hash) = *old;
    }
    wm_free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

int wm_strmap_put(wm_strmap_t *m, const void *key, size_t key_len, uint64_t value)
{
    if ((m->count + 1) * 4 > m->cap * 3) {
        int rc = grow(m);
        if (rc)
            return rc;
    }
    uint64_t h = wm_hash64(key, key_len, 0);
    wm_strmap_entry_t *e = find_slot(m->slots, m->cap, key, key_len, h);
    if (!e->key) {
        char *k = wm_strndup(key, key_len);
        if (!k)
            return WM_ENOMEM;
        e->key = k;
        e->key_len = key_len;
        e->hash = h;
        m->count++;
    }
    e->value = value;
    return 0;
}
