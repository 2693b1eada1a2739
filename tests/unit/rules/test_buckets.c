/*
 * test_buckets.c - daily bucket blobs: aggregates over day ranges, the
 * 90-day horizon, out-of-order and too-old events, exact distinct counts
 * (checked against a brute-force count over the raw events), days that give
 * up their value set when the blob is full, format-1 blobs (read, then
 * rewritten on add), the size bound, expiry and corrupt input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rules/rules_internal.h"
#include "waymark/error.h"
#include "waymark/rules.h"

static unsigned char blob[WM_BUCKETS_BYTES_MAX];
static size_t len;

/* value hashes a blob holds besides its day heads */
#define HEAD_BYTES 36
#define HASH_ROOM(days) ((WM_BUCKETS_BYTES_MAX - 8 - (days) * HEAD_BYTES) / 8)

static wm_agg_t q(int32_t from, int32_t to)
{
    wm_agg_t a;
    assert_int_equal(wm_buckets_query(blob, len, from, to, &a), 0);
    return a;
}

static void add(int32_t day, double value, const char *dv)
{
    assert_int_equal(wm_buckets_add(blob, &len, day, value, dv), 0);
    assert_true(len <= WM_BUCKETS_BYTES_MAX);
}

static void test_basic(void **state)
{
    len = 0;
    wm_agg_t a = q(0, 100000);
    assert_int_equal(a.count, 0);
    assert_true(isnan(a.min));
    assert_true(a.distinct_exact);
    add(20000, 10, NULL);
    add(20000, 30, NULL);
    add(20002, -5, NULL);
    add(20002, NAN, NULL); /* counted only */
    assert_int_equal(wm_buckets_days(blob, len), 2);
    assert_int_equal(blob[2], 2); /* written as format 2 */
    a = q(20000, 20002);
    assert_int_equal(a.count, 4);
    assert_true(a.sum == 35);
    assert_true(a.min == -5 && a.max == 30);
    assert_int_equal(a.distinct, 0);
    assert_true(a.distinct_exact);
    a = q(20000, 20001);
    assert_int_equal(a.count, 2);
    assert_true(a.min == 10 && a.max == 30);
    a = q(20001, 20001);
    assert_int_equal(a.count, 0);
    a = q(20002, 20002);
    assert_int_equal(a.count, 2);
    assert_true(a.sum == -5);
    /* only NaN values in range: min/max not set */
    len = 0;
    add(5, NAN, NULL);
    a = q(5, 5);
    assert_int_equal(a.count, 1);
    assert_true(isnan(a.min) && isnan(a.max) && a.sum == 0);
    /* an empty blob, and a NULL out */
    assert_int_equal(wm_buckets_query(NULL, 0, 0, 1, &a), 0);
    assert_true(a.count == 0 && a.distinct_exact);
    assert_int_equal(wm_buckets_query(blob, len, 0, 1, NULL), WM_EINVAL);
    assert_int_equal(wm_buckets_add(NULL, &len, 0, 1, NULL), WM_EINVAL);
}

static void test_horizon_and_order(void **state)
{
    len = 0;
    for (int32_t d = 1000; d < 1100; d++)
        add(d, 1, NULL);
    assert_int_equal(wm_buckets_days(blob, len), WM_BUCKET_DAYS);
    assert_int_equal(q(0, 5000).count, WM_BUCKET_DAYS);
    assert_int_equal(q(1000, 1009).count, 0); /* dropped */
    assert_int_equal(q(1010, 1010).count, 1); /* oldest kept: newest - 89 */
    /* too old for the horizon: ignored */
    add(1009, 1, NULL);
    assert_int_equal(q(0, 5000).count, WM_BUCKET_DAYS);
    /* a late event inside the horizon lands on its day */
    len = 0;
    add(50, 1, NULL);
    add(60, 2, NULL);
    add(55, 4, NULL);
    add(40, 8, NULL);
    assert_int_equal(wm_buckets_days(blob, len), 4);
    assert_true(q(41, 59).sum == 5);
    assert_true(q(40, 40).sum == 8);
    /* a jump forward drops everything outside the new horizon */
    add(140, 16, NULL);
    assert_int_equal(wm_buckets_days(blob, len), 3); /* 55, 60, 140 */
    assert_true(q(0, 1000).sum == 22);
}

