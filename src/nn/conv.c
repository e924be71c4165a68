/* conv.c — streaming Conv1d / ConvTranspose1d (causal, SEANet style), ELU, and the
 * small kernels of the Mimi codec.
 *
 * Channel-major references (*_ref): build the "padded" view of the input (history + new
 * columns for conv1d; the full transposed output for convtr1d) in the caller's work buffer
 * and loop directly, any groups. They define the streaming semantics (conv.h) and are what
 * the tests compare the fast path against.
 *
 * The time-major ("_tm") path (the Mimi codec) is the fast one, with its own kernel, conv_gemm:
 * weights packed once into 16-row k-major panels, an 8-row x 3-panel register block of
 * broadcast FMAs (AVX-512; conv_gemm_ref is the plain C twin, bit-identical), each output
 * a sequential FMA chain over its inputs, so results never depend on how many rows share
 * a call or on a pool split. Weight panels are streamed once per 64-row chunk of the input
 * with software prefetch (the first SEANet layers are bound by DRAM bandwidth). The small
 * helpers beside it (add2, ELU, softmax, dot) follow the same rule: every element gets the
 * same operations wherever it sits.
 */
#include "nn/conv.h"

#include <math.h>
#include <string.h>

#include "core/err.h"
#include "nn/nn.h"

int conv1d_hist(const conv1d *c)
{
    int p = (c->k - 1) * c->dil + 1 - c->stride;
    CORE_ASSERT(p >= 0);
    return p;
}

size_t conv1d_work(const conv1d *c, int T)
{
    size_t P = (size_t)conv1d_hist(c);
    size_t tout = (size_t)(T / c->stride);
    return (size_t)c->cin * (P + (size_t)T) + (size_t)c->cin * (size_t)c->k * tout;
}

/* Builds xp [cin, P+T] = [prev | x] in work, then updates prev/first. Returns xp. */
static float *conv1d_pad(const conv1d *c, const float *x, int T, float *prev, int *first,
                         float *work)
{
    int P = conv1d_hist(c);
    int L = P + T;
    float *xp = work;
    CORE_ASSERT(T > 0 && T % c->stride == 0);
    CORE_ASSERT(P == 0 || prev != NULL);
    if (P > 0 && c->pad_replicate && first && *first) {
        for (int ci = 0; ci < c->cin; ci++)
            for (int j = 0; j < P; j++) prev[(size_t)ci * P + j] = x[(size_t)ci * T];
    }
    for (int ci = 0; ci < c->cin; ci++) {
        float *row = xp + (size_t)ci * L;
        if (P > 0) memcpy(row, prev + (size_t)ci * P, (size_t)P * sizeof(float));
        memcpy(row + P, x + (size_t)ci * T, (size_t)T * sizeof(float));
    }
    if (P > 0) {
        for (int ci = 0; ci < c->cin; ci++)
            memcpy(prev + (size_t)ci * P, xp + (size_t)ci * L + (L - P), (size_t)P * sizeof(float));
    }
    if (first) *first = 0;
    return xp;
}

void conv1d_run_ref(const conv1d *c, const float *x, int T, float *prev, int *first, float *y,
                    float *work)
{
    int P = conv1d_hist(c);
    int L = P + T;
    int tout = T / c->stride;
    int cin_g = c->cin / c->groups, cout_g = c->cout / c->groups;
    const float *xp = conv1d_pad(c, x, T, prev, first, work);
    for (int o = 0; o < c->cout; o++) {
        int g = o / cout_g;
        const float *wo = c->w + (size_t)o * cin_g * c->k;
        for (int t = 0; t < tout; t++) {
            float acc = c->b ? c->b[o] : 0.0f;
            for (int il = 0; il < cin_g; il++) {
                const float *row = xp + (size_t)(g * cin_g + il) * L + (size_t)t * c->stride;
                const float *wr = wo + (size_t)il * c->k;
                for (int j = 0; j < c->k; j++) acc += wr[j] * row[j * c->dil];
            }
            y[(size_t)o * tout + t] = acc;
        }
    }
}

int convtr1d_hist(const convtr1d *c)
{
    int p = c->k - c->stride;
    CORE_ASSERT(p >= 0);
    return p;
}

size_t convtr1d_work(const convtr1d *c, int T)
{
    size_t P = (size_t)convtr1d_hist(c);
    return (size_t)c->cout * ((size_t)T * c->stride + P);
}

/* full [cout, T*s+P] holds bias + transposed conv; add the tail, emit, keep the new tail. */
static void convtr1d_finish(const convtr1d *c, int T, const float *full, float *partial, float *y)
{
    int P = convtr1d_hist(c);
    int n = T * c->stride;
    int L = n + P;
    for (int o = 0; o < c->cout; o++) {
        const float *fo = full + (size_t)o * L;
        float *yo = y + (size_t)o * n;
        float *po = partial + (size_t)o * P;
        memcpy(yo, fo, (size_t)n * sizeof(float));
        for (int j = 0; j < P && j < n; j++) yo[j] += po[j];
        float b = c->b ? c->b[o] : 0.0f;
        for (int j = 0; j < P; j++) po[j] = fo[n + j] - b;
    }
}

static void convtr1d_bias_init(const convtr1d *c, int L, float *full)
{
    for (int o = 0; o < c->cout; o++) {
        float b = c->b ? c->b[o] : 0.0f;
        float *fo = full + (size_t)o * L;
        for (int j = 0; j < L; j++) fo[j] = b;
    }
}

void convtr1d_run_ref(const convtr1d *c, const float *x, int T, float *partial, float *y,
                      float *work)
{
    int P = convtr1d_hist(c);
    int L = T * c->stride + P;
    int cin_g = c->cin / c->groups, cout_g = c->cout / c->groups;
    float *full = work;
    CORE_ASSERT(T > 0 && P <= T * c->stride);
    convtr1d_bias_init(c, L, full);
    for (int ci = 0; ci < c->cin; ci++) {
        int g = ci / cin_g;
        const float *xr = x + (size_t)ci * T;
        for (int ol = 0; ol < cout_g; ol++) {
            const float *wr = c->w + ((size_t)ci * cout_g + ol) * c->k;
            float *fo = full + (size_t)(g * cout_g + ol) * L;
            for (int t = 0; t < T; t++) {
                float xv = xr[t];
                float *dst = fo + (size_t)t * c->stride;
                for (int j = 0; j < c->k; j++) dst[j] += xv * wr[j];
            }
        }
    }
    convtr1d_finish(c, T, full, partial, y);
}

