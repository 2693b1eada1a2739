/*
 * test_query.c - the query engine on hand-made logs: identity merges across
 * partitions, the same answer from the log tail and from parts, a corrupt
 * block skipped and reported, the breakdown's recomputed $other, errors
 * naming the member, cancellation and the memory limit. The answers are
 * worked out by hand in the comments; tests/integration/test_analytics_oracle.py
 * compares every kind with an independent DuckDB computation.
 */
#include <fcntl.h>
#include <inttypes.h>
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

#include "store/payload.h"
#include "waymark/analytics.h"
#include "waymark/arena.h"
#include "waymark/error.h"
#include "waymark/json.h"
#include "waymark/record.h"

#define T0 1790784000000LL   /* 2026-10-01 00:00 +08:00 */
#define MIN 60000LL
#define DAY 86400000LL

typedef struct fx {
    char dir[256];
    wm_log_t *logs[2];
    wm_astore_t *stores[2];
    wm_query_src_t src;
    wm_arena_t a;
    wm_buf_t out;
} fx_t;

static void put(wm_log_t *log, const wm_payload_hdr_t *h, const char *json)
{
    size_t n = strlen(json);
    unsigned char *p = malloc(sizeof *h + n);
    memcpy(p, h, sizeof *h);
    memcpy(p + sizeof *h, json, n);
    wm_log_pos_t pos;
    assert_int_equal(wm_log_append(log, p, (uint32_t)(sizeof *h + n), &pos), 0);
    free(p);
}

static void event(fx_t *f, uint32_t part, uint64_t user, int64_t t, const char *name, const char *props)
{
    wm_payload_hdr_t h = {.kind = WM_PAYLOAD_RECORD, .rec_type = WM_REC_TRACK, .user_id = user, .time_ms = t};
    char json[1024];
    snprintf(json, sizeof json, "{\"type\":\"track\",\"event\":\"%s\",\"time\":%lld,\"properties\":%s}", name,
             (long long)t, props ? props : "{}");
    put(f->logs[part], &h, json);
}

