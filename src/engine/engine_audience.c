/*
 * engine_audience.c - tags and segments across partitions: definitions
 * (validate, save, publish), membership counts, lists and exports, set
 * algebra, previews, tag distributions, histories, imports and manual
 * values, product recommendations.
 *
 * Each partition keeps its own users' tags and memberships (audience
 * runtime); this file merges their answers. Counts and set algebra work on
 * the partitions' CRoaring bitmaps (user ids), ORed into one; everything
 * that changes state (manual values, imports, static lists) travels as a
 * command through the user's partition log, so it is durable, ordered with
 * the user's events and applied exactly once.
 */
#include <pthread.h>
#include <roaring/roaring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine_internal.h"
#include "waymark/alloc.h"
#include "waymark/audience.h"
#include "waymark/error.h"
#include "waymark/limits.h"

wm_areg_t *wm__engine_areg(wm_engine_t *e) { return e->areg; }

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static bool is_tag(const char *kind) { return !strcmp(kind, "tag"); }

/* ---- definitions ---- */

#define AUD_ERRS_MAX 64

/* Compiles a definition; refs are checked against the project's saved
 * definitions (a segment may only combine or test segments that exist, a
 * condition only read tags that exist). */
typedef struct compiled {
    wm_tag_def_t *tag;
    wm_segment_def_t *seg;
    wm_aud_error_t errs[AUD_ERRS_MAX];
    uint32_t n_errs;
} compiled_t;

static void add_err(compiled_t *c, const char *path, const char *fmt, const char *name)
{
    if (c->n_errs < AUD_ERRS_MAX) {
        snprintf(c->errs[c->n_errs].path, sizeof c->errs[0].path, "%s", path);
        snprintf(c->errs[c->n_errs].msg, sizeof c->errs[0].msg, fmt, name);
    }
    c->n_errs++;
}

static bool def_exists(wm_engine_t *e, const char *kind, const char *project, const char *key)
{
    wm__aud_row_t row;
    if (wm__catalog_aud_get(e->catalog, kind, project, key, &row))
        return false;
    wm_free(row.draft);
    return true;
}

static void check_refs(wm_engine_t *e, const char *project, const char *self, char **tags, uint32_t n_tags,
                       char **segs, uint32_t n_segs, bool self_is_seg, compiled_t *c)
{
    for (uint32_t i = 0; i < n_tags; i++)
        if (!(!self_is_seg && !strcmp(tags[i], self)) && !def_exists(e, "tag", project, tags[i]))
            add_err(c, "$", "reads tag '%s', which is not defined in this project", tags[i]);
    for (uint32_t i = 0; i < n_segs; i++) {
        if (self_is_seg && !strcmp(segs[i], self))
            add_err(c, "$", "segment '%s' cannot read itself", segs[i]);
        else if (!def_exists(e, "segment", project, segs[i]))
            add_err(c, "$", "reads segment '%s', which is not defined in this project", segs[i]);
    }
}

static int compile_def(wm_engine_t *e, const char *kind, const char *project, const char *json, size_t len,
                       compiled_t *c)
{
    memset(c, 0, sizeof *c);
    int rc;
    if (is_tag(kind)) {
        rc = wm_tag_compile_text(json, len, &c->tag, c->errs, AUD_ERRS_MAX, &c->n_errs);
        if (!rc)
            check_refs(e, project, c->tag->key, c->tag->input_tags, c->tag->n_input_tags,
                       c->tag->input_segments, c->tag->n_input_segments, false, c);
    } else {
        rc = wm_segment_compile_text(json, len, &c->seg, c->errs, AUD_ERRS_MAX, &c->n_errs);
        if (!rc)
            check_refs(e, project, c->seg->key, c->seg->input_tags, c->seg->n_input_tags,
                       c->seg->input_segments, c->seg->n_input_segments, true, c);
    }
    if (rc == WM_ENOMEM)
        return rc;
    return 0;
}

static void compiled_free(compiled_t *c)
{
    wm_tag_free(c->tag);
    wm_segment_free(c->seg);
    c->tag = NULL;
    c->seg = NULL;
}

static const char *compiled_key(const compiled_t *c)
{
    return c->tag ? c->tag->key : c->seg ? c->seg->key : NULL;
}

int wm_engine_aud_validate(wm_engine_t *e, const char *kind, const char *project, const char *json,
                           size_t len, bool *valid, wm_buf_t *out)
{
    compiled_t c;
    int rc = compile_def(e, kind, project, json, len, &c);
    if (rc)
        return rc;
    *valid = c.n_errs == 0;
    wm_aud_errors_json(c.errs, c.n_errs < AUD_ERRS_MAX ? c.n_errs : AUD_ERRS_MAX, out);
    compiled_free(&c);
    return out->err;
}

int wm_engine_aud_save(wm_engine_t *e, const char *kind, const char *project, const char *key,
                       const char *json, size_t len, bool *valid, wm_buf_t *out)
{
    compiled_t c;
    int rc = compile_def(e, kind, project, json, len, &c);
    if (rc)
        return rc;
    const char *k = compiled_key(&c);
    if (!c.n_errs && key && k && strcmp(key, k))
        add_err(&c, "$.key", "the key in the body ('%s') differs from the key in the path", k);
    *valid = c.n_errs == 0;
    if (!*valid) {
        wm_aud_errors_json(c.errs, c.n_errs < AUD_ERRS_MAX ? c.n_errs : AUD_ERRS_MAX, out);
        compiled_free(&c);
        return out->err;
    }
    char *text = wm_strndup(json, len);
    rc = text ? wm__catalog_aud_save(e->catalog, kind, project, k, text) : WM_ENOMEM;
    wm_free(text);
    if (!rc) {
        wm__aud_row_t row;
        if (wm__catalog_aud_get(e->catalog, kind, project, k, &row) == 0) {
            wm_buf_puts(out, "{\"valid\":true,\"key\":");
            wm_buf_json_str(out, k, strlen(k));
            wm_buf_printf(out, ",\"id\":%u,\"status\":", row.id);
            wm_buf_json_str(out, row.status, strlen(row.status));
            wm_buf_printf(out, ",\"version\":%u}", row.version);
            wm_free(row.draft);
        }
    }
    compiled_free(&c);
    return rc ? rc : out->err;
}

/* Whether every partition finished computing this version. */
static bool computed(wm_engine_t *e, const char *kind, uint32_t id, uint32_t version)
{
    for (uint32_t i = 0; i < e->n_parts; i++)
        if (wm__aud_done_version(e->parts[i]->aud, is_tag(kind) ? 't' : 's', id) != version)
            return false;
    return true;
}

static uint64_t seg_count(wm_engine_t *e, uint32_t id)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < e->n_parts; i++)
        n += wm__aud_member_count(e->parts[i]->aud, id);
    return n;
}

int wm_engine_aud_json(wm_engine_t *e, const char *kind, const char *project, const char *key, wm_buf_t *out)
{
    wm__aud_row_t row;
    int rc = wm__catalog_aud_get(e->catalog, kind, project, key, &row);
    if (rc)
        return rc;
    wm_buf_puts(out, "{\"key\":");
    wm_buf_json_str(out, key, strlen(key));
    wm_buf_printf(out, ",\"id\":%u,\"status\":", row.id);
    wm_buf_json_str(out, row.status, strlen(row.status));
    wm_buf_printf(out, ",\"version\":%u,\"updated_ms\":%lld", row.version, (long long)row.updated_ms);
    if (row.version) {
        bool done = computed(e, kind, row.id, row.version);
        wm_buf_printf(out, ",\"computed\":%s", done ? "true" : "false");
        if (!is_tag(kind))
            wm_buf_printf(out, ",\"count\":%llu", (unsigned long long)seg_count(e, row.id));
    }
    wm_buf_printf(out, ",\"definition\":%s}", row.draft);
    wm_free(row.draft);
    return out->err;
}

int wm_engine_aud_list_json(wm_engine_t *e, const char *kind, const char *project, wm_buf_t *out)
{
    wm_buf_printf(out, "{\"%s\":[", is_tag(kind) ? "tags" : "segments");
    int rc = wm__catalog_aud_list_json(e->catalog, kind, project, out);
    wm_buf_puts(out, "]}");
    return rc ? rc : out->err;
}

