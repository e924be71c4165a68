/* test_mimi.c — Mimi codec against the shared pocket-tts goldens (tiny model), plus the
 * streaming contract: frame-by-frame decoding equals one-shot whole-utterance decoding,
 * the state after frame 0 equals upstream's, reset gives a fresh decoder, and bad input
 * or a mismatched checkpoint fails with a message. Tolerances are relative to the
 * tensor's max |ref| (see pkparity.h): 1e-4 against torch, 1e-5 between our own paths. */
#include <cJSON.h>

#include "ut.h"
#include "core/err.h"
#include "engine/pocket/mimi.h"
#include "engine/pocket/pkconfig.h"
#include "engine/pocket/pkparity.h"
#include "model/safetensors.h"

#include <pthread.h>
#include <stdint.h>

typedef struct fx {
    st_file *w, *g;
    mimi *m;
    mimi_config cfg;
} fx;

static void fx_open(ut_ctx *t, fx *x, int parts)
{
    char p[512], err[256];
    memset(x, 0, sizeof *x);
    pk_config pc;
    if (pk_config_load_json(&pc, ut_path(p, sizeof p, "reference/pocket-tts/tiny_config.resolved.json"), err,
                            sizeof err))
        ut_fail(t, __FILE__, __LINE__, "config: %s", err);
    mimi_config_from_pk(&x->cfg, &pc);
    if (st_open(&x->w, ut_path(p, sizeof p, "reference/pocket-tts/tiny_model.safetensors"), err, sizeof err))
        ut_fail(t, __FILE__, __LINE__, "%s", err);
    if (st_open(&x->g, ut_path(p, sizeof p, "reference/pocket-tts/golden_A.safetensors"), err, sizeof err))
        ut_fail(t, __FILE__, __LINE__, "%s", err);
    if (mimi_open(&x->m, x->w, "mimi.", "flow_lm.", &x->cfg, parts, err, sizeof err))
        ut_fail(t, __FILE__, __LINE__, "mimi_open: %s", err);
}

static void fx_close(fx *x)
{
    mimi_free(x->m);
    st_close(x->w);
    st_close(x->g);
}

static float *golden(ut_ctx *t, const st_file *g, const char *name, size_t *n)
{
    float *v;
    char err[256];
    if (pkp_load(g, name, &v, n, err, sizeof err)) ut_fail(t, __FILE__, __LINE__, "%s", err);
    return v;
}

/* Golden decoder inputs dec000..dec(F-1) as [F, ldim]. */
static float *golden_z(ut_ctx *t, const fx *x, int *F)
{
    char key[64];
    int ld = mimi_ldim(x->m), nf = 0;
    while (snprintf(key, sizeof key, "dec%03d/mimi.quantizer.in", nf), st_find(x->g, key)) nf++;
    float *z = malloc((size_t)(nf ? nf : 1) * ld * sizeof(float));
    for (int f = 0; f < nf; f++) {
        size_t n;
        snprintf(key, sizeof key, "dec%03d/mimi.quantizer.in", f);
        float *v = golden(t, x->g, key, &n);
        UT_EQ_INT(t, ld, n);
        memcpy(z + (size_t)f * ld, v, (size_t)ld * sizeof(float));
        free(v);
    }
    *F = nf;
    return z;
}

static void expect_close(ut_ctx *t, const char *what, const float *ref, const float *ours, size_t n,
                         double tol)
{
    pkp_err e = pkp_diff(ref, ours, n);
    if (!(e.rel <= tol))
        ut_fail(t, __FILE__, __LINE__, "%s: max abs err %.3g (rel %.3g of max|ref| %.3g), tol %.1g",
                what, e.max_abs, e.rel, e.max_ref, tol);
}

static void t_config_tiny(ut_ctx *t)
{
    fx x;
    fx_open(t, &x, MIMI_DECODER);
    UT_EQ_INT(t, 40, x.cfg.dimension);
    UT_EQ_INT(t, 8, x.cfg.n_filters);
    UT_EQ_INT(t, 3, x.cfg.n_ratios);
    UT_EQ_INT(t, 6, x.cfg.ratios[0]);
    UT_EQ_INT(t, 4, x.cfg.ratios[2]);
    UT_EQ_INT(t, 2, x.cfg.num_heads);
    UT_EQ_INT(t, 96, x.cfg.dim_feedforward);
    UT_EQ_INT(t, 250, x.cfg.context);
    UT_EQ_INT(t, 16, mimi_ldim(x.m));
    UT_EQ_INT(t, 1920, mimi_frame_samples(x.m));
    UT_EQ_INT(t, 24000, mimi_sample_rate(x.m));
    fx_close(&x);
}

