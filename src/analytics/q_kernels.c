/*
 * q_kernels.c - the per-customer computations of every query kind and their
 * answers (docs/analytics.md; the readings of tests/oracle/NOTES.md). Each
 * kernel folds customer streams (query.c hands them over in stream order)
 * into an accumulator; accumulators of the scanning threads are merged.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/q_internal.h"
#include "waymark/alloc.h"
#include "waymark/error.h"

#define DAY_MS 86400000LL
#define FUNNEL_STEPS_MAX 16
#define DROPPED_MAX 10000u

/* ----------------------------------------------------- shared pieces */

/* A growable vector of int64 (durations). */
typedef struct ivec {
    int64_t *v;
    uint32_t n, cap;
} ivec_t;

static int ivec_push(query_t *q, ivec_t *a, int64_t x)
{
    int rc = q_grow(q, (void **)&a->v, &a->cap, (uint64_t)a->n + 1, sizeof *a->v);
    if (!rc)
        a->v[a->n++] = x;
    return rc;
}

static int ivec_cat(query_t *q, ivec_t *a, const ivec_t *b)
{
    if (!b->n)
        return 0;
    int rc = q_grow(q, (void **)&a->v, &a->cap, (uint64_t)a->n + b->n, sizeof *a->v);
    if (!rc) {
        memcpy(a->v + a->n, b->v, b->n * sizeof *a->v);
        a->n += b->n;
    }
    return rc;
}

static void ivec_free(query_t *q, ivec_t *a)
{
    q_mem(q, -(int64_t)a->cap * (int64_t)sizeof *a->v);
    wm_free(a->v);
    memset(a, 0, sizeof *a);
}

static void write_quant(wm_buf_t *b, ivec_t *a, double qq)
{
    if (!a->n) {
        wm_buf_puts(b, "null");
        return;
    }
    /* a selection per quantile: no full sort of millions of durations */
    wm_buf_printf(b, "%" PRId64, q_quantile(a->v, a->n, qq, false));
}

/* Group-indexed table of pointers to per-group records of `size` bytes. */
typedef struct gtab {
    void **g;
    uint32_t n;
    size_t size;
} gtab_t;

static void *gtab_get(query_t *q, gtab_t *t, uint32_t g)
{
    if (g >= t->n) {
        uint32_t nn = g + 16;
        void **ng = wm_realloc(t->g, nn * sizeof *ng);
        if (!ng)
            return NULL;
        memset(ng + t->n, 0, (nn - t->n) * sizeof *ng);
        t->g = ng;
        t->n = nn;
    }
    if (!t->g[g]) {
        if (q_mem(q, (int64_t)t->size) || !(t->g[g] = wm_calloc(1, t->size)))
            return NULL;
    }
    return t->g[g];
}

static void *gtab_peek(const gtab_t *t, uint32_t g)
{
    return g < t->n ? t->g[g] : NULL;
}

/* The groups to answer: without a breakdown the one group 0. */
static uint32_t answer_groups(query_t *q, uint32_t *out, uint32_t cap, const gtab_t *t)
{
    uint32_t n = 0;
    if (q->bd == QBD_NONE) {
        out[n++] = 0;
        return n;
    }
    for (uint32_t i = 0; i < q->ngorder && n < cap; i++)
        out[n++] = q->gorder[i];
    if (gtab_peek(t, Q_GROUP_OTHER) && n < cap)
        out[n++] = Q_GROUP_OTHER;
    return n;
}

static const wm_json_t *member(const wm_json_t *req, const char *k)
{
    return wm_json_get(req, k);
}

static int int_member(const wm_json_t *req, const char *k, int64_t dflt, int64_t lo, int64_t hi, int64_t *out,
                      wm_query_error_t *err, const char *what)
{
    const wm_json_t *v = member(req, k);
    *out = dflt;
    if (!v)
        return 0;
    if (v->type != WM_JSON_NUMBER || !v->is_int || v->i64 < lo || v->i64 > hi)
        return q_fail(err, k, "%s, %" PRId64 " to %" PRId64, what, lo, hi);
    *out = v->i64;
    return 0;
}

/* A query's error is kept in its conf for parse (the kernels have no err
 * argument): every conf starts with one. */
typedef struct kconf {
    wm_query_error_t *err;
} kconf_t;

static wm_query_error_t *kerr(query_t *q)
{
    return ((kconf_t *)q->conf)->err;
}

static int no_breakdown(query_t *q, const char *kind)
{
    if (q->bd != QBD_NONE)
        return q_fail(kerr(q), "breakdown", "%s queries have no breakdown", kind);
    return 0;
}

/* ============================================================ events */

enum { M_COUNT, M_USERS, M_SUM, M_AVG, M_MIN, M_MAX, M_DISTINCT };
static const char *const MEASURES[] = {"count", "users", "sum", "avg", "min", "max", "distinct"};
enum { I_HOUR, I_DAY, I_WEEK, I_MONTH, I_TOTAL };
static const char *const INTERVALS[] = {"hour", "day", "week", "month", "total"};

typedef struct ecell {
    uint64_t count, users, nvals;
    double sum, min, max;
    uint64_t stamp;
    uint32_t *set;      /* distinct value ids: open addressing, UINT32_MAX empty */
    uint32_t sn, scap;
} ecell_t;

typedef struct egroup {
    ecell_t *cells;     /* nb buckets x 2 (cur, prev), then 2 totals */
} egroup_t;

typedef struct econf {
    kconf_t base;
    uint32_t nseries;
    uint32_t spec[Q_SPECS_MAX];
    int measure[Q_SPECS_MAX];
    int32_t prop[Q_SPECS_MAX];
    int interval;
    bool compare;
    uint32_t cur;
    int64_t b0, nb;     /* first bucket number, bucket count */
    wm_buf_t rows, totals;
} econf_t;

typedef struct eacc {
    gtab_t t;
    uint64_t ustamp;
    uint32_t last_g;        /* the group of the previous row, and its record */
    egroup_t *last;
    uint64_t *bcount;       /* block mode: counts per (bucket, period) of one block */
} eacc_t;

/* The period number of time t in unit I_HOUR .. I_MONTH (I_TOTAL: 0):
 * local hours, days, Monday weeks, calendar months. */
static int64_t period_of(const query_t *q, int unit, int64_t t)
{
    int64_t d = q_day(q, t);
    switch (unit) {
    case I_HOUR: {
        int64_t x = t + (int64_t)q->off_min * 60000;
        return x >= 0 ? x / 3600000 : -((-x + 3599999) / 3600000);
    }
    case I_DAY:
        return d;
    case I_WEEK:
        return (d + 3) >= 0 ? (d + 3) / 7 : -((-(d + 3) + 6) / 7);
    case I_MONTH: {
        time_t s = (time_t)(d * 86400);
        struct tm tm;
        gmtime_r(&s, &tm);
        return (int64_t)(tm.tm_year + 1900) * 12 + tm.tm_mon;
    }
    default:
        return 0;
    }
}

/* The label of period p: "YYYY-MM-DD HH:00", the date, the Monday, the 1st. */
static void period_label(int unit, int64_t p, char *out, size_t cap)
{
    switch (unit) {
    case I_HOUR: {
        char d[16];
        int64_t day = p >= 0 ? p / 24 : -((-p + 23) / 24);
        q_day_text(day, d, sizeof d);
        snprintf(out, cap, "%s %02d:00", d, (int)(p - day * 24));
        break;
    }
    case I_DAY:
        q_day_text(p, out, cap);
        break;
    case I_WEEK:
        q_day_text(p * 7 - 3, out, cap);
        break;
    case I_MONTH:
        snprintf(out, cap, "%04d-%02d-01", (int)(p / 12), (int)(p % 12) + 1);
        break;
    default:
        if (cap)
            out[0] = 0;
        break;
    }
}

#define ebucket(q, c, t) period_of((q), (c)->interval, (t))

static int ev_parse(query_t *q, const wm_json_t *req)
{
    econf_t *c = q->conf;
    wm_query_error_t *err = kerr(q);
    const wm_json_t *series = member(req, "series");
    if (!series || series->type != WM_JSON_ARRAY || !series->len)
        return q_fail(err, "series", "a non-empty list of {\"event\" or \"events\", \"measure\", \"prop\"}");
    if (series->len > Q_SPECS_MAX)
        return q_fail(err, "series", "at most %u series", Q_SPECS_MAX);
    uint32_t i = 0;
    for (const wm_json_t *s = series->u.child; s; s = s->next, i++) {
        char path[64];
        snprintf(path, sizeof path, "series[%u]", i);
        if (s->type != WM_JSON_OBJECT)
            return q_fail(err, path, "a series object");
        /* the spec is read without measure and prop */
        wm_arena_t a;
        wm_arena_init(&a, 1024);
        wm_json_t *spec = wm_json_new(&a, WM_JSON_OBJECT);
        const char *measure = "count", *prop = NULL;
        int rc = spec ? 0 : WM_ENOMEM;
        for (const wm_json_t *m = s->u.child; m && !rc; m = m->next) {
            if (!strcmp(m->key, "measure")) {
                if (m->type != WM_JSON_STRING)
                    rc = q_fail(err, path, "measure: a string");
                else
                    measure = m->u.str;
            } else if (!strcmp(m->key, "prop")) {
                if (m->type != WM_JSON_STRING || !m->len)
                    rc = q_fail(err, path, "prop: a property name");
                else
                    prop = m->u.str;
            } else {
                wm_json_t *cp = wm_arena_alloc(&a, sizeof *cp);
                if (!cp)
                    rc = WM_ENOMEM;
                else {
                    *cp = *m;
                    cp->next = NULL;
                    rc = wm_json_append(&a, spec, m->key, cp);
                }
            }
        }
        c->measure[i] = -1;
        for (int k = 0; k < 7; k++)
            if (!rc && !strcmp(measure, MEASURES[k]))
                c->measure[i] = k;
        if (!rc && c->measure[i] < 0)
            rc = q_fail(err, path, "measure: \"%s\" is not count, users, sum, avg, min, max or distinct", measure);
        if (!rc && c->measure[i] >= M_SUM && !prop)
            rc = q_fail(err, path, "measure %s needs \"prop\"", measure);
        c->prop[i] = -1;
        if (!rc && prop && c->measure[i] >= M_SUM)
            rc = q_prop_index(q, prop, &c->prop[i]);
        if (!rc)
            rc = q_spec(q, spec, path, &c->spec[i], err);
        wm_arena_release(&a);
        if (rc)
            return rc;
    }
    c->nseries = i;
    const char *iv = wm_json_str(member(req, "interval"));
    c->interval = -1;
    if (!member(req, "interval"))
        c->interval = I_DAY;
    for (int k = 0; k < 5 && iv; k++)
        if (!strcmp(iv, INTERVALS[k]))
            c->interval = k;
    if (c->interval < 0)
        return q_fail(err, "interval", "hour, day, week, month or total");
    const wm_json_t *cmp = member(req, "compare");
    if (cmp && cmp->type != WM_JSON_NULL) {
        if (!wm_json_str(cmp) || strcmp(wm_json_str(cmp), "previous"))
            return q_fail(err, "compare", "\"previous\" (the period of the same length before from)");
        c->compare = true;
        q->need_lo = q->lo - q->len;
    }
    c->b0 = ebucket(q, c, q->lo);
    c->nb = ebucket(q, c, q->hi - 1) - c->b0 + 1;
    if (c->nb > 100000)
        return q_fail(err, "interval", "more than 100,000 buckets in the range");
    wm_buf_init(&c->rows, 0);
    wm_buf_init(&c->totals, 0);
    return 0;
}

