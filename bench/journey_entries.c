/*
 * journey_entries.c - journey entries per second, the memory and disk one
 * waiting instance costs, and (with --fire) how fast pending timers fire,
 * against a running `waymark serve` (DESIGN.md §10: >= 200,000 entries/s,
 * 10 M pending timers in <= 1 GiB RSS).
 *
 *   journey_entries -u http://127.0.0.1:PORT -p SERVER_PID -d DATA_DIR
 *                   [-n USERS] [-c CONNECTIONS] [-k ADMIN_KEY] [--fire]
 *
 * Phases, each timed from the first POST to the moment the server reports
 * the work done:
 *   users  - one "Hello" event for each of N new distinct_ids: creates the
 *            users (identity + profile), so the next phase measures entries
 *            alone. Figures: events/s, RSS and LMDB bytes per user.
 *   enter  - publishes  entry Enter -> wait 30d -> exit  and posts one Enter
 *            per user as fast as the connections go (gzip batches of 50);
 *            polls GET /api/v1/journeys/{key}/report until entered == N.
 *            entries/s = N / elapsed; RSS and LMDB bytes per instance are
 *            the growth over this phase / N (they include the Enter event's
 *            own storage, which every entry has).
 *   fire   - (--fire; the server must run with --test-clock) moves the clock
 *            31 days with POST /api/v1/clock and polls the report until the
 *            wait node shows N passed. timers/s = N / elapsed. The next node
 *            is an exit, so firing is the only work.
 * RSS is VmRSS of SERVER_PID (and its anonymous part, RssAnon: LMDB pages
 * are file-backed and show in the rest). LMDB bytes = apparent size of every
 * data.mdb under DATA_DIR (`du -sb` of those files), not the log files; the
 * identity store's share (DATA_DIR/identity) is also shown on its own, so
 * the partitions' state (user rows, event index, journey state) is the
 * difference.
 * Every batch is posted once; the acknowledgement (HTTP 200) means fsynced.
 * checksum = instances the report counts as entered (must equal N).
 */
#include <pthread.h>
#include <stdatomic.h>

#include "bench_client.h"

#define BATCH 50
#define CONN_MAX 64
#define POLL_S 0.05                 /* report polling period: the timing resolution */
#define STALL_S 120.0               /* no progress this long: give up, report what was done */
#define JOURNEY_KEY "bench_entries"

typedef struct opts {
    const char *hostport, *key, *data_dir;
    long pid;
    uint64_t users;
    int conns;
    bool fire;
} opts_t;

static opts_t o = {.key = "wm_bench_admin_key", .users = 100000, .conns = 4};
static uint32_t run_id;

typedef struct body {
    char *data;
    size_t len;
} body_t;

/* The batches of one phase, built before the clock starts so the client
 * spends the two shared cores on sending only. */
typedef struct phase_load {
    body_t *bodies;
    size_t n_bodies;
    _Atomic size_t next;
    _Atomic uint64_t acked, failed;
} phase_load_t;

typedef struct sample {
    long long rss_kb, anon_kb, lmdb_bytes, ident_bytes, disk_bytes;
} sample_t;

static sample_t take_sample(void)
{
    char ident[4096];
    snprintf(ident, sizeof ident, "%s/identity", o.data_dir);
    return (sample_t){bc_proc_kb(o.pid, "VmRSS"), bc_proc_kb(o.pid, "RssAnon"), bc_dir_bytes(o.data_dir, "data.mdb"),
                      bc_dir_bytes(ident, "data.mdb"), bc_dir_bytes(o.data_dir, NULL)};
}

/* ---- load ---- */

static void build_load(phase_load_t *l, const char *event)
{
    memset(l, 0, sizeof *l);
    l->n_bodies = (size_t)((o.users + BATCH - 1) / BATCH);
    l->bodies = calloc(l->n_bodies, sizeof *l->bodies);
    wm_buf_t json;
    wm_buf_init(&json, 0);
    int64_t ms = bc_real_us() / 1000;
    for (size_t b = 0; b < l->n_bodies; b++) {
        wm_buf_reset(&json);
        for (uint64_t u = b * BATCH; u < (b + 1) * BATCH && u < o.users; u++)
            wm_buf_printf(&json,
                          "%c{\"type\":\"track\",\"event\":\"%s\",\"distinct_id\":\"e%u-%llu\",\"time\":%lld,"
                          "\"properties\":{\"src\":\"bench\"}}",
                          u == b * BATCH ? '[' : ',', event, run_id, (unsigned long long)u, (long long)ms);
        wm_buf_putc(&json, ']');
        wm_buf_t form;
        wm_buf_init(&form, 0);
        if (bc_sa_form(&json, &form)) {
            fprintf(stderr, "journey_entries: cannot build a batch\n");
            exit(1);
        }
        l->bodies[b] = (body_t){form.data, form.len};
    }
    wm_buf_release(&json);
}