static void t_decoder_golden(ut_ctx *t)
{
    fx x;
    fx_open(t, &x, MIMI_DECODER);
    int F, fs = mimi_frame_samples(x.m);
    char err[256];
    float *z = golden_z(t, &x, &F);
    UT_EQ_INT(t, 20, F);
    mimi_dec *d;
    UT_EQ_INT(t, 0, mimi_dec_new(&d, x.m, err, sizeof err));
    float *pcm = malloc((size_t)F * fs * sizeof(float));
    for (int f = 0; f < F; f++)
        UT_EQ_INT(t, 0,
                  mimi_dec_frame(d, z + (size_t)f * mimi_ldim(x.m), pcm + (size_t)f * fs, err,
                                 sizeof err));
    size_t n;
    float *ref = golden(t, x.g, "final/audio", &n);
    UT_EQ_INT(t, (size_t)F * fs, n);
    expect_close(t, "final/audio (20 streamed frames)", ref, pcm, n, 1e-4);
    /* de-normalisation matches upstream's latent*emb_std + emb_mean */
    float *lat = golden(t, x.g, "step003/latent", &n), zz[64];
    UT_EQ_INT(t, 0, mimi_denorm(x.m, lat, zz));
    expect_close(t, "denorm(step003/latent) vs dec003/mimi.quantizer.in", z + 3 * 16, zz, 16, 1e-6);
    free(lat);
    free(ref);
    free(pcm);
    free(z);
    mimi_dec_free(d);
    fx_close(&x);
}

/* Batch invariance (mimi.h): n frames in one call give exactly the samples of n calls. */
static void expect_bits(ut_ctx *t, const char *what, const float *ref, const float *ours, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&ref[i], &ours[i], sizeof(float)))
            ut_fail(t, __FILE__, __LINE__, "%s: sample %zu expected %.9g, got %.9g (not bit-identical)", what, i,
                    ref[i], ours[i]);
}

static void t_stream_equals_oneshot(ut_ctx *t)
{
    fx x;
    fx_open(t, &x, MIMI_DECODER);
    int F, fs = mimi_frame_samples(x.m), ld = mimi_ldim(x.m);
    char err[256];
    float *z = golden_z(t, &x, &F); /* 20 frames = 320 steps > context 250: window slides */
    float *a = malloc((size_t)F * fs * sizeof(float)), *b = malloc((size_t)F * fs * sizeof(float));
    mimi_dec *d;
    UT_EQ_INT(t, 0, mimi_dec_new(&d, x.m, err, sizeof err));
    for (int f = 0; f < F; f++)
        UT_EQ_INT(t, 0, mimi_dec_frame(d, z + (size_t)f * ld, a + (size_t)f * fs, err, sizeof err));
    UT_EQ_INT(t, 0, mimi_decode_oneshot(x.m, z, F, b, err, sizeof err));
    expect_bits(t, "one-shot (20 frames in one call) vs frame by frame", a, b, (size_t)F * fs);
    /* and a reset decoder replays bit for bit */
    mimi_dec_reset(d);
    for (int f = 0; f < 3; f++) {
        UT_EQ_INT(t, 0, mimi_dec_frame(d, z + (size_t)f * ld, b, err, sizeof err));
        UT_CHECK(t, memcmp(a + (size_t)f * fs, b, (size_t)fs * sizeof(float)) == 0);
    }
    UT_EQ_INT(t, ERR_TOOBIG, mimi_decode_oneshot(x.m, z, MIMI_ONESHOT_MAX_FRAMES + 1, b, err, sizeof err));
    /* batches of 3 (and a last one of 2) through one streaming decoder */
    mimi_dec *db;
    UT_EQ_INT(t, 0, mimi_dec_new_batch(&db, x.m, 3, err, sizeof err));
    for (int f = 0; f < F; f += 3) {
        int n = F - f < 3 ? F - f : 3;
        UT_EQ_INT(t, 0, mimi_dec_frames(db, z + (size_t)f * ld, n, b + (size_t)f * fs, err, sizeof err));
    }
    expect_bits(t, "streamed in batches of 3 vs frame by frame", a, b, (size_t)F * fs);
    UT_EQ_INT(t, ERR_INVAL, mimi_dec_frames(db, z, 4, b, err, sizeof err));
    mimi_dec_free(db);
    /* a 2-thread pool for the first frames, then none: the same samples */
    nn_pool *pool;
    UT_EQ_INT(t, 0, nn_pool_new(&pool, 2, err, sizeof err));
    UT_EQ_INT(t, 0, mimi_dec_new_batch(&db, x.m, 3, err, sizeof err));
    mimi_dec_set_pool(db, pool);
    UT_EQ_INT(t, 0, mimi_dec_frames(db, z, 3, b, err, sizeof err));
    mimi_dec_set_pool(db, NULL);
    for (int f = 3; f < F; f++)
        UT_EQ_INT(t, 0, mimi_dec_frames(db, z + (size_t)f * ld, 1, b + (size_t)f * fs, err, sizeof err));
    expect_bits(t, "2-thread pool for 3 frames, then 1 thread", a, b, (size_t)F * fs);
    mimi_dec_free(db);
    nn_pool_free(pool);
    free(a);
    free(b);
    free(z);
    mimi_dec_free(d);
    fx_close(&x);
}

