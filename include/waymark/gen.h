/*
 * gen.h - deterministic generator of realistic Sensors-format NDJSON for a
 * Chinese brokerage: a product catalogue (funds, wealth products, IPOs) as
 * item_set records, then per simulated person their anonymous browsing,
 * sign-up or ID binding, profile, and logged-in activity across app, H5,
 * mini program, WeCom and branch channels, time-ordered per person.
 *
 * It feeds `waymark gen`, the benchmarks and the tests, so the same options
 * always produce the same bytes (own PRNG, no locale, no clock).
 */
#ifndef WAYMARK_GEN_H
#define WAYMARK_GEN_H

#include <stdint.h>
#include <stdio.h>

typedef struct wm_gen_opts {
    uint64_t users;        /* people to simulate; 0 writes only the catalogue */
    uint32_t days;         /* window length in days, 1..WM_GEN_DAYS_MAX */
    uint64_t seed;         /* same seed + options = identical output */
    int64_t start_ms;      /* window start, epoch ms (see wm_gen_parse_date) */
    const char *project;   /* NULL: no "project" field; else a valid name */
} wm_gen_opts_t;

typedef struct wm_gen_stats {
    uint64_t records;      /* lines written */
    uint64_t bytes;        /* bytes written, newlines included */
    uint64_t events;       /* records of type track (incl. $SignUp/$BindID) */
} wm_gen_stats_t;

/* Defaults: 1000 users, 30 days, seed 1, start 2026-10-01, no project. */
void wm_gen_opts_init(wm_gen_opts_t *o);

/* Parses "YYYY-MM-DD" as 00:00 Asia/Shanghai (UTC+8, no DST) into epoch ms.
 * Returns 0, or WM_EINVAL for anything else (including impossible dates). */
int wm_gen_parse_date(const char *ymd, int64_t *ms_out);

/*
 * Writes the whole data set to `out` (one JSON record per line). `stats` may
 * be NULL. Returns 0, WM_EINVAL for options out of range (users above
 * WM_GEN_USERS_MAX, days 0 or above WM_GEN_DAYS_MAX, bad project name),
 * WM_ENOMEM, or WM_EIO if a write failed (output may be partial).
 * Does not close or flush `out` beyond its own writes.
 */
int wm_gen_write(const wm_gen_opts_t *o, FILE *out, wm_gen_stats_t *stats);

#endif
