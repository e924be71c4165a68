/* test_gemm.c — the packed GEMM behind nn_linear for M >= 2 (gemm_x86.c):
 *  - the references compute what they claim (against a double-precision product);
 *  - every x86 version the CPU has is bit-identical to nn_ref_gemm_f32/_bf16 on awkward
 *    shapes (M 1..70, rows and cols off the 16/32 grid, k-block tails, bias, ldy > rows)
 *    and never writes outside its [M, rows] window of y;
 *  - nn_linear's invariance (nn.h): row m of y is bit-identical whatever batch it is
 *    computed in (M >= 2) and whatever the pool's thread count.
 */
#include "ut.h"
#include "nn/dispatch.h"
#include "nn/nn.h"

#include <stdint.h>

static uint64_t rs = 0x9e3779b97f4a7c15ull;
static float frand(void) /* uniform [-1, 1) */
{
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (float)((rs >> 40) / (double)(1 << 24) * 2 - 1);
}
static void fill(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = frand();
}

/* index of the first differing float (bitwise), or -1 */
static long first_diff(const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(a + i, b + i, sizeof *a)) return (long)i;
    return -1;
}

typedef struct kern {
    const char *name;
    nn_gemm_f32_fn f32;
    nn_gemm_bf16_fn bf16;
} kern;

static int kernels(kern *k)
{
    int n = 0;
    if (nn_cpu_avx512()) k[n++] = (kern){"avx512", nn_avx512_gemm_f32, nn_avx512_gemm_bf16};
    if (nn_cpu_avx2()) k[n++] = (kern){"avx2", nn_avx2_gemm_f32, nn_avx2_gemm_bf16};
    k[n++] = (kern){"picked", nn_pick_gemm_f32(), nn_pick_gemm_bf16()};
    return n;
}

/* the references against a double-precision sum (they are the ground truth below) */
static void t_ref(ut_ctx *t)
{
    int M = 3, R = 5, C = 300;
    float x[3 * 300], W[5 * 300], b[5], y[3 * 5];
    uint16_t Wb[5 * 300];
    fill(x, sizeof x / 4), fill(W, sizeof W / 4), fill(b, 5);
    for (int i = 0; i < R * C; i++) Wb[i] = nn_f32_to_bf16(W[i]);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 0) nn_ref_gemm_f32(y, R, x, M, W, R, C, b);
        else nn_ref_gemm_bf16(y, R, x, M, Wb, R, C, b);
        for (int m = 0; m < M; m++)
            for (int r = 0; r < R; r++) {
                double s = b[r];
                for (int k = 0; k < C; k++)
                    s += (double)x[m * C + k] * (pass ? nn_bf16_to_f32(Wb[r * C + k]) : W[r * C + k]);
                UT_NEAR(t, s, y[m * R + r], 1e-4);
            }
    }
    /* the chain is sequential fma: with x = (1, 2^-24, 2^-24) and W = 1 the two small terms
     * are each lost to rounding (a pairwise sum would keep them) */
    float x3[3] = {1.0f, 0x1p-24f, 0x1p-24f}, w3[3] = {1, 1, 1}, y3;
    nn_ref_gemm_f32(&y3, 1, x3, 1, w3, 1, 3, NULL);
    UT_NEAR(t, 1.0, y3, 0);
}

/* every kernel == reference, bit for bit; the y padding (ldy > rows) is never written */
static void t_exact(ut_ctx *t)
{
    static const int Ms[] = {1, 2, 3, 5, 8, 11, 12, 13, 16, 23, 25, 45, 70};
    static const int RC[][2] = {{1, 1},   {3, 7},    {16, 16},  {31, 17},  {32, 256}, {33, 257},
                                {47, 33}, {64, 255}, {100, 48}, {17, 600}, {96, 520}, {5, 1031}};
    kern ks[3];
    int nk = kernels(ks);
    for (size_t s = 0; s < sizeof RC / sizeof RC[0]; s++)
        for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++) {
            int R = RC[s][0], C = RC[s][1], M = Ms[mi], ldy = R + 3 + (int)(mi % 5);
            if ((size_t)M * R * C > 250000) continue; /* the fmaf reference is slow under ASan */
            size_t ny = (size_t)M * ldy;
            float *W = malloc((size_t)R * C * 4), *x = malloc((size_t)M * C * 4), *b = malloc((size_t)R * 4);
            float *y0 = malloc(ny * 4), *y1 = malloc(ny * 4);
            uint16_t *Wb = malloc((size_t)R * C * 2);
            fill(W, (size_t)R * C), fill(x, (size_t)M * C), fill(b, (size_t)R);
            for (size_t i = 0; i < (size_t)R * C; i++) Wb[i] = nn_f32_to_bf16(W[i]);
            for (int dt = 0; dt < 2; dt++)
                for (int wb = 0; wb < 2; wb++) {
                    const float *bias = wb ? b : NULL;
                    if (wb == 0) { /* the reference once per dtype; with bias it is exactly acc + b[r] */
                        for (size_t i = 0; i < ny; i++) y0[i] = -777.0f;
                        if (dt == 0) nn_ref_gemm_f32(y0, ldy, x, M, W, R, C, NULL);
                        else nn_ref_gemm_bf16(y0, ldy, x, M, Wb, R, C, NULL);
                    } else {
                        for (int m = 0; m < M; m++)
                            for (int r = 0; r < R; r++) y0[(size_t)m * ldy + r] += b[r];
                    }
                    for (int k = 0; k < nk; k++) {
                        for (size_t i = 0; i < ny; i++) y1[i] = -777.0f;
                        if (dt == 0) ks[k].f32(y1, ldy, x, M, W, R, C, bias);
                        else ks[k].bf16(y1, ldy, x, M, Wb, R, C, bias);
                        long d = first_diff(y0, y1, ny);
                        if (d >= 0)
                            ut_fail(t, __FILE__, __LINE__,
                                    "%s %s M=%d rows=%d cols=%d ldy=%d bias=%d: y[%ld] (m %ld, r %ld) expected %.9g, got %.9g",
                                    ks[k].name, dt ? "bf16" : "f32", M, R, C, ldy, wb, d, d / ldy, d % ldy, y0[d], y1[d]);
                    }
                }
            free(W), free(x), free(b), free(y0), free(y1), free(Wb);
        }
}

