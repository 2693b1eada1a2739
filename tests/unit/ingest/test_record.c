/*
 * test_record.c - record validation (every type, every rule with its exact
 * error code and field), name rules, datetime parsing and the stored-form
 * round trip.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "waymark/error.h"
#include "waymark/record.h"

static wm_arena_t arena;

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

static const wm_rec_ctx_t ctx = {.project = "qproj", .token = "qtok", .ip = "10.1.2.3",
                                 .receive_time_ms = 1700000009000, .now_ms = 1700000009000};

static int decode(const char *json, wm_record_t *r, wm_rec_error_t *err)
{
    wm_json_t *obj;
    wm_json_error_t jerr;
    assert_int_equal(wm_json_parse(&arena, json, strlen(json), &obj, &jerr), 0);
    return wm_record_from_json(&arena, obj, &ctx, r, err);
}

static void round_trip(const wm_record_t *r)
{
    wm_buf_t b;
    wm_buf_init(&b, 0);
    wm_record_to_json(r, &b);
    assert_int_equal(b.err, 0);
    wm_json_t *obj;
    wm_json_error_t jerr;
    assert_int_equal(wm_json_parse(&arena, b.data, b.len, &obj, &jerr), 0);
    wm_rec_ctx_t stored = {.stored = true, .receive_time_ms = 1, .ip = "forged"};
    wm_record_t back;
    wm_rec_error_t err;
    int rc = wm_record_from_json(&arena, obj, &stored, &back, &err);
    if (rc)
        fail_msg("round trip of %s failed: %s %s", b.data, err.code, err.msg);
    if (!wm_record_equal(r, &back))
        fail_msg("round trip not equal: %s", b.data);
    wm_buf_release(&b);
}

/* ---- valid records of every type ---- */

static void test_track(void **state)
{
    (void)state;
    wm_record_t r;
    wm_rec_error_t err;
    assert_int_equal(decode("{\"type\":\"track\",\"event\":\"ViewFund\",\"distinct_id\":\"u1001\","
                            "\"time\":1700000000000,\"_track_id\":123456789,\"_flush_time\":1700000000500,"
                            "\"lib\":{\"$lib\":\"python\"},\"properties\":{\"$is_login_id\":true,"
                            "\"fund_code\":\"000001\",\"amount\":12.5,\"tags\":[\"a\",\"b\"],\"gone\":null,"
                            "\"$project\":\"fundapp\",\"$token\":\"t1\"}}",
                            &r, &err),
                     0);
    assert_null(err.code);
    assert_int_equal(r.type, WM_REC_TRACK);
    assert_string_equal(r.event, "ViewFund");
    assert_string_equal(r.distinct_id, "u1001");
    assert_int_equal(r.time_ms, 1700000000000);
    assert_true(r.has_track_id);
    assert_int_equal(r.track_id, 123456789);
    assert_int_equal(r.flush_time_ms, 1700000000500);
    assert_int_equal(r.receive_time_ms, 1700000009000);
    assert_string_equal(r.ip, "10.1.2.3");
    assert_true(r.is_login_id);
    assert_string_equal(r.project, "fundapp");
    assert_string_equal(r.token, "t1");
    assert_null(wm_json_get(r.properties, "$project"));
    assert_null(wm_json_get(r.properties, "$token"));
    assert_string_equal(wm_json_str(wm_json_get(r.properties, "fund_code")), "000001");
    assert_int_equal(r.properties->len, 5);
    round_trip(&r);
}

