/*
 * audience.h - tags (标签) and segments (分群): definitions, validation,
 * compiled forms; product recommendations.
 *
 * Definitions are JSON (docs/tags.md, docs/segments.md). Compiling checks a
 * definition completely - every error names its JSON path ("$.layers[1].if.op")
 * - and produces an immutable compiled form that every partition's audience
 * runtime evaluates on its apply path. Conditions are compiled by the rules
 * module; behaviour aggregates use its counters (did-clauses), so a metric tag
 * and a segment that say the same thing share one counter.
 *
 * Thread safety: compiled definitions are immutable; free them only when no
 * partition can still use them (the engine keeps old snapshots until close).
 */
#ifndef WAYMARK_AUDIENCE_H
#define WAYMARK_AUDIENCE_H

#include <stdbool.h>
#include <stdint.h>

#include "waymark/arena.h"
#include "waymark/buf.h"
#include "waymark/json.h"
#include "waymark/rules.h"

#define WM_TAG_LAYERS_MAX 64
#define WM_TAG_BUCKETS_MAX 32
#define WM_SEGMENT_OPERANDS_MAX 16
#define WM_AUD_KEY_MAX 64           /* tag / segment key: [A-Za-z_][A-Za-z0-9_]{0,63} */
/* Display name and description (UTF-8 bytes): a console label (a few dozen
 * Chinese characters) and a paragraph; the bound keeps catalog rows small. */
#define WM_AUD_NAME_MAX 256
#define WM_AUD_DESCRIPTION_MAX 4096
/* A tag value (layer value, default, bucket name), UTF-8 bytes: values are
 * labels such as "高净值", stored per customer, so they stay short. */
#define WM_TAG_VALUE_MAX 256

/* One validation problem: JSON path ("$" = the whole definition) and text. */
typedef struct wm_aud_error {
    char path[160];
    char msg[200];
} wm_aud_error_t;

/* ---- tags ---- */

typedef enum wm_tag_kind {
    WM_TAG_RULE = 1,        /* ordered layers: first whose condition holds gives the value */
    WM_TAG_METRIC,          /* a number from behaviour, optionally bucketed */
    WM_TAG_FIRST,           /* first value of an event property */
    WM_TAG_LAST,            /* last value of an event property */
    WM_TAG_PREFERENCE,      /* most frequent value of an event property over a window */
    WM_TAG_IMPORTED,        /* values uploaded for a list of customers */
    WM_TAG_MANUAL,          /* set by the API or a journey's set_tag node */
} wm_tag_kind_t;

typedef enum wm_tag_type {  /* the value's type */
    WM_TAG_STRING = 1,
    WM_TAG_NUMBER,
    WM_TAG_BOOL,
} wm_tag_type_t;

typedef enum wm_metric_agg {
    WM_METRIC_COUNT = 1,
    WM_METRIC_SUM,
    WM_METRIC_AVG,
    WM_METRIC_MIN,
    WM_METRIC_MAX,
    WM_METRIC_DISTINCT,
    WM_METRIC_DAYS_SINCE,   /* whole local days since the last matching event */
} wm_metric_agg_t;

typedef struct wm_tag_layer {
    char *value;            /* the tag value (text; typed per def->type) */
    wm_cond_t *cond;
} wm_tag_layer_t;

/* Metric bucket: value < lt (the last bucket may have no bound: has_lt false). */
typedef struct wm_tag_bucket {
    char *name;
    double lt;
    bool has_lt;
} wm_tag_bucket_t;

typedef struct wm_tag_def {
    char *key;
    char *name;                 /* display name (may be Chinese) */
    char *description;
    wm_tag_kind_t kind;
    wm_tag_type_t type;         /* METRIC without buckets: NUMBER; bucketed: STRING */
    uint32_t version;           /* assigned by the catalog on publish; 0 in drafts */
    /* RULE */
    wm_tag_layer_t *layers;
    uint32_t n_layers;
    char *default_value;        /* when no layer holds; NULL = tag unset */
    /* METRIC / FIRST / LAST / PREFERENCE: the behaviour it reads */
    char *event;                /* event name */
    wm_cond_t *where;           /* event filter, or NULL */
    char *field;                /* event property (FIRST/LAST/PREFERENCE; METRIC sum..distinct) */
    wm_metric_agg_t agg;        /* METRIC */
    int64_t within_ms;          /* METRIC/PREFERENCE window (whole days, <= 90d); 0 = none */
    wm_tag_bucket_t *buckets;   /* METRIC, optional */
    uint32_t n_buckets;
    /* METRIC count..distinct: the compiled did-clause whose counter the
     * metric reads ({"did": event, "where": ..., "field": ..., "within": ...}),
     * so the runtime maintains its counter like any condition's. */
    wm_cond_t *metric_cond;
    /* inputs (from every condition of the definition; see wm_cond_deps) */
    bool uses_profile;          /* re-evaluate on profile changes */
    bool uses_clock;            /* moves with the clock alone (windows, days since) */
    char **input_events;        /* events whose arrival may change the value */
    uint32_t n_input_events;
    char **input_tags;          /* other tags read by conditions */
    uint32_t n_input_tags;
    char **input_segments;
    uint32_t n_input_segments;
    wm_arena_t arena;           /* owns every string and array above */
} wm_tag_def_t;

/*
 * Validates and compiles a tag definition (docs/tags.md). Returns 0 with
 * *out (free with wm_tag_free), WM_EINVAL with up to max_errs errors in errs
 * (*n_errs = how many were found), or WM_ENOMEM. Every error is collected.
 */
