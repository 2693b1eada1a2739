/*
 * query.c - `waymark query`, `waymark compact`, `waymark check`: analytics
 * from the command line (docs/analytics.md, "Running a query").
 *
 * A query runs offline on a data directory (the engine opened as `waymark
 * import --data` opens it, without the background compactor) or through a
 * running server's POST /api/v1/query/{kind} (--url). Either way the answer
 * is the same JSON, printed as is (--format json) or as its main rows
 * (--format table|csv, the server's own tabulation in server/table.c).
 */
#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "waymark/arena.h"
#include "waymark/buf.h"
#include "waymark/engine.h"
#include "waymark/error.h"
#include "waymark/json.h"
#include "waymark/limits.h"
#include "waymark/server.h"

#define DEFAULT_DATA "./var"
#define REQUEST_BYTES_MAX WM_HTTP_BODY_MAX

static void query_usage(FILE *f)
{
    fprintf(f,
            "usage: waymark query [KIND] FILE [--data DIR | --url URL [--key KEY]] [options]\n"
            "       waymark query export [FILE] [--data DIR | --url URL --key KEY] [--from DATE --to DATE]\n"
            "  KIND              events, funnel, retention, paths, attribution, distribution,\n"
            "                    interval, map, export (else the request's \"kind\")\n"
            "  FILE              the request JSON (docs/analytics.md); - reads stdin\n"
            "  --data DIR        run on a data directory (default ./var; not while a server has it)\n"
            "  --url URL         run on a server (POST URL/api/v1/query/KIND)\n"
            "  --key KEY         API key for --url (default $WAYMARK_API_KEY)\n"
            "  --format F        table (default), json (the answer as is) or csv (RFC 4180)\n"
            "  --project P       whose tags and segments customer clauses read (default: default)\n"
            "  --from, --to      export only: the local dates to export (inclusive)\n"
            "exit status: 0 answered, 2 bad request or usage, 1 anything else\n");
}

typedef struct query_opts {
    const char *kind;
    const char *file;
    const char *data_dir;
    const char *url;
    const char *key;
    const char *format;
    const char *project;
    const char *from, *to;
} query_opts_t;

static int read_all(const char *path, wm_buf_t *out)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f)
        return WM_ENOTFOUND;
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        wm_buf_append(out, tmp, n);
    int bad = ferror(f);
    if (f != stdin)
        fclose(f);
    return bad ? WM_EIO : out->err;
}

/* The request text: FILE (or {}), with export's --from / --to put in. The
 * kind comes from the command line, else from the request's "kind". */
static int build_request(const query_opts_t *o, wm_arena_t *a, wm_buf_t *req, const char **kind)
{
    wm_buf_t raw;
    wm_buf_init(&raw, REQUEST_BYTES_MAX);
    int rc = o->file ? read_all(o->file, &raw) : 0;
    if (rc) {
        fprintf(stderr, "waymark query: %s: %s\n", o->file, rc == WM_ENOTFOUND ? "cannot open" : wm_strerror(rc));
        wm_buf_release(&raw);
        return 2;
    }
    if (!o->file)
        wm_buf_puts(&raw, "{}");
    wm_json_t *root = NULL;
    wm_json_error_t je = {0};
    if (wm_json_parse(a, raw.data ? raw.data : "", raw.len, &root, &je) || root->type != WM_JSON_OBJECT) {
        fprintf(stderr, "waymark query: %s: the request is not a JSON object%s%s\n", o->file ? o->file : "-",
                je.msg[0] ? ": " : "", je.msg);
        wm_buf_release(&raw);
        return 2;
    }
    if (!*kind)
        *kind = wm_json_str(wm_json_get(root, "kind"));
    if (!*kind) {
        fprintf(stderr, "waymark query: kind: give KIND or a \"kind\" member in the request\n");
        wm_buf_release(&raw);
        return 2;
    }
    if (o->from || o->to) {
        /* members added last win (wm_json_get reads the last duplicate) */
        if (o->from)
            wm_json_append(a, root, "from", wm_json_new_str(a, o->from, strlen(o->from)));
        if (o->to)
            wm_json_append(a, root, "to", wm_json_new_str(a, o->to, strlen(o->to)));
        wm_json_write(req, root);
    } else {
        wm_buf_append(req, raw.data, raw.len);
    }
    wm_buf_release(&raw);
    return req->err ? 1 : 0;
}

