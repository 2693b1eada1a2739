/*
 * dispatcher.c - the message dispatcher (see include/waymark/dispatch.h).
 *
 * Why this shape: delivery is I/O bound and every provider is an HTTP
 * endpoint, so one thread driving a libcurl multi handle keeps hundreds of
 * requests in flight on keep-alive connections (the multi's connection
 * cache) without a thread per request; on the 2-core reference machine the
 * writer threads keep the CPUs. Submitters only append to a locked inbox and
 * poke the thread with curl_multi_wakeup; everything else - the ready FIFO,
 * the min-heap of messages waiting for a retry or their not_before time, the
 * easy-handle slots - belongs to the dispatcher thread and needs no lock.
 *
 * Life of a message:
 *
 *   submit --> inbox --drain--> ready FIFO (due now) or heap (due later)
 *                                     |
 *                          free slot  v
 *                               +-----------+  2xx, or permanent 4xx,
 *                               | IN FLIGHT | --or attempts exhausted--> done()
 *                               +-----------+                             + free
 *                                     |  408/429/5xx, transfer error
 *                                     v
 *                                 heap (due = now + backoff) --due--> IN FLIGHT
 *
 * Invariants:
 *   - every accepted message is in exactly one place: inbox, ready, heap, or
 *     one busy slot; it leaves only through done() or close.
 *   - stats.queued == |inbox| + |ready| + |heap|; stats.in_flight == busy slots.
 *   - due times are CLOCK_MONOTONIC microseconds; not_before_ms (wall clock,
 *     because it is persisted in the outbox) is converted once at drain.
 *   - the heap is ordered by (due_us, seq); seq keeps FIFO order among
 *     messages due at the same time.
 *
 * Close: the thread leaves its loop at the next wakeup, removes the easy
 * handles (aborting their transfers) and frees every message without a
 * callback; the runtime's outbox still has them.
 */
#include "waymark/dispatch.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "waymark/alloc.h"
#include "waymark/error.h"
#include "waymark/limits.h"

#define DEFAULT_IN_FLIGHT 64
#define DEFAULT_QUEUE_MAX 100000
#define DEFAULT_ATTEMPTS 5
#define DEFAULT_BACKOFF_BASE_MS 500
#define DEFAULT_BACKOFF_MAX_MS 60000
#define DEFAULT_TIMEOUT_MS 5000
/* Upper bound of one poll: the loop re-checks the inbox at least this often
 * even if a wakeup were lost. */
#define IDLE_POLL_MS 1000
/* Response bytes kept for the error text of a failed attempt. */
#define RESPONSE_SNIPPET 120

typedef struct dmsg {
    struct dmsg *next;          /* inbox / ready link */
    char *id, *channel, *url, *secret, *body; /* all inside this allocation */
    size_t body_len;
    wm_channel_kind_t kind;
    uint32_t attempts;          /* attempts made so far */
    int64_t not_before_ms;      /* wall clock, as submitted */
    int64_t due_us;             /* monotonic; valid once drained */
    int64_t submit_us;          /* monotonic */
    uint64_t seq;
    int http_status;            /* of the last attempt, 0 if none */
    char error[CURL_ERROR_SIZE + RESPONSE_SNIPPET + 16];
    void *user;
} dmsg_t;

typedef struct slot {
    CURL *easy;                 /* created on first use, reused (connection cache is in the multi) */
    dmsg_t *msg;                /* NULL when free */
    struct curl_slist *headers;
    char errbuf[CURL_ERROR_SIZE];
    char resp[RESPONSE_SNIPPET + 1];
    size_t resp_len;
} slot_t;

struct wm_dispatcher {
    wm_dispatch_opts_t o;
    CURLM *multi;
    pthread_t thread;

    pthread_mutex_t mu;         /* guards inbox and closing */
    dmsg_t *inbox_head, *inbox_tail;
    bool closing;

    /* dispatcher thread only */
    dmsg_t *ready_head, *ready_tail;
    dmsg_t **heap;
    size_t heap_len, heap_cap;
    slot_t *slots;
    uint32_t *free_slots;
    uint32_t n_free;
    uint64_t seq;
    uint64_t rng;