static void test_expire(void **state)
{
    len = 0;
    for (int32_t d = 10; d < 20; d++)
        add(d, d, "v");
    size_t before = len;
    wm_buckets_expire(blob, &len, 15);
    assert_true(len < before);
    assert_int_equal(wm_buckets_days(blob, len), 5);
    assert_int_equal(q(0, 100).count, 5);
    assert_int_equal(q(0, 100).distinct, 1);
    wm_buckets_expire(blob, &len, 100);
    assert_int_equal(wm_buckets_days(blob, len), 0);
    assert_int_equal(q(0, 100).count, 0);
    add(7, 1, NULL);
    assert_int_equal(q(0, 100).count, 1);
}

static void test_distinct_exact(void **state)
{
    char v[32];
    len = 0;
    for (int i = 0; i < 8; i++) {
        snprintf(v, sizeof v, "fund%d", i);
        add(300, 0, v);
        add(300, 0, v); /* repeats do not count */
    }
    assert_int_equal(q(300, 300).distinct, 8);
    assert_int_equal(q(300, 300).count, 16);
    /* the next day repeats four of them and adds two */
    for (int i = 4; i < 10; i++) {
        snprintf(v, sizeof v, "fund%d", i);
        add(301, 0, v);
    }
    assert_int_equal(q(301, 301).distinct, 6);
    assert_int_equal(q(300, 301).distinct, 10); /* union */
    assert_int_equal(q(302, 303).distinct, 0);
    assert_true(q(300, 301).distinct_exact);
}

/* Far more than the old 8-per-day bound: still exact, repeats included. */
static void test_distinct_many(void **state)
{
    char v[32];
    len = 0;
    for (int i = 0; i < 600; i++) {
        snprintf(v, sizeof v, "u%d", i % 200);
        add(400, 0, v);
    }
    wm_agg_t a = q(400, 400);
    assert_int_equal(a.count, 600);
    assert_int_equal(a.distinct, 200);
    assert_true(a.distinct_exact);
    size_t day_len = len;
    add(400, 0, "u7"); /* a repeat adds no bytes */
    assert_int_equal(len, day_len);
    /* the union with the next day counts shared values once */
    add(401, 0, "u1");
    add(401, 0, "other");
    a = q(400, 401);
    assert_int_equal(a.distinct, 201);
    assert_true(a.distinct_exact);
    assert_int_equal(q(401, 401).distinct, 2);
}

/* Every day of the horizon keeps its count when value hashes overflow the
 * blob: the oldest days give up their sets, newest stay exact. */
static void test_size_bound_keeps_days(void **state)
{
    char v[32];
    const int per_day = HASH_ROOM(WM_BUCKET_DAYS) / WM_BUCKET_DAYS + 3;
    const int total = per_day * WM_BUCKET_DAYS;
    /* the fewest oldest days whose sets must go */
    const int gone = (total - HASH_ROOM(WM_BUCKET_DAYS) + per_day - 1) / per_day;
    assert_true(gone > 0 && gone < WM_BUCKET_DAYS - 1);
    len = 0;
    for (int32_t day = 0; day < WM_BUCKET_DAYS; day++)
        for (int i = 0; i < per_day; i++) {
            snprintf(v, sizeof v, "%d-%d", day, i);
            add(day, 1, v);
        }
    assert_int_equal(wm_buckets_days(blob, len), WM_BUCKET_DAYS);
    wm_agg_t a = q(0, WM_BUCKET_DAYS - 1);
    assert_int_equal(a.count, (uint64_t)total);
    assert_true(a.sum == total);
    assert_false(a.distinct_exact);
    assert_int_equal(a.distinct, (uint64_t)(total - gone * per_day)); /* a lower bound */
    for (int32_t day = 0; day < WM_BUCKET_DAYS; day++) {
        a = q(day, day);
        assert_int_equal(a.count, (uint64_t)per_day);
        assert_int_equal(a.distinct, (uint64_t)per_day); /* a dropped day keeps its size */
        assert_true(a.distinct_exact == (day >= gone));
    }
    a = q(gone, WM_BUCKET_DAYS - 1);
    assert_true(a.distinct_exact);
    assert_int_equal(a.distinct, (uint64_t)((WM_BUCKET_DAYS - gone) * per_day));
    /* a dropped day takes no more hashes, but still counts */
    size_t before = len;
    add(0, 1, "late");
    assert_int_equal(len, before);
    assert_int_equal(q(0, 0).count, (uint64_t)per_day + 1);
    assert_false(q(0, 0).distinct_exact);
    /* count-only counters keep all 90 days */
    len = 0;
    for (int32_t day = 0; day < WM_BUCKET_DAYS; day++)
        add(day, 1, NULL);
    assert_int_equal(wm_buckets_days(blob, len), WM_BUCKET_DAYS);
}

