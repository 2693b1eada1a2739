/*
 * test_buckets.c - daily bucket blobs: aggregates over day ranges, the
 * 90-day horizon, out-of-order and too-old events, exact and estimated
 * distinct counts, the 4 KB bound, expiry and corrupt input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "waymark/error.h"
#include "waymark/rules.h"

static unsigned char blob[WM_BUCKETS_BYTES_MAX];
static size_t len;

static wm_agg_t q(int32_t from, int32_t to)
{
    wm_agg_t a;
    assert_int_equal(wm_buckets_query(blob, len, from, to, &a), 0);
    return a;
}

static void test_basic(void **state)
{
    len = 0;
    wm_agg_t a = q(0, 100000);
    assert_int_equal(a.count, 0);
    assert_true(isnan(a.min));
    assert_int_equal(wm_buckets_add(blob, &len, 20000, 10, NULL), 0);
    assert_int_equal(wm_buckets_add(blob, &len, 20000, 30, NULL), 0);
    assert_int_equal(wm_buckets_add(blob, &len, 20002, -5, NULL), 0);
    assert_int_equal(wm_buckets_add(blob, &len, 20002, NAN, NULL), 0); /* counted only */
    assert_int_equal(wm_buckets_days(blob, len), 2);
    a = q(20000, 20002);
    assert_int_equal(a.count, 4);
    assert_true(a.sum == 35);
    assert_true(a.min == -5 && a.max == 30);
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
    wm_buckets_add(blob, &len, 5, NAN, NULL);
    a = q(5, 5);
    assert_int_equal(a.count, 1);
    assert_true(isnan(a.min) && isnan(a.max) && a.sum == 0);
}

static void test_horizon_and_order(void **state)
{
    len = 0;
    for (int32_t d = 1000; d < 1100; d++)
        assert_int_equal(wm_buckets_add(blob, &len, d, 1, NULL), 0);
    assert_int_equal(wm_buckets_days(blob, len), WM_BUCKET_DAYS);
    assert_int_equal(q(0, 5000).count, WM_BUCKET_DAYS);
    assert_int_equal(q(1000, 1009).count, 0);      /* dropped */
    assert_int_equal(q(1010, 1010).count, 1);      /* oldest kept: newest - 89 */
    /* too old for the horizon: ignored */
    assert_int_equal(wm_buckets_add(blob, &len, 1009, 1, NULL), 0);
    assert_int_equal(q(0, 5000).count, WM_BUCKET_DAYS);
    /* a late event inside the horizon lands on its day */
    len = 0;
    wm_buckets_add(blob, &len, 50, 1, NULL);
    wm_buckets_add(blob, &len, 60, 2, NULL);
    wm_buckets_add(blob, &len, 55, 4, NULL);
    wm_buckets_add(blob, &len, 40, 8, NULL);
    assert_int_equal(wm_buckets_days(blob, len), 4);
    assert_true(q(41, 59).sum == 5);
    assert_true(q(40, 40).sum == 8);
    /* a jump forward drops everything outside the new horizon */
    wm_buckets_add(blob, &len, 140, 16, NULL);
    assert_int_equal(wm_buckets_days(blob, len), 3); /* 55, 60, 140 */
    assert_true(q(0, 1000).sum == 22);
}

static void test_expire(void **state)
{
    len = 0;
    for (int32_t d = 10; d < 20; d++)
        wm_buckets_add(blob, &len, d, d, "v");
    size_t before = len;
    wm_buckets_expire(blob, &len, 15);
    assert_true(len < before);
    assert_int_equal(wm_buckets_days(blob, len), 5);
    assert_int_equal(q(0, 100).count, 5);
    wm_buckets_expire(blob, &len, 100);
    assert_int_equal(wm_buckets_days(blob, len), 0);
    assert_int_equal(q(0, 100).count, 0);
    wm_buckets_add(blob, &len, 7, 1, NULL);
    assert_int_equal(q(0, 100).count, 1);
}

