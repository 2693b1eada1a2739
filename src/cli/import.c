/*
 * import.c - `waymark import`: history into a data directory (offline, the
 * fast path) or into a running server (--url), from Sensors NDJSON or CSV.
 *
 * Offline, two worker threads decode alternate chunks in parallel while a
 * ticket keeps the order in which chunks are routed to the partitions equal
 * to file order, so a user's records are applied in file order. After each
 * acknowledged chunk the byte offset is checkpointed next to the data, so an
 * interrupted import resumes where it stopped (--restart starts over).
 * Rejected lines go to the errors file with their line numbers.
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "waymark/limits.h"
#include "waymark/alloc.h"
#include "waymark/arena.h"
#include "waymark/buf.h"
#include "waymark/engine.h"
#include "waymark/error.h"
#include "waymark/ingest.h"
#include "waymark/json.h"

#define WORKERS 2

typedef struct csv_map {
    const char *distinct_id_from;
    const char *event_from;
    const char *event_default;
    const char *timestamp_from;
    const char *item_type;          /* rows are item_set records */
    const char *item_id_from;
    const char *skip_cols;          /* comma separated */
    bool profile;                   /* rows are profile_set records */
    bool is_login_id;
} csv_map_t;

typedef struct import_opts {
    const char *data_dir;
    const char *url;
    const char *project;
    const char *token;
    const char *errors_path;
    wm_fsync_mode_t fsync_mode;
    uint32_t partitions;
    bool restart;
    bool csv;
    bool quiet;
    csv_map_t map;
} import_opts_t;

/* A chunk of complete lines with the line number of its first line. */
typedef struct chunk {
    char *text;
    size_t len;
    uint64_t first_line;
    uint64_t end_offset;            /* file offset just past this chunk */
    uint64_t seq;                   /* order of the chunk in the file */
} chunk_t;

typedef struct import_state {
    const import_opts_t *o;
    wm_engine_t *engine;
    FILE *in;
    FILE *errors;
    const char *path;
    const char *checkpoint;
    uint64_t file_bytes;
    uint64_t offset;                /* read position */
    uint64_t line;                  /* next line number to read */
    uint64_t next_seq;
    char **csv_header;
    size_t csv_cols;
    char *csv_kind;                 /* per column: 'n' number, 'b' bool, 's' string */

    pthread_mutex_t mu;             /* reader, counters, checkpoint, errors file */
    pthread_cond_t turn_cv;
    uint64_t turn;                  /* chunk seq allowed to route now */
    uint64_t done_seq;              /* chunks acknowledged in order */
    uint64_t acked_offset;
    uint64_t records, rejected, duplicates, bytes;
    int fatal;
    struct timespec start;
    double last_progress;
} import_state_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- CSV ---- */

/* Splits one CSV line (RFC 4180 quoting; no embedded newlines) in place. */
static size_t csv_split(char *line, char **fields, size_t max)
{
    size_t n = 0;
    char *p = line;
    while (n < max) {
        char *out = p, *start = p;
        if (*p == '"') {
            p++;
            for (;;) {
                if (!*p)
                    break;
                if (*p == '"' && p[1] == '"') {
                    *out++ = '"';
                    p += 2;
                } else if (*p == '"') {
                    p++;
                    break;
                } else {
                    *out++ = *p++;
                }
            }
            while (*p && *p != ',')
                p++;
        } else {
            while (*p && *p != ',')
                *out++ = *p++;
        }
        char end = *p;
        *out = '\0';
        fields[n++] = start;
        if (end != ',')
            break;
        p++;
    }
    return n;
}

static bool in_list(const char *list, const char *name)
{
    if (!list)
        return false;
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && strncmp(p, name, n) == 0)
            return true;
        p += len + (p[len] == ',');
    }
    return false;
}

/* A CSV cell becomes a JSON number only when it is one by JSON's grammar
 * (-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?): codes with leading zeros
 * such as fund code "000001" stay strings, and nan, +5, .5 or 1. never
 * reach the record as invalid JSON. */
static bool is_number(const char *s)
{
    const char *p = s;
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9')
            p++;
    else
        return false;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == '\0';
}

