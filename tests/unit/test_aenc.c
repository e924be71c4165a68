/* test_aenc.c — every encoder, fed with awkward chunk sequences, produces what its
 * format promises: wav header fields and exact sizes, pcm bytes equal to the s16 of the
 * input, names/content types, callback refusal latching ERR_CANCEL. */
#include "ut.h"
#include "audio/aenc.h"
#include "audio/enc_internal.h"
#include "core/buf.h"
#include "core/err.h"

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
    UT_CHECK(t, aenc_available(AENC_WAV));
    UT_CHECK(t, aenc_available(AENC_PCM));
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
    aenc_free(NULL);
}


/* ---- ffprobe checks for the compressed formats ------------------------------------ */

typedef struct probe {
    char codec[32];
    int rate, channels;
    double duration; /* format duration in seconds, -1 if ffprobe gave none */
} probe;

/* Writes bytes to a temp file and asks ffprobe; 0 on success. */
static int run_probe(const void *data, size_t n, probe *p, char *path_out, size_t pathlen)
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
    char line[256];
    while (pp && fgets(line, sizeof line, pp)) {
        if (sscanf(line, "codec_name=%31s", p->codec) == 1) continue;
        if (sscanf(line, "sample_rate=%d", &p->rate) == 1) continue;
        if (sscanf(line, "channels=%d", &p->channels) == 1) continue;
        if (sscanf(line, "duration=%lf", &p->duration) == 1) continue;
    }
    int st = pp ? pclose(pp) : -1;
    if (path_out) snprintf(path_out, pathlen, "%s", path);
    else unlink(path);
    return st;
}

typedef struct fmt_expect {
    aenc_format f;
    const char *codec;
    int rate;       /* what ffprobe reports (opus always decodes at 48 kHz) */
    double slack_s; /* allowed duration excess: encoder delay + one frame */
} fmt_expect;

static const fmt_expect expects[] = {
    {AENC_MP3, "mp3", RATE, 0.0},
    {AENC_OPUS, "opus", 48000, 0.0},
    {AENC_WAV, "pcm_s16le", RATE, 0.0},
};

static void t_ffprobe(ut_ctx *t)
{
    size_t n = 3 * RATE + 123;
    float *x = tone(n, 1.2f);
    for (size_t i = 0; i < sizeof expects / sizeof expects[0]; i++) {
        const fmt_expect *fe = &expects[i];
        if (!aenc_available(fe->f)) continue;
        for (int mode = 0; mode < 3; mode++) {
            sink s;
            encode(t, fe->f, mode != 0, x, n, mode == 2 ? NULL : seq_mixed, NSEQ, &s);
            probe p;
            int st = run_probe(s.out.data, s.out.len, &p, NULL, 0);
            fprintf(stderr, "  %s mode %d: %zu bytes codec=%s rate=%d ch=%d dur=%.4f (pcm %.4f)\n",
                    aenc_format_name(fe->f), mode, s.out.len, p.codec, p.rate, p.channels,
                    p.duration, (double)n / RATE);
            UT_EQ_INT(t, 0, st);
            UT_EQ_STR(t, fe->codec, p.codec);
            UT_EQ_INT(t, fe->rate, p.rate);
            UT_EQ_INT(t, 1, p.channels);
            buf_free(&s.out);
        }
    }
    free(x);
}

static const ut_case cases[] = {
    {"ffprobe", t_ffprobe},
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
