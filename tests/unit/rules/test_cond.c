/*
 * test_cond.c - the condition language: every operator against every value
 * type it accepts, missing values, typed comparison (levels, dates, numeric
 * strings), references (suitability), item lookups, did with real daily
 * buckets (window edges, expiry, aggregates), sequences, segments and tags,
 * counter-spec sharing, and compile errors with their JSON paths.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "waymark/alloc.h"
#include "waymark/error.h"
#include "waymark/json.h"
#include "waymark/rules.h"

static wm_arena_t arena;

static int setup(void **state)
{
    wm_arena_init(&arena, 4096);
    return 0;
}

static int teardown(void **state)
{
    wm_arena_release(&arena);
    return 0;
}

static wm_json_t *J(const char *text)
{
    wm_json_t *v = NULL;
    wm_json_error_t err;
    int rc = wm_json_parse(&arena, text, strlen(text), &v, &err);
    if (rc != 0)
        print_error("bad test JSON %s: %s\n", text, err.msg);
    assert_int_equal(rc, 0);
    return v;
}

/* 2026-03-10 12:00:00 UTC */
#define NOW_MS 1773144000000LL
#define DAY_MS 86400000LL

/* ---- fake runtime ---- */

#define MAX_EVENTS 4096
typedef struct fake {
    const wm_json_t *items;          /* {"fund": {"000001": {...}}} */
    const wm_json_t *events[MAX_EVENTS];
    int n_events;
    const char *segment;
    const wm_json_t *tags;
    unsigned char blob[8][WM_BUCKETS_BYTES_MAX];
    size_t blob_len[8];
    char spec_keys[8][512];     /* copies: a spec lives only as long as its program */
    int n_specs;
    int behaviour_calls;
    int fail_behaviour;
    int events_calls;
} fake_t;

static fake_t F;

static const wm_json_t *fake_item(void *ctx, const char *type, const char *id)
{
    fake_t *f = ctx;
    return wm_json_get(wm_json_get(f->items, type), id);
}

static int spec_slot(fake_t *f, const wm_counter_spec_t *spec)
{
    for (int i = 0; i < f->n_specs; i++)
        if (strcmp(f->spec_keys[i], spec->key) == 0)
            return i;
    assert_true(f->n_specs < 8 && strlen(spec->key) < sizeof f->spec_keys[0]);
    strcpy(f->spec_keys[f->n_specs], spec->key);
    return f->n_specs++;
}

static int fake_behaviour(void *ctx, const wm_counter_spec_t *spec, int32_t from, int32_t to,
                          wm_agg_t *out)
{
    fake_t *f = ctx;
    f->behaviour_calls++;
    if (f->fail_behaviour)
        return WM_EIO;
    int s = spec_slot(f, spec);
    return wm_buckets_query(f->blob[s], f->blob_len[s], from, to, out);
}

static int fake_events(void *ctx, int64_t from, int64_t to,
                       int (*cb)(void *, const wm_json_t *), void *cbctx)
{
    fake_t *f = ctx;
    f->events_calls++;
    for (int i = 0; i < f->n_events; i++) {
        const wm_json_t *t = wm_json_get(f->events[i], "time");
        if (t->i64 < from || t->i64 >= to)
            continue;
        if (cb(cbctx, f->events[i]))
            break;
    }
    return 0;
}

static bool fake_segment(void *ctx, const char *seg)
{
    fake_t *f = ctx;
    return f->segment && strcmp(f->segment, seg) == 0;
}

static const wm_json_t *fake_tag(void *ctx, const char *tag)
{
    fake_t *f = ctx;
    return wm_json_get(f->tags, tag);
}

static wm_cond_env_t env_of(const char *profile, const char *event)
{
    wm_cond_env_t e;
    memset(&e, 0, sizeof e);
    e.profile = profile ? J(profile) : NULL;
    e.event = event ? J(event) : NULL;
    e.now_ms = NOW_MS;
    e.tz_offset_min = 480;
    e.ctx = &F;
    e.item = fake_item;
    e.behaviour = fake_behaviour;
    e.events = fake_events;
    e.in_segment = fake_segment;
    e.tag = fake_tag;
    return e;
}

static wm_cond_t *compile_ok(const char *ast)
{
    wm_cond_t *c = NULL;
    wm_cond_error_t err;
    int rc = wm_cond_compile(J(ast), &c, &err);
    if (rc != 0)
        print_error("compile %s: %s: %s\n", ast, err.path, err.msg);
    assert_int_equal(rc, 0);
    return c;
}

static bool eval_with(const char *ast, const wm_cond_env_t *env)
{
    wm_cond_t *c = compile_ok(ast);
    bool r = false;
    assert_int_equal(wm_cond_eval(c, env, &r), 0);
    wm_cond_free(c);
    return r;
}

static const char *PROFILE =
    "{\"risk_level\":\"C3\",\"age\":42,\"vip\":true,\"city\":\"Shanghai\","
    "\"birthday\":\"1984-03-10\",\"last_login\":\"2026-03-01 09:00:00\","
    "\"aum\":\"250000.50\",\"tags\":[\"sip\",\"bond\"],\"nothing\":null,"
    "\"opened_ms\":1772294400000,\"fund\":\"000003\"}";

static const char *EVENT =
    "{\"type\":\"track\",\"event\":\"ViewFundDetail\",\"distinct_id\":\"c1\","
    "\"time\":1773144000000,\"project\":\"default\",\"properties\":{\"fund_code\":\"000001\","
    "\"fund_type\":\"equity\",\"amount\":1000,\"channel\":\"app\",\"codes\":[1,2,3]}}";

static bool P(const char *ast)
{
    wm_cond_env_t e = env_of(PROFILE, EVENT);
    return eval_with(ast, &e);
}

/* ---- tests ---- */

static void test_equality_and_types(void **state)
{
    assert_true(P("{\"profile\":\"city\",\"op\":\"=\",\"value\":\"Shanghai\"}"));
    assert_false(P("{\"profile\":\"city\",\"op\":\"=\",\"value\":\"shanghai\"}"));
    assert_true(P("{\"profile\":\"city\",\"op\":\"!=\",\"value\":\"Beijing\"}"));
    assert_true(P("{\"profile\":\"age\",\"op\":\"=\",\"value\":42}"));
    assert_true(P("{\"profile\":\"age\",\"op\":\"==\",\"value\":42.0}"));
    assert_true(P("{\"profile\":\"age\",\"op\":\"=\",\"value\":\"42\"}"));  /* numeric text */
    assert_true(P("{\"profile\":\"aum\",\"op\":\"=\",\"value\":250000.5}")); /* numeric string prop */
    assert_true(P("{\"profile\":\"vip\",\"op\":\"=\",\"value\":true}"));
    assert_false(P("{\"profile\":\"vip\",\"op\":\"=\",\"value\":false}"));
    assert_true(P("{\"profile\":\"vip\",\"op\":\"!=\",\"value\":false}"));
    /* incomparable types: = false, != true */
    assert_false(P("{\"profile\":\"city\",\"op\":\"=\",\"value\":1}"));
    assert_true(P("{\"profile\":\"city\",\"op\":\"!=\",\"value\":1}"));
    assert_false(P("{\"profile\":\"vip\",\"op\":\"=\",\"value\":\"true\"}"));
    /* levels: equality is exact text, ordering by number */
    assert_true(P("{\"profile\":\"risk_level\",\"op\":\"=\",\"value\":\"C3\"}"));
    assert_false(P("{\"profile\":\"risk_level\",\"op\":\"=\",\"value\":\"R3\"}"));
}

static void test_ordering(void **state)
{
    assert_true(P("{\"profile\":\"risk_level\",\"op\":\">=\",\"value\":\"C2\"}"));
    assert_true(P("{\"profile\":\"risk_level\",\"op\":\">=\",\"value\":\"C3\"}"));
    assert_false(P("{\"profile\":\"risk_level\",\"op\":\">=\",\"value\":\"C4\"}"));
    assert_true(P("{\"profile\":\"risk_level\",\"op\":\"<\",\"value\":\"C4\"}"));
    assert_true(P("{\"profile\":\"risk_level\",\"op\":\">\",\"value\":2}"));    /* level vs number */
    assert_true(P("{\"profile\":\"risk_level\",\"op\":\">=\",\"value\":\"R3\"}")); /* R vs C */
    assert_true(P("{\"profile\":\"age\",\"op\":\">\",\"value\":41.5}"));
    assert_false(P("{\"profile\":\"age\",\"op\":\"<\",\"value\":42}"));
    assert_true(P("{\"profile\":\"age\",\"op\":\"<=\",\"value\":42}"));
    assert_true(P("{\"profile\":\"aum\",\"op\":\">\",\"value\":\"99999\"}"));   /* numeric, not bytes */
    assert_true(P("{\"profile\":\"city\",\"op\":\">\",\"value\":\"Beijing\"}")); /* bytes */
    assert_false(P("{\"profile\":\"vip\",\"op\":\">\",\"value\":1}"));
    assert_false(P("{\"profile\":\"tags\",\"op\":\">\",\"value\":1}"));
    /* dates: strings as instants in the user's zone, epoch ms as instants */
    assert_true(P("{\"profile\":\"last_login\",\"op\":\">\",\"value\":\"2026-02-28\"}"));
    assert_true(P("{\"profile\":\"last_login\",\"op\":\"<\",\"value\":\"2026-03-01 09:00:01\"}"));
    assert_true(P("{\"profile\":\"opened_ms\",\"op\":\">=\",\"value\":\"2026-03-01\"}"));
    assert_false(P("{\"profile\":\"opened_ms\",\"op\":\">\",\"value\":\"2026-03-01\"}"));
    /* 2026-03-01 00:00 +08:00 = 1772294400000 */
    assert_true(P("{\"profile\":\"last_login\",\"op\":\">\",\"value\":1772294400000}"));
}