/* A published definition may only read published definitions. */
static int check_published(wm_engine_t *e, const char *project, char **names, uint32_t n, const char *kind,
                           compiled_t *c)
{
    for (uint32_t i = 0; i < n; i++) {
        wm__aud_row_t row;
        if (wm__catalog_aud_get(e->catalog, kind, project, names[i], &row) == 0) {
            if (!row.version)
                add_err(c, "$", is_tag(kind) ? "reads tag '%s', which is not published yet"
                                             : "reads segment '%s', which is not published yet",
                        names[i]);
            wm_free(row.draft);
        }
    }
    return 0;
}

int wm_engine_aud_publish(wm_engine_t *e, const char *kind, const char *project, const char *key,
                          wm_buf_t *out)
{
    wm__aud_row_t row;
    int rc = wm__catalog_aud_get(e->catalog, kind, project, key, &row);
    if (rc)
        return rc;
    compiled_t c;
    rc = compile_def(e, kind, project, row.draft, strlen(row.draft), &c);
    wm_free(row.draft);
    if (rc)
        return rc;
    if (c.tag) {
        check_published(e, project, c.tag->input_tags, c.tag->n_input_tags, "tag", &c);
        check_published(e, project, c.tag->input_segments, c.tag->n_input_segments, "segment", &c);
    } else if (c.seg) {
        check_published(e, project, c.seg->input_tags, c.seg->n_input_tags, "tag", &c);
        check_published(e, project, c.seg->input_segments, c.seg->n_input_segments, "segment", &c);
        if (c.seg->snapshot_of)
            check_published(e, project, &c.seg->snapshot_of, 1, "segment", &c);
    }
    if (c.n_errs) {
        wm_aud_errors_json(c.errs, c.n_errs < AUD_ERRS_MAX ? c.n_errs : AUD_ERRS_MAX, out);
        compiled_free(&c);
        return WM_EINVAL;
    }
    compiled_free(&c);
    uint32_t version = 0;
    rc = wm__catalog_aud_publish(e->catalog, kind, project, key, &version);
    if (!rc)
        rc = wm__areg_reload(e->areg);
    if (rc)
        return rc;
    /* every partition computes the new version for its users in the background */
    for (uint32_t i = 0; i < e->n_parts; i++)
        wm__part_wake(e->parts[i]);
    wm_buf_puts(out, "{\"key\":");
    wm_buf_json_str(out, key, strlen(key));
    wm_buf_printf(out, ",\"status\":\"published\",\"version\":%u}", version);
    return out->err;
}

/* ---- segments: counts, members, export, algebra ---- */

static const wm_aseg_t *published_seg(wm_engine_t *e, const char *project, const char *key)
{
    return wm__areg_seg(wm__areg_snapshot(e->areg), project, key);
}

/* The members of a segment as one bitmap (caller frees). */
static roaring_bitmap_t *members_of(wm_engine_t *e, uint32_t id)
{
    roaring_bitmap_t *b = roaring_bitmap_create();
    for (uint32_t i = 0; b && i < e->n_parts; i++)
        wm__aud_members_or(e->parts[i]->aud, id, b);
    return b;
}

int wm_engine_segment_count_json(wm_engine_t *e, const char *project, const char *key, wm_buf_t *out)
{
    const wm_aseg_t *g = published_seg(e, project, key);
    if (!g)
        return WM_ENOTFOUND;
    wm_buf_puts(out, "{\"segment\":");
    wm_buf_json_str(out, key, strlen(key));
    wm_buf_printf(out, ",\"version\":%u,\"count\":%llu,\"computed\":%s}", g->version,
                  (unsigned long long)seg_count(e, g->id), computed(e, "segment", g->id, g->version) ? "true" : "false");
    return out->err;
}

/* Set algebra over published segments: {"op":"union"|"intersect"|"except","of":[keys]}. */
int wm_engine_segment_compute_json(wm_engine_t *e, const char *project, const char *op, const char *const *keys,
                                   uint32_t n, wm_buf_t *out)
{
    if (n < 1 || n > WM_SEGMENT_OPERANDS_MAX)
        return WM_EINVAL;
    int kind = !strcmp(op, "union") ? 1 : !strcmp(op, "intersect") ? 2 : !strcmp(op, "except") ? 3 : 0;
    if (!kind)
        return WM_EINVAL;
    roaring_bitmap_t *sets[WM_SEGMENT_OPERANDS_MAX] = {0};
    int rc = 0;
    int64_t t0 = mono_us();
    for (uint32_t i = 0; i < n && !rc; i++) {
        const wm_aseg_t *g = published_seg(e, project, keys[i]);
        if (!g)
            rc = WM_ENOTFOUND;
        else if (!(sets[i] = members_of(e, g->id)))
            rc = WM_ENOMEM;
    }
    int64_t t1 = mono_us();
    uint64_t count = 0;
    if (!rc) {
        roaring_bitmap_t *r = roaring_bitmap_copy(sets[0]);
        for (uint32_t i = 1; r && i < n; i++) {
            if (kind == 1)
                roaring_bitmap_or_inplace(r, sets[i]);
            else if (kind == 2)
                roaring_bitmap_and_inplace(r, sets[i]);
            else
                roaring_bitmap_andnot_inplace(r, sets[i]);
        }
        count = r ? roaring_bitmap_get_cardinality(r) : 0;
        roaring_bitmap_free(r);
    }
    int64_t t2 = mono_us();
    for (uint32_t i = 0; i < n; i++)
        if (sets[i])
            roaring_bitmap_free(sets[i]);
    if (rc)
        return rc;
    wm_buf_printf(out, "{\"op\":\"%s\",\"count\":%llu,\"gather_us\":%lld,\"compute_us\":%lld}", op,
                  (unsigned long long)count, (long long)(t1 - t0), (long long)(t2 - t1));
    return out->err;
}

/* Appends the first identity of `key` ("login_id" -> $identity_login_id ...) of a user. */
typedef struct first_ident {
    const char *want;
    char value[256];
    bool found;
} first_ident_t;

static int first_ident_cb(void *ctx, const char *key, const char *value)
{
    first_ident_t *f = ctx;
    if (f->found || strcmp(key, f->want))
        return 0;
    snprintf(f->value, sizeof f->value, "%s", value);
    f->found = true;
    return 1;
}

static const char *ident_key(const char *name, char *buf, size_t cap)
{
    if (!strcmp(name, "login_id"))
        return WM_ID_KEY_LOGIN;
    if (!strcmp(name, "anonymous_id"))
        return WM_ID_KEY_ANON;
    if (name[0] == '$')
        return name;
    snprintf(buf, cap, "$identity_%s", name);
    return buf;
}

/* Splits "a,b,c" into at most max names (pointers into a copy in arena). */
static uint32_t split_list(wm_arena_t *a, const char *s, const char **names, uint32_t max)
{
    uint32_t n = 0;
    if (!s || !*s)
        return 0;
    char *copy = wm_arena_strndup(a, s, strlen(s));
    for (char *tok = copy ? strtok(copy, ",") : NULL; tok && n < max; tok = strtok(NULL, ","))
        if (*tok)
            names[n++] = tok;
    return n;
}

typedef struct member_row {
    wm_engine_t *e;
    const char *project;
    const char *const *ids;
    uint32_t n_ids;
    const char *const *fields;
    uint32_t n_fields;
    bool csv, nd;
    bool mask;                  /* not admin: personal data masked */
    uint32_t seg_id;
    wm_arena_t *arena;
} member_row_t;

static void csv_cell(wm_buf_t *out, const char *s)
{
    bool quote = strpbrk(s, ",\"\r\n") != NULL;
    if (!quote) {
        wm_buf_puts(out, s);
        return;
    }
    wm_buf_putc(out, '"');
    for (; *s; s++) {
        if (*s == '"')
            wm_buf_putc(out, '"');
        wm_buf_putc(out, *s);
    }
    wm_buf_putc(out, '"');
}

