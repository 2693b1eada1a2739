/*
 * sensors.c - the Sensors Analytics wire format (/sa, /sa.gif, /debug).
 *
 * Every official SDK sends records as a form field (`data` or `data_list`)
 * holding base64 of JSON, optionally gzipped, in a query string or a POST
 * body whose Content-Type varies (form, text/plain, none at all). So the
 * decoder does not look at headers: it parses both the query and the body as
 * a form, then runs the algorithm of sensors-protocol.md section 1.4.
 *
 * Transport helpers (form parsing, lenient base64, bounded gunzip, Java
 * String.hashCode for `crc`) live here too because only this format needs
 * them; all output goes to the request arena.
 */
#include "waymark/ingest.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "waymark/error.h"
#include "waymark/limits.h"

/* ---- form ---- */

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into the arena; '+' stays '+' (see ingest.h) and a
 * malformed escape is kept literally, as browsers do. */
static char *pct_decode(wm_arena_t *a, const char *s, size_t n, size_t *out_len)
{
    char *d = wm_arena_alloc(a, n + 1);
    if (!d)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = hexval((unsigned char)s[i + 1])) >= 0 && (lo = hexval((unsigned char)s[i + 2])) >= 0) {
            d[j++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            d[j++] = s[i];
        }
    }
    d[j] = '\0';
    *out_len = j;
    return d;
}

int wm_form_parse(wm_arena_t *a, const char *s, size_t n, wm_params_t *out)
{
    if (!s || n == 0)
        return 0;
    size_t count = 1;
    for (const char *p = s; (p = memchr(p, '&', (size_t)(s + n - p))); p++)
        count++;
    wm_param_t *items = wm_arena_alloc(a, (out->n + count) * sizeof *items);
    if (!items)
        return WM_ENOMEM;
    if (out->n)
        memcpy(items, out->items, out->n * sizeof *items);
    out->items = items;
    const char *p = s, *end = s + n;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *seg_end = amp ? amp : end;
        if (seg_end > p) {
            const char *eq = memchr(p, '=', (size_t)(seg_end - p));
            const char *name_end = eq ? eq : seg_end;
            const char *val = eq ? eq + 1 : seg_end;
            size_t name_len;
            wm_param_t *it = &out->items[out->n];
            it->name = pct_decode(a, p, (size_t)(name_end - p), &name_len);
            it->value = pct_decode(a, val, (size_t)(seg_end - val), &it->value_len);
            if (!it->name || !it->value)
                return WM_ENOMEM;
            out->n++;
        }
        p = seg_end + 1;
    }
    return 0;
}

const wm_param_t *wm_params_get(const wm_params_t *p, const char *name)
{
    for (uint32_t i = p->n; i-- > 0;)
        if (strcmp(p->items[i].name, name) == 0)
            return &p->items[i];
    return NULL;
}

/* ---- base64 ---- */

#define B64_SKIP 64
#define B64_PAD 65
#define B64_BAD 66

/* generated: standard alphabet, plus '-' '_' (URL-safe) and ' ' (an
 * unescaped '+' that a form decoder turned into a space) */
static const unsigned char b64_table[256] = {
    66, 66, 66, 66, 66, 66, 66, 66, 66, 64, 64, 66, 66, 64, 66, 66,
    66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66,
    62, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 62, 66, 62, 66, 63,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 66, 66, 66, 65, 66, 66,
    66, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 66, 66, 66, 66, 63,
    66, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 66, 66, 66, 66, 66,
    66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66,
    66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66,
    66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66,
    66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66,
    66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66,
    66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66,
    66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66,
    66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66,
};

int wm_base64_decode(wm_arena_t *a, const char *s, size_t n, unsigned char **out, size_t *out_len)
{
    unsigned char *d = wm_arena_alloc(a, n / 4 * 3 + 4);
    if (!d)
        return WM_ENOMEM;
    size_t j = 0, quad = 0, i = 0;
    uint32_t acc = 0;
    for (; i < n; i++) {
        unsigned char v = b64_table[(unsigned char)s[i]];
        if (v < 64) {
            acc = acc << 6 | v;
            if (++quad == 4) {
                d[j++] = (unsigned char)(acc >> 16);
                d[j++] = (unsigned char)(acc >> 8);
                d[j++] = (unsigned char)acc;
                quad = 0;
                acc = 0;
            }
        } else if (v == B64_PAD) {
            break;
        } else if (v != B64_SKIP) {
            return WM_EPARSE;
        }
    }
    for (; i < n; i++) /* only padding and whitespace may follow '=' */
        if (s[i] != '=' && b64_table[(unsigned char)s[i]] != B64_SKIP)
            return WM_EPARSE;
    if (quad == 1)
        return WM_EPARSE;
    if (quad == 2) {
        d[j++] = (unsigned char)(acc >> 4);
    } else if (quad == 3) {
        d[j++] = (unsigned char)(acc >> 10);
        d[j++] = (unsigned char)(acc >> 2);
    }
    d[j] = '\0';
    *out = d;
    *out_len = j;
    return 0;
}

