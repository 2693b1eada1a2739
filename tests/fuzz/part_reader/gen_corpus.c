/*
 * gen_corpus.c - writes the seed parts of the part_reader fuzz target:
 *
 *   cc -std=c17 -D_GNU_SOURCE -Iinclude -Isrc tests/fuzz/part_reader/gen_corpus.c \
 *      build/libwaymark.a -lzstd -lm -lpthread -o /tmp/gen && /tmp/gen tests/fuzz/part_reader/corpus
 *
 * Small valid parts (every column type, a type change, absent values,
 * merges, an empty part, two blocks, the "$rest" overflow) and damaged
 * copies (cut, a flipped block byte, a flipped footer byte). Not built by
 * the Makefile; run it again when the format changes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "waymark/analytics.h"
#include "waymark/arena.h"
#include "waymark/json.h"

static wm_arena_t arena;
static const char *dir;

static void add(wm_part_builder_t *b, uint64_t u, int64_t t, uint64_t s, const char *ev, const char *props)
{
    wm_json_t *v = NULL;
    wm_json_error_t err;
    if (props && wm_json_parse(&arena, props, strlen(props), &v, &err)) {
        fprintf(stderr, "bad JSON %s\n", props);
        exit(1);
    }
    if (wm_part_builder_add(b, u, t, s, ev, strlen(ev), v))
        exit(1);
}

static void finish(wm_part_builder_t *b, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (wm_part_builder_write(b, path)) {
        fprintf(stderr, "write %s failed\n", path);
        exit(1);
    }
    wm_part_builder_free(b);
}

static unsigned char *slurp(const char *name, size_t *n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *d = malloc(*n);
    if (fread(d, 1, *n, f) != *n)
        exit(1);
    fclose(f);
    return d;
}

static void spit(const char *name, const unsigned char *d, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (fwrite(d, 1, n, f) != n)
        exit(1);
    fclose(f);
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    dir = argv[1];
    wm_arena_init(&arena, 1 << 16);
    wm_part_builder_t *b;

    wm_part_builder_new(&b);
    add(b, 5, 1000, 1, "Buy",
        "{\"n\":-12.5,\"i\":123456789,\"s\":\"\",\"u\":\"h\\u00e9 \\\"q\\\"\",\"b\":true,\"f\":false,"
        "\"d0\":\"2026-01-02\",\"d1\":\"2026-01-02 03:04:05\",\"d2\":\"1969-12-31 23:59:59.999\","
        "\"l\":[\"a\",\"b\",\"\"],\"le\":[],\"o\":{\"x\":[1]},\"nu\":null}");
    add(b, 5, 500, 2, "View", "{\"n\":\"str\",\"l\":[\"b\"],\"d0\":\"2026-01-03\"}");
    add(b, 3, -7, 3, "View", NULL);
    finish(b, "types.part");

    wm_part_builder_new(&b);
    for (int i = 0; i < 40; i++) {
        char j[160];
        if (i % 2)
            snprintf(j, sizeof j, "{\"x\":%d,\"opt\":\"o%d\"}", i, i % 3);
        else
            snprintf(j, sizeof j, "{\"x\":\"s%d\",\"l\":[\"t%d\",\"t%d\"]}", i, i % 4, i % 5);
        add(b, (uint64_t)(i % 6), i * 1000, (uint64_t)i + 1, i % 3 ? "A" : "B", j);
    }
    wm_part_builder_merge(b, 100, 1);
    wm_part_builder_merge(b, 101, 2);
    finish(b, "typechange.part");

    wm_part_builder_new(&b);
    finish(b, "empty.part");

    wm_part_builder_new(&b);
    for (uint64_t i = 0; i < 20; i++)
        wm_part_builder_merge(b, 1000 + i, i);
    finish(b, "merges.part");

    wm_part_builder_new(&b);
    for (uint32_t i = 0; i < 300; i++) {
        char j[200];
        snprintf(j, sizeof j, "{\"n\":%u.25,\"d\":\"2026-10-%02u %02u:00:00.%03u\",\"b\":%s}", i, 1 + i % 28,
                 i % 24, i, i % 2 ? "true" : "false");
        wm_arena_reset(&arena);
        add(b, i / 15, 1700000000000 + (int64_t)(i % 15) * 60000, i + 1, i % 2 ? "E1" : "E2", j);
    }
    finish(b, "users.part");

    wm_part_builder_new(&b);
    for (uint32_t i = 0; i < 65536 + 40; i++)
        add(b, i / 1000, i, i + 1, "E", i % 2 ? "{\"b\":true}" : NULL);
    finish(b, "twoblocks.part");

    wm_part_builder_new(&b);
    for (uint32_t i = 0; i < 1030; i++) {
        char j[64];
        snprintf(j, sizeof j, "{\"p%u\":%u}", i, i);
        wm_arena_reset(&arena);
        add(b, 1, i, i + 1, "E", j);
    }
    finish(b, "rest.part");

    /* damaged copies */
    size_t n;
    unsigned char *d = slurp("types.part", &n);
    spit("types-cut-half.bin", d, n / 2);
    spit("types-cut-trailer.bin", d, n - 3);
    d[20] ^= 0x40;   /* inside the first column block */
    spit("types-block-flip.bin", d, n);
    d[20] ^= 0x40;
    d[n - 40] ^= 0x01;   /* inside the footer */
    spit("types-footer-flip.bin", d, n);
    free(d);
    d = slurp("typechange.part", &n);
    d[n - 8] = 9;   /* version */
    spit("typechange-version.bin", d, n);
    free(d);
    wm_arena_release(&arena);
    return 0;
}
