/*
 * test_template.c - message templates: placeholders and fallbacks (both
 * spellings), value formatting (integers without ".0", lists with "、"),
 * JSON escaping of substituted values only, missing variables named,
 * compile errors with byte offsets, the variable list, every template in
 * examples/templates.json, and out-of-memory during compile.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "waymark/alloc.h"
#include "waymark/error.h"
#include "waymark/journey.h"

static wm_arena_t arena;
static wm_json_t *ctx_doc;

/* The lookup the runtime would give: ctx_doc[scope][name]. */
static const wm_json_t *lookup(void *ctx, const char *scope, const char *name)
{
    return wm_json_get(wm_json_get(ctx, scope), name);
}

static const char CTX[] =
    "{\"profile\":{\"name\":\"王芳\",\"risk_level\":\"C4\",\"aum\":1250000,\"empty\":\"\",\"nothing\":null,"
    "\"tags\":[\"定投\",\"打新\",\"养老\"],\"vip\":true,\"ratio\":0.1,\"big\":3.0,\"neg\":-7,\"nested\":[[1,2],"
    "{\"a\":\"b\"}],\"obj\":{\"k\":\"v\"}},"
    "\"event\":{\"fund_code\":\"110011\",\"amount\":2.5,\"quote\":\"他说\\\"好\\\"\\n换行\"},"
    "\"item\":{\"fund_name\":\"易方达蓝筹精选混合\"},\"journey\":{\"key\":\"fund_sip_companion\"}}";

static int setup(void **state)
{
    wm_arena_init(&arena, 4096);
    return wm_json_parse(&arena, CTX, strlen(CTX), &ctx_doc, NULL);
}

static int teardown(void **state)
{
    wm_arena_release(&arena);
    return 0;
}

/* Renders text; returns the rc, output in out (caller releases). */
static int render(const char *text, bool json_escape, wm_buf_t *out, char *missing)
{
    wm_template_t *t = NULL;
    char err[160];
    int rc = wm_template_compile(text, &t, err, sizeof err);
    if (rc != 0)
        print_error("compile %s: %s\n", text, err);
    assert_int_equal(rc, 0);
    wm_buf_init(out, 0);
    rc = wm_template_render(t, lookup, ctx_doc, json_escape, out, missing, 64);
    wm_template_free(t);
    return rc;
}

static void expect_render(const char *text, const char *want)
{
    wm_buf_t out;
    char missing[64];
    assert_int_equal(render(text, false, &out, missing), 0);
    assert_string_equal(out.len ? out.data : "", want);
    wm_buf_release(&out);
}

static void test_plain_and_vars(void **state)
{
    expect_render("", "");
    expect_render("没有占位符", "没有占位符");
    expect_render("{{profile.name}}，您关注的{{item.fund_name}}支持定投",
                  "王芳，您关注的易方达蓝筹精选混合支持定投");
    expect_render("{{ profile.name }}/{{event.fund_code}}/{{journey.key}}", "王芳/110011/fund_sip_companion");
    /* a lone "}}" or "{" is literal text */
    expect_render("a }} b { c", "a }} b { c");
}

static void test_fallbacks(void **state)
{
    expect_render("{{profile.nick | default: \"尊敬的客户\"}}，您好", "尊敬的客户，您好");
    expect_render("{{profile.nick | \"客户\"}}", "客户");
    expect_render("{{profile.nick|default:\"x\"}}", "x");
    /* present values win over the fallback */
    expect_render("{{profile.name | default: \"客户\"}}", "王芳");
    /* null and "" are missing */
    expect_render("{{profile.nothing | \"无\"}}{{profile.empty | \"空\"}}", "无空");
    /* escaped quote and backslash inside the fallback */
    expect_render("{{profile.nick | \"A\\\"B\\\\C\"}}", "A\"B\\C");
}

static void test_missing_variable(void **state)
{
    wm_buf_t out;
    char missing[64];
    assert_int_equal(render("您好{{profile.name}}，{{profile.nick}}", false, &out, missing), WM_ENOTFOUND);
    assert_string_equal(missing, "profile.nick");
    wm_buf_release(&out);
    assert_int_equal(render("{{event.nothing}}", false, &out, missing), WM_ENOTFOUND);
    assert_string_equal(missing, "event.nothing");
    wm_buf_release(&out);
    assert_int_equal(render("{{profile.empty}}", false, &out, missing), WM_ENOTFOUND);
    assert_string_equal(missing, "profile.empty");
    wm_buf_release(&out);
}

