/*
 * cond_eval.c - runs a compiled condition against one environment.
 *
 * Hot path: called for every event of every user that may enter or move in
 * a journey. It allocates nothing (recursion over the flat program is
 * bounded by WM_COND_DEPTH_MAX; item ids are formatted into a stack buffer),
 * reads the event and profile trees in place, and short-circuits all/any by
 * jumping over subtrees; the distinct values of a did scan go into a
 * thread-local set. The one exception is `matches`: libc's regexec may
 * allocate internally for complex patterns.
 *
 * Missing values: a property that is absent or JSON null is "not set";
 * every operator is then false except not_set, !=, not_in and not_contains.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rules/cond_internal.h"
#include "waymark/error.h"

static int eval_node(const wm_cond_t *c, uint32_t i, const wm_cond_env_t *env, bool *r);

static const wm_json_t *present(const wm_json_t *v)
{
    return v && v->type != WM_JSON_NULL ? v : NULL;
}

static const wm_json_t *event_prop(const wm_cond_env_t *env, const char *name)
{
    if (!env->event)
        return NULL;
    return present(wm_json_get(wm_json_get(env->event, "properties"), name));
}

static const wm_json_t *profile_prop(const wm_cond_env_t *env, const char *name)
{
    return env->profile ? present(wm_json_get(env->profile, name)) : NULL;
}

static const wm_json_t *item_prop(const cnode_t *n, const wm_cond_env_t *env)
{
    if (!env->item)
        return NULL;
    const wm_json_t *id = n->item_from == S_PROFILE ? profile_prop(env, n->item_key)
                                                     : event_prop(env, n->item_key);
    char buf[32];
    const char *ids;
    if (!id)
        return NULL;
    if (id->type == WM_JSON_STRING)
        ids = id->u.str;
    else if (id->type == WM_JSON_NUMBER && id->is_int) {
        snprintf(buf, sizeof buf, "%lld", (long long)id->i64);
        ids = buf;
    } else
        return NULL;
    const wm_json_t *item = env->item(env->ctx, n->item_type, ids);
    return item ? present(wm_json_get(item, n->name)) : NULL;
}

static const wm_json_t *source_value(const cnode_t *n, const wm_cond_env_t *env)
{
    switch (n->src) {
    case S_PROFILE:
        return profile_prop(env, n->name);
    case S_PROP:
        return event_prop(env, n->name);
    case S_TAG:
        return env->tag ? present(env->tag(env->ctx, n->name)) : NULL;
    default:
        return item_prop(n, env);
    }
}

/* ------------------------------------------------------------ operators */

static int cmp_lstr(const char *s, size_t n, const lstr_t *e)
{
    int r = memcmp(s, e->s, n < e->len ? n : e->len);
    if (r)
        return r;
    return (n > e->len) - (n < e->len);
}