    _Atomic uint64_t submitted, delivered, failed, retries, in_flight, queued;
};

/* ---- clocks, random ------------------------------------------------------ */

static int64_t clock_us(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t mono_us(void) { return clock_us(CLOCK_MONOTONIC); }

/* xorshift64*: jitter needs spread, not cryptographic quality. */
static double rand_unit(wm_dispatcher_t *d)
{
    d->rng ^= d->rng >> 12;
    d->rng ^= d->rng << 25;
    d->rng ^= d->rng >> 27;
    return (double)((d->rng * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0;
}

/* ---- signature ------------------------------------------------------------ */

static EVP_MAC *hmac_alg;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

/* Fetched once for the process: a fetch takes the provider store's lock. */
static void hmac_fetch(void) { hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL); }

static int hmac_sha256(const char *key, const char *ts, size_t ts_len, const char *body,
                       size_t len, unsigned char mac[32])
{
    pthread_once(&hmac_once, hmac_fetch);
    if (!hmac_alg)
        return WM_EIO;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(hmac_alg);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    size_t mac_len = 0;
    int ok = ctx && EVP_MAC_init(ctx, (const unsigned char *)key, strlen(key), params) &&
             EVP_MAC_update(ctx, (const unsigned char *)ts, ts_len) &&
             EVP_MAC_update(ctx, (const unsigned char *)".", 1) &&
             EVP_MAC_update(ctx, (const unsigned char *)body, len) &&
             EVP_MAC_final(ctx, mac, &mac_len, 32) && mac_len == 32;
    EVP_MAC_CTX_free(ctx);
    return ok ? 0 : WM_EIO;
}

void wm_dispatch_sign(const char *secret, int64_t unix_s, const char *body, size_t len,
                      char out[128])
{
    static const char hex[] = "0123456789abcdef";
    char ts[24];
    unsigned char mac[32];
    out[0] = '\0';
    int ts_len = snprintf(ts, sizeof ts, "%lld", (long long)unix_s);
    if (!secret || hmac_sha256(secret, ts, (size_t)ts_len, body ? body : "", len, mac) != 0)
        return;
    int n = snprintf(out, 128, "t=%s,v1=", ts);
    for (int i = 0; i < 32; i++) {
        out[n++] = hex[mac[i] >> 4];
        out[n++] = hex[mac[i] & 15];
    }
    out[n] = '\0';
}

/* ---- messages ------------------------------------------------------------- */

static bool printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c > 0x7e || c <= 0x20)
            return false;
    }
    return true;
}

/* Channel names are UTF-8 (console users name them in Chinese); only
 * control characters are refused, because they could split a header. */
static bool channel_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

static bool url_ok(const char *u)
{
    size_t n = strnlen(u, WM_DISPATCH_URL_MAX + 1);
    if (n > WM_DISPATCH_URL_MAX || !printable(u, n))
        return false;
    return strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0;
}

static int msg_check(const wm_dispatch_msg_t *m)
{
    if (!m || !m->id || !m->url || (!m->body && m->body_len))
        return WM_EINVAL;
    size_t id_len = strnlen(m->id, WM_DISPATCH_ID_LEN_MAX + 1);
    if (id_len == 0 || id_len > WM_DISPATCH_ID_LEN_MAX || !printable(m->id, id_len))
        return WM_EINVAL;
    const char *ch = m->channel ? m->channel : "";
    size_t ch_len = strnlen(ch, WM_DISPATCH_CHANNEL_LEN_MAX + 1);
    if (ch_len > WM_DISPATCH_CHANNEL_LEN_MAX || !channel_ok(ch, ch_len))
        return WM_EINVAL;
    if (m->body_len > WM_DISPATCH_BODY_MAX || (unsigned)m->kind > WM_CH_WECOM)
        return WM_EINVAL;
    return url_ok(m->url) ? 0 : WM_EINVAL;
}

static char *put_str(char **p, const char *s, size_t n)
{
    char *start = *p;
    memcpy(start, s, n);
    start[n] = '\0';
    *p += n + 1;
    return start;
}

