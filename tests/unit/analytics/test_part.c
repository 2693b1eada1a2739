/*
 * test_part.c - the part file: every column type written by the builder reads
 * back exactly, in (user, time, seq) order; several blocks; the column limit
 * and its "$rest" overflow; identity merges; damaged blocks are reported by
 * file, block and column while the rest stays readable; damaged files are
 * refused at open with a message (run under ASan: no crash, no leak).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "analytics/an_internal.h"
#include "an_helpers.h"
#include "../../fuzz/part_reader/part_walk.h"

typedef struct fx {
    char dir[512];
    char path[600];
    wm_arena_t arena;
} fx_t;

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    an_mkdtemp(fx->dir, sizeof fx->dir, "part");
    snprintf(fx->path, sizeof fx->path, "%s/test.part", fx->dir);
    wm_arena_init(&fx->arena, 1 << 16);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    an_rmrf(fx->dir);
    wm_arena_release(&fx->arena);
    free(fx);
    return 0;
}

static void add(fx_t *fx, wm_part_builder_t *b, uint64_t u, int64_t t, uint64_t s, const char *ev, const char *props)
{
    assert_int_equal(wm_part_builder_add(b, u, t, s, ev, strlen(ev), an_json(&fx->arena, props)), 0);
}

static void assert_rows_equal(const an_rows_t *got, const an_rows_t *want)
{
    for (size_t i = 0; i < got->n && i < want->n; i++)
        if (strcmp(got->row[i], want->row[i])) {
            print_error("row %zu:\n  got  %s\n  want %s\n", i, got->row[i], want->row[i]);
            fail();
        }
    assert_int_equal(got->n, want->n);
}

/* ---- every type --------------------------------------------------------- */

