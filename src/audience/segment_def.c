/*
 * segment_def.c - segment (分群) definitions: JSON -> validated, immutable
 * wm_segment_def_t (docs/segments.md).
 *
 * A segment is a set of customers: those a condition holds for (rule),
 * set algebra over other segments (union, intersect, except), or a fixed
 * list (static: uploaded, or a snapshot of another segment). Besides the
 * checks, the compiler works out what the runtime needs to keep the set
 * current: the inputs whose changes may move a customer in or out, and
 * whether that can be done per change (incremental) or needs a full
 * recomputation on a schedule. The rule is in docs/segments.md, "What is
 * kept in real time and what is recomputed".
 *
 * Ownership: strings and arrays live in the definition's arena; the
 * compiled condition is owned by the definition and freed by
 * wm_segment_free.
 */
#include <stdio.h>
#include <string.h>

#include "audience/def_internal.h"
#include "waymark/alloc.h"
#include "waymark/error.h"

static const char *const KIND_NAMES[] = {NULL, "rule", "union", "intersect", "except", "static"};
#define N_KINDS (sizeof KIND_NAMES / sizeof KIND_NAMES[0])

#define COMMON "key", "name", "description", "kind", "refresh"
static const char *const FIELDS_RULE[] = {COMMON, "condition", NULL};
static const char *const FIELDS_SET[] = {COMMON, "of", NULL};
static const char *const FIELDS_STATIC[] = {COMMON, "snapshot_of", NULL};
static const char *const FIELDS_ANY[] = {COMMON, "condition", "of", "snapshot_of", NULL};

typedef struct scx {
    wm__aud_cx_t cx;
    wm_segment_def_t *s;
    wm__aud_inputs_t in;
} scx_t;

const char *wm_segment_kind_name(wm_segment_kind_t k)
{
    return k >= WM_SEGMENT_RULE && (size_t)k < N_KINDS ? KIND_NAMES[k] : "unknown";
}

static void parse_kind(scx_t *sc, const wm_json_t *def)
{
    wm__aud_cx_t *cx = &sc->cx;
    const char *kind = wm__aud_str(cx, def, "kind", "$", false, 64, false);
    if (!wm_json_get(def, "kind")) {
        if (wm_json_get(def, "condition"))
            sc->s->kind = WM_SEGMENT_RULE;
        else
            wm__aud_err(cx, "$.kind", "missing required field (rule, union, intersect, except, static)");
        return;
    }
    for (size_t k = 1; kind && k < N_KINDS; k++)
        if (strcmp(KIND_NAMES[k], kind) == 0)
            sc->s->kind = (wm_segment_kind_t)k;
    if (kind && !sc->s->kind)
        wm__aud_err(cx, "$.kind", "unknown kind '%.64s' (rule, union, intersect, except, static)", kind);
}

static void parse_refresh(scx_t *sc, const wm_json_t *def)
{
    wm__aud_cx_t *cx = &sc->cx;
    wm_segment_def_t *s = sc->s;
    const wm_json_t *r = wm_json_get(def, "refresh");
    s->refresh = WM_REFRESH_REALTIME;
    if (!r)
        return;
    if (s->kind == WM_SEGMENT_STATIC) {
        wm__aud_err(cx, "$.refresh", "a static segment changes only by upload or snapshot: no refresh");
        return;
    }
    if (r->type != WM_JSON_OBJECT) {
        wm__aud_err(cx, "$.refresh",
                    "must be {\"mode\": \"realtime\"} or {\"mode\": \"schedule\", \"cron\": \"0 6 * * *\"}");
        return;
    }
    wm__aud_check_fields(cx, r, "$.refresh", (const char *const[]){"mode", "cron", NULL}, NULL, "refresh");
    const char *mode = wm__aud_str(cx, r, "mode", "$.refresh", true, 64, false);
    const char *cron = wm__aud_str(cx, r, "cron", "$.refresh", false, 128, false);
    if (mode && strcmp(mode, "schedule") == 0) {
        s->refresh = WM_REFRESH_SCHEDULE;
        if (!wm_json_get(r, "cron"))
            wm__aud_err(cx, "$.refresh.cron", "missing required field: when to recompute, e.g. \"0 6 * * *\"");
        else if (cron && !wm__aud_cron_ok(cron))
            wm__aud_err(cx, "$.refresh.cron",
                        "bad cron '%.64s' (expected 'm h dom mon dow': numbers, *, a-b, lists, /n)", cron);
        else
            s->cron = wm__aud_dup(cx, cron);
    } else if (mode && strcmp(mode, "realtime") == 0) {
        if (wm_json_get(r, "cron"))
            wm__aud_err(cx, "$.refresh.cron", "only for mode schedule");
    } else if (mode) {
        wm__aud_err(cx, "$.refresh.mode", "must be realtime or schedule");
    }
}

