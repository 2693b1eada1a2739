/*
 * engine.c - ties catalog, identity and partitions into the ingest path and
 * the customer-360 queries.
 *
 * Submit path (any HTTP thread or the importer):
 *   token + schema check -> dedup window -> [route lock: identity resolve,
 *   payload build, enqueue to partition writers] -> wait for durability.
 * The route lock makes identity resolution and enqueue one atomic step, so
 * the order in which records reach the partition queues is the order in
 * which their identities were resolved; merge records rely on it (from_hw).
 */
#include "waymark/engine.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/catalog.h"
#include "engine_internal.h"
#include "partition.h"
#include "waymark/alloc.h"
#include "waymark/error.h"
#include "waymark/identity.h"
#include "waymark/limits.h"
#include "waymark/strmap.h"

/* ---- small helpers ---- */

static void set_err(wm_rec_error_t *err, const char *code, const char *field, const char *fmt,
                    const char *arg)
{
    err->code = code;
    snprintf(err->field, sizeof err->field, "%s", field);
    snprintf(err->msg, sizeof err->msg, fmt, arg);
}

wm_part_t *wm__engine_part(wm_engine_t *e, uint32_t index)
{
    return e->parts[index % e->n_parts];
}

uint32_t wm__engine_partitions(wm_engine_t *e) { return e->n_parts; }

/* Identity mappings of the records in a log round are committed before the
 * records were queued; making them durable before the log's own fsync keeps
 * "acknowledged" meaning "identity and record both on disk". */
int wm__engine_identity_sync(wm_engine_t *e)
{
    return e->fsync_mode == WM_FSYNC_ALWAYS ? wm_identity_sync(e->identity) : 0;
}

static uint32_t user_part(const wm_engine_t *e, uint64_t user_id)
{
    return (uint32_t)(user_id % e->n_parts);
}

/* ---- dedup window ---- */

static uint64_t *dedup_find(dedup_gen_t *g, uint64_t h)
{
    uint32_t i = (uint32_t)h & (DEDUP_GEN_SLOTS - 1);
    for (;;) {
        uint64_t *s = &g->slots[i];
        if (*s == 0 || *s == h)
            return s;
        i = (i + 1) & (DEDUP_GEN_SLOTS - 1);
    }
}

static bool dedup_contains(wm_engine_t *e, uint64_t h)
{
    return *dedup_find(&e->dedup[0], h) == h || *dedup_find(&e->dedup[1], h) == h;
}

static void dedup_insert_locked(wm_engine_t *e, uint64_t h)
{
    if (e->dedup[0].count >= DEDUP_GEN_FILL) {
        dedup_gen_t old = e->dedup[1];
        e->dedup[1] = e->dedup[0];
        memset(old.slots, 0, sizeof(uint64_t) * DEDUP_GEN_SLOTS);
        old.count = 0;
        e->dedup[0] = old;
    }
    uint64_t *s = dedup_find(&e->dedup[0], h);
    if (*s != h) {
        *s = h;
        e->dedup[0].count++;
    }
}

void wm__engine_dedup_add(wm_engine_t *e, uint64_t h)
{
    pthread_mutex_lock(&e->dedup_mu);
    dedup_insert_locked(e, h);
    pthread_mutex_unlock(&e->dedup_mu);
}

/* Removal leaves a tombstone so probe chains stay intact. */
static void dedup_remove_locked(wm_engine_t *e, uint64_t h)
{
    for (int g = 0; g < 2; g++) {
        uint64_t *s = dedup_find(&e->dedup[g], h);
        if (*s == h)
            *s = DEDUP_TOMBSTONE;
    }
}

/* A client retry repeats the same record: Segment messageId / native event_id,
 * or the Sensors SDKs' random _track_id with the same distinct id, event and
 * time. Records without either carry no identity of their own: no dedup. */
static uint64_t hash_str(uint64_t h, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    h = wm_hash64(s ? s : "", n, h);
    return wm_hash64(&n, sizeof n, h);
}

static uint64_t dedup_key(const wm_record_t *r)
{
    uint64_t h = 0x77617976;
    if (r->message_id) {
        h = hash_str(h, "m");
        h = hash_str(h, r->project);
        h = hash_str(h, r->message_id);
    } else if (r->has_track_id) {
        int64_t nums[3] = {r->type, r->track_id, r->time_ms};
        h = hash_str(h, "t");
        h = hash_str(h, r->project);
        h = hash_str(h, r->distinct_id);
        h = hash_str(h, r->event);
        h = wm_hash64(nums, sizeof nums, h);
    } else {
        return 0;
    }
    return h > DEDUP_TOMBSTONE ? h : h + 2;
}

/* ---- open / close ---- */

static int mkdir_p(const char *dir)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) && errno != EEXIST)
            return WM_EIO;
        *p = '/';
    }
    return mkdir(tmp, 0755) && errno != EEXIST ? WM_EIO : 0;
}

