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
 * Tolerances (float32 against torch float32; upstream's own BLAS-to-BLAS spread is
 * ~1.3e-6 relative): 1e-5 for the linear front (quantizer, upsample), 1e-4 for
 * everything after the transformer, the encoder and the states.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "engine/pocket/mimi.h"
#include "engine/pocket/pkparity.h"
#include "model/safetensors.h"

#define TOL_FRONT 1e-5
#define TOL 1e-4
#define MAX_ACC 64

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

typedef struct dec_ctx {
    pkp_report *rep;
    const st_file *g;
    char phase[64]; /* "dec003/mimi." or "dec000/mimi_state_after/" */
    int quiet_missing;
} dec_ctx;

static double tol_for(const char *name)
{
    if (!strncmp(name, "quantizer.", 10) || !strncmp(name, "upsample.", 9)) return TOL_FRONT;
    return TOL;
}

/* Decoder tap: compare the piece with the golden tensor of the same name, if recorded. */
static void dec_tap(void *user, const char *name, const float *x, int rows, int cols, int tm, int t0)
{
    dec_ctx *c = user;
    char full[256];
    snprintf(full, sizeof full, "%s%s", c->phase, name);
    if (!st_find(c->g, full)) return; /* upstream recorded only some frames */
    size_t n = (size_t)rows * cols;
    if (n == 0) return;
    pkp_check(c->rep, c->g, full, x, n, tol_for(name));
}

static int run_decoder(pkp_report *rep, const mimi *m, const st_file *g, const char *gname)
{
    char err[256], key[128];
    int nf = 0;
    for (;; nf++) {
        snprintf(key, sizeof key, "dec%03d/mimi.quantizer.in", nf);
        if (!st_find(g, key)) break;
    }
    if (nf == 0) {
        pkp_note(rep, "%s: no decNNN frames", gname);
        return 0;
    }
    mimi_dec *d;
    if (mimi_dec_new(&d, m, err, sizeof err)) {
        fprintf(stderr, "mimi-parity: %s\n", err);
        return -1;
    }
    int fs = mimi_frame_samples(m), ld = mimi_ldim(m);
    float *audio = malloc((size_t)nf * fs * sizeof(float));
    dec_ctx c = {.rep = rep, .g = g};
    mimi_dec_set_tap(d, dec_tap, &c);
    pkp_note(rep, "%s: Mimi decoder, %d frames streamed one by one", gname, nf);
    int rc = 0;
    for (int f = 0; f < nf && !rc; f++) {
        float *z;
        size_t n;
        snprintf(key, sizeof key, "dec%03d/mimi.quantizer.in", f);
        if (pkp_load(g, key, &z, &n, err, sizeof err) || (int)n != ld) {
            fprintf(stderr, "mimi-parity: %s: %s\n", key, err);
            rc = -1;
            break;
        }
        snprintf(c.phase, sizeof c.phase, "dec%03d/mimi.", f);
        if (mimi_dec_frame(d, z, audio + (size_t)f * fs, err, sizeof err)) {
            fprintf(stderr, "mimi-parity: frame %d: %s\n", f, err);
            rc = -1;
        }
        free(z);
        if (f == 0 && !rc) {
            snprintf(c.phase, sizeof c.phase, "dec000/mimi_state_after/");
            mimi_dec_dump_state(d);
        }
    }
    if (!rc) {
        if (st_find(g, "final/audio")) pkp_check(rep, g, "final/audio", audio, (size_t)nf * fs, TOL);
        else pkp_note(rep, "%s: no final/audio", gname);
    }
    free(audio);
    mimi_dec_free(d);
    return rc;
}

/* Encoder tap: assemble pieces into whole tensors shaped like the golden ones. */
typedef struct acc {
    char name[160];
    float *buf;
    size_t n;
    int tm;
    int64_t C, T; /* channels, total time */
} acc;

typedef struct enc_ctx {
    const st_file *g;
    acc a[MAX_ACC];
    int na;
} enc_ctx;

