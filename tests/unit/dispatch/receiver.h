/*
 * receiver.h - a real HTTP endpoint on 127.0.0.1 for the dispatcher's tests
 * and benchmark, on libmicrohttpd in the calling process.
 *
 * Why in-process: the tests assert what arrived on the wire (headers, body,
 * attempt numbers, arrival times) and script what the endpoint answers, and
 * a receiver in the same process can do both without a protocol of its own.
 * The bytes still cross a loopback TCP connection through libcurl and
 * libmicrohttpd, so keep-alive, timeouts and refused connections are real.
 *
 * The test executable and bench/dispatch_latency.c #include "receiver.c"
 * (the Makefile links one source file per test).
 */
#ifndef WM_TEST_RECEIVER_H
#define WM_TEST_RECEIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What the receiver answers to one request. A zero struct means 200. */
typedef struct rcv_answer {
    int status;             /* 0 = 200 */
    int retry_after_s;      /* > 0: send "Retry-After: <s>" */
    int delay_ms;           /* sleep this long before answering (cut short by close) */
} rcv_answer_t;

/* One recorded request (a copy; body owned by the copy: free with rcv_request_free). */
typedef struct rcv_request {
    char method[16];
    char path[256];
    char content_type[96];
    char message_id[160];
    char idempotency_key[160];
    char attempt[16];
    char channel[160];
    char signature[192];
    char *body;
    size_t body_len;
    int64_t at_real_us;     /* CLOCK_REALTIME when the whole body had arrived */
    int status;             /* what was answered */
} rcv_request_t;

typedef struct receiver receiver_t;

/* Starts listening on 127.0.0.1:<ephemeral>. threaded: one thread per
 * connection (needed when answers are delayed); else one epoll thread (fast,
 * for the benchmark). record: keep every request; else only count them.
 * Returns 0 or -1. */
int receiver_open(receiver_t **out, bool threaded, bool record);
void receiver_close(receiver_t *r);
int receiver_port(const receiver_t *r);
/* "http://127.0.0.1:<port><path>" */
void receiver_url(const receiver_t *r, const char *path, char *buf, size_t n);

/* The next `count` requests get `a` (appended after earlier scripted ones);
 * afterwards requests get the default answer. */
void receiver_script(receiver_t *r, int count, rcv_answer_t a);
void receiver_set_default(receiver_t *r, rcv_answer_t a);

size_t receiver_count(receiver_t *r);
/* TCP connections accepted so far: keep-alive reuse shows as few of them. */
size_t receiver_connections(receiver_t *r);
/* Requests recorded whose answer was 2xx, for one id (record mode only). */
size_t receiver_count_ok(receiver_t *r, const char *id);
/* Copies request i (0-based, arrival order). Returns 0 or -1 if out of range. */
int receiver_get(receiver_t *r, size_t i, rcv_request_t *out);
void rcv_request_free(rcv_request_t *q);

/* Wall clock in microseconds, the clock of at_real_us. */
int64_t rcv_real_us(void);

#endif
