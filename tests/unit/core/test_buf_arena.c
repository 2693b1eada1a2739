/*
 * test_buf_arena.c - the growable buffer (limits, sticky errors, escaping,
 * integer formatting, steal) and the bump arena (alignment, chunking, big
 * allocations, reset/release, limits, allocator failure).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "waymark/alloc.h"
#include "waymark/arena.h"
#include "waymark/buf.h"
#include "waymark/error.h"

static void test_buf_append(void **state)
{
    wm_buf_t b;
    wm_buf_init(&b, 0);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    wm_buf_puts(&b, "hello");
    wm_buf_putc(&b, ' ');
    wm_buf_append(&b, "world!!", 5);
    assert_int_equal(b.len, 11);
    assert_string_equal(b.data, "hello world");
    wm_buf_printf(&b, " %d-%s", 42, "x");
    assert_string_equal(b.data, "hello world 42-x");
    /* growth across many doublings keeps the content */
    for (int i = 0; i < 10000; i++)
        wm_buf_putc(&b, (char)('a' + i % 26));
    assert_int_equal(b.len, 16 + 10000);
    assert_int_equal(b.data[16], 'a');
    assert_int_equal(b.data[16 + 25], 'z');
    assert_int_equal(b.data[b.len], '\0');
    assert_true(b.cap > b.len);
    assert_int_equal(b.err, 0);
    wm_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    assert_non_null(b.data); /* memory kept */
    wm_buf_release(&b);
    assert_null(b.data);
    wm_buf_puts(&b, "again"); /* usable after release */
    assert_string_equal(b.data, "again");
    wm_buf_release(&b);
}

static void test_buf_limit_sticky(void **state)
{
    wm_buf_t b;
    wm_buf_init(&b, 10);
    wm_buf_puts(&b, "0123456789");
    assert_int_equal(b.err, 0);
    assert_int_equal(b.len, 10);
    wm_buf_putc(&b, 'x');
    assert_int_equal(b.err, WM_ELIMIT);
    assert_int_equal(b.len, 10);
    /* later appends are ignored, even ones that would fit */
    wm_buf_reset(&b);
    assert_int_equal(b.err, 0);
    wm_buf_puts(&b, "abc");
    wm_buf_append(&b, "0123456789", 10);
    assert_int_equal(b.err, WM_ELIMIT);
    wm_buf_putc(&b, 'd');
    wm_buf_printf(&b, "%s", "e");
    wm_buf_put_i64(&b, 1);
    wm_buf_json_str(&b, "f", 1);
    assert_string_equal(b.data, "abc");
    assert_int_equal(wm_buf_reserve(&b, 1), WM_ELIMIT);
    wm_buf_release(&b);
    /* a request for more than the maximum, and one that would wrap size_t */
    wm_buf_init(&b, 100);
    assert_int_equal(wm_buf_reserve(&b, 101), WM_ELIMIT);
    wm_buf_reset(&b);
    assert_int_equal(wm_buf_reserve(&b, SIZE_MAX), WM_ELIMIT);
    wm_buf_reset(&b);
    wm_buf_json_str(&b, "x", SIZE_MAX);
    assert_int_equal(b.err, WM_ELIMIT);
    wm_buf_release(&b);
}

static void test_buf_oom(void **state)
{
    wm_buf_t b;
    wm_buf_init(&b, 0);
    wm_alloc_fail_after(0);
    wm_buf_puts(&b, "x");
    wm_alloc_fail_after(-1);
    assert_int_equal(b.err, WM_ENOMEM);
    wm_buf_puts(&b, "y"); /* sticky */
    assert_int_equal(b.err, WM_ENOMEM);
    assert_null(b.data);
    wm_buf_reset(&b);
    wm_buf_puts(&b, "z");
    assert_string_equal(b.data, "z");
    wm_buf_release(&b);
}

static void test_buf_i64(void **state)
{
    wm_buf_t b;
    wm_buf_init(&b, 0);
    int64_t vals[] = {0, 7, -7, 1700000000000LL, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        wm_buf_put_i64(&b, vals[i]);
        wm_buf_putc(&b, ',');
    }
    assert_string_equal(b.data, "0,7,-7,1700000000000,9223372036854775807,-9223372036854775808,");
    wm_buf_release(&b);
}

static void test_buf_json_str(void **state)
{
    wm_buf_t b;
    wm_buf_init(&b, 0);
    wm_buf_json_str(&b, "plain", 5);
    assert_string_equal(b.data, "\"plain\"");
    wm_buf_reset(&b);
    wm_buf_json_str(&b, "a\"b\\c\nd\re\tf\bg\fh", 15);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\nd\\re\\tf\\bg\\fh\"");
    wm_buf_reset(&b);
    wm_buf_json_str(&b, "\x00\x01\x1f\x7f", 4);
    assert_string_equal(b.data, "\"\\u0000\\u0001\\u001f\x7f\"");
    wm_buf_reset(&b);
    wm_buf_json_str(&b, "中文/", strlen("中文/"));
    assert_string_equal(b.data, "\"中文/\"");
    wm_buf_reset(&b);
    wm_buf_json_str(&b, "", 0);
    assert_string_equal(b.data, "\"\"");
    wm_buf_release(&b);
}

static void test_buf_steal(void **state)
{
    wm_buf_t b;
    wm_buf_init(&b, 50);
    wm_buf_puts(&b, "owned");
    size_t n = 0;
    char *s = wm_buf_steal(&b, &n);
    assert_int_equal(n, 5);
    assert_string_equal(s, "owned");
    wm_free(s);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.max_bytes, 50); /* the limit survives */
    s = wm_buf_steal(&b, &n);          /* empty buffer: "" */
    assert_non_null(s);
    assert_int_equal(n, 0);
    assert_string_equal(s, "");
    wm_free(s);
    wm_buf_release(&b);
}

