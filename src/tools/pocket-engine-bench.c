/* pocket-engine-bench — the whole pocket-tts engine at full size (random english_2026-04
 * weights), measured the way a client sees it.
 *
 *   pocket-engine-bench [DIR] [RUNS] [CONFIGS]
 *       DIR      reference folder (default ../shared/reference/pocket-tts)
 *       RUNS     TTFA repetitions per configuration (default 5)
 *       CONFIGS  comma list (default "default,1pb,2pb,1pq,2pq"):
 *                "default" = exactly what `pockettts serve` builds (pke_options as the
 *                registry fills them: threads, pipeline, dtype, huge pages, first chunk and
 *                prompt pool all left to the engine); else THREADS then letters:
 *                p = Mimi on its own thread, s = sequential; b = FlowLM as BF16 (else F32);
 *                q = int8 (--quantize; the Mimi decoder transformer int8 too, env
 *                PKEB_MIMI_Q8=-1 keeps it exact); h = huge-page weight arena; t = TTFA only
 *
 * Setup: a random F32 checkpoint from DIR/layout-english_2026-04.json is written into a
 * temp folder as model.safetensors (the english_2026-04 built-in config is used; the tiny
 * tokenizer stands in for the real one: its ids are valid rows of the 4001-row table), and
 * a 10 s synthetic voice WAV into a voices folder. Per configuration, in this process:
 *  - startup to ready: pke_new() with the weights in the page cache;
 *  - clone: first request with the WAV voice (Mimi encoder + voice prompt, then cached);
 *  - TTFA: eng_synth() call to the first 1920-sample frame at the sink, cached voice
 *    (the request is cancelled right there), median of RUNS, wall and process CPU time;
 *    where it goes comes from the engine's stage marks (pke_options.mark): the median of
 *    each stage's share over the runs, second table;
 *  - frames/s: one request with frames_after_eos forced high, stopped at 125 frames
 *    (upstream's workload: 10 s of audio); steady = frames 2..125; CPU ms per frame;
 *  - peak RSS: VmHWM (reset with /proc/self/clear_refs before each configuration).
 * Env: PKEB_FIRST_CHUNK_TOKENS sets pke_options.first_chunk_tokens, PKEB_STEP_SHARE
 * pke_options.step_share, PKEB_STEP_APART first_step_apart, PKEB_MIMI_BF16 mimi_bf16,
 * PKEB_PROMPT_THREADS
 * pke_options.prompt_threads (A/B experiments; -1 = off). Upstream's figures (README,
 * idle machine, OpenBLAS 1 thread, its best) and issue 5's targets (met / not met, for
 * the default configuration and the 1- and 2-thread rows) are printed last. Nothing is
 * asserted; SPEED.md keeps the history.
 */
#include "core/cpuenv.h"
#include "core/err.h"
#include "engine/engine.h"
#include "engine/pocket/pocket.h"

#define PK_RANDCKPT_NO_MAIN
#include "tools/pocket-randckpt.c"

#include <dirent.h>
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

/* Per-thread CPU time (/proc/self/task/<tid>/stat utime + stime, ms) with the thread's
 * name: shows which thread burns the cores (the FlowLM caller, pool workers "pk-pool*" if
 * nn names them, the Mimi thread "pk-mimi"). */
enum { MAXT = 32 };
typedef struct tcpu {
    int n;
    int tid[MAXT];
    char name[MAXT][20];
    double ms[MAXT];
} tcpu;

static void thread_cpu(tcpu *t)
{
    t->n = 0;
    DIR *d = opendir("/proc/self/task");
    struct dirent *de;
    long hz = sysconf(_SC_CLK_TCK);
    while (d && (de = readdir(d)) && t->n < MAXT) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9') continue;
        char p[300], b[1024];
        snprintf(p, sizeof p, "/proc/self/task/%s/stat", de->d_name);
        FILE *f = fopen(p, "r");
        size_t k = f ? fread(b, 1, sizeof b - 1, f) : 0;
        if (f) fclose(f);
        b[k] = 0;
        char *l = strchr(b, '('), *r = strrchr(b, ')');
        if (!l || !r) continue;
        unsigned long ut = 0, st = 0;
        /* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
        if (sscanf(r + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) continue;
        int i = t->n++;
        t->tid[i] = atoi(de->d_name);
        snprintf(t->name[i], sizeof t->name[i], "%.*s", (int)(r - l - 1 < 19 ? r - l - 1 : 19), l + 1);
        t->ms[i] = (double)(ut + st) * 1000.0 / (double)hz;
    }
    if (d) closedir(d);
}

typedef struct clock_sink {
    double t0, first, last, second, c0, first_cpu;
    int frames, stop_after;
    tcpu *th0, *th1; /* per-thread CPU at the first and the last frame, if set */
} clock_sink;

