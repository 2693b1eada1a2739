/*
 * identity.c - ID-Mapping: (project, identity key, value) <-> user id in LMDB.
 *
 * Why LMDB: resolution sits on the import hot path before the partition log,
 * so it must be a handful of B-tree gets per record, durable without a log of
 * its own, and readable by customer-360 lookups without blocking the writer.
 *
 * Layout (one env at DIR/identity, all keys compared bytewise):
 *
 *   id2user   project 0 key 0 value            -> u64be user id
 *   user2id   project 0 u64be user key 0 value -> (empty)    prefix scan = a user's ids
 *   meta      "next_user_id" / "next_merge_seq" -> u64be    global counters
 *   keys      project 0 key                     -> (empty)    custom identity keys
 *   merges    project 0 u64be into u64be seq    -> u64be from, i64be time_ms,
 *                                                  event 0 distinct_id 0
 *   redirect  project 0 u64be from              -> u64be into  (merged users)
 *
 * In keys, "key" is an identity key name; preset names are stored as one
 * code byte (see preset_code), which halves the index. User ids are global
 * (not per project) so a user id alone picks a partition.
 *
 * Hot path: a batch is one write txn; each record's identities are encoded
 * into stack buffers (no malloc) and looked up with mdb_get. A known user
 * whose identities are all mapped costs only gets; puts happen for new
 * identities, new users, merges and unbinds. The counters are read once per
 * batch and written once at commit. Rules are in docs/identity.md; every
 * rejection is decided before the record writes anything, so a rejected
 * record changes nothing while the rest of the batch goes on.
 */
#include "waymark/identity.h"

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "waymark/alloc.h"
#include "waymark/bytes.h"
#include "waymark/error.h"
#include "waymark/limits.h"
#include "waymark/strmap.h"

/* LMDB's default maximum key size; our longest key is
 * project(100) + 1 + 8 + key(100) + 1 + value(255) = 465 bytes. */
#define KEY_BUF 512
#define IDS_MAX (WM_IDENTITIES_MAX + 4)
/* Redirect chains are short (each merge folds an anonymous user once); the
 * bound only protects against a corrupt cycle. */
#define REDIRECT_HOPS_MAX 64

/* The writer's cache of id2user: encoded key -> owner (0 = known to be
 * unmapped), filled by lookups and kept equal to the index by every write
 * of id2user (map_identity, unmap_identity), so a known identity costs a
 * hash probe instead of a B-tree get. Used only inside resolve_batch's write
 * transaction, which LMDB's writer lock makes exclusive; an aborted
 * transaction empties it (its entries may describe writes that never
 * happened). Open addressing over slots; key bytes in one pool. Full
 * (max_entries or the pool): emptied and refilled. */
typedef struct idc_slot {
    uint64_t hash;              /* 0 = empty */
    uint64_t owner;
    uint32_t off, len;          /* key bytes in pool */
} idc_slot_t;

typedef struct id_cache {
    idc_slot_t *slots;
    uint32_t mask;              /* slots - 1; 0 = no table yet */
    uint32_t count, max_entries;
    unsigned char *pool;
    size_t pool_len, pool_cap;
    uint64_t hits, misses;
} id_cache_t;

struct wm_identity {
    MDB_env *env;
    MDB_dbi id2user, user2id, meta, keys, merges, redirect;
    int failed; /* sticky fatal storage error (invariant: once set, never cleared) */
    id_cache_t cache;
};

/* ---- error mapping -------------------------------------------------- */

static int map_rc(int rc)
{
    switch (rc) {
    case MDB_SUCCESS: return 0;
    case MDB_NOTFOUND: return WM_ENOTFOUND;
    case MDB_KEYEXIST: return WM_EEXISTS;
    case MDB_MAP_FULL:
    case MDB_TXN_FULL:
    case MDB_CURSOR_FULL:
    case MDB_DBS_FULL: return WM_ELIMIT;
    case MDB_READERS_FULL:
    case MDB_MAP_RESIZED: return WM_EBUSY;
    case MDB_BAD_VALSIZE: return WM_EINVAL;
    case ENOMEM: return WM_ENOMEM;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH: return WM_ECORRUPT;
    default: return WM_EIO;
    }
}

/* I/O and corruption errors poison the handle: continuing could resolve
 * records against a half-read index. Capacity errors do not. */
static int note_rc(wm_identity_t *id, int rc)
{
    int e = map_rc(rc);
    if (e == WM_EIO || e == WM_ECORRUPT)
        id->failed = e;
    return e;
}

/* ---- key encoding ---------------------------------------------------- */


typedef struct kbuf {
    unsigned char b[KEY_BUF];
    size_t n;
} kbuf_t;

static void kb_str(kbuf_t *k, const char *s, size_t n, bool nul)
{
    memcpy(k->b + k->n, s, n);
    k->n += n;
    if (nul)
        k->b[k->n++] = 0;
}

static void kb_u64(kbuf_t *k, uint64_t v)
{
    wm_put_be64(k->b + k->n, v);
    k->n += 8;
}

static unsigned preset_code(const char *key, size_t klen);

/* Appends an identity key name, encoded (see preset_code), and its NUL. */
static void kb_idkey(kbuf_t *k, const char *key, size_t klen)
{
    unsigned c = preset_code(key, klen);
    if (c) {
        k->b[k->n++] = (unsigned char)c;
        k->b[k->n++] = 0;
        return;
    }
    kb_str(k, key, klen, true);
}

static MDB_val kb_val(kbuf_t *k)
{
    return (MDB_val){.mv_size = k->n, .mv_data = k->b};
}

/* ---- the writer's id2user cache -------------------------------------- */

#define IDC_SLOTS_MIN (1u << 12)
#define IDC_KEY_BYTES_AVG 48u   /* pool bytes per entry before it counts as full */

static void idc_clear(id_cache_t *c)
{
    if (c->slots)
        memset(c->slots, 0, sizeof *c->slots * ((size_t)c->mask + 1));
    c->count = 0;
    c->pool_len = 0;
}

static void idc_release(id_cache_t *c)
{
    wm_free(c->slots);
    wm_free(c->pool);
    memset(c, 0, sizeof *c);
}

static uint64_t idc_hash(const kbuf_t *k)
{
    uint64_t h = wm_hash64(k->b, k->n, 0x1d);
    return h ? h : 1;
}