static void test_between(void **state)
{
    assert_true(P("{\"profile\":\"age\",\"op\":\"between\",\"value\":[40,42]}"));
    assert_true(P("{\"profile\":\"age\",\"op\":\"between\",\"value\":[42,50]}"));
    assert_false(P("{\"profile\":\"age\",\"op\":\"between\",\"value\":[43,50]}"));
    assert_true(P("{\"profile\":\"risk_level\",\"op\":\"between\",\"value\":[\"C2\",\"C4\"]}"));
    assert_true(P("{\"profile\":\"birthday\",\"op\":\"between\",\"value\":[\"1980-01-01\",\"1989-12-31\"]}"));
    assert_false(P("{\"profile\":\"city\",\"op\":\"between\",\"value\":[1,2]}"));
}

static void test_in_lists(void **state)
{
    assert_true(P("{\"prop\":\"fund_type\",\"op\":\"in\",\"value\":[\"mixed\",\"equity\"]}"));
    assert_false(P("{\"prop\":\"fund_type\",\"op\":\"in\",\"value\":[\"bond\",\"money\"]}"));
    assert_true(P("{\"prop\":\"fund_type\",\"op\":\"not_in\",\"value\":[\"bond\"]}"));
    assert_true(P("{\"prop\":\"amount\",\"op\":\"in\",\"value\":[5,1000,20]}"));
    assert_true(P("{\"prop\":\"amount\",\"op\":\"in\",\"value\":[\"1000\"]}"));
    assert_true(P("{\"profile\":\"aum\",\"op\":\"in\",\"value\":[250000.5]}"));
    assert_true(P("{\"profile\":\"vip\",\"op\":\"in\",\"value\":[true]}"));
    assert_false(P("{\"profile\":\"vip\",\"op\":\"in\",\"value\":[false]}"));
    assert_false(P("{\"prop\":\"amount\",\"op\":\"in\",\"value\":[]}"));
    /* a list property is in when any element is */
    assert_true(P("{\"profile\":\"tags\",\"op\":\"in\",\"value\":[\"x\",\"bond\"]}"));
    assert_false(P("{\"profile\":\"tags\",\"op\":\"in\",\"value\":[\"x\"]}"));
    /* a long list: sorted at compile, binary searched */
    char big[40000];
    size_t n = (size_t)snprintf(big, sizeof big, "{\"prop\":\"fund_code\",\"op\":\"in\",\"value\":[");
    for (int i = 1000; i < 3000; i++)
        n += (size_t)snprintf(big + n, sizeof big - n, "\"%06d\",", 3999 - i);
    snprintf(big + n, sizeof big - n, "\"000001\"]}");
    assert_true(P(big));
}

static void test_contains_matches(void **state)
{
    assert_true(P("{\"profile\":\"tags\",\"op\":\"contains\",\"value\":\"sip\"}"));
    assert_false(P("{\"profile\":\"tags\",\"op\":\"contains\",\"value\":\"stock\"}"));
    assert_true(P("{\"profile\":\"tags\",\"op\":\"not_contains\",\"value\":\"stock\"}"));
    assert_true(P("{\"prop\":\"codes\",\"op\":\"contains\",\"value\":2}"));
    assert_true(P("{\"profile\":\"city\",\"op\":\"contains\",\"value\":\"hang\"}")); /* substring */
    assert_true(P("{\"profile\":\"city\",\"op\":\"matches\",\"value\":\"^Shang(hai)?$\"}"));
    assert_false(P("{\"profile\":\"city\",\"op\":\"matches\",\"value\":\"^hai\"}"));
    assert_false(P("{\"profile\":\"age\",\"op\":\"matches\",\"value\":\"4\"}"));
    assert_true(P("{\"prop\":\"fund_code\",\"op\":\"matches\",\"value\":\"^[0-9]{6}$\"}"));
}

static void test_set_and_missing(void **state)
{
    assert_true(P("{\"profile\":\"city\",\"op\":\"is_set\"}"));
    assert_false(P("{\"profile\":\"city\",\"op\":\"not_set\"}"));
    assert_true(P("{\"profile\":\"nothing\",\"op\":\"not_set\"}")); /* null = not set */
    assert_true(P("{\"profile\":\"nope\",\"op\":\"not_set\"}"));
    assert_false(P("{\"profile\":\"nope\",\"op\":\"is_set\"}"));
    /* missing: false for all but not_set, !=, not_in, not_contains */
    const char *falsy[] = {
        "{\"profile\":\"nope\",\"op\":\"=\",\"value\":1}",
        "{\"profile\":\"nope\",\"op\":\"<\",\"value\":1}",
        "{\"profile\":\"nope\",\"op\":\"<=\",\"value\":1}",
        "{\"profile\":\"nope\",\"op\":\">\",\"value\":1}",
        "{\"profile\":\"nope\",\"op\":\">=\",\"value\":1}",
        "{\"profile\":\"nope\",\"op\":\"between\",\"value\":[1,2]}",
        "{\"profile\":\"nope\",\"op\":\"in\",\"value\":[1]}",
        "{\"profile\":\"nope\",\"op\":\"contains\",\"value\":1}",
        "{\"profile\":\"nope\",\"op\":\"matches\",\"value\":\".*\"}",
        "{\"profile\":\"nope\",\"op\":\"within_last\",\"value\":\"30d\"}",
        "{\"profile\":\"nope\",\"op\":\"before\",\"value\":\"-7d\"}",
        "{\"profile\":\"nope\",\"op\":\"after\",\"value\":\"-7d\"}",
    };
    for (size_t i = 0; i < sizeof falsy / sizeof *falsy; i++)
        assert_false(P(falsy[i]));
    assert_true(P("{\"profile\":\"nope\",\"op\":\"!=\",\"value\":1}"));
    assert_true(P("{\"profile\":\"nope\",\"op\":\"not_in\",\"value\":[1]}"));
    assert_true(P("{\"profile\":\"nope\",\"op\":\"not_contains\",\"value\":1}"));
    /* no profile, no event at all */
    wm_cond_env_t e = env_of(NULL, NULL);
    assert_false(eval_with("{\"profile\":\"city\",\"op\":\"is_set\"}", &e));
    assert_true(eval_with("{\"prop\":\"x\",\"op\":\"not_set\"}", &e));
}

static void test_dates(void **state)
{
    /* last_login 2026-03-01 09:00 local, now 2026-03-10 20:00 local */
    assert_true(P("{\"profile\":\"last_login\",\"op\":\"within_last\",\"value\":\"30d\"}"));
    assert_false(P("{\"profile\":\"last_login\",\"op\":\"within_last\",\"value\":\"7d\"}"));
    assert_true(P("{\"profile\":\"last_login\",\"op\":\"within_last\",\"value\":\"9d12h\"}"));
    assert_true(P("{\"profile\":\"opened_ms\",\"op\":\"within_last\",\"value\":\"10d\"}"));
    assert_true(P("{\"profile\":\"last_login\",\"op\":\"before\",\"value\":\"-7d\"}"));
    assert_false(P("{\"profile\":\"last_login\",\"op\":\"before\",\"value\":\"-10d\"}"));
    assert_true(P("{\"profile\":\"last_login\",\"op\":\"before\",\"value\":\"2026-03-02\"}"));
    assert_false(P("{\"profile\":\"last_login\",\"op\":\"before\",\"value\":\"2026-03-01 09:00:00\"}"));
    assert_true(P("{\"profile\":\"last_login\",\"op\":\"after\",\"value\":\"2026-03-01 08:59:59\"}"));
    assert_true(P("{\"profile\":\"birthday\",\"op\":\"before\",\"value\":1000000000000}"));
    assert_false(P("{\"profile\":\"city\",\"op\":\"before\",\"value\":\"-1d\"}"));
    /* a future date is not "within the last" */
    assert_false(P("{\"profile\":\"x\",\"op\":\"within_last\",\"value\":\"1d\"}"));
    wm_cond_env_t e = env_of("{\"d\":\"2026-03-11\"}", NULL);
    assert_false(eval_with("{\"profile\":\"d\",\"op\":\"within_last\",\"value\":\"30d\"}", &e));
    /* the zone moves the instant: 2026-03-10 20:30 is ahead of now in +08:00 ... */
    e = env_of("{\"d\":\"2026-03-10 20:30:00\"}", NULL);
    assert_false(eval_with("{\"profile\":\"d\",\"op\":\"within_last\",\"value\":\"1h\"}", &e));
    /* ... but 30 minutes ago in +09:00 */
    e.tz_offset_min = 540;
    assert_true(eval_with("{\"profile\":\"d\",\"op\":\"within_last\",\"value\":\"1h\"}", &e));
}

static void test_logic(void **state)
{
    assert_true(P("{\"all\":[{\"profile\":\"vip\",\"op\":\"=\",\"value\":true},"
                  "{\"prop\":\"amount\",\"op\":\">=\",\"value\":1000}]}"));
    assert_false(P("{\"all\":[{\"profile\":\"vip\",\"op\":\"=\",\"value\":true},"
                   "{\"prop\":\"amount\",\"op\":\">\",\"value\":1000}]}"));
    assert_true(P("{\"any\":[{\"profile\":\"vip\",\"op\":\"=\",\"value\":false},"
                  "{\"prop\":\"amount\",\"op\":\"=\",\"value\":1000}]}"));
    assert_false(P("{\"any\":[{\"profile\":\"vip\",\"op\":\"=\",\"value\":false},"
                   "{\"prop\":\"amount\",\"op\":\"=\",\"value\":1}]}"));
    assert_true(P("{\"not\":{\"profile\":\"vip\",\"op\":\"=\",\"value\":false}}"));
    assert_true(P("{\"all\":[{\"any\":[{\"not\":{\"profile\":\"age\",\"op\":\"<\",\"value\":18}},"
                  "{\"profile\":\"x\",\"op\":\"is_set\"}]},{\"all\":[{\"profile\":\"city\","
                  "\"op\":\"is_set\"}]},{\"not\":{\"not\":{\"prop\":\"channel\",\"op\":\"=\","
                  "\"value\":\"app\"}}}]}"));
}

