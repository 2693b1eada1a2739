/*
 * log.h - the per-partition append-only event log, Waymark's source of truth.
 *
 * A log is a directory of file files "00000000000000000001.seg", each named
 * by the sequence number of its first record. A frame is
 *
 *     u32 magic 'WMLF' | u32 payload_len | u64 seq | u32 crc32c(seq..payload) | payload
 *
 * (little-endian). Appends are buffered; wm_log_sync() makes everything
 * appended so far durable according to the fsync mode and returns the
 * highest durable sequence. Recovery on open scans the last file and
 * truncates a torn or corrupt tail; records before it are never touched.
 *
 * Thread model: one writer thread owns append/sync. Readers (wm_log_read_at,
 * iterators) may run on other threads concurrently; they see only durable
 * (synced) data. wm_log_last_seq/first_seq/durable_seq/error/stats may be
 * called from any thread. All readers must be finished before wm_log_close.
 *
 * Errors: a failed write or fdatasync puts the log in a sticky error state;
 * that call returns WM_EIO and every later append/sync returns WM_ESTATE.
 * The fsync is never retried (a retried fsync can report success for pages
 * the kernel already dropped); close and reopen to recover from the files.
 */
#ifndef WAYMARK_LOG_H
#define WAYMARK_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "waymark/crc32c.h"

typedef enum wm_fsync_mode {
    WM_FSYNC_ALWAYS = 0,   /* fdatasync before every acknowledgement (group commit) */
    WM_FSYNC_INTERVAL,     /* fdatasync at most every interval_ms; ack after write() */
    WM_FSYNC_NEVER,        /* leave it to the OS; ack after write() */
} wm_fsync_mode_t;

/* "always" | "interval" | "never" -> *out. WM_EINVAL for anything else. */
int wm_fsync_mode_parse(const char *s, wm_fsync_mode_t *out);
/* Static name of a mode ("unknown" for an out-of-range value). */
const char *wm_fsync_mode_name(wm_fsync_mode_t m);

typedef struct wm_log_opts {
    const char *dir;                  /* created if missing */
    wm_fsync_mode_t fsync_mode;
    uint32_t fsync_interval_ms;       /* for WM_FSYNC_INTERVAL; 0 -> 100 */
    uint64_t file_bytes;           /* roll threshold; 0 -> WM_LOG_SEGMENT_BYTES */
} wm_log_opts_t;

typedef struct wm_log wm_log_t;

/* A record's address in the log: stable for the life of the data. */
typedef struct wm_log_pos {
    uint64_t seq;
    uint32_t file;     /* index of the file file (its ordinal, not its name) */
    uint64_t offset;      /* byte offset of the frame within the file */
} wm_log_pos_t;

typedef struct wm_log_stats {
    uint64_t appended_records;
    uint64_t appended_bytes;
    uint64_t syncs;
    uint64_t sync_ns_total;       /* sum of fsync durations */
    uint64_t sync_ns_max;
    uint64_t truncated_bytes_on_open;
    uint32_t files;
} wm_log_stats_t;
/* syncs / sync_ns_* count fdatasync calls (including the one that seals a
 * file on roll), not wm_log_sync calls. */

/* Opens (creating if needed) the log in opts->dir and recovers it: sealed
 * log files are trusted after their first frame is checked; the last file
 * is scanned and cut (ftruncate + fdatasync) at the first torn, corrupt or
 * out-of-sequence frame. Everything recovered counts as durable.
 * opts is not retained. On success *out owns the log (wm_log_close).
 * Errors: WM_EINVAL (bad opts), WM_EBUSY (another wm_log_t holds the
 * directory's lock), WM_ECORRUPT (a sealed file's first frame is bad;
 * nothing is modified), WM_EIO, WM_ENOMEM. */
int wm_log_open(const wm_log_opts_t *opts, wm_log_t **out);
/* Writes buffered records and, unless the mode is NEVER, fdatasyncs them
 * (errors are lost: sync first if you need them), then frees everything.
 * No reader or iterator may be in use. NULL is a no-op. */
void wm_log_close(wm_log_t *log);

/* Appends one record (payload copied; len <= WM_LOG_FRAME_MAX) and assigns
 * the next sequence (first is 1); *pos (may be NULL) gets its address.
 * Data is buffered until wm_log_sync or the buffer fills, and is not visible
 * to readers before wm_log_sync. A file rolls before a frame that would
 * push it past file_bytes.
 * Errors: WM_EINVAL, WM_ELIMIT (too large), WM_ESTATE (log failed before),
 * WM_EIO (this call failed; the log is now failed), WM_ENOMEM. */
int wm_log_append(wm_log_t *log, const void *payload, uint32_t len, wm_log_pos_t *pos);
/* Writes buffered frames and makes them durable per the mode (ALWAYS:
 * fdatasync if anything was written since the last one; INTERVAL: fdatasync
 * if the interval has passed - call it periodically; NEVER: write only),
 * then publishes them to readers. On success *durable_seq (may be NULL) is
 * the highest sequence the caller may acknowledge; untouched on error.
 * Errors: WM_EIO (this call failed), WM_ESTATE (failed before). */
int wm_log_sync(wm_log_t *log, uint64_t *durable_seq);

uint64_t wm_log_last_seq(const wm_log_t *log);   /* highest appended */
uint64_t wm_log_first_seq(const wm_log_t *log);  /* lowest present, 0 if empty */
/* Highest sequence published by wm_log_sync (what readers can see). */
uint64_t wm_log_durable_seq(const wm_log_t *log);
/* 0, or the sticky error (WM_EIO) after a failed write/fdatasync. */
int wm_log_error(const wm_log_t *log);
void wm_log_stats(const wm_log_t *log, wm_log_stats_t *out);

/* Reads the durable record at pos (from wm_log_append or an iterator; the
 * file ordinal stays valid across reopen). On success *buf is a
 * wm_malloc'd copy of the payload (caller wm_frees) and *len its size.
 * Errors: WM_ENOTFOUND (not durable yet, or pos outside the log),
 * WM_ECORRUPT (no frame with that seq at pos, or its CRC fails), WM_EIO,
 * WM_ENOMEM. Safe on any thread. */
int wm_log_read_at(wm_log_t *log, const wm_log_pos_t *pos, void **buf, uint32_t *len);

/* Sequential reader from a sequence number (inclusive; older than the log
 * means from the start) over durable records. It can tail the log: after 0
 * ("no more for now") a later call returns records synced since.
 * One iterator belongs to one thread; many iterators may run at once.
 * Positioning is a binary search over log files, then a scan within one. */
typedef struct wm_log_iter wm_log_iter_t;
int wm_log_iter_open(wm_log_t *log, uint64_t from_seq, wm_log_iter_t **out);
/* Returns 1 with the next record (payload valid until the next call), 0 at the
 * end, or a negative error (WM_ECORRUPT for a bad or out-of-order frame below
 * the durable end, WM_EIO, WM_ENOMEM). pos, payload, len may be NULL. */
int wm_log_iter_next(wm_log_iter_t *it, wm_log_pos_t *pos, const void **payload, uint32_t *len);
void wm_log_iter_close(wm_log_iter_t *it);

#endif
