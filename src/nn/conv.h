/* conv.h — causal, streaming 1-D convolutions for the SEANet codec (Mimi), and ELU.
 *
 * Layouts are PyTorch's, batch 1: activations are channel-major [C, T] row-major (one row
 * of T samples per channel). Conv1d weights are [cout, cin/groups, k]; ConvTranspose1d
 * weights are [cin, cout/groups, k]. Biases [cout] or NULL.
 *
 * Streaming semantics (upstream StreamingConv1d / StreamingConvTranspose1d):
 *  - conv1d keeps the last P = (k-1)*dil + 1 - stride input columns ("previous",
 *    [cin, P]) and prepends them to the next input, so output t depends only on
 *    inputs <= t*stride (causal). Zero initial state equals one-shot zero left padding
 *    by P; with pad_replicate the state is filled with the first input column on the
 *    first call (replicate left padding). T must be a multiple of stride; the call
 *    produces T/stride columns.
 *  - convtr1d computes the full transposed conv of T input columns (T*stride + P
 *    outputs, P = k - stride), adds the carried tail ("partial", [cout, P], bias
 *    excluded) to the first P outputs, emits the first T*stride and keeps the last P
 *    minus bias as the new tail. The bias is thus added exactly once per output.
 * Splitting an input into pieces (each a multiple of stride) and streaming them gives
 * the same result as one call over the whole input, up to float summation order.
 *
 * Kernels: conv1d_run_ref / convtr1d_run_ref are plain C loops over this layout (the
 * reference); the fast path is the time-major one below ("_tm"), which the tests compare
 * against them. Nothing here allocates: callers pass a work buffer of the size the
 * *_work() function returns (floats). Weights are borrowed; the structs own nothing.
 */
#ifndef NN_CONV_H
#define NN_CONV_H

#include <stddef.h>
#include <stdint.h>

struct nn_pool; /* nn/nn.h */

typedef struct conv1d {
    int cin, cout, k, stride, dil, groups;
    int pad_replicate; /* 1: replicate left padding on the first call; 0: zeros */
    int pk_bf16;       /* _tm_run: the packed weights are BF16 panels (conv_pack_bf16) */
    const float *w;    /* [cout, cin/groups, k] row-major */
    const float *b;    /* [cout] or NULL */
} conv1d;

typedef struct convtr1d {
    int cin, cout, k, stride, groups;
    int pk_bf16; /* _tm_run: the packed weights are BF16 panels (conv_pack_bf16) */
    const float *w; /* [cin, cout/groups, k] row-major */
    const float *b; /* [cout] or NULL */
} convtr1d;

/* Columns of history a conv1d keeps: (k-1)*dil + 1 - stride (>= 0 asserted). */
int conv1d_hist(const conv1d *c);
/* Floats of work buffer conv1d_run needs for T input columns. */
size_t conv1d_work(const conv1d *c, int T);

/* Reference: x [cin, T] -> y [cout, T/stride]. prev [cin, conv1d_hist(c)] is read and
 * updated (may be NULL only when the history is 0); *first is read and cleared (replicate
 * mode). work: conv1d_work(c, T) floats, must not alias x or y. */
void conv1d_run_ref(const conv1d *c, const float *x, int T, float *prev, int *first, float *y,
                    float *work);

/* Columns of tail a convtr1d carries: k - stride (>= 0 asserted). */
int convtr1d_hist(const convtr1d *c);
size_t convtr1d_work(const convtr1d *c, int T);

/* Reference: x [cin, T] -> y [cout, T*stride]. partial [cout, convtr1d_hist(c)] read and
 * updated. work: convtr1d_work(c, T) floats. */
void convtr1d_run_ref(const convtr1d *c, const float *x, int T, float *partial, float *y,
                      float *work);

