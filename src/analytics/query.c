/*
 * query.c - wm_query_run: the request's common members, the sources of a
 * query (every partition's parts and log tail), the identity merges, the scan
 * that hands each customer's stream to the kind's kernel (q_kernels.c), the
 * threads, the breakdown's ranking and the limits. Semantics:
 * docs/analytics.md and tests/oracle/NOTES.md.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "analytics/q_internal.h"
#include "waymark/alloc.h"
#include "waymark/error.h"
#include "waymark/limits.h"

#define DAY_MS 86400000LL

/* ------------------------------------------------------------- helpers */

int q_fail(wm_query_error_t *err, const char *path, const char *fmt, ...)
{
    size_t n = strlen(path);
    if (n >= sizeof err->path)
        n = sizeof err->path - 1;
    memcpy(err->path, path, n);
    err->path[n] = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return WM_EINVAL;
}

int q_mem(query_t *q, int64_t n)
{
    size_t now = atomic_fetch_add(&q->mem, (size_t)n) + (size_t)n;
    if (n > 0 && now > q->mem_max) {
        atomic_store(&q->stop, WM_ELIMIT);
        return WM_ELIMIT;
    }
    return 0;
}

int q_grow(query_t *q, void **p, uint32_t *cap, uint64_t need, size_t elem)
{
    uint32_t old = *cap;
    if (need <= old)
        return 0;
    int rc = wm__an_grow(p, cap, need, elem);
    if (!rc)
        rc = q_mem(q, (int64_t)(*cap - old) * (int64_t)elem);
    return rc;
}

int q_intern(qdict_t *d, const char *s, size_t len, uint32_t *id)
{
    pthread_mutex_lock(&d->mu);
    uint64_t v;
    int rc = 0;
    if (wm_strmap_get(&d->d.map, s, len, &v))
        *id = (uint32_t)v;
    else
        rc = wm__an_dict_add(&d->d, s, len, id);
    pthread_mutex_unlock(&d->mu);
    return rc;
}

const char *q_str(qdict_t *d, uint32_t id, uint32_t *len)
{
    pthread_mutex_lock(&d->mu);
    const char *s = id < d->d.n ? d->d.strs[id] : "";
    if (len)
        *len = id < d->d.n ? d->d.lens[id] : 0;
    pthread_mutex_unlock(&d->mu);
    return s;
}

/* group ids: 0 null, 1 $other, then the dictionary's codes + 2 */
const char *q_group_text(query_t *q, uint32_t g, uint32_t *len)
{
    if (g == Q_GROUP_NULL)
        return NULL;
    if (g == Q_GROUP_OTHER) {
        *len = 6;
        return "$other";
    }
    return q_str(&q->groups, g - 2, len);
}

void q_write_group(query_t *q, wm_buf_t *b, uint32_t g)
{
    uint32_t len = 0;
    const char *s = q_group_text(q, g, &len);
    if (!s)
        wm_buf_puts(b, "null");
    else
        wm_buf_json_str(b, s, len);
}

static int group_id(query_t *q, const char *s, size_t len, uint32_t *g)
{
    uint32_t id;
    int rc = q_intern(&q->groups, s, len, &id);
    if (!rc && id + 2 >= Q_GROUPS_MAX) {
        atomic_store(&q->stop, WM_ELIMIT);
        return WM_ELIMIT;
    }
    *g = id + 2;
    return rc;
}

void q_write_num(wm_buf_t *b, double v)
{
    if (!isfinite(v)) {
        wm_buf_puts(b, "null");
        return;
    }
    if (v == (double)(int64_t)v && fabs(v) < 9007199254740992.0)
        wm_buf_printf(b, "%" PRId64, (int64_t)v);
    else
        wm_buf_printf(b, "%.17g", v);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int q_sort_i64(int64_t *v, uint32_t n)
{
    qsort(v, n, sizeof *v, cmp_i64);
    return 0;
}

/* The k-th smallest of v (reordered): quickselect, median-of-three pivot. */
static int64_t select_k(int64_t *v, uint32_t n, uint32_t k)
{
    uint32_t lo = 0, hi = n - 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int64_t a = v[lo], b = v[mid], c = v[hi];
        int64_t piv = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        uint32_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] < piv)
                i++;
            while (v[j] > piv)
                j--;
            if (i <= j) {
                int64_t t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return v[k];
    }
    return v[k];
}

int64_t q_quantile(int64_t *v, uint32_t n, double qq, bool sorted)
{
    uint32_t k = (uint32_t)floor(qq * (double)(n - 1));
    return sorted ? v[k] : select_k(v, n, k);
}

int64_t q_day(const query_t *q, int64_t t)
{
    int64_t x = t + (int64_t)q->off_min * 60000;
    return x >= 0 ? x / DAY_MS : -((-x + DAY_MS - 1) / DAY_MS);
}

int64_t q_day_start(const query_t *q, int64_t day)
{
    return day * DAY_MS - (int64_t)q->off_min * 60000;
}

void q_day_text(int64_t day, char *out, size_t cap)
{
    time_t t = (time_t)(day * 86400);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, cap, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

static bool parse_date(const char *s, int64_t *day)
{
    int y, m, d;
    char tail;
    if (!s || strlen(s) != 10 || sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 || m < 1 || m > 12 || d < 1 ||
        d > 31 || y < 1970 || y > 9999)
        return false;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d};
    time_t t = timegm(&tm);
    struct tm back;
    gmtime_r(&t, &back);
    if (back.tm_mday != d || back.tm_mon != m - 1)
        return false;   /* 2026-02-30 */
    *day = (int64_t)t / 86400;
    return true;
}

int q_duration(query_t *q, const wm_json_t *req, const char *key, const char *dflt, int64_t *out,
               wm_query_error_t *err)
{
    const wm_json_t *v = wm_json_get(req, key);
    const char *s = dflt;
    if (v) {
        if (v->type == WM_JSON_NUMBER && v->is_int && v->i64 == 0) {
            *out = 0;
            return 0;
        }
        if (v->type != WM_JSON_STRING)
            return q_fail(err, key, "a duration such as \"30m\", \"7d\" or \"0\"");
        s = v->u.str;
    }
    if (!strcmp(s, "0")) {
        *out = 0;
        return 0;
    }
    if (wm_duration_parse(s, out) || *out < 0)
        return q_fail(err, key, "\"%s\" is not a duration such as \"30m\", \"7d\" or \"0\"", s);
    return 0;
}

int q_prop_index(query_t *q, const char *name, int32_t *idx)
{
    for (uint32_t i = 0; i < q->nprops; i++)
        if (!strcmp(q->props[i], name)) {
            *idx = (int32_t)i;
            return 0;
        }
    if (wm__an_grow((void **)&q->props, &q->pcap, q->nprops + 1, sizeof *q->props))
        return WM_ENOMEM;
    if (!(q->props[q->nprops] = wm_strdup(name)))
        return WM_ENOMEM;
    *idx = (int32_t)q->nprops++;
    return 0;
}

/* ---------------------------------------------------------- conditions */

static int add_name(char ***v, uint32_t *n, const char *s)
{
    for (uint32_t i = 0; i < *n; i++)
        if (!strcmp((*v)[i], s))
            return 0;
    char **nv = wm_realloc(*v, (*n + 1) * sizeof **v);
    if (!nv)
        return WM_ENOMEM;
    *v = nv;
    if (!(nv[*n] = wm_strdup(s)))
        return WM_ENOMEM;
    (*n)++;
    return 0;
}

/* Walks a condition's AST: the properties and profile fields it reads, and
 * the clauses a query cannot answer. */
static int walk_cond(query_t *q, qcond_t *c, const wm_json_t *n, char *path, size_t plen, wm_query_error_t *err)
{
    if (!n || n->type != WM_JSON_OBJECT)
        return 0;   /* compile names the fault */
    for (const wm_json_t *m = n->u.child; m; m = m->next) {
        const char *k = m->key;
        size_t at = strlen(path);
        snprintf(path + at, plen - at, ".%s", k);
        int rc = 0;
        if (!strcmp(k, "did") || !strcmp(k, "sequence") || !strcmp(k, "item") || !strcmp(k, "trigger"))
            rc = q_fail(err, path, "\"%s\" clauses are not available in queries (only prop, profile, tag, "
                                   "in_segment, all, any, not)", k);
        else if (!strcmp(k, "all") || !strcmp(k, "any")) {
            uint32_t i = 0;
            for (const wm_json_t *e = m->type == WM_JSON_ARRAY ? m->u.child : NULL; e && !rc; e = e->next, i++) {
                size_t at2 = strlen(path);
                snprintf(path + at2, plen - at2, "[%u]", i);
                rc = walk_cond(q, c, e, path, plen, err);
                path[at2] = 0;
            }
        } else if (!strcmp(k, "not"))
            rc = walk_cond(q, c, m, path, plen, err);
        else if (!strcmp(k, "prop") && m->type == WM_JSON_STRING) {
            int32_t idx;
            c->reads_event = true;
            if (!(rc = q_prop_index(q, m->u.str, &idx))) {
                bool have = false;
                for (uint32_t i = 0; i < c->nprops; i++)
                    have |= c->props[i] == (uint32_t)idx;
                if (!have) {
                    uint32_t *np = wm_realloc(c->props, (c->nprops + 1) * sizeof *np);
                    if (!np)
                        rc = WM_ENOMEM;
                    else {
                        c->props = np;
                        np[c->nprops++] = (uint32_t)idx;
                    }
                }
            }
        } else if (!strcmp(k, "profile") && m->type == WM_JSON_STRING) {
            c->reads_customer = true;
            rc = add_name(&c->profile, &c->nprofile, m->u.str);
        } else if (!strcmp(k, "tag") || !strcmp(k, "in_segment"))
            c->reads_customer = true;
        else if (!strcmp(k, "value") && m->type == WM_JSON_OBJECT)
            rc = walk_cond(q, c, m, path, plen, err);
        path[at] = 0;
        if (rc)
            return rc;
    }
    return 0;
}