static void ev_conf_free(query_t *q)
{
    econf_t *c = q->conf;
    wm_buf_release(&c->rows);
    wm_buf_release(&c->totals);
}

static uint32_t ev_series(query_t *q)
{
    return ((econf_t *)q->conf)->nseries;
}

static void ev_set_series(query_t *q, uint32_t s)
{
    econf_t *c = q->conf;
    c->cur = s;
    int m = c->measure[s];
    q->val_prop = m >= M_SUM && m <= M_MAX ? c->prop[s] : -1;
    q->dval_prop = m == M_DISTINCT ? c->prop[s] : -1;
    q->val_mask = 1u << c->spec[s];
}

static void *ev_new(query_t *q)
{
    eacc_t *a = wm_calloc(1, sizeof *a);
    if (a)
        a->t.size = sizeof(egroup_t);
    return a;
}

static void ecell_release(ecell_t *e)
{
    wm_free(e->set);
}

static void ev_free(query_t *q, void *acc)
{
    eacc_t *a = acc;
    econf_t *c = q->conf;
    for (uint32_t g = 0; g < a->t.n; g++) {
        egroup_t *eg = a->t.g[g];
        if (!eg)
            continue;
        if (eg->cells)
            for (int64_t i = 0; i < 2 * c->nb + 2; i++)
                ecell_release(&eg->cells[i]);
        wm_free(eg->cells);
        wm_free(eg);
    }
    wm_free(a->t.g);
    wm_free(a->bcount);
    wm_free(a);
}

static int set_add(query_t *q, ecell_t *e, uint32_t id)
{
    if ((e->sn + 1) * 2 > e->scap) {
        uint32_t nc = e->scap ? e->scap * 2 : 8;
        uint32_t *ns = wm_malloc(nc * sizeof *ns);
        if (!ns || q_mem(q, (int64_t)(nc - e->scap) * 4)) {
            wm_free(ns);
            return WM_ENOMEM;
        }
        memset(ns, 0xff, nc * sizeof *ns);
        for (uint32_t i = 0; i < e->scap; i++)
            if (e->set[i] != UINT32_MAX) {
                uint32_t j = (e->set[i] * 2654435761u) & (nc - 1);
                while (ns[j] != UINT32_MAX)
                    j = (j + 1) & (nc - 1);
                ns[j] = e->set[i];
            }
        wm_free(e->set);
        e->set = ns;
        e->scap = nc;
    }
    uint32_t j = (id * 2654435761u) & (e->scap - 1);
    while (e->set[j] != UINT32_MAX) {
        if (e->set[j] == id)
            return 0;
        j = (j + 1) & (e->scap - 1);
    }
    e->set[j] = id;
    e->sn++;
    return 0;
}

static int ecell_add(query_t *q, const econf_t *c, ecell_t *e, const qrow_t *r, uint64_t stamp)
{
    e->count++;
    if (e->stamp != stamp) {
        e->stamp = stamp;
        e->users++;
    }
    if (!isnan(r->val)) {
        if (!e->nvals || r->val < e->min)
            e->min = r->val;
        if (!e->nvals || r->val > e->max)
            e->max = r->val;
        e->sum += r->val;
        e->nvals++;
    }
    if (c->measure[c->cur] == M_DISTINCT && r->aux != UINT32_MAX)
        return set_add(q, e, r->aux);
    return 0;
}

static egroup_t *ev_group(query_t *q, eacc_t *a, uint32_t g)
{
    econf_t *c = q->conf;
    egroup_t *eg = gtab_get(q, &a->t, g);
    if (eg && !eg->cells) {
        size_t n = (size_t)(2 * c->nb + 2);
        if (q_mem(q, (int64_t)(n * sizeof(ecell_t))) || !(eg->cells = wm_calloc(n, sizeof(ecell_t))))
            return NULL;
    }
    return eg;
}

static int ev_one(query_t *q, eacc_t *a, econf_t *c, const qrow_t *r, uint64_t stamp)
{
    int period;
    int64_t t = r->time;
    if (t >= q->lo && t < q->hi)
        period = 0;
    else if (c->compare && t >= q->lo - q->len && t < q->lo) {
        period = 1;
        t += q->len;
    } else
        return 0;
    uint32_t g = q_group(q, r->grp);
    egroup_t *eg = g == a->last_g && a->last ? a->last : ev_group(q, a, g);
    if (!eg)
        return WM_ENOMEM;
    a->last_g = g;
    a->last = eg;
    int64_t b = (c->interval == I_DAY ? q_day(q, t) : ebucket(q, c, t)) - c->b0;
    if (b < 0 || b >= c->nb)
        return 0;
    int rc = ecell_add(q, c, &eg->cells[2 * b + period], r, stamp);
    if (!rc)
        rc = ecell_add(q, c, &eg->cells[2 * c->nb + period], r, stamp);
    return rc;
}

static int ev_user(query_t *q, void *acc, uint64_t user, qrow_t *rows, uint32_t n)
{
    eacc_t *a = acc;
    econf_t *c = q->conf;
    uint32_t bit = 1u << c->spec[c->cur];
    uint64_t stamp = ++a->ustamp;
    for (uint32_t i = 0; i < n; i++) {
        int rc = rows[i].mask & bit ? ev_one(q, a, c, &rows[i], stamp) : 0;
        if (rc)
            return rc;
    }
    return 0;
}

static bool ev_row_mode(query_t *q)
{
    econf_t *c = q->conf;
    bool customer = q->where.reads_customer || q->bd == QBD_PROFILE || q->bd == QBD_TAG;
    for (uint32_t k = 0; k < q->nspecs; k++)
        customer |= q->specs[k].where.reads_customer;
    return c->measure[c->cur] != M_USERS && !customer;
}

/* count of events by their name and time alone: a block at a time */
static bool ev_block_ok(query_t *q)
{
    econf_t *c = q->conf;
    return c->measure[c->cur] == M_COUNT && !q->where.c && !q->specs[c->spec[c->cur]].where.c && q->bd == QBD_NONE &&
           c->interval != I_HOUR && c->interval != I_MONTH;
}

static int ev_block(query_t *q, void *acc, const int64_t *time, const uint32_t *ev, const uint32_t *evmask,
                    uint32_t nev, uint32_t n)
{
    eacc_t *a = acc;
    econf_t *c = q->conf;
    egroup_t *eg = a->last ? a->last : ev_group(q, a, 0);
    if (!eg)
        return WM_ENOMEM;
    a->last = eg;
    a->last_g = 0;
    if (!a->bcount && !(a->bcount = wm_calloc((size_t)(2 * c->nb), sizeof *a->bcount)))
        return WM_ENOMEM;
    /* which event codes count: a byte table, so the row loop is a load and a branch */
    uint32_t bit = 1u << c->spec[c->cur];
    unsigned char take_s[256], *take = nev <= 256 ? take_s : wm_malloc(nev);
    if (!take)
        return WM_ENOMEM;
    for (uint32_t e = 0; e < nev; e++)
        take[e] = (evmask[e] & bit) != 0;
    int64_t off = (int64_t)q->off_min * 60000, plo = c->compare ? q->lo - q->len : q->lo;
    uint64_t span = (uint64_t)(q->hi - plo);
    uint64_t *cnt = a->bcount;
    bool week = c->interval == I_WEEK, day = c->interval == I_DAY;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t code = ev[i];
        if (code >= nev || !take[code])
            continue;
        int64_t t = time[i];
        if ((uint64_t)(t - plo) >= span)
            continue;
        int period = t < q->lo;
        t += period ? q->len : 0;
        int64_t d = (t + off) / DAY_MS;   /* t + off >= 0 for any date the range allows */
        int64_t bk = (day ? d : week ? (d + 3) / 7 : 0) - c->b0;
        if ((uint64_t)bk < (uint64_t)c->nb)
            cnt[2 * bk + period]++;
    }
    if (take != take_s)
        wm_free(take);
    /* into the cells */
    ecell_t *cells = eg->cells;
    for (int64_t k = 0; k < 2 * c->nb; k++)
        if (cnt[k]) {
            cells[k].count += cnt[k];
            cells[2 * c->nb + (k & 1)].count += cnt[k];
            cnt[k] = 0;
        }
    return 0;
}

static int ev_row(query_t *q, void *acc, const qrow_t *r)
{
    econf_t *c = q->conf;
    return r->mask >> c->spec[c->cur] & 1 ? ev_one(q, acc, c, r, 0) : 0;
}

static int ev_merge(query_t *q, void *dst, void *src)
{
    eacc_t *d = dst, *s = src;
    econf_t *c = q->conf;
    for (uint32_t g = 0; g < s->t.n; g++) {
        egroup_t *sg = s->t.g[g];
        if (!sg || !sg->cells)
            continue;
        egroup_t *dg = ev_group(q, d, g);
        if (!dg)
            return WM_ENOMEM;
        for (int64_t i = 0; i < 2 * c->nb + 2; i++) {
            ecell_t *x = &dg->cells[i], *y = &sg->cells[i];
            x->count += y->count;
            x->users += y->users;   /* a customer is scanned by one thread only */
            if (y->nvals) {
                if (!x->nvals || y->min < x->min)
                    x->min = y->min;
                if (!x->nvals || y->max > x->max)
                    x->max = y->max;
                x->sum += y->sum;
                x->nvals += y->nvals;
            }
            for (uint32_t k = 0; k < y->scap; k++)
                if (y->set[k] != UINT32_MAX) {
                    int rc = set_add(q, x, y->set[k]);
                    if (rc)
                        return rc;
                }
        }
    }
    return 0;
}

/* The measure's value of a cell: false when it is null. */
static bool ecell_value(const econf_t *c, const ecell_t *e, double *v)
{
    switch (c->measure[c->cur]) {
    case M_COUNT:
        *v = (double)e->count;
        return true;
    case M_USERS:
        *v = (double)e->users;
        return true;
    case M_SUM:
        *v = e->sum;
        return true;
    case M_AVG:
        *v = e->nvals ? e->sum / (double)e->nvals : 0;
        return e->nvals > 0;
    case M_MIN:
        *v = e->min;
        return e->nvals > 0;
    case M_MAX:
        *v = e->max;
        return e->nvals > 0;
    default:
        *v = (double)e->sn;
        return true;
    }
}

