/*
 * json.c - a strict RFC 8259 reader into an arena tree, and a compact writer.
 *
 * Why hand-written: ingest parses every record once, and the tree must live
 * in the request arena with unescaped, NUL-terminated strings that the
 * validator can use without copying. The bake-off in docs/decisions.md
 * compares it against the Debian-packaged parsers on a Sensors NDJSON corpus.
 *
 * Strictness: no comments, no trailing commas, no leading zeros, no control
 * characters in strings, valid UTF-8 only, surrogate pairs checked.
 */
#include "waymark/json.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "waymark/error.h"
#include "waymark/limits.h"

typedef struct parser {
    wm_arena_t *a;
    const char *p;
    const char *end;
    const char *start;
    wm_json_error_t *err;
    int depth;
} parser_t;

static int fail(parser_t *ps, const char *at, const char *msg)
{
    if (ps->err) {
        ps->err->offset = (size_t)(at - ps->start);
        snprintf(ps->err->msg, sizeof ps->err->msg, "%s at byte %zu", msg,
                 (size_t)(at - ps->start));
    }
    return WM_EPARSE;
}

static inline void skip_ws(parser_t *ps)
{
    const char *p = ps->p;
    while (p < ps->end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    ps->p = p;
}

static int parse_value(parser_t *ps, wm_json_t **out);

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static char *put_utf8(char *d, unsigned cp)
{
    if (cp < 0x80) {
        *d++ = (char)cp;
    } else if (cp < 0x800) {
        *d++ = (char)(0xC0 | (cp >> 6));
        *d++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *d++ = (char)(0xE0 | (cp >> 12));
        *d++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *d++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *d++ = (char)(0xF0 | (cp >> 18));
        *d++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *d++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *d++ = (char)(0x80 | (cp & 0x3F));
    }
    return d;
}

/* Validates one UTF-8 sequence starting at p (first byte >= 0x80). Returns its
 * length or 0 if invalid (overlongs, surrogates and > U+10FFFF rejected). */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n;
    unsigned min;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2; min = 0x80; cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3; min = 0x800; cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4; min = 0x10000; cp = c & 0x07;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/* Parses a string at ps->p (which points at the opening quote). */
static int parse_string(parser_t *ps, const char **out, uint32_t *len_out)
{
    const unsigned char *p = (const unsigned char *)ps->p + 1;
    const unsigned char *end = (const unsigned char *)ps->end;
    /* fast scan: find the closing quote; note whether escapes or non-ASCII occur */
    const unsigned char *q = p;
    int has_escape = 0;
    while (q < end && *q != '"') {
        if (*q == '\\') {
            has_escape = 1;
            q += 2;
            continue;
        }
        if (*q < 0x20)
            return fail(ps, (const char *)q, "control character in string");
        if (*q >= 0x80) {
            size_t n = utf8_seq(q, end);
            if (!n)
                return fail(ps, (const char *)q, "invalid UTF-8 in string");
            q += n;
            continue;
        }
        q++;
    }
    if (q >= end)
        return fail(ps, ps->p, "unterminated string");
    size_t raw = (size_t)(q - p);
    if (raw > UINT32_MAX - 1)
        return fail(ps, ps->p, "string too long");
    char *dst = wm_arena_alloc(ps->a, raw + 1);
    if (!dst)
        return WM_ENOMEM;
    if (!has_escape) {
        memcpy(dst, p, raw);
        dst[raw] = '\0';
        *out = dst;
        *len_out = (uint32_t)raw;
        ps->p = (const char *)q + 1;
        return 0;
    }
    char *d = dst;
    const unsigned char *s = p;
    while (s < q) {
        if (*s != '\\') {
            *d++ = (char)*s++;
            continue;
        }
        s++;
        if (s >= q)
            return fail(ps, (const char *)s, "bad escape");
        unsigned char e = *s++;
        switch (e) {
        case '"': *d++ = '"'; break;
        case '\\': *d++ = '\\'; break;
        case '/': *d++ = '/'; break;
        case 'b': *d++ = '\b'; break;
        case 'f': *d++ = '\f'; break;
        case 'n': *d++ = '\n'; break;
        case 'r': *d++ = '\r'; break;
        case 't': *d++ = '\t'; break;
        case 'u': {
            unsigned cp;
            if (q - s < 4 || hex4((const char *)s, &cp))
                return fail(ps, (const char *)s, "bad \\u escape");
            s += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (q - s < 6 || s[0] != '\\' || s[1] != 'u' || hex4((const char *)s + 2, &lo) ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    return fail(ps, (const char *)s, "unpaired surrogate");
                s += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return fail(ps, (const char *)s, "unpaired surrogate");
            }
            d = put_utf8(d, cp);
            break;
        }
        default:
            return fail(ps, (const char *)s - 1, "bad escape");
        }
    }
    *d = '\0';
    *out = dst;
    *len_out = (uint32_t)(d - dst);
    ps->p = (const char *)q + 1;
    return 0;
}

static int parse_number(parser_t *ps, wm_json_t *v)
{
    const char *p = ps->p, *start = p, *end = ps->end;
    int neg = 0;
    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }
    if (p >= end || *p < '0' || *p > '9')
        return fail(ps, start, "bad number");
    uint64_t mant = 0;
    int digits = 0;
    if (*p == '0') {
        p++;
        if (p < end && *p >= '0' && *p <= '9')
            return fail(ps, start, "leading zero in number");
    } else {
        while (p < end && *p >= '0' && *p <= '9') {
            if (digits < 19)
                mant = mant * 10 + (uint64_t)(*p - '0');
            digits++;
            p++;
        }
    }
    int is_int = 1;
    if (p < end && *p == '.') {
        is_int = 0;
        p++;
        if (p >= end || *p < '0' || *p > '9')
            return fail(ps, start, "bad number fraction");
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        is_int = 0;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || *p < '0' || *p > '9')
            return fail(ps, start, "bad number exponent");
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    v->type = WM_JSON_NUMBER;
    if (is_int && digits <= 18) {
        v->is_int = true;
        v->i64 = neg ? -(int64_t)mant : (int64_t)mant;
        v->u.num = (double)v->i64;
    } else {
        char tmp[64];
        size_t n = (size_t)(p - start);
        char *heap = NULL;
        char *s = tmp;
        if (n >= sizeof tmp) {
            heap = wm_arena_alloc(ps->a, n + 1);
            if (!heap)
                return WM_ENOMEM;
            s = heap;
        }
        memcpy(s, start, n);
        s[n] = '\0';
        v->u.num = strtod(s, NULL);
        if (is_int) {
            /* 19+ digit integer: exact when it fits int64 */
            char *e;
            long long ll = strtoll(s, &e, 10);
            if (*e == '\0' && (double)ll == v->u.num && ll != LLONG_MAX && ll != LLONG_MIN) {
                v->is_int = true;
                v->i64 = ll;
            }
        }
        if (!isfinite(v->u.num))
            return fail(ps, start, "number out of range");
    }
    ps->p = p;
    return 0;
}

