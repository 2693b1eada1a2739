/*
 * payload.h - internal: the format of a partition log payload.
 *
 * Every frame of a partition log (log.c) carries one payload: this fixed
 * header (little-endian, host layout) followed by the canonical record JSON
 * or a command. The engine writes them; the journey and audience runtimes
 * write operational events in the same form into their op queues, which the
 * engine appends to the log after the transaction that produced them.
 */
#ifndef WAYMARK_STORE_PAYLOAD_H
#define WAYMARK_STORE_PAYLOAD_H

#include <stdint.h>

/* Log payload header (little-endian), followed by the canonical record JSON. */
#define WM_PAYLOAD_RECORD 1
#define WM_PAYLOAD_MERGE 2
#define WM_PFLAG_USER_CREATED 0x01
#define WM_PFLAG_OPQ 0x02           /* produced by the journey runtime's op queue; from_hw = op key */
#define WM_PFLAG_BOOKKEEPING 0x04   /* operational event: indexed, but drives no journey */
#define WM_PFLAG_CONSENT 0x08       /* an Unsubscribe event: the runtime sees it even with
                                     * no journey published */
#define WM_PFLAG_NO_REC 0x10        /* the event is none the recommendations count (set when
                                     * routed; without it the apply looks for "fund_code") */
#define WM_PAYLOAD_COMMAND 3        /* JSON {"cmd":...} for the journey runtime */

typedef struct wm_payload_hdr {
    uint8_t kind;           /* WM_PAYLOAD_* */
    uint8_t rec_type;       /* wm_rec_type_t for records */
    uint8_t flags;          /* WM_PFLAG_* */
    uint8_t reserved;
    uint32_t from_part;     /* merge: partition of the merged-away user */
    uint64_t user_id;       /* record's user; merge: surviving user */
    int64_t time_ms;
    uint64_t dedup;         /* dedup hash or 0 */
    uint64_t from_user;     /* merge: user folded in */
    uint64_t from_hw;       /* merge: from_part's last seq routed before the merge */
} wm_payload_hdr_t;

#endif
