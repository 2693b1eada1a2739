/*
 * profile.h - user profile and item operations as pure functions on JSON.
 *
 * The partition writer loads the stored profile (a JSON object), applies a
 * record with wm_profile_apply, and stores the result in the same LMDB
 * transaction. Keeping the semantics pure makes them exact and testable:
 *
 *   profile_set        overwrite each given property
 *   profile_set_once   set only properties not already present
 *   profile_increment  add to a number; absent -> 0 + delta; non-number -> error
 *   profile_append     append list elements; absent -> new list; non-list -> error
 *   profile_unset      remove each given property
 *   profile_delete     remove the whole profile (result NULL)
 *
 * Ownership: results are allocated in the arena given.
 */
#ifndef WAYMARK_PROFILE_H
#define WAYMARK_PROFILE_H

#include "waymark/arena.h"
#include "waymark/json.h"
#include "waymark/record.h"

/* Applies a profile_* record to `cur` (OBJECT or NULL = no profile).
 * On success *out is the new profile (OBJECT) or NULL when deleted.
 * On a semantic error (increment of a string, ...) returns WM_ETYPE with err
 * naming the property, and the whole record is not applied. */
int wm_profile_apply(wm_arena_t *a, const wm_json_t *cur, const wm_record_t *rec,
                     wm_json_t **out, wm_rec_error_t *err);

/* Merges an anonymous user's profile into a known user's: every property
 * `into` lacks is copied from `from`. *out is a new OBJECT (NULL if both NULL). */
int wm_profile_merge(wm_arena_t *a, const wm_json_t *into, const wm_json_t *from, wm_json_t **out);

/* item_set: the new item object is `rec->properties` merged over `cur`
 * (item_set replaces given properties, keeps others); item_delete: NULL. */
int wm_item_apply(wm_arena_t *a, const wm_json_t *cur, const wm_record_t *rec, wm_json_t **out);

#endif
