/* kernels_x86.c — AVX2/FMA and AVX-512 versions of the hot kernels (see dispatch.h).
 *
 * Compiled for the baseline target; each function carries its own target attribute, so
 * the binary runs everywhere and these are only called after a CPU check. GEMV walks 4
 * weight rows at once so x is loaded once per 4 rows; the weight stream is the whole cost
 * (memory-bound), so there is no blocking beyond that. Tails (cols not a multiple of the
 * vector width) are finished in scalar code. Results differ from the references only by
 * summation order. Also here: the int8 (NN_Q8) GEMM for AVX-512 VNNI and AVX2 and the
 * AVX-512 int8 quantizers (bit-identical to their references), the single-query
 * attention kernels (dotn/axpyn) used by every generation step and the 4-query ones
 * (dot4n/axpy4n) of prompt passes. The F32/BF16 GEMM for M > 1 lives in gemm_x86.c.
 */
#include "nn/dispatch.h"
#include "nn/nn.h"

#include <immintrin.h>
#include <math.h>
#include <stddef.h>

#if defined(__x86_64__) || defined(__i386__)

int nn_cpu_avx2(void) { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
int nn_cpu_avx512(void) { return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"); }

int nn_cpu_avx512vnni(void) { return nn_cpu_avx512() && __builtin_cpu_supports("avx512vnni"); }

#define T2 __attribute__((target("avx2,fma")))
#define T5V __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")))
#define T5 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))

T2 static inline float hsum256(__m256 v)
{
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

T2 float nn_avx2_dot(const float *a, const float *b, int n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum256(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

T2 void nn_avx2_axpy(float *y, float a, const float *x, int n)
{
    __m256 av = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

T2 void nn_avx2_dot4(const float *const q[4], const float *k, int n, float out[4])
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 kv = _mm256_loadu_ps(k + i);
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q[0] + i), kv, a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q[1] + i), kv, a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(q[2] + i), kv, a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(q[3] + i), kv, a3);
    }
    float s0 = hsum256(a0), s1 = hsum256(a1), s2 = hsum256(a2), s3 = hsum256(a3);
    for (; i < n; i++) s0 += q[0][i] * k[i], s1 += q[1][i] * k[i], s2 += q[2][i] * k[i], s3 += q[3][i] * k[i];
    out[0] = s0, out[1] = s1, out[2] = s2, out[3] = s3;
}

T2 void nn_avx2_axpy4(float *const o[4], const float w[4], const float *v, int n)
{
    __m256 w0 = _mm256_set1_ps(w[0]), w1 = _mm256_set1_ps(w[1]), w2 = _mm256_set1_ps(w[2]), w3 = _mm256_set1_ps(w[3]);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 vv = _mm256_loadu_ps(v + i);
        _mm256_storeu_ps(o[0] + i, _mm256_fmadd_ps(w0, vv, _mm256_loadu_ps(o[0] + i)));
        _mm256_storeu_ps(o[1] + i, _mm256_fmadd_ps(w1, vv, _mm256_loadu_ps(o[1] + i)));
        _mm256_storeu_ps(o[2] + i, _mm256_fmadd_ps(w2, vv, _mm256_loadu_ps(o[2] + i)));
        _mm256_storeu_ps(o[3] + i, _mm256_fmadd_ps(w3, vv, _mm256_loadu_ps(o[3] + i)));
    }
    for (; i < n; i++) o[0][i] += w[0] * v[i], o[1][i] += w[1] * v[i], o[2][i] += w[2] * v[i], o[3][i] += w[3] * v[i];
}

/* exp(x) for x <= 0 (Cephes-style: 2^n * p(r), |rel err| < 2e-7; x below -87 gives 0) */
T2 static inline __m256 exp_neg256(__m256 x)
{
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(n));
}

/* exact-GELU 0.5 x (1 + erf(x / sqrt 2)) with erf from Abramowitz & Stegun 7.1.26
 * (|abs err| <= 1.5e-7, i.e. float rounding level); odd symmetry for x < 0 */
T2 void nn_avx2_gelu(float *x, size_t n)
{
    const __m256 sgn = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f), half = _mm256_set1_ps(0.5f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 z = _mm256_mul_ps(v, _mm256_set1_ps(0.70710678118654752f));
        __m256 az = _mm256_andnot_ps(sgn, z);
        __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(0.3275911f), az, one));
        __m256 p = _mm256_set1_ps(1.061405429f);
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.453152027f));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
        p = _mm256_mul_ps(p, t);
        __m256 e = exp_neg256(_mm256_mul_ps(_mm256_xor_ps(az, sgn), az)); /* exp(-z^2) */
        __m256 erf_abs = _mm256_fnmadd_ps(p, e, one);
        __m256 erf = _mm256_or_ps(erf_abs, _mm256_and_ps(z, sgn));
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_mul_ps(half, v), _mm256_add_ps(one, erf)));
    }
    for (; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

T2 void nn_avx2_gemv_f32(float *y, const float *x, const float *W, int rows, int cols)
{
    int r = 0;
    for (; r + 4 <= rows; r += 4) {
        const float *w0 = W + (size_t)r * cols, *w1 = w0 + cols, *w2 = w1 + cols, *w3 = w2 + cols;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
               a3 = _mm256_setzero_ps();
        int i = 0;
        for (; i + 8 <= cols; i += 8) {
            __m256 xv = _mm256_loadu_ps(x + i);
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + i), xv, a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + i), xv, a1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + i), xv, a2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + i), xv, a3);
        }
        float s0 = hsum256(a0), s1 = hsum256(a1), s2 = hsum256(a2), s3 = hsum256(a3);
        for (; i < cols; i++) {
            s0 += w0[i] * x[i];
            s1 += w1[i] * x[i];
            s2 += w2[i] * x[i];
            s3 += w3[i] * x[i];
        }
        y[r] = s0, y[r + 1] = s1, y[r + 2] = s2, y[r + 3] = s3;
    }
    for (; r < rows; r++) y[r] = nn_avx2_dot(W + (size_t)r * cols, x, cols);
}

