/*
 * partition.c - the partition writer: log append, group commit, apply.
 *
 * One thread per partition owns the partition's log and its LMDB state.
 *
 *            +-----------+  jobs queued   +-----------+  all appended  +--------+
 *   start -> | REPLAYING | -------------> |  WAITING  | -------------> | SYNCING|
 *            +-----------+  (replay done) +-----------+                +--------+
 *                                             ^                           |
 *                                             |  applied, txn committed   v
 *                                         +----------+  waiters woken  +---------+
 *                                         | APPLYING | <-------------- | ACKING  |
 *                                         +----------+                 +---------+
 *            any storage error -> FAILED (sticky: every later job fails with WM_ESTATE)
 *
 * Invariants:
 *  - A waiter is woken with success only after every record of its job is at
 *    or below the log's durable sequence (per fsync mode).
 *  - Records are applied in log order; "applied_seq" is written in the same
 *    LMDB transaction as the state changes of the records up to it, so a
 *    restart replays from applied_seq + 1 and applies each record once.
 *  - The writer never holds the queue lock during I/O.
 */
#include "partition.h"

#include "waymark/engine.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "store/evidx.h"
#include "waymark/alloc.h"
#include "waymark/bytes.h"
#include "waymark/arena.h"
#include "waymark/error.h"
#include "waymark/json.h"
#include "waymark/limits.h"
#include "waymark/profile.h"
#include "waymark/record.h"



static int mdb_err(int rc, const char *what, uint32_t part)
{
    fprintf(stderr, "waymark: partition %u: %s: %s\n", part, what, mdb_strerror(rc));
    return rc == MDB_MAP_FULL ? WM_ELIMIT : WM_EIO;
}

/* ---- journey runtime host callbacks ---- */

static int host_item_get(void *ctx, const char *project, const char *type, const char *id, char **json,
                         size_t *len)
{
    wm_part_t *p = ctx;
    return wm__engine_item_raw(p->engine, project, type, id, json, len);
}

static int host_read_event(void *ctx, const wm_log_pos_t *pos, char **json, size_t *len)
{
    wm_part_t *p = ctx;
    void *payload = NULL;
    uint32_t plen = 0;
    int rc = wm_log_read_at(p->log, pos, &payload, &plen);
    if (rc)
        return rc;
    if (plen < sizeof(wm_payload_hdr_t)) {
        wm_free(payload);
        return WM_ECORRUPT;
    }
    *len = plen - sizeof(wm_payload_hdr_t);
    *json = wm_strndup((char *)payload + sizeof(wm_payload_hdr_t), *len);
    wm_free(payload);
    return *json ? 0 : WM_ENOMEM;
}

static bool host_entry_reserve(void *ctx, const char *project, const char *key, uint64_t cap, uint64_t own)
{
    wm_part_t *p = ctx;
    return wm__engine_entry_reserve(p->engine, p->index, project, key, cap, own);
}

static void host_dispatch(void *ctx, const wm_dispatch_msg_t *m)
{
    wm_part_t *p = ctx;
    wm__engine_dispatch(p->engine, m);
}

/* The journey runtime reaches tags and segments through these: the
 * audience runtime of the same partition, in the same transaction. */
static const wm_json_t *host_tag_get(void *ctx, void *aud_tx, uint64_t user_id, const char *tag)
{
    return aud_tx ? wm__aud_tag_get(aud_tx, user_id, tag) : NULL;
}

static int host_tag_set(void *ctx, void *aud_tx, uint64_t user_id, const char *project, const char *tag,
                        const wm_json_t *value)
{
    int rc = aud_tx ? wm__aud_tag_set(aud_tx, user_id, project, tag, value, "journey") : 0;
    return rc == WM_EINVAL ? 0 : rc; /* a tag name the store cannot hold: the journey goes on */
}

static int host_tags_json(void *ctx, void *aud_tx, uint64_t user_id, wm_buf_t *out)
{
    return aud_tx ? wm__aud_tags_object(aud_tx, user_id, out) : WM_ENOTFOUND;
}

static bool host_in_segment(void *ctx, void *aud_tx, uint64_t user_id, const char *project,
                            const char *segment)
{
    return aud_tx && wm__aud_in_segment(aud_tx, user_id, project, segment);
}

static int host_recommend(void *ctx, uint64_t user_id, const char *project, const char *type, uint32_t n,
                          wm_buf_t *out)
{
    wm_part_t *p = ctx;
    return wm_engine_recommendations_json(p->engine, project, user_id, type, n, false, out);
}

/* The project of a user row (see apply_user_created for the forms). */
static bool host_user_project(void *ctx, const void *row, size_t len, char *out, size_t cap)
{
    wm_part_t *p = ctx;
    const unsigned char *r = row, *end = r + len;
    if (len && r[0] == '{') {
        const char *val;
        size_t vl;
        bool ok = wm_json_find_member(row, len, "project", &val, &vl) == 0 && vl >= 2 && val[0] == '"' &&
                  vl - 2 < cap && !memchr(val + 1, '\\', vl - 2);
        if (ok) {
            memcpy(out, val + 1, vl - 2);
            out[vl - 2] = 0;
        }
        return ok;
    }
    uint64_t project;
    r++;
    return len > 1 && ((const unsigned char *)row)[0] == 1 && wm_get_varint(&r, end, &project) &&
           project <= UINT32_MAX && wm_names_get(p->names, (uint32_t)project, out, cap) >= 0;
}

static int host_op_event(void *op_ctx, uint64_t user_id, const char *project, const char *event,
                         const char *props_json);

