/*
 * test_rt_codec.c - the stored forms of journey instances, user/journey
 * rows and event index entries: round trips, the format 1 rows of older
 * stores still read, every truncation or bad format byte rejected; and the
 * partition name table those forms refer to.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "journey/rt_internal.h"
#include "store/evidx.h"
#include "store/names.h"

static wm_inst_t sample(void)
{
    wm_inst_t in;
    memset(&in, 0, sizeof in);
    in.id = (1ull << 48) | 42;
    in.user_id = 123456789;
    in.version = 3;
    in.node = 7;
    in.state = ST_WAIT_EVENT;
    in.arm = 2;
    in.converted = 1;
    in.control = 0;
    in.steps = 11;
    in.entered_ms = 1795559494649;
    in.node_since_ms = 1795563155150;
    in.due_ms = INT64_MAX;
    in.goal_deadline_ms = -5;
    in.entry_pos.seq = 99;
    in.entry_pos.file = 4;
    in.entry_pos.offset = 1u << 30;
    in.jid = 3;
    strcpy(in.match, "000001");
    strcpy(in.item, "");
    return in;
}

/* A temporary LMDB environment with a name table. */
typedef struct names_env {
    char dir[64];
    MDB_env *env;
    MDB_txn *txn;
    wm_names_t *names;
} names_env_t;

static void names_env_open(names_env_t *ne, bool fresh)
{
    if (fresh) {
        strcpy(ne->dir, "/tmp/wm_test_names.XXXXXX");
        assert_non_null(mkdtemp(ne->dir));
    }
    assert_int_equal(mdb_env_create(&ne->env), 0);
    assert_int_equal(mdb_env_set_maxdbs(ne->env, 4), 0);
    assert_int_equal(mdb_env_open(ne->env, ne->dir, MDB_NOSYNC, 0644), 0);
    assert_int_equal(mdb_txn_begin(ne->env, NULL, 0, &ne->txn), 0);
    assert_int_equal(wm_names_open(ne->txn, "names", &ne->names), 0);
}

static void names_env_close(names_env_t *ne, bool remove_dir)
{
    if (ne->txn)
        mdb_txn_abort(ne->txn);
    wm_names_close(ne->names);
    mdb_env_close(ne->env);
    if (remove_dir) {
        char path[128];
        snprintf(path, sizeof path, "%s/data.mdb", ne->dir);
        unlink(path);
        snprintf(path, sizeof path, "%s/lock.mdb", ne->dir);
        unlink(path);
        rmdir(ne->dir);
    }
}

static void commit(names_env_t *ne)
{
    assert_int_equal(mdb_txn_commit(ne->txn), 0);
    wm_names_committed(ne->names);
    assert_int_equal(mdb_txn_begin(ne->env, NULL, 0, &ne->txn), 0);
}

#define JOURNEY "default\0fund_sip_companion"
#define JOURNEY_LEN (sizeof JOURNEY - 1)

static void test_names_assign_abort_reload(void **state)
{
    names_env_t ne;
    names_env_open(&ne, true);
    uint32_t a, b, c;
    char out[WM_NAME_BYTES_MAX + 1];
    assert_int_equal(wm_names_assign(ne.names, ne.txn, "default", 7, &a), 0);
    assert_int_equal(wm_names_assign(ne.names, ne.txn, JOURNEY, JOURNEY_LEN, &b), 0);
    assert_int_equal(wm_names_assign(ne.names, ne.txn, "default", 7, &c), 0);
    assert_int_equal(a, 1);
    assert_int_equal(b, 2);
    assert_int_equal(c, 1);
    commit(&ne);
    /* an id of an aborted transaction is forgotten and handed out again */
    assert_int_equal(wm_names_assign(ne.names, ne.txn, "lost", 4, &c), 0);
    assert_int_equal(c, 3);
    mdb_txn_abort(ne.txn);
    wm_names_aborted(ne.names);
    assert_false(wm_names_find(ne.names, "lost", 4, &c));
    assert_int_equal(wm_names_get(ne.names, 3, out, sizeof out), -1);
    assert_int_equal(mdb_txn_begin(ne.env, NULL, 0, &ne.txn), 0);
    assert_int_equal(wm_names_assign(ne.names, ne.txn, "other", 5, &c), 0);
    assert_int_equal(c, 3);
    commit(&ne);
    names_env_close(&ne, false);
    /* reopened: the same ids */
    names_env_open(&ne, false);
    assert_true(wm_names_find(ne.names, JOURNEY, JOURNEY_LEN, &c));
    assert_int_equal(c, 2);
    assert_int_equal(wm_names_get(ne.names, 2, out, sizeof out), (int)JOURNEY_LEN);
    assert_memory_equal(out, JOURNEY, JOURNEY_LEN);
    assert_int_equal(wm_names_get(ne.names, 3, out, sizeof out), 5);
    assert_string_equal(out, "other");
    assert_int_equal(wm_names_get(ne.names, 0, out, sizeof out), -1);
    assert_int_equal(wm_names_get(ne.names, 2, out, 4), -1); /* does not fit */
    names_env_close(&ne, true);
}

