/*
 * an_internal.h - internal interfaces of the analytics layer: the part
 * writer (rows in sorted order in, a part file out), dictionaries, the
 * store's snapshots and the in-memory tail.
 */
#ifndef WAYMARK_ANALYTICS_INTERNAL_H
#define WAYMARK_ANALYTICS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "waymark/analytics.h"
#include "waymark/arena.h"
#include "waymark/strmap.h"

#define WM_ASTORE_PARTS_MAX 8
#define WM_ASTORE_PART_RECORDS_MAX 2000000u  /* log records read into one new part */
#define WM_ASTORE_TAILS_MAX 16      /* cached scratch parts of the log tail */

/* A string dictionary: code = insertion order. */
typedef struct wm_an_dict {
    char **strs;
    uint32_t *lens;
    uint32_t n, cap, lcap;
    wm_strmap_t map;
} wm_an_dict_t;

/* Grows *p (an array of elem-byte items, *cap of them) to hold need items,
 * doubling; WM_ELIMIT past 2^31 items. */
int wm__an_grow(void **p, uint32_t *cap, uint64_t need, size_t elem);

int wm__an_dict_add(wm_an_dict_t *d, const char *s, size_t len, uint32_t *code);
void wm__an_dict_release(wm_an_dict_t *d);

/* Streaming writer: rows must come in (user, time, seq) order. After
 * wm__part_writer_row, the row's values are given with _num (NUMBER),
 * _code (STRING code, BOOL 0/1, DATETIME ms with its form) or _list. */
typedef struct wm_part_writer wm_part_writer_t;
int wm__part_writer_open(const char *path, wm_part_writer_t **out);
int wm__part_writer_event(wm_part_writer_t *w, const char *name, size_t len, uint32_t *code);
int wm__part_writer_col(wm_part_writer_t *w, const char *name, size_t len, wm_acol_type_t type, uint32_t *col);
int wm__part_writer_str(wm_part_writer_t *w, uint32_t col, const char *s, size_t len, uint32_t *code);
int wm__part_writer_row(wm_part_writer_t *w, uint64_t user, int64_t time_ms, uint64_t seq, uint32_t ev);
int wm__part_writer_num(wm_part_writer_t *w, uint32_t col, double v);
int wm__part_writer_code(wm_part_writer_t *w, uint32_t col, uint64_t v, uint8_t form);
int wm__part_writer_list(wm_part_writer_t *w, uint32_t col, const uint32_t *codes, uint32_t n);
/* A value of column (name, type) that found no column (wm__part_writer_col
 * gave WM_ELIMIT): its "name=value" text (s for STRING, num for NUMBER, the
 * name alone otherwise) goes to the STRING column "$rest". */
int wm__part_writer_rest(wm_part_writer_t *w, const char *name, size_t len, wm_acol_type_t type, const char *s,
                         size_t slen, double num);
int wm__part_writer_merge(wm_part_writer_t *w, uint64_t from, uint64_t into);
uint64_t wm__part_writer_rows(const wm_part_writer_t *w);
/* The part will not be fsynced (a query's scratch copy of the log tail). */
void wm__part_writer_nosync(wm_part_writer_t *w);
/* Writes the footer, fsyncs, renames into place and frees the writer. */
int wm__part_writer_finish(wm_part_writer_t *w, uint64_t *bytes);
/* Removes the temporary file and frees the writer. */
void wm__part_writer_abort(wm_part_writer_t *w);

const char *wm__part_path(const wm_part_t *p);
/* The reader leaves the user (or seq) column of the next blocks undecoded:
 * wm_ablock_t.user (.seq) is then NULL. */
void wm__part_reader_skip(wm_part_reader_t *r, bool user, bool seq);
/* The decompressed bytes of column c (0-3: user, time, seq, event; 4 + i:
 * property column i) of the block last read, and its stored size (the codec
 * benchmark). Absent columns fail. */
