/* test_nn.c — every dispatched kernel matches its plain C reference; norms, RoPE,
 * attention and the pool behave as documented (checked against direct formulas). */
#include "ut.h"
#include "core/err.h"
#include "nn/dispatch.h"
#include "nn/nn.h"

#include <stdint.h>

static uint64_t rs = 88172645463325252ull;
static float frand(void) /* uniform [-1, 1) */
{
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (float)((rs >> 40) / (double)(1 << 24) * 2 - 1);
}
static void fill(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = frand();
}

static double maxdiff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)a[i] - b[i]) > m) m = fabs((double)a[i] - b[i]);
    return m;
}

/* odd shapes exercise the 4-row blocks, vector tails and the row remainder */
static const int shapes[][2] = {{1, 1}, {3, 7}, {4, 16}, {5, 17}, {5, 32}, {9, 96}, {13, 33}, {64, 48}, {67, 100}, {256, 1024}, {96, 4096}};

static void t_gemv_f32(ut_ctx *t)
{
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int R = shapes[s][0], C = shapes[s][1];
        float *W = malloc((size_t)R * C * 4), *x = malloc((size_t)C * 4), *y0 = malloc((size_t)R * 4),
              *y1 = malloc((size_t)R * 4), *y2 = malloc((size_t)R * 4);
        fill(W, (size_t)R * C), fill(x, (size_t)C);
        nn_ref_gemv_f32(y0, x, W, R, C);
        nn_pick_gemv_f32()(y1, x, W, R, C);
        double tol = 1e-5 * sqrt((double)C);
        if (maxdiff(y0, y1, (size_t)R) > tol)
            ut_fail(t, __FILE__, __LINE__, "gemv_f32 %dx%d: dispatched differs from ref by %g", R, C, maxdiff(y0, y1, (size_t)R));
        if (nn_cpu_avx2()) {
            nn_avx2_gemv_f32(y2, x, W, R, C);
            if (maxdiff(y0, y2, (size_t)R) > tol) ut_fail(t, __FILE__, __LINE__, "avx2 gemv_f32 %dx%d differs", R, C);
        }
        free(W), free(x), free(y0), free(y1), free(y2);
    }
}

static void t_gemv_bf16(ut_ctx *t)
{
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int R = shapes[s][0], C = shapes[s][1];
        uint16_t *W = malloc((size_t)R * C * 2);
        float *x = malloc((size_t)C * 4), *y0 = malloc((size_t)R * 4), *y1 = malloc((size_t)R * 4),
              *y2 = malloc((size_t)R * 4);
        for (size_t i = 0; i < (size_t)R * C; i++) W[i] = nn_f32_to_bf16(frand());
        fill(x, (size_t)C);
        nn_ref_gemv_bf16(y0, x, W, R, C);
        nn_pick_gemv_bf16()(y1, x, W, R, C);
        double tol = 1e-5 * sqrt((double)C);
        if (maxdiff(y0, y1, (size_t)R) > tol) ut_fail(t, __FILE__, __LINE__, "gemv_bf16 %dx%d differs", R, C);
        if (nn_cpu_avx2()) {
            nn_avx2_gemv_bf16(y2, x, W, R, C);
            if (maxdiff(y0, y2, (size_t)R) > tol) ut_fail(t, __FILE__, __LINE__, "avx2 gemv_bf16 %dx%d differs", R, C);
        }
        free(W), free(x), free(y0), free(y1), free(y2);
    }
}

/* the GEMM kernels (M > 1) are tested in test_gemm.c */

