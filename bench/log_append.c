/*
 * log_append.c - throughput and commit latency of the event log.
 *
 * For payloads of 200 and 600 bytes (a small and a typical Sensors record),
 * fsync modes always and never, and group sizes 1, 50 and 1000 records per
 * wm_log_sync (group commit), prints records/s, payload MB/s and the p50/p99
 * latency of wm_log_sync (pwrite + fdatasync for "always", pwrite only for
 * "never"). The sum of assigned sequences is printed as a checksum so the
 * work cannot be optimised away and runs can be compared.
 *
 * usage: log_append [-n COUNT] [-s MAX_SYNCS] [-S SEGMENT_BYTES] [DIR]
 *   COUNT      records per row (default 200000)
 *   MAX_SYNCS  caps a row at MAX_SYNCS syncs, so group 1 with fsync stays
 *              short (default 5000); the row prints the records it ran
 *   DIR        parent of the temporary log directories (default $TMPDIR,
 *              then /tmp); everything created is removed afterwards
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "waymark/error.h"
#include "waymark/log.h"

typedef struct bench_cfg {
    uint64_t count;
    uint64_t max_syncs;
    uint64_t file_bytes;
    const char *parent;
} bench_cfg_t;

typedef struct row_result {
    uint64_t records;
    uint64_t syncs;
    uint64_t fsyncs;
    double seconds;
    double p50_us;
    double p99_us;
    uint64_t checksum;
} row_result_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(double *v, uint64_t n, double p)
{
    if (n == 0)
        return 0;
    uint64_t i = (uint64_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.')
            unlinkat(dirfd(d), e->d_name, 0);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

/* Appends and syncs in groups; fills res. Returns 0 or a WM_E* code. */
static int run_groups(wm_log_t *log, uint32_t size, uint64_t group, row_result_t *res,
                      double *lat)
{
    uint8_t payload[1024];
    for (uint32_t i = 0; i < size; i++)
        payload[i] = (uint8_t)(i * 31 + 7);
    uint64_t done = 0;
    double t0 = now_s();
    while (done < res->records) {
        for (uint64_t i = 0; i < group && done < res->records; i++, done++) {
            memcpy(payload, &done, sizeof done); /* every record differs */
            wm_log_pos_t pos;
            int rc = wm_log_append(log, payload, size, &pos);
            if (rc)
                return rc;
            res->checksum += pos.seq;
        }
        double s0 = now_s();
        uint64_t durable;
        int rc = wm_log_sync(log, &durable);
        if (rc)
            return rc;
        lat[res->syncs++] = (now_s() - s0) * 1e6;
        res->checksum += durable;
    }
    res->seconds = now_s() - t0;
    return 0;
}

static int run_row(const bench_cfg_t *cfg, uint32_t size, wm_fsync_mode_t mode, uint64_t group,
                   row_result_t *res)
{
    memset(res, 0, sizeof *res);
    res->records = cfg->count;
    if (res->records / group > cfg->max_syncs)
        res->records = cfg->max_syncs * group;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/wm-bench-log-XXXXXX", cfg->parent);
    if (!mkdtemp(dir))
        return WM_EIO;
    wm_log_opts_t o = {.dir = dir, .fsync_mode = mode, .file_bytes = cfg->file_bytes};
    wm_log_t *log = NULL;
    double *lat = malloc(sizeof *lat * (res->records / group + 2));
    int rc = lat ? wm_log_open(&o, &log) : WM_ENOMEM;
    if (rc == 0)
        rc = run_groups(log, size, group, res, lat);
    if (rc == 0) {
        wm_log_stats_t st;
        wm_log_stats(log, &st);
        res->fsyncs = st.syncs;
        qsort(lat, res->syncs, sizeof *lat, cmp_double);
        res->p50_us = percentile(lat, res->syncs, 0.50);
        res->p99_us = percentile(lat, res->syncs, 0.99);
    }
    wm_log_close(log);
    free(lat);
    remove_dir(dir);
    return rc;
}

static int parse_args(int argc, char **argv, bench_cfg_t *cfg)
{
    int c;
    while ((c = getopt(argc, argv, "n:s:S:h")) != -1) {
        switch (c) {
        case 'n':
            cfg->count = strtoull(optarg, NULL, 10);
            break;
        case 's':
            cfg->max_syncs = strtoull(optarg, NULL, 10);
            break;
        case 'S':
            cfg->file_bytes = strtoull(optarg, NULL, 10);
            break;
        default:
            return -1;
        }
    }
    if (optind < argc)
        cfg->parent = argv[optind];
    return cfg->count && cfg->max_syncs ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *tmp = getenv("TMPDIR");
    bench_cfg_t cfg = {.count = 200000, .max_syncs = 5000, .parent = tmp && *tmp ? tmp : "/tmp"};
    if (parse_args(argc, argv, &cfg)) {
        fprintf(stderr, "usage: %s [-n COUNT] [-s MAX_SYNCS] [-S SEGMENT_BYTES] [DIR]\n", argv[0]);
        return 2;
    }
    static const uint32_t sizes[] = {200, 600};
    static const wm_fsync_mode_t modes[] = {WM_FSYNC_ALWAYS, WM_FSYNC_NEVER};
    static const uint64_t groups[] = {1, 50, 1000};
    printf("log_append: dir=%s count=%llu max_syncs=%llu\n", cfg.parent,
           (unsigned long long)cfg.count, (unsigned long long)cfg.max_syncs);
    printf("%5s %-7s %6s %8s %7s %7s %11s %8s %10s %10s\n", "size", "mode", "group", "records",
           "syncs", "fsyncs", "records/s", "MB/s", "sync_p50us", "sync_p99us");
    uint64_t checksum = 0;
    for (size_t si = 0; si < 2; si++)
        for (size_t mi = 0; mi < 2; mi++)
            for (size_t gi = 0; gi < 3; gi++) {
                row_result_t r;
                int rc = run_row(&cfg, sizes[si], modes[mi], groups[gi], &r);
                if (rc) {
                    fprintf(stderr, "row failed: %s\n", wm_strerror(rc));
                    return 1;
                }
                double rps = (double)r.records / r.seconds;
                printf("%5u %-7s %6llu %8llu %7llu %7llu %11.0f %8.1f %10.1f %10.1f\n",
                       sizes[si], wm_fsync_mode_name(modes[mi]), (unsigned long long)groups[gi],
                       (unsigned long long)r.records, (unsigned long long)r.syncs,
                       (unsigned long long)r.fsyncs, rps, rps * sizes[si] / 1e6, r.p50_us,
                       r.p99_us);
                checksum += r.checksum;
            }
    printf("checksum %llu\n", (unsigned long long)checksum);
    return 0;
}
