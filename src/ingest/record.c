/*
 * record.c - one validator for every ingest path.
 *
 * Sensors, Segment and native input all end here as a Sensors-format JSON
 * object, so a rule is written once and every path rejects the same record
 * with the same error code and field path (docs/ingest-mapping.md).
 *
 * Why it looks like this: import must reach ~1M records/s on two cores, so
 * validation is a single pass over the record's top-level members (keys
 * dispatched by length + memcmp), names are checked with a 256-entry class
 * table, reserved words with a length/first-letter switch, and nothing is
 * allocated except from the request arena (and only when a record needs it:
 * lifted $time/$project/$token, an identities array, a derived distinct_id).
 */
#include "waymark/record.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "waymark/error.h"
#include "waymark/limits.h"

/* ---- type names ---- */

static const char *const type_names[] = {
#define WM__REC_STR(name, str) str,
    WM_REC_TYPE_MAP(WM__REC_STR)
#undef WM__REC_STR
};

const char *wm_rec_type_name(wm_rec_type_t t)
{
    return (unsigned)t < WM_REC__COUNT ? type_names[t] : "unknown";
}

static int type_parse_n(const char *s, size_t n)
{
    for (int i = 0; i < WM_REC__COUNT; i++)
        if (strlen(type_names[i]) == n && memcmp(type_names[i], s, n) == 0)
            return i;
    return -1;
}

int wm_rec_type_parse(const char *s)
{
    return s ? type_parse_n(s, strlen(s)) : -1;
}

/* ---- names ---- */

/* bit 1: may start a name; bit 2: may continue one */
#define NC_FIRST 1
#define NC_REST 2
/* generated: letters, _ and $ = 3; digits = 2 */
static const unsigned char name_class[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0,
    0, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 0, 0, 0, 3,
    0, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

bool wm_name_valid_n(const char *s, size_t n)
{
    if (!s || n == 0 || n > WM_NAME_LEN_MAX)
        return false;
    const unsigned char *p = (const unsigned char *)s;
    if (!(name_class[p[0]] & NC_FIRST))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!(name_class[p[i]] & NC_REST))
            return false;
    return true;
}

bool wm_name_valid(const char *s)
{
    return s && wm_name_valid_n(s, strlen(s));
}

static bool ieq(const char *s, const char *lower, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c + 32);
        if (c != lower[i])
            return false;
    }
    return true;
}

bool wm_name_reserved_n(const char *s, size_t n)
{
    static const struct { const char *w; size_t n; } words[] = {
#define W(x) {x, sizeof(x) - 1}
        W("distinct_id"), W("original_id"), W("time"), W("properties"), W("id"),
        W("first_id"), W("second_id"), W("users"), W("events"), W("event"),
        W("user_id"), W("date"), W("datetime"), W("event_id"), W("device_id"),
#undef W
    };
    if (!s || n < 2)
        return false;
    /* fast exit: every reserved word starts with one of these letters */
    switch (s[0] | 0x20) {
    case 'd': case 'o': case 't': case 'p': case 'i':
    case 'f': case 's': case 'u': case 'e':
        break;
    default:
        return false;
    }
    if (n >= 8 && (ieq(s, "user_tag", 8) || (n >= 10 && ieq(s, "user_group", 10))))
        return true;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (words[i].n == n && ieq(s, words[i].w, n))
            return true;
    return false;
}

bool wm_name_reserved(const char *s)
{
    return s && wm_name_reserved_n(s, strlen(s));
}

/* ---- datetime ---- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* Parses the shared "yyyy-MM-dd[( |T)HH:mm:ss[.f]]" prefix; frac_max bounds
 * the fraction digits. Sets *end to the first unparsed byte. */
static int parse_dt_prefix(const char *s, int frac_max, int64_t *ms, bool *date_only,
                           const char **end)
{
    int y, mo, d, h = 0, mi = 0, se = 0, frac_ms = 0;
    if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d))
        return WM_EINVAL;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
        return WM_EINVAL;
    const char *p = s + 10;
    *date_only = true;
    if (*p == ' ' || *p == 'T') {
        if (!digits(p + 1, 2, &h) || p[3] != ':' || !digits(p + 4, 2, &mi) || p[6] != ':' ||
            !digits(p + 7, 2, &se))
            return WM_EINVAL;
        if (h > 23 || mi > 59 || se > 59)
            return WM_EINVAL;
        p += 9;
        *date_only = false;
        if (*p == '.') {
            int nd = 0, scale = 100;
            for (p++; *p >= '0' && *p <= '9'; p++, nd++) {
                if (nd < 3)
                    frac_ms += (*p - '0') * scale;
                scale /= 10;
            }
            if (nd < 1 || nd > frac_max)
                return WM_EINVAL;
        }
    }
    int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    *ms = ((days * 24 + h) * 60 + mi) * 60000 + (int64_t)se * 1000 + frac_ms;
    *end = p;
    return 0;
}

int wm_datetime_parse(const char *s, int tz_offset_min, int64_t *ms_out, bool *is_date_only)
{
    if (!s || strnlen(s, 11) < 10)
        return WM_EINVAL;
    int64_t ms;
    bool date_only;
    const char *end;
    if (parse_dt_prefix(s, 3, &ms, &date_only, &end) || *end != '\0')
        return WM_EINVAL;
    *ms_out = ms - (int64_t)tz_offset_min * 60000;
    if (is_date_only)
        *is_date_only = date_only;
    return 0;
}

