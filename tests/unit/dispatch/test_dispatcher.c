/*
 * test_dispatcher.c - the message dispatcher against a real HTTP receiver
 * on 127.0.0.1 (receiver.c, libmicrohttpd in this process): headers and a
 * signature checked with an independent HMAC, retries on 500 / 429 (with
 * Retry-After as a lower bound) / timeouts / refused connections, permanent
 * 400, attempts exhausted, not_before_ms, a full queue, 1000 concurrent
 * messages each delivered once, close with requests in flight; plus the body
 * shapes, kind names, the signature's known vector and argument checks.
 *
 * Backoff is 10 ms so the whole suite runs in a few seconds; nothing here
 * asserts an upper bound on time (a generous wait only guards against hangs).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "receiver.c"
#include "waymark/arena.h"
#include "waymark/buf.h"
#include "waymark/dispatch.h"
#include "waymark/error.h"
#include "waymark/json.h"
#include "waymark/limits.h"

/* Hang guard only: every wait normally ends in milliseconds. */
#define WAIT_LIMIT_S 30

/* ---- collecting outcomes ------------------------------------------------- */

typedef struct outcome {
    char id[128];
    wm_dispatch_outcome_t outcome;
    int http_status;
    char error[512];
    uint32_t attempts;
    void *user;
} outcome_t;

typedef struct collector {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    outcome_t *items;
    size_t n, cap;
    pthread_t thread;       /* the thread the callbacks ran on */
    bool other_thread_seen; /* a callback ran on a different thread than the first */
} collector_t;

static void on_done(void *ctx, const wm_dispatch_result_t *r)
{
    collector_t *c = ctx;
    pthread_mutex_lock(&c->mu);
    if (c->n == 0)
        c->thread = pthread_self();
    else if (!pthread_equal(c->thread, pthread_self()))
        c->other_thread_seen = true;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->items = realloc(c->items, c->cap * sizeof *c->items);
    }
    outcome_t *o = &c->items[c->n++];
    snprintf(o->id, sizeof o->id, "%s", r->id);
    snprintf(o->error, sizeof o->error, "%s", r->error);
    o->outcome = r->outcome;
    o->http_status = r->http_status;
    o->attempts = r->attempts;
    o->user = r->user;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void collector_init(collector_t *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
}

static void collector_release(collector_t *c)
{
    free(c->items);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
}

static size_t collected(collector_t *c)
{
    pthread_mutex_lock(&c->mu);
    size_t n = c->n;
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* Waits for n outcomes; fails the test instead of hanging. */
static void wait_done(collector_t *c, size_t n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_LIMIT_S;
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    while (c->n < n && rc == 0)
        rc = pthread_cond_timedwait(&c->cv, &c->mu, &until);
    size_t got = c->n;
    pthread_mutex_unlock(&c->mu);
    if (got < n)
        fail_msg("only %zu of %zu outcomes", got, n);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void wait_received(receiver_t *r, size_t n)
{
    for (int i = 0; i < WAIT_LIMIT_S * 100 && receiver_count(r) < n; i++)
        sleep_ms(10);
    assert_true(receiver_count(r) >= n);
}

/* ---- fixture: a receiver, a collector, default options -------------------- */

typedef struct fx {
    receiver_t *rcv;
    collector_t col;
    wm_dispatch_opts_t opts;
    char url[128];
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    if (!f || receiver_open(&f->rcv, true, true) != 0)
        return -1;
    collector_init(&f->col);
    receiver_url(f->rcv, "/hook", f->url, sizeof f->url);
    f->opts = (wm_dispatch_opts_t){
        .max_in_flight = 8,
        .queue_max = 10000,
        .max_attempts = 5,
        .backoff_base_ms = 10,
        .backoff_max_ms = 5000,
        .timeout_ms = 2000,
        .done = on_done,
        .done_ctx = &f->col,
    };
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    receiver_close(f->rcv);
    collector_release(&f->col);
    free(f);
    return 0;
}

static wm_dispatch_msg_t msg(const fx_t *f, const char *id, const char *body)
{
    return (wm_dispatch_msg_t){
        .id = id,
        .channel = "promo-webhook",
        .kind = WM_CH_WEBHOOK,
        .url = f->url,
        .body = body,
        .body_len = strlen(body),
    };
}

static wm_dispatcher_t *open_d(fx_t *f)
{
    wm_dispatcher_t *d = NULL;
    assert_int_equal(wm_dispatcher_open(&f->opts, &d), 0);
    return d;
}

static void get_req(fx_t *f, size_t i, rcv_request_t *q)
{
    assert_int_equal(receiver_get(f->rcv, i, q), 0);
}

/* Independent check of a signature header with OpenSSL's one-shot HMAC(). */
static bool signature_valid(const char *header, const char *secret, const char *body)
{
    long long t = 0;
    char hexmac[65] = "";
    if (sscanf(header, "t=%lld,v1=%64[0-9a-f]", &t, hexmac) != 2 || strlen(hexmac) != 64)
        return false;
    size_t cap = strlen(body) + 32;
    char *msgbuf = malloc(cap);
    if (!msgbuf)
        return false;
    int n = snprintf(msgbuf, cap, "%lld.%s", t, body);
    unsigned char mac[32];
    unsigned len = 0;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)msgbuf, (size_t)n, mac,
         &len);
    free(msgbuf);
    char want[65];
    for (int i = 0; i < 32; i++)
        sprintf(want + 2 * i, "%02x", mac[i]);
    return len == 32 && strcmp(want, hexmac) == 0;
}

