/*
 * journey.h - journey definitions: parse, validate, compile; templates.
 *
 * A journey definition is JSON (docs/journeys.md). wm_journey_compile checks
 * it completely - every error names the node and the field - and produces an
 * immutable compiled form the runtime executes: nodes in an array, edges as
 * node indexes, conditions compiled with the rules module, durations in ms.
 *
 * Thread safety: a compiled journey is immutable and shared by all
 * partitions; free it only when no instance runs on it.
 */
#ifndef WAYMARK_JOURNEY_H
#define WAYMARK_JOURNEY_H

#include <stdbool.h>
#include <stdint.h>

#include "waymark/buf.h"
#include "waymark/json.h"
#include "waymark/rules.h"

#define WM_JOURNEY_NODES_MAX 256
#define WM_JOURNEY_ARMS_MAX 16
#define WM_JOURNEY_NONE UINT32_MAX     /* "no next node" */

typedef enum wm_jnode_type {
    WM_JN_WAIT,
    WM_JN_WAIT_EVENT,
    WM_JN_CONDITION,
    WM_JN_BRANCH,           /* multi-branch: first matching arm, else */
    WM_JN_SPLIT,            /* percent arms, deterministic per user */
    WM_JN_SEND,
    WM_JN_ADVISOR_TASK,
    WM_JN_UPDATE_PROFILE,
    WM_JN_SET_TAG,
    WM_JN_WEBHOOK,
    WM_JN_JUMP,
    WM_JN_EXIT,
} wm_jnode_type_t;

typedef enum wm_wait_kind {
    WM_WAIT_DURATION,       /* duration_ms */
    WM_WAIT_TIME_OF_DAY,    /* next hh:mm in the user's zone on an allowed weekday */
    WM_WAIT_DATE_PROP,      /* profile/item date property + offset_ms */
    WM_WAIT_TRADING_DAY,    /* next trading day at hh:mm (project calendar) */
} wm_wait_kind_t;

typedef struct wm_jarm {
    char *name;             /* split arm name; branch arm label (optional) */
    uint32_t percent;       /* split */
    bool control;           /* split: control arm (no messages) */
    wm_cond_t *cond;        /* branch */
    uint32_t next;
} wm_jarm_t;

typedef struct wm_jnode {
    char *id;
    wm_jnode_type_t type;
    uint32_t next;                  /* default successor (WM_JOURNEY_NONE for exit) */
    union {
        struct {
            wm_wait_kind_t kind;
            int64_t duration_ms;
            int hh, mm;
            uint8_t weekdays;       /* bit 0 = Monday .. bit 6 = Sunday; 0x7f = any */
            char *date_prop;        /* "profile.birthday" / "item.maturity_date" */
            int64_t offset_ms;      /* may be negative (maturity - 30d) */
            char *tz;               /* TIME_OF_DAY: "user" (profile zone, else
                                     * settings.default_tz) or a zone name */
        } wait;
        struct {
            char **events;
            uint32_t n_events;
            char *match_prop;       /* the event property that must equal the entry event's */
            wm_cond_t *where;
            int64_t timeout_ms;
            uint32_t on_event, on_timeout;
        } wait_event;
        struct {
            wm_cond_t *cond;
            uint32_t yes, no;
        } condition;
        struct {
            wm_jarm_t *arms;
            uint32_t n_arms;
            uint32_t otherwise;     /* else target */
        } branch;                   /* also used by SPLIT (arms with percent) */
        struct {
            char *channel;
            char *template_key;
            char *item_type;        /* product content: the item recommended ... */
            char *item_key;         /* ... found by this event/profile property */
            bool no_suitability;    /* "suitability": false - a service message about a
                                     * held product, not a recommendation */
        } send;
        struct {
            char *queue;
            int64_t sla_ms;
            char *script;           /* template key of the talk track */
            char *priority;         /* "urgent" | "high" | "normal" (default) | "low" */
            char *item_type;        /* optional product the task is about ... */
            char *item_key;         /* ... found by this event property */
        } advisor;
        struct {
            wm_json_t *set;         /* properties to set (deep copy, owned) */
        } update_profile;
        struct {
            char *tag;
            wm_json_t *value;
        } set_tag;
        struct {
            char *url;
            char *body_template;
        } webhook;
        struct {
            char *journey_key;
        } jump;
    } u;
} wm_jnode_t;