static bool has_str(const inlist_t *L, const char *s, size_t n)
{
    uint32_t lo = 0, hi = L->n_strs;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int r = cmp_lstr(s, n, &L->strs[mid]);
        if (r == 0)
            return true;
        if (r < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return false;
}

static bool has_num(const inlist_t *L, double x)
{
    uint32_t lo = 0, hi = L->n_nums;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (L->nums[mid] == x)
            return true;
        if (L->nums[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

static bool in_list(const inlist_t *L, const wm_json_t *v)
{
    double x;
    switch (v->type) {
    case WM_JSON_STRING:
        if (has_str(L, v->u.str, v->len))
            return true;
        return L->n_nums && wm__parse_number(v->u.str, v->len, &x) && has_num(L, x);
    case WM_JSON_NUMBER:
        return has_num(L, v->u.num);
    case WM_JSON_TRUE:
        return L->bools & 2;
    case WM_JSON_FALSE:
        return L->bools & 1;
    case WM_JSON_ARRAY:
        for (const wm_json_t *e = v->u.child; e; e = e->next)
            if (e->type != WM_JSON_ARRAY && in_list(L, e))
                return true;
        return false;
    default:
        return false;
    }
}

static bool contains(const cnode_t *n, const wm_json_t *v)
{
    if (v->type == WM_JSON_ARRAY) {
        for (const wm_json_t *e = v->u.child; e; e = e->next)
            if (wm__val_cmp(e, &n->lit, false, 0) == 0)
                return true;
        return false;
    }
    if (v->type == WM_JSON_STRING && n->lit.kind == WM__V_STR)
        return memmem(v->u.str, v->len, n->lit.s, n->lit.len) != NULL;
    return false;
}

static int64_t tz_ms(const wm_cond_env_t *env)
{
    return (int64_t)env->tz_offset_min * 60000;
}

static bool date_op(const cnode_t *n, const wm_json_t *v, const wm_cond_env_t *env)
{
    int64_t t, bound;
    if (!wm__json_instant(v, tz_ms(env), &t))
        return false;
    if (n->op == OP_WITHIN_LAST)
        return t <= env->now_ms && t >= env->now_ms - n->dur_ms;
    if (n->relative)
        bound = env->now_ms + n->dur_ms;
    else if (n->lit.kind == WM__V_NUM)
        bound = (int64_t)n->lit.num;
    else
        bound = n->lit.date_naive - tz_ms(env);
    return n->op == OP_BEFORE ? t < bound : t > bound;
}

static bool ordered(int r, uint8_t op)
{
    if (r == WM__CMP_NONE)
        return false;
    switch (op) {
    case OP_LT:
        return r < 0;
    case OP_LE:
        return r <= 0;
    case OP_GT:
        return r > 0;
    default:
        return r >= 0;
    }
}

/* Compare ops, with the literal or a resolved reference. */
static bool compare(const cnode_t *n, const wm_json_t *v, const wm_cond_env_t *env)
{
    wm__val_t refv;
    const wm__val_t *lit = &n->lit;
    if (n->ref_src) {
        const wm_json_t *rj;
        if (n->ref_src == S_PROFILE) {
            rj = profile_prop(env, n->ref_name);
        } else if (n->ref_src == S_TRIGGER) {
            wm_cond_env_t te = *env;
            te.event = env->trigger ? env->trigger : env->event;
            rj = event_prop(&te, n->ref_name);
        } else {
            rj = event_prop(env, n->ref_name);
        }
        if (!wm__val_from_json(present(rj), &refv))
            return n->op == OP_NE;
        lit = &refv;
    }
    if (n->op == OP_EQ || n->op == OP_NE)
        return (wm__val_cmp(v, lit, false, tz_ms(env)) == 0) == (n->op == OP_EQ);
    return ordered(wm__val_cmp(v, lit, true, tz_ms(env)), n->op);
}

static bool apply_op(const wm_cond_t *c, const cnode_t *n, const wm_json_t *v,
                     const wm_cond_env_t *env)
{
    if (!v)
        return n->op == OP_NE || n->op == OP_NOT_IN || n->op == OP_NOT_CONTAINS ||
               n->op == OP_NOT_SET;
    switch (n->op) {
    case OP_IS_SET:
        return true;
    case OP_NOT_SET:
        return false;
    case OP_BETWEEN:
        return ordered(wm__val_cmp(v, &n->lit, true, tz_ms(env)), OP_GE) &&
               ordered(wm__val_cmp(v, &n->hi, true, tz_ms(env)), OP_LE);
    case OP_IN:
        return in_list(&c->lists[n->aux], v);
    case OP_NOT_IN:
        return !in_list(&c->lists[n->aux], v);
    case OP_CONTAINS:
        return contains(n, v);
    case OP_NOT_CONTAINS:
        return !contains(n, v);
    case OP_MATCHES:
        return v->type == WM_JSON_STRING && regexec(c->res[n->aux], v->u.str, 0, NULL, 0) == 0;
    case OP_WITHIN_LAST:
    case OP_BEFORE:
    case OP_AFTER:
        return date_op(n, v, env);
    default:
        return compare(n, v, env);
    }
}

/* ------------------------------------------------------------ counters */

/* Room for a number's distinct-value text ("%.17g" or an int64). */
#define NUM_TEXT_MAX 40

static _Thread_local char distinct_buf[NUM_TEXT_MAX];

/* The number and distinct-value readings of a field: *dv points into the
 * field, or for numbers into buf. */
static void field_value(const wm_json_t *f, char buf[NUM_TEXT_MAX], double *value, const char **dv)
{
    double x = NAN;
    const char *s = NULL;
    switch (f->type) {
    case WM_JSON_NUMBER:
        x = f->u.num;
        if (f->is_int)
            snprintf(buf, NUM_TEXT_MAX, "%lld", (long long)f->i64);
        else
            snprintf(buf, NUM_TEXT_MAX, "%.17g", f->u.num);
        s = buf;
        break;
    case WM_JSON_STRING:
        if (!wm__parse_number(f->u.str, f->len, &x))
            x = NAN;
        s = f->u.str;
        break;
    case WM_JSON_TRUE:
    case WM_JSON_FALSE:
        s = f->type == WM_JSON_TRUE ? "true" : "false";
        break;
    default:
        break;
    }
    if (value)
        *value = x;
    if (dv)
        *dv = s;
}

/* Whether `event` feeds `spec`: the spec's event, its field set (when it
 * has one), and its where true with now = the event's time. {"trigger"}
 * references in the where resolve against `trigger` (NULL: the event
 * itself). *f is the field or NULL. Returns 1, 0, or an error from the
 * where. The buckets (through wm_counter_match) and the did scans both
 * decide here, so a scan counts exactly the events the buckets would. */
static int spec_match(const wm_counter_spec_t *spec, const wm_json_t *event,
                      const wm_json_t *trigger, const wm_json_t **f)
{
    *f = NULL;
    const char *name = wm_json_str(wm_json_get(event, "event"));
    if (!name || strcmp(name, spec->event) != 0)
        return 0;
    if (spec->field) {
        *f = present(wm_json_get(wm_json_get(event, "properties"), spec->field));
        if (!*f)
            return 0;
    }
    if (!spec->where)
        return 1;
    const wm_json_t *t = wm_json_get(event, "time");
    wm_cond_env_t env;
    memset(&env, 0, sizeof env);
    env.event = event;
    env.trigger = trigger;
    env.now_ms = t && t->type == WM_JSON_NUMBER && t->is_int ? t->i64 : 0;
    bool ok = false;
    int rc = wm_cond_eval(spec->where, &env, &ok);
    return rc < 0 ? rc : ok;
}

/* ------------------------------------------------------------ did */

static int32_t bound_day(const tbound_t *t, const wm_cond_env_t *env)
{
    if (t->naive)
        return (int32_t)wm__floor_div(t->ms, WM__DAY_MS);
    return wm_cond_day(t->ms, env->tz_offset_min);
}

static bool num_cmp(double x, const did_t *d)
{
    switch (d->op) {
    case OP_EQ:
        return x == d->lo;
    case OP_NE:
        return x != d->lo;
    case OP_LT:
        return x < d->lo;
    case OP_LE:
        return x <= d->lo;
    case OP_GT:
        return x > d->lo;
    case OP_GE:
        return x >= d->lo;
    default:
        return x >= d->lo && x <= d->hi;
    }
}

/* A did whose where compares with the triggering event ("the same fund")
 * cannot be pre-aggregated per counter: it scans the user's events of the
 * window instead (the window is days, so the scan is bounded). So does a
 * distinct whose buckets lost a day's exact value set.
 *
 * Distinct values of a scan go into a per-thread set sized for every value
 * of the most events a scan reads (WM_COND_SCAN_EVENTS_MAX), which is left
 * empty after each scan: eval allocates nothing. */
#define SCAN_SLOTS 16384
_Static_assert(SCAN_SLOTS >= WM_COND_SCAN_EVENTS_MAX + WM_COND_SCAN_EVENTS_MAX / 2,
               "the scan's distinct set stays under ~2/3 full");
static _Thread_local uint64_t scan_slot[SCAN_SLOTS];
static _Thread_local uint32_t scan_filled[WM_COND_SCAN_EVENTS_MAX];
static _Thread_local bool scan_busy;

typedef struct did_scan {
    const wm_counter_spec_t *spec;
    const wm_json_t *trigger;
    wm__hset_t *values;     /* distinct values, or NULL when not asked */
    wm_agg_t *a;
    double mn, mx;
    int err;
} did_scan_t;

static int did_scan_cb(void *arg, const wm_json_t *ev)
{
    did_scan_t *st = arg;
    const wm_json_t *f;
    int m = ev ? spec_match(st->spec, ev, st->trigger, &f) : 0;
    if (m < 0) {
        st->err = m;
        return 1;
    }
    if (m == 0)
        return 0;
    char num[NUM_TEXT_MAX];
    double v = NAN;
    const char *dv = NULL;
    if (f)
        field_value(f, num, &v, &dv);
    wm_agg_t *a = st->a;
    a->count++;
    if (!isnan(v)) { /* counted, but only numbers add to sum/min/max */
        a->sum += v;
        if (v < st->mn)
            st->mn = v;
        if (v > st->mx)
            st->mx = v;
    }
    if (st->values && dv) {
        int rc = wm__hset_add(st->values, wm__stable_hash(dv, strlen(dv)));
        if (rc < 0) {
            st->err = rc; /* more values than any scan the runtime makes */
            return 1;
        }
    }
    return 0;
}

/* Aggregates `spec` over local days [from, to] from env->events, the way
 * wm_buckets_query would from complete buckets; distinct only when asked. */
static int did_scan(const wm_counter_spec_t *spec, bool distinct, const wm_cond_env_t *env,
                    int32_t from, int32_t to, wm_agg_t *a)
{
    memset(a, 0, sizeof *a);
    a->min = NAN;
    a->max = NAN;
    a->distinct_exact = true;
    did_scan_t st = {.spec = spec, .trigger = env->trigger ? env->trigger : env->event,
                     .a = a, .mn = INFINITY, .mx = -INFINITY};
    wm__hset_t values;
    if (distinct) {
        if (scan_busy)
            return WM_EBUSY; /* asked from inside another scan's callback */
        scan_busy = true;
        wm__hset_init(&values, scan_slot, SCAN_SLOTS, scan_filled, WM_COND_SCAN_EVENTS_MAX);
        st.values = &values;
    }
    int rc = env->events(env->ctx, (int64_t)from * WM__DAY_MS - tz_ms(env),
                         ((int64_t)to + 1) * WM__DAY_MS - tz_ms(env), did_scan_cb, &st);
    if (distinct) {
        a->distinct = wm__hset_count(&values);
        wm__hset_clear(&values);
        scan_busy = false;
    }
    if (st.mn <= st.mx) {
        a->min = st.mn;
        a->max = st.mx;
    }
    return rc ? rc : st.err;
}

static int eval_did(const wm_cond_t *c, const cnode_t *n, const wm_cond_env_t *env, bool *r)
{
    const did_t *d = &c->dids[n->aux];
    *r = false;
    if (d->scan ? !env->events : !env->behaviour)
        return 0;
    int32_t today = wm_cond_day(env->now_ms, env->tz_offset_min);
    int32_t from = d->days ? today - d->days + 1 : bound_day(&d->from, env);
    int32_t to = d->days || !d->to.set ? today : bound_day(&d->to, env);
    const wm_counter_spec_t *spec = &c->specs[d->spec];
    bool distinct = d->agg == AGG_DISTINCT;
    wm_agg_t a;
    int rc;
    if (d->scan) {
        rc = did_scan(spec, distinct, env, from, to, &a);
    } else {
        memset(&a, 0, sizeof a);
        rc = env->behaviour(env->ctx, spec, from, to, &a);
        /* a day in range lost its exact value set: count from the events */
        if (rc == 0 && distinct && !a.distinct_exact && env->events)
            rc = did_scan(spec, true, env, from, to, &a);
    }
    if (rc < 0)
        return rc;
    double x;
    switch (d->agg) {
    case AGG_COUNT:
        x = (double)a.count;
        break;
    case AGG_SUM:
        x = a.sum;
        break;
    case AGG_AVG:
        x = a.count ? a.sum / (double)a.count : NAN;
        break;
    case AGG_MIN:
        x = a.count ? a.min : NAN;
        break;
    case AGG_MAX:
        x = a.count ? a.max : NAN;
        break;
    default:
        x = (double)a.distinct;
    }
    *r = !isnan(x) && num_cmp(x, d);
    return 0;
}

/* ------------------------------------------------------------ sequence */

typedef struct seq_scan {
    const seq_t *s;
    const wm_cond_env_t *env;
    uint32_t step;
    int err;
} seq_scan_t;

static int seq_cb(void *arg, const wm_json_t *ev)
{
    seq_scan_t *st = arg;
    const seq_t *s = st->s;
    const char *name = ev ? wm_json_str(wm_json_get(ev, "event")) : NULL;
    if (!name || strcmp(name, s->event[st->step]) != 0)
        return 0;
    if (s->where[st->step]) {
        wm_cond_env_t e = *st->env;
        e.trigger = st->env->trigger ? st->env->trigger : st->env->event;
        e.event = ev;
        bool ok = false;
        int rc = wm_cond_eval(s->where[st->step], &e, &ok);
        if (rc < 0) {
            st->err = rc;
            return 1;
        }
        if (!ok)
            return 0;
    }
    return ++st->step == s->n;
}

static int64_t bound_ms(const tbound_t *t, const wm_cond_env_t *env)
{
    return t->naive ? t->ms - tz_ms(env) : t->ms;
}

static int eval_seq(const wm_cond_t *c, const cnode_t *n, const wm_cond_env_t *env, bool *r)
{
    const seq_t *s = &c->seqs[n->aux];
    *r = false;
    if (!env->events)
        return 0;
    int64_t from, to;
    if (s->within_ms) {
        from = env->now_ms - s->within_ms;
        to = env->now_ms + 1; /* the current event (time == now) is in the window */
    } else {
        from = bound_ms(&s->from, env);
        to = s->to.set ? bound_ms(&s->to, env) : env->now_ms + 1;
    }
    seq_scan_t st = {s, env, 0, 0};
    int rc = env->events(env->ctx, from, to, seq_cb, &st);
    if (st.err)
        return st.err;
    if (rc < 0)
        return rc;
    *r = st.step == s->n;
    return 0;
}

/* ------------------------------------------------------------ program */

static int eval_group(const wm_cond_t *c, uint32_t i, const wm_cond_env_t *env, bool *r)
{
    bool want = c->nodes[i].kind == N_ANY; /* the value that decides early */
    for (uint32_t k = i + 1; k < c->nodes[i].end; k = c->nodes[k].end) {
        bool x;
        int rc = eval_node(c, k, env, &x);
        if (rc < 0)
            return rc;
        if (x == want) {
            *r = want;
            return 0;
        }
    }
    *r = !want;
    return 0;
}

static int eval_node(const wm_cond_t *c, uint32_t i, const wm_cond_env_t *env, bool *r)
{
    const cnode_t *n = &c->nodes[i];
    switch (n->kind) {
    case N_ALL:
    case N_ANY:
        return eval_group(c, i, env, r);
    case N_NOT: {
        int rc = eval_node(c, i + 1, env, r);
        *r = !*r;
        return rc;
    }
    case N_PRED:
        *r = apply_op(c, n, source_value(n, env), env);
        return 0;
    case N_DID:
        return eval_did(c, n, env, r);
    case N_SEQ:
        return eval_seq(c, n, env, r);
    default:
        *r = env->in_segment && env->in_segment(env->ctx, n->name);
        return 0;
    }
}

int wm_cond_eval(const wm_cond_t *c, const wm_cond_env_t *env, bool *result)
{
    if (!c || !env || !result || c->n_nodes == 0)
        return WM_EINVAL;
    *result = false;
    return eval_node(c, 0, env, result);
}

/* ------------------------------------------------------------ counter matching */

bool wm_counter_match(const wm_counter_spec_t *spec, const wm_json_t *event, double *value,
                      const char **distinct_value)
{
    if (value)
        *value = NAN;
    if (distinct_value)
        *distinct_value = NULL;
    if (!spec || !event)
        return false;
    const wm_json_t *f;
    if (spec_match(spec, event, NULL, &f) <= 0)
        return false;
    if (f)
        field_value(f, distinct_buf, value, distinct_value);
    return true;
}
