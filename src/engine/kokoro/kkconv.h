/* kkconv.h — the dense kernels of the Kokoro port: Linear, non-causal Conv1d (symmetric zero
 * padding, dilation, stride) and ConvTranspose1d, batch 1, PyTorch layouts.
 *
 * Layouts: activations channel-major [C, T] for convs, [M, in] rows for linear. Conv1d
 * weights [cout, cin, k]; ConvTranspose1d weights [cin, cout, k] (depthwise: [c, 1, k],
 * cin == cout). Bias [cout] or NULL.
 *
 * Each kernel has a plain-loop reference (*_ref) and a fast version built on OpenBLAS sgemm
 * (one GEMM per kernel tap over shifted input views, so no im2col buffer); tests compare the
 * two on random data. The fast ones allocate a small scratch and fall back to the reference
 * if that fails, so none of them can fail; the refs never allocate. Nothing here keeps state: all reentrant.
 */
#ifndef ENGINE_KOKORO_KKCONV_H
#define ENGINE_KOKORO_KKCONV_H

#include <stddef.h>

/* Output length of a Conv1d: (T + 2 pad - dil (k - 1) - 1) / stride + 1. */
int kk_conv_out(int T, int k, int stride, int pad, int dil);
/* Output length of a ConvTranspose1d: (T - 1) stride - 2 pad + k + opad. */
int kk_convtr_out(int T, int k, int stride, int pad, int opad);

/* y [M, out] = x [M, in] W^T + b; W [out, in]. y must not alias x. */
void kk_linear_ref(float *y, const float *x, int M, int in, int out, const float *W, const float *b);
void kk_linear(float *y, const float *x, int M, int in, int out, const float *W, const float *b);

/* y [cout, kk_conv_out(...)] = conv(x [cin, T]). y must not alias x. */
void kk_conv1d_ref(float *y, const float *x, int cin, int T, const float *w, const float *b, int cout, int k,
                   int stride, int pad, int dil);
void kk_conv1d(float *y, const float *x, int cin, int T, const float *w, const float *b, int cout, int k, int stride,
               int pad, int dil);

/* y [cout, kk_convtr_out(...)] = convtranspose(x [cin, T]). y must not alias x. */
void kk_convtr1d_ref(float *y, const float *x, int cin, int T, const float *w, const float *b, int cout, int k,
                     int stride, int pad, int opad, int depthwise);
void kk_convtr1d(float *y, const float *x, int cin, int T, const float *w, const float *b, int cout, int k, int stride,
                 int pad, int opad, int depthwise);

#endif
