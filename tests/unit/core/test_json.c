/*
 * test_json.c - the JSON reader and writer: every value type, the strictness
 * rules ingest relies on (escapes, surrogates, UTF-8, leading zeros, trailing
 * commas, depth), integer exactness, duplicates, error offsets, writer round
 * trips and out-of-memory behaviour.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "waymark/alloc.h"
#include "waymark/error.h"
#include "waymark/json.h"
#include "waymark/limits.h"

static wm_arena_t arena;

static int setup(void **state)
{
    wm_arena_init(&arena, 1024);
    return 0;
}

static int teardown(void **state)
{
    wm_arena_release(&arena);
    return 0;
}

static wm_json_t *parse_ok(const char *text)
{
    wm_json_t *v = NULL;
    wm_json_error_t err;
    int rc = wm_json_parse(&arena, text, strlen(text), &v, &err);
    if (rc != 0)
        print_error("unexpected failure on %s: %s\n", text, err.msg);
    assert_int_equal(rc, 0);
    assert_non_null(v);
    return v;
}

static int parse_rc(const char *text, size_t len, wm_json_error_t *err)
{
    wm_json_t *v = NULL;
    return wm_json_parse(&arena, text, len, &v, err);
}

static void assert_parse_fails(const char *text)
{
    wm_json_error_t err;
    int rc = parse_rc(text, strlen(text), &err);
    if (rc != WM_EPARSE)
        print_error("expected a parse error for %s\n", text);
    assert_int_equal(rc, WM_EPARSE);
    assert_true(err.msg[0] != '\0');
}

/* Writes v and returns the arena-independent static text (test-only). */
static const char *write_str(const wm_json_t *v)
{
    static char out[4096];
    wm_buf_t b;
    wm_buf_init(&b, 0);
    wm_json_write(&b, v);
    assert_int_equal(b.err, 0);
    assert_true(b.len < sizeof out);
    memcpy(out, b.data, b.len + 1);
    wm_buf_release(&b);
    return out;
}

static void test_literals(void **state)
{
    assert_int_equal(parse_ok("null")->type, WM_JSON_NULL);
    assert_int_equal(parse_ok("true")->type, WM_JSON_TRUE);
    assert_int_equal(parse_ok(" \t\r\nfalse \n")->type, WM_JSON_FALSE);
    assert_parse_fails("nul");
    assert_parse_fails("tru");
    assert_parse_fails("True");
    assert_parse_fails("nullx");
    assert_parse_fails("");
    assert_parse_fails("   ");
    assert_string_equal(wm_json_type_name(WM_JSON_TRUE), "boolean");
    assert_string_equal(wm_json_type_name(WM_JSON_OBJECT), "object");
    assert_string_equal(wm_json_type_name((wm_json_type_t)99), "unknown");
}

static void test_numbers(void **state)
{
    wm_json_t *v = parse_ok("42");
    assert_int_equal(v->type, WM_JSON_NUMBER);
    assert_true(v->is_int);
    assert_int_equal(v->i64, 42);
    v = parse_ok("-17");
    assert_true(v->is_int);
    assert_int_equal(v->i64, -17);
    v = parse_ok("1.5");
    assert_false(v->is_int);
    assert_true(v->u.num == 1.5);
    v = parse_ok("-2.5e3");
    assert_false(v->is_int);
    assert_true(v->u.num == -2500.0);
    v = parse_ok("1E-2");
    assert_true(v->u.num == 0.01);
    v = parse_ok("0.1");
    assert_true(v->u.num == 0.1);
    v = parse_ok("123456.789e-3");
    assert_true(v->u.num == 123.456789);
    v = parse_ok("1e+2");
    assert_true(v->u.num == 100.0);
    assert_false(v->is_int); /* an exponent makes it a double, even when integral */
    v = parse_ok("-0");
    assert_false(v->is_int);
    assert_true(v->u.num == 0.0 && signbit(v->u.num));
    v = parse_ok("1e-400");
    assert_true(v->u.num == 0.0);
    /* beyond the fast path: strtod must be used and agree */
    v = parse_ok("3.141592653589793238462643383279");
    assert_true(v->u.num == 3.141592653589793);
    v = parse_ok("1.7976931348623157e308");
    assert_true(v->u.num == 1.7976931348623157e308);
    v = parse_ok("4.9e-324");
    assert_true(v->u.num > 0.0);
}

