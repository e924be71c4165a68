/* buf.h — a growable byte buffer with a hard cap.
 *
 * Every buffer that the outside world can fill has a cap, checked before growing
 * (curl's DYNBUF rule). Appending past the cap fails with ERR_TOOBIG and leaves the
 * buffer unchanged. The buffer always keeps one spare byte so data can be used as a
 * NUL-terminated string after buf_cstr().
 *
 * Ownership: the buf struct is caller-owned (stack or embedded); buf_free() releases
 * the heap block. buf_steal() hands the block to the caller, who frees it with free().
 */
#ifndef CORE_BUF_H
#define CORE_BUF_H

#include <stddef.h>

typedef struct buf {
    char *data;   /* heap block or NULL; data[len] == 0 after buf_cstr() */
    size_t len;   /* bytes used */
    size_t cap;   /* bytes allocated */
    size_t limit; /* hard cap on len */
} buf;

void buf_init(buf *b, size_t limit);
int buf_append(buf *b, const void *p, size_t n);     /* 0, ERR_TOOBIG, ERR_NOMEM */
int buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *buf_cstr(buf *b); /* NUL-terminates; returns "" for an empty buffer */
void buf_reset(buf *b);       /* len = 0, keeps memory */
char *buf_steal(buf *b, size_t *len); /* caller frees; buffer becomes empty */
void buf_free(buf *b);

#endif
