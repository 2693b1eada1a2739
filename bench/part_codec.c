/*
 * part_codec.c - zstd against lz4 on the column blocks of real parts: every
 * block and column of the parts given (or of DATA/analytics/pNN) is
 * decompressed to its plain encoding, then compressed and decompressed again
 * with zstd at levels 1 and 3 and with lz4 (default and HC 9). Prints one
 * table: stored bytes, ratio and MB/s both ways, per codec.
 *
 *   part_codec FILE.part...      or      part_codec --data DIR
 */
#include <dirent.h>
#include <inttypes.h>
#include <lz4.h>
#include <lz4hc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#include "analytics/an_internal.h"

typedef struct codec {
    const char *name;
    int level;
    uint64_t plain, packed;
    double c_s, d_s;
} codec_t;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned char *cbuf, *dbuf;
static ZSTD_CCtx *zc;
static ZSTD_DCtx *zd;
static size_t ccap, dcap;

static void run(codec_t *c, const void *src, size_t n)
{
    size_t bound = c->name[0] == 'z' ? ZSTD_compressBound(n) : (size_t)LZ4_compressBound((int)n);
    if (bound > ccap) {
        ccap = bound * 2;
        cbuf = realloc(cbuf, ccap);
    }
    if (n + 16 > dcap) {
        dcap = n * 2 + 16;
        dbuf = realloc(dbuf, dcap);
    }
    double t0 = now();
    size_t k;
    if (c->name[0] == 'z')
        k = ZSTD_compressCCtx(zc, cbuf, ccap, src, n, c->level);
    else if (c->level > 0)
        k = (size_t)LZ4_compress_HC(src, (char *)cbuf, (int)n, (int)ccap, c->level);
    else
        k = (size_t)LZ4_compress_default(src, (char *)cbuf, (int)n, (int)ccap);
    double t1 = now();
    size_t back = c->name[0] == 'z' ? ZSTD_decompressDCtx(zd, dbuf, dcap, cbuf, k)
                                     : (size_t)LZ4_decompress_safe((char *)cbuf, (char *)dbuf, (int)k, (int)dcap);
    double t2 = now();
    if (back != n || memcmp(dbuf, src, n)) {
        fprintf(stderr, "part_codec: %s level %d does not round-trip\n", c->name, c->level);
        exit(1);
    }
    c->plain += n;
    c->packed += k;
    c->c_s += t1 - t0;
    c->d_s += t2 - t1;
}

int main(int argc, char **argv)
{
    codec_t codecs[] = {{.name = "zstd", .level = 1}, {.name = "zstd", .level = 3}, {.name = "lz4", .level = 0},
                        {.name = "lz4hc", .level = 9}};
    size_t nc = getenv("PART_CODEC_SIZES_ONLY") ? 1 : sizeof codecs / sizeof *codecs;
    char **files = NULL;
    int nf = 0;
    zc = ZSTD_createCCtx();
    zd = ZSTD_createDCtx();
    if (argc == 3 && !strcmp(argv[1], "--data")) {
        for (int p = 0; p < 256; p++) {
            char d[4096];
            snprintf(d, sizeof d, "%s/analytics/p%02d", argv[2], p);
            DIR *dir = opendir(d);
            if (!dir)
                break;
            struct dirent *e;
            while ((e = readdir(dir)))
                if (strstr(e->d_name, ".part")) {
                    files = realloc(files, (nf + 1) * sizeof *files);
                    files[nf] = malloc(strlen(d) + strlen(e->d_name) + 2);
                    sprintf(files[nf++], "%s/%s", d, e->d_name);
                }
            closedir(dir);
        }
    } else {
        files = argv + 1;
        nf = argc - 1;
    }
    if (!nf) {
        fprintf(stderr, "usage: part_codec FILE.part... | part_codec --data DIR\n");
        return 2;
    }
    uint64_t stored = 0, rows = 0;
    /* stored bytes by column name (base columns first) */
    enum { NAMES = 4096 };
    static char *names[NAMES];
    static uint64_t by[NAMES];
    uint32_t nn = 0;
    for (int i = 0; i < nf; i++) {
        wm_part_t *p;
        char err[512];
        if (wm_part_open(files[i], &p, err, sizeof err)) {
            fprintf(stderr, "part_codec: %s\n", err);
            return 1;
        }
        wm_part_info_t in;
        wm_part_get_info(p, &in);
        rows += in.rows;
        wm_part_reader_t *r;
        if (wm_part_reader_new(p, &r))
            return 1;
        for (uint32_t b = 0; b < in.blocks; b++) {
            wm_ablock_t blk;
            if (wm_part_read_block(r, b, &blk, err, sizeof err)) {
                fprintf(stderr, "part_codec: %s\n", err);
                return 1;
            }
            /* PART_CODEC_COLUMN=k: only column k (0-3: user, time, seq, event) */
            const char *only = getenv("PART_CODEC_COLUMN");
            for (uint32_t c = 0; c < 4 + in.cols; c++) {
                if (only && (uint32_t)atoi(only) != c)
                    continue;
                const void *data;
                size_t len, st;
                if (wm__part_plain(r, c, &data, &len, &st))
                    continue;   /* a column without values in this block */
                stored += st;
                wm_acol_type_t t;
                const char *cn = c < 4 ? (const char *[]){"(user)", "(time)", "(seq)", "(event)"}[c]
                                       : wm_part_col_name(p, c - 4, &t);
                uint32_t j = 0;
                while (j < nn && strcmp(names[j], cn))
                    j++;
                if (j == nn && nn < NAMES)
                    names[nn++] = strdup(cn);
                if (j < NAMES)
                    by[j] += st;
                for (size_t k = 0; k < nc; k++)
                    run(&codecs[k], data, len);
            }
        }
        wm_part_reader_free(r);
        wm_part_close(p);
    }
    printf("part codecs: %d parts, %" PRIu64 " rows, %" PRIu64 " plain bytes, %" PRIu64 " stored (zstd 1)\n", nf, rows,
           codecs[0].plain, stored);
    printf("%-10s %12s %10s %10s %12s %12s\n", "codec", "bytes", "B/row", "ratio", "comp MB/s", "decomp MB/s");
    for (size_t k = 0; k < nc; k++) {
        codec_t *c = &codecs[k];
        char name[32];
        snprintf(name, sizeof name, "%s-%d", c->name, c->level);
        printf("%-10s %12" PRIu64 " %10.2f %10.2f %12.0f %12.0f\n", name, c->packed, (double)c->packed / rows,
               (double)c->plain / c->packed, c->plain / 1e6 / c->c_s, c->plain / 1e6 / c->d_s);
    }
    printf("\nlargest columns (stored bytes per row):\n");
    for (int top = 0; top < 12; top++) {
        uint32_t best = UINT32_MAX;
        for (uint32_t j = 0; j < nn; j++)
            if (by[j] && (best == UINT32_MAX || by[j] > by[best]))
                best = j;
        if (best == UINT32_MAX)
            break;
        printf("  %-24s %8.2f\n", names[best], (double)by[best] / rows);
        by[best] = 0;
    }
    return 0;
}
