/*
 * part.c - the part file: immutable columns of one partition's events.
 *
 * Layout (little-endian):
 *
 *   "WMPT" u32 version                                        8 bytes
 *   column blocks, each one zstd frame (format 3: time and    ...
 *   event blocks one lz4 block)
 *   footer (plain bytes, see write_footer)                    footer_len
 *   u64 footer_off | u32 footer_len | u32 crc32c(footer) | u32 version | "WMPT"
 *
 * A block holds up to WM_PART_BLOCK_ROWS rows. Its base columns are user
 * (runs of (delta, count) varints), time (format 1: zigzag varint deltas;
 * 2 and 3: a width byte, then every zigzag delta in that many little-endian
 * bytes), seq (zigzag varint deltas) and event (format 1: varint dictionary
 * codes; 2 and 3: a width byte of 1, 2 or 4, then the codes in that width);
 * a property column's block is a presence
 * byte (1: every row has a value; 0: a bitmap follows) and the values of the
 * rows that have one: NUMBER f64, STRING varint code, BOOL one byte,
 * DATETIME zigzag varint delta of ms and a form byte, LIST varint count and
 * codes. Every stored block carries its CRC32C in the footer's block index.
 *
 * The writer takes rows already in (user, time, seq) order (a part merge
 * feeds it from sorted parts; the builder sorts first) and keeps only one
 * block of rows and the dictionaries in memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <lz4.h>
#include <zstd.h>

#include "analytics/an_internal.h"
#include "waymark/alloc.h"
#include "waymark/bytes.h"
#include "waymark/crc32c.h"
#include "waymark/error.h"

#define MAGIC "WMPT"
#define TRAILER_BYTES 24
#define ZSTD_LEVEL 1

/* ------------------------------------------------------------ utilities */

int wm__an_grow(void **p, uint32_t *cap, uint64_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    if (need > UINT32_MAX / 2)
        return WM_ELIMIT;
    uint32_t n = *cap ? *cap : 64;
    while (n < need)
        n *= 2;
    void *q = wm_realloc(*p, (size_t)n * elem);
    if (!q)
        return WM_ENOMEM;
    *p = q;
    *cap = n;
    return 0;
}

int wm__an_dict_add(wm_an_dict_t *d, const char *s, size_t len, uint32_t *code)
{
    uint64_t v;
    if (wm_strmap_get(&d->map, s, len, &v)) {
        *code = (uint32_t)v;
        return 0;
    }
    if (wm__an_grow((void **)&d->strs, &d->cap, d->n + 1, sizeof *d->strs) ||
        wm__an_grow((void **)&d->lens, &d->lcap, d->n + 1, sizeof *d->lens))
        return WM_ENOMEM;
    char *copy = wm_malloc(len + 1);
    if (!copy)
        return WM_ENOMEM;
    memcpy(copy, s, len);
    copy[len] = 0;
    if (wm_strmap_put(&d->map, s, len, d->n)) {
        wm_free(copy);
        return WM_ENOMEM;
    }
    d->strs[d->n] = copy;
    d->lens[d->n] = (uint32_t)len;
    *code = d->n++;
    return 0;
}

void wm__an_dict_release(wm_an_dict_t *d)
{
    for (uint32_t i = 0; i < d->n; i++)
        wm_free(d->strs[i]);
    wm_free(d->strs);
    wm_free(d->lens);
    wm_strmap_release(&d->map);
    memset(d, 0, sizeof *d);
}

