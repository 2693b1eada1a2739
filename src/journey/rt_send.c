/*
 * rt_send.c - what happens when an instance reaches a send, webhook or
 * advisor_task node, and the commands that later change a message or a lead
 * (delivery outcome, provider receipt, inbox read, lead claim / complete,
 * consent).
 *
 * Send-time rules, in this order, each logged when it suppresses a message:
 *   holdout (project-wide stable share) -> control arm -> channel consent ->
 *   product suitability (item risk R1-R5 above customer risk C1-C5) ->
 *   frequency caps (journey and project, per channel and overall, rolling
 *   windows) -> quiet hours in the user's zone (hold until the window opens,
 *   or skip) -> template rendering (a missing variable without a fallback).
 * All of a user's sends happen on the user's partition thread, in order, so
 * the caps are exact across concurrent journeys: no overshoot.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_internal.h"
#include "store/evidx.h"
#include "waymark/limits.h"
#include "waymark/alloc.h"
#include "waymark/error.h"
#include "waymark/strmap.h"


/* ---- ids ---- */

static void make_id(char *out, size_t cap, char prefix, const wm_inst_t *in, uint32_t node)
{
    uint64_t parts[4] = {in->id, in->version, node, in->steps};
    uint64_t h = wm_hash64(in->key, strlen(in->key), wm_hash64(in->project, strlen(in->project), 7));
    h = wm_hash64(parts, sizeof parts, h);
    snprintf(out, cap, "%c%016llx-%016llx", prefix, (unsigned long long)in->user_id,
             (unsigned long long)h);
}

uint64_t wm__jrt_user_of_id(const char *id)
{
    if (!id || (id[0] != 'm' && id[0] != 'l'))
        return 0;
    char *end;
    unsigned long long u = strtoull(id + 1, &end, 16);
    return *end == '-' ? u : 0;
}

static uint32_t node_index(const wm_jversion_t *v, const wm_jnode_t *n)
{
    return (uint32_t)(n - v->def->nodes);
}

/* ---- levels: "C3" / "R2" / 3 ---- */

static int level_of(const wm_json_t *v)
{
    if (!v)
        return -1;
    if (v->type == WM_JSON_NUMBER)
        return (int)v->u.num;
    if (v->type != WM_JSON_STRING || v->len < 1)
        return -1;
    const char *s = v->u.str;
    if ((s[0] == 'C' || s[0] == 'R' || s[0] == 'c' || s[0] == 'r') && s[1] >= '0' && s[1] <= '9')
        return atoi(s + 1);
    return s[0] >= '0' && s[0] <= '9' ? atoi(s) : -1;
}

static bool list_has(const wm_json_t *list, const char *s)
{
    for (const wm_json_t *c = list && list->type == WM_JSON_ARRAY ? list->u.child : NULL; c; c = c->next)
        if (c->type == WM_JSON_STRING && !strcmp(c->u.str, s))
            return true;
    return false;
}

/* ---- frequency ---- */

static size_t freq_key(unsigned char *kb, size_t cap, uint64_t user_id, const char *channel)
{
    size_t n = strlen(channel);
    if (8 + n > cap)
        return 0;
    wm_put_be64(kb, user_id);
    memcpy(kb + 8, channel, n);
    return 8 + n;
}

static uint32_t freq_count(wm_jtx_t *t, uint64_t user_id, const char *channel, int64_t since)
{
    unsigned char kb[128];
    MDB_val k = {freq_key(kb, sizeof kb, user_id, channel), kb}, v;
    if (!k.mv_size || mdb_get(t->txn, t->rt->freq, &k, &v))
        return 0;
    uint32_t n = 0;
    const unsigned char *p = v.mv_data;
    for (size_t i = 0; i + 8 <= v.mv_size; i += 8) {
        int64_t x;
        memcpy(&x, p + i, 8);
        n += x > since;
    }
    return n;
}

static int freq_record(wm_jtx_t *t, uint64_t user_id, const char *channel)
{
    unsigned char kb[128];
    MDB_val k = {freq_key(kb, sizeof kb, user_id, channel), kb}, v;
    if (!k.mv_size)
        return 0;
    int64_t times[WM_FREQ_KEEP];
    size_t n = 0;
    if (mdb_get(t->txn, t->rt->freq, &k, &v) == 0) {
        n = v.mv_size / 8;
        if (n > WM_FREQ_KEEP - 1) {
            /* keep the newest WM_FREQ_KEEP - 1 (appended in time order) */
            memcpy(times, (const char *)v.mv_data + (n - (WM_FREQ_KEEP - 1)) * 8, (WM_FREQ_KEEP - 1) * 8);
            n = WM_FREQ_KEEP - 1;
        } else {
            memcpy(times, v.mv_data, n * 8);
        }
    }
    times[n++] = t->now_ms;
    v.mv_size = n * 8;
    v.mv_data = times;
    return mdb_put(t->txn, t->rt->freq, &k, &v, 0) ? WM_EIO : 0;
}

static const char *cap_exceeded(wm_jtx_t *t, uint64_t user_id, const char *channel,
                                const wm_freq_cap_t *caps, uint32_t n, char *detail, size_t dl)
{
    for (uint32_t i = 0; i < n; i++) {
        const wm_freq_cap_t *c = &caps[i];
        const char *bucket = c->channel ? c->channel : "*";
        if (c->channel && strcmp(c->channel, channel))
            continue;
        uint32_t sent = freq_count(t, user_id, bucket, t->now_ms - c->per_ms);
        if (sent >= c->max) {
            snprintf(detail, dl, "%u of %u sent on %s within %lld ms", sent, c->max, bucket,
                     (long long)c->per_ms);
            return "frequency_cap";
        }
    }
    return NULL;
}

/* ---- quiet hours ---- */

static int hhmm(const char *s)
{
    int h, m;
    return s && sscanf(s, "%d:%d", &h, &m) == 2 ? h * 60 + m : -1;
}

