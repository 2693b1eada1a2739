/*
 * runtime.h - internal: the journey runtime.
 *
 * The registry (one per engine) holds the compiled, published journey
 * versions, channels and templates of every project, as an immutable
 * snapshot that is swapped when something is published, paused or stopped.
 *
 * The runtime (one per partition) executes instances inside the partition
 * writer's LMDB transaction: every transition happens in the same
 * transaction as the event, timer or command that caused it, together with
 * the outbox messages, leads, counters, statistics and the operational
 * events it produces. So a restart never loses or repeats a transition.
 */
#ifndef WAYMARK_JOURNEY_RUNTIME_H
#define WAYMARK_JOURNEY_RUNTIME_H

#include <lmdb.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/names.h"
#include "waymark/arena.h"
#include "waymark/buf.h"
#include "waymark/dispatch.h"
#include "waymark/journey.h"
#include "waymark/json.h"
#include "waymark/log.h"

struct wm_catalog;
struct wm_engine;

/* ---- registry ---- */

typedef struct wm_jversion {
    char *project;
    char *key;
    uint32_t version;
    wm_journey_def_t *def;
    bool current;               /* the version new entries use */
    bool accepting;             /* journey published (not paused/stopped): entries allowed */
    bool running;               /* not stopped: live instances advance */
} wm_jversion_t;

typedef struct wm_jchannel {
    char *project, *name;
    char *kind;                 /* webhook sms push wecom robot_call inbox advisor */
    wm_channel_kind_t dispatch_kind;
    char *url, *secret;
    char *to_prop;              /* profile property with the address (mobile, push token ...) */
} wm_jchannel_t;

typedef struct wm_jtemplate {
    char *project, *key;
    char *channel;
    wm_template_t *title, *body;
} wm_jtemplate_t;

/* Project settings (project_settings table): holdout, calendar, time zone,
 * project-wide frequency caps. */
typedef struct wm_jproject {
    char *name;
    uint32_t holdout_percent;   /* stable share of users who get no journey messages */
    char *default_tz;
    wm_calendar_t *calendar;
    wm_freq_cap_t *caps;        /* project-wide caps across all journeys */
    uint32_t n_caps;
} wm_jproject_t;

typedef struct wm_jsnapshot {
    wm_jversion_t **versions;   /* all published versions (sorted by priority desc for entries) */
    uint32_t n_versions;
    wm_jchannel_t **channels;
    uint32_t n_channels;
    wm_jtemplate_t **templates;
    uint32_t n_templates;
    const wm_counter_spec_t **specs;    /* every counter spec of every condition */
    uint32_t n_specs;
    struct wm_jproject **projects;      /* per-project settings */
    uint32_t n_projects;
    struct wm_jsnapshot *older;  /* kept alive until close: instances may point at them */
} wm_jsnapshot_t;

typedef struct wm_jreg wm_jreg_t;

int wm__jreg_open(struct wm_catalog *cat, wm_jreg_t **out);
void wm__jreg_close(wm_jreg_t *r);
/* Rebuilds the snapshot from the catalog. */
int wm__jreg_reload(wm_jreg_t *r);
/* Current snapshot (never freed before close). */
const wm_jsnapshot_t *wm__jreg_snapshot(wm_jreg_t *r);
const wm_jversion_t *wm__jreg_version(const wm_jsnapshot_t *s, const char *project, const char *key,
                                      uint32_t version);
const wm_jversion_t *wm__jreg_current(const wm_jsnapshot_t *s, const char *project, const char *key);
const wm_jchannel_t *wm__jreg_channel(const wm_jsnapshot_t *s, const char *project, const char *name);
const wm_jproject_t *wm__jreg_project(const wm_jsnapshot_t *s, const char *project);
const wm_calendar_t *wm__jreg_calendar(const wm_jsnapshot_t *s, const char *project);
const wm_jtemplate_t *wm__jreg_template(const wm_jsnapshot_t *s, const char *project, const char *key);

/* ---- per-partition runtime ---- */

typedef struct wm_jrt wm_jrt_t;

