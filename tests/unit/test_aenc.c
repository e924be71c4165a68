/* test_aenc.c — every encoder, fed with awkward chunk sequences, produces what its
 * format promises: wav header fields and exact sizes, pcm bytes equal to the s16 of the
 * input, names/content types, callback refusal latching ERR_CANCEL, ffprobe/ffmpeg's
 * view of every format, and AAC's tail rule (aac_tail, aac_short). */
#include "ut.h"
#include "audio/aenc.h"
#include "audio/enc_internal.h"
#include "core/buf.h"
#include "core/err.h"

#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#define RATE 24000

typedef struct sink {
    buf out;
    int calls;
    int refuse_after; /* refuse the call with this index (1-based); 0 = never */
} sink;

static int sink_write(void *user, const void *b, size_t n)
{
    sink *s = user;
    s->calls++;
    if (s->refuse_after && s->calls >= s->refuse_after) return 1;
    return buf_append(&s->out, b, n) ? 1 : 0;
}

/* A 220 Hz tone with a little overdrive so clipping is exercised. */
static float *tone(size_t n, float amp)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = amp * sinf(2.0f * 3.14159265f * 220.0f * (float)i / RATE);
    return x;
}

/* Chunk-size sequences: 0, 1, odd, typical, and everything at once. */
static const size_t seq_mixed[] = {0, 1, 0, 7, 333, 4096, 1, 12001, 0, 2048, 999};
#define NSEQ (sizeof seq_mixed / sizeof seq_mixed[0])

/* Encodes x[0..n) in chunks following seq (cycled), or at once when seq == NULL. */
static void encode(ut_ctx *t, aenc_format f, int streaming, const float *x, size_t n,
                   const size_t *seq, size_t nseq, sink *s)
{
    char err[256] = "";
    aenc *e = NULL;
    aenc_opts o = {RATE, streaming, 0};
    buf_init(&s->out, (size_t)256 << 20);
    s->calls = 0;
    s->refuse_after = 0;
    int rc = aenc_open(&e, f, &o, sink_write, s, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "aenc_open(%s): %d %s", aenc_format_name(f), rc, err);
    size_t off = 0, k = 0;
    while (off < n) {
        size_t c = seq ? seq[k++ % nseq] : n;
        if (c > n - off) c = n - off;
        rc = aenc_write(e, x + off, c, err, sizeof err);
        if (rc) ut_fail(t, __FILE__, __LINE__, "aenc_write(%zu): %d %s", c, rc, err);
        off += c;
        if (seq && k % 3 == 0) UT_EQ_INT(t, 0, aenc_flush(e, err, sizeof err));
    }
    rc = aenc_close(e, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "aenc_close: %d %s", rc, err);
    aenc_free(e);
}

static uint32_t le32(const char *p)
{
    const uint8_t *u = (const uint8_t *)p;
    return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
}
static uint16_t le16(const char *p)
{
    const uint8_t *u = (const uint8_t *)p;
    return (uint16_t)(u[0] | u[1] << 8);
}

static void t_names(ut_ctx *t)
{
    const char *n[] = {"mp3", "opus", "aac", "flac", "wav", "pcm"};
    const char *ct[] = {"audio/mpeg", "audio/opus", "audio/aac", "audio/flac", "audio/wav", "audio/pcm"};
    for (int i = 0; i < AENC_NFORMATS; i++) {
        UT_EQ_INT(t, i, aenc_format_from_name(n[i]));
        UT_EQ_STR(t, n[i], aenc_format_name((aenc_format)i));
        UT_EQ_STR(t, ct[i], aenc_content_type((aenc_format)i));
    }
    UT_EQ_INT(t, AENC_MP3, aenc_format_from_name("MP3"));
    UT_EQ_INT(t, -1, aenc_format_from_name("ogg"));
    UT_EQ_INT(t, -1, aenc_format_from_name(""));
    UT_EQ_INT(t, -1, aenc_format_from_name(NULL));
    for (int i = 0; i < AENC_NFORMATS; i++) UT_CHECK(t, aenc_available((aenc_format)i));
    UT_CHECK(t, !aenc_available(AENC_NFORMATS));
}

static void t_f2s16(ut_ctx *t)
{
    const float in[] = {0.0f, 1.0f, -1.0f, 2.5f, -7.0f, 0.5f, -0.5f, 1.0f / 65534.0f, NAN};
    const int16_t exp[] = {0, 32767, -32767, 32767, -32767, 16384, -16384, 0, 0};
    int16_t out[9];
    aenc_f2s16(in, out, 9);
    for (int i = 0; i < 9; i++) UT_EQ_INT(t, exp[i], out[i]);
}

static void check_pcm_bytes(ut_ctx *t, const char *p, const float *x, size_t n)
{
    int16_t s;
    for (size_t i = 0; i < n; i++) {
        aenc_f2s16(x + i, &s, 1);
        int16_t got = (int16_t)le16(p + 2 * i);
        if (got != s) ut_fail(t, __FILE__, __LINE__, "sample %zu: expected %d, got %d", i, s, got);
    }
}

static void t_pcm(ut_ctx *t)
{
    size_t n = 10 * RATE + 17;
    float *x = tone(n, 1.3f);
    for (int mode = 0; mode < 3; mode++) {
        sink s;
        encode(t, AENC_PCM, mode == 1, x, n, mode == 2 ? NULL : seq_mixed, NSEQ, &s);
        UT_EQ_INT(t, 2 * n, s.out.len);
        check_pcm_bytes(t, s.out.data, x, n);
        buf_free(&s.out);
    }
    free(x);
}

