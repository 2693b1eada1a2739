/*
 * store.c - one partition's analytics directory: the manifest, the
 * compactor (log tail -> new part), part merges, snapshots and checks.
 *
 * The manifest is the only truth of which parts exist:
 *
 *     waymark-manifest 1
 *     compacted SEQ
 *     part NAME ROWS SEQ_MIN SEQ_MAX BYTES
 *     ...
 *     crc HEX            (CRC32C of every byte before this line)
 *
 * It is replaced by writing MANIFEST.tmp, fsync, rename, fsync of the
 * directory. A crash leaves the old manifest or the new one; part files it
 * does not list (a part written before the switch, or one merged away) are
 * removed when the store is opened.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "analytics/an_internal.h"
#include "waymark/alloc.h"
#include "waymark/crc32c.h"
#include "waymark/error.h"

struct wm_astore {
    char *dir;
    uint32_t partition;
    pthread_mutex_t mu;
    wm_aversion_t *cur;
    uint64_t next_id;
    uint64_t compactions, merges;
    atomic_uint_fast64_t corrupt;
    /* scratch parts of the uncompacted tail, kept for the next query: they
     * cover (tail_base, tail_to] in order; dropped when compaction moves on */
    pthread_mutex_t tail_mu;
    wm_apart_ref_t *tails[WM_ASTORE_TAILS_MAX];
    uint32_t ntails;
    uint64_t tail_base, tail_to;
};

static void ref_release(wm_apart_ref_t *r)
{
    if (r && atomic_fetch_sub(&r->refs, 1) == 1) {
        wm_part_close(r->part);
        wm_free(r);
    }
}

void wm__aversion_release(wm_aversion_t *v)
{
    if (!v || atomic_fetch_sub(&v->refs, 1) != 1)
        return;
    for (uint32_t i = 0; i < v->n; i++)
        ref_release(v->parts[i]);
    wm_free(v->parts);
    wm_free(v);
}

wm_aversion_t *wm__astore_snapshot(wm_astore_t *s)
{
    pthread_mutex_lock(&s->mu);
    wm_aversion_t *v = s->cur;
    atomic_fetch_add(&v->refs, 1);
    pthread_mutex_unlock(&s->mu);
    return v;
}

uint32_t wm__astore_partition(const wm_astore_t *s)
{
    return s->partition;
}

void wm__astore_count_corrupt(wm_astore_t *s, uint64_t n)
{
    atomic_fetch_add(&s->corrupt, n);
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return WM_EIO;
    int rc = fsync(fd) ? WM_EIO : 0;
    close(fd);
    return rc;
}

static int write_manifest(wm_astore_t *s, const wm_aversion_t *v)
{
    wm_buf_t b;
    wm_buf_init(&b, 0);
    wm_buf_printf(&b, "waymark-manifest 1\ncompacted %" PRIu64 "\n", v->compacted_seq);
    for (uint32_t i = 0; i < v->n; i++) {
        wm_part_info_t in;
        wm_part_get_info(v->parts[i]->part, &in);
        wm_buf_printf(&b, "part %s %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", v->parts[i]->name, in.rows,
                      in.seq_min, in.seq_max, in.bytes);
    }
    wm_buf_printf(&b, "crc %08x\n", wm_crc32c(0, b.data, b.len));
    if (b.err) {
        wm_buf_release(&b);
        return WM_ENOMEM;
    }
    char tmp[4096], path[4096];
    snprintf(tmp, sizeof tmp, "%s/MANIFEST.tmp", s->dir);
    snprintf(path, sizeof path, "%s/MANIFEST", s->dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = fd < 0 ? WM_EIO : 0;
    if (!rc && write(fd, b.data, b.len) != (ssize_t)b.len)
        rc = WM_EIO;
    if (!rc && fsync(fd))
        rc = WM_EIO;
    if (fd >= 0 && close(fd) && !rc)
        rc = WM_EIO;
    wm_buf_release(&b);
    if (!rc && rename(tmp, path))
        rc = WM_EIO;
    if (!rc)
        rc = fsync_dir(s->dir);
    return rc;
}

static int open_ref(wm_astore_t *s, const char *name, wm_apart_ref_t **out)
{
    wm_apart_ref_t *r = wm_calloc(1, sizeof *r);
    if (!r)
        return WM_ENOMEM;
    snprintf(r->name, sizeof r->name, "%s", name);
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/%s", s->dir, name);
    int rc = wm_part_open(path, &r->part, err, sizeof err);
    if (rc) {
        fprintf(stderr, "waymark: analytics: %s\n", err);
        wm_free(r);
        return rc;
    }
    atomic_init(&r->refs, 1);
    *out = r;
    return 0;
}

/* Reads dir's manifest into text (NUL-terminated) and checks its CRC and
 * header; *body points past the header, and the crc line is cut off.
 * WM_ENOTFOUND when there is none, WM_ECORRUPT, WM_EIO. */
static int load_manifest(const char *dir, char *text, size_t cap, char **body)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/MANIFEST", dir);
    FILE *f = fopen(path, "re");
    if (!f)
        return errno == ENOENT ? WM_ENOTFOUND : WM_EIO;
    size_t n = fread(text, 1, cap - 1, f);
    bool more = fgetc(f) != EOF;
    fclose(f);
    text[n] = 0;
    char *crc = strstr(text, "crc ");
    unsigned want;
    if (more || !crc || sscanf(crc, "crc %x", &want) != 1 || wm_crc32c(0, text, (size_t)(crc - text)) != want ||
        strncmp(text, "waymark-manifest 1\n", 19))
        return WM_ECORRUPT;
    *crc = 0;
    *body = text + 19;
    return 0;
}

