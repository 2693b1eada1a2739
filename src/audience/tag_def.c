/*
 * tag_def.c - tag (标签) definitions: JSON -> validated, immutable
 * wm_tag_def_t (docs/tags.md).
 *
 * A tag gives every customer at most one value. Its kind says where the
 * value comes from: ordered rule layers (分层标签), a behaviour metric
 * optionally cut into buckets (基础指标值), the first / last value of an
 * event property (首末次特征), the most frequent one over a window (事件偏好
 * 属性), an uploaded list (导入), or a value set by hand or by a journey.
 *
 * The compiler checks the whole definition and reports every problem with
 * its JSON path. Behaviour is not re-implemented here: a metric is the did-
 * clause that says the same thing ({"did": event, "where": ..., "field":
 * ..., "within": ...}), compiled by the rules module, so the runtime keeps
 * its counter like any condition's and a metric tag and a segment over the
 * same events share one counter. Event filters ("where") go through that
 * same did-clause, so they obey the did rules (event properties only) and
 * their errors carry the tag's paths ("$.where.op").
 *
 * Ownership: strings and arrays live in the definition's arena; compiled
 * conditions are owned by the definition and freed by wm_tag_free.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "audience/def_internal.h"
#include "waymark/alloc.h"
#include "waymark/error.h"

#define DAY_MS 86400000LL

static const char *const KIND_NAMES[] = {NULL, "rule", "metric", "first", "last", "preference", "imported",
                                         "manual"};
#define N_KINDS (sizeof KIND_NAMES / sizeof KIND_NAMES[0])
static const char *const TYPE_NAMES[] = {NULL, "string", "number", "bool"};
static const char *const AGG_NAMES[] = {NULL, "count", "sum", "avg", "min", "max", "distinct", "days_since"};
#define N_AGGS (sizeof AGG_NAMES / sizeof AGG_NAMES[0])

#define COMMON "key", "name", "description", "kind", "type"
static const char *const FIELDS_RULE[] = {COMMON, "layers", "default", NULL};
static const char *const FIELDS_METRIC[] = {COMMON, "event", "where", "agg", "field", "within", "buckets", NULL};
static const char *const FIELDS_FIRST_LAST[] = {COMMON, "event", "field", "where", NULL};
static const char *const FIELDS_PREFERENCE[] = {COMMON, "event", "field", "within", "where", NULL};
static const char *const FIELDS_PLAIN[] = {COMMON, NULL};
static const char *const FIELDS_ANY[] = {COMMON,  "layers", "default", "event", "where",
                                         "agg",   "field",  "within",  "buckets", NULL};

typedef struct tcx {
    wm__aud_cx_t cx;
    wm_tag_def_t *t;
    wm__aud_inputs_t in;
    bool type_given;
} tcx_t;

const char *wm_tag_kind_name(wm_tag_kind_t k)
{
    return k >= WM_TAG_RULE && (size_t)k < N_KINDS ? KIND_NAMES[k] : "unknown";
}

static int lookup(const char *const *names, size_t n, const char *s)
{
    for (size_t k = 1; s && k < n; k++)
        if (strcmp(names[k], s) == 0)
            return (int)k;
    return 0;
}

/* ------------------------------------------------------------ values */

/* A tag value of the tag's type, as text ("高净值", "100000", "true"), or
 * NULL with an error at path. */
