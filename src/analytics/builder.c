/*
 * builder.c - in-memory rows of events, from log payloads or callers, sorted
 * and written as a part. The compactor fills one builder per new part; a
 * query fills one with the uncompacted tail of the log.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/an_internal.h"
#include "store/payload.h"
#include "waymark/alloc.h"
#include "waymark/error.h"
#include "waymark/record.h"

int wm_part_builder_new(wm_part_builder_t **out)
{
    wm_part_builder_t *b = wm_calloc(1, sizeof *b);
    if (!b)
        return WM_ENOMEM;
    wm_strmap_init(&b->events.map);
    wm_strmap_init(&b->strings.map);
    wm_strmap_init(&b->colnames.map);
    *out = b;
    return 0;
}

void wm_part_builder_free(wm_part_builder_t *b)
{
    if (!b)
        return;
    wm_free(b->rows);
    wm_free(b->props);
    wm_free(b->lcodes);
    wm_free(b->merges);
    wm__an_dict_release(&b->events);
    wm__an_dict_release(&b->strings);
    wm__an_dict_release(&b->colnames);
    wm_free(b);
}

uint64_t wm_part_builder_rows(const wm_part_builder_t *b)
{
    return b->nrows;
}

static int days_from_civil(int64_t y, int64_t m, int64_t d, int64_t *out)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    *out = era * 146097 + doe - 719468;
    return 0;
}

static bool digits(const char *s, int n, int64_t *v)
{
    int64_t x = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return true;
}

bool wm__an_parse_datetime(const char *s, size_t len, int64_t *ms, uint8_t *form)
{
    int64_t y, mo, d, h = 0, mi = 0, se = 0, f = 0;
    if (len != 10 && len != 19 && len != 23)
        return false;
    if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' || !digits(s + 8, 2, &d))
        return false;
    if (len >= 19 && (s[10] != ' ' || !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) ||
                      s[16] != ':' || !digits(s + 17, 2, &se)))
        return false;
    if (len == 23 && (s[19] != '.' || !digits(s + 20, 3, &f)))
        return false;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 59)
        return false;
    int64_t days;
    days_from_civil(y, mo, d, &days);
    *ms = days * 86400000 + h * 3600000 + mi * 60000 + se * 1000 + f;
    *form = len == 10 ? 0 : len == 19 ? 1 : 2;
    /* only forms that read back to the same text (no 2026-02-31) */
    char back[32];
    return wm_acol_datetime_text((double)*ms, *form, back, sizeof back) == len && !memcmp(back, s, len);
}

static int col_of(wm_part_builder_t *b, const char *name, size_t len, wm_acol_type_t t, uint32_t *col)
{
    char key[512];
    if (len > sizeof key - 1)
        return WM_ELIMIT;
    key[0] = (char)t;
    memcpy(key + 1, name, len);
    uint64_t v;
    if (wm_strmap_get(&b->colnames.map, key, len + 1, &v)) {
        *col = (uint32_t)v;
        return 0;
    }
    return wm__an_dict_add(&b->colnames, key, len + 1, col);
}

const char *wm__builder_col(const wm_part_builder_t *b, uint32_t c, wm_acol_type_t *type, uint32_t *len)
{
    *type = (wm_acol_type_t)(unsigned char)b->colnames.strs[c][0];
    *len = b->colnames.lens[c] - 1;
    return b->colnames.strs[c] + 1;
}