static int read_manifest(wm_astore_t *s, wm_aversion_t *v)
{
    char text[1 << 16], *body;
    int rc = load_manifest(s->dir, text, sizeof text, &body);
    if (rc == WM_ENOTFOUND)
        return 0;
    if (rc) {
        if (rc == WM_ECORRUPT)
            fprintf(stderr, "waymark: analytics: %s/MANIFEST is corrupt\n", s->dir);
        return rc;
    }
    char *save = NULL;   /* strtok_r: stores of several partitions open on several threads */
    for (char *line = strtok_r(body, "\n", &save); line && !rc; line = strtok_r(NULL, "\n", &save)) {
        char name[64];
        uint64_t rows;
        if (sscanf(line, "compacted %" SCNu64, &v->compacted_seq) == 1)
            continue;
        if (sscanf(line, "part %63s %" SCNu64, name, &rows) != 2)
            return WM_ECORRUPT;
        wm_apart_ref_t **q = wm_realloc(v->parts, (v->n + 1) * sizeof *q);
        if (!q)
            return WM_ENOMEM;
        v->parts = q;
        if ((rc = open_ref(s, name, &v->parts[v->n])))
            return rc;
        v->n++;
        uint64_t id = strtoull(name, NULL, 10);
        if (id >= s->next_id)
            s->next_id = id + 1;
    }
    return rc;
}

/* Removes files the manifest does not list (parts of an interrupted write or
 * merge, temporary files). */
static void sweep(wm_astore_t *s, const wm_aversion_t *v)
{
    DIR *d = opendir(s->dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "MANIFEST"))
            continue;
        bool listed = false;
        for (uint32_t i = 0; i < v->n && !listed; i++)
            listed = !strcmp(v->parts[i]->name, e->d_name);
        if (!listed) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", s->dir, e->d_name);
            unlink(path);
        }
    }
    closedir(d);
}

int wm_astore_open(const char *dir, uint32_t partition, wm_astore_t **out)
{
    if (mkdir(dir, 0755) && errno != EEXIST)
        return WM_EIO;
    wm_astore_t *s = wm_calloc(1, sizeof *s);
    if (!s)
        return WM_ENOMEM;
    s->dir = wm_malloc(strlen(dir) + 1);
    s->cur = wm_calloc(1, sizeof *s->cur);
    if (!s->dir || !s->cur) {
        wm_free(s->dir);
        wm_free(s->cur);
        wm_free(s);
        return WM_ENOMEM;
    }
    strcpy(s->dir, dir);
    s->partition = partition;
    s->next_id = 1;
    atomic_init(&s->cur->refs, 1);
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->tail_mu, NULL);
    int rc = read_manifest(s, s->cur);
    if (rc) {
        wm_astore_close(s);
        return rc;
    }
    sweep(s, s->cur);
    *out = s;
    return 0;
}