static void test_defaults_and_time(void **state)
{
    (void)state;
    wm_record_t r;
    wm_rec_error_t err;
    /* no time -> receive time; no project -> ctx project; 10-digit time = seconds */
    assert_int_equal(decode("{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"d\"}", &r, &err), 0);
    assert_int_equal(r.time_ms, 1700000009000);
    assert_string_equal(r.project, "qproj");
    assert_string_equal(r.token, "qtok");
    assert_false(r.is_login_id);
    assert_non_null(r.properties);
    assert_int_equal(r.properties->type, WM_JSON_OBJECT);
    round_trip(&r);
    assert_int_equal(decode("{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"d\",\"time\":1700000000,"
                            "\"project\":\"\",\"time_free\":true}",
                            &r, &err),
                     0);
    assert_int_equal(r.time_ms, 1700000000000);
    assert_string_equal(r.project, "qproj"); /* Go SDK's "project":"" = absent */
    assert_true(r.time_free);
    round_trip(&r);
    /* $time as ms and as datetime string (UTC ctx) override time */
    assert_int_equal(decode("{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"d\",\"time\":1700000000000,"
                            "\"properties\":{\"$time\":1600000000123}}",
                            &r, &err),
                     0);
    assert_int_equal(r.time_ms, 1600000000123);
    assert_int_equal(r.properties->len, 0);
    assert_int_equal(decode("{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"d\","
                            "\"properties\":{\"$time\":\"2023-11-14 22:13:20.5\",\"x\":1}}",
                            &r, &err),
                     0);
    assert_int_equal(r.time_ms, 1700000000500);
    assert_int_equal(r.properties->len, 1);
    round_trip(&r);
    /* explicit project > ctx project, default when neither */
    assert_int_equal(decode("{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"d\",\"project\":\"p2\"}", &r,
                            &err),
                     0);
    assert_string_equal(r.project, "p2");
    wm_json_t *obj;
    const char *j = "{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"d\"}";
    assert_int_equal(wm_json_parse(&arena, j, strlen(j), &obj, NULL), 0);
    wm_rec_ctx_t bare = {.receive_time_ms = 1700000000000};
    assert_int_equal(wm_record_from_json(&arena, obj, &bare, &r, &err), 0);
    assert_string_equal(r.project, "default");
    assert_null(r.token);
}

static void test_signup_bind_unbind(void **state)
{
    (void)state;
    wm_record_t r;
    wm_rec_error_t err;
    assert_int_equal(decode("{\"distinct_id\":\"130xxxx1234\",\"original_id\":\"0f485d4d12345e5f\","
                            "\"login_id\":\"130xxxx1234\",\"anonymous_id\":\"0f485d4d12345e5f\","
                            "\"time\":1434557935000,\"type\":\"track_signup\",\"event\":\"$SignUp\","
                            "\"identities\":{\"$identity_android_id\":\"0f485d4d12345e5f\","
                            "\"$identity_login_id\":\"130xxxx1234\"},\"properties\":{\"$os\":\"iOS\"}}",
                            &r, &err),
                     0);
    assert_int_equal(r.type, WM_REC_TRACK_SIGNUP);
    assert_string_equal(r.original_id, "0f485d4d12345e5f");
    assert_string_equal(r.login_id, "130xxxx1234");
    assert_string_equal(r.anonymous_id, "0f485d4d12345e5f");
    assert_int_equal(r.n_identities, 2);
    assert_string_equal(r.identities[1].key, "$identity_login_id");
    assert_true(r.is_login_id); /* distinct_id == login_id */
    round_trip(&r);
    /* bind without distinct_id: derived from $identity_login_id; event defaults */
    assert_int_equal(decode("{\"type\":\"track_id_bind\",\"identities\":{\"$identity_mobile\":\"187\","
                            "\"$identity_login_id\":\"u1001\"}}",
                            &r, &err),
                     0);
    assert_string_equal(r.event, "$BindID");
    assert_string_equal(r.distinct_id, "u1001");
    assert_true(r.is_login_id);
    round_trip(&r);
    /* unbind, no login id: "<first_key>+<first_value>" */
    assert_int_equal(decode("{\"type\":\"track_id_unbind\",\"identities\":{\"$identity_mobile\":\"187\"}}",
                            &r, &err),
                     0);
    assert_string_equal(r.event, "$UnbindID");
    assert_string_equal(r.distinct_id, "$identity_mobile+187");
    assert_false(r.is_login_id);
    round_trip(&r);
}

