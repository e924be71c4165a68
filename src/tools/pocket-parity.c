/* pocket-parity — runs our pocket-tts code on a folder laid out like
 * ../shared/reference/pocket-tts (tiny_config.resolved.json, tiny_model.safetensors,
 * golden_A/B.safetensors, voice_state_A.safetensors) with the noise injected from the
 * goldens, and prints one row per module boundary: name, max abs error, max relative
 * error (to the tensor's max), tolerance, ok/FAIL. Exit status 1 if any row fails.
 *
 *   pocket-parity DIR [--quantize]
 *
 * --quantize loads the FlowLM with int8 weights (pk_flowlm_opts.dtype = NN_Q8: the
 * transformer and flow-head linears) and checks the same rows against the float32 goldens with
 * the looser TOL_Q8 below; it also prints the largest relative error of the emitted
 * latents ("latent error" line), the figure to quote for the quantized mode.
 *
 * Sizes come from the config and the golden tensors, never from constants here.
 * FlowLM rows (this file): every traced boundary of the voice/text prompts and of each
 * generation step (RoPE, attention, layers, out_norm, EOS, every flow-head call, latent),
 * KV caches and offsets after each phase, the EOS stopping rule and frame count; plus the
 * voice caches computed end to end from voice/audio_in through our Mimi encoder ("[e2e]").
 * Tokenizer row: spm's tokenizer on the scenario's (prepared) text must give exactly
 * text/tokens. Mimi rows: pkp_mimi_rows() (owned by "mimi") is called per scenario after
 * the FlowLM rows.
 *
 * Tolerances (relative to the tensor's max |value|, float32 vs upstream float32):
 *   FlowLM activations, flow head, latents, KV caches: 1e-4 (README: OpenBLAS vs
 *   reference BLAS differ by ~1.3e-6 relative; 1e-4 leaves room for our different
 *   summation orders over 20 autoregressive frames while catching any real bug).
 *   Offsets, EOS decisions and frame counts: exact.
 */
#include "core/err.h"
#include "engine/pocket/flowlm.h"
#include "engine/pocket/pkconfig.h"
#include "engine/pocket/mimi.h"
#include "engine/pocket/pkparity.h"
#include "engine/pocket/spm.h"
#include "model/safetensors.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL_FLOW 1e-4
/* --quantize: int8 weights (per-row scales) and int8 activations (per 32) lose ~0.5-1 %
 * per linear; 20 autoregressive frames through a random-weight tiny model compound that
 * (measured on the reference folder: transformer outputs and caches 1-3 %, latents <= 4 %,
 * flow-head internals up to 7 %). Rows are relative to the tensor's max like the float
 * rows, 0.1 for every tensor; the EOS logit is a near-zero scalar (relative to the 0.1
 * floor), so it gets 0.5 = 0.05 absolute; EOS decisions, offsets and frame counts stay
 * exact. */
#define TOL_Q8 1e-1
#define TOL_Q8_EOS 5e-1

/* Mimi rows, defined by mimi's code (src/engine/pocket/mimi_parity.c). */
int pkp_mimi_rows(pkp_report *r, const pk_config *cfg, const st_file *weights, const st_file *golden,
                  const char *dir, const char *scenario);

typedef struct ctx {
    pkp_report *r;
    const st_file *g;
    char phase[32];
    int missing_ok; /* trace names absent from the golden are skipped */
    double tol, eos_tol;
    double lat_worst; /* largest relative error over the step latents */
    char lat_name[256];
} ctx;

static void on_trace(void *ud, const char *name, const float *x, size_t n)
{
    ctx *c = ud;
    char full[256];
    snprintf(full, sizeof full, "%s/%s", c->phase, name);
    if (!strcmp(name, "noise.x0")) return; /* injected verbatim */
    if (!st_find(c->g, full)) return;      /* not recorded in this phase */
    size_t ln = strlen(full);
    int eos = ln > 11 && !strcmp(full + ln - 11, "out_eos.out");
    pkp_check(c->r, c->g, full, x, n, eos ? c->eos_tol : c->tol);
    if (ln > 7 && !strcmp(full + ln - 7, "/latent")) {
        float *ref = NULL;
        size_t rn = 0;
        if (!pkp_load(c->g, full, &ref, &rn, NULL, 0) && rn == n) {
            pkp_err e = pkp_diff(ref, x, n);
            if (e.rel > c->lat_worst) c->lat_worst = e.rel, snprintf(c->lat_name, sizeof c->lat_name, "%s", full);
        }
        free(ref);
    }
}

