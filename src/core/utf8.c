/* utf8.c — see utf8.h. A table-free decoder: each lead byte class checks its own
 * continuation ranges (the "well-formed byte sequences" table of Unicode 15, §3.9),
 * which rules out overlongs and surrogates without decoding twice. */
#include "core/utf8.h"
#include "core/err.h"

static int cont(unsigned char c) { return (c & 0xC0) == 0x80; }

int utf8_decode(const char *s, size_t n, uint32_t *cp)
{
    const unsigned char *p = (const unsigned char *)s;
    if (n == 0) return 0;
    unsigned char c = p[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c < 0xC2) return 0; /* continuation byte or overlong 2-byte lead */
    if (c < 0xE0) {
        if (n < 2 || !cont(p[1])) return 0;
        *cp = ((uint32_t)(c & 0x1F) << 6) | (p[1] & 0x3F);
        return 2;
    }
    if (c < 0xF0) {
        if (n < 3 || !cont(p[1]) || !cont(p[2])) return 0;
        if (c == 0xE0 && p[1] < 0xA0) return 0; /* overlong */
        if (c == 0xED && p[1] > 0x9F) return 0; /* surrogate */
        *cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
        return 3;
    }
    if (c < 0xF5) {
        if (n < 4 || !cont(p[1]) || !cont(p[2]) || !cont(p[3])) return 0;
        if (c == 0xF0 && p[1] < 0x90) return 0; /* overlong */
        if (c == 0xF4 && p[1] > 0x8F) return 0; /* above U+10FFFF */
        *cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(p[1] & 0x3F) << 12) |
              ((uint32_t)(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
        return 4;
    }
    return 0;
}

int utf8_validate(const char *s, size_t n, size_t *ncp, size_t *bad_at)
{
    size_t i = 0, count = 0;
    while (i < n) {
        if ((unsigned char)s[i] < 0x80) { /* ASCII fast path */
            i++;
            count++;
            continue;
        }
        uint32_t cp;
        int k = utf8_decode(s + i, n - i, &cp);
        if (k == 0) {
            if (bad_at) *bad_at = i;
            return ERR_FORMAT;
        }
        i += (size_t)k;
        count++;
    }
    if (ncp) *ncp = count;
    return 0;
}

size_t utf8_trim_len(const char *s, size_t n)
{
    size_t i = n;
    /* step back over at most 3 continuation bytes to the lead of the last sequence */
    while (i > 0 && n - i < 4 && cont((unsigned char)s[i - 1])) i--;
    if (i == 0) return 0;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
    if (lead < 0x80) return n; /* the tail was ASCII (i == n) */
    return (n - (i - 1) >= need) ? n : i - 1;
}