T2 static inline __m256 bf16x8(const uint16_t *p)
{
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

static inline float bf(uint16_t h)
{
    union { unsigned u; float f; } c = {.u = (unsigned)h << 16};
    return c.f;
}

/* even/odd split as in the AVX-512 version: 16 bf16 weights per 256-bit load become two
 * float vectors with one shift and one mask (cols % 16 == 0, cols <= 8192) */
T2 static void gemv_bf16_eo256(float *y, const float *x, const uint16_t *W, int rows, int cols)
{
    float xe[4096], xo[4096];
    int h = cols / 2;
    for (int i = 0; i < h; i++) xe[i] = x[2 * i], xo[i] = x[2 * i + 1];
    const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
    int r = 0;
    for (; r + 4 <= rows; r += 4) {
        const uint16_t *w0 = W + (size_t)r * cols, *w1 = w0 + cols, *w2 = w1 + cols, *w3 = w2 + cols;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (int i = 0; i < h; i += 8) {
            if ((i & 31) == 0) {
                _mm_prefetch((const char *)(w0 + 2 * i) + 1024, _MM_HINT_T0);
                _mm_prefetch((const char *)(w1 + 2 * i) + 1024, _MM_HINT_T0);
                _mm_prefetch((const char *)(w2 + 2 * i) + 1024, _MM_HINT_T0);
                _mm_prefetch((const char *)(w3 + 2 * i) + 1024, _MM_HINT_T0);
            }
            __m256 ve = _mm256_loadu_ps(xe + i), vo = _mm256_loadu_ps(xo + i);
            __m256i q0 = _mm256_loadu_si256((const __m256i *)(w0 + 2 * i));
            __m256i q1 = _mm256_loadu_si256((const __m256i *)(w1 + 2 * i));
            __m256i q2 = _mm256_loadu_si256((const __m256i *)(w2 + 2 * i));
            __m256i q3 = _mm256_loadu_si256((const __m256i *)(w3 + 2 * i));
            a0 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(q0, 16)), ve, a0);
            b0 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(q0, hi)), vo, b0);
            a1 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(q1, 16)), ve, a1);
            b1 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(q1, hi)), vo, b1);
            a2 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(q2, 16)), ve, a2);
            b2 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(q2, hi)), vo, b2);
            a3 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(q3, 16)), ve, a3);
            b3 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(q3, hi)), vo, b3);
        }
        y[r] = hsum256(_mm256_add_ps(a0, b0));
        y[r + 1] = hsum256(_mm256_add_ps(a1, b1));
        y[r + 2] = hsum256(_mm256_add_ps(a2, b2));
        y[r + 3] = hsum256(_mm256_add_ps(a3, b3));
    }
    for (; r < rows; r++) {
        const uint16_t *w = W + (size_t)r * cols;
        __m256 a = _mm256_setzero_ps(), b = a;
        for (int i = 0; i < h; i += 8) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(w + 2 * i));
            a = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(q, 16)), _mm256_loadu_ps(xe + i), a);
            b = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(q, hi)), _mm256_loadu_ps(xo + i), b);
        }
        y[r] = hsum256(_mm256_add_ps(a, b));
    }
}

T2 void nn_avx2_gemv_bf16(float *y, const float *x, const uint16_t *W, int rows, int cols)
{
    if (cols % 16 == 0 && cols <= 8192) {
        gemv_bf16_eo256(y, x, W, rows, cols);
        return;
    }
    int r = 0;
    for (; r + 4 <= rows; r += 4) {
        const uint16_t *w0 = W + (size_t)r * cols, *w1 = w0 + cols, *w2 = w1 + cols, *w3 = w2 + cols;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
               a3 = _mm256_setzero_ps();
        int i = 0;
        for (; i + 8 <= cols; i += 8) {
            __m256 xv = _mm256_loadu_ps(x + i);
            a0 = _mm256_fmadd_ps(bf16x8(w0 + i), xv, a0);
            a1 = _mm256_fmadd_ps(bf16x8(w1 + i), xv, a1);
            a2 = _mm256_fmadd_ps(bf16x8(w2 + i), xv, a2);
            a3 = _mm256_fmadd_ps(bf16x8(w3 + i), xv, a3);
        }
        float s0 = hsum256(a0), s1 = hsum256(a1), s2 = hsum256(a2), s3 = hsum256(a3);
        for (; i < cols; i++) {
            s0 += bf(w0[i]) * x[i];
            s1 += bf(w1[i]) * x[i];
            s2 += bf(w2[i]) * x[i];
            s3 += bf(w3[i]) * x[i];
        }
        y[r] = s0, y[r + 1] = s1, y[r + 2] = s2, y[r + 3] = s3;
    }
    for (; r < rows; r++) {
        const uint16_t *w = W + (size_t)r * cols;
        __m256 a = _mm256_setzero_ps();
        int i = 0;
        for (; i + 8 <= cols; i += 8) a = _mm256_fmadd_ps(bf16x8(w + i), _mm256_loadu_ps(x + i), a);
        float s = hsum256(a);
        for (; i < cols; i++) s += bf(w[i]) * x[i];
        y[r] = s;
    }
}