/* One day with more values than a blob can hold gives up its own set. */
static void test_day_over_capacity(void **state)
{
    char v[32];
    const int room = HASH_ROOM(1);
    len = 0;
    for (int i = 0; i < room; i++) {
        snprintf(v, sizeof v, "x%d", i);
        add(500, i, v);
    }
    wm_agg_t a = q(500, 500);
    assert_true(a.distinct_exact);
    assert_int_equal(a.distinct, (uint64_t)room);
    assert_int_equal(len, 8 + HEAD_BYTES + (size_t)room * 8);
    add(500, 0, "x0"); /* known: still fits */
    assert_true(q(500, 500).distinct_exact);
    add(500, 0, "one too many");
    a = q(500, 500);
    assert_false(a.distinct_exact);
    assert_int_equal(a.distinct, (uint64_t)room); /* lower bound: the set it had */
    assert_int_equal(a.count, (uint64_t)room + 2);
    assert_int_equal(len, 8 + HEAD_BYTES);
    /* the next day starts exact again */
    add(501, 0, "y");
    add(501, 0, "x1");
    a = q(501, 501);
    assert_true(a.distinct_exact);
    assert_int_equal(a.distinct, 2);
    assert_false(q(500, 501).distinct_exact);
}

/* ---- hand-made blobs ---- */

typedef struct hand {
    unsigned char b[WM_BUCKETS_BYTES_MAX];
    size_t n;
} hand_t;

static void put(hand_t *h, const void *p, size_t n)
{
    assert_true(h->n + n <= sizeof h->b);
    memcpy(h->b + h->n, p, n);
    h->n += n;
}

static void hand_header(hand_t *h, uint8_t version, uint16_t days)
{
    unsigned char hdr[8] = {'W', 'B', version, 0, 0, 0, 0, 0};
    memcpy(hdr + 4, &days, 2);
    h->n = 0;
    put(h, hdr, 8);
}

static void hand_day(hand_t *h, int32_t day, uint32_t count, double sum, double min, double max,
                     uint16_t n, uint8_t mode)
{
    unsigned char d[HEAD_BYTES] = {0};
    memcpy(d, &day, 4);
    memcpy(d + 4, &count, 4);
    memcpy(d + 8, &sum, 8);
    memcpy(d + 16, &min, 8);
    memcpy(d + 24, &max, 8);
    memcpy(d + 32, &n, 2);
    d[34] = mode;
    put(h, d, sizeof d);
}

static void hand_hash(hand_t *h, const char *value)
{
    uint64_t x = wm__stable_hash(value, strlen(value));
    put(h, &x, 8);
}

/* A format-1 blob as the old writer left it: an exact day, a bitmap day
 * (5 bits set), a day without values. */
static void format1_blob(hand_t *h)
{
    hand_header(h, 1, 3);
    hand_day(h, 100, 2, 3, 1, 2, 2, 1);
    hand_hash(h, "b"); /* arrival order, not sorted */
    hand_hash(h, "a");
    hand_day(h, 101, 20, 40, 2, 2, 0, 2);
    unsigned char bm[64] = {0};
    bm[0] = 0x03;
    bm[10] = 0x80;
    bm[63] = 0x11;
    put(h, bm, sizeof bm);
    hand_day(h, 102, 1, 5, 5, 5, 0, 0);
}

