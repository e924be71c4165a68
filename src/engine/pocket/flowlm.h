/* flowlm.h — pocket-tts FlowLM: text/voice prompt → autoregressive 32-d latents.
 *
 * Model (weights, immutable after load, shared by any number of streams) and state (one
 * per stream: KV caches at absolute positions, scratch) are separate objects. The flow
 * head turns the last hidden state into a latent with N LSD steps from a noise draw; the
 * noise comes from an injectable source (golden noise in parity, a seeded Gaussian in
 * production). Module boundaries can be traced by name (upstream module paths, e.g.
 * "flow.transformer.layers.0.self_attn.out") for the parity tool.
 *
 * Layouts: activations [L, d_model] row-major; latents [ldim]; KV cache per layer
 * [cap, heads, head_dim] for K (RoPE applied) and V.
 *
 * Ownership: pk_flowlm_load() borrows the st_file (F32 weights are views into its
 * mapping), which must stay open until pk_flowlm_free(). pk_fstate_new() creates a state
 * freed with pk_fstate_free(); states borrow the model. A state is used by one thread at a
 * time; the pool passed in the options may be shared.
 */
#ifndef ENGINE_POCKET_FLOWLM_H
#define ENGINE_POCKET_FLOWLM_H

#include <stddef.h>
#include <stdint.h>

#include "engine/pocket/pkconfig.h"
#include "model/safetensors.h"
#include "nn/nn.h"

typedef struct pk_flowlm pk_flowlm;
typedef struct pk_fstate pk_fstate;

typedef struct pk_flowlm_opts {
    nn_dtype dtype;   /* NN_F32 (default, exact), NN_BF16 (big matrices widened on the fly) or
                       * NN_Q8 ("--quantize": the transformer and flow-head linears quantized
                       * to int8 at load from whatever the file stores, the small matrices
                       * F32; approximate, see pocket-parity --quantize and SPEED.md) */
    nn_pool *pool;    /* borrowed; NULL = single thread */
    const char *prefix; /* tensor name prefix, default "flow_lm." */
    int hugepages;    /* copy the big matrices into one transparent-huge-page arena: fewer
                       * TLB misses while streaming weights (~10-15 % faster GEMV here),
                       * at the cost of private RSS instead of shared page cache */
} pk_flowlm_opts;

int pk_flowlm_load(pk_flowlm **out, const pk_config *cfg, const st_file *weights, const pk_flowlm_opts *opt, char *err,
                   size_t errlen);
void pk_flowlm_free(pk_flowlm *m);
const pk_config *pk_flowlm_config(const pk_flowlm *m);

/* Noise source: fills x0[n] with the flow-head start point, std sqrt(temp), and if clamp
 * > 0 restricted to [-clamp, clamp] (truncated normal). Returns 0 or a negative ERR_*. */
typedef struct pk_noise {
    int (*fill)(void *ud, float *x0, int n, float temp, float clamp);
    void *ud;
} pk_noise;

/* Production noise: seeded Gaussian (xoshiro256** + Box–Muller, rejection for clamp). */
typedef struct pk_gauss {
    uint64_t s[4];
    int has_spare;
    double spare;
} pk_gauss;
void pk_gauss_seed(pk_gauss *g, uint64_t seed);
int pk_gauss_fill(void *g, float *x0, int n, float temp, float clamp); /* pk_noise.fill, ud = pk_gauss* */

typedef struct pk_gen_params {
    float temp;          /* noise variance (0.7) */
    int lsd_steps;       /* flow-head steps per frame (1) */
    float noise_clamp;   /* <= 0: none */
    float eos_threshold; /* logit > threshold = EOS (-4.0) */
} pk_gen_params;
void pk_gen_params_default(pk_gen_params *p);

/* Trace hook: called with upstream module names and the tensor's values (row-major,
 * upstream layout without the batch dim). */
typedef void (*pk_trace_fn)(void *ud, const char *name, const float *x, size_t n);

