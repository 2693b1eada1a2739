/*
 * cli.h - the `waymark` subcommands. Each takes the argv that follows the
 * program name (argv[0] is the subcommand's own name), prints its own usage
 * on bad arguments, and returns the process exit status (0 ok, 1 runtime
 * failure, 2 usage error).
 */
#ifndef WAYMARK_CLI_H
#define WAYMARK_CLI_H

/* `waymark gen --users N --days D --seed S [-o FILE] [--start YYYY-MM-DD]
 * [--project NAME]`: writes deterministic Sensors NDJSON (see waymark/gen.h)
 * to FILE or stdout; a one-line summary goes to stderr. */
int wm_cli_gen(int argc, char **argv);

/* `waymark serve`: run the server. */
int wm_cli_serve(int argc, char **argv);
/* `waymark import`: NDJSON / CSV history into a data directory or a server. */
int wm_cli_import(int argc, char **argv);
/* `waymark deadletter list|replay`. */
int wm_cli_deadletter(int argc, char **argv);
/* `waymark journey validate [--channels F] [--templates F] [--events F]
 * [--journeys K,K] FILE...`: prints "FILE: ok (N nodes)" or one line per
 * error "FILE: node 'x' field 'y': message"; 1 if any file has an error. */
int wm_cli_journey(int argc, char **argv);
/* `waymark tag validate FILE...` / `waymark segment validate FILE...`: a FILE
 * holds one definition or a list; prints "FILE: ok" or one line per error
 * "FILE: $.path: message" ("$[i].path" in a list); 1 if any file has an error. */
int wm_cli_tag(int argc, char **argv);
int wm_cli_segment(int argc, char **argv);
/* `waymark tag import` / `waymark segment import` (kind "tag" / "segment"). */
int wm_cli_aud_import(const char *kind, int argc, char **argv);
/* `waymark query [KIND] FILE [--data DIR | --url URL [--key K]] [--format
 * table|json|csv]`: an analytics query (docs/analytics.md); 2 on a bad
 * request ("waymark query: PATH: MESSAGE"). `waymark query export` prints
 * NDJSON. */
int wm_cli_query(int argc, char **argv);
/* `waymark compact [--data DIR]`: every partition's whole log into parts,
 * merged to one part each; prints parts, rows, bytes per partition. */
int wm_cli_compact(int argc, char **argv);
/* `waymark check [DIR]`: verifies every analytics part; 1 on any fault. */
int wm_cli_check(int argc, char **argv);

#endif