static void test_format1_read_and_upgrade(void **state)
{
    hand_t h;
    format1_blob(&h);
    memcpy(blob, h.b, h.n);
    len = h.n;
    assert_int_equal(wm_buckets_days(blob, len), 3);
    wm_agg_t a = q(100, 100);
    assert_true(a.distinct_exact);
    assert_int_equal(a.distinct, 2);
    a = q(101, 101);
    assert_false(a.distinct_exact); /* a bitmap day is inexact */
    assert_int_equal(a.distinct, 5); /* its set bits: a lower bound */
    a = q(100, 102);
    assert_false(a.distinct_exact);
    assert_int_equal(a.distinct, 5);
    assert_int_equal(a.count, 23);
    assert_true(a.sum == 48 && a.min == 1 && a.max == 5);
    assert_true(q(102, 102).distinct_exact);
    /* an add rewrites it as format 2, shorter (the bitmap goes) */
    add(100, 1, "a"); /* already in the day's set */
    assert_int_equal(blob[2], 2);
    assert_int_equal(len, h.n - 64);
    a = q(100, 100);
    assert_int_equal(a.count, 3);
    assert_int_equal(a.distinct, 2);
    assert_true(a.distinct_exact);
    a = q(101, 101);
    assert_false(a.distinct_exact);
    assert_int_equal(a.distinct, 5);
    assert_int_equal(a.count, 20);
    add(102, 1, "c");
    add(102, 1, "a");
    a = q(102, 102);
    assert_true(a.distinct_exact);
    assert_int_equal(a.distinct, 2);
    a = q(100, 102);
    assert_int_equal(a.count, 26);
    assert_int_equal(a.distinct, 5); /* union {a, b, c} = 3 < the bitmap day's 5 */
    a = q(100, 100);
    assert_true(a.distinct_exact);
    add(100, 1, "c");
    assert_int_equal(q(100, 100).distinct, 3);
    assert_int_equal(q(100, 102).count, 27);
    /* expiring a format-1 blob keeps it readable */
    format1_blob(&h);
    memcpy(blob, h.b, h.n);
    len = h.n;
    wm_buckets_expire(blob, &len, 101);
    assert_int_equal(wm_buckets_days(blob, len), 2);
    assert_int_equal(q(0, 200).count, 21);
}

/* ---- brute force ---- */

#define BF_DAYS WM_BUCKET_DAYS
#define BF_BASE 20000
#define BF_POOL 4000
#define BF_PER_DAY_MAX 300

typedef struct bf_event {
    int32_t day;
    double value;   /* NAN: counted only */
    int dv;         /* index into the value pool, -1: no distinct value */
} bf_event_t;

static bf_event_t bf[BF_DAYS * (BF_PER_DAY_MAX + 1)];
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545f4914f6cdd1dull;
}

/* The aggregate of the first n events over [from, to], from scratch. */
static wm_agg_t brute(int n, int32_t from, int32_t to, uint64_t *distinct)
{
    static bool seen[BF_POOL];
    memset(seen, 0, sizeof seen);
    wm_agg_t a;
    memset(&a, 0, sizeof a);
    a.min = NAN;
    a.max = NAN;
    *distinct = 0;
    for (int i = 0; i < n; i++) {
        if (bf[i].day < from || bf[i].day > to)
            continue;
        a.count++;
        if (!isnan(bf[i].value)) {
            a.sum += bf[i].value;
            if (isnan(a.min) || bf[i].value < a.min)
                a.min = bf[i].value;
            if (isnan(a.max) || bf[i].value > a.max)
                a.max = bf[i].value;
        }
        if (bf[i].dv >= 0 && !seen[bf[i].dv]) {
            seen[bf[i].dv] = true;
            (*distinct)++;
        }
    }
    return a;
}

typedef struct tally {
    int exact, inexact;
} tally_t;