typedef enum wm_entry_kind {
    WM_ENTRY_EVENT,             /* entry.event (+ where) */
    WM_ENTRY_CONDITION,         /* entry.condition becomes true (segment-like) */
    WM_ENTRY_SCHEDULE,          /* entry.schedule: once at / cron, over entry.condition */
    WM_ENTRY_DATE_PROP,         /* entry.date_property +- offsets (maturity - 30d, birthday) */
    WM_ENTRY_API,               /* POST /api/v1/journeys/{key}/enter */
    WM_ENTRY_SEGMENT,           /* entry.segment: the customer enters the segment */
} wm_entry_kind_t;

typedef enum wm_reentry {
    WM_REENTRY_NEVER,
    WM_REENTRY_ANY_TIME,
    WM_REENTRY_AFTER_EXIT,
} wm_reentry_t;

typedef struct wm_freq_cap {
    char *channel;              /* NULL = all channels */
    uint32_t max;
    int64_t per_ms;
} wm_freq_cap_t;

typedef struct wm_journey_def {
    char *key;
    char *name;
    uint32_t version;           /* assigned by the catalog on publish; 0 in drafts */
    struct {
        wm_entry_kind_t kind;
        char *event;
        wm_cond_t *where;       /* event filter (EVENT) */
        wm_cond_t *condition;   /* CONDITION / SCHEDULE audience */
        char *schedule_at;      /* SCHEDULE once: datetime text */
        char *cron;             /* SCHEDULE cron: "m h dom mon dow" */
        char *date_prop;        /* DATE_PROP: "item.maturity_date" / "profile.birthday" */
        int64_t *offsets_ms;    /* DATE_PROP: e.g. -30d, -15d, -7d, -1d */
        uint32_t n_offsets;
        char *item_type;        /* DATE_PROP on item.*: the item set ("wealth") ... */
        char *item_key;         /* ... and the profile property holding the user's
                                 * item ids (list or one id; default "held_products") */
        char *segment;          /* SEGMENT: the segment key; SCHEDULE: audience = members */
        wm_reentry_t reentry;
        int64_t reentry_wait_ms;
        uint32_t max_concurrent; /* live instances per user (default 1) */
        uint64_t entry_cap;      /* total entries, 0 = unlimited */
    } entry;
    struct {
        char *event;            /* conversion event */
        wm_cond_t *where;
        int64_t within_ms;
    } goal;
    struct {
        char *event;            /* exit when this event happens ... */
        wm_cond_t *where;       /* filter on that event's properties (optional) */
        wm_cond_t *condition;   /* ... or this condition holds (checked at every node) */
    } exit_when;
    struct {
        char *quiet_from, *quiet_to;    /* "21:00", "08:30" */
        char *quiet_tz_from;            /* "user.timezone" (profile property path) */
        char *default_tz;               /* "Asia/Shanghai" */
        bool quiet_hold;                /* hold until the window opens, else skip */
        wm_freq_cap_t *caps;
        uint32_t n_caps;
        int priority;                   /* higher wins when a cap leaves room for one */
    } settings;
    wm_jnode_t *nodes;
    uint32_t n_nodes;
    uint32_t start;             /* index of the first node */
    wm_arena_t arena;           /* owns every string, array and JSON copy above */
} wm_journey_def_t;

/* One validation problem: the node ("" for journey-level) and the field. */
typedef struct wm_journey_error {
    char node[64];
    char field[96];
    char msg[200];
} wm_journey_error_t;

/* What the validator may check references against. Any list may be NULL
 * (then that kind of reference is not checked). */
typedef struct wm_journey_refs {
    const char *const *channels;   uint32_t n_channels;
    const char *const *templates;  uint32_t n_templates;
    const char *const *events;     uint32_t n_events;     /* known event names */
    const char *const *properties; uint32_t n_properties; /* known profile properties */
    const char *const *journeys;   uint32_t n_journeys;   /* jump targets */
} wm_journey_refs_t;

