/* nn.h — the small neural runtime: weight matrices over mapped memory and the kernels
 * the pocket-tts FlowLM and Mimi transformers need.
 *
 * Conventions (PyTorch's, so checkpoints map 1:1):
 *  - activations are row-major [M, D] float32 (M positions, D channels);
 *  - Linear weights are [out, in] row-major, y = x W^T + b;
 *  - attention q/k/v are [L, heads, head_dim]; the KV cache stores [cap, heads, head_dim].
 * Every kernel has a plain C reference (nn_ref_*, in kernels.c); the public entry points
 * below pick the fastest implementation for the running CPU in one place (dispatch.h).
 * Nothing here allocates on the hot path except nn_linear with NN_Q8 weights and
 * M * cols > 4096 (the quantized activations of a prompt pass) or with BF16 weights and
 * M > 1 on CPUs without AVX2 (OpenBLAS needs f32), and nothing prints. No global mutable state: BLAS threading is the
 * only process-wide setting and is changed only through nn_set_threads().
 *
 * Ownership: nn_mat may borrow (mmap'd F32/BF16 data) or own (converted copies) its data;
 * nn_mat_free() releases what it owns. nn_kv owns its buffers (nn_kv_free()).
 */
#ifndef NN_NN_H
#define NN_NN_H

#include <stddef.h>
#include <stdint.h>

#include "model/safetensors.h"

/* NN_Q8: symmetric int8 per output row. w points to int8 [rows, cols] (values in
 * [-127, 127]) followed, at the next 64-byte boundary, by float scales [rows]: W[r][i] ~=
 * q[r][i] * scale[r] (nn_q8_scales()). Made only by quantizing at load time (cols % 32 == 0);
 * nn_linear quantizes the activations per group of 32 to int8 as well (nn_q8x). */
typedef enum nn_dtype { NN_F32 = 0, NN_BF16 = 1, NN_Q8 = 2 } nn_dtype;

typedef struct nn_mat {
    const void *w;  /* [rows, cols] row-major; float, uint16_t (bf16) or int8 + scales (q8) */
    nn_dtype dtype;
    int rows, cols; /* out, in */
    void *owned;    /* heap block behind w when we converted/copied; else NULL */
} nn_mat;

/* Makes a [rows, cols] matrix view of tensor t (any 2-D or higher tensor whose numel is
 * rows*cols). F32 aligned data is borrowed (valid while the st_file is open); F16/F64 and
 * unaligned F32 are converted to F32; BF16 stays BF16 if want == NN_BF16, else F32. With
 * want == NN_BF16 an F32 tensor is converted to BF16 (round to nearest even). */
int nn_mat_from_st(nn_mat *m, const st_tensor *t, int rows, int cols, nn_dtype want, char *err, size_t errlen);
void nn_mat_free(nn_mat *m);
/* Bytes a [rows, cols] matrix of dtype occupies (NN_Q8: int8 block rounded up to 64 bytes,
 * then rows float scales). */
size_t nn_mat_bytes(int rows, int cols, nn_dtype dt);
/* Per-row scales [rows] of an NN_Q8 matrix (they live behind the int8 block). */
static inline const float *nn_q8_scales(const nn_mat *m)
{
    return (const float *)((const char *)m->w + (((size_t)m->rows * (size_t)m->cols + 63) & ~(size_t)63));
}
/* Like nn_mat_from_st but always copies/converts into dst (nn_mat_bytes() bytes, caller
 * owned, e.g. a huge-page arena); m->owned stays NULL. */
int nn_mat_into(nn_mat *m, const st_tensor *t, int rows, int cols, nn_dtype want, void *dst, char *err, size_t errlen);

/* Tells the kernel the mapped file pages behind t->data are no longer needed (after the
 * tensor was copied or converted): they leave RSS now and would simply be re-read from the
 * file if touched again. Only whole pages inside the tensor's range are dropped. */
void nn_drop_source(const st_tensor *t);

/* Anonymous memory of n bytes, 2 MiB aligned, advised as transparent huge pages (fewer TLB
 * misses when streaming weights). NULL on failure. Free with nn_huge_free(p, n). */
void *nn_huge_alloc(size_t n);
void nn_huge_free(void *p, size_t n);

/* Returns a malloc'd f32 copy of a tensor with exactly n values (caller frees), or NULL with
 * err set. */
float *nn_vec_from_st(const st_tensor *t, size_t n, char *err, size_t errlen);

/* OpenBLAS threads (process-wide). nn_linear splits its GEMMs across our pool and
 * expects OpenBLAS at 1 thread (the default we recommend; its spinning threads fight ours on
 * a busy machine). n >= 1. */
void nn_set_threads(int n);
int nn_get_threads(void);

