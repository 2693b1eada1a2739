/* buf.c - growable byte buffer with a hard maximum and a sticky error. */
#include "waymark/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "waymark/alloc.h"
#include "waymark/error.h"

#define WM_BUF_DEFAULT_MAX ((size_t)1 << 30)

void wm_buf_init(wm_buf_t *b, size_t max_bytes)
{
    memset(b, 0, sizeof *b);
    b->max_bytes = max_bytes ? max_bytes : WM_BUF_DEFAULT_MAX;
}

void wm_buf_release(wm_buf_t *b)
{
    wm_free(b->data);
    size_t max = b->max_bytes;
    memset(b, 0, sizeof *b);
    b->max_bytes = max;
}

void wm_buf_reset(wm_buf_t *b)
{
    b->len = 0;
    b->err = 0;
    if (b->data)
        b->data[0] = '\0';
}

int wm_buf_reserve(wm_buf_t *b, size_t extra)
{
    if (b->err)
        return b->err;
    if (!b->max_bytes)
        b->max_bytes = WM_BUF_DEFAULT_MAX;
    if (extra > b->max_bytes || b->len + extra > b->max_bytes)
        return b->err = WM_ELIMIT;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2; /* max_bytes near SIZE_MAX must not loop */
    /* never beyond max_bytes + NUL: the inline fast paths in buf.h rely on
     * "fits in cap" implying "within max_bytes" */
    if (b->max_bytes < SIZE_MAX && cap > b->max_bytes + 1)
        cap = b->max_bytes + 1;
    char *d = wm_realloc(b->data, cap);
    if (!d)
        return b->err = WM_ENOMEM;
    b->data = d;
    b->cap = cap;
    d[b->len] = '\0'; /* a fresh buffer reads as "" even before any append */
    return 0;
}

void wm__buf_append_slow(wm_buf_t *b, const void *p, size_t n)
{
    if (wm_buf_reserve(b, n))
        return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void wm_buf_puts(wm_buf_t *b, const char *s) { wm_buf_append(b, s, strlen(s)); }

void wm__buf_putc_slow(wm_buf_t *b, char c)
{
    if (wm_buf_reserve(b, 1))
        return;
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void wm_buf_vprintf(wm_buf_t *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0 || wm_buf_reserve(b, (size_t)n))
        return;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void wm_buf_printf(wm_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    wm_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void wm_buf_put_i64(wm_buf_t *b, int64_t v)
{
    char tmp[24];
    char *p = tmp + sizeof tmp;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    wm_buf_append(b, p, (size_t)(tmp + sizeof tmp - p));
}

/* Index of the first byte that JSON requires escaping (< 0x20, '"', '\\'),
 * or n. Eight bytes at a time: most strings need no escape at all. */
static size_t first_escape(const char *s, size_t n)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        uint64_t ctl = (w - ones * 0x20) & ~w;
        uint64_t q = w ^ (ones * '"'), bs = w ^ (ones * '\\');
        uint64_t hit = (ctl | ((q - ones) & ~q) | ((bs - ones) & ~bs)) & highs;
        if (hit)
            break;
    }
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == '"' || c == '\\')
            return i;
    }
    return n;
}

void wm_buf_json_str(wm_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (n > SIZE_MAX - 2) {
        b->err = b->err ? b->err : WM_ELIMIT;
        return;
    }
    if (wm_buf_reserve(b, n + 2))
        return;
    b->data[b->len++] = '"';
    size_t first = first_escape(s, n);
    if (first == n) {
        memcpy(b->data + b->len, s, n);
        b->len += n;
        b->data[b->len++] = '"';
        b->data[b->len] = '\0';
        return;
    }
    size_t run = 0;
    for (size_t i = first; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        wm_buf_append(b, s + run, i - run);
        run = i + 1;
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t elen = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        }
        wm_buf_append(b, esc, elen);
    }
    wm_buf_append(b, s + run, n - run);
    wm_buf_putc(b, '"');
}

char *wm_buf_steal(wm_buf_t *b, size_t *len_out)
{
    if (!b->data && !b->err)
        wm_buf_reserve(b, 0); /* callers get "" rather than NULL for an empty buffer */
    char *d = b->data;
    if (len_out)
        *len_out = b->len;
    size_t max = b->max_bytes;
    memset(b, 0, sizeof *b);
    b->max_bytes = max;
    return d;
}
