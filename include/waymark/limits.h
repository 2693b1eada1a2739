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
/* A console file's URL path, decoded: the built files' names are short
 * (assets/index-[hash].js); longer paths are SPA routes or probes. */
#define WM_STATIC_PATH_MAX 1024
/* Decompressed payload: bounds gzip bombs. */
#define WM_DECODED_BYTES_MAX (64u << 20)
/* Records per request: Java SDK's MAX_FLUSH_BULK_SIZE is 1000; allow headroom. */
#define WM_BATCH_RECORDS_MAX 10000
/* A log frame's payload. */
#define WM_LOG_FRAME_MAX (WM_RECORD_BYTES_MAX + 4096)
/* A log file rolls at this size: bounds recovery scan time. */
#define WM_LOG_SEGMENT_BYTES (64u << 20)
/* LMDB map of a partition's state and of the identity index: address space
 * only (the files stay sparse), so large. A build knob because valgrind's
 * address space holds fewer than three 64 GiB maps (instruction counts of an
 * import: -DWM_LMDB_MAP_BYTES='(4ull << 30)'). */
#ifndef WM_LMDB_MAP_BYTES
#define WM_LMDB_MAP_BYTES (64ull << 30)
#endif
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

/* Dispatcher. Message ids travel as a header and as an Idempotency-Key that
 * providers store for de-duplication; deterministic ids are short hashes, so
 * 127 is roomy and keeps every header line small. */
#define WM_DISPATCH_ID_LEN_MAX 127
/* Channel names (UTF-8 bytes), sent percent-encoded in a header. */
#define WM_DISPATCH_CHANNEL_LEN_MAX 255
/* Endpoint URLs: far above any real one, bounds the copy per message. */
#define WM_DISPATCH_URL_MAX 2048
/* One request body: SMS/push/WeCom bodies are a few KB; webhooks carry a
 * data object. 1 MB bounds the memory a full queue can pin. */
#define WM_DISPATCH_BODY_MAX (1u << 20)
/* Concurrent requests: each holds an easy handle and a connection. */
#define WM_DISPATCH_IN_FLIGHT_MAX 4096
/* Queued messages: the outbox on disk is the real queue; this only bounds RAM. */
#define WM_DISPATCH_QUEUE_MAX 10000000
/* Attempts per message: with backoff capped at minutes, 100 is days of retries. */
#define WM_DISPATCH_ATTEMPTS_MAX 100

/* Condition language. Nesting: hand-written journey conditions are 3-5 deep;
 * 32 bounds eval's recursion (no heap during eval). Nodes: a generated
 * segment may list hundreds of clauses; 4096 keeps a program within ~1 MB. */
#define WM_COND_DEPTH_MAX 32
#define WM_COND_NODES_MAX 4096
/* `in` lists: large enough for a fund whitelist, small enough that compile
 * time (sort) and the program stay small. */
#define WM_COND_LIST_MAX 10000
/* Sequence steps: funnels longer than this are not a journey filter. */
#define WM_COND_SEQ_STEPS_MAX 16
/* Regex source: POSIX regcomp cost grows with pattern size. */
#define WM_COND_REGEX_LEN_MAX 1024
/* One (user, counter) daily bucket blob (docs/conditions.md "Buckets"). It is
 * read and rewritten whole on every matching event, copied on the writer's
 * stack and stored as one LMDB value, so it stays small: 16 KB is four 4 KB
 * pages. It always has room for all 90 day heads (36 B each, 3.2 KB), so
 * count/sum/min/max never lose a day; the other ~13 KB hold ~1,640 exact
 * distinct-value hashes (8 B each): 18 distinct values a day for 90 days,
 * or 230 a day for a week. Beyond that the oldest days' value sets are
 * dropped and marked inexact, and eval counts distinct by scanning the
 * user's events instead (exact up to WM_COND_SCAN_EVENTS_MAX). */
