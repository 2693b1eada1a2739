/*
 * test_compact_crash.c - the compactor killed with SIGKILL at random moments.
 *
 * A child process appends batches of records to a real log, compacts them
 * into parts, lets small parts merge and now and then merges everything;
 * the parent kills it after a random delay, then reopens the store and
 * checks: the manifest is valid (the store opens), no file but the manifest
 * and the parts it lists is left after open, every listed part verifies,
 * and the parts' rows are exactly the log's track events up to
 * compacted_seq (nothing lost, nothing twice). CRASH_ITERATIONS (default
 * 20) and CRASH_SEED set the rounds and the random seed.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>

#include "analytics/an_internal.h"
#include "an_helpers.h"
#include "store/payload.h"
#include "waymark/log.h"
#include "waymark/record.h"

static char g_dir[512], g_log[600], g_an[600];

static int open_log(wm_log_t **log)
{
    wm_log_opts_t o = {.dir = g_log, .fsync_mode = WM_FSYNC_NEVER, .file_bytes = 1 << 20};
    return wm_log_open(&o, log);
}

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Appends n records: mostly track events, some merges, profile records and
 * unreadable ones. */
static int append_batch(wm_log_t *log, uint64_t *rs, int n)
{
    unsigned char buf[1024];
    for (int i = 0; i < n; i++) {
        uint64_t r = rnd(rs);
        wm_payload_hdr_t h = {.kind = WM_PAYLOAD_RECORD, .rec_type = WM_REC_TRACK, .user_id = r % 500,
                              .time_ms = 1700000000000ll + (int64_t)(r >> 40) % 86400000};
        char json[512];
        int jl;
        switch (r % 20) {
        case 0:
            h.kind = WM_PAYLOAD_MERGE;
            h.from_user = 1000 + r % 77;
            jl = snprintf(json, sizeof json, "{\"event\":\"$SignUp\",\"distinct_id\":\"d\",\"time\":1}");
            break;
        case 1:
            h.rec_type = WM_REC_PROFILE_SET;
            jl = snprintf(json, sizeof json, "{\"type\":\"profile_set\",\"properties\":{\"p\":1}}");
            break;
        case 2:
            jl = snprintf(json, sizeof json, "{not json");
            break;
        default:
            h.rec_type = r % 7 == 0 ? WM_REC_TRACK_SIGNUP : WM_REC_TRACK;
            jl = snprintf(json, sizeof json,
                          "{\"type\":\"track\",\"event\":\"E%u\",\"properties\":{\"k\":%lld,\"s\":\"v%u\"%s%s}}",
                          (unsigned)(r % 6), (long long)(r % 100000) - 50000, (unsigned)(r % 1000),
                          r % 3 ? "" : ",\"b\":true", r % 5 ? "" : ",\"x\":1.5");
        }
        memcpy(buf, &h, sizeof h);
        memcpy(buf + sizeof h, json, (size_t)jl);
        int rc = wm_log_append(log, buf, (uint32_t)(sizeof h + (size_t)jl), NULL);
        if (rc)
            return rc;
    }
    return wm_log_sync(log, NULL);
}

/* The child: appends, compacts and merges until it is killed. */
static void child(uint64_t seed)
{
    wm_log_t *log;
    wm_astore_t *s;
    if (open_log(&log) || wm_astore_open(g_an, 0, &s))
        _exit(3);
    uint64_t rs = seed | 1;
    for (uint64_t loop = 0;; loop++) {
        if (append_batch(log, &rs, 50 + (int)(rnd(&rs) % 300)))
            _exit(4);
        bool did;
        if (wm_astore_compact(s, log, 0, &did))
            _exit(5);
        if (loop % 7 == 6 && wm_astore_merge_all(s))
            _exit(6);
    }
}

/* The log's track events with seq <= upto, as lines. */
static void log_lines(wm_log_t *log, uint64_t upto, an_rows_t *out)
{
    wm_log_iter_t *it;
    assert_int_equal(wm_log_iter_open(log, 1, &it), 0);
    wm_arena_t a;
    wm_arena_init(&a, 1 << 14);
    for (;;) {
        wm_log_pos_t pos;
        const void *payload;
        uint32_t len;
        int r = wm_log_iter_next(it, &pos, &payload, &len);
        assert_true(r >= 0);
        if (r == 0 || pos.seq > upto)
            break;
        wm_payload_hdr_t h;
        assert_true(len >= sizeof h);
        memcpy(&h, payload, sizeof h);
        if (h.kind != WM_PAYLOAD_RECORD || (h.rec_type != WM_REC_TRACK && h.rec_type != WM_REC_TRACK_SIGNUP))
            continue;
        wm_arena_reset(&a);
        wm_json_t *root;
        if (wm_json_parse(&a, (const char *)payload + sizeof h, len - sizeof h, &root, NULL))
            continue;   /* unreadable: never compacted into a row */
        const wm_json_t *ev = wm_json_get(root, "event"), *props = wm_json_get(root, "properties");
        char *ent[8];
        size_t n = 0;
        for (const wm_json_t *v = props ? props->u.child : NULL; v; v = v->next) {
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)v->key_len, v->key);
            if (v->type == WM_JSON_NUMBER)
                ent[n++] = an_entry_num(name, v->is_int ? (double)v->i64 : v->u.num);
            else if (v->type == WM_JSON_STRING)
                ent[n++] = an_entry(name, 'S', v->u.str, v->len);
            else if (v->type == WM_JSON_TRUE)
                ent[n++] = an_entry(name, 'B', "true", 4);
        }
        an_rows_push(out, an_row_line(h.user_id, h.time_ms, pos.seq, ev->u.str, ent, n));
    }
    wm_log_iter_close(it);
    wm_arena_release(&a);
}

