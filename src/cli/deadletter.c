/*
 * deadletter.c - `waymark deadletter list|replay`: inspect the records that
 * were rejected, and re-submit them once the cause is fixed (a schema type
 * corrected, a project created, a token set). Works on a data directory
 * offline; a running server offers the same through /api/v1/deadletter.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "waymark/engine.h"
#include "waymark/error.h"

static void dl_usage(FILE *f)
{
    fprintf(f, "usage: waymark deadletter list   [--data DIR] [--project P] [--limit N]\n"
               "       waymark deadletter replay [--data DIR] [--project P] [--id N]\n");
}

int wm_cli_deadletter(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "list") && strcmp(argv[1], "replay"))) {
        dl_usage(stderr);
        return 2;
    }
    bool replay = strcmp(argv[1], "replay") == 0;
    static const struct option opts[] = {{"data", required_argument, NULL, 'd'},
                                         {"project", required_argument, NULL, 'p'},
                                         {"limit", required_argument, NULL, 'l'},
                                         {"id", required_argument, NULL, 'i'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *dir = "./var", *project = "default";
    uint32_t limit = 100;
    long long id = 0;
    int c;
    optind = 2;
    while ((c = getopt_long(argc, argv, "d:p:l:i:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'p': project = optarg; break;
        case 'l': limit = (uint32_t)atoi(optarg); break;
        case 'i': id = atoll(optarg); break;
        case 'h': dl_usage(stdout); return 0;
        default: dl_usage(stderr); return 2;
        }
    }
    wm_engine_opts_t eo = {.data_dir = dir, .fsync_mode = WM_FSYNC_ALWAYS, .no_compactor = true,
                           .admin_key = getenv("WAYMARK_ADMIN_KEY")};
    wm_engine_t *e;
    int rc = wm_engine_open(&eo, &e);
    if (rc) {
        fprintf(stderr, "waymark deadletter: cannot open %s: %s\n", dir, wm_strerror(rc));
        return 1;
    }
    if (replay) {
        wm_submit_result_t res;
        rc = wm_engine_deadletter_replay(e, project, id, &res);
        if (!rc)
            rc = wm_engine_wait_applied(e, 60000);
        printf("replayed: %u accepted, %u duplicates, %u still rejected\n", res.accepted,
               res.duplicates, res.rejected);
    } else {
        wm_buf_t b;
        wm_buf_init(&b, 0);
        rc = wm_engine_deadletter_json(e, project, limit, &b);
        if (!rc)
            printf("%s\n", b.data);
        wm_buf_release(&b);
    }
    wm_engine_close(e);
    if (rc)
        fprintf(stderr, "waymark deadletter: %s\n", wm_strerror(rc));
    return rc ? 1 : 0;
}