static void test_value_formatting(void **state)
{
    expect_render("{{profile.aum}}", "1250000");
    expect_render("{{profile.big}}", "3");
    expect_render("{{event.amount}}", "2.5");
    expect_render("{{profile.ratio}}", "0.1");
    expect_render("{{profile.neg}}", "-7");
    expect_render("{{profile.vip}}", "true");
    expect_render("{{profile.tags}}", "定投、打新、养老");
    expect_render("{{profile.nested}}", "[1,2]、{\"a\":\"b\"}");
    expect_render("{{profile.obj}}", "{\"k\":\"v\"}");
}

static void test_json_escape(void **state)
{
    wm_buf_t out;
    char missing[64];
    const char *text = "{\"text\":\"{{event.quote}}\",\"name\":\"{{profile.name}}\",\"n\":{{profile.aum}},"
                       "\"f\":\"{{profile.nick | \"a\\\"b\"}}\"}";
    assert_int_equal(render(text, true, &out, missing), 0);
    assert_string_equal(out.data, "{\"text\":\"他说\\\"好\\\"\\n换行\",\"name\":\"王芳\",\"n\":1250000,\"f\":\"a\\\"b\"}");
    /* the result is valid JSON */
    wm_json_t *v = NULL;
    assert_int_equal(wm_json_parse(&arena, out.data, out.len, &v, NULL), 0);
    assert_string_equal(wm_json_str(wm_json_get(v, "text")), "他说\"好\"\n换行");
    wm_buf_release(&out);
    /* without json_escape the value goes in raw */
    assert_int_equal(render("{{event.quote}}", false, &out, missing), 0);
    assert_string_equal(out.data, "他说\"好\"\n换行");
    wm_buf_release(&out);
}

static void expect_compile_error(const char *text, const char *offset_part, const char *msg_part)
{
    wm_template_t *t = NULL;
    char err[160] = "";
    int rc = wm_template_compile(text, &t, err, sizeof err);
    assert_int_equal(rc, WM_EINVAL);
    assert_null(t);
    if (!strstr(err, offset_part) || !strstr(err, msg_part))
        print_error("%s -> '%s' (want '%s' and '%s')\n", text, err, offset_part, msg_part);
    assert_non_null(strstr(err, offset_part));
    assert_non_null(strstr(err, msg_part));
}

static void test_compile_errors(void **state)
{
    expect_compile_error("您好{{profile.name", "offset 6:", "unterminated placeholder");
    expect_compile_error("x{{}}", "offset 3:", "expected a variable");
    expect_compile_error("{{profile}}", "offset 2:", "scope.name");
    expect_compile_error("{{profile.}}", "offset 2:", "scope.name");
    expect_compile_error("{{account.name}}", "offset 2:", "unknown scope");
    expect_compile_error("{{profile.name | default \"x\"}}", "offset 25:", "expected ':'");
    expect_compile_error("{{profile.name | x}}", "offset 17:", "quoted fallback");
    expect_compile_error("{{profile.name | \"x}}", "offset 17:", "unterminated fallback");
    expect_compile_error("{{profile.name x}}", "offset 15:", "expected '}}'");
}

static void test_vars(void **state)
{
    wm_template_t *t = NULL;
    assert_int_equal(wm_template_compile("{{profile.name}}{{item.fund_name}}{{profile.name | \"x\"}}{{event.amount}}",
                                         &t, NULL, 0),
                     0);
    const char *const *vars;
    uint32_t n;
    wm_template_vars(t, &vars, &n);
    assert_int_equal(n, 3);
    assert_string_equal(vars[0], "profile.name");
    assert_string_equal(vars[1], "item.fund_name");
    assert_string_equal(vars[2], "event.amount");
    wm_template_free(t);
}

static void test_limit(void **state)
{
    size_t n = (64u << 10) + 1;
    char *big = malloc(n + 1);
    memset(big, 'a', n);
    big[n] = '\0';
    wm_template_t *t = NULL;
    char err[160];
    assert_int_equal(wm_template_compile(big, &t, err, sizeof err), WM_ELIMIT);
    assert_null(t);
    free(big);
}