static char *tag_value(tcx_t *tc, const wm_json_t *v, const char *path)
{
    wm__aud_cx_t *cx = &tc->cx;
    const char *type = TYPE_NAMES[tc->t->type];
    char num[32];
    switch (tc->t->type) {
    case WM_TAG_STRING:
        if (v->type != WM_JSON_STRING)
            break;
        if (v->len == 0 || strlen(v->u.str) != v->len || v->len > WM_TAG_VALUE_MAX) {
            wm__aud_err(cx, path, "must be a non-empty text of at most %d bytes without NUL characters",
                        WM_TAG_VALUE_MAX);
            return NULL;
        }
        return wm__aud_dup(cx, v->u.str);
    case WM_TAG_NUMBER:
        if (v->type != WM_JSON_NUMBER)
            break;
        if (v->is_int)
            snprintf(num, sizeof num, "%" PRId64, v->i64);
        else
            wm__aud_num_text(v->u.num, num);
        return wm__aud_dup(cx, num);
    case WM_TAG_BOOL:
        if (v->type != WM_JSON_TRUE && v->type != WM_JSON_FALSE)
            break;
        return wm__aud_dup(cx, v->type == WM_JSON_TRUE ? "true" : "false");
    }
    wm__aud_err(cx, path, "must be a %s (the tag's type is %s), not %s", type, type, wm_json_type_name(v->type));
    return NULL;
}

/* ------------------------------------------------------------ common */

static void parse_type(tcx_t *tc, const wm_json_t *def)
{
    const char *s = wm__aud_str(&tc->cx, def, "type", "$", false, 64, false);
    tc->t->type = WM_TAG_STRING;
    if (!wm_json_get(def, "type"))
        return;
    tc->type_given = true;
    int k = lookup(TYPE_NAMES, 4, s);
    if (k)
        tc->t->type = (wm_tag_type_t)k;
    else if (s)
        wm__aud_err(&tc->cx, "$.type", "must be string, number or bool");
}

static void parse_common(tcx_t *tc, const wm_json_t *def)
{
    wm__aud_cx_t *cx = &tc->cx;
    wm_tag_def_t *t = tc->t;
    t->key = wm__aud_dup(cx, wm__aud_key(cx, def, "key", "$", true));
    t->name = wm__aud_dup(cx, wm__aud_str(cx, def, "name", "$", false, WM_AUD_NAME_MAX, false));
    t->description = wm__aud_dup(cx, wm__aud_str(cx, def, "description", "$", false, WM_AUD_DESCRIPTION_MAX, true));
    const char *kind = wm__aud_str(cx, def, "kind", "$", true, 64, false);
    int k = lookup(KIND_NAMES, N_KINDS, kind);
    if (k)
        t->kind = (wm_tag_kind_t)k;
    else if (kind)
        wm__aud_err(cx, "$.kind", "unknown kind '%.64s' (rule, metric, first, last, preference, imported, manual)",
                    kind);
    parse_type(tc, def);
    static const char *const *const allowed[] = {
        NULL, FIELDS_RULE, FIELDS_METRIC, FIELDS_FIRST_LAST, FIELDS_FIRST_LAST, FIELDS_PREFERENCE,
        FIELDS_PLAIN, FIELDS_PLAIN,
    };
    char what[48];
    const char *name = wm_tag_kind_name(t->kind);
    snprintf(what, sizeof what, "%s %s tag", wm__aud_article(name), name);
    if (k)
        wm__aud_check_fields(cx, def, "$", allowed[k], FIELDS_ANY, what);
    else
        wm__aud_check_fields(cx, def, "$", FIELDS_ANY, NULL, "a tag");
}

/* ------------------------------------------------------------ inputs */

/* Adds what a customer-level condition (a layer's "if") reads, checking
 * that it does not read the tag itself nor the current event. */
static void add_cond_inputs(tcx_t *tc, const wm_cond_t *c, const char *path)
{
    wm_cond_deps_t d;
    if (!wm__aud_deps(&tc->cx, c, &d))
        return;
    if (tc->t->key && wm__aud_names_has(d.tags, d.n_tags, tc->t->key))
        wm__aud_err(&tc->cx, path, "a tag cannot read itself ({\"tag\": \"%s\"})", tc->t->key);
    if (d.event)
        wm__aud_err(&tc->cx, path,
                    "a tag's condition describes the customer, not one event: it cannot read the current "
                    "event (prop, trigger, item from the event); filter events in a did clause's where");
    wm__aud_inputs_add(&tc->cx, &tc->in, &d);
}

