/*
 * rt_internal.h - internal to src/journey/: the runtime's stored structures
 * and the helpers shared by runtime.c (execution), rt_send.c (delivery
 * rules, messages, leads) and rt_query.c (read-only answers).
 */
#ifndef WAYMARK_JOURNEY_RT_INTERNAL_H
#define WAYMARK_JOURNEY_RT_INTERNAL_H

#include "runtime.h"
#include "waymark/limits.h"
#include "waymark/bytes.h"

/* Instance states:
 *
 *   (entry) --> RUNNING --wait node--> WAITING --timer--> RUNNING
 *                  |   \--wait_event--> WAIT_EVENT --event/timeout--> RUNNING
 *                  |
 *                  +--exit node / goal / exit_when / stop / jump--> (deleted, j_user updated)
 *
 * RUNNING never survives a transaction: advance() runs until the instance
 * waits or ends. WAITING and WAIT_EVENT instances have exactly one timer
 * (due time, or the wait_event timeout; INT64_MAX = none).
 */
enum { ST_RUNNING = 1, ST_WAITING = 2, ST_WAIT_EVENT = 3, ST_HOLD = 4 };
/* ST_HOLD: a send node whose message falls into quiet hours with mode
 * "hold" keeps the instance at that node until the window opens; the timer
 * then runs the send node again (on the engine clock, so a test clock works). */

#define RT_NAME_MAX 64

typedef struct wm_inst {
    uint64_t id;
    uint64_t user_id;
    uint32_t version;
    uint32_t node;
    uint8_t state;
    uint8_t arm;                /* split arm index + 1, 0 = none */
    uint8_t converted;
    uint8_t control;            /* in a control arm: sends are suppressed */
    uint32_t steps;             /* nodes executed, makes message ids unique per visit */
    int64_t entered_ms;
    int64_t node_since_ms;
    int64_t due_ms;             /* timer due (wait or wait_event timeout), INT64_MAX none */
    int64_t goal_deadline_ms;
    wm_log_pos_t entry_pos;     /* the entry event in the log (seq 0 = none) */
    uint32_t jid;               /* id of "project\0key" in the name table, 0 = not yet known
                                 * (a format 1 row of a journey without one) */
    char project[RT_NAME_MAX];
    char key[RT_NAME_MAX];
    char match[RT_NAME_MAX];    /* entry event's value of the wait_event match property */
    char item[RT_NAME_MAX];     /* product id the journey is about (entry event / date entry) */
} wm_inst_t;

/* Per (user, journey): live instances and re-entry bookkeeping. */
typedef struct wm_juser {
    uint64_t live[WM_JUSER_LIVE_MAX]; /* live instance ids, 0 = free slot */
    int64_t last_entered_ms;
    int64_t last_exit_ms;
    uint32_t entries;
    uint8_t cond_state;         /* CONDITION entry: last evaluation (edge detection) */
    uint8_t old_key;            /* not stored: read under the format 1 key (by names),
                                 * which the next write replaces */
    uint8_t pad[2];
} wm_juser_t;

/* Stored forms: compact and versioned (format 2: a waiting instance is ~30
 * bytes, not the 344 of the in-memory struct; a user/journey row ~15; the
 * format 1 rows of older stores are still read). The instance id is the
 * row's key and not repeated in it. Encoding needs in->jid set; decoding
 * fills project and key from names (NULL: left empty, for tests). */
#define WM_INST_ENC_MAX (1 + 10 + 5 + 5 + 5 + 3 + 5 + 4 * 10 + 10 + 5 + 10 + 2 * RT_NAME_MAX)
size_t wm__inst_encode(const wm_inst_t *in, unsigned char *buf);
bool wm__inst_decode(wm_names_t *names, uint64_t id, const void *data, size_t len, wm_inst_t *in);
#define WM_JUSER_ENC_MAX (1 + 1 + 10 * WM_JUSER_LIVE_MAX + 10 + 10 + 5 + 1)
size_t wm__juser_encode(const wm_juser_t *ju, unsigned char *buf);
bool wm__juser_decode(const void *data, size_t len, wm_juser_t *ju);