static idc_slot_t *idc_find(id_cache_t *c, const kbuf_t *k, uint64_t h)
{
    for (uint32_t i = (uint32_t)h & c->mask;; i = (i + 1) & c->mask) {
        idc_slot_t *s = &c->slots[i];
        if (!s->hash || (s->hash == h && s->len == k->n && !memcmp(c->pool + s->off, k->b, k->n)))
            return s;
    }
}

/* The cached owner of k: true with *owner (0 = unmapped), false if not cached. */
static bool idc_get(id_cache_t *c, const kbuf_t *k, uint64_t *owner)
{
    if (!c->mask)
        return false;
    idc_slot_t *s = idc_find(c, k, idc_hash(k));
    if (!s->hash) {
        c->misses++;
        return false;
    }
    c->hits++;
    *owner = s->owner;
    return true;
}

/* Doubles the table (up to what max_entries needs at half load). */
static bool idc_grow(id_cache_t *c)
{
    size_t n = c->mask ? ((size_t)c->mask + 1) * 2 : IDC_SLOTS_MIN;
    idc_slot_t *slots = wm_calloc(n, sizeof *slots);
    if (!slots)
        return false;
    for (size_t i = 0; c->mask && i <= c->mask; i++) {
        idc_slot_t *o = &c->slots[i];
        if (!o->hash)
            continue;
        size_t j = o->hash & (n - 1);
        while (slots[j].hash)
            j = (j + 1) & (n - 1);
        slots[j] = *o;
    }
    wm_free(c->slots);
    c->slots = slots;
    c->mask = (uint32_t)(n - 1);
    return true;
}

/* Records owner (0 = unmapped) for k. Never fails: without memory the
 * entry is dropped, and the table emptied so that no stale one survives. */
static void idc_put(id_cache_t *c, const kbuf_t *k, uint64_t owner)
{
    if (!c->max_entries)
        return;
    uint64_t h = idc_hash(k);
    if (c->mask) {
        idc_slot_t *s = idc_find(c, k, h);
        if (s->hash) {
            s->owner = owner;
            return;
        }
    }
    if (c->count >= c->max_entries ||
        c->pool_len + k->n > (size_t)c->max_entries * IDC_KEY_BYTES_AVG)
        idc_clear(c);
    if ((!c->mask || (size_t)(c->count + 1) * 2 > (size_t)c->mask + 1) && !idc_grow(c)) {
        idc_clear(c);
        return;
    }
    if (c->pool_len + k->n > c->pool_cap) {
        size_t cap = c->pool_cap ? c->pool_cap * 2 : 64 * 1024;
        while (cap < c->pool_len + k->n)
            cap *= 2;
        unsigned char *p = wm_realloc(c->pool, cap);
        if (!p) {
            idc_clear(c);
            return;
        }
        c->pool = p;
        c->pool_cap = cap;
    }
    idc_slot_t *s = idc_find(c, k, h);
    memcpy(c->pool + c->pool_len, k->b, k->n);
    *s = (idc_slot_t){.hash = h, .owner = owner, .off = (uint32_t)c->pool_len, .len = (uint32_t)k->n};
    c->pool_len += k->n;
    c->count++;
}

/* ---- preset keys ----------------------------------------------------- */

static const char *const preset_keys[] = {
    "$identity_login_id",   "$identity_anonymous_id", "$identity_cookie_id",
    "$identity_android_id", "$identity_android_uuid", "$identity_idfv",
    "$identity_idfa",       "$identity_ios_uuid",     "$identity_mobile",
    "$identity_email",      "$identity_distinct_id",  "$identity_mp_id",
    "$identity_mp_openid",  "$identity_mp_unionid",   "$identity_wecom_external_userid",
    "$identity_customer_no",
};

#define N_PRESET (sizeof preset_keys / sizeof preset_keys[0])

/* Index keys store a preset key name as one byte, its index + 1: the name
 * would otherwise be about half of every key's bytes. The code cannot be
 * confused with a custom name, which starts with a letter, '_' or '$'. */
static unsigned preset_code(const char *key, size_t klen)
{
    if (klen < 12 || memcmp(key, "$identity_", 10) != 0)
        return 0;
    for (unsigned i = 0; i < N_PRESET; i++)
        if (strlen(preset_keys[i]) == klen && memcmp(key, preset_keys[i], klen) == 0)
            return i + 1;
    return 0;
}

bool wm_identity_key_is_preset(const char *key)
{
    return preset_code(key, strlen(key)) != 0;
}

/* Turns an encoded key name back into its text (in place for custom keys). */
static void decode_idkey(const char **key, size_t *klen)
{
    unsigned c = *klen == 1 ? (unsigned char)(*key)[0] : 0;
    if (c >= 1 && c <= N_PRESET) {
        *key = preset_keys[c - 1];
        *klen = strlen(*key);
    }
}

/* Sensors name rule ^[a-zA-Z_$][a-zA-Z0-9_$]{0,99}$, local so that this
 * module does not depend on the ingest validator. */
static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > WM_NAME_LEN_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

static const char *rec_type_str(wm_rec_type_t t)
{
    static const char *const names[] = {
#define WM__REC_STR(name, str) str,
        WM_REC_TYPE_MAP(WM__REC_STR)
#undef WM__REC_STR
    };
    return (unsigned)t < WM_REC__COUNT ? names[t] : "";
}

/* ---- open / close ---------------------------------------------------- */

static int ensure_dir(const char *path)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return 0;
    return WM_EIO;
}

static int open_dbis(wm_identity_t *id)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(id->env, NULL, 0, &txn);
    if (rc)
        return map_rc(rc);
    struct {
        const char *name;
        MDB_dbi *dbi;
    } t[] = {{"id2user", &id->id2user}, {"user2id", &id->user2id}, {"meta", &id->meta},
             {"keys", &id->keys},       {"merges", &id->merges},   {"redirect", &id->redirect}};
    for (size_t i = 0; i < sizeof t / sizeof t[0] && !rc; i++)
        rc = mdb_dbi_open(txn, t[i].name, MDB_CREATE, t[i].dbi);
    if (rc) {
        mdb_txn_abort(txn);
        return map_rc(rc);
    }
    return map_rc(mdb_txn_commit(txn));
}

