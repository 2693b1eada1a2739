/*
 * engine_maps.c - saved journey maps (旅程地图) and the journey report's
 * funnel (docs/api.md, "Journey maps" and "Journeys").
 *
 * A saved map is the definition of a map query (docs/analytics.md, "journey
 * map") kept in the catalog: {"key","name","description"?,"stages","window"?}.
 * It is validated by the map query's own parser (a dry run over no
 * partitions), so a map that saves is a map that runs; running it adds the
 * range (from, to, compare, utc_offset_min) and runs kind "map".
 *
 * The journey report's funnel runs kind "funnel" over the journey's own
 * operational events (docs/api.md, "Operational events"): $JourneyEntered ->
 * $JourneyGoal over the whole journey, and per split node the move out of
 * the split ($JourneyNodeEntered with "split", "arm") -> $JourneyGoal, broken
 * down by the arm (the step-1 event's "arm").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "waymark/alloc.h"
#include "waymark/analytics.h"
#include "waymark/error.h"
#include "waymark/journey.h"
#include "waymark/json.h"
#include "waymark/limits.h"

#define MAP_NAME_MAX 200

static int fail(wm_engine_query_error_t *err, const char *path, const char *fmt, const char *arg)
{
    snprintf(err->path, sizeof err->path, "%s", path);
    snprintf(err->msg, sizeof err->msg, fmt, arg ? arg : "");
    return WM_EINVAL;
}

/* [A-Za-z_][A-Za-z0-9_]{0,63}: the key rule of tags and segments. */
static bool map_key_valid(const char *k)
{
    size_t n = k ? strlen(k) : 0;
    if (!n || n > 64 || (k[0] >= '0' && k[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= 'A' && k[i] <= 'Z') || (k[i] >= '0' && k[i] <= '9') ||
              k[i] == '_'))
            return false;
    return true;
}

static bool member_of(const char *key, const char *const *names)
{
    for (; *names; names++)
        if (!strcmp(key, *names))
            return true;
    return false;
}

/* Checks the definition's shape, then runs the map query's parser on it (no
 * partitions: nothing is read). Writes the normalised definition to norm. */