static void test_item_and_suitability(void **state)
{
    F.items = J("{\"fund\":{\"000001\":{\"risk_level\":\"R3\",\"type\":\"equity\"},"
                "\"000003\":{\"risk_level\":\"R5\"},\"42\":{\"risk_level\":\"R1\"}}}");
    assert_true(P("{\"item\":{\"type\":\"fund\",\"key\":\"fund_code\",\"from\":\"event\"},"
                  "\"prop\":\"risk_level\",\"op\":\"<=\",\"value\":\"R3\"}"));
    assert_true(P("{\"item\":{\"type\":\"fund\",\"key\":\"fund_code\"},"
                  "\"prop\":\"type\",\"op\":\"=\",\"value\":\"equity\"}"));
    /* product risk <= customer risk: R3 vs C3 suitable, R5 vs C3 not */
    const char *suit = "{\"item\":{\"type\":\"fund\",\"key\":\"fund_code\",\"from\":\"event\"},"
                       "\"prop\":\"risk_level\",\"op\":\"<=\",\"value\":{\"profile\":\"risk_level\"}}";
    assert_true(P(suit));
    assert_false(P("{\"item\":{\"type\":\"fund\",\"key\":\"fund\",\"from\":\"profile\"},"
                   "\"prop\":\"risk_level\",\"op\":\"<=\",\"value\":{\"profile\":\"risk_level\"}}"));
    /* missing reference: not suitable */
    wm_cond_env_t e = env_of("{}", EVENT);
    assert_false(eval_with(suit, &e));
    /* numeric id, unknown id, no item callback */
    e = env_of(PROFILE, "{\"event\":\"X\",\"properties\":{\"fid\":42}}");
    assert_true(eval_with("{\"item\":{\"type\":\"fund\",\"key\":\"fid\"},\"prop\":\"risk_level\","
                          "\"op\":\"=\",\"value\":\"R1\"}", &e));
    e = env_of(PROFILE, "{\"event\":\"X\",\"properties\":{\"fid\":\"999\"}}");
    assert_true(eval_with("{\"item\":{\"type\":\"fund\",\"key\":\"fid\"},\"prop\":\"risk_level\","
                          "\"op\":\"not_set\"}", &e));
    e = env_of(PROFILE, EVENT);
    e.item = NULL;
    assert_false(eval_with("{\"item\":{\"type\":\"fund\",\"key\":\"fund_code\"},"
                           "\"prop\":\"risk_level\",\"op\":\"is_set\"}", &e));
    /* event-property reference */
    e = env_of(NULL, "{\"event\":\"X\",\"properties\":{\"a\":5,\"b\":7}}");
    assert_true(eval_with("{\"prop\":\"a\",\"op\":\"<\",\"value\":{\"prop\":\"b\"}}", &e));
    assert_false(eval_with("{\"prop\":\"b\",\"op\":\"<\",\"value\":{\"prop\":\"a\"}}", &e));
    assert_true(eval_with("{\"prop\":\"b\",\"op\":\"!=\",\"value\":{\"prop\":\"zz\"}}", &e));
}

static void test_segment_tag(void **state)
{
    F.segment = "high_value";
    F.tags = J("{\"tier\":\"hnw\",\"score\":88}");
    assert_true(P("{\"in_segment\":\"high_value\"}"));
    assert_false(P("{\"in_segment\":\"dormant\"}"));
    assert_true(P("{\"tag\":\"tier\",\"op\":\"=\",\"value\":\"hnw\"}"));
    assert_true(P("{\"tag\":\"score\",\"op\":\">\",\"value\":80}"));
    assert_true(P("{\"tag\":\"none\",\"op\":\"not_set\"}"));
    wm_cond_env_t e = env_of(PROFILE, EVENT);
    e.in_segment = NULL;
    e.tag = NULL;
    assert_false(eval_with("{\"in_segment\":\"high_value\"}", &e));
    assert_false(eval_with("{\"tag\":\"tier\",\"op\":\"is_set\"}", &e));
}

/* Feeds an event through the counters the way the runtime does. */
static void record(wm_cond_t *c, const char *event_json, int tz_min)
{
    const wm_json_t *ev = J(event_json);
    const wm_counter_spec_t *specs;
    uint32_t n;
    wm_cond_counters(c, &specs, &n);
    int64_t t = wm_json_get(ev, "time")->i64;
    for (uint32_t i = 0; i < n; i++) {
        double v;
        const char *dv;
        if (!wm_counter_match(&specs[i], ev, &v, &dv))
            continue;
        int s = spec_slot(&F, &specs[i]);
        assert_int_equal(wm_buckets_add(F.blob[s], &F.blob_len[s], wm_cond_day(t, tz_min), v, dv), 0);
    }
}

static char *view_at(int64_t t, const char *fund, double amount)
{
    char *s = wm_arena_alloc(&arena, 256);
    snprintf(s, 256, "{\"event\":\"ViewFundDetail\",\"time\":%lld,\"properties\":"
             "{\"fund_code\":\"%s\",\"fund_type\":\"equity\",\"amount\":%g}}",
             (long long)t, fund, amount);
    return s;
}

static void test_did_count_window(void **state)
{
    memset(&F, 0, sizeof F);
    wm_cond_t *c = compile_ok("{\"did\":\"ViewFundDetail\",\"count\":{\">=\":3},\"within\":\"7d\"}");
    wm_cond_env_t e = env_of(PROFILE, EVENT);
    bool r;
    /* local day of NOW (+08:00) is 2026-03-10; 7d = Mar 4..Mar 10 */
    int64_t local_midnight = NOW_MS - 12 * 3600000LL + 16 * 3600000LL - 24 * 3600000LL;
    /* = 2026-03-10 00:00 +08:00 */
    assert_int_equal(wm_cond_day(local_midnight, 480), wm_cond_day(NOW_MS, 480));
    assert_int_equal(wm_cond_day(local_midnight - 1, 480), wm_cond_day(NOW_MS, 480) - 1);
    record(c, view_at(local_midnight - 6 * DAY_MS, "a", 1), 480);      /* Mar 4 00:00: inside */
    record(c, view_at(local_midnight - 6 * DAY_MS - 1, "a", 1), 480);  /* Mar 3 23:59:59: outside */
    assert_int_equal(wm_cond_eval(c, &e, &r), 0);
    assert_false(r);
    record(c, view_at(NOW_MS - 3600000, "b", 1), 480);
    assert_int_equal(wm_cond_eval(c, &e, &r), 0);
    assert_false(r);
    /* the current event, recorded before eval, makes the third */
    record(c, view_at(NOW_MS, "c", 1), 480);
    assert_int_equal(wm_cond_eval(c, &e, &r), 0);
    assert_true(r);
    /* a day later, Mar 4 falls out of the window */
    e.now_ms += DAY_MS;
    assert_int_equal(wm_cond_eval(c, &e, &r), 0);
    assert_false(r);
    /* an error from the runtime propagates */
    F.fail_behaviour = 1;
    assert_int_equal(wm_cond_eval(c, &e, &r), WM_EIO);
    F.fail_behaviour = 0;
    /* no behaviour callback: false */
    e.behaviour = NULL;
    assert_int_equal(wm_cond_eval(c, &e, &r), 0);
    assert_false(r);
    wm_cond_free(c);
}

static void test_did_aggregates(void **state)
{
    memset(&F, 0, sizeof F);
    wm_cond_t *c = compile_ok(
        "{\"all\":[{\"did\":\"ViewFundDetail\",\"sum\":{\">\":250},\"field\":\"amount\",\"within\":\"30d\"},"
        "{\"did\":\"ViewFundDetail\",\"avg\":{\"between\":[90,110]},\"field\":\"amount\",\"within\":\"30d\"},"
        "{\"did\":\"ViewFundDetail\",\"min\":{\"=\":50},\"field\":\"amount\",\"within\":\"30d\"},"
        "{\"did\":\"ViewFundDetail\",\"max\":{\"<\":200},\"field\":\"amount\",\"within\":\"30d\"},"
        "{\"did\":\"ViewFundDetail\",\"distinct\":{\">=\":2},\"field\":\"fund_code\",\"within\":\"30d\"},"
        "{\"did\":\"ViewFundDetail\",\"where\":{\"prop\":\"fund_code\",\"op\":\"=\",\"value\":\"x\"},"
        "\"count\":{\"=\":2},\"within\":\"30d\"}]}");
    const wm_counter_spec_t *specs;
    uint32_t n;
    wm_cond_counters(c, &specs, &n);
    assert_int_equal(n, 3); /* amount, fund_code, where fund_code=x: sum/avg/min/max share one */
    record(c, view_at(NOW_MS - 10 * DAY_MS, "x", 50), 480);
    record(c, view_at(NOW_MS - 2 * DAY_MS, "x", 150), 480);
    record(c, view_at(NOW_MS - 1, "y", 100), 480);
    wm_cond_env_t e = env_of(PROFILE, EVENT);
    bool r;
    assert_int_equal(wm_cond_eval(c, &e, &r), 0);
    assert_true(r);
    /* absolute window: only the first event */
    wm_cond_t *abs = compile_ok("{\"did\":\"ViewFundDetail\",\"field\":\"amount\",\"sum\":{\"=\":50},"
                                "\"from\":\"2026-02-25\",\"to\":\"2026-03-01\"}");
    assert_int_equal(wm_cond_eval(abs, &e, &r), 0);
    assert_true(r);
    wm_cond_free(abs);
    /* no events at all: avg/min/max are not set -> false; count < 1 true */
    memset(&F, 0, sizeof F);
    wm_cond_t *none = compile_ok("{\"did\":\"ViewFundDetail\",\"field\":\"amount\",\"avg\":{\"<\":1},\"within\":\"7d\"}");
    assert_int_equal(wm_cond_eval(none, &e, &r), 0);
    assert_false(r);
    wm_cond_free(none);
    none = compile_ok("{\"not\":{\"did\":\"ViewFundDetail\",\"within\":\"7d\"}}");
    assert_int_equal(wm_cond_eval(none, &e, &r), 0);
    assert_true(r);
    wm_cond_free(none);
    wm_cond_free(c);
}

