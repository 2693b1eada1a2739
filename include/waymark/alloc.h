/*
 * alloc.h - every heap allocation of Waymark goes through these wrappers, so
 * that tests can inject out-of-memory (wm_alloc_fail_after) and so that the
 * process has one place to count bytes.
 */
#ifndef WAYMARK_ALLOC_H
#define WAYMARK_ALLOC_H

#include <stddef.h>

void *wm_malloc(size_t n);
void *wm_calloc(size_t count, size_t size);
void *wm_realloc(void *p, size_t n);
void wm_free(void *p);
char *wm_strdup(const char *s);
char *wm_strndup(const char *s, size_t n);

/* Test hook: after `n` more successful allocations, every allocation fails.
 * Pass a negative value to disable. Not thread-safe; for single-threaded tests. */
void wm_alloc_fail_after(long n);

#endif