int wm_identity_open(const wm_identity_opts_t *opts, wm_identity_t **out)
{
    *out = NULL;
    if (!opts || !opts->dir)
        return WM_EINVAL;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/identity", opts->dir) >= (int)sizeof path)
        return WM_EINVAL;
    if (ensure_dir(opts->dir) || ensure_dir(path))
        return WM_EIO;
    wm_identity_t *id = wm_calloc(1, sizeof *id);
    if (!id)
        return WM_ENOMEM;
    int rc = mdb_env_create(&id->env);
    if (rc) {
        wm_free(id);
        return map_rc(rc);
    }
    uint64_t map = opts->map_bytes ? opts->map_bytes : WM_LMDB_MAP_BYTES;
    unsigned flags = MDB_NOTLS | (opts->nosync ? MDB_NOSYNC | MDB_NOMETASYNC : 0) |
                     (opts->writemap ? MDB_WRITEMAP : 0);
    rc = mdb_env_set_mapsize(id->env, (size_t)map);
    if (!rc)
        rc = mdb_env_set_maxdbs(id->env, 8);
    if (!rc)
        rc = mdb_env_open(id->env, path, flags, 0644);
    int err = rc ? map_rc(rc) : open_dbis(id);
    if (!err && mdb_env_get_maxkeysize(id->env) < 480)
        err = WM_EUNSUPPORTED; /* liblmdb built with a smaller key limit */
    if (err) {
        mdb_env_close(id->env);
        wm_free(id);
        return err;
    }
    id->cache.max_entries = opts->cache_entries;
    *out = id;
    return 0;
}

void wm_identity_close(wm_identity_t *id)
{
    if (!id)
        return;
    mdb_env_close(id->env);
    idc_release(&id->cache);
    wm_free(id);
}

int wm_identity_sync(wm_identity_t *id)
{
    if (id->failed)
        return WM_ESTATE;
    return note_rc(id, mdb_env_sync(id->env, 1));
}

/* ---- batch transaction state ----------------------------------------- */

typedef struct rtx {
    wm_identity_t *id;
    MDB_txn *txn;
    uint64_t next_user;  /* next id to hand out; 0 = not loaded yet */
    uint64_t next_merge;
    bool user_dirty, merge_dirty;
} rtx_t;

typedef struct rid {
    const char *key, *value;
    size_t klen, vlen;
    bool login;
    uint64_t owner; /* 0 = not mapped */
} rid_t;

typedef struct rrec {
    const wm_record_t *rec;
    const char *project;
    size_t plen;
    rid_t ids[IDS_MAX];
    uint32_t n;
    int login; /* index of the login identity, -1 if none */
} rrec_t;

static int counter_get(rtx_t *t, const char *name, uint64_t *v)
{
    MDB_val k = {strlen(name), (void *)name}, d;
    int rc = mdb_get(t->txn, t->id->meta, &k, &d);
    if (rc == MDB_NOTFOUND) {
        *v = 1;
        return 0;
    }
    if (rc)
        return note_rc(t->id, rc);
    if (d.mv_size != 8)
        return WM_ECORRUPT;
    *v = wm_get_be64(d.mv_data);
    return 0;
}

static int counter_put(rtx_t *t, const char *name, uint64_t v)
{
    unsigned char b[8];
    wm_put_be64(b, v);
    MDB_val k = {strlen(name), (void *)name}, d = {8, b};
    return note_rc(t->id, mdb_put(t->txn, t->id->meta, &k, &d, 0));
}

static int new_user(rtx_t *t, uint64_t *user)
{
    if (!t->next_user) {
        int e = counter_get(t, "next_user_id", &t->next_user);
        if (e)
            return e;
    }
    *user = t->next_user++;
    t->user_dirty = true;
    return 0;
}

static int next_merge_seq(rtx_t *t, uint64_t *seq)
{
    if (!t->next_merge) {
        int e = counter_get(t, "next_merge_seq", &t->next_merge);
        if (e)
            return e;
    }
    *seq = t->next_merge++;
    t->merge_dirty = true;
    return 0;
}

static int flush_counters(rtx_t *t)
{
    int e = t->user_dirty ? counter_put(t, "next_user_id", t->next_user) : 0;
    if (!e && t->merge_dirty)
        e = counter_put(t, "next_merge_seq", t->next_merge);
    return e;
}

/* ---- primitive index operations -------------------------------------- */

static void key_id2user(kbuf_t *k, const char *proj, size_t plen, const char *key, size_t klen,
                        const char *val, size_t vlen)
{
    k->n = 0;
    kb_str(k, proj, plen, true);
    kb_idkey(k, key, klen);
    kb_str(k, val, vlen, false);
}

static void key_user_prefix(kbuf_t *k, const char *proj, size_t plen, uint64_t user)
{
    k->n = 0;
    kb_str(k, proj, plen, true);
    kb_u64(k, user);
}

/* Reads the owner of one identity; *user = 0 when unmapped. */
static int get_owner(wm_identity_t *id, MDB_txn *txn, const char *proj, size_t plen,
                     const char *key, size_t klen, const char *val, size_t vlen, uint64_t *user)
{
    kbuf_t k;
    key_id2user(&k, proj, plen, key, klen, val, vlen);
    MDB_val kv = kb_val(&k), d;
    int rc = mdb_get(txn, id->id2user, &kv, &d);
    *user = 0;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return note_rc(id, rc);
    if (d.mv_size != 8)
        return id->failed = WM_ECORRUPT;
    *user = wm_get_be64(d.mv_data);
    return 0;
}

/* get_owner inside the batch's write transaction, through the cache. */
static int get_owner_w(rtx_t *t, const char *proj, size_t plen, const char *key, size_t klen,
                       const char *val, size_t vlen, uint64_t *user)
{
    kbuf_t k;
    key_id2user(&k, proj, plen, key, klen, val, vlen);
    if (idc_get(&t->id->cache, &k, user))
        return 0;
    MDB_val kv = kb_val(&k), d;
    int rc = mdb_get(t->txn, t->id->id2user, &kv, &d);
    *user = 0;
    if (rc && rc != MDB_NOTFOUND)
        return note_rc(t->id, rc);
    if (!rc && d.mv_size != 8)
        return t->id->failed = WM_ECORRUPT;
    if (!rc)
        *user = wm_get_be64(d.mv_data);
    idc_put(&t->id->cache, &k, *user);
    return 0;
}

