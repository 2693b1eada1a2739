/*
 * test_def.c - tag and segment definitions: every kind compiles to the
 * expected form (values, buckets, the metric's counter, inputs), every
 * validation error is reported with its exact JSON path, all errors are
 * collected at once, the error report serialises as JSON, out-of-memory is
 * clean, and the valid fuzz seeds stay valid.
 *
 * Definitions are written with single quotes for readability; q() turns
 * them into JSON. Run from the repository root (tests/run-all does);
 * WM_SRC_DIR overrides.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "waymark/alloc.h"
#include "waymark/audience.h"
#include "waymark/error.h"

#define MAX_ERRS 64
#define DAY_MS 86400000LL

static wm_arena_t arena;

static int setup(void **state)
{
    wm_arena_init(&arena, 1 << 16);
    return 0;
}

static int teardown(void **state)
{
    wm_arena_release(&arena);
    return 0;
}

/* 'single' quotes -> "double" quotes. */
static const char *q(const char *s)
{
    char *d = wm_arena_strndup(&arena, s, strlen(s));
    for (char *p = d; *p; p++)
        if (*p == '\'')
            *p = '"';
    return d;
}

static void print_errs(const wm_aud_error_t *errs, uint32_t n)
{
    for (uint32_t k = 0; k < n && k < MAX_ERRS; k++)
        print_error("  %s: %s\n", errs[k].path, errs[k].msg);
}

static wm_tag_def_t *tag_ok(const char *text)
{
    const char *json = q(text);
    wm_aud_error_t errs[MAX_ERRS];
    uint32_t n = 99;
    wm_tag_def_t *t = NULL;
    int rc = wm_tag_compile_text(json, strlen(json), &t, errs, MAX_ERRS, &n);
    if (rc != 0)
        print_errs(errs, n);
    assert_int_equal(rc, 0);
    assert_int_equal(n, 0);
    assert_non_null(t);
    return t;
}

static wm_segment_def_t *seg_ok(const char *text)
{
    const char *json = q(text);
    wm_aud_error_t errs[MAX_ERRS];
    uint32_t n = 99;
    wm_segment_def_t *s = NULL;
    int rc = wm_segment_compile_text(json, strlen(json), &s, errs, MAX_ERRS, &n);
    if (rc != 0)
        print_errs(errs, n);
    assert_int_equal(rc, 0);
    assert_int_equal(n, 0);
    assert_non_null(s);
    return s;
}

/* expect: path, message substring, path, substring, ..., NULL - exactly
 * these errors in this order. */
static void check_errs(int rc, const wm_aud_error_t *errs, uint32_t n, const char *const *expect)
{
    uint32_t want = 0;
    while (expect[want * 2])
        want++;
    bool ok = rc == WM_EINVAL && n == want;
    for (uint32_t k = 0; ok && k < want; k++)
        ok = strcmp(errs[k].path, expect[2 * k]) == 0 && strstr(errs[k].msg, expect[2 * k + 1]) != NULL;
    if (!ok) {
        print_error("rc %d, %u errors, expected %u:\n", rc, n, want);
        print_errs(errs, n);
        for (uint32_t k = 0; k < want; k++)
            print_error("  expected %s: ...%s...\n", expect[2 * k], expect[2 * k + 1]);
    }
    assert_true(ok);
}

#define TAG_ERRS(text, ...) tag_errs(text, (const char *const[]){__VA_ARGS__, NULL})
#define SEG_ERRS(text, ...) seg_errs(text, (const char *const[]){__VA_ARGS__, NULL})

static void tag_errs(const char *text, const char *const *expect)
{
    const char *json = q(text);
    wm_aud_error_t errs[MAX_ERRS];
    uint32_t n = 0;
    wm_tag_def_t *t = (wm_tag_def_t *)1;
    int rc = wm_tag_compile_text(json, strlen(json), &t, errs, MAX_ERRS, &n);
    assert_null(t);
    check_errs(rc, errs, n, expect);
}

static void seg_errs(const char *text, const char *const *expect)
{
    const char *json = q(text);
    wm_aud_error_t errs[MAX_ERRS];
    uint32_t n = 0;
    wm_segment_def_t *s = (wm_segment_def_t *)1;
    int rc = wm_segment_compile_text(json, strlen(json), &s, errs, MAX_ERRS, &n);
    assert_null(s);
    check_errs(rc, errs, n, expect);
}

static bool has_name(char *const *v, uint32_t n, const char *name)
{
    for (uint32_t k = 0; k < n; k++)
        if (strcmp(v[k], name) == 0)
            return true;
    return false;
}

/* ------------------------------------------------------------ tags: valid */

static const char *const TIER =
    "{'key': 'tier', 'name': '客户分层', 'description': '按资产规模分层', 'kind': 'rule',"
    " 'layers': ["
    "  {'value': '高净值', 'if': {'profile': 'aum', 'op': '>=', 'value': 6000000}},"
    "  {'value': '大众富裕', 'if': {'any': [{'profile': 'aum', 'op': '>=', 'value': 500000},"
    "     {'did': 'SubscribeFund', 'field': 'amount', 'sum': {'>=': 200000}, 'within': '90d'}]}}],"
    " 'default': '长尾'}";

static void test_tag_rule(void **state)
{
    wm_tag_def_t *t = tag_ok(TIER);
    assert_string_equal(t->key, "tier");
    assert_string_equal(t->name, "客户分层");
    assert_string_equal(t->description, "按资产规模分层");
    assert_int_equal(t->kind, WM_TAG_RULE);
    assert_string_equal(wm_tag_kind_name(t->kind), "rule");
    assert_int_equal(t->type, WM_TAG_STRING);
    assert_int_equal(t->version, 0);
    assert_int_equal(t->n_layers, 2);
    assert_string_equal(t->layers[0].value, "高净值");
    assert_string_equal(t->layers[1].value, "大众富裕");
    assert_non_null(t->layers[0].cond);
    assert_non_null(t->layers[1].cond);
    assert_string_equal(t->default_value, "长尾");
    assert_null(t->event);
    assert_null(t->metric_cond);
    assert_true(t->uses_profile);
    assert_true(t->uses_clock); /* the did window */
    assert_int_equal(t->n_input_events, 1);
    assert_string_equal(t->input_events[0], "SubscribeFund");
    assert_int_equal(t->n_input_tags, 0);
    assert_int_equal(t->n_input_segments, 0);
    assert_null(wm_tag_bucket_of(t, 1));
    wm_tag_free(t);

    /* the first layer's condition, evaluated: the layers are real conditions */
    t = tag_ok(TIER);
    wm_arena_t a;
    wm_arena_init(&a, 1024);
    const char *p = "{\"aum\": 8000000}";
    wm_json_t *profile = NULL;
    assert_int_equal(wm_json_parse(&a, p, strlen(p), &profile, NULL), 0);
    wm_cond_env_t env;
    memset(&env, 0, sizeof env);
    env.profile = profile;
    bool holds = false;
    assert_int_equal(wm_cond_eval(t->layers[0].cond, &env, &holds), 0);
    assert_true(holds);
    wm_arena_release(&a);
    wm_tag_free(t);
}

