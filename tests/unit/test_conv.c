/* test_conv.c — streaming Conv1d / ConvTranspose1d: hand-computed cases on the
 * channel-major references, "streamed in pieces == one call over the whole input" for the
 * references and (bit for bit) the time-major fast path, fast path vs reference, and the
 * conv_gemm / softmax / dot / ELU kernels against their plain C versions. */
#include <stdint.h>

#include "ut.h"
#include "nn/conv.h"
#include "nn/nn.h"

static float rnd(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static float *rvec(unsigned *s, size_t n)
{
    float *v = malloc(n * sizeof(float) + 4);
    for (size_t i = 0; i < n; i++) v[i] = rnd(s);
    return v;
}

static double maxdiff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m) m = d;
    }
    return m;
}

/* k3 causal conv on 1 channel, weights [1,2,3]: y[t] = 1*x[t-2] + 2*x[t-1] + 3*x[t] + b. */
static void t_conv_hand(ut_ctx *t)
{
    float w[3] = {1, 2, 3}, b[1] = {0.5f};
    conv1d c = {.cin = 1, .cout = 1, .k = 3, .stride = 1, .dil = 1, .groups = 1, .w = w, .b = b};
    float x[4] = {1, 0, 0, 2}, y[4], prev[2] = {0, 0}, work[64];
    int first = 1;
    UT_EQ_INT(t, 2, conv1d_hist(&c));
    conv1d_run_ref(&c, x, 4, prev, &first, y, work);
    float exp[4] = {3.5f, 2.5f, 1.5f, 6.5f};
    for (int i = 0; i < 4; i++) UT_NEAR(t, exp[i], y[i], 1e-6);
    UT_NEAR(t, 0.0f, prev[0], 0);
    UT_NEAR(t, 2.0f, prev[1], 0);
    /* next call sees the history: y[0] = 1*0 + 2*2 + 3*1 + 0.5 */
    float x2[1] = {1};
    conv1d_run_ref(&c, x2, 1, prev, &first, y, work);
    UT_NEAR(t, 7.5f, y[0], 1e-6);
}

/* replicate padding: k4 stride 2 keeps 2 columns, filled with x[0] on the first call. */
static void t_conv_replicate(ut_ctx *t)
{
    float w[4] = {1, 1, 1, 1};
    conv1d c = {.cin = 1, .cout = 1, .k = 4, .stride = 2, .dil = 1, .groups = 1,
                .pad_replicate = 1, .w = w, .b = NULL};
    float x[4] = {5, 1, 2, 3}, y[2], prev[2] = {0, 0}, work[64];
    int first = 1;
    conv1d_run_ref(&c, x, 4, prev, &first, y, work);
    UT_NEAR(t, 16.0f, y[0], 1e-6); /* 5 5 5 1 */
    UT_NEAR(t, 11.0f, y[1], 1e-6); /* 5 1 2 3 */
    UT_EQ_INT(t, 0, first);
}

/* transposed conv k4 s2 with bias: bias added once per output even across calls. */
static void t_convtr_hand(ut_ctx *t)
{
    float w[4] = {1, 2, 3, 4}, b[1] = {10};
    convtr1d c = {.cin = 1, .cout = 1, .k = 4, .stride = 2, .groups = 1, .w = w, .b = b};
    float part[2] = {0, 0}, y[2], work[64];
    float x1[1] = {1}, x2[1] = {2};
    convtr1d_run_ref(&c, x1, 1, part, y, work);
    UT_NEAR(t, 11.0f, y[0], 1e-6);
    UT_NEAR(t, 12.0f, y[1], 1e-6);
    UT_NEAR(t, 3.0f, part[0], 1e-6);
    UT_NEAR(t, 4.0f, part[1], 1e-6);
    convtr1d_run_ref(&c, x2, 1, part, y, work);
    UT_NEAR(t, 10.0f + 2.0f + 3.0f, y[0], 1e-6);
    UT_NEAR(t, 10.0f + 4.0f + 4.0f, y[1], 1e-6);
}

typedef struct ccase { int cin, cout, k, stride, dil, groups, T, piece; } ccase;

