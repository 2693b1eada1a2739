/*
 * partition.h - internal: one partition = one log + one LMDB state env +
 * one writer thread. See partition.c for the writer's state machine.
 */
#ifndef WAYMARK_ENGINE_PARTITION_H
#define WAYMARK_ENGINE_PARTITION_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "audience/runtime.h"
#include "journey/runtime.h"
#include "store/names.h"
#include "store/payload.h"
#include "waymark/buf.h"
#include "waymark/log.h"


/* A submit waiting for its records to become durable. */
typedef struct wm_waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int jobs_left;
    int err;
} wm_waiter_t;

/* One allocation holding the record payloads of a submitted batch, shared
 * by the batch's jobs (one per partition); freed with the last of them. */
typedef struct wm_payload_block {
    _Atomic uint32_t refs;
    unsigned char *data;
    size_t len;
} wm_payload_block_t;

typedef struct wm_job {
    struct wm_job *next;
    wm_waiter_t *waiter;        /* NULL for fire-and-forget */
    uint32_t n;
    uint32_t *lens;
    unsigned char **payloads;   /* each wm_malloc'd and owned by the job, except
                                 * those inside `block` */
    wm_payload_block_t *block;  /* NULL, or a reference the job holds */
} wm_job_t;

void wm__block_unref(wm_payload_block_t *b);

typedef struct wm_engine wm_engine_t;

typedef struct wm_part {
    uint32_t index;
    wm_engine_t *engine;
    wm_log_t *log;
    MDB_env *env;
    MDB_dbi dbi_meta, dbi_events, dbi_profiles, dbi_items, dbi_users, dbi_merges;
    wm_names_t *names;          /* ids of project names and journey keys in stored rows */
    pthread_t thread;
    bool thread_started;

    pthread_mutex_t mu;         /* guards the queue */
    pthread_cond_t cv;
    wm_job_t *head, *tail;
    uint32_t queued_records;    /* bound: WM_PARTITION_QUEUE_MAX */
    bool stopping;

    uint64_t next_seq;          /* next sequence a routed record will get (engine route lock) */
    _Atomic uint64_t durable_seq;
    _Atomic uint64_t applied_seq;
    _Atomic int failed;         /* sticky storage error */
    _Atomic int ready;          /* replay finished */

    pthread_mutex_t applied_mu; /* signalled when applied_seq moves */
    pthread_cond_t applied_cv;

    _Atomic uint64_t m_records, m_batches, m_apply_errors, m_merges;

    wm_jrt_t *jrt;              /* journey runtime of this partition */
    wm_aud_t *aud;              /* audience runtime (tags, segments) of this partition */
    uint64_t ops_after;         /* op-queue keys up to this were handed to the log */
    /* segment events of the current record, for the journeys once the
     * audience has settled (writer thread only) */
    struct wm_seg_event *seg_events;
    uint32_t n_seg_events, cap_seg_events;
    bool timers_woken;          /* the clock moved: recompute the timer wait */
} wm_part_t;

int wm__part_open(wm_engine_t *e, uint32_t index, const char *dir, const wm_log_opts_t *lo,
                  wm_part_t **out);
int wm__part_start(wm_part_t *p);
void wm__part_close(wm_part_t *p);
/* Enqueues a job (takes ownership). Called with the engine's route lock held. */
void wm__part_enqueue(wm_part_t *p, wm_job_t *job);
/* Waits until the partition finished replaying its log (and so rebuilt its
 * part of the dedup window); returns true if it did within timeout_ms. */
bool wm__part_wait_ready(wm_part_t *p, int timeout_ms);
/* Waits until applied_seq >= seq or timeout; returns true if reached. */
bool wm__part_wait_applied(wm_part_t *p, uint64_t seq, int timeout_ms);
void wm__job_free(wm_job_t *job);

/* Reads a user's profile JSON (malloc'd copy, caller frees) or WM_ENOTFOUND. */
int wm__part_profile_get(wm_part_t *p, uint64_t user_id, char **json, size_t *len);

/* Event index entry decoded for queries. */
typedef struct wm_event_ref {
    int64_t time_ms;
    uint64_t seq;
    wm_log_pos_t pos;
    wm_part_t *part;
} wm_event_ref_t;

/* Appends up to `limit` newest event refs of user_id to refs[*n..). */
int wm__part_user_events(wm_part_t *p, uint64_t user_id, uint32_t limit, wm_event_ref_t *refs,
                         uint32_t *n);
/* Calls cb(from_user) for each user merged into user_id in this partition. */
int wm__part_merged_from(wm_part_t *p, uint64_t user_id, uint64_t *from, uint32_t max,
                         uint32_t *n);
int wm__part_item_get(wm_part_t *p, const char *key, size_t key_len, char **json, size_t *len);
int wm__part_user_meta(wm_part_t *p, uint64_t user_id, char **json, size_t *len);
/* Calls cb for each item of (project, type) stored in this partition
 * (json: the stored item, valid during the call). */
int wm__part_items_each(wm_part_t *p, const char *project, const char *type,
                        int (*cb)(void *ctx, const char *id, const char *json, size_t len), void *ctx);
/* The user's events in [from_ms, to_ms), oldest first, parsed into arena. */
int wm__part_user_scan(wm_part_t *p, wm_arena_t *arena, uint64_t user_id, int64_t from_ms, int64_t to_ms,
                       int (*cb)(void *ctx, const wm_json_t *event), void *ctx);

/* Engine callbacks used by the writer. */
wm_part_t *wm__engine_part(wm_engine_t *e, uint32_t index);
void wm__engine_dedup_add(wm_engine_t *e, uint64_t h);
uint32_t wm__engine_partitions(wm_engine_t *e);
int wm__engine_identity_sync(wm_engine_t *e);
/* The engine's clock (wall clock + test offset), ms. */
int64_t wm__engine_clock(wm_engine_t *e);
wm_jreg_t *wm__engine_jreg(wm_engine_t *e);
wm_areg_t *wm__engine_areg(wm_engine_t *e);
/* Queues a job for partition p from inside the engine (route lock taken). */
void wm__engine_enqueue(wm_engine_t *e, wm_part_t *p, wm_job_t *job);
void wm__engine_dispatch(wm_engine_t *e, const wm_dispatch_msg_t *m);
bool wm__engine_entry_reserve(wm_engine_t *e, uint32_t part, const char *project, const char *key,
                              uint64_t cap, uint64_t own);
int wm__engine_item_raw(wm_engine_t *e, const char *project, const char *type, const char *id,
                        char **json, size_t *len);
/* Wakes the writer (the clock moved or a timer was added elsewhere). */
void wm__part_wake(wm_part_t *p);

#endif
