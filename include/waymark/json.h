/*
 * json.h - Waymark's JSON reader and writer.
 *
 * The reader builds a read-only tree in an arena (one parse = one arena
 * lifetime). Strings are unescaped, validated as UTF-8 and NUL-terminated;
 * numbers keep both a double and, when the literal is an integer that fits,
 * an exact int64. Object members keep their order; duplicate keys are kept
 * (wm_json_get returns the last one, as browsers do).
 *
 * Ownership: every pointer in the tree lives in the arena passed to
 * wm_json_parse and stays valid until that arena is reset or released.
 */
#ifndef WAYMARK_JSON_H
#define WAYMARK_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "waymark/arena.h"
#include "waymark/buf.h"

typedef enum wm_json_type {
    WM_JSON_NULL = 0,
    WM_JSON_FALSE,
    WM_JSON_TRUE,
    WM_JSON_NUMBER,
    WM_JSON_STRING,
    WM_JSON_ARRAY,
    WM_JSON_OBJECT,
} wm_json_type_t;

typedef struct wm_json wm_json_t;
struct wm_json {
    wm_json_type_t type;
    bool is_int;            /* NUMBER: the literal was an integer fitting int64 */
    uint32_t len;           /* STRING: byte length; ARRAY/OBJECT: child count;
                             * NUMBER with lit: the literal's length */
    const char *key;        /* member name when the parent is an OBJECT, else NULL */
    uint32_t key_len;
    wm_json_t *next;        /* next sibling (array element or object member) */
    union {
        double num;         /* NUMBER */
        const char *str;    /* STRING: NUL-terminated, may contain "\u0000" as 0 bytes */
        wm_json_t *child;   /* ARRAY/OBJECT: first child */
    } u;
    union {
        int64_t i64;        /* NUMBER with is_int */
        const char *lit;    /* NUMBER without is_int, when parsed: the literal (len
                             * bytes, in the parse's copy of the text in the arena),
                             * so the writer can copy it instead of re-formatting
                             * the double. NULL for built nodes. */
    };
};

typedef struct wm_json_error {
    size_t offset;          /* byte offset of the fault in the input */
    char msg[96];
} wm_json_error_t;

/*
 * Parses exactly one JSON value from text[0..len) (surrounding whitespace
 * allowed). Returns 0 and *out, or WM_EPARSE (err filled), WM_ELIMIT (nesting
 * deeper than WM_JSON_DEPTH_MAX) or WM_ENOMEM. Never reads past len and never
 * writes to text: the parse works on a copy in the arena (len + 1 bytes),
 * which the tree's strings point into, so text may be freed afterwards.
 */
int wm_json_parse(wm_arena_t *a, const char *text, size_t len, wm_json_t **out,
                  wm_json_error_t *err);

/* Member lookup on an OBJECT (last duplicate wins); NULL if absent or not an object. */
const wm_json_t *wm_json_get(const wm_json_t *obj, const char *key);
/* String value or NULL when v is NULL or not a string. */
const char *wm_json_str(const wm_json_t *v);
const char *wm_json_type_name(wm_json_type_t t);

/* Appends compact JSON for v (numbers: integers exactly, doubles with the
 * shortest of %.15g..%.17g that round-trips; non-finite doubles as null). */
void wm_json_write(wm_buf_t *b, const wm_json_t *v);

/* Tree construction helpers (arena-owned; used by decoders that map formats). */
wm_json_t *wm_json_new(wm_arena_t *a, wm_json_type_t t);
wm_json_t *wm_json_new_str(wm_arena_t *a, const char *s, size_t n);
wm_json_t *wm_json_new_int(wm_arena_t *a, int64_t v);
wm_json_t *wm_json_new_num(wm_arena_t *a, double v);
/* Appends child to an ARRAY or OBJECT (key required for OBJECT, copied). */
int wm_json_append(wm_arena_t *a, wm_json_t *parent, const char *key, wm_json_t *child);

/*
 * Finds the top-level member `key` of the object in text[0..len) without
 * building a tree (profile scans read one property of a million profiles):
 * *val / *val_len are the member's raw value text, to parse with
 * wm_json_parse. A key written with escapes is not matched. Returns 0,
 * WM_ENOTFOUND, or WM_EPARSE when the text is not an object. The value's
 * own syntax is checked only by its parse.
 */
int wm_json_find_member(const char *text, size_t len, const char *key, const char **val, size_t *val_len);

#endif
