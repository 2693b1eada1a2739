/*
 * fuzz.c (segment_def) - segment definitions come from the management API
 * and from files, so any input must give either a compiled segment whose
 * invariants hold or a list of errors, each with a "$" path and a message:
 * never a crash, a hang or a leak.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "waymark/audience.h"
#include "waymark/error.h"

#define ERRS 8

static void check_names(char *const *v, uint32_t n, const char *self)
{
    if (n && !v)
        abort();
    for (uint32_t i = 0; i < n; i++) {
        if (!v[i] || !v[i][0] || (self && strcmp(v[i], self) == 0))
            abort();
        for (uint32_t k = 0; k < i; k++)
            if (strcmp(v[i], v[k]) == 0)
                abort();
    }
}

static void check_segment(const wm_segment_def_t *s)
{
    if (!s->key || !s->key[0] || strlen(s->key) > WM_AUD_KEY_MAX || s->kind < WM_SEGMENT_RULE ||
        s->kind > WM_SEGMENT_STATIC || strcmp(wm_segment_kind_name(s->kind), "unknown") == 0)
        abort();
    if ((s->refresh == WM_REFRESH_SCHEDULE) != (s->cron != NULL) ||
        (s->refresh != WM_REFRESH_SCHEDULE && s->refresh != WM_REFRESH_REALTIME))
        abort();
    if ((s->kind == WM_SEGMENT_RULE) != (s->cond != NULL))
        abort();
    bool set = s->kind == WM_SEGMENT_UNION || s->kind == WM_SEGMENT_INTERSECT || s->kind == WM_SEGMENT_EXCEPT;
    if (set != (s->n_operands > 0) || (set && (s->n_operands < 2 || s->n_operands > WM_SEGMENT_OPERANDS_MAX)))
        abort();
    if (set && (!s->incremental) != (s->refresh == WM_REFRESH_SCHEDULE))
        abort();
    if (s->refresh == WM_REFRESH_SCHEDULE && s->incremental)
        abort();
    if (s->kind == WM_SEGMENT_STATIC && (s->incremental || s->refresh != WM_REFRESH_REALTIME))
        abort();
    if (s->snapshot_of && s->kind != WM_SEGMENT_STATIC)
        abort();
    check_names(s->operands, s->n_operands, s->key);
    check_names(s->input_events, s->n_input_events, NULL);
    check_names(s->input_tags, s->n_input_tags, NULL);
    check_names(s->input_segments, s->n_input_segments, s->key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 16))
        return 0;
    wm_aud_error_t errs[ERRS];
    uint32_t n = 0;
    wm_segment_def_t *s = NULL;
    int rc = wm_segment_compile_text((const char *)data, size, &s, errs, ERRS, &n);
    if (rc == 0) {
        if (!s || n != 0)
            abort();
        check_segment(s);
    } else {
        if (s || rc != WM_EINVAL || n == 0)
            abort();
        for (uint32_t k = 0; k < n && k < ERRS; k++)
            if (errs[k].path[0] != '$' || !errs[k].msg[0] || !memchr(errs[k].path, 0, sizeof errs[k].path) ||
                !memchr(errs[k].msg, 0, sizeof errs[k].msg))
                abort();
        wm_buf_t b;
        wm_buf_init(&b, 0);
        wm_aud_errors_json(errs, n < ERRS ? n : ERRS, &b);
        if (b.err || strncmp(b.data, "{\"valid\":false,", 15) != 0)
            abort();
        wm_buf_release(&b);
    }
    wm_segment_free(s);
    return 0;
}
