/*
 * test_gen.c - `waymark gen` core (wm_gen_write): same options give the same
 * bytes, another seed gives other bytes, every line is a valid Sensors record
 * for the JSON reader with its required fields, each property keeps one type
 * everywhere, and options are checked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "waymark/arena.h"
#include "waymark/error.h"
#include "waymark/gen.h"
#include "waymark/json.h"

typedef struct mem {
    char *data;
    size_t len;
} mem_t;

static int gen(const wm_gen_opts_t *o, mem_t *m, wm_gen_stats_t *st)
{
    FILE *f = open_memstream(&m->data, &m->len);
    assert_non_null(f);
    int rc = wm_gen_write(o, f, st);
    fclose(f);
    return rc;
}

static wm_gen_opts_t small_opts(uint64_t seed)
{
    wm_gen_opts_t o;
    wm_gen_opts_init(&o);
    o.users = 60;
    o.days = 14;
    o.seed = seed;
    return o;
}

static void test_deterministic(void **state)
{
    wm_gen_opts_t o = small_opts(42);
    mem_t a = {0}, b = {0}, c = {0};
    assert_int_equal(gen(&o, &a, NULL), 0);
    assert_int_equal(gen(&o, &b, NULL), 0);
    assert_true(a.len > 10000);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    o.seed = 43;
    assert_int_equal(gen(&o, &c, NULL), 0);
    assert_true(c.len != a.len || memcmp(a.data, c.data, a.len) != 0);
    free(a.data);
    free(b.data);
    free(c.data);
}

/* A person's records do not depend on how many people follow: the first
 * users' output is a prefix of a larger run. */
static void test_prefix_stable(void **state)
{
    wm_gen_opts_t o = small_opts(5);
    mem_t a = {0}, b = {0};
    o.users = 10;
    assert_int_equal(gen(&o, &a, NULL), 0);
    o.users = 20;
    assert_int_equal(gen(&o, &b, NULL), 0);
    assert_true(b.len > a.len);
    assert_memory_equal(a.data, b.data, a.len);
    free(a.data);
    free(b.data);
}

/* property name -> JSON type seen first (tiny linear table is enough) */
typedef struct seen {
    char name[64];
    int type;
} seen_t;

static int kind(const wm_json_t *v)
{
    return v->type == WM_JSON_TRUE ? WM_JSON_FALSE : (int)v->type;
}

static void check_types(seen_t *tab, size_t *n, const wm_json_t *props)
{
    for (const wm_json_t *c = props->u.child; c; c = c->next) {
        assert_true(c->key_len > 0 && c->key_len < 64);
        if (c->type == WM_JSON_ARRAY)
            for (const wm_json_t *e = c->u.child; e; e = e->next)
                assert_int_equal(e->type, WM_JSON_STRING);
        size_t i = 0;
        while (i < *n && strcmp(tab[i].name, c->key) != 0)
            i++;
        if (i == *n) {
            assert_true(*n < 256);
            strcpy(tab[i].name, c->key);
            tab[i].type = kind(c);
            (*n)++;
        }
        if (tab[i].type != kind(c))
            fail_msg("property %s changes type", c->key);
    }
}

static const char *str_field(const wm_json_t *r, const char *k)
{
    const char *s = wm_json_str(wm_json_get(r, k));
    if (!s)
        fail_msg("record lacks string field %s", k);
    return s;
}

static void check_record(const wm_json_t *r, int *n_items, int *n_profiles, int *n_events)
{
    assert_int_equal(r->type, WM_JSON_OBJECT);
    const char *type = str_field(r, "type");
    const wm_json_t *t = wm_json_get(r, "time");
    assert_non_null(t);
    assert_true(t->is_int && t->i64 > 1000000000000LL && t->i64 < 10000000000000LL);
    const wm_json_t *props = wm_json_get(r, "properties");
    assert_non_null(props);
    assert_int_equal(props->type, WM_JSON_OBJECT);
    if (!strcmp(type, "item_set")) {
        const char *it = str_field(r, "item_type");
        assert_true(!strcmp(it, "fund") || !strcmp(it, "wealth") || !strcmp(it, "ipo"));
        assert_true(strlen(str_field(r, "item_id")) > 0);
        (*n_items)++;
        return;
    }
    const char *did = str_field(r, "distinct_id");
    assert_true(strlen(did) >= 1 && strlen(did) <= 255);
    if (!strcmp(type, "profile_set")) {
        assert_int_equal(wm_json_get(props, "$is_login_id")->type, WM_JSON_TRUE);
        (*n_profiles)++;
        return;
    }
    assert_true(strlen(str_field(r, "event")) > 0);
    const wm_json_t *tid = wm_json_get(r, "_track_id");
    assert_true(tid && tid->is_int && tid->i64 >= 0 && tid->i64 <= INT32_MAX);
    str_field(props, "$lib");
    if (!strcmp(type, "track_signup"))
        assert_string_not_equal(str_field(r, "original_id"), did);
    else if (!strcmp(type, "track_id_bind"))
        assert_non_null(wm_json_str(wm_json_get(wm_json_get(r, "identities"), "$identity_login_id")));
    else
        assert_string_equal(type, "track");
    const wm_json_t *login = wm_json_get(props, "$is_login_id");
    if (login) {
        assert_int_equal(login->type, WM_JSON_TRUE);
        assert_true(did[0] == 'c' && strlen(did) == 9);
    }
    (*n_events)++;
}

