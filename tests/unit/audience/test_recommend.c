/*
 * test_recommend.c - product recommendations: risk levels are read exactly;
 * the hard rules (suitability, held products, n, determinism) hold over
 * random inputs and the ranking there matches a naive re-computation of the
 * documented formula; each signal (views, category, co-purchase,
 * popularity) wins where docs/recommendations.md says it does, with the
 * reason an advisor reads; bad input and out-of-memory fail cleanly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "waymark/alloc.h"
#include "waymark/audience.h"
#include "waymark/error.h"
#include "waymark/limits.h"

#define DAY 86400000LL
#define NOW 1773144000000LL

static const char *const REASON_CODES[] = {"viewed", "co_purchase", "same_category", "popular"};

static wm_rec_input_t input(const wm_rec_item_t *items, uint32_t n_items, int user_risk, uint32_t n)
{
    wm_rec_input_t in;
    memset(&in, 0, sizeof in);
    in.items = items;
    in.n_items = n_items;
    in.user_risk = user_risk;
    in.n = n;
    in.now_ms = NOW;
    return in;
}

/* Runs wm_recommend expecting success; returns the result count. */
static uint32_t run(const wm_rec_input_t *in, wm_rec_result_t *out)
{
    uint32_t n = 12345;
    assert_int_equal(wm_recommend(in, out, &n), 0);
    assert_true(n <= WM_REC_MAX);
    return n;
}

/* ---- risk levels ---- */

static int level_of_text(const char *json)
{
    wm_arena_t a;
    wm_arena_init(&a, 4096);
    wm_json_t *v = NULL;
    assert_int_equal(wm_json_parse(&a, json, strlen(json), &v, NULL), 0);
    int lv = wm_risk_level(v);
    wm_arena_release(&a);
    return lv;
}

static void test_risk_level(void **state)
{
    assert_int_equal(level_of_text("\"C3\""), 3);
    assert_int_equal(level_of_text("\"R3\""), 3);
    assert_int_equal(level_of_text("\"c3\""), 3);
    assert_int_equal(level_of_text("\"r5\""), 5);
    assert_int_equal(level_of_text("\"3\""), 3);
    assert_int_equal(level_of_text("3"), 3);
    assert_int_equal(level_of_text("1"), 1);
    assert_int_equal(level_of_text("5.0"), 5);
    assert_int_equal(level_of_text("\"C1\""), 1);
    /* only 1..5 are levels */
    assert_int_equal(level_of_text("0"), 0);
    assert_int_equal(level_of_text("6"), 0);
    assert_int_equal(level_of_text("-3"), 0);
    assert_int_equal(level_of_text("3.5"), 0);
    assert_int_equal(level_of_text("\"C0\""), 0);
    assert_int_equal(level_of_text("\"C6\""), 0);
    assert_int_equal(level_of_text("\"R33\""), 0);
    assert_int_equal(level_of_text("\"C\""), 0);
    assert_int_equal(level_of_text("\"\""), 0);
    assert_int_equal(level_of_text("\"X3\""), 0);
    assert_int_equal(level_of_text("\"3 \""), 0);
    assert_int_equal(level_of_text("\"C3\\u0000\""), 0);
    assert_int_equal(level_of_text("\"\\u00003\""), 0);
    assert_int_equal(level_of_text("true"), 0);
    assert_int_equal(level_of_text("null"), 0);
    assert_int_equal(level_of_text("[3]"), 0);
    assert_int_equal(level_of_text("{\"risk\":3}"), 0);
    assert_int_equal(wm_risk_level(NULL), 0);
}

/* ---- bad input ---- */

