/*
 * rules.h - the condition language, shared by journey entry filters,
 * condition / branch nodes, goals and exits, and later segments and tags.
 *
 * A condition is a JSON AST (docs/conditions.md):
 *
 *   {"all": [c, ...]}  {"any": [c, ...]}  {"not": c}
 *   {"profile": "risk_level", "op": ">=", "value": "C3"}
 *   {"prop": "fund_type", "op": "in", "value": ["equity", "mixed"]}      event property
 *   {"item": {"type": "fund", "key": "fund_code", "from": "event"|"profile"},
 *    "prop": "risk_level", "op": "<=", "value": "R3"}                    item lookup
 *   {"did": "ViewFundDetail", "where": c, "count": {">=": 3}, "within": "7d"}
 *      aggregates: "count" | "sum"/"avg"/"min"/"max"/"distinct" with "field": "amount"
 *      window: "within": "7d" (relative) or "from"/"to" (absolute, ms or datetime)
 *   {"sequence": [{"event": "A", "where": c}, {"event": "B"}], "within": "1d"}
 *   {"in_segment": "high_value"}   {"tag": "tier", "op": "=", "value": "hnw"}
 *
 * Comparison values may reference another value: "value": {"profile": name}
 * or {"prop": name} (suitability: item R-level <= profile C-level).
 *
 * Operators: = != < <= > >= between in not_in contains not_contains matches
 * is_set not_set within_last before after (dates), with typed comparison: numbers
 * numerically, strings by bytes, "C1".."C5"/"R1".."R5" style levels by their
 * number, dates/datetimes as instants, lists by membership.
 *
 * compile turns the AST into a flat program once; eval runs it per event in
 * microseconds against an environment of callbacks, so the runtime serves
 * profile, item and behaviour data straight from its store.
 *
 * Behaviour ("did") is answered from per-user daily buckets: every distinct
 * (event, where, field) of a program is a counter spec with a stable key; the
 * runtime updates the buckets of matching specs on each event (O(1)) and eval
 * asks it for the aggregate over a day range. Where the buckets cannot be
 * exact (a where comparing with the trigger, a distinct count whose buckets
 * lost a day's value set), eval scans the user's events instead, so every
 * aggregate is exact wherever it is answered.
 *
 * Thread safety: a compiled condition is immutable and may be evaluated from
 * many threads at once.
 */
#ifndef WAYMARK_RULES_H
#define WAYMARK_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "waymark/arena.h"
#include "waymark/json.h"
#include "waymark/limits.h"

typedef struct wm_cond wm_cond_t;

typedef struct wm_cond_error {
    char path[160];     /* JSON path of the fault, e.g. "$.all[1].op" */
    char msg[200];
} wm_cond_error_t;

/* A behaviour counter the condition needs (one per distinct did-clause). */
typedef struct wm_counter_spec {
    const char *key;        /* stable canonical text: same spec -> same key, across processes */
    const char *event;      /* event name */
    const wm_cond_t *where; /* event-property filter, or NULL */
    const char *field;      /* property aggregated (sum/avg/min/max/distinct), or NULL */
} wm_counter_spec_t;

/* Aggregate over a day range, as kept in daily buckets. */
typedef struct wm_agg {
    uint64_t count;
    double sum;
    double min, max;        /* meaningful when count > 0 */
    uint64_t distinct;      /* distinct values of field: exact when distinct_exact,
                             * else a lower bound */
    bool distinct_exact;    /* false when a day in the range lost its exact value
                             * set (more values than the blob holds, or a format-1
                             * bitmap day); eval then counts distinct by scanning
                             * env->events. A behaviour callback that leaves it
                             * false only costs that scan. */
} wm_agg_t;

/* What a condition may look at during evaluation. Any callback may be NULL
 * (the corresponding predicates then evaluate as "not set" / false). */
typedef struct wm_cond_env {
    const wm_json_t *profile;   /* user profile properties OBJECT or NULL */
    const wm_json_t *event;     /* current event (stored record form: "event", "time",
                                 * "properties", ...) or NULL */
    const wm_json_t *trigger;   /* the event {"trigger": name} references resolve
                                 * against; NULL = event. Set by did/sequence scans so
                                 * a where can compare with the triggering event
                                 * ("the same fund_code"). */
    int64_t now_ms;
    int tz_offset_min;          /* the user's UTC offset now, for day boundaries */
    void *ctx;
    /* item properties OBJECT for (type, id), or NULL */
    const wm_json_t *(*item)(void *ctx, const char *type, const char *id);
    /* aggregate of counter `spec` over [from_day, to_day] (days since epoch in
     * the user's zone); returns 0 or an error */
    int (*behaviour)(void *ctx, const wm_counter_spec_t *spec, int32_t from_day, int32_t to_day,
                     wm_agg_t *out);
    /* calls cb for each of the user's events with from_ms <= time < to_ms in
     * time order (for sequence); cb returns non-zero to stop */
    int (*events)(void *ctx, int64_t from_ms, int64_t to_ms,
                  int (*cb)(void *cbctx, const wm_json_t *event), void *cbctx);
    bool (*in_segment)(void *ctx, const char *segment);
    const wm_json_t *(*tag)(void *ctx, const char *tag);
} wm_cond_env_t;

