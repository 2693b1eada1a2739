/*
 * test_time.c - durations, time zones (fixed offsets, Asia/Shanghai,
 * America/New_York around the 2026 DST changes, gaps and overlaps) and
 * trading calendars (the 2026 National Day holiday with make-up days, and
 * an exchange calendar without them).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "waymark/error.h"
#include "waymark/json.h"
#include "waymark/rules.h"

#define H (3600 * 1000LL)
#define DAY (24 * H)

static void test_duration(void **state)
{
    int64_t ms;
    struct { const char *s; int64_t ms; } ok[] = {
        {"30s", 30000}, {"15m", 900000}, {"2h", 2 * H}, {"7d", 7 * DAY}, {"1w", 7 * DAY},
        {"1d12h", 36 * H}, {"-7d", -7 * DAY}, {"500ms", 500}, {"1h30m15s", H + 1815000},
        {"0d", 0}, {"90d", 90 * DAY},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        assert_int_equal(wm_duration_parse(ok[i].s, &ms), 0);
        assert_int_equal(ms, ok[i].ms);
    }
    const char *bad[] = {"", "-", "7", "d", "7 d", "7days", "7D", "+7d", "1.5h", "7d ", " 7d",
                         "--7d", "99999999999999999999d", "1y", "1d-2h"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (wm_duration_parse(bad[i], &ms) != WM_EINVAL)
            print_error("accepted \"%s\"\n", bad[i]);
        assert_int_equal(wm_duration_parse(bad[i], &ms), WM_EINVAL);
    }
    assert_int_equal(wm_duration_parse(NULL, &ms), WM_EINVAL);
}

static void test_tz_fixed(void **state)
{
    const wm_tz_t *tz;
    struct { const char *name; int off; } ok[] = {
        {"UTC", 0}, {"GMT", 0}, {"Z", 0}, {"+08:00", 480}, {"+0800", 480}, {"+08", 480},
        {"-05:30", -330}, {"+14:00", 840},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        assert_int_equal(wm_tz_get(ok[i].name, &tz), 0);
        assert_int_equal(wm_tz_offset_min(tz, 1773144000000LL), ok[i].off);
        assert_string_equal(wm_tz_name(tz), ok[i].name);
    }
    const char *bad[] = {"+8", "+08:0", "+25:00", "+08:60", "../etc/passwd", "/etc/passwd",
                         "Asia/Nowhere", "", "Asia/Shang hai"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_true(wm_tz_get(bad[i], &tz) < 0);
    /* cached: the same object comes back */
    const wm_tz_t *a, *b;
    assert_int_equal(wm_tz_get("+08:00", &a), 0);
    assert_int_equal(wm_tz_get("+08:00", &b), 0);
    assert_ptr_equal(a, b);
}

static void test_tz_shanghai(void **state)
{
    const wm_tz_t *tz;
    assert_int_equal(wm_tz_get("Asia/Shanghai", &tz), 0);
    assert_int_equal(wm_tz_offset_min(tz, 1773144000000LL), 480);      /* 2026-03-10 */
    assert_int_equal(wm_tz_offset_min(tz, 1790812800000LL), 480);      /* 2026-10-01 */
    assert_int_equal(wm_tz_offset_min(tz, 4102444800000LL), 480);      /* 2100, past the table */
    /* China observed DST in 1986-1991: 1988-07-01 was +09:00 */
    assert_int_equal(wm_tz_offset_min(tz, 583718400000LL), 540);
    /* 2026-10-01 09:30 local = 01:30 UTC */
    assert_int_equal(wm_tz_local_to_utc(tz, 2026, 10, 1, 9, 30, 0), 1790818200000LL);
    assert_int_equal(wm_tz_local_day(tz, 1790818200000LL), 20727);
    /* 2026-09-30 16:00 UTC is already Oct 1 in Shanghai */
    assert_int_equal(wm_tz_local_day(tz, 1790784000000LL), 20727);
    assert_int_equal(wm_cond_day(1790784000000LL, 480), 20727);
    assert_int_equal(wm_cond_day(1790784000000LL, 0), 20726);
    assert_int_equal(wm_cond_day(-1, 0), -1);
}