static void test_types_round_trip(void **state)
{
    fx_t *fx = *state;
    wm_part_builder_t *b;
    assert_int_equal(wm_part_builder_new(&b), 0);
    add(fx, b, 5, 1000, 1, "Buy",
        "{\"n\":-12.5,\"i\":9007199254740992,\"neg\":-42,\"z\":0,\"big\":1e300,\"tiny\":-1e-300,"
        "\"s\":\"\",\"u\":\"h\\u00e9llo \\u2713 \\\"q\\\" \\\\ 'x'\",\"b\":true,\"f\":false,"
        "\"d0\":\"2026-01-02\",\"d1\":\"2026-01-02 03:04:05\",\"d2\":\"1999-12-31 23:59:59.999\","
        "\"dneg\":\"1969-12-31 23:59:59.001\",\"dold\":\"1600-02-29\",\"bad\":\"2026-02-31\",\"bad2\":\"2026-1-02\","
        "\"l\":[\"a\",\"\\u03b2\",\"\"],\"le\":[],\"o\":{\"x\":1,\"y\":[1,2]},\"na\":[1,[2]],\"mx\":[\"a\",1],"
        "\"nul\":null}");
    add(fx, b, 5, 500, 2, "View", "{\"n\":\"now a string\",\"b\":1,\"l\":[\"a\"]}");
    add(fx, b, 3, 2000, 3, "View", NULL);
    add(fx, b, 3, 2000, 4, "Buy", "{}");
    add(fx, b, UINT64_MAX - 1, -5, 6, "Neg", "{\"n\":1,\"d0\":\"2100-01-01\"}");
    add(fx, b, 0, 4102444800000, 5, "Zero", "{\"s\":\"zero\"}");
    assert_int_equal(wm_part_builder_merge(b, 10, 5), 0);
    assert_int_equal(wm_part_builder_merge(b, 11, 5), 0);
    assert_int_equal(wm_part_builder_rows(b), 6);
    assert_int_equal(wm_part_builder_write(b, fx->path), 0);
    wm_part_builder_free(b);

    an_rows_t want = {0};
    char *e[32];
    size_t k = 0;
    e[k++] = an_entry("s", 'S', "zero", 4);
    an_rows_push(&want, an_row_line(0, 4102444800000, 5, "Zero", e, k));
    an_rows_push(&want, an_row_line(3, 2000, 3, "View", e, 0));
    an_rows_push(&want, an_row_line(3, 2000, 4, "Buy", e, 0));
    k = 0;
    e[k++] = an_entry("n", 'S', "now a string", 12);
    e[k++] = an_entry_num("b", 1);
    e[k++] = an_entry("l", 'L', "[a]", 3);
    an_rows_push(&want, an_row_line(5, 500, 2, "View", e, k));
    k = 0;
    e[k++] = an_entry_num("n", -12.5);
    e[k++] = an_entry_num("i", 9007199254740992.0);
    e[k++] = an_entry_num("neg", -42);
    e[k++] = an_entry_num("z", 0);
    e[k++] = an_entry_num("big", 1e300);
    e[k++] = an_entry_num("tiny", -1e-300);
    e[k++] = an_entry("s", 'S', "", 0);
    const char *u = "h\xc3\xa9llo \xe2\x9c\x93 \"q\" \\ 'x'";
    e[k++] = an_entry("u", 'S', u, strlen(u));
    e[k++] = an_entry("b", 'B', "true", 4);
    e[k++] = an_entry("f", 'B', "false", 5);
    e[k++] = an_entry("d0", 'D', "2026-01-02", 10);
    e[k++] = an_entry("d1", 'D', "2026-01-02 03:04:05", 19);
    e[k++] = an_entry("d2", 'D', "1999-12-31 23:59:59.999", 23);
    e[k++] = an_entry("dneg", 'D', "1969-12-31 23:59:59.001", 23);
    e[k++] = an_entry("dold", 'D', "1600-02-29", 10);
    e[k++] = an_entry("bad", 'S', "2026-02-31", 10);
    e[k++] = an_entry("bad2", 'S', "2026-1-02", 9);
    e[k++] = an_entry("l", 'L', "[a,\xce\xb2,]", 7);
    e[k++] = an_entry("le", 'L', "[]", 2);
    e[k++] = an_entry("o", 'S', "{\"x\":1,\"y\":[1,2]}", 17);
    e[k++] = an_entry("na", 'S', "[1,[2]]", 7);
    e[k++] = an_entry("mx", 'S', "[\"a\",1]", 7);
    /* null: the builder keeps no value (the property is absent) */
    an_rows_push(&want, an_row_line(5, 1000, 1, "Buy", e, k));
    k = 0;
    e[k++] = an_entry_num("n", 1);
    e[k++] = an_entry("d0", 'D', "2100-01-01", 10);
    an_rows_push(&want, an_row_line(UINT64_MAX - 1, -5, 6, "Neg", e, k));

    an_rows_t got = {0};
    assert_int_equal(an_file_lines(fx->path, &got), 0);
    assert_rows_equal(&got, &want);

    wm_part_t *p;
    char err[256];
    assert_int_equal(wm_part_open(fx->path, &p, err, sizeof err), 0);
    wm_part_info_t in;
    wm_part_get_info(p, &in);
    assert_int_equal(in.rows, 6);
    assert_int_equal(in.blocks, 1);
    assert_int_equal(in.events, 4);
    /* n twice (number, string), b twice (bool, number) */
    assert_int_equal(in.cols, 24);
    assert_int_equal(in.merges, 2);
    assert_int_equal(in.seq_min, 1);
    assert_int_equal(in.seq_max, 6);
    assert_int_equal(in.time_min, -5);
    assert_int_equal(in.time_max, 4102444800000);
    struct stat st;
    assert_int_equal(stat(fx->path, &st), 0);
    assert_int_equal(in.bytes, (uint64_t)st.st_size);
    int32_t nn = wm_part_find_col(p, "n", WM_ACOL_NUMBER), ns = wm_part_find_col(p, "n", WM_ACOL_STRING);
    assert_true(nn >= 0 && ns >= 0 && nn != ns);
    assert_int_equal(wm_part_find_col(p, "n", WM_ACOL_BOOL), -1);
    assert_int_equal(wm_part_find_col(p, "nul", WM_ACOL_STRING), -1);
    wm_acol_type_t t;
    assert_string_equal(wm_part_col_name(p, (uint32_t)ns, &t), "n");
    assert_int_equal(t, WM_ACOL_STRING);
    assert_null(wm_part_col_name(p, in.cols, &t));
    const uint64_t *pairs;
    uint32_t np;
    wm_part_merges(p, &pairs, &np);
    assert_int_equal(np, 2);
    assert_int_equal(pairs[0], 10);
    assert_int_equal(pairs[1], 5);
    assert_int_equal(pairs[2], 11);
    assert_int_equal(pairs[3], 5);
    assert_int_equal(wm_part_verify(p, err, sizeof err), 0);
    /* reading a column before any block, or past the end */
    wm_part_reader_t *r;
    assert_int_equal(wm_part_reader_new(p, &r), 0);
    wm_acolumn_t col;
    wm_ablock_t blk;
    assert_int_equal(wm_part_read_col(r, 0, &col, err, sizeof err), WM_EINVAL);
    assert_int_equal(wm_part_read_block(r, 1, &blk, err, sizeof err), WM_EINVAL);
    assert_int_equal(wm_part_read_block(r, 0, &blk, err, sizeof err), 0);
    assert_int_equal(wm_part_read_col(r, in.cols, &col, err, sizeof err), WM_EINVAL);
    wm_part_reader_free(r);
    wm_part_close(p);
    an_rows_free(&got);
    an_rows_free(&want);
}

/* ---- datetime text ---------------------------------------------------- */

