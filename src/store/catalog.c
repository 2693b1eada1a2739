/*
 * catalog.c - projects, API keys, schema registry and dead letters in SQLite.
 *
 * SQLite (WAL, synchronous=NORMAL) because this is small relational data that
 * operators want to inspect with `sqlite3`. The schema registry is mirrored in
 * a hash map so validating a record costs a few lookups, not SQL.
 */
#include "catalog.h"

#include <openssl/sha.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "waymark/alloc.h"
#include "waymark/error.h"
#include "waymark/strmap.h"

struct wm_catalog {
    uint64_t id;                    /* distinguishes catalogs in the shape cache */
    sqlite3 *db;
    pthread_mutex_t mu;
    pthread_rwlock_t schema_lock;   /* the schema map: read-mostly */
    wm_strmap_t schema;     /* "project\x1fns\x1fname" -> wm_prop_type_t */
    wm_strmap_t tokens;     /* project -> 1 + index into token_strs, or 0 = any */
    char **token_strs;
    size_t n_tokens;
};

static const char *SCHEMA_SQL =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS projects(name TEXT PRIMARY KEY, token TEXT,"
    "  created_ms INTEGER NOT NULL DEFAULT (CAST(strftime('%s','now') AS INTEGER)*1000));"
    "CREATE TABLE IF NOT EXISTS api_keys(key_sha256 TEXT PRIMARY KEY, role TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL DEFAULT (CAST(strftime('%s','now') AS INTEGER)*1000));"
    "CREATE TABLE IF NOT EXISTS schema_props(project TEXT NOT NULL, ns TEXT NOT NULL,"
    "  name TEXT NOT NULL, type TEXT NOT NULL,"
    "  first_seen_ms INTEGER NOT NULL DEFAULT (CAST(strftime('%s','now') AS INTEGER)*1000),"
    "  PRIMARY KEY(project, ns, name));"
    "CREATE TABLE IF NOT EXISTS deadletter(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  project TEXT NOT NULL, source TEXT NOT NULL, error_code TEXT NOT NULL,"
    "  field TEXT NOT NULL, message TEXT NOT NULL, raw TEXT NOT NULL,"
    "  received_ms INTEGER NOT NULL DEFAULT (CAST(strftime('%s','now') AS INTEGER)*1000));"
    "CREATE INDEX IF NOT EXISTS deadletter_project ON deadletter(project, id);"
    "CREATE TABLE IF NOT EXISTS journeys(project TEXT NOT NULL, key TEXT NOT NULL,"
    "  status TEXT NOT NULL DEFAULT 'draft', draft TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 0,"
    "  updated_ms INTEGER NOT NULL, PRIMARY KEY(project, key));"
    "CREATE TABLE IF NOT EXISTS journey_versions(project TEXT NOT NULL, key TEXT NOT NULL,"
    "  version INTEGER NOT NULL, definition TEXT NOT NULL, published_ms INTEGER NOT NULL,"
    "  PRIMARY KEY(project, key, version));"
    "CREATE TABLE IF NOT EXISTS journey_log(id INTEGER PRIMARY KEY AUTOINCREMENT, project TEXT NOT NULL,"
    "  key TEXT NOT NULL, action TEXT NOT NULL, version INTEGER, actor TEXT, reason TEXT,"
    "  at_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS channels(project TEXT NOT NULL, name TEXT NOT NULL,"
    "  definition TEXT NOT NULL, PRIMARY KEY(project, name));"
    "CREATE TABLE IF NOT EXISTS templates(project TEXT NOT NULL, key TEXT NOT NULL,"
    "  definition TEXT NOT NULL, PRIMARY KEY(project, key));"
    "CREATE TABLE IF NOT EXISTS project_settings(project TEXT NOT NULL, name TEXT NOT NULL,"
    "  value TEXT NOT NULL, PRIMARY KEY(project, name));"
    "CREATE TABLE IF NOT EXISTS audience_defs(kind TEXT NOT NULL, project TEXT NOT NULL,"
    "  key TEXT NOT NULL, id INTEGER NOT NULL, status TEXT NOT NULL DEFAULT 'draft',"
    "  draft TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 0, updated_ms INTEGER NOT NULL,"
    "  PRIMARY KEY(kind, project, key), UNIQUE(kind, id));"
    "CREATE TABLE IF NOT EXISTS audience_versions(kind TEXT NOT NULL, project TEXT NOT NULL,"
    "  key TEXT NOT NULL, version INTEGER NOT NULL, definition TEXT NOT NULL,"
    "  published_ms INTEGER NOT NULL, PRIMARY KEY(kind, project, key, version));"
    "CREATE TABLE IF NOT EXISTS maps(project TEXT NOT NULL, key TEXT NOT NULL, name TEXT NOT NULL,"
    "  definition TEXT NOT NULL, version INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL, PRIMARY KEY(project, key));"
    "CREATE TABLE IF NOT EXISTS map_versions(project TEXT NOT NULL, key TEXT NOT NULL,"
    "  version INTEGER NOT NULL, definition TEXT NOT NULL, saved_ms INTEGER NOT NULL,"
    "  PRIMARY KEY(project, key, version));"
    "INSERT OR IGNORE INTO projects(name, token) VALUES('default', NULL);";

static const char *TYPE_NAMES[] = {"none", "number", "bool", "string", "list", "datetime", "date"};

const char *wm__prop_type_name(wm_prop_type_t t)
{
    return (unsigned)t < sizeof TYPE_NAMES / sizeof TYPE_NAMES[0] ? TYPE_NAMES[t] : "none";
}

static wm_prop_type_t type_from_name(const char *s)
{
    for (unsigned i = 1; i < sizeof TYPE_NAMES / sizeof TYPE_NAMES[0]; i++)
        if (strcmp(s, TYPE_NAMES[i]) == 0)
            return (wm_prop_type_t)i;
    return WM_PT_NONE;
}

void wm__sha256_hex(const char *s, size_t n, char hex[65])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)s, n, md);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

