/* test_flowlm.c — pocket-tts config reading, FlowLM loading errors, the EOS/max-length
 * rule, the production noise source, chunked prompts, state copies, BF16 mode, and a
 * short golden-B run (the full per-boundary comparison is the pocket-parity tool). */
#include "ut.h"
#include "core/err.h"
#include "engine/pocket/flowlm.h"
#include "engine/pocket/pkconfig.h"
#include "engine/pocket/pkparity.h"
#include "engine/pocket/mimi.h"
#include "model/safetensors.h"

#define PK_RANDCKPT_NO_MAIN
#include "tools/pocket-randckpt.c"

#include <cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

static void t_config(ut_ctx *t)
{
    char p[512], err[256];
    pk_config c;
    int rc = pk_config_load_json(&c, ut_path(p, sizeof p, "reference/pocket-tts/tiny_config.resolved.json"), err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "%s", err);
    UT_EQ_INT(t, 64, c.d_model);
    UT_EQ_INT(t, 4, c.num_heads);
    UT_EQ_INT(t, 2, c.num_layers);
    UT_EQ_INT(t, 48, c.flow_dim);
    UT_EQ_INT(t, 2, c.flow_depth);
    UT_EQ_INT(t, 16, c.ldim);
    UT_EQ_INT(t, 512, c.n_bins);
    UT_EQ_INT(t, 40, c.mt_d_model);
    UT_EQ_INT(t, 96, c.mt_dim_feedforward);
    UT_EQ_INT(t, 3, c.nratios);
    UT_EQ_INT(t, 120, pk_hop(&c));
    UT_EQ_INT(t, 1920, pk_samples_per_frame(&c));
    UT_EQ_STR(t, "tiny_model.safetensors", c.weights_path);
    UT_EQ_INT(t, 1, c.insert_bos_before_voice);
    rc = pk_config_load_json(&c, ut_path(p, sizeof p, "reference/pocket-tts/english_2026-04.resolved.json"), err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "%s", err);
    UT_EQ_INT(t, 1024, c.d_model);
    UT_EQ_INT(t, 6, c.num_layers);
    UT_EQ_INT(t, 32, c.ldim);
    UT_EQ_INT(t, 4000, c.n_bins);
    UT_EQ_STR(t, "hf://kyutai/pocket-tts-without-voice-cloning/languages/english_2026-04/model.safetensors@d29db7978e464fb90cb3359ee0c69a273b9142cc",
              c.weights_path_without_voice_cloning);
    pk_config b;
    UT_EQ_INT(t, 0, pk_config_builtin(&b, "english_2026-04", err, sizeof err));
    UT_EQ_STR(t, c.weights_path, b.weights_path);
    UT_EQ_STR(t, c.weights_path_without_voice_cloning, b.weights_path_without_voice_cloning);
    UT_EQ_STR(t, c.tokenizer_path, b.tokenizer_path);
    UT_EQ_INT(t, c.d_model, b.d_model);
    UT_EQ_INT(t, c.flow_dim, b.flow_dim);
    UT_EQ_INT(t, c.mt_context, b.mt_context);
    UT_EQ_INT(t, 0, pk_config_builtin(&c, "french_24l", err, sizeof err));
    UT_EQ_STR(t, "hf://kyutai/pocket-tts/languages/french_24l/model.safetensors@39592ff23c9ef80098bb74895d104c26275fe2c9",
              c.weights_path);
    UT_EQ_INT(t, 24, c.num_layers);
    UT_EQ_INT(t, 0, pk_config_builtin(&c, "english_2026-01", err, sizeof err));
    UT_EQ_INT(t, 512, c.ldim);
    UT_EQ_INT(t, 0, c.insert_bos_before_voice);
    for (int i = 0; pk_config_builtin_name(i); i++)
        UT_EQ_INT(t, 0, pk_config_builtin(&c, pk_config_builtin_name(i), err, sizeof err));
    UT_EQ_INT(t, ERR_NOTFOUND, pk_config_builtin(&c, "klingon", err, sizeof err));
    const char *bad = "{\"flow_lm\":{\"transformer\":{\"num_heads\":\"x\"}}}";
    UT_EQ_INT(t, ERR_FORMAT, pk_config_parse_json(&c, bad, strlen(bad), err, sizeof err));
    UT_CHECK(t, strstr(err, "num_heads") != NULL);
    const char *odd = "{\"flow_lm\":{\"transformer\":{\"d_model\":100,\"num_heads\":3},\"lookup_table\":{\"dim\":100}}}";
    UT_EQ_INT(t, ERR_FORMAT, pk_config_parse_json(&c, odd, strlen(odd), err, sizeof err));
    UT_EQ_INT(t, ERR_FORMAT, pk_config_parse_json(&c, "[]", 2, err, sizeof err));
}