static void test_datetime_forms(void **state)
{
    (void)state;
    static const char *ok[] = {"2026-10-01", "2026-10-01 00:00:00", "2026-10-01 23:59:59.999", "0001-01-01",
                               "9999-12-31 23:59:59.999", "2024-02-29 12:00:00", "1970-01-01 00:00:00.000",
                               "1900-03-01 00:00:00.001"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        int64_t ms;
        uint8_t form;
        assert_true(wm__an_parse_datetime(ok[i], strlen(ok[i]), &ms, &form));
        char back[40];
        size_t n = wm_acol_datetime_text((double)ms, form, back, sizeof back);
        assert_int_equal(n, strlen(ok[i]));
        assert_memory_equal(back, ok[i], n);
    }
    static const char *no[] = {"2026-10-1", "2026-13-01", "2023-02-29", "2026-10-01T00:00:00",
                               "2026-10-01 24:00:00", "2026-10-01 00:60:00", "2026-10-01 00:00:00.1",
                               "2026-10-01 00:00:00,000", "abcd-10-01", ""};
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
        int64_t ms;
        uint8_t form;
        assert_false(wm__an_parse_datetime(no[i], strlen(no[i]), &ms, &form));
    }
}

/* ---- many rows, several blocks ------------------------------------------- */

#define MANY 150000u   /* 3 blocks, the last partial */

/* Row i's properties as JSON, and its expected line. */
static void gen_row(uint32_t i, uint64_t *u, int64_t *t, uint64_t *s, char *ev, wm_buf_t *json, char **ent,
                    size_t *ne)
{
    *u = (uint64_t)(i % 997) * 3 + 1 + (i % 7 == 0 ? 1000000000000ull : 0);
    *t = 1700000000000ll + (int64_t)((i * 7919u) % 100000u) * 1000 - (i % 11 == 0 ? 1000000 : 0);
    *s = (uint64_t)i * 2 + 1;
    sprintf(ev, "ev%u", i % 5);
    wm_buf_reset(json);
    *ne = 0;
    int64_t n = (int64_t)i - 75000;
    wm_buf_printf(json, "{\"n\":%lld", (long long)n);
    ent[(*ne)++] = an_entry_num("n", (double)n);
    char tmp[64];
    int l = snprintf(tmp, sizeof tmp, "s%u", i % 300);
    wm_buf_printf(json, ",\"s\":\"%s\"", tmp);
    ent[(*ne)++] = an_entry("s", 'S', tmp, (size_t)l);
    wm_buf_printf(json, ",\"b\":%s", i % 2 ? "true" : "false");
    ent[(*ne)++] = an_entry("b", 'B', i % 2 ? "true" : "false", i % 2 ? 4 : 5);
    int64_t ms = 1600000000000ll + (int64_t)i * 86399999ll;
    uint32_t form = i % 3;
    l = (int)wm_acol_datetime_text((double)(form == 0 ? ms / 86400000 * 86400000 : form == 1 ? ms / 1000 * 1000 : ms),
                                   form, tmp, sizeof tmp);
    wm_buf_printf(json, ",\"d\":\"%s\"", tmp);
    ent[(*ne)++] = an_entry("d", 'D', tmp, (size_t)l);
    wm_buf_t lb;
    wm_buf_init(&lb, 0);
    wm_buf_puts(json, ",\"l\":[");
    wm_buf_putc(&lb, '[');
    for (uint32_t k = 0; k < i % 4; k++) {
        wm_buf_printf(json, "%s\"t%u\"", k ? "," : "", (i + k) % 50);
        wm_buf_printf(&lb, "%st%u", k ? "," : "", (i + k) % 50);
    }
    wm_buf_putc(json, ']');
    wm_buf_putc(&lb, ']');
    ent[(*ne)++] = an_entry("l", 'L', lb.data, lb.len);
    wm_buf_release(&lb);
    if (i % 3 == 0) {   /* sometimes absent */
        wm_buf_printf(json, ",\"opt\":%u.5", i);
        ent[(*ne)++] = an_entry_num("opt", i + 0.5);
    }
    if (i % 2) {        /* changes type between rows */
        wm_buf_printf(json, ",\"chg\":\"x%u\"", i % 10);
        l = snprintf(tmp, sizeof tmp, "x%u", i % 10);
        ent[(*ne)++] = an_entry("chg", 'S', tmp, (size_t)l);
    } else {
        wm_buf_printf(json, ",\"chg\":%u", i);
        ent[(*ne)++] = an_entry_num("chg", i);
    }
    wm_buf_putc(json, '}');
    wm_buf_putc(json, 0);
}

