/*
 * bytes.h - integer encodings for stored keys and values. Keys are compared
 * as bytes by LMDB, so numbers in keys are big-endian to sort numerically.
 * Values use varints (LEB128: 7 bits a byte, low bits first): most stored
 * numbers are small or close to another field, and every byte of a row is
 * paid once per user or instance (DESIGN.md §10 budgets bytes per user).
 */
#ifndef WAYMARK_BYTES_H
#define WAYMARK_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WM_VARINT_MAX 10 /* bytes of the longest uint64 varint */

static inline void wm_put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)v;
        v >>= 8;
    }
}

static inline uint64_t wm_get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Writes v as a varint at p; returns the byte after it. */
static inline unsigned char *wm_put_varint(unsigned char *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    *p++ = (unsigned char)v;
    return p;
}

/* Reads a varint from *p (not past end) and advances *p; false when it is
 * truncated or longer than WM_VARINT_MAX bytes. */
static inline bool wm_get_varint(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; *p < end && shift < 64; shift += 7) {
        unsigned char b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

/* Signed numbers (times, differences of times) as small unsigned ones. */
static inline uint64_t wm_zigzag(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }
static inline int64_t wm_unzigzag(uint64_t v) { return (int64_t)(v >> 1) ^ -(int64_t)(v & 1); }

#endif