/* A fork-join pool for our own kernels (M == 1 GEMV is split by rows across it).
 * nthreads counts the caller: 1 = no worker threads. nn_pool_run() is serialised by an
 * internal mutex, so several streams may share one pool safely. NULL pool = 1 thread.
 * Ownership: nn_pool_new() creates; nn_pool_free() (NULL-safe) joins and frees. */
typedef struct nn_pool nn_pool;
typedef void (*nn_task_fn)(void *arg, int part, int nparts);
int nn_pool_new(nn_pool **out, int nthreads, char *err, size_t errlen);
void nn_pool_free(nn_pool *p);
int nn_pool_threads(const nn_pool *p);
/* Runs fn(arg, i, n) for i = 0..n-1 (n = threads), the caller doing part 0; returns when
 * all parts are done. */
void nn_pool_run(nn_pool *p, nn_task_fn fn, void *arg);
/* Name of the kernel set in use ("avx512", "avx2", "generic"). */
const char *nn_kernel_name(void);

/* y[M, W.rows] = x[M, W.cols] W^T (+ b[W.rows] if b). x, y must not alias. pool may be
 * NULL (single thread). M == 1 runs our GEMV, M > 1 our packed GEMM (F32/BF16, AVX2 or
 * AVX-512, gemm_x86.c) or the int8 kernels (NN_Q8); all split by weight rows across the
 * pool. Without AVX2, F32/BF16 with M > 1 fall back to OpenBLAS sgemm (BF16 widened block
 * by block first).
 *
 * GEMM invariance (F32 and BF16, M >= 2, AVX2 or AVX-512 CPUs, i.e. nn_gemm_fast()):
 * every output is the sequential chain acc = fma(x[m][k], W[r][k], acc) over k = 0 ..
 * cols-1 from 0, then acc + b[r] — exactly nn_ref_gemm_f32/_bf16. So row m of y is
 * bit-identical whatever M is (the same x row inside a bigger or smaller batch, at any
 * position), whatever the pool's thread count, and between the AVX2 and AVX-512 kernels
 * (tested in test_gemm.c). Callers may batch rows freely (e.g. Mimi decoding several
 * frames per call) without changing results. Not covered: M == 1 (the GEMV sums in a
 * different order, so a row alone differs from the same row in a batch by rounding),
 * NN_Q8, and the OpenBLAS fallback (bit-identical across thread counts, not across M). */
void nn_linear(nn_pool *pool, float *y, const float *x, int M, const nn_mat *W, const float *b);

/* Row-wise LayerNorm over D: (x - mean) / sqrt(var_pop + eps) (* w + b if w/b non-NULL).
 * In place allowed (y == x). x, y: [M, D]. */
void nn_layernorm(float *y, const float *x, int M, int D, const float *w, const float *b, float eps);

/* pocket-tts flow-head "RMSNorm": y = x * alpha / sqrt(eps + unbiased var(x)) per row
 * (mean-centred variance with N-1; x itself is not centred). [M, D], alpha [D]. */
void nn_rmsnorm_var(float *y, const float *x, int M, int D, const float *alpha, float eps);

/* Activations, in place over n values. */
void nn_gelu_erf(float *x, size_t n); /* 0.5 x (1 + erf(x / sqrt 2)); SIMD erf within ~1.5e-7 */
void nn_silu(float *x, size_t n);     /* x / (1 + exp(-x)) */
void nn_elu(float *x, size_t n);      /* x > 0 ? x : exp(x) - 1 (alpha 1) */

/* RoPE, interleaved pairs (2i, 2i+1), in place on x [L, heads, hd]: position of row t is
 * pos0 + t; freq_i = exp(-ln(max_period) * 2i / hd) in float32 (upstream's arithmetic). */
void nn_rope(float *x, int L, int heads, int hd, int64_t pos0, float max_period);

/* Timestep embedding: out[2*half] = [cos(t * freqs[i]), sin(t * freqs[i])], freqs [half]. */
void nn_time_embed(float *out, float t, const float *freqs, int half);

/* KV cache for causal self-attention. Position p lives in slot p % cap. With context
 * c > 0 a query at p sees keys max(0, p-c+1) .. p; with c == 0 it sees 0 .. p and the
 * cache must never wrap (nn_attend refuses). */
typedef struct nn_kv {
    float *k, *v;  /* [cap, heads, hd] each */
    int cap, heads, hd;
    int context;   /* 0 = unlimited */
    int64_t len;   /* positions written so far (= next absolute position) */
} nn_kv;

int nn_kv_init(nn_kv *c, int cap, int heads, int hd, int context, char *err, size_t errlen);
void nn_kv_free(nn_kv *c);
/* Appends L positions of k, v [L, heads, hd] at positions len..len+L-1 and computes
 * out [L, heads*hd] = softmax(q k^T / sqrt(hd)) v with the causal (and context) mask, for
 * q [L, heads, hd] at the same positions. scratch must hold (cap) floats. Returns 0, or
 * ERR_TOOBIG if the cache would lose positions still visible to a query. */
