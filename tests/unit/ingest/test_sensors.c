/*
 * test_sensors.c - the Sensors wire decoder against the golden bodies of
 * sensors-protocol.md 2.7 and the shapes each SDK sends (1.2), plus the
 * transport helpers: form parsing, base64, gunzip, Java hashCode.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include <cmocka.h>

#include "waymark/error.h"
#include "waymark/ingest.h"

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

static const char golden_post[] =
    "data_list=H4sIAAAAAAACA0VOWwrCQAy8S%2FBzKY2vag%2FgEfwRWbSNGmy3y25aKaV3N10Q8xNmMpmZywQyeoISJNyqNx"
    "iggZwoPjN9Tr2rlao5CrtKLNd66DHPUVnhVv%2BwyP9jwCabJMT1ZrvbF4ejgYbvUE6wShv8KK%2FOqcOC7UAhssISMEPM8h"
    "%2FfkqqWvKqrCWYDPnSegjDF5MXRNt2TXcqS0JOBh9a1SV5C6oMwz9cvc5Son%2BMAAAA%3D&gzip=1";

static const char golden_get[] =
    "project=default&data=eyJ0eXBlIjoidHJhY2siLCJldmVudCI6IlZpZXdGdW5kIiwiZGlzdGluY3RfaWQiOiJ1MTAwMSIs"
    "InRpbWUiOjE3MDAwMDAwMDAwMDAsIl90cmFja19pZCI6MTIzNDU2Nzg5LCJsaWIiOnsiJGxpYiI6InB5dGhvbiIsIiRsaWJf"
    "dmVyc2lvbiI6IjEuMTEuMCIsIiRsaWJfbWV0aG9kIjoiY29kZSJ9LCJwcm9wZXJ0aWVzIjp7IiRpc19sb2dpbl9pZCI6dHJ1"
    "ZSwiZnVuZF9jb2RlIjoiMDAwMDAxIn19&ext=crc%3D1403753974";

static const char track_json[] =
    "{\"type\":\"track\",\"event\":\"ViewFund\",\"distinct_id\":\"u1001\",\"time\":1700000000000,"
    "\"_track_id\":123456789,\"lib\":{\"$lib\":\"python\"},\"properties\":{\"fund_code\":\"000001\"}}";

static int decode(const char *query, const char *body, wm_batch_t *b, wm_sensors_info_t *info,
                  char *msg)
{
    wm_sensors_req_t req = {.query = query, .query_len = query ? strlen(query) : 0, .body = body,
                            .body_len = body ? strlen(body) : 0,
                            .ctx = {.ip = "192.0.2.7", .receive_time_ms = 1700000001000}};
    return wm_sensors_decode(&arena, &req, b, info, msg, 256);
}

static void check_golden_record(const wm_record_t *r)
{
    assert_int_equal(r->type, WM_REC_TRACK);
    assert_string_equal(r->event, "ViewFund");
    assert_string_equal(r->distinct_id, "u1001");
    assert_int_equal(r->time_ms, 1700000000000);
    assert_true(r->has_track_id);
    assert_int_equal(r->track_id, 123456789);
    assert_true(r->is_login_id);
    assert_string_equal(r->project, "default");
    assert_string_equal(wm_json_str(wm_json_get(r->lib, "$lib")), "python");
    assert_string_equal(wm_json_str(wm_json_get(r->lib, "$lib_version")), "1.11.0");
    assert_string_equal(wm_json_str(wm_json_get(r->properties, "fund_code")), "000001");
    assert_string_equal(r->ip, "192.0.2.7");
    assert_int_equal(r->receive_time_ms, 1700000001000);
}

/* base64(gzip(s)) using a real gzip wrapper, as the SDKs produce it */
static char *gzip_b64(const char *s, int gzip)
{
    unsigned char out[65536];
    size_t n = strlen(s);
    const unsigned char *src = (const unsigned char *)s;
    if (gzip) {
        z_stream zs = {0};
        assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
        zs.next_in = (unsigned char *)s;
        zs.avail_in = (uInt)n;
        zs.next_out = out;
        zs.avail_out = sizeof out;
        assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
        n = zs.total_out;
        deflateEnd(&zs);
        src = out;
    }
    wm_buf_t b;
    wm_buf_init(&b, 0);
    wm_base64_encode(&b, src, n);
    char *r = wm_arena_strndup(&arena, b.data, b.len);
    wm_buf_release(&b);
    return r;
}