static void test_tag_rule_typed(void **state)
{
    wm_tag_def_t *t = tag_ok("{'key': 'risk_score', 'kind': 'rule', 'type': 'number', 'layers': ["
                             " {'value': 5, 'if': {'profile': 'risk_level', 'op': '=', 'value': 'C5'}},"
                             " {'value': 3.5, 'if': {'tag': 'tier', 'op': '=', 'value': '高净值'}},"
                             " {'value': 1e21, 'if': {'in_segment': 'active_hnw'}},"
                             " {'value': -2.0, 'if': {'not': {'in_segment': 'dormant'}}}],"
                             " 'default': 0}");
    assert_int_equal(t->type, WM_TAG_NUMBER);
    assert_string_equal(t->layers[0].value, "5");
    assert_string_equal(t->layers[1].value, "3.5");
    assert_string_equal(t->layers[2].value, "1e+21");
    assert_string_equal(t->layers[3].value, "-2");
    assert_string_equal(t->default_value, "0");
    assert_true(t->uses_profile);
    assert_false(t->uses_clock);
    assert_int_equal(t->n_input_events, 0);
    assert_int_equal(t->n_input_tags, 1);
    assert_string_equal(t->input_tags[0], "tier");
    assert_int_equal(t->n_input_segments, 2);
    assert_string_equal(t->input_segments[0], "active_hnw");
    assert_string_equal(t->input_segments[1], "dormant");
    wm_tag_free(t);

    t = tag_ok("{'key': 'is_hnw', 'kind': 'rule', 'type': 'bool', 'layers': ["
               " {'value': true, 'if': {'tag': 'tier', 'op': '=', 'value': '高净值'}}], 'default': false}");
    assert_int_equal(t->type, WM_TAG_BOOL);
    assert_string_equal(t->layers[0].value, "true");
    assert_string_equal(t->default_value, "false");
    assert_false(t->uses_profile);
    wm_tag_free(t);

    /* no default (null says the same): customers no layer holds for have no value */
    t = tag_ok("{'key': 'r', 'kind': 'rule', 'layers': [{'value': 'C5', 'if': {'profile': 'a', 'op': 'is_set'}}],"
               " 'default': null}");
    assert_null(t->default_value);
    wm_tag_free(t);
}

static void test_tag_metric_sum_buckets(void **state)
{
    wm_tag_def_t *t = tag_ok("{'key': 'subscribe_90d', 'name': '近90天申购金额', 'kind': 'metric',"
                             " 'event': 'SubscribeFund', 'where': {'prop': 'fund_type', 'op': 'in', 'value': ['equity', 'mixed']},"
                             " 'agg': 'sum', 'field': 'amount', 'within': '90d',"
                             " 'buckets': [{'name': 'low', 'lt': 10000}, {'name': 'mid', 'lt': 100000}, {'name': 'high'}]}");
    assert_int_equal(t->kind, WM_TAG_METRIC);
    assert_int_equal(t->type, WM_TAG_STRING);
    assert_string_equal(t->event, "SubscribeFund");
    assert_string_equal(t->field, "amount");
    assert_int_equal(t->agg, WM_METRIC_SUM);
    assert_int_equal(t->within_ms, 90 * DAY_MS);
    assert_non_null(t->where);
    assert_int_equal(t->n_buckets, 3);
    assert_string_equal(t->buckets[0].name, "low");
    assert_true(t->buckets[0].has_lt);
    assert_true(t->buckets[1].lt == 100000);
    assert_false(t->buckets[2].has_lt);
    assert_string_equal(wm_tag_bucket_of(t, -5), "low");
    assert_string_equal(wm_tag_bucket_of(t, 9999.5), "low");
    assert_string_equal(wm_tag_bucket_of(t, 10000), "mid");
    assert_string_equal(wm_tag_bucket_of(t, 99999), "mid");
    assert_string_equal(wm_tag_bucket_of(t, 100000), "high");
    assert_string_equal(wm_tag_bucket_of(t, 1e12), "high");
    assert_null(wm_tag_bucket_of(t, NAN));
    assert_null(wm_tag_bucket_of(NULL, 1));

    /* the metric is a did-clause: its counter is what the runtime keeps */
    assert_non_null(t->metric_cond);
    const wm_counter_spec_t *specs = NULL;
    uint32_t n = 0;
    wm_cond_counters(t->metric_cond, &specs, &n);
    assert_int_equal(n, 1);
    assert_string_equal(specs[0].event, "SubscribeFund");
    assert_string_equal(specs[0].field, "amount");
    assert_non_null(specs[0].where);

    /* ... the same counter as a segment's did-clause over the same events
     * (keys in another order, another aggregate and window) */
    const char *seg = q("{'did': 'SubscribeFund', 'field': 'amount', 'sum': {'>=': 50000}, 'within': '30d',"
                        " 'where': {'value': ['equity', 'mixed'], 'op': 'in', 'prop': 'fund_type'}}");
    wm_json_t *ast = NULL;
    assert_int_equal(wm_json_parse(&arena, seg, strlen(seg), &ast, NULL), 0);
    wm_cond_t *c = NULL;
    assert_int_equal(wm_cond_compile(ast, &c, NULL), 0);
    const wm_counter_spec_t *other = NULL;
    wm_cond_counters(c, &other, &n);
    assert_int_equal(n, 1);
    assert_string_equal(other[0].key, specs[0].key);
    wm_cond_free(c);

    assert_false(t->uses_profile);
    assert_true(t->uses_clock);
    assert_int_equal(t->n_input_events, 1);
    assert_string_equal(t->input_events[0], "SubscribeFund");
    assert_int_equal(t->n_input_tags, 0);
    wm_tag_free(t);
}

static void test_tag_metric_aggs(void **state)
{
    wm_tag_def_t *t = tag_ok("{'key': 'views_7d', 'kind': 'metric', 'event': 'ViewFundDetail', 'agg': 'count',"
                             " 'within': '1w'}");
    assert_int_equal(t->type, WM_TAG_NUMBER);
    assert_int_equal(t->agg, WM_METRIC_COUNT);
    assert_int_equal(t->within_ms, 7 * DAY_MS);
    assert_null(t->field);
    assert_null(t->where);
    assert_int_equal(t->n_buckets, 0);
    assert_null(wm_tag_bucket_of(t, 3));
    const wm_counter_spec_t *specs = NULL;
    uint32_t n = 0;
    wm_cond_counters(t->metric_cond, &specs, &n);
    assert_int_equal(n, 1);
    assert_string_equal(specs[0].event, "ViewFundDetail");
    assert_null(specs[0].field);
    assert_null(specs[0].where);
    wm_tag_free(t);

    static const char *const aggs[] = {"avg", "min", "max", "distinct"};
    for (int k = 0; k < 4; k++) {
        char text[256];
        snprintf(text, sizeof text,
                 "{'key': 'm', 'kind': 'metric', 'type': 'number', 'event': 'Buy', 'agg': '%s',"
                 " 'field': 'amount', 'within': '30d'}",
                 aggs[k]);
        t = tag_ok(text);
        assert_int_equal(t->agg, WM_METRIC_AVG + k);
        wm_cond_counters(t->metric_cond, &specs, &n);
        assert_int_equal(n, 1);
        assert_string_equal(specs[0].field, "amount");
        wm_tag_free(t);
    }

    t = tag_ok("{'key': 'days_since_login', 'kind': 'metric', 'event': 'Login', 'agg': 'days_since',"
               " 'where': {'prop': '$os', 'op': '=', 'value': 'iOS'},"
               " 'buckets': [{'name': '活跃', 'lt': 8}, {'name': '沉默', 'lt': 31}, {'name': '流失'}]}");
    assert_int_equal(t->agg, WM_METRIC_DAYS_SINCE);
    assert_int_equal(t->within_ms, 0);
    assert_null(t->metric_cond);
    assert_non_null(t->where);
    assert_true(t->uses_clock);
    assert_int_equal(t->n_input_events, 1);
    assert_string_equal(wm_tag_bucket_of(t, 0), "活跃");
    assert_string_equal(wm_tag_bucket_of(t, 30), "沉默");
    assert_string_equal(wm_tag_bucket_of(t, 400), "流失");
    wm_tag_free(t);

    /* buckets that all have a bound: values past the last one have no bucket */
    t = tag_ok("{'key': 'b', 'kind': 'metric', 'event': 'Buy', 'agg': 'count', 'within': '30d',"
               " 'buckets': [{'name': 'few', 'lt': 3}, {'name': 'some', 'lt': 10}]}");
    assert_string_equal(wm_tag_bucket_of(t, 2), "few");
    assert_null(wm_tag_bucket_of(t, 10));
    wm_tag_free(t);
}