static void put_u32le(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64le(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_u32le(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t get_u64le(const unsigned char *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
#else
    return (uint64_t)get_u32le(p) | (uint64_t)get_u32le(p + 4) << 32;
#endif
}

static void buf_varint(wm_buf_t *b, uint64_t v)
{
    unsigned char tmp[WM_VARINT_MAX];
    wm_buf_append(b, tmp, (size_t)(wm_put_varint(tmp, v) - tmp));
}
static void buf_str(wm_buf_t *b, const char *s, uint32_t len)
{
    buf_varint(b, len);
    wm_buf_append(b, s, len);
}
static void buf_f64(wm_buf_t *b, double d)
{
    unsigned char tmp[8];
    uint64_t u;
    memcpy(&u, &d, 8);
    put_u64le(tmp, u);
    wm_buf_append(b, tmp, 8);
}

/* -------------------------------------------------------------- writer */

typedef struct wcol {
    char *name;
    wm_acol_type_t type;
    wm_an_dict_t dict;          /* STRING, LIST */
    /* this block's values: rows[i] has vals[i] (LIST: vals = offset into
     * lcodes, lens[i] = count; DATETIME: forms[i]) */
    uint32_t *rows;
    uint64_t *vals;
    uint8_t *forms;
    uint32_t n, cap, fcap;
    uint32_t *lcodes, ln, lcap;
    uint32_t *llens, llcap;
    double min, max;
} wcol_t;

typedef struct blkidx {
    uint32_t rows;
    /* per column (4 base + cols): offset, stored length, plain length, crc */
    uint32_t ncols;
    uint64_t *off;
    uint32_t *clen, *ulen, *crc;
    double *min, *max;          /* base: user/time as doubles are lossy, kept separately */
    uint64_t user_min, user_max;
    int64_t time_min, time_max;
} blkidx_t;

struct wm_part_writer {
    int fd;
    bool nosync;                 /* a query's scratch part: not fsynced */
    char *path, *tmp;
    uint64_t off;
    wm_an_dict_t events;
    wcol_t *cols;
    uint32_t ncols, ccap;
    wm_strmap_t colmap;          /* type byte + name -> index */
    uint64_t *merges;
    uint32_t nmerges, mcap;
    /* the block being filled */
    uint64_t *user;
    int64_t *time;
    uint64_t *seq;
    uint32_t *ev;
    uint32_t rows;
    blkidx_t *blocks;
    uint32_t nblocks, bcap;
    uint64_t total_rows, seq_min, seq_max;
    int64_t time_min, time_max;
    wm_buf_t plain;
    void *zbuf;
    size_t zcap;
    ZSTD_CCtx *zc;
    int err;
};

int wm__part_writer_open(const char *path, wm_part_writer_t **out)
{
    wm_part_writer_t *w = wm_calloc(1, sizeof *w);
    if (!w)
        return WM_ENOMEM;
    w->fd = -1;
    size_t pl = strlen(path);
    w->path = wm_malloc(pl + 1);
    w->tmp = wm_malloc(pl + 5);
    w->user = wm_malloc(WM_PART_BLOCK_ROWS * sizeof *w->user);
    w->time = wm_malloc(WM_PART_BLOCK_ROWS * sizeof *w->time);
    w->seq = wm_malloc(WM_PART_BLOCK_ROWS * sizeof *w->seq);
    w->ev = wm_malloc(WM_PART_BLOCK_ROWS * sizeof *w->ev);
    w->zc = ZSTD_createCCtx();
    wm_strmap_init(&w->colmap);
    wm_strmap_init(&w->events.map);
    wm_buf_init(&w->plain, 0);
    w->seq_min = UINT64_MAX;
    w->time_min = INT64_MAX;
    w->time_max = INT64_MIN;
    if (!w->path || !w->tmp || !w->user || !w->time || !w->seq || !w->ev || !w->zc) {
        wm__part_writer_abort(w);
        return WM_ENOMEM;
    }
    memcpy(w->path, path, pl + 1);
    memcpy(w->tmp, path, pl);
    memcpy(w->tmp + pl, ".tmp", 5);
    w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        wm__part_writer_abort(w);
        return WM_EIO;
    }
    unsigned char hdr[8];
    memcpy(hdr, MAGIC, 4);
    put_u32le(hdr + 4, WM_PART_VERSION);
    if (write(w->fd, hdr, 8) != 8) {
        wm__part_writer_abort(w);
        return WM_EIO;
    }
    w->off = 8;
    *out = w;
    return 0;
}

static void wcol_release(wcol_t *c)
{
    wm_free(c->name);
    wm__an_dict_release(&c->dict);
    wm_free(c->rows);
    wm_free(c->vals);
    wm_free(c->forms);
    wm_free(c->lcodes);
    wm_free(c->llens);
}

void wm__part_writer_abort(wm_part_writer_t *w)
{
    if (!w)
        return;
    if (w->fd >= 0) {
        close(w->fd);
        unlink(w->tmp);
    }
    for (uint32_t i = 0; i < w->ncols; i++)
        wcol_release(&w->cols[i]);
    wm_free(w->cols);
    for (uint32_t i = 0; i < w->nblocks; i++) {
        blkidx_t *b = &w->blocks[i];
        wm_free(b->off);
        wm_free(b->clen);
        wm_free(b->ulen);
        wm_free(b->crc);
        wm_free(b->min);
        wm_free(b->max);
    }
    wm_free(w->blocks);
    wm_free(w->merges);
    wm__an_dict_release(&w->events);
    wm_strmap_release(&w->colmap);
    wm_free(w->user);
    wm_free(w->time);
    wm_free(w->seq);
    wm_free(w->ev);
    wm_buf_release(&w->plain);
    wm_free(w->zbuf);
    ZSTD_freeCCtx(w->zc);
    wm_free(w->path);
    wm_free(w->tmp);
    wm_free(w);
}

int wm__part_writer_event(wm_part_writer_t *w, const char *name, size_t len, uint32_t *code)
{
    return wm__an_dict_add(&w->events, name, len, code);
}

int wm__part_writer_col(wm_part_writer_t *w, const char *name, size_t len, wm_acol_type_t type,
                        uint32_t *col)
{
    char key[512];
    if (len > sizeof key - 1)
        return WM_ELIMIT;
    key[0] = (char)type;
    memcpy(key + 1, name, len);
    uint64_t v;
    if (wm_strmap_get(&w->colmap, key, len + 1, &v)) {
        *col = (uint32_t)v;
        return 0;
    }
    /* the last column is kept for "$rest", where values past the limit go */
    bool rest = type == WM_ACOL_STRING && len == 5 && !memcmp(name, "$rest", 5);
    if (w->ncols >= WM_PART_COLS_MAX - (rest ? 0 : 1))
        return WM_ELIMIT;
    if (wm__an_grow((void **)&w->cols, &w->ccap, w->ncols + 1, sizeof *w->cols))
        return WM_ENOMEM;
    wcol_t *c = &w->cols[w->ncols];
    memset(c, 0, sizeof *c);
    c->name = wm_malloc(len + 1);
    if (!c->name)
        return WM_ENOMEM;
    memcpy(c->name, name, len);
    c->name[len] = 0;
    c->type = type;
    wm_strmap_init(&c->dict.map);
    c->min = INFINITY;
    c->max = -INFINITY;
    if (wm_strmap_put(&w->colmap, key, len + 1, w->ncols))
        return WM_ENOMEM;
    *col = w->ncols++;
    return 0;
}

int wm__part_writer_str(wm_part_writer_t *w, uint32_t col, const char *s, size_t len, uint32_t *code)
{
    return wm__an_dict_add(&w->cols[col].dict, s, len, code);
}

int wm__part_writer_rest(wm_part_writer_t *w, const char *name, size_t len, wm_acol_type_t type, const char *s,
                         size_t slen, double num)
{
    uint32_t rest, code;
    int rc = wm__part_writer_col(w, "$rest", 5, WM_ACOL_STRING, &rest);
    if (rc)
        return rc;
    /* "name=value" (the value's text for strings and numbers), at most 1023 bytes */
    char text[1024];
    int n = WM_ACOL_IS_TEXT(type) ? snprintf(text, sizeof text, "%.*s=%.*s", (int)len, name, (int)slen, s)
            : type == WM_ACOL_NUMBER ? snprintf(text, sizeof text, "%.*s=%.17g", (int)len, name, num)
                                     : snprintf(text, sizeof text, "%.*s", (int)len, name);
    if (n >= (int)sizeof text)
        n = (int)sizeof text - 1;
    if ((rc = wm__part_writer_str(w, rest, text, (size_t)(n < 0 ? 0 : n), &code)) == 0)
        rc = wm__part_writer_code(w, rest, code, 0);
    return rc;
}

static int flush_block(wm_part_writer_t *w);

int wm__part_writer_row(wm_part_writer_t *w, uint64_t user, int64_t time_ms, uint64_t seq, uint32_t ev)
{
    if (w->err)
        return w->err;
    if (w->rows == WM_PART_BLOCK_ROWS && (w->err = flush_block(w)))
        return w->err;
    uint32_t r = w->rows++;
    w->user[r] = user;
    w->time[r] = time_ms;
    w->seq[r] = seq;
    w->ev[r] = ev;
    w->total_rows++;
    if (seq < w->seq_min)
        w->seq_min = seq;
    if (seq > w->seq_max)
        w->seq_max = seq;
    if (time_ms < w->time_min)
        w->time_min = time_ms;
    if (time_ms > w->time_max)
        w->time_max = time_ms;
    return 0;
}

static int wcol_slot(wcol_t *c, uint32_t row)
{
    if (c->n && c->rows[c->n - 1] == row)
        return -1;  /* one value per row and column: the first wins */
    uint32_t cap = c->cap;
    if (wm__an_grow((void **)&c->rows, &cap, c->n + 1, sizeof *c->rows))
        return WM_ENOMEM;
    cap = c->cap;
    if (wm__an_grow((void **)&c->vals, &cap, c->n + 1, sizeof *c->vals))
        return WM_ENOMEM;
    if (c->type == WM_ACOL_DATETIME || c->type == WM_ACOL_LIST) {
        uint32_t fc = c->fcap;
        if (wm__an_grow((void **)&c->forms, &fc, c->n + 1, sizeof *c->forms))
            return WM_ENOMEM;
        c->fcap = fc;
        if (c->type == WM_ACOL_LIST) {
            fc = c->llcap;
            if (wm__an_grow((void **)&c->llens, &fc, c->n + 1, sizeof *c->llens))
                return WM_ENOMEM;
            c->llcap = fc;
        }
    }
    c->cap = cap;
    c->rows[c->n] = row;
    return 0;
}

int wm__part_writer_num(wm_part_writer_t *w, uint32_t col, double v)
{
    wcol_t *c = &w->cols[col];
    int rc = wcol_slot(c, w->rows - 1);
    if (rc)
        return rc < 0 ? 0 : rc;
    memcpy(&c->vals[c->n], &v, 8);
    if (v < c->min)
        c->min = v;
    if (v > c->max)
        c->max = v;
    c->n++;
    return 0;
}

int wm__part_writer_code(wm_part_writer_t *w, uint32_t col, uint64_t v, uint8_t form)
{
    wcol_t *c = &w->cols[col];
    int rc = wcol_slot(c, w->rows - 1);
    if (rc)
        return rc < 0 ? 0 : rc;
    c->vals[c->n] = v;
    if (c->forms)
        c->forms[c->n] = form;
    if (c->type == WM_ACOL_DATETIME) {
        double d = (double)(int64_t)v;
        if (d < c->min)
            c->min = d;
        if (d > c->max)
            c->max = d;
    }
    c->n++;
    return 0;
}

int wm__part_writer_list(wm_part_writer_t *w, uint32_t col, const uint32_t *codes, uint32_t n)
{
    wcol_t *c = &w->cols[col];
    int rc = wcol_slot(c, w->rows - 1);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (wm__an_grow((void **)&c->lcodes, &c->lcap, c->ln + n, sizeof *c->lcodes))
        return WM_ENOMEM;
    c->vals[c->n] = c->ln;
    c->llens[c->n] = n;
    if (n)   /* an empty list: codes and lcodes may be NULL */
        memcpy(c->lcodes + c->ln, codes, (size_t)n * sizeof *codes);
    c->ln += n;
    c->n++;
    return 0;
}

int wm__part_writer_merge(wm_part_writer_t *w, uint64_t from, uint64_t into)
{
    if (wm__an_grow((void **)&w->merges, &w->mcap, 2 * (w->nmerges + 1), sizeof *w->merges))
        return WM_ENOMEM;
    w->merges[2 * w->nmerges] = from;
    w->merges[2 * w->nmerges + 1] = into;
    w->nmerges++;
    return 0;
}

/* Compresses w->plain and writes it as column idx of block bi. */
static int emit(wm_part_writer_t *w, blkidx_t *bi, uint32_t idx)
{
    if (w->plain.err)
        return w->plain.err;
    /* format 3: the time and event columns, read by every query, in lz4
     * (decodes ~2.7x faster than zstd on them); the others in zstd */
    bool lz = idx == 1 || idx == 3;
    size_t bound = lz ? (size_t)LZ4_compressBound((int)w->plain.len) : ZSTD_compressBound(w->plain.len);
    if (bound > w->zcap) {
        void *z = wm_realloc(w->zbuf, bound);
        if (!z)
            return WM_ENOMEM;
        w->zbuf = z;
        w->zcap = bound;
    }
    size_t n;
    if (lz) {
        int k = w->plain.len ? LZ4_compress_default(w->plain.data, w->zbuf, (int)w->plain.len, (int)w->zcap) : 0;
        if (k < 0 || (k == 0 && w->plain.len))
            return WM_EIO;
        n = (size_t)k;
    } else {
        n = ZSTD_compressCCtx(w->zc, w->zbuf, w->zcap, w->plain.data, w->plain.len, ZSTD_LEVEL);
        if (ZSTD_isError(n))
            return WM_EIO;
    }
    const unsigned char *p = w->zbuf;
    size_t left = n;
    while (left) {
        ssize_t k = write(w->fd, p, left);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return WM_EIO;
        p += k;
        left -= (size_t)k;
    }
    bi->off[idx] = w->off;
    bi->clen[idx] = (uint32_t)n;
    bi->ulen[idx] = (uint32_t)w->plain.len;
    bi->crc[idx] = wm_crc32c(0, w->zbuf, n);
    w->off += n;
    return 0;
}

static void presence(wm_buf_t *b, const uint32_t *rows, uint32_t n, uint32_t nrows)
{
    if (n == nrows) {
        wm_buf_putc(b, 1);
        return;
    }
    wm_buf_putc(b, 0);
    size_t bytes = (nrows + 7) / 8;
    if (wm_buf_reserve(b, bytes))
        return;
    unsigned char *bm = (unsigned char *)b->data + b->len;
    memset(bm, 0, bytes);
    for (uint32_t i = 0; i < n; i++)
        bm[rows[i] >> 3] |= (unsigned char)(1u << (rows[i] & 7));
    b->len += bytes;
}

static int flush_block(wm_part_writer_t *w)
{
    if (!w->rows)
        return 0;
    if (wm__an_grow((void **)&w->blocks, &w->bcap, w->nblocks + 1, sizeof *w->blocks))
        return WM_ENOMEM;
    blkidx_t *bi = &w->blocks[w->nblocks];
    memset(bi, 0, sizeof *bi);
    uint32_t nc = 4 + w->ncols;
    bi->ncols = nc;
    bi->rows = w->rows;
    bi->off = wm_calloc(nc, sizeof *bi->off);
    bi->clen = wm_calloc(nc, sizeof *bi->clen);
    bi->ulen = wm_calloc(nc, sizeof *bi->ulen);
    bi->crc = wm_calloc(nc, sizeof *bi->crc);
    bi->min = wm_calloc(nc, sizeof *bi->min);
    bi->max = wm_calloc(nc, sizeof *bi->max);
    w->nblocks++;
    if (!bi->off || !bi->clen || !bi->ulen || !bi->crc || !bi->min || !bi->max)
        return WM_ENOMEM;
    uint32_t n = w->rows;
    int rc;
    /* user: runs */
    wm_buf_reset(&w->plain);
    bi->user_min = w->user[0];
    bi->user_max = w->user[n - 1];
    uint64_t prev = 0;
    for (uint32_t i = 0; i < n;) {
        uint32_t j = i + 1;
        while (j < n && w->user[j] == w->user[i])
            j++;
        buf_varint(&w->plain, w->user[i] - prev);
        buf_varint(&w->plain, j - i);
        prev = w->user[i];
        i = j;
    }
    if ((rc = emit(w, bi, 0)))
        return rc;
    /* time: zigzag deltas from the previous row, all of one byte width
     * (the widest delta's), little-endian: decoded without branches */
    wm_buf_reset(&w->plain);
    int64_t tp = 0, tmin = INT64_MAX, tmax = INT64_MIN;
    uint64_t zmax = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t z = wm_zigzag((int64_t)((uint64_t)w->time[i] - (uint64_t)tp));   /* wraps, no overflow */
        zmax |= z;
        tp = w->time[i];
        if (tp < tmin)
            tmin = tp;
        if (tp > tmax)
            tmax = tp;
    }
    unsigned tw = 1;
    while (tw < 8 && (zmax >> (8 * tw)))
        tw++;
    if ((rc = wm_buf_reserve(&w->plain, 1 + (size_t)n * tw)))
        return rc;
    wm_buf_putc(&w->plain, (char)tw);
    tp = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t z = wm_zigzag((int64_t)((uint64_t)w->time[i] - (uint64_t)tp));
        tp = w->time[i];
        unsigned char le[8];
        put_u64le(le, z);
        wm_buf_append(&w->plain, le, tw);
    }
    bi->time_min = tmin;
    bi->time_max = tmax;
    if ((rc = emit(w, bi, 1)))
        return rc;
    /* seq */
    wm_buf_reset(&w->plain);
    uint64_t sp = 0;
    for (uint32_t i = 0; i < n; i++) {
        buf_varint(&w->plain, wm_zigzag((int64_t)(w->seq[i] - sp)));
        sp = w->seq[i];
    }
    if ((rc = emit(w, bi, 2)))
        return rc;
    /* event: codes of one byte width (1, 2 or 4) */
    wm_buf_reset(&w->plain);
    unsigned ew = w->events.n <= 256 ? 1 : w->events.n <= 65536 ? 2 : 4;
    if ((rc = wm_buf_reserve(&w->plain, 1 + (size_t)n * ew)))
        return rc;
    wm_buf_putc(&w->plain, (char)ew);
    for (uint32_t i = 0; i < n; i++) {
        unsigned char le[4];
        put_u32le(le, w->ev[i]);
        wm_buf_append(&w->plain, le, ew);
    }
    if ((rc = emit(w, bi, 3)))
        return rc;
    /* properties */
    for (uint32_t ci = 0; ci < w->ncols; ci++) {
        wcol_t *c = &w->cols[ci];
        if (!c->n)
            continue;
        wm_buf_reset(&w->plain);
        presence(&w->plain, c->rows, c->n, n);
        int64_t dp = 0;
        for (uint32_t i = 0; i < c->n; i++) {
            switch (c->type) {
            case WM_ACOL_NUMBER: {
                double d;
                memcpy(&d, &c->vals[i], 8);
                buf_f64(&w->plain, d);
                break;
            }
            case WM_ACOL_STRING:
            case WM_ACOL_JSON:
                buf_varint(&w->plain, c->vals[i]);
                break;
            case WM_ACOL_BOOL:
                wm_buf_putc(&w->plain, (char)(c->vals[i] != 0));
                break;
            case WM_ACOL_DATETIME:
                buf_varint(&w->plain, wm_zigzag((int64_t)(c->vals[i] - (uint64_t)dp)));
                dp = (int64_t)c->vals[i];
                wm_buf_putc(&w->plain, (char)c->forms[i]);
                break;
            case WM_ACOL_LIST:
                buf_varint(&w->plain, c->llens[i]);
                for (uint32_t k = 0; k < c->llens[i]; k++)
                    buf_varint(&w->plain, c->lcodes[c->vals[i] + k]);
                break;
            }
        }
        bi->min[4 + ci] = c->min;
        bi->max[4 + ci] = c->max;
        if ((rc = emit(w, bi, 4 + ci)))
            return rc;
        c->n = 0;
        c->ln = 0;
        c->min = INFINITY;
        c->max = -INFINITY;
    }
    w->rows = 0;
    return 0;
}

