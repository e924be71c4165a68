/* kokoro.h — the Kokoro-82M (StyleTTS2 + iSTFTNet) neural model in plain C, stage by stage.
 *
 * One kk_model holds every weight of a checkpoint flattened as `<component>.<key>` (the
 * layout of kokoro-tiny-random.safetensors / the real kokoro-v1_0 converted to safetensors),
 * with `module.` stripped and weight norm folded at load (w = v * (g / ||v||), norm over all
 * axes but 0). Sizes come from the tensors' shapes and the model config (config.json), never
 * from constants: the same code runs the tiny golden model and the real one.
 *
 * The forward pass is exposed per stage so each can be checked against the golden
 * tensors with teacher forcing (ARCHITECTURE.md §8: end-to-end audio only agrees loosely,
 * because F0 noise integrates into the sine phase). Every stage may report its
 * intermediate tensors through a tap callback, under the golden file's names (e.g.
 * "bert.layer#1", "decoder.generator.resblocks.0"), in the golden layout (PyTorch's
 * batch-first C order without the batch dim).
 *
 * Layouts: time-major [T, C] for ALBERT / LSTM stages, channel-major [C, T] for convs.
 * Status: every stage matches the tiny golden (kokoro-parity: 127 rows, worst 8e-5 relative);
 * GEMM-shaped work goes through kkconv.h (OpenBLAS sgemm, plain references beside it), the
 * rest is plain C. No streaming yet, B = 1, no masks (one utterance <= 510 tokens).
 *
 * Ownership: kk_open() creates a model the caller frees with kk_free() (NULL-safe); it
 * owns copies of all weights (the file is closed before kk_open returns). Stage outputs
 * are caller buffers of the stated sizes. Stage functions are reentrant (the model is
 * read-only after kk_open); they allocate scratch with malloc and return ERR_NOMEM.
 */
#ifndef ENGINE_KOKORO_KOKORO_H
#define ENGINE_KOKORO_KOKORO_H

#include <stddef.h>
#include <stdint.h>

#define KK_MAX_UPS 4
#define KK_MAX_KERNELS 4
#define KK_MAX_TOKENS 512

typedef struct kk_dims {
    int n_token;          /* embedding rows (178) */
    int bert_emb;         /* ALBERT embedding size E (128 real, 32 tiny) */
    int bert_hidden;      /* H (768 / 64) */
    int bert_heads;       /* 12 / 4 */
    int bert_layers;      /* applications of the shared layer (12 / 2) */
    int bert_maxpos;      /* 512 */
    int hidden;           /* C: text encoder / predictor width (512 / 64) */
    int style;            /* S: 128 (ref_s is 2S wide) */
    int max_dur;          /* 50 */
    int dec_hidden;       /* decoder encode/decode width (1024 / 64) */
    int asr_res;          /* decoder asr_res width (64 / 16) */
    int up_init;          /* generator upsample_initial_channel (512 / 32) */
    int n_ups;            /* 2 */
    int ups_rate[KK_MAX_UPS], ups_k[KK_MAX_UPS];
    int n_kernels;        /* resblock kernels (3) */
    int rb_k[KK_MAX_KERNELS];
    int rb_dil[KK_MAX_KERNELS][3];
    int n_fft, hop;       /* 20, 5 */
    int text_k;           /* text encoder conv kernel (5) */
    int sample_rate;      /* 24000 */
} kk_dims;

typedef struct kk_model kk_model;

/* Loads weights (safetensors, `<component>.module.<key>` or `<component>.<key>`) and the
 * model config JSON. */
int kk_open(kk_model **out, const char *weights_path, const char *config_path, char *err, size_t errlen);
void kk_free(kk_model *m);
const kk_dims *kk_get_dims(const kk_model *m); /* borrowed, valid until kk_free */

/* Intermediate tensors: name (golden naming), data (borrowed for the call), n values. */
typedef void (*kk_tap_fn)(void *ud, const char *name, const float *x, size_t n);
typedef struct kk_tap {
    kk_tap_fn fn; /* NULL = no taps */
    void *ud;
} kk_tap;

