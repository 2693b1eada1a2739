/*
 * catalog.h - internal: the SQLite catalog (DIR/catalog.db, WAL).
 *
 * Projects and their ingest tokens, API keys (stored as SHA-256 hashes),
 * the schema registry (a property's type is fixed at first sight per project
 * and namespace), and the dead-letter store of rejected records.
 *
 * All functions are thread-safe (one mutex; SQLite is only touched under it).
 * The schema registry is cached in memory so the hot path never reaches
 * SQLite except when a property is seen for the first time.
 */
#ifndef WAYMARK_STORE_CATALOG_H
#define WAYMARK_STORE_CATALOG_H

#include <stdbool.h>
#include <stdint.h>

#include "waymark/buf.h"
#include "waymark/record.h"

typedef struct wm_catalog wm_catalog_t;

typedef enum wm_prop_type {
    WM_PT_NONE = 0,
    WM_PT_NUMBER,
    WM_PT_BOOL,
    WM_PT_STRING,
    WM_PT_LIST,
    WM_PT_DATETIME,
    WM_PT_DATE,
} wm_prop_type_t;

const char *wm__prop_type_name(wm_prop_type_t t);

int wm__catalog_open(const char *path, wm_catalog_t **out);
void wm__catalog_close(wm_catalog_t *c);

/* Projects. Token NULL = accept any. */
int wm__catalog_project_create(wm_catalog_t *c, const char *name, const char *token);
/* 0 ok, WM_EAUTH, WM_ENOTFOUND */
int wm__catalog_check_token(wm_catalog_t *c, const char *project, const char *token);
int wm__catalog_project_for_token(wm_catalog_t *c, const char *token, char *project, size_t len);
int wm__catalog_projects_json(wm_catalog_t *c, wm_buf_t *out);

/* API keys: the key itself is never stored, only its SHA-256. */
int wm__catalog_key_add(wm_catalog_t *c, const char *key, const char *role);
/* Writes the role into role (NUL-terminated) and returns 0, or WM_ENOTFOUND. */
int wm__catalog_key_role(wm_catalog_t *c, const char *key, char *role, size_t role_len);

/*
 * Schema check of one record: every property's type must match the type
 * registered for (project, namespace, name); unseen properties are
 * registered. On mismatch returns WM_ETYPE with err naming the property.
 * When dry_run, new properties are checked but not registered.
 */
int wm__catalog_schema_check(wm_catalog_t *c, const wm_record_t *rec, bool dry_run,
                             wm_rec_error_t *err);
int wm__catalog_schema_json(wm_catalog_t *c, const char *project, wm_buf_t *out);

/* Dead letters: the canonical record JSON (or the raw text when the record
 * could not be decoded) with the error. */
int wm__catalog_deadletter_add(wm_catalog_t *c, const char *project, const char *source,
                               const wm_rec_error_t *err, const char *raw, size_t raw_len);
int wm__catalog_deadletter_json(wm_catalog_t *c, const char *project, uint32_t limit,
                                wm_buf_t *out);
/* Calls cb for each dead letter of project (id > 0: only that one). */
typedef int (*wm__deadletter_cb)(void *ctx, int64_t id, const char *raw, size_t raw_len);
int wm__catalog_deadletter_each(wm_catalog_t *c, const char *project, int64_t id,
                                wm__deadletter_cb cb, void *ctx);
int wm__catalog_deadletter_delete(wm_catalog_t *c, int64_t id);
int64_t wm__catalog_deadletter_count(wm_catalog_t *c);

/* ---- journeys, channels, templates, project settings ---- */

/* Small JSON documents keyed by (project, name) in table "channels",
 * "templates" or "project_settings" (value text). */
int wm__catalog_doc_put(wm_catalog_t *c, const char *table, const char *project, const char *name,
                        const char *json);
typedef int (*wm__catalog_doc_cb)(void *ctx, const char *project, const char *name, const char *json);
/* project NULL = all projects */
int wm__catalog_doc_each(wm_catalog_t *c, const char *table, const char *project,
                         wm__catalog_doc_cb cb, void *ctx);

