/*
 * analytics_scale.c - the queries of bench/analytics at K times the data:
 * every partition's compacted part of a data directory is copied K times
 * into one part per partition under OUT (replica r's customers are the
 * original ids + r * 2^40, so K copies are K times the customers with the
 * same behaviour), then the bench queries run in-process on those stores
 * and the figures print as a table (min and median of RUNS, peak RSS).
 *
 *   analytics_scale DATA OUT K [RUNS] [QUERY.json...]
 *
 * DATA must have been compacted to one part per partition (waymark compact).
 * The copies have no log: what is measured is the query over parts.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "analytics/an_internal.h"
#include "waymark/crc32c.h"
#include "waymark/error.h"
#include "waymark/json.h"

/* paths come from the command line and stay far below PATH_MAX */
#pragma GCC diagnostic ignored "-Wformat-truncation"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int die(const char *what, const char *detail)
{
    fprintf(stderr, "analytics_scale: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(1);
}

/* The one part of a partition's manifest. */
static int source_part(const char *dir, char *path, size_t cap)
{
    char m[4096];
    snprintf(m, sizeof m, "%s/MANIFEST", dir);
    FILE *f = fopen(m, "r");
    if (!f)
        return -1;
    char line[512], name[128];
    int found = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "part %127s", name) == 1) {
            snprintf(path, cap, "%s/%s", dir, name);
            found++;
        }
    fclose(f);
    return found == 1 ? 0 : -1;
}

