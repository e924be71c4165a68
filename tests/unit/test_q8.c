/* test_q8.c — the int8 weight mode (NN_Q8): quantizers meet their stated error bounds,
 * every dispatched int8 GEMM/GEMV (AVX-512 VNNI, AVX2) matches nn_ref_gemm_q8, and
 * nn_linear on an NN_Q8 matrix stays close to the float product.
 *
 * Tolerances: the integer group sums are exact in every kernel, so fast vs reference
 * differs only by float accumulation order: |diff| <= 1e-5 * (1 + max|y|). Quantized vs
 * float: per weight |W - q s| <= s / 2 and per activation |x - q s_g| <= s_g / 2 (plus
 * float rounding); for random [-1, 1) data the relative RMS error of y is < 2 %. */
#include "ut.h"
#include "core/err.h"
#include "engine/pocket/flowlm.h"
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

static void t_quant_weights(ut_ctx *t)
{
    enum { R = 5, C = 64 };
    float W[R * C], s[R];
    int8_t q[R * C];
    fill(W, R * C);
    for (int i = 0; i < C; i++) W[2 * C + i] = 0; /* an all-zero row: scale 0, q 0 */
    W[3 * C + 7] = -3.0f;                         /* the row maximum maps to -127 */
    nn_q8_quant_weights(q, s, W, R, C);
    UT_NEAR(t, 0.0, s[2], 0);
    UT_NEAR(t, 3.0 / 127, s[3], 1e-7);
    UT_EQ_INT(t, -127, q[3 * C + 7]);
    for (int r = 0; r < R; r++)
        for (int i = 0; i < C; i++) {
            float e = fabsf(W[r * C + i] - q[r * C + i] * s[r]);
            if (e > s[r] * 0.5f + 1e-6f)
                ut_fail(t, __FILE__, __LINE__, "W[%d][%d]=%g q=%d s=%g: error %g > s/2", r, i, W[r * C + i], q[r * C + i],
                        s[r], e);
        }
}

static void t_quant_act(ut_ctx *t)
{
    enum { M = 2, C = 96 };
    float x[M * C], s[M * C / 32];
    int8_t q[M * C];
    int32_t c[M * C / 4];
    fill(x, M * C);
    for (int i = 32; i < 64; i++) x[i] *= 100.0f; /* groups scale independently */
    nn_q8_quant_act(q, s, c, x, M, C);
    for (int i = 0; i < M * C; i++) {
        float e = fabsf(x[i] - q[i] * s[i / 32]);
        if (e > s[i / 32] * 0.5f + 1e-5f * fabsf(x[i]))
            ut_fail(t, __FILE__, __LINE__, "x[%d]=%g q=%d s=%g: error %g > s/2", i, x[i], q[i], s[i / 32], e);
    }
    for (int j = 0; j < M * C / 4; j++)
        UT_EQ_INT(t, -128 * (q[4 * j] + q[4 * j + 1] + q[4 * j + 2] + q[4 * j + 3]), c[j]);
    UT_CHECK(t, s[1] > 50 * s[0]);
}

/* shapes: rows not a multiple of 4, cols with a trailing half block of 32 (VNNI tail) */
static const int shapes[][2] = {{1, 32}, {3, 64}, {5, 96}, {4, 160}, {17, 1024}, {67, 4096}, {130, 288}};

static void t_gemm_q8(ut_ctx *t)
{
    nn_gemm_q8_fn fns[2] = {nn_cpu_avx512vnni() ? nn_avx512vnni_gemm_q8 : NULL,
                            nn_cpu_avx2() ? nn_avx2_gemm_q8 : NULL};
    const char *names[2] = {"avx512vnni", "avx2"};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        int R = shapes[k][0], C = shapes[k][1];
        for (int M = 1; M <= 5; M += 2) {
            float *W = malloc((size_t)R * C * 4), *x = malloc((size_t)M * C * 4), *ws = malloc((size_t)R * 4),
                  *xs = malloc((size_t)M * C / 32 * 4), *y0 = malloc((size_t)M * R * 4), *y1 = malloc((size_t)M * R * 4);
            int8_t *wq = malloc((size_t)R * C), *xq = malloc((size_t)M * C);
            int32_t *xc = malloc((size_t)M * C);
            fill(W, (size_t)R * C), fill(x, (size_t)M * C);
            /* extreme values: +-127 everywhere in one row exercises the largest sums */
            for (int i = 0; i < C; i++) W[i] = (i & 1) ? 1.0f : -1.0f;
            nn_q8_quant_weights(wq, ws, W, R, C);
            nn_q8_quant_act(xq, xs, xc, x, M, C);
            nn_q8x qx = {xq, xs, xc};
            nn_ref_gemm_q8(y0, R, &qx, M, wq, ws, R, C);
            for (int f = 0; f < 2; f++) {
                if (!fns[f]) continue;
                fns[f](y1, R, &qx, M, wq, ws, R, C);
                double mx = 0, d = 0;
                for (int i = 0; i < M * R; i++) {
                    mx = fmax(mx, fabs(y0[i]));
                    d = fmax(d, fabs((double)y0[i] - y1[i]));
                }
                if (d > 1e-5 * (1 + mx))
                    ut_fail(t, __FILE__, __LINE__, "gemm_q8[%s] %dx%d M=%d: max diff %g (max |y| %g)", names[f], R, C, M,
                            d, mx);
            }
            free(W), free(x), free(ws), free(xs), free(y0), free(y1), free(wq), free(xq), free(xc);
        }
    }
}

