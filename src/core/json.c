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

__attribute__((cold)) static int fail(parser_t *ps, const char *at, const char *msg)
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
    /* compact input has no whitespace between tokens: one test for that */
    if (p < ps->end && (unsigned char)*p > ' ')
        return;
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
    size_t avail = (size_t)(end - p);
    if (c >= 0xE1 && c <= 0xEC && avail >= 3) {
        /* the common case for CJK text: no overlong or surrogate possible */
        return ((p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80) ? 3 : 0;
    }
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
    if (avail < n)
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

/* SWAR scan: true when the 8 bytes of w hold a quote, a backslash, a control
 * character or a non-ASCII byte, i.e. anything the plain-ASCII fast path must
 * not skip. The "has zero byte" test is exact about existence, which is all
 * we need: the byte loop then finds which one it was. */
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
static inline uint64_t word_special_mask(uint64_t w)
{
    uint64_t quote = w ^ (ONES * '"');
    uint64_t bslash = w ^ (ONES * '\\');
    uint64_t t = ((w - ONES * 0x20) & ~w) | ((quote - ONES) & ~quote) | ((bslash - ONES) & ~bslash);
    return (t | w) & HIGHS;
}

/* Bytes before the first special byte of a word loaded little-endian: the
 * lowest flagged byte of the mask is always a real one (a borrow only ever
 * flags bytes above a real hit), so the ordinary bytes before it are skipped
 * at once instead of one per loop. */
static inline unsigned word_plain_prefix(uint64_t mask)
{
#if defined(__GNUC__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return (unsigned)__builtin_ctzll(mask) >> 3;
#else
    (void)mask;
    return 0;
#endif
}

/* A run of 3-byte UTF-8 sequences that cannot be overlong or surrogates
 * (lead byte E1..EC): the CJK text of Chinese property values. */
static inline const unsigned char *skip_cjk(const unsigned char *q, const unsigned char *end)
{
    while (end - q >= 3 && q[0] >= 0xE1 && q[0] <= 0xEC && (q[1] & 0xC0) == 0x80 &&
           (q[2] & 0xC0) == 0x80)
        q += 3;
    return q;
}

/* Finds the closing quote of the string whose body starts at p, validating
 * UTF-8 and control characters on the way. Returns the quote's position or
 * NULL (after reporting the fault). *has_escape tells whether a second,
 * unescaping pass is needed. */
static const unsigned char *scan_string(parser_t *ps, const unsigned char *p, int *has_escape)
{
    const unsigned char *end = (const unsigned char *)ps->end;
    const unsigned char *q = p;
    for (;;) {
        while (end - q >= 8) {
            uint64_t w;
            memcpy(&w, q, 8);
            uint64_t m = word_special_mask(w);
            if (m) {
                q += word_plain_prefix(m);
                break;
            }
            q += 8;
        }
        if (q >= end)
            break;
        unsigned c = *q;
        if (c == '"')
            return q;
        if (c == '\\') {
            *has_escape = 1;
            if (end - q < 2)
                break;
            q += 2;
        } else if (c < 0x20) {
            fail(ps, (const char *)q, "control character in string");
            return NULL;
        } else if (c >= 0x80) {
            size_t n = utf8_seq(q, end);
            if (!n) {
                fail(ps, (const char *)q, "invalid UTF-8 in string");
                return NULL;
            }
            q = skip_cjk(q + n, end);
        } else {
            q++;
        }
    }
    fail(ps, ps->p, "unterminated string");
    return NULL;
}

/* Decodes \uXXXX (and a following low surrogate) at s, which points just past
 * the 'u'. Writes UTF-8 at *d. Returns the input consumed or 0 when invalid. */
static size_t unescape_u(const unsigned char *s, const unsigned char *q, char **d)
{
    unsigned cp;
    if (q - s < 4 || hex4((const char *)s, &cp))
        return 0;
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return 0;
    if (cp < 0xD800 || cp > 0xDBFF) {
        *d = put_utf8(*d, cp);
        return 4;
    }
    unsigned lo;
    if (q - s < 10 || s[4] != '\\' || s[5] != 'u' || hex4((const char *)s + 6, &lo) ||
        lo < 0xDC00 || lo > 0xDFFF)
        return 0;
    *d = put_utf8(*d, 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00));
    return 10;
}