/* max_positions: KV capacity (voice + text + generated frames). */
int pk_fstate_new(pk_fstate **out, const pk_flowlm *m, int max_positions, char *err, size_t errlen);
void pk_fstate_free(pk_fstate *s);
void pk_fstate_set_trace(pk_fstate *s, pk_trace_fn fn, void *ud);
/* Runs this state's prompts and steps on `pool` (borrowed, must outlive its use here;
 * NULL = the model's pool from pk_flowlm_opts) from the next call on. Results do not
 * depend on the pool's size (nn_linear's rows are bit-identical for any split), so a
 * stream may switch pools between calls, e.g. a wider pool for a text prompt while a
 * second core is idle and a narrower one for steps that run beside another stage. */
void pk_fstate_set_pool(pk_fstate *s, nn_pool *pool);
/* Work sharing for generation steps: with a share attached, each big one-position linear of
 * this state (transformer and flow head; F32/BF16, not int8) is cut into row chunks that the
 * stepping thread and any helper thread calling pk_share_help() claim from a shared counter.
 * No helper: the stepping thread does every chunk (no waiting on anyone). Rows never depend
 * on the split, so the results are bit-identical with or without help. One stepping thread
 * per share. pk_share_new() returns 0 or ERR_NOMEM; pk_share_free() is NULL-safe. */
typedef struct pk_share pk_share;
int pk_share_new(pk_share **out, size_t min_weights); /* smaller linears stay unshared; 0 = 65536 */
void pk_share_free(pk_share *sh);
void pk_fstate_set_share(pk_fstate *s, pk_share *sh); /* borrowed; NULL = off */
/* Helper side: does chunks of the linear posted now, if any; returns how many (0: nothing
 * open). Never blocks. */
int pk_share_help(pk_share *sh);
/* The stepping side's hint for helpers ("poll now"): set by the owner around steps. */
void pk_share_set_stepping(pk_share *sh, int on);
int pk_share_stepping(const pk_share *sh);
/* Tests only: each posted linear waits (yielding, bounded) until a helper claimed a chunk,
 * so a test sees helpers really take part. */
void pk_share_test_wait(pk_share *sh, int on);
int64_t pk_fstate_pos(const pk_fstate *s); /* positions consumed so far */
int pk_fstate_cap(const pk_fstate *s);     /* max_positions it was made with */
/* Forgets everything (position 0). */
void pk_fstate_reset(pk_fstate *s);
/* Copies the cache (positions 0..pos-1) of src into dst (same model, dst capacity >= src
 * positions): how a voice prefix is reused for every request. */
int pk_fstate_copy(pk_fstate *dst, const pk_fstate *src, char *err, size_t errlen);
/* Layer i's cache (read-only view for parity/export). */
const nn_kv *pk_fstate_kv(const pk_fstate *s, int layer);

/* Imports a voice-state file (upstream export format: transformer.layers.{i}.self_attn/
 * cache [2, 1, T, H, hd] and .../offset [1]); the state must be empty. */
int pk_fstate_import_voice(pk_fstate *s, const st_file *voice, char *err, size_t errlen);

/* Writes the state's cache (positions 0..pos-1) as a voice-state file in upstream's export
 * format (F32 caches [2, 1, T, H, hd], I64 offsets [1] = T), readable by
 * pk_fstate_import_voice() and by upstream. The file is written to path.tmp and renamed. */
int pk_fstate_export_voice(const pk_fstate *s, const char *path, char *err, size_t errlen);

/* The weight dtype to load with so a checkpoint is used in place: NN_BF16 when its FlowLM
 * matrices are stored as BF16, else NN_F32. */
nn_dtype pk_flowlm_native_dtype(const st_file *weights, const char *prefix /* NULL = "flow_lm." */);