static void check_wav_fmt(ut_ctx *t, const char *p)
{
    UT_CHECK(t, !memcmp(p, "RIFF", 4));
    UT_CHECK(t, !memcmp(p + 8, "WAVEfmt ", 8));
    UT_EQ_INT(t, 16, le32(p + 16));
    UT_EQ_INT(t, 1, le16(p + 20));
    UT_EQ_INT(t, 1, le16(p + 22));
    UT_EQ_INT(t, RATE, le32(p + 24));
    UT_EQ_INT(t, RATE * 2, le32(p + 28));
    UT_EQ_INT(t, 2, le16(p + 32));
    UT_EQ_INT(t, 16, le16(p + 34));
    UT_CHECK(t, !memcmp(p + 36, "data", 4));
}

static void t_wav_buffered(ut_ctx *t)
{
    size_t n = 3 * RATE + 5;
    float *x = tone(n, 0.8f);
    sink s;
    encode(t, AENC_WAV, 0, x, n, seq_mixed, NSEQ, &s);
    UT_EQ_INT(t, 44 + 2 * n, s.out.len);
    check_wav_fmt(t, s.out.data);
    UT_EQ_INT(t, 36 + 2 * n, le32(s.out.data + 4));
    UT_EQ_INT(t, 2 * n, le32(s.out.data + 40));
    check_pcm_bytes(t, s.out.data + 44, x, n);
    UT_EQ_INT(t, 2, s.calls); /* header + data, both at close */
    buf_free(&s.out);
    free(x);
}

static void t_wav_streaming(ut_ctx *t)
{
    size_t n = 2 * RATE + 3;
    float *x = tone(n, 0.8f);
    sink s;
    encode(t, AENC_WAV, 1, x, n, seq_mixed, NSEQ, &s);
    UT_EQ_INT(t, 44 + 2 * n, s.out.len);
    check_wav_fmt(t, s.out.data);
    UT_EQ_INT(t, 0xFFFFFFFFu, le32(s.out.data + 4));
    UT_EQ_INT(t, 0xFFFFFFFFu, le32(s.out.data + 40));
    check_pcm_bytes(t, s.out.data + 44, x, n);
    buf_free(&s.out);
    free(x);
}

static void t_wav_empty(ut_ctx *t)
{
    for (int streaming = 0; streaming < 2; streaming++) {
        sink s;
        encode(t, AENC_WAV, streaming, NULL, 0, NULL, 0, &s);
        UT_EQ_INT(t, 44, s.out.len);
        check_wav_fmt(t, s.out.data);
        UT_EQ_INT(t, 36, le32(s.out.data + 4));
        UT_EQ_INT(t, 0, le32(s.out.data + 40));
        buf_free(&s.out);
    }
}

/* The writer refusing once makes the encoder dead: ERR_CANCEL from then on. */
static void t_refuse(ut_ctx *t)
{
    for (int f = 0; f < AENC_NFORMATS; f++) {
        if (!aenc_available((aenc_format)f)) continue;
        char err[256];
        sink s = {.refuse_after = 1};
        buf_init(&s.out, 1 << 20);
        aenc *e = NULL;
        aenc_opts o = {RATE, 1, 0};
        UT_EQ_INT(t, 0, aenc_open(&e, (aenc_format)f, &o, sink_write, &s, err, sizeof err));
        float *x = tone(RATE, 0.5f);
        int rc = 0;
        for (int i = 0; i < 10 && !rc; i++) rc = aenc_write(e, x, RATE, err, sizeof err);
        if (!rc) rc = aenc_close(e, err, sizeof err);
        UT_EQ_INT(t, ERR_CANCEL, rc);
        UT_EQ_INT(t, ERR_CANCEL, aenc_write(e, x, 10, err, sizeof err));
        UT_EQ_INT(t, ERR_CANCEL, aenc_close(e, err, sizeof err));
        aenc_free(e);
        free(x);
        buf_free(&s.out);
    }
}

static void t_bad_args(ut_ctx *t)
{
    char err[256];
    aenc *e = (aenc *)1;
    sink s;
    aenc_opts o = {RATE, 0, 0};
    UT_EQ_INT(t, ERR_INVAL, aenc_open(&e, AENC_NFORMATS, &o, sink_write, &s, err, sizeof err));
    UT_CHECK(t, e == NULL);
    o.sample_rate = 0;
    UT_EQ_INT(t, ERR_INVAL, aenc_open(&e, AENC_WAV, &o, sink_write, &s, err, sizeof err));
    o.sample_rate = RATE;
    UT_EQ_INT(t, ERR_INVAL, aenc_open(&e, AENC_WAV, &o, NULL, &s, err, sizeof err));
    o.bitrate_kbps = 100000;
    UT_EQ_INT(t, ERR_INVAL, aenc_open(&e, AENC_MP3, &o, sink_write, &s, err, sizeof err));
    o.bitrate_kbps = 0;
    /* every format: write after close is refused, close twice is harmless, NULL samples refused */
    for (int f = 0; f < AENC_NFORMATS; f++) {
        sink k = {0};
        buf_init(&k.out, 1 << 20);
        float x[8] = {0};
        UT_EQ_INT(t, 0, aenc_open(&e, (aenc_format)f, &o, sink_write, &k, err, sizeof err));
        UT_EQ_INT(t, ERR_INVAL, aenc_write(e, NULL, 8, err, sizeof err));
        UT_EQ_INT(t, 0, aenc_write(e, x, 8, err, sizeof err));
        UT_EQ_INT(t, 0, aenc_close(e, err, sizeof err));
        size_t len = k.out.len;
        UT_CHECK(t, len > 0);
        UT_EQ_INT(t, 0, aenc_close(e, err, sizeof err));
        UT_EQ_INT(t, ERR_INVAL, aenc_write(e, x, 8, err, sizeof err));
        UT_EQ_INT(t, len, k.out.len);
        aenc_free(e);
        buf_free(&k.out);
    }
    aenc_free(NULL);
}


