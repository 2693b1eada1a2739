/*
 * record.h - the normalised ingest record and its validation.
 *
 * Every ingest path (Sensors /sa, Segment /v1/*, native /api/v1/events,
 * `waymark import`) turns its input into wm_record_t values and validates them
 * with the same rules (sensors-protocol.md section 2). A record that fails gets
 * a wm_rec_error_t naming the field; other records of the batch go on.
 *
 * Ownership: strings and JSON nodes referenced by a record live in the arena
 * that decoded it; the record is valid until that arena is reset.
 */
#ifndef WAYMARK_RECORD_H
#define WAYMARK_RECORD_H

#include <stdbool.h>
#include <stdint.h>

#include "waymark/arena.h"
#include "waymark/buf.h"
#include "waymark/json.h"

#define WM_REC_TYPE_MAP(X)                          \
    X(TRACK, "track")                               \
    X(TRACK_SIGNUP, "track_signup")                 \
    X(TRACK_ID_BIND, "track_id_bind")               \
    X(TRACK_ID_UNBIND, "track_id_unbind")           \
    X(PROFILE_SET, "profile_set")                   \
    X(PROFILE_SET_ONCE, "profile_set_once")         \
    X(PROFILE_INCREMENT, "profile_increment")       \
    X(PROFILE_APPEND, "profile_append")             \
    X(PROFILE_UNSET, "profile_unset")               \
    X(PROFILE_DELETE, "profile_delete")             \
    X(ITEM_SET, "item_set")                         \
    X(ITEM_DELETE, "item_delete")

typedef enum wm_rec_type {
#define WM__REC_ENUM(name, str) WM_REC_##name,
    WM_REC_TYPE_MAP(WM__REC_ENUM)
#undef WM__REC_ENUM
    WM_REC__COUNT
} wm_rec_type_t;

const char *wm_rec_type_name(wm_rec_type_t t);
/* Returns the type for a wire name, or -1. */
int wm_rec_type_parse(const char *s);

typedef struct wm_identity_kv {
    const char *key;     /* e.g. "$identity_login_id" */
    const char *value;
} wm_identity_kv_t;

typedef struct wm_record {
    wm_rec_type_t type;
    const char *event;          /* track* types; "$SignUp" etc. for the special ones */
    const char *distinct_id;    /* NULL for item_* */
    const char *original_id;    /* track_signup */
    const char *login_id;       /* IDM 2.0 envelope, optional */
    const char *anonymous_id;   /* IDM 2.0 envelope, optional */
    bool is_login_id;           /* properties.$is_login_id */
    const char *project;        /* resolved: record > query > "default" */
    const char *token;          /* record token, else query token, else NULL */
    int64_t time_ms;
    bool time_free;
    bool has_track_id;
    int64_t track_id;
    int64_t flush_time_ms;      /* 0 if absent */
    int64_t receive_time_ms;    /* server clock at receipt */
    const char *ip;             /* client IP as seen by the server, or NULL */
    const char *message_id;     /* Segment messageId / native event_id, or NULL */
    const char *item_type;      /* item_* */
    const char *item_id;        /* item_* */
    wm_identity_kv_t *identities;
    uint32_t n_identities;
    const wm_json_t *properties;  /* OBJECT (possibly empty); never NULL after validation */
    const wm_json_t *lib;         /* OBJECT or NULL */
} wm_record_t;

/* Where and why a record was rejected. `code` is a stable machine-readable
 * reason (see WM_REC_ERR_* strings in record.c, e.g. "invalid_name"),
 * `field` the JSON path of the offending field ("properties.fund_code"). */
typedef struct wm_rec_error {
    const char *code;
    char field[160];
    char msg[256];
} wm_rec_error_t;

/* Context a decoder supplies: defaults from the request. */
typedef struct wm_rec_ctx {
    const char *project;        /* ?project= or NULL */
    const char *token;          /* ?token= or NULL */
    const char *ip;             /* client address or NULL */
    int64_t receive_time_ms;
    int64_t now_ms;             /* for the time-window check; normally = receive time */
} wm_rec_ctx_t;

/*
 * Builds and validates a record from one Sensors-format JSON object.
 * Applies: type, name rules and reserved names, id lengths, property value
 * types (number, bool, string <= 8192, list of strings, null only where
 * allowed), $time -> time, 10-digit seconds -> ms, $is_login_id bool,
 * profile_increment numbers, profile_append lists, profile_unset `true`,
 * $project/$token lifted, identities as string map, item_type/item_id.
 * Returns 0, or WM_EINVAL with err filled.
 */
int wm_record_from_json(wm_arena_t *a, const wm_json_t *obj, const wm_rec_ctx_t *ctx,
                        wm_record_t *out, wm_rec_error_t *err);

/* Writes the canonical stored form: a Sensors-format JSON object including
 * server fields ("project", "$receive_time" in properties? no: top-level
 * "receive_time", "ip", "message_id"). Parsing it back with
 * wm_record_from_json yields an equal record. */
void wm_record_to_json(const wm_record_t *r, wm_buf_t *out);

/* Name rule ^[a-zA-Z_$][a-zA-Z0-9_$]{0,99}$ */
bool wm_name_valid(const char *s);
/* Reserved property/event names (case-insensitive) and prefixes. */
bool wm_name_reserved(const char *s);

/*
 * Lenient Sensors datetime: "yyyy-MM-dd", "yyyy-MM-dd HH:mm:ss" with an
 * optional 1..3 digit fraction (decimal, as ISO), also 'T' separator.
 * Interpreted in the given UTC offset (minutes east). Returns 0 and epoch ms.
 */
int wm_datetime_parse(const char *s, int tz_offset_min, int64_t *ms_out, bool *is_date_only);

#endif
