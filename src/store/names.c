/*
 * names.c - a partition's table of numeric ids for project names and journey
 * keys (layout and rules in names.h).
 *
 * The table is tiny (projects x journeys) and read on every row decode, so
 * all of it lives in memory: an array indexed by id - 1 and a hash map from
 * name to id, under one mutex because query threads decode rows while the
 * writer may be adding a name. Ids assigned by the open write transaction
 * are the tail of the array (past n_committed): an abort drops them.
 */
#include "store/names.h"

#include <pthread.h>
#include <string.h>

#include "waymark/alloc.h"
#include "waymark/error.h"
#include "waymark/limits.h"
#include "waymark/strmap.h"

typedef struct name {
    char *bytes;
    size_t len;
} name_t;

struct wm_names {
    MDB_dbi dbi;
    pthread_mutex_t mu;
    name_t *names;              /* names[id - 1] */
    uint32_t n, cap, n_committed;
    wm_strmap_t by_name;
};

static size_t name_key(unsigned char *kb, const char *name, size_t len)
{
    kb[0] = 'n';
    memcpy(kb + 1, name, len);
    return len + 1;
}

static void id_key(unsigned char *kb, uint32_t id)
{
    kb[0] = 'i';
    kb[1] = (unsigned char)(id >> 24), kb[2] = (unsigned char)(id >> 16);
    kb[3] = (unsigned char)(id >> 8), kb[4] = (unsigned char)id;
}

/* Appends name as id n + 1 in memory (caller holds mu or is opening). */
static int remember(wm_names_t *t, const char *name, size_t len)
{
    if (t->n == WM_NAMES_MAX)
        return WM_ELIMIT;
    if (t->n == t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 16;
        name_t *p = wm_realloc(t->names, cap * sizeof *p);
        if (!p)
            return WM_ENOMEM;
        t->names = p;
        t->cap = cap;
    }
    char *copy = wm_malloc(len + 1);
    if (!copy)
        return WM_ENOMEM;
    memcpy(copy, name, len);
    copy[len] = 0;
    if (wm_strmap_put(&t->by_name, name, len, t->n + 1)) {
        wm_free(copy);
        return WM_ENOMEM;
    }
    t->names[t->n++] = (name_t){copy, len};
    return 0;
}

/* Ids are dense from 1, so walking the "i" keys in order rebuilds the array. */
static int load(wm_names_t *t, MDB_txn *txn)
{
    MDB_cursor *c;
    if (mdb_cursor_open(txn, t->dbi, &c))
        return WM_EIO;
    unsigned char kb[5];
    id_key(kb, 1);
    MDB_val k = {5, kb}, v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE), err = 0;
    while (rc == 0 && !err && k.mv_size == 5 && ((unsigned char *)k.mv_data)[0] == 'i') {
        const unsigned char *p = k.mv_data;
        uint32_t id = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
        err = id != t->n + 1 ? WM_ECORRUPT : remember(t, v.mv_data, v.mv_size);
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    t->n_committed = t->n;
    return err ? err : rc == 0 || rc == MDB_NOTFOUND ? 0 : WM_EIO;
}

int wm_names_open(MDB_txn *txn, const char *dbi_name, wm_names_t **out)
{
    wm_names_t *t = wm_calloc(1, sizeof *t);
    if (!t)
        return WM_ENOMEM;
    pthread_mutex_init(&t->mu, NULL);
    wm_strmap_init(&t->by_name);
    int rc = mdb_dbi_open(txn, dbi_name, MDB_CREATE, &t->dbi) ? WM_EIO : load(t, txn);
    if (rc) {
        wm_names_close(t);
        return rc;
    }
    *out = t;
    return 0;
}

void wm_names_close(wm_names_t *t)
{
    if (!t)
        return;
    for (uint32_t i = 0; i < t->n; i++)
        wm_free(t->names[i].bytes);
    wm_free(t->names);
    wm_strmap_release(&t->by_name);
    pthread_mutex_destroy(&t->mu);
    wm_free(t);
}

bool wm_names_find(wm_names_t *t, const char *name, size_t len, uint32_t *id)
{
    uint64_t v = 0;
    pthread_mutex_lock(&t->mu);
    bool ok = wm_strmap_get(&t->by_name, name, len, &v);
    pthread_mutex_unlock(&t->mu);
    *id = (uint32_t)v;
    return ok;
}

static int store(wm_names_t *t, MDB_txn *txn, const char *name, size_t len, uint32_t id)
{
    unsigned char nk[1 + WM_NAME_BYTES_MAX], ik[5];
    id_key(ik, id);
    MDB_val k = {name_key(nk, name, len), nk}, v = {4, &id};
    if (mdb_put(txn, t->dbi, &k, &v, MDB_NOOVERWRITE))
        return WM_EIO;
    k = (MDB_val){5, ik};
    v = (MDB_val){len, (void *)name};
    return mdb_put(txn, t->dbi, &k, &v, MDB_NOOVERWRITE) ? WM_EIO : 0;
}

int wm_names_assign(wm_names_t *t, MDB_txn *txn, const char *name, size_t len, uint32_t *id)
{
    if (wm_names_find(t, name, len, id))
        return 0;
    if (!len || len > WM_NAME_BYTES_MAX)
        return WM_EINVAL;
    pthread_mutex_lock(&t->mu);
    int rc = remember(t, name, len);
    *id = t->n;
    pthread_mutex_unlock(&t->mu);
    return rc ? rc : store(t, txn, name, len, *id);
}

void wm_names_committed(wm_names_t *t)
{
    pthread_mutex_lock(&t->mu);
    t->n_committed = t->n;
    pthread_mutex_unlock(&t->mu);
}

/* Rare (an aborted write transaction): rebuild the map from the kept part. */
void wm_names_aborted(wm_names_t *t)
{
    pthread_mutex_lock(&t->mu);
    if (t->n != t->n_committed) {
        for (uint32_t i = t->n_committed; i < t->n; i++)
            wm_free(t->names[i].bytes);
        t->n = t->n_committed;
        wm_strmap_release(&t->by_name);
        wm_strmap_init(&t->by_name);
        for (uint32_t i = 0; i < t->n; i++)
            if (wm_strmap_put(&t->by_name, t->names[i].bytes, t->names[i].len, i + 1))
                break; /* out of memory: later finds miss and assign rejects the duplicate */
    }
    pthread_mutex_unlock(&t->mu);
}

int wm_names_get(wm_names_t *t, uint32_t id, char *out, size_t cap)
{
    int len = -1;
    pthread_mutex_lock(&t->mu);
    if (id >= 1 && id <= t->n && t->names[id - 1].len < cap) {
        len = (int)t->names[id - 1].len;
        memcpy(out, t->names[id - 1].bytes, (size_t)len + 1);
    }
    pthread_mutex_unlock(&t->mu);
    return len;
}