static void test_many_blocks(void **state)
{
    fx_t *fx = *state;
    wm_part_builder_t *b;
    assert_int_equal(wm_part_builder_new(&b), 0);
    an_rows_t want = {0};
    wm_buf_t json;
    wm_buf_init(&json, 0);
    char *ent[16];
    int64_t tmin = INT64_MAX, tmax = INT64_MIN;
    for (uint32_t i = 0; i < MANY; i++) {
        uint64_t u, s;
        int64_t t;
        char ev[16];
        size_t ne;
        gen_row(i, &u, &t, &s, ev, &json, ent, &ne);
        wm_arena_reset(&fx->arena);
        add(fx, b, u, t, s, ev, json.data);
        an_rows_push(&want, an_row_line(u, t, s, ev, ent, ne));
        tmin = t < tmin ? t : tmin;
        tmax = t > tmax ? t : tmax;
    }
    wm_buf_release(&json);
    assert_int_equal(wm_part_builder_write(b, fx->path), 0);
    wm_part_builder_free(b);

    an_rows_t got = {0};
    assert_int_equal(an_file_lines(fx->path, &got), 0);
    /* file order is (user, time, seq): check it, then compare as sets */
    assert_int_equal(got.n, MANY);
    uint64_t pu = 0;
    int64_t pt = INT64_MIN;
    uint64_t ps = 0;
    for (size_t i = 0; i < got.n; i++) {
        unsigned long long u, s;
        long long t;
        assert_int_equal(sscanf(got.row[i], "%llu|%lld|%llu|", &u, &t, &s), 3);
        assert_true(u > pu || (u == pu && (t > pt || (t == pt && s > ps))));
        pu = u;
        pt = t;
        ps = s;
    }
    an_rows_sort(&got);
    an_rows_sort(&want);
    assert_rows_equal(&got, &want);

    wm_part_t *p;
    char err[256];
    assert_int_equal(wm_part_open(fx->path, &p, err, sizeof err), 0);
    wm_part_info_t in;
    wm_part_get_info(p, &in);
    assert_int_equal(in.rows, MANY);
    assert_int_equal(in.blocks, 3);
    assert_int_equal(in.cols, 8);   /* n s b d l opt chg/N chg/S */
    assert_int_equal(in.events, 5);
    assert_int_equal(in.seq_min, 1);
    assert_int_equal(in.seq_max, 2 * (MANY - 1) + 1);
    assert_int_equal(in.time_min, tmin);
    assert_int_equal(in.time_max, tmax);
    wm_part_reader_t *r;
    assert_int_equal(wm_part_reader_new(p, &r), 0);
    wm_ablock_t blk;
    assert_int_equal(wm_part_read_block(r, 2, &blk, err, sizeof err), 0);
    assert_int_equal(blk.rows, MANY - 2 * WM_PART_BLOCK_ROWS);
    assert_int_equal(wm_part_read_block(r, 0, &blk, err, sizeof err), 0);
    assert_int_equal(blk.rows, WM_PART_BLOCK_ROWS);
    wm_part_reader_free(r);
    assert_int_equal(wm_part_verify(p, err, sizeof err), 0);
    wm_part_close(p);
    an_rows_free(&got);
    an_rows_free(&want);
}

/* ---- more distinct properties than columns ------------------------------- */

#define NPROPS 1100u

static void test_rest_overflow(void **state)
{
    fx_t *fx = *state;
    wm_part_builder_t *b;
    assert_int_equal(wm_part_builder_new(&b), 0);
    char json[256];
    an_rows_t want = {0};
    for (uint32_t i = 0; i < NPROPS; i++) {
        /* first appearance order: "common", then p0000, p0001, ... */
        snprintf(json, sizeof json, "{\"common\":\"c\",\"p%04u\":%u,\"q%04u\":\"v%u\"}", i, i, i, i);
        wm_arena_reset(&fx->arena);
        add(fx, b, i % 10, i, i + 1, "E", json);
    }
    assert_int_equal(wm_part_builder_write(b, fx->path), 0);
    wm_part_builder_free(b);

    wm_part_t *p;
    char err[256];
    assert_int_equal(wm_part_open(fx->path, &p, err, sizeof err), 0);
    wm_part_info_t in;
    wm_part_get_info(p, &in);
    assert_int_equal(in.cols, WM_PART_COLS_MAX);
    int32_t rest = wm_part_find_col(p, "$rest", WM_ACOL_STRING);
    assert_true(rest >= 0);
    /* the builder's columns in first-appearance order: common, p0, q0, p1, ... */
    uint32_t regular = WM_PART_COLS_MAX - 1;
    for (uint32_t i = 0; i < NPROPS; i++) {
        char *e[4];
        size_t k = 0;
        e[k++] = an_entry("common", 'S', "c", 1);
        char name[16], val[64];
        snprintf(name, sizeof name, "p%04u", i);
        if (1 + 2 * i < regular)
            e[k++] = an_entry_num(name, i);
        else {
            int n = snprintf(val, sizeof val, "%s=%u", name, i);
            e[k++] = an_entry("$rest", 'S', val, (size_t)n);
        }
        snprintf(name, sizeof name, "q%04u", i);
        snprintf(val, sizeof val, "v%u", i);
        if (2 + 2 * i < regular)
            e[k++] = an_entry(name, 'S', val, strlen(val));
        else if (1 + 2 * i >= regular) {
            /* a row has one "$rest" value: the first overflowing property */
        } else {
            char v2[64];
            int n = snprintf(v2, sizeof v2, "%s=%s", name, val);
            e[k++] = an_entry("$rest", 'S', v2, (size_t)n);
        }
        an_rows_push(&want, an_row_line(i % 10, i, i + 1, "E", e, k));
    }
    an_rows_t got = {0};
    assert_int_equal(wm_part_verify(p, err, sizeof err), 0);
    assert_int_equal(an_part_lines(p, &got, err, sizeof err), 0);
    an_rows_sort(&got);
    an_rows_sort(&want);
    assert_rows_equal(&got, &want);
    wm_part_close(p);
    an_rows_free(&got);
    an_rows_free(&want);
}