int wm__part_open(wm_engine_t *e, uint32_t index, const char *dir, const wm_log_opts_t *lo,
                  wm_part_t **out)
{
    wm_part_t *p = wm_calloc(1, sizeof *p);
    if (!p)
        return WM_ENOMEM;
    p->index = index;
    p->engine = e;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    pthread_mutex_init(&p->applied_mu, NULL);
    pthread_cond_init(&p->applied_cv, NULL);
    char path[4096];
    int rc;
    if (mkdir(dir, 0755) && errno != EEXIST) {
        fprintf(stderr, "waymark: mkdir %s: %s\n", dir, strerror(errno));
        rc = WM_EIO;
        goto fail;
    }
    wm_log_opts_t o = *lo;
    snprintf(path, sizeof path, "%s/log", dir);
    o.dir = path;
    if ((rc = wm_log_open(&o, &p->log)))
        goto fail;
    snprintf(path, sizeof path, "%s/state", dir);
    if (mkdir(path, 0755) && errno != EEXIST) {
        rc = WM_EIO;
        goto fail;
    }
    if ((rc = mdb_env_create(&p->env)) || (rc = mdb_env_set_maxdbs(p->env, 32)) ||
        (rc = mdb_env_set_mapsize(p->env, (size_t)WM_LMDB_MAP_BYTES)) ||
        (rc = mdb_env_open(p->env, path, MDB_NOSYNC | MDB_NOMETASYNC | MDB_NOTLS, 0644))) {
        rc = mdb_err(rc, "open state", index);
        goto fail;
    }
    MDB_txn *txn;
    if ((rc = mdb_txn_begin(p->env, NULL, 0, &txn))) {
        rc = mdb_err(rc, "txn", index);
        goto fail;
    }
    if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &p->dbi_meta)) ||
        (rc = mdb_dbi_open(txn, "events", MDB_CREATE, &p->dbi_events)) ||
        (rc = mdb_dbi_open(txn, "profiles", MDB_CREATE, &p->dbi_profiles)) ||
        (rc = mdb_dbi_open(txn, "items", MDB_CREATE, &p->dbi_items)) ||
        (rc = mdb_dbi_open(txn, "users", MDB_CREATE, &p->dbi_users)) ||
        (rc = mdb_dbi_open(txn, "merges", MDB_CREATE, &p->dbi_merges))) {
        mdb_txn_abort(txn);
        rc = mdb_err(rc, "dbi", index);
        goto fail;
    }
    if ((rc = wm_names_open(txn, "names", &p->names))) {
        mdb_txn_abort(txn);
        goto fail;
    }
    wm_jrt_host_t host = {
        .ctx = p,
        .part_index = index,
        .n_parts = wm__engine_partitions(e),
        .dbi_profiles = p->dbi_profiles,
        .dbi_events = p->dbi_events,
        .names = p->names,
        .item_get = host_item_get,
        .read_event = host_read_event,
        .dispatch = host_dispatch,
        .entry_reserve = host_entry_reserve,
        .tag_get = host_tag_get,
        .tag_set = host_tag_set,
        .tags_json = host_tags_json,
        .in_segment = host_in_segment,
        .recommend = host_recommend,
    };
    if ((rc = wm__jrt_open(p->env, txn, wm__engine_jreg(e), &host, &p->jrt))) {
        mdb_txn_abort(txn);
        goto fail;
    }
    wm_aud_host_t ahost = {
        .ctx = p,
        .part_index = index,
        .dbi_profiles = p->dbi_profiles,
        .dbi_events = p->dbi_events,
        .dbi_users = p->dbi_users,
        .read_event = host_read_event,
        .item_get = host_item_get,
        .op_event = host_op_event,
        .user_project = host_user_project,
    };
    if ((rc = wm__aud_open(p->env, txn, wm__engine_areg(e), &ahost, &p->aud))) {
        mdb_txn_abort(txn);
        goto fail;
    }
    MDB_val k = {sizeof "applied_seq" - 1, "applied_seq"}, v;
    uint64_t applied = 0;
    if (mdb_get(txn, p->dbi_meta, &k, &v) == 0 && v.mv_size == 8)
        memcpy(&applied, v.mv_data, 8);
    if ((rc = mdb_txn_commit(txn))) {
        rc = mdb_err(rc, "commit", index);
        goto fail;
    }
    uint64_t last = wm_log_last_seq(p->log);
    if (applied > last) {
        /* state ahead of the log: the log lost acknowledged data; refuse */
        fprintf(stderr, "waymark: partition %u: state applied up to %llu but log ends at %llu\n",
                index, (unsigned long long)applied, (unsigned long long)last);
        rc = WM_ECORRUPT;
        goto fail;
    }
    atomic_store(&p->applied_seq, applied);
    atomic_store(&p->durable_seq, last);
    p->next_seq = last + 1;
    *out = p;
    return 0;
fail:
    wm__part_close(p);
    return rc;
}

void wm__block_unref(wm_payload_block_t *b)
{
    if (b && atomic_fetch_sub(&b->refs, 1) == 1) {
        wm_free(b->data);
        wm_free(b);
    }
}

void wm__job_free(wm_job_t *job)
{
    if (!job)
        return;
    uintptr_t lo = job->block ? (uintptr_t)job->block->data : 0;
    uintptr_t hi = lo ? lo + job->block->len : 0;
    for (uint32_t i = 0; i < job->n; i++) {
        uintptr_t a = (uintptr_t)job->payloads[i];
        if (!lo || a < lo || a >= hi)
            wm_free(job->payloads[i]);
    }
    wm__block_unref(job->block);
    wm_free(job->payloads);
    wm_free(job->lens);
    wm_free(job);
}

static void waiter_done(wm_waiter_t *w, int err)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    if (err && !w->err)
        w->err = err;
    w->jobs_left--;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* ---- apply ---- */

typedef struct apply_ctx {
    wm_part_t *p;
    MDB_txn *txn;
    wm_arena_t arena;
    wm_arena_t jarena;          /* journey and audience runtime scratch, reset per record */
    wm_jtx_t jtx;
    wm_atx_t atx;
} apply_ctx_t;

/* The audience runtime's $SegmentEntered / $SegmentExited: a bookkeeping
 * copy through the journey runtime's op queue (the customer's history and
 * counters; op_ctx = the journey txn context), and the event itself for the
 * journeys of this transaction, once the audience has settled (the journeys
 * may set tags, which re-enters the audience). */
typedef struct wm_seg_event {
    uint64_t user_id;
    char *json;                 /* stored record form, wm_malloc'd */
    size_t len;
} wm_seg_event_t;

static int host_op_event(void *op_ctx, uint64_t user_id, const char *project, const char *event,
                         const char *props_json)
{
    apply_ctx_t *ac = op_ctx;
    wm_jtx_t *jt = &ac->jtx;
    wm_part_t *p = ac->p;
    int rc = wm__jrt_op_event(jt, user_id, project, event, props_json, false);
    if (rc || !wm__jrt_active(p->jrt))
        return rc;
    if (p->n_seg_events == p->cap_seg_events) {
        uint32_t cap = p->cap_seg_events ? p->cap_seg_events * 2 : 16;
        wm_seg_event_t *n = wm_realloc(p->seg_events, cap * sizeof *n);
        if (!n)
            return WM_ENOMEM;
        p->seg_events = n;
        p->cap_seg_events = cap;
    }
    wm_buf_t b;
    wm_buf_init(&b, 0);
    wm_buf_printf(&b, "{\"type\":\"track\",\"event\":\"%s\",\"distinct_id\":\"$user:%llu\",\"time\":%lld,\"project\":",
                  event, (unsigned long long)user_id, (long long)jt->now_ms);
    wm_buf_json_str(&b, project, strlen(project));
    wm_buf_printf(&b, ",\"lib\":{\"$lib\":\"waymark\"},\"properties\":%s}", props_json ? props_json : "{}");
    if (b.err) {
        wm_buf_release(&b);
        return WM_ENOMEM;
    }
    size_t len = b.len;
    p->seg_events[p->n_seg_events++] = (wm_seg_event_t){user_id, wm_buf_steal(&b, NULL), len};
    return 0;
}

/* Hands the segment events of the record to the journeys; a journey that
 * sets a tag may move memberships again, so this repeats (bounded). */
static int drain_segment_events(apply_ctx_t *ac)
{
    wm_part_t *p = ac->p;
    int rc = 0;
    /* the list grows while it is read (journeys append), so by index */
    for (uint32_t i = 0; i < p->n_seg_events; i++) {
        wm_seg_event_t ev = p->seg_events[i]; /* a copy: appending may move the list */
        if (!rc && i < WM_SEGMENT_EVENTS_PER_RECORD)
            rc = wm__jrt_on_event_now(&ac->jtx, ev.user_id, ev.json, ev.len);
        wm_free(ev.json);
        p->seg_events[i].json = NULL;
    }
    p->n_seg_events = 0;
    return rc;
}

