/*
 * dispatch_latency.c - message dispatcher throughput and submit->delivered
 * latency against an in-process HTTP receiver on 127.0.0.1.
 *
 *   dispatch_latency [-n "1000 10000 50000"] [-f "16 64"]
 *
 * Each row opens a fresh receiver (libmicrohttpd, one epoll thread, answers
 * 200 at once) and a fresh dispatcher, then submits N signed webhook
 * messages (wm_dispatch_shape bodies, ~230 bytes) from one thread, keeping at
 * most 2 x in-flight outstanding: the dispatcher always has work queued but
 * the latency is that of a loaded dispatcher, not of a 50k-deep backlog.
 * Latency is measured per message from just before wm_dispatcher_submit to
 * the done callback (CLOCK_MONOTONIC); msgs/s is N over the time from the
 * first submit to the last callback. checksum = messages reported DELIVERED
 * (must equal N); conns = TCP connections the receiver accepted (keep-alive
 * reuse keeps it at most in-flight).
 *
 * Receiver and dispatcher share the machine's cores, as a provider on
 * loopback would; the figures are the dispatcher's ceiling, not a provider's.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../tests/unit/dispatch/receiver.c"
#include "waymark/buf.h"
#include "waymark/dispatch.h"

typedef struct run {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t done, delivered;
    bool waiting;
    int64_t *t0_ns, *lat_ns;
} run_t;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void on_done(void *ctx, const wm_dispatch_result_t *r)
{
    run_t *run = ctx;
    size_t i = (size_t)(uintptr_t)r->user;
    int64_t t = now_ns();
    pthread_mutex_lock(&run->mu);
    run->lat_ns[i] = t - run->t0_ns[i];
    run->done++;
    if (r->outcome == WM_DISPATCH_DELIVERED)
        run->delivered++;
    if (run->waiting)
        pthread_cond_signal(&run->cv);
    pthread_mutex_unlock(&run->mu);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double pct_us(const int64_t *sorted, size_t n, double p)
{
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)sorted[i] / 1000.0;
}

static void wait_below(run_t *run, size_t submitted, size_t window)
{
    pthread_mutex_lock(&run->mu);
    while (submitted - run->done >= window) {
        run->waiting = true;
        pthread_cond_wait(&run->cv, &run->mu);
    }
    run->waiting = false;
    pthread_mutex_unlock(&run->mu);
}

static void wait_all(run_t *run, size_t n) { wait_below(run, n, 1); }

static int one_row(size_t n, uint32_t in_flight)
{
    receiver_t *rcv;
    if (receiver_open(&rcv, false, false) != 0) {
        fprintf(stderr, "receiver failed to start\n");
        return 1;
    }
    char url[128];
    receiver_url(rcv, "/hook", url, sizeof url);
    run_t run = {.t0_ns = calloc(n, sizeof(int64_t)), .lat_ns = calloc(n, sizeof(int64_t))};
    pthread_mutex_init(&run.mu, NULL);
    pthread_cond_init(&run.cv, NULL);
    wm_dispatch_opts_t o = {.max_in_flight = in_flight, .done = on_done, .done_ctx = &run};
    wm_dispatcher_t *d;
    if (!run.t0_ns || !run.lat_ns || wm_dispatcher_open(&o, &d) != 0) {
        fprintf(stderr, "dispatcher failed to open\n");
        return 1;
    }
    wm_buf_t body;
    wm_buf_init(&body, 0);
    int64_t start = now_ns();
    for (size_t i = 0; i < n; i++) {
        char id[64];
        snprintf(id, sizeof id, "bench-%zu-%u-%zu", n, in_flight, i);
        wm_dispatch_content_t c = {.message_id = id, .user_id = "c00001234", .channel = "bench",
                                   .title = "Fund update", .text = "Your fund F001 paid a dividend.",
                                   .journey = "dividend", .node = "n2",
                                   .extra = "{\"fund\":\"F001\",\"amount\":12.5}"};
        wm_buf_reset(&body);
        wm_dispatch_shape(WM_CH_WEBHOOK, &c, &body);
        wm_dispatch_msg_t m = {.id = id, .channel = "bench", .kind = WM_CH_WEBHOOK, .url = url,
                               .secret = "bench-secret", .body = body.data,
                               .body_len = body.len, .user = (void *)(uintptr_t)i};
        wait_below(&run, i, 2 * (size_t)in_flight);
        run.t0_ns[i] = now_ns();
        if (wm_dispatcher_submit(d, &m) != 0) {
            fprintf(stderr, "submit failed\n");
            return 1;
        }
    }
    wait_all(&run, n);
    double secs = (double)(now_ns() - start) / 1e9;
    wm_dispatcher_close(d);
    size_t conns = receiver_connections(rcv);
    receiver_close(rcv);
    qsort(run.lat_ns, n, sizeof(int64_t), cmp_i64);
    printf("%-8zu %-9u %-8.3f %-10.0f %-9.0f %-9.0f %-9.0f %-6zu %zu\n", n, in_flight, secs,
           (double)n / secs, pct_us(run.lat_ns, n, 0.50), pct_us(run.lat_ns, n, 0.99),
           pct_us(run.lat_ns, n, 0.999), conns, run.delivered);
    wm_buf_release(&body);
    free(run.t0_ns);
    free(run.lat_ns);
    pthread_mutex_destroy(&run.mu);
    pthread_cond_destroy(&run.cv);
    return run.delivered == n ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *sizes = "1000 10000 50000", *flights = "16 64";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "-n") == 0)
            sizes = argv[i + 1];
        else if (strcmp(argv[i], "-f") == 0)
            flights = argv[i + 1];
    }
    printf("%-8s %-9s %-8s %-10s %-9s %-9s %-9s %-6s %s\n", "messages", "in_flight", "seconds",
           "msgs/s", "p50_us", "p99_us", "p99.9_us", "conns", "checksum");
    int rc = 0;
    char *s_copy = strdup(sizes), *save_s = NULL;
    for (char *s = strtok_r(s_copy, " ,", &save_s); s; s = strtok_r(NULL, " ,", &save_s)) {
        char *f_copy = strdup(flights), *save_f = NULL;
        for (char *f = strtok_r(f_copy, " ,", &save_f); f; f = strtok_r(NULL, " ,", &save_f))
            rc |= one_row((size_t)strtoull(s, NULL, 10), (uint32_t)strtoul(f, NULL, 10));
        free(f_copy);
    }
    free(s_copy);
    return rc;
}
