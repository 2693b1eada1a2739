/*
 * runtime.c - tags and segments kept current on the partition apply path.
 *
 * Per applied record the runtime does, inside the writer's transaction:
 *
 *   event E of user U     -> counters fed by E (daily buckets)
 *                         -> tags that read E (and tags reading those)
 *                         -> segments that read E or a changed tag / segment
 *   profile change of U   -> tags and segments that read the profile, likewise
 *   clock pass (day)      -> every definition that moves with the clock alone,
 *                            for every user of its project
 *   publish (command)     -> the new version for every user, counters of new
 *                            behaviour clauses rebuilt from the last 90 days
 *
 * A membership change writes a_member / a_useg and queues $SegmentEntered or
 * $SegmentExited (segment, segment_id, segment_version, reason) through the host's
 * op queue, in the same transaction: exactly once, also across kill -9.
 * Definitions are evaluated in the snapshot's order (a definition after
 * those it reads), so one pass per record settles every cascade.
 *
 * Background work (publish recomputes, the clock pass) runs in rounds of at
 * most max_users users, each round its own transaction that also stores the
 * cursor, so ingest interleaves and a crash resumes where it stopped.
 */
#include "audience/aud_internal.h"
#include "store/evidx.h"

#include <math.h>
#include <pthread.h>
#include <roaring/roaring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "waymark/alloc.h"
#include "waymark/bytes.h"
#include "waymark/error.h"
#include "waymark/limits.h"

/* ---- small helpers ---- */

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t get_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int mdb_rc(int rc)
{
    return rc == 0 ? 0 : rc == MDB_MAP_FULL ? WM_ELIMIT : WM_EIO;
}

static int32_t local_day(int64_t ms, int tz_min)
{
    int64_t local = ms + (int64_t)tz_min * 60000;
    return (int32_t)(local >= 0 ? local / 86400000 : (local - 86399999) / 86400000);
}

static int tz_offset(wm_aud_t *a, const wm_json_t *profile, int64_t at_ms)
{
    const char *name = wm_json_str(wm_json_get(profile, "timezone"));
    const wm_tz_t *tz = NULL;
    if ((!name || wm_tz_get(name, &tz)) &&
        wm_tz_get(a->host.default_tz ? a->host.default_tz : "Asia/Shanghai", &tz))
        return 480;
    return wm_tz_offset_min(tz, at_ms);
}

static wm_json_t *parse_copy(wm_arena_t *arena, const void *data, size_t len)
{
    char *copy = wm_arena_strndup(arena, data, len);
    wm_json_t *v;
    wm_json_error_t je;
    if (!copy || wm_json_parse(arena, copy, len, &v, &je))
        return NULL;
    return v;
}

static uint64_t meta_u64(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t dflt)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    uint64_t x = dflt;
    if (mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size == 8)
        memcpy(&x, v.mv_data, 8);
    return x;
}

static int meta_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t x)
{
    MDB_val k = {strlen(name), (void *)name}, v = {8, &x};
    return mdb_rc(mdb_put(txn, dbi, &k, &v, 0));
}

/* ---- open / close ---- */

