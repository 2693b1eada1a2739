/*
 * test_query_registry.c - the engine's running-query registry around
 * wm_query_run: a running query is listed with its id, kind and age, a
 * cancel reaches it through src->cancel, ids are unique among running
 * queries, at most WM_QUERIES_RUNNING_MAX run, an answer past
 * answer_max is refused, and shutdown cancels what runs.
 *
 * wm_query_run is replaced here by a stand-in that waits for its cancel
 * flag (or answers at once for kind "fast"), so a query can be held
 * running; the linker takes this definition and leaves query.o of the
 * library out. What the real kinds answer is tested elsewhere.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "waymark/analytics.h"
#include "waymark/engine.h"
#include "waymark/error.h"
#include "waymark/limits.h"

static uint32_t seen_parts;
static bool seen_host;

int wm_query_run(const wm_query_src_t *src, const char *kind, const wm_json_t *req, wm_buf_t *out,
                 wm_query_error_t *err)
{
    seen_parts = src->n_parts;
    seen_host = src->host && src->host->profile && src->host->tag && src->host->in_segment;
    for (uint32_t i = 0; i < src->n_parts; i++)
        if (!src->stores[i] || !src->logs[i])
            return WM_EIO;
    if (!strcmp(kind, "fast")) {
        wm_buf_puts(out, "{\"rows\":[1,2,3,4,5,6,7,8,9,10]}");
        return 0;
    }
    for (int i = 0; i < 1000; i++) {   /* at most 10 s */
        if (src->cancel && *src->cancel) {
            snprintf(err->msg, sizeof err->msg, "cancelled");
            return WM_ECLOSED;
        }
        usleep(10000);
    }
    return WM_EBUSY;
}

static char dir[256];
static wm_engine_t *engine;

typedef struct runner {
    pthread_t t;
    char id[WM_QUERY_ID_MAX + 1];
    int rc;
} runner_t;

static void *run_slow(void *arg)
{
    runner_t *r = arg;
    wm_engine_query_opts_t o = {.id = r->id};
    wm_engine_query_error_t qe;
    wm_buf_t out;
    wm_buf_init(&out, 0);
    r->rc = wm_engine_query(engine, "slow", "{}", 2, &o, NULL, &out, &qe);
    wm_buf_release(&out);
    return NULL;
}

static int running(void)
{
    wm_buf_t b;
    wm_buf_init(&b, 0);
    wm_engine_queries_json(engine, &b);
    wm_buf_putc(&b, 0);
    int n = 0;
    for (const char *p = b.data; (p = strstr(p, "\"id\":")); p++)
        n++;
    wm_buf_release(&b);
    return n;
}

static void wait_running(int n)
{
    for (int i = 0; i < 500 && running() != n; i++)
        usleep(10000);
    assert_int_equal(running(), n);
}

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/wm-ut-qreg-%d", (int)getpid());
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    wm_engine_opts_t o = {.data_dir = dir, .partitions = 3, .admin_key = "qreg_test_key", .no_compactor = true};
    assert_int_equal(wm_engine_open(&o, &engine), 0);
    return 0;
}

