/*
 * registry.c - the published tags and segments of every project, as one
 * immutable snapshot.
 *
 * A snapshot is built from the catalog (the current published version of
 * each definition), ordered so that every definition comes after those it
 * reads (a tag after the tags in its conditions, a segment after the
 * segments it combines or tests), and indexed by event name: the apply path
 * looks up one event name and gets the counters it feeds and the tags and
 * segments it may change, without a scan over every definition.
 *
 * Publishing swaps the snapshot pointer; old snapshots stay alive until the
 * registry closes, because a partition writer may still be inside a
 * transaction that started with one.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "audience/runtime.h"
#include "store/catalog.h"
#include "waymark/alloc.h"
#include "waymark/error.h"

struct wm_areg {
    struct wm_catalog *cat;
    pthread_mutex_t mu;         /* serialises reloads */
    _Atomic(wm_asnap_t *) snap;
};

/* ---- building ---- */

typedef struct build {
    wm_asnap_t *s;
    wm_atag_t **tags;
    uint32_t n_tags, cap_tags;
    wm_aseg_t **segs;
    uint32_t n_segs, cap_segs;
    int err;
} build_t;

static int grow(void **arr, uint32_t n, uint32_t *cap, size_t elem)
{
    if (n < *cap)
        return 0;
    uint32_t c = *cap ? *cap * 2 : 16;
    void *p = wm_realloc(*arr, (size_t)c * elem);
    if (!p)
        return WM_ENOMEM;
    *arr = p;
    *cap = c;
    return 0;
}

/* How old an event may be and still move the tag (see wm_atag_t). */
static int32_t tag_window(const wm_tag_def_t *d)
{
    int32_t days = (int32_t)(d->within_ms / 86400000);
    switch (d->kind) {
    case WM_TAG_METRIC:
        return d->agg == WM_METRIC_DAYS_SINCE || days <= 0 ? -1 : days;
    case WM_TAG_PREFERENCE:
        return days > 0 ? days : -1;
    case WM_TAG_RULE: {
        int32_t max = 0;
        for (uint32_t i = 0; i < d->n_layers; i++) {
            int32_t w = wm_cond_event_window_days(d->layers[i].cond);
            if (w < 0)
                return -1;
            if (w > max)
                max = w;
        }
        return max;
    }
    default:
        return -1; /* first / last keep the order of events of any age */
    }
}

static int add_tag(void *ctx, const char *project, const char *key, uint32_t id, uint32_t version,
                   const char *definition, const char *status)
{
    build_t *b = ctx;
    if (strcmp(status, "published"))
        return 0;
    wm_tag_def_t *def = NULL;
    wm_aud_error_t err;
    uint32_t n_err = 0;
    if (wm_tag_compile_text(definition, strlen(definition), &def, &err, 1, &n_err)) {
        fprintf(stderr, "waymark: tag %s/%s v%u no longer compiles: %s: %s\n", project, key, version,
                n_err ? err.path : "$", n_err ? err.msg : "?");
        return 0;
    }
    wm_atag_t *t = wm_calloc(1, sizeof *t);
    if (!t || grow((void **)&b->tags, b->n_tags, &b->cap_tags, sizeof *b->tags)) {
        wm_free(t);
        wm_tag_free(def);
        return WM_ENOMEM;
    }
    t->project = wm_strdup(project);
    t->key = wm_strdup(key);
    t->id = id;
    t->version = version;
    t->def = def;
    def->version = version;
    t->window_days = tag_window(def);
    b->tags[b->n_tags++] = t;
    return t->project && t->key ? 0 : WM_ENOMEM;
}

