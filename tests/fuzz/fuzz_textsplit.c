/* fuzz_textsplit.c — libFuzzer entry for the sentence splitter (core/textsplit.h).
 *
 * The first byte picks max_len (TS_MIN_CHUNK .. TS_MIN_CHUNK + 255); the rest is text.
 * Every span must be non-empty, within max_len, inside the input, in order and without
 * overlap; the iterator must make progress and ts_split must agree with it.
 */
#include "core/err.h"
#include "core/textsplit.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t max_len = TS_MIN_CHUNK + data[0];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    size_t pos = 0, prev_end = 0, count = 0;
    ts_span sp;
    enum { CAP = 4096 };
    static ts_span all[CAP]; /* harness scratch, not library state */
    while (ts_next(text, len, &pos, max_len, &sp)) {
        if (sp.len == 0 || sp.len > max_len) abort();
        if (sp.off < prev_end || sp.off + sp.len > len) abort();
        if (pos < sp.off + sp.len || pos > len) abort();
        prev_end = sp.off + sp.len;
        if (count < CAP) all[count] = sp;
        count++;
        if (count > len + 1) abort(); /* no progress */
    }
    size_t n = 0;
    int rc = ts_split(text, len, max_len, all + 0, 0, &n, NULL, 0);
    if (count > 0 && rc != ERR_TOOBIG) abort();
    if (count == 0 && rc != 0) abort();
    return 0;
}