static int teardown(void **state)
{
    wm_engine_close(engine);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_list_and_cancel(void **state)
{
    runner_t r = {.id = "held-1"};
    assert_int_equal(pthread_create(&r.t, NULL, run_slow, &r), 0);
    wait_running(1);
    assert_int_equal(seen_parts, 3);
    assert_true(seen_host);
    wm_buf_t b;
    wm_buf_init(&b, 0);
    wm_engine_queries_json(engine, &b);
    wm_buf_putc(&b, 0);
    assert_non_null(strstr(b.data, "\"id\":\"held-1\",\"kind\":\"slow\",\"project\":\"default\""));
    assert_non_null(strstr(b.data, "\"elapsed_ms\":"));
    assert_non_null(strstr(b.data, "\"cancelled\":false"));
    wm_buf_release(&b);

    /* the same id cannot run twice at once */
    wm_engine_query_opts_t o = {.id = "held-1"};
    wm_engine_query_error_t qe;
    wm_buf_t out;
    wm_buf_init(&out, 0);
    assert_int_equal(wm_engine_query(engine, "fast", "{}", 2, &o, NULL, &out, &qe), WM_EEXISTS);
    assert_string_equal(qe.path, "id");

    assert_int_equal(wm_engine_query_cancel(engine, "held-1"), 0);
    pthread_join(r.t, NULL);
    assert_int_equal(r.rc, WM_ECLOSED);
    assert_int_equal(running(), 0);
    assert_int_equal(wm_engine_query_cancel(engine, "held-1"), WM_ENOTFOUND);

    /* once it ended, the id is free again */
    wm_buf_reset(&out);
    assert_int_equal(wm_engine_query(engine, "fast", "{}", 2, &o, NULL, &out, &qe), 0);
    wm_buf_release(&out);
}

static void test_running_limit(void **state)
{
    runner_t r[WM_QUERIES_RUNNING_MAX];
    for (int i = 0; i < WM_QUERIES_RUNNING_MAX; i++) {
        snprintf(r[i].id, sizeof r[i].id, "held-%d", i);
        assert_int_equal(pthread_create(&r[i].t, NULL, run_slow, &r[i]), 0);
    }
    wait_running(WM_QUERIES_RUNNING_MAX);
    wm_engine_query_error_t qe;
    wm_buf_t out;
    wm_buf_init(&out, 0);
    assert_int_equal(wm_engine_query(engine, "fast", "{}", 2, NULL, NULL, &out, &qe), WM_ECONFLICT);
    assert_non_null(strstr(qe.msg, "too many"));
    for (int i = 0; i < WM_QUERIES_RUNNING_MAX; i++) {
        char id[32];
        snprintf(id, sizeof id, "held-%d", i);
        assert_int_equal(wm_engine_query_cancel(engine, id), 0);
    }
    for (int i = 0; i < WM_QUERIES_RUNNING_MAX; i++) {
        pthread_join(r[i].t, NULL);
        assert_int_equal(r[i].rc, WM_ECLOSED);
    }
    assert_int_equal(wm_engine_query(engine, "fast", "{}", 2, NULL, NULL, &out, &qe), 0);
    wm_buf_release(&out);
}

static void test_answer_max(void **state)
{
    wm_engine_query_opts_t o = {.answer_max = 10};
    wm_engine_query_error_t qe;
    wm_buf_t out;
    wm_buf_init(&out, 0);
    assert_int_equal(wm_engine_query(engine, "fast", "{}", 2, &o, NULL, &out, &qe), WM_ELIMIT);
    assert_true(qe.msg[0] != '\0');
    o.answer_max = 0;
    wm_buf_reset(&out);
    assert_int_equal(wm_engine_query(engine, "fast", "{}", 2, &o, NULL, &out, &qe), 0);
    wm_buf_putc(&out, 0);
    assert_string_equal(out.data, "{\"rows\":[1,2,3,4,5,6,7,8,9,10]}");
    wm_buf_release(&out);
}

/* Shutdown: running queries are cancelled and new ones refused. */
static void test_stop(void **state)
{
    runner_t r = {.id = "held-stop"};
    assert_int_equal(pthread_create(&r.t, NULL, run_slow, &r), 0);
    wait_running(1);
    wm_engine_queries_stop(engine);
    pthread_join(r.t, NULL);
    assert_int_equal(r.rc, WM_ECLOSED);
    wm_engine_query_error_t qe;
    wm_buf_t out;
    wm_buf_init(&out, 0);
    assert_int_equal(wm_engine_query(engine, "fast", "{}", 2, NULL, NULL, &out, &qe), WM_ECLOSED);
    assert_non_null(strstr(qe.msg, "shutting down"));
    wm_buf_release(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_list_and_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_running_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_answer_max, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