static void check_range(int n, int32_t from, int32_t to, tally_t *t)
{
    uint64_t want_distinct;
    wm_agg_t want = brute(n, from, to, &want_distinct);
    wm_agg_t got = q(from, to);
    if (got.count != want.count || got.sum != want.sum || got.distinct > want_distinct ||
        (got.distinct_exact && got.distinct != want_distinct))
        print_error("range [%d, %d] after %d events: count %llu/%llu sum %g/%g distinct %llu/%llu%s\n",
                    from, to, n, (unsigned long long)got.count, (unsigned long long)want.count,
                    got.sum, want.sum, (unsigned long long)got.distinct,
                    (unsigned long long)want_distinct, got.distinct_exact ? "" : " (inexact)");
    assert_int_equal(got.count, want.count);
    assert_true(got.sum == want.sum); /* integer values: sums are exact */
    assert_true(isnan(got.min) == isnan(want.min));
    assert_true(isnan(got.max) == isnan(want.max));
    if (!isnan(want.min))
        assert_true(got.min == want.min && got.max == want.max);
    if (got.distinct_exact) {
        assert_int_equal(got.distinct, want_distinct);
        t->exact++;
    } else {
        assert_true(got.distinct <= want_distinct); /* a lower bound */
        t->inexact++;
    }
}

static void random_range(int n, tally_t *t)
{
    int32_t from = BF_BASE - 5 + (int32_t)(rnd() % (BF_DAYS + 10));
    int32_t to = from + (int32_t)(rnd() % 40) - 2; /* sometimes empty */
    check_range(n, from, to, t);
}

/* Pseudo-random events (fixed seed): 0..300 a day over 90 days, values
 * drawn from a pool so that days share them, some late events, some
 * without a number or a distinct value. */
static int bf_generate(void)
{
    int n = 0;
    for (int32_t d = 0; d < BF_DAYS; d++) {
        int k = (int)(rnd() % (BF_PER_DAY_MAX + 1));
        for (int i = 0; i < k; i++) {
            bf_event_t *e = &bf[n++];
            e->day = BF_BASE + d;
            if (rnd() % 20 == 0) /* late: lands on an earlier day */
                e->day -= (int32_t)(rnd() % (uint64_t)(d + 1));
            e->value = rnd() % 10 == 0 ? NAN : (double)(int)(rnd() % 2001) - 1000;
            e->dv = rnd() % 25 == 0 ? -1 : (int)(rnd() % BF_POOL);
        }
    }
    return n;
}

static void test_random_vs_brute_force(void **state)
{
    int n = bf_generate();
    tally_t t = {0, 0};
    char v[16];
    len = 0;
    int32_t last_day = BF_BASE;
    for (int i = 0; i < n; i++) {
        const char *dv = NULL;
        if (bf[i].dv >= 0) {
            snprintf(v, sizeof v, "v%d", bf[i].dv);
            dv = v;
        }
        add(bf[i].day, bf[i].value, dv);
        /* mid-stream: a few ranges every time the stream reaches a new day */
        if (i + 1 < n && bf[i + 1].day > last_day) {
            last_day = bf[i + 1].day;
            for (int k = 0; k < 8; k++)
                random_range(i + 1, &t);
        }
    }
    for (int k = 0; k < 1000; k++)
        random_range(n, &t);
    /* every single day and every suffix up to today */
    for (int32_t d = BF_BASE; d < BF_BASE + BF_DAYS; d++) {
        check_range(n, d, d, &t);
        check_range(n, d, BF_BASE + BF_DAYS - 1, &t);
    }
    assert_true(len <= WM_BUCKETS_BYTES_MAX);
    /* both paths ran: the blob cannot hold ~13,000 hashes */
    assert_true(t.exact > 100);
    assert_true(t.inexact > 100);
    /* the newest day is always exact */
    assert_true(q(BF_BASE + BF_DAYS - 1, BF_BASE + BF_DAYS - 1).distinct_exact);
}

/* ---- corrupt input ---- */

/* Truncations are caught; single-bit flips either parse or are rejected,
 * and an add never leaves more than the bound. */
