/* espeak.h — the espeak-ng engine: always available, tiny, robotic, many languages.
 *
 * Implements engine.h over libespeak-ng (synchronous mode). Voices are every espeak voice
 * under its language id ("en-us", "fr-fr", ...), "<id>+<variant>" (e.g. "en-us+f3"), and
 * OpenAI's names (alloy, ash, ballad, coral, echo, fable, nova, onyx, sage, shimmer, verse,
 * marin, cedar) as aliases of distinct English voice/variant pairs; names match without
 * regard to case. Default voice: "alloy". Speed maps to espeak's words-per-minute rate;
 * what its range cannot reach is applied with the time-stretch filter (audio/speed.h).
 * Output: 22050 Hz from espeak, resampled to 24 kHz with libsoxr, one sentence at a time.
 * Input is plain text: control characters and Markdown marks (**, `, # ...) are dropped
 * before espeak sees it, so neither embedded espeak commands nor "asterisk" get through.
 *
 * libespeak-ng keeps process-global state, so only one engine may exist per process
 * (a second esp_engine_new() fails with ERR_BUSY until the first is freed); espeak itself is
 * initialised by the first engine and stays loaded until exit (~2 MB), so a later engine
 * must use the same data path. synth() may be
 * called from many threads: espeak is locked per sentence, not per request, so concurrent
 * requests interleave sentence by sentence; max_parallel is 1.
 */
#ifndef ENGINE_ESPEAK_H
#define ENGINE_ESPEAK_H

#include <stddef.h>

#include "engine/engine.h"

typedef struct esp_options {
    const char *data_path; /* directory holding espeak-ng-data; NULL = espeak-ng default */
} esp_options;

/* Creates the engine (id "espeak") in *out; the caller owns it and frees it with eng_free().
 * opt may be NULL. Fails with ERR_BUSY if one already exists in this process, ERR_IO if
 * espeak-ng cannot load its data. */
int esp_engine_new(engine **out, const esp_options *opt, char *err, size_t errlen);

#endif