static void test_invalid_input(void **state)
{
    wm_rec_item_t items[] = {{.id = "a", .risk = 1, .buyers = 1}};
    wm_rec_result_t out[4];
    uint32_t n = 7;
    wm_rec_input_t in = input(items, 1, 3, 4);
    assert_int_equal(wm_recommend(NULL, out, &n), WM_EINVAL);
    assert_int_equal(n, 0);
    assert_int_equal(wm_recommend(&in, out, NULL), WM_EINVAL);
    n = 7;
    assert_int_equal(wm_recommend(&in, NULL, &n), WM_EINVAL);
    assert_int_equal(n, 0);

    wm_rec_input_t bad = in;
    bad.items = NULL;
    assert_int_equal(wm_recommend(&bad, out, &n), WM_EINVAL);
    bad = in;
    bad.user_risk = 6;
    assert_int_equal(wm_recommend(&bad, out, &n), WM_EINVAL);
    bad.user_risk = -1;
    assert_int_equal(wm_recommend(&bad, out, &n), WM_EINVAL);
    bad = in;
    bad.n_views = 1;
    assert_int_equal(wm_recommend(&bad, out, &n), WM_EINVAL);
    bad = in;
    bad.n_held = 1;
    assert_int_equal(wm_recommend(&bad, out, &n), WM_EINVAL);
    bad = in;
    bad.n_co = 1;
    assert_int_equal(wm_recommend(&bad, out, &n), WM_EINVAL);

    wm_rec_item_t no_id[] = {{.id = "a", .risk = 1}, {.id = NULL, .risk = 1}};
    bad = input(no_id, 2, 3, 4);
    assert_int_equal(wm_recommend(&bad, out, &n), WM_EINVAL);
    wm_rec_view_t views[] = {{.id = NULL, .time_ms = NOW}};
    bad = in;
    bad.views = views;
    bad.n_views = 1;
    assert_int_equal(wm_recommend(&bad, out, &n), WM_EINVAL);
    const char *held[] = {NULL};
    bad = in;
    bad.held = held;
    bad.n_held = 1;
    assert_int_equal(wm_recommend(&bad, out, &n), WM_EINVAL);
    wm_rec_co_t co[] = {{.from = "a", .to = NULL, .count = 1}};
    bad = in;
    bad.co = co;
    bad.n_co = 1;
    assert_int_equal(wm_recommend(&bad, out, &n), WM_EINVAL);

    /* limits are checked before any element is read */
    bad = in;
    bad.n_items = WM_REC_ITEMS_MAX + 1;
    assert_int_equal(wm_recommend(&bad, out, &n), WM_ELIMIT);
    bad = in;
    bad.views = views;
    bad.n_views = WM_REC_VIEWS_MAX + 1;
    assert_int_equal(wm_recommend(&bad, out, &n), WM_ELIMIT);

    /* n == 0 needs no output buffer */
    in.n = 0;
    assert_int_equal(wm_recommend(&in, NULL, &n), 0);
    assert_int_equal(n, 0);
}

/* ---- hard rules ---- */

static void test_unknown_user_risk_recommends_nothing(void **state)
{
    wm_rec_item_t items[] = {{.id = "a", .risk = 1, .buyers = 100}, {.id = "b", .risk = 2, .buyers = 5}};
    wm_rec_view_t views[] = {{.id = "a", .time_ms = NOW}};
    wm_rec_input_t in = input(items, 2, 0, 10);
    in.views = views;
    in.n_views = 1;
    wm_rec_result_t out[10];
    assert_int_equal(run(&in, out), 0);
    in.user_risk = 1;
    assert_int_equal(run(&in, out), 1);
    assert_string_equal(out[0].id, "a");
}

static void test_suitability_and_unknown_risk(void **state)
{
    wm_rec_item_t items[] = {
        {.id = "r0", .risk = 0, .buyers = 9000},  {.id = "r1", .risk = 1, .buyers = 10},
        {.id = "r2", .risk = 2, .buyers = 20},    {.id = "r3", .risk = 3, .buyers = 30},
        {.id = "r4", .risk = 4, .buyers = 8000},  {.id = "r5", .risk = 5, .buyers = 9999},
        {.id = "rneg", .risk = -1, .buyers = 50}, {.id = "r9", .risk = 9, .buyers = 50},
    };
    wm_rec_view_t views[] = {{.id = "r4", .time_ms = NOW}, {.id = "r0", .time_ms = NOW}};
    wm_rec_input_t in = input(items, 8, 3, 10);
    in.views = views;
    in.n_views = 2;
    wm_rec_result_t out[10];
    assert_int_equal(run(&in, out), 3);
    assert_string_equal(out[0].id, "r3");
    assert_string_equal(out[1].id, "r2");
    assert_string_equal(out[2].id, "r1");
    in.user_risk = 5;
    assert_int_equal(run(&in, out), 5);
    assert_string_equal(out[0].id, "r4"); /* viewed */
    assert_string_equal(out[1].id, "r5");
    assert_int_equal(out[0].risk, 4);
}

