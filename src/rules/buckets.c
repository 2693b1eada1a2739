/*
 * buckets.c - per-(user, counter) daily aggregates in one small byte blob.
 *
 * Why a blob: "did X >= 3 times in 7 days" is asked per event for every
 * user, so the store keeps one value per (user, counter) that it can read
 * and write whole, and an update must not need the user's event history.
 *
 * Layout (host byte order; Waymark's stores are not moved across
 * architectures):
 *
 *   header  8 bytes   'W' 'B' version=1 0 | u16 n_days | u16 0
 *   day     36 bytes  i32 day | u32 count | f64 sum | f64 min | f64 max
 *                     | u16 n_hashes | u8 mode | u8 0
 *           payload   mode 0: none (no distinct values seen that day)
 *                     mode 1: n_hashes x u64, exact distinct set (<= 8)
 *                     mode 2: 64-byte (512-bit) linear-counting bitmap
 *
 * Days are sparse (only days with events) and strictly ascending. At most
 * WM_BUCKET_DAYS days are kept, counted back from the newest; a blob that
 * would grow past WM_BUCKETS_BYTES_MAX drops its oldest days. Day entries
 * are at most 100 bytes (8 hashes = the bitmap's 64 bytes), so even a
 * distinct counter keeps >= 40 days; a count/sum counter (36 bytes/day)
 * keeps all 90.
 *
 * Distinct: exact while every day in the range holds <= 8 values (the union
 * is exact too); once a day overflows it becomes a bitmap and a range that
 * touches it is estimated by linear counting, n = -m ln(zero bits / m) with
 * m = 512: a few percent error up to ~1,000 values, saturating at ~3,200.
 *
 * Every read bounds-checks the whole blob first (it comes from storage);
 * a corrupt blob is an error, never a crash. Adds cost O(days kept): one
 * validating walk of at most 90 fixed-size heads plus a memmove.
 */
#include <math.h>
#include <string.h>

#include "rules/rules_internal.h"
#include "waymark/error.h"
#include "waymark/limits.h"
#include "waymark/rules.h"

#define HDR 8
#define HEAD 36
#define BITMAP_BYTES 64
#define BITMAP_BITS (BITMAP_BYTES * 8)

enum { MODE_NONE = 0, MODE_EXACT = 1, MODE_BITMAP = 2 };

/* field offsets inside a day head */
enum { F_DAY = 0, F_COUNT = 4, F_SUM = 8, F_MIN = 16, F_MAX = 24, F_ND = 32, F_MODE = 34 };

typedef struct layout {
    uint32_t n;
    uint32_t off[WM_BUCKET_DAYS + 1]; /* off[n] = end */
} layout_t;