/* mimi_set_dec_dtype: BF16 decoder transformer linears stay close to exact F32 (but are
 * really used: not bit-identical), streamed == one-shot still holds in that mode; NN_Q8 on
 * the tiny shapes (d_model 40, not a multiple of 32) keeps F32 bit for bit; bad dtype. */
static void t_reduced_dtype(ut_ctx *t)
{
    fx x;
    fx_open(t, &x, MIMI_DECODER);
    int F, fs = mimi_frame_samples(x.m), ld = mimi_ldim(x.m);
    char err[256];
    float *z = golden_z(t, &x, &F);
    size_t n = (size_t)F * fs;
    float *ref = malloc(n * sizeof(float)), *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    UT_EQ_INT(t, 0, mimi_decode_oneshot(x.m, z, F, ref, err, sizeof err));
    mimi *mb, *mq;
    UT_EQ_INT(t, 0, mimi_open(&mb, x.w, "mimi.", "flow_lm.", &x.cfg, MIMI_DECODER, err, sizeof err));
    UT_EQ_INT(t, 0, mimi_open(&mq, x.w, "mimi.", "flow_lm.", &x.cfg, MIMI_DECODER, err, sizeof err));
    UT_EQ_INT(t, ERR_INVAL, mimi_set_dec_dtype(mb, (nn_dtype)7, err, sizeof err));
    UT_EQ_INT(t, 0, mimi_set_dec_dtype(mb, NN_BF16, err, sizeof err));
    UT_EQ_INT(t, 0, mimi_set_dec_dtype(mq, NN_Q8, err, sizeof err));
    mimi_dec *d;
    UT_EQ_INT(t, 0, mimi_dec_new(&d, mb, err, sizeof err));
    for (int f = 0; f < F; f++)
        UT_EQ_INT(t, 0, mimi_dec_frame(d, z + (size_t)f * ld, a + (size_t)f * fs, err, sizeof err));
    mimi_dec_free(d);
    expect_close(t, "BF16 decoder transformer vs exact", ref, a, n, 2e-2);
    UT_CHECK(t, memcmp(ref, a, n * sizeof(float)) != 0);
    UT_EQ_INT(t, 0, mimi_decode_oneshot(mb, z, F, b, err, sizeof err));
    expect_close(t, "BF16 streamed vs one-shot", b, a, n, 1e-5);
    UT_EQ_INT(t, 0, mimi_decode_oneshot(mq, z, F, b, err, sizeof err));
    UT_CHECK(t, memcmp(ref, b, n * sizeof(float)) == 0);
    mimi_free(mb);
    mimi_free(mq);
    free(ref);
    free(a);
    free(b);
    free(z);
    fx_close(&x);
}

typedef struct st_ctx {
    ut_ctx *t;
    const st_file *g;
    int compared;
    double worst;
    char worst_name[160];
} st_ctx;