static int golden_noise(void *ud, float *x0, int n, float temp, float clamp)
{
    ctx *c = ud;
    char full[128];
    snprintf(full, sizeof full, "%s/noise.x0", c->phase);
    const st_tensor *t = st_find(c->g, full);
    if (!t || t->numel != n) return ERR_NOTFOUND;
    return st_to_f32(t, x0, (size_t)n, NULL, 0);
}

static void check_kv_as(pkp_report *r, const st_file *g, const pk_fstate *s, int nl, const char *phase,
                        const char *label, double tol);
static void check_kv(pkp_report *r, const st_file *g, const pk_fstate *s, int nl, const char *phase, double tol)
{
    check_kv_as(r, g, s, nl, phase, "", tol);
}

/* label: suffix printed after the golden name (rows compare against the same golden) */
static void check_kv_as(pkp_report *r, const st_file *g, const pk_fstate *s, int nl, const char *phase,
                        const char *label, double tol)
{
    for (int i = 0; i < nl; i++) {
        char name[160];
        const nn_kv *kv = pk_fstate_kv(s, i);
        snprintf(name, sizeof name, "%s/kv/transformer.layers.%d.self_attn.offset", phase, i);
        const st_tensor *ot = st_find(g, name);
        if (ot) {
            float off = -1;
            st_to_f32(ot, &off, 1, NULL, 0);
            int ok = (int64_t)off == kv->len;
            r->rows++;
            if (!ok) r->fails++;
            fprintf(r->out, "%-64s want %lld got %lld  exact  %s\n", name, (long long)off, (long long)kv->len,
                    ok ? "ok" : "FAIL");
        }
        snprintf(name, sizeof name, "%s/kv/transformer.layers.%d.self_attn.cache", phase, i);
        const st_tensor *ct = st_find(g, name);
        if (!ct) continue;
        int64_t P = ct->ndim == 5 ? ct->shape[2] : 0;
        size_t row = (size_t)kv->heads * kv->hd;
        if (P > kv->len) {
            pkp_check(r, g, name, NULL, 0, tol); /* size mismatch → FAIL row */
            continue;
        }
        float *buf = malloc(2 * (size_t)P * row * sizeof *buf + 1);
        memcpy(buf, kv->k, (size_t)P * row * sizeof *buf);
        memcpy(buf + (size_t)P * row, kv->v, (size_t)P * row * sizeof *buf);
        if (label[0]) {
            float *ref = NULL;
            size_t rn = 0;
            char e2[256], shown[256];
            snprintf(shown, sizeof shown, "%s%s", name, label);
            if (pkp_load(g, name, &ref, &rn, e2, sizeof e2) || rn != 2 * (size_t)P * row) pkp_check(r, g, name, NULL, 0, tol);
            else pkp_row(r, shown, ref, buf, rn, tol);
            free(ref);
        } else {
            pkp_check(r, g, name, buf, 2 * (size_t)P * row, tol);
        }
        free(buf);
    }
}

/* spm on the scenario text must reproduce text/tokens exactly */
static void check_tokens(pkp_report *r, const char *dir, const char *text, const int *want, int T)
{
    char path[1024], err[256];
    snprintf(path, sizeof path, "%s/tiny_tokenizer.model", dir);
    spm_model *sp = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    int ok = 0;
    if (!text[0]) snprintf(err, sizeof err, "no text in the golden's info");
    else if (!spm_load_file(&sp, path, err, sizeof err) && !spm_encode(sp, text, strlen(text), &ids, &n, err, sizeof err)) {
        ok = n == (size_t)T;
        for (int i = 0; ok && i < T; i++) ok = ids[i] == want[i];
        snprintf(err, sizeof err, "%zu ids, want %d", n, T);
    }
    r->rows++;
    if (!ok) r->fails++;
    fprintf(r->out, "%-64s %s  exact  %s\n", "text/tokens (spm on the scenario text)", err, ok ? "ok" : "FAIL");
    free(ids);
    spm_free(sp);
}

