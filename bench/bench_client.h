/*
 * bench_client.h - the small HTTP/1.1 client the journey benchmarks share
 * (bench/trigger_latency.c, bench/journey_entries.c): keep-alive connections
 * to `waymark serve` on loopback, Sensors /sa bodies the way the server SDKs
 * send them (data_list=base64(gzip(JSON array)), gzip=1), management API
 * calls with the admin key, and the few /proc and file-size probes the
 * benchmarks report.
 *
 * Why a header of static functions: the Makefile links one source file per
 * benchmark (bench/NAME.c -> BUILD/bench/NAME), so shared benchmark code is
 * #included, as bench/dispatch_latency.c does with the test receiver. Why a
 * hand-written client and not libcurl: the load threads must cost the shared
 * two cores as little as possible, and one write + one read per request on a
 * blocking socket is the cheapest client there is.
 *
 * Benchmark code: plain malloc through wm_buf, exits on setup errors.
 */
#ifndef WM_BENCH_CLIENT_H
#define WM_BENCH_CLIENT_H

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "waymark/buf.h"
#include "waymark/ingest.h"

#define BC_HEAD_MAX 8192            /* response headers we accept */
#define BC_BODY_MAX (64u << 20)     /* response bodies we accept (reports are small) */

typedef struct bc_conn {
    struct sockaddr_in addr;
    char host[64];                  /* "127.0.0.1:PORT" for the Host header */
    const char *key;                /* admin key for /api/v1 calls */
    int fd;
} bc_conn_t;

static inline double bc_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Wall clock, the clock the receiver stamps arrivals with. */
static inline int64_t bc_real_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline void bc_sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) && errno == EINTR)
        ;
}

/* "HOST:PORT" -> conn (not yet connected). Returns 0 or -1. */
static inline int bc_init(bc_conn_t *c, const char *hostport, const char *key)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->key = key;
    size_t hl = strlen(hostport);
    if (hl >= sizeof c->host)
        return -1;
    memcpy(c->host, hostport, hl + 1);
    char ip[sizeof c->host];
    memcpy(ip, hostport, hl + 1);
    char *colon = strrchr(ip, ':');
    if (!colon)
        return -1;
    *colon = '\0';
    c->addr.sin_family = AF_INET;
    c->addr.sin_port = htons((uint16_t)atoi(colon + 1));
    return inet_pton(AF_INET, ip, &c->addr.sin_addr) == 1 ? 0 : -1;
}

static inline void bc_close(bc_conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static inline int bc_connect(bc_conn_t *c)
{
    if (c->fd >= 0)
        return 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&c->addr, sizeof c->addr)) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    return 0;
}

static inline int bc_write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads exactly n body bytes, the first `have` of which are already in pre. */
static inline int bc_read_body(int fd, const char *pre, size_t have, size_t n, wm_buf_t *out)
{
    if (n > BC_BODY_MAX)
        return -1;
    size_t take = have < n ? have : n;
    if (out)
        wm_buf_append(out, pre, take);
    char tmp[16384];
    for (size_t got = take; got < n;) {
        size_t want = n - got < sizeof tmp ? n - got : sizeof tmp;
        ssize_t r = read(fd, tmp, want);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        if (out)
            wm_buf_append(out, tmp, (size_t)r);
        got += (size_t)r;
    }
    return 0;
}

/* One response: status, or -1 when the connection broke. The server answers
 * with Content-Length (libmicrohttpd buffer responses); a response without
 * one is not expected and treated as a broken connection. */
static inline int bc_read_response(bc_conn_t *c, wm_buf_t *body)
{
    char buf[BC_HEAD_MAX];
    size_t have = 0;
    char *end = NULL;
    while (!end) {
        if (have >= sizeof buf - 1)
            return -1;
        ssize_t r = read(c->fd, buf + have, sizeof buf - 1 - have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        have += (size_t)r;
        buf[have] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    int status = have > 12 ? atoi(buf + 9) : -1;
    *end = '\0';
    const char *cl = strcasestr(buf, "\r\nContent-Length:");
    if (!cl)
        return -1;
    size_t n = (size_t)strtoull(cl + 17, NULL, 10);
    size_t off = (size_t)(end + 4 - buf);
    return bc_read_body(c->fd, buf + off, have - off, n, body) ? -1 : status;
}

/* Sends one request on the keep-alive connection (connecting, and once
 * reconnecting, as needed). Returns the HTTP status or -1. body_out may be
 * NULL (the answer is read and dropped). */
static inline int bc_request(bc_conn_t *c, const char *method, const char *path, const char *ctype,
                      const char *body, size_t len, wm_buf_t *body_out)
{
    char head[1024];
    bool auth = c->key && !strncmp(path, "/api/", 5);
    int hl = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, path, c->host);
    if (auth && hl > 0 && (size_t)hl < sizeof head)
        hl += snprintf(head + hl, sizeof head - (size_t)hl, "Authorization: Bearer %s\r\n", c->key);
    if (ctype && hl > 0 && (size_t)hl < sizeof head)
        hl += snprintf(head + hl, sizeof head - (size_t)hl, "Content-Type: %s\r\n", ctype);
    if (hl > 0 && (size_t)hl < sizeof head)
        hl += snprintf(head + hl, sizeof head - (size_t)hl, "Content-Length: %zu\r\n\r\n", len);
    if (hl < 0 || (size_t)hl >= sizeof head)
        return -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (bc_connect(c))
            return -1;
        if (body_out)
            wm_buf_reset(body_out);
        if (!bc_write_all(c->fd, head, (size_t)hl) && !bc_write_all(c->fd, body ? body : "", len)) {
            int st = bc_read_response(c, body_out);
            if (st >= 0)
                return st;
        }
        bc_close(c);
    }
    return -1;
}