static void ev_figures(query_t *q, void *acc, double *fig, uint32_t n)
{
    eacc_t *a = acc;
    econf_t *c = q->conf;
    for (uint32_t g = 0; g < n && g < a->t.n; g++) {
        egroup_t *eg = a->t.g[g];
        if (!eg || !eg->cells || !eg->cells[2 * c->nb].count)
            continue;
        double v;
        fig[g] = ecell_value(c, &eg->cells[2 * c->nb], &v) ? v : -INFINITY;
    }
}

static void ecell_write(wm_buf_t *b, const econf_t *c, const ecell_t *e)
{
    static const ecell_t empty;
    double v;
    if (!ecell_value(c, e ? e : &empty, &v))
        wm_buf_puts(b, "null");   /* avg, min, max of nothing */
    else
        q_write_num(b, v);
}

static int ev_answer(query_t *q, void *acc, wm_buf_t *out)
{
    (void)out;
    eacc_t *a = acc;
    econf_t *c = q->conf;
    uint32_t groups[128];
    uint32_t ng = answer_groups(q, groups, 128, &a->t);
    for (uint32_t gi = 0; gi < ng; gi++) {
        egroup_t *eg = gtab_peek(&a->t, groups[gi]);
        for (int64_t b = 0; b <= c->nb; b++) {
            bool total = b == c->nb;
            wm_buf_t *w = total ? &c->totals : &c->rows;
            if (w->len)
                wm_buf_putc(w, ',');
            wm_buf_printf(w, "{\"series\":%u", c->cur);
            if (q->bd != QBD_NONE) {
                wm_buf_puts(w, ",\"group\":");
                q_write_group(q, w, groups[gi]);
            }
            if (!total) {
                char label[40];
                if (c->interval == I_TOTAL)
                    snprintf(label, sizeof label, "%s", "");
                else
                    period_label(c->interval, c->b0 + b, label, sizeof label);
                wm_buf_puts(w, ",\"bucket\":");
                if (c->interval == I_TOTAL) {
                    char d[16];
                    q_day_text(q_day(q, q->lo), d, sizeof d);
                    wm_buf_json_str(w, d, strlen(d));
                } else
                    wm_buf_json_str(w, label, strlen(label));
            }
            const ecell_t *cur = eg && eg->cells ? &eg->cells[2 * b] : NULL;
            const ecell_t *prev = eg && eg->cells ? &eg->cells[2 * b + 1] : NULL;
            /* an empty cell: 0 for count/users/sum/distinct, null for avg/min/max */
            wm_buf_puts(w, ",\"value\":");
            ecell_write(w, c, cur);
            if (c->compare) {
                wm_buf_puts(w, ",\"previous\":");
                ecell_write(w, c, prev);
            }
            wm_buf_putc(w, '}');
        }
    }
    return c->rows.err ? c->rows.err : c->totals.err;
}

static int ev_finish(query_t *q, wm_buf_t *out)
{
    econf_t *c = q->conf;
    wm_buf_puts(out, "{\"rows\":[");
    wm_buf_append(out, c->rows.data, c->rows.len);
    wm_buf_puts(out, "],\"totals\":[");
    wm_buf_append(out, c->totals.data, c->totals.len);
    wm_buf_puts(out, "]}");
    return out->err;
}

const qkernel_t wm__qk_events = {
    .kind = "events", .conf_size = sizeof(econf_t), .parse = ev_parse, .acc_new = ev_new, .acc_free = ev_free,
    .user = ev_user, .merge = ev_merge, .figures = ev_figures, .answer = ev_answer, .conf_free = ev_conf_free,
    .series = ev_series, .set_series = ev_set_series, .finish = ev_finish, .row_mode = ev_row_mode, .row = ev_row,
    .block_ok = ev_block_ok, .block = ev_block,
};

/* ============================================================ funnel */

enum { O_SEQUENTIAL, O_STRICT, O_ANY };

typedef struct fconf {
    kconf_t base;
    uint32_t n;
    int order;
    int64_t window;
    uint32_t dropped_at;    /* 0: none */
    bool map;               /* journey map: stage events before the range's end */
    bool compare;           /* map: the previous period too */
    bool named[FUNNEL_STEPS_MAX];
    char save[128];         /* save_segment key, or "" */
} fconf_t;

typedef struct fgroup {
    uint64_t users[FUNNEL_STEPS_MAX + 1];   /* level >= k */
    uint64_t stalled[FUNNEL_STEPS_MAX + 1]; /* level == k (map) */
    ivec_t dur[FUNNEL_STEPS_MAX + 1];       /* step k's time from the previous (or first) */
    ivec_t stall[FUNNEL_STEPS_MAX + 1];     /* map: hi - t(stage k), level == k */
} fgroup_t;

typedef struct facc {
    gtab_t t;
    ivec_t dropped;     /* user ids (as int64) */
    uint64_t *moves;    /* map: (from + 1) * (n + 1) + (to + 1) */
} facc_t;

static int fn_parse_steps(query_t *q, const wm_json_t *req, const char *key)
{
    fconf_t *c = q->conf;
    wm_query_error_t *err = kerr(q);
    const wm_json_t *steps = member(req, key);
    if (!steps || steps->type != WM_JSON_ARRAY || steps->len < 2 || steps->len > FUNNEL_STEPS_MAX)
        return q_fail(err, key, "2 to %u event specs", FUNNEL_STEPS_MAX);
    uint32_t i = 0;
    for (const wm_json_t *s = steps->u.child; s; s = s->next, i++) {
        char path[64];
        snprintf(path, sizeof path, "%s[%u]", key, i);
        uint32_t idx;
        int rc = q_spec(q, s, path, &idx, err);
        if (rc)
            return rc;
        c->named[i] = wm_json_str(member(s, "name")) != NULL;
    }
    c->n = i;
    return 0;
}

static int fn_parse(query_t *q, const wm_json_t *req)
{
    fconf_t *c = q->conf;
    wm_query_error_t *err = kerr(q);
    int rc = fn_parse_steps(q, req, "steps");
    if (rc)
        return rc;
    if ((rc = q_duration(q, req, "window", "7d", &c->window, err)))
        return rc;
    const char *o = wm_json_str(member(req, "order"));
    c->order = !member(req, "order") ? O_SEQUENTIAL : !o ? -1 : !strcmp(o, "sequential") ? O_SEQUENTIAL
                                                            : !strcmp(o, "strict")       ? O_STRICT
                                                            : !strcmp(o, "any")          ? O_ANY
                                                                                         : -1;
    if (c->order < 0)
        return q_fail(err, "order", "sequential, strict or any");
    int64_t d;
    if ((rc = int_member(req, "dropped_at", 0, 1, c->n, &d, err, "a step number")))
        return rc;
    c->dropped_at = (uint32_t)d;
    const wm_json_t *ss = member(req, "save_segment");
    if (ss && (ss->type != WM_JSON_STRING || !ss->len))
        return q_fail(err, "save_segment", "a segment key");
    if (ss && !c->dropped_at)
        return q_fail(err, "save_segment", "needs dropped_at (the step whose drop-offs are saved)");
    if (ss && !q->src->save)
        return q_fail(err, "save_segment", "saving a segment needs the server's audience store");
    if (ss && ss->len >= sizeof c->save)
        return q_fail(err, "save_segment", "a segment key of at most %zu bytes", sizeof c->save - 1);
    if (ss)
        memcpy(c->save, ss->u.str, ss->len + 1);
    q->all_rows = c->order == O_STRICT;
    q->need_hi = q->hi + c->window + 1;
    return 0;
}

static int mp_parse(query_t *q, const wm_json_t *req)
{
    fconf_t *c = q->conf;
    wm_query_error_t *err = kerr(q);
    c->map = true;
    c->order = O_SEQUENTIAL;
    int rc = no_breakdown(q, "map");
    if (!rc)
        rc = fn_parse_steps(q, req, "stages");
    if (!rc)
        rc = q_duration(q, req, "window", "30d", &c->window, err);
    if (rc)
        return rc;
    const wm_json_t *cmp = member(req, "compare");
    if (cmp && cmp->type != WM_JSON_NULL) {
        if (!wm_json_str(cmp) || strcmp(wm_json_str(cmp), "previous"))
            return q_fail(err, "compare", "\"previous\" (the period of the same length before from)");
        c->compare = true;
        q->need_lo = q->lo - q->len;
    }
    q->need_hi = q->hi;
    return 0;
}

static void *fn_new(query_t *q)
{
    fconf_t *c = q->conf;
    facc_t *a = wm_calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->t.size = sizeof(fgroup_t);
    if (c->map && !(a->moves = wm_calloc((size_t)(c->n + 1) * (c->n + 1), sizeof *a->moves))) {
        wm_free(a);
        return NULL;
    }
    return a;
}

static void fn_free(query_t *q, void *acc)
{
    facc_t *a = acc;
    for (uint32_t g = 0; g < a->t.n; g++) {
        fgroup_t *fg = a->t.g[g];
        if (!fg)
            continue;
        for (int k = 0; k <= FUNNEL_STEPS_MAX; k++) {
            ivec_free(q, &fg->dur[k]);
            ivec_free(q, &fg->stall[k]);
        }
        wm_free(fg);
    }
    wm_free(a->t.g);
    ivec_free(q, &a->dropped);
    wm_free(a->moves);
    wm_free(a);
}

/* The customer's chain: the largest level over chains starting in
 * [lo, hi), at the earliest start reaching it; steps before `before`.
 * Sequential and any order: a chain that ran out of rows (or reached
 * `before`) ends the search, since every later start sees a subset of those
 * rows and reaches no further (the greedy steps of a later start are no
 * earlier). In sequential order the same holds when no row of the missing
 * step follows the last step at all. Strict order has no such bound: an
 * unrelated event breaks one chain and not the next. */
static uint32_t fn_chain(const fconf_t *c, const qrow_t *rows, uint32_t n, int64_t lo, int64_t hi, int64_t before,
                         int64_t *times, uint32_t *start)
{
    uint32_t best = 0;
    const uint32_t steps = c->n;
    const int64_t w = c->window;
    int64_t t[FUNNEL_STEPS_MAX];
    uint32_t next[FUNNEL_STEPS_MAX] = {0};
    for (uint32_t i = 0; i < n && best < steps; i++) {
        const qrow_t *r = &rows[i];
        if (!(r->mask & 1) || r->time < lo || r->time >= hi)
            continue;
        uint32_t lvl = 1, j = i + 1;
        const int64_t t0 = r->time, end = t0 + w < before - 1 ? t0 + w : before - 1;   /* last time allowed */
        t[0] = t0;
        if (c->order == O_ANY) {
            bool found[FUNNEL_STEPS_MAX] = {false};
            uint32_t left = steps - 1;
            for (; j < n && left; j++) {
                if (rows[j].time > end)
                    break;
                for (uint32_t k = 1; k < steps; k++)
                    if (!found[k] && (rows[j].mask >> k & 1)) {
                        found[k] = true;
                        t[k] = rows[j].time;
                        left--;
                    }
            }
            while (lvl < steps && found[lvl])
                lvl++;
        } else if (c->order == O_STRICT) {
            for (; j < n && lvl < steps; j++) {
                if (rows[j].time > end)
                    break;
                if (rows[j].mask >> lvl & 1)
                    t[lvl++] = rows[j].time;
                else
                    break;
            }
        } else {
            /* each step is the first row of its kind after the previous
             * step; those rows only move forward as the start does, so
             * next[k] (the first row of step k not before the last search)
             * is where the search for step k resumes */
            uint32_t prev = i;
            for (; lvl < steps; lvl++) {
                uint32_t k = next[lvl] > prev ? next[lvl] : prev + 1;
                while (k < n && !(rows[k].mask >> lvl & 1))
                    k++;
                next[lvl] = k;
                j = k;
                if (k == n || rows[k].time > end)
                    break;
                t[lvl] = rows[k].time;
                prev = k;
            }
        }
        if (lvl > best) {
            best = lvl;
            *start = i;
            memcpy(times, t, lvl * sizeof *t);
        }
        if (c->order != O_STRICT && lvl < steps && (j == n || rows[j].time >= before))
            break;
    }
    return best;
}

