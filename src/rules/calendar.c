/*
 * calendar.c - trading calendars: which local days are open, and the next
 * open instant at a given local time ("wait until the next trading day at
 * 09:30").
 *
 * A day trades when it is a listed make-up workday (调休), else when it is
 * Monday..Friday and not a listed holiday. Days are local days of the
 * calendar's own zone (an exchange's calendar is the exchange's, not the
 * user's). Holidays and workdays are kept as sorted day numbers and found by
 * binary search, so a ten-year calendar costs a few compares per question.
 *
 * Note for exchange calendars: SSE and SZSE stay closed on weekend make-up
 * days (only the office week is shifted), so an exchange calendar lists its
 * holidays and no workdays; a bank-branch calendar lists both.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules/rules_internal.h"
#include "waymark/alloc.h"
#include "waymark/error.h"
#include "waymark/limits.h"
#include "waymark/rules.h"

struct wm_calendar {
    const wm_tz_t *tz;
    int32_t *holidays;
    uint32_t n_holidays;
    int32_t *workdays;
    uint32_t n_workdays;
};

static int set_err(wm_cond_error_t *err, const char *path, const char *msg)
{
    if (err) {
        snprintf(err->path, sizeof err->path, "%s", path);
        snprintf(err->msg, sizeof err->msg, "%s", msg);
    }
    return WM_EINVAL;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static int read_days(const wm_json_t *arr, const char *key, int32_t **out, uint32_t *n,
                     wm_cond_error_t *err)
{
    char path[64];
    snprintf(path, sizeof path, "$.%s", key);
    *out = NULL;
    *n = 0;
    if (!arr)
        return 0;
    if (arr->type != WM_JSON_ARRAY)
        return set_err(err, path, "must be a list of \"yyyy-MM-dd\" dates");
    if (arr->len > WM_CALENDAR_DAYS_MAX)
        return set_err(err, path, "too many dates");
    *out = wm_malloc(sizeof(int32_t) * (arr->len ? arr->len : 1));
    if (!*out)
        return WM_ENOMEM;
    uint32_t i = 0;
    for (const wm_json_t *e = arr->u.child; e; e = e->next, i++) {
        int64_t naive;
        if (e->type != WM_JSON_STRING || e->len != 10 ||
            !wm__parse_datetime(e->u.str, e->len, &naive)) {
            snprintf(path, sizeof path, "$.%s[%u]", key, i);
            return set_err(err, path, "not a \"yyyy-MM-dd\" date");
        }
        (*out)[i] = (int32_t)(naive / WM__DAY_MS);
    }
    *n = i;
    qsort(*out, *n, sizeof(int32_t), cmp_i32);
    return 0;
}

static int check_keys(const wm_json_t *def, wm_cond_error_t *err)
{
    for (const wm_json_t *m = def->u.child; m; m = m->next) {
        if (strcmp(m->key, "timezone") && strcmp(m->key, "holidays") &&
            strcmp(m->key, "workdays") && strcmp(m->key, "name")) {
            char path[160];
            snprintf(path, sizeof path, "$.%.100s", m->key);
            return set_err(err, path, "unknown key (expected timezone, holidays, workdays, name)");
        }
    }
    return 0;
}

int wm_calendar_compile(const wm_json_t *def, wm_calendar_t **out, wm_cond_error_t *err)
{
    if (!def || !out)
        return WM_EINVAL;
    *out = NULL;
    if (def->type != WM_JSON_OBJECT)
        return set_err(err, "$", "a calendar is an object");
    int rc = check_keys(def, err);
    if (rc)
        return rc;
    const char *tzname = wm_json_str(wm_json_get(def, "timezone"));
    if (!tzname)
        return set_err(err, "$.timezone", "required: an IANA zone name or offset");
    wm_calendar_t *c = wm_calloc(1, sizeof *c);
    if (!c)
        return WM_ENOMEM;
    rc = wm_tz_get(tzname, &c->tz);
    if (rc == WM_ENOMEM)
        goto fail;
    if (rc) {
        rc = set_err(err, "$.timezone", "unknown time zone");
        goto fail;
    }
    rc = read_days(wm_json_get(def, "holidays"), "holidays", &c->holidays, &c->n_holidays, err);
    if (rc == 0)
        rc = read_days(wm_json_get(def, "workdays"), "workdays", &c->workdays, &c->n_workdays, err);
    if (rc)
        goto fail;
    *out = c;
    return 0;
fail:
    wm_calendar_free(c);
    return rc;
}

void wm_calendar_free(wm_calendar_t *c)
{
    if (!c)
        return;
    wm_free(c->holidays);
    wm_free(c->workdays);
    wm_free(c);
}

static bool has_day(const int32_t *days, uint32_t n, int32_t d)
{
    return n && bsearch(&d, days, n, sizeof(int32_t), cmp_i32) != NULL;
}

bool wm_calendar_is_trading_day(const wm_calendar_t *c, int32_t local_day)
{
    if (!c)
        return false;
    if (has_day(c->workdays, c->n_workdays, local_day))
        return true;
    if (has_day(c->holidays, c->n_holidays, local_day))
        return false;
    int64_t wd = wm__floor_div((int64_t)local_day + 3, 7); /* 1970-01-01 was a Thursday */
    int weekday = (int)((int64_t)local_day + 3 - wd * 7);  /* 0 = Monday */
    return weekday < 5;
}

const wm_tz_t *wm_calendar_tz(const wm_calendar_t *c)
{
    return c ? c->tz : NULL;
}

/* A year of closed days is a misconfigured calendar; stop looking there. */
#define NEXT_OPEN_SCAN_DAYS 400

int64_t wm_calendar_next_open(const wm_calendar_t *c, int64_t after_ms, int hh, int mm)
{
    if (!c)
        return INT64_MAX;
    int32_t day = wm_tz_local_day(c->tz, after_ms);
    for (int i = 0; i < NEXT_OPEN_SCAN_DAYS; i++, day++) {
        if (!wm_calendar_is_trading_day(c, day))
            continue;
        int y, m, d;
        wm__civil_from_days(day, &y, &m, &d);
        int64_t t = wm_tz_local_to_utc(c->tz, y, m, d, hh, mm, 0);
        if (t >= after_ms)
            return t;
    }
    return INT64_MAX;
}
