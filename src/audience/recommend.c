/*
 * recommend.c - product recommendations for one customer (seed 004: "match
 * and recommend products by the customer's risk level, recently visited
 * products and purchase history").
 *
 * Hard rules, applied before any scoring:
 *   - user_risk 0 (suitability unknown) recommends nothing: 适当性 forbids
 *     offering a product whose suitability cannot be shown;
 *   - a candidate is eligible only with 1 <= risk <= user_risk;
 *   - a held product is not eligible unless include_held;
 *   - a candidate id listed twice counts once (the first listing).
 *
 * Score of an eligible product p (every component lies in [0, 1)):
 *
 *   score = 1.00 * V/(V + 1)        views of p itself
 *         + 0.50 * N/(N + 5)        co-purchases
 *         + 0.40 * C/(C + 2)        views of other products of p's category
 *         + 0.05 * ln(1 + b) / ln(1 + b_max)   popularity
 *
 *   V   = sum over the customer's views of p of 2^(-age_days / 7): each view
 *         counts 1 when it is new and halves every 7 days (age from now_ms;
 *         a view stamped after now_ms counts as new)
 *   N   = sum of `count` over co-purchase rows (from -> p) whose `from` is a
 *         product the customer holds
 *   C   = the same decayed view weight as V, summed over every viewed
 *         product q != p of p's category (q may be a product the customer
 *         cannot buy: interest in a category still says something)
 *   b   = p's buyers; b_max = the most buyers among eligible products (the
 *         component is 0 when b_max is 0)
 *
 * What the weights give: one view today (0.5) outweighs any co-purchase
 * count (< 0.5), which outweighs any category interest (< 0.4). Popularity
 * (<= 0.05) only orders products without another signal - it is the
 * tie-breaker and the cold-start answer: it is outweighed by a single
 * co-buyer (0.083), by one view younger than ~4 weeks (V > 0.053) and by
 * category interest younger than ~12 days (C > 0.29). Equal scores order by
 * id (byte order), so the answer is deterministic.
 *
 * The reason is the component with the largest weighted contribution (ties
 * in the order viewed, co_purchase, same_category, popular), in words an
 * advisor can read out: "viewed 3 times, last 2 days ago", "12 customers who
 * hold 000001 also bought it", "same category (equity) as 000002 you
 * viewed", "popular: 340 buyers".
 *
 * Cost: one pass over each input with open-addressing hash tables for id
 * lookups, then one sort of the eligible candidates: O(n log n) in the
 * number of candidates, linear in views, held products and co-purchases.
 * Scratch memory is allocated per call and freed before returning.
 *
 * Errors: WM_EINVAL for NULL or inconsistent input (see validate), WM_ELIMIT
 * above the WM_REC_*_MAX limits, WM_ENOMEM; *n_out is 0 on every error.
 * docs/recommendations.md explains the same for readers of the API.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "waymark/alloc.h"
#include "waymark/audience.h"
#include "waymark/error.h"
#include "waymark/limits.h"

#define W_VIEW 1.00
#define W_CO 0.50
#define W_CAT 0.40
#define W_POP 0.05
#define VIEW_SAT 1.0            /* V/(V + 1): one new view is half the view weight */
#define CO_SAT 5.0              /* N/(N + 5): five co-buyers are half the co weight */
#define CAT_SAT 2.0             /* C/(C + 2): category interest saturates slower */
#define HALF_LIFE_MS (7.0 * 86400000.0)
#define DAY_MS 86400000LL
#define NONE UINT32_MAX

/* ---- risk levels ---- */

static int level_digit(char c) { return c >= '1' && c <= '5' ? c - '0' : 0; }

