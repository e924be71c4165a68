/* pocket-engine-bench — the whole pocket-tts engine at full size (random english_2026-04
 * weights), measured the way a client sees it.
 *
 *   pocket-engine-bench [DIR] [RUNS] [CONFIGS]
 *       DIR      reference folder (default ../shared/reference/pocket-tts)
 *       RUNS     TTFA repetitions per configuration (default 5)
 *       CONFIGS  comma list of THREADSxPIPE, e.g. "1p,2p,2s" (default): p = Mimi on its
 *                own thread, s = sequential; b = FlowLM as BF16 (else F32); q = int8
 *                (--quantize; the Mimi decoder transformer int8 too, env PKEB_MIMI_Q8=-1 keeps it
 *                exact); h = huge-page weight arena; t = TTFA only ("1pt")
 *
 * Setup: a random F32 checkpoint from DIR/layout-english_2026-04.json is written into a
 * temp folder as model.safetensors (the english_2026-04 built-in config is used; the tiny
 * tokenizer stands in for the real one: its ids are valid rows of the 4001-row table), and
 * a 10 s synthetic voice WAV into a voices folder. Per configuration, in this process:
 *  - startup to ready: pke_new() with the weights in the page cache;
 *  - clone: first request with the WAV voice (Mimi encoder + voice prompt, then cached);
 *  - TTFA: eng_synth() call to the first 1920-sample frame at the sink, cached voice
 *    (the request is cancelled right there), median of RUNS;
 *  - frames/s: one request with frames_after_eos forced high, stopped at 125 frames
 *    (upstream's workload: 10 s of audio); steady = frames 2..125;
 *  - peak RSS: VmHWM (reset with /proc/self/clear_refs before each configuration).
 * Env PKEB_FIRST_CHUNK_TOKENS sets pke_options.first_chunk_tokens (experiments; -1 = off).
 * Upstream's figures (README, idle machine, OpenBLAS 1 thread, its best) are printed
 * beside ours. Nothing is asserted; SPEED.md keeps the history.
 */
#include "core/cpuenv.h"
#include "core/err.h"
#include "engine/engine.h"
#include "engine/pocket/pocket.h"

#define PK_RANDCKPT_NO_MAIN
#include "tools/pocket-randckpt.c"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static long status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl)) v = atol(line + kl + 1);
    if (f) fclose(f);
    return v;
}

static const char *loadavg(void)
{
    static char b[64];
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f || !fgets(b, sizeof b, f)) snprintf(b, sizeof b, "?");
    if (f) fclose(f);
    b[14 < sizeof b ? 14 : 0] = 0;
    return b;
}

static void reset_peak(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
}

static double cpu_ms(void) /* process CPU time, all threads: robust on a busy machine */
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
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

typedef struct clock_sink {
    double t0, first, last, second, c0, first_cpu;
    int frames, stop_after;
} clock_sink;

static int sink(void *u, const float *pcm, size_t n)
{
    clock_sink *c = u;
    double t = now_ms();
    if (c->frames == 0) c->first = t - c->t0, c->first_cpu = cpu_ms() - c->c0;
    if (c->frames == 1) c->second = t;
    c->last = t;
    c->frames++;
    return c->stop_after > 0 && c->frames >= c->stop_after;
}

static int write_voice(const char *path)
{
    enum { SR = 24000, SEC = 10 };
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    unsigned char h[44];
    uint32_t dl = SR * SEC * 2;
    memcpy(h, "RIFF", 4);
    uint32_t v = 36 + dl;
    memcpy(h + 4, &v, 4);
    memcpy(h + 8, "WAVEfmt ", 8);
    v = 16;
    memcpy(h + 16, &v, 4);
    uint16_t s = 1;
    memcpy(h + 20, &s, 2);
    memcpy(h + 22, &s, 2);
    v = SR;
    memcpy(h + 24, &v, 4);
    v = SR * 2;
    memcpy(h + 28, &v, 4);
    s = 2;
    memcpy(h + 32, &s, 2);
    s = 16;
    memcpy(h + 34, &s, 2);
    memcpy(h + 36, "data", 4);
    memcpy(h + 40, &dl, 4);
    int ok = fwrite(h, 1, 44, f) == 44;
    for (int i = 0; ok && i < SR * SEC; i++) { /* a voiced-ish signal: harmonics of a gliding f0, syllable AM */
        double t = (double)i / SR, f0 = 120 + 30 * sin(2 * M_PI * 0.7 * t), x = 0;
        for (int k = 1; k <= 8; k++) x += sin(2 * M_PI * f0 * k * t) / k;
        x *= 0.2 * (0.55 + 0.45 * sin(2 * M_PI * 4 * t));
        int16_t q = (int16_t)(x * 32767 * 0.8);
        ok = fwrite(&q, 2, 1, f) == 1;
    }
    if (fclose(f)) ok = 0;
    return ok ? 0 : -1;
}