static void write_dict(wm_buf_t *b, const wm_an_dict_t *d)
{
    buf_varint(b, d->n);
    for (uint32_t i = 0; i < d->n; i++)
        buf_str(b, d->strs[i], d->lens[i]);
}

/* Footer: counts and ranges, the event dictionary, the columns (name, type,
 * dictionary), the merges, then the block index. */
static void write_footer(wm_part_writer_t *w, wm_buf_t *b)
{
    buf_varint(b, w->total_rows);
    buf_varint(b, w->nblocks);
    buf_varint(b, w->ncols);
    buf_varint(b, w->total_rows ? w->seq_min : 0);
    buf_varint(b, w->seq_max);
    buf_varint(b, wm_zigzag(w->total_rows ? w->time_min : 0));
    buf_varint(b, wm_zigzag(w->total_rows ? w->time_max : 0));
    write_dict(b, &w->events);
    for (uint32_t i = 0; i < w->ncols; i++) {
        buf_str(b, w->cols[i].name, (uint32_t)strlen(w->cols[i].name));
        wm_buf_putc(b, (char)w->cols[i].type);
        if (WM_ACOL_IS_TEXT(w->cols[i].type) || w->cols[i].type == WM_ACOL_LIST)
            write_dict(b, &w->cols[i].dict);
    }
    buf_varint(b, w->nmerges);
    for (uint32_t i = 0; i < 2 * w->nmerges; i++)
        buf_varint(b, w->merges[i]);
    for (uint32_t bi = 0; bi < w->nblocks; bi++) {
        blkidx_t *x = &w->blocks[bi];
        buf_varint(b, x->rows);
        buf_varint(b, x->user_min);
        buf_varint(b, x->user_max);
        buf_varint(b, wm_zigzag(x->time_min));
        buf_varint(b, wm_zigzag(x->time_max));
        /* columns added after this block was written are absent from it */
        for (uint32_t c = 0; c < 4 + w->ncols; c++) {
            if (c >= x->ncols || !x->clen[c]) {
                buf_varint(b, 0);
                continue;
            }
            buf_varint(b, x->clen[c]);
            buf_varint(b, x->off[c]);
            buf_varint(b, x->ulen[c]);
            unsigned char crc[4];
            put_u32le(crc, x->crc[c]);
            wm_buf_append(b, crc, 4);
            if (c >= 4) {
                buf_f64(b, x->min[c]);
                buf_f64(b, x->max[c]);
            }
        }
    }
}

