/* pocket.h — the pocket-tts engine (Kyutai's FlowLM + Mimi) behind engine.h.
 *
 * Loading: (1) a local model folder (opt.model_dir) with a `*.resolved.json` whose
 * weights_path names a safetensors file in it, plus the tokenizer it names (e.g. the tiny
 * reference folder); (2) a copy of an upstream language folder: model.safetensors +
 * tokenizer.model with the built-in config of opt.language; its built-in voices come from
 * embeddings/<name>.safetensors when present, else are fetched; (3) upstream's hf:// assets
 * of a packaged config (opt.language, default "english"): the gated weights with voice
 * cloning, and on any failure to get them (no HF_TOKEN, offline, terms not accepted) the
 * public ones without (audio voice prompts are then refused; built-in names and voice-state
 * files work). Full-size models load the FlowLM as BF16 by default (opt.bf16 = -1: exact
 * F32 used in place; opt.hugepages = 1: a huge-page arena, +6-8 % frames/s for ~0.8 s of
 * startup; opt.quantize: int8).
 *
 * Per request: voice -> voice state (voices.h resolution; states cached in memory by
 * voices.h's LRU and, for audio prompts, on disk as
 * <state dir>/<model key>/<content hash>.safetensors, so a cloned voice costs one encoding;
 * the disk cache is never pruned); text -> upstream chunks (textprep.h), the first one
 * re-split under opt.first_chunk_tokens so the first audio waits for a short text prompt;
 * per chunk: copy the voice state, text prompt and step 0 in one FlowLM pass
 * (pk_flowlm_prompt_text_step: the weights stream once for both), further steps with
 * upstream's EOS rule, Mimi decode per frame (decoder reset per chunk, as upstream), one
 * sink call per 1920-sample frame. A finished request's KV state and decoder are kept (two,
 * up to 1024 positions) for the next one: no allocation or page faults before its first
 * audio. Cancellation is checked before every frame. Noise is a seeded Gaussian: the
 * request's seed when it has one (same seed + text + voice = same samples, pipelined or
 * not), else a fresh random seed. Speed is not native (the pipeline time-stretches).
 *
 * With opt.pipeline the Mimi decoder runs on a second thread fed through a small queue of
 * latents, so FlowLM step k+1 overlaps Mimi frame k (upstream does the same with two
 * Python threads); the sink is still called from the synth() caller's thread. The first
 * frame of a request is decoded inline (it is the latency the listener hears). When the
 * decoder falls behind, the frames queued are decoded in one call (opt.mimi_batch); Mimi's
 * kernels are batch-invariant, so the samples do not depend on that timing.
 * Pipelining sets OpenBLAS to one thread (nn_set_threads(1), process-wide). Both cores
 * serve the first audio: text prompts run on a wider pool (opt.prompt_threads, default
 * every core) while the decoder thread has nothing queued, and so does the inline first
 * frame. In steady state the FlowLM steps on one thread and the decoder thread, whenever it
 * has no frame, takes row chunks of the step's linears (opt.step_share, pk_share in
 * flowlm.h), so the two stages balance themselves: Mimi first, spare time to the FlowLM.
 * Pools, batches and helpers never change the samples.
 *
 * Thread safety: the model is read-only after load; synth() may run on several threads
 * (each request has its own KV state and decoder); max_parallel = opt.max_parallel.
 *
 * Ownership: pke_new() creates an engine freed with eng_free(). Every string in pke_options
 * (and the hf_options it points to) is copied; nothing is borrowed after pke_new returns.
 */
#ifndef ENGINE_POCKET_POCKET_H
#define ENGINE_POCKET_POCKET_H

#include <stddef.h>

#include "engine/engine.h"
#include "model/hf.h"

/* Where the first audio of a request goes (bench and diagnostics): mark(ud, stage, ms) is
 * called on the synth() caller's thread with CLOCK_MONOTONIC milliseconds when a stage
 * ends, for the first chunk and first frame of every request only. It must be cheap and
 * thread-safe (requests run in parallel); it is never called with a lock held. */
enum {
    PKE_MARK_VOICE,  /* voice state resolved (cache hit, file read or encoded) */
    PKE_MARK_TEXT,   /* text normalised, tokenised and chunked */
    PKE_MARK_ALLOC,  /* request state: KV cache, Mimi decoder, decoder thread */
    PKE_MARK_COPY,   /* voice state copied into the request's KV cache */
    PKE_MARK_PROMPT, /* text prompt of the first chunk through the FlowLM */
    PKE_MARK_STEP,   /* first FlowLM step (first latent) */
    PKE_MARK_DECODE, /* first Mimi frame decoded */
    PKE_MARK_SINK,   /* first frame returned from the sink (encoded/sent by the caller) */
    PKE_MARK_N
};
typedef void (*pke_mark_fn)(void *ud, int stage, double ms);