typedef struct tiny {
    pk_config cfg;
    st_file *w;
    pk_flowlm *m;
} tiny;

static void tiny_open(ut_ctx *t, tiny *ty, nn_dtype dt, int hugepages)
{
    char p[512], err[256];
    memset(ty, 0, sizeof *ty);
    if (pk_config_load_json(&ty->cfg, ut_path(p, sizeof p, "reference/pocket-tts/tiny_config.resolved.json"), err, sizeof err))
        ut_fail(t, __FILE__, __LINE__, "%s", err);
    if (st_open(&ty->w, ut_path(p, sizeof p, "reference/pocket-tts/tiny_model.safetensors"), err, sizeof err))
        ut_fail(t, __FILE__, __LINE__, "%s", err);
    pk_flowlm_opts o = {dt, NULL, NULL, hugepages};
    if (pk_flowlm_load(&ty->m, &ty->cfg, ty->w, &o, err, sizeof err)) ut_fail(t, __FILE__, __LINE__, "%s", err);
}

static void tiny_close(tiny *ty)
{
    pk_flowlm_free(ty->m);
    st_close(ty->w);
}

static void t_load_errors(ut_ctx *t)
{
    tiny ty;
    tiny_open(t, &ty, NN_F32, 0);
    char err[256];
    pk_config c = ty.cfg;
    c.flow_dim = 50; /* checkpoint has 48 */
    pk_flowlm *m = NULL;
    int rc = pk_flowlm_load(&m, &c, ty.w, NULL, err, sizeof err);
    UT_EQ_INT(t, ERR_FORMAT, rc);
    UT_CHECK(t, m == NULL);
    if (!strstr(err, "flow_lm.flow_net") || !strstr(err, "expected shape"))
        ut_fail(t, __FILE__, __LINE__, "message should name the tensor and shapes: %s", err);
    c = ty.cfg;
    c.num_layers = 3; /* layer 2 absent */
    UT_EQ_INT(t, ERR_NOTFOUND, pk_flowlm_load(&m, &c, ty.w, NULL, err, sizeof err));
    UT_CHECK(t, strstr(err, "flow_lm.transformer.layers.2.") != NULL);
    tiny_close(&ty);
}

static void t_eos_rule(ut_ctx *t)
{
    /* golden B: logits of steps 0..8, threshold between 1.755 and 1.832, 5 frames after EOS */
    const float lg[] = {0.406f, 1.324f, 1.755f, 0.312f, 1.832f, 0.226f, -0.161f, 0.487f, 0.826f, 0.9f, 2.0f};
    pk_eos e;
    pk_eos_init(&e, 5, 71);
    int emitted = 0, k = 0;
    for (; k < 11; k++) {
        if (!pk_eos_emit(&e, k, lg[k], 1.7932249f)) break;
        emitted++;
    }
    UT_EQ_INT(t, 9, emitted);
    UT_EQ_INT(t, 4, e.eos_step);
    pk_eos_init(&e, 3, 2); /* max length wins */
    UT_EQ_INT(t, 1, pk_eos_emit(&e, 0, -10, 0));
    UT_EQ_INT(t, 1, pk_eos_emit(&e, 1, -10, 0));
    UT_EQ_INT(t, 0, pk_eos_emit(&e, 2, -10, 0));
    UT_EQ_INT(t, 71, pk_max_frames(11, 12.5f));
    UT_EQ_INT(t, 5, pk_default_frames_after_eos(3));
    UT_EQ_INT(t, 3, pk_default_frames_after_eos(5));
}

static void t_gauss(ut_ctx *t)
{
    pk_gauss a, b;
    float x[4000], y[4000];
    pk_gauss_seed(&a, 42), pk_gauss_seed(&b, 42);
    pk_gauss_fill(&a, x, 4000, 0.7f, 0), pk_gauss_fill(&b, y, 4000, 0.7f, 0);
    UT_CHECK(t, !memcmp(x, y, sizeof x));
    double s = 0, ss = 0;
    for (int i = 0; i < 4000; i++) s += x[i], ss += (double)x[i] * x[i];
    UT_NEAR(t, 0.0, s / 4000, 0.05);
    UT_NEAR(t, 0.7, ss / 4000, 0.07);
    pk_gauss_seed(&b, 43);
    pk_gauss_fill(&b, y, 4000, 0.7f, 0);
    UT_CHECK(t, memcmp(x, y, sizeof x) != 0);
    pk_gauss_fill(&a, x, 4000, 0.5f, 1.2f);
    for (int i = 0; i < 4000; i++)
        if (fabsf(x[i]) > 1.2f) ut_fail(t, __FILE__, __LINE__, "clamp violated: %g", x[i]);
}

static void noop_trace(void *ud, const char *name, const float *x, size_t n) { (void)ud, (void)name, (void)x, (void)n; }

