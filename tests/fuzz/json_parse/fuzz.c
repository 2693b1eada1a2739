/*
 * fuzz.c (json_parse) - the JSON reader must never crash, and whatever it
 * accepts must survive write -> re-parse unchanged: the writer's output is the
 * format Waymark stores and forwards, so a value that changes on the way
 * through would silently corrupt data. A second parse under a tight arena
 * limit exercises every out-of-memory exit.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "waymark/arena.h"
#include "waymark/buf.h"
#include "waymark/error.h"
#include "waymark/json.h"

static int same(const wm_json_t *a, const wm_json_t *b)
{
    if (a->type != b->type || a->len != b->len || a->key_len != b->key_len)
        return 0;
    if (a->key_len && memcmp(a->key, b->key, a->key_len) != 0)
        return 0;
    switch (a->type) {
    case WM_JSON_NUMBER:
        if (a->u.num != b->u.num || (a->is_int && (!b->is_int || a->i64 != b->i64)))
            return 0;
        return 1;
    case WM_JSON_STRING:
        return memcmp(a->u.str, b->u.str, a->len) == 0 && b->u.str[b->len] == '\0';
    case WM_JSON_ARRAY:
    case WM_JSON_OBJECT: {
        const wm_json_t *x = a->u.child, *y = b->u.child;
        for (; x && y; x = x->next, y = y->next)
            if (!same(x, y))
                return 0;
        return !x && !y;
    }
    default:
        return 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wm_arena_t a, a2;
    wm_arena_init(&a, 4096);
    wm_arena_init(&a2, 4096);
    wm_json_t *v = NULL, *v2 = NULL;
    wm_json_error_t err;
    int rc = wm_json_parse(&a, (const char *)data, size, &v, &err);
    if (rc != 0 && rc != WM_EPARSE && rc != WM_ELIMIT)
        abort();
    if (rc != 0 && err.offset > size)
        abort();
    if (rc == 0) {
        wm_buf_t b, b2;
        wm_buf_init(&b, 0);
        wm_buf_init(&b2, 0);
        wm_json_write(&b, v);
        if (b.err || wm_json_parse(&a2, b.data, b.len, &v2, &err) != 0 || !same(v, v2))
            abort();
        wm_json_write(&b2, v2);
        if (b2.len != b.len || memcmp(b.data, b2.data, b.len) != 0)
            abort();
        wm_buf_release(&b);
        wm_buf_release(&b2);
    }
    /* tight limit: the parse may now run out of memory, but only that */
    wm_arena_t small;
    wm_arena_init(&small, 256);
    small.limit_bytes = size;
    int rc2 = wm_json_parse(&small, (const char *)data, size, &v2, NULL);
    if (rc2 != rc && rc2 != WM_ENOMEM)
        abort();
    wm_arena_release(&small);
    wm_arena_release(&a);
    wm_arena_release(&a2);
    return 0;
}