/* Compiles an AST. Returns 0, WM_EINVAL (err names the JSON path and the
 * fault), WM_ENOMEM. The result owns copies of everything it needs: the
 * input tree may be freed afterwards. */
int wm_cond_compile(const wm_json_t *ast, wm_cond_t **out, wm_cond_error_t *err);
void wm_cond_free(wm_cond_t *c);

/* Evaluates. Returns 0 with *result, or an error from a callback (then
 * *result is false), WM_EINVAL for NULL arguments, WM_ELIMIT when a did
 * scan meets more than WM_COND_SCAN_EVENTS_MAX distinct values, WM_EBUSY
 * when a did scan counting distinct values starts inside another's events
 * callback. Allocates nothing (except inside libc's regexec for "matches";
 * distinct values of a scan go into a thread-local set).
 *
 * did clauses are exact wherever they are answered: from the buckets, or by
 * scanning env->events when the where references the trigger or when the
 * buckets report a distinct count inexact (wm_agg_t.distinct_exact). A scan
 * matches events exactly as wm_counter_match does, with {"trigger"}
 * references resolved against env->trigger or else env->event.
 *
 * Contract with the runtime: did and sequence clauses see the current event
 * only if the runtime has recorded it first - update the buckets of every
 * matching counter (wm_counter_match + wm_buckets_add) and make env->events
 * include it before calling eval, so "did X >= 3 times" counts the X being
 * processed. */
int wm_cond_eval(const wm_cond_t *c, const wm_cond_env_t *env, bool *result);

/* The local day number (days since 1970-01-01 in the user's zone) of an
 * instant: what from_day/to_day and wm_buckets_add's day mean. */
int32_t wm_cond_day(int64_t utc_ms, int tz_offset_min);

/* What a condition reads, so a runtime re-evaluates it only when one of its
 * inputs changed. Names point into c (valid while c lives); the arrays are
 * allocated in a. */
typedef struct wm_cond_deps {
    bool profile;               /* profile properties (also references and item keys) */
    bool event;                 /* the current event's properties ("prop", "trigger") */
    bool clock;                 /* may change with time alone: relative did/sequence
                                 * windows, within_last, relative before/after (not
                                 * inside a did's where: it runs at the event's time) */
    bool items;                 /* item lookups */
    const char **events;        /* event names of did / sequence clauses */
    uint32_t n_events;
    const char **tags;          /* {"tag": name} */
    uint32_t n_tags;
    const char **segments;      /* {"in_segment": name} */
    uint32_t n_segments;
} wm_cond_deps_t;
/* Fills *out (NULL c = reads nothing). Returns 0, WM_EINVAL, WM_ENOMEM. */
int wm_cond_deps(const wm_cond_t *c, wm_arena_t *a, wm_cond_deps_t *out);

/* The longest relative window (local days, today included) of the did and
 * sequence clauses: an event older than that cannot change the result
 * (0: no behaviour clause; -1: an absolute window or a trigger scan, where
 * any event may count). */
int32_t wm_cond_event_window_days(const wm_cond_t *c);
/* True when an added event can only make the condition true, never false:
 * the condition is one clause or an "all" of did-counts with a lower bound
 * (>=, >) and plain profile predicates. Once true, only the clock or a
 * profile change can make it false. */
bool wm_cond_event_monotone(const wm_cond_t *c);

/* The counter specs this condition needs (valid while c lives). */
void wm_cond_counters(const wm_cond_t *c, const wm_counter_spec_t **specs, uint32_t *n);

/* Whether `event` (stored record form) feeds counter `spec`, and the value
 * it contributes (for sum/avg/min/max; distinct uses the string form).
 * A spec with a field matches only events where the field is set. *value is
 * the field's number (numeric strings too), NAN when there is no field or it
 * is not numeric (counted, but no sum/min/max contribution).
 * *distinct_value points into the event, or for numbers and booleans into a
 * thread-local buffer valid until the next call on the same thread; NULL when
 * there is no field. The where clause runs with now = the event's time. */
bool wm_counter_match(const wm_counter_spec_t *spec, const wm_json_t *event, double *value,
                      const char **distinct_value);

/* ---- daily buckets: a compact per-(user, counter) byte blob ---- */

/* Days kept per counter: windows up to 90 days are answered exactly. */
#define WM_BUCKET_DAYS 90