/* Statistics kinds kept per (journey, version, node[, aux]). */
enum {
    STAT_ENTERED = 1,           /* node entered */
    STAT_PASSED = 2,            /* node left towards another node */
    STAT_EXITED = 3,            /* instance ended at node */
    STAT_WAITING = 4,           /* gauge: instances waiting at node */
    STAT_EDGE = 5,              /* aux = target node */
    STAT_ARM_ENTERED = 6,       /* node = split node, aux = arm */
    STAT_ARM_CONVERTED = 7,
    STAT_JOURNEY_ENTERED = 8,   /* node = 0xffff */
    STAT_GOAL = 9,              /* node = 0xffff */
    STAT_SENT = 10,             /* message prepared at node */
    STAT_SUPPRESSED = 11,       /* message suppressed at node */
};
#define STAT_NODE_JOURNEY 0xffffu

struct wm_jrt {
    MDB_env *env;
    wm_jreg_t *reg;
    wm_jrt_host_t host;
    MDB_dbi inst, juser, timer, out, umsg, freq, cnt, inbox, lead, stat, ops, meta, entries;
    bool old_juser_keys;        /* j_user may hold format 1 keys (a store from before format 2) */
    _Atomic int64_t next_due;   /* cached earliest timer */
    uint64_t next_inst;         /* writer thread only */
    uint64_t next_op;

    /* messages created by the current txn, handed to the dispatcher on commit */
    wm_dispatch_msg_t *pending;
    uint32_t n_pending, cap_pending;
    int64_t txn_min_due;        /* earliest timer set in the current txn */
};

/* ---- rt_query.c ---- */
int wm__jrt_read_cursor(wm_jrt_t *rt, MDB_dbi dbi, MDB_txn **txn, MDB_cursor **c);
void wm__jrt_read_done(MDB_txn *txn, MDB_cursor *c);

/* ---- runtime.c ---- */
const wm_json_t *wm__rt_profile(wm_jtx_t *t, uint64_t user_id);
int wm__rt_profile_store(wm_jtx_t *t, uint64_t user_id, const wm_json_t *profile);
int wm__rt_stat_add(wm_jtx_t *t, const char *project, const char *key, uint32_t version,
                    uint32_t node, uint8_t kind, uint32_t aux, int64_t delta);
/* Queues an op event of the user (event name, properties object text). */
int wm__rt_op_event(wm_jtx_t *t, uint64_t user_id, const char *project, const char *event,
                    const char *props_json, bool business);
int wm__rt_tz_offset(wm_jtx_t *t, const wm_json_t *profile, const char *tz_from,
                     const char *default_tz, int64_t at_ms);
const wm_json_t *wm__rt_item(wm_jtx_t *t, const char *project, const char *type, const char *id);
int wm__rt_enter_other(wm_jtx_t *t, uint64_t user_id, const char *project, const char *key,
                       const char *item, const wm_log_pos_t *pos);

/* ---- rt_send.c ---- */
int wm__rt_send(wm_jtx_t *t, wm_inst_t *in, const wm_jversion_t *v, const wm_jnode_t *n,
                const wm_json_t *event);
int wm__rt_webhook(wm_jtx_t *t, wm_inst_t *in, const wm_jversion_t *v, const wm_jnode_t *n,
                   const wm_json_t *event);
int wm__rt_lead(wm_jtx_t *t, wm_inst_t *in, const wm_jversion_t *v, const wm_jnode_t *n,
                const wm_json_t *event);
int wm__rt_cmd_delivery(wm_jtx_t *t, uint64_t user_id, const wm_json_t *cmd);
int wm__rt_cmd_receipt(wm_jtx_t *t, uint64_t user_id, const wm_json_t *cmd);
int wm__rt_cmd_lead(wm_jtx_t *t, uint64_t user_id, const wm_json_t *cmd);
int wm__rt_cmd_inbox_read(wm_jtx_t *t, uint64_t user_id, const wm_json_t *cmd);
int wm__rt_cmd_consent(wm_jtx_t *t, uint64_t user_id, const wm_json_t *cmd);
int wm__rt_cmd_retry(wm_jtx_t *t, uint64_t user_id, const wm_json_t *cmd);

#endif
