/*
 * ingest.h - wire decoders: Sensors Analytics (/sa, /sa.gif, /debug), Segment
 * (/v1/...), native (/api/v1/events, NDJSON import). Each turns a request into
 * a wm_batch_t of validated records plus a per-record error slot.
 *
 * A payload-level fault (bad base64, bad gzip, JSON that does not parse as a
 * whole) fails the call with WM_EPARSE and a message in `errmsg`; record-level
 * faults only fill batch->errors[i] and the other records stay good.
 *
 * Ownership: everything lives in the arena passed in.
 */
#ifndef WAYMARK_INGEST_H
#define WAYMARK_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "waymark/arena.h"
#include "waymark/record.h"

typedef struct wm_batch {
    uint32_t n;
    wm_record_t *records;       /* n entries; valid where errors[i].code == NULL */
    wm_rec_error_t *errors;     /* n entries */
    uint32_t n_ok;
} wm_batch_t;

/* ---- form / transport helpers (sensors.c) ---- */

typedef struct wm_param {
    const char *name;           /* percent-decoded, NUL-terminated */
    const char *value;          /* percent-decoded ('+' kept as '+', see below) */
    size_t value_len;
} wm_param_t;

typedef struct wm_params {
    wm_param_t *items;
    uint32_t n;
} wm_params_t;

/* Parses application/x-www-form-urlencoded text (query string or body),
 * appending to *out. '+' in values is decoded as '+' (not space) because
 * Sensors payloads are base64 and some clients do not escape '+'. */
int wm_form_parse(wm_arena_t *a, const char *s, size_t n, wm_params_t *out);
/* Last value of a parameter or NULL. */
const wm_param_t *wm_params_get(const wm_params_t *p, const char *name);

/* Lenient standard base64: ignores CR/LF/tab, accepts missing padding,
 * accepts ' ' as '+', also accepts the URL-safe alphabet. Output is
 * NUL-terminated in the arena. Returns 0, WM_EPARSE (other characters, data
 * after padding, a dangling 6-bit group) or WM_ENOMEM. wm_base64_encode
 * appends standard padded base64 to b (errors via b->err). */
int wm_base64_decode(wm_arena_t *a, const char *s, size_t n, unsigned char **out, size_t *out_len);
void wm_base64_encode(wm_buf_t *b, const void *data, size_t n);
/* gzip (or zlib, or raw deflate as fallback) -> bytes, bounded by max_out;
 * concatenated gzip members are joined. Output is NUL-terminated in the
 * arena. Returns 0, WM_EPARSE (not inflatable / truncated), WM_ELIMIT (more
 * than max_out bytes) or WM_ENOMEM. */
int wm_gunzip(wm_arena_t *a, const void *in, size_t n, size_t max_out, char **out, size_t *out_len);
/* Java String.hashCode over the UTF-16 units of a UTF-8 string (crc field). */
int32_t wm_java_hashcode(const char *s, size_t n);

/* ---- Sensors ---- */

typedef struct wm_sensors_req {
    const char *query;          /* raw query string without '?', may be NULL */
    size_t query_len;
    const char *body;           /* raw POST body, may be NULL */
    size_t body_len;
    wm_rec_ctx_t ctx;           /* ip, receive time; project/token filled by decoder */
} wm_sensors_req_t;

typedef struct wm_sensors_info {
    const char *project;        /* from the query, or NULL */
    const char *token;          /* from the query, or NULL */
    int gzip;                   /* the gzip parameter */
    bool crc_present, crc_ok;   /* crc / ext=crc=N checked against the payload */
} wm_sensors_info_t;

/*
 * Decodes one Sensors request (sensors-protocol.md 1.4; summary in
 * docs/ingest-mapping.md section 4): params from the query and from the body
 * parsed as a form whatever the Content-Type (a body starting with '{' or '['
 * without data/data_list is raw JSON); payload = data_list else data; gzip
 * 0/1; base64; JSON array or a bare object. Records get project/token from
 * the query when they name none, ip and receive time from req->ctx.
 * info (may be NULL) reports project/token/gzip and the crc check.
 *
 * Returns 0 with *out filled (records may still carry errors), or:
 * WM_EUNSUPPORTED (gzip=9/13, encrypted), WM_EINVAL (other gzip value),
 * WM_EPARSE (no payload, bad base64/gzip/JSON, not object/array), WM_ELIMIT
 * (body > WM_HTTP_BODY_MAX, decoded > WM_DECODED_BYTES_MAX, records >
 * WM_BATCH_RECORDS_MAX), WM_ENOMEM; errmsg (may be NULL) says why.
 */
int wm_sensors_decode(wm_arena_t *a, const wm_sensors_req_t *req, wm_batch_t *out,
                      wm_sensors_info_t *info, char *errmsg, size_t errmsg_len);

/* ---- Segment ---- */

typedef enum wm_segspec_kind {
    WM_SEGSPEC_BATCH, WM_SEGSPEC_TRACK, WM_SEGSPEC_IDENTIFY, WM_SEGSPEC_ALIAS, WM_SEGSPEC_PAGE,
    WM_SEGSPEC_SCREEN, WM_SEGSPEC_GROUP,
} wm_segspec_kind_t;

/* Returns the kind for a path tail ("batch", "track", ...) or -1. */
int wm_segspec_kind_parse(const char *s);

/* Decodes a Segment HTTP API body (JSON) for the given endpoint kind into
 * Sensors-model records (mapping in docs/ingest-mapping.md section 5).
 * `ctx->project` is the project the write key belongs to. Returns 0 (per
 * message errors in out->errors), WM_EPARSE (body not a JSON object, batch
 * without a "batch" array), WM_ELIMIT (body over WM_SEGMENT_MESSAGE_MAX, or
 * WM_SEGMENT_BATCH_MAX for a batch; > WM_BATCH_RECORDS_MAX messages) or
 * WM_ENOMEM. "import" parses as WM_SEGSPEC_BATCH too. */
int wm_segspec_decode(wm_arena_t *a, wm_segspec_kind_t kind, const char *body, size_t len,
                      const wm_rec_ctx_t *ctx, wm_batch_t *out, char *errmsg, size_t errmsg_len);

/* ---- native ---- */

/* Body is a JSON array of Sensors-format records, or NDJSON (one per line;
 * blank lines skipped). A line that does not parse is a per-record error
 * ("invalid_json"); NDJSON error messages start with "line N: ". An optional
 * string `event_id` becomes message_id. Returns 0, WM_EPARSE (a body starting
 * with '[' that is not valid JSON), WM_ELIMIT (> WM_HTTP_BODY_MAX bytes or
 * > WM_BATCH_RECORDS_MAX records: bulk import feeds chunks) or WM_ENOMEM. */
int wm_native_decode(wm_arena_t *a, const char *body, size_t len, const wm_rec_ctx_t *ctx,
                     wm_batch_t *out, char *errmsg, size_t errmsg_len);

#endif