/* ---- a part of merges only, and an empty one ----------------------------- */

static void test_empty_and_merges_only(void **state)
{
    fx_t *fx = *state;
    wm_part_builder_t *b;
    assert_int_equal(wm_part_builder_new(&b), 0);
    for (uint64_t i = 0; i < 1000; i++)
        assert_int_equal(wm_part_builder_merge(b, 1000000 + i, i), 0);
    assert_int_equal(wm_part_builder_write(b, fx->path), 0);
    wm_part_builder_free(b);
    wm_part_t *p;
    char err[256];
    assert_int_equal(wm_part_open(fx->path, &p, err, sizeof err), 0);
    wm_part_info_t in;
    wm_part_get_info(p, &in);
    assert_int_equal(in.rows, 0);
    assert_int_equal(in.blocks, 0);
    assert_int_equal(in.merges, 1000);
    const uint64_t *pairs;
    uint32_t np;
    wm_part_merges(p, &pairs, &np);
    for (uint32_t i = 0; i < np; i++) {
        assert_int_equal(pairs[2 * i], 1000000 + i);
        assert_int_equal(pairs[2 * i + 1], i);
    }
    assert_int_equal(wm_part_verify(p, err, sizeof err), 0);
    wm_part_close(p);

    assert_int_equal(wm_part_builder_new(&b), 0);
    assert_int_equal(wm_part_builder_write(b, fx->path), 0);
    wm_part_builder_free(b);
    assert_int_equal(wm_part_open(fx->path, &p, err, sizeof err), 0);
    wm_part_get_info(p, &in);
    assert_int_equal(in.rows + in.blocks + in.cols + in.merges + in.events, 0);
    assert_int_equal(wm_part_verify(p, err, sizeof err), 0);
    wm_part_close(p);
    /* the temporary file is gone */
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s.tmp", fx->path);
    assert_int_equal(access(tmp, F_OK), -1);
}

/* ---- damaged blocks ------------------------------------------------------- */

/* 2 blocks, properties n (number) and s (string). */
static void write_two_blocks(fx_t *fx)
{
    wm_part_builder_t *b;
    assert_int_equal(wm_part_builder_new(&b), 0);
    char json[128];
    for (uint32_t i = 0; i < WM_PART_BLOCK_ROWS + 1000; i++) {
        snprintf(json, sizeof json, "{\"n\":%u,\"s\":\"v%u\"}", i, i % 77);
        wm_arena_reset(&fx->arena);
        add(fx, b, i / 10, i, i + 1, i % 2 ? "A" : "B", json);
    }
    assert_int_equal(wm_part_builder_write(b, fx->path), 0);
    wm_part_builder_free(b);
}

static void damage(fx_t *fx, uint32_t block, uint32_t col)
{
    size_t n = 0;
    unsigned char *d = an_read_file(fx->path, &n);
    pw_entry_t e = {0};
    assert_true(pw_find(d, n, block, col, &e));
    free(d);
    an_flip_byte(fx->path, (size_t)(e.off + e.clen / 2));
}