static void test_held_excluded_unless_include_held(void **state)
{
    wm_rec_item_t items[] = {{.id = "a", .risk = 2, .buyers = 500},
                             {.id = "b", .risk = 2, .buyers = 50},
                             {.id = "c", .risk = 2, .buyers = 5}};
    const char *held[] = {"a", "zzz"};
    wm_rec_input_t in = input(items, 3, 3, 10);
    in.held = held;
    in.n_held = 2;
    wm_rec_result_t out[10];
    assert_int_equal(run(&in, out), 2);
    assert_string_equal(out[0].id, "b");
    assert_string_equal(out[1].id, "c");
    in.include_held = true;
    assert_int_equal(run(&in, out), 3);
    assert_string_equal(out[0].id, "a");
}

static void test_n_larger_than_candidates_and_cap(void **state)
{
    enum { N = 120 };
    static wm_rec_item_t items[N];
    static char ids[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof ids[i], "f%03d", i);
        items[i] = (wm_rec_item_t){.id = ids[i], .risk = 1 + i % 5, .buyers = (uint64_t)i};
    }
    wm_rec_result_t out[WM_REC_MAX + 20];
    wm_rec_input_t in = input(items, 3, 5, 50);
    assert_int_equal(run(&in, out), 3);
    in.n_items = N;
    in.n = WM_REC_MAX + 20;
    assert_int_equal(run(&in, out), WM_REC_MAX);
    in.n = 7;
    assert_int_equal(run(&in, out), 7);
    in.n = 1;
    assert_int_equal(run(&in, out), 1);
    assert_string_equal(out[0].id, "f119");
    in.n_items = 0;
    in.items = NULL;
    in.n = 5;
    assert_int_equal(run(&in, out), 0);
}

static void test_ties_by_id_and_duplicates(void **state)
{
    wm_rec_item_t items[] = {{.id = "b", .risk = 1, .buyers = 7}, {.id = "c", .risk = 1, .buyers = 7},
                             {.id = "a", .risk = 1, .buyers = 7}, {.id = "b", .risk = 1, .buyers = 900},
                             {.id = "d", .risk = 1, .buyers = 0}, {.id = "e", .risk = 1, .buyers = 0}};
    wm_rec_input_t in = input(items, 6, 1, 10);
    wm_rec_result_t out[10];
    assert_int_equal(run(&in, out), 5); /* the second "b" counts once, as the first */
    assert_string_equal(out[0].id, "a");
    assert_string_equal(out[1].id, "b");
    assert_string_equal(out[2].id, "c");
    assert_string_equal(out[3].id, "d");
    assert_string_equal(out[4].id, "e");
    assert_true(out[0].score == out[1].score && out[1].score == out[2].score);
    assert_true(out[3].score == 0 && out[4].score == 0);
    assert_string_equal(out[3].reason_code, "popular");
    assert_string_equal(out[3].reason, "suitable for risk level C1 (product R1), no buyers yet");
}

/* ---- signals ---- */

static void test_cold_start_most_popular_suitable(void **state)
{
    wm_rec_item_t items[] = {
        {.id = "000011", .name = "稳健债券A", .category = "bond", .risk = 2, .buyers = 340},
        {.id = "000012", .name = "成长股票", .category = "equity", .risk = 4, .buyers = 100000},
        {.id = "000013", .name = "货币基金", .category = "money", .risk = 1, .buyers = 5000},
        {.id = "000014", .category = "mixed", .risk = 3, .buyers = 1},
        {.id = "000015", .category = "bond", .risk = 0, .buyers = 99999},
        {.id = "000016", .category = "mixed", .risk = 3, .buyers = 20},
    };
    wm_rec_input_t in = input(items, 6, 3, 3);
    wm_rec_result_t out[3];
    assert_int_equal(run(&in, out), 3);
    assert_string_equal(out[0].id, "000013");
    assert_string_equal(out[1].id, "000011");
    assert_string_equal(out[2].id, "000016");
    assert_string_equal(out[0].name, "货币基金");
    assert_string_equal(out[0].category, "money");
    assert_int_equal(out[0].risk, 1);
    for (int i = 0; i < 3; i++)
        assert_string_equal(out[i].reason_code, "popular");
    assert_string_equal(out[0].reason, "popular: 5000 buyers");
    assert_string_equal(out[1].reason, "popular: 340 buyers");
    assert_true(out[0].score > out[1].score && out[1].score > out[2].score);
    assert_true(fabs(out[0].score - 0.05) < 1e-12); /* the most popular suitable gets the full weight */
    in.n = 4;
    wm_rec_result_t out4[4];
    assert_int_equal(run(&in, out4), 4);
    assert_string_equal(out4[3].reason, "popular: 1 buyer");
}

