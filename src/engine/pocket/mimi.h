/* mimi.h — the Mimi codec of pocket-tts: streaming decoder (latents -> 24 kHz PCM) and
 * the encoder used for voice prompts (24 kHz PCM -> latents).
 *
 * Decoder, per latent frame (12.5 Hz, one call = 80 ms): z [ldim] (already de-normalised,
 * latent*emb_std + emb_mean; see mimi_denorm) -> quantizer 1x1 conv [outer_dim] ->
 * depthwise transposed conv x16 [dimension, 16] -> causal transformer (context window,
 * layer scale) -> SEANet decoder (x ratios) -> frame_samples (1920) floats. All state
 * (conv histories, transposed-conv tails, attention KV ring of context+16 steps) lives in
 * a mimi_dec, so each frame is decoded as soon as the FlowLM emits it and any number of
 * decoders can share one read-only mimi.
 *
 * Encoder (one prompt per call): PCM at the model rate, end-padded with zeros to a
 * multiple of frame_samples, SEANet encoder -> transformer -> stride-16 downsample conv
 * (replicate left pad) -> [F, ldim] latents (NOT normalised: they go straight into
 * speaker_proj). It runs internally a few frames at a time with streaming state, which
 * equals upstream's one-shot zero-left-padded computation, so memory stays bounded for
 * long prompts.
 *
 * Dimensions come from a mimi_config (parsed from a *.resolved.json or the built-in
 * english one); every tensor is shape-checked against it at load time and a mismatch
 * names the tensor. Weights are borrowed from the st_file when they are aligned F32,
 * otherwise converted (BF16/F16/F64) into memory owned by the mimi.
 *
 * Memory: a one-frame mimi_dec holds ~6.5 MB at english size (KV ring 2 layers x K,V x 8
 * heads x 288 slots x 64 floats, four SEANet buffers of 64 x 1920 floats, ~1.5 MB
 * transposed-conv work, a 0.5 MB tap buffer), allocated once in mimi_dec_new; decoding
 * allocates nothing. The SEANet (and downsample) weights, and the decoder transformer's
 * four linears, are re-packed at load into memory owned by the mimi (english size: ~15 MB
 * F32 of SEANet per direction + 25 MB of decoder linears; the linears' packs are freed
 * again by mimi_set_dec_dtype, whose reduced copies replace them); the checkpoint's own
 * copies of packed tensors are not read again after mimi_open (converted copies are freed;
 * mmap'd F32 pages stay mapped but untouched).
 *
 * Ownership: mimi_open() -> mimi_free() (NULL-safe); the st_file must outlive the mimi.
 * mimi_dec_new() -> mimi_dec_free(); a decoder borrows its mimi. Not thread-safe per
 * decoder; distinct decoders (and mimi_encode calls) on one mimi are independent.
 */
#ifndef ENGINE_POCKET_MIMI_H
#define ENGINE_POCKET_MIMI_H

#include <stddef.h>

#include "model/safetensors.h"
#include "nn/nn.h"

#define MIMI_MAX_RATIOS 8

typedef struct mimi_config {
    int sample_rate;        /* 24000 */
    double frame_rate;      /* 12.5 latent frames per second */
    int channels;           /* audio channels of the codec (1) */
    int dimension;          /* SEANet latent width (512; tiny 40) */
    int n_filters;          /* 64 */
    int n_residual_layers;  /* 1 */
    int ratios[MIMI_MAX_RATIOS]; /* decoder order, e.g. {6,5,4}; the encoder reverses */
    int n_ratios;
    int kernel_size;        /* 7 */
    int residual_kernel_size; /* 3 */
    int last_kernel_size;   /* 3 */
    int dilation_base;      /* 2 */
    int compress;           /* 2 */
    int pad_replicate;      /* seanet pad_mode: 0 "constant", 1 "replicate" */
    int d_model, num_heads, num_layers, dim_feedforward, context; /* transformers */
    double max_period;      /* RoPE, 10000 */
    int inner_dim;          /* ldim = quantizer.dimension (32; tiny 16) */
    int outer_dim;          /* quantizer output = upsample input (512; tiny 40) */
} mimi_config;

