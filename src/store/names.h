/*
 * names.h - internal: small numeric ids for the names a partition would
 * otherwise repeat in every stored row and key (project names, journey keys).
 *
 * A user row that says "project 1" instead of {"project":"default"}, or a
 * user/journey key that ends in a one-byte journey id instead of
 * "default\0bench_entries", is what keeps state per user and per waiting
 * instance within the budget of DESIGN.md §10. One table per partition
 * environment, in its own DBI:
 *
 *   "n" name         -> u32 id (little-endian)
 *   "i" u32be id     -> name
 *
 * Ids start at 1 (0 = none), are assigned by the partition writer inside the
 * transaction whose rows use them, and are never reused or renumbered, so
 * they are stable across restarts and crashes. Names are byte strings (a
 * journey is "project\0key"). The whole table is also kept in memory; the
 * writer tells it when its transaction commits or aborts, so ids of an
 * aborted transaction are forgotten.
 */
#ifndef WAYMARK_STORE_NAMES_H
#define WAYMARK_STORE_NAMES_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wm_names wm_names_t;

/* Opens (creating) DBI dbi_name in txn and loads the table. Returns 0,
 * WM_ENOMEM, WM_EIO or WM_ECORRUPT. Close with wm_names_close. */
int wm_names_open(MDB_txn *txn, const char *dbi_name, wm_names_t **out);
void wm_names_close(wm_names_t *n);

/* Writer thread: the id of name, assigned in txn when it is new. */
int wm_names_assign(wm_names_t *n, MDB_txn *txn, const char *name, size_t len, uint32_t *id);
/* The writer's transaction committed / aborted (ids assigned in it kept / dropped). */
void wm_names_committed(wm_names_t *n);
void wm_names_aborted(wm_names_t *n);

/* Any thread: the id of a known name (false when it has none yet). */
bool wm_names_find(wm_names_t *n, const char *name, size_t len, uint32_t *id);
/* Any thread: copies the name of id into out (cap bytes, NUL-terminated
 * after the name's own bytes); returns its length, or -1 when id is unknown
 * or the name does not fit. */
int wm_names_get(wm_names_t *n, uint32_t id, char *out, size_t cap);

#endif
