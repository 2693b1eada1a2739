/*
 * json_bakeoff.c - which JSON parser should ingest use? Parses a Sensors
 * NDJSON corpus line by line with Waymark's json.c and with the parsers
 * Debian packages (jansson, json-c, yajl's tree API, simdjson DOM and
 * On-Demand; simdjson and json-c are called through
 * bench/json_simdjson_shim.cpp), walks every value and
 * prints MB/s, records/s and a checksum (bytes of all string values, count of
 * all numbers) that must agree across parsers. A second table probes nesting
 * depth in a child process per parser, since a stack overflow kills the
 * process that parses.
 *
 * The corpus is `waymark gen` output (deterministic: same size knob, same
 * bytes): track/profile/item records with Chinese strings, 10-20 properties,
 * ~650 bytes. Usage: json_bakeoff [records=200000] [passes=3]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <yajl/yajl_tree.h>

#include "waymark/arena.h"
#include "waymark/gen.h"
#include "waymark/json.h"

/* simdjson reads up to 64 bytes past a document; the corpus buffer has them */
#define PADDING 64

int wm_bench_simdjson_dom(const char *buf, size_t len, size_t padded_ok, uint64_t *str_bytes,
                          uint64_t *numbers);
int wm_bench_simdjson_ondemand(const char *buf, size_t len, size_t capacity, uint64_t *str_bytes,
                               uint64_t *numbers);
/* json-c lives in the shim too: its headers and jansson's both define
 * json_object/json_type, so they cannot share one C translation unit. */
int wm_bench_jsonc(const char *buf, size_t len, uint64_t *str_bytes, uint64_t *numbers);
/* 0: parse and free only (depth probes), so a probe measures the parser, not
 * the recursive walkers of this file. On-Demand has no tree: it still walks. */
void wm_bench_shim_walk(int on);
static int g_walk = 1;

typedef struct line {
    char *p;      /* NUL-terminated copy position inside the corpus */
    size_t len;
} line_t;

typedef struct sum {
    uint64_t str_bytes;
    uint64_t numbers;
    uint64_t failures;
} sum_t;

/* ------------------------------------------------------------- walkers */

static void walk_wm(const wm_json_t *v, sum_t *s)
{
    if (v->type == WM_JSON_STRING)
        s->str_bytes += v->len;
    else if (v->type == WM_JSON_NUMBER)
        s->numbers++;
    else if (v->type == WM_JSON_ARRAY || v->type == WM_JSON_OBJECT)
        for (const wm_json_t *c = v->u.child; c; c = c->next)
            walk_wm(c, s);
}

static void walk_jansson(json_t *v, sum_t *s)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        s->str_bytes += json_string_length(v);
        break;
    case JSON_INTEGER:
    case JSON_REAL:
        s->numbers++;
        break;
    case JSON_ARRAY:
        for (size_t i = 0; i < json_array_size(v); i++)
            walk_jansson(json_array_get(v, i), s);
        break;
    case JSON_OBJECT: {
        const char *k;
        json_t *c;
        json_object_foreach(v, k, c) walk_jansson(c, s);
        break;
    }
    default:
        break;
    }
}

static void walk_yajl(yajl_val v, sum_t *s)
{
    if (YAJL_IS_STRING(v)) {
        s->str_bytes += strlen(v->u.string);
    } else if (YAJL_IS_NUMBER(v)) {
        s->numbers++;
    } else if (YAJL_IS_ARRAY(v)) {
        for (size_t i = 0; i < v->u.array.len; i++)
            walk_yajl(v->u.array.values[i], s);
    } else if (YAJL_IS_OBJECT(v)) {
        for (size_t i = 0; i < v->u.object.len; i++)
            walk_yajl(v->u.object.values[i], s);
    }
}

/* --------------------------------------------------------- one parse each */

static wm_arena_t wm_arena;

static void run_wm(const line_t *l, sum_t *s)
{
    wm_json_t *v;
    if (wm_json_parse(&wm_arena, l->p, l->len, &v, NULL) == 0) {
        if (g_walk)
            walk_wm(v, s);
    }
    else
        s->failures++;
    wm_arena_reset(&wm_arena);
}

static void run_jansson(const line_t *l, sum_t *s)
{
    json_error_t err;
    json_t *v = json_loadb(l->p, l->len, 0, &err);
    if (!v) {
        s->failures++;
        return;
    }
    if (g_walk)
        walk_jansson(v, s);
    json_decref(v);
}

static void run_jsonc(const line_t *l, sum_t *s)
{
    if (wm_bench_jsonc(l->p, l->len, &s->str_bytes, &s->numbers))
        s->failures++;
}

static void run_yajl(const line_t *l, sum_t *s)
{
    /* yajl_tree_parse needs a NUL-terminated string: lines are stored so */
    yajl_val v = yajl_tree_parse(l->p, NULL, 0);
    if (!v) {
        s->failures++;
        return;
    }
    if (g_walk)
        walk_yajl(v, s);
    yajl_tree_free(v);
}

static void run_simd_dom(const line_t *l, sum_t *s)
{
    if (wm_bench_simdjson_dom(l->p, l->len, 1, &s->str_bytes, &s->numbers))
        s->failures++;
}

static void run_simd_od(const line_t *l, sum_t *s)
{
    if (wm_bench_simdjson_ondemand(l->p, l->len, l->len + PADDING, &s->str_bytes, &s->numbers))
        s->failures++;
}

typedef struct parser {
    const char *name;
    const char *kind;
    void (*run)(const line_t *, sum_t *);
} parser_t;

