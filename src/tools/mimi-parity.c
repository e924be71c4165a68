/* mimi-parity — Mimi codec parity against upstream golden tensors.
 *
 *   mimi-parity DIR      (DIR laid out like ../shared/reference/pocket-tts)
 *
 * Reads DIR/tiny_config.resolved.json (dimensions), DIR/tiny_model.safetensors (weights),
 * and every golden_*.safetensors it knows (golden_A, golden_B). Decoder: for each
 * decNNN it feeds decNNN/mimi.quantizer.in into one streaming decoder and compares every
 * boundary the golden recorded (quantizer, upsample, transformer layers, SEANet stages,
 * frame audio), the streaming state after frame 0 (dec000/mimi_state_after/...), and the
 * concatenated audio against final/audio. Encoder (golden_A only): encodes voice/audio_in
 * and compares every encoder boundary and voice/mimi.latent. One row per boundary; exits
 * 1 if any row is past its tolerance (relative to the tensor's max |ref|, see pkparity.h).
 *
 * Tolerances: see mimi_parity.h (1e-5 relative for quantizer/upsample, 1e-4 for the rest).
 * `mimi-parity --bench DIR [FRAMES [bf16|q8] [sbf16] [dec]]` (dec: decoder on 1 thread only;
 * sbf16: mimi_set_seanet_bf16; bf16/q8: mimi_set_dec_dtype, plus the
 * error of that mode against exact F32 on the same latents) instead times the decoder (ms
 * per 80 ms frame) and the encoder (10 s prompt) at english_2026-04 size with random
 * weights built in memory from DIR/layout-english_2026-04.json, with 1 and 2 OpenBLAS
 * threads (wall and process CPU time; on a loaded machine the CPU figure for 1 thread is
 * the stable one). Note: OpenBLAS 0.3.21 may not identify a virtual CPU and fall back to
 * its SSE3 "Prescott" kernels; like the server, the tool sets OPENBLAS_CORETYPE itself
 * (core/cpuenv.h) unless it is already set. MIMI_PROFILE=1 adds per-module thread CPU
 * time (1 thread, via the tap).
 * Also reports our soxr resampler against golden_resample.safetensors (upstream's
 * scipy resample_poly 160/147): different filters, so only a loose bound is enforced.
 */
#include <cJSON.h>
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpuenv.h"
#include "core/err.h"
#include "engine/pocket/mimi.h"
#include "engine/pocket/mimi_parity.h"
#include "engine/pocket/pkconfig.h"
#include "engine/pocket/pkparity.h"
#include "audio/resample.h"
#include "model/safetensors.h"

static char *read_text(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    if (n < 0 || n > (1 << 24)) {
        fclose(fp);
        return NULL;
    }
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, fp) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s) s[n] = 0;
    fclose(fp);
    return s;
}

/* soxr (our resampler) against upstream's scipy resample_poly(160, 147): reported, with a
 * loose bound that only catches gross errors (different filters cannot agree to 1e-4). */
#define TOL_RESAMPLE 5e-2

/* How much the resampler choice moves the voice latents: encode the scipy output and ours. */
static void resample_latent_note(pkp_report *rep, const mimi *m, const float *ref, const float *out, size_t n)
{
    char err[256];
    float *la = NULL, *lb = NULL;
    int fa, fb;
    if (!mimi_encode(m, ref, n, &la, &fa, NULL, NULL, err, sizeof err) &&
        !mimi_encode(m, out, n, &lb, &fb, NULL, NULL, err, sizeof err) && fa == fb) {
        pkp_err e = pkp_diff(la, lb, (size_t)fa * mimi_ldim(m));
        pkp_note(rep, "voice latents of the 1 s clip, soxr- vs scipy-resampled: abs %.3e rel %.3e (info)",
                 e.max_abs, e.rel);
    }
    free(la);
    free(lb);
}