/* End to end: our Mimi encoder on voice/audio_in, then the FlowLM voice prompt; the
 * resulting KV caches must match the golden voice caches (same tolerance). */
static void voice_e2e(pkp_report *r, const pk_config *cfg, const st_file *w, const st_file *g, const pk_flowlm *m,
                      int want_F, double tol)
{
    char err[256];
    const st_tensor *a = st_find(g, "voice/audio_in");
    if (!a) return;
    mimi_config mc;
    mimi_config_from_pk(&mc, cfg);
    mimi *mm = NULL;
    float *pcm = malloc((size_t)a->numel * sizeof *pcm), *lat = NULL;
    int F = 0;
    pk_fstate *s = NULL;
    st_to_f32(a, pcm, (size_t)a->numel, NULL, 0);
    int rc = mimi_open(&mm, w, "mimi.", "flow_lm.", &mc, MIMI_ENCODER, err, sizeof err);
    if (!rc) rc = mimi_encode(mm, pcm, (size_t)a->numel, &lat, &F, NULL, NULL, err, sizeof err);
    if (!rc && F != want_F) rc = err_set(err, sizeof err, ERR_FORMAT, "encoder gave %d frames, golden %d", F, want_F);
    if (!rc) rc = pk_fstate_new(&s, m, F + 1, err, sizeof err);
    pk_gen_params p;
    pk_gen_params_default(&p);
    if (!rc) rc = pk_flowlm_prompt_voice(m, s, lat, F, &p, NULL, err, sizeof err);
    if (rc) {
        r->rows++, r->fails++;
        fprintf(r->out, "%-64s FAIL (%s)\n", "voice end to end (our Mimi encoder -> FlowLM)", err);
    } else {
        check_kv_as(r, g, s, cfg->num_layers, "voice", " [e2e]", tol);
    }
    pk_fstate_free(s);
    free(lat);
    free(pcm);
    mimi_free(mm);
}

static int count_steps(const st_file *g)
{
    int n = 0;
    char name[64];
    for (;; n++) {
        snprintf(name, sizeof name, "step%03d/latent", n);
        if (!st_find(g, name)) return n;
    }
}

static double info_num(const cJSON *info, const char *k, double dflt)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(info, k);
    return cJSON_IsNumber(j) ? j->valuedouble : dflt;
}

static int load_ids(const st_file *g, int **ids, int *T)
{
    const st_tensor *t = st_find(g, "text/tokens");
    if (!t) return ERR_NOTFOUND;
    *T = (int)t->numel;
    float *f = malloc(((size_t)*T + 1) * sizeof *f);
    *ids = malloc(((size_t)*T + 1) * sizeof **ids);
    st_to_f32(t, f, (size_t)*T, NULL, 0);
    for (int i = 0; i < *T; i++) (*ids)[i] = (int)f[i];
    free(f);
    return 0;
}