/* ---- delivery ------------------------------------------------------------- */

static void test_delivered_with_headers_and_signature(void **state)
{
    fx_t *f = *state;
    wm_dispatcher_t *d = open_d(f);
    const char *body = "{\"message_id\":\"m-1\",\"text\":\"你好, Waymark\"}";
    wm_dispatch_msg_t m = msg(f, "m-1", body);
    m.secret = "s3cret";
    m.user = (void *)0x1234;
    int64_t before_s = rcv_real_us() / 1000000;
    assert_int_equal(wm_dispatcher_submit(d, &m), 0);
    wait_done(&f->col, 1);

    outcome_t *o = &f->col.items[0];
    assert_string_equal(o->id, "m-1");
    assert_int_equal(o->outcome, WM_DISPATCH_DELIVERED);
    assert_int_equal(o->http_status, 200);
    assert_int_equal(o->attempts, 1);
    assert_string_equal(o->error, "");
    assert_ptr_equal(o->user, (void *)0x1234);
    assert_false(pthread_equal(f->col.thread, pthread_self()));

    rcv_request_t q;
    get_req(f, 0, &q);
    assert_string_equal(q.method, "POST");
    assert_string_equal(q.path, "/hook");
    assert_string_equal(q.content_type, "application/json; charset=utf-8");
    assert_string_equal(q.message_id, "m-1");
    assert_string_equal(q.idempotency_key, "m-1");
    assert_string_equal(q.attempt, "1");
    assert_string_equal(q.channel, "promo-webhook");
    assert_string_equal(q.body, body);
    assert_true(signature_valid(q.signature, "s3cret", body));
    assert_false(signature_valid(q.signature, "wrong", body));
    long long t = atoll(q.signature + 2);
    assert_true(t >= before_s && t <= rcv_real_us() / 1000000);
    rcv_request_free(&q);

    wm_dispatch_stats_t st;
    wm_dispatcher_stats(d, &st);
    assert_int_equal(st.submitted, 1);
    assert_int_equal(st.delivered, 1);
    assert_int_equal(st.failed, 0);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.in_flight, 0);
    wm_dispatcher_close(d);
}