/* Writes both directions of identity -> user. */
static int map_identity(rtx_t *t, const char *proj, size_t plen, const char *key, size_t klen,
                        const char *val, size_t vlen, uint64_t user)
{
    kbuf_t k;
    unsigned char ub[8];
    wm_put_be64(ub, user);
    key_id2user(&k, proj, plen, key, klen, val, vlen);
    MDB_val kv = kb_val(&k), d = {8, ub}, empty = {0, ub};
    int rc = mdb_put(t->txn, t->id->id2user, &kv, &d, 0);
    if (rc)
        return note_rc(t->id, rc);
    idc_put(&t->id->cache, &k, user);
    key_user_prefix(&k, proj, plen, user);
    kb_idkey(&k, key, klen);
    kb_str(&k, val, vlen, false);
    kv = kb_val(&k);
    return note_rc(t->id, mdb_put(t->txn, t->id->user2id, &kv, &empty, 0));
}

static int unmap_identity(rtx_t *t, const char *proj, size_t plen, const char *key, size_t klen,
                          const char *val, size_t vlen, uint64_t user)
{
    kbuf_t k;
    key_id2user(&k, proj, plen, key, klen, val, vlen);
    MDB_val kv = kb_val(&k);
    int rc = mdb_del(t->txn, t->id->id2user, &kv, NULL);
    if (rc)
        return note_rc(t->id, rc);
    idc_put(&t->id->cache, &k, 0);
    key_user_prefix(&k, proj, plen, user);
    kb_idkey(&k, key, klen);
    kb_str(&k, val, vlen, false);
    kv = kb_val(&k);
    return note_rc(t->id, mdb_del(t->txn, t->id->user2id, &kv, NULL));
}

/* True when the first entry at or after `prefix` in `dbi` starts with it;
 * then *found holds that entry's key. */
static int seek_prefix(wm_identity_t *id, MDB_cursor *c, const kbuf_t *prefix, MDB_val *found,
                       bool *hit)
{
    MDB_val k = {prefix->n, (void *)prefix->b}, d;
    int rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
    *hit = false;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return note_rc(id, rc);
    *hit = k.mv_size >= prefix->n && memcmp(k.mv_data, prefix->b, prefix->n) == 0;
    *found = k;
    return 0;
}

/* Finds the login id of a user, if any (one cursor seek). */
static int user_login(wm_identity_t *id, MDB_txn *txn, const char *proj, size_t plen,
                      uint64_t user, bool *has)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, id->user2id, &c);
    if (rc)
        return note_rc(id, rc);
    kbuf_t p;
    key_user_prefix(&p, proj, plen, user);
    kb_idkey(&p, WM_ID_KEY_LOGIN, sizeof WM_ID_KEY_LOGIN - 1);
    MDB_val k;
    int e = seek_prefix(id, c, &p, &k, has);
    mdb_cursor_close(c);
    return e;
}

/* Splits a user2id key after its user prefix into key and value. */
static int split_user_key(const MDB_val *k, size_t prefix_len, const char **key, size_t *klen,
                          const char **val, size_t *vlen)
{
    const char *s = (const char *)k->mv_data + prefix_len;
    size_t rest = k->mv_size - prefix_len;
    const char *nul = memchr(s, 0, rest);
    if (!nul)
        return WM_ECORRUPT;
    *key = s;
    *klen = (size_t)(nul - s);
    *val = nul + 1;
    *vlen = rest - *klen - 1;
    decode_idkey(key, klen);
    return 0;
}

/* ---- merges ------------------------------------------------------------ */

static int record_merge(rtx_t *t, const rrec_t *r, uint64_t from, uint64_t into)
{
    uint64_t seq;
    int e = next_merge_seq(t, &seq);
    if (e)
        return e;
    kbuf_t k;
    key_user_prefix(&k, r->project, r->plen, into);
    kb_u64(&k, seq);
    const wm_record_t *rec = r->rec;
    const char *ev = rec->event ? rec->event : rec_type_str(rec->type);
    const char *did = rec->distinct_id ? rec->distinct_id : "";
    size_t el = strnlen(ev, 255), dl = strnlen(did, WM_ID_LEN_MAX);
    unsigned char v[16 + 256 + WM_ID_LEN_MAX + 1];
    wm_put_be64(v, from);
    wm_put_be64(v + 8, (uint64_t)rec->time_ms);
    memcpy(v + 16, ev, el);
    v[16 + el] = 0;
    memcpy(v + 17 + el, did, dl);
    v[17 + el + dl] = 0;
    MDB_val kv = kb_val(&k), d = {18 + el + dl, v};
    int rc = mdb_put(t->txn, t->id->merges, &kv, &d, 0);
    if (rc)
        return note_rc(t->id, rc);
    unsigned char ib[8];
    wm_put_be64(ib, into);
    key_user_prefix(&k, r->project, r->plen, from);
    kv = kb_val(&k);
    d = (MDB_val){8, ib};
    return note_rc(t->id, mdb_put(t->txn, t->id->redirect, &kv, &d, 0));
}

/* Moves one identity of `from` to `into`; *more = false when `from` has none left. */
static int move_one(rtx_t *t, MDB_cursor *c, const rrec_t *r, uint64_t from, uint64_t into,
                    bool *more)
{
    kbuf_t p;
    key_user_prefix(&p, r->project, r->plen, from);
    MDB_val k;
    int e = seek_prefix(t->id, c, &p, &k, more);
    if (e || !*more)
        return e;
    kbuf_t copy; /* the cursor's key dies with the delete below */
    copy.n = k.mv_size;
    memcpy(copy.b, k.mv_data, k.mv_size);
    const char *key, *val;
    size_t klen, vlen;
    MDB_val kv = kb_val(&copy);
    if (split_user_key(&kv, p.n, &key, &klen, &val, &vlen))
        return t->id->failed = WM_ECORRUPT;
    int rc = mdb_del(t->txn, t->id->user2id, &kv, NULL);
    if (rc)
        return note_rc(t->id, rc);
    return map_identity(t, r->project, r->plen, key, klen, val, vlen, into);
}

