/*
 * record.h - the normalised ingest record and its validation.
 *
 * Every ingest path (Sensors /sa, Segment /v1/..., native /api/v1/events,
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
    const wm_json_t *src;         /* the JSON object the record was decoded from (set even
                                   * when validation fails), for dead letters; may be NULL */
    const char *raw;            /* the input object's text ('{' .. '}') when the stored form
                                 * may keep it verbatim (wm_record_from_json_text), else NULL;
                                 * points into the caller's text, which must outlive the record */
    uint32_t raw_len;
    uint8_t raw_adds;           /* WM_RAW_ADD_*: members the stored form adds to `raw` */
} wm_record_t;

#define WM_RAW_ADD_PROJECT 0x01     /* the input names no project: the resolved one is added */
#define WM_RAW_ADD_TIME 0x02        /* the input has no time: receive_time is the time */

/*
 * Record error codes: stable, machine-readable strings (compare with strcmp
 * or by pointer). docs/ingest-mapping.md lists which rule yields which code.
 */
#define WM_REC_ERR_MISSING_FIELD "missing_field"   /* a required field is absent */
#define WM_REC_ERR_INVALID_TYPE "invalid_type"     /* wrong JSON type (e.g. object as value) */
#define WM_REC_ERR_INVALID_NAME "invalid_name"     /* breaks ^[a-zA-Z_$][a-zA-Z0-9_$]{0,99}$ */
#define WM_REC_ERR_RESERVED_NAME "reserved_name"   /* distinct_id, time, user_group*, ... */
#define WM_REC_ERR_TOO_LONG "too_long"             /* id > 255 bytes, string > 8192 bytes */
#define WM_REC_ERR_TOO_MANY "too_many"             /* > WM_PROPERTIES_MAX / WM_IDENTITIES_MAX */
#define WM_REC_ERR_INVALID_VALUE "invalid_value"   /* right type, wrong value (empty id, bad time) */
#define WM_REC_ERR_UNKNOWN_TYPE "unknown_type"     /* `type` is not one of the 12 record types */
#define WM_REC_ERR_INVALID_JSON "invalid_json"     /* an NDJSON line that does not parse */

/* Where and why a record was rejected. `code` is one of the WM_REC_ERR_*
 * strings above (NULL when the record is good), `field` the JSON path of the
 * offending field ("properties.fund_code", "identities.$identity_mobile",
 * "" for the record as a whole), `msg` a readable English sentence. */
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
    int64_t now_ms;             /* reserved for a time-window check; not enforced here */
    int tz_offset_min;          /* zone of datetime strings in $time (minutes east; 0 = UTC) */
    bool stored;                /* obj is Waymark's stored form (wm_record_to_json): take
                                 * receive_time and ip from it instead of from this ctx.
                                 * Never set for client input: clients must not forge them. */
} wm_rec_ctx_t;

/*
 * Builds and validates a record from one Sensors-format JSON object (rules:
 * sensors-protocol.md section 2.4; the full list with error codes is in
 * docs/ingest-mapping.md). In short: `type` is one of the 12 types; names
 * (event, property keys, item_type, identity keys, project) follow the name
 * rule and custom property keys and event names avoid the reserved names;
 * ids are 1..255 bytes; property values are number, bool, null, string
 * <= WM_STRING_VALUE_MAX bytes or a list of such strings (objects rejected);
 * properties.$time / $project / $token are lifted out of properties into
 * time / project / token; `time` of 10 digits is seconds, 11..13 digits ms,
 * absent = ctx->receive_time_ms; profile_increment values are numbers,
 * profile_append values lists of strings, profile_unset values `true`.
 * IDM 3 records without distinct_id get one derived from identities as the
 * SDKs do. Wire names `_track_id` / `_flush_time` and stored names
 * `track_id` / `flush_time` are both read; `message_id` is read always;
 * `receive_time` and `ip` only when ctx->stored, which also reads `time` as
 * exact ms (no 10-digit-seconds heuristic).
 *
 * is_login_id = properties.$is_login_id when present, else true when
 * distinct_id equals login_id or identities.$identity_login_id.
 *
 * Allocates only from `a` (the identities array, a copy of properties when
 * keys were lifted, a derived distinct_id); strings point into `obj`.
 * Returns 0 (err->code = NULL) or WM_EINVAL with err filled; WM_ENOMEM when
 * the arena is exhausted.
 */