static void free_load(phase_load_t *l)
{
    for (size_t b = 0; b < l->n_bodies; b++)
        free(l->bodies[b].data);
    free(l->bodies);
}

static void *sender(void *arg)
{
    phase_load_t *l = arg;
    bc_conn_t c;
    bc_init(&c, o.hostport, NULL);
    for (size_t i; (i = atomic_fetch_add(&l->next, 1)) < l->n_bodies;) {
        int st = bc_request(&c, "POST", "/sa?project=default", "application/x-www-form-urlencoded",
                            l->bodies[i].data, l->bodies[i].len, NULL);
        if (st == 200)
            atomic_fetch_add(&l->acked, 1);
        else
            atomic_fetch_add(&l->failed, 1);
    }
    bc_close(&c);
    return NULL;
}

/* Sends every batch once over o.conns connections; returns seconds. */
static double send_load(phase_load_t *l)
{
    pthread_t th[CONN_MAX];
    double t0 = bc_now();
    for (int i = 0; i < o.conns; i++)
        pthread_create(&th[i], NULL, sender, l);
    for (int i = 0; i < o.conns; i++)
        pthread_join(th[i], NULL);
    return bc_now() - t0;
}

/* ---- progress probes ---- */

typedef long long (*probe_fn)(bc_conn_t *api);

static long long applied_records(bc_conn_t *api)
{
    wm_buf_t out;
    wm_buf_init(&out, 0);
    long long sum = -1;
    if (bc_request(api, "GET", "/metrics", NULL, NULL, 0, &out) == 200) {
        wm_buf_putc(&out, '\0');
        sum = 0;
        for (const char *p = out.data; (p = strstr(p, "\nwaymark_applied_seq")); p++) {
            const char *sp = strchr(p + 1, ' ');
            const char *nl = strchr(p + 1, '\n');
            if (sp && (!nl || sp < nl))
                sum += strtoll(sp + 1, NULL, 10);
        }
    }
    wm_buf_release(&out);
    return sum;
}

/* The report's journey-level entered count, or a node's counter. */
static long long report_value(bc_conn_t *api, const char *node, const char *field)
{
    wm_buf_t out;
    wm_buf_init(&out, 0);
    long long v = -1;
    if (bc_api(api, "GET", "/api/v1/journeys/" JOURNEY_KEY "/report", NULL, &out) == 200) {
        wm_buf_putc(&out, '\0');
        const char *from = out.data;
        if (node) {
            char pat[64];
            snprintf(pat, sizeof pat, "{\"id\":\"%s\"", node);
            from = strstr(out.data, pat);
        }
        v = bc_json_int(from, field);
    }
    wm_buf_release(&out);
    return v;
}

static long long entered(bc_conn_t *api) { return report_value(api, NULL, "entered"); }
static long long wait_passed(bc_conn_t *api) { return report_value(api, "wait", "passed"); }

/* Polls until probe() >= target; returns the monotonic time it was seen
 * (t_start + STALL_S-style give-up leaves *got short of target). */
static double wait_until(bc_conn_t *api, probe_fn probe, long long target, long long *got)
{
    double last_change = bc_now();
    long long prev = -1;
    for (;;) {
        long long v = probe(api);
        double now = bc_now();
        *got = v;
        if (v >= target)
            return now;
        if (v != prev)
            last_change = now;
        else if (now - last_change > STALL_S)
            return now;
        prev = v;
        bc_sleep_s(POLL_S);
    }
}

/* ---- phases ---- */

static void setup_journey(bc_conn_t *api)
{
    bc_api_must(api, "POST", "/api/v1/journeys",
                "{\"key\":\"" JOURNEY_KEY "\",\"name\":\"entries benchmark\",\"entry\":{\"event\":\"Enter\"},"
                "\"nodes\":[{\"id\":\"wait\",\"type\":\"wait\",\"duration\":\"30d\",\"next\":\"end\"},"
                "{\"id\":\"end\",\"type\":\"exit\"}]}");
    bc_api_must(api, "POST", "/api/v1/journeys/" JOURNEY_KEY "/publish", NULL);
}

static void row_bytes(const char *phase, const sample_t *a, const sample_t *b, double n)
{
    printf("%s  %.0f  %.1f  %.1f  %.1f  %.1f  %.0f  %.0f  %.0f  %.0f  %.0f\n", phase, n, a->rss_kb / 1024.0,
           b->rss_kb / 1024.0, a->anon_kb / 1024.0, b->anon_kb / 1024.0, (b->rss_kb - a->rss_kb) * 1024.0 / n,
           (b->anon_kb - a->anon_kb) * 1024.0 / n, (b->lmdb_bytes - a->lmdb_bytes) / n,
           (b->ident_bytes - a->ident_bytes) / n, (b->disk_bytes - a->disk_bytes) / n);
}