static void enc_tap(void *user, const char *name, const float *x, int rows, int cols, int tm, int t0)
{
    enc_ctx *c = user;
    char full[160];
    snprintf(full, sizeof full, "voice/mimi.%s", name);
    acc *a = NULL;
    for (int i = 0; i < c->na; i++)
        if (!strcmp(c->a[i].name, full)) a = &c->a[i];
    if (!a) {
        const st_tensor *t = st_find(c->g, full);
        if (!t || t->ndim != 3 || c->na == MAX_ACC) return;
        a = &c->a[c->na++];
        snprintf(a->name, sizeof a->name, "%s", full);
        a->tm = tm;
        a->C = tm ? t->shape[2] : t->shape[1];
        a->T = tm ? t->shape[1] : t->shape[2];
        a->n = (size_t)t->numel;
        a->buf = calloc(a->n + 1, sizeof(float));
    }
    if (!a->buf) return;
    int C = tm ? cols : rows, T = tm ? rows : cols;
    if (C != a->C || t0 + T > a->T) return; /* shape mismatch: the row will show it */
    for (int ch = 0; ch < C; ch++)
        for (int t = 0; t < T; t++) {
            float v = tm ? x[(size_t)t * C + ch] : x[(size_t)ch * T + t];
            size_t o = tm ? (size_t)(t0 + t) * C + ch : (size_t)ch * a->T + t0 + t;
            a->buf[o] = v;
        }
}

static int run_encoder(pkp_report *rep, const mimi *m, const st_file *g)
{
    char err[256];
    float *pcm;
    size_t n;
    if (!st_find(g, "voice/audio_in")) return 0;
    if (pkp_load(g, "voice/audio_in", &pcm, &n, err, sizeof err)) {
        fprintf(stderr, "mimi-parity: %s\n", err);
        return -1;
    }
    enc_ctx c = {.g = g};
    float *lat;
    int F;
    int rc = mimi_encode(m, pcm, n, &lat, &F, enc_tap, &c, err, sizeof err);
    free(pcm);
    if (rc) {
        fprintf(stderr, "mimi-parity: encode: %s\n", err);
        return -1;
    }
    pkp_note(rep, "golden_A: Mimi encoder on voice/audio_in (%zu samples -> %d latent frames)", n, F);
    for (int i = 0; i < c.na; i++) {
        pkp_check(rep, g, c.a[i].name, c.a[i].buf, c.a[i].n, TOL);
        free(c.a[i].buf);
    }
    int ld = mimi_ldim(m);
    float *t = malloc((size_t)F * ld * sizeof(float));
    for (int f = 0; f < F; f++)
        for (int i = 0; i < ld; i++) t[(size_t)i * F + f] = lat[(size_t)f * ld + i];
    pkp_check(rep, g, "voice/mimi.latent", t, (size_t)F * ld, TOL);
    free(t);
    free(lat);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR   (a folder laid out like shared/reference/pocket-tts)\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    char path[1024], err[256];
    snprintf(path, sizeof path, "%s/tiny_config.resolved.json", dir);
    char *json = read_text(path);
    if (!json) {
        fprintf(stderr, "mimi-parity: cannot read %s\n", path);
        return 2;
    }
    mimi_config cfg;
    if (mimi_config_parse(&cfg, json, err, sizeof err)) {
        fprintf(stderr, "mimi-parity: %s: %s\n", path, err);
        free(json);
        return 2;
    }
    free(json);
    st_file *w;
    snprintf(path, sizeof path, "%s/tiny_model.safetensors", dir);
    if (st_open(&w, path, err, sizeof err)) {
        fprintf(stderr, "mimi-parity: %s\n", err);
        return 2;
    }
    mimi *m;
    if (mimi_open(&m, w, "mimi.", "flow_lm.", &cfg, MIMI_DECODER | MIMI_ENCODER, err, sizeof err)) {
        fprintf(stderr, "mimi-parity: %s: %s\n", path, err);
        st_close(w);
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
        if (!strcmp(goldens[i], "golden_A") && run_encoder(&rep, m, g)) bad = 1;
        if (run_decoder(&rep, m, g, goldens[i])) bad = 1;
        st_close(g);
    }
    int rc = pkp_summary(&rep);
    mimi_free(m);
    st_close(w);
    return bad ? 2 : rc;
}