static int add_prop(wm_part_builder_t *b, const wm_json_t *v, wm_buf_t *scratch)
{
    wm_mprop_t p = {0};
    wm_acol_type_t t;
    int rc;
    switch (v->type) {
    case WM_JSON_NULL:
        return 0;
    case WM_JSON_TRUE:
    case WM_JSON_FALSE:
        t = WM_ACOL_BOOL;
        p.v.code = v->type == WM_JSON_TRUE;
        break;
    case WM_JSON_NUMBER:
        t = WM_ACOL_NUMBER;
        p.v.num = v->is_int ? (double)v->i64 : v->u.num;
        break;
    case WM_JSON_STRING: {
        int64_t ms;
        uint8_t form;
        if (wm__an_parse_datetime(v->u.str, v->len, &ms, &form)) {
            t = WM_ACOL_DATETIME;
            p.v.code = (uint64_t)ms;
            p.form = form;
        } else {
            t = WM_ACOL_STRING;
            uint32_t code;
            if ((rc = wm__an_dict_add(&b->strings, v->u.str, v->len, &code)))
                return rc;
            p.v.code = code;
        }
        break;
    }
    case WM_JSON_ARRAY: {
        bool strings = true;
        for (const wm_json_t *e = v->u.child; e; e = e->next)
            strings &= e->type == WM_JSON_STRING;
        if (strings) {
            t = WM_ACOL_LIST;
            p.v.code = b->nl;
            for (const wm_json_t *e = v->u.child; e; e = e->next) {
                uint32_t code;
                if ((rc = wm__an_dict_add(&b->strings, e->u.str, e->len, &code)) ||
                    (rc = wm__an_grow((void **)&b->lcodes, &b->lcap, (uint64_t)b->nl + 1, sizeof *b->lcodes)))
                    return rc;
                b->lcodes[b->nl++] = code;
                p.n++;
            }
            break;
        }
        goto as_text;   /* arrays of other values are kept as their JSON text */
    }
    default:
    as_text: {
        t = WM_ACOL_JSON;
        wm_buf_reset(scratch);
        wm_json_write(scratch, v);
        if (scratch->err)
            return scratch->err;
        uint32_t code;
        if ((rc = wm__an_dict_add(&b->strings, scratch->data, scratch->len, &code)))
            return rc;
        p.v.code = code;
        break;
    }
    }
    if ((rc = col_of(b, v->key, v->key_len, t, &p.col)))
        return rc;
    if ((rc = wm__an_grow((void **)&b->props, &b->pcap, (uint64_t)b->nprops + 1, sizeof *b->props)))
        return rc;
    b->props[b->nprops++] = p;
    return 0;
}

int wm_part_builder_add(wm_part_builder_t *b, uint64_t user, int64_t time_ms, uint64_t seq, const char *event,
                        size_t event_len, const wm_json_t *properties)
{
    int rc = wm__an_grow((void **)&b->rows, &b->rcap, (uint64_t)b->nrows + 1, sizeof *b->rows);
    if (rc)
        return rc;
    wm_mrow_t *r = &b->rows[b->nrows];
    r->user = user;
    r->time = time_ms;
    r->seq = seq;
    r->pstart = b->nprops;
    if ((rc = wm__an_dict_add(&b->events, event, event_len, &r->ev)))
        return rc;
    if (properties && properties->type == WM_JSON_OBJECT) {
        wm_buf_t scratch;
        wm_buf_init(&scratch, 0);
        for (const wm_json_t *v = properties->u.child; v && !rc; v = v->next)
            if (v->key)
                rc = add_prop(b, v, &scratch);
        wm_buf_release(&scratch);
        if (rc) {
            b->nprops = r->pstart;
            return rc;
        }
    }
    r->pn = b->nprops - r->pstart;
    b->nrows++;
    b->sorted = false;
    return 0;
}

int wm_part_builder_merge(wm_part_builder_t *b, uint64_t from_user, uint64_t into_user)
{
    int rc = wm__an_grow((void **)&b->merges, &b->mcap, 2 * ((uint64_t)b->nmerges + 1), sizeof *b->merges);
    if (rc)
        return rc;
    b->merges[2 * b->nmerges] = from_user;
    b->merges[2 * b->nmerges + 1] = into_user;
    b->nmerges++;
    return 0;
}

