/*
 * runtime.h - internal: the audience runtime (tags and segments kept on the
 * partition apply path) and its registry of published definitions.
 *
 * The registry (one per engine) holds the compiled, published tag and
 * segment definitions of every project as an immutable snapshot, swapped
 * when something is published. Snapshots are kept until close, so a writer
 * that took one keeps a valid pointer for its whole transaction.
 *
 * The runtime (one per partition) works inside the partition writer's LMDB
 * transaction: every tag value change, membership change, counter update and
 * the $SegmentEntered / $SegmentExited events they cause commit together with
 * the event, profile change, command or clock pass that caused them. So a
 * restart never loses or repeats a change, and the op events reach the log
 * exactly once (through the host's op queue).
 *
 * Stored in the partition's LMDB env:
 *   a_tag      user u64be | tag key            -> changed_ms, aux_ms, share?, source?, value (tag_decode)
 *   a_tagidx   project \0 tag key \0 user u64be -> value JSON (distribution, listing)
 *   a_taghist  user u64be | tag key \0 | time  -> value JSON or null (history)
 *   a_cnt      spec hash u64be | user u64be    -> daily buckets (rules/buckets.c)
 *   a_pref     user u64be | tag key            -> preference counts per day and value
 *   a_member   segment id u32be | user u64be   -> since_ms i64 | version u32
 *   a_useg     user u64be | segment id u32be   -> since_ms i64 | version u32
 *   a_meta     clock day, background task cursors, maintained counter specs
 * and in memory, per segment, a CRoaring bitmap of the members' user ids
 * (rebuilt from a_member on open, updated after each commit).
 */
#ifndef WAYMARK_AUDIENCE_RUNTIME_H
#define WAYMARK_AUDIENCE_RUNTIME_H

#include <lmdb.h>
#include <stdbool.h>
#include <stdint.h>

#include "waymark/arena.h"
#include "waymark/audience.h"
#include "waymark/buf.h"
#include "waymark/json.h"
#include "waymark/log.h"
#include "waymark/strmap.h"

struct wm_catalog;

/* ---- registry ---- */

typedef struct wm_atag {
    char *project, *key;
    uint32_t id, version;
    wm_tag_def_t *def;
    uint32_t index;             /* position in the snapshot's tags */
    uint32_t *dep_tags, n_dep_tags;     /* later tags that read this one */
    uint32_t *dep_segs, n_dep_segs;     /* segments that read this one */
    int32_t window_days;        /* an event older than this many local days cannot move
                                 * the value (-1: any event may) */
} wm_atag_t;

typedef struct wm_aseg {
    char *project, *key;
    uint32_t id, version;
    wm_segment_def_t *def;
    uint32_t index;
    uint32_t *dep_segs, n_dep_segs;     /* later segments that read this one */
    bool realtime;              /* kept per event (rule, incremental, realtime refresh; algebra) */
    int32_t window_days;        /* as for tags (rule segments) */
    bool monotone;              /* an event can only make it true (a member stays one) */
} wm_aseg_t;

/* What one event name (or profile changes, "") makes dirty. */
typedef struct wm_adeps {
    uint32_t *tags;             /* indexes into tags, ascending (= topological) */
    uint32_t n_tags;
    uint32_t *segs;
    uint32_t n_segs;
    uint32_t *specs;            /* counter specs fed by this event */
    uint32_t n_specs;
} wm_adeps_t;

typedef struct wm_asnap {
    wm_atag_t **tags;           /* topological: a tag comes after the tags it reads */
    uint32_t n_tags;
    wm_aseg_t **segs;           /* topological: after the segments it reads */
    uint32_t n_segs;
    const wm_counter_spec_t **specs; /* every counter of every definition, by key once */
    uint32_t n_specs;
    wm_strmap_t by_event;       /* event name -> index into deps (+1) */
    wm_adeps_t *deps;           /* [0] = "*" (every event), [1] = profile changes, then events */
    uint32_t n_deps;
    uint32_t max_seg_id;
    bool clock_work;            /* some definition moves with the clock */
    int32_t *seg_ix_by_id;      /* segment id -> index into segs, -1 (max_seg_id + 1 entries) */
    wm_strmap_t tag_by_key;     /* project \0 key -> index into tags */
    wm_strmap_t seg_by_key;     /* project \0 key -> index into segs */
    struct wm_asnap *older;
} wm_asnap_t;

typedef struct wm_areg wm_areg_t;

