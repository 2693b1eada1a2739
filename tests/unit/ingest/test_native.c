/*
 * test_native.c - native ingest: JSON array and NDJSON bodies, per-line
 * errors naming the line, event_id -> message_id, the verbatim stored form.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
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

/* Decodes one NDJSON line, checks whether its stored form is verbatim, and
 * that the stored form reads back as the same record either way. */
static void stored_roundtrip(const char *line, bool verbatim, const char *stored)
{
    wm_batch_t b;
    char msg[256];
    wm_rec_ctx_t c = ctx;
    c.ip = "10.0.0.1";
    assert_int_equal(wm_native_decode(&arena, line, strlen(line), &c, &b, msg, sizeof msg), 0);
    assert_int_equal(b.n_ok, 1);
    wm_record_t *r = &b.records[0];
    if (verbatim != (r->raw != NULL))
        fail_msg("%s: expected the %s form", line, verbatim ? "verbatim" : "canonical");
    wm_buf_t buf;
    wm_buf_init(&buf, 0);
    wm_record_to_json(r, &buf);
    assert_int_equal(buf.err, 0);
    if (stored)
        assert_string_equal(buf.data, stored);
    wm_json_t *obj;
    wm_record_t back;
    wm_rec_error_t err;
    wm_rec_ctx_t sc = {.stored = true};
    assert_int_equal(wm_json_parse(&arena, buf.data, buf.len, &obj, NULL), 0);
    assert_int_equal(wm_record_from_json(&arena, obj, &sc, &back, &err), 0);
    assert_true(wm_record_equal(r, &back));
    /* the members are the canonical form's (wire names of the envelope aside) */
    wm_record_t canon = *r;
    canon.raw = NULL;
    wm_buf_t cb;
    wm_buf_init(&cb, 0);
    wm_record_to_json(&canon, &cb);
    wm_json_t *cobj;
    assert_int_equal(wm_json_parse(&arena, cb.data, cb.len, &cobj, NULL), 0);
    assert_int_equal(obj->len, cobj->len);
    for (const wm_json_t *m = obj->u.child; m; m = m->next) {
        const char *k = !strcmp(m->key, "_track_id") ? "track_id"
                        : !strcmp(m->key, "_flush_time") ? "flush_time" : m->key;
        if (!wm_json_get(cobj, k))
            fail_msg("%s: member %s is not in the canonical form", line, m->key);
    }
    wm_buf_release(&cb);
    wm_buf_release(&buf);
}

static void test_stored_verbatim(void **state)
{
    (void)state;
    /* what SDKs send: kept as sent, after the server's members */
    stored_roundtrip("  {\"type\":\"track\", \"event\":\"ViewFund\",\"distinct_id\":\"c1\","
                     "\"time\":1700000000123,\"_track_id\":42,\"_flush_time\":1700000000200,"
                     "\"lib\":{\"$lib\":\"js\"},\"properties\":{\"nav\":1.9060,\"n\":\"华夏\","
                     "\"$is_login_id\":true}}\r",
                     true,
                     "{\"project\":\"imp\",\"receive_time\":1700000000000,\"ip\":\"10.0.0.1\","
                     "\"type\":\"track\", \"event\":\"ViewFund\",\"distinct_id\":\"c1\","
                     "\"time\":1700000000123,\"_track_id\":42,\"_flush_time\":1700000000200,"
                     "\"lib\":{\"$lib\":\"js\"},\"properties\":{\"nav\":1.9060,\"n\":\"华夏\","
                     "\"$is_login_id\":true}}");
    stored_roundtrip("{\"type\":\"profile_set\",\"distinct_id\":\"c1\",\"project\":\"p2\","
                     "\"identities\":{\"$identity_login_id\":\"c1\"},\"properties\":{\"a\":[\"x\"]}}",
                     true,
                     "{\"time\":1700000000000,\"receive_time\":1700000000000,\"ip\":\"10.0.0.1\","
                     "\"type\":\"profile_set\",\"distinct_id\":\"c1\",\"project\":\"p2\","
                     "\"identities\":{\"$identity_login_id\":\"c1\"},\"properties\":{\"a\":[\"x\"]}}");
    stored_roundtrip("{\"type\":\"item_set\",\"item_type\":\"fund\",\"item_id\":\"1\",\"time\":1700000000000,"
                     "\"properties\":{}}", true, NULL);
    stored_roundtrip("{\"type\":\"track_signup\",\"event\":\"$SignUp\",\"distinct_id\":\"u\","
                     "\"original_id\":\"a\",\"time\":1700000000000,\"time_free\":true,\"properties\":{}}",
                     true, NULL);
    /* anything the canonical form changes, adds or drops: canonical */
    const char *canonical[] = {
        /* escapes: a raw scan of the stored text would not see what the parse sees */
        "{\"type\":\"track\",\"event\":\"\\u0041\",\"distinct_id\":\"c1\",\"properties\":{}}",
        "{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"c1\",\"properties\":{\"u\":\"a\\/b\"}}",
        /* server members and a token */
        "{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"c1\",\"receive_time\":1,\"properties\":{}}",
        "{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"c1\",\"ip\":\"1.2.3.4\",\"properties\":{}}",
        "{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"c1\",\"token\":\"t\",\"properties\":{}}",
        /* lifted from properties */
        "{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"c1\",\"properties\":{\"$time\":1700000000000}}",
        "{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"c1\",\"properties\":{\"$project\":\"imp\"}}",
        /* normalised values */
        "{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"c1\",\"time\":1700000000,\"properties\":{}}",
        "{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"c1\",\"project\":\"\",\"properties\":{}}",
        "{\"type\":\"track_signup\",\"distinct_id\":\"u\",\"original_id\":\"a\",\"properties\":{}}",
        "{\"type\":\"track\",\"event\":\"A\",\"identities\":{\"$identity_login_id\":\"c1\"},\"properties\":{}}",
        /* members the canonical form drops, unknown or repeated members */
        "{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"c1\",\"login_id\":null,\"properties\":{}}",
        "{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"c1\",\"identities\":{},\"properties\":{}}",
        "{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"c1\",\"_flush_time\":0,\"properties\":{}}",
        "{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"c1\",\"time_free\":false,\"properties\":{}}",
        "{\"type\":\"profile_set\",\"event\":\"A\",\"distinct_id\":\"c1\",\"properties\":{}}",
        "{\"type\":\"item_set\",\"item_type\":\"f\",\"item_id\":\"1\",\"distinct_id\":\"c1\",\"properties\":{}}",
        "{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"c1\",\"dtk\":1,\"properties\":{}}",
        "{\"type\":\"track\",\"event\":\"A\",\"event\":\"B\",\"distinct_id\":\"c1\",\"properties\":{}}",
        "{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"c1\",\"_track_id\":1,\"track_id\":1,\"properties\":{}}",
        "{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"c1\",\"event_id\":\"m\",\"properties\":{}}",
        "{\"type\":\"track\",\"event\":\"A\",\"distinct_id\":\"c1\"}",
    };
    for (size_t i = 0; i < sizeof canonical / sizeof canonical[0]; i++)
        stored_roundtrip(canonical[i], false, NULL);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {T(test_ndjson), T(test_array), T(test_limit),
                                       T(test_stored_verbatim)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
