/*
 * trigger_latency.c - event acknowledged -> webhook received, end to end
 * through a running `waymark serve`, under a steady background event load
 * (DESIGN.md §10: p50 < 2 ms, p99 < 10 ms under load).
 *
 *   trigger_latency -u http://127.0.0.1:PORT [-n TRIGGERS] [-r BG_EVENTS_PER_S]
 *                   [-c BG_CONNECTIONS] [-w WARMUP] [-k ADMIN_KEY] [-s 1]
 *
 * It starts no server (bench/run-all does, with --fsync always and a fresh
 * data directory). It opens an in-process receiver (libmicrohttpd, the
 * dispatcher tests' receiver), then over the management API points a webhook
 * channel "hook" at it, saves a template whose text is the trigger's unique
 * tag, and publishes the journey  entry Trigger (reentry any_time) -> send on
 * hook -> exit, with no quiet hours, no caps, in the default project. Then,
 * while background threads post ordinary events (gzip batches of 50 to /sa,
 * paced to -r events/s over -c connections), it posts Trigger events one at a
 * time, each for a new distinct_id and with a unique tag, notes the wall
 * clock when the HTTP 200 came back, and waits for the webhook whose text is
 * that tag. The figure is (webhook fully received at the receiver) -
 * (acknowledgement read by the client), both CLOCK_REALTIME in this process.
 * It can be negative: the partition writer wakes the HTTP thread after the
 * fsync and applies the batch (journey, outbox, dispatch) at the same time,
 * so the webhook may overtake the 200. sent = webhook - start of the POST.
 *
 * With -s the path goes through a segment: the Trigger event makes its
 * customer enter the segment "did Trigger within 1 day" (and sets the last
 * tag bench_last_tag = the trigger's tag), the $SegmentEntered that this
 * writes enters the journey (entry: segment), whose message text is
 * {{tag.bench_last_tag}}: event -> segment membership -> $SegmentEntered in
 * the log -> journey -> webhook.
 *
 * Triggers go one at a time so each latency is that of an idle journey path
 * on a loaded server, not of a queue of triggers. The first -w triggers warm
 * connections and caches and are not counted. checksum = webhooks matched
 * (must equal -n).
 */
#include <pthread.h>
#include <stdatomic.h>

#include "../tests/unit/dispatch/receiver.c"
#include "bench_client.h"

#define BG_BATCH 50
#define BG_USERS 100000              /* distinct background users, reused */
#define BG_CONN_MAX 64
#define TRIGGER_TIMEOUT_S 5.0        /* a trigger whose webhook is later counts as lost */
#define JOURNEY_KEY "bench_trigger"

typedef struct opts {
    const char *hostport;
    const char *key;
    uint32_t triggers, warmup;
    double bg_rate;
    int bg_conns;
    bool segment;               /* -s 1: through a segment entry */
} opts_t;

static opts_t o = {.key = "wm_bench_admin_key", .triggers = 2000, .warmup = 50, .bg_rate = 20000,
                   .bg_conns = 4};
static _Atomic int bg_stop;
static _Atomic uint64_t bg_acked, bg_failed;
static uint32_t run_id;

/* Per trigger: when its webhook arrived (0 = not yet), by tag number. */
static _Atomic int64_t *arrived_us;
static uint32_t n_tags;

/* ---- background load ---- */

static void bg_batch(wm_buf_t *json, uint32_t thread, uint64_t seq)
{
    wm_buf_reset(json);
    int64_t ms = bc_real_us() / 1000;
    for (int i = 0; i < BG_BATCH; i++) {
        uint64_t n = seq * BG_BATCH + (uint64_t)i;
        wm_buf_printf(json,
                      "%c{\"type\":\"track\",\"event\":\"BgView\",\"distinct_id\":\"bg%llu\",\"time\":%lld,"
                      "\"properties\":{\"page\":\"p%llu\",\"n\":%llu,\"src\":\"t%u-%u\"}}",
                      i ? ',' : '[', (unsigned long long)(n * 2654435761u % BG_USERS), (long long)ms,
                      (unsigned long long)(n % 97), (unsigned long long)n, run_id, thread);
    }
    wm_buf_putc(json, ']');
}