/* Turns one CSV row into a Sensors record line. */
static int csv_row_to_json(import_state_t *st, char *row, wm_buf_t *out, char *err, size_t errlen)
{
    char *fields[512];
    size_t n = csv_split(row, fields, 512);
    if (n != st->csv_cols) {
        snprintf(err, errlen, "row has %zu columns, the header has %zu", n, st->csv_cols);
        return WM_EINVAL;
    }
    const csv_map_t *m = &st->o->map;
    const char *type = m->item_type ? "item_set" : (m->profile ? "profile_set" : "track");
    wm_buf_printf(out, "{\"type\":\"%s\"", type);
    const char *event = m->event_default;
    for (size_t i = 0; i < n; i++) {
        const char *col = st->csv_header[i];
        if (m->distinct_id_from && strcmp(col, m->distinct_id_from) == 0) {
            wm_buf_puts(out, ",\"distinct_id\":");
            wm_buf_json_str(out, fields[i], strlen(fields[i]));
        } else if (m->item_id_from && strcmp(col, m->item_id_from) == 0) {
            wm_buf_puts(out, ",\"item_id\":");
            wm_buf_json_str(out, fields[i], strlen(fields[i]));
        } else if (m->event_from && strcmp(col, m->event_from) == 0) {
            event = fields[i];
        } else if (m->timestamp_from && strcmp(col, m->timestamp_from) == 0) {
            int64_t ms;
            bool date_only;
            if (is_number(fields[i]))
                wm_buf_printf(out, ",\"time\":%s", fields[i]);
            else if (wm_datetime_parse(fields[i], 480, &ms, &date_only) == 0)
                wm_buf_printf(out, ",\"time\":%lld", (long long)ms);
            else {
                snprintf(err, errlen, "column '%s': '%s' is not a timestamp", col, fields[i]);
                return WM_EINVAL;
            }
        }
    }
    if (m->item_type) {
        wm_buf_puts(out, ",\"item_type\":");
        wm_buf_json_str(out, m->item_type, strlen(m->item_type));
    }
    if (!m->item_type && !m->profile) {
        if (!event || !*event) {
            snprintf(err, errlen, "no event name (use --event-from or --event-default)");
            return WM_EINVAL;
        }
        wm_buf_puts(out, ",\"event\":");
        wm_buf_json_str(out, event, strlen(event));
    }
    wm_buf_puts(out, ",\"properties\":{");
    int np = 0;
    if (m->is_login_id && !m->item_type)
        np += (wm_buf_puts(out, "\"$is_login_id\":true"), 1);
    for (size_t i = 0; i < n; i++) {
        const char *col = st->csv_header[i];
        if ((m->distinct_id_from && strcmp(col, m->distinct_id_from) == 0) ||
            (m->item_id_from && strcmp(col, m->item_id_from) == 0) ||
            (m->event_from && strcmp(col, m->event_from) == 0) ||
            (m->timestamp_from && strcmp(col, m->timestamp_from) == 0) ||
            in_list(m->skip_cols, col) || !fields[i][0])
            continue;
        if (np++)
            wm_buf_putc(out, ',');
        wm_buf_json_str(out, col, strlen(col));
        wm_buf_putc(out, ':');
        char kind = st->csv_kind ? st->csv_kind[i] : 's';
        if (kind == 'n' && is_number(fields[i])) {
            wm_buf_puts(out, fields[i]);
        } else if (kind == 'b' && (!strcmp(fields[i], "true") || !strcmp(fields[i], "false"))) {
            wm_buf_puts(out, fields[i]);
        } else if (kind == 's') {
            wm_buf_json_str(out, fields[i], strlen(fields[i]));
        } else {
            snprintf(err, errlen, "column '%s': '%.60s' is not a %s like the rest of the column",
                     col, fields[i], kind == 'n' ? "number" : "boolean");
            return WM_EINVAL;
        }
    }
    wm_buf_puts(out, "}}");
    return out->err;
}

/* ---- reading ---- */