/* expm1 for x <= 0 without a libm call: x = n ln2 + r, |r| <= ln2/2,
 * expm1(x) = 2^n expm1(r) + (2^n - 1) with a degree-8 Taylor polynomial for expm1(r)
 * (truncation < 3e-10 relative) and 2^n built from its exponent bits. Max error against
 * libm expm1 over [-90, 0]: a few float ulps (tested in test_conv.c). */
static inline float expm1_neg(float x)
{
    x = x < -87.0f ? -87.0f : x;
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round (1.5*2^23 trick) */
    float r = x - n * 0.693145751953125f;  /* ln2 hi (exact product for |n| < 2^11) */
    r = r - n * 1.42860682030941723212e-6f; /* ln2 lo */
    float p = 1.0f / 40320.0f;
    p = p * r + 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r * r + r; /* expm1(r) */
    union { unsigned u; float f; } sc = {.u = (unsigned)((int)n + 127) << 23};
    return sc.f * p + (sc.f - 1.0f);
}

static void elu_generic(float *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = src[i];
        float e = expm1_neg(v < 0.0f ? v : 0.0f);
        dst[i] = v > 0.0f ? v : e;
    }
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
/* Same arithmetic as expm1_neg, 8 lanes at a time (AVX2 + FMA). */
__attribute__((target("avx2,fma"))) static void elu_avx2(float *dst, const float *src, size_t n)
{
    const __m256 zero = _mm256_setzero_ps(), lo = _mm256_set1_ps(-87.0f);
    const __m256 l2e = _mm256_set1_ps(1.44269504088896341f), magic = _mm256_set1_ps(12582912.0f);
    const __m256 ln2h = _mm256_set1_ps(0.693145751953125f), ln2l = _mm256_set1_ps(1.42860682030941723212e-6f);
    const __m256 one = _mm256_set1_ps(1.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(src + i);
        __m256 x = _mm256_max_ps(_mm256_min_ps(v, zero), lo);
        __m256 nn = _mm256_sub_ps(_mm256_fmadd_ps(x, l2e, magic), magic);
        __m256 r = _mm256_fnmadd_ps(nn, ln2h, x);
        r = _mm256_fnmadd_ps(nn, ln2l, r);
        __m256 p = _mm256_set1_ps(1.0f / 40320.0f);
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 5040.0f));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
        p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r);
        __m256i bits =
            _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(nn), _mm256_set1_epi32(127)), 23);
        __m256 sc = _mm256_castsi256_ps(bits);
        __m256 e = _mm256_fmadd_ps(sc, p, _mm256_sub_ps(sc, one));
        _mm256_storeu_ps(dst + i, _mm256_blendv_ps(e, v, _mm256_cmp_ps(v, zero, _CMP_GT_OQ)));
    }
    elu_generic(dst + i, src + i, n - i);
}
#endif

#if defined(__x86_64__) || defined(__i386__)
/* The AVX2 arithmetic, 16 lanes, the tail through a mask (every element gets the same
 * operations wherever it sits in the array). */
__attribute__((target("avx512f"))) static void elu_avx512(float *dst, const float *src, size_t n)
{
    const __m512 zero = _mm512_setzero_ps(), lo = _mm512_set1_ps(-87.0f);
    const __m512 l2e = _mm512_set1_ps(1.44269504088896341f), magic = _mm512_set1_ps(12582912.0f);
    const __m512 ln2h = _mm512_set1_ps(0.693145751953125f), ln2l = _mm512_set1_ps(1.42860682030941723212e-6f);
    const __m512 one = _mm512_set1_ps(1.0f);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 k = (__mmask16)(n - i >= 16 ? 0xffffu : (1u << (n - i)) - 1u);
        __m512 v = _mm512_maskz_loadu_ps(k, src + i);
        __m512 x = _mm512_max_ps(_mm512_min_ps(v, zero), lo);
        __m512 nn = _mm512_sub_ps(_mm512_fmadd_ps(x, l2e, magic), magic);
        __m512 r = _mm512_fnmadd_ps(nn, ln2h, x);
        r = _mm512_fnmadd_ps(nn, ln2l, r);
        __m512 p = _mm512_set1_ps(1.0f / 40320.0f);
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 5040.0f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
        p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r);
        __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(nn), _mm512_set1_epi32(127)), 23);
        __m512 sc = _mm512_castsi512_ps(bits);
        __m512 e = _mm512_fmadd_ps(sc, p, _mm512_sub_ps(sc, one));
        _mm512_mask_storeu_ps(dst + i, k, _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, zero, _CMP_GT_OQ), e, v));
    }
}
#endif

void conv_elu_to(float *dst, const float *src, size_t n)
{
#if defined(__x86_64__) || defined(__i386__)
    if (__builtin_cpu_supports("avx512f")) {
        elu_avx512(dst, src, n);
        return;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        elu_avx2(dst, src, n);
        return;
    }
#endif
    elu_generic(dst, src, n);
}

void conv_elu_generic(float *dst, const float *src, size_t n) { elu_generic(dst, src, n); }

void conv_elu_ref(float *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = src[i];
        dst[i] = v > 0.0f ? v : expm1f(v);
    }
}

void conv_elu(float *x, size_t n) { conv_elu_to(x, x, n); }

/* ---- time-major path with packed weights (see conv.h) --------------------------------- */

static float tree16(float *v) /* fixed pairwise order */
{
    for (int w = 8; w >= 1; w /= 2)
        for (int i = 0; i < w; i++) v[i] = v[i] + v[i + w];
    return v[0];
}

size_t conv_pack_floats(int rows, int cols)
{
    return (size_t)((rows + CONV_PANEL - 1) / CONV_PANEL) * CONV_PANEL * (size_t)cols;
}

/* Zero-filled panels; then the callers scatter W'[r][c] to wp[(r/16)*cols*16 + c*16 + r%16]. */
static inline float *pk_at(float *wp, int cols, int r, int c)
{
    return wp + ((size_t)(r / CONV_PANEL) * cols + (size_t)c) * CONV_PANEL + r % CONV_PANEL;
}