static void test_corrupt_column_block(void **state)
{
    fx_t *fx = *state;
    write_two_blocks(fx);
    wm_part_t *p;
    char err[512];
    assert_int_equal(wm_part_open(fx->path, &p, err, sizeof err), 0);
    int32_t s = wm_part_find_col(p, "s", WM_ACOL_STRING), nc = wm_part_find_col(p, "n", WM_ACOL_NUMBER);
    assert_true(s >= 0 && nc >= 0);
    wm_part_close(p);
    damage(fx, 0, 4 + (uint32_t)s);

    assert_int_equal(wm_part_open(fx->path, &p, err, sizeof err), 0);   /* the footer is intact */
    wm_part_reader_t *r;
    assert_int_equal(wm_part_reader_new(p, &r), 0);
    wm_ablock_t blk;
    wm_acolumn_t col;
    assert_int_equal(wm_part_read_block(r, 0, &blk, err, sizeof err), 0);
    err[0] = 0;
    assert_int_equal(wm_part_read_col(r, (uint32_t)s, &col, err, sizeof err), WM_ECORRUPT);
    assert_non_null(strstr(err, fx->path));
    assert_non_null(strstr(err, "block 0 column s"));
    assert_null(col.present);
    /* the block's other columns and the next block still read */
    assert_int_equal(wm_part_read_col(r, (uint32_t)nc, &col, err, sizeof err), 0);
    assert_true(wm_acol_has(&col, 0) && col.num[5] == 5);
    assert_int_equal(wm_part_read_block(r, 1, &blk, err, sizeof err), 0);
    assert_int_equal(blk.rows, 1000);
    assert_int_equal(wm_part_read_col(r, (uint32_t)s, &col, err, sizeof err), 0);
    assert_int_equal(wm_part_read_col(r, (uint32_t)nc, &col, err, sizeof err), 0);
    assert_true(col.num[0] == WM_PART_BLOCK_ROWS);
    wm_part_reader_free(r);
    err[0] = 0;
    assert_int_equal(wm_part_verify(p, err, sizeof err), WM_ECORRUPT);
    assert_non_null(strstr(err, "block 0 column s"));
    assert_non_null(strstr(err, "test.part"));
    wm_part_close(p);
}

static void test_corrupt_base_column(void **state)
{
    fx_t *fx = *state;
    write_two_blocks(fx);
    damage(fx, 1, 1);   /* block 1's time */
    wm_part_t *p;
    char err[512];
    assert_int_equal(wm_part_open(fx->path, &p, err, sizeof err), 0);
    wm_part_reader_t *r;
    assert_int_equal(wm_part_reader_new(p, &r), 0);
    wm_ablock_t blk;
    wm_acolumn_t col;
    assert_int_equal(wm_part_read_block(r, 1, &blk, err, sizeof err), WM_ECORRUPT);
    assert_non_null(strstr(err, "block 1 column time"));
    /* no block is current now: columns refuse */
    assert_int_equal(wm_part_read_col(r, 0, &col, err, sizeof err), WM_EINVAL);
    assert_int_equal(wm_part_read_block(r, 0, &blk, err, sizeof err), 0);
    assert_int_equal(blk.rows, WM_PART_BLOCK_ROWS);
    assert_int_equal(blk.time[100], 100);
    wm_part_reader_free(r);
    assert_int_equal(wm_part_verify(p, err, sizeof err), WM_ECORRUPT);
    assert_non_null(strstr(err, "block 1 column time"));
    wm_part_close(p);
}

/* ---- damaged files -------------------------------------------------------- */

static void expect_refused(fx_t *fx, const unsigned char *d, size_t n, const char *msg)
{
    assert_int_equal(an_write_file(fx->path, d, n), 0);
    wm_part_t *p = (wm_part_t *)0x1;
    char err[512] = "";
    int rc = wm_part_open(fx->path, &p, err, sizeof err);
    if (rc != WM_ECORRUPT || !strstr(err, fx->path) || (msg && !strstr(err, msg))) {
        print_error("rc %d, err \"%s\", wanted \"%s\"\n", rc, err, msg ? msg : "");
        fail();
    }
    assert_ptr_equal(p, (wm_part_t *)0x1);
}

/* Replaces d[pos, end) by rep (in the footer) and re-seals the footer. */
static unsigned char *fsplice(const unsigned char *d, size_t *n, size_t pos, size_t end, const unsigned char *rep,
                             size_t rlen)
{
    size_t m = *n - (end - pos) + rlen;
    unsigned char *o = malloc(m);
    memcpy(o, d, pos);
    memcpy(o + pos, rep, rlen);
    memcpy(o + pos + rlen, d + end, *n - end);
    unsigned char *tr = o + m - PW_TRAILER;
    pw_put32(tr + 8, (uint32_t)(m - PW_TRAILER - pw_u64(tr)));
    pw_seal_footer(o, m);
    *n = m;
    return o;
}

