/*
 * q_internal.h - internal interfaces of the query engine (query.c: request,
 * sources, scan, threads; q_kernels.c: the per-customer computations and the
 * answers of each kind).
 *
 * A query reads every partition's parts and log tail user by user. Each
 * customer's rows (the events that pass the query's where, in stream order:
 * time, then partition and log sequence) are handed to the kind's kernel,
 * which folds them into an accumulator. One accumulator per scanning thread;
 * they are merged at the end. Customers touched by an identity merge are held
 * back during the scan (their events may sit in several partitions) and
 * handed over once all are gathered, under the surviving id.
 */
#ifndef WAYMARK_ANALYTICS_Q_INTERNAL_H
#define WAYMARK_ANALYTICS_Q_INTERNAL_H

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>

#include "analytics/an_internal.h"
#include "waymark/rules.h"

#define Q_SPECS_MAX 32          /* event specs of one query (a bit each) */
#define Q_GROUP_NULL 0u         /* breakdown group of a missing value */
#define Q_GROUP_OTHER 1u        /* "$other": the groups past the limit */
#define Q_GROUPS_MAX 1000000u   /* distinct breakdown values tracked */

/* One event of a customer's stream. */
typedef struct qrow {
    int64_t time;
    uint64_t ord;       /* stream order among equal times: partition << 44 | log sequence */
    uint32_t mask;      /* bit s: the event matches spec s */
    uint32_t name;      /* event name (query dictionary) */
    uint32_t grp;       /* breakdown group (prop breakdown) */
    uint32_t aux;       /* distinct value id (events), label of the matched touch spec
                         * (attribution), property text length (export) */
    double val;         /* numeric reading of the value property, or NaN */
    const char *text;   /* export: the properties' JSON (aux bytes, in a scan arena) */
} qrow_t;

/* Strings interned by the query (event names, group texts, labels). */
typedef struct qdict {
    pthread_mutex_t mu;
    wm_an_dict_t d;
} qdict_t;

/* A condition with what it reads. */
typedef struct qcond {
    wm_cond_t *c;
    uint32_t *props;        /* indexes into query.props of the properties it reads */
    uint32_t nprops;
    char **profile;         /* profile properties it reads */
    uint32_t nprofile;
    bool reads_event;       /* props */
    bool reads_customer;    /* profile, tag, in_segment */
} qcond_t;

typedef struct qspec {
    wm_strmap_t names;      /* the event names it matches */
    char *title;            /* "name", else the event or the events joined by "|" */
    qcond_t where;          /* .c NULL: none */
    int32_t label_prop;     /* attribution: index into query.props, or -1 */
} qspec_t;

typedef enum qbd { QBD_NONE, QBD_PROP, QBD_PROFILE, QBD_TAG } qbd_t;

typedef struct query query_t;

typedef struct qkernel {
    const char *kind;
    size_t conf_size;
    int (*parse)(query_t *q, const wm_json_t *req);        /* kind members -> q->conf */
    void *(*acc_new)(query_t *q);
    void (*acc_free)(query_t *q, void *acc);
    int (*user)(query_t *q, void *acc, uint64_t user, qrow_t *rows, uint32_t n);
    int (*merge)(query_t *q, void *dst, void *src);
    /* main figure of every group id < n (NAN: none), for the breakdown's ranking */
    void (*figures)(query_t *q, void *acc, double *fig, uint32_t n);
    int (*answer)(query_t *q, void *acc, wm_buf_t *out);
    void (*conf_free)(query_t *q);
    /* kinds with several series (events): each is a pass of its own, whose
     * answer the kernel keeps; finish writes the whole answer */
    uint32_t (*series)(query_t *q);
    void (*set_series)(query_t *q, uint32_t s);
    int (*finish)(query_t *q, wm_buf_t *out);
    /* row mode (optional): when row_mode says so, every row is handed to
     * row on its own, without customers (figures that do not depend on who) */
    bool (*row_mode)(query_t *q);
    int (*row)(query_t *q, void *acc, const qrow_t *r);
    /* block mode (optional, within row mode): when block_ok says the query
     * reads nothing but the event and its time, whole blocks go to block */
    bool (*block_ok)(query_t *q);
    int (*block)(query_t *q, void *acc, const int64_t *time, const uint32_t *ev, const uint32_t *evmask,
                 uint32_t nev, uint32_t n);
} qkernel_t;