static void test_no_secret_no_signature_resumed_attempt(void **state)
{
    fx_t *f = *state;
    wm_dispatcher_t *d = open_d(f);
    wm_dispatch_msg_t m = msg(f, "m-resumed", "{}");
    m.channel = NULL;
    m.attempt = 2; /* resubmitted after a restart */
    assert_int_equal(wm_dispatcher_submit(d, &m), 0);
    wait_done(&f->col, 1);
    assert_int_equal(f->col.items[0].attempts, 3);
    rcv_request_t q;
    get_req(f, 0, &q);
    assert_string_equal(q.attempt, "3");
    assert_string_equal(q.signature, "");
    assert_string_equal(q.channel, "");
    rcv_request_free(&q);

    m = msg(f, "m-utf8", "{}");
    m.channel = "理财 100%";
    assert_int_equal(wm_dispatcher_submit(d, &m), 0);
    wait_done(&f->col, 2);
    get_req(f, 1, &q);
    assert_string_equal(q.channel, "%E7%90%86%E8%B4%A2 100%25");
    rcv_request_free(&q);
    wm_dispatcher_close(d);
}

static void test_retry_on_500_same_id(void **state)
{
    fx_t *f = *state;
    receiver_script(f->rcv, 2, (rcv_answer_t){.status = 500});
    wm_dispatcher_t *d = open_d(f);
    wm_dispatch_msg_t m = msg(f, "m-500", "{\"a\":1}");
    m.secret = "k";
    assert_int_equal(wm_dispatcher_submit(d, &m), 0);
    wait_done(&f->col, 1);
    assert_int_equal(f->col.items[0].outcome, WM_DISPATCH_DELIVERED);
    assert_int_equal(f->col.items[0].attempts, 3);
    assert_int_equal(receiver_count(f->rcv), 3);
    assert_int_equal(receiver_connections(f->rcv), 1); /* 500s do not cost a connection */
    for (size_t i = 0; i < 3; i++) {
        rcv_request_t q;
        get_req(f, i, &q);
        char want[8];
        snprintf(want, sizeof want, "%zu", i + 1);
        assert_string_equal(q.message_id, "m-500");
        assert_string_equal(q.idempotency_key, "m-500");
        assert_string_equal(q.attempt, want);
        assert_int_equal(q.status, i < 2 ? 500 : 200);
        assert_true(signature_valid(q.signature, "k", "{\"a\":1}"));
        rcv_request_free(&q);
    }
    wm_dispatch_stats_t st;
    wm_dispatcher_stats(d, &st);
    assert_int_equal(st.retries, 2);
    assert_int_equal(st.delivered, 1);
    wm_dispatcher_close(d);
}

static void test_429_retry_after_is_a_lower_bound(void **state)
{
    fx_t *f = *state;
    receiver_script(f->rcv, 1, (rcv_answer_t){.status = 429, .retry_after_s = 1});
    wm_dispatcher_t *d = open_d(f);
    wm_dispatch_msg_t m = msg(f, "m-429", "{}");
    assert_int_equal(wm_dispatcher_submit(d, &m), 0);
    wait_done(&f->col, 1);
    assert_int_equal(f->col.items[0].outcome, WM_DISPATCH_DELIVERED);
    assert_int_equal(f->col.items[0].attempts, 2);
    rcv_request_t a, b;
    get_req(f, 0, &a);
    get_req(f, 1, &b);
    assert_int_equal(a.status, 429);
    assert_string_equal(b.attempt, "2");
    /* base backoff is 10 ms; only Retry-After explains a 1 s gap */
    assert_true(b.at_real_us - a.at_real_us >= 1000000);
    rcv_request_free(&a);
    rcv_request_free(&b);
    wm_dispatcher_close(d);
}