static void test_profiles_items(void **state)
{
    (void)state;
    static const char *ok[] = {
        "{\"type\":\"profile_set\",\"distinct_id\":\"u\",\"properties\":{\"risk_level\":\"C3\",\"is_vip\":true}}",
        "{\"type\":\"profile_set_once\",\"distinct_id\":\"u\",\"properties\":{\"first_channel\":\"web\"}}",
        "{\"type\":\"profile_increment\",\"distinct_id\":\"u\",\"properties\":{\"trade_count\":1,\"amt\":2.5}}",
        "{\"type\":\"profile_append\",\"distinct_id\":\"u\",\"properties\":{\"held\":[\"fund:000001\"]}}",
        "{\"type\":\"profile_unset\",\"distinct_id\":\"u\",\"properties\":{\"temp_flag\":true}}",
        "{\"type\":\"profile_delete\",\"distinct_id\":\"u\",\"properties\":{}}",
        "{\"type\":\"item_set\",\"properties\":{\"name\":\"yuejz\",\"OrderPaid\":12.1},\"item_id\":\"item_id\","
        "\"time\":1566022866941,\"item_type\":\"item_type\"}",
        "{\"type\":\"item_delete\",\"item_id\":\"F1\",\"item_type\":\"fund\"}",
    };
    static const wm_rec_type_t types[] = {WM_REC_PROFILE_SET,    WM_REC_PROFILE_SET_ONCE,
                                          WM_REC_PROFILE_INCREMENT, WM_REC_PROFILE_APPEND,
                                          WM_REC_PROFILE_UNSET,  WM_REC_PROFILE_DELETE,
                                          WM_REC_ITEM_SET,       WM_REC_ITEM_DELETE};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        wm_record_t r;
        wm_rec_error_t err;
        int rc = decode(ok[i], &r, &err);
        if (rc)
            fail_msg("%s: %s %s %s", ok[i], err.code, err.field, err.msg);
        assert_int_equal(r.type, types[i]);
        assert_null(r.event);
        if (r.type >= WM_REC_ITEM_SET) {
            assert_null(r.distinct_id);
            assert_non_null(r.item_type);
            assert_non_null(r.item_id);
        } else {
            assert_string_equal(r.distinct_id, "u");
        }
        round_trip(&r);
    }
}

/* ---- invalid records: exact code and field ---- */

typedef struct bad_case {
    const char *json, *code, *field;
} bad_case_t;

