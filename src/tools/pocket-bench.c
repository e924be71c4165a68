/* pocket-bench — FlowLM speed at full size (random english_2026-04 weights).
 *
 *   pocket-bench [DIR] [FRAMES] [RUNS] [ROWS]   DIR defaults to ../shared/reference/pocket-tts
 *
 * Writes a random F32 checkpoint from DIR/layout-english_2026-04.json into /tmp (unlinked
 * right after mapping), loads FlowLM with F32 weights (used in place from the mapping),
 * with BF16 weights (converted at load) and with int8 weights (NN_Q8, quantized at load),
 * each also in a huge-page arena; ROWS picks some of these configurations by letter
 * (a f32, b f32 huge, c bf16, d bf16 huge, e int8, f int8 huge, g the memory bound;
 * default all). For 1 and 2 threads it measures: the text prompt
 * (45 tokens, after a 126-position voice-sized prefix) and the per-frame FlowLM step
 * (transformer + flow head + EOS, LSD 1 step), median over FRAMES steps, median of RUNS
 * runs. Printed beside upstream's PyTorch figures from the reference README (same machine
 * class). Row g is the floor any F32 step has on this machine: the same threads only READ
 * the F32 weight bytes one step needs (the mapped flow_lm tensors a step multiplies by:
 * transformer, flow head, norms; not the embedding table or the voice projection), with no
 * arithmetic and no synchronisation between tensors, median over FRAMES passes. Results are printed, never asserted; the history lives in SPEED.md.
 */
#include "core/err.h"
#include "engine/pocket/flowlm.h"
#include "engine/pocket/pkconfig.h"
#include "model/safetensors.h"
#include "nn/nn.h"

#define PK_RANDCKPT_NO_MAIN
#include "tools/pocket-randckpt.c"

#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double cpu_ms(void) /* process CPU time: robust against waiting on a busy machine */
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static const char *loadavg(void)
{
    static char b[64];
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f || !fgets(b, sizeof b, f)) snprintf(b, sizeof b, "?");
    if (f) fclose(f);
    b[strcspn(b, "\n")] = 0;
    return b;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

typedef struct result {
    double prompt_ms, step_ms, best_ms; /* medians; best = fastest single step seen */
    double prompt_cpu, step_cpu;        /* CPU ms (all threads), medians over runs */
    double load_ms;                     /* pk_flowlm_load wall time (conversion/quantization) */
} result;

static int run(const pk_config *cfg, const st_file *f, nn_dtype dt, int hugepages, int threads, int frames, int runs,
               result *res, char *err, size_t errlen)
{
    nn_pool *pool = NULL;
    int rc = nn_pool_new(&pool, threads, err, errlen);
    if (rc) return rc;
    nn_set_threads(1); /* our pool splits the GEMMs; OpenBLAS stays single-threaded */
    pk_flowlm *m = NULL;
    pk_flowlm_opts o = {dt, pool, NULL, hugepages};
    double l0 = now_ms();
    rc = pk_flowlm_load(&m, cfg, f, &o, err, errlen);
    res->load_ms = now_ms() - l0;
    if (rc) {
        nn_pool_free(pool);
        return rc;
    }
    enum { VOICE = 126, TEXT = 45 };
    pk_fstate *s = NULL;
    rc = pk_fstate_new(&s, m, VOICE + TEXT + frames + 8, err, errlen);
    double *pr = calloc((size_t)runs, sizeof *pr), *st = calloc((size_t)runs, sizeof *st);
    double *steps = calloc((size_t)frames, sizeof *steps);
    double *pc = calloc((size_t)runs, sizeof *pc), *sc = calloc((size_t)runs, sizeof *sc);
    float *lat = calloc(64 * (size_t)cfg->ldim, sizeof *lat);
    pk_gen_params p;
    pk_gen_params_default(&p);
    pk_gauss g;
    pk_gauss_seed(&g, 1);
    pk_noise nz = {pk_gauss_fill, &g};
    int ids[TEXT], vids[VOICE];
    for (int i = 0; i < TEXT; i++) ids[i] = (i * 89 + 7) % cfg->n_bins;
    for (int i = 0; i < VOICE; i++) vids[i] = (i * 31 + 3) % cfg->n_bins;
    for (int r = 0; !rc && r < runs; r++) {
        pk_fstate_reset(s);
        /* a voice-sized prefix (as text positions: same cost as a voice prompt) */
        rc = pk_flowlm_prompt_text(m, s, vids, VOICE, &p, NULL, err, errlen);
        double t0 = now_ms(), c0 = cpu_ms();
        if (!rc) rc = pk_flowlm_prompt_text(m, s, ids, TEXT, &p, NULL, err, errlen);
        pr[r] = now_ms() - t0;
        pc[r] = cpu_ms() - c0;
        c0 = cpu_ms();
        float logit;
        for (int k = 0; !rc && k < frames; k++) {
            t0 = now_ms();
            rc = pk_flowlm_step(m, s, k ? lat : NULL, &p, &nz, lat, &logit, err, errlen);
            steps[k] = now_ms() - t0;
        }
        for (int k = 0; !rc && k < frames; k++)
            if (r == 0 && k == 0 ? 1 : steps[k] < res->best_ms) res->best_ms = steps[k];
        sc[r] = (cpu_ms() - c0) / frames;
        if (!rc) st[r] = median(steps, frames);
    }
    if (!rc) {
        res->prompt_ms = median(pr, runs);
        res->step_ms = median(st, runs);
        res->prompt_cpu = median(pc, runs);
        res->step_cpu = median(sc, runs);
    }
    free(pr), free(st), free(steps), free(lat), free(pc), free(sc);
    pk_fstate_free(s);
    pk_flowlm_free(m);
    nn_pool_free(pool);
    return rc;
}