/* One allocation per message: header plus every string it owns. */
static dmsg_t *msg_copy(const wm_dispatch_msg_t *m)
{
    const char *ch = m->channel ? m->channel : "";
    const char *sec = m->secret ? m->secret : "";
    size_t id_n = strlen(m->id), ch_n = strlen(ch), url_n = strlen(m->url), sec_n = strlen(sec);
    dmsg_t *c = wm_malloc(sizeof *c + id_n + ch_n + url_n + sec_n + m->body_len + 5);
    if (!c)
        return NULL;
    memset(c, 0, sizeof *c);
    char *p = (char *)(c + 1);
    c->id = put_str(&p, m->id, id_n);
    c->channel = put_str(&p, ch, ch_n);
    c->url = put_str(&p, m->url, url_n);
    c->secret = put_str(&p, sec, sec_n);
    c->body = put_str(&p, m->body_len ? m->body : "", m->body_len);
    c->body_len = m->body_len;
    c->kind = m->kind;
    c->attempts = m->attempt;
    c->not_before_ms = m->not_before_ms;
    c->user = m->user;
    c->submit_us = mono_us();
    return c;
}

static void msg_list_free(dmsg_t *m)
{
    while (m) {
        dmsg_t *next = m->next;
        wm_free(m);
        m = next;
    }
}

/* ---- heap of waiting messages (dispatcher thread) ------------------------- */

static bool heap_less(const dmsg_t *a, const dmsg_t *b)
{
    return a->due_us < b->due_us || (a->due_us == b->due_us && a->seq < b->seq);
}

static void heap_swap(dmsg_t **h, size_t i, size_t j)
{
    dmsg_t *t = h[i];
    h[i] = h[j];
    h[j] = t;
}

/* Grows before it is needed so a retry never has to be dropped for memory:
 * the caller checks the result and reports FAILED instead of losing it. */
