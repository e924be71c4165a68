/* aenc.c — the public encoder object, format names, content types and dispatch.
 *
 * Invariants: a format is available iff its vtable entry in vts[] is non-NULL. Once a
 * call fails with anything but ERR_INVAL on its arguments (callback refusal, codec
 * error), the encoder is dead: later calls return ERR_CANCEL without touching the
 * codec, so a half-written stream never grows further. aenc_close() runs at most once.
 * Chunks of any size reach the format module unchanged except n == 0, which is a no-op
 * here so no codec ever sees an empty write.
 */
#include "audio/aenc.h"
#include "audio/enc_internal.h"
#include "core/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const names[AENC_NFORMATS] = {
    [AENC_MP3] = "mp3", [AENC_OPUS] = "opus", [AENC_AAC] = "aac",
    [AENC_FLAC] = "flac", [AENC_WAV] = "wav", [AENC_PCM] = "pcm",
};

/* What OpenAI's /v1/audio/speech answers with (Content-Type per response_format). */
static const char *const ctypes[AENC_NFORMATS] = {
    [AENC_MP3] = "audio/mpeg", [AENC_OPUS] = "audio/opus", [AENC_AAC] = "audio/aac",
    [AENC_FLAC] = "audio/flac", [AENC_WAV] = "audio/wav", [AENC_PCM] = "audio/pcm",
};

static const aenc_vt *const vts[AENC_NFORMATS] = {
    [AENC_MP3] = &aenc_vt_mp3,
    [AENC_OPUS] = &aenc_vt_opus,
    [AENC_AAC] = &aenc_vt_aac,
    [AENC_FLAC] = &aenc_vt_flac,
    [AENC_WAV] = &aenc_vt_wav,
    [AENC_PCM] = &aenc_vt_pcm,
};

int aenc_format_from_name(const char *name)
{
    if (!name) return -1;
    for (int i = 0; i < AENC_NFORMATS; i++)
        if (!strcasecmp(name, names[i])) return i;
    return -1;
}

const char *aenc_format_name(aenc_format f)
{
    return (unsigned)f < AENC_NFORMATS ? names[f] : "unknown";
}

const char *aenc_content_type(aenc_format f)
{
    return (unsigned)f < AENC_NFORMATS ? ctypes[f] : "application/octet-stream";
}

int aenc_available(aenc_format f)
{
    return (unsigned)f < AENC_NFORMATS && vts[f] != NULL;
}

int aenc_emit(aenc *e, const void *bytes, size_t n, char *err, size_t errlen)
{
    if (!n) return 0;
    if (e->dead) return err_set(err, errlen, ERR_CANCEL, "encoder stopped");
    if (e->write(e->user, bytes, n)) {
        e->dead = 1;
        return err_set(err, errlen, ERR_CANCEL, "%s: output refused by the writer",
                       names[e->fmt]);
    }
    e->bytes_out += n;
    return 0;
}

void aenc_f2s16(const float *in, int16_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float x = in[i];
        if (!(x == x)) x = 0.0f; /* NaN */
        if (x > 1.0f) x = 1.0f;
        if (x < -1.0f) x = -1.0f;
        out[i] = (int16_t)lrintf(x * 32767.0f);
    }
}

void aenc_put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

void aenc_put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

int aenc_open(aenc **out, aenc_format f, const aenc_opts *opts, aenc_write_fn write, void *user,
              char *err, size_t errlen)
{
    *out = NULL;
    if ((unsigned)f >= AENC_NFORMATS)
        return err_set(err, errlen, ERR_INVAL, "unknown audio format %d", (int)f);
    if (!vts[f])
        return err_set(err, errlen, ERR_NOTFOUND, "audio format %s is not available", names[f]);
    if (!opts || !write) return err_set(err, errlen, ERR_INVAL, "aenc_open: missing opts or writer");
    if (opts->sample_rate < 8000 || opts->sample_rate > 192000)
        return err_set(err, errlen, ERR_INVAL, "sample rate %d out of range", opts->sample_rate);
    if (opts->bitrate_kbps < 0 || opts->bitrate_kbps > 512)
        return err_set(err, errlen, ERR_INVAL, "bitrate %d kbps out of range", opts->bitrate_kbps);
    aenc *e = calloc(1, sizeof *e);
    if (!e) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    e->fmt = f;
    e->opts = *opts;
    e->write = write;
    e->user = user;
    e->vt = vts[f];
    int rc = e->vt->open(e, err, errlen);
    if (rc) {
        aenc_free(e);
        return rc;
    }
    *out = e;
    return 0;
}

/* Latches failure: after any error the encoder stays dead. */
static int settle(aenc *e, int rc)
{
    if (rc) e->dead = 1;
    return rc;
}

int aenc_write(aenc *e, const float *pcm, size_t n, char *err, size_t errlen)
{
    if (!e) return err_set(err, errlen, ERR_INVAL, "aenc_write: no encoder");
    if (e->dead) return err_set(err, errlen, ERR_CANCEL, "encoder stopped");
    if (e->closed) return err_set(err, errlen, ERR_INVAL, "aenc_write after close");
    if (!n) return 0;
    if (!pcm) return err_set(err, errlen, ERR_INVAL, "aenc_write: NULL samples");
    return settle(e, e->vt->write(e, pcm, n, err, errlen));
}

int aenc_flush(aenc *e, char *err, size_t errlen)
{
    if (!e) return err_set(err, errlen, ERR_INVAL, "aenc_flush: no encoder");
    if (e->dead) return err_set(err, errlen, ERR_CANCEL, "encoder stopped");
    if (e->closed || !e->vt->flush) return 0;
    return settle(e, e->vt->flush(e, err, errlen));
}

int aenc_close(aenc *e, char *err, size_t errlen)
{
    if (!e) return err_set(err, errlen, ERR_INVAL, "aenc_close: no encoder");
    if (e->dead) return err_set(err, errlen, ERR_CANCEL, "encoder stopped");
    if (e->closed) return 0;
    e->closed = 1;
    return settle(e, e->vt->close(e, err, errlen));
}

void aenc_free(aenc *e)
{
    if (!e) return;
    if (e->vt && e->vt->destroy) e->vt->destroy(e);
    free(e);
}