int nn_attend(nn_kv *c, float *out, const float *q, const float *k, const float *v, int L, float *scratch);

/* ---- int8 (NN_Q8) ----
 * Weights: per output row, s = max|W[r]| / 127, q = round(W / s) in [-127, 127] (round
 * half away from zero, here and below).
 * Activations: per group of 32 along the input, s_g = max|x_g| / 127, q = round(x / s_g);
 * c holds -128 * (q[4j] + q[4j+1] + q[4j+2] + q[4j+3]) per 4 values, which lets the VNNI
 * kernel use its unsigned x signed byte product on (w + 128) and subtract the offset.
 * y[r] = scale[r] * sum_g s_g * (sum_{i in g} q_w[r][i] q_x[i]), the inner sums exact in
 * int32 (|.| <= 32 * 127 * 127). */
enum { NN_Q8_GROUP = 32, NN_Q8_MAXCOLS = 16384 };
typedef struct nn_q8x {
    const int8_t *q;  /* [M, cols] */
    const float *s;   /* [M, cols / 32] group scales */
    const int32_t *c; /* [M, cols / 4] VNNI offset correction (see above) */
} nn_q8x;
/* Quantizes W [rows, cols] (cols % 32 == 0) into q [rows, cols] and s [rows]. */
void nn_q8_quant_weights(int8_t *q, float *s, const float *W, int rows, int cols);
/* Quantizes x [M, cols] (cols % 32 == 0) into q [M, cols], s [M, cols/32], c [M, cols/4]. */
void nn_q8_quant_act(int8_t *q, float *s, int32_t *c, const float *x, int M, int cols);
/* y[m * ldy + r] = ws[r] * sum_g x->s[m][g] * dot_g(W[r], x->q[m]); W [rows, cols] int8 */
/* references of the two quantizers above (the public ones dispatch; results identical) */
void nn_ref_q8_quant_weights(int8_t *q, float *s, const float *W, int rows, int cols);
void nn_ref_q8_quant_act(int8_t *q, float *s, int32_t *c, const float *x, int M, int cols);
void nn_ref_gemm_q8(float *y, int ldy, const nn_q8x *x, int M, const int8_t *W, const float *ws, int rows, int cols);

/* ---- plain C references (always available; tests compare the dispatched versions) ---- */
void nn_ref_gemv_f32(float *y, const float *x, const float *W, int rows, int cols);
void nn_ref_gemv_bf16(float *y, const float *x, const uint16_t *W, int rows, int cols);
float nn_ref_dot(const float *a, const float *b, int n);
void nn_ref_axpy(float *y, float a, const float *x, int n); /* y += a x */
void nn_ref_gelu_erf(float *x, size_t n);                   /* with libm erff */
void nn_ref_dot4(const float *const q[4], const float *k, int n, float out[4]);
void nn_ref_axpy4(float *const o[4], const float w[4], const float *v, int n);
/* out[j] = q . K[j * ld + 0..hd); o[i] += sum_j w[j] V[j * ld + i] (j < n) */
void nn_ref_dotn(float *out, const float *q, const float *K, size_t ld, int n, int hd);
void nn_ref_axpyn(float *o, const float *w, const float *V, size_t ld, int n, int hd);
/* 4 queries at once: out[i * ldo + j] = q[i] . K[j * ld + 0..hd); o[i] += sum_j w[i * ldw + j] V_j */
void nn_ref_dot4n(float *out, size_t ldo, const float *const q[4], const float *K, size_t ld, int n, int hd);
void nn_ref_axpy4n(float *const o[4], const float *w, size_t ldw, const float *V, size_t ld, int n, int hd);
/* y[m * ldy + r] = fma chain over k of x[m, k] W[r, k] (k ascending, from 0), + b[r] if b;
 * x [M, cols], W [rows, cols] (BF16 widened exactly). The GEMM kernels match these bit for bit. */
void nn_ref_gemm_f32(float *y, int ldy, const float *x, int M, const float *W, int rows, int cols, const float *b);
void nn_ref_gemm_bf16(float *y, int ldy, const float *x, int M, const uint16_t *W, int rows, int cols, const float *b);

/* bf16 helpers */
static inline float nn_bf16_to_f32(uint16_t h)
{
    union { uint32_t u; float f; } c = {.u = (uint32_t)h << 16};
    return c.f;
}
uint16_t nn_f32_to_bf16(float f); /* round to nearest even; NaN stays NaN */
/* dst[i] = nn_f32_to_bf16(src[i]), i < n (AVX-512 when available; identical results) */
void nn_f32_to_bf16_n(uint16_t *dst, const float *src, size_t n);

#endif
