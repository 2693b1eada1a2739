/*
 * journey.c - `waymark journey validate [refs] FILE...`
 *
 * Lets an operator or a CI job check journey files before they are
 * published, with the same compiler the server uses, so "valid here" means
 * "accepted there". Output is one line per file when it is fine and one
 * line per problem when it is not, in a grep-able "FILE: node 'x' field
 * 'y': message" form; the exit status is 1 when any file has an error.
 *
 * References are checked only against the lists given: --channels and
 * --templates read examples/channels.json / templates.json style files,
 * --events an events.json ({"events":[{"name":...}]}); --journeys is a
 * comma-separated list of jump targets (the files given are added to it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "waymark/alloc.h"
#include "waymark/error.h"
#include "waymark/journey.h"

#define ERRS_SHOWN 200
#define FILES_MAX 256
#define FILE_BYTES_MAX (4u << 20)

static void usage(FILE *f)
{
    fprintf(f, "usage: waymark journey validate [--channels FILE] [--templates FILE] [--events FILE]\n"
               "                                [--journeys KEY,KEY...] FILE...\n"
               "  checks journey definitions (docs/journeys.md); exit 1 if any has an error\n");
}

/* Reads a whole file into a new NUL-terminated buffer (free with wm_free). */
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

/* Loads names from doc[member] of a JSON file into the arena. */
static int load_names(wm_arena_t *a, const char *path, const char *member, const char *const **names,
                      uint32_t *n)
{
    size_t len = 0;
    char *text = slurp(path, &len);
    if (!text) {
        fprintf(stderr, "waymark journey: cannot read %s\n", path);
        return -1;
    }
    /* the tree must outlive this call: parse into the caller's arena */
    char *kept = wm_arena_strndup(a, text, len);
    wm_free(text);
    wm_json_t *doc = NULL;
    wm_json_error_t je;
    if (!kept || wm_json_parse(a, kept, len, &doc, &je) != 0 ||
        wm_journey_names_collect(a, doc, member, names, n) != 0) {
        fprintf(stderr, "waymark journey: %s: not a JSON document with \"%s\"\n", path, member);
        return -1;
    }
    return 0;
}

/* Splits "a,b,c" into the arena. */
static int split_list(wm_arena_t *a, const char *s, const char ***out, uint32_t *n)
{
    uint32_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    const char **v = wm_arena_alloc(a, (cap + FILES_MAX) * sizeof *v);
    if (!v)
        return -1;
    uint32_t k = 0;
    while (*s) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len)
            v[k++] = wm_arena_strndup(a, s, len);
        s += len + (e != NULL);
    }
    *out = v;
    *n = k;
    return 0;
}

/* The "key" of each file given, so journeys may jump to one another. */
static void add_file_keys(wm_arena_t *a, char **files, int nfiles, const char **list, uint32_t *n)
{
    for (int i = 0; i < nfiles && i < FILES_MAX; i++) {
        size_t len = 0;
        char *text = slurp(files[i], &len);
        if (!text)
            continue;
        wm_json_t *doc = NULL;
        if (wm_json_parse(a, text, len, &doc, NULL) == 0) {
            const char *key = wm_json_str(wm_json_get(doc, "key"));
            if (key)
                list[(*n)++] = wm_arena_strndup(a, key, strlen(key));
        }
        wm_free(text);
    }
}

static int validate_file(const char *path, const wm_journey_refs_t *refs)
{
    size_t len = 0;
    char *text = slurp(path, &len);
    if (!text) {
        printf("%s: cannot read (missing, unreadable or over %u bytes)\n", path, FILE_BYTES_MAX);
        return 1;
    }
    wm_journey_error_t *errs = wm_calloc(ERRS_SHOWN, sizeof *errs);
    wm_journey_def_t *j = NULL;
    uint32_t n = 0;
    int rc = errs ? wm_journey_compile_text(text, len, refs, &j, errs, ERRS_SHOWN, &n) : WM_ENOMEM;
    wm_free(text);
    if (rc == 0)
        printf("%s: ok (%u nodes)\n", path, j->n_nodes);
    else if (rc != WM_EINVAL)
        printf("%s: %s\n", path, wm_strerror(rc));
    for (uint32_t k = 0; rc == WM_EINVAL && k < n && k < ERRS_SHOWN; k++) {
        const wm_journey_error_t *e = &errs[k];
        if (e->node[0])
            printf("%s: node '%s' field '%s': %s\n", path, e->node, e->field, e->msg);
        else if (e->field[0])
            printf("%s: field '%s': %s\n", path, e->field, e->msg);
        else
            printf("%s: %s\n", path, e->msg);
    }
    if (n > ERRS_SHOWN)
        printf("%s: ... and %u more errors\n", path, n - ERRS_SHOWN);
    wm_journey_free(j);
    wm_free(errs);
    return rc == 0 ? 0 : 1;
}

static int validate(int argc, char **argv)
{
    wm_arena_t a;
    wm_arena_init(&a, 1 << 16);
    wm_journey_refs_t refs = {0};
    const char **journeys = NULL;
    uint32_t n_journeys = 0;
    int i = 1, status = 0;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = -1;
        if (!val)
            rc = -1;
        else if (strcmp(opt, "--channels") == 0)
            rc = load_names(&a, val, "channels", &refs.channels, &refs.n_channels);
        else if (strcmp(opt, "--templates") == 0)
            rc = load_names(&a, val, "templates", &refs.templates, &refs.n_templates);
        else if (strcmp(opt, "--events") == 0)
            rc = load_names(&a, val, "events", &refs.events, &refs.n_events);
        else if (strcmp(opt, "--journeys") == 0)
            rc = split_list(&a, val, &journeys, &n_journeys);
        if (rc != 0) {
            usage(stderr);
            wm_arena_release(&a);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        wm_arena_release(&a);
        return 2;
    }
    if (journeys) {
        add_file_keys(&a, argv + i, argc - i, journeys, &n_journeys);
        refs.journeys = journeys;
        refs.n_journeys = n_journeys;
    }
    for (; i < argc; i++)
        status |= validate_file(argv[i], &refs);
    wm_arena_release(&a);
    return status;
}

int wm_cli_journey(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "validate") == 0)
        return validate(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    usage(stderr);
    return 2;
}
