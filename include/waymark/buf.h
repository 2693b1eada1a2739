/*
 * buf.h - growable byte buffer with a hard maximum.
 *
 * `data` is always NUL-terminated after a successful append (the NUL is not
 * counted in `len`). A buffer that hits `max_bytes` or fails to grow goes into
 * an error state (`err` != 0); later appends are ignored, so callers may do a
 * series of appends and check once at the end.
 */
#ifndef WAYMARK_BUF_H
#define WAYMARK_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wm_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max_bytes;   /* 0 = WM_BUF_DEFAULT_MAX */
    int err;            /* first error seen (WM_ENOMEM / WM_ELIMIT), sticky */
} wm_buf_t;

void wm_buf_init(wm_buf_t *b, size_t max_bytes);
void wm_buf_release(wm_buf_t *b);
void wm_buf_reset(wm_buf_t *b);           /* len = 0, err = 0, keeps memory */
int wm_buf_reserve(wm_buf_t *b, size_t extra);
void wm__buf_append_slow(wm_buf_t *b, const void *p, size_t n);
void wm__buf_putc_slow(wm_buf_t *b, char c);

/* Appends n bytes. Inline fast path: serialisation appends many short
 * pieces, and a call plus a capacity check per piece showed in profiles. */
static inline void wm_buf_append(wm_buf_t *b, const void *p, size_t n)
{
    if (b->len + n < b->cap && !b->err) {
        __builtin_memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
        return;
    }
    wm__buf_append_slow(b, p, n);
}

static inline void wm_buf_putc(wm_buf_t *b, char c)
{
    if (b->len + 1 < b->cap && !b->err) {
        b->data[b->len++] = c;
        b->data[b->len] = '\0';
        return;
    }
    wm__buf_putc_slow(b, c);
}

void wm_buf_puts(wm_buf_t *b, const char *s);
void wm_buf_printf(wm_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void wm_buf_vprintf(wm_buf_t *b, const char *fmt, va_list ap);
void wm_buf_put_i64(wm_buf_t *b, int64_t v);
/* Appends `s` as a quoted JSON string with all required escapes. */
void wm_buf_json_str(wm_buf_t *b, const char *s, size_t n);
/* Hands the memory to the caller (free with wm_free) and empties the buffer.
 * An empty buffer yields an allocated ""; NULL only if that allocation fails.
 * Check b->err first: the error state is cleared along with the buffer. */
char *wm_buf_steal(wm_buf_t *b, size_t *len_out);

#endif