static void test_invalid(void **state)
{
    (void)state;
    char long_id[300], long_str[9000], long_name[120];
    char j_id[400], j_str[9100], j_name[200];
    memset(long_id, 'x', 256), long_id[256] = 0;
    memset(long_str, 'y', 8193), long_str[8193] = 0;
    memset(long_name, 'n', 101), long_name[101] = 0;
    snprintf(j_id, sizeof j_id, "{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"%s\"}", long_id);
    snprintf(j_str, sizeof j_str, "{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"d\",\"properties\":{\"s\":\"%s\"}}", long_str);
    snprintf(j_name, sizeof j_name, "{\"type\":\"track\",\"event\":\"%s\",\"distinct_id\":\"d\"}", long_name);
    const bad_case_t cases[] = {
        {"[1]", "invalid_type", ""},
        {"{\"event\":\"A\",\"distinct_id\":\"d\"}", "missing_field", "type"},
        {"{\"type\":7,\"event\":\"A\",\"distinct_id\":\"d\"}", "invalid_type", "type"},
        {"{\"type\":\"detail_set\",\"distinct_id\":\"d\"}", "unknown_type", "type"},
        {"{\"type\":\"track\",\"distinct_id\":\"d\"}", "missing_field", "event"},
        {"{\"type\":\"track\",\"event\":\"View Fund\",\"distinct_id\":\"d\"}", "invalid_name", "event"},
        {"{\"type\":\"track\",\"event\":\"9lives\",\"distinct_id\":\"d\"}", "invalid_name", "event"},
        {j_name, "invalid_name", "event"},
        {"{\"type\":\"track\",\"event\":\"Events\",\"distinct_id\":\"d\"}", "reserved_name", "event"},
        {"{\"type\":\"track\",\"event\":\"A\"}", "missing_field", "distinct_id"},
        {"{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"\"}", "invalid_value", "distinct_id"},
        {"{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":42}", "invalid_type", "distinct_id"},
        {j_id, "too_long", "distinct_id"},
        {"{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"d\",\"properties\":{\"fund code\":1}}", "invalid_name", "properties.fund code"},
        {"{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"d\",\"properties\":{\"Date\":1}}", "reserved_name", "properties.Date"},
        {"{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"d\",\"properties\":{\"user_group_x\":1}}", "reserved_name", "properties.user_group_x"},
        {"{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"d\",\"properties\":{\"USER_TAGS\":1}}", "reserved_name", "properties.USER_TAGS"},
        {"{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"d\",\"properties\":{\"fund_code\":{\"a\":1}}}", "invalid_type", "properties.fund_code"},
        {"{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"d\",\"properties\":{\"l\":[\"a\",1]}}", "invalid_type", "properties.l"},
        {j_str, "too_long", "properties.s"},
        {"{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"d\",\"properties\":[]}", "invalid_type", "properties"},
        {"{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"d\",\"properties\":{\"$is_login_id\":\"yes\"}}", "invalid_type", "properties.$is_login_id"},
        {"{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"d\",\"time\":\"1700000000000\"}", "invalid_type", "time"},
        {"{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"d\",\"time\":17000000}", "invalid_value", "time"},
        {"{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"d\",\"properties\":{\"$time\":\"2023-02-30 00:00:00\"}}", "invalid_value", "properties.$time"},
        {"{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"d\",\"properties\":{\"$time\":\"6982-03-28 10:20:18\"}}", "invalid_value", "properties.$time"},
        {"{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"d\",\"project\":\"bad-proj\"}", "invalid_name", "project"},
        {"{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"d\",\"_track_id\":\"x\"}", "invalid_type", "_track_id"},
        {"{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"d\",\"lib\":\"js\"}", "invalid_type", "lib"},
        {"{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"d\",\"identities\":[\"x\"]}", "invalid_type", "identities"},
        {"{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"d\",\"identities\":{\"$identity_mobile\":\"\"}}", "invalid_value", "identities.$identity_mobile"},
        {"{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"d\",\"identities\":{\"$identity_mobile\":5}}", "invalid_type", "identities.$identity_mobile"},
        {"{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"d\",\"identities\":{\"bad key\":\"v\"}}", "invalid_name", "identities.bad key"},
        {"{\"type\":\"track_signup\",\"distinct_id\":\"d\"}", "missing_field", "original_id"},
        {"{\"type\":\"track_id_bind\",\"distinct_id\":\"d\",\"identities\":{\"$identity_mobile\":\"1\"}}", "invalid_value", "identities"},
        {"{\"type\":\"track_id_unbind\",\"distinct_id\":\"d\",\"identities\":{\"a\":\"1\",\"b\":\"2\"}}", "invalid_value", "identities"},
        {"{\"type\":\"profile_increment\",\"distinct_id\":\"d\",\"properties\":{\"n\":\"1\"}}", "invalid_type", "properties.n"},
        {"{\"type\":\"profile_append\",\"distinct_id\":\"d\",\"properties\":{\"l\":\"a\"}}", "invalid_type", "properties.l"},
        {"{\"type\":\"profile_append\",\"distinct_id\":\"d\",\"properties\":{\"l\":[true]}}", "invalid_type", "properties.l"},
        {"{\"type\":\"profile_unset\",\"distinct_id\":\"d\",\"properties\":{\"x\":false}}", "invalid_value", "properties.x"},
        {"{\"type\":\"item_set\",\"item_id\":\"1\"}", "missing_field", "item_type"},
        {"{\"type\":\"item_set\",\"item_type\":\"a b\",\"item_id\":\"1\"}", "invalid_name", "item_type"},
        {"{\"type\":\"item_delete\",\"item_type\":\"fund\"}", "missing_field", "item_id"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wm_record_t r;
        wm_rec_error_t err;
        int rc = decode(cases[i].json, &r, &err);
        if (rc != WM_EINVAL || !err.code || strcmp(err.code, cases[i].code) != 0 ||
            strcmp(err.field, cases[i].field) != 0)
            fail_msg("case %zu %.80s: rc=%d code=%s field=%s (want %s %s)", i, cases[i].json, rc,
                     err.code ? err.code : "(null)", err.field, cases[i].code, cases[i].field);
        assert_true(strlen(err.msg) > 10);
    }
}

/* The per-thread cache of names that passed: a name that shares a slot (same
 * length, same leading and trailing bytes) with a cached good one is still
 * checked in full, and a rejected name is never remembered as good. The
 * names that collide on purpose differ only in the middle. */
static void test_name_cache_is_exact(void **state)
{
    (void)state;
    static const struct {
        const char *name, *code;
    } seq[] = {
        {"distinct_ix", NULL},         {"distinct_id", "reserved_name"}, /* same first 8 bytes, length */
        {"distinct_ix", NULL},         {"distinct_id", "reserved_name"},
        {"Date", "reserved_name"},     {"Date", "reserved_name"},
        {"datex", NULL},               {"fund code", "invalid_name"},
        {"fund code", "invalid_name"}, {"fund_code", NULL},
        {"fund_code", NULL},           {"event_idx_long_name_12345", NULL},
        {"event_idx_long_name_1234$", NULL}, {"event_idx_long_name_1234-", "invalid_name"},
        /* longer names are slotted by their first and last 8 bytes only */
        {"event_idx_lo-g_name_12345", "invalid_name"},
        {"user_groXpings_of_a_customer", NULL},
        {"user_groupings_of_a_customer", "reserved_name"},
        {"user_groupings_of_a_customer", "reserved_name"},
    };
    for (int round = 0; round < 2; round++)
        for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++) {
            char json[256];
            snprintf(json, sizeof json,
                     "{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"d\",\"properties\":{\"%s\":1}}",
                     seq[i].name);
            wm_record_t r;
            wm_rec_error_t err;
            int rc = decode(json, &r, &err);
            if (!seq[i].code) {
                if (rc != 0)
                    fail_msg("%s: rejected (%s)", seq[i].name, err.code ? err.code : "?");
                continue;
            }
            char field[160];
            snprintf(field, sizeof field, "properties.%s", seq[i].name);
            if (rc != WM_EINVAL || !err.code || strcmp(err.code, seq[i].code) || strcmp(err.field, field))
                fail_msg("%s: rc=%d code=%s (want %s)", seq[i].name, rc, err.code ? err.code : "(null)",
                         seq[i].code);
        }
}