int wm__areg_open(struct wm_catalog *cat, wm_areg_t **out);
void wm__areg_close(wm_areg_t *r);
/* Rebuilds the snapshot from the catalog's published definitions. A stored
 * definition that no longer compiles is skipped and reported on stderr. */
int wm__areg_reload(wm_areg_t *r);
const wm_asnap_t *wm__areg_snapshot(wm_areg_t *r);
const wm_atag_t *wm__areg_tag(const wm_asnap_t *s, const char *project, const char *key);
const wm_aseg_t *wm__areg_seg(const wm_asnap_t *s, const char *project, const char *key);
const wm_aseg_t *wm__areg_seg_id(const wm_asnap_t *s, uint32_t id);
/* Dependencies of an event name (never NULL: an empty set when none). */
const wm_adeps_t *wm__areg_event_deps(const wm_asnap_t *s, const char *event);

/* ---- per-partition runtime ---- */

typedef struct wm_aud wm_aud_t;

typedef struct wm_aud_host {
    void *ctx;
    uint32_t part_index;
    MDB_dbi dbi_profiles;       /* user u64be -> profile JSON */
    MDB_dbi dbi_events;         /* user | time | seq -> log position */
    MDB_dbi dbi_users;          /* user u64be -> {"project":...} */
    int (*read_event)(void *ctx, const wm_log_pos_t *pos, char **json, size_t *len);
    int (*item_get)(void *ctx, const char *project, const char *type, const char *id, char **json,
                    size_t *len);
    /* the project of a stored user row (dbi_users value) into out; false
     * when the row cannot be read */
    bool (*user_project)(void *ctx, const void *row, size_t len, char *out, size_t cap);
    /* queues an operational event of the user in the current transaction
     * (op_ctx is what the partition passed to wm__atx_begin) */
    int (*op_event)(void *op_ctx, uint64_t user_id, const char *project, const char *event,
                    const char *props_json);
    const char *default_tz;     /* NULL: Asia/Shanghai */
} wm_aud_host_t;

int wm__aud_open(MDB_env *env, MDB_txn *txn, wm_areg_t *reg, const wm_aud_host_t *host,
                 wm_aud_t **out);
void wm__aud_close(wm_aud_t *a);

/* Per-transaction context. */
typedef struct wm_atx {
    wm_aud_t *rt;
    MDB_txn *txn;
    wm_arena_t *arena;
    int64_t now_ms;
    void *op_ctx;
    const wm_asnap_t *snap;
    /* membership deltas of this txn, applied to the bitmaps on commit */
    struct wm_adelta *deltas;
    uint32_t n_deltas, cap_deltas;
} wm_atx_t;

void wm__atx_begin(wm_atx_t *t, wm_aud_t *rt, MDB_txn *txn, wm_arena_t *arena, int64_t now_ms,
                   void *op_ctx);
void wm__atx_committed(wm_atx_t *t);
void wm__atx_aborted(wm_atx_t *t);
/* Frees the context's buffers (once, when the writer stops). */
void wm__atx_release(wm_atx_t *t);

/* True when any tag or segment is published (else events cost nothing here). */
bool wm__aud_active(wm_aud_t *a);

/* The event name of a raw stored record, read without parsing it, into buf;
 * NULL when the text is unusual (escapes, longer than cap): parse instead. */
const char *wm__aud_raw_event_name(const char *json, size_t len, char *buf, size_t cap);
/* Whether an event (its raw name, NULL = unknown) feeds any tag, segment or counter. */
bool wm__aud_event_wanted(wm_aud_t *a, const char *name);
/* An applied event (stored record form, parsed) of user_id. */
int wm__aud_on_event(wm_atx_t *t, uint64_t user_id, const wm_json_t *event);
/* After a profile record of user_id was applied. */
int wm__aud_on_profile(wm_atx_t *t, uint64_t user_id, const char *project);
/* A command for the audience ({"cmd":"aud_recompute"|"tag_set"|"tag_import"|"segment_list", ...}). */
int wm__aud_on_command(wm_atx_t *t, uint64_t user_id, const wm_json_t *cmd);
/* Background work in bounded rounds: definition recomputes after publish
 * and the clock pass at each day change. *more = call again. */
int wm__aud_background(wm_atx_t *t, uint32_t max_users, bool *more);
/* True when background work is waiting (or the day changed). */
bool wm__aud_background_due(wm_aud_t *a, int64_t now_ms);

