/* enc_wav.c — RIFF/WAVE, PCM s16le mono, 44-byte canonical header.
 *
 * Two modes, because a WAV header states the data size before the data:
 *  - streaming: the header goes out at the first write with 0xFFFFFFFF in the RIFF
 *    and data size fields (the convention ffmpeg, browsers and OpenAI's own streamed
 *    WAVs use for "until end of stream"), then samples are emitted as they arrive.
 *  - buffered: samples are kept (as s16, capped at AENC_WAV_MAX_DATA bytes, ERR_TOOBIG
 *    beyond) and at close the header with exact sizes and the data go out in one piece.
 * A stream closed without any sample still produces a valid, empty WAV (exact sizes).
 */
#include "audio/enc_internal.h"
#include "core/buf.h"
#include "core/err.h"

#include <stdlib.h>

/* 64 MiB of s16 = about 23 minutes at 24 kHz: far beyond any single request. */
#define AENC_WAV_MAX_DATA ((size_t)64 << 20)
#define WAV_HDR 44

typedef struct wav_state {
    buf data;        /* buffered mode only: s16le samples */
    int header_sent; /* streaming mode */
} wav_state;

static void wav_header(uint8_t h[WAV_HDR], int rate, uint32_t data_bytes, int open_ended)
{
    const uint8_t tmpl[16] = {'R', 'I', 'F', 'F', 0, 0, 0, 0, 'W', 'A', 'V', 'E', 'f', 'm', 't', ' '};
    for (int i = 0; i < 16; i++) h[i] = tmpl[i];
    aenc_put_le32(h + 4, open_ended ? 0xFFFFFFFFu : 36u + data_bytes);
    aenc_put_le32(h + 16, 16);                      /* fmt chunk size */
    aenc_put_le16(h + 20, 1);                       /* WAVE_FORMAT_PCM */
    aenc_put_le16(h + 22, 1);                       /* channels */
    aenc_put_le32(h + 24, (uint32_t)rate);          /* sample rate */
    aenc_put_le32(h + 28, (uint32_t)rate * 2u);     /* byte rate */
    aenc_put_le16(h + 32, 2);                       /* block align */
    aenc_put_le16(h + 34, 16);                      /* bits per sample */
    h[36] = 'd', h[37] = 'a', h[38] = 't', h[39] = 'a';
    aenc_put_le32(h + 40, open_ended ? 0xFFFFFFFFu : data_bytes);
}

static int wav_open(aenc *e, char *err, size_t errlen)
{
    wav_state *w = calloc(1, sizeof *w);
    if (!w) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    buf_init(&w->data, AENC_WAV_MAX_DATA);
    e->impl = w;
    return 0;
}

static int wav_write(aenc *e, const float *pcm, size_t n, char *err, size_t errlen)
{
    wav_state *w = e->impl;
    int rc;
    if (e->opts.streaming && !w->header_sent) {
        uint8_t h[WAV_HDR];
        wav_header(h, e->opts.sample_rate, 0, 1);
        if ((rc = aenc_emit(e, h, WAV_HDR, err, errlen))) return rc;
        w->header_sent = 1;
    }
    int16_t s[AENC_CHUNK];
    uint8_t b[AENC_CHUNK * 2];
    while (n) {
        size_t k = n < AENC_CHUNK ? n : AENC_CHUNK;
        aenc_f2s16(pcm, s, k);
        for (size_t i = 0; i < k; i++) aenc_put_le16(b + 2 * i, (uint16_t)s[i]);
        if (e->opts.streaming) {
            rc = aenc_emit(e, b, 2 * k, err, errlen);
        } else {
            rc = buf_append(&w->data, b, 2 * k);
            if (rc == ERR_TOOBIG)
                return err_set(err, errlen, rc, "wav: more than %zu MiB of audio",
                               AENC_WAV_MAX_DATA >> 20);
            if (rc) return err_set(err, errlen, rc, "wav: out of memory");
        }
        if (rc) return rc;
        pcm += k;
        n -= k;
    }
    return 0;
}

static int wav_close(aenc *e, char *err, size_t errlen)
{
    wav_state *w = e->impl;
    if (e->opts.streaming && w->header_sent) return 0;
    uint8_t h[WAV_HDR];
    wav_header(h, e->opts.sample_rate, (uint32_t)w->data.len, 0);
    int rc = aenc_emit(e, h, WAV_HDR, err, errlen);
    if (!rc) rc = aenc_emit(e, w->data.data, w->data.len, err, errlen);
    buf_free(&w->data);
    return rc;
}

static void wav_destroy(aenc *e)
{
    wav_state *w = e->impl;
    if (!w) return;
    buf_free(&w->data);
    free(w);
    e->impl = NULL;
}

const aenc_vt aenc_vt_wav = {wav_open, wav_write, NULL, wav_close, wav_destroy};
