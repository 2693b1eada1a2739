/*
 * def.c - journey definitions: JSON -> validated, immutable compiled form.
 *
 * A journey is drawn by an operator on a canvas and saved as JSON
 * (docs/journeys.md). Everything that can be wrong with it must be said at
 * save time, all at once, naming the node and the field: a journey that
 * reaches production with a dangling edge or a cycle that never waits would
 * strand or spin customers' instances, and fixing errors one save at a time
 * is how operators learn to distrust a tool.
 *
 * Compilation runs in passes over the JSON tree:
 *   1. node ids: collect, check the id rule and duplicates (targets resolve
 *      against the first node with an id);
 *   2. journey-level sections: key, name, entry, goal, exit_when, settings;
 *   3. each node by type: allowed fields, required fields, values, targets
 *      (recording every edge with the field it came from), references
 *      against refs, conditions through wm_cond_compile;
 *   4. the graph: reachability from start, and cycles that pass no
 *      wait/wait_event node (the runtime would loop without yielding).
 * Every pass runs even after errors, so one call reports everything.
 *
 * Ownership: the compiled journey keeps all of its strings, arrays and JSON
 * copies in one arena inside wm_journey_def_t, so freeing is "free the
 * compiled conditions, release the arena" and nothing can leak on the many
 * error paths. Conditions are owned by the rules module and freed through it.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "waymark/alloc.h"
#include "waymark/error.h"
#include "waymark/journey.h"
#include "waymark/limits.h"

#define EDGES_MAX (WM_JOURNEY_NODES_MAX * (WM_JOURNEY_ARMS_MAX + 2))

typedef struct edge {
    uint32_t from, to;
    const char *field;          /* "next", "yes", "arms[2].next", ... (arena) */
} edge_t;

typedef struct cx {
    wm_journey_def_t *j;
    const wm_journey_refs_t *refs;
    wm_journey_error_t *errs;
    uint32_t max_errs, n_errs;
    bool oom;
    const char *node;           /* node named in errors ("" = journey level) */
    const char *ids[WM_JOURNEY_NODES_MAX];  /* per node: its id or NULL */
    edge_t *edges;
    uint32_t n_edges;
} cx_t;

/* ------------------------------------------------------------ errors */

