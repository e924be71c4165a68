/* err.h — the error convention shared by every module.
 *
 * Functions that can fail return 0 on success or a negative ERR_* code, and write a
 * human-readable reason into a caller-owned buffer (char *err, size_t errlen). Nothing
 * deep inside prints; the caller decides whether to log, return it to a client, or
 * both. There is no global error string: we are multithreaded.
 */
#ifndef CORE_ERR_H
#define CORE_ERR_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

enum {
    ERR_OK = 0,
    ERR_INVAL = -1,    /* bad input from the outside world (client, file, flag) */
    ERR_NOMEM = -2,    /* allocation failed */
    ERR_IO = -3,       /* read/write/network failure */
    ERR_TOOBIG = -4,   /* a hard cap was hit */
    ERR_CANCEL = -5,   /* the caller asked us to stop */
    ERR_NOTFOUND = -6, /* a named thing (voice, model, tensor, file) does not exist */
    ERR_BUSY = -7,     /* overloaded: try again later */
    ERR_FORMAT = -8,   /* malformed data (file or stream) */
    ERR_INTERNAL = -9, /* a bug */
    ERR_DENIED = -10,  /* access refused (HTTP 401/403): credentials missing or not accepted */
};

/* Writes a printf-formatted message into err (if err && errlen) and returns code.
 * Typical use: return err_set(err, errlen, ERR_INVAL, "speed %g out of range", s); */
int err_set(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Short static name of a code ("invalid", "no memory", ...). */
const char *err_name(int code);

/* Programmer-error assertion, on in every build: prints file:line and aborts. */
#define CORE_ASSERT(c)                                                              \
    do {                                                                            \
        if (!(c)) {                                                                 \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #c); \
            abort();                                                                \
        }                                                                           \
    } while (0)

#endif