/* ---- ffprobe checks for every format ---------------------------------------------- */

typedef struct probe {
    char codec[32];
    int rate, channels;
    double duration; /* ffprobe's format duration in seconds, -1 if it gives none */
    long decoded;    /* samples ffmpeg decodes (at RATE), -1 on failure */
} probe;

/* Writes bytes to a temp file, asks ffprobe about it and decodes it with ffmpeg. */
static int run_probe(const void *data, size_t n, probe *p)
{
    char path[] = "/tmp/ut_aenc_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return -1;
    FILE *f = fdopen(fd, "wb");
    if (!f) { close(fd); return -1; }
    fwrite(data, 1, n, f);
    fclose(f);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "ffprobe -v error -show_entries stream=codec_name,sample_rate,channels:format=duration "
             "-of default=nw=1 %s 2>&1", path);
    FILE *pp = popen(cmd, "r");
    memset(p, 0, sizeof *p);
    p->duration = -1;
    p->decoded = -1;
    char line[256];
    while (pp && fgets(line, sizeof line, pp)) {
        if (sscanf(line, "codec_name=%31s", p->codec) == 1) continue;
        if (sscanf(line, "sample_rate=%d", &p->rate) == 1) continue;
        if (sscanf(line, "channels=%d", &p->channels) == 1) continue;
        if (sscanf(line, "duration=%lf", &p->duration) == 1) continue;
    }
    int st = pp ? pclose(pp) : -1;
    snprintf(cmd, sizeof cmd, "ffmpeg -v error -i %s -f s16le -ac 1 -ar %d - 2>/dev/null | wc -c",
             path, RATE);
    pp = popen(cmd, "r");
    long bytes = -1;
    if (pp && fscanf(pp, "%ld", &bytes) == 1) p->decoded = bytes / 2;
    if (pp) pclose(pp);
    unlink(path);
    return st;
}

typedef struct fmt_expect {
    aenc_format f;
    const char *codec;
    int rate;   /* what ffprobe reports (Opus always decodes at 48 kHz) */
    int delay;  /* the codec's fixed encoder delay in samples where the stream cannot
                   signal it (decoders play it): LAME 576 + 529 (buffered files and
                   streams carry an Info tag instead: see gapless/stream_tag), AAC
                   priming 1024 (raw ADTS has no field for it: see enc_aac.c; this
                   test's tone ends loud, so AAC keeps its last packet here; a silent
                   tail decodes within one frame: see aac_tail) */
    int frame;  /* frame length in samples at 24 kHz: padding of the last frame */
    int gapless; /* buffered files carry a tag (LAME "Info") that makes decoders trim
                    delay and padding: the decoded length is then exact */
    int guess;  /* ffprobe only estimates the duration from the bit rate (raw ADTS has
                   no length field): the decoded length is the measure, not that */
    int stream_tag; /* streamed files open with a tag that trims the delay (mp3: an Info
                       frame with the LAME delay, padding unknown): decoded length is
                       the PCM's plus at most one frame of padding */
} fmt_expect;

static const fmt_expect expects[] = {
    {AENC_MP3, "mp3", RATE, 1105, 576, 1, 0, 1},
    {AENC_OPUS, "opus", 48000, 0, 480, 0, 0, 0},
    {AENC_AAC, "aac", RATE, 1024, 1024, 0, 1, 0},
    {AENC_FLAC, "flac", RATE, 0, 0, 0, 0, 0},
    {AENC_WAV, "pcm_s16le", RATE, 0, 0, 0, 0, 0},
    {AENC_PCM, NULL, RATE, 0, 0, 0, 0, 0},
};

/* Deterministic "fuzzed" chunk sizes: 0, 1, odd, and up to ~3 s at once. */
static size_t *random_seq(size_t count, unsigned seed)
{
    size_t *q = malloc(count * sizeof *q);
    for (size_t i = 0; i < count; i++) {
        seed = seed * 1103515245u + 12345u;
        unsigned r = (seed >> 8) % 100;
        q[i] = r < 10 ? 0 : r < 20 ? 1 : r < 80 ? (seed >> 4) % 5000 | 1 : (seed >> 4) % 72000;
    }
    return q;
}

