/*
 * log.c - the per-partition append-only event log (see include/waymark/log.h).
 *
 * Why this shape: the log is the source of truth and the ingest path
 * acknowledges a client only after wm_log_sync() says its records are
 * durable, so the writer is built around group commit: appends are cheap
 * memcpys into one write buffer, and one pwrite + one fdatasync makes a whole
 * batch durable. Segments bound the recovery scan: only the last one can
 * have a torn tail, because a file is fdatasync'd before its successor is
 * created (in every fsync mode, NEVER included - it costs one fsync per
 * file and lets recovery trust sealed log files).
 *
 * Writer state machine (one writer thread):
 *
 *            append                     append (fits in buffer)
 *   +---------+ ------------> +----------+ --+
 *   | DURABLE |               | BUFFERED |   |
 *   +---------+ <------+      +----------+ <-+
 *        ^             |         |    buffer full, frame > buffer, or roll:
 *        | sync ok     |         |    pwrite (file has it, readers do not)
 *        |             |         v
 *        |             |      +---------+
 *        +-------------+------| WRITTEN |  (append -> BUFFERED again)
 *          sync: pwrite rest, +---------+
 *          fdatasync per mode,
 *          publish durable_end/durable_seq
 *
 *   any state --failed pwrite / fdatasync / file create / dir fsync-->
 *   +-------+
 *   | ERROR |  sticky: append and sync return WM_ESTATE until close; we never
 *   +-------+  retry an fdatasync and trust it (after a failed fsync Linux may
 *              drop the dirty pages and report success next time). Recovery
 *              on the next open is the only way back. Readers keep serving
 *              what was published before the failure.
 *
 * Invariants (check_invariants):
 *   - wlen <= WRITE_BUFFER_BYTES; frames in wbuf are whole and consecutive.
 *   - active == segs[nsegs-1]; file first_seqs strictly increase.
 *   - durable_seq <= written_seq < next_seq; written_seq is the last seq whose
 *     bytes reached the file.
 *   - every file's durable_end <= its written_end, and both sit on a frame
 *     boundary; readers never look past durable_end.
 *   - log files before publish_from are fully published and immutable.
 *   - a sealed file (not the last) was fdatasync'd before its successor's
 *     file was created.
 *
 * Readers on other threads: the file table is guarded by segs_mu (held
 * only for lookups, never across I/O); file structs are never freed or
 * moved before close; file descriptors are shared and used with pread only.
 * The writer publishes each file's durable_end and then durable_seq with
 * release stores; readers load durable_seq first (acquire), so any
 * durable_end they load afterwards covers every seq <= durable_seq.
 */
#include "waymark/log.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "store/log_internal.h"
#include "waymark/alloc.h"
#include "waymark/error.h"
#include "waymark/limits.h"

/* "WMLF" as it appears in the file, read as a little-endian u32. */
#define LOG_MAGIC 0x464C4D57u
/* magic | payload_len | seq | crc */
#define FRAME_HDR 20u
/* One pwrite per ~1 MiB amortises the syscall over thousands of small
 * records; larger frames bypass the buffer. */
#define WRITE_BUFFER_BYTES (1u << 20)
/* Iterators and recovery read ahead this much per pread. */
#define READ_CHUNK_BYTES (256u << 10)
/* 20 digits + ".seg" + NUL */
#define SEG_NAME_BUF 32
#define DEFAULT_INTERVAL_MS 100u

typedef struct wm_log_seg {
    uint64_t first_seq;
    uint64_t written_end;          /* writer only: bytes in the file */
    _Atomic uint64_t durable_end;  /* readers may read [0, durable_end) */
    _Atomic int fd;                /* -1 until a reader opens it lazily */
} wm_log_seg_t;

typedef struct log_counters {
    _Atomic uint64_t appended_records;
    _Atomic uint64_t appended_bytes;
    _Atomic uint64_t syncs;
    _Atomic uint64_t sync_ns_total;
    _Atomic uint64_t sync_ns_max;
} log_counters_t;

struct wm_log {
    int dir_fd;
    wm_fsync_mode_t mode;
    uint64_t interval_ns;
    uint64_t file_bytes;
    uint64_t base_seq;             /* first_seq of segs[0]; never changes */

    pthread_mutex_t segs_mu;       /* guards segs/segs_cap for readers */
    wm_log_seg_t **segs;
    _Atomic uint32_t nsegs;
    uint32_t segs_cap;

    /* writer thread only */
    wm_log_seg_t *active;
    uint8_t *wbuf;
    size_t wlen;
    uint64_t next_seq;
    uint64_t written_seq;
    uint32_t publish_from;
    bool unsynced;                 /* active fd has bytes not yet fdatasync'd */
    uint64_t last_fsync_ns;
    uint64_t truncated_on_open;
    int os_errno;                  /* errno of the failure that set err */
    wm__log_op_t fault_op;
    int fault_errno;