/* english_2026-04 values (same Mimi for every released config except inner_dim 512 in
 * english_2026-01). */
void mimi_config_english(mimi_config *c);

/* Copies the Mimi fields of a pk_config (engine/pocket/pkconfig.h, which parses the
 * resolved JSON configs); channels and pad_mode keep the english values (1, "constant"),
 * which every released config uses. */
struct pk_config;
void mimi_config_from_pk(mimi_config *c, const struct pk_config *pk);

typedef struct mimi mimi;

enum { MIMI_DECODER = 1, MIMI_ENCODER = 2 };

/* Loads the parts asked for (MIMI_DECODER | MIMI_ENCODER) from tensors named
 * <prefix>quantizer.output_proj.weight, <prefix>decoder.model.0.conv.weight, ...
 * (prefix "mimi." for a TTSModel checkpoint). flow_prefix (e.g. "flow_lm.", or NULL)
 * names where emb_std/emb_mean live, for mimi_denorm. Copies *cfg. */
int mimi_open(mimi **out, const st_file *f, const char *prefix, const char *flow_prefix,
              const mimi_config *cfg, int parts, char *err, size_t errlen);
void mimi_free(mimi *m);
/* Speed mode for full-size models: stores the decoder transformer's linears (in_proj,
 * out_proj, linear1, linear2 of every layer: ~25 MB F32 per frame on the English model) as
 * NN_BF16 (half the bytes) or NN_Q8 (int8 per-row scales + int8 activations, a quarter),
 * copies owned by m. Approximate: not for parity. NN_F32 (the default state) is a no-op;
 * NN_Q8 on shapes that are not multiples of 32 keeps F32. Call once after mimi_open,
 * before any mimi_dec is made. */
int mimi_set_dec_dtype(mimi *m, nn_dtype dt, char *err, size_t errlen);
/* Speed mode for the decoder SEANet: the layers with over 1 MB of weights (english:
 * model.0, model.2, model.5; 15 MB F32 per frame) keep BF16 copies (half the bytes).
 * Approximate: with random english-size weights the audio differs from exact F32 by
 * ~3e-3 relative (max and rms), 25x the error of BF16 transformer linears, for 0.2-0.5
 * ms less CPU per frame on this box (SPEED notes). Off unless called; call once after
 * mimi_open, before any mimi_dec is made. Batch invariance holds in this mode too. */
int mimi_set_seanet_bf16(mimi *m, char *err, size_t errlen);

int mimi_ldim(const mimi *m);          /* latent width (inner_dim) */
int mimi_frame_samples(const mimi *m); /* samples per latent frame (1920) */
int mimi_sample_rate(const mimi *m);

/* z[i] = latent[i]*emb_std[i] + emb_mean[i]; ERR_NOTFOUND if the model was opened
 * without flow_prefix or the tensors are absent. latent and z: [ldim]; may alias. */
int mimi_denorm(const mimi *m, const float *latent, float *z);

/* Debug tap for parity: called with every module boundary upstream records.
 * name: upstream module path without the "mimi." prefix ("decoder.model.3.out",
 * "decoder_transformer.transformer.layers.0.out", ...; see mimi.c); x: rows x cols
 * row-major, laid out like upstream's tensor for batch 1: channel-major [C, T] for
 * convs (time_major = 0), [T, C] for transformer layer outputs (time_major = 1).
 * t0: time offset of this piece within the whole encode call (always 0 in the decoder:
 * one frame per call). x is only valid during the call. */
typedef void (*mimi_tap_fn)(void *user, const char *name, const float *x, int rows, int cols,
                            int time_major, int t0);

typedef struct mimi_dec mimi_dec;

/* Fresh streaming decoder state (zeros, position 0). Caller frees with mimi_dec_free. */
int mimi_dec_new(mimi_dec **out, const mimi *m, char *err, size_t errlen);
void mimi_dec_free(mimi_dec *d);
/* Back to a fresh state. Upstream starts a fresh Mimi state for every text chunk it
 * generates, so an engine matching it resets between chunks. */