static void drop_segment_events(wm_part_t *p)
{
    for (uint32_t i = 0; i < p->n_seg_events; i++)
        wm_free(p->seg_events[i].json);
    p->n_seg_events = 0;
}

/* Both runtimes join the same write transaction. */
static void tx_begin(apply_ctx_t *ac)
{
    int64_t now = wm__engine_clock(ac->p->engine);
    wm__jtx_begin(&ac->jtx, ac->p->jrt, ac->txn, &ac->jarena, now);
    wm__atx_begin(&ac->atx, ac->p->aud, ac->txn, &ac->jarena, now, ac);
    ac->jtx.aud_tx = &ac->atx;
}

static void tx_committed(apply_ctx_t *ac)
{
    wm__jtx_committed(&ac->jtx);
    wm__atx_committed(&ac->atx);
}

static void tx_aborted(apply_ctx_t *ac)
{
    wm__jtx_aborted(&ac->jtx);
    wm__atx_aborted(&ac->atx);
    drop_segment_events(ac->p);
}

static int parse_record(apply_ctx_t *ac, const char *json, size_t len, wm_record_t *rec)
{
    wm_json_t *root;
    wm_json_error_t jerr;
    if (wm_json_parse(&ac->arena, json, len, &root, &jerr))
        return WM_ECORRUPT;
    wm_rec_ctx_t ctx = {.stored = true};
    wm_rec_error_t err;
    memset(&err, 0, sizeof err);
    return wm_record_from_json(&ac->arena, root, &ctx, rec, &err) ? WM_ECORRUPT : 0;
}