static void copy_inputs(tcx_t *tc)
{
    wm_tag_def_t *t = tc->t;
    t->uses_profile = tc->in.profile;
    t->uses_clock |= tc->in.clock;
    t->input_events = tc->in.events.v;
    t->n_input_events = tc->in.events.n;
    t->input_tags = tc->in.tags.v;
    t->n_input_tags = tc->in.tags.n;
    t->input_segments = tc->in.segments.v;
    t->n_input_segments = tc->in.segments.n;
}

/* ------------------------------------------------------------ rule */

static void parse_layer(tcx_t *tc, const wm_json_t *o, uint32_t i)
{
    wm__aud_cx_t *cx = &tc->cx;
    wm_tag_layer_t *layer = &tc->t->layers[i];
    char base[WM__AUD_PATH_MAX], path[WM__AUD_PATH_MAX];
    wm__aud_path_idx(base, "$.layers", i);
    if (o->type != WM_JSON_OBJECT) {
        wm__aud_err(cx, base, "a layer is {\"value\": ..., \"if\": condition}");
        return;
    }
    wm__aud_check_fields(cx, o, base, (const char *const[]){"value", "if", NULL}, NULL, "a layer");
    const wm_json_t *v = wm_json_get(o, "value");
    wm__aud_path_key(path, base, "value");
    if (!v)
        wm__aud_err(cx, path, "missing required field");
    else
        layer->value = tag_value(tc, v, path);
    const wm_json_t *cond = wm_json_get(o, "if");
    wm__aud_path_key(path, base, "if");
    if (!cond) {
        wm__aud_err(cx, path, "missing required field");
        return;
    }
    layer->cond = wm__aud_cond(cx, cond, path);
    if (layer->cond)
        add_cond_inputs(tc, layer->cond, path);
}

/* The layer holding value, or UINT32_MAX. */
static uint32_t layer_with(const wm_tag_def_t *t, uint32_t before, const char *value)
{
    for (uint32_t k = 0; value && k < before; k++)
        if (t->layers[k].value && strcmp(t->layers[k].value, value) == 0)
            return k;
    return UINT32_MAX;
}

static void parse_rule(tcx_t *tc, const wm_json_t *def)
{
    wm__aud_cx_t *cx = &tc->cx;
    wm_tag_def_t *t = tc->t;
    const wm_json_t *layers = wm_json_get(def, "layers");
    if (!layers) {
        wm__aud_err(cx, "$.layers", "missing required field");
    } else if (layers->type != WM_JSON_ARRAY || layers->len == 0 || layers->len > WM_TAG_LAYERS_MAX) {
        wm__aud_err(cx, "$.layers", "must be a list of 1 to %d layers", WM_TAG_LAYERS_MAX);
    } else if ((t->layers = wm_arena_alloc(&t->arena, layers->len * sizeof *t->layers)) == NULL) {
        cx->oom = true;
    } else {
        memset(t->layers, 0, layers->len * sizeof *t->layers);
        t->n_layers = layers->len;
        uint32_t i = 0;
        for (const wm_json_t *o = layers->u.child; o && !cx->oom; o = o->next, i++) {
            parse_layer(tc, o, i);
            uint32_t same = layer_with(t, i, t->layers[i].value);
            if (same != UINT32_MAX) {
                char path[WM__AUD_PATH_MAX];
                snprintf(path, sizeof path, "$.layers[%u].value", i);
                wm__aud_err(cx, path, "duplicate value '%s' (layers[%u] has it)", t->layers[i].value, same);
            }
        }
    }
    const wm_json_t *dv = wm_json_get(def, "default");
    if (dv && dv->type != WM_JSON_NULL) {
        t->default_value = tag_value(tc, dv, "$.default");
        uint32_t same = layer_with(t, t->n_layers, t->default_value);
        if (same != UINT32_MAX)
            wm__aud_err(cx, "$.default", "'%s' is already the value of layers[%u]", t->default_value, same);
    }
}

/* ------------------------------------------------------------ behaviour */

/* A deep copy into a (the did-clause is built from pieces of the input,
 * whose nodes are linked into their own parents and must not be moved). */