static void err(cx_t *c, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void err(cx_t *c, const char *field, const char *fmt, ...)
{
    if (c->n_errs++ >= c->max_errs || !c->errs)
        return;
    wm_journey_error_t *e = &c->errs[c->n_errs - 1];
    snprintf(e->node, sizeof e->node, "%s", c->node ? c->node : "");
    snprintf(e->field, sizeof e->field, "%s", field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
}

static char *dup(cx_t *c, const char *s)
{
    if (!s)
        return NULL;
    char *d = wm_arena_strndup(&c->j->arena, s, strlen(s));
    if (!d)
        c->oom = true;
    return d;
}

/* ------------------------------------------------------------ scalars */

static const wm_json_t *get(const wm_json_t *obj, const char *key) { return wm_json_get(obj, key); }

/* A string member: NULL when absent (error if required) or not a string. */
static const char *get_str(cx_t *c, const wm_json_t *obj, const char *key, const char *field, bool required)
{
    const wm_json_t *v = get(obj, key);
    if (!v) {
        if (required)
            err(c, field, "missing required field");
        return NULL;
    }
    if (v->type != WM_JSON_STRING || v->len == 0) {
        err(c, field, "must be a non-empty string");
        return NULL;
    }
    return v->u.str;
}

/* An integer member in [lo, hi]; returns false when absent or bad. */
static bool get_int(cx_t *c, const wm_json_t *obj, const char *key, const char *field, bool required, int64_t lo,
                    int64_t hi, int64_t *out)
{
    const wm_json_t *v = get(obj, key);
    if (!v) {
        if (required)
            err(c, field, "missing required field");
        return false;
    }
    if (v->type != WM_JSON_NUMBER || !v->is_int || v->i64 < lo || v->i64 > hi) {
        err(c, field, "must be an integer from %lld to %lld", (long long)lo, (long long)hi);
        return false;
    }
    *out = v->i64;
    return true;
}

/* "2h", "-30d", "0d": a signed duration; negative only where allow_neg. */
static bool parse_signed_duration(const char *s, bool allow_neg, int64_t *ms)
{
    bool neg = false;
    if (*s == '-' || *s == '+') {
        neg = *s == '-';
        s++;
    }
    if (neg && !allow_neg)
        return false;
    if (strcmp(s, "0") == 0) {
        *ms = 0;
        return true;
    }
    int64_t v = 0;
    if (!*s || *s == '-' || *s == '+' || wm_duration_parse(s, &v) != 0 || v < 0)
        return false;
    *ms = neg ? -v : v;
    return true;
}

static bool get_duration(cx_t *c, const wm_json_t *obj, const char *key, const char *field, bool required,
                         int64_t *ms)
{
    const char *s = get_str(c, obj, key, field, required);
    if (!s)
        return false;
    if (!parse_signed_duration(s, false, ms) || *ms == 0) {
        err(c, field, "bad duration '%s' (expected e.g. 30m, 2h, 3d, 1w, 1d12h)", s);
        return false;
    }
    return true;
}

/* "HH:MM", 00:00 .. 23:59, two digits each. */
static bool parse_hhmm(const char *s, int *hh, int *mm)
{
    if (!s || strlen(s) != 5 || s[2] != ':')
        return false;
    for (int k = 0; k < 5; k++)
        if (k != 2 && !isdigit((unsigned char)s[k]))
            return false;
    *hh = (s[0] - '0') * 10 + (s[1] - '0');
    *mm = (s[3] - '0') * 10 + (s[4] - '0');
    return *hh < 24 && *mm < 60;
}

static bool get_hhmm(cx_t *c, const wm_json_t *obj, const char *key, const char *field, bool required, int *hh,
                     int *mm)
{
    const char *s = get_str(c, obj, key, field, required);
    if (!s)
        return false;
    if (!parse_hhmm(s, hh, mm)) {
        err(c, field, "bad time of day '%s' (expected HH:MM, 00:00..23:59)", s);
        return false;
    }
    return true;
}

/* ------------------------------------------------------------ references */

static bool in_list(const char *const *list, uint32_t n, const char *s)
{
    for (uint32_t k = 0; k < n; k++)
        if (list[k] && strcmp(list[k], s) == 0)
            return true;
    return false;
}

enum ref_kind { REF_CHANNEL, REF_TEMPLATE, REF_EVENT, REF_PROPERTY, REF_JOURNEY };

static void check_ref(cx_t *c, enum ref_kind kind, const char *field, const char *name)
{
    static const char *const what[] = {"channel", "template", "event", "profile property", "journey"};
    const wm_journey_refs_t *r = c->refs;
    if (!r || !name)
        return;
    const char *const *list[] = {r->channels, r->templates, r->events, r->properties, r->journeys};
    const uint32_t n[] = {r->n_channels, r->n_templates, r->n_events, r->n_properties, r->n_journeys};
    if (list[kind] && !in_list(list[kind], n[kind], name))
        err(c, field, "unknown %s '%s'", what[kind], name);
}

/* "profile.x" / "user.x" -> checks x as a profile property. */
static void check_profile_path(cx_t *c, const char *field, const char *path)
{
    if (strncmp(path, "profile.", 8) == 0)
        check_ref(c, REF_PROPERTY, field, path + 8);
    else if (strncmp(path, "user.", 5) == 0)
        check_ref(c, REF_PROPERTY, field, path + 5);
}

static wm_cond_t *get_cond(cx_t *c, const wm_json_t *obj, const char *key, const char *field, bool required)
{
    const wm_json_t *v = get(obj, key);
    if (!v) {
        if (required)
            err(c, field, "missing required field");
        return NULL;
    }
    wm_cond_t *cond = NULL;
    wm_cond_error_t ce;
    memset(&ce, 0, sizeof ce);
    int rc = wm_cond_compile(v, &cond, &ce);
    if (rc == WM_ENOMEM) {
        c->oom = true;
        return NULL;
    }
    if (rc != 0) {
        err(c, field, "%s: %s", ce.path[0] ? ce.path : "$", ce.msg[0] ? ce.msg : wm_strerror(rc));
        return NULL;
    }
    return cond;
}

/* Members of obj not in allowed[] (NULL-terminated) are errors: a typo like
 * "tiemout" must not silently mean "no timeout". */
static void check_fields(cx_t *c, const wm_json_t *obj, const char *prefix, const char *const *allowed)
{
    for (const wm_json_t *m = obj->u.child; m; m = m->next) {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(*a, m->key) == 0;
        if (!ok) {
            char f[96];
            snprintf(f, sizeof f, "%s%s", prefix, m->key);
            err(c, f, "unknown field");
        }
    }
}

static bool want_object(cx_t *c, const wm_json_t *v, const char *field)
{
    if (v && v->type == WM_JSON_OBJECT)
        return true;
    err(c, field, "must be an object");
    return false;
}

/* ------------------------------------------------------------ targets */

static uint32_t find_id(const cx_t *c, const char *id)
{
    for (uint32_t k = 0; k < c->j->n_nodes; k++)
        if (c->ids[k] && strcmp(c->ids[k], id) == 0)
            return k;
    return WM_JOURNEY_NONE;
}

/* Resolves a target member of node `from`, recording the edge. */
static uint32_t get_target(cx_t *c, uint32_t from, const wm_json_t *obj, const char *key, const char *field)
{
    const char *id = get_str(c, obj, key, field, true);
    if (!id)
        return WM_JOURNEY_NONE;
    uint32_t to = find_id(c, id);
    if (to == WM_JOURNEY_NONE) {
        err(c, field, "unknown node '%s'", id);
        return to;
    }
    if (c->n_edges < EDGES_MAX)
        c->edges[c->n_edges++] = (edge_t){from, to, dup(c, field)};
    return to;
}

/* ------------------------------------------------------------ JSON copy */

static wm_json_t *copy_json(cx_t *c, const wm_json_t *v)
{
    wm_arena_t *a = &c->j->arena;
    wm_json_t *d = NULL;
    switch (v->type) {
    case WM_JSON_STRING:
        d = wm_json_new_str(a, v->u.str, v->len);
        break;
    case WM_JSON_NUMBER:
        d = v->is_int ? wm_json_new_int(a, v->i64) : wm_json_new_num(a, v->u.num);
        break;
    case WM_JSON_ARRAY:
    case WM_JSON_OBJECT:
        d = wm_json_new(a, v->type);
        for (const wm_json_t *m = v->u.child; d && m; m = m->next) {
            wm_json_t *cm = copy_json(c, m);
            if (!cm || wm_json_append(a, d, v->type == WM_JSON_OBJECT ? m->key : NULL, cm) != 0)
                d = NULL;
        }
        break;
    default:
        d = wm_json_new(a, v->type);
        break;
    }
    if (!d)
        c->oom = true;
    return d;
}

/* ------------------------------------------------------------ entry */

static const char *const ENTRY_FIELDS[] = {"event", "where", "condition", "schedule", "date_property",
                                           "offsets", "item_type", "item_key", "api", "reentry",
                                           "reentry_wait", "max_concurrent", "entry_cap", "segment", NULL};

/* Checks the five cron fields "m h dom mon dow": numbers, *, a-b, lists, /step. */
static bool cron_field_ok(const char *f, size_t n, int lo, int hi)
{
    char part[64];
    if (n == 0 || n >= sizeof part)
        return false;
    memcpy(part, f, n);
    part[n] = '\0';
    for (char *save = NULL, *item = strtok_r(part, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *slash = strchr(item, '/');
        if (slash) {
            *slash = '\0';
            char *end;
            long step = strtol(slash + 1, &end, 10);
            if (*end || slash[1] == '\0' || step < 1 || step > hi)
                return false;
        }
        if (strcmp(item, "*") == 0)
            continue;
        char *end;
        long a = strtol(item, &end, 10), b = a;
        if (end == item)
            return false;
        if (*end == '-') {
            char *e2;
            b = strtol(end + 1, &e2, 10);
            if (e2 == end + 1 || *e2)
                return false;
        } else if (*end) {
            return false;
        }
        if (a < lo || b > hi || a > b)
            return false;
    }
    return true;
}

static bool cron_ok(const char *s)
{
    static const int lo[] = {0, 0, 1, 1, 0}, hi[] = {59, 23, 31, 12, 7};
    int k = 0;
    while (*s) {
        while (*s == ' ')
            s++;
        if (!*s)
            break;
        const char *e = strchr(s, ' ');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (k >= 5 || !cron_field_ok(s, n, lo[k], hi[k]))
            return false;
        k++;
        s += n;
    }
    return k == 5;
}

/* "YYYY-MM-DD HH:MM" with an optional ":SS". */
static bool datetime_ok(const char *s)
{
    int y, mo, d, h, mi, sec = 0, n = 0;
    size_t len = strlen(s);
    if (len != 16 && len != 19)
        return false;
    if (sscanf(s, "%4d-%2d-%2d %2d:%2d%n", &y, &mo, &d, &h, &mi, &n) != 5 || n != 16)
        return false;
    if (len == 19 && (sscanf(s + 16, ":%2d", &sec) != 1 || sec > 59))
        return false;
    for (size_t k = 0; k < len; k++)
        if (!isdigit((unsigned char)s[k]) && k != 4 && k != 7 && k != 10 && k != 13 && k != 16)
            return false;
    return y >= 2000 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h < 24 && mi < 60;
}

static void parse_schedule(cx_t *c, const wm_json_t *s)
{
    if (!want_object(c, s, "entry.schedule"))
        return;
    check_fields(c, s, "entry.schedule.", (const char *const[]){"at", "cron", NULL});
    const char *at = get_str(c, s, "at", "entry.schedule.at", false);
    const char *cron = get_str(c, s, "cron", "entry.schedule.cron", false);
    if (!!get(s, "at") == !!get(s, "cron")) {
        err(c, "entry.schedule", "give exactly one of 'at' and 'cron'");
        return;
    }
    if (at && !datetime_ok(at))
        err(c, "entry.schedule.at", "bad datetime '%s' (expected YYYY-MM-DD HH:MM)", at);
    if (cron && !cron_ok(cron))
        err(c, "entry.schedule.cron", "bad cron '%s' (expected 'm h dom mon dow', numbers, *, a-b, lists, /n)",
            cron);
    c->j->entry.schedule_at = dup(c, at);
    c->j->entry.cron = dup(c, cron);
}

static void parse_offsets(cx_t *c, const wm_json_t *v)
{
    if (!v) {
        err(c, "entry.offsets", "missing required field");
        return;
    }
    if (v->type != WM_JSON_ARRAY || v->len == 0 || v->len > WM_JOURNEY_OFFSETS_MAX) {
        err(c, "entry.offsets", "must be a list of 1 to %d durations such as \"-30d\"", WM_JOURNEY_OFFSETS_MAX);
        return;
    }
    int64_t *o = wm_arena_alloc(&c->j->arena, v->len * sizeof *o);
    if (!o) {
        c->oom = true;
        return;
    }
    uint32_t k = 0;
    for (const wm_json_t *e = v->u.child; e; e = e->next, k++) {
        const char *s = wm_json_str(e);
        if (!s || !parse_signed_duration(s, true, &o[k])) {
            char f[48];
            snprintf(f, sizeof f, "entry.offsets[%u]", k);
            err(c, f, "bad offset (expected e.g. \"-30d\", \"0d\", \"+1d\")");
        }
    }
    c->j->entry.offsets_ms = o;
    c->j->entry.n_offsets = v->len;
}

static void parse_date_entry(cx_t *c, const wm_json_t *e)
{
    wm_journey_def_t *j = c->j;
    const char *p = get_str(c, e, "date_property", "entry.date_property", true);
    j->entry.date_prop = dup(c, p);
    parse_offsets(c, get(e, "offsets"));
    const char *it = get_str(c, e, "item_type", "entry.item_type", false);
    const char *ik = get_str(c, e, "item_key", "entry.item_key", false);
    if (p && strncmp(p, "item.", 5) == 0 && p[5]) {
        if (!it)
            err(c, "entry.item_type", "required for an item.* date property (e.g. \"wealth\")");
        j->entry.item_type = dup(c, it);
        j->entry.item_key = dup(c, ik ? ik : "held_products");
        check_ref(c, REF_PROPERTY, "entry.item_key", j->entry.item_key);
    } else if (p && strncmp(p, "profile.", 8) == 0 && p[8]) {
        check_profile_path(c, "entry.date_property", p);
        if (it || ik)
            err(c, it ? "entry.item_type" : "entry.item_key", "only for an item.* date property");
    } else if (p) {
        err(c, "entry.date_property", "must be profile.<name> or item.<name>");
    }
    j->entry.condition = get_cond(c, e, "condition", "entry.condition", false);
}

static void parse_reentry(cx_t *c, const wm_json_t *e)
{
    wm_journey_def_t *j = c->j;
    const char *r = get_str(c, e, "reentry", "entry.reentry", false);
    j->entry.reentry = WM_REENTRY_NEVER;
    if (r && strcmp(r, "any_time") == 0)
        j->entry.reentry = WM_REENTRY_ANY_TIME;
    else if (r && strcmp(r, "after_exit") == 0)
        j->entry.reentry = WM_REENTRY_AFTER_EXIT;
    else if (r && strcmp(r, "never") != 0)
        err(c, "entry.reentry", "must be never, any_time or after_exit");
    if (get(e, "reentry_wait")) {
        get_duration(c, e, "reentry_wait", "entry.reentry_wait", false, &j->entry.reentry_wait_ms);
        if (j->entry.reentry == WM_REENTRY_NEVER)
            err(c, "entry.reentry_wait", "needs reentry any_time or after_exit");
    }
    int64_t v = 1;
    get_int(c, e, "max_concurrent", "entry.max_concurrent", false, 1, 100, &v);
    j->entry.max_concurrent = (uint32_t)v;
    if (v > 1 && j->entry.reentry != WM_REENTRY_ANY_TIME)
        err(c, "entry.max_concurrent", "more than 1 live instance needs reentry any_time");
    v = 0;
    get_int(c, e, "entry_cap", "entry.entry_cap", false, 0, INT64_MAX, &v);
    j->entry.entry_cap = (uint64_t)v;
}

static void parse_entry(cx_t *c, const wm_json_t *e)
{
    wm_journey_def_t *j = c->j;
    if (!e) {
        err(c, "entry", "missing required field");
        return;
    }
    if (!want_object(c, e, "entry"))
        return;
    check_fields(c, e, "entry.", ENTRY_FIELDS);
    /* "segment" is a kind of its own, or the audience of a schedule */
    int kinds = !!get(e, "event") + !!get(e, "schedule") + !!get(e, "date_property") + !!get(e, "api") +
                (get(e, "segment") && !get(e, "schedule"));
    if (kinds > 1) {
        err(c, "entry", "give one of event, condition, segment, schedule, date_property, api");
        return;
    }
    if (get(e, "segment")) {
        const char *sg = get_str(c, e, "segment", "entry.segment", true);
        if (sg && !*sg)
            err(c, "entry.segment", "must name a segment");
        j->entry.segment = dup(c, sg);
    }
    if (get(e, "event")) {
        j->entry.kind = WM_ENTRY_EVENT;
        j->entry.event = dup(c, get_str(c, e, "event", "entry.event", true));
        check_ref(c, REF_EVENT, "entry.event", j->entry.event);
        j->entry.where = get_cond(c, e, "where", "entry.where", false);
        if (get(e, "condition"))
            err(c, "entry.condition", "an event entry filters with 'where'");
    } else if (get(e, "schedule")) {
        j->entry.kind = WM_ENTRY_SCHEDULE;
        parse_schedule(c, get(e, "schedule"));
        j->entry.condition = get_cond(c, e, "condition", "entry.condition", !get(e, "segment"));
    } else if (get(e, "segment")) {
        j->entry.kind = WM_ENTRY_SEGMENT;
        j->entry.condition = get_cond(c, e, "condition", "entry.condition", false);
    } else if (get(e, "date_property")) {
        j->entry.kind = WM_ENTRY_DATE_PROP;
        parse_date_entry(c, e);
    } else if (get(e, "api")) {
        j->entry.kind = WM_ENTRY_API;
        if (get(e, "api")->type != WM_JSON_TRUE)
            err(c, "entry.api", "must be true");
        j->entry.condition = get_cond(c, e, "condition", "entry.condition", false);
    } else if (get(e, "condition")) {
        j->entry.kind = WM_ENTRY_CONDITION;
        j->entry.condition = get_cond(c, e, "condition", "entry.condition", true);
    } else {
        err(c, "entry", "give one of event, condition, segment, schedule, date_property, api");
    }
    if (j->entry.kind != WM_ENTRY_EVENT && get(e, "where"))
        err(c, "entry.where", "only for an event entry (use condition)");
    if (j->entry.kind != WM_ENTRY_DATE_PROP && (get(e, "offsets") || get(e, "item_type")))
        err(c, get(e, "offsets") ? "entry.offsets" : "entry.item_type", "only for a date_property entry");
    parse_reentry(c, e);
}

/* ------------------------------------------------------------ goal, exit, settings */

static void parse_goal(cx_t *c, const wm_json_t *g)
{
    if (!g || !want_object(c, g, "goal"))
        return;
    check_fields(c, g, "goal.", (const char *const[]){"event", "where", "within", NULL});
    c->j->goal.event = dup(c, get_str(c, g, "event", "goal.event", true));
    check_ref(c, REF_EVENT, "goal.event", c->j->goal.event);
    c->j->goal.where = get_cond(c, g, "where", "goal.where", false);
    get_duration(c, g, "within", "goal.within", false, &c->j->goal.within_ms);
}

static void parse_exit_when(cx_t *c, const wm_json_t *x)
{
    if (!x || !want_object(c, x, "exit_when"))
        return;
    check_fields(c, x, "exit_when.", (const char *const[]){"event", "where", "condition", NULL});
    c->j->exit_when.event = dup(c, get_str(c, x, "event", "exit_when.event", false));
    check_ref(c, REF_EVENT, "exit_when.event", c->j->exit_when.event);
    c->j->exit_when.where = get_cond(c, x, "where", "exit_when.where", false);
    c->j->exit_when.condition = get_cond(c, x, "condition", "exit_when.condition", false);
    if (!get(x, "event") && !get(x, "condition"))
        err(c, "exit_when", "give an event, a condition, or both");
    if (get(x, "where") && !get(x, "event"))
        err(c, "exit_when.where", "filters the exit event: needs 'event'");
}

static void parse_quiet(cx_t *c, const wm_json_t *q)
{
    wm_journey_def_t *j = c->j;
    if (!want_object(c, q, "settings.quiet_hours"))
        return;
    check_fields(c, q, "settings.quiet_hours.",
                 (const char *const[]){"from", "to", "tz_from", "default_tz", "mode", NULL});
    int hh, mm;
    if (get_hhmm(c, q, "from", "settings.quiet_hours.from", true, &hh, &mm))
        j->settings.quiet_from = dup(c, get(q, "from")->u.str);
    if (get_hhmm(c, q, "to", "settings.quiet_hours.to", true, &hh, &mm))
        j->settings.quiet_to = dup(c, get(q, "to")->u.str);
    if (j->settings.quiet_from && j->settings.quiet_to && strcmp(j->settings.quiet_from, j->settings.quiet_to) == 0)
        err(c, "settings.quiet_hours.to", "equals 'from': an empty window");
    const char *tzf = get_str(c, q, "tz_from", "settings.quiet_hours.tz_from", false);
    j->settings.quiet_tz_from = dup(c, tzf ? tzf : "user.timezone");
    if (tzf)
        check_profile_path(c, "settings.quiet_hours.tz_from", tzf);
    const char *dtz = get_str(c, q, "default_tz", "settings.quiet_hours.default_tz", false);
    j->settings.default_tz = dup(c, dtz ? dtz : "Asia/Shanghai");
    const char *mode = get_str(c, q, "mode", "settings.quiet_hours.mode", false);
    j->settings.quiet_hold = !mode || strcmp(mode, "hold") == 0;
    if (mode && strcmp(mode, "hold") != 0 && strcmp(mode, "skip") != 0)
        err(c, "settings.quiet_hours.mode", "must be hold or skip");
}

static void parse_caps(cx_t *c, const wm_json_t *v)
{
    wm_journey_def_t *j = c->j;
    if (v->type != WM_JSON_ARRAY || v->len > WM_JOURNEY_CAPS_MAX) {
        err(c, "settings.frequency_caps", "must be a list of at most %d caps", WM_JOURNEY_CAPS_MAX);
        return;
    }
    j->settings.caps = wm_arena_alloc(&j->arena, (v->len ? v->len : 1) * sizeof *j->settings.caps);
    if (!j->settings.caps) {
        c->oom = true;
        return;
    }
    memset(j->settings.caps, 0, (v->len ? v->len : 1) * sizeof *j->settings.caps);
    uint32_t k = 0;
    for (const wm_json_t *e = v->u.child; e; e = e->next, k++) {
        char f[64], p[48];
        snprintf(p, sizeof p, "settings.frequency_caps[%u]", k);
        if (!want_object(c, e, p))
            continue;
        snprintf(p, sizeof p, "settings.frequency_caps[%u].", k);
        check_fields(c, e, p, (const char *const[]){"channel", "max", "per", NULL});
        wm_freq_cap_t *cap = &j->settings.caps[k];
        snprintf(f, sizeof f, "%schannel", p);
        cap->channel = dup(c, get_str(c, e, "channel", f, false));
        check_ref(c, REF_CHANNEL, f, cap->channel);
        int64_t max = 0;
        snprintf(f, sizeof f, "%smax", p);
        if (get_int(c, e, "max", f, true, 1, 1000000, &max))
            cap->max = (uint32_t)max;
        snprintf(f, sizeof f, "%sper", p);
        get_duration(c, e, "per", f, true, &cap->per_ms);
    }
    j->settings.n_caps = v->len;
}

static void parse_settings(cx_t *c, const wm_json_t *s)
{
    if (!s || !want_object(c, s, "settings"))
        return;
    check_fields(c, s, "settings.", (const char *const[]){"quiet_hours", "frequency_caps", "priority", NULL});
    if (get(s, "quiet_hours"))
        parse_quiet(c, get(s, "quiet_hours"));
    if (get(s, "frequency_caps"))
        parse_caps(c, get(s, "frequency_caps"));
    int64_t p = 0;
    if (get_int(c, s, "priority", "settings.priority", false, 0, 100, &p))
        c->j->settings.priority = (int)p;
}

/* ------------------------------------------------------------ nodes */

#define COMMON "id", "type", "label", "description", "ui"

static void node_next(cx_t *c, uint32_t i, const wm_json_t *o)
{
    c->j->nodes[i].next = get_target(c, i, o, "next", "next");
}

static int weekday_bit(const char *s)
{
    static const char *const days[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
    for (int k = 0; k < 7; k++)
        if (s && strcmp(s, days[k]) == 0)
            return 1 << k;
    return 0;
}

static void parse_weekdays(cx_t *c, wm_jnode_t *n, const wm_json_t *v)
{
    n->u.wait.weekdays = 0x7f;
    if (!v)
        return;
    if (v->type != WM_JSON_ARRAY || v->len == 0) {
        err(c, "until.weekdays", "must be a non-empty list of mon..sun");
        return;
    }
    n->u.wait.weekdays = 0;
    uint32_t k = 0;
    for (const wm_json_t *e = v->u.child; e; e = e->next, k++) {
        int bit = weekday_bit(wm_json_str(e));
        if (!bit) {
            char f[48];
            snprintf(f, sizeof f, "until.weekdays[%u]", k);
            err(c, f, "bad weekday (mon, tue, wed, thu, fri, sat, sun)");
        }
        n->u.wait.weekdays |= (uint8_t)bit;
    }
}

static void parse_until(cx_t *c, wm_jnode_t *n, const wm_json_t *u)
{
    if (!want_object(c, u, "until"))
        return;
    check_fields(c, u, "until.",
                 (const char *const[]){"time", "weekdays", "tz", "date", "offset", "trading_day", NULL});
    int kinds = !!get(u, "time") + !!get(u, "date") + !!get(u, "trading_day");
    if (kinds != 1) {
        err(c, "until", "give exactly one of time, date, trading_day");
        return;
    }
    if (get(u, "time")) {
        n->u.wait.kind = WM_WAIT_TIME_OF_DAY;
        get_hhmm(c, u, "time", "until.time", true, &n->u.wait.hh, &n->u.wait.mm);
        parse_weekdays(c, n, get(u, "weekdays"));
        const char *tz = get_str(c, u, "tz", "until.tz", false);
        n->u.wait.tz = dup(c, tz ? tz : "user");
    } else if (get(u, "trading_day")) {
        n->u.wait.kind = WM_WAIT_TRADING_DAY;
        get_hhmm(c, u, "trading_day", "until.trading_day", true, &n->u.wait.hh, &n->u.wait.mm);
    } else {
        n->u.wait.kind = WM_WAIT_DATE_PROP;
        const char *d = get_str(c, u, "date", "until.date", true);
        if (d && !((strncmp(d, "profile.", 8) == 0 && d[8]) || (strncmp(d, "item.", 5) == 0 && d[5])))
            err(c, "until.date", "must be profile.<name> or item.<name>");
        else if (d)
            check_profile_path(c, "until.date", d);
        n->u.wait.date_prop = dup(c, d);
        const char *off = get_str(c, u, "offset", "until.offset", false);
        if (off && !parse_signed_duration(off, true, &n->u.wait.offset_ms))
            err(c, "until.offset", "bad offset '%s' (expected e.g. \"-1d\", \"0d\", \"+2h\")", off);
    }
    if (n->u.wait.kind != WM_WAIT_TIME_OF_DAY && (get(u, "weekdays") || get(u, "tz")))
        err(c, get(u, "weekdays") ? "until.weekdays" : "until.tz", "only with until.time");
    if (n->u.wait.kind != WM_WAIT_DATE_PROP && get(u, "offset"))
        err(c, "until.offset", "only with until.date");
}

static void p_wait(cx_t *c, uint32_t i, const wm_json_t *o)
{
    wm_jnode_t *n = &c->j->nodes[i];
    check_fields(c, o, "", (const char *const[]){COMMON, "duration", "until", "next", NULL});
    if (!!get(o, "duration") == !!get(o, "until")) {
        err(c, "duration", "give exactly one of duration and until");
    } else if (get(o, "duration")) {
        n->u.wait.kind = WM_WAIT_DURATION;
        get_duration(c, o, "duration", "duration", true, &n->u.wait.duration_ms);
    } else {
        parse_until(c, n, get(o, "until"));
    }
    node_next(c, i, o);
}

static void parse_events_list(cx_t *c, wm_jnode_t *n, const wm_json_t *o)
{
    const wm_json_t *one = get(o, "event"), *many = get(o, "events");
    if (!!one == !!many) {
        err(c, "event", "give exactly one of event and events");
        return;
    }
    if (many && (many->type != WM_JSON_ARRAY || many->len == 0 || many->len > WM_JOURNEY_WAIT_EVENTS_MAX)) {
        err(c, "events", "must be a list of 1 to %d event names", WM_JOURNEY_WAIT_EVENTS_MAX);
        return;
    }
    uint32_t cnt = one ? 1 : many->len;
    n->u.wait_event.events = wm_arena_alloc(&c->j->arena, cnt * sizeof(char *));
    if (!n->u.wait_event.events) {
        c->oom = true;
        return;
    }
    const wm_json_t *e = one ? one : many->u.child;
    for (uint32_t k = 0; k < cnt; k++, e = e->next) {
        char f[32];
        snprintf(f, sizeof f, one ? "event" : "events[%u]", k);
        const char *name = wm_json_str(e);
        if (!name || !*name)
            err(c, f, "must be a non-empty string");
        check_ref(c, REF_EVENT, f, name);
        n->u.wait_event.events[k] = dup(c, name ? name : "");
    }
    n->u.wait_event.n_events = cnt;
}

static void p_wait_event(cx_t *c, uint32_t i, const wm_json_t *o)
{
    wm_jnode_t *n = &c->j->nodes[i];
    check_fields(c, o, "",
                 (const char *const[]){COMMON, "event", "events", "match", "where", "timeout", "on_event",
                                       "on_timeout", NULL});
    parse_events_list(c, n, o);
    n->u.wait_event.match_prop = dup(c, get_str(c, o, "match", "match", false));
    if (n->u.wait_event.match_prop && c->j->entry.kind != WM_ENTRY_EVENT)
        err(c, "match", "matches the entry event's property: needs an event entry");
    n->u.wait_event.where = get_cond(c, o, "where", "where", false);
    get_duration(c, o, "timeout", "timeout", true, &n->u.wait_event.timeout_ms);
    n->u.wait_event.on_event = get_target(c, i, o, "on_event", "on_event");
    n->u.wait_event.on_timeout = get_target(c, i, o, "on_timeout", "on_timeout");
    n->next = n->u.wait_event.on_event;
}

static void p_condition(cx_t *c, uint32_t i, const wm_json_t *o)
{
    wm_jnode_t *n = &c->j->nodes[i];
    check_fields(c, o, "", (const char *const[]){COMMON, "if", "yes", "no", NULL});
    n->u.condition.cond = get_cond(c, o, "if", "if", true);
    n->u.condition.yes = get_target(c, i, o, "yes", "yes");
    n->u.condition.no = get_target(c, i, o, "no", "no");
    n->next = n->u.condition.yes;
}

static bool alloc_arms(cx_t *c, wm_jnode_t *n, const wm_json_t *arms)
{
    if (!arms) {
        err(c, "arms", "missing required field");
        return false;
    }
    if (arms->type != WM_JSON_ARRAY || arms->len == 0 || arms->len > WM_JOURNEY_ARMS_MAX) {
        err(c, "arms", "must be a list of 1 to %d arms", WM_JOURNEY_ARMS_MAX);
        return false;
    }
    n->u.branch.arms = wm_arena_alloc(&c->j->arena, arms->len * sizeof *n->u.branch.arms);
    if (!n->u.branch.arms) {
        c->oom = true;
        return false;
    }
    memset(n->u.branch.arms, 0, arms->len * sizeof *n->u.branch.arms);
    n->u.branch.n_arms = arms->len;
    for (uint32_t k = 0; k < arms->len; k++)
        n->u.branch.arms[k].next = WM_JOURNEY_NONE;
    return true;
}

static void p_branch(cx_t *c, uint32_t i, const wm_json_t *o)
{
    wm_jnode_t *n = &c->j->nodes[i];
    check_fields(c, o, "", (const char *const[]){COMMON, "arms", "else", NULL});
    n->u.branch.otherwise = get_target(c, i, o, "else", "else");
    n->next = n->u.branch.otherwise;
    const wm_json_t *arms = get(o, "arms");
    if (!alloc_arms(c, n, arms))
        return;
    uint32_t k = 0;
    for (const wm_json_t *a = arms->u.child; a; a = a->next, k++) {
        char f[48], p[32];
        snprintf(p, sizeof p, "arms[%u]", k);
        if (!want_object(c, a, p))
            continue;
        snprintf(p, sizeof p, "arms[%u].", k);
        check_fields(c, a, p, (const char *const[]){"if", "next", "name", NULL});
        wm_jarm_t *arm = &n->u.branch.arms[k];
        snprintf(f, sizeof f, "arms[%u].name", k);
        arm->name = dup(c, get_str(c, a, "name", f, false));
        snprintf(f, sizeof f, "arms[%u].if", k);
        arm->cond = get_cond(c, a, "if", f, true);
        snprintf(f, sizeof f, "arms[%u].next", k);
        arm->next = get_target(c, i, a, "next", f);
    }
}

static void split_arm(cx_t *c, uint32_t i, const wm_json_t *a, uint32_t k, uint32_t *sum, uint32_t *controls,
                      bool *bad_percent)
{
    wm_jarm_t *arm = &c->j->nodes[i].u.branch.arms[k];
    char f[48], p[32];
    snprintf(p, sizeof p, "arms[%u]", k);
    if (!want_object(c, a, p)) {
        *bad_percent = true;
        return;
    }
    snprintf(p, sizeof p, "arms[%u].", k);
    check_fields(c, a, p, (const char *const[]){"name", "percent", "control", "next", NULL});
    snprintf(f, sizeof f, "arms[%u].name", k);
    arm->name = dup(c, get_str(c, a, "name", f, true));
    for (uint32_t q = 0; arm->name && q < k; q++)
        if (c->j->nodes[i].u.branch.arms[q].name && strcmp(c->j->nodes[i].u.branch.arms[q].name, arm->name) == 0)
            err(c, f, "duplicate arm name '%s'", arm->name);
    int64_t pct = 0;
    snprintf(f, sizeof f, "arms[%u].percent", k);
    if (get_int(c, a, "percent", f, true, 0, 100, &pct))
        arm->percent = (uint32_t)pct;
    else
        *bad_percent = true; /* already reported: a sum error would only repeat it */
    *sum += arm->percent;
    const wm_json_t *ctl = get(a, "control");
    if (ctl && ctl->type != WM_JSON_TRUE && ctl->type != WM_JSON_FALSE) {
        snprintf(f, sizeof f, "arms[%u].control", k);
        err(c, f, "must be true or false");
    }
    arm->control = ctl && ctl->type == WM_JSON_TRUE;
    if (arm->control && ++*controls == 2) {
        snprintf(f, sizeof f, "arms[%u].control", k);
        err(c, f, "more than one control arm");
    }
    snprintf(f, sizeof f, "arms[%u].next", k);
    arm->next = get_target(c, i, a, "next", f);
}

static void p_split(cx_t *c, uint32_t i, const wm_json_t *o)
{
    wm_jnode_t *n = &c->j->nodes[i];
    check_fields(c, o, "", (const char *const[]){COMMON, "arms", NULL});
    n->u.branch.otherwise = WM_JOURNEY_NONE;
    const wm_json_t *arms = get(o, "arms");
    if (!alloc_arms(c, n, arms))
        return;
    uint32_t k = 0, sum = 0, controls = 0;
    bool bad_percent = false;
    for (const wm_json_t *a = arms->u.child; a; a = a->next, k++)
        split_arm(c, i, a, k, &sum, &controls, &bad_percent);
    if (sum != 100 && !bad_percent)
        err(c, "arms", "percents add up to %u, not 100", sum);
    n->next = n->u.branch.arms[0].next;
}

static void parse_item(cx_t *c, const wm_json_t *o, char **type, char **key)
{
    const wm_json_t *it = get(o, "item");
    if (!it || !want_object(c, it, "item"))
        return;
    check_fields(c, it, "item.", (const char *const[]){"type", "key", NULL});
    *type = dup(c, get_str(c, it, "type", "item.type", true));
    *key = dup(c, get_str(c, it, "key", "item.key", true));
}

static void p_send(cx_t *c, uint32_t i, const wm_json_t *o)
{
    wm_jnode_t *n = &c->j->nodes[i];
    check_fields(c, o, "", (const char *const[]){COMMON, "channel", "template", "item", "suitability", "next", NULL});
    const wm_json_t *suit = wm_json_get(o, "suitability");
    if (suit && suit->type != WM_JSON_TRUE && suit->type != WM_JSON_FALSE)
        err(c, "suitability", "must be true or false");
    /* service messages about a product the customer already holds (maturity,
     * dividends) recommend nothing: "suitability": false skips the check */
    n->u.send.no_suitability = suit && suit->type == WM_JSON_FALSE;
    n->u.send.channel = dup(c, get_str(c, o, "channel", "channel", true));
    check_ref(c, REF_CHANNEL, "channel", n->u.send.channel);
    n->u.send.template_key = dup(c, get_str(c, o, "template", "template", true));
    check_ref(c, REF_TEMPLATE, "template", n->u.send.template_key);
    parse_item(c, o, &n->u.send.item_type, &n->u.send.item_key);
    node_next(c, i, o);
}

static void p_advisor(cx_t *c, uint32_t i, const wm_json_t *o)
{
    wm_jnode_t *n = &c->j->nodes[i];
    check_fields(c, o, "",
                 (const char *const[]){COMMON, "queue", "sla", "script", "priority", "item", "next", NULL});
    n->u.advisor.queue = dup(c, get_str(c, o, "queue", "queue", true));
    get_duration(c, o, "sla", "sla", true, &n->u.advisor.sla_ms);
    n->u.advisor.script = dup(c, get_str(c, o, "script", "script", true));
    check_ref(c, REF_TEMPLATE, "script", n->u.advisor.script);
    const char *p = get_str(c, o, "priority", "priority", false);
    if (p && strcmp(p, "urgent") != 0 && strcmp(p, "high") != 0 && strcmp(p, "normal") != 0 &&
        strcmp(p, "low") != 0)
        err(c, "priority", "must be urgent, high, normal or low");
    n->u.advisor.priority = dup(c, p ? p : "normal");
    parse_item(c, o, &n->u.advisor.item_type, &n->u.advisor.item_key);
    node_next(c, i, o);
}

static void p_update_profile(cx_t *c, uint32_t i, const wm_json_t *o)
{
    wm_jnode_t *n = &c->j->nodes[i];
    check_fields(c, o, "", (const char *const[]){COMMON, "set", "next", NULL});
    const wm_json_t *set = get(o, "set");
    if (!set)
        err(c, "set", "missing required field");
    else if (set->type != WM_JSON_OBJECT || set->len == 0)
        err(c, "set", "must be a non-empty object of properties");
    else {
        for (const wm_json_t *m = set->u.child; m; m = m->next) {
            char f[96];
            snprintf(f, sizeof f, "set.%s", m->key);
            check_ref(c, REF_PROPERTY, f, m->key);
        }
        n->u.update_profile.set = copy_json(c, set);
    }
    node_next(c, i, o);
}

/* The tag store's key rule (docs/tags.md). */
static bool tag_key_ok(const char *k)
{
    size_t n = strlen(k);
    if (!n || n > 64 || (k[0] >= '0' && k[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= 'A' && k[i] <= 'Z') || (k[i] >= '0' && k[i] <= '9') ||
              k[i] == '_'))
            return false;
    return true;
}

static void p_set_tag(cx_t *c, uint32_t i, const wm_json_t *o)
{
    wm_jnode_t *n = &c->j->nodes[i];
    check_fields(c, o, "", (const char *const[]){COMMON, "tag", "value", "next", NULL});
    n->u.set_tag.tag = dup(c, get_str(c, o, "tag", "tag", true));
    if (n->u.set_tag.tag && !tag_key_ok(n->u.set_tag.tag))
        err(c, "tag", "a tag key is [A-Za-z_][A-Za-z0-9_]{0,63}");
    const wm_json_t *v = get(o, "value");
    if (!v)
        err(c, "value", "missing required field");
    else if (v->type == WM_JSON_OBJECT)
        err(c, "value", "must be a string, number, boolean or list");
    else
        n->u.set_tag.value = copy_json(c, v);
    node_next(c, i, o);
}

static void p_webhook(cx_t *c, uint32_t i, const wm_json_t *o)
{
    wm_jnode_t *n = &c->j->nodes[i];
    check_fields(c, o, "", (const char *const[]){COMMON, "url", "body", "next", NULL});
    const char *url = get_str(c, o, "url", "url", true);
    if (url && strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        err(c, "url", "must start with http:// or https://");
    n->u.webhook.url = dup(c, url);
    const char *body = get_str(c, o, "body", "body", false);
    if (body) {
        wm_template_t *t = NULL;
        char terr[160];
        int rc = wm_template_compile(body, &t, terr, sizeof terr);
        if (rc == WM_ENOMEM)
            c->oom = true;
        else if (rc != 0)
            err(c, "body", "template: %s", terr);
        if (t) {
            const char *const *vars;
            uint32_t nv;
            wm_template_vars(t, &vars, &nv);
            for (uint32_t k = 0; k < nv; k++)
                check_profile_path(c, "body", vars[k]);
        }
        wm_template_free(t);
    }
    n->u.webhook.body_template = dup(c, body);
    node_next(c, i, o);
}

static void p_jump(cx_t *c, uint32_t i, const wm_json_t *o)
{
    wm_jnode_t *n = &c->j->nodes[i];
    check_fields(c, o, "", (const char *const[]){COMMON, "journey", NULL});
    n->u.jump.journey_key = dup(c, get_str(c, o, "journey", "journey", true));
    if (n->u.jump.journey_key && c->j->key && strcmp(n->u.jump.journey_key, c->j->key) == 0)
        err(c, "journey", "jumps to its own journey (use an edge to an earlier node)");
    else
        check_ref(c, REF_JOURNEY, "journey", n->u.jump.journey_key);
    n->next = WM_JOURNEY_NONE;
}

static void p_exit(cx_t *c, uint32_t i, const wm_json_t *o)
{
    check_fields(c, o, "", (const char *const[]){COMMON, NULL});
    c->j->nodes[i].next = WM_JOURNEY_NONE;
}

typedef struct node_kind {
    const char *name;
    wm_jnode_type_t type;
    void (*parse)(cx_t *c, uint32_t i, const wm_json_t *o);
} node_kind_t;

static const node_kind_t KINDS[] = {
    {"wait", WM_JN_WAIT, p_wait},
    {"wait_event", WM_JN_WAIT_EVENT, p_wait_event},
    {"condition", WM_JN_CONDITION, p_condition},
    {"branch", WM_JN_BRANCH, p_branch},
    {"split", WM_JN_SPLIT, p_split},
    {"send", WM_JN_SEND, p_send},
    {"advisor_task", WM_JN_ADVISOR_TASK, p_advisor},
    {"update_profile", WM_JN_UPDATE_PROFILE, p_update_profile},
    {"set_tag", WM_JN_SET_TAG, p_set_tag},
    {"webhook", WM_JN_WEBHOOK, p_webhook},
    {"jump", WM_JN_JUMP, p_jump},
    {"exit", WM_JN_EXIT, p_exit},
};

const char *wm_jnode_type_name(wm_jnode_type_t t)
{
    for (size_t k = 0; k < sizeof KINDS / sizeof KINDS[0]; k++)
        if (KINDS[k].type == t)
            return KINDS[k].name;
    return "unknown";
}

static void parse_node(cx_t *c, uint32_t i, const wm_json_t *o)
{
    wm_jnode_t *n = &c->j->nodes[i];
    n->next = WM_JOURNEY_NONE;
    if (!o || o->type != WM_JSON_OBJECT) {
        err(c, "", "a node must be an object");
        return;
    }
    const char *type = get_str(c, o, "type", "type", true);
    if (!type)
        return;
    for (size_t k = 0; k < sizeof KINDS / sizeof KINDS[0]; k++) {
        if (strcmp(KINDS[k].name, type) == 0) {
            n->type = KINDS[k].type;
            KINDS[k].parse(c, i, o);
            return;
        }
    }
    err(c, "type", "unknown node type '%s' (wait, wait_event, condition, branch, split, send, advisor_task, "
                   "update_profile, set_tag, webhook, jump, exit)", type);
}

/* ------------------------------------------------------------ ids and graph */

static bool id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63)
        return false;
    for (size_t k = 0; k < n; k++)
        if (!isalnum((unsigned char)s[k]) && s[k] != '_' && s[k] != '-')
            return false;
    return true;
}

/* Node names for errors: the id, else "#<index>". */
static const char *node_label(cx_t *c, uint32_t i, char *tmp, size_t n)
{
    if (c->j->nodes[i].id)
        return c->j->nodes[i].id;
    snprintf(tmp, n, "#%u", i);
    return tmp;
}

static void collect_ids(cx_t *c, const wm_json_t *nodes)
{
    uint32_t i = 0;
    for (const wm_json_t *o = nodes->u.child; o; o = o->next, i++) {
        char tmp[16];
        c->node = node_label(c, i, tmp, sizeof tmp);
        const wm_json_t *idv = get(o, "id");
        const char *id = wm_json_str(idv);
        if (!idv) {
            err(c, "id", "missing required field");
            continue;
        }
        if (!id || !id_ok(id)) {
            err(c, "id", "must be 1 to 63 characters of A-Z a-z 0-9 _ -");
            continue;
        }
        c->j->nodes[i].id = dup(c, id);
        c->node = c->j->nodes[i].id ? c->j->nodes[i].id : "";
        if (find_id(c, id) != WM_JOURNEY_NONE) {
            err(c, "id", "duplicate node id");
            continue;
        }
        c->ids[i] = c->j->nodes[i].id;
    }
}

static void check_reachable(cx_t *c)
{
    wm_journey_def_t *j = c->j;
    bool seen[WM_JOURNEY_NODES_MAX] = {false};
    uint32_t stack[WM_JOURNEY_NODES_MAX], sp = 0;
    if (j->start == WM_JOURNEY_NONE)
        return;
    seen[j->start] = true;
    stack[sp++] = j->start;
    while (sp) {
        uint32_t u = stack[--sp];
        for (uint32_t e = 0; e < c->n_edges; e++) {
            if (c->edges[e].from == u && !seen[c->edges[e].to]) {
                seen[c->edges[e].to] = true;
                stack[sp++] = c->edges[e].to;
            }
        }
    }
    for (uint32_t i = 0; i < j->n_nodes; i++) {
        if (!seen[i] && c->ids[i]) {
            c->node = c->ids[i];
            err(c, "id", "unreachable from the start node '%s'", j->nodes[j->start].id);
        }
    }
}

static bool is_wait(const wm_jnode_t *n) { return n->type == WM_JN_WAIT || n->type == WM_JN_WAIT_EVENT; }

/* DFS over the graph without wait nodes: a back edge closes a cycle on which
 * an instance would run forever inside one transition. Colors: 0 new, 1 on
 * the stack, 2 done. Depth is bounded by WM_JOURNEY_NODES_MAX. */
static void dfs_cycle(cx_t *c, uint32_t u, uint8_t *color)
{
    color[u] = 1;
    for (uint32_t e = 0; e < c->n_edges; e++) {
        const edge_t *ed = &c->edges[e];
        if (ed->from != u || is_wait(&c->j->nodes[ed->to]))
            continue;
        if (color[ed->to] == 1) {
            c->node = c->ids[u];
            err(c, ed->field ? ed->field : "next",
                "cycle back to '%s' passes no wait or wait_event node", c->ids[ed->to]);
        } else if (color[ed->to] == 0) {
            dfs_cycle(c, ed->to, color);
        }
    }
    color[u] = 2;
}

static void check_cycles(cx_t *c)
{
    uint8_t color[WM_JOURNEY_NODES_MAX] = {0};
    for (uint32_t i = 0; i < c->j->n_nodes; i++)
        if (!color[i] && c->ids[i] && !is_wait(&c->j->nodes[i]))
            dfs_cycle(c, i, color);
}

/* ------------------------------------------------------------ top level */

static bool key_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64 || !(s[0] >= 'a' && s[0] <= 'z'))
        return false;
    for (size_t k = 1; k < n; k++)
        if (!((s[k] >= 'a' && s[k] <= 'z') || (s[k] >= '0' && s[k] <= '9') || s[k] == '_'))
            return false;
    return true;
}

static void parse_head(cx_t *c, const wm_json_t *def)
{
    static const char *const top[] = {"key", "name", "version", "description", "entry", "goal", "exit_when",
                                      "settings", "nodes", "start", "ui", NULL};
    check_fields(c, def, "", top);
    const char *key = get_str(c, def, "key", "key", true);
    if (key && !key_ok(key))
        err(c, "key", "must match ^[a-z][a-z0-9_]{0,63}$");
    c->j->key = dup(c, key);
    c->j->name = dup(c, get_str(c, def, "name", "name", true));
    int64_t ver = 0;
    if (get_int(c, def, "version", "version", false, 0, UINT32_MAX, &ver))
        c->j->version = (uint32_t)ver;
    parse_entry(c, get(def, "entry"));
    parse_goal(c, get(def, "goal"));
    parse_exit_when(c, get(def, "exit_when"));
    parse_settings(c, get(def, "settings"));
}

static void parse_nodes(cx_t *c, const wm_json_t *def)
{
    wm_journey_def_t *j = c->j;
    const wm_json_t *nodes = get(def, "nodes");
    c->node = "";
    if (!nodes || nodes->type != WM_JSON_ARRAY || nodes->len == 0 || nodes->len > WM_JOURNEY_NODES_MAX) {
        if (nodes)
            err(c, "nodes", "must be a list of 1 to %d nodes", WM_JOURNEY_NODES_MAX);
        else
            err(c, "nodes", "missing required field");
        return;
    }
    j->nodes = wm_arena_alloc(&j->arena, nodes->len * sizeof *j->nodes);
    if (!j->nodes) {
        c->oom = true;
        return;
    }
    memset(j->nodes, 0, nodes->len * sizeof *j->nodes);
    j->n_nodes = nodes->len;
    collect_ids(c, nodes);
    uint32_t i = 0;
    for (const wm_json_t *o = nodes->u.child; o && !c->oom; o = o->next, i++) {
        char tmp[16];
        c->node = node_label(c, i, tmp, sizeof tmp);
        parse_node(c, i, o);
    }
    c->node = "";
    j->start = c->ids[0] ? 0 : WM_JOURNEY_NONE;
    const char *start = get_str(c, def, "start", "start", false);
    if (start) {
        j->start = find_id(c, start);
        if (j->start == WM_JOURNEY_NONE)
            err(c, "start", "unknown node '%s'", start);
    }
    if (c->oom)
        return;
    check_reachable(c);
    check_cycles(c);
}

static void free_cond_fields(wm_jnode_t *n)
{
    switch (n->type) {
    case WM_JN_WAIT_EVENT:
        wm_cond_free(n->u.wait_event.where);
        break;
    case WM_JN_CONDITION:
        wm_cond_free(n->u.condition.cond);
        break;
    case WM_JN_BRANCH:
        for (uint32_t k = 0; k < n->u.branch.n_arms; k++)
            wm_cond_free(n->u.branch.arms[k].cond);
        break;
    default:
        break;
    }
}

void wm_journey_free(wm_journey_def_t *j)
{
    if (!j)
        return;
    for (uint32_t i = 0; i < j->n_nodes; i++)
        free_cond_fields(&j->nodes[i]);
    wm_cond_free(j->entry.where);
    wm_cond_free(j->entry.condition);
    wm_cond_free(j->goal.where);
    wm_cond_free(j->exit_when.where);
    wm_cond_free(j->exit_when.condition);
    wm_arena_release(&j->arena);
    wm_free(j);
}

int wm_journey_compile(const wm_json_t *def, const wm_journey_refs_t *refs, wm_journey_def_t **out,
                       wm_journey_error_t *errs, uint32_t max_errs, uint32_t *n_errs)
{
    *out = NULL;
    if (n_errs)
        *n_errs = 0;
    cx_t *c = wm_calloc(1, sizeof *c);
    wm_journey_def_t *j = wm_calloc(1, sizeof *j);
    edge_t *edges = wm_malloc(EDGES_MAX * sizeof *edges);
    if (!c || !j || !edges) {
        wm_free(c);
        wm_free(j);
        wm_free(edges);
        return WM_ENOMEM;
    }
    wm_arena_init(&j->arena, 4096);
    j->start = WM_JOURNEY_NONE;
    *c = (cx_t){.j = j, .refs = refs, .errs = errs, .max_errs = errs ? max_errs : 0, .node = "", .edges = edges};
    if (!def || def->type != WM_JSON_OBJECT) {
        err(c, "", "a journey definition must be a JSON object");
    } else {
        parse_head(c, def);
        if (!c->oom)
            parse_nodes(c, def);
    }
    int rc = c->oom ? WM_ENOMEM : c->n_errs ? WM_EINVAL : 0;
    if (n_errs)
        *n_errs = c->n_errs;
    wm_free(edges);
    wm_free(c);
    if (rc != 0)
        wm_journey_free(j);
    else
        *out = j;
    return rc;
}

int wm_journey_compile_text(const char *text, size_t len, const wm_journey_refs_t *refs,
                            wm_journey_def_t **out, wm_journey_error_t *errs, uint32_t max_errs,
                            uint32_t *n_errs)
{
    wm_arena_t a;
    wm_arena_init(&a, 8192);
    wm_json_t *v = NULL;
    wm_json_error_t je;
    int rc = wm_json_parse(&a, text, len, &v, &je);
    if (rc == WM_ENOMEM) {
        *out = NULL;
    } else if (rc != 0) {
        *out = NULL;
        if (n_errs)
            *n_errs = 1;
        if (errs && max_errs) {
            memset(&errs[0], 0, sizeof errs[0]);
            snprintf(errs[0].msg, sizeof errs[0].msg, "JSON at offset %zu: %s", je.offset, je.msg);
        }
        rc = WM_EINVAL;
    } else {
        rc = wm_journey_compile(v, refs, out, errs, max_errs, n_errs);
    }
    wm_arena_release(&a);
    return rc;
}

uint32_t wm_journey_node_index(const wm_journey_def_t *j, const char *id)
{
    for (uint32_t k = 0; k < j->n_nodes; k++)
        if (j->nodes[k].id && strcmp(j->nodes[k].id, id) == 0)
            return k;
    return WM_JOURNEY_NONE;
}

int wm_journey_names_collect(wm_arena_t *a, const wm_json_t *doc, const char *member, const char *const **names,
                             uint32_t *n)
{
    *names = NULL;
    *n = 0;
    const wm_json_t *v = wm_json_get(doc, member);
    if (!v || (v->type != WM_JSON_OBJECT && v->type != WM_JSON_ARRAY))
        return WM_EINVAL;
    const char **out = wm_arena_alloc(a, (v->len ? v->len : 1) * sizeof *out);
    if (!out)
        return WM_ENOMEM;
    uint32_t k = 0;
    for (const wm_json_t *e = v->u.child; e; e = e->next) {
        const char *name = v->type == WM_JSON_OBJECT ? e->key : wm_json_str(wm_json_get(e, "key"));
        if (!name && v->type == WM_JSON_ARRAY)
            name = wm_json_str(wm_json_get(e, "name"));
        if (name)
            out[k++] = name;
    }
    *names = out;
    *n = k;
    return 0;
}