static size_t schema_key(char *dst, size_t cap, const char *project, const char *ns,
                         const char *name)
{
    size_t a = strlen(project), b = strlen(ns), c = strlen(name);
    if (a + b + c + 3 > cap)
        return 0;
    memcpy(dst, project, a);
    dst[a] = '\x1f';
    memcpy(dst + a + 1, ns, b);
    dst[a + 1 + b] = '\x1f';
    memcpy(dst + a + 2 + b, name, c);
    dst[a + b + c + 2] = '\0';
    return a + b + c + 2;
}

static int load_tokens(wm_catalog_t *c)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db, "SELECT name, token FROM projects", -1, &st, NULL) != SQLITE_OK)
        return WM_EIO;
    int rc = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        const char *tok = (const char *)sqlite3_column_text(st, 1);
        uint64_t v = 0;
        if (tok && *tok) {
            char **n = wm_realloc(c->token_strs, (c->n_tokens + 1) * sizeof *n);
            if (!n) {
                rc = WM_ENOMEM;
                break;
            }
            c->token_strs = n;
            if (!(n[c->n_tokens] = wm_strdup(tok))) {
                rc = WM_ENOMEM;
                break;
            }
            v = ++c->n_tokens;
        }
        if ((rc = wm_strmap_put(&c->tokens, name, strlen(name), v)))
            break;
    }
    sqlite3_finalize(st);
    return rc;
}

static int load_schema(wm_catalog_t *c)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db, "SELECT project, ns, name, type FROM schema_props", -1, &st,
                           NULL) != SQLITE_OK)
        return WM_EIO;
    int rc = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        char key[512];
        size_t kl = schema_key(key, sizeof key, (const char *)sqlite3_column_text(st, 0),
                               (const char *)sqlite3_column_text(st, 1),
                               (const char *)sqlite3_column_text(st, 2));
        if (kl && (rc = wm_strmap_put(&c->schema, key, kl,
                                      type_from_name((const char *)sqlite3_column_text(st, 3)))))
            break;
    }
    sqlite3_finalize(st);
    return rc;
}

