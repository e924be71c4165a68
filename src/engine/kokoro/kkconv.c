/* kkconv.c — Linear / Conv1d / ConvTranspose1d for the Kokoro port: plain references and
 * OpenBLAS-backed fast paths (see kkconv.h).
 *
 * Conv1d fast path (stride 1): for each tap j the contribution is W_j [cout, cin] times the
 * input shifted by j*dil - pad, a strided view of x (leading dimension T), restricted to the
 * output columns whose input lies inside [0, T) (zero padding = skipping). One sgemm per tap
 * accumulates into y; W_j is repacked per call (cout*cin*k floats, negligible next to the
 * GEMM for long inputs). Strided convs (noise_convs.0) build im2col columns for 256 outputs at
 * a time and run one sgemm per chunk; tiny ones (F0_conv/N_conv) use the reference.
 * ConvTranspose1d fast path: Z_j = W_j^T X ([cout, T], one sgemm per tap) scattered into
 * y[:, t*stride - pad + j]. Summation order differs from the references: results agree to
 * float32 rounding, not bit for bit.
 */
#include "engine/kokoro/kkconv.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

int kk_conv_out(int T, int k, int stride, int pad, int dil) { return (T + 2 * pad - dil * (k - 1) - 1) / stride + 1; }
int kk_convtr_out(int T, int k, int stride, int pad, int opad) { return (T - 1) * stride - 2 * pad + k + opad; }

void kk_linear_ref(float *y, const float *x, int M, int in, int out, const float *W, const float *b)
{
    for (int i = 0; i < M; i++)
        for (int o = 0; o < out; o++) {
            const float *w = W + (size_t)o * in, *xi = x + (size_t)i * in;
            float s = 0;
            for (int k = 0; k < in; k++) s += xi[k] * w[k];
            y[(size_t)i * out + o] = s + (b ? b[o] : 0.f);
        }
}

void kk_linear(float *y, const float *x, int M, int in, int out, const float *W, const float *b)
{
    if ((size_t)M * in * out < 4096) { kk_linear_ref(y, x, M, in, out, W, b); return; }
    for (int i = 0; i < M; i++)
        for (int o = 0; o < out; o++) y[(size_t)i * out + o] = b ? b[o] : 0.f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, out, in, 1.0f, x, in, W, in, 1.0f, y, out);
}

/* valid output columns [t0, t1] of tap offset `off` (input index t*stride + off in [0, T)) */
static void tap_range(int T, int To, int stride, int off, int *t0, int *t1)
{
    *t0 = off < 0 ? (-off + stride - 1) / stride : 0;
    *t1 = (T - 1 - off) < 0 ? -1 : (T - 1 - off) / stride;
    if (*t1 > To - 1) *t1 = To - 1;
}

void kk_conv1d_ref(float *y, const float *x, int cin, int T, const float *w, const float *b, int cout, int k,
                   int stride, int pad, int dil)
{
    int To = kk_conv_out(T, k, stride, pad, dil);
    for (int co = 0; co < cout; co++) {
        float *yr = y + (size_t)co * To;
        for (int t = 0; t < To; t++) yr[t] = b ? b[co] : 0.f;
        for (int ci = 0; ci < cin; ci++) {
            const float *xr = x + (size_t)ci * T;
            for (int kk = 0; kk < k; kk++) {
                float wv = w[((size_t)co * cin + ci) * k + kk];
                int off = kk * dil - pad, t0, t1;
                tap_range(T, To, stride, off, &t0, &t1);
                for (int t = t0; t <= t1; t++) yr[t] += wv * xr[t * stride + off];
            }
        }
    }
}