static void run_conv_case(ut_ctx *t, const ccase *cc, int rep)
{
    unsigned s = 1234u + (unsigned)(cc->k * 31 + cc->stride * 7 + cc->cin);
    size_t wn = (size_t)cc->cout * (cc->cin / cc->groups) * cc->k;
    float *w = rvec(&s, wn), *b = rvec(&s, (size_t)cc->cout);
    conv1d c = {.cin = cc->cin, .cout = cc->cout, .k = cc->k, .stride = cc->stride,
                .dil = cc->dil, .groups = cc->groups, .pad_replicate = rep, .w = w, .b = b};
    int P = conv1d_hist(&c), tout = cc->T / cc->stride;
    float *x = rvec(&s, (size_t)cc->cin * cc->T);
    float *ya = calloc((size_t)cc->cout * tout, sizeof(float));
    float *yb = calloc((size_t)cc->cout * tout, sizeof(float));
    float *pa = calloc((size_t)cc->cin * P + 1, sizeof(float));
    float *pb = calloc((size_t)cc->cin * P + 1, sizeof(float));
    float *work = malloc(conv1d_work(&c, cc->T) * sizeof(float));
    int fa = 1, fb = 1;
    conv1d_run_ref(&c, x, cc->T, pa, &fa, ya, work);
    /* streamed in pieces with the fast path */
    int tp = cc->piece / cc->stride;
    float *xin = malloc((size_t)cc->cin * cc->piece * sizeof(float));
    float *yp = malloc((size_t)cc->cout * tp * sizeof(float));
    for (int p0 = 0; p0 < cc->T; p0 += cc->piece) {
        for (int ci = 0; ci < cc->cin; ci++)
            memcpy(xin + (size_t)ci * cc->piece, x + (size_t)ci * cc->T + p0,
                   (size_t)cc->piece * sizeof(float));
        conv1d_run_ref(&c, xin, cc->piece, pb, &fb, yp, work);
        for (int o = 0; o < cc->cout; o++)
            memcpy(yb + (size_t)o * tout + p0 / cc->stride, yp + (size_t)o * tp,
                   (size_t)tp * sizeof(float));
    }
    double d = maxdiff(ya, yb, (size_t)cc->cout * tout);
    if (d > 1e-5)
        ut_fail(t, __FILE__, __LINE__, "conv cin%d cout%d k%d s%d d%d g%d rep%d: max diff %g > 1e-5",
                cc->cin, cc->cout, cc->k, cc->stride, cc->dil, cc->groups, rep, d);
    UT_CHECK(t, maxdiff(pa, pb, (size_t)cc->cin * P) == 0.0);
    free(w); free(b); free(x); free(ya); free(yb); free(pa); free(pb); free(work); free(xin);
    free(yp);
}

static void t_conv_fast_vs_ref_stream(ut_ctx *t)
{
    static const ccase cases[] = {
        {3, 5, 7, 1, 1, 1, 48, 16}, {4, 6, 8, 4, 1, 1, 64, 16}, {5, 4, 12, 6, 1, 1, 72, 12},
        {6, 3, 3, 1, 2, 1, 40, 8},  {8, 8, 1, 1, 1, 1, 20, 4},  {6, 6, 32, 16, 1, 1, 64, 16},
        {6, 6, 3, 1, 1, 3, 30, 10}, {4, 4, 5, 1, 1, 4, 20, 5},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run_conv_case(t, &cases[i], 0);
        run_conv_case(t, &cases[i], 1);
    }
}

typedef struct tcase { int cin, cout, k, stride, groups, T, piece; } tcase;

static void t_convtr_fast_vs_ref_stream(ut_ctx *t)
{
    static const tcase cases[] = {
        {5, 3, 12, 6, 1, 8, 2}, {4, 2, 10, 5, 1, 6, 1}, {3, 7, 8, 4, 1, 10, 5},
        {6, 6, 32, 16, 6, 4, 1}, {4, 8, 4, 2, 2, 6, 3},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const tcase *cc = &cases[i];
        unsigned s = 99u + (unsigned)i;
        size_t wn = (size_t)cc->cin * (cc->cout / cc->groups) * cc->k;
        float *w = rvec(&s, wn), *b = rvec(&s, (size_t)cc->cout);
        convtr1d c = {.cin = cc->cin, .cout = cc->cout, .k = cc->k, .stride = cc->stride,
                      .groups = cc->groups, .w = w, .b = b};
        int P = convtr1d_hist(&c), n = cc->T * cc->stride, np = cc->piece * cc->stride;
        float *x = rvec(&s, (size_t)cc->cin * cc->T);
        float *ya = calloc((size_t)cc->cout * n, sizeof(float));
        float *yb = calloc((size_t)cc->cout * n, sizeof(float));
        float *pa = calloc((size_t)cc->cout * P + 1, sizeof(float));
        float *pb = calloc((size_t)cc->cout * P + 1, sizeof(float));
        float *work = malloc(convtr1d_work(&c, cc->T) * sizeof(float));
        float *xin = malloc((size_t)cc->cin * cc->piece * sizeof(float));
        float *yp = malloc((size_t)cc->cout * np * sizeof(float));
        convtr1d_run_ref(&c, x, cc->T, pa, ya, work);
        for (int p0 = 0; p0 < cc->T; p0 += cc->piece) {
            for (int ci = 0; ci < cc->cin; ci++)
                memcpy(xin + (size_t)ci * cc->piece, x + (size_t)ci * cc->T + p0,
                       (size_t)cc->piece * sizeof(float));
            convtr1d_run_ref(&c, xin, cc->piece, pb, yp, work);
            for (int o = 0; o < cc->cout; o++)
                memcpy(yb + (size_t)o * n + p0 * cc->stride, yp + (size_t)o * np,
                       (size_t)np * sizeof(float));
        }
        double d = maxdiff(ya, yb, (size_t)cc->cout * n), dp = maxdiff(pa, pb, (size_t)cc->cout * P);
        if (d > 1e-5 || dp > 1e-5)
            ut_fail(t, __FILE__, __LINE__, "convtr case %zu: max diff out %g tail %g > 1e-5", i, d, dp);
        free(w); free(b); free(x); free(ya); free(yb); free(pa); free(pb); free(work); free(xin);
        free(yp);
    }
}


