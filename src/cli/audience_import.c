/*
 * audience_import.c - `waymark tag import` and `waymark segment import`:
 * values of an imported tag, or the members of a static list, from a CSV
 * or NDJSON file, into a data directory (offline, the server stopped) or
 * through a running server's API.
 *
 *   waymark tag import --tag vip_level [--id-type login_id] [--format csv|ndjson]
 *                      [--project P] (--data DIR | --url URL [--key KEY]) FILE
 *   waymark segment import --segment branch_list ... FILE
 *
 * CSV: a header line, the first column the customer id, for tags a "value"
 * column. NDJSON: {"id": ..., "value": ...} (tags) or {"id": ...[, "member":
 * false]} (lists). Every rejected line is printed as FILE:LINE: field:
 * message; the exit status is 0 when every line was imported, 1 when some
 * were rejected, 2 on bad usage or when nothing could be imported.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "waymark/alloc.h"
#include "waymark/arena.h"
#include "waymark/buf.h"
#include "waymark/engine.h"
#include "waymark/error.h"
#include "waymark/json.h"

#define IMPORT_FILE_MAX (256u << 20)

typedef struct import_args {
    const char *kind;       /* "tag" | "segment" */
    const char *key;
    const char *id_type;
    const char *format;
    const char *project;
    const char *data;
    const char *url;
    const char *api_key;
    const char *file;
} import_args_t;

static int usage(const char *kind)
{
    fprintf(stderr,
            "usage: waymark %s import --%s KEY [--id-type login_id] [--format csv|ndjson]\n"
            "                          [--project P] (--data DIR | --url URL [--key API_KEY]) FILE\n",
            kind, kind);
    return 2;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    wm_buf_t b;
    wm_buf_init(&b, IMPORT_FILE_MAX);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        wm_buf_append(&b, chunk, n);
    fclose(f);
    if (b.err) {
        wm_buf_release(&b);
        return NULL;
    }
    wm_buf_putc(&b, 0);
    *len = b.len ? b.len - 1 : 0;
    return wm_buf_steal(&b, NULL);
}

static size_t collect(char *p, size_t sz, size_t n, void *ctx)
{
    wm_buf_append(ctx, p, sz * n);
    return sz * n;
}

static int post_api(const import_args_t *a, const char *body, size_t len, wm_buf_t *out)
{
    CURL *c = curl_easy_init();
    if (!c)
        return WM_ENOMEM;
    char *e_key = curl_easy_escape(c, a->key, 0), *e_proj = curl_easy_escape(c, a->project, 0);
    char url[2048], auth[300];
    snprintf(url, sizeof url, "%s/api/v1/%ss/%s/import?project=%s&format=%s%s%s", a->url, a->kind, e_key, e_proj,
             a->format, a->id_type ? "&id_type=" : "", a->id_type ? a->id_type : "");
    curl_free(e_key);
    curl_free(e_proj);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", a->api_key ? a->api_key : "");
    struct curl_slist *h = curl_slist_append(NULL, auth);
    h = curl_slist_append(h, !strcmp(a->format, "csv") ? "Content-Type: text/csv" : "Content-Type: application/x-ndjson");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (cc != CURLE_OK) {
        fprintf(stderr, "waymark: %s: %s\n", a->url, curl_easy_strerror(cc));
        return WM_EIO;
    }
    if (status != 200) {
        fprintf(stderr, "waymark: the server answered %ld: %.*s\n", status, (int)out->len, out->data ? out->data : "");
        return WM_EINVAL;
    }
    return 0;
}