static int compile_cond(query_t *q, qcond_t *c, const wm_json_t *ast, const char *path, wm_query_error_t *err)
{
    memset(c, 0, sizeof *c);
    if (!ast || ast->type == WM_JSON_NULL)
        return 0;
    char p[96];
    snprintf(p, sizeof p, "%s", path);
    int rc = walk_cond(q, c, ast, p, sizeof p, err);
    if (rc)
        return rc;
    wm_cond_error_t ce;
    if ((rc = wm_cond_compile(ast, &c->c, &ce))) {
        if (rc == WM_EINVAL) {
            /* "$.all[1].op" -> "where.all[1].op" */
            const char *sub = ce.path[0] == '$' ? ce.path + 1 : ce.path;
            char full[400];
            snprintf(full, sizeof full, "%s%s", path, sub);
            return q_fail(err, full, "%s", ce.msg);
        }
        return rc;
    }
    return 0;
}

static void cond_free(qcond_t *c)
{
    wm_cond_free(c->c);
    wm_free(c->props);
    for (uint32_t i = 0; i < c->nprofile; i++)
        wm_free(c->profile[i]);
    wm_free(c->profile);
    memset(c, 0, sizeof *c);
}

int q_spec(query_t *q, const wm_json_t *spec, const char *path, uint32_t *idx, wm_query_error_t *err)
{
    if (!spec || spec->type != WM_JSON_OBJECT)
        return q_fail(err, path, "an event spec {\"event\": name} or {\"events\": [names]}");
    if (q->nspecs == Q_SPECS_MAX)
        return q_fail(err, path, "more than %u event specs", Q_SPECS_MAX);
    qspec_t *s = &q->specs[q->nspecs];
    memset(s, 0, sizeof *s);
    s->label_prop = -1;
    wm_strmap_init(&s->names);
    q->nspecs++;
    const wm_json_t *ev = wm_json_get(spec, "event"), *evs = wm_json_get(spec, "events");
    const wm_json_t *nm = wm_json_get(spec, "name");
    char p[96];
    wm_buf_t title;
    wm_buf_init(&title, 0);
    if (ev) {
        if (ev->type != WM_JSON_STRING || !ev->len)
            return wm_buf_release(&title), snprintf(p, sizeof p, "%s.event", path), q_fail(err, p, "an event name");
        wm_strmap_put(&s->names, ev->u.str, ev->len, 1);
        wm_buf_append(&title, ev->u.str, ev->len);
    } else if (evs) {
        snprintf(p, sizeof p, "%s.events", path);
        if (evs->type != WM_JSON_ARRAY || !evs->len)
            return wm_buf_release(&title), q_fail(err, p, "a non-empty list of event names");
        uint32_t i = 0;
        for (const wm_json_t *e = evs->u.child; e; e = e->next, i++) {
            if (e->type != WM_JSON_STRING || !e->len) {
                snprintf(p, sizeof p, "%s.events[%u]", path, i);
                return wm_buf_release(&title), q_fail(err, p, "an event name");
            }
            wm_strmap_put(&s->names, e->u.str, e->len, 1);
            if (i)
                wm_buf_putc(&title, '|');
            wm_buf_append(&title, e->u.str, e->len);
        }
    } else
        return wm_buf_release(&title), q_fail(err, path, "needs \"event\" or \"events\"");
    if (nm && nm->type == WM_JSON_STRING) {
        wm_buf_reset(&title);
        wm_buf_append(&title, nm->u.str, nm->len);
    }
    wm_buf_putc(&title, 0);
    s->title = wm_buf_steal(&title, NULL);
    wm_buf_release(&title);
    const wm_json_t *lp = wm_json_get(spec, "label_prop");
    if (lp) {
        snprintf(p, sizeof p, "%s.label_prop", path);
        if (lp->type != WM_JSON_STRING || !lp->len)
            return q_fail(err, p, "a property name");
        int rc = q_prop_index(q, lp->u.str, &s->label_prop);
        if (rc)
            return rc;
    }
    for (const wm_json_t *m = spec->u.child; m; m = m->next)
        if (strcmp(m->key, "event") && strcmp(m->key, "events") && strcmp(m->key, "where") &&
            strcmp(m->key, "name") && strcmp(m->key, "label_prop")) {
            snprintf(p, sizeof p, "%s.%s", path, m->key);
            return q_fail(err, p, "unknown member of an event spec");
        }
    snprintf(p, sizeof p, "%s.where", path);
    *idx = q->nspecs - 1;
    return compile_cond(q, &s->where, wm_json_get(spec, "where"), p, err);
}

/* ------------------------------------------------------------- sources */

/* A part being read: its current block and decoded columns. */
typedef struct qsrc {
    wm_part_t *part;
    wm_part_reader_t *rd;
    uint32_t partition;
    uint32_t nblocks, block, row;
    bool loaded, done;
    wm_ablock_t blk;
    uint32_t nev;
    uint32_t *evmask;       /* per event code: specs matching by name */
    uint32_t *evname;       /* per event code: query name id */
    int32_t (*pcol)[7];     /* per query prop, per type: part column or -1 */
    wm_acolumn_t (*col)[7]; /* decoded for the current block */
    uint32_t ncols;         /* export: every column */
    wm_acolumn_t *all;      /* export: every column decoded */
    uint32_t *grp_cache;    /* breakdown prop, text columns: (code -> group + 1), per type slot */
    uint32_t grp_cache_n[7];
    uint32_t *grp_cache_t[7];
    uint8_t **ccache;       /* per spec + where: per text-column code, 0 unknown, 1 false, 2 true */
} qsrc_t;

/* The merge map: every user involved in an identity merge -> survivor. */
typedef struct qmerge {
    uint64_t *keys;     /* open addressing, 0 = empty (user ids are never 0) */
    uint64_t *vals;
    uint32_t *parts;    /* survivor's partition (where the merge was logged) */
    uint32_t cap, n;
    uint64_t *sorted;   /* the keys ascending, walked by each scan beside its users */
} qmerge_t;

/* One partition's scan. */
typedef struct qscan {
    query_t *q;
    uint32_t partition;
    qsrc_t *srcs;
    uint32_t nsrcs;
    void *acc;
    qrow_t *rows;
    uint32_t nrows, rcap;
    /* held back (merged customers): rows with their surviving user */
    struct qheld {
        uint64_t user;
        qrow_t r;
    } * held;
    uint32_t nheld, hcap;
    wm_arena_t a;           /* per row (conditions) */
    wm_arena_t ua;          /* per user (profile) */
    wm_arena_t text;        /* export texts */
    wm_buf_t tb;
    int rc;
    /* the customer being scanned, for the condition callbacks */
    uint64_t user;
    uint32_t upart;
    wm_json_t *profile;
    bool profile_built;
    int8_t where_user;      /* where reads only the customer: -1 unknown, 0, 1 */
    const qmerge_t *mg;
    uint32_t mcur;          /* next of mg->sorted not below the scan's users */
    uint64_t customers;     /* handed to the kernel */
} qscan_t;

static uint32_t mslot(const qmerge_t *m, uint64_t k)
{
    uint32_t i = (uint32_t)(wm_hash64(&k, 8, 7) & (m->cap - 1));
    while (m->keys[i] && m->keys[i] != k)
        i = (i + 1) & (m->cap - 1);
    return i;
}

static int mput(qmerge_t *m, uint64_t k, uint64_t v, uint32_t part, bool keep)
{
    if ((m->n + 1) * 2 > m->cap) {
        qmerge_t nm = {.cap = m->cap ? m->cap * 2 : 1024};
        nm.keys = wm_calloc(nm.cap, 8);
        nm.vals = wm_calloc(nm.cap, 8);
        nm.parts = wm_calloc(nm.cap, 4);
        if (!nm.keys || !nm.vals || !nm.parts) {
            wm_free(nm.keys), wm_free(nm.vals), wm_free(nm.parts);
            return WM_ENOMEM;
        }
        for (uint32_t i = 0; i < m->cap; i++)
            if (m->keys[i]) {
                uint32_t j = mslot(&nm, m->keys[i]);
                nm.keys[j] = m->keys[i], nm.vals[j] = m->vals[i], nm.parts[j] = m->parts[i];
                nm.n++;
            }
        wm_free(m->keys), wm_free(m->vals), wm_free(m->parts);
        *m = nm;
    }
    uint32_t i = mslot(m, k);
    if (m->keys[i] && keep)
        return 0;
    if (!m->keys[i])
        m->n++;
    m->keys[i] = k, m->vals[i] = v, m->parts[i] = part;
    return 0;
}