/* ---- time-major path (conv_gemm, conv1d_tm_run, convtr1d_tm_run) ---- */

static float *tposed(const float *x, int rows, int cols) /* [rows, cols] -> [cols, rows] */
{
    float *y = malloc((size_t)rows * cols * sizeof(float) + 4);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) y[(size_t)c * rows + r] = x[(size_t)r * cols + c];
    return y;
}

static int bits_equal(const float *a, const float *b, size_t n, size_t *at)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float))) {
            *at = i;
            return 0;
        }
    return 1;
}

/* dispatched GEMM == plain C reference bit for bit (awkward shapes, bias, add, overlapping
 * rows), and every row equals the same row computed alone (M invariance). */
static void t_gemm_vs_ref_invariant(ut_ctx *t)
{
    static const int shapes[][4] = {/* M, rows, cols, ldx (0: cols) */
                                    {1, 1, 1, 0},   {3, 17, 5, 0},   {8, 48, 32, 0},  {16, 50, 21, 7},
                                    {37, 33, 64, 0}, {13, 96, 40, 8}, {70, 16, 3, 1}, {25, 130, 9, 0}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        int M = shapes[i][0], rows = shapes[i][1], cols = shapes[i][2];
        size_t ldx = shapes[i][3] ? (size_t)shapes[i][3] : (size_t)cols;
        unsigned s = 7u + (unsigned)i;
        float *W = rvec(&s, (size_t)rows * cols), *b = rvec(&s, (size_t)rows);
        float *x = rvec(&s, (M - 1) * ldx + cols);
        float *wp = aligned_alloc(64, conv_pack_floats(rows, cols) * sizeof(float));
        /* pack W [rows, cols] the way conv.h describes (a 1x1 conv of cin = cols) */
        conv1d c = {.cin = cols, .cout = rows, .k = 1, .stride = 1, .dil = 1, .groups = 1, .w = W};
        conv1d_tm_pack(&c, wp);
        size_t ny = (size_t)M * (rows + 3);
        float *ya = rvec(&s, ny), *yb = malloc(ny * sizeof(float)), *y1 = malloc(ny * sizeof(float));
        memcpy(yb, ya, ny * sizeof(float));
        memcpy(y1, ya, ny * sizeof(float));
        for (int add = 0; add < 2; add++) {
            const float *bias = add ? NULL : b;
            conv_gemm_ref(ya, rows + 3, x, ldx, M, wp, rows, cols, bias, add);
            conv_gemm(yb, rows + 3, x, ldx, M, wp, rows, cols, bias, add);
            for (int m = 0; m < M; m++) /* one row per call */
                conv_gemm(y1 + (size_t)m * (rows + 3), rows + 3, x + m * ldx, ldx, 1, wp, rows, cols, bias, add);
            size_t at = 0;
            if (!bits_equal(ya, yb, ny, &at))
                ut_fail(t, __FILE__, __LINE__, "gemm M%d rows%d cols%d add%d: y[%zu] expected %.9g (ref), got %.9g",
                        M, rows, cols, add, at, ya[at], yb[at]);
            if (!bits_equal(ya, y1, ny, &at))
                ut_fail(t, __FILE__, __LINE__, "gemm M%d rows%d cols%d add%d: row-by-row y[%zu] expected %.9g, got %.9g",
                        M, rows, cols, add, at, ya[at], y1[at]);
        }
        /* CONV_GEMM_CONT: the columns split in two calls continue the same sums exactly */
        int c1 = cols / 3;
        conv_gemm_ref(ya, rows + 3, x, ldx, M, wp, rows, cols, NULL, CONV_GEMM_STORE);
        size_t pst = (size_t)cols * CONV_PANEL;
        conv_gemm_ps(yb, rows + 3, x, ldx, M, wp, pst, rows, c1, NULL, CONV_GEMM_STORE);
        conv_gemm_ps(yb, rows + 3, x + c1, ldx, M, wp + (size_t)c1 * CONV_PANEL, pst, rows, cols - c1, NULL,
                     CONV_GEMM_CONT);
        for (int m = 0; m < M; m++) {
            size_t at = 0;
            if (!bits_equal(ya + (size_t)m * (rows + 3), yb + (size_t)m * (rows + 3), (size_t)rows, &at))
                ut_fail(t, __FILE__, __LINE__, "gemm CONT M%d rows%d cols%d split %d: y[%d][%zu] expected %.9g, got %.9g",
                        M, rows, cols, c1, m, at, ya[(size_t)m * (rows + 3) + at], yb[(size_t)m * (rows + 3) + at]);
        }
        /* BF16 panels: equal to the F32 kernel on the widened weights, and to their reference */
        uint16_t *wh = malloc(conv_pack_floats(rows, cols) * sizeof(uint16_t));
        float *ww = malloc(conv_pack_floats(rows, cols) * sizeof(float));
        conv_pack_bf16(wh, wp, conv_pack_floats(rows, cols));
        for (size_t j = 0; j < conv_pack_floats(rows, cols); j++) {
            union { uint32_t u; float f; } cv = {.u = (uint32_t)wh[j] << 16};
            ww[j] = cv.f;
        }
        conv_gemm_ref(ya, rows + 3, x, ldx, M, ww, rows, cols, b, CONV_GEMM_STORE);
        conv_gemm_ps_bf16(yb, rows + 3, x, ldx, M, wh, pst, rows, cols, b, CONV_GEMM_STORE);
        conv_gemm_ps_bf16_ref(y1, rows + 3, x, ldx, M, wh, pst, rows, cols, b, CONV_GEMM_STORE);
        for (int m = 0; m < M; m++) {
            size_t at = 0, o = (size_t)m * (rows + 3);
            if (!bits_equal(ya + o, yb + o, (size_t)rows, &at) || !bits_equal(ya + o, y1 + o, (size_t)rows, &at))
                ut_fail(t, __FILE__, __LINE__, "gemm bf16 M%d rows%d cols%d: y[%d][%zu] expected %.9g, got %.9g / %.9g",
                        M, rows, cols, m, at, ya[o + at], yb[o + at], y1[o + at]);
        }
#if defined(__x86_64__) || defined(__i386__)
        /* the AVX2 kernels (what a CPU without AVX-512 runs): same bits as the references */
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
            for (int mode = 0; mode < 3; mode++) {
                const float *bias = mode == CONV_GEMM_STORE ? b : NULL;
                for (size_t j = 0; j < ny; j++) ya[j] = yb[j] = y1[j] = (float)(j % 7) - 3.0f;
                conv_gemm_ps_ref(ya, rows + 3, x, ldx, M, wp, pst, rows, cols, bias, mode);
                conv_gemm_ps_avx2(yb, rows + 3, x, ldx, M, wp, pst, rows, cols, bias, mode);
                size_t at = 0;
                if (!bits_equal(ya, yb, ny, &at))
                    ut_fail(t, __FILE__, __LINE__, "avx2 gemm M%d rows%d cols%d mode%d: y[%zu] expected %.9g, got %.9g",
                            M, rows, cols, mode, at, ya[at], yb[at]);
                for (size_t j = 0; j < ny; j++) ya[j] = (float)(j % 7) - 3.0f;
                conv_gemm_ps_bf16_ref(ya, rows + 3, x, ldx, M, wh, pst, rows, cols, bias, mode);
                conv_gemm_ps_bf16_avx2(y1, rows + 3, x, ldx, M, wh, pst, rows, cols, bias, mode);
                if (!bits_equal(ya, y1, ny, &at))
                    ut_fail(t, __FILE__, __LINE__, "avx2 bf16 gemm M%d rows%d cols%d mode%d: y[%zu] expected %.9g, got %.9g",
                            M, rows, cols, mode, at, ya[at], y1[at]);
            }
        }
#endif
        free(wh); free(ww);
        free(W); free(b); free(x); free(wp); free(ya); free(yb); free(y1);
    }
}