typedef struct results {
    double users_s, users_send_s, enter_s, enter_send_s, fire_s;
    long long users_applied, entered, fired;
    uint64_t failed;
    sample_t s0, s1, s2, s3;
} results_t;

static void phase_users(bc_conn_t *api, results_t *r)
{
    phase_load_t l;
    build_load(&l, "Hello");
    long long base = applied_records(api);
    r->s0 = take_sample();
    double t0 = bc_now();
    r->users_send_s = send_load(&l);
    /* applied, not just logged: the users exist before entries start */
    double t1 = wait_until(api, applied_records, base + (long long)o.users, &r->users_applied);
    r->users_applied -= base;
    r->users_s = t1 - t0;
    r->failed += atomic_load(&l.failed);
    free_load(&l);
    r->s1 = take_sample();
}

static void phase_enter(bc_conn_t *api, results_t *r)
{
    phase_load_t l;
    build_load(&l, "Enter");
    setup_journey(api);
    r->s1 = take_sample();
    double t0 = bc_now();
    r->enter_send_s = send_load(&l);
    r->enter_s = wait_until(api, entered, (long long)o.users, &r->entered) - t0;
    r->failed += atomic_load(&l.failed);
    free_load(&l);
    bc_sleep_s(1.0); /* RSS after the partitions settle */
    r->s2 = take_sample();
}

static void phase_fire(bc_conn_t *api, results_t *r)
{
    double t0 = bc_now();
    bc_api_must(api, "POST", "/api/v1/clock", "{\"advance\":\"31d\"}");
    r->fire_s = wait_until(api, wait_passed, (long long)o.users, &r->fired) - t0;
    r->s3 = take_sample();
}

static void print_results(const results_t *r)
{
    double n = (double)o.users;
    printf("phase  count  seconds  send_seconds  per_second  done\n");
    printf("users(Hello)  %llu  %.2f  %.2f  %.0f  %lld\n", (unsigned long long)o.users, r->users_s, r->users_send_s,
           n / r->users_s, r->users_applied);
    printf("entries(Enter)  %llu  %.2f  %.2f  %.0f  %lld\n", (unsigned long long)o.users, r->enter_s,
           r->enter_send_s, n / r->enter_s, r->entered);
    if (o.fire)
        printf("timers_fired  %llu  %.2f  -  %.0f  %lld\n", (unsigned long long)o.users, r->fire_s, n / r->fire_s,
               r->fired);
    printf("\n");
    printf("growth  per  rss_before_MB  rss_after_MB  anon_before_MB  anon_after_MB  rss_B_each  anon_B_each"
           "  lmdb_B_each  of_it_identity_B  disk_B_each\n");
    row_bytes("users", &r->s0, &r->s1, n);
    row_bytes("instances", &r->s1, &r->s2, n);
    if (o.fire)
        row_bytes("after_fire", &r->s1, &r->s3, n);
    printf("\nfailed requests %llu; checksum %lld instances entered\n", (unsigned long long)r->failed, r->entered);
}

static int parse_args(int argc, char **argv)
{
    static char hp[80];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--fire")) {
            o.fire = true;
            continue;
        }
        if (!v)
            return -1;
        i++;
        if (!strcmp(a, "-u"))
            snprintf(hp, sizeof hp, "%s", strncmp(v, "http://", 7) ? v : v + 7);
        else if (!strcmp(a, "-n"))
            o.users = strtoull(v, NULL, 10);
        else if (!strcmp(a, "-c"))
            o.conns = atoi(v);
        else if (!strcmp(a, "-p"))
            o.pid = atol(v);
        else if (!strcmp(a, "-d"))
            o.data_dir = v;
        else if (!strcmp(a, "-k"))
            o.key = v;
        else
            return -1;
    }
    char *slash = strchr(hp, '/');
    if (slash)
        *slash = '\0';
    o.hostport = hp;
    return hp[0] && o.pid > 0 && o.data_dir && o.users > 0 && o.conns > 0 && o.conns <= CONN_MAX ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (parse_args(argc, argv)) {
        fprintf(stderr, "usage: journey_entries -u http://HOST:PORT -p SERVER_PID -d DATA_DIR [-n USERS]"
                        " [-c CONNECTIONS] [-k ADMIN_KEY] [--fire]\n");
        return 2;
    }
    run_id = (uint32_t)(bc_real_us() % 1000000);
    bc_conn_t api;
    bc_init(&api, o.hostport, o.key);
    results_t r;
    memset(&r, 0, sizeof r);
    phase_users(&api, &r);
    phase_enter(&api, &r);
    if (o.fire)
        phase_fire(&api, &r);
    bc_close(&api);
    print_results(&r);
    return r.entered == (long long)o.users && (!o.fire || r.fired == (long long)o.users) ? 0 : 1;
}