/* Management API call with a JSON body (or none). */
static inline int bc_api(bc_conn_t *c, const char *method, const char *path, const char *json, wm_buf_t *out)
{
    return bc_request(c, method, path, json ? "application/json" : NULL, json, json ? strlen(json) : 0, out);
}

/* Like bc_api but exits the benchmark when the answer is not 2xx: the setup
 * calls must work or the figures mean nothing. */
static inline void bc_api_must(bc_conn_t *c, const char *method, const char *path, const char *json)
{
    wm_buf_t out;
    wm_buf_init(&out, 0);
    int st = bc_api(c, method, path, json, &out);
    if (st < 200 || st > 299) {
        fprintf(stderr, "bench: %s %s -> %d %.*s\n", method, path, st, (int)out.len, out.data ? out.data : "");
        exit(1);
    }
    wm_buf_release(&out);
}

static inline int bc_gzip(const char *in, size_t n, wm_buf_t *out)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    /* level 1: the load threads share two cores with the server */
    if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    size_t cap = deflateBound(&z, n) + 32;
    if (wm_buf_reserve(out, cap)) {
        deflateEnd(&z);
        return -1;
    }
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)out->data;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    out->len = z.total_out;
    deflateEnd(&z);
    return rc == Z_STREAM_END ? 0 : -1;
}

static inline void bc_urlencode(wm_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')) {
            wm_buf_putc(b, (char)ch);
        } else {
            char e[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            wm_buf_append(b, e, 3);
        }
    }
}

/* JSON array text -> the form body of a Sensors /sa POST. */
static inline int bc_sa_form(const wm_buf_t *json, wm_buf_t *form)
{
    wm_buf_t gz, b64;
    wm_buf_init(&gz, 0);
    wm_buf_init(&b64, 0);
    int rc = bc_gzip(json->data, json->len, &gz);
    if (!rc)
        wm_base64_encode(&b64, gz.data, gz.len);
    wm_buf_reset(form);
    wm_buf_puts(form, "data_list=");
    if (!rc)
        bc_urlencode(form, b64.data, b64.len);
    wm_buf_puts(form, "&gzip=1");
    rc = rc || b64.err || form->err ? -1 : 0;
    wm_buf_release(&gz);
    wm_buf_release(&b64);
    return rc;
}

/* Posts a JSON array of Sensors records; returns the HTTP status or -1. */
static inline int bc_sa_post(bc_conn_t *c, const wm_buf_t *json, wm_buf_t *scratch)
{
    if (bc_sa_form(json, scratch))
        return -1;
    return bc_request(c, "POST", "/sa?project=default", "application/x-www-form-urlencoded", scratch->data,
                      scratch->len, NULL);
}

/* The integer after "key": in a JSON text, searching from `from`; -1 if absent.
 * Enough for the flat counters of the journey report. */
static inline long long bc_json_int(const char *from, const char *key)
{
    char pat[96];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = from ? strstr(from, pat) : NULL;
    return p ? strtoll(p + strlen(pat), NULL, 10) : -1;
}

/* VmRSS (or another /proc/PID/status field) in kB; -1 when unreadable. */
static inline long long bc_proc_kb(long pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long long kb = -1;
    size_t fl = strlen(field);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, fl) && line[fl] == ':')
            kb = strtoll(line + fl + 1, NULL, 10);
    fclose(f);
    return kb;
}

/* Apparent bytes (`du -sb`) of the files under dir whose name is `only`
 * (NULL = every file). */
static inline long long bc_dir_bytes(const char *dir, const char *only)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    long long sum = 0;
    struct dirent *e;
    char path[4096];
    struct stat st;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        int pl = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (pl < 0 || (size_t)pl >= sizeof path || lstat(path, &st))
            continue;
        if (S_ISDIR(st.st_mode))
            sum += bc_dir_bytes(path, only);
        else if (S_ISREG(st.st_mode) && (!only || !strcmp(e->d_name, only)))
            sum += st.st_size;
    }
    closedir(d);
    return sum;
}

static inline int bc_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* q-quantile of a sorted array (nearest rank). */
static inline double bc_quantile(const double *v, size_t n, double q)
{
    if (!n)
        return 0;
    size_t i = (size_t)(q * (double)n);
    return v[i < n ? i : n - 1];
}

#endif