/* Reads the next chunk of whole lines. Returns 1 with a chunk, 0 at EOF. */
static int read_chunk(import_state_t *st, chunk_t *c)
{
    wm_buf_t b;
    wm_buf_init(&b, WM_IMPORT_CHUNK_BYTES_MAX * 2);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    uint32_t lines = 0;
    c->first_line = st->line;
    while (lines < WM_IMPORT_CHUNK_LINES && b.len < WM_IMPORT_CHUNK_BYTES_MAX && (len = getline(&line, &cap, st->in)) > 0) {
        st->offset += (uint64_t)len;
        st->line++;
        lines++;
        wm_buf_append(&b, line, (size_t)len);
        if (line[len - 1] != '\n')
            wm_buf_putc(&b, '\n');
    }
    free(line);
    if (!lines) {
        wm_buf_release(&b);
        return 0;
    }
    c->len = b.len;
    c->text = wm_buf_steal(&b, NULL);
    c->end_offset = st->offset;
    c->seq = st->next_seq++;
    return 1;
}

/* CSV chunks are converted to NDJSON lines (one per row, same line count). */
static void csv_convert(import_state_t *st, chunk_t *c, wm_buf_t *out, uint64_t *bad_lines,
                        char (*bad_msgs)[200], uint32_t *n_bad)
{
    char *p = c->text, *end = c->text + c->len;
    uint64_t line = c->first_line;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        *nl = '\0';
        if (nl > p && nl[-1] == '\r')
            nl[-1] = '\0';
        size_t before = out->len;
        char err[200] = "";
        if (*p && csv_row_to_json(st, p, out, err, sizeof err)) {
            out->len = before;
            out->err = 0;
            if (*n_bad < WM_IMPORT_CHUNK_LINES) {
                bad_lines[*n_bad] = line;
                snprintf(bad_msgs[*n_bad], 200, "%s", err);
                (*n_bad)++;
            }
        }
        wm_buf_putc(out, '\n');
        p = nl + 1;
        line++;
    }
}

/* ---- ordering and progress ---- */

static void order_cb(void *ctx, int phase)
{
    void **pair = ctx;
    import_state_t *st = pair[0];
    uint64_t seq = *(uint64_t *)pair[1];
    pthread_mutex_lock(&st->mu);
    if (phase == 0) {
        while (st->turn != seq && !st->fatal)
            pthread_cond_wait(&st->turn_cv, &st->mu);
    } else {
        st->turn = seq + 1;
        pthread_cond_broadcast(&st->turn_cv);
    }
    pthread_mutex_unlock(&st->mu);
}

static void write_checkpoint(import_state_t *st, uint64_t offset, uint64_t line)
{
    if (!st->checkpoint)
        return;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", st->checkpoint);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    fprintf(f, "%llu %llu %llu\n", (unsigned long long)offset, (unsigned long long)line,
            (unsigned long long)st->file_bytes);
    fflush(f);
    /* the checkpoint must not claim more than is durable; with fsync never
     * the records themselves are not flushed either, so neither is this
     * (an fsync here would make ext4 flush every dirty log page too) */
    if (st->o->fsync_mode == WM_FSYNC_ALWAYS)
        fsync(fileno(f));
    fclose(f);
    rename(tmp, st->checkpoint);
}

static void progress(import_state_t *st, bool final)
{
    if (st->o->quiet || !isatty(STDERR_FILENO))
        return;
    double t = now_s();
    if (!final && t - st->last_progress < 0.2)
        return;
    st->last_progress = t;
    double el = t - ((double)st->start.tv_sec + st->start.tv_nsec / 1e9);
    double rate = el > 0 ? (double)st->records / el : 0;
    double frac = st->file_bytes ? (double)st->acked_offset / (double)st->file_bytes : 0;
    double eta = frac > 0 && frac < 1 ? el / frac - el : 0;
    int bar = (int)(frac * 30);
    fprintf(stderr, "\r[%.*s%*s] %5.1f%%  %llu records  %.0f rec/s  %llu errors  ETA %.0fs ", bar,
            "##############################", 30 - bar, "", frac * 100,
            (unsigned long long)st->records, rate, (unsigned long long)st->rejected, eta);
    if (final)
        fputc('\n', stderr);
}

static void log_errors(import_state_t *st, const chunk_t *c, const wm_batch_t *b,
                       const uint64_t *rec_line)
{
    for (uint32_t i = 0; i < b->n; i++) {
        const wm_rec_error_t *e = &b->errors[i];
        if (!e->code)
            continue;
        st->rejected++;
        /* the decoder numbers lines within the chunk; the file's own line
         * number leads the entry, so drop the chunk-relative prefix */
        const char *msg = e->msg;
        if (strncmp(msg, "line ", 5) == 0 && strstr(msg, ": "))
            msg = strstr(msg, ": ") + 2;
        if (st->errors)
            fprintf(st->errors, "%s:%llu: %s %s: %s\n", st->path,
                    (unsigned long long)rec_line[i], e->code, e->field, msg);
    }
}