/* What the runtime needs from the partition and the engine. */
typedef struct wm_jrt_host {
    void *ctx;
    uint32_t part_index;
    MDB_dbi dbi_profiles;       /* the partition's profiles (same env) */
    MDB_dbi dbi_events;         /* the partition's event index (store/evidx.h) */
    wm_names_t *names;          /* the partition's name ids (store/names.h); commit and
                                 * abort of a jtx are passed on to it */
    /* properties of an item (any partition); JSON text copy, caller frees */
    int (*item_get)(void *ctx, const char *project, const char *type, const char *id, char **json,
                    size_t *len);
    /* the stored record at a log position of this partition; caller frees */
    int (*read_event)(void *ctx, const wm_log_pos_t *pos, char **json, size_t *len);
    /* journey-level entry cap across partitions: reserves one entry when the
     * total is below cap; own = this partition's persisted count */
    bool (*entry_reserve)(void *ctx, const char *project, const char *key, uint64_t cap, uint64_t own);
    /* a message ready to send (after the transaction commits) */
    void (*dispatch)(void *ctx, const wm_dispatch_msg_t *m);
    /* tags and segments, kept by the audience runtime of the same partition
     * in the same transaction (aud_tx = wm_jtx_t.aud_tx): a tag's value
     * (parsed into the txn arena, NULL when unset), setting a manual value,
     * all tags as one JSON object {key: value} appended to out, and
     * segment membership */
    const wm_json_t *(*tag_get)(void *ctx, void *aud_tx, uint64_t user_id, const char *tag);
    int (*tag_set)(void *ctx, void *aud_tx, uint64_t user_id, const char *project, const char *tag,
                   const wm_json_t *value);
    int (*tags_json)(void *ctx, void *aud_tx, uint64_t user_id, wm_buf_t *out);
    bool (*in_segment)(void *ctx, void *aud_tx, uint64_t user_id, const char *project,
                       const char *segment);
    /* product recommendations for the user (JSON answer of
     * GET /api/v1/users/{id}/recommendations appended to out) */
    int (*recommend)(void *ctx, uint64_t user_id, const char *project, const char *type, uint32_t n,
                     wm_buf_t *out);
    uint32_t n_parts;
    const char *default_tz;     /* default "Asia/Shanghai" */
} wm_jrt_host_t;

/* Opens the runtime's DBIs in txn (write txn at partition open). */
int wm__jrt_open(MDB_env *env, MDB_txn *txn, wm_jreg_t *reg, const wm_jrt_host_t *host,
                 wm_jrt_t **out);
void wm__jrt_close(wm_jrt_t *rt);

/* Per-transaction context: the runtime collects messages to hand to the
 * dispatcher and op events to append to the log once the txn commits. */
typedef struct wm_jtx {
    wm_jrt_t *rt;
    MDB_txn *txn;
    wm_arena_t *arena;
    int64_t now_ms;
    uint32_t n_dispatch;        /* messages created in this txn */
    int64_t hold_until;         /* set by a send held for quiet hours */
    bool ops_written;           /* op events were queued in this txn */
    void *aud_tx;               /* the audience runtime's context of the same txn */
} wm_jtx_t;

void wm__jtx_begin(wm_jtx_t *t, wm_jrt_t *rt, MDB_txn *txn, wm_arena_t *a, int64_t now_ms);
/* Before the txn commits: stores what the runtime keeps once per txn (the
 * op queue's next key). Returns 0 or an error (then abort). */
int wm__jtx_precommit(wm_jtx_t *t);
/* After the txn committed: hands the txn's messages to the dispatcher. */
void wm__jtx_committed(wm_jtx_t *t);
/* After an abort: forgets them. */
void wm__jtx_aborted(wm_jtx_t *t);

/* True when any journey or counter could care about events. */
bool wm__jrt_active(wm_jrt_t *rt);

/* An applied event record of user_id (stored form JSON text), at pos. */
int wm__jrt_on_event(wm_jtx_t *t, uint64_t user_id, const char *json, size_t len,
                     const wm_log_pos_t *pos, bool is_op);
