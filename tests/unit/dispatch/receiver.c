/*
 * receiver.c - the in-process HTTP receiver of the dispatcher tests (see
 * receiver.h). Test code: plain malloc, aborts on out-of-memory.
 */
#include "receiver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#define RCV_BODY_MAX (2u << 20)
#define RCV_SCRIPT_MAX 4096

struct receiver {
    struct MHD_Daemon *mhd;
    int port;
    bool record;
    atomic_bool stopping;
    atomic_size_t count;
    atomic_size_t connections;

    pthread_mutex_t mu;     /* guards everything below */
    rcv_answer_t script[RCV_SCRIPT_MAX];
    size_t script_head, script_len;
    rcv_answer_t dflt;
    rcv_request_t *reqs;
    size_t n_reqs, cap_reqs;
};

typedef struct conn_state {
    char *body;
    size_t len, cap;
    bool too_big;
} conn_state_t;

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        fprintf(stderr, "receiver: out of memory\n");
        abort();
    }
    return q;
}

int64_t rcv_real_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void copy_header(struct MHD_Connection *c, const char *name, char *dst, size_t n)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    snprintf(dst, n, "%s", v ? v : "");
}

static rcv_answer_t next_answer(receiver_t *r)
{
    pthread_mutex_lock(&r->mu);
    rcv_answer_t a = r->dflt;
    if (r->script_len > 0) {
        a = r->script[r->script_head];
        r->script_head = (r->script_head + 1) % RCV_SCRIPT_MAX;
        r->script_len--;
    }
    pthread_mutex_unlock(&r->mu);
    if (a.status == 0)
        a.status = 200;
    return a;
}

static void record(receiver_t *r, struct MHD_Connection *c, const char *method, const char *url,
                   conn_state_t *cs, int status)
{
    rcv_request_t q;
    memset(&q, 0, sizeof q);
    snprintf(q.method, sizeof q.method, "%s", method);
    snprintf(q.path, sizeof q.path, "%s", url);
    copy_header(c, "Content-Type", q.content_type, sizeof q.content_type);
    copy_header(c, "X-Waymark-Message-Id", q.message_id, sizeof q.message_id);
    copy_header(c, "Idempotency-Key", q.idempotency_key, sizeof q.idempotency_key);
    copy_header(c, "X-Waymark-Attempt", q.attempt, sizeof q.attempt);
    copy_header(c, "X-Waymark-Channel", q.channel, sizeof q.channel);
    copy_header(c, "X-Waymark-Signature", q.signature, sizeof q.signature);
    q.body = cs->body;
    q.body_len = cs->len;
    cs->body = NULL;
    q.at_real_us = rcv_real_us();
    q.status = status;
    pthread_mutex_lock(&r->mu);
    if (r->n_reqs == r->cap_reqs) {
        r->cap_reqs = r->cap_reqs ? r->cap_reqs * 2 : 256;
        r->reqs = xrealloc(r->reqs, r->cap_reqs * sizeof *r->reqs);
    }
    r->reqs[r->n_reqs++] = q;
    pthread_mutex_unlock(&r->mu);
}

static void pause_ms(receiver_t *r, int ms)
{
    struct timespec step = {0, 10 * 1000000L};
    for (int waited = 0; waited < ms && !atomic_load(&r->stopping); waited += 10)
        nanosleep(&step, NULL);
}

