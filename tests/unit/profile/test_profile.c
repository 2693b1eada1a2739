/*
 * test_profile.c - profile_* and item_* operations as a table:
 * (current profile, record type, properties) -> new profile or error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "waymark/error.h"
#include "waymark/profile.h"

typedef struct row {
    const char *name;
    const char *cur;       /* JSON or NULL = no profile */
    wm_rec_type_t type;
    const char *props;     /* JSON object */
    int rc;                /* expected return */
    const char *want;      /* expected JSON of *out, "NULL" for NULL; or error field */
} row_t;

static const row_t rows[] = {
    {"set on empty", NULL, WM_REC_PROFILE_SET, "{\"a\":1,\"b\":\"x\"}", 0, "{\"a\":1,\"b\":\"x\"}"},
    {"set overwrites in place", "{\"a\":1,\"b\":2}", WM_REC_PROFILE_SET, "{\"a\":\"y\",\"c\":true}",
     0, "{\"a\":\"y\",\"b\":2,\"c\":true}"},
    {"set null removes", "{\"a\":1,\"b\":2}", WM_REC_PROFILE_SET, "{\"a\":null,\"z\":null}", 0,
     "{\"b\":2}"},
    {"set skips envelope keys", "{}", WM_REC_PROFILE_SET,
     "{\"$is_login_id\":true,\"$project\":\"p\",\"$token\":\"t\",\"$city\":\"SZ\"}", 0,
     "{\"$city\":\"SZ\"}"},
    {"set duplicate key last wins", NULL, WM_REC_PROFILE_SET, "{\"a\":1,\"a\":2}", 0, "{\"a\":2}"},
    {"set list value", "{}", WM_REC_PROFILE_SET, "{\"tags\":[\"a\",\"b\"]}", 0,
     "{\"tags\":[\"a\",\"b\"]}"},
    {"set_once keeps existing", "{\"first\":\"2024-01-01\"}", WM_REC_PROFILE_SET_ONCE,
     "{\"first\":\"2025-05-05\",\"src\":\"ad\"}", 0, "{\"first\":\"2024-01-01\",\"src\":\"ad\"}"},
    {"set_once ignores null", "{\"a\":1}", WM_REC_PROFILE_SET_ONCE, "{\"a\":null,\"b\":null}", 0,
     "{\"a\":1}"},
    {"increment absent is 0+delta", NULL, WM_REC_PROFILE_INCREMENT, "{\"n\":5}", 0, "{\"n\":5}"},
    {"increment int+int stays int", "{\"n\":40}", WM_REC_PROFILE_INCREMENT, "{\"n\":2}", 0,
     "{\"n\":42}"},
    {"increment negative", "{\"n\":1}", WM_REC_PROFILE_INCREMENT, "{\"n\":-3}", 0, "{\"n\":-2}"},
    {"increment int+double is double", "{\"n\":1}", WM_REC_PROFILE_INCREMENT, "{\"n\":0.5}", 0,
     "{\"n\":1.5}"},
    {"increment double+double", "{\"n\":0.25}", WM_REC_PROFILE_INCREMENT, "{\"n\":0.25}", 0,
     "{\"n\":0.5}"},
    {"increment overflow goes double", "{\"n\":9223372036854775807}", WM_REC_PROFILE_INCREMENT,
     "{\"n\":1}", 0, "{\"n\":9.223372036854776e+18}"},
    {"increment string is type error", "{\"n\":\"7\",\"m\":1}", WM_REC_PROFILE_INCREMENT,
     "{\"m\":1,\"n\":1}", WM_ETYPE, "properties.n"},
    {"increment by non-number", "{}", WM_REC_PROFILE_INCREMENT, "{\"n\":\"1\"}", WM_ETYPE,
     "properties.n"},
    {"append absent makes list", NULL, WM_REC_PROFILE_APPEND, "{\"f\":[\"A\"]}", 0,
     "{\"f\":[\"A\"]}"},
    {"append keeps duplicates", "{\"f\":[\"A\",\"B\"]}", WM_REC_PROFILE_APPEND,
     "{\"f\":[\"B\",\"C\"]}", 0, "{\"f\":[\"A\",\"B\",\"B\",\"C\"]}"},
    {"append to non-list", "{\"f\":\"A\"}", WM_REC_PROFILE_APPEND, "{\"f\":[\"B\"]}", WM_ETYPE,
     "properties.f"},
    {"append non-list value", "{}", WM_REC_PROFILE_APPEND, "{\"f\":\"B\"}", WM_ETYPE,
     "properties.f"},
    {"unset removes", "{\"a\":1,\"b\":2,\"c\":3}", WM_REC_PROFILE_UNSET, "{\"a\":true,\"c\":true}",
     0, "{\"b\":2}"},
    {"unset absent no-op", "{\"a\":1}", WM_REC_PROFILE_UNSET, "{\"x\":true}", 0, "{\"a\":1}"},
    {"unset on no profile", NULL, WM_REC_PROFILE_UNSET, "{\"x\":true}", 0, "{}"},
    {"delete", "{\"a\":1}", WM_REC_PROFILE_DELETE, "{}", 0, "NULL"},
    {"track is not a profile op", "{}", WM_REC_TRACK, "{}", WM_EINVAL, "NULL"},
};

