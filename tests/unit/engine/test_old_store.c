/*
 * test_old_store.c - a data directory whose partition state is in the stored
 * forms written before format 2 (JSON user rows, 12-byte event index values,
 * format 1 instances and user/journey rows keyed by names, no name table)
 * opens and works: the customer-360 answers are the same, waiting instances
 * keep their re-entry rules and their timers fire.
 *
 * The old store is made the way an upgrade meets one: the engine writes a
 * directory, then every row of the partitions is rewritten in the old form
 * (with the old encoders kept here) and the name table dropped.
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

#include "journey/rt_internal.h"
#include "store/evidx.h"
#include "store/names.h"
#include "waymark/engine.h"
#include "waymark/error.h"

#define USERS 6
#define DAY_MS 86400000LL

static const char *JOURNEY =
    "{\"key\":\"old_wait\",\"name\":\"old store\",\"entry\":{\"event\":\"Enter\"},"
    "\"nodes\":[{\"id\":\"wait\",\"type\":\"wait\",\"duration\":\"1d\",\"next\":\"end\"},"
    "{\"id\":\"end\",\"type\":\"exit\"}]}";

static wm_engine_t *open_engine(const char *dir)
{
    wm_engine_opts_t o = {.data_dir = dir, .partitions = 2, .admin_key = "old_store_admin_key",
                          .test_clock = true};
    wm_engine_t *e = NULL;
    assert_int_equal(wm_engine_open(&o, &e), 0);
    for (int i = 0; i < 200 && !wm_engine_ready(e); i++)
        usleep(10000);
    assert_true(wm_engine_ready(e));
    return e;
}

static void post(wm_engine_t *e, const char *event, int from, int to)
{
    wm_buf_t body;
    wm_buf_init(&body, 0);
    for (int u = from; u < to; u++)
        wm_buf_printf(&body, "{\"type\":\"track\",\"event\":\"%s\",\"distinct_id\":\"old%d\",\"time\":%lld,"
                             "\"properties\":{\"n\":%d}}\n",
                      event, u, (long long)wm_engine_now(e), u);
    wm_arena_t a;
    wm_arena_init(&a, 1 << 16);
    wm_rec_ctx_t ctx = {.project = "default", .receive_time_ms = wm_engine_now(e), .now_ms = wm_engine_now(e)};
    wm_batch_t batch;
    char err[200];
    assert_int_equal(wm_native_decode(&a, body.data, body.len, &ctx, &batch, err, sizeof err), 0);
    wm_submit_opts_t so = {.source = "native"};
    wm_submit_result_t res;
    assert_int_equal(wm_engine_submit(e, &batch, &so, &res), 0);
    assert_int_equal(res.accepted, (uint32_t)(to - from));
    assert_int_equal(wm_engine_wait_applied(e, 5000), 0);
    wm_arena_release(&a);
    wm_buf_release(&body);
}

/* A number after "field": in the journey report (the journey's own, or the
 * first node's when node is given). */
static long long report_value(wm_engine_t *e, const char *node, const char *field)
{
    wm_buf_t out;
    wm_buf_init(&out, 0);
    assert_int_equal(wm_engine_journey_report(e, "default", "old_wait", &out), 0);
    wm_buf_putc(&out, 0);
    const char *from = out.data;
    char pat[64];
    if (node) {
        snprintf(pat, sizeof pat, "{\"id\":\"%s\"", node);
        from = strstr(out.data, pat);
        assert_non_null(from);
    }
    snprintf(pat, sizeof pat, "\"%s\":", field);
    const char *at = strstr(from, pat);
    long long v = at ? strtoll(at + strlen(pat), NULL, 10) : -1;
    wm_buf_release(&out);
    return v;
}

static void wait_report(wm_engine_t *e, const char *node, const char *field, long long want)
{
    long long v = -1;
    for (int i = 0; i < 500 && (v = report_value(e, node, field)) != want; i++)
        usleep(10000);
    assert_int_equal(v, want);
}

typedef struct answers {
    char *user[USERS], *events[USERS];
} answers_t;

static char *take(wm_buf_t *b)
{
    wm_buf_putc(b, 0);
    char *s = strdup(b->data);
    wm_buf_release(b);
    return s;
}

