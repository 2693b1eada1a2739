/*
 * test_catalog_maps.c - saved journey maps in the catalog: create (version
 * 1; a taken key is WM_EEXISTS), replace (version + 1; a missing key is
 * WM_ENOTFOUND), get, the list in key order and per project, delete (its
 * versions go too: the key starts again at 1), and everything kept when
 * the catalog is reopened.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/catalog.h"
#include "waymark/alloc.h"
#include "waymark/buf.h"
#include "waymark/error.h"

static char path[256];

static wm_catalog_t *open_catalog(void)
{
    wm_catalog_t *c = NULL;
    assert_int_equal(wm__catalog_open(path, &c), 0);
    return c;
}

static void test_maps(void **state)
{
    (void)state;
    char dir[] = "/tmp/wm-catmaps-XXXXXX";
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/catalog.db", dir);
    wm_catalog_t *c = open_catalog();
    uint32_t v = 0;
    assert_int_equal(wm__catalog_map_put(c, "default", "b_map", "B", "{\"key\":\"b_map\"}", true, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(wm__catalog_map_put(c, "default", "b_map", "B", "{}", true, &v), WM_EEXISTS);
    assert_int_equal(wm__catalog_map_put(c, "default", "nope", "N", "{}", false, &v), WM_ENOTFOUND);
    assert_int_equal(wm__catalog_map_put(c, "default", "b_map", "B2", "{\"key\":\"b_map\",\"v\":2}", false, &v), 0);
    assert_int_equal(v, 2);
    assert_int_equal(wm__catalog_map_put(c, "default", "a_map", "A", "{\"key\":\"a_map\"}", true, &v), 0);
    assert_int_equal(wm__catalog_map_put(c, "other", "a_map", "A", "{\"key\":\"a_map\"}", true, &v), 0);
    assert_int_equal(v, 1);

    wm__map_row_t row;
    assert_int_equal(wm__catalog_map_get(c, "default", "b_map", &row), 0);
    assert_string_equal(row.definition, "{\"key\":\"b_map\",\"v\":2}");
    assert_int_equal(row.version, 2);
    assert_true(row.created_ms > 0 && row.updated_ms >= row.created_ms);
    wm_free(row.definition);
    assert_int_equal(wm__catalog_map_get(c, "default", "nope", &row), WM_ENOTFOUND);

    wm_buf_t b;
    wm_buf_init(&b, 0);
    assert_int_equal(wm__catalog_maps_json(c, "default", &b), 0);
    wm_buf_putc(&b, 0);
    const char *a = strstr(b.data, "\"key\":\"a_map\""), *bb = strstr(b.data, "\"key\":\"b_map\"");
    assert_non_null(a);
    assert_non_null(bb);
    assert_true(a < bb);
    assert_non_null(strstr(b.data, "\"name\":\"B2\",\"version\":2"));
    wm_buf_release(&b);

    assert_int_equal(wm__catalog_map_delete(c, "default", "b_map"), 0);
    assert_int_equal(wm__catalog_map_delete(c, "default", "b_map"), WM_ENOTFOUND);
    assert_int_equal(wm__catalog_map_get(c, "default", "b_map", &row), WM_ENOTFOUND);
    assert_int_equal(wm__catalog_map_put(c, "default", "b_map", "B", "{}", true, &v), 0);
    assert_int_equal(v, 1);
    wm__catalog_close(c);

    c = open_catalog();
    assert_int_equal(wm__catalog_map_get(c, "other", "a_map", &row), 0);
    assert_int_equal(row.version, 1);
    wm_free(row.definition);
    assert_int_equal(wm__catalog_map_get(c, "default", "b_map", &row), 0);
    assert_int_equal(row.version, 1);
    wm_free(row.definition);
    wm__catalog_close(c);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_maps)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
