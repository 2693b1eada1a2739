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
 * Exact rules (docs/identity.md, "Profile operations"):
 *   - profile_set with a null value removes that property;
 *   - profile_set_once skips keys already present and ignores null values;
 *   - profile_increment: integer + integer stays an integer (is_int) unless
 *     it overflows int64; any double operand gives a double;
 *   - profile_append keeps duplicates (no set semantics), old elements first;
 *   - profile_unset removes each named key whatever its value;
 *   - $project, $token and $is_login_id in properties are envelope data and
 *     never become profile or item properties.
 *
 * Ownership: the result OBJECT and its member nodes are allocated in the
 * arena given, but member values may share child nodes (lists, nested
 * objects, strings) with `cur` and with rec->properties. Nothing reachable
 * from `cur` or the record is modified. Keep the arena(s) holding `cur`, the
 * record and `a` alive until *out has been serialised (wm_json_write); the
 * simplest is one arena for all three.
 */
#ifndef WAYMARK_PROFILE_H
#define WAYMARK_PROFILE_H

#include "waymark/arena.h"
#include "waymark/json.h"
#include "waymark/record.h"

/* Applies a profile_* record to `cur` (OBJECT or NULL = no profile).
 * On success *out is the new profile (OBJECT, possibly empty) or NULL when
 * deleted. On a semantic error (increment of a string, append to a non-list,
 * a non-number delta, a non-list append value) returns WM_ETYPE with
 * err->code "type_mismatch" and err->field "properties.<key>", *out = NULL,
 * and nothing of the record is applied. err may be NULL. Other returns:
 * WM_EINVAL (not a profile_* record, or cur not an OBJECT), WM_ENOMEM. */
int wm_profile_apply(wm_arena_t *a, const wm_json_t *cur, const wm_record_t *rec,
                     wm_json_t **out, wm_rec_error_t *err);

/* Merges an anonymous user's profile into a known user's: every property
 * `into` lacks is copied from `from`; `into` wins on conflicts (lists are not
 * concatenated). *out is a new OBJECT (NULL if both NULL). Same sharing as
 * wm_profile_apply. Returns 0, WM_EINVAL (not OBJECTs) or WM_ENOMEM. */
int wm_profile_merge(wm_arena_t *a, const wm_json_t *into, const wm_json_t *from, wm_json_t **out);

/* item_set: the new item object is `rec->properties` merged over `cur`
 * (item_set replaces given properties, keeps others, a null value removes
 * the property); item_delete: *out = NULL. Same sharing as wm_profile_apply.
 * Returns 0, WM_EINVAL (not an item_* record) or WM_ENOMEM. */
int wm_item_apply(wm_arena_t *a, const wm_json_t *cur, const wm_record_t *rec, wm_json_t **out);

#endif