void wm_astore_close(wm_astore_t *s)
{
    if (!s)
        return;
    wm__aversion_release(s->cur);
    for (uint32_t i = 0; i < s->ntails; i++)
        ref_release(s->tails[i]);
    pthread_mutex_destroy(&s->tail_mu);
    pthread_mutex_destroy(&s->mu);
    wm_free(s->dir);
    wm_free(s);
}

uint64_t wm_astore_compacted_seq(wm_astore_t *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t q = s->cur->compacted_seq;
    pthread_mutex_unlock(&s->mu);
    return q;
}

void wm_astore_stats(wm_astore_t *s, wm_astore_stats_t *out)
{
    memset(out, 0, sizeof *out);
    wm_aversion_t *v = wm__astore_snapshot(s);
    out->parts = v->n;
    out->compacted_seq = v->compacted_seq;
    for (uint32_t i = 0; i < v->n; i++) {
        wm_part_info_t in;
        wm_part_get_info(v->parts[i]->part, &in);
        out->rows += in.rows;
        out->bytes += in.bytes;
    }
    wm__aversion_release(v);
    out->compactions = s->compactions;
    out->merges = s->merges;
    out->corrupt_blocks = atomic_load(&s->corrupt);
}

/* Installs a new version: parts[0..keep_before) of the current one, then
 * add (may be NULL), then the current parts from skip_to on. The manifest is
 * written first; the in-memory switch follows only when it is durable. */
static int install(wm_astore_t *s, uint32_t keep_before, wm_apart_ref_t **add, uint32_t nadd, uint32_t skip_to,
                   uint64_t compacted_seq)
{
    wm_aversion_t *old = s->cur;   /* only the compactor thread changes cur */
    wm_aversion_t *v = wm_calloc(1, sizeof *v);
    if (!v)
        return WM_ENOMEM;
    uint32_t n = keep_before + nadd + (old->n - skip_to);
    v->parts = wm_calloc(n + 1, sizeof *v->parts);
    if (!v->parts) {
        wm_free(v);
        return WM_ENOMEM;
    }
    atomic_init(&v->refs, 1);
    v->compacted_seq = compacted_seq;
    for (uint32_t i = 0; i < keep_before; i++)
        v->parts[v->n++] = old->parts[i];
    for (uint32_t i = 0; i < nadd; i++)
        v->parts[v->n++] = add[i];
    for (uint32_t i = skip_to; i < old->n; i++)
        v->parts[v->n++] = old->parts[i];
    int rc = write_manifest(s, v);
    if (rc) {
        wm_free(v->parts);
        wm_free(v);
        return rc;
    }
    for (uint32_t i = 0; i < keep_before; i++)
        atomic_fetch_add(&old->parts[i]->refs, 1);
    for (uint32_t i = skip_to; i < old->n; i++)
        atomic_fetch_add(&old->parts[i]->refs, 1);
    /* files merged away go now; open snapshots keep their mappings */
    for (uint32_t i = keep_before; i < skip_to; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", s->dir, old->parts[i]->name);
        unlink(path);
    }
    pthread_mutex_lock(&s->mu);
    s->cur = v;
    pthread_mutex_unlock(&s->mu);
    wm__aversion_release(old);
    return 0;
}

static void part_name(wm_astore_t *s, char *out, size_t cap)
{
    snprintf(out, cap, "%012" PRIu64 ".part", s->next_id++);
}

/* ------------------------------------------------------------- merging */

/* One source of a merge: a part read block by block, with every property of
 * the current block gathered row by row. */
typedef struct msrc {
    wm_part_t *p;
    wm_part_reader_t *r;
    uint32_t block, row;
    wm_ablock_t blk;
    bool done;
    /* per row: entries [rstart[row], rstart[row+1]) of ents */
    uint32_t *rstart;
    struct ment {
        uint32_t col;
        uint32_t n;       /* LIST count */
        uint8_t form;
        uint64_t v;       /* NUMBER bits, code, ms, or LIST offset into lcodes */
    } *ents;
    uint32_t nents, ecap;
    uint32_t *lcodes, nl, lcap;
    uint32_t *colmap;     /* source column -> writer column */
    uint32_t **strmap;    /* source column, source code -> writer code + 1 (0: not yet) */
} msrc_t;

