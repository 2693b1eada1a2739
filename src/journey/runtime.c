/*
 * runtime.c - executes journey instances inside the partition writer's
 * transaction: entries, node steps, waits and timers, wait_event, goals and
 * exits, behaviour counters, statistics and operational events. The state
 * machine of an instance is drawn in rt_internal.h.
 *
 * Everything here runs on the partition's writer thread, in the LMDB write
 * transaction that also applies the event, timer or command that caused it,
 * so a transition, its messages and its events commit together or not at all.
 */
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/evidx.h"
#include "store/payload.h"
#include "rt_internal.h"
#include "waymark/limits.h"
#include "waymark/alloc.h"
#include "waymark/error.h"
#include "waymark/record.h"
#include "waymark/strmap.h"


/* ---- open / close ---- */

static int open_dbi(MDB_txn *txn, const char *name, MDB_dbi *out)
{
    return mdb_dbi_open(txn, name, MDB_CREATE, out) ? WM_EIO : 0;
}

static uint64_t meta_get(MDB_txn *txn, MDB_dbi dbi, const char *name)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    uint64_t x = 0;
    if (mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size == 8)
        memcpy(&x, v.mv_data, 8);
    return x;
}

static int meta_put(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t x)
{
    MDB_val k = {strlen(name), (void *)name}, v = {8, &x};
    return mdb_put(txn, dbi, &k, &v, 0) ? WM_EIO : 0;
}

static int64_t first_due(wm_jrt_t *rt, MDB_txn *txn)
{
    MDB_cursor *c;
    int64_t due = INT64_MAX;
    if (mdb_cursor_open(txn, rt->timer, &c))
        return due;
    MDB_val k, v;
    if (mdb_cursor_get(c, &k, &v, MDB_FIRST) == 0 && k.mv_size == 16)
        due = (int64_t)(wm_get_be64(k.mv_data) ^ (1ull << 63));
    mdb_cursor_close(c);
    return due;
}

/* A store that had user/journey rows before their format 2 keys may still
 * hold format 1 keys: lookups then fall back to them. An empty j_user is
 * marked, so a new store never pays for the fallback. */
static int note_juser_format(wm_jrt_t *rt, MDB_txn *txn)
{
    if (meta_get(txn, rt->meta, "juser_format") >= 2)
        return 0;
    MDB_stat st;
    if (mdb_stat(txn, rt->juser, &st))
        return WM_EIO;
    if (st.ms_entries)
        rt->old_juser_keys = true;
    return st.ms_entries ? 0 : meta_put(txn, rt->meta, "juser_format", 2);
}

int wm__jrt_open(MDB_env *env, MDB_txn *txn, wm_jreg_t *reg, const wm_jrt_host_t *host,
                 wm_jrt_t **out)
{
    wm_jrt_t *rt = wm_calloc(1, sizeof *rt);
    if (!rt)
        return WM_ENOMEM;
    rt->env = env;
    rt->reg = reg;
    rt->host = *host;
    int rc = open_dbi(txn, "j_inst", &rt->inst);
    if (!rc) rc = open_dbi(txn, "j_user", &rt->juser);
    if (!rc) rc = open_dbi(txn, "j_timer", &rt->timer);
    if (!rc) rc = open_dbi(txn, "j_out", &rt->out);
    if (!rc) rc = open_dbi(txn, "j_umsg", &rt->umsg);
    if (!rc) rc = open_dbi(txn, "j_freq", &rt->freq);
    if (!rc) rc = open_dbi(txn, "j_cnt", &rt->cnt);
    if (!rc) rc = open_dbi(txn, "j_inbox", &rt->inbox);
    if (!rc) rc = open_dbi(txn, "j_lead", &rt->lead);
    if (!rc) rc = open_dbi(txn, "j_stat", &rt->stat);
    if (!rc) rc = open_dbi(txn, "j_ops", &rt->ops);
    if (!rc) rc = open_dbi(txn, "j_meta", &rt->meta);
    if (!rc) rc = open_dbi(txn, "j_entries", &rt->entries);
    if (!rc) rc = note_juser_format(rt, txn);
    if (rc) {
        wm_free(rt);
        return rc;
    }
    rt->next_inst = meta_get(txn, rt->meta, "next_inst");
    rt->next_op = meta_get(txn, rt->meta, "next_op");
    atomic_store(&rt->next_due, first_due(rt, txn));
    *out = rt;
    return 0;
}

void wm__jrt_close(wm_jrt_t *rt)
{
    if (!rt)
        return;
    wm__jtx_aborted(&(wm_jtx_t){.rt = rt});
    wm_free(rt->pending);
    wm_free(rt);
}

bool wm__jrt_active(wm_jrt_t *rt)
{
    const wm_jsnapshot_t *s = wm__jreg_snapshot(rt->reg);
    return s && (s->n_versions || s->n_specs);
}

int64_t wm__jrt_next_due(wm_jrt_t *rt) { return atomic_load(&rt->next_due); }

/* ---- transaction context ---- */

void wm__jtx_begin(wm_jtx_t *t, wm_jrt_t *rt, MDB_txn *txn, wm_arena_t *a, int64_t now_ms)
{
    memset(t, 0, sizeof *t);
    t->rt = rt;
    t->txn = txn;
    t->arena = a;
    t->now_ms = now_ms;
    rt->txn_min_due = INT64_MAX;
}

static void free_pending(wm_jrt_t *rt)
{
    for (uint32_t i = 0; i < rt->n_pending; i++) {
        wm_dispatch_msg_t *m = &rt->pending[i];
        wm_free((char *)m->id), wm_free((char *)m->channel), wm_free((char *)m->url);
        wm_free((char *)m->secret), wm_free((char *)m->body);
    }
    rt->n_pending = 0;
}

void wm__jtx_committed(wm_jtx_t *t)
{
    wm_jrt_t *rt = t->rt;
    if (rt->txn_min_due < atomic_load(&rt->next_due))
        atomic_store(&rt->next_due, rt->txn_min_due);
    for (uint32_t i = 0; i < rt->n_pending && rt->host.dispatch; i++)
        rt->host.dispatch(rt->host.ctx, &rt->pending[i]);
    free_pending(rt);
    if (rt->host.names)
        wm_names_committed(rt->host.names);
}

void wm__jtx_aborted(wm_jtx_t *t)
{
    free_pending(t->rt);
    if (t->rt->host.names)
        wm_names_aborted(t->rt->host.names);
}

/* ---- small stores ---- */

const wm_json_t *wm__rt_profile(wm_jtx_t *t, uint64_t user_id)
{
    unsigned char kb[8];
    wm_put_be64(kb, user_id);
    MDB_val k = {8, kb}, v;
    if (mdb_get(t->txn, t->rt->host.dbi_profiles, &k, &v))
        return NULL;
    wm_json_t *o;
    wm_json_error_t je;
    /* the profile text lives in the txn's pages: copy, later writes may move it */
    char *copy = wm_arena_strndup(t->arena, v.mv_data, v.mv_size);
    if (!copy || wm_json_parse(t->arena, copy, v.mv_size, &o, &je))
        return NULL;
    return o;
}

int wm__rt_profile_store(wm_jtx_t *t, uint64_t user_id, const wm_json_t *profile)
{
    unsigned char kb[8];
    wm_put_be64(kb, user_id);
    MDB_val k = {8, kb};
    wm_buf_t b;
    wm_buf_init(&b, 0);
    wm_json_write(&b, profile);
    int rc = b.err;
    if (!rc) {
        MDB_val v = {b.len, b.data};
        rc = mdb_put(t->txn, t->rt->host.dbi_profiles, &k, &v, 0) ? WM_EIO : 0;
    }
    wm_buf_release(&b);
    return rc;
}

const wm_json_t *wm__rt_item(wm_jtx_t *t, const char *project, const char *type, const char *id)
{
    if (!type || !id || !t->rt->host.item_get)
        return NULL;
    char *json = NULL;
    size_t len = 0;
    if (t->rt->host.item_get(t->rt->host.ctx, project, type, id, &json, &len))
        return NULL;
    char *copy = wm_arena_strndup(t->arena, json, len);
    wm_free(json);
    wm_json_t *o;
    wm_json_error_t je;
    if (!copy || wm_json_parse(t->arena, copy, len, &o, &je))
        return NULL;
    return o;
}

static size_t stat_key(unsigned char *kb, size_t cap, const char *project, const char *key,
                       uint32_t version, uint32_t node, uint8_t kind, uint32_t aux)
{
    size_t pl = strlen(project), kl = strlen(key);
    if (pl + kl + 2 + 11 > cap)
        return 0;
    memcpy(kb, project, pl);
    kb[pl] = 0;
    memcpy(kb + pl + 1, key, kl);
    kb[pl + 1 + kl] = 0;
    unsigned char *p = kb + pl + kl + 2;
    p[0] = (unsigned char)(version >> 24), p[1] = (unsigned char)(version >> 16);
    p[2] = (unsigned char)(version >> 8), p[3] = (unsigned char)version;
    p[4] = (unsigned char)(node >> 8), p[5] = (unsigned char)node;
    p[6] = kind;
    p[7] = (unsigned char)(aux >> 8), p[8] = (unsigned char)aux;
    return pl + kl + 2 + 9;
}

int wm__rt_stat_add(wm_jtx_t *t, const char *project, const char *key, uint32_t version,
                    uint32_t node, uint8_t kind, uint32_t aux, int64_t delta)
{
    unsigned char kb[200];
    size_t kl = stat_key(kb, sizeof kb, project, key, version, node, kind, aux);
    if (!kl)
        return 0;
    MDB_val k = {kl, kb}, v;
    int64_t x = 0;
    if (mdb_get(t->txn, t->rt->stat, &k, &v) == 0 && v.mv_size == 8)
        memcpy(&x, v.mv_data, 8);
    x += delta;
    v.mv_size = 8;
    v.mv_data = &x;
    return mdb_put(t->txn, t->rt->stat, &k, &v, 0) ? WM_EIO : 0;
}

/* Op events go to j_ops in this txn; the writer appends them to the log
 * after commit, and their apply deletes the j_ops entry (exactly once). */
