/*
 * engine_internal.h - internal to src/engine/: the engine's state, shared by
 * engine.c (ingest, identity, 360) and engine_journey.c (journeys, delivery,
 * clock, scheduler).
 */
#ifndef WAYMARK_ENGINE_INTERNAL_H
#define WAYMARK_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "journey/runtime.h"
#include "store/catalog.h"
#include "partition.h"
#include "waymark/dispatch.h"
#include "waymark/engine.h"
#include "waymark/identity.h"
#include "waymark/limits.h"
#include "waymark/strmap.h"

/* Two-generation hash set of u64 for the dedup window: lookups check both
 * generations; when the current one is half full it becomes the previous one.
 * So the window holds between N/2 and N recent keys, with no per-key eviction. */
#define DEDUP_GEN_SLOTS (1u << 20)
#define DEDUP_GEN_FILL (WM_DEDUP_WINDOW_MAX / 2)
#define DEDUP_TOMBSTONE 1ull

typedef struct dedup_gen {
    uint64_t *slots;
    uint32_t count;
} dedup_gen_t;

struct wm_engine {
    char *data_dir;
    wm_catalog_t *catalog;
    wm_identity_t *identity;
    uint32_t n_parts;
    wm_part_t **parts;
    wm_fsync_mode_t fsync_mode;
    char admin_key[80];
    char admin_key_path[4096];
    bool admin_key_generated;

    pthread_mutex_t route_mu;
    int lock_fd;                /* flock on DIR/LOCK: one process per data dir */

    pthread_mutex_t dedup_mu;
    dedup_gen_t dedup[2];   /* [0] current, [1] previous */

    pthread_mutex_t metrics_mu;
    wm_strmap_t rejected;   /* reason -> count */
    wm_strmap_t requests;   /* route -> count */
    _Atomic uint64_t m_accepted, m_duplicates, m_bytes_in, m_busy;

    /* audience: published tags and segments */
    wm_areg_t *areg;
    pthread_mutex_t rec_mu;         /* the recommendation catalogues */
    struct wm__rec_catalog *rec_catalogs[WM_REC_CATALOGS_MAX];

    /* journeys */
    wm_jreg_t *jreg;
    wm_dispatcher_t *dispatcher;
    bool test_clock;                /* POST /api/v1/clock allowed */
    _Atomic int64_t clock_offset_ms;
    pthread_t scheduler;
    bool scheduler_started;
    pthread_mutex_t sched_mu;
    pthread_cond_t sched_cv;
    bool sched_stop;
    _Atomic uint64_t m_commands, m_dispatched, m_delivered, m_failed;
    pthread_mutex_t cap_mu;         /* journey entry caps across partitions */
    wm_strmap_t entry_totals;       /* "project\x1fkey" -> entries admitted so far */

    /* analytics: stores, compactor, running queries (engine_analytics.c) */
    struct wm__analytics *an;
};

/* engine_journey.c */
int wm__engine_journeys_open(wm_engine_t *e);      /* after catalog, before partitions */
int wm__engine_journeys_start(wm_engine_t *e);     /* after partitions started */
void wm__engine_journeys_close(wm_engine_t *e);    /* before partitions close */
void wm__engine_journeys_free(wm_engine_t *e);      /* after partitions closed */
void wm__engine_journey_metrics(wm_engine_t *e, wm_buf_t *out);
/* engine_analytics.c: opens DATA/analytics/pNN for every partition (after
 * the partitions, whose logs it compacts) and starts the compactor unless
 * asked not to; close stops it and closes the stores (before the partitions
 * close). */
int wm__engine_analytics_open(wm_engine_t *e, bool compactor);
void wm__engine_analytics_close(wm_engine_t *e);
void wm__engine_analytics_metrics(wm_engine_t *e, wm_buf_t *out);
/* The callbacks that answer a query's customer clauses (profile, tag,
 * in_segment of project) from the users' home partitions; ctx must outlive
 * the host. */
typedef struct wm__query_host_ctx {
    wm_engine_t *e;
    const char *project;
} wm__query_host_ctx_t;
struct wm_query_host;
void wm__engine_query_host(wm__query_host_ctx_t *ctx, struct wm_query_host *host);
/* engine_audience.c: makes the members of the static list segment key of
 * project exactly users (funnel save_segment); creates and publishes the
 * list when missing. WM_EINVAL (msg says why) when key names another kind
 * of segment or is not a valid key. */
int wm__engine_segment_replace(wm_engine_t *e, const char *project, const char *key, const uint64_t *users,
                               uint32_t n, char *msg, size_t cap);
/* engine_audience.c: frees the recommendation catalogues (at close). */
void wm__engine_rec_free(wm_engine_t *e);

/* Personal data (name, mobile, email, id numbers, address, bank card) is
 * shown masked to every role but admin: leads, member lists, exports. */
bool wm__engine_is_pii(const char *key);
/* value itself when key is not personal data, else a masked copy in a. */
const char *wm__engine_mask_pii(wm_arena_t *a, const char *key, const char *value);
/* Logs n commands (JSON texts) of their users' partitions as one job per
 * partition and waits until every one is durable. */
int wm__engine_commands(wm_engine_t *e, uint32_t n, const uint64_t *user_ids, char *const *jsons);



#endif