static int add_seg(void *ctx, const char *project, const char *key, uint32_t id, uint32_t version,
                   const char *definition, const char *status)
{
    build_t *b = ctx;
    if (strcmp(status, "published"))
        return 0;
    wm_segment_def_t *def = NULL;
    wm_aud_error_t err;
    uint32_t n_err = 0;
    if (wm_segment_compile_text(definition, strlen(definition), &def, &err, 1, &n_err)) {
        fprintf(stderr, "waymark: segment %s/%s v%u no longer compiles: %s: %s\n", project, key,
                version, n_err ? err.path : "$", n_err ? err.msg : "?");
        return 0;
    }
    wm_aseg_t *g = wm_calloc(1, sizeof *g);
    if (!g || grow((void **)&b->segs, b->n_segs, &b->cap_segs, sizeof *b->segs)) {
        wm_free(g);
        wm_segment_free(def);
        return WM_ENOMEM;
    }
    g->project = wm_strdup(project);
    g->key = wm_strdup(key);
    g->id = id;
    g->version = version;
    g->def = def;
    def->version = version;
    g->realtime = def->kind != WM_SEGMENT_STATIC && def->refresh == WM_REFRESH_REALTIME &&
                  (def->kind != WM_SEGMENT_RULE || def->incremental);
    g->window_days = def->kind == WM_SEGMENT_RULE ? wm_cond_event_window_days(def->cond) : -1;
    g->monotone = def->kind == WM_SEGMENT_RULE && wm_cond_event_monotone(def->cond);
    b->segs[b->n_segs++] = g;
    return g->project && g->key ? 0 : WM_ENOMEM;
}

static bool listed(char **names, uint32_t n, const char *name)
{
    for (uint32_t i = 0; i < n; i++)
        if (!strcmp(names[i], name))
            return true;
    return false;
}

static void free_tag(wm_atag_t *t)
{
    if (!t)
        return;
    wm_tag_free(t->def);
    wm_free(t->project);
    wm_free(t->key);
    wm_free(t->dep_tags);
    wm_free(t->dep_segs);
    wm_free(t);
}

static void free_seg(wm_aseg_t *g)
{
    if (!g)
        return;
    wm_segment_free(g->def);
    wm_free(g->project);
    wm_free(g->key);
    wm_free(g->dep_segs);
    wm_free(g);
}

/* Orders tags so each follows the tags it reads (same project). A tag in a
 * circle is dropped (publishing refuses circles; this guards old data). */
static int order_tags(build_t *b)
{
    wm_asnap_t *s = b->s;
    s->tags = wm_calloc(b->n_tags ? b->n_tags : 1, sizeof *s->tags);
    if (!s->tags)
        return WM_ENOMEM;
    bool *placed = wm_calloc(b->n_tags ? b->n_tags : 1, 1);
    if (!placed)
        return WM_ENOMEM;
    for (bool progress = true; progress;) {
        progress = false;
        for (uint32_t i = 0; i < b->n_tags; i++) {
            if (placed[i])
                continue;
            wm_atag_t *t = b->tags[i];
            bool ready = true;
            for (uint32_t k = 0; k < t->def->n_input_tags && ready; k++)
                for (uint32_t j = 0; j < b->n_tags && ready; j++)
                    if (!placed[j] && j != i && !strcmp(b->tags[j]->project, t->project) &&
                        !strcmp(b->tags[j]->key, t->def->input_tags[k]))
                        ready = false;
            if (!ready)
                continue;
            placed[i] = true;
            t->index = s->n_tags;
            s->tags[s->n_tags++] = t;
            progress = true;
        }
    }
    for (uint32_t i = 0; i < b->n_tags; i++)
        if (!placed[i]) {
            fprintf(stderr, "waymark: tag %s/%s reads itself through other tags: not evaluated\n",
                    b->tags[i]->project, b->tags[i]->key);
            free_tag(b->tags[i]);
        }
    wm_free(placed);
    return 0;
}

static bool seg_reads(const wm_aseg_t *g, const char *key)
{
    return listed(g->def->input_segments, g->def->n_input_segments, key) ||
           listed(g->def->operands, g->def->n_operands, key);
}

