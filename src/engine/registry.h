/* registry.h — the set of engines a process serves, and how model names map to them.
 *
 * OpenAI model ids (tts-1, tts-1-hd, gpt-4o-mini-tts, and dated variants starting with
 * "gpt-4o-mini-tts") resolve to the default engine; every engine is also reachable by
 * its own id ("espeak", "pocket-tts", "kokoro", "beep"), and pocket-tts also by
 * "pocket-tts-<config>" for the language config it loaded (e.g. pocket-tts-english).
 * pocket-tts is the default whenever its weights load. Kokoro ("kokoro") is added when its
 * model folder is configured (kokoro_dir / kokoro_weights) and loads; it is never the default
 * over pocket-tts, and becomes the default over espeak only when pocket-tts is missing.
 * Otherwise espeak is the default. Lookups are read-only after loading, so the registry is
 * shared by all threads without locking.
 *
 * Also here: "beep", a tiny deterministic engine (tones, one chunk per word) used by
 * unit tests and by `--test-engine`, so the server can be exercised without any real
 * engine.
 *
 * Ownership: reg_new() creates an empty registry freed with reg_free(), which also
 * frees every engine added to it (reg_add takes ownership, even on failure).
 */
#ifndef ENGINE_REGISTRY_H
#define ENGINE_REGISTRY_H

#include <stddef.h>

#include "engine/engine.h"

#define REG_MAX_ENGINES 8

typedef struct reg_registry reg_registry;

typedef struct reg_options {
    const char *espeak_data; /* NULL or "" = library default */
    const char *voices_dir;  /* NULL or "" = none (for engines that clone voices) */
    const char *cache_dir;   /* NULL or "" = hf default; for engines with downloaded weights */
    int offline;             /* never download */
    const char *language;    /* pocket-tts packaged config; NULL or "" = english */
    const char *model_dir;   /* pocket-tts local folder; NULL or "" = hf:// weights */
    int allow_url_voices;    /* pocket-tts: http(s):// and hf:// voices */
    int allow_abs_voice_paths; /* pocket-tts: absolute file path voices */
    int threads;             /* pocket-tts FlowLM threads; 0 = engine default */
    int quantize;            /* pocket-tts int8 FlowLM */
    const char *kokoro_dir;  /* Kokoro local folder (kkengine.h); NULL or "" = Kokoro off unless kokoro_weights */
    const char *kokoro_weights; /* Kokoro weights file or hf:// URI; NULL or "" = from kokoro_dir */
    int test_engine;         /* add "beep" */
} reg_options;

int reg_new(reg_registry **out, char *err, size_t errlen);
void reg_free(reg_registry *r);

/* Takes ownership of e. The first engine added becomes the default unless a later one
 * is added with make_default. */
int reg_add(reg_registry *r, engine *e, int make_default, char *err, size_t errlen);

/* Creates a registry with every engine available in this build/installation. Engines
 * that fail to load are skipped and their reasons appended to `warn` (may be NULL);
 * it fails only when no engine at all could be loaded. */
int reg_load(reg_registry **out, const reg_options *o, char *warn, size_t warnlen, char *err,
             size_t errlen);

size_t reg_count(const reg_registry *r);
engine *reg_get(const reg_registry *r, size_t i); /* borrowed */
engine *reg_default(const reg_registry *r);       /* borrowed; NULL if empty */
/* Why the default engine is the default (e.g. "pocket-tts unavailable: ..."); "" if unset. */
const char *reg_default_reason(const reg_registry *r);

/* model id -> engine (borrowed); NULL or "" = default; NULL result = unknown model. */
engine *reg_find_model(const reg_registry *r, const char *model);

/* Non-zero when `model` is one of OpenAI's ids that map to the default engine. */
int reg_is_openai_model(const char *model);

/* The built-in test engine (id "beep"); caller owns the result (eng_free). */
int reg_beep_new(engine **out, char *err, size_t errlen);

#endif
