/* auth.c — see auth.h. Keys live in fixed, zero-padded slots so the compare can always
 * walk the same number of bytes. */
#include "server/auth.h"
#include "core/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SLOT (AUTH_MAX_KEY_LEN + 1)

struct auth_keys {
    size_t n;
    unsigned char len[AUTH_MAX_KEYS];
    unsigned char key[AUTH_MAX_KEYS][SLOT]; /* zero-padded */
};

int auth_new(auth_keys **out, char *err, size_t errlen)
{
    auth_keys *k = calloc(1, sizeof *k);
    if (!k) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    *out = k;
    return 0;
}

void auth_free(auth_keys *k)
{
    if (!k) return;
    /* keys are secrets: do not leave them in freed memory */
    explicit_bzero(k, sizeof *k);
    free(k);
}

size_t auth_count(const auth_keys *k) { return k ? k->n : 0; }

static int is_blank(char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n'; }

/* Adds p[0..n) (already trimmed, n > 0). `where` names the source for errors. */
static int add_one(auth_keys *k, const char *p, size_t n, const char *where, char *err,
                   size_t errlen)
{
    if (n > AUTH_MAX_KEY_LEN)
        return err_set(err, errlen, ERR_INVAL, "%s: API key longer than %d bytes", where,
                       AUTH_MAX_KEY_LEN);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch <= ' ' || ch >= 127 || ch == ',')
            return err_set(err, errlen, ERR_INVAL,
                           "%s: API key has a character that is not printable ASCII (or is a "
                           "space or comma) at byte %zu", where, i + 1);
    }
    for (size_t i = 0; i < k->n; i++) /* duplicates: harmless, skip */
        if (k->len[i] == n && !memcmp(k->key[i], p, n)) return 0;
    if (k->n >= AUTH_MAX_KEYS)
        return err_set(err, errlen, ERR_TOOBIG, "%s: more than %d API keys", where,
                       AUTH_MAX_KEYS);
    memcpy(k->key[k->n], p, n);
    k->len[k->n] = (unsigned char)n;
    k->n++;
    return 0;
}

int auth_add_list(auth_keys *k, const char *list, const char *who, char *err, size_t errlen)
{
    const char *p = list ? list : "";
    int item = 0;
    while (*p) {
        size_t n = strcspn(p, ",");
        const char *a = p, *b = p + n;
        while (a < b && is_blank(*a)) a++;
        while (b > a && is_blank(b[-1])) b--;
        item++;
        if (b > a) {
            char where[96];
            snprintf(where, sizeof where, "%s (item %d)", who, item);
            int rc = add_one(k, a, (size_t)(b - a), where, err, errlen);
            if (rc) return rc;
        }
        p += n;
        if (*p == ',') p++;
    }
    return 0;
}

int auth_add_file(auth_keys *k, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(err, errlen, ERR_IO, "cannot open API keys file %s: %s", path, strerror(errno));
    char *data = malloc(AUTH_MAX_FILE_BYTES + 1);
    if (!data) {
        fclose(f);
        return err_set(err, errlen, ERR_NOMEM, "out of memory");
    }
    size_t len = fread(data, 1, AUTH_MAX_FILE_BYTES + 1, f);
    int rd_err = ferror(f);
    fclose(f);
    int rc = 0;
    if (rd_err) rc = err_set(err, errlen, ERR_IO, "cannot read API keys file %s", path);
    else if (len > AUTH_MAX_FILE_BYTES)
        rc = err_set(err, errlen, ERR_TOOBIG, "API keys file %s is larger than %u bytes", path,
                     AUTH_MAX_FILE_BYTES);
    size_t pos = 0;
    int line = 0;
    while (!rc && pos < len) {
        size_t e = pos;
        while (e < len && data[e] != '\n') e++;
        line++;
        size_t a = pos, b = e;
        while (a < b && is_blank(data[a])) a++;
        while (b > a && is_blank(data[b - 1])) b--;
        if (b > a && data[a] != '#') {
            char where[1200];
            snprintf(where, sizeof where, "%s:%d", path, line);
            rc = add_one(k, data + a, b - a, where, err, errlen);
        }
        pos = e + 1;
    }
    explicit_bzero(data, len);
    free(data);
    return rc;
}

int auth_check(const auth_keys *k, const char *authorization)
{
    if (!k || k->n == 0) return AUTH_OK;
    const char *h = authorization;
    if (!h) return AUTH_MISSING;
    while (*h == ' ' || *h == '\t') h++;
    if (strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t')) return AUTH_MISSING;
    h += 6;
    while (*h == ' ' || *h == '\t') h++;
    size_t n = strlen(h);
    while (n > 0 && is_blank(h[n - 1])) n--;
    if (n == 0) return AUTH_MISSING;
    /* the token, zero-padded to the slot width; a longer token matches nothing but still
     * costs the same walk */
    unsigned char tok[SLOT];
    memset(tok, 0, sizeof tok);
    size_t tn = n <= AUTH_MAX_KEY_LEN ? n : 0;
    memcpy(tok, h, tn);
    unsigned match = 0;
    for (size_t i = 0; i < k->n; i++) {
        volatile unsigned diff = (unsigned)(k->len[i] ^ tn) | (tn == 0);
        for (size_t b = 0; b < SLOT; b++) diff |= (unsigned)(k->key[i][b] ^ tok[b]);
        match |= diff == 0;
    }
    explicit_bzero(tok, sizeof tok);
    return match ? AUTH_OK : AUTH_BAD;
}
