/*
 * test_def.c - journey definitions: the shipped examples compile against the
 * shipped channel/template/event catalogues, each validation error is
 * reported on its own with the exact node and field, all errors are
 * collected, out-of-memory is clean, and the deterministic split is stable
 * and honours its percentages.
 *
 * Run from the repository root (tests/run-all does); WM_SRC_DIR overrides.
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

#define MAX_ERRS 64

static const char *const EXAMPLES[] = {"fund_sip_companion", "ipo_lot_won",    "viewed_product_3x",
                                       "registered_no_account", "product_maturity", "loan_stages",
                                       "insurance_event_invite", "tiered_service"};
#define N_EXAMPLES (sizeof EXAMPLES / sizeof EXAMPLES[0])

/* Profile properties the examples may name (gen's profile + journey state). */
static const char *const PROPERTIES[] = {"name",   "mobile",      "gender",   "age",        "city",
                                         "risk_level", "tier",    "register_channel", "timezone",
                                         "account_opened", "aum", "customer_no", "open_date",
                                         "held_products", "birthday", "loan_stage"};

static wm_arena_t arena;
static wm_journey_refs_t refs;

static char *slurp(const char *rel, size_t *len)
{
    const char *root = getenv("WM_SRC_DIR");
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root ? root : ".", rel);
    FILE *f = fopen(path, "rb");
    if (!f) {
        print_error("cannot open %s (run from the repository root or set WM_SRC_DIR)\n", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = wm_arena_alloc(&arena, (size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    buf[got] = '\0';
    *len = got;
    return buf;
}

static wm_json_t *load_json(const char *rel)
{
    size_t len = 0;
    char *text = slurp(rel, &len);
    assert_non_null(text);
    wm_json_t *v = NULL;
    assert_int_equal(wm_json_parse(&arena, text, len, &v, NULL), 0);
    return v;
}

static int setup(void **state)
{
    wm_arena_init(&arena, 1 << 16);
    memset(&refs, 0, sizeof refs);
    if (wm_journey_names_collect(&arena, load_json("examples/channels.json"), "channels", &refs.channels,
                                 &refs.n_channels) != 0 ||
        wm_journey_names_collect(&arena, load_json("examples/templates.json"), "templates", &refs.templates,
                                 &refs.n_templates) != 0 ||
        wm_journey_names_collect(&arena, load_json("examples/events.json"), "events", &refs.events,
                                 &refs.n_events) != 0)
        return -1;
    refs.properties = PROPERTIES;
    refs.n_properties = sizeof PROPERTIES / sizeof PROPERTIES[0];
    refs.journeys = EXAMPLES;
    refs.n_journeys = N_EXAMPLES;
    return 0;
}

static int teardown(void **state)
{
    wm_arena_release(&arena);
    return 0;
}

static wm_journey_def_t *compile_example(const char *key)
{
    char rel[128];
    snprintf(rel, sizeof rel, "examples/journeys/%s.json", key);
    wm_journey_error_t errs[MAX_ERRS];
    uint32_t n = 0;
    wm_journey_def_t *j = NULL;
    int rc = wm_journey_compile(load_json(rel), &refs, &j, errs, MAX_ERRS, &n);
    for (uint32_t k = 0; k < n && k < MAX_ERRS; k++)
        print_error("%s: node '%s' field '%s': %s\n", key, errs[k].node, errs[k].field, errs[k].msg);
    assert_int_equal(rc, 0);
    assert_int_equal(n, 0);
    assert_non_null(j);
    assert_string_equal(j->key, key);
    return j;
}

static void test_catalogues_loaded(void **state)
{
    assert_int_equal(refs.n_channels, 6);
    assert_true(refs.n_templates >= 30);
    assert_true(refs.n_events >= 20);
}

static void test_examples_compile(void **state)
{
    for (size_t k = 0; k < N_EXAMPLES; k++) {
        wm_journey_def_t *j = compile_example(EXAMPLES[k]);
        assert_true(j->n_nodes >= 3); /* viewed_product_3x: lead, material, exit */
        assert_int_equal(j->start, 0);
        wm_journey_free(j);
    }
}

static void test_fund_sip_compiled_form(void **state)
{
    wm_journey_def_t *j = compile_example("fund_sip_companion");
    assert_int_equal(j->entry.kind, WM_ENTRY_EVENT);
    assert_string_equal(j->entry.event, "ViewFundDetail");
    assert_non_null(j->entry.where);
    assert_int_equal(j->entry.reentry, WM_REENTRY_AFTER_EXIT);
    assert_int_equal(j->entry.reentry_wait_ms, 30LL * 86400000);
    assert_int_equal(j->entry.max_concurrent, 1);
    assert_string_equal(j->goal.event, "StartSIP");
    assert_int_equal(j->goal.within_ms, 30LL * 86400000);
    assert_string_equal(j->exit_when.event, "AccountClosed");
    assert_string_equal(j->settings.quiet_from, "21:00");
    assert_string_equal(j->settings.quiet_to, "08:30");
    assert_true(j->settings.quiet_hold);
    assert_int_equal(j->settings.n_caps, 2);
    assert_string_equal(j->settings.caps[1].channel, "sms");
    assert_int_equal(j->settings.caps[1].max, 2);
    assert_int_equal(j->settings.caps[1].per_ms, 7LL * 86400000);
    assert_int_equal(j->settings.priority, 5);

    const wm_jnode_t *w = &j->nodes[0];
    assert_int_equal(w->type, WM_JN_WAIT);
    assert_int_equal(w->u.wait.kind, WM_WAIT_DURATION);
    assert_int_equal(w->u.wait.duration_ms, 2 * 3600000);
    assert_int_equal(w->next, wm_journey_node_index(j, "risk"));

    const wm_jnode_t *risk = &j->nodes[wm_journey_node_index(j, "risk")];
    assert_int_equal(risk->type, WM_JN_CONDITION);
    assert_int_equal(risk->u.condition.yes, wm_journey_node_index(j, "ab"));
    assert_int_equal(risk->u.condition.no, wm_journey_node_index(j, "end"));

    const wm_jnode_t *ab = &j->nodes[wm_journey_node_index(j, "ab")];
    assert_int_equal(ab->type, WM_JN_SPLIT);
    assert_int_equal(ab->u.branch.n_arms, 3);
    assert_int_equal(ab->u.branch.arms[0].percent, 45);
    assert_false(ab->u.branch.arms[0].control);
    assert_true(ab->u.branch.arms[2].control);
    assert_string_equal(ab->u.branch.arms[2].name, "control");

    const wm_jnode_t *push = &j->nodes[wm_journey_node_index(j, "push")];
    assert_string_equal(push->u.send.channel, "push");
    assert_string_equal(push->u.send.template_key, "sip_intro");
    assert_string_equal(push->u.send.item_type, "fund");
    assert_string_equal(push->u.send.item_key, "fund_code");

    const wm_jnode_t *aw = &j->nodes[wm_journey_node_index(j, "await")];
    assert_int_equal(aw->type, WM_JN_WAIT_EVENT);
    assert_int_equal(aw->u.wait_event.n_events, 1);
    assert_string_equal(aw->u.wait_event.events[0], "StartSIP");
    assert_string_equal(aw->u.wait_event.match_prop, "fund_code");
    assert_int_equal(aw->u.wait_event.timeout_ms, 3LL * 86400000);
    assert_int_equal(aw->u.wait_event.on_timeout, wm_journey_node_index(j, "lead"));

    const wm_jnode_t *lead = &j->nodes[wm_journey_node_index(j, "lead")];
    assert_string_equal(lead->u.advisor.queue, "wealth");
    assert_int_equal(lead->u.advisor.sla_ms, 86400000);
    assert_string_equal(lead->u.advisor.script, "sip_followup");
    assert_int_equal(j->nodes[wm_journey_node_index(j, "end")].next, WM_JOURNEY_NONE);
    assert_int_equal(wm_journey_node_index(j, "nope"), WM_JOURNEY_NONE);
    assert_string_equal(wm_jnode_type_name(WM_JN_ADVISOR_TASK), "advisor_task");
    wm_journey_free(j);
}

/* viewed_product_3x's entry rule is a did that scans the user's events
 * (the same fund_code as the triggering view); a stand-in for the runtime's
 * event listing: views on given local days, in time order. */
#define VIEW_DAY0_MS 1767232800000LL /* 2026-01-01 10:00 in UTC+8 */
#define DAY_MS 86400000LL

typedef struct fake_views {
    wm_json_t *ev[8];
    uint32_t n;
} fake_views_t;

static int fake_views_list(void *ctx, int64_t from_ms, int64_t to_ms,
                           int (*cb)(void *cbctx, const wm_json_t *event), void *cbctx)
{
    const fake_views_t *f = ctx;
    for (uint32_t i = 0; i < f->n; i++) {
        int64_t t = (int64_t)wm_json_get(f->ev[i], "time")->u.num;
        if (t >= from_ms && t < to_ms && cb(cbctx, f->ev[i]))
            break;
    }
    return 0;
}

/* Does the entry's where hold for the last of these views (days[i], funds[i])? */
static bool entry_holds(const wm_journey_def_t *j, const int *days, const char *const *funds, uint32_t n)
{
    fake_views_t f = {.n = n};
    for (uint32_t i = 0; i < n; i++) {
        char text[192];
        int len = snprintf(text, sizeof text,
                           "{\"event\":\"ViewFundDetail\",\"time\":%lld,\"properties\":{\"fund_code\":\"%s\"}}",
                           VIEW_DAY0_MS + days[i] * DAY_MS, funds[i]);
        char *copy = wm_arena_strndup(&arena, text, (size_t)len);
        assert_int_equal(wm_json_parse(&arena, copy, (size_t)len, &f.ev[i], NULL), 0);
    }
    wm_cond_env_t env;
    memset(&env, 0, sizeof env);
    env.event = f.ev[n - 1];
    env.now_ms = VIEW_DAY0_MS + days[n - 1] * DAY_MS;
    env.tz_offset_min = 480;
    env.ctx = &f;
    env.events = fake_views_list;
    bool ok = false;
    assert_int_equal(wm_cond_eval(j->entry.where, &env, &ok), 0);
    return ok;
}

static void test_other_compiled_forms(void **state)
{
    /* viewed_product_3x: the entry is the rule (3rd view of the same fund in
     * the last 7 local days), then lead -> material -> exit */
    wm_journey_def_t *j = compile_example("viewed_product_3x");
    assert_int_equal(j->entry.kind, WM_ENTRY_EVENT);
    assert_string_equal(j->entry.event, "ViewFundDetail");
    assert_non_null(j->entry.where);
    assert_int_equal(j->entry.reentry, WM_REENTRY_AFTER_EXIT);
    assert_int_equal(j->entry.reentry_wait_ms, 7 * DAY_MS);
    assert_int_equal(j->entry.max_concurrent, 1);
    const wm_counter_spec_t *specs = NULL;
    uint32_t n_specs = 0;
    wm_cond_counters(j->entry.where, &specs, &n_specs);
    assert_int_equal(n_specs, 1);
    assert_string_equal(specs[0].event, "ViewFundDetail");
    assert_non_null(specs[0].where);
    assert_null(specs[0].field);
    const char *f3[] = {"000311", "000311", "000311"};
    const char *other[] = {"000311", "000311", "005827"};
    assert_false(entry_holds(j, (const int[]){0, 1}, f3, 2));
    assert_true(entry_holds(j, (const int[]){0, 1, 2}, f3, 3));
    assert_false(entry_holds(j, (const int[]){0, 1, 2}, other, 3));
    assert_false(entry_holds(j, (const int[]){0, 4, 9}, f3, 3));
    assert_false(entry_holds(j, (const int[]){0, 6, 7}, f3, 3));
    assert_true(entry_holds(j, (const int[]){4, 9, 10}, f3, 3));
    assert_int_equal(j->n_nodes, 3);
    assert_int_equal(j->start, wm_journey_node_index(j, "lead"));
    const wm_jnode_t *lead = &j->nodes[wm_journey_node_index(j, "lead")];
    assert_int_equal(lead->type, WM_JN_ADVISOR_TASK);
    assert_string_equal(lead->u.advisor.queue, "wealth");
    assert_int_equal(lead->u.advisor.sla_ms, DAY_MS);
    assert_string_equal(lead->u.advisor.priority, "high");
    assert_string_equal(lead->u.advisor.script, "product_interest_material");
    assert_string_equal(lead->u.advisor.item_type, "fund");
    assert_string_equal(lead->u.advisor.item_key, "fund_code");
    assert_int_equal(lead->next, wm_journey_node_index(j, "material"));
    const wm_jnode_t *mat = &j->nodes[wm_journey_node_index(j, "material")];
    assert_int_equal(mat->type, WM_JN_SEND);
    assert_string_equal(mat->u.send.channel, "wecom");
    assert_string_equal(mat->u.send.template_key, "fund_material");
    assert_string_equal(mat->u.send.item_type, "fund");
    assert_string_equal(mat->u.send.item_key, "fund_code");
    assert_false(mat->u.send.no_suitability);
    assert_int_equal(mat->next, wm_journey_node_index(j, "end"));
    assert_int_equal(j->nodes[wm_journey_node_index(j, "end")].type, WM_JN_EXIT);
    wm_journey_free(j);

    j = compile_example("product_maturity");
    assert_int_equal(j->entry.kind, WM_ENTRY_DATE_PROP);
    assert_string_equal(j->entry.date_prop, "item.maturity_date");
    assert_int_equal(j->entry.n_offsets, 4);
    assert_int_equal(j->entry.offsets_ms[0], -30LL * 86400000);
    assert_int_equal(j->entry.offsets_ms[3], -1LL * 86400000);
    assert_string_equal(j->entry.item_type, "wealth");
    assert_string_equal(j->entry.item_key, "held_products");
    assert_int_equal(j->nodes[0].u.wait.kind, WM_WAIT_TIME_OF_DAY);
    assert_int_equal(j->nodes[0].u.wait.hh, 10);
    assert_int_equal(j->nodes[0].u.wait.weekdays, 0x7f);
    wm_journey_free(j);

    j = compile_example("ipo_lot_won");
    const wm_jnode_t *w = &j->nodes[wm_journey_node_index(j, "to_listing")];
    assert_int_equal(w->u.wait.kind, WM_WAIT_TRADING_DAY);
    assert_int_equal(w->u.wait.hh, 9);
    assert_int_equal(w->u.wait.mm, 15);
    const wm_jnode_t *br = &j->nodes[wm_journey_node_index(j, "what")];
    assert_int_equal(br->type, WM_JN_BRANCH);
    assert_true(br->u.branch.n_arms >= 2);
    assert_non_null(br->u.branch.arms[0].cond);
    assert_int_equal(br->u.branch.arms[0].next, wm_journey_node_index(j, "risk_alert"));
    assert_true(br->u.branch.otherwise < j->n_nodes);
    assert_int_equal(j->nodes[wm_journey_node_index(j, "watch")].u.wait_event.n_events, 2);
    wm_journey_free(j);

    j = compile_example("tiered_service");
    w = &j->nodes[wm_journey_node_index(j, "lt_wait")];
    assert_int_equal(w->u.wait.weekdays, 0x1f); /* mon..fri */
    wm_journey_free(j);

    j = compile_example("insurance_event_invite");
    assert_int_equal(j->entry.kind, WM_ENTRY_SCHEDULE);
    assert_string_equal(j->entry.schedule_at, "2026-06-01 10:00");
    assert_non_null(j->entry.condition);
    wm_journey_free(j);

    j = compile_example("loan_stages");
    const wm_jnode_t *up = &j->nodes[0];
    assert_int_equal(up->type, WM_JN_UPDATE_PROFILE);
    assert_string_equal(wm_json_str(wm_json_get(up->u.update_profile.set, "loan_stage")), "awareness");
    const wm_jnode_t *tag = &j->nodes[wm_journey_node_index(j, "renewed")];
    assert_int_equal(tag->u.set_tag.value->type, WM_JSON_TRUE);
    wm_journey_free(j);
}

/* ---- one error at a time ---- */

/* A valid base journey; each case replaces one part of it. */
#define BASE_HEAD "{\"key\":\"t\",\"name\":\"测试\",\"entry\":{\"event\":\"Register\"},"
#define NODES(...) "\"nodes\":[" __VA_ARGS__ "]}"
#define EXIT_NODE "{\"id\":\"end\",\"type\":\"exit\"}"

static uint32_t compile_errs(const char *text, wm_journey_error_t *errs, const wm_journey_refs_t *r)
{
    wm_journey_def_t *j = NULL;
    uint32_t n = 0;
    int rc = wm_journey_compile_text(text, strlen(text), r, &j, errs, MAX_ERRS, &n);
    if (rc == 0) {
        assert_int_equal(n, 0);
        wm_journey_free(j);
    } else {
        assert_int_equal(rc, WM_EINVAL);
        assert_null(j);
        assert_true(n > 0);
    }
    return n;
}

static void expect_one(const char *text, const char *node, const char *field, const char *msg_part)
{
    wm_journey_error_t errs[MAX_ERRS];
    uint32_t n = compile_errs(text, errs, &refs);
    for (uint32_t k = 0; k < n && n != 1; k++)
        print_error("got: node '%s' field '%s': %s\n", errs[k].node, errs[k].field, errs[k].msg);
    assert_int_equal(n, 1);
    assert_string_equal(errs[0].node, node);
    assert_string_equal(errs[0].field, field);
    if (!strstr(errs[0].msg, msg_part))
        print_error("message '%s' lacks '%s'\n", errs[0].msg, msg_part);
    assert_non_null(strstr(errs[0].msg, msg_part));
}

static void expect_ok(const char *text)
{
    wm_journey_error_t errs[MAX_ERRS];
    uint32_t n = compile_errs(text, errs, &refs);
    for (uint32_t k = 0; k < n && k < MAX_ERRS; k++)
        print_error("unexpected: node '%s' field '%s': %s\n", errs[k].node, errs[k].field, errs[k].msg);
    assert_int_equal(n, 0);
}

static void test_base_is_valid(void **state)
{
    expect_ok(BASE_HEAD NODES("{\"id\":\"s\",\"type\":\"send\",\"channel\":\"sms\",\"template\":\"reg_welcome_sms\","
                              "\"next\":\"end\"}," EXIT_NODE));
}

static void test_err_unknown_type(void **state)
{
    expect_one(BASE_HEAD NODES("{\"id\":\"a\",\"type\":\"teleport\"}"), "a", "type", "unknown node type 'teleport'");
}

static void test_err_missing_field(void **state)
{
    expect_one(BASE_HEAD NODES("{\"id\":\"s\",\"type\":\"send\",\"channel\":\"sms\",\"next\":\"end\"}," EXIT_NODE),
               "s", "template", "missing required field");
    expect_one(BASE_HEAD NODES("{\"id\":\"w\",\"type\":\"wait_event\",\"event\":\"Login\",\"on_event\":\"end\","
                               "\"on_timeout\":\"end\"}," EXIT_NODE),
               "w", "timeout", "missing required field");
    expect_one("{\"key\":\"t\",\"name\":\"x\"," NODES(EXIT_NODE), "", "entry", "missing required field");
}

static void test_err_unknown_field(void **state)
{
    expect_one(BASE_HEAD NODES("{\"id\":\"w\",\"type\":\"wait_event\",\"event\":\"Login\",\"tiemout\":\"3d\","
                               "\"timeout\":\"3d\",\"on_event\":\"end\",\"on_timeout\":\"end\"}," EXIT_NODE),
               "w", "tiemout", "unknown field");
}

static void test_err_dangling(void **state)
{
    expect_one(BASE_HEAD NODES("{\"id\":\"c\",\"type\":\"condition\",\"if\":{\"profile\":\"tier\",\"op\":\"=\","
                               "\"value\":\"long_tail\"},\"yes\":\"end\",\"no\":\"ghost\"}," EXIT_NODE),
               "c", "no", "unknown node 'ghost'");
    expect_one(BASE_HEAD "\"start\":\"nowhere\"," NODES(EXIT_NODE), "", "start", "unknown node 'nowhere'");
}

static void test_err_unreachable(void **state)
{
    expect_one(BASE_HEAD NODES(EXIT_NODE ",{\"id\":\"orphan\",\"type\":\"exit\"}"), "orphan", "id",
               "unreachable from the start node 'end'");
}

static void test_err_cycle_without_wait(void **state)
{
    expect_one(BASE_HEAD NODES(
                   "{\"id\":\"a\",\"type\":\"set_tag\",\"tag\":\"x\",\"value\":1,\"next\":\"b\"},"
                   "{\"id\":\"b\",\"type\":\"condition\",\"if\":{\"profile\":\"tier\",\"op\":\"is_set\"},"
                   "\"yes\":\"a\",\"no\":\"end\"}," EXIT_NODE),
               "b", "yes", "cycle back to 'a' passes no wait or wait_event node");
    /* the same loop through a wait node is fine: each turn yields */
    expect_ok(BASE_HEAD NODES("{\"id\":\"a\",\"type\":\"set_tag\",\"tag\":\"x\",\"value\":1,\"next\":\"w\"},"
                              "{\"id\":\"w\",\"type\":\"wait\",\"duration\":\"1d\",\"next\":\"b\"},"
                              "{\"id\":\"b\",\"type\":\"condition\",\"if\":{\"profile\":\"tier\",\"op\":\"is_set\"},"
                              "\"yes\":\"a\",\"no\":\"end\"}," EXIT_NODE));
    /* a node pointing at itself */
    expect_one(BASE_HEAD NODES("{\"id\":\"a\",\"type\":\"set_tag\",\"tag\":\"x\",\"value\":1,\"next\":\"a\"}"), "a",
               "next", "cycle back to 'a'");
}

static void test_err_refs(void **state)
{
    expect_one(BASE_HEAD NODES("{\"id\":\"s\",\"type\":\"send\",\"channel\":\"fax\",\"template\":\"reg_welcome_sms\","
                               "\"next\":\"end\"}," EXIT_NODE),
               "s", "channel", "unknown channel 'fax'");
    expect_one(BASE_HEAD NODES("{\"id\":\"s\",\"type\":\"send\",\"channel\":\"sms\",\"template\":\"nope\","
                               "\"next\":\"end\"}," EXIT_NODE),
               "s", "template", "unknown template 'nope'");
    expect_one("{\"key\":\"t\",\"name\":\"x\",\"entry\":{\"event\":\"Regster\"}," NODES(EXIT_NODE), "", "entry.event",
               "unknown event 'Regster'");
    expect_one(BASE_HEAD NODES("{\"id\":\"w\",\"type\":\"wait_event\",\"events\":[\"Login\",\"Logn\"],\"timeout\":\"1d\","
                               "\"on_event\":\"end\",\"on_timeout\":\"end\"}," EXIT_NODE),
               "w", "events[1]", "unknown event 'Logn'");
    expect_one(BASE_HEAD NODES("{\"id\":\"u\",\"type\":\"update_profile\",\"set\":{\"vip_level\":3},\"next\":\"end\"},"
                               EXIT_NODE),
               "u", "set.vip_level", "unknown profile property 'vip_level'");
    expect_one(BASE_HEAD NODES("{\"id\":\"j\",\"type\":\"jump\",\"journey\":\"nowhere\"}"), "j", "journey",
               "unknown journey 'nowhere'");
    expect_one(BASE_HEAD NODES("{\"id\":\"j\",\"type\":\"jump\",\"journey\":\"t\"}"), "j", "journey",
               "own journey");
    expect_one(BASE_HEAD NODES("{\"id\":\"a\",\"type\":\"advisor_task\",\"queue\":\"wealth\",\"sla\":\"1d\","
                               "\"script\":\"no_script\",\"next\":\"end\"}," EXIT_NODE),
               "a", "script", "unknown template 'no_script'");
}

static void test_null_refs_unchecked(void **state)
{
    const char *text = BASE_HEAD NODES("{\"id\":\"s\",\"type\":\"send\",\"channel\":\"fax\",\"template\":\"x\","
                                       "\"next\":\"j\"},{\"id\":\"j\",\"type\":\"jump\",\"journey\":\"other\"}");
    wm_journey_error_t errs[MAX_ERRS];
    assert_int_equal(compile_errs(text, errs, NULL), 0);
    wm_journey_refs_t partial = refs;
    partial.channels = NULL; /* channels unchecked, journeys still checked */
    assert_int_equal(compile_errs(text, errs, &partial), 2);
    assert_string_equal(errs[0].field, "template");
    assert_string_equal(errs[1].field, "journey");
}

static void test_err_split(void **state)
{
    expect_one(BASE_HEAD NODES("{\"id\":\"ab\",\"type\":\"split\",\"arms\":["
                               "{\"name\":\"a\",\"percent\":50,\"next\":\"end\"},"
                               "{\"name\":\"b\",\"percent\":40,\"next\":\"end\"}]}," EXIT_NODE),
               "ab", "arms", "add up to 90, not 100");
    expect_one(BASE_HEAD NODES("{\"id\":\"ab\",\"type\":\"split\",\"arms\":["
                               "{\"name\":\"a\",\"percent\":50,\"control\":true,\"next\":\"end\"},"
                               "{\"name\":\"b\",\"percent\":50,\"control\":true,\"next\":\"end\"}]}," EXIT_NODE),
               "ab", "arms[1].control", "more than one control arm");
    expect_one(BASE_HEAD NODES("{\"id\":\"ab\",\"type\":\"split\",\"arms\":["
                               "{\"name\":\"a\",\"percent\":50,\"next\":\"end\"},"
                               "{\"name\":\"a\",\"percent\":50,\"next\":\"end\"}]}," EXIT_NODE),
               "ab", "arms[1].name", "duplicate arm name");
    expect_one(BASE_HEAD NODES("{\"id\":\"ab\",\"type\":\"split\",\"arms\":["
                               "{\"name\":\"a\",\"percent\":100.5,\"next\":\"end\"}]}," EXIT_NODE),
               "ab", "arms[0].percent", "integer from 0 to 100");
}

static void test_err_duplicate_id(void **state)
{
    expect_one(BASE_HEAD NODES("{\"id\":\"end\",\"type\":\"wait\",\"duration\":\"1h\",\"next\":\"end\"}," EXIT_NODE),
               "end", "id", "duplicate node id");
    expect_one(BASE_HEAD NODES("{\"id\":\"has space\",\"type\":\"exit\"}"), "#0", "id", "1 to 63 characters");
}

static void test_err_bad_values(void **state)
{
    expect_one(BASE_HEAD NODES("{\"id\":\"w\",\"type\":\"wait\",\"duration\":\"2 h\",\"next\":\"end\"}," EXIT_NODE), "w",
               "duration", "bad duration '2 h'");
    expect_one(BASE_HEAD NODES("{\"id\":\"w\",\"type\":\"wait\",\"duration\":\"-2h\",\"next\":\"end\"}," EXIT_NODE),
               "w", "duration", "bad duration");
    expect_one(BASE_HEAD NODES("{\"id\":\"w\",\"type\":\"wait\",\"until\":{\"time\":\"24:00\"},\"next\":\"end\"},"
                               EXIT_NODE),
               "w", "until.time", "bad time of day '24:00'");
    expect_one(BASE_HEAD NODES("{\"id\":\"w\",\"type\":\"wait\",\"until\":{\"time\":\"09:30\",\"weekdays\":[\"mon\","
                               "\"Tuesday\"]},\"next\":\"end\"}," EXIT_NODE),
               "w", "until.weekdays[1]", "bad weekday");
    expect_one(BASE_HEAD NODES("{\"id\":\"w\",\"type\":\"wait\",\"until\":{\"trading_day\":\"9:15\"},\"next\":\"end\"},"
                               EXIT_NODE),
               "w", "until.trading_day", "bad time of day");
    expect_one(BASE_HEAD NODES("{\"id\":\"w\",\"type\":\"wait\",\"until\":{\"date\":\"profile.birthday\","
                               "\"offset\":\"-1x\"},\"next\":\"end\"}," EXIT_NODE),
               "w", "until.offset", "bad offset");
    expect_one(BASE_HEAD NODES("{\"id\":\"w\",\"type\":\"wait\",\"until\":{\"date\":\"birthday\"},\"next\":\"end\"},"
                               EXIT_NODE),
               "w", "until.date", "profile.<name> or item.<name>");
    expect_one(BASE_HEAD NODES("{\"id\":\"a\",\"type\":\"advisor_task\",\"queue\":\"wealth\",\"sla\":\"1d\","
                               "\"script\":\"sip_followup\",\"priority\":\"asap\",\"next\":\"end\"}," EXIT_NODE),
               "a", "priority", "urgent, high, normal or low");
    expect_one(BASE_HEAD NODES("{\"id\":\"h\",\"type\":\"webhook\",\"url\":\"ftp://x\",\"next\":\"end\"}," EXIT_NODE),
               "h", "url", "http://");
    expect_one(BASE_HEAD NODES("{\"id\":\"h\",\"type\":\"webhook\",\"url\":\"http://127.0.0.1:1/x\","
                               "\"body\":\"{\\\"a\\\":\\\"{{profile.name\\\"}\",\"next\":\"end\"}," EXIT_NODE),
               "h", "body", "template: offset");
    expect_one("{\"key\":\"Bad-Key\",\"name\":\"x\",\"entry\":{\"event\":\"Register\"}," NODES(EXIT_NODE), "", "key",
               "^[a-z][a-z0-9_]{0,63}$");
}

static void test_err_condition_path(void **state)
{
    wm_journey_error_t errs[MAX_ERRS];
    const char *text = BASE_HEAD NODES("{\"id\":\"c\",\"type\":\"condition\",\"if\":{\"all\":[{\"profile\":\"tier\","
                                       "\"op\":\"=\",\"value\":\"x\"},{\"profile\":\"age\",\"op\":\"~~\",\"value\":1}]},"
                                       "\"yes\":\"end\",\"no\":\"end\"}," EXIT_NODE);
    assert_int_equal(compile_errs(text, errs, &refs), 1);
    assert_string_equal(errs[0].node, "c");
    assert_string_equal(errs[0].field, "if");
    /* the message leads with the condition's JSON path */
    assert_non_null(strstr(errs[0].msg, "$.all[1]"));

    text = BASE_HEAD NODES("{\"id\":\"b\",\"type\":\"branch\",\"arms\":[{\"if\":{\"profile\":\"tier\",\"op\":\"=\","
                           "\"value\":\"x\"},\"next\":\"end\"},{\"if\":{\"nonsense\":1},\"next\":\"end\"}],"
                           "\"else\":\"end\"}," EXIT_NODE);
    assert_int_equal(compile_errs(text, errs, &refs), 1);
    assert_string_equal(errs[0].node, "b");
    assert_string_equal(errs[0].field, "arms[1].if");
    assert_true(errs[0].msg[0] == '$');
}

static void test_err_entry_kinds(void **state)
{
    expect_ok("{\"key\":\"t\",\"name\":\"x\",\"entry\":{\"schedule\":{\"cron\":\"0 9 * * 1-5\"},\"condition\":"
              "{\"profile\":\"tier\",\"op\":\"=\",\"value\":\"long_tail\"}}," NODES(EXIT_NODE));
    expect_one("{\"key\":\"t\",\"name\":\"x\",\"entry\":{\"schedule\":{\"cron\":\"0 25 * * *\"},\"condition\":"
               "{\"profile\":\"tier\",\"op\":\"=\",\"value\":\"x\"}}," NODES(EXIT_NODE),
               "", "entry.schedule.cron", "bad cron");
    expect_one("{\"key\":\"t\",\"name\":\"x\",\"entry\":{\"schedule\":{\"at\":\"2026-13-01 09:00\"},\"condition\":"
               "{\"profile\":\"tier\",\"op\":\"=\",\"value\":\"x\"}}," NODES(EXIT_NODE),
               "", "entry.schedule.at", "bad datetime");
    expect_one("{\"key\":\"t\",\"name\":\"x\",\"entry\":{\"schedule\":{\"at\":\"2026-12-01 09:00\"}}," NODES(EXIT_NODE),
               "", "entry.condition", "missing required field");
    expect_one("{\"key\":\"t\",\"name\":\"x\",\"entry\":{\"event\":\"Register\",\"api\":true}," NODES(EXIT_NODE), "",
               "entry", "give one of");
    expect_ok("{\"key\":\"t\",\"name\":\"x\",\"entry\":{\"api\":true}," NODES(EXIT_NODE));
    expect_ok("{\"key\":\"t\",\"name\":\"x\",\"entry\":{\"date_property\":\"profile.birthday\",\"offsets\":[\"-1d\","
              "\"0d\"]}," NODES(EXIT_NODE));
    expect_one("{\"key\":\"t\",\"name\":\"x\",\"entry\":{\"date_property\":\"profile.birthday\",\"offsets\":[\"-1d\","
               "\"soon\"]}," NODES(EXIT_NODE),
               "", "entry.offsets[1]", "bad offset");
    expect_one("{\"key\":\"t\",\"name\":\"x\",\"entry\":{\"date_property\":\"item.maturity_date\",\"offsets\":[\"-1d\"]},"
               NODES(EXIT_NODE),
               "", "entry.item_type", "required for an item");
    expect_one("{\"key\":\"t\",\"name\":\"x\",\"entry\":{\"event\":\"Register\",\"reentry\":\"sometimes\"},"
               NODES(EXIT_NODE),
               "", "entry.reentry", "never, any_time or after_exit");
    expect_one("{\"key\":\"t\",\"name\":\"x\",\"entry\":{\"event\":\"Register\",\"max_concurrent\":3},"
               NODES(EXIT_NODE),
               "", "entry.max_concurrent", "any_time");
    /* match compares with the entry event: meaningless without one */
    expect_one("{\"key\":\"t\",\"name\":\"x\",\"entry\":{\"api\":true}," NODES(
                   "{\"id\":\"w\",\"type\":\"wait_event\",\"event\":\"StartSIP\",\"match\":\"fund_code\","
                   "\"timeout\":\"1d\",\"on_event\":\"end\",\"on_timeout\":\"end\"}," EXIT_NODE),
               "w", "match", "needs an event entry");
}

static void test_err_settings(void **state)
{
    expect_one(BASE_HEAD "\"settings\":{\"quiet_hours\":{\"from\":\"21:00\",\"to\":\"08:00\",\"mode\":\"drop\"}},"
               NODES(EXIT_NODE),
               "", "settings.quiet_hours.mode", "hold or skip");
    expect_one(BASE_HEAD "\"settings\":{\"frequency_caps\":[{\"channel\":\"sms\",\"max\":0,\"per\":\"1d\"}]},"
               NODES(EXIT_NODE),
               "", "settings.frequency_caps[0].max", "integer");
    expect_one(BASE_HEAD "\"settings\":{\"frequency_caps\":[{\"channel\":\"pigeon\",\"max\":1,\"per\":\"1d\"}]},"
               NODES(EXIT_NODE),
               "", "settings.frequency_caps[0].channel", "unknown channel 'pigeon'");
    expect_one(BASE_HEAD "\"goal\":{\"event\":\"StartSIP\",\"within\":\"forever\"}," NODES(EXIT_NODE), "",
               "goal.within", "bad duration");
    expect_one(BASE_HEAD "\"exit_when\":{}," NODES(EXIT_NODE), "", "exit_when", "an event, a condition");
}

static void test_collects_all_errors(void **state)
{
    const char *text = "{\"key\":\"BAD\",\"entry\":{\"event\":\"Nope\"},\"nodes\":["
                       "{\"id\":\"a\",\"type\":\"wait\",\"duration\":\"x\",\"next\":\"b\"},"
                       "{\"id\":\"b\",\"type\":\"send\",\"channel\":\"fax\",\"template\":\"zz\",\"next\":\"c\"},"
                       "{\"id\":\"c\",\"type\":\"teleport\"},"
                       "{\"id\":\"c\",\"type\":\"exit\"}]}";
    wm_journey_error_t errs[MAX_ERRS];
    uint32_t n = compile_errs(text, errs, &refs);
    /* key, name, entry.event, duplicate c, duration, channel, template, type */
    assert_int_equal(n, 8);
    /* truncation: only max_errs are written, all are counted */
    wm_journey_def_t *j = NULL;
    uint32_t m = 0;
    assert_int_equal(wm_journey_compile_text(text, strlen(text), &refs, &j, errs, 2, &m), WM_EINVAL);
    assert_int_equal(m, 8);
    assert_int_equal(wm_journey_compile_text(text, strlen(text), &refs, &j, NULL, 0, &m), WM_EINVAL);
    assert_int_equal(m, 8);
}

static void test_json_syntax_error(void **state)
{
    wm_journey_error_t errs[MAX_ERRS];
    const char *text = "{\"key\": \"t\", ";
    assert_int_equal(compile_errs(text, errs, &refs), 1);
    assert_string_equal(errs[0].node, "");
    assert_non_null(strstr(errs[0].msg, "offset"));
    assert_int_equal(compile_errs("[]", errs, &refs), 1);
}

static void test_out_of_memory(void **state)
{
    size_t len = 0;
    char *text = slurp("examples/journeys/loan_stages.json", &len);
    assert_non_null(text);
    int ok = 0;
    for (long fail = 0; fail < 5000 && !ok; fail++) {
        wm_journey_def_t *j = NULL;
        uint32_t n = 0;
        wm_journey_error_t errs[4];
        wm_alloc_fail_after(fail);
        int rc = wm_journey_compile_text(text, len, &refs, &j, errs, 4, &n);
        wm_alloc_fail_after(-1);
        /* out of memory may surface as ENOMEM, or through the JSON/rules
         * layers as a reported error; never as success without a journey */
        assert_true(rc == 0 || rc == WM_ENOMEM || rc == WM_EINVAL);
        if (rc == 0) {
            assert_non_null(j);
            ok = 1;
        } else {
            assert_null(j);
        }
        wm_journey_free(j);
    }
    assert_true(ok);
}

/* ---- split ---- */

static void test_split_deterministic(void **state)
{
    wm_journey_def_t *j = compile_example("fund_sip_companion");
    const wm_jnode_t *ab = &j->nodes[wm_journey_node_index(j, "ab")];
    /* pinned values: the bucket function must not change across releases,
     * or running experiments reshuffle their users */
    assert_int_equal(wm_split_bucket("fund_sip_companion", "ab", 1), wm_split_bucket("fund_sip_companion", "ab", 1));
    uint32_t b1 = wm_split_bucket("fund_sip_companion", "ab", 1);
    uint32_t b2 = wm_split_bucket("fund_sip_companion", "ab", 2);
    uint32_t b3 = wm_split_bucket("fund_sip_companion", "ab2", 1);
    uint32_t b4 = wm_split_bucket("other", "ab", 1);
    assert_true(b1 < 10000 && b2 < 10000 && b3 < 10000 && b4 < 10000);
    assert_int_equal(b1, 1062);
    assert_int_equal(b2, 3782);
    for (uint64_t u = 0; u < 1000; u++) {
        uint32_t a = wm_split_arm(j, ab, u);
        assert_true(a < 3);
        assert_int_equal(a, wm_split_arm(j, ab, u));
    }
    wm_journey_free(j);
}

static void test_split_distribution(void **state)
{
    wm_journey_def_t *j = compile_example("fund_sip_companion");
    const wm_jnode_t *ab = &j->nodes[wm_journey_node_index(j, "ab")];
    uint32_t count[3] = {0};
    const uint32_t users = 100000;
    for (uint64_t u = 1; u <= users; u++)
        count[wm_split_arm(j, ab, u)]++;
    for (int k = 0; k < 3; k++) {
        uint32_t want = ab->u.branch.arms[k].percent * users / 100;
        uint32_t tol = users / 100; /* +-1 percentage point */
        if (count[k] + tol < want || count[k] > want + tol)
            print_error("arm %d: %u users, want %u +- %u\n", k, count[k], want, tol);
        assert_true(count[k] + tol >= want && count[k] <= want + tol);
    }
    /* sparse, non-sequential ids (hashes of phone numbers in practice) */
    memset(count, 0, sizeof count);
    for (uint64_t u = 0; u < users; u++)
        count[wm_split_arm(j, ab, 13800000000ULL + u * 7919)]++;
    for (int k = 0; k < 3; k++) {
        uint32_t want = ab->u.branch.arms[k].percent * users / 100;
        assert_true(count[k] + users / 100 >= want && count[k] <= want + users / 100);
    }
    wm_journey_free(j);
}

static void test_split_independent_nodes(void **state)
{
    /* users in the first 50% of split "a" are not the first 50% of split "b" */
    uint32_t both = 0, users = 100000;
    for (uint64_t u = 0; u < users; u++)
        both += wm_split_bucket("j", "a", u) < 5000 && wm_split_bucket("j", "b", u) < 5000;
    assert_true(both > users / 4 - users / 100 && both < users / 4 + users / 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_catalogues_loaded),
        cmocka_unit_test(test_examples_compile),
        cmocka_unit_test(test_fund_sip_compiled_form),
        cmocka_unit_test(test_other_compiled_forms),
        cmocka_unit_test(test_base_is_valid),
        cmocka_unit_test(test_err_unknown_type),
        cmocka_unit_test(test_err_missing_field),
        cmocka_unit_test(test_err_unknown_field),
        cmocka_unit_test(test_err_dangling),
        cmocka_unit_test(test_err_unreachable),
        cmocka_unit_test(test_err_cycle_without_wait),
        cmocka_unit_test(test_err_refs),
        cmocka_unit_test(test_null_refs_unchecked),
        cmocka_unit_test(test_err_split),
        cmocka_unit_test(test_err_duplicate_id),
        cmocka_unit_test(test_err_bad_values),
        cmocka_unit_test(test_err_condition_path),
        cmocka_unit_test(test_err_entry_kinds),
        cmocka_unit_test(test_err_settings),
        cmocka_unit_test(test_collects_all_errors),
        cmocka_unit_test(test_json_syntax_error),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_split_deterministic),
        cmocka_unit_test(test_split_distribution),
        cmocka_unit_test(test_split_independent_nodes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