static void test_arena_alloc(void **state)
{
    wm_arena_t a;
    wm_arena_init(&a, 256);
    assert_int_equal(a.chunk_bytes, 256);
    char *prev = NULL;
    for (size_t n = 1; n < 100; n++) {
        char *p = wm_arena_alloc(&a, n);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 8, 0);
        memset(p, (int)n, n); /* ASan would flag an overlap into metadata */
        assert_true(p != prev);
        prev = p;
    }
    assert_true(a.used_bytes >= 99 * 100 / 2);
    char *s = wm_arena_strndup(&a, "abcdef", 3);
    assert_string_equal(s, "abc");
    wm_arena_release(&a);
    assert_null(a.head);
    assert_int_equal(a.used_bytes, 0);
}

static void test_arena_distinct(void **state)
{
    /* allocations never overlap, including big ones interleaved with small */
    wm_arena_t a;
    wm_arena_init(&a, 128);
    unsigned char *ptrs[64];
    size_t sizes[64];
    for (int i = 0; i < 64; i++) {
        sizes[i] = (i % 5 == 0) ? 500 + (size_t)i : 8 + (size_t)i;
        ptrs[i] = wm_arena_alloc(&a, sizes[i]);
        assert_non_null(ptrs[i]);
        memset(ptrs[i], i, sizes[i]);
    }
    for (int i = 0; i < 64; i++)
        for (size_t j = 0; j < sizes[i]; j++)
            assert_int_equal(ptrs[i][j], i);
    wm_arena_release(&a);
}

static void test_arena_big_keeps_current_chunk(void **state)
{
    wm_arena_t a;
    wm_arena_init(&a, 1024);
    char *small1 = wm_arena_alloc(&a, 16);
    char *big = wm_arena_alloc(&a, 4096);
    char *small2 = wm_arena_alloc(&a, 16);
    assert_non_null(big);
    /* the big block got its own chunk; small ones continue the current one */
    assert_ptr_equal(small2, small1 + 16);
    memset(big, 1, 4096);
    wm_arena_release(&a);
}

static void test_arena_reset(void **state)
{
    wm_arena_t a;
    wm_arena_init(&a, 512);
    for (int i = 0; i < 50; i++)
        assert_non_null(wm_arena_alloc(&a, 100));
    assert_non_null(wm_arena_alloc(&a, 5000));
    assert_true(a.used_bytes >= 50 * 104);
    wm_arena_reset(&a);
    assert_int_equal(a.used_bytes, 0);
    /* after reset at most one chunk remains and it is reused */
    assert_non_null(a.head);
    char *p = wm_arena_alloc(&a, 8);
    char *q = wm_arena_alloc(&a, 8);
    assert_ptr_equal(q, p + 8);
    wm_arena_reset(&a);
    char *p2 = wm_arena_alloc(&a, 8);
    assert_ptr_equal(p2, p); /* same memory handed out again */
    wm_arena_release(&a);
    /* reset of an empty arena, and a reset whose head is a big chunk */
    wm_arena_init(&a, 64);
    wm_arena_reset(&a);
    assert_null(a.head);
    assert_non_null(wm_arena_alloc(&a, 1000));
    wm_arena_reset(&a);
    assert_non_null(wm_arena_alloc(&a, 8));
    wm_arena_release(&a);
}

static void test_arena_limit(void **state)
{
    wm_arena_t a;
    wm_arena_init(&a, 256);
    a.limit_bytes = 100;
    assert_non_null(wm_arena_alloc(&a, 96));
    assert_null(wm_arena_alloc(&a, 8));
    assert_null(wm_arena_alloc(&a, 4)); /* the limit counts the rounded size */
    assert_int_equal(a.used_bytes, 96);
    wm_arena_reset(&a);
    assert_non_null(wm_arena_alloc(&a, 96)); /* reset gives the budget back */
    wm_arena_release(&a);
}

static void test_arena_overflow_and_oom(void **state)
{
    wm_arena_t a;
    wm_arena_init(&a, 0);
    assert_int_equal(a.chunk_bytes, 64 * 1024); /* default */
    assert_null(wm_arena_alloc(&a, SIZE_MAX));
    assert_null(wm_arena_alloc(&a, SIZE_MAX - 8));
    assert_null(wm_arena_strndup(&a, "x", SIZE_MAX - 4));
    wm_alloc_fail_after(0);
    assert_null(wm_arena_alloc(&a, 8));
    wm_alloc_fail_after(-1);
    assert_non_null(wm_arena_alloc(&a, 8));
    wm_alloc_fail_after(0);
    assert_null(wm_arena_alloc(&a, 1 << 20)); /* big chunk behind the head */
    wm_alloc_fail_after(-1);
    wm_arena_release(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_append),
        cmocka_unit_test(test_buf_limit_sticky),
        cmocka_unit_test(test_buf_oom),
        cmocka_unit_test(test_buf_i64),
        cmocka_unit_test(test_buf_json_str),
        cmocka_unit_test(test_buf_steal),
        cmocka_unit_test(test_arena_alloc),
        cmocka_unit_test(test_arena_distinct),
        cmocka_unit_test(test_arena_big_keeps_current_chunk),
        cmocka_unit_test(test_arena_reset),
        cmocka_unit_test(test_arena_limit),
        cmocka_unit_test(test_arena_overflow_and_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