static int load_json(apply_ctx_t *ac, MDB_txn *txn, MDB_dbi dbi, MDB_val *key, wm_json_t **out)
{
    MDB_val v;
    *out = NULL;
    int rc = mdb_get(txn, dbi, key, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return WM_EIO;
    wm_json_error_t jerr;
    return wm_json_parse(&ac->arena, v.mv_data, v.mv_size, out, &jerr) ? WM_ECORRUPT : 0;
}

static int store_json(apply_ctx_t *ac, MDB_dbi dbi, MDB_val *key, const wm_json_t *v)
{
    if (!v) {
        int rc = mdb_del(ac->txn, dbi, key, NULL);
        return rc == 0 || rc == MDB_NOTFOUND ? 0 : WM_EIO;
    }
    wm_buf_t b;
    wm_buf_init(&b, 0);
    wm_json_write(&b, v);
    int rc = b.err;
    if (!rc) {
        MDB_val val = {b.len, b.data};
        rc = mdb_put(ac->txn, dbi, key, &val, 0) ? WM_EIO : 0;
    }
    wm_buf_release(&b);
    return rc;
}

/* User rows: format byte, varint project id (store/names.h), zigzag varint
 * first_seen_ms. Rows written before the format byte are the JSON object
 * {"project":..,"first_seen_ms":..}; both are read (user_meta_json). */
#define USER_ROW_FORMAT 1
#define USER_ROW_MAX (1 + 2 * WM_VARINT_MAX)

static int apply_user_created(apply_ctx_t *ac, const wm_payload_hdr_t *h, const wm_record_t *rec)
{
    unsigned char kb[8], row[USER_ROW_MAX], *end = row;
    wm_put_be64(kb, h->user_id);
    uint32_t project;
    int rc = wm_names_assign(ac->p->names, ac->txn, rec->project, strlen(rec->project), &project);
    if (rc)
        return rc;
    *end++ = USER_ROW_FORMAT;
    end = wm_put_varint(wm_put_varint(end, project), wm_zigzag(h->time_ms));
    MDB_val k = {8, kb}, v = {(size_t)(end - row), row};
    rc = mdb_put(ac->txn, ac->p->dbi_users, &k, &v, MDB_NOOVERWRITE);
    if (rc == 0)
        wm__aud_user_seen(ac->p->aud, h->user_id, rec->project);
    return rc == 0 || rc == MDB_KEYEXIST ? 0 : WM_EIO;
}

static int apply_event(apply_ctx_t *ac, const wm_payload_hdr_t *h, const wm_log_pos_t *pos)
{
    unsigned char kb[WM_EVIDX_KEY_BYTES], vb[WM_EVIDX_VALUE_MAX];
    wm_evidx_key(kb, h->user_id, h->time_ms, pos->seq);
    MDB_val k = {sizeof kb, kb}, v = {wm_evidx_value(vb, pos), vb};
    return mdb_put(ac->txn, ac->p->dbi_events, &k, &v, 0) ? WM_EIO : 0;
}

static int apply_profile(apply_ctx_t *ac, const wm_payload_hdr_t *h, const wm_record_t *rec)
{
    unsigned char kb[8];
    wm_put_be64(kb, h->user_id);
    MDB_val k = {8, kb};
    wm_json_t *cur, *next;
    int rc = load_json(ac, ac->txn, ac->p->dbi_profiles, &k, &cur);
    if (rc)
        return rc;
    wm_rec_error_t err;
    memset(&err, 0, sizeof err);
    if (wm_profile_apply(&ac->arena, cur, rec, &next, &err)) {
        /* semantic conflict found only now (e.g. increment of a string set by
         * another record in flight): the record is kept in the log, counted */
        atomic_fetch_add(&ac->p->m_apply_errors, 1);
        return 0;
    }
    return store_json(ac, ac->p->dbi_profiles, &k, next);
}

static size_t item_key(char *dst, size_t cap, const char *project, const char *type, const char *id)
{
    int n = snprintf(dst, cap, "%s%c%s%c%s", project, 0, type, 0, id);
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

static int apply_item(apply_ctx_t *ac, const wm_record_t *rec)
{
    char kb[600];
    size_t kl = item_key(kb, sizeof kb, rec->project, rec->item_type, rec->item_id);
    if (!kl)
        return 0;
    MDB_val k = {kl, kb};
    wm_json_t *cur, *next;
    int rc = load_json(ac, ac->txn, ac->p->dbi_items, &k, &cur);
    if (rc)
        return rc;
    if (wm_item_apply(&ac->arena, cur, rec, &next)) {
        atomic_fetch_add(&ac->p->m_apply_errors, 1);
        return 0;
    }
    return store_json(ac, ac->p->dbi_items, &k, next);
}

static int apply_merge(apply_ctx_t *ac, const wm_payload_hdr_t *h)
{
    wm_part_t *from = wm__engine_part(ac->p->engine, h->from_part);
    unsigned char kb[8];
    MDB_val k = {8, kb};
    wm_json_t *from_prof = NULL, *into_prof, *merged;
    int rc;
    wm_put_be64(kb, h->from_user);
    if (from == ac->p) {
        rc = load_json(ac, ac->txn, ac->p->dbi_profiles, &k, &from_prof);
    } else {
        if (!wm__part_wait_applied(from, h->from_hw, WM_MERGE_WAIT_MS))
            fprintf(stderr, "waymark: partition %u: merge of user %llu proceeds before partition "
                            "%u reached seq %llu\n",
                    ac->p->index, (unsigned long long)h->from_user, from->index,
                    (unsigned long long)h->from_hw);
        MDB_txn *rt;
        if (mdb_txn_begin(from->env, NULL, MDB_RDONLY, &rt))
            return WM_EIO;
        rc = load_json(ac, rt, from->dbi_profiles, &k, &from_prof);
        mdb_txn_abort(rt);
    }
    if (rc)
        return rc;
    wm_put_be64(kb, h->user_id);
    if ((rc = load_json(ac, ac->txn, ac->p->dbi_profiles, &k, &into_prof)))
        return rc;
    if ((rc = wm_profile_merge(&ac->arena, into_prof, from_prof, &merged)))
        return rc;
    if (merged && (rc = store_json(ac, ac->p->dbi_profiles, &k, merged)))
        return rc;
    unsigned char mk[16];
    wm_put_be64(mk, h->user_id);
    wm_put_be64(mk + 8, h->from_user);
    MDB_val mkey = {16, mk}, mval = {sizeof h->from_part, (void *)&h->from_part};
    atomic_fetch_add(&ac->p->m_merges, 1);
    return mdb_put(ac->txn, ac->p->dbi_merges, &mkey, &mval, 0) ? WM_EIO : 0;
}

/* Tags and segments read the event parsed once here (the journey runtime
 * parses its own copy). Operational events of the journey runtime's own
 * bookkeeping ($JourneyNodeEntered ...) feed counters like any event. */
/* Storage faults from the audience stop the partition (nothing may be
 * half-applied); anything else a definition trips over (a value it cannot
 * use, a bound) is counted as an apply error and the record goes on. */
static int aud_rc(apply_ctx_t *ac, int rc)
{
    if (rc == 0 || rc == WM_EIO || rc == WM_ENOMEM || rc == WM_ECORRUPT)
        return rc;
    atomic_fetch_add(&ac->p->m_apply_errors, 1);
    return 0;
}

/* The user row is written with the record that created the user. A user
 * created in the identity index whose first record was lost to a crash
 * (identity commits before the log append) has none; the audience's
 * background passes walk the user rows, so such a user gets its row with
 * its next record. */
static int ensure_user_row(apply_ctx_t *ac, const wm_payload_hdr_t *h, const char *project)
{
    unsigned char kb[8];
    wm_put_be64(kb, h->user_id);
    MDB_val k = {8, kb}, v;
    if (!project || mdb_get(ac->txn, ac->p->dbi_users, &k, &v) == 0)
        return 0;
    wm_record_t rec = {.project = project};
    return apply_user_created(ac, h, &rec);
}

static int audience_event(apply_ctx_t *ac, const wm_payload_hdr_t *h, const char *json, size_t len,
                          const wm_json_t **parsed)
{
    char *copy = wm_arena_strndup(&ac->jarena, json, len);
    wm_json_t *ev;
    wm_json_error_t je;
    if (!copy || wm_json_parse(&ac->jarena, copy, len, &ev, &je))
        return 0;
    *parsed = ev;
    int rc = wm__aud_active(ac->p->aud) && !(h->flags & WM_PFLAG_USER_CREATED)
                 ? ensure_user_row(ac, h, wm_json_str(wm_json_get(ev, "project")))
                 : 0;
    if (!rc)
        rc = aud_rc(ac, wm__aud_on_event_rec(&ac->atx, h->user_id, ev));
    return rc ? rc : aud_rc(ac, wm__aud_on_event(&ac->atx, h->user_id, ev));
}

/* Commands: tag values and static lists go to the audience runtime, the
 * rest (claims, receipts, consent, stop ...) to the journey runtime. */
static bool audience_command(const char *json, size_t len)
{
    const char *v;
    size_t vl;
    return wm_json_find_member(json, len, "cmd", &v, &vl) == 0 &&
           ((vl > 5 && !memcmp(v, "\"tag_", 5)) || (vl > 9 && !memcmp(v, "\"segment_", 9)));
}

static int apply_command(apply_ctx_t *ac, const wm_payload_hdr_t *h, const char *json, size_t len)
{
    if (audience_command(json, len)) {
        char *copy = wm_arena_strndup(&ac->jarena, json, len);
        wm_json_t *cmd;
        wm_json_error_t je;
        if (!copy || wm_json_parse(&ac->jarena, copy, len, &cmd, &je))
            return WM_ECORRUPT;
        int rc = aud_rc(ac, wm__aud_on_command(&ac->atx, h->user_id, cmd));
        return rc ? rc : drain_segment_events(ac);
    }
    return wm__jrt_on_command(&ac->jtx, h->user_id, json, len);
}

static bool is_event_type(int t)
{
    return t == WM_REC_TRACK || t == WM_REC_TRACK_SIGNUP || t == WM_REC_TRACK_ID_BIND ||
           t == WM_REC_TRACK_ID_UNBIND;
}

static int apply_one(apply_ctx_t *ac, const unsigned char *payload, uint32_t len,
                     const wm_log_pos_t *pos)
{
    wm_payload_hdr_t h;
    if (len < sizeof h)
        return WM_ECORRUPT;
    memcpy(&h, payload, sizeof h);
    const char *json = (const char *)payload + sizeof h;
    size_t jlen = len - sizeof h;
    wm_arena_reset(&ac->arena);
    wm_arena_reset(&ac->jarena);
    if (h.kind == WM_PAYLOAD_MERGE)
        return apply_merge(ac, &h);
    if (h.kind == WM_PAYLOAD_COMMAND)
        return apply_command(ac, &h, json, jlen);
    if (h.kind != WM_PAYLOAD_RECORD)
        return WM_ECORRUPT;
    /* an op event appended twice (crash between append and apply) counts once */
    if ((h.flags & WM_PFLAG_OPQ) && !wm__jrt_op_take(&ac->jtx, h.from_hw))
        return 0;
    bool event = is_event_type(h.rec_type);
    bool need_record = !event || (h.flags & WM_PFLAG_USER_CREATED);
    wm_record_t rec;
    int rc;
    if (need_record && (rc = parse_record(ac, json, jlen, &rec)))
        return rc;
    if ((h.flags & WM_PFLAG_USER_CREATED) && (rc = apply_user_created(ac, &h, &rec)))
        return rc;
    /* a new customer gets the values that need no event (a rule tag's
     * default, a segment of customers without a property) */
    if ((h.flags & WM_PFLAG_USER_CREATED) && event && wm__aud_active(ac->p->aud) &&
        (rc = aud_rc(ac, wm__aud_on_profile(&ac->atx, h.user_id, rec.project))))
        return rc;
    if (event) {
        if ((rc = apply_event(ac, &h, pos)))
            return rc;
        const wm_json_t *parsed = NULL;
        /* the event name, read once from the raw record, decides whether the
         * audience needs the record parsed at all */
        char nbuf[256];
        const char *name = NULL;
        bool aud = wm__aud_active(ac->p->aud);
        bool fund = !(h.flags & WM_PFLAG_NO_REC) && memmem(json, jlen, "\"fund_code\"", 11) != NULL;
        if (aud || fund)
            name = wm__aud_raw_event_name(json, jlen, nbuf, sizeof nbuf);
        if (((aud && wm__aud_event_wanted(ac->p->aud, name)) || (fund && wm__aud_rec_candidate(name))) &&
            (rc = audience_event(ac, &h, json, jlen, &parsed)))
            return rc;
        /* consent changes (Unsubscribe events) apply even before any journey
         * exists; every other event matters only to journeys and counters */
        if (!wm__jrt_active(ac->p->jrt) && !(h.flags & WM_PFLAG_CONSENT))
            return 0;
        bool bookkeeping = (h.flags & WM_PFLAG_BOOKKEEPING) != 0;
        rc = parsed ? wm__jrt_on_event_parsed(&ac->jtx, h.user_id, parsed, pos, bookkeeping)
                    : wm__jrt_on_event(&ac->jtx, h.user_id, json, jlen, pos, bookkeeping);
        return rc ? rc : drain_segment_events(ac);
    }
    if (h.rec_type == WM_REC_ITEM_SET || h.rec_type == WM_REC_ITEM_DELETE)
        return apply_item(ac, &rec);
    if ((rc = apply_profile(ac, &h, &rec)))
        return rc;
    if (wm__aud_active(ac->p->aud) && !(h.flags & WM_PFLAG_USER_CREATED) &&
        (rc = ensure_user_row(ac, &h, rec.project)))
        return rc;
    if (wm__aud_active(ac->p->aud) && (rc = aud_rc(ac, wm__aud_on_profile(&ac->atx, h.user_id, rec.project))))
        return rc;
    if (wm__jrt_active(ac->p->jrt) && (rc = wm__jrt_on_profile(&ac->jtx, h.user_id, rec.project)))
        return rc;
    return drain_segment_events(ac);
}

static int put_applied(wm_part_t *p, MDB_txn *txn, uint64_t seq)
{
    MDB_val k = {sizeof "applied_seq" - 1, "applied_seq"}, v = {8, &seq};
    return mdb_put(txn, p->dbi_meta, &k, &v, 0) ? WM_EIO : 0;
}

static void publish_applied(wm_part_t *p, uint64_t seq)
{
    pthread_mutex_lock(&p->applied_mu);
    atomic_store(&p->applied_seq, seq);
    pthread_cond_broadcast(&p->applied_cv);
    pthread_mutex_unlock(&p->applied_mu);
}

bool wm__part_wait_applied(wm_part_t *p, uint64_t seq, int timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&p->applied_mu);
    while (atomic_load(&p->applied_seq) < seq && !atomic_load(&p->failed)) {
        if (pthread_cond_timedwait(&p->applied_cv, &p->applied_mu, &until) == ETIMEDOUT)
            break;
    }
    bool ok = atomic_load(&p->applied_seq) >= seq;
    pthread_mutex_unlock(&p->applied_mu);
    return ok;
}

bool wm__part_wait_ready(wm_part_t *p, int timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&p->applied_mu);
    while (!atomic_load(&p->ready)) {
        if (pthread_cond_timedwait(&p->applied_cv, &p->applied_mu, &until) == ETIMEDOUT)
            break;
    }
    bool ok = atomic_load(&p->ready);
    pthread_mutex_unlock(&p->applied_mu);
    return ok;
}