int wm__rt_op_event(wm_jtx_t *t, uint64_t user_id, const char *project, const char *event,
                    const char *props_json, bool business)
{
    wm_jrt_t *rt = t->rt;
    wm_buf_t b;
    wm_buf_init(&b, 0);
    wm_payload_hdr_t h = {
        .kind = WM_PAYLOAD_RECORD,
        .rec_type = WM_REC_TRACK,
        .flags = (uint8_t)(WM_PFLAG_OPQ | (business ? 0 : WM_PFLAG_BOOKKEEPING)),
        .user_id = user_id,
        .time_ms = t->now_ms,
        .from_hw = ++rt->next_op,
    };
    wm_buf_append(&b, &h, sizeof h);
    /* built without printf: segment and journey op events are many */
    wm_buf_puts(&b, "{\"type\":\"track\",\"event\":\"");
    wm_buf_puts(&b, event);
    wm_buf_puts(&b, "\",\"distinct_id\":\"$user:");
    wm_buf_put_i64(&b, (int64_t)user_id);
    wm_buf_puts(&b, "\",\"time\":");
    wm_buf_put_i64(&b, t->now_ms);
    wm_buf_puts(&b, ",\"project\":");
    wm_buf_json_str(&b, project, strlen(project));
    wm_buf_puts(&b, ",\"receive_time\":");
    wm_buf_put_i64(&b, t->now_ms);
    wm_buf_puts(&b, ",\"lib\":{\"$lib\":\"waymark\"},\"properties\":");
    wm_buf_puts(&b, props_json ? props_json : "{}");
    wm_buf_putc(&b, '}');
    int rc = b.err;
    if (!rc) {
        unsigned char kb[8];
        wm_put_be64(kb, rt->next_op);
        MDB_val k = {8, kb}, v = {b.len, b.data};
        rc = mdb_put(t->txn, rt->ops, &k, &v, 0) ? WM_EIO : 0;
    }
    /* next_op is stored once per transaction (wm__jtx_precommit) */
    wm_buf_release(&b);
    t->ops_written = true;
    return rc;
}

int wm__jtx_precommit(wm_jtx_t *t)
{
    return t->ops_written ? meta_put(t->txn, t->rt->meta, "next_op", t->rt->next_op) : 0;
}

int wm__jrt_op_event(wm_jtx_t *t, uint64_t user_id, const char *project, const char *event,
                     const char *props_json, bool business)
{
    return wm__rt_op_event(t, user_id, project, event, props_json, business);
}