static void test_tag_first_last_preference(void **state)
{
    wm_tag_def_t *t = tag_ok("{'key': 'first_channel', 'name': '首次来源渠道', 'kind': 'first', 'event': '$AppStart',"
                             " 'field': '$utm_source'}");
    assert_int_equal(t->kind, WM_TAG_FIRST);
    assert_int_equal(t->type, WM_TAG_STRING);
    assert_string_equal(t->event, "$AppStart");
    assert_string_equal(t->field, "$utm_source");
    assert_null(t->where);
    assert_null(t->metric_cond);
    assert_false(t->uses_clock);
    assert_false(t->uses_profile);
    assert_int_equal(t->n_input_events, 1);
    assert_string_equal(t->input_events[0], "$AppStart");
    wm_tag_free(t);

    t = tag_ok("{'key': 'last_city', 'kind': 'last', 'type': 'string', 'event': '*', 'field': '$city',"
               " 'where': {'prop': '$city', 'op': 'is_set'}}");
    assert_int_equal(t->kind, WM_TAG_LAST);
    assert_string_equal(wm_tag_kind_name(t->kind), "last");
    assert_string_equal(t->event, "*");
    assert_non_null(t->where);
    assert_int_equal(t->n_input_events, 1);
    assert_string_equal(t->input_events[0], "*");
    wm_tag_free(t);

    t = tag_ok("{'key': 'last_amount', 'kind': 'last', 'type': 'number', 'event': 'Buy', 'field': 'amount'}");
    assert_int_equal(t->type, WM_TAG_NUMBER);
    wm_tag_free(t);

    t = tag_ok("{'key': 'fav_fund_type', 'name': '偏好基金类型', 'kind': 'preference', 'event': 'ViewFundDetail',"
               " 'field': 'fund_type', 'within': '30d', 'where': {'prop': 'stay_seconds', 'op': '>=', 'value': 10}}");
    assert_int_equal(t->kind, WM_TAG_PREFERENCE);
    assert_string_equal(wm_tag_kind_name(t->kind), "preference");
    assert_int_equal(t->within_ms, 30 * DAY_MS);
    assert_non_null(t->where);
    assert_null(t->metric_cond);
    assert_true(t->uses_clock);
    assert_int_equal(t->n_input_events, 1);
    assert_string_equal(t->input_events[0], "ViewFundDetail");
    wm_tag_free(t);
}

static void test_tag_imported_manual(void **state)
{
    wm_tag_def_t *t = tag_ok("{'key': 'vip_list', 'name': '私行名单', 'kind': 'imported', 'type': 'string'}");
    assert_int_equal(t->kind, WM_TAG_IMPORTED);
    assert_int_equal(t->type, WM_TAG_STRING);
    assert_false(t->uses_profile || t->uses_clock);
    assert_int_equal(t->n_input_events + t->n_input_tags + t->n_input_segments, 0);
    assert_null(t->input_events);
    wm_tag_free(t);

    t = tag_ok("{'key': 'vip', 'kind': 'manual', 'type': 'bool', 'description': ''}");
    assert_int_equal(t->kind, WM_TAG_MANUAL);
    assert_int_equal(t->type, WM_TAG_BOOL);
    assert_string_equal(t->description, "");
    assert_null(t->name);
    wm_tag_free(t);

    t = tag_ok("{'key': '_x9', 'kind': 'manual'}");
    assert_int_equal(t->type, WM_TAG_STRING);
    wm_tag_free(t);

    assert_string_equal(wm_tag_kind_name(WM_TAG_METRIC), "metric");
    assert_string_equal(wm_tag_kind_name(WM_TAG_MANUAL), "manual");
    assert_string_equal(wm_tag_kind_name((wm_tag_kind_t)0), "unknown");
    assert_string_equal(wm_tag_kind_name((wm_tag_kind_t)99), "unknown");
}

/* ------------------------------------------------------------ tags: errors */

static void test_tag_common_errors(void **state)
{
    TAG_ERRS("[1]", "$", "must be a JSON object");
    TAG_ERRS("{'kind': 'manual'}", "$.key", "missing required field");
    TAG_ERRS("{'key': '9x', 'kind': 'manual'}", "$.key", "bad key '9x'");
    TAG_ERRS("{'key': 'a-b', 'kind': 'manual'}", "$.key", "bad key");
    TAG_ERRS("{'key': '', 'kind': 'manual'}", "$.key", "must not be empty");
    TAG_ERRS("{'key': 7, 'kind': 'manual'}", "$.key", "must be a string, not number");
    TAG_ERRS("{'key': 'k\\u0000', 'kind': 'manual'}", "$.key", "NUL");
    TAG_ERRS("{'key': 'a1234567890123456789012345678901234567890123456789012345678901234', 'kind': 'manual'}",
             "$.key", "at most 64 characters");
    TAG_ERRS("{'key': '客户', 'kind': 'manual'}", "$.key", "bad key");
    TAG_ERRS("{'key': 'k'}", "$.kind", "missing required field");
    TAG_ERRS("{'key': 'k', 'kind': 'rfm'}", "$.kind", "unknown kind 'rfm'");
    TAG_ERRS("{'key': 'k', 'kind': 'manual', 'type': 'date'}", "$.type", "must be string, number or bool");
    TAG_ERRS("{'key': 'k', 'kind': 'manual', 'name': ''}", "$.name", "must not be empty");
    TAG_ERRS("{'key': 'k', 'kind': 'manual', 'description': 3}", "$.description", "must be a string");
    TAG_ERRS("{'key': 'k', 'kind': 'manual', 'colour': 'red'}", "$.colour", "unknown field");
    TAG_ERRS("{'key': 'k', 'kind': 'manual', 'event': 'Buy'}", "$.event", "not a field of a manual tag");
    TAG_ERRS("{'key': 'k', 'kind': 'imported', 'layers': []}", "$.layers", "not a field of an imported tag");
    TAG_ERRS("{'key': 'k', 'kind': 'manual', 'key': 'j'}", "$.key", "given more than once");
    TAG_ERRS("{'key': 'k', 'kinds': 'manual'}", "$.kind", "missing required field", "$.kinds", "unknown field");

    char name[400];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    char text[600];
    snprintf(text, sizeof text, "{'key': 'k', 'kind': 'manual', 'name': '%s'}", name);
    TAG_ERRS(text, "$.name", "too long: 399 bytes (at most 256)");
}

