/*
 * log.h - the per-partition append-only event log, Waymark's source of truth.
 *
 * A log is a directory of segment files "00000000000000000001.seg", each named
 * by the sequence number of its first record. A frame is
 *
 *     u32 magic 'WMLF' | u32 payload_len | u64 seq | u32 crc32c(seq..payload) | payload
 *
 * (little-endian). Appends are buffered; wm_log_sync() makes everything
 * appended so far durable according to the fsync mode and returns the
 * highest durable sequence. Recovery on open scans the last segment and
 * truncates a torn or corrupt tail; records before it are never touched.
 *
 * Thread model: one writer thread owns append/sync. Readers (wm_log_read_at,
 * iterators) may run on other threads concurrently; they see only durable
 * (synced) data.
 */
#ifndef WAYMARK_LOG_H
#define WAYMARK_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum wm_fsync_mode {
    WM_FSYNC_ALWAYS = 0,   /* fdatasync before every acknowledgement (group commit) */
    WM_FSYNC_INTERVAL,     /* fdatasync at most every interval_ms; ack after write() */
    WM_FSYNC_NEVER,        /* leave it to the OS; ack after write() */
} wm_fsync_mode_t;

int wm_fsync_mode_parse(const char *s, wm_fsync_mode_t *out);
const char *wm_fsync_mode_name(wm_fsync_mode_t m);

typedef struct wm_log_opts {
    const char *dir;                  /* created if missing */
    wm_fsync_mode_t fsync_mode;
    uint32_t fsync_interval_ms;       /* for WM_FSYNC_INTERVAL; 0 -> 100 */
    uint64_t segment_bytes;           /* roll threshold; 0 -> WM_LOG_SEGMENT_BYTES */
} wm_log_opts_t;

typedef struct wm_log wm_log_t;

/* A record's address in the log: stable for the life of the data. */
typedef struct wm_log_pos {
    uint64_t seq;
    uint32_t segment;     /* index of the segment file (its ordinal, not its name) */
    uint64_t offset;      /* byte offset of the frame within the segment */
} wm_log_pos_t;

typedef struct wm_log_stats {
    uint64_t appended_records;
    uint64_t appended_bytes;
    uint64_t syncs;
    uint64_t sync_ns_total;       /* sum of fsync durations */
    uint64_t sync_ns_max;
    uint64_t truncated_bytes_on_open;
    uint32_t segments;
} wm_log_stats_t;

int wm_log_open(const wm_log_opts_t *opts, wm_log_t **out);
void wm_log_close(wm_log_t *log);

/* Appends one record; assigns the next sequence (first is 1) into *pos.
 * Data is buffered until wm_log_sync or the buffer fills. */
int wm_log_append(wm_log_t *log, const void *payload, uint32_t len, wm_log_pos_t *pos);
/* Writes buffered frames and makes them durable per the mode. On return
 * *durable_seq is the highest sequence the caller may acknowledge.
 * After an I/O error the log stays in an error state (WM_ESTATE). */
int wm_log_sync(wm_log_t *log, uint64_t *durable_seq);

uint64_t wm_log_last_seq(const wm_log_t *log);   /* highest appended */
uint64_t wm_log_first_seq(const wm_log_t *log);  /* lowest present, 0 if empty */
void wm_log_stats(const wm_log_t *log, wm_log_stats_t *out);

/* Reads the payload at pos into buf (wm_malloc'd, caller frees). Verifies CRC. */
int wm_log_read_at(wm_log_t *log, const wm_log_pos_t *pos, void **buf, uint32_t *len);

/* Sequential reader from a sequence number (inclusive) to the end. */
typedef struct wm_log_iter wm_log_iter_t;
int wm_log_iter_open(wm_log_t *log, uint64_t from_seq, wm_log_iter_t **out);
/* Returns 1 with the next record (payload valid until the next call), 0 at the
 * end, or a negative error. */
int wm_log_iter_next(wm_log_iter_t *it, wm_log_pos_t *pos, const void **payload, uint32_t *len);
void wm_log_iter_close(wm_log_iter_t *it);

/* CRC32C (Castagnoli), hardware-accelerated where available. */
uint32_t wm_crc32c(uint32_t crc, const void *data, size_t n);

#endif
