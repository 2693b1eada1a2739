/*
 * engine.h - one Waymark node's data engine: catalog, identity, partitions.
 *
 * Ingest paths (HTTP handlers, `waymark import`) hand decoded batches to
 * wm_engine_submit. The engine checks tokens and the schema registry, drops
 * client retries (dedup window), resolves identities, appends every good
 * record to its user's partition log and returns once the records are
 * durable per the fsync mode. Each partition's writer thread then applies
 * them to the partition state (LMDB) in log order, exactly once.
 *
 * Thread model: wm_engine_submit and the query functions may be called from
 * any number of threads concurrently.
 */
#ifndef WAYMARK_ENGINE_H
#define WAYMARK_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "waymark/buf.h"
#include "waymark/ingest.h"
#include "waymark/log.h"

typedef struct wm_engine wm_engine_t;

typedef struct wm_engine_opts {
    const char *data_dir;
    uint32_t partitions;            /* 0 -> number of online CPUs */
    wm_fsync_mode_t fsync_mode;
    uint32_t fsync_interval_ms;
    const char *admin_key;          /* NULL: read DIR/admin.key or generate one */
    bool read_only;                 /* for offline inspection commands */
    bool test_clock;                /* allow moving the clock forward (tests, demos) */
    bool no_compactor;              /* no analytics compactor thread (offline commands
                                     * that compact or only read) */
    bool no_timers;                 /* journey timers are not fired (offline commands
                                     * that only read: query, export, compact) */
    uint32_t identity_cache;        /* identities cached by resolution (0: none;
                                     * bulk import: WM_IMPORT_IDENTITY_CACHE) */
} wm_engine_opts_t;

int wm_engine_open(const wm_engine_opts_t *opts, wm_engine_t **out);
void wm_engine_close(wm_engine_t *e);

/* The admin key in force and whether it was generated now (and written to
 * DIR/admin.key, mode 0600). Valid for the engine's life. */
const char *wm_engine_admin_key(const wm_engine_t *e, bool *generated, const char **path);

/* Why a record was not stored, beyond validation errors: */
#define WM_SUBMIT_DUPLICATE "duplicate"     /* a retry of a stored record: reported ok */

typedef struct wm_submit_opts {
    bool dry_run;                   /* validate only (Sensors Dry-Run / debug) */
    bool deadletter;                /* keep rejected records in the dead-letter store */
    const char *source;             /* "sensors", "segment", "native", "import" */
    /* Ordering hook for pipelined importers: called with phase 0 just
     * before the batch is routed to the partitions (may block until it is
     * this batch's turn) and with phase 1 right after (whether or not routing
     * succeeded). Batches are then applied in the order they were routed. */
    void (*order_cb)(void *ctx, int phase);
    void *order_ctx;
} wm_submit_opts_t;

typedef struct wm_submit_result {
    uint32_t accepted;              /* newly stored */
    uint32_t duplicates;            /* recognised retries (count as success) */
    uint32_t rejected;              /* errors[i].code set */
} wm_submit_result_t;

/*
 * Validates (schema, token, identity) and stores the good records of a batch.
 * On return, batch->errors[i].code is set for every rejected record. Returns 0
 * when every good record is durable; WM_EBUSY when a queue is full (nothing of
 * the batch was stored: the client should retry); WM_EIO/WM_ESTATE on a
 * storage fault (nothing acknowledged).
 */
int wm_engine_submit(wm_engine_t *e, wm_batch_t *batch, const wm_submit_opts_t *opts,
                     wm_submit_result_t *res);

/* Checks an ingest token for a project: 0 ok, WM_EAUTH bad token, WM_ENOTFOUND
 * no such project. The default project accepts any token until one is set. */
int wm_engine_check_token(wm_engine_t *e, const char *project, const char *token);

/* Role of an API key (admin, operator, analyst, advisor, viewer) or NULL. */
const char *wm_engine_key_role(wm_engine_t *e, const char *key, char *role, size_t role_len);

/* The number of partitions in force (fixed when the data directory was created). */
uint32_t wm_engine_partition_count(const wm_engine_t *e);

/* True once every partition finished replaying its log and none has failed. */
bool wm_engine_ready(wm_engine_t *e);

/* Finds the project whose ingest token is `key` (Segment write keys). Falls
 * back to "default" when default has no token. Returns 0 or WM_EAUTH. */
int wm_engine_project_for_key(wm_engine_t *e, const char *key, char *project, size_t len);

/* Waits until every partition has applied everything appended so far. */
int wm_engine_wait_applied(wm_engine_t *e, int timeout_ms);

/* ---- queries (JSON answers appended to out) ---- */

/* Resolves a user reference: id_type distinct_id | login_id | user_id |
 * anonymous_id | <identity key>. Returns 0, WM_ENOTFOUND. */