/* ---- time-major path with packed weights (the Mimi decoder) ---------------------------
 * Activations are time-major [T, C] (one row of C channels per step), so a stride-s,
 * dilation-1 conv needs no im2col: with the weights re-laid as W'[cout][j*cin + ci] its
 * input row t is the contiguous run xp[t*s .. t*s+k) of the padded input, i.e. a GEMM
 * with row stride s*cin over overlapping rows. A transposed conv is the GEMM
 * Z[t][j*cout + o] = x[t] . W[:, o, j] followed by an overlap-add of contiguous rows.
 *
 * Packed weights: W' [rows, cols] stored in panels of CONV_PANEL output rows, k-major,
 * Wp [ceil(rows/16)][cols][16], zero padded (conv: rows cout, cols k*cin; convtr: rows
 * k*cout, cols cin). The caller owns Wp (conv*_tm_pack_floats() floats).
 *
 * The _tm_run functions take an nn_pool (borrowed; NULL = calling thread only): their big
 * GEMMs are split by output panels across it, with the same results for any pool.
 *
 * conv_gemm: y[m*ldy + r] (+)= b[r] + sum_c x[m*ldx + c] W'[r][c], each output summed
 * with one FMA per c in increasing c starting from the bias (0 without bias; with
 * CONV_GEMM_CONT from the value already in y, continuing an earlier call), in every
 * implementation (AVX-512 and the plain C conv_gemm_ref with fmaf): results are
 * bit-identical to the reference and do not depend on M or on which rows share a call.
 * So decoding n frames in one call gives exactly the samples of n single-frame calls.
 * Depthwise (groups == cin == cout) transposed convs use a direct loop, same property.
 *
 * Streaming state in this layout: conv history [P, cin] (rows = past input steps);
 * transposed-conv tail [k - stride, cout] holding the raw sums (no bias) of the outputs
 * not yet emitted. Outputs are accumulated in increasing source step order and the bias
 * added at emission, so streamed pieces equal one call bit for bit. */
#define CONV_PANEL 16
enum { CONV_IN_ELU = 1, /* conv1d_tm_run: the conv input is ELU(x) (x itself unchanged) */
       CONV_OUT_ADD = 2 /* add the result into y instead of storing it */ };
/* conv_gemm modes (last argument) */
enum { CONV_GEMM_STORE = 0, CONV_GEMM_ADD = 1 /* y += b + x W'^T */,
       CONV_GEMM_CONT = 2 /* accumulation starts from y (b ignored): a split sum continues exactly */ };
size_t conv_pack_floats(int rows, int cols);
void conv_gemm(float *y, int ldy, const float *x, size_t ldx, int M, const float *wp, int rows, int cols,
               const float *b, int mode);
void conv_gemm_ref(float *y, int ldy, const float *x, size_t ldx, int M, const float *wp, int rows,
                   int cols, const float *b, int mode);
/* conv_gemm with its output panels split across pool (borrowed; NULL = calling thread;
 * small GEMMs stay on the calling thread), same results for any pool. */
void conv_gemm_pool(struct nn_pool *pool, float *y, int ldy, const float *x, size_t ldx, int M, const float *wp,
                    int rows, int cols, const float *b, int mode);
void conv_gemm_pool_bf16(struct nn_pool *pool, float *y, int ldy, const float *x, size_t ldx, int M,
                         const uint16_t *wp, int rows, int cols, const float *b, int mode);
/* The same with panels pstride floats apart (>= cols*16): a column range of a bigger
 * packed matrix (e.g. a run of slots of an attention value cache kept as panels). */
void conv_gemm_ps(float *y, int ldy, const float *x, size_t ldx, int M, const float *wp, size_t pstride, int rows,
                  int cols, const float *b, int mode);
void conv_gemm_ps_ref(float *y, int ldy, const float *x, size_t ldx, int M, const float *wp, size_t pstride,
                      int rows, int cols, const float *b, int mode);
/* BF16 panels (uint16, same layout; made with conv_pack_bf16): each weight widened exactly
 * to F32, then the same FMAs, so the result equals conv_gemm_ps on the widened weights.
 * Approximate only through the weights' rounding (speed mode: half the bytes streamed). */
void conv_gemm_ps_bf16(float *y, int ldy, const float *x, size_t ldx, int M, const uint16_t *wp, size_t pstride,
                       int rows, int cols, const float *b, int mode);
void conv_gemm_ps_bf16_ref(float *y, int ldy, const float *x, size_t ldx, int M, const uint16_t *wp,
                           size_t pstride, int rows, int cols, const float *b, int mode);