static void *bg_thread(void *arg)
{
    uint32_t id = (uint32_t)(uintptr_t)arg;
    bc_conn_t c;
    bc_init(&c, o.hostport, NULL);
    wm_buf_t json, form;
    wm_buf_init(&json, 0);
    wm_buf_init(&form, 0);
    double interval = BG_BATCH * o.bg_conns / o.bg_rate, next = bc_now();
    for (uint64_t seq = id; !atomic_load(&bg_stop); seq += (uint64_t)o.bg_conns) {
        double now = bc_now();
        if (now < next)
            bc_sleep_s(next - now);
        else if (now - next > 1.0)
            next = now; /* open loop, but a stalled server does not build a burst */
        next += interval;
        bg_batch(&json, id, seq);
        if (bc_sa_post(&c, &json, &form) == 200)
            atomic_fetch_add(&bg_acked, BG_BATCH);
        else
            atomic_fetch_add(&bg_failed, 1);
    }
    bc_close(&c);
    wm_buf_release(&json);
    wm_buf_release(&form);
    return NULL;
}

/* ---- receiver matching ---- */

/* Tags are "T<run>-<n>"; the webhook body carries the rendered text. */
static void match_new(receiver_t *rx, size_t *seen)
{
    size_t total = receiver_count(rx);
    char pat[48];
    snprintf(pat, sizeof pat, "\"text\":\"T%u-", run_id);
    for (; *seen < total; (*seen)++) {
        rcv_request_t q;
        if (receiver_get(rx, *seen, &q))
            break;
        const char *p = strstr(q.body, pat);
        if (p) {
            unsigned long n = strtoul(p + strlen(pat), NULL, 10);
            if (n < n_tags && atomic_load(&arrived_us[n]) == 0)
                atomic_store(&arrived_us[n], q.at_real_us);
        }
        rcv_request_free(&q);
    }
}

static bool wait_webhook(receiver_t *rx, size_t *seen, uint32_t tag)
{
    double until = bc_now() + TRIGGER_TIMEOUT_S;
    while (bc_now() < until) {
        match_new(rx, seen);
        if (atomic_load(&arrived_us[tag]))
            return true;
        bc_sleep_s(50e-6); /* the arrival is stamped by the receiver, so polling adds no error */
    }
    return false;
}

/* ---- setup ---- */

/* Waits until a published definition is computed on every partition. */
static void wait_computed(bc_conn_t *api, const char *path)
{
    wm_buf_t b;
    wm_buf_init(&b, 0);
    for (int i = 0; i < 600; i++) {
        wm_buf_reset(&b);
        if (bc_request(api, "GET", path, NULL, NULL, 0, &b) == 200 && b.data &&
            memmem(b.data, b.len, "\"computed\":true", 15))
            break;
        bc_sleep_s(0.05);
    }
    wm_buf_release(&b);
}

static void setup_segment(bc_conn_t *api)
{
    bc_api_must(api, "PUT", "/api/v1/templates/bench_seg_tag",
                "{\"key\":\"bench_seg_tag\",\"channel\":\"hook\",\"title\":\"bench\",\"body\":\"{{tag.bench_last_tag}}\"}");
    bc_api_must(api, "POST", "/api/v1/tags",
                "{\"key\":\"bench_last_tag\",\"kind\":\"last\",\"event\":\"Trigger\",\"field\":\"tag\"}");
    bc_api_must(api, "POST", "/api/v1/tags/bench_last_tag/publish", NULL);
    bc_api_must(api, "POST", "/api/v1/segments",
                "{\"key\":\"bench_trig_seg\",\"condition\":{\"did\":\"Trigger\",\"count\":{\">=\":1},"
                "\"within\":\"1d\"}}");
    bc_api_must(api, "POST", "/api/v1/segments/bench_trig_seg/publish", NULL);
    bc_api_must(api, "POST", "/api/v1/journeys",
                "{\"key\":\"" JOURNEY_KEY "\",\"name\":\"segment trigger latency\","
                "\"entry\":{\"segment\":\"bench_trig_seg\",\"reentry\":\"any_time\"},"
                "\"nodes\":[{\"id\":\"send\",\"type\":\"send\",\"channel\":\"hook\",\"template\":\"bench_seg_tag\","
                "\"next\":\"end\"},{\"id\":\"end\",\"type\":\"exit\"}]}");
    bc_api_must(api, "POST", "/api/v1/journeys/" JOURNEY_KEY "/publish", NULL);
    wait_computed(api, "/api/v1/segments/bench_trig_seg");
    wait_computed(api, "/api/v1/tags/bench_last_tag");
}