static void member_out(member_row_t *m, uint64_t user, bool first, wm_buf_t *out)
{
    wm_part_t *p = m->e->parts[user % m->e->n_parts];
    const wm_json_t *profile = NULL;
    if (m->n_fields || m->n_ids) {
        char *json = NULL;
        size_t len = 0;
        if (wm__part_profile_get(p, user, &json, &len) == 0) {
            char *copy = wm_arena_strndup(m->arena, json, len);
            wm_json_t *o;
            wm_json_error_t je;
            if (copy && wm_json_parse(m->arena, copy, len, &o, &je) == 0)
                profile = o;
        }
        wm_free(json);
    }
    if (m->csv) {
        wm_buf_printf(out, "%llu", (unsigned long long)user);
    } else {
        if (!first && !m->nd)
            wm_buf_putc(out, ',');
        wm_buf_printf(out, "{\"user_id\":\"%llu\"", (unsigned long long)user);
    }
    /* ids not kept as identities (a mobile only in the profile) fall back
     * to the profile property of that name */
    for (uint32_t i = 0; i < m->n_ids; i++) {
        char kb[160];
        first_ident_t f = {.want = ident_key(m->ids[i], kb, sizeof kb)};
        wm_identity_list(m->e->identity, m->project, user, first_ident_cb, &f);
        const char *pv = f.found ? NULL : wm_json_str(wm_json_get(profile, m->ids[i]));
        if (pv) {
            snprintf(f.value, sizeof f.value, "%s", pv);
            f.found = true;
        }
        if (f.found && m->mask && (wm__engine_is_pii(m->ids[i]) || wm__engine_is_pii(f.want)))
            snprintf(f.value, sizeof f.value, "%s", wm__engine_mask_pii(m->arena, "mobile", f.value));
        if (m->csv) {
            wm_buf_putc(out, ',');
            csv_cell(out, f.found ? f.value : "");
        } else {
            wm_buf_putc(out, ',');
            wm_buf_json_str(out, m->ids[i], strlen(m->ids[i]));
            wm_buf_putc(out, ':');
            if (f.found)
                wm_buf_json_str(out, f.value, strlen(f.value));
            else
                wm_buf_puts(out, "null");
        }
    }
    for (uint32_t i = 0; i < m->n_fields; i++) {
        const wm_json_t *v = wm_json_get(profile, m->fields[i]);
        wm_json_t masked;
        if (v && v->type == WM_JSON_STRING && m->mask && wm__engine_is_pii(m->fields[i])) {
            masked = *v;
            masked.u.str = wm__engine_mask_pii(m->arena, m->fields[i], v->u.str);
            masked.len = (uint32_t)strlen(masked.u.str);
            v = &masked;
        }
        if (m->csv) {
            wm_buf_putc(out, ',');
            if (v && v->type == WM_JSON_STRING) {
                csv_cell(out, v->u.str);
            } else if (v) {
                wm_buf_t t;
                wm_buf_init(&t, 0);
                wm_json_write(&t, v);
                wm_buf_putc(&t, 0);
                csv_cell(out, t.err ? "" : t.data);
                wm_buf_release(&t);
            }
        } else {
            wm_buf_putc(out, ',');
            wm_buf_json_str(out, m->fields[i], strlen(m->fields[i]));
            wm_buf_putc(out, ':');
            if (v)
                wm_json_write(out, v);
            else
                wm_buf_puts(out, "null");
        }
    }
    if (m->csv) {
        wm_buf_puts(out, "\r\n");
    } else {
        int64_t since = wm__aud_member_since(p->aud, m->seg_id, user);
        wm_buf_printf(out, ",\"since_ms\":%lld}%s", (long long)since, m->nd ? "\n" : "");
    }
}

/*
 * Members of a segment, by user id ascending, from user id `after` + 1, at
 * most limit. format "json": {"segment","count","members":[{user_id, ids...,
 * fields..., since_ms}],"next":"<cursor>"|null}; "csv": a header line and a
 * row per member; "ndjson": one object per line. ids: identity keys
 * (login_id, mobile, wecom_external_userid ...); fields: profile properties.
 */
int wm_engine_segment_members(wm_engine_t *e, const char *project, const char *key, uint64_t after,
                              uint32_t limit, const char *format, const char *ids, const char *fields,
                              const char *role, wm_buf_t *out)
{
    const wm_aseg_t *g = published_seg(e, project, key);
    if (!g)
        return WM_ENOTFOUND;
    bool csv = format && !strcmp(format, "csv"), nd = format && !strcmp(format, "ndjson");
    if (format && !csv && !nd && strcmp(format, "json"))
        return WM_EINVAL;
    if (!limit || limit > WM_AUD_PAGE_MAX)
        limit = WM_AUD_PAGE_MAX;
    wm_arena_t arena;
    wm_arena_init(&arena, 16 * 1024);
    const char *id_names[16], *field_names[64];
    member_row_t m = {.e = e, .project = project, .ids = id_names, .fields = field_names, .csv = csv,
                      .nd = nd, .mask = !role || strcmp(role, "admin"), .seg_id = g->id, .arena = &arena};
    m.n_ids = split_list(&arena, ids, id_names, 16);
    m.n_fields = split_list(&arena, fields, field_names, 64);
    roaring_bitmap_t *b = members_of(e, g->id);
    if (!b) {
        wm_arena_release(&arena);
        return WM_ENOMEM;
    }
    if (csv) {
        wm_buf_puts(out, "user_id");
        for (uint32_t i = 0; i < m.n_ids; i++) {
            wm_buf_putc(out, ',');
            csv_cell(out, id_names[i]);
        }
        for (uint32_t i = 0; i < m.n_fields; i++) {
            wm_buf_putc(out, ',');
            csv_cell(out, field_names[i]);
        }
        wm_buf_puts(out, "\r\n");
    } else if (!nd) {
        wm_buf_puts(out, "{\"segment\":");
        wm_buf_json_str(out, key, strlen(key));
        wm_buf_printf(out, ",\"version\":%u,\"count\":%llu,\"members\":[", g->version,
                      (unsigned long long)roaring_bitmap_get_cardinality(b));
    }
    roaring_uint32_iterator_t *it = roaring_create_iterator(b);
    uint32_t n = 0;
    uint64_t last = 0;
    bool more = false;
    if (it && after < UINT32_MAX && roaring_move_uint32_iterator_equalorlarger(it, (uint32_t)(after + 1))) {
        do {
            if (n == limit) {
                more = true;
                break;
            }
            wm_arena_reset(&arena);
            /* the names live in the arena: copy them out per row */
            member_row_t row = m;
            const char *ids_copy[16], *fields_copy[64];
            row.ids = ids_copy;
            row.fields = fields_copy;
            row.n_ids = split_list(&arena, ids, ids_copy, 16);
            row.n_fields = split_list(&arena, fields, fields_copy, 64);
            member_out(&row, it->current_value, n == 0, out);
            last = it->current_value;
            n++;
        } while (roaring_advance_uint32_iterator(it));
    }
    if (it)
        roaring_free_uint32_iterator(it);
    roaring_bitmap_free(b);
    wm_arena_release(&arena);
    if (!csv && !nd) {
        wm_buf_puts(out, "],\"next\":");
        if (more)
            wm_buf_printf(out, "\"%llu\"", (unsigned long long)last);
        else
            wm_buf_puts(out, "null");
        wm_buf_putc(out, '}');
    }
    return out->err;
}

/* ---- preview ---- */

typedef struct preview_part {
    wm_engine_t *e;
    wm_part_t *p;
    const char *project;
    const wm_json_t *ast;
    const wm_cond_t *cond;
    int64_t now_ms;
    uint64_t count;
    uint64_t sample[WM_AUD_SAMPLE];
    uint32_t n_sample;
    int rc;
} preview_part_t;

/* One partition's part of a preview: the planned selection (column
 * scans), its count and its lowest user ids as the sample. */