/* The AVX2+FMA versions the dispatch picks without AVX-512 (x86 only; call only when the
 * CPU has AVX2 and FMA; tests compare them with the references). */
void conv_gemm_ps_avx2(float *y, int ldy, const float *x, size_t ldx, int M, const float *wp, size_t pstride,
                       int rows, int cols, const float *b, int mode);
void conv_gemm_ps_bf16_avx2(float *y, int ldy, const float *x, size_t ldx, int M, const uint16_t *wp,
                            size_t pstride, int rows, int cols, const float *b, int mode);
/* AVX2+FMA versions of conv_softmax / conv_dot (cols <= 1024), for the tests. */
void conv_softmax_avx2(float *x, int n, float scale);
void conv_dot_avx2(float *y, const float *x, size_t ldx, int M, const float *wp, int cols, float b);
/* dst[i] = bf16(src[i]) (round to nearest even), n packed floats -> uint16 (load time). */
void conv_pack_bf16(uint16_t *dst, const float *src, size_t n);

/* y[m] = b + x[m*ldx ..+cols) . W'[0] (a one-row packed matrix; conv1d_tm_run uses it
 * for cout == 1): 16 lane-wise partial sums and a fixed tree, same bits in the AVX-512
 * version and the C reference, independent of M. */
void conv_dot(float *y, const float *x, size_t ldx, int M, const float *wp, int cols, float b);
void conv_dot_ref(float *y, const float *x, size_t ldx, int M, const float *wp, int cols, float b);

/* conv1d (groups 1): Wp of conv1d_tm_pack_floats(c) floats from c->w. */
size_t conv1d_tm_pack_floats(const conv1d *c);
void conv1d_tm_pack(const conv1d *c, float *wp);
size_t conv1d_tm_work(const conv1d *c, int T); /* floats */
/* x [T, cin] -> y [T/stride, cout] (flags CONV_IN_ELU | CONV_OUT_ADD). prev [P, cin] read
 * and updated (P = conv1d_hist); *first read and cleared (replicate padding). work:
 * conv1d_tm_work floats, not aliasing x, y. wp from conv1d_tm_pack. */
void conv1d_tm_run(const conv1d *c, const void *wp, const float *x, int T, float *prev, int *first,
                   float *y, float *work, int flags, struct nn_pool *pool);

/* convtr1d, groups 1 (packed, wp from convtr1d_tm_pack) or depthwise groups == cin ==
 * cout (wp unused: NULL). */
size_t convtr1d_tm_pack_floats(const convtr1d *c);
void convtr1d_tm_pack(const convtr1d *c, float *wp);
size_t convtr1d_tm_work(const convtr1d *c, int T);
/* x [T, cin] -> y [T*stride, cout]; tail [k - stride, cout] raw sums, read and updated. */
void convtr1d_tm_run(const convtr1d *c, const void *wp, const float *x, int T, float *tail, float *y,
                     float *work, struct nn_pool *pool);

/* In place x[0..n) = softmax(scale * x) (n >= 1): polynomial exp (a few ulps), the sum in
 * 16 lane-wise partials and a fixed tree. AVX-512 when available; conv_softmax_ref does the
 * same operations in plain C (bit-identical). The result of an element depends only on the
 * row (not on where the row sits in memory). */
void conv_softmax(float *x, int n, float scale);
void conv_softmax_ref(float *x, int n, float scale);

/* In place ELU with alpha 1: x > 0 ? x : expm1(x). */
void conv_elu(float *x, size_t n);
/* dst = ELU(src), n floats (dst may equal src). Polynomial expm1 (a few ulps from libm),
 * AVX-512 or AVX2+FMA when the CPU has it (picked here with __builtin_cpu_supports), else the same
 * arithmetic in plain C (conv_elu_generic); conv_elu_ref is the libm expm1f reference. */
void conv_elu_to(float *dst, const float *src, size_t n);
void conv_elu_generic(float *dst, const float *src, size_t n);
void conv_elu_ref(float *dst, const float *src, size_t n);

#endif