/* nn_linear on NN_Q8 via nn_mat_from_st: close to the float product; identical for 1 and 2
 * threads and for M = 3 vs three M = 1 calls (a row's result never depends on the split) */
static void t_linear_q8(ut_ctx *t)
{
    enum { R = 300, C = 256, M = 3 };
    size_t hdr_cap = 256, nb = (size_t)R * C * 4;
    unsigned char *buf = malloc(8 + hdr_cap + nb);
    char h[200];
    snprintf(h, sizeof h, "{\"w\":{\"dtype\":\"F32\",\"shape\":[%d,%d],\"data_offsets\":[0,%zu]}}", R, C, nb);
    size_t hl = strlen(h), pad = (8 - (8 + hl) % 8) % 8;
    uint64_t L = hl + pad;
    memcpy(buf, &L, 8);
    memcpy(buf + 8, h, hl);
    memset(buf + 8 + hl, ' ', pad);
    float *W = (float *)(buf + 8 + L);
    fill(W, (size_t)R * C);
    char err[256];
    st_file *f = NULL;
    if (st_open_mem(&f, buf, 8 + L + nb, err, sizeof err)) ut_fail(t, __FILE__, __LINE__, "%s", err);
    nn_mat mq, mf;
    UT_EQ_INT(t, 0, nn_mat_from_st(&mq, st_find(f, "w"), R, C, NN_Q8, err, sizeof err));
    UT_EQ_INT(t, 0, nn_mat_from_st(&mf, st_find(f, "w"), R, C, NN_F32, err, sizeof err));
    UT_CHECK(t, mq.dtype == NN_Q8 && mq.owned != NULL);
    nn_mat bad;
    UT_EQ_INT(t, ERR_FORMAT, nn_mat_from_st(&bad, st_find(f, "w"), R * C / 40, 40, NN_Q8, err, sizeof err));
    UT_CHECK(t, strstr(err, "cols") != NULL);
    float x[M * C], b[R], yf[M * R], yq[M * R], y1[M * R], y2[M * R];
    fill(x, M * C), fill(b, R);
    nn_pool *pool = NULL;
    UT_EQ_INT(t, 0, nn_pool_new(&pool, 2, err, sizeof err));
    nn_linear(NULL, yf, x, M, &mf, b);
    nn_linear(NULL, yq, x, M, &mq, b);
    nn_linear(pool, y1, x, M, &mq, b);
    for (int m = 0; m < M; m++) nn_linear(pool, y2 + m * R, x + m * C, 1, &mq, b);
    double se = 0, sr = 0;
    for (int i = 0; i < M * R; i++) {
        se += (yq[i] - yf[i]) * (double)(yq[i] - yf[i]);
        sr += (double)yf[i] * yf[i];
        if (yq[i] != y1[i] || yq[i] != y2[i])
            ut_fail(t, __FILE__, __LINE__, "y[%d]: 1 thread %.9g, 2 threads %.9g, M=1 calls %.9g", i, yq[i], y1[i], y2[i]);
    }
    double rel = sqrt(se / sr);
    if (!(rel < 0.02)) ut_fail(t, __FILE__, __LINE__, "int8 vs f32 relative RMS error: expected < 0.02, got %g", rel);
    nn_pool_free(pool);
    nn_mat_free(&mq), nn_mat_free(&mf);
    st_close(f);
    free(buf);
}

