/*
 * serve.c - `waymark serve`: open the engine, start HTTP, run until SIGINT
 * or SIGTERM, then close cleanly (queued records are written, state synced).
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "waymark/engine.h"
#include "waymark/error.h"
#include "waymark/server.h"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig) { stop_flag = sig; }

static void serve_usage(FILE *f)
{
    fprintf(f, "usage: waymark serve [--listen HOST:PORT] [--data DIR] [--partitions N]\n"
               "                     [--fsync always|interval|never] [--fsync-interval-ms MS]\n"
               "                     [--admin-key KEY] [--test-clock] [--web DIR]\n"
               "defaults: --listen 127.0.0.1:8106 --data ./var --fsync always\n"
               "--web DIR: the built console (default: web/dist next to the build directory\n"
               "           of the binary, else ./web/dist; also WAYMARK_WEB_DIR)\n"
               "the admin key may also come from WAYMARK_ADMIN_KEY\n"
               "--test-clock lets POST /api/v1/clock move time forward (tests and demos only)\n");
}

int wm_cli_serve(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},   {"data", required_argument, NULL, 'd'},
        {"partitions", required_argument, NULL, 'p'}, {"fsync", required_argument, NULL, 'f'},
        {"fsync-interval-ms", required_argument, NULL, 'i'},
        {"admin-key", required_argument, NULL, 'k'}, {"help", no_argument, NULL, 'h'},
        {"test-clock", no_argument, NULL, 'T'}, {"web", required_argument, NULL, 'w'},
        {NULL, 0, NULL, 0}};
    const char *listen = "127.0.0.1:8106";
    wm_engine_opts_t eo = {.data_dir = "./var", .fsync_mode = WM_FSYNC_ALWAYS};
    eo.admin_key = getenv("WAYMARK_ADMIN_KEY");
    const char *web_dir = getenv("WAYMARK_WEB_DIR");
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "l:d:p:f:i:k:h", opts, NULL)) != -1) {
        switch (c) {
        case 'l': listen = optarg; break;
        case 'd': eo.data_dir = optarg; break;
        case 'p': eo.partitions = (uint32_t)atoi(optarg); break;
        case 'i': eo.fsync_interval_ms = (uint32_t)atoi(optarg); break;
        case 'k': eo.admin_key = optarg; break;
        case 'T': eo.test_clock = true; break;
        case 'w': web_dir = optarg; break;
        case 'f':
            if (wm_fsync_mode_parse(optarg, &eo.fsync_mode)) {
                fprintf(stderr, "waymark serve: --fsync must be always, interval or never\n");
                return 2;
            }
            break;
        case 'h': serve_usage(stdout); return 0;
        default: serve_usage(stderr); return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    wm_engine_t *engine;
    int rc = wm_engine_open(&eo, &engine);
    if (rc) {
        fprintf(stderr, "waymark serve: cannot open data directory %s: %s\n", eo.data_dir,
                wm_strerror(rc));
        return 1;
    }
    bool generated;
    const char *key_path;
    wm_engine_admin_key(engine, &generated, &key_path);
    if (generated)
        fprintf(stderr, "waymark: generated an admin API key; it is in %s (mode 0600)\n", key_path);
    else if (!eo.admin_key)
        fprintf(stderr, "waymark: admin API key: %s\n", key_path);
    wm_server_opts_t so = {.listen = listen, .engine = engine, .web_dir = web_dir};
    wm_server_t *server;
    if ((rc = wm_server_start(&so, &server))) {
        wm_engine_close(engine);
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    fprintf(stderr, "waymark: listening on http://%.*s:%u (data %s, %u partitions, fsync %s)\n",
            (int)(strrchr(listen, ':') - listen), listen, wm_server_port(server), eo.data_dir,
            wm_engine_partition_count(engine), wm_fsync_mode_name(eo.fsync_mode));
    bool built;
    const char *console = wm_server_web_dir(server, &built);
    if (built)
        fprintf(stderr, "waymark: console from %s\n", console);
    else
        fprintf(stderr, "waymark: console not built (no %s/index.html): run make web\n", console);
    while (!stop_flag)
        pause();
    fprintf(stderr, "waymark: shutting down\n");
    wm_server_stop(server);
    wm_engine_close(engine);
    return 0;
}