static void state_tap(void *user, const char *name, const float *v, int rows, int cols, int tm, int t0)
{
    st_ctx *c = user;
    char key[256];
    snprintf(key, sizeof key, "dec000/mimi_state_after/%s", name);
    const st_tensor *gt = st_find(c->g, key);
    if (!gt) ut_fail(c->t, __FILE__, __LINE__, "state %s has no golden %s", name, key);
    size_t n = (size_t)rows * cols;
    if ((size_t)gt->numel != n)
        ut_fail(c->t, __FILE__, __LINE__, "state %s: golden has %lld values, we have %zu", name,
                (long long)gt->numel, n);
    if (n == 0) return;
    float *ref = malloc(n * sizeof(float));
    st_to_f32(gt, ref, n, NULL, 0);
    pkp_err e = pkp_diff(ref, v, n);
    free(ref);
    c->compared++;
    if (e.rel > c->worst) {
        c->worst = e.rel;
        snprintf(c->worst_name, sizeof c->worst_name, "%s", name);
    }
}

static void t_state_after_frame0(ut_ctx *t)
{
    fx x;
    fx_open(t, &x, MIMI_DECODER);
    int F;
    char err[256];
    float *z = golden_z(t, &x, &F), pcm[1920];
    mimi_dec *d;
    UT_EQ_INT(t, 0, mimi_dec_new(&d, x.m, err, sizeof err));
    UT_EQ_INT(t, 0, mimi_dec_frame(d, z, pcm, err, sizeof err));
    st_ctx c = {.t = t, .g = x.g};
    mimi_dec_set_tap(d, state_tap, &c);
    mimi_dec_dump_state(d);
    UT_EQ_INT(t, 11, c.compared); /* 11 non-empty state tensors in the tiny model */
    if (c.worst > 1e-4)
        ut_fail(t, __FILE__, __LINE__, "state %s: rel err %.3g > 1e-4", c.worst_name, c.worst);
    free(z);
    mimi_dec_free(d);
    fx_close(&x);
}

static void t_encoder_golden(ut_ctx *t)
{
    fx x;
    fx_open(t, &x, MIMI_ENCODER);
    size_t n, nl;
    char err[256];
    float *pcm = golden(t, x.g, "voice/audio_in", &n);
    float *ref = golden(t, x.g, "voice/mimi.latent", &nl); /* [ldim, F] */
    float *lat;
    int F, ld = mimi_ldim(x.m);
    UT_EQ_INT(t, 0, mimi_encode(x.m, pcm, n, &lat, &F, NULL, NULL, err, sizeof err));
    UT_EQ_INT(t, (int)((n + 1919) / 1920), F);
    UT_EQ_INT(t, (size_t)F * ld, nl);
    float *tr = malloc(nl * sizeof(float));
    for (int f = 0; f < F; f++)
        for (int i = 0; i < ld; i++) tr[(size_t)i * F + f] = lat[(size_t)f * ld + i];
    expect_close(t, "voice/mimi.latent", ref, tr, nl, 1e-4);
    free(tr);
    free(lat);
    /* decoder-only model refuses to encode; empty input is refused */
    UT_EQ_INT(t, ERR_INVAL, mimi_encode(x.m, pcm, 0, &lat, &F, NULL, NULL, err, sizeof err));
    UT_EQ_INT(t, 0, mimi_encode(x.m, pcm, 1, &lat, &F, NULL, NULL, err, sizeof err));
    UT_EQ_INT(t, 1, F);
    free(lat);
    pcm[100] = INFINITY;
    UT_EQ_INT(t, ERR_INVAL, mimi_encode(x.m, pcm, n, &lat, &F, NULL, NULL, err, sizeof err));
    mimi_dec *d;
    UT_EQ_INT(t, ERR_INVAL, mimi_dec_new(&d, x.m, err, sizeof err));
    free(pcm);
    free(ref);
    fx_close(&x);
}

