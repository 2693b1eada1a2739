/*
 * engine_journey.c - the engine's side of journeys: the registry of
 * published journeys, the dispatcher and its outcomes, the clock (with a
 * test advance), the scheduler for scheduled and date-property entries,
 * commands that change one user's journey state, and the journey, channel,
 * template, message, inbox and lead APIs.
 *
 * State changes always travel through a partition log as command records,
 * so they are durable before they are acknowledged and applied exactly once,
 * in order with the user's events.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine_internal.h"
#include "waymark/limits.h"
#include "waymark/alloc.h"
#include "waymark/error.h"
#include "waymark/journey.h"
#include "waymark/json.h"


/* ---- clock ---- */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t wm__engine_clock(wm_engine_t *e) { return wall_ms() + atomic_load(&e->clock_offset_ms); }
int64_t wm_engine_now(wm_engine_t *e) { return wm__engine_clock(e); }
wm_jreg_t *wm__engine_jreg(wm_engine_t *e) { return e->jreg; }

int wm_engine_clock_advance(wm_engine_t *e, int64_t ms)
{
    if (!e->test_clock)
        return WM_EFORBIDDEN;
    if (ms < 0)
        return WM_EINVAL;
    int64_t off = atomic_fetch_add(&e->clock_offset_ms, ms) + ms;
    /* the advance survives a restart, or pending timers would jump back */
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/test-clock.offset", e->data_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f) {
        fprintf(f, "%lld\n", (long long)off);
        fflush(f);
        fsync(fileno(f));
        fclose(f);
        rename(tmp, path);
    }
    for (uint32_t i = 0; i < e->n_parts; i++)
        wm__part_wake(e->parts[i]);
    pthread_mutex_lock(&e->sched_mu);
    pthread_cond_broadcast(&e->sched_cv);
    pthread_mutex_unlock(&e->sched_mu);
    return 0;
}

/* ---- routing internal records ---- */

void wm__engine_enqueue(wm_engine_t *e, wm_part_t *p, wm_job_t *job)
{
    pthread_mutex_lock(&e->route_mu);
    wm__part_enqueue(p, job);
    pthread_mutex_unlock(&e->route_mu);
}

static wm_job_t *command_job(uint64_t user_id, const char *json, size_t len)
{
    wm_job_t *j = wm_calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->payloads = wm_calloc(1, sizeof *j->payloads);
    j->lens = wm_calloc(1, sizeof *j->lens);
    wm_payload_hdr_t h = {.kind = WM_PAYLOAD_COMMAND, .user_id = user_id, .time_ms = wall_ms()};
    unsigned char *p = wm_malloc(sizeof h + len);
    if (!j->payloads || !j->lens || !p) {
        wm_free(p);
        wm__job_free(j);
        return NULL;
    }
    memcpy(p, &h, sizeof h);
    memcpy(p + sizeof h, json, len);
    j->payloads[0] = p;
    j->lens[0] = (uint32_t)(sizeof h + len);
    j->n = 1;
    return j;
}

/* Routes a command to partition `part` and waits until it is durable. */
static int command_to(wm_engine_t *e, uint32_t part, uint64_t user_id, const char *json, size_t len)
{
    for (uint32_t i = 0; i < e->n_parts; i++)
        if (!wm__part_wait_ready(e->parts[i], WM_READY_WAIT_MS))
            return WM_EBUSY;
    wm_job_t *j = command_job(user_id, json, len);
    if (!j)
        return WM_ENOMEM;
    wm_waiter_t w = {.jobs_left = 1};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    j->waiter = &w;
    wm__engine_enqueue(e, e->parts[part % e->n_parts], j);
    pthread_mutex_lock(&w.mu);
    while (w.jobs_left > 0)
        pthread_cond_wait(&w.cv, &w.mu);
    int rc = w.err;
    pthread_mutex_unlock(&w.mu);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    atomic_fetch_add(&e->m_commands, 1);
    return rc;
}

int wm__engine_commands(wm_engine_t *e, uint32_t n, const uint64_t *user_ids, char *const *jsons)
{
    for (uint32_t i = 0; i < e->n_parts; i++)
        if (!wm__part_wait_ready(e->parts[i], WM_READY_WAIT_MS))
            return WM_EBUSY;
    wm_job_t **jobs = wm_calloc(e->n_parts, sizeof *jobs);
    uint32_t *caps = wm_calloc(e->n_parts, sizeof *caps);
    int rc = jobs && caps ? 0 : WM_ENOMEM;
    for (uint32_t i = 0; i < n && !rc; i++) {
        uint32_t part = (uint32_t)(user_ids[i] % e->n_parts);
        wm_job_t *one = command_job(user_ids[i], jsons[i], strlen(jsons[i]));
        if (!one) {
            rc = WM_ENOMEM;
            break;
        }
        wm_job_t *j = jobs[part];
        if (!j) {
            jobs[part] = one;
            caps[part] = 1;
            continue;
        }
        if (j->n == caps[part]) {
            uint32_t cap = caps[part] * 2;
            unsigned char **pl = wm_realloc(j->payloads, cap * sizeof *pl);
            uint32_t *ln = pl ? wm_realloc(j->lens, cap * sizeof *ln) : NULL;
            if (pl)
                j->payloads = pl;
            if (!pl || !ln) {
                wm__job_free(one);
                rc = WM_ENOMEM;
                break;
            }
            j->lens = ln;
            caps[part] = cap;
        }
        j->payloads[j->n] = one->payloads[0];
        j->lens[j->n++] = one->lens[0];
        one->n = 0;
        wm__job_free(one);
    }
    wm_waiter_t w = {.jobs_left = 0};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    for (uint32_t i = 0; i < e->n_parts && jobs; i++) {
        if (!jobs[i])
            continue;
        if (rc) {
            wm__job_free(jobs[i]);
            continue;
        }
        jobs[i]->waiter = &w;
        pthread_mutex_lock(&w.mu);
        w.jobs_left++;
        pthread_mutex_unlock(&w.mu);
        wm__engine_enqueue(e, e->parts[i], jobs[i]);
    }
    pthread_mutex_lock(&w.mu);
    while (w.jobs_left > 0)
        pthread_cond_wait(&w.cv, &w.mu);
    if (!rc)
        rc = w.err;
    pthread_mutex_unlock(&w.mu);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    wm_free(jobs);
    wm_free(caps);
    atomic_fetch_add(&e->m_commands, n);
    return rc;
}