void wm_base64_encode(wm_buf_t *b, const void *data, size_t n)
{
    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = data;
    if (wm_buf_reserve(b, (n + 2) / 3 * 4 + 1))
        return;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        char q[4] = {alpha[v >> 18 & 63], alpha[v >> 12 & 63], i + 1 < n ? alpha[v >> 6 & 63] : '=',
                     i + 2 < n ? alpha[v & 63] : '='};
        wm_buf_append(b, q, 4);
    }
}

/* ---- gunzip ---- */

/* Inflates with the given windowBits into the arena, doubling the output
 * buffer up to max_out. Returns WM_EPARSE for bad data, WM_ELIMIT past max. */
static int inflate_into(wm_arena_t *a, const unsigned char *in, size_t n, int window_bits,
                        size_t hint, size_t max_out, char **out, size_t *out_len)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, window_bits) != Z_OK)
        return WM_ENOMEM;
    size_t cap = hint < 256 ? 256 : hint;
    if (cap > max_out)
        cap = max_out;
    char *buf = wm_arena_alloc(a, cap + 1);
    int rc = buf ? 0 : WM_ENOMEM;
    size_t used = 0;
    zs.next_in = (unsigned char *)in;
    zs.avail_in = (uInt)n;
    while (!rc) {
        if (used == cap) {
            if (cap >= max_out) {
                rc = WM_ELIMIT;
                break;
            }
            size_t ncap = cap * 2 > max_out ? max_out : cap * 2;
            char *nb = wm_arena_alloc(a, ncap + 1);
            if (!nb) {
                rc = WM_ENOMEM;
                break;
            }
            memcpy(nb, buf, used);
            buf = nb;
            cap = ncap;
        }
        zs.next_out = (unsigned char *)buf + used;
        zs.avail_out = (uInt)(cap - used);
        int z = inflate(&zs, Z_NO_FLUSH);
        used = cap - zs.avail_out;
        if (z == Z_STREAM_END) {
            /* concatenated gzip members: keep going */
            if (zs.avail_in >= 2 && zs.next_in[0] == 0x1f && zs.next_in[1] == 0x8b &&
                inflateReset(&zs) == Z_OK)
                continue;
            break;
        }
        if (z == Z_BUF_ERROR && zs.avail_in == 0)
            rc = WM_EPARSE; /* truncated stream */
        else if (z != Z_OK && z != Z_BUF_ERROR)
            rc = z == Z_MEM_ERROR ? WM_ENOMEM : WM_EPARSE;
    }
    inflateEnd(&zs);
    if (rc)
        return rc;
    buf[used] = '\0';
    *out = buf;
    *out_len = used;
    return 0;
}

int wm_gunzip(wm_arena_t *a, const void *in, size_t n, size_t max_out, char **out, size_t *out_len)
{
    const unsigned char *p = in;
    if (n > UINT32_MAX)
        return WM_ELIMIT;
    size_t hint = n * 4;
    if (n >= 18 && p[0] == 0x1f && p[1] == 0x8b) {
        /* gzip trailer ISIZE = uncompressed size mod 2^32: a good first guess */
        size_t isize = (size_t)p[n - 4] | (size_t)p[n - 3] << 8 | (size_t)p[n - 2] << 16 |
                       (size_t)p[n - 1] << 24;
        if (isize <= max_out)
            hint = isize + 16;
    }
    int rc = inflate_into(a, p, n, 15 + 32, hint, max_out, out, out_len);
    if (rc == WM_EPARSE)
        rc = inflate_into(a, p, n, -15, hint, max_out, out, out_len);
    return rc;
}

/* ---- crc ---- */

int32_t wm_java_hashcode(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    uint32_t h = 0;
    while (p < end) {
        uint32_t cp = *p;
        int extra = cp >= 0xf0 ? 3 : cp >= 0xe0 ? 2 : cp >= 0xc0 ? 1 : 0;
        if (extra && end - p > extra) {
            cp &= 0x3fu >> extra;
            for (int k = 1; k <= extra; k++)
                cp = cp << 6 | (p[k] & 0x3f);
            p += extra + 1;
        } else {
            p++; /* ASCII, or a stray byte counted as one unit */
        }
        if (cp >= 0x10000) {
            cp -= 0x10000;
            h = 31 * h + (0xd800 + (cp >> 10));
            h = 31 * h + (0xdc00 + (cp & 0x3ff));
        } else {
            h = 31 * h + cp;
        }
    }
    return (int32_t)h;
}