static void t_bad_input(ut_ctx *t)
{
    fx x;
    fx_open(t, &x, MIMI_DECODER);
    char err[256];
    mimi_config bad = x.cfg;
    mimi *m2 = NULL;
    bad.n_filters = 16; /* every SEANet width doubles: shapes no longer match */
    UT_EQ_INT(t, ERR_FORMAT, mimi_open(&m2, x.w, "mimi.", NULL, &bad, MIMI_DECODER, err, sizeof err));
    UT_CHECK(t, m2 == NULL);
    if (!strstr(err, "mimi.decoder.model.0.conv.weight"))
        ut_fail(t, __FILE__, __LINE__, "error should name the tensor, got \"%s\"", err);
    UT_EQ_INT(t, ERR_NOTFOUND, mimi_open(&m2, x.w, "nope.", NULL, &x.cfg, MIMI_DECODER, err, sizeof err));
    bad = x.cfg;
    bad.frame_rate = 11.0; /* 200 Hz / 11 is not an integer stride */
    UT_EQ_INT(t, ERR_FORMAT, mimi_open(&m2, x.w, "mimi.", NULL, &bad, MIMI_DECODER, err, sizeof err));
    /* absurd numbers are refused when opening */
    bad = x.cfg;
    bad.n_filters = -1;
    bad.ratios[2] = -4;
    UT_EQ_INT(t, ERR_FORMAT, mimi_open(&m2, x.w, "mimi.", NULL, &bad, MIMI_DECODER, err, sizeof err));
    mimi_dec *d;
    UT_EQ_INT(t, 0, mimi_dec_new(&d, x.m, err, sizeof err));
    float z[16] = {0}, pcm[1920];
    z[3] = NAN;
    UT_EQ_INT(t, ERR_INVAL, mimi_dec_frame(d, z, pcm, err, sizeof err));
    mimi_dec_free(d);
    fx_close(&x);
}

static void t_prompt_pcm(ut_ctx *t)
{
    char err[256];
    float *o;
    size_t n;
    /* stereo at 24 kHz: averaged, no resampling, exact */
    float st[6] = {1.0f, 0.0f, 0.5f, 0.5f, -1.0f, 0.25f};
    UT_EQ_INT(t, 0, mimi_prompt_pcm(st, 3, 2, 24000, 24000, 0, &o, &n, err, sizeof err));
    UT_EQ_INT(t, 3, n);
    UT_NEAR(t, 0.5, o[0], 0);
    UT_NEAR(t, 0.5, o[1], 0);
    UT_NEAR(t, -0.375, o[2], 0);
    free(o);
    /* truncation at the source rate before resampling: 2 s at 48 kHz cut to 1 s -> 24000 */
    size_t nf = 96000;
    float *in = malloc(nf * sizeof(float));
    for (size_t i = 0; i < nf; i++) in[i] = 0.5f * sinf((float)i * 2.0f * 3.14159265f * 440.0f / 48000.0f);
    UT_EQ_INT(t, 0, mimi_prompt_pcm(in, nf, 1, 48000, 24000, 1.0, &o, &n, err, sizeof err));
    if (n < 23990 || n > 24010) ut_fail(t, __FILE__, __LINE__, "expected ~24000 samples, got %zu", n);
    /* a 440 Hz tone survives: mid-signal samples match the analytic tone at 24 kHz */
    double worst = 0;
    for (size_t i = 1000; i < 20000; i++) {
        double want = 0.5 * sin((double)i * 2.0 * M_PI * 440.0 / 24000.0);
        double d = fabs(want - o[i]);
        if (d > worst) worst = d;
    }
    if (worst > 2e-3) ut_fail(t, __FILE__, __LINE__, "resampled tone off by %g (> 2e-3)", worst);
    free(o);
    free(in);
    UT_EQ_INT(t, ERR_INVAL, mimi_prompt_pcm(st, 0, 1, 24000, 24000, 0, &o, &n, err, sizeof err));
    UT_EQ_INT(t, ERR_INVAL, mimi_prompt_pcm(st, 3, 0, 24000, 24000, 0, &o, &n, err, sizeof err));
    UT_EQ_INT(t, ERR_INVAL, mimi_prompt_pcm(st, 3, 1, 100, 24000, 0, &o, &n, err, sizeof err));
}

/* Every Mimi tensor name and shape of the full-size english_2026-04 layout loads with the
 * built-in config (and with the one parsed from english_2026-04.resolved.json), and one
 * frame decodes to finite samples. Weights are zeros (a calloc'd in-memory checkpoint). */