/* Maps record index -> line number (NDJSON skips blank lines). */
static uint32_t line_numbers(const char *text, size_t len, uint64_t first, uint64_t *out, uint32_t max)
{
    uint32_t n = 0;
    uint64_t line = first;
    const char *p = text, *end = text + len;
    while (p < end && n < max) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            nl = end;
        const char *q = p;
        while (q < nl && (*q == ' ' || *q == '\t' || *q == '\r'))
            q++;
        if (q < nl)
            out[n++] = line;
        line++;
        p = nl + 1;
    }
    return n;
}

/* ---- offline worker ---- */

static void *worker(void *arg)
{
    import_state_t *st = arg;
    wm_arena_t a;
    wm_arena_init(&a, 1 << 20);
    uint64_t *rec_line = wm_malloc(sizeof *rec_line * WM_IMPORT_CHUNK_LINES);
    uint64_t *bad_lines = wm_malloc(sizeof *bad_lines * WM_IMPORT_CHUNK_LINES);
    char(*bad_msgs)[200] = wm_malloc(200 * (size_t)WM_IMPORT_CHUNK_LINES);
    wm_buf_t conv;
    wm_buf_init(&conv, WM_IMPORT_CHUNK_BYTES_MAX * 4);
    for (;;) {
        chunk_t c;
        pthread_mutex_lock(&st->mu);
        int got = st->fatal ? 0 : read_chunk(st, &c);
        pthread_mutex_unlock(&st->mu);
        if (!got)
            break;
        const char *text = c.text;
        size_t len = c.len;
        uint32_t n_bad = 0;
        if (st->o->csv) {
            wm_buf_reset(&conv);
            csv_convert(st, &c, &conv, bad_lines, bad_msgs, &n_bad);
            text = conv.data;
            len = conv.len;
        }
        wm_arena_reset(&a);
        wm_rec_ctx_t ctx = {.project = st->o->project, .token = st->o->token};
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ctx.receive_time_ms = ctx.now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        wm_batch_t b;
        char msg[256] = "";
        int rc = wm_native_decode(&a, text, len, &ctx, &b, msg, sizeof msg);
        void *pair[2] = {st, &c.seq};
        wm_submit_result_t res = {0};
        if (rc) {
            /* the chunk as a whole is unusable; still take our turn */
            order_cb(pair, 0);
            order_cb(pair, 1);
        } else {
            line_numbers(text, len, c.first_line, rec_line, WM_IMPORT_CHUNK_LINES);
            wm_submit_opts_t so = {.source = "import", .order_cb = order_cb, .order_ctx = pair};
            rc = wm_engine_submit(st->engine, &b, &so, &res);
        }
        pthread_mutex_lock(&st->mu);
        if (rc) {
            fprintf(stderr, "\nwaymark import: %s: lines %llu..: %s\n", st->path,
                    (unsigned long long)c.first_line, msg[0] ? msg : wm_strerror(rc));
            st->fatal = rc;
            pthread_cond_broadcast(&st->turn_cv);
        } else {
            st->records += res.accepted;
            st->duplicates += res.duplicates;
            st->bytes += c.len;
            log_errors(st, &c, &b, rec_line);
            for (uint32_t i = 0; i < n_bad; i++) {
                st->rejected++;
                if (st->errors)
                    fprintf(st->errors, "%s:%llu: invalid_csv_row: %s\n", st->path,
                            (unsigned long long)bad_lines[i], bad_msgs[i]);
            }
            /* checkpoint only a prefix of the file that is fully acknowledged */
            while (st->done_seq != c.seq && !st->fatal)
                pthread_cond_wait(&st->turn_cv, &st->mu);
            st->done_seq = c.seq + 1;
            st->acked_offset = c.end_offset;
            write_checkpoint(st, c.end_offset, c.first_line + (uint64_t)0);
            pthread_cond_broadcast(&st->turn_cv);
            progress(st, false);
        }
        pthread_mutex_unlock(&st->mu);
        wm_free(c.text);
    }
    wm_buf_release(&conv);
    wm_free(rec_line);
    wm_free(bad_lines);
    wm_free(bad_msgs);
    wm_arena_release(&a);
    return NULL;
}

