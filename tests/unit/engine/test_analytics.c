/*
 * test_analytics.c - the engine's analytics glue: `waymark compact`'s
 * compact-everything (every event lands in exactly one part per
 * partition, and the check finds them sound), the query entry's request
 * checks and running-query registry, and the host callbacks that answer
 * a query's customer clauses from the profile and audience stores.
 *
 * Query kinds themselves are tested with the analytics layer; here only
 * what the engine adds around wm_query_run is.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/engine_internal.h"
#include "waymark/analytics.h"
#include "waymark/engine.h"
#include "waymark/error.h"

#define USERS 40

static char dir[256];

static wm_engine_t *open_engine(void)
{
    wm_engine_opts_t o = {.data_dir = dir, .partitions = 2, .admin_key = "analytics_test_key",
                          .no_compactor = true};
    wm_engine_t *e = NULL;
    assert_int_equal(wm_engine_open(&o, &e), 0);
    for (int i = 0; i < 300 && !wm_engine_ready(e); i++)
        usleep(10000);
    assert_true(wm_engine_ready(e));
    return e;
}

static void submit(wm_engine_t *e, const char *ndjson)
{
    wm_arena_t a;
    wm_arena_init(&a, 1 << 16);
    wm_rec_ctx_t ctx = {.project = "default", .receive_time_ms = wm_engine_now(e), .now_ms = wm_engine_now(e)};
    wm_batch_t batch;
    char err[200];
    assert_int_equal(wm_native_decode(&a, ndjson, strlen(ndjson), &ctx, &batch, err, sizeof err), 0);
    wm_submit_opts_t so = {.source = "native"};
    wm_submit_result_t res;
    assert_int_equal(wm_engine_submit(e, &batch, &so, &res), 0);
    assert_int_equal(res.rejected, 0);
    assert_int_equal(wm_engine_wait_applied(e, 5000), 0);
    wm_arena_release(&a);
}

/* USERS users x 3 events, user i's profile tier gold for even i. */
static void load(wm_engine_t *e)
{
    wm_buf_t b;
    wm_buf_init(&b, 0);
    long long now = (long long)wm_engine_now(e);
    for (int u = 0; u < USERS; u++) {
        wm_buf_printf(&b, "{\"type\":\"profile_set\",\"distinct_id\":\"an%d\",\"time\":%lld,"
                          "\"properties\":{\"tier\":\"%s\",\"age\":%d}}\n",
                      u, now, u % 2 ? "silver" : "gold", 20 + u);
        for (int k = 0; k < 3; k++)
            wm_buf_printf(&b, "{\"type\":\"track\",\"event\":\"E%d\",\"distinct_id\":\"an%d\",\"time\":%lld,"
                              "\"properties\":{\"n\":%d,\"s\":\"x,\\\"y\\\"\"}}\n",
                          k, u, now - 1000 + k, u);
    }
    wm_buf_putc(&b, 0);
    submit(e, b.data);
    wm_buf_release(&b);
}

static uint64_t user_id(wm_engine_t *e, int u)
{
    char id[32];
    snprintf(id, sizeof id, "an%d", u);
    uint64_t uid = 0;
    assert_int_equal(wm_engine_find_user(e, "default", id, "distinct_id", &uid), 0);
    return uid;
}

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/wm-ut-analytics-%d", (int)getpid());
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Sums "N rows" over the report lines. */
static unsigned long long report_rows(const char *report)
{
    unsigned long long total = 0;
    for (const char *p = report; (p = strstr(p, " rows")); p++) {
        const char *q = p;
        while (q > report && q[-1] >= '0' && q[-1] <= '9')
            q--;
        total += strtoull(q, NULL, 10);
    }
    return total;
}

static void test_compact_all_and_check(void **state)
{
    wm_engine_t *e = open_engine();
    load(e);
    wm_buf_t rep;
    wm_buf_init(&rep, 0);
    assert_int_equal(wm_engine_analytics_compact_all(e, &rep), 0);
    wm_buf_putc(&rep, 0);
    /* one line per partition, one part each, every track event once */
    assert_non_null(strstr(rep.data, "p00: 1 parts"));
    assert_non_null(strstr(rep.data, "p01: 1 parts"));
    assert_non_null(strstr(rep.data, "bytes/event"));
    assert_int_equal(report_rows(rep.data), USERS * 3);
    /* a second run finds nothing new and keeps the one part */
    wm_buf_reset(&rep);
    assert_int_equal(wm_engine_analytics_compact_all(e, &rep), 0);
    wm_buf_putc(&rep, 0);
    assert_non_null(strstr(rep.data, "p00: 1 parts"));
    assert_int_equal(report_rows(rep.data), USERS * 3);
    wm_engine_close(e);

    wm_buf_reset(&rep);
    uint64_t faults = 9;
    assert_int_equal(wm_engine_analytics_check(dir, &rep, &faults), 0);
    wm_buf_putc(&rep, 0);
    assert_int_equal(faults, 0);
    assert_int_equal(report_rows(rep.data), USERS * 3);
    assert_non_null(strstr(rep.data, "/analytics/p00/"));
    assert_non_null(strstr(rep.data, "/analytics/p01/"));
    wm_buf_release(&rep);

    wm_buf_t r2;
    wm_buf_init(&r2, 0);
    assert_int_equal(wm_engine_analytics_check("/nonexistent/wm", &r2, &faults), WM_ENOTFOUND);
    wm_buf_release(&r2);
}