    _Atomic int err;               /* 0 or the first I/O error, sticky */
    _Atomic uint64_t durable_seq;
    _Atomic uint64_t last_seq;
    log_counters_t st;
};

/* A frame as seen by readers; payload points into the reader's buffer. */
typedef struct frame {
    uint64_t seq;
    uint64_t offset;
    uint32_t len;
    const uint8_t *payload;
} frame_t;

typedef enum frame_status { FRAME_OK, FRAME_END, FRAME_TORN, FRAME_BAD } frame_status_t;

/* Read-ahead over one file, never past `limit`. */
typedef struct frame_reader {
    int fd;
    uint64_t base;        /* file offset of buf[0] */
    uint8_t *buf;
    size_t cap;
    size_t len;           /* valid bytes in buf */
    size_t pos;           /* next frame starts at buf[pos] */
    uint64_t limit;
} frame_reader_t;

struct wm_log_iter {
    wm_log_t *log;
    wm_log_seg_t *seg;
    uint32_t seg_idx;
    uint64_t from_seq;
    uint64_t next_seq;    /* the seq the next frame must carry */
    frame_reader_t r;
};

/* ---- small helpers ---------------------------------------------------- */

static void put_u32le(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64le(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64le(const uint8_t *p)
{
    return (uint64_t)get_u32le(p) | (uint64_t)get_u32le(p + 4) << 32;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void seg_name(char *out, uint64_t first_seq)
{
    snprintf(out, SEG_NAME_BUF, "%020" PRIu64 ".seg", first_seq);
}

/* Accepts exactly 20 decimal digits + ".seg" naming a seq >= 1. */
static bool parse_seg_name(const char *name, uint64_t *first_seq)
{
    if (strlen(name) != 24 || strcmp(name + 20, ".seg") != 0)
        return false;
    uint64_t v = 0;
    for (int i = 0; i < 20; i++) {
        unsigned d = (unsigned)(name[i] - '0');
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *first_seq = v;
    return v >= 1;
}

static uint32_t frame_crc(uint64_t seq, const void *payload, uint32_t len)
{
    uint8_t s[8];
    put_u64le(s, seq);
    return wm_crc32c(wm_crc32c(0, s, 8), payload, len);
}

static void encode_header(uint8_t *h, uint64_t seq, const void *payload, uint32_t len)
{
    put_u32le(h, LOG_MAGIC);
    put_u32le(h + 4, len);
    put_u64le(h + 8, seq);
    put_u32le(h + 16, frame_crc(seq, payload, len));
}

static void stat_add(_Atomic uint64_t *c, uint64_t v)
{
    atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

static uint64_t stat_get(const _Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* Reads up to n bytes at off; returns bytes read (short only at EOF) or -1. */
static ssize_t pread_full(int fd, void *buf, size_t n, uint64_t off)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (uint8_t *)buf + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* ---- sticky error and fault injection --------------------------------- */

static int fail_io(wm_log_t *log)
{
    int expected = 0;
    if (atomic_compare_exchange_strong(&log->err, &expected, WM_EIO))
        log->os_errno = errno;
    return WM_EIO;
}

static bool take_fault(wm_log_t *log, wm__log_op_t op)
{
    if (log->fault_op != op)
        return false;
    log->fault_op = WM__LOG_OP_NONE;
    errno = log->fault_errno;
    return true;
}

void wm__log_inject_error(wm_log_t *log, wm__log_op_t op, int errnum)
{
    log->fault_op = op;
    log->fault_errno = errnum;
}

/* Writes all iovecs at off, resuming after short writes and EINTR. */
static int pwrite_all(wm_log_t *log, int fd, struct iovec *iov, int cnt, uint64_t off)
{
    while (cnt > 0) {
        ssize_t n = take_fault(log, WM__LOG_OP_WRITE) ? -1 : pwritev(fd, iov, cnt, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return -1;
        }
        off += (uint64_t)n;
        while (cnt > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
    return 0;
}

/* ---- file table ---------------------------------------------------- */

static int reserve_seg_slot(wm_log_t *log)
{
    uint32_t n = atomic_load_explicit(&log->nsegs, memory_order_relaxed);
    if (n < log->segs_cap)
        return 0;
    uint32_t cap = log->segs_cap ? log->segs_cap * 2 : 16;
    pthread_mutex_lock(&log->segs_mu);
    wm_log_seg_t **s = wm_realloc(log->segs, cap * sizeof *s);
    if (s) {
        log->segs = s;
        log->segs_cap = cap;
    }
    pthread_mutex_unlock(&log->segs_mu);
    return s ? 0 : WM_ENOMEM;
}

/* Caller reserved a slot. */
static void push_seg(wm_log_t *log, wm_log_seg_t *seg)
{
    pthread_mutex_lock(&log->segs_mu);
    uint32_t n = atomic_load_explicit(&log->nsegs, memory_order_relaxed);
    log->segs[n] = seg;
    atomic_store_explicit(&log->nsegs, n + 1, memory_order_release);
    pthread_mutex_unlock(&log->segs_mu);
}

static wm_log_seg_t *new_seg(uint64_t first_seq)
{
    wm_log_seg_t *s = wm_calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->first_seq = first_seq;
    atomic_init(&s->fd, -1);
    atomic_init(&s->durable_end, 0);
    return s;
}

static wm_log_seg_t *seg_at(wm_log_t *log, uint32_t idx)
{
    wm_log_seg_t *s = NULL;
    pthread_mutex_lock(&log->segs_mu);
    if (idx < atomic_load_explicit(&log->nsegs, memory_order_relaxed))
        s = log->segs[idx];
    pthread_mutex_unlock(&log->segs_mu);
    return s;
}

/* Index of the last file whose first_seq <= seq (0 if seq is older). */
static uint32_t seg_find(wm_log_t *log, uint64_t seq)
{
    pthread_mutex_lock(&log->segs_mu);
    uint32_t lo = 0, hi = atomic_load_explicit(&log->nsegs, memory_order_relaxed);
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (log->segs[mid]->first_seq <= seq)
            lo = mid;
        else
            hi = mid;
    }
    pthread_mutex_unlock(&log->segs_mu);
    return lo;
}

/* Shared descriptor for reading a file; opened on first use and kept
 * until close, so one fd serves every reader via pread. */
static int seg_fd(wm_log_t *log, wm_log_seg_t *s)
{
    int fd = atomic_load_explicit(&s->fd, memory_order_acquire);
    if (fd >= 0)
        return fd;
    char name[SEG_NAME_BUF];
    seg_name(name, s->first_seq);
    fd = openat(log->dir_fd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return WM_EIO;
    int expected = -1;
    if (!atomic_compare_exchange_strong(&s->fd, &expected, fd)) {
        close(fd);
        return expected;
    }
    return fd;
}

/* ---- frame reader (iterators and recovery) ---------------------------- */

static int fr_init(frame_reader_t *r, int fd, uint64_t limit)
{
    memset(r, 0, sizeof *r);
    r->fd = fd;
    r->limit = limit;
    r->cap = READ_CHUNK_BYTES;
    r->buf = wm_malloc(r->cap);
    return r->buf ? 0 : WM_ENOMEM;
}

static void fr_reset(frame_reader_t *r, int fd, uint64_t limit)
{
    r->fd = fd;
    r->base = 0;
    r->len = 0;
    r->pos = 0;
    r->limit = limit;
}

static uint64_t fr_offset(const frame_reader_t *r)
{
    return r->base + r->pos;
}

/* Makes `need` bytes available at buf[pos] if the file and limit allow. */
static int fr_fill(frame_reader_t *r, size_t need)
{
    if (r->len - r->pos >= need)
        return 0;
    memmove(r->buf, r->buf + r->pos, r->len - r->pos);
    r->base += r->pos;
    r->len -= r->pos;
    r->pos = 0;
    if (need > r->cap) {
        uint8_t *b = wm_realloc(r->buf, need);
        if (!b)
            return WM_ENOMEM;
        r->buf = b;
        r->cap = need;
    }
    uint64_t file_end = r->base + r->len;
    size_t want = r->cap - r->len;
    if (r->limit - file_end < want)
        want = (size_t)(r->limit - file_end);
    ssize_t n = pread_full(r->fd, r->buf + r->len, want, file_end);
    if (n < 0)
        return WM_EIO;
    r->len += (size_t)n;
    return 0;
}

/* Decodes the next frame. Returns 0 with *st set, or WM_EIO / WM_ENOMEM. */
static int fr_next(frame_reader_t *r, frame_t *f, frame_status_t *st)
{
    uint64_t off = fr_offset(r);
    if (off >= r->limit) {
        *st = FRAME_END;
        return 0;
    }
    int rc = fr_fill(r, FRAME_HDR);
    if (rc)
        return rc;
    *st = FRAME_TORN;
    if (r->len - r->pos < FRAME_HDR)
        return 0;
    const uint8_t *h = r->buf + r->pos;
    uint32_t len = get_u32le(h + 4);
    *st = FRAME_BAD;
    if (get_u32le(h) != LOG_MAGIC || len > WM_LOG_FRAME_MAX)
        return 0;
    size_t total = FRAME_HDR + (size_t)len;
    *st = FRAME_TORN;
    if (r->limit - off < total)
        return 0;
    if ((rc = fr_fill(r, total)))
        return rc;
    if (r->len - r->pos < total)
        return 0;
    h = r->buf + r->pos;
    f->seq = get_u64le(h + 8);
    f->offset = off;
    f->len = len;
    f->payload = h + FRAME_HDR;
    *st = FRAME_BAD;
    if (get_u32le(h + 16) != frame_crc(f->seq, f->payload, len))
        return 0;
    r->pos += total;
    *st = FRAME_OK;
    return 0;
}

/* ---- writer ----------------------------------------------------------- */

static void check_invariants(const wm_log_t *log)
{
    uint32_t n = atomic_load_explicit(&log->nsegs, memory_order_relaxed);
    assert(log->wlen <= WRITE_BUFFER_BYTES);
    assert(n > 0 && log->active == log->segs[n - 1]);
    assert(log->publish_from < n);
    assert(log->written_seq < log->next_seq);
    assert(atomic_load_explicit(&log->durable_seq, memory_order_relaxed) <= log->written_seq);
    assert(atomic_load_explicit(&log->active->durable_end, memory_order_relaxed) <=
           log->active->written_end);
    (void)n;
}

static int timed_fdatasync(wm_log_t *log, int fd)
{
    uint64_t t0 = now_ns();
    int r = take_fault(log, WM__LOG_OP_FSYNC) ? -1 : fdatasync(fd);
    uint64_t t1 = now_ns();
    if (r != 0)
        return fail_io(log);
    uint64_t d = t1 - t0;
    stat_add(&log->st.syncs, 1);
    stat_add(&log->st.sync_ns_total, d);
    if (d > stat_get(&log->st.sync_ns_max))
        atomic_store_explicit(&log->st.sync_ns_max, d, memory_order_relaxed);
    log->last_fsync_ns = t1;
    return 0;
}

static int fsync_active(wm_log_t *log)
{
    if (!log->unsynced)
        return 0;
    int rc = timed_fdatasync(log, atomic_load_explicit(&log->active->fd, memory_order_relaxed));
    if (rc == 0)
        log->unsynced = false;
    return rc;
}

static int flush_buffer(wm_log_t *log)
{
    if (log->wlen == 0)
        return 0;
    wm_log_seg_t *s = log->active;
    struct iovec iov = {.iov_base = log->wbuf, .iov_len = log->wlen};
    if (pwrite_all(log, atomic_load_explicit(&s->fd, memory_order_relaxed), &iov, 1,
                   s->written_end))
        return fail_io(log);
    s->written_end += log->wlen;
    log->wlen = 0;
    log->unsynced = true;
    log->written_seq = log->next_seq - 1;
    return 0;
}

static int fsync_dir(wm_log_t *log)
{
    return fsync(log->dir_fd) == 0 ? 0 : fail_io(log);
}

/* Creates the file file for first_seq and makes its name durable. */
static int create_seg_file(wm_log_t *log, wm_log_seg_t *seg)
{
    char name[SEG_NAME_BUF];
    seg_name(name, seg->first_seq);
    int fd = openat(log->dir_fd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return fail_io(log);
    atomic_store_explicit(&seg->fd, fd, memory_order_release);
    return fsync_dir(log);
}

/* Makes the full file durable before its successor exists. In NEVER
 * mode the caller has accepted that an OS crash may lose recent data, so
 * the seal only starts writeback (a synchronous 64 MiB flush per roll was
 * measured to stall bulk imports for ~0.2 s each) and the file is
 * flushed for real at close. */
static int seal_active(wm_log_t *log)
{
    if (log->mode != WM_FSYNC_NEVER)
        return fsync_active(log);
    int fd = atomic_load_explicit(&log->active->fd, memory_order_relaxed);
    sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    return 0;
}

/* Seals the active file (see seal_active) and starts a new one named by
 * the next sequence. */
static int roll(wm_log_t *log)
{
    int rc = reserve_seg_slot(log);
    if (rc)
        return rc;
    wm_log_seg_t *seg = new_seg(log->next_seq);
    if (!seg)
        return WM_ENOMEM;
    if ((rc = flush_buffer(log)) || (rc = seal_active(log)) || (rc = create_seg_file(log, seg))) {
        int fd = atomic_load(&seg->fd);
        if (fd >= 0)
            close(fd);
        wm_free(seg);
        return rc;
    }
    push_seg(log, seg);
    log->active = seg;
    log->unsynced = false;
    return 0;
}

static bool must_roll(const wm_log_t *log, uint64_t frame_bytes)
{
    uint64_t size = log->active->written_end + log->wlen;
    return size > 0 && size + frame_bytes > log->file_bytes;
}

/* A frame bigger than the whole buffer goes straight to the file. */
static int write_direct(wm_log_t *log, uint64_t seq, const void *payload, uint32_t len)
{
    int rc = flush_buffer(log);
    if (rc)
        return rc;
    uint8_t h[FRAME_HDR];
    encode_header(h, seq, payload, len);
    struct iovec iov[2] = {{.iov_base = h, .iov_len = FRAME_HDR},
                           {.iov_base = (void *)payload, .iov_len = len}};
    wm_log_seg_t *s = log->active;
    if (pwrite_all(log, atomic_load_explicit(&s->fd, memory_order_relaxed), iov, 2,
                   s->written_end))
        return fail_io(log);
    s->written_end += FRAME_HDR + (uint64_t)len;
    log->unsynced = true;
    log->written_seq = seq;
    return 0;
}

static void buffer_frame(wm_log_t *log, uint64_t seq, const void *payload, uint32_t len)
{
    uint8_t *p = log->wbuf + log->wlen;
    encode_header(p, seq, payload, len);
    if (len)
        memcpy(p + FRAME_HDR, payload, len);
    log->wlen += FRAME_HDR + (size_t)len;
}

int wm_log_append(wm_log_t *log, const void *payload, uint32_t len, wm_log_pos_t *pos)
{
    if (!log || (!payload && len))
        return WM_EINVAL;
    if (len > WM_LOG_FRAME_MAX)
        return WM_ELIMIT;
    if (atomic_load_explicit(&log->err, memory_order_relaxed))
        return WM_ESTATE;
    uint64_t frame_bytes = FRAME_HDR + (uint64_t)len;
    int rc = 0;
    if (must_roll(log, frame_bytes) && (rc = roll(log)))
        return rc;
    if (log->wlen + frame_bytes > WRITE_BUFFER_BYTES && (rc = flush_buffer(log)))
        return rc;
    uint64_t seq = log->next_seq;
    uint64_t offset = log->active->written_end + log->wlen;
    if (frame_bytes > WRITE_BUFFER_BYTES)
        rc = write_direct(log, seq, payload, len);
    else
        buffer_frame(log, seq, payload, len);
    if (rc)
        return rc;
    log->next_seq = seq + 1;
    atomic_store_explicit(&log->last_seq, seq, memory_order_relaxed);
    stat_add(&log->st.appended_records, 1);
    stat_add(&log->st.appended_bytes, frame_bytes);
    if (pos) {
        pos->seq = seq;
        pos->file = atomic_load_explicit(&log->nsegs, memory_order_relaxed) - 1;
        pos->offset = offset;
    }
    check_invariants(log);
    return 0;
}

static bool fsync_due(const wm_log_t *log)
{
    switch (log->mode) {
    case WM_FSYNC_ALWAYS:
        return true;
    case WM_FSYNC_INTERVAL:
        return now_ns() - log->last_fsync_ns >= log->interval_ns;
    default:
        return false;
    }
}

/* Makes everything written visible to readers: file ends first, then
 * the sequence (release), matching the acquire order in readers. */
static void publish(wm_log_t *log)
{
    uint32_t n = atomic_load_explicit(&log->nsegs, memory_order_relaxed);
    for (uint32_t i = log->publish_from; i < n; i++)
        atomic_store_explicit(&log->segs[i]->durable_end, log->segs[i]->written_end,
                              memory_order_release);
    log->publish_from = n - 1;
    atomic_store_explicit(&log->durable_seq, log->written_seq, memory_order_release);
}

int wm_log_sync(wm_log_t *log, uint64_t *durable_seq)
{
    if (!log)
        return WM_EINVAL;
    if (atomic_load_explicit(&log->err, memory_order_relaxed))
        return WM_ESTATE;
    int rc = flush_buffer(log);
    if (rc)
        return rc;
    if (fsync_due(log) && (rc = fsync_active(log)))
        return rc;
    publish(log);
    check_invariants(log);
    if (durable_seq)
        *durable_seq = log->written_seq;
    return 0;
}

/* ---- open / recovery -------------------------------------------------- */

static int open_dir(wm_log_t *log, const char *dir)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return WM_EIO;
    log->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (log->dir_fd < 0)
        return WM_EIO;
    /* Two writers on one log would interleave frames: refuse the second. */
    if (flock(log->dir_fd, LOCK_EX | LOCK_NB) != 0)
        return errno == EWOULDBLOCK ? WM_EBUSY : WM_EIO;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int add_name(uint64_t **v, uint32_t *n, uint32_t *cap, uint64_t first)
{
    if (*n == *cap) {
        uint32_t c = *cap ? *cap * 2 : 16;
        uint64_t *nv = wm_realloc(*v, c * sizeof *nv);
        if (!nv)
            return WM_ENOMEM;
        *v = nv;
        *cap = c;
    }
    (*v)[(*n)++] = first;
    return 0;
}

/* Sorted first_seqs of the file files in the directory. */
static int list_files(wm_log_t *log, uint64_t **out, uint32_t *count)
{
    int fd = dup(log->dir_fd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return WM_EIO;
    }
    uint64_t *v = NULL;
    uint32_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        uint64_t first;
        if (parse_seg_name(e->d_name, &first))
            rc = add_name(&v, &n, &cap, first);
    }
    closedir(d);
    if (rc) {
        wm_free(v);
        return rc;
    }
    if (n)
        qsort(v, n, sizeof *v, cmp_u64);
    *out = v;
    *count = n;
    return 0;
}

static int open_seg(wm_log_t *log, const wm_log_seg_t *s, int flags, uint64_t *size)
{
    char name[SEG_NAME_BUF];
    seg_name(name, s->first_seq);
    int fd = openat(log->dir_fd, name, flags | O_CLOEXEC);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0) {
        *size = (uint64_t)st.st_size;
        return fd;
    }
    if (fd >= 0)
        close(fd);
    return WM_EIO;
}

/* A sealed file is trusted to its end (it was fdatasync'd before its
 * successor existed) but its first frame must be intact and carry the
 * sequence its name promises; otherwise the log needs a human. */
static int check_sealed(wm_log_t *log, wm_log_seg_t *s)
{
    uint64_t size;
    int fd = open_seg(log, s, O_RDONLY, &size);
    if (fd < 0)
        return fd;
    frame_reader_t r;
    int rc = fr_init(&r, fd, size);
    frame_t f;
    frame_status_t st = FRAME_BAD;
    if (rc == 0)
        rc = fr_next(&r, &f, &st);
    if (rc == 0 && (st != FRAME_OK || f.seq != s->first_seq))
        rc = WM_ECORRUPT;
    wm_free(r.buf);
    close(fd);
    s->written_end = size;
    atomic_store(&s->durable_end, size);
    return rc;
}

/* Scans the last file; returns the end of the valid prefix and the seq
 * that follows it. A tear, bad magic, bad CRC or a break in the sequence
 * ends the prefix. */
static int scan_tail(int fd, uint64_t size, uint64_t first_seq, uint64_t *valid_end,
                     uint64_t *next_seq)
{
    frame_reader_t r;
    int rc = fr_init(&r, fd, size);
    uint64_t expect = first_seq, end = 0;
    while (rc == 0) {
        frame_t f;
        frame_status_t st;
        if ((rc = fr_next(&r, &f, &st)) || st != FRAME_OK || f.seq != expect)
            break;
        expect++;
        end = fr_offset(&r);
    }
    *valid_end = end;
    *next_seq = expect;
    wm_free(r.buf);
    return rc;
}

static int recover_tail(wm_log_t *log, wm_log_seg_t *s)
{
    uint64_t size, end, next;
    int fd = open_seg(log, s, O_RDWR, &size);
    if (fd < 0)
        return fd;
    int rc = scan_tail(fd, size, s->first_seq, &end, &next);
    if (rc == 0 && end < size && ftruncate(fd, (off_t)end) != 0)
        rc = WM_EIO;
    /* Also covers a crash (not power loss) that left pages unsynced: after
     * open everything recovered is durable. */
    if (rc == 0 && fdatasync(fd) != 0)
        rc = WM_EIO;
    if (rc) {
        close(fd);
        return rc;
    }
    log->truncated_on_open = size - end;
    atomic_store(&s->fd, fd);
    s->written_end = end;
    atomic_store(&s->durable_end, end);
    log->next_seq = next;
    return 0;
}

static int load_existing(wm_log_t *log, const uint64_t *firsts, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        int rc = reserve_seg_slot(log);
        wm_log_seg_t *s = rc ? NULL : new_seg(firsts[i]);
        if (!s)
            return WM_ENOMEM;
        push_seg(log, s);
    }
    for (uint32_t i = 0; i + 1 < n; i++) {
        int rc = check_sealed(log, log->segs[i]);
        if (rc)
            return rc;
    }
    return recover_tail(log, log->segs[n - 1]);
}

static int load_files(wm_log_t *log)
{
    uint64_t *firsts = NULL;
    uint32_t n = 0;
    int rc = list_files(log, &firsts, &n);
    if (rc)
        return rc;
    if (n > 0) {
        rc = load_existing(log, firsts, n);
    } else {
        wm_log_seg_t *s = NULL;
        rc = reserve_seg_slot(log);
        if (rc == 0 && !(s = new_seg(1)))
            rc = WM_ENOMEM;
        if (rc == 0 && (rc = create_seg_file(log, s)) != 0)
            wm_free(s);
        if (rc == 0)
            push_seg(log, s);
        log->next_seq = 1;
    }
    wm_free(firsts);
    return rc;
}

static void log_destroy(wm_log_t *log)
{
    uint32_t n = atomic_load(&log->nsegs);
    for (uint32_t i = 0; i < n; i++) {
        int fd = atomic_load(&log->segs[i]->fd);
        if (fd >= 0)
            close(fd);
        wm_free(log->segs[i]);
    }
    wm_free(log->segs);
    wm_free(log->wbuf);
    if (log->dir_fd >= 0)
        close(log->dir_fd);
    pthread_mutex_destroy(&log->segs_mu);
    wm_free(log);
}

static void finish_open(wm_log_t *log)
{
    uint32_t n = atomic_load(&log->nsegs);
    log->active = log->segs[n - 1];
    log->publish_from = n - 1;
    log->base_seq = log->segs[0]->first_seq;
    log->written_seq = log->next_seq - 1;
    atomic_store(&log->durable_seq, log->written_seq);
    atomic_store(&log->last_seq, log->written_seq);
    log->last_fsync_ns = now_ns();
    check_invariants(log);
}

int wm_log_open(const wm_log_opts_t *opts, wm_log_t **out)
{
    if (out)
        *out = NULL;
    if (!opts || !opts->dir || !*opts->dir || !out || (unsigned)opts->fsync_mode > WM_FSYNC_NEVER)
        return WM_EINVAL;
    wm_log_t *log = wm_calloc(1, sizeof *log);
    if (!log)
        return WM_ENOMEM;
    log->dir_fd = -1;
    pthread_mutex_init(&log->segs_mu, NULL);
    log->mode = opts->fsync_mode;
    log->interval_ns =
        (uint64_t)(opts->fsync_interval_ms ? opts->fsync_interval_ms : DEFAULT_INTERVAL_MS) *
        1000000u;
    log->file_bytes = opts->file_bytes ? opts->file_bytes : WM_LOG_SEGMENT_BYTES;
    log->wbuf = wm_malloc(WRITE_BUFFER_BYTES);
    int rc = log->wbuf ? open_dir(log, opts->dir) : WM_ENOMEM;
    if (rc == 0)
        rc = load_files(log);
    if (rc == 0 && atomic_load(&log->err))
        rc = WM_EIO;
    if (rc) {
        log_destroy(log);
        return rc;
    }
    finish_open(log);
    *out = log;
    return 0;
}

void wm_log_close(wm_log_t *log)
{
    if (!log)
        return;
    /* A clean shutdown leaves nothing unsynced except in NEVER mode. Best
     * effort, errors are lost: callers that care sync first. */
    if (!atomic_load(&log->err) && flush_buffer(log) == 0 && log->mode != WM_FSYNC_NEVER)
        (void)fsync_active(log);
    log_destroy(log);
}

/* ---- queries ---------------------------------------------------------- */

uint64_t wm_log_last_seq(const wm_log_t *log)
{
    return atomic_load_explicit(&log->last_seq, memory_order_relaxed);
}

uint64_t wm_log_first_seq(const wm_log_t *log)
{
    return wm_log_last_seq(log) >= log->base_seq ? log->base_seq : 0;
}

uint64_t wm_log_durable_seq(const wm_log_t *log)
{
    return atomic_load_explicit(&log->durable_seq, memory_order_acquire);
}

int wm_log_error(const wm_log_t *log)
{
    return atomic_load_explicit(&log->err, memory_order_relaxed);
}

void wm_log_stats(const wm_log_t *log, wm_log_stats_t *out)
{
    memset(out, 0, sizeof *out);
    out->appended_records = stat_get(&log->st.appended_records);
    out->appended_bytes = stat_get(&log->st.appended_bytes);
    out->syncs = stat_get(&log->st.syncs);
    out->sync_ns_total = stat_get(&log->st.sync_ns_total);
    out->sync_ns_max = stat_get(&log->st.sync_ns_max);
    out->truncated_bytes_on_open = log->truncated_on_open;
    out->files = atomic_load_explicit(&log->nsegs, memory_order_relaxed);
}

int wm_fsync_mode_parse(const char *s, wm_fsync_mode_t *out)
{
    static const char *const names[] = {"always", "interval", "never"};
    for (int i = 0; s && i < 3; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (wm_fsync_mode_t)i;
            return 0;
        }
    }
    return WM_EINVAL;
}

const char *wm_fsync_mode_name(wm_fsync_mode_t m)
{
    switch (m) {
    case WM_FSYNC_ALWAYS:
        return "always";
    case WM_FSYNC_INTERVAL:
        return "interval";
    case WM_FSYNC_NEVER:
        return "never";
    }
    return "unknown";
}

/* ---- readers ---------------------------------------------------------- */

int wm_log_read_at(wm_log_t *log, const wm_log_pos_t *pos, void **buf, uint32_t *len)
{
    if (!log || !pos || !buf || !len)
        return WM_EINVAL;
    if (pos->seq == 0 || pos->seq > wm_log_durable_seq(log))
        return WM_ENOTFOUND;
    wm_log_seg_t *s = seg_at(log, pos->file);
    if (!s)
        return WM_ENOTFOUND;
    uint64_t end = atomic_load_explicit(&s->durable_end, memory_order_acquire);
    if (pos->offset > end || end - pos->offset < FRAME_HDR)
        return WM_ENOTFOUND;
    int fd = seg_fd(log, s);
    if (fd < 0)
        return fd;
    uint8_t h[FRAME_HDR];
    ssize_t n = pread_full(fd, h, FRAME_HDR, pos->offset);
    if (n < 0)
        return WM_EIO;
    uint32_t plen = get_u32le(h + 4);
    if (n < (ssize_t)FRAME_HDR || get_u32le(h) != LOG_MAGIC || get_u64le(h + 8) != pos->seq ||
        plen > WM_LOG_FRAME_MAX || end - pos->offset - FRAME_HDR < plen)
        return WM_ECORRUPT;
    uint8_t *p = wm_malloc(plen);
    if (!p)
        return WM_ENOMEM;
    n = pread_full(fd, p, plen, pos->offset + FRAME_HDR);
    int rc = n < 0 ? WM_EIO : (size_t)n < plen ? WM_ECORRUPT : 0;
    if (rc == 0 && get_u32le(h + 16) != frame_crc(pos->seq, p, plen))
        rc = WM_ECORRUPT;
    if (rc) {
        wm_free(p);
        return rc;
    }
    *buf = p;
    *len = plen;
    return 0;
}

int wm_log_iter_open(wm_log_t *log, uint64_t from_seq, wm_log_iter_t **out)
{
    if (!log || !out)
        return WM_EINVAL;
    *out = NULL;
    wm_log_iter_t *it = wm_calloc(1, sizeof *it);
    if (!it)
        return WM_ENOMEM;
    it->log = log;
    it->from_seq = from_seq;
    it->seg_idx = seg_find(log, from_seq);
    it->seg = seg_at(log, it->seg_idx);
    it->next_seq = it->seg->first_seq;
    int fd = seg_fd(log, it->seg);
    int rc = fd < 0 ? fd : fr_init(&it->r, fd, 0);
    if (rc) {
        wm_free(it->r.buf);
        wm_free(it);
        return rc;
    }
    it->r.limit = atomic_load_explicit(&it->seg->durable_end, memory_order_acquire);
    *out = it;
    return 0;
}

/* At the end of what the reader may see: extend to newly published bytes,
 * or move to the next file. Returns 1 if there is more, 0 if not yet. */
static int iter_advance(wm_log_iter_t *it)
{
    if (it->next_seq > wm_log_durable_seq(it->log))
        return 0;
    uint64_t end = atomic_load_explicit(&it->seg->durable_end, memory_order_acquire);
    if (end > it->r.limit) {
        it->r.limit = end;
        return 1;
    }
    wm_log_seg_t *next = seg_at(it->log, it->seg_idx + 1);
    if (!next || next->first_seq != it->next_seq)
        return WM_ECORRUPT;
    int fd = seg_fd(it->log, next);
    if (fd < 0)
        return fd;
    fr_reset(&it->r, fd, atomic_load_explicit(&next->durable_end, memory_order_acquire));
    it->seg = next;
    it->seg_idx++;
    return 1;
}

int wm_log_iter_next(wm_log_iter_t *it, wm_log_pos_t *pos, const void **payload, uint32_t *len)
{
    if (!it)
        return WM_EINVAL;
    for (;;) {
        frame_t f;
        frame_status_t st;
        int rc = fr_next(&it->r, &f, &st);
        if (rc)
            return rc;
        if (st == FRAME_END) {
            if ((rc = iter_advance(it)) <= 0)
                return rc;
            continue;
        }
        /* Below the published end every frame must be whole and in order. */
        if (st != FRAME_OK || f.seq != it->next_seq)
            return WM_ECORRUPT;
        it->next_seq++;
        if (f.seq < it->from_seq)
            continue;
        if (pos) {
            pos->seq = f.seq;
            pos->file = it->seg_idx;
            pos->offset = f.offset;
        }
        if (payload)
            *payload = f.payload;
        if (len)
            *len = f.len;
        return 1;
    }
}

void wm_log_iter_close(wm_log_iter_t *it)
{
    if (!it)
        return;
    wm_free(it->r.buf);
    wm_free(it);
}