/* nn_linear (M >= 2): row m is the same bits computed alone in a batch of 2, in the full
 * batch, in other splits, with 1, 2 or 3 threads; and it equals the reference */
static void t_invariance(ut_ctx *t)
{
    char err[128];
    nn_pool *pools[3] = {NULL, NULL, NULL};
    UT_EQ_INT(t, 0, nn_pool_new(&pools[1], 2, err, sizeof err));
    UT_EQ_INT(t, 0, nn_pool_new(&pools[2], 3, err, sizeof err));
    int M = 37, R = 200, C = 300; /* R*C*M well above nn_linear's threading threshold */
    float *W = malloc((size_t)R * C * 4), *x = malloc((size_t)M * C * 4), *b = malloc((size_t)R * 4);
    float *yref = malloc((size_t)M * R * 4), *y = malloc((size_t)M * R * 4), *ys = malloc((size_t)M * R * 4);
    uint16_t *Wb = malloc((size_t)R * C * 2);
    fill(W, (size_t)R * C), fill(x, (size_t)M * C), fill(b, (size_t)R);
    for (size_t i = 0; i < (size_t)R * C; i++) Wb[i] = nn_f32_to_bf16(W[i]);
    for (int dt = 0; dt < 2; dt++) {
        nn_mat mat = dt ? (nn_mat){Wb, NN_BF16, R, C, NULL} : (nn_mat){W, NN_F32, R, C, NULL};
        if (dt) nn_ref_gemm_bf16(yref, R, x, M, Wb, R, C, b);
        else nn_ref_gemm_f32(yref, R, x, M, W, R, C, b);
        for (int p = 0; p < 3; p++) {
            nn_linear(pools[p], y, x, M, &mat, b);
            long d = nn_gemm_fast() ? first_diff(yref, y, (size_t)M * R) : -1;
            if (d >= 0)
                ut_fail(t, __FILE__, __LINE__, "%s, %d threads, M=%d: y[%ld] expected %.9g (reference), got %.9g",
                        dt ? "bf16" : "f32", nn_pool_threads(pools[p]), M, d, yref[d], y[d]);
            /* the same rows in batches of 2, 3, 5, 16 (the last batch takes what is left, >= 2) */
            static const int bs[] = {2, 3, 5, 16};
            for (size_t q = 0; q < sizeof bs / sizeof bs[0]; q++) {
                for (int m0 = 0; m0 < M;) {
                    int n = M - m0 < bs[q] || M - m0 - bs[q] < 2 ? M - m0 : bs[q];
                    nn_linear(pools[p], ys + (size_t)m0 * R, x + (size_t)m0 * C, n, &mat, b);
                    m0 += n;
                }
                d = first_diff(y, ys, (size_t)M * R);
                if (d >= 0)
                    ut_fail(t, __FILE__, __LINE__,
                            "%s, %d threads: batches of %d vs one batch of %d: y[%ld] expected %.9g, got %.9g",
                            dt ? "bf16" : "f32", nn_pool_threads(pools[p]), bs[q], M, d, y[d], ys[d]);
            }
        }
    }
    free(W), free(x), free(b), free(yref), free(y), free(ys), free(Wb);
    nn_pool_free(pools[1]);
    nn_pool_free(pools[2]);
}

static const ut_case cases[] = {
    {"ref", t_ref},
    {"exact", t_exact},
    {"invariance", t_invariance},
};
UT_SUITE(gemm, cases)