/* the AVX-512 quantizers are bit-identical to the references (ties, clamp, zero rows and
 * groups, a row length with a masked tail) */
static void t_quant_simd(ut_ctx *t)
{
    if (!nn_cpu_avx512()) return;
    enum { R = 7, C = 200, CA = 256, M = 3 };
    float W[R * C], x[M * CA], s0[R], s1[R], xs0[M * CA / 32], xs1[M * CA / 32];
    int8_t q0[R * C], q1[R * C], xq0[M * CA], xq1[M * CA];
    int32_t c0[M * CA / 4], c1[M * CA / 4];
    fill(W, R * C), fill(x, M * CA);
    /* row 2: max 63.5 makes inv exactly 2, so odd multiples of 0.25 land on .5 ties */
    for (int i = 0; i < C; i++) W[C + i] = 0, W[2 * C + i] = (float)(i - 100) * 0.25f;
    W[2 * C] = 63.5f;
    W[3 * C + 5] = -0.0f;
    for (int i = 0; i < 32; i++) x[64 + i] = 0;
    for (int i = 0; i < 32; i++) x[96 + i] = (float)(i - 16) * 0.25f;
    nn_ref_q8_quant_weights(q0, s0, W, R, C);
    nn_avx512_q8_quant_weights(q1, s1, W, R, C);
    for (int i = 0; i < R * C; i++)
        if (q0[i] != q1[i]) ut_fail(t, __FILE__, __LINE__, "W[%d]=%g: reference q %d, avx512 q %d", i, W[i], q0[i], q1[i]);
    for (int r = 0; r < R; r++) UT_NEAR(t, s0[r], s1[r], 0);
    nn_ref_q8_quant_act(xq0, xs0, c0, x, M, CA);
    nn_avx512_q8_quant_act(xq1, xs1, c1, x, M, CA);
    for (int i = 0; i < M * CA; i++)
        if (xq0[i] != xq1[i]) ut_fail(t, __FILE__, __LINE__, "x[%d]=%g: reference q %d, avx512 q %d", i, x[i], xq0[i], xq1[i]);
    for (int g = 0; g < M * CA / 32; g++) UT_NEAR(t, xs0[g], xs1[g], 0);
    for (int j = 0; j < M * CA / 4; j++) UT_EQ_INT(t, c0[j], c1[j]);
}

/* FlowLM on the tiny reference model with NN_Q8: loads with and without the huge-page
 * arena (the tiny model mixes int8 and F32 fallbacks: flow dim 48 is not a multiple of
 * 32, so the arena sizing must follow the same rule), both give bit-identical outputs,
 * and a text prompt + 4 steps stay within 0.1 (relative to the max) of the F32 model. */
static void run_tiny(ut_ctx *t, const pk_config *cfg, const st_file *w, nn_dtype dt, int huge, float *out, int nout)
{
    char err[256];
    pk_flowlm *m = NULL;
    pk_flowlm_opts o = {dt, NULL, NULL, huge};
    if (pk_flowlm_load(&m, cfg, w, &o, err, sizeof err)) ut_fail(t, __FILE__, __LINE__, "dtype %d huge %d: %s", dt, huge, err);
    pk_fstate *s = NULL;
    UT_EQ_INT(t, 0, pk_fstate_new(&s, m, 64, err, sizeof err));
    pk_gen_params p;
    pk_gen_params_default(&p);
    pk_gauss g;
    pk_gauss_seed(&g, 7);
    pk_noise nz = {pk_gauss_fill, &g};
    int ids[6] = {3, 17, 99, 5, 200, 42};
    UT_EQ_INT(t, 0, pk_flowlm_prompt_text(m, s, ids, 6, &p, NULL, err, sizeof err));
    int ld = cfg->ldim;
    UT_CHECK(t, nout == 4 * (ld + 1));
    for (int k = 0; k < 4; k++)
        UT_EQ_INT(t, 0, pk_flowlm_step(m, s, k ? out + (size_t)(k - 1) * ld : NULL, &p, &nz, out + (size_t)k * ld,
                                       out + 4 * ld + k, err, sizeof err));
    pk_fstate_free(s);
    pk_flowlm_free(m);
}