static void test_instance_round_trip(void **state)
{
    wm_inst_t in = sample(), out;
    unsigned char buf[WM_INST_ENC_MAX];
    size_t n = wm__inst_encode(&in, buf);
    assert_true(n < 50);   /* compact: the struct is ~350 bytes, format 1 was ~120 */
    assert_true(wm__inst_decode(NULL, in.id, buf, n, &out));
    assert_memory_equal(&in, &out, sizeof in);
    /* every optional field absent, and extreme times */
    in.due_ms = 5;
    in.goal_deadline_ms = 0;
    in.entered_ms = INT64_MIN;
    in.node_since_ms = INT64_MAX - 1;
    memset(&in.entry_pos, 0, sizeof in.entry_pos);
    memset(in.match, 0, sizeof in.match);
    n = wm__inst_encode(&in, buf);
    assert_true(wm__inst_decode(NULL, in.id, buf, n, &out));
    assert_memory_equal(&in, &out, sizeof in);
    /* longest names still fit the bound */
    memset(in.match, 'm', RT_NAME_MAX - 1);
    memset(in.item, 'i', RT_NAME_MAX - 1);
    in.match[RT_NAME_MAX - 1] = in.item[RT_NAME_MAX - 1] = 0;
    in.user_id = in.entry_pos.seq = in.entry_pos.offset = UINT64_MAX;
    in.jid = in.version = in.node = in.steps = in.entry_pos.file = UINT32_MAX;
    in.goal_deadline_ms = INT64_MIN;
    n = wm__inst_encode(&in, buf);
    assert_true(n <= WM_INST_ENC_MAX);
    assert_true(wm__inst_decode(NULL, in.id, buf, n, &out));
    assert_memory_equal(&in, &out, sizeof in);
}

/* The fixed-width form stores written before format 2 hold. */
static size_t encode_format_1(const wm_inst_t *in, unsigned char *buf)
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
#undef PUT
    for (int i = 0; i < 4; i++) {
        *p++ = (unsigned char)strlen(names[i]);
        memcpy(p, names[i], strlen(names[i]));
        p += strlen(names[i]);
    }
    return (size_t)(p - buf);
}

static void test_instance_names_and_format_1(void **state)
{
    names_env_t ne;
    names_env_open(&ne, true);
    wm_inst_t in = sample(), out;
    assert_int_equal(wm_names_assign(ne.names, ne.txn, "default", 7, &in.jid), 0);
    assert_int_equal(wm_names_assign(ne.names, ne.txn, JOURNEY, JOURNEY_LEN, &in.jid), 0);
    strcpy(in.project, "default");
    strcpy(in.key, "fund_sip_companion");
    unsigned char buf[WM_INST_ENC_MAX];
    size_t n = wm__inst_encode(&in, buf);
    assert_true(wm__inst_decode(ne.names, in.id, buf, n, &out));
    assert_memory_equal(&in, &out, sizeof in);
    /* an id missing from the table is a damaged row */
    wm_inst_t stray = in;
    stray.jid = 77;
    n = wm__inst_encode(&stray, buf);
    assert_false(wm__inst_decode(ne.names, in.id, buf, n, &out));
    /* format 1: names in the row; the journey's id is looked up */
    n = encode_format_1(&in, buf);
    assert_true(wm__inst_decode(ne.names, in.id, buf, n, &out));
    assert_memory_equal(&in, &out, sizeof in);
    assert_false(wm__inst_decode(ne.names, in.id + 1, buf, n, &out)); /* not its key */
    for (size_t cut = 0; cut < n; cut++)
        assert_false(wm__inst_decode(ne.names, in.id, buf, cut, &out));
    strcpy(in.key, "no_id_yet");
    n = encode_format_1(&in, buf);
    assert_true(wm__inst_decode(ne.names, in.id, buf, n, &out));
    assert_int_equal(out.jid, 0);
    assert_string_equal(out.key, "no_id_yet");
    names_env_close(&ne, true);
}

static void test_instance_rejects_damage(void **state)
{
    wm_inst_t in = sample(), out;
    unsigned char buf[WM_INST_ENC_MAX + 1];
    size_t n = wm__inst_encode(&in, buf);
    for (size_t cut = 0; cut < n; cut++)
        assert_false(wm__inst_decode(NULL, in.id, buf, cut, &out));
    buf[n] = 0;
    assert_false(wm__inst_decode(NULL, in.id, buf, n + 1, &out)); /* trailing bytes */
    buf[0] = 99;
    assert_false(wm__inst_decode(NULL, in.id, buf, n, &out)); /* unknown format */
}