static void *preview_main(void *arg)
{
    preview_part_t *pp = arg;
    roaring_bitmap_t *b = NULL;
    pp->rc = wm__aud_select(pp->p->aud, pp->project, pp->ast, pp->now_ms, (void **)&b);
    if (!pp->rc && b) {
        pp->count = roaring_bitmap_get_cardinality(b);
        roaring_uint32_iterator_t *it = roaring_create_iterator(b);
        while (it && it->has_value && pp->n_sample < WM_AUD_SAMPLE) {
            pp->sample[pp->n_sample++] = it->current_value;
            roaring_advance_uint32_iterator(it);
        }
        if (it)
            roaring_free_uint32_iterator(it);
    }
    roaring_bitmap_free(b);
    return NULL;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/*
 * Evaluates a condition (body {"condition": COND} or a whole segment
 * definition with "condition") for every customer of the project, one
 * thread per partition, without publishing anything: {"count":N,
 * "sample":[{"user_id","login_id"}] (the 20 lowest user ids),"took_ms":x}.
 */
int wm_engine_segment_preview(wm_engine_t *e, const char *project, const char *json, size_t len,
                              wm_buf_t *out)
{
    wm_arena_t a;
    wm_arena_init(&a, 4096);
    wm_json_t *root;
    wm_json_error_t je;
    char *copy = wm_arena_strndup(&a, json, len);
    if (!copy || wm_json_parse(&a, copy, len, &root, &je) || root->type != WM_JSON_OBJECT) {
        wm_arena_release(&a);
        wm_buf_puts(out, "{\"valid\":false,\"errors\":[{\"path\":\"$\",\"message\":\"the body must be a JSON object with a condition\"}]}");
        return WM_EINVAL;
    }
    const wm_json_t *ast = wm_json_get(root, "condition");
    wm_cond_t *cond = NULL;
    wm_cond_error_t ce;
    int rc = ast ? wm_cond_compile(ast, &cond, &ce) : WM_EINVAL;
    if (rc) {
        wm_buf_puts(out, "{\"valid\":false,\"errors\":[{\"path\":");
        if (ast) {
            char path[400];
            snprintf(path, sizeof path, "$.condition%s", ce.path[0] == '$' ? ce.path + 1 : ce.path);
            wm_buf_json_str(out, path, strlen(path));
            wm_buf_puts(out, ",\"message\":");
            wm_buf_json_str(out, ce.msg, strlen(ce.msg));
        } else {
            wm_buf_puts(out, "\"$.condition\",\"message\":\"missing required field\"");
        }
        wm_buf_puts(out, "}]}");
        wm_arena_release(&a);
        return WM_EINVAL;
    }
    int64_t t0 = mono_us();
    preview_part_t *pp = wm_calloc(e->n_parts, sizeof *pp);
    pthread_t *th = wm_calloc(e->n_parts, sizeof *th);
    if (!pp || !th) {
        wm_free(pp);
        wm_free(th);
        wm_cond_free(cond);
        return WM_ENOMEM;
    }
    int64_t now = wm_engine_now(e);
    for (uint32_t i = 0; i < e->n_parts; i++) {
        pp[i] = (preview_part_t){.e = e, .p = e->parts[i], .project = project, .ast = ast, .cond = cond,
                                 .now_ms = now};
        if (pthread_create(&th[i], NULL, preview_main, &pp[i]))
            preview_main(&pp[i]), th[i] = 0;
    }
    uint64_t count = 0, sample[WM_AUD_SAMPLE * WM_PARTITIONS_MAX];
    uint32_t ns = 0;
    rc = 0;
    for (uint32_t i = 0; i < e->n_parts; i++) {
        if (th[i])
            pthread_join(th[i], NULL);
        if (pp[i].rc && !rc)
            rc = pp[i].rc;
        count += pp[i].count;
        for (uint32_t k = 0; k < pp[i].n_sample && ns < WM_AUD_SAMPLE * WM_PARTITIONS_MAX; k++)
            sample[ns++] = pp[i].sample[k];
    }
    int64_t t1 = mono_us();
    wm_free(pp);
    wm_free(th);
    wm_cond_free(cond);
    wm_arena_release(&a);
    if (rc)
        return rc;
    qsort(sample, ns, sizeof sample[0], u64_cmp);
    wm_buf_printf(out, "{\"valid\":true,\"count\":%llu,\"took_ms\":%.1f,\"sample\":[", (unsigned long long)count,
                  (double)(t1 - t0) / 1000.0);
    for (uint32_t i = 0; i < ns && i < WM_AUD_SAMPLE; i++) {
        first_ident_t f = {.want = WM_ID_KEY_LOGIN};
        wm_identity_list(e->identity, project, sample[i], first_ident_cb, &f);
        wm_buf_printf(out, "%s{\"user_id\":\"%llu\",\"login_id\":", i ? "," : "", (unsigned long long)sample[i]);
        if (f.found)
            wm_buf_json_str(out, f.value, strlen(f.value));
        else
            wm_buf_puts(out, "null");
        wm_buf_putc(out, '}');
    }
    wm_buf_puts(out, "]}");
    return out->err;
}

/* ---- tags: distribution, history, values ---- */

typedef struct dist_item {
    const char *value;
    size_t len;
    uint64_t count;
} dist_item_t;

static int dist_cmp(const void *a, const void *b)
{
    const dist_item_t *x = a, *y = b;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->value, y->value, n);
    return c ? c : (x->len < y->len ? -1 : x->len > y->len);
}

/* {"tag","at_ms"?,"total":N,"values":[{"value":V,"count":N,"share":x}]}:
 * value -> customer count, now or as of at_ms (from the tags' history). */
int wm_engine_tag_distribution_json(wm_engine_t *e, const char *project, const char *key, int64_t at_ms,
                                    wm_buf_t *out)
{
    wm_strmap_t counts;
    wm_strmap_init(&counts);
    int rc = 0;
    for (uint32_t i = 0; i < e->n_parts && !rc; i++)
        rc = wm__aud_tag_distribution(e->parts[i]->aud, project, key, at_ms, &counts);
    dist_item_t *items = rc ? NULL : wm_calloc(counts.count ? counts.count : 1, sizeof *items);
    uint32_t n = 0;
    uint64_t total = 0;
    if (!rc && !items)
        rc = WM_ENOMEM;
    for (size_t i = 0; !rc && i < counts.cap; i++)
        if (counts.slots[i].key) {
            items[n++] = (dist_item_t){counts.slots[i].key, counts.slots[i].key_len, counts.slots[i].value};
            total += counts.slots[i].value;
        }
    if (!rc) {
        qsort(items, n, sizeof *items, dist_cmp);
        wm_buf_puts(out, "{\"tag\":");
        wm_buf_json_str(out, key, strlen(key));
        if (at_ms > 0)
            wm_buf_printf(out, ",\"at_ms\":%lld", (long long)at_ms);
        wm_buf_printf(out, ",\"total\":%llu,\"values\":[", (unsigned long long)total);
        for (uint32_t i = 0; i < n; i++) {
            wm_buf_puts(out, i ? ",{\"value\":" : "{\"value\":");
            wm_buf_append(out, items[i].value, items[i].len); /* stored JSON text */
            wm_buf_printf(out, ",\"count\":%llu,\"share\":%.4f}", (unsigned long long)items[i].count,
                          total ? (double)items[i].count / (double)total : 0.0);
        }
        wm_buf_puts(out, "]}");
    }
    wm_free(items);
    wm_strmap_release(&counts);
    return rc ? rc : out->err;
}

int wm_engine_user_tag_history_json(wm_engine_t *e, uint64_t user_id, const char *key, int64_t at_ms,
                                    wm_buf_t *out)
{
    wm_part_t *p = e->parts[user_id % e->n_parts];
    wm_buf_puts(out, "{\"tag\":");
    wm_buf_json_str(out, key, strlen(key));
    wm_buf_printf(out, ",\"user_id\":\"%llu\"", (unsigned long long)user_id);
    int rc;
    if (at_ms > 0) {
        wm_buf_printf(out, ",\"at_ms\":%lld,\"value\":", (long long)at_ms);
        rc = wm__aud_tag_at(p->aud, user_id, key, at_ms, out);
    } else {
        wm_buf_puts(out, ",\"history\":[");
        rc = wm__aud_tag_history(p->aud, user_id, key, out);
        wm_buf_putc(out, ']');
    }
    wm_buf_putc(out, '}');
    return rc ? rc : out->err;
}