/* Voice prompt from Mimi latents lat [F, ldim] (time-major, as mimi_encode() returns them;
 * not de-normalised): speaker projection, BOS prefix (if the config inserts it),
 * transformer over the F(+1) positions. If nz is non-NULL the flow head also runs once on the last position
 * (upstream does so and discards it; only parity needs it). */
int pk_flowlm_prompt_voice(const pk_flowlm *m, pk_fstate *s, const float *lat, int F, const pk_gen_params *p,
                           const pk_noise *nz, char *err, size_t errlen);
/* Text prompt: ids [T] (0 <= id <= n_bins). nz as above. */
int pk_flowlm_prompt_text(const pk_flowlm *m, pk_fstate *s, const int *ids, int T, const pk_gen_params *p,
                          const pk_noise *nz, char *err, size_t errlen);
/* Text prompt and the first generation step (BOS input) in one transformer pass over
 * T + 1 positions: the same computation as pk_flowlm_prompt_text(nz NULL) followed by
 * pk_flowlm_step(in_lat NULL) (causal attention: the extra position sees exactly what the
 * step would), but the weights stream once instead of twice, which is most of a step at
 * full size; rows agree with the two calls up to the GEMM-vs-GEMV rounding of nn_linear.
 * Writes the first latent out_lat [ldim] and its EOS logit. The engine's first frame. */
int pk_flowlm_prompt_text_step(const pk_flowlm *m, pk_fstate *s, const int *ids, int T, const pk_gen_params *p,
                               const pk_noise *nz, float *out_lat, float *eos_logit, char *err, size_t errlen);
/* One generation step. in_lat [ldim] is the previous latent (NULL or NaN entries = BOS).
 * Writes the new latent out_lat [ldim] (normalised space) and the EOS logit. */
int pk_flowlm_step(const pk_flowlm *m, pk_fstate *s, const float *in_lat, const pk_gen_params *p, const pk_noise *nz,
                   float *out_lat, float *eos_logit, char *err, size_t errlen);

/* Receives each emitted latent (normalised space; de-normalise with pk_flowlm_denorm for
 * Mimi) in order, k = 0, 1, ...; return nonzero to stop (generation returns ERR_CANCEL). */
typedef int (*pk_latent_fn)(void *ud, int k, const float *lat);

/* One text chunk, upstream's loop: text prompt (ids [T]) on top of whatever the state
 * already holds (typically a copied voice prefix), then steps from the BOS input, each
 * feeding back the previous latent, stopping by the EOS rule (frames_after_eos, p's
 * threshold) or at max_frames. The state must have room for T + max_frames more
 * positions (checked first). *n_frames = latents emitted. */
int pk_flowlm_generate(const pk_flowlm *m, pk_fstate *s, const int *ids, int T, const pk_gen_params *p,
                       const pk_noise *nz, int frames_after_eos, int max_frames, pk_latent_fn cb, void *ud,
                       int *n_frames, char *err, size_t errlen);

/* Denormalise a latent for Mimi: out[i] = lat[i] * emb_std[i] + emb_mean[i]. */
void pk_flowlm_denorm(const pk_flowlm *m, const float *lat, float *out);

/* End-of-generation rule (upstream): at step k the latent is computed first; the first
 * step whose logit > threshold is e; generation stops before emitting step k when
 * k >= e + frames_after_eos, or when k reaches max_frames. */
typedef struct pk_eos {
    int eos_step;         /* -1 until EOS */
    int frames_after_eos;
    int max_frames;
} pk_eos;
void pk_eos_init(pk_eos *e, int frames_after_eos, int max_frames);
/* Returns 1 if the latent of step k is to be emitted, 0 to stop (do not emit). */
int pk_eos_emit(pk_eos *e, int k, float logit, float threshold);
/* Upstream defaults: frames_after_eos = (words <= 4 ? 3 : 1) + 2; max frames =
 * ceil((n_tokens / 3 + 2) * 12.5). */
int pk_default_frames_after_eos(int n_words);
int pk_max_frames(int n_tokens, float frame_rate);

#endif