/* A 100-token prompt in chunks (no trace) equals the one-shot (traced) pass. */
static void t_chunked_prompt(ut_ctx *t)
{
    tiny ty;
    tiny_open(t, &ty, NN_F32, 0);
    char err[256];
    int ids[100];
    for (int i = 0; i < 100; i++) ids[i] = (i * 37) % 513;
    pk_fstate *a = NULL, *b = NULL;
    UT_EQ_INT(t, 0, pk_fstate_new(&a, ty.m, 120, err, sizeof err));
    UT_EQ_INT(t, 0, pk_fstate_new(&b, ty.m, 120, err, sizeof err));
    pk_fstate_set_trace(b, noop_trace, NULL);
    pk_gen_params p;
    pk_gen_params_default(&p);
    UT_EQ_INT(t, 0, pk_flowlm_prompt_text(ty.m, a, ids, 100, &p, NULL, err, sizeof err));
    UT_EQ_INT(t, 0, pk_flowlm_prompt_text(ty.m, b, ids, 100, &p, NULL, err, sizeof err));
    UT_EQ_INT(t, 100, pk_fstate_pos(a));
    const nn_kv *ka = pk_fstate_kv(a, 1), *kb = pk_fstate_kv(b, 1);
    size_t n = (size_t)100 * ka->heads * ka->hd;
    double md = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)ka->v[i] - kb->v[i]);
        if (d > md) md = d;
    }
    if (md > 1e-5) ut_fail(t, __FILE__, __LINE__, "chunked vs whole prompt: layer-1 V differs by %g", md);
    /* out-of-range ids and overflow are refused */
    int bad = 513;
    UT_EQ_INT(t, ERR_INVAL, pk_flowlm_prompt_text(ty.m, a, &bad, 1, &p, NULL, err, sizeof err));
    UT_EQ_INT(t, ERR_TOOBIG, pk_flowlm_prompt_text(ty.m, a, ids, 21, &p, NULL, err, sizeof err));
    pk_fstate_free(a);
    pk_fstate_free(b);
    tiny_close(&ty);
}

typedef struct gnoise {
    const st_file *g;
    int k;
} gnoise;
static int gnoise_fill(void *ud, float *x0, int n, float temp, float clamp)
{
    gnoise *gn = ud;
    char name[64];
    if (gn->k < 0) snprintf(name, sizeof name, "text/noise.x0");
    else snprintf(name, sizeof name, "step%03d/noise.x0", gn->k);
    return st_to_f32(st_find(gn->g, name), x0, (size_t)n, NULL, 0);
}

static void rc_open(ut_ctx *t, st_file **f, const char *path)
{
    char err[256];
    if (st_open(f, path, err, sizeof err)) ut_fail(t, __FILE__, __LINE__, "%s", err);
}