static bool mget(const qmerge_t *m, uint64_t k, uint64_t *v, uint32_t *part)
{
    if (!m->cap)
        return false;
    uint32_t i = mslot(m, k);
    if (!m->keys[i])
        return false;
    *v = m->vals[i];
    if (part)
        *part = m->parts[i];
    return true;
}

/* The survivor of user u (u itself when never merged away). */
static uint64_t mroot(const qmerge_t *m, uint64_t u, uint32_t *part)
{
    uint64_t v;
    for (int hops = 0; hops < 64 && mget(m, u, &v, part) && v != u; hops++)
        u = v;
    return u;
}

typedef struct qrun {
    query_t *q;
    wm_aversion_t **versions;   /* per partition */
    wm_apart_ref_t **tails;     /* scratch parts of the log tails (references) */
    uint32_t ntails, tcap;
    uint32_t *tail_part;
    qmerge_t merges;
    qscan_t *scans;
    uint32_t nscans;
} qrun_t;

static int src_init(query_t *q, qsrc_t *s, wm_part_t *p, uint32_t partition)
{
    memset(s, 0, sizeof *s);
    s->part = p;
    s->partition = partition;
    wm_part_info_t in;
    wm_part_get_info(p, &in);
    s->nblocks = in.blocks;
    s->nev = in.events;
    int rc = wm_part_reader_new(p, &s->rd);
    if (rc)
        return rc;
    s->evmask = wm_calloc(in.events + 1, sizeof *s->evmask);
    s->evname = wm_calloc(in.events + 1, sizeof *s->evname);
    s->pcol = wm_malloc((q->nprops + 1) * sizeof *s->pcol);
    s->col = wm_calloc(q->nprops + 1, sizeof *s->col);
    s->ccache = wm_calloc(Q_SPECS_MAX + 1, sizeof *s->ccache);
    if (!s->evmask || !s->evname || !s->pcol || !s->col || !s->ccache)
        return WM_ENOMEM;
    for (uint32_t c = 0; c < in.events; c++) {
        const char *nm = wm_part_event_name(p, c);
        uint32_t len = wm__part_event_len(p, c);
        for (uint32_t k = 0; k < q->nspecs; k++)
            if (wm_strmap_get(&q->specs[k].names, nm, len, NULL))
                s->evmask[c] |= 1u << k;
        if ((rc = q_intern(&q->names, nm, len, &s->evname[c])))
            return rc;
    }
    for (uint32_t j = 0; j < q->nprops; j++)
        for (int t = 0; t < 7; t++)
            s->pcol[j][t] = t >= WM_ACOL_NUMBER && t <= WM_ACOL_JSON ? wm_part_find_col(p, q->props[j], t) : -1;
    if (q->export_text) {
        s->ncols = in.cols;
        if (!(s->all = wm_calloc(in.cols + 1, sizeof *s->all)))
            return WM_ENOMEM;
    }
    return 0;
}

static void src_release(qsrc_t *s)
{
    wm_part_reader_free(s->rd);
    wm_free(s->evmask);
    wm_free(s->evname);
    wm_free(s->pcol);
    wm_free(s->col);
    wm_free(s->all);
    for (int t = 0; t < 7; t++)
        wm_free(s->grp_cache_t[t]);
    if (s->ccache)
        for (uint32_t k = 0; k <= Q_SPECS_MAX; k++)
            wm_free(s->ccache[k]);
    wm_free(s->ccache);
}

static void warn(query_t *q, const char *msg)
{
    pthread_mutex_lock(&q->warn_mu);
    if (q->warnings.len < 16384) {
        if (q->warnings.len)
            wm_buf_putc(&q->warnings, ',');
        wm_buf_json_str(&q->warnings, msg, strlen(msg));
    }
    q->corrupt++;
    pthread_mutex_unlock(&q->warn_mu);
}

/* Loads the source's next readable block that may hold rows of the needed
 * time; false when none is left. A corrupt block is reported and skipped. */
static bool src_load(query_t *q, qsrc_t *s)
{
    while (s->block < s->nblocks) {
        uint32_t b = s->block;
        uint64_t umin, umax;
        int64_t tmin, tmax;
        wm__part_block_range(s->part, b, &umin, &umax, &tmin, &tmax);
        char err[512];
        if (tmax < q->need_lo || tmin >= q->need_hi) {
            s->block++;
            continue;
        }
        int rc = wm_part_read_block(s->rd, b, &s->blk, err, sizeof err);
        for (uint32_t j = 0; !rc && j < q->nprops; j++)
            for (int t = WM_ACOL_NUMBER; !rc && t <= WM_ACOL_JSON; t++)
                if (s->pcol[j][t] >= 0)
                    rc = wm_part_read_col(s->rd, (uint32_t)s->pcol[j][t], &s->col[j][t], err, sizeof err);
                else
                    s->col[j][t].present = NULL;
        for (uint32_t c = 0; !rc && c < s->ncols; c++)
            rc = wm_part_read_col(s->rd, c, &s->all[c], err, sizeof err);
        if (rc == WM_ECORRUPT) {
            warn(q, err);
            s->block++;
            continue;
        }
        if (rc) {
            atomic_store(&q->stop, rc);
            s->done = true;
            return false;
        }
        s->loaded = true;
        s->row = 0;
        atomic_fetch_add_explicit(&q->rows_read, s->blk.rows, memory_order_relaxed);
        return true;
    }
    s->done = true;
    return false;
}

/* ------------------------------------------------------- row values */

typedef struct qval {
    wm_acol_type_t type;
    const wm_acolumn_t *c;
    int32_t col;
    uint32_t row;
} qval_t;

static bool src_val(qsrc_t *s, uint32_t j, uint32_t row, qval_t *v)
{
    for (int t = WM_ACOL_NUMBER; t <= WM_ACOL_JSON; t++) {
        const wm_acolumn_t *c = &s->col[j][t];
        if (s->pcol[j][t] >= 0 && wm_acol_has(c, row)) {
            v->type = (wm_acol_type_t)t;
            v->c = c;
            v->col = s->pcol[j][t];
            v->row = row;
            return true;
        }
    }
    return false;
}

/* The value's text (docs: "Group value"): strings as they are, numbers
 * %.17g, true/false, datetimes as written, lists and objects as JSON. */
static void val_text(qsrc_t *s, const qval_t *v, wm_buf_t *b)
{
    uint32_t len;
    const char *str;
    switch (v->type) {
    case WM_ACOL_NUMBER:
        wm_buf_printf(b, "%.17g", v->c->num[v->row]);
        break;
    case WM_ACOL_STRING:
    case WM_ACOL_JSON:
        str = wm_part_col_str(s->part, (uint32_t)v->col, v->c->code[v->row], &len);
        wm_buf_append(b, str, len);
        break;
    case WM_ACOL_BOOL:
        wm_buf_puts(b, v->c->boolean[v->row] ? "true" : "false");
        break;
    case WM_ACOL_DATETIME: {
        char t[40];
        size_t n = wm_acol_datetime_text(v->c->num[v->row], v->c->code[v->row], t, sizeof t);
        wm_buf_append(b, t, n);
        break;
    }
    case WM_ACOL_LIST: {
        wm_buf_putc(b, '[');
        const uint32_t *codes = v->c->list_codes + v->c->code[v->row];
        for (uint32_t i = 0; i < v->c->list_len[v->row]; i++) {
            if (i)
                wm_buf_putc(b, ',');
            str = wm_part_col_str(s->part, (uint32_t)v->col, codes[i], &len);
            wm_buf_json_str(b, str, len);
        }
        wm_buf_putc(b, ']');
        break;
    }
    }
}

/* The numeric reading: a number, or a string that is a whole JSON number. */
static double val_num(qsrc_t *s, const qval_t *v)
{
    if (v->type == WM_ACOL_NUMBER)
        return v->c->num[v->row];
    if (v->type == WM_ACOL_STRING) {
        uint32_t len;
        const char *str = wm_part_col_str(s->part, (uint32_t)v->col, v->c->code[v->row], &len);
        if (wm_json_number_text(str, len)) {
            char tmp[128];
            if (len < sizeof tmp) {
                memcpy(tmp, str, len);
                tmp[len] = 0;
                return strtod(tmp, NULL);
            }
        }
    }
    return NAN;
}