void conv_gemm_ps_ref(float *y, int ldy, const float *x, size_t ldx, int M, const float *wp, size_t pstride,
                      int rows, int cols, const float *b, int add)
{
    int np = (rows + CONV_PANEL - 1) / CONV_PANEL;
    for (int m = 0; m < M; m++) {
        const float *xm = x + (size_t)m * ldx;
        float *ym = y + (size_t)m * ldy;
        for (int p = 0; p < np; p++) {
            const float *w = wp + (size_t)p * pstride;
            float acc[CONV_PANEL];
            for (int j = 0; j < CONV_PANEL; j++) {
                int r = p * CONV_PANEL + j;
                acc[j] = add == CONV_GEMM_CONT ? (r < rows ? ym[r] : 0.0f) : b && r < rows ? b[r] : 0.0f;
            }
            for (int c = 0; c < cols; c++)
                for (int j = 0; j < CONV_PANEL; j++) acc[j] = fmaf(xm[c], w[(size_t)c * CONV_PANEL + j], acc[j]);
            for (int j = 0; j < CONV_PANEL && p * CONV_PANEL + j < rows; j++)
                ym[p * CONV_PANEL + j] = add == CONV_GEMM_ADD ? ym[p * CONV_PANEL + j] + acc[j] : acc[j];
        }
    }
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#ifndef CG_NP
#define CG_NP 3 /* panels per register block */
#endif
#ifndef CG_PF
#define CG_PF 32 /* weight lines prefetched ahead in each panel stream (0: none) */
#endif
#ifndef CG_MC
#define CG_MC 64 /* rows of x per chunk */
#endif
/* MB rows of x against NP consecutive 16-row panels: MB*NP zmm accumulators started from
 * the bias, NP weight loads and MB broadcasts per c for MB*NP FMAs (MB, NP are constants at
 * each use, so the accumulators stay in registers). Panels are cols*16 floats apart. */
#define CG_BODY(MB, NP)                                                                           \
    do {                                                                                          \
        __m512 acc[NP][MB];                                                                       \
        _Pragma("GCC unroll 4") for (int q = 0; q < (NP); q++)                                    \
            _Pragma("GCC unroll 16") for (int i = 0; i < (MB); i++) acc[q][i] =                   \
                add == CONV_GEMM_CONT                                                             \
                    ? _mm512_maskz_loadu_ps(km[q], y + (size_t)(m + i) * ldy + r0 + q * CONV_PANEL) \
                    : bv[q];                                                                      \
        for (int c = 0; c < cols; c++) {                                                          \
            __m512 wv[NP];                                                                        \
            _Pragma("GCC unroll 4") for (int q = 0; q < (NP); q++) {                              \
                wv[q] = CG_WLOAD(w + (size_t)q * pstride + (size_t)c * CONV_PANEL);               \
                if (CG_PF) _mm_prefetch((const char *)(w + (size_t)q * pstride +                  \
                                                       (size_t)(c + CG_PF) * CONV_PANEL), _MM_HINT_T0); \
            }                                                                                     \
            _Pragma("GCC unroll 16") for (int i = 0; i < (MB); i++) {                             \
                __m512 xb = _mm512_set1_ps(xm[(size_t)i * ldx + c]);                              \
                _Pragma("GCC unroll 4") for (int q = 0; q < (NP); q++)                            \
                    acc[q][i] = _mm512_fmadd_ps(xb, wv[q], acc[q][i]);                            \
            }                                                                                     \
        }                                                                                         \
        _Pragma("GCC unroll 4") for (int q = 0; q < (NP); q++)                                    \
            _Pragma("GCC unroll 16") for (int i = 0; i < (MB); i++) {                             \
                float *yr = y + (size_t)(m + i) * ldy + r0 + q * CONV_PANEL;                      \
                __m512 v = acc[q][i];                                                             \
                if (add == CONV_GEMM_ADD) v = _mm512_add_ps(_mm512_maskz_loadu_ps(km[q], yr), v); \
                _mm512_mask_storeu_ps(yr, km[q], v);                                              \
            }                                                                                     \
    } while (0)

/* one generator for the F32 and BF16 panel kernels: CG_WLOAD decides how a panel row of
 * 16 weights becomes 16 floats */
#define CG_FN(NAME, WT)                                                                                   \
__attribute__((target("avx512f"))) static void NAME(float *y, int ldy, const float *x, size_t ldx,        \
                                                        int M, const WT *wp, size_t pstride, int rows,    \
                                                        int cols, const float *b, int add)                \
{                                                                                                         \
    int np = (rows + CONV_PANEL - 1) / CONV_PANEL;                                                        \
    /* rows of x in chunks of CG_MC; inside a chunk every panel group runs over all of its                \
     * rows, so a group's weights (and the chunk of x) are read from memory once and then                 \
     * served from L1/L2 (M = 16 streams each weight once) */                                             \
    for (int m0 = 0; m0 < M; m0 += CG_MC) {                                                               \
        int m1 = M - m0 < CG_MC ? M : m0 + CG_MC;                                                         \
        for (int p = 0; p < np;) {                                                                        \
            int npb = np - p >= CG_NP ? CG_NP : np - p >= 2 ? 2 : 1;                                      \
            const WT *w = wp + (size_t)p * pstride;                                                       \
            int r0 = p * CONV_PANEL;                                                                      \
            __mmask16 km[CG_NP];                                                                          \
            __m512 bv[CG_NP];                                                                             \
            for (int q = 0; q < npb; q++) {                                                               \
                int nr = rows - r0 - q * CONV_PANEL;                                                      \
                km[q] = (__mmask16)(nr >= CONV_PANEL ? 0xffffu : (1u << nr) - 1u);                        \
                bv[q] = b ? _mm512_maskz_loadu_ps(km[q], b + r0 + q * CONV_PANEL) : _mm512_setzero_ps();  \
            }                                                                                             \
            for (int m = m0; m < m1;) {                                                                   \
                int mb = m1 - m >= 8 ? 8 : m1 - m >= 4 ? 4 : 1;                                           \
                const float *xm = x + (size_t)m * ldx;                                                    \
                if (npb == CG_NP) {                                                                       \
                    if (mb == 8) CG_BODY(8, CG_NP);                                                       \
                    else if (mb == 4) CG_BODY(4, CG_NP);                                                  \
                    else CG_BODY(1, CG_NP);                                                               \
                } else if (npb == 2) {                                                                    \
                    if (mb == 8) CG_BODY(8, 2);                                                           \
                    else if (mb == 4) CG_BODY(4, 2);                                                      \
                    else CG_BODY(1, 2);                                                                   \
                } else {                                                                                  \
                    if (mb == 8) CG_BODY(8, 1);                                                           \
                    else if (mb == 4) CG_BODY(4, 1);                                                      \
                    else CG_BODY(1, 1);                                                                   \
                }                                                                                         \
                m += mb;                                                                                  \
            }                                                                                             \
            p += npb;                                                                                     \
        }                                                                                                 \
    }                                                                                                     \
}
#define CG_WLOAD(p) _mm512_loadu_ps(p)
CG_FN(cg_avx512, float)
#undef CG_WLOAD
/* BF16 panels: widened exactly to F32 (bits << 16), then the same FMAs */
#define CG_WLOAD(p) _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(p))), 16))
CG_FN(cg_avx512_bf16, uint16_t)
#undef CG_WLOAD
#undef CG_FN
#undef CG_BODY
#endif

#if defined(__x86_64__) || defined(__i386__)
/* AVX2 + FMA: a 16-row panel is two ymm; MB rows x 1 panel = 2*MB accumulators (MB <= 6),
 * the same FMA chain per output as the reference. */
#define CG2_BODY(MB)                                                                              \
    do {                                                                                          \
        __m256 a0[MB], a1[MB];                                                                    \
        _Pragma("GCC unroll 8") for (int i = 0; i < (MB); i++) {                                  \
            if (add == CONV_GEMM_CONT) {                                                          \
                const float *yr = y + (size_t)(m + i) * ldy + r0;                                 \
                a0[i] = _mm256_maskload_ps(yr, k0);                                               \
                a1[i] = _mm256_maskload_ps(yr + 8, k1);                                           \
            } else {                                                                              \
                a0[i] = b0;                                                                       \
                a1[i] = b1;                                                                       \
            }                                                                                     \
        }                                                                                         \
        for (int c = 0; c < cols; c++) {                                                          \
            __m256 w0 = CG2_WLOAD(w + (size_t)c * CONV_PANEL), w1 = CG2_WLOAD(w + (size_t)c * CONV_PANEL + 8); \
            _Pragma("GCC unroll 8") for (int i = 0; i < (MB); i++) {                              \
                __m256 xb = _mm256_broadcast_ss(xm + (size_t)i * ldx + c);                        \
                a0[i] = _mm256_fmadd_ps(xb, w0, a0[i]);                                           \
                a1[i] = _mm256_fmadd_ps(xb, w1, a1[i]);                                           \
            }                                                                                     \
        }                                                                                         \
        _Pragma("GCC unroll 8") for (int i = 0; i < (MB); i++) {                                  \
            float *yr = y + (size_t)(m + i) * ldy + r0;                                           \
            __m256 v0 = a0[i], v1 = a1[i];                                                        \
            if (add == CONV_GEMM_ADD) {                                                           \
                v0 = _mm256_add_ps(_mm256_maskload_ps(yr, k0), v0);                               \
                v1 = _mm256_add_ps(_mm256_maskload_ps(yr + 8, k1), v1);                           \
            }                                                                                     \
            _mm256_maskstore_ps(yr, k0, v0);                                                      \
            _mm256_maskstore_ps(yr + 8, k1, v1);                                                  \
        }                                                                                         \
    } while (0)

#define CG2_FN(NAME, WT)                                                                          \
    __attribute__((target("avx2,fma"))) void NAME(float *y, int ldy, const float *x, size_t ldx, int M,     \
                                                 const WT *wp, size_t pstride, int rows, int cols,          \
                                                 const float *b, int add)                                   \
    {                                                                                             \
        int np = (rows + CONV_PANEL - 1) / CONV_PANEL;                                            \
        for (int m0 = 0; m0 < M; m0 += CG_MC) {                                                   \
            int m1 = M - m0 < CG_MC ? M : m0 + CG_MC;                                             \
            for (int p = 0; p < np; p++) {                                                        \
                const WT *w = wp + (size_t)p * pstride;                                           \
                int r0 = p * CONV_PANEL, nr = rows - r0 < CONV_PANEL ? rows - r0 : CONV_PANEL;    \
                __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);                         \
                __m256i k0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr), lane);                     \
                __m256i k1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr - 8), lane);                 \
                __m256 b0 = b ? _mm256_maskload_ps(b + r0, k0) : _mm256_setzero_ps();             \
                __m256 b1 = b ? _mm256_maskload_ps(b + r0 + 8, k1) : _mm256_setzero_ps();         \
                for (int m = m0; m < m1;) {                                                       \
                    int mb = m1 - m >= 6 ? 6 : m1 - m >= 4 ? 4 : 1;                               \
                    const float *xm = x + (size_t)m * ldx;                                        \
                    if (mb == 6) CG2_BODY(6);                                                     \
                    else if (mb == 4) CG2_BODY(4);                                                \
                    else CG2_BODY(1);                                                             \
                    m += mb;                                                                      \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
    }

