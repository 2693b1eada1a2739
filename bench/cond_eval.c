/*
 * cond_eval.c - evaluation speed of compiled conditions.
 *
 *   build/bench/cond_eval [N]     N evaluations per case (default 2000000)
 *
 * Cases: the journey example's entry filter (one `in`), a 3-clause all
 * (level compare, numeric compare, item suitability by reference), a did
 * count answered from an in-memory bucket blob holding 30 days, and a
 * 3-step sequence scanned over a 20-event history. Profiles and events are
 * parsed once, as the runtime holds them; the checksum (true results) keeps
 * the compiler from discarding the work and makes runs comparable.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "waymark/arena.h"
#include "waymark/json.h"
#include "waymark/rules.h"

typedef struct fixture {
    const wm_json_t *item;
    const wm_json_t *history[20];
    unsigned char blob[WM_BUCKETS_BYTES_MAX];
    size_t blob_len;
} fixture_t;

static const wm_json_t *item_cb(void *ctx, const char *type, const char *id)
{
    return ((fixture_t *)ctx)->item;
}

static int behaviour_cb(void *ctx, const wm_counter_spec_t *spec, int32_t from, int32_t to, wm_agg_t *out)
{
    fixture_t *f = ctx;
    return wm_buckets_query(f->blob, f->blob_len, from, to, out);
}

static int events_cb(void *ctx, int64_t from, int64_t to, int (*cb)(void *, const wm_json_t *), void *cbctx)
{
    fixture_t *f = ctx;
    for (int i = 0; i < 20; i++) {
        int64_t t = wm_json_get(f->history[i], "time")->i64;
        if (t >= from && t < to && cb(cbctx, f->history[i]))
            break;
    }
    return 0;
}

static wm_json_t *parse(wm_arena_t *a, const char *s)
{
    wm_json_t *v = NULL;
    if (wm_json_parse(a, s, strlen(s), &v, NULL) != 0) {
        fprintf(stderr, "bad JSON: %s\n", s);
        exit(1);
    }
    return v;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const struct {
    const char *name;
    const char *ast;
} cases[] = {
    {"journey_entry_filter", "{\"prop\":\"fund_type\",\"op\":\"in\",\"value\":[\"equity\",\"mixed\"]}"},
    {"all_3_clauses",
     "{\"all\":[{\"profile\":\"risk_level\",\"op\":\">=\",\"value\":\"C3\"},"
     "{\"prop\":\"amount\",\"op\":\">=\",\"value\":1000},"
     "{\"item\":{\"type\":\"fund\",\"key\":\"fund_code\",\"from\":\"event\"},\"prop\":\"risk_level\","
     "\"op\":\"<=\",\"value\":{\"profile\":\"risk_level\"}}]}"},
    {"did_count_7d_buckets", "{\"did\":\"ViewFundDetail\",\"count\":{\">=\":3},\"within\":\"7d\"}"},
    {"sequence_3_steps",
     "{\"sequence\":[{\"event\":\"Login\"},{\"event\":\"ViewFundDetail\",\"where\":{\"prop\":\"fund_type\","
     "\"op\":\"=\",\"value\":\"equity\"}},{\"event\":\"AddToWatchlist\"}],\"within\":\"1d\"}"},
};

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    if (n <= 0)
        n = 1;
    wm_arena_t a;
    wm_arena_init(&a, 1 << 16);
    static fixture_t f;
    const int64_t now = 1773144000000LL;
    f.item = parse(&a, "{\"risk_level\":\"R3\",\"type\":\"equity\",\"manager\":\"m1\"}");
    static const char *names[] = {"Login", "ViewFundDetail", "Search", "ViewFundDetail", "AddToWatchlist"};
    for (int i = 0; i < 20; i++) {
        char buf[256];
        snprintf(buf, sizeof buf, "{\"event\":\"%s\",\"time\":%lld,\"properties\":{\"fund_type\":\"%s\"}}",
                 names[i % 5], (long long)(now - (20 - i) * 600000LL), i % 2 ? "equity" : "bond");
        f.history[i] = parse(&a, buf);
    }
    int32_t today = wm_cond_day(now, 480);
    for (int32_t d = today - 29; d <= today; d++)
        for (int k = 0; k < (d % 3) + 1; k++)
            wm_buckets_add(f.blob, &f.blob_len, d, 1, NULL);

    wm_cond_env_t env;
    memset(&env, 0, sizeof env);
    env.profile = parse(&a, "{\"risk_level\":\"C4\",\"age\":42,\"city\":\"Shanghai\",\"vip\":true,"
                            "\"aum\":250000,\"birthday\":\"1984-03-10\",\"channel\":\"app\"}");
    env.event = parse(&a, "{\"type\":\"track\",\"event\":\"ViewFundDetail\",\"distinct_id\":\"c1\","
                          "\"time\":1773144000000,\"project\":\"default\",\"properties\":{"
                          "\"$os\":\"iOS\",\"$app_version\":\"5.2.0\",\"$lib\":\"iOS\",\"$screen_width\":390,"
                          "\"fund_code\":\"000001\",\"fund_type\":\"mixed\",\"amount\":5000,\"page\":\"detail\"},"
                          "\"lib\":{\"$lib\":\"iOS\",\"$lib_version\":\"4.5.0\"}}");
    env.now_ms = now;
    env.tz_offset_min = 480;
    env.ctx = &f;
    env.item = item_cb;
    env.behaviour = behaviour_cb;
    env.events = events_cb;

    printf("%-22s %10s %8s %12s %8s %8s\n", "case", "evals", "seconds", "evals/s", "ns/eval", "true");
    unsigned long checksum = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        wm_cond_t *cond = NULL;
        wm_cond_error_t err;
        if (wm_cond_compile(parse(&a, cases[c].ast), &cond, &err) != 0) {
            fprintf(stderr, "%s: %s: %s\n", cases[c].name, err.path, err.msg);
            return 1;
        }
        long iters = strstr(cases[c].name, "sequence") ? n / 10 : n;
        unsigned long hits = 0;
        double t0 = now_s();
        for (long i = 0; i < iters; i++) {
            bool r = false;
            wm_cond_eval(cond, &env, &r);
            hits += r;
        }
        double dt = now_s() - t0;
        printf("%-22s %10ld %8.3f %12.0f %8.1f %8lu\n", cases[c].name, iters, dt, iters / dt,
               dt * 1e9 / iters, hits);
        checksum = checksum * 31 + hits;
        wm_cond_free(cond);
    }
    printf("checksum %lu\n", checksum);
    wm_arena_release(&a);
    return 0;
}