/* conv1d_tm_run (time-major, packed) == channel-major reference within float rounding;
 * streamed in pieces == one call bit for bit (outputs and history). */
static void run_conv_tm_case(ut_ctx *t, const ccase *cc, int rep, int elu)
{
    unsigned s = 555u + (unsigned)(cc->k * 31 + cc->stride * 7 + cc->cin);
    size_t wn = (size_t)cc->cout * cc->cin * cc->k;
    float *w = rvec(&s, wn), *b = rvec(&s, (size_t)cc->cout);
    conv1d c = {.cin = cc->cin, .cout = cc->cout, .k = cc->k, .stride = cc->stride,
                .dil = cc->dil, .groups = 1, .pad_replicate = rep, .w = w, .b = b};
    int P = conv1d_hist(&c), tout = cc->T / cc->stride, T = cc->T;
    float *x = rvec(&s, (size_t)cc->cin * T); /* [cin, T] */
    float *xe = malloc((size_t)cc->cin * T * sizeof(float));
    if (elu) conv_elu_to(xe, x, (size_t)cc->cin * T);
    else memcpy(xe, x, (size_t)cc->cin * T * sizeof(float));
    float *yr = malloc((size_t)cc->cout * tout * sizeof(float));
    float *pr = calloc((size_t)cc->cin * P + 1, sizeof(float));
    float *work = malloc((conv1d_work(&c, T) + conv1d_tm_work(&c, T)) * sizeof(float));
    int fr = 1;
    conv1d_run_ref(&c, xe, T, pr, &fr, yr, work); /* [cout, tout] */
    float *xt = tposed(x, cc->cin, T);            /* [T, cin] */
    float *wp = aligned_alloc(64, conv1d_tm_pack_floats(&c) * sizeof(float));
    conv1d_tm_pack(&c, wp);
    int flags = elu ? CONV_IN_ELU : 0;
    float *y1 = calloc((size_t)cc->cout * tout, sizeof(float)), *y2 = calloc((size_t)cc->cout * tout, sizeof(float));
    float *p1 = calloc((size_t)cc->cin * P + 1, sizeof(float)), *p2 = calloc((size_t)cc->cin * P + 1, sizeof(float));
    int f1 = 1, f2 = 1;
    conv1d_tm_run(&c, wp, xt, T, p1, &f1, y1, work, flags, NULL);
    for (int p0 = 0; p0 < T; p0 += cc->piece)
        conv1d_tm_run(&c, wp, xt + (size_t)p0 * cc->cin, cc->piece, p2, &f2, y2 + (size_t)(p0 / cc->stride) * cc->cout,
                      work, flags, NULL);
    float *yt = tposed(y1, tout, cc->cout); /* back to [cout, tout] */
    double d = maxdiff(yr, yt, (size_t)cc->cout * tout);
    if (d > 1e-5)
        ut_fail(t, __FILE__, __LINE__, "conv_tm cin%d cout%d k%d s%d d%d rep%d elu%d: max diff vs ref %g > 1e-5",
                cc->cin, cc->cout, cc->k, cc->stride, cc->dil, rep, elu, d);
    size_t at = 0;
    if (!bits_equal(y1, y2, (size_t)cc->cout * tout, &at))
        ut_fail(t, __FILE__, __LINE__, "conv_tm k%d s%d: streamed y[%zu] expected %.9g (one call), got %.9g", cc->k,
                cc->stride, at, y1[at], y2[at]);
    UT_CHECK(t, bits_equal(p1, p2, (size_t)cc->cin * P, &at));
    float *pt = tposed(p1, P, cc->cin);
    UT_CHECK(t, maxdiff(pt, pr, (size_t)cc->cin * P) == 0.0); /* same history as the reference */
    free(w); free(b); free(x); free(xe); free(yr); free(pr); free(work); free(xt); free(wp); free(y1);
    free(y2); free(p1); free(p2); free(yt); free(pt);
}