static void t_dot_axpy(ut_ctx *t)
{
    for (int n = 0; n < 70; n += 3) {
        float a[70], b[70], y0[70], y1[70];
        fill(a, 70), fill(b, 70), fill(y0, 70);
        memcpy(y1, y0, sizeof y0);
        UT_NEAR(t, nn_ref_dot(a, b, n), nn_pick_dot()(a, b, n), 1e-5);
        nn_ref_axpy(y0, 0.37f, a, n);
        nn_pick_axpy()(y1, 0.37f, a, n);
        UT_CHECK(t, maxdiff(y0, y1, 70) < 1e-6);
    }
    for (int n = 0; n < 70; n += 5) {
        float qv[4][70], k[70], r0[4], r1[4], o0[4][70], o1[4][70], w[4] = {0.5f, -1.25f, 2.0f, 0.1f};
        for (int i = 0; i < 4; i++) fill(qv[i], 70), fill(o0[i], 70), memcpy(o1[i], o0[i], sizeof o0[i]);
        fill(k, 70);
        const float *qs[4] = {qv[0], qv[1], qv[2], qv[3]};
        float *p0[4] = {o0[0], o0[1], o0[2], o0[3]}, *p1[4] = {o1[0], o1[1], o1[2], o1[3]};
        nn_ref_dot4(qs, k, n, r0);
        nn_pick_dot4()(qs, k, n, r1);
        UT_CHECK(t, maxdiff(r0, r1, 4) < 1e-5);
        nn_ref_axpy4(p0, w, k, n);
        nn_pick_axpy4()(p1, w, k, n);
        for (int i = 0; i < 4; i++) UT_CHECK(t, maxdiff(o0[i], o1[i], 70) < 1e-6);
    }
}

/* 4-query blocks against n cache rows (stride ld > hd): dot4n / axpy4n, every hd the
 * AVX-512 versions take (16..64) and one they do not (24), n 1..70 */
static void t_dot4n_axpy4n(ut_ctx *t)
{
    static const int hds[] = {16, 24, 32, 48, 64};
    enum { LD = 80, NMAX = 70 };
    static float K[NMAX * LD], qv[4][64], o0[4][64], o1[4][64], s0[4 * NMAX], s1[4 * NMAX], w[4 * NMAX];
    fill(K, NMAX * LD), fill(w, 4 * NMAX);
    for (size_t h = 0; h < sizeof hds / sizeof hds[0]; h++)
        for (int n = 1; n <= NMAX; n += 23) {
            int hd = hds[h];
            const float *qs[4] = {qv[0], qv[1], qv[2], qv[3]};
            float *p0[4] = {o0[0], o0[1], o0[2], o0[3]}, *p1[4] = {o1[0], o1[1], o1[2], o1[3]};
            for (int i = 0; i < 4; i++) fill(qv[i], 64), fill(o0[i], 64), memcpy(o1[i], o0[i], sizeof o0[i]);
            nn_ref_dot4n(s0, NMAX, qs, K, LD, n, hd);
            nn_pick_dot4n(hd)(s1, NMAX, qs, K, LD, n, hd);
            for (int i = 0; i < 4; i++)
                if (maxdiff(s0 + i * NMAX, s1 + i * NMAX, (size_t)n) > 1e-5)
                    ut_fail(t, __FILE__, __LINE__, "dot4n hd %d n %d query %d: differs by %g", hd, n, i,
                            maxdiff(s0 + i * NMAX, s1 + i * NMAX, (size_t)n));
            nn_ref_axpy4n(p0, w, NMAX, K, LD, n, hd);
            nn_pick_axpy4n(hd)(p1, w, NMAX, K, LD, n, hd);
            for (int i = 0; i < 4; i++) {
                if (maxdiff(o0[i], o1[i], (size_t)hd) > 1e-4)
                    ut_fail(t, __FILE__, __LINE__, "axpy4n hd %d n %d row %d: differs by %g", hd, n, i,
                            maxdiff(o0[i], o1[i], (size_t)hd));
                if (maxdiff(o0[i] + hd, o1[i] + hd, (size_t)(64 - hd)) != 0)
                    ut_fail(t, __FILE__, __LINE__, "axpy4n hd %d wrote past hd", hd);
            }
        }
}

