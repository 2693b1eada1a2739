/*
 * plan.c - which customers match a condition, by column scans.
 *
 * A preview ("how many customers would this segment have?") over a million
 * customers cannot afford a full evaluation per customer (a profile parse,
 * a counter read, a tag read each). The condition tree is planned instead:
 *
 *   all / any / not          AND / OR / ANDNOT of the children's bitmaps
 *   {"in_segment": k}        the segment's member bitmap
 *   {"tag": t, ...}          one range scan of the tag index (project, t)
 *   {"profile": p, ...}      one scan of the profiles, reading only p
 *   {"did": ..} (kept)       one range scan of that counter (counters are
 *                            keyed by spec first)
 *   anything else            the full evaluation, for the customers the
 *                            other children of an "all" left
 *
 * A leaf is the compiled single predicate; it is evaluated on the one value
 * the scan read. Customers the scan never meets (no such tag, profile
 * property or counter) are included when the leaf holds on a missing value
 * (not_set, "count = 0" ...), so the answer is the evaluator's answer.
 * Day windows are counted in the project's zone (Asia/Shanghai); a customer
 * with another "timezone" is exact in the published segment, which
 * evaluates per customer.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "audience/aud_internal.h"
#include "waymark/alloc.h"
#include "waymark/bytes.h"
#include "waymark/error.h"

#define PLAN_TZ_MIN 480

typedef struct plan {
    wm_aud_t *a;
    MDB_txn *txn;
    const char *project;
    int64_t now_ms;
    wm_arena_t arena;           /* reset per customer in scans */
    roaring_bitmap_t *universe;
    int err;
} plan_t;

/* The environment a leaf sees: one value, read by the scan. */
typedef struct leaf_env {
    wm_json_t profile;          /* an OBJECT with at most one member */
    const wm_json_t *tag_value;
    const unsigned char *blob;  /* counter blob, or NULL */
    size_t blob_len;
} leaf_env_t;

static const wm_json_t *leaf_tag(void *ctx, const char *tag)
{
    return ((leaf_env_t *)ctx)->tag_value;
}

static int leaf_behaviour(void *ctx, const wm_counter_spec_t *spec, int32_t from_day, int32_t to_day,
                          wm_agg_t *out)
{
    leaf_env_t *le = ctx;
    memset(out, 0, sizeof *out);
    return le->blob ? wm_buckets_query(le->blob, le->blob_len, from_day, to_day, out) : 0;
}

static bool leaf_eval(plan_t *pl, const wm_cond_t *c, leaf_env_t *le)
{
    wm_cond_env_t env = {.profile = &le->profile, .now_ms = pl->now_ms, .tz_offset_min = PLAN_TZ_MIN,
                         .ctx = le, .tag = leaf_tag, .behaviour = leaf_behaviour};
    bool r = false;
    return wm_cond_eval(c, &env, &r) == 0 && r;
}

/* Leaf results by the raw value text: a tag or profile property has few
 * distinct values (tiers, risk levels, cities), so most customers cost one
 * hash and a compare instead of a parse and an evaluation. */
#define MEMO_SLOTS 512

typedef struct memo {
    uint64_t hash[MEMO_SLOTS];
    uint32_t len[MEMO_SLOTS];
    const char *text[MEMO_SLOTS];   /* copies in the memo's arena */
    uint8_t state[MEMO_SLOTS];      /* 0 empty, 1 false, 2 true */
    uint32_t used;
    wm_arena_t arena;
} memo_t;

static int memo_get(memo_t *m, const void *v, size_t n, uint64_t h)
{
    for (uint32_t i = (uint32_t)h % MEMO_SLOTS, k = 0; k < MEMO_SLOTS; k++, i = (i + 1) % MEMO_SLOTS) {
        if (!m->state[i])
            return -1;
        if (m->hash[i] == h && m->len[i] == n && !memcmp(m->text[i], v, n))
            return m->state[i] == 2;
    }
    return -1;
}

static void memo_put(memo_t *m, const void *v, size_t n, uint64_t h, bool r)
{
    if (m->used >= MEMO_SLOTS / 2)
        return; /* many distinct values: evaluate each */
    char *copy = wm_arena_strndup(&m->arena, v, n);
    if (!copy)
        return;
    uint32_t i = (uint32_t)h % MEMO_SLOTS;
    while (m->state[i])
        i = (i + 1) % MEMO_SLOTS;
    m->hash[i] = h;
    m->len[i] = (uint32_t)n;
    m->text[i] = copy;
    m->state[i] = r ? 2 : 1;
    m->used++;
}

static memo_t *memo_new(void)
{
    memo_t *m = wm_calloc(1, sizeof *m);
    if (m)
        wm_arena_init(&m->arena, 4096);
    return m;
}