static void test_big_integers(void **state)
{
    wm_json_t *v = parse_ok("9223372036854775807");
    assert_true(v->is_int);
    assert_true(v->i64 == INT64_MAX);
    v = parse_ok("-9223372036854775808");
    assert_true(v->is_int);
    assert_true(v->i64 == INT64_MIN);
    v = parse_ok("9223372036854775808");
    assert_false(v->is_int);
    assert_true(v->u.num == 9223372036854775808.0);
    v = parse_ok("-9223372036854775809");
    assert_false(v->is_int);
    v = parse_ok("18446744073709551616");
    assert_false(v->is_int);
    assert_true(v->u.num == 18446744073709551616.0);
    v = parse_ok("1234567890123456789");
    assert_true(v->is_int);
    assert_true(v->i64 == 1234567890123456789LL);
    /* 2^53 + 1 is exact as an int even though the double rounds */
    v = parse_ok("9007199254740993");
    assert_true(v->is_int);
    assert_true(v->i64 == 9007199254740993LL);
    assert_true(v->u.num == 9007199254740992.0);
    v = parse_ok("1700000000000");
    assert_true(v->i64 == 1700000000000LL);
    v = parse_ok("100000000000000000000000000000000000000000000000000");
    assert_false(v->is_int);
    assert_true(v->u.num == 1e50);
}

static void test_bad_numbers(void **state)
{
    assert_parse_fails("01");
    assert_parse_fails("-01");
    assert_parse_fails("00");
    assert_parse_fails("+1");
    assert_parse_fails("-");
    assert_parse_fails(".5");
    assert_parse_fails("1.");
    assert_parse_fails("1.e5");
    assert_parse_fails("1e");
    assert_parse_fails("1e+");
    assert_parse_fails("0x10");
    assert_parse_fails("NaN");
    assert_parse_fails("Infinity");
    assert_parse_fails("-Infinity");
    assert_parse_fails("1e999");
    assert_parse_fails("-1e999");
    assert_parse_fails("1 2");
}

static void test_strings(void **state)
{
    wm_json_t *v = parse_ok("\"hello\"");
    assert_int_equal(v->type, WM_JSON_STRING);
    assert_int_equal(v->len, 5);
    assert_string_equal(v->u.str, "hello");
    assert_string_equal(wm_json_str(v), "hello");
    v = parse_ok("\"\"");
    assert_int_equal(v->len, 0);
    assert_string_equal(v->u.str, "");
    v = parse_ok("\"基金定投 招商中证白酒\"");
    assert_string_equal(v->u.str, "基金定投 招商中证白酒");
    assert_int_equal(v->len, strlen("基金定投 招商中证白酒"));
    /* long plain string crosses the 8-byte fast scan many times */
    char big[1200];
    big[0] = '"';
    memset(big + 1, 'x', 1000);
    memcpy(big + 1001, "\"", 2);
    v = parse_ok(big);
    assert_int_equal(v->len, 1000);
    assert_null(wm_json_str(parse_ok("1")));
    assert_null(wm_json_str(NULL));
}

static void test_escapes(void **state)
{
    wm_json_t *v = parse_ok("\"a\\\"b\\\\c\\/d\\be\\ff\\ng\\rh\\ti\"");
    assert_string_equal(v->u.str, "a\"b\\c/d\be\ff\ng\rh\ti");
    v = parse_ok("\"\\u0041\\u00e9\\u4e2d\"");
    assert_string_equal(v->u.str, "A\xc3\xa9\xe4\xb8\xad");
    v = parse_ok("\"x\\u0000y\"");
    assert_int_equal(v->len, 3);
    assert_memory_equal(v->u.str, "x\0y", 4);
    v = parse_ok("\"\\uABCD\"");
    assert_string_equal(v->u.str, "\xea\xaf\x8d");
    assert_parse_fails("\"\\x\"");
    assert_parse_fails("\"\\u12\"");
    assert_parse_fails("\"\\u12G4\"");
    assert_parse_fails("\"\\\"");
    assert_parse_fails("\"abc");
    assert_parse_fails("\"\\");
    assert_parse_fails("\"a\tb\"");  /* raw control character */
    assert_parse_fails("\"a\nb\"");
    assert_parse_fails("\"\x1f\"");
}