static void t_english_layout_loads(ut_ctx *t)
{
    char p[512], err[256];
    char *lj = ut_slurp(ut_path(p, sizeof p, "reference/pocket-tts/layout-english_2026-04.json"), NULL);
    char *cj = ut_slurp(ut_path(p, sizeof p, "reference/pocket-tts/english_2026-04.resolved.json"), NULL);
    if (!lj || !cj) ut_fail(t, __FILE__, __LINE__, "cannot read the english layout/config");
    mimi_config eng, parsed;
    pk_config pc;
    mimi_config_english(&eng);
    UT_EQ_INT(t, 0, pk_config_parse_json(&pc, cj, strlen(cj), err, sizeof err));
    mimi_config_from_pk(&parsed, &pc);
    UT_CHECK(t, memcmp(&eng, &parsed, sizeof eng) == 0);
    cJSON *root = cJSON_Parse(lj), *hdr = cJSON_CreateObject();
    const cJSON *e;
    double off = 0;
    int count = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(root, "tensors"))
    {
        if (strncmp(e->string, "mimi.", 5) && strncmp(e->string, "flow_lm.emb_", 12)) continue;
        double numel = 1;
        const cJSON *d;
        cJSON *tt = cJSON_CreateObject(), *offs = cJSON_CreateArray();
        cJSON_ArrayForEach(d, e) numel *= d->valuedouble;
        cJSON_AddStringToObject(tt, "dtype", "F32");
        cJSON_AddItemToObject(tt, "shape", cJSON_Duplicate(e, 1));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber(off));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber(off + 4 * numel));
        cJSON_AddItemToObject(tt, "data_offsets", offs);
        cJSON_AddItemToObject(hdr, e->string, tt);
        off += 4 * numel;
        count++;
    }
    char *h = cJSON_PrintUnformatted(hdr);
    size_t hn = strlen(h), pad = (8 - (8 + hn) % 8) % 8, len = 8 + hn + pad + (size_t)off;
    unsigned char *blob = calloc(len, 1);
    for (int i = 0; i < 8; i++) blob[i] = (unsigned char)((uint64_t)(hn + pad) >> (8 * i));
    memcpy(blob + 8, h, hn);
    memset(blob + 8 + hn, ' ', pad);
    UT_CHECK(t, count > 60);
    st_file *w;
    mimi *m = NULL;
    UT_EQ_INT(t, 0, st_open_mem(&w, blob, len, err, sizeof err));
    int rc = mimi_open(&m, w, "mimi.", "flow_lm.", &eng, MIMI_DECODER | MIMI_ENCODER, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "english layout: %s", err);
    UT_EQ_INT(t, 32, mimi_ldim(m));
    mimi_dec *d;
    float z[32] = {0}, *pcm = malloc(1920 * sizeof(float));
    UT_EQ_INT(t, 0, mimi_dec_new(&d, m, err, sizeof err));
    UT_EQ_INT(t, 0, mimi_dec_frame(d, z, pcm, err, sizeof err));
    for (int i = 0; i < 1920; i++) UT_CHECK(t, isfinite(pcm[i]));
    mimi_dec_free(d);
    free(pcm);
    mimi_free(m);
    st_close(w);
    free(blob);
    free(h);
    cJSON_Delete(hdr);
    cJSON_Delete(root);
    free(lj);
    free(cj);
}

/* The same tiny checkpoint re-encoded as BF16 (as the real english file may be) loads
 * through the converting path and decodes within bf16 precision of the F32 model. */