#ifndef NN_F32_PF
#define NN_F32_PF 2048
#endif
T5 void nn_avx512_gemv_f32(float *y, const float *x, const float *W, int rows, int cols)
{
    int full = cols & ~15, rem = cols - full;
    __mmask16 m = (__mmask16)((1u << rem) - 1);
    int r = 0;
    for (; r + 4 <= rows; r += 4) {
        const float *w0 = W + (size_t)r * cols, *w1 = w0 + cols, *w2 = w1 + cols, *w3 = w2 + cols;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(),
               a3 = _mm512_setzero_ps();
        for (int i = 0; i < full; i += 16) {
            /* software prefetch NN_F32_PF bytes ahead in each of the 4 row streams; gain vs no
             * prefetch is within noise on this box (SPEED.md f32), but the NTA hint was 2x
             * slower, so keep T0 */
            _mm_prefetch((const char *)(w0 + i) + NN_F32_PF, _MM_HINT_T0);
            _mm_prefetch((const char *)(w1 + i) + NN_F32_PF, _MM_HINT_T0);
            _mm_prefetch((const char *)(w2 + i) + NN_F32_PF, _MM_HINT_T0);
            _mm_prefetch((const char *)(w3 + i) + NN_F32_PF, _MM_HINT_T0);
            __m512 xv = _mm512_loadu_ps(x + i);
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w0 + i), xv, a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w1 + i), xv, a1);
            a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w2 + i), xv, a2);
            a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w3 + i), xv, a3);
        }
        if (rem) {
            __m512 xv = _mm512_maskz_loadu_ps(m, x + full);
            a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w0 + full), xv, a0);
            a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w1 + full), xv, a1);
            a2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w2 + full), xv, a2);
            a3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w3 + full), xv, a3);
        }
        y[r] = _mm512_reduce_add_ps(a0);
        y[r + 1] = _mm512_reduce_add_ps(a1);
        y[r + 2] = _mm512_reduce_add_ps(a2);
        y[r + 3] = _mm512_reduce_add_ps(a3);
    }
    for (; r < rows; r++) {
        const float *w = W + (size_t)r * cols;
        __m512 a = _mm512_setzero_ps();
        for (int i = 0; i < full; i += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(x + i), a);
        if (rem) a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w + full), _mm512_maskz_loadu_ps(m, x + full), a);
        y[r] = _mm512_reduce_add_ps(a);
    }
}

T5 static inline __m512 bf16x16(__m256i raw)
{
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
}

/* BF16 GEMV: a 512-bit load holds 32 bf16 weights as 16 u32 lanes (w[2j] low, w[2j+1]
 * high); `<< 16` yields the even weights as floats and `& 0xffff0000` the odd ones, so
 * with x split once into its even and odd elements each 32 weights cost one load, two
 * integer ops and two FMAs (no widening shuffles). Used when cols % 32 == 0. */
T5 static void gemv_bf16_eo(float *y, const float *x, const uint16_t *W, int rows, int cols)
{
    float xe[4096], xo[4096];
    int h = cols / 2;
    for (int i = 0; i < h; i++) xe[i] = x[2 * i], xo[i] = x[2 * i + 1];
    const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);
    int r = 0;
    for (; r + 4 <= rows; r += 4) {
        const uint16_t *w0 = W + (size_t)r * cols, *w1 = w0 + cols, *w2 = w1 + cols, *w3 = w2 + cols;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (int i = 0; i < h; i += 16) {
            /* 1 KiB ahead: this loop has more work per cache line than the f32 one, so the
             * out-of-order window alone keeps fewer misses in flight (+25 % measured) */
            _mm_prefetch((const char *)(w0 + 2 * i) + 1024, _MM_HINT_T0);
            _mm_prefetch((const char *)(w1 + 2 * i) + 1024, _MM_HINT_T0);
            _mm_prefetch((const char *)(w2 + 2 * i) + 1024, _MM_HINT_T0);
            _mm_prefetch((const char *)(w3 + 2 * i) + 1024, _MM_HINT_T0);
            __m512 ve = _mm512_loadu_ps(xe + i), vo = _mm512_loadu_ps(xo + i);
            __m512i q0 = _mm512_loadu_si512(w0 + 2 * i), q1 = _mm512_loadu_si512(w1 + 2 * i);
            __m512i q2 = _mm512_loadu_si512(w2 + 2 * i), q3 = _mm512_loadu_si512(w3 + 2 * i);
            a0 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(q0, 16)), ve, a0);
            b0 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(q0, hi)), vo, b0);
            a1 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(q1, 16)), ve, a1);
            b1 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(q1, hi)), vo, b1);
            a2 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(q2, 16)), ve, a2);
            b2 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(q2, hi)), vo, b2);
            a3 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(q3, 16)), ve, a3);
            b3 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(q3, hi)), vo, b3);
        }
        y[r] = _mm512_reduce_add_ps(_mm512_add_ps(a0, b0));
        y[r + 1] = _mm512_reduce_add_ps(_mm512_add_ps(a1, b1));
        y[r + 2] = _mm512_reduce_add_ps(_mm512_add_ps(a2, b2));
        y[r + 3] = _mm512_reduce_add_ps(_mm512_add_ps(a3, b3));
    }
    for (; r < rows; r++) {
        const uint16_t *w = W + (size_t)r * cols;
        __m512 a = _mm512_setzero_ps(), b = a;
        for (int i = 0; i < h; i += 16) {
            __m512i q = _mm512_loadu_si512(w + 2 * i);
            a = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(q, 16)), _mm512_loadu_ps(xe + i), a);
            b = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(q, hi)), _mm512_loadu_ps(xo + i), b);
        }
        y[r] = _mm512_reduce_add_ps(_mm512_add_ps(a, b));
    }
}