static void test_views_beat_popularity(void **state)
{
    wm_rec_item_t items[] = {
        {.id = "hot", .category = "money", .risk = 1, .buyers = 10000000},
        {.id = "niche", .category = "bond", .risk = 2, .buyers = 3},
        {.id = "old", .category = "mixed", .risk = 2, .buyers = 3},
        {.id = "once", .category = "fof", .risk = 2, .buyers = 0},
    };
    /* newest first, as the input is documented */
    wm_rec_view_t views[] = {
        {.id = "once", .time_ms = NOW - 3 * 3600000LL},
        {.id = "niche", .time_ms = NOW - 2 * DAY - 3600000LL},
        {.id = "niche", .time_ms = NOW - 3 * DAY},
        {.id = "niche", .time_ms = NOW - 5 * DAY},
        {.id = "old", .time_ms = NOW - 27 * DAY},
        {.id = "gone", .time_ms = NOW - DAY}, /* not a candidate: ignored */
    };
    wm_rec_input_t in = input(items, 4, 3, 4);
    in.views = views;
    in.n_views = 6;
    wm_rec_result_t out[4];
    assert_int_equal(run(&in, out), 4);
    assert_string_equal(out[0].id, "niche");
    assert_string_equal(out[0].reason_code, "viewed");
    assert_string_equal(out[0].reason, "viewed 3 times, last 2 days ago");
    assert_string_equal(out[1].id, "once");
    assert_string_equal(out[1].reason, "viewed once, today");
    /* a single view 27 days old still outweighs the most popular product */
    assert_string_equal(out[2].id, "old");
    assert_string_equal(out[2].reason, "viewed once, 27 days ago");
    assert_string_equal(out[3].id, "hot");
    assert_string_equal(out[3].reason_code, "popular");

    /* recency: one view today beats two views a month ago */
    wm_rec_item_t two[] = {{.id = "a", .risk = 1}, {.id = "b", .risk = 1}};
    wm_rec_view_t v2[] = {{.id = "b", .time_ms = NOW + 5000}, /* ahead of now: counts as new */
                          {.id = "a", .time_ms = NOW - 30 * DAY},
                          {.id = "a", .time_ms = NOW - 31 * DAY}};
    in = input(two, 2, 1, 2);
    in.views = v2;
    in.n_views = 3;
    assert_int_equal(run(&in, out), 2);
    assert_string_equal(out[0].id, "b");
    assert_string_equal(out[0].reason, "viewed once, today");
    assert_string_equal(out[1].reason, "viewed 2 times, last 30 days ago");
    assert_true(fabs(out[0].score - 0.5) < 1e-12);

    /* the newest view is found whatever the order of the input */
    wm_rec_view_t v3[] = {{.id = "a", .time_ms = NOW - 9 * DAY},
                          {.id = "a", .time_ms = NOW - DAY - 60000},
                          {.id = "a", .time_ms = NOW - 4 * DAY}};
    in.views = v3;
    assert_int_equal(run(&in, out), 2);
    assert_string_equal(out[0].id, "a");
    assert_string_equal(out[0].reason, "viewed 3 times, last yesterday");
}