int wm__part_writer_finish(wm_part_writer_t *w, uint64_t *bytes)
{
    int rc = w->err ? w->err : flush_block(w);
    wm_buf_t f;
    wm_buf_init(&f, 0);
    if (!rc) {
        write_footer(w, &f);
        rc = f.err;
    }
    if (!rc) {
        unsigned char tr[TRAILER_BYTES];
        put_u64le(tr, w->off);
        put_u32le(tr + 8, (uint32_t)f.len);
        put_u32le(tr + 12, wm_crc32c(0, f.data, f.len));
        put_u32le(tr + 16, WM_PART_VERSION);
        memcpy(tr + 20, MAGIC, 4);
        wm_buf_append(&f, tr, sizeof tr);
        rc = f.err;
    }
    if (!rc) {
        const char *p = f.data;
        size_t left = f.len;
        while (left && !rc) {
            ssize_t k = write(w->fd, p, left);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                rc = WM_EIO;
            else {
                p += k;
                left -= (size_t)k;
            }
        }
        w->off += f.len;
    }
    wm_buf_release(&f);
    if (!rc && !w->nosync && fsync(w->fd))
        rc = WM_EIO;
    if (!rc && close(w->fd))
        rc = WM_EIO;
    if (!rc) {
        w->fd = -1;
        if (rename(w->tmp, w->path)) {
            unlink(w->tmp);
            rc = WM_EIO;
        }
    }
    if (!rc && bytes)
        *bytes = w->off;
    wm__part_writer_abort(w);
    return rc;
}

void wm__part_writer_nosync(wm_part_writer_t *w)
{
    w->nosync = true;
}

uint64_t wm__part_writer_rows(const wm_part_writer_t *w)
{
    return w->total_rows;
}

/* --------------------------------------------------------------- reader */

typedef struct rblk {
    uint32_t rows;
    uint64_t user_min, user_max;
    int64_t time_min, time_max;
    const unsigned char *idx;   /* this block's column entries in the footer */
} rblk_t;

typedef struct rcol {
    const char *name;
    wm_acol_type_t type;
    wm_an_dict_t dict;
} rcol_t;

struct wm_part {
    char *path;
    int fd;
    const unsigned char *map;
    size_t size;
    wm_part_info_t info;
    wm_an_dict_t events;
    rcol_t *cols;
    uint64_t *merges;
    rblk_t *blocks;
    char *names;     /* column names, NUL-terminated, in one allocation */
    uint32_t version;
    /* one bit per (block, column) whose checksum was verified by a read: the
     * file is immutable, so later reads of the same mapping skip the CRC
     * (wm_part_verify and `waymark check` always check) */
    _Atomic unsigned char *verified;
};

static bool rd_varint(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
    return wm_get_varint(p, end, v);
}

static bool rd_dict(const unsigned char **p, const unsigned char *end, wm_an_dict_t *d)
{
    uint64_t n;
    wm_strmap_init(&d->map);
    if (!rd_varint(p, end, &n) || n > (uint64_t)(end - *p))
        return false;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len;
        if (!rd_varint(p, end, &len) || len > (uint64_t)(end - *p))
            return false;
        uint32_t code;
        if (wm__an_dict_add(d, (const char *)*p, (size_t)len, &code) || code != i)
            return false;
        *p += len;
    }
    return true;
}

/* Skips one block-index column entry; with out, fills it. */
typedef struct centry {
    uint32_t clen, ulen, crc;
    uint64_t off;
    double min, max;
} centry_t;

static bool rd_centry(const unsigned char **p, const unsigned char *end, uint32_t c, centry_t *out)
{
    uint64_t clen, off, ulen;
    memset(out, 0, sizeof *out);
    if (!rd_varint(p, end, &clen))
        return false;
    if (!clen)
        return true;
    if (clen > UINT32_MAX || !rd_varint(p, end, &off) || !rd_varint(p, end, &ulen) || ulen > UINT32_MAX ||
        end - *p < 4)
        return false;
    out->clen = (uint32_t)clen;
    out->off = off;
    out->ulen = (uint32_t)ulen;
    out->crc = get_u32le(*p);
    *p += 4;
    if (c >= 4) {
        if (end - *p < 16)
            return false;
        uint64_t a = get_u64le(*p), b = get_u64le(*p + 8);
        memcpy(&out->min, &a, 8);
        memcpy(&out->max, &b, 8);
        *p += 16;
    }
    return true;
}

