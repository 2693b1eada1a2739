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

#include "waymark/buf.h"

typedef struct wm_dispatcher wm_dispatcher_t;

typedef enum wm_channel_kind {
    WM_CH_WEBHOOK,      /* generic JSON webhook */
    WM_CH_SMS,          /* SMS gateway: {"message_id","to","text","sign"} */
    WM_CH_PUSH,         /* push gateway: {"message_id","to","title","body","data"} */
    WM_CH_WECOM,        /* WeCom (企业微信) message API shape */
} wm_channel_kind_t;

/* "webhook", "sms", "push", "wecom" (exact, lower case) -> kind.
 * Returns 0, or WM_EINVAL for anything else (*out untouched). */
int wm_channel_kind_parse(const char *s, wm_channel_kind_t *out);
/* The name above for a kind; "unknown" for an out-of-range value. Static. */
const char *wm_channel_kind_name(wm_channel_kind_t k);

/*
 * One message to deliver. Every string is copied by wm_dispatcher_submit, so
 * the caller may free them as soon as submit returns. id goes into request
 * headers as is: 1..WM_DISPATCH_ID_LEN_MAX bytes of printable ASCII
 * (0x21..0x7e). channel is UTF-8 without control characters, at most
 * WM_DISPATCH_CHANNEL_LEN_MAX bytes; its header value is percent-encoded
 * beyond ASCII and for '%' (docs/channels.md).
 */
typedef struct wm_dispatch_msg {
    const char *id;             /* deterministic message id (<= 127 bytes) */
    const char *channel;        /* channel name, for logs and metrics; NULL = "" */
    wm_channel_kind_t kind;
    const char *url;            /* http:// or https:// (<= WM_DISPATCH_URL_MAX bytes) */
    const char *secret;         /* HMAC-SHA256 key, or NULL / "": no signature */
    const char *body;           /* the request body (JSON), already shaped for the kind */
    size_t body_len;            /* <= WM_DISPATCH_BODY_MAX */
    uint32_t attempt;           /* attempts already made (0 for a new message); at least
                                 * one more attempt is made even if >= max_attempts */
    int64_t not_before_ms;      /* wall clock, Unix epoch ms: do not send before (quiet
                                 * hours hold, retry after restart); 0 or past = now */
    void *user;                 /* opaque, handed back in the outcome */
} wm_dispatch_msg_t;

typedef enum wm_dispatch_outcome {
    WM_DISPATCH_DELIVERED,      /* 2xx */
    WM_DISPATCH_FAILED,         /* permanent (4xx other than 408/429) or attempts exhausted */
} wm_dispatch_outcome_t;

/* The final outcome of one message. Pointers are valid only during the
 * callback (they point into the dispatcher's copy of the message). */
typedef struct wm_dispatch_result {
    const char *id;
    wm_dispatch_outcome_t outcome;
    int http_status;            /* last status, 0 if no HTTP answer */
    const char *error;          /* last error text (curl or HTTP), "" on success */
    uint32_t attempts;
    int64_t latency_ms;         /* submit -> final answer */
    void *user;
} wm_dispatch_result_t;

/* Called exactly once per accepted message, on the dispatcher thread, when
 * it is DELIVERED or FAILED - never for messages still queued or in flight
 * at wm_dispatcher_close. It must not block and must not call
 * wm_dispatcher_close; it may call wm_dispatcher_submit (which may say
 * WM_EBUSY). */
typedef void (*wm_dispatch_done_fn)(void *ctx, const wm_dispatch_result_t *r);

typedef struct wm_dispatch_opts {
    uint32_t max_in_flight;     /* concurrent requests (default 64) */
    uint32_t queue_max;         /* queued messages before submit says WM_EBUSY (default 100000) */
    uint32_t max_attempts;      /* default 5; then FAILED (dead letter) */
    uint32_t backoff_base_ms;   /* default 500: 0.5 s, 1 s, 2 s, ... with +-25 % jitter */
    uint32_t backoff_max_ms;    /* default 60000 */
    uint32_t timeout_ms;        /* per request, connect included (default 5000) */
    wm_dispatch_done_fn done;   /* required */
    void *done_ctx;
} wm_dispatch_opts_t;
/* Zero in a numeric field means "the default". Bounds (WM_EINVAL beyond):
 * max_in_flight <= WM_DISPATCH_IN_FLIGHT_MAX, queue_max <= WM_DISPATCH_QUEUE_MAX,
 * max_attempts <= WM_DISPATCH_ATTEMPTS_MAX, backoff_base_ms <= backoff_max_ms.
 *
 * Outcome of one attempt:
 *   2xx                                  -> DELIVERED
 *   408, 429, 5xx, connect error, timeout,
 *   any other transfer error             -> retry after backoff_base_ms * 2^(n-1)
 *                                           (n = attempts made), capped at
 *                                           backoff_max_ms, +-25 % jitter; on 429
 *                                           and 503 a Retry-After (seconds or
 *                                           HTTP date) replaces it, capped at
 *                                           backoff_max_ms, never shortened by jitter
 *   other 1xx/3xx/4xx, malformed URL,
 *   unsupported scheme                   -> FAILED at once (redirects are not followed)
 *   a retryable outcome when attempts
 *   made >= max_attempts                 -> FAILED
 */