static void t_ffprobe(ut_ctx *t)
{
    size_t nshort = 3 * RATE + 123, nlong = 10 * RATE + 77;
    float *x = tone(nlong, 1.2f);
    size_t *rnd = random_seq(64, 7);
    for (size_t i = 0; i < sizeof expects / sizeof expects[0]; i++) {
        const fmt_expect *fe = &expects[i];
        if (!fe->codec) continue;
        if (!aenc_available(fe->f)) ut_fail(t, __FILE__, __LINE__, "%s not available", aenc_format_name(fe->f));
        /* mode: 0 buffered mixed chunks, 1 streamed mixed, 2 streamed random, 3 buffered
         * 10 s at once, 4 streamed 10 s at once */
        for (int mode = 0; mode < 5; mode++) {
            int streaming = mode == 1 || mode == 2 || mode == 4;
            size_t n = mode >= 3 ? nlong : nshort;
            const size_t *seq = mode >= 3 ? NULL : mode == 2 ? rnd : seq_mixed;
            sink s;
            encode(t, fe->f, streaming, x, n, seq, mode == 2 ? 64 : NSEQ, &s);
            probe p;
            int st = run_probe(s.out.data, s.out.len, &p);
            buf_free(&s.out);
            long extra = p.decoded - (long)n;
            long max_extra = fe->gapless && !streaming ? 0
                             : fe->stream_tag && streaming ? fe->frame - 1
                                                           : fe->delay + fe->frame;
            if (st || strcmp(p.codec, fe->codec) || p.rate != fe->rate || p.channels != 1 ||
                extra < 0 || extra > max_extra ||
                (p.duration >= 0 && !fe->guess && fabs(p.duration - (double)p.decoded / RATE) >
                                        (double)(fe->frame + fe->delay) / RATE + 1e-3) ||
                (!streaming && p.duration < 0))
                ut_fail(t, __FILE__, __LINE__,
                        "%s mode %d: expected codec=%s rate=%d ch=1 decoded=%zu..%zu, ffprobe "
                        "duration near decoded; got status %d codec=%s rate=%d ch=%d decoded=%ld "
                        "duration=%.4f", aenc_format_name(fe->f), mode, fe->codec, fe->rate, n,
                        n + (size_t)max_extra, st, p.codec, p.rate, p.channels,
                        p.decoded, p.duration);
        }
    }
    free(rnd);
    free(x);
}

/* Decodes bytes with ffmpeg to s16 at rate into *out (caller frees); returns samples, -1. */
static long ffmpeg_decode(const void *data, size_t n, const char *fmt, int rate, int16_t **out)
{
    char path[] = "/tmp/ut_aenc_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return -1;
    FILE *f = fdopen(fd, "wb");
    if (!f) { close(fd); return -1; }
    fwrite(data, 1, n, f);
    fclose(f);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ffmpeg -v error -f %s -i %s -f s16le -ac 1 -ar %d - 2>/dev/null", fmt,
             path, rate);
    FILE *pp = popen(cmd, "r");
    size_t cap = (size_t)rate * 20;
    *out = malloc(cap * sizeof **out);
    long got = pp ? (long)fread(*out, sizeof **out, cap, pp) : -1;
    if (pp) pclose(pp);
    unlink(path);
    return got;
}

/* A streamed mp3 opens with an Info frame whose LAME tag carries LAME's encoder delay
 * (576) and no frame count; ffmpeg then decodes it aligned with the input (lag 0, found by
 * cross-correlation on a gliding, non-periodic signal) and at most one frame longer. */
static void t_mp3_stream_tag(ut_ctx *t)
{
    size_t n = 2 * RATE + 311;
    float *x = malloc(n * sizeof *x);
    double ph = 0;
    for (size_t i = 0; i < n; i++) {
        double tt = (double)i / RATE, f0 = 120 + 60 * sin(2 * M_PI * 0.7 * tt);
        ph += 2 * M_PI * f0 / RATE;
        x[i] = (float)(0.4 * (0.5 + 0.5 * sin(2 * M_PI * 4 * tt)) * (sin(ph) + 0.5 * sin(2.7 * ph)));
    }
    sink s;
    encode(t, AENC_MP3, 1, x, n, seq_mixed, NSEQ, &s);
    const uint8_t *b = (const uint8_t *)s.out.data;
    UT_CHECK(t, s.out.len > 600);
    /* MPEG-2 layer III, no CRC, 160 kbps, 24 kHz, mono: a 480-byte frame */
    UT_EQ_INT(t, 0xFFF3, b[0] << 8 | b[1]);
    UT_EQ_INT(t, 0xE4, b[2] & 0xFC); /* bit rate index 14, rate index 1 */
    UT_CHECK(t, !memcmp(b + 13, "Info", 4));
    UT_EQ_INT(t, 2, b[20]); /* flags: bytes only, no frame count */
    UT_CHECK(t, !memcmp(b + 25, "LAME", 4));
    UT_EQ_INT(t, 576, b[25 + 21] << 4 | b[25 + 22] >> 4);        /* encoder delay */
    UT_EQ_INT(t, 0, (b[25 + 22] & 15) << 8 | b[25 + 23]);         /* padding: unknown */
    UT_EQ_INT(t, 0xFFF3, b[480] << 8 | b[481]);                   /* audio follows the tag */
    int16_t *d = NULL;
    long nd = ffmpeg_decode(s.out.data, s.out.len, "mp3", RATE, &d);
    buf_free(&s.out);
    if (nd < (long)n || nd >= (long)n + 576)
        ut_fail(t, __FILE__, __LINE__, "decoded %ld samples, expected %zu..%zu", nd, n, n + 575);
    int best = 9999;
    double bc = -1e300;
    for (int lag = -1200; lag <= 1200; lag++) {
        double c = 0;
        for (size_t i = 1500; i + 1500 < n; i += 2) c += x[i] * d[(long)i + lag];
        if (c > bc) { bc = c; best = lag; }
    }
    UT_EQ_INT(t, 0, best);
    free(d);
    free(x);
}

