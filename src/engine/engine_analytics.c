/*
 * engine_analytics.c - the engine's side of the analytics layer: one
 * columnar store per partition (DATA/analytics/pNN, next to the partition's
 * DATA/pNN), the compactor thread that turns each partition's durable log
 * tail into parts, the running-query registry (list, cancel) and the host
 * callbacks that answer a query's customer clauses from the partitions'
 * profile and audience stores (and a funnel's save_segment, a static list).
 *
 * Compactor (one thread for every partition; stores are compacted by one
 * thread at a time, an_mu makes `waymark compact` and the thread exclusive):
 *
 *     every WM_ANALYTICS_COMPACT_TICK_MS, per partition:
 *       waiting = durable_seq - compacted_seq
 *       waiting == 0                      -> forget waiting_since
 *       waiting_since unset               -> waiting_since = now
 *       waiting >= COMPACT_RECORDS or
 *       now - waiting_since >= AGE_MS     -> compact, forget waiting_since
 *
 * So a record reaches a part at most ~AGE_MS + one tick after it became
 * durable; queries read the part-less tail from the log meanwhile, so it is
 * queryable at once. A failed compaction is logged (once per distinct error
 * code in a row) and retried AGE_MS later; it never stops the engine.
 *
 * Note: analytics.h and partition.h both name `struct wm_part` (a part file
 * there, a partition here); this file uses only the store API, never a part.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "engine_internal.h"
#include "waymark/alloc.h"
#include "waymark/analytics.h"
#include "waymark/arena.h"
#include "waymark/error.h"
#include "waymark/json.h"
#include "waymark/limits.h"

typedef struct running_query {
    struct running_query *next;
    char id[WM_QUERY_ID_MAX + 1];
    char kind[32];
    char project[WM_NAME_LEN_MAX + 1];
    int64_t started_ms;         /* wall clock, for listings */
    int64_t started_mono_ms;
    volatile int cancel;        /* wm_query_src_t.cancel */
} running_query_t;

typedef struct an_part_state {
    int64_t waiting_since_ms;   /* monotonic; 0: nothing waiting */
    int last_err;               /* last compaction error (logged once) */
} an_part_state_t;

struct wm__analytics {
    wm_astore_t **stores;       /* one per partition */
    wm_log_t **logs;            /* the partitions' logs, for the query tail */
    an_part_state_t *state;
    uint32_t n;
    pthread_mutex_t an_mu;      /* one compaction at a time over all stores */

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    _Atomic uint64_t m_compactions, m_compact_errors, m_compact_ns;