/*
 * Validates and compiles. On problems returns WM_EINVAL and fills up to
 * max_errs errors (*n_errs = how many were found, possibly more than
 * max_errs; every error is collected, not just the first). Checks: unknown
 * node types and fields, missing required fields, bad values, missing or
 * dangling next/yes/no/arm targets, unreachable nodes, a cycle that passes
 * no wait/wait_event node, unknown channel/template/event/property/journey
 * (per refs; refs NULL or a NULL list = unchecked), split percents not
 * summing to 100 or more than one control arm, duplicate node ids, bad
 * durations/times/weekdays/cron, bad conditions (the message starts with the
 * condition's JSON path, e.g. "$.all[1].op: ...").
 * Returns 0 with *out (free with wm_journey_free; it does not point into
 * def, which may be freed), WM_EINVAL, or WM_ENOMEM (*out NULL on errors).
 * errs may be NULL when max_errs is 0.
 */
int wm_journey_compile(const wm_json_t *def, const wm_journey_refs_t *refs, wm_journey_def_t **out,
                       wm_journey_error_t *errs, uint32_t max_errs, uint32_t *n_errs);
void wm_journey_free(wm_journey_def_t *j);

/* Parses text as JSON and compiles it. A JSON syntax error is reported as
 * one journey-level error (field "", message with the byte offset) and
 * WM_EINVAL. Otherwise as wm_journey_compile. */
int wm_journey_compile_text(const char *text, size_t len, const wm_journey_refs_t *refs,
                            wm_journey_def_t **out, wm_journey_error_t *errs, uint32_t max_errs,
                            uint32_t *n_errs);

/* Collects reference names for wm_journey_refs_t from a config document:
 * doc[member] may be an OBJECT (its member names: channels.json) or an
 * ARRAY of objects (each one's "key", else "name": templates.json). The
 * array lives in arena a; the names point into doc (keep both alive while
 * the refs are used). Returns 0, WM_EINVAL (member missing or of
 * another type), WM_ENOMEM. */
int wm_journey_names_collect(wm_arena_t *a, const wm_json_t *doc, const char *member,
                             const char *const **names, uint32_t *n);
/* Node index by id, or WM_JOURNEY_NONE. */
uint32_t wm_journey_node_index(const wm_journey_def_t *j, const char *id);
const char *wm_jnode_type_name(wm_jnode_type_t t);

/* Deterministic split: the arm index for (journey key, split node id, user
 * id), stable across versions and processes (FNV-1a + a 64-bit mix, bucket
 * 0..9999, arms by cumulative percent*100). The node id is part of the hash
 * so that two splits in one journey are independent of each other; renaming
 * the split node reshuffles its users. */
/* The bucket 0..9999 the user falls in for this split (exposed for reports). */
uint32_t wm_split_bucket(const char *journey_key, const char *node_id, uint64_t user_id);
uint32_t wm_split_arm(const wm_journey_def_t *j, const wm_jnode_t *split, uint64_t user_id);

/* ---- templates ---- */

/*
 * Template text with placeholders {{profile.name}}, {{event.amount}},
 * {{item.fund_name}}, {{journey.name}}, with an optional fallback:
 * {{profile.name | default: "客户"}}. A placeholder without a fallback whose
 * value is missing makes rendering fail with the variable named.
 */
typedef struct wm_template wm_template_t;

int wm_template_compile(const char *text, wm_template_t **out, char *err, size_t err_len);
void wm_template_free(wm_template_t *t);

/* Resolves a variable ("profile.name") to a JSON value, or NULL if missing. */
typedef const wm_json_t *(*wm_template_lookup_fn)(void *ctx, const char *scope, const char *name);

/* Renders into out. Returns 0, or WM_ENOTFOUND with the missing variable
 * in missing (e.g. "profile.name"). json_escape: escape as a JSON string body. */
int wm_template_render(const wm_template_t *t, wm_template_lookup_fn lookup, void *ctx,
                       bool json_escape, wm_buf_t *out, char *missing, size_t missing_len);

/* The variables a template uses (for validation against known properties). */
void wm_template_vars(const wm_template_t *t, const char *const **vars, uint32_t *n);

#endif
