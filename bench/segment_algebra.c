/*
 * segment_algebra.c - membership sets of segments, measured.
 *
 * A segment keeps its members as a set of numeric user ids (uint32). Union,
 * intersection and difference of segments (UNION / INTERSECT / EXCEPT in
 * audience.h) and membership tests (in_segment) run on these sets. Three
 * representations are compared on the same two sets A and B:
 *
 *   roaring  CRoaring bitmaps (Debian libroaring 0.2.66), run_optimize'd
 *   array    sorted uint32 arrays, branch-free linear merges, binary search
 *   bitset   one bit per possible user (universe / 8 bytes per set)
 *
 * Two distributions, each drawn from a fixed seed: "random" (members uniform
 * over the universe, ~10 % density at the defaults) and "clustered" (runs of
 * 1..255 consecutive ids at random places, as when ids are assigned in
 * registration order and a segment is "registered in March").
 *
 * Measured per representation: build from sorted ids and from the same ids
 * in random order (the array then needs a sort: LSD radix, 2 x 16 bits);
 * |A op B| without building the result and the materialised result for op =
 * union, intersect, andnot; count (cardinality of A); contains (random probes
 * over the universe, ns each); serialised bytes of A (roaring: portable
 * format; array: 4 bytes per member; bitset: universe / 8). Every figure is
 * the median over REPS repetitions; operations shorter than 1 ms are looped
 * within a repetition. Every representation's cardinalities and probe hits
 * are checked against the others (a mismatch exits 1), and their sum is the
 * checksum.
 *
 * usage: segment_algebra [-u UNIVERSE] [-n MEMBERS] [-r REPS] [-p PROBES] [-s SEED]
 *   UNIVERSE  possible user ids, 0..UNIVERSE-1 (default 10000000)
 *   MEMBERS   members of each of A and B (default 1000000)
 *   REPS      repetitions per figure (default 7)
 *   PROBES    membership probes per repetition (default 1000000)
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <malloc.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <roaring/roaring.h>

enum { OP_UNION, OP_INTER, OP_ANDNOT, N_OPS };
static const char *const OP_NAME[] = {"union", "intersect", "andnot"};

typedef struct cfg {
    uint32_t universe;
    uint32_t members;
    int reps;
    uint32_t probes;
    uint64_t seed;
} cfg_t;

/* ---- helpers ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

static uint64_t rng_next(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint32_t rng_below(uint64_t *s, uint32_t n) { return (uint32_t)(((rng_next(s) >> 32) * n) >> 32); }

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- input sets ---- */

typedef struct input {
    uint32_t *sorted;
    uint32_t *shuffled;
    uint32_t n;
} input_t;

/* Members marked in a scratch bitmap (runs of 1 when !clustered). */
static void draw_members(uint64_t *marks, const cfg_t *c, bool clustered, uint64_t *rng)
{
    memset(marks, 0, ((size_t)c->universe + 63) / 64 * 8);
    uint32_t have = 0;
    while (have < c->members) {
        uint32_t start = rng_below(rng, c->universe);
        uint32_t len = clustered ? 1 + rng_below(rng, 255) : 1;
        for (uint32_t id = start; id < c->universe && id - start < len && have < c->members; id++) {
            uint64_t bit = 1ULL << (id & 63);
            if (!(marks[id >> 6] & bit)) {
                marks[id >> 6] |= bit;
                have++;
            }
        }
    }
}

static void make_input(input_t *in, const cfg_t *c, bool clustered, uint64_t *rng)
{
    size_t words = ((size_t)c->universe + 63) / 64;
    uint64_t *marks = xmalloc(words * 8);
    draw_members(marks, c, clustered, rng);
    in->n = c->members;
    in->sorted = xmalloc((size_t)in->n * 4);
    in->shuffled = xmalloc((size_t)in->n * 4);
    uint32_t k = 0;
    for (size_t w = 0; w < words; w++)
        for (uint64_t m = marks[w]; m; m &= m - 1)
            in->sorted[k++] = (uint32_t)(w * 64 + (size_t)__builtin_ctzll(m));
    memcpy(in->shuffled, in->sorted, (size_t)in->n * 4);
    for (uint32_t i = in->n - 1; i > 0; i--) {
        uint32_t j = rng_below(rng, i + 1), t = in->shuffled[i];
        in->shuffled[i] = in->shuffled[j];
        in->shuffled[j] = t;
    }
    free(marks);
}

/* ---- representations ---- */

