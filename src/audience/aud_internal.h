/*
 * aud_internal.h - internal to src/audience/: the runtime's state, shared
 * by runtime.c (the apply path, background work, queries) and plan.c
 * (previews answered by column scans).
 */
#ifndef WAYMARK_AUDIENCE_INTERNAL_H
#define WAYMARK_AUDIENCE_INTERNAL_H

#include <pthread.h>
#include <roaring/roaring.h>

#include "audience/runtime.h"

typedef struct wm_adelta {
    uint32_t seg_id;
    uint32_t user;
    bool add;
} wm_adelta_t;

typedef struct wm__aud_universe {
    char project[64];
    roaring_bitmap_t *users;
} wm__aud_universe_t;

struct wm_aud {
    MDB_env *env;
    wm_areg_t *reg;
    wm_aud_host_t host;
    MDB_dbi tag, tagidx, taghist, cnt, member, useg, meta, rec, pref;

    pthread_mutex_t bm_mu;      /* guards bitmaps and universes (writer updates, queries read) */
    roaring_bitmap_t **bitmaps; /* members by segment id */
    uint32_t n_bitmaps;
    wm__aud_universe_t *universes; /* every customer, by project */
    uint32_t n_universes;

    /* background: recompute tasks and the clock pass (writer thread only,
     * mirrored in a_meta so a restart resumes) */
    int32_t clock_day;          /* last local day the clock pass completed */
    bool tasks_pending;
    const wm_asnap_t *seen_snap;/* snapshot whose new versions were scheduled */
};

/* runtime.c, for plan.c */
uint64_t wm__aud_spec_hash(const char *spec_key);
bool wm__aud_spec_kept(wm_aud_t *a, MDB_txn *txn, const wm_counter_spec_t *spec);
/* The whole condition for one user with the full environment (preview mode). */
bool wm__aud_eval_user(wm_aud_t *a, MDB_txn *txn, wm_arena_t *arena, const char *project, uint64_t user_id,
                       const wm_cond_t *c, int64_t now_ms);

#endif