/* Prints the answer in the format asked for; 0 or 1. */
static int print_answer(const char *kind, const char *format, const wm_buf_t *ans)
{
    if (!strcmp(kind, "export") || !strcmp(format, "json")) {
        fwrite(ans->data ? ans->data : "", 1, ans->len, stdout);
        if (ans->len && ans->data[ans->len - 1] != '\n')
            putchar('\n');
        return 0;
    }
    wm_arena_t a;
    wm_arena_init(&a, 1 << 16);
    wm_json_t *root;
    wm_json_error_t je;
    wm_buf_t out;
    wm_buf_init(&out, 0);
    int rc = wm_json_parse(&a, ans->data ? ans->data : "", ans->len, &root, &je);
    if (!rc)
        rc = wm_server_answer_table(&a, kind, root, !strcmp(format, "csv") ? WM_TABLE_CSV : WM_TABLE_TEXT, &out);
    if (!rc)
        fwrite(out.data ? out.data : "", 1, out.len, stdout);
    else
        fprintf(stderr, "waymark query: the answer cannot be shown as a table: %s\n", wm_strerror(rc));
    wm_buf_release(&out);
    wm_arena_release(&a);
    return rc ? 1 : 0;
}

static void print_error(const char *path, const char *msg)
{
    if (path && *path)
        fprintf(stderr, "waymark query: %s: %s\n", path, msg);
    else
        fprintf(stderr, "waymark query: %s\n", msg);
}

static int run_offline(const query_opts_t *o, const char *kind, const wm_buf_t *req)
{
    const char *dir = o->data_dir ? o->data_dir : DEFAULT_DATA;
    wm_engine_opts_t eo = {.data_dir = dir, .fsync_mode = WM_FSYNC_ALWAYS, .no_compactor = true, .no_timers = true,
                           .admin_key = getenv("WAYMARK_ADMIN_KEY")};
    wm_engine_t *e;
    int rc = wm_engine_open(&eo, &e);
    if (rc) {
        fprintf(stderr, "waymark query: cannot open %s: %s%s\n", dir, wm_strerror(rc),
                rc == WM_EBUSY ? " (a server has it: use --url)" : "");
        return 1;
    }
    wm_engine_wait_applied(e, 60000);
    wm_buf_t ans;
    wm_buf_init(&ans, 0);
    wm_engine_query_opts_t qo = {.project = o->project};
    wm_engine_query_error_t qe;
    rc = wm_engine_query(e, kind, req->data, req->len, &qo, NULL, &ans, &qe);
    int status = 0;
    if (rc) {
        print_error(qe.path, qe.msg[0] ? qe.msg : wm_strerror(rc));
        status = rc == WM_EINVAL ? 2 : 1;
    } else {
        status = print_answer(kind, o->format, &ans);
    }
    wm_buf_release(&ans);
    wm_engine_close(e);
    return status;
}

static size_t sink(char *p, size_t s, size_t n, void *ctx)
{
    wm_buf_append(ctx, p, s * n);
    return ((wm_buf_t *)ctx)->err ? 0 : s * n;
}

/* The server's error answer {"error":{"code","path"?,"message"}} printed the CLI's way. */
static void print_http_error(long status, const wm_buf_t *body)
{
    wm_arena_t a;
    wm_arena_init(&a, 4096);
    wm_json_t *root;
    wm_json_error_t je;
    const wm_json_t *err = NULL;
    if (body->len && wm_json_parse(&a, body->data, body->len, &root, &je) == 0)
        err = wm_json_get(root, "error");
    const char *msg = wm_json_str(wm_json_get(err, "message"));
    const char *path = wm_json_str(wm_json_get(err, "path"));
    if (msg) {
        print_error(path, msg);
    } else {
        char m[300];
        snprintf(m, sizeof m, "the server answered %ld: %.200s", status, body->data ? body->data : "");
        print_error("", m);
    }
    wm_arena_release(&a);
}

static int run_online(const query_opts_t *o, const char *kind, const wm_buf_t *req)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *curl = curl_easy_init();
    if (!curl)
        return 1;
    char *ekind = curl_easy_escape(curl, kind, 0);
    char *eproj = o->project ? curl_easy_escape(curl, o->project, 0) : NULL;
    char url[4096], auth[512];
    snprintf(url, sizeof url, "%s/api/v1/query/%s%s%s", o->url, ekind ? ekind : "", eproj ? "?project=" : "",
             eproj ? eproj : "");
    curl_free(ekind);
    curl_free(eproj);
    const char *key = o->key ? o->key : getenv("WAYMARK_API_KEY");
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key ? key : "");
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    hdr = curl_slist_append(hdr, auth);
    wm_buf_t body;
    wm_buf_init(&body, 0);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req->data ? req->data : "{}");
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(req->data ? req->len : 2));
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    CURLcode cc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    int rc;
    if (cc != CURLE_OK) {
        fprintf(stderr, "waymark query: %s: %s\n", o->url, curl_easy_strerror(cc));
        rc = 1;
    } else if (status == 200) {
        rc = print_answer(kind, o->format, &body);
    } else {
        print_http_error(status, &body);
        rc = status == 400 ? 2 : 1;
    }
    wm_buf_release(&body);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(curl);
    curl_global_cleanup();
    return rc;
}