/* Folds user `from` into `into`: every identity of `from` is remapped. */
static int merge_users(rtx_t *t, const rrec_t *r, uint64_t from, uint64_t into)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, t->id->user2id, &c);
    if (rc)
        return note_rc(t->id, rc);
    bool more = true;
    int e = 0;
    while (!e && more)
        e = move_one(t, c, r, from, into, &more);
    mdb_cursor_close(c);
    return e ? e : record_merge(t, r, from, into);
}

/* ---- collecting a record's identities --------------------------------- */

static void reject(wm_rec_error_t *err, const char *code, const char *field, const char *msg)
{
    err->code = code;
    snprintf(err->field, sizeof err->field, "%s", field);
    snprintf(err->msg, sizeof err->msg, "%s", msg);
}

static int key_defined(rtx_t *t, const rrec_t *r, const char *key, bool *ok)
{
    *ok = wm_identity_key_is_preset(key);
    if (*ok)
        return 0;
    kbuf_t k = {.n = 0};
    size_t kl = strlen(key);
    if (kl > WM_NAME_LEN_MAX)
        return 0;
    kb_str(&k, r->project, r->plen, true);
    kb_str(&k, key, kl, false);
    MDB_val kv = kb_val(&k), d;
    int rc = mdb_get(t->txn, t->id->keys, &kv, &d);
    *ok = rc == 0;
    return rc == MDB_NOTFOUND ? 0 : rc ? note_rc(t->id, rc) : 0;
}

/* The field an identity's rejection names. field NULL = an identities map
 * entry, named after its key. Only formatted for an error. */
static void id_field(char *f, size_t len, const char *key, const char *field)
{
    if (field)
        snprintf(f, len, "%s", field);
    else
        snprintf(f, len, "identities.%s", key);
}

/* Adds one identity, dropping exact duplicates. Returns 1 (reject) for an
 * empty or over-long value or a second, different login id. */
static int add_id(rrec_t *r, const char *key, const char *val, const char *field,
                  wm_rec_error_t *err)
{
    size_t vlen = strnlen(val, WM_ID_LEN_MAX + 1), klen = strlen(key);
    char f[160];
    if (vlen == 0 || vlen > WM_ID_LEN_MAX) {
        id_field(f, sizeof f, key, field);
        reject(err, "invalid_identity", f, "identity value must be 1..255 bytes");
        return 1;
    }
    bool login = klen == sizeof WM_ID_KEY_LOGIN - 1 && memcmp(key, WM_ID_KEY_LOGIN, klen) == 0;
    for (uint32_t i = 0; i < r->n; i++) {
        if (r->ids[i].klen == klen && !memcmp(r->ids[i].key, key, klen) &&
            r->ids[i].vlen == vlen && !memcmp(r->ids[i].value, val, vlen))
            return 0;
    }
    if (login && r->login >= 0) {
        id_field(f, sizeof f, key, field);
        reject(err, "conflicting_login_id", f, "a record may carry one login id only");
        return 1;
    }
    if (r->n == IDS_MAX) {
        reject(err, "too_many_identities", "identities", "too many identities");
        return 1;
    }
    if (login)
        r->login = (int)r->n;
    r->ids[r->n++] = (rid_t){key, val, klen, vlen, login, 0};
    return 0;
}

/* IDM 3: the identities map is authoritative; every key must be known. */
static int collect_idm3(rtx_t *t, rrec_t *r, wm_rec_error_t *err)
{
    const wm_record_t *rec = r->rec;
    for (uint32_t i = 0; i < rec->n_identities; i++) {
        const wm_identity_kv_t *kv = &rec->identities[i];
        char field[160];
        field[0] = 0;
        if (!kv->key || !kv->value || !wm_identity_key_is_preset(kv->key))
            snprintf(field, sizeof field, "identities.%s", kv->key ? kv->key : "");
        if (!kv->key || !kv->value) {
            reject(err, "invalid_identity", field, "identity key and value must be strings");
            return 1;
        }
        bool ok = false;
        int e = key_defined(t, r, kv->key, &ok);
        if (e)
            return e;
        if (!ok) {
            reject(err, "unknown_identity_key", field, "identity key is not defined in the project");
            return 1;
        }
        if ((e = add_id(r, kv->key, kv->value, NULL, err)))
            return e;
    }
    return 0;
}

/* A bare distinct_id (no $is_login_id, no login_id) that already is a login
 * id of the project means that login user: sa-sdk-node cannot put
 * $is_login_id into profile_increment / profile_append (it rejects
 * non-number / non-list values before sending), and treating the id as an
 * anonymous one would create a phantom user holding those properties. */
static int known_login(rtx_t *t, const rrec_t *r, const char *distinct_id, bool *is_login)
{
    uint64_t owner = 0;
    size_t klen = sizeof WM_ID_KEY_LOGIN - 1;
    int e = get_owner_w(t, r->project, r->plen, WM_ID_KEY_LOGIN, klen, distinct_id,
                        strlen(distinct_id), &owner);
    *is_login = owner != 0;
    return e;
}

/* IDM 2: distinct_id (+ login_id / anonymous_id / original_id). */
static int collect_idm2(rtx_t *t, rrec_t *r, wm_rec_error_t *err)
{
    const wm_record_t *rec = r->rec;
    int e = 0;
    if (rec->type == WM_REC_TRACK_SIGNUP) {
        if (!rec->original_id || !rec->distinct_id) {
            reject(err, "missing_original_id", "original_id", "track_signup needs original_id");
            return 1;
        }
        e = add_id(r, WM_ID_KEY_LOGIN, rec->distinct_id, "distinct_id", err);
        return e ? e : add_id(r, WM_ID_KEY_ANON, rec->original_id, "original_id", err);
    }
    if (rec->distinct_id) {
        bool login = rec->is_login_id || (rec->login_id && !strcmp(rec->login_id, rec->distinct_id));
        if (!login && !rec->login_id && (e = known_login(t, r, rec->distinct_id, &login)))
            return e;
        e = add_id(r, login ? WM_ID_KEY_LOGIN : WM_ID_KEY_ANON, rec->distinct_id, "distinct_id", err);
    }
    if (!e && rec->login_id)
        e = add_id(r, WM_ID_KEY_LOGIN, rec->login_id, "login_id", err);
    if (!e && rec->anonymous_id)
        e = add_id(r, WM_ID_KEY_ANON, rec->anonymous_id, "anonymous_id", err);
    return e;
}