static void resample_rows(pkp_report *rep, const char *dir, const mimi *enc)
{
    char path[1024], err[256];
    st_file *g;
    snprintf(path, sizeof path, "%s/golden_resample.safetensors", dir);
    if (st_open(&g, path, err, sizeof err)) {
        pkp_note(rep, "golden_resample: not readable (%s), skipped", err);
        return;
    }
    float *in = NULL, *ref = NULL, *out = NULL;
    size_t n, nref, nout;
    if (pkp_load(g, "input_22050", &in, &n, err, sizeof err) ||
        pkp_load(g, "output_24000", &ref, &nref, err, sizeof err) ||
        ars_oneshot(in, n, 22050, 24000, &out, &nout, err, sizeof err)) {
        pkp_note(rep, "golden_resample: %s", err);
        rep->fails++;
    } else {
        pkp_note(rep, "golden_resample: soxr 22050->24000 gave %zu samples, scipy %zu", nout, nref);
        if (nout != nref) rep->fails++;
        size_t m = nout < nref ? nout : nref, edge = 64;
        pkp_row(rep, "resample soxr vs scipy (all samples)", ref, out, m, TOL_RESAMPLE);
        if (m > 2 * edge) {
            pkp_err e = pkp_diff(ref + edge, out + edge, m - 2 * edge);
            double se = 0, sr = 0;
            for (size_t i = edge; i < m - edge; i++) {
                double dd = (double)out[i] - ref[i];
                se += dd * dd;
                sr += (double)ref[i] * ref[i];
            }
            pkp_note(rep, "resample soxr vs scipy, %zu edge samples excluded: abs %.3e rel %.3e, "
                          "rms err %.3e, SNR %.1f dB (info)",
                     edge, e.max_abs, e.rel, sqrt(se / (double)(m - 2 * edge)),
                     10.0 * log10(sr / (se > 0 ? se : 1e-300)));
        }
        if (enc) resample_latent_note(rep, enc, ref, out, m);
    }
    free(in);
    free(ref);
    free(out);
    st_close(g);
}

/* ---- --bench: full-size speed with random weights ------------------------------------ */

static uint64_t rng_s = 0x9e3779b97f4a7c15ull;
static double urand(void)
{
    rng_s ^= rng_s << 13;
    rng_s ^= rng_s >> 7;
    rng_s ^= rng_s << 17;
    return ((rng_s >> 11) + 0.5) / 9007199254740992.0;
}
static float nrand(void) { return (float)(sqrt(-2.0 * log(urand())) * cos(2.0 * M_PI * urand())); }

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Builds an in-memory safetensors blob with every mimi.* tensor of the layout (plus
 * flow_lm.emb_std/emb_mean), F32, values ~N(0, 1/fan_in) so activations stay O(1). */