static int fn_user(query_t *q, void *acc, uint64_t user, qrow_t *rows, uint32_t n)
{
    facc_t *a = acc;
    fconf_t *c = q->conf;
    int64_t t[FUNNEL_STEPS_MAX];
    uint32_t start = 0;
    int64_t before = c->map ? q->hi : INT64_MAX;
    uint32_t lvl = fn_chain(c, rows, n, q->lo, q->hi, before, t, &start);
    int rc = 0;
    if (c->map && c->compare) {
        int64_t pt[FUNNEL_STEPS_MAX];
        uint32_t ps = 0;
        uint32_t plvl = fn_chain(c, rows, n, q->lo - q->len, q->lo, q->lo, pt, &ps);
        if (plvl || lvl)
            a->moves[plvl * (c->n + 1) + lvl]++;
    }
    if (!lvl)
        return 0;
    fgroup_t *g = gtab_get(q, &a->t, q_group(q, rows[start].grp));
    if (!g)
        return WM_ENOMEM;
    for (uint32_t k = 1; k <= lvl; k++) {
        g->users[k]++;
        if (k >= 2 && (rc = ivec_push(q, &g->dur[k], t[k - 1] - (c->order == O_ANY ? t[0] : t[k - 2]))))
            return rc;
    }
    if (c->map) {
        g->stalled[lvl]++;
        if ((rc = ivec_push(q, &g->stall[lvl], q->hi - t[lvl - 1])))
            return rc;
    }
    if (c->dropped_at && lvl == c->dropped_at)
        rc = ivec_push(q, &a->dropped, (int64_t)user);
    return rc;
}

static int fn_merge(query_t *q, void *dst, void *src)
{
    facc_t *d = dst, *s = src;
    fconf_t *c = q->conf;
    int rc = 0;
    for (uint32_t g = 0; g < s->t.n && !rc; g++) {
        fgroup_t *sg = s->t.g[g];
        if (!sg)
            continue;
        fgroup_t *dg = gtab_get(q, &d->t, g);
        if (!dg)
            return WM_ENOMEM;
        for (int k = 0; k <= FUNNEL_STEPS_MAX && !rc; k++) {
            dg->users[k] += sg->users[k];
            dg->stalled[k] += sg->stalled[k];
            if (!(rc = ivec_cat(q, &dg->dur[k], &sg->dur[k])))
                rc = ivec_cat(q, &dg->stall[k], &sg->stall[k]);
        }
    }
    if (!rc)
        rc = ivec_cat(q, &d->dropped, &s->dropped);
    if (c->map)
        for (uint32_t i = 0; i < (c->n + 1) * (c->n + 1); i++)
            d->moves[i] += s->moves[i];
    return rc;
}

static void fn_figures(query_t *q, void *acc, double *fig, uint32_t n)
{
    facc_t *a = acc;
    for (uint32_t g = 0; g < n && g < a->t.n; g++) {
        fgroup_t *fg = a->t.g[g];
        if (fg && fg->users[1])
            fig[g] = (double)fg->users[1];
    }
}

/* Adds every group of the table (or one) into a combined record. */
static int fn_combine(query_t *q, facc_t *a, int32_t only, fgroup_t *out)
{
    memset(out, 0, sizeof *out);
    for (uint32_t g = 0; g < a->t.n; g++) {
        fgroup_t *fg = a->t.g[g];
        if (!fg || (only >= 0 && g != (uint32_t)only))
            continue;
        for (int k = 0; k <= FUNNEL_STEPS_MAX; k++) {
            out->users[k] += fg->users[k];
            out->stalled[k] += fg->stalled[k];
            int rc = ivec_cat(q, &out->dur[k], &fg->dur[k]);
            if (!rc)
                rc = ivec_cat(q, &out->stall[k], &fg->stall[k]);
            if (rc)
                return rc;
        }
    }
    return 0;
}

static void fn_release(query_t *q, fgroup_t *g)
{
    for (int k = 0; k <= FUNNEL_STEPS_MAX; k++) {
        ivec_free(q, &g->dur[k]);
        ivec_free(q, &g->stall[k]);
    }
}

static double ratio(uint64_t a, uint64_t b)
{
    return b ? (double)a / (double)b : 0.0;
}

static void write_ratio(wm_buf_t *out, double r)
{
    if (r == 0.0 || r == 1.0)
        wm_buf_puts(out, r == 0.0 ? "0.0" : "1.0");
    else
        wm_buf_printf(out, "%.17g", r);
}

static void fn_write_steps(query_t *q, fgroup_t *g, wm_buf_t *out)
{
    fconf_t *c = q->conf;
    wm_buf_putc(out, '[');
    for (uint32_t k = 1; k <= c->n; k++) {
        if (k > 1)
            wm_buf_putc(out, ',');
        wm_buf_printf(out, "{\"step\":%u,\"name\":", k);
        const char *nm = q->specs[k - 1].title;
        wm_buf_json_str(out, nm, strlen(nm));
        wm_buf_printf(out, ",\"users\":%" PRIu64 ",\"conversion\":", g->users[k]);
        write_ratio(out, ratio(g->users[k], g->users[1]));
        wm_buf_puts(out, ",\"step_conversion\":");
        write_ratio(out, ratio(g->users[k], g->users[k > 1 ? k - 1 : 1]));
        wm_buf_puts(out, ",\"median_ms\":");
        if (k == 1)
            wm_buf_puts(out, "null");
        else
            write_quant(out, &g->dur[k], 0.5);
        wm_buf_puts(out, ",\"p90_ms\":");
        if (k == 1)
            wm_buf_puts(out, "null");
        else
            write_quant(out, &g->dur[k], 0.9);
        wm_buf_putc(out, '}');
    }
    wm_buf_putc(out, ']');
}

static int fn_answer(query_t *q, void *acc, wm_buf_t *out)
{
    facc_t *a = acc;
    fconf_t *c = q->conf;
    fgroup_t all;
    int rc = fn_combine(q, a, -1, &all);
    if (rc)
        return rc;
    wm_buf_puts(out, "{\"steps\":");
    fn_write_steps(q, &all, out);
    fn_release(q, &all);
    wm_buf_puts(out, ",\"groups\":[");
    if (q->bd != QBD_NONE) {
        uint32_t groups[128];
        uint32_t ng = answer_groups(q, groups, 128, &a->t);
        for (uint32_t i = 0; i < ng; i++) {
            fgroup_t one;
            if ((rc = fn_combine(q, a, (int32_t)groups[i], &one)))
                return rc;
            if (i)
                wm_buf_putc(out, ',');
            wm_buf_puts(out, "{\"group\":");
            q_write_group(q, out, groups[i]);
            wm_buf_puts(out, ",\"steps\":");
            fn_write_steps(q, &one, out);
            wm_buf_putc(out, '}');
            fn_release(q, &one);
        }
    }
    wm_buf_putc(out, ']');
    if (c->dropped_at) {
        q_sort_i64(a->dropped.v, a->dropped.n);
        wm_buf_puts(out, ",\"dropped\":[");
        for (uint32_t i = 0; i < a->dropped.n && i < DROPPED_MAX; i++)
            wm_buf_printf(out, "%s%" PRIu64, i ? "," : "", (uint64_t)a->dropped.v[i]);
        wm_buf_printf(out, "],\"dropped_total\":%u", a->dropped.n);
        if (c->save[0]) {
            /* ids ascending and distinct: a customer has one level */
            rc = q->src->save(q->src->save_ctx, c->save, (const uint64_t *)a->dropped.v, a->dropped.n);
            if (rc)
                return rc;
            wm_buf_puts(out, ",\"saved_segment\":");
            wm_buf_json_str(out, c->save, strlen(c->save));
        }
    }
    wm_buf_putc(out, '}');
    return out->err;
}

static int mp_answer(query_t *q, void *acc, wm_buf_t *out)
{
    facc_t *a = acc;
    fconf_t *c = q->conf;
    fgroup_t g;
    int rc = fn_combine(q, a, -1, &g);
    if (rc)
        return rc;
    wm_buf_puts(out, "{\"stages\":[");
    for (uint32_t k = 1; k <= c->n; k++) {
        if (k > 1)
            wm_buf_putc(out, ',');
        wm_buf_printf(out, "{\"stage\":%u", k - 1);
        if (c->named[k - 1]) {
            wm_buf_puts(out, ",\"name\":");
            wm_buf_json_str(out, q->specs[k - 1].title, strlen(q->specs[k - 1].title));
        }
        wm_buf_printf(out, ",\"users\":%" PRIu64 ",\"conversion\":", g.users[k]);
        if (k == c->n)
            wm_buf_puts(out, "null");
        else
            write_ratio(out, ratio(g.users[k + 1], g.users[k]));
        wm_buf_puts(out, ",\"median_ms\":");
        if (k == 1)
            wm_buf_puts(out, "null");
        else
            write_quant(out, &g.dur[k], 0.5);
        wm_buf_printf(out, ",\"stalled\":%" PRIu64 ",\"stalled_median_ms\":", g.stalled[k]);
        write_quant(out, &g.stall[k], 0.5);
        wm_buf_putc(out, '}');
    }
    wm_buf_putc(out, ']');
    fn_release(q, &g);
    if (c->compare) {
        wm_buf_puts(out, ",\"moves\":[");
        bool first = true;
        for (uint32_t f = 0; f <= c->n; f++)
            for (uint32_t t = 0; t <= c->n; t++) {
                uint64_t v = a->moves[f * (c->n + 1) + t];
                if (!v)
                    continue;
                wm_buf_printf(out, "%s{\"from\":%d,\"to\":%d,\"users\":%" PRIu64 "}", first ? "" : ",", (int)f - 1,
                              (int)t - 1, v);
                first = false;
            }
        wm_buf_putc(out, ']');
    }
    wm_buf_putc(out, '}');
    return out->err;
}