static int row_cmp(const void *a, const void *b)
{
    const wm_mrow_t *x = a, *y = b;
    if (x->user != y->user)
        return x->user < y->user ? -1 : 1;
    if (x->time != y->time)
        return x->time < y->time ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void wm__builder_sort(wm_part_builder_t *b)
{
    if (!b->sorted && b->nrows)   /* rows is NULL when empty */
        qsort(b->rows, b->nrows, sizeof *b->rows, row_cmp);
    b->sorted = true;
}

static bool is_event_type(uint8_t t)
{
    return t == WM_REC_TRACK || t == WM_REC_TRACK_SIGNUP || t == WM_REC_TRACK_ID_BIND ||
           t == WM_REC_TRACK_ID_UNBIND;
}

int wm__builder_add_payload(wm_part_builder_t *b, const void *payload, uint32_t len, uint64_t seq,
                            wm_arena_t *scratch)
{
    wm_payload_hdr_t h;
    if (len < sizeof h)
        return WM_ECORRUPT;
    memcpy(&h, payload, sizeof h);
    if (h.kind == WM_PAYLOAD_MERGE)
        return wm_part_builder_merge(b, h.from_user, h.user_id);
    if (h.kind != WM_PAYLOAD_RECORD || !is_event_type(h.rec_type))
        return 0;
    const char *json = (const char *)payload + sizeof h;
    wm_arena_reset(scratch);
    wm_json_t *root;
    wm_json_error_t jerr;
    if (wm_json_parse(scratch, json, len - sizeof h, &root, &jerr) || root->type != WM_JSON_OBJECT)
        return WM_ECORRUPT;
    const wm_json_t *ev = wm_json_get(root, "event");
    if (!ev || ev->type != WM_JSON_STRING)
        return WM_ECORRUPT;
    return wm_part_builder_add(b, h.user_id, h.time_ms, seq, ev->u.str, ev->len, wm_json_get(root, "properties"));
}

/* Writes the sorted rows through the streaming writer. */
int wm_part_builder_write(wm_part_builder_t *b, const char *path)
{
    wm__builder_sort(b);
    wm_part_writer_t *w;
    int rc = wm__part_writer_open(path, &w);
    if (rc)
        return rc;
    if (b->nosync)
        wm__part_writer_nosync(w);
    uint32_t ncols = b->colnames.n;
    uint32_t *wcol = wm_malloc((ncols + 1) * sizeof *wcol);
    uint32_t *wev = wm_malloc((b->events.n + 1) * sizeof *wev);
    uint32_t *codes = NULL, ccap = 0;
    rc = wcol && wev ? 0 : WM_ENOMEM;
    for (uint32_t c = 0; c < ncols && !rc; c++) {
        wm_acol_type_t t;
        uint32_t nl;
        const char *name = wm__builder_col(b, c, &t, &nl);
        rc = wm__part_writer_col(w, name, nl, t, &wcol[c]);
        if (rc == WM_ELIMIT) {
            /* past the column limit: the value's text goes to "$rest" */
            rc = 0;
            wcol[c] = UINT32_MAX;
        }
    }
    for (uint32_t e = 0; e < b->events.n && !rc; e++)
        rc = wm__part_writer_event(w, b->events.strs[e], b->events.lens[e], &wev[e]);
    for (uint32_t i = 0; i < 2 * b->nmerges && !rc; i += 2)
        rc = wm__part_writer_merge(w, b->merges[i], b->merges[i + 1]);
    for (uint32_t i = 0; i < b->nrows && !rc; i++) {
        const wm_mrow_t *r = &b->rows[i];
        rc = wm__part_writer_row(w, r->user, r->time, r->seq, wev[r->ev]);
        for (uint32_t k = 0; k < r->pn && !rc; k++) {
            const wm_mprop_t *p = &b->props[r->pstart + k];
            wm_acol_type_t t;
            uint32_t nl;
            const char *name = wm__builder_col(b, p->col, &t, &nl);
            uint32_t col = wcol[p->col], code;
            if (col == UINT32_MAX) {
                bool str = WM_ACOL_IS_TEXT(t);
                rc = wm__part_writer_rest(w, name, nl, t, str ? b->strings.strs[p->v.code] : NULL,
                                          str ? b->strings.lens[p->v.code] : 0, t == WM_ACOL_NUMBER ? p->v.num : 0);
                continue;
            }
            switch (t) {
            case WM_ACOL_NUMBER:
                rc = wm__part_writer_num(w, col, p->v.num);
                break;
            case WM_ACOL_STRING:
            case WM_ACOL_JSON:
                rc = wm__part_writer_str(w, col, b->strings.strs[p->v.code], b->strings.lens[p->v.code], &code);
                if (!rc)
                    rc = wm__part_writer_code(w, col, code, 0);
                break;
            case WM_ACOL_BOOL:
            case WM_ACOL_DATETIME:
                rc = wm__part_writer_code(w, col, p->v.code, p->form);
                break;
            case WM_ACOL_LIST:
                if (p->n > ccap) {
                    uint32_t *q = wm_realloc(codes, p->n * sizeof *codes);
                    if (!q) {
                        rc = WM_ENOMEM;
                        break;
                    }
                    codes = q;
                    ccap = p->n;
                }
                for (uint32_t j = 0; j < p->n && !rc; j++) {
                    uint32_t sc = b->lcodes[p->v.code + j];
                    rc = wm__part_writer_str(w, col, b->strings.strs[sc], b->strings.lens[sc], &codes[j]);
                }
                if (!rc)
                    rc = wm__part_writer_list(w, col, codes, p->n);
                break;
            }
        }
    }
    wm_free(wcol);
    wm_free(wev);
    wm_free(codes);
    if (rc) {
        wm__part_writer_abort(w);
        return rc;
    }
    return wm__part_writer_finish(w, NULL);
}