/* Scenario B: imported voice, copied state, text prompt, 3 LSD steps with golden noise. */
static void run_b(ut_ctx *t, nn_dtype dt, double tol, int hugepages)
{
    tiny ty;
    tiny_open(t, &ty, dt, hugepages);
    char p[512], err[256];
    st_file *g = NULL, *v = NULL;
    if (st_open(&g, ut_path(p, sizeof p, "reference/pocket-tts/golden_B.safetensors"), err, sizeof err) ||
        st_open(&v, ut_path(p, sizeof p, "reference/pocket-tts/voice_state_A.safetensors"), err, sizeof err))
        ut_fail(t, __FILE__, __LINE__, "%s", err);
    pk_fstate *voice = NULL, *s = NULL;
    UT_EQ_INT(t, 0, pk_fstate_new(&voice, ty.m, 21, err, sizeof err));
    UT_EQ_INT(t, 0, pk_fstate_import_voice(voice, v, err, sizeof err));
    UT_EQ_INT(t, 21, pk_fstate_pos(voice));
    UT_EQ_INT(t, ERR_INVAL, pk_fstate_import_voice(voice, v, err, sizeof err)); /* not empty */
    {
        /* a model with fewer layers must refuse this voice, naming the extra tensor */
        pk_config c1 = ty.cfg;
        c1.num_layers = 1;
        pk_flowlm *m1 = NULL;
        pk_fstate *s1 = NULL;
        UT_EQ_INT(t, 0, pk_flowlm_load(&m1, &c1, ty.w, NULL, err, sizeof err));
        UT_EQ_INT(t, 0, pk_fstate_new(&s1, m1, 21, err, sizeof err));
        UT_EQ_INT(t, ERR_FORMAT, pk_fstate_import_voice(s1, v, err, sizeof err));
        UT_CHECK(t, strstr(err, "transformer.layers.1.self_attn/cache") != NULL);
        pk_fstate_free(s1);
        pk_flowlm_free(m1);
    }
    UT_EQ_INT(t, 0, pk_fstate_new(&s, ty.m, 64, err, sizeof err));
    UT_EQ_INT(t, 0, pk_fstate_copy(s, voice, err, sizeof err));
    const st_tensor *tok = st_find(g, "text/tokens");
    int ids[64], T = (int)tok->numel;
    float f[64];
    st_to_f32(tok, f, (size_t)T, NULL, 0);
    for (int i = 0; i < T; i++) ids[i] = (int)f[i];
    pk_gen_params pr = {0.5f, 3, 1.2f, 1.7932249307632446f};
    gnoise gn = {g, -1};
    pk_noise nz = {gnoise_fill, &gn};
    UT_EQ_INT(t, 0, pk_flowlm_prompt_text(ty.m, s, ids, T, &pr, &nz, err, sizeof err));
    float prev[16], lat[16], want[16], logit;
    for (int k = 0; k < 3; k++) {
        gn.k = k;
        UT_EQ_INT(t, 0, pk_flowlm_step(ty.m, s, k ? prev : NULL, &pr, &nz, lat, &logit, err, sizeof err));
        char name[64];
        snprintf(name, sizeof name, "step%03d/latent", k);
        st_to_f32(st_find(g, name), want, 16, NULL, 0);
        double md = 0, mx = 0;
        for (int i = 0; i < 16; i++) {
            if (fabs((double)lat[i] - want[i]) > md) md = fabs((double)lat[i] - want[i]);
            if (fabs(want[i]) > mx) mx = fabs(want[i]);
        }
        if (md / mx > tol) ut_fail(t, __FILE__, __LINE__, "%s: rel err %g > %g", name, md / mx, tol);
        memcpy(prev, lat, sizeof lat);
    }
    /* export the imported voice and read it back: identical caches */
    if (dt == NN_F32) {
        char out[128];
        snprintf(out, sizeof out, "/tmp/pk-voice-%d.safetensors", (int)getpid());
        UT_EQ_INT(t, 0, pk_fstate_export_voice(voice, out, err, sizeof err));
        st_file *e = NULL;
        rc_open(t, &e, out);
        unlink(out);
        pk_fstate *back = NULL;
        UT_EQ_INT(t, 0, pk_fstate_new(&back, ty.m, 21, err, sizeof err));
        UT_EQ_INT(t, 0, pk_fstate_import_voice(back, e, err, sizeof err));
        UT_EQ_INT(t, 21, pk_fstate_pos(back));
        for (int i = 0; i < ty.cfg.num_layers; i++) {
            const nn_kv *a = pk_fstate_kv(voice, i), *b = pk_fstate_kv(back, i);
            size_t n = (size_t)21 * a->heads * a->hd * sizeof(float);
            UT_CHECK(t, !memcmp(a->k, b->k, n) && !memcmp(a->v, b->v, n));
        }
        UT_EQ_INT(t, NN_F32, pk_flowlm_native_dtype(ty.w, NULL));
        pk_fstate_free(back);
        st_close(e);
    }
    pk_fstate_free(s);
    pk_fstate_free(voice);
    st_close(v);
    st_close(g);
    tiny_close(&ty);
}

/* Scenario B through pk_flowlm_prompt_text_step: text prompt and step 0 in one pass give
 * golden step 0 (latent and EOS logit), the same position count as the two calls, and
 * steps 1-2 continue from it as from the two-call path. */