const qkernel_t wm__qk_funnel = {
    .kind = "funnel", .conf_size = sizeof(fconf_t), .parse = fn_parse, .acc_new = fn_new, .acc_free = fn_free,
    .user = fn_user, .merge = fn_merge, .figures = fn_figures, .answer = fn_answer,
};

const qkernel_t wm__qk_map = {
    .kind = "map", .conf_size = sizeof(fconf_t), .parse = mp_parse, .acc_new = fn_new, .acc_free = fn_free,
    .user = fn_user, .merge = fn_merge, .figures = fn_figures, .answer = mp_answer,
};

/* ========================================================= retention */

enum { P_DAY, P_WEEK, P_MONTH };

typedef struct rconf {
    kconf_t base;
    int period;
    uint32_t N;
    bool unbounded;
    int64_t p0, np;     /* first cohort period, cohort periods in the range */
} rconf_t;

typedef struct rgroup {
    uint64_t *users;        /* per cohort */
    uint64_t *retained;     /* per cohort x N */
} rgroup_t;

typedef struct racc {
    gtab_t t;
} racc_t;

static int runit(const rconf_t *c)
{
    return c->period == P_DAY ? I_DAY : c->period == P_WEEK ? I_WEEK : I_MONTH;
}

static int64_t rperiod(const query_t *q, const rconf_t *c, int64_t t)
{
    return period_of(q, runit(c), t);
}

static int rt_parse(query_t *q, const wm_json_t *req)
{
    rconf_t *c = q->conf;
    wm_query_error_t *err = kerr(q);
    uint32_t i0, i1;
    int rc = q_spec(q, member(req, "start"), "start", &i0, err);
    if (!rc)
        rc = q_spec(q, member(req, "return"), "return", &i1, err);
    if (rc)
        return rc;
    const char *p = wm_json_str(member(req, "period"));
    c->period = !member(req, "period") ? P_DAY : !p ? -1 : !strcmp(p, "day") ? P_DAY : !strcmp(p, "week") ? P_WEEK
                                                      : !strcmp(p, "month")                         ? P_MONTH
                                                                                                    : -1;
    if (c->period < 0)
        return q_fail(err, "period", "day, week or month");
    int64_t n;
    if ((rc = int_member(req, "periods", 7, 1, 60, &n, err, "the periods followed")))
        return rc;
    c->N = (uint32_t)n;
    const char *m = wm_json_str(member(req, "mode"));
    if (member(req, "mode") && (!m || (strcmp(m, "exact") && strcmp(m, "unbounded"))))
        return q_fail(err, "mode", "exact or unbounded");
    c->unbounded = m && !strcmp(m, "unbounded");
    c->p0 = rperiod(q, c, q->lo);
    c->np = rperiod(q, c, q->hi - 1) - c->p0 + 1;
    int64_t span = c->period == P_DAY ? DAY_MS : c->period == P_WEEK ? 7 * DAY_MS : 31 * DAY_MS;
    q->need_hi = q->hi + (int64_t)(c->N + 1) * span;
    return 0;
}

static void *rt_new(query_t *q)
{
    racc_t *a = wm_calloc(1, sizeof *a);
    if (a)
        a->t.size = sizeof(rgroup_t);
    return a;
}

static void rt_free(query_t *q, void *acc)
{
    racc_t *a = acc;
    for (uint32_t g = 0; g < a->t.n; g++) {
        rgroup_t *rg = a->t.g[g];
        if (rg) {
            wm_free(rg->users);
            wm_free(rg->retained);
            wm_free(rg);
        }
    }
    wm_free(a->t.g);
    wm_free(a);
}

static rgroup_t *rt_group(query_t *q, racc_t *a, uint32_t g)
{
    rconf_t *c = q->conf;
    rgroup_t *rg = gtab_get(q, &a->t, g);
    if (rg && !rg->users) {
        size_t bytes = (size_t)c->np * (c->N + 1) * sizeof(uint64_t);
        if (q_mem(q, (int64_t)bytes) || !(rg->users = wm_calloc((size_t)c->np, sizeof(uint64_t))) ||
            !(rg->retained = wm_calloc((size_t)c->np * c->N, sizeof(uint64_t))))
            return NULL;
    }
    return rg;
}

static int rt_user(query_t *q, void *acc, uint64_t user, qrow_t *rows, uint32_t n)
{
    racc_t *a = acc;
    rconf_t *c = q->conf;
    uint32_t first = UINT32_MAX;
    for (uint32_t i = 0; i < n && first == UINT32_MAX; i++)
        if ((rows[i].mask & 1) && rows[i].time >= q->lo && rows[i].time < q->hi)
            first = i;
    if (first == UINT32_MAX)
        return 0;
    int64_t cohort = rperiod(q, c, rows[first].time);
    bool back[61] = {false};
    for (uint32_t i = 0; i < n; i++)
        if (rows[i].mask & 2) {
            int64_t k = rperiod(q, c, rows[i].time) - cohort;
            if (k >= 1 && k <= c->N)
                back[k] = true;
        }
    rgroup_t *g = rt_group(q, a, q_group(q, rows[first].grp));
    if (!g)
        return WM_ENOMEM;
    int64_t ci = cohort - c->p0;
    g->users[ci]++;
    bool later = false;
    for (uint32_t k = c->N; k >= 1; k--) {
        later |= back[k];
        if (c->unbounded ? later : back[k])
            g->retained[ci * c->N + (k - 1)]++;
    }
    return 0;
}

static int rt_merge(query_t *q, void *dst, void *src)
{
    racc_t *d = dst, *s = src;
    rconf_t *c = q->conf;
    for (uint32_t g = 0; g < s->t.n; g++) {
        rgroup_t *sg = s->t.g[g];
        if (!sg || !sg->users)
            continue;
        rgroup_t *dg = rt_group(q, d, g);
        if (!dg)
            return WM_ENOMEM;
        for (int64_t i = 0; i < c->np; i++)
            dg->users[i] += sg->users[i];
        for (int64_t i = 0; i < c->np * c->N; i++)
            dg->retained[i] += sg->retained[i];
    }
    return 0;
}

static void rt_figures(query_t *q, void *acc, double *fig, uint32_t n)
{
    racc_t *a = acc;
    rconf_t *c = q->conf;
    for (uint32_t g = 0; g < n && g < a->t.n; g++) {
        rgroup_t *rg = a->t.g[g];
        if (!rg || !rg->users)
            continue;
        uint64_t u = 0;
        for (int64_t i = 0; i < c->np; i++)
            u += rg->users[i];
        if (u)
            fig[g] = (double)u;
    }
}

/* cohorts and total of the groups in gs (all of them when ng == 0) */
static void rt_block(query_t *q, racc_t *a, const uint32_t *gs, uint32_t ng, wm_buf_t *out)
{
    rconf_t *c = q->conf;
    uint64_t tu = 0, tr[61] = {0};
    wm_buf_puts(out, "\"cohorts\":[");
    bool first = true;
    for (int64_t ci = 0; ci < c->np; ci++) {
        uint64_t u = 0, r[61] = {0};
        for (uint32_t g = 0; g < a->t.n; g++) {
            bool in = !ng;
            for (uint32_t i = 0; i < ng && !in; i++)
                in = gs[i] == g;
            rgroup_t *rg = a->t.g[g];
            if (!in || !rg || !rg->users)
                continue;
            u += rg->users[ci];
            for (uint32_t k = 0; k < c->N; k++)
                r[k] += rg->retained[ci * c->N + k];
        }
        if (!u)
            continue;
        char label[16];
        period_label(runit(c), c->p0 + ci, label, sizeof label);
        wm_buf_printf(out, "%s{\"cohort\":\"%s\",\"users\":%" PRIu64 ",\"retained\":[", first ? "" : ",", label, u);
        first = false;
        for (uint32_t k = 0; k < c->N; k++) {
            wm_buf_printf(out, "%s%" PRIu64, k ? "," : "", r[k]);
            tr[k] += r[k];
        }
        wm_buf_puts(out, "]}");
        tu += u;
    }
    wm_buf_printf(out, "],\"total\":{\"users\":%" PRIu64 ",\"retained\":[", tu);
    for (uint32_t k = 0; k < c->N; k++)
        wm_buf_printf(out, "%s%" PRIu64, k ? "," : "", tr[k]);
    wm_buf_puts(out, "]}");
}

static int rt_answer(query_t *q, void *acc, wm_buf_t *out)
{
    racc_t *a = acc;
    wm_buf_putc(out, '{');
    rt_block(q, a, NULL, 0, out);
    if (q->bd != QBD_NONE) {
        uint32_t groups[128];
        uint32_t ng = answer_groups(q, groups, 128, &a->t);
        wm_buf_puts(out, ",\"groups\":[");
        for (uint32_t i = 0; i < ng; i++) {
            wm_buf_puts(out, i ? ",{\"group\":" : "{\"group\":");
            q_write_group(q, out, groups[i]);
            wm_buf_putc(out, ',');
            rt_block(q, a, &groups[i], 1, out);
            wm_buf_putc(out, '}');
        }
        wm_buf_putc(out, ']');
    }
    wm_buf_putc(out, '}');
    return out->err;
}

const qkernel_t wm__qk_retention = {
    .kind = "retention", .conf_size = sizeof(rconf_t), .parse = rt_parse, .acc_new = rt_new, .acc_free = rt_free,
    .user = rt_user, .merge = rt_merge, .figures = rt_figures, .answer = rt_answer,
};

/* ============================================================= paths */

#define PATH_DEPTH_MAX 10
#define PATH_NODES_TOP 20

typedef struct pentry {
    uint32_t names[PATH_DEPTH_MAX];
    uint32_t len;
    uint64_t count, users, stamp;
} pentry_t;

typedef struct pconf {
    kconf_t base;
    bool end;
    uint32_t D;
    int64_t gap;
    bool per_user;
    bool complete_only;
    uint32_t limit;
} pconf_t;

typedef struct pacc {
    pentry_t *e;        /* open addressing on the names; len 0 = empty */
    uint32_t n, cap;
    uint64_t ustamp;
} pacc_t;

static int ph_parse(query_t *q, const wm_json_t *req)
{
    pconf_t *c = q->conf;
    wm_query_error_t *err = kerr(q);
    const wm_json_t *st = member(req, "start"), *en = member(req, "end");
    if (!st == !en)
        return q_fail(err, st ? "end" : "start", "exactly one of start and end");
    if (q->bd != QBD_NONE)
        return q_fail(err, "breakdown", "paths queries have no breakdown");
    c->end = en != NULL;
    uint32_t idx;
    int rc = q_spec(q, st ? st : en, st ? "start" : "end", &idx, err);
    int64_t v;
    if (!rc)
        rc = int_member(req, "depth", 5, 2, PATH_DEPTH_MAX, &v, err, "the names of a path");
    if (rc)
        return rc;
    c->D = (uint32_t)v;
    if ((rc = q_duration(q, req, "session_gap", "30m", &c->gap, err)))
        return rc;
    const char *u = wm_json_str(member(req, "unit"));
    if (member(req, "unit") && (!u || (strcmp(u, "session") && strcmp(u, "user"))))
        return q_fail(err, "unit", "session or user");
    c->per_user = u && !strcmp(u, "user");
    const wm_json_t *co = member(req, "complete_only");
    if (co && co->type != WM_JSON_TRUE && co->type != WM_JSON_FALSE)
        return q_fail(err, "complete_only", "true or false");
    c->complete_only = co && co->type == WM_JSON_TRUE;
    if ((rc = int_member(req, "limit", 10, 1, 1000, &v, err, "the top paths answered")))
        return rc;
    c->limit = (uint32_t)v;
    q->all_rows = true;
    q->need_lo = INT64_MIN / 4;
    q->need_hi = INT64_MAX / 4;
    return 0;
}