static void t_conv_tm(ut_ctx *t)
{
    static const ccase cases[] = {
        {3, 5, 7, 1, 1, 1, 48, 16}, {4, 6, 8, 4, 1, 1, 64, 16}, {5, 4, 12, 6, 1, 1, 72, 12},
        {6, 3, 3, 1, 2, 1, 40, 8},  {8, 8, 1, 1, 1, 1, 20, 4},  {20, 40, 7, 1, 1, 1, 32, 16},
        {33, 17, 3, 1, 1, 1, 96, 32},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        for (int v = 0; v < 4; v++) run_conv_tm_case(t, &cases[i], v & 1, v >> 1);
}

/* CONV_OUT_ADD adds the conv into y (residual) */
static void t_conv_tm_add(ut_ctx *t)
{
    float w[2] = {1, 2}, b[1] = {0.5f}, wp[2 * CONV_PANEL], prev[1] = {0}, work[64];
    conv1d c = {.cin = 1, .cout = 1, .k = 2, .stride = 1, .dil = 1, .groups = 1, .w = w, .b = b};
    UT_EQ_INT(t, 2 * CONV_PANEL, (long long)conv1d_tm_pack_floats(&c));
    conv1d_tm_pack(&c, wp);
    float x[3] = {1, 2, 3}, y[3] = {10, 20, 30};
    int first = 1;
    conv1d_tm_run(&c, wp, x, 3, prev, &first, y, work, CONV_OUT_ADD, NULL);
    UT_NEAR(t, 10 + 0.5 + 2, y[0], 0); /* 1*0 + 2*1 */
    UT_NEAR(t, 20 + 0.5 + 1 + 4, y[1], 0);
    UT_NEAR(t, 30 + 0.5 + 2 + 6, y[2], 0);
    UT_NEAR(t, 3.0, prev[0], 0);
}

/* convtr1d_tm_run (packed and depthwise) == channel-major reference within rounding;
 * streamed pieces == one call bit for bit; the tail equals the reference's partial. */
static void t_convtr_tm(ut_ctx *t)
{
    static const tcase cases[] = {
        {5, 3, 12, 6, 1, 8, 2}, {4, 2, 10, 5, 1, 6, 1}, {3, 7, 8, 4, 1, 10, 5},
        {6, 6, 32, 16, 6, 4, 1}, {40, 20, 12, 6, 1, 16, 4}, {17, 33, 4, 2, 1, 12, 3},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const tcase *cc = &cases[i];
        unsigned s = 77u + (unsigned)i;
        size_t wn = (size_t)cc->cin * (cc->cout / cc->groups) * cc->k;
        float *w = rvec(&s, wn), *b = rvec(&s, (size_t)cc->cout);
        convtr1d c = {.cin = cc->cin, .cout = cc->cout, .k = cc->k, .stride = cc->stride,
                      .groups = cc->groups, .w = w, .b = cc->groups == 1 ? b : NULL};
        int P = convtr1d_hist(&c), n = cc->T * cc->stride, T = cc->T;
        float *x = rvec(&s, (size_t)cc->cin * T);
        float *yr = malloc((size_t)cc->cout * n * sizeof(float));
        float *pr = calloc((size_t)cc->cout * P + 1, sizeof(float));
        float *work = malloc((convtr1d_work(&c, T) + convtr1d_tm_work(&c, T)) * sizeof(float));
        convtr1d_run_ref(&c, x, T, pr, yr, work);
        float *xt = tposed(x, cc->cin, T);
        size_t npk = convtr1d_tm_pack_floats(&c);
        float *wp = npk ? aligned_alloc(64, npk * sizeof(float)) : NULL;
        if (wp) convtr1d_tm_pack(&c, wp);
        float *y1 = malloc((size_t)cc->cout * n * sizeof(float)), *y2 = malloc((size_t)cc->cout * n * sizeof(float));
        float *p1 = calloc((size_t)cc->cout * P + 1, sizeof(float)), *p2 = calloc((size_t)cc->cout * P + 1, sizeof(float));
        convtr1d_tm_run(&c, wp, xt, T, p1, y1, work, NULL);
        for (int p0 = 0; p0 < T; p0 += cc->piece)
            convtr1d_tm_run(&c, wp, xt + (size_t)p0 * cc->cin, cc->piece, p2, y2 + (size_t)p0 * cc->stride * cc->cout,
                            work, NULL);
        float *yt = tposed(y1, n, cc->cout), *pt = tposed(p1, P, cc->cout);
        double d = maxdiff(yr, yt, (size_t)cc->cout * n), dp = maxdiff(pr, pt, (size_t)cc->cout * P);
        if (d > 1e-5 || dp > 1e-5)
            ut_fail(t, __FILE__, __LINE__, "convtr_tm case %zu: max diff vs ref out %g tail %g > 1e-5", i, d, dp);
        size_t at = 0;
        if (!bits_equal(y1, y2, (size_t)cc->cout * n, &at))
            ut_fail(t, __FILE__, __LINE__, "convtr_tm case %zu: streamed y[%zu] expected %.9g (one call), got %.9g", i,
                    at, y1[at], y2[at]);
        UT_CHECK(t, bits_equal(p1, p2, (size_t)cc->cout * P, &at));
        free(w); free(b); free(x); free(yr); free(pr); free(work); free(xt); free(wp); free(y1); free(y2);
        free(p1); free(p2); free(yt); free(pt);
    }
}

/* conv_softmax: dispatched == plain C reference bit for bit, within 1e-6 of a double
 * softmax, position-independent (same row at another address, same bits) */
static void t_softmax(ut_ctx *t)
{
    static const int ns[] = {1, 3, 16, 17, 250, 265};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        int n = ns[k];
        unsigned s = 3u + (unsigned)n;
        float *x = rvec(&s, (size_t)n), *a = malloc((n + 5) * sizeof(float)), *b = malloc(n * sizeof(float));
        for (int i = 0; i < n; i++) x[i] *= 40.0f; /* scores up to +-40: exp spans ~1e-35 */
        memcpy(a + 5, x, n * sizeof(float));
        memcpy(b, x, n * sizeof(float));
        conv_softmax(a + 5, n, 0.125f);
        conv_softmax_ref(b, n, 0.125f);
        size_t at = 0;
        if (!bits_equal(b, a + 5, (size_t)n, &at))
            ut_fail(t, __FILE__, __LINE__, "softmax n%d: [%zu] expected %.9g (ref), got %.9g", n, at, b[at], a[5 + at]);
#if defined(__x86_64__) || defined(__i386__)
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
            memcpy(a + 5, x, n * sizeof(float));
            conv_softmax_avx2(a + 5, n, 0.125f);
            if (!bits_equal(b, a + 5, (size_t)n, &at))
                ut_fail(t, __FILE__, __LINE__, "softmax avx2 n%d: [%zu] expected %.9g (ref), got %.9g", n, at, b[at],
                        a[5 + at]);
        }
#endif
        double mx = -1e300, sum = 0;
        for (int i = 0; i < n; i++) mx = fmax(mx, 0.125 * x[i]);
        for (int i = 0; i < n; i++) sum += exp(0.125 * x[i] - mx);
        for (int i = 0; i < n; i++) {
            double e = exp(0.125 * x[i] - mx) / sum;
            if (fabs(e - b[i]) > 1e-6 + 1e-5 * e)
                ut_fail(t, __FILE__, __LINE__, "softmax n%d [%d]: expected %.9g, got %.9g", n, i, e, b[i]);
        }
        free(x); free(a); free(b);
    }
}