static void memo_free(memo_t *m)
{
    if (m) {
        wm_arena_release(&m->arena);
        wm_free(m);
    }
}

/* Whether the leaf holds on a missing value (then the customers a scan never
 * meets are members, and the scan keeps track of whom it met). */
static bool holds_on_missing(plan_t *pl, const wm_cond_t *c)
{
    leaf_env_t le = {.profile = {.type = WM_JSON_OBJECT}};
    return leaf_eval(pl, c, &le);
}

/* Adds the customers a scan never met when the leaf holds on nothing. */
static void add_missing(plan_t *pl, const wm_cond_t *c, roaring_bitmap_t *seen, roaring_bitmap_t *out)
{
    leaf_env_t le = {.profile = {.type = WM_JSON_OBJECT}};
    if (!leaf_eval(pl, c, &le))
        return;
    roaring_bitmap_t *rest = roaring_bitmap_andnot(pl->universe, seen);
    if (rest) {
        roaring_bitmap_or_inplace(out, rest);
        roaring_bitmap_free(rest);
    }
}

static roaring_bitmap_t *scan_tag(plan_t *pl, const wm_json_t *ast, const wm_cond_t *c)
{
    const char *tag = wm_json_str(wm_json_get(ast, "tag"));
    size_t pl_len = strlen(pl->project), tl = tag ? strlen(tag) : 0;
    unsigned char pb[600];
    roaring_bitmap_t *out = roaring_bitmap_create(), *seen = roaring_bitmap_create();
    MDB_cursor *cur;
    if (!tag || pl_len + tl + 2 > sizeof pb || !out || !seen || mdb_cursor_open(pl->txn, pl->a->tagidx, &cur)) {
        pl->err = WM_EIO;
        roaring_bitmap_free(seen);
        return out;
    }
    memcpy(pb, pl->project, pl_len);
    pb[pl_len] = 0;
    memcpy(pb + pl_len + 1, tag, tl);
    pb[pl_len + 1 + tl] = 0;
    size_t plen = pl_len + tl + 2;
    bool track = holds_on_missing(pl, c);
    memo_t *memo = memo_new();
    MDB_val k = {plen, pb}, v;
    int rc = memo ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) : MDB_NOTFOUND;
    while (rc == 0 && k.mv_size == plen + 8 && !memcmp(k.mv_data, pb, plen)) {
        uint32_t user = (uint32_t)wm_get_be64((const unsigned char *)k.mv_data + plen);
        uint64_t h = wm_hash64(v.mv_data, v.mv_size, 0);
        int r = memo_get(memo, v.mv_data, v.mv_size, h);
        if (r < 0) {
            wm_arena_reset(&pl->arena);
            char *copy = wm_arena_strndup(&pl->arena, v.mv_data, v.mv_size);
            wm_json_t *val;
            wm_json_error_t je;
            if (copy && wm_json_parse(&pl->arena, copy, v.mv_size, &val, &je) == 0) {
                leaf_env_t le = {.profile = {.type = WM_JSON_OBJECT}, .tag_value = val};
                r = leaf_eval(pl, c, &le);
                memo_put(memo, v.mv_data, v.mv_size, h, r);
            }
        }
        if (r >= 0 && track)
            roaring_bitmap_add(seen, user);
        if (r > 0)
            roaring_bitmap_add(out, user);
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    memo_free(memo);
    if (track)
        add_missing(pl, c, seen, out);
    roaring_bitmap_free(seen);
    return out;
}