/* ---- one-time moves of stored data ---- */

/* Tags set by journeys used to live in the journey runtime's own DBI
 * ("j_tags": user -> {tag: value}); they now belong to the audience's tag
 * store. A data directory written before that is moved over once, in one
 * transaction, and the old DBI dropped. */
static int migrate_journey_tags(wm_part_t *p)
{
    MDB_txn *txn;
    MDB_dbi old;
    if (mdb_txn_begin(p->env, NULL, 0, &txn))
        return WM_EIO;
    int rc = mdb_dbi_open(txn, "j_tags", 0, &old);
    if (rc == MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return 0;
    }
    if (rc) {
        mdb_txn_abort(txn);
        return WM_EIO;
    }
    apply_ctx_t ac = {.p = p, .txn = txn};
    wm_arena_init(&ac.jarena, 64 * 1024);
    tx_begin(&ac);
    MDB_cursor *c;
    uint64_t moved = 0;
    rc = mdb_cursor_open(txn, old, &c) ? WM_EIO : 0;
    MDB_val k, v;
    int mrc = rc ? MDB_NOTFOUND : mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (mrc == 0 && !rc) {
        wm_arena_reset(&ac.jarena);
        uint64_t user = k.mv_size == 8 ? wm_get_be64(k.mv_data) : 0;
        char *meta = NULL, *copy = wm_arena_strndup(&ac.jarena, v.mv_data, v.mv_size);
        size_t mlen = 0;
        wm_json_t *tags = NULL, *um = NULL;
        wm_json_error_t je;
        const char *project = "default";
        if (user && wm__part_user_meta(p, user, &meta, &mlen) == 0) {
            char *mc = wm_arena_strndup(&ac.jarena, meta, mlen);
            if (mc && wm_json_parse(&ac.jarena, mc, mlen, &um, &je) == 0 && wm_json_str(wm_json_get(um, "project")))
                project = wm_json_str(wm_json_get(um, "project"));
        }
        wm_free(meta);
        if (user && copy && wm_json_parse(&ac.jarena, copy, v.mv_size, &tags, &je) == 0 &&
            tags->type == WM_JSON_OBJECT)
            for (const wm_json_t *t = tags->u.child; t && !rc; t = t->next, moved++)
                rc = wm__aud_tag_set(&ac.atx, user, project, t->key, t, "journey");
        if (!rc)
            mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    if (!rc)
        mdb_cursor_close(c);
    drop_segment_events(p); /* moved values, not news: no journey reacts */
    if (!rc)
        rc = mdb_drop(txn, old, 1) ? WM_EIO : 0;
    if (!rc)
        rc = wm__jtx_precommit(&ac.jtx);
    if (rc || mdb_txn_commit(txn)) {
        if (rc)
            mdb_txn_abort(txn);
        tx_aborted(&ac);
        rc = rc ? rc : WM_EIO;
    } else {
        tx_committed(&ac);
        if (moved)
            fprintf(stderr, "waymark: partition %u: moved %llu journey tags to the tag store\n", p->index,
                    (unsigned long long)moved);
    }
    wm_arena_release(&ac.jarena);
    wm__atx_release(&ac.atx);
    return rc;
}

/* ---- replay ---- */

static int replay(wm_part_t *p)
{
    uint64_t applied = atomic_load(&p->applied_seq);
    uint64_t last = wm_log_last_seq(p->log);
    uint64_t first = wm_log_first_seq(p->log);
    uint64_t window = WM_DEDUP_WINDOW_MAX / (wm__engine_partitions(p->engine) * 2);
    uint64_t from = last > window ? last - window + 1 : 1;
    if (from < first)
        from = first;
    if (from > applied + 1)
        from = applied + 1;
    if (!first || from > last)
        return 0;
    wm_log_iter_t *it;
    int rc = wm_log_iter_open(p->log, from, &it);
    if (rc)
        return rc;
    apply_ctx_t ac = {.p = p};
    wm_arena_init(&ac.arena, 64 * 1024);
    wm_arena_init(&ac.jarena, 64 * 1024);
    wm_log_pos_t pos;
    const void *payload;
    uint32_t len;
    uint32_t in_txn = 0;
    uint64_t replayed = 0;
    while ((rc = wm_log_iter_next(it, &pos, &payload, &len)) == 1) {
        wm_payload_hdr_t h;
        if (len >= sizeof h) {
            memcpy(&h, payload, sizeof h);
            if (h.dedup)
                wm__engine_dedup_add(p->engine, h.dedup);
        }
        if (pos.seq <= applied)
            continue;
        if (!ac.txn) {
            if ((rc = mdb_txn_begin(p->env, NULL, 0, &ac.txn))) {
                rc = mdb_err(rc, "replay txn", p->index);
                break;
            }
            tx_begin(&ac);
        }
        if ((rc = apply_one(&ac, payload, len, &pos)) && rc != WM_ECORRUPT)
            break;
        rc = 0;
        replayed++;
        if (++in_txn >= WM_REPLAY_TXN_RECORDS || pos.seq == last) {
            if ((rc = put_applied(p, ac.txn, pos.seq)) || (rc = wm__jtx_precommit(&ac.jtx)) ||
                (rc = mdb_txn_commit(ac.txn))) {
                ac.txn = NULL;
                tx_aborted(&ac);
                rc = WM_EIO;
                break;
            }
            ac.txn = NULL;
            tx_committed(&ac);
            in_txn = 0;
            publish_applied(p, pos.seq);
        }
    }
    if (ac.txn) {
        mdb_txn_abort(ac.txn);
        tx_aborted(&ac);
    }
    wm_log_iter_close(it);
    wm_arena_release(&ac.arena);
    wm_arena_release(&ac.jarena);
    wm__atx_release(&ac.atx);
    if (replayed)
        fprintf(stderr, "waymark: partition %u: replayed %llu records from the log\n", p->index,
                (unsigned long long)replayed);
    return rc < 0 ? rc : 0;
}

/* ---- writer loop ---- */

/* How long the writer may sleep: until the next journey timer is due. */
static bool timer_due(wm_part_t *p, struct timespec *until)
{
    int64_t due = wm__jrt_next_due(p->jrt);
    if (due == INT64_MAX)
        return false;
    int64_t now = wm__engine_clock(p->engine);
    int64_t wait = due - now;
    if (wait < 0)
        wait = 0;
    if (wait > 60000)
        wait = 60000;
    clock_gettime(CLOCK_REALTIME, until);
    until->tv_sec += wait / 1000;
    until->tv_nsec += (long)(wait % 1000) * 1000000L + 1000000L;
    if (until->tv_nsec >= 1000000000L) {
        until->tv_sec++;
        until->tv_nsec -= 1000000000L;
    }
    return true;
}

/* With tags or segments that move with the clock, the writer wakes at
 * least once a minute to notice the day change. */
static bool audience_clock(wm_part_t *p, struct timespec *until)
{
    if (!wm__aud_active(p->aud) || atomic_load(&p->failed))
        return false;
    clock_gettime(CLOCK_REALTIME, until);
    until->tv_sec += 60;
    return true;
}

void wm__part_wake(wm_part_t *p)
{
    pthread_mutex_lock(&p->mu);
    p->timers_woken = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static wm_job_t *take_jobs(wm_part_t *p, bool *stop)
{
    pthread_mutex_lock(&p->mu);
    while (!p->head && !p->stopping && !p->timers_woken) {
        struct timespec until;
        if (wm__jrt_next_due(p->jrt) <= wm__engine_clock(p->engine))
            break;
        if (!atomic_load(&p->failed) && wm__aud_background_due(p->aud, wm__engine_clock(p->engine)))
            break;
        if (timer_due(p, &until) || audience_clock(p, &until)) {
            if (pthread_cond_timedwait(&p->cv, &p->mu, &until) == ETIMEDOUT)
                break;
        } else {
            pthread_cond_wait(&p->cv, &p->mu);
        }
    }
    p->timers_woken = false;
    wm_job_t *jobs = p->head;
    /* take whole jobs up to WM_APPLY_BATCH_MAX records (at least one job) */
    uint32_t n = 0;
    wm_job_t *last = NULL, *j = p->head;
    while (j && (n == 0 || n + j->n <= WM_APPLY_BATCH_MAX)) {
        n += j->n;
        last = j;
        j = j->next;
    }
    if (last) {
        p->head = last->next;
        if (!p->head)
            p->tail = NULL;
        last->next = NULL;
        p->queued_records -= n;
    }
    *stop = p->stopping && !jobs;
    pthread_mutex_unlock(&p->mu);
    return jobs;
}

static void fail_jobs(wm_job_t *jobs, int err)
{
    while (jobs) {
        wm_job_t *next = jobs->next;
        waiter_done(jobs->waiter, err);
        wm__job_free(jobs);
        jobs = next;
    }
}

static int write_round(wm_part_t *p, wm_job_t *jobs, wm_log_pos_t **pos_out, uint32_t *n_out)
{
    uint32_t n = 0;
    for (wm_job_t *j = jobs; j; j = j->next)
        n += j->n;
    wm_log_pos_t *pos = wm_malloc(sizeof *pos * (n ? n : 1));
    if (!pos)
        return WM_ENOMEM;
    uint32_t k = 0;
    int rc = 0;
    for (wm_job_t *j = jobs; j && !rc; j = j->next)
        for (uint32_t i = 0; i < j->n && !rc; i++)
            rc = wm_log_append(p->log, j->payloads[i], j->lens[i], &pos[k++]);
    uint64_t durable = 0;
    if (!rc)
        rc = wm__engine_identity_sync(p->engine);
    if (!rc)
        rc = wm_log_sync(p->log, &durable);
    if (rc) {
        wm_free(pos);
        return rc;
    }
    atomic_store(&p->durable_seq, durable);
    *pos_out = pos;
    *n_out = n;
    return 0;
}

static int apply_round(wm_part_t *p, apply_ctx_t *ac, wm_job_t *jobs, const wm_log_pos_t *pos)
{
    int rc = mdb_txn_begin(p->env, NULL, 0, &ac->txn);
    if (rc)
        return mdb_err(rc, "apply txn", p->index);
    tx_begin(ac);
    uint32_t k = 0;
    for (wm_job_t *j = jobs; j; j = j->next) {
        for (uint32_t i = 0; i < j->n; i++, k++) {
            rc = apply_one(ac, j->payloads[i], j->lens[i], &pos[k]);
            if (rc == WM_ECORRUPT) {
                atomic_fetch_add(&p->m_apply_errors, 1);
                rc = 0;
            }
            if (rc)
                goto abort;
        }
    }
    if (!k)
        goto abort;
    if ((rc = put_applied(p, ac->txn, pos[k - 1].seq)) || (rc = wm__jtx_precommit(&ac->jtx)))
        goto abort;
    rc = mdb_txn_commit(ac->txn);
    ac->txn = NULL;
    if (rc) {
        tx_aborted(ac);
        return mdb_err(rc, "apply commit", p->index);
    }
    tx_committed(ac);
    publish_applied(p, pos[k - 1].seq);
    return 0;
abort:
    mdb_txn_abort(ac->txn);
    ac->txn = NULL;
    tx_aborted(ac);
    return rc;
}

/* ---- journey timers and op events ---- */


static void queue_ops(wm_part_t *p);

/* A round of work that is not ingest (timers, the audience's background
 * work) in its own transaction, with both runtimes joined, then the op
 * events it queued handed to the log. */
static int own_round(wm_part_t *p, apply_ctx_t *ac, const char *what,
                     int (*work)(apply_ctx_t *ac, bool *more))
{
    bool more = false;
    int rc = mdb_txn_begin(p->env, NULL, 0, &ac->txn);
    if (rc)
        return mdb_err(rc, what, p->index);
    wm_arena_reset(&ac->jarena);
    tx_begin(ac);
    rc = work(ac, &more);
    if (!rc)
        rc = wm__jtx_precommit(&ac->jtx);
    if (rc) {
        mdb_txn_abort(ac->txn);
        tx_aborted(ac);
    } else if ((rc = mdb_txn_commit(ac->txn))) {
        tx_aborted(ac);
        rc = mdb_err(rc, what, p->index);
    } else {
        tx_committed(ac);
    }
    ac->txn = NULL;
    queue_ops(p);
    return rc;
}

static int timers_work(apply_ctx_t *ac, bool *more)
{
    int rc = wm__jrt_fire_timers(&ac->jtx, WM_TIMERS_PER_TXN, more);
    return rc ? rc : drain_segment_events(ac);
}

static int audience_work(apply_ctx_t *ac, bool *more)
{
    int rc = wm__aud_background(&ac->atx, WM_AUD_BACKGROUND_USERS, more);
    return rc ? rc : drain_segment_events(ac);
}

/* Fires one batch of due timers. The writer loop comes back here while more
 * are due, taking queued ingest work in between: a million timers falling
 * due at once must not hold acknowledgements back for seconds. */
static int fire_timers(wm_part_t *p, apply_ctx_t *ac) { return own_round(p, ac, "timer txn", timers_work); }

/* One round of the audience's background work (publish recomputes, the
 * clock pass), between ingest rounds. */
static int audience_round(wm_part_t *p, apply_ctx_t *ac)
{
    return own_round(p, ac, "audience txn", audience_work);
}

typedef struct ops_job {
    wm_job_t *job;
    uint32_t cap;
    int err;
} ops_job_t;

static void ops_emit(void *ctx, const unsigned char *payload, uint32_t len)
{
    ops_job_t *oj = ctx;
    if (oj->err)
        return;
    if (!oj->job && !(oj->job = wm_calloc(1, sizeof *oj->job))) {
        oj->err = WM_ENOMEM;
        return;
    }
    wm_job_t *j = oj->job;
    if (j->n == oj->cap) {
        uint32_t cap = oj->cap ? oj->cap * 2 : 64;
        unsigned char **pl = wm_realloc(j->payloads, cap * sizeof *pl);
        uint32_t *ln = pl ? wm_realloc(j->lens, cap * sizeof *ln) : NULL;
        if (pl)
            j->payloads = pl;
        if (!pl || !ln) {
            oj->err = WM_ENOMEM;
            return;
        }
        j->lens = ln;
        oj->cap = cap;
    }
    unsigned char *copy = wm_malloc(len);
    if (!copy) {
        oj->err = WM_ENOMEM;
        return;
    }
    memcpy(copy, payload, len);
    j->payloads[j->n] = copy;
    j->lens[j->n++] = len;
}

/* Appends the op events committed so far (and not yet handed over) to this
 * partition's own log, as a job without a waiter. */
static void queue_ops(wm_part_t *p)
{
    ops_job_t oj = {0};
    uint64_t after = p->ops_after;
    wm__jrt_pending_ops(p->jrt, &after, WM_OPS_PER_ROUND, ops_emit, &oj);
    if (oj.err || !oj.job) {
        wm__job_free(oj.job);
        return;
    }
    p->ops_after = after;
    wm__engine_enqueue(p->engine, p, oj.job);
}

static void *writer_main(void *arg)
{
    wm_part_t *p = arg;
    int rc = migrate_journey_tags(p);
    if (!rc)
        rc = replay(p);
    if (rc) {
        fprintf(stderr, "waymark: partition %u: replay failed: %s\n", p->index, wm_strerror(rc));
        atomic_store(&p->failed, 1);
    }
    pthread_mutex_lock(&p->applied_mu);
    atomic_store(&p->ready, 1);
    pthread_cond_broadcast(&p->applied_cv);
    pthread_mutex_unlock(&p->applied_mu);
    apply_ctx_t ac = {.p = p};
    wm_arena_init(&ac.arena, 64 * 1024);
    wm_arena_init(&ac.jarena, 64 * 1024);
    if (!atomic_load(&p->failed)) {
        queue_ops(p);
        wm__jrt_redispatch(p->jrt);
    }
    for (;;) {
        bool stop;
        wm_job_t *jobs = take_jobs(p, &stop);
        if (stop)
            break;
        if (!atomic_load(&p->failed) &&
            wm__jrt_next_due(p->jrt) <= wm__engine_clock(p->engine) && fire_timers(p, &ac)) {
            fprintf(stderr, "waymark: partition %u: timer transaction failed\n", p->index);
            atomic_store(&p->failed, 1);
        }
        if (!atomic_load(&p->failed) &&
            wm__aud_background_due(p->aud, wm__engine_clock(p->engine)) && audience_round(p, &ac)) {
            fprintf(stderr, "waymark: partition %u: audience transaction failed\n", p->index);
            atomic_store(&p->failed, 1);
        }
        if (!jobs) {
            queue_ops(p);
            continue;
        }
        if (atomic_load(&p->failed)) {
            fail_jobs(jobs, WM_ESTATE);
            continue;
        }
        wm_log_pos_t *pos = NULL;
        uint32_t n = 0;
        rc = write_round(p, jobs, &pos, &n);
        if (rc) {
            fprintf(stderr, "waymark: partition %u: log write failed: %s\n", p->index,
                    wm_strerror(rc));
            atomic_store(&p->failed, 1);
            fail_jobs(jobs, rc);
            continue;
        }
        atomic_fetch_add(&p->m_records, n);
        atomic_fetch_add(&p->m_batches, 1);
        for (wm_job_t *j = jobs; j; j = j->next)
            waiter_done(j->waiter, 0);
        rc = apply_round(p, &ac, jobs, pos);
        wm_free(pos);
        if (rc) {
            fprintf(stderr, "waymark: partition %u: apply failed: %s\n", p->index, wm_strerror(rc));
            atomic_store(&p->failed, 1);
        }
        while (jobs) {
            wm_job_t *next = jobs->next;
            wm__job_free(jobs);
            jobs = next;
        }
        queue_ops(p);
    }
    wm_arena_release(&ac.arena);
    wm_arena_release(&ac.jarena);
    wm__atx_release(&ac.atx);
    return NULL;
}

int wm__part_start(wm_part_t *p)
{
    if (pthread_create(&p->thread, NULL, writer_main, p))
        return WM_EIO;
    p->thread_started = true;
    return 0;
}

void wm__part_enqueue(wm_part_t *p, wm_job_t *job)
{
    job->next = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->tail)
        p->tail->next = job;
    else
        p->head = job;
    p->tail = job;
    p->queued_records += job->n;
    p->next_seq += job->n;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void wm__part_close(wm_part_t *p)
{
    if (!p)
        return;
    if (p->thread_started) {
        pthread_mutex_lock(&p->mu);
        p->stopping = true;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->thread, NULL);
    }
    fail_jobs(p->head, WM_ECLOSED);
    wm__jrt_close(p->jrt);
    wm__aud_close(p->aud);
    drop_segment_events(p);
    wm_free(p->seg_events);
    wm_names_close(p->names);
    if (p->env) {
        mdb_env_sync(p->env, 1);
        mdb_env_close(p->env);
    }
    if (p->log)
        wm_log_close(p->log);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->applied_mu);
    pthread_cond_destroy(&p->applied_cv);
    wm_free(p);
}

