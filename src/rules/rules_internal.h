/*
 * rules_internal.h - what the files of src/rules share: typed values and the
 * civil-date arithmetic used by conditions, time zones and calendars.
 *
 * Dates are kept as "naive" milliseconds (the wall-clock reading as if it
 * were UTC) until an offset is known; the instant is naive - offset. That
 * lets a literal "2026-10-01" be compiled once and compared in whichever
 * zone the evaluating user lives in.
 */
#ifndef WAYMARK_RULES_INTERNAL_H
#define WAYMARK_RULES_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "waymark/json.h"

#define WM__DAY_MS 86400000LL

/* A value with every reading it supports, computed once. */
enum { WM__V_NONE = 0, WM__V_NUM, WM__V_STR, WM__V_BOOL };
enum { WM__VF_NUM = 1, WM__VF_LEVEL = 2, WM__VF_DATE = 4 };

typedef struct wm__val {
    uint8_t kind;       /* WM__V_* */
    uint8_t flags;      /* WM__VF_*: readings available for a string */
    uint8_t level;      /* "C3" -> 3 */
    bool b;             /* BOOL */
    double num;         /* NUM, or a numeric string */
    int64_t date_naive; /* date/datetime string as naive ms */
    const char *s;      /* STR (NUL-terminated) */
    uint32_t len;
} wm__val_t;

/* Comparison outcome: -1/0/1, or WM__CMP_NONE when the types do not compare. */
#define WM__CMP_NONE 2

/* Days since 1970-01-01 of a proleptic Gregorian date, and back. */
int64_t wm__days_from_civil(int64_t y, int m, int d);
void wm__civil_from_days(int64_t days, int *y, int *m, int *d);
/* Floor division that is right for negative instants. */
int64_t wm__floor_div(int64_t a, int64_t b);

/* "yyyy-MM-dd", "yyyy-MM-dd HH:mm:ss" (or 'T', optional ".SSS") -> naive ms. */
bool wm__parse_datetime(const char *s, size_t n, int64_t *naive_ms);
/* "C3" / "R2" (letter C or R, either case, one digit 0..9) -> level. */
bool wm__parse_level(const char *s, size_t n, int *level);
/* A whole string that is a finite JSON-style number. */
bool wm__parse_number(const char *s, size_t n, double *out);

/* Fills every reading of a JSON scalar; false for null/array/object. */
bool wm__val_from_json(const wm_json_t *j, wm__val_t *v);
/*
 * Compares a runtime JSON value with a typed value. `ordering` selects the
 * reading for strings (levels, dates, numbers before bytes); equality of two
 * strings is exact text. tz_ms converts naive dates to instants when the
 * other side is an epoch-ms number.
 */
int wm__val_cmp(const wm_json_t *j, const wm__val_t *v, bool ordering, int64_t tz_ms);
/* A date reading of a JSON value as an instant: epoch ms numbers as they
 * are, date strings as naive - tz_ms. */
bool wm__json_instant(const wm_json_t *j, int64_t tz_ms, int64_t *ms);

/* Stable (cross-process) 64-bit hash for distinct values kept in blobs. */
uint64_t wm__stable_hash(const char *s, size_t n);

/*
 * A set of 64-bit hashes in memory the caller owns (open addressing, linear
 * probing), so that distinct counts are exact without a heap allocation
 * during eval. The slots must be zero when the set is initialised; clear
 * makes them zero again at a cost proportional to what was added (when
 * `filled` is given) instead of the table's size.
 */
typedef struct wm__hset {
    uint64_t *slot;     /* n_slots entries, a power of two; 0 marks a free slot */
    uint32_t *filled;   /* indexes of the slots in use (room for max), or NULL */
    uint32_t mask;      /* n_slots - 1 */
    uint32_t used;      /* slots in use */
    uint32_t max;       /* most slots it fills (< n_slots, so probes end) */
    bool has_zero;      /* hash 0 was added (it cannot sit in a slot) */
} wm__hset_t;

void wm__hset_init(wm__hset_t *s, uint64_t *slot, uint32_t n_slots, uint32_t *filled,
                   uint32_t max);
/* 1 when h is new, 0 when already present, WM_ELIMIT when the set is full. */
int wm__hset_add(wm__hset_t *s, uint64_t h);
/* Hashes held. */
uint32_t wm__hset_count(const wm__hset_t *s);
/* Empties the set (and zeroes the slots it used). */
void wm__hset_clear(wm__hset_t *s);

#endif
