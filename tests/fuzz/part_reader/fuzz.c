/*
 * fuzz.c (part_reader) - any bytes given to the part reader as a file: open,
 * verify, then read every block and every column and touch every value
 * (dictionary strings, list elements, datetime text). It must never crash,
 * read out of bounds or leak; a refusal must be WM_ECORRUPT (or WM_ENOMEM)
 * with a message; a part that verifies must read completely.
 *
 * Each input runs twice: as it is, and "re-sealed" (part_walk.h recomputes
 * the footer length, every block checksum the index names and the footer
 * checksum), so mutated inputs get past the checksums into the footer parser
 * and the block decoders.
 *
 * The input goes to a memfd, opened by its /proc/self/fd path.
 * Seeds: corpus/ holds small parts from gen_corpus.c (see there) and
 * truncated and mutated copies of them.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "part_walk.h"
#include "waymark/analytics.h"
#include "waymark/error.h"

static int fd = -1;
static char path[64];

static void check(bool ok)
{
    if (!ok)
        abort();
}

static void read_all(wm_part_t *p, bool must_read)
{
    wm_part_info_t in;
    wm_part_get_info(p, &in);
    for (uint32_t e = 0; e < in.events; e++)
        check(wm_part_event_name(p, e) != NULL);
    const uint64_t *pairs;
    uint32_t np;
    wm_part_merges(p, &pairs, &np);
    volatile uint64_t sink = 0;
    for (uint32_t i = 0; i < 2 * np; i++)
        sink += pairs[i];
    for (uint32_t c = 0; c < in.cols; c++) {
        wm_acol_type_t t;
        const char *name = wm_part_col_name(p, c, &t);
        check(name && t >= WM_ACOL_NUMBER && t <= WM_ACOL_JSON);
        check(wm_part_find_col(p, name, t) >= 0);
    }
    wm_part_reader_t *r;
    if (wm_part_reader_new(p, &r))
        return;
    char err[512];
    uint64_t rows = 0;
    for (uint32_t b = 0; b < in.blocks; b++) {
        wm_ablock_t blk;
        err[0] = 0;
        int rc = wm_part_read_block(r, b, &blk, err, sizeof err);
        check(!must_read || rc == 0);
        if (rc) {
            check(rc == WM_ECORRUPT && err[0]);
            continue;
        }
        rows += blk.rows;
        for (uint32_t i = 0; i < blk.rows; i++) {
            check(wm_part_event_name(p, blk.event[i]) != NULL);
            sink += blk.user[i] + (uint64_t)blk.time[i] + blk.seq[i];
        }
        for (uint32_t c = 0; c < in.cols; c++) {
            wm_acolumn_t col;
            err[0] = 0;
            rc = wm_part_read_col(r, c, &col, err, sizeof err);
            check(!must_read || rc == 0);
            if (rc) {
                check(rc == WM_ECORRUPT && err[0]);
                continue;
            }
            for (uint32_t i = 0; i < blk.rows; i++) {
                if (!wm_acol_has(&col, i))
                    continue;
                uint32_t len;
                char text[64];
                switch (col.type) {
                case WM_ACOL_NUMBER:
                    sink += (uint64_t)(col.num[i] == col.num[i]);
                    break;
                case WM_ACOL_STRING:
                case WM_ACOL_JSON:
                    check(wm_part_col_str(p, c, col.code[i], &len) != NULL);
                    break;
                case WM_ACOL_BOOL:
                    sink += col.boolean[i];
                    break;
                case WM_ACOL_DATETIME:
                    check(col.code[i] <= 2);
                    sink += wm_acol_datetime_text(col.num[i], col.code[i], text, sizeof text);
                    break;
                case WM_ACOL_LIST:
                    for (uint32_t k = 0; k < col.list_len[i]; k++)
                        check(wm_part_col_str(p, c, col.list_codes[col.code[i] + k], &len) != NULL);
                    break;
                }
            }
        }
    }
    check(!must_read || rows == in.rows);
    wm_part_reader_free(r);
    (void)sink;
}

static void one(const uint8_t *data, size_t size)
{
    if (ftruncate(fd, 0) || pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();
    wm_part_t *p = NULL;
    char err[512] = "";
    int rc = wm_part_open(path, &p, err, sizeof err);
    if (rc) {
        check((rc == WM_ECORRUPT || rc == WM_ENOMEM) && p == NULL);
        check(rc == WM_ENOMEM || err[0]);
        return;
    }
    err[0] = 0;
    rc = wm_part_verify(p, err, sizeof err);
    check(rc == 0 || ((rc == WM_ECORRUPT && err[0]) || rc == WM_ENOMEM));
    read_all(p, rc == 0);
    wm_part_close(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fd < 0) {
        fd = memfd_create("wm-fuzz-part", MFD_CLOEXEC);
        if (fd < 0)
            abort();
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    one(data, size);
    if (!size)
        return 0;
    unsigned char *copy = malloc(size);
    memcpy(copy, data, size);
    pw_seal_all(copy, size);
    if (memcmp(copy, data, size))
        one(copy, size);
    free(copy);
    return 0;
}