/* A manual value (PUT /api/v1/users/{id}/tags/{key}); value_json NULL unsets. */
static bool value_ok(const wm_tag_def_t *t, const wm_json_t *v, char *msg, size_t cap);

int wm_engine_tag_set(wm_engine_t *e, const char *project, uint64_t user_id, const char *key,
                      const char *value_json, const char *source)
{
    /* only manual and imported tags take values from outside, of their type */
    const wm_atag_t *tg = wm__areg_tag(wm__areg_snapshot(e->areg), project, key);
    if (!tg)
        return WM_ENOTFOUND;
    if (tg->def->kind != WM_TAG_MANUAL && tg->def->kind != WM_TAG_IMPORTED)
        return WM_ESTATE;
    if (value_json) {
        wm_arena_t a;
        wm_arena_init(&a, 1024);
        wm_json_t *v;
        wm_json_error_t je;
        char msg[200];
        char *copy = wm_arena_strndup(&a, value_json, strlen(value_json));
        bool ok = copy && wm_json_parse(&a, copy, strlen(copy), &v, &je) == 0 &&
                  (tg->def->kind == WM_TAG_MANUAL && !tg->def->type ? true : value_ok(tg->def, v, msg, sizeof msg));
        wm_arena_release(&a);
        if (!ok)
            return WM_ETYPE;
    }
    wm_buf_t b;
    wm_buf_init(&b, 0);
    wm_buf_puts(&b, "{\"cmd\":\"tag_set\",\"project\":");
    wm_buf_json_str(&b, project, strlen(project));
    wm_buf_puts(&b, ",\"tag\":");
    wm_buf_json_str(&b, key, strlen(key));
    wm_buf_puts(&b, ",\"source\":");
    wm_buf_json_str(&b, source, strlen(source));
    wm_buf_puts(&b, ",\"value\":");
    wm_buf_puts(&b, value_json ? value_json : "null");
    wm_buf_putc(&b, '}');
    int rc = b.err ? b.err : wm_engine_command(e, user_id, b.data, b.len);
    wm_buf_release(&b);
    return rc;
}

/* ---- imports: tag values and static segment lists ---- */

#define IMPORT_ERRORS_MAX 1000
#define IMPORT_CHUNK 4096

typedef struct importer {
    wm_engine_t *e;
    const char *project;
    const char *kind;           /* "tag" | "segment" */
    const char *key;
    const char *id_type;
    const wm_tag_def_t *tag;
    uint64_t *users;
    char **cmds;
    uint32_t n;
    uint64_t lines, imported, n_errors;
    wm_buf_t *errors;
    int rc;
} importer_t;

static void import_error(importer_t *im, uint64_t line, const char *field, const char *msg)
{
    if (im->n_errors++ >= IMPORT_ERRORS_MAX)
        return;
    wm_buf_printf(im->errors, "%s{\"line\":%llu,\"field\":", im->n_errors > 1 ? "," : "",
                  (unsigned long long)line);
    wm_buf_json_str(im->errors, field, strlen(field));
    wm_buf_puts(im->errors, ",\"message\":");
    wm_buf_json_str(im->errors, msg, strlen(msg));
    wm_buf_putc(im->errors, '}');
}

static int import_flush(importer_t *im)
{
    if (!im->n)
        return 0;
    int rc = wm__engine_commands(im->e, im->n, im->users, im->cmds);
    for (uint32_t i = 0; i < im->n; i++)
        wm_free(im->cmds[i]);
    if (!rc)
        im->imported += im->n;
    im->n = 0;
    return rc;
}

/* A typed tag value from text (CSV) or JSON (NDJSON); NULL text = JSON given. */
static bool value_ok(const wm_tag_def_t *t, const wm_json_t *v, char *msg, size_t cap)
{
    if (!v || v->type == WM_JSON_NULL)
        return true; /* unsets */
    wm_tag_type_t want = t->type ? t->type : WM_TAG_STRING;
    bool ok = (want == WM_TAG_STRING && v->type == WM_JSON_STRING) ||
              (want == WM_TAG_NUMBER && v->type == WM_JSON_NUMBER) ||
              (want == WM_TAG_BOOL && (v->type == WM_JSON_TRUE || v->type == WM_JSON_FALSE));
    if (!ok)
        snprintf(msg, cap, "expected a %s value, got %s",
                 want == WM_TAG_NUMBER ? "number" : want == WM_TAG_BOOL ? "bool" : "string",
                 wm_json_type_name(v->type));
    return ok;
}

static void import_one(importer_t *im, uint64_t line, const char *id, const wm_json_t *value, bool member)
{
    if (!id || !*id) {
        import_error(im, line, "id", "missing customer id");
        return;
    }
    uint64_t user = 0;
    int rc = wm_engine_find_user(im->e, im->project, id, im->id_type, &user);
    if (rc) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s '%.200s' (%s)", rc == WM_ENOTFOUND ? "no customer with" : "bad id", id,
                 im->id_type ? im->id_type : "distinct_id");
        import_error(im, line, "id", msg);
        return;
    }
    wm_buf_t b;
    wm_buf_init(&b, 0);
    if (im->tag) {
        char msg[200];
        if (!value_ok(im->tag, value, msg, sizeof msg)) {
            import_error(im, line, "value", msg);
            wm_buf_release(&b);
            return;
        }
        wm_buf_puts(&b, "{\"cmd\":\"tag_set\",\"source\":\"import\",\"project\":");
        wm_buf_json_str(&b, im->project, strlen(im->project));
        wm_buf_puts(&b, ",\"tag\":");
        wm_buf_json_str(&b, im->key, strlen(im->key));
        wm_buf_puts(&b, ",\"value\":");
        if (value)
            wm_json_write(&b, value);
        else
            wm_buf_puts(&b, "null");
        wm_buf_putc(&b, '}');
    } else {
        wm_buf_puts(&b, "{\"cmd\":\"segment_list\",\"project\":");
        wm_buf_json_str(&b, im->project, strlen(im->project));
        wm_buf_puts(&b, ",\"segment\":");
        wm_buf_json_str(&b, im->key, strlen(im->key));
        wm_buf_printf(&b, ",\"member\":%s}", member ? "true" : "false");
    }
    char *cmd = b.err ? NULL : wm_buf_steal(&b, NULL);
    wm_buf_release(&b);
    if (!cmd) {
        im->rc = WM_ENOMEM;
        return;
    }
    im->users[im->n] = user;
    im->cmds[im->n++] = cmd;
    if (im->n == IMPORT_CHUNK && !im->rc)
        im->rc = import_flush(im);
}

/* CSV: header row; the first column is the customer id, a "value" column
 * (tags) holds the value; cells may be quoted ("" escapes a quote). */
static uint32_t csv_split(char *line, char **cells, uint32_t max)
{
    uint32_t n = 0;
    char *p = line;
    while (n < max) {
        char *out = p, *start = p;
        if (*p == '"') {
            p++;
            start = out = p;
            while (*p) {
                if (*p == '"' && p[1] == '"') {
                    *out++ = '"';
                    p += 2;
                } else if (*p == '"') {
                    p++;
                    break;
                } else {
                    *out++ = *p++;
                }
            }
        } else {
            while (*p && *p != ',')
                out = ++p;
        }
        char *next = strchr(p, ',');
        *out = 0;
        cells[n++] = start;
        if (!next)
            break;
        p = next + 1;
    }
    return n;
}

