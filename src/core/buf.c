/* buf.c — growable byte buffer with a hard cap (see buf.h).
 * Invariant: len < cap whenever data != NULL (room for a terminating NUL). */
#include "core/buf.h"
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(buf *b, size_t limit)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->limit = limit;
}

static int buf_reserve(buf *b, size_t extra)
{
    if (extra > b->limit || b->len > b->limit - extra) return ERR_TOOBIG;
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return 0;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < need) ncap = ncap > ((size_t)-1) / 2 ? need : ncap * 2;
    char *p = realloc(b->data, ncap);
    if (!p) return ERR_NOMEM;
    b->data = p;
    b->cap = ncap;
    return 0;
}

int buf_append(buf *b, const void *p, size_t n)
{
    int rc = buf_reserve(b, n);
    if (rc) return rc;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

int buf_printf(buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return ERR_INVAL;
    int rc = buf_reserve(b, (size_t)n);
    if (rc) return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

const char *buf_cstr(buf *b)
{
    if (!b->data) return "";
    b->data[b->len] = 0;
    return b->data;
}

void buf_reset(buf *b)
{
    b->len = 0;
    if (b->data) b->data[0] = 0;
}

char *buf_steal(buf *b, size_t *len)
{
    char *p = b->data;
    if (len) *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void buf_free(buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
