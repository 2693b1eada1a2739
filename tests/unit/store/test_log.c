/*
 * test_log.c - the event log: round trips, rolling, positioned reads,
 * iteration from any sequence, recovery from every kind of damaged tail, the
 * sticky error state (injected faults and a real short write + EFBIG from
 * RLIMIT_FSIZE), and a reader tailing a live writer on another thread.
 *
 * Each test gets a fresh directory under $TMPDIR (or /tmp).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/log_internal.h"
#include "waymark/alloc.h"
#include "waymark/error.h"
#include "waymark/limits.h"
#include "waymark/log.h"

#define HDR 20u

typedef struct fixture {
    char dir[512];
} fixture_t;

/* ---- helpers ---------------------------------------------------------- */

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    const char *tmp = getenv("TMPDIR");
    snprintf(fx->dir, sizeof fx->dir, "%s/wm-test-log-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(fx->dir))
        return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    DIR *d = opendir(fx->dir);
    struct dirent *e;
    char p[1024];
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", fx->dir, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

/* Deterministic payload for a sequence: length 1..300, content from seq. */
static uint32_t payload_for(uint64_t seq, uint8_t *out)
{
    uint32_t len = 1 + (uint32_t)((seq * 37) % 300);
    for (uint32_t i = 0; i < len; i++)
        out[i] = (uint8_t)(seq * 131 + i);
    return len;
}

static void assert_payload(uint64_t seq, const void *p, uint32_t len)
{
    uint8_t want[300];
    uint32_t wlen = payload_for(seq, want);
    assert_int_equal(len, wlen);
    assert_memory_equal(p, want, wlen);
}

static wm_log_t *open_log(const char *dir, wm_fsync_mode_t mode, uint64_t file_bytes)
{
    wm_log_opts_t o = {.dir = dir, .fsync_mode = mode, .file_bytes = file_bytes};
    wm_log_t *log = NULL;
    assert_int_equal(wm_log_open(&o, &log), 0);
    assert_non_null(log);
    return log;
}

/* Appends seqs last+1 .. last+n with payload_for(); positions into pos[seq]. */
static void append_n(wm_log_t *log, uint64_t n, wm_log_pos_t *pos)
{
    uint8_t buf[300];
    for (uint64_t i = 0; i < n; i++) {
        uint64_t seq = wm_log_last_seq(log) + 1;
        wm_log_pos_t p;
        assert_int_equal(wm_log_append(log, buf, payload_for(seq, buf), &p), 0);
        assert_int_equal(p.seq, seq);
        if (pos)
            pos[seq] = p;
    }
}

static uint64_t sync_ok(wm_log_t *log)
{
    uint64_t d = 0;
    assert_int_equal(wm_log_sync(log, &d), 0);
    return d;
}

/* Iterates from `from` to the end, checking order and content; returns the
 * number of records and the first seq seen. */
static uint64_t iterate_check(wm_log_t *log, uint64_t from, uint64_t *first_seen)
{
    wm_log_iter_t *it = NULL;
    assert_int_equal(wm_log_iter_open(log, from, &it), 0);
    uint64_t count = 0, expect = 0;
    wm_log_pos_t pos;
    const void *p;
    uint32_t len;
    int rc;
    while ((rc = wm_log_iter_next(it, &pos, &p, &len)) == 1) {
        if (count == 0) {
            expect = pos.seq;
            if (first_seen)
                *first_seen = pos.seq;
        }
        assert_int_equal(pos.seq, expect);
        assert_payload(pos.seq, p, len);
        expect++;
        count++;
    }
    assert_int_equal(rc, 0);
    wm_log_iter_close(it);
    return count;
}

/* Path of the file file with the highest first seq. */
static void last_file(const char *dir, char *out, size_t outsz)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    char best[256] = "";
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".seg") && strcmp(e->d_name, best) > 0)
            snprintf(best, sizeof best, "%s", e->d_name);
    closedir(d);
    assert_true(best[0] != '\0');
    snprintf(out, outsz, "%s/%s", dir, best);
}

static off_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

static void append_bytes(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    close(fd);
}