static void test_juser_round_trip(void **state)
{
    wm_juser_t ju, out;
    memset(&ju, 0, sizeof ju);
    ju.live[0] = 5;
    ju.live[3] = (3ull << 48) | 9; /* slots are compacted on the way through */
    ju.last_entered_ms = 1795559494649;
    ju.last_exit_ms = 1795559494649 + 2000;
    ju.entries = 4;
    ju.cond_state = 1;
    unsigned char buf[WM_JUSER_ENC_MAX];
    size_t n = wm__juser_encode(&ju, buf);
    assert_int_equal(n, 1 + 1 + 2 + 2 + 6 + 2 + 1 + 1);
    assert_true(wm__juser_decode(buf, n, &out));
    assert_int_equal(out.live[0], 5);
    assert_int_equal(out.live[1], (3ull << 48) | 9);
    assert_int_equal(out.live[3], 0);
    assert_int_equal(out.last_entered_ms, ju.last_entered_ms);
    assert_int_equal(out.last_exit_ms, ju.last_exit_ms);
    assert_int_equal(out.entries, 4);
    assert_int_equal(out.cond_state, 1);
    for (size_t cut = 0; cut < n; cut++)
        assert_false(wm__juser_decode(buf, cut, &out));
    buf[1] = WM_JUSER_LIVE_MAX + 1;
    assert_false(wm__juser_decode(buf, n, &out));
}

static void test_juser_format_1(void **state)
{
    unsigned char buf[64], *p = buf;
    uint64_t live = (1ull << 48) | 7;
    int64_t entered = 1000, exited = 2000;
    uint32_t entries = 4;
    *p++ = 1, *p++ = 1;
    memcpy(p, &live, 8), p += 8;
    memcpy(p, &entered, 8), p += 8;
    memcpy(p, &exited, 8), p += 8;
    memcpy(p, &entries, 4), p += 4;
    *p++ = 1;
    wm_juser_t out;
    assert_true(wm__juser_decode(buf, (size_t)(p - buf), &out));
    assert_int_equal(out.live[0], live);
    assert_int_equal(out.last_entered_ms, 1000);
    assert_int_equal(out.last_exit_ms, 2000);
    assert_int_equal(out.entries, 4);
    assert_int_equal(out.cond_state, 1);
    assert_false(wm__juser_decode(buf, (size_t)(p - buf) - 1, &out));
}

static void assert_pos_equal(const wm_log_pos_t *a, const wm_log_pos_t *b)
{
    assert_int_equal(a->seq, b->seq);
    assert_int_equal(a->file, b->file);
    assert_int_equal(a->offset, b->offset);
}

static void test_event_index_forms(void **state)
{
    unsigned char kb[WM_EVIDX_KEY_BYTES], vb[WM_EVIDX_VALUE_MAX];
    wm_log_pos_t pos = {.seq = 77, .file = 3, .offset = 60000000}, got;
    uint64_t user;
    int64_t time_ms;
    wm_evidx_key(kb, 42, -1, pos.seq);
    MDB_val k = {sizeof kb, kb}, v = {wm_evidx_value(vb, &pos), vb};
    assert_int_equal(v.mv_size, 5);
    assert_true(wm_evidx_decode(&k, &v, &user, &time_ms, &got));
    assert_int_equal(user, 42);
    assert_int_equal(time_ms, -1);
    assert_pos_equal(&got, &pos);
    /* the 12-byte form of older stores */
    memcpy(vb, &pos.file, 4);
    memcpy(vb + 4, &pos.offset, 8);
    v.mv_size = 12;
    assert_true(wm_evidx_decode(&k, &v, &user, &time_ms, &got));
    assert_pos_equal(&got, &pos);
    /* a varint pair of exactly 12 bytes is written in that form */
    pos.file = 1u << 21;
    pos.offset = 1ull << 50;
    v.mv_size = wm_evidx_value(vb, &pos);
    assert_int_equal(v.mv_size, 12);
    assert_true(wm_evidx_decode(&k, &v, &user, &time_ms, &got));
    assert_pos_equal(&got, &pos);
    /* damage */
    pos = (wm_log_pos_t){.seq = 77, .file = 3, .offset = 60000000};
    v.mv_size = wm_evidx_value(vb, &pos) - 1;
    assert_false(wm_evidx_decode(&k, &v, &user, &time_ms, &got));
    k.mv_size = 16;
    v.mv_size++;
    assert_false(wm_evidx_decode(&k, &v, &user, &time_ms, &got));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_assign_abort_reload),
        cmocka_unit_test(test_instance_round_trip),
        cmocka_unit_test(test_instance_names_and_format_1),
        cmocka_unit_test(test_instance_rejects_damage),
        cmocka_unit_test(test_juser_round_trip),
        cmocka_unit_test(test_juser_format_1),
        cmocka_unit_test(test_event_index_forms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