static wm_json_t *copy_json(wm_arena_t *a, const wm_json_t *v)
{
    wm_json_t *d;
    switch (v->type) {
    case WM_JSON_STRING:
        return wm_json_new_str(a, v->u.str, v->len);
    case WM_JSON_NUMBER:
        return v->is_int ? wm_json_new_int(a, v->i64) : wm_json_new_num(a, v->u.num);
    case WM_JSON_ARRAY:
    case WM_JSON_OBJECT:
        d = wm_json_new(a, v->type);
        for (const wm_json_t *m = v->u.child; d && m; m = m->next) {
            wm_json_t *cm = copy_json(a, m);
            if (!cm || wm_json_append(a, d, v->type == WM_JSON_OBJECT ? m->key : NULL, cm) != 0)
                return NULL;
        }
        return d;
    default:
        return wm_json_new(a, v->type);
    }
}

static bool put_str(wm_arena_t *a, wm_json_t *obj, const char *key, const char *s)
{
    wm_json_t *v = wm_json_new_str(a, s, strlen(s));
    return v && wm_json_append(a, obj, key, v) == 0;
}

/* {"did": event, "where": where, "field": field, "count": {">=": 0},
 * "within": "<days>d"} (where and field optional). */
static wm_json_t *did_clause(wm_arena_t *a, const char *event, const wm_json_t *where, const char *field,
                             int64_t within_ms)
{
    wm_json_t *did = wm_json_new(a, WM_JSON_OBJECT), *count = wm_json_new(a, WM_JSON_OBJECT);
    wm_json_t *zero = wm_json_new_int(a, 0), *w = where ? copy_json(a, where) : NULL;
    if (!did || !count || !zero || (where && !w) || !put_str(a, did, "did", event) ||
        (w && wm_json_append(a, did, "where", w) != 0) || (field && !put_str(a, did, "field", field)) ||
        wm_json_append(a, count, ">=", zero) != 0 || wm_json_append(a, did, "count", count) != 0)
        return NULL;
    char days[24];
    snprintf(days, sizeof days, "%lldd", (long long)(within_ms / DAY_MS));
    return put_str(a, did, "within", days) ? did : NULL;
}

/*
 * Compiles the tag's did-clause. The where-clause is checked inside it (so
 * did's rules and paths apply); keep = the clause is the metric's counter,
 * else it only served the check. Then def->where, the filter on its own.
 */
static void behaviour_conds(tcx_t *tc, const wm_json_t *def, const char *event, const char *field,
                            int64_t within_ms, bool keep)
{
    wm__aud_cx_t *cx = &tc->cx;
    const wm_json_t *where = wm_json_get(def, "where");
    if (!where && !keep)
        return;
    wm_arena_t scratch;
    wm_arena_init(&scratch, 1024);
    /* only checking the filter: any valid event and window will do */
    wm_json_t *did = did_clause(&scratch, event ? event : "x", where, keep ? field : NULL,
                                keep ? within_ms : DAY_MS);
    wm_cond_t *c = NULL;
    if (!did)
        cx->oom = true;
    else
        c = wm__aud_cond(cx, did, "$");
    wm_arena_release(&scratch);
    if (!c)
        return;
    wm_cond_deps_t d;
    if (wm__aud_deps(cx, c, &d) && d.event)
        wm__aud_err(cx, "$.where",
                    "a tag's event filter cannot compare with a triggering event ({\"trigger\": ...}): "
                    "a tag has none");
    if (keep && !d.event) {
        tc->t->metric_cond = c;
        wm__aud_inputs_add(cx, &tc->in, &d);
    } else {
        wm_cond_free(c);
    }
    if (where && !d.event)
        tc->t->where = wm__aud_cond(cx, where, "$.where");
}