/* ---- online (--url) ---- */

static size_t sink(char *p, size_t s, size_t n, void *ctx)
{
    wm_buf_append(ctx, p, s * n);
    return s * n;
}

static int post_chunk(import_state_t *st, CURL *curl, const char *text, size_t len, wm_buf_t *resp)
{
    char url[2048];
    snprintf(url, sizeof url, "%s/api/v1/events?project=%s%s%s", st->o->url,
             st->o->project ? st->o->project : "default", st->o->token ? "&token=" : "",
             st->o->token ? st->o->token : "");
    for (int attempt = 0; attempt < 30; attempt++) {
        wm_buf_reset(resp);
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, text);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, sink);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, resp);
        CURLcode cc = curl_easy_perform(curl);
        long status = 0;
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        if (cc == CURLE_OK && status == 200)
            return 0;
        if (cc == CURLE_OK && status != 503 && status != 429) {
            fprintf(stderr, "\nwaymark import: server answered %ld: %.*s\n", status,
                    (int)resp->len, resp->data ? resp->data : "");
            return WM_EIO;
        }
        usleep((useconds_t)(100000u << (attempt < 5 ? attempt : 5)));
    }
    return WM_EBUSY;
}

static int import_online(import_state_t *st)
{
    CURL *curl = curl_easy_init();
    if (!curl)
        return WM_ENOMEM;
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/x-ndjson");
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdr);
    wm_buf_t resp, conv;
    wm_buf_init(&resp, 64u << 20);
    wm_buf_init(&conv, WM_IMPORT_CHUNK_BYTES_MAX * 4);
    wm_arena_t a;
    wm_arena_init(&a, 1 << 20);
    uint64_t *rec_line = wm_malloc(sizeof *rec_line * WM_IMPORT_CHUNK_LINES);
    uint64_t *bad_lines = wm_malloc(sizeof *bad_lines * WM_IMPORT_CHUNK_LINES);
    char(*bad_msgs)[200] = wm_malloc(200 * (size_t)WM_IMPORT_CHUNK_LINES);
    chunk_t c;
    int rc = 0;
    while (!rc && read_chunk(st, &c)) {
        const char *text = c.text;
        size_t len = c.len;
        uint32_t n_bad = 0;
        if (st->o->csv) {
            wm_buf_reset(&conv);
            csv_convert(st, &c, &conv, bad_lines, bad_msgs, &n_bad);
            text = conv.data;
            len = conv.len;
        }
        uint32_t nrec = line_numbers(text, len, c.first_line, rec_line, WM_IMPORT_CHUNK_LINES);
        rc = post_chunk(st, curl, text, len, &resp);
        if (!rc) {
            wm_json_t *root;
            wm_json_error_t je;
            wm_arena_reset(&a);
            if (wm_json_parse(&a, resp.data, resp.len, &root, &je) == 0) {
                const wm_json_t *acc = wm_json_get(root, "accepted");
                const wm_json_t *dup = wm_json_get(root, "duplicates");
                st->records += acc ? (uint64_t)acc->i64 : 0;
                st->duplicates += dup ? (uint64_t)dup->i64 : 0;
                const wm_json_t *results = wm_json_get(root, "results");
                uint32_t i = 0;
                for (const wm_json_t *r = results ? results->u.child : NULL; r; r = r->next, i++) {
                    if (wm_json_get(r, "ok") && wm_json_get(r, "ok")->type == WM_JSON_TRUE)
                        continue;
                    st->rejected++;
                    if (st->errors)
                        fprintf(st->errors, "%s:%llu: %s %s: %s\n", st->path,
                                (unsigned long long)(i < nrec ? rec_line[i] : 0),
                                wm_json_str(wm_json_get(r, "code")),
                                wm_json_str(wm_json_get(r, "field")),
                                wm_json_str(wm_json_get(r, "message")));
                }
            }
            for (uint32_t i = 0; i < n_bad; i++) {
                st->rejected++;
                if (st->errors)
                    fprintf(st->errors, "%s:%llu: invalid_csv_row: %s\n", st->path,
                            (unsigned long long)bad_lines[i], bad_msgs[i]);
            }
            st->acked_offset = c.end_offset;
            st->bytes += c.len;
            write_checkpoint(st, c.end_offset, c.first_line);
            progress(st, false);
        }
        wm_free(c.text);
    }
    wm_free(rec_line);
    wm_free(bad_lines);
    wm_free(bad_msgs);
    wm_arena_release(&a);
    wm_buf_release(&resp);
    wm_buf_release(&conv);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(curl);
    return rc;
}