/* Returns 0 when outside quiet hours, else the instant the window ends. */
static int64_t quiet_until(wm_jtx_t *t, const wm_journey_def_t *d, const wm_json_t *profile,
                           const char *project_tz)
{
    int from = hhmm(d->settings.quiet_from), to = hhmm(d->settings.quiet_to);
    if (from < 0 || to < 0 || from == to)
        return 0;
    int tz = wm__rt_tz_offset(t, profile, d->settings.quiet_tz_from,
                              d->settings.default_tz ? d->settings.default_tz : project_tz, t->now_ms);
    int64_t local = t->now_ms + (int64_t)tz * 60000;
    int64_t day0 = (local >= 0 ? local / 86400000 : (local - 86399999) / 86400000) * 86400000;
    int minute = (int)((local - day0) / 60000);
    bool quiet = from < to ? (minute >= from && minute < to) : (minute >= from || minute < to);
    if (!quiet)
        return 0;
    int64_t end_local = day0 + (int64_t)to * 60000;
    if (minute >= to)
        end_local += 86400000;
    return end_local - (int64_t)tz * 60000;
}

/* ---- rendering ---- */

typedef struct render_ctx {
    wm_jtx_t *t;
    const wm_json_t *profile, *event, *item;
    const wm_inst_t *in;
    const wm_jversion_t *v;
    wm_json_t *scratch;
    const wm_json_t *recs;      /* recommendations, fetched at the first {{recommend.*}} */
    bool recs_fetched;
} render_ctx_t;

/* {{recommend.N.field}}: the N-th product recommended to the customer
 * (fund_name = name); the answer is fetched once per render. */
static const wm_json_t *lookup_recommend(render_ctx_t *r, const char *name)
{
    wm_jrt_t *rt = r->t->rt;
    if (!r->recs_fetched) {
        r->recs_fetched = true;
        wm_buf_t b;
        wm_buf_init(&b, 0);
        if (rt->host.recommend &&
            rt->host.recommend(rt->host.ctx, r->in->user_id, r->in->project, "fund", 10, &b) == 0 && !b.err) {
            char *copy = wm_arena_strndup(r->t->arena, b.data, b.len);
            wm_json_t *o;
            wm_json_error_t je;
            if (copy && wm_json_parse(r->t->arena, copy, b.len, &o, &je) == 0)
                r->recs = wm_json_get(o, "recommendations");
        }
        wm_buf_release(&b);
    }
    char *end;
    unsigned long ix = strtoul(name, &end, 10);
    if (end == name || *end != '.' || !r->recs)
        return NULL;
    const char *field = end + 1;
    if (!strcmp(field, "fund_name"))
        field = "name";
    if (!strcmp(field, "fund_code"))
        field = "id";
    unsigned long k = 0;
    for (const wm_json_t *c = r->recs->u.child; c; c = c->next, k++)
        if (k == ix)
            return wm_json_get(c, field);
    return NULL;
}

static const wm_json_t *lookup(void *ctx, const char *scope, const char *name)
{
    render_ctx_t *r = ctx;
    if (!strcmp(scope, "profile") || !strcmp(scope, "user"))
        return wm_json_get(r->profile, name);
    if (!strcmp(scope, "event"))
        return wm_json_get(wm_json_get(r->event, "properties"), name);
    if (!strcmp(scope, "item"))
        return wm_json_get(r->item, name);
    if (!strcmp(scope, "journey")) {
        const char *s = !strcmp(name, "name") ? r->v->def->name : !strcmp(name, "key") ? r->v->key : NULL;
        return s ? wm_json_new_str(r->t->arena, s, strlen(s)) : NULL;
    }
    if (!strcmp(scope, "tag")) {
        wm_jrt_t *rt = r->t->rt;
        return rt->host.tag_get ? rt->host.tag_get(rt->host.ctx, r->t->aud_tx, r->in->user_id, name) : NULL;
    }
    if (!strcmp(scope, "recommend"))
        return lookup_recommend(r, name);
    return NULL;
}

static int render(render_ctx_t *r, const wm_template_t *tpl, bool json, char **out, char *missing,
                  size_t ml)
{
    *out = NULL;
    if (!tpl)
        return 0;
    wm_buf_t b;
    wm_buf_init(&b, 64 * 1024);
    int rc = wm_template_render(tpl, lookup, r, json, &b, missing, ml);
    if (!rc && !b.err)
        *out = wm_arena_strndup(r->t->arena, b.data ? b.data : "", b.len);
    wm_buf_release(&b);
    return rc ? rc : (*out ? 0 : WM_ENOMEM);
}

/* ---- outbox ---- */

static void json_field(wm_buf_t *b, const char *name, const char *val, bool first)
{
    if (!first)
        wm_buf_putc(b, ',');
    wm_buf_json_str(b, name, strlen(name));
    wm_buf_putc(b, ':');
    if (val)
        wm_buf_json_str(b, val, strlen(val));
    else
        wm_buf_puts(b, "null");
}

static const char *recipient(const wm_jchannel_t *ch, const wm_json_t *profile, wm_arena_t *a,
                             uint64_t user_id)
{
    const char *prop = ch->to_prop;
    if (!prop) {
        if (!strcmp(ch->kind, "sms") || !strcmp(ch->kind, "robot_call"))
            prop = "mobile";
        else if (!strcmp(ch->kind, "wecom"))
            prop = "wecom_external_userid";
        else if (!strcmp(ch->kind, "push"))
            prop = "push_token";
    }
    const wm_json_t *v = prop ? wm_json_get(profile, prop) : NULL;
    if (v && v->type == WM_JSON_STRING)
        return v->u.str;
    char *s = wm_arena_alloc(a, 24);
    if (s)
        snprintf(s, 24, "%llu", (unsigned long long)user_id);
    return s;
}

/* The provider-facing body for a channel (shapes in docs/channels.md). */
static void shape_body(wm_buf_t *b, const wm_jchannel_t *ch, const char *id, uint64_t user_id,
                       const char *to, const char *title, const char *text, const wm_inst_t *in,
                       const char *node_id)
{
    char uid[24];
    snprintf(uid, sizeof uid, "%llu", (unsigned long long)user_id);
    wm_dispatch_content_t c = {
        .message_id = id, .user_id = uid, .channel = ch->name, .to = to, .title = title,
        .text = text, .journey = in->key, .node = node_id,
        /* a customer reached in WeCom is an external contact of the advisor */
        .wecom_external = ch->dispatch_kind == WM_CH_WECOM,
    };
    wm_dispatch_shape(ch->dispatch_kind, &c, b);
}