int wm_engine_command(wm_engine_t *e, uint64_t user_id, const char *json, size_t len)
{
    return command_to(e, (uint32_t)(user_id % e->n_parts), user_id, json, len);
}

static int command_all(wm_engine_t *e, const char *json)
{
    int rc = 0;
    for (uint32_t i = 0; i < e->n_parts && !rc; i++)
        rc = command_to(e, i, i, json, strlen(json));
    return rc;
}

uint64_t wm_engine_user_of(const char *id) { return wm__jrt_user_of_id(id); }

/* ---- dispatcher ---- */

void wm__engine_dispatch(wm_engine_t *e, const wm_dispatch_msg_t *m)
{
    if (!e->dispatcher || !m->url)
        return;
    /* not_before is on the engine clock; the dispatcher waits on the wall clock */
    wm_dispatch_msg_t copy = *m;
    if (copy.not_before_ms)
        copy.not_before_ms -= atomic_load(&e->clock_offset_ms);
    if (wm_dispatcher_submit(e->dispatcher, &copy) == 0)
        atomic_fetch_add(&e->m_dispatched, 1);
    /* when the queue is full the message stays pending in the outbox and
     * goes out again at the next start (same id) */
}

static void dispatch_done(void *ctx, const wm_dispatch_result_t *r)
{
    wm_engine_t *e = ctx;
    uint64_t user = wm__jrt_user_of_id(r->id);
    if (!user)
        return;
    atomic_fetch_add(r->outcome == WM_DISPATCH_DELIVERED ? &e->m_delivered : &e->m_failed, 1);
    wm_buf_t b;
    wm_buf_init(&b, 0);
    wm_buf_puts(&b, "{\"cmd\":\"delivery\",\"message_id\":");
    wm_buf_json_str(&b, r->id, strlen(r->id));
    wm_buf_printf(&b, ",\"outcome\":\"%s\",\"http_status\":%d,\"attempts\":%u,\"latency_ms\":%lld,\"error\":",
                  r->outcome == WM_DISPATCH_DELIVERED ? "delivered" : "failed", r->http_status,
                  r->attempts, (long long)r->latency_ms);
    wm_buf_json_str(&b, r->error ? r->error : "", r->error ? strlen(r->error) : 0);
    wm_buf_putc(&b, '}');
    /* the dispatcher thread must not block: no waiter */
    wm_job_t *j = b.err ? NULL : command_job(user, b.data, b.len);
    if (j)
        wm__engine_enqueue(e, e->parts[user % e->n_parts], j);
    wm_buf_release(&b);
}

/* ---- journey entry caps ---- */

/* The first reservation of a journey sums the persisted counts of every
 * partition (this one's comes from its open transaction); later ones count in
 * memory. A reservation whose transaction then aborts leaves the total one
 * high: the cap errs on the side of fewer entries. */
bool wm__engine_entry_reserve(wm_engine_t *e, uint32_t part, const char *project, const char *key,
                              uint64_t cap, uint64_t own)
{
    char k[200];
    int kl = snprintf(k, sizeof k, "%s\x1f%s", project, key);
    if (kl <= 0 || (size_t)kl >= sizeof k)
        return false;
    pthread_mutex_lock(&e->cap_mu);
    uint64_t total;
    if (!wm_strmap_get(&e->entry_totals, k, (size_t)kl, &total)) {
        total = own;
        for (uint32_t i = 0; i < e->n_parts; i++)
            if (i != part)
                total += wm__jrt_entries_count(e->parts[i]->jrt, project, key);
    }
    bool ok = total < cap;
    if (ok)
        total++;
    wm_strmap_put(&e->entry_totals, k, (size_t)kl, total);
    pthread_mutex_unlock(&e->cap_mu);
    return ok;
}

/* ---- items for conditions and templates ---- */

int wm__engine_item_raw(wm_engine_t *e, const char *project, const char *type, const char *id,
                        char **json, size_t *len)
{
    wm_buf_t b;
    wm_buf_init(&b, 0);
    int rc = wm_engine_item_json(e, project, type, id, &b);
    if (rc) {
        wm_buf_release(&b);
        return rc;
    }
    /* {"item_type":..,"item_id":..,"properties":{...}} -> the properties */
    wm_arena_t a;
    wm_arena_init(&a, 4096);
    wm_json_t *o;
    wm_json_error_t je;
    rc = wm_json_parse(&a, b.data, b.len, &o, &je);
    const wm_json_t *props = rc ? NULL : wm_json_get(o, "properties");
    wm_buf_t out;
    wm_buf_init(&out, 0);
    if (props)
        wm_json_write(&out, props);
    wm_arena_release(&a);
    wm_buf_release(&b);
    if (!props || out.err) {
        wm_buf_release(&out);
        return WM_ENOTFOUND;
    }
    *json = wm_buf_steal(&out, len);
    return 0;
}

