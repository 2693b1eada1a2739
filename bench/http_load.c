/*
 * http_load.c - HTTP ingest load generator for the Sensors endpoint.
 *
 * Reads NDJSON records (from `waymark gen`), packs them into gzip batches
 * the way the server SDKs send them (data_list=base64(gzip(JSON array)),
 * gzip=1), and posts them over keep-alive connections from several threads
 * until every batch was sent once or the time is up. Prints throughput and
 * acknowledgement latency
 * percentiles; the checksum is the number of records the server accepted.
 *
 * usage: http_load HOST:PORT FILE [-c CONNECTIONS] [-t SECONDS] [-b BATCH] [-n MAX_RECORDS]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "waymark/buf.h"
#include "waymark/ingest.h"

typedef struct body {
    char *data;
    size_t len;
    uint32_t records;
} body_t;

static body_t *bodies;
static size_t n_bodies;
static struct sockaddr_in addr;
static char host_hdr[128];
static double run_seconds = 10;
static _Atomic int stop;
static _Atomic uint64_t records_acked, requests_ok, requests_failed;
/* Each batch is sent once: a resent batch would be recognised as a client
 * retry and dropped cheaply by the dedup window, flattering the figure. */
static _Atomic size_t next_body;

#define LAT_MAX (1u << 22)
static double *lat_us;
static _Atomic uint32_t n_lat;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int gzip_bytes(const char *in, size_t n, wm_buf_t *out)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    size_t cap = deflateBound(&z, n) + 32;
    if (wm_buf_reserve(out, cap))
        return -1;
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)out->data;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    out->len = z.total_out;
    deflateEnd(&z);
    return rc == Z_STREAM_END ? 0 : -1;
}

static void urlencode(wm_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            wm_buf_putc(b, (char)c);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            wm_buf_append(b, e, 3);
        }
    }
}

static void add_body(wm_buf_t *json, uint32_t records)
{
    wm_buf_t gz, b64, form;
    wm_buf_init(&gz, 0);
    wm_buf_init(&b64, 0);
    wm_buf_init(&form, 0);
    gzip_bytes(json->data, json->len, &gz);
    wm_base64_encode(&b64, gz.data, gz.len);
    wm_buf_puts(&form, "data_list=");
    urlencode(&form, b64.data, b64.len);
    wm_buf_puts(&form, "&gzip=1");
    bodies = realloc(bodies, (n_bodies + 1) * sizeof *bodies);
    bodies[n_bodies].data = form.data;
    bodies[n_bodies].len = form.len;
    bodies[n_bodies].records = records;
    n_bodies++;
    wm_buf_release(&gz);
    wm_buf_release(&b64);
}

static int load(const char *path, uint32_t batch, uint64_t max_records)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    wm_buf_t json;
    wm_buf_init(&json, 0);
    uint32_t in = 0;
    uint64_t total = 0;
    while ((len = getline(&line, &cap, f)) > 0 && total < max_records) {
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        if (!len)
            continue;
        wm_buf_putc(&json, in ? ',' : '[');
        wm_buf_append(&json, line, (size_t)len);
        total++;
        if (++in == batch) {
            wm_buf_putc(&json, ']');
            add_body(&json, in);
            wm_buf_reset(&json);
            in = 0;
        }
    }
    if (in) {
        wm_buf_putc(&json, ']');
        add_body(&json, in);
    }
    wm_buf_release(&json);
    free(line);
    fclose(f);
    return n_bodies ? 0 : -1;
}

static int connect_one(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr)) {
        close(fd);
        return -1;
    }
    return fd;
}

static int write_all(int fd, const char *p, size_t n)
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

