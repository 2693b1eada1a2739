/*
 * segment.c - the Segment HTTP tracking API (/v1/batch, /v1/track, ...).
 *
 * Segment messages are mapped onto Sensors-format JSON objects and then go
 * through the one validator in record.c, so both wire formats obey the same
 * rules and produce the same stored records. The mapping (which Segment field
 * becomes which Sensors field, how names are rewritten) is documented in
 * docs/ingest-mapping.md; this file is its executable form.
 *
 * Segment property names are free text ("Order Completed", "plan.tier"), so
 * names are rewritten into the Sensors name rule instead of rejecting most
 * real-world Segment traffic. Values that Sensors cannot hold (nested
 * objects, lists of non-strings) are flattened or turned into JSON text.
 */
#include "waymark/ingest.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "waymark/alloc.h"
#include "waymark/error.h"
#include "waymark/limits.h"

int wm_segspec_kind_parse(const char *s)
{
    static const struct { const char *name; int kind; } kinds[] = {
        {"batch", WM_SEGSPEC_BATCH},       {"import", WM_SEGSPEC_BATCH},   {"track", WM_SEGSPEC_TRACK},
        {"identify", WM_SEGSPEC_IDENTIFY}, {"alias", WM_SEGSPEC_ALIAS},    {"page", WM_SEGSPEC_PAGE},
        {"screen", WM_SEGSPEC_SCREEN},     {"group", WM_SEGSPEC_GROUP},
    };
    for (size_t i = 0; s && i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(s, kinds[i].name) == 0)
            return kinds[i].kind;
    return -1;
}

/* ---- building JSON objects with O(1) append ---- */

typedef struct objb {
    wm_json_t *o;
    wm_json_t **tail;
} objb_t;

typedef struct seg {
    wm_arena_t *a;
    const wm_json_t *msg;
    const wm_json_t *context;   /* message context, else the batch's */
    const wm_json_t *sent_at;   /* message sentAt, else the batch's */
    const wm_rec_ctx_t *ctx;
    wm_rec_error_t *err;
} seg_t;

static int objb_new(wm_arena_t *a, objb_t *b)
{
    b->o = wm_json_new(a, WM_JSON_OBJECT);
    b->tail = b->o ? &b->o->u.child : NULL;
    return b->o ? 0 : WM_ENOMEM;
}

/* Appends v under key (key is not copied: callers pass arena or static text). */
static int objb_put(objb_t *b, const char *key, wm_json_t *v)
{
    if (!v)
        return WM_ENOMEM;
    v->key = key;
    v->key_len = (uint32_t)strlen(key);
    v->next = NULL;
    *b->tail = v;
    b->tail = &v->next;
    b->o->len++;
    return 0;
}

/* A shallow copy, so that the source tree's sibling links stay intact. */
static wm_json_t *copy_node(wm_arena_t *a, const wm_json_t *v)
{
    wm_json_t *n = wm_arena_alloc(a, sizeof *n);
    if (n)
        *n = *v;
    return n;
}

static int put_str(seg_t *s, objb_t *b, const char *key, const char *v)
{
    return v ? objb_put(b, key, wm_json_new_str(s->a, v, strlen(v))) : 0;
}

/* Copies a scalar member of `src` (string/number/bool) under a new key. */
static int put_scalar(seg_t *s, objb_t *b, const char *key, const wm_json_t *src, const char *name)
{
    const wm_json_t *v = wm_json_get(src, name);
    if (!v || v->type == WM_JSON_NULL || v->type == WM_JSON_OBJECT || v->type == WM_JSON_ARRAY)
        return 0;
    return objb_put(b, key, copy_node(s->a, v));
}

