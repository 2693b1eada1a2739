/*
 * audience.c - `waymark tag validate FILE...` and `waymark segment validate
 * FILE...`
 *
 * Checks tag and segment definitions (docs/tags.md, docs/segments.md) with
 * the compiler the server uses, so a file that passes here is accepted
 * there. A file holds one definition object or a list of them. Output is
 * "FILE: ok" for a file without problems, else one grep-able line per
 * problem, "FILE: $.path: message" ("$[2].path" for the third definition of
 * a list); the exit status is 1 when any file has a problem, 2 on bad usage.
 *
 * References to other tags and segments are not checked here: they are
 * resolved against the catalog when definitions are published.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "waymark/alloc.h"
#include "waymark/audience.h"
#include "waymark/error.h"
#include "waymark/limits.h"

#define ERRS_SHOWN 200
#define FILE_BYTES_MAX (4u << 20)
#define DEFS_PER_FILE_MAX 10000

/* What differs between tags and segments. */
typedef struct kind_ops {
    const char *noun;           /* "tag" */
    const char *doc;            /* "docs/tags.md" */
    int (*compile)(const wm_json_t *def, wm_aud_error_t *errs, uint32_t max_errs, uint32_t *n_errs);
} kind_ops_t;

static int compile_tag(const wm_json_t *def, wm_aud_error_t *errs, uint32_t max_errs, uint32_t *n_errs)
{
    wm_tag_def_t *t = NULL;
    int rc = wm_tag_compile(def, &t, errs, max_errs, n_errs);
    wm_tag_free(t);
    return rc;
}

static int compile_segment(const wm_json_t *def, wm_aud_error_t *errs, uint32_t max_errs, uint32_t *n_errs)
{
    wm_segment_def_t *s = NULL;
    int rc = wm_segment_compile(def, &s, errs, max_errs, n_errs);
    wm_segment_free(s);
    return rc;
}

static const kind_ops_t TAG_OPS = {"tag", "docs/tags.md", compile_tag};
static const kind_ops_t SEGMENT_OPS = {"segment", "docs/segments.md", compile_segment};

static void usage(FILE *f, const kind_ops_t *ops)
{
    fprintf(f,
            "usage: waymark %s validate FILE...\n"
            "  checks %s definitions (%s); a FILE holds one definition or a list of them;\n"
            "  prints 'FILE: ok' or one 'FILE: $.path: message' line per problem; exit 1 if any\n",
            ops->noun, ops->noun, ops->doc);
}

/* Reads a whole file into a new buffer (free with wm_free). */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = wm_malloc(FILE_BYTES_MAX + 1);
    size_t n = buf ? fread(buf, 1, FILE_BYTES_MAX + 1, f) : 0;
    fclose(f);
    if (!buf || n > FILE_BYTES_MAX) {
        wm_free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* "$.a.b" of the definition at `index` of a list -> "$[index].a.b". */
static void print_error(const char *file, int index, const wm_aud_error_t *e)
{
    const char *rest = e->path[0] == '$' ? e->path + 1 : e->path;
    if (index < 0)
        printf("%s: $%s: %s\n", file, rest, e->msg);
    else
        printf("%s: $[%d]%s: %s\n", file, index, rest, e->msg);
}

/* Compiles one definition and prints its problems; returns how many. */
static uint32_t check_one(const kind_ops_t *ops, const char *file, int index, const wm_json_t *def,
                          wm_aud_error_t *errs)
{
    uint32_t n = 0;
    int rc = ops->compile(def, errs, ERRS_SHOWN, &n);
    if (rc == 0)
        return 0;
    if (rc != WM_EINVAL) {
        printf("%s: %s\n", file, wm_strerror(rc));
        return 1;
    }
    for (uint32_t k = 0; k < n && k < ERRS_SHOWN; k++)
        print_error(file, index, &errs[k]);
    if (n > ERRS_SHOWN)
        printf("%s: ... and %u more errors\n", file, n - ERRS_SHOWN);
    return n ? n : 1;
}

/* Two definitions of one list with the same key would replace each other. */
static uint32_t check_keys(const char *file, const wm_json_t *list)
{
    uint32_t bad = 0, i = 0;
    for (const wm_json_t *a = list->u.child; a; a = a->next, i++) {
        const char *key = wm_json_str(wm_json_get(a, "key"));
        uint32_t j = 0;
        for (const wm_json_t *b = list->u.child; key && b != a; b = b->next, j++) {
            const char *other = wm_json_str(wm_json_get(b, "key"));
            if (other && strcmp(other, key) == 0) {
                printf("%s: $[%u].key: duplicate key '%s' (also $[%u])\n", file, i, key, j);
                bad++;
                break;
            }
        }
    }
    return bad;
}

static int validate_file(const kind_ops_t *ops, const char *file)
{
    size_t len = 0;
    char *text = slurp(file, &len);
    if (!text) {
        printf("%s: cannot read (missing, unreadable or over %u bytes)\n", file, FILE_BYTES_MAX);
        return 1;
    }
    wm_arena_t a;
    wm_arena_init(&a, 1 << 16);
    wm_json_t *doc = NULL;
    wm_json_error_t je;
    memset(&je, 0, sizeof je);
    wm_aud_error_t *errs = wm_calloc(ERRS_SHOWN, sizeof *errs);
    uint32_t bad = 0;
    int rc = errs ? wm_json_parse(&a, text, len, &doc, &je) : WM_ENOMEM;
    if (rc == WM_ENOMEM) {
        printf("%s: %s\n", file, wm_strerror(rc));
        bad = 1;
    } else if (rc == WM_ELIMIT) {
        printf("%s: $: JSON nested deeper than %d levels (at byte %zu)\n", file, WM_JSON_DEPTH_MAX, je.offset);
        bad = 1;
    } else if (rc != 0) {
        printf("%s: $: invalid JSON: %s\n", file, je.msg);
        bad = 1;
    } else if (doc->type != WM_JSON_ARRAY) {
        bad = check_one(ops, file, -1, doc, errs);
    } else if (doc->len == 0 || doc->len > DEFS_PER_FILE_MAX) {
        printf("%s: $: must be one %s definition or a list of 1 to %d\n", file, ops->noun, DEFS_PER_FILE_MAX);
        bad = 1;
    } else {
        int i = 0;
        for (const wm_json_t *def = doc->u.child; def; def = def->next, i++)
            bad += check_one(ops, file, i, def, errs);
        bad += check_keys(file, doc);
    }
    if (!bad)
        printf("%s: ok\n", file);
    wm_free(errs);
    wm_arena_release(&a);
    wm_free(text);
    return bad ? 1 : 0;
}

static int run(const kind_ops_t *ops, int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout, ops);
        return 0;
    }
    if (argc < 3 || strcmp(argv[1], "validate") != 0) {
        usage(stderr, ops);
        return 2;
    }
    int status = 0;
    for (int i = 2; i < argc; i++)
        status |= validate_file(ops, argv[i]);
    return status;
}

int wm_cli_tag(int argc, char **argv) { return run(&TAG_OPS, argc, argv); }

int wm_cli_segment(int argc, char **argv) { return run(&SEGMENT_OPS, argc, argv); }
