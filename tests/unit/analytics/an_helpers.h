/*
 * an_helpers.h - shared helpers of the analytics unit tests (header only):
 * temporary directories, files as bytes, JSON parsing, and a reader that
 * turns a part back into one text line per row,
 *
 *     user|time|seq|event|name/T=value;name/T=value...
 *
 * (entries sorted; T is N number, S string, B bool, D datetime, L list) so a
 * test can compare what went in with what came out as plain strings.
 */
#ifndef WM_TEST_AN_HELPERS_H
#define WM_TEST_AN_HELPERS_H

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "waymark/analytics.h"
#include "waymark/arena.h"
#include "waymark/buf.h"
#include "waymark/error.h"
#include "waymark/json.h"

/* ---- directories and files ------------------------------------------- */

static inline void an_mkdtemp(char *dir, size_t cap, const char *tag)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, cap, "%s/wm-test-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", tag);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        abort();
    }
}

/* Removes dir and everything under it (two levels are enough here). */
static inline void an_rmrf(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[4096];
    while (d && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)sizeof p)
            continue;
        struct stat st;
        if (!lstat(p, &st) && S_ISDIR(st.st_mode))
            an_rmrf(p);
        else
            unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

static inline unsigned char *an_read_file(const char *path, size_t *n)
{
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *d = malloc(len > 0 ? (size_t)len : 1);
    if (d && len > 0 && fread(d, 1, (size_t)len, f) != (size_t)len) {
        free(d);
        d = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return d;
}

static inline int an_write_file(const char *path, const void *d, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t k = n ? fwrite(d, 1, n, f) : 0;
    fclose(f);
    return k == n ? 0 : -1;
}

static inline void an_flip_byte(const char *path, size_t pos)
{
    size_t n = 0;
    unsigned char *d = an_read_file(path, &n);
    if (!d || pos >= n)
        abort();
    d[pos] ^= 0x5a;
    if (an_write_file(path, d, n))
        abort();
    free(d);
}

/* ---- JSON ------------------------------------------------------------- */

static inline const wm_json_t *an_json(wm_arena_t *a, const char *text)
{
    if (!text)
        return NULL;
    wm_json_t *v;
    wm_json_error_t err;
    if (wm_json_parse(a, text, strlen(text), &v, &err)) {
        fprintf(stderr, "bad test JSON at %zu: %s\n%s\n", err.offset, err.msg, text);
        abort();
    }
    return v;
}

/* ---- a part as text rows ----------------------------------------------- */

typedef struct an_rows {
    char **row;
    size_t n, cap;
} an_rows_t;

static inline void an_rows_push(an_rows_t *r, char *s)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 1024;
        r->row = realloc(r->row, r->cap * sizeof *r->row);
    }
    r->row[r->n++] = s;
}

static inline void an_rows_free(an_rows_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->row[i]);
    free(r->row);
    memset(r, 0, sizeof *r);
}

