/* enc_flac.c — FLAC through libFLAC's stream encoder: 16-bit mono at opts.sample_rate.
 *
 * Buffered mode gives libFLAC seek and tell callbacks over an in-memory file (capped
 * at AENC_FLAC_MAX bytes, ERR_TOOBIG beyond), so at finish libFLAC itself rewrites
 * STREAMINFO with the exact sample count, frame sizes and MD5; the file is emitted at
 * close. Streaming mode has no way back: STREAMINFO says "total samples unknown" and
 * frames are emitted as libFLAC completes them. Streaming blocks are 1152 samples
 * (48 ms at 24 kHz) instead of 4096 so the first frame leaves early; FLAC cannot end
 * a block before it is full, so aenc_flush() is a no-op here.
 *
 * libFLAC writes "fLaC" and the metadata blocks during init, i.e. inside aenc_open();
 * those bytes are held back and released with the first frame (or at close), so the
 * writer is never called from aenc_open().
 * Compression level 5 (libFLAC's default), verify off.
 */
#include "audio/enc_internal.h"
#include "core/buf.h"
#include "core/err.h"

#include <FLAC/stream_encoder.h>
#include <stdlib.h>
#include <string.h>

#define AENC_FLAC_MAX ((size_t)64 << 20)
#define FLAC_STREAM_BLOCK 1152

typedef struct flac_state {
    FLAC__StreamEncoder *enc;
    aenc *e;
    buf file;      /* buffered mode: the whole file; streaming: header bytes until released */
    size_t pos;    /* buffered mode: libFLAC's write position in file */
    int released;  /* streaming: held-back header bytes went out */
    int discard;   /* being destroyed: libFLAC's implicit finish must not reach the writer */
    int failed;    /* an error inside a callback (code in fail_rc) */
    int fail_rc;
    FLAC__int32 in[AENC_CHUNK];
} flac_state;

static int flac_release(flac_state *f)
{
    if (f->released) return 0;
    f->released = 1;
    int rc = aenc_emit(f->e, f->file.data, f->file.len, NULL, 0);
    buf_free(&f->file);
    return rc;
}

static FLAC__StreamEncoderWriteStatus flac_cb_write(const FLAC__StreamEncoder *enc,
                                                    const FLAC__byte b[], size_t n,
                                                    uint32_t samples, uint32_t frame, void *user)
{
    flac_state *f = user;
    int rc = 0;
    if (f->discard) return FLAC__STREAM_ENCODER_WRITE_STATUS_FATAL_ERROR;
    if (f->e->opts.streaming) {
        if (!f->released && samples == 0) rc = buf_append(&f->file, b, n); /* init metadata */
        else if (!(rc = flac_release(f))) rc = aenc_emit(f->e, b, n, NULL, 0);
    } else {
        size_t over = f->file.len - f->pos; /* bytes we overwrite in place */
        if (over > n) over = n;
        if (over) memcpy(f->file.data + f->pos, b, over);
        rc = buf_append(&f->file, b + over, n - over);
        if (!rc) f->pos += n;
    }
    if (rc) {
        f->failed = 1;
        f->fail_rc = rc;
        return FLAC__STREAM_ENCODER_WRITE_STATUS_FATAL_ERROR;
    }
    return FLAC__STREAM_ENCODER_WRITE_STATUS_OK;
}

static FLAC__StreamEncoderSeekStatus flac_cb_seek(const FLAC__StreamEncoder *enc, FLAC__uint64 off,
                                                  void *user)
{
    flac_state *f = user;
    if (off > f->file.len) return FLAC__STREAM_ENCODER_SEEK_STATUS_ERROR;
    f->pos = (size_t)off;
    return FLAC__STREAM_ENCODER_SEEK_STATUS_OK;
}

static FLAC__StreamEncoderTellStatus flac_cb_tell(const FLAC__StreamEncoder *enc, FLAC__uint64 *off,
                                                  void *user)
{
    flac_state *f = user;
    *off = f->pos;
    return FLAC__STREAM_ENCODER_TELL_STATUS_OK;
}