static void test_surrogates(void **state)
{
    wm_json_t *v = parse_ok("\"\\ud83d\\ude00\"");
    assert_string_equal(v->u.str, "\xf0\x9f\x98\x80"); /* U+1F600 */
    v = parse_ok("\"\\uD834\\uDD1E!\"");
    assert_string_equal(v->u.str, "\xf0\x9d\x84\x9e!"); /* U+1D11E */
    v = parse_ok("\"\\udbff\\udfff\"");
    assert_string_equal(v->u.str, "\xf4\x8f\xbf\xbf"); /* U+10FFFF */
    assert_parse_fails("\"\\ud83d\"");
    assert_parse_fails("\"\\ud83dx\"");
    assert_parse_fails("\"\\ud83d\\u0041\"");
    assert_parse_fails("\"\\ude00\"");
    assert_parse_fails("\"\\ude00\\ud83d\"");
    assert_parse_fails("\"\\ud83d\\ud83d\"");
    assert_parse_fails("\"\\ud83d\\n\"");
}

static void test_invalid_utf8(void **state)
{
    assert_parse_fails("\"\xff\"");
    assert_parse_fails("\"\x80\"");         /* lone continuation */
    assert_parse_fails("\"\xc3\"");         /* truncated */
    assert_parse_fails("\"\xe4\xb8\"");     /* truncated 3-byte */
    assert_parse_fails("\"\xc0\xaf\"");     /* overlong '/' */
    assert_parse_fails("\"\xe0\x80\xaf\""); /* overlong 3-byte */
    assert_parse_fails("\"\xed\xa0\x80\""); /* encoded surrogate */
    assert_parse_fails("\"\xf4\x90\x80\x80\""); /* > U+10FFFF */
    assert_parse_fails("\"\xf5\x80\x80\x80\"");
    assert_parse_fails("\"\xe4\x41\xad\"");
    assert_parse_fails("{\"\xff\":1}");    /* keys are validated too */
    wm_json_t *v = parse_ok("\"\xc2\xa9\xef\xbf\xbf\xf0\x90\x80\x80\"");
    assert_int_equal(v->len, 9);
    /* truncation right at the end of the input, not just before a quote */
    wm_json_error_t err;
    assert_int_equal(parse_rc("\"\xe4\xb8\xad", 3, &err), WM_EPARSE);
}

static void test_arrays_objects(void **state)
{
    wm_json_t *v = parse_ok("[1, \"two\", [true, null], {\"k\": false}]");
    assert_int_equal(v->type, WM_JSON_ARRAY);
    assert_int_equal(v->len, 4);
    const wm_json_t *c = v->u.child;
    assert_int_equal(c->i64, 1);
    assert_null(c->key);
    c = c->next;
    assert_string_equal(c->u.str, "two");
    c = c->next;
    assert_int_equal(c->type, WM_JSON_ARRAY);
    assert_int_equal(c->len, 2);
    assert_int_equal(c->u.child->type, WM_JSON_TRUE);
    assert_int_equal(c->u.child->next->type, WM_JSON_NULL);
    c = c->next;
    assert_int_equal(c->type, WM_JSON_OBJECT);
    assert_int_equal(wm_json_get(c, "k")->type, WM_JSON_FALSE);
    assert_null(c->next);

    v = parse_ok("{\"type\":\"track\",\"time\":1700000000000,\"properties\":{\"a\":1}}");
    assert_int_equal(v->len, 3);
    assert_string_equal(wm_json_str(wm_json_get(v, "type")), "track");
    assert_int_equal(wm_json_get(v, "time")->i64, 1700000000000LL);
    assert_int_equal(wm_json_get(wm_json_get(v, "properties"), "a")->i64, 1);
    assert_null(wm_json_get(v, "missing"));
    assert_null(wm_json_get(wm_json_get(v, "type"), "x")); /* not an object */
    assert_null(wm_json_get(NULL, "x"));
    /* member order is kept */
    assert_string_equal(v->u.child->key, "type");
    assert_int_equal(v->u.child->key_len, 4);
    assert_string_equal(v->u.child->next->next->key, "properties");

    assert_int_equal(parse_ok("[]")->len, 0);
    assert_null(parse_ok("{ }")->u.child);
    /* escaped key */
    v = parse_ok("{\"a\\u0062\":1}");
    assert_non_null(wm_json_get(v, "ab"));
}