static const char *mode_name(int pipe, int bf16, int huge, int q8)
{
    static char b[16];
    snprintf(b, sizeof b, "%s%s%s", pipe ? "pipe" : "seq", q8 ? "q8" : bf16 ? "16" : "32", huge ? "h" : "");
    return b;
}

static const char *TEXT = "Hello world. I am Kyutai's Pocket TTS. I'm fast enough to run on small CPUs.";

static int bench_one(const char *tmp, int threads, int pipe, int bf16, int huge, int q8, int runs, int ttfa_only)
{
    char model[600], voices[600], states[600], err[512];
    snprintf(model, sizeof model, "%s", tmp);
    snprintf(voices, sizeof voices, "%s/voices", tmp);
    snprintf(states, sizeof states, "%s/states-%d%s", tmp, threads, mode_name(pipe, bf16, huge, q8));
    pke_options o = {0};
    o.model_dir = model;
    o.language = "english_2026-04";
    o.voices_dir = voices;
    o.state_cache_dir = states;
    o.threads = threads;
    o.pipeline = pipe;
    o.bf16 = bf16 ? 1 : -1;
    o.hugepages = huge ? 1 : -1;
    o.quantize = q8;
    const char *fct = getenv("PKEB_FIRST_CHUNK_TOKENS"); /* experiments: 0 = engine default, -1 = off */
    o.first_chunk_tokens = fct ? atoi(fct) : 0;
    const char *mq = getenv("PKEB_MIMI_Q8"); /* A/B: -1 = exact Mimi with q, 1 = int8 Mimi always */
    o.mimi_quantize = mq ? atoi(mq) : 0;
    reset_peak();
    engine *e = NULL;
    double t0 = now_ms();
    if (pke_new(&e, &o, err, sizeof err)) {
        fprintf(stderr, "pocket-engine-bench: %s\n", err);
        return 1;
    }
    double startup = now_ms() - t0;
    long rss_ready = status_kb("VmRSS:"), peak_load = status_kb("VmHWM:");
    eng_synth_req r = {0};
    r.voice = "v";
    r.speed = 1;
    r.has_seed = 1;
    r.seed = 1;
    /* clone (first use of the WAV voice) */
    clock_sink c = {0};
    r.text = "Hi.";
    c.t0 = now_ms();
    int rc = eng_synth(e, &r, sink, &c, err, sizeof err);
    double clone_ms = now_ms() - c.t0;
    /* the folder is laid out like an upstream language folder: a state in
     * embeddings/<builtin>.safetensors serves that built-in name offline (used below) */
    char emb[700];
    snprintf(emb, sizeof emb, "%s/embeddings", tmp);
    mkdir(emb, 0755);
    snprintf(emb, sizeof emb, "%s/embeddings/alba.safetensors", tmp);
    if (!rc) rc = pke_export_voice(e, "v", emb, err, sizeof err);
    /* TTFA with the cached voice */
    double *tt = calloc((size_t)runs, sizeof *tt), *tc = calloc((size_t)runs, sizeof *tc);
    r.text = TEXT;
    for (int i = 0; !rc && i < runs; i++) {
        clock_sink d = {0};
        d.stop_after = 1;
        d.c0 = cpu_ms();
        d.t0 = now_ms();
        int k = eng_synth(e, &r, sink, &d, err, sizeof err);
        if (k != ERR_CANCEL) rc = k ? k : -1;
        tt[i] = d.first;
        tc[i] = d.first_cpu;
    }
    double ttfa = rc ? 0 : median(tt, runs), ttfa_cpu = rc ? 0 : median(tc, runs);
    free(tt);
    free(tc);
    eng_free(e);
    /* full request, forced to upstream's maximum length */
    o.frames_after_eos = 100000;
    r.voice = "alba"; /* from embeddings/ (see above) */
    clock_sink f = {0};
    if (ttfa_only) {
        printf("  %7d %-8s %10.0f %9.0f %9.1f %9.1f   (TTFA only)\n", threads,
               mode_name(pipe, bf16, huge, q8), startup, clone_ms,
               ttfa, ttfa_cpu);
        return rc;
    }
    if (!rc && pke_new(&e, &o, err, sizeof err) == 0) {
        f.c0 = cpu_ms();
        f.t0 = now_ms();
        f.stop_after = 125; /* upstream's workload: exactly 125 frames (10 s of audio) */
        rc = eng_synth(e, &r, sink, &f, err, sizeof err);
        if (rc == ERR_CANCEL && f.frames == 125) rc = 0;
        f.c0 = cpu_ms() - f.c0;
        eng_free(e);
    }
    if (rc) {
        fprintf(stderr, "pocket-engine-bench: %s\n", err);
        return 1;
    }
    double total_s = (f.last - f.t0) / 1e3, fps = f.frames / total_s;
    double steady = f.frames > 2 ? (f.frames - 2) / ((f.last - f.second) / 1e3) : fps;
    printf("  %7d %-8s %10.0f %9.0f %9.1f %9.1f %7d %9.2f %9.2f %8.2fx %11.1f %7ld %9ld %8ld  %s\n", threads,
           mode_name(pipe, bf16, huge, q8), startup, clone_ms, ttfa, ttfa_cpu, f.frames, fps, steady, fps / 12.5,
           f.c0 / f.frames, rss_ready / 1024, peak_load / 1024, status_kb("VmHWM:") / 1024, loadavg());
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    cpuenv_fix_openblas(argv); /* same OpenBLAS kernels as the server */
    const char *dir = argc > 1 ? argv[1] : "../shared/reference/pocket-tts";
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    const char *configs = argc > 3 ? argv[3] : "1p,2p,2s,1pb,1pbh,2pbh";
    if (runs < 1) runs = 1;
    char tmp[64] = "/tmp/pocket-engine-bench-XXXXXX", p[700], q[700], err[512];
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(p, sizeof p, "%s/layout-english_2026-04.json", dir);
    snprintf(q, sizeof q, "%s/model.safetensors", tmp);
    double t0 = now_ms();
    int rc = pkr_write(p, q, "F32", 1, err, sizeof err);
    if (rc) fprintf(stderr, "pocket-engine-bench: %s\n", err);
    double wr = now_ms() - t0;
    snprintf(p, sizeof p, "%s/tiny_tokenizer.model", dir);
    if (p[0] != '/') {
        char cwd[512];
        if (getcwd(cwd, sizeof cwd)) {
            char abs[1300];
            snprintf(abs, sizeof abs, "%s/%s", cwd, p);
            snprintf(p, sizeof p, "%.690s", abs);
        }
    }
    snprintf(q, sizeof q, "%s/tokenizer.model", tmp);
    if (!rc && symlink(p, q)) rc = 1, perror("symlink");
    snprintf(q, sizeof q, "%s/voices", tmp);
    mkdir(q, 0755);
    snprintf(q, sizeof q, "%s/voices/v.wav", tmp);
    if (!rc && write_voice(q)) rc = 1, fprintf(stderr, "pocket-engine-bench: cannot write the voice\n");
    if (!rc) {
        printf("pocket-engine-bench: random F32 english_2026-04 checkpoint written in %.0f ms; 10 s voice; "
               "TTFA median of %d; text: \"%s\"\n",
               wr, runs, TEXT);
        printf("  %7s %-8s %10s %9s %9s %9s %7s %9s %9s %9s %11s %7s %9s %8s  %s\n", "threads", "mimi", "startup ms",
               "clone ms", "TTFA ms", "TTFA cpu", "frames", "frames/s", "steady/s", "realtime", "cpu ms/frame",
               "RSS MB", "load peak", "peak MB", "loadavg");
        const char *c = configs;
        while (*c && !rc) {
            int th = atoi(c);
            const char *x = c;
            while (*x >= '0' && *x <= '9') x++;
            int pipe = *x != 's', bf = 0, only = 0, huge = 0, q8 = 0;
            for (const char *y = x; *y && *y != ','; y++)
                bf |= *y == 'b', only |= *y == 't', huge |= *y == 'h', q8 |= *y == 'q';
            if (th >= 1 && th <= 16) rc = bench_one(tmp, th, pipe, bf, huge, q8, runs, only);
            c = strchr(c, ',');
            if (!c) break;
            c++;
        }
        printf("  upstream PyTorch (README, idle, OpenBLAS 1 thread = its best): startup 1390 ms, clone 10 s 2700 ms, "
               "TTFA 256 ms, 13.16 frames/s (1.05x real time), peak RSS 1130 MB\n");
        printf("  targets: TTFA < 50 ms, >= 52.6 frames/s (4x), peak RSS < 377 MB, startup < 1000 ms\n");
    }
    snprintf(q, sizeof q, "rm -rf '%s'", tmp);
    if (system(q)) {
    }
    return rc ? 1 : 0;
}