static int fail(char *err, size_t cap, int rc, const char *fmt, const char *path, long a, long b)
{
    if (err && cap)
        snprintf(err, cap, fmt, path, a, b);
    return rc;
}

int wm_part_open(const char *path, wm_part_t **out, char *err, size_t err_len)
{
    wm_part_t *p = wm_calloc(1, sizeof *p);
    if (!p)
        return WM_ENOMEM;
    p->fd = -1;
    p->path = wm_malloc(strlen(path) + 1);
    if (!p->path) {
        wm_part_close(p);
        return WM_ENOMEM;
    }
    strcpy(p->path, path);
    wm_strmap_init(&p->events.map);
    int rc = 0;
    struct stat st;
    p->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (p->fd < 0 || fstat(p->fd, &st)) {
        rc = fail(err, err_len, WM_EIO, "%s: cannot open (%ld%ld)", path, 0, 0);
        goto out;
    }
    p->size = (size_t)st.st_size;
    if (p->size < 8 + TRAILER_BYTES) {
        rc = fail(err, err_len, WM_ECORRUPT, "%s: %ld bytes, too short for a part%.0ld", path, (long)p->size, 0);
        goto out;
    }
    p->map = mmap(NULL, p->size, PROT_READ, MAP_PRIVATE, p->fd, 0);
    if (p->map == MAP_FAILED) {
        p->map = NULL;
        rc = fail(err, err_len, WM_EIO, "%s: mmap failed%.0ld%.0ld", path, 0, 0);
        goto out;
    }
    const unsigned char *tr = p->map + p->size - TRAILER_BYTES;
    if (memcmp(p->map, MAGIC, 4) || memcmp(tr + 20, MAGIC, 4)) {
        rc = fail(err, err_len, WM_ECORRUPT, "%s: not a part file (bad magic)%.0ld%.0ld", path, 0, 0);
        goto out;
    }
    uint32_t version = get_u32le(tr + 16);
    p->version = version;
    if ((version < 1 || version > WM_PART_VERSION) || get_u32le(p->map + 4) != version) {
        rc = fail(err, err_len, WM_ECORRUPT, "%s: format version %ld, this build reads %ld", path, (long)version,
                  WM_PART_VERSION);
        goto out;
    }
    uint64_t foff = get_u64le(tr);
    uint32_t flen = get_u32le(tr + 8);
    if (foff < 8 || foff > p->size - TRAILER_BYTES || flen != p->size - TRAILER_BYTES - foff) {
        rc = fail(err, err_len, WM_ECORRUPT, "%s: footer offset %ld out of range%.0ld", path, (long)foff, 0);
        goto out;
    }
    const unsigned char *f = p->map + foff, *end = f + flen;
    if (wm_crc32c(0, f, flen) != get_u32le(tr + 12)) {
        rc = fail(err, err_len, WM_ECORRUPT, "%s: footer checksum mismatch%.0ld%.0ld", path, 0, 0);
        goto out;
    }
    uint64_t rows, nblocks, ncols, smin, smax, tmin, tmax;
    if (!rd_varint(&f, end, &rows) || !rd_varint(&f, end, &nblocks) || !rd_varint(&f, end, &ncols) ||
        !rd_varint(&f, end, &smin) || !rd_varint(&f, end, &smax) || !rd_varint(&f, end, &tmin) ||
        !rd_varint(&f, end, &tmax) || ncols > WM_PART_COLS_MAX || nblocks > rows || nblocks > flen ||
        nblocks * WM_PART_BLOCK_ROWS < rows || !rd_dict(&f, end, &p->events)) {
        rc = fail(err, err_len, WM_ECORRUPT, "%s: footer header malformed%.0ld%.0ld", path, 0, 0);
        goto out;
    }
    p->info.rows = rows;
    p->info.blocks = (uint32_t)nblocks;
    p->info.cols = (uint32_t)ncols;
    p->info.events = p->events.n;
    p->info.seq_min = smin;
    p->info.seq_max = smax;
    p->info.time_min = wm_unzigzag(tmin);
    p->info.time_max = wm_unzigzag(tmax);
    p->info.bytes = p->size;
    p->cols = wm_calloc(ncols + 1, sizeof *p->cols);
    p->blocks = wm_calloc(nblocks + 1, sizeof *p->blocks);
    p->names = wm_malloc(flen + 1);
    p->verified = wm_calloc((size_t)nblocks * (4 + (size_t)ncols) / 8 + 1, 1);
    if (!p->cols || !p->blocks || !p->names || !p->verified) {
        rc = WM_ENOMEM;
        goto out;
    }
    char *np = p->names;
    for (uint64_t i = 0; i < ncols; i++) {
        uint64_t len;
        if (!rd_varint(&f, end, &len) || len > (uint64_t)(end - f) || end - f < (ptrdiff_t)len + 1) {
            rc = fail(err, err_len, WM_ECORRUPT, "%s: column %ld malformed%.0ld", path, (long)i, 0);
            goto out;
        }
        memcpy(np, f, len);
        np[len] = 0;
        p->cols[i].name = np;
        np += len + 1;
        f += len;
        uint8_t t = *f++;
        wm_strmap_init(&p->cols[i].dict.map);
        if (t < WM_ACOL_NUMBER || t > WM_ACOL_JSON ||
            ((WM_ACOL_IS_TEXT(t) || t == WM_ACOL_LIST) && !rd_dict(&f, end, &p->cols[i].dict))) {
            rc = fail(err, err_len, WM_ECORRUPT, "%s: column %ld malformed%.0ld", path, (long)i, 0);
            goto out;
        }
        p->cols[i].type = (wm_acol_type_t)t;
    }
    uint64_t nm;
    if (!rd_varint(&f, end, &nm) || nm > (uint64_t)(end - f) / 2) {
        rc = fail(err, err_len, WM_ECORRUPT, "%s: merge list malformed%.0ld%.0ld", path, 0, 0);
        goto out;
    }
    p->merges = wm_malloc((2 * nm + 1) * sizeof *p->merges);
    if (!p->merges) {
        rc = WM_ENOMEM;
        goto out;
    }
    for (uint64_t i = 0; i < 2 * nm; i++)
        if (!rd_varint(&f, end, &p->merges[i])) {
            rc = fail(err, err_len, WM_ECORRUPT, "%s: merge list malformed%.0ld%.0ld", path, 0, 0);
            goto out;
        }
    p->info.merges = (uint32_t)nm;
    uint64_t total = 0;
    for (uint64_t b = 0; b < nblocks; b++) {
        rblk_t *rb = &p->blocks[b];
        uint64_t r, umin, umax, t0, t1;
        if (!rd_varint(&f, end, &r) || !rd_varint(&f, end, &umin) || !rd_varint(&f, end, &umax) ||
            !rd_varint(&f, end, &t0) || !rd_varint(&f, end, &t1) || !r || r > WM_PART_BLOCK_ROWS) {
            rc = fail(err, err_len, WM_ECORRUPT, "%s: block %ld index malformed%.0ld", path, (long)b, 0);
            goto out;
        }
        rb->rows = (uint32_t)r;
        rb->user_min = umin;
        rb->user_max = umax;
        rb->time_min = wm_unzigzag(t0);
        rb->time_max = wm_unzigzag(t1);
        rb->idx = f;
        total += r;
        for (uint32_t c = 0; c < 4 + ncols; c++) {
            centry_t ce;
            if (!rd_centry(&f, end, c, &ce) || (ce.clen && (ce.off < 8 || ce.off > foff || ce.clen > foff - ce.off)) ||
                (c < 4 && !ce.clen)) {
                rc = fail(err, err_len, WM_ECORRUPT, "%s: block %ld column %ld index malformed", path, (long)b,
                          (long)c);
                goto out;
            }
        }
    }
    if (total != rows) {
        rc = fail(err, err_len, WM_ECORRUPT, "%s: blocks hold %ld rows, footer says %ld", path, (long)total,
                  (long)rows);
        goto out;
    }
out:
    if (rc) {
        wm_part_close(p);
        return rc;
    }
    *out = p;
    return 0;
}