static inline int an_strcmp_p(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static inline void an_rows_sort(an_rows_t *r)
{
    qsort(r->row, r->n, sizeof *r->row, an_strcmp_p);
}

static inline char an_type_char(wm_acol_type_t t)
{
    return t == WM_ACOL_NUMBER ? 'N' : WM_ACOL_IS_TEXT(t) ? 'S' : t == WM_ACOL_BOOL ? 'B'
                                   : t == WM_ACOL_DATETIME ? 'D' : 'L';
}

/* One row's line from its sorted entries (entries freed). */
static inline char *an_row_line(uint64_t user, int64_t time, uint64_t seq, const char *event, char **ent, size_t n)
{
    if (n)
        qsort(ent, n, sizeof *ent, an_strcmp_p);
    wm_buf_t b;
    wm_buf_init(&b, 0);
    wm_buf_printf(&b, "%" PRIu64 "|%" PRId64 "|%" PRIu64 "|%s|", user, time, seq, event);
    for (size_t i = 0; i < n; i++) {
        if (i)
            wm_buf_putc(&b, ';');
        wm_buf_puts(&b, ent[i]);
        free(ent[i]);
    }
    wm_buf_putc(&b, 0);
    char *s = strdup(b.data);
    wm_buf_release(&b);
    return s;
}

static inline char *an_entry(const char *name, char t, const char *val, size_t vlen)
{
    size_t nl = strlen(name);
    char *s = malloc(nl + vlen + 4);
    memcpy(s, name, nl);
    s[nl] = '/';
    s[nl + 1] = t;
    s[nl + 2] = '=';
    memcpy(s + nl + 3, val, vlen);
    s[nl + 3 + vlen] = 0;
    return s;
}

static inline char *an_entry_num(const char *name, double v)
{
    char t[64];
    int n = snprintf(t, sizeof t, "%.17g", v);
    return an_entry(name, 'N', t, (size_t)n);
}

/* Reads every block and column of the open part p into lines (in file
 * order: (user, time, seq)); returns 0 or the first error (err filled). */
static inline int an_part_lines(wm_part_t *p, an_rows_t *out, char *err, size_t cap)
{
    wm_part_info_t in;
    wm_part_get_info(p, &in);
    wm_part_reader_t *r;
    int rc = wm_part_reader_new(p, &r);
    if (rc)
        return rc;
    wm_acolumn_t *cols = calloc(in.cols + 1, sizeof *cols);
    char **ent = malloc((in.cols + 1) * sizeof *ent);
    for (uint32_t b = 0; b < in.blocks && !rc; b++) {
        wm_ablock_t blk;
        if ((rc = wm_part_read_block(r, b, &blk, err, cap)))
            break;
        for (uint32_t c = 0; c < in.cols && !rc; c++)
            rc = wm_part_read_col(r, c, &cols[c], err, cap);
        for (uint32_t i = 0; i < blk.rows && !rc; i++) {
            size_t ne = 0;
            for (uint32_t c = 0; c < in.cols; c++) {
                const wm_acolumn_t *col = &cols[c];
                if (!wm_acol_has(col, i))
                    continue;
                wm_acol_type_t t;
                const char *name = wm_part_col_name(p, c, &t);
                char tmp[64];
                uint32_t len;
                const char *s;
                switch (t) {
                case WM_ACOL_NUMBER:
                    ent[ne++] = an_entry_num(name, col->num[i]);
                    break;
                case WM_ACOL_STRING:
                case WM_ACOL_JSON:
                    s = wm_part_col_str(p, c, col->code[i], &len);
                    ent[ne++] = an_entry(name, 'S', s, len);
                    break;
                case WM_ACOL_BOOL:
                    ent[ne++] = an_entry(name, 'B', col->boolean[i] ? "true" : "false", col->boolean[i] ? 4 : 5);
                    break;
                case WM_ACOL_DATETIME:
                    len = (uint32_t)wm_acol_datetime_text(col->num[i], col->code[i], tmp, sizeof tmp);
                    ent[ne++] = an_entry(name, 'D', tmp, len);
                    break;
                case WM_ACOL_LIST: {
                    wm_buf_t lb;
                    wm_buf_init(&lb, 0);
                    wm_buf_putc(&lb, '[');
                    for (uint32_t k = 0; k < col->list_len[i]; k++) {
                        if (k)
                            wm_buf_putc(&lb, ',');
                        s = wm_part_col_str(p, c, col->list_codes[col->code[i] + k], &len);
                        wm_buf_append(&lb, s, len);
                    }
                    wm_buf_putc(&lb, ']');
                    ent[ne++] = an_entry(name, 'L', lb.data, lb.len);
                    wm_buf_release(&lb);
                    break;
                }
                }
            }
            const char *ev = wm_part_event_name(p, blk.event[i]);
            an_rows_push(out, an_row_line(blk.user[i], blk.time[i], blk.seq[i], ev ? ev : "?", ent, ne));
        }
    }
    free(ent);
    free(cols);
    wm_part_reader_free(r);
    return rc;
}

/* Opens path, verifies it and appends its lines; 0 or the error. */
static inline int an_file_lines(const char *path, an_rows_t *out)
{
    wm_part_t *p;
    char err[512] = "";
    int rc = wm_part_open(path, &p, err, sizeof err);
    if (rc) {
        fprintf(stderr, "open %s: %s\n", path, err);
        return rc;
    }
    if ((rc = wm_part_verify(p, err, sizeof err)) == 0)
        rc = an_part_lines(p, out, err, sizeof err);
    if (rc)
        fprintf(stderr, "read %s: %s\n", path, err);
    wm_part_close(p);
    return rc;
}

#endif