typedef struct impl {
    const char *name;
    void *(*build)(const uint32_t *ids, uint32_t n, uint32_t universe, bool sorted);
    void (*destroy)(void *set);
    uint64_t (*op_card)(const void *a, const void *b, int op);
    void *(*op)(const void *a, const void *b, int op);
    uint64_t (*count)(const void *set);
    uint64_t (*contains)(const void *set, const uint32_t *probes, uint32_t n);
    size_t (*bytes)(const void *set);
} impl_t;

/* roaring */

static void *roaring_build(const uint32_t *ids, uint32_t n, uint32_t universe, bool sorted)
{
    roaring_bitmap_t *r = roaring_bitmap_create();
    roaring_bitmap_add_many(r, n, ids);
    roaring_bitmap_run_optimize(r);
    return r;
}

static void roaring_destroy(void *s) { roaring_bitmap_free(s); }

static uint64_t roaring_op_card(const void *a, const void *b, int op)
{
    if (op == OP_UNION)
        return roaring_bitmap_or_cardinality(a, b);
    if (op == OP_INTER)
        return roaring_bitmap_and_cardinality(a, b);
    return roaring_bitmap_andnot_cardinality(a, b);
}

static void *roaring_op(const void *a, const void *b, int op)
{
    if (op == OP_UNION)
        return roaring_bitmap_or(a, b);
    if (op == OP_INTER)
        return roaring_bitmap_and(a, b);
    return roaring_bitmap_andnot(a, b);
}

static uint64_t roaring_count(const void *s) { return roaring_bitmap_get_cardinality(s); }

static uint64_t roaring_contains(const void *s, const uint32_t *probes, uint32_t n)
{
    uint64_t hits = 0;
    for (uint32_t i = 0; i < n; i++)
        hits += roaring_bitmap_contains(s, probes[i]);
    return hits;
}

static size_t roaring_bytes(const void *s) { return roaring_bitmap_portable_size_in_bytes(s); }

/* sorted array */

typedef struct array {
    uint32_t *v;
    uint32_t n;
} array_t;

static void radix_sort(uint32_t *v, uint32_t n)
{
    uint32_t *tmp = xmalloc((size_t)n * 4);
    for (int shift = 0; shift < 32; shift += 16) {
        static uint32_t count[65537];
        memset(count, 0, sizeof count);
        for (uint32_t i = 0; i < n; i++)
            count[((v[i] >> shift) & 0xFFFF) + 1]++;
        for (uint32_t d = 1; d <= 65536; d++)
            count[d] += count[d - 1];
        for (uint32_t i = 0; i < n; i++)
            tmp[count[(v[i] >> shift) & 0xFFFF]++] = v[i];
        memcpy(v, tmp, (size_t)n * 4);
    }
    free(tmp);
}

static void *array_build(const uint32_t *ids, uint32_t n, uint32_t universe, bool sorted)
{
    array_t *a = xmalloc(sizeof *a);
    a->v = xmalloc((size_t)n * 4);
    a->n = n;
    memcpy(a->v, ids, (size_t)n * 4);
    if (!sorted)
        radix_sort(a->v, n);
    return a;
}

static void array_destroy(void *s)
{
    array_t *a = s;
    free(a->v);
    free(a);
}

/*
 * Branch-free merges (the comparison outcome moves the cursors; with random
 * members it is a coin flip, so a branching merge mispredicts half the
 * time). Each loop stores one candidate per step and advances the output
 * only when the candidate belongs to the result, so out needs room for one
 * slot past the result (the callers size it for the largest result + 1).
 * out NULL: count only.
 */
static uint32_t merge_union(const array_t *a, const array_t *b, uint32_t *out)
{
    uint32_t i = 0, j = 0, k = 0;
    while (i < a->n && j < b->n) {
        uint32_t x = a->v[i], y = b->v[j];
        if (out)
            out[k] = x < y ? x : y;
        k++;
        i += x <= y;
        j += y <= x;
    }
    if (out) {
        memcpy(out + k, a->v + i, (size_t)(a->n - i) * 4);
        memcpy(out + k + (a->n - i), b->v + j, (size_t)(b->n - j) * 4);
    }
    return k + (a->n - i) + (b->n - j);
}

/* keep_equal: intersection (x == y kept) or difference (x < y kept). */
static uint32_t merge_filter(const array_t *a, const array_t *b, bool keep_equal, uint32_t *out)
{
    uint32_t i = 0, j = 0, k = 0;
    while (i < a->n && j < b->n) {
        uint32_t x = a->v[i], y = b->v[j];
        if (out)
            out[k] = x;
        k += keep_equal ? x == y : x < y;
        i += x <= y;
        j += y <= x;
    }
    if (keep_equal)
        return k;
    if (out)
        memcpy(out + k, a->v + i, (size_t)(a->n - i) * 4);
    return k + (a->n - i);
}