static void test_bad_structure(void **state)
{
    assert_parse_fails("[1,2,]");
    assert_parse_fails("{\"a\":1,}");
    assert_parse_fails("[,1]");
    assert_parse_fails("[1 2]");
    assert_parse_fails("[1,,2]");
    assert_parse_fails("{\"a\" 1}");
    assert_parse_fails("{\"a\":}");
    assert_parse_fails("{a:1}");
    assert_parse_fails("{'a':1}");
    assert_parse_fails("{1:1}");
    assert_parse_fails("[1");
    assert_parse_fails("[");
    assert_parse_fails("{");
    assert_parse_fails("{\"a\":1");
    assert_parse_fails("]");
    assert_parse_fails("[1]]");
    assert_parse_fails("{}{}");
    assert_parse_fails("[1] // comment");
    assert_parse_fails("/* c */ 1");
}

static void test_duplicates(void **state)
{
    wm_json_t *v = parse_ok("{\"a\":1,\"b\":2,\"a\":3}");
    assert_int_equal(v->len, 3); /* both kept */
    assert_int_equal(wm_json_get(v, "a")->i64, 3); /* last wins */
    assert_string_equal(write_str(v), "{\"a\":1,\"b\":2,\"a\":3}");
}

static void nest(char *buf, int depth)
{
    for (int i = 0; i < depth; i++)
        buf[i] = '[';
    for (int i = 0; i < depth; i++)
        buf[depth + i] = ']';
    buf[2 * depth] = '\0';
}

static void test_depth_limit(void **state)
{
    char buf[2 * (WM_JSON_DEPTH_MAX + 2) + 1];
    nest(buf, WM_JSON_DEPTH_MAX);
    assert_int_equal(parse_ok(buf)->type, WM_JSON_ARRAY);
    nest(buf, WM_JSON_DEPTH_MAX + 1);
    wm_json_error_t err;
    assert_int_equal(parse_rc(buf, strlen(buf), &err), WM_ELIMIT);
    assert_int_equal(err.offset, WM_JSON_DEPTH_MAX);
    assert_non_null(strstr(err.msg, "deep"));
    /* objects count too; a huge input must not recurse past the limit */
    static char deep[600001];
    for (int i = 0; i < 100000; i++)
        memcpy(deep + 6 * i, "{\"a\":[", 6);
    assert_int_equal(parse_rc(deep, 600000, &err), WM_ELIMIT);
}

static void test_error_offsets(void **state)
{
    wm_json_error_t err;
    assert_int_equal(parse_rc("[1,2,]", 6, &err), WM_EPARSE);
    assert_int_equal(err.offset, 5);
    assert_non_null(strstr(err.msg, "at byte 5"));
    assert_int_equal(parse_rc("{\"a\":01}", 8, &err), WM_EPARSE);
    assert_int_equal(err.offset, 5);
    assert_non_null(strstr(err.msg, "leading zero"));
    assert_int_equal(parse_rc("\"ab\xff\"", 5, &err), WM_EPARSE);
    assert_int_equal(err.offset, 3);
    assert_non_null(strstr(err.msg, "UTF-8"));
    assert_int_equal(parse_rc("  {} x", 6, &err), WM_EPARSE);
    assert_int_equal(err.offset, 5);
    assert_non_null(strstr(err.msg, "trailing"));
    assert_int_equal(parse_rc("\"abc", 4, &err), WM_EPARSE);
    assert_int_equal(err.offset, 0);
    assert_non_null(strstr(err.msg, "unterminated"));
    /* NULL err is allowed */
    assert_int_equal(parse_rc("[", 1, NULL), WM_EPARSE);
}