static void import_csv(importer_t *im, wm_arena_t *a, char *text)
{
    int value_col = -1;
    uint64_t line = 0;
    /* lines counted as the file has them, blank ones too, so errors name
     * the line an editor shows */
    for (char *ln = text, *next; ln && *ln && !im->rc; ln = next) {
        next = strchr(ln, '\n');
        if (next)
            *next++ = 0;
        line++;
        size_t l = strlen(ln);
        if (l && ln[l - 1] == '\r')
            ln[--l] = 0;
        char *cells[64];
        uint32_t n = csv_split(ln, cells, 64);
        if (line == 1) {
            for (uint32_t i = 0; i < n; i++)
                if (!strcmp(cells[i], "value"))
                    value_col = (int)i;
            if (im->tag && value_col < 0)
                import_error(im, 1, "value", "the header has no \"value\" column");
            if (im->tag && value_col < 0)
                return;
            continue;
        }
        if (!l)
            continue;
        im->lines++;
        wm_json_t *v = NULL;
        if (im->tag && value_col >= 0 && (uint32_t)value_col < n && *cells[value_col]) {
            const char *cell = cells[value_col];
            wm_tag_type_t type = im->tag->type ? im->tag->type : WM_TAG_STRING;
            if (type == WM_TAG_NUMBER) {
                char *end;
                double d = strtod(cell, &end);
                v = *end ? wm_json_new_str(a, cell, strlen(cell)) : wm_json_new_num(a, d);
            } else if (type == WM_TAG_BOOL && (!strcmp(cell, "true") || !strcmp(cell, "false"))) {
                v = wm_json_new(a, !strcmp(cell, "true") ? WM_JSON_TRUE : WM_JSON_FALSE);
            } else {
                v = wm_json_new_str(a, cell, strlen(cell));
            }
        } else if (im->tag) {
            import_error(im, line, "value", "missing value");
            continue;
        }
        import_one(im, line, n ? cells[0] : NULL, v, true);
    }
}

/* NDJSON: {"id": "...", "value": ...} per line ("member": false removes
 * from a static list). */
static void import_ndjson(importer_t *im, wm_arena_t *a, char *text)
{
    char *save = NULL;
    uint64_t line = 0;
    char *p = text;
    while (p && *p && !im->rc) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = 0;
        line++;
        char *ln = p;
        p = nl ? nl + 1 : NULL;
        while (*ln == ' ' || *ln == '\t' || *ln == '\r')
            ln++;
        if (!*ln)
            continue;
        im->lines++;
        wm_json_t *o;
        wm_json_error_t je;
        if (wm_json_parse(a, ln, strlen(ln), &o, &je) || o->type != WM_JSON_OBJECT) {
            import_error(im, line, "", "not a JSON object");
            continue;
        }
        const wm_json_t *id = wm_json_get(o, "id");
        const char *ids = wm_json_str(id);
        char num[32];
        if (!ids && id && id->type == WM_JSON_NUMBER && id->is_int) {
            snprintf(num, sizeof num, "%lld", (long long)id->i64);
            ids = num;
        }
        const wm_json_t *v = wm_json_get(o, "value");
        if (im->tag && !v) {
            import_error(im, line, "value", "missing value");
            continue;
        }
        const wm_json_t *m = wm_json_get(o, "member");
        import_one(im, line, ids, v, !m || m->type != WM_JSON_FALSE);
    }
    (void)save;
}

int wm_engine_aud_import(wm_engine_t *e, const char *project, const char *kind, const char *key,
                         const char *id_type, const char *format, const char *body, size_t len, wm_buf_t *out)
{
    const wm_asnap_t *s = wm__areg_snapshot(e->areg);
    importer_t im = {.e = e, .project = project, .kind = kind, .key = key, .id_type = id_type};
    if (is_tag(kind)) {
        const wm_atag_t *t = wm__areg_tag(s, project, key);
        if (!t)
            return WM_ENOTFOUND;
        if (t->def->kind != WM_TAG_IMPORTED && t->def->kind != WM_TAG_MANUAL)
            return WM_ESTATE; /* computed tags are not uploaded */
        im.tag = t->def;
    } else {
        const wm_aseg_t *g = wm__areg_seg(s, project, key);
        if (!g)
            return WM_ENOTFOUND;
        if (g->def->kind != WM_SEGMENT_STATIC || g->def->snapshot_of)
            return WM_ESTATE; /* only uploaded lists take members */
    }
    wm_buf_t errors;
    wm_buf_init(&errors, 0);
    im.errors = &errors;
    im.users = wm_calloc(IMPORT_CHUNK, sizeof *im.users);
    im.cmds = wm_calloc(IMPORT_CHUNK, sizeof *im.cmds);
    char *text = wm_strndup(body, len);
    wm_arena_t a;
    wm_arena_init(&a, 64 * 1024);
    int rc = im.users && im.cmds && text ? 0 : WM_ENOMEM;
    if (!rc) {
        if (format && !strcmp(format, "csv"))
            import_csv(&im, &a, text);
        else
            import_ndjson(&im, &a, text);
        rc = im.rc ? im.rc : import_flush(&im);
    }
    for (uint32_t i = 0; i < im.n; i++)
        wm_free(im.cmds[i]);
    wm_arena_release(&a);
    wm_free(text);
    wm_free(im.users);
    wm_free(im.cmds);
    if (!rc) {
        wm_buf_printf(out, "{\"%s\":", is_tag(kind) ? "tag" : "segment");
        wm_buf_json_str(out, key, strlen(key));
        wm_buf_printf(out, ",\"lines\":%llu,\"imported\":%llu,\"rejected\":%llu,\"errors\":[",
                      (unsigned long long)im.lines, (unsigned long long)im.imported,
                      (unsigned long long)im.n_errors);
        wm_buf_append(out, errors.data ? errors.data : "", errors.len);
        wm_buf_puts(out, "]}");
    }
    wm_buf_release(&errors);
    return rc ? rc : out->err;
}

/* ---- funnel save_segment: a list replaced by a query ---- */

static int list_commands(wm_engine_t *e, const char *project, const char *key, roaring_bitmap_t *users, bool member)
{
    uint64_t card = roaring_bitmap_get_cardinality(users);
    uint32_t *all = wm_malloc((card ? card : 1) * sizeof *all);
    uint64_t *ids = wm_malloc(IMPORT_CHUNK * sizeof *ids);
    char **cmds = wm_calloc(IMPORT_CHUNK, sizeof *cmds);
    int rc = all && ids && cmds ? 0 : WM_ENOMEM;
    uint32_t n = 0;
    if (!rc)
        roaring_bitmap_to_uint32_array(users, all);
    for (uint64_t i = 0; i < card && !rc; i++) {
        wm_buf_t b;
        wm_buf_init(&b, 0);
        wm_buf_puts(&b, "{\"cmd\":\"segment_list\",\"project\":");
        wm_buf_json_str(&b, project, strlen(project));
        wm_buf_puts(&b, ",\"segment\":");
        wm_buf_json_str(&b, key, strlen(key));
        wm_buf_printf(&b, ",\"member\":%s}", member ? "true" : "false");
        char *cmd = b.err ? NULL : wm_buf_steal(&b, NULL);
        wm_buf_release(&b);
        if (!cmd) {
            rc = WM_ENOMEM;
            break;
        }
        ids[n] = all[i];
        cmds[n++] = cmd;
        if (n == IMPORT_CHUNK || i + 1 == card) {
            rc = wm__engine_commands(e, n, ids, cmds);
            for (uint32_t k = 0; k < n; k++)
                wm_free(cmds[k]);
            n = 0;
        }
    }
    for (uint32_t k = 0; k < n; k++)
        wm_free(cmds[k]);
    wm_free(all);
    wm_free(ids);
    wm_free(cmds);
    return rc;
}