static void t_gelu(ut_ctx *t)
{
    enum { N = 4003 };
    static float a[N], b[N];
    for (int i = 0; i < N; i++) a[i] = b[i] = -12.0f + 24.0f * (float)i / (N - 1);
    a[0] = b[0] = -100.0f, a[1] = b[1] = 100.0f, a[2] = b[2] = 0.0f;
    nn_ref_gelu_erf(a, N);
    nn_gelu_erf(b, N);
    for (int i = 0; i < N; i++) {
        double tol = 4e-7 * (1.0 + fabs((double)a[i]));
        if (fabs((double)a[i] - b[i]) > tol)
            ut_fail(t, __FILE__, __LINE__, "gelu at %d: ref %.9g, fast %.9g", i, a[i], b[i]);
    }
    if (nn_cpu_avx2()) {
        float c[N];
        for (int i = 0; i < N; i++) c[i] = -12.0f + 24.0f * (float)i / (N - 1);
        c[0] = -100.0f, c[1] = 100.0f, c[2] = 0.0f;
        nn_avx2_gelu(c, N);
        UT_CHECK(t, maxdiff(b, c, N) == 0);
    }
}

static void t_bf16_round(ut_ctx *t)
{
    UT_EQ_INT(t, 0x3f80, nn_f32_to_bf16(1.0f));
    UT_EQ_INT(t, 0x3f80, nn_f32_to_bf16(1.00390625f)); /* halfway (1 + 2^-8): ties to even */
    UT_EQ_INT(t, 0x3f82, nn_f32_to_bf16(1.01171875f)); /* 1 + 3*2^-8: ties to even upward */
    UT_CHECK(t, isnan(nn_bf16_to_f32(nn_f32_to_bf16(NAN))));
    UT_NEAR(t, -2.0, nn_bf16_to_f32(nn_f32_to_bf16(-2.0f)), 0);
}

/* nn_linear with pool and M>1 (sgemm path, and bf16 widening path) vs reference */
static void t_linear(ut_ctx *t)
{
    char err[256];
    nn_pool *pool = NULL;
    UT_EQ_INT(t, 0, nn_pool_new(&pool, 2, err, sizeof err));
    int R = 300, C = 260, M = 5;
    float *W = malloc((size_t)R * C * 4), *x = malloc((size_t)M * C * 4), *b = malloc((size_t)R * 4),
          *y = malloc((size_t)M * R * 4), *yr = malloc((size_t)M * R * 4);
    uint16_t *Wb = malloc((size_t)R * C * 2);
    fill(W, (size_t)R * C), fill(x, (size_t)M * C), fill(b, (size_t)R);
    for (size_t i = 0; i < (size_t)R * C; i++) Wb[i] = nn_f32_to_bf16(W[i]);
    nn_mat mf = {W, NN_F32, R, C, NULL}, mb = {Wb, NN_BF16, R, C, NULL};
    for (int m = 0; m < M; m++) {
        nn_ref_gemv_f32(yr + (size_t)m * R, x + (size_t)m * C, W, R, C);
        for (int r = 0; r < R; r++) yr[(size_t)m * R + r] += b[r];
    }
    nn_linear(pool, y, x, M, &mf, b);
    UT_CHECK(t, maxdiff(y, yr, (size_t)M * R) < 1e-4);
    nn_linear(pool, y, x, 1, &mf, b);
    UT_CHECK(t, maxdiff(y, yr, (size_t)R) < 1e-4);
    nn_linear(NULL, y, x, 1, &mf, b);
    UT_CHECK(t, maxdiff(y, yr, (size_t)R) < 1e-4);
    /* bf16: compare with the reference on the same rounded weights */
    for (int m = 0; m < M; m++) {
        nn_ref_gemv_bf16(yr + (size_t)m * R, x + (size_t)m * C, Wb, R, C);
        for (int r = 0; r < R; r++) yr[(size_t)m * R + r] += b[r];
    }
    nn_linear(pool, y, x, M, &mb, b);
    UT_CHECK(t, maxdiff(y, yr, (size_t)M * R) < 1e-4);
    nn_linear(pool, y, x, 1, &mb, b);
    UT_CHECK(t, maxdiff(y, yr, (size_t)R) < 1e-4);
    free(W), free(x), free(b), free(y), free(yr), free(Wb);
    nn_pool_free(pool);
}

