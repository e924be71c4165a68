/* pipeline.h — the one synthesis pipeline: engine -> (time-stretch) -> encoder -> bytes.
 *
 * Used by the HTTP workers and by `pockettts say` alike, so `say` writes exactly the
 * bytes the API would for the same request. Stages:
 *   engine (24 kHz float chunks)
 *     -> aspeed (only when the engine lacks ENG_CAP_SPEED and speed != 1)
 *     -> aenc (response_format; streaming mode when the request streams)
 *     -> framing: raw bytes, or SSE events when stream_format is "sse":
 *          data: {"type":"speech.audio.delta","audio":"<base64>"}\n\n     per encoder write
 *          data: {"type":"speech.audio.done","usage":{...}}\n\n            at the end
 *     -> out() callback (the HTTP byte queue, or a FILE)
 * If an SSE stream fails after its first event, a last event
 *          data: {"type":"error","error":{"message",...}}\n\n
 * says why before the stream ends (the HTTP status is already 200).
 * When streaming, the encoder is flushed after every engine chunk, so the first bytes
 * leave as soon as the first chunk is synthesised.
 * Usage in the done event: input_tokens = input characters (code points),
 * output_tokens = 20 ms audio frames, total = their sum.
 *
 * Cancellation: *cancel non-zero, or out() or tick() (may be NULL) returning non-zero,
 * stops the engine at its next check; oai_run then returns ERR_CANCEL.
 */
#ifndef API_PIPELINE_H
#define API_PIPELINE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "api/request.h"

typedef int (*oai_out_fn)(void *user, const void *bytes, size_t n); /* non-zero = stop */
/* Called once per engine chunk, before encoding (encoders may hold output back for a
 * long time when not streaming); non-zero = stop. Lets the caller notice a client that
 * hung up even when no bytes flow. */
typedef int (*oai_tick_fn)(void *user);

typedef struct oai_stats {
    uint64_t samples;   /* audio samples at 24 kHz after speed */
    uint64_t bytes;     /* bytes handed to out() */
    double synth_ms;    /* wall time of the whole run */
} oai_stats;

/* Runs one request. err gets the engine's or encoder's reason on failure. Errors:
 * ERR_NOTFOUND / ERR_INVAL from the engine are the client's fault (unknown voice,
 * unspeakable text); ERR_CANCEL when cancelled; others are server-side. */
int oai_run(const oai_speech *s, const atomic_int *cancel, oai_out_fn out, oai_tick_fn tick,
            void *user, oai_stats *st, char *err, size_t errlen);

/* Base64 (RFC 4648, padded) of in[0..n) into dst, which must hold 4*((n+2)/3)+1 bytes.
 * Returns the length written (without the NUL). */
size_t oai_base64(const unsigned char *in, size_t n, char *dst);

#endif