int wm__engine_segment_replace(wm_engine_t *e, const char *project, const char *key, const uint64_t *users,
                               uint32_t n, char *msg, size_t cap)
{
    const wm_aseg_t *g = published_seg(e, project, key);
    if (!g) {
        wm_buf_t def, out;
        wm_buf_init(&def, 0);
        wm_buf_init(&out, 0);
        wm_buf_puts(&def, "{\"key\":");
        wm_buf_json_str(&def, key, strlen(key));
        wm_buf_puts(&def, ",\"name\":");
        wm_buf_json_str(&def, key, strlen(key));
        wm_buf_puts(&def, ",\"kind\":\"static\",\"description\":\"funnel drop-offs (save_segment)\"}");
        bool valid = false;
        int rc = def.err ? def.err : wm_engine_aud_save(e, "segment", project, key, def.data, def.len, &valid, &out);
        if (!rc && !valid) {
            snprintf(msg, cap, "cannot create segment '%s': %.*s", key, (int)(out.len < 180 ? out.len : 180),
                     out.data ? out.data : "");
            rc = WM_EINVAL;
        }
        wm_buf_reset(&out);
        if (!rc)
            rc = wm_engine_aud_publish(e, "segment", project, key, &out);
        wm_buf_release(&def);
        wm_buf_release(&out);
        if (rc)
            return rc;
        if (!(g = published_seg(e, project, key)))
            return WM_ESTATE;
    }
    if (g->def->kind != WM_SEGMENT_STATIC || g->def->snapshot_of) {
        snprintf(msg, cap, "segment '%s' exists and is not an uploaded list: it cannot be replaced", key);
        return WM_EINVAL;
    }
    roaring_bitmap_t *cur = members_of(e, g->id), *want = roaring_bitmap_create();
    int rc = cur && want ? 0 : WM_ENOMEM;
    for (uint32_t i = 0; i < n && !rc; i++)
        roaring_bitmap_add(want, (uint32_t)users[i]);
    roaring_bitmap_t *gone = rc ? NULL : roaring_bitmap_andnot(cur, want);
    roaring_bitmap_t *added = rc ? NULL : roaring_bitmap_andnot(want, cur);
    if (!rc && (!gone || !added))
        rc = WM_ENOMEM;
    if (!rc)
        rc = list_commands(e, project, key, gone, false);
    if (!rc)
        rc = list_commands(e, project, key, added, true);
    roaring_bitmap_free(cur);
    roaring_bitmap_free(want);
    roaring_bitmap_free(gone);
    roaring_bitmap_free(added);
    if (!rc)
        wm_engine_wait_applied(e, 10000);   /* the segment's count shows the list at once */
    return rc;
}

/* ---- recommendations ---- */

/* Where the recommendation reads its inputs (the brokerage defaults of the
 * seeds; docs/recommendations.md). */
#define REC_ITEM_PROP "fund_code"
#define REC_VIEW_EVENT "ViewFundDetail"
#define REC_VIEW_DAYS 30
#define REC_VIEWS_MAX 200

typedef struct rec_ctx {
    wm_arena_t *a;
    wm_rec_item_t *items;
    uint32_t n_items, cap_items;
    wm_rec_view_t views[REC_VIEWS_MAX];
    uint32_t n_views;
    const char **held;
    uint32_t n_held, cap_held;
    wm_rec_co_t *co;
    uint32_t n_co, cap_co;
    wm_strmap_t item_ix;        /* id -> index into items */
    const char *co_from;        /* while collecting co-purchases */
    int err;
} rec_ctx_t;

static const char *astr(wm_arena_t *a, const char *s)
{
    return s ? wm_arena_strndup(a, s, strlen(s)) : NULL;
}

static int rec_item_cb(void *ctx, const char *id, const char *json, size_t len)
{
    rec_ctx_t *rc = ctx;
    if (rc->n_items >= WM_AUD_REC_ITEMS_MAX)
        return 0;
    char *copy = wm_arena_strndup(rc->a, json, len);
    wm_json_t *o;
    wm_json_error_t je;
    if (!copy || wm_json_parse(rc->a, copy, len, &o, &je))
        return 0;
    const wm_json_t *props = wm_json_get(o, "properties") ? wm_json_get(o, "properties") : o;
    if (rc->n_items == rc->cap_items) {
        uint32_t cap = rc->cap_items ? rc->cap_items * 2 : 256;
        wm_rec_item_t *p = wm_realloc(rc->items, cap * sizeof *p);
        if (!p)
            return WM_ENOMEM;
        rc->items = p;
        rc->cap_items = cap;
    }
    const char *name = wm_json_str(wm_json_get(props, "fund_name"));
    if (!name)
        name = wm_json_str(wm_json_get(props, "name"));
    const char *cat = wm_json_str(wm_json_get(props, "fund_type"));
    if (!cat)
        cat = wm_json_str(wm_json_get(props, "category"));
    const char *sid = astr(rc->a, id);
    rc->items[rc->n_items] = (wm_rec_item_t){.id = sid, .name = name, .category = cat,
                                             .risk = wm_risk_level(wm_json_get(props, "risk_level"))};
    if (!sid || wm_strmap_put(&rc->item_ix, sid, strlen(sid), rc->n_items))
        return WM_ENOMEM;
    rc->n_items++;
    return 0;
}

static const char *event_item(const wm_json_t *ev, char *num, size_t cap)
{
    const wm_json_t *f = wm_json_get(wm_json_get(ev, "properties"), REC_ITEM_PROP);
    const char *s = wm_json_str(f);
    if (!s && f && f->type == WM_JSON_NUMBER && f->is_int) {
        snprintf(num, cap, "%06lld", (long long)f->i64);
        s = num;
    }
    return s;
}

static int rec_view_cb(void *ctx, const wm_json_t *ev)
{
    rec_ctx_t *rc = ctx;
    const char *name = wm_json_str(wm_json_get(ev, "event"));
    if (!name || strcmp(name, REC_VIEW_EVENT))
        return 0;
    char num[32];
    const char *item = event_item(ev, num, sizeof num);
    const wm_json_t *tm = wm_json_get(ev, "time");
    if (!item || !tm || !tm->is_int)
        return 0;
    /* oldest first in; keep the newest REC_VIEWS_MAX, newest first out */
    if (rc->n_views == REC_VIEWS_MAX) {
        memmove(rc->views, rc->views + 1, (REC_VIEWS_MAX - 1) * sizeof rc->views[0]);
        rc->n_views--;
    }
    rc->views[rc->n_views++] = (wm_rec_view_t){.id = astr(rc->a, item), .time_ms = tm->i64};
    return 0;
}

static int rec_held_add(rec_ctx_t *rc, const char *item)
{
    for (uint32_t i = 0; i < rc->n_held; i++)
        if (!strcmp(rc->held[i], item))
            return 0;
    if (rc->n_held == rc->cap_held) {
        uint32_t cap = rc->cap_held ? rc->cap_held * 2 : 16;
        const char **p = wm_realloc(rc->held, cap * sizeof *p);
        if (!p)
            return WM_ENOMEM;
        rc->held = p;
        rc->cap_held = cap;
    }
    rc->held[rc->n_held++] = astr(rc->a, item);
    return 0;
}

static int rec_bought_cb(void *ctx, const char *item) { return rec_held_add(ctx, item); }

static int rec_pop_cb(void *ctx, const char *item, uint64_t count)
{
    rec_ctx_t *rc = ctx;
    uint64_t ix;
    if (wm_strmap_get(&rc->item_ix, item, strlen(item), &ix))
        rc->items[ix].buyers += count;
    return 0;
}

static int rec_co_cb(void *ctx, const char *item, uint64_t count)
{
    rec_ctx_t *rc = ctx;
    for (uint32_t i = 0; i < rc->n_co; i++)
        if (!strcmp(rc->co[i].from, rc->co_from) && !strcmp(rc->co[i].to, item)) {
            rc->co[i].count += count;
            return 0;
        }
    if (rc->n_co == rc->cap_co) {
        uint32_t cap = rc->cap_co ? rc->cap_co * 2 : 64;
        wm_rec_co_t *p = wm_realloc(rc->co, cap * sizeof *p);
        if (!p)
            return WM_ENOMEM;
        rc->co = p;
        rc->cap_co = cap;
    }
    rc->co[rc->n_co++] = (wm_rec_co_t){.from = rc->co_from, .to = astr(rc->a, item), .count = count};
    return 0;
}

static const char *risk_text(char *buf, size_t cap, char prefix, int level)
{
    if (level < 1 || level > 5)
        return NULL;
    snprintf(buf, cap, "%c%d", prefix, level);
    return buf;
}

/* The candidates of a (project, item type) with their popularity, read from
 * every partition and kept for WM_REC_CATALOG_TTL_US: a message whose
 * template says {{recommend...}} or an advisor lead would otherwise read the
 * whole catalogue on the partition's apply path. Guarded by e->rec_mu,
 * which is held while a recommendation uses the catalogue. */