/* Number of ADTS frames in b (every header checked: sync, length in bounds); -1 if the
 * bytes are not a clean sequence of ADTS frames. */
static long adts_count(const uint8_t *b, size_t n)
{
    size_t off = 0;
    long k = 0;
    while (off < n) {
        if (n - off < 7 || b[off] != 0xFF || (b[off + 1] & 0xF6) != 0xF0) return -1;
        size_t len = (size_t)(b[off + 3] & 3) << 11 | (size_t)b[off + 4] << 3 | b[off + 5] >> 5;
        if (len < 7 || len > n - off) return -1;
        off += len;
        k++;
    }
    return k;
}

/* SNR in dB of d[lag + i] against x[i] over i in [from, to). */
static double snr_db(const float *x, const int16_t *d, long nd, long lag, size_t from, size_t to)
{
    double s = 0, e = 0;
    for (size_t i = from; i < to; i++) {
        double y = (long)i + lag < nd ? d[(long)i + lag] / 32768.0 : 0;
        s += (double)x[i] * x[i];
        e += (y - x[i]) * (y - x[i]);
    }
    return 10 * log10(s / (e + 1e-30));
}

/* The AAC tail rule (enc_aac.c): raw ADTS decodes to 1024 priming samples + the PCM +
 * padding, and the last packet alone carries the last input frame. When that frame is
 * silent (peak below -50 dBFS: speech's trailing pause) close drops the packet, so the
 * file decodes to N..N+1023 samples in ceil(N/1024) packets; a loud last frame keeps it
 * (N+1024..N+2047, one packet more). Voiced content then silence or a tail tone, N on
 * both sides of frame boundaries, streamed and not, fuzzed chunk sizes; the content's
 * SNR is the same whichever way the tail goes (dropping is an exact truncation). */
static void t_aac_tail(ut_ctx *t)
{
    enum { K = 20, TAIL = 2400 };
    static const long ns[] = {K * 1024 - 1, K * 1024, K * 1024 + 1, 2 * K * 1024 + 517};
    /* tail kinds: level of the last TAIL samples (noise: random sign at that level, so
     * even a one-sample last frame has it), and whether the packet stays */
    static const struct { const char *name; float peak; int tone; int kept; } tails[] = {
        {"digital silence", 0.0f, 0, 0},
        {"-60 dBFS noise", 0.001f, 0, 0},
        {"-45 dBFS noise", 0.0056f, 0, 1},
        {"-6 dBFS tone", 0.5f, 1, 1},
    };
    size_t nmax = 2 * K * 1024 + 517;
    float *x = malloc(nmax * sizeof *x);
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
        size_t *rnd = random_seq(48, 11 + (unsigned)ni);
        size_t n = (size_t)ns[ni], body = n - TAIL;
        int16_t *ref = NULL; /* decoded silent-tail file */
        for (size_t ti = 0; ti < sizeof tails / sizeof tails[0]; ti++) {
            double ph = 0;
            unsigned seed = 5;
            for (size_t i = 0; i < n; i++) {
                double tt = (double)i / RATE, f0 = 120 + 60 * sin(2 * M_PI * 0.7 * tt);
                ph += 2 * M_PI * f0 / RATE;
                seed = seed * 1103515245u + 12345u;
                double r = 2.0 * ((double)(seed >> 9) / (double)(1u << 23)) - 1.0;
                x[i] = i < body ? (float)(0.4 * (0.5 + 0.5 * sin(2 * M_PI * 4 * tt)) *
                                          (sin(ph) + 0.5 * sin(2.7 * ph)))
                       : tails[ti].tone ? tails[ti].peak * sinf(0.3f * (float)i)
                                        : (float)(r < 0 ? -tails[ti].peak : tails[ti].peak);
            }
            /* mode 0: buffered, mixed chunks; 1: streamed, fuzzed chunk sizes */
            for (int mode = 0; mode < 2; mode++) {
                sink s;
                encode(t, AENC_AAC, mode, x, n, mode ? rnd : seq_mixed, mode ? 48 : NSEQ, &s);
                long packets = adts_count((const uint8_t *)s.out.data, s.out.len);
                int16_t *d = NULL;
                long nd = ffmpeg_decode(s.out.data, s.out.len, "aac", RATE, &d);
                buf_free(&s.out);
                long want_packets = (long)((n + 1023) / 1024) + tails[ti].kept;
                long lo = (long)n + (tails[ti].kept ? 1024 : 0), hi = lo + 1023;
                if (packets != want_packets || nd < lo || nd > hi)
                    ut_fail(t, __FILE__, __LINE__, "N=%zu %s mode %d: expected %ld packets, %ld..%ld "
                            "decoded samples; got %ld packets, %ld samples", n, tails[ti].name, mode,
                            want_packets, lo, hi, packets, nd);
                /* content against the input (after the priming-affected first frame), and
                 * the decoded samples up to two frames before the tail bit-identical to the
                 * silent-tail file's: the tail (and the packet dropped) changes nothing before */
                double snr = snr_db(x, d, nd, 1024, 1024, body);
                if (snr < 25)
                    ut_fail(t, __FILE__, __LINE__, "N=%zu %s mode %d: content SNR %.2f dB, expected >= 25",
                            n, tails[ti].name, mode, snr);
                long same = 1024 + (long)body - 2048;
                if (!ref) {
                    ref = d;
                    d = NULL;
                } else {
                    for (long k = 0; k < same; k++)
                        if (d[k] != ref[k]) {
                            ut_fail(t, __FILE__, __LINE__, "N=%zu %s mode %d: decoded sample %ld is %d, "
                                    "the silent-tail file's is %d", n, tails[ti].name, mode, k, d[k], ref[k]);
                            break;
                        }
                }
                free(d);
            }
        }
        free(ref);
        free(rnd);
    }
    free(x);
}