/* conv_dot (the cout == 1 conv): dispatched == reference bits, close to a double dot */
static void t_dot(ut_ctx *t)
{
    static const int cs[] = {1, 7, 16, 33, 192, 1024, 1500};
    for (size_t k = 0; k < sizeof cs / sizeof cs[0]; k++) {
        int cols = cs[k], M = 5;
        size_t ldx = (size_t)cols / 2 + 1;
        unsigned s = 11u + (unsigned)cols;
        float *W = rvec(&s, (size_t)cols), *x = rvec(&s, (M - 1) * ldx + cols);
        float *wp = aligned_alloc(64, conv_pack_floats(1, cols) * sizeof(float));
        conv1d c = {.cin = cols, .cout = 1, .k = 1, .stride = 1, .dil = 1, .groups = 1, .w = W};
        conv1d_tm_pack(&c, wp);
        float a[5], b[5];
        conv_dot(a, x, ldx, M, wp, cols, 0.25f);
        conv_dot_ref(b, x, ldx, M, wp, cols, 0.25f);
        size_t at = 0;
        if (!bits_equal(b, a, 5, &at))
            ut_fail(t, __FILE__, __LINE__, "dot cols%d: y[%zu] expected %.9g (ref), got %.9g", cols, at, b[at], a[at]);
#if defined(__x86_64__) || defined(__i386__)
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cols <= 1024) {
            conv_dot_avx2(a, x, ldx, M, wp, cols, 0.25f);
            if (!bits_equal(b, a, 5, &at))
                ut_fail(t, __FILE__, __LINE__, "dot avx2 cols%d: y[%zu] expected %.9g (ref), got %.9g", cols, at, b[at],
                        a[at]);
        }
#endif
        for (int m = 0; m < M; m++) {
            double e = 0.25;
            for (int i = 0; i < cols; i++) e += (double)x[m * ldx + i] * W[i];
            UT_NEAR(t, e, b[m], 1e-5 * (1 + sqrt((double)cols)));
        }
        free(W); free(x); free(wp);
    }
}

