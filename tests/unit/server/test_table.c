/*
 * test_table.c - a query answer's main rows as CSV and as a text table
 * (server/table.c): the rows each kind names, RFC 4180 quoting, nested
 * values flattened into columns, breakdown groups, interval's figures and
 * histogram bins, text alignment with
 * wide (CJK) characters. The answers are written here in the shapes of
 * docs/analytics.md.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "waymark/error.h"
#include "waymark/server.h"

static char *render(const char *kind, const char *json, wm_table_format_t f, int *rc_out)
{
    static char text[8192];
    wm_arena_t a;
    wm_arena_init(&a, 4096);
    wm_json_t *root;
    wm_json_error_t je;
    assert_int_equal(wm_json_parse(&a, json, strlen(json), &root, &je), 0);
    wm_buf_t out;
    wm_buf_init(&out, 0);
    int rc = wm_server_answer_table(&a, kind, root, f, &out);
    if (rc_out)
        *rc_out = rc;
    else
        assert_int_equal(rc, 0);
    snprintf(text, sizeof text, "%.*s", (int)out.len, out.data ? out.data : "");
    wm_buf_release(&out);
    wm_arena_release(&a);
    return text;
}

static void test_csv_quoting(void **state)
{
    const char *ans = "{\"steps\":[{\"step\":1,\"name\":\"View, \\\"fund\\\"\",\"users\":10,\"median_ms\":null},"
                      "{\"step\":2,\"name\":\"line\\nbreak\",\"users\":4,\"median_ms\":1500}],"
                      "\"groups\":[]}";
    assert_string_equal(render("funnel", ans, WM_TABLE_CSV, NULL),
                        "step,name,users,median_ms\r\n"
                        "1,\"View, \"\"fund\"\"\",10,\r\n"
                        "2,\"line\nbreak\",4,1500\r\n");
}

static void test_nested_values(void **state)
{
    /* retention: retained[k-1] is period k; paths: a path is one cell */
    const char *ret = "{\"cohorts\":[{\"cohort\":\"2026-10-01\",\"users\":5,\"retained\":[3,1]},"
                      "{\"cohort\":\"2026-10-02\",\"users\":2,\"retained\":[1]}],"
                      "\"total\":{\"users\":7,\"retained\":[4,1]}}";
    assert_string_equal(render("retention", ret, WM_TABLE_CSV, NULL),
                        "cohort,users,retained.1,retained.2\r\n"
                        "2026-10-01,5,3,1\r\n"
                        "2026-10-02,2,1,\r\n");
    const char *paths = "{\"paths\":[{\"path\":[\"$AppStart\",\"Read\"],\"count\":3,\"users\":2}],"
                        "\"nodes\":[],\"links\":[]}";
    assert_string_equal(render("paths", paths, WM_TABLE_CSV, NULL),
                        "path,count,users\r\n$AppStart > Read,3,2\r\n");
    /* an object becomes a.b columns; a list of objects stays JSON */
    const char *ev = "{\"rows\":[{\"series\":0,\"group\":{\"tier\":\"gold\"},\"x\":[{\"a\":1}],\"value\":2.5}]}";
    assert_string_equal(render("events", ev, WM_TABLE_CSV, NULL),
                        "series,group.tier,x,value\r\n0,gold,\"[{\"\"a\"\":1}]\",2.5\r\n");
}

static void test_interval_figures(void **state)
{
    const char *ans = "{\"count\":3,\"median_ms\":60000,\"histogram\":[1,2]}";
    assert_string_equal(render("interval", ans, WM_TABLE_CSV, NULL),
                        "figure,value\r\ncount,3\r\nmedian_ms,60000\r\nhistogram.0,1\r\nhistogram.1,2\r\n");
}

static void test_breakdown_groups(void **state)
{
    const char *ans = "{\"steps\":[{\"step\":1,\"users\":3}],"
                      "\"groups\":[{\"group\":\"C3\",\"steps\":[{\"step\":1,\"users\":2}]},"
                      "{\"group\":null,\"steps\":[{\"step\":1,\"users\":1}]}]}";
    assert_string_equal(render("funnel", ans, WM_TABLE_CSV, NULL),
                        "group,step,users\r\n$total,1,3\r\nC3,1,2\r\n,1,1\r\n");
    /* no groups: no group column */
    assert_string_equal(render("funnel", "{\"steps\":[{\"step\":1}],\"groups\":[]}", WM_TABLE_CSV, NULL),
                        "step\r\n1\r\n");
}

static void test_histogram_bins(void **state)
{
    const char *ans = "{\"count\":2,\"histogram\":[{\"bin\":\"<1m\",\"count\":1},{\"bin\":\"1\u20135m\",\"count\":1}]}";
    assert_string_equal(render("interval", ans, WM_TABLE_CSV, NULL),
                        "figure,value\r\ncount,2\r\nhistogram.<1m,1\r\nhistogram.1\u20135m,1\r\n");
}

static void test_unknown_kind_and_empty(void **state)
{
    /* the first array of objects */
    assert_string_equal(render("later_kind", "{\"n\":1,\"items\":[{\"a\":\"b\"}]}", WM_TABLE_CSV, NULL),
                        "a\r\nb\r\n");
    /* no rows at all: nothing, not an error */
    assert_string_equal(render("funnel", "{\"steps\":[]}", WM_TABLE_CSV, NULL), "");
    int rc = 0;
    render("funnel", "[1,2]", WM_TABLE_CSV, &rc);
    assert_int_equal(rc, WM_EINVAL);
}

static void test_text_alignment(void **state)
{
    const char *ans = "{\"stages\":[{\"name\":\"搜索\",\"users\":1200},{\"name\":\"open\",\"users\":7}]}";
    /* 搜索 is four columns wide; numbers are right-aligned */
    assert_string_equal(render("map", ans, WM_TABLE_TEXT, NULL),
                        "name  users\n"
                        "----  -----\n"
                        "搜索   1200\n"
                        "open      7\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_quoting),
        cmocka_unit_test(test_nested_values),
        cmocka_unit_test(test_interval_figures),
        cmocka_unit_test(test_breakdown_groups),
        cmocka_unit_test(test_histogram_bins),
        cmocka_unit_test(test_unknown_kind_and_empty),
        cmocka_unit_test(test_text_alignment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