/* "event": a Sensors event name, or "*" (every event) when any_ok. */
static const char *parse_event(tcx_t *tc, const wm_json_t *def, bool any_ok)
{
    const char *e = wm__aud_str(&tc->cx, def, "event", "$", true, 128, false);
    if (!e)
        return NULL;
    if (strcmp(e, "*") == 0) {
        if (any_ok)
            return e;
        wm__aud_err(&tc->cx, "$.event", "'*' (any event) is only for first and last tags");
        return NULL;
    }
    if (!wm__aud_name_ok(e)) {
        wm__aud_err(&tc->cx, "$.event", "bad event name '%.64s' ([A-Za-z_$][A-Za-z0-9_$]{0,99})", e);
        return NULL;
    }
    return e;
}

static const char *parse_field(tcx_t *tc, const wm_json_t *def, const char *why)
{
    const char *f = wm__aud_str(&tc->cx, def, "field", "$", false, 128, false);
    if (!wm_json_get(def, "field"))
        wm__aud_err(&tc->cx, "$.field", "missing required field: %s", why);
    if (f && !wm__aud_name_ok(f)) {
        wm__aud_err(&tc->cx, "$.field", "bad property name '%.64s' ([A-Za-z_$][A-Za-z0-9_$]{0,99})", f);
        return NULL;
    }
    return f;
}

/* "within": whole days, 1d..90d. Returns false when absent or bad. */
static bool parse_within(tcx_t *tc, const wm_json_t *def, int64_t *ms)
{
    const char *s = wm__aud_str(&tc->cx, def, "within", "$", false, 64, false);
    if (!s)
        return false;
    int64_t v = 0;
    if (wm_duration_parse(s, &v) != 0 || v <= 0 || v % DAY_MS != 0 || v / DAY_MS > WM_BUCKET_DAYS) {
        wm__aud_err(&tc->cx, "$.within",
                    "bad window '%.32s': whole days from 1d to %dd (behaviour counters keep %d days)", s,
                    WM_BUCKET_DAYS, WM_BUCKET_DAYS);
        return false;
    }
    *ms = v;
    return true;
}

static void add_event_input(tcx_t *tc, const char *event)
{
    wm__aud_names_add(&tc->cx, &tc->in.events, event);
    tc->t->event = wm__aud_dup(&tc->cx, event);
}

/* ------------------------------------------------------------ metric */

static void parse_bucket(tcx_t *tc, const wm_json_t *o, uint32_t i, bool last)
{
    wm__aud_cx_t *cx = &tc->cx;
    wm_tag_bucket_t *b = &tc->t->buckets[i];
    char base[WM__AUD_PATH_MAX], path[WM__AUD_PATH_MAX];
    wm__aud_path_idx(base, "$.buckets", i);
    if (o->type != WM_JSON_OBJECT) {
        wm__aud_err(cx, base, "a bucket is {\"name\": ..., \"lt\": number}");
        return;
    }
    wm__aud_check_fields(cx, o, base, (const char *const[]){"name", "lt", NULL}, NULL, "a bucket");
    b->name = wm__aud_dup(cx, wm__aud_str(cx, o, "name", base, true, WM_TAG_VALUE_MAX, false));
    for (uint32_t k = 0; b->name && k < i; k++) {
        if (tc->t->buckets[k].name && strcmp(tc->t->buckets[k].name, b->name) == 0) {
            wm__aud_path_key(path, base, "name");
            wm__aud_err(cx, path, "duplicate bucket name '%s' (buckets[%u])", b->name, k);
            break;
        }
    }
    const wm_json_t *lt = wm_json_get(o, "lt");
    wm__aud_path_key(path, base, "lt");
    if (!lt) {
        if (!last)
            wm__aud_err(cx, path, "missing: only the last bucket may leave out lt");
        return;
    }
    if (lt->type != WM_JSON_NUMBER) {
        wm__aud_err(cx, path, "must be a number");
        return;
    }
    b->lt = lt->u.num;
    b->has_lt = true;
    for (uint32_t k = i; k-- > 0;) {
        const wm_tag_bucket_t *p = &tc->t->buckets[k];
        if (!p->has_lt)
            continue;
        if (b->lt <= p->lt) {
            char num[32];
            wm__aud_num_text(p->lt, num);
            wm__aud_err(cx, path, "must be greater than buckets[%u].lt (%s): bounds increase", k, num);
        }
        break;
    }
}