#define CG2_WLOAD(p) _mm256_loadu_ps(p)
CG2_FN(conv_gemm_ps_avx2, float)
#undef CG2_WLOAD
#define CG2_WLOAD(p) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p))), 16))
CG2_FN(conv_gemm_ps_bf16_avx2, uint16_t)
#undef CG2_WLOAD
#undef CG2_FN
#undef CG2_BODY
#endif

void conv_gemm_ps_bf16_ref(float *y, int ldy, const float *x, size_t ldx, int M, const uint16_t *wp,
                           size_t pstride, int rows, int cols, const float *b, int add)
{
    int np = (rows + CONV_PANEL - 1) / CONV_PANEL;
    for (int m = 0; m < M; m++) {
        const float *xm = x + (size_t)m * ldx;
        float *ym = y + (size_t)m * ldy;
        for (int p = 0; p < np; p++) {
            const uint16_t *w = wp + (size_t)p * pstride;
            float acc[CONV_PANEL];
            for (int j = 0; j < CONV_PANEL; j++) {
                int r = p * CONV_PANEL + j;
                acc[j] = add == CONV_GEMM_CONT ? (r < rows ? ym[r] : 0.0f) : b && r < rows ? b[r] : 0.0f;
            }
            for (int c = 0; c < cols; c++)
                for (int j = 0; j < CONV_PANEL; j++)
                    acc[j] = fmaf(xm[c], nn_bf16_to_f32(w[(size_t)c * CONV_PANEL + j]), acc[j]);
            for (int j = 0; j < CONV_PANEL && p * CONV_PANEL + j < rows; j++)
                ym[p * CONV_PANEL + j] = add == CONV_GEMM_ADD ? ym[p * CONV_PANEL + j] + acc[j] : acc[j];
        }
    }
}