static int expect_lit(parser_t *ps, const char *lit, size_t n)
{
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, lit, n) != 0)
        return fail(ps, ps->p, "unexpected token");
    ps->p += n;
    return 0;
}

static int parse_container(parser_t *ps, wm_json_t *v, int is_obj)
{
    if (++ps->depth > WM_JSON_DEPTH_MAX)
        return fail(ps, ps->p, "nesting too deep"), WM_ELIMIT;
    char close = is_obj ? '}' : ']';
    v->type = is_obj ? WM_JSON_OBJECT : WM_JSON_ARRAY;
    ps->p++;
    skip_ws(ps);
    wm_json_t **tail = &v->u.child;
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        ps->depth--;
        return 0;
    }
    for (;;) {
        const char *key = NULL;
        uint32_t key_len = 0;
        int rc;
        if (is_obj) {
            if (ps->p >= ps->end || *ps->p != '"')
                return fail(ps, ps->p, "expected object key");
            if ((rc = parse_string(ps, &key, &key_len)))
                return rc;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':')
                return fail(ps, ps->p, "expected ':'");
            ps->p++;
            skip_ws(ps);
        }
        wm_json_t *child;
        if ((rc = parse_value(ps, &child)))
            return rc;
        child->key = key;
        child->key_len = key_len;
        *tail = child;
        tail = &child->next;
        v->len++;
        skip_ws(ps);
        if (ps->p >= ps->end)
            return fail(ps, ps->p, is_obj ? "unterminated object" : "unterminated array");
        if (*ps->p == ',') {
            ps->p++;
            skip_ws(ps);
            continue;
        }
        if (*ps->p == close) {
            ps->p++;
            break;
        }
        return fail(ps, ps->p, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
    ps->depth--;
    return 0;
}

static int parse_value(parser_t *ps, wm_json_t **out)
{
    if (ps->p >= ps->end)
        return fail(ps, ps->p, "unexpected end of input");
    wm_json_t *v = wm_arena_alloc(ps->a, sizeof *v);
    if (!v)
        return WM_ENOMEM;
    memset(v, 0, sizeof *v);
    *out = v;
    switch (*ps->p) {
    case '{':
        return parse_container(ps, v, 1);
    case '[':
        return parse_container(ps, v, 0);
    case '"':
        v->type = WM_JSON_STRING;
        return parse_string(ps, &v->u.str, &v->len);
    case 't':
        v->type = WM_JSON_TRUE;
        return expect_lit(ps, "true", 4);
    case 'f':
        v->type = WM_JSON_FALSE;
        return expect_lit(ps, "false", 5);
    case 'n':
        v->type = WM_JSON_NULL;
        return expect_lit(ps, "null", 4);
    default:
        return parse_number(ps, v);
    }
}