static void parse_buckets(tcx_t *tc, const wm_json_t *v)
{
    wm_tag_def_t *t = tc->t;
    if (v->type != WM_JSON_ARRAY || v->len == 0 || v->len > WM_TAG_BUCKETS_MAX) {
        wm__aud_err(&tc->cx, "$.buckets", "must be a list of 1 to %d buckets", WM_TAG_BUCKETS_MAX);
        return;
    }
    t->buckets = wm_arena_alloc(&t->arena, v->len * sizeof *t->buckets);
    if (!t->buckets) {
        tc->cx.oom = true;
        return;
    }
    memset(t->buckets, 0, v->len * sizeof *t->buckets);
    t->n_buckets = v->len;
    uint32_t i = 0;
    for (const wm_json_t *o = v->u.child; o; o = o->next, i++)
        parse_bucket(tc, o, i, o->next == NULL);
}

static void parse_agg(tcx_t *tc, const wm_json_t *def)
{
    const char *s = wm__aud_str(&tc->cx, def, "agg", "$", true, 64, false);
    int k = lookup(AGG_NAMES, N_AGGS, s);
    if (k)
        tc->t->agg = (wm_metric_agg_t)k;
    else if (s)
        wm__aud_err(&tc->cx, "$.agg", "unknown aggregate '%.32s' (count, sum, avg, min, max, distinct, days_since)",
                    s);
}

static void parse_metric(tcx_t *tc, const wm_json_t *def)
{
    wm__aud_cx_t *cx = &tc->cx;
    wm_tag_def_t *t = tc->t;
    const char *event = parse_event(tc, def, false);
    parse_agg(tc, def);
    bool counts = t->agg == WM_METRIC_COUNT || t->agg == WM_METRIC_DAYS_SINCE;
    const char *field = NULL;
    bool ok = event && t->agg;
    if (t->agg && !counts) {
        char why[64];
        snprintf(why, sizeof why, "%s aggregates an event property", AGG_NAMES[t->agg]);
        field = parse_field(tc, def, why);
        ok = ok && field;
    } else if (t->agg && wm_json_get(def, "field")) {
        wm__aud_err(cx, "$.field", "%s takes no field (it counts events)", AGG_NAMES[t->agg]);
    }
    t->field = wm__aud_dup(cx, field);
    if (t->agg == WM_METRIC_DAYS_SINCE) {
        if (wm_json_get(def, "within"))
            wm__aud_err(cx, "$.within", "days_since takes no window: it counts the days since the last "
                                        "matching event");
    } else if (!wm_json_get(def, "within")) {
        wm__aud_err(cx, "$.within", "missing required field: the window, whole days from 1d to %dd",
                    WM_BUCKET_DAYS);
        ok = false;
    } else {
        ok = parse_within(tc, def, &t->within_ms) && ok;
    }
    const wm_json_t *buckets = wm_json_get(def, "buckets");
    if (buckets)
        parse_buckets(tc, buckets);
    wm_tag_type_t type = buckets ? WM_TAG_STRING : WM_TAG_NUMBER;
    if (tc->type_given && t->type != type)
        wm__aud_err(cx, "$.type", buckets ? "a metric tag with buckets is a string tag (its values are bucket names)"
                                          : "a metric tag without buckets is a number tag");
    t->type = type;
    bool keep = ok && t->agg != WM_METRIC_DAYS_SINCE;
    if (event)
        add_event_input(tc, event);
    behaviour_conds(tc, def, event, field, t->within_ms, keep);
    t->uses_clock = true;
}

/* ------------------------------------------------------------ first / last / preference */

static void parse_first_last(tcx_t *tc, const wm_json_t *def)
{
    const char *event = parse_event(tc, def, true);
    tc->t->field = wm__aud_dup(&tc->cx, parse_field(tc, def, "the event property whose value is kept"));
    if (event)
        add_event_input(tc, event);
    behaviour_conds(tc, def, event, NULL, 0, false);
}