/* percent-encodes everything but alphanumerics (what the iOS SDK does) */
static char *urlenc(const char *s)
{
    char *d = wm_arena_alloc(&arena, strlen(s) * 3 + 1), *p = d;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
            *p++ = (char)c;
        else
            p += sprintf(p, "%%%02X", c);
    }
    *p = 0;
    return d;
}

static void test_golden_post(void **state)
{
    (void)state;
    wm_batch_t b;
    wm_sensors_info_t info;
    char msg[256];
    int rc = decode(NULL, golden_post, &b, &info, msg);
    if (rc)
        fail_msg("%d %s", rc, msg);
    assert_int_equal(b.n, 1);
    assert_int_equal(b.n_ok, 1);
    assert_null(b.errors[0].code);
    assert_int_equal(info.gzip, 1);
    assert_false(info.crc_present);
    check_golden_record(&b.records[0]);
}

static void test_golden_get(void **state)
{
    (void)state;
    wm_batch_t b;
    wm_sensors_info_t info;
    char msg[256];
    assert_int_equal(decode(golden_get, NULL, &b, &info, msg), 0);
    assert_int_equal(b.n_ok, 1);
    assert_true(info.crc_present);
    assert_true(info.crc_ok);
    assert_int_equal(info.gzip, 0);
    assert_string_equal(info.project, "default");
    check_golden_record(&b.records[0]);
    /* a wrong crc is recorded, not rejected */
    char q[sizeof golden_get];
    strcpy(q, golden_get);
    q[strlen(q) - 1] = '5';
    assert_int_equal(decode(q, NULL, &b, &info, msg), 0);
    assert_true(info.crc_present);
    assert_false(info.crc_ok);
    assert_int_equal(b.n_ok, 1);
}

static void test_go_post_no_content_type(void **state)
{
    (void)state;
    /* Go: data (single object) + gzip=1, query carries project and token */
    char body[8192];
    snprintf(body, sizeof body, "data=%s&gzip=1", urlenc(gzip_b64(track_json, 1)));
    wm_batch_t b;
    wm_sensors_info_t info;
    char msg[256];
    assert_int_equal(decode("project=fund_app&token=abc", body, &b, &info, msg), 0);
    assert_int_equal(b.n_ok, 1);
    assert_string_equal(b.records[0].project, "fund_app");
    assert_string_equal(b.records[0].token, "abc");
    assert_string_equal(info.token, "abc");
    assert_false(b.records[0].is_login_id);
}

static void test_mp_text_plain(void **state)
{
    (void)state;
    /* MP batch: text/plain body data_list=<urlencoded b64 array>, no gzip;
     * the second record names its own project */
    char arr[4096], body[8192];
    snprintf(arr, sizeof arr,
             "[%s,{\"type\":\"track\",\"event\":\"$MPLaunch\",\"distinct_id\":\"o1\","
             "\"project\":\"mp\",\"_flush_time\":1700000000999,\"properties\":{\"$scene\":\"1001\"}}]",
             track_json);
    snprintf(body, sizeof body, "data_list=%s", urlenc(gzip_b64(arr, 0)));
    wm_batch_t b;
    char msg[256];
    assert_int_equal(decode("project=default", body, &b, NULL, msg), 0);
    assert_int_equal(b.n, 2);
    assert_int_equal(b.n_ok, 2);
    assert_string_equal(b.records[0].project, "default");
    assert_string_equal(b.records[1].project, "mp");
    assert_int_equal(b.records[1].flush_time_ms, 1700000000999);
}

static void test_js_image_get(void **state)
{
    (void)state;
    /* JS image beacon: data=<b64>&ext=crc%3D<hash>, no gzip; '+' left
     * unescaped by a sloppy client arrives as '+' or (form-decoded) ' ' */
    const char *obj = "{\"type\":\"track\",\"event\":\"$pageview\",\"distinct_id\":\"18e849\","
                      "\"properties\":{\"$url\":\"http://xx.com/?q=>>>\",\"$title\":\"\xe5\x9f\xba\xe9\x87\x91\"}}";
    char *b64 = gzip_b64(obj, 0);
    assert_non_null(strchr(b64, '+'));
    char q[4096];
    snprintf(q, sizeof q, "data=%s&ext=crc%%3D%d", b64, (int)wm_java_hashcode(b64, strlen(b64)));
    wm_batch_t b;
    wm_sensors_info_t info;
    char msg[256];
    assert_int_equal(decode(q, NULL, &b, &info, msg), 0);
    assert_int_equal(b.n_ok, 1);
    assert_true(info.crc_ok);
    assert_string_equal(wm_json_str(wm_json_get(b.records[0].properties, "$title")), "\xe5\x9f\xba\xe9\x87\x91");
    for (char *p = q; *p; p++)
        if (*p == '+')
            *p = ' ';
    assert_int_equal(decode(q, NULL, &b, &info, msg), 0);
    assert_int_equal(b.n_ok, 1);
    assert_true(info.crc_ok);
}