/* a pool of 2 (panels split across threads) gives the bits of the calling thread alone */
static void t_tm_pool(ut_ctx *t)
{
    char err[128];
    nn_pool *pool;
    UT_EQ_INT(t, 0, nn_pool_new(&pool, 2, err, sizeof err));
    unsigned s = 4242u;
    int cin = 64, cout = 72, k = 7, T = 64;
    float *w = rvec(&s, (size_t)cout * cin * k), *b = rvec(&s, (size_t)cout), *x = rvec(&s, (size_t)T * cin);
    conv1d c = {.cin = cin, .cout = cout, .k = k, .stride = 1, .dil = 1, .groups = 1, .w = w, .b = b};
    float *wp = aligned_alloc(64, conv1d_tm_pack_floats(&c) * sizeof(float));
    conv1d_tm_pack(&c, wp);
    float *work = malloc(conv1d_tm_work(&c, T) * sizeof(float));
    float *p1 = calloc((size_t)(k - 1) * cin, sizeof(float)), *p2 = calloc((size_t)(k - 1) * cin, sizeof(float));
    float *y1 = malloc((size_t)T * cout * sizeof(float)), *y2 = malloc((size_t)T * cout * sizeof(float));
    int f1 = 1, f2 = 1;
    conv1d_tm_run(&c, wp, x, T, p1, &f1, y1, work, CONV_IN_ELU, NULL);
    conv1d_tm_run(&c, wp, x, T, p2, &f2, y2, work, CONV_IN_ELU, pool);
    size_t at = 0;
    if (!bits_equal(y1, y2, (size_t)T * cout, &at))
        ut_fail(t, __FILE__, __LINE__, "conv pool: y[%zu] expected %.9g, got %.9g", at, y1[at], y2[at]);
    /* transposed: cin 64 -> cout 40, k 12, stride 6 */
    convtr1d ct = {.cin = cin, .cout = 40, .k = 12, .stride = 6, .groups = 1, .w = w, .b = b};
    float *wt = aligned_alloc(64, convtr1d_tm_pack_floats(&ct) * sizeof(float));
    convtr1d_tm_pack(&ct, wt);
    float *wk = malloc(convtr1d_tm_work(&ct, T) * sizeof(float));
    float *t1 = calloc(6 * 40, sizeof(float)), *t2 = calloc(6 * 40, sizeof(float));
    float *z1 = malloc((size_t)T * 6 * 40 * sizeof(float)), *z2 = malloc((size_t)T * 6 * 40 * sizeof(float));
    convtr1d_tm_run(&ct, wt, x, T, t1, z1, wk, NULL);
    convtr1d_tm_run(&ct, wt, x, T, t2, z2, wk, pool);
    if (!bits_equal(z1, z2, (size_t)T * 6 * 40, &at))
        ut_fail(t, __FILE__, __LINE__, "convtr pool: y[%zu] expected %.9g, got %.9g", at, z1[at], z2[at]);
    UT_CHECK(t, bits_equal(t1, t2, 6 * 40, &at));
    free(w); free(b); free(x); free(wp); free(work); free(p1); free(p2); free(y1); free(y2);
    free(wt); free(wk); free(t1); free(t2); free(z1); free(z2);
    nn_pool_free(pool);
}