static void test_counter_keys_shared(void **state)
{
    wm_cond_t *a = compile_ok("{\"did\":\"Buy\",\"where\":{\"all\":[{\"prop\":\"a\",\"op\":\"=\",\"value\":1},"
                              "{\"prop\":\"b\",\"value\":2.50,\"op\":\">\"}]},\"count\":{\">=\":1},\"within\":\"7d\"}");
    wm_cond_t *b = compile_ok("{\"within\":\"30d\",\"sum\":{\">\":3},\"field\":\"amount\",\"did\":\"Buy\"}");
    wm_cond_t *b2 = compile_ok("{\"within\":\"1d\",\"field\":\"amount\",\"did\":\"Buy\",\"max\":{\">\":1}}");
    wm_cond_t *a2 = compile_ok("{\"count\":{\">\":5},\"did\":\"Buy\",\"within\":\"2d\",\"where\":{\"all\":"
                               "[{\"op\":\"=\",\"value\":1.0,\"prop\":\"a\"},{\"op\":\">\",\"prop\":\"b\",\"value\":2.5}]}}");
    const wm_counter_spec_t *sa, *sb, *sb2, *sa2;
    uint32_t n;
    wm_cond_counters(a, &sa, &n);
    assert_int_equal(n, 1);
    wm_cond_counters(b, &sb, &n);
    wm_cond_counters(b2, &sb2, &n);
    wm_cond_counters(a2, &sa2, &n);
    assert_string_equal(sa->key, sa2->key);
    assert_string_equal(sb->key, sb2->key);
    assert_string_not_equal(sa->key, sb->key);
    assert_string_equal(sb->key, "{\"event\":\"Buy\",\"field\":\"amount\"}");
    assert_string_equal(sa->event, "Buy");
    assert_non_null(sa->where);
    assert_null(sb->where);
    /* counter matching */
    double v;
    const char *dv;
    assert_true(wm_counter_match(sa, J("{\"event\":\"Buy\",\"time\":1,\"properties\":{\"a\":1,\"b\":3}}"), &v, &dv));
    assert_true(isnan(v));
    assert_false(wm_counter_match(sa, J("{\"event\":\"Buy\",\"properties\":{\"a\":1,\"b\":2}}"), &v, &dv));
    assert_false(wm_counter_match(sa, J("{\"event\":\"Sell\",\"properties\":{\"a\":1,\"b\":3}}"), &v, &dv));
    assert_true(wm_counter_match(sb, J("{\"event\":\"Buy\",\"properties\":{\"amount\":\"12.5\"}}"), &v, &dv));
    assert_true(v == 12.5);
    assert_string_equal(dv, "12.5");
    assert_true(wm_counter_match(sb, J("{\"event\":\"Buy\",\"properties\":{\"amount\":7}}"), &v, &dv));
    assert_string_equal(dv, "7");
    assert_false(wm_counter_match(sb, J("{\"event\":\"Buy\",\"properties\":{}}"), &v, &dv));
    wm_cond_free(a);
    wm_cond_free(b);
    wm_cond_free(b2);
    wm_cond_free(a2);
}

static void test_sequence(void **state)
{
    memset(&F, 0, sizeof F);
    F.events[F.n_events++] = J("{\"event\":\"B\",\"time\":1773100000000,\"properties\":{}}");
    F.events[F.n_events++] = J("{\"event\":\"A\",\"time\":1773110000000,\"properties\":{\"k\":1}}");
    F.events[F.n_events++] = J("{\"event\":\"A\",\"time\":1773120000000,\"properties\":{\"k\":2}}");
    F.events[F.n_events++] = J("{\"event\":\"C\",\"time\":1773130000000,\"properties\":{}}");
    F.events[F.n_events++] = J("{\"event\":\"B\",\"time\":1773140000000,\"properties\":{\"ok\":true}}");
    wm_cond_env_t e = env_of(PROFILE, EVENT);
    assert_true(eval_with("{\"sequence\":[{\"event\":\"A\"},{\"event\":\"B\"}],\"within\":\"1d\"}", &e));
    assert_true(eval_with("{\"sequence\":[{\"event\":\"A\",\"where\":{\"prop\":\"k\",\"op\":\"=\",\"value\":2}},"
                          "{\"event\":\"C\"},{\"event\":\"B\",\"where\":{\"prop\":\"ok\",\"op\":\"=\","
                          "\"value\":true}}],\"within\":\"1d\"}", &e));
    /* order matters */
    assert_false(eval_with("{\"sequence\":[{\"event\":\"C\"},{\"event\":\"A\"}],\"within\":\"1d\"}", &e));
    /* window: B at 1773100000000 is ~12 h before now: outside 10h */
    assert_false(eval_with("{\"sequence\":[{\"event\":\"B\"},{\"event\":\"A\"}],\"within\":\"10h\"}", &e));
    assert_true(eval_with("{\"sequence\":[{\"event\":\"B\"},{\"event\":\"A\"}],\"within\":\"13h\"}", &e));
    /* absolute window */
    assert_true(eval_with("{\"sequence\":[{\"event\":\"A\"},{\"event\":\"C\"}],\"from\":1773110000000,"
                          "\"to\":1773130000001}", &e));
    assert_false(eval_with("{\"sequence\":[{\"event\":\"A\"},{\"event\":\"C\"}],\"from\":1773110000000,"
                           "\"to\":1773130000000}", &e));
    assert_false(eval_with("{\"sequence\":[{\"event\":\"A\"},{\"event\":\"A\"},{\"event\":\"A\"}],\"within\":\"1d\"}", &e));
    e.events = NULL;
    assert_false(eval_with("{\"sequence\":[{\"event\":\"A\"}],\"within\":\"1d\"}", &e));
}

/* "the same fund viewed 3 times in 7 days": a did whose where compares with
 * the triggering event scans the user's events of the window */
static void test_did_same_as_trigger(void **state)
{
    memset(&F, 0, sizeof F);
    const int64_t day = DAY_MS;
    const char *fmt = "{\"event\":\"View\",\"time\":%lld,\"properties\":{\"fund\":\"%s\",\"amt\":%d}}";
    char buf[200];
    struct { int64_t at; const char *fund; int amt; } evs[] = {
        {NOW_MS - 9 * day, "A", 1}, /* outside 7 days */
        {NOW_MS - 5 * day, "A", 2},
        {NOW_MS - 3 * day, "B", 4},
        {NOW_MS - 1 * day, "A", 8},
        {NOW_MS - 1000, "A", 16},   /* the trigger itself, already stored */
    };
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++) {
        snprintf(buf, sizeof buf, fmt, (long long)evs[i].at, evs[i].fund, evs[i].amt);
        F.events[F.n_events++] = J(buf);
    }
    snprintf(buf, sizeof buf, fmt, (long long)(NOW_MS - 1000), "A", 16);
    wm_cond_env_t e = env_of(PROFILE, buf);
    const char *same3 = "{\"did\":\"View\",\"where\":{\"prop\":\"fund\",\"op\":\"=\","
                        "\"value\":{\"trigger\":\"fund\"}},\"count\":{\">=\":3},\"within\":\"7d\"}";
    assert_true(eval_with(same3, &e));
    const char *same4 = "{\"did\":\"View\",\"where\":{\"prop\":\"fund\",\"op\":\"=\","
                        "\"value\":{\"trigger\":\"fund\"}},\"count\":{\">=\":4},\"within\":\"7d\"}";
    assert_false(eval_with(same4, &e)); /* the 9-day-old view is out of the window */
    const char *sum = "{\"did\":\"View\",\"where\":{\"prop\":\"fund\",\"op\":\"=\","
                      "\"value\":{\"trigger\":\"fund\"}},\"sum\":{\"=\":26},\"field\":\"amt\","
                      "\"within\":\"7d\"}";
    assert_true(eval_with(sum, &e)); /* 2 + 8 + 16, not fund B's 4 */
    /* triggered by fund B: only one view of B in the window */
    snprintf(buf, sizeof buf, fmt, (long long)(NOW_MS - 3 * day), "B", 4);
    e = env_of(PROFILE, buf);
    assert_false(eval_with(same3, &e));
    /* no event source: false, not an error */
    e.events = NULL;
    assert_false(eval_with(same3, &e));
}

/* ---- exact did over a scan, against a brute force ---- */

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint64_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x9e3779b97f4a7c15ull;
}