/* One scenario; voice from golden latents ("voice/mimi.latent") or from a voice-state file. */
static int scenario(pkp_report *r, const char *dir, const char *gname, const pk_config *cfg, const st_file *w,
                    const pk_flowlm *m, const char *voice_file, double tol)
{
    char path[1024], err[512];
    snprintf(path, sizeof path, "%s/%s", dir, gname);
    st_file *g = NULL;
    if (st_open(&g, path, err, sizeof err)) {
        pkp_note(r, "%s: %s", gname, err);
        r->fails++;
        return 1;
    }
    pkp_note(r, "== %s", gname);
    cJSON *info = NULL;
    const char *is = st_meta(g, "info");
    if (is) info = cJSON_Parse(is);
    pk_gen_params p;
    pk_gen_params_default(&p);
    p.temp = (float)info_num(info, "temp", p.temp);
    p.lsd_steps = (int)info_num(info, "lsd_decode_steps", p.lsd_steps);
    p.noise_clamp = (float)info_num(info, "noise_clamp", 0);
    p.eos_threshold = (float)info_num(info, "eos_threshold", p.eos_threshold);
    char text[512] = "";
    {
        const cJSON *pt = cJSON_GetObjectItemCaseSensitive(info, "prepared_text");
        if (!cJSON_IsString(pt)) pt = cJSON_GetObjectItemCaseSensitive(info, "text");
        if (cJSON_IsString(pt)) snprintf(text, sizeof text, "%s", pt->valuestring);
    }
    int fae = (int)info_num(info, "frames_after_eos", 1000000);
    int maxf = (int)info_num(info, "forced_max_gen_len", info_num(info, "max_gen_len", 1000000));
    int want_frames = (int)info_num(info, "n_frames", -1);
    cJSON_Delete(info);

    int nsteps = count_steps(g);
    int *ids = NULL, T = 0;
    if (load_ids(g, &ids, &T)) {
        pkp_note(r, "%s: text/tokens missing", gname);
        r->fails++;
        st_close(g);
        return 1;
    }
    check_tokens(r, dir, text, ids, T);
    ctx c = {r, g, "", 1, tol, tol == TOL_FLOW ? TOL_FLOW : TOL_Q8_EOS, 0, ""};
    pk_noise nz = {golden_noise, &c};
    pk_fstate *s = NULL;
    int F = 0;
    float *lat = NULL;
    const st_tensor *vl = st_find(g, "voice/mimi.latent");
    if (vl) { /* golden [1, ldim, F] → time-major [F, ldim] */
        F = (int)vl->shape[vl->ndim - 1];
        int ld = (int)(vl->numel / F);
        float *cm = malloc((size_t)vl->numel * sizeof *cm);
        lat = malloc((size_t)vl->numel * sizeof *lat);
        st_to_f32(vl, cm, (size_t)vl->numel, NULL, 0);
        for (int f = 0; f < F; f++)
            for (int ch = 0; ch < ld; ch++) lat[(size_t)f * ld + ch] = cm[(size_t)ch * F + f];
        free(cm);
    }
    int cap = F + 1 + T + nsteps + 8;
    st_file *vf = NULL;
    if (voice_file) {
        snprintf(path, sizeof path, "%s/%s", dir, voice_file);
        if (st_open(&vf, path, err, sizeof err)) {
            pkp_note(r, "%s", err);
            r->fails++;
            goto out;
        }
        const st_tensor *t0 = st_find(vf, "transformer.layers.0.self_attn/cache");
        if (t0 && t0->ndim == 5) cap += (int)t0->shape[2];
    }
    if (pk_fstate_new(&s, m, cap, err, sizeof err)) {
        pkp_note(r, "state: %s", err);
        r->fails++;
        goto out;
    }
    pk_fstate_set_trace(s, on_trace, &c);

    if (lat) {
        snprintf(c.phase, sizeof c.phase, "voice");
        if (pk_flowlm_prompt_voice(m, s, lat, F, &p, &nz, err, sizeof err)) {
            pkp_note(r, "voice prompt: %s", err);
            r->fails++;
            goto out;
        }
        check_kv(r, g, s, cfg->num_layers, "voice", tol);
        voice_e2e(r, cfg, w, g, m, F, tol);
    } else if (vf) {
        if (pk_fstate_import_voice(s, vf, err, sizeof err)) {
            pkp_note(r, "voice import: %s", err);
            r->fails++;
            goto out;
        }
    }
    snprintf(c.phase, sizeof c.phase, "text");
    if (pk_flowlm_prompt_text(m, s, ids, T, &p, &nz, err, sizeof err)) {
        pkp_note(r, "text prompt: %s", err);
        r->fails++;
        goto out;
    }
    check_kv(r, g, s, cfg->num_layers, "text", tol);

    float prev[1024], cur[1024];
    int have_prev = 0, emitted = 0, stopped = 0;
    pk_eos eos;
    pk_eos_init(&eos, fae, maxf);
    for (int k = 0; k < nsteps; k++) {
        snprintf(c.phase, sizeof c.phase, "step%03d", k);
        float logit;
        if (pk_flowlm_step(m, s, have_prev ? prev : NULL, &p, &nz, cur, &logit, err, sizeof err)) {
            pkp_note(r, "step %d: %s", k, err);
            r->fails++;
            goto out;
        }
        char name[64];
        snprintf(name, sizeof name, "step%03d/is_eos", k);
        const st_tensor *ie = st_find(g, name);
        if (ie) {
            float want = 0;
            st_to_f32(ie, &want, 1, NULL, 0);
            int got = logit > p.eos_threshold, ok = (want != 0) == got;
            r->rows++;
            if (!ok) r->fails++;
            if (!ok) fprintf(r->out, "%-64s want %d got %d (logit %.6f)  FAIL\n", name, want != 0, got, logit);
        }
        if (!stopped && pk_eos_emit(&eos, k, logit, p.eos_threshold)) emitted++;
        else stopped = 1;
        memcpy(prev, cur, sizeof cur);
        have_prev = 1;
    }
    check_kv(r, g, s, cfg->num_layers, "final", tol);
    if (want_frames >= 0) {
        int ok = want_frames == emitted;
        r->rows++;
        if (!ok) r->fails++;
        fprintf(r->out, "%-64s want %d got %d  exact  %s\n", "frames emitted (EOS rule)", want_frames, emitted,
                ok ? "ok" : "FAIL");
    }
    pkp_note(r, "%s: latent error (max over %d steps, relative to each latent's max): %.3g at %s", gname, nsteps,
             c.lat_worst, c.lat_name[0] ? c.lat_name : "-");
    if (pkp_mimi_rows(r, cfg, w, g, dir, gname)) {
        pkp_note(r, "mimi rows reported an error");
        r->fails++;
    }
out:
    free(ids);
    free(lat);
    pk_fstate_free(s);
    st_close(vf);
    st_close(g);
    return 0;
}

