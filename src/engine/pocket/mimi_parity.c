/* mimi_parity.c — Mimi parity rows (see mimi_parity.h), plus pkp_mimi_rows(), the hook
 * the pocket-parity tool calls per scenario. Encoder pieces arrive through the tap frame by
 * frame and are assembled into whole tensors shaped like the golden ones before comparing;
 * decoder pieces are compared as they come (one frame per call). Prints only through the
 * report's FILE.
 */
#include "engine/pocket/mimi_parity.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "engine/pocket/pkconfig.h"

#define TOL_FRONT MIMI_PARITY_TOL_FRONT
#define TOL MIMI_PARITY_TOL
#define MAX_ACC 64

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

static int run_decoder(pkp_report *rep, const mimi *m, const st_file *g, const char *gname,
                       char *err, size_t errlen)
{
    char key[128];
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
    int rc = mimi_dec_new(&d, m, err, errlen);
    if (rc) return rc;
    int fs = mimi_frame_samples(m), ld = mimi_ldim(m);
    float *audio = malloc((size_t)nf * fs * sizeof(float));
    if (!audio) {
        mimi_dec_free(d);
        return err_set(err, errlen, ERR_NOMEM, "out of memory");
    }
    dec_ctx c = {.rep = rep, .g = g};
    mimi_dec_set_tap(d, dec_tap, &c);
    pkp_note(rep, "%s: Mimi decoder, %d frames streamed one by one", gname, nf);
    for (int f = 0; f < nf && !rc; f++) {
        float *z;
        size_t n;
        snprintf(key, sizeof key, "dec%03d/mimi.quantizer.in", f);
        if ((rc = pkp_load(g, key, &z, &n, err, errlen))) break;
        if ((int)n != ld) {
            free(z);
            rc = err_set(err, errlen, ERR_FORMAT, "%s has %zu values, latent dim is %d", key, n, ld);
            break;
        }
        snprintf(c.phase, sizeof c.phase, "dec%03d/mimi.", f);
        rc = mimi_dec_frame(d, z, audio + (size_t)f * fs, err, errlen);
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

static int run_encoder(pkp_report *rep, const mimi *m, const st_file *g, const char *gname,
                       char *err, size_t errlen)
{
    float *pcm;
    size_t n;
    if (!st_find(g, "voice/audio_in")) return 0;
    int rc = pkp_load(g, "voice/audio_in", &pcm, &n, err, errlen);
    if (rc) return rc;
    enc_ctx c = {.g = g};
    float *lat;
    int F;
    rc = mimi_encode(m, pcm, n, &lat, &F, enc_tap, &c, err, errlen);
    free(pcm);
    if (rc) {
        for (int i = 0; i < c.na; i++) free(c.a[i].buf);
        return rc;
    }
    pkp_note(rep, "%s: Mimi encoder on voice/audio_in (%zu samples -> %d latent frames)", gname, n, F);
    for (int i = 0; i < c.na; i++) {
        pkp_check(rep, g, c.a[i].name, c.a[i].buf, c.a[i].n, TOL);
        free(c.a[i].buf);
    }
    int ld = mimi_ldim(m);
    float *t = malloc((size_t)F * ld * sizeof(float));
    if (!t) {
        free(lat);
        return err_set(err, errlen, ERR_NOMEM, "out of memory");
    }
    for (int f = 0; f < F; f++)
        for (int i = 0; i < ld; i++) t[(size_t)i * F + f] = lat[(size_t)f * ld + i];
    pkp_check(rep, g, "voice/mimi.latent", t, (size_t)F * ld, TOL);
    free(t);
    free(lat);
    return 0;
}


int mimi_parity_rows(pkp_report *r, const mimi_config *cfg, const st_file *weights,
                     const st_file *golden, const char *gname, char *err, size_t errlen)
{
    int parts = MIMI_DECODER | (st_find(golden, "voice/audio_in") ? MIMI_ENCODER : 0);
    mimi *m;
    int rc = mimi_open(&m, weights, "mimi.", "flow_lm.", cfg, parts, err, errlen);
    if (rc) return rc;
    if (parts & MIMI_ENCODER) rc = run_encoder(r, m, golden, gname, err, errlen);
    if (!rc) rc = run_decoder(r, m, golden, gname, err, errlen);
    mimi_free(m);
    return rc;
}

/* Hook for src/tools/pocket-parity.c (declared there). */
int pkp_mimi_rows(pkp_report *r, const pk_config *cfg, const st_file *weights, const st_file *golden,
                  const char *dir, const char *scenario);
int pkp_mimi_rows(pkp_report *r, const pk_config *cfg, const st_file *weights, const st_file *golden,
                  const char *dir, const char *scenario)
{
    char err[256];
    mimi_config mc;
    mimi_config_from_pk(&mc, cfg);
    int rc = mimi_parity_rows(r, &mc, weights, golden, scenario, err, sizeof err);
    if (rc) pkp_note(r, "mimi rows (%s): %s", scenario, err);
    return rc;
}