static void flip_byte(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, off), 1);
    b ^= 0x5A;
    assert_int_equal(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

static uint64_t frame_bytes(uint64_t seq)
{
    uint8_t buf[300];
    return HDR + payload_for(seq, buf);
}

/* ---- basic behaviour -------------------------------------------------- */

static void test_fsync_mode_names(void **state)
{
    (void)state;
    wm_fsync_mode_t m;
    assert_int_equal(wm_fsync_mode_parse("always", &m), 0);
    assert_int_equal(m, WM_FSYNC_ALWAYS);
    assert_int_equal(wm_fsync_mode_parse("interval", &m), 0);
    assert_int_equal(m, WM_FSYNC_INTERVAL);
    assert_int_equal(wm_fsync_mode_parse("never", &m), 0);
    assert_int_equal(m, WM_FSYNC_NEVER);
    assert_int_equal(wm_fsync_mode_parse("sometimes", &m), WM_EINVAL);
    assert_int_equal(wm_fsync_mode_parse(NULL, &m), WM_EINVAL);
    assert_string_equal(wm_fsync_mode_name(WM_FSYNC_INTERVAL), "interval");
    assert_string_equal(wm_fsync_mode_name((wm_fsync_mode_t)42), "unknown");
}

static void test_bad_opts(void **state)
{
    fixture_t *fx = *state;
    wm_log_t *log = NULL;
    assert_int_equal(wm_log_open(NULL, &log), WM_EINVAL);
    wm_log_opts_t o = {.dir = NULL};
    assert_int_equal(wm_log_open(&o, &log), WM_EINVAL);
    o.dir = fx->dir;
    o.fsync_mode = (wm_fsync_mode_t)7;
    assert_int_equal(wm_log_open(&o, &log), WM_EINVAL);
    assert_null(log);
}

static void test_empty_log(void **state)
{
    fixture_t *fx = *state;
    wm_log_t *log = open_log(fx->dir, WM_FSYNC_ALWAYS, 0);
    assert_int_equal(wm_log_first_seq(log), 0);
    assert_int_equal(wm_log_last_seq(log), 0);
    assert_int_equal(sync_ok(log), 0);
    assert_int_equal(iterate_check(log, 0, NULL), 0);
    wm_log_stats_t st;
    wm_log_stats(log, &st);
    assert_int_equal(st.files, 1);
    assert_int_equal(st.syncs, 0); /* nothing written, nothing to fdatasync */
    wm_log_close(log);
    /* An empty log reopens as an empty log. */
    log = open_log(fx->dir, WM_FSYNC_ALWAYS, 0);
    assert_int_equal(wm_log_last_seq(log), 0);
    wm_log_close(log);
}

static void test_roundtrip_reopen(void **state)
{
    fixture_t *fx = *state;
    wm_log_t *log = open_log(fx->dir, WM_FSYNC_ALWAYS, 0);
    append_n(log, 500, NULL);
    assert_int_equal(wm_log_last_seq(log), 500);
    assert_int_equal(wm_log_durable_seq(log), 0);
    assert_int_equal(sync_ok(log), 500);
    assert_int_equal(wm_log_durable_seq(log), 500);
    wm_log_stats_t st;
    wm_log_stats(log, &st);
    assert_int_equal(st.appended_records, 500);
    assert_int_equal(st.syncs, 1); /* group commit: one fdatasync for 500 */
    assert_true(st.sync_ns_max <= st.sync_ns_total);
    wm_log_close(log);

    log = open_log(fx->dir, WM_FSYNC_ALWAYS, 0);
    assert_int_equal(wm_log_first_seq(log), 1);
    assert_int_equal(wm_log_last_seq(log), 500);
    assert_int_equal(wm_log_durable_seq(log), 500);
    wm_log_stats(log, &st);
    assert_int_equal(st.truncated_bytes_on_open, 0);
    uint64_t first = 0;
    assert_int_equal(iterate_check(log, 1, &first), 500);
    assert_int_equal(first, 1);
    append_n(log, 10, NULL);
    assert_int_equal(sync_ok(log), 510);
    assert_int_equal(iterate_check(log, 0, NULL), 510);
    wm_log_close(log);
}

static void test_close_flushes_buffer(void **state)
{
    fixture_t *fx = *state;
    wm_log_t *log = open_log(fx->dir, WM_FSYNC_ALWAYS, 0);
    append_n(log, 7, NULL);
    wm_log_close(log);
    log = open_log(fx->dir, WM_FSYNC_ALWAYS, 0);
    assert_int_equal(wm_log_last_seq(log), 7);
    assert_int_equal(iterate_check(log, 0, NULL), 7);
    wm_log_close(log);
}

static void test_readers_see_only_synced(void **state)
{
    fixture_t *fx = *state;
    wm_log_t *log = open_log(fx->dir, WM_FSYNC_ALWAYS, 0);
    wm_log_pos_t pos[40];
    append_n(log, 20, pos);
    sync_ok(log);
    append_n(log, 10, pos);
    /* 21..30 are buffered: invisible. */
    assert_int_equal(iterate_check(log, 0, NULL), 20);
    void *b = NULL;
    uint32_t len = 0;
    assert_int_equal(wm_log_read_at(log, &pos[25], &b, &len), WM_ENOTFOUND);
    sync_ok(log);
    assert_int_equal(iterate_check(log, 0, NULL), 30);
    assert_int_equal(wm_log_read_at(log, &pos[25], &b, &len), 0);
    assert_payload(25, b, len);
    wm_free(b);
    wm_log_close(log);
}

/* More than the 1 MiB write buffer without a sync: the overflow goes to the
 * file, yet readers see nothing until wm_log_sync publishes it. */
static void test_buffer_overflow_not_published(void **state)
{
    fixture_t *fx = *state;
    wm_log_t *log = open_log(fx->dir, WM_FSYNC_ALWAYS, 0);
    append_n(log, 10000, NULL); /* ~1.7 MB of frames */
    char last[600];
    last_file(fx->dir, last, sizeof last);
    assert_true(file_size(last) > 0);
    assert_int_equal(wm_log_durable_seq(log), 0);
    assert_int_equal(iterate_check(log, 0, NULL), 0);
    assert_int_equal(sync_ok(log), 10000);
    assert_int_equal(iterate_check(log, 0, NULL), 10000);
    wm_log_close(log);
}

/* ---- log files, iteration, positioned reads ---------------------------- */

#define ROLL_N 3000

static void check_iterate_from(wm_log_t *log, uint64_t total)
{
    const uint64_t froms[] = {0, 1, 2, 17, 499, 500, 501, 1234, total - 1, total};
    for (size_t i = 0; i < sizeof froms / sizeof froms[0]; i++) {
        uint64_t from = froms[i], first = 0;
        uint64_t start = from ? from : 1;
        assert_int_equal(iterate_check(log, from, &first), total - start + 1);
        assert_int_equal(first, start);
    }
    assert_int_equal(iterate_check(log, total + 1, NULL), 0);
    assert_int_equal(iterate_check(log, UINT64_MAX, NULL), 0);
}

static void test_roll_and_iterate(void **state)
{
    fixture_t *fx = *state;
    wm_log_t *log = open_log(fx->dir, WM_FSYNC_ALWAYS, 8192);
    static wm_log_pos_t pos[ROLL_N + 1];
    /* Sync in uneven groups so rolls land both inside and between groups. */
    for (uint64_t done = 0; done < ROLL_N;) {
        uint64_t n = 1 + (done * 7) % 97;
        if (n > ROLL_N - done)
            n = ROLL_N - done;
        append_n(log, n, pos);
        done += n;
        assert_int_equal(sync_ok(log), done);
    }
    wm_log_stats_t st;
    wm_log_stats(log, &st);
    assert_true(st.files > 20);
    /* Ordinals grow with sequence and start at offset 0 on each roll. */
    for (uint64_t s = 2; s <= ROLL_N; s++) {
        assert_true(pos[s].file >= pos[s - 1].file);
        if (pos[s].file != pos[s - 1].file)
            assert_int_equal(pos[s].offset, 0);
        else
            assert_int_equal(pos[s].offset, pos[s - 1].offset + frame_bytes(s - 1));
    }
    assert_int_equal(pos[ROLL_N].file, st.files - 1);
    check_iterate_from(log, ROLL_N);
    wm_log_close(log);

    /* The same after reopen, and log files honour the size bound. */
    log = open_log(fx->dir, WM_FSYNC_ALWAYS, 8192);
    wm_log_stats_t st2;
    wm_log_stats(log, &st2);
    assert_int_equal(st2.files, st.files);
    assert_int_equal(wm_log_last_seq(log), ROLL_N);
    check_iterate_from(log, ROLL_N);
    char last[600];
    last_file(fx->dir, last, sizeof last);
    assert_true(file_size(last) <= 8192);
    wm_log_close(log);
}

static void test_read_at(void **state)
{
    fixture_t *fx = *state;
    wm_log_t *log = open_log(fx->dir, WM_FSYNC_ALWAYS, 4096);
    static wm_log_pos_t pos[1001];
    append_n(log, 1000, pos);
    sync_ok(log);
    for (uint64_t s = 1; s <= 1000; s++) {
        void *b = NULL;
        uint32_t len = 0;
        assert_int_equal(wm_log_read_at(log, &pos[s], &b, &len), 0);
        assert_payload(s, b, len);
        wm_free(b);
    }
    void *b = NULL;
    uint32_t len = 0;
    wm_log_pos_t bad = pos[10];
    bad.file = 100000;
    assert_int_equal(wm_log_read_at(log, &bad, &b, &len), WM_ENOTFOUND);
    bad = pos[10];
    bad.seq = 11; /* right place, wrong record */
    assert_int_equal(wm_log_read_at(log, &bad, &b, &len), WM_ECORRUPT);
    bad = pos[10];
    bad.offset += 1; /* not a frame boundary */
    assert_int_equal(wm_log_read_at(log, &bad, &b, &len), WM_ECORRUPT);
    bad = pos[10];
    bad.offset = 1u << 30;
    assert_int_equal(wm_log_read_at(log, &bad, &b, &len), WM_ENOTFOUND);
    bad.seq = 0;
    assert_int_equal(wm_log_read_at(log, &bad, &b, &len), WM_ENOTFOUND);
    assert_int_equal(wm_log_read_at(log, NULL, &b, &len), WM_EINVAL);
    wm_log_close(log);

    /* Positions handed out before stay valid after reopen. */
    log = open_log(fx->dir, WM_FSYNC_ALWAYS, 4096);
    for (uint64_t s = 1; s <= 1000; s += 37) {
        assert_int_equal(wm_log_read_at(log, &pos[s], &b, &len), 0);
        assert_payload(s, b, len);
        wm_free(b);
    }
    wm_log_close(log);
}

static void test_iterator_positions_match_append(void **state)
{
    fixture_t *fx = *state;
    wm_log_t *log = open_log(fx->dir, WM_FSYNC_NEVER, 2048);
    static wm_log_pos_t pos[301];
    append_n(log, 300, pos);
    sync_ok(log);
    wm_log_iter_t *it;
    assert_int_equal(wm_log_iter_open(log, 0, &it), 0);
    wm_log_pos_t p;
    while (wm_log_iter_next(it, &p, NULL, NULL) == 1) {
        assert_int_equal(p.file, pos[p.seq].file);
        assert_int_equal(p.offset, pos[p.seq].offset);
    }
    wm_log_iter_close(it);
    wm_log_close(log);
}

static void test_large_payloads(void **state)
{
    fixture_t *fx = *state;
    wm_log_t *log = open_log(fx->dir, WM_FSYNC_ALWAYS, 0);
    uint32_t big_len = WM_LOG_FRAME_MAX; /* larger than the write buffer */
    uint8_t *big = malloc(big_len);
    for (uint32_t i = 0; i < big_len; i++)
        big[i] = (uint8_t)(i * 7 + 3);
    uint8_t small[300];
    wm_log_pos_t p1, p2, p3;
    assert_int_equal(wm_log_append(log, small, payload_for(1, small), &p1), 0);
    assert_int_equal(wm_log_append(log, big, big_len, &p2), 0);
    assert_int_equal(wm_log_append(log, small, payload_for(3, small), &p3), 0);
    assert_int_equal(p2.offset, frame_bytes(1));
    assert_int_equal(p3.offset, frame_bytes(1) + HDR + big_len);
    assert_int_equal(wm_log_append(log, big, big_len + 1, NULL), WM_ELIMIT);
    assert_int_equal(wm_log_append(log, NULL, 5, NULL), WM_EINVAL);
    assert_int_equal(wm_log_append(log, NULL, 0, NULL), 0); /* empty record is fine */
    assert_int_equal(sync_ok(log), 4);
    void *b;
    uint32_t len;
    assert_int_equal(wm_log_read_at(log, &p2, &b, &len), 0);
    assert_int_equal(len, big_len);
    assert_memory_equal(b, big, big_len);
    wm_free(b);
    wm_log_close(log);
    log = open_log(fx->dir, WM_FSYNC_ALWAYS, 0);
    wm_log_iter_t *it;
    assert_int_equal(wm_log_iter_open(log, 2, &it), 0);
    const void *pp;
    assert_int_equal(wm_log_iter_next(it, NULL, &pp, &len), 1);
    assert_int_equal(len, big_len);
    assert_memory_equal(pp, big, big_len);
    assert_int_equal(wm_log_iter_next(it, NULL, &pp, &len), 1);
    assert_payload(3, pp, len);
    assert_int_equal(wm_log_iter_next(it, NULL, &pp, &len), 1);
    assert_int_equal(len, 0);
    assert_int_equal(wm_log_iter_next(it, NULL, &pp, &len), 0);
    wm_log_iter_close(it);
    wm_log_close(log);
    free(big);
}

static void test_modes_and_fsync_counts(void **state)
{
    fixture_t *fx = *state;
    wm_log_opts_t o = {.dir = fx->dir, .fsync_mode = WM_FSYNC_NEVER};
    wm_log_t *log;
    wm_log_stats_t st;
    assert_int_equal(wm_log_open(&o, &log), 0);
    append_n(log, 5, NULL);
    assert_int_equal(sync_ok(log), 5); /* ack point is after write() */
    wm_log_stats(log, &st);
    assert_int_equal(st.syncs, 0);
    wm_log_close(log);

    o.fsync_mode = WM_FSYNC_INTERVAL;
    o.fsync_interval_ms = 3600 * 1000; /* never due during the test */
    assert_int_equal(wm_log_open(&o, &log), 0);
    append_n(log, 5, NULL);
    assert_int_equal(sync_ok(log), 10);
    wm_log_stats(log, &st);
    assert_int_equal(st.syncs, 0);
    wm_log_close(log);

    o.fsync_mode = WM_FSYNC_ALWAYS;
    assert_int_equal(wm_log_open(&o, &log), 0);
    append_n(log, 5, NULL);
    assert_int_equal(sync_ok(log), 15);
    assert_int_equal(sync_ok(log), 15); /* nothing new: no second fdatasync */
    append_n(log, 1, NULL);
    assert_int_equal(sync_ok(log), 16);
    wm_log_stats(log, &st);
    assert_int_equal(st.syncs, 2);
    wm_log_close(log);
}

static void test_second_open_is_busy(void **state)
{
    fixture_t *fx = *state;
    wm_log_t *log = open_log(fx->dir, WM_FSYNC_ALWAYS, 0);
    wm_log_opts_t o = {.dir = fx->dir};
    wm_log_t *other = NULL;
    assert_int_equal(wm_log_open(&o, &other), WM_EBUSY);
    assert_null(other);
    wm_log_close(log);
    assert_int_equal(wm_log_open(&o, &other), 0);
    wm_log_close(other);
}

/* ---- recovery --------------------------------------------------------- */

/* Writes 1..n (rolling at seg bytes), closes, returns the last file path. */
static void make_log(const char *dir, uint64_t n, uint64_t seg, char *last, size_t lastsz)
{
    wm_log_t *log = open_log(dir, WM_FSYNC_ALWAYS, seg);
    append_n(log, n, NULL);
    sync_ok(log);
    wm_log_close(log);
    last_file(dir, last, lastsz);
}

/* Reopens and checks: records 1..keep intact, `cut` bytes truncated, and
 * appending continues at keep+1 (also after another reopen). */
static void reopen_expect(const char *dir, uint64_t seg, uint64_t keep, uint64_t cut)
{
    char last[600];
    last_file(dir, last, sizeof last);
    off_t before = file_size(last);
    wm_log_t *log = open_log(dir, WM_FSYNC_ALWAYS, seg);
    wm_log_stats_t st;
    wm_log_stats(log, &st);
    assert_int_equal(st.truncated_bytes_on_open, cut);
    assert_int_equal(file_size(last), before - (off_t)cut); /* cut on disk */
    assert_int_equal(wm_log_last_seq(log), keep);
    assert_int_equal(wm_log_durable_seq(log), keep);
    assert_int_equal(iterate_check(log, 0, NULL), keep);
    append_n(log, 3, NULL);
    assert_int_equal(sync_ok(log), keep + 3);
    wm_log_close(log);
    log = open_log(dir, WM_FSYNC_ALWAYS, seg);
    wm_log_stats(log, &st);
    assert_int_equal(st.truncated_bytes_on_open, 0);
    assert_int_equal(iterate_check(log, 0, NULL), keep + 3);
    wm_log_close(log);
}

static void test_torn_tail_mid_frame(void **state)
{
    fixture_t *fx = *state;
    char last[600];
    make_log(fx->dir, 1000, 8192, last, sizeof last);
    off_t size = file_size(last);
    uint64_t last_frame = frame_bytes(1000);
    /* Cut inside the payload of the last frame. */
    assert_int_equal(truncate(last, size - 5), 0);
    reopen_expect(fx->dir, 8192, 999, last_frame - 5);
}

static void test_torn_tail_mid_header(void **state)
{
    fixture_t *fx = *state;
    char last[600];
    make_log(fx->dir, 200, 0, last, sizeof last);
    off_t size = file_size(last);
    uint64_t last_frame = frame_bytes(200);
    /* Leave only 7 bytes of the last frame's header. */
    assert_int_equal(truncate(last, size - (off_t)last_frame + 7), 0);
    reopen_expect(fx->dir, 0, 199, 7);
}

static void test_garbage_after_tail(void **state)
{
    fixture_t *fx = *state;
    char last[600];
    make_log(fx->dir, 1000, 8192, last, sizeof last);
    const char junk[] = "\x57\x4d\x4c\x46 this is not a frame at all, just noise";
    append_bytes(last, junk, sizeof junk);
    reopen_expect(fx->dir, 8192, 1000, sizeof junk);
}

static void test_flipped_byte_in_last_frame(void **state)
{
    fixture_t *fx = *state;
    char last[600];
    make_log(fx->dir, 1000, 8192, last, sizeof last);
    off_t size = file_size(last);
    flip_byte(last, size - 1); /* payload byte: CRC mismatch */
    reopen_expect(fx->dir, 8192, 999, frame_bytes(1000));
}

static void test_flipped_length_in_last_frame(void **state)
{
    fixture_t *fx = *state;
    char last[600];
    make_log(fx->dir, 50, 0, last, sizeof last);
    off_t size = file_size(last);
    uint64_t fb = frame_bytes(50);
    flip_byte(last, size - (off_t)fb + 4); /* payload_len byte */
    reopen_expect(fx->dir, 0, 49, fb);
}

/* A frame that is whole and checksums fine but carries the wrong seq (e.g. a
 * stale block resurfacing) ends the valid prefix too. */
static void test_out_of_sequence_frame(void **state)
{
    fixture_t *fx = *state;
    char last[600];
    make_log(fx->dir, 30, 0, last, sizeof last);
    uint8_t f[HDR + 4] = {0x57, 0x4d, 0x4c, 0x46, 4, 0, 0, 0};
    uint64_t seq = 7; /* 31 expected */
    for (int i = 0; i < 8; i++)
        f[8 + i] = (uint8_t)(seq >> (8 * i));
    memcpy(f + HDR, "abcd", 4);
    uint32_t crc = wm_crc32c(wm_crc32c(0, f + 8, 8), f + HDR, 4);
    for (int i = 0; i < 4; i++)
        f[16 + i] = (uint8_t)(crc >> (8 * i));
    append_bytes(last, f, sizeof f);
    reopen_expect(fx->dir, 0, 30, sizeof f);
}

/* The last file lost everything (crash right after a roll): the log goes
 * on from the sequence its name promises. */
static void test_torn_whole_last_file(void **state)
{
    fixture_t *fx = *state;
    char last[600];
    make_log(fx->dir, 1000, 8192, last, sizeof last);
    const char *base = strrchr(last, '/') + 1;
    uint64_t first = strtoull(base, NULL, 10);
    off_t size = file_size(last);
    assert_int_equal(truncate(last, 11), 0);
    assert_true(size > 11);
    reopen_expect(fx->dir, 8192, first - 1, 11);
}

static void test_corrupt_sealed_file_refuses_open(void **state)
{
    fixture_t *fx = *state;
    char last[600], first[600];
    make_log(fx->dir, 1000, 8192, last, sizeof last);
    snprintf(first, sizeof first, "%s/%020d.seg", fx->dir, 1);
    off_t size_first = file_size(first), size_last = file_size(last);
    flip_byte(first, 0);
    wm_log_opts_t o = {.dir = fx->dir, .file_bytes = 8192};
    wm_log_t *log = NULL;
    assert_int_equal(wm_log_open(&o, &log), WM_ECORRUPT);
    assert_null(log);
    /* Nothing was cut: a sealed file needs a human, not a truncate. */
    assert_int_equal(file_size(first), size_first);
    assert_int_equal(file_size(last), size_last);
}

static void test_oom_during_open_and_iter(void **state)
{
    fixture_t *fx = *state;
    char last[600];
    make_log(fx->dir, 500, 4096, last, sizeof last);
    int ok = 0;
    for (long n = 0; n < 200 && !ok; n++) {
        wm_log_opts_t o = {.dir = fx->dir, .file_bytes = 4096};
        wm_log_t *log = NULL;
        wm_alloc_fail_after(n);
        int rc = wm_log_open(&o, &log);
        wm_log_iter_t *it = NULL;
        int irc = rc == 0 ? wm_log_iter_open(log, 0, &it) : 0;
        wm_alloc_fail_after(-1);
        if (rc != 0) {
            assert_int_equal(rc, WM_ENOMEM);
            assert_null(log);
            continue;
        }
        if (irc == 0) {
            ok = 1;
            wm_log_iter_close(it);
        } else {
            assert_int_equal(irc, WM_ENOMEM);
        }
        wm_log_close(log);
    }
    assert_true(ok);
    /* Failed opens left the log intact. */
    reopen_expect(fx->dir, 4096, 500, 0);
}

/* ---- sticky error state ----------------------------------------------- */

static void expect_failed_state(wm_log_t *log, uint64_t durable)
{
    uint8_t b[8] = {0};
    uint64_t d = 12345;
    assert_int_equal(wm_log_error(log), WM_EIO);
    assert_int_equal(wm_log_append(log, b, sizeof b, NULL), WM_ESTATE);
    assert_int_equal(wm_log_sync(log, &d), WM_ESTATE);
    assert_int_equal(d, 12345);
    assert_int_equal(wm_log_durable_seq(log), durable);
    /* Readers keep serving what was published before the failure. */
    assert_int_equal(iterate_check(log, 0, NULL), durable);
}

static void test_injected_write_error_is_sticky(void **state)
{
    fixture_t *fx = *state;
    wm_log_t *log = open_log(fx->dir, WM_FSYNC_ALWAYS, 0);
    append_n(log, 10, NULL);
    sync_ok(log);
    append_n(log, 5, NULL);
    wm__log_inject_error(log, WM__LOG_OP_WRITE, ENOSPC);
    uint64_t d = 0;
    assert_int_equal(wm_log_sync(log, &d), WM_EIO);
    expect_failed_state(log, 10);
    wm_log_close(log);
    reopen_expect(fx->dir, 0, 10, 0);
}

static void test_injected_fsync_error_is_sticky(void **state)
{
    fixture_t *fx = *state;
    wm_log_t *log = open_log(fx->dir, WM_FSYNC_ALWAYS, 0);
    append_n(log, 10, NULL);
    sync_ok(log);
    append_n(log, 5, NULL);
    wm__log_inject_error(log, WM__LOG_OP_FSYNC, EIO);
    assert_int_equal(wm_log_sync(log, NULL), WM_EIO);
    /* 11..15 reached the file but their fdatasync failed: never acked,
     * never shown to readers, and not retried. */
    expect_failed_state(log, 10);
    wm_log_stats_t st;
    wm_log_stats(log, &st);
    assert_int_equal(st.syncs, 1);
    wm_log_close(log);
}

/* A fault while sealing a file on roll (fdatasync of the full file,
 * in the modes that promise durability) fails the append that triggered
 * the roll. */
static void test_fsync_error_on_roll(void **state)
{
    fixture_t *fx = *state;
    wm_log_t *log = open_log(fx->dir, WM_FSYNC_INTERVAL, 4096);
    append_n(log, 5, NULL);
    sync_ok(log);
    wm__log_inject_error(log, WM__LOG_OP_FSYNC, EIO);
    uint8_t b[300];
    int rc = 0;
    uint64_t appended = 0;
    for (int i = 0; i < 200 && rc == 0; i++) {
        rc = wm_log_append(log, b, payload_for(6 + (uint64_t)i, b), NULL);
        if (rc == 0)
            appended++;
    }
    assert_int_equal(rc, WM_EIO);
    assert_true(appended > 0);
    expect_failed_state(log, 5);
    wm_log_stats_t st;
    wm_log_stats(log, &st);
    assert_int_equal(st.files, 1);
    wm_log_close(log);
}

/* In NEVER mode a roll starts writeback but does not wait for it: a bulk
 * import must not stall on a 64 MiB flush. The data stays readable and
 * survives a reopen (the process, not the machine, restarted). */
static void test_never_mode_roll_does_not_fsync(void **state)
{
    fixture_t *fx = *state;
    wm_log_t *log = open_log(fx->dir, WM_FSYNC_NEVER, 4096);
    uint8_t b[300];
    for (uint64_t i = 1; i <= 200; i++)
        assert_int_equal(wm_log_append(log, b, payload_for(i, b), NULL), 0);
    sync_ok(log);
    wm_log_stats_t st;
    wm_log_stats(log, &st);
    assert_true(st.files > 3);
    assert_int_equal(st.syncs, 0);
    wm_log_close(log);
    log = open_log(fx->dir, WM_FSYNC_NEVER, 4096);
    assert_int_equal(wm_log_last_seq(log), 200);
    wm_log_close(log);
}

/* A real failure, no hook: RLIMIT_FSIZE makes the kernel accept part of the
 * write (a short write) and then fail with EFBIG. Recovery afterwards cuts
 * exactly the partial bytes. */
static void test_real_short_write_then_efbig(void **state)
{
    fixture_t *fx = *state;
    wm_log_t *log = open_log(fx->dir, WM_FSYNC_ALWAYS, 0);
    append_n(log, 10, NULL);
    sync_ok(log);
    char last[600];
    last_file(fx->dir, last, sizeof last);
    off_t size = file_size(last);

    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = (rlim_t)size + 100;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    append_n(log, 10, NULL); /* 11..20, well over 100 bytes */
    int rc = wm_log_sync(log, NULL);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, old_handler);

    assert_int_equal(rc, WM_EIO);
    assert_int_equal(file_size(last), size + 100); /* the short write landed */
    expect_failed_state(log, 10);
    wm_log_close(log);
    reopen_expect(fx->dir, 0, 10, 100);
}