static void parse_preference(tcx_t *tc, const wm_json_t *def)
{
    const char *event = parse_event(tc, def, false);
    tc->t->field = wm__aud_dup(&tc->cx, parse_field(tc, def, "the event property whose values are counted"));
    if (!wm_json_get(def, "within"))
        wm__aud_err(&tc->cx, "$.within", "missing required field: the window, whole days from 1d to %dd",
                    WM_BUCKET_DAYS);
    else
        parse_within(tc, def, &tc->t->within_ms);
    if (event)
        add_event_input(tc, event);
    behaviour_conds(tc, def, event, NULL, 0, false);
    tc->t->uses_clock = true;
}

/* ------------------------------------------------------------ lifetime */

void wm_tag_free(wm_tag_def_t *t)
{
    if (!t)
        return;
    for (uint32_t i = 0; t->layers && i < t->n_layers; i++)
        wm_cond_free(t->layers[i].cond);
    wm_cond_free(t->where);
    wm_cond_free(t->metric_cond);
    wm_arena_release(&t->arena);
    wm_free(t);
}

static void parse_tag(tcx_t *tc, const wm_json_t *def)
{
    parse_common(tc, def);
    switch (tc->t->kind) {
    case WM_TAG_RULE:
        parse_rule(tc, def);
        break;
    case WM_TAG_METRIC:
        parse_metric(tc, def);
        break;
    case WM_TAG_FIRST:
    case WM_TAG_LAST:
        parse_first_last(tc, def);
        break;
    case WM_TAG_PREFERENCE:
        parse_preference(tc, def);
        break;
    case WM_TAG_IMPORTED:
    case WM_TAG_MANUAL:
        break;
    }
    copy_inputs(tc);
}

int wm_tag_compile(const wm_json_t *def, wm_tag_def_t **out, wm_aud_error_t *errs, uint32_t max_errs,
                   uint32_t *n_errs)
{
    if (out)
        *out = NULL;
    if (n_errs)
        *n_errs = 0;
    if (!out)
        return WM_EINVAL;
    wm_tag_def_t *t = wm_calloc(1, sizeof *t);
    if (!t)
        return WM_ENOMEM;
    wm_arena_init(&t->arena, 2048);
    tcx_t tc;
    memset(&tc, 0, sizeof tc);
    tc.t = t;
    tc.cx = (wm__aud_cx_t){.errs = errs, .max_errs = errs ? max_errs : 0, .arena = &t->arena};
    if (!def || def->type != WM_JSON_OBJECT)
        wm__aud_err(&tc.cx, "$", "a tag definition must be a JSON object");
    else
        parse_tag(&tc, def);
    int rc = tc.cx.oom ? WM_ENOMEM : tc.cx.n_errs ? WM_EINVAL : 0;
    if (n_errs)
        *n_errs = rc == WM_ENOMEM ? 0 : tc.cx.n_errs;
    if (rc != 0) {
        wm_tag_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int wm_tag_compile_text(const char *text, size_t len, wm_tag_def_t **out, wm_aud_error_t *errs,
                        uint32_t max_errs, uint32_t *n_errs)
{
    if (out)
        *out = NULL;
    wm_arena_t a;
    wm_arena_init(&a, 8192);
    wm_json_t *v = NULL;
    int rc = wm__aud_parse(&a, text, len, &v, errs, max_errs, n_errs);
    if (rc == 0)
        rc = wm_tag_compile(v, out, errs, max_errs, n_errs);
    wm_arena_release(&a);
    return rc;
}

const char *wm_tag_bucket_of(const wm_tag_def_t *t, double value)
{
    if (!t || value != value) /* NaN: no value, no bucket */
        return NULL;
    for (uint32_t k = 0; k < t->n_buckets; k++)
        if (!t->buckets[k].has_lt || value < t->buckets[k].lt)
            return t->buckets[k].name;
    return NULL;
}
