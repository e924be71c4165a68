/* fuzz_aenc.c — libFuzzer entry for every audio encoder (audio/aenc.h).
 *
 * Input layout: byte 0 picks the format (mod AENC_NFORMATS), byte 1 the options
 * (bit 0 streaming, bits 1-3 a sample rate from a table that includes rejected ones,
 * bits 4-7 a bit rate from a table that includes 0 and out-of-range ones), byte 2 the
 * writer's behaviour (0 = always accepts, else refuses its byte-2-th call). The rest is
 * a list of operations, 3 bytes each: op byte (low 2 bits: 0/1 write, 2 flush, 3
 * write-then-flush; high 6 bits: the sample pattern) and a 16-bit chunk size that is
 * mapped onto 0, 1, odd, typical and huge (up to the per-input cap). A trailing close
 * (and a write after close) always runs, then free.
 *
 * Checked: open fails only with a negative code and no encoder; no call fails unless the
 * writer refused (clipped garbage is valid input); after a refusal every call returns
 * ERR_CANCEL and the writer is never called again; a write after close is refused;
 * bytes only reach the writer as non-empty buffers. Each input is capped at
 * FZ_MAX_SAMPLES samples in total so an iteration stays in the milliseconds.
 */
#include "audio/aenc.h"
#include "core/err.h"

#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FZ_MAX_SAMPLES 30000 /* total per input (1.25 s at 24 kHz) */
#define FZ_MAX_OPS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Harness-only: says which contract broke (rc and the encoder's reason), then aborts. */
#define FZ_CHECK(c, rc, err)                                                              \
    do {                                                                                  \
        if (!(c)) {                                                                       \
            fprintf(stderr, "fuzz_aenc:%d: %s failed (rc %d: %s)\n", __LINE__, #c, rc, err); \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

typedef struct fz_sink {
    unsigned calls;
    unsigned refuse_at; /* 1-based call index to refuse; 0 = never */
    int refused;
    int after_refusal; /* the writer was called after it refused: a bug */
    int empty;         /* the writer was given 0 bytes: a bug */
    uint64_t bytes;
} fz_sink;

static int fz_write(void *user, const void *b, size_t n)
{
    fz_sink *s = user;
    if (s->refused) s->after_refusal = 1;
    if (n == 0 || !b) s->empty = 1;
    s->calls++;
    if (s->refuse_at && s->calls >= s->refuse_at) {
        s->refused = 1;
        return 1;
    }
    s->bytes += n;
    return 0;
}

/* One sample of pattern p at index i; includes NaN, infinities and out-of-range values. */
static float fz_sample(unsigned p, size_t i, const uint8_t *data, size_t size)
{
    switch (p % 12) {
    case 0: return 0.0f;
    case 1: return NAN;
    case 2: return (i & 1) ? INFINITY : -INFINITY;
    case 3: return (i & 1) ? 1e30f : -1e30f;
    case 4: return (i % 3 == 0) ? 1.0f : (i % 3 == 1) ? -1.0f : 1.0000001f;
    case 5: return 1e-40f; /* denormal */
    case 6: return 0.8f * sinf((float)i * 0.0576f);
    case 7: return 4.0f * sinf((float)i * 0.31f); /* hard clipping */
    case 8: return size ? ((float)data[i % size] - 128.0f) / 64.0f : 0.0f; /* noise, up to +-2 */
    case 9: return (i & 64) ? 0.999f : -0.999f; /* square */
    case 10: return (i % 997 == 0) ? NAN : 0.3f * sinf((float)i * 0.01f);
    default: return -0.0f;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int rates[8] = {24000, 8000, 16000, 22050, 44100, 48000, 7999, 96000};
    static const int kbps[16] = {0, 8, 16, 24, 32, 48, 64, 96, 128, 160, 192, 256, 320, 512, 513, -1};
    if (size < 3) return 0;
    aenc_format f = (aenc_format)(data[0] % AENC_NFORMATS);
    aenc_opts o = {rates[(data[1] >> 1) & 7], data[1] & 1, kbps[data[1] >> 4]};
    fz_sink s = {0};
    s.refuse_at = data[2];
    const uint8_t *ops = data + 3;
    size_t nops = (size - 3) / 3;
    if (nops > FZ_MAX_OPS) nops = FZ_MAX_OPS;

    char err[256];
    aenc *e = NULL;
    int rc = aenc_open(&e, f, &o, fz_write, &s, err, sizeof err);
    if (rc > 0) abort();
    if (rc) {
        if (e) abort();
        return 0;
    }
    if (!e) abort();
    static float pcm[FZ_MAX_SAMPLES]; /* harness scratch, not library state */
    size_t budget = FZ_MAX_SAMPLES;
    int dead = s.refused; /* the open may already have written (streamed headers) */
    for (size_t k = 0; k < nops; k++) {
        unsigned op = ops[3 * k], sz = (unsigned)ops[3 * k + 1] << 8 | ops[3 * k + 2];
        size_t n;
        switch (sz >> 14) { /* 0, 1, odd, typical, huge */
        case 0: n = sz & 1; break;
        case 1: n = (sz & 0x3FF) | 1; break;
        case 2: n = sz & 0x1FFF; break;
        default: n = (size_t)(sz & 0x3FFF) * 2; break;
        }
        if (n > budget) n = budget;
        budget -= n;
        for (size_t i = 0; i < n; i++) pcm[i] = fz_sample(op >> 2, i + k * 131, data, size);
        int r;
        if ((op & 3) != 2) {
            r = aenc_write(e, pcm, n, err, sizeof err);
            FZ_CHECK(!(r > 0 || (dead && r != ERR_CANCEL) || (r && !s.refused)), r, err);
            if (r) dead = 1;
        }
        if ((op & 3) >= 2) {
            r = aenc_flush(e, err, sizeof err);
            FZ_CHECK(!(r > 0 || (dead && r != ERR_CANCEL) || (r && !s.refused)), r, err);
            if (r) dead = 1;
        }
        if (s.refused && !dead) abort(); /* a refusal must surface as an error */
    }
    rc = aenc_close(e, err, sizeof err);
    if (rc > 0 || (dead && rc != ERR_CANCEL)) abort();
    FZ_CHECK(s.refused ? rc == ERR_CANCEL : rc == 0, rc, err); /* healthy encoders close cleanly */
    float one = 0.5f;
    rc = aenc_write(e, &one, 1, err, sizeof err);
    if (rc == 0) abort();
    rc = aenc_close(e, err, sizeof err); /* second close: no-op or ERR_CANCEL, never a crash */
    if (rc > 0) abort();
    aenc_free(e);
    if (s.after_refusal || s.empty) abort();
    return 0;
}
