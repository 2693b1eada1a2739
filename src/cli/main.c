/*
 * main.c - `waymark` command dispatch.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define WM_VERSION "0.1.0"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: waymark <command> [options]\n"
            "\n"
            "commands:\n"
            "  serve        run the server (ingest, customer 360, management API)\n"
            "  import       load Sensors NDJSON or CSV history into a data directory or server\n"
            "  gen          write a realistic synthetic data set (NDJSON) for a seed\n"
            "  deadletter   list or replay rejected records (list|replay)\n"
            "  journey      validate journey definitions (journey validate FILE...)\n"
            "  tag          validate tag definitions (tag validate FILE...), import values\n"
            "               (tag import --tag KEY [--data DIR | --url URL] FILE)\n"
            "  segment      validate segment definitions (segment validate FILE...), import a\n"
            "               static list (segment import --segment KEY ... FILE)\n"
            "  query        run an analytics query ([KIND] FILE [--data DIR | --url URL]\n"
            "               [--format table|json|csv]; query export: every event as NDJSON)\n"
            "  compact      compact every partition's log into analytics parts (offline)\n"
            "  check        verify the analytics parts of a data directory (check [DIR])\n"
            "  version      print the version\n"
            "\n"
            "run 'waymark <command> --help' for a command's options\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "serve") == 0)
        return wm_cli_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "import") == 0)
        return wm_cli_import(argc - 1, argv + 1);
    if (strcmp(cmd, "gen") == 0)
        return wm_cli_gen(argc - 1, argv + 1);
    if (strcmp(cmd, "deadletter") == 0)
        return wm_cli_deadletter(argc - 1, argv + 1);
    if (strcmp(cmd, "journey") == 0)
        return wm_cli_journey(argc - 1, argv + 1);
    if ((strcmp(cmd, "tag") == 0 || strcmp(cmd, "segment") == 0) && argc > 2 && !strcmp(argv[2], "import"))
        return wm_cli_aud_import(cmd, argc - 2, argv + 2);
    if (strcmp(cmd, "tag") == 0)
        return wm_cli_tag(argc - 1, argv + 1);
    if (strcmp(cmd, "segment") == 0)
        return wm_cli_segment(argc - 1, argv + 1);
    if (strcmp(cmd, "query") == 0)
        return wm_cli_query(argc - 1, argv + 1);
    if (strcmp(cmd, "compact") == 0)
        return wm_cli_compact(argc - 1, argv + 1);
    if (strcmp(cmd, "check") == 0)
        return wm_cli_check(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("waymark %s\n", WM_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "waymark: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