static void t_norms(ut_ctx *t)
{
    float x[6] = {1, 2, 3, 4, 5, 6}, y[6], w[3] = {1, 2, 3}, b[3] = {0, 1, -1};
    nn_layernorm(y, x, 2, 3, w, b, 0.0f); /* row 1: mean 2, var 2/3 */
    double inv = 1 / sqrt(2.0 / 3.0);
    UT_NEAR(t, -inv * 1 + 0, y[0], 1e-6);
    UT_NEAR(t, 0 * 2 + 1, y[1], 1e-6);
    UT_NEAR(t, inv * 3 - 1, y[2], 1e-6);
    UT_NEAR(t, -inv, y[3], 1e-6); /* row 2 same shape */
    nn_layernorm(y, x, 1, 3, NULL, NULL, 1e-6f);
    UT_NEAR(t, inv, y[2], 1e-5);
    /* unbiased-variance "RMSNorm": var([1,2,3]) = 1 → y = x * alpha / sqrt(1 + eps) */
    float a[3] = {1, 1, 2};
    nn_rmsnorm_var(y, x, 1, 3, a, 1e-5f);
    UT_NEAR(t, 1 / sqrt(1 + 1e-5), y[0], 1e-6);
    UT_NEAR(t, 6 / sqrt(1 + 1e-5), y[2], 1e-5);
    float g[4] = {-1, 0, 1, 2};
    nn_gelu_erf(g, 4);
    UT_NEAR(t, -0.158655254, g[0], 1e-6);
    UT_NEAR(t, 0, g[1], 0);
    UT_NEAR(t, 0.841344746, g[2], 1e-6);
    float s[2] = {0, 1};
    nn_silu(s, 2);
    UT_NEAR(t, 0.731058579, s[1], 1e-6);
    float e[2] = {-1, 2};
    nn_elu(e, 2);
    UT_NEAR(t, exp(-1) - 1, e[0], 1e-6);
    UT_NEAR(t, 2, e[1], 0);
}

static void t_rope(ut_ctx *t)
{
    /* one head, hd 4, position 3: pair i rotates by 3 * 10000^(-2i/4) */
    float x[4] = {1, 0, 0, 1};
    nn_rope(x, 1, 1, 4, 3, 10000.0f);
    UT_NEAR(t, cos(3.0), x[0], 1e-6);
    UT_NEAR(t, sin(3.0), x[1], 1e-6);
    UT_NEAR(t, -sin(0.03), x[2], 1e-6);
    UT_NEAR(t, cos(0.03), x[3], 1e-6);
    /* rows advance the position: row 1 of a 2-row call equals a 1-row call at pos0 + 1 */
    float a[8], b2[4];
    fill(a, 8);
    memcpy(b2, a + 4, sizeof b2);
    nn_rope(a, 2, 1, 4, 5, 10000.0f);
    nn_rope(b2, 1, 1, 4, 6, 10000.0f);
    UT_CHECK(t, maxdiff(a + 4, b2, 4) == 0);
}

/* naive attention over explicit key/value lists */
static void naive_attn(float *o, const float *q, const float *K, const float *V, int n, int hd)
{
    double sc[512], mx = -1e300, sum = 0;
    for (int j = 0; j < n; j++) {
        double d = 0;
        for (int i = 0; i < hd; i++) d += (double)q[i] * K[(size_t)j * hd + i];
        sc[j] = d / sqrt((double)hd);
        if (sc[j] > mx) mx = sc[j];
    }
    for (int j = 0; j < n; j++) sum += (sc[j] = exp(sc[j] - mx));
    for (int i = 0; i < hd; i++) {
        double a = 0;
        for (int j = 0; j < n; j++) a += sc[j] / sum * V[(size_t)j * hd + i];
        o[i] = (float)a;
    }
}