/* ---- decode ---- */

static int fail_msg(char *errmsg, size_t len, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail_msg(char *errmsg, size_t len, int rc, const char *fmt, ...)
{
    if (errmsg && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errmsg, len, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static bool starts_json(const char *s, size_t n)
{
    while (n && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n'))
        s++, n--;
    return n && (*s == '{' || *s == '[');
}

/* `crc=N` or `ext=crc=N` (ext may carry other k=v pairs separated by '&'). */
static bool crc_param(const wm_params_t *ps, long long *out)
{
    const wm_param_t *p = wm_params_get(ps, "crc");
    const char *v = p ? p->value : NULL;
    if (!v) {
        p = wm_params_get(ps, "ext");
        const char *e = p ? p->value : NULL;
        for (; e && *e; e = strchr(e, '&') ? strchr(e, '&') + 1 : NULL)
            if (strncmp(e, "crc=", 4) == 0) {
                v = e + 4;
                break;
            }
    }
    if (!v || !*v)
        return false;
    char *end;
    *out = strtoll(v, &end, 10);
    return end != v && (*end == '\0' || *end == '&');
}

static int gzip_mode(const wm_params_t *ps, int *mode, char *errmsg, size_t errmsg_len)
{
    const wm_param_t *g = wm_params_get(ps, "gzip");
    *mode = 0;
    if (!g || g->value_len == 0 || strcmp(g->value, "0") == 0)
        return 0;
    if (strcmp(g->value, "1") == 0) {
        *mode = 1;
        return 0;
    }
    if (strcmp(g->value, "9") == 0 || strcmp(g->value, "13") == 0) {
        *mode = g->value[0] == '9' ? 9 : 13;
        return fail_msg(errmsg, errmsg_len, WM_EUNSUPPORTED,
                        "gzip=%s means an encrypted payload (Sensors data/transport encryption), "
                        "which this server does not support; disable encryption in the SDK",
                        g->value);
    }
    return fail_msg(errmsg, errmsg_len, WM_EINVAL, "unknown gzip parameter value '%.16s'", g->value);
}

/* The payload string after section 1.4 step 3: ' ' back to '+'. The crc is
 * taken over this form (the base64 text as the client computed it). */
static char *payload_text(wm_arena_t *a, const wm_param_t *p, size_t *len)
{
    char *s = wm_arena_strndup(a, p->value, p->value_len);
    if (!s)
        return NULL;
    for (size_t i = 0; i < p->value_len; i++)
        if (s[i] == ' ')
            s[i] = '+';
    *len = p->value_len;
    return s;
}

/* base64 -> (gunzip) -> bytes; a payload already looking like JSON is taken
 * as is (some custom clients post data=<JSON>). */
static int payload_bytes(wm_arena_t *a, const char *text, size_t n, int gzip, char **out,
                         size_t *out_len, char *errmsg, size_t errmsg_len)
{
    if (starts_json(text, n)) {
        *out = (char *)text;
        *out_len = n;
        return 0;
    }
    unsigned char *raw;
    size_t raw_len;
    int rc = wm_base64_decode(a, text, n, &raw, &raw_len);
    if (rc == WM_EPARSE)
        return fail_msg(errmsg, errmsg_len, WM_EPARSE, "the data parameter is not valid base64");
    if (rc)
        return rc;
    if (gzip != 1 || starts_json((char *)raw, raw_len)) {
        if (raw_len > WM_DECODED_BYTES_MAX)
            return fail_msg(errmsg, errmsg_len, WM_ELIMIT, "decoded payload exceeds %u bytes",
                            WM_DECODED_BYTES_MAX);
        *out = (char *)raw;
        *out_len = raw_len;
        return 0;
    }
    rc = wm_gunzip(a, raw, raw_len, WM_DECODED_BYTES_MAX, out, out_len);
    if (rc == WM_EPARSE)
        return fail_msg(errmsg, errmsg_len, WM_EPARSE,
                        "gzip=1 but the payload is not valid gzip/deflate data");
    if (rc == WM_ELIMIT)
        return fail_msg(errmsg, errmsg_len, WM_ELIMIT, "decompressed payload exceeds %u bytes",
                        WM_DECODED_BYTES_MAX);
    return rc;
}

int wm__ingest_records(wm_arena_t *a, const wm_json_t *root, const wm_rec_ctx_t *ctx,
                       wm_batch_t *out, char *errmsg, size_t errmsg_len);

/* Validates every element of an array (or a bare object) into out. Shared
 * with native.c. */
int wm__ingest_records(wm_arena_t *a, const wm_json_t *root, const wm_rec_ctx_t *ctx,
                       wm_batch_t *out, char *errmsg, size_t errmsg_len)
{
    const wm_json_t *first = root;
    uint32_t n = 1;
    if (root->type == WM_JSON_ARRAY) {
        first = root->u.child;
        n = root->len;
    } else if (root->type != WM_JSON_OBJECT) {
        return fail_msg(errmsg, errmsg_len, WM_EPARSE,
                        "the payload must be a JSON object or array, not %s",
                        wm_json_type_name(root->type));
    }
    if (n > WM_BATCH_RECORDS_MAX)
        return fail_msg(errmsg, errmsg_len, WM_ELIMIT, "%u records in one request; the limit is %d",
                        n, WM_BATCH_RECORDS_MAX);
    memset(out, 0, sizeof *out);
    out->records = wm_arena_alloc(a, (n ? n : 1) * sizeof *out->records);
    out->errors = wm_arena_alloc(a, (n ? n : 1) * sizeof *out->errors);
    if (!out->records || !out->errors)
        return WM_ENOMEM;
    const wm_json_t *e = first;
    for (uint32_t i = 0; i < n; i++, e = e->next) {
        int rc = wm_record_from_json(a, e, ctx, &out->records[i], &out->errors[i]);
        if (rc == WM_ENOMEM)
            return rc;
        out->n_ok += rc == 0;
    }
    out->n = n;
    return 0;
}

/* Query first, then the body as a form unless it is raw JSON; *n_query is
 * how many of the params came from the query. */
static int collect_params(wm_arena_t *a, const wm_sensors_req_t *req, wm_params_t *ps,
                          uint32_t *n_query, bool *raw_body)
{
    int rc = wm_form_parse(a, req->query, req->query ? req->query_len : 0, ps);
    *n_query = ps->n;
    *raw_body = req->body && starts_json(req->body, req->body_len);
    if (!rc && req->body && !*raw_body)
        rc = wm_form_parse(a, req->body, req->body_len, ps);
    return rc;
}

/* project/token: the query's value wins over the body's (section 1.4 step 2). */
static const char *query_first(const wm_params_t *all, uint32_t n_query, const char *name)
{
    wm_params_t q = {.items = all->items, .n = n_query};
    const wm_param_t *p = wm_params_get(&q, name);
    if (!p)
        p = wm_params_get(all, name);
    return p && p->value_len ? p->value : NULL;
}

int wm_sensors_decode(wm_arena_t *a, const wm_sensors_req_t *req, wm_batch_t *out,
                      wm_sensors_info_t *info, char *errmsg, size_t errmsg_len)
{
    wm_params_t ps = {0};
    wm_sensors_info_t dummy;
    bool raw_body;
    if (!info)
        info = &dummy;
    memset(info, 0, sizeof *info);
    memset(out, 0, sizeof *out);
    if (errmsg && errmsg_len)
        errmsg[0] = '\0';
    if (req->body && req->body_len > WM_HTTP_BODY_MAX)
        return fail_msg(errmsg, errmsg_len, WM_ELIMIT, "request body exceeds %u bytes",
                        WM_HTTP_BODY_MAX);
    uint32_t n_query;
    int rc = collect_params(a, req, &ps, &n_query, &raw_body);
    if (rc)
        return rc;
    info->project = query_first(&ps, n_query, "project");
    info->token = query_first(&ps, n_query, "token");
    if ((rc = gzip_mode(&ps, &info->gzip, errmsg, errmsg_len)))
        return rc;
    const wm_param_t *data = wm_params_get(&ps, "data_list");
    if (!data)
        data = wm_params_get(&ps, "data");
    char *bytes;
    size_t n;
    if (data) {
        size_t tlen;
        char *text = payload_text(a, data, &tlen);
        if (!text)
            return WM_ENOMEM;
        long long crc;
        if ((info->crc_present = crc_param(&ps, &crc)))
            info->crc_ok = (long long)wm_java_hashcode(text, tlen) == crc;
        if ((rc = payload_bytes(a, text, tlen, info->gzip, &bytes, &n, errmsg, errmsg_len)))
            return rc;
    } else if (raw_body) {
        bytes = (char *)req->body;
        n = req->body_len;
    } else {
        return fail_msg(errmsg, errmsg_len, WM_EPARSE,
                        "no data or data_list parameter in the query or the body");
    }
    wm_json_t *root;
    wm_json_error_t jerr;
    rc = wm_json_parse(a, bytes, n, &root, &jerr);
    if (rc == WM_ENOMEM)
        return rc;
    if (rc)
        return fail_msg(errmsg, errmsg_len, WM_EPARSE, "the decoded payload is not valid JSON: %s",
                        jerr.msg);
    wm_rec_ctx_t ctx = req->ctx;
    ctx.project = info->project;
    ctx.token = info->token;
    ctx.stored = false;
    return wm__ingest_records(a, root, &ctx, out, errmsg, errmsg_len);
}