static void t_prompt_step(ut_ctx *t)
{
    tiny ty;
    tiny_open(t, &ty, NN_F32, 0);
    char p[512], err[256];
    st_file *g = NULL, *v = NULL;
    if (st_open(&g, ut_path(p, sizeof p, "reference/pocket-tts/golden_B.safetensors"), err, sizeof err) ||
        st_open(&v, ut_path(p, sizeof p, "reference/pocket-tts/voice_state_A.safetensors"), err, sizeof err))
        ut_fail(t, __FILE__, __LINE__, "%s", err);
    const st_tensor *tok = st_find(g, "text/tokens");
    int ids[64], T = (int)tok->numel;
    float f[64];
    st_to_f32(tok, f, (size_t)T, NULL, 0);
    for (int i = 0; i < T; i++) ids[i] = (int)f[i];
    pk_gen_params pr = {0.5f, 3, 1.2f, 1.7932249307632446f};
    pk_fstate *a = NULL, *b = NULL;
    UT_EQ_INT(t, 0, pk_fstate_new(&a, ty.m, 64, err, sizeof err));
    UT_EQ_INT(t, 0, pk_fstate_new(&b, ty.m, 64, err, sizeof err));
    UT_EQ_INT(t, 0, pk_fstate_import_voice(a, v, err, sizeof err));
    UT_EQ_INT(t, 0, pk_fstate_import_voice(b, v, err, sizeof err));
    gnoise gn = {g, 0};
    pk_noise nz = {gnoise_fill, &gn};
    float la[3][16], lb[3][16], ea[3], eb[3], want[16];
    /* a: one pass; b: prompt, then step 0 */
    UT_EQ_INT(t, 0, pk_flowlm_prompt_text_step(ty.m, a, ids, T, &pr, &nz, la[0], &ea[0], err, sizeof err));
    UT_EQ_INT(t, 0, pk_flowlm_prompt_text(ty.m, b, ids, T, &pr, NULL, err, sizeof err));
    UT_EQ_INT(t, 0, pk_flowlm_step(ty.m, b, NULL, &pr, &nz, lb[0], &eb[0], err, sizeof err));
    UT_EQ_INT(t, pk_fstate_pos(b), pk_fstate_pos(a));
    UT_EQ_INT(t, 21 + T + 1, pk_fstate_pos(a));
    for (int k = 1; k < 3; k++) {
        gn.k = k;
        UT_EQ_INT(t, 0, pk_flowlm_step(ty.m, a, la[k - 1], &pr, &nz, la[k], &ea[k], err, sizeof err));
        UT_EQ_INT(t, 0, pk_flowlm_step(ty.m, b, lb[k - 1], &pr, &nz, lb[k], &eb[k], err, sizeof err));
    }
    for (int k = 0; k < 3; k++) {
        char name[64];
        snprintf(name, sizeof name, "step%03d/latent", k);
        st_to_f32(st_find(g, name), want, 16, NULL, 0);
        double md = 0, mab = 0, mx = 0;
        for (int i = 0; i < 16; i++) {
            if (fabs((double)la[k][i] - want[i]) > md) md = fabs((double)la[k][i] - want[i]);
            if (fabs((double)la[k][i] - lb[k][i]) > mab) mab = fabs((double)la[k][i] - lb[k][i]);
            if (fabs(want[i]) > mx) mx = fabs(want[i]);
        }
        if (md / mx > 1e-4) ut_fail(t, __FILE__, __LINE__, "%s one pass vs golden: rel err %g > 1e-4", name, md / mx);
        if (mab / mx > 1e-5)
            ut_fail(t, __FILE__, __LINE__, "%s one pass vs two calls: rel diff %g > 1e-5", name, mab / mx);
        if (fabsf(ea[k] - eb[k]) > 1e-4f)
            ut_fail(t, __FILE__, __LINE__, "step %d EOS logit: one pass %g, two calls %g", k, ea[k], eb[k]);
    }
    /* refusals as the prompt's: bad id, no room for T + 1 positions, empty prompt */
    pk_fstate_reset(a);
    int bad = 513;
    UT_EQ_INT(t, ERR_INVAL, pk_flowlm_prompt_text_step(ty.m, a, &bad, 1, &pr, &nz, la[0], &ea[0], err, sizeof err));
    int many[64];
    for (int i = 0; i < 64; i++) many[i] = 1;
    UT_EQ_INT(t, ERR_TOOBIG, pk_flowlm_prompt_text_step(ty.m, a, many, 64, &pr, &nz, la[0], &ea[0], err, sizeof err));
    UT_EQ_INT(t, ERR_INVAL, pk_flowlm_prompt_text_step(ty.m, a, ids, 0, &pr, &nz, la[0], &ea[0], err, sizeof err));
    pk_fstate_free(a);
    pk_fstate_free(b);
    st_close(v);
    st_close(g);
    tiny_close(&ty);
}

static void t_golden_b(ut_ctx *t) { run_b(t, NN_F32, 1e-4, 0); }
static void t_golden_b_huge(ut_ctx *t) { run_b(t, NN_F32, 1e-4, 1); }
static void t_golden_b_bf16(ut_ctx *t) { run_b(t, NN_BF16, 5e-2, 0); }

/* Full-size english_2026-04 layout: a random BF16 checkpoint (written to /tmp, ~219 MB)
 * has every layout tensor with its exact shape, FlowLM and Mimi load it without a single
 * name or shape complaint, and one prompt + step produce a finite latent. */