static wm_json_t *parse(wm_arena_t *a, const char *s)
{
    wm_json_t *v = NULL;
    assert_int_equal(wm_json_parse(a, s, strlen(s), &v, NULL), 0);
    return v;
}

static void expect_json(const wm_json_t *v, const char *want)
{
    if (!strcmp(want, "NULL")) {
        assert_null(v);
        return;
    }
    assert_non_null(v);
    wm_buf_t b;
    wm_buf_init(&b, 0);
    wm_json_write(&b, v);
    assert_string_equal(b.data, want);
    wm_buf_release(&b);
}

static void run_row(const row_t *r)
{
    wm_arena_t a;
    wm_arena_init(&a, 0);
    const wm_json_t *cur = r->cur ? parse(&a, r->cur) : NULL;
    wm_record_t rec = {.type = r->type, .properties = parse(&a, r->props)};
    wm_buf_t before;
    wm_buf_init(&before, 0);
    if (cur)
        wm_json_write(&before, cur);
    wm_json_t *out = (wm_json_t *)1;
    wm_rec_error_t err = {0};
    int rc = wm_profile_apply(&a, cur, &rec, &out, &err);
    if (rc != r->rc)
        fail_msg("%s: rc %d, want %d", r->name, rc, r->rc);
    if (rc == WM_ETYPE) {
        assert_null(out);
        assert_string_equal(err.code, "type_mismatch");
        assert_string_equal(err.field, r->want);
    } else {
        expect_json(out, r->want);
    }
    if (cur) { /* the input profile is never modified */
        wm_buf_t after;
        wm_buf_init(&after, 0);
        wm_json_write(&after, cur);
        assert_string_equal(after.data, before.data);
        wm_buf_release(&after);
    }
    wm_buf_release(&before);
    wm_arena_release(&a);
}

static void test_profile_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        run_row(&rows[i]);
}

static void test_increment_result_is_int(void **state)
{
    (void)state;
    wm_arena_t a;
    wm_arena_init(&a, 0);
    wm_record_t rec = {.type = WM_REC_PROFILE_INCREMENT, .properties = parse(&a, "{\"n\":2}")};
    wm_json_t *out = NULL;
    assert_int_equal(wm_profile_apply(&a, parse(&a, "{\"n\":3}"), &rec, &out, NULL), 0);
    const wm_json_t *n = wm_json_get(out, "n");
    assert_true(n->is_int);
    assert_int_equal(n->i64, 5);
    rec.properties = parse(&a, "{\"n\":2.0}");
    assert_int_equal(wm_profile_apply(&a, parse(&a, "{\"n\":3}"), &rec, &out, NULL), 0);
    assert_true(wm_json_get(out, "n")->u.num == 5.0);
    wm_arena_release(&a);
}