/* After a kill: the checks of the header. Returns compacted_seq. */
static uint64_t verify_after_crash(int iter, int *strays)
{
    {
        DIR *d = opendir(g_an);
        struct dirent *e;
        while (d && (e = readdir(d)))
            if (e->d_name[0] != '.' && strstr(e->d_name, ".tmp"))
                (*strays)++;
        if (d)
            closedir(d);
    }
    wm_astore_t *s;
    int rc = wm_astore_open(g_an, 0, &s);
    if (rc) {
        print_error("iteration %d: store does not open: %d\n", iter, rc);
        fail();
    }
    wm_aversion_t *v = wm__astore_snapshot(s);
    /* only the manifest and its parts are left */
    DIR *d = opendir(g_an);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "MANIFEST"))
            continue;
        bool listed = false;
        for (uint32_t i = 0; i < v->n; i++)
            listed |= !strcmp(v->parts[i]->name, e->d_name);
        if (!listed) {
            print_error("iteration %d: %s left after open\n", iter, e->d_name);
            fail();
        }
    }
    if (d)
        closedir(d);
    an_rows_t got = {0}, want = {0};
    char err[512];
    for (uint32_t i = 0; i < v->n; i++) {
        if (wm_part_verify(v->parts[i]->part, err, sizeof err)) {
            print_error("iteration %d: %s\n", iter, err);
            fail();
        }
        assert_int_equal(an_part_lines(v->parts[i]->part, &got, err, sizeof err), 0);
    }
    uint64_t cseq = v->compacted_seq;
    wm__aversion_release(v);
    wm_astore_close(s);

    wm_log_t *log;
    assert_int_equal(open_log(&log), 0);
    assert_true(wm_log_durable_seq(log) >= cseq);
    log_lines(log, cseq, &want);
    wm_log_close(log);
    an_rows_sort(&got);
    an_rows_sort(&want);
    for (size_t i = 0; i < got.n && i < want.n; i++)
        if (strcmp(got.row[i], want.row[i])) {
            print_error("iteration %d, row %zu:\n  got  %s\n  want %s\n", iter, i, got.row[i], want.row[i]);
            fail();
        }
    if (got.n != want.n) {
        print_error("iteration %d: %zu rows in the parts, %zu track events up to seq %llu\n", iter, got.n, want.n,
                    (unsigned long long)cseq);
        fail();
    }
    an_rows_free(&got);
    an_rows_free(&want);
    return cseq;
}

static void test_kill_compactor(void **state)
{
    (void)state;
    const char *it_env = getenv("CRASH_ITERATIONS"), *seed_env = getenv("CRASH_SEED");
    int iters = it_env ? atoi(it_env) : 20;
    uint64_t seed = seed_env ? strtoull(seed_env, NULL, 10) : (uint64_t)time(NULL);
    printf("compact crash: %d iterations, CRASH_SEED=%llu\n", iters, (unsigned long long)seed);
    an_mkdtemp(g_dir, sizeof g_dir, "compact-crash");
    snprintf(g_log, sizeof g_log, "%s/log", g_dir);
    snprintf(g_an, sizeof g_an, "%s/an", g_dir);
    uint64_t rs = seed * 2654435761u + 1;
    {
        wm_log_t *log;
        assert_int_equal(open_log(&log), 0);
        assert_int_equal(append_batch(log, &rs, 2000), 0);
        wm_log_close(log);
    }
    uint64_t prev = 0;
    int strays = 0, advanced = 0;
    for (int i = 0; i < iters; i++) {
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            /* the compactor's warnings about unreadable records: not needed */
            if (!freopen("/dev/null", "w", stderr))
                _exit(2);
            child(rnd(&rs));
        }
        usleep((useconds_t)(2000 + rnd(&rs) % 250000));
        kill(pid, SIGKILL);
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        if (!WIFSIGNALED(st)) {
            print_error("iteration %d: the child stopped by itself (status %d)\n", i, WEXITSTATUS(st));
            fail();
        }
        uint64_t cseq = verify_after_crash(i, &strays);
        assert_true(cseq >= prev);
        advanced += cseq > prev;
        prev = cseq;
    }
    printf("compact crash: compacted_seq %llu, advanced in %d of %d rounds, %d temporary files swept\n",
           (unsigned long long)prev, advanced, iters, strays);
    assert_true(advanced > 0);
    an_rmrf(g_dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_compactor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
