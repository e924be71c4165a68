/* gemm_x86.c — the small-M GEMM behind nn_linear for M >= 2 with F32 or BF16 weights,
 * AVX-512 and AVX2/FMA: y[m * ldy + r] = b[r] + sum_k x[m * cols + k] * W[r * cols + k],
 * W in PyTorch's natural [rows, cols] layout (see dispatch.h for the signatures).
 *
 * Outer-product (broadcast) form, as in BLIS/GotoBLAS but without packing x: a panel of NR
 * output rows x a k-block of KC inputs of W is transposed to K-major and widened to f32
 * (exact for BF16) into a stack buffer (AVX-512: NR 32 x KC 256 floats = 32 KiB, which stays
 * in L1 while every block of up to MR rows of x runs against it). The microkernel keeps
 * MR x NR/w accumulators in registers (AVX-512 12 x 2 zmm, AVX2 6 x 2 ymm); per k it loads
 * NR/w weight vectors and broadcasts one x value per row, MR*NR/w FMAs for NR/w + MR loads,
 * and no horizontal sums. Accumulators start at 0 (first k-block) or at the partial sums
 * already in y (later k-blocks) and go back to y at the end of each k-block. W is read from
 * memory once per call (a panel is packed once and used by all M rows); x is read in place.
 * Edge tiles (k or row tails) are packed by scalar code and padded with zero rows, whose
 * outputs are never stored (masked stores). While a block runs through the microkernel, the
 * lines of the block packed next are prefetched into L2 (packing otherwise waits on DRAM).
 * No allocation: the panel buffer is on the caller's stack (32 KiB AVX-512, 16 KiB AVX2).
 * W is packed on every call rather than kept pre-packed because the M == 1 GEMV needs the
 * natural layout and a second copy would double the weights' memory; packing costs ~15-20 %
 * at M = 45 and is bounded by the weight stream at small M (speed-gemm.md in the notes).
 *
 * Invariance (nn.h promises it; Mimi decodes several frames per call relying on it): every
 * output is the sequential chain acc = fma(x[m][k], W[r][k], acc) for k = 0, 1, ...,
 * cols-1 from acc = 0 (partial sums leave and re-enter registers as exact f32 values),
 * then acc + b[r]. The vector lane an output sits in, the block of x rows it is computed
 * with, the panel, the chunk and the thread never change that chain, so results are
 * bit-identical to nn_ref_gemm_f32/_bf16 (kernels.c), across M, across thread counts and
 * between the AVX2 and AVX-512 versions.
 */
#include "nn/dispatch.h"
#include "nn/nn.h"

#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#define T2 __attribute__((target("avx2,fma")))
#define T5 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))
#define INL static inline __attribute__((always_inline))

#ifndef NN_G5_KC
#define NN_G5_KC 256
#endif
enum {
    G5_NR = 32, G5_MR = 12, G5_KC = NN_G5_KC, /* AVX-512: 2 zmm of outputs x 12 x rows, k-block 256 */
    G2_NR = 16, G2_MR = 6, G2_KC = 256,       /* AVX2: 2 ymm of outputs x 6 x rows */
};

static inline float bf16f(uint16_t h)
{
    union { uint32_t u; float f; } c = {.u = (uint32_t)h << 16};
    return c.f;
}

/* Scalar packing of one edge tile: wp[(kp + c) * nrp + j] = W[j][kw + c] for j0 <= j < j1
 * (0 for j >= nr), c < n. ld = W's row stride in elements. */
static void pack_edge(float *wp, int nrp, int kp, const void *W, int bf16, size_t ld, int kw, int nr, int j0, int j1,
                      int n)
{
    for (int c = 0; c < n; c++)
        for (int j = j0; j < j1; j++) {
            float v = 0.0f;
            if (j < nr) {
                size_t o = (size_t)j * ld + (size_t)(kw + c);
                v = bf16 ? bf16f(((const uint16_t *)W)[o]) : ((const float *)W)[o];
            }
            wp[(size_t)(kp + c) * nrp + j] = v;
        }
}