void kk_conv1d(float *y, const float *x, int cin, int T, const float *w, const float *b, int cout, int k, int stride,
               int pad, int dil)
{
    int To = kk_conv_out(T, k, stride, pad, dil);
    if ((size_t)cin * cout * To < 65536) {
        kk_conv1d_ref(y, x, cin, T, w, b, cout, k, stride, pad, dil);
        return;
    }
    if (stride != 1) { /* strided (noise_convs): im2col over chunks of output columns, one sgemm each */
        enum { CH = 256 };
        size_t ck = (size_t)cin * k;
        float *col = malloc(ck * CH * sizeof(float)), *yc = malloc((size_t)cout * CH * sizeof(float));
        if (!col || !yc) {
            free(col);
            free(yc);
            kk_conv1d_ref(y, x, cin, T, w, b, cout, k, stride, pad, dil);
            return;
        }
        for (int t0 = 0; t0 < To; t0 += CH) {
            int n = To - t0 < CH ? To - t0 : CH;
            for (int ci = 0; ci < cin; ci++)
                for (int kk = 0; kk < k; kk++) {
                    float *cr = col + ((size_t)ci * k + kk) * n;
                    const float *xr = x + (size_t)ci * T;
                    for (int j = 0; j < n; j++) {
                        int i = (t0 + j) * stride + kk * dil - pad;
                        cr[j] = i >= 0 && i < T ? xr[i] : 0.f;
                    }
                }
            /* yc [cout, n] = w [cout, cin k] col [cin k, n] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cout, n, (int)ck, 1.0f, w, (int)ck, col, n, 0.0f, yc,
                        n);
            for (int co = 0; co < cout; co++)
                for (int j = 0; j < n; j++) y[(size_t)co * To + t0 + j] = yc[(size_t)co * n + j] + (b ? b[co] : 0.f);
        }
        free(col);
        free(yc);
        return;
    }
    float *wj = malloc((size_t)cout * cin * sizeof(float));
    if (!wj) { kk_conv1d_ref(y, x, cin, T, w, b, cout, k, stride, pad, dil); return; }
    for (int co = 0; co < cout; co++)
        for (int t = 0; t < To; t++) y[(size_t)co * To + t] = b ? b[co] : 0.f;
    for (int kk = 0; kk < k; kk++) {
        int off = kk * dil - pad, t0, t1;
        tap_range(T, To, 1, off, &t0, &t1);
        if (t1 < t0) continue;
        for (int co = 0; co < cout; co++)
            for (int ci = 0; ci < cin; ci++) wj[(size_t)co * cin + ci] = w[((size_t)co * cin + ci) * k + kk];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cout, t1 - t0 + 1, cin, 1.0f, wj, cin, x + t0 + off, T,
                    1.0f, y + t0, To);
    }
    free(wj);
}

void kk_convtr1d_ref(float *y, const float *x, int cin, int T, const float *w, const float *b, int cout, int k,
                     int stride, int pad, int opad, int depthwise)
{
    int To = kk_convtr_out(T, k, stride, pad, opad);
    for (int co = 0; co < cout; co++)
        for (int t = 0; t < To; t++) y[(size_t)co * To + t] = b ? b[co] : 0.f;
    for (int ci = 0; ci < cin; ci++) {
        const float *xr = x + (size_t)ci * T;
        int c0 = depthwise ? ci : 0, c1 = depthwise ? ci + 1 : cout;
        for (int co = c0; co < c1; co++) {
            float *yr = y + (size_t)co * To;
            const float *wr = depthwise ? w + (size_t)ci * k : w + ((size_t)ci * cout + co) * k;
            for (int t = 0; t < T; t++)
                for (int kk = 0; kk < k; kk++) {
                    int o = t * stride - pad + kk;
                    if (o >= 0 && o < To) yr[o] += wr[kk] * xr[t];
                }
        }
    }
}

void kk_convtr1d(float *y, const float *x, int cin, int T, const float *w, const float *b, int cout, int k, int stride,
                 int pad, int opad, int depthwise)
{
    int To = kk_convtr_out(T, k, stride, pad, opad);
    if (depthwise || (size_t)cin * cout * T < 65536) {
        kk_convtr1d_ref(y, x, cin, T, w, b, cout, k, stride, pad, opad, depthwise);
        return;
    }
    float *wj = malloc((size_t)cin * cout * sizeof(float)), *z = malloc((size_t)cout * T * sizeof(float));
    if (!wj || !z) {
        free(wj);
        free(z);
        kk_convtr1d_ref(y, x, cin, T, w, b, cout, k, stride, pad, opad, depthwise);
        return;
    }
    for (int co = 0; co < cout; co++)
        for (int t = 0; t < To; t++) y[(size_t)co * To + t] = b ? b[co] : 0.f;
    for (int kk = 0; kk < k; kk++) {
        for (int ci = 0; ci < cin; ci++)
            for (int co = 0; co < cout; co++) wj[(size_t)ci * cout + co] = w[((size_t)ci * cout + co) * k + kk];
        /* z [cout, T] = wj^T [cout, cin] x [cin, T] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cout, T, cin, 1.0f, wj, cout, x, T, 0.0f, z, T);
        for (int co = 0; co < cout; co++) {
            float *yr = y + (size_t)co * To;
            const float *zr = z + (size_t)co * T;
            for (int t = 0; t < T; t++) {
                int o = t * stride - pad + kk;
                if (o >= 0 && o < To) yr[o] += zr[t];
            }
        }
    }
    free(wj);
    free(z);
}