/* ---- driver ---- */


/*
 * A CSV column's type is decided once, from the first rows, and then fixed:
 * a column is numeric only when every non-empty sampled cell is a JSON
 * number, boolean when every one is true/false, else text. Deciding per cell
 * would make fund codes "110011" numbers and "000001" strings in the same
 * column, and the schema registry would reject half the rows. A file that
 * cannot be rewound (stdin) reads every column as text.
 */
static int infer_csv_kinds(import_state_t *st)
{
    st->csv_kind = wm_malloc(st->csv_cols + 1);
    if (!st->csv_kind)
        return WM_ENOMEM;
    memset(st->csv_kind, 's', st->csv_cols);
    long start = ftell(st->in);
    if (start < 0)
        return 0;
    bool *not_num = wm_calloc(st->csv_cols + 1, sizeof *not_num);
    bool *not_bool = wm_calloc(st->csv_cols + 1, sizeof *not_bool);
    bool *seen = wm_calloc(st->csv_cols + 1, sizeof *seen);
    if (!not_num || !not_bool || !seen) {
        wm_free(not_num), wm_free(not_bool), wm_free(seen);
        return WM_ENOMEM;
    }
    char *line = NULL;
    size_t cap = 0;
    char *fields[512];
    for (int row = 0; row < WM_CSV_SAMPLE_ROWS && getline(&line, &cap, st->in) > 0; row++) {
        line[strcspn(line, "\r\n")] = '\0';
        size_t n = csv_split(line, fields, 512);
        for (size_t i = 0; i < n && i < st->csv_cols; i++) {
            if (!fields[i][0])
                continue;
            seen[i] = true;
            not_num[i] |= !is_number(fields[i]);
            not_bool[i] |= strcmp(fields[i], "true") && strcmp(fields[i], "false");
        }
    }
    free(line);
    for (size_t i = 0; i < st->csv_cols; i++)
        st->csv_kind[i] = !seen[i] ? 's' : !not_num[i] ? 'n' : !not_bool[i] ? 'b' : 's';
    wm_free(not_num), wm_free(not_bool), wm_free(seen);
    return fseek(st->in, start, SEEK_SET) == 0 ? 0 : WM_EIO;
}

static int read_csv_header(import_state_t *st)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len = getline(&line, &cap, st->in);
    if (len <= 0) {
        free(line);
        return WM_EINVAL;
    }
    st->offset += (uint64_t)len;
    st->line++;
    line[strcspn(line, "\r\n")] = '\0';
    char *fields[512];
    size_t n = csv_split(line, fields, 512);
    st->csv_header = wm_calloc(n, sizeof *st->csv_header);
    for (size_t i = 0; st->csv_header && i < n; i++)
        st->csv_header[i] = wm_strdup(fields[i]);
    st->csv_cols = n;
    free(line);
    if (!st->csv_header)
        return WM_ENOMEM;
    return infer_csv_kinds(st);
}

static void checkpoint_path(const import_opts_t *o, const char *file, char *out, size_t len)
{
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    if (o->data_dir)
        snprintf(out, len, "%s/import-%s.checkpoint", o->data_dir, base);
    else
        snprintf(out, len, "%s.waymark-checkpoint", file);
}