static enum MHD_Result answer(receiver_t *r, struct MHD_Connection *c, rcv_answer_t a)
{
    static const char ok[] = "{\"ok\":true}";
    static const char bad[] = "{\"error\":\"scripted\"}";
    bool good = a.status >= 200 && a.status <= 299;
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        good ? sizeof ok - 1 : sizeof bad - 1, (void *)(good ? ok : bad), MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(resp, "Content-Type", "application/json");
    if (a.retry_after_s > 0) {
        char ra[24];
        snprintf(ra, sizeof ra, "%d", a.retry_after_s);
        MHD_add_response_header(resp, "Retry-After", ra);
    }
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)a.status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static void append_body(conn_state_t *cs, const char *data, size_t n)
{
    if (cs->len + n > RCV_BODY_MAX) {
        cs->too_big = true;
        return;
    }
    if (cs->len + n + 1 > cs->cap) {
        cs->cap = (cs->len + n + 1) * 2;
        cs->body = xrealloc(cs->body, cs->cap);
    }
    memcpy(cs->body + cs->len, data, n);
    cs->len += n;
    cs->body[cs->len] = '\0';
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    receiver_t *r = cls;
    conn_state_t *cs = *con_cls;
    if (!cs) {
        cs = calloc(1, sizeof *cs);
        if (!cs)
            return MHD_NO;
        *con_cls = cs;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        append_body(cs, upload_data, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    rcv_answer_t a = next_answer(r);
    if (cs->too_big)
        a = (rcv_answer_t){.status = 413};
    if (!cs->body)
        append_body(cs, "", 0);
    if (r->record)
        record(r, c, method, url, cs, a.status);
    atomic_fetch_add(&r->count, 1); /* after record: a counted request can be read */
    if (a.delay_ms > 0)
        pause_ms(r, a.delay_ms);
    return answer(r, c, a);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    conn_state_t *cs = *con_cls;
    if (cs) {
        free(cs->body);
        free(cs);
    }
    *con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    receiver_t *r = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        atomic_fetch_add(&r->connections, 1);
}

int receiver_open(receiver_t **out, bool threaded, bool record_requests)
{
    receiver_t *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    r->record = record_requests;
    pthread_mutex_init(&r->mu, NULL);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    unsigned flags = threaded ? MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD
                              : MHD_USE_EPOLL_INTERNAL_THREAD;
    r->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, r, MHD_OPTION_SOCK_ADDR, &sa,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, r,
                              MHD_OPTION_NOTIFY_CONNECTION, on_connection, r,
                              MHD_OPTION_CONNECTION_LIMIT, 2000u, MHD_OPTION_CONNECTION_TIMEOUT,
                              60u, MHD_OPTION_END);
    const union MHD_DaemonInfo *info =
        r->mhd ? MHD_get_daemon_info(r->mhd, MHD_DAEMON_INFO_BIND_PORT) : NULL;
    if (!info) {
        receiver_close(r);
        return -1;
    }
    r->port = info->port;
    *out = r;
    return 0;
}

void receiver_close(receiver_t *r)
{
    if (!r)
        return;
    atomic_store(&r->stopping, true);
    if (r->mhd)
        MHD_stop_daemon(r->mhd);
    for (size_t i = 0; i < r->n_reqs; i++)
        free(r->reqs[i].body);
    free(r->reqs);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

int receiver_port(const receiver_t *r) { return r->port; }

void receiver_url(const receiver_t *r, const char *path, char *buf, size_t n)
{
    snprintf(buf, n, "http://127.0.0.1:%d%s", r->port, path);
}

void receiver_script(receiver_t *r, int count, rcv_answer_t a)
{
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < count && r->script_len < RCV_SCRIPT_MAX; i++) {
        r->script[(r->script_head + r->script_len) % RCV_SCRIPT_MAX] = a;
        r->script_len++;
    }
    pthread_mutex_unlock(&r->mu);
}

void receiver_set_default(receiver_t *r, rcv_answer_t a)
{
    pthread_mutex_lock(&r->mu);
    r->dflt = a;
    pthread_mutex_unlock(&r->mu);
}

size_t receiver_count(receiver_t *r) { return atomic_load(&r->count); }

size_t receiver_connections(receiver_t *r) { return atomic_load(&r->connections); }

size_t receiver_count_ok(receiver_t *r, const char *id)
{
    size_t n = 0;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n_reqs; i++) {
        const rcv_request_t *q = &r->reqs[i];
        if (q->status >= 200 && q->status <= 299 && strcmp(q->message_id, id) == 0)
            n++;
    }
    pthread_mutex_unlock(&r->mu);
    return n;
}

int receiver_get(receiver_t *r, size_t i, rcv_request_t *out)
{
    pthread_mutex_lock(&r->mu);
    int rc = -1;
    if (i < r->n_reqs) {
        *out = r->reqs[i];
        out->body = xrealloc(NULL, out->body_len + 1);
        memcpy(out->body, r->reqs[i].body, out->body_len + 1);
        rc = 0;
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

void rcv_request_free(rcv_request_t *q)
{
    free(q->body);
    q->body = NULL;
}