static void *ph_new(query_t *q)
{
    return wm_calloc(1, sizeof(pacc_t));
}

static void ph_free(query_t *q, void *acc)
{
    pacc_t *a = acc;
    q_mem(q, -(int64_t)a->cap * (int64_t)sizeof *a->e);
    wm_free(a->e);
    wm_free(a);
}

static uint32_t ph_hash(const uint32_t *names, uint32_t len)
{
    return (uint32_t)wm_hash64(names, len * sizeof *names, len);
}

static pentry_t *ph_slot(pacc_t *a, const uint32_t *names, uint32_t len)
{
    uint32_t i = ph_hash(names, len) & (a->cap - 1);
    while (a->e[i].len && !(a->e[i].len == len && !memcmp(a->e[i].names, names, len * sizeof *names)))
        i = (i + 1) & (a->cap - 1);
    return &a->e[i];
}

static pentry_t *ph_get(query_t *q, pacc_t *a, const uint32_t *names, uint32_t len)
{
    if ((a->n + 1) * 2 > a->cap) {
        uint32_t nc = a->cap ? a->cap * 2 : 1024;
        pentry_t *old = a->e;
        uint32_t ocap = a->cap;
        if (q_mem(q, (int64_t)(nc - ocap) * (int64_t)sizeof *old) || !(a->e = wm_calloc(nc, sizeof *old))) {
            a->e = old;
            return NULL;
        }
        a->cap = nc;
        for (uint32_t i = 0; i < ocap; i++)
            if (old[i].len)
                *ph_slot(a, old[i].names, old[i].len) = old[i];
        wm_free(old);
    }
    pentry_t *e = ph_slot(a, names, len);
    if (!e->len) {
        memcpy(e->names, names, len * sizeof *names);
        e->len = len;
        a->n++;
    }
    return e;
}

static int ph_user(query_t *q, void *acc, uint64_t user, qrow_t *rows, uint32_t n)
{
    pacc_t *a = acc;
    pconf_t *c = q->conf;
    uint64_t stamp = ++a->ustamp;
    uint32_t sess_start = 0;
    bool anchored = false;      /* this session (or customer) has its anchor */
    for (uint32_t i = 0; i < n; i++) {
        if (i && c->gap > 0 && rows[i].time - rows[i - 1].time > c->gap) {
            sess_start = i;
            if (!c->per_user)
                anchored = false;
        }
        if (anchored || !(rows[i].mask & 1) || rows[i].time < q->lo || rows[i].time >= q->hi)
            continue;
        anchored = true;
        uint32_t names[PATH_DEPTH_MAX], len = 0;
        if (!c->end) {
            for (uint32_t j = i; j < n && len < c->D; j++) {
                if (j > i && c->gap > 0 && rows[j].time - rows[j - 1].time > c->gap)
                    break;
                names[len++] = rows[j].name;
            }
        } else {
            uint32_t from = i + 1 >= c->D ? i + 1 - c->D : 0;
            if (from < sess_start)
                from = sess_start;
            for (uint32_t j = from; j <= i; j++)
                names[len++] = rows[j].name;
        }
        if (c->complete_only && len < c->D)
            continue;
        pentry_t *e = ph_get(q, a, names, len);
        if (!e)
            return WM_ENOMEM;
        e->count++;
        if (e->stamp != stamp) {
            e->stamp = stamp;
            e->users++;
        }
    }
    return 0;
}

static int ph_merge(query_t *q, void *dst, void *src)
{
    pacc_t *d = dst, *s = src;
    for (uint32_t i = 0; i < s->cap; i++) {
        if (!s->e[i].len)
            continue;
        pentry_t *e = ph_get(q, d, s->e[i].names, s->e[i].len);
        if (!e)
            return WM_ENOMEM;
        e->count += s->e[i].count;
        e->users += s->e[i].users;
    }
    return 0;
}

static query_t *g_sort_q;   /* qsort has no context argument */

static int name_cmp(query_t *q, uint32_t x, uint32_t y)
{
    if (x == y)
        return 0;
    uint32_t lx, ly;
    const char *a = q_str(&q->names, x, &lx), *b = q_str(&q->names, y, &ly);
    uint32_t n = lx < ly ? lx : ly;
    int c = memcmp(a, b, n);
    return c ? c : (lx > ly) - (lx < ly);
}

static int cmp_path(const void *pa, const void *pb)
{
    const pentry_t *x = *(pentry_t *const *)pa, *y = *(pentry_t *const *)pb;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    for (uint32_t i = 0; i < x->len && i < y->len; i++) {
        int c = name_cmp(g_sort_q, x->names[i], y->names[i]);
        if (c)
            return c;
    }
    return (x->len > y->len) - (x->len < y->len);
}

typedef struct pnode {
    uint32_t depth, name;   /* name UINT32_MAX: $other */
    uint32_t to;            /* links: target name */
    uint64_t count;
} pnode_t;

static int cmp_node_rank(const void *pa, const void *pb)
{
    const pnode_t *x = pa, *y = pb;
    if (x->depth != y->depth)
        return x->depth < y->depth ? -1 : 1;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return name_cmp(g_sort_q, x->name, y->name);
}

static int name_cmp_o(uint32_t x, uint32_t y)
{
    bool ox = x == UINT32_MAX, oy = y == UINT32_MAX;
    if (ox || oy)
        return ox - oy;
    return name_cmp(g_sort_q, x, y);
}

static int cmp_node_out(const void *pa, const void *pb)
{
    const pnode_t *x = pa, *y = pb;
    if (x->depth != y->depth)
        return x->depth < y->depth ? -1 : 1;
    bool ox = x->name == UINT32_MAX, oy = y->name == UINT32_MAX;
    if (ox != oy)
        return ox - oy;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return name_cmp_o(x->name, y->name);
}

static int cmp_link_out(const void *pa, const void *pb)
{
    const pnode_t *x = pa, *y = pb;
    if (x->depth != y->depth)
        return x->depth < y->depth ? -1 : 1;
    bool ox = x->name == UINT32_MAX, oy = y->name == UINT32_MAX;
    if (ox != oy)
        return ox - oy;
    ox = x->to == UINT32_MAX, oy = y->to == UINT32_MAX;
    if (ox != oy)
        return ox - oy;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    int c = name_cmp_o(x->name, y->name);
    return c ? c : name_cmp_o(x->to, y->to);
}

static void write_name(query_t *q, wm_buf_t *out, uint32_t id)
{
    if (id == UINT32_MAX) {
        wm_buf_puts(out, "\"$other\"");
        return;
    }
    uint32_t len;
    const char *s = q_str(&q->names, id, &len);
    wm_buf_json_str(out, s, len);
}

/* counts of (depth, name) or (depth, name, to) pairs, merged in a small hash */
typedef struct pcount {
    pnode_t *v;
    uint32_t n, cap;
} pcount_t;

static int pcount_add(pcount_t *pc, uint32_t depth, uint32_t name, uint32_t to, uint64_t count)
{
    for (uint32_t i = 0; i < pc->n; i++)   /* few distinct names per depth */
        if (pc->v[i].depth == depth && pc->v[i].name == name && pc->v[i].to == to) {
            pc->v[i].count += count;
            return 0;
        }
    if (wm__an_grow((void **)&pc->v, &pc->cap, pc->n + 1, sizeof *pc->v))
        return WM_ENOMEM;
    pc->v[pc->n++] = (pnode_t){.depth = depth, .name = name, .to = to, .count = count};
    return 0;
}

static int ph_answer(query_t *q, void *acc, wm_buf_t *out)
{
    pacc_t *a = acc;
    pconf_t *c = q->conf;
    g_sort_q = q;
    pentry_t **all = wm_malloc((a->n + 1) * sizeof *all);
    if (!all)
        return WM_ENOMEM;
    uint32_t n = 0;
    for (uint32_t i = 0; i < a->cap; i++)
        if (a->e[i].len)
            all[n++] = &a->e[i];
    qsort(all, n, sizeof *all, cmp_path);
    wm_buf_puts(out, "{\"paths\":[");
    for (uint32_t i = 0; i < n && i < c->limit; i++) {
        wm_buf_puts(out, i ? ",{\"path\":[" : "{\"path\":[");
        for (uint32_t k = 0; k < all[i]->len; k++) {
            if (k)
                wm_buf_putc(out, ',');
            write_name(q, out, all[i]->names[k]);
        }
        wm_buf_printf(out, "],\"count\":%" PRIu64 ",\"users\":%" PRIu64 "}", all[i]->count, all[i]->users);
    }
    /* nodes: per depth, the 20 most frequent names, the rest $other */
    pcount_t nodes = {0}, links = {0};
    int rc = 0;
    for (uint32_t i = 0; i < n && !rc; i++)
        for (uint32_t k = 0; k < all[i]->len && !rc; k++)
            rc = pcount_add(&nodes, k, all[i]->names[k], 0, all[i]->count);
    qsort(nodes.v, nodes.n, sizeof *nodes.v, cmp_node_rank);
    /* keep[depth] = set of kept names */
    wm_strmap_t kept;
    wm_strmap_init(&kept);
    for (uint32_t i = 0, rank = 0; i < nodes.n && !rc; i++) {
        rank = i && nodes.v[i].depth == nodes.v[i - 1].depth ? rank + 1 : 0;
        if (rank < PATH_NODES_TOP) {
            uint32_t key[2] = {nodes.v[i].depth, nodes.v[i].name};
            rc = wm_strmap_put(&kept, key, sizeof key, 1);
        }
    }
#define MAPNAME(d, nm) (wm_strmap_get(&kept, (uint32_t[2]){(d), (nm)}, 8, NULL) ? (nm) : UINT32_MAX)
    pcount_t mnodes = {0};
    for (uint32_t i = 0; i < nodes.n && !rc; i++)
        rc = pcount_add(&mnodes, nodes.v[i].depth, MAPNAME(nodes.v[i].depth, nodes.v[i].name), 0, nodes.v[i].count);
    for (uint32_t i = 0; i < n && !rc; i++)
        for (uint32_t k = 0; k + 1 < all[i]->len && !rc; k++)
            rc = pcount_add(&links, k, MAPNAME(k, all[i]->names[k]), MAPNAME(k + 1, all[i]->names[k + 1]),
                            all[i]->count);
#undef MAPNAME
    qsort(mnodes.v, mnodes.n, sizeof *mnodes.v, cmp_node_out);
    qsort(links.v, links.n, sizeof *links.v, cmp_link_out);
    wm_buf_puts(out, "],\"nodes\":[");
    for (uint32_t i = 0; i < mnodes.n; i++) {
        wm_buf_printf(out, "%s{\"depth\":%u,\"name\":", i ? "," : "", mnodes.v[i].depth);
        write_name(q, out, mnodes.v[i].name);
        wm_buf_printf(out, ",\"count\":%" PRIu64 "}", mnodes.v[i].count);
    }
    wm_buf_puts(out, "],\"links\":[");
    for (uint32_t i = 0; i < links.n; i++) {
        wm_buf_printf(out, "%s{\"from_depth\":%u,\"from\":", i ? "," : "", links.v[i].depth);
        write_name(q, out, links.v[i].name);
        wm_buf_puts(out, ",\"to\":");
        write_name(q, out, links.v[i].to);
        wm_buf_printf(out, ",\"count\":%" PRIu64 "}", links.v[i].count);
    }
    wm_buf_puts(out, "]}");
    wm_strmap_release(&kept);
    wm_free(nodes.v);
    wm_free(mnodes.v);
    wm_free(links.v);
    wm_free(all);
    return rc ? rc : out->err;
}

