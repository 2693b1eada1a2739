/*
 * test_store.c - one partition's analytics directory: compaction of a real
 * log's durable tail (track events become rows, merges are recorded, other
 * records are skipped), the manifest across reopen, merges of small parts
 * and merge_all, the sweep of unlisted files, a corrupt manifest refused,
 * snapshots outliving the parts a merge replaced, and wm_astore_check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "analytics/an_internal.h"
#include "an_helpers.h"
#include "store/payload.h"
#include "waymark/log.h"
#include "waymark/record.h"
#include "../../fuzz/part_reader/part_walk.h"

typedef struct fx {
    char dir[512];
    char logdir[600], an[600];
    wm_log_t *log;
    an_rows_t want;       /* expected lines of every track event appended */
} fx_t;

static void open_log(fx_t *fx)
{
    wm_log_opts_t o = {.dir = fx->logdir, .fsync_mode = WM_FSYNC_NEVER};
    assert_int_equal(wm_log_open(&o, &fx->log), 0);
}

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    an_mkdtemp(fx->dir, sizeof fx->dir, "astore");
    snprintf(fx->logdir, sizeof fx->logdir, "%s/log", fx->dir);
    snprintf(fx->an, sizeof fx->an, "%s/an", fx->dir);
    open_log(fx);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    wm_log_close(fx->log);
    an_rmrf(fx->dir);
    an_rows_free(&fx->want);
    free(fx);
    return 0;
}

static uint64_t append(fx_t *fx, const wm_payload_hdr_t *h, const char *json)
{
    size_t jl = strlen(json);
    unsigned char *p = malloc(sizeof *h + jl);
    memcpy(p, h, sizeof *h);
    memcpy(p + sizeof *h, json, jl);
    wm_log_pos_t pos;
    assert_int_equal(wm_log_append(fx->log, p, (uint32_t)(sizeof *h + jl), &pos), 0);
    free(p);
    return pos.seq;
}

/* A track event with one number property "k" = k (and "name" = k when
 * name is given); its expected line goes to fx->want. */
static uint64_t track(fx_t *fx, uint64_t user, int64_t t, const char *ev, const char *name, int64_t k)
{
    wm_payload_hdr_t h = {.kind = WM_PAYLOAD_RECORD, .rec_type = WM_REC_TRACK, .user_id = user, .time_ms = t};
    char json[512];
    if (name)
        snprintf(json, sizeof json,
                 "{\"type\":\"track\",\"event\":\"%s\",\"time\":%lld,\"properties\":{\"k\":%lld,\"%s\":%lld}}", ev,
                 (long long)t, (long long)k, name, (long long)k);
    else
        snprintf(json, sizeof json, "{\"type\":\"track\",\"event\":\"%s\",\"time\":%lld,\"properties\":{\"k\":%lld}}",
                 ev, (long long)t, (long long)k);
    uint64_t seq = append(fx, &h, json);
    char *e[2];
    size_t n = 0;
    e[n++] = an_entry_num("k", (double)k);
    if (name)
        e[n++] = an_entry_num(name, (double)k);
    an_rows_push(&fx->want, an_row_line(user, t, seq, ev, e, n));
    return seq;
}

static void others(fx_t *fx, uint64_t from, uint64_t into)
{
    wm_payload_hdr_t h = {.kind = WM_PAYLOAD_RECORD, .rec_type = WM_REC_PROFILE_SET, .user_id = into, .time_ms = 5};
    append(fx, &h, "{\"type\":\"profile_set\",\"properties\":{\"a\":1}}");
    wm_payload_hdr_t m = {.kind = WM_PAYLOAD_MERGE, .user_id = into, .from_user = from, .time_ms = 6};
    append(fx, &m, "{\"event\":\"$SignUp\",\"distinct_id\":\"x\",\"time\":6}");
    wm_payload_hdr_t c = {.kind = WM_PAYLOAD_COMMAND, .user_id = into};
    append(fx, &c, "{\"cmd\":\"x\"}");
    /* a track record that does not parse: skipped, counted, not fatal */
    wm_payload_hdr_t bad = {.kind = WM_PAYLOAD_RECORD, .rec_type = WM_REC_TRACK, .user_id = into};
    append(fx, &bad, "{not json");
}