static int heap_push(wm_dispatcher_t *d, dmsg_t *m)
{
    if (d->heap_len == d->heap_cap) {
        size_t cap = d->heap_cap ? d->heap_cap * 2 : 64;
        dmsg_t **h = wm_realloc(d->heap, cap * sizeof *h);
        if (!h)
            return WM_ENOMEM;
        d->heap = h;
        d->heap_cap = cap;
    }
    m->seq = d->seq++;
    size_t i = d->heap_len++;
    d->heap[i] = m;
    while (i > 0 && heap_less(d->heap[i], d->heap[(i - 1) / 2])) {
        heap_swap(d->heap, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    return 0;
}

static dmsg_t *heap_pop(wm_dispatcher_t *d)
{
    dmsg_t *top = d->heap[0];
    d->heap[0] = d->heap[--d->heap_len];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, min = i;
        if (l < d->heap_len && heap_less(d->heap[l], d->heap[min]))
            min = l;
        if (r < d->heap_len && heap_less(d->heap[r], d->heap[min]))
            min = r;
        if (min == i)
            return top;
        heap_swap(d->heap, i, min);
        i = min;
    }
}

static void ready_push(wm_dispatcher_t *d, dmsg_t *m)
{
    m->next = NULL;
    if (d->ready_tail)
        d->ready_tail->next = m;
    else
        d->ready_head = m;
    d->ready_tail = m;
}

static dmsg_t *ready_pop(wm_dispatcher_t *d)
{
    dmsg_t *m = d->ready_head;
    d->ready_head = m->next;
    if (!d->ready_head)
        d->ready_tail = NULL;
    m->next = NULL;
    return m;
}

/* ---- outcomes ------------------------------------------------------------- */

static void finish(wm_dispatcher_t *d, dmsg_t *m, wm_dispatch_outcome_t outcome)
{
    if (outcome == WM_DISPATCH_DELIVERED)
        m->error[0] = '\0';
    wm_dispatch_result_t r = {
        .id = m->id,
        .outcome = outcome,
        .http_status = m->http_status,
        .error = m->error,
        .attempts = m->attempts,
        .latency_ms = (mono_us() - m->submit_us) / 1000,
        .user = m->user,
    };
    atomic_fetch_add(outcome == WM_DISPATCH_DELIVERED ? &d->delivered : &d->failed, 1);
    d->o.done(d->o.done_ctx, &r);
    wm_free(m);
}

static int64_t backoff_ms(wm_dispatcher_t *d, uint32_t attempts, int64_t retry_after_s)
{
    int64_t max = d->o.backoff_max_ms;
    if (retry_after_s > 0) {
        /* The server's wish is a lower bound: jitter only ever adds to it. */
        int64_t ms = retry_after_s > max / 1000 ? max : retry_after_s * 1000;
        int64_t extra = (int64_t)((double)ms * 0.1 * rand_unit(d));
        return ms + extra > max ? ms : ms + extra;
    }
    uint32_t shift = attempts > 0 ? attempts - 1 : 0;
    int64_t ms = shift >= 31 ? max : (int64_t)d->o.backoff_base_ms << shift;
    if (ms > max)
        ms = max;
    return (int64_t)((double)ms * (0.75 + 0.5 * rand_unit(d)));
}

static void retry_or_fail(wm_dispatcher_t *d, dmsg_t *m, int64_t retry_after_s)
{
    if (m->attempts >= d->o.max_attempts) {
        finish(d, m, WM_DISPATCH_FAILED);
        return;
    }
    m->due_us = mono_us() + backoff_ms(d, m->attempts, retry_after_s) * 1000;
    if (heap_push(d, m) != 0) {
        snprintf(m->error, sizeof m->error, "out of memory queueing a retry");
        finish(d, m, WM_DISPATCH_FAILED);
        return;
    }
    atomic_fetch_add(&d->retries, 1);
    atomic_fetch_add(&d->queued, 1);
}

static bool status_retryable(long s) { return s == 408 || s == 429 || (s >= 500 && s <= 599); }

/* Errors that another attempt cannot fix: the message itself is wrong. */
static bool curl_permanent(CURLcode rc)
{
    return rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL;
}

static void judge_http(wm_dispatcher_t *d, dmsg_t *m, slot_t *s, long status, curl_off_t ra)
{
    m->http_status = (int)status;
    if (status >= 200 && status <= 299) {
        finish(d, m, WM_DISPATCH_DELIVERED);
        return;
    }
    snprintf(m->error, sizeof m->error, "HTTP %ld%s%s", status, s->resp_len ? ": " : "",
             s->resp);
    if (!status_retryable(status)) {
        finish(d, m, WM_DISPATCH_FAILED);
        return;
    }
    retry_or_fail(d, m, (status == 429 || status == 503) ? (int64_t)ra : 0);
}

static void judge_transfer_error(wm_dispatcher_t *d, dmsg_t *m, slot_t *s, CURLcode rc)
{
    m->http_status = 0;
    snprintf(m->error, sizeof m->error, "%s", s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc));
    if (curl_permanent(rc))
        finish(d, m, WM_DISPATCH_FAILED);
    else
        retry_or_fail(d, m, 0);
}

/* ---- requests ------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    slot_t *s = arg;
    size_t bytes = size * n;
    for (size_t i = 0; i < bytes && s->resp_len < RESPONSE_SNIPPET; i++) {
        unsigned char c = (unsigned char)p[i];
        s->resp[s->resp_len++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    s->resp[s->resp_len] = '\0';
    return bytes;
}

static CURL *easy_new(wm_dispatcher_t *d, slot_t *s)
{
    CURL *e = curl_easy_init();
    if (!e)
        return NULL;
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "waymark-dispatch/1");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)d->o.timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)d->o.timeout_ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, s);
    return e;
}

static struct curl_slist *add_header(struct curl_slist *h, bool *ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static struct curl_slist *add_header(struct curl_slist *h, bool *ok, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    struct curl_slist *n = *ok ? curl_slist_append(h, line) : NULL;
    if (!n)
        *ok = false;
    return n ? n : h;
}

/* Header values are octets that receivers decode as Latin-1 or reject, so
 * the channel name goes out percent-encoded beyond ASCII ('%' too, so that
 * decoding is unambiguous). */
static void percent_encode(const char *s, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x80 && c != '%') {
            *out++ = (char)c;
            continue;
        }
        *out++ = '%';
        *out++ = hex[c >> 4];
        *out++ = hex[c & 15];
    }
    *out = '\0';
}

