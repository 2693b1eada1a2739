/*
 * test_crc32c.c - CRC32C against published vectors and against a bit-at-a-time
 * reference, for the table path, the SSE4.2 path (when the CPU has it) and
 * the dispatched entry point, over every alignment and short length: those
 * are where the head/tail loops of the wide paths go wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "waymark/crc32c.h"

/* Test-only entry points defined in src/core/crc32c.c. */
uint32_t wm__crc32c_sw(uint32_t crc, const void *data, size_t n);
uint32_t wm__crc32c_hw(uint32_t crc, const void *data, size_t n);
int wm__crc32c_hw_available(void);

/* The definition, one bit at a time: shares nothing with the code under test. */
static uint32_t crc_bitwise(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    while (n--) {
        c ^= *p++;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return ~c;
}

static void test_check_value(void **state)
{
    (void)state;
    assert_int_equal(wm_crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(wm__crc32c_sw(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(crc_bitwise((const uint8_t *)"123456789", 9), 0xE3069283u);
    assert_int_equal(wm_crc32c(0, "", 0), 0);
    assert_int_equal(wm_crc32c(0, NULL, 0), 0);
}

/* RFC 3720 (iSCSI) appendix B.4. */
static void test_rfc3720_vectors(void **state)
{
    (void)state;
    uint8_t buf[32];
    memset(buf, 0, sizeof buf);
    assert_int_equal(wm_crc32c(0, buf, 32), 0x8A9136AAu);
    memset(buf, 0xFF, sizeof buf);
    assert_int_equal(wm_crc32c(0, buf, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    assert_int_equal(wm_crc32c(0, buf, 32), 0x46DD794Eu);
    assert_int_equal(wm__crc32c_sw(0, buf, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)(31 - i);
    assert_int_equal(wm_crc32c(0, buf, 32), 0x113FDB5Cu);
}

static void fill_pattern(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
}

static void test_all_alignments_and_short_lengths(void **state)
{
    (void)state;
    uint8_t raw[64 + 16];
    fill_pattern(raw, sizeof raw, 7);
    int hw = wm__crc32c_hw_available();
    for (size_t align = 0; align < 8; align++) {
        for (size_t n = 0; n <= 64; n++) {
            const uint8_t *p = raw + align;
            uint32_t want = crc_bitwise(p, n);
            assert_int_equal(wm__crc32c_sw(0, p, n), want);
            assert_int_equal(wm_crc32c(0, p, n), want);
            if (hw)
                assert_int_equal(wm__crc32c_hw(0, p, n), want);
        }
    }
}

static void test_chaining_equals_one_shot(void **state)
{
    (void)state;
    uint8_t buf[300];
    fill_pattern(buf, sizeof buf, 99);
    uint32_t whole = wm_crc32c(0, buf, sizeof buf);
    assert_int_equal(whole, crc_bitwise(buf, sizeof buf));
    for (size_t cut = 0; cut <= sizeof buf; cut += 7) {
        uint32_t c = wm_crc32c(0, buf, cut);
        assert_int_equal(wm_crc32c(c, buf + cut, sizeof buf - cut), whole);
        uint32_t s = wm__crc32c_sw(0, buf, cut);
        assert_int_equal(wm__crc32c_sw(s, buf + cut, sizeof buf - cut), whole);
    }
}

static void test_large_buffer_paths_agree(void **state)
{
    (void)state;
    static uint8_t big[1 << 16];
    fill_pattern(big, sizeof big, 3);
    uint32_t want = crc_bitwise(big + 3, sizeof big - 3);
    assert_int_equal(wm__crc32c_sw(0, big + 3, sizeof big - 3), want);
    assert_int_equal(wm_crc32c(0, big + 3, sizeof big - 3), want);
    if (wm__crc32c_hw_available())
        assert_int_equal(wm__crc32c_hw(0, big + 3, sizeof big - 3), want);
    /* A single flipped bit must change the checksum. */
    big[1000] ^= 0x10;
    assert_int_not_equal(wm_crc32c(0, big + 3, sizeof big - 3), want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_value),
        cmocka_unit_test(test_rfc3720_vectors),
        cmocka_unit_test(test_all_alignments_and_short_lengths),
        cmocka_unit_test(test_chaining_equals_one_shot),
        cmocka_unit_test(test_large_buffer_paths_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