/* balanced blocks of at most mr rows: block i of nb covers [lo(i), lo(i+1)) */
static inline int mblock_lo(int M, int nb, int i) { return (int)((long)M * i / nb); }

/* ---- AVX-512 ---------------------------------------------------------------------------- */

/* Row i of a 16-row tile as 16 f32 (k0..k0+15 of W row i; zero past nr): f32 or BF16 */
#define LD5(i)                                                                                                   \
    ((i) >= nv ? _mm512_setzero_ps()                                                                             \
     : bf16    ? _mm512_castsi512_ps(_mm512_slli_epi32(                                                          \
                  _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)((const uint16_t *)W + (size_t)(i) * ld + k))), 16)) \
               : _mm512_loadu_ps((const float *)W + (size_t)(i) * ld + k))

/* wp[c * 32 + j] = W[j][k + c], c < 16, j < 16, for one 16x16 tile (rows of W from W, stride
 * ld elements, only the first nv rows exist): a 16x16 transpose in 4 stages of 16 shuffles,
 * written so that at most ~20 registers are live (no spills). */
T5 INL void tile5(float *wp, const void *W, int bf16, size_t ld, int nv, int k)
{
    __m512 s[16];
#pragma GCC unroll 4
    for (int g = 0; g < 16; g += 4) { /* s[g + j]: 128-bit lane L = column 4L + j of rows g..g+3 */
        __m512 r0 = LD5(g), r1 = LD5(g + 1), r2 = LD5(g + 2), r3 = LD5(g + 3);
        __m512d t0 = _mm512_castps_pd(_mm512_unpacklo_ps(r0, r1)), t1 = _mm512_castps_pd(_mm512_unpackhi_ps(r0, r1));
        __m512d t2 = _mm512_castps_pd(_mm512_unpacklo_ps(r2, r3)), t3 = _mm512_castps_pd(_mm512_unpackhi_ps(r2, r3));
        s[g] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
        s[g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
        s[g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
        s[g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        __m512 u0 = _mm512_shuffle_f32x4(s[j], s[4 + j], 0x88); /* lanes 0, 2 of rows 0-3, 4-7 */
        __m512 u1 = _mm512_shuffle_f32x4(s[j], s[4 + j], 0xdd); /* lanes 1, 3 */
        __m512 u2 = _mm512_shuffle_f32x4(s[8 + j], s[12 + j], 0x88);
        __m512 u3 = _mm512_shuffle_f32x4(s[8 + j], s[12 + j], 0xdd);
        _mm512_store_ps(wp + (size_t)j * G5_NR, _mm512_shuffle_f32x4(u0, u2, 0x88));        /* column j */
        _mm512_store_ps(wp + (size_t)(8 + j) * G5_NR, _mm512_shuffle_f32x4(u0, u2, 0xdd));  /* column 8 + j */
        _mm512_store_ps(wp + (size_t)(4 + j) * G5_NR, _mm512_shuffle_f32x4(u1, u3, 0x88));  /* column 4 + j */
        _mm512_store_ps(wp + (size_t)(12 + j) * G5_NR, _mm512_shuffle_f32x4(u1, u3, 0xdd)); /* column 12 + j */
    }
}

/* wp[k * 32 + j] = W[j][k0 + k] as f32, k < kc, j < 32 (0 for j >= nr); W [nr, ld].
 * pf (or NULL): the start of the W block packed next (same row stride, 32 rows of kc' <= KC
 * values); its lines are prefetched into L2 now, so that pack does not wait on memory. */
T5 static void pack5(float *wp, const void *W, int bf16, size_t ld, int nr, int k0, int kc, const void *pf)
{
    int full = kc & ~15;
    size_t esz = bf16 ? 2 : 4;
    for (int j0 = 0; j0 < G5_NR; j0 += 16) {
        if (j0 >= nr) { /* a whole zero half-panel */
            for (int k = 0; k < kc; k++) _mm512_store_ps(wp + (size_t)k * G5_NR + j0, _mm512_setzero_ps());
            continue;
        }
        const char *wr = (const char *)W + (size_t)j0 * ld * esz + (size_t)k0 * esz;
        int nv = nr - j0;
        for (int k = 0; k < full; k += 16) {
            if (pf && (k * esz) % 64 == 0)
                for (int i = 0; i < 16; i++)
                    _mm_prefetch((const char *)pf + ((size_t)(j0 + i) * ld + (size_t)k) * esz, _MM_HINT_T1);
            tile5(wp + (size_t)k * G5_NR + j0, wr, bf16, ld, nv, k);
        }
        if (full < kc) pack_edge(wp, G5_NR, full, W, bf16, ld, k0 + full, nr, j0, j0 + 16, kc - full);
    }
}

/* One MR x 32 block over a k-block: y rows m (stride ldy), x rows (stride ldx) already
 * offset to the block and the k-block start; wp = packed panel; n0/n1 = output-lane masks
 * of the two halves; first: start from 0 instead of y; b (last k-block only) added. The
 * body is a macro over named registers so every MR gets its own straight-line code. */
#define K5_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define K5_DECL(i) __m512 a##i##_0 = _mm512_setzero_ps(), a##i##_1 = a##i##_0; const float *x##i = x + (size_t)(i < MR ? i : 0) * ldx;
#define K5_LOAD(i)                                                                        \
    if (i < MR && !first) {                                                               \
        a##i##_0 = _mm512_maskz_loadu_ps(n0, y + (size_t)i * ldy);                        \
        a##i##_1 = _mm512_maskz_loadu_ps(n1, y + (size_t)i * ldy + 16);                   \
    }
#define K5_FMA(i)                                                                         \
    if (i < MR) {                                                                         \
        __m512 xv = _mm512_set1_ps(x##i[k]);                                              \
        a##i##_0 = _mm512_fmadd_ps(w0, xv, a##i##_0);                                     \
        a##i##_1 = _mm512_fmadd_ps(w1, xv, a##i##_1);                                     \
    }
#define K5_STORE(i)                                                                       \
    if (i < MR) {                                                                         \
        if (b) a##i##_0 = _mm512_add_ps(a##i##_0, b0), a##i##_1 = _mm512_add_ps(a##i##_1, b1); \
        _mm512_mask_storeu_ps(y + (size_t)i * ldy, n0, a##i##_0);                         \
        _mm512_mask_storeu_ps(y + (size_t)i * ldy + 16, n1, a##i##_1);                    \
    }
#define K5_DEF(N)                                                                                               \
    T5 static void k5_##N(float *y, int ldy, const float *x, int ldx, const float *wp, int kc, int first,    \
                          const float *b, __mmask16 n0, __mmask16 n1)                                         \
    {                                                                                                           \
        enum { MR = N };                                                                                        \
        K5_ROWS(K5_DECL)                                                                                        \
        K5_ROWS(K5_LOAD)                                                                                        \
        for (int k = 0; k < kc; k++) {                                                                          \
            __m512 w0 = _mm512_load_ps(wp + (size_t)k * G5_NR), w1 = _mm512_load_ps(wp + (size_t)k * G5_NR + 16); \
            K5_ROWS(K5_FMA)                                                                                     \
        }                                                                                                       \
        __m512 b0 = _mm512_setzero_ps(), b1 = b0;                                                               \
        if (b) b0 = _mm512_maskz_loadu_ps(n0, b), b1 = _mm512_maskz_loadu_ps(n1, b + 16);                      \
        K5_ROWS(K5_STORE)                                                                                       \
    }
K5_DEF(1)
K5_DEF(2)
K5_DEF(3)
K5_DEF(4)
K5_DEF(5)
K5_DEF(6)
K5_DEF(7)
K5_DEF(8)
K5_DEF(9)
K5_DEF(10)
K5_DEF(11)
K5_DEF(12)

typedef void (*k5_fn)(float *y, int ldy, const float *x, int ldx, const float *wp, int kc, int first, const float *b,
                      __mmask16 n0, __mmask16 n1);
static const k5_fn k5_tab[G5_MR + 1] = {NULL, k5_1, k5_2, k5_3, k5_4, k5_5, k5_6, k5_7, k5_8, k5_9, k5_10, k5_11, k5_12};

T5 static void gemm5(float *y, int ldy, const float *x, int M, const void *W, int bf16, int rows, int cols, const float *b)
{
    _Alignas(64) float wp[G5_KC * G5_NR];
    int nb = (M + G5_MR - 1) / G5_MR;
    size_t esz = bf16 ? 2 : 4;
    for (int r0 = 0; r0 < rows; r0 += G5_NR) {
        int nr = rows - r0 < G5_NR ? rows - r0 : G5_NR;
        __mmask16 n0 = (__mmask16)(nr >= 16 ? 0xffffu : (1u << nr) - 1);
        __mmask16 n1 = (__mmask16)(nr >= 32 ? 0xffffu : nr <= 16 ? 0u : (1u << (nr - 16)) - 1);
        const char *wr = (const char *)W + (size_t)r0 * cols * esz;
        for (int k0 = 0; k0 < cols; k0 += G5_KC) {
            int kc = cols - k0 < G5_KC ? cols - k0 : G5_KC;
            /* the block packed next: this panel's next k-block, else the next panel's first */
            const char *pf = k0 + kc < cols ? wr + (size_t)(k0 + kc) * esz
                             : r0 + G5_NR < rows ? wr + (size_t)G5_NR * cols * esz : NULL;
            pack5(wp, wr, bf16, (size_t)cols, nr, k0, kc, pf);
            const float *bb = k0 + kc == cols && b ? b + r0 : NULL;
            for (int i = 0; i < nb; i++) {
                int m0 = mblock_lo(M, nb, i), m1 = mblock_lo(M, nb, i + 1);
                k5_tab[m1 - m0](y + (size_t)m0 * ldy + r0, ldy, x + (size_t)m0 * cols + k0, cols, wp, kc, k0 == 0, bb, n0,
                                n1);
            }
        }
    }
}

T5 void nn_avx512_gemm_f32(float *y, int ldy, const float *x, int M, const float *W, int rows, int cols, const float *b)
{
    gemm5(y, ldy, x, M, W, 0, rows, cols, b);
}

T5 void nn_avx512_gemm_bf16(float *y, int ldy, const float *x, int M, const uint16_t *W, int rows, int cols,
                            const float *b)
{
    gemm5(y, ldy, x, M, W, 1, rows, cols, b);
}

/* ---- AVX2 ------------------------------------------------------------------------------- */

/* Row i of an 8-row tile as 8 f32 (W[i][k..k+7], f32 or BF16 widened; zero past nv rows) */
#define LD2(i)                                                                                                   \
    ((i) >= nv ? _mm256_setzero_ps()                                                                             \
     : bf16    ? _mm256_castsi256_ps(_mm256_slli_epi32(                                                          \
                  _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)W + (size_t)(i) * ld + k))), 16)) \
               : _mm256_loadu_ps((const float *)W + (size_t)(i) * ld + k))

/* wp[c * 16 + j] = W[j][k + c] for c, j < 8: an 8x8 transpose (unpack, shuffle, 128-bit
 * permute: 24 shuffles), at most ~12 registers live. */
T2 INL void tile2(float *wp, const void *W, int bf16, size_t ld, int nv, int k)
{
    __m256 s[8];
#pragma GCC unroll 2
    for (int g = 0; g < 8; g += 4) { /* s[g + j]: 128-bit lane L = column 4L + j of rows g..g+3 */
        __m256 r0 = LD2(g), r1 = LD2(g + 1), r2 = LD2(g + 2), r3 = LD2(g + 3);
        __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
        __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
        s[g] = _mm256_shuffle_ps(t0, t2, 0x44);
        s[g + 1] = _mm256_shuffle_ps(t0, t2, 0xee);
        s[g + 2] = _mm256_shuffle_ps(t1, t3, 0x44);
        s[g + 3] = _mm256_shuffle_ps(t1, t3, 0xee);
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        _mm256_store_ps(wp + (size_t)j * G2_NR, _mm256_permute2f128_ps(s[j], s[4 + j], 0x20));       /* column j */
        _mm256_store_ps(wp + (size_t)(4 + j) * G2_NR, _mm256_permute2f128_ps(s[j], s[4 + j], 0x31)); /* column 4 + j */
    }
}

/* wp[k * 16 + j] = W[j][k0 + k] as f32, k < kc, j < 16 (0 for j >= nr); pf as in pack5 */
T2 static void pack2(float *wp, const void *W, int bf16, size_t ld, int nr, int k0, int kc, const void *pf)
{
    int full = kc & ~7;
    size_t esz = bf16 ? 2 : 4;
    for (int j0 = 0; j0 < G2_NR; j0 += 8) {
        if (j0 >= nr) {
            for (int k = 0; k < kc; k++) _mm256_store_ps(wp + (size_t)k * G2_NR + j0, _mm256_setzero_ps());
            continue;
        }
        const char *wr = (const char *)W + (size_t)j0 * ld * esz + (size_t)k0 * esz;
        int nv = nr - j0;
        for (int k = 0; k < full; k += 8) {
            if (pf && (k * esz) % 64 == 0)
                for (int i = 0; i < 8; i++)
                    _mm_prefetch((const char *)pf + ((size_t)(j0 + i) * ld + (size_t)k) * esz, _MM_HINT_T1);
            tile2(wp + (size_t)k * G2_NR + j0, wr, bf16, ld, nv, k);
        }
        if (full < kc) pack_edge(wp, G2_NR, full, W, bf16, ld, k0 + full, nr, j0, j0 + 8, kc - full);
    }
}

#define K2_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define K2_DECL(i) __m256 a##i##_0 = _mm256_setzero_ps(), a##i##_1 = a##i##_0; const float *x##i = x + (size_t)(i < MR ? i : 0) * ldx;
#define K2_LOAD(i)                                                                        \
    if (i < MR && !first) {                                                               \
        a##i##_0 = _mm256_maskload_ps(y + (size_t)i * ldy, n0);                           \
        a##i##_1 = _mm256_maskload_ps(y + (size_t)i * ldy + 8, n1);                       \
    }
#define K2_FMA(i)                                                                         \
    if (i < MR) {                                                                         \
        __m256 xv = _mm256_broadcast_ss(x##i + k);                                        \
        a##i##_0 = _mm256_fmadd_ps(w0, xv, a##i##_0);                                     \
        a##i##_1 = _mm256_fmadd_ps(w1, xv, a##i##_1);                                     \
    }
#define K2_STORE(i)                                                                       \
    if (i < MR) {                                                                         \
        if (b) a##i##_0 = _mm256_add_ps(a##i##_0, b0), a##i##_1 = _mm256_add_ps(a##i##_1, b1); \
        _mm256_maskstore_ps(y + (size_t)i * ldy, n0, a##i##_0);                           \
        _mm256_maskstore_ps(y + (size_t)i * ldy + 8, n1, a##i##_1);                       \
    }
#define K2_DEF(N)                                                                                               \
    T2 static void k2_##N(float *y, int ldy, const float *x, int ldx, const float *wp, int kc, int first,    \
                          const float *b, __m256i n0, __m256i n1)                                             \
    {                                                                                                           \
        enum { MR = N };                                                                                        \
        K2_ROWS(K2_DECL)                                                                                        \
        K2_ROWS(K2_LOAD)                                                                                        \
        for (int k = 0; k < kc; k++) {                                                                          \
            __m256 w0 = _mm256_load_ps(wp + (size_t)k * G2_NR), w1 = _mm256_load_ps(wp + (size_t)k * G2_NR + 8); \
            K2_ROWS(K2_FMA)                                                                                     \
        }                                                                                                       \
        __m256 b0 = _mm256_setzero_ps(), b1 = b0;                                                               \
        if (b) b0 = _mm256_maskload_ps(b, n0), b1 = _mm256_maskload_ps(b + 8, n1);                              \
        K2_ROWS(K2_STORE)                                                                                       \
    }
K2_DEF(1)
K2_DEF(2)
K2_DEF(3)
K2_DEF(4)
K2_DEF(5)
K2_DEF(6)

typedef void (*k2_fn)(float *y, int ldy, const float *x, int ldx, const float *wp, int kc, int first, const float *b,
                      __m256i n0, __m256i n1);
static const k2_fn k2_tab[G2_MR + 1] = {NULL, k2_1, k2_2, k2_3, k2_4, k2_5, k2_6};

/* lanes i < n all ones (maskload/maskstore take the sign bit) */
T2 static inline __m256i lanes2(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

T2 static void gemm2(float *y, int ldy, const float *x, int M, const void *W, int bf16, int rows, int cols, const float *b)
{
    _Alignas(32) float wp[G2_KC * G2_NR];
    int nb = (M + G2_MR - 1) / G2_MR;
    size_t esz = bf16 ? 2 : 4;
    for (int r0 = 0; r0 < rows; r0 += G2_NR) {
        int nr = rows - r0 < G2_NR ? rows - r0 : G2_NR;
        __m256i n0 = lanes2(nr), n1 = lanes2(nr - 8);
        const char *wr = (const char *)W + (size_t)r0 * cols * esz;
        for (int k0 = 0; k0 < cols; k0 += G2_KC) {
            int kc = cols - k0 < G2_KC ? cols - k0 : G2_KC;
            const char *pf = k0 + kc < cols ? wr + (size_t)(k0 + kc) * esz
                             : r0 + G2_NR < rows ? wr + (size_t)G2_NR * cols * esz : NULL;
            pack2(wp, wr, bf16, (size_t)cols, nr, k0, kc, pf);
            const float *bb = k0 + kc == cols && b ? b + r0 : NULL;
            for (int i = 0; i < nb; i++) {
                int m0 = mblock_lo(M, nb, i), m1 = mblock_lo(M, nb, i + 1);
                k2_tab[m1 - m0](y + (size_t)m0 * ldy + r0, ldy, x + (size_t)m0 * cols + k0, cols, wp, kc, k0 == 0, bb, n0,
                                n1);
            }
        }
    }
}

T2 void nn_avx2_gemm_f32(float *y, int ldy, const float *x, int M, const float *W, int rows, int cols, const float *b)
{
    gemm2(y, ldy, x, M, W, 0, rows, cols, b);
}

T2 void nn_avx2_gemm_bf16(float *y, int ldy, const float *x, int M, const uint16_t *W, int rows, int cols,
                          const float *b)
{
    gemm2(y, ldy, x, M, W, 1, rows, cols, b);
}

#else /* not x86: never selected (nn_pick_gemm_* return the references) */

void nn_avx512_gemm_f32(float *y, int ldy, const float *x, int M, const float *W, int rows, int cols, const float *b)
{
    (void)y, (void)ldy, (void)x, (void)M, (void)W, (void)rows, (void)cols, (void)b;
}
void nn_avx512_gemm_bf16(float *y, int ldy, const float *x, int M, const uint16_t *W, int rows, int cols, const float *b)
{
    (void)y, (void)ldy, (void)x, (void)M, (void)W, (void)rows, (void)cols, (void)b;
}
void nn_avx2_gemm_f32(float *y, int ldy, const float *x, int M, const float *W, int rows, int cols, const float *b)
{
    (void)y, (void)ldy, (void)x, (void)M, (void)W, (void)rows, (void)cols, (void)b;
}
void nn_avx2_gemm_bf16(float *y, int ldy, const float *x, int M, const uint16_t *W, int rows, int cols, const float *b)
{
    (void)y, (void)ldy, (void)x, (void)M, (void)W, (void)rows, (void)cols, (void)b;
}

#endif
