/*
 * tz.c - IANA time zones from the system's compiled TZif files, and fixed
 * offsets.
 *
 * Why not localtime_r/TZ: the process serves users in many zones at once,
 * and the C library only knows one zone per process (setenv("TZ") is neither
 * thread-safe nor cheap). Reading TZif ourselves gives a per-zone table we
 * can binary-search from any thread.
 *
 * What is read: the version 2+ 64-bit data block (transition instants, the
 * local time type of each, and the types' UTC offsets). The POSIX TZ footer
 * string is ignored: instants after the last listed transition use the last
 * transition's offset. Debian's tzdata ships "fat" files whose tables run to
 * 2037, so rules are exact until then; beyond it a DST zone stays on its last
 * listed offset (docs/conditions.md "Time zones"). Instants before the first
 * transition use local time type 0 (RFC 8536 3.2).
 *
 * Zones are loaded once and cached for the life of the process under a
 * mutex; a returned zone is immutable, so readers need no lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rules/rules_internal.h"
#include "waymark/alloc.h"
#include "waymark/error.h"
#include "waymark/limits.h"
#include "waymark/rules.h"

#define TZ_NAME_MAX 64
/* The largest zone file in tzdata is ~4 KB (fat); 1 MB rejects junk early. */
#define TZIF_BYTES_MAX (1u << 20)

struct wm_tz {
    char name[TZ_NAME_MAX];
    int32_t before_off_s;   /* offset before the first transition */
    uint32_t n;             /* transitions */
    int64_t *at_s;          /* transition instants (UTC seconds), ascending */
    int32_t *off_s;         /* UTC offset in force from at_s[i] */
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static wm_tz_t *cache[WM_TZ_CACHE_MAX];
static uint32_t cache_n;

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

typedef struct tzif_counts {
    uint32_t isut, isstd, leap, time, type, chars;
} tzif_counts_t;

static bool read_header(const unsigned char *p, size_t len, tzif_counts_t *c)
{
    if (len < 44 || memcmp(p, "TZif", 4) != 0)
        return false;
    c->isut = be32(p + 20);
    c->isstd = be32(p + 24);
    c->leap = be32(p + 28);
    c->time = be32(p + 32);
    c->type = be32(p + 36);
    c->chars = be32(p + 40);
    return c->type >= 1 && c->type <= 256 && c->time <= 100000 && c->leap <= 100000 &&
           c->chars <= 100000 && c->isut <= 256 && c->isstd <= 256;
}

static size_t block_bytes(const tzif_counts_t *c, size_t time_size)
{
    return (size_t)c->time * time_size + c->time + (size_t)c->type * 6 + c->chars +
           (size_t)c->leap * (time_size + 4) + c->isstd + c->isut;
}

/* Parses the 64-bit block at p (after its header) into tz. */
static int load_block(wm_tz_t *tz, const unsigned char *p, size_t len, const tzif_counts_t *c)
{
    if (block_bytes(c, 8) > len)
        return WM_ECORRUPT;
    const unsigned char *times = p;
    const unsigned char *idx = times + (size_t)c->time * 8;
    const unsigned char *types = idx + c->time;
    tz->before_off_s = (int32_t)be32(types);
    tz->n = c->time;
    tz->at_s = wm_malloc(sizeof(int64_t) * (c->time ? c->time : 1));
    tz->off_s = wm_malloc(sizeof(int32_t) * (c->time ? c->time : 1));
    if (!tz->at_s || !tz->off_s)
        return WM_ENOMEM;
    for (uint32_t i = 0; i < c->time; i++) {
        tz->at_s[i] = be64(times + (size_t)i * 8);
        if (i > 0 && tz->at_s[i] <= tz->at_s[i - 1])
            return WM_ECORRUPT;
        if (idx[i] >= c->type)
            return WM_ECORRUPT;
        int32_t off = (int32_t)be32(types + (size_t)idx[i] * 6);
        if (off < -26 * 3600 || off > 26 * 3600)
            return WM_ECORRUPT;
        tz->off_s[i] = off;
    }
    return 0;
}

static int parse_tzif(wm_tz_t *tz, const unsigned char *p, size_t len)
{
    tzif_counts_t c1, c2;
    if (!read_header(p, len, &c1))
        return WM_ECORRUPT;
    if (p[4] < '2')
        return WM_EUNSUPPORTED; /* v1-only files predate 2005 */
    size_t v1 = 44 + block_bytes(&c1, 4);
    if (v1 > len || !read_header(p + v1, len - v1, &c2))
        return WM_ECORRUPT;
    return load_block(tz, p + v1 + 44, len - v1 - 44, &c2);
}

static int read_file(const char *path, unsigned char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR ? WM_ENOTFOUND : WM_EIO;
    unsigned char *buf = wm_malloc(TZIF_BYTES_MAX);
    if (!buf) {
        close(fd);
        return WM_ENOMEM;
    }
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, TZIF_BYTES_MAX - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            close(fd);
            if (r < 0) {
                wm_free(buf);
                return WM_EIO;
            }
            break;
        }
        n += (size_t)r;
        if (n == TZIF_BYTES_MAX) {
            close(fd);
            wm_free(buf);
            return WM_ELIMIT;
        }
    }
    *out = buf;
    *len = n;
    return 0;
}

static bool valid_zone_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= TZ_NAME_MAX || name[0] == '/' || strstr(name, ".."))
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '+' || ch == '/';
        if (!ok)
            return false;
    }
    return true;
}