static void check_attn(ut_ctx *t, int context, int cap, int total, int chunk)
{
    char err[128];
    nn_kv kv;
    int H = 2, hd = 8, row = H * hd;
    UT_EQ_INT(t, 0, nn_kv_init(&kv, cap, H, hd, context, err, sizeof err));
    float *Q = malloc((size_t)total * row * 4), *K = malloc((size_t)total * row * 4), *V = malloc((size_t)total * row * 4);
    float *O = malloc((size_t)total * row * 4), *scr = malloc((size_t)cap * 4);
    fill(Q, (size_t)total * row), fill(K, (size_t)total * row), fill(V, (size_t)total * row);
    for (int p = 0; p < total; p += chunk) {
        int L = total - p < chunk ? total - p : chunk;
        UT_EQ_INT(t, 0, nn_attend(&kv, O + (size_t)p * row, Q + (size_t)p * row, K + (size_t)p * row, V + (size_t)p * row, L, scr));
    }
    UT_EQ_INT(t, total, kv.len);
    float Kh[512 * 8], Vh[512 * 8], o[8];
    for (int p = 0; p < total; p++)
        for (int h = 0; h < H; h++) {
            int lo = context ? p - context + 1 : 0;
            if (lo < 0) lo = 0;
            int n = p - lo + 1;
            for (int j = 0; j < n; j++) {
                memcpy(Kh + j * hd, K + (size_t)(lo + j) * row + h * hd, (size_t)hd * 4);
                memcpy(Vh + j * hd, V + (size_t)(lo + j) * row + h * hd, (size_t)hd * 4);
            }
            naive_attn(o, Q + (size_t)p * row + h * hd, Kh, Vh, n, hd);
            double dd = maxdiff(o, O + (size_t)p * row + h * hd, (size_t)hd);
            if (dd > 1e-5) ut_fail(t, __FILE__, __LINE__, "ctx %d cap %d chunk %d: pos %d head %d differs by %g", context, cap, chunk, p, h, dd);
        }
    free(Q), free(K), free(V), free(O), free(scr);
    nn_kv_free(&kv);
}

static void t_attention(ut_ctx *t)
{
    check_attn(t, 0, 40, 40, 1);   /* unlimited, one at a time */
    check_attn(t, 0, 40, 37, 16);  /* unlimited, chunks */
    check_attn(t, 10, 25, 60, 16); /* context window in a ring buffer that wraps */
    check_attn(t, 10, 10, 30, 1);  /* ring exactly the context */
    /* refusals: cache full, ring too small for the chunk */
    char err[128];
    nn_kv kv;
    float q[16 * 20] = {0}, o[16 * 20], scr[64];
    UT_EQ_INT(t, 0, nn_kv_init(&kv, 4, 2, 8, 0, err, sizeof err));
    UT_EQ_INT(t, ERR_TOOBIG, nn_attend(&kv, o, q, q, q, 5, scr));
    nn_kv_free(&kv);
    UT_EQ_INT(t, 0, nn_kv_init(&kv, 10, 2, 8, 10, err, sizeof err));
    UT_EQ_INT(t, ERR_TOOBIG, nn_attend(&kv, o, q, q, q, 2, scr));
    nn_kv_free(&kv);
    UT_EQ_INT(t, ERR_INVAL, nn_kv_init(&kv, 0, 2, 8, 0, err, sizeof err));
}

static void t_time_embed(ut_ctx *t)
{
    float f[3] = {1, 0.5f, 0.25f}, o[6];
    nn_time_embed(o, 2.0f, f, 3);
    UT_NEAR(t, cos(2.0), o[0], 1e-6);
    UT_NEAR(t, cos(0.5), o[2], 1e-6);
    UT_NEAR(t, sin(1.0), o[4], 1e-6);
}