/* ---- queries ---- */

static int get_copy(wm_part_t *p, MDB_dbi dbi, MDB_val *k, char **json, size_t *len)
{
    MDB_txn *txn;
    if (mdb_txn_begin(p->env, NULL, MDB_RDONLY, &txn))
        return WM_EIO;
    MDB_val v;
    int rc = mdb_get(txn, dbi, k, &v);
    if (rc == 0) {
        *json = wm_strndup(v.mv_data, v.mv_size);
        *len = v.mv_size;
        rc = *json ? 0 : WM_ENOMEM;
    } else {
        rc = rc == MDB_NOTFOUND ? WM_ENOTFOUND : WM_EIO;
    }
    mdb_txn_abort(txn);
    return rc;
}

int wm__part_profile_get(wm_part_t *p, uint64_t user_id, char **json, size_t *len)
{
    unsigned char kb[8];
    wm_put_be64(kb, user_id);
    MDB_val k = {8, kb};
    return get_copy(p, p->dbi_profiles, &k, json, len);
}

/* The user row as the JSON text callers read: {"project":..,"first_seen_ms":..}. */
static int user_meta_json(wm_part_t *p, const MDB_val *v, char **json, size_t *len)
{
    const unsigned char *r = v->mv_data, *end = r + v->mv_size;
    if (v->mv_size && r[0] == '{') {
        *json = wm_strndup(v->mv_data, v->mv_size);
        *len = v->mv_size;
        return *json ? 0 : WM_ENOMEM;
    }
    uint64_t project, first_seen;
    char name[WM_NAME_BYTES_MAX + 1];
    r++;
    if (v->mv_size < 1 || ((const unsigned char *)v->mv_data)[0] != USER_ROW_FORMAT ||
        !wm_get_varint(&r, end, &project) || !wm_get_varint(&r, end, &first_seen) || r != end ||
        project > UINT32_MAX || wm_names_get(p->names, (uint32_t)project, name, sizeof name) < 0)
        return WM_ECORRUPT;
    wm_buf_t b;
    wm_buf_init(&b, 0);
    wm_buf_puts(&b, "{\"project\":");
    wm_buf_json_str(&b, name, strlen(name));
    wm_buf_printf(&b, ",\"first_seen_ms\":%lld}", (long long)wm_unzigzag(first_seen));
    int rc = b.err;
    *json = rc ? NULL : wm_strndup(b.data, b.len);
    *len = b.len;
    wm_buf_release(&b);
    return rc ? rc : *json ? 0 : WM_ENOMEM;
}

