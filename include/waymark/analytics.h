/*
 * analytics.h - the columnar event store and its queries (docs/analytics.md).
 *
 * Three pieces:
 *   parts     immutable column files of one partition's track events, sorted
 *             by (user, time, seq): wm_part_builder_* writes one, wm_part_*
 *             reads one (mmap), block by block, every block checksummed;
 *   store     one directory per partition, a manifest listing its parts, the
 *             compactor that turns the log's tail into parts and merges small
 *             parts, and snapshots (parts + the uncompacted tail) for queries;
 *   queries   wm_query_run: a JSON request in, a JSON answer out.
 *
 * Thread model: a store is compacted by one thread at a time (the compactor);
 * snapshots may be taken and read on any thread concurrently; a snapshot
 * keeps its parts alive until it is released.
 */
#ifndef WAYMARK_ANALYTICS_H
#define WAYMARK_ANALYTICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "waymark/buf.h"
#include "waymark/json.h"
#include "waymark/log.h"

#define WM_PART_VERSION 3   /* 3: time and event blocks in lz4; 2: those columns in fixed width;
                             * 1: varints. All three are read. */
#define WM_PART_BLOCK_ROWS 65536u
#define WM_PART_COLS_MAX 1024u     /* property columns per part; the rest go to "$rest" */

typedef enum wm_acol_type {
    WM_ACOL_NUMBER = 1,
    WM_ACOL_STRING = 2,
    WM_ACOL_BOOL = 3,
    WM_ACOL_DATETIME = 4,   /* "yyyy-MM-dd[ HH:mm:ss[.SSS]]" strings, kept as ms + form */
    WM_ACOL_LIST = 5,       /* arrays of strings */
    WM_ACOL_JSON = 6,       /* objects and other arrays: their JSON text (as STRING) */
} wm_acol_type_t;

/* STRING and JSON columns share the dictionary encoding. */
#define WM_ACOL_IS_TEXT(t) ((t) == WM_ACOL_STRING || (t) == WM_ACOL_JSON)

/* ------------------------------------------------------------------ parts */

typedef struct wm_part_builder wm_part_builder_t;

int wm_part_builder_new(wm_part_builder_t **out);
void wm_part_builder_free(wm_part_builder_t *b);
/* Adds one event: properties is the record's "properties" OBJECT (or NULL).
 * Objects and arrays that are not all strings are kept as their JSON text in
 * a JSON column; a null value is not stored (queries read it as absent, as
 * the condition language does). */
int wm_part_builder_add(wm_part_builder_t *b, uint64_t user, int64_t time_ms, uint64_t seq,
                        const char *event, size_t event_len, const wm_json_t *properties);
/* Records an identity merge seen in the log range (from -> into). */
int wm_part_builder_merge(wm_part_builder_t *b, uint64_t from_user, uint64_t into_user);
uint64_t wm_part_builder_rows(const wm_part_builder_t *b);
/* Sorts the rows and writes the part to path (written to path.tmp, fsynced,
 * renamed; the directory is not fsynced). */
int wm_part_builder_write(wm_part_builder_t *b, const char *path);

typedef struct wm_part wm_part_t;

typedef struct wm_part_info {
    uint64_t rows;
    uint32_t blocks;
    uint32_t cols;          /* property columns */
    uint32_t events;        /* event names in the dictionary */
    uint32_t merges;
    uint64_t seq_min, seq_max;
    int64_t time_min, time_max;
    uint64_t bytes;
} wm_part_info_t;

/* Opens and maps a part; checks the trailer and the footer's checksum.
 * Errors: WM_ECORRUPT (err names the fault), WM_EIO, WM_ENOMEM. */
int wm_part_open(const char *path, wm_part_t **out, char *err, size_t err_len);
void wm_part_close(wm_part_t *p);
void wm_part_get_info(const wm_part_t *p, wm_part_info_t *out);
const char *wm_part_event_name(const wm_part_t *p, uint32_t code);
/* Property column c: its name and type. */
const char *wm_part_col_name(const wm_part_t *p, uint32_t c, wm_acol_type_t *type);
/* Verifies every block's checksum and decodes it; returns 0 or the first
 * fault (err names file, block, column). */
int wm_part_verify(wm_part_t *p, char *err, size_t err_len);

/* A decoded block (reader side). Arrays are indexed by row in the block. */
typedef struct wm_ablock {
    uint32_t rows;
    const uint64_t *user;
    const int64_t *time;
    const uint64_t *seq;
    const uint32_t *event;  /* part dictionary codes */
} wm_ablock_t;

typedef struct wm_acolumn {
    wm_acol_type_t type;
    const uint8_t *present;   /* bitmap, rows bits */
    const double *num;        /* NUMBER: value; DATETIME: ms (naive local time as UTC) */
    const uint32_t *code;     /* STRING: dictionary code; DATETIME: form (0 date, 1 s, 2 ms);
                               * LIST: offset into list_codes */
    const uint32_t *list_len; /* LIST: element count */
    const uint32_t *list_codes;
    const uint8_t *boolean;   /* BOOL */
} wm_acolumn_t;

static inline bool wm_acol_has(const wm_acolumn_t *c, uint32_t row)
{
    return c->present && (c->present[row >> 3] >> (row & 7)) & 1;
}