static void *random_mimi_blob(const char *layout_json, size_t *len)
{
    cJSON *root = cJSON_Parse(layout_json);
    const cJSON *ts = root ? cJSON_GetObjectItemCaseSensitive(root, "tensors") : NULL;
    if (!cJSON_IsObject(ts)) {
        cJSON_Delete(root);
        return NULL;
    }
    cJSON *hdr = cJSON_CreateObject();
    size_t off = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, ts)
    {
        const char *nm = e->string;
        if (strncmp(nm, "mimi.", 5) && strcmp(nm, "flow_lm.emb_std") &&
            strcmp(nm, "flow_lm.emb_mean"))
            continue;
        size_t numel = 1;
        cJSON *shape = cJSON_CreateArray();
        const cJSON *d;
        cJSON_ArrayForEach(d, e)
        {
            numel *= (size_t)d->valuedouble;
            cJSON_AddItemToArray(shape, cJSON_CreateNumber(d->valuedouble));
        }
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "dtype", "F32");
        cJSON_AddItemToObject(t, "shape", shape);
        cJSON *offs = cJSON_CreateArray();
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + numel * 4)));
        cJSON_AddItemToObject(t, "data_offsets", offs);
        cJSON_AddItemToObject(hdr, nm, t);
        off += numel * 4;
    }
    char *h = cJSON_PrintUnformatted(hdr);
    size_t hn = strlen(h), pad = (8 - (8 + hn) % 8) % 8;
    *len = 8 + hn + pad + off;
    unsigned char *blob = malloc(*len);
    uint64_t hl = hn + pad;
    for (int i = 0; i < 8; i++) blob[i] = (unsigned char)(hl >> (8 * i));
    memcpy(blob + 8, h, hn);
    memset(blob + 8 + hn, ' ', pad);
    float *data = (float *)(blob + 8 + hn + pad);
    cJSON_ArrayForEach(e, ts)
    {
        const char *nm = e->string;
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(hdr, nm);
        if (!t) continue;
        const cJSON *o = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(t, "data_offsets"), 0);
        const cJSON *shape = cJSON_GetObjectItemCaseSensitive(t, "shape");
        size_t numel = 1, d0 = (size_t)cJSON_GetArrayItem(shape, 0)->valuedouble;
        const cJSON *d;
        cJSON_ArrayForEach(d, shape) numel *= (size_t)d->valuedouble;
        float *v = data + (size_t)o->valuedouble / 4;
        int nd = cJSON_GetArraySize(shape);
        if (strstr(nm, "layer_scale")) {
            for (size_t i = 0; i < numel; i++) v[i] = 0.01f;
        } else if (strstr(nm, "emb_std") || (strstr(nm, "norm") && strstr(nm, ".weight"))) {
            for (size_t i = 0; i < numel; i++) v[i] = 1.0f;
        } else if (nd == 1) {
            for (size_t i = 0; i < numel; i++) v[i] = 0.02f * nrand();
        } else {
            float sd = (float)(1.0 / sqrt((double)(numel / d0)));
            for (size_t i = 0; i < numel; i++) v[i] = sd * nrand();
        }
    }
    free(h);
    cJSON_Delete(hdr);
    cJSON_Delete(root);
    return blob;
}

/* Per-boundary thread CPU time (the tap fires after each module; the time since the
 * previous tap is charged to the module that just finished). */
#define PROF_MAX 96
typedef struct prof {
    int n;
    double last;
    char name[PROF_MAX][96];
    double ms[PROF_MAX];
} prof;

static double thr_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void prof_tap(void *user, const char *name, const float *x, int rows, int cols, int tm,
                     int t0)
{
    (void)x, (void)rows, (void)cols, (void)tm, (void)t0;
    prof *p = user;
    double now = thr_ms();
    int i = 0;
    while (i < p->n && strcmp(p->name[i], name)) i++;
    if (i == p->n && p->n < PROF_MAX) snprintf(p->name[p->n++], sizeof p->name[0], "%s", name);
    if (i < PROF_MAX) p->ms[i] += now - p->last;
    p->last = thr_ms();
}

/* Reduced weight mode vs exact on the same random latents (streamed, frame by frame):
 * max |pcm - ref| / max |ref| and rms(pcm - ref) / rms(ref) over `frames` frames. */
static void reduced_error(const st_file *w, const mimi_config *cfg, const mimi *m, int frames)
{
    char err[256];
    mimi *ex;
    mimi_dec *da = NULL, *db = NULL;
    if (mimi_open(&ex, w, "mimi.", "flow_lm.", cfg, MIMI_DECODER, err, sizeof err)) return;
    int fs = mimi_frame_samples(m), ld = mimi_ldim(m);
    float *z = malloc((size_t)ld * sizeof(float)), *pa = malloc((size_t)fs * sizeof(float)),
          *pb = malloc((size_t)fs * sizeof(float));
    double mx = 0, md = 0, s2 = 0, d2 = 0;
    if (z && pa && pb && !mimi_dec_new(&da, m, err, sizeof err) && !mimi_dec_new(&db, ex, err, sizeof err)) {
        for (int f = 0; f < frames; f++) {
            for (int i = 0; i < ld; i++) z[i] = nrand();
            if (mimi_dec_frame(da, z, pa, err, sizeof err) || mimi_dec_frame(db, z, pb, err, sizeof err)) break;
            for (int i = 0; i < fs; i++) {
                double r = pb[i], e = (double)pa[i] - r;
                mx = fabs(r) > mx ? fabs(r) : mx;
                md = fabs(e) > md ? fabs(e) : md;
                s2 += r * r;
                d2 += e * e;
            }
        }
        printf("reduced mode vs exact F32, %d frames streamed: max rel %.3e, rms rel %.3e\n", frames,
               mx > 0 ? md / mx : 0.0, s2 > 0 ? sqrt(d2 / s2) : 0.0);
    }
    mimi_dec_free(da);
    mimi_dec_free(db);
    free(z);
    free(pa);
    free(pb);
    mimi_free(ex);
}