static void test_records_valid(void **state)
{
    wm_gen_opts_t o = small_opts(9);
    o.project = "brokerage_demo";
    mem_t m = {0};
    wm_gen_stats_t st;
    assert_int_equal(gen(&o, &m, &st), 0);
    assert_int_equal(st.bytes, m.len);
    wm_arena_t a;
    wm_arena_init(&a, 16384);
    seen_t *tab = calloc(256, sizeof *tab);
    size_t n_types = 0, lines = 0;
    int items = 0, profiles = 0, events = 0;
    const char *p = m.data, *end = m.data + m.len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        assert_non_null(nl); /* every record ends with a newline */
        wm_json_t *r;
        wm_json_error_t err;
        if (wm_json_parse(&a, p, (size_t)(nl - p), &r, &err) != 0)
            fail_msg("line %zu: %s", lines + 1, err.msg);
        check_record(r, &items, &profiles, &events);
        check_types(tab, &n_types, wm_json_get(r, "properties"));
        assert_string_equal(wm_json_str(wm_json_get(r, "project")), "brokerage_demo");
        wm_arena_reset(&a);
        lines++;
        p = nl + 1;
    }
    assert_int_equal(lines, st.records);
    assert_true(items >= 240);           /* 200 funds + 40 wealth + IPOs */
    assert_true(profiles >= 30);         /* most of 60 people log in */
    assert_true(events > 60 * 5);        /* and do things */
    assert_int_equal((uint64_t)events, st.events);
    free(tab);
    wm_arena_release(&a);
    free(m.data);
}

static void test_catalogue_only(void **state)
{
    wm_gen_opts_t o = small_opts(1);
    o.users = 0;
    mem_t m = {0};
    wm_gen_stats_t st;
    assert_int_equal(gen(&o, &m, &st), 0);
    assert_int_equal(st.events, 0);
    assert_true(st.records >= 240 && st.records < 300);
    assert_null(strstr(m.data, "\"type\":\"track\""));
    assert_non_null(strstr(m.data, "\"maturity_date\":\""));
    assert_non_null(strstr(m.data, "\"item_type\":\"ipo\""));
    free(m.data);
}

static void test_bad_options(void **state)
{
    wm_gen_opts_t o = small_opts(1);
    mem_t m = {0};
    o.days = 0;
    assert_int_equal(gen(&o, &m, NULL), WM_EINVAL);
    free(m.data);
    m.data = NULL;
    o = small_opts(1);
    o.users = 100000000;
    assert_int_equal(gen(&o, &m, NULL), WM_EINVAL);
    free(m.data);
    m.data = NULL;
    o = small_opts(1);
    o.project = "bad-name";
    assert_int_equal(gen(&o, &m, NULL), WM_EINVAL);
    free(m.data);
    assert_int_equal(wm_gen_write(NULL, stdout, NULL), WM_EINVAL);
}

static void test_parse_date(void **state)
{
    int64_t ms = 0;
    assert_int_equal(wm_gen_parse_date("2026-10-01", &ms), 0);
    assert_int_equal(ms, 1790784000000LL); /* 2026-09-30T16:00:00Z */
    assert_int_equal(wm_gen_parse_date("2024-02-29", &ms), 0);
    assert_int_equal(wm_gen_parse_date("2023-02-29", &ms), WM_EINVAL);
    assert_int_equal(wm_gen_parse_date("2026-13-01", &ms), WM_EINVAL);
    assert_int_equal(wm_gen_parse_date("2026-04-31", &ms), WM_EINVAL);
    assert_int_equal(wm_gen_parse_date("2026-1-01", &ms), WM_EINVAL);
    assert_int_equal(wm_gen_parse_date("2026-10-01x", &ms), WM_EINVAL);
    assert_int_equal(wm_gen_parse_date("abcd-ef-gh", &ms), WM_EINVAL);
    assert_int_equal(wm_gen_parse_date(NULL, &ms), WM_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_prefix_stable),
        cmocka_unit_test(test_records_valid),
        cmocka_unit_test(test_catalogue_only),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_parse_date),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