static int order_segs(build_t *b)
{
    wm_asnap_t *s = b->s;
    s->segs = wm_calloc(b->n_segs ? b->n_segs : 1, sizeof *s->segs);
    bool *placed = wm_calloc(b->n_segs ? b->n_segs : 1, 1);
    if (!s->segs || !placed) {
        wm_free(placed);
        return WM_ENOMEM;
    }
    for (bool progress = true; progress;) {
        progress = false;
        for (uint32_t i = 0; i < b->n_segs; i++) {
            if (placed[i])
                continue;
            wm_aseg_t *g = b->segs[i];
            bool ready = true;
            for (uint32_t j = 0; j < b->n_segs && ready; j++)
                if (!placed[j] && j != i && !strcmp(b->segs[j]->project, g->project) &&
                    seg_reads(g, b->segs[j]->key))
                    ready = false;
            if (!ready)
                continue;
            placed[i] = true;
            g->index = s->n_segs;
            s->segs[s->n_segs++] = g;
            if (g->id > s->max_seg_id)
                s->max_seg_id = g->id;
            progress = true;
        }
    }
    for (uint32_t i = 0; i < b->n_segs; i++)
        if (!placed[i]) {
            fprintf(stderr, "waymark: segment %s/%s reads itself through other segments: not kept\n",
                    b->segs[i]->project, b->segs[i]->key);
            free_seg(b->segs[i]);
        }
    wm_free(placed);
    return 0;
}

static int push_u32(uint32_t **arr, uint32_t *n, uint32_t v)
{
    for (uint32_t i = 0; i < *n; i++)
        if ((*arr)[i] == v)
            return 0;
    if ((*n & (*n - 1)) == 0) {
        uint32_t *p = wm_realloc(*arr, (size_t)(*n ? *n * 2 : 4) * sizeof *p);
        if (!p)
            return WM_ENOMEM;
        *arr = p;
    }
    (*arr)[(*n)++] = v;
    return 0;
}

/* The deps entry of an event name, created on first use. */
static wm_adeps_t *deps_for(wm_asnap_t *s, const char *event, uint32_t *cap)
{
    uint64_t ix;
    if (wm_strmap_get(&s->by_event, event, strlen(event), &ix))
        return &s->deps[ix];
    if (s->n_deps == *cap) {
        uint32_t c = *cap * 2;
        wm_adeps_t *d = wm_realloc(s->deps, (size_t)c * sizeof *d);
        if (!d)
            return NULL;
        s->deps = d;
        *cap = c;
    }
    memset(&s->deps[s->n_deps], 0, sizeof s->deps[0]);
    if (wm_strmap_put(&s->by_event, event, strlen(event), s->n_deps))
        return NULL;
    return &s->deps[s->n_deps++];
}

static int add_specs(wm_asnap_t *s, const wm_cond_t *c, wm_strmap_t *seen, uint32_t *cap_specs)
{
    const wm_counter_spec_t *specs;
    uint32_t n;
    wm_cond_counters(c, &specs, &n);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t ix;
        if (wm_strmap_get(seen, specs[i].key, strlen(specs[i].key), &ix))
            continue;
        if (grow((void **)&s->specs, s->n_specs, cap_specs, sizeof *s->specs) ||
            wm_strmap_put(seen, specs[i].key, strlen(specs[i].key), s->n_specs))
            return WM_ENOMEM;
        s->specs[s->n_specs++] = &specs[i];
    }
    return 0;
}

static int tag_specs(wm_asnap_t *s, const wm_tag_def_t *d, wm_strmap_t *seen, uint32_t *cap)
{
    int rc = 0;
    for (uint32_t k = 0; k < d->n_layers && !rc; k++)
        rc = add_specs(s, d->layers[k].cond, seen, cap);
    if (!rc && d->metric_cond)
        rc = add_specs(s, d->metric_cond, seen, cap);
    return rc;
}

static size_t pk_key(char *buf, size_t cap, const char *project, const char *key)
{
    size_t pl = strlen(project), kl = strlen(key);
    if (pl + 1 + kl > cap)
        return 0;
    memcpy(buf, project, pl);
    buf[pl] = 0;
    memcpy(buf + pl + 1, key, kl);
    return pl + 1 + kl;
}

static int index_keys(wm_asnap_t *s)
{
    char buf[512];
    int rc = 0;
    s->seg_ix_by_id = wm_malloc((s->max_seg_id + 1) * sizeof *s->seg_ix_by_id);
    if (!s->seg_ix_by_id)
        return WM_ENOMEM;
    for (uint32_t i = 0; i <= s->max_seg_id; i++)
        s->seg_ix_by_id[i] = -1;
    for (uint32_t i = 0; i < s->n_segs; i++)
        s->seg_ix_by_id[s->segs[i]->id] = (int32_t)i;
    wm_strmap_init(&s->tag_by_key);
    wm_strmap_init(&s->seg_by_key);
    for (uint32_t i = 0; i < s->n_tags && !rc; i++) {
        size_t n = pk_key(buf, sizeof buf, s->tags[i]->project, s->tags[i]->key);
        rc = n ? wm_strmap_put(&s->tag_by_key, buf, n, i) : 0;
    }
    for (uint32_t i = 0; i < s->n_segs && !rc; i++) {
        size_t n = pk_key(buf, sizeof buf, s->segs[i]->project, s->segs[i]->key);
        rc = n ? wm_strmap_put(&s->seg_by_key, buf, n, i) : 0;
    }
    return rc;
}