typedef struct wm_part_reader wm_part_reader_t;
int wm_part_reader_new(wm_part_t *p, wm_part_reader_t **out);
void wm_part_reader_free(wm_part_reader_t *r);
/* Decodes block b's base columns. WM_ECORRUPT (err names the block and
 * column) leaves the block unusable. */
int wm_part_read_block(wm_part_reader_t *r, uint32_t b, wm_ablock_t *out, char *err, size_t err_len);
/* Decodes property column c of the block last read (an absent column yields
 * present == NULL). */
int wm_part_read_col(wm_part_reader_t *r, uint32_t c, wm_acolumn_t *out, char *err, size_t err_len);
/* Dictionary string of column c (STRING, LIST). */
const char *wm_part_col_str(const wm_part_t *p, uint32_t c, uint32_t code, uint32_t *len);
uint32_t wm_part_col_dict_size(const wm_part_t *p, uint32_t c);
/* Identity merges recorded in the part. */
void wm_part_merges(const wm_part_t *p, const uint64_t **pairs, uint32_t *n);
/* Part file name of a property column lookup: index or -1. */
int32_t wm_part_find_col(const wm_part_t *p, const char *name, wm_acol_type_t type);
/* Formats a DATETIME value back to its text. */
size_t wm_acol_datetime_text(double ms, uint32_t form, char *out, size_t cap);

/* ------------------------------------------------------------------ store */

typedef struct wm_astore wm_astore_t;

typedef struct wm_astore_stats {
    uint32_t parts;
    uint64_t rows;
    uint64_t bytes;
    uint64_t compacted_seq;
    uint64_t compactions, merges;
    uint64_t corrupt_blocks;   /* reported by queries */
} wm_astore_stats_t;

/* Opens the analytics directory of one partition (created if missing):
 * reads its manifest and removes files it does not list. */
int wm_astore_open(const char *dir, uint32_t partition, wm_astore_t **out);
void wm_astore_close(wm_astore_t *s);
/* Compacts the log's durable records after the manifest's sequence into a
 * new part when at least min_events events (0: whenever any) are waiting;
 * then merges small parts when more than WM_ASTORE_PARTS_MAX exist.
 * *did (may be NULL) tells whether anything was written. */
int wm_astore_compact(wm_astore_t *s, wm_log_t *log, uint64_t min_events, bool *did);
/* Merges every part into one (bulk loads, `waymark compact`). */
int wm_astore_merge_all(wm_astore_t *s);
void wm_astore_stats(wm_astore_t *s, wm_astore_stats_t *out);
uint64_t wm_astore_compacted_seq(wm_astore_t *s);
/* Verifies every part listed and every block; prints faults to the buffer. */
int wm_astore_check(const char *dir, wm_buf_t *report, uint64_t *faults);

/* ---------------------------------------------------------------- queries */

/* Per-customer values for where / breakdown clauses that read the customer
 * (profile, tag, in_segment), answered by the host (the engine). */
typedef struct wm_query_host {
    void *ctx;
    /* Value of a profile property or tag of user (JSON, or NULL) in partition
     * part; the arena is reset by the caller between users. */
    const wm_json_t *(*profile)(void *ctx, uint32_t part, uint64_t user, const char *name, wm_arena_t *a);
    const wm_json_t *(*tag)(void *ctx, uint32_t part, uint64_t user, const char *name, wm_arena_t *a);
    bool (*in_segment)(void *ctx, uint32_t part, uint64_t user, const char *segment);
} wm_query_host_t;

/* Dropped customers of a funnel with save_segment: every id (ascending) is
 * handed to the caller, who owns static segments, to create or replace the
 * segment; a non-zero return fails the query with that error. */
typedef int (*wm_query_save_fn)(void *ctx, const char *segment, const uint64_t *users, uint32_t n);

typedef struct wm_query_src {
    wm_astore_t **stores;     /* one per partition */
    wm_log_t **logs;          /* the partitions' logs, for the tail (entries may be NULL) */
    uint32_t n_parts;
    const wm_query_host_t *host;  /* may be NULL: customer clauses then fail */
    uint32_t threads;         /* 0: one per partition, at most 2 */
    volatile int *cancel;     /* set non-zero to cancel; may be NULL */
    size_t memory_max;        /* 0: WM_QUERY_MEMORY_MAX */
    int64_t timeout_ms;       /* 0: the request's timeout_ms or 30 s */
    wm_query_save_fn save;    /* funnel save_segment; NULL: refused */
    void *save_ctx;
} wm_query_src_t;

typedef struct wm_query_error {
    char path[96];           /* JSON path of the fault, or "" */
    char msg[256];
} wm_query_error_t;

/* Runs query kind (events, funnel, retention, paths, attribution,
 * distribution, interval, map, export) on req and writes the JSON answer to
 * out. For "export" the answer is NDJSON of every event in stream order.
 * Errors: WM_EINVAL (bad request: err names the member), WM_ELIMIT
 * (memory), WM_EBUSY (timeout), WM_ECLOSED (cancelled), WM_ENOMEM, WM_EIO. */
int wm_query_run(const wm_query_src_t *src, const char *kind, const wm_json_t *req, wm_buf_t *out,
                 wm_query_error_t *err);


#endif