static void no_figures(query_t *q, void *acc, double *fig, uint32_t n)
{
}

const qkernel_t wm__qk_paths = {
    .kind = "paths", .conf_size = sizeof(pconf_t), .parse = ph_parse, .acc_new = ph_new, .acc_free = ph_free,
    .user = ph_user, .merge = ph_merge, .figures = no_figures, .answer = ph_answer,
};

/* ======================================================= attribution */

enum { A_FIRST, A_LAST, A_LINEAR, A_POSITION, A_DECAY, A_MODELS };
static const char *const MODELS[] = {"first", "last", "linear", "position", "time_decay"};

typedef struct aconf {
    kconf_t base;
    uint32_t ntouch;
    int64_t lookback, half_life;
    int models[A_MODELS];
    uint32_t nmodels;
} aconf_t;

typedef struct alabel {
    uint64_t touched;
    uint64_t stamp;
    double credit[A_MODELS];
} alabel_t;

typedef struct aacc {
    alabel_t *l;        /* by label id (q->groups dictionary) */
    uint32_t n;
    uint64_t conversions, unattributed, cstamp;
    uint32_t *lab;
    int64_t *lt;
    uint32_t tcap, lcap;
    double *w;
    uint32_t wcap;
} aacc_t;

static int at_parse(query_t *q, const wm_json_t *req)
{
    aconf_t *c = q->conf;
    wm_query_error_t *err = kerr(q);
    int rc = no_breakdown(q, "attribution");
    uint32_t idx;
    if (!rc)
        rc = q_spec(q, member(req, "conversion"), "conversion", &idx, err);
    if (rc)
        return rc;
    const wm_json_t *t = member(req, "touches");
    if (!t || t->type != WM_JSON_ARRAY || !t->len || t->len > Q_SPECS_MAX - 1)
        return q_fail(err, "touches", "1 to %u event specs (with an optional label_prop)", Q_SPECS_MAX - 1);
    uint32_t i = 0;
    for (const wm_json_t *s = t->u.child; s; s = s->next, i++) {
        char path[64];
        snprintf(path, sizeof path, "touches[%u]", i);
        if ((rc = q_spec(q, s, path, &idx, err)))
            return rc;
    }
    c->ntouch = i;
    q->label_from = 1;
    if ((rc = q_duration(q, req, "lookback", "7d", &c->lookback, err)) ||
        (rc = q_duration(q, req, "half_life", "1d", &c->half_life, err)))
        return rc;
    const wm_json_t *m = member(req, "models");
    if (!m) {
        for (int k = 0; k < A_MODELS; k++)
            c->models[c->nmodels++] = k;
    } else {
        if (m->type != WM_JSON_ARRAY || !m->len || m->len > A_MODELS)
            return q_fail(err, "models", "a list of first, last, linear, position, time_decay");
        for (const wm_json_t *e = m->u.child; e; e = e->next) {
            int k = -1;
            for (int j = 0; j < A_MODELS && e->type == WM_JSON_STRING; j++)
                if (!strcmp(e->u.str, MODELS[j]))
                    k = j;
            if (k < 0)
                return q_fail(err, "models", "unknown model (first, last, linear, position, time_decay)");
            c->models[c->nmodels++] = k;
        }
    }
    const wm_json_t *vp = member(req, "value_prop");
    if (vp) {
        if (vp->type != WM_JSON_STRING || !vp->len)
            return q_fail(err, "value_prop", "a numeric property of the conversion");
        if ((rc = q_prop_index(q, vp->u.str, &q->val_prop)))
            return rc;
        q->val_mask = 1;
    }
    q->need_lo = q->lo - c->lookback;
    return 0;
}

static void *at_new(query_t *q)
{
    return wm_calloc(1, sizeof(aacc_t));
}

static void at_free(query_t *q, void *acc)
{
    aacc_t *a = acc;
    wm_free(a->l);
    wm_free(a->lab);
    wm_free(a->lt);
    wm_free(a->w);
    wm_free(a);
}

static alabel_t *at_label(aacc_t *a, uint32_t id)
{
    if (id >= a->n) {
        uint32_t nn = id + 64;
        alabel_t *nl = wm_realloc(a->l, nn * sizeof *nl);
        if (!nl)
            return NULL;
        memset(nl + a->n, 0, (nn - a->n) * sizeof *nl);
        a->l = nl;
        a->n = nn;
    }
    return &a->l[id];
}

/* The label of a touch row: the event name, or name:value of its label_prop. */
static int at_label_id(query_t *q, const qrow_t *r, uint32_t *id)
{
    uint32_t nl;
    const char *nm = q_str(&q->names, r->name, &nl);
    if (r->aux == UINT32_MAX)
        return q_intern(&q->groups, nm, nl, id);
    uint32_t vl;
    const char *v = q_str(&q->labels, r->aux, &vl);
    char stack[512];
    char *buf = nl + vl + 1 <= sizeof stack ? stack : wm_malloc(nl + vl + 1);
    if (!buf)
        return WM_ENOMEM;
    memcpy(buf, nm, nl);
    buf[nl] = ':';
    memcpy(buf + nl + 1, v, vl);
    int rc = q_intern(&q->groups, buf, nl + vl + 1, id);
    if (buf != stack)
        wm_free(buf);
    return rc;
}

static int at_user(query_t *q, void *acc, uint64_t user, qrow_t *rows, uint32_t n)
{
    aacc_t *a = acc;
    aconf_t *c = q->conf;
    uint32_t touch_bits = ((c->ntouch >= 31 ? 0xffffffffu : (1u << (c->ntouch + 1)) - 1)) & ~1u;
    for (uint32_t j = 0; j < n; j++) {
        const qrow_t *cv = &rows[j];
        if (!(cv->mask & 1) || cv->time < q->lo || cv->time >= q->hi)
            continue;
        a->conversions++;
        uint32_t nt = 0;
        uint32_t first = j;
        while (first > 0 && cv->time - rows[first - 1].time <= c->lookback)
            first--;
        for (uint32_t i = first; i < j; i++) {
            if (!(rows[i].mask & touch_bits))
                continue;
            uint32_t id;
            int rc = at_label_id(q, &rows[i], &id);
            if (!rc)
                rc = q_grow(q, (void **)&a->lab, &a->tcap, (uint64_t)nt + 1, sizeof *a->lab);
            if (!rc)
                rc = q_grow(q, (void **)&a->lt, &a->lcap, (uint64_t)nt + 1, sizeof *a->lt);
            if (rc)
                return rc;
            a->lab[nt] = id;
            a->lt[nt] = rows[i].time;
            nt++;
        }
        if (!nt) {
            a->unattributed++;
            continue;
        }
        double value = 1.0;
        if (q->val_prop >= 0)
            value = isnan(cv->val) ? 0.0 : cv->val;
        uint64_t stamp = ++a->cstamp;
        int rc = q_grow(q, (void **)&a->w, &a->wcap, nt, sizeof *a->w);
        if (rc)
            return rc;
        for (uint32_t i = 0; i < nt; i++) {
            alabel_t *l = at_label(a, a->lab[i]);
            if (!l)
                return WM_ENOMEM;
            if (l->stamp != stamp) {
                l->stamp = stamp;
                l->touched++;
            }
        }
        for (uint32_t mi = 0; mi < c->nmodels; mi++) {
            int m = c->models[mi];
            double *w = a->w;
            for (uint32_t i = 0; i < nt; i++) {
                switch (m) {
                case A_FIRST:
                    w[i] = i == 0;
                    break;
                case A_LAST:
                    w[i] = i == nt - 1;
                    break;
                case A_LINEAR:
                    w[i] = 1.0 / nt;
                    break;
                case A_POSITION:
                    w[i] = nt == 1 ? 1.0 : nt == 2 ? 0.5 : (i == 0 || i == nt - 1) ? 0.4 : 0.2 / (nt - 2);
                    break;
                default:
                    w[i] = c->half_life > 0 ? exp2(-(double)(cv->time - a->lt[i]) / (double)c->half_life)
                                            : (a->lt[i] == cv->time ? 1.0 : 0.0);
                }
            }
            if (m == A_DECAY) {
                double s = 0;
                for (uint32_t i = 0; i < nt; i++)
                    s += w[i];
                for (uint32_t i = 0; i < nt; i++)
                    w[i] = s > 0 ? w[i] / s : 1.0 / nt;
            }
            for (uint32_t i = 0; i < nt; i++)
                a->l[a->lab[i]].credit[m] += w[i] * value;
        }
    }
    return 0;
}

static int at_merge(query_t *q, void *dst, void *src)
{
    aacc_t *d = dst, *s = src;
    d->conversions += s->conversions;
    d->unattributed += s->unattributed;
    for (uint32_t i = 0; i < s->n; i++) {
        if (!s->l[i].touched)
            continue;
        alabel_t *l = at_label(d, i);
        if (!l)
            return WM_ENOMEM;
        l->touched += s->l[i].touched;
        for (int m = 0; m < A_MODELS; m++)
            l->credit[m] += s->l[i].credit[m];
    }
    return 0;
}

static aacc_t *g_sort_a;

static int cmp_label(const void *pa, const void *pb)
{
    uint32_t x = *(const uint32_t *)pa, y = *(const uint32_t *)pb;
    const alabel_t *lx = &g_sort_a->l[x], *ly = &g_sort_a->l[y];
    if (lx->touched != ly->touched)
        return lx->touched > ly->touched ? -1 : 1;
    uint32_t nx, ny;
    const char *a = q_str(&g_sort_q->groups, x, &nx), *b = q_str(&g_sort_q->groups, y, &ny);
    int c = memcmp(a, b, nx < ny ? nx : ny);
    return c ? c : (nx > ny) - (nx < ny);
}