static void test_400_fails_at_once(void **state)
{
    fx_t *f = *state;
    receiver_set_default(f->rcv, (rcv_answer_t){.status = 400});
    wm_dispatcher_t *d = open_d(f);
    wm_dispatch_msg_t m = msg(f, "m-400", "{}");
    assert_int_equal(wm_dispatcher_submit(d, &m), 0);
    wait_done(&f->col, 1);
    wm_dispatcher_close(d); /* no retry can still be pending after close */
    outcome_t *o = &f->col.items[0];
    assert_int_equal(o->outcome, WM_DISPATCH_FAILED);
    assert_int_equal(o->attempts, 1);
    assert_int_equal(o->http_status, 400);
    assert_non_null(strstr(o->error, "HTTP 400"));
    assert_non_null(strstr(o->error, "scripted")); /* the response snippet */
    assert_int_equal(receiver_count(f->rcv), 1);
    assert_int_equal(collected(&f->col), 1);
}

static void test_attempts_exhausted(void **state)
{
    fx_t *f = *state;
    receiver_set_default(f->rcv, (rcv_answer_t){.status = 503});
    f->opts.max_attempts = 4;
    wm_dispatcher_t *d = open_d(f);
    wm_dispatch_msg_t m = msg(f, "m-503", "{}");
    assert_int_equal(wm_dispatcher_submit(d, &m), 0);
    wait_done(&f->col, 1);
    wm_dispatcher_close(d);
    outcome_t *o = &f->col.items[0];
    assert_int_equal(o->outcome, WM_DISPATCH_FAILED);
    assert_int_equal(o->attempts, 4);
    assert_int_equal(o->http_status, 503);
    assert_int_equal(receiver_count(f->rcv), 4);
    assert_int_equal(collected(&f->col), 1);
}

static void test_timeout_is_retried(void **state)
{
    fx_t *f = *state;
    receiver_script(f->rcv, 1, (rcv_answer_t){.delay_ms = 1500});
    f->opts.timeout_ms = 100;
    wm_dispatcher_t *d = open_d(f);
    wm_dispatch_msg_t m = msg(f, "m-slow", "{}");
    assert_int_equal(wm_dispatcher_submit(d, &m), 0);
    wait_done(&f->col, 1);
    assert_int_equal(f->col.items[0].outcome, WM_DISPATCH_DELIVERED);
    assert_int_equal(f->col.items[0].attempts, 2);
    rcv_request_t q;
    get_req(f, 1, &q);
    assert_string_equal(q.message_id, "m-slow");
    assert_string_equal(q.attempt, "2");
    rcv_request_free(&q);
    wm_dispatcher_close(d);
}

static void test_timeouts_exhausted_report_no_status(void **state)
{
    fx_t *f = *state;
    receiver_set_default(f->rcv, (rcv_answer_t){.delay_ms = 1500});
    f->opts.timeout_ms = 50;
    f->opts.max_attempts = 2;
    wm_dispatcher_t *d = open_d(f);
    wm_dispatch_msg_t m = msg(f, "m-slower", "{}");
    assert_int_equal(wm_dispatcher_submit(d, &m), 0);
    wait_done(&f->col, 1);
    wm_dispatcher_close(d);
    outcome_t *o = &f->col.items[0];
    assert_int_equal(o->outcome, WM_DISPATCH_FAILED);
    assert_int_equal(o->attempts, 2);
    assert_int_equal(o->http_status, 0);
    assert_true(strlen(o->error) > 0);
}

static int unused_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    bind(s, (struct sockaddr *)&sa, sizeof sa);
    getsockname(s, (struct sockaddr *)&sa, &len);
    close(s); /* bound, never listened, closed: connects are refused */
    return ntohs(sa.sin_port);
}

static void test_connection_refused(void **state)
{
    fx_t *f = *state;
    f->opts.max_attempts = 3;
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d/hook", unused_port());
    wm_dispatcher_t *d = open_d(f);
    wm_dispatch_msg_t m = msg(f, "m-refused", "{}");
    assert_int_equal(wm_dispatcher_submit(d, &m), 0);
    wait_done(&f->col, 1);
    outcome_t *o = &f->col.items[0];
    assert_int_equal(o->outcome, WM_DISPATCH_FAILED);
    assert_int_equal(o->attempts, 3);
    assert_int_equal(o->http_status, 0);
    assert_true(strlen(o->error) > 0);
    wm_dispatch_stats_t st;
    wm_dispatcher_stats(d, &st);
    assert_int_equal(st.retries, 2);
    assert_int_equal(st.failed, 1);
    wm_dispatcher_close(d);
}

