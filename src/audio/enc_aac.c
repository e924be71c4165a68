/* enc_aac.c — AAC-LC in ADTS frames through libavcodec's native "aac" encoder.
 *
 * libavcodec gives raw AAC access units (1024 samples each); we prefix every one with
 * a 7-byte ADTS header (no CRC) written here, which makes the byte stream a valid
 * .aac file that can be cut at any frame boundary: exactly what streaming needs.
 * Input is clipped, collected into one encoder frame (frame_size, 1024) and sent as
 * planar float; every packet the encoder returns while audio is still coming is
 * emitted at once. A partial last frame is sent at close (the encoder accepts a small
 * last frame), then the encoder is drained. aenc_flush() cannot end a frame early and
 * is a no-op. Default 64 kbps. Only libavcodec/libavutil are used (no libavformat, no
 * CLI).
 *
 * Length. For N input samples in F = ceil(N/1024) frames the encoder returns F + 1
 * packets (counted: N = 1, 1023, 1024 -> 2; 1025 -> 3; 3071, 3072 -> 4; 3073 -> 5; 0 ->
 * 0). Packet k's MDCT window spans input frames k-1 and k, so the decoder's output for
 * packet k is input frame k-1: packet 0 decodes to 1024 samples of priming (silence),
 * and the last packet (k = F) is the only one whose output holds the last input frame,
 * PCM[(F-1)*1024 .. N) (1..1024 samples) plus zero padding. Decoders play all of it:
 * the raw stream is the PCM plus 1024 priming plus padding, N+1024 .. N+2047 samples.
 * The priming stays: ADTS has no field for it (the 7-byte header holds profile, rate,
 * channels, length and buffer fullness; priming lives in MP4 edit lists / iTunSMPB,
 * which raw ADTS demuxers such as libavformat's "aac" do not read), and dropping the
 * first (priming) packet is not a fix: AAC frames overlap by half a window, so the
 * decoder's first output then lacks the priming block's half of the overlap-add and
 * the first 1024 samples come out windowed and time-aliased. Measured on a 3 s voiced
 * test signal (ffmpeg decode, best lag): SNR of samples 0..1023 falls from 12.0 dB to
 * 3.5 dB, the rest is unchanged (41.5 dB), decoded excess 1975 -> 951 samples.
 * Tail rule: speech ends in silence (espeak: ~190 ms below -60 dBFS, its last frame at
 * -90 dBFS), so at close the last packet is dropped when the samples only it carries,
 * PCM[(F-1)*1024 .. N), peak below AAC_TAIL_PEAK (-50 dBFS). Output of earlier packets
 * does not depend on later ones, so this is an exact truncation: the file decodes to
 * 1024 priming + PCM[0 .. (F-1)*1024), F*1024 samples in all, i.e. N .. N+1023, and the
 * cut loses at most 42.7 ms of inaudible tail. A loud tail (a request cut mid-word, a
 * test tone) keeps the packet: correctness before the duration rule. The last packet
 * only ever comes out of the final drain (the encoder cannot know the end earlier), so
 * only packets produced during close are held back: no latency is added while
 * streaming. The packet dropped is checked by its pts/duration (it must be exactly
 * the last input frame), so a different libavcodec behaviour keeps it instead.
 * libavcodec logs to stderr by default (the aac encoder prints statistics at close);
 * library code must not print, so the first open lowers libav's process-wide level to
 * errors, once, unless someone already changed it from the default.
 */
#include "audio/enc_internal.h"
#include "core/err.h"

#include <libavcodec/avcodec.h>
#include <libavutil/channel_layout.h>
#include <libavutil/error.h>
#include <libavutil/frame.h>
#include <libavutil/log.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define AAC_DEFAULT_KBPS 64
#define ADTS_HDR 7
#define ADTS_MAX_FRAME 8191 /* 13-bit frame_length, header included */
/* Tail rule threshold: -50 dBFS peak (10^(-50/20)); see the header. */
#define AAC_TAIL_PEAK 0.0031623f

typedef struct aac_state {
    AVCodecContext *ctx;
    AVFrame *frame;
    AVPacket *pkt;
    int sfi;        /* ADTS sampling_frequency_index */
    int fill;       /* samples collected in frame so far */
    int64_t pts;    /* in samples: input sent to the encoder so far */
    float peak;     /* peak |x| of the frame being collected */
    float last_peak;    /* peak |x| of the last frame sent */
    int64_t last_start; /* its first sample's index; -1 before any */
    size_t held;        /* close only: length of the packet waiting in out, 0 = none */
    int64_t held_pts, held_dur; /* its input span (libavcodec's pts/duration) */
    uint8_t out[ADTS_HDR + ADTS_MAX_FRAME];
} aac_state;