static void test_tz_new_york(void **state)
{
    const wm_tz_t *tz;
    assert_int_equal(wm_tz_get("America/New_York", &tz), 0);
    /* 2026-03-08 02:00 EST -> 03:00 EDT at 07:00 UTC */
    int64_t change = 1772953200000LL;
    assert_int_equal(wm_tz_offset_min(tz, change - 1), -300);
    assert_int_equal(wm_tz_offset_min(tz, change), -240);
    assert_int_equal(wm_tz_local_to_utc(tz, 2026, 3, 8, 1, 59, 59), change - 1000);
    assert_int_equal(wm_tz_local_to_utc(tz, 2026, 3, 8, 3, 0, 0), change);
    /* gap: 02:30 does not exist, pushed forward to 03:30 EDT */
    assert_int_equal(wm_tz_local_to_utc(tz, 2026, 3, 8, 2, 30, 0), change + 30 * 60000);
    /* 2026-11-01 02:00 EDT -> 01:00 EST at 06:00 UTC; 01:30 happens twice */
    int64_t back = 1793512800000LL;
    assert_int_equal(wm_tz_offset_min(tz, back - 1), -240);
    assert_int_equal(wm_tz_offset_min(tz, back), -300);
    assert_int_equal(wm_tz_local_to_utc(tz, 2026, 11, 1, 1, 30, 0), back - 30 * 60000);
    assert_int_equal(wm_tz_local_to_utc(tz, 2026, 11, 1, 2, 30, 0), back + 90 * 60000);
    /* carries: Feb 30 = Mar 2, month 13 = January next year */
    assert_int_equal(wm_tz_local_to_utc(tz, 2026, 2, 30, 12, 0, 0),
                     wm_tz_local_to_utc(tz, 2026, 3, 2, 12, 0, 0));
    assert_int_equal(wm_tz_local_to_utc(tz, 2025, 13, 1, 0, 0, 0),
                     wm_tz_local_to_utc(tz, 2026, 1, 1, 0, 0, 0));
    /* local day straddles: 2026-03-10 03:00 UTC is still Mar 9 in New York */
    assert_int_equal(wm_tz_local_day(tz, 1773111600000LL), 20521);
}

static wm_calendar_t *calendar(const char *text, wm_arena_t *a)
{
    wm_json_t *j = NULL;
    assert_int_equal(wm_json_parse(a, text, strlen(text), &j, NULL), 0);
    wm_calendar_t *c = NULL;
    wm_cond_error_t err;
    int rc = wm_calendar_compile(j, &c, &err);
    if (rc)
        print_error("%s: %s\n", err.path, err.msg);
    assert_int_equal(rc, 0);
    return c;
}

static int32_t day_of(int y, int m, int d)
{
    const wm_tz_t *utc;
    wm_tz_get("UTC", &utc);
    return (int32_t)(wm_tz_local_to_utc(utc, y, m, d, 0, 0, 0) / DAY);
}

#define HOLIDAYS "\"holidays\":[\"2026-10-01\",\"2026-10-02\",\"2026-10-03\",\"2026-10-04\"," \
                 "\"2026-10-05\",\"2026-10-06\",\"2026-10-07\",\"2026-10-08\"]"

static void test_calendar_national_day(void **state)
{
    wm_arena_t a;
    wm_arena_init(&a, 1024);
    /* a bank calendar with make-up working days (test data) */
    wm_calendar_t *bank = calendar("{\"name\":\"bank\",\"timezone\":\"Asia/Shanghai\"," HOLIDAYS
                                   ",\"workdays\":[\"2026-10-10\",\"2026-09-27\"]}", &a);
    /* an exchange calendar: holidays only */
    wm_calendar_t *sse = calendar("{\"timezone\":\"Asia/Shanghai\"," HOLIDAYS "}", &a);
    assert_true(wm_calendar_is_trading_day(bank, day_of(2026, 9, 25)));   /* Fri */
    assert_false(wm_calendar_is_trading_day(bank, day_of(2026, 9, 26)));  /* Sat */
    assert_true(wm_calendar_is_trading_day(bank, day_of(2026, 9, 27)));   /* Sun, make-up */
    assert_false(wm_calendar_is_trading_day(sse, day_of(2026, 9, 27)));
    assert_true(wm_calendar_is_trading_day(bank, day_of(2026, 9, 30)));   /* Wed */
    for (int d = 1; d <= 8; d++) {
        assert_false(wm_calendar_is_trading_day(bank, day_of(2026, 10, d)));
        assert_false(wm_calendar_is_trading_day(sse, day_of(2026, 10, d)));
    }
    assert_true(wm_calendar_is_trading_day(sse, day_of(2026, 10, 9)));    /* Fri */
    assert_true(wm_calendar_is_trading_day(bank, day_of(2026, 10, 10)));  /* Sat, make-up */
    assert_false(wm_calendar_is_trading_day(sse, day_of(2026, 10, 10)));
    assert_false(wm_calendar_is_trading_day(bank, day_of(2026, 10, 11))); /* Sun */
    assert_true(wm_calendar_is_trading_day(sse, day_of(2026, 10, 12)));   /* Mon */
    assert_ptr_equal(wm_calendar_tz(bank), wm_calendar_tz(sse));

    const wm_tz_t *sh = wm_calendar_tz(sse);
    int64_t sep30_0900 = wm_tz_local_to_utc(sh, 2026, 9, 30, 9, 0, 0);
    int64_t sep30_0930 = wm_tz_local_to_utc(sh, 2026, 9, 30, 9, 30, 0);
    int64_t sep30_1500 = wm_tz_local_to_utc(sh, 2026, 9, 30, 15, 0, 0);
    assert_int_equal(wm_calendar_next_open(sse, sep30_0900, 9, 30), sep30_0930);
    assert_int_equal(wm_calendar_next_open(sse, sep30_0930, 9, 30), sep30_0930);
    assert_int_equal(wm_calendar_next_open(sse, sep30_1500, 9, 30),
                     wm_tz_local_to_utc(sh, 2026, 10, 9, 9, 30, 0));
    int64_t oct9_1500 = wm_tz_local_to_utc(sh, 2026, 10, 9, 15, 0, 0);
    assert_int_equal(wm_calendar_next_open(bank, oct9_1500, 9, 30),
                     wm_tz_local_to_utc(sh, 2026, 10, 10, 9, 30, 0));
    assert_int_equal(wm_calendar_next_open(sse, oct9_1500, 9, 30),
                     wm_tz_local_to_utc(sh, 2026, 10, 12, 9, 30, 0));
    /* a UTC instant on the previous UTC day that is already Oct 9 in Shanghai */
    int64_t oct8_2300_utc = wm_tz_local_to_utc(sh, 2026, 10, 9, 7, 0, 0);
    assert_int_equal(wm_calendar_next_open(sse, oct8_2300_utc, 9, 30),
                     wm_tz_local_to_utc(sh, 2026, 10, 9, 9, 30, 0));
    wm_calendar_free(bank);
    wm_calendar_free(sse);
    wm_arena_release(&a);
}