static void t_randckpt_full(ut_ctx *t)
{
    char lp[512], cp[512], out[256], err[512];
    ut_path(lp, sizeof lp, "reference/pocket-tts/layout-english_2026-04.json");
    ut_path(cp, sizeof cp, "reference/pocket-tts/english_2026-04.resolved.json");
    snprintf(out, sizeof out, "/tmp/pocket-randckpt-%d.safetensors", (int)getpid());
    if (pkr_write(lp, out, "BF16", 7, err, sizeof err)) ut_fail(t, __FILE__, __LINE__, "randckpt: %s", err);
    st_file *f = NULL;
    int rc = st_open(&f, out, err, sizeof err);
    unlink(out); /* the mapping stays valid */
    if (rc) ut_fail(t, __FILE__, __LINE__, "open: %s", err);
    /* every layout tensor, exact shape */
    FILE *lf = fopen(lp, "rb");
    UT_CHECK(t, lf != NULL);
    static char txt[1 << 20];
    size_t n = fread(txt, 1, sizeof txt, lf);
    fclose(lf);
    cJSON *root = cJSON_ParseWithLength(txt, n);
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(root, "tensors");
    int count = 0;
    for (const cJSON *e = ts ? ts->child : NULL; e; e = e->next, count++) {
        int64_t dims[ST_MAX_DIMS];
        int nd = 0;
        for (const cJSON *d = e->child; d; d = d->next) dims[nd++] = (int64_t)d->valuedouble;
        if (st_expect(f, e->string, nd, dims, NULL, err, sizeof err)) {
            cJSON_Delete(root);
            st_close(f);
            ut_fail(t, __FILE__, __LINE__, "%s", err);
        }
    }
    cJSON_Delete(root);
    UT_EQ_INT(t, 214, count);
    UT_EQ_INT(t, 214, st_count(f));
    pk_config cfg;
    if (pk_config_load_json(&cfg, cp, err, sizeof err)) ut_fail(t, __FILE__, __LINE__, "%s", err);
    pk_flowlm *m = NULL;
    pk_flowlm_opts o = {NN_BF16, NULL, NULL, 1};
    if (pk_flowlm_load(&m, &cfg, f, &o, err, sizeof err)) {
        st_close(f);
        ut_fail(t, __FILE__, __LINE__, "flowlm load: %s", err);
    }
    mimi_config mc;
    mimi_config_from_pk(&mc, &cfg);
    mimi *mm = NULL;
    rc = mimi_open(&mm, f, "mimi.", "flow_lm.", &mc, MIMI_DECODER | MIMI_ENCODER, err, sizeof err);
    mimi_free(mm);
    if (rc) {
        pk_flowlm_free(m);
        st_close(f);
        ut_fail(t, __FILE__, __LINE__, "mimi load: %s", err);
    }
    pk_fstate *s = NULL;
    UT_EQ_INT(t, 0, pk_fstate_new(&s, m, 16, err, sizeof err));
    pk_gen_params p;
    pk_gen_params_default(&p);
    pk_gauss g;
    pk_gauss_seed(&g, 1);
    pk_noise nz = {pk_gauss_fill, &g};
    int ids[3] = {10, 200, 3999};
    float lat[32], logit;
    UT_EQ_INT(t, 0, pk_flowlm_prompt_text(m, s, ids, 3, &p, NULL, err, sizeof err));
    UT_EQ_INT(t, 0, pk_flowlm_step(m, s, NULL, &p, &nz, lat, &logit, err, sizeof err));
    for (int i = 0; i < 32; i++) UT_CHECK(t, isfinite(lat[i]) && fabsf(lat[i]) < 1e3f);
    UT_CHECK(t, isfinite(logit));
    pk_fstate_free(s);
    pk_flowlm_free(m);
    st_close(f);
}

static void t_pkparity(ut_ctx *t)
{
    float ref[4] = {1, -2, NAN, 0.5f}, ours[4] = {1.001f, -2, NAN, 0.5f};
    pkp_err e = pkp_diff(ref, ours, 4);
    UT_NEAR(t, 0.001, e.max_abs, 1e-6);
    UT_NEAR(t, 2.0, e.max_ref, 0);
    UT_NEAR(t, 0.0005, e.rel, 1e-6);
    ours[2] = 1; /* NaN in one only */
    UT_CHECK(t, isinf(pkp_diff(ref, ours, 4).max_abs));
    float s0 = 0.01f, s1 = 0.0101f; /* near-zero scalar: relative to the floor */
    UT_NEAR(t, 1e-4 / PKP_REL_FLOOR, pkp_diff(&s0, &s1, 1).rel, 1e-6);
    pkp_report r = {0};
    ours[2] = NAN;
    UT_EQ_INT(t, 1, pkp_row(&r, "a", ref, ours, 4, 1e-3));
    UT_EQ_INT(t, 0, pkp_row(&r, "b", ref, ours, 4, 1e-4));
    UT_EQ_INT(t, 2, r.rows);
    UT_EQ_INT(t, 1, r.fails);
    UT_EQ_STR(t, "a", r.worst); /* ties keep the first */
    UT_EQ_INT(t, 1, pkp_summary(&r));
}

/* golden noise in draw order: step000, step001, ... */
typedef struct seqnoise {
    const st_file *g;
    int k;
} seqnoise;
static int seq_fill(void *ud, float *x0, int n, float temp, float clamp)
{
    seqnoise *q = ud;
    char name[64];
    snprintf(name, sizeof name, "step%03d/noise.x0", q->k++);
    const st_tensor *t = st_find(q->g, name);
    return t ? st_to_f32(t, x0, (size_t)n, NULL, 0) : ERR_NOTFOUND;
}