static int ms_load(msrc_t *m, char *err, size_t cap)
{
    for (;;) {
        wm_part_info_t pin;
        wm_part_get_info(m->p, &pin);
        if (m->block >= pin.blocks) {
            m->done = true;
            return 0;
        }
        int rc = wm_part_read_block(m->r, m->block, &m->blk, err, cap);
        if (rc == WM_ECORRUPT) {
            fprintf(stderr, "waymark: analytics: merge skips %s\n", err);
            m->block++;
            continue;
        }
        if (rc)
            return rc;
        uint32_t n = m->blk.rows;
        wm_part_info_t in;
        wm_part_get_info(m->p, &in);
        uint32_t *count = wm_calloc(n + 1, sizeof *count);
        if (!count)
            return WM_ENOMEM;
        m->nents = m->nl = 0;
        /* first pass: decode each column once, append entries column-major */
        struct ment *tmp = NULL;
        uint32_t ntmp = 0, tcap = 0;
        uint32_t *trow = NULL, trcap = 0;
        bool skip = false;
        for (uint32_t c = 0; c < in.cols && !rc && !skip; c++) {
            wm_acolumn_t col;
            rc = wm_part_read_col(m->r, c, &col, err, cap);
            if (rc == WM_ECORRUPT) {
                fprintf(stderr, "waymark: analytics: merge skips %s\n", err);
                skip = true;
                rc = 0;
                break;
            }
            if (rc || !col.present)
                continue;
            for (uint32_t i = 0; i < n && !rc; i++) {
                if (!wm_acol_has(&col, i))
                    continue;
                if ((rc = wm__an_grow((void **)&tmp, &tcap, ntmp + 1, sizeof *tmp)) ||
                    (rc = wm__an_grow((void **)&trow, &trcap, ntmp + 1, sizeof *trow)))
                    break;
                struct ment *e = &tmp[ntmp];
                e->col = c;
                e->n = 0;
                e->form = 0;
                switch (col.type) {
                case WM_ACOL_NUMBER:
                    memcpy(&e->v, &col.num[i], 8);
                    break;
                case WM_ACOL_STRING:
                case WM_ACOL_JSON:
                    e->v = col.code[i];
                    break;
                case WM_ACOL_BOOL:
                    e->v = col.boolean[i];
                    break;
                case WM_ACOL_DATETIME:
                    e->v = (uint64_t)(int64_t)col.num[i];
                    e->form = (uint8_t)col.code[i];
                    break;
                case WM_ACOL_LIST:
                    if ((rc = wm__an_grow((void **)&m->lcodes, &m->lcap, m->nl + col.list_len[i] + 1,
                                      sizeof *m->lcodes)))
                        break;
                    e->v = m->nl;
                    e->n = col.list_len[i];
                    memcpy(m->lcodes + m->nl, col.list_codes + col.code[i], col.list_len[i] * sizeof(uint32_t));
                    m->nl += col.list_len[i];
                    break;
                }
                trow[ntmp++] = i;
                count[i]++;
            }
        }
        if (!rc && !skip && (rc = wm__an_grow((void **)&m->ents, &m->ecap, ntmp + 1, sizeof *m->ents)) == 0) {
            uint32_t acc = 0;
            for (uint32_t i = 0; i < n; i++) {
                m->rstart[i] = acc;
                acc += count[i];
            }
            m->rstart[n] = acc;
            memset(count, 0, (n + 1) * sizeof *count);
            for (uint32_t k = 0; k < ntmp; k++) {
                uint32_t i = trow[k];
                m->ents[m->rstart[i] + count[i]++] = tmp[k];
            }
            m->nents = ntmp;
        }
        wm_free(tmp);
        wm_free(trow);
        wm_free(count);
        if (rc)
            return rc;
        if (skip) {
            m->block++;
            continue;
        }
        m->row = 0;
        return 0;
    }
}

#define REST_COL (UINT32_MAX - 1)   /* colmap: the column's values go to "$rest" */