/* Prints the summary and every rejected line; returns the exit status. */
static int report(const import_args_t *a, const wm_buf_t *res)
{
    wm_arena_t ar;
    wm_arena_init(&ar, 64 * 1024);
    wm_json_t *o;
    wm_json_error_t je;
    char *copy = wm_arena_strndup(&ar, res->data ? res->data : "", res->len);
    int status = 2;
    if (copy && wm_json_parse(&ar, copy, res->len, &o, &je) == 0) {
        const wm_json_t *lines = wm_json_get(o, "lines"), *imp = wm_json_get(o, "imported"),
                        *rej = wm_json_get(o, "rejected");
        const wm_json_t *errs = wm_json_get(o, "errors");
        for (const wm_json_t *e = errs && errs->type == WM_JSON_ARRAY ? errs->u.child : NULL; e; e = e->next) {
            const wm_json_t *ln = wm_json_get(e, "line");
            fprintf(stderr, "%s:%lld: %s: %s\n", a->file, ln && ln->is_int ? (long long)ln->i64 : 0LL,
                    wm_json_str(wm_json_get(e, "field")) ? wm_json_str(wm_json_get(e, "field")) : "",
                    wm_json_str(wm_json_get(e, "message")) ? wm_json_str(wm_json_get(e, "message")) : "");
        }
        long long nl = lines && lines->is_int ? lines->i64 : 0, ni = imp && imp->is_int ? imp->i64 : 0,
                  nr = rej && rej->is_int ? rej->i64 : 0;
        printf("%s %s: %lld lines, %lld imported, %lld rejected\n", a->kind, a->key, nl, ni, nr);
        status = nr ? (ni ? 1 : 2) : 0;
    }
    wm_arena_release(&ar);
    return status;
}

int wm_cli_aud_import(const char *kind, int argc, char **argv)
{
    import_args_t a = {.kind = kind, .project = "default"};
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if ((!strcmp(argv[i], "--tag") || !strcmp(argv[i], "--segment")) && v)
            a.key = v, i++;
        else if (!strcmp(argv[i], "--id-type") && v)
            a.id_type = v, i++;
        else if (!strcmp(argv[i], "--format") && v)
            a.format = v, i++;
        else if (!strcmp(argv[i], "--project") && v)
            a.project = v, i++;
        else if (!strcmp(argv[i], "--data") && v)
            a.data = v, i++;
        else if (!strcmp(argv[i], "--url") && v)
            a.url = v, i++;
        else if (!strcmp(argv[i], "--key") && v)
            a.api_key = v, i++;
        else if (argv[i][0] != '-' && !a.file)
            a.file = argv[i];
        else
            return usage(kind);
    }
    if (!a.key || !a.file || !!a.data == !!a.url)
        return usage(kind);
    if (!a.format) {
        size_t n = strlen(a.file);
        a.format = n > 4 && !strcmp(a.file + n - 4, ".csv") ? "csv" : "ndjson";
    }
    if (strcmp(a.format, "csv") && strcmp(a.format, "ndjson"))
        return usage(kind);
    size_t len = 0;
    char *body = read_file(a.file, &len);
    if (!body) {
        fprintf(stderr, "waymark: cannot read %s (or larger than 256 MiB)\n", a.file);
        return 2;
    }
    wm_buf_t res;
    wm_buf_init(&res, 0);
    int rc;
    if (a.url) {
        rc = post_api(&a, body, len, &res);
    } else {
        wm_engine_opts_t o = {.data_dir = a.data, .fsync_mode = WM_FSYNC_ALWAYS, .no_compactor = true};
        wm_engine_t *e = NULL;
        rc = wm_engine_open(&o, &e);
        if (!rc) {
            rc = wm_engine_aud_import(e, a.project, kind, a.key, a.id_type, a.format, body, len, &res);
            if (!rc)
                wm_engine_wait_applied(e, 60000);
            wm_engine_close(e);
        }
        if (rc == WM_ENOTFOUND)
            fprintf(stderr, "waymark: no published %s '%s' in project %s\n", kind, a.key, a.project);
        else if (rc == WM_ESTATE)
            fprintf(stderr, "waymark: %s '%s' takes no uploads (a computed tag, or not a static list)\n", kind,
                    a.key);
        else if (rc)
            fprintf(stderr, "waymark: %s: %s\n", a.data, wm_strerror(rc));
    }
    wm_free(body);
    int status = rc ? 2 : report(&a, &res);
    wm_buf_release(&res);
    return status;
}