/* The same with the record already parsed (valid for the txn's record). */
int wm__jrt_on_event_parsed(wm_jtx_t *t, uint64_t user_id, const wm_json_t *event, const wm_log_pos_t *pos,
                            bool is_op);
/* After a profile record of user_id was applied: condition entries. */
int wm__jrt_on_profile(wm_jtx_t *t, uint64_t user_id, const char *project);
/* Fires timers due at or before now; *more = there are further due ones. */
int wm__jrt_fire_timers(wm_jtx_t *t, uint32_t max, bool *more);
/* The earliest pending timer (INT64_MAX if none). */
int64_t wm__jrt_next_due(wm_jrt_t *rt);
/* A command record (JSON {"cmd":...}) routed to this partition. */
int wm__jrt_on_command(wm_jtx_t *t, uint64_t user_id, const char *json, size_t len);

/* Queues an operational event of the user (it reaches the log after the
 * txn commits). business: journeys react to it when it is applied; else it
 * is bookkeeping (history, counters). props_json: properties object text. */
int wm__jrt_op_event(wm_jtx_t *t, uint64_t user_id, const char *project, const char *event,
                     const char *props_json, bool business);
/* An event (stored record form text) that journeys react to now, in this
 * txn, without counting it (its bookkeeping copy counts when it is applied):
 * $SegmentEntered / $SegmentExited start and move journeys in the same
 * transaction as the membership change. */
int wm__jrt_on_event_now(wm_jtx_t *t, uint64_t user_id, const char *json, size_t len);

/* Op events queued in committed transactions and not yet appended to the
 * log: calls emit(ctx, payload, len) for at most max of them (payload = full
 * log payload) with key > *after, and advances *after. */
int wm__jrt_pending_ops(wm_jrt_t *rt, uint64_t *after, uint32_t max,
                        void (*emit)(void *ctx, const unsigned char *payload, uint32_t len),
                        void *ctx);
/* Called when applying an op-queue record: true (and dequeued) when it is
 * still queued, false for a duplicate appended again after a crash. */
bool wm__jrt_op_take(wm_jtx_t *t, uint64_t op_key);
/* Messages in the outbox still pending (after a restart): re-dispatch. */
int wm__jrt_redispatch(wm_jrt_t *rt);

/* ---- queries (read-only txns) ---- */
/* Entries this partition admitted into a journey (all versions). */
uint64_t wm__jrt_entries_count(wm_jrt_t *rt, const char *project, const char *key);
int wm__jrt_user_journeys_json(wm_jrt_t *rt, uint64_t user_id, wm_buf_t *out);
int wm__jrt_messages_json(wm_jrt_t *rt, uint64_t user_id, uint32_t limit, wm_buf_t *out);
int wm__jrt_inbox_json(wm_jrt_t *rt, uint64_t user_id, wm_buf_t *out);
/* Appends (comma separated, count shared in *n) the messages of a project
 * with a status ("failed": the delivery dead letters). */
int wm__jrt_messages_by_status(wm_jrt_t *rt, const char *project, const char *status, uint32_t limit,
                               uint32_t *n, wm_buf_t *out);
/* Appends matching leads as JSON objects (comma separated) to out. */
int wm__jrt_leads_json(wm_jrt_t *rt, const char *project, const char *queue, const char *assignee,
                       const char *status, uint32_t limit, uint32_t *n, wm_buf_t *out);
int wm__jrt_lead_get(wm_jrt_t *rt, const char *lead_id, wm_buf_t *out);
int wm__jrt_message_get(wm_jrt_t *rt, const char *message_id, wm_buf_t *out);

/* Report accumulation over partitions. */
typedef struct wm_jreport wm_jreport_t;
int wm__jreport_new(wm_jreport_t **out);
void wm__jreport_free(wm_jreport_t *r);
int wm__jrt_report_add(wm_jrt_t *rt, const char *project, const char *key, wm_jreport_t *r);
void wm__jreport_json(const wm_jreport_t *r, const wm_jversion_t *current, wm_buf_t *out);

/* Ids carry the user so any partition can be found from them. */
uint64_t wm__jrt_user_of_id(const char *message_or_lead_id);

#endif