static void test_not_before_is_respected(void **state)
{
    fx_t *f = *state;
    wm_dispatcher_t *d = open_d(f);
    int64_t not_before_ms = rcv_real_us() / 1000 + 300;
    wm_dispatch_msg_t later = msg(f, "m-later", "{}");
    later.not_before_ms = not_before_ms;
    wm_dispatch_msg_t now = msg(f, "m-now", "{}");
    now.not_before_ms = 1; /* long past: send now */
    assert_int_equal(wm_dispatcher_submit(d, &later), 0);
    assert_int_equal(wm_dispatcher_submit(d, &now), 0);
    wait_done(&f->col, 2);
    wm_dispatcher_close(d);
    assert_int_equal(receiver_count(f->rcv), 2);
    for (size_t i = 0; i < 2; i++) {
        rcv_request_t q;
        get_req(f, i, &q);
        if (strcmp(q.message_id, "m-later") == 0)
            assert_true(q.at_real_us >= not_before_ms * 1000);
        else
            assert_string_equal(q.message_id, "m-now");
        rcv_request_free(&q);
    }
    assert_int_equal(f->col.items[0].outcome, WM_DISPATCH_DELIVERED);
    assert_int_equal(f->col.items[1].outcome, WM_DISPATCH_DELIVERED);
}

static void test_queue_full_is_busy(void **state)
{
    fx_t *f = *state;
    f->opts.queue_max = 4;
    wm_dispatcher_t *d = open_d(f);
    wm_dispatch_msg_t m = msg(f, "m-q", "{}");
    m.not_before_ms = rcv_real_us() / 1000 + 3600 * 1000; /* held an hour: stays queued */
    for (int i = 0; i < 4; i++)
        assert_int_equal(wm_dispatcher_submit(d, &m), 0);
    assert_int_equal(wm_dispatcher_submit(d, &m), WM_EBUSY);
    wm_dispatch_stats_t st;
    wm_dispatcher_stats(d, &st);
    assert_int_equal(st.queued, 4);
    assert_int_equal(st.submitted, 4);
    wm_dispatcher_close(d); /* held messages are dropped without a callback */
    assert_int_equal(collected(&f->col), 0);
    assert_int_equal(receiver_count(f->rcv), 0);
}

/* ---- concurrency and close ----------------------------------------------- */

#define MANY 1000
#define SUBMITTERS 4

typedef struct submitter {
    fx_t *f;
    wm_dispatcher_t *d;
    int first, count, busy;
} submitter_t;

static void *submit_range(void *arg)
{
    submitter_t *s = arg;
    for (int i = s->first; i < s->first + s->count; i++) {
        char id[32], body[64];
        snprintf(id, sizeof id, "many-%04d", i);
        snprintf(body, sizeof body, "{\"n\":%d}", i);
        wm_dispatch_msg_t m = msg(s->f, id, body);
        m.user = (void *)(intptr_t)(i + 1);
        if (wm_dispatcher_submit(s->d, &m) != 0)
            s->busy++;
    }
    return NULL;
}