    pthread_mutex_t q_mu;       /* the running queries */
    running_query_t *queries;
    uint32_t n_queries;
    bool closing;               /* wm_engine_queries_stop: no new queries */
    _Atomic uint64_t q_seq;
    _Atomic uint64_t m_queries, m_query_errors, m_query_cancelled, m_query_timeouts;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- compactor ---- */

static void compact_one(struct wm__analytics *an, uint32_t i, int64_t now)
{
    an_part_state_t *st = &an->state[i];
    uint64_t durable = wm_log_durable_seq(an->logs[i]);
    uint64_t done = wm_astore_compacted_seq(an->stores[i]);
    uint64_t waiting = durable > done ? durable - done : 0;
    if (!waiting) {
        st->waiting_since_ms = 0;
        return;
    }
    if (!st->waiting_since_ms)
        st->waiting_since_ms = now;
    if (waiting < WM_ANALYTICS_COMPACT_RECORDS && now - st->waiting_since_ms < WM_ANALYTICS_COMPACT_AGE_MS)
        return;
    int64_t t0 = mono_ms();
    bool did = false;
    pthread_mutex_lock(&an->an_mu);
    int rc = wm_astore_compact(an->stores[i], an->logs[i], 0, &did);
    pthread_mutex_unlock(&an->an_mu);
    atomic_fetch_add(&an->m_compact_ns, (uint64_t)(mono_ms() - t0) * 1000000u);
    if (rc) {
        atomic_fetch_add(&an->m_compact_errors, 1);
        if (rc != st->last_err)
            fprintf(stderr, "waymark: analytics: partition %u: compaction failed: %s (retrying)\n", i,
                    wm_strerror(rc));
        st->last_err = rc;
        st->waiting_since_ms = now;   /* retry once the age rule says so again */
        return;
    }
    if (st->last_err)
        fprintf(stderr, "waymark: analytics: partition %u: compaction works again\n", i);
    st->last_err = 0;
    st->waiting_since_ms = 0;
    if (did)
        atomic_fetch_add(&an->m_compactions, 1);
}

static void *compactor_main(void *arg)
{
    struct wm__analytics *an = arg;
    pthread_mutex_lock(&an->mu);
    while (!an->stop) {
        pthread_mutex_unlock(&an->mu);
        for (uint32_t i = 0; i < an->n; i++) {
            pthread_mutex_lock(&an->mu);
            bool stop = an->stop;
            pthread_mutex_unlock(&an->mu);
            if (stop)
                break;
            compact_one(an, i, mono_ms());
        }
        pthread_mutex_lock(&an->mu);
        if (an->stop)
            break;
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += WM_ANALYTICS_COMPACT_TICK_MS / 1000;
        until.tv_nsec += (long)(WM_ANALYTICS_COMPACT_TICK_MS % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&an->cv, &an->mu, &until);
    }
    pthread_mutex_unlock(&an->mu);
    return NULL;
}

/* ---- open / close ---- */

int wm__engine_analytics_open(wm_engine_t *e, bool compactor)
{
    struct wm__analytics *an = wm_calloc(1, sizeof *an);
    if (!an)
        return WM_ENOMEM;
    e->an = an;
    pthread_mutex_init(&an->an_mu, NULL);
    pthread_mutex_init(&an->mu, NULL);
    pthread_mutex_init(&an->q_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&an->cv, &ca);
    pthread_condattr_destroy(&ca);
    an->stores = wm_calloc(e->n_parts, sizeof *an->stores);
    an->logs = wm_calloc(e->n_parts, sizeof *an->logs);
    an->state = wm_calloc(e->n_parts, sizeof *an->state);
    if (!an->stores || !an->logs || !an->state)
        return WM_ENOMEM;
    char path[4096];
    snprintf(path, sizeof path, "%s/analytics", e->data_dir);
    if (mkdir(path, 0755) && errno != EEXIST) {
        fprintf(stderr, "waymark: cannot create %s: %s\n", path, strerror(errno));
        return WM_EIO;
    }
    for (uint32_t i = 0; i < e->n_parts; i++) {
        snprintf(path, sizeof path, "%s/analytics/p%02u", e->data_dir, i);
        int rc = wm_astore_open(path, i, &an->stores[i]);
        if (rc) {
            fprintf(stderr, "waymark: analytics: cannot open %s: %s\n", path, wm_strerror(rc));
            return rc;
        }
        an->logs[i] = e->parts[i]->log;
        an->n = i + 1;
    }
    if (compactor) {
        if (pthread_create(&an->thread, NULL, compactor_main, an))
            return WM_EIO;
        an->thread_started = true;
    }
    return 0;
}

void wm__engine_analytics_close(wm_engine_t *e)
{
    struct wm__analytics *an = e->an;
    if (!an)
        return;
    if (an->thread_started) {
        pthread_mutex_lock(&an->mu);
        an->stop = true;
        pthread_cond_broadcast(&an->cv);
        pthread_mutex_unlock(&an->mu);
        pthread_join(an->thread, NULL);
    }
    /* queries run on the callers' threads, which are gone by now (the
     * server stops before the engine closes) */
    for (uint32_t i = 0; i < an->n; i++)
        wm_astore_close(an->stores[i]);
    wm_free(an->stores);
    wm_free(an->logs);
    wm_free(an->state);
    pthread_mutex_destroy(&an->an_mu);
    pthread_mutex_destroy(&an->mu);
    pthread_mutex_destroy(&an->q_mu);
    pthread_cond_destroy(&an->cv);
    wm_free(an);
    e->an = NULL;
}

/* ---- host callbacks: customer clauses ---- */

typedef wm__query_host_ctx_t host_ctx_t;

static wm_part_t *home_part(wm_engine_t *e, uint64_t user)
{
    /* a user's profile and audience rows live in the user's home partition,
     * whichever partition's rows the query is reading */
    return e->parts[user % e->n_parts];
}

static const wm_json_t *parse_in(wm_arena_t *a, const char *text, size_t len)
{
    /* copied: a parsed number keeps a pointer to its literal text */
    char *copy = wm_arena_alloc(a, len + 1);
    if (!copy)
        return NULL;
    memcpy(copy, text, len);
    copy[len] = '\0';
    wm_json_t *v;
    wm_json_error_t je;
    return wm_json_parse(a, copy, len, &v, &je) ? NULL : v;
}

static const wm_json_t *host_profile(void *ctx, uint32_t part, uint64_t user, const char *name, wm_arena_t *a)
{
    host_ctx_t *h = ctx;
    char *json = NULL;
    size_t len = 0;
    if (wm__part_profile_get(home_part(h->e, user), user, &json, &len))
        return NULL;
    const char *val;
    size_t vlen;
    const wm_json_t *out = NULL;
    if (wm_json_find_member(json, len, name, &val, &vlen) == 0)
        out = parse_in(a, val, vlen);
    wm_free(json);
    (void)part;
    return out;
}

/* A read transaction on the user's partition for the audience runtime. */
static bool aud_begin(host_ctx_t *h, uint64_t user, wm_arena_t *a, wm_atx_t *t)
{
    wm_part_t *p = home_part(h->e, user);
    MDB_txn *txn;
    if (!p->aud || mdb_txn_begin(p->env, NULL, MDB_RDONLY, &txn))
        return false;
    memset(t, 0, sizeof *t);
    t->rt = p->aud;
    t->txn = txn;
    t->arena = a;
    t->now_ms = wm__engine_clock(h->e);
    t->snap = wm__areg_snapshot(h->e->areg);
    return true;
}

static const wm_json_t *host_tag(void *ctx, uint32_t part, uint64_t user, const char *name, wm_arena_t *a)
{
    host_ctx_t *h = ctx;
    wm_atx_t t;
    if (!aud_begin(h, user, a, &t))
        return NULL;
    /* the value is parsed into the arena: valid after the transaction */
    const wm_json_t *v = wm__aud_tag_get(&t, user, name);
    mdb_txn_abort(t.txn);
    (void)part;
    return v && v->type != WM_JSON_NULL ? v : NULL;
}

static bool host_in_segment(void *ctx, uint32_t part, uint64_t user, const char *segment)
{
    host_ctx_t *h = ctx;
    wm_arena_t a;
    wm_arena_init(&a, 1024);
    wm_atx_t t;
    bool in = false;
    if (aud_begin(h, user, &a, &t)) {
        in = wm__aud_in_segment(&t, user, h->project, segment);
        mdb_txn_abort(t.txn);
    }
    wm_arena_release(&a);
    (void)part;
    return in;
}

void wm__engine_query_host(wm__query_host_ctx_t *ctx, struct wm_query_host *host)
{
    *host = (wm_query_host_t){.ctx = ctx, .profile = host_profile, .tag = host_tag, .in_segment = host_in_segment};
}

/* ---- queries ---- */

typedef struct save_ctx {
    wm_engine_t *e;
    const char *project;
    char msg[256];
} save_ctx_t;

/* funnel save_segment: the dropped customers become a static list */
static int save_segment(void *ctx, const char *segment, const uint64_t *users, uint32_t n)
{
    save_ctx_t *sc = ctx;
    return wm__engine_segment_replace(sc->e, sc->project, segment, users, n, sc->msg, sizeof sc->msg);
}

static bool id_valid(const char *id)
{
    size_t n = strlen(id);
    if (!n || n > WM_QUERY_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '-' || c == '.'))
            return false;
    }
    return true;
}

