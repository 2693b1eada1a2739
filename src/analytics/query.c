/*
 * query.c - wm_query_run: the analytics queries of docs/analytics.md.
 */
#include <stdio.h>
#include <string.h>

#include "analytics/an_internal.h"
#include "waymark/error.h"

int wm_query_run(const wm_query_src_t *src, const char *kind, const wm_json_t *req, wm_buf_t *out,
                 wm_query_error_t *err)
{
    (void)src;
    (void)req;
    (void)out;
    snprintf(err->path, sizeof err->path, "kind");
    snprintf(err->msg, sizeof err->msg, "query kind \"%s\" is not available yet", kind ? kind : "");
    return WM_EINVAL;
}
