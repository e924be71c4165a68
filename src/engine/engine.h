/* engine.h — the one interface every speech engine implements.
 *
 * An engine turns UTF-8 text into a stream of mono float PCM at ENG_SAMPLE_RATE
 * (24 kHz, OpenAI's rate) delivered through a sink callback, chunk by chunk, as soon
 * as each chunk exists. The HTTP layer, the `say` command and the benchmarks only
 * ever see this header: espeak-ng, pocket-tts and Kokoro plug in behind it.
 *
 * Contract:
 *  - Thread safety: synth() may be called from several worker threads at once. An
 *    engine that cannot run concurrently (libespeak-ng has process-global state)
 *    serialises internally and says so in max_parallel.
 *  - Cancellation: synth() stops as soon as the sink returns non-zero or *cancel
 *    becomes non-zero, and returns ERR_CANCEL. It checks between chunks at least.
 *  - Errors: ERR_NOTFOUND for an unknown voice, ERR_INVAL for input it cannot speak;
 *    both are the client's fault (HTTP 400). Anything else is a server problem.
 *  - Samples are nominally in [-1, 1]; the encoder clips.
 *  - Speed: when caps has ENG_CAP_SPEED the engine applies req->speed itself;
 *    otherwise it ignores it and the pipeline time-stretches (libsonic).
 *
 * Ownership: an engine is created by its module's constructor (e.g. esp_engine_new),
 * owned by whoever created it, and destroyed with eng_free(). Voice arrays returned by
 * list_voices are malloc'd copies the caller frees with free().
 */
#ifndef ENGINE_ENGINE_H
#define ENGINE_ENGINE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define ENG_SAMPLE_RATE 24000

enum {
    ENG_CAP_SPEED = 1u << 0, /* applies req->speed natively */
    ENG_CAP_CLONE = 1u << 1, /* voices can be cloned from audio */
    ENG_CAP_SEED = 1u << 2,  /* output is reproducible given req->seed */
};

typedef struct eng_voice {
    char id[64];      /* what clients send as "voice" */
    char name[96];    /* human-readable */
    char lang[24];    /* BCP-47-ish language tag, e.g. "en-US", "" if unknown */
    char gender[16];  /* "female", "male" or "" */
    char type[16];    /* "builtin", "alias" (OpenAI name), "cloned", ... */
} eng_voice;

/* Receives n samples (n may be 0 only never: engines do not send empty chunks).
 * Return 0 to continue, non-zero to cancel the synthesis. */
typedef int (*eng_sink_fn)(void *user, const float *pcm, size_t n);

typedef struct eng_synth_req {
    const char *text;          /* valid UTF-8, NUL-terminated, non-empty */
    const char *voice;         /* voice id or alias; NULL = engine default */
    float speed;               /* 0.25 .. 4.0 (1.0 = normal) */
    const char *instructions;  /* OpenAI "instructions"; may be NULL, may be ignored */
    uint64_t seed;             /* used when has_seed */
    int has_seed;
    const atomic_int *cancel;  /* may be NULL; non-zero means stop now */
} eng_synth_req;

typedef struct engine engine;

typedef struct eng_ops {
    /* Copies of every voice the engine offers now (folders may change). */
    int (*list_voices)(engine *e, eng_voice **out, size_t *n, char *err, size_t errlen);
    /* 0 if `voice` names something this engine can speak with, else ERR_NOTFOUND. */
    int (*check_voice)(engine *e, const char *voice, char *err, size_t errlen);
    int (*synth)(engine *e, const eng_synth_req *req, eng_sink_fn sink, void *user,
                 char *err, size_t errlen);
    void (*destroy)(engine *e);
} eng_ops;

/* Every engine struct starts with this header (first member), so an engine * can be
 * cast to the implementation and back. */
struct engine {
    const eng_ops *ops;
    const char *id;        /* model id clients send: "espeak", "pocket-tts", "kokoro" */
    const char *desc;      /* one line for /health and logs */
    unsigned caps;         /* ENG_CAP_* */
    int max_parallel;      /* how many synth() calls really run at once (>= 1) */
    const char *default_voice;
};

static inline int eng_list_voices(engine *e, eng_voice **out, size_t *n, char *err, size_t errlen)
{
    return e->ops->list_voices(e, out, n, err, errlen);
}
static inline int eng_check_voice(engine *e, const char *voice, char *err, size_t errlen)
{
    return e->ops->check_voice(e, voice, err, errlen);
}
static inline int eng_synth(engine *e, const eng_synth_req *req, eng_sink_fn sink, void *user,
                            char *err, size_t errlen)
{
    return e->ops->synth(e, req, sink, user, err, errlen);
}
static inline void eng_free(engine *e)
{
    if (e) e->ops->destroy(e);
}

#endif