int wm_tag_compile(const wm_json_t *def, wm_tag_def_t **out, wm_aud_error_t *errs,
                   uint32_t max_errs, uint32_t *n_errs);
/* Parses text as JSON and compiles it (a syntax error is one error at "$"
 * naming the byte offset). */
int wm_tag_compile_text(const char *text, size_t len, wm_tag_def_t **out, wm_aud_error_t *errs,
                        uint32_t max_errs, uint32_t *n_errs);
void wm_tag_free(wm_tag_def_t *t);
const char *wm_tag_kind_name(wm_tag_kind_t k);

/* The bucket name of a metric value (NULL when the tag has no buckets). */
const char *wm_tag_bucket_of(const wm_tag_def_t *t, double value);

/* ---- segments ---- */

typedef enum wm_segment_kind {
    WM_SEGMENT_RULE = 1,        /* a condition */
    WM_SEGMENT_UNION,           /* set algebra over other segments */
    WM_SEGMENT_INTERSECT,
    WM_SEGMENT_EXCEPT,          /* first operand minus the others */
    WM_SEGMENT_STATIC,          /* an uploaded list or a snapshot */
} wm_segment_kind_t;

typedef enum wm_segment_refresh {
    WM_REFRESH_REALTIME = 1,    /* kept by every event / profile change, clock pass */
    WM_REFRESH_SCHEDULE,        /* recomputed on a schedule (cron) */
} wm_segment_refresh_t;

typedef struct wm_segment_def {
    char *key;
    char *name;
    char *description;
    wm_segment_kind_t kind;
    uint32_t version;           /* assigned by the catalog on publish */
    wm_cond_t *cond;            /* RULE */
    char **operands;            /* UNION / INTERSECT / EXCEPT: segment keys */
    uint32_t n_operands;
    char *snapshot_of;          /* STATIC: a snapshot of this rule segment (else uploaded) */
    wm_segment_refresh_t refresh;
    char *cron;                 /* SCHEDULE: "m h dom mon dow" */
    /* inputs, as for tags */
    bool uses_profile;
    bool uses_clock;
    bool incremental;           /* false: cannot be kept per event (see docs/segments.md) */
    char **input_events;
    uint32_t n_input_events;
    char **input_tags;
    uint32_t n_input_tags;
    char **input_segments;      /* in_segment references and operands */
    uint32_t n_input_segments;
    wm_arena_t arena;
} wm_segment_def_t;

int wm_segment_compile(const wm_json_t *def, wm_segment_def_t **out, wm_aud_error_t *errs,
                       uint32_t max_errs, uint32_t *n_errs);
int wm_segment_compile_text(const char *text, size_t len, wm_segment_def_t **out,
                            wm_aud_error_t *errs, uint32_t max_errs, uint32_t *n_errs);
void wm_segment_free(wm_segment_def_t *s);
const char *wm_segment_kind_name(wm_segment_kind_t k);

/* Appends {"valid":bool,"errors":[{"path","message"}]} for n errors. */
void wm_aud_errors_json(const wm_aud_error_t *errs, uint32_t n, wm_buf_t *out);

/* ---- product recommendations (seed 004) ---- */

/* Risk level of "C3" / "R3" / "3" / 3 -> 3 (1..5); 0 when not a level. */
int wm_risk_level(const wm_json_t *v);

/* A candidate product. */
typedef struct wm_rec_item {
    const char *id;
    const char *name;           /* display name (fund_name), or NULL */
    const char *category;       /* e.g. fund_type, or NULL */
    int risk;                   /* 1..5 (R1..R5); 0 = unknown: never recommended */
    uint64_t buyers;            /* popularity: customers who bought it */
} wm_rec_item_t;

/* One view of a product by the customer (newest first in the input). */
typedef struct wm_rec_view {
    const char *id;
    int64_t time_ms;
} wm_rec_view_t;

/* Co-purchase: `count` customers who bought `from` also bought `to`. */
typedef struct wm_rec_co {
    const char *from, *to;
    uint64_t count;
} wm_rec_co_t;

typedef struct wm_rec_input {
    const wm_rec_item_t *items;
    uint32_t n_items;
    const wm_rec_view_t *views;     /* the customer's recent views, newest first */
    uint32_t n_views;
    const char *const *held;        /* products the customer holds or bought */
    uint32_t n_held;
    const wm_rec_co_t *co;          /* co-purchases from the customer's held products */
    uint32_t n_co;
    int user_risk;                  /* 1..5 (C1..C5); 0 = unknown: nothing is recommended */
    bool include_held;              /* held products may be recommended again */
    uint32_t n;                     /* how many to return (<= WM_REC_MAX) */
    int64_t now_ms;
} wm_rec_input_t;

#define WM_REC_MAX 50

typedef struct wm_rec_result {
    const char *id;                 /* point into the input's items */
    const char *name;
    const char *category;
    int risk;
    double score;
    const char *reason_code;        /* "viewed" | "same_category" | "co_purchase" | "popular" */
    char reason[200];               /* the strongest reason, in words */
} wm_rec_result_t;

/*
 * Ranks the candidates for one customer: products the customer viewed (more
 * and more recent views score higher), products of the categories viewed,
 * products bought by customers who bought what this customer holds, and
 * popularity; never a product above the customer's risk level (item risk <=
 * user risk, both known), never a held product unless include_held. Ties
 * break by id, so the answer is deterministic. out has room for in->n.
 * Returns 0 with *n_out results, or WM_EINVAL.
 */
int wm_recommend(const wm_rec_input_t *in, wm_rec_result_t *out, uint32_t *n_out);

#endif
