/*
 * error.h - the one error convention of Waymark.
 *
 * Every function that can fail returns 0 on success or a negative WM_E* code.
 * The codes come from one X-macro table so that wm_strerror() can never drift
 * from the enum.
 */
#ifndef WAYMARK_ERROR_H
#define WAYMARK_ERROR_H

#define WM_ERRNO_MAP(X)                                               \
    X(NOMEM, 1, "out of memory")                                     \
    X(INVAL, 2, "invalid argument")                                  \
    X(IO, 3, "i/o error")                                            \
    X(CORRUPT, 4, "data corrupt")                                    \
    X(NOTFOUND, 5, "not found")                                      \
    X(EXISTS, 6, "already exists")                                   \
    X(LIMIT, 7, "limit exceeded")                                    \
    X(PARSE, 8, "parse error")                                       \
    X(BUSY, 9, "busy, retry later")                                  \
    X(AUTH, 10, "unauthorized")                                      \
    X(FORBIDDEN, 11, "forbidden")                                    \
    X(TYPE, 12, "type mismatch")                                     \
    X(STATE, 13, "object is in an error state")                      \
    X(UNSUPPORTED, 14, "unsupported")                                \
    X(CLOSED, 15, "closed")                                          \
    X(DUPLICATE, 16, "duplicate")                                    \
    X(CONFLICT, 17, "conflict")

enum {
    WM_OK = 0,
#define WM__ERR_ENUM(name, num, msg) WM_E##name = -(num),
    WM_ERRNO_MAP(WM__ERR_ENUM)
#undef WM__ERR_ENUM
};

/* Returns a static, human readable string for an error code (never NULL). */
const char *wm_strerror(int err);
/* Returns the short symbolic name ("EINVAL") of an error code (never NULL). */
const char *wm_errname(int err);

#endif
