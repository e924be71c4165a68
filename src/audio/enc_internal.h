/* enc_internal.h — what aenc.c shares with the per-format encoders (enc_*.c).
 *
 * aenc.c owns the public object: it validates arguments, latches the "dead" state
 * after a callback or codec failure (every later call returns ERR_CANCEL), and hands
 * each call to a small vtable. A format module only implements open/write/flush/close
 * /destroy over its own state and pushes bytes out through aenc_emit(), which turns a
 * non-zero callback return into ERR_CANCEL. Input is mono float PCM; aenc_f2s16()
 * is the one float -> s16 conversion (clip to [-1, 1], scale by 32767, round to
 * nearest), shared so every PCM-based format produces identical samples.
 *
 * Not installed, not for other modules: only src/audio/aenc.c and enc_*.c include it.
 */
#ifndef AUDIO_ENC_INTERNAL_H
#define AUDIO_ENC_INTERNAL_H

#include "audio/aenc.h"

#include <stddef.h>
#include <stdint.h>

/* Samples converted per step when a codec wants s16 (bounds the stack scratch). */
#define AENC_CHUNK 4096

typedef struct aenc_vt {
    /* Allocates the format state into e->impl. */
    int (*open)(aenc *e, char *err, size_t errlen);
    int (*write)(aenc *e, const float *pcm, size_t n, char *err, size_t errlen);
    int (*flush)(aenc *e, char *err, size_t errlen); /* may be NULL: no-op */
    int (*close)(aenc *e, char *err, size_t errlen);
    void (*destroy)(aenc *e); /* frees e->impl; must accept a half-opened state */
} aenc_vt;

struct aenc {
    aenc_format fmt;
    aenc_opts opts;      /* sample_rate > 0 after open; bitrate_kbps as given */
    aenc_write_fn write; /* borrowed */
    void *user;          /* borrowed */
    const aenc_vt *vt;
    void *impl;          /* owned by the format module, freed by vt->destroy */
    int dead;            /* callback refused or codec failed: everything returns ERR_CANCEL */
    int closed;          /* aenc_close() ran */
    uint64_t bytes_out;  /* total bytes passed to the callback */
};

/* Sends n bytes to the callback; ERR_CANCEL (and e->dead) if it refuses. n == 0 is a no-op. */
int aenc_emit(aenc *e, const void *bytes, size_t n, char *err, size_t errlen);

/* out[i] = round(clip(in[i], -1, 1) * 32767); NaN -> 0. */
void aenc_f2s16(const float *in, int16_t *out, size_t n);
/* Stores v as little-endian into p. */
void aenc_put_le16(uint8_t *p, uint16_t v);
void aenc_put_le32(uint8_t *p, uint32_t v);

extern const aenc_vt aenc_vt_wav;
extern const aenc_vt aenc_vt_pcm;
extern const aenc_vt aenc_vt_mp3;
extern const aenc_vt aenc_vt_opus;
extern const aenc_vt aenc_vt_flac;
extern const aenc_vt aenc_vt_aac;

#endif
