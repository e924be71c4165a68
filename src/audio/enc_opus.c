/* enc_opus.c — Ogg Opus through libopusenc: mono, input at opts.sample_rate (24 kHz).
 *
 * libopusenc owns everything Ogg: OpusHead with the real input rate and the encoder's
 * pre-skip, OpusTags, granule positions in 48 kHz units and end trimming through the
 * last page's granule, so the decoded length equals the input length.
 *
 * We use its pull API (ope_encoder_create_pull + ope_encoder_get_page) rather than
 * write callbacks, because only the pull API can force a page out: after every write
 * the pages libopusenc has completed are emitted, and aenc_flush() closes the page in
 * progress so a streamed chunk's packets leave at the chunk boundary.
 *
 * Latency: by default libopusenc holds up to 2 s of input (decision delay) and fills
 * pages for up to 1 s (muxing delay). With opts.streaming the decision delay is 0, the
 * muxing delay 80 ms (pages leave at least that often even if nobody flushes) and the
 * headers go out at the first write. Buffered mode keeps the defaults (fewer pages).
 * Default bit rate 48 kbps (transparent for 24 kHz speech), signal type voice.
 * Empty input at 48 kHz: libopusenc 0.2's drain aborts the process (assert
 * `enc->streams == NULL` in ope_encoder_drain: without a resampler and without a single
 * input sample the stream never completes; found by tests/fuzz/fuzz_aenc.c), so close
 * feeds one zero sample first in that case only: the file then decodes to one sample of
 * silence instead of none. Other rates go through the resampler and drain empty input.
 */
#include "audio/enc_internal.h"
#include "core/err.h"

#include <opusenc.h>
#include <stdlib.h>

#define OPUS_DEFAULT_KBPS 48
#define OPUS_STREAM_MUX_48K 3840 /* 80 ms in 48 kHz granules */

typedef struct opus_state {
    OggOpusEnc *enc;
    int headers_out;
    int any_input; /* at least one sample was given to libopusenc */
} opus_state;

/* Emits every page libopusenc has ready; flush = also close the page in progress. */
static int opus_pages(aenc *e, opus_state *o, int flush, char *err, size_t errlen)
{
    unsigned char *page;
    opus_int32 len;
    int ret;
    while ((ret = ope_encoder_get_page(o->enc, &page, &len, flush)) == 1) {
        flush = 0;
        int rc = aenc_emit(e, page, (size_t)len, err, errlen);
        if (rc) return rc;
    }
    if (ret != 0) return err_set(err, errlen, ERR_INTERNAL, "opus: %s", ope_strerror(ret));
    return 0;
}

/* Maps a libopusenc failure to our error. */
static int opus_fail(aenc *e, int ret, const char *what, char *err, size_t errlen)
{
    return err_set(err, errlen, ERR_INTERNAL, "opus: %s: %s", what, ope_strerror(ret));
}

static int opus_open(aenc *e, char *err, size_t errlen)
{
    opus_state *o = calloc(1, sizeof *o);
    if (!o) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    e->impl = o;
    OggOpusComments *c = ope_comments_create();
    if (!c) return err_set(err, errlen, ERR_NOMEM, "opus: out of memory");
    int ret = 0;
    o->enc = ope_encoder_create_pull(c, e->opts.sample_rate, 1, 0, &ret);
    ope_comments_destroy(c);
    if (!o->enc) return err_set(err, errlen, ERR_INVAL, "opus: cannot encode %d Hz: %s",
                                e->opts.sample_rate, ope_strerror(ret));
    int kbps = e->opts.bitrate_kbps ? e->opts.bitrate_kbps : OPUS_DEFAULT_KBPS;
    if (kbps < 6) kbps = 6;
    if ((ret = ope_encoder_ctl(o->enc, OPUS_SET_BITRATE(kbps * 1000))) != OPE_OK ||
        (ret = ope_encoder_ctl(o->enc, OPUS_SET_SIGNAL(OPUS_SIGNAL_VOICE))) != OPE_OK ||
        (ret = ope_encoder_ctl(o->enc, OPE_SET_COMMENT_PADDING(0))) != OPE_OK)
        return opus_fail(e, ret, "setting options", err, errlen);
    if (e->opts.streaming &&
        ((ret = ope_encoder_ctl(o->enc, OPE_SET_DECISION_DELAY(0))) != OPE_OK ||
         (ret = ope_encoder_ctl(o->enc, OPE_SET_MUXING_DELAY(OPUS_STREAM_MUX_48K))) != OPE_OK))
        return opus_fail(e, ret, "setting streaming delays", err, errlen);
    return 0;
}

static int opus_headers(aenc *e, opus_state *o, char *err, size_t errlen)
{
    if (o->headers_out) return 0;
    int ret = ope_encoder_flush_header(o->enc);
    if (ret != OPE_OK) return opus_fail(e, ret, "writing headers", err, errlen);
    o->headers_out = 1;
    return opus_pages(e, o, 0, err, errlen);
}

static int opus_write(aenc *e, const float *pcm, size_t n, char *err, size_t errlen)
{
    opus_state *o = e->impl;
    int rc;
    if (e->opts.streaming && (rc = opus_headers(e, o, err, errlen))) return rc;
    float in[AENC_CHUNK];
    while (n) {
        size_t k = n < AENC_CHUNK ? n : AENC_CHUNK;
        for (size_t i = 0; i < k; i++) {
            float x = pcm[i];
            in[i] = x > 1.0f ? 1.0f : x < -1.0f ? -1.0f : x == x ? x : 0.0f;
        }
        int ret = ope_encoder_write_float(o->enc, in, (int)k);
        if (ret != OPE_OK) return opus_fail(e, ret, "encoding", err, errlen);
        o->any_input = 1;
        if ((rc = opus_pages(e, o, 0, err, errlen))) return rc;
        pcm += k;
        n -= k;
    }
    return 0;
}

static int opus_flush(aenc *e, char *err, size_t errlen)
{
    if (!e->opts.streaming) return 0;
    opus_state *o = e->impl;
    int rc = opus_headers(e, o, err, errlen);
    return rc ? rc : opus_pages(e, o, 1, err, errlen);
}

static int opus_close(aenc *e, char *err, size_t errlen)
{
    opus_state *o = e->impl;
    int ret;
    if (!o->any_input && e->opts.sample_rate == 48000) {
        static const float zero = 0.0f;
        if ((ret = ope_encoder_write_float(o->enc, &zero, 1)) != OPE_OK)
            return opus_fail(e, ret, "encoding", err, errlen);
    }
    ret = ope_encoder_drain(o->enc);
    if (ret != OPE_OK) return opus_fail(e, ret, "finishing", err, errlen);
    return opus_pages(e, o, 1, err, errlen);
}

static void opus_destroy(aenc *e)
{
    opus_state *o = e->impl;
    if (!o) return;
    if (o->enc) ope_encoder_destroy(o->enc);
    free(o);
    e->impl = NULL;
}

const aenc_vt aenc_vt_opus = {opus_open, opus_write, opus_flush, opus_close, opus_destroy};