static void t_elu(ut_ctx *t)
{
    float x[4] = {-1.0f, 0.0f, 2.5f, -1e-4f};
    conv_elu(x, 4);
    UT_NEAR(t, expm1(-1.0), x[0], 1e-7);
    UT_NEAR(t, 0.0, x[1], 0);
    UT_NEAR(t, 2.5, x[2], 0);
    UT_NEAR(t, expm1(-1e-4), x[3], 2e-11); /* float ulp here ~7e-12 */
}

/* polynomial ELU vs libm over [-90, 5]: relative error within a few float ulps */
static void t_elu_vs_ref(ut_ctx *t)
{
    size_t n = 200001;
    float *x = malloc(n * sizeof(float)), *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = -90.0f + 95.0f * (float)i / (float)(n - 1);
    x[0] = -1e-7f;
    x[1] = -1e-30f;
    x[2] = -0.0f;
    conv_elu_ref(b, x, n);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 0) conv_elu_to(a, x, n); /* dispatched (AVX2 here) */
        else conv_elu_generic(a, x, n);
        double worst = 0;
        size_t wi = 0;
        for (size_t i = 0; i < n; i++) {
            double d = fabs((double)a[i] - b[i]) / fmax(fabs((double)b[i]), 1e-30);
            if (d > worst) worst = d, wi = i;
        }
        if (worst > 5e-7)
            ut_fail(t, __FILE__, __LINE__, "ELU (%s) at x=%.9g: expected %.9g, got %.9g (rel %.3g > 5e-7)",
                    pass ? "generic" : "dispatched", x[wi], b[wi], a[wi], worst);
    }
    free(x);
    free(a);
    free(b);
}

static const ut_case cases[] = {
    {"elu_vs_ref", t_elu_vs_ref},
    {"conv_hand", t_conv_hand},
    {"conv_replicate", t_conv_replicate},
    {"convtr_hand", t_convtr_hand},
    {"conv_ref_stream", t_conv_fast_vs_ref_stream},
    {"convtr_ref_stream", t_convtr_fast_vs_ref_stream},
    {"elu", t_elu},
    {"gemm_vs_ref_invariant", t_gemm_vs_ref_invariant},
    {"conv_tm", t_conv_tm},
    {"conv_tm_add", t_conv_tm_add},
    {"convtr_tm", t_convtr_tm},
    {"softmax", t_softmax},
    {"dot", t_dot},
    {"tm_pool", t_tm_pool},
};
UT_SUITE(conv, cases)