/* ---- row g: the memory floor of an F32 step -------------------------------------------- */

typedef struct rd_job {
    const st_file *f;
    int part, parts; /* this thread reads part `part` of every tensor split in `parts` */
    uint64_t sum;    /* kept so the loads are not optimised away */
} rd_job;

static int step_tensor(const st_tensor *t)
{
    return t->dtype == ST_F32 && strncmp(t->name, "flow_lm.", 8) == 0 && !strstr(t->name, "conditioner.embed") &&
           !strstr(t->name, "speaker_proj");
}

/* 32-byte blocks [lo, hi) of p: AVX2 loads when the CPU has them (as wide as the GEMV's
 * loads in practice: both are bound by the memory system, not by load width) */
__attribute__((target("avx2"))) static uint64_t rd_avx2(const uint8_t *p, size_t lo, size_t hi)
{
    __m256i a0 = _mm256_setzero_si256(), a1 = a0;
    size_t k = lo;
    for (; k + 2 <= hi; k += 2) {
        a0 = _mm256_xor_si256(a0, _mm256_loadu_si256((const __m256i *)(p + 32 * k)));
        a1 = _mm256_xor_si256(a1, _mm256_loadu_si256((const __m256i *)(p + 32 * k + 32)));
    }
    if (k < hi) a0 = _mm256_xor_si256(a0, _mm256_loadu_si256((const __m256i *)(p + 32 * k)));
    a0 = _mm256_xor_si256(a0, a1);
    return (uint64_t)_mm256_extract_epi64(a0, 0) ^ (uint64_t)_mm256_extract_epi64(a0, 3);
}

static uint64_t rd_c(const uint8_t *p, size_t lo, size_t hi)
{
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, w[4];
    for (size_t k = lo; k < hi; k++) {
        memcpy(w, p + 32 * k, 32);
        a0 ^= w[0], a1 ^= w[1], a2 ^= w[2], a3 ^= w[3];
    }
    return a0 ^ a1 ^ a2 ^ a3;
}

static void *rd_run(void *arg)
{
    rd_job *j = arg;
    int avx2 = __builtin_cpu_supports("avx2");
    uint64_t sum = 0;
    for (size_t i = 0; i < st_count(j->f); i++) {
        const st_tensor *t = st_at(j->f, i);
        if (!step_tensor(t)) continue;
        size_t n = t->nbytes / 32, lo = n * (size_t)j->part / (size_t)j->parts, hi = n * (size_t)(j->part + 1) / (size_t)j->parts;
        sum ^= avx2 ? rd_avx2(t->data, lo, hi) : rd_c(t->data, lo, hi);
    }
    j->sum = sum;
    return NULL;
}