static void merge(fx_t *f, uint32_t part, uint64_t from, uint32_t from_part, uint64_t into)
{
    wm_payload_hdr_t h = {.kind = WM_PAYLOAD_MERGE, .user_id = into, .from_user = from, .from_part = from_part};
    put(f->logs[part], &h, "{\"event\":\"$SignUp\",\"distinct_id\":\"x\",\"time\":0}");
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(f->dir, sizeof f->dir, "%s/wm-test-query-XXXXXX", tmp);
    assert_non_null(mkdtemp(f->dir));
    for (uint32_t p = 0; p < 2; p++) {
        char path[512];
        snprintf(path, sizeof path, "%s/log%u", f->dir, p);
        wm_log_opts_t o = {.dir = path, .fsync_mode = WM_FSYNC_NEVER};
        assert_int_equal(wm_log_open(&o, &f->logs[p]), 0);
        snprintf(path, sizeof path, "%s/a%u", f->dir, p);
        assert_int_equal(wm_astore_open(path, p, &f->stores[p]), 0);
    }
    f->src = (wm_query_src_t){.stores = f->stores, .logs = f->logs, .n_parts = 2};
    wm_arena_init(&f->a, 1 << 14);
    wm_buf_init(&f->out, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    for (uint32_t p = 0; p < 2; p++) {
        wm_astore_close(f->stores[p]);
        wm_log_close(f->logs[p]);
    }
    wm_arena_release(&f->a);
    wm_buf_release(&f->out);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* Runs a query; returns its status, the answer in f->out (NUL-terminated). */
static int run(fx_t *f, const char *kind, const char *req, wm_query_error_t *err)
{
    wm_json_t *j;
    wm_json_error_t je;
    assert_int_equal(wm_json_parse(&f->a, req, strlen(req), &j, &je), 0);
    wm_buf_reset(&f->out);
    int rc = wm_query_run(&f->src, kind, j, &f->out, err);
    wm_buf_putc(&f->out, 0);
    return rc;
}

static const char *answer(fx_t *f, const char *kind, const char *req)
{
    wm_query_error_t err;
    int rc = run(f, kind, req, &err);
    if (rc)
        fail_msg("%s: %d %s: %s", kind, rc, err.path, err.msg);
    return f->out.data;
}

static void sync_all(fx_t *f)
{
    for (uint32_t p = 0; p < 2; p++) {
        uint64_t d;
        assert_int_equal(wm_log_sync(f->logs[p], &d), 0);
    }
}

static void compact_all(fx_t *f)
{
    for (uint32_t p = 0; p < 2; p++) {
        bool did = true;
        while (did)
            assert_int_equal(wm_astore_compact(f->stores[p], f->logs[p], 0, &did), 0);
    }
}

/* Anonymous user 11 (partition 1) does A then, after user 20 (partition 0)
 * did B, C; 11 is merged into 20. The stream of 20 is A, B, C. */
static void history(fx_t *f)
{
    event(f, 1, 11, T0 + 1 * MIN, "A", "{\"ch\":\"app\"}");
    event(f, 0, 20, T0 + 2 * MIN, "B", "{\"ch\":\"h5\",\"amount\":10}");
    event(f, 1, 11, T0 + 3 * MIN, "C", "{\"ch\":\"app\",\"amount\":\"5\"}");
    merge(f, 0, 11, 1, 20);
    /* user 30: A, C a day later; user 31: A only */
    event(f, 0, 30, T0 + 10 * MIN, "A", "{\"ch\":\"mini\"}");
    event(f, 0, 30, T0 + DAY + 10 * MIN, "C", "{\"ch\":\"mini\"}");
    event(f, 1, 31, T0 + 20 * MIN, "A", "{\"ch\":\"wecom\"}");
    sync_all(f);
}

#define RANGE "\"from\":\"2026-10-01\",\"to\":\"2026-10-02\""

static void test_merge_across_partitions(void **state)
{
    fx_t *f = *state;
    history(f);
    /* A -> B -> C: only the merged customer 20 does all three */
    const char *a = answer(f, "funnel",
                           "{" RANGE ",\"steps\":[{\"event\":\"A\"},{\"event\":\"B\"},{\"event\":\"C\"}],"
                           "\"dropped_at\":1}");
    assert_non_null(strstr(a, "\"step\":1,\"name\":\"A\",\"users\":3"));
    assert_non_null(strstr(a, "\"step\":2,\"name\":\"B\",\"users\":1"));
    assert_non_null(strstr(a, "\"step\":3,\"name\":\"C\",\"users\":1"));
    assert_non_null(strstr(a, "\"median_ms\":60000"));   /* A 1m -> B 2m */
    assert_non_null(strstr(a, "\"dropped\":[30,31]"));
    /* distinct customers doing anything: 20 (with 11), 30, 31 */
    a = answer(f, "events", "{" RANGE ",\"series\":[{\"events\":[\"A\",\"B\",\"C\"],\"measure\":\"users\"}],"
                            "\"interval\":\"total\"}");
    assert_non_null(strstr(a, "\"totals\":[{\"series\":0,\"value\":3}]"));
    /* the export lists 11's events under 20, in time order */
    a = answer(f, "export", "{}");
    assert_non_null(strstr(a, "{\"user\":20,\"i\":0,\"time\":1790784060000,\"event\":\"A\""));
    assert_non_null(strstr(a, "{\"user\":20,\"i\":1,\"time\":1790784120000,\"event\":\"B\""));
    assert_non_null(strstr(a, "{\"user\":20,\"i\":2,\"time\":1790784180000,\"event\":\"C\""));
    assert_null(strstr(a, "\"user\":11,"));
}

static void test_tail_and_parts_agree(void **state)
{
    fx_t *f = *state;
    history(f);
    const char *reqs[][2] = {
        {"funnel", "{" RANGE ",\"steps\":[{\"event\":\"A\"},{\"event\":\"C\"}],\"breakdown\":{\"prop\":\"ch\"}}"},
        {"retention", "{" RANGE ",\"start\":{\"event\":\"A\"},\"return\":{\"event\":\"C\"},\"periods\":2}"},
        {"paths", "{" RANGE ",\"start\":{\"event\":\"A\"},\"depth\":3,\"session_gap\":\"0\"}"},
        {"events", "{" RANGE ",\"series\":[{\"events\":[\"B\",\"C\"],\"measure\":\"sum\",\"prop\":\"amount\"}]}"},
        {"export", "{}"},
    };
    for (size_t i = 0; i < sizeof reqs / sizeof *reqs; i++) {
        char *tail = strdup(answer(f, reqs[i][0], reqs[i][1]));
        compact_all(f);
        const char *parts = answer(f, reqs[i][0], reqs[i][1]);
        assert_string_equal(tail, parts);
        free(tail);
        /* events after the compaction come from the tail again */
        event(f, 0, 40 + i, T0 + 30 * MIN, "A", "{\"ch\":\"branch\"}");
        sync_all(f);
    }
    /* sum of amount over B and C: 10 and the numeric string "5" */
    const char *a = answer(f, "events", "{" RANGE ",\"series\":[{\"events\":[\"B\",\"C\"],\"measure\":\"sum\","
                                        "\"prop\":\"amount\"}],\"interval\":\"total\"}");
    assert_non_null(strstr(a, "\"totals\":[{\"series\":0,\"value\":15}]"));
}

/* The tail's scratch parts are kept between queries: what was appended since
 * is added, what a compaction sealed is dropped; answers stay exact. */
static void test_tail_cache(void **state)
{
    fx_t *f = *state;
    const char *q = "{" RANGE ",\"series\":[{\"event\":\"T\"}],\"interval\":\"total\"}";
    char want[64];
    for (int i = 1; i <= 20; i++) {
        event(f, (uint32_t)(i % 2), 100 + (uint64_t)i, T0 + i * MIN, "T", NULL);
        sync_all(f);
        if (i == 7 || i == 15)
            compact_all(f);
        snprintf(want, sizeof want, "\"totals\":[{\"series\":0,\"value\":%d}]", i);
        const char *a = answer(f, "events", q);
        if (!strstr(a, want))
            fail_msg("after %d events: %s", i, a);
    }
}

static void test_corrupt_block_skipped(void **state)
{
    fx_t *f = *state;
    history(f);
    compact_all(f);
    /* damage partition 1's part (users 11 and 31) inside its first column block */
    char path[600];
    snprintf(path, sizeof path, "%s/a1", f->dir);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "ls %s/*.part", path);
    FILE *ls = popen(cmd, "r");
    char part[600] = {0};
    assert_non_null(fgets(part, sizeof part, ls));
    pclose(ls);
    part[strcspn(part, "\n")] = 0;
    int fd = open(part, O_RDWR);
    assert_true(fd >= 0);
    unsigned char b;
    assert_int_equal(pread(fd, &b, 1, 16), 1);
    b ^= 0x5a;
    assert_int_equal(pwrite(fd, &b, 1, 16), 1);
    close(fd);
    /* the mapped part sees the change; a query reading the damaged column (the
     * user runs, first in the block) skips the block and says so */
    const char *a = answer(f, "events", "{" RANGE ",\"series\":[{\"event\":\"A\",\"measure\":\"users\"}],"
                                        "\"interval\":\"total\"}");
    assert_non_null(strstr(a, "\"warnings\":["));
    assert_non_null(strstr(a, "checksum"));
    /* partition 0's A (user 30) is still counted; partition 1's are lost with the block */
    assert_non_null(strstr(a, "\"totals\":[{\"series\":0,\"value\":1}]"));
    wm_astore_stats_t st;
    wm_astore_stats(f->stores[0], &st);
    wm_astore_stats_t st1;
    wm_astore_stats(f->stores[1], &st1);
    assert_true(st.corrupt_blocks + st1.corrupt_blocks >= 1);
}

static void test_other_recomputed(void **state)
{
    fx_t *f = *state;
    /* customer 50 does X with ch a, b, c; customer 51 with a only. Breakdown by
     * ch, limit 1, users: a has 2 and is kept; b and c are cut: $other holds
     * customer 50 once, not twice. */
    event(f, 0, 50, T0 + MIN, "X", "{\"ch\":\"a\"}");
    event(f, 0, 50, T0 + 2 * MIN, "X", "{\"ch\":\"b\"}");
    event(f, 0, 50, T0 + 3 * MIN, "X", "{\"ch\":\"c\"}");
    event(f, 1, 51, T0 + 4 * MIN, "X", "{\"ch\":\"a\"}");
    sync_all(f);
    const char *a = answer(f, "events", "{" RANGE ",\"series\":[{\"event\":\"X\",\"measure\":\"users\"}],"
                                        "\"interval\":\"total\",\"breakdown\":{\"prop\":\"ch\"},\"limit\":1}");
    assert_non_null(strstr(a, "{\"series\":0,\"group\":\"a\",\"value\":2}"));
    assert_non_null(strstr(a, "{\"series\":0,\"group\":\"$other\",\"value\":1}"));
}

static void test_errors_name_the_member(void **state)
{
    fx_t *f = *state;
    history(f);
    wm_query_error_t err;
    assert_int_equal(run(f, "nosuch", "{" RANGE "}", &err), WM_EINVAL);
    assert_string_equal(err.path, "kind");
    assert_int_equal(run(f, "funnel", "{" RANGE ",\"steps\":[{\"event\":\"A\"}]}", &err), WM_EINVAL);
    assert_string_equal(err.path, "steps");
    assert_int_equal(run(f, "funnel", "{\"from\":\"2026-10-03\",\"to\":\"2026-10-01\",\"steps\":[]}", &err),
                     WM_EINVAL);
    assert_string_equal(err.path, "to");
    assert_int_equal(run(f, "events", "{\"to\":\"2026-10-01\",\"series\":[{\"event\":\"A\"}]}", &err), WM_EINVAL);
    assert_string_equal(err.path, "from");
    assert_int_equal(run(f, "events", "{" RANGE ",\"series\":[{\"event\":\"A\"}],\"where\":{\"did\":\"A\"}}", &err),
                     WM_EINVAL);
    assert_string_equal(err.path, "where.did");
    assert_int_equal(run(f, "events", "{" RANGE ",\"series\":[{\"event\":\"A\",\"where\":{\"prop\":\"x\","
                                      "\"op\":\"~\",\"value\":1}}]}",
                         &err),
                     WM_EINVAL);
    assert_non_null(strstr(err.path, "series[0].where"));
    assert_int_equal(run(f, "retention", "{" RANGE ",\"start\":{\"event\":\"A\"},\"return\":{\"event\":\"C\"},"
                                         "\"periods\":99}",
                         &err),
                     WM_EINVAL);
    assert_string_equal(err.path, "periods");
    /* a customer clause without the server's stores */
    assert_int_equal(run(f, "events", "{" RANGE ",\"series\":[{\"event\":\"A\"}],\"where\":{\"tag\":\"t\","
                                      "\"op\":\"=\",\"value\":1}}",
                         &err),
                     WM_EINVAL);
    assert_string_equal(err.path, "where");
}

typedef struct saved {
    char key[64];
    uint64_t users[8];
    uint32_t n;
} saved_t;

static int save_cb(void *ctx, const char *segment, const uint64_t *users, uint32_t n)
{
    saved_t *s = ctx;
    snprintf(s->key, sizeof s->key, "%s", segment);
    for (uint32_t i = 0; i < n && i < 8; i++)
        s->users[i] = users[i];
    s->n = n;
    return 0;
}

static void test_save_segment(void **state)
{
    fx_t *f = *state;
    history(f);
    wm_query_error_t err;
    const char *req = "{" RANGE ",\"steps\":[{\"event\":\"A\"},{\"event\":\"C\"}],\"dropped_at\":1,"
                      "\"save_segment\":\"stalled_a\"}";
    /* without the audience store the request is refused, naming the member */
    assert_int_equal(run(f, "funnel", req, &err), WM_EINVAL);
    assert_string_equal(err.path, "save_segment");
    saved_t s = {0};
    f->src.save = save_cb;
    f->src.save_ctx = &s;
    const char *a = answer(f, "funnel", req);
    /* A then C: 20 (A, B, C) and 30 (A, C next day) convert; 31 stalls */
    assert_non_null(strstr(a, "\"dropped\":[31],\"dropped_total\":1,\"saved_segment\":\"stalled_a\""));
    assert_string_equal(s.key, "stalled_a");
    assert_int_equal(s.n, 1);
    assert_int_equal(s.users[0], 31);
}

static void test_cancel_and_memory(void **state)
{
    fx_t *f = *state;
    history(f);
    volatile int cancel = 1;
    f->src.cancel = &cancel;
    wm_query_error_t err;
    assert_int_equal(run(f, "export", "{}", &err), WM_ECLOSED);
    f->src.cancel = NULL;
    f->src.memory_max = 64;
    assert_int_equal(run(f, "export", "{}", &err), WM_ELIMIT);
    assert_non_null(strstr(err.msg, "memory"));
    f->src.memory_max = 0;
    assert_int_equal(run(f, "export", "{}", &err), 0);
}

/* the quantile rule x[floor(q(n-1))] by selection equals it on the sorted values */
int64_t q_quantile(int64_t *v, uint32_t n, double qq, bool sorted);
int q_sort_i64(int64_t *v, uint32_t n);

static void test_quantile_select(void **state)
{
    (void)state;
    srand(3);
    for (int t = 0; t < 3000; t++) {
        uint32_t n = 1 + (uint32_t)(rand() % 300);
        int64_t a[300], sorted[300], c[300];
        int mod = 1 + rand() % 50;   /* many equal values */
        for (uint32_t i = 0; i < n; i++)
            a[i] = sorted[i] = rand() % mod - 20;
        q_sort_i64(sorted, n);
        const double qs[] = {0, 0.25, 0.5, 0.75, 0.9, 1};
        for (int k = 0; k < 6; k++) {
            memcpy(c, a, n * sizeof *a);
            assert_int_equal(q_quantile(c, n, qs[k], false), q_quantile(sorted, n, qs[k], true));
        }
    }
}


/* The funnel's chain search against the definition, on random streams:
 * per customer, every A in the range starts a chain (sequential: each step
 * the first row of its event after the previous step; any: each later step
 * anywhere after the start), all within the window; the customer's level is
 * the largest, at the earliest start reaching it. Reach per step and the
 * median of step 2's time are compared for both orders, with plain rows
 * and with a where that always holds (the general row path). */
typedef struct brute_row {
    int64_t t;
    int ev;     /* 0..3: A..D, 4: X */
} brute_row_t;

static uint32_t brute_level(const brute_row_t *r, uint32_t n, int64_t lo, int64_t hi, int64_t w, bool any,
                            int64_t *d2)
{
    uint32_t best = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (r[i].ev != 0 || r[i].t < lo || r[i].t >= hi)
            continue;
        uint32_t lvl = 1;
        int64_t t1 = -1;
        if (any) {
            bool found[4] = {true, false, false, false};
            for (uint32_t j = i + 1; j < n && r[j].t - r[i].t <= w; j++)
                if (r[j].ev >= 1 && r[j].ev <= 3 && !found[r[j].ev]) {
                    found[r[j].ev] = true;
                    if (r[j].ev == 1)
                        t1 = r[j].t;
                }
            while (lvl < 4 && found[lvl])
                lvl++;
        } else {
            for (uint32_t j = i + 1; j < n && lvl < 4 && r[j].t - r[i].t <= w; j++)
                if (r[j].ev == (int)lvl) {
                    if (lvl == 1)
                        t1 = r[j].t;
                    lvl++;
                }
        }
        if (lvl > best) {
            best = lvl;
            *d2 = lvl >= 2 ? t1 - r[i].t : 0;
        }
    }
    return best;
}