void conv_gemm_ps_bf16(float *y, int ldy, const float *x, size_t ldx, int M, const uint16_t *wp, size_t pstride,
                       int rows, int cols, const float *b, int mode)
{
#if defined(__x86_64__) || defined(__i386__)
    if (__builtin_cpu_supports("avx512f")) {
        cg_avx512_bf16(y, ldy, x, ldx, M, wp, pstride, rows, cols, b, mode);
        return;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        conv_gemm_ps_bf16_avx2(y, ldy, x, ldx, M, wp, pstride, rows, cols, b, mode);
        return;
    }
#endif
    conv_gemm_ps_bf16_ref(y, ldy, x, ldx, M, wp, pstride, rows, cols, b, mode);
}

void conv_gemm_ps(float *y, int ldy, const float *x, size_t ldx, int M, const float *wp, size_t pstride, int rows,
                  int cols, const float *b, int mode)
{
#if defined(__x86_64__) || defined(__i386__)
    if (__builtin_cpu_supports("avx512f")) {
        cg_avx512(y, ldy, x, ldx, M, wp, pstride, rows, cols, b, mode);
        return;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        conv_gemm_ps_avx2(y, ldy, x, ldx, M, wp, pstride, rows, cols, b, mode);
        return;
    }
#endif
    conv_gemm_ps_ref(y, ldy, x, ldx, M, wp, pstride, rows, cols, b, mode);
}

void conv_gemm(float *y, int ldy, const float *x, size_t ldx, int M, const float *wp, int rows, int cols,
               const float *b, int mode)
{
    conv_gemm_ps(y, ldy, x, ldx, M, wp, (size_t)cols * CONV_PANEL, rows, cols, b, mode);
}

void conv_gemm_ref(float *y, int ldy, const float *x, size_t ldx, int M, const float *wp, int rows, int cols,
                   const float *b, int mode)
{
    conv_gemm_ps_ref(y, ldy, x, ldx, M, wp, (size_t)cols * CONV_PANEL, rows, cols, b, mode);
}

/* y[m] = b + dot(x[m*ldx ..], w'), w' = row 0 of a packed matrix (w'[c] at wp[c*16]):
 * 16 lane-wise partials (element c into partial c % 16), then a fixed pairwise tree; the
 * AVX-512 version and conv_dot_ref give the same bits, and y[m] depends on row m only. */
void conv_dot_ref(float *y, const float *x, size_t ldx, int M, const float *wp, int cols, float b)
{
    for (int m = 0; m < M; m++) {
        const float *xm = x + (size_t)m * ldx;
        float part[16] = {0};
        for (int c = 0; c < cols; c++) part[c % 16] = fmaf(xm[c], wp[(size_t)c * CONV_PANEL], part[c % 16]);
        y[m] = tree16(part) + b;
    }
}

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx512f"))) static void dot_avx512(float *y, const float *x, size_t ldx, int M,
                                                         const float *w, int cols, float b)
{
    for (int m = 0; m < M; m++) {
        const float *xm = x + (size_t)m * ldx;
        __m512 acc = _mm512_setzero_ps();
        for (int c = 0; c < cols; c += 16) {
            __mmask16 k = (__mmask16)(cols - c >= 16 ? 0xffffu : (1u << (cols - c)) - 1u);
            acc = _mm512_mask3_fmadd_ps(_mm512_maskz_loadu_ps(k, xm + c), _mm512_maskz_loadu_ps(k, w + c), acc, k);
        }
        float part[16];
        _mm512_storeu_ps(part, acc);
        y[m] = tree16(part) + b;
    }
}
#endif

#if defined(__x86_64__) || defined(__i386__)
/* 8-lane masks for elements [i, i+8) of n */
__attribute__((target("avx2"))) static inline __m256i mask8(int i, int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n - i), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* the 16 partials as two ymm (element c into partial c % 16), as conv_dot_ref */
__attribute__((target("avx2,fma"))) static void dot_avx2(float *y, const float *x, size_t ldx, int M, const float *w,
                                                        int cols, float b)
{
    for (int m = 0; m < M; m++) {
        const float *xm = x + (size_t)m * ldx;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        for (int c = 0; c < cols; c += 16) {
            __m256i k0 = mask8(c, cols), k1 = mask8(c + 8, cols);
            __m256 f0 = _mm256_fmadd_ps(_mm256_maskload_ps(xm + c, k0), _mm256_maskload_ps(w + c, k0), a0);
            __m256 f1 = _mm256_fmadd_ps(_mm256_maskload_ps(xm + c + 8, k1), _mm256_maskload_ps(w + c + 8, k1), a1);
            a0 = _mm256_blendv_ps(a0, f0, _mm256_castsi256_ps(k0));
            a1 = _mm256_blendv_ps(a1, f1, _mm256_castsi256_ps(k1));
        }
        float part[16];
        _mm256_storeu_ps(part, a0);
        _mm256_storeu_ps(part + 8, a1);
        y[m] = tree16(part) + b;
    }
}
#endif

void conv_dot(float *y, const float *x, size_t ldx, int M, const float *wp, int cols, float b)
{
#if defined(__x86_64__) || defined(__i386__)
    float w[1024]; /* row 0 of the panel, contiguous */
    if (__builtin_cpu_supports("avx512f") && cols <= 1024) {
        for (int c = 0; c < cols; c++) w[c] = wp[(size_t)c * CONV_PANEL];
        dot_avx512(y, x, ldx, M, w, cols, b);
        return;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cols <= 1024) {
        for (int c = 0; c < cols; c++) w[c] = wp[(size_t)c * CONV_PANEL];
        dot_avx2(y, x, ldx, M, w, cols, b);
        return;
    }
#endif
    conv_dot_ref(y, x, ldx, M, wp, cols, b);
}

size_t conv1d_tm_pack_floats(const conv1d *c) { return conv_pack_floats(c->cout, c->k * c->cin); }

void conv1d_tm_pack(const conv1d *c, float *wp)
{
    int cols = c->k * c->cin;
    CORE_ASSERT(c->groups == 1);
    memset(wp, 0, conv1d_tm_pack_floats(c) * sizeof(float));
    for (int o = 0; o < c->cout; o++)
        for (int ci = 0; ci < c->cin; ci++)
            for (int j = 0; j < c->k; j++)
                *pk_at(wp, cols, o, j * c->cin + ci) = c->w[((size_t)o * c->cin + ci) * c->k + j];
}