/* Starts the dispatcher thread. Returns 0 and *out (free with
 * wm_dispatcher_close), WM_EINVAL (bad opts), WM_ENOMEM, or WM_EIO (libcurl
 * or thread creation failed). */
int wm_dispatcher_open(const wm_dispatch_opts_t *opts, wm_dispatcher_t **out);
/* Stops the thread and frees everything; returns promptly even with requests
 * in flight: those transfers are aborted and, like messages still queued or
 * waiting for a retry, are dropped WITHOUT a done callback (they stay in the
 * runtime's outbox and are submitted again after restart, with the same id,
 * so the provider may see a duplicate - at least once). Must not be called
 * from the done callback. NULL is a no-op. */
void wm_dispatcher_close(wm_dispatcher_t *d);
/* Queues a copy of msg (strings and body copied). Thread-safe. Returns 0,
 * WM_EBUSY when queue_max messages are already queued (waiting to be sent,
 * for not_before_ms or for a retry; in-flight ones do not count), WM_EINVAL
 * (see wm_dispatch_msg_t), WM_ENOMEM, WM_ECLOSED while closing. A message
 * coming back for a retry is always re-queued, so the queue may briefly hold
 * queue_max + max_in_flight messages. */
int wm_dispatcher_submit(wm_dispatcher_t *d, const wm_dispatch_msg_t *msg);

/* Counters since open. queued = accepted, not yet finished and not in
 * flight (includes messages waiting for not_before_ms or a retry). */
typedef struct wm_dispatch_stats {
    uint64_t submitted, delivered, failed, retries, in_flight, queued;
} wm_dispatch_stats_t;
/* Thread-safe snapshot (each counter read atomically; not one consistent cut). */
void wm_dispatcher_stats(wm_dispatcher_t *d, wm_dispatch_stats_t *out);

/* The signature header value for a body: "t=<unix s>,v1=<hex hmac>" where the
 * HMAC-SHA256 (key = secret, its bytes up to the NUL) is over "<t>.<body>",
 * hex in lower case. Receivers verify it (docs/channels.md). out is always
 * NUL-terminated (at most 3 + 20 + 4 + 64 bytes); "" if HMAC fails. */
void wm_dispatch_sign(const char *secret, int64_t unix_s, const char *body, size_t len,
                      char out[128]);

/*
 * Body shaping for the runtime (the dispatcher itself sends bodies as given).
 * Fields that are NULL are written as JSON null; extra is the text of a JSON
 * object (NULL or "" = {}). Shapes, see docs/channels.md:
 *   WM_CH_WEBHOOK {"message_id","user_id","channel","title","text","journey","node","data":extra}
 *   WM_CH_SMS     {"message_id","to","text","sign","journey","node"}
 *   WM_CH_PUSH    {"message_id","to","title","body":text,"journey","node","data":extra}
 *   WM_CH_WECOM   {"msgid","touser":to | "external_userid":[to],"msgtype":"text",
 *                  "text":{"content":text},"journey","node"}
 */
typedef struct wm_dispatch_content {
    const char *message_id;
    const char *user_id;        /* Waymark user id (webhook) */
    const char *channel;        /* channel name (webhook) */
    const char *to;             /* phone (E.164), push token, or WeCom userid / external_userid */
    const char *title;
    const char *text;
    const char *journey;        /* journey id (webhook) */
    const char *node;           /* node id (webhook) */
    const char *sign;           /* SMS signature name, e.g. the brand (sms) */
    bool wecom_external;        /* WeCom: to is an external_userid (customer contact) */
    const char *extra;          /* JSON object text for "data" (webhook, push) */
} wm_dispatch_content_t;

/* Appends the body for kind to out (does not reset it). Errors land in
 * out->err, sticky like every wm_buf error: WM_EINVAL when extra is not a
 * JSON object or kind is out of range, WM_ENOMEM / WM_ELIMIT from the buffer.
 * Check out->err before using out->data. */
void wm_dispatch_shape(wm_channel_kind_t kind, const wm_dispatch_content_t *c, wm_buf_t *out);

#endif
