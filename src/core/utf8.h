/* utf8.h — strict UTF-8 validation and code-point counting.
 *
 * Clients send text as UTF-8 inside JSON; limits (max input characters) are counted in
 * Unicode code points, not bytes, as OpenAI counts characters. "Strict" means RFC 3629:
 * no overlong forms, no UTF-16 surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no
 * truncated sequences. Pure functions over caller memory; no allocation, thread-safe.
 */
#ifndef CORE_UTF8_H
#define CORE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Validates s[0..n). Returns 0 and the number of code points in *ncp (may be NULL),
 * or ERR_FORMAT with the byte offset of the first bad sequence in *bad_at (may be NULL). */
int utf8_validate(const char *s, size_t n, size_t *ncp, size_t *bad_at);

/* Decodes one code point at s[0..n) (n >= 1). Returns its length in bytes (1..4) and
 * writes it to *cp, or 0 if the bytes there are not a valid sequence. */
int utf8_decode(const char *s, size_t n, uint32_t *cp);

/* Largest prefix length <= n of s that does not cut a UTF-8 sequence in half
 * (s must be valid UTF-8). Used to truncate text for logs. */
size_t utf8_trim_len(const char *s, size_t n);

#endif