/* Headers of one attempt: the attempt number and signature time change. */
static struct curl_slist *build_headers(const dmsg_t *m)
{
    bool ok = true;
    struct curl_slist *h = NULL;
    h = add_header(h, &ok, "Content-Type: application/json; charset=utf-8");
    h = add_header(h, &ok, "X-Waymark-Message-Id: %s", m->id);
    h = add_header(h, &ok, "Idempotency-Key: %s", m->id);
    h = add_header(h, &ok, "X-Waymark-Attempt: %u", m->attempts + 1);
    /* "Name;" is curl's spelling of a header with an empty value. */
    char channel[3 * WM_DISPATCH_CHANNEL_LEN_MAX + 1];
    percent_encode(m->channel, channel);
    if (channel[0])
        h = add_header(h, &ok, "X-Waymark-Channel: %s", channel);
    else
        h = add_header(h, &ok, "X-Waymark-Channel;");
    h = add_header(h, &ok, "Expect:");
    if (m->secret[0]) {
        char sig[128];
        wm_dispatch_sign(m->secret, clock_us(CLOCK_REALTIME) / 1000000, m->body, m->body_len, sig);
        h = add_header(h, &ok, "X-Waymark-Signature: %s", sig);
    }
    if (!ok) {
        curl_slist_free_all(h);
        return NULL;
    }
    return h;
}

static void slot_release(wm_dispatcher_t *d, slot_t *s)
{
    curl_slist_free_all(s->headers);
    s->headers = NULL;
    s->msg = NULL;
    d->free_slots[d->n_free++] = (uint32_t)(s - d->slots);
}

/* Takes a free slot and starts m on it; a message that cannot even be
 * started (no memory) is failed rather than spun on. */
static void start(wm_dispatcher_t *d, dmsg_t *m)
{
    slot_t *s = &d->slots[d->free_slots[--d->n_free]];
    atomic_fetch_sub(&d->queued, 1);
    s->msg = m;
    s->errbuf[0] = '\0';
    s->resp_len = 0;
    s->resp[0] = '\0';
    if (!s->easy)
        s->easy = easy_new(d, s);
    s->headers = s->easy ? build_headers(m) : NULL;
    if (!s->headers) {
        slot_release(d, s);
        m->attempts++;
        snprintf(m->error, sizeof m->error, "out of memory building the request");
        finish(d, m, WM_DISPATCH_FAILED);
        return;
    }
    curl_easy_setopt(s->easy, CURLOPT_URL, m->url);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, m->body);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)m->body_len);
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->headers);
    if (curl_multi_add_handle(d->multi, s->easy) != CURLM_OK) {
        slot_release(d, s);
        snprintf(m->error, sizeof m->error, "curl_multi_add_handle failed");
        m->attempts++;
        retry_or_fail(d, m, 0);
        return;
    }
    atomic_fetch_add(&d->in_flight, 1);
}

static void reap(wm_dispatcher_t *d)
{
    CURLMsg *info;
    int left;
    while ((info = curl_multi_info_read(d->multi, &left)) != NULL) {
        if (info->msg != CURLMSG_DONE)
            continue;
        CURL *e = info->easy_handle;
        CURLcode rc = info->data.result;
        char *priv = NULL;
        long status = 0;
        curl_off_t ra = 0;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
        slot_t *s = (slot_t *)priv;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(e, CURLINFO_RETRY_AFTER, &ra);
        curl_multi_remove_handle(d->multi, e);
        atomic_fetch_sub(&d->in_flight, 1);
        dmsg_t *m = s->msg;
        m->attempts++;
        if (rc == CURLE_OK)
            judge_http(d, m, s, status, ra);
        else
            judge_transfer_error(d, m, s, rc);
        slot_release(d, s);
    }
}

/* ---- the loop ------------------------------------------------------------- */

static void sort_new(wm_dispatcher_t *d, dmsg_t *list)
{
    int64_t now = mono_us();
    int64_t real = clock_us(CLOCK_REALTIME);
    while (list) {
        dmsg_t *m = list;
        list = list->next;
        int64_t wait_us = m->not_before_ms > 0 ? m->not_before_ms * 1000 - real : 0;
        if (wait_us <= 0) {
            ready_push(d, m);
            continue;
        }
        m->due_us = now + wait_us;
        if (heap_push(d, m) != 0) {
            atomic_fetch_sub(&d->queued, 1);
            snprintf(m->error, sizeof m->error, "out of memory holding a message");
            finish(d, m, WM_DISPATCH_FAILED);
        }
    }
}