T5 void nn_avx512_gemv_bf16(float *y, const float *x, const uint16_t *W, int rows, int cols)
{
    if (cols % 32 == 0 && cols <= 8192) {
        gemv_bf16_eo(y, x, W, rows, cols);
        return;
    }
    int full = cols & ~15, rem = cols - full;
    __mmask16 m = (__mmask16)((1u << rem) - 1);
    int r = 0;
    for (; r + 4 <= rows; r += 4) {
        const uint16_t *w0 = W + (size_t)r * cols, *w1 = w0 + cols, *w2 = w1 + cols, *w3 = w2 + cols;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(),
               a3 = _mm512_setzero_ps();
        for (int i = 0; i < full; i += 16) {
            __m512 xv = _mm512_loadu_ps(x + i);
            a0 = _mm512_fmadd_ps(bf16x16(_mm256_loadu_si256((const __m256i *)(w0 + i))), xv, a0);
            a1 = _mm512_fmadd_ps(bf16x16(_mm256_loadu_si256((const __m256i *)(w1 + i))), xv, a1);
            a2 = _mm512_fmadd_ps(bf16x16(_mm256_loadu_si256((const __m256i *)(w2 + i))), xv, a2);
            a3 = _mm512_fmadd_ps(bf16x16(_mm256_loadu_si256((const __m256i *)(w3 + i))), xv, a3);
        }
        if (rem) {
            __m512 xv = _mm512_maskz_loadu_ps(m, x + full);
            a0 = _mm512_fmadd_ps(bf16x16(_mm256_maskz_loadu_epi16(m, w0 + full)), xv, a0);
            a1 = _mm512_fmadd_ps(bf16x16(_mm256_maskz_loadu_epi16(m, w1 + full)), xv, a1);
            a2 = _mm512_fmadd_ps(bf16x16(_mm256_maskz_loadu_epi16(m, w2 + full)), xv, a2);
            a3 = _mm512_fmadd_ps(bf16x16(_mm256_maskz_loadu_epi16(m, w3 + full)), xv, a3);
        }
        y[r] = _mm512_reduce_add_ps(a0);
        y[r + 1] = _mm512_reduce_add_ps(a1);
        y[r + 2] = _mm512_reduce_add_ps(a2);
        y[r + 3] = _mm512_reduce_add_ps(a3);
    }
    for (; r < rows; r++) {
        const uint16_t *w = W + (size_t)r * cols;
        __m512 a = _mm512_setzero_ps();
        for (int i = 0; i < full; i += 16)
            a = _mm512_fmadd_ps(bf16x16(_mm256_loadu_si256((const __m256i *)(w + i))), _mm512_loadu_ps(x + i), a);
        if (rem) a = _mm512_fmadd_ps(bf16x16(_mm256_maskz_loadu_epi16(m, w + full)), _mm512_maskz_loadu_ps(m, x + full), a);
        y[r] = _mm512_reduce_add_ps(a);
    }
}

/* nn_f32_to_bf16 on 16 lanes: u + 0x7fff + ((u >> 16) & 1), >> 16; NaN -> (u >> 16) | 0x40 */
T5 void nn_avx512_f32_to_bf16(uint16_t *dst, const float *src, size_t n)
{
    const __m512i abs = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000),
                  bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1), qb = _mm512_set1_epi32(0x40);
    size_t i = 0;
    for (; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512i u = _mm512_maskz_loadu_epi32(k, src + i);
        __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, abs), inf);
        __m512i r = _mm512_srli_epi32(
            _mm512_add_epi32(_mm512_add_epi32(u, bias), _mm512_and_si512(_mm512_srli_epi32(u, 16), one)), 16);
        r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), qb));
        _mm256_mask_storeu_epi16(dst + i, k, _mm512_cvtepi32_epi16(r));
    }
}