static void setup(bc_conn_t *api, receiver_t *rx)
{
    char url[128], body[512];
    receiver_url(rx, "/hook", url, sizeof url);
    snprintf(body, sizeof body, "{\"kind\":\"webhook\",\"url\":\"%s\",\"description\":\"benchmark receiver\"}", url);
    bc_api_must(api, "PUT", "/api/v1/channels/hook", body);
    if (o.segment) {
        setup_segment(api);
        return;
    }
    bc_api_must(api, "PUT", "/api/v1/templates/bench_tag",
                "{\"key\":\"bench_tag\",\"channel\":\"hook\",\"title\":\"bench\",\"body\":\"{{event.tag}}\"}");
    bc_api_must(api, "POST", "/api/v1/journeys",
                "{\"key\":\"" JOURNEY_KEY "\",\"name\":\"trigger latency\","
                "\"entry\":{\"event\":\"Trigger\",\"reentry\":\"any_time\"},"
                "\"nodes\":[{\"id\":\"send\",\"type\":\"send\",\"channel\":\"hook\",\"template\":\"bench_tag\","
                "\"next\":\"end\"},{\"id\":\"end\",\"type\":\"exit\"}]}");
    bc_api_must(api, "POST", "/api/v1/journeys/" JOURNEY_KEY "/publish", NULL);
}

/* ---- triggers ---- */

typedef struct trigger_result {
    double *lat_ms, *ack_ms, *sent_ms;
    uint32_t n, lost, failed;
} trigger_result_t;

/* Posts trigger `tag`; returns the wall time the 200 was read, or 0. */
static int64_t post_trigger(bc_conn_t *c, uint32_t tag, wm_buf_t *json, wm_buf_t *form, double *ack_ms,
                            int64_t *sent_us)
{
    wm_buf_reset(json);
    wm_buf_printf(json,
                  "[{\"type\":\"track\",\"event\":\"Trigger\",\"distinct_id\":\"trig-%u-%u\",\"time\":%lld,"
                  "\"properties\":{\"tag\":\"T%u-%u\"}}]",
                  run_id, tag, (long long)(bc_real_us() / 1000), run_id, tag);
    if (bc_sa_form(json, form))
        return 0;
    int64_t t0 = bc_real_us();
    *sent_us = t0;
    int st = bc_request(c, "POST", "/sa?project=default", "application/x-www-form-urlencoded", form->data,
                        form->len, NULL);
    int64_t t1 = bc_real_us();
    *ack_ms = (double)(t1 - t0) / 1000.0;
    return st == 200 ? t1 : 0;
}

static void run_triggers(receiver_t *rx, trigger_result_t *r)
{
    bc_conn_t c;
    bc_init(&c, o.hostport, NULL);
    wm_buf_t json, form;
    wm_buf_init(&json, 0);
    wm_buf_init(&form, 0);
    size_t seen = 0;
    for (uint32_t tag = 0; tag < n_tags; tag++) {
        double ack_ms = 0;
        int64_t sent = 0, acked = post_trigger(&c, tag, &json, &form, &ack_ms, &sent);
        bool counted = tag >= o.warmup;
        if (!acked) {
            r->failed += counted;
            continue;
        }
        if (!wait_webhook(rx, &seen, tag)) {
            r->lost += counted;
            continue;
        }
        if (counted) {
            r->lat_ms[r->n] = (double)(atomic_load(&arrived_us[tag]) - acked) / 1000.0;
            r->sent_ms[r->n] = (double)(atomic_load(&arrived_us[tag]) - sent) / 1000.0;
            r->ack_ms[r->n++] = ack_ms;
        }
    }
    bc_close(&c);
    wm_buf_release(&json);
    wm_buf_release(&form);
}

/* ---- main ---- */