#define WM_BUCKETS_BYTES_MAX 16384
/* Events one did or sequence scan of env->events reads (the journey runtime
 * stops there): bounds the scan's time, and the distinct set of a did scan
 * is sized for this many values (16384 slots x 8 B, thread-local). */
#define WM_COND_SCAN_EVENTS_MAX 10000
/* Trading calendars: ten years of holidays and make-up days. */
#define WM_CALENDAR_DAYS_MAX 4000
/* Time zones cached per process (names seen in profiles). */
#define WM_TZ_CACHE_MAX 1024

/* Journey definitions (nodes and arms per journey are in journey.h). A
 * template is one message or webhook body: 64 KB is far above any SMS, push,
 * WeCom or JSON body and bounds a render; 1024 pieces bounds its program. */
#define WM_TEMPLATE_BYTES_MAX (64u << 10)
#define WM_TEMPLATE_SEGMENTS_MAX 1024
/* date_property entry offsets: the seeds use four (30/15/7/1 days before);
 * 32 covers a daily countdown month without unbounded timers per user. */
#define WM_JOURNEY_OFFSETS_MAX 32
/* Events one wait_event node listens for. */
#define WM_JOURNEY_WAIT_EVENTS_MAX 16
/* Frequency caps per journey (one per channel plus an overall cap). */
#define WM_JOURNEY_CAPS_MAX 16

/* ---- partition writer ---- */
/* Records per writer round: bounds one LMDB transaction and the time a
 * round holds acknowledgements back. */
#define WM_APPLY_BATCH_MAX 65536
/* Records per LMDB transaction while replaying the log at start. */
#define WM_REPLAY_TXN_RECORDS 20000
/* A merge waits at most this for the merged user's partition to catch up
 * (it only ever waits for records routed before the merge). */
#define WM_MERGE_WAIT_MS 2000
/* A submit that arrives during log replay waits at most this for it. */
#define WM_READY_WAIT_MS 30000

/* ---- journeys ---- */
/* Due timers fired per transaction: one batch per writer round, so a
 * million timers falling due at once delay an acknowledgement by one batch. */
#define WM_TIMERS_PER_TXN 2000
/* Operational events moved from the op queue to the log per round: bounds
 * the memory a burst of transitions can take. */
#define WM_OPS_PER_ROUND 20000
/* Node steps one transition may take before the instance is ended; the
 * validator forbids cycles without a wait, so this only stops bugs. */
#define WM_ADVANCE_STEPS_MAX 256
/* Live instances of one user examined per event. */
#define WM_LIVE_PER_USER_MAX 64
/* Live instances of one user in one journey (max_concurrent is capped here). */
#define WM_JUSER_LIVE_MAX 8
/* Project names and journey keys with a numeric id in a partition's name
 * table (store/names.h): projects x journeys ever used, kept in memory. */
#define WM_NAMES_MAX (1u << 20)
/* One name of that table: a journey is project (WM_NAME_LEN_MAX) + 0 + key. */
#define WM_NAME_BYTES_MAX 256
/* Send times kept per (user, channel) for frequency caps: a cap above this
 * many sends per window cannot be expressed. */
#define WM_FREQ_KEEP 64
/* Recent events attached to an advisor lead. */
#define WM_LEAD_EVENTS 20
/* Scheduler tick: schedules and date entries are checked this often. */
#define WM_SCHED_TICK_MS 200

/* ---- import ---- */
/* Lines per import chunk (one submit) and its byte bound. */
#define WM_IMPORT_CHUNK_LINES 8192
#define WM_IMPORT_CHUNK_BYTES_MAX (16u << 20)
/* Identity -> user entries the offline import keeps in memory (about 100
 * bytes each; emptied and refilled when full): a known user's records
 * then resolve without B-tree gets. */
#define WM_IMPORT_IDENTITY_CACHE (4u << 20)
/* Rows read to decide a CSV column's type. */
#define WM_CSV_SAMPLE_ROWS 1000