static void test_same_category(void **state)
{
    wm_rec_item_t items[] = {
        {.id = "000001", .category = "equity", .risk = 5, .buyers = 10},  /* viewed, too risky */
        {.id = "000002", .category = "equity", .risk = 3, .buyers = 2},
        {.id = "000003", .category = "equity", .risk = 2, .buyers = 1},
        {.id = "000004", .category = "bond", .risk = 2, .buyers = 100000},
        {.id = "000005", .category = "bond", .risk = 2, .buyers = 50000},
        {.id = "000006", .category = NULL, .risk = 2, .buyers = 0},
        {.id = "000007", .category = "", .risk = 2, .buyers = 0},
    };
    wm_rec_view_t views[] = {{.id = "000001", .time_ms = NOW - DAY},
                             {.id = "000001", .time_ms = NOW - 2 * DAY},
                             {.id = "000006", .time_ms = NOW - 2 * DAY}};
    wm_rec_input_t in = input(items, 7, 3, 7);
    in.views = views;
    in.n_views = 3;
    wm_rec_result_t out[7];
    assert_int_equal(run(&in, out), 6);
    assert_string_equal(out[0].id, "000006"); /* its own view */
    assert_string_equal(out[1].id, "000002");
    assert_string_equal(out[1].reason_code, "same_category");
    assert_string_equal(out[1].reason, "same category (equity) as 000001 you viewed");
    assert_string_equal(out[2].id, "000003");
    assert_string_equal(out[2].reason_code, "same_category");
    assert_string_equal(out[3].id, "000004");
    assert_string_equal(out[3].reason_code, "popular");
    /* a category without a name links nothing: 000007 does not share 000006's */
    assert_string_equal(out[5].id, "000007");
    assert_true(out[5].score == 0);

    /* a viewed product's own views do not count as category interest in
     * itself; the reason names the other product, the most viewed one */
    wm_rec_item_t eq[] = {{.id = "x", .category = "equity", .risk = 1},
                          {.id = "y", .category = "equity", .risk = 1},
                          {.id = "z", .category = "equity", .risk = 1}};
    wm_rec_view_t v2[] = {{.id = "x", .time_ms = NOW}, {.id = "y", .time_ms = NOW}, {.id = "y", .time_ms = NOW}};
    in = input(eq, 3, 1, 3);
    in.views = v2;
    in.n_views = 3;
    assert_int_equal(run(&in, out), 3);
    assert_string_equal(out[0].id, "y");
    assert_string_equal(out[0].reason, "viewed 2 times, last today");
    assert_string_equal(out[1].id, "x");
    assert_string_equal(out[2].id, "z");
    assert_string_equal(out[2].reason, "same category (equity) as y you viewed");
    double c_z = 3.0, c_x = 2.0; /* z: every view; x: y's two views */
    assert_true(fabs(out[2].score - 0.4 * c_z / (c_z + 2)) < 1e-12);
    assert_true(fabs(out[1].score - (0.5 + 0.4 * c_x / (c_x + 2))) < 1e-12);
}

static void test_co_purchase(void **state)
{
    wm_rec_item_t items[] = {
        {.id = "000001", .category = "bond", .risk = 2, .buyers = 900},  /* held */
        {.id = "000002", .category = "bond", .risk = 2, .buyers = 3},
        {.id = "000003", .category = "mixed", .risk = 3, .buyers = 2},
        {.id = "000004", .category = "money", .risk = 1, .buyers = 100000},
        {.id = "000005", .category = "mixed", .risk = 3, .buyers = 1},
        {.id = "000006", .category = "equity", .risk = 4, .buyers = 1}, /* too risky */
    };
    const char *held[] = {"000001", "000009"};
    wm_rec_co_t co[] = {
        {.from = "000001", .to = "000002", .count = 12},
        {.from = "000009", .to = "000002", .count = 4},
        {.from = "000001", .to = "000003", .count = 1},
        {.from = "000777", .to = "000005", .count = 500}, /* not held: ignored */
        {.from = "000001", .to = "000006", .count = 80},
        {.from = "000001", .to = "000001", .count = 80},  /* itself: ignored */
        {.from = "000001", .to = "000008", .count = 80},  /* not a candidate */
    };
    wm_rec_input_t in = input(items, 6, 3, 10);
    in.held = held;
    in.n_held = 2;
    in.co = co;
    in.n_co = 7;
    wm_rec_result_t out[10];
    assert_int_equal(run(&in, out), 4);
    assert_string_equal(out[0].id, "000002");
    assert_string_equal(out[0].reason_code, "co_purchase");
    assert_string_equal(out[0].reason, "12 customers who hold 000001 also bought it");
    /* N sums every held product's row */
    double n = 16;
    assert_true(out[0].score > 0.5 * n / (n + 5) && out[0].score < 0.5 * n / (n + 5) + 0.05);
    /* one co-buyer outweighs the most popular product */
    assert_string_equal(out[1].id, "000003");
    assert_string_equal(out[1].reason, "1 customer who holds 000001 also bought it");
    assert_string_equal(out[2].id, "000004");
    assert_string_equal(out[3].id, "000005");
    assert_string_equal(out[3].reason_code, "popular");
}

