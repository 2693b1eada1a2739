/*
 * test_native.c - native ingest: JSON array and NDJSON bodies, per-line
 * errors naming the line, event_id -> message_id.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "waymark/error.h"
#include "waymark/ingest.h"

static wm_arena_t arena;
static const wm_rec_ctx_t ctx = {.project = "imp", .receive_time_ms = 1700000000000};

static int setup(void **state)
{
    (void)state;
    wm_arena_init(&arena, 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    wm_arena_release(&arena);
    return 0;
}

static void test_ndjson(void **state)
{
    (void)state;
    const char *body =
        "{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"d1\",\"event_id\":\"e-1\"}\n"
        "\n"
        "   \r\n"
        "{\"type\":\"track\",\"event\":\"B\",\"distinct_id\":\"d2\"\n"
        "{\"type\":\"profile_set\",\"distinct_id\":\"d3\",\"properties\":{\"x\":1}}\r\n"
        "{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"d4\",\"event_id\":5}\n"
        "{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"\"}";
    wm_batch_t b;
    char msg[256];
    assert_int_equal(wm_native_decode(&arena, body, strlen(body), &ctx, &b, msg, sizeof msg), 0);
    assert_int_equal(b.n, 5);
    assert_int_equal(b.n_ok, 2);
    assert_string_equal(b.records[0].message_id, "e-1");
    assert_string_equal(b.records[0].project, "imp");
    assert_string_equal(b.errors[1].code, "invalid_json");
    assert_non_null(strstr(b.errors[1].msg, "line 4"));
    assert_null(b.errors[2].code);
    assert_int_equal(b.records[2].type, WM_REC_PROFILE_SET);
    assert_string_equal(b.errors[3].code, "invalid_type");
    assert_string_equal(b.errors[3].field, "event_id");
    assert_string_equal(b.errors[4].code, "invalid_value");
    assert_string_equal(b.errors[4].field, "distinct_id");
    assert_true(strncmp(b.errors[4].msg, "line 7: ", 8) == 0);
}

static void test_array(void **state)
{
    (void)state;
    const char *body = " [{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"d1\",\"event_id\":\"x\"},"
                       "{\"type\":\"nope\"}]";
    wm_batch_t b;
    char msg[256];
    assert_int_equal(wm_native_decode(&arena, body, strlen(body), &ctx, &b, msg, sizeof msg), 0);
    assert_int_equal(b.n, 2);
    assert_int_equal(b.n_ok, 1);
    assert_string_equal(b.records[0].message_id, "x");
    assert_string_equal(b.errors[1].code, "unknown_type");
    assert_int_equal(wm_native_decode(&arena, "[{}", 3, &ctx, &b, msg, sizeof msg), WM_EPARSE);
    assert_true(strlen(msg) > 0);
    assert_int_equal(wm_native_decode(&arena, "", 0, &ctx, &b, msg, sizeof msg), 0);
    assert_int_equal(b.n, 0);
}

static void test_limit(void **state)
{
    (void)state;
    wm_buf_t body;
    wm_buf_init(&body, 0);
    for (int i = 0; i < 10001; i++)
        wm_buf_puts(&body, "{}\n\n");
    wm_batch_t b;
    char msg[256];
    assert_int_equal(wm_native_decode(&arena, body.data, body.len, &ctx, &b, msg, sizeof msg), WM_ELIMIT);
    /* blank lines do not count towards the limit */
    wm_buf_reset(&body);
    for (int i = 0; i < 10000; i++)
        wm_buf_puts(&body, "{}\n\n");
    assert_int_equal(wm_native_decode(&arena, body.data, body.len, &ctx, &b, msg, sizeof msg), 0);
    assert_int_equal(b.n, 10000);
    assert_int_equal(b.n_ok, 0);
    wm_buf_release(&body);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {T(test_ndjson), T(test_array), T(test_limit)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