static int queue_dispatch(wm_jtx_t *t, const wm_jchannel_t *ch, const char *id, const char *body,
                          size_t len, int64_t not_before)
{
    wm_jrt_t *rt = t->rt;
    if (rt->n_pending == rt->cap_pending) {
        uint32_t cap = rt->cap_pending ? rt->cap_pending * 2 : 16;
        wm_dispatch_msg_t *p = wm_realloc(rt->pending, cap * sizeof *p);
        if (!p)
            return WM_ENOMEM;
        rt->pending = p;
        rt->cap_pending = cap;
    }
    wm_dispatch_msg_t *m = &rt->pending[rt->n_pending++];
    memset(m, 0, sizeof *m);
    m->id = wm_strdup(id);
    m->channel = wm_strdup(ch->name);
    m->kind = ch->dispatch_kind;
    m->url = ch->url ? wm_strdup(ch->url) : NULL;
    m->secret = ch->secret ? wm_strdup(ch->secret) : NULL;
    m->body = wm_strndup(body, len);
    m->body_len = len;
    m->not_before_ms = not_before;
    t->n_dispatch++;
    return m->id && m->channel && m->body ? 0 : WM_ENOMEM;
}

static int outbox_put(wm_jtx_t *t, const char *id, uint64_t user_id, const char *json, size_t len)
{
    MDB_val k = {strlen(id), (void *)id}, v = {len, (void *)json};
    if (mdb_put(t->txn, t->rt->out, &k, &v, 0))
        return WM_EIO;
    unsigned char kb[8 + 8 + 64];
    size_t il = strlen(id) < 64 ? strlen(id) : 64;
    wm_put_be64(kb, user_id);
    wm_put_be64(kb + 8, (uint64_t)t->now_ms);
    memcpy(kb + 16, id, il);
    MDB_val ik = {16 + il, kb}, iv = {0, NULL};
    return mdb_put(t->txn, t->rt->umsg, &ik, &iv, 0) ? WM_EIO : 0;
}

static int suppress(wm_jtx_t *t, const wm_inst_t *in, const wm_jversion_t *v, uint32_t node,
                    const char *id, const char *channel, const char *reason, const char *detail)
{
    int rc = wm__rt_stat_add(t, in->project, in->key, in->version, node, STAT_SUPPRESSED, 0, 1);
    wm_buf_t b;
    wm_buf_init(&b, 0);
    json_field(&b, "{\"message_id\"", NULL, true);
    b.len = 0;
    wm_buf_putc(&b, '{');
    json_field(&b, "message_id", id, true);
    json_field(&b, "channel", channel, false);
    json_field(&b, "reason", reason, false);
    json_field(&b, "detail", detail && *detail ? detail : NULL, false);
    json_field(&b, "journey", in->key, false);
    json_field(&b, "node", v->def->nodes[node].id, false);
    wm_buf_printf(&b, ",\"version\":%u}", in->version);
    if (!rc)
        rc = b.err ? b.err : wm__rt_op_event(t, in->user_id, in->project, "$MessageSuppressed", b.data, false);
    wm_buf_release(&b);
    return rc;
}

static int make_inbox(wm_jtx_t *t, uint64_t user_id, const char *id, const char *title,
                      const char *text, const wm_inst_t *in)
{
    wm_buf_t b;
    wm_buf_init(&b, 0);
    wm_buf_putc(&b, '{');
    json_field(&b, "message_id", id, true);
    json_field(&b, "title", title, false);
    json_field(&b, "body", text, false);
    json_field(&b, "journey", in->key, false);
    wm_buf_printf(&b, ",\"read\":false,\"created_ms\":%lld}", (long long)t->now_ms);
    unsigned char kb[8 + 8 + 64];
    size_t il = strlen(id) < 64 ? strlen(id) : 64;
    wm_put_be64(kb, user_id);
    wm_put_be64(kb + 8, (uint64_t)t->now_ms);
    memcpy(kb + 16, id, il);
    MDB_val k = {16 + il, kb}, v = {b.len, b.data};
    int rc = b.err ? b.err : (mdb_put(t->txn, t->rt->inbox, &k, &v, 0) ? WM_EIO : 0);
    wm_buf_release(&b);
    return rc;
}