/* Turns a failed libFLAC call into our error, preferring what a callback saw. */
static int flac_fail(flac_state *f, const char *what, char *err, size_t errlen)
{
    if (f->failed && f->fail_rc == ERR_TOOBIG)
        return err_set(err, errlen, ERR_TOOBIG, "flac: more than %zu MiB of output",
                       AENC_FLAC_MAX >> 20);
    if (f->failed && f->fail_rc == ERR_CANCEL)
        return err_set(err, errlen, ERR_CANCEL, "flac: output refused by the writer");
    if (f->failed) return err_set(err, errlen, ERR_NOMEM, "flac: out of memory");
    FLAC__StreamEncoderState st = FLAC__stream_encoder_get_state(f->enc);
    return err_set(err, errlen, ERR_INTERNAL, "flac: %s: %s", what,
                   FLAC__StreamEncoderStateString[st]);
}

static int flac_open(aenc *e, char *err, size_t errlen)
{
    flac_state *f = calloc(1, sizeof *f);
    if (!f) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    e->impl = f;
    f->e = e;
    buf_init(&f->file, AENC_FLAC_MAX);
    FLAC__StreamEncoder *enc = FLAC__stream_encoder_new();
    if (!enc) return err_set(err, errlen, ERR_NOMEM, "flac: out of memory");
    int ok = FLAC__stream_encoder_set_channels(enc, 1) &&
             FLAC__stream_encoder_set_bits_per_sample(enc, 16) &&
             FLAC__stream_encoder_set_sample_rate(enc, (uint32_t)e->opts.sample_rate) &&
             FLAC__stream_encoder_set_compression_level(enc, 5) &&
             FLAC__stream_encoder_set_verify(enc, false) &&
             (!e->opts.streaming || FLAC__stream_encoder_set_blocksize(enc, FLAC_STREAM_BLOCK));
    if (!ok) {
        FLAC__stream_encoder_delete(enc);
        f->enc = NULL;
        return err_set(err, errlen, ERR_INTERNAL, "flac: cannot set parameters");
    }
    f->enc = enc;
    FLAC__StreamEncoderInitStatus st = FLAC__stream_encoder_init_stream(
        enc, flac_cb_write, e->opts.streaming ? NULL : flac_cb_seek,
        e->opts.streaming ? NULL : flac_cb_tell, NULL, f);
    if (st != FLAC__STREAM_ENCODER_INIT_STATUS_OK)
        return err_set(err, errlen, f->failed ? ERR_NOMEM : ERR_INVAL, "flac: init: %s",
                       FLAC__StreamEncoderInitStatusString[st]);
    return 0;
}

static int flac_write(aenc *e, const float *pcm, size_t n, char *err, size_t errlen)
{
    flac_state *f = e->impl;
    int16_t s[AENC_CHUNK];
    while (n) {
        size_t k = n < AENC_CHUNK ? n : AENC_CHUNK;
        aenc_f2s16(pcm, s, k);
        for (size_t i = 0; i < k; i++) f->in[i] = s[i];
        if (!FLAC__stream_encoder_process_interleaved(f->enc, f->in, (uint32_t)k))
            return flac_fail(f, "encoding", err, errlen);
        pcm += k;
        n -= k;
    }
    return 0;
}

static int flac_close(aenc *e, char *err, size_t errlen)
{
    flac_state *f = e->impl;
    if (!FLAC__stream_encoder_finish(f->enc)) return flac_fail(f, "finishing", err, errlen);
    if (e->opts.streaming) {
        if (flac_release(f)) return err_set(err, errlen, ERR_CANCEL, "flac: output refused by the writer");
        return 0;
    }
    int rc = aenc_emit(e, f->file.data, f->file.len, err, errlen);
    buf_free(&f->file);
    return rc;
}

static void flac_destroy(aenc *e)
{
    flac_state *f = e->impl;
    if (!f) return;
    f->discard = 1; /* defensive: whatever delete() may still write is dropped */
    if (f->enc) FLAC__stream_encoder_delete(f->enc);
    buf_free(&f->file);
    free(f);
    e->impl = NULL;
}

const aenc_vt aenc_vt_flac = {flac_open, flac_write, NULL, flac_close, flac_destroy};