size_t conv1d_tm_work(const conv1d *c, int T)
{
    size_t P = (size_t)conv1d_hist(c), tout = (size_t)(T / c->stride);
    size_t cols = c->dil == 1 ? 0 : tout * (size_t)c->k * c->cin;
    return (P + (size_t)T) * c->cin + cols;
}

/* One GEMM of a _tm_run, its output panels split across the pool when there is enough
 * work (each output is computed by exactly the same code whichever thread runs it, so the
 * result does not depend on the pool). */
typedef struct tm_job {
    float *y;
    int ldy;
    const float *x;
    size_t ldx;
    int M;
    const void *wp;
    int bf16;
    size_t pstride;
    int rows, cols;
    const float *b;
    int mode;
} tm_job;

static void tm_part(void *arg, int part, int nparts)
{
    const tm_job *j = arg;
    int np = (j->rows + CONV_PANEL - 1) / CONV_PANEL;
    int p0 = (int)((long)np * part / nparts), p1 = (int)((long)np * (part + 1) / nparts);
    if (p1 <= p0) return;
    int r0 = p0 * CONV_PANEL, nr = (p1 * CONV_PANEL < j->rows ? p1 * CONV_PANEL : j->rows) - r0;
    const float *b = j->b ? j->b + r0 : NULL;
    if (j->bf16)
        conv_gemm_ps_bf16(j->y + r0, j->ldy, j->x, j->ldx, j->M, (const uint16_t *)j->wp + (size_t)p0 * j->pstride,
                          j->pstride, nr, j->cols, b, j->mode);
    else
        conv_gemm_ps(j->y + r0, j->ldy, j->x, j->ldx, j->M, (const float *)j->wp + (size_t)p0 * j->pstride, j->pstride,
                     nr, j->cols, b, j->mode);
}

#define TM_POOL_MIN_FMA (1L << 20) /* below this a GEMM runs on the calling thread */
static void tm_gemm(nn_pool *pool, const tm_job *j)
{
    if (pool && nn_pool_threads(pool) > 1 && (long)j->M * j->rows * j->cols >= TM_POOL_MIN_FMA &&
        j->rows > CONV_PANEL)
        nn_pool_run(pool, tm_part, (void *)j);
    else
        tm_part((void *)j, 0, 1);
}

void conv_gemm_pool(struct nn_pool *pool, float *y, int ldy, const float *x, size_t ldx, int M, const float *wp,
                    int rows, int cols, const float *b, int mode)
{
    tm_job j = {.y = y, .ldy = ldy, .x = x, .ldx = ldx, .M = M, .wp = wp, .bf16 = 0,
                .pstride = (size_t)cols * CONV_PANEL, .rows = rows, .cols = cols, .b = b, .mode = mode};
    tm_gemm(pool, &j);
}

void conv_gemm_pool_bf16(struct nn_pool *pool, float *y, int ldy, const float *x, size_t ldx, int M,
                         const uint16_t *wp, int rows, int cols, const float *b, int mode)
{
    tm_job j = {.y = y, .ldy = ldy, .x = x, .ldx = ldx, .M = M, .wp = wp, .bf16 = 1,
                .pstride = (size_t)cols * CONV_PANEL, .rows = rows, .cols = cols, .b = b, .mode = mode};
    tm_gemm(pool, &j);
}

void conv1d_tm_run(const conv1d *c, const void *wp, const float *x, int T, float *prev, int *first,
                   float *y, float *work, int flags, nn_pool *pool)
{
    int P = conv1d_hist(c), cin = c->cin, tout = T / c->stride;
    size_t rowb = (size_t)cin * sizeof(float);
    float *xp = work; /* [P + T, cin] = history | (ELU of) x */
    CORE_ASSERT(c->groups == 1 && T > 0 && T % c->stride == 0 && (P == 0 || prev));
    if (flags & CONV_IN_ELU) conv_elu_to(xp + (size_t)P * cin, x, (size_t)T * cin);
    else memcpy(xp + (size_t)P * cin, x, (size_t)T * rowb);
    if (P > 0 && c->pad_replicate && first && *first)
        for (int j = 0; j < P; j++) memcpy(prev + (size_t)j * cin, xp + (size_t)P * cin, rowb);
    if (first) *first = 0;
    if (P > 0) {
        memcpy(xp, prev, (size_t)P * rowb);
        memcpy(prev, xp + (size_t)T * cin, (size_t)P * rowb); /* last P rows of [P + T] */
    }
    const float *X = xp;
    size_t ldx = (size_t)c->stride * cin;
    if (c->dil != 1) { /* im2col: X[t][j*cin + ci] = xp[t*stride + j*dil][ci] */
        float *cb = xp + (size_t)(P + T) * cin;
        for (int t = 0; t < tout; t++)
            for (int j = 0; j < c->k; j++)
                memcpy(cb + ((size_t)t * c->k + j) * cin, xp + ((size_t)t * c->stride + (size_t)j * c->dil) * cin,
                       rowb);
        X = cb;
        ldx = (size_t)c->k * cin;
    }
    int mode = (flags & CONV_OUT_ADD) ? CONV_GEMM_ADD : CONV_GEMM_STORE, cols = c->k * cin;
    if (c->cout == 1 && mode == CONV_GEMM_STORE && !c->pk_bf16) { /* one output channel: dot products */
        conv_dot(y, X, ldx, tout, wp, cols, c->b ? c->b[0] : 0.0f);
    } else {
        tm_job j = {.y = y, .ldy = c->cout, .x = X, .ldx = ldx, .M = tout, .wp = wp, .bf16 = c->pk_bf16,
                    .pstride = (size_t)cols * CONV_PANEL, .rows = c->cout, .cols = cols, .b = c->b, .mode = mode};
        tm_gemm(pool, &j);
    }
}

size_t convtr1d_tm_pack_floats(const convtr1d *c)
{
    return c->groups == 1 ? conv_pack_floats(c->k * c->cout, c->cin) : 0;
}

void convtr1d_tm_pack(const convtr1d *c, float *wp)
{
    if (c->groups != 1) return;
    int cols = c->cin;
    memset(wp, 0, convtr1d_tm_pack_floats(c) * sizeof(float));
    for (int ci = 0; ci < c->cin; ci++)
        for (int o = 0; o < c->cout; o++)
            for (int j = 0; j < c->k; j++)
                *pk_at(wp, cols, j * c->cout + o, ci) = c->w[((size_t)ci * c->cout + o) * c->k + j];
}