static void test_merge(void **state)
{
    (void)state;
    wm_arena_t a;
    wm_arena_init(&a, 0);
    wm_json_t *out = (wm_json_t *)1;
    assert_int_equal(wm_profile_merge(&a, NULL, NULL, &out), 0);
    assert_null(out);
    assert_int_equal(wm_profile_merge(&a, NULL, parse(&a, "{\"a\":1}"), &out), 0);
    expect_json(out, "{\"a\":1}");
    assert_int_equal(wm_profile_merge(&a, parse(&a, "{\"a\":1}"), NULL, &out), 0);
    expect_json(out, "{\"a\":1}");
    assert_int_equal(wm_profile_merge(&a, parse(&a, "{\"tags\":[\"x\"],\"a\":1}"),
                                      parse(&a, "{\"tags\":[\"y\"],\"b\":2}"), &out), 0);
    expect_json(out, "{\"tags\":[\"x\"],\"a\":1,\"b\":2}");
    assert_int_equal(wm_profile_merge(&a, parse(&a, "[1]"), NULL, &out), WM_EINVAL);
    wm_arena_release(&a);
}

static void test_items(void **state)
{
    (void)state;
    wm_arena_t a;
    wm_arena_init(&a, 0);
    wm_record_t rec = {.type = WM_REC_ITEM_SET, .item_type = "fund", .item_id = "F001",
                       .properties = parse(&a, "{\"nav\":1.25,\"risk\":null,\"name\":\"Bond A\"}")};
    wm_json_t *out = NULL;
    assert_int_equal(wm_item_apply(&a, NULL, &rec, &out), 0);
    expect_json(out, "{\"nav\":1.25,\"name\":\"Bond A\"}");
    const wm_json_t *cur = parse(&a, "{\"name\":\"Old\",\"risk\":\"R2\",\"min\":1000}");
    assert_int_equal(wm_item_apply(&a, cur, &rec, &out), 0);
    expect_json(out, "{\"name\":\"Bond A\",\"min\":1000,\"nav\":1.25}");
    rec.type = WM_REC_ITEM_DELETE;
    out = (wm_json_t *)1;
    assert_int_equal(wm_item_apply(&a, cur, &rec, &out), 0);
    assert_null(out);
    rec.type = WM_REC_PROFILE_SET;
    assert_int_equal(wm_item_apply(&a, cur, &rec, &out), WM_EINVAL);
    wm_arena_release(&a);
}

/* Applying in sequence: the output of one op is the input of the next. */
static void test_sequence(void **state)
{
    (void)state;
    wm_arena_t a;
    wm_arena_init(&a, 0);
    static const struct {
        wm_rec_type_t t;
        const char *p;
    } seq[] = {
        {WM_REC_PROFILE_SET_ONCE, "{\"first_channel\":\"wechat\"}"},
        {WM_REC_PROFILE_INCREMENT, "{\"trades\":1}"},
        {WM_REC_PROFILE_INCREMENT, "{\"trades\":1}"},
        {WM_REC_PROFILE_APPEND, "{\"funds\":[\"F1\"]}"},
        {WM_REC_PROFILE_APPEND, "{\"funds\":[\"F2\"]}"},
        {WM_REC_PROFILE_SET_ONCE, "{\"first_channel\":\"app\"}"},
        {WM_REC_PROFILE_SET, "{\"level\":\"gold\"}"},
        {WM_REC_PROFILE_UNSET, "{\"level\":true}"},
    };
    wm_json_t *p = NULL;
    for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++) {
        wm_record_t rec = {.type = seq[i].t, .properties = parse(&a, seq[i].p)};
        wm_json_t *next = NULL;
        assert_int_equal(wm_profile_apply(&a, p, &rec, &next, NULL), 0);
        p = next;
    }
    expect_json(p, "{\"first_channel\":\"wechat\",\"trades\":2,\"funds\":[\"F1\",\"F2\"]}");
    wm_arena_release(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_profile_table),
        cmocka_unit_test(test_increment_result_is_int),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_items),
        cmocka_unit_test(test_sequence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