static const parser_t PARSERS[] = {
    {"waymark json.c", "tree, arena", run_wm},
    {"jansson 2.14", "tree, refcounted", run_jansson},
    {"json-c 0.16", "tree, refcounted", run_jsonc},
    {"yajl 2.1 tree", "tree over SAX", run_yajl},
    {"simdjson 3.0 DOM", "tape, SIMD", run_simd_dom},
    {"simdjson 3.0 OD", "on-demand, SIMD", run_simd_od},
};
#define N_PARSERS (sizeof PARSERS / sizeof PARSERS[0])

/* --------------------------------------------------------------- corpus */

/* Generates the corpus and turns every '\n' into '\0' so each line is a
 * NUL-terminated document followed by readable bytes (simdjson padding). */
static char *make_corpus(size_t want, line_t **lines_out, size_t *n_out, size_t *bytes_out)
{
    wm_gen_opts_t o;
    wm_gen_opts_init(&o);
    o.users = want / 30 + 1;
    o.days = 30;
    o.seed = 20261001;
    char *data = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&data, &len);
    if (!f || wm_gen_write(&o, f, NULL) != 0 || fclose(f) != 0) {
        fprintf(stderr, "corpus generation failed\n");
        exit(1);
    }
    char *buf = malloc(len + PADDING);
    line_t *lines = malloc(sizeof *lines * (want + 1));
    if (!buf || !lines)
        exit(1);
    memcpy(buf, data, len);
    memset(buf + len, 0, PADDING);
    free(data);
    size_t n = 0, bytes = 0;
    char *p = buf, *end = buf + len;
    while (p < end && n < want) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            break;
        *nl = '\0';
        lines[n].p = p;
        lines[n].len = (size_t)(nl - p);
        bytes += lines[n].len + 1;
        n++;
        p = nl + 1;
    }
    *lines_out = lines;
    *n_out = n;
    *bytes_out = bytes;
    return buf;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --------------------------------------------------------- depth probes */

/* 1 = parsed, 0 = rejected cleanly */
static int probe_child(size_t p, const char *doc, size_t len)
{
    line_t l = {(char *)doc, len};
    sum_t s = {0};
    g_walk = 0;
    wm_bench_shim_walk(0);
    PARSERS[p].run(&l, &s);
    return s.failures == 0;
}

/* 1 = parsed, 0 = rejected cleanly, -1 = crashed (signal) */
static int probe(size_t p, const char *doc, size_t len)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0)
        _exit(probe_child(p, doc, len) ? 1 : 0);
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) < 0)
        return -2;
    if (WIFSIGNALED(st))
        return -1;
    return WEXITSTATUS(st) == 1;
}

static void depth_table(void)
{
    static const size_t depths[] = {30, 100, 1000, 100000, 10000000};
    printf("\nnesting probe: [[[...]]] of the given depth (ok = parsed, limit = rejected, CRASH = died)\n");
    printf("%-18s", "parser");
    for (size_t d = 0; d < sizeof depths / sizeof depths[0]; d++)
        printf(" %10zu", depths[d]);
    printf("\n");
    size_t max = depths[sizeof depths / sizeof depths[0] - 1];
    char *doc = malloc(2 * max + PADDING + 1);
    for (size_t p = 0; p < N_PARSERS; p++) {
        printf("%-18s", PARSERS[p].name);
        for (size_t d = 0; d < sizeof depths / sizeof depths[0]; d++) {
            size_t n = depths[d];
            memset(doc, '[', n);
            memset(doc + n, ']', n);
            memset(doc + 2 * n, 0, PADDING + 1);
            int r = probe(p, doc, 2 * n);
            printf(" %10s", r == 1 ? "ok" : r == 0 ? "limit" : "CRASH");
        }
        printf("\n");
    }
    free(doc);
}

int main(int argc, char **argv)
{
    size_t want = argc > 1 ? strtoul(argv[1], NULL, 10) : 200000;
    int passes = argc > 2 ? atoi(argv[2]) : 3;
    if (want == 0 || passes <= 0) {
        fprintf(stderr, "usage: json_bakeoff [records] [passes]\n");
        return 2;
    }
    line_t *lines;
    size_t n, bytes;
    char *corpus = make_corpus(want, &lines, &n, &bytes);
    wm_arena_init(&wm_arena, 64 * 1024);
    printf("corpus: %zu records, %.1f MB, %.0f bytes/record (waymark gen, seed 20261001); best of %d passes\n\n",
           n, (double)bytes / 1e6, (double)bytes / (double)n, passes);
    printf("%-18s %-18s %9s %12s %12s %10s %6s\n", "parser", "model", "MB/s", "records/s", "str_bytes",
           "numbers", "fail");
    for (size_t p = 0; p < N_PARSERS; p++) {
        double best = 1e30;
        sum_t s = {0};
        for (int k = 0; k < passes; k++) {
            sum_t cur = {0};
            double t0 = now_s();
            for (size_t i = 0; i < n; i++)
                PARSERS[p].run(&lines[i], &cur);
            double dt = now_s() - t0;
            if (dt < best)
                best = dt;
            s = cur;
        }
        printf("%-18s %-18s %9.1f %12.0f %12llu %10llu %6llu\n", PARSERS[p].name, PARSERS[p].kind,
               (double)bytes / 1e6 / best, (double)n / best, (unsigned long long)s.str_bytes,
               (unsigned long long)s.numbers, (unsigned long long)s.failures);
    }
    depth_table();
    wm_arena_release(&wm_arena);
    free(lines);
    free(corpus);
    return 0;
}