int wm_cli_query(int argc, char **argv)
{
    static const struct option opts[] = {
        {"data", required_argument, NULL, 'd'},   {"url", required_argument, NULL, 'u'},
        {"key", required_argument, NULL, 'k'},    {"format", required_argument, NULL, 'f'},
        {"project", required_argument, NULL, 'p'}, {"from", required_argument, NULL, 1},
        {"to", required_argument, NULL, 2},       {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    query_opts_t o = {.format = "table"};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:u:k:f:p:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': o.data_dir = optarg; break;
        case 'u': o.url = optarg; break;
        case 'k': o.key = optarg; break;
        case 'f': o.format = optarg; break;
        case 'p': o.project = optarg; break;
        case 1: o.from = optarg; break;
        case 2: o.to = optarg; break;
        case 'h': query_usage(stdout); return 0;
        default: query_usage(stderr); return 2;
        }
    }
    int npos = argc - optind;
    if (npos == 2) {
        o.kind = argv[optind];
        o.file = argv[optind + 1];
    } else if (npos == 1 && !strcmp(argv[optind], "export")) {
        o.kind = "export";
    } else if (npos == 1) {
        o.file = argv[optind];
    } else {
        query_usage(stderr);
        return 2;
    }
    if (strcmp(o.format, "table") && strcmp(o.format, "json") && strcmp(o.format, "csv")) {
        fprintf(stderr, "waymark query: --format is table, json or csv\n");
        return 2;
    }
    if (o.url && o.data_dir) {
        fprintf(stderr, "waymark query: give --data or --url, not both\n");
        return 2;
    }
    if ((o.from || o.to) && (!o.kind || strcmp(o.kind, "export"))) {
        fprintf(stderr, "waymark query: --from and --to are for export (other kinds take them in the request)\n");
        return 2;
    }
    wm_arena_t a;
    wm_arena_init(&a, 1 << 16);
    wm_buf_t req;
    wm_buf_init(&req, REQUEST_BYTES_MAX);
    const char *kind = o.kind;
    int status = build_request(&o, &a, &req, &kind);
    if (!status)
        status = o.url ? run_online(&o, kind, &req) : run_offline(&o, kind, &req);
    wm_buf_release(&req);
    wm_arena_release(&a);
    return status;
}

/* ---- compact, check ---- */

/* --data DIR and --help, the options of compact and check: -1 to go on,
 * else the exit status. */
static int data_opts(int argc, char **argv, const char *usage, const char **dir)
{
    static const struct option opts[] = {{"data", required_argument, NULL, 'd'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    *dir = DEFAULT_DATA;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': *dir = optarg; break;
        case 'h': fprintf(stdout, "%s\n", usage); return 0;
        default: fprintf(stderr, "%s\n", usage); return 2;
        }
    }
    return -1;
}

int wm_cli_compact(int argc, char **argv)
{
    const char *dir;
    int st = data_opts(argc, argv, "usage: waymark compact [--data DIR]", &dir);
    if (st >= 0)
        return st;
    if (optind < argc) {
        fprintf(stderr, "usage: waymark compact [--data DIR]\n");
        return 2;
    }
    wm_engine_opts_t eo = {.data_dir = dir, .fsync_mode = WM_FSYNC_ALWAYS, .no_compactor = true, .no_timers = true,
                           .admin_key = getenv("WAYMARK_ADMIN_KEY")};
    wm_engine_t *e;
    int rc = wm_engine_open(&eo, &e);
    if (rc) {
        fprintf(stderr, "waymark compact: cannot open %s: %s%s\n", dir, wm_strerror(rc),
                rc == WM_EBUSY ? " (a server has it; it compacts by itself)" : "");
        return 1;
    }
    wm_engine_wait_applied(e, 60000);
    wm_buf_t report;
    wm_buf_init(&report, 0);
    rc = wm_engine_analytics_compact_all(e, &report);
    fwrite(report.data ? report.data : "", 1, report.len, stdout);
    wm_buf_release(&report);
    wm_engine_close(e);
    if (rc)
        fprintf(stderr, "waymark compact: %s\n", wm_strerror(rc));
    return rc ? 1 : 0;
}

int wm_cli_check(int argc, char **argv)
{
    const char *dir;
    int st = data_opts(argc, argv, "usage: waymark check [DIR]", &dir);
    if (st >= 0)
        return st;
    if (optind + 1 == argc)
        dir = argv[optind];
    else if (optind < argc) {
        fprintf(stderr, "usage: waymark check [DIR]\n");
        return 2;
    }
    wm_buf_t report;
    wm_buf_init(&report, 0);
    uint64_t faults = 0;
    int rc = wm_engine_analytics_check(dir, &report, &faults);
    fwrite(report.data ? report.data : "", 1, report.len, stdout);
    wm_buf_release(&report);
    if (rc) {
        fprintf(stderr, "waymark check: %s: %s\n", dir,
                rc == WM_ENOTFOUND ? "no analytics directory (not a data directory?)" : wm_strerror(rc));
        return 1;
    }
    if (faults) {
        printf("%llu fault%s\n", (unsigned long long)faults, faults == 1 ? "" : "s");
        return 1;
    }
    printf("ok\n");
    return 0;
}