static void test_tag_rule_errors(void **state)
{
    TAG_ERRS("{'key': 'k', 'kind': 'rule'}", "$.layers", "missing required field");
    TAG_ERRS("{'key': 'k', 'kind': 'rule', 'layers': []}", "$.layers", "1 to 64 layers");
    TAG_ERRS("{'key': 'k', 'kind': 'rule', 'layers': {}}", "$.layers", "1 to 64 layers");
    TAG_ERRS("{'key': 'k', 'kind': 'rule', 'layers': ['高净值']}", "$.layers[0]", "a layer is");
    TAG_ERRS("{'key': 'k', 'kind': 'rule', 'layers': [{'value': 'a'}]}", "$.layers[0].if", "missing required field");
    TAG_ERRS("{'key': 'k', 'kind': 'rule', 'layers': [{'if': {'in_segment': 's'}}]}", "$.layers[0].value",
             "missing required field");
    TAG_ERRS("{'key': 'k', 'kind': 'rule', 'layers': [{'value': 'a', 'if': {'in_segment': 's'}, 'then': 1}]}",
             "$.layers[0].then", "unknown field");
    TAG_ERRS("{'key': 'k', 'kind': 'rule', 'layers': [{'value': 'a', 'if': {'in_segment': 's'}},"
             " {'value': 'b', 'if': {'all': [{'profile': 'aum', 'op': '=>', 'value': 1}]}}]}",
             "$.layers[1].if.all[0].op", "unknown operator");
    TAG_ERRS("{'key': 'k', 'kind': 'rule', 'layers': [{'value': 'a', 'if': {'profile': 'aum', 'op': '>', 'vlaue': 1}}]}",
             "$.layers[0].if.vlaue", "unknown key");
    TAG_ERRS("{'key': 'k', 'kind': 'rule', 'layers': [{'value': 'a', 'if': 'aum > 1'}]}", "$.layers[0].if",
             "a condition is an object");
    TAG_ERRS("{'key': 'k', 'kind': 'rule', 'layers': [{'value': 1, 'if': {'in_segment': 's'}}]}",
             "$.layers[0].value", "must be a string (the tag's type is string), not number");
    TAG_ERRS("{'key': 'k', 'kind': 'rule', 'layers': [{'value': '', 'if': {'in_segment': 's'}}]}",
             "$.layers[0].value", "non-empty");
    TAG_ERRS("{'key': 'k', 'kind': 'rule', 'type': 'number', 'layers': [{'value': '100', 'if': {'in_segment': 's'}}]}",
             "$.layers[0].value", "must be a number (the tag's type is number), not string");
    TAG_ERRS("{'key': 'k', 'kind': 'rule', 'type': 'bool', 'layers': [{'value': 1, 'if': {'in_segment': 's'}}],"
             " 'default': 'no'}",
             "$.layers[0].value", "must be a bool", "$.default", "must be a bool");
    TAG_ERRS("{'key': 'k', 'kind': 'rule', 'layers': [{'value': 'a', 'if': {'in_segment': 's'}},"
             " {'value': 'b', 'if': {'in_segment': 't'}}, {'value': 'a', 'if': {'in_segment': 'u'}}]}",
             "$.layers[2].value", "duplicate value 'a' (layers[0] has it)");
    TAG_ERRS("{'key': 'k', 'kind': 'rule', 'type': 'number', 'layers': [{'value': 1, 'if': {'in_segment': 's'}},"
             " {'value': 1.0, 'if': {'in_segment': 't'}}]}",
             "$.layers[1].value", "duplicate value '1'");
    TAG_ERRS("{'key': 'k', 'kind': 'rule', 'layers': [{'value': 'a', 'if': {'in_segment': 's'}}], 'default': 'a'}",
             "$.default", "already the value of layers[0]");
    TAG_ERRS("{'key': 'tier', 'kind': 'rule', 'layers': [{'value': 'a', 'if': {'not': {'tag': 'tier', 'op': 'is_set'}}}]}",
             "$.layers[0].if", "a tag cannot read itself");
    TAG_ERRS("{'key': 'k', 'kind': 'rule', 'layers': [{'value': 'a', 'if': {'prop': 'amount', 'op': '>', 'value': 1}}]}",
             "$.layers[0].if", "cannot read the current event");
    TAG_ERRS("{'key': 'k', 'kind': 'rule', 'layers': [{'value': 'a', 'if': {'item': {'type': 'fund', 'key': 'fund_code'},"
             " 'prop': 'risk_level', 'op': '<=', 'value': 'R3'}}]}",
             "$.layers[0].if", "cannot read the current event");

    /* 65 layers */
    char text[8192];
    size_t n = (size_t)snprintf(text, sizeof text, "{'key': 'k', 'kind': 'rule', 'layers': [");
    for (int i = 0; i < 65; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "%s{'value': 'v%d', 'if': {'in_segment': 's'}}", i ? "," : "", i);
    snprintf(text + n, sizeof text - n, "]}");
    TAG_ERRS(text, "$.layers", "1 to 64 layers");
}

static void test_tag_metric_errors(void **state)
{
    TAG_ERRS("{'key': 'k', 'kind': 'metric'}", "$.event", "missing required field", "$.agg", "missing required field",
             "$.within", "missing required field");
    TAG_ERRS("{'key': 'k', 'kind': 'metric', 'event': '*', 'agg': 'count', 'within': '7d'}", "$.event",
             "'*' (any event) is only for first and last tags");
    TAG_ERRS("{'key': 'k', 'kind': 'metric', 'event': 'View Fund', 'agg': 'count', 'within': '7d'}", "$.event",
             "bad event name 'View Fund'");
    TAG_ERRS("{'key': 'k', 'kind': 'metric', 'event': 'Buy', 'agg': 'median', 'within': '7d'}", "$.agg",
             "unknown aggregate 'median'");
    TAG_ERRS("{'key': 'k', 'kind': 'metric', 'event': 'Buy', 'agg': 'sum', 'within': '7d'}", "$.field",
             "missing required field: sum aggregates an event property");
    TAG_ERRS("{'key': 'k', 'kind': 'metric', 'event': 'Buy', 'agg': 'distinct', 'field': 'fund code', 'within': '7d'}",
             "$.field", "bad property name");
    TAG_ERRS("{'key': 'k', 'kind': 'metric', 'event': 'Buy', 'agg': 'count', 'field': 'amount', 'within': '7d'}",
             "$.field", "count takes no field");
    TAG_ERRS("{'key': 'k', 'kind': 'metric', 'event': 'Buy', 'agg': 'days_since', 'field': 'amount'}", "$.field",
             "days_since takes no field");
    TAG_ERRS("{'key': 'k', 'kind': 'metric', 'event': 'Buy', 'agg': 'days_since', 'within': '30d'}", "$.within",
             "days_since takes no window");
    TAG_ERRS("{'key': 'k', 'kind': 'metric', 'event': 'Buy', 'agg': 'count'}", "$.within",
             "missing required field: the window, whole days from 1d to 90d");
    static const char *const bad_windows[] = {"0d", "36h", "91d", "13w", "-7d", "7 d", "seven", "1d12h"};
    for (size_t k = 0; k < sizeof bad_windows / sizeof bad_windows[0]; k++) {
        char text[256];
        snprintf(text, sizeof text, "{'key': 'k', 'kind': 'metric', 'event': 'Buy', 'agg': 'count', 'within': '%s'}",
                 bad_windows[k]);
        TAG_ERRS(text, "$.within", "whole days from 1d to 90d (behaviour counters keep 90 days)");
    }
    TAG_ERRS("{'key': 'k', 'kind': 'metric', 'event': 'Buy', 'agg': 'count', 'within': 7}", "$.within",
             "must be a string");
    TAG_ERRS("{'key': 'k', 'kind': 'metric', 'event': 'Buy', 'agg': 'count', 'within': '7d',"
             " 'where': {'prop': 'fund_type', 'op': 'in'}}",
             "$.where", "");
    TAG_ERRS("{'key': 'k', 'kind': 'metric', 'event': 'Buy', 'agg': 'count', 'within': '7d',"
             " 'where': {'prop': 'fund_type', 'op': 'sounds_like', 'value': 'x'}}",
             "$.where.op", "unknown operator");
    TAG_ERRS("{'key': 'k', 'kind': 'metric', 'event': 'Buy', 'agg': 'count', 'within': '7d',"
             " 'where': {'all': [{'prop': 'a', 'op': 'is_set'}, {'profile': 'aum', 'op': '>', 'value': 1}]}}",
             "$.where.all[1]", "event properties only");
    TAG_ERRS("{'key': 'k', 'kind': 'metric', 'event': 'Buy', 'agg': 'count', 'within': '7d',"
             " 'where': {'prop': 'fund_code', 'op': '=', 'value': {'trigger': 'fund_code'}}}",
             "$.where", "cannot compare with a triggering event");
    /* the filter is checked even when the rest is wrong */
    TAG_ERRS("{'key': 'k', 'kind': 'metric', 'event': 'Buy', 'agg': 'sum', 'within': '7d',"
             " 'where': {'prop': 'a', 'op': '~'}}",
             "$.field", "missing required field", "$.where.op", "unknown operator");
    TAG_ERRS("{'key': 'k', 'kind': 'metric', 'event': 'Buy', 'agg': 'count', 'within': '7d', 'layers': []}",
             "$.layers", "not a field of a metric tag");
}