static void test_1000_concurrent_each_delivered_once(void **state)
{
    fx_t *f = *state;
    f->opts.max_in_flight = 64;
    receiver_script(f->rcv, 50, (rcv_answer_t){.status = 502}); /* some go round again */
    wm_dispatcher_t *d = open_d(f);
    pthread_t th[SUBMITTERS];
    submitter_t sub[SUBMITTERS];
    for (int t = 0; t < SUBMITTERS; t++) {
        sub[t] = (submitter_t){f, d, t * (MANY / SUBMITTERS), MANY / SUBMITTERS, 0};
        pthread_create(&th[t], NULL, submit_range, &sub[t]);
    }
    for (int t = 0; t < SUBMITTERS; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(sub[t].busy, 0);
    }
    wait_done(&f->col, MANY);
    wm_dispatcher_close(d);

    assert_int_equal(collected(&f->col), MANY);
    assert_false(f->col.other_thread_seen);
    static unsigned char seen[MANY];
    memset(seen, 0, sizeof seen);
    for (size_t i = 0; i < MANY; i++) {
        outcome_t *o = &f->col.items[i];
        int n = atoi(o->id + 5);
        assert_int_equal(o->outcome, WM_DISPATCH_DELIVERED);
        assert_int_equal((intptr_t)o->user, n + 1);
        assert_int_equal(seen[n], 0);
        seen[n] = 1;
        assert_int_equal(receiver_count_ok(f->rcv, o->id), 1);
    }
    assert_int_equal(receiver_count(f->rcv), MANY + 50);
    /* keep-alive: never more connections than requests at once */
    assert_true(receiver_connections(f->rcv) <= 64);
}

static void test_close_with_requests_in_flight(void **state)
{
    fx_t *f = *state;
    receiver_set_default(f->rcv, (rcv_answer_t){.delay_ms = 10000});
    f->opts.timeout_ms = 20000;
    wm_dispatcher_t *d = open_d(f);
    for (int i = 0; i < 20; i++) {
        char id[32];
        snprintf(id, sizeof id, "m-fl-%d", i);
        wm_dispatch_msg_t m = msg(f, id, "{\"pending\":true}");
        m.secret = "k";
        assert_int_equal(wm_dispatcher_submit(d, &m), 0);
    }
    wait_received(f->rcv, 8); /* max_in_flight requests are now on the wire */
    wm_dispatch_stats_t st;
    wm_dispatcher_stats(d, &st);
    assert_int_equal(st.in_flight, 8);
    assert_int_equal(st.queued, 12);
    wm_dispatcher_close(d); /* aborts the 8, drops the 12; LSan checks the frees */
    assert_int_equal(collected(&f->col), 0);
}

/* ---- arguments ------------------------------------------------------------ */

static void test_invalid_arguments(void **state)
{
    fx_t *f = *state;
    wm_dispatcher_t *d = NULL;
    wm_dispatch_opts_t bad = f->opts;
    bad.done = NULL;
    assert_int_equal(wm_dispatcher_open(&bad, &d), WM_EINVAL);
    bad = f->opts;
    bad.backoff_base_ms = 100;
    bad.backoff_max_ms = 50;
    assert_int_equal(wm_dispatcher_open(&bad, &d), WM_EINVAL);
    bad = f->opts;
    bad.max_in_flight = WM_DISPATCH_IN_FLIGHT_MAX + 1;
    assert_int_equal(wm_dispatcher_open(&bad, &d), WM_EINVAL);

    d = open_d(f);
    char long_id[WM_DISPATCH_ID_LEN_MAX + 2];
    memset(long_id, 'x', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    const char *bad_ids[] = {"", "a\r\nX-Evil: 1", "sp ace", long_id};
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        wm_dispatch_msg_t m = msg(f, bad_ids[i], "{}");
        assert_int_equal(wm_dispatcher_submit(d, &m), WM_EINVAL);
    }
    long_id[WM_DISPATCH_ID_LEN_MAX] = '\0'; /* exactly the maximum is fine */
    wm_dispatch_msg_t m = msg(f, long_id, "{}");
    m.not_before_ms = rcv_real_us() / 1000 + 3600 * 1000;
    assert_int_equal(wm_dispatcher_submit(d, &m), 0);
    m = msg(f, "ok", "{}");
    m.url = "ftp://127.0.0.1/x";
    assert_int_equal(wm_dispatcher_submit(d, &m), WM_EINVAL);
    m.url = NULL;
    assert_int_equal(wm_dispatcher_submit(d, &m), WM_EINVAL);
    m = msg(f, "ok", "{}");
    char long_channel[WM_DISPATCH_CHANNEL_LEN_MAX + 2];
    memset(long_channel, 'c', sizeof long_channel - 1);
    long_channel[sizeof long_channel - 1] = '\0';
    m.channel = long_channel;
    assert_int_equal(wm_dispatcher_submit(d, &m), WM_EINVAL);
    m.channel = "bad\nchannel";
    assert_int_equal(wm_dispatcher_submit(d, &m), WM_EINVAL);
    m = msg(f, "ok", "{}");
    m.body_len = WM_DISPATCH_BODY_MAX + 1;
    assert_int_equal(wm_dispatcher_submit(d, &m), WM_EINVAL);
    assert_int_equal(wm_dispatcher_submit(d, NULL), WM_EINVAL);
    wm_dispatcher_close(d);
    wm_dispatcher_close(NULL);
}