void wm_part_close(wm_part_t *p)
{
    if (!p)
        return;
    if (p->map)
        munmap((void *)p->map, p->size);
    if (p->fd >= 0)
        close(p->fd);
    wm__an_dict_release(&p->events);
    if (p->cols)
        for (uint32_t i = 0; i <= p->info.cols; i++)
            wm__an_dict_release(&p->cols[i].dict);
    wm_free(p->cols);
    wm_free(p->blocks);
    wm_free(p->merges);
    wm_free(p->names);
    wm_free((void *)p->verified);
    wm_free(p->path);
    wm_free(p);
}

void wm_part_get_info(const wm_part_t *p, wm_part_info_t *out)
{
    *out = p->info;
}

const char *wm__part_path(const wm_part_t *p)
{
    return p->path;
}

const char *wm_part_event_name(const wm_part_t *p, uint32_t code)
{
    return code < p->events.n ? p->events.strs[code] : NULL;
}

uint32_t wm__part_event_len(const wm_part_t *p, uint32_t code)
{
    return code < p->events.n ? p->events.lens[code] : 0;
}

const char *wm_part_col_name(const wm_part_t *p, uint32_t c, wm_acol_type_t *type)
{
    if (c >= p->info.cols)
        return NULL;
    if (type)
        *type = p->cols[c].type;
    return p->cols[c].name;
}

const char *wm_part_col_str(const wm_part_t *p, uint32_t c, uint32_t code, uint32_t *len)
{
    if (c >= p->info.cols || code >= p->cols[c].dict.n)
        return NULL;
    if (len)
        *len = p->cols[c].dict.lens[code];
    return p->cols[c].dict.strs[code];
}

uint32_t wm_part_col_dict_size(const wm_part_t *p, uint32_t c)
{
    return c < p->info.cols ? p->cols[c].dict.n : 0;
}

void wm_part_merges(const wm_part_t *p, const uint64_t **pairs, uint32_t *n)
{
    *pairs = p->merges;
    *n = p->info.merges;
}

int32_t wm_part_find_col(const wm_part_t *p, const char *name, wm_acol_type_t type)
{
    for (uint32_t i = 0; i < p->info.cols; i++)
        if (p->cols[i].type == type && !strcmp(p->cols[i].name, name))
            return (int32_t)i;
    return -1;
}

void wm__part_block_range(const wm_part_t *p, uint32_t b, uint64_t *umin, uint64_t *umax, int64_t *tmin,
                          int64_t *tmax)
{
    *umin = p->blocks[b].user_min;
    *umax = p->blocks[b].user_max;
    *tmin = p->blocks[b].time_min;
    *tmax = p->blocks[b].time_max;
}

uint32_t wm__part_block_rows(const wm_part_t *p, uint32_t b)
{
    return p->blocks[b].rows;
}

/* Reader: one decoded block at a time; each property column decodes into
 * buffers of its own, so a query can hold several columns of a block. */
typedef struct colbuf {
    uint8_t *present;
    double *num;
    uint32_t *code;
    uint32_t *llen;
    uint32_t *lcodes;
    uint32_t lcap;
    uint8_t *boolean;
} colbuf_t;

struct wm_part_reader {
    wm_part_t *p;
    uint32_t block;       /* UINT32_MAX: none */
    uint32_t rows;
    uint64_t *user;
    int64_t *time;
    uint64_t *seq;
    uint32_t *ev;
    unsigned char *plain;
    size_t pcap;
    ZSTD_DCtx *zd;
    colbuf_t *cb;         /* per property column, allocated on first use */
    centry_t *entries;    /* current block's column entries */
    bool skip_user, skip_seq;   /* columns the caller does not read */
    bool always_check;          /* wm_part_verify: every checksum, every time */
};

void wm__part_reader_skip(wm_part_reader_t *r, bool user, bool seq)
{
    r->skip_user = user;
    r->skip_seq = seq;
}

int wm_part_reader_new(wm_part_t *p, wm_part_reader_t **out)
{
    wm_part_reader_t *r = wm_calloc(1, sizeof *r);
    if (!r)
        return WM_ENOMEM;
    r->p = p;
    r->block = UINT32_MAX;
    r->user = wm_malloc(WM_PART_BLOCK_ROWS * sizeof *r->user);
    r->time = wm_malloc(WM_PART_BLOCK_ROWS * sizeof *r->time);
    r->seq = wm_malloc(WM_PART_BLOCK_ROWS * sizeof *r->seq);
    r->ev = wm_malloc(WM_PART_BLOCK_ROWS * sizeof *r->ev);
    r->cb = wm_calloc(p->info.cols + 1, sizeof *r->cb);
    r->entries = wm_malloc((4 + p->info.cols) * sizeof *r->entries);
    r->zd = ZSTD_createDCtx();
    if (!r->user || !r->time || !r->seq || !r->ev || !r->cb || !r->entries || !r->zd) {
        wm_part_reader_free(r);
        return WM_ENOMEM;
    }
    *out = r;
    return 0;
}

static void colbuf_free(colbuf_t *c)
{
    wm_free(c->present);
    wm_free(c->num);
    wm_free(c->code);
    wm_free(c->llen);
    wm_free(c->lcodes);
    wm_free(c->boolean);
}

void wm_part_reader_free(wm_part_reader_t *r)
{
    if (!r)
        return;
    wm_free(r->user);
    wm_free(r->time);
    wm_free(r->seq);
    wm_free(r->ev);
    wm_free(r->plain);
    if (r->cb)
        for (uint32_t c = 0; c < r->p->info.cols; c++)
            colbuf_free(&r->cb[c]);
    wm_free(r->cb);
    wm_free(r->entries);
    ZSTD_freeDCtx(r->zd);
    wm_free(r);
}

static const char *col_label(const wm_part_t *p, uint32_t c)
{
    static const char *base[] = {"user", "time", "seq", "event"};
    return c < 4 ? base[c] : p->cols[c - 4].name;
}

