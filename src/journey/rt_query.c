/*
 * rt_query.c - read-only answers from a partition's journey state: the
 * journeys a user is in, messages, inbox, leads, and the per-journey
 * report summed over partitions. Each runs in its own LMDB read transaction
 * and never blocks the writer.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_internal.h"
#include "waymark/limits.h"
#include "waymark/alloc.h"
#include "waymark/error.h"
#include "waymark/strmap.h"

/* Opens a read-only transaction and a cursor on dbi; both are closed with
 * read_done. Returns 0 or WM_EIO. */
int wm__jrt_read_cursor(wm_jrt_t *rt, MDB_dbi dbi, MDB_txn **txn, MDB_cursor **c)
{
    if (mdb_txn_begin(rt->env, NULL, MDB_RDONLY, txn))
        return WM_EIO;
    if (mdb_cursor_open(*txn, dbi, c)) {
        mdb_txn_abort(*txn);
        return WM_EIO;
    }
    return 0;
}

void wm__jrt_read_done(MDB_txn *txn, MDB_cursor *c)
{
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
}

static const char *state_name(uint8_t s)
{
    return s == ST_WAITING ? "waiting" : s == ST_WAIT_EVENT ? "waiting_event" : s == ST_HOLD ? "held_quiet_hours" : "running";
}

int wm__jrt_user_journeys_json(wm_jrt_t *rt, uint64_t user_id, wm_buf_t *out)
{
    MDB_txn *txn;
    MDB_cursor *c;
    if (wm__jrt_read_cursor(rt, rt->juser, &txn, &c))
        return WM_EIO;
    const wm_jsnapshot_t *s = wm__jreg_snapshot(rt->reg);
    unsigned char kb[8];
    wm_put_be64(kb, user_id);
    MDB_val k = {8, kb}, v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE), n = 0;
    while (rc == 0 && k.mv_size > 8 && wm_get_be64(k.mv_data) == user_id) {
        wm_juser_t ju;
        bool ok = wm__juser_decode(v.mv_data, v.mv_size, &ju);
        for (int slot = 0; ok && slot < WM_JUSER_LIVE_MAX; slot++) {
            unsigned char ib[8];
            wm_put_be64(ib, ju.live[slot]);
            MDB_val ik = {8, ib}, iv;
            wm_inst_t in;
            if (ju.live[slot] && mdb_get(txn, rt->inst, &ik, &iv) == 0 &&
                wm__inst_decode(rt->host.names, ju.live[slot], iv.mv_data, iv.mv_size, &in)) {
                const wm_jversion_t *ver = wm__jreg_version(s, in.project, in.key, in.version);
                const char *node = ver && in.node < ver->def->n_nodes ? ver->def->nodes[in.node].id : "";
                wm_buf_puts(out, n++ ? ",{\"journey\":" : "{\"journey\":");
                wm_buf_json_str(out, in.key, strlen(in.key));
                wm_buf_printf(out, ",\"version\":%u,\"node\":", in.version);
                wm_buf_json_str(out, node, strlen(node));
                wm_buf_printf(out, ",\"state\":\"%s\",\"since_ms\":%lld,\"entered_ms\":%lld", state_name(in.state),
                              (long long)in.node_since_ms, (long long)in.entered_ms);
                if (in.due_ms != INT64_MAX)
                    wm_buf_printf(out, ",\"until_ms\":%lld", (long long)in.due_ms);
                if (in.arm && ver) {
                    for (uint32_t i = 0; i < ver->def->n_nodes; i++)
                        if (ver->def->nodes[i].type == WM_JN_SPLIT &&
                            in.arm - 1u < ver->def->nodes[i].u.branch.n_arms) {
                            const char *arm = ver->def->nodes[i].u.branch.arms[in.arm - 1].name;
                            wm_buf_puts(out, ",\"arm\":");
                            wm_buf_json_str(out, arm ? arm : "", arm ? strlen(arm) : 0);
                            break;
                        }
                }
                wm_buf_printf(out, ",\"instance\":\"%llx\"}", (unsigned long long)in.id);
            }
        }
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    wm__jrt_read_done(txn, c);
    return 0;
}

static int get_copy(wm_jrt_t *rt, MDB_dbi dbi, const void *key, size_t klen, wm_buf_t *out)
{
    MDB_txn *txn;
    if (mdb_txn_begin(rt->env, NULL, MDB_RDONLY, &txn))
        return WM_EIO;
    MDB_val k = {klen, (void *)key}, v;
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc == 0)
        wm_buf_append(out, v.mv_data, v.mv_size);
    mdb_txn_abort(txn);
    return rc == 0 ? 0 : rc == MDB_NOTFOUND ? WM_ENOTFOUND : WM_EIO;
}