int wm__part_user_meta(wm_part_t *p, uint64_t user_id, char **json, size_t *len)
{
    unsigned char kb[8];
    wm_put_be64(kb, user_id);
    MDB_val k = {8, kb}, v;
    MDB_txn *txn;
    if (mdb_txn_begin(p->env, NULL, MDB_RDONLY, &txn))
        return WM_EIO;
    int rc = mdb_get(txn, p->dbi_users, &k, &v);
    rc = rc == 0 ? user_meta_json(p, &v, json, len) : rc == MDB_NOTFOUND ? WM_ENOTFOUND : WM_EIO;
    mdb_txn_abort(txn);
    return rc;
}

int wm__part_item_get(wm_part_t *p, const char *key, size_t key_len, char **json, size_t *len)
{
    MDB_val k = {key_len, (void *)key};
    return get_copy(p, p->dbi_items, &k, json, len);
}

int wm__part_user_events(wm_part_t *p, uint64_t user_id, uint32_t limit, wm_event_ref_t *refs,
                         uint32_t *n)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    if (mdb_txn_begin(p->env, NULL, MDB_RDONLY, &txn))
        return WM_EIO;
    if (mdb_cursor_open(txn, p->dbi_events, &cur)) {
        mdb_txn_abort(txn);
        return WM_EIO;
    }
    /* position after the user's last key, then walk backwards (newest first) */
    unsigned char kb[8];
    wm_put_be64(kb, user_id + 1);
    MDB_val k = {8, kb}, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    rc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_PREV) : mdb_cursor_get(cur, &k, &v, MDB_LAST);
    uint32_t got = 0;
    while (rc == 0 && got < limit) {
        wm_event_ref_t *r = &refs[*n + got];
        uint64_t owner;
        if (!wm_evidx_decode(&k, &v, &owner, &r->time_ms, &r->pos) || owner != user_id)
            break;
        r->seq = r->pos.seq;
        r->part = p;
        got++;
        rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
    }
    *n += got;
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return 0;
}