/* ---- signature, kinds, shapes --------------------------------------------- */

static void test_sign_known_vector(void **state)
{
    char out[128];
    /* python3: hmac.new(b"s3cret", b'1700000000.{"a":1}', hashlib.sha256).hexdigest() */
    wm_dispatch_sign("s3cret", 1700000000, "{\"a\":1}", 7, out);
    assert_string_equal(out, "t=1700000000,v1="
                             "1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940");
}

static void test_kind_names(void **state)
{
    const char *names[] = {"webhook", "sms", "push", "wecom"};
    for (int k = WM_CH_WEBHOOK; k <= WM_CH_WECOM; k++) {
        wm_channel_kind_t got;
        assert_string_equal(wm_channel_kind_name((wm_channel_kind_t)k), names[k]);
        assert_int_equal(wm_channel_kind_parse(names[k], &got), 0);
        assert_int_equal(got, k);
    }
    wm_channel_kind_t got = WM_CH_SMS;
    assert_int_equal(wm_channel_kind_parse("Webhook", &got), WM_EINVAL);
    assert_int_equal(wm_channel_kind_parse("", &got), WM_EINVAL);
    assert_int_equal(got, WM_CH_SMS);
    assert_string_equal(wm_channel_kind_name((wm_channel_kind_t)42), "unknown");
}

static const wm_dispatch_content_t content = {
    .message_id = "msg-7",
    .user_id = "u-42",
    .channel = "welcome",
    .to = "+8613800000000",
    .title = "欢迎",
    .text = "Hello \"friend\"\n",
    .journey = "onboarding",
    .node = "n3",
    .sign = "Waymark",
    .extra = "{\"fund\":\"F001\",\"amount\":12.5}",
};

/* Shapes c as kind and parses the result; the arena owns the tree. */
static const wm_json_t *shaped(wm_arena_t *a, wm_channel_kind_t kind, const wm_dispatch_content_t *c)
{
    wm_buf_t b;
    wm_buf_init(&b, 0);
    wm_dispatch_shape(kind, c, &b);
    assert_int_equal(b.err, 0);
    wm_json_t *v = NULL;
    wm_json_error_t err;
    assert_int_equal(wm_json_parse(a, b.data, b.len, &v, &err), 0);
    wm_buf_release(&b);
    assert_int_equal(v->type, WM_JSON_OBJECT);
    return v;
}

static void assert_member_str(const wm_json_t *o, const char *key, const char *want)
{
    const wm_json_t *v = wm_json_get(o, key);
    assert_non_null(v);
    assert_string_equal(wm_json_str(v), want);
}

