/* enc_mp3.c — MPEG audio layer III through LAME: mono, constant bit rate.
 *
 * At 24 kHz this is MPEG-2 layer III (576 samples per frame). Default 160 kbps, the
 * highest MPEG-2 rate and what OpenAI's 24 kHz mono mp3 answers are reported to carry
 * (not verified against the live API here); opts.bitrate_kbps overrides and
 * LAME snaps it to the nearest legal MPEG-2 rate (8..160). Input is clipped to [-1, 1]
 * (LAME's float API expects full scale) in AENC_CHUNK steps.
 *
 * Streaming: no Xing/LAME tag frame (a stream cannot go back to fill one in; CBR needs
 * none to be playable); every step's output is emitted at once, so bytes leave as soon
 * as LAME completes a frame. Decoders then play LAME's 1105-sample encoder delay and the
 * last frame's padding as silence.
 * Buffered: the file is kept (capped at AENC_MP3_MAX) and at close the placeholder first
 * frame is overwritten with LAME's "Info" tag (frame count, encoder delay, padding), so
 * gapless decoders (ffmpeg, browsers) trim delay and padding: exact duration.
 * close() runs lame_encode_flush for the padded last frames.
 * Threads: LAME fills a few process-wide tables on first use (init_log_table and
 * friends, guarded by a plain static flag); the first open warms them under
 * pthread_once so concurrent requests never race on that first fill.
 */
#include "audio/enc_internal.h"
#include "core/buf.h"
#include "core/err.h"

#include <lame/lame.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MP3_DEFAULT_KBPS 160
#define MP3_OUT_MAX (AENC_CHUNK + AENC_CHUNK / 4 + 7200) /* LAME's worst case per call */
#define AENC_MP3_MAX ((size_t)64 << 20) /* buffered mode: ~55 min at 160 kbps */

typedef struct mp3_state {
    lame_t gf;
    buf file; /* buffered mode only */
    float in[AENC_CHUNK];
    unsigned char out[MP3_OUT_MAX];
} mp3_state;

static void lame_warm(void)
{
    lame_t g = lame_init();
    if (!g) return;
    lame_set_in_samplerate(g, 24000);
    lame_set_num_channels(g, 1);
    lame_set_mode(g, MONO);
    lame_init_params(g);
    lame_close(g);
}

static int mp3_open(aenc *e, char *err, size_t errlen)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, lame_warm);
    mp3_state *m = calloc(1, sizeof *m);
    if (!m) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    e->impl = m;
    buf_init(&m->file, AENC_MP3_MAX);
    m->gf = lame_init();
    if (!m->gf) return err_set(err, errlen, ERR_NOMEM, "lame_init failed");
    int kbps = e->opts.bitrate_kbps ? e->opts.bitrate_kbps : MP3_DEFAULT_KBPS;
    lame_set_in_samplerate(m->gf, e->opts.sample_rate);
    lame_set_out_samplerate(m->gf, e->opts.sample_rate);
    lame_set_num_channels(m->gf, 1);
    lame_set_mode(m->gf, MONO);
    lame_set_VBR(m->gf, vbr_off);
    lame_set_brate(m->gf, kbps);
    lame_set_quality(m->gf, 5);
    lame_set_bWriteVbrTag(m->gf, e->opts.streaming ? 0 : 1);
    if (lame_init_params(m->gf) < 0)
        return err_set(err, errlen, ERR_INVAL, "lame: cannot encode %d Hz at %d kbps",
                       e->opts.sample_rate, kbps);
    return 0;
}

/* Streaming: to the writer now; buffered: into the file. */
static int mp3_out(aenc *e, mp3_state *m, const unsigned char *b, size_t n, char *err, size_t errlen)
{
    if (e->opts.streaming) return aenc_emit(e, b, n, err, errlen);
    int rc = buf_append(&m->file, b, n);
    if (rc == ERR_TOOBIG)
        return err_set(err, errlen, rc, "mp3: more than %zu MiB of output", AENC_MP3_MAX >> 20);
    return rc ? err_set(err, errlen, rc, "mp3: out of memory") : 0;
}

static int mp3_write(aenc *e, const float *pcm, size_t n, char *err, size_t errlen)
{
    mp3_state *m = e->impl;
    while (n) {
        size_t k = n < AENC_CHUNK ? n : AENC_CHUNK;
        for (size_t i = 0; i < k; i++) {
            float x = pcm[i];
            m->in[i] = x > 1.0f ? 1.0f : x < -1.0f ? -1.0f : x == x ? x : 0.0f;
        }
        int got = lame_encode_buffer_ieee_float(m->gf, m->in, m->in, (int)k, m->out, MP3_OUT_MAX);
        if (got < 0) return err_set(err, errlen, ERR_INTERNAL, "lame: encode error %d", got);
        int rc = mp3_out(e, m, m->out, (size_t)got, err, errlen);
        if (rc) return rc;
        pcm += k;
        n -= k;
    }
    return 0;
}

static int mp3_close(aenc *e, char *err, size_t errlen)
{
    mp3_state *m = e->impl;
    int got = lame_encode_flush(m->gf, m->out, MP3_OUT_MAX);
    if (got < 0) return err_set(err, errlen, ERR_INTERNAL, "lame: flush error %d", got);
    int rc = mp3_out(e, m, m->out, (size_t)got, err, errlen);
    if (rc || e->opts.streaming) return rc;
    /* The tag replaces the placeholder frame LAME wrote first, byte for byte. */
    size_t tag = lame_get_lametag_frame(m->gf, m->out, MP3_OUT_MAX);
    if (tag > 0 && tag <= MP3_OUT_MAX && tag <= m->file.len) memcpy(m->file.data, m->out, tag);
    rc = aenc_emit(e, m->file.data, m->file.len, err, errlen);
    buf_free(&m->file);
    return rc;
}

static void mp3_destroy(aenc *e)
{
    mp3_state *m = e->impl;
    if (!m) return;
    if (m->gf) lame_close(m->gf);
    buf_free(&m->file);
    free(m);
    e->impl = NULL;
}

const aenc_vt aenc_vt_mp3 = {mp3_open, mp3_write, NULL, mp3_close, mp3_destroy};
