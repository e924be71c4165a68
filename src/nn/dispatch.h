/* dispatch.h — the one place where a kernel implementation is chosen for the running CPU.
 *
 * Each hot kernel has a plain C reference (nn_ref_*) and optional x86 versions compiled
 * with __attribute__((target(...))) in kernels_x86.c (no -march flags in the Makefile).
 * nn_pick_*() (in kernels.c) ask __builtin_cpu_supports each time (a load and a bit
 * test), so there is no mutable dispatch table. Tests call the references and every x86
 * variant the CPU supports directly and compare them.
 */
#ifndef NN_DISPATCH_H
#define NN_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

typedef void (*nn_gemv_f32_fn)(float *y, const float *x, const float *W, int rows, int cols);
typedef void (*nn_gemv_bf16_fn)(float *y, const float *x, const uint16_t *W, int rows, int cols);
typedef float (*nn_dot_fn)(const float *a, const float *b, int n);
typedef void (*nn_axpy_fn)(float *y, float a, const float *x, int n); /* y += a x */
/* attention blocks of 4 queries: out[i] = q[i] . k ; o[i] += w[i] v (n values each) */
typedef void (*nn_dot4_fn)(const float *const q[4], const float *k, int n, float out[4]);
typedef void (*nn_axpy4_fn)(float *const o[4], const float w[4], const float *v, int n);
/* one query against n cache rows (row j at K + j * ld): out[j] = q . K_j (hd values) and
 * o[0..hd) += sum_j w[j] V_j — the single-query attention of a generation step */
typedef void (*nn_dotn_fn)(float *out, const float *q, const float *K, size_t ld, int n, int hd);
typedef void (*nn_axpyn_fn)(float *o, const float *w, const float *V, size_t ld, int n, int hd);
/* a block of 4 queries against n cache rows (row j at K + j * ld, hd values), the 4 queries
 * held in registers: out[i * ldo + j] = q[i] . K_j ; o[i][0..hd) += sum_j w[i * ldw + j] V_j */
typedef void (*nn_dot4n_fn)(float *out, size_t ldo, const float *const q[4], const float *K, size_t ld, int n, int hd);
typedef void (*nn_axpy4n_fn)(float *const o[4], const float *w, size_t ldw, const float *V, size_t ld, int n, int hd);
typedef void (*nn_gelu_fn)(float *x, size_t n);
/* y[m * ldy + r] = (sum_k x[m, k] W[r, k]) (+ b[r] if b) for m < M, r < rows (x [M, cols]
 * row-major, W [rows, cols] row-major, b [rows] or NULL, ldy >= rows). Every version computes
 * each output as the same sequential FMA chain over k = 0..cols-1 from 0, then adds b (see
 * nn.h, "GEMM invariance"), so all of them are bit-identical to nn_ref_gemm_*. */
typedef void (*nn_gemm_f32_fn)(float *y, int ldy, const float *x, int M, const float *W, int rows, int cols,
                               const float *b);
typedef void (*nn_gemm_bf16_fn)(float *y, int ldy, const float *x, int M, const uint16_t *W, int rows, int cols,
                                const float *b);
/* int8 weights [rows, cols] with per-row scales ws [rows] x int8 activations (nn_q8x, M
 * rows); cols % 32 == 0. y[m * ldy + r]; see nn.h "int8 (NN_Q8)" */
struct nn_q8x;
typedef void (*nn_gemm_q8_fn)(float *y, int ldy, const struct nn_q8x *x, int M, const int8_t *W, const float *ws,
                              int rows, int cols);

/* x86 versions (kernels_x86.c); only call when the matching nn_cpu_* is true. */
void nn_avx2_gemv_f32(float *y, const float *x, const float *W, int rows, int cols);
void nn_avx2_gemv_bf16(float *y, const float *x, const uint16_t *W, int rows, int cols);
float nn_avx2_dot(const float *a, const float *b, int n);
void nn_avx2_axpy(float *y, float a, const float *x, int n);
void nn_avx2_dot4(const float *const q[4], const float *k, int n, float out[4]);
void nn_avx2_axpy4(float *const o[4], const float w[4], const float *v, int n);
void nn_avx2_gelu(float *x, size_t n); /* |err| vs erff-based reference <= ~3e-7 * |x| */
void nn_avx512_gemv_f32(float *y, const float *x, const float *W, int rows, int cols);
void nn_avx512_gemv_bf16(float *y, const float *x, const uint16_t *W, int rows, int cols);