static int ms_emit(wm_part_writer_t *w, msrc_t *m)
{
    uint32_t i = m->row;
    uint32_t code;
    int rc = wm__part_writer_event(w, wm_part_event_name(m->p, m->blk.event[i]),
                                   wm__part_event_len(m->p, m->blk.event[i]), &code);
    if (!rc)
        rc = wm__part_writer_row(w, m->blk.user[i], m->blk.time[i], m->blk.seq[i], code);
    uint32_t *codes = NULL;
    for (uint32_t k = m->rstart[i]; k < m->rstart[i + 1] && !rc; k++) {
        struct ment *e = &m->ents[k];
        wm_acol_type_t t;
        const char *name = wm_part_col_name(m->p, e->col, &t);
        if (m->colmap[e->col] == UINT32_MAX) {
            rc = wm__part_writer_col(w, name, strlen(name), t, &m->colmap[e->col]);
            if (rc == WM_ELIMIT) {
                /* the sources' columns together pass the limit */
                m->colmap[e->col] = REST_COL;
                rc = 0;
            }
            if (rc)
                break;
        }
        uint32_t wc = m->colmap[e->col];
        if (wc == REST_COL) {
            const char *s = NULL;
            uint32_t slen = 0;
            double d = 0;
            if (WM_ACOL_IS_TEXT(t))
                s = wm_part_col_str(m->p, e->col, (uint32_t)e->v, &slen);
            else if (t == WM_ACOL_NUMBER)
                memcpy(&d, &e->v, 8);
            rc = wm__part_writer_rest(w, name, strlen(name), t, s, slen, d);
            continue;
        }
        switch (t) {
        case WM_ACOL_NUMBER: {
            double d;
            memcpy(&d, &e->v, 8);
            rc = wm__part_writer_num(w, wc, d);
            break;
        }
        case WM_ACOL_BOOL:
        case WM_ACOL_DATETIME:
            rc = wm__part_writer_code(w, wc, e->v, e->form);
            break;
        case WM_ACOL_STRING:
        case WM_ACOL_JSON:
        case WM_ACOL_LIST: {
            uint32_t cnt = t != WM_ACOL_LIST ? 1 : e->n;
            codes = wm_realloc(codes, (cnt + 1) * sizeof *codes);
            if (!codes) {
                rc = WM_ENOMEM;
                break;
            }
            if (!m->strmap[e->col]) {
                m->strmap[e->col] = wm_calloc(wm_part_col_dict_size(m->p, e->col) + 1, sizeof(uint32_t));
                if (!m->strmap[e->col]) {
                    rc = WM_ENOMEM;
                    break;
                }
            }
            for (uint32_t j = 0; j < cnt && !rc; j++) {
                uint32_t sc = t != WM_ACOL_LIST ? (uint32_t)e->v : m->lcodes[e->v + j];
                uint32_t *slot = &m->strmap[e->col][sc];
                if (!*slot) {
                    uint32_t len;
                    const char *s = wm_part_col_str(m->p, e->col, sc, &len);
                    rc = wm__part_writer_str(w, wc, s, len, slot);
                    (*slot)++;
                }
                codes[j] = *slot - 1;
            }
            if (!rc)
                rc = t != WM_ACOL_LIST ? wm__part_writer_code(w, wc, codes[0], 0)
                                         : wm__part_writer_list(w, wc, codes, cnt);
            break;
        }
        }
    }
    wm_free(codes);
    return rc;
}

static void ms_free(msrc_t *m)
{
    wm_part_reader_free(m->r);
    wm_free(m->rstart);
    wm_free(m->ents);
    wm_free(m->lcodes);
    wm_free(m->colmap);
    if (m->strmap) {
        wm_part_info_t in;
        wm_part_get_info(m->p, &in);
        for (uint32_t c = 0; c < in.cols; c++)
            wm_free(m->strmap[c]);
    }
    wm_free(m->strmap);
}

static bool ms_less(const msrc_t *a, const msrc_t *b)
{
    uint64_t ua = a->blk.user[a->row], ub = b->blk.user[b->row];
    if (ua != ub)
        return ua < ub;
    int64_t ta = a->blk.time[a->row], tb = b->blk.time[b->row];
    if (ta != tb)
        return ta < tb;
    return a->blk.seq[a->row] < b->blk.seq[b->row];
}