/* Checks and decompresses column c of the current block into r->plain. */
static int load(wm_part_reader_t *r, uint32_t c, size_t *len, char *err, size_t cap)
{
    const centry_t *e = &r->entries[c];
    const unsigned char *src = r->p->map + e->off;
    size_t bit = (size_t)r->block * (4 + r->p->info.cols) + c;
    bool known = !r->always_check &&
                 (atomic_load_explicit(&r->p->verified[bit >> 3], memory_order_relaxed) >> (bit & 7)) & 1;
    if (!known && wm_crc32c(0, src, e->clen) != e->crc) {
        if (err && cap)
            snprintf(err, cap, "%s: block %u column %s: checksum mismatch", r->p->path, r->block,
                     col_label(r->p, c));
        return WM_ECORRUPT;
    }
    /* the frame states its plain size: it must be the index's (and no
     * buffer is sized from an index that disagrees) */
    bool lz = r->p->version >= 3 && (c == 1 || c == 3);
    /* an lz4 block states no size: the index's is bounded by what a base column can hold */
    if (lz ? e->ulen > 1 + (size_t)WM_PART_BLOCK_ROWS * 8 : ZSTD_getFrameContentSize(src, e->clen) != e->ulen) {
        if (err && cap)
            snprintf(err, cap, "%s: block %u column %s: cannot decompress (plain length)", r->p->path, r->block,
                     col_label(r->p, c));
        return WM_ECORRUPT;
    }
    if ((size_t)e->ulen + 1 > r->pcap) {   /* size_t: ulen + 1 wraps in 32 bits */
        void *q = wm_realloc(r->plain, (size_t)e->ulen + 1);
        if (!q)
            return WM_ENOMEM;
        r->plain = q;
        r->pcap = (size_t)e->ulen + 1;
    }
    size_t n;
    if (lz) {
        int k = e->ulen ? LZ4_decompress_safe((const char *)src, (char *)r->plain, (int)e->clen, (int)e->ulen) : 0;
        n = k < 0 ? (size_t)-1 : (size_t)k;
    } else
        n = ZSTD_decompressDCtx(r->zd, r->plain, e->ulen, src, e->clen);
    if (ZSTD_isError(n) || n != e->ulen) {
        if (err && cap)
            snprintf(err, cap, "%s: block %u column %s: cannot decompress", r->p->path, r->block,
                     col_label(r->p, c));
        return WM_ECORRUPT;
    }
    if (!known)
        atomic_fetch_or_explicit(&r->p->verified[bit >> 3], (unsigned char)(1u << (bit & 7)), memory_order_relaxed);
    *len = n;
    return 0;
}

int wm__part_plain(wm_part_reader_t *r, uint32_t c, const void **data, size_t *len, size_t *stored)
{
    char err[256];
    int rc = load(r, c, len, err, sizeof err);
    if (!rc) {
        *data = r->plain;
        *stored = r->entries[c].clen;
    }
    return rc;
}

/* A varint of at most 4 bytes when 4 bytes are readable (the common case
 * of time deltas and codes); otherwise the general decoder. */
static inline bool get_varint_fast(const unsigned char **pp, const unsigned char *end, uint64_t *v)
{
    const unsigned char *q = *pp;
    if (end - q >= 4) {
        uint64_t b = q[0];
        if (b < 0x80) {
            *v = b;
            *pp = q + 1;
            return true;
        }
        uint64_t x = b & 0x7f;
        b = q[1];
        x |= (b & 0x7f) << 7;
        if (b < 0x80) {
            *v = x;
            *pp = q + 2;
            return true;
        }
        b = q[2];
        x |= (b & 0x7f) << 14;
        if (b < 0x80) {
            *v = x;
            *pp = q + 3;
            return true;
        }
        b = q[3];
        x |= (b & 0x7f) << 21;
        if (b < 0x80) {
            *v = x;
            *pp = q + 4;
            return true;
        }
    }
    return wm_get_varint(pp, end, v);
}

static int bad(wm_part_reader_t *r, uint32_t c, char *err, size_t cap)
{
    if (err && cap)
        snprintf(err, cap, "%s: block %u column %s: malformed values", r->p->path, r->block, col_label(r->p, c));
    return WM_ECORRUPT;
}

int wm_part_read_block(wm_part_reader_t *r, uint32_t b, wm_ablock_t *out, char *err, size_t err_len)
{
    wm_part_t *p = r->p;
    if (b >= p->info.blocks)
        return WM_EINVAL;
    r->block = UINT32_MAX;
    const unsigned char *f = p->blocks[b].idx, *fend = p->map + p->size;
    for (uint32_t c = 0; c < 4 + p->info.cols; c++)
        if (!rd_centry(&f, fend, c, &r->entries[c]))
            return WM_ECORRUPT;  /* checked at open */
    uint32_t n = p->blocks[b].rows;
    r->block = b;
    size_t len;
    int rc;
    /* user runs */
    const unsigned char *q = NULL, *end = NULL;
    uint32_t i = 0;
    if (r->skip_user)
        goto time_seq;
    if ((rc = load(r, 0, &len, err, err_len)))
        goto fail;
    q = r->plain, end = q + len;
    uint64_t u = 0;
    while (q < end) {
        uint64_t d, cnt;
        if (!wm_get_varint(&q, end, &d) || !wm_get_varint(&q, end, &cnt) || !cnt || cnt > n - i) {
            rc = bad(r, 0, err, err_len);
            goto fail;
        }
        u += d;
        for (uint64_t k = 0; k < cnt; k++)
            r->user[i++] = u;
    }
    if (i != n) {
        rc = bad(r, 0, err, err_len);
        goto fail;
    }
time_seq:
    /* time, seq */
    for (uint32_t c = 1; c <= 2; c++) {
        if (c == 2 && r->skip_seq)
            break;
        if ((rc = load(r, c, &len, err, err_len)))
            goto fail;
        q = r->plain;
        end = q + len;
        int64_t acc = 0;
        if (c == 1 && p->version >= 2) {
            /* fixed width: the width byte, then n little-endian values */
            unsigned tw = len ? q[0] : 0;
            if (tw < 1 || tw > 8 || len != 1 + (size_t)n * tw) {
                rc = bad(r, c, err, err_len);
                goto fail;
            }
            q++;
            uint64_t mask = tw == 8 ? ~0ull : (1ull << (8 * tw)) - 1;
            /* the rows with 8 readable bytes, then the last few */
            uint32_t fast = len - 1 >= 8 ? (uint32_t)((len - 1 - 8) / tw + 1) : 0;
            if (fast > n)
                fast = n;
            int64_t *tv = r->time;
#define TIME_LOOP(W)                                                                          \
    for (i = 0; i < fast; i++, q += (W)) {                                                    \
        acc = (int64_t)((uint64_t)acc + (uint64_t)wm_unzigzag(get_u64le(q) & mask));          \
        tv[i] = acc;                                                                          \
    }
            switch (tw) {   /* a constant stride per width the writer picks most */
            case 4: TIME_LOOP(4) break;
            case 5: TIME_LOOP(5) break;
            case 6: TIME_LOOP(6) break;
            default: TIME_LOOP(tw) break;
            }
#undef TIME_LOOP
            for (; i < n; i++, q += tw) {
                uint64_t z = 0;
                for (unsigned k = 0; k < tw; k++)
                    z |= (uint64_t)q[k] << (8 * k);
                acc = (int64_t)((uint64_t)acc + (uint64_t)wm_unzigzag(z));
                tv[i] = acc;
            }
            continue;
        }
        for (i = 0; i < n; i++) {
            uint64_t z;
            if (!get_varint_fast(&q, end, &z)) {
                rc = bad(r, c, err, err_len);
                goto fail;
            }
            acc = (int64_t)((uint64_t)acc + (uint64_t)wm_unzigzag(z));   /* wraps like the writer */
            if (c == 1)
                r->time[i] = acc;
            else
                r->seq[i] = (uint64_t)acc;
        }
        if (q != end) {
            rc = bad(r, c, err, err_len);
            goto fail;
        }
    }
    if ((rc = load(r, 3, &len, err, err_len)))
        goto fail;
    q = r->plain;
    end = q + len;
    if (p->version >= 2) {
        unsigned ew = len ? q[0] : 0;
        if ((ew != 1 && ew != 2 && ew != 4) || len != 1 + (size_t)n * ew) {
            rc = bad(r, 3, err, err_len);
            goto fail;
        }
        q++;
        uint32_t nev = p->events.n, badcode = 0;
        if (ew == 1)
            for (i = 0; i < n; i++) {
                r->ev[i] = q[i];
                badcode |= q[i] >= nev;
            }
        else
            for (i = 0; i < n; i++) {
                uint32_t z = ew == 2 ? (uint32_t)q[2 * i] | (uint32_t)q[2 * i + 1] << 8 : get_u32le(q + 4 * i);
                r->ev[i] = z;
                badcode |= z >= nev;
            }
        if (badcode) {
            rc = bad(r, 3, err, err_len);
            goto fail;
        }
        goto done;
    }
    for (i = 0; i < n; i++) {
        uint64_t z;
        if (!get_varint_fast(&q, end, &z)) {
            rc = bad(r, 3, err, err_len);
            goto fail;
        }
        if (z >= p->events.n) {
            rc = bad(r, 3, err, err_len);
            goto fail;
        }
        r->ev[i] = (uint32_t)z;
    }
    if (q != end) {
        rc = bad(r, 3, err, err_len);
        goto fail;
    }
done:
    r->rows = n;
    out->rows = n;
    out->user = r->skip_user ? NULL : r->user;
    out->time = r->time;
    out->seq = r->skip_seq ? NULL : r->seq;
    out->event = r->ev;
    return 0;
fail:
    r->block = UINT32_MAX;
    return rc;
}