/* Second pass for strings with escapes: s..q is the raw body (already
 * validated as UTF-8), unescaped in place into dst == s (escapes never grow,
 * so the write position never passes the read position). */
/* Out of line: keeps parse_string's fast path small (escapes are rare). */
__attribute__((noinline, cold)) static int unescape(parser_t *ps, const unsigned char *s,
                                                    const unsigned char *q, char *dst,
                                                    uint32_t *len_out)
{
    char *d = dst;
    while (s < q) {
        const unsigned char *bs = memchr(s, '\\', (size_t)(q - s));
        size_t run = bs ? (size_t)(bs - s) : (size_t)(q - s);
        memmove(d, s, run);
        d += run;
        s += run;
        if (!bs)
            break;
        unsigned char e = s[1];
        s += 2;
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
            size_t used = unescape_u(s, q, &d);
            if (!used)
                return fail(ps, (const char *)s - 2, "bad \\u escape or unpaired surrogate");
            s += used;
            break;
        }
        default:
            return fail(ps, (const char *)s - 2, "bad escape");
        }
    }
    *d = '\0';
    *len_out = (uint32_t)(d - dst);
    return 0;
}

/* Parses a string at ps->p (which points at the opening quote). The text is
 * the parser's own copy (wm_json_parse): the string stays where it is, its
 * closing quote becomes the NUL, and escapes are undone in place. */
static int parse_string(parser_t *ps, const char **out, uint32_t *len_out)
{
    unsigned char *p = (unsigned char *)ps->p + 1;
    int has_escape = 0;
    unsigned char *q = (unsigned char *)scan_string(ps, p, &has_escape);
    if (!q)
        return WM_EPARSE;
    size_t raw = (size_t)(q - p);
    if (raw > UINT32_MAX - 1)
        return fail(ps, ps->p, "string too long");
    if (has_escape) {
        int rc = unescape(ps, p, q, (char *)p, len_out);
        if (rc)
            return rc;
    } else {
        *q = '\0';
        *len_out = (uint32_t)raw;
    }
    *out = (const char *)p;
    ps->p = (const char *)q + 1;
    return 0;
}

