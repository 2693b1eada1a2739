/*
 * def.c - the parts of tag and segment definitions they have in common:
 * errors with JSON paths, member readers, the key / name / cron rules,
 * conditions compiled with their paths prefixed, inputs, and the error
 * report as JSON (wm_aud_errors_json).
 *
 * Tags and segments are written in the console or in files checked by
 * `waymark tag|segment validate`; the same compiler runs in both, so every
 * message here is meant for the person who wrote the definition: it names
 * the member by its JSON path and says what was expected.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audience/def_internal.h"
#include "waymark/alloc.h"
#include "waymark/error.h"
#include "waymark/limits.h"

/* ------------------------------------------------------------ errors */

/* Length of the valid UTF-8 sequence at p (1..4), or 0. */
static int utf8_len(const unsigned char *p)
{
    unsigned char c = p[0];
    int n = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    for (int k = 1; k < n; k++)
        if ((p[k] & 0xc0) != 0x80)
            return 0;
    if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f) || (c == 0xf0 && p[1] < 0x90) ||
        (c == 0xf4 && p[1] > 0x8f))
        return 0;
    return n;
}

/* Paths and messages quote the input cut to a length ("%.64s"), which can
 * split a character; each broken byte becomes '?', so every error stays
 * valid UTF-8 and its JSON report parses. */