static uint64_t sync_log(fx_t *fx)
{
    uint64_t d;
    assert_int_equal(wm_log_sync(fx->log, &d), 0);
    return d;
}

/* Every row of the store's current version, sorted. */
static void store_lines(wm_astore_t *s, an_rows_t *out)
{
    wm_aversion_t *v = wm__astore_snapshot(s);
    char err[512];
    for (uint32_t i = 0; i < v->n; i++) {
        assert_int_equal(wm_part_verify(v->parts[i]->part, err, sizeof err), 0);
        assert_int_equal(an_part_lines(v->parts[i]->part, out, err, sizeof err), 0);
    }
    wm__aversion_release(v);
    an_rows_sort(out);
}

static void assert_store_rows(fx_t *fx, wm_astore_t *s)
{
    an_rows_t got = {0};
    store_lines(s, &got);
    an_rows_sort(&fx->want);
    for (size_t i = 0; i < got.n && i < fx->want.n; i++)
        if (strcmp(got.row[i], fx->want.row[i])) {
            print_error("row %zu:\n  got  %s\n  want %s\n", i, got.row[i], fx->want.row[i]);
            fail();
        }
    assert_int_equal(got.n, fx->want.n);
    an_rows_free(&got);
}

/* Names in the directory other than MANIFEST, sorted, joined by ' '. */
static void dir_names(const char *dir, char *out, size_t cap)
{
    an_rows_t names = {0};
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.')
            an_rows_push(&names, strdup(e->d_name));
    if (d)
        closedir(d);
    an_rows_sort(&names);
    out[0] = 0;
    for (size_t i = 0; i < names.n; i++) {
        strncat(out, names.row[i], cap - strlen(out) - 2);
        strncat(out, " ", cap - strlen(out) - 1);
    }
    an_rows_free(&names);
}

static char *manifest_text(fx_t *fx)
{
    char path[700];
    snprintf(path, sizeof path, "%s/MANIFEST", fx->an);
    size_t n;
    unsigned char *d = an_read_file(path, &n);
    if (!d)
        return NULL;
    char *s = malloc(n + 1);
    memcpy(s, d, n);
    s[n] = 0;
    free(d);
    return s;
}

/* ---- tests ----------------------------------------------------------- */