int wm__rt_send(wm_jtx_t *t, wm_inst_t *in, const wm_jversion_t *v, const wm_jnode_t *n,
                const wm_json_t *event)
{
    const wm_jsnapshot_t *s = wm__jreg_snapshot(t->rt->reg);
    uint32_t node = node_index(v, n);
    char id[64];
    make_id(id, sizeof id, 'm', in, node);
    const char *chname = n->u.send.channel ? n->u.send.channel : "";
    const wm_jchannel_t *ch = wm__jreg_channel(s, in->project, chname);
    if (!ch)
        return suppress(t, in, v, node, id, chname, "unknown_channel", NULL);
    const wm_jproject_t *proj = wm__jreg_project(s, in->project);
    const wm_json_t *profile = wm__rt_profile(t, in->user_id);
    char detail[200] = "";
    /* 1. holdout */
    if (proj && proj->holdout_percent) {
        uint64_t h = wm_hash64(&in->user_id, 8, wm_hash64(in->project, strlen(in->project), 0x686f6c64));
        if (h % 100 < proj->holdout_percent)
            return suppress(t, in, v, node, id, chname, "holdout", NULL);
    }
    /* 2. control arm */
    if (in->control)
        return suppress(t, in, v, node, id, chname, "control_group", NULL);
    /* 3. consent */
    const wm_json_t *opt = wm_json_get(profile, "opt_out_channels");
    if (list_has(opt, chname) || list_has(opt, ch->kind) || list_has(opt, "all"))
        return suppress(t, in, v, node, id, chname, "consent", "the customer opted out of this channel");
    /* 4. suitability */
    const wm_json_t *item = NULL;
    if (n->u.send.item_type && n->u.send.no_suitability) {
        item = in->item[0] ? wm__rt_item(t, in->project, n->u.send.item_type, in->item) : NULL;
    } else if (n->u.send.item_type) {
        item = in->item[0] ? wm__rt_item(t, in->project, n->u.send.item_type, in->item) : NULL;
        int product = level_of(wm_json_get(item, "risk_level"));
        int customer = level_of(wm_json_get(profile, "risk_level"));
        if (!item || product < 0 || customer < 0 || product > customer) {
            snprintf(detail, sizeof detail, "product %s %s risk %s, customer risk %s", n->u.send.item_type,
                     in->item[0] ? in->item : "(none)",
                     item && wm_json_str(wm_json_get(item, "risk_level")) ? wm_json_str(wm_json_get(item, "risk_level")) : "unknown",
                     wm_json_str(wm_json_get(profile, "risk_level")) ? wm_json_str(wm_json_get(profile, "risk_level")) : "unknown");
            return suppress(t, in, v, node, id, chname, "suitability", detail);
        }
    }
    /* 5. frequency caps: journey's, then project-wide */
    const char *why = cap_exceeded(t, in->user_id, chname, v->def->settings.caps, v->def->settings.n_caps,
                                   detail, sizeof detail);
    if (!why && proj)
        why = cap_exceeded(t, in->user_id, chname, proj->caps, proj->n_caps, detail, sizeof detail);
    if (why)
        return suppress(t, in, v, node, id, chname, why, detail);
    /* 6. quiet hours */
    int64_t quiet_end = quiet_until(t, v->def, profile, proj ? proj->default_tz : NULL);
    if (quiet_end && !v->def->settings.quiet_hold)
        return suppress(t, in, v, node, id, chname, "quiet_hours", NULL);
    if (quiet_end) {
        /* hold: the instance waits at this node until the window opens */
        t->hold_until = quiet_end;
        char props[300];
        snprintf(props, sizeof props,
                 "{\"channel\":\"%s\",\"journey\":\"%s\",\"node\":\"%s\",\"until_ms\":%lld}", chname,
                 in->key, n->id, (long long)quiet_end);
        return wm__rt_op_event(t, in->user_id, in->project, "$MessageHeldQuietHours", props, false);
    }
    int64_t not_before = 0;
    /* 7. content */
    const wm_jtemplate_t *tpl = n->u.send.template_key ? wm__jreg_template(s, in->project, n->u.send.template_key) : NULL;
    render_ctx_t rc_ = {.t = t, .profile = profile, .event = event, .item = item, .in = in, .v = v};
    char *title = NULL, *text = NULL, missing[128] = "";
    if (tpl && (render(&rc_, tpl->title, false, &title, missing, sizeof missing) ||
                render(&rc_, tpl->body, false, &text, missing, sizeof missing))) {
        snprintf(detail, sizeof detail, "template %s: variable %s has no value and no default",
                 n->u.send.template_key, missing);
        return suppress(t, in, v, node, id, chname, "template_error", detail);
    }
    if (n->u.send.template_key && !tpl)
        return suppress(t, in, v, node, id, chname, "unknown_template", n->u.send.template_key);
    const char *to = recipient(ch, profile, t->arena, in->user_id);
    int rc = freq_record(t, in->user_id, chname);
    if (!rc)
        rc = freq_record(t, in->user_id, "*");
    if (!rc)
        rc = wm__rt_stat_add(t, in->project, in->key, in->version, node, STAT_SENT, 0, 1);
    bool inbox = !strcmp(ch->kind, "inbox");
    wm_buf_t body, rec;
    wm_buf_init(&body, 0);
    wm_buf_init(&rec, 0);
    shape_body(&body, ch, id, in->user_id, to, title, text, in, n->id);
    wm_buf_putc(&rec, '{');
    json_field(&rec, "id", id, true);
    wm_buf_printf(&rec, ",\"user_id\":\"%llu\"", (unsigned long long)in->user_id);
    json_field(&rec, "project", in->project, false);
    json_field(&rec, "journey", in->key, false);
    wm_buf_printf(&rec, ",\"version\":%u", in->version);
    json_field(&rec, "node", n->id, false);
    json_field(&rec, "channel", chname, false);
    json_field(&rec, "kind", ch->kind, false);
    json_field(&rec, "to", to, false);
    json_field(&rec, "title", title, false);
    json_field(&rec, "text", text, false);
    json_field(&rec, "status", inbox ? "delivered" : "pending", false);
    wm_buf_printf(&rec, ",\"attempts\":0,\"created_ms\":%lld,\"not_before_ms\":%lld,\"body\":",
                  (long long)t->now_ms, (long long)not_before);
    wm_buf_append(&rec, body.data ? body.data : "{}", body.data ? body.len : 2);
    wm_buf_putc(&rec, '}');
    if (!rc)
        rc = rec.err ? rec.err : outbox_put(t, id, in->user_id, rec.data, rec.len);
    if (!rc && inbox)
        rc = make_inbox(t, in->user_id, id, title, text, in);
    if (!rc && !inbox)
        rc = queue_dispatch(t, ch, id, body.data, body.len, not_before);
    char props[400];
    snprintf(props, sizeof props,
             "{\"message_id\":\"%s\",\"channel\":\"%s\",\"journey\":\"%s\",\"version\":%u,\"node\":\"%s\"%s}",
             id, chname, in->key, in->version, n->id, not_before ? ",\"held_for_quiet_hours\":true" : "");
    if (!rc)
        rc = wm__rt_op_event(t, in->user_id, in->project, "$MessagePrepared", props, false);
    if (!rc && inbox)
        rc = wm__rt_op_event(t, in->user_id, in->project, "$MessageDelivered", props, true);
    wm_buf_release(&body);
    wm_buf_release(&rec);
    return rc;
}

int wm__rt_webhook(wm_jtx_t *t, wm_inst_t *in, const wm_jversion_t *v, const wm_jnode_t *n,
                   const wm_json_t *event)
{
    uint32_t node = node_index(v, n);
    char id[64];
    make_id(id, sizeof id, 'm', in, node);
    wm_jchannel_t ch = {.name = "webhook", .kind = "webhook", .dispatch_kind = WM_CH_WEBHOOK,
                        .url = n->u.webhook.url};
    const wm_json_t *profile = wm__rt_profile(t, in->user_id);
    render_ctx_t r = {.t = t, .profile = profile, .event = event, .in = in, .v = v};
    char *body = NULL, missing[128] = "";
    if (n->u.webhook.body_template) {
        wm_template_t *tpl;
        char err[160];
        if (wm_template_compile(n->u.webhook.body_template, &tpl, err, sizeof err) == 0) {
            int rc = render(&r, tpl, true, &body, missing, sizeof missing);
            wm_template_free(tpl);
            if (rc)
                return suppress(t, in, v, node, id, "webhook", "template_error", missing);
        }
    }
    wm_buf_t b;
    wm_buf_init(&b, 0);
    if (body)
        wm_buf_puts(&b, body);
    else
        shape_body(&b, &ch, id, in->user_id, NULL, NULL, NULL, in, n->id);
    wm_buf_t rec;
    wm_buf_init(&rec, 0);
    wm_buf_putc(&rec, '{');
    json_field(&rec, "id", id, true);
    wm_buf_printf(&rec, ",\"user_id\":\"%llu\"", (unsigned long long)in->user_id);
    json_field(&rec, "project", in->project, false);
    json_field(&rec, "journey", in->key, false);
    json_field(&rec, "node", n->id, false);
    json_field(&rec, "channel", "webhook", false);
    json_field(&rec, "kind", "webhook", false);
    json_field(&rec, "url", n->u.webhook.url, false);
    json_field(&rec, "status", "pending", false);
    wm_buf_printf(&rec, ",\"attempts\":0,\"created_ms\":%lld,\"not_before_ms\":0,\"body\":",
                  (long long)t->now_ms);
    wm_buf_append(&rec, b.data ? b.data : "{}", b.data ? b.len : 2);
    wm_buf_putc(&rec, '}');
    int rc = rec.err ? rec.err : outbox_put(t, id, in->user_id, rec.data, rec.len);
    if (!rc)
        rc = queue_dispatch(t, &ch, id, b.data ? b.data : "{}", b.data ? b.len : 2, 0);
    wm_buf_release(&b);
    wm_buf_release(&rec);
    return rc;
}