/* The customer-360 answers of every user; the op events must be indexed. */
static void capture(wm_engine_t *e, answers_t *ans)
{
    for (int u = 0; u < USERS; u++) {
        char id[16];
        uint64_t user_id;
        snprintf(id, sizeof id, "old%d", u);
        assert_int_equal(wm_engine_find_user(e, "default", id, NULL, &user_id), 0);
        wm_buf_t b;
        for (int i = 0; i < 500; i++) {
            wm_buf_init(&b, 0);
            assert_int_equal(wm_engine_user_events_json(e, "default", user_id, 50, &b), 0);
            wm_buf_putc(&b, 0);
            if (strstr(b.data, "$JourneyEntered"))
                break;
            wm_buf_release(&b);
            usleep(10000);
        }
        ans->events[u] = take(&b);
        assert_non_null(strstr(ans->events[u], "$JourneyEntered"));
        wm_buf_init(&b, 0);
        assert_int_equal(wm_engine_user_json(e, "default", user_id, &b), 0);
        ans->user[u] = take(&b);
        assert_non_null(strstr(ans->user[u], "\"journey\":\"old_wait\""));
    }
}

static void free_answers(answers_t *ans)
{
    for (int u = 0; u < USERS; u++)
        free(ans->user[u]), free(ans->events[u]);
}

/* ---- the old stored forms ---- */

static size_t inst_format_1(const wm_inst_t *in, unsigned char *buf)
{
    unsigned char *p = buf;
    const char *names[4] = {in->project, in->key, in->match, in->item};
    *p++ = 1;
#define PUT(field, n) (memcpy(p, &(field), n), p += n)
    PUT(in->id, 8), PUT(in->user_id, 8), PUT(in->version, 4), PUT(in->node, 4);
    *p++ = in->state, *p++ = in->arm, *p++ = in->converted, *p++ = in->control;
    PUT(in->steps, 4), PUT(in->entered_ms, 8), PUT(in->node_since_ms, 8), PUT(in->due_ms, 8);
    PUT(in->goal_deadline_ms, 8), PUT(in->entry_pos.seq, 8), PUT(in->entry_pos.file, 4);
    PUT(in->entry_pos.offset, 8);
    for (int i = 0; i < 4; i++) {
        *p++ = (unsigned char)strlen(names[i]);
        memcpy(p, names[i], strlen(names[i]));
        p += strlen(names[i]);
    }
    return (size_t)(p - buf);
}

static size_t juser_format_1(const wm_juser_t *ju, unsigned char *buf)
{
    unsigned char *p = buf, *count;
    *p++ = 1;
    count = p++;
    *count = 0;
    for (int i = 0; i < WM_JUSER_LIVE_MAX; i++)
        if (ju->live[i]) {
            memcpy(p, &ju->live[i], 8), p += 8;
            (*count)++;
        }
    memcpy(p, &ju->last_entered_ms, 8), p += 8;
    memcpy(p, &ju->last_exit_ms, 8), p += 8;
    memcpy(p, &ju->entries, 4), p += 4;
    *p++ = ju->cond_state;
    return (size_t)(p - buf);
}

typedef struct row {
    unsigned char key[256], val[512];
    size_t klen, vlen;
} row_t;

/* Rewrites every row of dbi through fn (which fills the new key and value). */
static void rewrite(MDB_txn *txn, const char *dbi_name, wm_names_t *names,
                    void (*fn)(wm_names_t *names, const MDB_val *k, const MDB_val *v, row_t *out))
{
    MDB_dbi dbi;
    MDB_cursor *c;
    assert_int_equal(mdb_dbi_open(txn, dbi_name, 0, &dbi), 0);
    assert_int_equal(mdb_cursor_open(txn, dbi, &c), 0);
    row_t *rows = NULL;
    size_t n = 0;
    MDB_val k, v;
    for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        rows = realloc(rows, (n + 1) * sizeof *rows);
        fn(names, &k, &v, &rows[n++]);
    }
    mdb_cursor_close(c);
    assert_int_equal(mdb_drop(txn, dbi, 0), 0);
    for (size_t i = 0; i < n; i++) {
        MDB_val nk = {rows[i].klen, rows[i].key}, nv = {rows[i].vlen, rows[i].val};
        assert_int_equal(mdb_put(txn, dbi, &nk, &nv, 0), 0);
    }
    free(rows);
}

static void old_user_row(wm_names_t *names, const MDB_val *k, const MDB_val *v, row_t *out)
{
    const unsigned char *p = v->mv_data, *end = p + v->mv_size;
    uint64_t project = 0, first_seen = 0;
    char name[WM_NAME_BYTES_MAX + 1];
    assert_int_equal(p[0], 1);
    p++;
    assert_true(wm_get_varint(&p, end, &project) && wm_get_varint(&p, end, &first_seen));
    assert_true(wm_names_get(names, (uint32_t)project, name, sizeof name) > 0);
    memcpy(out->key, k->mv_data, out->klen = k->mv_size);
    out->vlen = (size_t)snprintf((char *)out->val, sizeof out->val, "{\"project\":\"%s\",\"first_seen_ms\":%lld}",
                                 name, (long long)wm_unzigzag(first_seen));
}