/* Merges parts (sorted each) into one new part file at path. */
static int merge_parts(wm_part_t **parts, uint32_t n, const char *path)
{
    wm_part_writer_t *w;
    int rc = wm__part_writer_open(path, &w);
    if (rc)
        return rc;
    msrc_t *ms = wm_calloc(n, sizeof *ms);
    char err[512];
    rc = ms ? 0 : WM_ENOMEM;
    for (uint32_t i = 0; i < n && !rc; i++) {
        wm_part_info_t in;
        ms[i].p = parts[i];
        wm_part_get_info(parts[i], &in);
        ms[i].colmap = wm_malloc((in.cols + 1) * sizeof *ms[i].colmap);
        ms[i].strmap = wm_calloc(in.cols + 1, sizeof *ms[i].strmap);
        ms[i].rstart = wm_malloc((WM_PART_BLOCK_ROWS + 1) * sizeof *ms[i].rstart);
        if (!ms[i].colmap || !ms[i].strmap || !ms[i].rstart) {
            rc = WM_ENOMEM;
            break;
        }
        memset(ms[i].colmap, 0xff, (in.cols + 1) * sizeof *ms[i].colmap);
        const uint64_t *pairs;
        uint32_t np;
        wm_part_merges(parts[i], &pairs, &np);
        for (uint32_t k = 0; k < np && !rc; k++)
            rc = wm__part_writer_merge(w, pairs[2 * k], pairs[2 * k + 1]);
        if (!rc)
            rc = wm_part_reader_new(parts[i], &ms[i].r);
        if (!rc)
            rc = ms_load(&ms[i], err, sizeof err);
    }
    while (!rc) {
        msrc_t *best = NULL;
        for (uint32_t i = 0; i < n; i++)
            if (!ms[i].done && (!best || ms_less(&ms[i], best)))
                best = &ms[i];
        if (!best)
            break;
        rc = ms_emit(w, best);
        if (!rc && ++best->row == best->blk.rows) {
            best->block++;
            rc = ms_load(best, err, sizeof err);
        }
    }
    for (uint32_t i = 0; ms && i < n; i++)
        ms_free(&ms[i]);
    wm_free(ms);
    if (rc) {
        wm__part_writer_abort(w);
        return rc;
    }
    return wm__part_writer_finish(w, NULL);
}

/* Merges current parts [a, b) into one and installs it. */
static int merge_range(wm_astore_t *s, uint32_t a, uint32_t b)
{
    wm_aversion_t *v = s->cur;
    wm_part_t **ps = wm_malloc((b - a) * sizeof *ps);
    if (!ps)
        return WM_ENOMEM;
    for (uint32_t i = a; i < b; i++)
        ps[i - a] = v->parts[i]->part;
    char name[64], path[4096];
    part_name(s, name, sizeof name);
    snprintf(path, sizeof path, "%s/%s", s->dir, name);
    int rc = merge_parts(ps, b - a, path);
    wm_free(ps);
    wm_apart_ref_t *r = NULL;
    if (!rc)
        rc = open_ref(s, name, &r);
    if (!rc)
        rc = install(s, a, &r, 1, b, v->compacted_seq);
    if (rc) {
        ref_release(r);
        unlink(path);
        return rc;
    }
    s->merges++;
    return 0;
}

static int merge_small(wm_astore_t *s)
{
    while (s->cur->n > WM_ASTORE_PARTS_MAX) {
        wm_aversion_t *v = s->cur;
        uint32_t best = 0;
        uint64_t best_rows = UINT64_MAX;
        for (uint32_t i = 0; i + 1 < v->n; i++) {
            wm_part_info_t x, y;
            wm_part_get_info(v->parts[i]->part, &x);
            wm_part_get_info(v->parts[i + 1]->part, &y);
            if (x.rows + y.rows < best_rows) {
                best_rows = x.rows + y.rows;
                best = i;
            }
        }
        int rc = merge_range(s, best, best + 2);
        if (rc)
            return rc;
    }
    return 0;
}