int main(int argc, char **argv)
{
    int quant = 0;
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quantize")) quant = 1;
        else if (argv[i][0] != '-' && !dir) dir = argv[i];
        else dir = NULL, i = argc;
    }
    if (!dir) {
        fprintf(stderr, "usage: %s DIR [--quantize]\n", argv[0]);
        return 2;
    }
    double tol = quant ? TOL_Q8 : TOL_FLOW;
    char path[1024], err[512];
    pk_config cfg;
    snprintf(path, sizeof path, "%s/tiny_config.resolved.json", dir);
    if (pk_config_load_json(&cfg, path, err, sizeof err)) {
        fprintf(stderr, "pocket-parity: %s\n", err);
        return 2;
    }
    snprintf(path, sizeof path, "%s/tiny_model.safetensors", dir);
    st_file *w = NULL;
    if (st_open(&w, path, err, sizeof err)) {
        fprintf(stderr, "pocket-parity: %s\n", err);
        return 2;
    }
    pk_flowlm *m = NULL;
    pk_flowlm_opts o = {quant ? NN_Q8 : NN_F32, NULL, NULL, 0};
    if (pk_flowlm_load(&m, &cfg, w, &o, err, sizeof err)) {
        fprintf(stderr, "pocket-parity: %s\n", err);
        st_close(w);
        return 2;
    }
    pkp_report r = {.out = stdout};
    printf("pocket-parity %s (kernels: %s; d_model %d, %d layers, %d heads, flow %dx%d, latent %d)\n", dir,
           nn_kernel_name(), cfg.d_model, cfg.num_layers, cfg.num_heads, cfg.flow_dim, cfg.flow_depth, cfg.ldim);
    if (quant)
        printf("int8 weights (transformer + flow-head linears); FlowLM rows use tolerance %g (EOS logit %g) instead "
               "of %g\n", TOL_Q8, TOL_Q8_EOS, TOL_FLOW);
    scenario(&r, dir, "golden_A.safetensors", &cfg, w, m, NULL, tol);
    scenario(&r, dir, "golden_B.safetensors", &cfg, w, m, "voice_state_A.safetensors", tol);
    int rc = pkp_summary(&r);
    pk_flowlm_free(m);
    st_close(w);
    return rc;
}