typedef struct pke_options {
    const char *model_dir;       /* local folder; NULL/"" = upstream hf:// assets of `language` */
    const char *language;        /* packaged config name; NULL/"" = "english" */
    const char *id;              /* engine/model id; NULL = "pocket-tts" */
    const char *voices_dir;      /* POCKET_TTS_VOICES_DIR; NULL/"" = none */
    const char *default_voice;   /* NULL: "alba" with built-ins, else the first folder voice, else none */
    const char *state_cache_dir; /* encoded voice states on disk; NULL: <hf cache root>/voices; "" = off */
    int allow_url_voices;        /* http(s):// and hf:// voices */
    int allow_abs_voice_paths;   /* "/abs/file.wav" voices */
    int threads;                 /* FlowLM threads incl. caller; 0 = cores - 1 when pipelined
                                  * (at least 1), else cores (at most 8). Pipelined, steps use at
                                  * most cores - 1 of them (the decoder thread has the last core
                                  * and lends itself when idle); prompts use max(threads, cores) */
    int max_parallel;            /* concurrent synth() calls; 0 = 2 */
    int pipeline;                /* 1 = Mimi on a second thread; 0 = sequential; -1 = default (on) */
    int bf16;                    /* FlowLM matrices as BF16 (half the bytes per frame): 1 on,
                                  * -1 off (exact F32), 0 = on for full-size models (d_model >= 512) */
    int frames_after_eos;        /* > 0 overrides config and per-chunk defaults; 0 = upstream rule */
    int first_chunk_tokens;      /* first chunk re-split under this budget (TTFA); 0 = 16, -1 = off */
    int hugepages;               /* pk_flowlm_opts.hugepages: 1 on; 0 / -1 off (default off: startup) */
    int quantize;                /* 1: FlowLM linears as int8 (NN_Q8: approximate, fewest bytes per
                                  * frame; "--quantize"); overrides bf16 */
    int mimi_quantize;           /* Mimi decoder transformer linears as int8 (mimi_set_dec_dtype:
                                  * ~1/4 of its weight bytes per frame): 1 on, -1 off (exact),
                                  * 0 = follows quantize. */
    int mimi_bf16;               /* Mimi decoder linears as BF16 (mimi_set_dec_dtype; ~1e-4
                                  * relative error): 1 on, -1 off (exact), 0 = on with a BF16
                                  * FlowLM (the full-size default); int8 (mimi_quantize) wins */
    float temp;                  /* noise variance; 0 = 0.7 */
    int lsd_steps;               /* 0 = 1 */
    const hf_options *hf;        /* downloads (cache dir, offline, token); NULL = defaults */
    int prompt_threads;          /* pipelined: pool for text prompts and the steps that start
                                  * while the Mimi thread has no frame (a chunk's first one or
                                  * two): 0 = all cores (at most 8), -1 or <= threads = the step
                                  * pool; sequential: unused */
    int first_step_apart;        /* 1: a chunk's text prompt and its first FlowLM step as two
                                  * passes, as upstream (A/B); 0 = one pass over T + 1 positions
                                  * (pk_flowlm_prompt_text_step: the weights stream once) */
    int mimi_batch;              /* pipelined: most frames decoded per Mimi call when several
                                  * are queued (Mimi behind the FlowLM; same samples as one by
                                  * one): 0 = 4, 1 = frame by frame, at most 4; -N = always wait
                                  * for N frames unless draining (tests: makes batches certain) */
    int step_share;              /* pipelined with a 1-thread step pool: the Mimi thread, while
                                  * it has no frame, takes row chunks of the step's linears
                                  * (pk_share; same samples): 0 = on, -1 = off */
    pke_mark_fn mark;            /* optional stage marks of each request (benchmarks); NULL = off */
    void *mark_ud;
} pke_options;

/* Loads the model and returns the engine. ERR_NOTFOUND when the weights are neither local
 * nor downloadable (err says why: offline, not cached, ...), ERR_FORMAT for bad files. */
int pke_new(engine **out, const pke_options *opt, char *err, size_t errlen);

/* Voice cloning available (gated weights or a local folder)? */
int pke_can_clone(const engine *e);

/* Resolves `voice` (anything synth() accepts, including an audio file path when allowed)
 * and writes its voice state as a safetensors file in upstream's export format to out_path
 * (written to out_path.tmp, then renamed). The `export-voice IN OUT` command: IN is a
 * path to an audio file (always allowed here: the operator runs it) or a voice id. */
int pke_export_voice(engine *e, const char *voice, const char *out_path, char *err, size_t errlen);

/* Milliseconds spent in pke_new split into parts, for the benchmark and the startup log. */
typedef struct pke_load_stats {
    double total_ms, weights_ms, flowlm_ms, mimi_ms, tokenizer_ms;
    size_t state_bytes_per_position; /* FlowLM KV bytes per position */
} pke_load_stats;
void pke_get_load_stats(const engine *e, pke_load_stats *st);

/* Number of voice states cached in memory now (tests). */
size_t pke_cached_voices(engine *e);

#endif