static int map_validate(wm_engine_t *e, const char *project, const char *url_key, const wm_json_t *d,
                        wm_buf_t *norm, const char **key_out, const char **name_out,
                        wm_engine_query_error_t *err)
{
    static const char *const TOP[] = {"key", "name", "description", "stages", "window", NULL};
    static const char *const STAGE[] = {"name", "event", "events", "where", NULL};
    if (!d || d->type != WM_JSON_OBJECT)
        return fail(err, "", "a map is a JSON object {\"key\",\"name\",\"stages\",\"window\"?}", NULL);
    for (const wm_json_t *m = d->u.child; m; m = m->next)
        if (!member_of(m->key, TOP))
            return fail(err, m->key, "unknown member \"%s\" (key, name, description, stages, window)", m->key);
    const wm_json_t *k = wm_json_get(d, "key");
    const char *key = wm_json_str(k);
    if (k && !key)
        return fail(err, "key", "a map key is a string [A-Za-z_][A-Za-z0-9_]{0,63}", NULL);
    if (!key)
        key = url_key;
    if (!key)
        return fail(err, "key", "required: the map's key [A-Za-z_][A-Za-z0-9_]{0,63}", NULL);
    if (!map_key_valid(key))
        return fail(err, "key", "\"%s\" is not a key [A-Za-z_][A-Za-z0-9_]{0,63}", key);
    if (url_key && strcmp(key, url_key))
        return fail(err, "key", "the body's key \"%s\" is not the key of the path", key);
    const wm_json_t *nm = wm_json_get(d, "name");
    if (!nm)
        return fail(err, "name", "required: the map's display name", NULL);
    if (!wm_json_str(nm) || !nm->len || nm->len > MAP_NAME_MAX)
        return fail(err, "name", "a non-empty string of at most 200 bytes", NULL);
    const wm_json_t *desc = wm_json_get(d, "description");
    if (desc && !wm_json_str(desc))
        return fail(err, "description", "a string", NULL);
    const wm_json_t *stages = wm_json_get(d, "stages");
    if (!stages)
        return fail(err, "stages", "required: 2 to 16 stages {\"name\",\"events\":[...],\"where\"?}", NULL);
    if (stages->type == WM_JSON_ARRAY) {
        uint32_t i = 0;
        for (const wm_json_t *s = stages->u.child; s; s = s->next, i++) {
            char path[64];
            snprintf(path, sizeof path, "stages[%u]", i);
            if (s->type != WM_JSON_OBJECT)
                return fail(err, path, "a stage {\"name\",\"events\":[...],\"where\"?}", NULL);
            for (const wm_json_t *m = s->u.child; m; m = m->next)
                if (!member_of(m->key, STAGE)) {
                    snprintf(path, sizeof path, "stages[%u].%.32s", i, m->key);
                    return fail(err, path, "unknown member \"%s\" (name, event, events, where)", m->key);
                }
            const wm_json_t *sn = wm_json_get(s, "name");
            if (!sn || !wm_json_str(sn) || !sn->len) {
                snprintf(path, sizeof path, "stages[%u].name", i);
                return fail(err, path, "required: the stage's name (a non-empty string)", NULL);
            }
        }
    }
    /* the query's parser: stages, their events and conditions, window */
    wm_buf_t req;
    wm_buf_init(&req, 0);
    wm_buf_puts(&req, "{\"kind\":\"map\",\"from\":\"2000-01-01\",\"to\":\"2000-01-01\",\"stages\":");
    wm_json_write(&req, stages);
    const wm_json_t *win = wm_json_get(d, "window");
    if (win) {
        wm_buf_puts(&req, ",\"window\":");
        wm_json_write(&req, win);
    }
    wm_buf_putc(&req, '}');
    int rc = req.err;
    wm_arena_t a;
    wm_arena_init(&a, 8192);
    wm_json_t *q = NULL;
    wm_json_error_t je;
    if (!rc && wm_json_parse(&a, req.data, req.len, &q, &je))
        rc = WM_EIO;
    if (!rc) {
        wm__query_host_ctx_t hc = {.e = e, .project = project};
        wm_query_host_t host;
        wm__engine_query_host(&hc, &host);
        /* one partition without a store or a log: nothing to read, but the
         * kernels get their (empty) accumulators */
        wm_query_src_t src = {.n_parts = 1, .host = &host, .threads = 1};
        wm_query_error_t qe;
        wm_buf_t out;
        wm_buf_init(&out, 0);
        rc = wm_query_run(&src, "map", q, &out, &qe);
        wm_buf_release(&out);
        if (rc == WM_EINVAL) {
            snprintf(err->path, sizeof err->path, "%s", qe.path);
            snprintf(err->msg, sizeof err->msg, "%s", qe.msg);
        }
    }
    wm_arena_release(&a);
    wm_buf_release(&req);
    if (rc)
        return rc;
    wm_buf_puts(norm, "{\"key\":");
    wm_buf_json_str(norm, key, strlen(key));
    wm_buf_puts(norm, ",\"name\":");
    wm_json_write(norm, nm);
    if (desc) {
        wm_buf_puts(norm, ",\"description\":");
        wm_json_write(norm, desc);
    }
    wm_buf_puts(norm, ",\"stages\":");
    wm_json_write(norm, stages);
    if (win) {
        wm_buf_puts(norm, ",\"window\":");
        wm_json_write(norm, win);
    }
    wm_buf_putc(norm, '}');
    *key_out = key;
    *name_out = wm_json_str(nm);
    return norm->err;
}

static void map_row_json(const char *key, const char *name, const wm__map_row_t *row, wm_buf_t *out)
{
    wm_buf_puts(out, "{\"key\":");
    wm_buf_json_str(out, key, strlen(key));
    wm_buf_puts(out, ",\"name\":");
    wm_buf_json_str(out, name, strlen(name));
    wm_buf_printf(out, ",\"version\":%u,\"created_ms\":%lld,\"updated_ms\":%lld,\"definition\":", row->version,
                  (long long)row->created_ms, (long long)row->updated_ms);
    wm_buf_puts(out, row->definition);
    wm_buf_putc(out, '}');
}

int wm_engine_map_save(wm_engine_t *e, const char *project, const char *key, const char *json, size_t len,
                       wm_buf_t *out, wm_engine_query_error_t *err)
{
    memset(err, 0, sizeof *err);
    wm_arena_t a;
    wm_arena_init(&a, 8192);
    a.limit_bytes = WM_HTTP_BODY_MAX * 8u;
    wm_json_t *d = NULL;
    wm_json_error_t je;
    int rc = 0;
    if (!len || wm_json_parse(&a, json, len, &d, &je)) {
        char msg[200];
        snprintf(msg, sizeof msg, "the body is not JSON: %s", len ? je.msg : "empty");
        rc = fail(err, "", "%s", msg);
    }
    wm_buf_t norm;
    wm_buf_init(&norm, 0);
    const char *k = NULL, *name = NULL;
    if (!rc)
        rc = map_validate(e, project, key, d, &norm, &k, &name, err);
    uint32_t version = 0;
    if (!rc)
        rc = wm__catalog_map_put(e->catalog, project, k, name, norm.data, key == NULL, &version);
    if (!rc) {
        wm__map_row_t row;
        rc = wm__catalog_map_get(e->catalog, project, k, &row);
        if (!rc) {
            map_row_json(k, name, &row, out);
            wm_free(row.definition);
        }
    }
    wm_buf_release(&norm);
    wm_arena_release(&a);
    return rc ? rc : out->err;
}