static int seg_fail(seg_t *s, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int seg_fail(seg_t *s, const char *code, const char *field, const char *fmt, ...)
{
    s->err->code = code;
    snprintf(s->err->field, sizeof s->err->field, "%s", field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err->msg, sizeof s->err->msg, fmt, ap);
    va_end(ap);
    return WM_EINVAL;
}

/* ---- names ---- */

/* Rewrites free text into ^[a-zA-Z_$][a-zA-Z0-9_$]{0,99}$: every other
 * character (a whole UTF-8 sequence) becomes '_', a leading digit gets a '_'
 * prefix, reserved names get a '_' prefix, and the result is cut at 100. */
static const char *rewrite_name(wm_arena_t *a, const char *pre, const char *s, size_t n)
{
    size_t pl = strlen(pre);
    char *d = wm_arena_alloc(a, pl + n + 3);
    if (!d)
        return NULL;
    size_t j = 0;
    memcpy(d + 1, pre, pl); /* d[0] reserved for a '_' prefix */
    j = 1 + pl;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '_' || c == '$')
            d[j++] = (char)c;
        else if (c < 0x80 || c >= 0xc0)
            d[j++] = '_';
        /* UTF-8 continuation bytes fold into the '_' of their lead byte */
    }
    char *out = d + 1;
    size_t len = j - 1;
    if (len == 0 || (out[0] >= '0' && out[0] <= '9') || wm_name_reserved_n(out, len)) {
        out = d;
        out[0] = '_';
        len++;
    }
    if (len > WM_NAME_LEN_MAX)
        len = WM_NAME_LEN_MAX;
    out[len] = '\0';
    return out;
}

/* ---- values ---- */

static wm_json_t *json_text(wm_arena_t *a, const wm_json_t *v)
{
    wm_buf_t b;
    wm_buf_init(&b, WM_STRING_VALUE_MAX * 2);
    wm_json_write(&b, v);
    wm_json_t *s = b.err ? wm_json_new_str(a, "", 0) : wm_json_new_str(a, b.data, b.len);
    wm_buf_release(&b);
    return s;
}

/* Sensors lists hold strings: other elements become their JSON text. */
static wm_json_t *string_list(wm_arena_t *a, const wm_json_t *arr)
{
    wm_json_t *out = wm_json_new(a, WM_JSON_ARRAY);
    if (!out)
        return NULL;
    wm_json_t **tail = &out->u.child;
    for (const wm_json_t *e = arr->u.child; e; e = e->next) {
        wm_json_t *n = e->type == WM_JSON_STRING ? copy_node(a, e) : json_text(a, e);
        if (!n)
            return NULL;
        n->key = NULL;
        n->key_len = 0;
        n->next = NULL;
        *tail = n;
        tail = &n->next;
        out->len++;
    }
    return out;
}

/* A property value as Sensors can hold it: lists of strings, objects as JSON text. */
static wm_json_t *map_value(wm_arena_t *a, const wm_json_t *v)
{
    if (v->type == WM_JSON_ARRAY)
        return string_list(a, v);
    if (v->type == WM_JSON_OBJECT)
        return json_text(a, v);
    return copy_node(a, v);
}

/* Copies Segment properties/traits into b with rewritten names; one level
 * of nested objects is flattened with '_' (address.city -> address_city). */
static int map_props(seg_t *s, objb_t *b, const wm_json_t *src, const char *prefix)
{
    if (!src || src->type != WM_JSON_OBJECT)
        return 0;
    for (const wm_json_t *c = src->u.child; c; c = c->next) {
        const char *k = rewrite_name(s->a, prefix, c->key, c->key_len);
        if (!k)
            return WM_ENOMEM;
        if (c->type != WM_JSON_OBJECT) {
            if (objb_put(b, k, map_value(s->a, c)))
                return WM_ENOMEM;
            continue;
        }
        char pre[WM_NAME_LEN_MAX + 2];
        snprintf(pre, sizeof pre, "%s_", k);
        for (const wm_json_t *g = c->u.child; g; g = g->next) {
            const char *gk = rewrite_name(s->a, pre, g->key, g->key_len);
            if (!gk || objb_put(b, gk, map_value(s->a, g)))
                return WM_ENOMEM;
        }
    }
    return 0;
}