int wm_engine_find_user(wm_engine_t *e, const char *project, const char *id, const char *id_type,
                        uint64_t *user_id);
int wm_engine_user_json(wm_engine_t *e, const char *project, uint64_t user_id, wm_buf_t *out);
int wm_engine_user_events_json(wm_engine_t *e, const char *project, uint64_t user_id,
                               uint32_t limit, wm_buf_t *out);
int wm_engine_item_json(wm_engine_t *e, const char *project, const char *type, const char *id,
                        wm_buf_t *out);
int wm_engine_schema_json(wm_engine_t *e, const char *project, wm_buf_t *out);
int wm_engine_deadletter_json(wm_engine_t *e, const char *project, uint32_t limit, wm_buf_t *out);
/* Re-submits dead letters (all of a project, or one id when id > 0); the
 * ones that now pass are removed from the store. */
int wm_engine_deadletter_replay(wm_engine_t *e, const char *project, int64_t id,
                                wm_submit_result_t *res);
int wm_engine_create_project(wm_engine_t *e, const char *name, const char *token);
int wm_engine_projects_json(wm_engine_t *e, wm_buf_t *out);
/* Creates an API key with a role; the new key is written to key_out. */
int wm_engine_create_key(wm_engine_t *e, const char *role, char *key_out, size_t key_len);

/* ---- journeys, channels, templates, delivery (engine_journey.c) ---- */

/* The engine's clock: the wall clock, plus any test advance. */
int64_t wm_engine_now(wm_engine_t *e);
/* Moves the clock forward (only with opts.test_clock, else WM_EFORBIDDEN). */
int wm_engine_clock_advance(wm_engine_t *e, int64_t ms);

/* Validates a journey definition against the project's channels, templates
 * and journeys. Appends {"valid":bool,"errors":[{"node","field","message"}]}.
 * Returns 0 (see *valid) or WM_EPARSE when the body is not JSON. */
int wm_engine_journey_validate(wm_engine_t *e, const char *project, const char *json, size_t len,
                               bool *valid, wm_buf_t *out);
/* Creates or replaces the draft (key from the definition, or must match key). */
int wm_engine_journey_save(wm_engine_t *e, const char *project, const char *key, const char *json,
                           size_t len, bool *valid, wm_buf_t *out);
int wm_engine_journey_json(wm_engine_t *e, const char *project, const char *key, wm_buf_t *out);
int wm_engine_journeys_json(wm_engine_t *e, const char *project, wm_buf_t *out);
/* publish | pause | resume | stop. Stop exits every live instance with the reason. */
int wm_engine_journey_action(wm_engine_t *e, const char *project, const char *key, const char *action,
                             const char *actor, const char *reason, wm_buf_t *out);
int wm_engine_journey_report(wm_engine_t *e, const char *project, const char *key, wm_buf_t *out);
/* API entry of a user into a journey (item optional). */
int wm_engine_journey_enter(wm_engine_t *e, const char *project, const char *key, uint64_t user_id,
                            const char *item);

/* Channels ("channels"), templates ("templates") and project settings
 * ("project_settings": holdout_percent, default_tz, calendar, frequency_caps). */
int wm_engine_doc_put(wm_engine_t *e, const char *table, const char *project, const char *name,
                      const char *json, size_t len);
int wm_engine_docs_json(wm_engine_t *e, const char *table, const char *project, wm_buf_t *out);

/* A state change for one user (lead claim/complete, receipt, consent, inbox
 * read), logged in the user's partition and applied in order. Waits until
 * durable. */
int wm_engine_command(wm_engine_t *e, uint64_t user_id, const char *json, size_t len);
/* The user a message or lead id belongs to, or 0. */
uint64_t wm_engine_user_of(const char *message_or_lead_id);

int wm_engine_messages_json(wm_engine_t *e, uint64_t user_id, uint32_t limit, wm_buf_t *out);
int wm_engine_message_json(wm_engine_t *e, const char *id, wm_buf_t *out);
int wm_engine_inbox_json(wm_engine_t *e, uint64_t user_id, wm_buf_t *out);
/* Messages of a project by status across partitions ("failed" = delivery
 * dead letters, "pending" = not yet answered by the provider). */
int wm_engine_messages_by_status_json(wm_engine_t *e, const char *project, const char *status,
                                      uint32_t limit, wm_buf_t *out);
/* Leads filtered by queue / assignee / status; PII masked unless role is admin. */
int wm_engine_leads_json(wm_engine_t *e, const char *project, const char *queue, const char *assignee,
                         const char *status, uint32_t limit, const char *role, wm_buf_t *out);
int wm_engine_lead_json(wm_engine_t *e, const char *id, const char *role, wm_buf_t *out);

/* ---- audience: tags and segments (engine_audience.c; docs/tags.md, docs/segments.md) ---- */

