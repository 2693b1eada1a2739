/* error.c - wm_strerror/wm_errname generated from WM_ERRNO_MAP. */
#include "waymark/error.h"

const char *wm_strerror(int err)
{
    switch (err) {
    case WM_OK:
        return "ok";
#define WM__ERR_STR(name, num, msg) \
    case WM_E##name:                \
        return msg;
        WM_ERRNO_MAP(WM__ERR_STR)
#undef WM__ERR_STR
    }
    return "unknown error";
}

const char *wm_errname(int err)
{
    switch (err) {
    case WM_OK:
        return "OK";
#define WM__ERR_NAME(name, num, msg) \
    case WM_E##name:                 \
        return "E" #name;
        WM_ERRNO_MAP(WM__ERR_NAME)
#undef WM__ERR_NAME
    }
    return "EUNKNOWN";
}
