/* kkengine.h — Kokoro-82M behind engine.h (model id "kokoro").
 *
 * Files: a local folder (opt.dir) laid out as
 *     <dir>/config.json                 the model config (hexgrad/Kokoro-82M config.json, with "vocab")
 *     <dir>/<name>.safetensors          the weights in the checkpoint layout (kokoro.h); with several,
 *                                       opt.weights names one (kokoro-v1_0.safetensors is preferred)
 *     <dir>/voices/<voice>.bin          voice packs, raw f32 LE [510, 256] (onnx-community format)
 *     <dir>/lexicon/{us,gb}_{gold,silver}.json   misaki lexicons (optional, see below)
 * or explicit paths / URIs (opt.weights, opt.config, opt.voices_dir, opt.lexicon_dir). A path
 * starting with hf:// or https:// is fetched through model/hf.h into the cache (offline
 * honoured); opt.weights = "hf" means upstream's hf://hexgrad/Kokoro-82M/kokoro-v1_0.pth.
 * A .pth checkpoint (upstream publishes only that) is converted once to
 * <cache root>/kokoro/<name>-<bytes>.safetensors (kkpth.h) and loaded from there. Without
 * opt.dir nor opt.weights there is no model: kke_new() fails with ERR_NOTFOUND saying what
 * to provide (Kokoro is opt-in: 330 MB). Lexicons not found locally are fetched from
 * hexgrad/misaki @ fba1236 on GitHub (Apache-2.0); voice packs missing locally when the
 * voices come from hf are fetched from onnx-community/Kokoro-82M-v1.0-ONNX on first use.
 *
 * Voices: the American (a*) and British (b*) voices of Kokoro v1.0 that have a pack, plus any
 * other <name>.bin in the voices folder (treated as American English); OpenAI's names are
 * aliases onto distinct Kokoro voices (alloy -> af_alloy, echo -> am_echo, fable -> bm_fable,
 * nova -> af_nova, onyx -> am_onyx, ...; the default voice when that pack is absent, so
 * clients that always send "alloy" work with any folder). "a,b" or "a+b" mixes packs (element-wise mean, as
 * KPipeline). Spanish, French, Hindi, Italian and Portuguese voices (e*, f*, h*, i*, p*) go
 * through misaki's EspeakG2P (kg2p_espeak_g2p) on sentence chunks of <= 400 characters, as
 * upstream; Japanese and Chinese (j*, z*) need misaki ja/zh and are not offered. A mix speaks
 * the language of its first voice. Default voice: af_heart when present, else the first voice.
 *
 * Per request: text -> newline-separated segments -> misaki-style G2P (g2p.h, US or GB rules
 * by the voice's first letter) -> chunks of <= 510 phonemes at sentence/clause boundaries
 * (upstream's rule, but the request's first chunk is its first clause of >= opt.first_chunk
 * phonemes, and later budgets grow 1.5x per chunk from 60 to 510, so the first audio comes
 * sooner and each chunk can be computed while the previous one plays; upstream always packs
 * 510; no cut between words unless a clause is longer than the budget) -> per chunk: ids,
 * the pack row len(phonemes) - 1, kk_forward at
 * req->speed (native: durations / speed), one sink call per chunk. Cancellation is checked
 * before every chunk. Noise: the request's seed (+ chunk index) or a fresh random seed.
 *
 * Thread safety: the model and lexicons are read-only after load (the GB lexicon loads on
 * the first British request, under a mutex); synth() may run on max_parallel threads.
 * The espeak-ng fallback for unknown words is g2p.h's kg2p_espeak_fallback (process-wide
 * mutex; see STATUS.md for its interplay with the espeak engine).
 *
 * Ownership: kke_new() returns an engine freed with eng_free(); option strings are copied.
 */
#ifndef ENGINE_KOKORO_KKENGINE_H
#define ENGINE_KOKORO_KKENGINE_H

#include <stddef.h>

#include "engine/engine.h"
#include "engine/kokoro/g2p.h"
#include "model/hf.h"

typedef struct kke_options {
    const char *dir;          /* local model folder (see top); NULL/"" = none */
    const char *weights;      /* .safetensors or .pth file, hf:// / https:// URI, or "hf" (upstream); NULL =
                               * <dir>/kokoro-v1_0.{safetensors,pth}, else the only .safetensors (.pth) there */
    const char *config;       /* NULL = <dir>/config.json, else hf://hexgrad/Kokoro-82M/config.json */
    const char *voices_dir;   /* NULL = <dir>/voices, else fetched from onnx-community per voice */
    const char *lexicon_dir;  /* NULL = <dir>/lexicon if present, else fetched from GitHub */
    const char *id;           /* NULL = "kokoro" */
    int espeak_ready;         /* libespeak-ng already initialised by the espeak engine */
    const char *espeak_data;  /* data path when we initialise it; NULL = default */
    kg2p_espeak_hooks espeak_hooks; /* lock shared with the espeak engine (copied); zero = none */
    int max_parallel;         /* concurrent synth() calls; 0 = 2 */
    int first_chunk;          /* first chunk = first clause of >= this many phonemes; 0 = 12, -1 = upstream packing */
    const hf_options *hf;     /* downloads; NULL = defaults */
} kke_options;

/* Loads the model, vocab, US lexicons and voice list. ERR_NOTFOUND (with the reason) when the
 * weights, config, lexicons or every voice are missing; ERR_FORMAT for bad files. */
int kke_new(engine **out, const kke_options *opt, char *err, size_t errlen);

#endif