static int import_file(const import_opts_t *o, wm_engine_t *engine, const char *path)
{
    import_state_t st = {.o = o, .engine = engine, .path = path, .line = 1};
    pthread_mutex_init(&st.mu, NULL);
    pthread_cond_init(&st.turn_cv, NULL);
    clock_gettime(CLOCK_MONOTONIC, &st.start);
    st.in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!st.in) {
        fprintf(stderr, "waymark import: cannot open %s: %s\n", path, strerror(errno));
        return 1;
    }
    struct stat sb;
    if (fstat(fileno(st.in), &sb) == 0 && S_ISREG(sb.st_mode))
        st.file_bytes = (uint64_t)sb.st_size;
    char cp[4096];
    if (st.in != stdin) {
        checkpoint_path(o, path, cp, sizeof cp);
        st.checkpoint = cp;
    }
    if (o->csv && read_csv_header(&st)) {
        fprintf(stderr, "waymark import: %s: no CSV header line\n", path);
        fclose(st.in);
        return 1;
    }
    if (st.checkpoint && !o->restart) {
        FILE *f = fopen(st.checkpoint, "r");
        unsigned long long off = 0, line = 0, size = 0;
        if (f && fscanf(f, "%llu %llu %llu", &off, &line, &size) == 3 && size == st.file_bytes &&
            off > st.offset && off <= st.file_bytes) {
            /* count lines up to the checkpoint so error line numbers stay right */
            char *l = NULL;
            size_t cap = 0;
            ssize_t len;
            while (st.offset < off && (len = getline(&l, &cap, st.in)) > 0) {
                st.offset += (uint64_t)len;
                st.line++;
            }
            free(l);
            st.acked_offset = st.offset;
            if (!o->quiet)
                fprintf(stderr, "waymark import: %s: resuming at line %llu (byte %llu)\n", path,
                        (unsigned long long)st.line, (unsigned long long)st.offset);
        }
        if (f)
            fclose(f);
    }
    char errpath[4096];
    snprintf(errpath, sizeof errpath, "%s", o->errors_path ? o->errors_path : "");
    if (!o->errors_path)
        snprintf(errpath, sizeof errpath, "%s.errors", strcmp(path, "-") ? path : "stdin");
    st.errors = fopen(errpath, "a");
    int rc = 0;
    if (o->url) {
        rc = import_online(&st);
    } else {
        pthread_t th[WORKERS];
        for (int i = 0; i < WORKERS; i++)
            pthread_create(&th[i], NULL, worker, &st);
        for (int i = 0; i < WORKERS; i++)
            pthread_join(th[i], NULL);
        rc = st.fatal;
        if (!rc)
            rc = wm_engine_wait_applied(engine, 600000);
    }
    progress(&st, true);
    double el = now_s() - ((double)st.start.tv_sec + st.start.tv_nsec / 1e9);
    printf("%s: %llu records imported, %llu duplicates skipped, %llu rejected, %.1f MB in %.2f s "
           "(%.0f records/s, %.1f MB/s)%s%s\n",
           path, (unsigned long long)st.records, (unsigned long long)st.duplicates,
           (unsigned long long)st.rejected, st.bytes / 1e6, el, el > 0 ? st.records / el : 0,
           el > 0 ? st.bytes / 1e6 / el : 0, st.rejected ? "; errors in " : "",
           st.rejected ? errpath : "");
    if (st.errors) {
        long pos = ftell(st.errors);
        fclose(st.errors);
        if (pos == 0)
            unlink(errpath);
    }
    if (!rc && st.checkpoint)
        unlink(st.checkpoint);
    if (st.in != stdin)
        fclose(st.in);
    for (size_t i = 0; i < st.csv_cols; i++)
        wm_free(st.csv_header[i]);
    wm_free(st.csv_header);
    wm_free(st.csv_kind);
    return rc ? 1 : 0;
}

static void import_usage(FILE *f)
{
    fprintf(f,
            "usage: waymark import [--data DIR | --url URL] [options] FILE...\n"
            "  --data DIR            import offline into a data directory (default ./var)\n"
            "  --url URL             send to a running server (POST URL/api/v1/events)\n"
            "  --project NAME        project for records that name none (default: default)\n"
            "  --token TOKEN         the project's ingest token\n"
            "  --fsync MODE          always|interval|never (offline; default never: one\n"
            "                        fsync of the whole import happens at the end)\n"
            "  --errors FILE         where rejected lines go (default FILE.errors)\n"
            "  --restart             ignore a checkpoint and start from the first line\n"
            "  --quiet               no progress bar\n"
            "CSV (like Sensors FormatImporter's csv mode):\n"
            "  --format csv          input is CSV with a header line\n"
            "  --distinct-id-from C  column with the user id\n"
            "  --event-from C        column with the event name, or --event-default NAME\n"
            "  --timestamp-from C    column with the time (ms, s, or yyyy-MM-dd HH:mm:ss)\n"
            "  --is-login-id         the user ids are login ids\n"
            "  --profile             rows are profile_set records\n"
            "  --item-type T --item-id-from C   rows are item_set records\n"
            "  --skip-cols a,b       columns not to import\n");
}