static uint32_t merge(const array_t *a, const array_t *b, int op, uint32_t *out)
{
    return op == OP_UNION ? merge_union(a, b, out) : merge_filter(a, b, op == OP_INTER, out);
}

static uint64_t array_op_card(const void *a, const void *b, int op) { return merge(a, b, op, NULL); }

static void *array_op(const void *pa, const void *pb, int op)
{
    const array_t *a = pa, *b = pb;
    uint32_t cap = (op == OP_UNION ? a->n + b->n : a->n) + 1;
    array_t *r = xmalloc(sizeof *r);
    r->v = xmalloc((size_t)cap * 4);
    r->n = merge(a, b, op, r->v);
    return r;
}

static uint64_t array_count(const void *s) { return ((const array_t *)s)->n; }

static uint64_t array_contains(const void *s, const uint32_t *probes, uint32_t n)
{
    const array_t *a = s;
    uint64_t hits = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t lo = 0, hi = a->n; /* first index with v >= probe */
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (a->v[mid] < probes[i])
                lo = mid + 1;
            else
                hi = mid;
        }
        hits += lo < a->n && a->v[lo] == probes[i];
    }
    return hits;
}

static size_t array_bytes(const void *s) { return (size_t)((const array_t *)s)->n * 4; }

/* bitset */

typedef struct bitset {
    uint64_t *w;
    size_t n_words;
} bitset_t;

static bitset_t *bitset_new(uint32_t universe)
{
    bitset_t *b = xmalloc(sizeof *b);
    b->n_words = ((size_t)universe + 63) / 64;
    b->w = xmalloc(b->n_words * 8);
    return b;
}

static void *bitset_build(const uint32_t *ids, uint32_t n, uint32_t universe, bool sorted)
{
    bitset_t *b = bitset_new(universe);
    memset(b->w, 0, b->n_words * 8);
    for (uint32_t i = 0; i < n; i++)
        b->w[ids[i] >> 6] |= 1ULL << (ids[i] & 63);
    return b;
}

static void bitset_destroy(void *s)
{
    bitset_t *b = s;
    free(b->w);
    free(b);
}

static inline uint64_t word_op(uint64_t x, uint64_t y, int op)
{
    return op == OP_UNION ? x | y : op == OP_INTER ? x & y : x & ~y;
}

/* The hardware popcount, as a bitset in the product would be built for. */
#if defined(__x86_64__)
#define POPCNT_TARGET __attribute__((target("popcnt")))
#else
#define POPCNT_TARGET
#endif

POPCNT_TARGET static uint64_t bitset_op_card(const void *pa, const void *pb, int op)
{
    const bitset_t *a = pa, *b = pb;
    uint64_t n = 0;
    for (size_t i = 0; i < a->n_words; i++)
        n += (uint64_t)__builtin_popcountll(word_op(a->w[i], b->w[i], op));
    return n;
}

static void *bitset_op(const void *pa, const void *pb, int op)
{
    const bitset_t *a = pa, *b = pb;
    bitset_t *r = xmalloc(sizeof *r);
    r->n_words = a->n_words;
    r->w = xmalloc(r->n_words * 8);
    for (size_t i = 0; i < a->n_words; i++)
        r->w[i] = word_op(a->w[i], b->w[i], op);
    return r;
}

POPCNT_TARGET static uint64_t bitset_count(const void *s)
{
    const bitset_t *b = s;
    uint64_t n = 0;
    for (size_t i = 0; i < b->n_words; i++)
        n += (uint64_t)__builtin_popcountll(b->w[i]);
    return n;
}

static uint64_t bitset_contains(const void *s, const uint32_t *probes, uint32_t n)
{
    const bitset_t *b = s;
    uint64_t hits = 0;
    for (uint32_t i = 0; i < n; i++)
        hits += (b->w[probes[i] >> 6] >> (probes[i] & 63)) & 1;
    return hits;
}

static size_t bitset_bytes(const void *s) { return ((const bitset_t *)s)->n_words * 8; }

static const impl_t IMPLS[] = {
    {"roaring", roaring_build, roaring_destroy, roaring_op_card, roaring_op, roaring_count, roaring_contains,
     roaring_bytes},
    {"array", array_build, array_destroy, array_op_card, array_op, array_count, array_contains, array_bytes},
    {"bitset", bitset_build, bitset_destroy, bitset_op_card, bitset_op, bitset_count, bitset_contains,
     bitset_bytes},
};
#define N_IMPLS (sizeof IMPLS / sizeof IMPLS[0])