static void test_tag_bucket_errors(void **state)
{
#define METRIC "{'key': 'k', 'kind': 'metric', 'event': 'Buy', 'agg': 'sum', 'field': 'amount', 'within': '30d', "
    TAG_ERRS(METRIC "'buckets': []}", "$.buckets", "1 to 32 buckets");
    TAG_ERRS(METRIC "'buckets': {'low': 1}}", "$.buckets", "1 to 32 buckets");
    TAG_ERRS(METRIC "'buckets': ['low']}", "$.buckets[0]", "a bucket is");
    TAG_ERRS(METRIC "'buckets': [{'lt': 1}, {'name': 'b'}]}", "$.buckets[0].name", "missing required field");
    TAG_ERRS(METRIC "'buckets': [{'name': 'a', 'lt': 1, 'gt': 0}, {'name': 'b'}]}", "$.buckets[0].gt", "unknown field");
    TAG_ERRS(METRIC "'buckets': [{'name': 'a'}, {'name': 'b'}]}", "$.buckets[0].lt",
             "only the last bucket may leave out lt");
    TAG_ERRS(METRIC "'buckets': [{'name': 'a', 'lt': '100'}, {'name': 'b'}]}", "$.buckets[0].lt", "must be a number");
    TAG_ERRS(METRIC "'buckets': [{'name': 'a', 'lt': 100}, {'name': 'b', 'lt': 100}, {'name': 'c'}]}",
             "$.buckets[1].lt", "must be greater than buckets[0].lt (100)");
    TAG_ERRS(METRIC "'buckets': [{'name': 'a', 'lt': 100}, {'name': 'b', 'lt': 50.5}, {'name': 'c', 'lt': 50}]}",
             "$.buckets[1].lt", "greater than buckets[0].lt (100)", "$.buckets[2].lt", "greater than buckets[1].lt (50.5)");
    TAG_ERRS(METRIC "'buckets': [{'name': 'a', 'lt': 1}, {'name': 'b', 'lt': 2}, {'name': 'a'}]}", "$.buckets[2].name",
             "duplicate bucket name 'a' (buckets[0])");
    TAG_ERRS(METRIC "'type': 'number', 'buckets': [{'name': 'a'}]}", "$.type", "with buckets is a string tag");
    TAG_ERRS(METRIC "'type': 'string'}", "$.type", "without buckets is a number tag");
    TAG_ERRS(METRIC "'type': 'bool'}", "$.type", "without buckets is a number tag");
#undef METRIC
}

static void test_tag_behaviour_errors(void **state)
{
    TAG_ERRS("{'key': 'k', 'kind': 'first'}", "$.event", "missing required field", "$.field",
             "missing required field: the event property whose value is kept");
    TAG_ERRS("{'key': 'k', 'kind': 'last', 'event': 'Login', 'field': 'city', 'within': '7d'}", "$.within",
             "not a field of a last tag");
    TAG_ERRS("{'key': 'k', 'kind': 'first', 'event': 'Login', 'field': ''}", "$.field", "must not be empty");
    TAG_ERRS("{'key': 'k', 'kind': 'first', 'event': '**', 'field': 'a'}", "$.event", "bad event name");
    TAG_ERRS("{'key': 'k', 'kind': 'last', 'event': 'Login', 'field': 'city', 'where': {'in_segment': 'x'}}",
             "$.where", "event properties only");
    TAG_ERRS("{'key': 'k', 'kind': 'preference', 'event': 'View', 'field': 'fund_type'}", "$.within",
             "missing required field");
    TAG_ERRS("{'key': 'k', 'kind': 'preference', 'event': 'View', 'field': 'fund_type', 'within': '120d'}", "$.within",
             "whole days from 1d to 90d");
    TAG_ERRS("{'key': 'k', 'kind': 'preference', 'event': '*', 'field': 'fund_type', 'within': '30d'}", "$.event",
             "only for first and last");
    TAG_ERRS("{'key': 'k', 'kind': 'preference', 'event': 'View', 'field': 'fund_type', 'within': '30d', 'agg': 'count'}",
             "$.agg", "not a field of a preference tag");
}

static void test_tag_all_errors_collected(void **state)
{
    const char *json = q("{'key': '1', 'kind': 'metric', 'type': 'number', 'event': '*', 'agg': 'sum', 'within': '100d',"
                         " 'buckets': [{'name': 'a'}, {'name': 'a', 'lt': 1}], 'layers': 1, 'x': 2}");
    wm_aud_error_t errs[MAX_ERRS];
    uint32_t n = 0;
    wm_tag_def_t *t = NULL;
    int rc = wm_tag_compile_text(json, strlen(json), &t, errs, MAX_ERRS, &n);
    check_errs(rc, errs, n,
               (const char *const[]){"$.key", "bad key", "$.layers", "not a field", "$.x", "unknown field",
                                     "$.event", "'*'", "$.field", "missing", "$.within", "90 days",
                                     "$.buckets[0].lt", "only the last", "$.buckets[1].name", "duplicate",
                                     "$.type", "string tag", NULL});

    /* fewer slots than errors: the count is still complete */
    wm_aud_error_t two[2];
    rc = wm_tag_compile_text(json, strlen(json), &t, two, 2, &n);
    assert_int_equal(rc, WM_EINVAL);
    assert_int_equal(n, 9);
    assert_string_equal(two[1].path, "$.layers");
    rc = wm_tag_compile_text(json, strlen(json), &t, NULL, 0, &n);
    assert_int_equal(rc, WM_EINVAL);
    assert_int_equal(n, 9);
    rc = wm_tag_compile_text(json, strlen(json), &t, NULL, 0, NULL);
    assert_int_equal(rc, WM_EINVAL);
    assert_null(t);
}

static void test_text_errors(void **state)
{
    wm_aud_error_t errs[4];
    uint32_t n = 0;
    wm_tag_def_t *t = NULL;
    const char *bad = "{\"key\": \"k\", \"kind\": ";
    assert_int_equal(wm_tag_compile_text(bad, strlen(bad), &t, errs, 4, &n), WM_EINVAL);
    assert_int_equal(n, 1);
    assert_string_equal(errs[0].path, "$");
    assert_non_null(strstr(errs[0].msg, "invalid JSON"));
    assert_non_null(strstr(errs[0].msg, "at byte 21"));
    assert_null(t);

    char deep[200];
    memset(deep, '[', sizeof deep);
    wm_segment_def_t *s = NULL;
    assert_int_equal(wm_segment_compile_text(deep, sizeof deep, &s, errs, 4, &n), WM_EINVAL);
    assert_int_equal(n, 1);
    assert_string_equal(errs[0].path, "$");
    assert_non_null(strstr(errs[0].msg, "nested deeper than"));

    assert_int_equal(wm_tag_compile_text(NULL, 0, &t, errs, 4, &n), WM_EINVAL);
    assert_int_equal(n, 1);
    assert_int_equal(wm_tag_compile(NULL, &t, errs, 4, &n), WM_EINVAL);
    assert_string_equal(errs[0].path, "$");
    assert_int_equal(wm_tag_compile(NULL, NULL, errs, 4, &n), WM_EINVAL);
    assert_int_equal(wm_segment_compile(NULL, NULL, errs, 4, &n), WM_EINVAL);
    wm_tag_free(NULL);
    wm_segment_free(NULL);
}