/* ---- concurrency ------------------------------------------------------ */

#define CONC_N 20000

static void *writer_main(void *arg)
{
    wm_log_t *log = arg;
    uint8_t buf[300];
    uint64_t seq = 1;
    while (seq <= CONC_N) {
        uint64_t group = 1 + (seq * 13) % 200;
        for (uint64_t i = 0; i < group && seq <= CONC_N; i++, seq++)
            if (wm_log_append(log, buf, payload_for(seq, buf), NULL) != 0)
                return (void *)1;
        if (wm_log_sync(log, NULL) != 0)
            return (void *)1;
    }
    return NULL;
}

static void test_concurrent_tailing_reader(void **state)
{
    fixture_t *fx = *state;
    wm_log_t *log = open_log(fx->dir, WM_FSYNC_NEVER, 16384);
    wm_log_iter_t *it;
    assert_int_equal(wm_log_iter_open(log, 0, &it), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, writer_main, log), 0);
    uint64_t expect = 1;
    while (expect <= CONC_N) {
        wm_log_pos_t pos;
        const void *p;
        uint32_t len;
        int rc = wm_log_iter_next(it, &pos, &p, &len);
        assert_true(rc >= 0);
        if (rc == 0) {
            sched_yield();
            continue;
        }
        assert_int_equal(pos.seq, expect);
        assert_true(pos.seq <= wm_log_durable_seq(log));
        assert_payload(pos.seq, p, len);
        /* A positioned read from this thread while the writer runs. */
        if (expect % 1000 == 0) {
            void *b;
            uint32_t blen;
            assert_int_equal(wm_log_read_at(log, &pos, &b, &blen), 0);
            assert_payload(pos.seq, b, blen);
            wm_free(b);
        }
        expect++;
    }
    void *ret;
    assert_int_equal(pthread_join(th, &ret), 0);
    assert_null(ret);
    assert_int_equal(wm_log_iter_next(it, NULL, NULL, NULL), 0);
    wm_log_iter_close(it);
    wm_log_close(log);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fsync_mode_names),
        T(test_bad_opts),
        T(test_empty_log),
        T(test_roundtrip_reopen),
        T(test_close_flushes_buffer),
        T(test_readers_see_only_synced),
        T(test_buffer_overflow_not_published),
        T(test_roll_and_iterate),
        T(test_read_at),
        T(test_iterator_positions_match_append),
        T(test_large_payloads),
        T(test_modes_and_fsync_counts),
        T(test_second_open_is_busy),
        T(test_torn_tail_mid_frame),
        T(test_torn_tail_mid_header),
        T(test_garbage_after_tail),
        T(test_flipped_byte_in_last_frame),
        T(test_flipped_length_in_last_frame),
        T(test_out_of_sequence_frame),
        T(test_torn_whole_last_file),
        T(test_corrupt_sealed_file_refuses_open),
        T(test_oom_during_open_and_iter),
        T(test_injected_write_error_is_sticky),
        T(test_injected_fsync_error_is_sticky),
        T(test_fsync_error_on_roll),
        T(test_never_mode_roll_does_not_fsync),
        T(test_real_short_write_then_efbig),
        T(test_concurrent_tailing_reader),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
