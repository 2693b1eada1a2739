/*
 * registry.c - the published journeys, channels and templates of every
 * project, compiled once and shared by all partitions as an immutable
 * snapshot. A reload (after publish, pause, resume, stop, or a channel or
 * template change) builds a new snapshot and swaps a pointer; old snapshots
 * stay alive until close because running instances and in-flight
 * transactions may still point into them. Reloads are rare (human actions),
 * so the memory kept is small.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/catalog.h"
#include "runtime.h"
#include "waymark/alloc.h"
#include "waymark/arena.h"
#include "waymark/error.h"

struct wm_jreg {
    wm_catalog_t *cat;
    pthread_mutex_t mu;             /* serialises reloads */
    _Atomic(wm_jsnapshot_t *) cur;
};

static char *json_strdup(const wm_json_t *o, const char *key)
{
    const char *s = wm_json_str(wm_json_get(o, key));
    return s ? wm_strdup(s) : NULL;
}

typedef struct build {
    wm_jsnapshot_t *s;
    uint32_t cap_v, cap_c, cap_t, cap_s;
    int err;
} build_t;

static int grow(void **arr, uint32_t n, uint32_t *cap, size_t elem)
{
    if (n < *cap)
        return 0;
    uint32_t c = *cap ? *cap * 2 : 16;
    void *p = wm_realloc(*arr, c * elem);
    if (!p)
        return WM_ENOMEM;
    *arr = p;
    *cap = c;
    return 0;
}

/* A stored definition as a JSON object, or NULL (logged: a bad row must not
 * keep every other journey, channel and template from loading). */
static const wm_json_t *parse_doc(wm_arena_t *a, const char *what, const char *project,
                                  const char *name, const char *json)
{
    wm_json_t *o;
    wm_json_error_t je;
    wm_arena_init(a, 4096);
    if (wm_json_parse(a, json, strlen(json), &o, &je) || o->type != WM_JSON_OBJECT) {
        fprintf(stderr, "waymark: %s %s/%s: bad definition\n", what, project, name);
        return NULL;
    }
    return o;
}

static int add_channel(void *ctx, const char *project, const char *name, const char *json)
{
    build_t *b = ctx;
    wm_arena_t a;
    const wm_json_t *o = parse_doc(&a, "channel", project, name, json);
    if (!o) {
        wm_arena_release(&a);
        return 0;
    }
    wm_jchannel_t *ch = wm_calloc(1, sizeof *ch);
    if (!ch || grow((void **)&b->s->channels, b->s->n_channels, &b->cap_c, sizeof *b->s->channels)) {
        wm_free(ch);
        wm_arena_release(&a);
        return WM_ENOMEM;
    }
    ch->project = wm_strdup(project);
    ch->name = wm_strdup(name);
    ch->kind = json_strdup(o, "kind");
    if (!ch->kind)
        ch->kind = wm_strdup("webhook");
    ch->url = json_strdup(o, "url");
    ch->secret = json_strdup(o, "secret");
    ch->to_prop = json_strdup(o, "to");
    if (wm_channel_kind_parse(ch->kind, &ch->dispatch_kind))
        ch->dispatch_kind = WM_CH_WEBHOOK;
    b->s->channels[b->s->n_channels++] = ch;
    wm_arena_release(&a);
    return 0;
}

static int add_template(void *ctx, const char *project, const char *key, const char *json)
{
    build_t *b = ctx;
    wm_arena_t a;
    const wm_json_t *o = parse_doc(&a, "template", project, key, json);
    if (!o) {
        wm_arena_release(&a);
        return 0;
    }
    wm_jtemplate_t *t = wm_calloc(1, sizeof *t);
    if (!t || grow((void **)&b->s->templates, b->s->n_templates, &b->cap_t, sizeof *b->s->templates)) {
        wm_free(t);
        wm_arena_release(&a);
        return WM_ENOMEM;
    }
    t->project = wm_strdup(project);
    t->key = wm_strdup(key);
    t->channel = json_strdup(o, "channel");
    char err[200];
    const char *title = wm_json_str(wm_json_get(o, "title"));
    const char *body = wm_json_str(wm_json_get(o, "body"));
    if (title && wm_template_compile(title, &t->title, err, sizeof err))
        fprintf(stderr, "waymark: template %s/%s title: %s\n", project, key, err);
    if (body && wm_template_compile(body, &t->body, err, sizeof err))
        fprintf(stderr, "waymark: template %s/%s body: %s\n", project, key, err);
    b->s->templates[b->s->n_templates++] = t;
    wm_arena_release(&a);
    return 0;
}

