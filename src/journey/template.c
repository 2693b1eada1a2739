/*
 * template.c - message templates: "{{profile.name | default: \"客户\"}}".
 *
 * Templates are the text of every message a journey sends (SMS, push,
 * WeCom, in-app inbox, advisor talk tracks, webhook bodies). They are
 * compiled once, when a journey or the template catalogue is saved, into a
 * list of pieces (literal text / placeholder), so rendering one message is
 * a walk over that list with one lookup per placeholder and no parsing.
 *
 * The syntax is deliberately tiny, because operators write it by hand in a
 * console and a typo must be caught at save time with the byte offset:
 *   {{scope.name}}                         scope: profile event item journey user
 *   {{scope.name | default: "text"}}       fallback when the value is missing
 *   {{scope.name | "text"}}                short form of the same
 * "{{" always starts a placeholder; there is no escape for literal braces
 * (financial message copy never needs them, and an escape would be one more
 * thing to get wrong). A missing value without a fallback fails the render
 * with the variable named, so a message never goes out as "尊敬的{{}}".
 *
 * Values render as people expect to read them: integers without ".0",
 * lists joined with the Chinese enumeration comma "、", objects as compact
 * JSON. With json_escape, substituted values (not the literal text) are
 * escaped for embedding inside a JSON string, which is how webhook bodies
 * are written.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "waymark/alloc.h"
#include "waymark/error.h"
#include "waymark/journey.h"
#include "waymark/limits.h"

typedef struct seg {
    uint32_t off, len;      /* literal: bytes of text; placeholder: source span */
    int32_t var;            /* -1 = literal, else index into vars */
    char *fallback;         /* placeholder default text, or NULL */
} seg_t;

struct wm_template {
    char *text;             /* owned copy; literal pieces point into it */
    seg_t *segs;
    uint32_t n_segs;
    char **vars;            /* unique "scope.name", in order of first use */
    char **names;           /* the part after "scope." for each var (same index) */
    char **scopes;          /* the scope for each var */
    uint32_t n_vars;
};

static const char *const SCOPES[] = {"profile", "event", "item", "journey", "user", "tag", "recommend"};

static void set_err(char *err, size_t err_len, size_t off, const char *msg)
{
    if (err && err_len)
        snprintf(err, err_len, "offset %zu: %s", off, msg);
}

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '$' || c == '.';
}

static size_t skip_ws(const char *s, size_t i)
{
    while (s[i] == ' ' || s[i] == '\t')
        i++;
    return i;
}

static bool known_scope(const char *s, size_t n)
{
    for (size_t k = 0; k < sizeof SCOPES / sizeof SCOPES[0]; k++)
        if (strlen(SCOPES[k]) == n && memcmp(SCOPES[k], s, n) == 0)
            return true;
    return false;
}

/* Parses a double-quoted literal at s[i] ('"' expected) into a new string;
 * \" and \\ are the only escapes. Returns the index after the closing quote,
 * or 0 on error (0 can never be a valid end). */
static size_t parse_quoted(const char *s, size_t i, char **out)
{
    size_t j = i + 1, n = 0;
    char *d = wm_malloc(strlen(s + i) + 1);
    if (!d)
        return 0;
    while (s[j] && s[j] != '"') {
        if (s[j] == '\\' && (s[j + 1] == '"' || s[j + 1] == '\\'))
            j++;
        d[n++] = s[j++];
    }
    if (s[j] != '"') {
        wm_free(d);
        return 0;
    }
    d[n] = '\0';
    *out = d;
    return j + 1;
}

/* Index of var "scope.name" in t, adding it when new; -1 on out of memory. */
static int32_t intern_var(wm_template_t *t, const char *s, size_t n, size_t dot)
{
    for (uint32_t k = 0; k < t->n_vars; k++)
        if (strlen(t->vars[k]) == n && memcmp(t->vars[k], s, n) == 0)
            return (int32_t)k;
    char **v = wm_realloc(t->vars, (t->n_vars + 1) * sizeof *v);
    if (!v)
        return -1;
    t->vars = v;
    char **nm = wm_realloc(t->names, (t->n_vars + 1) * sizeof *nm);
    if (!nm)
        return -1;
    t->names = nm;
    char **sc = wm_realloc(t->scopes, (t->n_vars + 1) * sizeof *sc);
    if (!sc)
        return -1;
    t->scopes = sc;
    char *full = wm_strndup(s, n), *name = wm_strndup(s + dot + 1, n - dot - 1),
         *scope = wm_strndup(s, dot);
    if (!full || !name || !scope) {
        wm_free(full);
        wm_free(name);
        wm_free(scope);
        return -1;
    }
    t->vars[t->n_vars] = full;
    t->names[t->n_vars] = name;
    t->scopes[t->n_vars] = scope;
    return (int32_t)t->n_vars++;
}