void mimi_dec_reset(mimi_dec *d);
void mimi_dec_set_tap(mimi_dec *d, mimi_tap_fn tap, void *user); /* NULL to clear */
/* Lets the decoder split its big GEMMs (transformer linears through nn_linear, SEANet
 * convs by output panels) across pool (borrowed; NULL, the default, = the calling thread
 * only). The samples do not depend on it (every output is computed by the same code in
 * the same order whichever thread runs it). Change it only between calls; e.g. a pool of
 * 2 for the first frame of a request (TTFA) and NULL afterwards. */
void mimi_dec_set_pool(mimi_dec *d, nn_pool *pool);

/* Decodes one frame: z [ldim] de-normalised latent -> pcm [mimi_frame_samples()]. */
int mimi_dec_frame(mimi_dec *d, const float *z, float *pcm, char *err, size_t errlen);

/* A decoder that accepts up to max_frames frames per mimi_dec_frames call (scratch grows
 * linearly; 1..MIMI_ONESHOT_MAX_FRAMES). Decoding n queued frames in one call gives the
 * same audio as n mimi_dec_frame calls (up to float summation order) with bigger, more
 * efficient GEMMs: useful when the decoder runs behind the FlowLM. */
int mimi_dec_new_batch(mimi_dec **out, const mimi *m, int max_frames, char *err, size_t errlen);
/* z [n, ldim] -> pcm [n * frame_samples]; 1 <= n <= max_frames of the decoder. */
int mimi_dec_frames(mimi_dec *d, const float *z, int n, float *pcm, char *err, size_t errlen);

/* Reports the whole streaming state through the tap, named like upstream's
 * init_states() entries ("decoder.model.0.previous", "upsample.convtr.partial",
 * "decoder_transformer.transformer.layers.0.self_attn.cache" as [2*T, d] = K rows then
 * V rows over the T cached positions in order, ...). */
void mimi_dec_dump_state(const mimi_dec *d);

/* One-shot decode of F frames with a fresh state: every stage runs once over the whole
 * utterance (16*F steps, one attention call with the context mask) instead of frame by
 * frame. Used by tests to prove streaming == whole-utterance decoding, and usable
 * offline. z [F, ldim] de-normalised; pcm [F * frame_samples]. Allocates O(F) scratch,
 * so F is capped at MIMI_ONESHOT_MAX_FRAMES (ERR_TOOBIG). */
#define MIMI_ONESHOT_MAX_FRAMES 64
int mimi_decode_oneshot(const mimi *m, const float *z, int F, float *pcm, char *err, size_t errlen);

/* Encodes PCM at mimi_sample_rate(), mono, n > 0 finite samples (ERR_INVAL otherwise;
 * ERR_TOOBIG past 10 minutes). *out: malloc'd [F, ldim]
 * (time-major; caller frees), F = ceil(n / frame_samples). tap may be NULL. */
int mimi_encode(const mimi *m, const float *pcm, size_t n, float **out, int *nframes,
                mimi_tap_fn tap, void *user, char *err, size_t errlen);

/* Voice-prompt front end, as upstream's get_state_for_audio_prompt prepares audio:
 * interleaved PCM pcm [nframes * channels] at `rate` Hz -> mono at out_rate Hz. Channels
 * are averaged; when max_seconds > 0 the input is first cut to its first
 * floor(max_seconds * rate) frames (upstream's truncate=True uses 30 s, at the source
 * rate, before resampling); then resampled with libsoxr (audio/resample.h) unless the
 * rates are equal (then copied exactly). Upstream resamples with scipy resample_poly;
 * soxr differs from it by ~3e-3 of full scale (filter design), which does not matter
 * for a voice prompt. *out: malloc'd, caller frees. Rates 8 kHz..384 kHz, 1..16 channels. */
int mimi_prompt_pcm(const float *pcm, size_t nframes, int channels, int rate, int out_rate,
                    double max_seconds, float **out, size_t *nout, char *err, size_t errlen);

#endif