static void set_qerr(wm_engine_query_error_t *err, const char *path, const char *msg)
{
    snprintf(err->path, sizeof err->path, "%s", path);
    snprintf(err->msg, sizeof err->msg, "%s", msg);
}

/* Registers a running query; 0, WM_ECONFLICT (too many), WM_EEXISTS (id taken). */
static int query_register(struct wm__analytics *an, running_query_t *q)
{
    pthread_mutex_lock(&an->q_mu);
    int rc = 0;
    if (an->closing)
        rc = WM_ECLOSED;
    else if (an->n_queries >= WM_QUERIES_RUNNING_MAX)
        rc = WM_ECONFLICT;
    for (running_query_t *o = an->queries; o && !rc; o = o->next)
        if (!strcmp(o->id, q->id))
            rc = WM_EEXISTS;
    if (!rc) {
        q->next = an->queries;
        an->queries = q;
        an->n_queries++;
    }
    pthread_mutex_unlock(&an->q_mu);
    return rc;
}

static void query_unregister(struct wm__analytics *an, running_query_t *q)
{
    pthread_mutex_lock(&an->q_mu);
    for (running_query_t **pp = &an->queries; *pp; pp = &(*pp)->next)
        if (*pp == q) {
            *pp = q->next;
            an->n_queries--;
            break;
        }
    pthread_mutex_unlock(&an->q_mu);
}