static int adts_sfi(int rate)
{
    static const int rates[] = {96000, 88200, 64000, 48000, 44100, 32000, 24000,
                                22050, 16000, 12000, 11025, 8000, 7350};
    for (int i = 0; i < (int)(sizeof rates / sizeof rates[0]); i++)
        if (rates[i] == rate) return i;
    return -1;
}

/* ADTS fixed + variable header, MPEG-4, protection absent, one raw data block. */
static void adts_header(uint8_t h[ADTS_HDR], int sfi, int channels, size_t frame_len)
{
    const int profile = 1; /* audio object type 2 (AAC LC) minus 1 */
    h[0] = 0xFF;
    h[1] = 0xF1;
    h[2] = (uint8_t)((profile << 6) | (sfi << 2) | ((channels >> 2) & 1));
    h[3] = (uint8_t)(((channels & 3) << 6) | ((frame_len >> 11) & 3));
    h[4] = (uint8_t)((frame_len >> 3) & 0xFF);
    h[5] = (uint8_t)(((frame_len & 7) << 5) | 0x1F); /* buffer fullness 0x7FF (VBR) */
    h[6] = 0xFC;
}

static void quiet_libav(void)
{
    if (av_log_get_level() == AV_LOG_INFO) av_log_set_level(AV_LOG_ERROR);
}

static int av_fail(int ret, const char *what, char *err, size_t errlen)
{
    char msg[AV_ERROR_MAX_STRING_SIZE];
    av_strerror(ret, msg, sizeof msg);
    return err_set(err, errlen, ret == AVERROR(ENOMEM) ? ERR_NOMEM : ERR_INTERNAL, "aac: %s: %s",
                   what, msg);
}

static int aac_open(aenc *e, char *err, size_t errlen)
{
    aac_state *a = calloc(1, sizeof *a);
    if (!a) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    e->impl = a;
    a->last_start = -1;
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, quiet_libav);
    a->sfi = adts_sfi(e->opts.sample_rate);
    if (a->sfi < 0)
        return err_set(err, errlen, ERR_INVAL, "aac: %d Hz has no ADTS rate index", e->opts.sample_rate);
    const AVCodec *codec = avcodec_find_encoder_by_name("aac");
    if (!codec) return err_set(err, errlen, ERR_NOTFOUND, "aac: libavcodec has no native aac encoder");
    a->ctx = avcodec_alloc_context3(codec);
    a->frame = av_frame_alloc();
    a->pkt = av_packet_alloc();
    if (!a->ctx || !a->frame || !a->pkt) return err_set(err, errlen, ERR_NOMEM, "aac: out of memory");
    int kbps = e->opts.bitrate_kbps ? e->opts.bitrate_kbps : AAC_DEFAULT_KBPS;
    a->ctx->sample_fmt = AV_SAMPLE_FMT_FLTP;
    a->ctx->sample_rate = e->opts.sample_rate;
    av_channel_layout_default(&a->ctx->ch_layout, 1);
    a->ctx->bit_rate = (int64_t)kbps * 1000;
    a->ctx->profile = FF_PROFILE_AAC_LOW;
    a->ctx->time_base = (AVRational){1, e->opts.sample_rate};
    int ret = avcodec_open2(a->ctx, codec, NULL);
    if (ret < 0) return av_fail(ret, "opening the encoder", err, errlen);
    if (a->ctx->frame_size <= 0 || a->ctx->frame_size > 8192)
        return err_set(err, errlen, ERR_INTERNAL, "aac: unexpected frame size %d", a->ctx->frame_size);
    a->frame->format = AV_SAMPLE_FMT_FLTP;
    a->frame->sample_rate = e->opts.sample_rate;
    a->frame->nb_samples = a->ctx->frame_size;
    if ((ret = av_channel_layout_copy(&a->frame->ch_layout, &a->ctx->ch_layout)) < 0 ||
        (ret = av_frame_get_buffer(a->frame, 0)) < 0)
        return av_fail(ret, "allocating a frame", err, errlen);
    return 0;
}

/* Emits every packet the encoder has ready. With hold (close), the newest packet stays
 * in a->out (a->held bytes) until the next one arrives or close decides about it. */