/* ---- scheduler: scheduled and date-property entries ---- */

static bool cron_field(const char *f, int v, int lo, int hi)
{
    /* "*", "*\/n", "a", "a-b", "a,b,c", "a-b/n" */
    char buf[64];
    snprintf(buf, sizeof buf, "%s", f);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int step = 1, a = lo, b = hi;
        char *slash = strchr(tok, '/');
        if (slash) {
            step = atoi(slash + 1);
            *slash = 0;
            if (step <= 0)
                step = 1;
        }
        if (strcmp(tok, "*")) {
            char *dash = strchr(tok, '-');
            a = atoi(tok);
            b = dash ? atoi(dash + 1) : (slash ? hi : a);
        }
        if (v >= a && v <= b && (v - a) % step == 0)
            return true;
    }
    return false;
}

/* "m h dom mon dow" at local minute `t` (tz_min east of UTC). */
static bool cron_match(const char *cron, int64_t t_ms, int tz_min)
{
    char f[5][64];
    if (sscanf(cron, "%63s %63s %63s %63s %63s", f[0], f[1], f[2], f[3], f[4]) != 5)
        return false;
    time_t local = (time_t)((t_ms + (int64_t)tz_min * 60000) / 1000);
    struct tm tm;
    gmtime_r(&local, &tm);
    int dow = tm.tm_wday; /* 0 = Sunday; 7 also accepted as Sunday */
    return cron_field(f[0], tm.tm_min, 0, 59) && cron_field(f[1], tm.tm_hour, 0, 23) &&
           cron_field(f[2], tm.tm_mday, 1, 31) && cron_field(f[3], tm.tm_mon + 1, 1, 12) &&
           (cron_field(f[4], dow, 0, 7) || (dow == 0 && cron_field(f[4], 7, 0, 7)));
}

typedef struct sched_state {
    int64_t last_minute;        /* last local minute examined for crons */
    wm_strmap_t day_done;       /* "project/key/v" -> last local day run (date entries) */
    wm_strmap_t once_done;      /* "project/key/v" -> 1 (schedule at) */
} sched_state_t;

static int tz_of(const wm_jsnapshot_t *s, const char *project)
{
    const wm_jproject_t *p = wm__jreg_project(s, project);
    const wm_tz_t *tz;
    if (wm_tz_get(p && p->default_tz ? p->default_tz : "Asia/Shanghai", &tz))
        return 480;
    return wm_tz_offset_min(tz, wall_ms());
}

static void run_entries(wm_engine_t *e, const wm_jversion_t *v, const char *cmd)
{
    wm_buf_t b;
    wm_buf_init(&b, 0);
    wm_buf_printf(&b, "{\"cmd\":\"%s\",\"project\":", cmd);
    wm_buf_json_str(&b, v->project, strlen(v->project));
    wm_buf_puts(&b, ",\"key\":");
    wm_buf_json_str(&b, v->key, strlen(v->key));
    wm_buf_printf(&b, ",\"version\":%u}", v->version);
    if (!b.err)
        command_all(e, b.data);
    wm_buf_release(&b);
}

/* Segments refreshed on a schedule (refresh.mode "schedule"): a full
 * recompute on every partition when their cron matches (Asia/Shanghai). */
static void sched_segments(wm_engine_t *e, sched_state_t *st, int64_t minute)
{
    const wm_asnap_t *s = wm__areg_snapshot(e->areg);
    int64_t from = st->last_minute ? st->last_minute + 1 : minute;
    if (minute - from > 1440)
        from = minute - 1440;
    for (uint32_t i = 0; s && i < s->n_segs; i++) {
        const wm_aseg_t *g = s->segs[i];
        if (g->def->refresh != WM_REFRESH_SCHEDULE || !g->def->cron)
            continue;
        for (int64_t m = from; m <= minute; m++)
            if (cron_match(g->def->cron, m * 60000, 480)) {
                char cmd[120];
                snprintf(cmd, sizeof cmd, "{\"cmd\":\"segment_recompute\",\"id\":%u,\"version\":%u}", g->id,
                         g->version);
                command_all(e, cmd);
                break;
            }
    }
}