static int bench(const char *dir, int frames, nn_dtype dt, int dec_only, int sbf16)
{
    char path[1024], err[256];
    snprintf(path, sizeof path, "%s/layout-english_2026-04.json", dir);
    char *layout = read_text(path);
    if (!layout) {
        fprintf(stderr, "mimi-parity: cannot read %s\n", path);
        return 2;
    }
    size_t len;
    void *blob = random_mimi_blob(layout, &len);
    free(layout);
    st_file *w;
    if (!blob || st_open_mem(&w, blob, len, err, sizeof err)) {
        fprintf(stderr, "mimi-parity: random checkpoint: %s\n", blob ? err : "bad layout");
        free(blob);
        return 2;
    }
    mimi_config cfg;
    mimi_config_english(&cfg);
    mimi *m;
    if (mimi_open(&m, w, "mimi.", "flow_lm.", &cfg, MIMI_DECODER | MIMI_ENCODER, err, sizeof err)) {
        fprintf(stderr, "mimi-parity: %s\n", err);
        st_close(w);
        free(blob);
        return 2;
    }
    if (mimi_set_dec_dtype(m, dt, err, sizeof err)) {
        fprintf(stderr, "mimi-parity: %s\n", err);
        mimi_free(m);
        st_close(w);
        free(blob);
        return 2;
    }
    if (sbf16 && mimi_set_seanet_bf16(m, err, sizeof err)) {
        fprintf(stderr, "mimi-parity: %s\n", err);
        mimi_free(m);
        st_close(w);
        free(blob);
        return 2;
    }
    if (dt != NN_F32 || sbf16) reduced_error(w, &cfg, m, frames);
    int fs = mimi_frame_samples(m), ld = mimi_ldim(m);
    float *z = malloc((size_t)ld * sizeof(float)), *pcm = malloc((size_t)fs * sizeof(float));
    double *ms = malloc((size_t)frames * sizeof(double));
    printf("Mimi english_2026-04 size, random weights, %d frames (80 ms each), OpenBLAS core %s\n",
           frames, openblas_get_corename());
    double *cms = malloc((size_t)frames * sizeof(double));
    for (int threads = 1; threads <= (dec_only ? 1 : 2); threads++) {
        openblas_set_num_threads(threads);
        mimi_dec *d;
        if (mimi_dec_new(&d, m, err, sizeof err)) break;
        double sum = 0, c0 = cpu_ms();
        for (int f = 0; f < frames; f++) {
            for (int i = 0; i < ld; i++) z[i] = nrand();
            double t0 = now_ms(), tc = thr_ms();
            mimi_dec_frame(d, z, pcm, err, sizeof err);
            ms[f] = now_ms() - t0;
            cms[f] = thr_ms() - tc;
            sum += ms[f];
        }
        double cpu = (cpu_ms() - c0) / frames, first = ms[0];
        qsort(cms, (size_t)frames, sizeof(double), cmp_dbl);
        if (threads == 1 && getenv("MIMI_PROFILE")) { /* per-module thread CPU, 1 thread */
            static prof p;
            memset(&p, 0, sizeof p);
            mimi_dec_set_tap(d, prof_tap, &p);
            for (int f = 0; f < frames; f++) {
                for (int i = 0; i < ld; i++) z[i] = nrand();
                p.last = thr_ms();
                mimi_dec_frame(d, z, pcm, err, sizeof err);
            }
            mimi_dec_set_tap(d, NULL, NULL);
            for (int i = 0; i < p.n; i++)
                if (p.ms[i] / frames >= 0.05)
                    printf("  prof %-48s %6.2f ms/frame\n", p.name[i], p.ms[i] / frames);
        }
        qsort(ms, (size_t)frames, sizeof(double), cmp_dbl);
        printf("decode  threads=%d  wall: first %.2f ms  median %.2f ms  p90 %.2f ms  mean %.2f ms/frame"
               " (RTF %.3f);  cpu %.2f ms/frame (thread cpu median %.2f)\n", threads, first, ms[frames / 2],
               ms[frames * 9 / 10], sum / frames, sum / frames / 80.0, cpu, cms[frames / 2]);
        mimi_dec_free(d);
        /* the same frames 4 per call (decoder catching up behind the FlowLM) */
        float *z4 = malloc((size_t)4 * ld * sizeof(float)), *p4 = malloc((size_t)4 * fs * sizeof(float));
        if (z4 && p4 && !mimi_dec_new_batch(&d, m, 4, err, sizeof err)) {
            double c4 = cpu_ms(), w4 = now_ms();
            int calls = frames / 4 > 0 ? frames / 4 : 1;
            for (int f = 0; f < calls; f++) {
                for (int i = 0; i < 4 * ld; i++) z4[i] = nrand();
                mimi_dec_frames(d, z4, 4, p4, err, sizeof err);
            }
            printf("decode  threads=%d  4 frames per call: wall %.2f ms/frame, cpu %.2f ms/frame\n",
                   threads, (now_ms() - w4) / (4.0 * calls), (cpu_ms() - c4) / (4.0 * calls));
            mimi_dec_free(d);
            /* a 2-thread pool inside the decoder (first frame of a request, TTFA) */
            nn_pool *pool = NULL;
            if (!nn_pool_new(&pool, 2, err, sizeof err) && !mimi_dec_new(&d, m, err, sizeof err)) {
                mimi_dec_set_pool(d, pool);
                int nf = frames < 20 ? frames : 20;
                double c2 = cpu_ms();
                for (int f = 0; f < nf; f++) {
                    for (int i = 0; i < ld; i++) z[i] = nrand();
                    double t0 = now_ms();
                    mimi_dec_frame(d, z, pcm, err, sizeof err);
                    ms[f] = now_ms() - t0;
                }
                c2 = (cpu_ms() - c2) / nf;
                qsort(ms, (size_t)nf, sizeof(double), cmp_dbl);
                printf("decode  threads=%d  pool of 2 inside the decoder: wall median %.2f ms/frame, cpu %.2f ms/frame\n",
                       threads, ms[nf / 2], c2);
                mimi_dec_free(d);
            }
            nn_pool_free(pool);
            /* batch invariance at full size: 8 frames 4 per call vs one by one, bit for bit */
            mimi_dec *d1 = NULL;
            float *z8 = malloc((size_t)8 * ld * sizeof(float)), *a8 = malloc((size_t)8 * fs * sizeof(float)),
                  *b8 = malloc((size_t)8 * fs * sizeof(float));
            if (z8 && a8 && b8 && !mimi_dec_new_batch(&d, m, 4, err, sizeof err) &&
                !mimi_dec_new(&d1, m, err, sizeof err)) {
                for (int i = 0; i < 8 * ld; i++) z8[i] = nrand();
                for (int f = 0; f < 8; f++) mimi_dec_frame(d1, z8 + (size_t)f * ld, a8 + (size_t)f * fs, err, sizeof err);
                mimi_dec_frames(d, z8, 4, b8, err, sizeof err);
                mimi_dec_frames(d, z8 + (size_t)4 * ld, 4, b8 + (size_t)4 * fs, err, sizeof err);
                size_t ndiff = 0;
                double md = 0;
                for (size_t i = 0; i < (size_t)8 * fs; i++)
                    if (memcmp(&a8[i], &b8[i], sizeof(float))) {
                        ndiff++;
                        md = fmax(md, fabs((double)a8[i] - b8[i]));
                    }
                printf("decode  threads=%d  8 frames, 4 per call vs 1 per call: %s (%zu of %d samples differ, max %.3g)\n",
                       threads, ndiff ? "NOT bit-identical" : "bit-identical", ndiff, 8 * fs, md);
            }
            mimi_dec_free(d);
            mimi_dec_free(d1);
            free(z8);
            free(a8);
            free(b8);
        }
        free(z4);
        free(p4);
        if (dec_only) break;
        size_t n = (size_t)mimi_sample_rate(m) * 10;
        float *au = malloc(n * sizeof(float)), *lat;
        int F;
        for (size_t i = 0; i < n; i++) au[i] = 0.3f * sinf((float)i * 0.05f) + 0.01f * nrand();
        double t0 = now_ms(), ce = cpu_ms();
        int rc = mimi_encode(m, au, n, &lat, &F, NULL, NULL, err, sizeof err);
        double te = now_ms() - t0;
        ce = cpu_ms() - ce;
        if (!rc) {
            printf("encode  threads=%d  10 s prompt -> %d latents: wall %.1f ms, cpu %.1f ms\n",
                   threads, F, te, ce);
            free(lat);
        }
        free(au);
    }
    free(z);
    free(pcm);
    free(ms);
    free(cms);
    mimi_free(m);
    st_close(w);
    free(blob);
    return 0;
}