int wm_astore_merge_all(wm_astore_t *s)
{
    while (s->cur->n > 1) {
        uint32_t k = s->cur->n < 8 ? s->cur->n : 8;
        int rc = merge_range(s, 0, k);
        if (rc)
            return rc;
    }
    return 0;
}

/* ----------------------------------------------------------- compaction */

/* Reads the log's durable records after `after` (at most
 * WM_ASTORE_PART_RECORDS_MAX) into b; *last is the last sequence read and
 * *bad the records not readable as events (they stay in the log). */
static int read_log(wm_log_t *log, uint64_t after, wm_part_builder_t *b, uint64_t *last, uint64_t *bad)
{
    uint64_t durable = wm_log_durable_seq(log);
    *last = after;
    *bad = 0;
    wm_log_iter_t *it;
    int rc = wm_log_iter_open(log, after + 1, &it);
    if (rc)
        return rc;
    wm_arena_t arena;
    wm_arena_init(&arena, 1 << 16);
    for (uint64_t n = 0; n < WM_ASTORE_PART_RECORDS_MAX; n++) {
        wm_log_pos_t pos;
        const void *payload;
        uint32_t len;
        int r = wm_log_iter_next(it, &pos, &payload, &len);
        if (r < 0) {
            rc = r;
            break;
        }
        if (r == 0 || pos.seq > durable)
            break;
        r = wm__builder_add_payload(b, payload, len, pos.seq, &arena);
        if (r == WM_ECORRUPT)
            (*bad)++;
        else if (r) {
            rc = r;
            break;
        }
        *last = pos.seq;
    }
    wm_log_iter_close(it);
    wm_arena_release(&arena);
    return rc;
}

int wm_astore_compact(wm_astore_t *s, wm_log_t *log, uint64_t min_records, bool *did)
{
    if (did)
        *did = false;
    uint64_t from = s->cur->compacted_seq + 1, durable = wm_log_durable_seq(log);
    if (durable < from || durable - from + 1 < (min_records ? min_records : 1))
        return merge_small(s);
    wm_part_builder_t *b;
    int rc = wm_part_builder_new(&b);
    if (rc)
        return rc;
    uint64_t last, bad;
    rc = read_log(log, s->cur->compacted_seq, b, &last, &bad);
    if (bad)
        fprintf(stderr, "waymark: analytics: partition %u: %" PRIu64 " log records not readable as events\n",
                s->partition, bad);
    if (!rc && last > s->cur->compacted_seq) {
        wm_apart_ref_t *r = NULL;
        char name[64], path[4096];
        bool wrote = wm_part_builder_rows(b) > 0 || b->nmerges > 0;
        if (wrote) {
            part_name(s, name, sizeof name);
            snprintf(path, sizeof path, "%s/%s", s->dir, name);
            rc = wm_part_builder_write(b, path);
            if (!rc)
                rc = open_ref(s, name, &r);
        }
        if (!rc)
            rc = install(s, s->cur->n, wrote ? &r : NULL, wrote ? 1 : 0, s->cur->n, last);
        if (rc) {
            ref_release(r);
            if (wrote)
                unlink(path);
        } else {
            s->compactions++;
            if (did)
                *did = true;
        }
    }
    wm_part_builder_free(b);
    return rc ? rc : merge_small(s);
}

/* ---------------------------------------------------------------- check */