/* ---- leads ---- */

static void recent_events(wm_jtx_t *t, uint64_t user_id, wm_buf_t *out)
{
    wm_buf_putc(out, '[');
    MDB_cursor *c;
    if (!t->rt->host.read_event || mdb_cursor_open(t->txn, t->rt->host.dbi_events, &c)) {
        wm_buf_putc(out, ']');
        return;
    }
    unsigned char kb[8];
    wm_put_be64(kb, user_id + 1);
    MDB_val k = {8, kb}, v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    rc = rc == 0 ? mdb_cursor_get(c, &k, &v, MDB_PREV) : mdb_cursor_get(c, &k, &v, MDB_LAST);
    int n = 0;
    uint64_t owner;
    int64_t time_ms;
    wm_log_pos_t pos;
    while (rc == 0 && n < WM_LEAD_EVENTS && wm_evidx_decode(&k, &v, &owner, &time_ms, &pos) && owner == user_id) {
        char *json = NULL;
        size_t len = 0;
        if (t->rt->host.read_event(t->rt->host.ctx, &pos, &json, &len) == 0) {
            if (n++)
                wm_buf_putc(out, ',');
            wm_buf_append(out, json, len);
        }
        wm_free(json);
        rc = mdb_cursor_get(c, &k, &v, MDB_PREV);
    }
    mdb_cursor_close(c);
    wm_buf_putc(out, ']');
}

static void lead_recommendations(wm_jtx_t *t, const wm_inst_t *in, wm_buf_t *b);

int wm__rt_lead(wm_jtx_t *t, wm_inst_t *in, const wm_jversion_t *v, const wm_jnode_t *n,
                const wm_json_t *event)
{
    const wm_jsnapshot_t *s = wm__jreg_snapshot(t->rt->reg);
    uint32_t node = node_index(v, n);
    char id[64];
    make_id(id, sizeof id, 'l', in, node);
    const wm_json_t *profile = wm__rt_profile(t, in->user_id);
    char *script = NULL, missing[128] = "";
    const wm_jtemplate_t *tpl = n->u.advisor.script ? wm__jreg_template(s, in->project, n->u.advisor.script) : NULL;
    const wm_json_t *item = NULL;
    for (uint32_t i = 0; i < v->def->n_nodes && in->item[0] && !item; i++)
        if (v->def->nodes[i].type == WM_JN_SEND && v->def->nodes[i].u.send.item_type)
            item = wm__rt_item(t, in->project, v->def->nodes[i].u.send.item_type, in->item);
    render_ctx_t r = {.t = t, .profile = profile, .event = event, .item = item, .in = in, .v = v};
    if (tpl && render(&r, tpl->body, false, &script, missing, sizeof missing))
        script = NULL;
    wm_buf_t b;
    wm_buf_init(&b, 0);
    wm_buf_putc(&b, '{');
    json_field(&b, "id", id, true);
    json_field(&b, "project", in->project, false);
    wm_buf_printf(&b, ",\"user_id\":\"%llu\"", (unsigned long long)in->user_id);
    json_field(&b, "queue", n->u.advisor.queue ? n->u.advisor.queue : "default", false);
    json_field(&b, "status", "open", false);
    json_field(&b, "assignee", NULL, false);
    json_field(&b, "priority", n->u.advisor.priority ? n->u.advisor.priority : "normal", false);
    wm_buf_printf(&b, ",\"created_ms\":%lld,\"sla_due_ms\":%lld", (long long)t->now_ms,
                  (long long)(n->u.advisor.sla_ms ? t->now_ms + n->u.advisor.sla_ms : 0));
    json_field(&b, "journey", in->key, false);
    wm_buf_printf(&b, ",\"version\":%u", in->version);
    json_field(&b, "node", n->id, false);
    json_field(&b, "talk_track", script, false);
    if (tpl && !script && missing[0])
        json_field(&b, "talk_track_error", missing, false);
    wm_buf_puts(&b, ",\"profile\":");
    if (profile)
        wm_json_write(&b, profile);
    else
        wm_buf_puts(&b, "{}");
    wm_buf_puts(&b, ",\"item\":");
    if (item)
        wm_json_write(&b, item);
    else
        wm_buf_puts(&b, "null");
    wm_buf_puts(&b, ",\"tags\":");
    if (!t->rt->host.tags_json || t->rt->host.tags_json(t->rt->host.ctx, t->aud_tx, in->user_id, &b))
        wm_buf_puts(&b, "{}");
    wm_buf_puts(&b, ",\"recent_events\":");
    recent_events(t, in->user_id, &b);
    lead_recommendations(t, in, &b);
    wm_buf_putc(&b, '}');
    MDB_val k = {strlen(id), id}, val = {b.len, b.data};
    int rc = b.err ? b.err : (mdb_put(t->txn, t->rt->lead, &k, &val, 0) ? WM_EIO : 0);
    wm_buf_release(&b);
    char props[300];
    snprintf(props, sizeof props, "{\"lead_id\":\"%s\",\"queue\":\"%s\",\"journey\":\"%s\",\"node\":\"%s\"}",
             id, n->u.advisor.queue ? n->u.advisor.queue : "default", in->key, n->id);
    if (!rc)
        rc = wm__rt_stat_add(t, in->project, in->key, in->version, node, STAT_SENT, 0, 1);
    if (!rc)
        rc = wm__rt_op_event(t, in->user_id, in->project, "$LeadCreated", props, false);
    return rc;
}