/* ---- measuring ---- */

typedef struct row {
    double build_sorted_ms, build_shuffled_ms;
    double card_ms[N_OPS], op_ms[N_OPS];
    double count_us, contains_ns;
    size_t bytes;
    uint64_t card[N_OPS], count, hits; /* results, compared across representations */
} row_t;

typedef struct ctx {
    const impl_t *im;
    const input_t *a_in, *b_in;
    const uint32_t *probes;
    uint32_t n_probes;
    uint32_t universe;
    void *a, *b;
} ctx_t;

/* Results of looped calls land here, so the loops cannot be dropped. */
static volatile uint64_t sink;

static double time_build(ctx_t *x, bool sorted, void **out_a, void **out_b)
{
    double t0 = now_s();
    *out_a = x->im->build(sorted ? x->a_in->sorted : x->a_in->shuffled, x->a_in->n, x->universe, sorted);
    double dt = now_s() - t0;
    *out_b = x->im->build(sorted ? x->b_in->sorted : x->b_in->shuffled, x->b_in->n, x->universe, sorted);
    return dt * 1e3;
}

/* Seconds per call of a short operation: looped to at least 1 ms. */
typedef uint64_t (*short_fn)(ctx_t *x, int arg);

static double time_short(ctx_t *x, short_fn fn, int arg)
{
    uint64_t loops = 0;
    double t0 = now_s(), dt;
    do {
        sink += fn(x, arg);
        loops++;
        dt = now_s() - t0;
    } while (dt < 1e-3);
    return dt / (double)loops;
}

static uint64_t do_card(ctx_t *x, int op) { return x->im->op_card(x->a, x->b, op); }
static uint64_t do_count(ctx_t *x, int unused) { return x->im->count(x->a); }

static double time_op(ctx_t *x, int op, uint64_t *card)
{
    double t0 = now_s();
    void *r = x->im->op(x->a, x->b, op);
    double dt = now_s() - t0;
    *card = x->im->count(r);
    x->im->destroy(r);
    return dt * 1e3;
}

static double time_contains(ctx_t *x, uint64_t *hits)
{
    double t0 = now_s();
    *hits = x->im->contains(x->a, x->probes, x->n_probes);
    return (now_s() - t0) * 1e9 / (double)x->n_probes;
}

/* One repetition of every measurement into sample column s. */
static void repetition(ctx_t *x, double samples[][16], int s, row_t *row)
{
    void *a, *b;
    samples[0][s] = time_build(x, false, &a, &b);
    x->im->destroy(a);
    x->im->destroy(b);
    samples[1][s] = time_build(x, true, &x->a, &x->b);
    for (int op = 0; op < N_OPS; op++) {
        samples[2 + op][s] = time_short(x, do_card, op) * 1e3;
        row->card[op] = x->im->op_card(x->a, x->b, op);
        uint64_t got;
        samples[5 + op][s] = time_op(x, op, &got);
        if (got != row->card[op]) {
            fprintf(stderr, "%s %s: materialised %llu, counted %llu\n", x->im->name, OP_NAME[op],
                    (unsigned long long)got, (unsigned long long)row->card[op]);
            exit(1);
        }
    }
    samples[8][s] = time_short(x, do_count, 0) * 1e6;
    row->count = x->im->count(x->a);
    samples[9][s] = time_contains(x, &row->hits);
    row->bytes = x->im->bytes(x->a);
    x->im->destroy(x->a);
    x->im->destroy(x->b);
}

static void measure(const cfg_t *c, ctx_t *x, row_t *row)
{
    static double samples[10][16];
    for (int s = 0; s < c->reps; s++)
        repetition(x, samples, s, row);
    row->build_shuffled_ms = median(samples[0], c->reps);
    row->build_sorted_ms = median(samples[1], c->reps);
    for (int op = 0; op < N_OPS; op++) {
        row->card_ms[op] = median(samples[2 + op], c->reps);
        row->op_ms[op] = median(samples[5 + op], c->reps);
    }
    row->count_us = median(samples[8], c->reps);
    row->contains_ns = median(samples[9], c->reps);
}

static int same_results(const row_t *x, const row_t *y)
{
    for (int op = 0; op < N_OPS; op++)
        if (x->card[op] != y->card[op])
            return 0;
    return x->count == y->count && x->hits == y->hits;
}

