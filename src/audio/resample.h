/* resample.h — sample-rate conversion with libsoxr (high quality), mono float.
 *
 * Two forms: one-shot for whole buffers (voice prompts), and streaming for engines
 * whose native rate is not 24 kHz (espeak-ng speaks at 22050 Hz).
 *
 * Ownership: ars_oneshot() returns a malloc'd buffer in *out the caller frees.
 * ars_open() creates a streaming resampler freed with ars_free() (NULL-safe).
 */
#ifndef AUDIO_RESAMPLE_H
#define AUDIO_RESAMPLE_H

#include <stddef.h>

int ars_oneshot(const float *in, size_t n, int in_rate, int out_rate, float **out, size_t *nout,
                char *err, size_t errlen);

typedef int (*ars_sink_fn)(void *user, const float *pcm, size_t n); /* non-zero = stop */
typedef struct ars ars;

int ars_open(ars **out, int in_rate, int out_rate, ars_sink_fn sink, void *user, char *err,
             size_t errlen);
int ars_write(ars *r, const float *pcm, size_t n, char *err, size_t errlen);
int ars_close(ars *r, char *err, size_t errlen); /* flushes the tail */
void ars_free(ars *r);

#endif
