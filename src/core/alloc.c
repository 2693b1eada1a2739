/* alloc.c - allocation wrappers with an out-of-memory injection hook. */
#include "waymark/alloc.h"

#include <stdlib.h>
#include <string.h>

static long fail_after = -1;

void wm_alloc_fail_after(long n) { fail_after = n; }

static int should_fail(void)
{
    if (fail_after < 0)
        return 0;
    if (fail_after == 0)
        return 1;
    fail_after--;
    return 0;
}

void *wm_malloc(size_t n)
{
    if (should_fail())
        return NULL;
    return malloc(n ? n : 1);
}

void *wm_calloc(size_t count, size_t size)
{
    if (should_fail())
        return NULL;
    return calloc(count ? count : 1, size ? size : 1);
}

void *wm_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    return realloc(p, n ? n : 1);
}

void wm_free(void *p) { free(p); }

char *wm_strndup(const char *s, size_t n)
{
    char *d = wm_malloc(n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *wm_strdup(const char *s) { return wm_strndup(s, strlen(s)); }