int wm_engine_query(wm_engine_t *e, const char *kind, const char *req_json, size_t len,
                    const wm_engine_query_opts_t *opts, char *id_out, wm_buf_t *out,
                    wm_engine_query_error_t *err)
{
    struct wm__analytics *an = e->an;
    wm_engine_query_opts_t none = {0};
    if (!opts)
        opts = &none;
    set_qerr(err, "", "");
    if (!kind || !*kind || strlen(kind) >= sizeof ((running_query_t *)0)->kind) {
        set_qerr(err, "kind", "a query kind is required (events, funnel, retention, paths, attribution, "
                              "distribution, interval, map, export)");
        return WM_EINVAL;
    }
    running_query_t *q = wm_calloc(1, sizeof *q);
    if (!q)
        return WM_ENOMEM;
    if (opts->id && *opts->id) {
        if (!id_valid(opts->id)) {
            wm_free(q);
            set_qerr(err, "id", "a query id is 1 to 64 of A-Z a-z 0-9 _ - .");
            return WM_EINVAL;
        }
        snprintf(q->id, sizeof q->id, "%s", opts->id);
    } else {
        snprintf(q->id, sizeof q->id, "q%" PRIx64 "-%" PRIu64, (uint64_t)wall_ms(),
                 atomic_fetch_add(&an->q_seq, 1) + 1);
    }
    snprintf(q->kind, sizeof q->kind, "%s", kind);
    snprintf(q->project, sizeof q->project, "%s", opts->project && *opts->project ? opts->project : "default");
    q->started_ms = wall_ms();
    q->started_mono_ms = mono_ms();
    if (id_out)
        snprintf(id_out, WM_QUERY_ID_MAX + 1, "%s", q->id);

    wm_arena_t a;
    wm_arena_init(&a, 16 * 1024);
    a.limit_bytes = WM_HTTP_BODY_MAX * 8u;
    wm_json_t *req = NULL;
    wm_json_error_t je;
    int rc = len ? wm_json_parse(&a, req_json, len, &req, &je) : WM_EPARSE;
    if (rc == WM_EPARSE || (!rc && req->type != WM_JSON_OBJECT)) {
        char msg[200];
        if (rc)
            snprintf(msg, sizeof msg, "the request is not JSON: %s", je.msg);
        else
            snprintf(msg, sizeof msg, "the request must be a JSON object");
        set_qerr(err, "", msg);
        rc = WM_EINVAL;
    }
    if (!rc)
        rc = query_register(an, q);
    if (rc) {
        if (rc == WM_ECONFLICT)
            set_qerr(err, "", "too many queries are running; retry later");
        else if (rc == WM_ECLOSED)
            set_qerr(err, "", "the server is shutting down");
        else if (rc == WM_EEXISTS)
            set_qerr(err, "id", "a running query has this id");
        wm_arena_release(&a);
        wm_free(q);
        return rc;
    }
    atomic_fetch_add(&an->m_queries, 1);
    host_ctx_t hc = {.e = e, .project = q->project};
    wm_query_host_t host;
    wm__engine_query_host(&hc, &host);
    save_ctx_t sc = {.e = e, .project = q->project};
    wm_query_src_t src = {.stores = an->stores, .logs = an->logs, .n_parts = an->n, .host = &host,
                          .cancel = &q->cancel, .timeout_ms = opts->timeout_ms, .save = save_segment,
                          .save_ctx = &sc};
    wm_query_error_t qe = {{0}, {0}};
    size_t start = out->len;
    rc = wm_query_run(&src, kind, req, out, &qe);
    if (!rc && out->err)
        rc = out->err == WM_ELIMIT ? WM_ELIMIT : out->err;
    if (!rc && opts->answer_max && out->len - start > opts->answer_max)
        rc = WM_ELIMIT;
    if (rc) {
        out->len = start;   /* no half answer */
        set_qerr(err, qe.path, qe.msg);
        if (sc.msg[0])
            set_qerr(err, "save_segment", sc.msg);
        if (!err->msg[0])
            set_qerr(err, qe.path, rc == WM_ELIMIT ? "the query needs more memory than allowed; narrow it"
                                   : rc == WM_EBUSY ? "the query ran out of time"
                                   : rc == WM_ECLOSED ? "the query was cancelled"
                                                     : wm_strerror(rc));
        atomic_fetch_add(rc == WM_ECLOSED ? &an->m_query_cancelled
                         : rc == WM_EBUSY ? &an->m_query_timeouts
                                          : &an->m_query_errors,
                         1);
    }
    query_unregister(an, q);
    wm_arena_release(&a);
    wm_free(q);
    return rc;
}