static void test_too_many(void **state)
{
    (void)state;
    wm_buf_t b;
    wm_buf_init(&b, 0);
    wm_buf_puts(&b, "{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"d\",\"properties\":{");
    for (int i = 0; i < 1001; i++)
        wm_buf_printf(&b, "%s\"p%d\":1", i ? "," : "", i);
    wm_buf_puts(&b, "}}");
    wm_record_t r;
    wm_rec_error_t err;
    assert_int_equal(decode(b.data, &r, &err), WM_EINVAL);
    assert_string_equal(err.code, "too_many");
    assert_string_equal(err.field, "properties");
    wm_buf_release(&b);
}

/* ---- names ---- */

static void test_names(void **state)
{
    (void)state;
    char n100[101], n101[102];
    memset(n100, 'a', 100), n100[100] = 0;
    memset(n101, 'a', 101), n101[101] = 0;
    assert_true(wm_name_valid("$pageview"));
    assert_true(wm_name_valid("_a1$"));
    assert_true(wm_name_valid(n100));
    assert_false(wm_name_valid(n101));
    assert_false(wm_name_valid(""));
    assert_false(wm_name_valid("1a"));
    assert_false(wm_name_valid("a-b"));
    assert_false(wm_name_valid("a.b"));
    assert_false(wm_name_valid("名字"));
    assert_true(wm_name_reserved("distinct_id"));
    assert_true(wm_name_reserved("DEVICE_ID"));
    assert_true(wm_name_reserved("user_group"));
    assert_true(wm_name_reserved("user_tagABC"));
    assert_false(wm_name_reserved("ids"));
    assert_false(wm_name_reserved("$time"));
    assert_false(wm_name_reserved("user_ta"));
    assert_int_equal(wm_rec_type_parse("item_delete"), WM_REC_ITEM_DELETE);
    assert_int_equal(wm_rec_type_parse("trackx"), -1);
    assert_string_equal(wm_rec_type_name(WM_REC_PROFILE_APPEND), "profile_append");
}