static void test_query_entry_errors(void **state)
{
    wm_engine_t *e = open_engine();
    wm_engine_query_error_t qe;
    wm_buf_t out;
    wm_buf_init(&out, 0);
    char id[WM_QUERY_ID_MAX + 1];

    /* no kind */
    assert_int_equal(wm_engine_query(e, "", "{}", 2, NULL, id, &out, &qe), WM_EINVAL);
    assert_string_equal(qe.path, "kind");
    /* not JSON, not an object: path "" and a message */
    assert_int_equal(wm_engine_query(e, "events", "{nope", 5, NULL, id, &out, &qe), WM_EINVAL);
    assert_string_equal(qe.path, "");
    assert_non_null(strstr(qe.msg, "not JSON"));
    assert_int_equal(wm_engine_query(e, "events", "[1]", 3, NULL, id, &out, &qe), WM_EINVAL);
    assert_non_null(strstr(qe.msg, "object"));
    /* a bad id is refused before anything runs */
    wm_engine_query_opts_t o = {.id = "no spaces"};
    assert_int_equal(wm_engine_query(e, "events", "{}", 2, &o, id, &out, &qe), WM_EINVAL);
    assert_string_equal(qe.path, "id");
    /* an unknown kind reaches wm_query_run, which names "kind" */
    o.id = "my-query.1";
    assert_int_equal(wm_engine_query(e, "no_such_kind", "{}", 2, &o, id, &out, &qe), WM_EINVAL);
    assert_string_equal(qe.path, "kind");
    assert_string_equal(id, "my-query.1");
    /* nothing is left running; cancelling an unknown id says so */
    wm_buf_reset(&out);
    assert_int_equal(wm_engine_queries_json(e, &out), 0);
    wm_buf_putc(&out, 0);
    assert_string_equal(out.data, "{\"queries\":[]}");
    assert_int_equal(wm_engine_query_cancel(e, "my-query.1"), WM_ENOTFOUND);
    /* made-up ids differ */
    char id2[WM_QUERY_ID_MAX + 1];
    wm_engine_query(e, "no_such_kind", "{}", 2, NULL, id, &out, &qe);
    wm_engine_query(e, "no_such_kind", "{}", 2, NULL, id2, &out, &qe);
    assert_true(id[0] != '\0');
    assert_string_not_equal(id, id2);
    wm_buf_release(&out);
    wm_engine_close(e);
}

static bool published(wm_engine_t *e, const char *kind, const char *json)
{
    wm_buf_t out;
    wm_buf_init(&out, 0);
    bool valid = false;
    int rc = wm_engine_aud_save(e, kind, "default", NULL, json, strlen(json), &valid, &out);
    wm_buf_reset(&out);
    const char *key = strstr(json, "\"key\": \"") + 8;
    char k[64];
    snprintf(k, sizeof k, "%.*s", (int)strcspn(key, "\""), key);
    if (!rc && valid)
        rc = wm_engine_aud_publish(e, kind, "default", k, &out);
    wm_buf_release(&out);
    return !rc && valid;
}

static void test_host_callbacks(void **state)
{
    wm_engine_t *e = open_engine();
    assert_true(published(e, "tag", "{\"key\": \"vip\", \"name\": \"VIP\", \"kind\": \"manual\", \"type\": \"bool\"}"));
    assert_true(published(e, "segment", "{\"key\": \"golds\", \"name\": \"gold\", "
                                        "\"condition\": {\"profile\": \"tier\", \"op\": \"=\", \"value\": \"gold\"}}"));
    load(e);
    uint64_t u0 = user_id(e, 0), u1 = user_id(e, 1);
    assert_int_equal(wm_engine_tag_set(e, "default", u0, "vip", "true", "api"), 0);
    assert_int_equal(wm_engine_wait_applied(e, 5000), 0);

    wm__query_host_ctx_t ctx = {.e = e, .project = "default"};
    wm_query_host_t h;
    wm__engine_query_host(&ctx, &h);
    wm_arena_t a;
    wm_arena_init(&a, 4096);
    uint32_t n = wm_engine_partition_count(e);

    const wm_json_t *v = h.profile(h.ctx, (uint32_t)(u0 % n), u0, "tier", &a);
    assert_non_null(v);
    assert_string_equal(wm_json_str(v), "gold");
    v = h.profile(h.ctx, (uint32_t)(u1 % n), u1, "age", &a);
    assert_non_null(v);
    assert_int_equal(v->i64, 21);
    /* a number stays usable after the profile copy it came from is gone */
    wm_buf_t w;
    wm_buf_init(&w, 0);
    wm_json_write(&w, v);
    wm_buf_putc(&w, 0);
    assert_string_equal(w.data, "21");
    wm_buf_release(&w);
    assert_null(h.profile(h.ctx, 0, u0, "no_such_prop", &a));
    assert_null(h.profile(h.ctx, 0, 987654321ull, "tier", &a));

    v = h.tag(h.ctx, 0, u0, "vip", &a);
    assert_non_null(v);
    assert_int_equal(v->type, WM_JSON_TRUE);
    assert_null(h.tag(h.ctx, 0, u1, "vip", &a));
    assert_null(h.tag(h.ctx, 0, u0, "no_such_tag", &a));

    /* the segment is computed in the background after publish */
    bool in0 = false;
    for (int i = 0; i < 500 && !in0; i++) {
        in0 = h.in_segment(h.ctx, 0, u0, "golds");
        if (!in0)
            usleep(10000);
    }
    assert_true(in0);
    assert_false(h.in_segment(h.ctx, 0, u1, "golds"));
    assert_false(h.in_segment(h.ctx, 0, u0, "no_such_segment"));
    wm__query_host_ctx_t other = {.e = e, .project = "other_project"};
    wm__engine_query_host(&other, &h);
    assert_false(h.in_segment(h.ctx, 0, u0, "golds"));

    wm_arena_release(&a);
    wm_engine_close(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_compact_all_and_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_entry_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_callbacks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