/* Adds one event at `day` with value/distinct value into the blob (created
 * when *len == 0; a format-1 blob is rewritten as format 2). Days older than
 * max(day, newest kept day) - WM_BUCKET_DAYS + 1 are dropped, and an event
 * on such a day is ignored. value NAN counts the event without sum/min/max;
 * distinct_value NULL adds nothing to the distinct set. The blob is at most
 * WM_BUCKETS_BYTES_MAX (limits.h) and buf must have that capacity: every day
 * of the horizon keeps its count/sum/min/max, and when the value hashes do
 * not fit, the oldest days' sets are dropped and marked inexact. Returns 0,
 * WM_EINVAL, or WM_ECORRUPT (blob left unchanged). Format:
 * docs/conditions.md "Buckets". */
int wm_buckets_add(unsigned char *buf, size_t *len, int32_t day, double value,
                   const char *distinct_value);
/* Aggregates days [from_day, to_day] into *out (min/max NAN when no numeric
 * value; distinct exact unless out->distinct_exact is false). Reads formats
 * 1 and 2. An empty blob (len 0) gives zeros. Returns 0, WM_EINVAL (out
 * NULL) or WM_ECORRUPT. */
int wm_buckets_query(const unsigned char *buf, size_t len, int32_t from_day, int32_t to_day,
                     wm_agg_t *out);
/* Drops days before min_day (the clock pass); *len shrinks. A corrupt blob
 * is emptied (*len = 0). */
void wm_buckets_expire(unsigned char *buf, size_t *len, int32_t min_day);
/* Days held by a blob, or WM_ECORRUPT. */
int32_t wm_buckets_days(const unsigned char *buf, size_t len);

/* ---- durations, time zones, calendars ---- */

/* "30s" "15m" "2h" "7d" "1w" "500ms" (and combinations "1d12h"), optional
 * leading '-' -> ms. Returns 0 or WM_EINVAL (empty, junk, unknown unit,
 * spaces, beyond ~292 years). */
int wm_duration_parse(const char *s, int64_t *ms);

/* True when s[0..n) is a JSON number as written (-?(0|[1-9][0-9]*)(.[0-9]+)?
 * ([eE][+-]?[0-9]+)?): the rule a string's numeric reading follows. */
bool wm_json_number_text(const char *s, size_t n);

typedef struct wm_tz wm_tz_t;
/* Loads an IANA zone ("Asia/Shanghai") from the system zoneinfo (TZif v2+,
 * $TZDIR or /usr/share/zoneinfo), or a fixed offset ("+08:00", "+0800",
 * "+08", "UTC", "GMT", "Z"). Cached (thread-safe); the result lives for the
 * process. Returns 0, WM_EINVAL (bad name), WM_ENOTFOUND, WM_ECORRUPT,
 * WM_EUNSUPPORTED (TZif v1), WM_ELIMIT (cache full), WM_ENOMEM. Instants
 * after the file's last transition use its last offset (docs/conditions.md). */
int wm_tz_get(const char *name, const wm_tz_t **out);
/* The name the zone was loaded by. */
const char *wm_tz_name(const wm_tz_t *tz);
/* Local day number (days since 1970-01-01 on the zone's wall clock). */
int32_t wm_tz_local_day(const wm_tz_t *tz, int64_t utc_ms);
/* UTC offset in minutes of zone tz at instant utc_ms. */
int wm_tz_offset_min(const wm_tz_t *tz, int64_t utc_ms);
/* UTC instant (ms) of a local wall-clock time: the first occurrence if
 * ambiguous (fall back), shifted forward by the gap if it does not exist
 * (spring forward: 02:30 on a 02:00->03:00 day gives 03:30). Day, hour,
 * minute and second may overflow and carry; months carry into years. */
int64_t wm_tz_local_to_utc(const wm_tz_t *tz, int y, int mon, int d, int h, int min, int s);

/* Trading calendar: weekends closed, plus listed holidays, plus listed
 * make-up working days (调休) open. */
typedef struct wm_calendar wm_calendar_t;
/* From JSON {"timezone":"Asia/Shanghai","holidays":["2026-10-01",...],
 * "workdays":["2026-09-27",...]} ("name" allowed, other keys rejected;
 * timezone required). Returns 0, WM_EINVAL (err: path and fault), WM_ENOMEM.
 * Exchange calendars (SSE/SZSE) list no workdays: exchanges stay closed on
 * weekend make-up days. */
int wm_calendar_compile(const wm_json_t *def, wm_calendar_t **out, wm_cond_error_t *err);
void wm_calendar_free(wm_calendar_t *c);
bool wm_calendar_is_trading_day(const wm_calendar_t *c, int32_t local_day);
/* The calendar's zone (local days of is_trading_day are in it). */
const wm_tz_t *wm_calendar_tz(const wm_calendar_t *c);
/* The first instant >= after_ms that is a trading day at local HH:MM
 * (today if that time is still ahead and today trades), in the calendar's
 * zone. INT64_MAX if no trading day within 400 days. */
int64_t wm_calendar_next_open(const wm_calendar_t *c, int64_t after_ms, int hh, int mm);

#endif
