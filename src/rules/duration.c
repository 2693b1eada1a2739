/*
 * duration.c - "30s" "15m" "2h" "7d" "1w" "1d12h" "-7d" -> milliseconds.
 *
 * One parser for every duration in journeys and conditions so that "7d"
 * means the same everywhere. Strict on purpose: a typo in a wait node ("7 d",
 * "7days") must fail compile, not become zero. Units: ms s m h d w; a day is
 * 24 h of elapsed time (calendar-day windows are the did-clause's business).
 */
#include <stddef.h>

#include "waymark/error.h"
#include "waymark/rules.h"

/* ~292 years: any component or total beyond it is surely a mistake, and the
 * bound keeps every sum far from int64 overflow. */
#define DURATION_MS_MAX (INT64_C(9) * 1000 * 1000 * 1000 * 1000 * 1000)

static int64_t unit_ms(const char **p)
{
    const char *s = *p;
    switch (*s) {
    case 'm':
        if (s[1] == 's') {
            *p = s + 2;
            return 1;
        }
        *p = s + 1;
        return 60 * 1000;
    case 's':
        *p = s + 1;
        return 1000;
    case 'h':
        *p = s + 1;
        return 3600 * 1000;
    case 'd':
        *p = s + 1;
        return 86400 * 1000;
    case 'w':
        *p = s + 1;
        return 7 * 86400 * 1000LL;
    default:
        return 0;
    }
}

int wm_duration_parse(const char *s, int64_t *ms)
{
    if (!s || !ms)
        return WM_EINVAL;
    bool neg = *s == '-';
    const char *p = s + neg;
    if (!*p)
        return WM_EINVAL;
    int64_t total = 0;
    while (*p) {
        if (*p < '0' || *p > '9')
            return WM_EINVAL;
        int64_t n = 0;
        while (*p >= '0' && *p <= '9') {
            n = n * 10 + (*p++ - '0');
            if (n > DURATION_MS_MAX)
                return WM_EINVAL;
        }
        int64_t u = unit_ms(&p);
        if (u == 0 || n > DURATION_MS_MAX / u)
            return WM_EINVAL;
        total += n * u;
        if (total > DURATION_MS_MAX)
            return WM_EINVAL;
    }
    *ms = neg ? -total : total;
    return 0;
}