int main(int argc, char **argv)
{
    cpuenv_fix_openblas(argv); /* same OpenBLAS kernels as the server */
    if (argc >= 3 && !strcmp(argv[1], "--bench")) {
        nn_dtype dt = NN_F32;
        int dec_only = 0, sbf16 = 0;
        for (int i = 4; i < argc; i++) {
            if (!strcmp(argv[i], "bf16")) dt = NN_BF16;
            else if (!strcmp(argv[i], "q8")) dt = NN_Q8;
            else if (!strcmp(argv[i], "dec")) dec_only = 1;
            else if (!strcmp(argv[i], "sbf16")) sbf16 = 1;
        }
        return bench(argv[2], argc >= 4 ? atoi(argv[3]) > 0 ? atoi(argv[3]) : 50 : 50, dt, dec_only, sbf16);
    }
    if (argc != 2) {
        fprintf(stderr,
                "usage: %s DIR          parity (DIR laid out like shared/reference/pocket-tts)\n"
                "       %s --bench DIR [FRAMES [bf16|q8] [sbf16] [dec]]   full-size speed, random weights\n"
                "                                   (dec: 1-thread decode only)\n",
                argv[0], argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    char path[1024], err[256];
    snprintf(path, sizeof path, "%s/tiny_config.resolved.json", dir);
    pk_config pc;
    if (pk_config_load_json(&pc, path, err, sizeof err)) {
        fprintf(stderr, "mimi-parity: %s: %s\n", path, err);
        return 2;
    }
    mimi_config cfg;
    mimi_config_from_pk(&cfg, &pc);
    st_file *w;
    snprintf(path, sizeof path, "%s/tiny_model.safetensors", dir);
    if (st_open(&w, path, err, sizeof err)) {
        fprintf(stderr, "mimi-parity: %s\n", err);
        return 2;
    }
    pkp_report rep = {.out = stdout};
    int bad = 0;
    static const char *goldens[] = {"golden_A", "golden_B"};
    for (size_t i = 0; i < sizeof goldens / sizeof goldens[0]; i++) {
        st_file *g;
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, goldens[i]);
        if (st_open(&g, path, err, sizeof err)) {
            pkp_note(&rep, "%s: not readable (%s), skipped", goldens[i], err);
            continue;
        }
        if (mimi_parity_rows(&rep, &cfg, w, g, goldens[i], err, sizeof err)) {
            fprintf(stderr, "mimi-parity: %s: %s\n", goldens[i], err);
            bad = 1;
        }
        st_close(g);
    }
    mimi *enc = NULL;
    if (mimi_open(&enc, w, "mimi.", NULL, &cfg, MIMI_ENCODER, err, sizeof err)) enc = NULL;
    resample_rows(&rep, dir, enc);
    mimi_free(enc);
    int rc = pkp_summary(&rep);
    st_close(w);
    return bad ? 2 : rc;
}
