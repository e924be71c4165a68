/* enc_pcm.c — OpenAI's "pcm": raw signed 16-bit little-endian mono samples, no header.
 *
 * Stateless apart from nothing at all: every write converts with aenc_f2s16() in
 * AENC_CHUNK steps through a stack buffer and emits at once, streaming or not (there
 * is no header to fix up, so buffering would only add latency and memory).
 */
#include "audio/enc_internal.h"
#include "core/err.h"

static int pcm_open(aenc *e, char *err, size_t errlen)
{
    return 0;
}

static int pcm_write(aenc *e, const float *pcm, size_t n, char *err, size_t errlen)
{
    int16_t s[AENC_CHUNK];
    uint8_t b[AENC_CHUNK * 2];
    while (n) {
        size_t k = n < AENC_CHUNK ? n : AENC_CHUNK;
        aenc_f2s16(pcm, s, k);
        for (size_t i = 0; i < k; i++) aenc_put_le16(b + 2 * i, (uint16_t)s[i]);
        int rc = aenc_emit(e, b, 2 * k, err, errlen);
        if (rc) return rc;
        pcm += k;
        n -= k;
    }
    return 0;
}

static int pcm_close(aenc *e, char *err, size_t errlen)
{
    return 0;
}

static void pcm_destroy(aenc *e)
{
}

const aenc_vt aenc_vt_pcm = {pcm_open, pcm_write, NULL, pcm_close, pcm_destroy};