static wm_json_t *val_json(qsrc_t *s, const qval_t *v, wm_arena_t *a)
{
    uint32_t len;
    const char *str;
    switch (v->type) {
    case WM_ACOL_NUMBER: {
        double d = v->c->num[v->row];
        if (d == (double)(int64_t)d && fabs(d) < 9007199254740992.0)
            return wm_json_new_int(a, (int64_t)d);
        return wm_json_new_num(a, d);
    }
    case WM_ACOL_STRING:
        str = wm_part_col_str(s->part, (uint32_t)v->col, v->c->code[v->row], &len);
        return wm_json_new_str(a, str, len);
    case WM_ACOL_BOOL:
        return wm_json_new(a, v->c->boolean[v->row] ? WM_JSON_TRUE : WM_JSON_FALSE);
    case WM_ACOL_DATETIME: {
        char t[40];
        size_t n = wm_acol_datetime_text(v->c->num[v->row], v->c->code[v->row], t, sizeof t);
        return wm_json_new_str(a, t, n);
    }
    case WM_ACOL_LIST: {
        wm_json_t *arr = wm_json_new(a, WM_JSON_ARRAY);
        const uint32_t *codes = v->c->list_codes + v->c->code[v->row];
        for (uint32_t i = 0; arr && i < v->c->list_len[v->row]; i++) {
            str = wm_part_col_str(s->part, (uint32_t)v->col, codes[i], &len);
            wm_json_t *e = wm_json_new_str(a, str, len);
            if (!e || wm_json_append(a, arr, NULL, e))
                return NULL;
        }
        return arr;
    }
    case WM_ACOL_JSON: {
        str = wm_part_col_str(s->part, (uint32_t)v->col, v->c->code[v->row], &len);
        wm_json_t *out;
        wm_json_error_t je;
        return wm_json_parse(a, str, len, &out, &je) ? NULL : out;
    }
    }
    return NULL;
}

/* ---------------------------------------------------- condition callbacks */

static const wm_json_t *cb_tag(void *ctx, const char *tag)
{
    qscan_t *sc = ctx;
    const wm_query_host_t *h = sc->q->src->host;
    return h && h->tag ? h->tag(h->ctx, sc->upart, sc->user, tag, &sc->ua) : NULL;
}

static bool cb_segment(void *ctx, const char *seg)
{
    qscan_t *sc = ctx;
    const wm_query_host_t *h = sc->q->src->host;
    return h && h->in_segment ? h->in_segment(h->ctx, sc->upart, sc->user, seg) : false;
}

/* The customer's profile fields the query's conditions read. */
static const wm_json_t *user_profile(qscan_t *sc)
{
    if (sc->profile_built)
        return sc->profile;
    sc->profile_built = true;
    query_t *q = sc->q;
    const wm_query_host_t *h = q->src->host;
    wm_json_t *o = wm_json_new(&sc->ua, WM_JSON_OBJECT);
    const qcond_t *cs[Q_SPECS_MAX + 1];
    uint32_t n = 0;
    cs[n++] = &q->where;
    for (uint32_t k = 0; k < q->nspecs; k++)
        cs[n++] = &q->specs[k].where;
    for (uint32_t i = 0; o && i < n; i++)
        for (uint32_t j = 0; j < cs[i]->nprofile; j++) {
            const char *nm = cs[i]->profile[j];
            if (wm_json_get(o, nm))
                continue;
            const wm_json_t *v = h && h->profile ? h->profile(h->ctx, sc->upart, sc->user, nm, &sc->ua) : NULL;
            if (v) {
                wm_json_t *cp = wm_arena_alloc(&sc->ua, sizeof *cp);
                if (cp) {
                    *cp = *v;
                    cp->next = NULL;
                    wm_json_append(&sc->ua, o, nm, cp);
                }
            }
        }
    sc->profile = o;
    return o;
}

static void user_begin(qscan_t *sc, uint64_t user, uint32_t part)
{
    sc->user = user;
    sc->upart = part;
    sc->profile = NULL;
    sc->profile_built = false;
    sc->where_user = -1;
    wm_arena_reset(&sc->ua);
}

/* Evaluates condition c on the row (the event's properties the condition
 * reads, and the customer). */
static bool eval_cond(qscan_t *sc, qsrc_t *s, const qcond_t *c, uint32_t row, const char *evname)
{
    query_t *q = sc->q;
    wm_cond_env_t env = {.tz_offset_min = q->off_min, .ctx = sc, .tag = cb_tag, .in_segment = cb_segment};
    if (c->reads_customer)
        env.profile = user_profile(sc);
    wm_arena_reset(&sc->a);
    if (c->reads_event) {
        wm_json_t *ev = wm_json_new(&sc->a, WM_JSON_OBJECT);
        wm_json_t *props = wm_json_new(&sc->a, WM_JSON_OBJECT);
        if (!ev || !props)
            return false;
        wm_json_append(&sc->a, ev, "event", wm_json_new_str(&sc->a, evname, strlen(evname)));
        for (uint32_t i = 0; i < c->nprops; i++) {
            qval_t v;
            if (!src_val(s, c->props[i], row, &v))
                continue;
            wm_json_t *j = val_json(s, &v, &sc->a);
            if (j)
                wm_json_append(&sc->a, props, q->props[c->props[i]], j);
        }
        wm_json_append(&sc->a, ev, "properties", props);
        env.event = ev;
    }
    bool r = false;
    if (wm_cond_eval(c->c, &env, &r))
        return false;
    return r;
}

/* Condition on a row, cached per text-column code when it reads one
 * property of the event and nothing of the customer. */
static bool cond_row(qscan_t *sc, qsrc_t *s, const qcond_t *c, uint32_t slot, uint32_t row, uint32_t ev)
{
    const char *evname = wm_part_event_name(s->part, ev);
    if (c->nprops == 1 && !c->reads_customer) {
        qval_t v;
        uint32_t j = c->props[0];
        if (src_val(s, j, row, &v) && (WM_ACOL_IS_TEXT(v.type) || v.type == WM_ACOL_BOOL)) {
            /* the result depends on the value only (the event name is not read by prop clauses) */
            uint32_t dict = v.type == WM_ACOL_BOOL ? 2 : wm_part_col_dict_size(s->part, (uint32_t)v.col);
            uint32_t code = v.type == WM_ACOL_BOOL ? v.c->boolean[row] : v.c->code[row];
            /* one cache per (slot, column): keyed by column through a small header */
            uint8_t **cc = &s->ccache[slot];
            if (!*cc) {
                size_t total = 0;
                wm_part_info_t in;
                wm_part_get_info(s->part, &in);
                /* offsets per column, then the bytes */
                total = (size_t)(in.cols + 1) * sizeof(uint64_t);
                *cc = wm_calloc(1, total);
                if (!*cc)
                    return eval_cond(sc, s, c, row, evname);
            }
            uint64_t *offs = (uint64_t *)*cc;
            uint8_t *cache = (uint8_t *)(uintptr_t)offs[v.col];
            if (!cache) {
                cache = wm_calloc(dict + 1, 1);
                if (!cache)
                    return eval_cond(sc, s, c, row, evname);
                offs[v.col] = (uint64_t)(uintptr_t)cache;
            }
            if (code < dict) {
                if (!cache[code])
                    cache[code] = eval_cond(sc, s, c, row, evname) ? 2 : 1;
                return cache[code] == 2;
            }
        }
    }
    return eval_cond(sc, s, c, row, evname);
}

/* ---------------------------------------------------------------- scan */

static int hold(qscan_t *sc, uint64_t user, const qrow_t *r)
{
    int rc = q_grow(sc->q, (void **)&sc->held, &sc->hcap, (uint64_t)sc->nheld + 1, sizeof *sc->held);
    if (rc)
        return rc;
    sc->held[sc->nheld].user = user;
    sc->held[sc->nheld].r = *r;
    sc->nheld++;
    return 0;
}

static int cmp_row(const void *a, const void *b)
{
    const qrow_t *x = a, *y = b;
    if (x->time != y->time)
        return x->time < y->time ? -1 : 1;
    return (x->ord > y->ord) - (x->ord < y->ord);
}

static int cmp_held(const void *a, const void *b)
{
    const struct qheld *x = a, *y = b;
    if (x->user != y->user)
        return x->user < y->user ? -1 : 1;
    return cmp_row(&x->r, &y->r);
}

/* The breakdown group of a row (prop breakdown). */
static int row_group(qscan_t *sc, qsrc_t *s, uint32_t row, uint32_t *g)
{
    query_t *q = sc->q;
    qval_t v;
    if (!src_val(s, (uint32_t)q->bd_prop, row, &v)) {
        *g = Q_GROUP_NULL;
        return 0;
    }
    uint32_t **cache = NULL;
    uint32_t code = 0;
    if (WM_ACOL_IS_TEXT(v.type)) {
        cache = &s->grp_cache_t[v.type];
        code = v.c->code[row];
        if (!*cache) {
            s->grp_cache_n[v.type] = wm_part_col_dict_size(s->part, (uint32_t)v.col);
            if (!(*cache = wm_calloc(s->grp_cache_n[v.type] + 1, sizeof **cache)))
                return WM_ENOMEM;
        }
        if (code < s->grp_cache_n[v.type] && (*cache)[code]) {
            *g = (*cache)[code] - 1;
            return 0;
        }
    }
    wm_buf_reset(&sc->tb);
    val_text(s, &v, &sc->tb);
    int rc = group_id(q, sc->tb.data ? sc->tb.data : "", sc->tb.len, g);
    if (!rc && cache && code < s->grp_cache_n[v.type])
        (*cache)[code] = *g + 1;
    return rc;
}