int wm__catalog_open(const char *path, wm_catalog_t **out)
{
    wm_catalog_t *c = wm_calloc(1, sizeof *c);
    if (!c)
        return WM_ENOMEM;
    static _Atomic uint64_t next_id = 1;
    c->id = atomic_fetch_add(&next_id, 1);
    pthread_mutex_init(&c->mu, NULL);
    pthread_rwlock_init(&c->schema_lock, NULL);
    wm_strmap_init(&c->schema);
    wm_strmap_init(&c->tokens);
    int rc = WM_EIO;
    if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        fprintf(stderr, "waymark: cannot open catalog %s: %s\n", path,
                c->db ? sqlite3_errmsg(c->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(c->db, 5000);
    char *msg = NULL;
    if (sqlite3_exec(c->db, SCHEMA_SQL, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "waymark: catalog schema: %s\n", msg ? msg : "?");
        sqlite3_free(msg);
        goto fail;
    }
    if ((rc = load_tokens(c)) || (rc = load_schema(c)))
        goto fail;
    *out = c;
    return 0;
fail:
    wm__catalog_close(c);
    return rc;
}

void wm__catalog_close(wm_catalog_t *c)
{
    if (!c)
        return;
    if (c->db)
        sqlite3_close(c->db);
    wm_strmap_release(&c->schema);
    wm_strmap_release(&c->tokens);
    for (size_t i = 0; i < c->n_tokens; i++)
        wm_free(c->token_strs[i]);
    wm_free(c->token_strs);
    pthread_mutex_destroy(&c->mu);
    pthread_rwlock_destroy(&c->schema_lock);
    wm_free(c);
}

/* Runs one statement with text parameters (NULL binds SQL NULL). */
static int exec_text(wm_catalog_t *c, const char *sql, int n, const char **params)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
        return WM_EIO;
    for (int i = 0; i < n; i++) {
        if (params[i])
            sqlite3_bind_text(st, i + 1, params[i], -1, SQLITE_TRANSIENT);
        else
            sqlite3_bind_null(st, i + 1);
    }
    int step = sqlite3_step(st);
    sqlite3_finalize(st);
    if (step == SQLITE_CONSTRAINT)
        return WM_EEXISTS;
    return step == SQLITE_DONE ? 0 : WM_EIO;
}

int wm__catalog_project_create(wm_catalog_t *c, const char *name, const char *token)
{
    pthread_mutex_lock(&c->mu);
    const char *p[2] = {name, token && *token ? token : NULL};
    int rc = exec_text(c, "INSERT INTO projects(name, token) VALUES(?, ?) "
                          "ON CONFLICT(name) DO UPDATE SET token = excluded.token",
                       2, p);
    if (!rc) {
        uint64_t v = 0;
        if (p[1]) {
            char **n = wm_realloc(c->token_strs, (c->n_tokens + 1) * sizeof *n);
            if (n) {
                c->token_strs = n;
                n[c->n_tokens] = wm_strdup(p[1]);
                v = n[c->n_tokens] ? ++c->n_tokens : 0;
            }
            if (!v)
                rc = WM_ENOMEM;
        }
        if (!rc)
            rc = wm_strmap_put(&c->tokens, name, strlen(name), v);
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int wm__catalog_check_token(wm_catalog_t *c, const char *project, const char *token)
{
    pthread_mutex_lock(&c->mu);
    uint64_t v;
    int rc;
    if (!wm_strmap_get(&c->tokens, project, strlen(project), &v))
        rc = WM_ENOTFOUND;
    else if (v == 0)
        rc = 0;
    else
        rc = token && strcmp(token, c->token_strs[v - 1]) == 0 ? 0 : WM_EAUTH;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int wm__catalog_project_for_token(wm_catalog_t *c, const char *token, char *project, size_t len)
{
    int rc = WM_EAUTH;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; token && i < c->tokens.cap && rc; i++) {
        const wm_strmap_entry_t *en = &c->tokens.slots[i];
        if (en->key && en->value && strcmp(c->token_strs[en->value - 1], token) == 0) {
            snprintf(project, len, "%.*s", (int)en->key_len, en->key);
            rc = 0;
        }
    }
    uint64_t v;
    if (rc && wm_strmap_get(&c->tokens, "default", 7, &v) && v == 0) {
        snprintf(project, len, "default");
        rc = 0;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int wm__catalog_projects_json(wm_catalog_t *c, wm_buf_t *out)
{
    pthread_mutex_lock(&c->mu);
    sqlite3_stmt *st;
    int rc = WM_EIO;
    if (sqlite3_prepare_v2(c->db, "SELECT name, token IS NOT NULL, created_ms FROM projects ORDER BY name",
                           -1, &st, NULL) == SQLITE_OK) {
        wm_buf_puts(out, "{\"projects\":[");
        int first = 1;
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *name = (const char *)sqlite3_column_text(st, 0);
            if (!first)
                wm_buf_putc(out, ',');
            first = 0;
            wm_buf_puts(out, "{\"name\":");
            wm_buf_json_str(out, name, strlen(name));
            wm_buf_printf(out, ",\"has_token\":%s,\"created_ms\":%lld}",
                          sqlite3_column_int(st, 1) ? "true" : "false",
                          (long long)sqlite3_column_int64(st, 2));
        }
        wm_buf_puts(out, "]}");
        sqlite3_finalize(st);
        rc = 0;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int wm__catalog_key_add(wm_catalog_t *c, const char *key, const char *role)
{
    char hex[65];
    wm__sha256_hex(key, strlen(key), hex);
    pthread_mutex_lock(&c->mu);
    const char *p[2] = {hex, role};
    int rc = exec_text(c, "INSERT OR REPLACE INTO api_keys(key_sha256, role) VALUES(?, ?)", 2, p);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int wm__catalog_key_role(wm_catalog_t *c, const char *key, char *role, size_t role_len)
{
    char hex[65];
    wm__sha256_hex(key, strlen(key), hex);
    pthread_mutex_lock(&c->mu);
    sqlite3_stmt *st;
    int rc = WM_EIO;
    if (sqlite3_prepare_v2(c->db, "SELECT role FROM api_keys WHERE key_sha256 = ?", -1, &st,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
        rc = WM_ENOTFOUND;
        if (sqlite3_step(st) == SQLITE_ROW) {
            snprintf(role, role_len, "%s", (const char *)sqlite3_column_text(st, 0));
            rc = 0;
        }
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* ---- schema registry ---- */

static bool looks_datetime(const char *s, size_t n, wm_prop_type_t *t)
{
    /* yyyy-MM-dd or yyyy-MM-dd HH:mm:ss[.f{1,3}] */
    static const char date_pat[] = "dddd-dd-dd";
    if (n < 10)
        return false;
    for (int i = 0; i < 10; i++) {
        char c = s[i];
        if (date_pat[i] == 'd' ? (c < '0' || c > '9') : c != '-')
            return false;
    }
    if (n == 10) {
        *t = WM_PT_DATE;
        return true;
    }
    static const char time_pat[] = " dd:dd:dd";
    if (n < 19)
        return false;
    for (int i = 0; i < 9; i++) {
        char c = s[10 + i];
        if (time_pat[i] == 'd' ? (c < '0' || c > '9') : (i == 0 ? (c != ' ' && c != 'T') : c != ':'))
            return false;
    }
    if (n == 19) {
        *t = WM_PT_DATETIME;
        return true;
    }
    if (s[19] != '.' || n > 23 || n < 21)
        return false;
    for (size_t i = 20; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    *t = WM_PT_DATETIME;
    return true;
}

static wm_prop_type_t value_type(const wm_json_t *v)
{
    switch (v->type) {
    case WM_JSON_NUMBER: return WM_PT_NUMBER;
    case WM_JSON_TRUE:
    case WM_JSON_FALSE: return WM_PT_BOOL;
    case WM_JSON_ARRAY: return WM_PT_LIST;
    case WM_JSON_STRING: {
        wm_prop_type_t t;
        return looks_datetime(v->u.str, v->len, &t) ? t : WM_PT_STRING;
    }
    default: return WM_PT_NONE;
    }
}

static bool types_compatible(wm_prop_type_t registered, wm_prop_type_t seen)
{
    if (registered == seen)
        return true;
    /* a date is a datetime at midnight; a datetime-looking value of a string
     * property is still a string */
    if ((registered == WM_PT_DATETIME && seen == WM_PT_DATE) ||
        (registered == WM_PT_DATE && seen == WM_PT_DATETIME))
        return true;
    return registered == WM_PT_STRING && (seen == WM_PT_DATE || seen == WM_PT_DATETIME);
}

static const char *record_ns(const wm_record_t *r, char *buf, size_t cap)
{
    switch (r->type) {
    case WM_REC_ITEM_SET:
    case WM_REC_ITEM_DELETE:
        snprintf(buf, cap, "item:%s", r->item_type ? r->item_type : "");
        return buf;
    case WM_REC_PROFILE_SET:
    case WM_REC_PROFILE_SET_ONCE:
    case WM_REC_PROFILE_INCREMENT:
    case WM_REC_PROFILE_APPEND:
    case WM_REC_PROFILE_UNSET:
    case WM_REC_PROFILE_DELETE:
        return "user";
    default:
        return "event";
    }
}

static int schema_register(wm_catalog_t *c, const char *project, const char *ns, const char *name,
                           wm_prop_type_t t, const char *key, size_t kl)
{
    const char *p[4] = {project, ns, name, wm__prop_type_name(t)};
    int rc = exec_text(c, "INSERT OR IGNORE INTO schema_props(project, ns, name, type) VALUES(?,?,?,?)",
                       4, p);
    if (rc)
        return rc;
    return wm_strmap_put(&c->schema, key, kl, t);
}

static int schema_check_slow(wm_catalog_t *c, const wm_record_t *rec, const char *ns, bool dry_run,
                             wm_rec_error_t *err);

/* Checks one property against the map; returns 1 when it is not registered
 * yet, 0 when compatible, WM_ETYPE (err filled) on a mismatch. */
static int schema_probe(wm_catalog_t *c, const wm_record_t *rec, const char *ns,
                        const wm_json_t *p, wm_prop_type_t seen, const char *key, size_t kl,
                        wm_rec_error_t *err)
{
    uint64_t reg;
    if (!wm_strmap_get(&c->schema, key, kl, &reg))
        return 1;
    if (types_compatible((wm_prop_type_t)reg, seen))
        return 0;
    err->code = "type_mismatch";
    snprintf(err->field, sizeof err->field, "properties.%s", p->key);
    snprintf(err->msg, sizeof err->msg,
             "property '%s' is registered as %s in project '%s' (%s), but this record has a %s",
             p->key, wm__prop_type_name((wm_prop_type_t)reg), rec->project, ns,
             wm__prop_type_name(seen));
    return WM_ETYPE;
}

/*
 * Shape cache: a record's shape is its project, namespace and the list of
 * (property name, value type). Registered types never change, so a shape
 * that passed once passes forever; most records repeat a few shapes, and a
 * hit skips the per-property lookups and the lock. Per thread, direct
 * mapped, keyed by a 64-bit hash that includes the catalog's id.
 */
#define SHAPE_CACHE_SLOTS 4096
static _Thread_local uint64_t shape_cache[SHAPE_CACHE_SLOTS];

static uint64_t record_shape(const wm_catalog_t *c, const wm_record_t *rec, const char *ns)
{
    /* the shape as one byte string (name, NUL, type per property), hashed once */
    unsigned char buf[4096];
    size_t n = 0;
    uint64_t h = wm_hash64(&c->id, sizeof c->id, 0x5348415045ull);
    h = wm_hash64(rec->project, strlen(rec->project), h);
    h = wm_hash64(ns, strlen(ns) + 1, h);
    for (const wm_json_t *p = rec->properties->u.child; p; p = p->next) {
        if (n + p->key_len + 2 > sizeof buf) {
            h = wm_hash64(buf, n, h);
            n = 0;
        }
        if (p->key_len + 2 > sizeof buf) {
            h = wm_hash64(p->key, p->key_len, h);
            continue;
        }
        memcpy(buf + n, p->key, p->key_len);
        n += p->key_len;
        buf[n++] = 0;
        buf[n++] = (unsigned char)value_type(p);
    }
    h = wm_hash64(buf, n, h);
    return h | 1; /* 0 marks an empty slot */
}

int wm__catalog_schema_check(wm_catalog_t *c, const wm_record_t *rec, bool dry_run,
                             wm_rec_error_t *err)
{
    if (rec->type == WM_REC_PROFILE_UNSET || rec->type == WM_REC_PROFILE_DELETE ||
        rec->type == WM_REC_ITEM_DELETE || !rec->properties)
        return 0;
    char nsbuf[160];
    const char *ns = record_ns(rec, nsbuf, sizeof nsbuf);
    uint64_t shape = record_shape(c, rec, ns);
    uint64_t *slot = &shape_cache[shape % SHAPE_CACHE_SLOTS];
    if (*slot == shape)
        return 0;
    int rc = schema_check_slow(c, rec, ns, dry_run, err);
    if (rc == 0 && !dry_run)
        *slot = shape;
    return rc;
}

static int schema_check_slow(wm_catalog_t *c, const wm_record_t *rec, const char *ns, bool dry_run,
                             wm_rec_error_t *err)
{
    int rc = 0;
    bool unseen = false;
    /* common case: every property known -> shared lock only */
    pthread_rwlock_rdlock(&c->schema_lock);
    for (const wm_json_t *p = rec->properties->u.child; p && rc <= 0; p = p->next) {
        wm_prop_type_t seen = value_type(p);
        char key[512];
        size_t kl = seen == WM_PT_NONE ? 0 : schema_key(key, sizeof key, rec->project, ns, p->key);
        if (!kl)
            continue;
        int r = schema_probe(c, rec, ns, p, seen, key, kl, err);
        if (r == 1)
            unseen = true;
        else if (r)
            rc = r;
    }
    pthread_rwlock_unlock(&c->schema_lock);
    if (rc || !unseen || dry_run)
        return rc;
    pthread_rwlock_wrlock(&c->schema_lock);
    pthread_mutex_lock(&c->mu);
    for (const wm_json_t *p = rec->properties->u.child; p && !rc; p = p->next) {
        wm_prop_type_t seen = value_type(p);
        char key[512];
        size_t kl = seen == WM_PT_NONE ? 0 : schema_key(key, sizeof key, rec->project, ns, p->key);
        if (!kl)
            continue;
        int r = schema_probe(c, rec, ns, p, seen, key, kl, err);
        if (r == 1)
            rc = schema_register(c, rec->project, ns, p->key, seen, key, kl);
        else
            rc = r;
    }
    pthread_mutex_unlock(&c->mu);
    pthread_rwlock_unlock(&c->schema_lock);
    return rc;
}

int wm__catalog_schema_json(wm_catalog_t *c, const char *project, wm_buf_t *out)
{
    pthread_mutex_lock(&c->mu);
    sqlite3_stmt *st;
    int rc = WM_EIO;
    if (sqlite3_prepare_v2(c->db,
                           "SELECT ns, name, type, first_seen_ms FROM schema_props WHERE project = ? "
                           "ORDER BY ns, name",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC);
        wm_buf_puts(out, "{\"project\":");
        wm_buf_json_str(out, project, strlen(project));
        wm_buf_puts(out, ",\"properties\":[");
        int first = 1;
        while (sqlite3_step(st) == SQLITE_ROW) {
            if (!first)
                wm_buf_putc(out, ',');
            first = 0;
            for (int i = 0; i < 3; i++) {
                static const char *names[] = {"{\"namespace\":", ",\"name\":", ",\"type\":"};
                const char *s = (const char *)sqlite3_column_text(st, i);
                wm_buf_puts(out, names[i]);
                wm_buf_json_str(out, s, strlen(s));
            }
            wm_buf_printf(out, ",\"first_seen_ms\":%lld}", (long long)sqlite3_column_int64(st, 3));
        }
        wm_buf_puts(out, "]}");
        sqlite3_finalize(st);
        rc = 0;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* Rows copied out of SQLite (column texts, NULL stays NULL), so that a
 * caller can call back into the catalog while walking them. */
typedef struct rows {
    char **v;           /* v[row * ncols + col] */
    size_t n;
    int ncols;
} rows_t;

static void rows_free(rows_t *r)
{
    for (size_t i = 0; i < r->n * (size_t)r->ncols; i++)
        wm_free(r->v[i]);
    wm_free(r->v);
    memset(r, 0, sizeof *r);
}

static int query_rows(wm_catalog_t *c, const char *sql, int nbind, const char *const *binds, int ncols,
                      rows_t *out)
{
    memset(out, 0, sizeof *out);
    out->ncols = ncols;
    size_t cap = 0;
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) {
        pthread_mutex_unlock(&c->mu);
        return WM_EIO;
    }
    for (int i = 0; i < nbind; i++)
        sqlite3_bind_text(st, i + 1, binds[i], -1, SQLITE_STATIC);
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        if (out->n == cap) {
            cap = cap ? cap * 2 : 16;
            char **v = wm_realloc(out->v, cap * (size_t)ncols * sizeof *v);
            if (!v) {
                rc = WM_ENOMEM;
                break;
            }
            out->v = v;
        }
        for (int col = 0; col < ncols; col++) {
            const char *t = (const char *)sqlite3_column_text(st, col);
            char **slot = &out->v[out->n * (size_t)ncols + (size_t)col];
            *slot = t ? wm_strdup(t) : NULL;
            if (t && !*slot)
                rc = WM_ENOMEM;
        }
        out->n++;
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&c->mu);
    if (rc)
        rows_free(out);
    return rc;
}

/* ---- dead letters ---- */

int wm__catalog_deadletter_add(wm_catalog_t *c, const char *project, const char *source,
                               const wm_rec_error_t *err, const char *raw, size_t raw_len)
{
    pthread_mutex_lock(&c->mu);
    sqlite3_stmt *st;
    int rc = WM_EIO;
    if (sqlite3_prepare_v2(c->db,
                           "INSERT INTO deadletter(project, source, error_code, field, message, raw) "
                           "VALUES(?,?,?,?,?,?)",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, project ? project : "default", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, source ? source : "unknown", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, err->code ? err->code : "error", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, err->field, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, err->msg, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, raw ? raw : "", raw ? (int)raw_len : 0, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : WM_EIO;
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int wm__catalog_deadletter_json(wm_catalog_t *c, const char *project, uint32_t limit, wm_buf_t *out)
{
    pthread_mutex_lock(&c->mu);
    sqlite3_stmt *st;
    int rc = WM_EIO;
    if (sqlite3_prepare_v2(c->db,
                           "SELECT id, source, error_code, field, message, raw, received_ms "
                           "FROM deadletter WHERE project = ? ORDER BY id DESC LIMIT ?",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, limit);
        wm_buf_puts(out, "{\"deadletters\":[");
        int first = 1;
        while (sqlite3_step(st) == SQLITE_ROW) {
            static const char *names[] = {",\"source\":", ",\"code\":", ",\"field\":",
                                          ",\"message\":", ",\"raw\":"};
            if (!first)
                wm_buf_putc(out, ',');
            first = 0;
            wm_buf_printf(out, "{\"id\":%lld", (long long)sqlite3_column_int64(st, 0));
            for (int i = 0; i < 5; i++) {
                const char *s = (const char *)sqlite3_column_text(st, i + 1);
                wm_buf_puts(out, names[i]);
                wm_buf_json_str(out, s ? s : "", s ? (size_t)sqlite3_column_bytes(st, i + 1) : 0);
            }
            wm_buf_printf(out, ",\"received_ms\":%lld}", (long long)sqlite3_column_int64(st, 6));
        }
        wm_buf_puts(out, "]}");
        sqlite3_finalize(st);
        rc = 0;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int wm__catalog_deadletter_each(wm_catalog_t *c, const char *project, int64_t id,
                                wm__deadletter_cb cb, void *ctx)
{
    char idbuf[24];
    snprintf(idbuf, sizeof idbuf, "%lld", (long long)id);
    const char *binds[2] = {project, idbuf};
    rows_t r;
    int rc = query_rows(c,
                        id > 0 ? "SELECT id, raw FROM deadletter WHERE project = ? AND id = CAST(? AS INTEGER)"
                               : "SELECT id, raw FROM deadletter WHERE project = ? ORDER BY id",
                        id > 0 ? 2 : 1, binds, 2, &r);
    for (size_t i = 0; !rc && i < r.n; i++) {
        const char *raw = r.v[i * 2 + 1] ? r.v[i * 2 + 1] : "";
        rc = cb(ctx, strtoll(r.v[i * 2] ? r.v[i * 2] : "0", NULL, 10), raw, strlen(raw));
    }
    rows_free(&r);
    return rc;
}

int wm__catalog_deadletter_delete(wm_catalog_t *c, int64_t id)
{
    pthread_mutex_lock(&c->mu);
    char idbuf[24];
    snprintf(idbuf, sizeof idbuf, "%lld", (long long)id);
    const char *p[1] = {idbuf};
    int rc = exec_text(c, "DELETE FROM deadletter WHERE id = CAST(? AS INTEGER)", 1, p);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int64_t wm__catalog_deadletter_count(wm_catalog_t *c)
{
    pthread_mutex_lock(&c->mu);
    sqlite3_stmt *st;
    int64_t n = 0;
    if (sqlite3_prepare_v2(c->db, "SELECT count(*) FROM deadletter", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* ---- journeys, channels, templates, settings ---- */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int wm__catalog_doc_put(wm_catalog_t *c, const char *table, const char *project, const char *name,
                        const char *json)
{
    char sql[200];
    const char *keycol = strcmp(table, "channels") == 0 ? "name" : "key";
    if (strcmp(table, "project_settings") == 0)
        keycol = "name";
    snprintf(sql, sizeof sql,
             "INSERT INTO %s(project, %s, %s) VALUES(?,?,?) ON CONFLICT DO UPDATE SET %s = excluded.%s",
             table, keycol, strcmp(table, "project_settings") == 0 ? "value" : "definition",
             strcmp(table, "project_settings") == 0 ? "value" : "definition",
             strcmp(table, "project_settings") == 0 ? "value" : "definition");
    pthread_mutex_lock(&c->mu);
    const char *p[3] = {project, name, json};
    int rc = exec_text(c, sql, 3, p);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int wm__catalog_doc_each(wm_catalog_t *c, const char *table, const char *project,
                         wm__catalog_doc_cb cb, void *ctx)
{
    char sql[200];
    bool settings = strcmp(table, "project_settings") == 0;
    snprintf(sql, sizeof sql, "SELECT project, %s, %s FROM %s %s ORDER BY 1, 2",
             strcmp(table, "templates") == 0 ? "key" : "name", settings ? "value" : "definition",
             table, project ? "WHERE project = ?" : "");
    const char *binds[1] = {project};
    rows_t r;
    int rc = query_rows(c, sql, project ? 1 : 0, binds, 3, &r);
    for (size_t i = 0; !rc && i < r.n; i++)
        if (r.v[i * 3] && r.v[i * 3 + 1] && r.v[i * 3 + 2])
            rc = cb(ctx, r.v[i * 3], r.v[i * 3 + 1], r.v[i * 3 + 2]);
    rows_free(&r);
    return rc;
}

int wm__catalog_journey_save(wm_catalog_t *c, const char *project, const char *key, const char *json)
{
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)wall_ms());
    const char *p[4] = {project, key, json, now};
    pthread_mutex_lock(&c->mu);
    int rc = exec_text(c,
                       "INSERT INTO journeys(project, key, draft, updated_ms) VALUES(?,?,?,CAST(? AS INTEGER)) "
                       "ON CONFLICT DO UPDATE SET draft = excluded.draft, updated_ms = excluded.updated_ms",
                       4, p);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int wm__catalog_journey_get(wm_catalog_t *c, const char *project, const char *key,
                            wm__journey_row_t *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&c->mu);
    sqlite3_stmt *st;
    int rc = WM_EIO;
    if (sqlite3_prepare_v2(c->db,
                           "SELECT status, draft, version, updated_ms FROM journeys WHERE project = ? AND key = ?",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
        rc = WM_ENOTFOUND;
        if (sqlite3_step(st) == SQLITE_ROW) {
            snprintf(out->status, sizeof out->status, "%s", (const char *)sqlite3_column_text(st, 0));
            out->draft = wm_strdup((const char *)sqlite3_column_text(st, 1));
            out->version = (uint32_t)sqlite3_column_int(st, 2);
            out->updated_ms = sqlite3_column_int64(st, 3);
            rc = out->draft ? 0 : WM_ENOMEM;
        }
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int wm__catalog_journey_publish(wm_catalog_t *c, const char *project, const char *key,
                                uint32_t *version)
{
    pthread_mutex_lock(&c->mu);
    int rc = WM_EIO;
    char *err = NULL;
    if (sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, &err) != SQLITE_OK) {
        sqlite3_free(err);
        pthread_mutex_unlock(&c->mu);
        return WM_EIO;
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db, "SELECT version, draft FROM journeys WHERE project = ? AND key = ?", -1,
                           &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
        rc = WM_ENOTFOUND;
        if (sqlite3_step(st) == SQLITE_ROW) {
            uint32_t v = (uint32_t)sqlite3_column_int(st, 0) + 1;
            char *draft = wm_strdup((const char *)sqlite3_column_text(st, 1));
            sqlite3_finalize(st);
            st = NULL;
            char vs[16], now[24];
            snprintf(vs, sizeof vs, "%u", v);
            snprintf(now, sizeof now, "%lld", (long long)wall_ms());
            const char *p1[5] = {project, key, vs, draft, now};
            const char *p2[4] = {vs, now, project, key};
            rc = draft ? exec_text(c,
                                   "INSERT INTO journey_versions(project, key, version, definition, published_ms) "
                                   "VALUES(?,?,CAST(? AS INTEGER),?,CAST(? AS INTEGER))",
                                   5, p1)
                       : WM_ENOMEM;
            if (!rc)
                rc = exec_text(c,
                               "UPDATE journeys SET version = CAST(? AS INTEGER), status = 'published', "
                               "updated_ms = CAST(? AS INTEGER) WHERE project = ? AND key = ?",
                               4, p2);
            wm_free(draft);
            if (!rc)
                *version = v;
        }
        if (st)
            sqlite3_finalize(st);
    }
    sqlite3_exec(c->db, rc ? "ROLLBACK" : "COMMIT", NULL, NULL, NULL);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int wm__catalog_journey_status(wm_catalog_t *c, const char *project, const char *key,
                               const char *status, const char *actor, const char *reason)
{
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)wall_ms());
    const char *p[4] = {status, now, project, key};
    const char *l[6] = {project, key, status, actor ? actor : "", reason ? reason : "", now};
    pthread_mutex_lock(&c->mu);
    int rc = exec_text(c, "UPDATE journeys SET status = ?, updated_ms = CAST(? AS INTEGER) "
                          "WHERE project = ? AND key = ?",
                       4, p);
    if (!rc && sqlite3_changes(c->db) == 0)
        rc = WM_ENOTFOUND;
    if (!rc)
        rc = exec_text(c, "INSERT INTO journey_log(project, key, action, actor, reason, at_ms) "
                          "VALUES(?,?,?,?,?,CAST(? AS INTEGER))",
                       6, l);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int wm__catalog_journey_versions(wm_catalog_t *c, wm__journey_version_cb cb, void *ctx)
{
    rows_t r;
    int rc = query_rows(c,
                        "SELECT v.project, v.key, v.version, v.definition, j.status, j.version "
                        "FROM journey_versions v JOIN journeys j ON j.project = v.project AND j.key = v.key "
                        "ORDER BY v.project, v.key, v.version",
                        0, NULL, 6, &r);
    for (size_t i = 0; !rc && i < r.n; i++) {
        char **row = &r.v[i * 6];
        if (row[0] && row[1] && row[2] && row[3] && row[4] && row[5])
            rc = cb(ctx, row[0], row[1], (uint32_t)strtoul(row[2], NULL, 10), row[3], row[4],
                    (uint32_t)strtoul(row[5], NULL, 10));
    }
    rows_free(&r);
    return rc;
}

int wm__catalog_journeys_json(wm_catalog_t *c, const char *project, wm_buf_t *out)
{
    pthread_mutex_lock(&c->mu);
    sqlite3_stmt *st;
    int rc = WM_EIO;
    if (sqlite3_prepare_v2(c->db,
                           "SELECT key, status, version, updated_ms, draft FROM journeys WHERE project = ? ORDER BY key",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC);
        wm_buf_puts(out, "{\"journeys\":[");
        int first = 1;
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *k = (const char *)sqlite3_column_text(st, 0);
            const char *s = (const char *)sqlite3_column_text(st, 1);
            if (!first)
                wm_buf_putc(out, ',');
            first = 0;
            wm_buf_puts(out, "{\"key\":");
            wm_buf_json_str(out, k, strlen(k));
            wm_buf_puts(out, ",\"status\":");
            wm_buf_json_str(out, s, strlen(s));
            wm_buf_printf(out, ",\"version\":%d,\"updated_ms\":%lld}", sqlite3_column_int(st, 2),
                          (long long)sqlite3_column_int64(st, 3));
        }
        wm_buf_puts(out, "]}");
        sqlite3_finalize(st);
        rc = 0;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* ---- audience definitions (tags, segments) ---- */

int wm__catalog_aud_save(wm_catalog_t *c, const char *kind, const char *project, const char *key,
                         const char *json)
{
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)wall_ms());
    const char *p[6] = {kind, project, key, kind, json, now};
    pthread_mutex_lock(&c->mu);
    /* ids are small, stable and never reused within a kind: they key the
     * partitions' membership stores */
    int rc = exec_text(c,
                       "INSERT INTO audience_defs(kind, project, key, id, draft, updated_ms) "
                       "VALUES(?,?,?,(SELECT COALESCE(MAX(id), 0) + 1 FROM audience_defs WHERE kind = ?),"
                       "?,CAST(? AS INTEGER)) "
                       "ON CONFLICT(kind, project, key) DO UPDATE SET draft = excluded.draft, "
                       "updated_ms = excluded.updated_ms",
                       6, p);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int wm__catalog_aud_get(wm_catalog_t *c, const char *kind, const char *project, const char *key,
                        wm__aud_row_t *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&c->mu);
    sqlite3_stmt *st;
    int rc = WM_EIO;
    if (sqlite3_prepare_v2(c->db,
                           "SELECT status, draft, version, updated_ms, id FROM audience_defs "
                           "WHERE kind = ? AND project = ? AND key = ?",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, project, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
        rc = WM_ENOTFOUND;
        if (sqlite3_step(st) == SQLITE_ROW) {
            snprintf(out->status, sizeof out->status, "%s", (const char *)sqlite3_column_text(st, 0));
            out->draft = wm_strdup((const char *)sqlite3_column_text(st, 1));
            out->version = (uint32_t)sqlite3_column_int(st, 2);
            out->updated_ms = sqlite3_column_int64(st, 3);
            out->id = (uint32_t)sqlite3_column_int(st, 4);
            rc = out->draft ? 0 : WM_ENOMEM;
        }
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int wm__catalog_aud_publish(wm_catalog_t *c, const char *kind, const char *project, const char *key,
                            uint32_t *version)
{
    pthread_mutex_lock(&c->mu);
    int rc = WM_EIO;
    if (sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        pthread_mutex_unlock(&c->mu);
        return WM_EIO;
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db,
                           "SELECT version, draft FROM audience_defs WHERE kind = ? AND project = ? AND key = ?",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, project, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
        rc = WM_ENOTFOUND;
        if (sqlite3_step(st) == SQLITE_ROW) {
            uint32_t v = (uint32_t)sqlite3_column_int(st, 0) + 1;
            char *draft = wm_strdup((const char *)sqlite3_column_text(st, 1));
            sqlite3_finalize(st);
            st = NULL;
            char vs[16], now[24];
            snprintf(vs, sizeof vs, "%u", v);
            snprintf(now, sizeof now, "%lld", (long long)wall_ms());
            const char *p1[6] = {kind, project, key, vs, draft, now};
            const char *p2[5] = {vs, now, kind, project, key};
            rc = draft ? exec_text(c,
                                   "INSERT INTO audience_versions(kind, project, key, version, definition, "
                                   "published_ms) VALUES(?,?,?,CAST(? AS INTEGER),?,CAST(? AS INTEGER))",
                                   6, p1)
                       : WM_ENOMEM;
            if (!rc)
                rc = exec_text(c,
                               "UPDATE audience_defs SET version = CAST(? AS INTEGER), status = 'published', "
                               "updated_ms = CAST(? AS INTEGER) WHERE kind = ? AND project = ? AND key = ?",
                               5, p2);
            wm_free(draft);
            if (!rc)
                *version = v;
        }
        if (st)
            sqlite3_finalize(st);
    }
    sqlite3_exec(c->db, rc ? "ROLLBACK" : "COMMIT", NULL, NULL, NULL);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int wm__catalog_aud_status(wm_catalog_t *c, const char *kind, const char *project, const char *key,
                           const char *status)
{
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)wall_ms());
    const char *p[5] = {status, now, kind, project, key};
    pthread_mutex_lock(&c->mu);
    int rc = exec_text(c, "UPDATE audience_defs SET status = ?, updated_ms = CAST(? AS INTEGER) "
                          "WHERE kind = ? AND project = ? AND key = ?",
                       5, p);
    if (!rc && sqlite3_changes(c->db) == 0)
        rc = WM_ENOTFOUND;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int wm__catalog_aud_current(wm_catalog_t *c, const char *kind, wm__aud_version_cb cb, void *ctx)
{
    const char *binds[1] = {kind};
    rows_t r;
    int rc = query_rows(c,
                        "SELECT d.project, d.key, d.id, v.version, v.definition, d.status "
                        "FROM audience_defs d JOIN audience_versions v ON v.kind = d.kind AND "
                        "v.project = d.project AND v.key = d.key AND v.version = d.version "
                        "WHERE d.kind = ? ORDER BY d.project, d.id",
                        1, binds, 6, &r);
    for (size_t i = 0; !rc && i < r.n; i++) {
        char **row = &r.v[i * 6];
        if (row[0] && row[1] && row[2] && row[3] && row[4] && row[5])
            rc = cb(ctx, row[0], row[1], (uint32_t)strtoul(row[2], NULL, 10),
                    (uint32_t)strtoul(row[3], NULL, 10), row[4], row[5]);
    }
    rows_free(&r);
    return rc;
}

int wm__catalog_aud_list_json(wm_catalog_t *c, const char *kind, const char *project, wm_buf_t *out)
{
    const char *binds[2] = {kind, project};
    rows_t r;
    int rc = query_rows(c,
                        "SELECT key, id, status, version, updated_ms, draft FROM audience_defs "
                        "WHERE kind = ? AND project = ? ORDER BY key",
                        2, binds, 6, &r);
    if (rc)
        return rc;
    for (size_t i = 0; i < r.n; i++) {
        char **row = &r.v[i * 6];
        if (!row[0] || !row[1] || !row[2] || !row[3] || !row[4] || !row[5])
            continue;
        if (i)
            wm_buf_putc(out, ',');
        wm_buf_puts(out, "{\"key\":");
        wm_buf_json_str(out, row[0], strlen(row[0]));
        wm_buf_printf(out, ",\"id\":%s,\"status\":", row[1]);
        wm_buf_json_str(out, row[2], strlen(row[2]));
        wm_buf_printf(out, ",\"version\":%s,\"updated_ms\":%s,\"definition\":%s}", row[3], row[4],
                      row[5]);
    }
    rows_free(&r);
    return 0;
}

/* ---- saved journey maps ---- */

int wm__catalog_map_put(wm_catalog_t *c, const char *project, const char *key, const char *name,
                        const char *json, bool create, uint32_t *version)
{
    pthread_mutex_lock(&c->mu);
    if (sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        pthread_mutex_unlock(&c->mu);
        return WM_EIO;
    }
    int rc = WM_EIO;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db, "SELECT version FROM maps WHERE project = ? AND key = ?", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
        int step = sqlite3_step(st);
        bool exists = step == SQLITE_ROW;
        uint32_t v = exists ? (uint32_t)sqlite3_column_int(st, 0) + 1 : 1;
        sqlite3_finalize(st);
        if (step != SQLITE_ROW && step != SQLITE_DONE)
            rc = WM_EIO;
        else if (create && exists)
            rc = WM_EEXISTS;
        else if (!create && !exists)
            rc = WM_ENOTFOUND;
        else {
            char vs[16], now[24];
            snprintf(vs, sizeof vs, "%u", v);
            snprintf(now, sizeof now, "%lld", (long long)wall_ms());
            const char *p1[7] = {project, key, name, json, vs, now, now};
            rc = exec_text(c,
                           "INSERT INTO maps(project, key, name, definition, version, created_ms, updated_ms) "
                           "VALUES(?,?,?,?,CAST(? AS INTEGER),CAST(? AS INTEGER),CAST(? AS INTEGER)) "
                           "ON CONFLICT(project, key) DO UPDATE SET name = excluded.name, "
                           "definition = excluded.definition, version = excluded.version, "
                           "updated_ms = excluded.updated_ms",
                           7, p1);
            const char *p2[5] = {project, key, vs, json, now};
            if (!rc)
                rc = exec_text(c,
                               "INSERT INTO map_versions(project, key, version, definition, saved_ms) "
                               "VALUES(?,?,CAST(? AS INTEGER),?,CAST(? AS INTEGER))",
                               5, p2);
            if (!rc)
                *version = v;
        }
    }
    sqlite3_exec(c->db, rc ? "ROLLBACK" : "COMMIT", NULL, NULL, NULL);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int wm__catalog_map_get(wm_catalog_t *c, const char *project, const char *key, wm__map_row_t *out)
{
    memset(out, 0, sizeof *out);
    const char *binds[2] = {project, key};
    rows_t r;
    int rc = query_rows(c,
                        "SELECT definition, version, created_ms, updated_ms FROM maps "
                        "WHERE project = ? AND key = ?",
                        2, binds, 4, &r);
    if (rc)
        return rc;
    if (!r.n || !r.v[0] || !r.v[1] || !r.v[2] || !r.v[3]) {
        rows_free(&r);
        return WM_ENOTFOUND;
    }
    out->definition = r.v[0];
    r.v[0] = NULL;
    out->version = (uint32_t)strtoul(r.v[1], NULL, 10);
    out->created_ms = strtoll(r.v[2], NULL, 10);
    out->updated_ms = strtoll(r.v[3], NULL, 10);
    rows_free(&r);
    return 0;
}

int wm__catalog_maps_json(wm_catalog_t *c, const char *project, wm_buf_t *out)
{
    const char *binds[1] = {project};
    rows_t r;
    int rc = query_rows(c,
                        "SELECT key, name, version, created_ms, updated_ms, definition FROM maps "
                        "WHERE project = ? ORDER BY key",
                        1, binds, 6, &r);
    if (rc)
        return rc;
    wm_buf_puts(out, "{\"maps\":[");
    int k = 0;
    for (size_t i = 0; i < r.n; i++) {
        char **row = &r.v[i * 6];
        if (!row[0] || !row[1] || !row[2] || !row[3] || !row[4] || !row[5])
            continue;
        wm_buf_puts(out, k++ ? ",{\"key\":" : "{\"key\":");
        wm_buf_json_str(out, row[0], strlen(row[0]));
        wm_buf_puts(out, ",\"name\":");
        wm_buf_json_str(out, row[1], strlen(row[1]));
        wm_buf_printf(out, ",\"version\":%s,\"created_ms\":%s,\"updated_ms\":%s,\"definition\":%s}", row[2],
                      row[3], row[4], row[5]);
    }
    wm_buf_puts(out, "]}");
    rows_free(&r);
    return out->err;
}

int wm__catalog_map_delete(wm_catalog_t *c, const char *project, const char *key)
{
    const char *p[2] = {project, key};
    pthread_mutex_lock(&c->mu);
    int rc = exec_text(c, "DELETE FROM maps WHERE project = ? AND key = ?", 2, p);
    if (!rc && sqlite3_changes(c->db) == 0)
        rc = WM_ENOTFOUND;
    if (!rc)
        rc = exec_text(c, "DELETE FROM map_versions WHERE project = ? AND key = ?", 2, p);
    pthread_mutex_unlock(&c->mu);
    return rc;
}