static void sched_tick(wm_engine_t *e, sched_state_t *st)
{
    const wm_jsnapshot_t *s = wm__jreg_snapshot(e->jreg);
    int64_t now = wm__engine_clock(e);
    int64_t minute = now / 60000;
    for (uint32_t i = 0; s && i < s->n_versions; i++) {
        const wm_jversion_t *v = s->versions[i];
        if (!v->accepting)
            continue;
        const wm_journey_def_t *d = v->def;
        char key[200];
        int kl = snprintf(key, sizeof key, "%s/%s/%u", v->project, v->key, v->version);
        int tz = tz_of(s, v->project);
        if (d->entry.kind == WM_ENTRY_DATE_PROP) {
            uint64_t day = (uint64_t)((now + (int64_t)tz * 60000) / 86400000);
            uint64_t last = 0;
            if (wm_strmap_get(&st->day_done, key, (size_t)kl, &last) && last == day)
                continue;
            wm_strmap_put(&st->day_done, key, (size_t)kl, day);
            run_entries(e, v, "date_entries");
        } else if (d->entry.kind == WM_ENTRY_SCHEDULE && d->entry.schedule_at) {
            int64_t at;
            bool date_only;
            char full[40];
            /* "YYYY-MM-DD HH:MM" (the journey schema) gets its seconds */
            snprintf(full, sizeof full, strlen(d->entry.schedule_at) == 16 ? "%s:00" : "%s",
                     d->entry.schedule_at);
            if (wm_strmap_get(&st->once_done, key, (size_t)kl, NULL) ||
                wm_datetime_parse(full, tz, &at, &date_only) || now < at)
                continue;
            wm_strmap_put(&st->once_done, key, (size_t)kl, 1);
            run_entries(e, v, "schedule_run");
        } else if (d->entry.kind == WM_ENTRY_SCHEDULE && d->entry.cron) {
            /* every minute since the last tick (a day at most: a clock jump in
             * a test does not replay years of minutes) */
            int64_t from = st->last_minute ? st->last_minute + 1 : minute;
            if (minute - from > 1440)
                from = minute - 1440;
            for (int64_t m = from; m <= minute; m++)
                if (cron_match(d->entry.cron, m * 60000, tz)) {
                    run_entries(e, v, "schedule_run");
                    break;
                }
        }
    }
    sched_segments(e, st, minute);
    st->last_minute = minute;
}

static void *scheduler_main(void *arg)
{
    wm_engine_t *e = arg;
    sched_state_t st = {0};
    wm_strmap_init(&st.day_done);
    wm_strmap_init(&st.once_done);
    pthread_mutex_lock(&e->sched_mu);
    while (!e->sched_stop) {
        pthread_mutex_unlock(&e->sched_mu);
        sched_tick(e, &st);
        pthread_mutex_lock(&e->sched_mu);
        if (e->sched_stop)
            break;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += WM_SCHED_TICK_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&e->sched_cv, &e->sched_mu, &until);
    }
    pthread_mutex_unlock(&e->sched_mu);
    wm_strmap_release(&st.day_done);
    wm_strmap_release(&st.once_done);
    return NULL;
}

/* ---- lifecycle ---- */

int wm__engine_journeys_open(wm_engine_t *e)
{
    pthread_mutex_init(&e->cap_mu, NULL);
    wm_strmap_init(&e->entry_totals);
    pthread_mutex_init(&e->sched_mu, NULL);
    pthread_cond_init(&e->sched_cv, NULL);
    if (e->test_clock) {
        char path[4200];
        snprintf(path, sizeof path, "%s/test-clock.offset", e->data_dir);
        FILE *f = fopen(path, "r");
        long long off = 0;
        if (f && fscanf(f, "%lld", &off) == 1 && off > 0)
            atomic_store(&e->clock_offset_ms, off);
        if (f)
            fclose(f);
    }
    int rc = wm__jreg_open(e->catalog, &e->jreg);
    if (rc)
        return rc;
    wm_dispatch_opts_t o = {.done = dispatch_done, .done_ctx = e};
    return wm_dispatcher_open(&o, &e->dispatcher);
}

int wm__engine_journeys_start(wm_engine_t *e)
{
    if (pthread_create(&e->scheduler, NULL, scheduler_main, e))
        return WM_EIO;
    e->scheduler_started = true;
    return 0;
}

void wm__engine_journeys_close(wm_engine_t *e)
{
    if (e->scheduler_started) {
        pthread_mutex_lock(&e->sched_mu);
        e->sched_stop = true;
        pthread_cond_broadcast(&e->sched_cv);
        pthread_mutex_unlock(&e->sched_mu);
        pthread_join(e->scheduler, NULL);
        e->scheduler_started = false;
    }
    if (e->dispatcher) {
        wm_dispatcher_close(e->dispatcher);
        e->dispatcher = NULL;
    }
}

void wm__engine_journeys_free(wm_engine_t *e)
{
    wm__jreg_close(e->jreg);
    e->jreg = NULL;
    wm_strmap_release(&e->entry_totals);
    pthread_mutex_destroy(&e->cap_mu);
    pthread_mutex_destroy(&e->sched_mu);
    pthread_cond_destroy(&e->sched_cv);
}

void wm__engine_journey_metrics(wm_engine_t *e, wm_buf_t *out)
{
    wm_dispatch_stats_t ds = {0};
    if (e->dispatcher)
        wm_dispatcher_stats(e->dispatcher, &ds);
    wm_buf_printf(out,
                  "# HELP waymark_messages_dispatched_total Messages handed to the dispatcher.\n"
                  "# TYPE waymark_messages_dispatched_total counter\n"
                  "waymark_messages_dispatched_total %llu\n"
                  "# HELP waymark_messages_delivered_total Messages a provider accepted (2xx).\n"
                  "# TYPE waymark_messages_delivered_total counter\n"
                  "waymark_messages_delivered_total %llu\n"
                  "# HELP waymark_messages_failed_total Messages failed for good (dead letters).\n"
                  "# TYPE waymark_messages_failed_total counter\n"
                  "waymark_messages_failed_total %llu\n"
                  "# HELP waymark_dispatch_retries_total Delivery retries.\n"
                  "# TYPE waymark_dispatch_retries_total counter\n"
                  "waymark_dispatch_retries_total %llu\n"
                  "# HELP waymark_dispatch_in_flight Requests in flight.\n"
                  "# TYPE waymark_dispatch_in_flight gauge\n"
                  "waymark_dispatch_in_flight %llu\n"
                  "# HELP waymark_commands_total Commands applied through partition logs.\n"
                  "# TYPE waymark_commands_total counter\n"
                  "waymark_commands_total %llu\n",
                  (unsigned long long)atomic_load(&e->m_dispatched),
                  (unsigned long long)atomic_load(&e->m_delivered),
                  (unsigned long long)atomic_load(&e->m_failed), (unsigned long long)ds.retries,
                  (unsigned long long)ds.in_flight, (unsigned long long)atomic_load(&e->m_commands));
}