static int parse_args(int argc, char **argv)
{
    static char hp[80];
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "-u"))
            snprintf(hp, sizeof hp, "%s", strncmp(v, "http://", 7) ? v : v + 7);
        else if (!strcmp(a, "-n"))
            o.triggers = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "-r"))
            o.bg_rate = atof(v);
        else if (!strcmp(a, "-c"))
            o.bg_conns = atoi(v);
        else if (!strcmp(a, "-w"))
            o.warmup = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "-k"))
            o.key = v;
        else if (!strcmp(a, "-s"))
            o.segment = atoi(v) != 0;
        else
            return -1;
    }
    char *slash = strchr(hp, '/');
    if (slash)
        *slash = '\0';
    o.hostport = hp;
    return hp[0] && o.triggers > 0 && o.bg_conns > 0 && o.bg_conns <= BG_CONN_MAX && o.bg_rate >= 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (parse_args(argc, argv)) {
        fprintf(stderr, "usage: trigger_latency -u http://HOST:PORT [-n TRIGGERS] [-r BG_EVENTS_PER_S]"
                        " [-c BG_CONNECTIONS] [-w WARMUP] [-k ADMIN_KEY] [-s 1 (through a segment entry)]\n");
        return 2;
    }
    run_id = (uint32_t)(bc_real_us() % 1000000);
    receiver_t *rx;
    if (receiver_open(&rx, false, true)) {
        fprintf(stderr, "trigger_latency: cannot start the receiver\n");
        return 1;
    }
    bc_conn_t api;
    bc_init(&api, o.hostport, o.key);
    setup(&api, rx);
    bc_close(&api);

    n_tags = o.triggers + o.warmup;
    arrived_us = calloc(n_tags, sizeof *arrived_us);
    trigger_result_t r = {.lat_ms = calloc(o.triggers, sizeof(double)),
                          .ack_ms = calloc(o.triggers, sizeof(double)),
                          .sent_ms = calloc(o.triggers, sizeof(double))};
    pthread_t th[BG_CONN_MAX];
    int n_bg = o.bg_rate > 0 ? o.bg_conns : 0;
    for (int i = 0; i < n_bg; i++)
        pthread_create(&th[i], NULL, bg_thread, (void *)(uintptr_t)i);
    bc_sleep_s(n_bg ? 1.0 : 0); /* let the background load reach its rate */
    double t0 = bc_now();
    uint64_t acked0 = atomic_load(&bg_acked);
    run_triggers(rx, &r);
    double el = bc_now() - t0;
    uint64_t bg = atomic_load(&bg_acked) - acked0;
    atomic_store(&bg_stop, 1);
    for (int i = 0; i < n_bg; i++)
        pthread_join(th[i], NULL);

    qsort(r.lat_ms, r.n, sizeof *r.lat_ms, bc_cmp_double);
    qsort(r.ack_ms, r.n, sizeof *r.ack_ms, bc_cmp_double);
    qsort(r.sent_ms, r.n, sizeof *r.sent_ms, bc_cmp_double);
    printf("triggers  matched  lost  failed  bg_target/s  bg_achieved/s  bg_failed  ack_p50_ms"
           "  hook_min_ms  hook_p50_ms  hook_p99_ms  hook_p99.9_ms  hook_max_ms  sent_p50_ms  sent_p99_ms  seconds\n");
    printf("%u  %u  %u  %u  %.0f  %.0f  %llu  %.2f  %.2f  %.2f  %.2f  %.2f  %.2f  %.2f  %.2f  %.1f\n", o.triggers, r.n,
           r.lost, r.failed, o.bg_rate, bg / el, (unsigned long long)atomic_load(&bg_failed),
           bc_quantile(r.ack_ms, r.n, 0.5), r.n ? r.lat_ms[0] : 0, bc_quantile(r.lat_ms, r.n, 0.5), bc_quantile(r.lat_ms, r.n, 0.99),
           bc_quantile(r.lat_ms, r.n, 0.999), r.n ? r.lat_ms[r.n - 1] : 0, bc_quantile(r.sent_ms, r.n, 0.5),
           bc_quantile(r.sent_ms, r.n, 0.99), el);
    printf("checksum %u webhooks matched\n", r.n);
    receiver_close(rx);
    free(arrived_us);
    free(r.lat_ms);
    free(r.ack_ms);
    free(r.sent_ms);
    return r.n == o.triggers ? 0 : 1;
}
