/* textsplit.h — split UTF-8 text into sentence-sized chunks for streaming synthesis.
 *
 * Engines speak one chunk at a time so the first sentence's audio leaves while the rest
 * is still being synthesised, and so a shared engine can interleave requests sentence by
 * sentence. The splitter is a pure function over the caller's bytes: it never allocates,
 * never copies, and returns spans (offset, length) into the input.
 *
 * Boundaries: . ! ? and … (runs such as "?!" or "..." count as one), followed by optional
 * closing quotes/brackets, then whitespace or the end; CJK 。！？ end a sentence even
 * without a following space; every newline is a boundary (list items, blank lines).
 * Not boundaries: abbreviations (Mr. Dr. e.g. i.e. etc. St. ...), decimals (3.14),
 * initials (J. R. R. Tolkien), a list number opening a line ("1. Buy milk"), any
 * terminator followed by a lowercase word ("(too!) is").
 * A chunk longer than max_len bytes is split at its last ; or : then , then space inside
 * the limit, and as a last resort at a UTF-8 character boundary (never inside a sequence).
 *
 * Invariants of every returned span: non-empty, no leading or trailing whitespace,
 * len <= max_len, starts and ends on UTF-8 character boundaries (for valid input).
 */
#ifndef CORE_TEXTSPLIT_H
#define CORE_TEXTSPLIT_H

#include <stddef.h>

#define TS_MIN_CHUNK 16 /* smallest max_len accepted (room for one 4-byte character and more) */

typedef struct ts_span {
    size_t off; /* byte offset into the text */
    size_t len; /* byte length, > 0 */
} ts_span;

/* Iterator: finds the next chunk at or after *pos in text[0..len), stores it in *out,
 * advances *pos past it and returns 1; returns 0 when only whitespace is left.
 * max_len is clamped up to TS_MIN_CHUNK. Start with *pos = 0. */
int ts_next(const char *text, size_t len, size_t *pos, size_t max_len, ts_span *out);

/* All chunks at once into the caller's array out[0..cap). Sets *n to the count.
 * Returns 0, or ERR_TOOBIG when more than cap chunks exist (the first cap are filled). */
int ts_split(const char *text, size_t len, size_t max_len, ts_span *out, size_t cap, size_t *n,
             char *err, size_t errlen);

#endif