static void parse_common(scx_t *sc, const wm_json_t *def)
{
    wm__aud_cx_t *cx = &sc->cx;
    wm_segment_def_t *s = sc->s;
    s->key = wm__aud_dup(cx, wm__aud_key(cx, def, "key", "$", true));
    s->name = wm__aud_dup(cx, wm__aud_str(cx, def, "name", "$", false, WM_AUD_NAME_MAX, false));
    s->description = wm__aud_dup(cx, wm__aud_str(cx, def, "description", "$", false, WM_AUD_DESCRIPTION_MAX, true));
    parse_kind(sc, def);
    static const char *const *const allowed[] = {NULL, FIELDS_RULE, FIELDS_SET, FIELDS_SET, FIELDS_SET,
                                                 FIELDS_STATIC};
    char what[48];
    const char *kind = wm_segment_kind_name(s->kind);
    snprintf(what, sizeof what, "%s %s segment", wm__aud_article(kind), kind);
    if (s->kind)
        wm__aud_check_fields(cx, def, "$", allowed[s->kind], FIELDS_ANY, what);
    else
        wm__aud_check_fields(cx, def, "$", FIELDS_ANY, NULL, "a segment");
    parse_refresh(sc, def);
}

/* ------------------------------------------------------------ kinds */

static void parse_rule(scx_t *sc, const wm_json_t *def)
{
    wm__aud_cx_t *cx = &sc->cx;
    wm_segment_def_t *s = sc->s;
    const wm_json_t *v = wm_json_get(def, "condition");
    if (!v) {
        wm__aud_err(cx, "$.condition", "missing required field");
        return;
    }
    s->cond = wm__aud_cond(cx, v, "$.condition");
    wm_cond_deps_t d;
    if (!s->cond || !wm__aud_deps(cx, s->cond, &d))
        return;
    if (s->key && wm__aud_names_has(d.segments, d.n_segments, s->key))
        wm__aud_err(cx, "$.condition", "a segment cannot contain itself ({\"in_segment\": \"%s\"})", s->key);
    if (d.event)
        wm__aud_err(cx, "$.condition",
                    "a segment's condition describes the customer, not one event: it cannot read the current "
                    "event (prop, trigger, item from the event); filter events in a did clause's where");
    wm__aud_inputs_add(cx, &sc->in, &d);
    s->incremental = s->refresh == WM_REFRESH_REALTIME && !d.items;
}

static void parse_operands(scx_t *sc, const wm_json_t *def)
{
    wm__aud_cx_t *cx = &sc->cx;
    wm_segment_def_t *s = sc->s;
    const wm_json_t *of = wm_json_get(def, "of");
    s->incremental = s->refresh == WM_REFRESH_REALTIME;
    if (!of) {
        wm__aud_err(cx, "$.of", "missing required field: the segments combined");
        return;
    }
    if (of->type != WM_JSON_ARRAY || of->len < 2 || of->len > WM_SEGMENT_OPERANDS_MAX) {
        wm__aud_err(cx, "$.of", "must be a list of 2 to %d segment keys", WM_SEGMENT_OPERANDS_MAX);
        return;
    }
    if (!(s->operands = wm_arena_alloc(&s->arena, of->len * sizeof *s->operands))) {
        cx->oom = true;
        return;
    }
    uint32_t i = 0;
    for (const wm_json_t *e = of->u.child; e; e = e->next, i++) {
        char path[WM__AUD_PATH_MAX];
        wm__aud_path_idx(path, "$.of", i);
        const char *key = wm_json_str(e);
        if (!key || strlen(key) != e->len || !wm__aud_key_ok(key)) {
            wm__aud_err(cx, path, "must be a segment key ([A-Za-z_][A-Za-z0-9_]{0,63})");
            continue;
        }
        bool dup = false;
        for (uint32_t k = 0; k < s->n_operands && !dup; k++) {
            if (strcmp(s->operands[k], key) == 0) {
                wm__aud_err(cx, path, "'%s' is given twice", key);
                dup = true;
            }
        }
        if (s->key && strcmp(s->key, key) == 0) {
            wm__aud_err(cx, path, "a segment cannot contain itself");
            dup = true;
        }
        char *copy = dup ? NULL : wm__aud_dup(cx, key);
        if (copy) {
            s->operands[s->n_operands++] = copy;
            wm__aud_names_add(cx, &sc->in.segments, copy);
        }
    }
}

