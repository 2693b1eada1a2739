/*
 * shape.c - channel kinds and the request bodies of each kind (see
 * wm_dispatch_shape in include/waymark/dispatch.h and docs/channels.md).
 *
 * Why here and not in the dispatcher: the dispatcher sends bytes it is given,
 * because the body is part of the outbox row written in the journey's
 * transaction and must be the same on every attempt, also after a restart.
 * The runtime shapes it once, with these functions, before writing the row.
 * Every field is always present (null when unset) so receivers can rely on
 * one schema per kind; the caller's "data" object is checked to be a JSON
 * object, because a provider that receives a broken body answers 400 and the
 * message would be dead-lettered far from the template that caused it.
 */
#include <string.h>

#include "waymark/arena.h"
#include "waymark/dispatch.h"
#include "waymark/error.h"
#include "waymark/json.h"

static const char *const kind_names[] = {
    [WM_CH_WEBHOOK] = "webhook",
    [WM_CH_SMS] = "sms",
    [WM_CH_PUSH] = "push",
    [WM_CH_WECOM] = "wecom",
};

int wm_channel_kind_parse(const char *s, wm_channel_kind_t *out)
{
    if (!s || !out)
        return WM_EINVAL;
    for (size_t i = 0; i < sizeof kind_names / sizeof kind_names[0]; i++) {
        if (strcmp(s, kind_names[i]) == 0) {
            *out = (wm_channel_kind_t)i;
            return 0;
        }
    }
    return WM_EINVAL;
}

const char *wm_channel_kind_name(wm_channel_kind_t k)
{
    return (unsigned)k <= WM_CH_WECOM ? kind_names[k] : "unknown";
}

static void set_err(wm_buf_t *b, int err)
{
    if (!b->err)
        b->err = err;
}

/* ,"key":"value" or ,"key":null - `first` drops the comma. */
static void field(wm_buf_t *b, bool first, const char *key, const char *val)
{
    if (!first)
        wm_buf_putc(b, ',');
    wm_buf_putc(b, '"');
    wm_buf_puts(b, key);
    wm_buf_puts(b, "\":");
    if (val)
        wm_buf_json_str(b, val, strlen(val));
    else
        wm_buf_puts(b, "null");
}

static bool is_object(const char *text, size_t len)
{
    wm_arena_t a;
    wm_json_t *v = NULL;
    wm_json_error_t err;
    wm_arena_init(&a, 0);
    int rc = wm_json_parse(&a, text, len, &v, &err);
    bool ok = rc == 0 && v && v->type == WM_JSON_OBJECT;
    wm_arena_release(&a);
    return ok;
}

static void data_field(wm_buf_t *b, const char *extra)
{
    wm_buf_puts(b, ",\"data\":");
    size_t n = extra ? strlen(extra) : 0;
    if (n == 0) {
        wm_buf_puts(b, "{}");
        return;
    }
    if (!is_object(extra, n)) {
        set_err(b, WM_EINVAL);
        return;
    }
    wm_buf_append(b, extra, n);
}

static void shape_webhook(const wm_dispatch_content_t *c, wm_buf_t *b)
{
    field(b, true, "message_id", c->message_id);
    field(b, false, "user_id", c->user_id);
    field(b, false, "channel", c->channel);
    field(b, false, "title", c->title);
    field(b, false, "text", c->text);
    field(b, false, "journey", c->journey);
    field(b, false, "node", c->node);
    data_field(b, c->extra);
}

/* journey and node ride along on every shape: providers ignore what they do
 * not know, and operators can trace a message from the provider's console */
static void origin(const wm_dispatch_content_t *c, wm_buf_t *b)
{
    field(b, false, "journey", c->journey);
    field(b, false, "node", c->node);
}

static void shape_sms(const wm_dispatch_content_t *c, wm_buf_t *b)
{
    field(b, true, "message_id", c->message_id);
    field(b, false, "to", c->to);
    field(b, false, "text", c->text);
    field(b, false, "sign", c->sign);
    origin(c, b);
}

static void shape_push(const wm_dispatch_content_t *c, wm_buf_t *b)
{
    field(b, true, "message_id", c->message_id);
    field(b, false, "to", c->to);
    field(b, false, "title", c->title);
    field(b, false, "body", c->text);
    origin(c, b);
    data_field(b, c->extra);
}

/* WeCom: application messages address "touser" (an internal userid);
 * customer-contact messages address "external_userid", a list. */
static void shape_wecom(const wm_dispatch_content_t *c, wm_buf_t *b)
{
    field(b, true, "msgid", c->message_id);
    if (c->wecom_external) {
        wm_buf_puts(b, ",\"external_userid\":[");
        if (c->to)
            wm_buf_json_str(b, c->to, strlen(c->to));
        wm_buf_putc(b, ']');
    } else {
        field(b, false, "touser", c->to);
    }
    field(b, false, "msgtype", "text");
    wm_buf_puts(b, ",\"text\":{");
    field(b, true, "content", c->text);
    wm_buf_putc(b, '}');
    origin(c, b);
}

void wm_dispatch_shape(wm_channel_kind_t kind, const wm_dispatch_content_t *c, wm_buf_t *out)
{
    if (!c || (unsigned)kind > WM_CH_WECOM) {
        set_err(out, WM_EINVAL);
        return;
    }
    wm_buf_putc(out, '{');
    switch (kind) {
    case WM_CH_WEBHOOK: shape_webhook(c, out); break;
    case WM_CH_SMS: shape_sms(c, out); break;
    case WM_CH_PUSH: shape_push(c, out); break;
    case WM_CH_WECOM: shape_wecom(c, out); break;
    }
    wm_buf_putc(out, '}');
}