/* ------------------------------------------------------------ segments */

static void test_segment_rule(void **state)
{
    wm_segment_def_t *s = seg_ok("{'key': 'active_hnw', 'name': '活跃高净值客户', 'description': '近30天登录3次以上', 'kind': 'rule',"
                                 " 'condition': {'all': [{'tag': 'tier', 'op': '=', 'value': '高净值'},"
                                 "   {'did': 'Login', 'count': {'>=': 3}, 'within': '30d'},"
                                 "   {'profile': 'risk_level', 'op': '>=', 'value': 'C3'},"
                                 "   {'not': {'in_segment': 'dormant'}}]}}");
    assert_string_equal(s->key, "active_hnw");
    assert_string_equal(s->name, "活跃高净值客户");
    assert_int_equal(s->kind, WM_SEGMENT_RULE);
    assert_string_equal(wm_segment_kind_name(s->kind), "rule");
    assert_non_null(s->cond);
    assert_int_equal(s->refresh, WM_REFRESH_REALTIME);
    assert_null(s->cron);
    assert_true(s->incremental);
    assert_true(s->uses_profile);
    assert_true(s->uses_clock);
    assert_int_equal(s->n_input_events, 1);
    assert_string_equal(s->input_events[0], "Login");
    assert_int_equal(s->n_input_tags, 1);
    assert_string_equal(s->input_tags[0], "tier");
    assert_int_equal(s->n_input_segments, 1);
    assert_string_equal(s->input_segments[0], "dormant");
    const wm_counter_spec_t *specs = NULL;
    uint32_t n = 0;
    wm_cond_counters(s->cond, &specs, &n);
    assert_int_equal(n, 1);
    assert_string_equal(specs[0].event, "Login");
    wm_segment_free(s);

    /* kind defaults to rule with a condition; profile only: no clock */
    s = seg_ok("{'key': 'shanghai', 'condition': {'profile': 'city', 'op': '=', 'value': '上海'}}");
    assert_int_equal(s->kind, WM_SEGMENT_RULE);
    assert_true(s->incremental);
    assert_true(s->uses_profile);
    assert_false(s->uses_clock);
    assert_int_equal(s->n_input_events, 0);
    wm_segment_free(s);

    /* a sequence: its events are inputs */
    s = seg_ok("{'key': 'sip_funnel', 'condition': {'sequence': [{'event': 'Login'}, {'event': 'ViewFundDetail'},"
               " {'event': 'StartSIP'}], 'within': '1d'}}");
    assert_int_equal(s->n_input_events, 3);
    assert_true(has_name(s->input_events, s->n_input_events, "StartSIP"));
    assert_true(s->uses_clock);
    assert_false(s->uses_profile);
    wm_segment_free(s);
}

static void test_segment_refresh_and_items(void **state)
{
    wm_segment_def_t *s = seg_ok("{'key': 'r2_holders', 'refresh': {'mode': 'schedule', 'cron': '0 6 * * 1-5'},"
                                 " 'condition': {'item': {'type': 'wealth', 'key': 'main_product', 'from': 'profile'},"
                                 "  'prop': 'risk_level', 'op': '<=', 'value': 'R2'}}");
    assert_int_equal(s->refresh, WM_REFRESH_SCHEDULE);
    assert_string_equal(s->cron, "0 6 * * 1-5");
    assert_false(s->incremental);
    assert_true(s->uses_profile); /* the item key is a profile property */
    wm_segment_free(s);

    /* realtime asked, but item lookups cannot be kept per change */
    s = seg_ok("{'key': 'suitable', 'refresh': {'mode': 'realtime'}, 'condition': {'item': {'type': 'fund',"
               " 'key': 'last_viewed_fund', 'from': 'profile'}, 'prop': 'risk_level', 'op': '<=',"
               " 'value': {'profile': 'risk_level'}}}");
    assert_int_equal(s->refresh, WM_REFRESH_REALTIME);
    assert_false(s->incremental);
    wm_segment_free(s);

    /* a schedule without items: recomputed, not kept */
    s = seg_ok("{'key': 'morning', 'refresh': {'mode': 'schedule', 'cron': '*/15 8-20 1,15 1-12/2 0,7'},"
               " 'condition': {'profile': 'aum', 'op': '>', 'value': 0}}");
    assert_false(s->incremental);
    wm_segment_free(s);
}

static void test_segment_sets_and_static(void **state)
{
    static const char *const kinds[] = {"union", "intersect", "except"};
    for (int k = 0; k < 3; k++) {
        char text[256];
        snprintf(text, sizeof text, "{'key': 'x', 'kind': '%s', 'of': ['active_hnw', 'vip_seg', 'branch_list']}", kinds[k]);
        wm_segment_def_t *s = seg_ok(text);
        assert_int_equal(s->kind, WM_SEGMENT_UNION + k);
        assert_string_equal(wm_segment_kind_name(s->kind), kinds[k]);
        assert_int_equal(s->n_operands, 3);
        assert_string_equal(s->operands[0], "active_hnw");
        assert_string_equal(s->operands[2], "branch_list");
        assert_int_equal(s->n_input_segments, 3);
        assert_string_equal(s->input_segments[1], "vip_seg");
        assert_true(s->incremental);
        assert_false(s->uses_profile || s->uses_clock);
        assert_null(s->cond);
        wm_segment_free(s);
    }
    wm_segment_def_t *s = seg_ok("{'key': 'x', 'kind': 'except', 'of': ['a', 'b'],"
                                 " 'refresh': {'mode': 'schedule', 'cron': '30 7 * * *'}}");
    assert_false(s->incremental);
    assert_string_equal(s->cron, "30 7 * * *");
    wm_segment_free(s);

    s = seg_ok("{'key': 'branch_list', 'name': '分行白名单', 'kind': 'static'}");
    assert_int_equal(s->kind, WM_SEGMENT_STATIC);
    assert_null(s->snapshot_of);
    assert_false(s->incremental);
    assert_int_equal(s->refresh, WM_REFRESH_REALTIME);
    assert_int_equal(s->n_input_segments, 0);
    wm_segment_free(s);

    s = seg_ok("{'key': 'snap_0930', 'kind': 'static', 'snapshot_of': 'active_hnw'}");
    assert_string_equal(s->snapshot_of, "active_hnw");
    assert_int_equal(s->n_input_segments, 1);
    assert_string_equal(s->input_segments[0], "active_hnw");
    assert_false(s->incremental);
    wm_segment_free(s);

    assert_string_equal(wm_segment_kind_name(WM_SEGMENT_STATIC), "static");
    assert_string_equal(wm_segment_kind_name((wm_segment_kind_t)0), "unknown");
}

