/*
 * part_walk.h - a test-side walker over a part file's footer (the format of
 * src/analytics/part.c, written out independently): it finds the trailer,
 * steps through the footer and reports every block's column entries with
 * where they sit in the file. The unit tests use it to damage one chosen
 * column block or index entry; the fuzz target uses it to re-seal mutated
 * inputs (fix every checksum) so the fuzzer reaches the block decoders.
 *
 * Header only, static functions; nothing here is part of the library.
 */
#ifndef WM_TEST_PART_WALK_H
#define WM_TEST_PART_WALK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "waymark/bytes.h"
#include "waymark/crc32c.h"

#define PW_TRAILER 24

typedef struct pw_entry {
    uint32_t block, col;      /* col: 0 user, 1 time, 2 seq, 3 event, 4+ properties */
    uint64_t clen, off, ulen;
    size_t off_pos, off_end;  /* file positions of the off varint [pos, end) */
    size_t crc_pos;           /* file position of the entry's stored CRC32C */
} pw_entry_t;

/* Called for every present column entry; return false to stop. */
typedef bool (*pw_fn)(void *ctx, const pw_entry_t *e);

static inline uint32_t pw_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t pw_u64(const unsigned char *p)
{
    return (uint64_t)pw_u32(p) | (uint64_t)pw_u32(p + 4) << 32;
}
static inline void pw_put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline bool pw_skip_dict(const unsigned char **p, const unsigned char *end)
{
    uint64_t n, len;
    if (!wm_get_varint(p, end, &n))
        return false;
    for (uint64_t i = 0; i < n; i++) {
        if (!wm_get_varint(p, end, &len) || len > (uint64_t)(end - *p))
            return false;
        *p += len;
    }
    return true;
}

/* Footer position and length from the trailer (no checks beyond bounds). */
static inline bool pw_footer(const unsigned char *d, size_t n, size_t *foff, size_t *flen)
{
    if (n < 8 + PW_TRAILER)
        return false;
    const unsigned char *tr = d + n - PW_TRAILER;
    uint64_t off = pw_u64(tr);
    uint32_t len = pw_u32(tr + 8);
    if (off < 8 || off > n - PW_TRAILER || len != n - PW_TRAILER - off)
        return false;
    *foff = (size_t)off;
    *flen = len;
    return true;
}

/* Walks the footer of the part in d[0..n); false when it does not parse. */
static inline bool pw_walk(const unsigned char *d, size_t n, pw_fn fn, void *ctx)
{
    size_t foff, flen;
    if (!pw_footer(d, n, &foff, &flen))
        return false;
    const unsigned char *p = d + foff, *end = p + flen;
    uint64_t h[7];
    for (int i = 0; i < 7; i++)
        if (!wm_get_varint(&p, end, &h[i]))
            return false;
    uint64_t nblocks = h[1], ncols = h[2];
    if (ncols > 4096 || !pw_skip_dict(&p, end))
        return false;
    for (uint64_t c = 0; c < ncols; c++) {
        uint64_t len;
        if (!wm_get_varint(&p, end, &len) || len >= (uint64_t)(end - p))
            return false;
        p += len;
        unsigned char t = *p++;
        if ((t == 2 || t == 5) && !pw_skip_dict(&p, end))
            return false;
    }
    uint64_t nm, v;
    if (!wm_get_varint(&p, end, &nm) || nm > flen)
        return false;
    for (uint64_t i = 0; i < 2 * nm; i++)
        if (!wm_get_varint(&p, end, &v))
            return false;
    if (nblocks > flen)
        return false;
    for (uint64_t b = 0; b < nblocks; b++) {
        for (int i = 0; i < 5; i++)
            if (!wm_get_varint(&p, end, &v))
                return false;
        for (uint64_t c = 0; c < 4 + ncols; c++) {
            pw_entry_t e = {.block = (uint32_t)b, .col = (uint32_t)c};
            if (!wm_get_varint(&p, end, &e.clen))
                return false;
            if (!e.clen)
                continue;
            e.off_pos = (size_t)(p - d);
            if (!wm_get_varint(&p, end, &e.off))
                return false;
            e.off_end = (size_t)(p - d);
            if (!wm_get_varint(&p, end, &e.ulen) || end - p < 4)
                return false;
            e.crc_pos = (size_t)(p - d);
            p += 4;
            if (c >= 4) {
                if (end - p < 16)
                    return false;
                p += 16;
            }
            if (fn && !fn(ctx, &e))
                return true;
        }
    }
    return true;
}

/* Rewrites the footer's CRC in the trailer. */
static inline void pw_seal_footer(unsigned char *d, size_t n)
{
    size_t foff, flen;
    if (pw_footer(d, n, &foff, &flen))
        pw_put32(d + n - PW_TRAILER + 12, wm_crc32c(0, d + foff, flen));
}

typedef struct pw_seal {
    unsigned char *d;
    size_t n, foff;
} pw_seal_t;

static inline bool pw_fix_crc(void *ctx, const pw_entry_t *e)
{
    pw_seal_t *s = ctx;
    if (e->off <= s->foff && e->clen <= s->foff - e->off)
        pw_put32(s->d + e->crc_pos, wm_crc32c(0, s->d + e->off, (size_t)e->clen));
    return true;
}

/* Recomputes the footer length (to the trailer, when the footer offset is in
 * range), every block CRC the index names (in range) and the footer CRC:
 * whatever was mutated, inserted or cut, the checksums agree again. */
static inline void pw_seal_all(unsigned char *d, size_t n)
{
    pw_seal_t s = {d, n, 0};
    size_t flen;
    if (n >= 8 + PW_TRAILER) {
        uint64_t off = pw_u64(d + n - PW_TRAILER);
        if (off >= 8 && off <= n - PW_TRAILER)
            pw_put32(d + n - PW_TRAILER + 8, (uint32_t)(n - PW_TRAILER - off));
    }
    if (!pw_footer(d, n, &s.foff, &flen))
        return;
    pw_walk(d, n, pw_fix_crc, &s);
    pw_seal_footer(d, n);
}

/* First entry of (block, col); false when there is none. */
typedef struct pw_find {
    uint32_t block, col;
    pw_entry_t found;
    bool ok;
} pw_find_t;

static inline bool pw_find_fn(void *ctx, const pw_entry_t *e)
{
    pw_find_t *f = ctx;
    if (e->block == f->block && e->col == f->col) {
        f->found = *e;
        f->ok = true;
        return false;
    }
    return true;
}

static inline bool pw_find(const unsigned char *d, size_t n, uint32_t block, uint32_t col, pw_entry_t *out)
{
    pw_find_t f = {.block = block, .col = col};
    pw_walk(d, n, pw_find_fn, &f);
    if (f.ok)
        *out = f.found;
    return f.ok;
}

#endif