/* The products the advisor could talk about (suitable for the customer),
 * as the lead's "recommendations" (empty when none can be given). */
static void lead_recommendations(wm_jtx_t *t, const wm_inst_t *in, wm_buf_t *b)
{
    wm_jrt_t *rt = t->rt;
    wm_buf_puts(b, ",\"recommendations\":");
    wm_buf_t r;
    wm_buf_init(&r, 0);
    const wm_json_t *list = NULL;
    if (rt->host.recommend && rt->host.recommend(rt->host.ctx, in->user_id, in->project, "fund", 5, &r) == 0 &&
        !r.err) {
        char *copy = wm_arena_strndup(t->arena, r.data, r.len);
        wm_json_t *o;
        wm_json_error_t je;
        if (copy && wm_json_parse(t->arena, copy, r.len, &o, &je) == 0)
            list = wm_json_get(o, "recommendations");
    }
    if (list)
        wm_json_write(b, list);
    else
        wm_buf_puts(b, "[]");
    wm_buf_release(&r);
}

/* ---- commands ---- */

/* Rewrites fields of a stored JSON object (top-level) and stores it back. */
static int patch_doc(wm_jtx_t *t, MDB_dbi dbi, const char *key, size_t klen, const char *const *names,
                     const wm_json_t *const *values, uint32_t n, wm_json_t **doc_out)
{
    MDB_val k = {klen, (void *)key}, v;
    if (mdb_get(t->txn, dbi, &k, &v))
        return WM_ENOTFOUND;
    char *copy = wm_arena_strndup(t->arena, v.mv_data, v.mv_size);
    wm_json_t *doc;
    wm_json_error_t je;
    if (!copy || wm_json_parse(t->arena, copy, v.mv_size, &doc, &je) || doc->type != WM_JSON_OBJECT)
        return WM_ECORRUPT;
    for (uint32_t i = 0; i < n; i++) {
        bool done = false;
        for (wm_json_t *c = doc->u.child; c; c = c->next)
            if (!strcmp(c->key, names[i])) {
                wm_json_t *next = c->next;
                const char *ck = c->key;
                uint32_t kl = c->key_len;
                *c = *values[i];
                c->key = ck;
                c->key_len = kl;
                c->next = next;
                done = true;
                break;
            }
        if (!done) {
            wm_json_t *cp = wm_arena_alloc(t->arena, sizeof *cp);
            if (!cp)
                return WM_ENOMEM;
            *cp = *values[i];
            wm_json_append(t->arena, doc, names[i], cp);
        }
    }
    wm_buf_t b;
    wm_buf_init(&b, 0);
    wm_json_write(&b, doc);
    int rc = b.err;
    if (!rc) {
        v.mv_size = b.len;
        v.mv_data = b.data;
        rc = mdb_put(t->txn, dbi, &k, &v, 0) ? WM_EIO : 0;
    }
    wm_buf_release(&b);
    if (doc_out)
        *doc_out = doc;
    return rc;
}

static wm_json_t *jstr(wm_jtx_t *t, const char *s)
{
    return s ? wm_json_new_str(t->arena, s, strlen(s)) : wm_json_new(t->arena, WM_JSON_NULL);
}

static int message_event(wm_jtx_t *t, uint64_t user_id, const wm_json_t *msg, const char *event,
                         const char *extra)
{
    const char *project = wm_json_str(wm_json_get(msg, "project"));
    char props[600];
    snprintf(props, sizeof props,
             "{\"message_id\":\"%s\",\"channel\":\"%s\",\"journey\":\"%s\",\"node\":\"%s\"%s%s}",
             wm_json_str(wm_json_get(msg, "id")) ? wm_json_str(wm_json_get(msg, "id")) : "",
             wm_json_str(wm_json_get(msg, "channel")) ? wm_json_str(wm_json_get(msg, "channel")) : "",
             wm_json_str(wm_json_get(msg, "journey")) ? wm_json_str(wm_json_get(msg, "journey")) : "",
             wm_json_str(wm_json_get(msg, "node")) ? wm_json_str(wm_json_get(msg, "node")) : "",
             extra ? "," : "", extra ? extra : "");
    return wm__rt_op_event(t, user_id, project ? project : "default", event, props, true);
}

int wm__rt_cmd_delivery(wm_jtx_t *t, uint64_t user_id, const wm_json_t *cmd)
{
    const char *id = wm_json_str(wm_json_get(cmd, "message_id"));
    const char *outcome = wm_json_str(wm_json_get(cmd, "outcome"));
    if (!id || !outcome)
        return 0;
    MDB_val k = {strlen(id), (void *)id}, v;
    if (mdb_get(t->txn, t->rt->out, &k, &v))
        return 0;
    /* a final status is final: a late duplicate outcome changes nothing */
    if (memmem(v.mv_data, v.mv_size, "\"status\":\"pending\"", 18) == NULL)
        return 0;
    bool ok = !strcmp(outcome, "delivered");
    const wm_json_t *attempts = wm_json_get(cmd, "attempts");
    const wm_json_t *status = wm_json_get(cmd, "http_status");
    const char *names[4] = {"status", "attempts", "http_status", "error"};
    const wm_json_t *vals[4] = {jstr(t, ok ? "sent" : "failed"),
                                attempts ? attempts : wm_json_new_int(t->arena, 0),
                                status ? status : wm_json_new_int(t->arena, 0),
                                jstr(t, wm_json_str(wm_json_get(cmd, "error")))};
    for (int i = 0; i < 4; i++)
        if (!vals[i])
            return WM_ENOMEM;
    wm_json_t *doc;
    int rc = patch_doc(t, t->rt->out, id, strlen(id), names, vals, 4, &doc);
    if (rc)
        return rc == WM_ENOTFOUND ? 0 : rc;
    char extra[300];
    snprintf(extra, sizeof extra, "\"attempts\":%lld,\"http_status\":%lld",
             attempts && attempts->is_int ? (long long)attempts->i64 : 0LL,
             status && status->is_int ? (long long)status->i64 : 0LL);
    return message_event(t, user_id, doc, ok ? "$MessageSent" : "$MessageFailed", extra);
}