int wm_engine_queries_json(wm_engine_t *e, wm_buf_t *out)
{
    struct wm__analytics *an = e->an;
    int64_t now = mono_ms();
    wm_buf_puts(out, "{\"queries\":[");
    pthread_mutex_lock(&an->q_mu);
    for (running_query_t *q = an->queries; q; q = q->next) {
        wm_buf_puts(out, q == an->queries ? "{\"id\":" : ",{\"id\":");
        wm_buf_json_str(out, q->id, strlen(q->id));
        wm_buf_puts(out, ",\"kind\":");
        wm_buf_json_str(out, q->kind, strlen(q->kind));
        wm_buf_puts(out, ",\"project\":");
        wm_buf_json_str(out, q->project, strlen(q->project));
        wm_buf_printf(out, ",\"started_ms\":%lld,\"elapsed_ms\":%lld,\"cancelled\":%s}", (long long)q->started_ms,
                      (long long)(now - q->started_mono_ms), q->cancel ? "true" : "false");
    }
    pthread_mutex_unlock(&an->q_mu);
    wm_buf_puts(out, "]}");
    return out->err;
}

int wm_engine_query_cancel(wm_engine_t *e, const char *id)
{
    struct wm__analytics *an = e->an;
    int rc = WM_ENOTFOUND;
    pthread_mutex_lock(&an->q_mu);
    for (running_query_t *q = an->queries; q; q = q->next)
        if (!strcmp(q->id, id)) {
            q->cancel = 1;
            rc = 0;
        }
    pthread_mutex_unlock(&an->q_mu);
    return rc;
}

void wm_engine_queries_stop(wm_engine_t *e)
{
    struct wm__analytics *an = e->an;
    pthread_mutex_lock(&an->q_mu);
    an->closing = true;
    for (running_query_t *q = an->queries; q; q = q->next)
        q->cancel = 1;
    pthread_mutex_unlock(&an->q_mu);
}

/* ---- offline: compact everything, check ---- */

int wm_engine_analytics_compact_all(wm_engine_t *e, wm_buf_t *report)
{
    struct wm__analytics *an = e->an;
    int rc = 0;
    for (uint32_t i = 0; i < an->n && !rc; i++) {
        pthread_mutex_lock(&an->an_mu);
        bool did = true;
        /* each round takes at most WM_ASTORE_PART_RECORDS_MAX records */
        while (!rc && did)
            rc = wm_astore_compact(an->stores[i], an->logs[i], 0, &did);
        if (!rc)
            rc = wm_astore_merge_all(an->stores[i]);
        pthread_mutex_unlock(&an->an_mu);
        if (rc) {
            wm_buf_printf(report, "p%02u: compaction failed: %s\n", i, wm_strerror(rc));
            break;
        }
        wm_astore_stats_t st;
        wm_astore_stats(an->stores[i], &st);
        wm_buf_printf(report, "p%02u: %u parts, %" PRIu64 " rows, %" PRIu64 " bytes, %.1f bytes/event\n", i,
                      st.parts, st.rows, st.bytes, st.rows ? (double)st.bytes / (double)st.rows : 0.0);
    }
    return rc ? rc : report->err;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int wm_engine_analytics_check(const char *data_dir, wm_buf_t *report, uint64_t *faults)
{
    *faults = 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/analytics", data_dir);
    DIR *d = opendir(path);
    if (!d)
        return errno == ENOENT ? WM_ENOTFOUND : WM_EIO;
    char *names[WM_PARTITIONS_MAX];
    uint32_t n = 0;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)) && n < WM_PARTITIONS_MAX) {
        unsigned idx;
        char tail;
        if (sscanf(de->d_name, "p%u%c", &idx, &tail) != 1)
            continue;
        if (!(names[n] = wm_strdup(de->d_name))) {
            rc = WM_ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, name_cmp);
    for (uint32_t i = 0; i < n && !rc; i++) {
        snprintf(path, sizeof path, "%s/analytics/%s", data_dir, names[i]);
        uint64_t f = 0;
        rc = wm_astore_check(path, report, &f);
        *faults += f;
    }
    for (uint32_t i = 0; i < n; i++)
        wm_free(names[i]);
    return rc ? rc : report->err;
}

/* ---- metrics ---- */

