/*
 * test_segment.c - Segment HTTP API messages mapped to Sensors records, one
 * test per call kind, plus batch isolation, name rewriting, flattening,
 * clock-skew correction and the size limits.
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
static const wm_rec_ctx_t ctx = {.project = "seg", .ip = "198.51.100.1",
                                 .receive_time_ms = 1700000010000};

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

static const wm_record_t *one(wm_segspec_kind_t kind, const char *body)
{
    static wm_batch_t b;
    char msg[256];
    int rc = wm_segspec_decode(&arena, kind, body, strlen(body), &ctx, &b, msg, sizeof msg);
    if (rc)
        fail_msg("rc=%d %s", rc, msg);
    assert_int_equal(b.n, 1);
    if (b.errors[0].code)
        fail_msg("%s %s %s", b.errors[0].code, b.errors[0].field, b.errors[0].msg);
    return &b.records[0];
}

static const char *pstr(const wm_record_t *r, const char *k)
{
    return wm_json_str(wm_json_get(r->properties, k));
}

static void test_track(void **state)
{
    (void)state;
    const wm_record_t *r = one(WM_SEGSPEC_TRACK,
        "{\"userId\":\"u1\",\"anonymousId\":\"a1\",\"event\":\"Order Completed\",\"messageId\":\"m-1\","
        "\"timestamp\":\"2023-11-14T22:13:20.000Z\",\"properties\":{\"order id\":\"o9\",\"total.usd\":9.5,"
        "\"1st\":true,\"id\":\"x\",\"address\":{\"city\":\"SZ\",\"geo\":{\"lat\":1}},\"items\":[\"a\",{\"b\":2}]},"
        "\"context\":{\"ip\":\"203.0.113.9\",\"library\":{\"name\":\"analytics-node\",\"version\":\"6.0\"},"
        "\"userAgent\":\"UA\",\"os\":{\"name\":\"iOS\",\"version\":\"17\"},\"device\":{\"model\":\"iPhone\","
        "\"manufacturer\":\"Apple\"},\"app\":{\"version\":\"2.1\"},\"timezone\":\"Asia/Shanghai\"}}");
    assert_int_equal(r->type, WM_REC_TRACK);
    assert_string_equal(r->event, "Order_Completed");
    assert_string_equal(r->distinct_id, "u1");
    assert_string_equal(r->login_id, "u1");
    assert_string_equal(r->anonymous_id, "a1");
    assert_true(r->is_login_id);
    assert_string_equal(r->message_id, "m-1");
    assert_string_equal(r->project, "seg");
    assert_int_equal(r->time_ms, 1700000000000);
    assert_string_equal(pstr(r, "order_id"), "o9");
    assert_non_null(wm_json_get(r->properties, "total_usd"));
    assert_non_null(wm_json_get(r->properties, "_1st"));
    assert_string_equal(pstr(r, "_id"), "x"); /* reserved name prefixed */
    assert_string_equal(pstr(r, "address_city"), "SZ");
    assert_string_equal(pstr(r, "address_geo"), "{\"lat\":1}");
    const wm_json_t *items = wm_json_get(r->properties, "items");
    assert_int_equal(items->len, 2);
    assert_string_equal(items->u.child->next->u.str, "{\"b\":2}");
    assert_string_equal(pstr(r, "$ip"), "203.0.113.9");
    assert_string_equal(pstr(r, "$user_agent"), "UA");
    assert_string_equal(pstr(r, "$os"), "iOS");
    assert_string_equal(pstr(r, "$os_version"), "17");
    assert_string_equal(pstr(r, "$model"), "iPhone");
    assert_string_equal(pstr(r, "$manufacturer"), "Apple");
    assert_string_equal(pstr(r, "$app_version"), "2.1");
    assert_string_equal(pstr(r, "$timezone"), "Asia/Shanghai");
    assert_string_equal(pstr(r, "$lib"), "analytics-node");
    assert_string_equal(wm_json_str(wm_json_get(r->lib, "$lib_version")), "6.0");
}

