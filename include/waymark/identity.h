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
    uint64_t map_bytes;         /* LMDB map size; 0 -> 64 GiB (sparse) */
    bool nosync;                /* caller calls wm_identity_sync at its durability point */
} wm_identity_opts_t;

int wm_identity_open(const wm_identity_opts_t *opts, wm_identity_t **out);
void wm_identity_close(wm_identity_t *id);

/*
 * Resolves n records of one project in one transaction. results[i] and
 * errs[i] are filled for each record; a record rejected by identity rules
 * (unknown identity key, unbind of the last identity, ...) gets
 * errs[i].code set and no state change. Records whose errs[i].code is
 * already non-NULL on entry are skipped. Returns 0 or a storage error (then
 * nothing of the batch was applied).
 */
int wm_identity_resolve_batch(wm_identity_t *id, const wm_record_t *recs, uint32_t n,
                              wm_id_result_t *results, wm_rec_error_t *errs);

/* Makes committed resolutions durable (fsync of the LMDB env). */
int wm_identity_sync(wm_identity_t *id);

/* Finds the user of one identity. Returns 0, WM_ENOTFOUND, or an error. */
int wm_identity_lookup(wm_identity_t *id, const char *project, const char *key,
                       const char *value, uint64_t *user_id);
/* Finds the user of a client distinct_id: tries it as a login id, then as an
 * anonymous id, then as "<key>+<value>" (IDM 3 derived distinct ids). */
int wm_identity_lookup_distinct(wm_identity_t *id, const char *project, const char *distinct_id,
                                uint64_t *user_id);

/* Calls cb for each identity of a user. Stops early if cb returns non-zero. */
typedef int (*wm_identity_cb)(void *ctx, const char *key, const char *value);
int wm_identity_list(wm_identity_t *id, const char *project, uint64_t user_id,
                     wm_identity_cb cb, void *ctx);

/* Declares a custom identity key for a project (preset keys always exist). */
int wm_identity_define_key(wm_identity_t *id, const char *project, const char *key);

#endif