/* "+08:00" "+0800" "+08" "-05:30" and "UTC"/"GMT"/"Z" -> seconds east. */
static bool parse_fixed(const char *s, int32_t *off_s)
{
    if (!strcmp(s, "UTC") || !strcmp(s, "GMT") || !strcmp(s, "Z")) {
        *off_s = 0;
        return true;
    }
    if (s[0] != '+' && s[0] != '-')
        return false;
    int sign = s[0] == '-' ? -1 : 1;
    const char *p = s + 1;
    size_t n = strlen(p);
    int h, m = 0;
    bool ok;
    if (n == 2)
        ok = sscanf(p, "%2d", &h) == 1;
    else if (n == 4)
        ok = p[0] >= '0' && p[0] <= '9' && p[2] >= '0' && p[2] <= '9' && sscanf(p, "%2d%2d", &h, &m) == 2;
    else if (n == 5 && p[2] == ':')
        ok = p[3] >= '0' && p[3] <= '9' && sscanf(p, "%2d:%2d", &h, &m) == 2;
    else
        ok = false;
    for (size_t i = 0; ok && i < n; i++)
        ok = (p[i] >= '0' && p[i] <= '9') || p[i] == ':';
    if (!ok || h > 18 || m > 59)
        return false;
    *off_s = sign * (h * 3600 + m * 60);
    return true;
}

static void tz_destroy(wm_tz_t *tz)
{
    if (!tz)
        return;
    wm_free(tz->at_s);
    wm_free(tz->off_s);
    wm_free(tz);
}

static int load_zone(const char *name, wm_tz_t **out)
{
    wm_tz_t *tz = wm_calloc(1, sizeof *tz);
    if (!tz)
        return WM_ENOMEM;
    snprintf(tz->name, sizeof tz->name, "%s", name);
    if (parse_fixed(name, &tz->before_off_s)) {
        *out = tz;
        return 0;
    }
    if (!valid_zone_name(name)) {
        wm_free(tz);
        return WM_EINVAL;
    }
    const char *dir = getenv("TZDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", name);
    unsigned char *buf = NULL;
    size_t len = 0;
    int rc = read_file(path, &buf, &len);
    if (rc == 0)
        rc = parse_tzif(tz, buf, len);
    wm_free(buf);
    if (rc != 0) {
        tz_destroy(tz);
        return rc;
    }
    *out = tz;
    return 0;
}

int wm_tz_get(const char *name, const wm_tz_t **out)
{
    if (!name || !out)
        return WM_EINVAL;
    if (strlen(name) >= TZ_NAME_MAX)
        return WM_EINVAL;
    pthread_mutex_lock(&cache_lock);
    for (uint32_t i = 0; i < cache_n; i++) {
        if (strcmp(cache[i]->name, name) == 0) {
            *out = cache[i];
            pthread_mutex_unlock(&cache_lock);
            return 0;
        }
    }
    int rc = WM_ELIMIT;
    wm_tz_t *tz = NULL;
    if (cache_n < WM_TZ_CACHE_MAX)
        rc = load_zone(name, &tz);
    if (rc == 0) {
        cache[cache_n++] = tz;
        *out = tz;
    }
    pthread_mutex_unlock(&cache_lock);
    return rc;
}

const char *wm_tz_name(const wm_tz_t *tz)
{
    return tz ? tz->name : "";
}

static int32_t offset_s_at(const wm_tz_t *tz, int64_t t)
{
    if (tz->n == 0 || t < tz->at_s[0])
        return tz->before_off_s;
    uint32_t lo = 0, hi = tz->n; /* invariant: at_s[lo] <= t, answer in [lo, hi) */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (tz->at_s[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return tz->off_s[lo];
}

int wm_tz_offset_min(const wm_tz_t *tz, int64_t utc_ms)
{
    if (!tz)
        return 0;
    return (int)wm__floor_div(offset_s_at(tz, wm__floor_div(utc_ms, 1000)), 60);
}

int64_t wm_tz_local_to_utc(const wm_tz_t *tz, int y, int mon, int d, int h, int min, int s)
{
    /* carry months into years so the civil-date arithmetic sees 1..12 */
    int64_t ym = (int64_t)y * 12 + (mon - 1);
    int64_t yy = wm__floor_div(ym, 12);
    int mm = (int)(ym - yy * 12) + 1;
    int64_t naive = wm__days_from_civil(yy, mm, 1) * 86400 + (int64_t)(d - 1) * 86400 +
                    (int64_t)h * 3600 + (int64_t)min * 60 + s;
    if (!tz)
        return naive * 1000;
    /* The offsets in force a day either side of the wall time cover every
     * real zone's transitions (none change twice within 48 h). */
    int32_t before = offset_s_at(tz, naive - 86400);
    int32_t after = offset_s_at(tz, naive + 86400);
    int64_t u1 = naive - before, u2 = naive - after;
    bool ok1 = offset_s_at(tz, u1) == before, ok2 = offset_s_at(tz, u2) == after;
    int64_t u;
    if (ok1 && ok2)
        u = u1 < u2 ? u1 : u2;  /* overlap: the first occurrence */
    else if (ok1)
        u = u1;
    else if (ok2)
        u = u2;
    else
        u = u1;                 /* gap: read with the earlier offset, i.e. pushed forward */
    return u * 1000;
}

int32_t wm_tz_local_day(const wm_tz_t *tz, int64_t utc_ms)
{
    int64_t local = utc_ms + (int64_t)wm_tz_offset_min(tz, utc_ms) * 60000;
    return (int32_t)wm__floor_div(local, WM__DAY_MS);
}

int32_t wm_cond_day(int64_t utc_ms, int tz_offset_min)
{
    return (int32_t)wm__floor_div(utc_ms + (int64_t)tz_offset_min * 60000, WM__DAY_MS);
}
