/* textsplit.c — sentence splitter (see textsplit.h for the rules).
 *
 * One forward scan per chunk: from the first non-space byte, walk characters until a
 * boundary is found or the chunk would exceed max_len; in the latter case fall back to
 * the best break inside the limit (; : then , then space, then a character boundary).
 * Decisions at a period look at the word before it (abbreviation, initial, dotted
 * acronym) and the word after it (a lowercase word continues the sentence). Everything
 * works on bytes with a tiny UTF-8 decoder; invalid bytes count as one character each,
 * so malformed input cannot make the scan stall or split inside a valid sequence.
 */
#include "core/textsplit.h"

#include <string.h>

#include "core/err.h"

/* Decodes the character at t[i] (i < len); returns its code point, width in *w (>= 1).
 * Invalid or truncated sequences decode as U+FFFD of width 1. */
static unsigned ts_decode(const char *t, size_t len, size_t i, size_t *w)
{
    const unsigned char *s = (const unsigned char *)t + i;
    size_t left = len - i;
    unsigned c = s[0];
    size_t n;
    unsigned cp;
    if (c < 0x80) {
        *w = 1;
        return c;
    } else if ((c & 0xE0) == 0xC0) {
        n = 2;
        cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3;
        cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4;
        cp = c & 0x07;
    } else {
        *w = 1;
        return 0xFFFD;
    }
    if (left < n) {
        *w = 1;
        return 0xFFFD;
    }
    for (size_t k = 1; k < n; k++) {
        if ((s[k] & 0xC0) != 0x80) {
            *w = 1;
            return 0xFFFD;
        }
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    *w = n;
    return cp;
}

static int ts_is_space_cp(unsigned c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' ||
           c == 0xA0 || c == 0x3000;
}

/* Width of the whitespace character at t[i], 0 if none (or i == len). */
static size_t ts_space_at(const char *t, size_t len, size_t i)
{
    if (i >= len) return 0;
    size_t w;
    unsigned c = ts_decode(t, len, i, &w);
    return ts_is_space_cp(c) ? w : 0;
}

/* Width of the whitespace character that ends just before t[end] (end > lo), 0 if none. */
static size_t ts_space_before(const char *t, size_t lo, size_t end)
{
    const unsigned char *s = (const unsigned char *)t;
    if (end <= lo) return 0;
    unsigned c = s[end - 1];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') return 1;
    if (end - lo >= 2 && s[end - 2] == 0xC2 && c == 0xA0) return 2;
    if (end - lo >= 3 && s[end - 3] == 0xE3 && s[end - 2] == 0x80 && c == 0x80) return 3;
    return 0;
}

static int ts_is_term(unsigned c) { return c == '.' || c == '!' || c == '?' || c == 0x2026; }
static int ts_is_cjk_term(unsigned c) { return c == 0x3002 || c == 0xFF01 || c == 0xFF1F; }

static int ts_is_closer(unsigned c)
{
    return c == '"' || c == '\'' || c == ')' || c == ']' || c == '}' || c == 0x201D ||
           c == 0x2019 || c == 0xBB || c == 0x300D || c == 0x300F || c == 0xFF09;
}

static int ts_is_opener(unsigned char c)
{
    return c == '"' || c == '\'' || c == '(' || c == '[' || c == '{';
}

static int ts_lower(int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

/* Words that end with a period but rarely end a sentence. Compared lowercase. */
static const char *const ts_abbrev[] = {
    "mr", "mrs", "ms", "mx", "dr", "prof", "sr", "jr", "st", "vs", "etc", "cf", "approx",
    "fig", "gen", "gov", "lt", "mt", "sgt", "capt", "col", "rev", "hon", "ave", "dept", "est",
};

/* Is the period at t[dot] the end of an abbreviation, an initial or a dotted acronym?
 * The word is the run of non-space bytes before dot, back to lo. */
static int ts_period_keeps(const char *t, size_t lo, size_t dot)
{
    size_t b = dot;
    while (b > lo && !ts_space_before(t, lo, b)) b--;
    while (b < dot && ts_is_opener((unsigned char)t[b])) b++;
    size_t n = dot - b;
    if (n == 0) return 0;
    const char *w = t + b;
    /* List marker: a number of up to 3 digits opening the chunk ("1. Buy milk"). */
    if (b == lo && n <= 3) {
        size_t k = 0;
        while (k < n && w[k] >= '0' && w[k] <= '9') k++;
        if (k == n) return 1;
    }
    /* Initial: one uppercase ASCII letter ("J."), except the pronoun "I". */
    if (n == 1) return w[0] >= 'A' && w[0] <= 'Z' && w[0] != 'I';
    /* Dotted letters: "e.g", "i.e", "U.S", "p.m" — letter (. letter)+. */
    int dotted = 1;
    for (size_t k = 0; k < n; k++) {
        int isl = ((w[k] | 32) >= 'a' && (w[k] | 32) <= 'z');
        if ((k % 2 == 0 && !isl) || (k % 2 == 1 && w[k] != '.')) {
            dotted = 0;
            break;
        }
    }
    if (dotted && n % 2 == 1) return 1;
    for (size_t a = 0; a < sizeof ts_abbrev / sizeof ts_abbrev[0]; a++) {
        const char *ab = ts_abbrev[a];
        if (strlen(ab) != n) continue;
        size_t k = 0;
        while (k < n && ts_lower((unsigned char)w[k]) == ab[k]) k++;
        if (k == n) return 1;
    }
    return 0;
}

/* Does a lowercase ASCII letter start the next word after the whitespace at t[i]? */
static int ts_next_is_lower(const char *t, size_t len, size_t i)
{
    size_t w;
    while ((w = ts_space_at(t, len, i)) != 0) {
        if (t[i] == '\n') return 0; /* a newline ends the sentence anyway */
        i += w;
    }
    return i < len && t[i] >= 'a' && t[i] <= 'z';
}

/* Best place to cut [start, limit) when no sentence boundary fits; returns the end. */
static size_t ts_overflow_cut(const char *t, size_t len, size_t start, size_t limit)
{
    size_t span = limit - start, min_keep = span / 4;
    size_t best_semi = 0, best_comma = 0, best_space = 0;
    for (size_t i = start; i < limit;) {
        size_t w;
        unsigned c = ts_decode(t, len, i, &w);
        if (i + w > limit) break;
        if ((c == ';' || c == ':') && ts_space_at(t, len, i + w)) best_semi = i + w;
        if (c == ',' && ts_space_at(t, len, i + w)) best_comma = i + w;
        if (ts_is_space_cp(c) && i > start) best_space = i;
        i += w;
    }
    if (best_semi && best_semi - start >= min_keep) return best_semi;
    if (best_comma && best_comma - start >= min_keep) return best_comma;
    if (best_space) return best_space;
    /* Hard cut on a character boundary; the first character always fits (max_len >= 4). */
    size_t end = limit;
    while (end > start + 1 && ((unsigned char)t[end] & 0xC0) == 0x80) end--;
    return end;
}

int ts_next(const char *text, size_t len, size_t *pos, size_t max_len, ts_span *out)
{
    size_t i = *pos, w;
    if (max_len < TS_MIN_CHUNK) max_len = TS_MIN_CHUNK;
    while (i < len && (w = ts_space_at(text, len, i)) != 0) i += w;
    if (i >= len) {
        *pos = len;
        return 0;
    }
    size_t start = i, end = 0, next = 0;
    int found = 0;
    while (i < len && i - start <= max_len) {
        unsigned c = ts_decode(text, len, i, &w);
        if (c == '\n') {
            end = i;
            next = i + 1;
            found = 1;
            break;
        }
        if (ts_is_cjk_term(c) || ts_is_term(c)) {
            int cjk = ts_is_cjk_term(c), single_dot = (c == '.'), bang = (c == '!' || c == '?');
            size_t j = i + w, runlen = 1;
            for (;;) {
                if (j >= len) break;
                unsigned d = ts_decode(text, len, j, &w);
                if (ts_is_term(d) || ts_is_cjk_term(d)) {
                    runlen++;
                    if (d == '!' || d == '?') bang = 1;
                    j += w;
                } else {
                    break;
                }
            }
            if (runlen > 1) single_dot = 0;
            while (j < len) {
                unsigned d = ts_decode(text, len, j, &w);
                if (!ts_is_closer(d)) break;
                j += w;
            }
            if (cjk || j == len || ts_space_at(text, len, j)) {
                int keep = 0;
                if (!cjk) {
                    if (!bang && single_dot && ts_period_keeps(text, start, i)) keep = 1;
                    if (j < len && ts_next_is_lower(text, len, j)) keep = 1;
                }
                if (!keep) {
                    end = j;
                    next = j;
                    found = 1;
                    break;
                }
            }
            i = j;
            continue;
        }
        i += w;
    }
    if (!found) {
        end = next = len < i ? len : i;
        if (len - start > max_len) found = 0;
        else found = 1;
    }
    if (!found || end - start > max_len) {
        /* Trim first: a boundary just past the limit may still fit without trailing spaces. */
        size_t e = end;
        while ((w = ts_space_before(text, start, e)) != 0) e -= w;
        if (!found || e - start > max_len) {
            end = ts_overflow_cut(text, len, start, start + max_len);
            next = end;
        }
    }
    while ((w = ts_space_before(text, start, end)) != 0) end -= w;
    out->off = start;
    out->len = end - start;
    *pos = next;
    return 1;
}

int ts_split(const char *text, size_t len, size_t max_len, ts_span *out, size_t cap, size_t *n,
             char *err, size_t errlen)
{
    size_t pos = 0, k = 0;
    ts_span s;
    while (ts_next(text, len, &pos, max_len, &s)) {
        if (k == cap) {
            *n = k;
            return err_set(err, errlen, ERR_TOOBIG, "text has more than %zu chunks", cap);
        }
        out[k++] = s;
    }
    *n = k;
    return 0;
}