int wm_json_parse(wm_arena_t *a, const char *text, size_t len, wm_json_t **out,
                  wm_json_error_t *err)
{
    parser_t ps = {.a = a, .p = text, .end = text + len, .start = text, .err = err};
    if (err) {
        err->offset = 0;
        err->msg[0] = '\0';
    }
    skip_ws(&ps);
    wm_json_t *v;
    int rc = parse_value(&ps, &v);
    if (rc)
        return rc;
    skip_ws(&ps);
    if (ps.p != ps.end)
        return fail(&ps, ps.p, "trailing characters after JSON value");
    *out = v;
    return 0;
}

const wm_json_t *wm_json_get(const wm_json_t *obj, const char *key)
{
    if (!obj || obj->type != WM_JSON_OBJECT)
        return NULL;
    size_t kl = strlen(key);
    const wm_json_t *found = NULL;
    for (const wm_json_t *c = obj->u.child; c; c = c->next)
        if (c->key_len == kl && memcmp(c->key, key, kl) == 0)
            found = c;
    return found;
}

const char *wm_json_str(const wm_json_t *v)
{
    return v && v->type == WM_JSON_STRING ? v->u.str : NULL;
}

const char *wm_json_type_name(wm_json_type_t t)
{
    static const char *names[] = {"null", "boolean", "boolean", "number", "string", "array", "object"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}

void wm_json_write(wm_buf_t *b, const wm_json_t *v)
{
    switch (v->type) {
    case WM_JSON_NULL: wm_buf_append(b, "null", 4); return;
    case WM_JSON_FALSE: wm_buf_append(b, "false", 5); return;
    case WM_JSON_TRUE: wm_buf_append(b, "true", 4); return;
    case WM_JSON_NUMBER:
        if (v->is_int) {
            wm_buf_put_i64(b, v->i64);
        } else {
            char tmp[32];
            int n = snprintf(tmp, sizeof tmp, "%.17g", v->u.num);
            wm_buf_append(b, tmp, (size_t)n);
        }
        return;
    case WM_JSON_STRING: wm_buf_json_str(b, v->u.str, v->len); return;
    case WM_JSON_ARRAY:
    case WM_JSON_OBJECT: {
        int obj = v->type == WM_JSON_OBJECT;
        wm_buf_putc(b, obj ? '{' : '[');
        for (const wm_json_t *c = v->u.child; c; c = c->next) {
            if (c != v->u.child)
                wm_buf_putc(b, ',');
            if (obj) {
                wm_buf_json_str(b, c->key, c->key_len);
                wm_buf_putc(b, ':');
            }
            wm_json_write(b, c);
        }
        wm_buf_putc(b, obj ? '}' : ']');
        return;
    }
    }
}

wm_json_t *wm_json_new(wm_arena_t *a, wm_json_type_t t)
{
    wm_json_t *v = wm_arena_alloc(a, sizeof *v);
    if (v) {
        memset(v, 0, sizeof *v);
        v->type = t;
    }
    return v;
}

wm_json_t *wm_json_new_str(wm_arena_t *a, const char *s, size_t n)
{
    wm_json_t *v = wm_json_new(a, WM_JSON_STRING);
    if (!v)
        return NULL;
    char *d = wm_arena_strndup(a, s, n);
    if (!d)
        return NULL;
    v->u.str = d;
    v->len = (uint32_t)n;
    return v;
}

wm_json_t *wm_json_new_int(wm_arena_t *a, int64_t x)
{
    wm_json_t *v = wm_json_new(a, WM_JSON_NUMBER);
    if (v) {
        v->is_int = true;
        v->i64 = x;
        v->u.num = (double)x;
    }
    return v;
}

wm_json_t *wm_json_new_num(wm_arena_t *a, double x)
{
    wm_json_t *v = wm_json_new(a, WM_JSON_NUMBER);
    if (v) {
        v->u.num = x;
        if (x == (double)(int64_t)x && fabs(x) < 9.0e15) {
            v->is_int = true;
            v->i64 = (int64_t)x;
        }
    }
    return v;
}

int wm_json_append(wm_arena_t *a, wm_json_t *parent, const char *key, wm_json_t *child)
{
    if (!parent || !child || (parent->type != WM_JSON_ARRAY && parent->type != WM_JSON_OBJECT))
        return WM_EINVAL;
    if (parent->type == WM_JSON_OBJECT) {
        if (!key)
            return WM_EINVAL;
        size_t kl = strlen(key);
        char *k = wm_arena_strndup(a, key, kl);
        if (!k)
            return WM_ENOMEM;
        child->key = k;
        child->key_len = (uint32_t)kl;
    }
    wm_json_t **tail = &parent->u.child;
    while (*tail)
        tail = &(*tail)->next;
    *tail = child;
    child->next = NULL;
    parent->len++;
    return 0;
}