/* packed outer-product GEMM (gemm_x86.c): AVX-512 panels of 32 outputs x 12 x rows, AVX2
 * 16 x 6; weight panels packed K-major into a 32 KiB / 16 KiB stack buffer */
void nn_avx512_gemm_f32(float *y, int ldy, const float *x, int M, const float *W, int rows, int cols, const float *b);
void nn_avx512_gemm_bf16(float *y, int ldy, const float *x, int M, const uint16_t *W, int rows, int cols,
                         const float *b);
void nn_avx2_gemm_f32(float *y, int ldy, const float *x, int M, const float *W, int rows, int cols, const float *b);
void nn_avx2_gemm_bf16(float *y, int ldy, const float *x, int M, const uint16_t *W, int rows, int cols, const float *b);

/* AVX-512 VNNI (vpdpbusd on (w + 128) x q_x, offset corrected) / AVX2 (sign trick with
 * vpmaddubsw, exact since |w|, |x| <= 127) */
void nn_avx512vnni_gemm_q8(float *y, int ldy, const struct nn_q8x *x, int M, const int8_t *W, const float *ws,
                           int rows, int cols);
void nn_avx2_gemm_q8(float *y, int ldy, const struct nn_q8x *x, int M, const int8_t *W, const float *ws, int rows,
                     int cols);

/* AVX-512 quantizers: bit-identical to nn_ref_q8_quant_weights / _act (same float
 * operations per element, max is order-independent) */
void nn_avx512_q8_quant_weights(int8_t *q, float *s, const float *W, int rows, int cols);
void nn_avx512_q8_quant_act(int8_t *q, float *s, int32_t *c, const float *x, int M, int cols);

/* hd % 16 == 0 and hd <= 128 only (q / o live in registers) */
void nn_avx512_dotn(float *out, const float *q, const float *K, size_t ld, int n, int hd);
void nn_avx512_axpyn(float *o, const float *w, const float *V, size_t ld, int n, int hd);
/* hd % 16 == 0 and hd <= 64 only (4 queries / 4 output rows = up to 16 zmm in registers) */
void nn_avx512_dot4n(float *out, size_t ldo, const float *const q[4], const float *K, size_t ld, int n, int hd);
void nn_avx512_axpy4n(float *const o[4], const float *w, size_t ldw, const float *V, size_t ld, int n, int hd);

/* dst[i] = nn_f32_to_bf16(src[i]) for i < n, bit-identical (integer rounding, NaN kept quiet) */
void nn_avx512_f32_to_bf16(uint16_t *dst, const float *src, size_t n);

int nn_cpu_avx2(void);   /* AVX2 + FMA */
int nn_cpu_avx512vnni(void); /* nn_cpu_avx512() + AVX-512 VNNI */
int nn_cpu_avx512(void); /* AVX-512 F */

nn_gemv_f32_fn nn_pick_gemv_f32(void);
nn_gemv_bf16_fn nn_pick_gemv_bf16(void);
nn_dot_fn nn_pick_dot(void);
nn_axpy_fn nn_pick_axpy(void);
nn_dot4_fn nn_pick_dot4(void);
nn_gelu_fn nn_pick_gelu(void);
nn_axpy4_fn nn_pick_axpy4(void);
/* the AVX-512 versions when the CPU has them and hd % 16 == 0, hd <= 128; else references */
nn_dotn_fn nn_pick_dotn(int hd);
nn_axpyn_fn nn_pick_axpyn(int hd);
/* the AVX-512 versions when the CPU has them and hd % 16 == 0, hd <= 64; else loops over
 * nn_pick_dot4() / nn_pick_axpy4() (same results as the references up to summation order) */
nn_dot4n_fn nn_pick_dot4n(int hd);
nn_axpy4n_fn nn_pick_axpy4n(int hd);
/* AVX-512, AVX2, else the (slow, exact) references; nn_linear uses OpenBLAS sgemm for M > 1
 * instead when the CPU has neither (nn_gemm_fast() == 0). */
nn_gemm_f32_fn nn_pick_gemm_f32(void);
nn_gemm_bf16_fn nn_pick_gemm_bf16(void);
int nn_gemm_fast(void); /* our packed GEMM runs (AVX2 or AVX-512) */
/* never NULL: VNNI, AVX2 or the reference */
nn_gemm_q8_fn nn_pick_gemm_q8(void);

#endif