static void test_shape_webhook_and_push(void **state)
{
    wm_arena_t a;
    wm_arena_init(&a, 0);
    const wm_json_t *w = shaped(&a, WM_CH_WEBHOOK, &content);
    assert_int_equal(w->len, 8);
    assert_member_str(w, "message_id", "msg-7");
    assert_member_str(w, "user_id", "u-42");
    assert_member_str(w, "channel", "welcome");
    assert_member_str(w, "title", "欢迎");
    assert_member_str(w, "text", "Hello \"friend\"\n");
    assert_member_str(w, "journey", "onboarding");
    assert_member_str(w, "node", "n3");
    assert_member_str(wm_json_get(w, "data"), "fund", "F001");

    const wm_json_t *p = shaped(&a, WM_CH_PUSH, &content);
    assert_int_equal(p->len, 7);
    assert_member_str(p, "journey", "onboarding");
    assert_member_str(p, "node", "n3");
    assert_member_str(p, "to", "+8613800000000");
    assert_member_str(p, "body", "Hello \"friend\"\n");
    assert_member_str(p, "title", "欢迎");
    assert_non_null(wm_json_get(wm_json_get(p, "data"), "amount"));

    wm_dispatch_content_t bare = {.message_id = "m"};
    const wm_json_t *e = shaped(&a, WM_CH_PUSH, &bare);
    assert_int_equal(wm_json_get(e, "title")->type, WM_JSON_NULL);
    assert_int_equal(wm_json_get(e, "data")->type, WM_JSON_OBJECT);
    assert_int_equal(wm_json_get(e, "data")->len, 0);
    wm_arena_release(&a);
}

static void test_shape_sms_and_wecom(void **state)
{
    wm_arena_t a;
    wm_arena_init(&a, 0);
    const wm_json_t *s = shaped(&a, WM_CH_SMS, &content);
    assert_int_equal(s->len, 6);
    assert_member_str(s, "journey", "onboarding");
    assert_member_str(s, "node", "n3");
    assert_member_str(s, "message_id", "msg-7");
    assert_member_str(s, "to", "+8613800000000");
    assert_member_str(s, "text", "Hello \"friend\"\n");
    assert_member_str(s, "sign", "Waymark");

    wm_dispatch_content_t c = content;
    c.to = "zhangsan";
    const wm_json_t *w = shaped(&a, WM_CH_WECOM, &c);
    assert_member_str(w, "msgid", "msg-7");
    assert_member_str(w, "touser", "zhangsan");
    assert_member_str(w, "msgtype", "text");
    assert_member_str(wm_json_get(w, "text"), "content", "Hello \"friend\"\n");
    assert_member_str(w, "node", "n3");
    assert_null(wm_json_get(w, "external_userid"));

    c.to = "wmEXT123";
    c.wecom_external = true;
    w = shaped(&a, WM_CH_WECOM, &c);
    const wm_json_t *ext = wm_json_get(w, "external_userid");
    assert_non_null(ext);
    assert_int_equal(ext->type, WM_JSON_ARRAY);
    assert_int_equal(ext->len, 1);
    assert_null(wm_json_get(w, "touser"));
    wm_arena_release(&a);
}

static void test_shape_rejects_bad_extra(void **state)
{
    const char *bad[] = {"[1,2]", "{\"a\":", "\"str\"", "{} x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        wm_dispatch_content_t c = content;
        c.extra = bad[i];
        wm_buf_t b;
        wm_buf_init(&b, 0);
        wm_dispatch_shape(WM_CH_WEBHOOK, &c, &b);
        assert_int_equal(b.err, WM_EINVAL);
        wm_buf_release(&b);
    }
    wm_buf_t b;
    wm_buf_init(&b, 0);
    wm_dispatch_shape((wm_channel_kind_t)9, &content, &b);
    assert_int_equal(b.err, WM_EINVAL);
    wm_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_delivered_with_headers_and_signature, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_secret_no_signature_resumed_attempt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_on_500_same_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_429_retry_after_is_a_lower_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_400_fails_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attempts_exhausted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_is_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeouts_exhausted_report_no_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_before_is_respected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_full_is_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_1000_concurrent_each_delivered_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_requests_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_arguments, setup, teardown),
        cmocka_unit_test(test_sign_known_vector),
        cmocka_unit_test(test_kind_names),
        cmocka_unit_test(test_shape_webhook_and_push),
        cmocka_unit_test(test_shape_sms_and_wecom),
        cmocka_unit_test(test_shape_rejects_bad_extra),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
