/*
 * log_internal.h - test hooks of the event log (src/store/log.c).
 *
 * Disk-full and EIO are hard to produce on demand (a read-only directory does
 * not stop root, and no small filesystem is available to tests), so the log
 * routes its write and fdatasync calls through one place where a test can
 * make the next call fail with a chosen errno. The log then runs exactly the
 * code a real failure runs: it enters the sticky error state.
 */
#ifndef WAYMARK_STORE_LOG_INTERNAL_H
#define WAYMARK_STORE_LOG_INTERNAL_H

#include "waymark/log.h"

typedef enum wm__log_op {
    WM__LOG_OP_NONE = 0,
    WM__LOG_OP_WRITE,      /* the next pwrite/pwritev of a file */
    WM__LOG_OP_FSYNC,      /* the next fdatasync of a file */
} wm__log_op_t;

/* Makes the next system call of kind `op` fail with errno `errnum` without
 * touching the file. Writer thread only; one pending fault at a time
 * (WM__LOG_OP_NONE clears it). */
void wm__log_inject_error(wm_log_t *log, wm__log_op_t op, int errnum);

#endif