static int at_answer(query_t *q, void *acc, wm_buf_t *out)
{
    aacc_t *a = acc;
    aconf_t *c = q->conf;
    uint32_t *ids = wm_malloc((a->n + 1) * sizeof *ids), n = 0;
    if (!ids)
        return WM_ENOMEM;
    for (uint32_t i = 0; i < a->n; i++)
        if (a->l[i].touched)
            ids[n++] = i;
    g_sort_q = q;
    g_sort_a = a;
    qsort(ids, n, sizeof *ids, cmp_label);
    wm_buf_printf(out, "{\"conversions\":%" PRIu64 ",\"unattributed\":%" PRIu64 ",\"rows\":[", a->conversions,
                  a->unattributed);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t len;
        const char *s = q_str(&q->groups, ids[i], &len);
        wm_buf_puts(out, i ? ",{\"touch\":" : "{\"touch\":");
        wm_buf_json_str(out, s, len);
        wm_buf_printf(out, ",\"touched\":%" PRIu64, a->l[ids[i]].touched);
        for (uint32_t m = 0; m < c->nmodels; m++) {
            wm_buf_printf(out, ",\"%s\":", MODELS[c->models[m]]);
            wm_buf_printf(out, "%.17g", a->l[ids[i]].credit[c->models[m]]);
        }
        wm_buf_putc(out, '}');
    }
    wm_buf_puts(out, "]}");
    wm_free(ids);
    return out->err;
}

const qkernel_t wm__qk_attribution = {
    .kind = "attribution", .conf_size = sizeof(aconf_t), .parse = at_parse, .acc_new = at_new,
    .acc_free = at_free, .user = at_user, .merge = at_merge, .figures = no_figures, .answer = at_answer,
};

/* ====================================================== distribution */

typedef struct dacc {
    uint64_t *users;    /* by n */
    uint32_t cap;
} dacc_t;

typedef struct dconf {
    kconf_t base;
} dconf_t;

static int ds_parse(query_t *q, const wm_json_t *req)
{
    uint32_t idx;
    int rc = no_breakdown(q, "distribution");
    return rc ? rc : q_spec(q, member(req, "event"), "event", &idx, kerr(q));
}

static void *ds_new(query_t *q)
{
    return wm_calloc(1, sizeof(dacc_t));
}

static void ds_free(query_t *q, void *acc)
{
    dacc_t *a = acc;
    wm_free(a->users);
    wm_free(a);
}

static int ds_add(query_t *q, dacc_t *a, uint64_t n, uint64_t users)
{
    if (n >= a->cap) {
        uint32_t old = a->cap;
        int rc = q_grow(q, (void **)&a->users, &a->cap, n + 1, sizeof *a->users);
        if (rc)
            return rc;
        memset(a->users + old, 0, (a->cap - old) * sizeof *a->users);
    }
    a->users[n] += users;
    return 0;
}

static int ds_user(query_t *q, void *acc, uint64_t user, qrow_t *rows, uint32_t n)
{
    uint64_t k = 0;
    for (uint32_t i = 0; i < n; i++)
        k += (rows[i].mask & 1) && rows[i].time >= q->lo && rows[i].time < q->hi;
    return k ? ds_add(q, acc, k, 1) : 0;
}

static int ds_merge(query_t *q, void *dst, void *src)
{
    dacc_t *s = src;
    for (uint32_t i = 0; i < s->cap; i++)
        if (s->users[i]) {
            int rc = ds_add(q, dst, i, s->users[i]);
            if (rc)
                return rc;
        }
    return 0;
}

static int ds_answer(query_t *q, void *acc, wm_buf_t *out)
{
    dacc_t *a = acc;
    uint64_t total = 0;
    bool first = true;
    wm_buf_puts(out, "{\"rows\":[");
    for (uint32_t i = 1; i < a->cap; i++)
        if (a->users[i]) {
            wm_buf_printf(out, "%s{\"n\":%u,\"users\":%" PRIu64 "}", first ? "" : ",", i, a->users[i]);
            first = false;
            total += a->users[i];
        }
    wm_buf_printf(out, "],\"users\":%" PRIu64 "}", total);
    return out->err;
}

const qkernel_t wm__qk_distribution = {
    .kind = "distribution", .conf_size = sizeof(dconf_t), .parse = ds_parse, .acc_new = ds_new,
    .acc_free = ds_free, .user = ds_user, .merge = ds_merge, .figures = no_figures, .answer = ds_answer,
};

/* ========================================================== interval */

typedef struct iconf {
    kconf_t base;
    int64_t window;
} iconf_t;

static const struct {
    const char *label;
    int64_t lo;
} BINS[] = {
    {"<1m", 0},
    {"1\xe2\x80\x93" "5m", 60000},
    {"5\xe2\x80\x93" "30m", 300000},
    {"30m\xe2\x80\x93" "1h", 1800000},
    {"1\xe2\x80\x93" "3h", 3600000},
    {"3\xe2\x80\x93" "12h", 3 * 3600000LL},
    {"12\xe2\x80\x93" "24h", 12 * 3600000LL},
    {"1\xe2\x80\x93" "3d", DAY_MS},
    {"3\xe2\x80\x93" "7d", 3 * DAY_MS},
    {"7\xe2\x80\x93" "14d", 7 * DAY_MS},
    {"14\xe2\x80\x93" "30d", 14 * DAY_MS},
    {"\xe2\x89\xa5" "30d", 30 * DAY_MS},
};

static int iv_parse(query_t *q, const wm_json_t *req)
{
    iconf_t *c = q->conf;
    wm_query_error_t *err = kerr(q);
    uint32_t idx;
    int rc = no_breakdown(q, "interval");
    if (!rc)
        rc = q_spec(q, member(req, "first"), "first", &idx, err);
    if (!rc)
        rc = q_spec(q, member(req, "then"), "then", &idx, err);
    if (!rc)
        rc = q_duration(q, req, "window", "30d", &c->window, err);
    if (!rc)
        q->need_lo = q->lo - c->window;
    return rc;
}

static void *iv_new(query_t *q)
{
    return wm_calloc(1, sizeof(ivec_t));
}

static void iv_free(query_t *q, void *acc)
{
    ivec_free(q, acc);
    wm_free(acc);
}

static int iv_user(query_t *q, void *acc, uint64_t user, qrow_t *rows, uint32_t n)
{
    iconf_t *c = q->conf;
    int64_t last_a = -1, prev_b = -1;
    for (uint32_t j = 0; j < n; j++) {
        if (rows[j].mask & 2) {
            if (last_a > prev_b && rows[j].time >= q->lo && rows[j].time < q->hi &&
                rows[j].time - rows[last_a].time <= c->window) {
                int rc = ivec_push(q, acc, rows[j].time - rows[last_a].time);
                if (rc)
                    return rc;
            }
            prev_b = j;
        }
        if (rows[j].mask & 1)
            last_a = j;
    }
    return 0;
}

static int iv_merge(query_t *q, void *dst, void *src)
{
    return ivec_cat(q, dst, src);
}

static int iv_answer(query_t *q, void *acc, wm_buf_t *out)
{
    ivec_t *a = acc;
    wm_buf_printf(out, "{\"count\":%u", a->n);
    if (!a->n)
        wm_buf_puts(out, ",\"min_ms\":null,\"p25_ms\":null,\"median_ms\":null,\"p75_ms\":null,\"p90_ms\":null,"
                         "\"max_ms\":null,\"avg_ms\":null");
    else {
        q_sort_i64(a->v, a->n);
        double sum = 0;
        for (uint32_t i = 0; i < a->n; i++)
            sum += (double)a->v[i];
        wm_buf_printf(out,
                      ",\"min_ms\":%" PRId64 ",\"p25_ms\":%" PRId64 ",\"median_ms\":%" PRId64 ",\"p75_ms\":%" PRId64
                      ",\"p90_ms\":%" PRId64 ",\"max_ms\":%" PRId64 ",\"avg_ms\":",
                      a->v[0], q_quantile(a->v, a->n, 0.25, true), q_quantile(a->v, a->n, 0.5, true),
                      q_quantile(a->v, a->n, 0.75, true), q_quantile(a->v, a->n, 0.9, true), a->v[a->n - 1]);
        wm_buf_printf(out, "%.17g", sum / a->n);
    }
    wm_buf_puts(out, ",\"histogram\":[");
    size_t nb = sizeof BINS / sizeof *BINS;
    for (size_t b = 0; b < nb; b++) {
        uint64_t k = 0;
        for (uint32_t i = 0; i < a->n; i++)
            k += a->v[i] >= BINS[b].lo && (b + 1 == nb || a->v[i] < BINS[b + 1].lo);
        wm_buf_printf(out, "%s{\"bin\":\"%s\",\"count\":%" PRIu64 "}", b ? "," : "", BINS[b].label, k);
    }
    wm_buf_puts(out, "]}");
    return out->err;
}

const qkernel_t wm__qk_interval = {
    .kind = "interval", .conf_size = sizeof(iconf_t), .parse = iv_parse, .acc_new = iv_new, .acc_free = iv_free,
    .user = iv_user, .merge = iv_merge, .figures = no_figures, .answer = iv_answer,
};

/* ============================================================ export */

typedef struct xconf {
    kconf_t base;
} xconf_t;

static int ex_parse(query_t *q, const wm_json_t *req)
{
    q->export_text = true;
    q->all_rows = true;
    return no_breakdown(q, "export");
}

static void *ex_new(query_t *q)
{
    wm_buf_t *b = wm_calloc(1, sizeof *b);
    if (b)
        wm_buf_init(b, 0);
    return b;
}

static void ex_free(query_t *q, void *acc)
{
    wm_buf_release(acc);
    wm_free(acc);
}

static int ex_user(query_t *q, void *acc, uint64_t user, qrow_t *rows, uint32_t n)
{
    wm_buf_t *b = acc;
    size_t before = b->len;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t len;
        const char *nm = q_str(&q->names, rows[i].name, &len);
        wm_buf_printf(b, "{\"user\":%" PRIu64 ",\"i\":%u,\"time\":%" PRId64 ",\"event\":", user, i, rows[i].time);
        wm_buf_json_str(b, nm, len);
        wm_buf_puts(b, ",\"properties\":");
        wm_buf_append(b, rows[i].text, rows[i].aux);
        wm_buf_puts(b, "}\n");
    }
    return b->err ? b->err : q_mem(q, (int64_t)(b->len - before));
}

static int ex_merge(query_t *q, void *dst, void *src)
{
    wm_buf_t *d = dst, *s = src;
    wm_buf_append(d, s->data, s->len);
    return d->err;
}

static int ex_answer(query_t *q, void *acc, wm_buf_t *out)
{
    wm_buf_t *b = acc;
    wm_buf_append(out, b->data, b->len);
    return out->err;
}

const qkernel_t wm__qk_export = {
    .kind = "export", .conf_size = sizeof(xconf_t), .parse = ex_parse, .acc_new = ex_new, .acc_free = ex_free,
    .user = ex_user, .merge = ex_merge, .figures = no_figures, .answer = ex_answer,
};