int wm_risk_level(const wm_json_t *v)
{
    if (!v)
        return 0;
    if (v->type == WM_JSON_NUMBER) {
        double x = v->is_int ? (double)v->i64 : v->u.num;
        return x >= 1 && x <= 5 && x == floor(x) ? (int)x : 0;
    }
    if (v->type != WM_JSON_STRING)
        return 0;
    const char *s = v->u.str;
    if (v->len == 1)
        return level_digit(s[0]);
    if (v->len == 2 && s[0] && strchr("CcRr", s[0]))
        return level_digit(s[1]);
    return 0;
}

/* ---- id tables: open addressing, linear probing, string keys ---- */

typedef struct slot {
    const char *key;            /* NULL: empty */
    uint64_t hash;
    uint32_t val;
} slot_t;

typedef struct table {
    slot_t *slots;
    size_t mask;
} table_t;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h ^ (h >> 29);
}

/* Room for n keys at load <= 1/2. */
static int table_init(table_t *t, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap <<= 1;
    t->slots = wm_calloc(cap, sizeof *t->slots);
    t->mask = cap - 1;
    return t->slots ? 0 : WM_ENOMEM;
}

/* The slot holding key, or the empty slot where it belongs. */
static slot_t *table_slot(const table_t *t, const char *key, uint64_t h)
{
    for (size_t i = (size_t)h & t->mask;; i = (i + 1) & t->mask) {
        slot_t *s = &t->slots[i];
        if (!s->key || (s->hash == h && !strcmp(s->key, key)))
            return s;
    }
}

/* Value of key, or NONE. */
static uint32_t table_get(const table_t *t, const char *key)
{
    if (!t->slots || !key)
        return NONE;
    slot_t *s = table_slot(t, key, hash_str(key));
    return s->key ? s->val : NONE;
}

/* Inserts key -> val unless present; returns the value now stored. */
static uint32_t table_put(table_t *t, const char *key, uint32_t val)
{
    uint64_t h = hash_str(key);
    slot_t *s = table_slot(t, key, h);
    if (!s->key) {
        s->key = key;
        s->hash = h;
        s->val = val;
    }
    return s->val;
}

/* ---- per-call state ---- */

typedef struct item_stat {
    double view_w;              /* V: decayed views */
    int64_t last_view_ms;
    uint32_t n_views;
    bool dup;                   /* a later listing of an id already seen */
    bool held;
    uint64_t co_n;              /* N: co-buyers from held products (saturating) */
    uint64_t co_top;            /* the largest single row's count ... */
    const char *co_from;        /* ... and its held product */
} item_stat_t;

/* A category some viewed product belongs to. */
typedef struct cat_stat {
    double total_w;             /* decayed views of every product of the category */
    uint32_t best, second;      /* the two most viewed products (item index) or NONE */
} cat_stat_t;

typedef struct cand {
    double score;
    const char *id;
    uint32_t idx;
    uint8_t reason;
    double cat_w;               /* C, for the reason */
    uint32_t cat_other;         /* the viewed product the category reason names */
} cand_t;

enum { R_VIEWED, R_CO, R_CAT, R_POPULAR };
static const char *const REASON_CODE[] = {"viewed", "co_purchase", "same_category", "popular"};

typedef struct rec {
    const wm_rec_input_t *in;
    item_stat_t *stat;
    table_t items;              /* id -> item index (first listing) */
    table_t held;               /* held id -> 0 */
    table_t cats;               /* category -> index into cat */
    cat_stat_t *cat;
    uint32_t n_cat;
    cand_t *cand;
    uint32_t n_cand;
} rec_t;

static void rec_release(rec_t *r)
{
    wm_free(r->stat);
    wm_free(r->items.slots);
    wm_free(r->held.slots);
    wm_free(r->cats.slots);
    wm_free(r->cat);
    wm_free(r->cand);
}