static void test_signals_combine(void **state)
{
    /* a product both viewed and co-purchased outranks one only viewed the
     * same way; the reason is the larger part */
    wm_rec_item_t items[] = {{.id = "a", .risk = 1}, {.id = "b", .risk = 1}};
    wm_rec_view_t views[] = {{.id = "a", .time_ms = NOW}, {.id = "b", .time_ms = NOW}};
    const char *held[] = {"h"};
    wm_rec_co_t co[] = {{.from = "h", .to = "b", .count = 100}};
    wm_rec_input_t in = input(items, 2, 1, 2);
    in.views = views;
    in.n_views = 2;
    in.held = held;
    in.n_held = 1;
    in.co = co;
    in.n_co = 1;
    wm_rec_result_t out[2];
    assert_int_equal(run(&in, out), 2);
    assert_string_equal(out[0].id, "b");
    assert_string_equal(out[0].reason_code, "viewed"); /* 0.5 > 0.476 */
    assert_true(out[0].score > out[1].score);
    co[0].count = 0; /* a zero row is no signal */
    assert_int_equal(run(&in, out), 2);
    assert_string_equal(out[0].id, "a");
    assert_true(out[0].score == out[1].score);
}

static bool valid_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 : (*p & 0xF8) == 0xF0 ? 4 : 0;
        if (!n)
            return false;
        for (int i = 1; i < n; i++)
            if ((p[i] & 0xC0) != 0x80)
                return false;
        p += n;
    }
    return true;
}

static void test_long_reason_stays_utf8(void **state)
{
    char cat[400];
    wm_rec_item_t items[] = {{.id = "a", .category = cat, .risk = 1}, {.id = "b", .category = cat, .risk = 1}};
    wm_rec_view_t views[] = {{.id = "a", .time_ms = NOW}};
    wm_rec_input_t in = input(items, 2, 1, 2);
    in.views = views;
    in.n_views = 1;
    wm_rec_result_t out[2];
    for (int pad = 0; pad < 3; pad++) { /* the cut falls at each byte of a 3-byte character */
        memset(cat, 'x', (size_t)pad);
        cat[pad] = '\0';
        for (int i = 0; i < 100; i++)
            strcat(cat, "股");
        assert_int_equal(run(&in, out), 2);
        assert_string_equal(out[1].id, "b");
        assert_string_equal(out[1].reason_code, "same_category");
        assert_true(strlen(out[1].reason) < sizeof out[1].reason);
        assert_true(strlen(out[1].reason) > sizeof out[1].reason - 5);
        assert_true(valid_utf8(out[1].reason));
        assert_memory_equal(out[1].reason, "same category (", 15);
    }
}

/* ---- random inputs against a naive re-computation of the formula ---- */

#define P_ITEMS 150
#define P_VIEWS 40
#define P_HELD 8
#define P_CO 60

typedef struct rnd_case {
    char ids[P_ITEMS + 20][16];
    wm_rec_item_t items[P_ITEMS];
    wm_rec_view_t views[P_VIEWS];
    const char *held[P_HELD];
    wm_rec_co_t co[P_CO];
    wm_rec_input_t in;
} rnd_case_t;

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

static const char *const CATS[] = {"equity", "bond", "money", "mixed", NULL};

static void random_case(rnd_case_t *c)
{
    uint32_t n_ids = 1 + rnd(P_ITEMS + 10);
    for (uint32_t i = 0; i < n_ids; i++)
        snprintf(c->ids[i], sizeof c->ids[i], "p%03u", i);
    uint32_t n_items = rnd(P_ITEMS + 1);
    for (uint32_t i = 0; i < n_items; i++)
        c->items[i] = (wm_rec_item_t){.id = c->ids[rnd(n_ids)], .category = CATS[rnd(5)],
                                      .risk = (int)rnd(8) - 1, .buyers = rnd(4) ? rnd(1000) : 0};
    uint32_t n_views = rnd(P_VIEWS + 1);
    for (uint32_t i = 0; i < n_views; i++)
        c->views[i] = (wm_rec_view_t){.id = c->ids[rnd(n_ids)], .time_ms = NOW - (int64_t)rnd(60 * 24) * 3600000LL};
    uint32_t n_held = rnd(P_HELD + 1);
    for (uint32_t i = 0; i < n_held; i++)
        c->held[i] = c->ids[rnd(n_ids)];
    uint32_t n_co = rnd(P_CO + 1);
    for (uint32_t i = 0; i < n_co; i++)
        c->co[i] = (wm_rec_co_t){.from = c->ids[rnd(n_ids)], .to = c->ids[rnd(n_ids)], .count = rnd(30)};
    c->in = input(c->items, n_items, (int)rnd(6), 1 + rnd(WM_REC_MAX + 10));
    c->in.views = c->views;
    c->in.n_views = n_views;
    c->in.held = c->held;
    c->in.n_held = n_held;
    c->in.co = c->co;
    c->in.n_co = n_co;
    c->in.include_held = rnd(2);
}