size_t convtr1d_tm_work(const convtr1d *c, int T)
{
    size_t P = (size_t)convtr1d_hist(c), full = ((size_t)T * c->stride + P) * c->cout;
    return full + (c->groups == 1 ? (size_t)T * c->k * c->cout : 0);
}

/* y[i] = (a[i] + b[i]) + bias[i] (bias may be NULL), n floats; elementwise IEEE adds, so
 * the AVX-512 loop gives the bits of the scalar one */
static void add2_c(float *y, const float *a, const float *b, const float *bias, int n)
{
    for (int i = 0; i < n; i++) y[i] = bias ? (a[i] + b[i]) + bias[i] : a[i] + b[i];
}

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx512f"))) static void add2_avx512(float *y, const float *a, const float *b,
                                                          const float *bias, int n)
{
    for (int i = 0; i < n; i += 16) {
        __mmask16 k = (__mmask16)(n - i >= 16 ? 0xffffu : (1u << (n - i)) - 1u);
        __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(k, a + i), _mm512_maskz_loadu_ps(k, b + i));
        if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, bias + i));
        _mm512_mask_storeu_ps(y + i, k, v);
    }
}
#endif

static void add2(float *y, const float *a, const float *b, const float *bias, int n)
{
#if defined(__x86_64__) || defined(__i386__)
    if (__builtin_cpu_supports("avx512f")) {
        add2_avx512(y, a, b, bias, n);
        return;
    }
#endif
    add2_c(y, a, b, bias, n);
}

void convtr1d_tm_run(const convtr1d *c, const void *wp, const float *x, int T, float *tail, float *y,
                     float *work, nn_pool *pool)
{
    int P = convtr1d_hist(c), s = c->stride, co = c->cout, n = T * s;
    size_t rowb = (size_t)co * sizeof(float);
    float *full = work; /* [T*s + P, cout] raw sums, in increasing source step order */
    CORE_ASSERT(T > 0 && P <= n);
    if (c->groups == 1) {
        float *z = full + (size_t)(n + P) * co; /* [T, k*cout] */
        tm_job job = {.y = z, .ldy = c->k * co, .x = x, .ldx = (size_t)c->cin, .M = T, .wp = wp, .bf16 = c->pk_bf16,
                    .pstride = (size_t)c->cin * CONV_PANEL, .rows = c->k * co, .cols = c->cin, .b = NULL,
                    .mode = CONV_GEMM_STORE};
        tm_gemm(pool, &job);
        if (c->k == 2 * s) {
            /* each output row t*s + j (j < s) gets exactly two terms, in source order:
             * Z[t-1][s+j] (the tail when t == 0) then Z[t][j]; the same sums as the
             * generic loop below, in one pass without the full buffer */
            for (int t = 0; t < T; t++)
                for (int j = 0; j < s; j++) {
                    const float *pr = t ? z + ((size_t)(t - 1) * c->k + s + j) * co : tail + (size_t)j * co;
                    const float *cu = z + ((size_t)t * c->k + j) * co;
                    float *yi = y + ((size_t)t * s + j) * co;
                    add2(yi, pr, cu, c->b, co);
                }
            memcpy(tail, z + ((size_t)(T - 1) * c->k + s) * co, (size_t)P * rowb);
            return;
        }
        memcpy(full, tail, (size_t)P * rowb);
        memset(full + (size_t)P * co, 0, (size_t)n * rowb);
        for (int t = 0; t < T; t++)
            for (int j = 0; j < c->k; j++) {
                float *dst = full + ((size_t)t * s + j) * co;
                const float *src = z + ((size_t)t * c->k + j) * co;
                for (int o = 0; o < co; o++) dst[o] += src[o];
            }
    } else {
        CORE_ASSERT(c->groups == c->cin && c->cin == co);
        memcpy(full, tail, (size_t)P * rowb);
        memset(full + (size_t)P * co, 0, (size_t)n * rowb);
        for (int t = 0; t < T; t++) {
            const float *xt = x + (size_t)t * co;
            for (int j = 0; j < c->k; j++) {
                float *dst = full + ((size_t)t * s + j) * co;
                for (int o = 0; o < co; o++) dst[o] += xt[o] * c->w[(size_t)o * c->k + j];
            }
        }
    }
    for (int i = 0; i < n; i++) {
        const float *f = full + (size_t)i * co;
        float *yi = y + (size_t)i * co;
        if (c->b)
            for (int o = 0; o < co; o++) yi[o] = f[o] + c->b[o];
        else
            memcpy(yi, f, rowb);
    }
    memcpy(tail, full + (size_t)n * co, (size_t)P * rowb);
}

/* ---- softmax for the attention rows ----------------------------------------------------
 * exp(x) for x <= 0 as 2^n (1 + expm1(r)) with expm1_neg's reduction and polynomial, FMA
 * throughout; the sum in 16 lane-wise partials (element i into partial i % 16) then a
 * fixed pairwise tree, so the SIMD version and the C reference give the same bits. */
static inline float exp_neg_ref(float x)
{
    x = x < -87.0f ? -87.0f : x;
    float n = fmaf(x, 1.44269504088896341f, 12582912.0f) - 12582912.0f;
    float r = fmaf(-n, 0.693145751953125f, x);
    r = fmaf(-n, 1.42860682030941723212e-6f, r);
    float p = 1.0f / 40320.0f;
    p = fmaf(p, r, 1.0f / 5040.0f);
    p = fmaf(p, r, 1.0f / 720.0f);
    p = fmaf(p, r, 1.0f / 120.0f);
    p = fmaf(p, r, 1.0f / 24.0f);
    p = fmaf(p, r, 1.0f / 6.0f);
    p = fmaf(p, r, 0.5f);
    p = fmaf(p * r, r, r); /* expm1(r) */
    union { unsigned u; float f; } sc = {.u = (unsigned)((int)n + 127) << 23};
    return fmaf(sc.f, p, sc.f);
}