static void parse_static(scx_t *sc, const wm_json_t *def)
{
    wm__aud_cx_t *cx = &sc->cx;
    wm_segment_def_t *s = sc->s;
    const char *of = wm__aud_key(cx, def, "snapshot_of", "$", false);
    if (of && s->key && strcmp(of, s->key) == 0) {
        wm__aud_err(cx, "$.snapshot_of", "a segment cannot be a snapshot of itself");
        return;
    }
    s->snapshot_of = wm__aud_dup(cx, of);
    wm__aud_names_add(cx, &sc->in.segments, s->snapshot_of);
}

/* ------------------------------------------------------------ lifetime */

void wm_segment_free(wm_segment_def_t *s)
{
    if (!s)
        return;
    wm_cond_free(s->cond);
    wm_arena_release(&s->arena);
    wm_free(s);
}

static void parse_segment(scx_t *sc, const wm_json_t *def)
{
    wm_segment_def_t *s = sc->s;
    parse_common(sc, def);
    switch (s->kind) {
    case WM_SEGMENT_RULE:
        parse_rule(sc, def);
        break;
    case WM_SEGMENT_UNION:
    case WM_SEGMENT_INTERSECT:
    case WM_SEGMENT_EXCEPT:
        parse_operands(sc, def);
        break;
    case WM_SEGMENT_STATIC:
        parse_static(sc, def);
        break;
    }
    s->uses_profile = sc->in.profile;
    s->uses_clock = sc->in.clock;
    s->input_events = sc->in.events.v;
    s->n_input_events = sc->in.events.n;
    s->input_tags = sc->in.tags.v;
    s->n_input_tags = sc->in.tags.n;
    s->input_segments = sc->in.segments.v;
    s->n_input_segments = sc->in.segments.n;
}

int wm_segment_compile(const wm_json_t *def, wm_segment_def_t **out, wm_aud_error_t *errs, uint32_t max_errs,
                       uint32_t *n_errs)
{
    if (out)
        *out = NULL;
    if (n_errs)
        *n_errs = 0;
    if (!out)
        return WM_EINVAL;
    wm_segment_def_t *s = wm_calloc(1, sizeof *s);
    if (!s)
        return WM_ENOMEM;
    wm_arena_init(&s->arena, 1024);
    scx_t sc;
    memset(&sc, 0, sizeof sc);
    sc.s = s;
    sc.cx = (wm__aud_cx_t){.errs = errs, .max_errs = errs ? max_errs : 0, .arena = &s->arena};
    if (!def || def->type != WM_JSON_OBJECT)
        wm__aud_err(&sc.cx, "$", "a segment definition must be a JSON object");
    else
        parse_segment(&sc, def);
    int rc = sc.cx.oom ? WM_ENOMEM : sc.cx.n_errs ? WM_EINVAL : 0;
    if (n_errs)
        *n_errs = rc == WM_ENOMEM ? 0 : sc.cx.n_errs;
    if (rc != 0) {
        wm_segment_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int wm_segment_compile_text(const char *text, size_t len, wm_segment_def_t **out, wm_aud_error_t *errs,
                            uint32_t max_errs, uint32_t *n_errs)
{
    if (out)
        *out = NULL;
    wm_arena_t a;
    wm_arena_init(&a, 8192);
    wm_json_t *v = NULL;
    int rc = wm__aud_parse(&a, text, len, &v, errs, max_errs, n_errs);
    if (rc == 0)
        rc = wm_segment_compile(v, out, errs, max_errs, n_errs);
    wm_arena_release(&a);
    return rc;
}