static bool in_list(const char *const *l, uint32_t n, const char *s)
{
    for (uint32_t i = 0; i < n; i++)
        if (!strcmp(l[i], s))
            return true;
    return false;
}

/* First listing of id, or -1. */
static int first_index(const wm_rec_input_t *in, const char *id)
{
    for (uint32_t i = 0; i < in->n_items; i++)
        if (!strcmp(in->items[i].id, id))
            return (int)i;
    return -1;
}

static bool naive_eligible(const wm_rec_input_t *in, uint32_t k)
{
    const wm_rec_item_t *it = &in->items[k];
    return first_index(in, it->id) == (int)k && it->risk >= 1 && it->risk <= in->user_risk &&
           (in->include_held || !in_list(in->held, in->n_held, it->id));
}

static double naive_view_w(const wm_rec_input_t *in, const char *id)
{
    double w = 0;
    for (uint32_t v = 0; v < in->n_views; v++)
        if (!strcmp(in->views[v].id, id))
            w += pow(0.5, (double)(in->now_ms - in->views[v].time_ms) / (7.0 * DAY));
    return w;
}

static double naive_score(const wm_rec_input_t *in, uint32_t k, double b_max)
{
    const wm_rec_item_t *it = &in->items[k];
    double v = naive_view_w(in, it->id), n = 0, c = 0;
    for (uint32_t i = 0; i < in->n_co; i++)
        if (!strcmp(in->co[i].to, it->id) && strcmp(in->co[i].from, it->id) &&
            in_list(in->held, in->n_held, in->co[i].from))
            n += (double)in->co[i].count;
    for (uint32_t q = 0; q < in->n_items; q++) {
        const wm_rec_item_t *o = &in->items[q];
        if (q != k && first_index(in, o->id) == (int)q && it->category && o->category &&
            !strcmp(it->category, o->category))
            c += naive_view_w(in, o->id);
    }
    double pop = b_max > 0 ? 0.05 * log(1 + (double)it->buyers) / log(1 + b_max) : 0;
    return v / (v + 1) + 0.5 * n / (n + 5) + 0.4 * c / (c + 2) + pop;
}

static void check_case(const rnd_case_t *c, const wm_rec_result_t *out, uint32_t n_out)
{
    const wm_rec_input_t *in = &c->in;
    double b_max = 0;
    uint32_t n_eligible = 0;
    for (uint32_t k = 0; k < in->n_items; k++)
        if (naive_eligible(in, k)) {
            n_eligible++;
            if ((double)in->items[k].buyers > b_max)
                b_max = (double)in->items[k].buyers;
        }
    uint32_t want = in->n < WM_REC_MAX ? in->n : WM_REC_MAX;
    if (in->user_risk == 0)
        want = 0;
    assert_int_equal(n_out, want < n_eligible ? want : n_eligible);
    bool picked[P_ITEMS] = {false};
    for (uint32_t i = 0; i < n_out; i++) {
        const wm_rec_result_t *r = &out[i];
        assert_true(r->risk >= 1 && r->risk <= in->user_risk);
        int k = first_index(in, r->id);
        assert_true(k >= 0 && naive_eligible(in, (uint32_t)k));
        assert_ptr_equal(r->id, in->items[k].id); /* points into the input */
        assert_int_equal(r->risk, in->items[k].risk);
        assert_false(picked[k]);
        picked[k] = true;
        if (!in->include_held)
            assert_false(in_list(in->held, in->n_held, r->id));
        assert_true(fabs(r->score - naive_score(in, (uint32_t)k, b_max)) < 1e-9);
        assert_true(in_list(REASON_CODES, 4, r->reason_code));
        assert_true(r->reason[0] != '\0');
        if (i > 0) {
            assert_true(out[i - 1].score >= r->score);
            if (out[i - 1].score == r->score)
                assert_true(strcmp(out[i - 1].id, r->id) < 0);
        }
    }
    /* nothing left out scores above the last one returned */
    for (uint32_t k = 0; n_out && k < in->n_items; k++)
        if (naive_eligible(in, k) && !picked[k])
            assert_true(naive_score(in, k, b_max) <= out[n_out - 1].score + 1e-9);
}