static void damage(const unsigned char *save, size_t save_len)
{
    wm_agg_t a;
    for (size_t n = 1; n < save_len; n++) {
        assert_int_equal(wm_buckets_query(save, n, 0, 1000, &a), WM_ECORRUPT);
        memcpy(blob, save, save_len);
        size_t l = n;
        assert_int_equal(wm_buckets_add(blob, &l, 3, 1, NULL), WM_ECORRUPT);
        assert_int_equal(l, n);
        assert_int_equal(memcmp(blob, save, save_len), 0); /* left unchanged */
    }
    for (size_t i = 0; i < save_len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(blob, save, save_len);
            blob[i] ^= (unsigned char)(1u << bit);
            len = save_len;
            int rc = wm_buckets_query(blob, len, 0, 1000, &a);
            assert_true(rc == 0 || rc == WM_ECORRUPT);
            rc = wm_buckets_add(blob, &len, 104, 1, "y");
            assert_true(rc == 0 || rc == WM_ECORRUPT);
            assert_true(len <= WM_BUCKETS_BYTES_MAX);
            if (rc == 0)
                assert_int_equal(wm_buckets_query(blob, len, INT32_MIN, INT32_MAX, &a), 0);
        }
    }
}

static void test_corrupt(void **state)
{
    wm_agg_t a;
    unsigned char save[WM_BUCKETS_BYTES_MAX];
    /* a format-2 blob from the writer */
    len = 0;
    for (int32_t d = 100; d < 105; d++) {
        add(d, 1, d % 2 ? "x" : NULL);
        add(d, 2, d % 2 ? "z" : NULL);
    }
    size_t save_len = len;
    memcpy(save, blob, len);
    damage(save, save_len);
    /* a hand-made format-2 blob with an inexact day */
    hand_t h;
    hand_header(&h, 2, 2);
    hand_day(&h, 100, 9, 9, 1, 1, 7, 2);
    uint64_t lo = 5, hi = 9;
    hand_day(&h, 101, 2, 2, 1, 1, 2, 1);
    put(&h, &lo, 8);
    put(&h, &hi, 8);
    assert_int_equal(wm_buckets_query(h.b, h.n, 0, 1000, &a), 0);
    assert_false(a.distinct_exact);
    assert_int_equal(a.distinct, 7);
    assert_int_equal(wm_buckets_query(h.b, h.n, 101, 101, &a), 0);
    assert_int_equal(a.distinct, 2);
    damage(h.b, h.n);
    /* a format-1 blob */
    format1_blob(&h);
    damage(h.b, h.n);
    /* heads that break the rules of their format */
    const struct {
        uint8_t version, mode;
        uint16_t n;
    } bad[] = {{2, 0, 1}, {2, 1, 0}, {2, 2, 0}, {2, 3, 0}, {1, 1, 9}, {1, 2, 1}, {3, 0, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hand_header(&h, bad[i].version, 1);
        hand_day(&h, 7, 1, 1, 1, 1, bad[i].n, bad[i].mode);
        for (uint16_t k = 0; k < bad[i].n; k++)
            hand_hash(&h, "p");
        assert_int_equal(wm_buckets_query(h.b, h.n, 0, 10, &a), WM_ECORRUPT);
    }
    /* days out of order */
    hand_header(&h, 2, 2);
    hand_day(&h, 8, 1, 1, 1, 1, 0, 0);
    hand_day(&h, 8, 1, 1, 1, 1, 0, 0);
    assert_int_equal(wm_buckets_query(h.b, h.n, 0, 10, &a), WM_ECORRUPT);
    /* expire empties a corrupt blob */
    memcpy(blob, save, save_len);
    blob[0] = 'X';
    len = save_len;
    wm_buckets_expire(blob, &len, 0);
    assert_int_equal(len, 0);
    assert_int_equal(wm_buckets_days(save, save_len), 5);
    assert_int_equal(wm_buckets_query(save, WM_BUCKETS_BYTES_MAX + 1, 0, 1, &a), WM_ECORRUPT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_horizon_and_order),
        cmocka_unit_test(test_expire),
        cmocka_unit_test(test_distinct_exact),
        cmocka_unit_test(test_distinct_many),
        cmocka_unit_test(test_size_bound_keeps_days),
        cmocka_unit_test(test_day_over_capacity),
        cmocka_unit_test(test_format1_read_and_upgrade),
        cmocka_unit_test(test_random_vs_brute_force),
        cmocka_unit_test(test_corrupt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
