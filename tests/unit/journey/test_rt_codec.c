/*
 * test_rt_codec.c - the stored forms of journey instances and user/journey
 * rows: round trips, and every truncation or bad format byte rejected.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "journey/rt_internal.h"

static wm_inst_t sample(void)
{
    wm_inst_t in;
    memset(&in, 0, sizeof in);
    in.id = (1ull << 48) | 42;
    in.user_id = 123456789;
    in.version = 3;
    in.node = 7;
    in.state = ST_WAIT_EVENT;
    in.arm = 2;
    in.converted = 1;
    in.control = 0;
    in.steps = 11;
    in.entered_ms = 1795559494649;
    in.node_since_ms = 1795563155150;
    in.due_ms = INT64_MAX;
    in.goal_deadline_ms = -5;
    in.entry_pos.seq = 99;
    in.entry_pos.file = 4;
    in.entry_pos.offset = 1u << 30;
    strcpy(in.project, "default");
    strcpy(in.key, "fund_sip_companion");
    strcpy(in.match, "000001");
    strcpy(in.item, "");
    return in;
}

static void test_instance_round_trip(void **state)
{
    wm_inst_t in = sample(), out;
    unsigned char buf[WM_INST_ENC_MAX];
    size_t n = wm__inst_encode(&in, buf);
    assert_true(n < 140);   /* compact: the struct is 344 bytes */
    assert_true(wm__inst_decode(buf, n, &out));
    assert_memory_equal(&in, &out, sizeof in);
    /* longest names still fit the bound */
    memset(in.key, 'k', RT_NAME_MAX - 1);
    in.key[RT_NAME_MAX - 1] = 0;
    n = wm__inst_encode(&in, buf);
    assert_true(n <= WM_INST_ENC_MAX);
    assert_true(wm__inst_decode(buf, n, &out));
    assert_string_equal(out.key, in.key);
}

static void test_instance_rejects_damage(void **state)
{
    wm_inst_t in = sample(), out;
    unsigned char buf[WM_INST_ENC_MAX + 1];
    size_t n = wm__inst_encode(&in, buf);
    for (size_t cut = 0; cut < n; cut++)
        assert_false(wm__inst_decode(buf, cut, &out));
    buf[n] = 0;
    assert_false(wm__inst_decode(buf, n + 1, &out)); /* trailing bytes */
    buf[0] = 99;
    assert_false(wm__inst_decode(buf, n, &out)); /* unknown format */
}

static void test_juser_round_trip(void **state)
{
    wm_juser_t ju, out;
    memset(&ju, 0, sizeof ju);
    ju.live[0] = 5;
    ju.live[3] = 9; /* slots are compacted on the way through */
    ju.last_entered_ms = 1000;
    ju.last_exit_ms = 2000;
    ju.entries = 4;
    ju.cond_state = 1;
    unsigned char buf[WM_JUSER_ENC_MAX];
    size_t n = wm__juser_encode(&ju, buf);
    assert_int_equal(n, 1 + 1 + 16 + 21);
    assert_true(wm__juser_decode(buf, n, &out));
    assert_int_equal(out.live[0], 5);
    assert_int_equal(out.live[1], 9);
    assert_int_equal(out.live[3], 0);
    assert_int_equal(out.last_entered_ms, 1000);
    assert_int_equal(out.last_exit_ms, 2000);
    assert_int_equal(out.entries, 4);
    assert_int_equal(out.cond_state, 1);
    for (size_t cut = 0; cut < n; cut++)
        assert_false(wm__juser_decode(buf, cut, &out));
    buf[1] = WM_JUSER_LIVE_MAX + 1;
    assert_false(wm__juser_decode(buf, n, &out));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_instance_round_trip),
        cmocka_unit_test(test_instance_rejects_damage),
        cmocka_unit_test(test_juser_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