int wm__jrt_pending_ops(wm_jrt_t *rt, uint64_t *after, uint32_t max,
                        void (*emit)(void *ctx, const unsigned char *payload, uint32_t len),
                        void *ctx)
{
    MDB_txn *txn;
    MDB_cursor *c;
    if (wm__jrt_read_cursor(rt, rt->ops, &txn, &c))
        return WM_EIO;
    unsigned char kb[8];
    wm_put_be64(kb, *after + 1);
    MDB_val k = {8, kb}, v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    uint32_t n = 0;
    while (rc == 0 && k.mv_size == 8 && n++ < max) {
        emit(ctx, v.mv_data, (uint32_t)v.mv_size);
        *after = wm_get_be64(k.mv_data);
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    wm__jrt_read_done(txn, c);
    return 0;
}

/* Returns true when the op record is still queued (and dequeues it). */
bool wm__jrt_op_take(wm_jtx_t *t, uint64_t op_key)
{
    unsigned char kb[8];
    wm_put_be64(kb, op_key);
    MDB_val k = {8, kb};
    return mdb_del(t->txn, t->rt->ops, &k, NULL) == 0;
}

/* ---- time zones ---- */

int wm__rt_tz_offset(wm_jtx_t *t, const wm_json_t *profile, const char *tz_from,
                     const char *default_tz, int64_t at_ms)
{
    const char *name = NULL;
    if (tz_from && !strncmp(tz_from, "user.", 5))
        name = wm_json_str(wm_json_get(profile, tz_from + 5));
    else if (tz_from && !strncmp(tz_from, "profile.", 8))
        name = wm_json_str(wm_json_get(profile, tz_from + 8));
    if (!name)
        name = wm_json_str(wm_json_get(profile, "timezone"));
    const wm_tz_t *tz = NULL;
    if ((!name || wm_tz_get(name, &tz)) &&
        wm_tz_get(default_tz ? default_tz : (t->rt->host.default_tz ? t->rt->host.default_tz
                                                                    : "Asia/Shanghai"),
                  &tz))
        return 480;
    return wm_tz_offset_min(tz, at_ms);
}

/* ---- condition environment ---- */

typedef struct env_ctx {
    wm_jtx_t *t;
    uint64_t user_id;
    const char *project;
} env_ctx_t;

static const wm_json_t *env_item(void *ctx, const char *type, const char *id)
{
    env_ctx_t *e = ctx;
    return wm__rt_item(e->t, e->project, type, id);
}

static size_t cnt_key(unsigned char *kb, uint64_t user_id, const char *spec_key)
{
    wm_put_be64(kb, user_id);
    wm_put_be64(kb + 8, wm_hash64(spec_key, strlen(spec_key), 0x636e74));
    return 16;
}

static int env_behaviour(void *ctx, const wm_counter_spec_t *spec, int32_t from_day, int32_t to_day,
                         wm_agg_t *out)
{
    env_ctx_t *e = ctx;
    unsigned char kb[16];
    MDB_val k = {cnt_key(kb, e->user_id, spec->key), kb}, v;
    if (mdb_get(e->t->txn, e->t->rt->cnt, &k, &v))
        return wm_buckets_query(NULL, 0, from_day, to_day, out); /* nothing yet: exact zeros */
    return wm_buckets_query(v.mv_data, v.mv_size, from_day, to_day, out);
}

static int env_events(void *ctx, int64_t from_ms, int64_t to_ms,
                      int (*cb)(void *cbctx, const wm_json_t *event), void *cbctx)
{
    env_ctx_t *e = ctx;
    wm_jtx_t *t = e->t;
    if (!t->rt->host.read_event)
        return 0;
    MDB_cursor *c;
    if (mdb_cursor_open(t->txn, t->rt->host.dbi_events, &c))
        return WM_EIO;
    unsigned char kb[16];
    wm_put_be64(kb, e->user_id);
    wm_put_be64(kb + 8, (uint64_t)from_ms ^ (1ull << 63));
    MDB_val k = {16, kb}, v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE), stop = 0;
    uint32_t seen = 0;
    uint64_t owner;
    int64_t tm;
    wm_log_pos_t pos;
    while (rc == 0 && !stop && wm_evidx_decode(&k, &v, &owner, &tm, &pos) && seen++ < WM_COND_SCAN_EVENTS_MAX) {
        if (owner != e->user_id || tm >= to_ms)
            break;
        char *json = NULL;
        size_t len = 0;
        if (t->rt->host.read_event(t->rt->host.ctx, &pos, &json, &len) == 0) {
            wm_json_t *ev;
            wm_json_error_t je;
            char *copy = wm_arena_strndup(t->arena, json, len);
            if (copy && wm_json_parse(t->arena, copy, len, &ev, &je) == 0)
                stop = cb(cbctx, ev);
        }
        wm_free(json);
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    return 0;
}

static const wm_json_t *env_tag(void *ctx, const char *tag)
{
    env_ctx_t *e = ctx;
    wm_jrt_t *rt = e->t->rt;
    return rt->host.tag_get ? rt->host.tag_get(rt->host.ctx, e->t->aud_tx, e->user_id, tag) : NULL;
}

static bool env_in_segment(void *ctx, const char *segment)
{
    env_ctx_t *e = ctx;
    wm_jrt_t *rt = e->t->rt;
    return rt->host.in_segment &&
           rt->host.in_segment(rt->host.ctx, e->t->aud_tx, e->user_id, e->project, segment);
}

static void env_init(wm_cond_env_t *env, env_ctx_t *ec, wm_jtx_t *t, uint64_t user_id,
                     const char *project, const wm_json_t *profile, const wm_json_t *event)
{
    ec->t = t;
    ec->user_id = user_id;
    ec->project = project;
    memset(env, 0, sizeof *env);
    env->profile = profile;
    env->event = event;
    env->now_ms = t->now_ms;
    env->tz_offset_min = wm__rt_tz_offset(t, profile, NULL, NULL, t->now_ms);
    env->ctx = ec;
    env->item = env_item;
    env->behaviour = env_behaviour;
    env->events = env_events;
    env->tag = env_tag;
    env->in_segment = env_in_segment;
}

static bool eval(wm_jtx_t *t, const wm_cond_t *c, uint64_t user_id, const char *project,
                 const wm_json_t *profile, const wm_json_t *event)
{
    if (!c)
        return true;
    wm_cond_env_t env;
    env_ctx_t ec;
    env_init(&env, &ec, t, user_id, project, profile, event);
    bool r = false;
    return wm_cond_eval(c, &env, &r) == 0 && r;
}

/* ---- behaviour counters ---- */

static int32_t local_day(int64_t ms, int tz_min)
{
    int64_t local = ms + (int64_t)tz_min * 60000;
    return (int32_t)(local >= 0 ? local / 86400000 : (local - 86399999) / 86400000);
}

static int update_counters(wm_jtx_t *t, const wm_jsnapshot_t *s, uint64_t user_id,
                           const wm_json_t *event, const char *name, int64_t time_ms,
                           const wm_json_t *profile)
{
    int tz = -1;
    for (uint32_t i = 0; i < s->n_specs; i++) {
        const wm_counter_spec_t *spec = s->specs[i];
        if (strcmp(spec->event, name))
            continue;
        double value = 0;
        const char *dv = NULL;
        if (!wm_counter_match(spec, event, &value, &dv))
            continue;
        if (tz == -1)
            tz = wm__rt_tz_offset(t, profile, NULL, NULL, time_ms) + 100000;
        unsigned char kb[16], blob[WM_BUCKETS_BYTES_MAX];
        MDB_val k = {cnt_key(kb, user_id, spec->key), kb}, v;
        size_t len = 0;
        if (mdb_get(t->txn, t->rt->cnt, &k, &v) == 0 && v.mv_size <= sizeof blob) {
            memcpy(blob, v.mv_data, v.mv_size);
            len = v.mv_size;
        }
        if (wm_buckets_add(blob, &len, local_day(time_ms, tz - 100000), value, dv))
            continue;
        v.mv_size = len;
        v.mv_data = blob;
        if (mdb_put(t->txn, t->rt->cnt, &k, &v, 0))
            return WM_EIO;
    }
    return 0;
}

/* ---- stored forms ---- */

/* Format 1 (fixed-width fields, project and journey key by name) is what
 * stores written before format 2 hold; it is still read, and rewritten as
 * format 2 the next time the row changes. Format 2 is varints and the
 * journey's id in the partition's name table (store/names.h): a waiting
 * instance is ~30 bytes instead of ~120, a user/journey row ~15 instead of 31. */
#define INST_FORMAT_1 1
#define INST_FORMAT 2
#define JUSER_FORMAT_1 1
#define JUSER_FORMAT 2

/* format 2 instance flags: which optional fields follow */
#define IF_CONVERTED 0x01
#define IF_CONTROL 0x02
#define IF_DUE 0x04
#define IF_GOAL 0x08
#define IF_ENTRY 0x10
#define IF_MATCH 0x20
#define IF_ITEM 0x40

static unsigned char *put_bytes(unsigned char *p, const void *v, size_t n)
{
    memcpy(p, v, n);
    return p + n;
}

static unsigned char *put_name(unsigned char *p, const char *s)
{
    size_t n = strnlen(s, RT_NAME_MAX - 1);
    *p++ = (unsigned char)n;
    return put_bytes(p, s, n);
}

/* Times are stored as differences from a related time of the same row
 * (wrapping, so every pair of int64 values round-trips). */
static uint64_t time_delta(int64_t t, int64_t base) { return wm_zigzag((int64_t)((uint64_t)t - (uint64_t)base)); }
static int64_t time_undelta(uint64_t d, int64_t base) { return (int64_t)((uint64_t)base + (uint64_t)wm_unzigzag(d)); }

static uint8_t inst_flags(const wm_inst_t *in)
{
    bool entry = in->entry_pos.seq || in->entry_pos.file || in->entry_pos.offset;
    return (uint8_t)((in->converted ? IF_CONVERTED : 0) | (in->control ? IF_CONTROL : 0) |
                     (in->due_ms != INT64_MAX ? IF_DUE : 0) | (in->goal_deadline_ms ? IF_GOAL : 0) |
                     (entry ? IF_ENTRY : 0) | (in->match[0] ? IF_MATCH : 0) | (in->item[0] ? IF_ITEM : 0));
}

size_t wm__inst_encode(const wm_inst_t *in, unsigned char *buf)
{
    uint8_t flags = inst_flags(in);
    unsigned char *p = buf;
    *p++ = INST_FORMAT;
    p = wm_put_varint(p, in->user_id);
    p = wm_put_varint(p, in->jid);
    p = wm_put_varint(p, in->version);
    p = wm_put_varint(p, in->node);
    *p++ = in->state;
    *p++ = in->arm;
    *p++ = flags;
    p = wm_put_varint(p, in->steps);
    p = wm_put_varint(p, wm_zigzag(in->entered_ms));
    p = wm_put_varint(p, time_delta(in->node_since_ms, in->entered_ms));
    if (flags & IF_DUE)
        p = wm_put_varint(p, time_delta(in->due_ms, in->node_since_ms));
    if (flags & IF_GOAL)
        p = wm_put_varint(p, time_delta(in->goal_deadline_ms, in->entered_ms));
    if (flags & IF_ENTRY) {
        p = wm_put_varint(p, in->entry_pos.seq);
        p = wm_put_varint(p, in->entry_pos.file);
        p = wm_put_varint(p, in->entry_pos.offset);
    }
    if (flags & IF_MATCH)
        p = put_name(p, in->match);
    if (flags & IF_ITEM)
        p = put_name(p, in->item);
    return (size_t)(p - buf);
}

typedef struct reader {
    const unsigned char *p, *end;
    bool ok;
} reader_t;

static void get_bytes(reader_t *r, void *v, size_t n)
{
    if (!r->ok || (size_t)(r->end - r->p) < n) {
        r->ok = false;
        memset(v, 0, n);
        return;
    }
    memcpy(v, r->p, n);
    r->p += n;
}

static void get_name(reader_t *r, char *out)
{
    unsigned char n = 0;
    get_bytes(r, &n, 1);
    if (n >= RT_NAME_MAX)
        r->ok = false;
    if (!r->ok) {
        out[0] = 0;
        return;
    }
    get_bytes(r, out, n);
    out[n] = 0;
}

static uint64_t get_varint(reader_t *r, uint64_t max)
{
    uint64_t v = 0;
    if (r->ok && (!wm_get_varint(&r->p, r->end, &v) || v > max))
        r->ok = false;
    return r->ok ? v : 0;
}

static bool inst_decode_1(reader_t *r, wm_inst_t *in)
{
    get_bytes(r, &in->id, 8);
    get_bytes(r, &in->user_id, 8);
    get_bytes(r, &in->version, 4);
    get_bytes(r, &in->node, 4);
    get_bytes(r, &in->state, 1);
    get_bytes(r, &in->arm, 1);
    get_bytes(r, &in->converted, 1);
    get_bytes(r, &in->control, 1);
    get_bytes(r, &in->steps, 4);
    get_bytes(r, &in->entered_ms, 8);
    get_bytes(r, &in->node_since_ms, 8);
    get_bytes(r, &in->due_ms, 8);
    get_bytes(r, &in->goal_deadline_ms, 8);
    get_bytes(r, &in->entry_pos.seq, 8);
    get_bytes(r, &in->entry_pos.file, 4);
    get_bytes(r, &in->entry_pos.offset, 8);
    get_name(r, in->project);
    get_name(r, in->key);
    get_name(r, in->match);
    get_name(r, in->item);
    return r->ok && r->p == r->end;
}

static bool inst_decode_2(reader_t *r, wm_inst_t *in)
{
    in->user_id = get_varint(r, UINT64_MAX);
    in->jid = (uint32_t)get_varint(r, UINT32_MAX);
    in->version = (uint32_t)get_varint(r, UINT32_MAX);
    in->node = (uint32_t)get_varint(r, UINT32_MAX);
    uint8_t flags = 0;
    get_bytes(r, &in->state, 1);
    get_bytes(r, &in->arm, 1);
    get_bytes(r, &flags, 1);
    in->converted = (flags & IF_CONVERTED) != 0;
    in->control = (flags & IF_CONTROL) != 0;
    in->steps = (uint32_t)get_varint(r, UINT32_MAX);
    in->entered_ms = wm_unzigzag(get_varint(r, UINT64_MAX));
    in->node_since_ms = time_undelta(get_varint(r, UINT64_MAX), in->entered_ms);
    in->due_ms = flags & IF_DUE ? time_undelta(get_varint(r, UINT64_MAX), in->node_since_ms) : INT64_MAX;
    if (flags & IF_GOAL)
        in->goal_deadline_ms = time_undelta(get_varint(r, UINT64_MAX), in->entered_ms);
    if (flags & IF_ENTRY) {
        in->entry_pos.seq = get_varint(r, UINT64_MAX);
        in->entry_pos.file = (uint32_t)get_varint(r, UINT32_MAX);
        in->entry_pos.offset = get_varint(r, UINT64_MAX);
    }
    if (flags & IF_MATCH)
        get_name(r, in->match);
    if (flags & IF_ITEM)
        get_name(r, in->item);
    return r->ok && r->p == r->end && in->jid;
}

/* "project\0key" from the name table into in->project and in->key. */
static bool journey_names(wm_names_t *names, uint32_t jid, wm_inst_t *in)
{
    char name[WM_NAME_BYTES_MAX + 1];
    int len = wm_names_get(names, jid, name, sizeof name);
    size_t pl = len > 0 ? strlen(name) : 0;
    if (len <= 0 || pl >= (size_t)len || pl >= RT_NAME_MAX || (size_t)len - pl - 1 >= RT_NAME_MAX)
        return false;
    memcpy(in->project, name, pl + 1);
    memcpy(in->key, name + pl + 1, (size_t)len - pl);
    return true;
}

static size_t journey_name(char *buf, const char *project, const char *key)
{
    size_t pl = strlen(project), kl = strlen(key);
    if (pl + 1 + kl > WM_NAME_BYTES_MAX)
        return 0;
    memcpy(buf, project, pl + 1);
    memcpy(buf + pl + 1, key, kl);
    return pl + 1 + kl;
}

bool wm__inst_decode(wm_names_t *names, uint64_t id, const void *data, size_t len, wm_inst_t *in)
{
    reader_t r = {data, (const unsigned char *)data + len, true};
    unsigned char fmt = 0;
    memset(in, 0, sizeof *in);
    get_bytes(&r, &fmt, 1);
    if (fmt == INST_FORMAT_1) {
        char name[WM_NAME_BYTES_MAX];
        if (!inst_decode_1(&r, in) || in->id != id)
            return false;
        size_t n = journey_name(name, in->project, in->key);
        if (names && n)
            wm_names_find(names, name, n, &in->jid);
        return true;
    }
    in->id = id;
    if (fmt != INST_FORMAT || !inst_decode_2(&r, in))
        return false;
    return !names || journey_names(names, in->jid, in);
}

/* A live instance id is its partition (top 16 bits) and a per-partition
 * counter: two varints keep the usual 8 bytes to 4. */
static unsigned char *put_inst_id(unsigned char *p, uint64_t id)
{
    return wm_put_varint(wm_put_varint(p, id >> 48), id & ((1ull << 48) - 1));
}

size_t wm__juser_encode(const wm_juser_t *ju, unsigned char *buf)
{
    unsigned char *p = buf;
    *p++ = JUSER_FORMAT;
    unsigned char *count = p++;
    *count = 0;
    for (int i = 0; i < WM_JUSER_LIVE_MAX; i++)
        if (ju->live[i]) {
            p = put_inst_id(p, ju->live[i]);
            (*count)++;
        }
    p = wm_put_varint(p, wm_zigzag(ju->last_entered_ms));
    p = wm_put_varint(p, time_delta(ju->last_exit_ms, ju->last_entered_ms));
    p = wm_put_varint(p, ju->entries);
    *p++ = ju->cond_state;
    return (size_t)(p - buf);
}

static bool juser_decode_1(reader_t *r, unsigned n, wm_juser_t *ju)
{
    for (unsigned i = 0; i < n; i++)
        get_bytes(r, &ju->live[i], 8);
    get_bytes(r, &ju->last_entered_ms, 8);
    get_bytes(r, &ju->last_exit_ms, 8);
    get_bytes(r, &ju->entries, 4);
    get_bytes(r, &ju->cond_state, 1);
    return r->ok && r->p == r->end;
}

static bool juser_decode_2(reader_t *r, unsigned n, wm_juser_t *ju)
{
    for (unsigned i = 0; i < n; i++) {
        uint64_t part = get_varint(r, 0xffff);
        ju->live[i] = part << 48 | get_varint(r, (1ull << 48) - 1);
    }
    ju->last_entered_ms = wm_unzigzag(get_varint(r, UINT64_MAX));
    ju->last_exit_ms = time_undelta(get_varint(r, UINT64_MAX), ju->last_entered_ms);
    ju->entries = (uint32_t)get_varint(r, UINT32_MAX);
    get_bytes(r, &ju->cond_state, 1);
    return r->ok && r->p == r->end;
}

bool wm__juser_decode(const void *data, size_t len, wm_juser_t *ju)
{
    reader_t r = {data, (const unsigned char *)data + len, true};
    unsigned char fmt = 0, n = 0;
    memset(ju, 0, sizeof *ju);
    get_bytes(&r, &fmt, 1);
    get_bytes(&r, &n, 1);
    if (n > WM_JUSER_LIVE_MAX)
        return false;
    if (fmt == JUSER_FORMAT_1)
        return juser_decode_1(&r, n, ju);
    return fmt == JUSER_FORMAT && juser_decode_2(&r, n, ju);
}

/* ---- instances ---- */

static int inst_get(wm_jtx_t *t, uint64_t id, wm_inst_t *in)
{
    unsigned char kb[8];
    wm_put_be64(kb, id);
    MDB_val k = {8, kb}, v;
    int rc = mdb_get(t->txn, t->rt->inst, &k, &v);
    if (rc || !wm__inst_decode(t->rt->host.names, id, v.mv_data, v.mv_size, in))
        return WM_ENOTFOUND;
    return 0;
}

/* The id of the journey in the partition's name table, assigned if new. */
static int journey_id(wm_jtx_t *t, const char *project, const char *key, uint32_t *jid)
{
    char name[WM_NAME_BYTES_MAX];
    size_t n = journey_name(name, project, key);
    return n ? wm_names_assign(t->rt->host.names, t->txn, name, n, jid) : WM_EINVAL;
}

static int inst_put(wm_jtx_t *t, wm_inst_t *in)
{
    int rc = in->jid ? 0 : journey_id(t, in->project, in->key, &in->jid);
    if (rc)
        return rc;
    unsigned char kb[8];
    wm_put_be64(kb, in->id);
    unsigned char enc[WM_INST_ENC_MAX];
    MDB_val k = {8, kb}, v = {wm__inst_encode(in, enc), enc};
    return mdb_put(t->txn, t->rt->inst, &k, &v, 0) ? WM_EIO : 0;
}

static int inst_del(wm_jtx_t *t, uint64_t id)
{
    unsigned char kb[8];
    wm_put_be64(kb, id);
    MDB_val k = {8, kb};
    int rc = mdb_del(t->txn, t->rt->inst, &k, NULL);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : WM_EIO;
}

/* j_user keys: u64be user, 0, varint journey id. Format 1 keys (older
 * stores) are u64be user, project, 0, key; a project name is never empty,
 * so the byte after the user id tells the two apart. */
#define JUSER_KEY_MAX (8 + 1 + 5)

static size_t juser_key(unsigned char *kb, uint64_t user_id, uint32_t jid)
{
    wm_put_be64(kb, user_id);
    kb[8] = 0;
    return (size_t)(wm_put_varint(kb + 9, jid) - kb);
}

static size_t juser_key_1(unsigned char *kb, size_t cap, uint64_t user_id, const char *project,
                          const char *key)
{
    size_t pl = strlen(project), kl = strlen(key);
    if (8 + pl + 1 + kl > cap)
        return 0;
    wm_put_be64(kb, user_id);
    memcpy(kb + 8, project, pl);
    kb[8 + pl] = 0;
    memcpy(kb + 9 + pl, key, kl);
    return 9 + pl + kl;
}

/* A row under its format 1 key, in a store that may still have them. */
static void juser_get_1(wm_jtx_t *t, uint64_t user_id, const char *project, const char *key,
                        wm_juser_t *ju)
{
    unsigned char kb[200];
    MDB_val k = {juser_key_1(kb, sizeof kb, user_id, project, key), kb}, v;
    if (k.mv_size && mdb_get(t->txn, t->rt->juser, &k, &v) == 0 &&
        wm__juser_decode(v.mv_data, v.mv_size, ju))
        ju->old_key = 1;
}

static int juser_get(wm_jtx_t *t, uint64_t user_id, const char *project, const char *key,
                     wm_juser_t *ju)
{
    memset(ju, 0, sizeof *ju);
    uint32_t jid;
    int rc = journey_id(t, project, key, &jid);
    if (rc)
        return rc;
    unsigned char kb[JUSER_KEY_MAX];
    MDB_val k = {juser_key(kb, user_id, jid), kb}, v;
    if (mdb_get(t->txn, t->rt->juser, &k, &v) == 0)
        wm__juser_decode(v.mv_data, v.mv_size, ju);
    else if (t->rt->old_juser_keys)
        juser_get_1(t, user_id, project, key, ju);
    return 0;
}

static int juser_put(wm_jtx_t *t, uint64_t user_id, const char *project, const char *key,
                     const wm_juser_t *ju)
{
    uint32_t jid;
    int rc = journey_id(t, project, key, &jid);
    if (rc)
        return rc;
    if (ju->old_key) {
        unsigned char ob[200];
        MDB_val ok = {juser_key_1(ob, sizeof ob, user_id, project, key), ob};
        if (ok.mv_size && (rc = mdb_del(t->txn, t->rt->juser, &ok, NULL)) && rc != MDB_NOTFOUND)
            return WM_EIO;
    }
    unsigned char kb[JUSER_KEY_MAX], enc[WM_JUSER_ENC_MAX];
    MDB_val k = {juser_key(kb, user_id, jid), kb}, v = {wm__juser_encode(ju, enc), enc};
    return mdb_put(t->txn, t->rt->juser, &k, &v, 0) ? WM_EIO : 0;
}

static int timer_key(unsigned char *kb, int64_t due, uint64_t id)
{
    wm_put_be64(kb, (uint64_t)due ^ (1ull << 63));
    wm_put_be64(kb + 8, id);
    return 16;
}

static int timer_set(wm_jtx_t *t, wm_inst_t *in, int64_t due)
{
    in->due_ms = due;
    if (due == INT64_MAX)
        return 0;
    unsigned char kb[16];
    MDB_val k = {(size_t)timer_key(kb, due, in->id), kb}, v = {0, NULL};
    if (due < t->rt->txn_min_due)
        t->rt->txn_min_due = due;
    return mdb_put(t->txn, t->rt->timer, &k, &v, 0) ? WM_EIO : 0;
}

static int timer_clear(wm_jtx_t *t, wm_inst_t *in)
{
    if (in->due_ms == INT64_MAX)
        return 0;
    unsigned char kb[16];
    MDB_val k = {(size_t)timer_key(kb, in->due_ms, in->id), kb};
    int rc = mdb_del(t->txn, t->rt->timer, &k, NULL);
    in->due_ms = INT64_MAX;
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : WM_EIO;
}

static int op_journey(wm_jtx_t *t, const wm_inst_t *in, const char *event, const char *extra)
{
    char props[1200];
    const wm_jversion_t *v =
        wm__jreg_version(wm__jreg_snapshot(t->rt->reg), in->project, in->key, in->version);
    const char *node = v && in->node < v->def->n_nodes ? v->def->nodes[in->node].id : "";
    snprintf(props, sizeof props,
             "{\"journey\":\"%s\",\"version\":%u,\"node\":\"%s\",\"instance\":\"%llx\"%s%s}",
             in->key, in->version, node, (unsigned long long)in->id, extra ? "," : "",
             extra ? extra : "");
    return wm__rt_op_event(t, in->user_id, in->project, event, props, false);
}

static int finish(wm_jtx_t *t, wm_inst_t *in, const wm_jversion_t *v, const char *reason)
{
    int rc = 0;
    if (in->state == ST_WAITING || in->state == ST_WAIT_EVENT || in->state == ST_HOLD)
        rc = wm__rt_stat_add(t, in->project, in->key, in->version, in->node, STAT_WAITING, 0, -1);
    if (!rc)
        rc = timer_clear(t, in);
    if (!rc)
        rc = wm__rt_stat_add(t, in->project, in->key, in->version, in->node, STAT_EXITED, 0, 1);
    wm_juser_t ju;
    if (!rc)
        rc = juser_get(t, in->user_id, in->project, in->key, &ju);
    for (int i = 0; !rc && i < WM_JUSER_LIVE_MAX; i++)
        if (ju.live[i] == in->id) {
            ju.live[i] = 0;
            ju.last_exit_ms = t->now_ms;
            rc = juser_put(t, in->user_id, in->project, in->key, &ju);
            break;
        }
    char extra[160];
    snprintf(extra, sizeof extra, "\"reason\":\"%s\"", reason);
    if (!rc)
        rc = op_journey(t, in, "$JourneyExited", extra);
    if (!rc)
        rc = inst_del(t, in->id);
    (void)v;
    return rc;
}

/* The arm properties of an op event: "split" (the split node's id, on the
 * move out of the split only), "arm" and "control" (of the instance's arm
 * at the journey's first split, the arm its report counts conversions by;
 * docs/api.md, "Operational events"). Empty when the instance has no arm. */
static void arm_extra(const wm_journey_def_t *d, const wm_inst_t *in, const wm_jnode_t *split, char *out,
                      size_t cap)
{
    out[0] = 0;
    if (!in->arm)
        return;
    const wm_jnode_t *n = split;
    for (uint32_t i = 0; !n && i < d->n_nodes; i++)
        if (d->nodes[i].type == WM_JN_SPLIT)
            n = &d->nodes[i];
    if (!n || in->arm - 1u >= n->u.branch.n_arms || !n->u.branch.arms[in->arm - 1u].name)
        return;
    const wm_jarm_t *arm = &n->u.branch.arms[in->arm - 1u];
    wm_buf_t b;
    wm_buf_init(&b, 0);
    if (split) {
        wm_buf_puts(&b, "\"split\":");
        wm_buf_json_str(&b, split->id, strlen(split->id));
        wm_buf_putc(&b, ',');
    }
    wm_buf_puts(&b, "\"arm\":");
    wm_buf_json_str(&b, arm->name, strlen(arm->name));
    wm_buf_puts(&b, arm->control ? ",\"control\":true" : ",\"control\":false");
    if (!b.err && b.len < cap) {
        memcpy(out, b.data, b.len);
        out[b.len] = 0;
    }
    wm_buf_release(&b);
}

static int move_to(wm_jtx_t *t, wm_inst_t *in, uint32_t next)
{
    char extra[400] = "";
    const wm_jversion_t *ver =
        wm__jreg_version(wm__jreg_snapshot(t->rt->reg), in->project, in->key, in->version);
    if (ver && in->node < ver->def->n_nodes && ver->def->nodes[in->node].type == WM_JN_SPLIT)
        arm_extra(ver->def, in, &ver->def->nodes[in->node], extra, sizeof extra);
    int rc = wm__rt_stat_add(t, in->project, in->key, in->version, in->node, STAT_PASSED, 0, 1);
    if (!rc)
        rc = wm__rt_stat_add(t, in->project, in->key, in->version, in->node, STAT_EDGE, next, 1);
    if (!rc)
        rc = wm__rt_stat_add(t, in->project, in->key, in->version, next, STAT_ENTERED, 0, 1);
    in->node = next;
    in->node_since_ms = t->now_ms;
    in->state = ST_RUNNING;
    if (!rc)
        rc = op_journey(t, in, "$JourneyNodeEntered", extra[0] ? extra : NULL);
    return rc;
}

/* ---- waits ---- */

static int64_t date_prop_ms(wm_jtx_t *t, const wm_inst_t *in, const char *path, const wm_json_t *profile)
{
    const wm_json_t *v = NULL;
    if (!strncmp(path, "profile.", 8))
        v = wm_json_get(profile, path + 8);
    else if (!strncmp(path, "user.", 5))
        v = wm_json_get(profile, path + 5);
    else if (!strncmp(path, "item.", 5) && in->item[0]) {
        const char *dot = strchr(path + 5, '.');
        /* "item.maturity_date" uses the instance's item of any type the
         * journey names in its entry; "item.<type>.<prop>" names the type */
        const wm_jversion_t *ver =
            wm__jreg_version(wm__jreg_snapshot(t->rt->reg), in->project, in->key, in->version);
        char type[RT_NAME_MAX] = "";
        const char *prop = path + 5;
        if (dot) {
            snprintf(type, sizeof type, "%.*s", (int)(dot - (path + 5)), path + 5);
            prop = dot + 1;
        } else if (ver && ver->def->entry.date_prop) {
            /* type from the entry ("item_type" is kept in the entry's event field) */
            snprintf(type, sizeof type, "%s", ver->def->entry.item_type ? ver->def->entry.item_type : "");
        }
        v = wm_json_get(wm__rt_item(t, in->project, type, in->item), prop);
    }
    if (!v)
        return INT64_MIN;
    if (v->type == WM_JSON_NUMBER)
        return v->is_int ? v->i64 : (int64_t)v->u.num;
    int64_t ms;
    bool date_only;
    int tz = wm__rt_tz_offset(t, profile, NULL, NULL, t->now_ms);
    if (v->type == WM_JSON_STRING && wm_datetime_parse(v->u.str, tz, &ms, &date_only) == 0)
        return ms;
    return INT64_MIN;
}

static int64_t next_time_of_day(wm_jtx_t *t, const wm_json_t *profile, int hh, int mm, uint8_t weekdays)
{
    int tz = wm__rt_tz_offset(t, profile, NULL, NULL, t->now_ms);
    int64_t day = local_day(t->now_ms, tz);
    for (int i = 0; i < 8; i++, day++) {
        int64_t at = day * 86400000 + ((int64_t)hh * 60 + mm) * 60000 - (int64_t)tz * 60000;
        int wd = (int)((day + 3) % 7); /* 1970-01-01 was a Thursday: Monday = 0 */
        if (wd < 0)
            wd += 7;
        if (at > t->now_ms && (weekdays & (1u << wd)))
            return at;
    }
    return t->now_ms;
}

static int64_t wait_due(wm_jtx_t *t, const wm_inst_t *in, const wm_jnode_t *n, const wm_json_t *profile)
{
    switch (n->u.wait.kind) {
    case WM_WAIT_DURATION:
        return t->now_ms + n->u.wait.duration_ms;
    case WM_WAIT_TIME_OF_DAY:
        return next_time_of_day(t, profile, n->u.wait.hh, n->u.wait.mm,
                                n->u.wait.weekdays ? n->u.wait.weekdays : 0x7f);
    case WM_WAIT_DATE_PROP: {
        int64_t base = date_prop_ms(t, in, n->u.wait.date_prop, profile);
        return base == INT64_MIN ? t->now_ms : base + n->u.wait.offset_ms;
    }
    case WM_WAIT_TRADING_DAY: {
        const wm_calendar_t *cal = wm__jreg_calendar(wm__jreg_snapshot(t->rt->reg), in->project);
        if (cal)
            return wm_calendar_next_open(cal, t->now_ms, n->u.wait.hh, n->u.wait.mm);
        return next_time_of_day(t, profile, n->u.wait.hh, n->u.wait.mm, 0x1f);
    }
    }
    return t->now_ms;
}

/* ---- node execution ---- */

static const wm_json_t *entry_event(wm_jtx_t *t, const wm_inst_t *in)
{
    if (!in->entry_pos.seq || !t->rt->host.read_event)
        return NULL;
    char *json = NULL;
    size_t len = 0;
    if (t->rt->host.read_event(t->rt->host.ctx, &in->entry_pos, &json, &len))
        return NULL;
    char *copy = wm_arena_strndup(t->arena, json, len);
    wm_free(json);
    wm_json_t *o;
    wm_json_error_t je;
    return copy && wm_json_parse(t->arena, copy, len, &o, &je) == 0 ? o : NULL;
}

/* set_tag writes the audience's tag store (a manual value), so the tag
 * shows in customer 360 and conditions read it like any other tag. */
static int set_tag(wm_jtx_t *t, uint64_t user_id, const char *project, const char *tag,
                   const wm_json_t *value)
{
    wm_jrt_t *rt = t->rt;
    if (!rt->host.tag_set)
        return 0;
    wm_json_t yes = {.type = WM_JSON_TRUE};
    return rt->host.tag_set(rt->host.ctx, t->aud_tx, user_id, project, tag, value ? value : &yes);
}

static int update_profile(wm_jtx_t *t, uint64_t user_id, const wm_json_t *set)
{
    const wm_json_t *cur = wm__rt_profile(t, user_id);
    wm_json_t *n = wm_json_new(t->arena, WM_JSON_OBJECT);
    if (!n || !set)
        return n ? 0 : WM_ENOMEM;
    for (const wm_json_t *c = cur ? cur->u.child : NULL; c; c = c->next)
        if (!wm_json_get(set, c->key)) {
            wm_json_t *cp = wm_arena_alloc(t->arena, sizeof *cp);
            if (!cp)
                return WM_ENOMEM;
            *cp = *c;
            wm_json_append(t->arena, n, c->key, cp);
        }
    for (const wm_json_t *c = set->u.child; c; c = c->next) {
        if (c->type == WM_JSON_NULL)
            continue;
        wm_json_t *cp = wm_arena_alloc(t->arena, sizeof *cp);
        if (!cp)
            return WM_ENOMEM;
        *cp = *c;
        wm_json_append(t->arena, n, c->key, cp);
    }
    return wm__rt_profile_store(t, user_id, n);
}

static int enter_wait(wm_jtx_t *t, wm_inst_t *in, uint8_t state, int64_t due)
{
    in->state = state;
    int rc = timer_set(t, in, due);
    if (!rc)
        rc = wm__rt_stat_add(t, in->project, in->key, in->version, in->node, STAT_WAITING, 0, 1);
    return rc ? rc : inst_put(t, in);
}

/* Runs the instance from its current node until it waits or ends. */
static int advance(wm_jtx_t *t, wm_inst_t *in, const wm_jversion_t *v, const wm_json_t *event)
{
    const wm_journey_def_t *d = v->def;
    const wm_json_t *profile = wm__rt_profile(t, in->user_id);
    for (int step = 0; step < WM_ADVANCE_STEPS_MAX; step++) {
        if (d->exit_when.condition &&
            eval(t, d->exit_when.condition, in->user_id, in->project, profile, event))
            return finish(t, in, v, "exit_when");
        if (in->node >= d->n_nodes)
            return finish(t, in, v, "end");
        const wm_jnode_t *n = &d->nodes[in->node];
        in->steps++;
        uint32_t next = n->next;
        int rc = 0;
        switch (n->type) {
        case WM_JN_WAIT: {
            int64_t due = wait_due(t, in, n, profile);
            if (due > t->now_ms)
                return enter_wait(t, in, ST_WAITING, due);
            break;
        }
        case WM_JN_WAIT_EVENT:
            return enter_wait(t, in, ST_WAIT_EVENT,
                              n->u.wait_event.timeout_ms > 0 ? t->now_ms + n->u.wait_event.timeout_ms
                                                             : INT64_MAX);
        case WM_JN_CONDITION:
            next = eval(t, n->u.condition.cond, in->user_id, in->project, profile, event)
                       ? n->u.condition.yes
                       : n->u.condition.no;
            break;
        case WM_JN_BRANCH:
            next = n->u.branch.otherwise;
            for (uint32_t i = 0; i < n->u.branch.n_arms; i++)
                if (eval(t, n->u.branch.arms[i].cond, in->user_id, in->project, profile, event)) {
                    next = n->u.branch.arms[i].next;
                    break;
                }
            break;
        case WM_JN_SPLIT: {
            uint32_t arm = wm_split_arm(d, n, in->user_id);
            if (arm < n->u.branch.n_arms) {
                in->arm = (uint8_t)(arm + 1);
                in->control = n->u.branch.arms[arm].control;
                next = n->u.branch.arms[arm].next;
                rc = wm__rt_stat_add(t, in->project, in->key, in->version, in->node,
                                     STAT_ARM_ENTERED, arm, 1);
            }
            break;
        }
        case WM_JN_SEND:
            t->hold_until = 0;
            rc = wm__rt_send(t, in, v, n, event ? event : entry_event(t, in));
            if (!rc && t->hold_until > t->now_ms)
                return enter_wait(t, in, ST_HOLD, t->hold_until);
            break;
        case WM_JN_ADVISOR_TASK:
            rc = wm__rt_lead(t, in, v, n, event ? event : entry_event(t, in));
            break;
        case WM_JN_WEBHOOK:
            rc = wm__rt_webhook(t, in, v, n, event ? event : entry_event(t, in));
            break;
        case WM_JN_UPDATE_PROFILE:
            rc = update_profile(t, in->user_id, n->u.update_profile.set);
            profile = wm__rt_profile(t, in->user_id);
            break;
        case WM_JN_SET_TAG:
            rc = set_tag(t, in->user_id, in->project, n->u.set_tag.tag, n->u.set_tag.value);
            break;
        case WM_JN_JUMP: {
            wm_inst_t copy = *in;
            rc = finish(t, in, v, "jump");
            if (!rc)
                rc = wm__rt_enter_other(t, copy.user_id, copy.project, n->u.jump.journey_key,
                                        copy.item, &copy.entry_pos);
            return rc;
        }
        case WM_JN_EXIT:
            return finish(t, in, v, "exit");
        }
        if (rc)
            return rc;
        if (next == WM_JOURNEY_NONE || next >= d->n_nodes)
            return finish(t, in, v, "end");
        if ((rc = move_to(t, in, next)))
            return rc;
    }
    return finish(t, in, v, "step_limit");
}

/* ---- entry ---- */

static const char *prop_text(wm_arena_t *a, const wm_json_t *event, const char *name)
{
    const wm_json_t *v = wm_json_get(wm_json_get(event, "properties"), name);
    if (!v)
        return NULL;
    if (v->type == WM_JSON_STRING)
        return v->u.str;
    wm_buf_t b;
    wm_buf_init(&b, 256);
    wm_json_write(&b, v);
    const char *s = b.err ? NULL : wm_arena_strndup(a, b.data, b.len);
    wm_buf_release(&b);
    return s;
}

static void remember_keys(wm_jtx_t *t, wm_inst_t *in, const wm_journey_def_t *d, const wm_json_t *event)
{
    for (uint32_t i = 0; i < d->n_nodes && event; i++) {
        const wm_jnode_t *n = &d->nodes[i];
        if (!in->match[0] && n->type == WM_JN_WAIT_EVENT && n->u.wait_event.match_prop) {
            const char *m = prop_text(t->arena, event, n->u.wait_event.match_prop);
            if (m)
                snprintf(in->match, sizeof in->match, "%s", m);
        }
        if (!in->item[0] && n->type == WM_JN_SEND && n->u.send.item_key) {
            const char *m = prop_text(t->arena, event, n->u.send.item_key);
            if (m)
                snprintf(in->item, sizeof in->item, "%s", m);
        }
    }
}

static size_t entries_key(char *kb, size_t cap, const char *project, const char *key)
{
    int n = snprintf(kb, cap, "%s%c%s", project, 0, key);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static uint64_t entries_get(MDB_txn *txn, MDB_dbi dbi, const char *project, const char *key)
{
    char kb[200];
    MDB_val k = {entries_key(kb, sizeof kb, project, key), kb}, val;
    uint64_t count = 0;
    if (k.mv_size && mdb_get(txn, dbi, &k, &val) == 0 && val.mv_size == 8)
        memcpy(&count, val.mv_data, 8);
    return count;
}

uint64_t wm__jrt_entries_count(wm_jrt_t *rt, const char *project, const char *key)
{
    MDB_txn *txn;
    if (mdb_txn_begin(rt->env, NULL, MDB_RDONLY, &txn))
        return 0;
    uint64_t n = entries_get(txn, rt->entries, project, key);
    mdb_txn_abort(txn);
    return n;
}

/* The cap counts entries over all partitions: the engine keeps the total. */
static bool entry_cap_reached(wm_jtx_t *t, const wm_jversion_t *v, uint64_t *count)
{
    *count = entries_get(t->txn, t->rt->entries, v->project, v->key);
    if (!v->def->entry.entry_cap)
        return false;
    if (!t->rt->host.entry_reserve)
        return *count >= v->def->entry.entry_cap;
    return !t->rt->host.entry_reserve(t->rt->host.ctx, v->project, v->key, v->def->entry.entry_cap, *count);
}

static int try_enter(wm_jtx_t *t, const wm_jversion_t *v, uint64_t user_id, const wm_json_t *event,
                     const wm_log_pos_t *pos, const char *item)
{
    const wm_journey_def_t *d = v->def;
    wm_juser_t ju;
    int rc = juser_get(t, user_id, v->project, v->key, &ju);
    if (rc)
        return rc;
    uint32_t live = 0, max_live = d->entry.max_concurrent ? d->entry.max_concurrent : 1;
    int free_slot = -1;
    for (int i = 0; i < WM_JUSER_LIVE_MAX; i++) {
        if (ju.live[i])
            live++;
        else if (free_slot < 0)
            free_slot = i;
    }
    if (max_live > WM_JUSER_LIVE_MAX)
        max_live = WM_JUSER_LIVE_MAX;
    if (live >= max_live || free_slot < 0)
        return 0; /* at most max_concurrent live instances per user and journey */
    switch (d->entry.reentry) {
    case WM_REENTRY_NEVER:
        if (ju.entries && max_live == 1)
            return 0;
        break;
    case WM_REENTRY_AFTER_EXIT:
        if (live && max_live == 1)
            return 0;
        if (ju.entries && d->entry.reentry_wait_ms && t->now_ms - ju.last_exit_ms < d->entry.reentry_wait_ms)
            return 0;
        break;
    case WM_REENTRY_ANY_TIME:
        if (ju.entries && d->entry.reentry_wait_ms &&
            t->now_ms - ju.last_entered_ms < d->entry.reentry_wait_ms)
            return 0;
        break;
    }
    uint64_t count;
    if (entry_cap_reached(t, v, &count))
        return 0;
    char kb[200];
    MDB_val k = {entries_key(kb, sizeof kb, v->project, v->key), kb}, val = {8, &count};
    count++;
    if (mdb_put(t->txn, t->rt->entries, &k, &val, 0))
        return WM_EIO;
    wm_inst_t in;
    memset(&in, 0, sizeof in);
    in.id = ((uint64_t)t->rt->host.part_index << 48) | ++t->rt->next_inst;
    if ((rc = meta_put(t->txn, t->rt->meta, "next_inst", t->rt->next_inst)))
        return rc;
    in.user_id = user_id;
    in.version = v->version;
    in.node = d->start;
    in.state = ST_RUNNING;
    in.entered_ms = in.node_since_ms = t->now_ms;
    in.due_ms = INT64_MAX;
    in.goal_deadline_ms = d->goal.event && d->goal.within_ms ? t->now_ms + d->goal.within_ms : 0;
    if (pos)
        in.entry_pos = *pos;
    snprintf(in.project, sizeof in.project, "%s", v->project);
    snprintf(in.key, sizeof in.key, "%s", v->key);
    if (item)
        snprintf(in.item, sizeof in.item, "%s", item);
    remember_keys(t, &in, d, event);
    ju.live[free_slot] = in.id;
    ju.entries++;
    ju.last_entered_ms = t->now_ms;
    if ((rc = juser_put(t, user_id, v->project, v->key, &ju)))
        return rc;
    if ((rc = wm__rt_stat_add(t, v->project, v->key, v->version, STAT_NODE_JOURNEY,
                              STAT_JOURNEY_ENTERED, 0, 1)) ||
        (rc = wm__rt_stat_add(t, v->project, v->key, v->version, d->start, STAT_ENTERED, 0, 1)))
        return rc;
    if ((rc = op_journey(t, &in, "$JourneyEntered", NULL)))
        return rc;
    return advance(t, &in, v, event);
}

int wm__rt_enter_other(wm_jtx_t *t, uint64_t user_id, const char *project, const char *key,
                       const char *item, const wm_log_pos_t *pos)
{
    const wm_jversion_t *v = wm__jreg_current(wm__jreg_snapshot(t->rt->reg), project, key);
    if (!v || !v->accepting)
        return 0;
    return try_enter(t, v, user_id, NULL, pos, item);
}

/* ---- events ---- */

static bool event_listed(const wm_jnode_t *n, const char *name)
{
    for (uint32_t i = 0; i < n->u.wait_event.n_events; i++)
        if (!strcmp(n->u.wait_event.events[i], name))
            return true;
    return false;
}

static int on_live_instance(wm_jtx_t *t, uint64_t id, const char *name, const wm_json_t *event,
                            const wm_json_t *profile)
{
    wm_inst_t in;
    if (inst_get(t, id, &in))
        return 0;
    const wm_jversion_t *v = wm__jreg_version(wm__jreg_snapshot(t->rt->reg), in.project, in.key, in.version);
    if (!v || !v->running)
        return 0;
    const wm_journey_def_t *d = v->def;
    /* The goal is a conversion, recorded once per instance; it does not end
     * the journey (exit_when does): the same event may also satisfy a
     * wait_event, and what follows runs. Checked before exit_when, so an
     * event that is both the conversion and a reason to leave counts. */
    bool dirty = false;
    int rc = 0;
    if (d->goal.event && !in.converted && !strcmp(d->goal.event, name) &&
        (!in.goal_deadline_ms || t->now_ms <= in.goal_deadline_ms) &&
        eval(t, d->goal.where, in.user_id, in.project, profile, event)) {
        in.converted = 1;
        dirty = true;
        rc = wm__rt_stat_add(t, in.project, in.key, in.version, STAT_NODE_JOURNEY, STAT_GOAL, 0, 1);
        if (!rc && in.arm)
            for (uint32_t i = 0; i < d->n_nodes; i++)
                if (d->nodes[i].type == WM_JN_SPLIT) {
                    rc = wm__rt_stat_add(t, in.project, in.key, in.version, i, STAT_ARM_CONVERTED,
                                         in.arm - 1u, 1);
                    break;
                }
        char extra[400];
        arm_extra(d, &in, NULL, extra, sizeof extra);
        if (!rc)
            rc = op_journey(t, &in, "$JourneyGoal", extra[0] ? extra : NULL);
        if (rc)
            return rc;
    }
    if (d->exit_when.event && !strcmp(d->exit_when.event, name) &&
        eval(t, d->exit_when.where, in.user_id, in.project, profile, event))
        return finish(t, &in, v, "exit_when");
    const wm_jnode_t *n = in.node < d->n_nodes ? &d->nodes[in.node] : NULL;
    bool resumes = in.state == ST_WAIT_EVENT && n && n->type == WM_JN_WAIT_EVENT && event_listed(n, name);
    if (resumes && n->u.wait_event.match_prop && in.match[0]) {
        const char *m = prop_text(t->arena, event, n->u.wait_event.match_prop);
        resumes = m && !strcmp(m, in.match);
    }
    if (resumes)
        resumes = eval(t, n->u.wait_event.where, in.user_id, in.project, profile, event);
    if (!resumes)
        return dirty ? inst_put(t, &in) : 0;
    rc = wm__rt_stat_add(t, in.project, in.key, in.version, in.node, STAT_WAITING, 0, -1);
    if (!rc)
        rc = timer_clear(t, &in);
    if (!rc)
        rc = move_to(t, &in, n->u.wait_event.on_event);
    return rc ? rc : advance(t, &in, v, event);
}

static int live_instances(wm_jtx_t *t, uint64_t user_id, uint64_t *ids, uint32_t max, uint32_t *n)
{
    MDB_cursor *c;
    *n = 0;
    if (mdb_cursor_open(t->txn, t->rt->juser, &c))
        return WM_EIO;
    unsigned char kb[8];
    wm_put_be64(kb, user_id);
    MDB_val k = {8, kb}, v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && *n < max && k.mv_size > 8 && wm_get_be64(k.mv_data) == user_id) {
        wm_juser_t ju;
        if (wm__juser_decode(v.mv_data, v.mv_size, &ju)) {
            for (int i = 0; i < WM_JUSER_LIVE_MAX && *n < max; i++)
                if (ju.live[i])
                    ids[(*n)++] = ju.live[i];
        }
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    return 0;
}

int wm__jrt_on_event(wm_jtx_t *t, uint64_t user_id, const char *json, size_t len,
                     const wm_log_pos_t *pos, bool is_op)
{
    wm_json_t *event;
    wm_json_error_t je;
    char *copy = wm_arena_strndup(t->arena, json, len);
    if (!copy || wm_json_parse(t->arena, copy, len, &event, &je))
        return 0;
    return wm__jrt_on_event_parsed(t, user_id, event, pos, is_op);
}

static int on_event(wm_jtx_t *t, uint64_t user_id, const wm_json_t *event, const wm_log_pos_t *pos,
                    bool is_op, bool count);

int wm__jrt_on_event_parsed(wm_jtx_t *t, uint64_t user_id, const wm_json_t *event, const wm_log_pos_t *pos,
                            bool is_op)
{
    return on_event(t, user_id, event, pos, is_op, true);
}

int wm__jrt_on_event_now(wm_jtx_t *t, uint64_t user_id, const char *json, size_t len)
{
    wm_json_t *event;
    wm_json_error_t je;
    char *copy = wm_arena_strndup(t->arena, json, len);
    if (!copy || wm_json_parse(t->arena, copy, len, &event, &je))
        return 0;
    return on_event(t, user_id, event, NULL, false, false);
}

static int on_event(wm_jtx_t *t, uint64_t user_id, const wm_json_t *event, const wm_log_pos_t *pos,
                    bool is_op, bool count)
{
    const wm_jsnapshot_t *s = wm__jreg_snapshot(t->rt->reg);
    if (!s)
        return 0;
    const char *name = wm_json_str(wm_json_get(event, "event"));
    const char *project = wm_json_str(wm_json_get(event, "project"));
    const wm_json_t *tm = wm_json_get(event, "time");
    if (!name || !project)
        return 0;
    const wm_json_t *profile = wm__rt_profile(t, user_id);
    int rc = count ? update_counters(t, s, user_id, event, name, tm && tm->is_int ? tm->i64 : t->now_ms, profile)
                   : 0;
    if (rc || is_op)
        return rc;
    /* an unsubscribe sent by an app or a provider (SMS "R" reply) withdraws
     * the channel's consent, like POST /api/v1/users/{id}/consent */
    if (!strcmp(name, "Unsubscribe") || !strcmp(name, "$Unsubscribe")) {
        const char *ch = wm_json_str(wm_json_get(wm_json_get(event, "properties"), "channel"));
        if (ch && !strcmp(name, "Unsubscribe")) {
            wm_json_t *cmd = wm_json_new(t->arena, WM_JSON_OBJECT);
            if (!cmd)
                return WM_ENOMEM;
            wm_json_append(t->arena, cmd, "channel", wm_json_new_str(t->arena, ch, strlen(ch)));
            wm_json_append(t->arena, cmd, "consent", wm_json_new(t->arena, WM_JSON_FALSE));
            wm_json_append(t->arena, cmd, "project", wm_json_new_str(t->arena, project, strlen(project)));
            wm_json_append(t->arena, cmd, "from_event", wm_json_new(t->arena, WM_JSON_TRUE));
            if ((rc = wm__rt_cmd_consent(t, user_id, cmd)))
                return rc;
            profile = wm__rt_profile(t, user_id);
        }
    }
    uint64_t ids[WM_LIVE_PER_USER_MAX];
    uint32_t n = 0;
    if ((rc = live_instances(t, user_id, ids, WM_LIVE_PER_USER_MAX, &n)))
        return rc;
    for (uint32_t i = 0; i < n && !rc; i++)
        rc = on_live_instance(t, ids[i], name, event, profile);
    for (uint32_t i = 0; i < s->n_versions && !rc; i++) {
        const wm_jversion_t *v = s->versions[i];
        const wm_journey_def_t *d = v->def;
        if (!v->accepting || strcmp(v->project, project))
            continue;
        if (d->entry.kind == WM_ENTRY_EVENT && d->entry.event && !strcmp(d->entry.event, name)) {
            profile = wm__rt_profile(t, user_id);
            if (eval(t, d->entry.where, user_id, project, profile, event))
                rc = try_enter(t, v, user_id, event, pos, NULL);
        } else if (d->entry.kind == WM_ENTRY_SEGMENT && !strcmp(name, "$SegmentEntered")) {
            const char *sg = wm_json_str(wm_json_get(wm_json_get(event, "properties"), "segment"));
            if (!sg || strcmp(sg, d->entry.segment))
                continue;
            profile = wm__rt_profile(t, user_id);
            if (eval(t, d->entry.condition, user_id, project, profile, event))
                rc = try_enter(t, v, user_id, event, pos, NULL);
        } else if (d->entry.kind == WM_ENTRY_CONDITION && d->entry.condition) {
            profile = wm__rt_profile(t, user_id);
            bool now_true = eval(t, d->entry.condition, user_id, project, profile, event);
            wm_juser_t ju;
            if ((rc = juser_get(t, user_id, project, v->key, &ju)))
                break;
            if (now_true != (ju.cond_state != 0)) {
                ju.cond_state = now_true;
                if ((rc = juser_put(t, user_id, project, v->key, &ju)))
                    break;
                if (now_true)
                    rc = try_enter(t, v, user_id, event, pos, NULL);
            }
        }
    }
    return rc;
}

/* ---- timers ---- */

int wm__jrt_fire_timers(wm_jtx_t *t, uint32_t max, bool *more)
{
    MDB_cursor *c;
    *more = false;
    if (mdb_cursor_open(t->txn, t->rt->timer, &c))
        return WM_EIO;
    typedef struct due { int64_t due; uint64_t id; } due_t;
    due_t *list = wm_arena_alloc(t->arena, sizeof *list * max);
    uint32_t n = 0;
    MDB_val k, v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (rc == 0 && k.mv_size == 16 && list) {
        int64_t due = (int64_t)(wm_get_be64(k.mv_data) ^ (1ull << 63));
        if (due > t->now_ms)
            break;
        if (n == max) {
            *more = true;
            break;
        }
        list[n].due = due;
        list[n].id = wm_get_be64((const unsigned char *)k.mv_data + 8);
        n++;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    rc = 0;
    for (uint32_t i = 0; i < n && !rc; i++) {
        unsigned char kb[16];
        MDB_val key = {(size_t)timer_key(kb, list[i].due, list[i].id), kb};
        mdb_del(t->txn, t->rt->timer, &key, NULL);
        wm_inst_t in;
        if (inst_get(t, list[i].id, &in) || in.due_ms != list[i].due)
            continue;
        in.due_ms = INT64_MAX;
        const wm_jversion_t *ver =
            wm__jreg_version(wm__jreg_snapshot(t->rt->reg), in.project, in.key, in.version);
        if (!ver) {
            rc = inst_del(t, in.id);
            continue;
        }
        if (!ver->running)
            continue;
        const wm_jnode_t *node = &ver->def->nodes[in.node];
        uint32_t next = in.state == ST_WAIT_EVENT ? node->u.wait_event.on_timeout : node->next;
        rc = wm__rt_stat_add(t, in.project, in.key, in.version, in.node, STAT_WAITING, 0, -1);
        if (!rc && in.state == ST_HOLD) {
            /* quiet hours are over: run the held send node again */
            in.state = ST_RUNNING;
            rc = advance(t, &in, ver, NULL);
            continue;
        }
        if (in.state == ST_WAIT_EVENT && !rc) {
            char extra[64];
            snprintf(extra, sizeof extra, "\"timeout\":true");
            rc = op_journey(t, &in, "$JourneyWaitTimeout", extra);
        }
        if (!rc && (next == WM_JOURNEY_NONE || next >= ver->def->n_nodes)) {
            const char *why = in.state == ST_WAIT_EVENT ? "timeout" : "end";
            in.state = ST_RUNNING; /* already un-counted from WAITING */
            rc = finish(t, &in, ver, why);
            continue;
        }
        if (!rc)
            rc = move_to(t, &in, next);
        if (!rc)
            rc = advance(t, &in, ver, NULL);
    }
    int64_t nd = first_due(t->rt, t->txn);
    t->rt->txn_min_due = nd;
    atomic_store(&t->rt->next_due, nd);
    return rc;
}

/* ---- commands ---- */

static int cmd_journey_stop(wm_jtx_t *t, const wm_json_t *cmd)
{
    const char *project = wm_json_str(wm_json_get(cmd, "project"));
    const char *key = wm_json_str(wm_json_get(cmd, "key"));
    const char *reason = wm_json_str(wm_json_get(cmd, "reason"));
    if (!project || !key)
        return 0;
    /* collect first: finishing deletes from the DBI being walked */
    MDB_cursor *c;
    if (mdb_cursor_open(t->txn, t->rt->inst, &c))
        return WM_EIO;
    uint64_t *ids = NULL;
    uint32_t n = 0, cap = 0;
    MDB_val k, v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (rc == 0) {
        wm_inst_t in;
        if (k.mv_size == 8 &&
            wm__inst_decode(t->rt->host.names, wm_get_be64(k.mv_data), v.mv_data, v.mv_size, &in)) {
            if (!strcmp(in.key, key) && !strcmp(in.project, project)) {
                if (n == cap) {
                    cap = cap ? cap * 2 : 64;
                    uint64_t *p = wm_realloc(ids, cap * sizeof *p);
                    if (!p)
                        break;
                    ids = p;
                }
                ids[n++] = in.id;
            }
        }
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    char why[200];
    snprintf(why, sizeof why, "stopped: %s", reason ? reason : "journey stopped");
    for (char *p = why; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
            *p = ' ';
    rc = 0;
    for (uint32_t i = 0; i < n && !rc; i++) {
        wm_inst_t in;
        if (inst_get(t, ids[i], &in) == 0)
            rc = finish(t, &in, NULL, why);
    }
    wm_free(ids);
    return rc;
}

static int cmd_enter(wm_jtx_t *t, uint64_t user_id, const wm_json_t *cmd)
{
    const char *project = wm_json_str(wm_json_get(cmd, "project"));
    const char *key = wm_json_str(wm_json_get(cmd, "key"));
    const char *item = wm_json_str(wm_json_get(cmd, "item"));
    if (!project || !key)
        return 0;
    const wm_jversion_t *v = wm__jreg_current(wm__jreg_snapshot(t->rt->reg), project, key);
    if (!v || !v->accepting)
        return 0;
    const wm_json_t *cond = NULL;
    (void)cond;
    return try_enter(t, v, user_id, wm_json_get(cmd, "event"), NULL, item);
}

/* A date entry fires on the day the date plus the offset falls on. A date
 * already past (a birthday, an account-opening date) recurs every year: its
 * anniversaries in the years around today are tried too. A future date (a
 * maturity) fires once. Feb 29 anniversaries fall on Mar 1 in other years. */
static int64_t with_year(int64_t local_ms, int year)
{
    time_t secs = (time_t)(local_ms >= 0 ? local_ms / 1000 : (local_ms - 999) / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    tm.tm_year = year - 1900;
    return (int64_t)timegm(&tm) * 1000 + (local_ms % 1000 + 1000) % 1000;
}

static bool date_matches(int64_t base, int64_t offset, int tz, int32_t today)
{
    if (local_day(base + offset, tz) == today)
        return true;
    int64_t local = base + (int64_t)tz * 60000;
    int32_t base_day = local_day(base, tz);
    if (base_day >= today)
        return false;
    time_t now_secs = (time_t)((int64_t)today * 86400);
    struct tm tm;
    gmtime_r(&now_secs, &tm);
    for (int y = tm.tm_year + 1900 - 1; y <= tm.tm_year + 1900 + 1; y++) {
        int64_t anniv = with_year(local, y) - (int64_t)tz * 60000;
        if (local_day(anniv, tz) > base_day && local_day(anniv + offset, tz) == today)
            return true;
    }
    return false;
}

/* Scheduled and date-property entries: every user of the project in this
 * partition whose condition holds (schedule) or whose date matches today
 * (date property). */
static int cmd_scan_entries(wm_jtx_t *t, const wm_json_t *cmd, bool by_date)
{
    const char *project = wm_json_str(wm_json_get(cmd, "project"));
    const char *key = wm_json_str(wm_json_get(cmd, "key"));
    const wm_jversion_t *v = project && key ? wm__jreg_current(wm__jreg_snapshot(t->rt->reg), project, key)
                                            : NULL;
    if (!v || !v->accepting)
        return 0;
    MDB_cursor *c;
    if (mdb_cursor_open(t->txn, t->rt->host.dbi_profiles, &c))
        return WM_EIO;
    uint64_t *users = NULL;
    uint32_t n = 0, cap = 0;
    MDB_val k, val;
    int rc = mdb_cursor_get(c, &k, &val, MDB_FIRST);
    while (rc == 0) {
        if (k.mv_size == 8) {
            if (n == cap) {
                cap = cap ? cap * 2 : 1024;
                uint64_t *p = wm_realloc(users, cap * sizeof *p);
                if (!p)
                    break;
                users = p;
            }
            users[n++] = wm_get_be64(k.mv_data);
        }
        rc = mdb_cursor_get(c, &k, &val, MDB_NEXT);
    }
    mdb_cursor_close(c);
    rc = 0;
    const wm_journey_def_t *d = v->def;
    for (uint32_t i = 0; i < n && !rc; i++) {
        const wm_json_t *profile = wm__rt_profile(t, users[i]);
        if (!by_date) {
            if (d->entry.segment &&
                !(t->rt->host.in_segment &&
                  t->rt->host.in_segment(t->rt->host.ctx, t->aud_tx, users[i], project, d->entry.segment)))
                continue;
            if (eval(t, d->entry.condition, users[i], project, profile, NULL))
                rc = try_enter(t, v, users[i], NULL, NULL, NULL);
            continue;
        }
        /* date entries: the profile property itself, or each held item's date,
         * for the audience the optional condition selects */
        if (d->entry.condition && !eval(t, d->entry.condition, users[i], project, profile, NULL))
            continue;
        int tz = wm__rt_tz_offset(t, profile, NULL, NULL, t->now_ms);
        int32_t today = local_day(t->now_ms, tz);
        const char *path = d->entry.date_prop;
        if (!path)
            continue;
        wm_inst_t probe;
        memset(&probe, 0, sizeof probe);
        snprintf(probe.project, sizeof probe.project, "%s", project);
        snprintf(probe.key, sizeof probe.key, "%s", key);
        probe.version = v->version;
        const wm_json_t *held = NULL;
        const char *item_list = d->entry.item_key;
        if (!strncmp(path, "item.", 5))
            held = wm_json_get(profile, item_list ? item_list : "held_products");
        const wm_json_t *one = NULL;
        const wm_json_t *it = held && held->type == WM_JSON_ARRAY ? held->u.child : NULL;
        do {
            probe.item[0] = 0;
            if (it && it->type == WM_JSON_STRING) {
                const char *id = it->u.str;
                const char *colon = strchr(id, ':'); /* "wealth:WM001" style */
                snprintf(probe.item, sizeof probe.item, "%s", colon ? colon + 1 : id);
            }
            int64_t base = date_prop_ms(t, &probe, path, profile);
            for (uint32_t o = 0; base != INT64_MIN && o < d->entry.n_offsets && !rc; o++)
                if (date_matches(base, d->entry.offsets_ms[o], tz, today)) {
                    rc = try_enter(t, v, users[i], NULL, NULL, probe.item[0] ? probe.item : NULL);
                    break;
                }
            one = it;
            it = it ? it->next : NULL;
        } while (it && one);
    }
    wm_free(users);
    return rc;
}

/* A profile change can make a condition entry true ("tier becomes
 * high_net_worth"): such journeys are evaluated after every profile record. */
int wm__jrt_on_profile(wm_jtx_t *t, uint64_t user_id, const char *project)
{
    const wm_jsnapshot_t *s = wm__jreg_snapshot(t->rt->reg);
    int rc = 0;
    for (uint32_t i = 0; s && i < s->n_versions && !rc; i++) {
        const wm_jversion_t *v = s->versions[i];
        const wm_journey_def_t *d = v->def;
        if (!v->accepting || d->entry.kind != WM_ENTRY_CONDITION || !d->entry.condition ||
            strcmp(v->project, project))
            continue;
        const wm_json_t *profile = wm__rt_profile(t, user_id);
        bool now_true = eval(t, d->entry.condition, user_id, project, profile, NULL);
        wm_juser_t ju;
        if ((rc = juser_get(t, user_id, project, v->key, &ju)))
            break;
        if (now_true == (ju.cond_state != 0))
            continue;
        ju.cond_state = now_true;
        if ((rc = juser_put(t, user_id, project, v->key, &ju)))
            break;
        if (now_true)
            rc = try_enter(t, v, user_id, NULL, NULL, NULL);
    }
    return rc;
}

int wm__jrt_on_command(wm_jtx_t *t, uint64_t user_id, const char *json, size_t len)
{
    wm_json_t *cmd;
    wm_json_error_t je;
    char *copy = wm_arena_strndup(t->arena, json, len);
    if (!copy || wm_json_parse(t->arena, copy, len, &cmd, &je))
        return 0;
    const char *c = wm_json_str(wm_json_get(cmd, "cmd"));
    if (!c)
        return 0;
    if (!strcmp(c, "delivery"))
        return wm__rt_cmd_delivery(t, user_id, cmd);
    if (!strcmp(c, "receipt"))
        return wm__rt_cmd_receipt(t, user_id, cmd);
    if (!strcmp(c, "lead_claim") || !strcmp(c, "lead_complete"))
        return wm__rt_cmd_lead(t, user_id, cmd);
    if (!strcmp(c, "inbox_read"))
        return wm__rt_cmd_inbox_read(t, user_id, cmd);
    if (!strcmp(c, "consent"))
        return wm__rt_cmd_consent(t, user_id, cmd);
    if (!strcmp(c, "message_retry"))
        return wm__rt_cmd_retry(t, user_id, cmd);
    if (!strcmp(c, "enter"))
        return cmd_enter(t, user_id, cmd);
    if (!strcmp(c, "journey_stop"))
        return cmd_journey_stop(t, cmd);
    if (!strcmp(c, "schedule_run"))
        return cmd_scan_entries(t, cmd, false);
    if (!strcmp(c, "date_entries"))
        return cmd_scan_entries(t, cmd, true);
    return 0;
}