typedef struct cnt {
    int hits[8];
    int n;
} cnt;
static void task(void *arg, int part, int nparts)
{
    cnt *c = arg;
    c->hits[part]++;
    c->n = nparts;
}

static void t_pool(ut_ctx *t)
{
    char err[128];
    nn_pool *p = NULL;
    UT_EQ_INT(t, 0, nn_pool_new(&p, 3, err, sizeof err));
    UT_EQ_INT(t, 3, nn_pool_threads(p));
    cnt c = {{0}, 0};
    for (int i = 0; i < 100; i++) nn_pool_run(p, task, &c);
    UT_EQ_INT(t, 3, c.n);
    for (int i = 0; i < 3; i++) UT_EQ_INT(t, 100, c.hits[i]);
    nn_pool_free(p);
    nn_pool_free(NULL);
    cnt d = {{0}, 0};
    nn_pool_run(NULL, task, &d);
    UT_EQ_INT(t, 1, d.n);
    UT_EQ_INT(t, ERR_INVAL, nn_pool_new(&p, 0, err, sizeof err));
}

static void t_mat_from_st(ut_ctx *t)
{
    /* F16 tensor → converted F32; F32 → borrowed view; F32 → BF16 on request */
    unsigned char buf[256];
    const char *h = "{\"a\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[8,16]}}";
    size_t hl = strlen(h), pad = (8 - (8 + hl) % 8) % 8;
    uint64_t L = hl + pad;
    memcpy(buf, &L, 8);
    memcpy(buf + 8, h, hl);
    memset(buf + 8 + hl, ' ', pad);
    uint16_t hv[4] = {0x3c00, 0x4000, 0xbc00, 0x0000};
    float fv[2] = {0.5f, -3.0f};
    memcpy(buf + 8 + L, hv, 8);
    memcpy(buf + 8 + L + 8, fv, 8);
    char err[256];
    st_file *f = NULL;
    if (st_open_mem(&f, buf, 8 + L + 16, err, sizeof err)) ut_fail(t, __FILE__, __LINE__, "%s", err);
    nn_mat m;
    UT_EQ_INT(t, 0, nn_mat_from_st(&m, st_find(f, "a"), 2, 2, NN_F32, err, sizeof err));
    UT_CHECK(t, m.owned != NULL && m.dtype == NN_F32);
    UT_NEAR(t, 2.0, ((const float *)m.w)[1], 0);
    nn_mat_free(&m);
    UT_EQ_INT(t, 0, nn_mat_from_st(&m, st_find(f, "b"), 1, 2, NN_F32, err, sizeof err));
    UT_CHECK(t, m.owned == NULL && m.w == st_find(f, "b")->data);
    nn_mat_free(&m);
    UT_EQ_INT(t, 0, nn_mat_from_st(&m, st_find(f, "b"), 1, 2, NN_BF16, err, sizeof err));
    UT_EQ_INT(t, 0xc040, ((const uint16_t *)m.w)[1]);
    nn_mat_free(&m);
    UT_EQ_INT(t, ERR_FORMAT, nn_mat_from_st(&m, st_find(f, "b"), 2, 2, NN_F32, err, sizeof err));
    UT_CHECK(t, strstr(err, "'b'") != NULL);
    st_close(f);
}

static const ut_case cases[] = {
    {"gemv_f32", t_gemv_f32}, {"gemv_bf16", t_gemv_bf16}, {"bf16_round", t_bf16_round}, {"dot_axpy", t_dot_axpy}, {"gelu", t_gelu}, {"dot4n_axpy4n", t_dot4n_axpy4n}, {"linear", t_linear},
    {"norms", t_norms},       {"rope", t_rope},           {"attention", t_attention},   {"time_embed", t_time_embed},
    {"pool", t_pool},         {"mat_from_st", t_mat_from_st},
};
UT_SUITE(nn, cases)