static void utf8_scrub(char *s)
{
    for (unsigned char *p = (unsigned char *)s; *p;) {
        int n = utf8_len(p);
        if (n == 0) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
}

void wm__aud_err(wm__aud_cx_t *cx, const char *path, const char *fmt, ...)
{
    uint32_t k = cx->n_errs++;
    if (!cx->errs || k >= cx->max_errs)
        return;
    wm_aud_error_t *e = &cx->errs[k];
    snprintf(e->path, sizeof e->path, "%s", path && path[0] ? path : "$");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    utf8_scrub(e->path);
    utf8_scrub(e->msg);
}

char *wm__aud_dup(wm__aud_cx_t *cx, const char *s)
{
    if (!s)
        return NULL;
    char *d = wm_arena_strndup(cx->arena, s, strlen(s));
    if (!d)
        cx->oom = true;
    return d;
}

void wm__aud_path_key(char *out, const char *prefix, const char *key)
{
    snprintf(out, WM__AUD_PATH_MAX, "%s.%.64s", prefix, key);
}

void wm__aud_path_idx(char *out, const char *prefix, uint32_t i)
{
    snprintf(out, WM__AUD_PATH_MAX, "%s[%u]", prefix, i);
}

void wm_aud_errors_json(const wm_aud_error_t *errs, uint32_t n, wm_buf_t *out)
{
    wm_buf_puts(out, n ? "{\"valid\":false,\"errors\":[" : "{\"valid\":true,\"errors\":[");
    for (uint32_t k = 0; errs && k < n; k++) {
        wm_buf_puts(out, k ? ",{\"path\":" : "{\"path\":");
        wm_buf_json_str(out, errs[k].path, strnlen(errs[k].path, sizeof errs[k].path));
        wm_buf_puts(out, ",\"message\":");
        wm_buf_json_str(out, errs[k].msg, strnlen(errs[k].msg, sizeof errs[k].msg));
        wm_buf_putc(out, '}');
    }
    wm_buf_puts(out, "]}");
}

/* ------------------------------------------------------------ members */

/* Index of s in the NULL-terminated set, or -1. */
static int set_index(const char *const *set, const char *s)
{
    for (int k = 0; set && set[k]; k++)
        if (strcmp(set[k], s) == 0)
            return k;
    return -1;
}

#define FIELDS_MAX 32

void wm__aud_check_fields(wm__aud_cx_t *cx, const wm_json_t *obj, const char *prefix,
                          const char *const *allowed, const char *const *known, const char *what)
{
    /* one pass, counting the allowed fields: a definition with a million
     * members costs a million lookups in a short list, not a million squared */
    bool seen[FIELDS_MAX] = {false};
    char path[WM__AUD_PATH_MAX];
    for (const wm_json_t *m = obj->u.child; m; m = m->next) {
        wm__aud_path_key(path, prefix, m->key);
        int k = strlen(m->key) == m->key_len ? set_index(allowed, m->key) : -1;
        if (k >= FIELDS_MAX)
            continue; /* longer lists than any definition has: not checked for repeats */
        if (k >= 0 && seen[k])
            wm__aud_err(cx, path, "given more than once");
        else if (k >= 0)
            seen[k] = true;
        else if (set_index(known, m->key) >= 0)
            wm__aud_err(cx, path, "not a field of %s", what);
        else
            wm__aud_err(cx, path, "unknown field");
    }
}

const char *wm__aud_article(const char *word)
{
    return word && word[0] && strchr("aeio", word[0]) ? "an" : "a";
}

const char *wm__aud_str(wm__aud_cx_t *cx, const wm_json_t *obj, const char *key, const char *prefix,
                        bool required, size_t max_bytes, bool allow_empty)
{
    char path[WM__AUD_PATH_MAX];
    wm__aud_path_key(path, prefix, key);
    const wm_json_t *v = wm_json_get(obj, key);
    if (!v) {
        if (required)
            wm__aud_err(cx, path, "missing required field");
        return NULL;
    }
    if (v->type != WM_JSON_STRING) {
        wm__aud_err(cx, path, "must be a string, not %s", wm_json_type_name(v->type));
        return NULL;
    }
    if (v->len == 0 && !allow_empty) {
        wm__aud_err(cx, path, "must not be empty");
        return NULL;
    }
    if (strlen(v->u.str) != v->len) {
        wm__aud_err(cx, path, "must not contain NUL characters");
        return NULL;
    }
    if (v->len > max_bytes) {
        wm__aud_err(cx, path, "too long: %u bytes (at most %zu)", v->len, max_bytes);
        return NULL;
    }
    return v->u.str;
}

/* ------------------------------------------------------------ names */

static bool word_ok(const char *s, size_t max_len, bool dollar)
{
    size_t n = 0;
    for (const char *p = s; *p; p++, n++) {
        unsigned char ch = (unsigned char)*p;
        bool ok = isalpha(ch) || ch == '_' || (dollar && ch == '$') || (n > 0 && isdigit(ch));
        if (!ok || ch >= 0x80)
            return false;
    }
    return n >= 1 && n <= max_len;
}

bool wm__aud_key_ok(const char *s) { return s && word_ok(s, WM_AUD_KEY_MAX, false); }

bool wm__aud_name_ok(const char *s) { return s && word_ok(s, WM_NAME_LEN_MAX, true); }

const char *wm__aud_key(wm__aud_cx_t *cx, const wm_json_t *obj, const char *key, const char *prefix,
                        bool required)
{
    const char *s = wm__aud_str(cx, obj, key, prefix, required, 1024, false);
    if (s && !wm__aud_key_ok(s)) {
        char path[WM__AUD_PATH_MAX];
        wm__aud_path_key(path, prefix, key);
        wm__aud_err(cx, path, "bad key '%.64s': letters, digits and _, not starting with a digit, "
                              "at most %d characters", s, WM_AUD_KEY_MAX);
        return NULL;
    }
    return s;
}

/* ------------------------------------------------------------ cron */

/* Reads a run of digits as a number in [lo, hi]; advances *p. */
static bool cron_num(const char **p, const char *end, int lo, int hi, int *out)
{
    const char *s = *p;
    long v = 0;
    while (s < end && isdigit((unsigned char)*s) && s - *p < 3)
        v = v * 10 + (*s++ - '0');
    if (s == *p || (s < end && isdigit((unsigned char)*s)) || v < lo || v > hi)
        return false;
    *p = s;
    *out = (int)v;
    return true;
}

/* One list item: "*", "n" or "n-m", then optionally "/step". */
static bool cron_item(const char *s, const char *end, int lo, int hi)
{
    int a = lo, b = hi, step;
    if (s < end && *s == '*') {
        s++;
    } else {
        if (!cron_num(&s, end, lo, hi, &a))
            return false;
        b = a;
        if (s < end && *s == '-') {
            s++;
            if (!cron_num(&s, end, lo, hi, &b) || b < a)
                return false;
        }
    }
    if (s < end && *s == '/') {
        s++;
        if (!cron_num(&s, end, 1, hi, &step))
            return false;
    }
    return s == end;
}

static bool cron_field(const char *s, const char *end, int lo, int hi)
{
    while (s <= end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *stop = comma ? comma : end;
        if (stop == s || !cron_item(s, stop, lo, hi))
            return false;
        if (!comma)
            return true;
        s = comma + 1;
    }
    return false;
}

bool wm__aud_cron_ok(const char *s)
{
    static const int lo[5] = {0, 0, 1, 1, 0}, hi[5] = {59, 23, 31, 12, 7};
    int k = 0;
    if (!s)
        return false;
    while (*s) {
        if (*s == ' ') {
            s++;
            continue;
        }
        const char *end = strchr(s, ' ');
        if (!end)
            end = s + strlen(s);
        if (k >= 5 || !cron_field(s, end, lo[k], hi[k]))
            return false;
        k++;
        s = end;
    }
    return k == 5;
}

/* ------------------------------------------------------------ conditions */

wm_cond_t *wm__aud_cond(wm__aud_cx_t *cx, const wm_json_t *v, const char *path)
{
    wm_cond_t *c = NULL;
    wm_cond_error_t ce;
    memset(&ce, 0, sizeof ce);
    int rc = wm_cond_compile(v, &c, &ce);
    if (rc == WM_ENOMEM) {
        cx->oom = true;
        return NULL;
    }
    if (rc != 0) {
        /* the condition's own path starts with "$": graft the rest on ours */
        const char *rest = ce.path[0] == '$' ? ce.path + 1 : "";
        char full[WM__AUD_PATH_MAX];
        size_t n = strnlen(path, sizeof full - 1);
        memcpy(full, path, n);
        snprintf(full + n, sizeof full - n, "%s", rest);
        wm__aud_err(cx, full, "%s", ce.msg[0] ? ce.msg : wm_strerror(rc));
        return NULL;
    }
    return c;
}

bool wm__aud_names_has(const char *const *v, uint32_t n, const char *name)
{
    for (uint32_t k = 0; k < n; k++)
        if (strcmp(v[k], name) == 0)
            return true;
    return false;
}

void wm__aud_names_add(wm__aud_cx_t *cx, wm__aud_names_t *l, const char *name)
{
    if (!name || wm__aud_names_has((const char *const *)l->v, l->n, name))
        return;
    if (l->n == l->cap) {
        /* grows inside the arena; the old array is left there */
        uint32_t cap = l->cap ? l->cap * 2 : 4;
        char **v = wm_arena_alloc(cx->arena, cap * sizeof *v);
        if (!v) {
            cx->oom = true;
            return;
        }
        if (l->n)
            memcpy(v, l->v, l->n * sizeof *v);
        l->v = v;
        l->cap = cap;
    }
    char *copy = wm__aud_dup(cx, name);
    if (copy)
        l->v[l->n++] = copy;
}

bool wm__aud_deps(wm__aud_cx_t *cx, const wm_cond_t *c, wm_cond_deps_t *d)
{
    if (wm_cond_deps(c, cx->arena, d) != 0) {
        memset(d, 0, sizeof *d);
        cx->oom = true;
        return false;
    }
    return true;
}

void wm__aud_inputs_add(wm__aud_cx_t *cx, wm__aud_inputs_t *in, const wm_cond_deps_t *d)
{
    in->profile |= d->profile;
    in->clock |= d->clock;
    in->event |= d->event;
    in->items |= d->items;
    for (uint32_t k = 0; k < d->n_events; k++)
        wm__aud_names_add(cx, &in->events, d->events[k]);
    for (uint32_t k = 0; k < d->n_tags; k++)
        wm__aud_names_add(cx, &in->tags, d->tags[k]);
    for (uint32_t k = 0; k < d->n_segments; k++)
        wm__aud_names_add(cx, &in->segments, d->segments[k]);
}

/* ------------------------------------------------------------ text */

int wm__aud_parse(wm_arena_t *a, const char *text, size_t len, wm_json_t **out, wm_aud_error_t *errs,
                  uint32_t max_errs, uint32_t *n_errs)
{
    wm_json_error_t je;
    memset(&je, 0, sizeof je);
    *out = NULL;
    if (n_errs)
        *n_errs = 0;
    int rc = text ? wm_json_parse(a, text, len, out, &je) : WM_EINVAL;
    if (rc == 0 || rc == WM_ENOMEM)
        return rc;
    if (n_errs)
        *n_errs = 1;
    if (errs && max_errs) {
        memset(&errs[0], 0, sizeof errs[0]);
        snprintf(errs[0].path, sizeof errs[0].path, "$");
        if (!text)
            snprintf(errs[0].msg, sizeof errs[0].msg, "no text");
        else if (rc == WM_ELIMIT)
            snprintf(errs[0].msg, sizeof errs[0].msg, "JSON nested deeper than %d levels (at byte %zu)",
                     WM_JSON_DEPTH_MAX, je.offset);
        else /* the parser's message names the byte offset */
            snprintf(errs[0].msg, sizeof errs[0].msg, "invalid JSON: %s", je.msg[0] ? je.msg : "syntax error");
    }
    return WM_EINVAL;
}

void wm__aud_num_text(double v, char *buf)
{
    if (v == 0) { /* also -0 */
        snprintf(buf, 32, "0");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, 32, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}