static int push_seg(wm_template_t *t, seg_t s)
{
    if (t->n_segs >= WM_TEMPLATE_SEGMENTS_MAX)
        return WM_ELIMIT;
    seg_t *n = wm_realloc(t->segs, (t->n_segs + 1) * sizeof *n);
    if (!n)
        return WM_ENOMEM;
    t->segs = n;
    t->segs[t->n_segs++] = s;
    return 0;
}

/* Parses the optional "| default: \"x\"" / "| \"x\"" tail at s[i]. Returns the
 * index after it (or i when there is none), 0 on a syntax error with *why
 * and *at (the offset of the fault). */
static size_t parse_fallback(const char *s, size_t i, char **fallback, const char **why, size_t *at)
{
    i = skip_ws(s, i);
    if (s[i] != '|')
        return i;
    i = skip_ws(s, i + 1);
    if (strncmp(s + i, "default", 7) == 0) {
        i = skip_ws(s, i + 7);
        if (s[i] != ':') {
            *why = "expected ':' after 'default'";
            *at = i;
            return 0;
        }
        i = skip_ws(s, i + 1);
    }
    *at = i;
    if (s[i] != '"') {
        *why = "expected a quoted fallback text after '|'";
        return 0;
    }
    size_t end = parse_quoted(s, i, fallback);
    if (!end)
        *why = "unterminated fallback text";
    return end ? skip_ws(s, end) : 0;
}

/* Parses one placeholder starting at s[open] ("{{"). Returns the index after
 * "}}" or 0 with *why set (and *at the offset of the fault). */
static size_t parse_placeholder(wm_template_t *t, size_t open, const char **why, size_t *at)
{
    const char *s = t->text;
    size_t i = skip_ws(s, open + 2), start = i;
    while (is_name_char(s[i]))
        i++;
    size_t n = i - start;
    const char *dot = memchr(s + start, '.', n);
    *at = start;
    if (n == 0) {
        *why = "expected a variable such as profile.name";
        return 0;
    }
    if (!dot || (size_t)(dot - (s + start)) + 1 >= n) {
        *why = "a variable is scope.name (profile, event, item, journey, user)";
        return 0;
    }
    size_t dot_at = (size_t)(dot - (s + start));
    if (!known_scope(s + start, dot_at)) {
        *why = "unknown scope (profile, event, item, journey, user)";
        return 0;
    }
    seg_t seg = {.off = (uint32_t)open, .var = -1, .fallback = NULL};
    size_t end = parse_fallback(s, i, &seg.fallback, why, at);
    if (!end)
        return 0;
    *at = end;
    if (s[end] != '}' || s[end + 1] != '}') {
        wm_free(seg.fallback);
        *why = s[end] ? "expected '}}'" : "unterminated placeholder: '{{' without '}}'";
        if (!s[end])
            *at = open; /* point at the "{{" the operator has to close */
        return 0;
    }
    seg.var = intern_var(t, s + start, n, dot_at);
    seg.len = (uint32_t)(end + 2 - open);
    if (seg.var < 0 || push_seg(t, seg) != 0) {
        wm_free(seg.fallback);
        *why = "out of memory or too many placeholders";
        return 0;
    }
    return end + 2;
}

int wm_template_compile(const char *text, wm_template_t **out, char *err, size_t err_len)
{
    *out = NULL;
    size_t len = strlen(text);
    if (len > WM_TEMPLATE_BYTES_MAX) {
        set_err(err, err_len, WM_TEMPLATE_BYTES_MAX, "template longer than the limit");
        return WM_ELIMIT;
    }
    wm_template_t *t = wm_calloc(1, sizeof *t);
    if (!t || !(t->text = wm_strndup(text, len))) {
        wm_free(t);
        return WM_ENOMEM;
    }
    size_t i = 0;
    while (i < len) {
        const char *open = strstr(t->text + i, "{{");
        size_t o = open ? (size_t)(open - t->text) : len;
        if (o > i && push_seg(t, (seg_t){.off = (uint32_t)i, .len = (uint32_t)(o - i), .var = -1}) != 0) {
            set_err(err, err_len, i, "too many pieces");
            wm_template_free(t);
            return WM_ELIMIT;
        }
        if (!open)
            break;
        const char *why = NULL;
        size_t at = o;
        i = parse_placeholder(t, o, &why, &at);
        if (!i) {
            set_err(err, err_len, at, why);
            wm_template_free(t);
            return WM_EINVAL;
        }
    }
    *out = t;
    return 0;
}