static roaring_bitmap_t *scan_profile(plan_t *pl, const wm_json_t *ast, const wm_cond_t *c)
{
    const char *prop = wm_json_str(wm_json_get(ast, "profile"));
    roaring_bitmap_t *out = roaring_bitmap_create(), *seen = roaring_bitmap_create();
    MDB_cursor *cur;
    if (!prop || !out || !seen || mdb_cursor_open(pl->txn, pl->a->host.dbi_profiles, &cur)) {
        pl->err = WM_EIO;
        roaring_bitmap_free(seen);
        return out;
    }
    bool track = holds_on_missing(pl, c);
    memo_t *memo = memo_new();
    MDB_val k, v;
    int rc = memo ? mdb_cursor_get(cur, &k, &v, MDB_FIRST) : MDB_NOTFOUND;
    while (rc == 0) {
        uint32_t user = k.mv_size == 8 ? (uint32_t)wm_get_be64(k.mv_data) : 0;
        const char *raw;
        size_t rl;
        if (user && wm_json_find_member(v.mv_data, v.mv_size, prop, &raw, &rl) == 0) {
            uint64_t h = wm_hash64(raw, rl, 0);
            int r = memo_get(memo, raw, rl, h);
            if (r < 0) {
                wm_arena_reset(&pl->arena);
                char *copy = wm_arena_strndup(&pl->arena, raw, rl);
                wm_json_t *val;
                wm_json_error_t je;
                if (copy && wm_json_parse(&pl->arena, copy, rl, &val, &je) == 0) {
                    val->key = prop;
                    val->key_len = (uint32_t)strlen(prop);
                    val->next = NULL;
                    leaf_env_t le = {.profile = {.type = WM_JSON_OBJECT, .len = 1, .u.child = val}};
                    r = leaf_eval(pl, c, &le);
                    memo_put(memo, raw, rl, h, r);
                }
            }
            if (r >= 0 && track)
                roaring_bitmap_add(seen, user);
            if (r > 0)
                roaring_bitmap_add(out, user);
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    memo_free(memo);
    roaring_bitmap_and_inplace(out, pl->universe);
    if (track)
        add_missing(pl, c, seen, out);
    roaring_bitmap_free(seen);
    return out;
}

static roaring_bitmap_t *scan_counter(plan_t *pl, const wm_cond_t *c, const wm_counter_spec_t *spec)
{
    roaring_bitmap_t *out = roaring_bitmap_create(), *seen = roaring_bitmap_create();
    MDB_cursor *cur;
    if (!out || !seen || mdb_cursor_open(pl->txn, pl->a->cnt, &cur)) {
        pl->err = WM_EIO;
        roaring_bitmap_free(seen);
        return out;
    }
    unsigned char pb[8];
    wm_put_be64(pb, wm__aud_spec_hash(spec->key));
    bool track = holds_on_missing(pl, c);
    MDB_val k = {8, pb}, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size == 16 && !memcmp(k.mv_data, pb, 8)) {
        uint32_t user = (uint32_t)wm_get_be64((const unsigned char *)k.mv_data + 8);
        leaf_env_t le = {.profile = {.type = WM_JSON_OBJECT}, .blob = v.mv_data, .blob_len = v.mv_size};
        if (track)
            roaring_bitmap_add(seen, user);
        if (leaf_eval(pl, c, &le))
            roaring_bitmap_add(out, user);
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    roaring_bitmap_and_inplace(out, pl->universe);
    if (track)
        add_missing(pl, c, seen, out);
    roaring_bitmap_free(seen);
    return out;
}

/* The full evaluation for each customer of `candidates`. */
static roaring_bitmap_t *eval_each(plan_t *pl, const wm_cond_t *c, const roaring_bitmap_t *candidates)
{
    roaring_bitmap_t *out = roaring_bitmap_create();
    roaring_uint32_iterator_t *it = out ? roaring_create_iterator(candidates) : NULL;
    while (it && it->has_value) {
        wm_arena_reset(&pl->arena);
        if (wm__aud_eval_user(pl->a, pl->txn, &pl->arena, pl->project, it->current_value, c, pl->now_ms))
            roaring_bitmap_add(out, it->current_value);
        roaring_advance_uint32_iterator(it);
    }
    if (it)
        roaring_free_uint32_iterator(it);
    return out;
}

/* Whether a leaf can be answered by a scan, and which. */
enum { LEAF_OTHER, LEAF_SEGMENT, LEAF_TAG, LEAF_DID, LEAF_PROFILE };

static bool is_reference(const wm_json_t *v)
{
    return v && v->type == WM_JSON_OBJECT;
}

static int leaf_kind(const wm_json_t *ast)
{
    if (!ast || ast->type != WM_JSON_OBJECT)
        return LEAF_OTHER;
    if (wm_json_get(ast, "in_segment"))
        return LEAF_SEGMENT;
    if (wm_json_get(ast, "tag") && !is_reference(wm_json_get(ast, "value")))
        return LEAF_TAG;
    if (wm_json_get(ast, "profile") && !wm_json_get(ast, "item") && !is_reference(wm_json_get(ast, "value")))
        return LEAF_PROFILE;
    if (wm_json_get(ast, "did"))
        return LEAF_DID;
    return LEAF_OTHER;
}

static roaring_bitmap_t *plan_node(plan_t *pl, const wm_json_t *ast, const roaring_bitmap_t *within);

static roaring_bitmap_t *plan_leaf(plan_t *pl, const wm_json_t *ast, const roaring_bitmap_t *within)
{
    int kind = leaf_kind(ast);
    if (kind == LEAF_SEGMENT) {
        const wm_aseg_t *g = wm__areg_seg(wm__areg_snapshot(pl->a->reg), pl->project,
                                          wm_json_str(wm_json_get(ast, "in_segment")) ? wm_json_str(wm_json_get(ast, "in_segment")) : "");
        roaring_bitmap_t *b = roaring_bitmap_create();
        if (g && b)
            wm__aud_members_or(pl->a, g->id, b);
        return b;
    }
    wm_cond_t *c = NULL;
    wm_cond_error_t ce;
    if (wm_cond_compile(ast, &c, &ce)) {
        pl->err = WM_EINVAL;
        return roaring_bitmap_create();
    }
    roaring_bitmap_t *out = NULL;
    const wm_counter_spec_t *specs;
    uint32_t n_specs;
    wm_cond_counters(c, &specs, &n_specs);
    wm_cond_deps_t deps;
    wm_arena_t da;
    wm_arena_init(&da, 1024);
    bool scan_did = kind == LEAF_DID && n_specs == 1 && wm_cond_deps(c, &da, &deps) == 0 && !deps.event &&
                    wm__aud_spec_kept(pl->a, pl->txn, &specs[0]);
    wm_arena_release(&da);
    if (kind == LEAF_TAG)
        out = scan_tag(pl, ast, c);
    else if (kind == LEAF_PROFILE)
        out = scan_profile(pl, ast, c);
    else if (scan_did)
        out = scan_counter(pl, c, &specs[0]);
    else
        out = eval_each(pl, c, within);
    wm_cond_free(c);
    return out;
}

static roaring_bitmap_t *plan_all(plan_t *pl, const wm_json_t *list, const roaring_bitmap_t *within)
{
    roaring_bitmap_t *acc = roaring_bitmap_copy(within);
    /* scans first (cheapest first), full evaluations last, on what is left */
    static const int order[] = {LEAF_SEGMENT, LEAF_TAG, LEAF_DID, LEAF_PROFILE, -1, LEAF_OTHER};
    for (size_t o = 0; acc && o < sizeof order / sizeof order[0]; o++)
        for (const wm_json_t *ch = list->u.child; ch && acc && !pl->err; ch = ch->next) {
            const wm_json_t *sub = wm_json_get(ch, "all") ? ch : wm_json_get(ch, "any") ? ch
                                 : wm_json_get(ch, "not") ? ch : NULL;
            int kind = sub ? -1 : leaf_kind(ch);
            if (kind != order[o])
                continue;
            if (!roaring_bitmap_get_cardinality(acc))
                return acc;
            roaring_bitmap_t *b = plan_node(pl, ch, acc);
            if (!b) {
                pl->err = WM_ENOMEM;
                break;
            }
            roaring_bitmap_and_inplace(acc, b);
            roaring_bitmap_free(b);
        }
    return acc;
}

static roaring_bitmap_t *plan_node(plan_t *pl, const wm_json_t *ast, const roaring_bitmap_t *within)
{
    const wm_json_t *all = wm_json_get(ast, "all"), *any = wm_json_get(ast, "any"), *not = wm_json_get(ast, "not");
    if (all && all->type == WM_JSON_ARRAY && all->u.child)
        return plan_all(pl, all, within);
    if (any && any->type == WM_JSON_ARRAY && any->u.child) {
        roaring_bitmap_t *acc = roaring_bitmap_create();
        for (const wm_json_t *ch = any->u.child; ch && acc && !pl->err; ch = ch->next) {
            roaring_bitmap_t *b = plan_node(pl, ch, within);
            if (b) {
                roaring_bitmap_or_inplace(acc, b);
                roaring_bitmap_free(b);
            }
        }
        return acc;
    }
    if (not) {
        roaring_bitmap_t *b = plan_node(pl, not, within);
        roaring_bitmap_t *r = b ? roaring_bitmap_andnot(within, b) : NULL;
        roaring_bitmap_free(b);
        return r;
    }
    roaring_bitmap_t *b = plan_leaf(pl, ast, within);
    if (b)
        roaring_bitmap_and_inplace(b, within);
    return b;
}

int wm__aud_select(wm_aud_t *a, const char *project, const wm_json_t *ast, int64_t now_ms, void **out)
{
    *out = NULL;
    plan_t pl = {.a = a, .project = project, .now_ms = now_ms};
    if (mdb_txn_begin(a->env, NULL, MDB_RDONLY, &pl.txn))
        return WM_EIO;
    wm_arena_init(&pl.arena, 16 * 1024);
    pl.universe = wm__aud_universe_copy(a, project);
    roaring_bitmap_t *r = pl.universe ? plan_node(&pl, ast, pl.universe) : NULL;
    int rc = pl.err ? pl.err : r ? 0 : WM_ENOMEM;
    if (rc) {
        roaring_bitmap_free(r);
        r = NULL;
    }
    roaring_bitmap_free(pl.universe);
    wm_arena_release(&pl.arena);
    mdb_txn_abort(pl.txn);
    *out = r;
    return rc;
}