/* median ms of `frames` passes over the step's F32 weight bytes with `threads` readers */
static double read_floor(const st_file *f, int threads, int frames, size_t *bytes)
{
    *bytes = 0;
    for (size_t i = 0; i < st_count(f); i++)
        if (step_tensor(st_at(f, i))) *bytes += st_at(f, i)->nbytes / 32 * 32;
    double *v = calloc((size_t)frames, sizeof *v);
    uint64_t sink = 0;
    for (int k = 0; v && k < frames; k++) {
        rd_job j[8];
        pthread_t th[8];
        double t0 = now_ms();
        for (int t = 0; t < threads; t++) {
            j[t] = (rd_job){f, t, threads, 0};
            if (t) pthread_create(&th[t], NULL, rd_run, &j[t]);
        }
        rd_run(&j[0]);
        for (int t = 1; t < threads; t++) pthread_join(th[t], NULL);
        v[k] = now_ms() - t0;
        for (int t = 0; t < threads; t++) sink ^= j[t].sum;
    }
    double m = v ? median(v, frames) : 0;
    free(v);
    if (sink == 42) printf(" "); /* keeps the loads alive */
    return m;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "../shared/reference/pocket-tts";
    int frames = argc > 2 ? atoi(argv[2]) : 40;
    int runs = argc > 3 ? atoi(argv[3]) : 3;
    if (frames < 1) frames = 1;
    if (runs < 1) runs = 1;
    char lp[1024], cp[1024], out[256], err[512];
    snprintf(lp, sizeof lp, "%s/layout-english_2026-04.json", dir);
    snprintf(cp, sizeof cp, "%s/english_2026-04.resolved.json", dir);
    snprintf(out, sizeof out, "/tmp/pocket-bench-%d.safetensors", (int)getpid());
    pk_config cfg;
    if (pk_config_load_json(&cfg, cp, err, sizeof err)) {
        fprintf(stderr, "pocket-bench: %s\n", err);
        return 1;
    }
    double t0 = now_ms();
    if (pkr_write(lp, out, "F32", 1, err, sizeof err)) {
        fprintf(stderr, "pocket-bench: %s\n", err);
        unlink(out);
        return 1;
    }
    st_file *f = NULL;
    int rc = st_open(&f, out, err, sizeof err);
    unlink(out);
    if (rc) {
        fprintf(stderr, "pocket-bench: %s\n", err);
        return 1;
    }
    printf("  random F32 checkpoint (%zu tensors) written in %.0f ms; kernels %s; %d frames x %d runs\n",
           st_count(f), now_ms() - t0, nn_kernel_name(), frames, runs);
    printf("  %-22s %7s %15s %11s %8s %9s %14s %12s %8s\n", "FlowLM english_2026-04", "threads", "text 45 tok ms",
           "ms / frame", "best ms", "frames/s", "text cpu ms", "cpu ms/frame", "load ms");
    static const struct {
        nn_dtype dt;
        int huge;
        const char *name;
    } dts[] = {{NN_F32, 0, "f32 (mmap, in place)"},
               {NN_F32, 1, "f32 huge-page copy"},
               {NN_BF16, 0, "bf16"},
               {NN_BF16, 1, "bf16 huge pages"},
               {NN_Q8, 0, "int8"},
               {NN_Q8, 1, "int8 huge pages"}};
    const char *rows = argc > 4 ? argv[4] : "abcdefg";
    for (int d = 0; d < (int)(sizeof dts / sizeof dts[0]); d++)
        for (int th = 1; th <= 2 && strchr(rows, 'a' + d); th++) {
            result r = {0, 0, 0, 0, 0, 0};
            if (run(&cfg, f, dts[d].dt, dts[d].huge, th, frames, runs, &r, err, sizeof err)) {
                fprintf(stderr, "pocket-bench: %s\n", err);
                st_close(f);
                return 1;
            }
            printf("  %-22s %7d %15.1f %11.2f %8.2f %9.1f %14.1f %12.2f %8.0f\n", dts[d].name, th, r.prompt_ms,
                   r.step_ms, r.best_ms, 1000.0 / r.step_ms, r.prompt_cpu, r.step_cpu, r.load_ms);
        }
    for (int th = 1; th <= 2 && strchr(rows, 'g'); th++) {
        size_t bytes = 0;
        read_floor(f, th, 3, &bytes); /* warm the page cache / TLB once */
        double ms = read_floor(f, th, frames, &bytes);
        printf("  %-22s %7d %15s %11.2f %8s %9.1f   (read only: %.0f MB of F32 step weights at %.1f GB/s)\n",
               "memory floor (f32)", th, "-", ms, "-", 1000.0 / ms, bytes / 1e6, bytes / ms / 1e6);
    }
    printf("  (load average at the end: %s)\n", loadavg());
    printf("  upstream PyTorch (README, OpenBLAS): FlowLM step 70.9 ms (1 thread), 40.1 ms (2 threads); "
           "text prompt 153 / 110 ms\n");
    st_close(f);
    return 0;
}