/* Very short inputs (one frame or less) that are silent: the file is the priming
 * packet alone (1024 samples, N <= 1024 < N + 1024); a loud one keeps its packet. */
static void t_aac_short(ut_ctx *t)
{
    static const size_t ns[] = {1, 7, 1023, 1024};
    float *x = calloc(1024, sizeof *x);
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
        for (int loud = 0; loud < 2; loud++) {
            size_t n = ns[ni];
            for (size_t i = 0; i < n; i++) x[i] = loud ? 0.5f * sinf(0.2f * (float)i) : 0.0f;
            x[n - 1] = loud ? 0.5f : 0.0f;
            sink s;
            encode(t, AENC_AAC, 1, x, n, seq_mixed, NSEQ, &s);
            long packets = adts_count((const uint8_t *)s.out.data, s.out.len);
            int16_t *d = NULL;
            long nd = ffmpeg_decode(s.out.data, s.out.len, "aac", RATE, &d);
            buf_free(&s.out);
            free(d);
            if (packets != 1 + loud || nd != 1024 * (1 + loud))
                ut_fail(t, __FILE__, __LINE__, "N=%zu %s: expected %d packets, %d samples; got %ld, %ld",
                        n, loud ? "loud" : "silent", 1 + loud, 1024 * (1 + loud), packets, nd);
        }
    free(x);
}

/* Streamed mp3 at every MPEG version (2.5: 8/12 kHz, 2: 16/22.05 kHz, 1: 32..48 kHz) and
 * at a bit rate too low to hold the tag in a frame of its own rate (8 kbps): ffmpeg's
 * decoded length is the input's plus less than one frame (576 or 1152 samples). */
static void t_mp3_stream_rates(ut_ctx *t)
{
    static const int rates[] = {8000, 12000, 16000, 22050, 32000, 44100, 48000};
    static const int kbps[] = {0, 8};
    for (size_t r = 0; r < sizeof rates / sizeof rates[0]; r++)
        for (size_t b = 0; b < 2; b++) {
            int rate = rates[r], spf = rate >= 32000 ? 1152 : 576;
            size_t n = (size_t)rate + 77;
            float *x = malloc(n * sizeof *x);
            for (size_t i = 0; i < n; i++) x[i] = 0.3f * sinf(0.05f * (float)i + 1e-5f * (float)i * (float)i);
            char err[256] = "";
            sink s = {0};
            buf_init(&s.out, 1 << 22);
            aenc *e = NULL;
            aenc_opts o = {rate, 1, kbps[b]};
            UT_EQ_INT(t, 0, aenc_open(&e, AENC_MP3, &o, sink_write, &s, err, sizeof err));
            for (size_t off = 0; off < n; off += 777)
                UT_EQ_INT(t, 0, aenc_write(e, x + off, n - off < 777 ? n - off : 777, err, sizeof err));
            UT_EQ_INT(t, 0, aenc_close(e, err, sizeof err));
            aenc_free(e);
            int16_t *d = NULL;
            long nd = ffmpeg_decode(s.out.data, s.out.len, "mp3", rate, &d);
            buf_free(&s.out);
            free(d);
            free(x);
            if (nd < (long)n || nd >= (long)n + spf)
                ut_fail(t, __FILE__, __LINE__, "%d Hz %d kbps: decoded %ld samples, expected %zu..%zu",
                        rate, kbps[b], nd, n, n + (size_t)spf - 1);
        }
}

/* Open then close with no audio at every format, common rate and mode: close succeeds
 * (libopusenc used to abort the process on empty 48 kHz input: see enc_opus.c). */
static void t_empty_all(ut_ctx *t)
{
    static const int rates[] = {24000, 48000, 16000, 44100};
    for (int f = 0; f < AENC_NFORMATS; f++)
        for (size_t r = 0; r < sizeof rates / sizeof rates[0]; r++)
            for (int st = 0; st < 2; st++) {
                char err[256] = "";
                sink s = {0};
                buf_init(&s.out, 1 << 20);
                aenc *e = NULL;
                aenc_opts o = {rates[r], st, 0};
                int rc = aenc_open(&e, (aenc_format)f, &o, sink_write, &s, err, sizeof err);
                if (rc == 0) {
                    UT_EQ_INT(t, 0, aenc_flush(e, err, sizeof err));
                    rc = aenc_close(e, err, sizeof err);
                    if (rc)
                        ut_fail(t, __FILE__, __LINE__, "%s %d Hz streaming=%d: close %d %s",
                                aenc_format_name((aenc_format)f), rates[r], st, rc, err);
                }
                aenc_free(e);
                buf_free(&s.out);
            }
}

/* Streaming formats put audio on the wire before close: after 0.5 s of input and a
 * flush, more than the headers has gone out. FLAC/AAC/MP3 need whole frames, so
 * 0.5 s (many frames) is enough for all. */
