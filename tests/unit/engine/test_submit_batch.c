/*
 * test_submit_batch.c - one submitted batch mixing stored, rejected and
 * duplicate records, merges and two projects: the payloads share one block
 * across the partitions' jobs, the token check is remembered within a
 * batch, and identities resolve through a tiny resolution cache (emptied
 * over and over). Each record must end up stored once under the right user,
 * or be rejected naming its record and field, whatever its neighbours are.
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

#include "waymark/arena.h"
#include "waymark/buf.h"
#include "waymark/engine.h"
#include "waymark/error.h"
#include "waymark/ingest.h"

#define USERS 40

typedef struct fx {
    char dir[64];
    wm_engine_t *e;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/wm_submit_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    wm_engine_opts_t o = {.data_dir = f->dir, .partitions = 2, .admin_key = "submit_batch_admin_key",
                          .identity_cache = 5};
    assert_int_equal(wm_engine_open(&o, &f->e), 0);
    for (int i = 0; i < 200 && !wm_engine_ready(f->e); i++)
        usleep(10000);
    assert_true(wm_engine_ready(f->e));
    assert_int_equal(wm_engine_create_project(f->e, "bank", "bank-token"), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    wm_engine_close(f->e);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* Submits NDJSON lines as one batch; errs[i] gets record i's error code ("" if none). */