static void print_header(void)
{
    printf("| set | structure | build sorted ms | build shuffled ms | ∪ count ms | ∩ count ms | ∖ count ms "
           "| ∪ ms | ∩ ms | ∖ ms | count µs | contains ns | bytes | slowest op ms |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
}

static void print_row(const char *set, const char *name, const row_t *r)
{
    double slowest = 0;
    for (int op = 0; op < N_OPS; op++)
        if (r->op_ms[op] > slowest)
            slowest = r->op_ms[op];
    printf("| %s | %s | %.2f | %.2f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.2f | %.1f | %zu | %.3f |\n", set,
           name, r->build_sorted_ms, r->build_shuffled_ms, r->card_ms[0], r->card_ms[1], r->card_ms[2],
           r->op_ms[0], r->op_ms[1], r->op_ms[2], r->count_us, r->contains_ns, r->bytes, slowest);
}

/* Both sets and the probes of one distribution, every representation. */
static uint64_t run_distribution(const cfg_t *c, bool clustered, uint64_t *rng, char *summary,
                                 size_t summary_len)
{
    input_t a, b;
    make_input(&a, c, clustered, rng);
    make_input(&b, c, clustered, rng);
    uint32_t *probes = xmalloc((size_t)c->probes * 4);
    for (uint32_t i = 0; i < c->probes; i++)
        probes[i] = rng_below(rng, c->universe);
    const char *set = clustered ? "clustered" : "random";
    row_t rows[N_IMPLS];
    uint64_t sum = 0;
    for (size_t i = 0; i < N_IMPLS; i++) {
        ctx_t x = {.im = &IMPLS[i], .a_in = &a, .b_in = &b, .probes = probes, .n_probes = c->probes,
                   .universe = c->universe};
        memset(&rows[i], 0, sizeof rows[i]);
        measure(c, &x, &rows[i]);
        if (i && !same_results(&rows[0], &rows[i])) {
            fprintf(stderr, "%s: %s and %s disagree\n", set, IMPLS[0].name, IMPLS[i].name);
            exit(1);
        }
        print_row(set, IMPLS[i].name, &rows[i]);
        fflush(stdout);
    }
    for (int op = 0; op < N_OPS; op++)
        sum += rows[0].card[op];
    sum += rows[0].count + rows[0].hits;
    snprintf(summary, summary_len, "%s: |A| = %llu, |A∪B| = %llu, |A∩B| = %llu, |A∖B| = %llu, probe hits %llu\n", set,
            (unsigned long long)rows[0].count, (unsigned long long)rows[0].card[0],
            (unsigned long long)rows[0].card[1], (unsigned long long)rows[0].card[2],
            (unsigned long long)rows[0].hits);
    free(probes);
    free(a.sorted);
    free(a.shuffled);
    free(b.sorted);
    free(b.shuffled);
    return sum;
}

static int parse_args(int argc, char **argv, cfg_t *c)
{
    int opt;
    while ((opt = getopt(argc, argv, "u:n:r:p:s:h")) != -1) {
        switch (opt) {
        case 'u':
            c->universe = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'n':
            c->members = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'r':
            c->reps = atoi(optarg);
            break;
        case 'p':
            c->probes = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 's':
            c->seed = strtoull(optarg, NULL, 10);
            break;
        default:
            return -1;
        }
    }
    /* members <= universe / 2 so that A and B are not forced to be equal */
    return c->universe >= 2 && c->members >= 1 && c->members <= c->universe / 2 && c->reps >= 1 &&
                   c->reps <= 16 && c->probes >= 1
               ? 0
               : -1;
}

int main(int argc, char **argv)
{
    cfg_t c = {.universe = 10000000, .members = 1000000, .reps = 7, .probes = 1000000, .seed = 20261125};
    if (parse_args(argc, argv, &c)) {
        fprintf(stderr, "usage: %s [-u UNIVERSE] [-n MEMBERS] [-r REPS (1..16)] [-p PROBES] [-s SEED]\n",
                argv[0]);
        return 2;
    }
    /* Every allocation from one warm heap: page faults of fresh mmap'd
     * memory would otherwise be counted in whichever figure allocates
     * first, and glibc's adaptive threshold makes that order-dependent. */
    mallopt(M_MMAP_THRESHOLD, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    printf("segment_algebra: universe=%u members=%u (each of A, B) reps=%d probes=%u seed=%llu\n\n",
           c.universe, c.members, c.reps, c.probes, (unsigned long long)c.seed);
    print_header();
    uint64_t rng = c.seed, checksum = 0;
    char summary[2][200];
    checksum += run_distribution(&c, false, &rng, summary[0], sizeof summary[0]);
    checksum += run_distribution(&c, true, &rng, summary[1], sizeof summary[1]);
    printf("\n%s%s\nchecksum %llu\n", summary[0], summary[1], (unsigned long long)checksum);
    return 0;
}