static int32_t rd_i32(const unsigned char *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint32_t rd_u32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint16_t rd_u16(const unsigned char *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static double rd_f64(const unsigned char *p)
{
    double v;
    memcpy(&v, p, 8);
    return v;
}

static void wr_u16(unsigned char *p, uint16_t v) { memcpy(p, &v, 2); }
static void wr_u32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void wr_i32(unsigned char *p, int32_t v) { memcpy(p, &v, 4); }
static void wr_f64(unsigned char *p, double v) { memcpy(p, &v, 8); }

static size_t payload_bytes(const unsigned char *head)
{
    uint8_t mode = head[F_MODE];
    if (mode == MODE_EXACT)
        return (size_t)rd_u16(head + F_ND) * 8;
    return mode == MODE_BITMAP ? BITMAP_BYTES : 0;
}

static bool head_ok(const unsigned char *h)
{
    uint8_t mode = h[F_MODE];
    uint16_t nd = rd_u16(h + F_ND);
    if (mode == MODE_EXACT)
        return nd >= 1 && nd <= WM_BUCKETS_DISTINCT_EXACT;
    return (mode == MODE_NONE || mode == MODE_BITMAP) && nd == 0;
}

/* Validates the whole blob and records where each day starts. */
static bool parse(const unsigned char *b, size_t len, layout_t *L)
{
    if (len < HDR || len > WM_BUCKETS_BYTES_MAX || b[0] != 'W' || b[1] != 'B' || b[2] != 1)
        return false;
    uint16_t n = rd_u16(b + 4);
    if (n > WM_BUCKET_DAYS)
        return false;
    size_t off = HDR;
    for (uint32_t i = 0; i < n; i++) {
        if (off + HEAD > len || !head_ok(b + off))
            return false;
        if (i > 0 && rd_i32(b + off) <= rd_i32(b + L->off[i - 1]))
            return false;
        L->off[i] = (uint32_t)off;
        off += HEAD + payload_bytes(b + off);
        if (off > len)
            return false;
    }
    if (off != len)
        return false;
    L->n = n;
    L->off[n] = (uint32_t)len;
    return true;
}

static int32_t day_at(const unsigned char *b, const layout_t *L, uint32_t i)
{
    return rd_i32(b + L->off[i]);
}

/* Removes the first k days. */
static void drop_front(unsigned char *b, size_t *len, layout_t *L, uint32_t k)
{
    if (k == 0)
        return;
    size_t from = L->off[k];
    memmove(b + HDR, b + from, *len - from);
    *len -= from - HDR;
    wr_u16(b + 4, (uint16_t)(L->n - k));
    parse(b, *len, L);
}

static void init_blob(unsigned char *b, size_t *len)
{
    memset(b, 0, HDR);
    b[0] = 'W';
    b[1] = 'B';
    b[2] = 1;
    *len = HDR;
}

static bool exact_has(const unsigned char *head, uint64_t h)
{
    uint16_t nd = rd_u16(head + F_ND);
    for (uint16_t i = 0; i < nd; i++) {
        uint64_t x;
        memcpy(&x, head + HEAD + (size_t)i * 8, 8);
        if (x == h)
            return true;
    }
    return false;
}

/* Bytes the day entry at `head` grows by when h is added to its set. */
static size_t distinct_growth(const unsigned char *head, uint64_t h)
{
    uint8_t mode = head[F_MODE];
    if (mode == MODE_NONE)
        return 8;
    if (mode == MODE_BITMAP || exact_has(head, h))
        return 0;
    return rd_u16(head + F_ND) < WM_BUCKETS_DISTINCT_EXACT ? 8 : 0;
}

static void bitmap_set(unsigned char *bm, uint64_t h)
{
    unsigned bit = (unsigned)(h >> 55); /* top 9 bits: 0..511 */
    bm[bit >> 3] |= (unsigned char)(1u << (bit & 7));
}

/* Adds h to the day at `head`; the caller has made room (distinct_growth). */
static void distinct_add(unsigned char *b, size_t *len, size_t head_off, uint64_t h)
{
    unsigned char *head = b + head_off;
    uint8_t mode = head[F_MODE];
    uint16_t nd = rd_u16(head + F_ND);
    if (mode == MODE_BITMAP) {
        bitmap_set(head + HEAD, h);
        return;
    }
    if (mode == MODE_EXACT && exact_has(head, h))
        return;
    if (mode == MODE_EXACT && nd >= WM_BUCKETS_DISTINCT_EXACT) {
        unsigned char bm[BITMAP_BYTES] = {0};
        for (uint16_t i = 0; i < nd; i++) {
            uint64_t x;
            memcpy(&x, head + HEAD + (size_t)i * 8, 8);
            bitmap_set(bm, x);
        }
        bitmap_set(bm, h);
        memcpy(head + HEAD, bm, BITMAP_BYTES); /* 8 hashes = 64 bytes: same size */
        wr_u16(head + F_ND, 0);
        head[F_MODE] = MODE_BITMAP;
        return;
    }
    size_t at = head_off + HEAD + (size_t)nd * 8;
    memmove(b + at + 8, b + at, *len - at);
    memcpy(b + at, &h, 8);
    *len += 8;
    wr_u16(head + F_ND, (uint16_t)(nd + 1));
    head[F_MODE] = MODE_EXACT;
}

static void stats_add(unsigned char *head, double value)
{
    wr_u32(head + F_COUNT, rd_u32(head + F_COUNT) + 1);
    if (isnan(value))
        return; /* counted, but no numeric contribution */
    wr_f64(head + F_SUM, rd_f64(head + F_SUM) + value);
    if (value < rd_f64(head + F_MIN))
        wr_f64(head + F_MIN, value);
    if (value > rd_f64(head + F_MAX))
        wr_f64(head + F_MAX, value);
}

static void insert_day(unsigned char *b, size_t *len, size_t at, int32_t day)
{
    memmove(b + at + HEAD, b + at, *len - at);
    unsigned char *h = b + at;
    memset(h, 0, HEAD);
    wr_i32(h + F_DAY, day);
    wr_f64(h + F_MIN, INFINITY);
    wr_f64(h + F_MAX, -INFINITY);
    *len += HEAD;
    wr_u16(b + 4, (uint16_t)(rd_u16(b + 4) + 1));
}

/* Index of the first day >= `day` (searched from the newest end: events
 * mostly land on today). */
static uint32_t find_pos(const unsigned char *b, const layout_t *L, int32_t day)
{
    uint32_t i = L->n;
    while (i > 0 && day_at(b, L, i - 1) >= day)
        i--;
    return i;
}

int wm_buckets_add(unsigned char *buf, size_t *len, int32_t day, double value,
                   const char *distinct_value)
{
    if (!buf || !len)
        return WM_EINVAL;
    if (*len == 0)
        init_blob(buf, len);
    layout_t L;
    if (!parse(buf, *len, &L))
        return WM_ECORRUPT;
    int64_t oldest_kept = (int64_t)day - WM_BUCKET_DAYS + 1;
    if (L.n && (int64_t)day <= (int64_t)day_at(buf, &L, L.n - 1) - WM_BUCKET_DAYS)
        return 0; /* older than anything kept: ignored */
    uint32_t k = 0;
    while (k < L.n && day_at(buf, &L, k) < oldest_kept)
        k++;
    drop_front(buf, len, &L, k);

    uint64_t h = distinct_value ? wm__stable_hash(distinct_value, strlen(distinct_value)) : 0;
    for (;;) {
        uint32_t i = find_pos(buf, &L, day);
        bool found = i < L.n && day_at(buf, &L, i) == day;
        size_t growth;
        if (found)
            growth = distinct_value ? distinct_growth(buf + L.off[i], h) : 0;
        else
            growth = HEAD + (distinct_value ? 8 : 0);
        if (*len + growth <= WM_BUCKETS_BYTES_MAX) {
            if (!found)
                insert_day(buf, len, L.off[i], day);
            size_t head_off = L.off[i];
            stats_add(buf + head_off, value);
            if (distinct_value)
                distinct_add(buf, len, head_off, h);
            return 0;
        }
        if (i == 0)
            return 0; /* the new day would be the oldest: it is what gets dropped */
        drop_front(buf, len, &L, 1);
    }
}

/* Distinct union over days: exact hashes in a small open-addressed set,
 * bitmaps OR-ed; the set folds into the bitmap when any bitmap is seen. */
#define SET_SLOTS 1024 /* > 4096 / 8 hashes a blob can hold, so never full */

typedef struct dunion {
    uint64_t set[SET_SLOTS];
    uint32_t n_exact;
    bool any_bitmap;
    unsigned char bm[BITMAP_BYTES];
} dunion_t;

static void union_hash(dunion_t *u, uint64_t h)
{
    uint64_t key = h ? h : 1;
    uint32_t s = (uint32_t)(key & (SET_SLOTS - 1));
    while (u->set[s] && u->set[s] != key)
        s = (s + 1) & (SET_SLOTS - 1);
    if (!u->set[s]) {
        u->set[s] = key;
        u->n_exact++;
    }
    bitmap_set(u->bm, h);
}

static void union_day(dunion_t *u, const unsigned char *head)
{
    if (head[F_MODE] == MODE_BITMAP) {
        u->any_bitmap = true;
        for (int i = 0; i < BITMAP_BYTES; i++)
            u->bm[i] |= head[HEAD + i];
        return;
    }
    uint16_t nd = head[F_MODE] == MODE_EXACT ? rd_u16(head + F_ND) : 0;
    for (uint16_t i = 0; i < nd; i++) {
        uint64_t x;
        memcpy(&x, head + HEAD + (size_t)i * 8, 8);
        union_hash(u, x);
    }
}

static uint64_t union_count(const dunion_t *u)
{
    if (!u->any_bitmap)
        return u->n_exact;
    int zeros = 0;
    for (int i = 0; i < BITMAP_BYTES; i++)
        zeros += 8 - __builtin_popcount(u->bm[i]);
    double m = BITMAP_BITS;
    double est = zeros ? -m * log(zeros / m) : m * log(m);
    uint64_t n = (uint64_t)(est + 0.5);
    return n < u->n_exact ? u->n_exact : n;
}

int wm_buckets_query(const unsigned char *buf, size_t len, int32_t from_day, int32_t to_day,
                     wm_agg_t *out)
{
    if (!out)
        return WM_EINVAL;
    memset(out, 0, sizeof *out);
    out->min = NAN;
    out->max = NAN;
    if (!buf || len == 0)
        return 0;
    layout_t L;
    if (!parse(buf, len, &L))
        return WM_ECORRUPT;
    dunion_t u; /* 8 KB: cleared only when a day in range has distinct values */
    bool u_used = false;
    double mn = INFINITY, mx = -INFINITY;
    for (uint32_t i = 0; i < L.n; i++) {
        const unsigned char *h = buf + L.off[i];
        int32_t d = rd_i32(h + F_DAY);
        if (d < from_day || d > to_day)
            continue;
        out->count += rd_u32(h + F_COUNT);
        out->sum += rd_f64(h + F_SUM);
        double a = rd_f64(h + F_MIN), z = rd_f64(h + F_MAX);
        if (a < mn)
            mn = a;
        if (z > mx)
            mx = z;
        if (h[F_MODE] != MODE_NONE) {
            if (!u_used)
                memset(&u, 0, sizeof u);
            u_used = true;
            union_day(&u, h);
        }
    }
    if (mn <= mx) {
        out->min = mn;
        out->max = mx;
    }
    out->distinct = u_used ? union_count(&u) : 0;
    return 0;
}

void wm_buckets_expire(unsigned char *buf, size_t *len, int32_t min_day)
{
    if (!buf || !len || *len == 0)
        return;
    layout_t L;
    if (!parse(buf, *len, &L)) {
        *len = 0; /* a corrupt blob is worth nothing: start over */
        return;
    }
    uint32_t k = 0;
    while (k < L.n && day_at(buf, &L, k) < min_day)
        k++;
    drop_front(buf, len, &L, k);
}

int32_t wm_buckets_days(const unsigned char *buf, size_t len)
{
    layout_t L;
    if (!buf || len == 0)
        return 0;
    return parse(buf, len, &L) ? (int32_t)L.n : WM_ECORRUPT;
}