/* single-query attention: q (or the output row o) stays in up to 8 registers while the
 * cache rows stream past; 16-lane partial sums are reduced once per row (dotn) or never
 * (axpyn). hd % 16 == 0, hd <= 128. */
T5 void nn_avx512_dotn(float *out, const float *q, const float *K, size_t ld, int n, int hd)
{
    __m512 qv[8];
    int nv = hd / 16;
    for (int i = 0; i < nv; i++) qv[i] = _mm512_loadu_ps(q + 16 * i);
    for (int j = 0; j < n; j++) {
        const float *k = K + (size_t)j * ld;
        __m512 a = _mm512_mul_ps(qv[0], _mm512_loadu_ps(k));
        for (int i = 1; i < nv; i++) a = _mm512_fmadd_ps(qv[i], _mm512_loadu_ps(k + 16 * i), a);
        out[j] = _mm512_reduce_add_ps(a);
    }
}

T5 void nn_avx512_axpyn(float *o, const float *w, const float *V, size_t ld, int n, int hd)
{
    __m512 ov[8];
    int nv = hd / 16;
    for (int i = 0; i < nv; i++) ov[i] = _mm512_loadu_ps(o + 16 * i);
    for (int j = 0; j < n; j++) {
        const float *v = V + (size_t)j * ld;
        __m512 wj = _mm512_set1_ps(w[j]);
        for (int i = 0; i < nv; i++) ov[i] = _mm512_fmadd_ps(wj, _mm512_loadu_ps(v + 16 * i), ov[i]);
    }
    for (int i = 0; i < nv; i++) _mm512_storeu_ps(o + 16 * i, ov[i]);
}

/* Blocks of 4 queries (prompt passes): the 4 query rows (dot4n) or the 4 output rows
 * (axpy4n), hd / 16 <= 4 vectors each, stay in up to 16 registers while the cache rows
 * stream past once. dot4n reduces the 4 dot products of a key together: two cross-lane
 * add steps leave query i's 4 partial sums in 128-bit lane i, two in-lane steps finish. */
#define DOT4N_BODY(NV)                                                                                \
    {                                                                                                 \
        __m512 q0[NV], q1[NV], q2[NV], q3[NV];                                                        \
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) {                                       \
            q0[v] = _mm512_loadu_ps(q[0] + 16 * v), q1[v] = _mm512_loadu_ps(q[1] + 16 * v);          \
            q2[v] = _mm512_loadu_ps(q[2] + 16 * v), q3[v] = _mm512_loadu_ps(q[3] + 16 * v);          \
        }                                                                                             \
        for (int j = 0; j < n; j++) {                                                                 \
            const float *k = K + (size_t)j * ld;                                                      \
            __m512 kv = _mm512_loadu_ps(k);                                                           \
            __m512 a0 = _mm512_mul_ps(q0[0], kv), a1 = _mm512_mul_ps(q1[0], kv);                      \
            __m512 a2 = _mm512_mul_ps(q2[0], kv), a3 = _mm512_mul_ps(q3[0], kv);                      \
            _Pragma("GCC unroll 4") for (int v = 1; v < NV; v++) {                                   \
                kv = _mm512_loadu_ps(k + 16 * v);                                                     \
                a0 = _mm512_fmadd_ps(q0[v], kv, a0), a1 = _mm512_fmadd_ps(q1[v], kv, a1);            \
                a2 = _mm512_fmadd_ps(q2[v], kv, a2), a3 = _mm512_fmadd_ps(q3[v], kv, a3);            \
            }                                                                                         \
            __m512 s01 = _mm512_add_ps(_mm512_shuffle_f32x4(a0, a1, 0x44), _mm512_shuffle_f32x4(a0, a1, 0xee)); \
            __m512 s23 = _mm512_add_ps(_mm512_shuffle_f32x4(a2, a3, 0x44), _mm512_shuffle_f32x4(a2, a3, 0xee)); \
            __m512 u = _mm512_add_ps(_mm512_shuffle_f32x4(s01, s23, 0x88), _mm512_shuffle_f32x4(s01, s23, 0xdd)); \
            u = _mm512_add_ps(u, _mm512_permute_ps(u, 0xb1));                                         \
            u = _mm512_add_ps(u, _mm512_permute_ps(u, 0x4e));                                         \
            float t[16];                                                                              \
            _mm512_storeu_ps(t, u);                                                                   \
            out[j] = t[0], out[ldo + j] = t[4], out[2 * ldo + j] = t[8], out[3 * ldo + j] = t[12];    \
        }                                                                                             \
    }

T5 void nn_avx512_dot4n(float *out, size_t ldo, const float *const q[4], const float *K, size_t ld, int n, int hd)
{
    switch (hd / 16) {
    case 1: DOT4N_BODY(1) break;
    case 2: DOT4N_BODY(2) break;
    case 3: DOT4N_BODY(3) break;
    default: DOT4N_BODY(4) break;
    }
}