static void t_bf16_checkpoint(ut_ctx *t)
{
    fx x;
    fx_open(t, &x, MIMI_DECODER);
    char err[256];
    cJSON *hdr = cJSON_CreateObject();
    size_t off = 0, n = st_count(x.w);
    for (size_t i = 0; i < n; i++) {
        const st_tensor *ts = st_at(x.w, i);
        cJSON *tt = cJSON_CreateObject(), *shape = cJSON_CreateArray(), *offs = cJSON_CreateArray();
        for (int d = 0; d < ts->ndim; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)ts->shape[d]));
        cJSON_AddStringToObject(tt, "dtype", ts->dtype == ST_F32 ? "BF16" : st_dtype_name(ts->dtype));
        cJSON_AddItemToObject(tt, "shape", shape);
        size_t nb = ts->dtype == ST_F32 ? (size_t)ts->numel * 2 : ts->nbytes;
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + nb)));
        cJSON_AddItemToObject(tt, "data_offsets", offs);
        cJSON_AddItemToObject(hdr, ts->name, tt);
        off += nb;
    }
    char *h = cJSON_PrintUnformatted(hdr);
    size_t hn = strlen(h), len = 8 + hn + off;
    unsigned char *blob = calloc(len, 1), *data = blob + 8 + hn;
    for (int i = 0; i < 8; i++) blob[i] = (unsigned char)((uint64_t)hn >> (8 * i));
    memcpy(blob + 8, h, hn);
    for (size_t i = 0; i < n; i++) {
        const st_tensor *ts = st_at(x.w, i);
        const cJSON *o = cJSON_GetArrayItem(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(hdr, ts->name), "data_offsets"), 0);
        unsigned char *dst = data + (size_t)o->valuedouble;
        if (ts->dtype != ST_F32) {
            memcpy(dst, ts->data, ts->nbytes);
            continue;
        }
        for (int64_t k = 0; k < ts->numel; k++) {
            uint32_t u;
            memcpy(&u, (const unsigned char *)ts->data + 4 * k, 4);
            u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even (no NaN in weights) */
            dst[2 * k] = (unsigned char)(u >> 16);
            dst[2 * k + 1] = (unsigned char)(u >> 24);
        }
    }
    st_file *wb;
    mimi *mb;
    UT_EQ_INT(t, 0, st_open_mem(&wb, blob, len, err, sizeof err));
    int rc = mimi_open(&mb, wb, "mimi.", "flow_lm.", &x.cfg, MIMI_DECODER, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "bf16 open: %s", err);
    int F;
    float *z = golden_z(t, &x, &F), a[1920 * 4], b[1920 * 4];
    UT_EQ_INT(t, 0, mimi_decode_oneshot(x.m, z, 4, a, err, sizeof err));
    UT_EQ_INT(t, 0, mimi_decode_oneshot(mb, z, 4, b, err, sizeof err));
    pkp_err e = pkp_diff(a, b, 1920 * 4);
    if (!(e.rel < 3e-2 && e.rel > 0))
        ut_fail(t, __FILE__, __LINE__, "bf16 vs f32 decode: rel %.3g (want (0, 3e-2))", e.rel);
    free(z);
    mimi_free(mb);
    st_close(wb);
    free(blob);
    free(h);
    cJSON_Delete(hdr);
    fx_close(&x);
}

typedef struct thr_job {
    const mimi *m;
    const float *z;
    int F;
    float *pcm;
    int rc;
} thr_job;

static void *thr_decode(void *arg)
{
    thr_job *j = arg;
    char err[256];
    mimi_dec *d;
    j->rc = mimi_dec_new(&d, j->m, err, sizeof err);
    for (int f = 0; f < j->F && !j->rc; f++)
        j->rc = mimi_dec_frame(d, j->z + (size_t)f * mimi_ldim(j->m),
                               j->pcm + (size_t)f * mimi_frame_samples(j->m), err, sizeof err);
    mimi_dec_free(d);
    return NULL;
}

/* Three decoders on three threads share one mimi; each reproduces the golden audio. */
static void t_concurrent_decoders(ut_ctx *t)
{
    fx x;
    fx_open(t, &x, MIMI_DECODER);
    int F, fs = mimi_frame_samples(x.m);
    float *z = golden_z(t, &x, &F);
    size_t n;
    float *ref = golden(t, x.g, "final/audio", &n);
    thr_job jobs[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        jobs[i] = (thr_job){.m = x.m, .z = z, .F = F, .pcm = malloc((size_t)F * fs * sizeof(float))};
        UT_EQ_INT(t, 0, pthread_create(&th[i], NULL, thr_decode, &jobs[i]));
    }
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 3; i++) {
        UT_EQ_INT(t, 0, jobs[i].rc);
        expect_close(t, "final/audio from a concurrent decoder", ref, jobs[i].pcm, n, 1e-4);
        free(jobs[i].pcm);
    }
    free(ref);
    free(z);
    fx_close(&x);
}

static const ut_case cases[] = {
    {"concurrent_decoders", t_concurrent_decoders},
    {"bf16_checkpoint", t_bf16_checkpoint},
    {"english_layout_loads", t_english_layout_loads},
    {"prompt_pcm", t_prompt_pcm},
    {"config_tiny", t_config_tiny},
    {"decoder_golden", t_decoder_golden},
    {"stream_equals_oneshot", t_stream_equals_oneshot},
    {"state_after_frame0", t_state_after_frame0},
    {"encoder_golden", t_encoder_golden},
    {"bad_input", t_bad_input},
    {"reduced_dtype", t_reduced_dtype},
};
UT_SUITE(mimi, cases)