/* Every property of the row as a JSON object's text, in the scan arena. */
static int row_text(qscan_t *sc, qsrc_t *s, uint32_t row, qrow_t *r)
{
    wm_buf_reset(&sc->tb);
    wm_buf_putc(&sc->tb, '{');
    bool first = true;
    for (uint32_t c = 0; c < s->ncols; c++) {
        const wm_acolumn_t *col = &s->all[c];
        if (!wm_acol_has(col, row))
            continue;
        wm_acol_type_t t;
        const char *nm = wm_part_col_name(s->part, c, &t);
        if (!strcmp(nm, "$rest"))
            continue;
        if (!first)
            wm_buf_putc(&sc->tb, ',');
        first = false;
        wm_buf_json_str(&sc->tb, nm, strlen(nm));
        wm_buf_putc(&sc->tb, ':');
        qval_t v = {.type = t, .c = col, .col = (int32_t)c, .row = row};
        if (t == WM_ACOL_STRING || t == WM_ACOL_DATETIME) {
            size_t at = sc->tb.len;
            val_text(s, &v, &sc->tb);
            /* re-emit the text as a JSON string */
            size_t n = sc->tb.len - at;
            char *tmp = wm_arena_alloc(&sc->a, n + 1);
            if (!tmp)
                return WM_ENOMEM;
            memcpy(tmp, sc->tb.data + at, n);
            sc->tb.len = at;
            wm_buf_json_str(&sc->tb, tmp, n);
        } else if (t == WM_ACOL_NUMBER)
            q_write_num(&sc->tb, col->num[row]);
        else
            val_text(s, &v, &sc->tb);
    }
    wm_buf_putc(&sc->tb, '}');
    if (sc->tb.err)
        return sc->tb.err;
    char *p = wm_arena_alloc(&sc->text, sc->tb.len);
    if (!p)
        return WM_ENOMEM;
    memcpy(p, sc->tb.data, sc->tb.len);
    r->text = p;
    r->aux = (uint32_t)sc->tb.len;
    return q_mem(sc->q, (int64_t)sc->tb.len);
}

static int check_limits(query_t *q);

/* Makes the query row of row i of the source's current block: 0 with *r
 * filled, 1 when the row is not part of the query, or an error. */
static int make_row(qscan_t *sc, qsrc_t *s, uint32_t i, qrow_t *r)
{
    query_t *q = sc->q;
    const wm_ablock_t *b = &s->blk;
    int64_t t = b->time[i];
    if (t < q->need_lo || t >= q->need_hi)
        return 1;
    uint32_t ev = b->event[i];
    uint32_t mask = ev < s->nev ? s->evmask[ev] : 0;
    if (!mask && !q->all_rows)
        return 1;
    if (q->where.c) {
        bool ok;
        if (!q->where.reads_event) {
            if (sc->where_user < 0)
                sc->where_user = eval_cond(sc, s, &q->where, i, "");
            ok = sc->where_user;
        } else
            ok = cond_row(sc, s, &q->where, Q_SPECS_MAX, i, ev);
        if (!ok)
            return 1;
    }
    for (uint32_t m = mask; m; m &= m - 1) {
        uint32_t k = (uint32_t)__builtin_ctz(m);
        if (q->specs[k].where.c && !cond_row(sc, s, &q->specs[k].where, k, i, ev))
            mask &= ~(1u << k);
    }
    if (!mask && !q->all_rows)
        return 1;
    /* stream order among equal times: the log sequence, or with one source
     * per partition the row's place in the part (sorted by user, time, seq) */
    uint64_t seq = b->seq ? b->seq[i] : (uint64_t)s->block * WM_PART_BLOCK_ROWS + i;
    *r = (qrow_t){.time = t, .ord = (uint64_t)s->partition << 44 | seq, .mask = mask,
                  .name = ev < s->nev ? s->evname[ev] : 0, .val = NAN};
    int rc;
    if (q->bd == QBD_PROP && (rc = row_group(sc, s, i, &r->grp)))
        return rc;
    if (q->val_prop >= 0 && (!q->val_mask || (mask & q->val_mask))) {
        qval_t v;
        if (src_val(s, (uint32_t)q->val_prop, i, &v))
            r->val = val_num(s, &v);
    }
    if (q->dval_prop >= 0) {
        qval_t v;
        r->aux = UINT32_MAX;
        if (src_val(s, (uint32_t)q->dval_prop, i, &v)) {
            wm_buf_reset(&sc->tb);
            val_text(s, &v, &sc->tb);
            if ((rc = q_intern(&q->labels, sc->tb.data ? sc->tb.data : "", sc->tb.len, &r->aux)))
                return rc;
        }
    }
    if (q->label_from < q->nspecs) {
        /* attribution: the label of the first touch spec the event matches */
        for (uint32_t m = mask >> q->label_from; m; m &= m - 1) {
            uint32_t k = q->label_from + (uint32_t)__builtin_ctz(m);
            r->aux = UINT32_MAX;
            qval_t v;
            if (q->specs[k].label_prop >= 0 && src_val(s, (uint32_t)q->specs[k].label_prop, i, &v)) {
                wm_buf_reset(&sc->tb);
                val_text(s, &v, &sc->tb);
                if ((rc = q_intern(&q->labels, sc->tb.data ? sc->tb.data : "", sc->tb.len, &r->aux)))
                    return rc;
            }
            break;
        }
    }
    if (q->export_text && (rc = row_text(sc, s, i, r)))
        return rc;
    return 0;
}

/* Reads the rows of user u from source s (its cursor is on u). */
static int src_user_rows(qscan_t *sc, qsrc_t *s, uint64_t u, bool held, uint64_t root)
{
    query_t *q = sc->q;
    int rc = 0;
    while (!rc) {
        if (!s->loaded && !src_load(q, s))
            return 0;
        const wm_ablock_t *b = &s->blk;
        /* the customer's run in this block, then its rows */
        uint32_t end = s->row;
        while (end < b->rows && b->user[end] == u)
            end++;
        bool more = end == b->rows;   /* the run may go on in the next block */
        const int64_t lo = q->need_lo, hi = q->need_hi;
        const bool all = q->all_rows;
        if (q->plain_rows && !held) {
            /* nothing but the event and its time: the row is built here */
            if ((rc = q_grow(q, (void **)&sc->rows, &sc->rcap, (uint64_t)sc->nrows + (end - s->row),
                             sizeof *sc->rows)))
                return rc;
            const uint32_t *evm = s->evmask, *evn = s->evname, *code = b->event;
            const int64_t *time = b->time;
            const uint32_t nev = s->nev;
            const uint64_t base = (uint64_t)s->partition << 44, bseq = (uint64_t)s->block * WM_PART_BLOCK_ROWS;
            qrow_t *out = sc->rows + sc->nrows;
            const uint64_t *seq = b->seq;
            /* every row is written and kept or not without a branch (the
             * match is data-dependent, about every other row); the buffer
             * has room for the whole run */
            for (uint32_t i = s->row; i < end; i++) {
                uint32_t ev = code[i];
                bool known = ev < nev;
                uint32_t mask = known ? evm[ev] : 0;
                int64_t t = time[i];
                *out = (qrow_t){.time = t, .ord = base | (seq ? seq[i] : bseq + i), .mask = mask,
                                .name = known ? evn[ev] : 0, .val = NAN};
                out += (mask || all) & (t >= lo) & (t < hi);
            }
            sc->nrows = (uint32_t)(out - sc->rows);
            s->row = end;
        }
        for (; s->row < end; s->row++) {
            uint32_t i = s->row;
            /* the cheap rejections before the call: most rows match no spec */
            uint32_t ev = b->event[i];
            if ((!all && (ev >= s->nev || !s->evmask[ev])) || b->time[i] < lo || b->time[i] >= hi)
                continue;
            qrow_t r;
            rc = make_row(sc, s, i, &r);
            if (rc == 1) {
                rc = 0;
                continue;
            }
            if (rc)
                return rc;
            if (held)
                rc = hold(sc, root, &r);
            else if (sc->nrows < sc->rcap ||
                     !(rc = q_grow(q, (void **)&sc->rows, &sc->rcap, (uint64_t)sc->nrows + 1, sizeof *sc->rows)))
                sc->rows[sc->nrows++] = r;
            if (rc)
                return rc;
        }
        if (!more)
            return 0;
        s->loaded = false;
        s->block++;
    }
    return rc;
}

/* Row mode: kinds whose figures do not depend on who did the event (events
 * counts, sums, distinct values) read every block once, without users. */
static int scan_rows(qscan_t *sc)
{
    query_t *q = sc->q;
    int rc = 0;
    for (uint32_t k = 0; k < sc->nsrcs && !rc; k++) {
        qsrc_t *s = &sc->srcs[k];
        wm__part_reader_skip(s->rd, true, true);
        bool whole = q->k->block_ok && q->k->block_ok(q);
        while (!rc && src_load(q, s)) {
            if ((rc = check_limits(q)))
                break;
            if (whole) {
                rc = q->k->block(q, sc->acc, s->blk.time, s->blk.event, s->evmask, s->nev, s->blk.rows);
                s->loaded = false;
                s->block++;
                continue;
            }
            for (uint32_t i = 0; i < s->blk.rows && !rc; i++) {
                qrow_t r;
                rc = make_row(sc, s, i, &r);
                if (rc == 1)
                    rc = 0;
                else if (!rc)
                    rc = q->k->row(q, sc->acc, &r);
            }
            s->loaded = false;
            s->block++;
        }
    }
    return rc;
}