static int validate(const wm_rec_input_t *in, const wm_rec_result_t *out, const uint32_t *n_out)
{
    if (!in || !n_out || (!out && in->n) || in->user_risk < 0 || in->user_risk > 5)
        return WM_EINVAL;
    if ((in->n_items && !in->items) || (in->n_views && !in->views) || (in->n_held && !in->held) ||
        (in->n_co && !in->co))
        return WM_EINVAL;
    if (in->n_items > WM_REC_ITEMS_MAX || in->n_views > WM_REC_VIEWS_MAX ||
        in->n_held > WM_REC_HELD_MAX || in->n_co > WM_REC_CO_MAX)
        return WM_ELIMIT;
    for (uint32_t i = 0; i < in->n_items; i++)
        if (!in->items[i].id)
            return WM_EINVAL;
    for (uint32_t i = 0; i < in->n_views; i++)
        if (!in->views[i].id)
            return WM_EINVAL;
    for (uint32_t i = 0; i < in->n_held; i++)
        if (!in->held[i])
            return WM_EINVAL;
    for (uint32_t i = 0; i < in->n_co; i++)
        if (!in->co[i].from || !in->co[i].to)
            return WM_EINVAL;
    return 0;
}

static int index_items(rec_t *r)
{
    const wm_rec_input_t *in = r->in;
    r->stat = wm_calloc(in->n_items, sizeof *r->stat);
    if (!r->stat || table_init(&r->items, in->n_items))
        return WM_ENOMEM;
    for (uint32_t i = 0; i < in->n_items; i++)
        r->stat[i].dup = table_put(&r->items, in->items[i].id, i) != i;
    return 0;
}

static int index_held(rec_t *r)
{
    const wm_rec_input_t *in = r->in;
    if (table_init(&r->held, in->n_held))
        return WM_ENOMEM;
    for (uint32_t i = 0; i < in->n_held; i++) {
        table_put(&r->held, in->held[i], 0);
        uint32_t k = table_get(&r->items, in->held[i]);
        if (k != NONE)
            r->stat[k].held = true;
    }
    return 0;
}

static double view_weight(int64_t now_ms, int64_t t_ms)
{
    double age = (double)now_ms - (double)t_ms;
    return age <= 0 ? 1.0 : exp2(-age / HALF_LIFE_MS);
}

/* Views of products that are not candidates carry no category: ignored. */
static void add_views(rec_t *r)
{
    const wm_rec_input_t *in = r->in;
    for (uint32_t i = 0; i < in->n_views; i++) {
        uint32_t k = table_get(&r->items, in->views[i].id);
        if (k == NONE)
            continue;
        item_stat_t *s = &r->stat[k];
        s->view_w += view_weight(in->now_ms, in->views[i].time_ms);
        if (!s->n_views || in->views[i].time_ms > s->last_view_ms)
            s->last_view_ms = in->views[i].time_ms;
        s->n_views++;
    }
}

/* Co-purchase rows count only from products the customer holds. */
static void add_co(rec_t *r)
{
    const wm_rec_input_t *in = r->in;
    for (uint32_t i = 0; i < in->n_co; i++) {
        const wm_rec_co_t *c = &in->co[i];
        uint32_t k = table_get(&r->items, c->to);
        if (k == NONE || !c->count || !strcmp(c->from, c->to) || table_get(&r->held, c->from) == NONE)
            continue;
        item_stat_t *s = &r->stat[k];
        s->co_n = s->co_n + c->count < s->co_n ? UINT64_MAX : s->co_n + c->count;
        if (c->count > s->co_top || (c->count == s->co_top && strcmp(c->from, s->co_from) < 0)) {
            s->co_top = c->count;
            s->co_from = c->from;
        }
    }
}

/* Is item a viewed more than item b (ties: smaller id)? */
static bool more_viewed(const rec_t *r, uint32_t a, uint32_t b)
{
    if (b == NONE)
        return true;
    double wa = r->stat[a].view_w, wb = r->stat[b].view_w;
    if (wa != wb)
        return wa > wb;
    return strcmp(r->in->items[a].id, r->in->items[b].id) < 0;
}

static void cat_add(cat_stat_t *c, const rec_t *r, uint32_t k)
{
    c->total_w += r->stat[k].view_w;
    if (more_viewed(r, k, c->best)) {
        c->second = c->best;
        c->best = k;
    } else if (more_viewed(r, k, c->second)) {
        c->second = k;
    }
}

