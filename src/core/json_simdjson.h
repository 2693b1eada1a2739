/*
 * json_simdjson.h - internal: wm_json_parse's contract (tree in the arena,
 * unescaped NUL-terminated strings, is_int numbers), parsed by simdjson
 * through json_simdjson.cpp. Only in a `make SIMDJSON=1` build, which the
 * import-path measurement of docs/decisions.md used; no `lit` for
 * non-integer numbers, messages without byte offsets.
 */
#ifndef WAYMARK_CORE_JSON_SIMDJSON_H
#define WAYMARK_CORE_JSON_SIMDJSON_H

#include <stddef.h>

#include "waymark/arena.h"
#include "waymark/json.h"

int wm__json_parse_simdjson(wm_arena_t *a, const char *text, size_t len, wm_json_t **out,
                            wm_json_error_t *err);

#endif
