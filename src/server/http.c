/*
 * http.c - request plumbing on libmicrohttpd: body accumulation with a hard
 * bound, raw (not unescaped) query strings, CORS, client address, and the
 * dispatch to the route handlers in routes.c.
 *
 * Thread per connection: ingest handlers block until their records are
 * durable (group commit), so a connection must not hold up others.
 */
#include "http_internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "waymark/alloc.h"
#include "waymark/error.h"
#include "waymark/limits.h"
#include "waymark/server.h"

struct wm_server {
    struct MHD_Daemon *daemon;
    wm_engine_t *engine;
    wm_static_t *web;
    uint16_t port;
};

/* Keep everything raw: Sensors payloads are base64 where '+' matters, and
 * the handlers decode exactly what they need with wm_form_parse. */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    return strlen(s);
}

typedef struct query_builder {
    wm_buf_t *b;
} query_builder_t;

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    query_builder_t *qb = cls;
    if (qb->b->len)
        wm_buf_putc(qb->b, '&');
    wm_buf_puts(qb->b, key);
    if (value) {
        wm_buf_putc(qb->b, '=');
        wm_buf_puts(qb->b, value);
    }
    return MHD_YES;
}

static void client_ip(struct MHD_Connection *c, char *out, size_t len)
{
    const char *xff = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Forwarded-For");
    if (xff && *xff) {
        size_t n = strcspn(xff, ", ");
        snprintf(out, len, "%.*s", (int)n, xff);
        return;
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    out[0] = '\0';
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)len);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)len);
}

void wm__http_cors(wm_req_t *r, struct MHD_Response *resp)
{
    const char *origin = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Origin");
    if (origin && *origin) {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin);
        MHD_add_response_header(resp, "Access-Control-Allow-Credentials", "true");
        MHD_add_response_header(resp, "Vary", "Origin");
    } else {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
    }
}

int wm__http_send(wm_req_t *r, unsigned status, const char *content_type, const void *body,
                  size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    if (content_type)
        MHD_add_response_header(resp, "Content-Type", content_type);
    wm__http_cors(r, resp);
    if (status == 503 || status == 429)
        MHD_add_response_header(resp, "Retry-After", "1");
    if (status == 401)
        MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"waymark\"");
    int rc = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

int wm__http_json(wm_req_t *r, unsigned status, const wm_buf_t *b)
{
    if (b->err)
        return wm__http_error(r, 500, "internal", "", "response too large");
    return wm__http_send(r, status, "application/json; charset=utf-8", b->data ? b->data : "{}",
                         b->data ? b->len : 2);
}

int wm__http_error(wm_req_t *r, unsigned status, const char *code, const char *field,
                   const char *msg)
{
    wm_buf_t b;
    wm_buf_init(&b, 0);
    wm_buf_puts(&b, "{\"error\":{\"code\":");
    wm_buf_json_str(&b, code, strlen(code));
    if (field && *field) {
        wm_buf_puts(&b, ",\"field\":");
        wm_buf_json_str(&b, field, strlen(field));
    }
    wm_buf_puts(&b, ",\"message\":");
    wm_buf_json_str(&b, msg, strlen(msg));
    wm_buf_puts(&b, "}}");
    int rc = wm__http_send(r, status, "application/json; charset=utf-8", b.data, b.len);
    wm_buf_release(&b);
    return rc;
}

const char *wm__http_header(wm_req_t *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

typedef struct conn_state {
    wm_buf_t body;
    bool too_large;
} conn_state_t;

static void request_done(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    conn_state_t *cs = *con_cls;
    if (!cs)
        return;
    wm_buf_release(&cs->body);
    wm_free(cs);
    *con_cls = NULL;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
    wm_server_t *s = cls;
    conn_state_t *cs = *con_cls;
    if (!cs) {
        cs = wm_calloc(1, sizeof *cs);
        if (!cs)
            return MHD_NO;
        wm_buf_init(&cs->body, WM_HTTP_BODY_MAX);
        *con_cls = cs;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!cs->too_large) {
            wm_buf_append(&cs->body, upload_data, *upload_data_size);
            cs->too_large = cs->body.err != 0;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    wm_req_t r = {.conn = conn, .engine = s->engine, .method = method, .path = url, .web = s->web};
    if (cs->too_large)
        return wm__http_error(&r, 413, "body_too_large", "",
                              "request body exceeds the limit of 16 MiB");
    wm_buf_t q;
    wm_buf_init(&q, WM_HTTP_BODY_MAX);
    query_builder_t qb = {&q};
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_arg, &qb);
    char ip[64];
    client_ip(conn, ip, sizeof ip);
    r.query = q.data ? q.data : "";
    r.query_len = q.len;
    r.body = cs->body.data ? cs->body.data : "";
    r.body_len = cs->body.len;
    r.ip = ip;
    int rc = wm__route(&r);
    wm_buf_release(&q);
    return rc == MHD_YES ? MHD_YES : MHD_NO;
}

static int parse_listen(const char *listen, struct sockaddr_in *sa)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (!colon || (size_t)(colon - listen) >= sizeof host)
        return WM_EINVAL;
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return WM_EINVAL;
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    if (!*host)
        strcpy(host, "0.0.0.0");
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : WM_EINVAL;
}

int wm_server_start(const wm_server_opts_t *opts, wm_server_t **out)
{
    struct sockaddr_in sa;
    if (parse_listen(opts->listen ? opts->listen : "127.0.0.1:8106", &sa)) {
        fprintf(stderr, "waymark: bad --listen address '%s' (want HOST:PORT)\n", opts->listen);
        return WM_EINVAL;
    }
    wm_server_t *s = wm_calloc(1, sizeof *s);
    if (!s)
        return WM_ENOMEM;
    s->engine = opts->engine;
    if (wm__static_open(opts->web_dir, &s->web)) {
        wm_free(s);
        return WM_ENOMEM;
    }
    unsigned limit = opts->connection_limit ? opts->connection_limit : 1024;
    s->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
            MHD_USE_ERROR_LOG,
        0, NULL, NULL, handle, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_NOTIFY_COMPLETED, request_done, s, MHD_OPTION_UNESCAPE_CALLBACK, no_unescape,
        NULL, MHD_OPTION_CONNECTION_LIMIT, limit, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1, MHD_OPTION_END);
    if (!s->daemon) {
        fprintf(stderr, "waymark: cannot listen on %s\n", opts->listen);
        wm__static_close(s->web);
        wm_free(s);
        return WM_EIO;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : ntohs(sa.sin_port);
    *out = s;
    return 0;
}

uint16_t wm_server_port(const wm_server_t *s) { return s->port; }

void wm_server_stop(wm_server_t *s)
{
    if (!s)
        return;
    /* a query may run for minutes on a connection thread the daemon joins */
    wm_engine_queries_stop(s->engine);
    MHD_stop_daemon(s->daemon);
    wm__static_close(s->web);
    wm_free(s);
}

const char *wm_server_web_dir(const wm_server_t *s, bool *present)
{
    return wm__static_dir(s->web, present);
}