static bool has_category(const wm_rec_item_t *it) { return it->category && it->category[0]; }

/* One entry per category of a viewed candidate. */
static int index_categories(rec_t *r)
{
    const wm_rec_input_t *in = r->in;
    uint32_t n_viewed = 0;
    for (uint32_t k = 0; k < in->n_items; k++)
        n_viewed += r->stat[k].n_views && !r->stat[k].dup;
    r->cat = wm_calloc(n_viewed, sizeof *r->cat);
    if (!r->cat || table_init(&r->cats, n_viewed))
        return WM_ENOMEM;
    for (uint32_t k = 0; k < in->n_items; k++) {
        if (!r->stat[k].n_views || r->stat[k].dup || !has_category(&in->items[k]))
            continue;
        uint32_t c = table_put(&r->cats, in->items[k].category, r->n_cat);
        if (c == r->n_cat) {
            r->cat[c].best = r->cat[c].second = NONE;
            r->n_cat++;
        }
        cat_add(&r->cat[c], r, k);
    }
    return 0;
}

static bool eligible(const rec_t *r, uint32_t k)
{
    const wm_rec_item_t *it = &r->in->items[k];
    const item_stat_t *s = &r->stat[k];
    return !s->dup && it->risk >= 1 && it->risk <= r->in->user_risk && (!s->held || r->in->include_held);
}

/* C for candidate k and the other viewed product the reason names. */
static void category_interest(const rec_t *r, uint32_t k, cand_t *c)
{
    c->cat_w = 0;
    c->cat_other = NONE;
    const wm_rec_item_t *it = &r->in->items[k];
    uint32_t e = has_category(it) ? table_get(&r->cats, it->category) : NONE;
    if (e == NONE)
        return;
    const cat_stat_t *cs = &r->cat[e];
    c->cat_other = cs->best == k ? cs->second : cs->best;
    if (c->cat_other == NONE)
        return;
    double w = cs->total_w - r->stat[k].view_w; /* k's own views count in V, not C */
    c->cat_w = w > 0 ? w : 0;
}

static void score(const rec_t *r, uint32_t k, double log_max, cand_t *c)
{
    const item_stat_t *s = &r->stat[k];
    category_interest(r, k, c);
    double v = s->view_w, n = (double)s->co_n;
    double part[4] = {
        [R_VIEWED] = W_VIEW * v / (v + VIEW_SAT),
        [R_CO] = W_CO * n / (n + CO_SAT),
        [R_CAT] = W_CAT * c->cat_w / (c->cat_w + CAT_SAT),
        [R_POPULAR] = log_max > 0 ? W_POP * log1p((double)r->in->items[k].buyers) / log_max : 0,
    };
    c->score = part[R_VIEWED] + part[R_CO] + part[R_CAT] + part[R_POPULAR];
    c->reason = R_POPULAR;
    for (int i = R_CAT; i >= R_VIEWED; i--)
        if (part[i] > 0 && part[i] >= part[c->reason])
            c->reason = (uint8_t)i;
    c->id = r->in->items[k].id;
    c->idx = k;
}

static int cand_cmp(const void *pa, const void *pb)
{
    const cand_t *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return strcmp(a->id, b->id);
}

static int rank(rec_t *r)
{
    const wm_rec_input_t *in = r->in;
    r->cand = wm_malloc((size_t)in->n_items * sizeof *r->cand);
    if (!r->cand)
        return WM_ENOMEM;
    uint64_t b_max = 0;
    for (uint32_t k = 0; k < in->n_items; k++)
        if (eligible(r, k) && in->items[k].buyers > b_max)
            b_max = in->items[k].buyers;
    double log_max = log1p((double)b_max);
    for (uint32_t k = 0; k < in->n_items; k++)
        if (eligible(r, k))
            score(r, k, log_max, &r->cand[r->n_cand++]);
    qsort(r->cand, r->n_cand, sizeof *r->cand, cand_cmp);
    return 0;
}