int wm__jrt_message_get(wm_jrt_t *rt, const char *id, wm_buf_t *out)
{
    return get_copy(rt, rt->out, id, strlen(id), out);
}

int wm__jrt_lead_get(wm_jrt_t *rt, const char *id, wm_buf_t *out)
{
    return get_copy(rt, rt->lead, id, strlen(id), out);
}

/* Walks a (user, time, id) index newest first, appending the docs. */
static int newest_first(wm_jrt_t *rt, MDB_dbi index, MDB_dbi docs, uint64_t user_id, uint32_t limit,
                        wm_buf_t *out)
{
    MDB_txn *txn;
    MDB_cursor *c;
    if (wm__jrt_read_cursor(rt, index, &txn, &c))
        return WM_EIO;
    unsigned char kb[8];
    wm_put_be64(kb, user_id + 1);
    MDB_val k = {8, kb}, v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    rc = rc == 0 ? mdb_cursor_get(c, &k, &v, MDB_PREV) : mdb_cursor_get(c, &k, &v, MDB_LAST);
    uint32_t n = 0;
    while (rc == 0 && n < limit && k.mv_size > 16 && wm_get_be64(k.mv_data) == user_id) {
        MDB_val dk = {k.mv_size - 16, (char *)k.mv_data + 16}, dv;
        const MDB_val *doc = NULL;
        if (index == docs)
            doc = &v;
        else if (mdb_get(txn, docs, &dk, &dv) == 0)
            doc = &dv;
        if (doc) {
            if (n++)
                wm_buf_putc(out, ',');
            wm_buf_append(out, doc->mv_data, doc->mv_size);
        }
        rc = mdb_cursor_get(c, &k, &v, MDB_PREV);
    }
    wm__jrt_read_done(txn, c);
    return 0;
}

int wm__jrt_messages_json(wm_jrt_t *rt, uint64_t user_id, uint32_t limit, wm_buf_t *out)
{
    return newest_first(rt, rt->umsg, rt->out, user_id, limit, out);
}

int wm__jrt_inbox_json(wm_jrt_t *rt, uint64_t user_id, wm_buf_t *out)
{
    return newest_first(rt, rt->inbox, rt->inbox, user_id, 200, out);
}

static bool field_is(const wm_json_t *doc, const char *name, const char *want)
{
    if (!want)
        return true;
    const char *s = wm_json_str(wm_json_get(doc, name));
    return s && !strcmp(s, want);
}

/* Appends (comma separated, count shared in *n, at most limit) the stored
 * JSON documents of dbi whose top-level string fields equal the wanted values
 * (a NULL value matches anything). needle, when given, is a byte string every
 * match contains: rows without it are skipped before parsing. */