int wm_iso8601_parse(const char *s, int64_t *ms_out)
{
    if (!s || strnlen(s, 11) < 10)
        return WM_EINVAL;
    int64_t ms;
    bool date_only;
    const char *p;
    if (parse_dt_prefix(s, 9, &ms, &date_only, &p))
        return WM_EINVAL;
    int off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int hh, mm = 0, sign = *p == '-' ? -1 : 1;
        if (!digits(p + 1, 2, &hh))
            return WM_EINVAL;
        p += 3;
        if (*p == ':')
            p++;
        if (*p && !digits(p, 2, &mm))
            return WM_EINVAL;
        if (*p)
            p += 2;
        if (hh > 23 || mm > 59)
            return WM_EINVAL;
        off = sign * (hh * 60 + mm);
    }
    if (*p != '\0')
        return WM_EINVAL;
    *ms_out = ms - (int64_t)off * 60000;
    return 0;
}

/* ---- errors ---- */

static int rec_fail(wm_rec_error_t *err, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int rec_fail(wm_rec_error_t *err, const char *code, const char *field, const char *fmt, ...)
{
    if (!err)
        return WM_EINVAL;
    err->code = code;
    snprintf(err->field, sizeof err->field, "%s", field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return WM_EINVAL;
}

/* "prefix.key" into buf, truncated; keys may be long or contain NULs. */
static const char *path2(char *buf, size_t cap, const char *prefix, const char *key, size_t klen)
{
    int k = klen > 100 ? 100 : (int)klen;
    snprintf(buf, cap, "%s.%.*s%s", prefix, k, key, klen > 100 ? "..." : "");
    return buf;
}

/* ---- the record's top-level members ---- */

typedef struct fields {
    const wm_json_t *type, *event, *distinct_id, *original_id, *login_id, *anonymous_id;
    const wm_json_t *project, *token, *time, *time_free, *track_id, *flush_time;
    const wm_json_t *properties, *lib, *identities, *item_type, *item_id;
    const wm_json_t *receive_time, *ip, *message_id;
} fields_t;

/* Members collect_fields kept: equal to the object's length only when every
 * member is one it reads, once (a duplicate, or _track_id next to track_id,
 * keeps one; an unknown member none). */
static uint32_t fields_kept(const fields_t *f)
{
    const wm_json_t *const all[] = {
        f->type, f->event, f->distinct_id, f->original_id, f->login_id, f->anonymous_id,
        f->project, f->token, f->time, f->time_free, f->track_id, f->flush_time,
        f->properties, f->lib, f->identities, f->item_type, f->item_id,
        f->receive_time, f->ip, f->message_id,
    };
    uint32_t n = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        n += all[i] != NULL;
    return n;
}

#define KEY_IS(c, lit) ((c)->key_len == sizeof(lit) - 1 && memcmp((c)->key, lit, sizeof(lit) - 1) == 0)

static void collect_fields(const wm_json_t *obj, fields_t *f)
{
    memset(f, 0, sizeof *f);
    for (const wm_json_t *c = obj->u.child; c; c = c->next) {
        switch (c->key_len) {
        case 2: if (KEY_IS(c, "ip")) f->ip = c; break;
        case 3: if (KEY_IS(c, "lib")) f->lib = c; break;
        case 4:
            if (KEY_IS(c, "type")) f->type = c;
            else if (KEY_IS(c, "time")) f->time = c;
            break;
        case 5:
            if (KEY_IS(c, "event")) f->event = c;
            else if (KEY_IS(c, "token")) f->token = c;
            break;
        case 7:
            if (KEY_IS(c, "project")) f->project = c;
            else if (KEY_IS(c, "item_id")) f->item_id = c;
            break;
        case 8:
            if (KEY_IS(c, "login_id")) f->login_id = c;
            else if (KEY_IS(c, "track_id")) f->track_id = c;
            break;
        case 9:
            if (KEY_IS(c, "time_free")) f->time_free = c;
            else if (KEY_IS(c, "_track_id")) f->track_id = c;
            else if (KEY_IS(c, "item_type")) f->item_type = c;
            break;
        case 10:
            if (KEY_IS(c, "properties")) f->properties = c;
            else if (KEY_IS(c, "identities")) f->identities = c;
            else if (KEY_IS(c, "flush_time")) f->flush_time = c;
            else if (KEY_IS(c, "message_id")) f->message_id = c;
            break;
        case 11:
            if (KEY_IS(c, "distinct_id")) f->distinct_id = c;
            else if (KEY_IS(c, "original_id")) f->original_id = c;
            else if (KEY_IS(c, "_flush_time")) f->flush_time = c;
            break;
        case 12:
            if (KEY_IS(c, "anonymous_id")) f->anonymous_id = c;
            else if (KEY_IS(c, "receive_time")) f->receive_time = c;
            break;
        default: break;
        }
    }
}

/* Integer value of a JSON number (integral doubles accepted). */
static bool json_int(const wm_json_t *v, int64_t *out)
{
    if (!v || v->type != WM_JSON_NUMBER)
        return false;
    if (v->is_int) {
        *out = v->i64;
        return true;
    }
    if (v->u.num != v->u.num || v->u.num < -9.0e18 || v->u.num > 9.0e18 ||
        (double)(int64_t)v->u.num != v->u.num)
        return false;
    *out = (int64_t)v->u.num;
    return true;
}

/* Sensors `time`: 10 digits are seconds, 11..13 digits ms (Python SDK rule). */
static bool time_norm(int64_t t, int64_t *ms)
{
    if (t < 1000000000LL || t > 9999999999999LL)
        return false;
    *ms = t <= 9999999999LL ? t * 1000 : t;
    return true;
}

/* Validated id string: 1..255 bytes. Absent is "missing" only if required. */
static int check_id(const wm_json_t *v, const char *field, bool required, const char **out,
                    wm_rec_error_t *err)
{
    *out = NULL;
    if (!v || v->type == WM_JSON_NULL) {
        if (required)
            return rec_fail(err, WM_REC_ERR_MISSING_FIELD, field, "the record has no %s", field);
        return 0;
    }
    if (v->type != WM_JSON_STRING)
        return rec_fail(err, WM_REC_ERR_INVALID_TYPE, field, "%s must be a string, not %s", field,
                        wm_json_type_name(v->type));
    if (v->len == 0) {
        if (required)
            return rec_fail(err, WM_REC_ERR_INVALID_VALUE, field, "%s must not be empty", field);
        return 0;
    }
    if (v->len > WM_ID_LEN_MAX)
        return rec_fail(err, WM_REC_ERR_TOO_LONG, field, "%s is %u bytes; the limit is %d", field,
                        v->len, WM_ID_LEN_MAX);
    if (memchr(v->u.str, '\0', v->len))
        return rec_fail(err, WM_REC_ERR_INVALID_VALUE, field, "%s contains a NUL character",
                        field);
    *out = v->u.str;
    return 0;
}

/* ---- properties ---- */

typedef struct props_scan {
    const wm_json_t *time, *project, *token, *is_login;
    unsigned lifted;
} props_scan_t;

/* Field paths are formatted only on failure: snprintf per property would
 * cost more than the whole check. */
#define PROP_PATH(c) path2(field, sizeof field, "properties", (c)->key, (c)->key_len)

static int check_string_value(const wm_json_t *c, const wm_json_t *v, wm_rec_error_t *err)
{
    char field[160];
    if (v->len > WM_STRING_VALUE_MAX)
        return rec_fail(err, WM_REC_ERR_TOO_LONG, PROP_PATH(c),
                        "%s is a string of %u bytes; the limit is %d", field, v->len,
                        WM_STRING_VALUE_MAX);
    return 0;
}

static int check_list(const wm_json_t *c, wm_rec_error_t *err)
{
    char field[160];
    for (const wm_json_t *e = c->u.child; e; e = e->next) {
        if (e->type != WM_JSON_STRING)
            return rec_fail(err, WM_REC_ERR_INVALID_TYPE, PROP_PATH(c),
                            "%s must be a list of strings; it holds a %s", field,
                            wm_json_type_name(e->type));
        if (check_string_value(c, e, err))
            return WM_EINVAL;
    }
    return 0;
}

static int check_value(wm_rec_type_t t, const wm_json_t *c, wm_rec_error_t *err)
{
    char field[160];
    switch (t) {
    case WM_REC_PROFILE_INCREMENT:
        if (c->type != WM_JSON_NUMBER)
            return rec_fail(err, WM_REC_ERR_INVALID_TYPE, PROP_PATH(c),
                            "profile_increment value %s must be a number, not %s", field,
                            wm_json_type_name(c->type));
        return 0;
    case WM_REC_PROFILE_APPEND:
        if (c->type != WM_JSON_ARRAY)
            return rec_fail(err, WM_REC_ERR_INVALID_TYPE, PROP_PATH(c),
                            "profile_append value %s must be a list of strings, not %s", field,
                            wm_json_type_name(c->type));
        return check_list(c, err);
    case WM_REC_PROFILE_UNSET:
        if (c->type != WM_JSON_TRUE)
            return rec_fail(err, WM_REC_ERR_INVALID_VALUE, PROP_PATH(c),
                            "profile_unset value %s must be true", field);
        return 0;
    default:
        break;
    }
    switch (c->type) {
    case WM_JSON_STRING: return check_string_value(c, c, err);
    case WM_JSON_ARRAY: return check_list(c, err);
    case WM_JSON_OBJECT:
        return rec_fail(err, WM_REC_ERR_INVALID_TYPE, PROP_PATH(c),
                        "%s is an object; property values must be number, bool, string, "
                        "list of strings or null",
                        field);
    default: return 0;
    }
}

/* Preset keys the validator handles itself; returns true if `c` was one. */
static bool scan_preset(const wm_json_t *c, props_scan_t *ps)
{
    if (c->key_len < 5 || c->key[0] != '$')
        return false;
    if (KEY_IS(c, "$time")) ps->time = c, ps->lifted++;
    else if (KEY_IS(c, "$project")) ps->project = c, ps->lifted++;
    else if (KEY_IS(c, "$token")) ps->token = c, ps->lifted++;
    else if (KEY_IS(c, "$is_login_id")) { ps->is_login = c; return false; }
    else return false;
    return true;
}

/* Property names that passed the name rules, per thread: a record's names
 * mostly repeat the last records', and one exact comparison replaces the
 * character check and the reserved-word search. Direct-mapped by length and
 * first bytes; names longer than the slot are always checked in full. A name
 * is only ever stored after passing, and found only when equal byte for byte. */
#define NAME_OK_SLOTS 1024
#define NAME_OK_LEN 31
typedef struct name_ok {
    unsigned char len;          /* 0 = empty */
    char name[NAME_OK_LEN];
} name_ok_t;
static _Thread_local name_ok_t name_ok_cache[NAME_OK_SLOTS];

static name_ok_t *name_ok_slot(const char *key, size_t n)
{
    uint64_t w = 0;
    memcpy(&w, key, n < 8 ? n : 8);
    w ^= (uint64_t)n << 56;
    if (n > 8) {
        uint64_t t = 0;
        memcpy(&t, key + n - (n < 16 ? n - 8 : 8), n < 16 ? n - 8 : 8);
        w ^= t * 0x9e3779b97f4a7c15ull;
    }
    return &name_ok_cache[(w * 0xff51afd7ed558ccdull) >> (64 - 10)];
}

/* True when key is a valid, unreserved property name. */
static bool prop_name_ok(const char *key, size_t n)
{
    name_ok_t *s = n <= NAME_OK_LEN ? name_ok_slot(key, n) : NULL;
    if (s && s->len == n && memcmp(s->name, key, n) == 0)
        return true;
    if (!wm_name_valid_n(key, n) || wm_name_reserved_n(key, n))
        return false;
    if (s) {
        memcpy(s->name, key, n);
        s->len = (unsigned char)n;
    }
    return true;
}

static int scan_properties(wm_rec_type_t t, const wm_json_t *props, props_scan_t *ps,
                           wm_rec_error_t *err)
{
    char field[160];
    memset(ps, 0, sizeof *ps);
    if (props->len > WM_PROPERTIES_MAX)
        return rec_fail(err, WM_REC_ERR_TOO_MANY, "properties",
                        "the record has %u properties; the limit is %d", props->len,
                        WM_PROPERTIES_MAX);
    for (const wm_json_t *c = props->u.child; c; c = c->next) {
        if (scan_preset(c, ps))
            continue;
        /* server SDKs put $is_login_id into profile_increment/append/unset
         * properties too; it is an envelope flag, checked below as a bool */
        if (c == ps->is_login)
            continue;
        if (!prop_name_ok(c->key, c->key_len)) {
            if (!wm_name_valid_n(c->key, c->key_len))
                return rec_fail(err, WM_REC_ERR_INVALID_NAME,
                                path2(field, sizeof field, "properties", c->key, c->key_len),
                                "property name '%.100s' is not valid: use letters, digits, _ and "
                                "$, not starting with a digit, at most 100 characters",
                                c->key);
            return rec_fail(err, WM_REC_ERR_RESERVED_NAME,
                            path2(field, sizeof field, "properties", c->key, c->key_len),
                            "property name '%s' is reserved", c->key);
        }
        if (check_value(t, c, err))
            return WM_EINVAL;
    }
    if (ps->is_login && ps->is_login->type != WM_JSON_TRUE && ps->is_login->type != WM_JSON_FALSE)
        return rec_fail(err, WM_REC_ERR_INVALID_TYPE, "properties.$is_login_id",
                        "properties.$is_login_id must be a boolean");
    return 0;
}

/* Shallow copy of props without the lifted preset keys. */
static const wm_json_t *props_without_lifted(wm_arena_t *a, const wm_json_t *props)
{
    wm_json_t *o = wm_json_new(a, WM_JSON_OBJECT);
    if (!o)
        return NULL;
    wm_json_t **tail = &o->u.child;
    props_scan_t dummy = {0};
    for (const wm_json_t *c = props->u.child; c; c = c->next) {
        if (scan_preset(c, &dummy))
            continue;
        wm_json_t *n = wm_arena_alloc(a, sizeof *n);
        if (!n)
            return NULL;
        *n = *c;
        n->next = NULL;
        *tail = n;
        tail = &n->next;
        o->len++;
    }
    return o;
}

static const wm_json_t empty_object = {.type = WM_JSON_OBJECT};

/* ---- identities ---- */

static int parse_identities(wm_arena_t *a, const wm_json_t *v, wm_record_t *r, wm_rec_error_t *err)
{
    char field[160];
    if (!v || v->type == WM_JSON_NULL)
        return 0;
    if (v->type != WM_JSON_OBJECT)
        return rec_fail(err, WM_REC_ERR_INVALID_TYPE, "identities",
                        "identities must be an object of id name to id value");
    if (v->len > WM_IDENTITIES_MAX)
        return rec_fail(err, WM_REC_ERR_TOO_MANY, "identities",
                        "the record has %u identities; the limit is %d", v->len, WM_IDENTITIES_MAX);
    if (v->len == 0)
        return 0;
    r->identities = wm_arena_alloc(a, v->len * sizeof *r->identities);
    if (!r->identities)
        return WM_ENOMEM;
    for (const wm_json_t *c = v->u.child; c; c = c->next) {
        /* the field path is formatted only for an error (snprintf per
         * identity cost more than the check) */
        if (!wm_name_valid_n(c->key, c->key_len))
            return rec_fail(err, WM_REC_ERR_INVALID_NAME,
                            path2(field, sizeof field, "identities", c->key, c->key_len),
                            "identity name '%.100s' is not a valid name", c->key);
        const char *val;
        if (check_id(c, "", true, &val, NULL) &&
            check_id(c, path2(field, sizeof field, "identities", c->key, c->key_len), true, &val, err))
            return WM_EINVAL;
        r->identities[r->n_identities].key = c->key;
        r->identities[r->n_identities].value = val;
        r->n_identities++;
    }
    return 0;
}

static const char *identity_get(const wm_record_t *r, const char *key)
{
    for (uint32_t i = 0; i < r->n_identities; i++)
        if (strcmp(r->identities[i].key, key) == 0)
            return r->identities[i].value;
    return NULL;
}

/* IDM 3 SDK rule: $identity_login_id's value, else "<key>+<value>" of the
 * first identity (its bare value if that would exceed 255). */
static const char *derive_distinct_id(wm_arena_t *a, const wm_record_t *r)
{
    const char *login = identity_get(r, "$identity_login_id");
    if (login)
        return login;
    const wm_identity_kv_t *f = &r->identities[0];
    size_t kl = strlen(f->key), vl = strlen(f->value);
    if (kl + 1 + vl > WM_ID_LEN_MAX)
        return f->value;
    char *s = wm_arena_alloc(a, kl + vl + 2);
    if (!s)
        return NULL;
    memcpy(s, f->key, kl);
    s[kl] = '+';
    memcpy(s + kl + 1, f->value, vl + 1);
    return s;
}

/* ---- record assembly ---- */

static int parse_type(const fields_t *f, wm_record_t *r, wm_rec_error_t *err)
{
    if (!f->type)
        return rec_fail(err, WM_REC_ERR_MISSING_FIELD, "type", "the record has no type");
    if (f->type->type != WM_JSON_STRING)
        return rec_fail(err, WM_REC_ERR_INVALID_TYPE, "type", "type must be a string");
    int t = type_parse_n(f->type->u.str, f->type->len);
    if (t < 0)
        return rec_fail(err, WM_REC_ERR_UNKNOWN_TYPE, "type", "unknown record type '%.64s'",
                        f->type->u.str);
    r->type = (wm_rec_type_t)t;
    return 0;
}

static int parse_event(const fields_t *f, wm_record_t *r, wm_rec_error_t *err)
{
    static const char *const defaults[] = {
        [WM_REC_TRACK_SIGNUP] = "$SignUp",
        [WM_REC_TRACK_ID_BIND] = "$BindID",
        [WM_REC_TRACK_ID_UNBIND] = "$UnbindID",
    };
    if (r->type > WM_REC_TRACK_ID_UNBIND)
        return 0;
    const wm_json_t *e = f->event;
    if (!e || e->type == WM_JSON_NULL || (e->type == WM_JSON_STRING && e->len == 0)) {
        if (r->type == WM_REC_TRACK)
            return rec_fail(err, WM_REC_ERR_MISSING_FIELD, "event", "a track record needs an event");
        r->event = defaults[r->type];
        return 0;
    }
    if (e->type != WM_JSON_STRING)
        return rec_fail(err, WM_REC_ERR_INVALID_TYPE, "event", "event must be a string");
    if (!wm_name_valid_n(e->u.str, e->len))
        return rec_fail(err, WM_REC_ERR_INVALID_NAME, "event",
                        "event name '%.100s' is not valid: use letters, digits, _ and $, not "
                        "starting with a digit, at most 100 characters",
                        e->u.str);
    if (wm_name_reserved_n(e->u.str, e->len))
        return rec_fail(err, WM_REC_ERR_RESERVED_NAME, "event", "event name '%s' is reserved",
                        e->u.str);
    r->event = e->u.str;
    return 0;
}

static int parse_time(const fields_t *f, const props_scan_t *ps, const wm_rec_ctx_t *ctx,
                      wm_record_t *r, wm_rec_error_t *err)
{
    int64_t t;
    r->time_ms = r->receive_time_ms;
    if (ps->time) {
        const wm_json_t *v = ps->time;
        if (v->type == WM_JSON_STRING) {
            if (wm_datetime_parse(v->u.str, ctx->tz_offset_min, &r->time_ms, NULL) ||
                r->time_ms < 0 || r->time_ms > 9999999999999LL)
                return rec_fail(err, WM_REC_ERR_INVALID_VALUE, "properties.$time",
                                "properties.$time '%.40s' is not a yyyy-MM-dd HH:mm:ss.SSS "
                                "datetime",
                                v->u.str);
            return 0;
        }
        if (!json_int(v, &t))
            return rec_fail(err, WM_REC_ERR_INVALID_TYPE, "properties.$time",
                            "properties.$time must be epoch ms or a datetime string");
        if (!time_norm(t, &r->time_ms))
            return rec_fail(err, WM_REC_ERR_INVALID_VALUE, "properties.$time",
                            "properties.$time must have 10 (s) to 13 (ms) digits");
        return 0;
    }
    if (!f->time || f->time->type == WM_JSON_NULL)
        return 0;
    if (!json_int(f->time, &t))
        return rec_fail(err, WM_REC_ERR_INVALID_TYPE, "time",
                        "time must be an integer (epoch ms)");
    if (ctx->stored) { /* our own form holds exact ms: no digit heuristic */
        r->time_ms = t;
        return 0;
    }
    if (!time_norm(t, &r->time_ms))
        return rec_fail(err, WM_REC_ERR_INVALID_VALUE, "time",
                        "time must have 10 (s) to 13 (ms) digits");
    return 0;
}

static int opt_int(const wm_json_t *v, const char *field, bool *has, int64_t *out,
                   wm_rec_error_t *err)
{
    if (!v || v->type == WM_JSON_NULL)
        return 0;
    if (!json_int(v, out))
        return rec_fail(err, WM_REC_ERR_INVALID_TYPE, field, "%s must be an integer", field);
    if (has)
        *has = true;
    return 0;
}

static int opt_str(const wm_json_t *v, const char *field, size_t max, const char **out,
                   wm_rec_error_t *err)
{
    if (!v || v->type == WM_JSON_NULL)
        return 0;
    if (v->type != WM_JSON_STRING)
        return rec_fail(err, WM_REC_ERR_INVALID_TYPE, field, "%s must be a string", field);
    if (v->len > max)
        return rec_fail(err, WM_REC_ERR_TOO_LONG, field, "%s is %u bytes; the limit is %zu",
                        field, v->len, max);
    if (v->len)
        *out = v->u.str;
    return 0;
}

static int parse_envelope(const fields_t *f, const wm_rec_ctx_t *ctx, wm_record_t *r,
                          wm_rec_error_t *err)
{
    if (check_id(f->login_id, "login_id", false, &r->login_id, err) ||
        check_id(f->anonymous_id, "anonymous_id", false, &r->anonymous_id, err) ||
        opt_int(f->track_id, "_track_id", &r->has_track_id, &r->track_id, err) ||
        opt_int(f->flush_time, "_flush_time", NULL, &r->flush_time_ms, err) ||
        opt_str(f->message_id, "message_id", WM_ID_LEN_MAX, &r->message_id, err))
        return WM_EINVAL;
    /* protocol 2.1: any time_free value but null (and false, our reading) */
    r->time_free = f->time_free && f->time_free->type != WM_JSON_NULL &&
                   f->time_free->type != WM_JSON_FALSE;
    if (f->lib && f->lib->type != WM_JSON_NULL) {
        if (f->lib->type != WM_JSON_OBJECT)
            return rec_fail(err, WM_REC_ERR_INVALID_TYPE, "lib", "lib must be an object");
        r->lib = f->lib;
    }
    r->receive_time_ms = ctx->receive_time_ms;
    r->ip = ctx->ip;
    if (ctx->stored) {
        r->ip = NULL;
        if (opt_int(f->receive_time, "receive_time", NULL, &r->receive_time_ms, err) ||
            opt_str(f->ip, "ip", 64, &r->ip, err))
            return WM_EINVAL;
    }
    return 0;
}

/* record.project (non-empty) > properties.$project > ?project= > "default";
 * token likewise. */
static int parse_project(const fields_t *f, const props_scan_t *ps, const wm_rec_ctx_t *ctx,
                         wm_record_t *r, wm_rec_error_t *err)
{
    const char *top = NULL, *lifted = NULL;
    if (opt_str(f->project, "project", WM_NAME_LEN_MAX, &top, err) ||
        opt_str(ps->project, "properties.$project", WM_NAME_LEN_MAX, &lifted, err))
        return WM_EINVAL;
    const char *p = top ? top : lifted;
    if (!p)
        p = ctx->project && *ctx->project ? ctx->project : "default";
    if (!wm_name_valid(p))
        return rec_fail(err, WM_REC_ERR_INVALID_NAME, top || lifted ? "project" : "",
                        "project name '%.100s' is not a valid name", p);
    r->project = p;
    top = lifted = NULL;
    if (opt_str(f->token, "token", WM_ID_LEN_MAX, &top, err) ||
        opt_str(ps->token, "properties.$token", WM_ID_LEN_MAX, &lifted, err))
        return WM_EINVAL;
    r->token = top ? top : lifted;
    if (!r->token && ctx->token && *ctx->token)
        r->token = ctx->token;
    return 0;
}

static int parse_users(wm_arena_t *a, const fields_t *f, wm_record_t *r, wm_rec_error_t *err)
{
    if (r->type == WM_REC_ITEM_SET || r->type == WM_REC_ITEM_DELETE) {
        if (!f->item_type || f->item_type->type == WM_JSON_NULL)
            return rec_fail(err, WM_REC_ERR_MISSING_FIELD, "item_type", "the record has no item_type");
        if (f->item_type->type != WM_JSON_STRING)
            return rec_fail(err, WM_REC_ERR_INVALID_TYPE, "item_type", "item_type must be a string");
        if (!wm_name_valid_n(f->item_type->u.str, f->item_type->len))
            return rec_fail(err, WM_REC_ERR_INVALID_NAME, "item_type",
                            "item_type '%.100s' is not a valid name", f->item_type->u.str);
        r->item_type = f->item_type->u.str;
        return check_id(f->item_id, "item_id", true, &r->item_id, err);
    }
    if (r->type == WM_REC_TRACK_ID_BIND && r->n_identities < 2)
        return rec_fail(err, WM_REC_ERR_INVALID_VALUE, "identities",
                        "track_id_bind needs at least 2 identities, got %u", r->n_identities);
    if (r->type == WM_REC_TRACK_ID_UNBIND && r->n_identities != 1)
        return rec_fail(err, WM_REC_ERR_INVALID_VALUE, "identities",
                        "track_id_unbind needs exactly 1 identity, got %u", r->n_identities);
    bool derive = r->n_identities > 0 &&
                  (!f->distinct_id || f->distinct_id->type == WM_JSON_NULL ||
                   (f->distinct_id->type == WM_JSON_STRING && f->distinct_id->len == 0));
    if (derive) {
        if (!(r->distinct_id = derive_distinct_id(a, r)))
            return WM_ENOMEM;
    } else if (check_id(f->distinct_id, "distinct_id", true, &r->distinct_id, err)) {
        return WM_EINVAL;
    }
    if (r->type == WM_REC_TRACK_SIGNUP)
        return check_id(f->original_id, "original_id", true, &r->original_id, err);
    return 0;
}

static void resolve_login(const props_scan_t *ps, wm_record_t *r)
{
    if (ps->is_login) {
        r->is_login_id = ps->is_login->type == WM_JSON_TRUE;
        return;
    }
    if (!r->distinct_id)
        return;
    const char *lid = identity_get(r, "$identity_login_id");
    r->is_login_id = (r->login_id && strcmp(r->login_id, r->distinct_id) == 0) ||
                     (lid && strcmp(lid, r->distinct_id) == 0);
}

/* "Present" and "the canonical form writes it" must agree for a member. */
#define SAME(member, written) (((member) != NULL) == ((written) != 0))

static bool verbatim_members(const fields_t *f, const props_scan_t *ps, const wm_record_t *r)
{
    bool event_type = r->type <= WM_REC_TRACK_ID_UNBIND;
    bool item = r->type == WM_REC_ITEM_SET || r->type == WM_REC_ITEM_DELETE;
    return !ps->lifted && !f->token && !f->receive_time && !f->ip &&
           /* a default event name ($SignUp for none) is written by the canonical form */
           (event_type ? f->event && f->event->type == WM_JSON_STRING && r->event == f->event->u.str
                       : !f->event) &&
           (item ? !f->distinct_id : f->distinct_id && r->distinct_id == f->distinct_id->u.str) &&
           SAME(f->original_id, r->original_id) && SAME(f->login_id, r->login_id) &&
           SAME(f->anonymous_id, r->anonymous_id) && SAME(f->identities, r->n_identities) &&
           SAME(f->item_type, r->item_type) && SAME(f->item_id, r->item_id) &&
           (!f->time || (f->time->type == WM_JSON_NUMBER && f->time->is_int &&
                         f->time->i64 == r->time_ms)) &&
           (!f->time_free || r->time_free) &&
           (!f->project || (f->project->type == WM_JSON_STRING && r->project == f->project->u.str)) &&
           SAME(f->track_id, r->has_track_id) && SAME(f->flush_time, r->flush_time_ms) &&
           SAME(f->message_id, r->message_id) && SAME(f->lib, r->lib) &&
           f->properties && r->properties == f->properties;
}

/* Sets r->raw when the text may be the stored form (wm_record_from_json_text). */
static void verbatim_check(const wm_json_t *obj, const fields_t *f, const props_scan_t *ps,
                           const char *text, size_t len, wm_record_t *r)
{
    const char *s = text, *e = text + len;
    while (s < e && *s != '{')
        s++;
    while (e > s && e[-1] != '}')
        e--;
    if (e - s < 2 || (size_t)(e - s) > WM_RECORD_BYTES_MAX || memchr(s, '\\', (size_t)(e - s)) ||
        fields_kept(f) != obj->len || !verbatim_members(f, ps, r))
        return;
    r->raw = s;
    r->raw_len = (uint32_t)(e - s);
    r->raw_adds = (uint8_t)((f->project ? 0 : WM_RAW_ADD_PROJECT) | (f->time ? 0 : WM_RAW_ADD_TIME));
}

static int from_json(wm_arena_t *a, const wm_json_t *obj, const char *text, size_t len,
                     const wm_rec_ctx_t *ctx, wm_record_t *r, wm_rec_error_t *err)
{
    fields_t f;
    props_scan_t ps;
    int rc;
    if (!obj || obj->type != WM_JSON_OBJECT)
        return rec_fail(err, WM_REC_ERR_INVALID_TYPE, "", "a record must be a JSON object, not %s",
                        obj ? wm_json_type_name(obj->type) : "nothing");
    collect_fields(obj, &f);
    if ((rc = parse_type(&f, r, err)) || (rc = parse_event(&f, r, err)))
        return rc;
    const wm_json_t *props = f.properties;
    if (props && props->type == WM_JSON_NULL)
        props = NULL;
    if (props && props->type != WM_JSON_OBJECT)
        return rec_fail(err, WM_REC_ERR_INVALID_TYPE, "properties", "properties must be an object");
    if (!props)
        props = &empty_object;
    if ((rc = scan_properties(r->type, props, &ps, err)))
        return rc;
    r->properties = ps.lifted ? props_without_lifted(a, props) : props;
    if (!r->properties)
        return WM_ENOMEM;
    if ((rc = parse_envelope(&f, ctx, r, err)) || (rc = parse_time(&f, &ps, ctx, r, err)) ||
        (rc = parse_project(&f, &ps, ctx, r, err)) ||
        (rc = parse_identities(a, f.identities, r, err)) || (rc = parse_users(a, &f, r, err)))
        return rc;
    resolve_login(&ps, r);
    if (text)
        verbatim_check(obj, &f, &ps, text, len, r);
    return 0;
}

int wm_record_from_json_text(wm_arena_t *a, const wm_json_t *obj, const char *text, size_t len,
                             const wm_rec_ctx_t *ctx, wm_record_t *out, wm_rec_error_t *err)
{
    static const wm_rec_ctx_t no_ctx;
    memset(out, 0, sizeof *out);
    if (err)
        err->code = NULL;
    int rc = from_json(a, obj, text, len, ctx ? ctx : &no_ctx, out, err);
    out->src = obj; /* kept even on failure: dead letters store the original */
    return rc;
}

int wm_record_from_json(wm_arena_t *a, const wm_json_t *obj, const wm_rec_ctx_t *ctx,
                        wm_record_t *out, wm_rec_error_t *err)
{
    return wm_record_from_json_text(a, obj, NULL, 0, ctx, out, err);
}

/* ---- stored form ---- */

static void put_key(wm_buf_t *b, const char *k)
{
    wm_buf_putc(b, ',');
    wm_buf_putc(b, '"');
    wm_buf_puts(b, k);
    wm_buf_append(b, "\":", 2);
}

static void put_str(wm_buf_t *b, const char *k, const char *v)
{
    if (!v)
        return;
    put_key(b, k);
    wm_buf_json_str(b, v, strlen(v));
}

static void put_int(wm_buf_t *b, const char *k, int64_t v)
{
    put_key(b, k);
    wm_buf_put_i64(b, v);
}

/* The verbatim form: server members first, then the input's members. */
static void to_json_verbatim(const wm_record_t *r, wm_buf_t *b)
{
    wm_buf_putc(b, '{');
    if (r->raw_adds & WM_RAW_ADD_PROJECT) {
        wm_buf_append(b, "\"project\":", 10);
        wm_buf_json_str(b, r->project, strlen(r->project));
        wm_buf_putc(b, ',');
    }
    if (r->raw_adds & WM_RAW_ADD_TIME) {
        wm_buf_append(b, "\"time\":", 7);
        wm_buf_put_i64(b, r->time_ms);
        wm_buf_putc(b, ',');
    }
    wm_buf_append(b, "\"receive_time\":", 15);
    wm_buf_put_i64(b, r->receive_time_ms);
    put_str(b, "token", r->token);
    put_str(b, "ip", r->ip);
    wm_buf_putc(b, ',');
    wm_buf_append(b, r->raw + 1, r->raw_len - 1);
}

void wm_record_to_json(const wm_record_t *r, wm_buf_t *b)
{
    if (r->raw) {
        to_json_verbatim(r, b);
        return;
    }
    wm_buf_append(b, "{\"type\":", 8);
    wm_buf_json_str(b, wm_rec_type_name(r->type), strlen(wm_rec_type_name(r->type)));
    put_str(b, "event", r->event);
    put_str(b, "distinct_id", r->distinct_id);
    put_str(b, "original_id", r->original_id);
    put_str(b, "login_id", r->login_id);
    put_str(b, "anonymous_id", r->anonymous_id);
    if (r->n_identities) {
        put_key(b, "identities");
        for (uint32_t i = 0; i < r->n_identities; i++) {
            wm_buf_putc(b, i ? ',' : '{');
            wm_buf_json_str(b, r->identities[i].key, strlen(r->identities[i].key));
            wm_buf_putc(b, ':');
            wm_buf_json_str(b, r->identities[i].value, strlen(r->identities[i].value));
        }
        wm_buf_putc(b, '}');
    }
    put_str(b, "item_type", r->item_type);
    put_str(b, "item_id", r->item_id);
    put_int(b, "time", r->time_ms);
    if (r->time_free)
        wm_buf_puts(b, ",\"time_free\":true");
    put_str(b, "project", r->project);
    put_str(b, "token", r->token);
    if (r->has_track_id)
        put_int(b, "track_id", r->track_id);
    if (r->flush_time_ms)
        put_int(b, "flush_time", r->flush_time_ms);
    put_int(b, "receive_time", r->receive_time_ms);
    put_str(b, "ip", r->ip);
    put_str(b, "message_id", r->message_id);
    if (r->lib) {
        put_key(b, "lib");
        wm_json_write(b, r->lib);
    }
    put_key(b, "properties");
    wm_json_write(b, r->properties ? r->properties : &empty_object);
    wm_buf_putc(b, '}');
}

/* ---- equality ---- */

static bool str_eq(const char *x, const char *y)
{
    return x == y || (x && y && strcmp(x, y) == 0);
}

static bool json_eq(const wm_json_t *x, const wm_json_t *y)
{
    if (!x || !y)
        return x == y;
    if (x->type != y->type || x->key_len != y->key_len ||
        (x->key_len && memcmp(x->key, y->key, x->key_len) != 0))
        return false;
    switch (x->type) {
    case WM_JSON_NUMBER:
        /* by value: the writer prints 66.0 as 66, which reads back as an integer */
        return x->is_int && y->is_int ? x->i64 == y->i64 : x->u.num == y->u.num;
    case WM_JSON_STRING:
        return x->len == y->len && memcmp(x->u.str, y->u.str, x->len) == 0;
    case WM_JSON_ARRAY:
    case WM_JSON_OBJECT: {
        if (x->len != y->len)
            return false;
        const wm_json_t *a = x->u.child, *b = y->u.child;
        for (; a && b; a = a->next, b = b->next)
            if (!json_eq(a, b))
                return false;
        return !a && !b;
    }
    default:
        return true;
    }
}

/* Top-level trees: their own key (member name in the parent) does not count. */
static bool tree_eq(const wm_json_t *x, const wm_json_t *y)
{
    if (!x || !y)
        return x == y;
    wm_json_t xc = *x, yc = *y;
    xc.key = yc.key = NULL;
    xc.key_len = yc.key_len = 0;
    return json_eq(&xc, &yc);
}

bool wm_record_equal(const wm_record_t *x, const wm_record_t *y)
{
    if (x->type != y->type || x->is_login_id != y->is_login_id || x->time_ms != y->time_ms ||
        x->time_free != y->time_free || x->has_track_id != y->has_track_id ||
        (x->has_track_id && x->track_id != y->track_id) || x->flush_time_ms != y->flush_time_ms ||
        x->receive_time_ms != y->receive_time_ms || x->n_identities != y->n_identities)
        return false;
    if (!str_eq(x->event, y->event) || !str_eq(x->distinct_id, y->distinct_id) ||
        !str_eq(x->original_id, y->original_id) || !str_eq(x->login_id, y->login_id) ||
        !str_eq(x->anonymous_id, y->anonymous_id) || !str_eq(x->project, y->project) ||
        !str_eq(x->token, y->token) || !str_eq(x->ip, y->ip) ||
        !str_eq(x->message_id, y->message_id) || !str_eq(x->item_type, y->item_type) ||
        !str_eq(x->item_id, y->item_id))
        return false;
    for (uint32_t i = 0; i < x->n_identities; i++)
        if (!str_eq(x->identities[i].key, y->identities[i].key) ||
            !str_eq(x->identities[i].value, y->identities[i].value))
            return false;
    return tree_eq(x->properties, y->properties) && tree_eq(x->lib, y->lib);
}