typedef struct collect {
    const st_file *g;
    double worst;
    int n, stop_at;
} collect;
static int on_latent(void *ud, int k, const float *lat)
{
    collect *c = ud;
    char name[64];
    float want[16];
    snprintf(name, sizeof name, "step%03d/latent", k);
    st_to_f32(st_find(c->g, name), want, 16, NULL, 0);
    for (int i = 0; i < 16; i++)
        if (fabs((double)want[i] - lat[i]) > c->worst) c->worst = fabs((double)want[i] - lat[i]);
    c->n++;
    return c->stop_at >= 0 && k == c->stop_at;
}

/* The whole chunk loop on scenario B: 9 frames (EOS at step 4 + 5), latents as golden. */
static void t_generate(ut_ctx *t)
{
    tiny ty;
    tiny_open(t, &ty, NN_F32, 0);
    char p[512], err[256];
    st_file *g = NULL, *v = NULL;
    if (st_open(&g, ut_path(p, sizeof p, "reference/pocket-tts/golden_B.safetensors"), err, sizeof err) ||
        st_open(&v, ut_path(p, sizeof p, "reference/pocket-tts/voice_state_A.safetensors"), err, sizeof err))
        ut_fail(t, __FILE__, __LINE__, "%s", err);
    const st_tensor *tok = st_find(g, "text/tokens");
    int ids[64], T = (int)tok->numel;
    float f[64];
    st_to_f32(tok, f, (size_t)T, NULL, 0);
    for (int i = 0; i < T; i++) ids[i] = (int)f[i];
    pk_gen_params pr = {0.5f, 3, 1.2f, 1.7932249307632446f};
    pk_fstate *s = NULL;
    UT_EQ_INT(t, 0, pk_fstate_new(&s, ty.m, 21 + T + 71, err, sizeof err));
    UT_EQ_INT(t, 0, pk_fstate_import_voice(s, v, err, sizeof err));
    seqnoise q = {g, 0};
    pk_noise nz = {seq_fill, &q};
    collect c = {g, 0, 0, -1};
    int n = -1;
    int rc = pk_flowlm_generate(ty.m, s, ids, T, &pr, &nz, 5, 71, on_latent, &c, &n, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "generate: %s", err);
    UT_EQ_INT(t, 9, n);
    UT_EQ_INT(t, 9, c.n);
    UT_EQ_INT(t, 10, q.k); /* step 9 is computed, then dropped */
    UT_CHECK(t, c.worst < 1e-4);
    /* cancel from the callback; capacity is checked before anything runs */
    pk_fstate_reset(s);
    UT_EQ_INT(t, 0, pk_fstate_import_voice(s, v, err, sizeof err));
    q.k = 0;
    collect c2 = {g, 0, 0, 2};
    UT_EQ_INT(t, ERR_CANCEL, pk_flowlm_generate(ty.m, s, ids, T, &pr, &nz, 5, 71, on_latent, &c2, &n, err, sizeof err));
    UT_EQ_INT(t, 2, n);
    UT_EQ_INT(t, ERR_TOOBIG, pk_flowlm_generate(ty.m, s, ids, T, &pr, &nz, 5, 1000, NULL, NULL, &n, err, sizeof err));
    pk_fstate_free(s);
    st_close(v);
    st_close(g);
    tiny_close(&ty);
}

/* Step work sharing (pk_share): a helper thread claiming row chunks of the steps' linears
 * changes no bit of the latents or EOS logits (F32 and BF16), and really takes chunks. */
typedef struct helper_arg {
    pk_share *sh;
    atomic_int quit;
    long chunks;
} helper_arg;

static void *helper_main(void *u)
{
    helper_arg *h = u;
    while (!atomic_load(&h->quit)) h->chunks += pk_share_help(h->sh);
    return NULL;
}