static void submit(fx_t *f, const char *body, wm_submit_result_t *res, char errs[][40],
                   char fields[][160], uint32_t max)
{
    wm_arena_t a;
    wm_arena_init(&a, 1 << 16);
    int64_t now = wm_engine_now(f->e);
    wm_rec_ctx_t ctx = {.project = "default", .receive_time_ms = now, .now_ms = now};
    wm_batch_t b;
    char msg[200];
    assert_int_equal(wm_native_decode(&a, body, strlen(body), &ctx, &b, msg, sizeof msg), 0);
    wm_submit_opts_t so = {.source = "import"};
    assert_int_equal(wm_engine_submit(f->e, &b, &so, res), 0);
    assert_true(b.n <= max);
    for (uint32_t i = 0; i < b.n; i++) {
        snprintf(errs[i], 40, "%s", b.errors[i].code ? b.errors[i].code : "");
        snprintf(fields[i], 160, "%s", b.errors[i].code ? b.errors[i].field : "");
    }
    assert_int_equal(wm_engine_wait_applied(f->e, 5000), 0);
    wm_arena_release(&a);
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* The stored events of a user (found by login id) that carry `mark`. */
static int events_marked(fx_t *f, const char *project, const char *login, const char *mark)
{
    uint64_t user = 0;
    if (wm_engine_find_user(f->e, project, login, "login_id", &user))
        return -1;
    wm_buf_t out;
    wm_buf_init(&out, 0);
    assert_int_equal(wm_engine_user_events_json(f->e, project, user, 1000, &out), 0);
    wm_buf_putc(&out, 0);
    int n = count_of(out.data, mark);
    wm_buf_release(&out);
    return n;
}

static void test_mixed_batch(void **state)
{
    fx_t *f = *state;
    int64_t t = wm_engine_now(f->e) - 60000;
    wm_buf_t body;
    wm_buf_init(&body, 0);
    /* per user: an anonymous view, the signup merging it, a login view, in
     * the middle a rejected record, a wrong token, a retry of the view, and
     * a record of another project */
    for (int u = 0; u < USERS; u++) {
        wm_buf_printf(&body,
                      "{\"type\":\"track\",\"event\":\"View\",\"distinct_id\":\"anon%d\",\"time\":%lld,"
                      "\"_track_id\":%d,\"properties\":{\"mark\":\"a%d-\"}}\n",
                      u, (long long)t + u, 1000 + u, u);
        wm_buf_printf(&body,
                      "{\"type\":\"track_signup\",\"event\":\"$SignUp\",\"distinct_id\":\"user%d\","
                      "\"original_id\":\"anon%d\",\"time\":%lld,\"properties\":{}}\n",
                      u, u, (long long)t + u + 1);
        wm_buf_printf(&body,
                      "{\"type\":\"track\",\"event\":\"View\",\"distinct_id\":\"user%d\",\"time\":%lld,"
                      "\"properties\":{\"$is_login_id\":true,\"bad name\":1}}\n",
                      u, (long long)t + u + 2);
        wm_buf_printf(&body,
                      "{\"type\":\"track\",\"event\":\"View\",\"distinct_id\":\"user%d\",\"time\":%lld,"
                      "\"project\":\"bank\",\"token\":\"%s\",\"properties\":{\"$is_login_id\":true,"
                      "\"mark\":\"b%d-\"}}\n",
                      u, (long long)t + u + 3, u % 3 == 2 ? "wrong" : "bank-token", u);
        wm_buf_printf(&body,
                      "{\"type\":\"track\",\"event\":\"View\",\"distinct_id\":\"anon%d\",\"time\":%lld,"
                      "\"_track_id\":%d,\"properties\":{\"mark\":\"a%d-\"}}\n",
                      u, (long long)t + u, 1000 + u, u);
        wm_buf_printf(&body,
                      "{\"type\":\"track\",\"event\":\"View\",\"distinct_id\":\"user%d\",\"time\":%lld,"
                      "\"properties\":{\"$is_login_id\":true,\"mark\":\"l%d-\"}}\n",
                      u, (long long)t + u + 4, u);
    }
    wm_submit_result_t res;
    static char errs[USERS * 6][40], fields[USERS * 6][160];
    submit(f, body.data, &res, errs, fields, USERS * 6);
    int wrong = 0;
    for (int u = 0; u < USERS; u++)
        wrong += u % 3 == 2;
    assert_int_equal(res.duplicates, USERS);
    assert_int_equal(res.rejected, USERS + wrong);
    assert_int_equal(res.accepted, USERS * 4 - wrong);
    for (int u = 0; u < USERS; u++) {
        const int r = u * 6;
        assert_string_equal(errs[r], "");
        assert_string_equal(errs[r + 1], "");
        assert_string_equal(errs[r + 2], "invalid_name");
        assert_string_equal(fields[r + 2], "properties.bad name");
        assert_string_equal(errs[r + 3], u % 3 == 2 ? "invalid_token" : "");
        assert_string_equal(errs[r + 4], ""); /* a retry: ok, not stored */
        assert_string_equal(errs[r + 5], "");
    }
    /* the anonymous view was merged into the login user and is stored once */
    for (int u = 0; u < USERS; u++) {
        char login[16], m[16];
        snprintf(login, sizeof login, "user%d", u);
        snprintf(m, sizeof m, "\"a%d-\"", u);
        assert_int_equal(events_marked(f, "default", login, m), 1);
        snprintf(m, sizeof m, "\"l%d-\"", u);
        assert_int_equal(events_marked(f, "default", login, m), 1);
        snprintf(m, sizeof m, "\"b%d-\"", u);
        assert_int_equal(events_marked(f, "bank", login, m), u % 3 == 2 ? -1 : 1);
    }
    /* the whole batch again: the retries are all recognised, users unchanged */
    submit(f, body.data, &res, errs, fields, USERS * 6);
    assert_int_equal(res.duplicates, USERS * 2);
    for (int u = 0; u < USERS; u++) {
        char login[16], m[16];
        snprintf(login, sizeof login, "user%d", u);
        snprintf(m, sizeof m, "\"a%d-\"", u);
        assert_int_equal(events_marked(f, "default", login, m), 1);
        snprintf(m, sizeof m, "\"l%d-\"", u);
        assert_int_equal(events_marked(f, "default", login, m), 2);
    }
    wm_buf_release(&body);
}

/* Records of one project next to each other, tokens alternating: the
 * remembered pass of one never covers the next one's token. */
static void test_tokens_side_by_side(void **state)
{
    fx_t *f = *state;
    static const char *const tokens[] = {"bank-token", "wrong", "bank-token", "bank-tokens", NULL,
                                         "bank-token"};
    int64_t t = wm_engine_now(f->e) - 60000;
    wm_buf_t body;
    wm_buf_init(&body, 0);
    for (int i = 0; i < 6; i++) {
        wm_buf_printf(&body, "{\"type\":\"track\",\"event\":\"View\",\"distinct_id\":\"u%d\",\"time\":%lld,"
                             "\"project\":\"bank\",", i, (long long)t + i);
        if (tokens[i])
            wm_buf_printf(&body, "\"token\":\"%s\",", tokens[i]);
        wm_buf_puts(&body, "\"properties\":{}}\n");
    }
    wm_submit_result_t res;
    char errs[6][40], fields[6][160];
    submit(f, body.data, &res, errs, fields, 6);
    assert_int_equal(res.accepted, 3);
    assert_int_equal(res.rejected, 3);
    for (int i = 0; i < 6; i++)
        assert_string_equal(errs[i], tokens[i] && !strcmp(tokens[i], "bank-token") ? "" : "invalid_token");
    wm_buf_release(&body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mixed_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokens_side_by_side, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