/* ---- journey definitions ---- */

typedef struct names {
    char **v;
    uint32_t n, cap;
} names_t;

static int names_add(void *ctx, const char *project, const char *name, const char *json)
{
    names_t *ns = ctx;
    if (ns->n == ns->cap) {
        uint32_t cap = ns->cap ? ns->cap * 2 : 16;
        char **p = wm_realloc(ns->v, cap * sizeof *p);
        if (!p)
            return WM_ENOMEM;
        ns->v = p;
        ns->cap = cap;
    }
    ns->v[ns->n] = wm_strdup(name);
    return ns->v[ns->n++] ? 0 : WM_ENOMEM;
}

static void names_free(names_t *ns)
{
    for (uint32_t i = 0; i < ns->n; i++)
        wm_free(ns->v[i]);
    wm_free(ns->v);
}

static int journey_key_cb(void *ctx, const char *project, const char *key, uint32_t version,
                          const char *definition, const char *status, uint32_t current)
{
    names_t *ns = ctx;
    for (uint32_t i = 0; i < ns->n; i++)
        if (!strcmp(ns->v[i], key))
            return 0;
    return names_add(ctx, project, key, NULL);
}

/* Compiles a definition against the project's references; appends the
 * validation answer to out. *def_out (optional) receives the compiled form. */
static int validate(wm_engine_t *e, const char *project, const wm_json_t *def, bool *valid,
                    wm_buf_t *out, const char *self_key)
{
    names_t ch = {0}, tp = {0}, jr = {0};
    int rc = wm__catalog_doc_each(e->catalog, "channels", project, names_add, &ch);
    if (!rc)
        rc = wm__catalog_doc_each(e->catalog, "templates", project, names_add, &tp);
    if (!rc)
        rc = wm__catalog_journey_versions(e->catalog, journey_key_cb, &jr);
    if (!rc && self_key)
        rc = names_add(&jr, project, self_key, NULL);
    if (rc) {
        names_free(&ch), names_free(&tp), names_free(&jr);
        return rc;
    }
    wm_journey_refs_t refs = {
        .channels = (const char *const *)ch.v, .n_channels = ch.n,
        .templates = (const char *const *)tp.v, .n_templates = tp.n,
        .journeys = (const char *const *)jr.v, .n_journeys = jr.n,
    };
    wm_journey_def_t *j = NULL;
    wm_journey_error_t errs[64];
    uint32_t n_errs = 0;
    rc = wm_journey_compile(def, &refs, &j, errs, 64, &n_errs);
    /* a segment entry must name a segment of the project (the canvas offers
     * the list; a typo would leave the journey without entries) */
    const char *seg = j ? j->entry.segment : NULL;
    wm__aud_row_t srow;
    if (rc == 0 && seg && wm__catalog_aud_get(e->catalog, "segment", project, seg, &srow) == 0) {
        wm_free(srow.draft);
    } else if (rc == 0 && seg) {
        wm_journey_error_t *er = &errs[n_errs++];
        memset(er, 0, sizeof *er);
        snprintf(er->field, sizeof er->field, "entry.segment");
        snprintf(er->msg, sizeof er->msg, "no segment '%.120s' in this project", seg);
        rc = WM_EINVAL;
    }
    *valid = rc == 0;
    wm_buf_printf(out, "{\"valid\":%s", *valid ? "true" : "false");
    if (*valid)
        wm_buf_printf(out, ",\"nodes\":%u", j->n_nodes);
    wm_buf_puts(out, ",\"errors\":[");
    for (uint32_t i = 0; i < n_errs && i < 64; i++) {
        wm_buf_puts(out, i ? ",{\"node\":" : "{\"node\":");
        wm_buf_json_str(out, errs[i].node, strlen(errs[i].node));
        wm_buf_puts(out, ",\"field\":");
        wm_buf_json_str(out, errs[i].field, strlen(errs[i].field));
        wm_buf_puts(out, ",\"message\":");
        wm_buf_json_str(out, errs[i].msg, strlen(errs[i].msg));
        wm_buf_putc(out, '}');
    }
    wm_buf_puts(out, "]}");
    if (j)
        wm_journey_free(j);
    names_free(&ch), names_free(&tp), names_free(&jr);
    return rc == WM_EINVAL ? 0 : rc;
}

int wm_engine_journey_validate(wm_engine_t *e, const char *project, const char *json, size_t len,
                               bool *valid, wm_buf_t *out)
{
    wm_arena_t a;
    wm_arena_init(&a, 16384);
    wm_json_t *def;
    wm_json_error_t je;
    int rc = wm_json_parse(&a, json, len, &def, &je);
    if (!rc)
        rc = validate(e, project, def, valid, out, wm_json_str(wm_json_get(def, "key")));
    else
        rc = WM_EPARSE;
    wm_arena_release(&a);
    return rc;
}

