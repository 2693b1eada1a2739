/*
 * buckets.c - per-(user, counter) daily aggregates in one small byte blob.
 *
 * Why a blob: "did X >= 3 times in 7 days" is asked per event for every
 * user, so the store keeps one value per (user, counter) that it can read
 * and write whole, and an update must not need the user's event history.
 *
 * Layout, format 2 (host byte order; Waymark's stores are not moved across
 * architectures):
 *
 *   header  8 bytes   'W' 'B' version=2 0 | u16 n_days | u16 0
 *   day     36 bytes  i32 day | u32 count | f64 sum | f64 min | f64 max
 *                     | u16 n | u8 mode | u8 0
 *           payload   mode 0 (none):    n = 0, no distinct value that day
 *                     mode 1 (exact):   n >= 1 u64 value hashes, ascending
 *                     mode 2 (inexact): nothing; n >= 1 is a lower bound of
 *                                       the day's distinct values
 *
 * Format 1, written before distinct counts were exact, differs in the
 * payloads only: mode 1 holds at most 8 hashes in arrival order, and mode 2
 * is a 64-byte linear-counting bitmap with n = 0. It is still read (a bitmap
 * day is inexact; its set bits are a lower bound), and the first add
 * rewrites it as format 2 in place, which never makes it longer.
 *
 * Days are sparse (only days with events), strictly ascending and within
 * WM_BUCKET_DAYS of the newest. All 90 heads always fit (3.2 KB of
 * WM_BUCKETS_BYTES_MAX), so no day's count/sum/min/max is ever given up for
 * room: only value hashes are. When a hash does not fit, the oldest day that
 * still has an exact set gives it up and becomes inexact (recent windows
 * are the ones asked most); that may be the day being added to, and an
 * inexact day takes no more hashes.
 *
 * Distinct over a range is the size of the union of its days' sets: exact
 * (up to 64-bit hash collisions, odds ~n^2 / 2^65) when every day in the
 * range is exact. Otherwise the query says so (distinct_exact = false) and
 * gives a lower bound, and eval counts by scanning the events instead.
 *
 * Every read bounds-checks the whole blob first (it comes from storage);
 * a corrupt blob is an error, never a crash. The order of a day's hashes
 * is not relied on for safety: a misordered set can at worst gain a
 * duplicate hash, which the union absorbs. An add costs one validating walk
 * of at most 90 heads, a binary search in the day's set and a memmove of
 * the blob's tail.
 */
#include <assert.h>
#include <math.h>
#include <string.h>

#include "rules/rules_internal.h"
#include "waymark/error.h"
#include "waymark/limits.h"
#include "waymark/rules.h"

#define HDR 8
#define HEAD 36
#define VERSION 2
#define V1_EXACT_MAX 8
#define V1_BITMAP_BYTES 64
/* hashes a blob can hold: one day, nothing else */
#define HASHES_MAX ((WM_BUCKETS_BYTES_MAX - HDR - HEAD) / 8)
/* union table of a query: at most half full */
#define UNION_SLOTS 4096

_Static_assert(HDR + WM_BUCKET_DAYS * HEAD <= WM_BUCKETS_BYTES_MAX,
               "every day head of the horizon fits in a blob");
_Static_assert(HASHES_MAX <= UINT16_MAX, "a day's hash count fits its u16");
_Static_assert(2 * HASHES_MAX <= UNION_SLOTS, "the union table stays half empty");

/* format 1 reads mode 2 as a bitmap day */
enum { MODE_NONE = 0, MODE_EXACT = 1, MODE_INEXACT = 2 };

/* field offsets inside a day head */
enum { F_DAY = 0, F_COUNT = 4, F_SUM = 8, F_MIN = 16, F_MAX = 24, F_ND = 32, F_MODE = 34 };