static void t_flowlm_q8(ut_ctx *t)
{
    char pth[512], err[256];
    pk_config cfg;
    st_file *w = NULL;
    if (pk_config_load_json(&cfg, ut_path(pth, sizeof pth, "reference/pocket-tts/tiny_config.resolved.json"), err,
                            sizeof err))
        ut_fail(t, __FILE__, __LINE__, "%s", err);
    if (st_open(&w, ut_path(pth, sizeof pth, "reference/pocket-tts/tiny_model.safetensors"), err, sizeof err))
        ut_fail(t, __FILE__, __LINE__, "%s", err);
    enum { N = 4 * (16 + 1) };
    UT_EQ_INT(t, 16, cfg.ldim);
    float yf[N], yq[N], yh[N];
    run_tiny(t, &cfg, w, NN_F32, 0, yf, N);
    run_tiny(t, &cfg, w, NN_Q8, 0, yq, N);
    run_tiny(t, &cfg, w, NN_Q8, 1, yh, N);
    double mx = 0, d = 0;
    for (int i = 0; i < N; i++) {
        if (yq[i] != yh[i]) ut_fail(t, __FILE__, __LINE__, "out[%d]: int8 %.9g, int8 huge pages %.9g", i, yq[i], yh[i]);
        if (i < 4 * 16) mx = fmax(mx, fabs(yf[i])), d = fmax(d, fabs((double)yq[i] - yf[i]));
    }
    if (!(d <= 0.1 * mx)) ut_fail(t, __FILE__, __LINE__, "int8 latents vs f32: max diff %g, expected <= 0.1 * %g", d, mx);
    st_close(w);
}

/* single-query attention kernels vs their references (summation order differs only) */
static void t_dotn_axpyn(ut_ctx *t)
{
    if (!nn_cpu_avx512()) return;
    enum { N = 37, LD = 200 };
    static const int hds[] = {16, 64, 128};
    float K[N * LD], q[128], w[N], o0[128], o1[128], d0[N], d1[N];
    fill(K, N * LD), fill(q, 128), fill(w, N);
    for (int k = 0; k < 3; k++) {
        int hd = hds[k];
        nn_ref_dotn(d0, q, K + 3, LD, N, hd);
        nn_avx512_dotn(d1, q, K + 3, LD, N, hd);
        for (int j = 0; j < N; j++) UT_NEAR(t, d0[j], d1[j], 1e-5);
        fill(o0, 128);
        memcpy(o1, o0, sizeof o0);
        nn_ref_axpyn(o0, w, K + 5, LD, N, hd);
        nn_avx512_axpyn(o1, w, K + 5, LD, N, hd);
        for (int i = 0; i < 128; i++) UT_NEAR(t, o0[i], o1[i], i < hd ? 1e-5 : 0);
    }
    UT_CHECK(t, nn_pick_dotn(20) == nn_ref_dotn && nn_pick_axpyn(144) == nn_ref_axpyn);
}

/* vectorised f32 -> bf16 is bit-identical to nn_f32_to_bf16 (ties, NaN, Inf, subnormals,
 * a masked tail) */
static void t_bf16_simd(ut_ctx *t)
{
    if (!nn_cpu_avx512()) return;
    enum { N = 1000 };
    static const uint32_t special[] = {0x3f808000u, 0x3f818000u, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7f800001u,
                                       0xffffffffu, 0x00000001u, 0x807fffffu, 0x7f7fffffu, 0x00000000u, 0x80000000u};
    float x[N];
    uint16_t a[N], b[N];
    fill(x, N);
    for (int i = 0; i < N; i++) x[i] *= (float)(1 << (i % 20));
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) memcpy(&x[i * 7], &special[i], 4);
    for (int i = 0; i < N; i++) a[i] = nn_f32_to_bf16(x[i]);
    b[N - 1] = 0xabcd;
    nn_avx512_f32_to_bf16(b, x, N - 1); /* tail of 7 */
    for (int i = 0; i < N - 1; i++)
        if (a[i] != b[i]) ut_fail(t, __FILE__, __LINE__, "x[%d] (%a): expected 0x%04x, got 0x%04x", i, x[i], a[i], b[i]);
    UT_EQ_INT(t, 0xabcd, b[N - 1]);
}

static const ut_case cases[] = {
    {"bf16_simd", t_bf16_simd},
    {"dotn_axpyn", t_dotn_axpyn},
    {"flowlm_q8", t_flowlm_q8},
    {"quant_simd", t_quant_simd},
    {"quant_weights", t_quant_weights},
    {"quant_act", t_quant_act},
    {"gemm_q8", t_gemm_q8},
    {"linear_q8", t_linear_q8},
};
UT_SUITE(q8, cases)