/* ---- ids and time ---- */

/* userId / anonymousId / groupId / previousId: string or number; "" = absent. */
static const char *id_of(seg_t *s, const char *name)
{
    const wm_json_t *v = wm_json_get(s->msg, name);
    if (!v)
        return NULL;
    if (v->type == WM_JSON_STRING)
        return v->len ? v->u.str : NULL;
    if (v->type != WM_JSON_NUMBER)
        return NULL;
    char tmp[40];
    if (v->is_int)
        snprintf(tmp, sizeof tmp, "%lld", (long long)v->i64);
    else
        snprintf(tmp, sizeof tmp, "%.17g", v->u.num);
    return wm_arena_strndup(s->a, tmp, strlen(tmp));
}

static int iso_field(seg_t *s, const wm_json_t *v, const char *field, int64_t *ms, bool *has)
{
    *has = false;
    if (!v || v->type == WM_JSON_NULL)
        return 0;
    if (v->type != WM_JSON_STRING || wm_iso8601_parse(v->u.str, ms))
        return seg_fail(s, WM_REC_ERR_INVALID_VALUE, field,
                        "%s must be an ISO-8601 timestamp such as 2024-05-01T08:30:00.000Z", field);
    *has = true;
    return 0;
}

/* Segment's clock-skew rule: time = receivedAt - (sentAt - timestamp). */
static int seg_time(seg_t *s, int64_t *out)
{
    int64_t ts, sent;
    bool has_ts, has_sent;
    const char *tf = wm_json_get(s->msg, "timestamp") ? "timestamp" : "originalTimestamp";
    if (iso_field(s, wm_json_get(s->msg, tf), tf, &ts, &has_ts) ||
        iso_field(s, s->sent_at, "sentAt", &sent, &has_sent))
        return WM_EINVAL;
    *out = s->ctx->receive_time_ms;
    if (has_ts)
        *out = has_sent ? s->ctx->receive_time_ms - (sent - ts) : ts;
    return 0;
}

/* ---- context ---- */

static const wm_json_t *ctx_obj(seg_t *s, const char *name)
{
    const wm_json_t *o = wm_json_get(s->context, name);
    return o && o->type == WM_JSON_OBJECT ? o : NULL;
}

static int put_lib(seg_t *s, objb_t *rec, objb_t *props)
{
    const wm_json_t *lib = ctx_obj(s, "library");
    if (!lib)
        return 0;
    objb_t lb;
    if (objb_new(s->a, &lb) || put_scalar(s, &lb, "$lib", lib, "name") ||
        put_scalar(s, &lb, "$lib_version", lib, "version") || put_str(s, &lb, "$lib_method", "code") ||
        objb_put(rec, "lib", lb.o))
        return WM_ENOMEM;
    if (props && (put_scalar(s, props, "$lib", lib, "name") ||
                  put_scalar(s, props, "$lib_version", lib, "version")))
        return WM_ENOMEM;
    return 0;
}

/* Preset properties from context, for event records. */
static int put_context(seg_t *s, objb_t *p)
{
    static const struct { const char *obj, *field, *preset; } map[] = {
        {NULL, "ip", "$ip"},
        {NULL, "userAgent", "$user_agent"},
        {NULL, "timezone", "$timezone"},
        {"os", "name", "$os"},
        {"os", "version", "$os_version"},
        {"device", "model", "$model"},
        {"device", "manufacturer", "$manufacturer"},
        {"app", "version", "$app_version"},
        {"screen", "width", "$screen_width"},
        {"screen", "height", "$screen_height"},
        {"campaign", "name", "$utm_campaign"},
        {"campaign", "source", "$utm_source"},
        {"campaign", "medium", "$utm_medium"},
        {"campaign", "term", "$utm_term"},
        {"campaign", "content", "$utm_content"},
    };
    if (!s->context || s->context->type != WM_JSON_OBJECT)
        return 0;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        const wm_json_t *src = map[i].obj ? ctx_obj(s, map[i].obj) : s->context;
        if (src && put_scalar(s, p, map[i].preset, src, map[i].field))
            return WM_ENOMEM;
    }
    return 0;
}