static void t_prompt(ut_ctx *t)
{
    float *x = tone(RATE / 2, 0.5f);
    for (int f = 0; f < AENC_NFORMATS; f++) {
        char err[256];
        sink s = {0};
        buf_init(&s.out, 1 << 20);
        aenc *e = NULL;
        aenc_opts o = {RATE, 1, 0};
        UT_EQ_INT(t, 0, aenc_open(&e, (aenc_format)f, &o, sink_write, &s, err, sizeof err));
        UT_EQ_INT(t, 0, (int)s.out.len); /* nothing during open */
        for (int k = 0; k < 6; k++)
            UT_EQ_INT(t, 0, aenc_write(e, x + k * (RATE / 12), RATE / 12, err, sizeof err));
        UT_EQ_INT(t, 0, aenc_flush(e, err, sizeof err));
        size_t early = s.out.len;
        UT_EQ_INT(t, 0, aenc_close(e, err, sizeof err));
        aenc_free(e);
        /* at least half of what the whole stream carries has left before close */
        if (early * 2 < s.out.len)
            ut_fail(t, __FILE__, __LINE__, "%s: only %zu of %zu bytes before close",
                    aenc_format_name((aenc_format)f), early, s.out.len);
        buf_free(&s.out);
    }
    free(x);
}

/* opts.bitrate_kbps reaches the lossy codecs: the output rate follows the request
 * (mp3 is CBR, so exact up to the last frame; opus/aac within 30 %). */
static void t_bitrate(ut_ctx *t)
{
    const struct { aenc_format f; int kbps; double tol; } cases_[] = {
        {AENC_MP3, 32, 0.05}, {AENC_MP3, 64, 0.05}, {AENC_MP3, 0, 0.05},
        {AENC_OPUS, 24, 0.3}, {AENC_OPUS, 64, 0.3}, {AENC_AAC, 32, 0.3}, {AENC_AAC, 96, 0.3},
    };
    size_t n = 5 * RATE;
    float *x = tone(n, 0.5f);
    /* a tone is too easy for VBR-ish coders; add deterministic noise */
    unsigned seed = 3;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        x[i] += 0.2f * ((float)(seed >> 9) / (float)(1u << 23) - 0.5f);
    }
    for (size_t i = 0; i < sizeof cases_ / sizeof cases_[0]; i++) {
        char err[256];
        sink s = {0};
        buf_init(&s.out, 8 << 20);
        aenc *e = NULL;
        aenc_opts o = {RATE, 1, cases_[i].kbps};
        UT_EQ_INT(t, 0, aenc_open(&e, cases_[i].f, &o, sink_write, &s, err, sizeof err));
        UT_EQ_INT(t, 0, aenc_write(e, x, n, err, sizeof err));
        UT_EQ_INT(t, 0, aenc_close(e, err, sizeof err));
        aenc_free(e);
        int want = cases_[i].kbps ? cases_[i].kbps : 160;
        double got = (double)s.out.len * 8 / ((double)n / RATE) / 1000;
        if (fabs(got - want) > cases_[i].tol * want)
            ut_fail(t, __FILE__, __LINE__, "%s at %d kbps: expected %d kbit/s (+-%.0f%%), got %.1f",
                    aenc_format_name(cases_[i].f), cases_[i].kbps, want, cases_[i].tol * 100, got);
        buf_free(&s.out);
    }
    free(x);
}

/* Freeing an encoder that was never closed (engine error, client gone) must not call
 * the writer: the connection behind it may already be gone. */
static void t_free_unclosed(ut_ctx *t)
{
    float *x = tone(RATE, 0.5f);
    for (int f = 0; f < AENC_NFORMATS; f++) {
        for (int streaming = 0; streaming < 2; streaming++) {
            char err[256];
            sink s = {0};
            buf_init(&s.out, 1 << 20);
            aenc *e = NULL;
            aenc_opts o = {RATE, streaming, 0};
            UT_EQ_INT(t, 0, aenc_open(&e, (aenc_format)f, &o, sink_write, &s, err, sizeof err));
            UT_EQ_INT(t, 0, aenc_write(e, x, RATE - 7, err, sizeof err));
            int calls = s.calls;
            aenc_free(e);
            if (s.calls != calls)
                ut_fail(t, __FILE__, __LINE__, "%s%s: writer called %d time(s) from aenc_free",
                        aenc_format_name((aenc_format)f), streaming ? " streaming" : "", s.calls - calls);
            buf_free(&s.out);
        }
    }
    free(x);
}

/* Ogg Opus structure: OpusHead carries the 24 kHz input rate and a pre-skip, granule
 * positions never go back, and the last granule minus pre-skip is exactly the input
 * length in 48 kHz units (that is what makes decoders trim the padding). */