int wm__rt_cmd_receipt(wm_jtx_t *t, uint64_t user_id, const wm_json_t *cmd)
{
    const char *id = wm_json_str(wm_json_get(cmd, "message_id"));
    const char *st = wm_json_str(wm_json_get(cmd, "status"));
    if (!id || !st)
        return 0;
    const char *event = !strcmp(st, "delivered") ? "$MessageDelivered"
                        : !strcmp(st, "read")    ? "$MessageRead"
                        : !strcmp(st, "clicked") ? "$MessageClicked"
                                                 : "$MessageFailed";
    const char *names[2] = {"receipt", "receipt_ms"};
    const wm_json_t *vals[2] = {jstr(t, st), wm_json_new_int(t->arena, t->now_ms)};
    if (!vals[0] || !vals[1])
        return WM_ENOMEM;
    wm_json_t *doc;
    int rc = patch_doc(t, t->rt->out, id, strlen(id), names, vals, 2, &doc);
    if (rc)
        return rc == WM_ENOTFOUND ? 0 : rc;
    char extra[200];
    const char *pid = wm_json_str(wm_json_get(cmd, "provider_id"));
    snprintf(extra, sizeof extra, "\"receipt\":\"%s\"%s%s%s", st, pid ? ",\"provider_id\":\"" : "",
             pid ? pid : "", pid ? "\"" : "");
    return message_event(t, user_id, doc, event, extra);
}

int wm__rt_cmd_lead(wm_jtx_t *t, uint64_t user_id, const wm_json_t *cmd)
{
    const char *c = wm_json_str(wm_json_get(cmd, "cmd"));
    const char *id = wm_json_str(wm_json_get(cmd, "lead_id"));
    if (!id)
        return 0;
    bool claim = !strcmp(c, "lead_claim");
    /* a completed lead is final: a second completion (or a late claim) would
     * emit a second LeadOutcome and move a waiting journey twice */
    MDB_val lk = {strlen(id), (void *)id}, lv;
    if (mdb_get(t->txn, t->rt->lead, &lk, &lv) == 0 &&
        memmem(lv.mv_data, lv.mv_size, "\"status\":\"completed\"", 20))
        return 0;
    const char *names[4];
    const wm_json_t *vals[4];
    uint32_t n = 0;
    names[n] = "status", vals[n++] = jstr(t, claim ? "claimed" : "completed");
    if (claim) {
        names[n] = "assignee", vals[n++] = jstr(t, wm_json_str(wm_json_get(cmd, "assignee")));
        names[n] = "claimed_ms", vals[n++] = wm_json_new_int(t->arena, t->now_ms);
    } else {
        names[n] = "outcome", vals[n++] = jstr(t, wm_json_str(wm_json_get(cmd, "outcome")));
        names[n] = "completed_ms", vals[n++] = wm_json_new_int(t->arena, t->now_ms);
        names[n] = "note", vals[n++] = jstr(t, wm_json_str(wm_json_get(cmd, "note")));
    }
    for (uint32_t i = 0; i < n; i++)
        if (!vals[i])
            return WM_ENOMEM;
    wm_json_t *doc;
    int rc = patch_doc(t, t->rt->lead, id, strlen(id), names, vals, n, &doc);
    if (rc)
        return rc == WM_ENOTFOUND ? 0 : rc;
    const char *project = wm_json_str(wm_json_get(doc, "project"));
    wm_buf_t b;
    wm_buf_init(&b, 0);
    wm_buf_putc(&b, '{');
    json_field(&b, "lead_id", id, true);
    json_field(&b, "queue", wm_json_str(wm_json_get(doc, "queue")), false);
    json_field(&b, "journey", wm_json_str(wm_json_get(doc, "journey")), false);
    json_field(&b, "assignee", wm_json_str(wm_json_get(doc, "assignee")), false);
    if (!claim)
        json_field(&b, "outcome", wm_json_str(wm_json_get(cmd, "outcome")), false);
    wm_buf_putc(&b, '}');
    rc = b.err ? b.err
               : wm__rt_op_event(t, user_id, project ? project : "default",
                                 claim ? "$LeadClaimed" : "LeadOutcome", b.data, !claim);
    wm_buf_release(&b);
    return rc;
}

