/*
 * dispatch.h - delivery of outbox messages to channel endpoints over HTTP,
 * on libcurl multi, from one dispatcher thread.
 *
 * The journey runtime writes each message to its partition's outbox in the
 * same transaction as the transition that produced it, then hands it to the
 * dispatcher. The dispatcher POSTs it (webhook / SMS / push / WeCom provider
 * adapters), retries transient failures with exponential backoff and jitter,
 * and reports the final outcome through a callback, which the runtime turns
 * into a state change and an event in the partition. The message id is sent
 * with every attempt so providers can drop duplicates: delivery is at least
 * once, never with a new id.
 *
 * Thread safety: submit may be called from any thread; callbacks run on the
 * dispatcher thread and must not block.
 */
#ifndef WAYMARK_DISPATCH_H
#define WAYMARK_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wm_dispatcher wm_dispatcher_t;

typedef enum wm_channel_kind {
    WM_CH_WEBHOOK,      /* generic JSON webhook */
    WM_CH_SMS,          /* SMS gateway: {"to","text","message_id",...} */
    WM_CH_PUSH,         /* push gateway: {"token"/"user","title","body",...} */
    WM_CH_WECOM,        /* WeCom (企业微信) message API shape */
} wm_channel_kind_t;

int wm_channel_kind_parse(const char *s, wm_channel_kind_t *out);
const char *wm_channel_kind_name(wm_channel_kind_t k);

typedef struct wm_dispatch_msg {
    const char *id;             /* deterministic message id (<= 127 bytes) */
    const char *channel;        /* channel name, for logs and metrics */
    wm_channel_kind_t kind;
    const char *url;
    const char *secret;         /* HMAC-SHA256 key, or NULL: no signature */
    const char *body;           /* the request body (JSON), already shaped for the kind */
    size_t body_len;
    uint32_t attempt;           /* attempts already made (0 for a new message) */
    int64_t not_before_ms;      /* do not send before (quiet hours hold, retry after restart) */
    void *user;                 /* opaque, handed back in the outcome */
} wm_dispatch_msg_t;

typedef enum wm_dispatch_outcome {
    WM_DISPATCH_DELIVERED,      /* 2xx */
    WM_DISPATCH_FAILED,         /* permanent (4xx other than 408/429) or attempts exhausted */
} wm_dispatch_outcome_t;

typedef struct wm_dispatch_result {
    const char *id;
    wm_dispatch_outcome_t outcome;
    int http_status;            /* last status, 0 if no HTTP answer */
    const char *error;          /* last error text (curl or HTTP), "" on success */
    uint32_t attempts;
    int64_t latency_ms;         /* submit -> final answer */
    void *user;
} wm_dispatch_result_t;

typedef void (*wm_dispatch_done_fn)(void *ctx, const wm_dispatch_result_t *r);

typedef struct wm_dispatch_opts {
    uint32_t max_in_flight;     /* concurrent requests (default 64) */
    uint32_t queue_max;         /* queued messages before submit says WM_EBUSY (default 100000) */
    uint32_t max_attempts;      /* default 5; then FAILED (dead letter) */
    uint32_t backoff_base_ms;   /* default 500: 0.5 s, 1 s, 2 s, ... with +-25 % jitter */
    uint32_t backoff_max_ms;    /* default 60000 */
    uint32_t timeout_ms;        /* per request (default 5000) */
    wm_dispatch_done_fn done;
    void *done_ctx;
} wm_dispatch_opts_t;

int wm_dispatcher_open(const wm_dispatch_opts_t *opts, wm_dispatcher_t **out);
/* Stops the thread; messages still queued are dropped (they stay in the
 * runtime's outbox and are submitted again after restart). */
void wm_dispatcher_close(wm_dispatcher_t *d);
/* Queues a copy of msg. Returns 0, WM_EBUSY when full, WM_EINVAL. */
int wm_dispatcher_submit(wm_dispatcher_t *d, const wm_dispatch_msg_t *msg);

typedef struct wm_dispatch_stats {
    uint64_t submitted, delivered, failed, retries, in_flight, queued;
} wm_dispatch_stats_t;
void wm_dispatcher_stats(wm_dispatcher_t *d, wm_dispatch_stats_t *out);

/* The signature header value for a body: "t=<unix s>,v1=<hex hmac>" where the
 * HMAC-SHA256 (key = secret) is over "<t>.<body>". Receivers verify it. */
void wm_dispatch_sign(const char *secret, int64_t unix_s, const char *body, size_t len,
                      char out[128]);

#endif