void wm_template_free(wm_template_t *t)
{
    if (!t)
        return;
    for (uint32_t k = 0; k < t->n_segs; k++)
        wm_free(t->segs[k].fallback);
    for (uint32_t k = 0; k < t->n_vars; k++) {
        wm_free(t->vars[k]);
        wm_free(t->names[k]);
        wm_free(t->scopes[k]);
    }
    wm_free(t->vars);
    wm_free(t->names);
    wm_free(t->scopes);
    wm_free(t->segs);
    wm_free(t->text);
    wm_free(t);
}

void wm_template_vars(const wm_template_t *t, const char *const **vars, uint32_t *n)
{
    *vars = (const char *const *)t->vars;
    *n = t->n_vars;
}

/* ---- rendering ---- */

static void put_text(wm_buf_t *out, const char *s, size_t n, bool json_escape)
{
    if (!json_escape) {
        wm_buf_append(out, s, n);
        return;
    }
    /* wm_buf_json_str writes the quotes too; strip them by writing into a
     * scratch position and moving: cheaper to emit the quoted form and
     * drop the first and last byte. */
    size_t at = out->len;
    wm_buf_json_str(out, s, n);
    if (out->err || out->len < at + 2)
        return;
    memmove(out->data + at, out->data + at + 1, out->len - at - 2);
    out->len -= 2;
    out->data[out->len] = '\0';
}

static void put_number(wm_buf_t *out, const wm_json_t *v)
{
    if (v->is_int) {
        wm_buf_put_i64(out, v->i64);
        return;
    }
    double d = v->u.num;
    if (!isfinite(d)) {
        wm_buf_puts(out, "null");
        return;
    }
    /* integral doubles (3.0, 1e3) read as integers in a message */
    if (d == trunc(d) && fabs(d) < 9.0e15) {
        wm_buf_put_i64(out, (int64_t)d);
        return;
    }
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%.15g", d);
    if (strtod(tmp, NULL) != d)
        snprintf(tmp, sizeof tmp, "%.17g", d);
    wm_buf_puts(out, tmp);
}

/* Objects and nested lists read best as compact JSON. */
static void put_json(wm_buf_t *out, const wm_json_t *v, bool json_escape)
{
    wm_buf_t tmp;
    wm_buf_init(&tmp, 0);
    wm_json_write(&tmp, v);
    if (tmp.err)
        out->err = tmp.err;
    else
        put_text(out, tmp.data, tmp.len, json_escape);
    wm_buf_release(&tmp);
}

static void put_value(wm_buf_t *out, const wm_json_t *v, bool json_escape, bool top)
{
    switch (v->type) {
    case WM_JSON_STRING:
        put_text(out, v->u.str, v->len, json_escape);
        break;
    case WM_JSON_NUMBER:
        put_number(out, v);
        break;
    case WM_JSON_TRUE:
    case WM_JSON_FALSE:
        wm_buf_puts(out, v->type == WM_JSON_TRUE ? "true" : "false");
        break;
    case WM_JSON_NULL:
        break;
    case WM_JSON_ARRAY:
        if (!top) {
            put_json(out, v, json_escape);
            break;
        }
        for (const wm_json_t *e = v->u.child; e; e = e->next) {
            if (e != v->u.child)
                wm_buf_puts(out, "、");
            put_value(out, e, json_escape, false);
        }
        break;
    case WM_JSON_OBJECT:
        put_json(out, v, json_escape);
        break;
    }
}

int wm_template_render(const wm_template_t *t, wm_template_lookup_fn lookup, void *ctx, bool json_escape,
                       wm_buf_t *out, char *missing, size_t missing_len)
{
    if (missing && missing_len)
        missing[0] = '\0';
    for (uint32_t k = 0; k < t->n_segs; k++) {
        const seg_t *s = &t->segs[k];
        if (s->var < 0) {
            wm_buf_append(out, t->text + s->off, s->len);
            continue;
        }
        const wm_json_t *v = lookup ? lookup(ctx, t->scopes[s->var], t->names[s->var]) : NULL;
        /* null and "" count as missing: "尊敬的，" is worse than the fallback */
        if (v && v->type != WM_JSON_NULL && !(v->type == WM_JSON_STRING && v->len == 0)) {
            put_value(out, v, json_escape, true);
            continue;
        }
        if (s->fallback) {
            put_text(out, s->fallback, strlen(s->fallback), json_escape);
            continue;
        }
        if (missing && missing_len)
            snprintf(missing, missing_len, "%s", t->vars[s->var]);
        return WM_ENOTFOUND;
    }
    return out->err ? out->err : 0;
}
