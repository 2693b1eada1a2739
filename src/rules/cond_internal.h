/*
 * cond_internal.h - the compiled form of a condition, shared by the
 * compiler (cond.c) and the evaluator (cond_eval.c).
 *
 * A program is a flat array of nodes in pre-order. Every node records
 * `end`, the index just past its subtree, so the children of an all/any node
 * at i are i+1, then nodes[i+1].end, ... up to nodes[i].end: evaluation walks
 * indexes, never JSON, and short-circuits by jumping to `end`. Leaves carry
 * their literal already typed (wm__val_t), names interned in the program's
 * arena, and an `aux` index into side tables for what does not fit a node:
 * sorted `in` lists, compiled regexes, did-clauses and sequences.
 */
#ifndef WAYMARK_COND_INTERNAL_H
#define WAYMARK_COND_INTERNAL_H

#include <regex.h>

#include "rules/rules_internal.h"
#include "waymark/arena.h"
#include "waymark/limits.h"
#include "waymark/rules.h"

enum { N_ALL = 1, N_ANY, N_NOT, N_PRED, N_DID, N_SEQ, N_SEGMENT };
enum { S_NONE = 0, S_PROFILE, S_PROP, S_ITEM, S_TAG, S_TRIGGER };
/* S_TRIGGER: a reference {"trigger": name} to the triggering event's property
 * (inside a did/sequence where: the event the whole condition runs for). */
enum {
    OP_EQ = 1, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_BETWEEN, OP_IN, OP_NOT_IN,
    OP_CONTAINS, OP_NOT_CONTAINS, OP_MATCHES, OP_IS_SET, OP_NOT_SET,
    OP_WITHIN_LAST, OP_BEFORE, OP_AFTER,
};
enum { AGG_COUNT = 1, AGG_SUM, AGG_AVG, AGG_MIN, AGG_MAX, AGG_DISTINCT };

typedef struct cnode {
    uint8_t kind;           /* N_* */
    uint8_t op;             /* OP_* (predicates) */
    uint8_t src;            /* S_* where the tested value comes from */
    uint8_t ref_src;        /* value is a reference: S_PROFILE / S_PROP, else 0 */
    uint8_t item_from;      /* item id source: S_PROFILE / S_PROP */
    bool relative;          /* before/after: dur_ms from now, else lit */
    uint32_t end;           /* index past this subtree */
    uint32_t aux;           /* list / regex / did / seq index */
    const char *name;       /* property, tag or segment name */
    const char *item_type;
    const char *item_key;
    const char *ref_name;
    int64_t dur_ms;         /* within_last / relative before / after */
    wm__val_t lit;          /* value, or between's lo */
    wm__val_t hi;           /* between's hi */
} cnode_t;

typedef struct lstr {
    const char *s;
    uint32_t len;
} lstr_t;

/* `in` list: strings sorted by bytes, numbers sorted (numeric strings are
 * in both), bools as bits (1 = false present, 2 = true present). */
typedef struct inlist {
    lstr_t *strs;
    uint32_t n_strs;
    double *nums;
    uint32_t n_nums;
    uint8_t bools;
} inlist_t;

/* An absolute window end: epoch ms, or a naive local datetime. */
typedef struct tbound {
    bool set;
    bool naive;
    int64_t ms;
} tbound_t;

typedef struct did {
    uint32_t spec;          /* index into specs */
    uint8_t agg;            /* AGG_* */
    uint8_t op;             /* OP_EQ..OP_BETWEEN */
    double lo, hi;
    int32_t days;           /* relative window: last `days` local days incl. today */
    tbound_t from, to;      /* absolute window (days == 0) */
    bool scan;              /* where references the trigger: answered by scanning
                             * the user's events, not from the counters */
} did_t;

typedef struct seq {
    uint32_t n;
    const char *event[WM_COND_SEQ_STEPS_MAX];
    wm_cond_t *where[WM_COND_SEQ_STEPS_MAX];
    int64_t within_ms;      /* > 0: [now - within, now] */
    tbound_t from, to;
} seq_t;

struct wm_cond {
    cnode_t *nodes;
    uint32_t n_nodes;
    wm_arena_t arena;       /* interned strings, lists */
    did_t *dids;
    uint32_t n_dids;
    seq_t *seqs;
    uint32_t n_seqs;
    inlist_t *lists;
    uint32_t n_lists;
    regex_t **res;
    uint32_t n_res;
    wm_counter_spec_t *specs;
    uint32_t n_specs;
    wm_cond_t **subs;       /* where-clauses owned by this program */
    uint32_t n_subs;
};

#endif