static int aac_drain(aenc *e, aac_state *a, int hold, char *err, size_t errlen)
{
    for (;;) {
        int ret = avcodec_receive_packet(a->ctx, a->pkt);
        if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) return 0;
        if (ret < 0) return av_fail(ret, "encoding", err, errlen);
        size_t len = ADTS_HDR + (size_t)a->pkt->size;
        if (len > ADTS_MAX_FRAME) {
            av_packet_unref(a->pkt);
            return err_set(err, errlen, ERR_INTERNAL, "aac: %zu-byte frame exceeds ADTS", len);
        }
        if (a->held) {
            int rc = aenc_emit(e, a->out, a->held, err, errlen);
            a->held = 0;
            if (rc) {
                av_packet_unref(a->pkt);
                return rc;
            }
        }
        adts_header(a->out, a->sfi, 1, len);
        memcpy(a->out + ADTS_HDR, a->pkt->data, (size_t)a->pkt->size);
        int64_t pts = a->pkt->pts, dur = a->pkt->duration;
        av_packet_unref(a->pkt);
        if (hold) {
            a->held = len;
            a->held_pts = pts;
            a->held_dur = dur;
            continue;
        }
        int rc = aenc_emit(e, a->out, len, err, errlen);
        if (rc) return rc;
    }
}

/* Sends the collected a->fill samples (a full frame, or the short last one). */
static int aac_send(aenc *e, aac_state *a, int hold, char *err, size_t errlen)
{
    a->frame->nb_samples = a->fill;
    a->frame->pts = a->pts;
    int ret = avcodec_send_frame(a->ctx, a->frame);
    if (ret < 0) return av_fail(ret, "sending a frame", err, errlen);
    a->last_start = a->pts;
    a->last_peak = a->peak;
    a->pts += a->fill;
    a->fill = 0;
    a->peak = 0.0f;
    return aac_drain(e, a, hold, err, errlen);
}

static int aac_write(aenc *e, const float *pcm, size_t n, char *err, size_t errlen)
{
    aac_state *a = e->impl;
    while (n) {
        /* The encoder may still reference the frame's buffer: get a writable one. */
        int ret = a->fill == 0 ? av_frame_make_writable(a->frame) : 0;
        if (ret < 0) return av_fail(ret, "allocating a frame", err, errlen);
        float *dst = (float *)a->frame->data[0] + a->fill;
        size_t room = (size_t)(a->ctx->frame_size - a->fill);
        size_t k = n < room ? n : room;
        float peak = a->peak;
        for (size_t i = 0; i < k; i++) {
            float x = pcm[i];
            dst[i] = x > 1.0f ? 1.0f : x < -1.0f ? -1.0f : x == x ? x : 0.0f;
            float m = fabsf(dst[i]);
            peak = m > peak ? m : peak;
        }
        a->peak = peak;
        a->fill += (int)k;
        pcm += k;
        n -= k;
        if (a->fill == a->ctx->frame_size) {
            int rc = aac_send(e, a, 0, err, errlen);
            if (rc) return rc;
        }
    }
    return 0;
}

static int aac_close(aenc *e, char *err, size_t errlen)
{
    aac_state *a = e->impl;
    int rc;
    if (a->fill > 0 && (rc = aac_send(e, a, 1, err, errlen))) return rc;
    int ret = avcodec_send_frame(a->ctx, NULL);
    if (ret < 0) return av_fail(ret, "flushing", err, errlen);
    if ((rc = aac_drain(e, a, 1, err, errlen))) return rc;
    if (!a->held) return 0;
    /* The held packet is the last one. Drop it only when it carries exactly the last
     * input frame and that frame is silent (the tail rule in the header). */
    int tail = a->last_start >= 0 && a->held_pts == a->last_start &&
               a->held_pts + a->held_dur == a->pts && a->last_peak < AAC_TAIL_PEAK;
    size_t len = a->held;
    a->held = 0;
    return tail ? 0 : aenc_emit(e, a->out, len, err, errlen);
}

static void aac_destroy(aenc *e)
{
    aac_state *a = e->impl;
    if (!a) return;
    av_packet_free(&a->pkt);
    av_frame_free(&a->frame);
    avcodec_free_context(&a->ctx);
    free(a);
    e->impl = NULL;
}

const aenc_vt aenc_vt_aac = {aac_open, aac_write, NULL, aac_close, aac_destroy};
