/*
 * native.c - Waymark's own ingest format (/api/v1/events, `waymark import`).
 *
 * The records are plain Sensors-format JSON objects, either as one JSON
 * array or as NDJSON (one object per line, the shape the Sensors C SDK and
 * LogAgent files use). NDJSON is parsed line by line so that one broken line
 * costs one record, not the file; this is also the hot path of bulk import,
 * so the loop does no work beyond memchr, the JSON parse and validation.
 */
#include "waymark/ingest.h"

#include <stdio.h>
#include <string.h>

#include "waymark/error.h"
#include "waymark/limits.h"
#ifdef WM_WITH_SIMDJSON
#include "core/json_simdjson.h"
#endif

int wm__ingest_records(wm_arena_t *a, const wm_json_t *root, const wm_rec_ctx_t *ctx,
                       wm_batch_t *out, char *errmsg, size_t errmsg_len);

static void set_msg(char *errmsg, size_t len, const char *msg)
{
    if (errmsg && len)
        snprintf(errmsg, len, "%s", msg);
}

static bool blank(const char *p, const char *end)
{
    for (; p < end; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r')
            return false;
    return true;
}

/* Native extra: `event_id` (a client message id) -> message_id. */
static void apply_event_id(const wm_json_t *obj, wm_record_t *r, wm_rec_error_t *err)
{
    const wm_json_t *e = wm_json_get(obj, "event_id");
    if (!e || e->type == WM_JSON_NULL)
        return;
    if (e->type != WM_JSON_STRING || e->len == 0 || e->len > WM_ID_LEN_MAX) {
        err->code = WM_REC_ERR_INVALID_TYPE;
        snprintf(err->field, sizeof err->field, "event_id");
        snprintf(err->msg, sizeof err->msg, "event_id must be a string of 1..%d bytes",
                 WM_ID_LEN_MAX);
        return;
    }
    r->message_id = e->u.str;
}

/* Prefixes a record error with its line number (blank lines make the batch
 * index differ from the line). */
static void prefix_line(wm_rec_error_t *err, size_t line)
{
    char head[32];
    int hn = snprintf(head, sizeof head, "line %zu: ", line);
    size_t keep = sizeof err->msg - 1 - (size_t)hn;
    size_t ml = strnlen(err->msg, keep);
    memmove(err->msg + hn, err->msg, ml);
    memcpy(err->msg, head, (size_t)hn);
    err->msg[hn + ml] = '\0';
}

static int decode_line(wm_arena_t *a, const char *p, size_t n, size_t line, const wm_rec_ctx_t *ctx,
                       wm_record_t *r, wm_rec_error_t *err)
{
    wm_json_t *obj;
    wm_json_error_t jerr;
#ifdef WM_WITH_SIMDJSON
    int rc = wm__json_parse_simdjson(a, p, n, &obj, &jerr);
#else
    int rc = wm_json_parse(a, p, n, &obj, &jerr);
#endif
    if (rc == WM_ENOMEM)
        return rc;
    if (rc) {
        memset(r, 0, sizeof *r);
        err->code = WM_REC_ERR_INVALID_JSON;
        err->field[0] = '\0';
        snprintf(err->msg, sizeof err->msg, "line %zu: not valid JSON: %s", line,
                 rc == WM_ELIMIT ? "nesting too deep" : jerr.msg);
        return WM_EINVAL;
    }
    rc = wm_record_from_json_text(a, obj, p, n, ctx, r, err);
    if (rc == WM_ENOMEM)
        return rc;
    if (rc == 0) {
        apply_event_id(obj, r, err);
        if (r->message_id && r->raw && !wm_json_get(obj, "message_id"))
            r->raw = NULL; /* event_id became message_id: only the canonical form has it */
        rc = err->code ? WM_EINVAL : 0;
    }
    if (rc)
        prefix_line(err, line);
    return rc;
}

static int decode_ndjson(wm_arena_t *a, const char *body, size_t len, const wm_rec_ctx_t *ctx,
                         wm_batch_t *out, char *errmsg, size_t errmsg_len)
{
    const char *end = body + len;
    size_t lines = 1;
    for (const char *p = body; (p = memchr(p, '\n', (size_t)(end - p))); p++)
        lines++;
    if (lines > WM_BATCH_RECORDS_MAX) {
        /* blank lines do not count: recount the real records */
        size_t real = 0;
        for (const char *p = body; p < end;) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *le = nl ? nl : end;
            real += !blank(p, le);
            p = le + 1;
        }
        if (real > WM_BATCH_RECORDS_MAX) {
            if (errmsg && errmsg_len)
                snprintf(errmsg, errmsg_len, "%zu records in one request; the limit is %d", real,
                         WM_BATCH_RECORDS_MAX);
            return WM_ELIMIT;
        }
        lines = real;
    }
    out->records = wm_arena_alloc(a, (lines ? lines : 1) * sizeof *out->records);
    out->errors = wm_arena_alloc(a, (lines ? lines : 1) * sizeof *out->errors);
    if (!out->records || !out->errors)
        return WM_ENOMEM;
    size_t line = 0;
    for (const char *p = body; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        line++;
        if (!blank(p, le)) {
            int rc = decode_line(a, p, (size_t)(le - p), line, ctx, &out->records[out->n],
                                 &out->errors[out->n]);
            if (rc == WM_ENOMEM)
                return rc;
            out->n_ok += rc == 0;
            out->n++;
        }
        p = le + 1;
    }
    return 0;
}

static bool first_is_array(const char *s, size_t n)
{
    while (n && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n'))
        s++, n--;
    return n && *s == '[';
}

int wm_native_decode(wm_arena_t *a, const char *body, size_t len, const wm_rec_ctx_t *ctx,
                     wm_batch_t *out, char *errmsg, size_t errmsg_len)
{
    memset(out, 0, sizeof *out);
    if (errmsg && errmsg_len)
        errmsg[0] = '\0';
    if (!body)
        len = 0;
    if (len > WM_HTTP_BODY_MAX) {
        set_msg(errmsg, errmsg_len, "request body too large");
        return WM_ELIMIT;
    }
    if (!first_is_array(body, len))
        return decode_ndjson(a, body, len, ctx, out, errmsg, errmsg_len);
    wm_json_t *root;
    wm_json_error_t jerr;
    int rc = wm_json_parse(a, body, len, &root, &jerr);
    if (rc == WM_ENOMEM)
        return rc;
    if (rc) {
        if (errmsg && errmsg_len)
            snprintf(errmsg, errmsg_len, "the body is not a valid JSON array: %s",
                     rc == WM_ELIMIT ? "nesting too deep" : jerr.msg);
        return WM_EPARSE;
    }
    if ((rc = wm__ingest_records(a, root, ctx, out, errmsg, errmsg_len)))
        return rc;
    const wm_json_t *e = root->u.child;
    for (uint32_t i = 0; i < out->n; i++, e = e->next) {
        if (out->errors[i].code)
            continue;
        apply_event_id(e, &out->records[i], &out->errors[i]);
        out->n_ok -= out->errors[i].code != NULL;
    }
    return 0;
}