/* Reads one HTTP response; returns the status or -1. */
static int read_response(int fd, char *buf, size_t cap)
{
    size_t have = 0;
    char *hdr_end = NULL;
    while (!hdr_end) {
        ssize_t r = read(fd, buf + have, cap - have - 1);
        if (r <= 0)
            return -1;
        have += (size_t)r;
        buf[have] = '\0';
        hdr_end = strstr(buf, "\r\n\r\n");
        if (!hdr_end && have >= cap - 1)
            return -1;
    }
    int status = atoi(buf + 9);
    const char *cl = strcasestr(buf, "Content-Length:");
    size_t body = cl ? (size_t)atol(cl + 15) : 0;
    size_t got = have - (size_t)(hdr_end + 4 - buf);
    while (got < body) {
        char tmp[4096];
        ssize_t r = read(fd, tmp, sizeof tmp < body - got ? sizeof tmp : body - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return status;
}

static void *client(void *arg)
{
    (void)arg;
    int fd = connect_one();
    char head[512], resp[8192];
    while (!atomic_load(&stop)) {
        if (fd < 0 && (fd = connect_one()) < 0) {
            usleep(1000);
            continue;
        }
        size_t idx = atomic_fetch_add(&next_body, 1);
        if (idx >= n_bodies) {
            atomic_store(&stop, 1);
            break;
        }
        body_t *b = &bodies[idx];
        int hl = snprintf(head, sizeof head,
                          "POST /sa?project=default HTTP/1.1\r\nHost: %s\r\n"
                          "Content-Type: application/x-www-form-urlencoded\r\n"
                          "Content-Length: %zu\r\n\r\n",
                          host_hdr, b->len);
        double t0 = now();
        if (write_all(fd, head, (size_t)hl) || write_all(fd, b->data, b->len)) {
            close(fd);
            fd = -1;
            atomic_fetch_add(&requests_failed, 1);
            continue;
        }
        int st = read_response(fd, resp, sizeof resp);
        double us = (now() - t0) * 1e6;
        if (st == 200) {
            atomic_fetch_add(&requests_ok, 1);
            atomic_fetch_add(&records_acked, b->records);
            uint32_t i = atomic_fetch_add(&n_lat, 1);
            if (i < LAT_MAX)
                lat_us[i] = us;
        } else {
            atomic_fetch_add(&requests_failed, 1);
            if (st < 0) {
                close(fd);
                fd = -1;
            }
        }
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: http_load HOST:PORT FILE [-c CONN] [-t SECONDS] [-b BATCH] [-n MAX]\n");
        return 2;
    }
    int conns = 8;
    uint32_t batch = 50;
    uint64_t max_records = 500000;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-c")) conns = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-t")) run_seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "-b")) batch = (uint32_t)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-n")) max_records = strtoull(argv[i + 1], NULL, 10);
    }
    snprintf(host_hdr, sizeof host_hdr, "%s", argv[1]);
    char *colon = strrchr(host_hdr, ':');
    if (!colon)
        return 2;
    *colon = '\0';
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)atoi(colon + 1));
    inet_pton(AF_INET, host_hdr, &addr.sin_addr);
    *colon = ':';
    if (load(argv[2], batch, max_records)) {
        fprintf(stderr, "http_load: cannot read records from %s\n", argv[2]);
        return 1;
    }
    lat_us = malloc(sizeof *lat_us * LAT_MAX);
    pthread_t *th = calloc((size_t)conns, sizeof *th);
    double t0 = now();
    for (int i = 0; i < conns; i++)
        pthread_create(&th[i], NULL, client, NULL);
    while (!atomic_load(&stop) && now() - t0 < run_seconds)
        usleep(10000);
    atomic_store(&stop, 1);
    for (int i = 0; i < conns; i++)
        pthread_join(th[i], NULL);
    double el = now() - t0;
    uint32_t n = atomic_load(&n_lat);
    if (n > LAT_MAX)
        n = LAT_MAX;
    qsort(lat_us, n, sizeof *lat_us, cmp_d);
    double p50 = n ? lat_us[n / 2] : 0, p99 = n ? lat_us[(size_t)(n * 0.99)] : 0,
           p999 = n ? lat_us[(size_t)(n * 0.999)] : 0;
    printf("| connections | batch | seconds | events/s | requests/s | ack p50 ms | ack p99 ms | ack p99.9 ms | failed |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
    printf("| %d | %u | %.1f | %.0f | %.0f | %.2f | %.2f | %.2f | %llu |\n", conns, batch, el,
           atomic_load(&records_acked) / el, atomic_load(&requests_ok) / el, p50 / 1000,
           p99 / 1000, p999 / 1000, (unsigned long long)atomic_load(&requests_failed));
    printf("checksum: %llu records acknowledged\n", (unsigned long long)atomic_load(&records_acked));
    return 0;
}