/* ---- audience (tags, segments) ---- */

/* Events a tag or segment may scan for one user (preference tags, exact
 * distinct, counter rebuilds after a publish): the same bound as the
 * journey runtime's trigger scans; 90 days of a very active customer. */
#define WM_AUD_SCAN_EVENTS_MAX 10000
/* Distinct values a preference tag counts over its window; values past
 * this are not counted (a preference over more categories than this is
 * not a preference). */
#define WM_AUD_PREF_VALUES_MAX 256
/* Bytes of preference counts kept per (customer, preference tag): a
 * 30-day window of a few values a day fits many times over; past it the
 * oldest days go first. */
#define WM_AUD_PREF_BYTES_MAX 4096
/* History entries one tag history answer lists. */
#define WM_AUD_HISTORY_MAX 1000
/* Users one background round (publish recompute, clock pass) visits in
 * one transaction: keeps a round near 10-50 ms so ingest interleaves. */
#define WM_AUD_BACKGROUND_USERS 2000
/* Members one export / member listing page may hold. */
#define WM_AUD_PAGE_MAX 10000
/* Products of one customer the recommendation index pairs a new purchase
 * with (co-purchase counts); a customer with more is an outlier. */
#define WM_AUD_REC_HELD_MAX 64
/* Candidate products one recommendation answer considers. */
#define WM_AUD_REC_ITEMS_MAX 20000
/* Segment events journeys handle for one record: a journey that sets a tag
 * may move a segment that starts a journey that sets a tag ...; past this
 * the events stay in the history only (a definition cycle, not a customer). */
#define WM_SEGMENT_EVENTS_PER_RECORD 256
/* Recommendation catalogues (project x item type) kept, and how long one
 * serves before it is read again: new products and popularity show within
 * 5 s, and a campaign's messages do not each read the whole catalogue. */
#define WM_REC_CATALOGS_MAX 8
#define WM_REC_CATALOG_TTL_US 5000000
/* Customers a preview samples. */
#define WM_AUD_SAMPLE 20

/* ---- analytics glue (engine_analytics.c, the query routes) ---- */
/* The compactor turns a partition's log tail into a part once this many
 * records wait, or once the oldest waiting one is WM_ANALYTICS_COMPACT_AGE_MS
 * old: parts of ~100k rows compress well, and queries read at most 10 s of
 * tail from the log. It looks every WM_ANALYTICS_COMPACT_TICK_MS. */
#define WM_ANALYTICS_COMPACT_RECORDS 100000u
#define WM_ANALYTICS_COMPACT_AGE_MS 10000
#define WM_ANALYTICS_COMPACT_TICK_MS 1000
/* Queries running at once on one engine: each may use two threads and
 * WM_QUERY_MEMORY_MAX; more wait for the client to retry (503). */
#define WM_QUERIES_RUNNING_MAX 8
/* A query id (X-Query-Id): [A-Za-z0-9_.-], as a client may choose it. */
#define WM_QUERY_ID_MAX 64
/* One answer sent over HTTP (exports included): larger exports go through
 * `waymark query export` on the data directory. */
#define WM_QUERY_ANSWER_BYTES_MAX (256u << 20)

/* ---- product recommendations (wm_recommend) ---- */
/* Candidate products per call: a bank or brokerage sells thousands of funds
 * and wealth products; 1M bounds the per-call scratch memory (~100 MB). */
#define WM_REC_ITEMS_MAX 1000000
/* Recent views, held products and co-purchase rows per call: a customer's
 * recent history, not a log scan; each bounds one pass of the call. */
#define WM_REC_VIEWS_MAX 100000
#define WM_REC_HELD_MAX 100000
#define WM_REC_CO_MAX 1000000

/* Working memory of one analytics query (rows held, per-group figures,
 * durations kept for medians); past it the query stops with 413. */
#define WM_QUERY_MEMORY_MAX ((size_t)2 << 30)

#endif