/* What the brute force knows of one generated event. */
enum { CODE_INT, CODE_NUMTEXT, CODE_TEXT, CODE_BOOL, CODE_FRAC, CODE_MISSING, CODE_NULL, CODE_KINDS };
enum { AMT_INT, AMT_NUMTEXT, AMT_TEXT, AMT_KINDS };

typedef struct sev {
    int64_t t;
    bool view;          /* "View", else "Other" */
    int type;           /* fund_type: 0 "equity", 1 "bond" */
    int code_kind, code;
    int amt_kind, amt;
} sev_t;

#define SCAN_EVENTS 3000
static sev_t sev[SCAN_EVENTS];

static const char *const fund_types[] = {"equity", "bond"};

/* The event's "code" as text, the way distinct counts it: numbers and
 * numeric text alike ("7" and 7 are one value), booleans as words. */
static bool code_text(const sev_t *e, char *buf, size_t n)
{
    switch (e->code_kind) {
    case CODE_INT:
    case CODE_NUMTEXT:
        snprintf(buf, n, "%d", e->code);
        return true;
    case CODE_TEXT:
        snprintf(buf, n, "c%d", e->code);
        return true;
    case CODE_BOOL:
        snprintf(buf, n, "%s", e->code % 2 ? "true" : "false");
        return true;
    case CODE_FRAC:
        snprintf(buf, n, "%d.5", e->code);
        return true;
    default:
        return false;
    }
}