int wm_record_from_json(wm_arena_t *a, const wm_json_t *obj, const wm_rec_ctx_t *ctx,
                        wm_record_t *out, wm_rec_error_t *err);

/*
 * wm_record_from_json for an object parsed from text[0..len) (the whole
 * text, surrounding whitespace allowed). When reading the input back in
 * stored mode gives the same record with the same members as the canonical
 * form, out->raw is set and the stored form is that text plus the server's
 * members (see wm_record_to_json), so bulk ingest does not serialise every
 * record again. That is the case when: the text holds no backslash (keys and
 * values on the wire are what a raw scan of the stored text finds); every
 * top-level member is one the validator reads, once; none is `token`,
 * `receive_time` or `ip`; nothing was lifted out of properties; `time`, when
 * present, is the integer ms the record has; `project`, when present, is a
 * non-empty string; and no member is one the canonical form would drop (null
 * ids, an empty identities object, a zero flush_time, false time_free, an
 * event of a profile record...). `text` must outlive the record.
 */
int wm_record_from_json_text(wm_arena_t *a, const wm_json_t *obj, const char *text, size_t len,
                             const wm_rec_ctx_t *ctx, wm_record_t *out, wm_rec_error_t *err);

/*
 * Appends the canonical stored form of a validated record to `out`: one
 * compact Sensors-format JSON object with members in this order (optional
 * ones only when set):
 *
 *   "type", "event"?, "distinct_id"?, "original_id"?, "login_id"?,
 *   "anonymous_id"?, "identities"? (only when non-empty), "item_type"?,
 *   "item_id"?, "time", "time_free"? (only true), "project" (resolved),
 *   "token"?, "track_id"?, "flush_time"? (only when non-zero),
 *   "receive_time", "ip"?, "message_id"?, "lib"?, "properties" (always;
 *   $time/$project/$token already lifted out).
 *
 * A record with `raw` (wm_record_from_json_text) is written as its verbatim
 * form instead: "{", then "project" (when WM_RAW_ADD_PROJECT), "time" (when
 * WM_RAW_ADD_TIME), "receive_time", "token"?, "ip"?, then the input's members
 * as they were sent (member order, whitespace, number spelling and the wire
 * names _track_id / _flush_time kept). Both forms read back the same.
 *
 * wm_record_from_json(parse(out), ctx with .stored = true) yields a record
 * for which wm_record_equal() is true. Errors are reported through the
 * buffer's sticky `err` (WM_ENOMEM / WM_ELIMIT).
 */
void wm_record_to_json(const wm_record_t *r, wm_buf_t *out);

/* Field-by-field equality (strings by content, properties and lib as JSON
 * trees with member order significant). For round-trip checks and tests. */
bool wm_record_equal(const wm_record_t *x, const wm_record_t *y);

/* Name rule ^[a-zA-Z_$][a-zA-Z0-9_$]{0,99}$ (table lookup, no regex). */
bool wm_name_valid(const char *s);
bool wm_name_valid_n(const char *s, size_t n);
/* Reserved property/event names, case-insensitive: distinct_id original_id
 * time properties id first_id second_id users events event user_id date
 * datetime event_id device_id, and any name starting with user_group or
 * user_tag. `$` names are never reserved (presets). */
bool wm_name_reserved(const char *s);
bool wm_name_reserved_n(const char *s, size_t n);

/*
 * Lenient Sensors datetime: "yyyy-MM-dd" (is_date_only = true) or
 * "yyyy-MM-dd HH:mm:ss" with 'T' also accepted as separator and an optional
 * fraction of 1..3 digits read as a decimal fraction (".5" = 500 ms, as ISO;
 * Python SDK's unpadded ms are thereby misread by <1 s, see protocol 2.3).
 * No zone suffix. Interpreted in the given UTC offset (minutes east).
 * Returns 0 and epoch ms (is_date_only may be NULL), or WM_EINVAL for any
 * other shape or an out-of-range field (month 13, Feb 30, hour 24...).
 */
int wm_datetime_parse(const char *s, int tz_offset_min, int64_t *ms_out, bool *is_date_only);

/*
 * ISO-8601 timestamp as Segment libraries send it: the shapes above plus a
 * fraction of 1..9 digits (truncated to ms) and an optional zone: 'Z',
 * "+hh:mm", "+hhmm" or "+hh" (no zone = UTC). Returns 0 and epoch ms, or
 * WM_EINVAL.
 */
int wm_iso8601_parse(const char *s, int64_t *ms_out);

#endif