static void calendar_fails(const char *text, const char *path)
{
    wm_arena_t a;
    wm_arena_init(&a, 1024);
    wm_json_t *j = NULL;
    assert_int_equal(wm_json_parse(&a, text, strlen(text), &j, NULL), 0);
    wm_calendar_t *c = NULL;
    wm_cond_error_t err;
    assert_int_equal(wm_calendar_compile(j, &c, &err), WM_EINVAL);
    assert_null(c);
    assert_string_equal(err.path, path);
    wm_arena_release(&a);
}

static void test_calendar_errors(void **state)
{
    calendar_fails("[]", "$");
    calendar_fails("{}", "$.timezone");
    calendar_fails("{\"timezone\":\"Mars/Olympus\"}", "$.timezone");
    calendar_fails("{\"timezone\":\"UTC\",\"holidays\":\"2026-10-01\"}", "$.holidays");
    calendar_fails("{\"timezone\":\"UTC\",\"holidays\":[\"2026-10-01\",\"2026-02-30\"]}", "$.holidays[1]");
    calendar_fails("{\"timezone\":\"UTC\",\"workdays\":[\"2026-10-01 09:00:00\"]}", "$.workdays[0]");
    calendar_fails("{\"timezone\":\"UTC\",\"holiday\":[]}", "$.holiday");
    /* a calendar that never opens */
    wm_arena_t a;
    wm_arena_init(&a, 1 << 16);
    char text[32768];
    size_t n = (size_t)snprintf(text, sizeof text, "{\"timezone\":\"UTC\",\"holidays\":[");
    for (int i = 0; i < 450; i++) {
        time_t tt = (time_t)((day_of(2026, 1, 1) + i) * 86400LL);
        struct tm tm;
        gmtime_r(&tt, &tm);
        int y = tm.tm_year + 1900, m = tm.tm_mon + 1, d = tm.tm_mday;
        n += (size_t)snprintf(text + n, sizeof text - n, "%s\"%04d-%02d-%02d\"", i ? "," : "", y, m, d);
    }
    snprintf(text + n, sizeof text - n, "]}");
    wm_json_t *j = NULL;
    assert_int_equal(wm_json_parse(&a, text, strlen(text), &j, NULL), 0);
    wm_calendar_t *c = NULL;
    assert_int_equal(wm_calendar_compile(j, &c, NULL), 0);
    assert_true(wm_calendar_next_open(c, (int64_t)day_of(2026, 1, 1) * DAY, 9, 30) == INT64_MAX);
    wm_calendar_free(c);
    wm_arena_release(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_tz_fixed),
        cmocka_unit_test(test_tz_shanghai),
        cmocka_unit_test(test_tz_new_york),
        cmocka_unit_test(test_calendar_national_day),
        cmocka_unit_test(test_calendar_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