static void t_opus_granules(ut_ctx *t)
{
    size_t lens[] = {RATE * 2 + 1, 480, 1};
    for (size_t li = 0; li < 3; li++) {
        for (int streaming = 0; streaming < 2; streaming++) {
            size_t n = lens[li];
            float *x = tone(n, 0.5f);
            sink s;
            encode(t, AENC_OPUS, streaming, x, n, seq_mixed, NSEQ, &s);
            const uint8_t *b = (const uint8_t *)s.out.data;
            size_t off = 0, pages = 0;
            int64_t last = -1;
            int preskip = -1, eos = 0;
            while (off + 27 <= s.out.len) {
                UT_CHECK(t, !memcmp(b + off, "OggS", 4));
                int64_t g = 0;
                for (int i = 7; i >= 0; i--) g = (g << 8) | b[off + 6 + i];
                int nseg = b[off + 26];
                size_t body = off + 27 + (size_t)nseg, blen = 0;
                for (int i = 0; i < nseg; i++) blen += b[off + 27 + i];
                UT_CHECK(t, body + blen <= s.out.len);
                if (pages == 0) {
                    UT_CHECK(t, blen >= 19 && !memcmp(b + body, "OpusHead", 8));
                    preskip = le16((const char *)b + body + 10);
                    UT_EQ_INT(t, RATE, le32((const char *)b + body + 12));
                    UT_EQ_INT(t, 1, b[body + 9]);
                }
                if (g != -1) {
                    if (g < last) ut_fail(t, __FILE__, __LINE__, "granule went back: %lld after %lld",
                                          (long long)g, (long long)last);
                    last = g;
                }
                eos = (b[off + 5] & 4) != 0;
                off = body + blen;
                pages++;
            }
            UT_EQ_INT(t, s.out.len, off);
            UT_CHECK(t, eos);
            UT_CHECK(t, preskip > 0);
            UT_EQ_INT(t, (long long)(2 * n), last - preskip);
            buf_free(&s.out);
            free(x);
        }
    }
}

/* Several requests encode at once (the server's workers): each thread runs every format
 * and must get byte-for-byte what a lone encoder produces (no shared mutable state). */
typedef struct par_job {
    const float *x;
    size_t n;
    buf out[AENC_NFORMATS];
    int rc;
} par_job;

static void *par_run(void *arg)
{
    par_job *j = arg;
    for (int f = 0; f < AENC_NFORMATS && !j->rc; f++) {
        char err[256];
        sink s = {0};
        buf_init(&s.out, 16 << 20);
        aenc *e = NULL;
        aenc_opts o = {RATE, f % 2, 0};
        j->rc = aenc_open(&e, (aenc_format)f, &o, sink_write, &s, err, sizeof err);
        for (size_t off = 0; !j->rc && off < j->n; off += 1000)
            j->rc = aenc_write(e, j->x + off, j->n - off < 1000 ? j->n - off : 1000, err, sizeof err);
        if (!j->rc) j->rc = aenc_close(e, err, sizeof err);
        aenc_free(e);
        j->out[f] = s.out;
    }
    return NULL;
}

/* libopusenc picks a random Ogg serial number per stream: blank serial and CRC. */
static void ogg_blank(buf *b)
{
    uint8_t *p = (uint8_t *)b->data;
    size_t off = 0;
    while (off + 27 <= b->len && !memcmp(p + off, "OggS", 4)) {
        memset(p + off + 14, 0, 4);
        memset(p + off + 22, 0, 4);
        size_t nseg = p[off + 26], body = off + 27 + nseg;
        if (body > b->len) return;
        for (size_t i = 0; i < nseg; i++) body += p[off + 27 + i];
        off = body;
    }
}

static void t_threads(ut_ctx *t)
{
    enum { NT = 4 };
    size_t n = RATE + 333;
    float *x = tone(n, 0.7f);
    par_job solo = {x, n, {{0}}, 0}, jobs[NT];
    par_run(&solo);
    UT_EQ_INT(t, 0, solo.rc);
    pthread_t th[NT];
    for (int i = 0; i < NT; i++) {
        jobs[i] = (par_job){x, n, {{0}}, 0};
        UT_EQ_INT(t, 0, pthread_create(&th[i], NULL, par_run, &jobs[i]));
    }
    for (int i = 0; i < NT; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < NT; i++) {
        UT_EQ_INT(t, 0, jobs[i].rc);
        ogg_blank(&jobs[i].out[AENC_OPUS]);
        if (i == 0) ogg_blank(&solo.out[AENC_OPUS]);
        for (int f = 0; f < AENC_NFORMATS; f++) {
            if (jobs[i].out[f].len != solo.out[f].len ||
                memcmp(jobs[i].out[f].data, solo.out[f].data, solo.out[f].len))
                ut_fail(t, __FILE__, __LINE__, "thread %d %s: %zu bytes differ from the lone run's %zu",
                        i, aenc_format_name((aenc_format)f), jobs[i].out[f].len, solo.out[f].len);
            buf_free(&jobs[i].out[f]);
        }
    }
    for (int f = 0; f < AENC_NFORMATS; f++) buf_free(&solo.out[f]);
    free(x);
}

static const ut_case cases[] = {
    {"threads", t_threads},
    {"opus_granules", t_opus_granules},
    {"free_unclosed", t_free_unclosed},
    {"bitrate", t_bitrate},
    {"ffprobe", t_ffprobe},
    {"mp3_stream_tag", t_mp3_stream_tag},
    {"aac_tail", t_aac_tail},
    {"aac_short", t_aac_short},
    {"empty_all", t_empty_all},
    {"mp3_stream_rates", t_mp3_stream_rates},
    {"prompt", t_prompt},
    {"names", t_names},
    {"f2s16", t_f2s16},
    {"pcm", t_pcm},
    {"wav_buffered", t_wav_buffered},
    {"wav_streaming", t_wav_streaming},
    {"wav_empty", t_wav_empty},
    {"refuse", t_refuse},
    {"bad_args", t_bad_args},
};
UT_SUITE(aenc, cases)