static void test_property_random_inputs(void **state)
{
    static rnd_case_t c;
    static wm_rec_result_t out[WM_REC_MAX + 10], again[WM_REC_MAX + 10];
    rng_state = 0x5eed2026u;
    uint32_t nonempty = 0;
    for (int iter = 0; iter < 1500; iter++) {
        random_case(&c);
        uint32_t n = run(&c.in, out);
        check_case(&c, out, n);
        nonempty += n > 0;
        /* deterministic: the same input gives the same answer */
        assert_int_equal(run(&c.in, again), n);
        for (uint32_t i = 0; i < n; i++) {
            assert_ptr_equal(again[i].id, out[i].id);
            assert_true(again[i].score == out[i].score);
            assert_string_equal(again[i].reason, out[i].reason);
        }
    }
    assert_true(nonempty > 500); /* the generator exercises the ranking */
}

/* ---- scale and out-of-memory ---- */

static void test_many_candidates(void **state)
{
    enum { N = 20000 };
    wm_rec_item_t *items = malloc(N * sizeof *items);
    char (*ids)[16] = malloc(N * sizeof *ids);
    assert_non_null(items);
    assert_non_null(ids);
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof ids[i], "%06d", i);
        items[i] = (wm_rec_item_t){.id = ids[i], .category = CATS[i % 4], .risk = 1 + i % 5,
                                   .buyers = (uint64_t)(i * 7919) % 10007};
    }
    wm_rec_view_t views[] = {{.id = "012345", .time_ms = NOW - DAY}};
    wm_rec_input_t in = input(items, N, 3, WM_REC_MAX);
    in.views = views;
    in.n_views = 1;
    wm_rec_result_t out[WM_REC_MAX];
    assert_int_equal(run(&in, out), WM_REC_MAX);
    assert_string_equal(out[0].id, "012345"); /* risk 1 + 12345 % 5 = 1 */
    for (uint32_t i = 1; i < WM_REC_MAX; i++) {
        assert_true(out[i].risk <= 3);
        assert_string_equal(out[i].reason_code, "same_category");
        assert_string_equal(out[i].category, CATS[12345 % 4]);
    }
    free(items);
    free(ids);
}

static void test_out_of_memory(void **state)
{
    wm_rec_item_t items[] = {{.id = "a", .category = "bond", .risk = 1, .buyers = 5},
                             {.id = "b", .category = "bond", .risk = 2, .buyers = 50}};
    wm_rec_view_t views[] = {{.id = "a", .time_ms = NOW}};
    const char *held[] = {"h"};
    wm_rec_co_t co[] = {{.from = "h", .to = "b", .count = 3}};
    wm_rec_input_t in = input(items, 2, 2, 2);
    in.views = views;
    in.n_views = 1;
    in.held = held;
    in.n_held = 1;
    in.co = co;
    in.n_co = 1;
    wm_rec_result_t out[2];
    int fails = 0;
    for (long k = 0; k < 100; k++) {
        uint32_t n = 9;
        wm_alloc_fail_after(k);
        int rc = wm_recommend(&in, out, &n);
        wm_alloc_fail_after(-1);
        if (rc == 0) {
            assert_int_equal(n, 2);
            break;
        }
        assert_int_equal(rc, WM_ENOMEM);
        assert_int_equal(n, 0);
        fails++;
    }
    assert_true(fails >= 3);
    uint32_t n = 0;
    assert_int_equal(wm_recommend(&in, out, &n), 0);
    assert_int_equal(n, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_risk_level),
        cmocka_unit_test(test_invalid_input),
        cmocka_unit_test(test_unknown_user_risk_recommends_nothing),
        cmocka_unit_test(test_suitability_and_unknown_risk),
        cmocka_unit_test(test_held_excluded_unless_include_held),
        cmocka_unit_test(test_n_larger_than_candidates_and_cap),
        cmocka_unit_test(test_ties_by_id_and_duplicates),
        cmocka_unit_test(test_cold_start_most_popular_suitable),
        cmocka_unit_test(test_views_beat_popularity),
        cmocka_unit_test(test_same_category),
        cmocka_unit_test(test_co_purchase),
        cmocka_unit_test(test_signals_combine),
        cmocka_unit_test(test_long_reason_stays_utf8),
        cmocka_unit_test(test_property_random_inputs),
        cmocka_unit_test(test_many_candidates),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