#define AXPY4N_BODY(NV)                                                                               \
    {                                                                                                 \
        __m512 o0[NV], o1[NV], o2[NV], o3[NV];                                                        \
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) {                                       \
            o0[v] = _mm512_loadu_ps(o[0] + 16 * v), o1[v] = _mm512_loadu_ps(o[1] + 16 * v);          \
            o2[v] = _mm512_loadu_ps(o[2] + 16 * v), o3[v] = _mm512_loadu_ps(o[3] + 16 * v);          \
        }                                                                                             \
        for (int j = 0; j < n; j++) {                                                                 \
            const float *vr = V + (size_t)j * ld;                                                     \
            __m512 w0 = _mm512_set1_ps(w[j]), w1 = _mm512_set1_ps(w[ldw + j]);                        \
            __m512 w2 = _mm512_set1_ps(w[2 * ldw + j]), w3 = _mm512_set1_ps(w[3 * ldw + j]);          \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) {                                   \
                __m512 vv = _mm512_loadu_ps(vr + 16 * v);                                             \
                o0[v] = _mm512_fmadd_ps(w0, vv, o0[v]), o1[v] = _mm512_fmadd_ps(w1, vv, o1[v]);       \
                o2[v] = _mm512_fmadd_ps(w2, vv, o2[v]), o3[v] = _mm512_fmadd_ps(w3, vv, o3[v]);       \
            }                                                                                         \
        }                                                                                             \
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) {                                       \
            _mm512_storeu_ps(o[0] + 16 * v, o0[v]), _mm512_storeu_ps(o[1] + 16 * v, o1[v]);          \
            _mm512_storeu_ps(o[2] + 16 * v, o2[v]), _mm512_storeu_ps(o[3] + 16 * v, o3[v]);          \
        }                                                                                             \
    }

T5 void nn_avx512_axpy4n(float *const o[4], const float *w, size_t ldw, const float *V, size_t ld, int n, int hd)
{
    switch (hd / 16) {
    case 1: AXPY4N_BODY(1) break;
    case 2: AXPY4N_BODY(2) break;
    case 3: AXPY4N_BODY(3) break;
    default: AXPY4N_BODY(4) break;
    }
}

/* ---- int8 weights x int8 activations (NN_Q8, see nn.h) --------------------------------
 * Both kernels take 4 weight rows at a time (the last block repeats a row when rows % 4 !=
 * 0; its extra results are dropped) and run every activation row m against them, so a
 * 4-row block (4 x cols bytes) stays in L1 during a prompt pass. Integer group sums are
 * exact; only the float accumulation order differs from nn_ref_gemm_q8. */

/* lanes 0-7 = a, lanes 8-15 = b: the scales of two consecutive groups of 32 (one group
 * per 8 int32 lanes of vpdpbusd) */
T5V static inline __m512 q8_scales2(float a, float b)
{
    __m256d lo = _mm256_castps_pd(_mm256_set1_ps(a)), hi = _mm256_castps_pd(_mm256_set1_ps(b));
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(lo), hi, 1));
}

/* vpdpbusd multiplies unsigned by signed bytes: (w ^ 0x80) = w + 128 as unsigned, so each
 * int32 lane gets dot4(w, x) + 128 * sum4(x); the accumulator starts at x->c (= -128 *
 * sum4(x)) instead of 0, which cancels the offset exactly. cols % 32 == 0; a last half
 * block of 32 is read with masked loads (zero x and c lanes contribute nothing). */