static void test_java_debug_one(void **state)
{
    (void)state;
    char arr[2048], body[8192];
    snprintf(arr, sizeof arr, "[%s]", track_json);
    snprintf(body, sizeof body, "gzip=1&data_list=%s", urlenc(gzip_b64(arr, 1)));
    wm_batch_t b;
    char msg[256];
    assert_int_equal(decode("project=default", body, &b, NULL, msg), 0);
    assert_int_equal(b.n, 1);
    assert_int_equal(b.n_ok, 1);
    assert_string_equal(b.records[0].event, "ViewFund");
}

static void test_raw_json_body_and_errors(void **state)
{
    (void)state;
    wm_batch_t b;
    char msg[256];
    assert_int_equal(decode("project=p", track_json, &b, NULL, msg), 0);
    assert_int_equal(b.n_ok, 1);
    assert_string_equal(b.records[0].project, "p");
    /* one bad record does not spoil the batch */
    char arr[2048];
    snprintf(arr, sizeof arr, "[%s,{\"type\":\"track\",\"distinct_id\":\"x\"},7]", track_json);
    assert_int_equal(decode(NULL, arr, &b, NULL, msg), 0);
    assert_int_equal(b.n, 3);
    assert_int_equal(b.n_ok, 1);
    assert_string_equal(b.errors[1].code, "missing_field");
    assert_string_equal(b.errors[1].field, "event");
    assert_string_equal(b.errors[2].code, "invalid_type");

    assert_int_equal(decode(NULL, "gzip=9&data_list=W3siZWtleSI6IngifV0%3D", &b, NULL, msg), WM_EUNSUPPORTED);
    assert_non_null(strstr(msg, "encrypt"));
    assert_int_equal(decode(NULL, "gzip=13&data_list=W10%3D", &b, NULL, msg), WM_EUNSUPPORTED);
    assert_int_equal(decode(NULL, "data=not*base64", &b, NULL, msg), WM_EPARSE);
    assert_non_null(strstr(msg, "base64"));
    assert_int_equal(decode(NULL, "gzip=1&data_list=SGVsbG8gd29ybGQ%3D", &b, NULL, msg), WM_EPARSE);
    assert_non_null(strstr(msg, "gzip"));
    assert_int_equal(decode(NULL, "data=eyJ0eXBlIjo%3D", &b, NULL, msg), WM_EPARSE); /* {"type": */
    assert_non_null(strstr(msg, "JSON"));
    assert_int_equal(decode(NULL, "data=MTI%3D", &b, NULL, msg), WM_EPARSE); /* 12 */
    assert_int_equal(decode("project=x", "foo=bar", &b, NULL, msg), WM_EPARSE);
    assert_non_null(strstr(msg, "data"));
    assert_int_equal(decode(NULL, "gzip=2&data=e30%3D", &b, NULL, msg), WM_EINVAL);
}

static void test_batch_limit(void **state)
{
    (void)state;
    wm_buf_t body;
    wm_buf_init(&body, 0);
    wm_buf_putc(&body, '[');
    for (int i = 0; i <= 10000; i++)
        wm_buf_puts(&body, i ? ",{}" : "{}");
    wm_buf_putc(&body, ']');
    wm_batch_t b;
    char msg[256];
    assert_int_equal(decode(NULL, body.data, &b, NULL, msg), WM_ELIMIT);
    wm_buf_release(&body);
}

/* ---- helpers ---- */

static void test_form_parse(void **state)
{
    (void)state;
    wm_params_t p = {0};
    const char *q = "a=1&b=x%2By+z&&c&a=2&%64ata=%zz&e=%4";
    assert_int_equal(wm_form_parse(&arena, q, strlen(q), &p), 0);
    assert_int_equal(p.n, 6);
    assert_string_equal(wm_params_get(&p, "a")->value, "2");
    assert_string_equal(wm_params_get(&p, "b")->value, "x+y+z");
    assert_string_equal(wm_params_get(&p, "c")->value, "");
    assert_string_equal(wm_params_get(&p, "data")->value, "%zz");
    assert_string_equal(wm_params_get(&p, "e")->value, "%4");
    assert_null(wm_params_get(&p, "zz"));
    /* appends */
    assert_int_equal(wm_form_parse(&arena, "a=3", 3, &p), 0);
    assert_string_equal(wm_params_get(&p, "a")->value, "3");
    assert_string_equal(wm_params_get(&p, "b")->value, "x+y+z");
}

