/* aenc.h — one interface for every output audio format.
 *
 * The HTTP layer and `say` never know which codec runs: they open an encoder for a
 * response_format, push float PCM (mono, at the rate given in opts, 24 kHz in
 * practice) in chunks of any size (0, 1, odd, huge), and receive encoded bytes
 * through a write callback as soon as the codec produces them.
 *
 *   aenc_open -> aenc_write* -> (aenc_flush)* -> aenc_close -> aenc_free
 *
 * Streaming: with opts.streaming the encoder emits bytes as early as the format
 * allows (WAV: an open-ended header with 0xFFFFFFFF sizes goes out at the first write).
 * Without it, the encoder may buffer (a WAV then gets exact sizes at close).
 * The concatenation of everything written is always a valid file of the format.
 *
 * Samples outside [-1, 1] are clipped. Errors from the write callback (non-zero)
 * abort the encoder: every later call returns ERR_CANCEL.
 *
 * Ownership: aenc_open() creates an encoder the caller frees with aenc_free()
 * (NULL-safe). Bytes passed to the callback are borrowed for the call only.
 */
#ifndef AUDIO_AENC_H
#define AUDIO_AENC_H

#include <stddef.h>

typedef enum aenc_format {
    AENC_MP3 = 0,
    AENC_OPUS,
    AENC_AAC,
    AENC_FLAC,
    AENC_WAV,
    AENC_PCM, /* raw s16le mono, OpenAI's "pcm" */
    AENC_NFORMATS
} aenc_format;

typedef int (*aenc_write_fn)(void *user, const void *bytes, size_t n); /* non-zero = stop */

typedef struct aenc_opts {
    int sample_rate;  /* input and output rate, e.g. 24000 */
    int streaming;    /* emit bytes as early as possible */
    int bitrate_kbps; /* lossy codecs; 0 = format default */
} aenc_opts;

/* "mp3", "opus", "aac", "flac", "wav", "pcm" -> format; -1 if unknown. */
int aenc_format_from_name(const char *name);
const char *aenc_format_name(aenc_format f);
/* Content-Type as OpenAI sends it (e.g. "audio/mpeg" for mp3). */
const char *aenc_content_type(aenc_format f);
/* Non-zero when the format is compiled in and usable. */
int aenc_available(aenc_format f);

typedef struct aenc aenc;

int aenc_open(aenc **out, aenc_format f, const aenc_opts *opts, aenc_write_fn write, void *user,
              char *err, size_t errlen);
int aenc_write(aenc *e, const float *pcm, size_t n, char *err, size_t errlen);
/* Pushes out whatever is complete so far (streaming chunk boundary); may be a no-op. */
int aenc_flush(aenc *e, char *err, size_t errlen);
/* Finishes the stream (pads the last frame, writes trailers). */
int aenc_close(aenc *e, char *err, size_t errlen);
void aenc_free(aenc *e);

#endif