int wm_astore_check(const char *dir, wm_buf_t *report, uint64_t *faults)
{
    *faults = 0;
    /* the manifest is read without opening parts, so each is reported alone */
    char text[1 << 16], *body;
    int mrc = load_manifest(dir, text, sizeof text, &body);
    if (mrc == WM_ENOTFOUND) {
        wm_buf_printf(report, "%s: no manifest (nothing compacted)\n", dir);
        return 0;
    }
    if (mrc) {
        wm_buf_printf(report, "%s/MANIFEST: %s\n", dir,
                      mrc == WM_ECORRUPT ? "corrupt (checksum or header)" : "cannot be read");
        (*faults)++;
        return 0;
    }
    char *save = NULL;
    for (char *line = strtok_r(body, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[64];
        if (sscanf(line, "part %63s", name) != 1)
            continue;
        char ppath[4096], err[512];
        snprintf(ppath, sizeof ppath, "%s/%s", dir, name);
        wm_part_t *p;
        int rc = wm_part_open(ppath, &p, err, sizeof err);
        if (!rc) {
            rc = wm_part_verify(p, err, sizeof err);
            wm_part_info_t in;
            wm_part_get_info(p, &in);
            if (!rc)
                wm_buf_printf(report, "%s: ok, %" PRIu64 " rows, %u blocks, %u columns, %" PRIu64 " bytes\n", ppath,
                              in.rows, in.blocks, in.cols, in.bytes);
            wm_part_close(p);
        }
        if (rc) {
            wm_buf_printf(report, "%s\n", err);
            (*faults)++;
        }
    }
    return 0;
}

/* ----------------------------------------------------------------- tail */

int wm__astore_tail(wm_astore_t *s, wm_log_t *log, uint64_t after, uint64_t *next, wm_part_t **out)
{
    *out = NULL;
    *next = after;
    if (wm_log_durable_seq(log) <= after)
        return 0;
    wm_part_builder_t *b;
    int rc = wm_part_builder_new(&b);
    if (rc)
        return rc;
    b->nosync = true;
    uint64_t last, bad;
    rc = read_log(log, after, b, &last, &bad);   /* unreadable records are skipped, as by the compactor */
    if (!rc && (wm_part_builder_rows(b) > 0 || b->nmerges > 0)) {
        /* an unlisted scratch file: unlinked once mapped, swept at open after a crash */
        static atomic_uint_fast64_t serial;
        char path[4096], err[512];
        snprintf(path, sizeof path, "%s/tail-%ld-%" PRIu64, s->dir, (long)getpid(),
                 (uint64_t)atomic_fetch_add(&serial, 1));
        rc = wm_part_builder_write(b, path);
        if (!rc) {
            rc = wm_part_open(path, out, err, sizeof err);
            if (rc)
                fprintf(stderr, "waymark: analytics: %s\n", err);
            unlink(path);
        }
    }
    if (!rc)
        *next = last;
    wm_part_builder_free(b);
    return rc;
}

static void tails_drop(wm_astore_t *s, uint64_t base)
{
    for (uint32_t i = 0; i < s->ntails; i++)
        ref_release(s->tails[i]);
    s->ntails = 0;
    s->tail_base = s->tail_to = base;
}

static int tail_ref(wm_part_t *p, wm_apart_ref_t **out)
{
    wm_apart_ref_t *r = wm_calloc(1, sizeof *r);
    if (!r)
        return WM_ENOMEM;
    r->part = p;
    snprintf(r->name, sizeof r->name, "tail");
    atomic_init(&r->refs, 1);
    *out = r;
    return 0;
}

int wm__astore_tail_parts(wm_astore_t *s, wm_log_t *log, uint64_t after, wm_apart_ref_t ***out, uint32_t *n)
{
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&s->tail_mu);
    int rc = 0;
    if (after != s->tail_base)
        tails_drop(s, after);
    /* what the cache lacks: (tail_to, durable], a part per call */
    for (uint64_t from = s->tail_to; !rc;) {
        wm_part_t *p = NULL;
        uint64_t next;
        if ((rc = wm__astore_tail(s, log, from, &next, &p)))
            break;
        if (p) {
            if (s->ntails == WM_ASTORE_TAILS_MAX) {
                /* too many slices: start over with one */
                wm_part_close(p);
                tails_drop(s, after);
                from = after;
                continue;
            }
            wm_apart_ref_t *r;
            if ((rc = tail_ref(p, &r))) {
                wm_part_close(p);
                break;
            }
            s->tails[s->ntails++] = r;
        }
        s->tail_to = next;
        if (next == from)
            break;
        from = next;
    }
    if (!rc && s->ntails) {
        if (!(*out = wm_malloc(s->ntails * sizeof **out)))
            rc = WM_ENOMEM;
        for (uint32_t i = 0; !rc && i < s->ntails; i++) {
            atomic_fetch_add(&s->tails[i]->refs, 1);
            (*out)[i] = s->tails[i];
        }
        if (!rc)
            *n = s->ntails;
    }
    pthread_mutex_unlock(&s->tail_mu);
    return rc;
}

void wm__apart_release(wm_apart_ref_t *r)
{
    ref_release(r);
}