T5V void nn_avx512vnni_gemm_q8(float *y, int ldy, const struct nn_q8x *x, int M, const int8_t *W, const float *ws,
                               int rows, int cols)
{
    int full = cols & ~63, rem = cols - full, ng = cols / 32;
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    for (int r = 0; r < rows; r += 4) {
        int nr = rows - r < 4 ? rows - r : 4;
        const int8_t *w0 = W + (size_t)r * cols;
        const int8_t *w1 = nr > 1 ? w0 + cols : w0, *w2 = nr > 2 ? w0 + 2 * (size_t)cols : w0,
                     *w3 = nr > 3 ? w0 + 3 * (size_t)cols : w0;
        for (int m = 0; m < M; m++) {
            const int8_t *xq = x->q + (size_t)m * cols;
            const float *xs = x->s + (size_t)m * ng;
            const int32_t *xc = x->c + (size_t)m * (cols / 4);
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int c = 0; c < full; c += 64) {
                /* 512 bytes ahead per row: +10-35 % in a 64 MB CPU-time microbenchmark on
                 * the loaded box (6.6-7.1 -> 7.9-9.5 GB/s; 256 and 768 were not better) */
                _mm_prefetch((const char *)(w0 + c) + 512, _MM_HINT_T0);
                _mm_prefetch((const char *)(w1 + c) + 512, _MM_HINT_T0);
                _mm_prefetch((const char *)(w2 + c) + 512, _MM_HINT_T0);
                _mm_prefetch((const char *)(w3 + c) + 512, _MM_HINT_T0);
                __m512i xv = _mm512_loadu_si512(xq + c), cv = _mm512_loadu_si512(xc + c / 4);
                __m512 sv = q8_scales2(xs[c / 32], xs[c / 32 + 1]);
                __m512i t0 = _mm512_dpbusd_epi32(cv, _mm512_xor_si512(_mm512_loadu_si512(w0 + c), bias), xv);
                __m512i t1 = _mm512_dpbusd_epi32(cv, _mm512_xor_si512(_mm512_loadu_si512(w1 + c), bias), xv);
                __m512i t2 = _mm512_dpbusd_epi32(cv, _mm512_xor_si512(_mm512_loadu_si512(w2 + c), bias), xv);
                __m512i t3 = _mm512_dpbusd_epi32(cv, _mm512_xor_si512(_mm512_loadu_si512(w3 + c), bias), xv);
                a0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t0), sv, a0);
                a1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t1), sv, a1);
                a2 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t2), sv, a2);
                a3 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t3), sv, a3);
            }
            if (rem) {
                const __mmask64 k = 0xffffffffull;
                __m512i xv = _mm512_maskz_loadu_epi8(k, xq + full), cv = _mm512_maskz_loadu_epi32(0xff, xc + full / 4);
                __m512 sv = q8_scales2(xs[full / 32], 0.0f);
                __m512i t0 = _mm512_dpbusd_epi32(cv, _mm512_xor_si512(_mm512_maskz_loadu_epi8(k, w0 + full), bias), xv);
                __m512i t1 = _mm512_dpbusd_epi32(cv, _mm512_xor_si512(_mm512_maskz_loadu_epi8(k, w1 + full), bias), xv);
                __m512i t2 = _mm512_dpbusd_epi32(cv, _mm512_xor_si512(_mm512_maskz_loadu_epi8(k, w2 + full), bias), xv);
                __m512i t3 = _mm512_dpbusd_epi32(cv, _mm512_xor_si512(_mm512_maskz_loadu_epi8(k, w3 + full), bias), xv);
                a0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t0), sv, a0);
                a1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t1), sv, a1);
                a2 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t2), sv, a2);
                a3 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t3), sv, a3);
            }
            float *yr = y + (size_t)m * ldy + r;
            yr[0] = _mm512_reduce_add_ps(a0) * ws[r];
            if (nr > 1) yr[1] = _mm512_reduce_add_ps(a1) * ws[r + 1];
            if (nr > 2) yr[2] = _mm512_reduce_add_ps(a2) * ws[r + 2];
            if (nr > 3) yr[3] = _mm512_reduce_add_ps(a3) * ws[r + 3];
        }
    }
}

/* q8_round() of kernels.c on 16 lanes: t = v * inv; t + (t >= 0 ? 0.5 : -0.5) (the sign
 * of t decides; -0.0 and +0.0 both end at 0); clamp to [-127, 127]; NaN -> 0; truncate */
T5 static inline __m128i q8_round16(__m512 v, __m512 inv)
{
    __m512 t = _mm512_mul_ps(v, inv);
    __mmask16 neg = _mm512_cmp_ps_mask(t, _mm512_setzero_ps(), _CMP_LT_OQ);
    __m512 r = _mm512_add_ps(t, _mm512_mask_blend_ps(neg, _mm512_set1_ps(0.5f), _mm512_set1_ps(-0.5f)));
    __mmask16 ord = _mm512_cmp_ps_mask(r, r, _CMP_ORD_Q);
    r = _mm512_min_ps(_mm512_max_ps(r, _mm512_set1_ps(-127.0f)), _mm512_set1_ps(127.0f));
    return _mm512_cvtepi32_epi8(_mm512_maskz_cvttps_epi32(ord, r));
}

T5 static inline float absmax512(const float *x, int n)
{
    __m512 m = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(x + i)));
    if (i < n) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_maskz_loadu_ps((__mmask16)((1u << (n - i)) - 1), x + i)));
    return _mm512_reduce_max_ps(m);
}

T5 void nn_avx512_q8_quant_weights(int8_t *q, float *s, const float *W, int rows, int cols)
{
    for (int r = 0; r < rows; r++) {
        const float *w = W + (size_t)r * cols;
        int8_t *qr = q + (size_t)r * cols;
        float mx = absmax512(w, cols);
        float inv = mx > 0 ? 127.0f / mx : 0.0f;
        __m512 iv = _mm512_set1_ps(inv);
        int i = 0;
        for (; i + 16 <= cols; i += 16) _mm_storeu_si128((__m128i *)(qr + i), q8_round16(_mm512_loadu_ps(w + i), iv));
        if (i < cols) {
            __mmask16 k = (__mmask16)((1u << (cols - i)) - 1);
            _mm_mask_storeu_epi8(qr + i, k, q8_round16(_mm512_maskz_loadu_ps(k, w + i), iv));
        }
        s[r] = mx / 127.0f;
    }
}

T5 void nn_avx512_q8_quant_act(int8_t *q, float *s, int32_t *c, const float *x, int M, int cols)
{
    for (size_t g = 0; g < (size_t)M * cols / 32; g++) {
        const float *xg = x + g * 32;
        int8_t *qg = q + g * 32;
        __m512 v0 = _mm512_loadu_ps(xg), v1 = _mm512_loadu_ps(xg + 16);
        float mx = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        float inv = mx > 0 ? 127.0f / mx : 0.0f;
        __m512 iv = _mm512_set1_ps(inv);
        _mm_storeu_si128((__m128i *)qg, q8_round16(v0, iv));
        _mm_storeu_si128((__m128i *)(qg + 16), q8_round16(v1, iv));
        s[g] = mx / 127.0f;
        for (int j = 0; j < 8; j++) c[g * 8 + j] = -128 * (qg[4 * j] + qg[4 * j + 1] + qg[4 * j + 2] + qg[4 * j + 3]);
    }
}