static void test_segment_errors(void **state)
{
    SEG_ERRS("\"x\"", "$", "must be a JSON object");
    SEG_ERRS("{'key': 'x'}", "$.kind", "missing required field");
    SEG_ERRS("{'key': 'x', 'kind': 'lookalike'}", "$.kind", "unknown kind 'lookalike'");
    SEG_ERRS("{'condition': {'profile': 'a', 'op': 'is_set'}}", "$.key", "missing required field");
    SEG_ERRS("{'key': 'x y', 'kind': 'static'}", "$.key", "bad key");
    SEG_ERRS("{'key': 'x', 'kind': 'rule'}", "$.condition", "missing required field");
    SEG_ERRS("{'key': 'x', 'condition': {'profile': 'a', 'op': 'is_set'}, 'of': ['a', 'b']}", "$.of",
             "not a field of a rule segment");
    SEG_ERRS("{'key': 'x', 'kind': 'union', 'of': ['a', 'b'], 'snapshot_of': 'a'}", "$.snapshot_of",
             "not a field of a union segment");
    SEG_ERRS("{'key': 'x', 'kind': 'static', 'where': 1}", "$.where", "unknown field");
    SEG_ERRS("{'key': 'x', 'condition': {'any': [{'profile': 'a', 'op': 'is_set'}, {'did': 'Buy', 'within': '100d'}]}}",
             "$.condition.any[1].within", "at most 90 days");
    SEG_ERRS("{'key': 'x', 'condition': {'any': []}}", "$.condition.any", "");
    SEG_ERRS("{'key': 'x', 'condition': {'in_segment': 'x'}}", "$.condition", "a segment cannot contain itself");
    SEG_ERRS("{'key': 'x', 'condition': {'prop': 'amount', 'op': '>', 'value': 1}}", "$.condition",
             "cannot read the current event");
    SEG_ERRS("{'key': 'x', 'condition': {'did': 'View', 'where': {'prop': 'fund_code', 'op': '=', 'value': {'trigger': 'fund_code'}},"
             " 'count': {'>=': 3}, 'within': '7d'}}",
             "$.condition", "cannot read the current event");
}

static void test_segment_refresh_errors(void **state)
{
#define RULE "{'key': 'x', 'condition': {'profile': 'a', 'op': 'is_set'}, "
    SEG_ERRS(RULE "'refresh': 'daily'}", "$.refresh", "must be {\"mode\": \"realtime\"}");
    SEG_ERRS(RULE "'refresh': {}}", "$.refresh.mode", "missing required field");
    SEG_ERRS(RULE "'refresh': {'mode': 'hourly'}}", "$.refresh.mode", "must be realtime or schedule");
    SEG_ERRS(RULE "'refresh': {'mode': 'schedule'}}", "$.refresh.cron", "missing required field");
    SEG_ERRS(RULE "'refresh': {'mode': 'realtime', 'cron': '0 6 * * *'}}", "$.refresh.cron", "only for mode schedule");
    SEG_ERRS(RULE "'refresh': {'mode': 'schedule', 'cron': '0 6 * * *', 'tz': 'UTC'}}", "$.refresh.tz", "unknown field");
    SEG_ERRS(RULE "'refresh': {'mode': 'schedule', 'cron': 6}}", "$.refresh.cron", "must be a string");
    SEG_ERRS("{'key': 'x', 'kind': 'static', 'refresh': {'mode': 'schedule', 'cron': '0 6 * * *'}}", "$.refresh",
             "a static segment changes only by upload or snapshot");
#undef RULE
}

static void test_segment_cron(void **state)
{
    static const char *const good[] = {"0 6 * * *", "*/5 * * * *", "0 0 1 1 0", "59 23 31 12 7", "0-30/10 8,12,18 * * 1-5",
                                       "  0  6 * * *  ", "0 6 * * * ", "5/10 * * * *", "0 9 1-7 * 1", "007 6 * * *"};
    static const char *const bad[] = {"", "0 6 * *", "0 6 * * * *", "60 6 * * *", "0 24 * * *", "0 6 0 * *",
                                      "0 6 * 13 *", "0 6 * * 8", "0 6 * * mon", "*/0 * * * *", "5-1 * * * *",
                                      "1,,2 * * * *", ", * * * *", "1, * * * *", "- * * * *", "*/ * * * *",
                                      "+5 * * * *", "0\\t6 * * *", "1-2-3 * * * *", "1000 * * * *",
                                      "** * * * *", "*/60 * * * *"};
    for (size_t k = 0; k < sizeof good / sizeof good[0]; k++) {
        char text[256];
        snprintf(text, sizeof text,
                 "{'key': 'x', 'kind': 'union', 'of': ['a', 'b'], 'refresh': {'mode': 'schedule', 'cron': '%s'}}",
                 good[k]);
        wm_segment_def_t *s = seg_ok(text);
        assert_string_equal(s->cron, good[k]);
        wm_segment_free(s);
    }
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char text[256];
        snprintf(text, sizeof text,
                 "{'key': 'x', 'kind': 'union', 'of': ['a', 'b'], 'refresh': {'mode': 'schedule', 'cron': '%s'}}",
                 bad[k]);
        if (bad[k][0] == '\0')
            SEG_ERRS(text, "$.refresh.cron", "must not be empty");
        else
            SEG_ERRS(text, "$.refresh.cron", "bad cron");
    }
}

static void test_segment_operand_errors(void **state)
{
    SEG_ERRS("{'key': 'x', 'kind': 'union'}", "$.of", "missing required field");
    SEG_ERRS("{'key': 'x', 'kind': 'union', 'of': ['a']}", "$.of", "2 to 16 segment keys");
    SEG_ERRS("{'key': 'x', 'kind': 'intersect', 'of': 'a,b'}", "$.of", "2 to 16 segment keys");
    SEG_ERRS("{'key': 'x', 'kind': 'except', 'of': ['a', 'a']}", "$.of[1]", "'a' is given twice");
    SEG_ERRS("{'key': 'x', 'kind': 'except', 'of': ['a', 'x']}", "$.of[1]", "a segment cannot contain itself");
    SEG_ERRS("{'key': 'x', 'kind': 'union', 'of': ['a', 3, 'b c', '']}", "$.of[1]", "must be a segment key", "$.of[2]",
             "must be a segment key", "$.of[3]", "must be a segment key");
    char text[1024];
    size_t n = (size_t)snprintf(text, sizeof text, "{'key': 'x', 'kind': 'union', 'of': [");
    for (int i = 0; i < 17; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "%s's%d'", i ? "," : "", i);
    snprintf(text + n, sizeof text - n, "]}");
    SEG_ERRS(text, "$.of", "2 to 16");
    SEG_ERRS("{'key': 'x', 'kind': 'static', 'snapshot_of': 'x'}", "$.snapshot_of", "snapshot of itself");
    SEG_ERRS("{'key': 'x', 'kind': 'static', 'snapshot_of': '1a'}", "$.snapshot_of", "bad key");
}

static void test_segment_all_errors_collected(void **state)
{
    const char *json = q("{'key': '', 'name': 5, 'kind': 'static', 'snapshot_of': 'a b', 'refresh': {'mode': 'x'},"
                         " 'condition': {}, 'extra': 1, 'extra': 2}");
    wm_aud_error_t errs[MAX_ERRS];
    uint32_t n = 0;
    wm_segment_def_t *s = NULL;
    int rc = wm_segment_compile_text(json, strlen(json), &s, errs, MAX_ERRS, &n);
    check_errs(rc, errs, n,
               (const char *const[]){"$.key", "must not be empty", "$.name", "must be a string",
                                     "$.condition", "not a field of a static segment", "$.extra", "unknown field",
                                     "$.extra", "unknown field", "$.refresh", "static",
                                     "$.snapshot_of", "bad key", NULL});
}

/* ------------------------------------------------------------ errors as JSON */