int wm__part_plain(wm_part_reader_t *r, uint32_t c, const void **data, size_t *len, size_t *stored);
uint32_t wm__part_event_len(const wm_part_t *p, uint32_t code);
uint32_t wm__part_block_rows(const wm_part_t *p, uint32_t b);
void wm__part_block_range(const wm_part_t *p, uint32_t b, uint64_t *umin, uint64_t *umax, int64_t *tmin,
                          int64_t *tmax);

/* "yyyy-MM-dd[ HH:mm:ss[.SSS]]": true with the ms (naive, as UTC) and the form. */
bool wm__an_parse_datetime(const char *s, size_t len, int64_t *ms, uint8_t *form);

/* In-memory rows (the builder's and the query tail's). Properties are kept
 * row by row; string values are codes of one shared dictionary. */
typedef struct wm_mrow {
    uint64_t user;
    int64_t time;
    uint64_t seq;
    uint32_t ev;            /* code in the builder's event dictionary */
    uint32_t pstart, pn;    /* properties: props[pstart .. pstart+pn) */
} wm_mrow_t;

typedef struct wm_mprop {
    uint32_t col;           /* builder column (name + type) */
    uint8_t form;           /* DATETIME form */
    uint32_t n;             /* LIST: element count */
    union {
        double num;
        uint64_t code;      /* STRING: string code; BOOL; DATETIME: ms; LIST: offset in lcodes */
    } v;
} wm_mprop_t;

struct wm_part_builder {
    wm_mrow_t *rows;
    uint32_t nrows, rcap;
    wm_mprop_t *props;
    uint32_t nprops, pcap;
    uint32_t *lcodes;
    uint32_t nl, lcap;
    wm_an_dict_t events;
    wm_an_dict_t strings;
    wm_an_dict_t colnames;      /* type byte + name */
    uint64_t *merges;
    uint32_t nmerges, mcap;
    bool sorted;
    bool nosync;                /* written without fsync (query scratch) */
};

/* Sorts the builder's rows by (user, time, seq). */
void wm__builder_sort(wm_part_builder_t *b);
/* Decodes one log payload (a track record or a merge) into the builder;
 * other payloads are ignored. */
int wm__builder_add_payload(wm_part_builder_t *b, const void *payload, uint32_t len, uint64_t seq,
                            wm_arena_t *scratch);
/* Column name and type of builder column c. */
const char *wm__builder_col(const wm_part_builder_t *b, uint32_t c, wm_acol_type_t *type, uint32_t *len);

/* A store version: the parts listed by one manifest. */
typedef struct wm_apart_ref {
    wm_part_t *part;
    char name[64];
    atomic_int refs;
} wm_apart_ref_t;

typedef struct wm_aversion {
    wm_apart_ref_t **parts;
    uint32_t n;
    uint64_t compacted_seq;
    atomic_int refs;
} wm_aversion_t;

/* Current version with a reference; release with wm__aversion_release. */
wm_aversion_t *wm__astore_snapshot(wm_astore_t *s);
void wm__aversion_release(wm_aversion_t *v);
uint32_t wm__astore_partition(const wm_astore_t *s);
void wm__astore_count_corrupt(wm_astore_t *s, uint64_t n);
/* The log's durable records after seq `after` (at most
 * WM_ASTORE_PART_RECORDS_MAX of them) as an unlisted scratch part, mapped and
 * already unlinked; *out is NULL when they hold no event or merge. *next is
 * the last sequence read (call again from there until it stops moving). */
int wm__astore_tail(wm_astore_t *s, wm_log_t *log, uint64_t after, uint64_t *next, wm_part_t **out);
/* The scratch parts covering the durable tail after `after` (the manifest's
 * sequence of the caller's snapshot): the store keeps them for the next
 * query and builds only what was appended since. Each returned reference is
 * released with wm__apart_release; the array with wm_free. */
int wm__astore_tail_parts(wm_astore_t *s, wm_log_t *log, uint64_t after, wm_apart_ref_t ***out, uint32_t *n);
void wm__apart_release(wm_apart_ref_t *r);

#endif
