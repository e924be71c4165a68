/* err.c — formatting of caller-owned error messages (see err.h). */
#include "core/err.h"

#include <stdarg.h>

int err_set(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

const char *err_name(int code)
{
    switch (code) {
    case ERR_OK: return "ok";
    case ERR_INVAL: return "invalid";
    case ERR_NOMEM: return "out of memory";
    case ERR_IO: return "i/o error";
    case ERR_TOOBIG: return "too big";
    case ERR_CANCEL: return "cancelled";
    case ERR_NOTFOUND: return "not found";
    case ERR_BUSY: return "busy";
    case ERR_FORMAT: return "bad format";
    case ERR_INTERNAL: return "internal error";
    case ERR_DENIED: return "access denied";
    default: return "unknown error";
    }
}