void wm__engine_analytics_metrics(wm_engine_t *e, wm_buf_t *out)
{
    struct wm__analytics *an = e->an;
    if (!an)
        return;
    wm_buf_puts(out, "# HELP waymark_analytics_parts Column parts of a partition's analytics store.\n"
                     "# TYPE waymark_analytics_parts gauge\n"
                     "# HELP waymark_analytics_rows Events held in parts.\n"
                     "# TYPE waymark_analytics_rows gauge\n"
                     "# HELP waymark_analytics_bytes Bytes of the parts.\n"
                     "# TYPE waymark_analytics_bytes gauge\n"
                     "# HELP waymark_analytics_compacted_seq Last log sequence in a part.\n"
                     "# TYPE waymark_analytics_compacted_seq gauge\n"
                     "# HELP waymark_analytics_tail_records Durable log records not yet in a part.\n"
                     "# TYPE waymark_analytics_tail_records gauge\n"
                     "# HELP waymark_analytics_part_merges_total Part merges.\n"
                     "# TYPE waymark_analytics_part_merges_total counter\n"
                     "# HELP waymark_analytics_corrupt_blocks_total Part blocks queries found corrupt.\n"
                     "# TYPE waymark_analytics_corrupt_blocks_total counter\n");
    for (uint32_t i = 0; i < an->n; i++) {
        wm_astore_stats_t st;
        wm_astore_stats(an->stores[i], &st);
        uint64_t durable = wm_log_durable_seq(an->logs[i]);
        wm_buf_printf(out,
                      "waymark_analytics_parts{partition=\"%u\"} %u\n"
                      "waymark_analytics_rows{partition=\"%u\"} %" PRIu64 "\n"
                      "waymark_analytics_bytes{partition=\"%u\"} %" PRIu64 "\n"
                      "waymark_analytics_compacted_seq{partition=\"%u\"} %" PRIu64 "\n"
                      "waymark_analytics_tail_records{partition=\"%u\"} %" PRIu64 "\n"
                      "waymark_analytics_part_merges_total{partition=\"%u\"} %" PRIu64 "\n"
                      "waymark_analytics_corrupt_blocks_total{partition=\"%u\"} %" PRIu64 "\n",
                      i, st.parts, i, st.rows, i, st.bytes, i, st.compacted_seq, i,
                      durable > st.compacted_seq ? durable - st.compacted_seq : 0, i, st.merges, i,
                      st.corrupt_blocks);
    }
    wm_buf_printf(out,
                  "# HELP waymark_analytics_compactions_total Log tails turned into parts.\n"
                  "# TYPE waymark_analytics_compactions_total counter\n"
                  "waymark_analytics_compactions_total %" PRIu64 "\n"
                  "# HELP waymark_analytics_compaction_errors_total Compactions that failed (retried).\n"
                  "# TYPE waymark_analytics_compaction_errors_total counter\n"
                  "waymark_analytics_compaction_errors_total %" PRIu64 "\n"
                  "# HELP waymark_analytics_compaction_seconds_total Time spent compacting.\n"
                  "# TYPE waymark_analytics_compaction_seconds_total counter\n"
                  "waymark_analytics_compaction_seconds_total %.3f\n"
                  "# HELP waymark_queries_total Analytics queries started.\n"
                  "# TYPE waymark_queries_total counter\n"
                  "waymark_queries_total %" PRIu64 "\n"
                  "# HELP waymark_query_failures_total Analytics queries that ended without an answer, by reason.\n"
                  "# TYPE waymark_query_failures_total counter\n"
                  "waymark_query_failures_total{reason=\"error\"} %" PRIu64 "\n"
                  "waymark_query_failures_total{reason=\"timeout\"} %" PRIu64 "\n"
                  "waymark_query_failures_total{reason=\"cancelled\"} %" PRIu64 "\n",
                  atomic_load(&an->m_compactions), atomic_load(&an->m_compact_errors),
                  atomic_load(&an->m_compact_ns) / 1e9, atomic_load(&an->m_queries),
                  atomic_load(&an->m_query_errors), atomic_load(&an->m_query_timeouts),
                  atomic_load(&an->m_query_cancelled));
    pthread_mutex_lock(&an->q_mu);
    uint32_t running = an->n_queries;
    pthread_mutex_unlock(&an->q_mu);
    wm_buf_printf(out,
                  "# HELP waymark_queries_running Analytics queries running now.\n"
                  "# TYPE waymark_queries_running gauge\n"
                  "waymark_queries_running %u\n",
                  running);
}
