/*
 * value.c - typed values for the condition language: the readings a string
 * may have (number, risk level, date) and the one comparison every operator
 * is built on.
 *
 * Why readings instead of one declared type: events and profiles arrive from
 * SDKs with no schema guarantee ("amount" may be 12 or "12", dates are text
 * in the Sensors format), so a literal is typed once at compile time with
 * every reading it supports, and the runtime value is read the way the
 * literal asks. Rules (docs/conditions.md "Typing"):
 *   number vs number            numerically
 *   number vs string literal    the literal's level, date (epoch ms) or number
 *   string vs number literal    the string's number, level or date reading
 *   string vs string            equality: exact text; ordering: both levels ->
 *                               level number, both dates -> instants, both
 *                               numbers -> numerically, else bytes
 *   bool vs bool                equality only
 *   anything else               not comparable (= false, != true)
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rules/rules_internal.h"

int64_t wm__floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

/* Howard Hinnant's days-from-civil algorithm (public domain arithmetic). */
int64_t wm__days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = wm__floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t mp = (m + 9) % 12;
    int64_t doy = (153 * mp + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void wm__civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = wm__floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
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

static int month_days(int y, int m)
{
    static const int md[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : md[m - 1];
}

static bool parse_date_part(const char *s, int *y, int *m, int *d)
{
    if (s[4] != '-' || s[7] != '-')
        return false;
    if (!digits(s, 4, y) || !digits(s + 5, 2, m) || !digits(s + 8, 2, d))
        return false;
    return *m >= 1 && *m <= 12 && *d >= 1 && *d <= month_days(*y, *m);
}

/* "HH:mm", "HH:mm:ss", "HH:mm:ss.S{1,3}" */
static bool parse_time_part(const char *s, size_t n, int64_t *ms)
{
    int h, mi, sec = 0, frac = 0;
    if (n < 5 || s[2] != ':' || !digits(s, 2, &h) || !digits(s + 3, 2, &mi))
        return false;
    if (n > 5) {
        if (n < 8 || s[5] != ':' || !digits(s + 6, 2, &sec))
            return false;
        if (n > 8) {
            size_t fn = n - 9;
            if (s[8] != '.' || fn < 1 || fn > 3 || !digits(s + 9, (int)fn, &frac))
                return false;
            for (size_t i = fn; i < 3; i++)
                frac *= 10;
        }
    }
    if (h > 23 || mi > 59 || sec > 59)
        return false;
    *ms = ((int64_t)h * 3600 + mi * 60 + sec) * 1000 + frac;
    return true;
}

bool wm__parse_datetime(const char *s, size_t n, int64_t *naive_ms)
{
    int y, m, d;
    int64_t tod = 0;
    if (n < 10 || !parse_date_part(s, &y, &m, &d))
        return false;
    if (n > 10) {
        if (s[10] != ' ' && s[10] != 'T')
            return false;
        if (!parse_time_part(s + 11, n - 11, &tod))
            return false;
    }
    *naive_ms = wm__days_from_civil(y, m, d) * WM__DAY_MS + tod;
    return true;
}

bool wm__parse_level(const char *s, size_t n, int *level)
{
    if (n != 2 || s[1] < '0' || s[1] > '9')
        return false;
    char c = s[0];
    if (c != 'C' && c != 'R' && c != 'c' && c != 'r')
        return false;
    *level = s[1] - '0';
    return true;
}

bool wm_json_number_text(const char *s, size_t n)
{
    size_t i = n && s[0] == '-';
    if (i < n && s[i] == '0')
        i++;
    else if (i < n && s[i] >= '1' && s[i] <= '9')
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    else
        return false;
    if (i < n && s[i] == '.') {
        size_t d = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t d = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return false;
    }
    return i == n;
}

bool wm__parse_number(const char *s, size_t n, double *out)
{
    char buf[64];
    if (n == 0 || n >= sizeof buf)
        return false;
    /* JSON-style only: no leading '+', spaces, hex, inf or nan */
    char c = s[0];
    if (!(c == '-' || (c >= '0' && c <= '9')))
        return false;
    /* the JSON grammar ("000001" is not a number) */
    if (!wm_json_number_text(s, n))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    double v = strtod(buf, &end);
    if (end != buf + n || !isfinite(v))
        return false;
    *out = v;
    return true;
}

static void str_readings(wm__val_t *v)
{
    int lv;
    v->flags = 0;
    if (wm__parse_level(v->s, v->len, &lv)) {
        v->flags |= WM__VF_LEVEL;
        v->level = (uint8_t)lv;
    }
    if (wm__parse_number(v->s, v->len, &v->num))
        v->flags |= WM__VF_NUM;
    if (wm__parse_datetime(v->s, v->len, &v->date_naive))
        v->flags |= WM__VF_DATE;
}

bool wm__val_from_json(const wm_json_t *j, wm__val_t *v)
{
    memset(v, 0, sizeof *v);
    if (!j)
        return false;
    switch (j->type) {
    case WM_JSON_NUMBER:
        v->kind = WM__V_NUM;
        v->num = j->u.num;
        return true;
    case WM_JSON_STRING:
        v->kind = WM__V_STR;
        v->s = j->u.str;
        v->len = j->len;
        str_readings(v);
        return true;
    case WM_JSON_TRUE:
    case WM_JSON_FALSE:
        v->kind = WM__V_BOOL;
        v->b = j->type == WM_JSON_TRUE;
        return true;
    default:
        return false;
    }
}

static int cmp_num(double a, double b)
{
    if (a < b)
        return -1;
    if (a > b)
        return 1;
    if (a == b)
        return 0;
    return WM__CMP_NONE; /* NaN never compares */
}

static int cmp_bytes(const char *a, size_t an, const char *b, size_t bn)
{
    int r = memcmp(a, b, an < bn ? an : bn);
    if (r != 0)
        return r < 0 ? -1 : 1;
    return an < bn ? -1 : an > bn;
}

/* number (runtime) vs typed value */
static int cmp_from_num(double x, const wm__val_t *v, int64_t tz_ms)
{
    if (v->kind == WM__V_NUM)
        return cmp_num(x, v->num);
    if (v->kind != WM__V_STR)
        return WM__CMP_NONE;
    if (v->flags & WM__VF_LEVEL)
        return cmp_num(x, v->level);
    if (v->flags & WM__VF_NUM)
        return cmp_num(x, v->num);
    if (v->flags & WM__VF_DATE)
        return cmp_num(x, (double)(v->date_naive - tz_ms));
    return WM__CMP_NONE;
}

/* string (runtime) vs number literal */
static int cmp_str_num(const wm_json_t *j, double lit, int64_t tz_ms)
{
    double x;
    int lv;
    int64_t naive;
    if (wm__parse_number(j->u.str, j->len, &x))
        return cmp_num(x, lit);
    if (wm__parse_level(j->u.str, j->len, &lv))
        return cmp_num(lv, lit);
    if (wm__parse_datetime(j->u.str, j->len, &naive))
        return cmp_num((double)(naive - tz_ms), lit);
    return WM__CMP_NONE;
}

static int cmp_str_str(const wm_json_t *j, const wm__val_t *v, bool ordering)
{
    const char *s = j->u.str;
    size_t n = j->len;
    if (!ordering)
        return cmp_bytes(s, n, v->s, v->len);
    int lv;
    int64_t naive;
    double x;
    if ((v->flags & WM__VF_LEVEL) && wm__parse_level(s, n, &lv))
        return cmp_num(lv, v->level);
    if ((v->flags & WM__VF_DATE) && wm__parse_datetime(s, n, &naive))
        return naive < v->date_naive ? -1 : naive > v->date_naive;
    if ((v->flags & WM__VF_NUM) && wm__parse_number(s, n, &x))
        return cmp_num(x, v->num);
    return cmp_bytes(s, n, v->s, v->len);
}

int wm__val_cmp(const wm_json_t *j, const wm__val_t *v, bool ordering, int64_t tz_ms)
{
    if (!j)
        return WM__CMP_NONE;
    switch (j->type) {
    case WM_JSON_NUMBER:
        return cmp_from_num(j->u.num, v, tz_ms);
    case WM_JSON_STRING:
        if (v->kind == WM__V_NUM)
            return cmp_str_num(j, v->num, tz_ms);
        if (v->kind == WM__V_STR)
            return cmp_str_str(j, v, ordering);
        return WM__CMP_NONE;
    case WM_JSON_TRUE:
    case WM_JSON_FALSE:
        if (v->kind != WM__V_BOOL || ordering)
            return WM__CMP_NONE;
        return (j->type == WM_JSON_TRUE) == v->b ? 0 : 1;
    default:
        return WM__CMP_NONE;
    }
}

bool wm__json_instant(const wm_json_t *j, int64_t tz_ms, int64_t *ms)
{
    if (!j)
        return false;
    if (j->type == WM_JSON_NUMBER) {
        if (!isfinite(j->u.num) || fabs(j->u.num) > 9.0e15)
            return false;
        *ms = j->is_int ? j->i64 : (int64_t)j->u.num;
        return true;
    }
    int64_t naive;
    if (j->type == WM_JSON_STRING && wm__parse_datetime(j->u.str, j->len, &naive)) {
        *ms = naive - tz_ms;
        return true;
    }
    return false;
}

uint64_t wm__stable_hash(const char *s, size_t n)
{
    /* FNV-1a byte by byte (endian-free, so blobs mean the same on any host)
     * finished with a splitmix64 avalanche so that any of its bits can index
     * a hash table (hset.c). */
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}