int wm_engine_journey_save(wm_engine_t *e, const char *project, const char *key, const char *json,
                           size_t len, bool *valid, wm_buf_t *out)
{
    wm_arena_t a;
    wm_arena_init(&a, 16384);
    wm_json_t *def;
    wm_json_error_t je;
    int rc = wm_json_parse(&a, json, len, &def, &je) ? WM_EPARSE : 0;
    const char *dkey = rc ? NULL : wm_json_str(wm_json_get(def, "key"));
    if (!rc && (!dkey || (key && strcmp(key, dkey))))
        rc = WM_EINVAL;
    if (!rc)
        rc = validate(e, project, def, valid, out, dkey);
    /* drafts are stored even when invalid: the canvas saves work in progress */
    if (!rc) {
        wm_buf_t compact;
        wm_buf_init(&compact, 0);
        wm_json_write(&compact, def);
        rc = compact.err ? compact.err : wm__catalog_journey_save(e->catalog, project, dkey, compact.data);
        wm_buf_release(&compact);
    }
    wm_arena_release(&a);
    return rc;
}

int wm_engine_journey_json(wm_engine_t *e, const char *project, const char *key, wm_buf_t *out)
{
    wm__journey_row_t row;
    int rc = wm__catalog_journey_get(e->catalog, project, key, &row);
    if (rc)
        return rc;
    wm_buf_puts(out, "{\"key\":");
    wm_buf_json_str(out, key, strlen(key));
    wm_buf_puts(out, ",\"status\":");
    wm_buf_json_str(out, row.status, strlen(row.status));
    wm_buf_printf(out, ",\"version\":%u,\"updated_ms\":%lld,\"definition\":%s}", row.version,
                  (long long)row.updated_ms, row.draft);
    wm_free(row.draft);
    return out->err;
}

int wm_engine_journeys_json(wm_engine_t *e, const char *project, wm_buf_t *out)
{
    return wm__catalog_journeys_json(e->catalog, project, out);
}

int wm_engine_journey_action(wm_engine_t *e, const char *project, const char *key, const char *action,
                             const char *actor, const char *reason, wm_buf_t *out)
{
    wm__journey_row_t row;
    int rc = wm__catalog_journey_get(e->catalog, project, key, &row);
    if (rc)
        return rc;
    if (!strcmp(action, "publish")) {
        bool valid = false;
        wm_buf_t vb;
        wm_buf_init(&vb, 0);
        rc = wm_engine_journey_validate(e, project, row.draft, strlen(row.draft), &valid, &vb);
        if (!rc && !valid) {
            wm_buf_append(out, vb.data, vb.len);
            rc = WM_EINVAL;
        }
        wm_buf_release(&vb);
        uint32_t version = 0;
        if (!rc)
            rc = wm__catalog_journey_publish(e->catalog, project, key, &version);
        if (!rc)
            rc = wm__catalog_journey_status(e->catalog, project, key, "published", actor, reason);
        if (!rc)
            wm_buf_printf(out, "{\"key\":\"%s\",\"status\":\"published\",\"version\":%u}", key, version);
    } else if (!strcmp(action, "pause") || !strcmp(action, "resume") || !strcmp(action, "stop")) {
        const char *status = !strcmp(action, "pause") ? "paused" : !strcmp(action, "stop") ? "stopped" : "published";
        if (!row.version)
            rc = WM_ESTATE; /* never published */
        else if (!strcmp(row.status, "stopped"))
            rc = WM_ESTATE; /* stopped is final: publish a new version instead */
        if (!rc)
            rc = wm__catalog_journey_status(e->catalog, project, key, status, actor, reason);
        if (!rc)
            wm_buf_printf(out, "{\"key\":\"%s\",\"status\":\"%s\",\"version\":%u}", key, status, row.version);
    } else {
        rc = WM_EINVAL;
    }
    wm_free(row.draft);
    if (!rc)
        rc = wm__jreg_reload(e->jreg);
    if (!rc && !strcmp(action, "stop")) {
        wm_buf_t c;
        wm_buf_init(&c, 0);
        wm_buf_puts(&c, "{\"cmd\":\"journey_stop\",\"project\":");
        wm_buf_json_str(&c, project, strlen(project));
        wm_buf_puts(&c, ",\"key\":");
        wm_buf_json_str(&c, key, strlen(key));
        wm_buf_puts(&c, ",\"reason\":");
        wm_buf_json_str(&c, reason ? reason : "stopped", reason ? strlen(reason) : 7);
        wm_buf_putc(&c, '}');
        rc = c.err ? c.err : command_all(e, c.data);
        wm_buf_release(&c);
    }
    /* a date or schedule entry of a newly published journey runs at once */
    if (!rc && !strcmp(action, "publish")) {
        pthread_mutex_lock(&e->sched_mu);
        pthread_cond_broadcast(&e->sched_cv);
        pthread_mutex_unlock(&e->sched_mu);
    }
    return rc;
}

int wm_engine_journey_report(wm_engine_t *e, const char *project, const char *key, wm_buf_t *out)
{
    const wm_jversion_t *cur = wm__jreg_current(wm__jreg_snapshot(e->jreg), project, key);
    if (!cur)
        return WM_ENOTFOUND;
    wm_jreport_t *r;
    int rc = wm__jreport_new(&r);
    for (uint32_t i = 0; i < e->n_parts && !rc; i++)
        rc = wm__jrt_report_add(e->parts[i]->jrt, project, key, r);
    if (!rc)
        wm__jreport_json(r, cur, out);
    wm__jreport_free(r);
    return rc ? rc : out->err;
}