static int collect(rtx_t *t, rrec_t *r, wm_rec_error_t *err)
{
    const wm_record_t *rec = r->rec;
    r->n = 0;
    r->login = -1;
    r->project = rec->project && rec->project[0] ? rec->project : "default";
    r->plen = strlen(r->project);
    if (r->plen > WM_NAME_LEN_MAX) {
        reject(err, "invalid_project", "project", "project name too long");
        return 1;
    }
    int e = rec->n_identities ? collect_idm3(t, r, err) : collect_idm2(t, r, err);
    if (e)
        return e;
    if (r->n == 0) {
        reject(err, "missing_identity", "distinct_id", "record carries no identity");
        return 1;
    }
    return 0;
}

/* ---- resolution ----------------------------------------------------- */

static int load_owners(rtx_t *t, rrec_t *r)
{
    for (uint32_t i = 0; i < r->n; i++) {
        rid_t *d = &r->ids[i];
        int e = get_owner_w(t, r->project, r->plen, d->key, d->klen, d->value, d->vlen,
                            &d->owner);
        if (e)
            return e;
    }
    return 0;
}

/* Picks the user a record belongs to (0 = a new one). With a login id: its
 * owner, else the first mapped user without a login id (it adopts the login
 * id). Without: the first mapped user that has a login id, else the first
 * mapped user. */
static int choose_target(rtx_t *t, const rrec_t *r, uint64_t *target)
{
    *target = 0;
    if (r->login >= 0 && r->ids[r->login].owner) {
        *target = r->ids[r->login].owner;
        return 0;
    }
    uint64_t first = 0;
    bool mixed = false;
    for (uint32_t i = 0; i < r->n; i++) {
        uint64_t o = r->ids[i].owner;
        if (!o)
            continue;
        if (first && o != first)
            mixed = true;
        if (!first)
            first = o;
    }
    if (!first)
        return 0;
    if (r->login < 0 && !mixed) { /* hot path: one known user, no decision to make */
        *target = first;
        return 0;
    }
    for (uint32_t i = 0; i < r->n; i++) {
        uint64_t o = r->ids[i].owner;
        bool has = false;
        int e = o ? user_login(t->id, t->txn, r->project, r->plen, o, &has) : 0;
        if (e)
            return e;
        if (o && r->login >= 0 && !has) {
            *target = o;
            return 0;
        }
        if (o && r->login < 0 && has) {
            *target = o;
            return 0;
        }
    }
    *target = r->login >= 0 ? 0 : first;
    return 0;
}

static bool already_merged(const wm_id_result_t *res, uint64_t user)
{
    for (uint32_t i = 0; i < res->n_merges; i++)
        if (res->merges[i].from_user == user)
            return true;
    return false;
}

/* Folds every other login-less owner into the target (records with a login
 * id, and binds). Beyond WM_ID_MERGES_MAX the rest stay for a later record. */
static int fold_others(rtx_t *t, rrec_t *r, uint64_t target, wm_id_result_t *res)
{
    for (uint32_t i = 0; i < r->n; i++) {
        uint64_t o = r->ids[i].owner;
        if (!o || o == target || already_merged(res, o))
            continue;
        bool has = false;
        int e = user_login(t->id, t->txn, r->project, r->plen, o, &has);
        if (e)
            return e;
        if (has || res->n_merges == WM_ID_MERGES_MAX)
            continue;
        if ((e = merge_users(t, r, o, target)))
            return e;
        res->merges[res->n_merges++] = (wm_id_merge_t){.from_user = o, .into_user = target};
    }
    for (uint32_t i = 0; i < r->n; i++)
        if (already_merged(res, r->ids[i].owner))
            r->ids[i].owner = target;
    return 0;
}

/* Maps the record's unmapped identities to the target (implicit bind). A
 * login id is only attached when the target has none (one per user). */
static int bind_free(rtx_t *t, rrec_t *r, uint64_t target, bool target_is_new)
{
    for (uint32_t i = 0; i < r->n; i++) {
        rid_t *d = &r->ids[i];
        if (d->owner)
            continue;
        if (d->login && !target_is_new) {
            bool has = false;
            int e = user_login(t->id, t->txn, r->project, r->plen, target, &has);
            if (e)
                return e;
            if (has)
                continue;
        }
        int e = map_identity(t, r->project, r->plen, d->key, d->klen, d->value, d->vlen, target);
        if (e)
            return e;
        d->owner = target;
    }
    return 0;
}

static int resolve_link(rtx_t *t, rrec_t *r, wm_id_result_t *res, bool is_bind)
{
    int e = load_owners(t, r);
    uint64_t target = 0;
    if (!e)
        e = choose_target(t, r, &target);
    if (e)
        return e;
    bool fresh = target == 0;
    if (fresh && (e = new_user(t, &target)))
        return e;
    res->user_id = target;
    res->created = fresh;
    if (!fresh && (r->login >= 0 || is_bind) && (e = fold_others(t, r, target, res)))
        return e;
    return bind_free(t, r, target, fresh);
}

/* True when `user` owns exactly one identity (two cursor steps at most). */
static int user_has_single_identity(rtx_t *t, const rrec_t *r, uint64_t user, bool *only)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, t->id->user2id, &c);
    if (rc)
        return note_rc(t->id, rc);
    kbuf_t p;
    key_user_prefix(&p, r->project, r->plen, user);
    MDB_val k, d;
    bool hit = false;
    int e = seek_prefix(t->id, c, &p, &k, &hit);
    *only = false;
    if (!e && hit) {
        rc = mdb_cursor_get(c, &k, &d, MDB_NEXT);
        if (rc == MDB_NOTFOUND)
            *only = true;
        else if (rc)
            e = note_rc(t->id, rc);
        else
            *only = !(k.mv_size >= p.n && memcmp(k.mv_data, p.b, p.n) == 0);
    }
    mdb_cursor_close(c);
    return e;
}