static void test_distinct_exact(void **state)
{
    char v[32];
    len = 0;
    for (int i = 0; i < 8; i++) {
        snprintf(v, sizeof v, "fund%d", i);
        wm_buckets_add(blob, &len, 300, 0, v);
        wm_buckets_add(blob, &len, 300, 0, v); /* repeats do not count */
    }
    assert_int_equal(q(300, 300).distinct, 8);
    assert_int_equal(q(300, 300).count, 16);
    /* the next day repeats four of them and adds two */
    for (int i = 4; i < 10; i++) {
        snprintf(v, sizeof v, "fund%d", i);
        wm_buckets_add(blob, &len, 301, 0, v);
    }
    assert_int_equal(q(301, 301).distinct, 6);
    assert_int_equal(q(300, 301).distinct, 10); /* union, exact */
    assert_int_equal(q(302, 303).distinct, 0);
}

static void test_distinct_estimated(void **state)
{
    char v[32];
    len = 0;
    for (int i = 0; i < 200; i++) {
        snprintf(v, sizeof v, "u%d", i);
        wm_buckets_add(blob, &len, 400, 0, v);
    }
    uint64_t d = q(400, 400).distinct;
    assert_true(d >= 170 && d <= 230); /* linear counting over 512 bits */
    /* the union with an exact day folds into the bitmap */
    wm_buckets_add(blob, &len, 401, 0, "u1");
    wm_buckets_add(blob, &len, 401, 0, "other");
    uint64_t d2 = q(400, 401).distinct;
    assert_true(d2 >= d && d2 <= d + 3);
}

static void test_size_bound(void **state)
{
    char v[32];
    len = 0;
    for (int32_t day = 0; day < 90; day++)
        for (int i = 0; i < 20; i++) {
            snprintf(v, sizeof v, "%d-%d", day, i);
            assert_int_equal(wm_buckets_add(blob, &len, day, 1, v), 0);
            assert_true(len <= WM_BUCKETS_BYTES_MAX);
        }
    int32_t days = wm_buckets_days(blob, len);
    assert_true(days >= 40 && days < 90);
    /* the newest days are the ones kept */
    assert_int_equal(q(89, 89).count, 20);
    assert_int_equal(q(0, 89).count, (uint64_t)days * 20);
    /* count-only counters keep all 90 days */
    len = 0;
    for (int32_t day = 0; day < 90; day++)
        wm_buckets_add(blob, &len, day, 1, NULL);
    assert_int_equal(wm_buckets_days(blob, len), 90);
}

static void test_corrupt(void **state)
{
    wm_agg_t a;
    len = 0;
    for (int32_t d = 0; d < 5; d++)
        wm_buckets_add(blob, &len, d, 1, d % 2 ? "x" : NULL);
    unsigned char save[WM_BUCKETS_BYTES_MAX];
    size_t save_len = len;
    memcpy(save, blob, len);
    /* every truncation is caught */
    for (size_t n = 1; n < save_len; n++) {
        assert_int_equal(wm_buckets_query(save, n, 0, 10, &a), WM_ECORRUPT);
        memcpy(blob, save, save_len);
        size_t l = n;
        assert_int_equal(wm_buckets_add(blob, &l, 3, 1, NULL), WM_ECORRUPT);
        assert_int_equal(l, n);
    }
    /* every single-byte flip either still parses or is rejected */
    for (size_t i = 0; i < save_len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(blob, save, save_len);
            blob[i] ^= (unsigned char)(1u << bit);
            len = save_len;
            int rc = wm_buckets_query(blob, len, 0, 10, &a);
            assert_true(rc == 0 || rc == WM_ECORRUPT);
            rc = wm_buckets_add(blob, &len, 4, 1, "y");
            assert_true(rc == 0 || rc == WM_ECORRUPT);
            assert_true(len <= WM_BUCKETS_BYTES_MAX);
        }
    }
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
        cmocka_unit_test(test_distinct_estimated),
        cmocka_unit_test(test_size_bound),
        cmocka_unit_test(test_corrupt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