/* AVX2: vpmaddubsw(|w|, sign(x, w)) gives w*x pair sums without saturation (|w|, |x| <=
 * 127, so a pair is at most 32258), vpmaddwd with ones widens to int32: one group of 32
 * per 256-bit vector. */
T2 void nn_avx2_gemm_q8(float *y, int ldy, const struct nn_q8x *x, int M, const int8_t *W, const float *ws, int rows,
                        int cols)
{
    int ng = cols / 32;
    const __m256i ones = _mm256_set1_epi16(1);
    for (int r = 0; r < rows; r += 4) {
        int nr = rows - r < 4 ? rows - r : 4;
        const int8_t *wr[4];
        for (int i = 0; i < 4; i++) wr[i] = W + (size_t)(r + (i < nr ? i : 0)) * cols;
        for (int m = 0; m < M; m++) {
            const int8_t *xq = x->q + (size_t)m * cols;
            const float *xs = x->s + (size_t)m * ng;
            __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
            for (int g = 0; g < ng; g++) {
                __m256i xv = _mm256_loadu_si256((const __m256i *)(xq + 32 * g));
                __m256 sv = _mm256_set1_ps(xs[g]);
                for (int i = 0; i < 4; i++) {
                    __m256i wv = _mm256_loadu_si256((const __m256i *)(wr[i] + 32 * g));
                    __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
                    a[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones)), sv, a[i]);
                }
            }
            for (int i = 0; i < nr; i++) y[(size_t)m * ldy + r + i] = hsum256(a[i]) * ws[r + i];
        }
    }
}

#else /* not x86: never selected */

int nn_cpu_avx2(void) { return 0; }
int nn_cpu_avx512(void) { return 0; }
int nn_cpu_avx512vnni(void) { return 0; }
void nn_avx512_f32_to_bf16(uint16_t *dst, const float *src, size_t n) { (void)dst, (void)src, (void)n; }
void nn_avx512_dotn(float *out, const float *q, const float *K, size_t ld, int n, int hd) { (void)out, (void)q, (void)K, (void)ld, (void)n, (void)hd; }
void nn_avx512_axpyn(float *o, const float *w, const float *V, size_t ld, int n, int hd) { (void)o, (void)w, (void)V, (void)ld, (void)n, (void)hd; }
void nn_avx512_dot4n(float *out, size_t ldo, const float *const q[4], const float *K, size_t ld, int n, int hd) { (void)out, (void)ldo, (void)q, (void)K, (void)ld, (void)n, (void)hd; }
void nn_avx512_axpy4n(float *const o[4], const float *w, size_t ldw, const float *V, size_t ld, int n, int hd) { (void)o, (void)w, (void)ldw, (void)V, (void)ld, (void)n, (void)hd; }
void nn_avx512_q8_quant_weights(int8_t *q, float *s, const float *W, int rows, int cols) { (void)q, (void)s, (void)W, (void)rows, (void)cols; }
void nn_avx512_q8_quant_act(int8_t *q, float *s, int32_t *c, const float *x, int M, int cols) { (void)q, (void)s, (void)c, (void)x, (void)M, (void)cols; }
void nn_avx512vnni_gemm_q8(float *y, int ldy, const struct nn_q8x *x, int M, const int8_t *W, const float *ws, int rows, int cols) { (void)y, (void)ldy, (void)x, (void)M, (void)W, (void)ws, (void)rows, (void)cols; }
void nn_avx2_gemm_q8(float *y, int ldy, const struct nn_q8x *x, int M, const int8_t *W, const float *ws, int rows, int cols) { (void)y, (void)ldy, (void)x, (void)M, (void)W, (void)ws, (void)rows, (void)cols; }
void nn_avx2_gemv_f32(float *y, const float *x, const float *W, int rows, int cols) { (void)y, (void)x, (void)W, (void)rows, (void)cols; }
void nn_avx2_gemv_bf16(float *y, const float *x, const uint16_t *W, int rows, int cols) { (void)y, (void)x, (void)W, (void)rows, (void)cols; }
float nn_avx2_dot(const float *a, const float *b, int n) { (void)a, (void)b, (void)n; return 0; }
void nn_avx2_axpy(float *y, float a, const float *x, int n) { (void)y, (void)a, (void)x, (void)n; }
void nn_avx2_gelu(float *x, size_t n) { (void)x, (void)n; }
void nn_avx2_dot4(const float *const q[4], const float *k, int n, float out[4]) { (void)q, (void)k, (void)n, (void)out; }
void nn_avx2_axpy4(float *const o[4], const float w[4], const float *v, int n) { (void)o, (void)w, (void)v, (void)n; }
void nn_avx512_gemv_f32(float *y, const float *x, const float *W, int rows, int cols) { (void)y, (void)x, (void)W, (void)rows, (void)cols; }
void nn_avx512_gemv_bf16(float *y, const float *x, const uint16_t *W, int rows, int cols) { (void)y, (void)x, (void)W, (void)rows, (void)cols; }

#endif