static int random_hex(char *out, size_t bytes)
{
    unsigned char raw[64];
    if (bytes > sizeof raw || getrandom(raw, bytes, 0) != (ssize_t)bytes)
        return WM_EIO;
    for (size_t i = 0; i < bytes; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

static int setup_admin_key(wm_engine_t *e, const char *given)
{
    snprintf(e->admin_key_path, sizeof e->admin_key_path, "%s/admin.key", e->data_dir);
    if (given && *given) {
        snprintf(e->admin_key, sizeof e->admin_key, "%s", given);
    } else {
        FILE *f = fopen(e->admin_key_path, "r");
        if (f) {
            if (!fgets(e->admin_key, sizeof e->admin_key, f))
                e->admin_key[0] = '\0';
            fclose(f);
            e->admin_key[strcspn(e->admin_key, "\r\n")] = '\0';
        }
        if (!e->admin_key[0]) {
            strcpy(e->admin_key, "wm_");
            if (random_hex(e->admin_key + 3, 24))
                return WM_EIO;
            int fd = open(e->admin_key_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            if (fd < 0)
                return WM_EIO;
            size_t n = strlen(e->admin_key);
            int ok = write(fd, e->admin_key, n) == (ssize_t)n && write(fd, "\n", 1) == 1 &&
                     fsync(fd) == 0;
            close(fd);
            if (!ok)
                return WM_EIO;
            e->admin_key_generated = true;
        }
    }
    return wm__catalog_key_add(e->catalog, e->admin_key, "admin");
}

int wm_engine_open(const wm_engine_opts_t *opts, wm_engine_t **out)
{
    wm_engine_t *e = wm_calloc(1, sizeof *e);
    if (!e)
        return WM_ENOMEM;
    pthread_mutex_init(&e->route_mu, NULL);
    pthread_mutex_init(&e->dedup_mu, NULL);
    pthread_mutex_init(&e->metrics_mu, NULL);
    wm_strmap_init(&e->rejected);
    wm_strmap_init(&e->requests);
    e->fsync_mode = opts->fsync_mode;
    int rc = WM_ENOMEM;
    e->data_dir = wm_strdup(opts->data_dir);
    e->dedup[0].slots = wm_calloc(DEDUP_GEN_SLOTS, sizeof(uint64_t));
    e->dedup[1].slots = wm_calloc(DEDUP_GEN_SLOTS, sizeof(uint64_t));
    if (!e->data_dir || !e->dedup[0].slots || !e->dedup[1].slots)
        goto fail;
    if ((rc = mkdir_p(opts->data_dir))) {
        fprintf(stderr, "waymark: cannot create data directory %s: %s\n", opts->data_dir,
                strerror(errno));
        goto fail;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/LOCK", opts->data_dir);
    e->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (e->lock_fd < 0 || flock(e->lock_fd, LOCK_EX | LOCK_NB)) {
        fprintf(stderr, "waymark: %s is in use by another waymark process\n", opts->data_dir);
        rc = WM_EBUSY;
        goto fail;
    }
    snprintf(path, sizeof path, "%s/catalog.db", opts->data_dir);
    if ((rc = wm__catalog_open(path, &e->catalog)))
        goto fail;
    if ((rc = setup_admin_key(e, opts->admin_key)))
        goto fail;
    e->test_clock = opts->test_clock;
    if ((rc = wm__engine_journeys_open(e)))
        goto fail;
    if ((rc = wm__areg_open(e->catalog, &e->areg)))
        goto fail;
    pthread_mutex_init(&e->rec_mu, NULL);
    wm_identity_opts_t io = {.dir = opts->data_dir, .nosync = true, .cache_entries = opts->identity_cache};
    if ((rc = wm_identity_open(&io, &e->identity)))
        goto fail;

    /* The partition count is fixed at creation: user -> partition must not change. */
    uint32_t n = opts->partitions;
    snprintf(path, sizeof path, "%s/partitions.count", opts->data_dir);
    FILE *f = fopen(path, "r");
    if (f) {
        unsigned stored = 0;
        if (fscanf(f, "%u", &stored) == 1 && stored > 0) {
            if (n && n != stored)
                fprintf(stderr, "waymark: %s was created with %u partitions; using %u\n",
                        opts->data_dir, stored, stored);
            n = stored;
        }
        fclose(f);
    }
    if (!n) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus > 0 ? (uint32_t)cpus : 1;
    }
    if (n > WM_PARTITIONS_MAX)
        n = WM_PARTITIONS_MAX;
    if (!(f = fopen(path, "w")) || fprintf(f, "%u\n", n) < 0 || fclose(f)) {
        rc = WM_EIO;
        goto fail;
    }
    e->parts = wm_calloc(n, sizeof *e->parts);
    if (!e->parts) {
        rc = WM_ENOMEM;
        goto fail;
    }
    e->n_parts = n;
    wm_log_opts_t lo = {.fsync_mode = opts->fsync_mode, .fsync_interval_ms = opts->fsync_interval_ms};
    for (uint32_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/p%02u", opts->data_dir, i);
        if ((rc = wm__part_open(e, i, path, &lo, &e->parts[i])))
            goto fail;
    }
    for (uint32_t i = 0; i < n; i++)
        if ((rc = wm__part_start(e->parts[i])))
            goto fail;
    if ((rc = wm__engine_analytics_open(e, !opts->no_compactor)))
        goto fail;
    if (!opts->no_timers && (rc = wm__engine_journeys_start(e)))
        goto fail;
    *out = e;
    return 0;
fail:
    wm_engine_close(e);
    return rc;
}

void wm_engine_close(wm_engine_t *e)
{
    if (!e)
        return;
    wm__engine_analytics_close(e);
    wm__engine_journeys_close(e);
    for (uint32_t i = 0; i < e->n_parts; i++)
        wm__part_close(e->parts[i]);
    wm_free(e->parts);
    wm__engine_journeys_free(e);
    wm__engine_rec_free(e);
    wm__areg_close(e->areg);
    if (e->identity) {
        wm_identity_sync(e->identity);
        wm_identity_close(e->identity);
    }
    wm__catalog_close(e->catalog);
    wm_free(e->dedup[0].slots);
    wm_free(e->dedup[1].slots);
    wm_strmap_release(&e->rejected);
    wm_strmap_release(&e->requests);
    wm_free(e->data_dir);
    if (e->lock_fd > 0)
        close(e->lock_fd);
    pthread_mutex_destroy(&e->route_mu);
    pthread_mutex_destroy(&e->dedup_mu);
    pthread_mutex_destroy(&e->metrics_mu);
    wm_free(e);
}

const char *wm_engine_admin_key(const wm_engine_t *e, bool *generated, const char **path)
{
    if (generated)
        *generated = e->admin_key_generated;
    if (path)
        *path = e->admin_key_path;
    return e->admin_key;
}

int wm_engine_check_token(wm_engine_t *e, const char *project, const char *token)
{
    return wm__catalog_check_token(e->catalog, project, token);
}

const char *wm_engine_key_role(wm_engine_t *e, const char *key, char *role, size_t role_len)
{
    if (!key || !*key)
        return NULL;
    return wm__catalog_key_role(e->catalog, key, role, role_len) == 0 ? role : NULL;
}

/* ---- submit ---- */

typedef struct job_builder {
    wm_job_t *job;
    uint32_t cap;
} job_builder_t;

static int job_add(job_builder_t *jb, unsigned char *payload, uint32_t len)
{
    if (!jb->job) {
        jb->job = wm_calloc(1, sizeof *jb->job);
        if (!jb->job)
            return WM_ENOMEM;
    }
    wm_job_t *j = jb->job;
    if (j->n == jb->cap) {
        uint32_t cap = jb->cap ? jb->cap * 2 : 16;
        unsigned char **p = wm_realloc(j->payloads, cap * sizeof *p);
        if (!p)
            return WM_ENOMEM;
        j->payloads = p;
        uint32_t *l = wm_realloc(j->lens, cap * sizeof *l);
        if (!l)
            return WM_ENOMEM;
        j->lens = l;
        jb->cap = cap;
    }
    j->payloads[j->n] = payload;
    j->lens[j->n] = len;
    j->n++;
    return 0;
}

static unsigned char *build_payload(const wm_payload_hdr_t *h, const char *json, size_t jlen,
                                    uint32_t *len)
{
    size_t total = sizeof *h + jlen;
    unsigned char *p = wm_malloc(total);
    if (!p)
        return NULL;
    memcpy(p, h, sizeof *h);
    memcpy(p + sizeof *h, json, jlen);
    *len = (uint32_t)total;
    return p;
}

static uint32_t item_part(const wm_engine_t *e, const wm_record_t *r)
{
    char buf[700];
    int n = snprintf(buf, sizeof buf, "%s\x1f%s\x1f%s", r->project, r->item_type, r->item_id);
    return (uint32_t)(wm_hash64(buf, n > 0 ? (size_t)n : 0, 0) % e->n_parts);
}

static bool is_item(const wm_record_t *r)
{
    return r->type == WM_REC_ITEM_SET || r->type == WM_REC_ITEM_DELETE;
}

/* Records the reason of a rejection for /metrics and keeps a dead letter. */
static void reject(wm_engine_t *e, const wm_submit_opts_t *o, const wm_record_t *r,
                   const wm_rec_error_t *err)
{
    wm_engine_count_rejected(e, err->code ? err->code : "error", 1);
    if (!o || !o->deadletter)
        return;
    wm_buf_t b;
    wm_buf_init(&b, 0);
    if (r->src)
        wm_json_write(&b, r->src);
    wm__catalog_deadletter_add(e->catalog, r->project ? r->project : "default",
                               o->source ? o->source : "unknown", err, b.data ? b.data : "", b.len);
    wm_buf_release(&b);
}

/* Sensors' time window: a record far in the future is a broken client clock,
 * one far in the past a mistake, unless it says time_free (history import). */
#define TIME_AHEAD_MAX_MS (3600LL * 1000)
#define TIME_BEHIND_MAX_MS (3653LL * 24 * 3600 * 1000)

static bool time_in_window(const wm_record_t *r, int64_t engine_now)
{
    if (r->time_free || !r->receive_time_ms)
        return true;
    /* with a test clock the engine's now runs ahead of the wall clock */
    int64_t ahead_ref = engine_now > r->receive_time_ms ? engine_now : r->receive_time_ms;
    return r->time_ms <= ahead_ref + TIME_AHEAD_MAX_MS &&
           r->time_ms >= r->receive_time_ms - TIME_BEHIND_MAX_MS;
}

static bool same_str(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static void check_records(wm_engine_t *e, wm_batch_t *b, const wm_submit_opts_t *o,
                          wm_submit_result_t *res)
{
    /* a batch's records mostly name one project with one token: a pair that
     * passed is not looked up again (one catalog lock per record before) */
    const char *ok_project = NULL, *ok_token = NULL;
    bool have_ok = false;
    for (uint32_t i = 0; i < b->n; i++) {
        wm_record_t *r = &b->records[i];
        wm_rec_error_t *err = &b->errors[i];
        if (!err->code) {
            const char *project = r->project ? r->project : "default";
            int rc = have_ok && same_str(project, ok_project) && same_str(r->token, ok_token)
                         ? 0
                         : wm__catalog_check_token(e->catalog, project, r->token);
            if (!rc) {
                ok_project = project;
                ok_token = r->token;
                have_ok = true;
            }
            if (rc == WM_ENOTFOUND)
                set_err(err, "unknown_project", "project",
                        "project '%s' does not exist; create it first", project);
            else if (rc == WM_EAUTH)
                set_err(err, "invalid_token", "token",
                        "the token does not match project '%s'", project);
            else if (rc)
                set_err(err, "internal", "", "%s", wm_strerror(rc));
            else if (!time_in_window(r, wm__engine_clock(e)))
                set_err(err, "time_out_of_range", "time",
                        "the record's time is more than 1 hour ahead of the server or more "
                        "than 10 years behind it; set \"time_free\": true to import %s",
                        "history");
            else
                wm__catalog_schema_check(e->catalog, r, o && o->dry_run, err);
        }
        if (err->code) {
            res->rejected++;
            reject(e, o, r, err);
        }
    }
}

/* Marks retries as duplicates (reported ok, not stored). Returns the keys
 * inserted so they can be withdrawn if the batch is refused. */
static void dedup_batch(wm_engine_t *e, wm_batch_t *b, uint64_t *keys, bool *dup,
                        wm_submit_result_t *res)
{
    for (uint32_t i = 0; i < b->n; i++)
        keys[i] = b->errors[i].code ? 0 : dedup_key(&b->records[i]);
    pthread_mutex_lock(&e->dedup_mu);
    for (uint32_t i = 0; i < b->n; i++) {
        dup[i] = false;
        if (!keys[i])
            continue;
        if (dedup_contains(e, keys[i])) {
            dup[i] = true;
            keys[i] = 0;
            res->duplicates++;
            continue;
        }
        dedup_insert_locked(e, keys[i]);
    }
    pthread_mutex_unlock(&e->dedup_mu);
}

static void dedup_withdraw(wm_engine_t *e, const uint64_t *keys, uint32_t n)
{
    pthread_mutex_lock(&e->dedup_mu);
    for (uint32_t i = 0; i < n; i++)
        if (keys[i])
            dedup_remove_locked(e, keys[i]);
    pthread_mutex_unlock(&e->dedup_mu);
}

typedef struct route_state {
    wm_engine_t *e;
    job_builder_t *jobs;        /* one per partition */
    wm_buf_t json;
} route_state_t;

static int route_merge(route_state_t *rs, const wm_record_t *r, const wm_id_merge_t *m)
{
    wm_engine_t *e = rs->e;
    uint32_t from_part = user_part(e, m->from_user);
    wm_payload_hdr_t h = {
        .kind = WM_PAYLOAD_MERGE,
        .from_part = from_part,
        .user_id = m->into_user,
        .time_ms = r->time_ms,
        .from_user = m->from_user,
    };
    /* everything routed to the merged user's partition so far must be applied first */
    h.from_hw = e->parts[from_part]->next_seq - 1 +
                (rs->jobs[from_part].job ? rs->jobs[from_part].job->n : 0);
    wm_buf_reset(&rs->json);
    wm_buf_puts(&rs->json, "{\"event\":");
    wm_buf_json_str(&rs->json, r->event ? r->event : "", r->event ? strlen(r->event) : 0);
    wm_buf_puts(&rs->json, ",\"distinct_id\":");
    wm_buf_json_str(&rs->json, r->distinct_id ? r->distinct_id : "",
                    r->distinct_id ? strlen(r->distinct_id) : 0);
    wm_buf_printf(&rs->json, ",\"time\":%lld}", (long long)r->time_ms);
    uint32_t len;
    unsigned char *p = build_payload(&h, rs->json.data, rs->json.len, &len);
    if (!p || rs->json.err)
        return WM_ENOMEM;
    return job_add(&rs->jobs[user_part(e, m->into_user)], p, len);
}

/* Serialises a record into a log payload with a placeholder header,
 * appended to the batch's block at an 8-byte boundary; *off is where it
 * starts. The header is completed under the route lock once the user is
 * known. Done outside the lock so that concurrent submitters serialise in
 * parallel. */
static int prebuild_payload(const wm_record_t *r, uint64_t dedup, wm_buf_t *blk, size_t *off,
                            uint32_t *len)
{
    wm_payload_hdr_t h = {
        .kind = WM_PAYLOAD_RECORD,
        .rec_type = (uint8_t)r->type,
        .flags = r->event && !wm__aud_rec_candidate(r->event) ? WM_PFLAG_NO_REC : 0,
        .time_ms = r->time_ms,
        .dedup = dedup,
    };
    /* the ingest token was checked already; it is not kept with the data */
    wm_record_t copy = *r;
    copy.token = NULL;
    static const unsigned char pad[8];
    wm_buf_append(blk, pad, (8 - (blk->len & 7)) & 7);
    *off = blk->len;
    wm_buf_append(blk, &h, sizeof h);
    wm_record_to_json(&copy, blk);
    if (blk->err)
        return blk->err;
    *len = (uint32_t)(blk->len - *off);
    return 0;
}

static int route_record(route_state_t *rs, const wm_record_t *r, const wm_id_result_t *idr,
                        unsigned char *payload, uint32_t len)
{
    wm_engine_t *e = rs->e;
    for (uint32_t m = 0; m < idr->n_merges; m++) {
        int rc = route_merge(rs, r, &idr->merges[m]);
        if (rc)
            return rc;
    }
    wm_payload_hdr_t *h = (wm_payload_hdr_t *)(void *)payload;
    h->flags = (uint8_t)((h->flags & WM_PFLAG_NO_REC) | (idr->created ? WM_PFLAG_USER_CREATED : 0) |
                         (r->event && !strcmp(r->event, "Unsubscribe") ? WM_PFLAG_CONSENT : 0));
    h->user_id = idr->user_id;
    uint32_t part = is_item(r) ? item_part(e, r) : user_part(e, idr->user_id);
    return job_add(&rs->jobs[part], payload, len);
}

static bool queues_have_room(wm_engine_t *e, uint32_t n)
{
    for (uint32_t i = 0; i < e->n_parts; i++) {
        wm_part_t *p = e->parts[i];
        pthread_mutex_lock(&p->mu);
        bool full = p->queued_records + n > WM_PARTITION_QUEUE_MAX;
        pthread_mutex_unlock(&p->mu);
        if (full)
            return false;
    }
    return true;
}

static int route_and_enqueue(wm_engine_t *e, wm_batch_t *b, const bool *dup, const uint64_t *keys,
                             wm_waiter_t *w, wm_submit_result_t *res, const wm_submit_opts_t *o)
{
    uint32_t n = b->n ? b->n : 1;
    wm_id_result_t *idr = wm_calloc(n, sizeof *idr);
    job_builder_t *jobs = wm_calloc(e->n_parts, sizeof *jobs);
    unsigned char **payloads = wm_calloc(n, sizeof *payloads);
    uint32_t *lens = wm_calloc(n, sizeof *lens);
    size_t *offs = wm_calloc(n, sizeof *offs);
    wm_payload_block_t *block = wm_calloc(1, sizeof *block);
    route_state_t rs = {.e = e, .jobs = jobs};
    wm_buf_init(&rs.json, WM_RECORD_BYTES_MAX * 2);
    /* every payload of the batch in one allocation (no malloc and free per record) */
    wm_buf_t blk;
    wm_buf_init(&blk, 0);
    int rc = idr && jobs && payloads && lens && offs && block ? 0 : WM_ENOMEM;
    size_t est = 0;
    for (uint32_t i = 0; i < b->n; i++)
        est += (b->records[i].raw ? b->records[i].raw_len : 1024) + sizeof(wm_payload_hdr_t) + 128;
    if (!rc && wm_buf_reserve(&blk, est))
        rc = WM_ENOMEM;
    for (uint32_t i = 0; i < b->n && !rc; i++)
        if (!dup[i] && !b->errors[i].code)
            rc = prebuild_payload(&b->records[i], keys[i], &blk, &offs[i], &lens[i]);
    if (!rc) {
        block->data = (unsigned char *)wm_buf_steal(&blk, &block->len);
        atomic_store(&block->refs, 1); /* ours until the jobs are enqueued */
        for (uint32_t i = 0; i < b->n; i++)
            if (lens[i])
                payloads[i] = block->data + offs[i];
    }
    if (o && o->order_cb)
        o->order_cb(o->order_ctx, 0);
    pthread_mutex_lock(&e->route_mu);
    if (!rc && !queues_have_room(e, b->n))
        rc = WM_EBUSY;
    if (!rc) {
        /* duplicates are hidden from identity resolution with a temporary code */
        for (uint32_t i = 0; i < b->n; i++)
            if (dup[i])
                b->errors[i].code = WM_SUBMIT_DUPLICATE;
        rc = wm_identity_resolve_batch(e->identity, b->records, b->n, idr, b->errors);
        for (uint32_t i = 0; i < b->n; i++)
            if (dup[i])
                b->errors[i].code = NULL;
    }
    for (uint32_t i = 0; i < b->n && !rc; i++) {
        if (dup[i] || b->errors[i].code)
            continue;
        if ((rc = route_record(&rs, &b->records[i], &idr[i], payloads[i], lens[i])))
            break;
        res->accepted++;
    }
    for (uint32_t i = 0; jobs && i < e->n_parts; i++)
        if (jobs[i].job && block && block->data) {
            jobs[i].job->block = block;
            atomic_fetch_add(&block->refs, 1);
        }
    if (!rc) {
        for (uint32_t i = 0; i < e->n_parts; i++) {
            if (!jobs[i].job)
                continue;
            jobs[i].job->waiter = w;
            w->jobs_left++;
            wm__part_enqueue(e->parts[i], jobs[i].job);
            jobs[i].job = NULL;
        }
    }
    pthread_mutex_unlock(&e->route_mu);
    if (o && o->order_cb)
        o->order_cb(o->order_ctx, 1);
    for (uint32_t i = 0; jobs && i < e->n_parts; i++)
        wm__job_free(jobs[i].job);
    if (block && block->data)
        wm__block_unref(block);
    else
        wm_free(block);
    wm_buf_release(&blk);
    wm_free(payloads);
    wm_free(offs);
    wm_free(lens);
    wm_free(jobs);
    wm_free(idr);
    wm_buf_release(&rs.json);
    return rc;
}

int wm_engine_submit(wm_engine_t *e, wm_batch_t *b, const wm_submit_opts_t *o,
                     wm_submit_result_t *res)
{
    memset(res, 0, sizeof *res);
    /* until every partition has replayed its log the dedup window is not
     * complete: a client retry of an acknowledged record would be stored twice */
    for (uint32_t i = 0; i < e->n_parts; i++)
        if (!wm__part_wait_ready(e->parts[i], WM_READY_WAIT_MS)) {
            if (o && o->order_cb) {
                o->order_cb(o->order_ctx, 0);
                o->order_cb(o->order_ctx, 1);
            }
            return WM_EBUSY;
        }
    for (uint32_t i = 0; i < b->n; i++)
        if (!b->records[i].project)
            b->records[i].project = "default";
    check_records(e, b, o, res);
    if (o && o->dry_run) {
        if (o->order_cb) {
            o->order_cb(o->order_ctx, 0);
            o->order_cb(o->order_ctx, 1);
        }
        return 0;
    }
    uint64_t *keys = wm_calloc(b->n ? b->n : 1, sizeof *keys);
    bool *dup = wm_calloc(b->n ? b->n : 1, sizeof *dup);
    if (!keys || !dup) {
        wm_free(keys);
        wm_free(dup);
        if (o && o->order_cb) {
            o->order_cb(o->order_ctx, 0);
            o->order_cb(o->order_ctx, 1);
        }
        return WM_ENOMEM;
    }
    dedup_batch(e, b, keys, dup, res);
    wm_waiter_t w = {.jobs_left = 0};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    int rc = route_and_enqueue(e, b, dup, keys, &w, res, o);
    /* identity may have rejected more records */
    for (uint32_t i = 0; i < b->n; i++)
        if (b->errors[i].code && !dup[i]) {
            if (keys[i]) {
                pthread_mutex_lock(&e->dedup_mu);
                dedup_remove_locked(e, keys[i]);
                pthread_mutex_unlock(&e->dedup_mu);
                keys[i] = 0;
                res->rejected++;
                reject(e, o, &b->records[i], &b->errors[i]);
            }
        }
    if (rc) {
        dedup_withdraw(e, keys, b->n);
        res->accepted = 0;
        if (rc == WM_EBUSY)
            atomic_fetch_add(&e->m_busy, 1);
    } else {
        pthread_mutex_lock(&w.mu);
        while (w.jobs_left > 0)
            pthread_cond_wait(&w.cv, &w.mu);
        rc = w.err;
        pthread_mutex_unlock(&w.mu);
        if (rc)
            res->accepted = 0;
    }
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    wm_free(keys);
    wm_free(dup);
    if (!rc) {
        atomic_fetch_add(&e->m_accepted, res->accepted);
        atomic_fetch_add(&e->m_duplicates, res->duplicates);
    }
    return rc;
}

uint32_t wm_engine_partition_count(const wm_engine_t *e) { return e->n_parts; }

bool wm_engine_ready(wm_engine_t *e)
{
    for (uint32_t i = 0; i < e->n_parts; i++)
        if (!atomic_load(&e->parts[i]->ready) || atomic_load(&e->parts[i]->failed))
            return false;
    return true;
}

int wm_engine_project_for_key(wm_engine_t *e, const char *key, char *project, size_t len)
{
    return wm__catalog_project_for_token(e->catalog, key, project, len);
}

int wm_engine_wait_applied(wm_engine_t *e, int timeout_ms)
{
    for (uint32_t i = 0; i < e->n_parts; i++) {
        wm_part_t *p = e->parts[i];
        pthread_mutex_lock(&e->route_mu);
        uint64_t target = p->next_seq - 1;
        pthread_mutex_unlock(&e->route_mu);
        if (!wm__part_wait_applied(p, target, timeout_ms))
            return WM_EBUSY;
    }
    return 0;
}

/* ---- customer 360 ---- */

static bool user_exists(wm_engine_t *e, uint64_t user_id, const char *project)
{
    char *meta = NULL;
    size_t len;
    if (wm__part_user_meta(e->parts[user_part(e, user_id)], user_id, &meta, &len))
        return false;
    bool ok = true;
    if (project) {
        /* the meta object starts with {"project":"NAME" */
        char want[300];
        int n = snprintf(want, sizeof want, "{\"project\":\"%s\"", project);
        ok = n > 0 && (size_t)n < sizeof want && strncmp(meta, want, (size_t)n) == 0;
    }
    wm_free(meta);
    return ok;
}

int wm_engine_find_user(wm_engine_t *e, const char *project, const char *id, const char *id_type,
                        uint64_t *user_id)
{
    if (!id || !*id)
        return WM_EINVAL;
    if (!id_type || !*id_type || strcmp(id_type, "distinct_id") == 0)
        return wm_identity_lookup_distinct(e->identity, project, id, user_id);
    if (strcmp(id_type, "user_id") == 0) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(id, &end, 10);
        if (errno || *end || !v)
            return WM_EINVAL;
        if (!user_exists(e, v, project))
            return WM_ENOTFOUND;
        *user_id = v;
        return 0;
    }
    const char *key = id_type;
    char keybuf[160];
    if (strcmp(id_type, "login_id") == 0)
        key = WM_ID_KEY_LOGIN;
    else if (strcmp(id_type, "anonymous_id") == 0)
        key = WM_ID_KEY_ANON;
    else if (id_type[0] != '$') {
        snprintf(keybuf, sizeof keybuf, "$identity_%s", id_type);
        key = keybuf;
    }
    return wm_identity_lookup(e->identity, project, key, id, user_id);
}

typedef struct ident_json {
    wm_buf_t *out;
    int n;
} ident_json_t;

static int ident_cb(void *ctx, const char *key, const char *value)
{
    ident_json_t *ij = ctx;
    wm_buf_puts(ij->out, ij->n++ ? ",{\"key\":" : "{\"key\":");
    wm_buf_json_str(ij->out, key, strlen(key));
    wm_buf_puts(ij->out, ",\"value\":");
    wm_buf_json_str(ij->out, value, strlen(value));
    wm_buf_putc(ij->out, '}');
    return 0;
}

#define MERGED_MAX 64

/* The audit of identity merges into a user: who, when, by which record. */
typedef struct merge_json {
    wm_buf_t *out;
    int n;
} merge_json_t;

static int merge_cb(void *ctx, const wm_id_merge_entry_t *m)
{
    merge_json_t *mj = ctx;
    wm_buf_printf(mj->out, "%s{\"from_user\":\"%llu\",\"time\":%lld,\"event\":", mj->n++ ? "," : "",
                  (unsigned long long)m->from_user, (long long)m->time_ms);
    wm_buf_json_str(mj->out, m->event ? m->event : "", m->event ? strlen(m->event) : 0);
    wm_buf_puts(mj->out, ",\"distinct_id\":");
    wm_buf_json_str(mj->out, m->distinct_id ? m->distinct_id : "",
                    m->distinct_id ? strlen(m->distinct_id) : 0);
    wm_buf_putc(mj->out, '}');
    return 0;
}

int wm_engine_user_json(wm_engine_t *e, const char *project, uint64_t user_id, wm_buf_t *out)
{
    wm_part_t *p = e->parts[user_part(e, user_id)];
    wm_buf_printf(out, "{\"user_id\":\"%llu\",\"project\":", (unsigned long long)user_id);
    wm_buf_json_str(out, project, strlen(project));
    wm_buf_puts(out, ",\"identities\":[");
    ident_json_t ij = {.out = out};
    int rc = wm_identity_list(e->identity, project, user_id, ident_cb, &ij);
    if (rc && rc != WM_ENOTFOUND)
        return rc;
    wm_buf_puts(out, "],\"profile\":");
    char *json = NULL;
    size_t len = 0;
    rc = wm__part_profile_get(p, user_id, &json, &len);
    if (rc == 0)
        wm_buf_append(out, json, len);
    else if (rc == WM_ENOTFOUND)
        wm_buf_puts(out, "{}");
    else
        return rc;
    wm_free(json);
    json = NULL;
    if (wm__part_user_meta(p, user_id, &json, &len) == 0) {
        /* {"project":..,"first_seen_ms":N} -> pick first_seen_ms */
        const char *fs = strstr(json, "\"first_seen_ms\":");
        if (fs)
            wm_buf_printf(out, ",\"first_seen_ms\":%lld", strtoll(fs + 16, NULL, 10));
        wm_free(json);
    }
    uint64_t merged[MERGED_MAX];
    uint32_t nm = 0;
    wm__part_merged_from(p, user_id, merged, MERGED_MAX, &nm);
    wm_buf_puts(out, ",\"merged_from\":[");
    for (uint32_t i = 0; i < nm; i++)
        wm_buf_printf(out, "%s\"%llu\"", i ? "," : "", (unsigned long long)merged[i]);
    wm_buf_puts(out, "],\"merges\":[");
    merge_json_t mj = {.out = out};
    rc = wm_identity_merges_list(e->identity, project, user_id, merge_cb, &mj);
    if (rc && rc != WM_ENOTFOUND)
        return rc;
    wm_buf_puts(out, "],");
    if ((rc = wm__aud_user_json(p->aud, user_id, out)))
        return rc;
    wm_buf_puts(out, ",\"journeys\":[");
    if ((rc = wm__jrt_user_journeys_json(p->jrt, user_id, out)))
        return rc;
    wm_buf_puts(out, "]}");
    return out->err;
}

static int ref_cmp(const void *a, const void *b)
{
    const wm_event_ref_t *x = a, *y = b;
    if (x->time_ms != y->time_ms)
        return x->time_ms < y->time_ms ? 1 : -1;
    if (x->part != y->part)
        return x->part->index < y->part->index ? -1 : 1;
    return x->seq < y->seq ? 1 : (x->seq > y->seq ? -1 : 0);
}

int wm_engine_user_events_json(wm_engine_t *e, const char *project, uint64_t user_id,
                               uint32_t limit, wm_buf_t *out)
{
    if (limit == 0 || limit > 1000)
        limit = limit ? 1000 : 50;
    wm_part_t *home = e->parts[user_part(e, user_id)];
    uint64_t users[MERGED_MAX + 1];
    uint32_t nu = 0;
    wm__part_merged_from(home, user_id, users + 1, MERGED_MAX, &nu);
    users[0] = user_id;
    nu++;
    wm_event_ref_t *refs = wm_malloc(sizeof *refs * limit * nu);
    if (!refs)
        return WM_ENOMEM;
    uint32_t n = 0;
    for (uint32_t i = 0; i < nu; i++)
        wm__part_user_events(e->parts[user_part(e, users[i])], users[i], limit, refs, &n);
    qsort(refs, n, sizeof *refs, ref_cmp);
    if (n > limit)
        n = limit;
    wm_buf_printf(out, "{\"user_id\":\"%llu\",\"events\":[", (unsigned long long)user_id);
    uint32_t shown = 0;
    for (uint32_t i = 0; i < n; i++) {
        void *payload = NULL;
        uint32_t len = 0;
        if (wm_log_read_at(refs[i].part->log, &refs[i].pos, &payload, &len) ||
            len < sizeof(wm_payload_hdr_t)) {
            wm_free(payload);
            continue;
        }
        if (shown++)
            wm_buf_putc(out, ',');
        wm_buf_append(out, (char *)payload + sizeof(wm_payload_hdr_t),
                      len - sizeof(wm_payload_hdr_t));
        wm_free(payload);
    }
    wm_buf_puts(out, "]}");
    wm_free(refs);
    (void)project;
    return out->err;
}

int wm_engine_item_json(wm_engine_t *e, const char *project, const char *type, const char *id,
                        wm_buf_t *out)
{
    wm_record_t r = {.project = project, .item_type = type, .item_id = id};
    char key[700];
    int kl = snprintf(key, sizeof key, "%s%c%s%c%s", project, 0, type, 0, id);
    if (kl <= 0 || (size_t)kl >= sizeof key)
        return WM_EINVAL;
    char *json = NULL;
    size_t len;
    int rc = wm__part_item_get(e->parts[item_part(e, &r)], key, (size_t)kl, &json, &len);
    if (rc)
        return rc;
    wm_buf_puts(out, "{\"item_type\":");
    wm_buf_json_str(out, type, strlen(type));
    wm_buf_puts(out, ",\"item_id\":");
    wm_buf_json_str(out, id, strlen(id));
    wm_buf_puts(out, ",\"properties\":");
    wm_buf_append(out, json, len);
    wm_buf_putc(out, '}');
    wm_free(json);
    return out->err;
}

int wm_engine_schema_json(wm_engine_t *e, const char *project, wm_buf_t *out)
{
    return wm__catalog_schema_json(e->catalog, project, out);
}

int wm_engine_deadletter_json(wm_engine_t *e, const char *project, uint32_t limit, wm_buf_t *out)
{
    return wm__catalog_deadletter_json(e->catalog, project, limit ? limit : 100, out);
}

typedef struct replay_ctx {
    wm_engine_t *e;
    const char *project;
    wm_submit_result_t *total;
    int err;
} replay_ctx_t;

static int replay_one(void *arg, int64_t id, const char *raw, size_t len)
{
    replay_ctx_t *rc = arg;
    wm_arena_t a;
    wm_arena_init(&a, 16 * 1024);
    wm_batch_t b;
    char msg[256];
    wm_rec_ctx_t ctx = {.project = rc->project};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ctx.receive_time_ms = ctx.now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    int r = wm_native_decode(&a, raw, len, &ctx, &b, msg, sizeof msg);
    if (r == 0 && b.n == 1) {
        wm_submit_opts_t o = {.source = "replay", .deadletter = false};
        wm_submit_result_t res;
        r = wm_engine_submit(rc->e, &b, &o, &res);
        if (r == 0) {
            rc->total->accepted += res.accepted;
            rc->total->duplicates += res.duplicates;
            rc->total->rejected += res.rejected;
            if (res.accepted + res.duplicates == 1)
                wm__catalog_deadletter_delete(rc->e->catalog, id);
        } else {
            rc->err = r;
        }
    } else {
        rc->total->rejected++;
    }
    wm_arena_release(&a);
    return rc->err;
}

int wm_engine_deadletter_replay(wm_engine_t *e, const char *project, int64_t id,
                                wm_submit_result_t *res)
{
    memset(res, 0, sizeof *res);
    replay_ctx_t rc = {.e = e, .project = project, .total = res};
    int r = wm__catalog_deadletter_each(e->catalog, project, id, replay_one, &rc);
    return r ? r : rc.err;
}

int wm_engine_create_project(wm_engine_t *e, const char *name, const char *token)
{
    if (!wm_name_valid(name))
        return WM_EINVAL;
    return wm__catalog_project_create(e->catalog, name, token);
}

int wm_engine_projects_json(wm_engine_t *e, wm_buf_t *out)
{
    return wm__catalog_projects_json(e->catalog, out);
}

int wm_engine_create_key(wm_engine_t *e, const char *role, char *key_out, size_t key_len)
{
    static const char *roles[] = {"admin", "operator", "analyst", "advisor", "viewer"};
    bool ok = false;
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        ok |= strcmp(role, roles[i]) == 0;
    if (!ok || key_len < 52)
        return WM_EINVAL;
    strcpy(key_out, "wm_");
    if (random_hex(key_out + 3, 24))
        return WM_EIO;
    return wm__catalog_key_add(e->catalog, key_out, role);
}

/* ---- metrics ---- */

void wm_engine_count_rejected(wm_engine_t *e, const char *reason, uint32_t n)
{
    pthread_mutex_lock(&e->metrics_mu);
    uint64_t v = 0;
    wm_strmap_get(&e->rejected, reason, strlen(reason), &v);
    wm_strmap_put(&e->rejected, reason, strlen(reason), v + n);
    pthread_mutex_unlock(&e->metrics_mu);
}

void wm_engine_count_request(wm_engine_t *e, const char *route, uint64_t bytes)
{
    atomic_fetch_add(&e->m_bytes_in, bytes);
    pthread_mutex_lock(&e->metrics_mu);
    uint64_t v = 0;
    wm_strmap_get(&e->requests, route, strlen(route), &v);
    wm_strmap_put(&e->requests, route, strlen(route), v + 1);
    pthread_mutex_unlock(&e->metrics_mu);
}

static void metric_map(wm_buf_t *out, const wm_strmap_t *m, const char *name, const char *label)
{
    for (size_t i = 0; i < m->cap; i++) {
        const wm_strmap_entry_t *en = &m->slots[i];
        if (!en->key)
            continue;
        wm_buf_printf(out, "%s{%s=\"%.*s\"} %llu\n", name, label, (int)en->key_len, en->key,
                      (unsigned long long)en->value);
    }
}

void wm_engine_metrics(wm_engine_t *e, wm_buf_t *out)
{
    wm_buf_printf(out,
                  "# HELP waymark_events_accepted_total Records stored (durable).\n"
                  "# TYPE waymark_events_accepted_total counter\n"
                  "waymark_events_accepted_total %llu\n"
                  "# HELP waymark_events_duplicate_total Client retries recognised and dropped.\n"
                  "# TYPE waymark_events_duplicate_total counter\n"
                  "waymark_events_duplicate_total %llu\n"
                  "# HELP waymark_ingest_bytes_total Request body bytes received on ingest routes.\n"
                  "# TYPE waymark_ingest_bytes_total counter\n"
                  "waymark_ingest_bytes_total %llu\n"
                  "# HELP waymark_busy_total Batches refused with 503 because a queue was full.\n"
                  "# TYPE waymark_busy_total counter\n"
                  "waymark_busy_total %llu\n"
                  "# HELP waymark_fsync_mode Durability mode in force (1 for the active one).\n"
                  "# TYPE waymark_fsync_mode gauge\n"
                  "waymark_fsync_mode{mode=\"%s\"} 1\n",
                  (unsigned long long)atomic_load(&e->m_accepted),
                  (unsigned long long)atomic_load(&e->m_duplicates),
                  (unsigned long long)atomic_load(&e->m_bytes_in),
                  (unsigned long long)atomic_load(&e->m_busy), wm_fsync_mode_name(e->fsync_mode));
    pthread_mutex_lock(&e->metrics_mu);
    wm_buf_puts(out, "# HELP waymark_events_rejected_total Records rejected, by reason.\n"
                     "# TYPE waymark_events_rejected_total counter\n");
    metric_map(out, &e->rejected, "waymark_events_rejected_total", "reason");
    wm_buf_puts(out, "# HELP waymark_http_requests_total HTTP requests, by route.\n"
                     "# TYPE waymark_http_requests_total counter\n");
    metric_map(out, &e->requests, "waymark_http_requests_total", "route");
    pthread_mutex_unlock(&e->metrics_mu);
    wm_buf_puts(out,
                "# HELP waymark_log_records_total Records appended to a partition log.\n"
                "# TYPE waymark_log_records_total counter\n"
                "# HELP waymark_log_batches_total Group commits (one sync each).\n"
                "# TYPE waymark_log_batches_total counter\n"
                "# HELP waymark_fsync_seconds_total Time spent in fsync.\n"
                "# TYPE waymark_fsync_seconds_total counter\n"
                "# HELP waymark_fsync_seconds_max Longest single fsync.\n"
                "# TYPE waymark_fsync_seconds_max gauge\n"
                "# HELP waymark_queue_depth Records queued for a partition writer.\n"
                "# TYPE waymark_queue_depth gauge\n"
                "# HELP waymark_applied_seq Last log sequence applied to state.\n"
                "# TYPE waymark_applied_seq gauge\n"
                "# HELP waymark_apply_errors_total Logged records whose apply found a conflict.\n"
                "# TYPE waymark_apply_errors_total counter\n");
    for (uint32_t i = 0; i < e->n_parts; i++) {
        wm_part_t *p = e->parts[i];
        wm_log_stats_t st;
        wm_log_stats(p->log, &st);
        pthread_mutex_lock(&p->mu);
        uint32_t depth = p->queued_records;
        pthread_mutex_unlock(&p->mu);
        wm_buf_printf(out,
                      "waymark_log_records_total{partition=\"%u\"} %llu\n"
                      "waymark_log_batches_total{partition=\"%u\"} %llu\n"
                      "waymark_fsync_seconds_total{partition=\"%u\"} %.6f\n"
                      "waymark_fsync_seconds_max{partition=\"%u\"} %.6f\n"
                      "waymark_queue_depth{partition=\"%u\"} %u\n"
                      "waymark_applied_seq{partition=\"%u\"} %llu\n"
                      "waymark_apply_errors_total{partition=\"%u\"} %llu\n",
                      i, (unsigned long long)atomic_load(&p->m_records), i,
                      (unsigned long long)atomic_load(&p->m_batches), i, st.sync_ns_total / 1e9, i,
                      st.sync_ns_max / 1e9, i, depth, i,
                      (unsigned long long)atomic_load(&p->applied_seq), i,
                      (unsigned long long)atomic_load(&p->m_apply_errors));
    }
    wm__engine_journey_metrics(e, out);
    wm__engine_analytics_metrics(e, out);
    wm_buf_printf(out,
                  "# HELP waymark_deadletters Records kept in the dead-letter store.\n"
                  "# TYPE waymark_deadletters gauge\n"
                  "waymark_deadletters %lld\n",
                  (long long)wm__catalog_deadletter_count(e->catalog));
}