typedef struct layout {
    uint8_t version;
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

static uint64_t rd_u64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
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
static void wr_u64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static void wr_f64(unsigned char *p, double v) { memcpy(p, &v, 8); }

static size_t payload_bytes(uint8_t version, const unsigned char *head)
{
    if (head[F_MODE] == MODE_EXACT)
        return (size_t)rd_u16(head + F_ND) * 8;
    return head[F_MODE] == MODE_INEXACT && version == 1 ? V1_BITMAP_BYTES : 0;
}

static bool head_ok(uint8_t version, const unsigned char *h)
{
    uint16_t n = rd_u16(h + F_ND);
    switch (h[F_MODE]) {
    case MODE_NONE:
        return n == 0;
    case MODE_EXACT:
        return n >= 1 && (version > 1 || n <= V1_EXACT_MAX);
    case MODE_INEXACT:
        return version > 1 ? n >= 1 : n == 0;
    default:
        return false;
    }
}

/* Validates the whole blob and records where each day starts. */
static bool parse(const unsigned char *b, size_t len, layout_t *L)
{
    if (len < HDR || len > WM_BUCKETS_BYTES_MAX || b[0] != 'W' || b[1] != 'B' ||
        (b[2] != 1 && b[2] != VERSION))
        return false;
    uint8_t version = b[2];
    uint16_t n = rd_u16(b + 4);
    if (n > WM_BUCKET_DAYS)
        return false;
    size_t off = HDR;
    for (uint32_t i = 0; i < n; i++) {
        if (off + HEAD > len || !head_ok(version, b + off))
            return false;
        if (i > 0 && rd_i32(b + off) <= rd_i32(b + L->off[i - 1]))
            return false;
        L->off[i] = (uint32_t)off;
        off += HEAD + payload_bytes(version, b + off);
        if (off > len)
            return false;
    }
    if (off != len)
        return false;
    L->version = version;
    L->n = n;
    L->off[n] = (uint32_t)len;
    return true;
}

static int32_t day_at(const unsigned char *b, const layout_t *L, uint32_t i)
{
    return rd_i32(b + L->off[i]);
}

/* A lower bound of the distinct values of an inexact day. */
static uint64_t inexact_floor(uint8_t version, const unsigned char *head)
{
    if (version > 1)
        return rd_u16(head + F_ND);
    uint64_t bits = 0; /* each set bit of a bitmap stands for at least one value */
    for (int i = 0; i < V1_BITMAP_BYTES; i++)
        bits += (uint64_t)__builtin_popcount(head[HEAD + i]);
    return bits;
}

/* ------------------------------------------------------------ writing */

static void init_blob(unsigned char *b, size_t *len)
{
    memset(b, 0, HDR);
    b[0] = 'W';
    b[1] = 'B';
    b[2] = VERSION;
    *len = HDR;
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

/* Sorts a format-1 set (at most 8 hashes) and drops repeats; returns the
 * new size. */
static uint16_t sort_unique(uint64_t *h, uint16_t n)
{
    for (uint16_t i = 1; i < n; i++) {
        uint64_t x = h[i];
        uint16_t j = i;
        for (; j > 0 && h[j - 1] > x; j--)
            h[j] = h[j - 1];
        h[j] = x;
    }
    uint16_t m = 0;
    for (uint16_t i = 0; i < n; i++)
        if (m == 0 || h[m - 1] != h[i])
            h[m++] = h[i];
    return m;
}

/* Rewrites a format-1 blob as format 2 in place: exact sets sorted, bitmap
 * days inexact with their lower bound. Entries only shrink, so every entry
 * is written at or before where it was read (after copying it out). */
static void upgrade(unsigned char *b, size_t *len, layout_t *L)
{
    size_t w = HDR;
    for (uint32_t i = 0; i < L->n; i++) {
        const unsigned char *r = b + L->off[i];
        unsigned char head[HEAD];
        uint64_t h[V1_EXACT_MAX];
        uint16_t n = 0;
        memcpy(head, r, HEAD);
        if (head[F_MODE] == MODE_EXACT) {
            n = rd_u16(head + F_ND);
            memcpy(h, r + HEAD, (size_t)n * 8);
            n = sort_unique(h, n);
        } else if (head[F_MODE] == MODE_INEXACT) {
            uint64_t floor = inexact_floor(1, r);
            n = floor ? (uint16_t)floor : 1; /* the day had values: at least one */
        }
        wr_u16(head + F_ND, n);
        memcpy(b + w, head, HEAD);
        w += HEAD;
        if (head[F_MODE] == MODE_EXACT) {
            memcpy(b + w, h, (size_t)n * 8);
            w += (size_t)n * 8;
        }
    }
    b[2] = VERSION;
    *len = w;
    parse(b, *len, L);
}

/* Day i gives up its value set and becomes inexact; its n stays as the
 * lower bound. */
static void forget_set(unsigned char *b, size_t *len, layout_t *L, uint32_t i)
{
    size_t at = L->off[i] + HEAD;
    size_t bytes = (size_t)rd_u16(b + L->off[i] + F_ND) * 8;
    memmove(b + at, b + at + bytes, *len - at - bytes);
    *len -= bytes;
    b[L->off[i] + F_MODE] = MODE_INEXACT;
    for (uint32_t k = i + 1; k <= L->n; k++)
        L->off[k] -= (uint32_t)bytes;
}

static uint32_t oldest_exact(const unsigned char *b, const layout_t *L)
{
    uint32_t i = 0;
    while (i < L->n && b[L->off[i] + F_MODE] != MODE_EXACT)
        i++;
    return i;
}

/* Makes `need` more bytes fit by dropping the oldest exact sets, unless
 * that would take day `keep`'s set (then returns false: the caller's add
 * to that day cannot be exact). */
static bool make_room(unsigned char *b, size_t *len, layout_t *L, size_t need, uint32_t keep)
{
    while (*len + need > WM_BUCKETS_BYTES_MAX) {
        uint32_t i = oldest_exact(b, L);
        /* heads alone always fit (static assert above), so a set is left */
        assert(i < L->n);
        forget_set(b, len, L, i);
        if (i == keep)
            return false;
    }
    return true;
}

static void insert_day(unsigned char *b, size_t *len, layout_t *L, uint32_t i, int32_t day)
{
    assert(L->n < WM_BUCKET_DAYS); /* the horizon leaves room for one more */
    size_t at = L->off[i];
    memmove(b + at + HEAD, b + at, *len - at);
    unsigned char *h = b + at;
    memset(h, 0, HEAD);
    wr_i32(h + F_DAY, day);
    wr_f64(h + F_MIN, INFINITY);
    wr_f64(h + F_MAX, -INFINITY);
    *len += HEAD;
    wr_u16(b + 4, (uint16_t)(L->n + 1));
    memmove(&L->off[i + 1], &L->off[i], (L->n + 1 - i) * sizeof L->off[0]);
    L->n++;
    for (uint32_t k = i + 1; k <= L->n; k++)
        L->off[k] += HEAD;
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

/* First position in a day's ascending set whose hash is >= h. */
static uint32_t set_lower_bound(const unsigned char *set, uint32_t n, uint64_t h)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (rd_u64(set + (size_t)mid * 8) < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void distinct_add(unsigned char *b, size_t *len, layout_t *L, uint32_t i, uint64_t h)
{
    const unsigned char *head = b + L->off[i];
    if (head[F_MODE] == MODE_INEXACT)
        return; /* already lost: more values cannot make it exact again */
    uint32_t n = rd_u16(head + F_ND);
    uint32_t pos = set_lower_bound(head + HEAD, n, h);
    if (pos < n && rd_u64(head + HEAD + (size_t)pos * 8) == h)
        return;
    if (!make_room(b, len, L, 8, i))
        return;
    unsigned char *hp = b + L->off[i];
    size_t at = L->off[i] + HEAD + (size_t)pos * 8;
    memmove(b + at + 8, b + at, *len - at);
    wr_u64(b + at, h);
    *len += 8;
    wr_u16(hp + F_ND, (uint16_t)(n + 1));
    hp[F_MODE] = MODE_EXACT;
    for (uint32_t k = i + 1; k <= L->n; k++)
        L->off[k] += 8;
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
    int64_t newest = L.n && day_at(buf, &L, L.n - 1) > day ? day_at(buf, &L, L.n - 1) : day;
    int64_t oldest_kept = newest - WM_BUCKET_DAYS + 1;
    if (day < oldest_kept)
        return 0; /* older than the horizon: ignored */
    if (L.version == 1)
        upgrade(buf, len, &L);
    uint32_t k = 0;
    while (k < L.n && day_at(buf, &L, k) < oldest_kept)
        k++;
    drop_front(buf, len, &L, k);
    /* now every day is in [oldest_kept, newest]: with `day` new, at most
     * WM_BUCKET_DAYS - 1 others, so its head finds room */
    uint32_t i = find_pos(buf, &L, day);
    if (i == L.n || day_at(buf, &L, i) != day) {
        make_room(buf, len, &L, HEAD, UINT32_MAX);
        insert_day(buf, len, &L, i, day);
    }
    stats_add(buf + L.off[i], value);
    if (distinct_value)
        distinct_add(buf, len, &L, i, wm__stable_hash(distinct_value, strlen(distinct_value)));
    return 0;
}

/* ------------------------------------------------------------ reading */

/* Union table of wm_buckets_query: per thread (eval allocates nothing and
 * keeps its stack small); each query clears the part it uses. */
static _Thread_local uint64_t union_slot[UNION_SLOTS];

static void add_set(wm__hset_t *u, const unsigned char *head)
{
    uint16_t n = rd_u16(head + F_ND);
    for (uint16_t k = 0; k < n; k++)
        (void)wm__hset_add(u, rd_u64(head + HEAD + (size_t)k * 8)); /* never full */
}

/* Size of the union of the exact sets of days [a, z). */
static uint64_t union_size(const unsigned char *b, const layout_t *L, uint32_t a, uint32_t z,
                           uint32_t hashes)
{
    if (hashes == 0)
        return 0;
    uint32_t slots = 16;
    while (slots < 2 * hashes)
        slots *= 2;
    memset(union_slot, 0, (size_t)slots * sizeof union_slot[0]);
    wm__hset_t u;
    wm__hset_init(&u, union_slot, slots, NULL, slots / 2);
    for (uint32_t i = a; i < z; i++)
        if (b[L->off[i] + F_MODE] == MODE_EXACT)
            add_set(&u, b + L->off[i]);
    return wm__hset_count(&u);
}

int wm_buckets_query(const unsigned char *buf, size_t len, int32_t from_day, int32_t to_day,
                     wm_agg_t *out)
{
    if (!out)
        return WM_EINVAL;
    memset(out, 0, sizeof *out);
    out->min = NAN;
    out->max = NAN;
    out->distinct_exact = true;
    if (!buf || len == 0)
        return 0;
    layout_t L;
    if (!parse(buf, len, &L))
        return WM_ECORRUPT;
    uint32_t a = 0;
    while (a < L.n && day_at(buf, &L, a) < from_day)
        a++;
    uint32_t z = a;
    double mn = INFINITY, mx = -INFINITY;
    uint32_t hashes = 0;
    uint64_t floor = 0;
    for (; z < L.n && day_at(buf, &L, z) <= to_day; z++) {
        const unsigned char *h = buf + L.off[z];
        out->count += rd_u32(h + F_COUNT);
        out->sum += rd_f64(h + F_SUM);
        double lo = rd_f64(h + F_MIN), hi = rd_f64(h + F_MAX);
        if (lo < mn)
            mn = lo;
        if (hi > mx)
            mx = hi;
        if (h[F_MODE] == MODE_EXACT)
            hashes += rd_u16(h + F_ND);
        if (h[F_MODE] == MODE_INEXACT) {
            out->distinct_exact = false;
            uint64_t f = inexact_floor(L.version, h);
            if (f > floor)
                floor = f;
        }
    }
    if (mn <= mx) {
        out->min = mn;
        out->max = mx;
    }
    uint64_t u = union_size(buf, &L, a, z, hashes);
    out->distinct = u > floor ? u : floor;
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