/* kind is "tag" or "segment" in these. Validation appends
 * {"valid":bool,"errors":[{"path","message"}]}; references to tags and
 * segments are checked against the project's definitions. */
int wm_engine_aud_validate(wm_engine_t *e, const char *kind, const char *project, const char *json,
                           size_t len, bool *valid, wm_buf_t *out);
/* Creates or replaces the draft (key from the body; key, when given, must match). */
int wm_engine_aud_save(wm_engine_t *e, const char *kind, const char *project, const char *key,
                       const char *json, size_t len, bool *valid, wm_buf_t *out);
/* {key,id,status,version,updated_ms,computed?,count? (segments),definition}. WM_ENOTFOUND. */
int wm_engine_aud_json(wm_engine_t *e, const char *kind, const char *project, const char *key, wm_buf_t *out);
int wm_engine_aud_list_json(wm_engine_t *e, const char *kind, const char *project, wm_buf_t *out);
/* Publishes the draft as a new version; every partition then computes it
 * for its customers in the background ("computed" turns true). WM_EINVAL
 * (errors appended) when it reads an unpublished tag or segment. */
int wm_engine_aud_publish(wm_engine_t *e, const char *kind, const char *project, const char *key,
                          wm_buf_t *out);
/* Uploads tag values (imported / manual tags) or static list members: CSV
 * (header; first column the id, "value" column) or NDJSON ({"id","value"}
 * or {"id","member":false}). Appends {lines, imported, rejected, errors:[{line,field,message}]}.
 * WM_ENOTFOUND (not published), WM_ESTATE (a computed tag / not a list). */
int wm_engine_aud_import(wm_engine_t *e, const char *project, const char *kind, const char *key,
                         const char *id_type, const char *format, const char *body, size_t len, wm_buf_t *out);

int wm_engine_segment_count_json(wm_engine_t *e, const char *project, const char *key, wm_buf_t *out);
/* Members by user id from after + 1 (cursor), at most limit; format json |
 * csv | ndjson; ids: identity keys, fields: profile properties (comma lists).
 * Personal data (name, mobile, email, id numbers ...) is masked unless role
 * is admin. */
int wm_engine_segment_members(wm_engine_t *e, const char *project, const char *key, uint64_t after,
                              uint32_t limit, const char *format, const char *ids, const char *fields,
                              const char *role, wm_buf_t *out);
/* Set algebra over published segments: op union | intersect | except. */
int wm_engine_segment_compute_json(wm_engine_t *e, const char *project, const char *op,
                                   const char *const *keys, uint32_t n, wm_buf_t *out);
/* Count and sample of a condition ({"condition": COND}) without publishing. */
int wm_engine_segment_preview(wm_engine_t *e, const char *project, const char *json, size_t len,
                              wm_buf_t *out);

/* Value -> customers of a tag, now or as of at_ms (> 0). */
int wm_engine_tag_distribution_json(wm_engine_t *e, const char *project, const char *key, int64_t at_ms,
                                    wm_buf_t *out);
/* A user's history of a tag, or its value as of at_ms (> 0). */
int wm_engine_user_tag_history_json(wm_engine_t *e, uint64_t user_id, const char *key, int64_t at_ms,
                                    wm_buf_t *out);
/* Sets (value_json) or unsets (NULL) a manual value; durable on return. */
int wm_engine_tag_set(wm_engine_t *e, const char *project, uint64_t user_id, const char *key,
                      const char *value_json, const char *source);

/* Products the customer may be shown (docs/recommendations.md). */
int wm_engine_recommendations_json(wm_engine_t *e, const char *project, uint64_t user_id, const char *type,
                                   uint32_t n, bool include_held, wm_buf_t *out);

/* ---- analytics: the columnar store and its queries (engine_analytics.c;
 * docs/analytics.md) ---- */

typedef struct wm_engine_query_opts {
    const char *project;            /* whose tags and segments customer clauses read; NULL: default */
    const char *id;                 /* the query's id ([A-Za-z0-9_.-], at most WM_QUERY_ID_MAX);
                                     * NULL or "": one is made up */
    int64_t timeout_ms;             /* 0: the request's timeout_ms or 30 s */
    size_t answer_max;              /* bound of out (0: none) */
} wm_engine_query_opts_t;

typedef struct wm_engine_query_error {
    char path[96];                  /* JSON path of the faulty member, or "" */
    char msg[256];
} wm_engine_query_error_t;