static int scan_docs(wm_jrt_t *rt, MDB_dbi dbi, const char *const *names, const char *const *values,
                     int nf, const char *needle, uint32_t limit, uint32_t *n, wm_buf_t *out)
{
    MDB_txn *txn;
    MDB_cursor *c;
    if (wm__jrt_read_cursor(rt, dbi, &txn, &c))
        return WM_EIO;
    size_t nl = needle ? strlen(needle) : 0;
    wm_arena_t a;
    wm_arena_init(&a, 16 * 1024);
    MDB_val k, v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (rc == 0 && *n < limit) {
        if (!nl || memmem(v.mv_data, v.mv_size, needle, nl)) {
            wm_arena_reset(&a);
            char *copy = wm_arena_strndup(&a, v.mv_data, v.mv_size);
            wm_json_t *doc;
            wm_json_error_t je;
            bool ok = copy && wm_json_parse(&a, copy, v.mv_size, &doc, &je) == 0;
            for (int f = 0; ok && f < nf; f++)
                ok = field_is(doc, names[f], values[f]);
            if (ok) {
                if ((*n)++)
                    wm_buf_putc(out, ',');
                wm_buf_append(out, v.mv_data, v.mv_size);
            }
        }
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    wm_arena_release(&a);
    wm__jrt_read_done(txn, c);
    return 0;
}

int wm__jrt_leads_json(wm_jrt_t *rt, const char *project, const char *queue, const char *assignee,
                       const char *status, uint32_t limit, uint32_t *n, wm_buf_t *out)
{
    const char *names[4] = {"project", "queue", "assignee", "status"};
    const char *values[4] = {project, queue, assignee, status};
    return scan_docs(rt, rt->lead, names, values, 4, NULL, limit, n, out);
}

/* ---- reports ---- */

struct wm_jreport {
    wm_strmap_t m;      /* "kind|node|aux" -> count (int64 stored as u64) */
};

int wm__jreport_new(wm_jreport_t **out)
{
    wm_jreport_t *r = wm_calloc(1, sizeof *r);
    if (!r)
        return WM_ENOMEM;
    wm_strmap_init(&r->m);
    *out = r;
    return 0;
}

void wm__jreport_free(wm_jreport_t *r)
{
    if (!r)
        return;
    wm_strmap_release(&r->m);
    wm_free(r);
}

static void rep_add(wm_jreport_t *r, const char *key, int64_t delta)
{
    uint64_t v = 0;
    wm_strmap_get(&r->m, key, strlen(key), &v);
    wm_strmap_put(&r->m, key, strlen(key), (uint64_t)((int64_t)v + delta));
}

static int64_t rep_get(const wm_jreport_t *r, const char *key)
{
    uint64_t v = 0;
    wm_strmap_get(&r->m, key, strlen(key), &v);
    return (int64_t)v;
}

int wm__jrt_report_add(wm_jrt_t *rt, const char *project, const char *key, wm_jreport_t *r)
{
    MDB_txn *txn;
    MDB_cursor *c;
    if (wm__jrt_read_cursor(rt, rt->stat, &txn, &c))
        return WM_EIO;
    const wm_jsnapshot_t *s = wm__jreg_snapshot(rt->reg);
    unsigned char prefix[200];
    size_t pl = strlen(project), kl = strlen(key);
    if (pl + kl + 2 > sizeof prefix) {
        wm__jrt_read_done(txn, c);
        return WM_EINVAL;
    }
    memcpy(prefix, project, pl);
    prefix[pl] = 0;
    memcpy(prefix + pl + 1, key, kl);
    prefix[pl + 1 + kl] = 0;
    size_t plen = pl + kl + 2;
    MDB_val k = {plen, prefix}, v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size == plen + 9 && !memcmp(k.mv_data, prefix, plen)) {
        const unsigned char *p = (const unsigned char *)k.mv_data + plen;
        uint32_t version = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        uint32_t node = (uint32_t)p[4] << 8 | p[5];
        uint8_t kind = p[6];
        uint32_t aux = (uint32_t)p[7] << 8 | p[8];
        int64_t val = 0;
        if (v.mv_size == 8)
            memcpy(&val, v.mv_data, 8);
        const wm_jversion_t *ver = wm__jreg_version(s, project, key, version);
        const char *nid = ver && node < ver->def->n_nodes ? ver->def->nodes[node].id : "";
        char rk[200];
        if (kind == STAT_EDGE) {
            const char *to = ver && aux < ver->def->n_nodes ? ver->def->nodes[aux].id : "";
            snprintf(rk, sizeof rk, "%u|%s|%s", kind, nid, to);
        } else if (kind == STAT_ARM_ENTERED || kind == STAT_ARM_CONVERTED) {
            const char *arm = ver && node < ver->def->n_nodes && aux < ver->def->nodes[node].u.branch.n_arms
                                  ? ver->def->nodes[node].u.branch.arms[aux].name
                                  : "";
            snprintf(rk, sizeof rk, "%u|%s|%s", kind, nid, arm ? arm : "");
        } else {
            snprintf(rk, sizeof rk, "%u|%s|", kind, node == STAT_NODE_JOURNEY ? "*" : nid);
        }
        rep_add(r, rk, val);
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    wm__jrt_read_done(txn, c);
    return 0;
}

static int64_t stat_of(const wm_jreport_t *r, int kind, const char *node, const char *aux)
{
    char rk[200];
    snprintf(rk, sizeof rk, "%d|%s|%s", kind, node, aux ? aux : "");
    return rep_get(r, rk);
}

void wm__jreport_json(const wm_jreport_t *r, const wm_jversion_t *cur, wm_buf_t *out)
{
    const wm_journey_def_t *d = cur->def;
    wm_buf_puts(out, "{\"journey\":");
    wm_buf_json_str(out, cur->key, strlen(cur->key));
    wm_buf_printf(out, ",\"version\":%u,\"entered\":%lld,\"goal_reached\":%lld,\"nodes\":[", cur->version,
                  (long long)stat_of(r, STAT_JOURNEY_ENTERED, "*", NULL),
                  (long long)stat_of(r, STAT_GOAL, "*", NULL));
    for (uint32_t i = 0; i < d->n_nodes; i++) {
        const char *id = d->nodes[i].id;
        wm_buf_puts(out, i ? ",{\"id\":" : "{\"id\":");
        wm_buf_json_str(out, id, strlen(id));
        wm_buf_printf(out,
                      ",\"type\":\"%s\",\"entered\":%lld,\"waiting\":%lld,\"passed\":%lld,\"exited\":%lld,"
                      "\"sent\":%lld,\"suppressed\":%lld}",
                      wm_jnode_type_name(d->nodes[i].type), (long long)stat_of(r, STAT_ENTERED, id, NULL),
                      (long long)stat_of(r, STAT_WAITING, id, NULL), (long long)stat_of(r, STAT_PASSED, id, NULL),
                      (long long)stat_of(r, STAT_EXITED, id, NULL), (long long)stat_of(r, STAT_SENT, id, NULL),
                      (long long)stat_of(r, STAT_SUPPRESSED, id, NULL));
    }
    wm_buf_puts(out, "],\"edges\":[");
    int ne = 0;
    for (uint32_t i = 0; i < d->n_nodes; i++)
        for (uint32_t j = 0; j < d->n_nodes; j++) {
            int64_t cnt = stat_of(r, STAT_EDGE, d->nodes[i].id, d->nodes[j].id);
            if (!cnt)
                continue;
            wm_buf_puts(out, ne++ ? ",{\"from\":" : "{\"from\":");
            wm_buf_json_str(out, d->nodes[i].id, strlen(d->nodes[i].id));
            wm_buf_puts(out, ",\"to\":");
            wm_buf_json_str(out, d->nodes[j].id, strlen(d->nodes[j].id));
            wm_buf_printf(out, ",\"count\":%lld}", (long long)cnt);
        }
    wm_buf_puts(out, "],\"splits\":[");
    int ns = 0;
    for (uint32_t i = 0; i < d->n_nodes; i++) {
        const wm_jnode_t *n = &d->nodes[i];
        if (n->type != WM_JN_SPLIT)
            continue;
        /* control arm: the baseline for the difference and its interval */
        double pc = 0, nc = 0;
        for (uint32_t a = 0; a < n->u.branch.n_arms; a++)
            if (n->u.branch.arms[a].control) {
                nc = (double)stat_of(r, STAT_ARM_ENTERED, n->id, n->u.branch.arms[a].name);
                pc = nc ? stat_of(r, STAT_ARM_CONVERTED, n->id, n->u.branch.arms[a].name) / nc : 0;
            }
        wm_buf_puts(out, ns++ ? ",{\"node\":" : "{\"node\":");
        wm_buf_json_str(out, n->id, strlen(n->id));
        wm_buf_puts(out, ",\"arms\":[");
        for (uint32_t a = 0; a < n->u.branch.n_arms; a++) {
            const wm_jarm_t *arm = &n->u.branch.arms[a];
            double entered = (double)stat_of(r, STAT_ARM_ENTERED, n->id, arm->name);
            double conv = (double)stat_of(r, STAT_ARM_CONVERTED, n->id, arm->name);
            double p = entered ? conv / entered : 0;
            wm_buf_puts(out, a ? ",{\"name\":" : "{\"name\":");
            wm_buf_json_str(out, arm->name ? arm->name : "", arm->name ? strlen(arm->name) : 0);
            wm_buf_printf(out, ",\"percent\":%u,\"control\":%s,\"entered\":%.0f,\"converted\":%.0f,\"rate\":%.6f",
                          arm->percent, arm->control ? "true" : "false", entered, conv, p);
            if (!arm->control && nc > 0 && entered > 0) {
                /* difference of proportions, normal approximation, 95 % */
                double se = sqrt(p * (1 - p) / entered + pc * (1 - pc) / nc);
                double diff = p - pc;
                wm_buf_printf(out, ",\"diff_vs_control\":%.6f,\"ci95\":[%.6f,%.6f]", diff, diff - 1.96 * se,
                              diff + 1.96 * se);
            }
            wm_buf_putc(out, '}');
        }
        wm_buf_puts(out, "]}");
    }
    wm_buf_puts(out, "]}");
}

int wm__jrt_messages_by_status(wm_jrt_t *rt, const char *project, const char *status, uint32_t limit,
                               uint32_t *n, wm_buf_t *out)
{
    char needle[64];
    snprintf(needle, sizeof needle, "\"status\":\"%s\"", status);
    const char *names[2] = {"project", "status"};
    const char *values[2] = {project, status};
    return scan_docs(rt, rt->out, names, values, 2, needle, limit, n, out);
}