static void replicate(const char *src, const char *dst_dir, uint32_t k)
{
    wm_part_t *p;
    char err[512];
    if (wm_part_open(src, &p, err, sizeof err))
        die(err, NULL);
    wm_part_info_t in;
    wm_part_get_info(p, &in);
    char dst[4096];
    snprintf(dst, sizeof dst, "%s/000000000001.part", dst_dir);
    wm_part_writer_t *w;
    if (wm__part_writer_open(dst, &w))
        die("cannot write", dst);
    uint32_t *evmap = malloc((in.events + 1) * sizeof *evmap), *colmap = malloc((in.cols + 1) * sizeof *colmap);
    for (uint32_t e = 0; e < in.events; e++) {
        const char *nm = wm_part_event_name(p, e);
        if (wm__part_writer_event(w, nm, strlen(nm), &evmap[e]))
            die("event dictionary", nm);
    }
    for (uint32_t c = 0; c < in.cols; c++) {
        wm_acol_type_t t;
        const char *nm = wm_part_col_name(p, c, &t);
        if (wm__part_writer_col(w, nm, strlen(nm), t, &colmap[c]))
            die("column", nm);
    }
    wm_part_reader_t *r;
    wm_acolumn_t *cols = calloc(in.cols + 1, sizeof *cols);
    uint32_t *codes = NULL, ccap = 0;
    if (wm_part_reader_new(p, &r))
        die("reader", src);
    for (uint32_t rep = 0; rep < k; rep++) {
        uint64_t off = (uint64_t)rep << 40;
        for (uint32_t b = 0; b < in.blocks; b++) {
            wm_ablock_t blk;
            if (wm_part_read_block(r, b, &blk, err, sizeof err))
                die(err, NULL);
            for (uint32_t c = 0; c < in.cols; c++)
                if (wm_part_read_col(r, c, &cols[c], err, sizeof err))
                    die(err, NULL);
            for (uint32_t i = 0; i < blk.rows; i++) {
                if (wm__part_writer_row(w, blk.user[i] + off, blk.time[i], blk.seq[i], evmap[blk.event[i]]))
                    die("write row", dst);
                for (uint32_t c = 0; c < in.cols; c++) {
                    const wm_acolumn_t *col = &cols[c];
                    if (!wm_acol_has(col, i))
                        continue;
                    uint32_t len, code;
                    const char *s;
                    int rc = 0;
                    switch (col->type) {
                    case WM_ACOL_NUMBER:
                        rc = wm__part_writer_num(w, colmap[c], col->num[i]);
                        break;
                    case WM_ACOL_STRING:
                    case WM_ACOL_JSON:
                        s = wm_part_col_str(p, c, col->code[i], &len);
                        rc = wm__part_writer_str(w, colmap[c], s, len, &code);
                        if (!rc)
                            rc = wm__part_writer_code(w, colmap[c], code, 0);
                        break;
                    case WM_ACOL_BOOL:
                        rc = wm__part_writer_code(w, colmap[c], col->boolean[i], 0);
                        break;
                    case WM_ACOL_DATETIME:
                        rc = wm__part_writer_code(w, colmap[c], (uint64_t)(int64_t)col->num[i], (uint8_t)col->code[i]);
                        break;
                    case WM_ACOL_LIST: {
                        uint32_t n = col->list_len[i];
                        if (wm__an_grow((void **)&codes, &ccap, n + 1, sizeof *codes))
                            die("memory", NULL);
                        for (uint32_t j = 0; j < n && !rc; j++) {
                            s = wm_part_col_str(p, c, col->list_codes[col->code[i] + j], &len);
                            rc = wm__part_writer_str(w, colmap[c], s, len, &codes[j]);
                        }
                        if (!rc)
                            rc = wm__part_writer_list(w, colmap[c], codes, n);
                        break;
                    }
                    }
                    if (rc)
                        die("write value", dst);
                }
            }
        }
    }
    uint64_t bytes;
    if (wm__part_writer_finish(w, &bytes))
        die("finish", dst);
    wm_part_reader_free(r);
    /* the manifest lists the one part */
    wm_part_t *np;
    if (wm_part_open(dst, &np, err, sizeof err))
        die(err, NULL);
    wm_part_info_t ni;
    wm_part_get_info(np, &ni);
    char text[1024];
    int n = snprintf(text, sizeof text, "waymark-manifest 1\ncompacted %" PRIu64 "\npart 000000000001.part %" PRIu64
                     " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n",
                     in.seq_max, ni.rows, ni.seq_min, ni.seq_max, ni.bytes);
    n += snprintf(text + n, sizeof text - (size_t)n, "crc %08x\n", wm_crc32c(0, text, (size_t)n));
    char mpath[4096];
    snprintf(mpath, sizeof mpath, "%s/MANIFEST", dst_dir);
    FILE *f = fopen(mpath, "w");
    if (!f || fwrite(text, 1, (size_t)n, f) != (size_t)n || fclose(f))
        die("cannot write", mpath);
    wm_part_close(np);
    wm_part_close(p);
    free(evmap);
    free(colmap);
    free(cols);
    free(codes);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 4)
        return die("usage: analytics_scale DATA OUT K [RUNS] [QUERY.json...]", NULL);
    const char *data = argv[1], *out = argv[2];
    uint32_t k = (uint32_t)atoi(argv[3]);
    int runs = argc > 4 ? atoi(argv[4]) : 3;
    mkdir(out, 0755);
    char d[4096];
    snprintf(d, sizeof d, "%s/analytics", out);
    mkdir(d, 0755);
    wm_astore_t *stores[64];
    uint32_t np = 0;
    uint64_t rows = 0, bytes = 0;
    double t0 = now_ms();
    for (; np < 64; np++) {
        char sdir[4096], src[4096], ddir[4096];
        snprintf(sdir, sizeof sdir, "%s/analytics/p%02u", data, np);
        struct stat st;
        if (stat(sdir, &st))
            break;
        if (source_part(sdir, src, sizeof src))
            die("needs one part per partition (waymark compact)", sdir);
        snprintf(ddir, sizeof ddir, "%s/p%02u", d, np);
        mkdir(ddir, 0755);
        char mpath[4096];
        snprintf(mpath, sizeof mpath, "%s/MANIFEST", ddir);
        if (stat(mpath, &st))
            replicate(src, ddir, k);
        if (wm_astore_open(ddir, np, &stores[np]))
            die("cannot open", ddir);
        wm_astore_stats_t s;
        wm_astore_stats(stores[np], &s);
        rows += s.rows;
        bytes += s.bytes;
    }
    if (!np)
        die("no partitions under", data);
    printf("analytics at %ux: %u partitions, %" PRIu64 " events, %" PRIu64 " bytes of parts (%.2f B/event), "
           "prepared in %.0f ms\n\n",
           k, np, rows, bytes, (double)bytes / (double)rows, now_ms() - t0);
    printf("| query | min ms | median ms | rows read | customers | peak RSS MB |\n|---|---|---|---|---|---|\n");
    wm_query_src_t src = {.stores = stores, .n_parts = np, .timeout_ms = 600000};
    for (int qi = 5; qi < argc; qi++) {
        FILE *f = fopen(argv[qi], "rb");
        if (!f)
            die("cannot read", argv[qi]);
        static char text[1 << 16];
        size_t len = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        wm_arena_t a;
        wm_arena_init(&a, 1 << 14);
        wm_json_t *req;
        wm_json_error_t je;
        if (wm_json_parse(&a, text, len, &req, &je))
            die("bad JSON", argv[qi]);
        const char *kind = wm_json_str(wm_json_get(req, "kind"));
        double ms[32];
        int nr = runs > 32 ? 32 : runs;
        char stats[256] = "";
        for (int r = 0; r < nr; r++) {
            wm_buf_t ans;
            wm_buf_init(&ans, 0);
            wm_query_error_t err;
            double q0 = now_ms();
            int rc = wm_query_run(&src, kind ? kind : "events", req, &ans, &err);
            ms[r] = now_ms() - q0;
            if (rc)
                die(err.msg, argv[qi]);
            const char *st = ans.data ? strstr(ans.data, "\"rows_read\":") : NULL;
            if (st) {
                unsigned long long rr = 0, cu = 0;
                sscanf(st, "\"rows_read\":%llu,\"customers\":%llu", &rr, &cu);
                snprintf(stats, sizeof stats, "%llu | %llu", rr, cu);
            }
            wm_buf_release(&ans);
        }
        qsort(ms, (size_t)nr, sizeof *ms, cmp_d);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("| %s | %.0f | %.0f | %s | %.0f |\n", kind ? kind : "?", ms[0], ms[nr / 2], stats[0] ? stats : "n/a | n/a",
               ru.ru_maxrss / 1024.0);
        fflush(stdout);
        wm_arena_release(&a);
    }
    for (uint32_t i = 0; i < np; i++)
        wm_astore_close(stores[i]);
    return 0;
}
