/*
 * crc32c.c - CRC32C (Castagnoli, reflected polynomial 0x82F63B78).
 *
 * Every log frame is checksummed on append and again on every read and on
 * recovery, so this sits on the ingest hot path. x86-64 CPUs since Nehalem
 * compute CRC32C in hardware (SSE4.2 `crc32`), 8 bytes per instruction; we
 * compile that path with a per-function target attribute so the library
 * itself still builds for baseline x86-64, and pick it at run time with
 * __builtin_cpu_supports(). Everything else uses slicing-by-8 tables, which
 * are also the reference the hardware path is tested against.
 *
 * Convention (same as zlib's crc32): pass 0 to start, the return value is the
 * finished CRC, and wm_crc32c(wm_crc32c(0, a), b) == wm_crc32c(0, a || b).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "waymark/crc32c.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define WM_CRC32C_HAVE_SSE42 1
#include <nmmintrin.h>
#endif

#define CRC32C_POLY 0x82F63B78u

typedef uint32_t (*crc_fn)(uint32_t crc, const void *data, size_t n);

/* sw_table[k][b]: CRC of byte b followed by k zero bytes (slicing-by-8). */
static uint32_t sw_table[8][256];
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

uint32_t wm__crc32c_sw(uint32_t crc, const void *data, size_t n);
uint32_t wm__crc32c_hw(uint32_t crc, const void *data, size_t n);
int wm__crc32c_hw_available(void);

static uint32_t crc32c_resolve(uint32_t crc, const void *data, size_t n);

static _Atomic(crc_fn) crc_impl = crc32c_resolve;
static int hw_available;

static void build_tables(void)
{
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = b;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (CRC32C_POLY & (0u - (c & 1u)));
        sw_table[0][b] = c;
    }
    for (uint32_t b = 0; b < 256; b++)
        for (int k = 1; k < 8; k++)
            sw_table[k][b] = (sw_table[k - 1][b] >> 8) ^ sw_table[0][sw_table[k - 1][b] & 0xFF];
}

static void crc32c_init(void)
{
    build_tables();
#ifdef WM_CRC32C_HAVE_SSE42
    __builtin_cpu_init();
    hw_available = __builtin_cpu_supports("sse4.2") ? 1 : 0;
#endif
    atomic_store_explicit(&crc_impl, hw_available ? wm__crc32c_hw : wm__crc32c_sw,
                          memory_order_release);
}

/* Runs before main() so the hot path never sees pthread_once; the resolver
 * below covers callers from other constructors. */
__attribute__((constructor)) static void crc32c_constructor(void)
{
    pthread_once(&init_once, crc32c_init);
}

static uint32_t crc32c_resolve(uint32_t crc, const void *data, size_t n)
{
    pthread_once(&init_once, crc32c_init);
    crc_fn f = atomic_load_explicit(&crc_impl, memory_order_acquire);
    return f(crc, data, n);
}

static inline uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

uint32_t wm__crc32c_sw(uint32_t crc, const void *data, size_t n)
{
    const uint8_t *p = data;
    uint32_t c = ~crc;
    while (n >= 8) {
        uint64_t w = load_le64(p) ^ c;
        c = sw_table[7][w & 0xFF] ^ sw_table[6][(w >> 8) & 0xFF] ^
            sw_table[5][(w >> 16) & 0xFF] ^ sw_table[4][(w >> 24) & 0xFF] ^
            sw_table[3][(w >> 32) & 0xFF] ^ sw_table[2][(w >> 40) & 0xFF] ^
            sw_table[1][(w >> 48) & 0xFF] ^ sw_table[0][w >> 56];
        p += 8;
        n -= 8;
    }
    while (n--)
        c = (c >> 8) ^ sw_table[0][(c ^ *p++) & 0xFF];
    return ~c;
}

#ifdef WM_CRC32C_HAVE_SSE42
/* Byte steps until the pointer is 8-aligned so the wide loads never split a
 * cache line, then 8 bytes per `crc32` instruction. */
__attribute__((target("sse4.2"))) uint32_t wm__crc32c_hw(uint32_t crc, const void *data,
                                                          size_t n)
{
    const uint8_t *p = data;
    uint64_t c = (uint32_t)~crc;
    while (n && ((uintptr_t)p & 7)) {
        c = _mm_crc32_u8((uint32_t)c, *p++);
        n--;
    }
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = _mm_crc32_u64(c, w);
        p += 8;
        n -= 8;
    }
    while (n--)
        c = _mm_crc32_u8((uint32_t)c, *p++);
    return ~(uint32_t)c;
}
#else
uint32_t wm__crc32c_hw(uint32_t crc, const void *data, size_t n)
{
    return wm__crc32c_sw(crc, data, n);
}
#endif

/* 1 when wm_crc32c uses the hardware path on this CPU (for tests and logs). */
int wm__crc32c_hw_available(void)
{
    pthread_once(&init_once, crc32c_init);
    return hw_available;
}

uint32_t wm_crc32c(uint32_t crc, const void *data, size_t n)
{
    crc_fn f = atomic_load_explicit(&crc_impl, memory_order_relaxed);
    return f(crc, data, n);
}