int wm_engine_map_json(wm_engine_t *e, const char *project, const char *key, wm_buf_t *out)
{
    wm__map_row_t row;
    int rc = wm__catalog_map_get(e->catalog, project, key, &row);
    if (rc)
        return rc;
    wm_arena_t a;
    wm_arena_init(&a, 4096);
    wm_json_t *d = NULL;
    wm_json_error_t je;
    rc = wm_json_parse(&a, row.definition, strlen(row.definition), &d, &je) ? WM_EIO : 0;
    const char *name = rc ? NULL : wm_json_str(wm_json_get(d, "name"));
    if (!rc)
        map_row_json(key, name ? name : "", &row, out);
    wm_arena_release(&a);
    wm_free(row.definition);
    return rc ? rc : out->err;
}

int wm_engine_maps_json(wm_engine_t *e, const char *project, wm_buf_t *out)
{
    return wm__catalog_maps_json(e->catalog, project, out);
}

int wm_engine_map_delete(wm_engine_t *e, const char *project, const char *key)
{
    return wm__catalog_map_delete(e->catalog, project, key);
}

int wm_engine_map_query(wm_engine_t *e, const char *project, const char *key, const char *body, size_t len,
                        const wm_engine_query_opts_t *opts, char *id_out, wm_buf_t *out,
                        wm_engine_query_error_t *err)
{
    static const char *const RANGE[] = {"from", "to", "compare", "utc_offset_min", "timeout_ms", NULL};
    memset(err, 0, sizeof *err);
    wm__map_row_t row;
    int rc = wm__catalog_map_get(e->catalog, project, key, &row);
    if (rc)
        return rc;
    wm_arena_t a;
    wm_arena_init(&a, 8192);
    wm_json_t *b = NULL, *d = NULL;
    wm_json_error_t je;
    if (!len || wm_json_parse(&a, body, len, &b, &je) || b->type != WM_JSON_OBJECT)
        rc = fail(err, "", "the body is a JSON object {\"from\",\"to\",\"compare\"?,\"utc_offset_min\"?}", NULL);
    for (const wm_json_t *m = !rc ? b->u.child : NULL; m && !rc; m = m->next)
        if (!member_of(m->key, RANGE))
            rc = fail(err, m->key, "unknown member \"%s\" (from, to, compare, utc_offset_min, timeout_ms)", m->key);
    if (!rc && wm_json_parse(&a, row.definition, strlen(row.definition), &d, &je))
        rc = WM_EIO;
    wm_buf_t req;
    wm_buf_init(&req, 0);
    if (!rc) {
        wm_buf_puts(&req, "{\"kind\":\"map\",\"stages\":");
        wm_json_write(&req, wm_json_get(d, "stages"));
        if (wm_json_get(d, "window")) {
            wm_buf_puts(&req, ",\"window\":");
            wm_json_write(&req, wm_json_get(d, "window"));
        }
        for (const wm_json_t *m = b->u.child; m; m = m->next) {
            wm_buf_putc(&req, ',');
            wm_buf_json_str(&req, m->key, strlen(m->key));
            wm_buf_putc(&req, ':');
            wm_json_write(&req, m);
        }
        wm_buf_putc(&req, '}');
        rc = req.err;
    }
    wm_buf_t ans;
    wm_buf_init(&ans, 0);
    if (!rc)
        rc = wm_engine_query(e, "map", req.data, req.len, opts, id_out, &ans, err);
    if (!rc && ans.len >= 2 && ans.data[0] == '{') {
        wm_buf_puts(out, "{\"map\":");
        wm_buf_json_str(out, key, strlen(key));
        wm_buf_printf(out, ",\"version\":%u,", row.version);
        wm_buf_append(out, ans.data + 1, ans.len - 1);
    } else if (!rc) {
        rc = WM_EIO;
    }
    wm_buf_release(&ans);
    wm_buf_release(&req);
    wm_arena_release(&a);
    wm_free(row.definition);
    return rc ? rc : out->err;
}

/* ---- the journey report's funnel ---- */

