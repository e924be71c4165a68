/* speed.h — pitch-preserving time-stretch (libsonic) as a streaming PCM filter.
 *
 * For engines that cannot change their speaking rate themselves (no ENG_CAP_SPEED).
 * Float mono PCM goes in, stretched PCM comes out through a sink with the engine sink's
 * signature, so it can sit between an engine and an encoder. Output duration is
 * input duration / speed. speed == 1.0 passes samples through untouched.
 *
 * Ownership: aspeed_open() creates a filter freed by aspeed_free() (NULL-safe).
 */
#ifndef AUDIO_SPEED_H
#define AUDIO_SPEED_H

#include <stddef.h>

typedef int (*aspeed_sink_fn)(void *user, const float *pcm, size_t n); /* non-zero = stop */
typedef struct aspeed aspeed;

int aspeed_open(aspeed **out, int sample_rate, float speed, aspeed_sink_fn sink, void *user,
                char *err, size_t errlen);
int aspeed_write(aspeed *s, const float *pcm, size_t n, char *err, size_t errlen);
int aspeed_close(aspeed *s, char *err, size_t errlen); /* flushes the tail */
void aspeed_free(aspeed *s);

#endif