/* Returns true when the thread should stop. */
static bool drain_inbox(wm_dispatcher_t *d)
{
    pthread_mutex_lock(&d->mu);
    bool closing = d->closing;
    dmsg_t *list = d->inbox_head;
    d->inbox_head = d->inbox_tail = NULL;
    pthread_mutex_unlock(&d->mu);
    if (closing) {
        msg_list_free(list);
        return true;
    }
    sort_new(d, list);
    return false;
}

/* Waiting messages whose time has come go first: they have waited longest. */
static void start_due(wm_dispatcher_t *d)
{
    int64_t now = mono_us();
    while (d->n_free > 0 && d->heap_len > 0 && d->heap[0]->due_us <= now)
        start(d, heap_pop(d));
    while (d->n_free > 0 && d->ready_head)
        start(d, ready_pop(d));
}

static int poll_timeout_ms(wm_dispatcher_t *d)
{
    if (d->n_free == 0)
        return IDLE_POLL_MS; /* a finishing transfer wakes the poll */
    if (d->ready_head)
        return 0;
    if (d->heap_len == 0)
        return IDLE_POLL_MS;
    int64_t wait_us = d->heap[0]->due_us - mono_us();
    if (wait_us <= 0)
        return 0;
    int64_t ms = (wait_us + 999) / 1000;
    return ms < IDLE_POLL_MS ? (int)ms : IDLE_POLL_MS;
}

static void abort_all(wm_dispatcher_t *d)
{
    for (uint32_t i = 0; i < d->o.max_in_flight; i++) {
        slot_t *s = &d->slots[i];
        if (s->msg) {
#if LIBCURL_VERSION_NUM >= 0x075700
            /* A transfer still resolving a host name would otherwise make
             * remove_handle join the resolver thread: close must not wait
             * for DNS. The thread finishes (and frees itself) on its own. */
            curl_easy_setopt(s->easy, CURLOPT_QUICK_EXIT, 1L);
#endif
            curl_multi_remove_handle(d->multi, s->easy);
            wm_free(s->msg);
            slot_release(d, s);
        }
        if (s->easy)
            curl_easy_cleanup(s->easy);
        s->easy = NULL;
    }
    for (size_t i = 0; i < d->heap_len; i++)
        wm_free(d->heap[i]);
    d->heap_len = 0;
    msg_list_free(d->ready_head);
    d->ready_head = d->ready_tail = NULL;
}

static void *dispatcher_main(void *arg)
{
    wm_dispatcher_t *d = arg;
    int running = 0;
    while (!drain_inbox(d)) {
        start_due(d);
        curl_multi_perform(d->multi, &running);
        reap(d);
        start_due(d);
        curl_multi_poll(d->multi, NULL, 0, poll_timeout_ms(d), NULL);
    }
    abort_all(d);
    return NULL;
}

/* ---- public API ----------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

static uint32_t or_default(uint32_t v, uint32_t def) { return v ? v : def; }

static int opts_resolve(const wm_dispatch_opts_t *in, wm_dispatch_opts_t *o)
{
    if (!in || !in->done)
        return WM_EINVAL;
    *o = *in;
    o->max_in_flight = or_default(in->max_in_flight, DEFAULT_IN_FLIGHT);
    o->queue_max = or_default(in->queue_max, DEFAULT_QUEUE_MAX);
    o->max_attempts = or_default(in->max_attempts, DEFAULT_ATTEMPTS);
    o->backoff_base_ms = or_default(in->backoff_base_ms, DEFAULT_BACKOFF_BASE_MS);
    o->backoff_max_ms = or_default(in->backoff_max_ms, DEFAULT_BACKOFF_MAX_MS);
    o->timeout_ms = or_default(in->timeout_ms, DEFAULT_TIMEOUT_MS);
    if (o->max_in_flight > WM_DISPATCH_IN_FLIGHT_MAX || o->queue_max > WM_DISPATCH_QUEUE_MAX ||
        o->max_attempts > WM_DISPATCH_ATTEMPTS_MAX)
        return WM_EINVAL;
    /* A base above the default cap with no cap given means "no growth". */
    if (!in->backoff_max_ms && o->backoff_max_ms < o->backoff_base_ms)
        o->backoff_max_ms = o->backoff_base_ms;
    return o->backoff_max_ms >= o->backoff_base_ms ? 0 : WM_EINVAL;
}