static void where_journey(wm_buf_t *b, const char *key, const char *split)
{
    wm_buf_puts(b, split ? "{\"all\":[{\"prop\":\"journey\",\"op\":\"=\",\"value\":"
                         : "{\"prop\":\"journey\",\"op\":\"=\",\"value\":");
    wm_buf_json_str(b, key, strlen(key));
    wm_buf_putc(b, '}');
    if (split) {
        wm_buf_puts(b, ",{\"prop\":\"split\",\"op\":\"=\",\"value\":");
        wm_buf_json_str(b, split, strlen(split));
        wm_buf_puts(b, "}]}");
    }
}

/* Runs one funnel: [first, $JourneyGoal] of journey key (first: entry, or
 * the move out of split, broken down by arm). */
static int run_funnel(wm_engine_t *e, const char *project, const char *key, const char *split, const char *from,
                      const char *to, const char *utc_off, const char *window, wm_arena_t *a, wm_json_t **ans,
                      wm_engine_query_error_t *err)
{
    wm_buf_t req;
    wm_buf_init(&req, 0);
    wm_buf_puts(&req, "{\"kind\":\"funnel\",\"from\":");
    wm_buf_json_str(&req, from, strlen(from));
    wm_buf_puts(&req, ",\"to\":");
    wm_buf_json_str(&req, to, strlen(to));
    wm_buf_puts(&req, ",\"window\":");
    wm_buf_json_str(&req, window, strlen(window));
    if (utc_off)
        wm_buf_printf(&req, ",\"utc_offset_min\":%s", utc_off);
    wm_buf_puts(&req, split ? ",\"steps\":[{\"name\":\"arm\",\"event\":\"$JourneyNodeEntered\",\"where\":"
                            : ",\"steps\":[{\"name\":\"entered\",\"event\":\"$JourneyEntered\",\"where\":");
    where_journey(&req, key, split);
    wm_buf_puts(&req, "},{\"name\":\"goal\",\"event\":\"$JourneyGoal\",\"where\":");
    where_journey(&req, key, NULL);
    wm_buf_puts(&req, "}]");
    if (split)
        wm_buf_puts(&req, ",\"breakdown\":{\"prop\":\"arm\"},\"limit\":100");
    wm_buf_putc(&req, '}');
    int rc = req.err;
    wm_buf_t out;
    wm_buf_init(&out, 0);
    wm_engine_query_opts_t o = {.project = project};
    if (!rc)
        rc = wm_engine_query(e, "funnel", req.data, req.len, &o, NULL, &out, err);
    if (!rc) {
        /* the tree points into its text: keep a copy in the arena */
        char *text = wm_arena_alloc(a, out.len + 1);
        wm_json_error_t je;
        if (!text)
            rc = WM_ENOMEM;
        else {
            memcpy(text, out.data, out.len);
            text[out.len] = 0;
            rc = wm_json_parse(a, text, out.len, ans, &je) ? WM_EIO : 0;
        }
    }
    wm_buf_release(&out);
    wm_buf_release(&req);
    return rc;
}

static void zero_steps(wm_buf_t *b)
{
    wm_buf_puts(b, "[{\"step\":1,\"name\":\"arm\",\"users\":0,\"conversion\":0.0,\"step_conversion\":0.0,"
                   "\"median_ms\":null,\"p90_ms\":null},{\"step\":2,\"name\":\"goal\",\"users\":0,"
                   "\"conversion\":0.0,\"step_conversion\":0.0,\"median_ms\":null,\"p90_ms\":null}]");
}