static void test_time_rules(void **state)
{
    (void)state;
    /* sentAt 5 s after timestamp -> 5 s before receipt */
    const wm_record_t *r = one(WM_SEGSPEC_TRACK,
        "{\"anonymousId\":\"a1\",\"event\":\"E\",\"timestamp\":\"2023-11-14T22:13:20Z\","
        "\"sentAt\":\"2023-11-14T22:13:25+00:00\"}");
    assert_int_equal(r->time_ms, 1700000005000);
    assert_string_equal(r->distinct_id, "a1");
    assert_null(r->login_id);
    assert_false(r->is_login_id);
    r = one(WM_SEGSPEC_TRACK, "{\"anonymousId\":\"a1\",\"event\":\"E\"}");
    assert_int_equal(r->time_ms, 1700000010000);
    r = one(WM_SEGSPEC_TRACK, "{\"userId\":42,\"event\":\"E\",\"originalTimestamp\":\"2023-11-15T06:13:20+0800\"}");
    assert_int_equal(r->time_ms, 1700000000000);
    assert_string_equal(r->distinct_id, "42");
    assert_null(r->anonymous_id);
}

static void test_identify_group(void **state)
{
    (void)state;
    const wm_record_t *r = one(WM_SEGSPEC_IDENTIFY,
        "{\"userId\":\"u1\",\"traits\":{\"email\":\"a@b.c\",\"first-name\":\"Li\",\"plan\":{\"tier\":\"gold\"}}}");
    assert_int_equal(r->type, WM_REC_PROFILE_SET);
    assert_string_equal(r->distinct_id, "u1");
    assert_string_equal(pstr(r, "email"), "a@b.c");
    assert_string_equal(pstr(r, "first_name"), "Li");
    assert_string_equal(pstr(r, "plan_tier"), "gold");
    assert_null(wm_json_get(r->properties, "$ip"));
    r = one(WM_SEGSPEC_GROUP, "{\"userId\":\"u1\",\"groupId\":\"g7\",\"traits\":{\"name\":\"ACME\",\"size\":50}}");
    assert_int_equal(r->type, WM_REC_PROFILE_SET);
    assert_string_equal(pstr(r, "group_id"), "g7");
    assert_string_equal(pstr(r, "group_name"), "ACME");
    assert_non_null(wm_json_get(r->properties, "group_size"));
}

static void test_page_screen_alias(void **state)
{
    (void)state;
    const wm_record_t *r = one(WM_SEGSPEC_PAGE,
        "{\"anonymousId\":\"a1\",\"name\":\"Home\",\"category\":\"Docs\",\"properties\":{\"title\":\"Welcome\"},"
        "\"context\":{\"page\":{\"url\":\"https://x.cn/a?b=1\",\"path\":\"/a\",\"referrer\":\"https://r.cn/\","
        "\"title\":\"ctx title\"}}}");
    assert_string_equal(r->event, "$pageview");
    assert_string_equal(pstr(r, "$url"), "https://x.cn/a?b=1");
    assert_string_equal(pstr(r, "$url_path"), "/a");
    assert_string_equal(pstr(r, "$referrer"), "https://r.cn/");
    assert_string_equal(pstr(r, "$title"), "Welcome");
    assert_string_equal(pstr(r, "name"), "Home");
    assert_string_equal(pstr(r, "category"), "Docs");
    r = one(WM_SEGSPEC_SCREEN, "{\"userId\":\"u1\",\"name\":\"Fund Detail\",\"properties\":{\"fund\":\"F1\"}}");
    assert_string_equal(r->event, "$AppViewScreen");
    assert_string_equal(pstr(r, "$screen_name"), "Fund Detail");
    assert_string_equal(pstr(r, "fund"), "F1");
    r = one(WM_SEGSPEC_ALIAS, "{\"userId\":\"u1\",\"previousId\":\"a1\"}");
    assert_int_equal(r->type, WM_REC_TRACK_SIGNUP);
    assert_string_equal(r->event, "$SignUp");
    assert_string_equal(r->distinct_id, "u1");
    assert_string_equal(r->original_id, "a1");
}