static wm_jproject_t *project_of(build_t *b, const char *name)
{
    for (uint32_t i = 0; i < b->s->n_projects; i++)
        if (!strcmp(b->s->projects[i]->name, name))
            return b->s->projects[i];
    uint32_t cap = b->s->n_projects;
    wm_jproject_t **arr = wm_realloc(b->s->projects, (cap + 1) * sizeof *arr);
    wm_jproject_t *p = wm_calloc(1, sizeof *p);
    if (!arr || !p) {
        wm_free(p);
        if (arr)
            b->s->projects = arr;
        return NULL;
    }
    b->s->projects = arr;
    p->name = wm_strdup(name);
    arr[b->s->n_projects++] = p;
    return p;
}

/* project_settings rows: holdout_percent, default_tz, calendar (JSON),
 * frequency_caps (JSON list of {"channel","max","per"}) */
static int add_setting(void *ctx, const char *project, const char *name, const char *value)
{
    build_t *b = ctx;
    wm_jproject_t *p = project_of(b, project);
    if (!p)
        return WM_ENOMEM;
    if (!strcmp(name, "holdout_percent")) {
        long v = strtol(value, NULL, 10);
        p->holdout_percent = v < 0 ? 0 : v > 100 ? 100 : (uint32_t)v;
    } else if (!strcmp(name, "default_tz")) {
        wm_free(p->default_tz);
        p->default_tz = wm_strdup(value);
    } else if (!strcmp(name, "calendar") || !strcmp(name, "frequency_caps")) {
        wm_arena_t a;
        wm_arena_init(&a, 8192);
        wm_json_t *o;
        wm_json_error_t je;
        if (wm_json_parse(&a, value, strlen(value), &o, &je) == 0) {
            if (!strcmp(name, "calendar")) {
                wm_cond_error_t ce;
                if (p->calendar)
                    wm_calendar_free(p->calendar);
                p->calendar = NULL;
                if (wm_calendar_compile(o, &p->calendar, &ce))
                    fprintf(stderr, "waymark: project %s calendar: %s %s\n", project, ce.path, ce.msg);
            } else if (o->type == WM_JSON_ARRAY) {
                wm_free(p->caps);
                p->caps = wm_calloc(o->len + 1, sizeof *p->caps);
                p->n_caps = 0;
                for (const wm_json_t *c = o->u.child; c && p->caps; c = c->next) {
                    const wm_json_t *max = wm_json_get(c, "max");
                    const char *per = wm_json_str(wm_json_get(c, "per"));
                    int64_t per_ms;
                    if (!max || max->type != WM_JSON_NUMBER || !per || wm_duration_parse(per, &per_ms))
                        continue;
                    wm_freq_cap_t *cap = &p->caps[p->n_caps++];
                    cap->channel = json_strdup(c, "channel");
                    cap->max = (uint32_t)max->u.num;
                    cap->per_ms = per_ms;
                }
            }
        }
        wm_arena_release(&a);
    }
    return 0;
}

static void add_specs_of(build_t *b, const wm_cond_t *c)
{
    if (!c || b->err)
        return;
    const wm_counter_spec_t *specs;
    uint32_t n;
    wm_cond_counters(c, &specs, &n);
    for (uint32_t i = 0; i < n; i++) {
        bool dup = false;
        for (uint32_t j = 0; j < b->s->n_specs && !dup; j++)
            dup = strcmp(b->s->specs[j]->key, specs[i].key) == 0;
        if (dup)
            continue;
        if (grow((void **)&b->s->specs, b->s->n_specs, &b->cap_s, sizeof *b->s->specs)) {
            b->err = WM_ENOMEM;
            return;
        }
        b->s->specs[b->s->n_specs++] = &specs[i];
    }
}

