/*
 * bytes.h - big-endian integer encoding for store keys. Keys are compared as
 * bytes by LMDB, so numbers in keys are big-endian to sort numerically.
 */
#ifndef WAYMARK_BYTES_H
#define WAYMARK_BYTES_H

#include <stdint.h>

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

#endif