/* ALBERT: ids [T] -> out [T, H] (last_hidden_state). */
int kk_bert(const kk_model *m, const int64_t *ids, int T, float *out, const kk_tap *tap, char *err, size_t errlen);
/* bert_encoder Linear H -> C: bert [T, H] -> out [T, C]. */
int kk_bert_encoder(const kk_model *m, const float *bert, int T, float *out, const kk_tap *tap, char *err, size_t errlen);
/* Duration encoder: d_en [T, C] (time-major), s [S] (prosody style = ref_s[S:]) -> d [T, C+S]. */
int kk_dur_encoder(const kk_model *m, const float *d_en, int T, const float *s, float *d, const kk_tap *tap,
                   char *err, size_t errlen);
/* Durations: d [T, C+S] -> sig [T] (pre-rounding, / speed), dur [T] (round-half-even, >= 1). */
int kk_durations(const kk_model *m, const float *d, int T, float speed, float *sig, int64_t *dur,
                 const kk_tap *tap, char *err, size_t errlen);
/* Alignment: x [C, T] channel-major -> y [C, F] with column j = x column of the token
 * owning frame j (F = sum dur). */
void kk_align(const float *x, int C, int T, const int64_t *dur, float *y);
/* F0/N: en [C+S, F] (channel-major), s [S] -> f0 [2F], n [2F]. */
int kk_f0n(const kk_model *m, const float *en, int F, const float *s, float *f0, float *n, const kk_tap *tap,
           char *err, size_t errlen);
/* Text encoder: ids [T] -> t_en [C, T]. */
int kk_text_encoder(const kk_model *m, const int64_t *ids, int T, float *t_en, const kk_tap *tap, char *err,
                    size_t errlen);
/* Decoder front: asr [C, F], f0 [2F], n [2F], s [S] (= ref_s[:S]) -> x [up_init, 2F]. */
int kk_decoder(const kk_model *m, const float *asr, int F, const float *f0, const float *n, const float *s,
               float *x, const kk_tap *tap, char *err, size_t errlen);
/* Harmonic source and its STFT: f0 [F2] (= F0_pred), randn [L, 9] -> har [n_fft + 2,
 * L/hop + 1] = [|X| ; angle X]. Frame 0 is analytically real (reflect padding, Hann w[0] = 0):
 * bins with a negative real part get phase +pi here (imag forced to +0), where PyTorch's FFT
 * picks +pi or -pi by rounding noise (ARCHITECTURE.md §8 / README "trap in frame 0"). */
int kk_harmonic(const kk_model *m, const float *f0, int F2, const float *randn, float *har, const kk_tap *tap,
                char *err, size_t errlen);
/* Generator: x [up_init, 2F], s [S], f0 [2F], randn [L, 9] (the SineGen noise draw,
 * L = 2F * prod(ups_rate) * hop) -> audio [L]. har_in: if non-NULL, [n_fft+2, L/hop + 1]
 * used instead of the computed harmonic STFT (teacher forcing). */
int kk_generator(const kk_model *m, const float *x, int F2, const float *s, const float *f0, const float *randn,
                 const float *har_in, float *audio, const kk_tap *tap, char *err, size_t errlen);

/* Whole forward pass: ids [T] (with the boundary 0s), ref_s [2S] (voice-pack row), speed
 * -> *audio (malloc'd, caller frees, *n samples at 24 kHz) and, if dur_out != NULL, the
 * durations [T]. randn: the SineGen noise [L, 9] to inject (randn_n values, must be >= 9 L),
 * or NULL to draw N(0, 1) from a generator seeded with `seed`. Refuses more than
 * KK_MAX_FRAMES frames (ERR_TOOBIG). */
#define KK_MAX_FRAMES 24000 /* 10 minutes */
int kk_forward(const kk_model *m, const int64_t *ids, int T, const float *ref_s, float speed, const float *randn,
               size_t randn_n, uint64_t seed, float **audio, size_t *n, int64_t *dur_out, char *err, size_t errlen);

/* Voice packs (onnx-community `voices/NAME.bin`: raw f32 LE [rows, 2S], rows = 510). Upstream
 * picks row len(phonemes) - 1 = T - 3 for T ids including the two boundary 0s
 * (kk_voice_row_for). Reads row `row` of the pack at `path` into out [2S]; ERR_INVAL if
 * the file is not a whole number of rows or the row is past its end. */
int kk_voice_row(const kk_model *m, const char *path, int row, float *out, char *err, size_t errlen);
static inline int kk_voice_row_for(int T) { return T >= 3 ? T - 3 : 0; }

/* Audio samples for F frames: F * 2 * prod(ups_rate) * hop (600 F with the real config). */
size_t kk_samples(const kk_model *m, int F);

#endif