static int sink(void *u, const float *pcm, size_t n)
{
    clock_sink *c = u;
    double t = now_ms();
    if (c->frames == 0) c->first = t - c->t0, c->first_cpu = cpu_ms() - c->c0;
    if (c->frames == 1) c->second = t;
    c->last = t;
    c->frames++;
    if (c->th0 && c->frames == 1) thread_cpu(c->th0);
    if (c->th1 && c->stop_after > 0 && c->frames == c->stop_after) thread_cpu(c->th1);
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

/* One configuration: a label and the options it differs in. */
typedef struct bconf {
    char label[16];
    int dflt; /* the server's defaults: none of the fields below is set */
    int threads, pipe, bf16, huge, q8, ttfa_only;
} bconf;

typedef struct bresult {
    double startup, clone, ttfa, ttfa_cpu, fps, steady, cpu_frame;
    double stage[PKE_MARK_N], stage_cpu[PKE_MARK_N]; /* medians of each stage's own duration */
    long rss, peak_load, peak;
    int frames, ok, full;
    char threads[256]; /* steady-state CPU ms per frame by thread */
} bresult;

static const char *STAGE_NAMES[PKE_MARK_N] = {"voice", "text", "alloc", "copy", "prompt", "step", "decode", "sink"};

typedef struct marks {
    double t[PKE_MARK_N], c[PKE_MARK_N]; /* wall ms, process CPU ms */
} marks;

static void on_mark(void *ud, int stage, double ms)
{
    marks *m = ud;
    if (stage >= 0 && stage < PKE_MARK_N) m->t[stage] = ms, m->c[stage] = cpu_ms();
}

static const char *TEXT = "Hello world. I am Kyutai's Pocket TTS. I'm fast enough to run on small CPUs.";

static void set_options(pke_options *o, const bconf *c)
{
    if (c->dflt) return; /* as src/engine/registry.c fills them: everything left to the engine */
    o->threads = c->threads;
    o->pipeline = c->pipe;
    o->bf16 = c->bf16 ? 1 : -1;
    o->hugepages = c->huge ? 1 : -1;
    o->quantize = c->q8;
}

static int bench_one(const char *tmp, const bconf *cf, int runs, bresult *res)
{
    char model[600], voices[600], states[600], err[512];
    memset(res, 0, sizeof *res);
    snprintf(model, sizeof model, "%.500s", tmp);
    snprintf(voices, sizeof voices, "%.500s/voices", tmp);
    snprintf(states, sizeof states, "%.500s/states-%.15s", tmp, cf->label);
    marks mk;
    pke_options o = {0};
    o.model_dir = model;
    o.language = "english_2026-04";
    o.voices_dir = voices;
    o.state_cache_dir = states;
    o.pipeline = -1; /* registry.c */
    set_options(&o, cf);
    const char *fct = getenv("PKEB_FIRST_CHUNK_TOKENS"); /* experiments: 0 = engine default, -1 = off */
    if (fct) o.first_chunk_tokens = atoi(fct);
    const char *pt = getenv("PKEB_PROMPT_THREADS"); /* experiments: 0 = engine default, -1 = off */
    if (pt) o.prompt_threads = atoi(pt);
    const char *ss = getenv("PKEB_STEP_SHARE"); /* A/B: -1 = the Mimi thread never helps with steps */
    if (ss) o.step_share = atoi(ss);
    const char *sa = getenv("PKEB_STEP_APART"); /* A/B: 1 = text prompt and step 0 as two passes */
    if (sa) o.first_step_apart = atoi(sa);
    const char *mb = getenv("PKEB_MIMI_BF16"); /* A/B: -1 = exact Mimi beside a BF16 FlowLM */
    if (mb) o.mimi_bf16 = atoi(mb);
    const char *mq = getenv("PKEB_MIMI_Q8"); /* A/B: -1 = exact Mimi with q, 1 = int8 Mimi always */
    if (mq) o.mimi_quantize = atoi(mq);
    o.mark = on_mark;
    o.mark_ud = &mk;
    reset_peak();
    engine *e = NULL;
    double t0 = now_ms();
    if (pke_new(&e, &o, err, sizeof err)) {
        fprintf(stderr, "pocket-engine-bench: %s\n", err);
        return 1;
    }
    res->startup = now_ms() - t0;
    res->rss = status_kb("VmRSS:") / 1024, res->peak_load = status_kb("VmHWM:") / 1024;
    printf("  %-8s = %s\n", cf->label, e->desc);
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
    res->clone = now_ms() - c.t0;
    /* the folder is laid out like an upstream language folder: a state in
     * embeddings/<builtin>.safetensors serves that built-in name offline (used below) */
    char emb[700];
    snprintf(emb, sizeof emb, "%s/embeddings", tmp);
    mkdir(emb, 0755);
    snprintf(emb, sizeof emb, "%s/embeddings/alba.safetensors", tmp);
    if (!rc) rc = pke_export_voice(e, "v", emb, err, sizeof err);
    /* TTFA with the cached voice */
    double *tt = calloc((size_t)runs * (2 + 2 * PKE_MARK_N), sizeof *tt), *tc = tt + runs, *ts = tc + runs;
    double *tsc = ts + (size_t)runs * PKE_MARK_N;
    r.text = TEXT;
    for (int i = 0; !rc && i < runs; i++) {
        clock_sink d = {0};
        d.stop_after = 1;
        memset(&mk, 0, sizeof mk);
        d.c0 = cpu_ms();
        d.t0 = now_ms();
        int k = eng_synth(e, &r, sink, &d, err, sizeof err);
        if (k != ERR_CANCEL) rc = k ? k : -1;
        tt[i] = d.first;
        tc[i] = d.first_cpu;
        double prev = d.t0, prevc = d.c0;
        for (int s = 0; s < PKE_MARK_N; s++) {
            double t = mk.t[s] > 0 ? mk.t[s] : prev, tc_ = mk.t[s] > 0 ? mk.c[s] : prevc; /* not marked: no time */
            ts[(size_t)s * runs + i] = t - prev;
            tsc[(size_t)s * runs + i] = tc_ - prevc;
            prev = t, prevc = tc_;
        }
    }
    if (!rc) {
        res->ttfa = median(tt, runs), res->ttfa_cpu = median(tc, runs);
        for (int s = 0; s < PKE_MARK_N; s++) {
            res->stage[s] = median(ts + (size_t)s * runs, runs);
            res->stage_cpu[s] = median(tsc + (size_t)s * runs, runs);
        }
    }
    free(tt);
    eng_free(e);
    if (rc) {
        fprintf(stderr, "pocket-engine-bench: %s: %s\n", cf->label, err);
        return 1;
    }
    res->ok = 1;
    if (cf->ttfa_only) return 0;
    /* full request, forced to upstream's maximum length */
    o.frames_after_eos = 100000;
    o.mark = NULL;
    r.voice = "alba"; /* from embeddings/ (see above) */
    clock_sink f = {0};
    tcpu th0, th1;
    f.th0 = &th0, f.th1 = &th1;
    rc = pke_new(&e, &o, err, sizeof err);
    if (!rc) {
        f.c0 = cpu_ms();
        f.t0 = now_ms();
        f.stop_after = 125; /* upstream's workload: exactly 125 frames (10 s of audio) */
        rc = eng_synth(e, &r, sink, &f, err, sizeof err);
        if (rc == ERR_CANCEL && f.frames == 125) rc = 0;
        f.c0 = cpu_ms() - f.c0;
        eng_free(e);
    }
    if (rc) {
        fprintf(stderr, "pocket-engine-bench: %s: %s\n", cf->label, err);
        return 1;
    }
    double total_s = (f.last - f.t0) / 1e3;
    res->frames = f.frames;
    res->fps = f.frames / total_s;
    res->steady = f.frames > 2 ? (f.frames - 2) / ((f.last - f.second) / 1e3) : res->fps;
    res->cpu_frame = f.c0 / f.frames;
    res->peak = status_kb("VmHWM:") / 1024;
    res->full = 1;
    /* frames 2..125 by thread: the FlowLM caller (the main thread here), pool workers, Mimi */
    size_t k = 0;
    for (int i = 0; i < th1.n && f.frames > 1; i++) {
        double before = 0;
        for (int j = 0; j < th0.n; j++)
            if (th0.tid[j] == th1.tid[i]) before = th0.ms[j];
        double per = (th1.ms[i] - before) / (f.frames - 1);
        const char *nm = th1.tid[i] == (int)getpid() ? "main" : th1.name[i];
        if (per >= 0.05 && k < sizeof res->threads)
            k += (size_t)snprintf(res->threads + k, sizeof res->threads - k, "%s%s %.1f", k ? ", " : "", nm, per);
    }
    return 0;
}

/* "default" or THREADS + letters (see the top of the file) */
static int parse_conf(const char *c, size_t n, bconf *cf)
{
    memset(cf, 0, sizeof *cf);
    snprintf(cf->label, sizeof cf->label, "%.*s", (int)(n < 15 ? n : 15), c);
    const char *x = c;
    if (n >= 7 && !strncmp(c, "default", 7)) { /* "default" or "defaultt" (TTFA only) */
        cf->dflt = 1;
        for (x += 7; x < c + n; x++)
            if (*x == 't') cf->ttfa_only = 1;
            else return -1;
        return 0;
    }
    cf->threads = atoi(c);
    while (x < c + n && *x >= '0' && *x <= '9') x++;
    cf->pipe = 1;
    for (; x < c + n; x++) {
        if (*x == 's') cf->pipe = 0;
        else if (*x == 'b') cf->bf16 = 1;
        else if (*x == 't') cf->ttfa_only = 1;
        else if (*x == 'h') cf->huge = 1;
        else if (*x == 'q') cf->q8 = 1;
        else if (*x != 'p') return -1;
    }
    return cf->threads >= 1 && cf->threads <= 16 ? 0 : -1;
}

static const char *met(int ok) { return ok ? "met" : "NOT met"; }

int main(int argc, char **argv)
{
    cpuenv_fix_openblas(argv); /* same OpenBLAS kernels as the server */
    const char *dir = argc > 1 ? argv[1] : "../shared/reference/pocket-tts";
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    const char *configs = argc > 3 ? argv[3] : "default,1pb,2pb,1pq,2pq";
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
        enum { MAXC = 16 };
        bconf cf[MAXC];
        bresult rs[MAXC];
        memset(rs, 0, sizeof rs);
        int nc = 0;
        for (const char *c = configs; *c && nc < MAXC;) {
            size_t n = strcspn(c, ",");
            if (parse_conf(c, n, &cf[nc])) {
                fprintf(stderr, "pocket-engine-bench: bad configuration '%.*s'\n", (int)n, c);
                rc = 1;
                break;
            }
            nc++;
            c += n + (c[n] == ',');
        }
        for (int i = 0; !rc && i < nc; i++) {
            rc = bench_one(tmp, &cf[i], runs, &rs[i]);
            fflush(stdout);
        }
        printf("\n  %-8s %10s %9s %9s %9s %7s %9s %9s %9s %11s %7s %9s %8s\n", "config", "startup ms", "clone ms",
               "TTFA ms", "TTFA cpu", "frames", "frames/s", "steady/s", "realtime", "cpu ms/frame", "RSS MB",
               "load peak", "peak MB");
        for (int i = 0; i < nc && rs[i].ok; i++) {
            const bresult *x = &rs[i];
            printf("  %-8s %10.0f %9.0f %9.1f %9.1f", cf[i].label, x->startup, x->clone, x->ttfa, x->ttfa_cpu);
            if (x->full)
                printf(" %7d %9.2f %9.2f %8.2fx %11.1f %7ld %9ld %8ld\n", x->frames, x->fps, x->steady, x->fps / 12.5,
                       x->cpu_frame, x->rss, x->peak_load, x->peak);
            else
                printf("   (TTFA only)%*s %7ld %9ld\n", 44, "", x->rss, x->peak_load);
        }
        printf("\n  TTFA by stage (ms since the previous mark, median of %d; wall / process CPU; "
               "'prompt' includes step 0 unless PKEB_STEP_APART=1):\n  %-8s", runs, "config");
        for (int s = 0; s < PKE_MARK_N; s++) printf(" %13s", STAGE_NAMES[s]);
        printf("\n");
        for (int i = 0; i < nc && rs[i].ok; i++) {
            printf("  %-8s", cf[i].label);
            for (int s = 0; s < PKE_MARK_N; s++) printf("   %5.1f/%5.1f", rs[i].stage[s], rs[i].stage_cpu[s]);
            printf("\n");
        }
        printf("\n  steady-state CPU ms per frame by thread (frames 2..125; 'main' = the synth() caller, "
               "the FlowLM; the engine's own threads are named):\n");
        for (int i = 0; i < nc && rs[i].ok; i++)
            if (rs[i].full) printf("  %-8s %s\n", cf[i].label, rs[i].threads);
        printf("\n  load average now: %s\n", loadavg());
        printf("  upstream PyTorch (README, idle, OpenBLAS 1 thread = its best): startup 1390 ms, clone 10 s 2700 ms, "
               "TTFA 256 ms, 13.16 frames/s (1.05x real time), peak RSS 1130 MB\n");
        printf("  targets (issue 5): TTFA < 50 ms, >= 52.6 frames/s (4x upstream) with 1 and 2 threads, peak RSS < 377 MB, "
               "startup < 1000 ms\n");
        for (int i = 0; i < nc && rs[i].ok; i++) {
            const bresult *x = &rs[i];
            printf("  %-8s TTFA %s, startup %s", cf[i].label, met(x->ttfa < 50), met(x->startup < 1000));
            if (x->full)
                printf(", frames/s %s, peak RSS %s", met(x->fps >= 52.6), met(x->peak < 377));
            printf("\n");
        }
    }
    snprintf(q, sizeof q, "rm -rf '%s'", tmp);
    if (system(q)) {
    }
    return rc ? 1 : 0;
}
