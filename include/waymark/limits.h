/*
 * limits.h - every bound of Waymark in one place, each with its reason.
 */
#ifndef WAYMARK_LIMITS_H
#define WAYMARK_LIMITS_H

/* JSON nesting: Sensors records are 3 levels deep; 64 leaves room for custom
 * payloads and keeps the recursive parser's stack use under 64 frames. */
#define WM_JSON_DEPTH_MAX 64

/* Name rule from every Sensors SDK: ^[a-zA-Z_$][a-zA-Z0-9_$]{0,99}$ */
#define WM_NAME_LEN_MAX 100
/* distinct_id, original_id, item_id and identity values: 1..255 (SDK checks). */
#define WM_ID_LEN_MAX 255
/* String property values: Java and Go SDKs allow 8192; longer is rejected. */
#define WM_STRING_VALUE_MAX 8192
/* Properties per record: generous vs. the ~100 preset + custom a client sends. */
#define WM_PROPERTIES_MAX 1000
/* Identities per record: an ID map rarely has more than a handful. */
#define WM_IDENTITIES_MAX 32
/* One record's JSON: 50..1000 records x 8 KB strings fit a few MB per batch. */
#define WM_RECORD_BYTES_MAX (1u << 20)
/* One HTTP request body (after transfer, before gunzip). */
#define WM_HTTP_BODY_MAX (16u << 20)
/* Decompressed payload: bounds gzip bombs. */
#define WM_DECODED_BYTES_MAX (64u << 20)
/* Records per request: Java SDK's MAX_FLUSH_BULK_SIZE is 1000; allow headroom. */
#define WM_BATCH_RECORDS_MAX 10000
/* A log frame's payload. */
#define WM_LOG_FRAME_MAX (WM_RECORD_BYTES_MAX + 4096)
/* A log segment rolls at this size: bounds recovery scan time. */
#define WM_LOG_SEGMENT_BYTES (64u << 20)
/* Partitions: one writer thread each. */
#define WM_PARTITIONS_MAX 64
/* Pending records queued to one partition writer before 503 Retry-After. */
#define WM_PARTITION_QUEUE_MAX 65536
/* Dedup window entries per partition (client retries within minutes). */
#define WM_DEDUP_WINDOW_MAX 1000000
/* Segment API: 32 KB per message and 500 KB per batch (Segment's limits). */
#define WM_SEGMENT_MESSAGE_MAX (32u << 10)
#define WM_SEGMENT_BATCH_MAX (500u << 10)

/* `waymark gen`: login ids are "c" + 8 digits, so at most 90M distinct people;
 * 10M keeps a run to minutes. Ten years of days bounds the calendar maths. */
#define WM_GEN_USERS_MAX 10000000
#define WM_GEN_DAYS_MAX 3660

#endif
