/* bench-encode — what each output format costs, as a fraction of real time.
 *
 *   build/bench-encode [seconds]      (BENCH_RUNS=5 by default)
 *
 * For each format (and the libsonic time-stretch at 2x), encodes `seconds` (default 20)
 * of a deterministic speech-like signal (a gliding 90..220 Hz harmonic source with a
 * syllable-rate envelope and noise bursts) pushed in 80 ms chunks with a flush after
 * each, exactly as the streaming server does, and discards the bytes. Prints the median
 * over the runs of thread CPU time / audio duration (0.01 = 1 % of one core per stream)
 * and the output bit rate. CPU time rather than wall time, because the machine is
 * shared; both are printed. Numbers are read by people; nothing here asserts a speed.
 */
#include "audio/aenc.h"
#include "audio/speed.h"
#include "core/err.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RATE 24000
#define CHUNK (RATE * 80 / 1000)
#define MAX_RUNS 31

static int count_bytes(void *user, const void *b, size_t n)
{
    *(size_t *)user += n;
    return 0;
}

static int count_samples(void *user, const float *pcm, size_t n)
{
    *(size_t *)user += n;
    return 0;
}

static double now(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void speechlike(float *x, size_t n)
{
    double ph = 0;
    unsigned seed = 1;
    for (size_t i = 0; i < n; i++) {
        double t = (double)i / RATE;
        double f0 = 155 + 65 * sin(2 * M_PI * 0.7 * t);
        ph += 2 * M_PI * f0 / RATE;
        double env = 0.5 + 0.5 * sin(2 * M_PI * 4.0 * t);
        double v = 0;
        for (int h = 1; h <= 12; h++) v += sin(h * ph) / h;
        seed = seed * 1103515245u + 12345u;
        double noise = ((double)(seed >> 9) / (double)(1u << 23) - 0.5);
        int fricative = fmod(t, 0.9) > 0.75;
        x[i] = (float)(fricative ? 0.3 * noise : 0.25 * env * v + 0.01 * noise);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double d = *(const double *)a - *(const double *)b;
    return (d > 0) - (d < 0);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* One run: returns 0 and fills cpu/wall seconds and output size. */
static int run_format(aenc_format f, const float *x, size_t n, double *cpu, double *wall,
                      size_t *bytes)
{
    char err[256];
    aenc *e = NULL;
    aenc_opts o = {RATE, 1, 0};
    *bytes = 0;
    double c0 = now(CLOCK_THREAD_CPUTIME_ID), w0 = now(CLOCK_MONOTONIC);
    int rc = aenc_open(&e, f, &o, count_bytes, bytes, err, sizeof err);
    for (size_t off = 0; !rc && off < n; off += CHUNK) {
        size_t k = n - off < CHUNK ? n - off : CHUNK;
        rc = aenc_write(e, x + off, k, err, sizeof err);
        if (!rc) rc = aenc_flush(e, err, sizeof err);
    }
    if (!rc) rc = aenc_close(e, err, sizeof err);
    aenc_free(e);
    *cpu = now(CLOCK_THREAD_CPUTIME_ID) - c0;
    *wall = now(CLOCK_MONOTONIC) - w0;
    if (rc) fprintf(stderr, "bench-encode: %s: %s\n", aenc_format_name(f), err);
    return rc;
}

static int run_speed(float speed, const float *x, size_t n, double *cpu, double *wall,
                     size_t *samples)
{
    char err[256];
    aspeed *s = NULL;
    *samples = 0;
    double c0 = now(CLOCK_THREAD_CPUTIME_ID), w0 = now(CLOCK_MONOTONIC);
    int rc = aspeed_open(&s, RATE, speed, count_samples, samples, err, sizeof err);
    for (size_t off = 0; !rc && off < n; off += CHUNK) {
        size_t k = n - off < CHUNK ? n - off : CHUNK;
        rc = aspeed_write(s, x + off, k, err, sizeof err);
    }
    if (!rc) rc = aspeed_close(s, err, sizeof err);
    aspeed_free(s);
    *cpu = now(CLOCK_THREAD_CPUTIME_ID) - c0;
    *wall = now(CLOCK_MONOTONIC) - w0;
    if (rc) fprintf(stderr, "bench-encode: speed: %s\n", err);
    return rc;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 20.0;
    if (!(secs > 0 && secs <= 600)) {
        fprintf(stderr, "usage: bench-encode [seconds 0..600]\n");
        return 2;
    }
    const char *r = getenv("BENCH_RUNS");
    int runs = r ? atoi(r) : 5;
    if (runs < 1) runs = 1;
    if (runs > MAX_RUNS) runs = MAX_RUNS;
    size_t n = (size_t)(secs * RATE);
    float *x = malloc(n * sizeof *x);
    if (!x) return 1;
    speechlike(x, n);
    printf("  %.0f s of 24 kHz mono, 80 ms chunks, streaming; median of %d runs\n", secs, runs);
    printf("  %-12s %12s %12s %10s\n", "format", "cpu/realtime", "wall/realtime", "kbit/s");
    int bad = 0;
    for (int f = 0; f < AENC_NFORMATS; f++) {
        if (!aenc_available((aenc_format)f)) {
            printf("  %-12s %12s\n", aenc_format_name((aenc_format)f), "unavailable");
            continue;
        }
        double cpu[MAX_RUNS], wall[MAX_RUNS];
        size_t bytes = 0;
        int i;
        for (i = 0; i < runs; i++)
            if (run_format((aenc_format)f, x, n, &cpu[i], &wall[i], &bytes)) break;
        if (i < runs) { bad = 1; continue; }
        printf("  %-12s %12.5f %12.5f %10.1f\n", aenc_format_name((aenc_format)f),
               median(cpu, runs) / secs, median(wall, runs) / secs, (double)bytes * 8 / secs / 1000);
    }
    const float speeds[] = {0.5f, 2.0f};
    for (int j = 0; j < 2; j++) {
        double cpu[MAX_RUNS], wall[MAX_RUNS];
        size_t out = 0;
        int i;
        for (i = 0; i < runs; i++)
            if (run_speed(speeds[j], x, n, &cpu[i], &wall[i], &out)) break;
        if (i < runs) { bad = 1; continue; }
        char name[32];
        snprintf(name, sizeof name, "speed %.1fx", (double)speeds[j]);
        printf("  %-12s %12.5f %12.5f %10s\n", name, median(cpu, runs) / secs,
               median(wall, runs) / secs, "-");
    }
    free(x);
    return bad;
}