static int index_deps(wm_asnap_t *s)
{
    uint32_t cap = 16;
    s->deps = wm_calloc(cap, sizeof *s->deps);
    if (!s->deps)
        return WM_ENOMEM;
    wm_strmap_init(&s->by_event);
    s->n_deps = 2; /* [0] "*", [1] profile changes */
    wm_strmap_t seen;
    wm_strmap_init(&seen);
    uint32_t cap_specs = 0;
    int rc = 0;
    for (uint32_t i = 0; i < s->n_tags && !rc; i++) {
        wm_atag_t *t = s->tags[i];
        const wm_tag_def_t *d = t->def;
        if (d->uses_clock || d->n_input_segments)
            s->clock_work = true;
        if (d->uses_profile)
            rc = push_u32(&s->deps[1].tags, &s->deps[1].n_tags, i);
        for (uint32_t k = 0; k < d->n_input_events && !rc; k++) {
            wm_adeps_t *dp = !strcmp(d->input_events[k], "*") ? &s->deps[0]
                                                                : deps_for(s, d->input_events[k], &cap);
            rc = dp ? push_u32(&dp->tags, &dp->n_tags, i) : WM_ENOMEM;
        }
        for (uint32_t j = i + 1; j < s->n_tags && !rc; j++)
            if (!strcmp(s->tags[j]->project, t->project) &&
                listed(s->tags[j]->def->input_tags, s->tags[j]->def->n_input_tags, t->key))
                rc = push_u32(&t->dep_tags, &t->n_dep_tags, j);
        for (uint32_t j = 0; j < s->n_segs && !rc; j++)
            if (!strcmp(s->segs[j]->project, t->project) &&
                listed(s->segs[j]->def->input_tags, s->segs[j]->def->n_input_tags, t->key))
                rc = push_u32(&t->dep_segs, &t->n_dep_segs, j);
        if (!rc)
            rc = tag_specs(s, d, &seen, &cap_specs);
    }
    for (uint32_t i = 0; i < s->n_segs && !rc; i++) {
        wm_aseg_t *g = s->segs[i];
        const wm_segment_def_t *d = g->def;
        if (d->cond)
            rc = add_specs(s, d->cond, &seen, &cap_specs);
        for (uint32_t j = i + 1; j < s->n_segs && !rc; j++)
            if (!strcmp(s->segs[j]->project, g->project) && seg_reads(s->segs[j], g->key))
                rc = push_u32(&g->dep_segs, &g->n_dep_segs, j);
        if (rc || !g->realtime)
            continue;
        if (d->uses_clock)
            s->clock_work = true;
        if (d->uses_profile)
            rc = push_u32(&s->deps[1].segs, &s->deps[1].n_segs, i);
        for (uint32_t k = 0; k < d->n_input_events && !rc; k++) {
            wm_adeps_t *dp = deps_for(s, d->input_events[k], &cap);
            rc = dp ? push_u32(&dp->segs, &dp->n_segs, i) : WM_ENOMEM;
        }
    }
    for (uint32_t i = 0; i < s->n_specs && !rc; i++) {
        wm_adeps_t *dp = deps_for(s, s->specs[i]->event, &cap);
        rc = dp ? push_u32(&dp->specs, &dp->n_specs, i) : WM_ENOMEM;
    }
    wm_strmap_release(&seen);
    return rc;
}