static int cmp_i64v(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void test_funnel_against_definition(void **state)
{
    fx_t *f = *state;
    enum { USERS = 300, MAXN = 60 };
    static brute_row_t rows[USERS][MAXN];
    uint32_t nrows[USERS];
    const char *names[] = {"A", "B", "C", "D", "X"};
    uint64_t seed = 88172645463325252ull;
    for (uint32_t u = 0; u < USERS; u++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        uint32_t n = 1 + (uint32_t)(seed % MAXN);
        int64_t t = T0 - 2 * DAY + (int64_t)(seed >> 20) % DAY;
        for (uint32_t i = 0; i < n; i++) {
            seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
            /* gaps from a minute to two days; A most often, X as noise */
            t += MIN + (int64_t)(seed % (uint64_t)(2 * DAY / (1 + seed % 7)));
            int ev = (int)((seed >> 32) % 8);
            rows[u][i] = (brute_row_t){t, ev >= 4 ? (ev == 7 ? 4 : 0) : ev};
        }
        nrows[u] = n;
        for (uint32_t i = 0; i < n; i++)
            event(f, u % 2, 1000 + u, rows[u][i].t, names[rows[u][i].ev], "{\"k\":1}");
    }
    sync_all(f);
    compact_all(f);
    const int64_t lo = T0, hi = T0 + 20 * DAY, w = 3 * DAY;
    for (int order = 0; order < 2; order++)
        for (int where = 0; where < 2; where++) {
            uint64_t reach[5] = {0};
            static int64_t d2[USERS];
            uint32_t nd = 0;
            for (uint32_t u = 0; u < USERS; u++) {
                int64_t d = 0;
                uint32_t lvl = brute_level(rows[u], nrows[u], lo, hi, w, order == 1, &d);
                for (uint32_t k = 1; k <= lvl; k++)
                    reach[k]++;
                if (lvl >= 2)
                    d2[nd++] = d;
            }
            qsort(d2, nd, sizeof *d2, cmp_i64v);
            char req[512];
            snprintf(req, sizeof req,
                     "{\"from\":\"2026-10-01\",\"to\":\"2026-10-20\",\"window\":\"3d\",\"order\":\"%s\","
                     "\"steps\":[{\"event\":\"A\"%s},{\"event\":\"B\"},{\"event\":\"C\"},{\"event\":\"D\"}]}",
                     order ? "any" : "sequential", where ? ",\"where\":{\"prop\":\"k\",\"op\":\"=\",\"value\":1}" : "");
            const char *a = answer(f, "funnel", req);
            for (uint32_t k = 1; k <= 4; k++) {
                char want[64];
                snprintf(want, sizeof want, "{\"step\":%u,\"name\":\"%s\",\"users\":%" PRIu64 ",", k, names[k - 1],
                         reach[k]);
                if (!strstr(a, want))
                    fail_msg("order %d where %d: want %s in %s", order, where, want, a);
            }
            assert_true(reach[4] > 0 && reach[1] > reach[4]);   /* the streams exercise every level */
            char med[64];
            snprintf(med, sizeof med, "\"median_ms\":%" PRId64 ",", d2[(nd - 1) / 2]);
            if (!strstr(a, med))
                fail_msg("order %d where %d: want %s in %s", order, where, med, a);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantile_select),
        cmocka_unit_test_setup_teardown(test_merge_across_partitions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_and_parts_agree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_block_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_recomputed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_name_the_member, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_and_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_funnel_against_definition, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
