/*
 * static.c - the web console's built files (web/dist) at `/`.
 *
 * GET and HEAD on any path the API, ingest and health routes do not take
 * come here. A path that names a file of the directory answers it, with the
 * Content-Type of its extension, an ETag and Last-Modified (If-None-Match
 * and If-Modified-Since answer 304), and a Cache-Control that depends on what
 * the file is: Vite's hashed bundles under /assets/ never change under their
 * name (a year, immutable), everything else is revalidated on each load
 * (no-cache) so a new build is picked up at once. A path that names no file
 * is a route of the single-page app and answers index.html (the SPA
 * fallback), except under /assets/, where a missing file is a 404 rather
 * than HTML a script tag would choke on.
 *
 * Path safety: the path is percent-decoded once, and refused (400) when a
 * segment is "." or "..", when it holds a backslash, a NUL or a control
 * byte, or is over the length limit; the file found is then resolved with
 * realpath() and must still lie inside the directory, so a symbolic link
 * cannot lead out either.
 *
 * When the directory does not exist (the console was not built), every
 * console path answers a short page saying how to build it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "http_internal.h"
#include "waymark/alloc.h"
#include "waymark/error.h"
#include "waymark/limits.h"

struct wm_static {
    char *dir;          /* realpath of the directory, or the path as given when missing */
    size_t dir_len;
    bool present;       /* the directory exists and holds index.html */
};

static const struct {
    const char *ext;
    const char *type;
} CONTENT_TYPES[] = {
    {"html", "text/html; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"json", "application/json; charset=utf-8"},
    {"map", "application/json; charset=utf-8"},
    {"webmanifest", "application/manifest+json"},
    {"txt", "text/plain; charset=utf-8"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"ico", "image/x-icon"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"wasm", "application/wasm"},
};

static const char NOT_BUILT_PAGE[] =
    "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">"
    "<title>Waymark</title></head><body style=\"font-family:sans-serif;margin:3em\">"
    "<h1>控制台尚未构建 / The console is not built</h1>"
    "<p>waymark serve did not find the built console in <code>%s</code>.</p>"
    "<p>Build it with <code>make web</code> (it runs <code>npm ci</code> and "
    "<code>vite build</code> into <code>web/dist</code>), or point the server at a "
    "built copy with <code>waymark serve --web DIR</code>.</p>"
    "<p>The API is served as usual under <code>/api/v1/</code>.</p></body></html>";

const char *wm__static_content_type(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    if (dot) {
        for (size_t i = 0; i < sizeof CONTENT_TYPES / sizeof CONTENT_TYPES[0]; i++)
            if (strcasecmp(dot + 1, CONTENT_TYPES[i].ext) == 0)
                return CONTENT_TYPES[i].type;
    }
    return "application/octet-stream";
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes path into out and checks every segment; 0 or WM_EINVAL. */
int wm__static_clean_path(const char *path, char *out, size_t out_len)
{
    size_t n = 0;
    for (const char *p = path; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '?' || c == '#')
            break;
        if (c == '%') {
            int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);
            if (lo < 0)
                return WM_EINVAL;
            c = (unsigned char)(hi * 16 + lo);
            p += 2;
        }
        if (c < 0x20 || c == 0x7f || c == '\\')
            return WM_EINVAL;
        if (n + 1 >= out_len)
            return WM_EINVAL;
        out[n++] = (char)c;
    }
    out[n] = '\0';
    if (out[0] != '/')
        return WM_EINVAL;
    /* every segment between slashes: "." and ".." are refused */
    for (const char *s = out + 1;;) {
        size_t len = strcspn(s, "/");
        if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
            return WM_EINVAL;
        if (!s[len])
            break;
        s += len + 1;
    }
    return 0;
}

static bool has_index(const char *dir)
{
    char p[PATH_MAX];
    struct stat st;
    return snprintf(p, sizeof p, "%s/index.html", dir) < (int)sizeof p && stat(p, &st) == 0 &&
           S_ISREG(st.st_mode);
}

/* The default directory: web/dist next to the binary's build directory
 * (build/waymark -> web/dist), else ./web/dist. */
static void default_dir(char *out, size_t len)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            if (snprintf(out, len, "%s/../web/dist", exe) < (int)len && has_index(out))
                return;
        }
    }
    snprintf(out, len, "web/dist");
}