typedef struct wm__journey_row {
    char status[16];            /* draft | published | paused | stopped */
    char *draft;                /* wm_malloc'd JSON, caller frees */
    uint32_t version;           /* latest published version, 0 if never */
    int64_t updated_ms;
} wm__journey_row_t;

/* Creates or replaces the draft of a journey. */
int wm__catalog_journey_save(wm_catalog_t *c, const char *project, const char *key, const char *json);
int wm__catalog_journey_get(wm_catalog_t *c, const char *project, const char *key,
                            wm__journey_row_t *out);
/* Copies the draft into a new version and marks the journey published. */
int wm__catalog_journey_publish(wm_catalog_t *c, const char *project, const char *key,
                                uint32_t *version);
/* Sets the status (paused, published, stopped) and records who and why. */
int wm__catalog_journey_status(wm_catalog_t *c, const char *project, const char *key,
                               const char *status, const char *actor, const char *reason);
typedef int (*wm__journey_version_cb)(void *ctx, const char *project, const char *key, uint32_t version,
                                      const char *definition, const char *status, uint32_t current);
/* Every published version of every journey (instances may run on old ones). */
int wm__catalog_journey_versions(wm_catalog_t *c, wm__journey_version_cb cb, void *ctx);
int wm__catalog_journeys_json(wm_catalog_t *c, const char *project, wm_buf_t *out);

/* ---- audience definitions: kind "tag" or "segment" ---- */

typedef struct wm__aud_row {
    char status[16];            /* draft | published | archived */
    char *draft;                /* wm_malloc'd JSON, caller frees */
    uint32_t version;           /* latest published version, 0 if never */
    uint32_t id;                /* numeric id, stable for the key's life */
    int64_t updated_ms;
} wm__aud_row_t;

/* Creates (with a new numeric id) or replaces the draft. */
int wm__catalog_aud_save(wm_catalog_t *c, const char *kind, const char *project, const char *key,
                         const char *json);
int wm__catalog_aud_get(wm_catalog_t *c, const char *kind, const char *project, const char *key,
                        wm__aud_row_t *out);
/* Copies the draft into a new version (returned) and marks it published. */
int wm__catalog_aud_publish(wm_catalog_t *c, const char *kind, const char *project, const char *key,
                            uint32_t *version);
int wm__catalog_aud_status(wm_catalog_t *c, const char *kind, const char *project, const char *key,
                           const char *status);
typedef int (*wm__aud_version_cb)(void *ctx, const char *project, const char *key, uint32_t id,
                                  uint32_t version, const char *definition, const char *status);
/* The current published version of every definition of a kind. */
int wm__catalog_aud_current(wm_catalog_t *c, const char *kind, wm__aud_version_cb cb, void *ctx);
/* Appends the definitions of a project as comma-separated JSON objects
 * {key,id,status,version,updated_ms,definition (the draft)}. */
int wm__catalog_aud_list_json(wm_catalog_t *c, const char *kind, const char *project, wm_buf_t *out);

/* Saved journey maps (docs/api.md, "Journey maps"): the definition as
 * normalised JSON, its version counting from 1 (every save + 1; every
 * version kept in map_versions until the map is deleted). create: WM_EEXISTS
 * when the key is taken; replace: WM_ENOTFOUND when it is not. */
typedef struct wm__map_row {
    char *definition;       /* wm_free */
    uint32_t version;
    int64_t created_ms, updated_ms;
} wm__map_row_t;

int wm__catalog_map_put(wm_catalog_t *c, const char *project, const char *key, const char *name,
                        const char *json, bool create, uint32_t *version);
int wm__catalog_map_get(wm_catalog_t *c, const char *project, const char *key, wm__map_row_t *out);
/* {"maps":[{key,name,version,created_ms,updated_ms,definition}]} ordered by key. */
int wm__catalog_maps_json(wm_catalog_t *c, const char *project, wm_buf_t *out);
int wm__catalog_map_delete(wm_catalog_t *c, const char *project, const char *key);

/* SHA-256 hex of s (65 bytes with NUL). */
void wm__sha256_hex(const char *s, size_t n, char hex[65]);

#endif