static void test_base64(void **state)
{
    (void)state;
    unsigned char *out;
    size_t n;
    assert_int_equal(wm_base64_decode(&arena, "aGVsbG8=", 8, &out, &n), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(out, "hello", 5);
    assert_int_equal(wm_base64_decode(&arena, "aGVsbG8", 7, &out, &n), 0); /* no padding */
    assert_memory_equal(out, "hello", 5);
    assert_int_equal(wm_base64_decode(&arena, "aGVs\r\nbG8=\n", 11, &out, &n), 0);
    assert_int_equal(n, 5);
    assert_int_equal(wm_base64_decode(&arena, "-_8", 3, &out, &n), 0); /* URL-safe */
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 0xfb);
    assert_int_equal(out[1], 0xff);
    assert_int_equal(wm_base64_decode(&arena, " /8", 3, &out, &n), 0); /* ' ' = '+' */
    assert_int_equal(out[0], 0xfb);
    assert_int_equal(wm_base64_decode(&arena, "aGVsb", 5, &out, &n), WM_EPARSE);
    assert_int_equal(wm_base64_decode(&arena, "aG!s", 4, &out, &n), WM_EPARSE);
    assert_int_equal(wm_base64_decode(&arena, "aGU=x", 5, &out, &n), WM_EPARSE);
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    for (size_t len = 0; len < 7; len++) {
        wm_buf_t b;
        wm_buf_init(&b, 0);
        wm_base64_encode(&b, all + 250 - len, len);
        assert_int_equal(b.len, (len + 2) / 3 * 4);
        assert_int_equal(wm_base64_decode(&arena, b.data ? b.data : "", b.len, &out, &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(out, all + 250 - len, len);
        wm_buf_release(&b);
    }
}

static void test_gunzip(void **state)
{
    (void)state;
    char src[5000];
    for (size_t i = 0; i < sizeof src - 1; i++)
        src[i] = (char)('a' + i % 7);
    src[sizeof src - 1] = 0;
    for (int wbits = 0; wbits < 3; wbits++) { /* gzip, zlib, raw deflate */
        static const int bits[] = {15 + 16, 15, -15};
        unsigned char z[8000];
        z_stream zs = {0};
        assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, bits[wbits], 8, Z_DEFAULT_STRATEGY), Z_OK);
        zs.next_in = (unsigned char *)src;
        zs.avail_in = sizeof src - 1;
        zs.next_out = z;
        zs.avail_out = sizeof z;
        assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
        size_t zn = zs.total_out;
        deflateEnd(&zs);
        char *out;
        size_t n;
        assert_int_equal(wm_gunzip(&arena, z, zn, 1 << 20, &out, &n), 0);
        assert_int_equal(n, sizeof src - 1);
        assert_memory_equal(out, src, n);
        assert_int_equal(wm_gunzip(&arena, z, zn, 1000, &out, &n), WM_ELIMIT);
        assert_int_equal(wm_gunzip(&arena, z, zn / 2, 1 << 20, &out, &n), WM_EPARSE); /* truncated */
    }
    char *out;
    size_t n;
    assert_int_equal(wm_gunzip(&arena, "not gzip at all", 15, 1 << 20, &out, &n), WM_EPARSE);
}

static void test_hashcode(void **state)
{
    (void)state;
    assert_int_equal(wm_java_hashcode("", 0), 0);
    assert_int_equal(wm_java_hashcode("hello", 5), 99162322);
    /* "基金" = U+57FA U+91D1: 0x57FA*31 + 0x91D1 */
    assert_int_equal(wm_java_hashcode("\xe5\x9f\xba\xe9\x87\x91", 6), 0x57FA * 31 + 0x91D1);
    /* U+1F600 = surrogates D83D DE00 */
    assert_int_equal(wm_java_hashcode("\xf0\x9f\x98\x80", 4), 0xD83D * 31 + 0xDE00);
    /* overflow wraps like Java int */
    assert_int_equal(wm_java_hashcode("polygenelubricants", 18), (int32_t)0x80000000);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_golden_post), T(test_golden_get),        T(test_go_post_no_content_type),
        T(test_mp_text_plain), T(test_js_image_get),    T(test_java_debug_one),
        T(test_raw_json_body_and_errors), T(test_batch_limit), T(test_form_parse),
        T(test_base64),      T(test_gunzip),            T(test_hashcode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