int wm__static_open(const char *dir, wm_static_t **out)
{
    char given[PATH_MAX];
    if (dir && *dir)
        snprintf(given, sizeof given, "%s", dir);
    else
        default_dir(given, sizeof given);
    wm_static_t *st = wm_calloc(1, sizeof *st);
    if (!st)
        return WM_ENOMEM;
    char real[PATH_MAX];
    st->present = realpath(given, real) != NULL && has_index(real);
    st->dir = wm_strdup(st->present ? real : given);
    if (!st->dir) {
        wm_free(st);
        return WM_ENOMEM;
    }
    st->dir_len = strlen(st->dir);
    *out = st;
    return 0;
}

void wm__static_close(wm_static_t *st)
{
    if (!st)
        return;
    wm_free(st->dir);
    wm_free(st);
}

const char *wm__static_dir(const wm_static_t *st, bool *present)
{
    if (present)
        *present = st->present;
    return st->dir;
}

static void http_date(time_t t, char *out, size_t len)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, len, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static bool not_modified(wm_req_t *r, const char *etag, time_t mtime)
{
    const char *inm = wm__http_header(r, "If-None-Match");
    if (inm)
        return strstr(inm, etag) != NULL || strcmp(inm, "*") == 0;
    const char *ims = wm__http_header(r, "If-Modified-Since");
    if (ims) {
        struct tm tm = {0};
        const char *end = strptime(ims, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        return end && timegm(&tm) >= mtime;
    }
    return false;
}

static int send_not_built(wm_req_t *r, const wm_static_t *st)
{
    char page[sizeof NOT_BUILT_PAGE + PATH_MAX];
    int n = snprintf(page, sizeof page, NOT_BUILT_PAGE, st->dir);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer((size_t)n, page, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "text/html; charset=utf-8");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    int rc = MHD_queue_response(r->conn, 404, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* Answers the regular file at real (inside the directory); takes fd. */
static int send_file(wm_req_t *r, int fd, const struct stat *sb, const char *real, bool immutable)
{
    char etag[64], modified[64];
    snprintf(etag, sizeof etag, "\"%llx-%llx\"", (unsigned long long)sb->st_size,
             (unsigned long long)sb->st_mtim.tv_sec * 1000000000ull +
                 (unsigned long long)sb->st_mtim.tv_nsec);
    http_date(sb->st_mtime, modified, sizeof modified);
    bool fresh = not_modified(r, etag, sb->st_mtime);
    struct MHD_Response *resp;
    if (fresh) {
        close(fd);
        resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    } else {
        resp = MHD_create_response_from_fd((uint64_t)sb->st_size, fd);
        if (!resp)
            close(fd);
    }
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", wm__static_content_type(real));
    MHD_add_response_header(resp, "Cache-Control",
                            immutable ? "public, max-age=31536000, immutable" : "no-cache");
    MHD_add_response_header(resp, "ETag", etag);
    MHD_add_response_header(resp, "Last-Modified", modified);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    int rc = MHD_queue_response(r->conn, fresh ? 304 : 200, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* Opens path (relative to the directory) when it is a regular file that
 * resolves inside the directory: the fd, or -1. */
static int open_inside(const wm_static_t *st, const char *rel, struct stat *sb, char *real,
                       size_t real_len)
{
    char full[PATH_MAX];
    if (snprintf(full, sizeof full, "%s%s", st->dir, rel) >= (int)sizeof full)
        return -1;
    char resolved[PATH_MAX];
    if (!realpath(full, resolved))
        return -1;
    if (strncmp(resolved, st->dir, st->dir_len) != 0 || resolved[st->dir_len] != '/')
        return -1;
    int fd = open(resolved, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (fstat(fd, sb) != 0 || !S_ISREG(sb->st_mode)) {
        close(fd);
        return -1;
    }
    snprintf(real, real_len, "%s", resolved);
    return fd;
}

int wm__static_serve(wm_req_t *r, const wm_static_t *st)
{
    char rel[WM_STATIC_PATH_MAX];
    if (wm__static_clean_path(r->path, rel, sizeof rel))
        return wm__http_error(r, 400, "bad_path", "", "the path is not allowed");
    if (!st || !st->present)
        return send_not_built(r, st);
    bool assets = strncmp(rel, "/assets/", 8) == 0;
    struct stat sb;
    char real[PATH_MAX];
    int fd = -1;
    size_t n = strlen(rel);
    if (n > 1 && rel[n - 1] != '/')
        fd = open_inside(st, rel, &sb, real, sizeof real);
    if (fd >= 0)
        return send_file(r, fd, &sb, real, assets);
    if (assets)
        return wm__http_error(r, 404, "not_found", "", "no such file");
    fd = open_inside(st, "/index.html", &sb, real, sizeof real);
    if (fd < 0)
        return send_not_built(r, st);
    return send_file(r, fd, &sb, real, false);
}