int wm_engine_journey_report_funnel(wm_engine_t *e, const char *project, const char *key, const char *from,
                                    const char *to, const char *utc_off, const char *window, wm_buf_t *out,
                                    wm_engine_query_error_t *err)
{
    memset(err, 0, sizeof *err);
    const wm_jversion_t *cur = wm__jreg_current(wm__jreg_snapshot(e->jreg), project, key);
    if (!cur)
        return WM_ENOTFOUND;
    const wm_journey_def_t *d = cur->def;
    if (!from || !*from)
        return fail(err, "from", "required with funnel: the first local date of the range, YYYY-MM-DD", NULL);
    if (!to || !*to)
        return fail(err, "to", "required with funnel: the last local date of the range, YYYY-MM-DD", NULL);
    char off[16];
    if (utc_off) {
        char *end;
        long v = strtol(utc_off, &end, 10);
        if (!*utc_off || *end || v < -900 || v > 900 || !((*utc_off >= '0' && *utc_off <= '9') || *utc_off == '-'))
            return fail(err, "utc_offset_min", "an integer number of minutes, -900 to 900", NULL);
        snprintf(off, sizeof off, "%ld", v);   /* as a JSON number */
        utc_off = off;
    }
    if (!d->goal.event)
        return fail(err, "funnel", "the journey has no goal: its funnel runs from entry to the goal", NULL);
    char win[32];
    if (window && *window)
        snprintf(win, sizeof win, "%s", window);
    else if (d->goal.within_ms > 0)
        snprintf(win, sizeof win, "%llds", (long long)((d->goal.within_ms + 999) / 1000));
    else
        snprintf(win, sizeof win, "30d");
    wm_buf_t rep;
    wm_buf_init(&rep, 0);
    int rc = wm_engine_journey_report(e, project, key, &rep);
    wm_arena_t a;
    wm_arena_init(&a, 16384);
    wm_json_t *rj = NULL, *all = NULL;
    wm_json_error_t je;
    if (!rc)
        rc = wm_json_parse(&a, rep.data, rep.len, &rj, &je) ? WM_EIO : 0;
    if (!rc)
        rc = run_funnel(e, project, key, NULL, from, to, utc_off, win, &a, &all, err);
    wm_buf_t f;
    wm_buf_init(&f, 0);
    if (!rc) {
        wm_buf_puts(&f, "\"funnel\":{\"from\":");
        wm_buf_json_str(&f, from, strlen(from));
        wm_buf_puts(&f, ",\"to\":");
        wm_buf_json_str(&f, to, strlen(to));
        wm_buf_puts(&f, ",\"window\":");
        wm_buf_json_str(&f, win, strlen(win));
        wm_buf_puts(&f, ",\"goal\":");
        wm_buf_json_str(&f, d->goal.event, strlen(d->goal.event));
        wm_buf_puts(&f, ",\"steps\":");
        wm_json_write(&f, wm_json_get(all, "steps"));
        wm_buf_puts(&f, ",\"splits\":[");
    }
    /* per split node: the report's arms, each with its funnel */
    const wm_json_t *splits = rc ? NULL : wm_json_get(rj, "splits");
    int ns = 0;
    for (const wm_json_t *sp = splits ? splits->u.child : NULL; sp && !rc; sp = sp->next) {
        const char *node = wm_json_str(wm_json_get(sp, "node"));
        if (!node)
            continue;
        wm_json_t *fa = NULL;
        rc = run_funnel(e, project, key, node, from, to, utc_off, win, &a, &fa, err);
        if (rc)
            break;
        wm_buf_puts(&f, ns++ ? ",{\"node\":" : "{\"node\":");
        wm_buf_json_str(&f, node, strlen(node));
        wm_buf_puts(&f, ",\"arms\":[");
        const wm_json_t *arms = wm_json_get(sp, "arms");
        int na = 0;
        for (const wm_json_t *arm = arms ? arms->u.child : NULL; arm; arm = arm->next) {
            const char *an = wm_json_str(wm_json_get(arm, "name"));
            if (!an || arm->type != WM_JSON_OBJECT)
                continue;
            wm_buf_puts(&f, na++ ? ",{" : "{");
            int nm = 0;
            for (const wm_json_t *m = arm->u.child; m; m = m->next) {
                if (nm++)
                    wm_buf_putc(&f, ',');
                wm_buf_json_str(&f, m->key, strlen(m->key));
                wm_buf_putc(&f, ':');
                wm_json_write(&f, m);
            }
            const wm_json_t *steps = NULL;
            const wm_json_t *groups = wm_json_get(fa, "groups");
            for (const wm_json_t *g = groups ? groups->u.child : NULL; g && !steps; g = g->next) {
                const char *gn = wm_json_str(wm_json_get(g, "group"));
                if (gn && !strcmp(gn, an))
                    steps = wm_json_get(g, "steps");
            }
            wm_buf_puts(&f, ",\"funnel\":");
            if (steps)
                wm_json_write(&f, steps);
            else
                zero_steps(&f);
            wm_buf_putc(&f, '}');
        }
        wm_buf_puts(&f, "]}");
    }
    if (!rc)
        wm_buf_puts(&f, "]}");
    if (!rc && (f.err || rep.len < 2 || rep.data[rep.len - 1] != '}'))
        rc = f.err ? f.err : WM_EIO;
    if (!rc) {
        wm_buf_append(out, rep.data, rep.len - 1);
        wm_buf_putc(out, ',');
        wm_buf_append(out, f.data, f.len);
        wm_buf_putc(out, '}');
    }
    wm_buf_release(&f);
    wm_buf_release(&rep);
    wm_arena_release(&a);
    return rc ? rc : out->err;
}