/* Hands a customer's stream to the kernel, with the customer's group for a
 * profile or tag breakdown. */
static int deliver(qscan_t *sc, uint64_t user, qrow_t *rows, uint32_t n)
{
    query_t *q = sc->q;
    if (q->bd == QBD_PROFILE || q->bd == QBD_TAG) {
        const wm_query_host_t *h = q->src->host;
        const wm_json_t *v = NULL;
        if (h && q->bd == QBD_PROFILE && h->profile)
            v = h->profile(h->ctx, sc->upart, user, q->bd_name, &sc->ua);
        else if (h && q->bd == QBD_TAG && h->tag)
            v = h->tag(h->ctx, sc->upart, user, q->bd_name, &sc->ua);
        uint32_t g = Q_GROUP_NULL;
        if (v && v->type != WM_JSON_NULL) {
            wm_buf_reset(&sc->tb);
            if (v->type == WM_JSON_STRING)
                wm_buf_append(&sc->tb, v->u.str, v->len);
            else if (v->type == WM_JSON_NUMBER)
                wm_buf_printf(&sc->tb, "%.17g", v->is_int ? (double)v->i64 : v->u.num);
            else
                wm_json_write(&sc->tb, v);
            int rc = group_id(q, sc->tb.data ? sc->tb.data : "", sc->tb.len, &g);
            if (rc)
                return rc;
        }
        for (uint32_t i = 0; i < n; i++)
            rows[i].grp = g;
    }
    sc->customers++;
    return q->k->user(q, sc->acc, user, rows, n);
}

static bool src_peek(query_t *q, qsrc_t *s, uint64_t *u)
{
    if (s->done)
        return false;
    while (!s->loaded || s->row >= s->blk.rows) {
        if (s->loaded) {
            s->loaded = false;
            s->block++;
        }
        if (!src_load(q, s))
            return false;
    }
    *u = s->blk.user[s->row];
    return true;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int check_limits(query_t *q)
{
    int st = atomic_load(&q->stop);
    if (st)
        return st;
    if (q->src->cancel && *q->src->cancel) {
        atomic_store(&q->stop, WM_ECLOSED);
        return WM_ECLOSED;
    }
    if (q->deadline_ms && now_ms() > q->deadline_ms) {
        atomic_store(&q->stop, WM_EBUSY);
        return WM_EBUSY;
    }
    return 0;
}

/* Scans one partition: customer by customer over its sources. */
static void *scan_main(void *arg)
{
    qscan_t *sc = arg;
    query_t *q = sc->q;
    int rc = 0;
    uint64_t users = 0;
    const qmerge_t *m = sc->mg;
    if (q->k->row && q->k->row_mode(q)) {
        sc->rc = rc = scan_rows(sc);
        if (rc)
            atomic_store(&q->stop, rc);
        return NULL;
    }
    /* one source: rows are in stream order by their place in the part */
    for (uint32_t i = 0; i < sc->nsrcs; i++)
        wm__part_reader_skip(sc->srcs[i].rd, false, sc->nsrcs == 1);
    for (;;) {
        if ((users++ & 1023) == 0 && (rc = check_limits(q)))
            break;
        uint64_t u = UINT64_MAX, v;
        bool any = false;
        for (uint32_t i = 0; i < sc->nsrcs; i++)
            if (src_peek(q, &sc->srcs[i], &v)) {
                any = true;
                if (v < u)
                    u = v;
            }
        if (!any)
            break;
        /* is u part of an identity merge? */
        uint64_t root = u;
        uint32_t rpart = sc->partition;
        bool held = false;
        if (m->n) {
            /* users ascend, so the sorted keys are walked, not hashed */
            while (sc->mcur < m->n && m->sorted[sc->mcur] < u)
                sc->mcur++;
            if (sc->mcur < m->n && m->sorted[sc->mcur] == u) {
                held = true;
                root = mroot(m, u, &rpart);
            }
        }
        user_begin(sc, root, rpart);
        sc->nrows = 0;
        uint32_t contributed = 0;
        for (uint32_t i = 0; i < sc->nsrcs && !rc; i++)
            if (src_peek(q, &sc->srcs[i], &v) && v == u) {
                uint32_t before = held ? sc->nheld : sc->nrows;
                rc = src_user_rows(sc, &sc->srcs[i], u, held, root);
                if ((held ? sc->nheld : sc->nrows) > before)
                    contributed++;
            }
        if (rc)
            break;
        if (!held && sc->nrows) {
            if (contributed > 1)
                qsort(sc->rows, sc->nrows, sizeof *sc->rows, cmp_row);
            if ((rc = deliver(sc, u, sc->rows, sc->nrows)))
                break;
        }
        if (atomic_load(&q->stop))
            break;
    }
    if (rc)
        atomic_store(&q->stop, rc);
    sc->rc = rc;
    return NULL;
}

/* ------------------------------------------------------------ the run */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int add_part(qscan_t *sc, wm_part_t *p)
{
    qsrc_t *ns = wm_realloc(sc->srcs, (sc->nsrcs + 1) * sizeof *ns);
    if (!ns)
        return WM_ENOMEM;
    sc->srcs = ns;
    int rc = src_init(sc->q, &ns[sc->nsrcs], p, sc->partition);
    sc->nsrcs++;
    return rc;
}

static int add_merges(qrun_t *run, wm_part_t *p, uint32_t partition)
{
    const uint64_t *pairs;
    uint32_t n;
    wm_part_merges(p, &pairs, &n);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t from = pairs[2 * i], into = pairs[2 * i + 1];
        if (!from || !into || from == into)
            continue;
        int rc = mput(&run->merges, from, into, partition, false);
        if (!rc)
            rc = mput(&run->merges, into, into, partition, true);
        if (rc)
            return rc;
    }
    return 0;
}

/* Snapshots every partition (parts + tail) and collects the merges. */
static int open_sources(qrun_t *run)
{
    query_t *q = run->q;
    const wm_query_src_t *src = q->src;
    run->nscans = src->n_parts;
    run->scans = wm_calloc(src->n_parts + 1, sizeof *run->scans);
    run->versions = wm_calloc(src->n_parts + 1, sizeof *run->versions);
    if (!run->scans || !run->versions)
        return WM_ENOMEM;
    for (uint32_t p = 0; p < src->n_parts; p++) {
        qscan_t *sc = &run->scans[p];
        sc->q = q;
        sc->partition = p;
        sc->mg = &run->merges;
        wm_arena_init(&sc->a, 1 << 14);
        wm_arena_init(&sc->ua, 1 << 12);
        wm_arena_init(&sc->text, 1 << 20);
        wm_buf_init(&sc->tb, 0);
        if (!src->stores || !src->stores[p])
            continue;
        wm_aversion_t *v = run->versions[p] = wm__astore_snapshot(src->stores[p]);
        int rc = 0;
        for (uint32_t i = 0; v && i < v->n && !rc; i++)
            if (!(rc = add_part(sc, v->parts[i]->part)))
                rc = add_merges(run, v->parts[i]->part, p);
        if (rc)
            return rc;
        if (src->logs && src->logs[p]) {
            wm_apart_ref_t **tails;
            uint32_t nt;
            if ((rc = wm__astore_tail_parts(src->stores[p], src->logs[p], v ? v->compacted_seq : 0, &tails, &nt)))
                return rc;
            for (uint32_t i = 0; i < nt; i++) {
                if (!rc)
                    rc = wm__an_grow((void **)&run->tails, &run->tcap, run->ntails + 1, sizeof *run->tails);
                if (rc) {
                    wm__apart_release(tails[i]);
                    continue;
                }
                run->tails[run->ntails++] = tails[i];
                if (!(rc = add_part(sc, tails[i]->part)))
                    rc = add_merges(run, tails[i]->part, p);
            }
            wm_free(tails);
            if (rc)
                return rc;
        }
    }
    qmerge_t *m = &run->merges;
    if (m->n) {
        if (!(m->sorted = wm_malloc((size_t)m->n * sizeof *m->sorted)))
            return WM_ENOMEM;
        uint32_t k = 0;
        for (uint32_t i = 0; i < m->cap; i++)
            if (m->keys[i])
                m->sorted[k++] = m->keys[i];
        qsort(m->sorted, k, sizeof *m->sorted, cmp_u64);
    }
    return 0;
}

static void close_sources(qrun_t *run)
{
    for (uint32_t p = 0; p < run->nscans; p++) {
        qscan_t *sc = &run->scans[p];
        for (uint32_t i = 0; i < sc->nsrcs; i++)
            src_release(&sc->srcs[i]);
        wm_free(sc->srcs);
        wm_free(sc->rows);
        wm_free(sc->held);
        wm_arena_release(&sc->a);
        wm_arena_release(&sc->ua);
        wm_arena_release(&sc->text);
        wm_buf_release(&sc->tb);
        if (run->versions && run->versions[p])
            wm__aversion_release(run->versions[p]);
    }
    for (uint32_t i = 0; i < run->ntails; i++)
        wm__apart_release(run->tails[i]);
    wm_free(run->tails);
    wm_free(run->scans);
    wm_free(run->versions);
    wm_free(run->merges.keys);
    wm_free(run->merges.vals);
    wm_free(run->merges.parts);
    wm_free(run->merges.sorted);
}