static void test_batch_with_bad_message(void **state)
{
    (void)state;
    const char *body =
        "{\"batch\":[{\"type\":\"track\",\"userId\":\"u1\",\"event\":\"A\"},"
        "{\"type\":\"track\",\"event\":\"B\"},"
        "{\"type\":\"bogus\",\"userId\":\"u1\"},"
        "{\"type\":\"alias\",\"userId\":\"u1\"},"
        "{\"type\":\"identify\",\"userId\":\"u1\",\"timestamp\":\"yesterday\"},"
        "{\"type\":\"identify\",\"userId\":\"u1\",\"traits\":{\"bio\":\"ok\"}}],"
        "\"context\":{\"library\":{\"name\":\"analytics-python\"}},"
        "\"sentAt\":\"2023-11-14T22:13:20Z\"}";
    wm_batch_t b;
    char msg[256];
    assert_int_equal(wm_segspec_decode(&arena, WM_SEGSPEC_BATCH, body, strlen(body), &ctx, &b, msg, sizeof msg), 0);
    assert_int_equal(b.n, 6);
    assert_int_equal(b.n_ok, 2);
    assert_null(b.errors[0].code);
    assert_string_equal(wm_json_str(wm_json_get(b.records[0].lib, "$lib")), "analytics-python");
    assert_string_equal(b.errors[1].code, "missing_field");
    assert_string_equal(b.errors[1].field, "userId");
    assert_string_equal(b.errors[2].code, "unknown_type");
    assert_string_equal(b.errors[3].code, "missing_field");
    assert_string_equal(b.errors[3].field, "previousId");
    assert_string_equal(b.errors[4].code, "invalid_value");
    assert_string_equal(b.errors[4].field, "timestamp");
    assert_null(b.errors[5].code);
    assert_string_equal(pstr(&b.records[5], "bio"), "ok");
}

static void test_limits_and_parse(void **state)
{
    (void)state;
    wm_batch_t b;
    char msg[256];
    static char big[40000];
    memset(big, ' ', sizeof big - 1);
    memcpy(big, "{\"userId\":\"u\",\"event\":\"E\"}", 26);
    assert_int_equal(wm_segspec_decode(&arena, WM_SEGSPEC_TRACK, big, strlen(big), &ctx, &b, msg, sizeof msg), WM_ELIMIT);
    /* a message over 32 KB inside a batch fails alone */
    wm_buf_t body;
    wm_buf_init(&body, 0);
    wm_buf_puts(&body, "{\"batch\":[{\"type\":\"track\",\"userId\":\"u\",\"event\":\"E\",\"properties\":{\"s\":\"");
    for (int i = 0; i < 34000; i++)
        wm_buf_putc(&body, 'x');
    wm_buf_puts(&body, "\"}},{\"type\":\"track\",\"userId\":\"u\",\"event\":\"F\"}]}");
    assert_int_equal(wm_segspec_decode(&arena, WM_SEGSPEC_BATCH, body.data, body.len, &ctx, &b, msg, sizeof msg), 0);
    assert_int_equal(b.n, 2);
    assert_string_equal(b.errors[0].code, "too_long");
    assert_null(b.errors[1].code);
    wm_buf_release(&body);
    assert_int_equal(wm_segspec_decode(&arena, WM_SEGSPEC_BATCH, "{\"batch\":{}}", 12, &ctx, &b, msg, sizeof msg), WM_EPARSE);
    assert_int_equal(wm_segspec_decode(&arena, WM_SEGSPEC_TRACK, "{\"a\":", 5, &ctx, &b, msg, sizeof msg), WM_EPARSE);
    assert_int_equal(wm_segspec_kind_parse("identify"), WM_SEGSPEC_IDENTIFY);
    assert_int_equal(wm_segspec_kind_parse("batch"), WM_SEGSPEC_BATCH);
    assert_int_equal(wm_segspec_kind_parse("nope"), -1);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_track), T(test_time_rules), T(test_identify_group), T(test_page_screen_alias),
        T(test_batch_with_bad_message), T(test_limits_and_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