/* $url/$title/$referrer/$url_path from properties, else context.page. */
static int put_page(seg_t *s, objb_t *p)
{
    static const struct { const char *field, *preset; } map[] = {
        {"url", "$url"}, {"title", "$title"}, {"referrer", "$referrer"}, {"path", "$url_path"}};
    const wm_json_t *props = wm_json_get(s->msg, "properties");
    const wm_json_t *page = ctx_obj(s, "page");
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        const wm_json_t *src = props && wm_json_str(wm_json_get(props, map[i].field)) ? props : page;
        if (src && put_scalar(s, p, map[i].preset, src, map[i].field))
            return WM_ENOMEM;
    }
    return 0;
}

/* ---- one message ---- */

static int put_identity(seg_t *s, objb_t *rec, wm_rec_type_t type)
{
    const char *uid = id_of(s, "userId"), *aid = id_of(s, "anonymousId");
    if (type == WM_REC_TRACK_SIGNUP) {
        const char *prev = id_of(s, "previousId");
        if (!uid)
            return seg_fail(s, WM_REC_ERR_MISSING_FIELD, "userId", "an alias call needs a userId");
        if (!prev)
            return seg_fail(s, WM_REC_ERR_MISSING_FIELD, "previousId",
                            "an alias call needs a previousId");
        return put_str(s, rec, "distinct_id", uid) || put_str(s, rec, "original_id", prev) ||
                       put_str(s, rec, "login_id", uid) || put_str(s, rec, "anonymous_id", prev)
                   ? WM_ENOMEM
                   : 0;
    }
    if (!uid && !aid)
        return seg_fail(s, WM_REC_ERR_MISSING_FIELD, "userId",
                        "a Segment message needs a userId or an anonymousId");
    if (put_str(s, rec, "distinct_id", uid ? uid : aid) || put_str(s, rec, "login_id", uid) ||
        (uid && put_str(s, rec, "anonymous_id", aid)))
        return WM_ENOMEM;
    return 0;
}

static int event_props(seg_t *s, wm_segspec_kind_t kind, objb_t *rec, objb_t *p)
{
    const wm_json_t *m = s->msg;
    const char *event = NULL;
    if (kind == WM_SEGSPEC_TRACK) {
        const wm_json_t *e = wm_json_get(m, "event");
        if (!e || e->type != WM_JSON_STRING || e->len == 0)
            return seg_fail(s, WM_REC_ERR_MISSING_FIELD, "event", "a track call needs an event name");
        if (!(event = rewrite_name(s->a, "", e->u.str, e->len)))
            return WM_ENOMEM;
    } else {
        event = kind == WM_SEGSPEC_PAGE ? "$pageview" : "$AppViewScreen";
    }
    if (put_str(s, rec, "event", event) || put_context(s, p) || put_lib(s, rec, p))
        return WM_ENOMEM;
    if (kind == WM_SEGSPEC_PAGE && put_page(s, p))
        return WM_ENOMEM;
    if (kind == WM_SEGSPEC_SCREEN && put_scalar(s, p, "$screen_name", m, "name"))
        return WM_ENOMEM;
    if (kind != WM_SEGSPEC_TRACK &&
        (put_scalar(s, p, "name", m, "name") || put_scalar(s, p, "category", m, "category")))
        return WM_ENOMEM;
    return map_props(s, p, wm_json_get(m, "properties"), "");
}

static int profile_props(seg_t *s, wm_segspec_kind_t kind, objb_t *rec, objb_t *p)
{
    const wm_json_t *traits = wm_json_get(s->msg, "traits");
    if (!traits && kind == WM_SEGSPEC_IDENTIFY)
        traits = ctx_obj(s, "traits");
    if (put_lib(s, rec, NULL))
        return WM_ENOMEM;
    if (kind == WM_SEGSPEC_IDENTIFY)
        return map_props(s, p, traits, "");
    const char *gid = id_of(s, "groupId");
    if (!gid)
        return seg_fail(s, WM_REC_ERR_MISSING_FIELD, "groupId", "a group call needs a groupId");
    if (put_str(s, p, "group_id", gid))
        return WM_ENOMEM;
    return map_props(s, p, traits, "group_");
}