static void test_example_templates(void **state)
{
    const char *root = getenv("WM_SRC_DIR");
    char path[512];
    snprintf(path, sizeof path, "%s/examples/templates.json", root ? root : ".");
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char text[1 << 17];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    wm_json_t *doc = NULL;
    assert_int_equal(wm_json_parse(&arena, text, len, &doc, NULL), 0);
    const wm_json_t *list = wm_json_get(doc, "templates");
    assert_non_null(list);
    uint32_t count = 0;
    for (const wm_json_t *e = list->u.child; e; e = e->next, count++) {
        const char *key = wm_json_str(wm_json_get(e, "key"));
        const char *body = wm_json_str(wm_json_get(e, "body"));
        assert_non_null(key);
        assert_non_null(body);
        assert_non_null(wm_json_str(wm_json_get(e, "channel")));
        wm_template_t *t = NULL;
        char err[160];
        int rc = wm_template_compile(body, &t, err, sizeof err);
        if (rc != 0)
            print_error("template %s: %s\n", key, err);
        assert_int_equal(rc, 0);
        /* renders against the sample context or names what it misses */
        wm_buf_t out;
        wm_buf_init(&out, 0);
        char missing[64];
        rc = wm_template_render(t, lookup, ctx_doc, strcmp(key, "crm_policy_body") == 0, &out, missing, 64);
        assert_true(rc == 0 || (rc == WM_ENOTFOUND && strchr(missing, '.')));
        wm_buf_release(&out);
        wm_template_free(t);
    }
    assert_true(count >= 30);
}

static void test_sip_intro_defaults(void **state)
{
    /* the seed's template: a customer without a name still gets a message */
    wm_template_t *t = NULL;
    assert_int_equal(wm_template_compile("{{profile.nick | default: \"尊敬的客户\"}}，您关注的{{item.fund_name}}支持定投",
                                         &t, NULL, 0),
                     0);
    wm_buf_t out;
    wm_buf_init(&out, 0);
    assert_int_equal(wm_template_render(t, lookup, ctx_doc, false, &out, NULL, 0), 0);
    assert_string_equal(out.data, "尊敬的客户，您关注的易方达蓝筹精选混合支持定投");
    wm_buf_release(&out);
    /* no lookup at all: every placeholder is missing */
    wm_buf_init(&out, 0);
    char missing[64];
    assert_int_equal(wm_template_render(t, NULL, NULL, false, &out, missing, sizeof missing), WM_ENOTFOUND);
    assert_string_equal(missing, "item.fund_name");
    wm_buf_release(&out);
    wm_template_free(t);
}

static void test_out_of_memory(void **state)
{
    const char *text = "{{profile.name | \"客户\"}}您好，{{item.fund_name}}、{{event.amount}}元{{profile.name}}";
    int ok = 0;
    for (long fail = 0; fail < 200 && !ok; fail++) {
        wm_template_t *t = NULL;
        wm_alloc_fail_after(fail);
        int rc = wm_template_compile(text, &t, NULL, 0);
        wm_alloc_fail_after(-1);
        assert_true(rc == 0 || rc == WM_ENOMEM || rc == WM_EINVAL || rc == WM_ELIMIT);
        if (rc == 0) {
            ok = 1;
            wm_buf_t out;
            wm_buf_init(&out, 0);
            assert_int_equal(wm_template_render(t, lookup, ctx_doc, false, &out, NULL, 0), 0);
            assert_string_equal(out.data, "王芳您好，易方达蓝筹精选混合、2.5元王芳");
            wm_buf_release(&out);
        } else {
            assert_null(t);
        }
        wm_template_free(t);
    }
    assert_true(ok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_and_vars),   cmocka_unit_test(test_fallbacks),
        cmocka_unit_test(test_missing_variable), cmocka_unit_test(test_value_formatting),
        cmocka_unit_test(test_json_escape),      cmocka_unit_test(test_compile_errors),
        cmocka_unit_test(test_vars),             cmocka_unit_test(test_limit),
        cmocka_unit_test(test_example_templates), cmocka_unit_test(test_sip_intro_defaults),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