/* Tags for the journey runtime, in the same transaction. The value is
 * parsed into t->arena; NULL when unset. */
const wm_json_t *wm__aud_tag_get(wm_atx_t *t, uint64_t user_id, const char *key);
/* A manual value (set_tag node, API): value NULL unsets. source: "journey"/"api"/"import". */
int wm__aud_tag_set(wm_atx_t *t, uint64_t user_id, const char *project, const char *key,
                    const wm_json_t *value, const char *source);
/* Every tag of the user as one object {key: value} (advisor leads). */
int wm__aud_tags_object(wm_atx_t *t, uint64_t user_id, wm_buf_t *out);
bool wm__aud_in_segment(wm_atx_t *t, uint64_t user_id, const char *project, const char *key);

/* ---- queries (read-only txns; safe from any thread) ---- */

/* Appends the members "tags":{key: value},"tag_meta":{key:{"changed_ms",
 * "share"?, "source"?}},"segments":[{"segment","name","since_ms","version"}]. */
int wm__aud_user_json(wm_aud_t *a, uint64_t user_id, wm_buf_t *out);
/* The tag's value at time at_ms (history), appended as JSON (null when unset). */
int wm__aud_tag_at(wm_aud_t *a, uint64_t user_id, const char *key, int64_t at_ms, wm_buf_t *out);
/* Appends the history of one tag of a user: [{"value":..,"at_ms":..}, ...]. */
int wm__aud_tag_history(wm_aud_t *a, uint64_t user_id, const char *key, wm_buf_t *out);
/* Adds value-text -> count of a tag (now, or at at_ms when > 0) into counts. */
int wm__aud_tag_distribution(wm_aud_t *a, const char *project, const char *key, int64_t at_ms,
                             wm_strmap_t *counts);
/* Members of a segment: ORs this partition's bitmap into dst (a roaring_bitmap_t *). */
void wm__aud_members_or(wm_aud_t *a, uint32_t seg_id, void *dst);
uint64_t wm__aud_member_count(wm_aud_t *a, uint32_t seg_id);
/* The version of definition (kind 't' / 's', id) this partition finished
 * computing for all its users (0: none yet). */
uint32_t wm__aud_done_version(wm_aud_t *a, char kind, uint32_t id);
/* Since-when of a member (0 when not a member). */
int64_t wm__aud_member_since(wm_aud_t *a, uint32_t seg_id, uint64_t user_id);

/* A user row of project was written (the engine calls this): the
 * universe of previews and negations. */
void wm__aud_user_seen(wm_aud_t *a, uint64_t user_id, const char *project);
/* Every customer of project in this partition (roaring_bitmap_t *; caller frees). */
void *wm__aud_universe_copy(wm_aud_t *a, const char *project);
/* The customers of project in this partition matching a condition (AST),
 * as a roaring_bitmap_t * in *out (caller frees): answered by column scans
 * of profiles, tags, counters and memberships where the condition allows,
 * by evaluating single customers elsewhere (plan.c). */
int wm__aud_select(wm_aud_t *a, const char *project, const wm_json_t *ast, int64_t now_ms, void **out);

/* Evaluates a condition for every user of project in this partition
 * (preview); calls cb for each match (stop with non-zero). */
int wm__aud_preview(wm_aud_t *a, const char *project, const wm_cond_t *cond, int64_t now_ms,
                    int (*cb)(void *ctx, uint64_t user_id), void *ctx);

/* The recommendation index (purchases by customer, item popularity,
 * co-purchases), fed on the apply path whether or not tags exist. */
/* Whether an event name (raw, NULL = unknown) is a purchase the index reads. */
bool wm__aud_rec_candidate(const char *name);
int wm__aud_on_event_rec(wm_atx_t *t, uint64_t user_id, const wm_json_t *event);
int wm__aud_rec_bought(wm_aud_t *a, uint64_t user_id, int (*cb)(void *ctx, const char *item), void *ctx);
int wm__aud_rec_counts(wm_aud_t *a, const char *project, const char *type, const char *from,
                       int (*cb)(void *ctx, const char *item, uint64_t count), void *ctx);

/* Events of a user in [from_ms, to_ms), oldest first, parsed into arena. */
int wm__aud_user_events(wm_aud_t *a, MDB_txn *txn, wm_arena_t *arena, uint64_t user_id,
                        int64_t from_ms, int64_t to_ms,
                        int (*cb)(void *cbctx, const wm_json_t *event), void *cbctx);

#endif