static void test_damaged_files_refused(void **state)
{
    fx_t *fx = *state;
    write_two_blocks(fx);
    size_t n = 0;
    unsigned char *good = an_read_file(fx->path, &n);
    unsigned char *d = malloc(n);

    expect_refused(fx, good, 0, "too short");
    expect_refused(fx, good, 10, "too short");
    expect_refused(fx, good, 31, "too short");
    expect_refused(fx, good, n / 2, NULL);
    expect_refused(fx, good, n - 1, NULL);
    expect_refused(fx, good + 1, n - 1, NULL);

    memcpy(d, good, n);
    d[n - 1] = 'X';
    expect_refused(fx, d, n, "bad magic");
    memcpy(d, good, n);
    d[0] = 'X';
    expect_refused(fx, d, n, "bad magic");

    memcpy(d, good, n);
    pw_put32(d + n - PW_TRAILER + 16, 9);
    expect_refused(fx, d, n, "format version 9");
    memcpy(d, good, n);
    pw_put32(d + 4, 7);
    expect_refused(fx, d, n, "format version");

    size_t foff = 0, flen = 0;
    assert_true(pw_footer(good, n, &foff, &flen));
    memcpy(d, good, n);
    d[foff + flen / 2] ^= 1;
    expect_refused(fx, d, n, "footer checksum mismatch");
    memcpy(d, good, n);
    d[n - PW_TRAILER + 12] ^= 1;
    expect_refused(fx, d, n, "footer checksum mismatch");
    memcpy(d, good, n);
    pw_put32(d + n - PW_TRAILER + 8, (uint32_t)flen + 1);
    expect_refused(fx, d, n, "footer offset");
    memcpy(d, good, n);
    d[n - PW_TRAILER] = 3;   /* footer offset inside the header */
    memset(d + n - PW_TRAILER + 1, 0, 7);
    expect_refused(fx, d, n, "footer offset");

    /* a sealed footer whose index names bytes outside the file: a column
     * offset so large that offset + length wraps around */
    pw_entry_t e = {0};
    assert_true(pw_find(good, n, 1, 4, &e));
    unsigned char big[WM_VARINT_MAX];
    size_t bl = (size_t)(wm_put_varint(big, UINT64_MAX - e.clen + 2) - big);
    size_t m = n;
    unsigned char *x = fsplice(good, &m, e.off_pos, e.off_end, big, bl);
    expect_refused(fx, x, m, "block 1 column 4 index malformed");
    free(x);
    /* a block past the footer (no wrap) */
    bl = (size_t)(wm_put_varint(big, foff) - big);
    m = n;
    x = fsplice(good, &m, e.off_pos, e.off_end, big, bl);
    expect_refused(fx, x, m, "index malformed");
    free(x);

    /* a block count far beyond what the footer can hold (and beyond memory) */
    unsigned char hdr[2 * WM_VARINT_MAX];
    size_t hl = (size_t)(wm_put_varint(hdr, 1ull << 62) - hdr);
    hl = (size_t)(wm_put_varint(hdr + hl, 3ull << 47) - hdr);   /* x 65536 wraps to 2^63 */
    const unsigned char *q = good + foff, *fend = good + foff + flen;
    uint64_t v;
    assert_true(wm_get_varint(&q, fend, &v) && wm_get_varint(&q, fend, &v));
    m = n;
    x = fsplice(good, &m, foff, (size_t)(q - good), hdr, hl);
    expect_refused(fx, x, m, "footer header malformed");
    free(x);

    /* an intact file still opens */
    assert_int_equal(an_write_file(fx->path, good, n), 0);
    wm_part_t *p;
    char err[256];
    assert_int_equal(wm_part_open(fx->path, &p, err, sizeof err), 0);
    assert_int_equal(wm_part_verify(p, err, sizeof err), 0);
    wm_part_close(p);
    /* a missing file: WM_EIO with the path */
    unlink(fx->path);
    err[0] = 0;
    assert_int_equal(wm_part_open(fx->path, &p, err, sizeof err), WM_EIO);
    assert_non_null(strstr(err, fx->path));
    free(d);
    free(good);
}

/* A sealed footer (checksums right) whose plain length of a column block is
 * wrong: far too large (4 GiB - 1, where length + 1 wraps), or off by one. */