/* ---- reasons ---- */

/* snprintf that never leaves a cut UTF-8 sequence at the end of dst. */
static void put_text(char *dst, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void put_text(char *dst, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n < cap)
        return;
    size_t len = cap - 1, start = len;
    while (start > 0 && ((unsigned char)dst[start - 1] & 0xC0) == 0x80)
        start--;
    if (start == 0)
        return;
    unsigned char lead = (unsigned char)dst[start - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (len - (start - 1) < need)
        dst[start - 1] = '\0';
}

static void when_text(char *dst, size_t cap, int64_t now_ms, int64_t t_ms)
{
    int64_t days = t_ms >= now_ms ? 0 : (int64_t)(((double)now_ms - (double)t_ms) / (double)DAY_MS);
    if (days == 0)
        snprintf(dst, cap, "today");
    else if (days == 1)
        snprintf(dst, cap, "yesterday");
    else
        snprintf(dst, cap, "%lld days ago", (long long)days);
}

static void reason_text(const rec_t *r, const cand_t *c, wm_rec_result_t *res)
{
    const wm_rec_item_t *it = &r->in->items[c->idx];
    const item_stat_t *s = &r->stat[c->idx];
    char when[32];
    switch (c->reason) {
    case R_VIEWED:
        when_text(when, sizeof when, r->in->now_ms, s->last_view_ms);
        if (s->n_views == 1)
            put_text(res->reason, sizeof res->reason, "viewed once, %s", when);
        else
            put_text(res->reason, sizeof res->reason, "viewed %u times, last %s", s->n_views, when);
        break;
    case R_CO:
        put_text(res->reason, sizeof res->reason, "%llu %s %s also bought it", (unsigned long long)s->co_top,
                 s->co_top == 1 ? "customer who holds" : "customers who hold", s->co_from);
        break;
    case R_CAT:
        put_text(res->reason, sizeof res->reason, "same category (%s) as %s you viewed", it->category,
                 r->in->items[c->cat_other].id);
        break;
    default:
        if (it->buyers)
            put_text(res->reason, sizeof res->reason, "popular: %llu buyer%s",
                     (unsigned long long)it->buyers, it->buyers == 1 ? "" : "s");
        else
            put_text(res->reason, sizeof res->reason, "suitable for risk level C%d (product R%d), no buyers yet",
                     r->in->user_risk, it->risk);
    }
}

static uint32_t emit(const rec_t *r, wm_rec_result_t *out)
{
    uint32_t n = r->in->n < WM_REC_MAX ? r->in->n : WM_REC_MAX;
    if (n > r->n_cand)
        n = r->n_cand;
    for (uint32_t i = 0; i < n; i++) {
        const cand_t *c = &r->cand[i];
        const wm_rec_item_t *it = &r->in->items[c->idx];
        wm_rec_result_t *res = &out[i];
        memset(res, 0, sizeof *res);
        res->id = it->id;
        res->name = it->name;
        res->category = it->category;
        res->risk = it->risk;
        res->score = c->score;
        res->reason_code = REASON_CODE[c->reason];
        reason_text(r, c, res);
    }
    return n;
}

int wm_recommend(const wm_rec_input_t *in, wm_rec_result_t *out, uint32_t *n_out)
{
    if (n_out)
        *n_out = 0;
    int rc = validate(in, out, n_out);
    if (rc || in->user_risk == 0 || in->n == 0 || in->n_items == 0)
        return rc;
    rec_t r = {.in = in};
    rc = index_items(&r);
    if (!rc)
        rc = index_held(&r);
    if (!rc) {
        add_views(&r);
        add_co(&r);
        rc = index_categories(&r);
    }
    if (!rc)
        rc = rank(&r);
    if (!rc)
        *n_out = emit(&r, out);
    rec_release(&r);
    return rc;
}
