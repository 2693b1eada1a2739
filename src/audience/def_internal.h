/*
 * def_internal.h - what the tag and segment compilers (tag_def.c,
 * segment_def.c) share: error collection with JSON paths, member readers,
 * the key / name / cron rules, condition compilation with path prefixes,
 * and the collection of a definition's inputs.
 *
 * Every reader reports its own problem and returns NULL / false, so a
 * compiler reads every member once and carries on: one call reports every
 * error of a definition.
 */
#ifndef WAYMARK_AUDIENCE_DEF_INTERNAL_H
#define WAYMARK_AUDIENCE_DEF_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "waymark/audience.h"

#define WM__AUD_PATH_MAX sizeof(((wm_aud_error_t *)0)->path)

typedef struct wm__aud_cx {
    wm_aud_error_t *errs;
    uint32_t max_errs;
    uint32_t n_errs;            /* every error found, possibly more than max_errs */
    bool oom;
    wm_arena_t *arena;          /* the definition's arena: every copy lives there */
} wm__aud_cx_t;

/* Records one error at path (counted even when errs is full). */
void wm__aud_err(wm__aud_cx_t *cx, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A copy in the definition's arena (NULL for NULL; sets oom on failure). */
char *wm__aud_dup(wm__aud_cx_t *cx, const char *s);

/* out = prefix + ".key" / prefix + "[i]" (truncated to the path size). */
void wm__aud_path_key(char *out, const char *prefix, const char *key);
void wm__aud_path_idx(char *out, const char *prefix, uint32_t i);

/* Checks the members of obj: a member in allowed (NULL-terminated) is fine;
 * one in known (fields of other kinds, may be NULL) is "not a field of
 * <what>"; anything else is an unknown field; a member given twice is an
 * error too (the reader would silently take the last one). */
void wm__aud_check_fields(wm__aud_cx_t *cx, const wm_json_t *obj, const char *prefix,
                          const char *const *allowed, const char *const *known, const char *what);

/* "a" or "an" before word ("an imported tag", "a union segment"). */
const char *wm__aud_article(const char *word);

/* A string member of at most max_bytes bytes without NUL characters; NULL
 * when absent (an error if required) or bad. allow_empty lets "" through. */
const char *wm__aud_str(wm__aud_cx_t *cx, const wm_json_t *obj, const char *key, const char *prefix,
                        bool required, size_t max_bytes, bool allow_empty);

/* Keys of tags and segments: [A-Za-z_][A-Za-z0-9_]{0,63}. */
bool wm__aud_key_ok(const char *s);
/* A key member (required or not); NULL when absent or bad. */
const char *wm__aud_key(wm__aud_cx_t *cx, const wm_json_t *obj, const char *key, const char *prefix,
                        bool required);
/* Event and property names, the Sensors SDK rule: [A-Za-z_$][A-Za-z0-9_$]{0,99}. */
bool wm__aud_name_ok(const char *s);

/* "m h dom mon dow": five fields of "*", n, n-m, each optionally "/step",
 * comma lists of those; minutes 0-59, hours 0-23, days 1-31, months 1-12,
 * weekdays 0-7 (0 and 7 are Sunday). */
bool wm__aud_cron_ok(const char *s);

/* Compiles condition v found at path; on a fault records it at path + the
 * condition's own path ("$.layers[0].if" + "$.op" -> "$.layers[0].if.op")
 * and returns NULL. */
wm_cond_t *wm__aud_cond(wm__aud_cx_t *cx, const wm_json_t *v, const char *path);

/* A definition's inputs, gathered over its conditions; names are copies in
 * the definition's arena, each once, in the order first seen. */
typedef struct wm__aud_names {
    char **v;
    uint32_t n, cap;
} wm__aud_names_t;

typedef struct wm__aud_inputs {
    bool profile, clock, event, items;
    wm__aud_names_t events, tags, segments;
} wm__aud_inputs_t;

/* What c reads (deps arrays in the definition's arena); false on OOM. */
bool wm__aud_deps(wm__aud_cx_t *cx, const wm_cond_t *c, wm_cond_deps_t *d);
/* Adds d to in. */
void wm__aud_inputs_add(wm__aud_cx_t *cx, wm__aud_inputs_t *in, const wm_cond_deps_t *d);
/* Adds a name to a list unless it is there already. */
void wm__aud_names_add(wm__aud_cx_t *cx, wm__aud_names_t *l, const char *name);
bool wm__aud_names_has(const char *const *v, uint32_t n, const char *name);

/* Parses text for the *_compile_text functions into a. Returns 0 with
 * *out, WM_EINVAL with one error at "$" (n_errs = 1), or WM_ENOMEM. */
int wm__aud_parse(wm_arena_t *a, const char *text, size_t len, wm_json_t **out, wm_aud_error_t *errs,
                  uint32_t max_errs, uint32_t *n_errs);

/* The shortest text of a number that reads back to the same double
 * ("100000", "0.5", "1e+21"); buf holds 32 bytes. */
void wm__aud_num_text(double v, char *buf);

#endif