static inline int is_digit(const char *p, const char *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

/* The shape of a number literal, found by one syntax pass. */
typedef struct numlit {
    const char *start, *end;        /* whole literal */
    const char *int_start;          /* first integer digit */
    size_t int_digits, frac_digits;
    int neg, is_int;
    long exp;                       /* explicit exponent, clamped */
} numlit_t;

static int scan_number(parser_t *ps, numlit_t *n)
{
    const char *p = ps->p, *end = ps->end;
    memset(n, 0, sizeof *n);
    n->start = p;
    n->is_int = 1;
    if (p < end && *p == '-') {
        n->neg = 1;
        p++;
    }
    if (!is_digit(p, end))
        return fail(ps, n->start, "bad number");
    n->int_start = p;
    if (*p == '0') {
        p++;
        if (is_digit(p, end))
            return fail(ps, n->start, "leading zero in number");
    } else {
        while (is_digit(p, end))
            p++;
    }
    n->int_digits = (size_t)(p - n->int_start);
    if (p < end && *p == '.') {
        n->is_int = 0;
        p++;
        if (!is_digit(p, end))
            return fail(ps, n->start, "bad number fraction");
        const char *f = p;
        while (is_digit(p, end))
            p++;
        n->frac_digits = (size_t)(p - f);
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        n->is_int = 0;
        p++;
        int eneg = 0;
        if (p < end && (*p == '+' || *p == '-'))
            eneg = *p++ == '-';
        if (!is_digit(p, end))
            return fail(ps, n->start, "bad number exponent");
        while (is_digit(p, end)) {
            if (n->exp < 100000)
                n->exp = n->exp * 10 + (*p - '0');
            p++;
        }
        if (eneg)
            n->exp = -n->exp;
    }
    n->end = p;
    return 0;
}

/* Integers up to 19 digits are accumulated exactly; anything that fits int64
 * keeps is_int (int64 -> double conversion rounds like strtod would). */
static int number_int(const numlit_t *n, wm_json_t *v)
{
    if (n->int_digits > 19)
        return 0;
    uint64_t m = 0;
    for (const char *p = n->int_start; p < n->int_start + n->int_digits; p++)
        m = m * 10 + (uint64_t)(*p - '0');
    if (n->neg && m == 0)
        return 0; /* "-0" stays the double -0.0 so it writes back as "-0" */
    if (n->neg && m <= (uint64_t)INT64_MAX + 1) {
        v->i64 = m == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m;
        v->u.num = -(double)m;
    } else if (!n->neg && m <= (uint64_t)INT64_MAX) {
        v->i64 = (int64_t)m;
        v->u.num = (double)m;
    } else {
        return 0;
    }
    v->is_int = true;
    return 1;
}

/* Clinger's fast path: a mantissa below 2^53 scaled by an exact power of ten
 * up to 1e22 is one correctly rounded IEEE operation, so no strtod needed. */
static int number_fast_float(const numlit_t *n, double *out)
{
    static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    if (n->int_digits + n->frac_digits > 19)
        return 0;
    uint64_t m = 0;
    for (const char *p = n->int_start; p < n->end && *p != 'e' && *p != 'E'; p++)
        if (*p != '.')
            m = m * 10 + (uint64_t)(*p - '0');
    if (m > (1ULL << 53))
        return 0;
    long e = n->exp - (long)n->frac_digits;
    if (e < -22 || e > 22)
        return 0;
    double d = (double)m;
    d = e < 0 ? d / pow10[-e] : d * pow10[e];
    *out = n->neg ? -d : d;
    return 1;
}

/* Slow path through strtod. Note: strtod honours LC_NUMERIC; Waymark never
 * calls setlocale, so the C locale's '.' applies. */
static int number_strtod(parser_t *ps, const numlit_t *n, double *out)
{
    char tmp[64];
    size_t len = (size_t)(n->end - n->start);
    char *s = tmp;
    if (len >= sizeof tmp) {
        s = wm_arena_alloc(ps->a, len + 1);
        if (!s)
            return WM_ENOMEM;
    }
    memcpy(s, n->start, len);
    s[len] = '\0';
    *out = strtod(s, NULL);
    if (!isfinite(*out))
        return fail(ps, n->start, "number out of range");
    return 0;
}

static int parse_number(parser_t *ps, wm_json_t *v)
{
    numlit_t n;
    int rc = scan_number(ps, &n);
    if (rc)
        return rc;
    v->type = WM_JSON_NUMBER;
    ps->p = n.end;
    if (n.is_int && number_int(&n, v))
        return 0;
    v->is_int = false;
    v->lit = n.start;
    v->len = (uint32_t)(n.end - n.start);
    if (number_fast_float(&n, &v->u.num))
        return 0;
    return number_strtod(ps, &n, &v->u.num);
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

/* The text is copied into the arena once and parsed in place: one memcpy per
 * document instead of an allocation and a copy per string, and the tree
 * (number literals included) points only into the arena. */
int wm_json_parse(wm_arena_t *a, const char *text, size_t len, wm_json_t **out,
                  wm_json_error_t *err)
{
    if (err) {
        err->offset = 0;
        err->msg[0] = '\0';
    }
    if (len > SIZE_MAX - 1)
        return WM_ELIMIT;
    char *copy = wm_arena_alloc(a, len + 1);
    if (!copy)
        return WM_ENOMEM;
    memcpy(copy, text, len);
    copy[len] = '\0';
    parser_t ps = {.a = a, .p = copy, .end = copy + len, .start = copy, .err = err};
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

/* Shortest of %.15g/%.16g/%.17g that reads back to the same double, so
 * 0.1 stays "0.1" while every value still round-trips. JSON has no NaN or
 * infinity (the parser never produces them; wm_json_new_num may): null. */
static void write_double(wm_buf_t *b, double d)
{
    if (!isfinite(d)) {
        wm_buf_append(b, "null", 4);
        return;
    }
    char tmp[40];
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    wm_buf_append(b, tmp, (size_t)n);
}

void wm_json_write(wm_buf_t *b, const wm_json_t *v)
{
    switch (v->type) {
    case WM_JSON_NULL: wm_buf_append(b, "null", 4); return;
    case WM_JSON_FALSE: wm_buf_append(b, "false", 5); return;
    case WM_JSON_TRUE: wm_buf_append(b, "true", 4); return;
    case WM_JSON_NUMBER:
        if (v->is_int)
            wm_buf_put_i64(b, v->i64);
        else if (v->lit && v->len)
            wm_buf_append(b, v->lit, v->len);   /* already valid JSON */
        else
            write_double(b, v->u.num);
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
        /* range check first: casting an out-of-range double is undefined */
        if (fabs(x) < 9.0e15 && x == (double)(int64_t)x) {
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

/* ---- top-level member lookup without building a tree ---- */

static size_t raw_ws(const char *s, size_t i, size_t n)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* Index just past the string starting at s[i] == '"', or 0 when unterminated. */
static size_t raw_string_end(const char *s, size_t i, size_t n)
{
    for (i++; i < n; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == '"')
            return i + 1;
    }
    return 0;
}

/* Index just past the value at s[i], or 0 when malformed. Nesting is
 * tracked with a depth count: brackets inside strings are skipped. */
static size_t raw_value_end(const char *s, size_t i, size_t n)
{
    if (i >= n)
        return 0;
    if (s[i] == '"')
        return raw_string_end(s, i, n);
    if (s[i] == '{' || s[i] == '[') {
        size_t depth = 0;
        while (i < n) {
            char c = s[i];
            if (c == '"') {
                if (!(i = raw_string_end(s, i, n)))
                    return 0;
                continue;
            }
            if (c == '{' || c == '[')
                depth++;
            else if ((c == '}' || c == ']') && --depth == 0)
                return i + 1;
            i++;
        }
        return 0;
    }
    size_t j = i;
    while (j < n && s[j] != ',' && s[j] != '}' && s[j] != ']' && s[j] != ' ' && s[j] != '\n' &&
           s[j] != '\r' && s[j] != '\t')
        j++;
    return j > i ? j : 0;
}

int wm_json_find_member(const char *text, size_t len, const char *key, const char **val, size_t *val_len)
{
    size_t kl = strlen(key), i = raw_ws(text, 0, len);
    if (i >= len || text[i] != '{')
        return WM_EPARSE;
    i = raw_ws(text, i + 1, len);
    if (i < len && text[i] == '}')
        return WM_ENOTFOUND;
    while (i < len) {
        if (text[i] != '"')
            return WM_EPARSE;
        size_t ke = raw_string_end(text, i, len);
        if (!ke)
            return WM_EPARSE;
        /* a key with escapes never equals a plain key: compare the raw bytes */
        bool match = ke - i - 2 == kl && !memcmp(text + i + 1, key, kl);
        i = raw_ws(text, ke, len);
        if (i >= len || text[i] != ':')
            return WM_EPARSE;
        i = raw_ws(text, i + 1, len);
        size_t ve = raw_value_end(text, i, len);
        if (!ve)
            return WM_EPARSE;
        if (match) {
            *val = text + i;
            *val_len = ve - i;
            return 0;
        }
        i = raw_ws(text, ve, len);
        if (i < len && text[i] == '}')
            return WM_ENOTFOUND;
        if (i >= len || text[i] != ',')
            return WM_EPARSE;
        i = raw_ws(text, i + 1, len);
    }
    return WM_EPARSE;
}