static void snap_free(wm_asnap_t *s)
{
    if (!s)
        return;
    for (uint32_t i = 0; i < s->n_tags; i++)
        free_tag(s->tags[i]);
    for (uint32_t i = 0; i < s->n_segs; i++)
        free_seg(s->segs[i]);
    for (uint32_t i = 0; i < s->n_deps; i++) {
        wm_free(s->deps[i].tags);
        wm_free(s->deps[i].segs);
        wm_free(s->deps[i].specs);
    }
    wm_free(s->deps);
    wm_strmap_release(&s->by_event);
    wm_strmap_release(&s->tag_by_key);
    wm_strmap_release(&s->seg_by_key);
    wm_free(s->seg_ix_by_id);
    wm_free(s->tags);
    wm_free(s->segs);
    wm_free(s->specs);
    wm_free(s);
}

static int build(wm_areg_t *r, wm_asnap_t **out)
{
    build_t b = {0};
    b.s = wm_calloc(1, sizeof *b.s);
    if (!b.s)
        return WM_ENOMEM;
    int rc = wm__catalog_aud_current(r->cat, "tag", add_tag, &b);
    if (!rc)
        rc = wm__catalog_aud_current(r->cat, "segment", add_seg, &b);
    if (!rc)
        rc = order_tags(&b);
    if (!rc)
        rc = order_segs(&b);
    if (!rc)
        rc = index_deps(b.s);
    if (!rc)
        rc = index_keys(b.s);
    if (rc) {
        /* the unordered lists own what was not yet placed */
        if (!b.s->tags)
            for (uint32_t i = 0; i < b.n_tags; i++)
                free_tag(b.tags[i]);
        if (!b.s->segs)
            for (uint32_t i = 0; i < b.n_segs; i++)
                free_seg(b.segs[i]);
        snap_free(b.s);
        b.s = NULL;
    }
    wm_free(b.tags);
    wm_free(b.segs);
    *out = b.s;
    return rc;
}

int wm__areg_open(struct wm_catalog *cat, wm_areg_t **out)
{
    wm_areg_t *r = wm_calloc(1, sizeof *r);
    if (!r)
        return WM_ENOMEM;
    r->cat = cat;
    pthread_mutex_init(&r->mu, NULL);
    int rc = wm__areg_reload(r);
    if (rc) {
        wm__areg_close(r);
        return rc;
    }
    *out = r;
    return 0;
}

int wm__areg_reload(wm_areg_t *r)
{
    pthread_mutex_lock(&r->mu);
    wm_asnap_t *s = NULL;
    int rc = build(r, &s);
    if (!rc) {
        s->older = atomic_load(&r->snap);
        atomic_store(&r->snap, s);
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

void wm__areg_close(wm_areg_t *r)
{
    if (!r)
        return;
    wm_asnap_t *s = atomic_load(&r->snap);
    while (s) {
        wm_asnap_t *older = s->older;
        snap_free(s);
        s = older;
    }
    pthread_mutex_destroy(&r->mu);
    wm_free(r);
}

const wm_asnap_t *wm__areg_snapshot(wm_areg_t *r) { return atomic_load(&r->snap); }

const wm_atag_t *wm__areg_tag(const wm_asnap_t *s, const char *project, const char *key)
{
    char buf[512];
    uint64_t ix;
    size_t n = s && project && key ? pk_key(buf, sizeof buf, project, key) : 0;
    return n && wm_strmap_get(&s->tag_by_key, buf, n, &ix) ? s->tags[ix] : NULL;
}

const wm_aseg_t *wm__areg_seg(const wm_asnap_t *s, const char *project, const char *key)
{
    char buf[512];
    uint64_t ix;
    size_t n = s && project && key ? pk_key(buf, sizeof buf, project, key) : 0;
    return n && wm_strmap_get(&s->seg_by_key, buf, n, &ix) ? s->segs[ix] : NULL;
}

const wm_aseg_t *wm__areg_seg_id(const wm_asnap_t *s, uint32_t id)
{
    if (!s || !s->seg_ix_by_id || id > s->max_seg_id || s->seg_ix_by_id[id] < 0)
        return NULL;
    return s->segs[s->seg_ix_by_id[id]];
}

const wm_adeps_t *wm__areg_event_deps(const wm_asnap_t *s, const char *event)
{
    static const wm_adeps_t none;
    uint64_t ix;
    if (s && event && wm_strmap_get(&s->by_event, event, strlen(event), &ix))
        return &s->deps[ix];
    return &none;
}