static void test_never_reads_past_len(void **state)
{
    /* the bytes after len would make these valid; they must not be seen */
    wm_json_error_t err;
    assert_int_equal(parse_rc("[1]", 2, &err), WM_EPARSE);
    assert_int_equal(parse_rc("\"abc\"", 4, &err), WM_EPARSE);
    assert_int_equal(parse_rc("true", 3, &err), WM_EPARSE);
    assert_int_equal(parse_rc("12345", 2, &err), 0);
    wm_json_t *v;
    assert_int_equal(wm_json_parse(&arena, "12345", 2, &v, &err), 0);
    assert_int_equal(v->i64, 12);
    /* embedded NUL in the input is not whitespace */
    assert_int_equal(parse_rc("1\0", 2, &err), WM_EPARSE);
}

static void test_write_round_trip(void **state)
{
    const char *cases[] = {
        "null", "true", "false", "0", "-1", "9223372036854775807", "-9223372036854775808",
        "1.5", "0.1", "-0", "1e+300", "\"\"", "\"a\\\"b\\\\c\\n\\u0001\\u001f\"",
        "\"中文\"", "[]", "{}", "[1,[2,[3]],{\"a\":{\"b\":null}}]",
        "{\"type\":\"track\",\"event\":\"ViewFundDetail\",\"time\":1700000000000,"
        "\"properties\":{\"$is_login_id\":true,\"fund_name\":\"易方达蓝筹\",\"nav\":1.2345}}",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_string_equal(write_str(parse_ok(cases[i])), cases[i]);
    /* normalisation: whitespace dropped, escapes minimal, \/ and \u00e9 literal */
    assert_string_equal(write_str(parse_ok(" [ 1 , 2 ] ")), "[1,2]");
    assert_string_equal(write_str(parse_ok("\"\\/\\u00e9\\b\\f\\r\\t\"")), "\"/\xc3\xa9\\b\\f\\r\\t\"");
    /* parsed non-integer numbers are written as their literal (no re-formatting
     * on the ingest path); computed doubles get the shortest round-trip form */
    assert_string_equal(write_str(parse_ok("1E2")), "1E2");
    assert_string_equal(write_str(parse_ok("1.50")), "1.50");
    wm_json_t *built = wm_json_new_num(&arena, 0.1 + 0.2);
    assert_non_null(built);
    assert_string_equal(write_str(built), "0.30000000000000004");
    assert_string_equal(write_str(parse_ok("\"\\u0000\"")), "\"\\u0000\"");
    /* doubles round-trip exactly */
    const char *dbl[] = {"0.30000000000000004", "2.2250738585072014e-308", "1.7976931348623157e+308",
                         "5e-324", "123456.789"};
    for (size_t i = 0; i < sizeof dbl / sizeof dbl[0]; i++) {
        wm_json_t *v = parse_ok(dbl[i]);
        wm_json_t *w = parse_ok(write_str(v));
        assert_true(v->u.num == w->u.num);
    }
}

static void test_builders(void **state)
{
    wm_json_t *o = wm_json_new(&arena, WM_JSON_OBJECT);
    wm_json_t *arr = wm_json_new(&arena, WM_JSON_ARRAY);
    assert_int_equal(wm_json_append(&arena, o, "s", wm_json_new_str(&arena, "x\"y", 3)), 0);
    assert_int_equal(wm_json_append(&arena, o, "i", wm_json_new_int(&arena, -5)), 0);
    assert_int_equal(wm_json_append(&arena, o, "d", wm_json_new_num(&arena, 2.5)), 0);
    assert_int_equal(wm_json_append(&arena, o, "n", wm_json_new_num(&arena, 3.0)), 0);
    assert_int_equal(wm_json_append(&arena, o, "inf", wm_json_new_num(&arena, INFINITY)), 0);
    assert_int_equal(wm_json_append(&arena, o, "big", wm_json_new_num(&arena, 1e300)), 0);
    assert_int_equal(wm_json_append(&arena, arr, NULL, wm_json_new(&arena, WM_JSON_TRUE)), 0);
    assert_int_equal(wm_json_append(&arena, o, "a", arr), 0);
    assert_int_equal(o->len, 7);
    assert_string_equal(write_str(o),
                        "{\"s\":\"x\\\"y\",\"i\":-5,\"d\":2.5,\"n\":3,\"inf\":null,\"big\":1e+300,\"a\":[true]}");
    assert_int_equal(wm_json_append(&arena, o, NULL, wm_json_new(&arena, WM_JSON_NULL)), WM_EINVAL);
    assert_int_equal(wm_json_append(&arena, wm_json_new_int(&arena, 1), NULL, arr), WM_EINVAL);
    assert_int_equal(wm_json_append(&arena, NULL, "k", arr), WM_EINVAL);
    assert_int_equal(wm_json_append(&arena, o, "k", NULL), WM_EINVAL);
}

static void test_out_of_memory(void **state)
{
    const char *text = "{\"a\":[1,2,3],\"b\":\"a long enough string value\",\"c\":{\"d\":1.5e300}}";
    /* arena limit: every prefix of the budget fails cleanly with ENOMEM */
    int ok_seen = 0;
    for (size_t limit = 0; limit < 2048; limit += 8) {
        wm_arena_t a;
        wm_arena_init(&a, 256);
        a.limit_bytes = limit;
        wm_json_t *v;
        int rc = wm_json_parse(&a, text, strlen(text), &v, NULL);
        assert_true(rc == 0 || rc == WM_ENOMEM);
        ok_seen |= rc == 0;
        wm_arena_release(&a);
    }
    assert_true(ok_seen);
    /* allocator failure */
    for (long n = 0; n < 4; n++) {
        wm_arena_t a;
        wm_arena_init(&a, 64);
        wm_alloc_fail_after(n);
        wm_json_t *v;
        int rc = wm_json_parse(&a, text, strlen(text), &v, NULL);
        wm_alloc_fail_after(-1);
        assert_int_equal(rc, WM_ENOMEM);
        wm_arena_release(&a);
    }
}

/* wm_json_find_member against the full parse: the same member value. */
static void test_find_member(void **state)
{
    (void)state;
    wm_arena_t *a = &arena;
    const char *doc = "{\"a\":1, \"b\" : {\"x\":[1,{\"a\":\"}\"}],\"y\":\"q\\\"\"},"
                      "\"risk_level\":\"C3\",\"s\":\"a,b}\",\"n\":null,\"last\":-2.5e3}";
    const char *keys[] = {"a", "b", "risk_level", "s", "n", "last"};
    wm_json_t *root;
    wm_json_error_t je;
    assert_int_equal(wm_json_parse(a, doc, strlen(doc), &root, &je), 0);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *v;
        size_t vl;
        assert_int_equal(wm_json_find_member(doc, strlen(doc), keys[i], &v, &vl), 0);
        wm_json_t *got;
        assert_int_equal(wm_json_parse(a, v, vl, &got, &je), 0);
        wm_buf_t b1, b2;
        wm_buf_init(&b1, 0);
        wm_buf_init(&b2, 0);
        wm_json_write(&b1, got);
        wm_json_write(&b2, wm_json_get(root, keys[i]));
        assert_int_equal(b1.len, b2.len);
        assert_memory_equal(b1.data, b2.data, b1.len);
        wm_buf_release(&b1);
        wm_buf_release(&b2);
    }
    const char *v;
    size_t vl;
    /* nested keys are not top-level members */
    assert_int_equal(wm_json_find_member(doc, strlen(doc), "x", &v, &vl), WM_ENOTFOUND);
    assert_int_equal(wm_json_find_member(doc, strlen(doc), "y", &v, &vl), WM_ENOTFOUND);
    assert_int_equal(wm_json_find_member("{}", 2, "a", &v, &vl), WM_ENOTFOUND);
    assert_int_equal(wm_json_find_member("[1]", 3, "a", &v, &vl), WM_EPARSE);
    assert_int_equal(wm_json_find_member("{\"a\":", 5, "a", &v, &vl), WM_EPARSE);
    assert_int_equal(wm_json_find_member("{\"a\":\"x", 8, "a", &v, &vl), WM_EPARSE);
    /* never reads past len: the member after the cut is not seen */
    assert_int_equal(wm_json_find_member(doc, 8, "b", &v, &vl), WM_EPARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_literals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_numbers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_integers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_numbers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_strings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_surrogates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_arrays_objects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_structure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_depth_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_offsets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_never_reads_past_len, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_builders, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_find_member, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