int wm_engine_journey_enter(wm_engine_t *e, const char *project, const char *key, uint64_t user_id,
                            const char *item)
{
    const wm_jversion_t *cur = wm__jreg_current(wm__jreg_snapshot(e->jreg), project, key);
    if (!cur)
        return WM_ENOTFOUND;
    if (!cur->accepting)
        return WM_ESTATE;
    wm_buf_t b;
    wm_buf_init(&b, 0);
    wm_buf_puts(&b, "{\"cmd\":\"enter\",\"project\":");
    wm_buf_json_str(&b, project, strlen(project));
    wm_buf_puts(&b, ",\"key\":");
    wm_buf_json_str(&b, key, strlen(key));
    if (item) {
        wm_buf_puts(&b, ",\"item\":");
        wm_buf_json_str(&b, item, strlen(item));
    }
    wm_buf_putc(&b, '}');
    int rc = b.err ? b.err : wm_engine_command(e, user_id, b.data, b.len);
    wm_buf_release(&b);
    return rc;
}

/* ---- channels, templates, settings ---- */

int wm_engine_doc_put(wm_engine_t *e, const char *table, const char *project, const char *name,
                      const char *json, size_t len)
{
    if (strcmp(table, "channels") && strcmp(table, "templates") && strcmp(table, "project_settings"))
        return WM_EINVAL;
    if (!wm_name_valid(name))
        return WM_EINVAL;
    wm_arena_t a;
    wm_arena_init(&a, 8192);
    wm_json_t *o;
    wm_json_error_t je;
    int rc = wm_json_parse(&a, json, len, &o, &je) ? WM_EPARSE : 0;
    wm_buf_t b;
    wm_buf_init(&b, 0);
    if (!rc) {
        if (!strcmp(table, "project_settings") && o->type == WM_JSON_STRING)
            wm_buf_append(&b, o->u.str, o->len); /* plain values are stored as text */
        else if (!strcmp(table, "project_settings") && o->type == WM_JSON_NUMBER)
            wm_json_write(&b, o);
        else if (o->type == WM_JSON_OBJECT || o->type == WM_JSON_ARRAY)
            wm_json_write(&b, o);
        else
            rc = WM_EINVAL;
    }
    if (!rc && !strcmp(table, "templates")) {
        /* a template that does not compile is refused here, not at send time */
        const char *fields[2] = {"title", "body"};
        for (int i = 0; i < 2 && !rc; i++) {
            const char *text = wm_json_str(wm_json_get(o, fields[i]));
            wm_template_t *t;
            char err[200];
            if (text && wm_template_compile(text, &t, err, sizeof err))
                rc = WM_EINVAL;
            else if (text)
                wm_template_free(t);
        }
    }
    if (!rc)
        rc = b.err ? b.err : wm__catalog_doc_put(e->catalog, table, project, name, b.data);
    wm_buf_release(&b);
    wm_arena_release(&a);
    if (!rc)
        rc = wm__jreg_reload(e->jreg);
    return rc;
}

typedef struct docs_json {
    wm_buf_t *out;
    int n;
    bool settings;
} docs_json_t;

static int doc_json_cb(void *ctx, const char *project, const char *name, const char *json)
{
    docs_json_t *d = ctx;
    wm_buf_puts(d->out, d->n++ ? ",{\"name\":" : "{\"name\":");
    wm_buf_json_str(d->out, name, strlen(name));
    wm_buf_puts(d->out, ",\"value\":");
    if (d->settings && json[0] != '{' && json[0] != '[')
        wm_buf_json_str(d->out, json, strlen(json));
    else
        wm_buf_puts(d->out, json);
    wm_buf_putc(d->out, '}');
    return 0;
}

int wm_engine_docs_json(wm_engine_t *e, const char *table, const char *project, wm_buf_t *out)
{
    docs_json_t d = {.out = out, .settings = !strcmp(table, "project_settings")};
    wm_buf_puts(out, "{\"items\":[");
    int rc = wm__catalog_doc_each(e->catalog, table, project, doc_json_cb, &d);
    wm_buf_puts(out, "]}");
    return rc;
}

/* ---- messages, inbox, leads ---- */

int wm_engine_messages_json(wm_engine_t *e, uint64_t user_id, uint32_t limit, wm_buf_t *out)
{
    wm_buf_printf(out, "{\"user_id\":\"%llu\",\"messages\":[", (unsigned long long)user_id);
    int rc = wm__jrt_messages_json(e->parts[user_id % e->n_parts]->jrt, user_id, limit ? limit : 100, out);
    wm_buf_puts(out, "]}");
    return rc;
}

int wm_engine_message_json(wm_engine_t *e, const char *id, wm_buf_t *out)
{
    uint64_t user = wm__jrt_user_of_id(id);
    if (!user)
        return WM_ENOTFOUND;
    return wm__jrt_message_get(e->parts[user % e->n_parts]->jrt, id, out);
}

int wm_engine_messages_by_status_json(wm_engine_t *e, const char *project, const char *status,
                                      uint32_t limit, wm_buf_t *out)
{
    uint32_t n = 0;
    int rc = 0;
    wm_buf_puts(out, "{\"messages\":[");
    for (uint32_t i = 0; i < e->n_parts && !rc; i++)
        rc = wm__jrt_messages_by_status(e->parts[i]->jrt, project, status, limit ? limit : 100, &n, out);
    wm_buf_printf(out, "],\"count\":%u}", n);
    return rc;
}