static wm_rec_type_t rec_type_of(wm_segspec_kind_t kind)
{
    switch (kind) {
    case WM_SEGSPEC_IDENTIFY:
    case WM_SEGSPEC_GROUP: return WM_REC_PROFILE_SET;
    case WM_SEGSPEC_ALIAS: return WM_REC_TRACK_SIGNUP;
    default: return WM_REC_TRACK;
    }
}

/* Maps one message to a Sensors object in *out; record errors go to s->err. */
static int map_message(seg_t *s, wm_segspec_kind_t kind, wm_json_t **out)
{
    wm_rec_type_t type = rec_type_of(kind);
    objb_t rec, props;
    int64_t time_ms;
    int rc;
    if (objb_new(s->a, &rec) || objb_new(s->a, &props))
        return WM_ENOMEM;
    if ((rc = put_identity(s, &rec, type)) || (rc = seg_time(s, &time_ms)))
        return rc;
    if (put_str(s, &rec, "type", wm_rec_type_name(type)) ||
        objb_put(&rec, "time", wm_json_new_int(s->a, time_ms)))
        return WM_ENOMEM;
    const wm_json_t *mid = wm_json_get(s->msg, "messageId");
    if (wm_json_str(mid) && mid->len && objb_put(&rec, "message_id", copy_node(s->a, mid)))
        return WM_ENOMEM;
    if (type == WM_REC_PROFILE_SET)
        rc = profile_props(s, kind, &rec, &props);
    else if (type == WM_REC_TRACK)
        rc = event_props(s, kind, &rec, &props);
    else
        rc = put_lib(s, &rec, NULL);
    if (rc || (rc = objb_put(&rec, "properties", props.o)))
        return rc;
    *out = rec.o;
    return 0;
}

/* Compact-JSON size of a tree, escapes not counted: bounds one message. */
static size_t approx_size(const wm_json_t *v)
{
    size_t n = v->key ? v->key_len + 3 : 0;
    switch (v->type) {
    case WM_JSON_STRING: return n + v->len + 2;
    case WM_JSON_NUMBER: return n + 8;
    case WM_JSON_ARRAY:
    case WM_JSON_OBJECT:
        n += 2;
        for (const wm_json_t *c = v->u.child; c; c = c->next)
            n += approx_size(c) + 1;
        return n;
    default: return n + 5;
    }
}

static int kind_of_item(const wm_json_t *m, wm_segspec_kind_t *kind)
{
    const wm_json_t *t = wm_json_get(m, "type");
    int k = wm_json_str(t) ? wm_segspec_kind_parse(t->u.str) : -1;
    if (k < 0 || k == WM_SEGSPEC_BATCH)
        return -1;
    *kind = (wm_segspec_kind_t)k;
    return 0;
}

static int decode_one(seg_t *s, wm_segspec_kind_t kind, wm_record_t *r)
{
    memset(r, 0, sizeof *r);
    s->err->code = NULL;
    if (!s->msg || s->msg->type != WM_JSON_OBJECT)
        return seg_fail(s, WM_REC_ERR_INVALID_TYPE, "", "a Segment message must be a JSON object");
    if (approx_size(s->msg) > WM_SEGMENT_MESSAGE_MAX)
        return seg_fail(s, WM_REC_ERR_TOO_LONG, "", "the message exceeds Segment's %u byte limit",
                        WM_SEGMENT_MESSAGE_MAX);
    if (kind == WM_SEGSPEC_BATCH && kind_of_item(s->msg, &kind))
        return seg_fail(s, WM_REC_ERR_UNKNOWN_TYPE, "type",
                        "the message type must be track, identify, page, screen, group or alias");
    const wm_json_t *c = wm_json_get(s->msg, "context");
    if (c && c->type == WM_JSON_OBJECT)
        s->context = c;
    const wm_json_t *sa = wm_json_get(s->msg, "sentAt");
    if (sa && sa->type != WM_JSON_NULL)
        s->sent_at = sa;
    wm_json_t *obj;
    int rc = map_message(s, kind, &obj);
    if (rc)
        return rc;
    return wm_record_from_json(s->a, obj, s->ctx, r, s->err);
}