static int load_bitmaps(wm_aud_t *a, MDB_txn *txn)
{
    MDB_cursor *c;
    if (mdb_cursor_open(txn, a->member, &c))
        return WM_EIO;
    MDB_val k, v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (rc == 0) {
        if (k.mv_size == 12) {
            uint32_t id = get_be32(k.mv_data);
            uint64_t user = wm_get_be64((const unsigned char *)k.mv_data + 4);
            if (id >= a->n_bitmaps) {
                uint32_t n = id + 16;
                roaring_bitmap_t **b = wm_realloc(a->bitmaps, n * sizeof *b);
                if (!b) {
                    mdb_cursor_close(c);
                    return WM_ENOMEM;
                }
                memset(b + a->n_bitmaps, 0, (n - a->n_bitmaps) * sizeof *b);
                a->bitmaps = b;
                a->n_bitmaps = n;
            }
            if (!a->bitmaps[id] && !(a->bitmaps[id] = roaring_bitmap_create())) {
                mdb_cursor_close(c);
                return WM_ENOMEM;
            }
            roaring_bitmap_add(a->bitmaps[id], (uint32_t)user);
        }
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    for (uint32_t i = 0; i < a->n_bitmaps; i++)
        if (a->bitmaps[i])
            roaring_bitmap_run_optimize(a->bitmaps[i]);
    return 0;
}

static int load_universes(wm_aud_t *a, MDB_txn *txn);

int wm__aud_open(MDB_env *env, MDB_txn *txn, wm_areg_t *reg, const wm_aud_host_t *host,
                 wm_aud_t **out)
{
    wm_aud_t *a = wm_calloc(1, sizeof *a);
    if (!a)
        return WM_ENOMEM;
    a->env = env;
    a->reg = reg;
    a->host = *host;
    pthread_mutex_init(&a->bm_mu, NULL);
    int rc = mdb_dbi_open(txn, "a_tag", MDB_CREATE, &a->tag);
    if (!rc) rc = mdb_dbi_open(txn, "a_tagidx", MDB_CREATE, &a->tagidx);
    if (!rc) rc = mdb_dbi_open(txn, "a_taghist", MDB_CREATE, &a->taghist);
    if (!rc) rc = mdb_dbi_open(txn, "a_cnt", MDB_CREATE, &a->cnt);
    if (!rc) rc = mdb_dbi_open(txn, "a_member", MDB_CREATE, &a->member);
    if (!rc) rc = mdb_dbi_open(txn, "a_useg", MDB_CREATE, &a->useg);
    if (!rc) rc = mdb_dbi_open(txn, "a_meta", MDB_CREATE, &a->meta);
    if (!rc) rc = mdb_dbi_open(txn, "a_rec", MDB_CREATE, &a->rec);
    if (!rc) rc = mdb_dbi_open(txn, "a_pref", MDB_CREATE, &a->pref);
    if (rc) {
        wm__aud_close(a);
        return WM_EIO;
    }
    if ((rc = load_bitmaps(a, txn)) || (rc = load_universes(a, txn))) {
        wm__aud_close(a);
        return rc;
    }
    a->clock_day = (int32_t)meta_u64(txn, a->meta, "clock_day", 0);
    a->tasks_pending = true; /* look once: a task may have been left by a crash */
    *out = a;
    return 0;
}

/* ---- the customers of each project (the universe of previews and "not") ---- */

static roaring_bitmap_t *universe_of(wm_aud_t *a, const char *project, bool create)
{
    for (uint32_t i = 0; i < a->n_universes; i++)
        if (!strcmp(a->universes[i].project, project))
            return a->universes[i].users;
    if (!create || strlen(project) >= sizeof a->universes[0].project)
        return NULL;
    wm__aud_universe_t *u = wm_realloc(a->universes, (a->n_universes + 1) * sizeof *u);
    if (!u)
        return NULL;
    a->universes = u;
    wm__aud_universe_t *n = &u[a->n_universes];
    snprintf(n->project, sizeof n->project, "%s", project);
    if (!(n->users = roaring_bitmap_create()))
        return NULL;
    a->n_universes++;
    return n->users;
}

void wm__aud_user_seen(wm_aud_t *a, uint64_t user_id, const char *project)
{
    pthread_mutex_lock(&a->bm_mu);
    roaring_bitmap_t *b = universe_of(a, project, true);
    if (b)
        roaring_bitmap_add(b, (uint32_t)user_id);
    pthread_mutex_unlock(&a->bm_mu);
}

void *wm__aud_universe_copy(wm_aud_t *a, const char *project)
{
    pthread_mutex_lock(&a->bm_mu);
    roaring_bitmap_t *b = universe_of(a, project, false);
    roaring_bitmap_t *c = b ? roaring_bitmap_copy(b) : roaring_bitmap_create();
    pthread_mutex_unlock(&a->bm_mu);
    return c;
}

static int load_universes(wm_aud_t *a, MDB_txn *txn)
{
    MDB_cursor *c;
    if (mdb_cursor_open(txn, a->host.dbi_users, &c))
        return WM_EIO;
    MDB_val k, v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    char last[256] = "", buf[256];
    roaring_bitmap_t *cur = NULL;
    while (rc == 0) {
        if (k.mv_size == 8 && a->host.user_project &&
            a->host.user_project(a->host.ctx, v.mv_data, v.mv_size, buf, sizeof buf)) {
            if (!cur || strcmp(buf, last)) {
                cur = universe_of(a, buf, true);
                snprintf(last, sizeof last, "%s", buf);
            }
            if (cur)
                roaring_bitmap_add(cur, (uint32_t)wm_get_be64(k.mv_data));
        }
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    for (uint32_t i = 0; i < a->n_universes; i++)
        roaring_bitmap_run_optimize(a->universes[i].users);
    return 0;
}

void wm__aud_close(wm_aud_t *a)
{
    if (!a)
        return;
    for (uint32_t i = 0; i < a->n_universes; i++)
        roaring_bitmap_free(a->universes[i].users);
    wm_free(a->universes);
    for (uint32_t i = 0; i < a->n_bitmaps; i++)
        if (a->bitmaps[i])
            roaring_bitmap_free(a->bitmaps[i]);
    wm_free(a->bitmaps);
    pthread_mutex_destroy(&a->bm_mu);
    wm_free(a);
}

bool wm__aud_active(wm_aud_t *a)
{
    const wm_asnap_t *s = wm__areg_snapshot(a->reg);
    return s && (s->n_tags || s->n_segs);
}

/* ---- transactions ---- */

void wm__atx_begin(wm_atx_t *t, wm_aud_t *rt, MDB_txn *txn, wm_arena_t *arena, int64_t now_ms,
                   void *op_ctx)
{
    t->rt = rt;
    t->txn = txn;
    t->arena = arena;
    t->now_ms = now_ms;
    t->op_ctx = op_ctx;
    t->snap = wm__areg_snapshot(rt->reg);
    t->n_deltas = 0;
}

static int delta_add(wm_atx_t *t, uint32_t seg_id, uint64_t user, bool add)
{
    if (t->n_deltas == t->cap_deltas) {
        uint32_t cap = t->cap_deltas ? t->cap_deltas * 2 : 64;
        wm_adelta_t *d = wm_realloc(t->deltas, cap * sizeof *d);
        if (!d)
            return WM_ENOMEM;
        t->deltas = d;
        t->cap_deltas = cap;
    }
    t->deltas[t->n_deltas++] = (wm_adelta_t){.seg_id = seg_id, .user = (uint32_t)user, .add = add};
    return 0;
}

void wm__atx_committed(wm_atx_t *t)
{
    wm_aud_t *a = t->rt;
    if (!t->n_deltas)
        return;
    pthread_mutex_lock(&a->bm_mu);
    for (uint32_t i = 0; i < t->n_deltas; i++) {
        const wm_adelta_t *d = &t->deltas[i];
        if (d->seg_id >= a->n_bitmaps) {
            uint32_t n = d->seg_id + 16;
            roaring_bitmap_t **b = wm_realloc(a->bitmaps, n * sizeof *b);
            if (!b)
                continue; /* counts stay short until restart rebuilds them from a_member */
            memset(b + a->n_bitmaps, 0, (n - a->n_bitmaps) * sizeof *b);
            a->bitmaps = b;
            a->n_bitmaps = n;
        }
        if (!a->bitmaps[d->seg_id] && !(a->bitmaps[d->seg_id] = roaring_bitmap_create()))
            continue;
        if (d->add)
            roaring_bitmap_add(a->bitmaps[d->seg_id], d->user);
        else
            roaring_bitmap_remove(a->bitmaps[d->seg_id], d->user);
    }
    pthread_mutex_unlock(&a->bm_mu);
    t->n_deltas = 0;
}

void wm__atx_aborted(wm_atx_t *t) { t->n_deltas = 0; }

void wm__atx_release(wm_atx_t *t)
{
    wm_free(t->deltas);
    t->deltas = NULL;
    t->n_deltas = t->cap_deltas = 0;
}

/* ---- per-user context: profile, project, condition environment ---- */

/* What one record reads more than once, read once: many segments share a
 * counter (the same did-clause with other thresholds), tags are read by
 * several definitions, and every segment checks the user's memberships. */
#define UC_AGGS 32
#define UC_TAGS 32

typedef struct uc_agg {
    const wm_counter_spec_t *spec;
    int32_t from, to;
    wm_agg_t agg;
} uc_agg_t;

typedef struct uc_tag {
    const char *key;
    const wm_json_t *rec;           /* the stored record, NULL = none */
} uc_tag_t;


typedef struct ucache {
    uc_agg_t aggs[UC_AGGS];
    uint32_t n_aggs;
    uc_tag_t tags[UC_TAGS];
    uint32_t n_tags;
    int64_t *since;             /* by snapshot segment index, 0 = not a member */
    bool mem_loaded;
} ucache_t;

typedef struct uctx {
    wm_atx_t *t;
    uint64_t user_id;
    const char *project;
    const wm_json_t *profile;
    const wm_json_t *event;     /* the event being applied, or NULL */
    int tz_min;
    /* changes made while handling this record */
    bool *tag_dirty;
    bool *seg_dirty;
    bool preview;               /* counters nobody keeps are computed by a scan */
    const char *profile_raw;    /* the stored profile text (copy), parsed on first use */
    size_t profile_len;
    bool profile_parsed;
    bool rebuild;               /* a publish recompute: state built from the events */
    ucache_t *cache;            /* NULL: no caching (background passes share uctx code) */
} uctx_t;

static const wm_json_t *load_profile(wm_atx_t *t, uint64_t user_id)
{
    unsigned char kb[8];
    wm_put_be64(kb, user_id);
    MDB_val k = {8, kb}, v;
    if (mdb_get(t->txn, t->rt->host.dbi_profiles, &k, &v))
        return NULL;
    return parse_copy(t->arena, v.mv_data, v.mv_size);
}

/* Counters are keyed by spec first: a preview or recompute reads one
 * counter of every customer as one sequential range. */
static uint64_t spec_hash(const char *spec_key) { return wm_hash64(spec_key, strlen(spec_key), 0x636e74); }

static size_t cnt_key(unsigned char *kb, uint64_t user_id, const char *spec_key)
{
    wm_put_be64(kb, spec_hash(spec_key));
    wm_put_be64(kb + 8, user_id);
    return 16;
}

static bool spec_maintained(wm_atx_t *t, const wm_counter_spec_t *spec);
static int counter_scan(void *ctx, const wm_counter_spec_t *spec, int32_t from_day, int32_t to_day,
                        wm_agg_t *out);

static int env_behaviour(void *ctx, const wm_counter_spec_t *spec, int32_t from_day, int32_t to_day,
                         wm_agg_t *out)
{
    uctx_t *u = ctx;
    if (u->preview && !spec_maintained(u->t, spec))
        return counter_scan(ctx, spec, from_day, to_day, out);
    ucache_t *c = u->cache;
    for (uint32_t i = 0; c && i < c->n_aggs; i++)
        if (c->aggs[i].spec == spec && c->aggs[i].from == from_day && c->aggs[i].to == to_day) {
            *out = c->aggs[i].agg;
            return 0;
        }
    unsigned char kb[16];
    MDB_val k = {cnt_key(kb, u->user_id, spec->key), kb}, v;
    memset(out, 0, sizeof *out);
    int rc = mdb_get(u->t->txn, u->t->rt->cnt, &k, &v) ? 0 : wm_buckets_query(v.mv_data, v.mv_size, from_day, to_day, out);
    if (!rc && c && c->n_aggs < UC_AGGS)
        c->aggs[c->n_aggs++] = (uc_agg_t){.spec = spec, .from = from_day, .to = to_day, .agg = *out};
    return rc;
}

int wm__aud_user_events(wm_aud_t *a, MDB_txn *txn, wm_arena_t *arena, uint64_t user_id,
                        int64_t from_ms, int64_t to_ms,
                        int (*cb)(void *cbctx, const wm_json_t *event), void *cbctx)
{
    if (!a->host.read_event)
        return 0;
    MDB_cursor *c;
    if (mdb_cursor_open(txn, a->host.dbi_events, &c))
        return WM_EIO;
    unsigned char kb[16];
    wm_put_be64(kb, user_id);
    wm_put_be64(kb + 8, (uint64_t)from_ms ^ (1ull << 63));
    MDB_val k = {16, kb}, v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE), stop = 0;
    uint32_t seen = 0;
    while (rc == 0 && !stop && k.mv_size == 24 && seen++ < WM_AUD_SCAN_EVENTS_MAX) {
        uint64_t uid;
        int64_t tm;
        wm_log_pos_t pos;
        if (!wm_evidx_decode(&k, &v, &uid, &tm, &pos) || uid != user_id || tm >= to_ms)
            break;
        char *json = NULL;
        size_t len = 0;
        if (a->host.read_event(a->host.ctx, &pos, &json, &len) == 0) {
            wm_json_t *ev = parse_copy(arena, json, len);
            if (ev)
                stop = cb(cbctx, ev);
        }
        wm_free(json);
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    return 0;
}

static int env_events(void *ctx, int64_t from_ms, int64_t to_ms,
                      int (*cb)(void *cbctx, const wm_json_t *event), void *cbctx)
{
    uctx_t *u = ctx;
    return wm__aud_user_events(u->t->rt, u->t->txn, u->t->arena, u->user_id, from_ms, to_ms, cb, cbctx);
}

static const wm_json_t *env_item(void *ctx, const char *type, const char *id)
{
    uctx_t *u = ctx;
    wm_aud_t *a = u->t->rt;
    if (!a->host.item_get)
        return NULL;
    char *json = NULL;
    size_t len = 0;
    if (a->host.item_get(a->host.ctx, u->project, type, id, &json, &len))
        return NULL;
    const wm_json_t *v = parse_copy(u->t->arena, json, len);
    wm_free(json);
    return v;
}

/* A stored tag value (a_tag):
 *   u8 1 | u8 flags (1 share, 2 source) | i64 changed_ms | i64 aux_ms
 *   [f64 share] [u8 n, n bytes source] | the value as JSON text
 * Stores written before this form hold the JSON object
 * {"v":..,"t":..,"a":..[,"s":..][,"src":..]}, read as it is. Either way the
 * answer is that object, built in the arena. */
#define TAG_REC_FORMAT 1
#define TAG_REC_HEAD 18

static const wm_json_t *tag_decode(wm_arena_t *a, const void *data, size_t len)
{
    const unsigned char *b = data;
    if (!len || b[0] == '{')
        return parse_copy(a, data, len);
    if (len < TAG_REC_HEAD || b[0] != TAG_REC_FORMAT)
        return NULL;
    uint8_t flags = b[1];
    int64_t t, aux;
    double share = 0;
    memcpy(&t, b + 2, 8);
    memcpy(&aux, b + 10, 8);
    size_t off = TAG_REC_HEAD, srcl = 0;
    const char *src = NULL;
    if (flags & 1) {
        if (len < off + 8)
            return NULL;
        memcpy(&share, b + off, 8);
        off += 8;
    }
    if (flags & 2) {
        if (len < off + 1 || len < off + 1 + b[off])
            return NULL;
        srcl = b[off];
        src = (const char *)b + off + 1;
        off += 1 + srcl;
    }
    wm_json_t *o = wm_json_new(a, WM_JSON_OBJECT);
    wm_json_t *v = parse_copy(a, b + off, len - off);
    if (!o || !v || wm_json_append(a, o, "v", v) || wm_json_append(a, o, "t", wm_json_new_int(a, t)) ||
        wm_json_append(a, o, "a", wm_json_new_int(a, aux)))
        return NULL;
    if ((flags & 1) && wm_json_append(a, o, "s", wm_json_new_num(a, share)))
        return NULL;
    if ((flags & 2) && wm_json_append(a, o, "src", wm_json_new_str(a, src, srcl)))
        return NULL;
    return o;
}

static const wm_json_t *tag_record(wm_atx_t *t, uint64_t user_id, const char *key)
{
    unsigned char kb[8 + WM_AUD_KEY_MAX + 1];
    size_t kl = strlen(key);
    if (kl > WM_AUD_KEY_MAX)
        return NULL;
    wm_put_be64(kb, user_id);
    memcpy(kb + 8, key, kl);
    MDB_val k = {8 + kl, kb}, v;
    if (mdb_get(t->txn, t->rt->tag, &k, &v))
        return NULL;
    return tag_decode(t->arena, v.mv_data, v.mv_size);
}

const wm_json_t *wm__aud_tag_get(wm_atx_t *t, uint64_t user_id, const char *key)
{
    return wm_json_get(tag_record(t, user_id, key), "v");
}

static const wm_json_t *tag_record_u(uctx_t *u, const char *key)
{
    ucache_t *c = u->cache;
    for (uint32_t i = 0; c && i < c->n_tags; i++)
        if (!strcmp(c->tags[i].key, key))
            return c->tags[i].rec;
    const wm_json_t *rec = tag_record(u->t, u->user_id, key);
    if (c && c->n_tags < UC_TAGS)
        c->tags[c->n_tags++] = (uc_tag_t){.key = key, .rec = rec};
    return rec;
}

static void tag_cache_forget(uctx_t *u, const char *key)
{
    ucache_t *c = u->cache;
    for (uint32_t i = 0; c && i < c->n_tags; i++)
        if (!strcmp(c->tags[i].key, key)) {
            c->tags[i] = c->tags[--c->n_tags];
            return;
        }
}

int wm__aud_tags_object(wm_atx_t *t, uint64_t user_id, wm_buf_t *out)
{
    MDB_cursor *c;
    if (mdb_cursor_open(t->txn, t->rt->tag, &c))
        return WM_EIO;
    unsigned char kb[8];
    wm_put_be64(kb, user_id);
    MDB_val k = {8, kb}, v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    bool first = true;
    wm_buf_putc(out, '{');
    while (rc == 0 && k.mv_size > 8 && wm_get_be64(k.mv_data) == user_id) {
        const wm_json_t *val = wm_json_get(tag_decode(t->arena, v.mv_data, v.mv_size), "v");
        if (val && val->type != WM_JSON_NULL) {
            if (!first)
                wm_buf_putc(out, ',');
            first = false;
            wm_buf_json_str(out, (const char *)k.mv_data + 8, k.mv_size - 8);
            wm_buf_putc(out, ':');
            wm_json_write(out, val);
        }
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    wm_buf_putc(out, '}');
    mdb_cursor_close(c);
    return out->err;
}

static const wm_json_t *env_tag(void *ctx, const char *tag)
{
    uctx_t *u = ctx;
    return wm_json_get(tag_record_u(u, tag), "v");
}

static int64_t useg_since(MDB_txn *txn, MDB_dbi dbi, uint64_t user_id, uint32_t seg_id)
{
    unsigned char kb[12];
    wm_put_be64(kb, user_id);
    put_be32(kb + 8, seg_id);
    MDB_val k = {12, kb}, v;
    if (mdb_get(txn, dbi, &k, &v) || v.mv_size < 8)
        return 0;
    int64_t since;
    memcpy(&since, v.mv_data, 8);
    return since ? since : 1;
}

/* All memberships of the user in one range read (a_useg user prefix), by
 * segment index. */
static void members_load(uctx_t *u)
{
    ucache_t *c = u->cache;
    const wm_asnap_t *s = u->t->snap;
    c->mem_loaded = true;
    c->since = wm_arena_alloc(u->t->arena, (s->n_segs + 1) * sizeof *c->since);
    if (!c->since)
        return;
    memset(c->since, 0, (s->n_segs + 1) * sizeof *c->since);
    MDB_cursor *cur;
    if (mdb_cursor_open(u->t->txn, u->t->rt->useg, &cur)) {
        c->since = NULL;
        return;
    }
    unsigned char kb[8];
    wm_put_be64(kb, u->user_id);
    MDB_val k = {8, kb}, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size == 12 && wm_get_be64(k.mv_data) == u->user_id) {
        uint32_t id = get_be32((const unsigned char *)k.mv_data + 8);
        if (id <= s->max_seg_id && s->seg_ix_by_id[id] >= 0) {
            int64_t since = 1;
            if (v.mv_size >= 8)
                memcpy(&since, v.mv_data, 8);
            c->since[s->seg_ix_by_id[id]] = since ? since : 1;
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
}

static int64_t member_since_u(uctx_t *u, uint32_t id)
{
    ucache_t *c = u->cache;
    const wm_asnap_t *s = u->t->snap;
    if (c && !c->mem_loaded)
        members_load(u);
    if (!c || !c->since || id > s->max_seg_id || s->seg_ix_by_id[id] < 0)
        return useg_since(u->t->txn, u->t->rt->useg, u->user_id, id);
    return c->since[s->seg_ix_by_id[id]];
}

static void member_cache_set(uctx_t *u, uint32_t id, int64_t since)
{
    ucache_t *c = u->cache;
    const wm_asnap_t *s = u->t->snap;
    if (c && c->since && id <= s->max_seg_id && s->seg_ix_by_id[id] >= 0)
        c->since[s->seg_ix_by_id[id]] = since;
}

static bool env_in_segment(void *ctx, const char *key)
{
    uctx_t *u = ctx;
    const wm_aseg_t *g = wm__areg_seg(u->t->snap, u->project, key);
    return g && member_since_u(u, g->id) != 0;
}

bool wm__aud_in_segment(wm_atx_t *t, uint64_t user_id, const char *project, const char *key)
{
    const wm_aseg_t *g = wm__areg_seg(t->snap, project, key);
    return g && useg_since(t->txn, t->rt->useg, user_id, g->id) != 0;
}

/* The profile, parsed the first time a definition reads it (most events
 * touch only behaviour). */
static const wm_json_t *uctx_profile(uctx_t *u)
{
    if (!u->profile_parsed) {
        u->profile_parsed = true;
        u->profile = u->profile_raw ? parse_copy(u->t->arena, u->profile_raw, u->profile_len) : NULL;
    }
    return u->profile;
}

static void env_init(wm_cond_env_t *env, uctx_t *u)
{
    memset(env, 0, sizeof *env);
    env->profile = uctx_profile(u);
    env->event = u->event;
    env->now_ms = u->t->now_ms;
    env->tz_offset_min = u->tz_min;
    env->ctx = u;
    env->item = env_item;
    env->behaviour = env_behaviour;
    env->events = env_events;
    env->in_segment = env_in_segment;
    env->tag = env_tag;
}

static bool eval(uctx_t *u, const wm_cond_t *c)
{
    if (!c)
        return true;
    wm_cond_env_t env;
    env_init(&env, u);
    bool r = false;
    return wm_cond_eval(c, &env, &r) == 0 && r;
}

/* ---- counters ---- */

static int counter_add(uctx_t *u, const wm_counter_spec_t *spec, const wm_json_t *event)
{
    double value = 0;
    const char *dv = NULL;
    if (!wm_counter_match(spec, event, &value, &dv))
        return 0;
    const wm_json_t *tm = wm_json_get(event, "time");
    int64_t time_ms = tm && tm->is_int ? tm->i64 : u->t->now_ms;
    unsigned char kb[16], blob[WM_BUCKETS_BYTES_MAX];
    MDB_val k = {cnt_key(kb, u->user_id, spec->key), kb}, v;
    size_t len = 0;
    if (mdb_get(u->t->txn, u->t->rt->cnt, &k, &v) == 0 && v.mv_size <= sizeof blob) {
        memcpy(blob, v.mv_data, v.mv_size);
        len = v.mv_size;
    }
    if (wm_buckets_add(blob, &len, local_day(time_ms, u->tz_min), value, dv))
        return 0;
    v.mv_size = len;
    v.mv_data = blob;
    return mdb_rc(mdb_put(u->t->txn, u->t->rt->cnt, &k, &v, 0));
}

/* Rebuilds the counter blob of one spec from the user's events of the
 * last WM_BUCKET_DAYS days (a definition published after the events). */
typedef struct rebuild {
    uctx_t *u;
    const wm_counter_spec_t *spec;
    unsigned char *blob;
    size_t len;
} rebuild_t;

static int rebuild_cb(void *ctx, const wm_json_t *ev)
{
    rebuild_t *r = ctx;
    const char *name = wm_json_str(wm_json_get(ev, "event"));
    if (!name || strcmp(name, r->spec->event))
        return 0;
    double value = 0;
    const char *dv = NULL;
    if (!wm_counter_match(r->spec, ev, &value, &dv))
        return 0;
    const wm_json_t *tm = wm_json_get(ev, "time");
    if (tm && tm->is_int)
        wm_buckets_add(r->blob, &r->len, local_day(tm->i64, r->u->tz_min), value, dv);
    return 0;
}

/* A counter nobody keeps (a preview of a new did-clause): the same blob
 * built from the user's events of the window, then queried. */
static int counter_scan(void *ctx, const wm_counter_spec_t *spec, int32_t from_day, int32_t to_day,
                        wm_agg_t *out)
{
    uctx_t *u = ctx;
    unsigned char blob[WM_BUCKETS_BYTES_MAX];
    rebuild_t r = {.u = u, .spec = spec, .blob = blob, .len = 0};
    int64_t from = (int64_t)from_day * 86400000 - (int64_t)u->tz_min * 60000;
    int64_t to = (int64_t)(to_day + 1) * 86400000 - (int64_t)u->tz_min * 60000;
    memset(out, 0, sizeof *out);
    int rc = env_events(u, from, to, rebuild_cb, &r);
    return rc ? rc : wm_buckets_query(blob, r.len, from_day, to_day, out);
}

static int counter_rebuild(uctx_t *u, const wm_counter_spec_t *spec)
{
    unsigned char blob[WM_BUCKETS_BYTES_MAX];
    rebuild_t r = {.u = u, .spec = spec, .blob = blob, .len = 0};
    int64_t from = u->t->now_ms - (int64_t)WM_BUCKET_DAYS * 86400000;
    int rc = env_events(u, from, INT64_MAX, rebuild_cb, &r);
    if (rc)
        return rc;
    unsigned char kb[16];
    MDB_val k = {cnt_key(kb, u->user_id, spec->key), kb}, v = {r.len, blob};
    if (!r.len) {
        rc = mdb_del(u->t->txn, u->t->rt->cnt, &k, NULL);
        return rc == MDB_NOTFOUND ? 0 : mdb_rc(rc);
    }
    return mdb_rc(mdb_put(u->t->txn, u->t->rt->cnt, &k, &v, 0));
}

/* ---- tag values ---- */

/* The stored record of a tag value: {"v":value,"t":changed_ms,"a":aux_ms,"s":share}. */
static int tag_store(uctx_t *u, const wm_atag_t *tg, const wm_json_t *value, int64_t aux_ms,
                     double share, bool has_share, const char *source, bool *changed)
{
    wm_atx_t *t = u->t;
    const wm_json_t *old = tag_record_u(u, tg->key);
    const wm_json_t *ov = wm_json_get(old, "v");
    wm_buf_t nv, ovb;
    wm_buf_init(&nv, 0);
    wm_buf_init(&ovb, 0);
    if (value)
        wm_json_write(&nv, value);
    if (ov)
        wm_json_write(&ovb, ov);
    bool same_value = nv.len == ovb.len && (nv.len == 0 || !memcmp(nv.data, ovb.data, nv.len));
    const wm_json_t *oa = wm_json_get(old, "a");
    int64_t old_aux = oa && oa->is_int ? oa->i64 : 0;
    *changed = !same_value;
    int rc = nv.err || ovb.err ? WM_ENOMEM : 0;
    if (rc || (same_value && old_aux == aux_ms && !has_share))
        goto done;
    unsigned char kb[8 + WM_AUD_KEY_MAX + 1];
    size_t kl = strlen(tg->key);
    wm_put_be64(kb, u->user_id);
    memcpy(kb + 8, tg->key, kl);
    MDB_val k = {8 + kl, kb};
    if (!value && !aux_ms) {
        int r = mdb_del(t->txn, t->rt->tag, &k, NULL);
        rc = r == MDB_NOTFOUND ? 0 : mdb_rc(r);
    } else {
        const wm_json_t *ot = wm_json_get(old, "t");
        int64_t changed_ms = same_value && ot && ot->is_int ? ot->i64 : t->now_ms;
        size_t srcl = source ? strlen(source) : 0;
        if (srcl > 255)
            srcl = 255;
        unsigned char head[TAG_REC_HEAD + 8 + 256];
        size_t hl = TAG_REC_HEAD;
        head[0] = TAG_REC_FORMAT;
        head[1] = (unsigned char)((has_share ? 1 : 0) | (source ? 2 : 0));
        memcpy(head + 2, &changed_ms, 8);
        memcpy(head + 10, &aux_ms, 8);
        if (has_share) {
            memcpy(head + hl, &share, 8);
            hl += 8;
        }
        if (source) {
            head[hl++] = (unsigned char)srcl;
            memcpy(head + hl, source, srcl);
            hl += srcl;
        }
        wm_buf_t rec;
        wm_buf_init(&rec, 0);
        wm_buf_append(&rec, head, hl);
        if (nv.len)
            wm_buf_append(&rec, nv.data, nv.len);
        else
            wm_buf_puts(&rec, "null");
        MDB_val v = {rec.len, rec.data};
        rc = rec.err ? WM_ENOMEM : mdb_rc(mdb_put(t->txn, t->rt->tag, &k, &v, 0));
        wm_buf_release(&rec);
    }
    if (rc || same_value)
        goto done;
    /* index by tag (distribution) and history (value at a time) */
    {
        size_t pl = strlen(u->project);
        unsigned char ib[256 + WM_AUD_KEY_MAX + 10];
        if (pl <= 255) {
            memcpy(ib, u->project, pl);
            ib[pl] = 0;
            memcpy(ib + pl + 1, tg->key, kl);
            ib[pl + 1 + kl] = 0;
            wm_put_be64(ib + pl + 2 + kl, u->user_id);
            MDB_val ik = {pl + 10 + kl, ib};
            if (value) {
                MDB_val iv = {nv.len, nv.data};
                rc = mdb_rc(mdb_put(t->txn, t->rt->tagidx, &ik, &iv, 0));
            } else {
                int r = mdb_del(t->txn, t->rt->tagidx, &ik, NULL);
                rc = r == MDB_NOTFOUND ? 0 : mdb_rc(r);
            }
        }
        unsigned char hb[8 + WM_AUD_KEY_MAX + 1 + 8];
        wm_put_be64(hb, u->user_id);
        memcpy(hb + 8, tg->key, kl);
        hb[8 + kl] = 0;
        wm_put_be64(hb + 9 + kl, (uint64_t)t->now_ms ^ (1ull << 63));
        MDB_val hk = {17 + kl, hb}, hv = {nv.len ? nv.len : 4, nv.len ? nv.data : (void *)"null"};
        if (!rc)
            rc = mdb_rc(mdb_put(t->txn, t->rt->taghist, &hk, &hv, 0));
    }
done:
    tag_cache_forget(u, tg->key);
    wm_buf_release(&nv);
    wm_buf_release(&ovb);
    return rc;
}

static wm_json_t *typed_value(wm_arena_t *a, wm_tag_type_t type, const char *text)
{
    if (!text)
        return NULL;
    if (type == WM_TAG_NUMBER) {
        char *end;
        double d = strtod(text, &end);
        return *end ? NULL : wm_json_new_num(a, d);
    }
    if (type == WM_TAG_BOOL)
        return wm_json_new(a, !strcmp(text, "true") ? WM_JSON_TRUE : WM_JSON_FALSE);
    return wm_json_new_str(a, text, strlen(text));
}

static wm_json_t *number_value(wm_arena_t *a, double d)
{
    if (!isfinite(d))
        return NULL;
    if (d == floor(d) && fabs(d) < 9e15)
        return wm_json_new_int(a, (int64_t)d);
    return wm_json_new_num(a, d);
}

static bool event_matches(uctx_t *u, const wm_tag_def_t *d, const wm_json_t *ev)
{
    const char *name = wm_json_str(wm_json_get(ev, "event"));
    if (!name || (strcmp(d->event, "*") && strcmp(d->event, name)))
        return false;
    if (!d->where)
        return true;
    uctx_t w = *u;
    w.event = ev;
    return eval(&w, d->where);
}

/* Preference: the most frequent value of the field over the window, by
 * scanning the user's events (exact; bounded by WM_AUD_SCAN_EVENTS_MAX). */
typedef struct pref {
    uctx_t *u;
    const wm_tag_def_t *d;
    const char *vals[WM_AUD_PREF_VALUES_MAX];
    uint32_t counts[WM_AUD_PREF_VALUES_MAX];
    uint32_t n, total;
} pref_t;

/* Preference counts kept per (user, tag) in a_pref, so an event costs one
 * read-modify-write instead of a scan of the window:
 *   entries  i32 local day | u32 count | u16 len | value bytes
 * Entries older than the window are dropped on every write; a blob past
 * WM_AUD_PREF_BYTES_MAX drops its oldest days. */
#define PREF_HEAD 10

static size_t pref_key(unsigned char *kb, uint64_t user_id, const char *key)
{
    size_t kl = strlen(key);
    wm_put_be64(kb, user_id);
    memcpy(kb + 8, key, kl);
    return 8 + kl;
}

/* Walks the entries; false when the blob is malformed. */
static bool pref_valid(const unsigned char *b, size_t len)
{
    size_t off = 0;
    while (off < len) {
        if (len - off < PREF_HEAD)
            return false;
        uint16_t vl;
        memcpy(&vl, b + off + 8, 2);
        if (len - off - PREF_HEAD < vl)
            return false;
        off += PREF_HEAD + vl;
    }
    return true;
}

/* Removes entries before min_day and, while over the bound, the oldest day. */
static void pref_prune(unsigned char *b, size_t *len, int32_t min_day, size_t max_bytes)
{
    for (;;) {
        size_t off = 0, out = 0;
        int32_t oldest = INT32_MAX;
        while (off < *len) {
            int32_t day;
            uint16_t vl;
            memcpy(&day, b + off, 4);
            memcpy(&vl, b + off + 8, 2);
            size_t n = PREF_HEAD + vl;
            if (day >= min_day) {
                memmove(b + out, b + off, n);
                out += n;
                if (day < oldest)
                    oldest = day;
            }
            off += n;
        }
        *len = out;
        if (*len <= max_bytes || oldest == INT32_MAX)
            return;
        min_day = oldest + 1;
    }
}

static int pref_add(unsigned char *b, size_t *len, size_t cap, int32_t day, const char *v)
{
    size_t vl = strlen(v), off = 0;
    if (vl > 255)
        vl = 255;
    while (off < *len) {
        int32_t d;
        uint16_t l;
        memcpy(&d, b + off, 4);
        memcpy(&l, b + off + 8, 2);
        if (d == day && l == vl && !memcmp(b + off + PREF_HEAD, v, vl)) {
            uint32_t c;
            memcpy(&c, b + off + 4, 4);
            c++;
            memcpy(b + off + 4, &c, 4);
            return 0;
        }
        off += PREF_HEAD + l;
    }
    if (*len + PREF_HEAD + vl > cap)
        return WM_ELIMIT;
    uint32_t one = 1;
    uint16_t l16 = (uint16_t)vl;
    memcpy(b + *len, &day, 4);
    memcpy(b + *len + 4, &one, 4);
    memcpy(b + *len + 8, &l16, 2);
    memcpy(b + *len + PREF_HEAD, v, vl);
    *len += PREF_HEAD + vl;
    return 0;
}

/* The most frequent value over the entries (ties: the smaller text). */
static int pref_best(uctx_t *u, const unsigned char *b, size_t len, pref_t *p)
{
    size_t off = 0;
    while (off < len) {
        uint32_t c;
        uint16_t l;
        memcpy(&c, b + off + 4, 4);
        memcpy(&l, b + off + 8, 2);
        const char *v = (const char *)b + off + PREF_HEAD;
        uint32_t i;
        for (i = 0; i < p->n; i++)
            if (strlen(p->vals[i]) == l && !memcmp(p->vals[i], v, l))
                break;
        if (i == p->n && p->n < WM_AUD_PREF_VALUES_MAX) {
            p->vals[p->n] = wm_arena_strndup(u->t->arena, v, l);
            if (!p->vals[p->n])
                return WM_ENOMEM;
            p->counts[p->n++] = 0;
        }
        if (i < p->n) {
            p->counts[i] += c;
            p->total += c;
        }
        off += PREF_HEAD + l;
    }
    return 0;
}

static const char *pref_value_text(const wm_json_t *f, char *num, size_t cap)
{
    const char *s = wm_json_str(f);
    if (!s && f && f->type == WM_JSON_NUMBER) {
        snprintf(num, cap, "%.15g", f->u.num);
        s = num;
    }
    return s;
}

/* Rebuilds the counts from the user's events of the window (publish). */
typedef struct pref_scan {
    uctx_t *u;
    const wm_tag_def_t *d;
    unsigned char *b;
    size_t len, cap;
} pref_scan_t;

static int pref_scan_cb(void *ctx, const wm_json_t *ev)
{
    pref_scan_t *ps = ctx;
    if (!event_matches(ps->u, ps->d, ev))
        return 0;
    char num[40];
    const char *v = pref_value_text(wm_json_get(wm_json_get(ev, "properties"), ps->d->field), num, sizeof num);
    const wm_json_t *tm = wm_json_get(ev, "time");
    if (v && tm && tm->is_int && pref_add(ps->b, &ps->len, ps->cap, local_day(tm->i64, ps->u->tz_min), v)) {
        pref_prune(ps->b, &ps->len, local_day(tm->i64, ps->u->tz_min) - 1, ps->cap / 2);
        pref_add(ps->b, &ps->len, ps->cap, local_day(tm->i64, ps->u->tz_min), v);
    }
    return 0;
}

static int eval_preference(uctx_t *u, const wm_atag_t *tg, bool *changed)
{
    const wm_tag_def_t *d = tg->def;
    int32_t today = local_day(u->t->now_ms, u->tz_min);
    int32_t days = (int32_t)(d->within_ms / 86400000);
    int32_t min_day = today - days + 1;
    unsigned char kb[8 + WM_AUD_KEY_MAX], *b = wm_arena_alloc(u->t->arena, WM_AUD_PREF_BYTES_MAX + 300);
    if (!b)
        return WM_ENOMEM;
    size_t cap = WM_AUD_PREF_BYTES_MAX + 300, len = 0;
    MDB_val k = {pref_key(kb, u->user_id, tg->key), kb}, v;
    int rc = 0;
    if (u->rebuild) {
        pref_scan_t ps = {.u = u, .d = d, .b = b, .cap = cap};
        int64_t from = (int64_t)min_day * 86400000 - (int64_t)u->tz_min * 60000;
        if ((rc = env_events(u, from, INT64_MAX, pref_scan_cb, &ps)))
            return rc;
        len = ps.len;
    } else if (mdb_get(u->t->txn, u->t->rt->pref, &k, &v) == 0 && v.mv_size <= cap && pref_valid(v.mv_data, v.mv_size)) {
        memcpy(b, v.mv_data, v.mv_size);
        len = v.mv_size;
    }
    size_t before = len;
    bool wrote = u->rebuild;
    if (!u->rebuild && u->event && event_matches(u, d, u->event)) {
        char num[40];
        const char *val = pref_value_text(wm_json_get(wm_json_get(u->event, "properties"), d->field), num, sizeof num);
        const wm_json_t *tm = wm_json_get(u->event, "time");
        int32_t day = local_day(tm && tm->is_int ? tm->i64 : u->t->now_ms, u->tz_min);
        if (val && day >= min_day) {
            if (pref_add(b, &len, cap, day, val)) {
                pref_prune(b, &len, min_day, WM_AUD_PREF_BYTES_MAX / 2);
                pref_add(b, &len, cap, day, val);
            }
            wrote = true;
        }
    }
    pref_prune(b, &len, min_day, WM_AUD_PREF_BYTES_MAX);
    if (wrote || len != before) {
        v.mv_size = len;
        v.mv_data = b;
        int r = len ? mdb_put(u->t->txn, u->t->rt->pref, &k, &v, 0) : mdb_del(u->t->txn, u->t->rt->pref, &k, NULL);
        if (r && r != MDB_NOTFOUND)
            return mdb_rc(r);
    }
    pref_t p = {.u = u, .d = d};
    if ((rc = pref_best(u, b, len, &p)))
        return rc;
    int best = -1;
    for (uint32_t i = 0; i < p.n; i++)
        if (best < 0 || p.counts[i] > p.counts[best] ||
            (p.counts[i] == p.counts[best] && strcmp(p.vals[i], p.vals[best]) < 0))
            best = (int)i;
    wm_json_t *val = best < 0 ? NULL : typed_value(u->t->arena, d->type, p.vals[best]);
    double share = best < 0 || !p.total ? 0 : (double)p.counts[best] / p.total;
    return tag_store(u, tg, val, 0, share, best >= 0, "preference", changed);
}

static double agg_pick(const wm_agg_t *g, wm_metric_agg_t agg)
{
    switch (agg) {
    case WM_METRIC_COUNT: return (double)g->count;
    case WM_METRIC_SUM: return g->sum;
    case WM_METRIC_AVG: return g->count ? g->sum / (double)g->count : NAN;
    case WM_METRIC_MIN: return g->count ? g->min : NAN;
    case WM_METRIC_MAX: return g->count ? g->max : NAN;
    case WM_METRIC_DISTINCT: return (double)g->distinct;
    default: return NAN;
    }
}

/* Exact distinct over the window by a scan, for days whose buckets could
 * not keep their whole set (a very busy customer). */
typedef struct distinct_scan {
    const wm_counter_spec_t *spec;
    wm_strmap_t seen;
    int err;
} distinct_scan_t;

static int distinct_cb(void *ctx, const wm_json_t *ev)
{
    distinct_scan_t *ds = ctx;
    const char *name = wm_json_str(wm_json_get(ev, "event"));
    double value;
    const char *dv = NULL;
    if (!name || strcmp(name, ds->spec->event) || !wm_counter_match(ds->spec, ev, &value, &dv) || !dv)
        return 0;
    if (!wm_strmap_get(&ds->seen, dv, strlen(dv), NULL) && wm_strmap_put(&ds->seen, dv, strlen(dv), 1)) {
        ds->err = WM_ENOMEM;
        return 1;
    }
    return 0;
}

static int distinct_exact(uctx_t *u, const wm_counter_spec_t *spec, int32_t from_day, int32_t to_day, uint64_t *n)
{
    distinct_scan_t ds = {.spec = spec};
    wm_strmap_init(&ds.seen);
    int64_t from = (int64_t)from_day * 86400000 - (int64_t)u->tz_min * 60000;
    int64_t to = (int64_t)(to_day + 1) * 86400000 - (int64_t)u->tz_min * 60000;
    int rc = env_events(u, from, to, distinct_cb, &ds);
    *n = ds.seen.count;
    wm_strmap_release(&ds.seen);
    return rc ? rc : ds.err;
}

static int eval_metric(uctx_t *u, const wm_atag_t *tg, bool *changed)
{
    const wm_tag_def_t *d = tg->def;
    wm_arena_t *a = u->t->arena;
    int32_t today = local_day(u->t->now_ms, u->tz_min);
    double x = NAN;
    int64_t aux = 0;
    if (d->agg == WM_METRIC_DAYS_SINCE) {
        const wm_json_t *rec = tag_record_u(u, tg->key);
        const wm_json_t *ra = wm_json_get(rec, "a");
        aux = ra && ra->is_int ? ra->i64 : 0;
        if (u->event && event_matches(u, d, u->event)) {
            const wm_json_t *tm = wm_json_get(u->event, "time");
            int64_t et = tm && tm->is_int ? tm->i64 : u->t->now_ms;
            if (et > aux)
                aux = et;
        }
        if (aux)
            x = (double)(today - local_day(aux, u->tz_min));
    } else {
        const wm_counter_spec_t *specs;
        uint32_t n;
        wm_cond_counters(d->metric_cond, &specs, &n);
        if (!n)
            return 0;
        wm_agg_t g;
        int32_t days = (int32_t)(d->within_ms / 86400000);
        int rc = env_behaviour(u, &specs[0], today - days + 1, today, &g);
        if (!rc && d->agg == WM_METRIC_DISTINCT && !g.distinct_exact)
            rc = distinct_exact(u, &specs[0], today - days + 1, today, &g.distinct);
        if (rc)
            return rc;
        x = agg_pick(&g, d->agg);
        if (d->agg != WM_METRIC_COUNT && d->agg != WM_METRIC_SUM && d->agg != WM_METRIC_DISTINCT &&
            !g.count)
            x = NAN;
    }
    wm_json_t *v = NULL;
    if (isfinite(x)) {
        const char *bucket = wm_tag_bucket_of(d, x);
        v = d->n_buckets ? (bucket ? wm_json_new_str(a, bucket, strlen(bucket)) : NULL)
                         : number_value(a, x);
    }
    return tag_store(u, tg, v, aux, 0, false, NULL, changed);
}

static int eval_first_last(uctx_t *u, const wm_atag_t *tg, bool *changed)
{
    const wm_tag_def_t *d = tg->def;
    *changed = false;
    if (!u->event || !event_matches(u, d, u->event))
        return 0;
    const wm_json_t *f = wm_json_get(wm_json_get(u->event, "properties"), d->field);
    if (!f || f->type == WM_JSON_NULL)
        return 0;
    const wm_json_t *tm = wm_json_get(u->event, "time");
    int64_t et = tm && tm->is_int ? tm->i64 : u->t->now_ms;
    const wm_json_t *rec = tag_record_u(u, tg->key);
    const wm_json_t *ra = wm_json_get(rec, "a");
    if (rec && ra && ra->is_int) {
        /* first keeps the earliest event's value, last the latest's (late
         * events from offline SDK queues arrive out of order) */
        if (d->kind == WM_TAG_FIRST ? et >= ra->i64 : et < ra->i64)
            return 0;
    }
    wm_json_t *v = wm_arena_alloc(u->t->arena, sizeof *v);
    if (!v)
        return WM_ENOMEM;
    *v = *f;
    v->next = NULL;
    return tag_store(u, tg, v, et, 0, false, NULL, changed);
}

static int eval_rule(uctx_t *u, const wm_atag_t *tg, bool *changed)
{
    const wm_tag_def_t *d = tg->def;
    const char *val = d->default_value;
    for (uint32_t i = 0; i < d->n_layers; i++)
        if (eval(u, d->layers[i].cond)) {
            val = d->layers[i].value;
            break;
        }
    return tag_store(u, tg, typed_value(u->t->arena, d->type, val), 0, 0, false, NULL, changed);
}

/* Computes a tag for the user; *changed when its value moved. Imported and
 * manual tags only change by their commands. */
static int eval_tag(uctx_t *u, const wm_atag_t *tg, bool *changed)
{
    *changed = false;
    switch (tg->def->kind) {
    case WM_TAG_RULE: return eval_rule(u, tg, changed);
    case WM_TAG_METRIC: return eval_metric(u, tg, changed);
    case WM_TAG_FIRST:
    case WM_TAG_LAST: return eval_first_last(u, tg, changed);
    case WM_TAG_PREFERENCE: return eval_preference(u, tg, changed);
    default: return 0;
    }
}

/* ---- segment membership ---- */

static int op_segment(uctx_t *u, const wm_aseg_t *g, bool entered, const char *reason)
{
    wm_aud_t *a = u->t->rt;
    if (!a->host.op_event)
        return 0;
    wm_buf_t b;
    wm_buf_init(&b, 0);
    wm_buf_puts(&b, "{\"segment\":");
    wm_buf_json_str(&b, g->key, strlen(g->key));
    if (g->def->name) {
        wm_buf_puts(&b, ",\"segment_name\":");
        wm_buf_json_str(&b, g->def->name, strlen(g->def->name));
    }
    /* no printf on this path: every membership change comes through here */
    wm_buf_puts(&b, ",\"segment_id\":");
    wm_buf_put_i64(&b, g->id);
    wm_buf_puts(&b, ",\"segment_version\":");
    wm_buf_put_i64(&b, g->version);
    wm_buf_puts(&b, ",\"reason\":");
    wm_buf_json_str(&b, reason, strlen(reason));
    wm_buf_putc(&b, '}');
    int rc = b.err ? WM_ENOMEM
                   : a->host.op_event(u->t->op_ctx, u->user_id, u->project,
                                      entered ? "$SegmentEntered" : "$SegmentExited", b.data);
    wm_buf_release(&b);
    return rc;
}

static int member_set(uctx_t *u, const wm_aseg_t *g, bool in, const char *reason, bool *changed)
{
    wm_atx_t *t = u->t;
    int64_t since = member_since_u(u, g->id);
    *changed = (since != 0) != in;
    if (!*changed)
        return 0;
    unsigned char uk[12], mk[12];
    wm_put_be64(uk, u->user_id);
    put_be32(uk + 8, g->id);
    put_be32(mk, g->id);
    wm_put_be64(mk + 4, u->user_id);
    MDB_val ukv = {12, uk}, mkv = {12, mk};
    int rc;
    if (in) {
        unsigned char val[12];
        memcpy(val, &t->now_ms, 8);
        memcpy(val + 8, &g->version, 4);
        MDB_val v = {12, val};
        rc = mdb_rc(mdb_put(t->txn, t->rt->useg, &ukv, &v, 0));
        if (!rc)
            rc = mdb_rc(mdb_put(t->txn, t->rt->member, &mkv, &v, 0));
    } else {
        int r1 = mdb_del(t->txn, t->rt->useg, &ukv, NULL);
        int r2 = mdb_del(t->txn, t->rt->member, &mkv, NULL);
        rc = (r1 && r1 != MDB_NOTFOUND) || (r2 && r2 != MDB_NOTFOUND) ? WM_EIO : 0;
    }
    if (!rc)
        member_cache_set(u, g->id, in ? t->now_ms : 0);
    if (!rc)
        rc = delta_add(t, g->id, u->user_id, in);
    if (!rc)
        rc = op_segment(u, g, in, reason);
    return rc;
}

static bool eval_segment(uctx_t *u, const wm_aseg_t *g)
{
    const wm_segment_def_t *d = g->def;
    switch (d->kind) {
    case WM_SEGMENT_RULE: return eval(u, d->cond);
    case WM_SEGMENT_UNION:
        for (uint32_t i = 0; i < d->n_operands; i++)
            if (env_in_segment(u, d->operands[i]))
                return true;
        return false;
    case WM_SEGMENT_INTERSECT:
        for (uint32_t i = 0; i < d->n_operands; i++)
            if (!env_in_segment(u, d->operands[i]))
                return false;
        return d->n_operands > 0;
    case WM_SEGMENT_EXCEPT:
        if (!d->n_operands || !env_in_segment(u, d->operands[0]))
            return false;
        for (uint32_t i = 1; i < d->n_operands; i++)
            if (env_in_segment(u, d->operands[i]))
                return false;
        return true;
    default: return false;
    }
}

/* ---- the cascade for one record ---- */

static int settle(uctx_t *u, const char *reason)
{
    const wm_asnap_t *s = u->t->snap;
    int rc = 0;
    for (uint32_t i = 0; i < s->n_tags && !rc; i++) {
        const wm_atag_t *tg = s->tags[i];
        if (!u->tag_dirty[i] || strcmp(tg->project, u->project))
            continue;
        bool changed = false;
        rc = eval_tag(u, tg, &changed);
        if (rc || !changed)
            continue;
        for (uint32_t k = 0; k < tg->n_dep_tags; k++)
            u->tag_dirty[tg->dep_tags[k]] = true;
        for (uint32_t k = 0; k < tg->n_dep_segs; k++)
            u->seg_dirty[tg->dep_segs[k]] = true;
    }
    for (uint32_t i = 0; i < s->n_segs && !rc; i++) {
        const wm_aseg_t *g = s->segs[i];
        if (!u->seg_dirty[i] || strcmp(g->project, u->project))
            continue;
        if (g->def->kind == WM_SEGMENT_STATIC)
            continue;
        bool changed = false;
        rc = member_set(u, g, eval_segment(u, g), reason, &changed);
        if (rc || !changed)
            continue;
        for (uint32_t k = 0; k < g->n_dep_segs; k++)
            u->seg_dirty[g->dep_segs[k]] = true;
    }
    return rc;
}

static int uctx_init(uctx_t *u, wm_atx_t *t, uint64_t user_id, const char *project,
                     const wm_json_t *event)
{
    const wm_asnap_t *s = t->snap;
    memset(u, 0, sizeof *u);
    u->t = t;
    u->user_id = user_id;
    u->project = project;
    u->event = event;
    /* the zone is all most events need of the profile: read that member only */
    unsigned char kb[8];
    wm_put_be64(kb, user_id);
    MDB_val k = {8, kb}, v;
    wm_json_t *tzv = NULL;
    if (mdb_get(t->txn, t->rt->host.dbi_profiles, &k, &v) == 0) {
        u->profile_raw = wm_arena_strndup(t->arena, v.mv_data, v.mv_size);
        u->profile_len = v.mv_size;
        const char *raw;
        size_t rl;
        if (u->profile_raw && wm_json_find_member(u->profile_raw, u->profile_len, "timezone", &raw, &rl) == 0) {
            wm_json_t *o = wm_json_new(t->arena, WM_JSON_OBJECT);
            wm_json_t *val = parse_copy(t->arena, raw, rl);
            if (o && val && wm_json_append(t->arena, o, "timezone", val) == 0)
                tzv = o;
        }
    }
    u->tz_min = tz_offset(t->rt, tzv, t->now_ms);
    u->tag_dirty = wm_arena_alloc(t->arena, s->n_tags + 1);
    u->seg_dirty = wm_arena_alloc(t->arena, s->n_segs + 1);
    u->cache = wm_arena_alloc(t->arena, sizeof *u->cache);
    if (!u->tag_dirty || !u->seg_dirty || !u->cache)
        return WM_ENOMEM;
    u->cache->n_aggs = u->cache->n_tags = 0;
    u->cache->since = NULL;
    u->cache->mem_loaded = false;
    memset(u->tag_dirty, 0, s->n_tags + 1);
    memset(u->seg_dirty, 0, s->n_segs + 1);
    return 0;
}

static void mark(uctx_t *u, const wm_adeps_t *d)
{
    for (uint32_t i = 0; i < d->n_tags; i++)
        u->tag_dirty[d->tags[i]] = true;
    for (uint32_t i = 0; i < d->n_segs; i++)
        u->seg_dirty[d->segs[i]] = true;
}

/* ---- the recommendation index ----
 *
 * Purchases feed two counts per project and item type, kept per partition
 * (each for its own customers; queries add the partitions up):
 *   'u' user u64be item            -> 1     what the customer bought
 *   'p' project \0 type \0 item    -> u64   customers who bought the item
 *   'c' project \0 type \0 a \0 b  -> u64   customers who bought both a and b
 * A customer counts once per item however often they buy it. */

static const char *const REC_BUY_EVENTS[] = {"SubscribeFund", "StartSIP", "BuyFund", "PurchaseProduct", NULL};

static bool rec_buy_event(const char *name)
{
    for (const char *const *p = REC_BUY_EVENTS; *p; p++)
        if (!strcmp(*p, name))
            return true;
    return false;
}

static int rec_bump(wm_atx_t *t, const unsigned char *k, size_t kl)
{
    MDB_val key = {kl, (void *)k}, v;
    uint64_t n = 0;
    if (mdb_get(t->txn, t->rt->rec, &key, &v) == 0 && v.mv_size == 8)
        memcpy(&n, v.mv_data, 8);
    n++;
    v.mv_size = 8;
    v.mv_data = &n;
    return mdb_rc(mdb_put(t->txn, t->rt->rec, &key, &v, 0));
}

static size_t rec_key(unsigned char *kb, size_t cap, char kind, const char *project, const char *type,
                      const char *a, const char *b)
{
    size_t pl = strlen(project), tl = strlen(type), al = strlen(a), bl = b ? strlen(b) : 0;
    size_t need = 1 + pl + 1 + tl + 1 + al + (b ? 1 + bl : 0);
    if (need > cap)
        return 0;
    unsigned char *p = kb;
    *p++ = (unsigned char)kind;
    memcpy(p, project, pl), p += pl, *p++ = 0;
    memcpy(p, type, tl), p += tl, *p++ = 0;
    memcpy(p, a, al), p += al;
    if (b) {
        *p++ = 0;
        memcpy(p, b, bl), p += bl;
    }
    return (size_t)(p - kb);
}

static int rec_on_buy(wm_atx_t *t, uint64_t user_id, const char *project, const char *item)
{
    const char *type = "fund";
    size_t il = strlen(item);
    if (!il || il > 128)
        return 0;
    unsigned char uk[9 + 129];
    uk[0] = 'u';
    wm_put_be64(uk + 1, user_id);
    memcpy(uk + 9, item, il);
    MDB_val k = {9 + il, uk}, v;
    if (mdb_get(t->txn, t->rt->rec, &k, &v) == 0)
        return 0; /* bought before: counted */
    /* the other items this customer bought: one co-purchase pair each */
    MDB_cursor *c;
    if (mdb_cursor_open(t->txn, t->rt->rec, &c))
        return WM_EIO;
    MDB_val ck = {9, uk}, cv;
    int mrc = mdb_cursor_get(c, &ck, &cv, MDB_SET_RANGE), rc = 0;
    char others[WM_AUD_REC_HELD_MAX][129];
    uint32_t n = 0;
    while (mrc == 0 && n < WM_AUD_REC_HELD_MAX && ck.mv_size > 9 && ck.mv_size <= 9 + 128 &&
           !memcmp(ck.mv_data, uk, 9)) {
        memcpy(others[n], (const char *)ck.mv_data + 9, ck.mv_size - 9);
        others[n++][ck.mv_size - 9] = 0;
        mrc = mdb_cursor_get(c, &ck, &cv, MDB_NEXT);
    }
    mdb_cursor_close(c);
    MDB_val one = {1, "1"};
    if ((rc = mdb_rc(mdb_put(t->txn, t->rt->rec, &k, &one, 0))))
        return rc;
    unsigned char kb[600];
    size_t kl = rec_key(kb, sizeof kb, 'p', project, type, item, NULL);
    if (kl && (rc = rec_bump(t, kb, kl)))
        return rc;
    for (uint32_t i = 0; i < n && !rc; i++) {
        if ((kl = rec_key(kb, sizeof kb, 'c', project, type, others[i], item)))
            rc = rec_bump(t, kb, kl);
        if (!rc && (kl = rec_key(kb, sizeof kb, 'c', project, type, item, others[i])))
            rc = rec_bump(t, kb, kl);
    }
    return rc;
}

/* Whether an event feeds any definition, from its raw text: the event name
 * is read without parsing the record, and an event no counter, tag or
 * segment reads costs one lookup. */
const char *wm__aud_raw_event_name(const char *json, size_t len, char *buf, size_t cap)
{
    const char *v;
    size_t vl;
    if (wm_json_find_member(json, len, "event", &v, &vl) || vl < 2 || v[0] != '"' || vl - 2 >= cap ||
        memchr(v + 1, '\\', vl - 2))
        return NULL;
    memcpy(buf, v + 1, vl - 2);
    buf[vl - 2] = 0;
    return buf;
}

bool wm__aud_event_wanted(wm_aud_t *a, const char *name)
{
    const wm_asnap_t *s = wm__areg_snapshot(a->reg);
    if (!s || (!s->n_tags && !s->n_segs))
        return false;
    if (s->deps[0].n_tags || !name)
        return true; /* a first / last tag of every event; unusual text: let the parse decide */
    const wm_adeps_t *d = wm__areg_event_deps(s, name);
    return d->n_tags || d->n_segs || d->n_specs;
}

bool wm__aud_rec_candidate(const char *name)
{
    return name && rec_buy_event(name);
}

int wm__aud_on_event_rec(wm_atx_t *t, uint64_t user_id, const wm_json_t *event)
{
    const char *name = wm_json_str(wm_json_get(event, "event"));
    const char *project = wm_json_str(wm_json_get(event, "project"));
    if (!name || !project || !rec_buy_event(name))
        return 0;
    const wm_json_t *f = wm_json_get(wm_json_get(event, "properties"), "fund_code");
    const char *item = wm_json_str(f);
    char num[32];
    if (!item && f && f->type == WM_JSON_NUMBER && f->is_int) {
        snprintf(num, sizeof num, "%06lld", (long long)f->i64);
        item = num;
    }
    return item ? rec_on_buy(t, user_id, project, item) : 0;
}

/* Definitions an event cannot move are not evaluated for it: an event
 * older than every window the definition reads (a backfill, an offline SDK
 * queue), and a member of a segment that events can only make true. Their
 * counters were still updated; the clock pass and publish recomputes see
 * every definition. */
static void skip_unmoved(uctx_t *u, const wm_adeps_t *d, const wm_json_t *event)
{
    const wm_asnap_t *s = u->t->snap;
    const wm_json_t *tm = wm_json_get(event, "time");
    int32_t age = tm && tm->is_int ? local_day(u->t->now_ms, u->tz_min) - local_day(tm->i64, u->tz_min) : 0;
    for (uint32_t i = 0; i < d->n_tags; i++) {
        const wm_atag_t *tg = s->tags[d->tags[i]];
        if (tg->window_days >= 0 && age >= tg->window_days)
            u->tag_dirty[d->tags[i]] = false;
    }
    for (uint32_t i = 0; i < d->n_segs; i++) {
        const wm_aseg_t *g = s->segs[d->segs[i]];
        if ((g->window_days >= 0 && age >= g->window_days) ||
            (g->monotone && member_since_u(u, g->id) != 0))
            u->seg_dirty[d->segs[i]] = false;
    }
}

int wm__aud_on_event(wm_atx_t *t, uint64_t user_id, const wm_json_t *event)
{
    const wm_asnap_t *s = t->snap;
    if (!s || (!s->n_tags && !s->n_segs))
        return 0;
    const char *name = wm_json_str(wm_json_get(event, "event"));
    const char *project = wm_json_str(wm_json_get(event, "project"));
    if (!name || !project)
        return 0;
    const wm_adeps_t *d = wm__areg_event_deps(s, name);
    if (!d->n_tags && !d->n_segs && !d->n_specs && !s->deps[0].n_tags)
        return 0;
    uctx_t u;
    int rc = uctx_init(&u, t, user_id, project, event);
    for (uint32_t i = 0; i < d->n_specs && !rc; i++)
        rc = counter_add(&u, s->specs[d->specs[i]], event);
    if (rc)
        return rc;
    mark(&u, d);
    mark(&u, &s->deps[0]);
    skip_unmoved(&u, d, event);
    return settle(&u, "event");
}

int wm__aud_on_profile(wm_atx_t *t, uint64_t user_id, const char *project)
{
    const wm_asnap_t *s = t->snap;
    if (!s || !project || (!s->deps[1].n_tags && !s->deps[1].n_segs))
        return 0;
    uctx_t u;
    int rc = uctx_init(&u, t, user_id, project, NULL);
    if (rc)
        return rc;
    mark(&u, &s->deps[1]);
    return settle(&u, "profile");
}

/* ---- commands: manual and imported values, static lists ---- */

int wm__aud_tag_set(wm_atx_t *t, uint64_t user_id, const char *project, const char *key,
                    const wm_json_t *value, const char *source)
{
    const wm_asnap_t *s = t->snap;
    if (strlen(key) > WM_AUD_KEY_MAX)
        return WM_EINVAL;
    /* a journey's set_tag may name a tag nobody defined: it is kept as a
     * manual tag of that name (shown in customer 360, readable by {"tag"}) */
    wm_tag_def_t manual = {.key = (char *)key, .kind = WM_TAG_MANUAL};
    wm_atag_t adhoc = {.project = (char *)project, .key = (char *)key, .def = &manual};
    const wm_atag_t *tg = wm__areg_tag(s, project, key);
    uctx_t u;
    int rc = uctx_init(&u, t, user_id, project, NULL);
    if (rc)
        return rc;
    bool changed = false;
    rc = tag_store(&u, tg ? tg : &adhoc, value, 0, 0, false, source, &changed);
    if (rc || !changed || !tg)
        return rc;
    for (uint32_t k = 0; k < tg->n_dep_tags; k++)
        u.tag_dirty[tg->dep_tags[k]] = true;
    for (uint32_t k = 0; k < tg->n_dep_segs; k++)
        u.seg_dirty[tg->dep_segs[k]] = true;
    return settle(&u, "tag");
}

static int cmd_segment_list(wm_atx_t *t, uint64_t user_id, const wm_json_t *cmd)
{
    const char *project = wm_json_str(wm_json_get(cmd, "project"));
    const char *key = wm_json_str(wm_json_get(cmd, "segment"));
    const wm_json_t *in = wm_json_get(cmd, "member");
    if (!project || !key)
        return 0;
    const wm_aseg_t *g = wm__areg_seg(t->snap, project, key);
    if (!g)
        return 0;
    uctx_t u;
    int rc = uctx_init(&u, t, user_id, project, NULL);
    bool changed = false;
    if (!rc)
        rc = member_set(&u, g, !in || in->type != WM_JSON_FALSE, "list", &changed);
    if (rc || !changed)
        return rc;
    for (uint32_t k = 0; k < g->n_dep_segs; k++)
        u.seg_dirty[g->dep_segs[k]] = true;
    return settle(&u, "segment");
}

/* ---- background: recompute tasks and the clock pass ---- */

/* A task: recompute one definition (kind 't' / 's', id, version) for every
 * user of its project, or the clock pass ('c'). Stored in a_meta under
 * "task:" + kind + id (be32), value = the next user id to visit (u64). */
static size_t task_key(unsigned char *kb, char kind, uint32_t id)
{
    memcpy(kb, "task:", 5);
    kb[5] = (unsigned char)kind;
    put_be32(kb + 6, id);
    return 10;
}

static int task_put(wm_atx_t *t, char kind, uint32_t id, uint64_t next_user, uint32_t version)
{
    unsigned char kb[10], vb[12];
    memcpy(vb, &next_user, 8);
    memcpy(vb + 8, &version, 4);
    MDB_val k = {task_key(kb, kind, id), kb}, v = {12, vb};
    t->rt->tasks_pending = true;
    return mdb_rc(mdb_put(t->txn, t->rt->meta, &k, &v, 0));
}

static int task_del(wm_atx_t *t, char kind, uint32_t id)
{
    unsigned char kb[10];
    MDB_val k = {task_key(kb, kind, id), kb};
    int rc = mdb_del(t->txn, t->rt->meta, &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : mdb_rc(rc);
}

static bool spec_maintained(wm_atx_t *t, const wm_counter_spec_t *spec)
{
    unsigned char kb[13];
    memcpy(kb, "spec:", 5);
    wm_put_be64(kb + 5, wm_hash64(spec->key, strlen(spec->key), 0x636e74));
    MDB_val k = {13, kb}, v;
    return mdb_get(t->txn, t->rt->meta, &k, &v) == 0;
}

static int spec_mark(wm_atx_t *t, const wm_cond_t *c)
{
    const wm_counter_spec_t *specs;
    uint32_t n;
    wm_cond_counters(c, &specs, &n);
    int rc = 0;
    for (uint32_t i = 0; i < n && !rc; i++) {
        unsigned char kb[13];
        memcpy(kb, "spec:", 5);
        wm_put_be64(kb + 5, wm_hash64(specs[i].key, strlen(specs[i].key), 0x636e74));
        MDB_val k = {13, kb}, v = {1, "1"};
        rc = mdb_rc(mdb_put(t->txn, t->rt->meta, &k, &v, 0));
    }
    return rc;
}

static int rebuild_specs(uctx_t *u, const wm_cond_t *c)
{
    const wm_counter_spec_t *specs;
    uint32_t n;
    wm_cond_counters(c, &specs, &n);
    int rc = 0;
    for (uint32_t i = 0; i < n && !rc; i++)
        if (!spec_maintained(u->t, &specs[i]))
            rc = counter_rebuild(u, &specs[i]);
    return rc;
}

static int def_mark_specs(wm_atx_t *t, const wm_atag_t *tg, const wm_aseg_t *g)
{
    int rc = 0;
    if (tg) {
        for (uint32_t i = 0; i < tg->def->n_layers && !rc; i++)
            rc = spec_mark(t, tg->def->layers[i].cond);
        if (!rc && tg->def->metric_cond)
            rc = spec_mark(t, tg->def->metric_cond);
    } else if (g && g->def->cond) {
        rc = spec_mark(t, g->def->cond);
    }
    return rc;
}

/* Recomputes one definition (or, for the clock pass, every clock-moving
 * definition of the user's project) for one user. */
static int recompute_user(wm_atx_t *t, uint64_t user_id, const char *project, char kind,
                          const wm_atag_t *tg, const wm_aseg_t *g)
{
    const wm_asnap_t *s = t->snap;
    uctx_t u;
    int rc = uctx_init(&u, t, user_id, project, NULL);
    if (rc)
        return rc;
    u.rebuild = kind == 't';
    if (kind == 't' && tg) {
        for (uint32_t i = 0; i < tg->def->n_layers && !rc; i++)
            rc = rebuild_specs(&u, tg->def->layers[i].cond);
        if (!rc && tg->def->metric_cond)
            rc = rebuild_specs(&u, tg->def->metric_cond);
        if (!rc && tg->def->kind == WM_TAG_FIRST)
            rc = 0; /* first/last need the event stream: filled as events arrive */
        u.tag_dirty[tg->index] = true;
    } else if (kind == 's' && g && g->def->kind == WM_SEGMENT_STATIC && g->def->snapshot_of) {
        /* a snapshot: the source's members as of this recompute, then fixed */
        bool changed = false;
        rc = member_set(&u, g, env_in_segment(&u, g->def->snapshot_of), "snapshot", &changed);
        if (!rc && changed)
            for (uint32_t k = 0; k < g->n_dep_segs; k++)
                u.seg_dirty[g->dep_segs[k]] = true;
    } else if (kind == 's' && g) {
        if (g->def->cond)
            rc = rebuild_specs(&u, g->def->cond);
        u.seg_dirty[g->index] = true;
    } else if (kind == 'c') {
        for (uint32_t i = 0; i < s->n_tags; i++)
            if (s->tags[i]->def->uses_clock || s->tags[i]->def->n_input_segments)
                u.tag_dirty[i] = true;
        for (uint32_t i = 0; i < s->n_segs; i++)
            if (s->segs[i]->def->uses_clock || !s->segs[i]->realtime)
                u.seg_dirty[i] = true;
    }
    if (rc)
        return rc;
    return settle(&u, kind == 'c' ? "clock" : "publish");
}

/* A counter no published definition reads any more stops being kept; its
 * "maintained" mark goes, so a later definition reading it again rebuilds
 * it from the events instead of trusting a stale blob. */
static int forget_dropped_specs(wm_atx_t *t)
{
    const wm_asnap_t *s = t->snap;
    MDB_cursor *c;
    if (mdb_cursor_open(t->txn, t->rt->meta, &c))
        return WM_EIO;
    MDB_val k = {5, "spec:"}, v;
    int mrc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE), rc = 0;
    while (mrc == 0 && k.mv_size == 13 && !memcmp(k.mv_data, "spec:", 5)) {
        uint64_t h = wm_get_be64((const unsigned char *)k.mv_data + 5);
        bool live = false;
        for (uint32_t i = 0; i < s->n_specs && !live; i++)
            live = wm_hash64(s->specs[i]->key, strlen(s->specs[i]->key), 0x636e74) == h;
        if (!live && (rc = mdb_rc(mdb_cursor_del(c, 0))))
            break;
        mrc = mdb_cursor_get(c, &k, &v, live ? MDB_NEXT : MDB_GET_CURRENT);
        if (!live && mrc == MDB_NOTFOUND)
            break;
    }
    mdb_cursor_close(c);
    return rc;
}

/* Schedules a recompute for every definition whose version this partition
 * has not computed yet ("done:" + kind + id -> version in a_meta). */
static int schedule_new_versions(wm_atx_t *t)
{
    const wm_asnap_t *s = t->snap;
    wm_aud_t *a = t->rt;
    if (a->seen_snap == s)
        return 0;
    int rc = 0;
    if (!a->clock_day) {
        /* the first definitions: their publish tasks compute today's values,
         * the first clock pass is due at the next day change */
        a->clock_day = local_day(t->now_ms, 480);
        if ((rc = meta_put_u64(t->txn, a->meta, "clock_day", (uint64_t)(uint32_t)a->clock_day)))
            return rc;
    }
    for (uint32_t i = 0; i < s->n_tags + s->n_segs && !rc; i++) {
        bool is_tag = i < s->n_tags;
        uint32_t id = is_tag ? s->tags[i]->id : s->segs[i - s->n_tags]->id;
        uint32_t version = is_tag ? s->tags[i]->version : s->segs[i - s->n_tags]->version;
        char kind = is_tag ? 't' : 's';
        char name[16];
        snprintf(name, sizeof name, "done:%c%u", kind, id);
        if (!is_tag && s->segs[i - s->n_tags]->def->kind == WM_SEGMENT_STATIC &&
            !s->segs[i - s->n_tags]->def->snapshot_of) {
            /* an uploaded list has nothing to compute: its members come by upload */
            if (meta_u64(t->txn, a->meta, name, 0) != version &&
                (rc = meta_put_u64(t->txn, a->meta, name, version)))
                break;
            continue;
        }
        if (meta_u64(t->txn, a->meta, name, 0) == version)
            continue;
        unsigned char kb[10];
        MDB_val k = {task_key(kb, kind, id), kb}, v;
        if (mdb_get(t->txn, a->meta, &k, &v) == 0 && v.mv_size == 12) {
            uint32_t tv;
            memcpy(&tv, (char *)v.mv_data + 8, 4);
            if (tv == version)
                continue;
        }
        rc = task_put(t, kind, id, 0, version);
    }
    if (!rc)
        rc = forget_dropped_specs(t);
    if (!rc)
        a->seen_snap = s;
    return rc;
}

bool wm__aud_background_due(wm_aud_t *a, int64_t now_ms)
{
    const wm_asnap_t *s = wm__areg_snapshot(a->reg);
    if (!s || (!s->n_tags && !s->n_segs))
        return false;
    if (a->tasks_pending || a->seen_snap != s)
        return true;
    return s->clock_work && local_day(now_ms, 480) > a->clock_day;
}

/* The project of a user row, decoded by the engine (it owns the row's
 * format); into buf. */
static const char *row_project(wm_aud_t *a, const MDB_val *v, char *buf, size_t cap)
{
    return a->host.user_project && a->host.user_project(a->host.ctx, v->mv_data, v->mv_size, buf, cap) ? buf
                                                                                                     : NULL;
}

/* Runs one task for up to max users; *done when it reached the end. */
static int run_task(wm_atx_t *t, char kind, uint32_t id, uint64_t from_user, uint32_t version,
                    uint32_t max, bool *done)
{
    const wm_asnap_t *s = t->snap;
    const wm_atag_t *tg = NULL;
    const wm_aseg_t *g = NULL;
    for (uint32_t i = 0; kind == 't' && i < s->n_tags; i++)
        if (s->tags[i]->id == id)
            tg = s->tags[i];
    if (kind == 's')
        g = wm__areg_seg_id(s, id);
    *done = false;
    if ((kind == 't' && (!tg || tg->version != version)) || (kind == 's' && (!g || g->version != version))) {
        *done = true; /* superseded or gone: a newer task covers it */
        return task_del(t, kind, id);
    }
    const char *want = tg ? tg->project : g ? g->project : NULL;
    MDB_cursor *c;
    if (mdb_cursor_open(t->txn, t->rt->host.dbi_users, &c))
        return WM_EIO;
    unsigned char kb[8];
    wm_put_be64(kb, from_user);
    MDB_val k = {8, kb}, v;
    int mrc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE), rc = 0;
    uint32_t n = 0;
    uint64_t next = from_user;
    while (mrc == 0 && n < max && !rc) {
        if (k.mv_size == 8) {
            uint64_t user = wm_get_be64(k.mv_data);
            wm_arena_reset(t->arena); /* nothing outlives one user */
            char pbuf[256];
            const char *project = row_project(t->rt, &v, pbuf, sizeof pbuf);
            next = user + 1;
            if (project && (!want || !strcmp(project, want))) {
                rc = recompute_user(t, user, project, kind, tg, g);
                n++;
            }
        }
        if (!rc)
            mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (rc)
        return rc;
    if (mrc == MDB_NOTFOUND) {
        *done = true;
        rc = task_del(t, kind, id);
        if (!rc && kind != 'c') {
            char name[16];
            snprintf(name, sizeof name, "done:%c%u", kind, id);
            rc = meta_put_u64(t->txn, t->rt->meta, name, version);
            if (!rc)
                rc = def_mark_specs(t, tg, g);
        }
        return rc;
    }
    return task_put(t, kind, id, next, version);
}

int wm__aud_background(wm_atx_t *t, uint32_t max_users, bool *more)
{
    wm_aud_t *a = t->rt;
    const wm_asnap_t *s = t->snap;
    *more = false;
    if (!s || (!s->n_tags && !s->n_segs))
        return 0;
    int rc = schedule_new_versions(t);
    if (rc)
        return rc;
    int32_t today = local_day(t->now_ms, 480);
    if (s->clock_work && today > a->clock_day) {
        unsigned char kb[10];
        MDB_val k = {task_key(kb, 'c', 0), kb}, v;
        if (mdb_get(t->txn, a->meta, &k, &v) != 0 && (rc = task_put(t, 'c', 0, 0, (uint32_t)today)))
            return rc;
    }
    /* the first pending task, in key order (publishes before the clock pass
     * is fine either way: each settles the user completely) */
    MDB_cursor *c;
    if (mdb_cursor_open(t->txn, a->meta, &c))
        return WM_EIO;
    MDB_val k = {5, "task:"}, v;
    int mrc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    bool found = mrc == 0 && k.mv_size == 10 && !memcmp(k.mv_data, "task:", 5) && v.mv_size == 12;
    char kind = 0;
    uint32_t id = 0, version = 0;
    uint64_t from = 0;
    if (found) {
        kind = ((const char *)k.mv_data)[5];
        id = get_be32((const unsigned char *)k.mv_data + 6);
        memcpy(&from, v.mv_data, 8);
        memcpy(&version, (const char *)v.mv_data + 8, 4);
    }
    mdb_cursor_close(c);
    if (!found) {
        a->tasks_pending = false;
        return 0;
    }
    bool done = false;
    if ((rc = run_task(t, kind, id, from, version, max_users, &done)))
        return rc;
    if (done && kind == 'c') {
        a->clock_day = (int32_t)version;
        rc = meta_put_u64(t->txn, a->meta, "clock_day", (uint64_t)(uint32_t)version);
    }
    *more = true; /* look again: more users or another task */
    return rc;
}

int wm__aud_on_command(wm_atx_t *t, uint64_t user_id, const wm_json_t *cmd)
{
    const char *name = wm_json_str(wm_json_get(cmd, "cmd"));
    if (!name)
        return 0;
    if (!strcmp(name, "tag_set")) {
        const char *project = wm_json_str(wm_json_get(cmd, "project"));
        const char *key = wm_json_str(wm_json_get(cmd, "tag"));
        const wm_json_t *value = wm_json_get(cmd, "value");
        const char *source = wm_json_str(wm_json_get(cmd, "source"));
        if (!project || !key)
            return 0;
        if (value && value->type == WM_JSON_NULL)
            value = NULL;
        return wm__aud_tag_set(t, user_id, project, key, value, source ? source : "api");
    }
    if (!strcmp(name, "segment_list"))
        return cmd_segment_list(t, user_id, cmd);
    if (!strcmp(name, "segment_recompute")) {
        /* a scheduled refresh: recompute every user of the segment now */
        const wm_json_t *id = wm_json_get(cmd, "id"), *ver = wm_json_get(cmd, "version");
        if (id && id->is_int && ver && ver->is_int && wm__areg_seg_id(t->snap, (uint32_t)id->i64))
            return task_put(t, 's', (uint32_t)id->i64, 0, (uint32_t)ver->i64);
    }
    return 0;
}

/* ---- queries ---- */

static int read_txn(wm_aud_t *a, MDB_txn **txn)
{
    return mdb_txn_begin(a->env, NULL, MDB_RDONLY, txn) ? WM_EIO : 0;
}

/* A read-only transaction and a cursor on dbi; 0 or WM_EIO (nothing open). */
static int read_cursor(wm_aud_t *a, MDB_dbi dbi, MDB_txn **txn, MDB_cursor **c)
{
    if (read_txn(a, txn))
        return WM_EIO;
    if (mdb_cursor_open(*txn, dbi, c)) {
        mdb_txn_abort(*txn);
        return WM_EIO;
    }
    return 0;
}

int wm__aud_user_json(wm_aud_t *a, uint64_t user_id, wm_buf_t *out)
{
    MDB_txn *txn;
    if (read_txn(a, &txn))
        return WM_EIO;
    const wm_asnap_t *s = wm__areg_snapshot(a->reg);
    MDB_cursor *c;
    wm_buf_t meta;
    wm_buf_init(&meta, 0);
    wm_buf_puts(out, "\"tags\":{");
    if (mdb_cursor_open(txn, a->tag, &c) == 0) {
        unsigned char kb[8];
        wm_put_be64(kb, user_id);
        MDB_val k = {8, kb}, v;
        int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        bool first = true;
        wm_arena_t arena;
        wm_arena_init(&arena, 4096);
        while (rc == 0 && k.mv_size > 8 && wm_get_be64(k.mv_data) == user_id) {
            const wm_json_t *rec = tag_decode(&arena, v.mv_data, v.mv_size);
            const wm_json_t *val = wm_json_get(rec, "v");
            const wm_json_t *tm = wm_json_get(rec, "t");
            const wm_json_t *sh = wm_json_get(rec, "s");
            const char *src = wm_json_str(wm_json_get(rec, "src"));
            if (val && val->type != WM_JSON_NULL) {
                if (!first) {
                    wm_buf_putc(out, ',');
                    wm_buf_putc(&meta, ',');
                }
                first = false;
                wm_buf_json_str(out, (const char *)k.mv_data + 8, k.mv_size - 8);
                wm_buf_putc(out, ':');
                wm_json_write(out, val);
                wm_buf_json_str(&meta, (const char *)k.mv_data + 8, k.mv_size - 8);
                wm_buf_printf(&meta, ":{\"changed_ms\":%lld", tm && tm->is_int ? (long long)tm->i64 : 0LL);
                if (sh && sh->type == WM_JSON_NUMBER)
                    wm_buf_printf(&meta, ",\"share\":%.4f", sh->u.num);
                if (src) {
                    wm_buf_puts(&meta, ",\"source\":");
                    wm_buf_json_str(&meta, src, strlen(src));
                }
                wm_buf_putc(&meta, '}');
            }
            wm_arena_reset(&arena);
            rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
        }
        wm_arena_release(&arena);
        mdb_cursor_close(c);
    }
    wm_buf_puts(out, "},\"tag_meta\":{");
    wm_buf_append(out, meta.data ? meta.data : "", meta.len);
    wm_buf_release(&meta);
    wm_buf_puts(out, "},\"segments\":[");
    if (mdb_cursor_open(txn, a->useg, &c) == 0) {
        unsigned char kb[8];
        wm_put_be64(kb, user_id);
        MDB_val k = {8, kb}, v;
        int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        bool first = true;
        while (rc == 0 && k.mv_size == 12 && wm_get_be64(k.mv_data) == user_id) {
            uint32_t id = get_be32((const unsigned char *)k.mv_data + 8);
            const wm_aseg_t *g = wm__areg_seg_id(s, id);
            int64_t since = 0;
            uint32_t version = 0;
            if (v.mv_size >= 12) {
                memcpy(&since, v.mv_data, 8);
                memcpy(&version, (const char *)v.mv_data + 8, 4);
            }
            if (g) {
                if (!first)
                    wm_buf_putc(out, ',');
                first = false;
                wm_buf_puts(out, "{\"segment\":");
                wm_buf_json_str(out, g->key, strlen(g->key));
                if (g->def->name) {
                    wm_buf_puts(out, ",\"name\":");
                    wm_buf_json_str(out, g->def->name, strlen(g->def->name));
                }
                wm_buf_printf(out, ",\"since_ms\":%lld,\"version\":%u}", (long long)since, version);
            }
            rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
        }
        mdb_cursor_close(c);
    }
    wm_buf_putc(out, ']');
    mdb_txn_abort(txn);
    return out->err;
}

static size_t hist_prefix(unsigned char *kb, uint64_t user_id, const char *key)
{
    size_t kl = strlen(key);
    wm_put_be64(kb, user_id);
    memcpy(kb + 8, key, kl);
    kb[8 + kl] = 0;
    return 9 + kl;
}

int wm__aud_tag_at(wm_aud_t *a, uint64_t user_id, const char *key, int64_t at_ms, wm_buf_t *out)
{
    if (strlen(key) > WM_AUD_KEY_MAX)
        return WM_EINVAL;
    MDB_txn *txn;
    MDB_cursor *c;
    if (read_cursor(a, a->taghist, &txn, &c))
        return WM_EIO;
    unsigned char kb[8 + WM_AUD_KEY_MAX + 1 + 8];
    size_t pl = hist_prefix(kb, user_id, key);
    /* the last change at or before at_ms: seek past it, step back */
    wm_put_be64(kb + pl, ((uint64_t)at_ms ^ (1ull << 63)) + 1);
    MDB_val k = {pl + 8, kb}, v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    rc = rc == 0 ? mdb_cursor_get(c, &k, &v, MDB_PREV) : mdb_cursor_get(c, &k, &v, MDB_LAST);
    if (rc == 0 && k.mv_size == pl + 8 && !memcmp(k.mv_data, kb, pl))
        wm_buf_append(out, v.mv_data, v.mv_size);
    else
        wm_buf_puts(out, "null");
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    return out->err;
}

int wm__aud_tag_history(wm_aud_t *a, uint64_t user_id, const char *key, wm_buf_t *out)
{
    if (strlen(key) > WM_AUD_KEY_MAX)
        return WM_EINVAL;
    MDB_txn *txn;
    MDB_cursor *c;
    if (read_cursor(a, a->taghist, &txn, &c))
        return WM_EIO;
    unsigned char kb[8 + WM_AUD_KEY_MAX + 1 + 8];
    size_t pl = hist_prefix(kb, user_id, key);
    /* the newest WM_AUD_HISTORY_MAX changes, listed oldest first: find where
     * they start by stepping back from the end of the prefix */
    wm_put_be64(kb + pl, UINT64_MAX);
    MDB_val k = {pl + 8, kb}, v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    rc = rc == 0 ? mdb_cursor_get(c, &k, &v, MDB_PREV) : mdb_cursor_get(c, &k, &v, MDB_LAST);
    uint32_t back = 1;
    while (rc == 0 && back < WM_AUD_HISTORY_MAX) {
        MDB_val pk, pv;
        if (mdb_cursor_get(c, &pk, &pv, MDB_PREV) || pk.mv_size != pl + 8 || memcmp(pk.mv_data, kb, pl)) {
            rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
            break;
        }
        k = pk;
        v = pv;
        back++;
    }
    if (rc == 0 && (k.mv_size != pl + 8 || memcmp(k.mv_data, kb, pl)))
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    bool first = true;
    uint32_t n = 0;
    while (rc == 0 && k.mv_size == pl + 8 && !memcmp(k.mv_data, kb, pl) && n++ < WM_AUD_HISTORY_MAX) {
        int64_t at = (int64_t)(wm_get_be64((const unsigned char *)k.mv_data + pl) ^ (1ull << 63));
        if (!first)
            wm_buf_putc(out, ',');
        first = false;
        wm_buf_puts(out, "{\"value\":");
        wm_buf_append(out, v.mv_data, v.mv_size);
        wm_buf_printf(out, ",\"at_ms\":%lld}", (long long)at);
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    return out->err;
}

/* The map copies its keys: the value text is counted as it is. */
static int count_value(wm_strmap_t *counts, const void *val, size_t len)
{
    uint64_t n = 0;
    wm_strmap_get(counts, val, len, &n);
    return wm_strmap_put(counts, val, len, n + 1);
}

/* Current values: the a_tagidx prefix of (project, tag). */
static int distribution_now(wm_aud_t *a, MDB_txn *txn, const char *project, const char *key,
                            wm_strmap_t *counts)
{
    size_t pl = strlen(project), kl = strlen(key);
    unsigned char pb[256 + WM_AUD_KEY_MAX + 2];
    if (pl > 255 || kl > WM_AUD_KEY_MAX)
        return WM_EINVAL;
    memcpy(pb, project, pl);
    pb[pl] = 0;
    memcpy(pb + pl + 1, key, kl);
    pb[pl + 1 + kl] = 0;
    size_t plen = pl + 2 + kl;
    MDB_cursor *c;
    if (mdb_cursor_open(txn, a->tagidx, &c))
        return WM_EIO;
    MDB_val k = {plen, pb}, v;
    int mrc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE), rc = 0;
    while (mrc == 0 && !rc && k.mv_size == plen + 8 && !memcmp(k.mv_data, pb, plen)) {
        rc = count_value(counts, v.mv_data, v.mv_size);
        mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    return rc;
}

/* Values at a time: the latest history entry <= at_ms of every user of
 * this partition (a full pass over the history; it answers a report, not
 * the apply path). */
static int distribution_at(wm_aud_t *a, MDB_txn *txn, const char *project, const char *key,
                           int64_t at_ms, wm_strmap_t *counts)
{
    size_t kl = strlen(key);
    MDB_cursor *c, *uc;
    if (mdb_cursor_open(txn, a->taghist, &c))
        return WM_EIO;
    if (mdb_cursor_open(txn, a->host.dbi_users, &uc)) {
        mdb_cursor_close(c);
        return WM_EIO;
    }
    wm_arena_t scratch;
    wm_arena_init(&scratch, 4096);
    MDB_val uk, uv;
    int urc = mdb_cursor_get(uc, &uk, &uv, MDB_FIRST), rc = 0;
    while (urc == 0 && !rc) {
        if (uk.mv_size == 8) {
            uint64_t user = wm_get_be64(uk.mv_data);
            wm_arena_reset(&scratch);
            char pbuf[256];
            const char *p = row_project(a, &uv, pbuf, sizeof pbuf);
            if (p && !strcmp(p, project)) {
                unsigned char kb[8 + WM_AUD_KEY_MAX + 1 + 8];
                size_t pl = hist_prefix(kb, user, key);
                wm_put_be64(kb + pl, ((uint64_t)at_ms ^ (1ull << 63)) + 1);
                MDB_val k = {pl + 8, kb}, v;
                int mrc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
                mrc = mrc == 0 ? mdb_cursor_get(c, &k, &v, MDB_PREV) : mdb_cursor_get(c, &k, &v, MDB_LAST);
                if (mrc == 0 && k.mv_size == pl + 8 && !memcmp(k.mv_data, kb, pl) &&
                    !(v.mv_size == 4 && !memcmp(v.mv_data, "null", 4)))
                    rc = count_value(counts, v.mv_data, v.mv_size);
            }
        }
        urc = mdb_cursor_get(uc, &uk, &uv, MDB_NEXT);
    }
    (void)kl;
    wm_arena_release(&scratch);
    mdb_cursor_close(uc);
    mdb_cursor_close(c);
    return rc;
}

int wm__aud_tag_distribution(wm_aud_t *a, const char *project, const char *key, int64_t at_ms,
                             wm_strmap_t *counts)
{
    MDB_txn *txn;
    if (read_txn(a, &txn))
        return WM_EIO;
    int rc = at_ms > 0 ? distribution_at(a, txn, project, key, at_ms, counts)
                       : distribution_now(a, txn, project, key, counts);
    mdb_txn_abort(txn);
    return rc;
}

void wm__aud_members_or(wm_aud_t *a, uint32_t seg_id, void *dst)
{
    pthread_mutex_lock(&a->bm_mu);
    if (seg_id < a->n_bitmaps && a->bitmaps[seg_id])
        roaring_bitmap_or_inplace(dst, a->bitmaps[seg_id]);
    pthread_mutex_unlock(&a->bm_mu);
}

uint64_t wm__aud_member_count(wm_aud_t *a, uint32_t seg_id)
{
    pthread_mutex_lock(&a->bm_mu);
    uint64_t n = seg_id < a->n_bitmaps && a->bitmaps[seg_id]
                     ? roaring_bitmap_get_cardinality(a->bitmaps[seg_id])
                     : 0;
    pthread_mutex_unlock(&a->bm_mu);
    return n;
}

uint32_t wm__aud_done_version(wm_aud_t *a, char kind, uint32_t id)
{
    MDB_txn *txn;
    if (read_txn(a, &txn))
        return 0;
    char name[16];
    snprintf(name, sizeof name, "done:%c%u", kind, id);
    uint32_t v = (uint32_t)meta_u64(txn, a->meta, name, 0);
    mdb_txn_abort(txn);
    return v;
}

int64_t wm__aud_member_since(wm_aud_t *a, uint32_t seg_id, uint64_t user_id)
{
    MDB_txn *txn;
    if (read_txn(a, &txn))
        return 0;
    int64_t since = useg_since(txn, a->useg, user_id, seg_id);
    mdb_txn_abort(txn);
    return since;
}

/* Preview: a read-only transaction and a private arena; the same
 * environment as the apply path (profile, counters, tags, memberships,
 * events), so the preview count is what publishing would give. */
int wm__aud_preview(wm_aud_t *a, const char *project, const wm_cond_t *cond, int64_t now_ms,
                    int (*cb)(void *ctx, uint64_t user_id), void *ctx)
{
    MDB_txn *txn;
    if (read_txn(a, &txn))
        return WM_EIO;
    MDB_cursor *c;
    if (mdb_cursor_open(txn, a->host.dbi_users, &c)) {
        mdb_txn_abort(txn);
        return WM_EIO;
    }
    wm_arena_t arena;
    wm_arena_init(&arena, 16 * 1024);
    wm_atx_t t = {.rt = a, .txn = txn, .arena = &arena, .now_ms = now_ms,
                  .snap = wm__areg_snapshot(a->reg)};
    MDB_val k, v;
    int mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST), rc = 0;
    while (mrc == 0 && !rc) {
        if (k.mv_size == 8) {
            wm_arena_reset(&arena);
            uint64_t user = wm_get_be64(k.mv_data);
            char pbuf[256];
            const char *p = row_project(a, &v, pbuf, sizeof pbuf);
            if (p && !strcmp(p, project)) {
                uctx_t u = {.t = &t, .user_id = user, .project = project, .preview = true};
                u.profile = load_profile(&t, user);
                u.profile_parsed = true;
                u.tz_min = tz_offset(a, u.profile, now_ms);
                if (eval(&u, cond))
                    rc = cb(ctx, user);
            }
        }
        if (!rc)
            mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    wm_arena_release(&arena);
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    return rc < 0 ? rc : 0;
}

/* ---- recommendation queries ---- */

int wm__aud_rec_bought(wm_aud_t *a, uint64_t user_id, int (*cb)(void *ctx, const char *item), void *ctx)
{
    MDB_txn *txn;
    MDB_cursor *c;
    if (read_cursor(a, a->rec, &txn, &c))
        return WM_EIO;
    unsigned char uk[9];
    uk[0] = 'u';
    wm_put_be64(uk + 1, user_id);
    MDB_val k = {9, uk}, v;
    int mrc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE), rc = 0;
    while (mrc == 0 && !rc && k.mv_size > 9 && k.mv_size <= 9 + 128 && !memcmp(k.mv_data, uk, 9)) {
        char item[129];
        memcpy(item, (const char *)k.mv_data + 9, k.mv_size - 9);
        item[k.mv_size - 9] = 0;
        rc = cb(ctx, item);
        mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    return rc;
}

/* Calls cb(item, count) for popularity (from NULL) or the co-purchases of
 * `from` (items bought by customers who bought it). */
int wm__aud_rec_counts(wm_aud_t *a, const char *project, const char *type, const char *from,
                       int (*cb)(void *ctx, const char *item, uint64_t count), void *ctx)
{
    unsigned char pb[600];
    size_t pl = from ? rec_key(pb, sizeof pb - 1, 'c', project, type, from, NULL)
                     : rec_key(pb, sizeof pb - 1, 'p', project, type, "", NULL);
    if (!pl)
        return WM_EINVAL;
    if (from)
        pb[pl++] = 0;
    MDB_txn *txn;
    MDB_cursor *c;
    if (read_cursor(a, a->rec, &txn, &c))
        return WM_EIO;
    MDB_val k = {pl, pb}, v;
    int mrc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE), rc = 0;
    while (mrc == 0 && !rc && k.mv_size > pl && k.mv_size - pl <= 128 && !memcmp(k.mv_data, pb, pl)) {
        char item[129];
        memcpy(item, (const char *)k.mv_data + pl, k.mv_size - pl);
        item[k.mv_size - pl] = 0;
        uint64_t n = 0;
        if (v.mv_size == 8)
            memcpy(&n, v.mv_data, 8);
        if (!memchr(item, 0, k.mv_size - pl))
            rc = cb(ctx, item, n);
        mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    return rc;
}

/* ---- for plan.c ---- */

uint64_t wm__aud_spec_hash(const char *spec_key) { return spec_hash(spec_key); }

bool wm__aud_spec_kept(wm_aud_t *a, MDB_txn *txn, const wm_counter_spec_t *spec)
{
    wm_atx_t t = {.rt = a, .txn = txn};
    return spec_maintained(&t, spec);
}

bool wm__aud_eval_user(wm_aud_t *a, MDB_txn *txn, wm_arena_t *arena, const char *project, uint64_t user_id,
                       const wm_cond_t *c, int64_t now_ms)
{
    wm_atx_t t = {.rt = a, .txn = txn, .arena = arena, .now_ms = now_ms, .snap = wm__areg_snapshot(a->reg)};
    uctx_t u = {.t = &t, .user_id = user_id, .project = project, .preview = true};
    u.profile = load_profile(&t, user_id);
    u.profile_parsed = true;
    u.tz_min = tz_offset(a, u.profile, now_ms);
    return eval(&u, c);
}