static void t_share(ut_ctx *t)
{
    for (int dt = 0; dt < 2; dt++) {
        tiny ty;
        tiny_open(t, &ty, dt ? NN_BF16 : NN_F32, 0);
        char err[256];
        enum { K = 24 };
        float lat[3][K][16], eos[3][K];
        long helped = 0;
        for (int run = 0; run < 3; run++) { /* 0: no share; 1: share, no helper; 2: share + helper */
            pk_fstate *s = NULL;
            pk_share *sh = NULL;
            UT_EQ_INT(t, 0, pk_fstate_new(&s, ty.m, 64, err, sizeof err));
            if (run) UT_EQ_INT(t, 0, pk_share_new(&sh, 1));
            if (run == 2) pk_share_test_wait(sh, 1);
            pk_fstate_set_share(s, sh);
            helper_arg h = {sh, 0, 0};
            pthread_t th;
            int started = run == 2 && pthread_create(&th, NULL, helper_main, &h) == 0;
            pk_gen_params gp;
            pk_gen_params_default(&gp);
            pk_gauss g;
            pk_gauss_seed(&g, 99);
            pk_noise nz = {pk_gauss_fill, &g};
            int ids[12];
            for (int i = 0; i < 12; i++) ids[i] = 11 * i + 3;
            UT_EQ_INT(t, 0, pk_flowlm_prompt_text(ty.m, s, ids, 12, &gp, NULL, err, sizeof err));
            for (int k = 0; k < K; k++)
                UT_EQ_INT(t, 0, pk_flowlm_step(ty.m, s, k ? lat[run][k - 1] : NULL, &gp, &nz, lat[run][k], &eos[run][k],
                                               err, sizeof err));
            if (started) {
                atomic_store(&h.quit, 1);
                pthread_join(th, NULL);
                helped = h.chunks;
            }
            pk_fstate_free(s);
            pk_share_free(sh);
        }
        for (int run = 1; run < 3; run++) {
            if (memcmp(lat[0], lat[run], sizeof lat[0]) || memcmp(eos[0], eos[run], sizeof eos[0]))
                ut_fail(t, __FILE__, __LINE__, "%s run %d: latents/EOS differ from the unshared steps (first %g vs %g)",
                        dt ? "bf16" : "f32", run, lat[0][K - 1][0], lat[run][K - 1][0]);
        }
        printf("    %s: helper took %ld row chunks\n", dt ? "bf16" : "f32", helped);
        UT_CHECK(t, helped > 0);
        tiny_close(&ty);
    }
}

/* Same seed → bit-identical latents, whatever the thread count (rows are split, never sums). */
static void t_reproducible(ut_ctx *t)
{
    char p[512], err[256];
    pk_config cfg;
    st_file *w = NULL;
    if (pk_config_load_json(&cfg, ut_path(p, sizeof p, "reference/pocket-tts/tiny_config.resolved.json"), err, sizeof err) ||
        st_open(&w, ut_path(p, sizeof p, "reference/pocket-tts/tiny_model.safetensors"), err, sizeof err))
        ut_fail(t, __FILE__, __LINE__, "%s", err);
    /* run 0: 1 thread; 1: the model's pool of 3; 2: a state pool of 2 (pk_fstate_set_pool)
     * for the prompt and the first steps, then the model's pool of 1 */
    float out[3][8][16];
    for (int run = 0; run < 3; run++) {
        nn_pool *pool = NULL, *spool = NULL;
        UT_EQ_INT(t, 0, nn_pool_new(&pool, run == 1 ? 3 : 1, err, sizeof err));
        UT_EQ_INT(t, 0, nn_pool_new(&spool, 2, err, sizeof err));
        pk_flowlm_opts o = {NN_F32, pool, NULL, 0};
        pk_flowlm *m = NULL;
        pk_fstate *s = NULL;
        UT_EQ_INT(t, 0, pk_flowlm_load(&m, &cfg, w, &o, err, sizeof err));
        UT_EQ_INT(t, 0, pk_fstate_new(&s, m, 64, err, sizeof err));
        if (run == 2) pk_fstate_set_pool(s, spool);
        pk_gen_params gp;
        pk_gen_params_default(&gp);
        pk_gauss g;
        pk_gauss_seed(&g, 12345);
        pk_noise nz = {pk_gauss_fill, &g};
        int ids[20];
        for (int i = 0; i < 20; i++) ids[i] = 7 * i + 1;
        float logit;
        UT_EQ_INT(t, 0, pk_flowlm_prompt_text(m, s, ids, 20, &gp, NULL, err, sizeof err));
        for (int k = 0; k < 8; k++) {
            if (run == 2 && k == 3) pk_fstate_set_pool(s, NULL);
            UT_EQ_INT(t, 0, pk_flowlm_step(m, s, k ? out[run][k - 1] : NULL, &gp, &nz, out[run][k], &logit, err, sizeof err));
        }
        pk_fstate_free(s);
        pk_flowlm_free(m);
        nn_pool_free(pool);
        nn_pool_free(spool);
    }
    st_close(w);
    UT_CHECK(t, !memcmp(out[0], out[1], sizeof out[0]));
    UT_CHECK(t, !memcmp(out[0], out[2], sizeof out[0]));
}

static const ut_case cases[] = {
    {"reproducible", t_reproducible},
    {"generate", t_generate},
    {"pkparity", t_pkparity},
    {"randckpt_full", t_randckpt_full},
    {"config", t_config}, {"load_errors", t_load_errors}, {"eos_rule", t_eos_rule}, {"gauss", t_gauss},
    {"chunked_prompt", t_chunked_prompt}, {"prompt_step", t_prompt_step}, {"share", t_share}, {"golden_b", t_golden_b}, {"golden_b_bf16", t_golden_b_bf16}, {"golden_b_huge", t_golden_b_huge},
};
UT_SUITE(flowlm, cases)