typedef struct qpool {
    qrun_t *run;
    atomic_uint next;
} qpool_t;

static void *pool_main(void *arg)
{
    qpool_t *pl = arg;
    for (;;) {
        uint32_t p = atomic_fetch_add(&pl->next, 1);
        if (p >= pl->run->nscans || atomic_load(&pl->run->q->stop))
            break;
        scan_main(&pl->run->scans[p]);
    }
    return NULL;
}

/* One pass over every customer; *out is the merged accumulator. */
static int run_pass(qrun_t *run, void **out)
{
    query_t *q = run->q;
    *out = NULL;
    int rc = 0;
    for (uint32_t p = 0; p < run->nscans && !rc; p++) {
        qscan_t *sc = &run->scans[p];
        sc->nheld = 0;
        sc->rc = 0;
        sc->mcur = 0;
        sc->customers = 0;
        for (uint32_t i = 0; i < sc->nsrcs; i++) {
            qsrc_t *s = &sc->srcs[i];
            s->block = s->row = 0;
            s->loaded = s->done = false;
        }
        if (!(sc->acc = q->k->acc_new(q)))
            rc = WM_ENOMEM;
    }
    uint32_t threads = q->src->threads ? q->src->threads : 2;
    if (q->export_text)
        threads = 1;
    if (threads > run->nscans)
        threads = run->nscans;
    if (!rc) {
        qpool_t pl = {.run = run};
        pthread_t th[8];
        uint32_t started = 0;
        if (threads > 8)
            threads = 8;
        for (uint32_t t = 1; t < threads; t++)
            if (!pthread_create(&th[started], NULL, pool_main, &pl))
                started++;
        pool_main(&pl);
        for (uint32_t t = 0; t < started; t++)
            pthread_join(th[t], NULL);
        rc = atomic_load(&q->stop);
    }
    /* the merged customers, gathered from every partition */
    if (!rc) {
        uint64_t total = 0;
        for (uint32_t p = 0; p < run->nscans; p++)
            total += run->scans[p].nheld;
        if (total) {
            qscan_t *s0 = &run->scans[0];
            struct qheld *all = NULL;
            uint32_t cap = 0, n = 0;
            if ((rc = q_grow(q, (void **)&all, &cap, total, sizeof *all)) == 0) {
                for (uint32_t p = 0; p < run->nscans; p++) {
                    memcpy(all + n, run->scans[p].held, run->scans[p].nheld * sizeof *all);
                    n += run->scans[p].nheld;
                }
                qsort(all, n, sizeof *all, cmp_held);
                for (uint32_t i = 0; i < n && !rc;) {
                    uint32_t j = i;
                    s0->nrows = 0;
                    while (j < n && all[j].user == all[i].user) {
                        if ((rc = q_grow(q, (void **)&s0->rows, &s0->rcap, (uint64_t)s0->nrows + 1, sizeof *s0->rows)))
                            break;
                        s0->rows[s0->nrows++] = all[j++].r;
                    }
                    if (rc)
                        break;
                    uint32_t rpart = 0;
                    mroot(&run->merges, all[i].user, &rpart);
                    user_begin(s0, all[i].user, rpart);
                    rc = deliver(s0, all[i].user, s0->rows, s0->nrows);
                    i = j;
                }
                wm_free(all);
            }
        }
    }
    void *acc = NULL;
    for (uint32_t p = 0; p < run->nscans; p++)
        atomic_fetch_add_explicit(&q->customers, run->scans[p].customers, memory_order_relaxed);
    for (uint32_t p = 0; p < run->nscans; p++) {
        qscan_t *sc = &run->scans[p];
        if (!sc->acc)
            continue;
        if (!acc)
            acc = sc->acc;
        else {
            if (!rc)
                rc = q->k->merge(q, acc, sc->acc);
            q->k->acc_free(q, sc->acc);
        }
        sc->acc = NULL;
    }
    if (rc && acc) {
        q->k->acc_free(q, acc);
        acc = NULL;
    }
    *out = acc;
    return rc;
}

/* Ranks the groups of pass 1: by figure descending (a null figure lowest),
 * then text ascending by bytes, the null group last; keeps q->limit. */
typedef struct grank {
    uint32_t g;
    double fig;
    const char *text;
    uint32_t len;
} grank_t;