/* ---- datetime ---- */

static void test_datetime(void **state)
{
    (void)state;
    int64_t ms;
    bool d;
    assert_int_equal(wm_datetime_parse("2023-11-14 22:13:20.123", 0, &ms, &d), 0);
    assert_int_equal(ms, 1700000000123);
    assert_false(d);
    assert_int_equal(wm_datetime_parse("2023-11-14T22:13:20", 0, &ms, &d), 0);
    assert_int_equal(ms, 1700000000000);
    assert_int_equal(wm_datetime_parse("2023-11-14 22:13:20.5", 0, &ms, NULL), 0);
    assert_int_equal(ms, 1700000000500);
    assert_int_equal(wm_datetime_parse("2023-11-14 22:13:20.05", 0, &ms, NULL), 0);
    assert_int_equal(ms, 1700000000050);
    assert_int_equal(wm_datetime_parse("2023-11-15 06:13:20", 480, &ms, NULL), 0); /* UTC+8 */
    assert_int_equal(ms, 1700000000000);
    assert_int_equal(wm_datetime_parse("2024-02-29", 0, &ms, &d), 0);
    assert_true(d);
    assert_int_equal(ms, 1709164800000);
    assert_int_equal(wm_datetime_parse("1969-12-31 23:59:59", 0, &ms, NULL), 0);
    assert_int_equal(ms, -1000);
    static const char *bad[] = {"2023-02-29", "2023-13-01", "2023-11-14 24:00:00", "2023-11-14 22:13",
                                "2023-11-14 22:13:20.", "2023-11-14 22:13:20.1234", "2023-11-14Z",
                                "2023/11/14", "2023-11-14 22:13:20Z", "", "20231114"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (wm_datetime_parse(bad[i], 0, &ms, NULL) != WM_EINVAL)
            fail_msg("accepted %s", bad[i]);
    assert_int_equal(wm_iso8601_parse("2023-11-14T22:13:20.123456Z", &ms), 0);
    assert_int_equal(ms, 1700000000123);
    assert_int_equal(wm_iso8601_parse("2023-11-15T06:13:20+08:00", &ms), 0);
    assert_int_equal(ms, 1700000000000);
    assert_int_equal(wm_iso8601_parse("2023-11-14T17:13:20-0500", &ms), 0);
    assert_int_equal(ms, 1700000000000);
    assert_int_equal(wm_iso8601_parse("2023-11-14T22:13:20", &ms), 0);
    assert_int_equal(ms, 1700000000000);
    assert_int_equal(wm_iso8601_parse("2023-11-14T22:13:20+8", &ms), WM_EINVAL);
    assert_int_equal(wm_iso8601_parse("2023-11-14T22:13:20Zjunk", &ms), WM_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_track, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defaults_and_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signup_bind_unbind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_profiles_items, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_name_cache_is_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_many, setup, teardown),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_datetime),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