static char *sev_json(const sev_t *e)
{
    char code[48], amt[32];
    switch (e->code_kind) {
    case CODE_INT:
        snprintf(code, sizeof code, ",\"code\":%d", e->code);
        break;
    case CODE_NUMTEXT:
        snprintf(code, sizeof code, ",\"code\":\"%d\"", e->code);
        break;
    case CODE_TEXT:
        snprintf(code, sizeof code, ",\"code\":\"c%d\"", e->code);
        break;
    case CODE_BOOL:
        snprintf(code, sizeof code, ",\"code\":%s", e->code % 2 ? "true" : "false");
        break;
    case CODE_FRAC:
        snprintf(code, sizeof code, ",\"code\":%d.5", e->code);
        break;
    case CODE_NULL:
        snprintf(code, sizeof code, ",\"code\":null");
        break;
    default:
        code[0] = '\0';
    }
    if (e->amt_kind == AMT_INT)
        snprintf(amt, sizeof amt, "%d", e->amt);
    else if (e->amt_kind == AMT_NUMTEXT)
        snprintf(amt, sizeof amt, "\"%d\"", e->amt);
    else
        snprintf(amt, sizeof amt, "\"x%d\"", e->amt);
    char *s = wm_arena_alloc(&arena, 256);
    snprintf(s, 256, "{\"event\":\"%s\",\"time\":%lld,\"properties\":{\"fund_type\":\"%s\","
             "\"amt\":%s%s}}", e->view ? "View" : "Other", (long long)e->t,
             fund_types[e->type], amt, code);
    return s;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

typedef struct bf_agg {
    uint64_t count, numeric, distinct;
    double sum, min, max;
} bf_agg_t;

/* View events of fund type `type` on local days [from, to] (+08:00). */
static bf_agg_t scan_brute(int type, int32_t from, int32_t to, bool by_code)
{
    static char texts[SCAN_EVENTS][48];
    bf_agg_t a = {0, 0, 0, 0, INFINITY, -INFINITY};
    uint32_t n = 0;
    for (int i = 0; i < SCAN_EVENTS; i++) {
        const sev_t *e = &sev[i];
        int32_t day = wm_cond_day(e->t, 480);
        if (!e->view || e->type != type || day < from || day > to)
            continue;
        if (by_code) { /* field "code": only events where it is set */
            if (!code_text(e, texts[n], sizeof texts[n]))
                continue;
            n++;
        }
        a.count++;
        if (e->amt_kind != AMT_TEXT) {
            a.numeric++;
            a.sum += e->amt;
            a.min = e->amt < a.min ? e->amt : a.min;
            a.max = e->amt > a.max ? e->amt : a.max;
        }
    }
    qsort(texts, n, sizeof texts[0], cmp_str);
    for (uint32_t i = 0; i < n; i++)
        if (i == 0 || strcmp(texts[i], texts[i - 1]) != 0)
            a.distinct++;
    return a;
}

static void scan_generate(void)
{
    memset(&F, 0, sizeof F);
    int64_t t = NOW_MS - 30 * DAY_MS;
    for (int i = 0; i < SCAN_EVENTS; i++) {
        sev_t *e = &sev[i];
        t += (int64_t)(rnd() % (2 * 30 * (uint64_t)DAY_MS / SCAN_EVENTS));
        e->t = t;
        e->view = rnd() % 8 != 0;
        e->type = (int)(rnd() % 2);
        e->code_kind = (int)(rnd() % CODE_KINDS);
        e->code = (int)(rnd() % 700);
        e->amt_kind = (int)(rnd() % AMT_KINDS);
        e->amt = (int)(rnd() % 2000) - 500;
        F.events[F.n_events++] = J(sev_json(e));
    }
}

/* Evaluates one trigger-scoped clause: "<agg>":{<cmp>} over `window`. */
static bool scan_eval(const wm_cond_env_t *e, const char *field, const char *agg,
                      const char *cmp, const char *window)
{
    char ast[512];
    snprintf(ast, sizeof ast,
             "{\"did\":\"View\",\"where\":{\"prop\":\"fund_type\",\"op\":\"=\",\"value\":"
             "{\"trigger\":\"fund_type\"}},\"field\":\"%s\",\"%s\":%s,%s}",
             field, agg, cmp, window);
    return eval_with(ast, e);
}

static void check_scan(const wm_cond_env_t *e, int type, int32_t from, int32_t to,
                       const char *window)
{
    char cmp[96];
    bf_agg_t c = scan_brute(type, from, to, true);
    snprintf(cmp, sizeof cmp, "{\"=\":%llu}", (unsigned long long)c.distinct);
    assert_true(scan_eval(e, "code", "distinct", cmp, window));
    snprintf(cmp, sizeof cmp, "{\"=\":%llu}", (unsigned long long)c.distinct + 1);
    assert_false(scan_eval(e, "code", "distinct", cmp, window));
    if (c.distinct > 0) {
        snprintf(cmp, sizeof cmp, "{\"=\":%llu}", (unsigned long long)c.distinct - 1);
        assert_false(scan_eval(e, "code", "distinct", cmp, window));
    }
    snprintf(cmp, sizeof cmp, "{\"=\":%llu}", (unsigned long long)c.count);
    assert_true(scan_eval(e, "code", "count", cmp, window)); /* events where code is set */
    bf_agg_t a = scan_brute(type, from, to, false);
    snprintf(cmp, sizeof cmp, "{\"=\":%llu}", (unsigned long long)a.count);
    assert_true(scan_eval(e, "amt", "count", cmp, window)); /* text amounts count too */
    snprintf(cmp, sizeof cmp, "{\"=\":%.17g}", a.sum); /* numeric text adds */
    assert_true(scan_eval(e, "amt", "sum", cmp, window));
    if (a.numeric == 0) {
        assert_false(scan_eval(e, "amt", "min", "{\">\":-1e300}", window));
        return;
    }
    snprintf(cmp, sizeof cmp, "{\"=\":%.17g}", a.min);
    assert_true(scan_eval(e, "amt", "min", cmp, window));
    snprintf(cmp, sizeof cmp, "{\"=\":%.17g}", a.max);
    assert_true(scan_eval(e, "amt", "max", cmp, window));
    double avg = a.sum / (double)a.count;
    snprintf(cmp, sizeof cmp, "{\"between\":[%.17g,%.17g]}", avg - 1e-9, avg + 1e-9);
    assert_true(scan_eval(e, "amt", "avg", cmp, window));
}

/* A did that scans (its where references the trigger) is exact for every
 * aggregate, distinct included, and reads fields as the buckets do. */
static void test_did_scan_vs_brute_force(void **state)
{
    scan_generate();
    char trig[200], window[96];
    for (int k = 0; k < 30; k++) {
        int type = (int)(rnd() % 2);
        int64_t now = NOW_MS - (int64_t)(rnd() % (10 * (uint64_t)DAY_MS));
        snprintf(trig, sizeof trig, "{\"event\":\"View\",\"time\":%lld,\"properties\":"
                 "{\"fund_type\":\"%s\"}}", (long long)now, fund_types[type]);
        wm_cond_env_t e = env_of(PROFILE, trig);
        e.now_ms = now;
        int32_t today = wm_cond_day(now, 480);
        int days = 1 + (int)(rnd() % 30);
        snprintf(window, sizeof window, "\"within\":\"%dd\"", days);
        check_scan(&e, type, today - days + 1, today, window);
        /* absolute window, epoch ms */
        int64_t from_ms = NOW_MS - (int64_t)(rnd() % (30 * (uint64_t)DAY_MS));
        int64_t to_ms = from_ms + (int64_t)(rnd() % (12 * (uint64_t)DAY_MS));
        snprintf(window, sizeof window, "\"from\":%lld,\"to\":%lld", (long long)from_ms,
                 (long long)to_ms);
        check_scan(&e, type, wm_cond_day(from_ms, 480), wm_cond_day(to_ms, 480), window);
    }
}

/* When the buckets lose a day's value set, eval counts distinct values by
 * scanning the events and still gets the exact answer. */
static void test_did_distinct_falls_back_to_scan(void **state)
{
    memset(&F, 0, sizeof F);
    const int days = 30, per_day = 80;
    wm_cond_t *c = compile_ok("{\"did\":\"View\",\"field\":\"code\",\"distinct\":{\">=\":1},"
                              "\"within\":\"30d\"}");
    char buf[200];
    for (int d = 0; d < days; d++)
        for (int i = 0; i < per_day; i++) {
            int64_t t = NOW_MS - (int64_t)(days - 1 - d) * DAY_MS + i * 1000;
            snprintf(buf, sizeof buf, "{\"event\":\"View\",\"time\":%lld,\"properties\":"
                     "{\"code\":\"d%d-%d\"}}", (long long)t, d, i % 70); /* 70 distinct a day */
            const char *ev = wm_arena_strndup(&arena, buf, strlen(buf));
            record(c, ev, 480);
            F.events[F.n_events++] = J(ev);
        }
    wm_cond_free(c);
    /* the buckets alone are inexact over 30 days (2,100 hashes do not fit) */
    assert_int_equal(F.n_specs, 1);
    int32_t today = wm_cond_day(NOW_MS, 480);
    wm_agg_t a;
    assert_int_equal(wm_buckets_query(F.blob[0], F.blob_len[0], today - 29, today, &a), 0);
    assert_false(a.distinct_exact);
    assert_true(a.distinct < (uint64_t)(days * 70));
    assert_int_equal(a.count, (uint64_t)(days * per_day));
    wm_cond_env_t e = env_of(PROFILE, EVENT);
    const char *exact30 = "{\"did\":\"View\",\"field\":\"code\",\"distinct\":{\"=\":2100},\"within\":\"30d\"}";
    const char *less30 = "{\"did\":\"View\",\"field\":\"code\",\"distinct\":{\"<\":2100},\"within\":\"30d\"}";
    F.events_calls = 0;
    assert_true(eval_with(exact30, &e));
    assert_false(eval_with(less30, &e));
    assert_int_equal(F.events_calls, 2); /* answered by the scan */
    /* the last week is exact in the buckets: no scan */
    assert_int_equal(wm_buckets_query(F.blob[0], F.blob_len[0], today - 6, today, &a), 0);
    assert_true(a.distinct_exact);
    F.events_calls = 0;
    assert_true(eval_with("{\"did\":\"View\",\"field\":\"code\",\"distinct\":{\"=\":490},"
                          "\"within\":\"7d\"}", &e));
    assert_int_equal(F.events_calls, 0);
    /* count over 30 days never needs the scan */
    assert_true(eval_with("{\"did\":\"View\",\"field\":\"code\",\"count\":{\"=\":2400},"
                          "\"within\":\"30d\"}", &e));
    assert_int_equal(F.events_calls, 0);
    /* without env->events the buckets' lower bound is all there is */
    e.events = NULL;
    assert_false(eval_with(exact30, &e));
    assert_true(eval_with(less30, &e));
}

/* A scan meeting more distinct values than any runtime scan holds fails
 * rather than answering wrong; counting alone has no such bound. */
static int many_events(void *ctx, int64_t from, int64_t to,
                       int (*cb)(void *, const wm_json_t *), void *cbctx)
{
    wm_arena_t a;
    wm_arena_init(&a, 4096);
    char buf[160];
    int n = *(int *)ctx;
    for (int i = 0; i < n; i++) {
        int len = snprintf(buf, sizeof buf, "{\"event\":\"View\",\"time\":%lld,\"properties\":"
                           "{\"fund_type\":\"equity\",\"code\":%d}}", (long long)(NOW_MS - 1000), i);
        wm_json_t *ev;
        wm_json_error_t err;
        assert_int_equal(wm_json_parse(&a, buf, (size_t)len, &ev, &err), 0);
        int stop = cb(cbctx, ev);
        wm_arena_reset(&a);
        if (stop)
            break;
    }
    wm_arena_release(&a);
    return 0;
}

static void test_did_scan_bounds(void **state)
{
    int n = WM_COND_SCAN_EVENTS_MAX;
    wm_cond_env_t e = env_of(PROFILE, EVENT);
    e.ctx = &n;
    e.events = many_events;
    const char *distinct = "{\"did\":\"View\",\"where\":{\"prop\":\"fund_type\",\"op\":\"=\","
                           "\"value\":{\"trigger\":\"fund_type\"}},\"field\":\"code\","
                           "\"distinct\":{\"=\":%d},\"within\":\"1d\"}";
    char ast[400];
    snprintf(ast, sizeof ast, distinct, n);
    wm_cond_t *c = compile_ok(ast);
    bool r = false;
    assert_int_equal(wm_cond_eval(c, &e, &r), 0);
    assert_true(r);
    n = WM_COND_SCAN_EVENTS_MAX + 1;
    assert_int_equal(wm_cond_eval(c, &e, &r), WM_ELIMIT);
    assert_false(r);
    /* the set was left empty: a small scan after the failed one is right */
    n = 3;
    wm_cond_free(c);
    snprintf(ast, sizeof ast, distinct, 3);
    c = compile_ok(ast);
    assert_int_equal(wm_cond_eval(c, &e, &r), 0);
    assert_true(r);
    wm_cond_free(c);
    n = WM_COND_SCAN_EVENTS_MAX + 1;
    assert_true(eval_with("{\"did\":\"View\",\"where\":{\"prop\":\"fund_type\",\"op\":\"=\","
                          "\"value\":{\"trigger\":\"fund_type\"}},\"field\":\"code\","
                          "\"count\":{\"=\":10001},\"within\":\"1d\"}", &e));
}

/* A distinct scan started from inside another scan's events callback would
 * share its set: refused. */
typedef struct nested {
    const wm_cond_t *inner;
    wm_cond_env_t inner_env;
    int rc;
    int calls;
} nested_t;

static int nested_events(void *ctx, int64_t from, int64_t to,
                         int (*cb)(void *, const wm_json_t *), void *cbctx)
{
    nested_t *n = ctx;
    bool r;
    n->calls++;
    n->rc = wm_cond_eval(n->inner, &n->inner_env, &r);
    return 0;
}

static void test_did_scan_nested(void **state)
{
    memset(&F, 0, sizeof F);
    F.events[F.n_events++] = J("{\"event\":\"View\",\"time\":1773143000000,\"properties\":"
                               "{\"fund_type\":\"equity\",\"code\":1}}");
    const char *ast = "{\"did\":\"View\",\"where\":{\"prop\":\"fund_type\",\"op\":\"=\","
                      "\"value\":{\"trigger\":\"fund_type\"}},\"field\":\"code\","
                      "\"distinct\":{\"=\":1},\"within\":\"1d\"}";
    nested_t n;
    memset(&n, 0, sizeof n);
    n.inner = compile_ok(ast);
    n.inner_env = env_of(PROFILE, EVENT);
    wm_cond_env_t e = env_of(PROFILE, EVENT);
    e.ctx = &n;
    e.events = nested_events;
    assert_false(eval_with(ast, &e));
    assert_int_equal(n.calls, 1);
    assert_int_equal(n.rc, WM_EBUSY);
    /* the outer scan ended: the same scan now runs */
    bool r = false;
    assert_int_equal(wm_cond_eval(n.inner, &n.inner_env, &r), 0);
    assert_true(r);
    wm_cond_free((wm_cond_t *)n.inner);
}

/* A sequence step's where resolves {"trigger"} against the triggering
 * event, not the step's own event. */
static void test_sequence_trigger(void **state)
{
    memset(&F, 0, sizeof F);
    F.events[F.n_events++] = J("{\"event\":\"A\",\"time\":1773110000000,\"properties\":{\"k\":2}}");
    F.events[F.n_events++] = J("{\"event\":\"B\",\"time\":1773120000000,\"properties\":{}}");
    const char *ast = "{\"sequence\":[{\"event\":\"A\",\"where\":{\"prop\":\"k\",\"op\":\"=\","
                      "\"value\":{\"trigger\":\"k\"}}},{\"event\":\"B\"}],\"within\":\"1d\"}";
    wm_cond_env_t e = env_of(PROFILE, "{\"event\":\"C\",\"time\":1773144000000,\"properties\":{\"k\":2}}");
    assert_true(eval_with(ast, &e));
    e = env_of(PROFILE, "{\"event\":\"C\",\"time\":1773144000000,\"properties\":{\"k\":5}}");
    assert_false(eval_with(ast, &e));
    e = env_of(PROFILE, "{\"event\":\"C\",\"time\":1773144000000,\"properties\":{}}");
    assert_false(eval_with(ast, &e));
}

/* ---- wm_cond_deps ---- */

static wm_cond_deps_t deps_of(const char *ast)
{
    wm_cond_t *c = compile_ok(ast);
    wm_cond_deps_t d;
    assert_int_equal(wm_cond_deps(c, &arena, &d), 0);
    /* the names point into c: copy them into the test arena */
    const char ***lists[] = {&d.events, &d.tags, &d.segments};
    uint32_t ns[] = {d.n_events, d.n_tags, d.n_segments};
    for (int l = 0; l < 3; l++) {
        const char **copy = wm_arena_alloc(&arena, (ns[l] + 1) * sizeof *copy);
        for (uint32_t i = 0; i < ns[l]; i++)
            copy[i] = wm_arena_strndup(&arena, (*lists[l])[i], strlen((*lists[l])[i]));
        *lists[l] = copy;
    }
    wm_cond_free(c);
    return d;
}

static bool has_name(const char **list, uint32_t n, const char *name)
{
    int hits = 0;
    for (uint32_t i = 0; i < n; i++)
        hits += strcmp(list[i], name) == 0;
    assert_true(hits <= 1); /* no repeats */
    return hits == 1;
}

static void expect_flags(const wm_cond_deps_t *d, bool profile, bool event, bool clock, bool items)
{
    assert_int_equal(d->profile, profile);
    assert_int_equal(d->event, event);
    assert_int_equal(d->clock, clock);
    assert_int_equal(d->items, items);
}

static void test_deps(void **state)
{
    wm_cond_deps_t d;
    /* nothing, and bad arguments */
    assert_int_equal(wm_cond_deps(NULL, &arena, &d), 0);
    expect_flags(&d, false, false, false, false);
    assert_int_equal(d.n_events + d.n_tags + d.n_segments, 0);
    wm_cond_t *c = compile_ok("{\"profile\":\"a\",\"op\":\"is_set\"}");
    assert_int_equal(wm_cond_deps(c, NULL, &d), WM_EINVAL);
    assert_int_equal(wm_cond_deps(c, &arena, NULL), WM_EINVAL);
    wm_cond_free(c);
    /* flags one at a time */
    d = deps_of("{\"profile\":\"age\",\"op\":\">\",\"value\":18}");
    expect_flags(&d, true, false, false, false);
    d = deps_of("{\"prop\":\"amount\",\"op\":\">\",\"value\":18}");
    expect_flags(&d, false, true, false, false);
    d = deps_of("{\"prop\":\"amount\",\"op\":\">\",\"value\":{\"profile\":\"limit\"}}");
    expect_flags(&d, true, true, false, false);
    d = deps_of("{\"profile\":\"limit\",\"op\":\"<\",\"value\":{\"prop\":\"amount\"}}");
    expect_flags(&d, true, true, false, false);
    d = deps_of("{\"profile\":\"limit\",\"op\":\"<\",\"value\":{\"trigger\":\"amount\"}}");
    expect_flags(&d, true, true, false, false);
    d = deps_of("{\"item\":{\"type\":\"fund\",\"key\":\"fund_code\",\"from\":\"event\"},"
                "\"prop\":\"risk\",\"op\":\"<=\",\"value\":\"R3\"}");
    expect_flags(&d, false, true, false, true);
    d = deps_of("{\"item\":{\"type\":\"fund\",\"key\":\"fav\",\"from\":\"profile\"},"
                "\"prop\":\"risk\",\"op\":\"<=\",\"value\":\"R3\"}");
    expect_flags(&d, true, false, false, true);
    d = deps_of("{\"profile\":\"last_login\",\"op\":\"within_last\",\"value\":\"7d\"}");
    expect_flags(&d, true, false, true, false);
    d = deps_of("{\"profile\":\"birthday\",\"op\":\"before\",\"value\":\"-18d\"}");
    expect_flags(&d, true, false, true, false);
    d = deps_of("{\"profile\":\"birthday\",\"op\":\"before\",\"value\":\"2000-01-01\"}");
    expect_flags(&d, true, false, false, false); /* an absolute date does not move */
    /* did: its event; a relative window moves with the clock, an absolute one does not */
    d = deps_of("{\"did\":\"Buy\",\"within\":\"7d\"}");
    expect_flags(&d, false, false, true, false);
    assert_int_equal(d.n_events, 1);
    assert_true(has_name(d.events, d.n_events, "Buy"));
    d = deps_of("{\"did\":\"Buy\",\"from\":\"2026-01-01\",\"to\":\"2026-02-01\"}");
    expect_flags(&d, false, false, false, false);
    assert_true(has_name(d.events, d.n_events, "Buy"));
    /* a where reads the recorded events, not the current one ... */
    d = deps_of("{\"did\":\"Buy\",\"where\":{\"all\":[{\"prop\":\"amount\",\"op\":\">\",\"value\":5},"
                "{\"prop\":\"a\",\"op\":\"=\",\"value\":{\"prop\":\"b\"}}]},\"from\":1,\"to\":2}");
    expect_flags(&d, false, false, false, false);
    /* ... unless it compares with the trigger */
    d = deps_of("{\"did\":\"Buy\",\"where\":{\"prop\":\"fund\",\"op\":\"=\",\"value\":{\"trigger\":\"fund\"}},"
                "\"from\":1}");
    expect_flags(&d, false, true, false, false);
    d = deps_of("{\"sequence\":[{\"event\":\"A\",\"where\":{\"prop\":\"k\",\"op\":\"=\","
                "\"value\":{\"trigger\":\"k\"}}},{\"event\":\"B\"}],\"from\":1}");
    expect_flags(&d, false, true, false, false);
    /* a did's where runs with now = the recorded event's time: no clock;
     * a sequence step's where runs with the eval's now */
    d = deps_of("{\"did\":\"Buy\",\"where\":{\"prop\":\"expiry\",\"op\":\"within_last\",\"value\":\"7d\"},"
                "\"from\":1}");
    expect_flags(&d, false, false, false, false);
    d = deps_of("{\"sequence\":[{\"event\":\"A\",\"where\":{\"prop\":\"expiry\",\"op\":\"after\","
                "\"value\":\"-1d\"}}],\"from\":1}");
    expect_flags(&d, false, false, true, false);
    /* where clauses cannot read the profile at all */
    wm_cond_error_t err;
    c = NULL;
    assert_int_equal(wm_cond_compile(J("{\"did\":\"Buy\",\"within\":\"7d\",\"where\":{\"prop\":\"a\","
                                       "\"op\":\"=\",\"value\":{\"profile\":\"b\"}}}"), &c, &err),
                     WM_EINVAL);
    assert_null(c);
    /* sequences: every step's event, once; a relative window is clock */
    d = deps_of("{\"sequence\":[{\"event\":\"A\"},{\"event\":\"B\"},{\"event\":\"A\"}],\"within\":\"1h\"}");
    expect_flags(&d, false, false, true, false);
    assert_int_equal(d.n_events, 2);
    assert_true(has_name(d.events, d.n_events, "A"));
    assert_true(has_name(d.events, d.n_events, "B"));
    /* tags and segments */
    d = deps_of("{\"any\":[{\"tag\":\"tier\",\"op\":\"=\",\"value\":\"hnw\"},{\"in_segment\":\"vip\"},"
                "{\"tag\":\"score\",\"op\":\">\",\"value\":{\"profile\":\"min_score\"}},"
                "{\"not\":{\"in_segment\":\"dormant\"}},{\"tag\":\"tier\",\"op\":\"is_set\"},"
                "{\"in_segment\":\"vip\"}]}");
    expect_flags(&d, true, false, false, false);
    assert_int_equal(d.n_tags, 2);
    assert_true(has_name(d.tags, d.n_tags, "tier"));
    assert_true(has_name(d.tags, d.n_tags, "score"));
    assert_int_equal(d.n_segments, 2);
    assert_true(has_name(d.segments, d.n_segments, "vip"));
    assert_true(has_name(d.segments, d.n_segments, "dormant"));
    assert_int_equal(d.n_events, 0);
    /* many names: the arrays grow, repeats still folded */
    char ast[8192];
    size_t n = (size_t)snprintf(ast, sizeof ast, "{\"all\":[");
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(ast + n, sizeof ast - n, "%s{\"did\":\"E%d\",\"within\":\"1d\"},"
                              "{\"sequence\":[{\"event\":\"E%d\"},{\"event\":\"S%d\"}],\"within\":\"1d\"},"
                              "{\"in_segment\":\"g%d\"},{\"tag\":\"t%d\",\"op\":\"is_set\"}",
                              i ? "," : "", i, i, i % 7, i % 5, i);
    snprintf(ast + n, sizeof ast - n, "]}");
    d = deps_of(ast);
    assert_int_equal(d.n_events, 47); /* E0..E39, S0..S6 */
    assert_int_equal(d.n_segments, 5);
    assert_int_equal(d.n_tags, 40);
    for (int i = 0; i < 40; i++) {
        char name[16];
        snprintf(name, sizeof name, "E%d", i);
        assert_true(has_name(d.events, d.n_events, name));
        snprintf(name, sizeof name, "t%d", i);
        assert_true(has_name(d.tags, d.n_tags, name));
    }
    for (int i = 0; i < 7; i++) {
        char name[16];
        snprintf(name, sizeof name, "S%d", i);
        assert_true(has_name(d.events, d.n_events, name));
    }
    expect_flags(&d, false, false, true, false);
    /* the arena running out is an error, not a crash */
    wm_arena_t small;
    wm_arena_init(&small, 64);
    small.limit_bytes = 64;
    c = compile_ok(ast);
    assert_int_equal(wm_cond_deps(c, &small, &d), WM_ENOMEM);
    wm_cond_free(c);
    wm_arena_release(&small);
}

static void compile_fails(const char *ast, const char *path, const char *msg_part)
{
    wm_cond_t *c = NULL;
    wm_cond_error_t err;
    int rc = wm_cond_compile(J(ast), &c, &err);
    if (rc != WM_EINVAL || strcmp(err.path, path) != 0 || !strstr(err.msg, msg_part))
        print_error("%s -> rc %d path %s msg %s\n", ast, rc, err.path, err.msg);
    assert_int_equal(rc, WM_EINVAL);
    assert_null(c);
    assert_string_equal(err.path, path);
    assert_non_null(strstr(err.msg, msg_part));
}

static void test_compile_errors(void **state)
{
    compile_fails("[]", "$", "object");
    compile_fails("{}", "$", "unknown condition");
    compile_fails("{\"all\":[]}", "$.all", "non-empty");
    compile_fails("{\"any\":{}}", "$.any", "non-empty");
    compile_fails("{\"all\":[{\"profile\":\"a\",\"op\":\"=\",\"value\":1},{\"profile\":\"a\",\"op\":\"~\",\"value\":1}]}",
                  "$.all[1].op", "unknown operator");
    compile_fails("{\"all\":[{\"prop\":\"a\",\"op\":\"=\",\"value\":1},{\"prop\":\"a\",\"op\":\"between\",\"value\":1}]}",
                  "$.all[1].value", "between needs [lo, hi]");
    compile_fails("{\"prop\":\"a\",\"op\":\"between\",\"value\":[1,2,3]}", "$.value", "between");
    compile_fails("{\"prop\":\"a\",\"op\":\"in\",\"value\":\"x\"}", "$.value", "list");
    compile_fails("{\"prop\":\"a\",\"op\":\"in\",\"value\":[1,{}]}", "$.value[1]", "list element");
    compile_fails("{\"prop\":\"a\",\"op\":\"=\",\"value\":[1]}", "$.value", "in / not_in");
    compile_fails("{\"prop\":\"a\",\"op\":\"<\",\"value\":true}", "$.value", "number or a string");
    compile_fails("{\"prop\":\"a\",\"op\":\"=\",\"value\":null}", "$.value", "is_set");
    compile_fails("{\"prop\":\"a\",\"op\":\"=\"}", "$", "missing \"value\"");
    compile_fails("{\"prop\":\"a\",\"op\":\"is_set\",\"value\":1}", "$.value", "no value");
    compile_fails("{\"prop\":\"a\",\"value\":1}", "$.op", "missing \"op\"");
    compile_fails("{\"prop\":\"a\",\"op\":\"=\",\"value\":1,\"vlaue\":2}", "$.vlaue", "unknown key");
    compile_fails("{\"prop\":\"\",\"op\":\"is_set\"}", "$.prop", "non-empty name");
    compile_fails("{\"prop\":\"a\",\"op\":\"matches\",\"value\":\"(\"}", "$.value", "bad regular expression");
    compile_fails("{\"prop\":\"a\",\"op\":\"within_last\",\"value\":\"30x\"}", "$.value", "bad duration");
    compile_fails("{\"prop\":\"a\",\"op\":\"before\",\"value\":\"yesterday\"}", "$.value", "before/after");
    compile_fails("{\"prop\":\"a\",\"op\":\"=\",\"value\":{\"item\":\"x\"}}", "$.value.item", "unknown key");
    compile_fails("{\"profile\":\"a\",\"prop\":\"b\",\"op\":\"is_set\"}", "$", "ambiguous");
    compile_fails("{\"not\":[1]}", "$.not", "object");
    compile_fails("{\"did\":\"X\",\"count\":{\">=\":1}}", "$", "needs a window");
    compile_fails("{\"did\":\"X\",\"count\":{\">=\":1},\"within\":\"36h\"}", "$.within", "whole local days");
    compile_fails("{\"did\":\"X\",\"count\":{\">=\":1},\"within\":\"91d\"}", "$.within", "at most 90");
    compile_fails("{\"did\":\"X\",\"count\":{\">=\":1},\"within\":\"7d\",\"from\":1}", "$", "not both");
    compile_fails("{\"did\":\"X\",\"count\":3,\"within\":\"7d\"}", "$.count", "comparator");
    compile_fails("{\"did\":\"X\",\"count\":{\"~\":3},\"within\":\"7d\"}", "$.count.~", "unknown comparator");
    compile_fails("{\"did\":\"X\",\"count\":{\"between\":[3]},\"within\":\"7d\"}", "$.count.between", "between");
    compile_fails("{\"did\":\"X\",\"sum\":{\">\":3},\"within\":\"7d\"}", "$", "needs \"field\"");
    compile_fails("{\"did\":\"X\",\"sum\":{\">\":3},\"count\":{\">\":1},\"field\":\"a\",\"within\":\"7d\"}", "$", "one aggregate");
    compile_fails("{\"did\":\"X\",\"from\":\"2026-13-01\"}", "$.from", "epoch ms");
    compile_fails("{\"did\":\"X\",\"within\":\"7d\",\"where\":{\"profile\":\"a\",\"op\":\"is_set\"}}",
                  "$.where", "event properties only");
    compile_fails("{\"did\":\"X\",\"within\":\"7d\",\"where\":{\"all\":[{\"prop\":\"a\",\"op\":\"=\",\"value\":{\"profile\":\"b\"}}]}}",
                  "$.where.all[0].value", "only reference event properties");
    compile_fails("{\"sequence\":[],\"within\":\"1d\"}", "$.sequence", "steps");
    compile_fails("{\"sequence\":[{\"event\":\"A\"},{\"evnt\":\"B\"}],\"within\":\"1d\"}", "$.sequence[1].evnt", "unknown key");
    compile_fails("{\"sequence\":[{\"event\":\"A\",\"where\":{\"in_segment\":\"x\"}}],\"within\":\"1d\"}",
                  "$.sequence[0].where", "event properties only");
    compile_fails("{\"sequence\":[{\"event\":\"A\"}]}", "$", "needs a window");
    compile_fails("{\"item\":{\"type\":\"fund\",\"key\":\"k\",\"from\":\"x\"},\"prop\":\"r\",\"op\":\"is_set\"}",
                  "$.item", "item.from");
    compile_fails("{\"item\":{\"type\":\"fund\"},\"prop\":\"r\",\"op\":\"is_set\"}", "$.item.key", "non-empty name");
    compile_fails("{\"in_segment\":3}", "$.in_segment", "non-empty name");
    /* depth */
    char deep[4096];
    size_t n = 0;
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(deep + n, sizeof deep - n, "{\"not\":");
    n += (size_t)snprintf(deep + n, sizeof deep - n, "{\"prop\":\"a\",\"op\":\"is_set\"}");
    for (int i = 0; i < 40; i++)
        deep[n++] = '}';
    deep[n] = '\0';
    wm_cond_t *c = NULL;
    wm_cond_error_t err;
    assert_int_equal(wm_cond_compile(J(deep), &c, &err), WM_EINVAL);
    assert_non_null(strstr(err.msg, "deeper"));
}

static void test_compile_oom(void **state)
{
    const char *ast = "{\"all\":[{\"prop\":\"a\",\"op\":\"in\",\"value\":[\"x\",\"y\"]},"
                      "{\"profile\":\"n\",\"op\":\"matches\",\"value\":\"^a\"},"
                      "{\"did\":\"X\",\"where\":{\"prop\":\"a\",\"op\":\"=\",\"value\":1},\"within\":\"7d\"},"
                      "{\"sequence\":[{\"event\":\"A\",\"where\":{\"prop\":\"b\",\"op\":\"is_set\"}}],\"within\":\"1d\"}]}";
    const wm_json_t *j = J(ast);
    int ok = 0;
    for (long k = 0; k < 200; k++) {
        wm_cond_t *c = NULL;
        wm_alloc_fail_after(k);
        int rc = wm_cond_compile(j, &c, NULL);
        wm_alloc_fail_after(-1);
        assert_true(rc == 0 || rc == WM_ENOMEM);
        if (rc == 0) {
            ok++;
            wm_cond_free(c);
        }
    }
    assert_true(ok > 0);
}


/* What an added event can do: the longest window and monotonicity. */
static void test_event_window_monotone(void **state)
{
    (void)state;
    struct { const char *ast; int32_t window; bool monotone; } cases[] = {
        {"{\"did\":\"Login\",\"count\":{\">=\":3},\"within\":\"7d\"}", 7, true},
        {"{\"all\":[{\"did\":\"A\",\"count\":{\">\":1},\"within\":\"30d\"},"
         "{\"profile\":\"risk_level\",\"op\":\">=\",\"value\":\"C3\"}]}", 30, true},
        {"{\"did\":\"A\",\"count\":{\"<\":3},\"within\":\"7d\"}", 7, false},
        {"{\"did\":\"A\",\"sum\":{\">=\":3},\"field\":\"amount\",\"within\":\"7d\"}", 7, false},
        {"{\"not\":{\"did\":\"A\",\"count\":{\">=\":1},\"within\":\"14d\"}}", 14, false},
        {"{\"any\":[{\"did\":\"A\",\"count\":{\">=\":1},\"within\":\"14d\"}]}", 14, false},
        {"{\"all\":[{\"did\":\"A\",\"count\":{\">=\":1},\"within\":\"7d\"},"
         "{\"tag\":\"tier\",\"op\":\"=\",\"value\":\"x\"}]}", 7, false},
        {"{\"did\":\"A\",\"count\":{\">=\":1},\"from\":\"2026-01-01\"}", -1, true},
        {"{\"profile\":\"aum\",\"op\":\">\",\"value\":1}", 0, true},
        {"{\"sequence\":[{\"event\":\"A\"},{\"event\":\"B\"}],\"within\":\"1d\"}", 2, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wm_cond_t *c = compile_ok(cases[i].ast);
        assert_int_equal(wm_cond_event_window_days(c), cases[i].window);
        assert_int_equal(wm_cond_event_monotone(c), cases[i].monotone);
        wm_cond_free(c);
    }
    assert_int_equal(wm_cond_event_window_days(NULL), 0);
    assert_false(wm_cond_event_monotone(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_equality_and_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ordering, setup, teardown),
        cmocka_unit_test_setup_teardown(test_between, setup, teardown),
        cmocka_unit_test_setup_teardown(test_in_lists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contains_matches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_and_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_item_and_suitability, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segment_tag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_did_count_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_did_aggregates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counter_keys_shared, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sequence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_did_same_as_trigger, setup, teardown),
        cmocka_unit_test_setup_teardown(test_did_scan_vs_brute_force, setup, teardown),
        cmocka_unit_test_setup_teardown(test_did_distinct_falls_back_to_scan, setup, teardown),
        cmocka_unit_test_setup_teardown(test_did_scan_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_did_scan_nested, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sequence_trigger, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_window_monotone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compile_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compile_oom, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
