/*
 * fuzz.c (tag_def) - tag definitions come from the management API and from
 * files, so any input must give either a compiled tag whose invariants hold
 * or a list of errors, each with a "$" path and a message: never a crash, a
 * hang or a leak. The error report is serialised and must parse back as
 * JSON saying the same thing.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "waymark/audience.h"
#include "waymark/error.h"

#define ERRS 8

static void check_names(char *const *v, uint32_t n)
{
    if (n && !v)
        abort();
    for (uint32_t i = 0; i < n; i++) {
        if (!v[i] || !v[i][0])
            abort();
        for (uint32_t k = 0; k < i; k++)
            if (strcmp(v[i], v[k]) == 0)
                abort();
    }
}

static void check_tag(const wm_tag_def_t *t)
{
    if (!t->key || !t->key[0] || strlen(t->key) > WM_AUD_KEY_MAX || t->kind < WM_TAG_RULE || t->kind > WM_TAG_MANUAL ||
        t->type < WM_TAG_STRING || t->type > WM_TAG_BOOL || strcmp(wm_tag_kind_name(t->kind), "unknown") == 0)
        abort();
    if (t->kind == WM_TAG_RULE) {
        if (t->n_layers == 0 || t->n_layers > WM_TAG_LAYERS_MAX)
            abort();
        for (uint32_t i = 0; i < t->n_layers; i++) {
            if (!t->layers[i].value || !t->layers[i].cond)
                abort();
            for (uint32_t k = 0; k < i; k++)
                if (strcmp(t->layers[i].value, t->layers[k].value) == 0)
                    abort();
        }
    } else if (t->n_layers || t->default_value) {
        abort();
    }
    if (t->kind == WM_TAG_METRIC) {
        if (!t->event || t->agg < WM_METRIC_COUNT || t->agg > WM_METRIC_DAYS_SINCE)
            abort();
        bool days_since = t->agg == WM_METRIC_DAYS_SINCE;
        if (days_since != (t->metric_cond == NULL) || days_since != (t->within_ms == 0))
            abort();
        const wm_counter_spec_t *specs;
        uint32_t n = 0;
        wm_cond_counters(t->metric_cond, &specs, &n);
        if (t->metric_cond && (n != 1 || strcmp(specs[0].event, t->event) != 0))
            abort();
        if (t->type != (t->n_buckets ? WM_TAG_STRING : WM_TAG_NUMBER) || !t->uses_clock)
            abort();
    }
    for (uint32_t i = 0; i < t->n_buckets; i++) {
        if (!t->buckets[i].name || (!t->buckets[i].has_lt && i + 1 != t->n_buckets))
            abort();
        if (i && t->buckets[i].has_lt && !(t->buckets[i].lt > t->buckets[i - 1].lt))
            abort();
    }
    if (t->n_buckets) {
        const double probes[] = {-1e300, -1, 0, 0.5, 1e4, 1e300, INFINITY};
        for (size_t k = 0; k < sizeof probes / sizeof probes[0]; k++)
            (void)wm_tag_bucket_of(t, probes[k]);
        /* just below the first bound: the first bucket */
        double lt = t->buckets[0].lt, below = lt - 1e-9 * fabs(lt) - 1e-300;
        if (t->buckets[0].has_lt && strcmp(wm_tag_bucket_of(t, below), t->buckets[0].name) != 0)
            abort();
    }
    if (wm_tag_bucket_of(t, NAN))
        abort();
    bool behaviour = t->kind == WM_TAG_FIRST || t->kind == WM_TAG_LAST || t->kind == WM_TAG_PREFERENCE;
    if (behaviour && (!t->event || !t->field))
        abort();
    if ((behaviour || t->kind == WM_TAG_METRIC) &&
        (t->n_input_events != 1 || strcmp(t->input_events[0], t->event) != 0))
        abort();
    check_names(t->input_events, t->n_input_events);
    check_names(t->input_tags, t->n_input_tags);
    check_names(t->input_segments, t->n_input_segments);
    for (uint32_t i = 0; i < t->n_input_tags; i++)
        if (strcmp(t->input_tags[i], t->key) == 0)
            abort();
}

static void check_errors_json(const wm_aud_error_t *errs, uint32_t n)
{
    wm_buf_t b;
    wm_buf_init(&b, 0);
    wm_aud_errors_json(errs, n, &b);
    wm_arena_t a;
    wm_arena_init(&a, 4096);
    wm_json_t *v = NULL;
    if (b.err || wm_json_parse(&a, b.data, b.len, &v, NULL) != 0 ||
        wm_json_get(v, "valid")->type != (n ? WM_JSON_FALSE : WM_JSON_TRUE) || wm_json_get(v, "errors")->len != n)
        abort();
    wm_arena_release(&a);
    wm_buf_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 16))
        return 0;
    wm_aud_error_t errs[ERRS];
    uint32_t n = 0;
    wm_tag_def_t *t = NULL;
    int rc = wm_tag_compile_text((const char *)data, size, &t, errs, ERRS, &n);
    if (rc == 0) {
        if (!t || n != 0)
            abort();
        check_tag(t);
        check_errors_json(errs, 0);
    } else {
        if (t || rc != WM_EINVAL || n == 0)
            abort();
        for (uint32_t k = 0; k < n && k < ERRS; k++)
            if (errs[k].path[0] != '$' || !errs[k].msg[0] || !memchr(errs[k].path, 0, sizeof errs[k].path) ||
                !memchr(errs[k].msg, 0, sizeof errs[k].msg))
                abort();
        check_errors_json(errs, n < ERRS ? n : ERRS);
    }
    wm_tag_free(t);
    return 0;
}