/* Detaches exactly one identity. Rejections happen before any write. */
static int resolve_unbind(rtx_t *t, rrec_t *r, wm_id_result_t *res, wm_rec_error_t *err)
{
    if (r->n != 1) {
        reject(err, "invalid_unbind", "identities", "track_id_unbind needs exactly one identity");
        return 1;
    }
    rid_t *d = &r->ids[0];
    int e = load_owners(t, r);
    if (e)
        return e;
    char field[160];
    snprintf(field, sizeof field, "identities.%.*s", (int)d->klen, d->key);
    if (!d->owner) {
        reject(err, "unknown_identity", field, "identity is not mapped to any user");
        return 1;
    }
    bool only = false;
    if ((e = user_has_single_identity(t, r, d->owner, &only)))
        return e;
    if (only) {
        reject(err, "last_identity", field, "cannot unbind the only identity of a user");
        return 1;
    }
    res->user_id = d->owner;
    return unmap_identity(t, r->project, r->plen, d->key, d->klen, d->value, d->vlen, d->owner);
}

static int resolve_one(rtx_t *t, const wm_record_t *rec, wm_id_result_t *res, wm_rec_error_t *err)
{
    rrec_t r;
    r.rec = rec;
    int e = collect(t, &r, err);
    if (e)
        return e;
    if (rec->type == WM_REC_TRACK_ID_UNBIND)
        return resolve_unbind(t, &r, res, err);
    bool bind = rec->type == WM_REC_TRACK_ID_BIND;
    if (bind && r.n < 2) {
        reject(err, "invalid_bind", "identities", "track_id_bind needs at least two identities");
        return 1;
    }
    return resolve_link(t, &r, res, bind);
}

int wm_identity_resolve_batch(wm_identity_t *id, const wm_record_t *recs, uint32_t n,
                              wm_id_result_t *results, wm_rec_error_t *errs)
{
    if (id->failed)
        return WM_ESTATE;
    rtx_t t = {.id = id};
    int rc = mdb_txn_begin(id->env, NULL, 0, &t.txn);
    if (rc)
        return note_rc(id, rc);
    int e = 0;
    for (uint32_t i = 0; i < n && !e; i++) {
        memset(&results[i], 0, sizeof results[i]);
        const wm_record_t *rec = &recs[i];
        if (errs[i].code || rec->type == WM_REC_ITEM_SET || rec->type == WM_REC_ITEM_DELETE)
            continue;
        e = resolve_one(&t, rec, &results[i], &errs[i]);
        if (e > 0) { /* rejected before any write: the batch goes on */
            memset(&results[i], 0, sizeof results[i]);
            e = 0;
        }
    }
    if (!e)
        e = flush_counters(&t);
    if (e) {
        idc_clear(&id->cache); /* it may hold writes of this transaction */
        mdb_txn_abort(t.txn);
        return e;
    }
    rc = mdb_txn_commit(t.txn);
    if (rc)
        idc_clear(&id->cache);
    return note_rc(id, rc);
}

void wm_identity_cache_stats(wm_identity_t *id, uint64_t *hits, uint64_t *misses, uint32_t *entries)
{
    *hits = id->cache.hits;
    *misses = id->cache.misses;
    *entries = id->cache.count;
}

/* ---- read side ---------------------------------------------------------- */

static int read_begin(wm_identity_t *id, MDB_txn **txn)
{
    if (id->failed)
        return WM_ESTATE;
    return note_rc(id, mdb_txn_begin(id->env, NULL, MDB_RDONLY, txn));
}

static int lookup_in(wm_identity_t *id, MDB_txn *txn, const char *project, const char *key,
                     const char *value, uint64_t *user)
{
    size_t pl = strlen(project), kl = strlen(key), vl = strlen(value);
    if (pl > WM_NAME_LEN_MAX || kl > WM_NAME_LEN_MAX || vl > WM_ID_LEN_MAX)
        return WM_ENOTFOUND;
    int e = get_owner(id, txn, project, pl, key, kl, value, vl, user);
    return e ? e : *user ? 0 : WM_ENOTFOUND;
}

int wm_identity_lookup(wm_identity_t *id, const char *project, const char *key,
                       const char *value, uint64_t *user_id)
{
    MDB_txn *txn;
    int e = read_begin(id, &txn);
    if (e)
        return e;
    e = lookup_in(id, txn, project, key, value, user_id);
    mdb_txn_abort(txn);
    return e;
}

static int lookup_distinct_in(wm_identity_t *id, MDB_txn *txn, const char *project,
                              const char *distinct_id, uint64_t *user)
{
    static const char *const order[] = {WM_ID_KEY_LOGIN, WM_ID_KEY_ANON, "$identity_cookie_id"};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        int e = lookup_in(id, txn, project, order[i], distinct_id, user);
        if (e != WM_ENOTFOUND)
            return e;
    }
    const char *plus = strchr(distinct_id, '+');
    if (!plus || plus == distinct_id || (size_t)(plus - distinct_id) > WM_NAME_LEN_MAX)
        return WM_ENOTFOUND;
    char key[WM_NAME_LEN_MAX + 1];
    memcpy(key, distinct_id, (size_t)(plus - distinct_id));
    key[plus - distinct_id] = 0;
    return lookup_in(id, txn, project, key, plus + 1, user);
}

int wm_identity_lookup_distinct(wm_identity_t *id, const char *project, const char *distinct_id,
                                uint64_t *user_id)
{
    MDB_txn *txn;
    int e = read_begin(id, &txn);
    if (e)
        return e;
    e = lookup_distinct_in(id, txn, project, distinct_id, user_id);
    mdb_txn_abort(txn);
    return e;
}

/* Walks the entries of `dbi` under `prefix`, calling fn for each. */
typedef int (*scan_fn)(void *ctx, const MDB_val *k, const MDB_val *d);

static int scan_prefix(wm_identity_t *id, MDB_dbi dbi, const kbuf_t *prefix, scan_fn fn, void *ctx)
{
    MDB_txn *txn;
    int e = read_begin(id, &txn);
    if (e)
        return e;
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, dbi, &c);
    if (rc) {
        mdb_txn_abort(txn);
        return note_rc(id, rc);
    }
    MDB_val k = {prefix->n, (void *)prefix->b}, d;
    rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
    while (!rc && !e && k.mv_size >= prefix->n && !memcmp(k.mv_data, prefix->b, prefix->n)) {
        e = fn(ctx, &k, &d);
        if (!e)
            rc = mdb_cursor_get(c, &k, &d, MDB_NEXT);
    }
    if (!e && rc && rc != MDB_NOTFOUND)
        e = note_rc(id, rc);
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    return e > 0 ? 0 : e; /* a callback's non-zero stop is not an error */
}

