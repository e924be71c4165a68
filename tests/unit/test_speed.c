/* test_speed.c — the time-stretch filter: 1.0 is a bit-exact passthrough, other speeds
 * scale duration by 1/speed within 5 % for any chunking, pitch is kept (zero-crossing
 * rate of a tone unchanged within 5 %), bad speeds are refused, sink refusal latches. */
#include "ut.h"
#include "audio/speed.h"
#include "core/err.h"

#define RATE 24000

typedef struct col {
    float *x;
    size_t n, cap;
    int calls, refuse;
} col;

static int col_sink(void *user, const float *pcm, size_t n)
{
    col *c = user;
    c->calls++;
    if (c->refuse) return 1;
    if (c->n + n > c->cap) {
        c->cap = (c->n + n) * 2;
        c->x = realloc(c->x, c->cap * sizeof *c->x);
    }
    memcpy(c->x + c->n, pcm, n * sizeof *pcm);
    c->n += n;
    return 0;
}

/* A voiced-like signal: 150 Hz pulse-ish tone with harmonics, amplitude modulated. */
static float *voice(size_t n)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) {
        float tt = (float)i / RATE;
        float env = 0.6f + 0.4f * sinf(2.0f * 3.14159265f * 3.0f * tt);
        x[i] = env * (0.5f * sinf(2 * 3.14159265f * 150 * tt) + 0.2f * sinf(2 * 3.14159265f * 300 * tt) +
                      0.1f * sinf(2 * 3.14159265f * 450 * tt));
    }
    return x;
}

static double crossings_per_s(const float *x, size_t n)
{
    size_t c = 0;
    for (size_t i = 1; i < n; i++) c += (x[i - 1] < 0) != (x[i] < 0);
    return (double)c * RATE / (double)n;
}

static void run(ut_ctx *t, float speed, const float *x, size_t n, size_t chunk, col *c)
{
    char err[256] = "";
    aspeed *s = NULL;
    memset(c, 0, sizeof *c);
    int rc = aspeed_open(&s, RATE, speed, col_sink, c, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "aspeed_open(%g): %d %s", (double)speed, rc, err);
    size_t k = 0;
    for (size_t off = 0; off < n;) {
        size_t m = chunk ? chunk + (k++ % 3) * 7 : n; /* vary odd sizes a little */
        if (m > n - off) m = n - off;
        UT_EQ_INT(t, 0, aspeed_write(s, x + off, m, err, sizeof err));
        UT_EQ_INT(t, 0, aspeed_write(s, x + off, 0, err, sizeof err));
        off += m;
    }
    UT_EQ_INT(t, 0, aspeed_close(s, err, sizeof err));
    aspeed_free(s);
}

static void t_passthrough(ut_ctx *t)
{
    size_t n = RATE + 11;
    float *x = voice(n);
    col c;
    run(t, 1.0f, x, n, 333, &c);
    UT_EQ_INT(t, n, c.n);
    for (size_t i = 0; i < n; i++)
        if (c.x[i] != x[i]) ut_fail(t, __FILE__, __LINE__, "sample %zu: %g != %g", i, c.x[i], x[i]);
    free(c.x);
    free(x);
}

static void t_durations(ut_ctx *t)
{
    const float speeds[] = {0.25f, 0.5f, 2.0f, 4.0f, 1.3f};
    const size_t chunks[] = {1, 333, 4096, 0};
    size_t n = 2 * RATE;
    float *x = voice(n);
    double zin = crossings_per_s(x, n);
    for (size_t i = 0; i < sizeof speeds / sizeof speeds[0]; i++) {
        for (size_t j = 0; j < sizeof chunks / sizeof chunks[0]; j++) {
            if (chunks[j] == 1 && speeds[i] != 2.0f) continue; /* keep the run short */
            col c;
            run(t, speeds[i], x, n, chunks[j], &c);
            double want = (double)n / speeds[i];
            if (fabs((double)c.n - want) > 0.05 * want)
                ut_fail(t, __FILE__, __LINE__, "speed %g chunk %zu: expected %.0f samples (+-5%%), got %zu",
                        (double)speeds[i], chunks[j], want, c.n);
            double z = crossings_per_s(c.x, c.n);
            if (fabs(z - zin) > 0.05 * zin)
                ut_fail(t, __FILE__, __LINE__, "speed %g: pitch moved, crossings/s expected %.1f, got %.1f",
                        (double)speeds[i], zin, z);
            free(c.x);
        }
    }
    free(x);
}

static void t_bad(ut_ctx *t)
{
    char err[256];
    aspeed *s = (aspeed *)1;
    col c = {0};
    UT_EQ_INT(t, ERR_INVAL, aspeed_open(&s, RATE, 0.2f, col_sink, &c, err, sizeof err));
    UT_CHECK(t, s == NULL);
    UT_EQ_INT(t, ERR_INVAL, aspeed_open(&s, RATE, 4.5f, col_sink, &c, err, sizeof err));
    UT_EQ_INT(t, ERR_INVAL, aspeed_open(&s, RATE, NAN, col_sink, &c, err, sizeof err));
    aspeed_free(NULL);
}

static void t_refuse(ut_ctx *t)
{
    const float speeds[] = {1.0f, 2.0f};
    for (int i = 0; i < 2; i++) {
        char err[256];
        aspeed *s = NULL;
        col c = {.refuse = 1};
        float *x = voice(RATE);
        UT_EQ_INT(t, 0, aspeed_open(&s, RATE, speeds[i], col_sink, &c, err, sizeof err));
        UT_EQ_INT(t, ERR_CANCEL, aspeed_write(s, x, RATE, err, sizeof err));
        UT_EQ_INT(t, ERR_CANCEL, aspeed_write(s, x, 10, err, sizeof err));
        UT_EQ_INT(t, ERR_CANCEL, aspeed_close(s, err, sizeof err));
        UT_EQ_INT(t, 1, c.calls);
        aspeed_free(s);
        free(x);
    }
}

static const ut_case cases[] = {
    {"passthrough", t_passthrough},
    {"durations", t_durations},
    {"bad", t_bad},
    {"refuse", t_refuse},
};
UT_SUITE(speed, cases)