void conv_softmax_ref(float *x, int n, float scale)
{
    float mx = -INFINITY, part[16] = {0};
    for (int i = 0; i < n; i++) {
        x[i] *= scale;
        mx = x[i] > mx ? x[i] : mx;
    }
    for (int i = 0; i < n; i++) {
        x[i] = exp_neg_ref(x[i] - mx);
        part[i % 16] += x[i];
    }
    float inv = 1.0f / tree16(part);
    for (int i = 0; i < n; i++) x[i] *= inv;
}

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx512f"))) static void softmax_avx512(float *x, int n, float scale)
{
    const __m512 sv = _mm512_set1_ps(scale);
    __m512 mv = _mm512_set1_ps(-INFINITY);
    for (int i = 0; i < n; i += 16) {
        __mmask16 k = (__mmask16)(n - i >= 16 ? 0xffffu : (1u << (n - i)) - 1u);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), sv);
        _mm512_mask_storeu_ps(x + i, k, v);
        mv = _mm512_mask_max_ps(mv, k, mv, v);
    }
    const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(mv));
    const __m512 lo = _mm512_set1_ps(-87.0f), l2e = _mm512_set1_ps(1.44269504088896341f);
    const __m512 magic = _mm512_set1_ps(12582912.0f), ln2h = _mm512_set1_ps(0.693145751953125f);
    const __m512 ln2l = _mm512_set1_ps(1.42860682030941723212e-6f);
    __m512 acc = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) {
        __mmask16 k = (__mmask16)(n - i >= 16 ? 0xffffu : (1u << (n - i)) - 1u);
        __m512 xv = _mm512_max_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), mx), lo);
        __m512 nn = _mm512_sub_ps(_mm512_fmadd_ps(xv, l2e, magic), magic);
        __m512 r = _mm512_fnmadd_ps(nn, ln2h, xv);
        r = _mm512_fnmadd_ps(nn, ln2l, r);
        __m512 p = _mm512_set1_ps(1.0f / 40320.0f);
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 5040.0f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
        p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r);
        __m512 sc = _mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(nn), _mm512_set1_epi32(127)), 23));
        __m512 e = _mm512_fmadd_ps(sc, p, sc);
        _mm512_mask_storeu_ps(x + i, k, e);
        acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(k, e));
    }
    float part[16];
    _mm512_storeu_ps(part, acc);
    const __m512 inv = _mm512_set1_ps(1.0f / tree16(part));
    for (int i = 0; i < n; i += 16) {
        __mmask16 k = (__mmask16)(n - i >= 16 ? 0xffffu : (1u << (n - i)) - 1u);
        _mm512_mask_storeu_ps(x + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), inv));
    }
}
#endif

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx2,fma"))) static inline __m256 exp_neg8(__m256 xv)
{
    const __m256 magic = _mm256_set1_ps(12582912.0f);
    xv = _mm256_max_ps(xv, _mm256_set1_ps(-87.0f));
    __m256 nn = _mm256_sub_ps(_mm256_fmadd_ps(xv, _mm256_set1_ps(1.44269504088896341f), magic), magic);
    __m256 r = _mm256_fnmadd_ps(nn, _mm256_set1_ps(0.693145751953125f), xv);
    r = _mm256_fnmadd_ps(nn, _mm256_set1_ps(1.42860682030941723212e-6f), r);
    __m256 p = _mm256_set1_ps(1.0f / 40320.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 5040.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r);
    __m256 sc = _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(nn), _mm256_set1_epi32(127)), 23));
    return _mm256_fmadd_ps(sc, p, sc);
}

/* conv_softmax_ref's operations 8 lanes at a time; partials 0-7 and 8-15 in two ymm */
__attribute__((target("avx2,fma"))) static void softmax_avx2(float *x, int n, float scale)
{
    const __m256 sv = _mm256_set1_ps(scale);
    float mx = -INFINITY;
    __m256 mv = _mm256_set1_ps(-INFINITY);
    for (int i = 0; i < n; i += 8) {
        __m256i k = mask8(i, n);
        __m256 v = _mm256_mul_ps(_mm256_maskload_ps(x + i, k), sv);
        _mm256_maskstore_ps(x + i, k, v);
        mv = _mm256_blendv_ps(mv, _mm256_max_ps(mv, v), _mm256_castsi256_ps(k));
    }
    float mb[8];
    _mm256_storeu_ps(mb, mv);
    for (int i = 0; i < 8; i++) mx = mb[i] > mx ? mb[i] : mx;
    const __m256 mxv = _mm256_set1_ps(mx);
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (int i = 0; i < n; i += 16) {
        __m256i k0 = mask8(i, n), k1 = mask8(i + 8, n);
        __m256 e0 = exp_neg8(_mm256_sub_ps(_mm256_maskload_ps(x + i, k0), mxv));
        __m256 e1 = exp_neg8(_mm256_sub_ps(_mm256_maskload_ps(x + i + 8, k1), mxv));
        _mm256_maskstore_ps(x + i, k0, e0);
        _mm256_maskstore_ps(x + i + 8, k1, e1);
        a0 = _mm256_add_ps(a0, _mm256_and_ps(e0, _mm256_castsi256_ps(k0)));
        a1 = _mm256_add_ps(a1, _mm256_and_ps(e1, _mm256_castsi256_ps(k1)));
    }
    float part[16];
    _mm256_storeu_ps(part, a0);
    _mm256_storeu_ps(part + 8, a1);
    const __m256 inv = _mm256_set1_ps(1.0f / tree16(part));
    for (int i = 0; i < n; i += 8) {
        __m256i k = mask8(i, n);
        _mm256_maskstore_ps(x + i, k, _mm256_mul_ps(_mm256_maskload_ps(x + i, k), inv));
    }
}
#endif

void conv_softmax(float *x, int n, float scale)
{
#if defined(__x86_64__) || defined(__i386__)
    if (__builtin_cpu_supports("avx512f")) {
        softmax_avx512(x, n, scale);
        return;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        softmax_avx2(x, n, scale);
        return;
    }
#endif
    conv_softmax_ref(x, n, scale);
}

void conv_pack_bf16(uint16_t *dst, const float *src, size_t n) { nn_f32_to_bf16_n(dst, src, n); }

#if defined(__x86_64__) || defined(__i386__)
void conv_softmax_avx2(float *x, int n, float scale) { softmax_avx2(x, n, scale); }
void conv_dot_avx2(float *y, const float *x, size_t ldx, int M, const float *wp, int cols, float b)
{
    float w[1024];
    CORE_ASSERT(cols <= 1024);
    for (int c = 0; c < cols; c++) w[c] = wp[(size_t)c * CONV_PANEL];
    dot_avx2(y, x, ldx, M, w, cols, b);
}
#endif
