/* enc_mp3.c — MPEG audio layer III through LAME: mono, constant bit rate.
 *
 * At 24 kHz this is MPEG-2 layer III (576 samples per frame). Default 160 kbps, the
 * highest MPEG-2 rate and what OpenAI's 24 kHz mono mp3 answers are reported to carry
 * (not verified against the live API here); opts.bitrate_kbps overrides and
 * LAME snaps it to the nearest legal MPEG-2 rate (8..160). Input is clipped to [-1, 1]
 * (LAME's float API expects full scale) in AENC_CHUNK steps.
 *
 * Streaming: the first bytes (sent with the first encoded audio, never during open, so
 * open still writes nothing) are an "Info" frame we
 * build here (mp3_info_frame): a silent frame of the stream's own header whose Xing
 * part has only the bytes flag set (value 0xFFFFFFFF: unknown, the stream is still
 * growing; the frame count is absent because a stream cannot go back to fill it in)
 * and whose LAME tag carries the encoder delay (576) and padding 0 (unknown). libavformat
 * (ffmpeg, Chromium) then skips the tag frame and trims delay + its 529-sample decoder
 * delay, so the decoded audio starts exactly at the PCM's first sample and is at most
 * the last frame's padding (< 1 frame, 576 samples at 24 kHz) longer (close drops the
 * trailing frames of LAME's flush that only hold padding; it pads up to ~2 frames). The bytes flag
 * is what makes libavformat treat the frame as a tag (with neither frames nor bytes it
 * decodes the frame as 576 samples of audio); decoders that ignore Info tags decode it
 * as one frame of silence. Every encode step's output is then emitted at once, so bytes
 * leave as soon as LAME completes a frame.
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
#define MP3_TAG_MAX 1441 /* largest layer III frame: MPEG-1 320 kbps at 32 kHz, padded */

typedef struct mp3_state {
    lame_t gf;
    buf file;        /* buffered mode only */
    size_t tag_len;  /* streaming: Info frame in tag[] still to send first; 0 = sent/none */
    uint64_t in_samples; /* samples given to LAME */
    uint64_t frames_out; /* streaming: audio frames emitted */
    size_t frame_left;   /* streaming: bytes of the current frame still to come */
    int unparsed;        /* streaming: a header could not be read: stop counting/trimming */
    uint8_t tag[MP3_TAG_MAX];
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

/* CRC-16/ARC (reflected 0x8005, init 0): the LAME tag's own checksum. */
static uint16_t crc16_arc(const uint8_t *p, size_t n)
{
    uint16_t c = 0;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int b = 0; b < 8; b++) c = (uint16_t)(c & 1 ? (c >> 1) ^ 0xA001 : c >> 1);
    }
    return c;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

#define LAME_TAG_LEN 36  /* "LAME3.100" .. tag CRC */

/* Builds the streaming Info frame into out[MP3_TAG_MAX] for the encoder's version, rate,
 * bit rate and delay; returns its length, 0 if the parameters have no legal frame big
 * enough (then no tag is sent and decoders play the delay, as before).
 * Layout: 4-byte header (protection off, padding off, mono), zero side info (9 bytes
 * MPEG-2/2.5 mono, 17 MPEG-1 mono), "Info", flags = 2 (bytes), bytes, then the 36-byte
 * LAME tag: version[9], revision/method (0/1 = CBR), lowpass/100, peak[4], radio and
 * audiophile gain[2+2], flags/ATH, bit rate, delay(12 bits)|padding(12 bits), misc,
 * mp3 gain, preset[2], music length[4] (0: unknown), music CRC[2], tag CRC[2] (CRC-16
 * of every byte of the frame before it). */