int wm__rt_cmd_inbox_read(wm_jtx_t *t, uint64_t user_id, const wm_json_t *cmd)
{
    const char *id = wm_json_str(wm_json_get(cmd, "message_id"));
    if (!id)
        return 0;
    MDB_cursor *c;
    if (mdb_cursor_open(t->txn, t->rt->inbox, &c))
        return WM_EIO;
    unsigned char kb[8];
    wm_put_be64(kb, user_id);
    MDB_val k = {8, kb}, v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    unsigned char found[80];
    size_t fl = 0;
    size_t il = strlen(id) < 64 ? strlen(id) : 64;
    while (rc == 0 && k.mv_size >= 16 && wm_get_be64(k.mv_data) == user_id) {
        if (k.mv_size == 16 + il && !memcmp((const char *)k.mv_data + 16, id, il)) {
            fl = k.mv_size;
            memcpy(found, k.mv_data, fl);
            break;
        }
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (!fl)
        return 0;
    const char *names[2] = {"read", "read_ms"};
    wm_json_t *tru = wm_json_new(t->arena, WM_JSON_TRUE);
    const wm_json_t *vals[2] = {tru, wm_json_new_int(t->arena, t->now_ms)};
    if (!vals[0] || !vals[1])
        return WM_ENOMEM;
    rc = patch_doc(t, t->rt->inbox, (const char *)found, fl, names, vals, 2, NULL);
    if (rc)
        return rc == WM_ENOTFOUND ? 0 : rc;
    MDB_val ok = {strlen(id), (void *)id}, ov;
    if (mdb_get(t->txn, t->rt->out, &ok, &ov) == 0) {
        char *copy = wm_arena_strndup(t->arena, ov.mv_data, ov.mv_size);
        wm_json_t *doc;
        wm_json_error_t je;
        if (copy && wm_json_parse(t->arena, copy, ov.mv_size, &doc, &je) == 0)
            return message_event(t, user_id, doc, "$MessageRead", "\"receipt\":\"read\"");
    }
    return 0;
}

int wm__rt_cmd_consent(wm_jtx_t *t, uint64_t user_id, const wm_json_t *cmd)
{
    const char *channel = wm_json_str(wm_json_get(cmd, "channel"));
    const wm_json_t *consent = wm_json_get(cmd, "consent");
    const char *project = wm_json_str(wm_json_get(cmd, "project"));
    if (!channel || !consent)
        return 0;
    bool give = consent->type == WM_JSON_TRUE;
    const wm_json_t *profile = wm__rt_profile(t, user_id);
    wm_json_t *n = wm_json_new(t->arena, WM_JSON_OBJECT);
    wm_json_t *list = wm_json_new(t->arena, WM_JSON_ARRAY);
    if (!n || !list)
        return WM_ENOMEM;
    const wm_json_t *old = wm_json_get(profile, "opt_out_channels");
    for (const wm_json_t *c = old && old->type == WM_JSON_ARRAY ? old->u.child : NULL; c; c = c->next)
        if (c->type == WM_JSON_STRING && strcmp(c->u.str, channel))
            wm_json_append(t->arena, list, NULL, wm_json_new_str(t->arena, c->u.str, c->len));
    if (!give)
        wm_json_append(t->arena, list, NULL, wm_json_new_str(t->arena, channel, strlen(channel)));
    for (const wm_json_t *c = profile ? profile->u.child : NULL; c; c = c->next)
        if (strcmp(c->key, "opt_out_channels")) {
            wm_json_t *cp = wm_arena_alloc(t->arena, sizeof *cp);
            if (!cp)
                return WM_ENOMEM;
            *cp = *c;
            wm_json_append(t->arena, n, c->key, cp);
        }
    wm_json_append(t->arena, n, "opt_out_channels", list);
    int rc = wm__rt_profile_store(t, user_id, n);
    /* an Unsubscribe event already is the record of this change */
    if (wm_json_get(cmd, "from_event"))
        return rc;
    char props[200];
    snprintf(props, sizeof props, "{\"channel\":\"%s\",\"consent\":%s}", channel, give ? "true" : "false");
    if (!rc)
        rc = wm__rt_op_event(t, user_id, project ? project : "default",
                             give ? "$ConsentGranted" : "$Unsubscribe", props, true);
    return rc;
}

/* An operator sends a failed message (a delivery dead letter) again, once
 * the provider is fixed: same id, attempts counted on. */
int wm__rt_cmd_retry(wm_jtx_t *t, uint64_t user_id, const wm_json_t *cmd)
{
    const char *id = wm_json_str(wm_json_get(cmd, "message_id"));
    if (!id)
        return 0;
    MDB_val k = {strlen(id), (void *)id}, v;
    if (mdb_get(t->txn, t->rt->out, &k, &v) ||
        !memmem(v.mv_data, v.mv_size, "\"status\":\"failed\"", 17))
        return 0;
    const char *names[1] = {"status"};
    const wm_json_t *vals[1] = {jstr(t, "pending")};
    if (!vals[0])
        return WM_ENOMEM;
    wm_json_t *doc;
    int rc = patch_doc(t, t->rt->out, id, strlen(id), names, vals, 1, &doc);
    if (rc)
        return rc == WM_ENOTFOUND ? 0 : rc;
    const wm_jsnapshot_t *s = wm__jreg_snapshot(t->rt->reg);
    const char *project = wm_json_str(wm_json_get(doc, "project"));
    const char *chname = wm_json_str(wm_json_get(doc, "channel"));
    const wm_jchannel_t *ch = project && chname ? wm__jreg_channel(s, project, chname) : NULL;
    wm_jchannel_t hook = {.name = "webhook", .kind = "webhook", .dispatch_kind = WM_CH_WEBHOOK,
                          .url = (char *)wm_json_str(wm_json_get(doc, "url"))};
    if (!ch && hook.url)
        ch = &hook;
    if (!ch)
        return 0;
    wm_buf_t body;
    wm_buf_init(&body, 0);
    const wm_json_t *b = wm_json_get(doc, "body");
    if (b)
        wm_json_write(&body, b);
    rc = body.err ? body.err : queue_dispatch(t, ch, id, body.data ? body.data : "{}", body.data ? body.len : 2, 0);
    wm_buf_release(&body);
    (void)user_id;
    return rc ? rc : message_event(t, user_id, doc, "$MessageRetried", NULL);
}

/* ---- restart: pending messages go out again with the same ids ---- */

int wm__jrt_redispatch(wm_jrt_t *rt)
{
    MDB_txn *txn;
    MDB_cursor *c;
    if (wm__jrt_read_cursor(rt, rt->out, &txn, &c))
        return WM_EIO;
    const wm_jsnapshot_t *s = wm__jreg_snapshot(rt->reg);
    wm_arena_t a;
    wm_arena_init(&a, 64 * 1024);
    MDB_val k, v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (rc == 0) {
        if (memmem(v.mv_data, v.mv_size, "\"status\":\"pending\"", 18)) {
            wm_arena_reset(&a);
            char *copy = wm_arena_strndup(&a, v.mv_data, v.mv_size);
            wm_json_t *doc;
            wm_json_error_t je;
            if (copy && wm_json_parse(&a, copy, v.mv_size, &doc, &je) == 0) {
                const char *project = wm_json_str(wm_json_get(doc, "project"));
                const char *chname = wm_json_str(wm_json_get(doc, "channel"));
                const char *url = wm_json_str(wm_json_get(doc, "url"));
                const wm_jchannel_t *ch = project && chname ? wm__jreg_channel(s, project, chname) : NULL;
                wm_buf_t body;
                wm_buf_init(&body, 0);
                const wm_json_t *b = wm_json_get(doc, "body");
                if (b)
                    wm_json_write(&body, b);
                const wm_json_t *nb = wm_json_get(doc, "not_before_ms");
                const wm_json_t *att = wm_json_get(doc, "attempts");
                wm_dispatch_msg_t m = {
                    .id = wm_json_str(wm_json_get(doc, "id")),
                    .channel = chname,
                    .kind = ch ? ch->dispatch_kind : WM_CH_WEBHOOK,
                    .url = ch ? ch->url : url,
                    .secret = ch ? ch->secret : NULL,
                    .body = body.data ? body.data : "{}",
                    .body_len = body.data ? body.len : 2,
                    .attempt = att && att->is_int ? (uint32_t)att->i64 : 0,
                    .not_before_ms = nb && nb->is_int ? nb->i64 : 0,
                };
                if (m.id && m.url && rt->host.dispatch)
                    rt->host.dispatch(rt->host.ctx, &m);
                wm_buf_release(&body);
            }
        }
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    wm_arena_release(&a);
    wm__jrt_read_done(txn, c);
    return 0;
}