typedef struct wm__rec_catalog {
    char project[64], type[64];
    int64_t built_us;
    wm_arena_t arena;
    rec_ctx_t rc;               /* items, item_ix, buyers; nothing per customer */
} rec_catalog_t;

static void catalog_release(rec_catalog_t *c)
{
    wm_free(c->rc.items);
    wm_strmap_release(&c->rc.item_ix);
    wm_arena_release(&c->arena);
    memset(c, 0, sizeof *c);
}

void wm__engine_rec_free(wm_engine_t *e)
{
    for (uint32_t i = 0; i < WM_REC_CATALOGS_MAX; i++)
        if (e->rec_catalogs[i])
            catalog_release(e->rec_catalogs[i]), wm_free(e->rec_catalogs[i]);
}

/* The catalogue of (project, type), rebuilt when missing or older than the
 * TTL. Called with e->rec_mu held. */
static int catalog_get(wm_engine_t *e, const char *project, const char *type, rec_catalog_t **out)
{
    int64_t now = mono_us();
    rec_catalog_t *slot = NULL, *oldest = NULL;
    for (uint32_t i = 0; i < WM_REC_CATALOGS_MAX; i++) {
        rec_catalog_t *c = e->rec_catalogs[i];
        if (!c) {
            if (!(c = e->rec_catalogs[i] = wm_calloc(1, sizeof *c)))
                return WM_ENOMEM;
        }
        if (c->built_us && !strcmp(c->project, project) && !strcmp(c->type, type)) {
            slot = c;
            break;
        }
        if (!oldest || !c->built_us || c->built_us < oldest->built_us)
            oldest = c;
    }
    if (slot && now - slot->built_us < WM_REC_CATALOG_TTL_US) {
        *out = slot;
        return 0;
    }
    rec_catalog_t *c = slot ? slot : oldest;
    catalog_release(c);
    snprintf(c->project, sizeof c->project, "%s", project);
    snprintf(c->type, sizeof c->type, "%s", type);
    wm_arena_init(&c->arena, 64 * 1024);
    c->rc.a = &c->arena;
    wm_strmap_init(&c->rc.item_ix);
    int err = 0;
    for (uint32_t i = 0; i < e->n_parts && !err; i++)
        err = wm__part_items_each(e->parts[i], project, type, rec_item_cb, &c->rc);
    for (uint32_t i = 0; i < e->n_parts && !err; i++)
        err = wm__aud_rec_counts(e->parts[i]->aud, project, type, NULL, rec_pop_cb, &c->rc);
    if (err) {
        catalog_release(c);
        return err;
    }
    c->built_us = now ? now : 1;
    *out = c;
    return 0;
}

int wm_engine_recommendations_json(wm_engine_t *e, const char *project, uint64_t user_id, const char *type,
                                   uint32_t n, bool include_held, wm_buf_t *out)
{
    if (!n)
        n = 5;
    if (n > WM_REC_MAX)
        n = WM_REC_MAX;
    wm_arena_t a;
    wm_arena_init(&a, 64 * 1024);
    rec_ctx_t rc = {.a = &a};
    wm_strmap_init(&rc.item_ix);
    wm_part_t *up = e->parts[user_id % e->n_parts];
    int err = 0;
    /* the customer: suitability level and holdings */
    char *pjson = NULL;
    size_t plen = 0;
    const wm_json_t *profile = NULL;
    if (wm__part_profile_get(up, user_id, &pjson, &plen) == 0) {
        char *copy = wm_arena_strndup(&a, pjson, plen);
        wm_json_t *o;
        wm_json_error_t je;
        if (copy && wm_json_parse(&a, copy, plen, &o, &je) == 0)
            profile = o;
    }
    wm_free(pjson);
    int user_risk = wm_risk_level(wm_json_get(profile, "risk_level"));
    const wm_json_t *held = wm_json_get(profile, "held_products");
    if (held && held->type == WM_JSON_ARRAY) {
        for (const wm_json_t *c = held->u.child; c && !err; c = c->next)
            if (wm_json_str(c))
                err = rec_held_add(&rc, wm_json_str(c));
    } else if (wm_json_str(held)) {
        err = rec_held_add(&rc, wm_json_str(held));
    }
    if (!err)
        err = wm__aud_rec_bought(up->aud, user_id, rec_bought_cb, &rc);
    /* co-purchases of what the customer holds: every partition */
    for (uint32_t h = 0; h < rc.n_held && !err; h++) {
        rc.co_from = rc.held[h];
        for (uint32_t i = 0; i < e->n_parts && !err; i++)
            err = wm__aud_rec_counts(e->parts[i]->aud, project, type, rc.held[h], rec_co_cb, &rc);
    }
    int64_t now = wm_engine_now(e);
    if (!err)
        err = wm__part_user_scan(up, &a, user_id, now - (int64_t)REC_VIEW_DAYS * 86400000, INT64_MAX,
                                 rec_view_cb, &rc);
    /* newest first, as wm_recommend expects */
    for (uint32_t i = 0; i < rc.n_views / 2; i++) {
        wm_rec_view_t t = rc.views[i];
        rc.views[i] = rc.views[rc.n_views - 1 - i];
        rc.views[rc.n_views - 1 - i] = t;
    }
    wm_rec_result_t res[WM_REC_MAX];
    uint32_t nres = 0;
    /* the candidates and their popularity: the shared catalogue */
    pthread_mutex_lock(&e->rec_mu);
    rec_catalog_t *cat = NULL;
    if (!err)
        err = catalog_get(e, project, type, &cat);
    if (!err) {
        wm_rec_input_t in = {.items = cat->rc.items, .n_items = cat->rc.n_items, .views = rc.views, .n_views = rc.n_views,
                             .held = rc.held, .n_held = rc.n_held, .co = rc.co, .n_co = rc.n_co,
                             .user_risk = user_risk, .include_held = include_held, .n = n, .now_ms = now};
        err = wm_recommend(&in, res, &nres);
    }
    if (!err) {
        char rb[8];
        const char *ur = risk_text(rb, sizeof rb, 'C', user_risk);
        wm_buf_printf(out, "{\"user_id\":\"%llu\",\"type\":", (unsigned long long)user_id);
        wm_buf_json_str(out, type, strlen(type));
        wm_buf_puts(out, ",\"risk_level\":");
        if (ur)
            wm_buf_json_str(out, ur, strlen(ur));
        else
            wm_buf_puts(out, "null");
        wm_buf_printf(out, ",\"candidates\":%u,\"recommendations\":[", cat->rc.n_items);
        for (uint32_t i = 0; i < nres; i++) {
            char ib[8];
            const char *ir = risk_text(ib, sizeof ib, 'R', res[i].risk);
            wm_buf_puts(out, i ? ",{\"id\":" : "{\"id\":");
            wm_buf_json_str(out, res[i].id, strlen(res[i].id));
            if (res[i].name) {
                wm_buf_puts(out, ",\"name\":");
                wm_buf_json_str(out, res[i].name, strlen(res[i].name));
            }
            if (res[i].category) {
                wm_buf_puts(out, ",\"category\":");
                wm_buf_json_str(out, res[i].category, strlen(res[i].category));
            }
            wm_buf_puts(out, ",\"risk_level\":");
            wm_buf_json_str(out, ir ? ir : "", ir ? strlen(ir) : 0);
            wm_buf_printf(out, ",\"score\":%.4f,\"reason_code\":", res[i].score);
            wm_buf_json_str(out, res[i].reason_code, strlen(res[i].reason_code));
            wm_buf_puts(out, ",\"reason\":");
            wm_buf_json_str(out, res[i].reason, strlen(res[i].reason));
            wm_buf_putc(out, '}');
        }
        wm_buf_puts(out, "]}");
    }
    pthread_mutex_unlock(&e->rec_mu);
    wm_free(rc.items);
    wm_free(rc.held);
    wm_free(rc.co);
    wm_strmap_release(&rc.item_ix);
    wm_arena_release(&a);
    return err ? err : out->err;
}