static void test_bad_plain_length(void **state)
{
    fx_t *fx = *state;
    write_two_blocks(fx);
    size_t n;
    unsigned char *good = an_read_file(fx->path, &n);
    uint64_t lens[] = {UINT32_MAX, 0, 1};
    for (int col = 0; col < 6; col++)
        for (size_t k = 0; k < 3; k++) {
            pw_entry_t e = {0};
            assert_true(pw_find(good, n, 0, (uint32_t)col, &e));
            unsigned char v[WM_VARINT_MAX];
            uint64_t want = k == 0 ? lens[0] : e.ulen + (k == 1 ? 1 : (uint64_t)-1);
            size_t vl = (size_t)(wm_put_varint(v, want) - v), m = n;
            unsigned char *x = fsplice(good, &m, e.off_end, e.crc_pos, v, vl);
            assert_int_equal(an_write_file(fx->path, x, m), 0);
            free(x);
            wm_part_t *p;
            char err[512];
            assert_int_equal(wm_part_open(fx->path, &p, err, sizeof err), 0);
            wm_part_reader_t *r;
            assert_int_equal(wm_part_reader_new(p, &r), 0);
            wm_ablock_t blk;
            wm_acolumn_t c;
            err[0] = 0;
            int rc = wm_part_read_block(r, 0, &blk, err, sizeof err);
            if (col >= 4) {
                assert_int_equal(rc, 0);
                rc = wm_part_read_col(r, (uint32_t)col - 4, &c, err, sizeof err);
            }
            assert_int_equal(rc, WM_ECORRUPT);
            assert_non_null(strstr(err, "block 0 column"));
            assert_non_null(strstr(err, "cannot decompress"));
            /* block 1 is untouched */
            assert_int_equal(wm_part_read_block(r, 1, &blk, err, sizeof err), 0);
            wm_part_reader_free(r);
            assert_int_equal(wm_part_verify(p, err, sizeof err), WM_ECORRUPT);
            wm_part_close(p);
        }
    free(good);
}

/* Every single-byte flip in the footer is caught by its checksum; every
 * flip in the column blocks by verify. */
static void test_every_flip(void **state)
{
    fx_t *fx = *state;
    wm_part_builder_t *b;
    assert_int_equal(wm_part_builder_new(&b), 0);
    add(fx, b, 1, 1, 1, "E", "{\"n\":1,\"s\":\"x\",\"l\":[\"a\"],\"d\":\"2026-01-01\",\"b\":true}");
    add(fx, b, 2, 2, 2, "F", "{\"n\":2}");
    assert_int_equal(wm_part_builder_write(b, fx->path), 0);
    wm_part_builder_free(b);
    size_t n = 0;
    unsigned char *good = an_read_file(fx->path, &n);
    unsigned char *d = malloc(n);
    for (size_t i = 0; i < n; i++) {
        memcpy(d, good, n);
        d[i] ^= 0x01;
        assert_int_equal(an_write_file(fx->path, d, n), 0);
        wm_part_t *p;
        char err[512] = "";
        int rc = wm_part_open(fx->path, &p, err, sizeof err);
        if (rc == 0) {
            rc = wm_part_verify(p, err, sizeof err);
            wm_part_close(p);
        }
        if (rc != WM_ECORRUPT || !err[0]) {
            print_error("flip at %zu of %zu: rc %d err \"%s\"\n", i, n, rc, err);
            fail();
        }
    }
    free(d);
    free(good);
}

/* Times far apart in one block: the deltas wrap (defined, and read back);
 * an empty list as the first list value of a block. */
static void test_extreme_times(void **state)
{
    fx_t *fx = *state;
    wm_part_builder_t *b;
    assert_int_equal(wm_part_builder_new(&b), 0);
    add(fx, b, 1, INT64_MIN, 1, "E", "{\"l\":[]}");
    add(fx, b, 1, INT64_MAX, 2, "E", "{\"l\":[\"x\"]}");
    add(fx, b, 1, 0, UINT64_MAX, "E", NULL);
    add(fx, b, 2, INT64_MIN, 0, "E", NULL);
    assert_int_equal(wm_part_builder_write(b, fx->path), 0);
    wm_part_builder_free(b);
    an_rows_t got = {0};
    assert_int_equal(an_file_lines(fx->path, &got), 0);
    assert_int_equal(got.n, 4);
    char want[128];
    snprintf(want, sizeof want, "1|%lld|1|E|l/L=[]", (long long)INT64_MIN);
    assert_string_equal(got.row[0], want);
    snprintf(want, sizeof want, "1|0|%llu|E|", (unsigned long long)UINT64_MAX);
    assert_string_equal(got.row[1], want);
    snprintf(want, sizeof want, "1|%lld|2|E|l/L=[x]", (long long)INT64_MAX);
    assert_string_equal(got.row[2], want);
    snprintf(want, sizeof want, "2|%lld|0|E|", (long long)INT64_MIN);
    assert_string_equal(got.row[3], want);
    an_rows_free(&got);
    /* datetime text of values no datetime string gives: empty, defined */
    char t[64] = "x";
    assert_int_equal(wm_acol_datetime_text(9.3e18, 2, t, sizeof t), 0);
    assert_string_equal(t, "");
    assert_int_equal(wm_acol_datetime_text(-9.3e18, 0, t, sizeof t), 0);
    assert_int_equal(wm_acol_datetime_text(0.0 / 0.0, 1, t, sizeof t), 0);
    assert_int_equal(wm_acol_datetime_text(-62167219200000.0, 0, t, sizeof t), 10);
    assert_string_equal(t, "0000-01-01");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_types_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_datetime_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rest_overflow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_and_merges_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_column_block, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_base_column, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_files_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_plain_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_flip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extreme_times, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