typedef struct list_ctx {
    size_t prefix_len;
    wm_identity_cb cb;
    void *ctx;
} list_ctx_t;

static int list_one(void *ctx, const MDB_val *k, const MDB_val *d)
{
    list_ctx_t *l = ctx;
    const char *key, *val;
    size_t klen, vlen;
    if (split_user_key(k, l->prefix_len, &key, &klen, &val, &vlen))
        return WM_ECORRUPT;
    char kb[KEY_BUF], vb[KEY_BUF];
    if (klen >= sizeof kb || vlen >= sizeof vb)
        return WM_ECORRUPT;
    memcpy(kb, key, klen);
    kb[klen] = 0;
    memcpy(vb, val, vlen);
    vb[vlen] = 0;
    return l->cb(l->ctx, kb, vb) ? 1 : 0;
}

int wm_identity_list(wm_identity_t *id, const char *project, uint64_t user_id,
                     wm_identity_cb cb, void *ctx)
{
    size_t pl = strlen(project);
    if (pl > WM_NAME_LEN_MAX)
        return WM_EINVAL;
    kbuf_t p;
    key_user_prefix(&p, project, pl, user_id);
    list_ctx_t l = {p.n, cb, ctx};
    return scan_prefix(id, id->user2id, &p, list_one, &l);
}

typedef struct merge_ctx {
    size_t prefix_len;
    wm_identity_merge_cb cb;
    void *ctx;
} merge_ctx_t;

static int merge_one(void *ctx, const MDB_val *k, const MDB_val *d)
{
    merge_ctx_t *m = ctx;
    const unsigned char *kp = (const unsigned char *)k->mv_data;
    const char *dp = d->mv_data;
    size_t pl = m->prefix_len; /* project and its NUL; into and seq follow */
    if (k->mv_size != pl + 16 || d->mv_size < 18 || dp[d->mv_size - 1] != 0)
        return WM_ECORRUPT;
    wm_id_merge_entry_t e = {
        .into_user = wm_get_be64(kp + pl),
        .seq = wm_get_be64(kp + pl + 8),
        .from_user = wm_get_be64((const unsigned char *)dp),
        .time_ms = (int64_t)wm_get_be64((const unsigned char *)dp + 8),
        .event = dp + 16,
    };
    size_t el = strnlen(e.event, d->mv_size - 16);
    if (16 + el + 1 >= d->mv_size)
        return WM_ECORRUPT;
    e.distinct_id = e.event + el + 1;
    return m->cb(m->ctx, &e) ? 1 : 0;
}

int wm_identity_merges_list(wm_identity_t *id, const char *project, uint64_t into_user,
                            wm_identity_merge_cb cb, void *ctx)
{
    size_t pl = strlen(project);
    if (pl > WM_NAME_LEN_MAX)
        return WM_EINVAL;
    kbuf_t p = {.n = 0};
    kb_str(&p, project, pl, true);
    if (into_user)
        kb_u64(&p, into_user);
    merge_ctx_t m = {pl + 1, cb, ctx};
    return scan_prefix(id, id->merges, &p, merge_one, &m);
}

int wm_identity_current_user(wm_identity_t *id, const char *project, uint64_t user_id,
                             uint64_t *current)
{
    size_t pl = strlen(project);
    if (pl > WM_NAME_LEN_MAX)
        return WM_EINVAL;
    MDB_txn *txn;
    int e = read_begin(id, &txn);
    if (e)
        return e;
    *current = user_id;
    for (int hop = 0; hop < REDIRECT_HOPS_MAX && !e; hop++) {
        kbuf_t k;
        key_user_prefix(&k, project, pl, *current);
        MDB_val kv = kb_val(&k), d;
        int rc = mdb_get(txn, id->redirect, &kv, &d);
        if (rc == MDB_NOTFOUND)
            break;
        if (rc)
            e = note_rc(id, rc);
        else if (d.mv_size != 8)
            e = WM_ECORRUPT;
        else
            *current = wm_get_be64(d.mv_data);
        if (!e && hop == REDIRECT_HOPS_MAX - 1)
            e = WM_ECORRUPT;
    }
    mdb_txn_abort(txn);
    return e;
}

int wm_identity_define_key(wm_identity_t *id, const char *project, const char *key)
{
    size_t pl = strlen(project), kl = strlen(key);
    if (!name_ok(project) || !name_ok(key))
        return WM_EINVAL;
    if (wm_identity_key_is_preset(key))
        return 0;
    if (id->failed)
        return WM_ESTATE;
    kbuf_t k = {.n = 0};
    kb_str(&k, project, pl, true);
    kb_str(&k, key, kl, false);
    MDB_txn *txn;
    int rc = mdb_txn_begin(id->env, NULL, 0, &txn);
    if (rc)
        return note_rc(id, rc);
    MDB_val kv = kb_val(&k), d = {0, k.b};
    rc = mdb_put(txn, id->keys, &kv, &d, 0);
    if (rc) {
        mdb_txn_abort(txn);
        return note_rc(id, rc);
    }
    return note_rc(id, mdb_txn_commit(txn));
}

int wm_identity_stats(wm_identity_t *id, wm_identity_stats_t *st)
{
    memset(st, 0, sizeof *st);
    MDB_txn *txn;
    int e = read_begin(id, &txn);
    if (e)
        return e;
    MDB_stat s;
    MDB_envinfo info;
    int rc = mdb_stat(txn, id->id2user, &s);
    if (!rc)
        st->identities = s.ms_entries;
    if (!rc)
        rc = mdb_stat(txn, id->merges, &s);
    if (!rc)
        st->merges = s.ms_entries;
    if (!rc)
        rc = mdb_env_info(id->env, &info);
    if (!rc)
        rc = mdb_env_stat(id->env, &s);
    if (!rc)
        st->used_bytes = (uint64_t)(info.me_last_pgno + 1) * s.ms_psize;
    uint64_t next = 1;
    MDB_val k = {12, (void *)"next_user_id"}, d;
    int g = rc ? rc : mdb_get(txn, id->meta, &k, &d);
    if (!g && d.mv_size == 8)
        next = wm_get_be64(d.mv_data);
    st->users_allocated = next - 1;
    mdb_txn_abort(txn);
    return rc ? note_rc(id, rc) : 0;
}