struct query {
    const wm_query_src_t *src;
    const qkernel_t *k;
    void *conf;

    /* common members */
    int off_min;
    int64_t lo, hi, len;        /* [lo, hi): the range in UTC ms */
    int64_t need_lo, need_hi;   /* rows outside are not read */
    bool all_rows;              /* rows matching no spec are kept (strict order, paths, export) */
    qcond_t where;
    qspec_t specs[Q_SPECS_MAX];
    uint32_t nspecs;
    qbd_t bd;
    char *bd_name;
    int32_t bd_prop;            /* QBD_PROP: index into props */
    uint32_t limit;
    int32_t val_prop;           /* numeric reading into qrow.val, or -1 */
    uint32_t val_mask;          /* ... only for rows matching these specs (0: all) */
    int32_t dval_prop;          /* distinct value id into qrow.aux, or -1 */
    bool export_text;           /* export: every property's JSON into the thread's text */
    bool plain_rows;            /* rows carry only name, time and mask: no where, prop breakdown or values */
    uint32_t label_from;        /* attribution: specs from here on are touches (labels into qrow.aux) */

    /* properties read, by name */
    char **props;
    uint32_t nprops, pcap;

    qdict_t names, groups, labels;

    /* pass 2 of a breakdown: group -> kept group or Q_GROUP_OTHER */
    const uint32_t *remap;
    uint32_t nremap;
    /* the groups to answer, ranked, then $other when gother */
    uint32_t *gorder;
    uint32_t ngorder;
    bool gother;
    bool needs_range;           /* from and to are required (all kinds but export) */

    /* limits */
    atomic_size_t mem;
    size_t mem_max;
    int64_t deadline_ms;
    atomic_int stop;            /* an error ended the scan */
    wm_buf_t warnings;          /* JSON strings, comma separated */
    pthread_mutex_t warn_mu;
    uint64_t corrupt;
    /* "stats": true asks for these in the answer */
    bool want_stats;
    int64_t started_ms;
    atomic_uint_fast64_t rows_read, customers;
    uint32_t nparts_read;
};

/* The breakdown group of a row's group id during this pass. */
static inline uint32_t q_group(const query_t *q, uint32_t g)
{
    return q->remap ? (g < q->nremap ? q->remap[g] : Q_GROUP_OTHER) : g;
}

/* Accounts n bytes of working memory; WM_ELIMIT past the query's limit. */
int q_mem(query_t *q, int64_t n);
/* Grows an array as wm__an_grow, counting the memory. */
int q_grow(query_t *q, void **p, uint32_t *cap, uint64_t need, size_t elem);
int q_intern(qdict_t *d, const char *s, size_t len, uint32_t *id);
const char *q_str(qdict_t *d, uint32_t id, uint32_t *len);
/* Group text: NULL for the null group, "$other" for Q_GROUP_OTHER. */
const char *q_group_text(query_t *q, uint32_t g, uint32_t *len);
/* Writes a group member value (null or a JSON string). */
void q_write_group(query_t *q, wm_buf_t *b, uint32_t g);
/* Duration member in ms (dflt when absent); "0" is 0. */
int q_duration(query_t *q, const wm_json_t *req, const char *key, const char *dflt, int64_t *out,
               wm_query_error_t *err);
/* A spec member -> q->specs[*idx]. */
int q_spec(query_t *q, const wm_json_t *spec, const char *path, uint32_t *idx, wm_query_error_t *err);
int q_prop_index(query_t *q, const char *name, int32_t *idx);
/* Local day number of t, and the UTC ms of local day d's start. */
int64_t q_day(const query_t *q, int64_t t);
int64_t q_day_start(const query_t *q, int64_t day);
/* "YYYY-MM-DD" of a local day. */
void q_day_text(int64_t day, char *out, size_t cap);
void q_write_num(wm_buf_t *b, double v);
/* x[floor(q*(n-1))] of the values, sorted in place. */
int64_t q_quantile(int64_t *v, uint32_t n, double qq, bool sorted);
int q_sort_i64(int64_t *v, uint32_t n);

extern const qkernel_t wm__qk_events, wm__qk_funnel, wm__qk_retention, wm__qk_paths, wm__qk_attribution,
    wm__qk_distribution, wm__qk_interval, wm__qk_map, wm__qk_export;

/* The error of a query member. */
int q_fail(wm_query_error_t *err, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