static void dispatcher_free(wm_dispatcher_t *d)
{
    if (d->multi)
        curl_multi_cleanup(d->multi);
    msg_list_free(d->inbox_head);
    pthread_mutex_destroy(&d->mu);
    wm_free(d->heap);
    wm_free(d->slots);
    wm_free(d->free_slots);
    wm_free(d);
}

static int dispatcher_init(wm_dispatcher_t *d)
{
    d->rng = (uint64_t)mono_us() ^ ((uint64_t)(uintptr_t)d << 16) ^ 0x9E3779B97F4A7C15ULL;
    d->slots = wm_calloc(d->o.max_in_flight, sizeof *d->slots);
    d->free_slots = wm_calloc(d->o.max_in_flight, sizeof *d->free_slots);
    if (!d->slots || !d->free_slots)
        return WM_ENOMEM;
    for (uint32_t i = 0; i < d->o.max_in_flight; i++)
        d->free_slots[d->n_free++] = d->o.max_in_flight - 1 - i;
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK || !(d->multi = curl_multi_init()))
        return WM_EIO;
    /* One idle connection per possible request, so a steady load never
     * closes a connection it will want again a moment later. */
    curl_multi_setopt(d->multi, CURLMOPT_MAXCONNECTS, (long)d->o.max_in_flight);
    curl_multi_setopt(d->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
    return 0;
}

int wm_dispatcher_open(const wm_dispatch_opts_t *opts, wm_dispatcher_t **out)
{
    wm_dispatch_opts_t o;
    int rc = opts_resolve(opts, &o);
    if (rc != 0 || !out)
        return WM_EINVAL;
    wm_dispatcher_t *d = wm_calloc(1, sizeof *d);
    if (!d)
        return WM_ENOMEM;
    d->o = o;
    pthread_mutex_init(&d->mu, NULL);
    rc = dispatcher_init(d);
    if (rc == 0 && pthread_create(&d->thread, NULL, dispatcher_main, d) != 0)
        rc = WM_EIO;
    if (rc != 0) {
        dispatcher_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

void wm_dispatcher_close(wm_dispatcher_t *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    d->closing = true;
    curl_multi_wakeup(d->multi);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->thread, NULL);
    dispatcher_free(d);
}

int wm_dispatcher_submit(wm_dispatcher_t *d, const wm_dispatch_msg_t *msg)
{
    if (!d || msg_check(msg) != 0)
        return WM_EINVAL;
    dmsg_t *m = msg_copy(msg);
    if (!m)
        return WM_ENOMEM;
    pthread_mutex_lock(&d->mu);
    int rc = d->closing ? WM_ECLOSED : 0;
    if (rc == 0 && atomic_load(&d->queued) >= d->o.queue_max)
        rc = WM_EBUSY;
    if (rc != 0) {
        pthread_mutex_unlock(&d->mu);
        wm_free(m);
        return rc;
    }
    atomic_fetch_add(&d->queued, 1);
    atomic_fetch_add(&d->submitted, 1);
    /* Only the first message into an empty inbox needs to wake the thread:
     * a non-empty inbox has not been drained yet, and the wakeup is sticky. */
    if (d->inbox_tail)
        d->inbox_tail->next = m;
    else {
        d->inbox_head = m;
        curl_multi_wakeup(d->multi);
    }
    d->inbox_tail = m;
    pthread_mutex_unlock(&d->mu);
    return 0;
}

void wm_dispatcher_stats(wm_dispatcher_t *d, wm_dispatch_stats_t *out)
{
    out->submitted = atomic_load(&d->submitted);
    out->delivered = atomic_load(&d->delivered);
    out->failed = atomic_load(&d->failed);
    out->retries = atomic_load(&d->retries);
    out->in_flight = atomic_load(&d->in_flight);
    out->queued = atomic_load(&d->queued);
}