static size_t mp3_info_frame(lame_t gf, uint8_t *out)
{
    static const int kbps1[15] = {0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320};
    static const int kbps2[15] = {0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160};
    static const int rates[3][3] = {{22050, 24000, 16000}, {44100, 48000, 32000}, {11025, 12000, 8000}};
    int ver = lame_get_version(gf); /* 0 MPEG-2 (or 2.5), 1 MPEG-1 */
    int rate = lame_get_out_samplerate(gf), kbps = lame_get_brate(gf);
    if (ver == 0 && rate < 16000) ver = 2; /* LAME reports MPEG-2.5 rates as version 0 */
    if (ver < 0 || ver > 2) return 0;
    int sri = -1;
    for (int i = 0; i < 3; i++)
        if (rates[ver][i] == rate) sri = i;
    if (sri < 0) return 0;
    const int *tab = ver == 1 ? kbps1 : kbps2;
    size_t side = ver == 1 ? 17 : 9;
    size_t crc_at = 4 + side + 4 + 4 + 4 + LAME_TAG_LEN - 2;
    /* The stream's own bit rate if its frame holds the tag, else the next that does. */
    int bri = 1;
    while (bri < 15 && tab[bri] < kbps) bri++;
    size_t len = 0;
    for (; bri < 15; bri++) {
        len = (size_t)((ver == 1 ? 144000 : 72000) * tab[bri] / rate);
        if (len >= crc_at + 2) break;
    }
    if (bri == 15 || len > MP3_TAG_MAX) return 0;
    memset(out, 0, len);
    out[0] = 0xFF;
    out[1] = (uint8_t)(0xE0 | (ver == 1 ? 3 : ver == 0 ? 2 : 0) << 3 | 1 << 1 | 1); /* L3, no CRC */
    out[2] = (uint8_t)(bri << 4 | sri << 2);
    out[3] = 3 << 6; /* mono */
    uint8_t *x = out + 4 + side;
    memcpy(x, "Info", 4);
    put_be32(x + 4, 2u);          /* flags: bytes only */
    put_be32(x + 8, 0xFFFFFFFFu); /* bytes: unknown */
    uint8_t *l = x + 12;
    const char *v = get_lame_very_short_version();
    memcpy(l, "LAME     ", 9);
    if (v && !strncmp(v, "LAME", 4)) memcpy(l, v, strnlen(v, 9));
    l[9] = 0x01; /* tag revision 0, CBR */
    int lp = lame_get_lowpassfreq(gf) / 100;
    l[10] = (uint8_t)(lp < 0 ? 0 : lp > 255 ? 255 : lp);
    l[20] = (uint8_t)(kbps > 255 ? 255 : kbps);
    int delay = lame_get_encoder_delay(gf);
    if (delay < 0 || delay > 4095) return 0;
    l[21] = (uint8_t)(delay >> 4);
    l[22] = (uint8_t)((delay & 15) << 4); /* padding 0: unknown */
    uint16_t crc = crc16_arc(out, crc_at);
    out[crc_at] = (uint8_t)(crc >> 8);
    out[crc_at + 1] = (uint8_t)crc;
    return len;
}

/* Layer III frame length from its 4-byte header; 0 if it is not one. */
static size_t mp3_frame_len(const uint8_t *h)
{
    static const int kbps1[15] = {0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320};
    static const int kbps2[15] = {0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160};
    static const int rates1[3] = {44100, 48000, 32000};
    if (h[0] != 0xFF || (h[1] & 0xE0) != 0xE0 || ((h[1] >> 1) & 3) != 1) return 0;
    int ver = (h[1] >> 3) & 3, bri = h[2] >> 4, sri = (h[2] >> 2) & 3;
    if (ver == 1 || bri == 0 || bri == 15 || sri == 3) return 0;
    int rate = rates1[sri] >> (ver == 3 ? 0 : ver == 2 ? 1 : 2);
    int kbps = ver == 3 ? kbps1[bri] : kbps2[bri];
    return (size_t)((ver == 3 ? 144000 : 72000) * kbps / rate + ((h[2] >> 1) & 1));
}

/* Streaming: walks the frames in b[0..n) (continuing one split across calls) and returns
 * how many bytes to send so that at most max_frames audio frames go out in all. */
static size_t mp3_count(mp3_state *m, const uint8_t *b, size_t n, uint64_t max_frames)
{
    size_t pos = 0;
    while (pos < n && !m->unparsed) {
        if (m->frame_left) {
            size_t k = n - pos < m->frame_left ? n - pos : m->frame_left;
            pos += k;
            m->frame_left -= k;
            continue;
        }
        if (m->frames_out >= max_frames) return pos;
        size_t len = n - pos >= 4 ? mp3_frame_len(b + pos) : 0;
        if (!len) m->unparsed = 1; /* LAME emits whole frames; never seen, but stay safe */
        m->frames_out++;
        m->frame_left = len;
    }
    return n;
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
    if (e->opts.streaming) m->tag_len = mp3_info_frame(m->gf, m->tag);
    return 0;
}

/* Streaming: to the writer now; buffered: into the file. */
static int mp3_out(aenc *e, mp3_state *m, const unsigned char *b, size_t n, uint64_t max_frames,
                   char *err, size_t errlen)
{
    if (e->opts.streaming) {
        n = mp3_count(m, b, n, max_frames);
        if (n && m->tag_len) {
            size_t t = m->tag_len;
            m->tag_len = 0;
            int rc = aenc_emit(e, m->tag, t, err, errlen);
            if (rc) return rc;
        }
        return aenc_emit(e, b, n, err, errlen);
    }
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
        m->in_samples += k;
        int rc = mp3_out(e, m, m->out, (size_t)got, UINT64_MAX, err, errlen);
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
    /* Streaming: frames whose decoded samples all lie past the input's end (after the
     * decoder trims delay + 529) are dropped, so the padding stays under one frame. A
     * layer III frame's output depends only on itself and earlier frames (the bit
     * reservoir points backwards, the MDCT overlap comes from the previous granule). */
    uint64_t spf = (uint64_t)lame_get_framesize(m->gf);
    uint64_t delay = (uint64_t)lame_get_encoder_delay(m->gf) + 529;
    uint64_t need = spf ? (m->in_samples + delay + spf - 1) / spf : UINT64_MAX;
    int rc = mp3_out(e, m, m->out, (size_t)got, need, err, errlen);
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