static void collect_specs(build_t *b, const wm_journey_def_t *d)
{
    add_specs_of(b, d->entry.where);
    add_specs_of(b, d->entry.condition);
    add_specs_of(b, d->goal.where);
    add_specs_of(b, d->exit_when.condition);
    for (uint32_t i = 0; i < d->n_nodes; i++) {
        const wm_jnode_t *n = &d->nodes[i];
        if (n->type == WM_JN_CONDITION)
            add_specs_of(b, n->u.condition.cond);
        else if (n->type == WM_JN_WAIT_EVENT)
            add_specs_of(b, n->u.wait_event.where);
        else if (n->type == WM_JN_BRANCH)
            for (uint32_t k = 0; k < n->u.branch.n_arms; k++)
                add_specs_of(b, n->u.branch.arms[k].cond);
    }
}

static int add_version(void *ctx, const char *project, const char *key, uint32_t version,
                       const char *definition, const char *status, uint32_t current)
{
    build_t *b = ctx;
    wm_arena_t a;
    wm_arena_init(&a, 16384);
    wm_json_t *o;
    wm_json_error_t je;
    if (wm_json_parse(&a, definition, strlen(definition), &o, &je)) {
        fprintf(stderr, "waymark: journey %s/%s v%u: stored definition does not parse\n", project,
                key, version);
        wm_arena_release(&a);
        return 0;
    }
    wm_journey_def_t *def = NULL;
    wm_journey_error_t errs[4];
    uint32_t n_errs = 0;
    int rc = wm_journey_compile(o, NULL, &def, errs, 4, &n_errs);
    wm_arena_release(&a);
    if (rc) {
        fprintf(stderr, "waymark: journey %s/%s v%u does not compile: %s %s %s\n", project, key,
                version, n_errs ? errs[0].node : "", n_errs ? errs[0].field : "",
                n_errs ? errs[0].msg : wm_strerror(rc));
        return 0;
    }
    def->version = version;
    wm_jversion_t *v = wm_calloc(1, sizeof *v);
    if (!v || grow((void **)&b->s->versions, b->s->n_versions, &b->cap_v, sizeof *b->s->versions)) {
        wm_free(v);
        wm_journey_free(def);
        return WM_ENOMEM;
    }
    v->project = wm_strdup(project);
    v->key = wm_strdup(key);
    v->version = version;
    v->def = def;
    v->current = version == current;
    v->running = strcmp(status, "stopped") != 0;
    v->accepting = v->current && strcmp(status, "published") == 0;
    b->s->versions[b->s->n_versions++] = v;
    collect_specs(b, def);
    return 0;
}

static int by_priority(const void *x, const void *y)
{
    const wm_jversion_t *a = *(wm_jversion_t *const *)x, *b = *(wm_jversion_t *const *)y;
    int pa = a->def->settings.priority, pb = b->def->settings.priority;
    if (pa != pb)
        return pa > pb ? -1 : 1;
    int c = strcmp(a->key, b->key);
    return c ? c : (a->version < b->version ? -1 : a->version > b->version);
}

static wm_jsnapshot_t *build_snapshot(wm_catalog_t *cat, int *rc_out)
{
    build_t b = {.s = wm_calloc(1, sizeof *b.s)};
    if (!b.s) {
        *rc_out = WM_ENOMEM;
        return NULL;
    }
    int rc = wm__catalog_doc_each(cat, "channels", NULL, add_channel, &b);
    if (!rc)
        rc = wm__catalog_doc_each(cat, "templates", NULL, add_template, &b);
    if (!rc)
        rc = wm__catalog_doc_each(cat, "project_settings", NULL, add_setting, &b);
    if (!rc)
        rc = wm__catalog_journey_versions(cat, add_version, &b);
    if (!rc)
        rc = b.err;
    if (b.s->n_versions)
        qsort(b.s->versions, b.s->n_versions, sizeof *b.s->versions, by_priority);
    *rc_out = rc;
    return b.s;
}