int wm_cli_import(int argc, char **argv)
{
    static const struct option opts[] = {
        {"data", required_argument, NULL, 'd'},        {"url", required_argument, NULL, 'u'},
        {"project", required_argument, NULL, 'P'},     {"token", required_argument, NULL, 't'},
        {"fsync", required_argument, NULL, 'f'},       {"errors", required_argument, NULL, 'e'},
        {"restart", no_argument, NULL, 'r'},           {"quiet", no_argument, NULL, 'q'},
        {"format", required_argument, NULL, 'F'},      {"distinct-id-from", required_argument, NULL, 1},
        {"event-from", required_argument, NULL, 2},    {"event-default", required_argument, NULL, 3},
        {"timestamp-from", required_argument, NULL, 4}, {"is-login-id", no_argument, NULL, 5},
        {"profile", no_argument, NULL, 6},             {"item-type", required_argument, NULL, 7},
        {"item-id-from", required_argument, NULL, 8},  {"skip-cols", required_argument, NULL, 9},
        {"partitions", required_argument, NULL, 10},   {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    import_opts_t o = {.fsync_mode = WM_FSYNC_NEVER};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:u:P:t:f:e:rqF:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': o.data_dir = optarg; break;
        case 'u': o.url = optarg; break;
        case 'P': o.project = optarg; break;
        case 't': o.token = optarg; break;
        case 'e': o.errors_path = optarg; break;
        case 'r': o.restart = true; break;
        case 'q': o.quiet = true; break;
        case 'F':
            if (strcmp(optarg, "csv") && strcmp(optarg, "json") && strcmp(optarg, "ndjson")) {
                fprintf(stderr, "waymark import: --format must be ndjson or csv\n");
                return 2;
            }
            o.csv = strcmp(optarg, "csv") == 0;
            break;
        case 'f':
            if (wm_fsync_mode_parse(optarg, &o.fsync_mode)) {
                fprintf(stderr, "waymark import: --fsync must be always, interval or never\n");
                return 2;
            }
            break;
        case 1: o.map.distinct_id_from = optarg; break;
        case 2: o.map.event_from = optarg; break;
        case 3: o.map.event_default = optarg; break;
        case 4: o.map.timestamp_from = optarg; break;
        case 5: o.map.is_login_id = true; break;
        case 6: o.map.profile = true; break;
        case 7: o.map.item_type = optarg; break;
        case 8: o.map.item_id_from = optarg; break;
        case 9: o.map.skip_cols = optarg; break;
        case 10: o.partitions = (uint32_t)atoi(optarg); break;
        case 'h': import_usage(stdout); return 0;
        default: import_usage(stderr); return 2;
        }
    }
    if (optind >= argc) {
        import_usage(stderr);
        return 2;
    }
    if (o.url && o.data_dir) {
        fprintf(stderr, "waymark import: give --data or --url, not both\n");
        return 2;
    }
    if (o.csv && !o.map.item_type && !o.map.distinct_id_from) {
        fprintf(stderr, "waymark import: CSV needs --distinct-id-from (or --item-type)\n");
        return 2;
    }
    wm_engine_t *engine = NULL;
    if (!o.url) {
        if (!o.data_dir)
            o.data_dir = "./var";
        /* a bulk load: the server (or `waymark compact`) makes the parts after */
        wm_engine_opts_t eo = {.data_dir = o.data_dir, .fsync_mode = o.fsync_mode,
                               .partitions = o.partitions, .no_compactor = true,
                               .identity_cache = WM_IMPORT_IDENTITY_CACHE,
                               .admin_key = getenv("WAYMARK_ADMIN_KEY")};
        int rc = wm_engine_open(&eo, &engine);
        if (rc) {
            fprintf(stderr, "waymark import: cannot open %s: %s\n", o.data_dir, wm_strerror(rc));
            return 1;
        }
    } else {
        curl_global_init(CURL_GLOBAL_DEFAULT);
    }
    int status = 0;
    for (int i = optind; i < argc && !status; i++)
        status = import_file(&o, engine, argv[i]);
    if (engine)
        wm_engine_close(engine);
    return status;
}