static void test_open_empty(void **state)
{
    fx_t *fx = *state;
    wm_astore_t *s;
    assert_int_equal(wm_astore_open(fx->an, 3, &s), 0);
    struct stat st;
    assert_int_equal(stat(fx->an, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    wm_astore_stats_t stt;
    wm_astore_stats(s, &stt);
    assert_int_equal(stt.parts + stt.rows + stt.compacted_seq + stt.compactions + stt.merges, 0);
    assert_int_equal(wm__astore_partition(s), 3);
    bool did = true;
    assert_int_equal(wm_astore_compact(s, fx->log, 0, &did), 0);
    assert_false(did);
    assert_int_equal(wm_astore_merge_all(s), 0);
    wm_astore_close(s);
    assert_int_equal(wm_astore_open(fx->an, 3, &s), 0);
    assert_int_equal(wm_astore_compacted_seq(s), 0);
    wm_buf_t rep;
    wm_buf_init(&rep, 0);
    uint64_t faults = 9;
    assert_int_equal(wm_astore_check(fx->an, &rep, &faults), 0);
    assert_int_equal(faults, 0);
    wm_buf_putc(&rep, 0);
    assert_non_null(strstr(rep.data, "no manifest"));
    wm_buf_release(&rep);
    wm_astore_close(s);
}

static void test_compact_and_reopen(void **state)
{
    fx_t *fx = *state;
    for (int i = 0; i < 100; i++)
        track(fx, (uint64_t)(i % 7) + 1, 1000 - i, i % 2 ? "A" : "B", NULL, i);
    others(fx, 100, 1);
    others(fx, 101, 2);
    track(fx, 1, 5, "A", "late", -1);
    uint64_t last = sync_log(fx);
    /* appended but not synced: not durable, not compacted */
    wm_payload_hdr_t h = {.kind = WM_PAYLOAD_RECORD, .rec_type = WM_REC_TRACK, .user_id = 1};
    append(fx, &h, "{\"event\":\"Unsynced\",\"properties\":{}}");

    wm_astore_t *s;
    assert_int_equal(wm_astore_open(fx->an, 0, &s), 0);
    bool did = false;
    assert_int_equal(wm_astore_compact(s, fx->log, 0, &did), 0);
    assert_true(did);
    assert_int_equal(wm_astore_compacted_seq(s), last);
    wm_astore_stats_t st;
    wm_astore_stats(s, &st);
    assert_int_equal(st.parts, 1);
    assert_int_equal(st.rows, 101);
    assert_int_equal(st.compactions, 1);
    assert_store_rows(fx, s);
    wm_aversion_t *v = wm__astore_snapshot(s);
    assert_int_equal(v->n, 1);
    const uint64_t *pairs;
    uint32_t np;
    wm_part_merges(v->parts[0]->part, &pairs, &np);
    assert_int_equal(np, 2);
    assert_int_equal(pairs[0], 100);
    assert_int_equal(pairs[1], 1);
    assert_int_equal(pairs[2], 101);
    assert_int_equal(pairs[3], 2);
    wm__aversion_release(v);

    /* nothing new: nothing written */
    char before[4096], after[4096];
    dir_names(fx->an, before, sizeof before);
    char *m1 = manifest_text(fx);
    did = true;
    assert_int_equal(wm_astore_compact(s, fx->log, 0, &did), 0);
    assert_false(did);
    dir_names(fx->an, after, sizeof after);
    assert_string_equal(before, after);
    assert_string_equal(before, "000000000001.part MANIFEST ");
    char *m2 = manifest_text(fx);
    assert_string_equal(m1, m2);
    free(m2);
    wm_astore_close(s);

    /* reopen: the manifest lists the part with its figures */
    char line[256];
    snprintf(line, sizeof line, "waymark-manifest 1\ncompacted %llu\npart 000000000001.part 101 1 %llu ",
             (unsigned long long)last, (unsigned long long)last);
    assert_memory_equal(m1, line, strlen(line));
    assert_non_null(strstr(m1, "\ncrc "));
    free(m1);
    assert_int_equal(wm_astore_open(fx->an, 0, &s), 0);
    assert_int_equal(wm_astore_compacted_seq(s), last);
    assert_store_rows(fx, s);

    /* below min_events nothing happens; then it does */
    sync_log(fx);   /* the unsynced record */
    an_rows_push(&fx->want, an_row_line(1, 0, last + 1, "Unsynced", NULL, 0));
    for (int i = 0; i < 5; i++)
        track(fx, 9, i, "C", NULL, i);
    uint64_t last2 = sync_log(fx);
    assert_int_equal(wm_astore_compact(s, fx->log, 10, &did), 0);
    assert_false(did);
    assert_int_equal(wm_astore_compacted_seq(s), last);
    assert_int_equal(wm_astore_compact(s, fx->log, 6, &did), 0);
    assert_true(did);
    assert_int_equal(wm_astore_compacted_seq(s), last2);
    wm_astore_stats(s, &st);
    assert_int_equal(st.parts, 2);
    assert_store_rows(fx, s);
    wm_astore_close(s);

    /* records that are not events still advance compacted_seq, no part */
    assert_int_equal(wm_astore_open(fx->an, 0, &s), 0);
    others(fx, 5, 6);
    wm_log_sync(fx->log, NULL);
    wm_payload_hdr_t p = {.kind = WM_PAYLOAD_RECORD, .rec_type = WM_REC_PROFILE_SET, .user_id = 1};
    uint64_t last3 = append(fx, &p, "{\"properties\":{}}");
    sync_log(fx);
    assert_int_equal(wm_astore_compact(s, fx->log, 0, &did), 0);
    assert_true(did);
    assert_int_equal(wm_astore_compacted_seq(s), last3);
    wm_astore_stats(s, &st);
    assert_int_equal(st.parts, 3);   /* the merge is kept in a part of no rows */
    /* merging keeps every row and every identity merge, also of the part
     * without rows */
    assert_int_equal(wm_astore_merge_all(s), 0);
    wm_astore_stats(s, &st);
    assert_int_equal(st.parts, 1);
    assert_int_equal(st.rows, 107);
    assert_int_equal(st.compacted_seq, last3);
    assert_store_rows(fx, s);
    v = wm__astore_snapshot(s);
    wm_part_merges(v->parts[0]->part, &pairs, &np);
    assert_int_equal(np, 3);
    assert_int_equal(pairs[4], 5);
    assert_int_equal(pairs[5], 6);
    wm__aversion_release(v);
    wm_astore_close(s);
}

/* Compacts batch b: 10 events, with property names unique to it when wide. */
static void batch(fx_t *fx, wm_astore_t *s, int b, int wide)
{
    for (int i = 0; i < 10 + wide; i++) {
        char name[32];
        snprintf(name, sizeof name, "w%03d_%03d", b, i);
        track(fx, (uint64_t)(b * 7 + i) % 13, b * 100 + i, "E", wide ? name : NULL, b * 1000 + i);
    }
    sync_log(fx);
    bool did;
    assert_int_equal(wm_astore_compact(s, fx->log, 0, &did), 0);
    assert_true(did);
}

static void test_merges(void **state)
{
    fx_t *fx = *state;
    wm_astore_t *s;
    assert_int_equal(wm_astore_open(fx->an, 0, &s), 0);
    for (int b = 0; b < WM_ASTORE_PARTS_MAX; b++)
        batch(fx, s, b, 0);
    wm_astore_stats_t st;
    wm_astore_stats(s, &st);
    assert_int_equal(st.parts, WM_ASTORE_PARTS_MAX);
    assert_int_equal(st.merges, 0);
    /* the ninth part triggers a merge */
    batch(fx, s, WM_ASTORE_PARTS_MAX, 0);
    wm_astore_stats(s, &st);
    assert_int_equal(st.parts, WM_ASTORE_PARTS_MAX);
    assert_int_equal(st.merges, 1);
    assert_int_equal(st.rows, 90);
    assert_store_rows(fx, s);
    for (int b = WM_ASTORE_PARTS_MAX + 1; b < 20; b++)
        batch(fx, s, b, 0);
    wm_astore_stats(s, &st);
    assert_true(st.parts <= WM_ASTORE_PARTS_MAX);
    assert_store_rows(fx, s);
    uint64_t cseq = st.compacted_seq;
    wm_astore_close(s);

    /* reopen, merge everything into one part */
    assert_int_equal(wm_astore_open(fx->an, 0, &s), 0);
    assert_int_equal(wm_astore_merge_all(s), 0);
    wm_astore_stats(s, &st);
    assert_int_equal(st.parts, 1);
    assert_int_equal(st.rows, 200);
    assert_int_equal(st.compacted_seq, cseq);
    assert_store_rows(fx, s);
    assert_int_equal(wm_astore_merge_all(s), 0);   /* one part: nothing to do */
    wm_astore_close(s);
    /* the merged-away files are gone */
    char names[4096];
    dir_names(fx->an, names, sizeof names);
    assert_int_equal(strchr(names, ' ') - names, (long)strlen("000000000000.part"));
    assert_non_null(strstr(names, ".part MANIFEST "));
    assert_int_equal(strlen(names), strlen("000000000000.part MANIFEST "));
    assert_int_equal(wm_astore_open(fx->an, 0, &s), 0);
    assert_store_rows(fx, s);
    wm_astore_close(s);
}

/* Parts whose property names together pass the column limit still merge:
 * the columns past it go to "$rest". */
static void test_merge_wide(void **state)
{
    fx_t *fx = *state;
    wm_astore_t *s;
    assert_int_equal(wm_astore_open(fx->an, 0, &s), 0);
    for (int b = 0; b <= WM_ASTORE_PARTS_MAX; b++)
        batch(fx, s, b, 190);   /* 9 x 200 distinct names */
    wm_astore_stats_t st;
    wm_astore_stats(s, &st);
    assert_int_equal(st.parts, WM_ASTORE_PARTS_MAX);
    assert_int_equal(st.rows, 9 * 200);
    assert_int_equal(wm_astore_merge_all(s), 0);
    wm_astore_stats(s, &st);
    assert_int_equal(st.parts, 1);
    assert_int_equal(st.rows, 9 * 200);
    an_rows_t got = {0};
    store_lines(s, &got);
    assert_int_equal(got.n, fx->want.n);
    /* every value is in its column or, past the limit, in "$rest" */
    an_rows_sort(&fx->want);
    size_t in_rest = 0;
    for (size_t i = 0; i < got.n; i++) {
        if (!strcmp(got.row[i], fx->want.row[i]))
            continue;
        /* want: ...|k/N=v;wBBB_III/N=v ; got: ...|$rest/S=wBBB_III=v;k/N=v */
        char *w = strrchr(fx->want.row[i], ';');
        assert_non_null(w);
        char name[32];
        long long v;
        assert_int_equal(sscanf(w + 1, "%31[^/]/N=%lld", name, &v), 2);
        char expect[4096];
        size_t pre = (size_t)(strrchr(fx->want.row[i], '|') - fx->want.row[i]) + 1;
        snprintf(expect, sizeof expect, "%.*s$rest/S=%s=%lld;%.*s", (int)pre, fx->want.row[i], name, v,
                 (int)(w - fx->want.row[i] - pre), fx->want.row[i] + pre);
        assert_string_equal(got.row[i], expect);
        in_rest++;
    }
    assert_true(in_rest > 0);
    assert_true(in_rest < got.n);
    an_rows_free(&got);
    wm_aversion_t *v = wm__astore_snapshot(s);
    wm_part_info_t in;
    wm_part_get_info(v->parts[0]->part, &in);
    assert_int_equal(in.cols, WM_PART_COLS_MAX);
    wm__aversion_release(v);
    wm_astore_close(s);
}

static void test_sweep(void **state)
{
    fx_t *fx = *state;
    wm_astore_t *s;
    assert_int_equal(wm_astore_open(fx->an, 0, &s), 0);
    batch(fx, s, 0, 0);
    wm_astore_close(s);
    static const char *strays[] = {"000000000099.part", "000000000002.part.tmp", "MANIFEST.tmp", "junk"};
    for (size_t i = 0; i < sizeof strays / sizeof *strays; i++) {
        char p[700];
        snprintf(p, sizeof p, "%s/%s", fx->an, strays[i]);
        assert_int_equal(an_write_file(p, "x", 1), 0);
    }
    assert_int_equal(wm_astore_open(fx->an, 0, &s), 0);
    char names[4096];
    dir_names(fx->an, names, sizeof names);
    assert_string_equal(names, "000000000001.part MANIFEST ");
    assert_store_rows(fx, s);
    /* the next part is not named after a swept one (names only grow) */
    batch(fx, s, 1, 0);
    dir_names(fx->an, names, sizeof names);
    assert_string_equal(names, "000000000001.part 000000000002.part MANIFEST ");
    wm_astore_close(s);
}

/* Runs f with stderr captured into out. */
static int capture_stderr(char *out, size_t cap, int (*f)(void *), void *arg)
{
    fflush(stderr);
    char path[] = "/tmp/wm-test-stderr-XXXXXX";
    int fd = mkstemp(path);
    int saved = dup(2);
    dup2(fd, 2);
    int rc = f(arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    lseek(fd, 0, SEEK_SET);
    ssize_t n = read(fd, out, cap - 1);
    out[n > 0 ? n : 0] = 0;
    close(fd);
    unlink(path);
    return rc;
}

static int try_open(void *arg)
{
    fx_t *fx = arg;
    wm_astore_t *s = NULL;
    int rc = wm_astore_open(fx->an, 0, &s);
    if (!rc)
        wm_astore_close(s);
    return rc;
}

static void test_corrupt_manifest(void **state)
{
    fx_t *fx = *state;
    wm_astore_t *s;
    assert_int_equal(wm_astore_open(fx->an, 0, &s), 0);
    batch(fx, s, 0, 0);
    wm_astore_close(s);
    char path[700];
    snprintf(path, sizeof path, "%s/MANIFEST", fx->an);
    size_t n;
    unsigned char *good = an_read_file(path, &n);
    char msg[4096];
    /* a flipped byte anywhere, or a cut, is refused and the part kept */
    size_t cuts[] = {n / 3, n - 2, 0};
    for (size_t i = 0; i < n + 3; i++) {
        unsigned char *d = malloc(n);
        memcpy(d, good, n);
        size_t len = n;
        if (i < n)
            d[i] ^= 0x02;
        else
            len = cuts[i - n];
        assert_int_equal(an_write_file(path, d, len), 0);
        free(d);
        int rc = capture_stderr(msg, sizeof msg, try_open, fx);
        if (i < n && good[i] == '\n' && i == n - 1) {
            /* the final newline is outside the checksum */
            continue;
        }
        if (rc != WM_ECORRUPT || !strstr(msg, "MANIFEST is corrupt") || !strstr(msg, fx->an)) {
            print_error("damage %zu: rc %d, stderr \"%s\"\n", i, rc, msg);
            fail();
        }
        wm_buf_t rep;
        wm_buf_init(&rep, 0);
        uint64_t faults = 0;
        assert_int_equal(wm_astore_check(fx->an, &rep, &faults), 0);
        assert_int_equal(faults, 1);
        wm_buf_putc(&rep, 0);
        assert_non_null(strstr(rep.data, "MANIFEST: corrupt"));
        wm_buf_release(&rep);
        char names[4096];
        dir_names(fx->an, names, sizeof names);
        assert_non_null(strstr(names, "000000000001.part"));
    }
    assert_int_equal(an_write_file(path, good, n), 0);
    assert_int_equal(wm_astore_open(fx->an, 0, &s), 0);
    assert_store_rows(fx, s);
    wm_astore_close(s);
    free(good);
}

static void test_snapshot_outlives_merge(void **state)
{
    fx_t *fx = *state;
    wm_astore_t *s;
    assert_int_equal(wm_astore_open(fx->an, 0, &s), 0);
    for (int b = 0; b < 5; b++)
        batch(fx, s, b, 0);
    wm_aversion_t *v = wm__astore_snapshot(s);
    assert_int_equal(v->n, 5);
    an_rows_t before = {0};
    char err[512];
    for (uint32_t i = 0; i < v->n; i++)
        assert_int_equal(an_part_lines(v->parts[i]->part, &before, err, sizeof err), 0);
    assert_int_equal(wm_astore_merge_all(s), 0);
    /* the snapshot's files are unlinked, their mappings still read */
    for (uint32_t i = 0; i < v->n; i++)
        assert_int_equal(access(wm__part_path(v->parts[i]->part), F_OK), -1);
    an_rows_t after = {0};
    for (uint32_t i = 0; i < v->n; i++) {
        assert_int_equal(wm_part_verify(v->parts[i]->part, err, sizeof err), 0);
        assert_int_equal(an_part_lines(v->parts[i]->part, &after, err, sizeof err), 0);
    }
    assert_int_equal(before.n, 50);
    assert_int_equal(after.n, 50);
    for (size_t i = 0; i < before.n; i++)
        assert_string_equal(before.row[i], after.row[i]);
    /* a second snapshot sees the merged part; the old one is released
     * after the store is closed (it holds its own references) */
    wm_aversion_t *v2 = wm__astore_snapshot(s);
    assert_int_equal(v2->n, 1);
    wm__aversion_release(v2);
    assert_store_rows(fx, s);
    wm_astore_close(s);
    an_rows_t again = {0};
    for (uint32_t i = 0; i < v->n; i++)
        assert_int_equal(an_part_lines(v->parts[i]->part, &again, err, sizeof err), 0);
    assert_int_equal(again.n, 50);
    wm__aversion_release(v);
    an_rows_free(&before);
    an_rows_free(&after);
    an_rows_free(&again);
}

static void test_check_reports_block(void **state)
{
    fx_t *fx = *state;
    wm_astore_t *s;
    assert_int_equal(wm_astore_open(fx->an, 0, &s), 0);
    batch(fx, s, 0, 0);
    batch(fx, s, 1, 0);
    wm_astore_close(s);
    wm_buf_t rep;
    wm_buf_init(&rep, 0);
    uint64_t faults = 9;
    assert_int_equal(wm_astore_check(fx->an, &rep, &faults), 0);
    assert_int_equal(faults, 0);
    wm_buf_putc(&rep, 0);
    assert_non_null(strstr(rep.data, "000000000001.part: ok, 10 rows, 1 blocks, 1 columns"));
    assert_non_null(strstr(rep.data, "000000000002.part: ok"));
    wm_buf_reset(&rep);

    char path[700];
    snprintf(path, sizeof path, "%s/000000000002.part", fx->an);
    size_t n;
    unsigned char *d = an_read_file(path, &n);
    pw_entry_t e = {0};
    assert_true(pw_find(d, n, 0, 4, &e));   /* column "k" */
    free(d);
    an_flip_byte(path, (size_t)(e.off + e.clen - 1));
    assert_int_equal(wm_astore_check(fx->an, &rep, &faults), 0);
    assert_int_equal(faults, 1);
    wm_buf_putc(&rep, 0);
    assert_non_null(strstr(rep.data, "000000000001.part: ok"));
    assert_non_null(strstr(rep.data, "000000000002.part: block 0 column k: checksum mismatch"));
    wm_buf_reset(&rep);
    /* the store still opens (the footer is fine); a query would skip the block */
    assert_int_equal(wm_astore_open(fx->an, 0, &s), 0);
    wm_astore_close(s);

    /* a listed part that is gone: check reports it, open refuses */
    unlink(path);
    assert_int_equal(wm_astore_check(fx->an, &rep, &faults), 0);
    assert_int_equal(faults, 1);
    wm_buf_putc(&rep, 0);
    assert_non_null(strstr(rep.data, "000000000002.part: cannot open"));
    wm_buf_release(&rep);
    char msg[4096];
    assert_int_not_equal(capture_stderr(msg, sizeof msg, try_open, fx), 0);
    assert_non_null(strstr(msg, "000000000002.part"));
}

/* Stores of different partitions opened on several threads at once (the
 * manifest parser must keep no state outside the call). */
typedef struct opener {
    char dir[700];
    int failures;
} opener_t;

static void *open_loop(void *arg)
{
    opener_t *o = arg;
    for (int i = 0; i < 300; i++) {
        wm_astore_t *s;
        if (wm_astore_open(o->dir, 0, &s)) {
            o->failures++;
            continue;
        }
        wm_astore_stats_t st;
        wm_astore_stats(s, &st);
        o->failures += st.parts != 6;
        wm_astore_close(s);
    }
    return NULL;
}

static void test_parallel_open(void **state)
{
    fx_t *fx = *state;
    wm_astore_t *s;
    assert_int_equal(wm_astore_open(fx->an, 0, &s), 0);
    for (int b = 0; b < 6; b++)
        batch(fx, s, b, 0);
    wm_astore_close(s);
    /* three more copies of the directory */
    opener_t o[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        snprintf(o[i].dir, sizeof o[i].dir, "%s/an%d", fx->dir, i);
        o[i].failures = 0;
        assert_int_equal(mkdir(o[i].dir, 0755), 0);
        DIR *d = opendir(fx->an);
        struct dirent *e;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.') {
                char a[4096], b2[4096];
                if (snprintf(a, sizeof a, "%s/%s", fx->an, e->d_name) >= (int)sizeof a ||
                    snprintf(b2, sizeof b2, "%s/%s", o[i].dir, e->d_name) >= (int)sizeof b2)
                    fail();
                size_t n;
                unsigned char *data = an_read_file(a, &n);
                assert_int_equal(an_write_file(b2, data, n), 0);
                free(data);
            }
        closedir(d);
    }
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, open_loop, &o[i]), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(o[i].failures, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compact_and_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_merges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_merge_wide, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_manifest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_outlives_merge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_reports_block, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parallel_open, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