static void free_snapshot(wm_jsnapshot_t *s)
{
    while (s) {
        wm_jsnapshot_t *older = s->older;
        /* specs point into compiled conditions: free the array only */
        wm_free(s->specs);
        for (uint32_t i = 0; i < s->n_versions; i++) {
            wm_jversion_t *v = s->versions[i];
            wm_journey_free(v->def);
            wm_free(v->project), wm_free(v->key), wm_free(v);
        }
        for (uint32_t i = 0; i < s->n_channels; i++) {
            wm_jchannel_t *c = s->channels[i];
            wm_free(c->project), wm_free(c->name), wm_free(c->kind), wm_free(c->url);
            wm_free(c->secret), wm_free(c->to_prop), wm_free(c);
        }
        for (uint32_t i = 0; i < s->n_templates; i++) {
            wm_jtemplate_t *t = s->templates[i];
            if (t->title)
                wm_template_free(t->title);
            if (t->body)
                wm_template_free(t->body);
            wm_free(t->project), wm_free(t->key), wm_free(t->channel), wm_free(t);
        }
        for (uint32_t i = 0; i < s->n_projects; i++) {
            wm_jproject_t *p = s->projects[i];
            for (uint32_t k = 0; k < p->n_caps; k++)
                wm_free(p->caps[k].channel);
            wm_free(p->caps);
            if (p->calendar)
                wm_calendar_free(p->calendar);
            wm_free(p->default_tz), wm_free(p->name), wm_free(p);
        }
        wm_free(s->projects);
        wm_free(s->versions), wm_free(s->channels), wm_free(s->templates);
        wm_free(s);
        s = older;
    }
}

int wm__jreg_open(wm_catalog_t *cat, wm_jreg_t **out)
{
    wm_jreg_t *r = wm_calloc(1, sizeof *r);
    if (!r)
        return WM_ENOMEM;
    r->cat = cat;
    pthread_mutex_init(&r->mu, NULL);
    int rc = wm__jreg_reload(r);
    if (rc) {
        wm__jreg_close(r);
        return rc;
    }
    *out = r;
    return 0;
}

void wm__jreg_close(wm_jreg_t *r)
{
    if (!r)
        return;
    free_snapshot(atomic_load(&r->cur));
    pthread_mutex_destroy(&r->mu);
    wm_free(r);
}

int wm__jreg_reload(wm_jreg_t *r)
{
    pthread_mutex_lock(&r->mu);
    int rc;
    wm_jsnapshot_t *s = build_snapshot(r->cat, &rc);
    if (s && !rc) {
        s->older = atomic_load(&r->cur);
        atomic_store(&r->cur, s);
    } else {
        free_snapshot(s);
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

const wm_jsnapshot_t *wm__jreg_snapshot(wm_jreg_t *r) { return atomic_load(&r->cur); }

const wm_jversion_t *wm__jreg_version(const wm_jsnapshot_t *s, const char *project, const char *key,
                                      uint32_t version)
{
    for (uint32_t i = 0; s && i < s->n_versions; i++) {
        const wm_jversion_t *v = s->versions[i];
        if (v->version == version && !strcmp(v->key, key) && !strcmp(v->project, project))
            return v;
    }
    return NULL;
}

const wm_jversion_t *wm__jreg_current(const wm_jsnapshot_t *s, const char *project, const char *key)
{
    for (uint32_t i = 0; s && i < s->n_versions; i++) {
        const wm_jversion_t *v = s->versions[i];
        if (v->current && !strcmp(v->key, key) && !strcmp(v->project, project))
            return v;
    }
    return NULL;
}

const wm_jchannel_t *wm__jreg_channel(const wm_jsnapshot_t *s, const char *project, const char *name)
{
    for (uint32_t i = 0; s && i < s->n_channels; i++)
        if (!strcmp(s->channels[i]->name, name) && !strcmp(s->channels[i]->project, project))
            return s->channels[i];
    return NULL;
}

const wm_jtemplate_t *wm__jreg_template(const wm_jsnapshot_t *s, const char *project, const char *key)
{
    for (uint32_t i = 0; s && i < s->n_templates; i++)
        if (!strcmp(s->templates[i]->key, key) && !strcmp(s->templates[i]->project, project))
            return s->templates[i];
    return NULL;
}

const wm_jproject_t *wm__jreg_project(const wm_jsnapshot_t *s, const char *project)
{
    for (uint32_t i = 0; s && i < s->n_projects; i++)
        if (!strcmp(s->projects[i]->name, project))
            return s->projects[i];
    return NULL;
}

const wm_calendar_t *wm__jreg_calendar(const wm_jsnapshot_t *s, const char *project)
{
    const wm_jproject_t *p = wm__jreg_project(s, project);
    return p ? p->calendar : NULL;
}