static void old_event_entry(wm_names_t *names, const MDB_val *k, const MDB_val *v, row_t *out)
{
    uint64_t user;
    int64_t time_ms;
    wm_log_pos_t pos = {0};
    assert_true(wm_evidx_decode(k, v, &user, &time_ms, &pos));
    assert_int_not_equal(v->mv_size, 12);
    memcpy(out->key, k->mv_data, out->klen = k->mv_size);
    memcpy(out->val, &pos.file, 4);
    memcpy(out->val + 4, &pos.offset, 8);
    out->vlen = 12;
}

static void old_instance(wm_names_t *names, const MDB_val *k, const MDB_val *v, row_t *out)
{
    wm_inst_t in;
    assert_true(wm__inst_decode(names, wm_get_be64(k->mv_data), v->mv_data, v->mv_size, &in));
    assert_int_equal(((const unsigned char *)v->mv_data)[0], 2);
    memcpy(out->key, k->mv_data, out->klen = k->mv_size);
    out->vlen = inst_format_1(&in, out->val);
}

static void old_juser_row(wm_names_t *names, const MDB_val *k, const MDB_val *v, row_t *out)
{
    const unsigned char *p = k->mv_data, *end = p + k->mv_size;
    uint64_t jid = 0;
    char name[WM_NAME_BYTES_MAX + 1];
    assert_int_equal(p[8], 0);
    p += 9;
    assert_true(wm_get_varint(&p, end, &jid) && p == end);
    int len = wm_names_get(names, (uint32_t)jid, name, sizeof name);
    assert_true(len > 0);
    memcpy(out->key, k->mv_data, 8);
    memcpy(out->key + 8, name, (size_t)len);
    out->klen = 8 + (size_t)len;
    wm_juser_t ju;
    assert_true(wm__juser_decode(v->mv_data, v->mv_size, &ju));
    out->vlen = juser_format_1(&ju, out->val);
}

static void make_old(const char *dir, uint32_t part)
{
    char path[512];
    snprintf(path, sizeof path, "%s/p%02u/state", dir, part);
    MDB_env *env;
    MDB_txn *txn;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
    assert_int_equal(mdb_env_set_mapsize(env, (size_t)64 << 30), 0);
    assert_int_equal(mdb_env_open(env, path, 0, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    wm_names_t *names;
    assert_int_equal(wm_names_open(txn, "names", &names), 0);
    rewrite(txn, "users", names, old_user_row);
    rewrite(txn, "events", names, old_event_entry);
    rewrite(txn, "j_inst", names, old_instance);
    rewrite(txn, "j_user", names, old_juser_row);
    MDB_dbi dbi;
    assert_int_equal(mdb_dbi_open(txn, "j_meta", 0, &dbi), 0);
    MDB_val k = {sizeof "juser_format" - 1, "juser_format"};
    assert_int_equal(mdb_del(txn, dbi, &k, NULL), 0);
    assert_int_equal(mdb_dbi_open(txn, "names", 0, &dbi), 0);
    assert_int_equal(mdb_drop(txn, dbi, 1), 0);
    wm_names_close(names);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static void test_old_store_opens_and_works(void **state)
{
    char dir[] = "/tmp/wm_test_old_store.XXXXXX";
    assert_non_null(mkdtemp(dir));
    wm_engine_t *e = open_engine(dir);
    bool valid = false;
    wm_buf_t out;
    wm_buf_init(&out, 0);
    assert_int_equal(wm_engine_journey_save(e, "default", "old_wait", JOURNEY, strlen(JOURNEY), &valid, &out), 0);
    assert_true(valid);
    assert_int_equal(wm_engine_journey_action(e, "default", "old_wait", "publish", "test", NULL, &out), 0);
    wm_buf_release(&out);
    post(e, "Hello", 0, USERS);
    post(e, "Enter", 0, USERS);
    wait_report(e, NULL, "entered", USERS);
    answers_t before, after;
    capture(e, &before);
    wm_engine_close(e);

    for (uint32_t part = 0; part < 2; part++)
        make_old(dir, part);

    e = open_engine(dir);
    capture(e, &after);
    for (int u = 0; u < USERS; u++) {
        assert_string_equal(after.user[u], before.user[u]);
        assert_string_equal(after.events[u], before.events[u]);
    }
    /* the old user/journey rows still hold the live instances: no second entry */
    post(e, "Enter", 0, 2);
    assert_int_equal(report_value(e, NULL, "entered"), USERS);
    /* new users enter next to the old rows */
    post(e, "Enter", USERS, USERS + 2);
    wait_report(e, NULL, "entered", USERS + 2);
    /* the old timers fire */
    assert_int_equal(wm_engine_clock_advance(e, 2 * DAY_MS), 0);
    wait_report(e, "wait", "passed", USERS + 2);
    wm_engine_close(e);
    free_answers(&before);
    free_answers(&after);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_old_store_opens_and_works),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