int wm_part_read_col(wm_part_reader_t *r, uint32_t c, wm_acolumn_t *out, char *err, size_t err_len)
{
    wm_part_t *p = r->p;
    memset(out, 0, sizeof *out);
    if (r->block == UINT32_MAX || c >= p->info.cols)
        return WM_EINVAL;
    out->type = p->cols[c].type;
    if (!r->entries[4 + c].clen)
        return 0;
    size_t len;
    colbuf_t *cb = &r->cb[c];
    if (!cb->present) {
        cb->present = wm_malloc(WM_PART_BLOCK_ROWS / 8);
        cb->num = wm_malloc(WM_PART_BLOCK_ROWS * sizeof *cb->num);
        cb->code = wm_malloc(WM_PART_BLOCK_ROWS * sizeof *cb->code);
        cb->llen = wm_malloc(WM_PART_BLOCK_ROWS * sizeof *cb->llen);
        cb->boolean = wm_malloc(WM_PART_BLOCK_ROWS);
        if (!cb->present || !cb->num || !cb->code || !cb->llen || !cb->boolean) {
            colbuf_free(cb);
            memset(cb, 0, sizeof *cb);
            return WM_ENOMEM;
        }
    }
    int rc = load(r, 4 + c, &len, err, err_len);
    if (rc)
        return rc;
    uint32_t n = r->rows;
    const unsigned char *q = r->plain, *end = q + len;
    size_t bm = (n + 7) / 8;
    if (q >= end)
        return bad(r, 4 + c, err, err_len);
    if (*q == 1) {
        memset(cb->present, 0xff, bm);
        q++;
    } else if (*q == 0 && (size_t)(end - q) > bm) {
        memcpy(cb->present, q + 1, bm);
        q += 1 + bm;
    } else
        return bad(r, 4 + c, err, err_len);
    if (n & 7)
        cb->present[bm - 1] &= (uint8_t)((1u << (n & 7)) - 1);
    uint32_t dict_n = p->cols[c].dict.n, ln = 0;
    int64_t dp = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!((cb->present[i >> 3] >> (i & 7)) & 1))
            continue;
        uint64_t z;
        switch (out->type) {
        case WM_ACOL_NUMBER:
            if (end - q < 8)
                return bad(r, 4 + c, err, err_len);
            z = get_u64le(q);
            memcpy(&cb->num[i], &z, 8);
            q += 8;
            break;
        case WM_ACOL_STRING:
        case WM_ACOL_JSON:
            if (!wm_get_varint(&q, end, &z) || z >= dict_n)
                return bad(r, 4 + c, err, err_len);
            cb->code[i] = (uint32_t)z;
            break;
        case WM_ACOL_BOOL:
            if (q >= end)
                return bad(r, 4 + c, err, err_len);
            cb->boolean[i] = *q++ != 0;
            break;
        case WM_ACOL_DATETIME:
            if (!wm_get_varint(&q, end, &z) || q >= end || *q > 2)
                return bad(r, 4 + c, err, err_len);
            dp = (int64_t)((uint64_t)dp + (uint64_t)wm_unzigzag(z));
            cb->num[i] = (double)dp;
            cb->code[i] = *q++;
            break;
        case WM_ACOL_LIST: {
            uint64_t cnt;
            if (!wm_get_varint(&q, end, &cnt) || cnt > (uint64_t)(end - q))
                return bad(r, 4 + c, err, err_len);
            if (wm__an_grow((void **)&cb->lcodes, &cb->lcap, ln + (uint32_t)cnt + 1, sizeof *cb->lcodes))
                return WM_ENOMEM;
            cb->code[i] = ln;
            cb->llen[i] = (uint32_t)cnt;
            for (uint64_t k = 0; k < cnt; k++) {
                if (!wm_get_varint(&q, end, &z) || z >= dict_n)
                    return bad(r, 4 + c, err, err_len);
                cb->lcodes[ln++] = (uint32_t)z;
            }
            break;
        }
        }
    }
    if (q != end)
        return bad(r, 4 + c, err, err_len);
    out->present = cb->present;
    out->num = cb->num;
    out->code = cb->code;
    out->list_len = cb->llen;
    out->list_codes = cb->lcodes;
    out->boolean = cb->boolean;
    return 0;
}

int wm_part_verify(wm_part_t *p, char *err, size_t err_len)
{
    wm_part_reader_t *r;
    int rc = wm_part_reader_new(p, &r);
    if (rc)
        return rc;
    r->always_check = true;
    uint64_t prev_user = 0;
    int64_t prev_time = INT64_MIN;
    for (uint32_t b = 0; b < p->info.blocks && !rc; b++) {
        wm_ablock_t blk;
        if ((rc = wm_part_read_block(r, b, &blk, err, err_len)))
            break;
        for (uint32_t i = 0; i < blk.rows; i++) {
            if (blk.user[i] < prev_user || (blk.user[i] == prev_user && blk.time[i] < prev_time)) {
                rc = fail(err, err_len, WM_ECORRUPT, "%s: block %ld row %ld out of (user, time) order", p->path,
                          (long)b, (long)i);
                break;
            }
            prev_user = blk.user[i];
            prev_time = blk.time[i];
        }
        for (uint32_t c = 0; c < p->info.cols && !rc; c++) {
            wm_acolumn_t col;
            rc = wm_part_read_col(r, c, &col, err, err_len);
        }
    }
    wm_part_reader_free(r);
    return rc;
}

size_t wm_acol_datetime_text(double ms, uint32_t form, char *out, size_t cap)
{
    if (!(ms > -1e17 && ms < 1e17)) {   /* NaN or far outside years 0..9999: no text */
        if (cap)
            out[0] = 0;
        return 0;
    }
    int64_t t = (int64_t)ms;
    int64_t days = t >= 0 ? t / 86400000 : -((-t + 86399999) / 86400000);
    int64_t rem = t - days * 86400000;
    /* civil from days (Howard Hinnant's algorithm) */
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400, doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153, d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2;
    int n;
    if (form == 0)
        n = snprintf(out, cap, "%04lld-%02lld-%02lld", (long long)y, (long long)m, (long long)d);
    else if (form == 1)
        n = snprintf(out, cap, "%04lld-%02lld-%02lld %02lld:%02lld:%02lld", (long long)y, (long long)m, (long long)d,
                     (long long)(rem / 3600000), (long long)(rem / 60000 % 60), (long long)(rem / 1000 % 60));
    else
        n = snprintf(out, cap, "%04lld-%02lld-%02lld %02lld:%02lld:%02lld.%03lld", (long long)y, (long long)m,
                     (long long)d, (long long)(rem / 3600000), (long long)(rem / 60000 % 60),
                     (long long)(rem / 1000 % 60), (long long)(rem % 1000));
    return n < 0 ? 0 : (size_t)n;
}