static int fail_msg(char *errmsg, size_t len, int rc, const char *msg)
{
    if (errmsg && len)
        snprintf(errmsg, len, "%s", msg);
    return rc;
}

static int alloc_batch(wm_arena_t *a, wm_batch_t *out, uint32_t n)
{
    out->records = wm_arena_alloc(a, (n ? n : 1) * sizeof *out->records);
    out->errors = wm_arena_alloc(a, (n ? n : 1) * sizeof *out->errors);
    return out->records && out->errors ? 0 : WM_ENOMEM;
}

int wm_segspec_decode(wm_arena_t *a, wm_segspec_kind_t kind, const char *body, size_t len,
                      const wm_rec_ctx_t *ctx, wm_batch_t *out, char *errmsg, size_t errmsg_len)
{
    static const wm_rec_ctx_t no_ctx;
    memset(out, 0, sizeof *out);
    if (errmsg && errmsg_len)
        errmsg[0] = '\0';
    if (len > (kind == WM_SEGSPEC_BATCH ? WM_SEGMENT_BATCH_MAX : WM_SEGMENT_MESSAGE_MAX))
        return fail_msg(errmsg, errmsg_len, WM_ELIMIT,
                        kind == WM_SEGSPEC_BATCH ? "a Segment batch is limited to 500 KB"
                                             : "a Segment message is limited to 32 KB");
    wm_rec_ctx_t c = ctx ? *ctx : no_ctx;
    c.stored = false;
    wm_json_t *root;
    wm_json_error_t jerr;
    int rc = wm_json_parse(a, body ? body : "", body ? len : 0, &root, &jerr);
    if (rc == WM_ENOMEM)
        return rc;
    if (rc || root->type != WM_JSON_OBJECT)
        return fail_msg(errmsg, errmsg_len, WM_EPARSE,
                        rc ? jerr.msg : "the body must be a JSON object");
    seg_t s = {.a = a, .ctx = &c};
    const wm_json_t *first = root;
    uint32_t n = 1;
    if (kind == WM_SEGSPEC_BATCH) {
        const wm_json_t *batch = wm_json_get(root, "batch");
        if (!batch || batch->type != WM_JSON_ARRAY)
            return fail_msg(errmsg, errmsg_len, WM_EPARSE, "the body has no \"batch\" array");
        if (batch->len > WM_BATCH_RECORDS_MAX)
            return fail_msg(errmsg, errmsg_len, WM_ELIMIT, "too many messages in the batch");
        first = batch->u.child;
        n = batch->len;
    }
    if ((rc = alloc_batch(a, out, n)))
        return rc;
    const wm_json_t *bctx = wm_json_get(root, "context");
    const wm_json_t *bsent = wm_json_get(root, "sentAt");
    const wm_json_t *m = first;
    for (uint32_t i = 0; i < n; i++, m = m->next) {
        s.msg = m;
        s.err = &out->errors[i];
        s.context = kind == WM_SEGSPEC_BATCH && bctx && bctx->type == WM_JSON_OBJECT ? bctx : NULL;
        s.sent_at = kind == WM_SEGSPEC_BATCH && bsent && bsent->type != WM_JSON_NULL ? bsent : NULL;
        rc = decode_one(&s, kind, &out->records[i]);
        if (rc == WM_ENOMEM)
            return rc;
        out->n_ok += rc == 0;
        out->n++;
    }
    return 0;
}