static int cmp_rank(const void *a, const void *b)
{
    const grank_t *x = a, *y = b;
    double fx = isnan(x->fig) ? -INFINITY : x->fig, fy = isnan(y->fig) ? -INFINITY : y->fig;
    if (fx != fy)
        return fx > fy ? -1 : 1;
    if (!x->text || !y->text)
        return !x->text - !y->text;
    uint32_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->text, y->text, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static int rank_groups(query_t *q, void *acc, uint32_t **remap, uint32_t *nremap, bool *cut)
{
    uint32_t n = q->groups.d.n + 2;
    double *fig = wm_malloc(n * sizeof *fig);
    grank_t *r = wm_malloc(n * sizeof *r);
    *remap = wm_malloc(n * sizeof **remap);
    if (!fig || !r || !*remap) {
        wm_free(fig), wm_free(r);
        return WM_ENOMEM;
    }
    for (uint32_t g = 0; g < n; g++)
        fig[g] = NAN;
    q->k->figures(q, acc, fig, n);
    /* figures marks a present group with a null figure as -INFINITY */
    uint32_t m = 0;
    for (uint32_t g = 0; g < n; g++) {
        (*remap)[g] = Q_GROUP_OTHER;
        if (g == Q_GROUP_OTHER || isnan(fig[g]))
            continue;
        r[m].g = g;
        r[m].fig = fig[g];
        r[m].text = q_group_text(q, g, &r[m].len);
        m++;
    }
    qsort(r, m, sizeof *r, cmp_rank);
    uint32_t keep = m < q->limit ? m : q->limit;
    wm_free(q->gorder);
    q->gorder = wm_malloc((keep + 1) * sizeof *q->gorder);
    if (!q->gorder) {
        wm_free(fig), wm_free(r);
        return WM_ENOMEM;
    }
    for (uint32_t i = 0; i < keep; i++) {
        q->gorder[i] = r[i].g;
        (*remap)[r[i].g] = r[i].g;
    }
    q->ngorder = keep;
    *cut = m > keep;
    q->gother = *cut;
    *nremap = n;
    wm_free(fig);
    wm_free(r);
    return 0;
}

static int parse_common(query_t *q, const wm_json_t *req, wm_query_error_t *err)
{
    const wm_json_t *off = wm_json_get(req, "utc_offset_min");
    q->off_min = 480;
    if (off) {
        if (off->type != WM_JSON_NUMBER || !off->is_int || off->i64 < -900 || off->i64 > 900)
            return q_fail(err, "utc_offset_min", "an integer number of minutes, -900 to 900");
        q->off_min = (int)off->i64;
    }
    const char *from = wm_json_str(wm_json_get(req, "from")), *to = wm_json_str(wm_json_get(req, "to"));
    int64_t fd = 0, td = 0;
    if (wm_json_get(req, "from") && !parse_date(from, &fd))
        return q_fail(err, "from", "a local date YYYY-MM-DD");
    if (wm_json_get(req, "to") && !parse_date(to, &td))
        return q_fail(err, "to", "a local date YYYY-MM-DD");
    if (q->needs_range && !from)
        return q_fail(err, "from", "required: the first local date of the range, YYYY-MM-DD");
    if (q->needs_range && !to)
        return q_fail(err, "to", "required: the last local date of the range, YYYY-MM-DD");
    if (from && to && td < fd)
        return q_fail(err, "to", "%s is before from (%s)", to, from);
    if (from && to && td - fd > 3660)
        return q_fail(err, "to", "the range is longer than 10 years");
    q->lo = from ? q_day_start(q, fd) : INT64_MIN / 4;
    q->hi = to ? q_day_start(q, td + 1) : INT64_MAX / 4;
    q->len = q->hi - q->lo;
    q->need_lo = q->lo;
    q->need_hi = q->hi;
    int rc = compile_cond(q, &q->where, wm_json_get(req, "where"), "where", err);
    if (rc)
        return rc;
    const wm_json_t *bd = wm_json_get(req, "breakdown");
    if (bd && bd->type != WM_JSON_NULL) {
        if (bd->type != WM_JSON_OBJECT || bd->len != 1 || bd->u.child->type != WM_JSON_STRING ||
            !bd->u.child->len)
            return q_fail(err, "breakdown", "{\"prop\": name}, {\"profile\": name} or {\"tag\": name}");
        const char *k = bd->u.child->key;
        q->bd = !strcmp(k, "prop") ? QBD_PROP : !strcmp(k, "profile") ? QBD_PROFILE : !strcmp(k, "tag") ? QBD_TAG
                                                                                                        : QBD_NONE;
        if (q->bd == QBD_NONE)
            return q_fail(err, "breakdown", "{\"prop\": name}, {\"profile\": name} or {\"tag\": name}");
        if (!(q->bd_name = wm_strdup(bd->u.child->u.str)))
            return WM_ENOMEM;
        if (q->bd == QBD_PROP && (rc = q_prop_index(q, q->bd_name, &q->bd_prop)))
            return rc;
        if (q->bd != QBD_PROP && !q->src->host)
            return q_fail(err, "breakdown", "profile and tag breakdowns need the server's customer stores");
    }
    q->limit = 10;
    const wm_json_t *lim = wm_json_get(req, "limit");
    if (lim && q->bd != QBD_NONE) {
        if (lim->type != WM_JSON_NUMBER || !lim->is_int || lim->i64 < 1 || lim->i64 > 100)
            return q_fail(err, "limit", "the groups kept by the breakdown, 1 to 100");
        q->limit = (uint32_t)lim->i64;
    }
    int64_t timeout = 30000;
    const wm_json_t *to_ms = wm_json_get(req, "timeout_ms");
    if (to_ms) {
        if (to_ms->type != WM_JSON_NUMBER || !to_ms->is_int || to_ms->i64 < 1 || to_ms->i64 > 600000)
            return q_fail(err, "timeout_ms", "milliseconds, 1 to 600000");
        timeout = to_ms->i64;
    }
    if (q->src->timeout_ms)
        timeout = q->src->timeout_ms;
    q->started_ms = now_ms();
    q->deadline_ms = q->started_ms + timeout;
    const wm_json_t *st = wm_json_get(req, "stats");
    if (st && st->type != WM_JSON_TRUE && st->type != WM_JSON_FALSE)
        return q_fail(err, "stats", "true or false (the scan's figures in the answer)");
    q->want_stats = st && st->type == WM_JSON_TRUE;
    if (q->where.reads_customer && !q->src->host)
        return q_fail(err, "where", "profile, tag and segment clauses need the server's customer stores");
    for (uint32_t k = 0; k < q->nspecs; k++)
        if (q->specs[k].where.reads_customer && !q->src->host)
            return q_fail(err, "where", "profile, tag and segment clauses need the server's customer stores");
    return 0;
}

static const qkernel_t *const KINDS[] = {&wm__qk_events, &wm__qk_funnel, &wm__qk_retention, &wm__qk_paths,
                                         &wm__qk_attribution, &wm__qk_distribution, &wm__qk_interval,
                                         &wm__qk_map, &wm__qk_export};

static void query_release(query_t *q)
{
    if (q->k && q->k->conf_free && q->conf)
        q->k->conf_free(q);
    wm_free(q->conf);
    cond_free(&q->where);
    for (uint32_t k = 0; k < q->nspecs; k++) {
        wm_strmap_release(&q->specs[k].names);
        wm_free(q->specs[k].title);
        cond_free(&q->specs[k].where);
    }
    for (uint32_t i = 0; i < q->nprops; i++)
        wm_free(q->props[i]);
    wm_free(q->props);
    wm_free(q->bd_name);
    wm_free(q->gorder);
    qdict_t *ds[] = {&q->names, &q->groups, &q->labels};
    for (int i = 0; i < 3; i++) {
        wm__an_dict_release(&ds[i]->d);
        pthread_mutex_destroy(&ds[i]->mu);
    }
    wm_buf_release(&q->warnings);
    pthread_mutex_destroy(&q->warn_mu);
}

static int query_error(int rc, query_t *q, wm_query_error_t *err)
{
    if (rc == WM_ELIMIT && !err->msg[0])
        snprintf(err->msg, sizeof err->msg, "the query needs more than its working memory of %zu bytes",
                 q->mem_max);
    else if (rc == WM_EBUSY && !err->msg[0])
        snprintf(err->msg, sizeof err->msg, "the query ran past its timeout");
    else if (rc == WM_ECLOSED && !err->msg[0])
        snprintf(err->msg, sizeof err->msg, "the query was cancelled");
    return rc;
}

int wm_query_run(const wm_query_src_t *src, const char *kind, const wm_json_t *req, wm_buf_t *out,
                 wm_query_error_t *err)
{
    memset(err, 0, sizeof *err);
    if (!src || !kind || !out)
        return WM_EINVAL;
    if (!req || req->type != WM_JSON_OBJECT)
        return q_fail(err, "", "the request is a JSON object");
    const qkernel_t *k = NULL;
    for (size_t i = 0; i < sizeof KINDS / sizeof *KINDS; i++)
        if (!strcmp(KINDS[i]->kind, kind))
            k = KINDS[i];
    if (!k)
        return q_fail(err, "kind",
                      "\"%s\" is not a query kind (events, funnel, retention, paths, attribution, distribution, "
                      "interval, map, export)",
                      kind);
    const char *rk = wm_json_str(wm_json_get(req, "kind"));
    if (rk && strcmp(rk, kind))
        return q_fail(err, "kind", "the request says \"%s\" but runs as \"%s\"", rk, kind);
    query_t *q = wm_calloc(1, sizeof *q);
    if (!q)
        return WM_ENOMEM;
    q->src = src;
    q->k = k;
    q->bd_prop = q->val_prop = q->dval_prop = -1;
    q->label_from = UINT32_MAX;
    q->mem_max = src->memory_max ? src->memory_max : WM_QUERY_MEMORY_MAX;
    q->needs_range = k != &wm__qk_export;
    qdict_t *ds[] = {&q->names, &q->groups, &q->labels};
    for (int i = 0; i < 3; i++) {
        pthread_mutex_init(&ds[i]->mu, NULL);
        wm_strmap_init(&ds[i]->d.map);
    }
    pthread_mutex_init(&q->warn_mu, NULL);
    wm_buf_init(&q->warnings, 0);
    int rc = 0;
    /* every kind's conf starts with the error it reports parse faults in */
    if (!(q->conf = wm_calloc(1, k->conf_size > sizeof(wm_query_error_t *) ? k->conf_size : 64)))
        rc = WM_ENOMEM;
    else
        *(wm_query_error_t **)q->conf = err;
    if (!rc)
        rc = parse_common(q, req, err);
    if (!rc)
        rc = k->parse(q, req);
    if (rc == WM_EINVAL && !err->msg[0])
        snprintf(err->msg, sizeof err->msg, "invalid request");
    if (!rc) {
        q->plain_rows = !q->where.c && q->bd != QBD_PROP && q->val_prop < 0 && q->dval_prop < 0 &&
                        q->label_from >= q->nspecs && !q->export_text;
        for (uint32_t i = 0; i < q->nspecs; i++)
            q->plain_rows &= !q->specs[i].where.c;
    }
    qrun_t run = {.q = q};
    if (!rc)
        rc = open_sources(&run);
    uint32_t nseries = k->series ? k->series(q) : 1;
    for (uint32_t s = 0; s < nseries && !rc; s++) {
        if (k->set_series)
            k->set_series(q, s);
        q->remap = NULL;
        q->gother = false;
        q->ngorder = 0;
        void *acc = NULL;
        rc = run_pass(&run, &acc);
        if (!rc && q->bd != QBD_NONE) {
            uint32_t *remap = NULL, nremap = 0;
            bool cut = false;
            rc = rank_groups(q, acc, &remap, &nremap, &cut);
            if (!rc && cut) {
                k->acc_free(q, acc);
                acc = NULL;
                q->remap = remap;
                q->nremap = nremap;
                rc = run_pass(&run, &acc);
            }
            if (rc || !cut)
                wm_free(remap);
            else
                q->remap = remap;   /* freed below */
        }
        if (!rc)
            rc = k->answer(q, acc, out);
        if (acc)
            k->acc_free(q, acc);
        if (q->remap) {
            wm_free((void *)q->remap);
            q->remap = NULL;
        }
    }
    if (!rc && k->finish)
        rc = k->finish(q, out);
    if (!rc && q->warnings.len && k != &wm__qk_export && out->len && out->data[out->len - 1] == '}') {
        /* corrupt blocks were skipped: the answer says which */
        out->len--;
        wm_buf_puts(out, ",\"warnings\":[");
        wm_buf_append(out, q->warnings.data, q->warnings.len);
        wm_buf_puts(out, "]}");
    }
    if (!rc && q->want_stats && k != &wm__qk_export && out->len && out->data[out->len - 1] == '}') {
        uint32_t nparts = 0;
        for (uint32_t p = 0; p < run.nscans; p++)
            nparts += run.scans[p].nsrcs;
        out->len--;
        wm_buf_printf(out,
                      ",\"stats\":{\"elapsed_ms\":%" PRId64 ",\"rows_read\":%" PRIu64 ",\"customers\":%" PRIu64
                      ",\"parts\":%u,\"partitions\":%u}}",
                      now_ms() - q->started_ms, (uint64_t)atomic_load(&q->rows_read),
                      (uint64_t)atomic_load(&q->customers), nparts, run.nscans);
    }
    for (uint32_t p = 0; p < src->n_parts && q->corrupt; p++)
        if (src->stores && src->stores[p]) {
            wm__astore_count_corrupt(src->stores[p], q->corrupt);
            break;
        }
    close_sources(&run);
    if (!rc && out->err)
        rc = out->err;
    rc = query_error(rc, q, err);
    query_release(q);
    wm_free(q);
    return rc;
}