static void test_errors_json(void **state)
{
    wm_buf_t b;
    wm_buf_init(&b, 0);
    wm_aud_errors_json(NULL, 0, &b);
    assert_string_equal(b.data, "{\"valid\":true,\"errors\":[]}");
    wm_buf_reset(&b);

    wm_aud_error_t errs[2];
    memset(errs, 0, sizeof errs);
    snprintf(errs[0].path, sizeof errs[0].path, "$.layers[0].if.op");
    snprintf(errs[0].msg, sizeof errs[0].msg, "unknown operator \"=>\"");
    snprintf(errs[1].path, sizeof errs[1].path, "$.default");
    snprintf(errs[1].msg, sizeof errs[1].msg, "'长尾' is already the value of layers[0]");
    wm_aud_errors_json(errs, 2, &b);
    assert_int_equal(b.err, 0);
    assert_string_equal(b.data, "{\"valid\":false,\"errors\":[{\"path\":\"$.layers[0].if.op\",\"message\":"
                                "\"unknown operator \\\"=>\\\"\"},{\"path\":\"$.default\",\"message\":"
                                "\"'长尾' is already the value of layers[0]\"}]}");
    /* and it parses back */
    wm_json_t *v = NULL;
    assert_int_equal(wm_json_parse(&arena, b.data, b.len, &v, NULL), 0);
    assert_int_equal(wm_json_get(v, "valid")->type, WM_JSON_FALSE);
    assert_int_equal(wm_json_get(v, "errors")->len, 2);
    wm_buf_release(&b);

    /* quoted input cut mid-character ("%.64s" of a Chinese key) stays UTF-8 */
    const char *cut = q("{'key': 'kx客户客户客户客户客户客户客户客户客户客户客户客户客户客户客户客户客户客户客户客户客户客户', 'kind': 'manual'}");
    wm_aud_error_t ce[MAX_ERRS];
    uint32_t cn = 0;
    wm_tag_def_t *ct = NULL;
    assert_int_equal(wm_tag_compile_text(cut, strlen(cut), &ct, ce, MAX_ERRS, &cn), WM_EINVAL);
    assert_int_equal(cn, 1);
    assert_non_null(strstr(ce[0].msg, "bad key 'kx客户"));
    assert_non_null(strstr(ce[0].msg, "?': letters")); /* the split character */
    wm_buf_init(&b, 0);
    wm_aud_errors_json(ce, cn, &b);
    assert_int_equal(wm_json_parse(&arena, b.data, b.len, &v, NULL), 0);
    wm_buf_release(&b);

    /* straight from a compile */
    const char *json = q("{'key': 'k', 'kind': 'rule', 'layers': [{'value': 'a', 'if': {'profile': 'x', 'op': '=>'}}]}");
    uint32_t n = 0;
    wm_tag_def_t *t = NULL;
    wm_aud_error_t e[MAX_ERRS];
    assert_int_equal(wm_tag_compile_text(json, strlen(json), &t, e, MAX_ERRS, &n), WM_EINVAL);
    wm_buf_init(&b, 0);
    wm_aud_errors_json(e, n, &b);
    assert_non_null(strstr(b.data, "\"path\":\"$.layers[0].if.op\""));
    wm_buf_release(&b);
}

/* ------------------------------------------------------------ memory */

static void test_out_of_memory(void **state)
{
    const char *tag = q("{'key': 'subscribe_90d', 'name': '近90天申购金额', 'kind': 'metric', 'event': 'SubscribeFund',"
                        " 'where': {'prop': 'fund_type', 'op': 'in', 'value': ['equity', 'mixed']},"
                        " 'agg': 'sum', 'field': 'amount', 'within': '90d',"
                        " 'buckets': [{'name': 'low', 'lt': 10000}, {'name': 'mid', 'lt': 100000}, {'name': 'high'}]}");
    const char *rule = q(TIER);
    const char *seg = q("{'key': 'x', 'condition': {'all': [{'tag': 'tier', 'op': '=', 'value': '高净值'},"
                        " {'did': 'Login', 'count': {'>=': 3}, 'within': '30d'}, {'in_segment': 'y'}]}}");
    const char *texts[] = {tag, rule, seg};
    for (int k = 0; k < 3; k++) {
        int ok = 0;
        for (long fail = 0; fail < 5000 && !ok; fail++) {
            wm_aud_error_t errs[4];
            uint32_t n = 0;
            int rc;
            void *def = NULL;
            wm_alloc_fail_after(fail);
            if (k < 2) {
                wm_tag_def_t *t = NULL;
                rc = wm_tag_compile_text(texts[k], strlen(texts[k]), &t, errs, 4, &n);
                def = t;
                wm_alloc_fail_after(-1);
                wm_tag_free(t);
            } else {
                wm_segment_def_t *s = NULL;
                rc = wm_segment_compile_text(texts[k], strlen(texts[k]), &s, errs, 4, &n);
                def = s;
                wm_alloc_fail_after(-1);
                wm_segment_free(s);
            }
            /* out of memory surfaces as ENOMEM (or, through the rules layer,
             * as a reported error); never as success without a definition */
            assert_true(rc == 0 || rc == WM_ENOMEM || rc == WM_EINVAL);
            assert_true((rc == 0) == (def != NULL));
            ok = rc == 0;
        }
        assert_true(ok);
    }
}

/* ------------------------------------------------------------ seeds */

static bool seed_is_valid(const char *name)
{
    return strncmp(name, "bad_", 4) != 0 && strcmp(name, "syntax.json") != 0 && strcmp(name, "not_object.json") != 0 &&
           strcmp(name, "list.json") != 0 && strstr(name, ".json") != NULL;
}

static uint32_t compile_seeds(const char *dir, bool tags)
{
    const char *root = getenv("WM_SRC_DIR");
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root ? root : ".", dir);
    DIR *d = opendir(path);
    assert_non_null(d);
    uint32_t count = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!seed_is_valid(e->d_name))
            continue;
        char file[800];
        snprintf(file, sizeof file, "%s/%s", path, e->d_name);
        FILE *f = fopen(file, "rb");
        assert_non_null(f);
        char text[8192];
        size_t len = fread(text, 1, sizeof text, f);
        fclose(f);
        wm_aud_error_t errs[MAX_ERRS];
        uint32_t n = 0;
        int rc;
        if (tags) {
            wm_tag_def_t *t = NULL;
            rc = wm_tag_compile_text(text, len, &t, errs, MAX_ERRS, &n);
            wm_tag_free(t);
        } else {
            wm_segment_def_t *s = NULL;
            rc = wm_segment_compile_text(text, len, &s, errs, MAX_ERRS, &n);
            wm_segment_free(s);
        }
        if (rc != 0) {
            print_error("%s:\n", e->d_name);
            print_errs(errs, n);
        }
        assert_int_equal(rc, 0);
        count++;
    }
    closedir(d);
    return count;
}

static void test_seeds_compile(void **state)
{
    assert_true(compile_seeds("tests/fuzz/tag_def/corpus", true) >= 10);
    assert_true(compile_seeds("tests/fuzz/segment_def/corpus", false) >= 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tag_rule),
        cmocka_unit_test(test_tag_rule_typed),
        cmocka_unit_test(test_tag_metric_sum_buckets),
        cmocka_unit_test(test_tag_metric_aggs),
        cmocka_unit_test(test_tag_first_last_preference),
        cmocka_unit_test(test_tag_imported_manual),
        cmocka_unit_test(test_tag_common_errors),
        cmocka_unit_test(test_tag_rule_errors),
        cmocka_unit_test(test_tag_metric_errors),
        cmocka_unit_test(test_tag_bucket_errors),
        cmocka_unit_test(test_tag_behaviour_errors),
        cmocka_unit_test(test_tag_all_errors_collected),
        cmocka_unit_test(test_text_errors),
        cmocka_unit_test(test_segment_rule),
        cmocka_unit_test(test_segment_refresh_and_items),
        cmocka_unit_test(test_segment_sets_and_static),
        cmocka_unit_test(test_segment_errors),
        cmocka_unit_test(test_segment_refresh_errors),
        cmocka_unit_test(test_segment_cron),
        cmocka_unit_test(test_segment_operand_errors),
        cmocka_unit_test(test_segment_all_errors_collected),
        cmocka_unit_test(test_errors_json),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_seeds_compile),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
