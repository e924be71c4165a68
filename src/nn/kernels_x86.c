/* kernels_x86.c — AVX2/FMA and AVX-512 versions of the hot kernels (see dispatch.h).
 *
 * Compiled for the baseline target; each function carries its own target attribute, so
 * the binary runs everywhere and these are only called after a CPU check. GEMV walks 4
 * weight rows at once so x is loaded once per 4 rows; the weight stream is the whole cost
 * (memory-bound), so there is no blocking beyond that. Tails (cols not a multiple of the
 * vector width) are finished in scalar code. Results differ from the references only by
 * summation order.
 */
#include "nn/dispatch.h"

#include <immintrin.h>

#if defined(__x86_64__) || defined(__i386__)

int nn_cpu_avx2(void) { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
int nn_cpu_avx512(void) { return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"); }

#define T2 __attribute__((target("avx2,fma")))
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

T2 void nn_avx2_gemv_bf16(float *y, const float *x, const uint16_t *W, int rows, int cols)
{
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

T5 void nn_avx512_gemv_bf16(float *y, const float *x, const uint16_t *W, int rows, int cols)
{
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

#else /* not x86: never selected */

int nn_cpu_avx2(void) { return 0; }
int nn_cpu_avx512(void) { return 0; }
void nn_avx2_gemv_f32(float *y, const float *x, const float *W, int rows, int cols) { (void)y, (void)x, (void)W, (void)rows, (void)cols; }
void nn_avx2_gemv_bf16(float *y, const float *x, const uint16_t *W, int rows, int cols) { (void)y, (void)x, (void)W, (void)rows, (void)cols; }
float nn_avx2_dot(const float *a, const float *b, int n) { (void)a, (void)b, (void)n; return 0; }
void nn_avx512_gemv_f32(float *y, const float *x, const float *W, int rows, int cols) { (void)y, (void)x, (void)W, (void)rows, (void)cols; }
void nn_avx512_gemv_bf16(float *y, const float *x, const uint16_t *W, int rows, int cols) { (void)y, (void)x, (void)W, (void)rows, (void)cols; }

#endif
