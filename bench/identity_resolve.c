/*
 * identity_resolve.c - throughput of wm_identity_resolve_batch on the import
 * path, and the index's size per user.
 *
 * Usage: identity_resolve [N=1000000] [BATCH=1000] [DIR=/tmp] [writemap]
 *
 * Phases (N records each, BATCH records per transaction, nosync env with one
 * wm_identity_sync at the end of each phase, as the import does at its
 * durability point):
 *   new      every record carries a new anonymous id -> N new users
 *   known    the same N records again -> lookups only
 *   merge10  90% known anonymous ids, 10% records carrying a known login id
 *            plus an anonymous id of another, login-less user -> a merge each
 * Ids are 16 hex digits of a mixed counter, so B-tree inserts land in random
 * order like device ids do. The checksum folds every resolved user id and
 * merge, so two runs (or two implementations) can be compared.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "waymark/alloc.h"
#include "waymark/identity.h"

#define ID_CHARS 17

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct bench {
    wm_identity_t *id;
    uint32_t n, batch;
    char (*anon)[ID_CHARS];   /* N anonymous ids */
    char (*login)[ID_CHARS];  /* N/10 login ids */
    wm_record_t *recs;
    wm_id_result_t *res;
    wm_rec_error_t *errs;
    uint64_t checksum;
    uint64_t merges, created;
} bench_t;

typedef void (*fill_fn)(bench_t *b, uint32_t i, wm_record_t *r);

static void fill_anon(bench_t *b, uint32_t i, wm_record_t *r)
{
    *r = (wm_record_t){.type = WM_REC_TRACK, .event = "ViewFund", .project = "default",
                       .distinct_id = b->anon[i], .time_ms = 1700000000000 + i};
}

static void fill_login(bench_t *b, uint32_t i, wm_record_t *r)
{
    *r = (wm_record_t){.type = WM_REC_TRACK, .event = "Login", .project = "default",
                       .distinct_id = b->login[i], .is_login_id = true,
                       .time_ms = 1700000000000 + i};
}

static void fill_merge10(bench_t *b, uint32_t i, wm_record_t *r)
{
    fill_anon(b, i, r);
    if (i % 10 == 0) { /* a logged-in event from the device of an anonymous user */
        r->distinct_id = b->login[i / 10];
        r->is_login_id = true;
        r->anonymous_id = b->anon[i];
    }
}

static int run(bench_t *b, uint32_t n, fill_fn fill)
{
    for (uint32_t i = 0; i < n; i += b->batch) {
        uint32_t m = n - i < b->batch ? n - i : b->batch;
        for (uint32_t j = 0; j < m; j++)
            fill(b, i + j, &b->recs[j]);
        memset(b->errs, 0, sizeof *b->errs * m);
        int rc = wm_identity_resolve_batch(b->id, b->recs, m, b->res, b->errs);
        if (rc) {
            fprintf(stderr, "resolve: %d\n", rc);
            return rc;
        }
        for (uint32_t j = 0; j < m; j++) {
            if (b->errs[j].code) {
                fprintf(stderr, "record %u rejected: %s\n", i + j, b->errs[j].code);
                return 1;
            }
            b->checksum = mix(b->checksum ^ b->res[j].user_id);
            b->created += b->res[j].created;
            for (uint32_t k = 0; k < b->res[j].n_merges; k++) {
                b->checksum = mix(b->checksum ^ (b->res[j].merges[k].from_user << 20));
                b->merges++;
            }
        }
    }
    return wm_identity_sync(b->id);
}

static int phase(bench_t *b, const char *name, uint32_t n, fill_fn fill)
{
    uint64_t m0 = b->merges, c0 = b->created;
    double t0 = now_s();
    int rc = run(b, n, fill);
    double dt = now_s() - t0;
    if (rc)
        return rc;
    wm_identity_stats_t st;
    wm_identity_stats(b->id, &st);
    printf("%-9s %10u %12.0f %9.3f %9" PRIu64 " %9" PRIu64 " %12.1f\n", name, n, n / dt, dt,
           b->created - c0, b->merges - m0, (double)st.used_bytes / (double)st.users_allocated);
    return 0;
}

int main(int argc, char **argv)
{
    bench_t b = {.n = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 1000000,
                 .batch = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 1000};
    const char *base = argc > 3 ? argv[3] : "/tmp";
    if (b.n < 10 || b.batch == 0)
        return 2;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/wm_bench_identity_XXXXXX", base);
    if (!mkdtemp(dir))
        return perror("mkdtemp"), 1;
    bool writemap = argc > 4 && !strcmp(argv[4], "writemap");
    wm_identity_opts_t o = {.dir = dir, .nosync = true, .writemap = writemap};
    if (wm_identity_open(&o, &b.id))
        return fprintf(stderr, "open failed\n"), 1;
    b.anon = wm_malloc((size_t)b.n * ID_CHARS);
    b.login = wm_malloc((size_t)(b.n / 10 + 1) * ID_CHARS);
    b.recs = wm_calloc(b.batch, sizeof *b.recs);
    b.res = wm_calloc(b.batch, sizeof *b.res);
    b.errs = wm_calloc(b.batch, sizeof *b.errs);
    for (uint32_t i = 0; i < b.n; i++)
        snprintf(b.anon[i], ID_CHARS, "%016" PRIx64, mix(i));
    for (uint32_t i = 0; i <= b.n / 10; i++)
        snprintf(b.login[i], ID_CHARS, "u%015" PRIx64, mix(i + (1ull << 40)) >> 4);

    printf("identity_resolve: N=%u batch=%u writemap=%d dir=%s\n", b.n, b.batch, writemap, dir);
    printf("%-9s %10s %12s %9s %9s %9s %12s\n", "phase", "records", "records/s", "seconds",
           "created", "merges", "bytes/user");
    int rc = phase(&b, "new", b.n, fill_anon);
    if (!rc)
        rc = phase(&b, "known", b.n, fill_anon);
    if (!rc) { /* untimed setup: N/10 login users for the merges to land on */
        uint64_t cs = b.checksum;
        rc = run(&b, b.n / 10, fill_login);
        b.checksum = cs;
    }
    if (!rc)
        rc = phase(&b, "merge10", b.n, fill_merge10);
    printf("checksum %016" PRIx64 "\n", b.checksum);

    wm_identity_close(b.id);
    wm_free(b.anon);
    wm_free(b.login);
    wm_free(b.recs);
    wm_free(b.res);
    wm_free(b.errs);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return rc ? 1 : 0;
}
