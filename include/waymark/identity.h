/*
 * identity.h - ID-Mapping: the global identity index (IDM 2.0 and 3.0).
 *
 * One LMDB environment (DIR/identity) maps (project, identity key, value) to
 * an internal 64-bit user id and back. Exact rules: docs/identity.md.
 *
 * Resolution happens before the record is appended to a partition log, so a
 * record always carries the user id it was resolved to; merges of an
 * anonymous user into a known user are returned to the caller, which logs an
 * internal merge record so that the partition moves the state (invariant 4).
 *
 * Thread model: resolve calls are serialised internally (one LMDB writer);
 * lookups may run concurrently from any thread.
 */
#ifndef WAYMARK_IDENTITY_H
#define WAYMARK_IDENTITY_H

#include <stdbool.h>
#include <stdint.h>

#include "waymark/record.h"

typedef struct wm_identity wm_identity_t;

#define WM_ID_KEY_LOGIN "$identity_login_id"
#define WM_ID_KEY_ANON "$identity_anonymous_id"
#define WM_ID_KEY_DISTINCT "$identity_distinct_id"
#define WM_ID_MERGES_MAX 8

typedef struct wm_id_merge {
    uint64_t from_user;         /* anonymous user folded in (no longer used) */
    uint64_t into_user;         /* surviving user */
} wm_id_merge_t;

typedef struct wm_id_result {
    uint64_t user_id;           /* 0 for item records */
    bool created;               /* a new user id was allocated */
    uint32_t n_merges;
    wm_id_merge_t merges[WM_ID_MERGES_MAX];
} wm_id_result_t;

typedef struct wm_identity_opts {
    const char *dir;            /* DIR/identity is created */
    uint64_t map_bytes;         /* LMDB map size; 0 -> WM_LMDB_MAP_BYTES (sparse) */
    bool nosync;                /* caller calls wm_identity_sync at its durability point */
    bool writemap;              /* MDB_WRITEMAP: ~1.6x faster inserts (bench/identity_resolve);
                                   the file becomes a sparse map_bytes file and a stray write
                                   through a bad pointer could reach the index. Default off. */
    uint32_t cache_entries;     /* resolution caches up to this many identity -> user
                                   entries in memory (about 100 bytes each; 0 = none): a known
                                   identity then costs no B-tree get */
} wm_identity_opts_t;

/* Opens (creating if needed) DIR and DIR/identity. Returns 0 and *out, or
 * WM_EINVAL (no dir), WM_EIO (cannot create the directory or open the env),
 * WM_ENOMEM, WM_EUNSUPPORTED (liblmdb with a key limit below 480 bytes).
 * Close with wm_identity_close (NULL is a no-op); no call may be running. */
int wm_identity_open(const wm_identity_opts_t *opts, wm_identity_t **out);
void wm_identity_close(wm_identity_t *id);

/*
 * Resolves n records in one write transaction (records may name different
 * projects). results[i] is always written (zeroed for skipped, rejected and
 * item_* records); a record rejected by identity rules gets errs[i] filled
 * (code, field "identities.<key>" or the envelope field) and changes nothing.
 * Codes: unknown_identity_key, invalid_identity, conflicting_login_id,
 * too_many_identities, invalid_project, missing_identity,
 * missing_original_id, invalid_bind, invalid_unbind, unknown_identity,
 * last_identity (docs/identity.md). Records whose errs[i].code is already
 * non-NULL on entry are skipped. Later records see the effects of earlier
 * ones. Returns 0, or a storage error (WM_ELIMIT map full, WM_EIO, ...;
 * then nothing of the batch was applied), or WM_ESTATE after an earlier
 * fatal I/O error. errs[i].code points to a static string.
 */
int wm_identity_resolve_batch(wm_identity_t *id, const wm_record_t *recs, uint32_t n,
                              wm_id_result_t *results, wm_rec_error_t *errs);

/* The resolution cache's lookups that hit and missed so far, and its entries now. */
void wm_identity_cache_stats(wm_identity_t *id, uint64_t *hits, uint64_t *misses, uint32_t *entries);

/* Makes committed resolutions durable (fsync of the LMDB env). */
int wm_identity_sync(wm_identity_t *id);

/* Finds the user of one identity. Returns 0, WM_ENOTFOUND, or an error. */
int wm_identity_lookup(wm_identity_t *id, const char *project, const char *key,
                       const char *value, uint64_t *user_id);
/* Finds the user of a client distinct_id: tries it as a login id, then as an
 * anonymous id, then as a cookie id (Web JS), then as "<key>+<value>" (IDM 3
 * derived distinct ids). Returns 0, WM_ENOTFOUND, or an error. */
int wm_identity_lookup_distinct(wm_identity_t *id, const char *project, const char *distinct_id,
                                uint64_t *user_id);

/* Calls cb for each identity of a user, grouped by key (preset keys first). key and
 * value are valid during the call only. Stops early (returning 0) if cb
 * returns non-zero. A merged or unknown user has no identities (returns 0). */
typedef int (*wm_identity_cb)(void *ctx, const char *key, const char *value);
int wm_identity_list(wm_identity_t *id, const char *project, uint64_t user_id,
                     wm_identity_cb cb, void *ctx);

/* Declares a custom identity key for a project (preset keys always exist;
 * defining one is a no-op). Custom keys are never login ids. Returns 0,
 * WM_EINVAL when project or key breaks the name rule, or a storage error. */
int wm_identity_define_key(wm_identity_t *id, const char *project, const char *key);

/* True for the preset $identity_* keys accepted in every project. */
bool wm_identity_key_is_preset(const char *key);

/* One audited merge. event and distinct_id are the merging record's and are
 * valid during the callback only. seq is global and increases with time. */
typedef struct wm_id_merge_entry {
    uint64_t from_user;
    uint64_t into_user;
    uint64_t seq;
    int64_t time_ms;            /* the merging record's time */
    const char *event;          /* record event, or its type name ("profile_set") */
    const char *distinct_id;    /* "" if the record had none */
} wm_id_merge_entry_t;

typedef int (*wm_identity_merge_cb)(void *ctx, const wm_id_merge_entry_t *m);

/* Calls cb for each merge into into_user (0 = every merge of the project),
 * ordered by (into_user, seq). Stops early (returning 0) if cb returns
 * non-zero. Merges into a user that was itself merged later are listed under
 * the user they went into at the time: callers follow them recursively. */
int wm_identity_merges_list(wm_identity_t *id, const char *project, uint64_t into_user,
                            wm_identity_merge_cb cb, void *ctx);

/* Follows merges: *current is the user that user_id was (transitively)
 * merged into, or user_id itself. Events stored under a merged user id stay
 * there; readers map them with this. Returns 0, WM_ECORRUPT on a cycle. */
int wm_identity_current_user(wm_identity_t *id, const char *project, uint64_t user_id,
                             uint64_t *current);

typedef struct wm_identity_stats {
    uint64_t identities;        /* mapped identities, all projects */
    uint64_t users_allocated;   /* user ids handed out (merged ones included) */
    uint64_t merges;            /* audited merges */
    uint64_t used_bytes;        /* LMDB pages in use x page size */
} wm_identity_stats_t;

int wm_identity_stats(wm_identity_t *id, wm_identity_stats_t *st);

#endif