/*
 * Runs an analytics query (kind: events, funnel, retention, paths,
 * attribution, distribution, interval, map, export) on the request JSON over
 * every partition's parts and uncompacted log tail; the JSON answer (NDJSON
 * for export) is appended to out (left as it was on an error). While it
 * runs it is listed by wm_engine_queries_json and can be cancelled by id;
 * id_out (may be NULL, WM_QUERY_ID_MAX + 1 bytes) receives its id. Customer
 * clauses (profile, tag, in_segment) read the partitions' profile and
 * audience stores; a funnel's save_segment replaces that static list
 * (wm__engine_segment_replace).
 * Errors: WM_EINVAL (bad request; err names the member, path "" and the
 * message for a body that is not JSON), WM_ELIMIT (memory), WM_EBUSY
 * (timeout), WM_ECLOSED (cancelled, or after
 * wm_engine_queries_stop), WM_ECONFLICT (WM_QUERIES_RUNNING_MAX
 * queries running already), WM_EEXISTS (a running query has this id),
 * WM_ENOMEM, WM_EIO.
 */
int wm_engine_query(wm_engine_t *e, const char *kind, const char *req_json, size_t len,
                    const wm_engine_query_opts_t *opts, char *id_out, wm_buf_t *out,
                    wm_engine_query_error_t *err);
/* ---- saved journey maps and the journey report's funnel (engine_maps.c;
 * docs/api.md, "Journey maps") ---- */

/* Creates (key NULL: WM_EEXISTS when the body's key is taken) or replaces
 * (key given: WM_ENOTFOUND when missing; version + 1) a saved map
 * {"key","name","description"?,"stages":[{"name","events"|"event","where"?}],
 * "window"?}, validated by the map query's parser: WM_EINVAL with err naming
 * the member ("stages[1].events[0]", "window", ...). Appends the stored map
 * {key,name,version,created_ms,updated_ms,definition}. */
int wm_engine_map_save(wm_engine_t *e, const char *project, const char *key, const char *json, size_t len,
                       wm_buf_t *out, wm_engine_query_error_t *err);
int wm_engine_map_json(wm_engine_t *e, const char *project, const char *key, wm_buf_t *out);
/* {"maps":[...]} ordered by key. */
int wm_engine_maps_json(wm_engine_t *e, const char *project, wm_buf_t *out);
int wm_engine_map_delete(wm_engine_t *e, const char *project, const char *key);
/* Runs the saved map over body {"from","to","compare"?,"utc_offset_min"?,
 * "timeout_ms"?}: the map answer with "map" and "version" first. Errors as
 * wm_engine_query, and WM_ENOTFOUND. */
int wm_engine_map_query(wm_engine_t *e, const char *project, const char *key, const char *body, size_t len,
                        const wm_engine_query_opts_t *opts, char *id_out, wm_buf_t *out,
                        wm_engine_query_error_t *err);
/* The journey report with a "funnel" member: funnels over the journey's
 * operational events from..to (local dates; utc_off minutes or NULL;
 * window a duration or NULL: the goal's within, else 30d), overall
 * ($JourneyEntered -> $JourneyGoal) and per split arm (the move out of the
 * split -> $JourneyGoal) next to the arm's report figures. WM_ENOTFOUND,
 * WM_EINVAL (err names the parameter), query errors. */
int wm_engine_journey_report_funnel(wm_engine_t *e, const char *project, const char *key, const char *from,
                                    const char *to, const char *utc_off, const char *window, wm_buf_t *out,
                                    wm_engine_query_error_t *err);
/* The running queries: [{"id","kind","project","started_ms","elapsed_ms","cancelled"}]. */
int wm_engine_queries_json(wm_engine_t *e, wm_buf_t *out);
/* Asks a running query to stop (it answers WM_ECLOSED soon after).
 * 0 or WM_ENOTFOUND. */
int wm_engine_query_cancel(wm_engine_t *e, const char *id);
/* Cancels every running query and refuses new ones (WM_ECLOSED): the
 * server calls it before it waits for its connections at shutdown. */
void wm_engine_queries_stop(wm_engine_t *e);

/* Compacts every partition's whole durable log into parts (repeating until
 * nothing is left), then merges each partition's parts into one; appends one
 * line per partition ("pNN: P parts, R rows, B bytes, X bytes/event") to
 * report. For offline use (`waymark compact`): open the engine with
 * no_compactor. */
int wm_engine_analytics_compact_all(wm_engine_t *e, wm_buf_t *report);
/* Verifies every part of DIR/analytics/pNN (no engine needed); the report
 * names each file and, for a fault, the block and column. *faults counts
 * them. WM_ENOTFOUND when DIR has no analytics directory. */
int wm_engine_analytics_check(const char *data_dir, wm_buf_t *report, uint64_t *faults);

/* Prometheus text exposition of the engine's counters. */
void wm_engine_metrics(wm_engine_t *e, wm_buf_t *out);

/* Per-reason counters kept by the HTTP layer are reported through here too. */
void wm_engine_count_rejected(wm_engine_t *e, const char *reason, uint32_t n);
void wm_engine_count_request(wm_engine_t *e, const char *route, uint64_t bytes);

#endif
