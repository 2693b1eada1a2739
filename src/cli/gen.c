/*
 * gen.c (cli) - `waymark gen`: argument parsing around wm_gen_write, which
 * lives in the library (src/tools/gen.c) so tests and benchmarks can call it.
 */
#include "cli/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "waymark/error.h"
#include "waymark/gen.h"
#include "waymark/limits.h"

static int usage(const char *why)
{
    if (why)
        fprintf(stderr, "waymark gen: %s\n", why);
    fprintf(stderr,
            "usage: waymark gen --users N --days D --seed S [-o FILE] [--start YYYY-MM-DD]\n"
            "                   [--project NAME]\n"
            "  Writes realistic Sensors-format NDJSON for a brokerage (items, profiles,\n"
            "  events), identical for identical arguments. Defaults: --users 1000\n"
            "  --days 30 --seed 1 --start 2026-10-01, output to stdout.\n");
    return 2;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || !*s || *s == '-')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Fills opts and *path from argv; returns 0 or a usage message. */
static const char *parse_args(int argc, char **argv, wm_gen_opts_t *o, const char **path)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t n;
        if (!strcmp(a, "-h") || !strcmp(a, "--help"))
            return "";
        if (!v)
            return "missing value after an option";
        i++;
        if (!strcmp(a, "--users")) {
            if (parse_u64(v, WM_GEN_USERS_MAX, &o->users))
                return "--users must be 0.." "10000000";
        } else if (!strcmp(a, "--days")) {
            if (parse_u64(v, WM_GEN_DAYS_MAX, &n) || n == 0)
                return "--days must be 1..3660";
            o->days = (uint32_t)n;
        } else if (!strcmp(a, "--seed")) {
            if (parse_u64(v, UINT64_MAX, &o->seed))
                return "--seed must be an unsigned integer";
        } else if (!strcmp(a, "--start")) {
            if (wm_gen_parse_date(v, &o->start_ms))
                return "--start must be a date YYYY-MM-DD";
        } else if (!strcmp(a, "--project")) {
            o->project = v;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            *path = v;
        } else {
            return "unknown option";
        }
    }
    return NULL;
}

int wm_cli_gen(int argc, char **argv)
{
    wm_gen_opts_t o;
    wm_gen_opts_init(&o);
    const char *path = NULL;
    const char *why = parse_args(argc, argv, &o, &path);
    if (why)
        return usage(*why ? why : NULL);
    FILE *f = path ? fopen(path, "wb") : stdout;
    if (!f) {
        fprintf(stderr, "waymark gen: %s: %s\n", path, strerror(errno));
        return 1;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    wm_gen_stats_t st;
    int rc = wm_gen_write(&o, f, &st);
    if (fflush(f) != 0 && !rc)
        rc = WM_EIO;
    if (path && fclose(f) != 0 && !rc)
        rc = WM_EIO;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (rc) {
        if (rc == WM_EINVAL)
            return usage("invalid options (check --project: letters, digits, _ and $)");
        fprintf(stderr, "waymark gen: %s\n", wm_strerror(rc));
        return 1;
    }
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    fprintf(stderr, "waymark gen: %llu records (%llu events), %.1f MB in %.2f s: %.0f records/s, %.0f MB/s\n",
            (unsigned long long)st.records, (unsigned long long)st.events, (double)st.bytes / 1e6, s,
            s > 0 ? (double)st.records / s : 0.0, s > 0 ? (double)st.bytes / 1e6 / s : 0.0);
    return 0;
}
