/*
 * fuzz.c (cond_compile) - any JSON must either fail to compile with a path
 * and a message, or compile into a program that evaluates without crashing
 * against a fixed environment (profile, event, items, behaviour backed by a
 * real bucket blob, an event history for sequences, segments and tags).
 * The same input is also tried as a calendar and a duration, and a compiled
 * program's counter specs are matched against the fixed event.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "waymark/arena.h"
#include "waymark/error.h"
#include "waymark/json.h"
#include "waymark/rules.h"

static const char PROFILE[] =
    "{\"risk_level\":\"C3\",\"age\":42,\"vip\":true,\"city\":\"Shanghai\",\"birthday\":\"1984-03-10\","
    "\"last_login\":\"2026-03-01 09:00:00\",\"tags\":[\"sip\",1,null],\"n\":null,\"fund\":\"000001\"}";
static const char EVENT[] =
    "{\"type\":\"track\",\"event\":\"ViewFundDetail\",\"distinct_id\":\"c1\",\"time\":1773144000000,"
    "\"properties\":{\"fund_code\":\"000001\",\"fund_type\":\"equity\",\"amount\":1000,\"a\":\"2.5\","
    "\"b\":[1,\"x\"],\"k\":true}}";
static const char ITEM[] = "{\"risk_level\":\"R3\",\"type\":\"equity\",\"size\":12.5}";
static const char HISTORY[] =
    "[{\"event\":\"A\",\"time\":1773100000000,\"properties\":{\"k\":1}},"
    "{\"event\":\"ViewFundDetail\",\"time\":1773110000000,\"properties\":{\"amount\":5}},"
    "{\"event\":\"B\",\"time\":1773144000000,\"properties\":{}}]";

typedef struct fx {
    const wm_json_t *item;
    const wm_json_t *history;
    unsigned char blob[WM_BUCKETS_BYTES_MAX];
    size_t blob_len;
} fx_t;

static const wm_json_t *item_cb(void *ctx, const char *type, const char *id)
{
    fx_t *f = ctx;
    return type[0] && id[0] ? f->item : NULL;
}

static int behaviour_cb(void *ctx, const wm_counter_spec_t *spec, int32_t from, int32_t to, wm_agg_t *out)
{
    fx_t *f = ctx;
    if (!spec || !spec->key || !spec->event)
        abort();
    return wm_buckets_query(f->blob, f->blob_len, from, to, out);
}

static int events_cb(void *ctx, int64_t from, int64_t to, int (*cb)(void *, const wm_json_t *), void *cbctx)
{
    fx_t *f = ctx;
    for (const wm_json_t *e = f->history->u.child; e; e = e->next) {
        int64_t t = wm_json_get(e, "time")->i64;
        if (t >= from && t < to && cb(cbctx, e))
            break;
    }
    return 0;
}

static bool segment_cb(void *ctx, const char *s) { return s[0] == 'h'; }

static const wm_json_t *tag_cb(void *ctx, const char *t)
{
    fx_t *f = ctx;
    return wm_json_get(f->item, t);
}

static const wm_json_t *parse(wm_arena_t *a, const char *s)
{
    wm_json_t *v = NULL;
    if (wm_json_parse(a, s, strlen(s), &v, NULL) != 0)
        abort();
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wm_arena_t a;
    wm_arena_init(&a, 4096);
    static fx_t f;
    memset(&f, 0, sizeof f);
    f.item = parse(&a, ITEM);
    f.history = parse(&a, HISTORY);
    for (int32_t d = 20500; d < 20525; d += 3)
        wm_buckets_add(f.blob, &f.blob_len, d, d % 7, d % 2 ? "x" : "y");

    /* durations: the raw bytes as a string */
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    int64_t ms;
    int rc = wm_duration_parse(s, &ms);
    if (rc != 0 && rc != WM_EINVAL)
        abort();
    free(s);

    wm_json_t *ast = NULL;
    if (wm_json_parse(&a, (const char *)data, size, &ast, NULL) != 0) {
        wm_arena_release(&a);
        return 0;
    }
    wm_cond_error_t err;
    wm_calendar_t *cal = NULL;
    rc = wm_calendar_compile(ast, &cal, &err);
    if (rc == 0) {
        for (int32_t d = 20000; d < 20010; d++)
            (void)wm_calendar_is_trading_day(cal, d);
        (void)wm_calendar_next_open(cal, 1773144000000LL, 9, 30);
        wm_calendar_free(cal);
    } else if (rc != WM_EINVAL && rc != WM_ENOMEM) {
        abort();
    }

    wm_cond_t *c = NULL;
    rc = wm_cond_compile(ast, &c, &err);
    if (rc == WM_EINVAL) {
        if (!err.path[0] || err.path[0] != '$' || !err.msg[0] || memchr(err.path, 0, sizeof err.path) == NULL)
            abort();
    } else if (rc == 0) {
        wm_cond_env_t env;
        memset(&env, 0, sizeof env);
        env.profile = parse(&a, PROFILE);
        env.event = parse(&a, EVENT);
        env.now_ms = 1773144000000LL;
        env.tz_offset_min = 480;
        env.ctx = &f;
        env.item = item_cb;
        env.behaviour = behaviour_cb;
        env.events = events_cb;
        env.in_segment = segment_cb;
        env.tag = tag_cb;
        bool r1 = false, r2 = false;
        if (wm_cond_eval(c, &env, &r1) != 0 || wm_cond_eval(c, &env, &r2) != 0 || r1 != r2)
            abort(); /* deterministic, and these callbacks never fail */
        wm_cond_env_t bare;
        memset(&bare, 0, sizeof bare);
        if (wm_cond_eval(c, &bare, &r1) != 0)
            abort();
        const wm_counter_spec_t *specs;
        uint32_t n;
        wm_cond_counters(c, &specs, &n);
        for (uint32_t i = 0; i < n; i++) {
            double v;
            const char *dv;
            if (!specs[i].key || specs[i].key[0] != '{')
                abort();
            if (wm_counter_match(&specs[i], env.event, &v, &dv))
                wm_buckets_add(f.blob, &f.blob_len, 20524, v, dv);
        }
        wm_cond_free(c);
    } else if (rc != WM_ENOMEM) {
        abort();
    }
    wm_arena_release(&a);
    return 0;
}
