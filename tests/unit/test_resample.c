/* test_resample.c — soxr resampler: a 1 kHz sine at 22050 Hz becomes a 1 kHz sine at
 * 24000 Hz with the same amplitude and the right length; streaming in odd chunk sizes
 * gives the same samples as one-shot; the sink can stop the stream; bad rates fail. */
#include "ut.h"
#include "audio/resample.h"
#include "core/err.h"

#define RS_PI 3.14159265358979323846

static float *rs_sine(size_t n, double freq, double rate, double amp)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = (float)(amp * sin(2 * RS_PI * freq * (double)i / rate));
    return x;
}

/* Power at `freq` (Goertzel-style single DFT bin) over x[a..b). */
static double rs_bin(const float *x, size_t a, size_t b, double freq, double rate)
{
    double re = 0, im = 0;
    for (size_t i = a; i < b; i++) {
        re += x[i] * cos(2 * RS_PI * freq * (double)i / rate);
        im += x[i] * sin(2 * RS_PI * freq * (double)i / rate);
    }
    double n = (double)(b - a);
    return 2 * sqrt(re * re + im * im) / n; /* amplitude of a sine at freq */
}

static void t_sine(ut_ctx *t)
{
    char err[128];
    size_t n = 22050;
    float *x = rs_sine(n, 1000, 22050, 0.5), *y = NULL;
    size_t ny = 0;
    UT_EQ_INT(t, 0, ars_oneshot(x, n, 22050, 24000, &y, &ny, err, sizeof err));
    UT_NEAR(t, 24000, (double)ny, 2);
    /* Steady-state middle: amplitude 0.5 at 1 kHz, nothing at 1.1 kHz. */
    UT_NEAR(t, 0.5, rs_bin(y, 2400, 21600, 1000, 24000), 0.005);
    UT_CHECK(t, rs_bin(y, 2400, 21600, 1100, 24000) < 0.01);
    double peak = 0;
    for (size_t i = 1000; i < ny - 1000; i++) peak = fmax(peak, fabs(y[i]));
    UT_NEAR(t, 0.5, peak, 0.01);
    free(x);
    free(y);
}

typedef struct rs_col {
    float *buf;
    size_t n, cap, calls, stop_after;
    int empty_seen;
} rs_col;

static int rs_sink(void *user, const float *pcm, size_t n)
{
    rs_col *c = user;
    if (n == 0) c->empty_seen = 1;
    for (size_t i = 0; i < n && c->n < c->cap; i++) c->buf[c->n++] = pcm[i];
    c->calls++;
    return c->stop_after && c->calls >= c->stop_after;
}

static void t_stream_equals_oneshot(ut_ctx *t)
{
    char err[128];
    size_t n = 30011;
    float *x = rs_sine(n, 440, 22050, 0.8), *y = NULL;
    for (size_t i = 0; i < n; i++) x[i] += (float)(0.1 * sin((double)i * 0.37)); /* not too pure */
    size_t ny = 0;
    UT_EQ_INT(t, 0, ars_oneshot(x, n, 22050, 24000, &y, &ny, err, sizeof err));
    static const size_t chunks[] = {1, 7, 333, 5000, 100000};
    for (size_t ci = 0; ci < sizeof chunks / sizeof chunks[0]; ci++) {
        rs_col c = {.buf = calloc(ny + 64, sizeof(float)), .cap = ny + 64};
        ars *r = NULL;
        UT_EQ_INT(t, 0, ars_open(&r, 22050, 24000, rs_sink, &c, err, sizeof err));
        for (size_t i = 0; i < n; i += chunks[ci]) {
            size_t k = n - i < chunks[ci] ? n - i : chunks[ci];
            UT_EQ_INT(t, 0, ars_write(r, x + i, k, err, sizeof err));
        }
        UT_EQ_INT(t, 0, ars_close(r, err, sizeof err));
        ars_free(r);
        UT_EQ_INT(t, 0, c.empty_seen);
        if (c.n != ny) ut_fail(t, __FILE__, __LINE__, "chunk %zu: expected %zu samples, got %zu", chunks[ci], ny, c.n);
        double maxd = 0;
        for (size_t i = 0; i < ny; i++) maxd = fmax(maxd, fabs(c.buf[i] - y[i]));
        if (maxd > 1e-5) ut_fail(t, __FILE__, __LINE__, "chunk %zu: max diff %g > 1e-5", chunks[ci], maxd);
        free(c.buf);
    }
    free(x);
    free(y);
}

static void t_passthrough_and_errors(ut_ctx *t)
{
    char err[128];
    float x[5] = {0.1f, -0.2f, 0.3f, -0.4f, 0.5f}, *y = NULL;
    size_t ny = 0;
    UT_EQ_INT(t, 0, ars_oneshot(x, 5, 24000, 24000, &y, &ny, err, sizeof err));
    UT_EQ_INT(t, 5, ny);
    UT_CHECK(t, y[3] == x[3]);
    free(y);
    UT_EQ_INT(t, ERR_INVAL, ars_oneshot(x, 5, 0, 24000, &y, &ny, err, sizeof err));
    UT_CHECK(t, y == NULL);
    ars *r = NULL;
    UT_EQ_INT(t, ERR_INVAL, ars_open(&r, 22050, -1, rs_sink, NULL, err, sizeof err));
    UT_CHECK(t, r == NULL);
    ars_free(NULL);
    /* Empty input: one-shot gives nothing, streaming emits nothing. */
    UT_EQ_INT(t, 0, ars_oneshot(x, 0, 22050, 24000, &y, &ny, err, sizeof err));
    UT_EQ_INT(t, 0, ny);
    free(y);
}

static void t_sink_stops(ut_ctx *t)
{
    char err[128];
    size_t n = 100000;
    float *x = rs_sine(n, 300, 22050, 0.5);
    rs_col c = {.buf = calloc(200000, sizeof(float)), .cap = 200000, .stop_after = 2};
    ars *r = NULL;
    UT_EQ_INT(t, 0, ars_open(&r, 22050, 24000, rs_sink, &c, err, sizeof err));
    UT_EQ_INT(t, ERR_CANCEL, ars_write(r, x, n, err, sizeof err));
    UT_EQ_INT(t, 2, c.calls);
    UT_EQ_INT(t, ERR_CANCEL, ars_write(r, x, 10, err, sizeof err));
    UT_EQ_INT(t, ERR_CANCEL, ars_close(r, err, sizeof err));
    UT_EQ_INT(t, 2, c.calls); /* never called again */
    ars_free(r);
    free(c.buf);
    free(x);
}

static const ut_case cases[] = {
    {"sine", t_sine},
    {"stream_equals_oneshot", t_stream_equals_oneshot},
    {"passthrough_and_errors", t_passthrough_and_errors},
    {"sink_stops", t_sink_stops},
};
UT_SUITE(resample, cases)