int wm__part_merged_from(wm_part_t *p, uint64_t user_id, uint64_t *from, uint32_t max, uint32_t *n)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    *n = 0;
    if (mdb_txn_begin(p->env, NULL, MDB_RDONLY, &txn))
        return WM_EIO;
    if (mdb_cursor_open(txn, p->dbi_merges, &cur)) {
        mdb_txn_abort(txn);
        return WM_EIO;
    }
    unsigned char kb[8];
    wm_put_be64(kb, user_id);
    MDB_val k = {8, kb}, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && *n < max && k.mv_size == 16 && wm_get_be64(k.mv_data) == user_id) {
        from[(*n)++] = wm_get_be64((const unsigned char *)k.mv_data + 8);
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return 0;
}

int wm__part_items_each(wm_part_t *p, const char *project, const char *type,
                        int (*cb)(void *ctx, const char *id, const char *json, size_t len), void *ctx)
{
    char pb[600];
    size_t pl = item_key(pb, sizeof pb, project, type, "");
    if (!pl)
        return WM_EINVAL;
    MDB_txn *txn;
    MDB_cursor *c;
    if (mdb_txn_begin(p->env, NULL, MDB_RDONLY, &txn))
        return WM_EIO;
    if (mdb_cursor_open(txn, p->dbi_items, &c)) {
        mdb_txn_abort(txn);
        return WM_EIO;
    }
    MDB_val k = {pl, pb}, v;
    int mrc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE), rc = 0;
    while (mrc == 0 && !rc && k.mv_size > pl && !memcmp(k.mv_data, pb, pl)) {
        char id[256];
        size_t il = k.mv_size - pl;
        if (il < sizeof id) {
            memcpy(id, (const char *)k.mv_data + pl, il);
            id[il] = 0;
            rc = cb(ctx, id, v.mv_data, v.mv_size);
        }
        mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    return rc;
}

int wm__part_user_scan(wm_part_t *p, wm_arena_t *arena, uint64_t user_id, int64_t from_ms, int64_t to_ms,
                       int (*cb)(void *ctx, const wm_json_t *event), void *ctx)
{
    MDB_txn *txn;
    if (mdb_txn_begin(p->env, NULL, MDB_RDONLY, &txn))
        return WM_EIO;
    int rc = wm__aud_user_events(p->aud, txn, arena, user_id, from_ms, to_ms, cb, ctx);
    mdb_txn_abort(txn);
    return rc;
}