int wm_engine_inbox_json(wm_engine_t *e, uint64_t user_id, wm_buf_t *out)
{
    wm_buf_printf(out, "{\"user_id\":\"%llu\",\"messages\":[", (unsigned long long)user_id);
    int rc = wm__jrt_inbox_json(e->parts[user_id % e->n_parts]->jrt, user_id, out);
    wm_buf_puts(out, "]}");
    return rc;
}

/* Masks what advisors and analysts need not see: all but the first 3 and
 * last 4 digits of a phone, all but the first character of a name, ids. */
static void mask_value(char *s)
{
    size_t n = strlen(s);
    if (n >= 8) {
        for (size_t i = 3; i + 4 < n; i++)
            s[i] = '*';
    } else if (n > 1) {
        for (size_t i = 1; i < n; i++)
            s[i] = '*';
    }
}

static const char *const PII_KEYS[] = {"name", "mobile", "phone", "email", "id_no", "id_card", "address",
                                       "bank_card", "$identity_mobile", "$identity_email", NULL};

bool wm__engine_is_pii(const char *key)
{
    for (const char *const *k = PII_KEYS; *k; k++)
        if (!strcmp(*k, key))
            return true;
    return false;
}

const char *wm__engine_mask_pii(wm_arena_t *a, const char *key, const char *value)
{
    if (!wm__engine_is_pii(key))
        return value;
    size_t n = strlen(value);
    char *copy = wm_arena_strndup(a, value, n);
    if (!copy)
        return "";
    if (!strcmp(key, "name") && n > 1) {
        /* keep the first UTF-8 character (a surname) */
        size_t first = 1;
        while (first < n && ((unsigned char)copy[first] & 0xC0) == 0x80)
            first++;
        char *m = wm_arena_alloc(a, first + 3);
        if (!m)
            return "";
        memcpy(m, copy, first);
        memcpy(m + first, "**", 3);
        return m;
    }
    mask_value(copy);
    return copy;
}

static void mask_lead(wm_arena_t *a, wm_json_t *lead)
{
    wm_json_t *profile = (wm_json_t *)wm_json_get(lead, "profile");
    for (wm_json_t *c = profile && profile->type == WM_JSON_OBJECT ? profile->u.child : NULL; c; c = c->next) {
        if (c->type != WM_JSON_STRING || !wm__engine_is_pii(c->key))
            continue;
        c->u.str = wm__engine_mask_pii(a, c->key, c->u.str);
        c->len = (uint32_t)strlen(c->u.str);
    }
}

static int emit_lead(const char *json, size_t len, const char *role, wm_buf_t *out)
{
    if (role && !strcmp(role, "admin")) {
        wm_buf_append(out, json, len);
        return 0;
    }
    wm_arena_t a;
    wm_arena_init(&a, 16384);
    wm_json_t *o;
    wm_json_error_t je;
    int rc = wm_json_parse(&a, json, len, &o, &je);
    if (!rc) {
        mask_lead(&a, o);
        wm_json_write(out, o);
    }
    wm_arena_release(&a);
    return rc ? WM_ECORRUPT : 0;
}

int wm_engine_leads_json(wm_engine_t *e, const char *project, const char *queue, const char *assignee,
                         const char *status, uint32_t limit, const char *role, wm_buf_t *out)
{
    wm_buf_t raw;
    wm_buf_init(&raw, 0);
    uint32_t n = 0;
    int rc = 0;
    /* the partitions append comma-separated objects, sharing the count n */
    for (uint32_t i = 0; i < e->n_parts && !rc; i++)
        rc = wm__jrt_leads_json(e->parts[i]->jrt, project, queue, assignee, status, limit ? limit : 200, &n, &raw);
    wm_buf_puts(out, "{\"leads\":[");
    if (!rc && raw.len) {
        wm_arena_t a;
        wm_arena_init(&a, 65536);
        wm_buf_t arr;
        wm_buf_init(&arr, 0);
        wm_buf_putc(&arr, '[');
        wm_buf_append(&arr, raw.data, raw.len);
        wm_buf_putc(&arr, ']');
        wm_json_t *list;
        wm_json_error_t je;
        if (wm_json_parse(&a, arr.data, arr.len, &list, &je) == 0) {
            int k = 0;
            for (const wm_json_t *c = list->u.child; c; c = c->next) {
                wm_buf_t one;
                wm_buf_init(&one, 0);
                wm_json_write(&one, c);
                if (k++)
                    wm_buf_putc(out, ',');
                emit_lead(one.data, one.len, role, out);
                wm_buf_release(&one);
            }
        }
        wm_buf_release(&arr);
        wm_arena_release(&a);
    }
    wm_buf_printf(out, "],\"count\":%u}", n);
    wm_buf_release(&raw);
    return rc;
}

int wm_engine_lead_json(wm_engine_t *e, const char *id, const char *role, wm_buf_t *out)
{
    uint64_t user = wm__jrt_user_of_id(id);
    if (!user || id[0] != 'l')
        return WM_ENOTFOUND;
    wm_buf_t raw;
    wm_buf_init(&raw, 0);
    int rc = wm__jrt_lead_get(e->parts[user % e->n_parts]->jrt, id, &raw);
    if (!rc)
        rc = emit_lead(raw.data, raw.len, role, out);
    wm_buf_release(&raw);
    return rc;
}
