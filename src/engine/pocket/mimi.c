/* mimi.c — Mimi codec (pocket-tts): streaming decoder and prompt encoder. See mimi.h.
 *
 * Structure. The SEANet stacks are built from the config as a list of ops (conv,
 * transposed conv, residual block, ELU) in upstream module order, so the op index is the
 * `model.{i}` number used in tensor names and in the parity taps. Each op owns a slice of
 * streaming state in a mm_sns (conv histories, transposed-conv tails). The transformers
 * (encoder_transformer, decoder_transformer) are pre-norm, LayerNorm eps 1e-5, RoPE
 * (interleaved pairs) at absolute positions, causal attention limited to `context` past
 * steps, exact-erf GELU MLP, no biases, per-channel LayerScale on both branches. Their KV
 * cache is a ring of roundup16(context + steps per call) + 16 slots, so memory does not
 * grow with the utterance.
 *
 * The decoder processes n latent frames per call (1 latent -> 16 steps -> 1920 samples);
 * the encoder processes MM_ENC_CHUNK frames per internal step (bounded memory). Because
 * every layer is causal and carries its state, both equal upstream's one-shot encoder (zero
 * left padding, replicate padding on the downsample) and its streaming decoder, up to float
 * summation order.
 *
 * Layout: time-major [T, C] end to end in both directions (decoder: quantizer, depthwise
 * upsample, transformer, SEANet; encoder: SEANet, transformer, downsample), so there are
 * no transposes; the SEANet and downsample weights are re-packed at load into conv_gemm
 * panels (nn/conv.h "_tm": a k-tap, stride-s conv is a GEMM over overlapping input rows,
 * no im2col). Only the parity taps see channel-major copies (upstream's layout).
 *
 * Batch invariance: every decoder kernel computes each output with the same operations in
 * the same order whatever the number of frames in the call (conv_gemm, conv_softmax and the
 * attention below; nn_linear's GEMM guarantees it for M >= 2), so n frames in one call give
 * exactly the samples of n single-frame calls, and a pool (mimi_dec_set_pool) changes
 * nothing either. test_mimi checks it bit for bit.
 *
 * The transformer uses nn's kernels (nn_linear, nn_layernorm, nn_rope, nn_gelu_erf) and its
 * own block attention (mm_attend: keys/values cached as conv_gemm panels per head, one or
 * two conv_gemm per head for the scores of a frame's 16 queries and one or two for P.V).
 *
 * Invariants: everything is float32 (unless a speed mode stores BF16/int8 weights);
 * no allocation happens in mimi_dec_frame(s) (all scratch is sized in mimi_dec_new*).
 */
#include "engine/pocket/mimi.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/resample.h"
#include "core/err.h"
#include "engine/pocket/pkconfig.h"
#include "nn/conv.h"
#include "nn/nn.h"

enum { OP_CONV, OP_CONVTR, OP_RES, OP_ELU };
#define MM_MAX_OPS 64
#define MM_MAX_LAYERS 64
#define MM_ENC_CHUNK 8  /* latent frames the encoder processes per internal step */
#define MIMI_MAX_ENCODE_SAMPLES ((size_t)24000 * 600) /* 10 minutes at 24 kHz: hard cap */

typedef struct mm_op {
    int kind;
    int idx;      /* N in <prefix><stack>.model.N */
    conv1d c;     /* OP_CONV; OP_RES: block.1 (k residual_kernel_size, dilation) */
    conv1d c2;    /* OP_RES: block.3 (k1) */
    convtr1d t;   /* OP_CONVTR */
    /* decoder only: time-major packed weights (conv.h), owned by the mimi:
     * wp = c (conv1d_tm_pack) or t (convtr1d_tm_pack); wp2 = c2. F32 panels, or BF16
     * panels (uint16) when c.pk_bf16 / t.pk_bf16 (mimi_set_dec_dtype) */
    void *wp, *wp2;
} mm_op;

typedef struct mm_seanet {
    const char *name; /* "encoder" or "decoder" */
    mm_op ops[MM_MAX_OPS];
    int nops;
    int cin, cout; /* channels in/out of the whole stack */
} mm_seanet;

typedef struct mm_tlayer {
    const float *in_proj;            /* [3d, d]: rows q | k | v, head h at h*hd.. in each */
    const float *out_proj;           /* [d, d] */
    const float *n1w, *n1b, *n2w, *n2b; /* [d] LayerNorm gains/biases */
    const float *lin1;               /* [ff, d] */
    const float *lin2;               /* [d, ff] */
    const float *ls1, *ls2;          /* [d] LayerScale, or NULL */
    /* The four matrices above as nn_linear sees them: F32 views of the same memory by
     * default; BF16 / NN_Q8 copies (owned by the mimi) after mimi_set_dec_dtype. */
    nn_mat w_in, w_out, w_1, w_2;
    /* Decoder: the same four packed as conv_gemm panels (owned by the mimi; they stream
     * ~30 % faster than nn_linear's on-the-fly packing for 16 rows): F32, or BF16 (uint16)
     * when p_bf16 (mimi_set_dec_dtype NN_BF16); NULL in the encoder and in NN_Q8 mode (the
     * int8 copies in w_* are used instead). */
    void *p_in, *p_out, *p_1, *p_2;
    int p_bf16;
} mm_tlayer;

typedef struct mm_tf {
    const char *name; /* "encoder_transformer" or "decoder_transformer" */
    int d, heads, hd, nl, ff, context;
    float max_period; /* RoPE */
    mm_tlayer L[MM_MAX_LAYERS];
} mm_tf;

struct mimi {
    mimi_config cfg;
    int parts;
    int ldim, frame, steps, hop; /* steps: encoder-rate steps per latent (16) */
    const float *q_proj;         /* [outer, ldim] (conv weight [outer, ldim, 1]) */
    convtr1d up;                 /* depthwise: w [outer, 1, 2*steps], cout = dimension */
    conv1d down;                 /* w [ldim, dimension, 2*steps], replicate, no bias */
    float *down_wp;              /* down packed for conv1d_tm_run (owned) */
    mm_tf dtf, etf;
    mm_seanet dec, enc;
    const float *emb_std, *emb_mean; /* [ldim] or NULL */
    void **owned;
    int nowned, capowned;
};

/* ---- config ------------------------------------------------------------------------ */

void mimi_config_english(mimi_config *c)
{
    memset(c, 0, sizeof *c);
    c->sample_rate = 24000;
    c->frame_rate = 12.5;
    c->channels = 1;
    c->dimension = 512;
    c->n_filters = 64;
    c->n_residual_layers = 1;
    c->ratios[0] = 6;
    c->ratios[1] = 5;
    c->ratios[2] = 4;
    c->n_ratios = 3;
    c->kernel_size = 7;
    c->residual_kernel_size = 3;
    c->last_kernel_size = 3;
    c->dilation_base = 2;
    c->compress = 2;
    c->pad_replicate = 0;
    c->d_model = 512;
    c->num_heads = 8;
    c->num_layers = 2;
    c->dim_feedforward = 2048;
    c->context = 250;
    c->max_period = 10000.0;
    c->inner_dim = 32;
    c->outer_dim = 512;
}

void mimi_config_from_pk(mimi_config *c, const struct pk_config *pk)
{
    mimi_config_english(c);
    c->sample_rate = pk->sample_rate;
    c->frame_rate = pk->frame_rate;
    c->dimension = pk->seanet_dimension;
    c->n_filters = pk->n_filters;
    c->n_residual_layers = pk->n_residual_layers;
    c->n_ratios = pk->nratios < MIMI_MAX_RATIOS ? pk->nratios : MIMI_MAX_RATIOS;
    for (int i = 0; i < c->n_ratios; i++) c->ratios[i] = pk->ratios[i];
    c->kernel_size = pk->kernel_size;
    c->residual_kernel_size = pk->residual_kernel_size;
    c->last_kernel_size = pk->last_kernel_size;
    c->dilation_base = pk->dilation_base;
    c->compress = pk->compress;
    c->d_model = pk->mt_d_model;
    c->num_heads = pk->mt_num_heads;
    c->num_layers = pk->mt_num_layers;
    c->dim_feedforward = pk->mt_dim_feedforward;
    c->context = pk->mt_context;
    c->max_period = pk->mt_max_period;
    c->inner_dim = pk->ldim;
    c->outer_dim = pk->quant_out_dim;
}

/* Sanity of a config before sizes are derived from it. */
static int cfg_check(const mimi_config *c, char *err, size_t errlen)
{
    int hop = 1;
    for (int i = 0; i < c->n_ratios; i++) {
        if (c->ratios[i] < 1 || c->ratios[i] > 64)
            return err_set(err, errlen, ERR_FORMAT, "mimi config: ratio %d out of range", c->ratios[i]);
        hop *= c->ratios[i];
        if (hop > 1 << 20) return err_set(err, errlen, ERR_FORMAT, "mimi config: hop length too large");
    }
#define CK(cond, what) \
    if (!(cond)) return err_set(err, errlen, ERR_FORMAT, "mimi config: %s", what)
    CK(c->n_ratios >= 1, "no ratios");
    CK(c->sample_rate > 0 && c->sample_rate <= 384000, "sample_rate");
    CK(c->frame_rate > 0, "frame_rate");
    CK(c->channels >= 1 && c->channels <= 8, "channels");
    CK(c->dimension >= 1 && c->dimension <= 65536, "seanet.dimension");
    CK(c->n_filters >= 1 && c->n_filters <= 65536, "seanet.n_filters");
    CK(c->n_residual_layers >= 0 && c->n_residual_layers <= 8, "seanet.n_residual_layers");
    CK(c->kernel_size >= 1 && c->kernel_size <= 64, "seanet.kernel_size");
    CK(c->residual_kernel_size >= 1 && c->residual_kernel_size <= 64, "seanet.residual_kernel_size");
    CK(c->last_kernel_size >= 1 && c->last_kernel_size <= 64, "seanet.last_kernel_size");
    CK(c->dilation_base >= 1 && c->dilation_base <= 16, "seanet.dilation_base");
    CK(c->compress >= 1 && (c->n_filters % c->compress) == 0, "seanet.compress");
    CK(c->d_model >= 1 && c->num_heads >= 1 && c->d_model % c->num_heads == 0 &&
           (c->d_model / c->num_heads) % 2 == 0, "transformer d_model/num_heads (even head_dim)");
    CK(c->num_layers >= 0 && c->num_layers <= MM_MAX_LAYERS, "transformer.num_layers");
    CK(c->dim_feedforward >= 1, "transformer.dim_feedforward");
    CK(c->context >= 1 && c->context <= 1 << 20, "transformer.context");
    CK(c->max_period > 0, "transformer.max_period");
    CK(c->d_model == c->dimension,
       "transformer d_model != seanet dimension (input/output projections unsupported)");
    CK(c->inner_dim >= 1 && c->outer_dim >= 1, "inner_dim/outer_dim");
    CK(c->outer_dim == c->dimension, "outer_dim != seanet dimension (depthwise upsample needs equal)");
#undef CK
    double enc_rate = (double)c->sample_rate / hop;
    double st = enc_rate / c->frame_rate;
    if (st < 1 || fabs(st - floor(st + 0.5)) > 1e-9)
        return err_set(err, errlen, ERR_FORMAT,
                       "mimi config: encoder rate %g / frame rate %g is not an integer", enc_rate,
                       c->frame_rate);
    return 0;
}

/* ---- weights ------------------------------------------------------------------------ */

static int mm_own(mimi *m, void *p)
{
    if (m->nowned == m->capowned) {
        int nc = m->capowned ? m->capowned * 2 : 64;
        void **n = realloc(m->owned, (size_t)nc * sizeof(void *));
        if (!n) return ERR_NOMEM;
        m->owned = n;
        m->capowned = nc;
    }
    m->owned[m->nowned++] = p;
    return 0;
}

/* Fetches tensor (printf-formatted name) with the expected shape as f32: borrowed when
 * aligned F32, converted into owned memory otherwise. */
static int mm_get(mimi *m, const st_file *f, const float **out, int ndim, const int64_t *dims,
                  char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 8, 9)));
static int mm_get(mimi *m, const st_file *f, const float **out, int ndim, const int64_t *dims,
                  char *err, size_t errlen, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const st_tensor *t;
    int rc = st_expect(f, name, ndim, dims, &t, err, errlen);
    if (rc) return rc;
    if (t->dtype == ST_F32 && ((uintptr_t)t->data % sizeof(float)) == 0) {
        *out = t->data;
        return 0;
    }
    float *p = malloc((size_t)t->numel * sizeof(float) + 1);
    if (!p) return err_set(err, errlen, ERR_NOMEM, "out of memory for '%s'", name);
    rc = st_to_f32(t, p, (size_t)t->numel, err, errlen);
    if (rc == 0 && mm_own(m, p)) rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
    if (rc) {
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

static int has_tensor(const st_file *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int has_tensor(const st_file *f, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return st_find(f, name) != NULL;
}

#define DIMS(...) ((const int64_t[]){__VA_ARGS__})
#define NDIMS(...) ((int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))

/* Streaming Conv1d from <base>.conv.{weight,bias}, base like "mimi.decoder.model.3.block.1". */
static int load_conv(mimi *m, const st_file *f, conv1d *c, int cin, int cout, int k, int stride,
                     int dil, char *err, size_t errlen, const char *base)
{
    memset(c, 0, sizeof *c);
    c->cin = cin;
    c->cout = cout;
    c->k = k;
    c->stride = stride;
    c->dil = dil;
    c->groups = 1;
    c->pad_replicate = m->cfg.pad_replicate;
    int rc = mm_get(m, f, &c->w, 3, DIMS(cout, cin, k), err, errlen, "%s.conv.weight", base);
    if (rc) return rc;
    return mm_get(m, f, &c->b, 1, DIMS(cout), err, errlen, "%s.conv.bias", base);
}

static int add_res(mimi *m, const st_file *f, const char *pre, mm_seanet *sn, int idx, int dim,
                   int j, char *err, size_t errlen)
{
    const mimi_config *c = &m->cfg;
    mm_op *op = &sn->ops[sn->nops++];
    int hidden = dim / c->compress, dil = 1;
    for (int i = 0; i < j; i++) dil *= c->dilation_base;
    op->kind = OP_RES;
    op->idx = idx;
    char base[200];
    snprintf(base, sizeof base, "%s.model.%d.block.1", pre, idx);
    int rc = load_conv(m, f, &op->c, dim, hidden, c->residual_kernel_size, 1, dil, err, errlen, base);
    if (rc) return rc;
    snprintf(base, sizeof base, "%s.model.%d.block.3", pre, idx);
    return load_conv(m, f, &op->c2, hidden, dim, 1, 1, 1, err, errlen, base);
}

static const char *mbase(char *b, size_t n, const char *pre, int idx)
{
    snprintf(b, n, "%s.model.%d", pre, idx);
    return b;
}

static int load_seanet(mimi *m, const st_file *f, const char *prefix, mm_seanet *sn, int decoder,
                       char *err, size_t errlen)
{
    const mimi_config *c = &m->cfg;
    char pre[160], base[200];
    snprintf(pre, sizeof pre, "%s%s", prefix, decoder ? "decoder" : "encoder");
    sn->name = decoder ? "decoder" : "encoder";
    sn->nops = 0;
    int idx = 0, rc;
    int need = 2 + c->n_ratios * (2 + c->n_residual_layers) + 2;
    if (need > MM_MAX_OPS) return err_set(err, errlen, ERR_FORMAT, "mimi: SEANet too deep (%d ops)", need);
    if (decoder) {
        int mult = 1 << c->n_ratios;
        sn->cin = c->dimension;
        sn->cout = c->channels;
        mm_op *op = &sn->ops[sn->nops++];
        op->kind = OP_CONV;
        op->idx = idx;
        rc = load_conv(m, f, &op->c, c->dimension, mult * c->n_filters, c->kernel_size, 1, 1, err,
                       errlen, mbase(base, sizeof base, pre, idx));
        if (rc) return rc;
        idx++;
        for (int r = 0; r < c->n_ratios; r++) {
            int ratio = c->ratios[r], ci = mult * c->n_filters, co = ci / 2;
            op = &sn->ops[sn->nops++];
            op->kind = OP_ELU;
            op->idx = idx++;
            op = &sn->ops[sn->nops++];
            op->kind = OP_CONVTR;
            op->idx = idx;
            op->t = (convtr1d){.cin = ci, .cout = co, .k = 2 * ratio, .stride = ratio, .groups = 1};
            rc = mm_get(m, f, &op->t.w, 3, DIMS(ci, co, 2 * ratio), err, errlen,
                        "%s.model.%d.convtr.weight", pre, idx);
            if (rc) return rc;
            rc = mm_get(m, f, &op->t.b, 1, DIMS(co), err, errlen, "%s.model.%d.convtr.bias", pre, idx);
            if (rc) return rc;
            idx++;
            for (int j = 0; j < c->n_residual_layers; j++) {
                rc = add_res(m, f, pre, sn, idx++, co, j, err, errlen);
                if (rc) return rc;
            }
            mult /= 2;
        }
        op = &sn->ops[sn->nops++];
        op->kind = OP_ELU;
        op->idx = idx++;
        op = &sn->ops[sn->nops++];
        op->kind = OP_CONV;
        op->idx = idx;
        return load_conv(m, f, &op->c, c->n_filters, c->channels, c->last_kernel_size, 1, 1, err,
                         errlen, mbase(base, sizeof base, pre, idx));
    }
    int mult = 1;
    sn->cin = c->channels;
    sn->cout = c->dimension;
    mm_op *op = &sn->ops[sn->nops++];
    op->kind = OP_CONV;
    op->idx = idx;
    rc = load_conv(m, f, &op->c, c->channels, c->n_filters, c->kernel_size, 1, 1, err, errlen,
                   mbase(base, sizeof base, pre, idx));
    if (rc) return rc;
    idx++;
    for (int r = c->n_ratios - 1; r >= 0; r--) {
        int ratio = c->ratios[r], ci = mult * c->n_filters;
        for (int j = 0; j < c->n_residual_layers; j++) {
            rc = add_res(m, f, pre, sn, idx++, ci, j, err, errlen);
            if (rc) return rc;
        }
        op = &sn->ops[sn->nops++];
        op->kind = OP_ELU;
        op->idx = idx++;
        op = &sn->ops[sn->nops++];
        op->kind = OP_CONV;
        op->idx = idx;
        rc = load_conv(m, f, &op->c, ci, 2 * ci, 2 * ratio, ratio, 1, err, errlen,
                       mbase(base, sizeof base, pre, idx));
        if (rc) return rc;
        idx++;
        mult *= 2;
    }
    op = &sn->ops[sn->nops++];
    op->kind = OP_ELU;
    op->idx = idx++;
    op = &sn->ops[sn->nops++];
    op->kind = OP_CONV;
    op->idx = idx;
    return load_conv(m, f, &op->c, mult * c->n_filters, c->dimension, c->last_kernel_size, 1, 1,
                     err, errlen, mbase(base, sizeof base, pre, idx));
}

static int load_tf(mimi *m, const st_file *f, const char *prefix, mm_tf *tf, const char *name,
                   char *err, size_t errlen)
{
    const mimi_config *c = &m->cfg;
    int d = c->d_model, ff = c->dim_feedforward, rc;
    tf->name = name;
    tf->d = d;
    tf->heads = c->num_heads;
    tf->hd = d / c->num_heads;
    tf->nl = c->num_layers;
    tf->ff = ff;
    tf->context = c->context;
    tf->max_period = (float)c->max_period;
    if (has_tensor(f, "%s%s.input_proj.weight", prefix, name) ||
        has_tensor(f, "%s%s.output_projs.0.weight", prefix, name))
        return err_set(err, errlen, ERR_FORMAT, "%s%s: input/output projections are not supported",
                       prefix, name);
    for (int l = 0; l < tf->nl; l++) {
        mm_tlayer *L = &tf->L[l];
        char p[200];
        snprintf(p, sizeof p, "%s%s.transformer.layers.%d", prefix, name, l);
#define LG(dst, suffix, ...)                                                                  \
    do {                                                                                      \
        rc = mm_get(m, f, &(dst), NDIMS(__VA_ARGS__), DIMS(__VA_ARGS__), err, errlen, "%s.%s", \
                    p, suffix);                                                               \
        if (rc) return rc;                                                                    \
    } while (0)
        LG(L->in_proj, "self_attn.in_proj.weight", 3 * d, d);
        LG(L->out_proj, "self_attn.out_proj.weight", d, d);
        LG(L->n1w, "norm1.weight", d);
        LG(L->n1b, "norm1.bias", d);
        LG(L->n2w, "norm2.weight", d);
        LG(L->n2b, "norm2.bias", d);
        LG(L->lin1, "linear1.weight", ff, d);
        LG(L->lin2, "linear2.weight", d, ff);
        L->w_in = (nn_mat){.w = L->in_proj, .dtype = NN_F32, .rows = 3 * d, .cols = d};
        L->w_out = (nn_mat){.w = L->out_proj, .dtype = NN_F32, .rows = d, .cols = d};
        L->w_1 = (nn_mat){.w = L->lin1, .dtype = NN_F32, .rows = ff, .cols = d};
        L->w_2 = (nn_mat){.w = L->lin2, .dtype = NN_F32, .rows = d, .cols = ff};
        L->ls1 = L->ls2 = NULL;
        if (has_tensor(f, "%s.layer_scale_1.scale", p)) LG(L->ls1, "layer_scale_1.scale", d);
        if (has_tensor(f, "%s.layer_scale_2.scale", p)) LG(L->ls2, "layer_scale_2.scale", d);
#undef LG
    }
    return 0;
}

/* A 64-byte aligned block of n floats owned by m (NULL when out of memory). */
static float *mm_falloc(mimi *m, size_t n)
{
    float *p = aligned_alloc(64, ((n * sizeof(float)) + 63) & ~(size_t)63);
    if (p && mm_own(m, p)) {
        free(p);
        return NULL;
    }
    return p;
}

/* Frees an owned block (a converted F32 copy that a packed copy replaced); borrowed
 * pointers are left alone. */
static void mm_disown(mimi *m, const void *p)
{
    for (int i = 0; i < m->nowned; i++)
        if (m->owned[i] == p) {
            free(m->owned[i]);
            m->owned[i] = m->owned[--m->nowned];
            return;
        }
}

/* Decoder SEANet weights re-laid for the time-major path (conv.h). The packed copies
 * replace converted F32 copies; borrowed (mmap'd) originals simply stay unused. */
static int pack_seanet(mimi *m, mm_seanet *sn)
{
    for (int i = 0; i < sn->nops; i++) {
        mm_op *op = &sn->ops[i];
        if (op->kind == OP_CONV || op->kind == OP_RES) {
            float *w = mm_falloc(m, conv1d_tm_pack_floats(&op->c));
            if (!(op->wp = w)) return ERR_NOMEM;
            conv1d_tm_pack(&op->c, w);
            mm_disown(m, op->c.w);
            op->c.w = NULL;
        }
        if (op->kind == OP_RES) {
            float *w = mm_falloc(m, conv1d_tm_pack_floats(&op->c2));
            if (!(op->wp2 = w)) return ERR_NOMEM;
            conv1d_tm_pack(&op->c2, w);
            mm_disown(m, op->c2.w);
            op->c2.w = NULL;
        }
        if (op->kind == OP_CONVTR) {
            float *w = mm_falloc(m, convtr1d_tm_pack_floats(&op->t));
            if (!(op->wp = w)) return ERR_NOMEM;
            convtr1d_tm_pack(&op->t, w);
            mm_disown(m, op->t.w);
            op->t.w = NULL;
        }
    }
    return 0;
}

/* A Linear weight W [rows, cols] as conv_gemm panels (a 1x1 conv of cin = cols). */
static void *mm_pack_linear(mimi *m, const nn_mat *W)
{
    conv1d c = {.cin = W->cols, .cout = W->rows, .k = 1, .stride = 1, .dil = 1, .groups = 1, .w = W->w};
    float *p = mm_falloc(m, conv1d_tm_pack_floats(&c));
    if (p) conv1d_tm_pack(&c, p);
    return p;
}

static int pack_tf(mimi *m, mm_tf *tf)
{
    for (int l = 0; l < tf->nl; l++) {
        mm_tlayer *L = &tf->L[l];
        if (!(L->p_in = mm_pack_linear(m, &L->w_in)) || !(L->p_out = mm_pack_linear(m, &L->w_out)) ||
            !(L->p_1 = mm_pack_linear(m, &L->w_1)) || !(L->p_2 = mm_pack_linear(m, &L->w_2)))
            return ERR_NOMEM;
    }
    return 0;
}

static int mimi_load(mimi *m, const st_file *f, const char *prefix, const char *flow_prefix,
                     char *err, size_t errlen)
{
    const mimi_config *c = &m->cfg;
    int rc, s = m->steps;
    if (m->parts & MIMI_DECODER) {
        rc = mm_get(m, f, &m->q_proj, 3, DIMS(c->outer_dim, c->inner_dim, 1), err, errlen,
                    "%squantizer.output_proj.weight", prefix);
        if (rc) return rc;
        m->up = (convtr1d){.cin = c->outer_dim, .cout = c->dimension, .k = 2 * s, .stride = s,
                           .groups = c->dimension};
        rc = mm_get(m, f, &m->up.w, 3, DIMS(c->outer_dim, 1, 2 * s), err, errlen,
                    "%supsample.convtr.convtr.weight", prefix);
        if (rc) return rc;
        if ((rc = load_tf(m, f, prefix, &m->dtf, "decoder_transformer", err, errlen))) return rc;
        if ((rc = pack_tf(m, &m->dtf))) return err_set(err, errlen, rc, "out of memory for Mimi weights");
        if ((rc = load_seanet(m, f, prefix, &m->dec, 1, err, errlen))) return rc;
        if ((rc = pack_seanet(m, &m->dec))) return err_set(err, errlen, rc, "out of memory for Mimi weights");
    }
    if (m->parts & MIMI_ENCODER) {
        m->down = (conv1d){.cin = c->dimension, .cout = c->inner_dim, .k = 2 * s, .stride = s,
                           .dil = 1, .groups = 1, .pad_replicate = 1};
        rc = mm_get(m, f, &m->down.w, 3, DIMS(c->inner_dim, c->dimension, 2 * s), err, errlen,
                    "%sdownsample.conv.conv.weight", prefix);
        if (rc) return rc;
        if ((rc = load_tf(m, f, prefix, &m->etf, "encoder_transformer", err, errlen))) return rc;
        if ((rc = load_seanet(m, f, prefix, &m->enc, 0, err, errlen))) return rc;
        if ((rc = pack_seanet(m, &m->enc))) return err_set(err, errlen, rc, "out of memory for Mimi weights");
        if (!(m->down_wp = mm_falloc(m, conv1d_tm_pack_floats(&m->down))))
            return err_set(err, errlen, ERR_NOMEM, "out of memory for Mimi weights");
        conv1d_tm_pack(&m->down, m->down_wp);
        mm_disown(m, m->down.w);
        m->down.w = NULL;
    }
    if (flow_prefix) {
        if (has_tensor(f, "%semb_std", flow_prefix)) {
            rc = mm_get(m, f, &m->emb_std, 1, DIMS(c->inner_dim), err, errlen, "%semb_std", flow_prefix);
            if (rc) return rc;
        }
        if (has_tensor(f, "%semb_mean", flow_prefix)) {
            rc = mm_get(m, f, &m->emb_mean, 1, DIMS(c->inner_dim), err, errlen, "%semb_mean", flow_prefix);
            if (rc) return rc;
        }
    }
    return 0;
}

int mimi_open(mimi **out, const st_file *f, const char *prefix, const char *flow_prefix,
              const mimi_config *cfg, int parts, char *err, size_t errlen)
{
    *out = NULL;
    if (!f || !cfg || !(parts & (MIMI_DECODER | MIMI_ENCODER)))
        return err_set(err, errlen, ERR_INVAL, "mimi_open: bad arguments");
    int rc = cfg_check(cfg, err, errlen);
    if (rc) return rc;
    mimi *m = calloc(1, sizeof *m);
    if (!m) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    m->cfg = *cfg;
    m->parts = parts;
    m->hop = 1;
    for (int i = 0; i < cfg->n_ratios; i++) m->hop *= cfg->ratios[i];
    m->steps = (int)floor((double)cfg->sample_rate / m->hop / cfg->frame_rate + 0.5);
    m->frame = m->hop * m->steps;
    m->ldim = cfg->inner_dim;
    rc = mimi_load(m, f, prefix ? prefix : "", flow_prefix, err, errlen);
    if (rc) {
        mimi_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

/* Converts one F32 [rows, cols] matrix into an owned BF16 / NN_Q8 copy (64-byte aligned). */
static int mm_convert(mimi *m, nn_mat *w, nn_dtype dt)
{
    if (w->dtype != NN_F32) return 0;
    size_t n = (size_t)w->rows * (size_t)w->cols;
    size_t bytes = (nn_mat_bytes(w->rows, w->cols, dt) + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, bytes);
    if (!p) return ERR_NOMEM;
    if (mm_own(m, p)) {
        free(p);
        return ERR_NOMEM;
    }
    if (dt == NN_BF16) {
        nn_f32_to_bf16_n(p, w->w, n);
    } else {
        float *sc = (float *)((char *)p + ((n + 63) & ~(size_t)63));
        nn_q8_quant_weights(p, sc, w->w, w->rows, w->cols);
    }
    w->w = p;
    w->dtype = dt;
    return 0;
}

/* One packed F32 layer -> BF16 panels (owned by m; the F32 copy is freed). */
static int pk_to_bf16(mimi *m, void **wp, size_t n, int *flag)
{
    if (*flag) return 0;
    uint16_t *h = aligned_alloc(64, (n * sizeof(uint16_t) + 63) & ~(size_t)63);
    if (!h) return ERR_NOMEM;
    if (mm_own(m, h)) {
        free(h);
        return ERR_NOMEM;
    }
    conv_pack_bf16(h, *wp, n);
    mm_disown(m, *wp);
    *wp = h;
    *flag = 1;
    return 0;
}

/* Speed mode for the decoder SEANet: the layers whose packed weights are over
 * MM_BF16_MIN_BYTES (english: model.0 conv 7.3 MB, model.2 and model.5 transposed convs
 * 6.3 and 1.3 MB; they stream their weights for 16..96 rows per frame) get BF16 panels. */
#define MM_BF16_MIN_BYTES ((size_t)1 << 20)
static int seanet_bf16(mimi *m)
{
    mm_seanet *sn = &m->dec;
    for (int i = 0; i < sn->nops; i++) {
        mm_op *op = &sn->ops[i];
        size_t n;
        if (op->kind == OP_CONV && (n = conv1d_tm_pack_floats(&op->c)) * sizeof(float) >= MM_BF16_MIN_BYTES &&
            pk_to_bf16(m, &op->wp, n, &op->c.pk_bf16))
            return ERR_NOMEM;
        if (op->kind == OP_CONVTR && (n = convtr1d_tm_pack_floats(&op->t)) * sizeof(float) >= MM_BF16_MIN_BYTES &&
            pk_to_bf16(m, &op->wp, n, &op->t.pk_bf16))
            return ERR_NOMEM;
    }
    return 0;
}

int mimi_set_seanet_bf16(mimi *m, char *err, size_t errlen)
{
    if (!m) return err_set(err, errlen, ERR_INVAL, "mimi_set_seanet_bf16: bad arguments");
    if (!(m->parts & MIMI_DECODER)) return 0;
    return seanet_bf16(m) ? err_set(err, errlen, ERR_NOMEM, "out of memory") : 0;
}

int mimi_set_dec_dtype(mimi *m, nn_dtype dt, char *err, size_t errlen)
{
    if (!m || (dt != NN_F32 && dt != NN_BF16 && dt != NN_Q8))
        return err_set(err, errlen, ERR_INVAL, "mimi_set_dec_dtype: bad arguments");
    if (dt == NN_F32 || !(m->parts & MIMI_DECODER)) return 0;
    mm_tf *tf = &m->dtf;
    if (dt == NN_Q8 && (tf->d % NN_Q8_GROUP || tf->ff % NN_Q8_GROUP || tf->ff > NN_Q8_MAXCOLS))
        return 0; /* shapes int8 cannot take (tiny test models): stay exact */
    for (int l = 0; l < tf->nl; l++) {
        mm_tlayer *L = &tf->L[l];
        void **pk[4] = {&L->p_in, &L->p_out, &L->p_1, &L->p_2};
        const nn_mat *ws[4] = {&L->w_in, &L->w_out, &L->w_1, &L->w_2};
        if (dt == NN_BF16 && L->p_in) { /* BF16 panels replace the F32 ones */
            int done = L->p_bf16;
            for (int i = 0; i < 4 && !done; i++) {
                int f = 0;
                if (pk_to_bf16(m, pk[i], conv_pack_floats(ws[i]->rows, ws[i]->cols), &f))
                    return err_set(err, errlen, ERR_NOMEM, "out of memory");
            }
            L->p_bf16 = 1;
            continue;
        }
        if (mm_convert(m, &L->w_in, dt) || mm_convert(m, &L->w_out, dt) || mm_convert(m, &L->w_1, dt) ||
            mm_convert(m, &L->w_2, dt))
            return err_set(err, errlen, ERR_NOMEM, "out of memory");
        for (int i = 0; i < 4; i++) { /* the int8 copies replace the panels */
            mm_disown(m, *pk[i]);
            *pk[i] = NULL;
        }
    }
    return 0;
}

void mimi_free(mimi *m)
{
    if (!m) return;
    for (int i = 0; i < m->nowned; i++) free(m->owned[i]);
    free(m->owned);
    free(m);
}

int mimi_ldim(const mimi *m) { return m->ldim; }
int mimi_frame_samples(const mimi *m) { return m->frame; }
int mimi_sample_rate(const mimi *m) { return m->cfg.sample_rate; }

int mimi_denorm(const mimi *m, const float *latent, float *z)
{
    if (!m->emb_std || !m->emb_mean) return ERR_NOTFOUND;
    for (int i = 0; i < m->ldim; i++) z[i] = latent[i] * m->emb_std[i] + m->emb_mean[i];
    return 0;
}

/* ---- SEANet streaming runner ---------------------------------------------------------- */

typedef struct mm_sns {
    float *s1[MM_MAX_OPS]; /* conv history / convtr tail / res block.1 history */
    float *s2[MM_MAX_OPS]; /* res block.3 history (k1: none) */
    int first[MM_MAX_OPS], first2[MM_MAX_OPS];
    size_t n1[MM_MAX_OPS], n2[MM_MAX_OPS]; /* floats in s1/s2 */
    int t_in;                 /* input columns per call */
    float *a, *b, *h, *work; /* a, b: running activations; h: residual hidden */
} mm_sns;

static void sns_free(mm_sns *s)
{
    for (int i = 0; i < MM_MAX_OPS; i++) {
        free(s->s1[i]);
        free(s->s2[i]);
    }
    free(s->a);
    free(s->b);
    free(s->h);
    free(s->work);
    memset(s, 0, sizeof *s);
}

static void sns_reset(const mm_seanet *sn, mm_sns *s)
{
    for (int i = 0; i < sn->nops; i++) {
        if (s->s1[i]) memset(s->s1[i], 0, s->n1[i] * sizeof(float));
        if (s->s2[i]) memset(s->s2[i], 0, s->n2[i] * sizeof(float));
        s->first[i] = s->first2[i] = 1;
    }
}

static size_t zmax(size_t a, size_t b) { return a > b ? a : b; }

/* Sizes state and scratch for calls of t_in input steps (time-major, conv.h "_tm"). */
static int sns_init(const mm_seanet *sn, mm_sns *s, int t_in)
{
    memset(s, 0, sizeof *s);
    s->t_in = t_in;
    size_t ct = (size_t)sn->cin * t_in, wk = 0;
    int C = sn->cin, T = t_in;
    for (int i = 0; i < sn->nops; i++) {
        const mm_op *op = &sn->ops[i];
        switch (op->kind) {
        case OP_CONV:
            s->n1[i] = (size_t)op->c.cin * conv1d_hist(&op->c);
            wk = zmax(wk, conv1d_tm_work(&op->c, T));
            T /= op->c.stride;
            C = op->c.cout;
            break;
        case OP_CONVTR:
            s->n1[i] = (size_t)op->t.cout * convtr1d_hist(&op->t);
            wk = zmax(wk, convtr1d_tm_work(&op->t, T));
            T *= op->t.stride;
            C = op->t.cout;
            break;
        case OP_RES:
            s->n1[i] = (size_t)op->c.cin * conv1d_hist(&op->c);
            s->n2[i] = (size_t)op->c2.cin * conv1d_hist(&op->c2);
            wk = zmax(wk, conv1d_tm_work(&op->c, T));
            wk = zmax(wk, conv1d_tm_work(&op->c2, T));
            break;
        default:
            break;
        }
        ct = zmax(ct, (size_t)C * T);
        if (s->n1[i] && !(s->s1[i] = calloc(s->n1[i], sizeof(float)))) return ERR_NOMEM;
        if (s->n2[i] && !(s->s2[i] = calloc(s->n2[i], sizeof(float)))) return ERR_NOMEM;
        s->first[i] = s->first2[i] = 1;
    }
    s->a = malloc(ct * sizeof(float));
    s->b = malloc(ct * sizeof(float));
    s->h = malloc(ct * sizeof(float));
    s->work = malloc(zmax(wk, 1) * sizeof(float));
    if (!s->a || !s->b || !s->h || !s->work) return ERR_NOMEM;
    return 0;
}

/* x [T, C] time-major -> tap as channel-major [C, T] (buf holds C*T floats). */
static void tap_tm_at(mimi_tap_fn tap, void *user, const char *name, const float *x, int T, int C, float *buf,
                      long t0)
{
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++) buf[(size_t)c * T + t] = x[(size_t)t * C + c];
    tap(user, name, buf, C, T, 0, (int)t0);
}

static void tap_tm(mimi_tap_fn tap, void *user, const char *name, const float *x, int T, int C, float *buf)
{
    tap_tm_at(tap, user, name, x, T, C, buf, 0);
}

/* The decoder stack, time-major (conv.h "_tm"): x [T_in, cin] -> [*t_out, cout] (inside
 * s). An ELU in front of a conv is folded into that conv's input copy; the one in front
 * of a transposed conv runs in place. Residual blocks add into the running buffer.
 * tapbuf: room for the largest [C, T] of the stack (only used with a tap). */
static const float *sns_run_tm(const mm_seanet *sn, mm_sns *s, const float *x, int T_in, int *t_out,
                               mimi_tap_fn tap, void *user, float *tapbuf, nn_pool *pool, long t0)
{
    float *cur = s->a, *nxt = s->b, *tmp;
    int C = sn->cin, T = T_in, elu_next = 0;
    CORE_ASSERT(T_in >= 1 && T_in <= s->t_in);
    char name[96];
    memcpy(cur, x, (size_t)C * T * sizeof(float));
    for (int i = 0; i < sn->nops; i++) {
        const mm_op *op = &sn->ops[i];
        switch (op->kind) {
        case OP_ELU:
            if (i + 1 < sn->nops && sn->ops[i + 1].kind == OP_CONV) elu_next = 1;
            else conv_elu(cur, (size_t)C * T);
            continue;
        case OP_CONV:
            conv1d_tm_run(&op->c, op->wp, cur, T, s->s1[i], &s->first[i], nxt, s->work,
                          elu_next ? CONV_IN_ELU : 0, pool);
            elu_next = 0;
            T /= op->c.stride;
            C = op->c.cout;
            tmp = cur, cur = nxt, nxt = tmp;
            break;
        case OP_CONVTR:
            convtr1d_tm_run(&op->t, op->wp, cur, T, s->s1[i], nxt, s->work, pool);
            T *= op->t.stride;
            C = op->t.cout;
            tmp = cur, cur = nxt, nxt = tmp;
            break;
        case OP_RES:
            conv1d_tm_run(&op->c, op->wp, cur, T, s->s1[i], &s->first[i], s->h, s->work, CONV_IN_ELU, pool);
            conv1d_tm_run(&op->c2, op->wp2, s->h, T, s->s2[i], &s->first2[i], cur, s->work,
                          CONV_IN_ELU | CONV_OUT_ADD, pool);
            break;
        }
        if (tap) {
            snprintf(name, sizeof name, "%s.model.%d.out", sn->name, op->idx);
            tap_tm_at(tap, user, name, cur, T, C, tapbuf, t0 * T / T_in);
        }
    }
    *t_out = T;
    return cur;
}

/* ---- transformer ------------------------------------------------------------------------ */

/* Attention ring cache of one layer. Position p lives in slot p % cap; cap is a multiple
 * of CONV_PANEL and >= context + tmax + 16, so a call's queries never lose a visible key
 * and the 16-aligned panels spanning their keys never wrap onto themselves.
 * Both halves are kept as conv_gemm weight panels (conv.h), so a block of queries is one
 * conv_gemm per head and run of slots for the scores and one for the outputs:
 * keys kp [heads][cap/16][hd][16] (slot s of head h at kp[h][s/16][d][s%16]: W' = K,
 * rows = slots, cols = hd); values vp [heads][ceil(hd/16)][cap][16] (W' = V^T, rows = hd,
 * cols = slots, panels cap*16 apart). */
typedef struct mm_kvc {
    float *kp, *vp;
    int cap, heads, hd, context;
    int64_t len; /* positions written so far */
} mm_kvc;

static size_t kvc_vfloats(const mm_kvc *c)
{
    return (size_t)c->heads * ((c->hd + CONV_PANEL - 1) / CONV_PANEL) * c->cap * CONV_PANEL;
}

static int kvc_init(mm_kvc *c, int tmax, int heads, int hd, int context)
{
    int need = context + tmax;
    c->cap = (need + CONV_PANEL - 1) / CONV_PANEL * CONV_PANEL + CONV_PANEL;
    c->heads = heads;
    c->hd = hd;
    c->context = context;
    c->len = 0;
    c->kp = calloc((size_t)heads * c->cap * hd, sizeof(float));
    c->vp = calloc(kvc_vfloats(c), sizeof(float));
    return c->kp && c->vp ? 0 : ERR_NOMEM;
}

static void kvc_free(mm_kvc *c)
{
    free(c->kp);
    free(c->vp);
}

/* value of head h, slot s, channel d */
static inline float *kvc_v(const mm_kvc *c, int h, int s, int d)
{
    int vpan = (c->hd + CONV_PANEL - 1) / CONV_PANEL;
    return c->vp + (((size_t)h * vpan + d / CONV_PANEL) * c->cap + s) * CONV_PANEL + d % CONV_PANEL;
}

/* key row of position slot (all heads, [heads*hd]) out of the panel layout */
static void kvc_key(const mm_kvc *c, int slot, float *row)
{
    for (int h = 0; h < c->heads; h++)
        for (int d = 0; d < c->hd; d++)
            row[h * c->hd + d] =
                c->kp[(((size_t)h * (c->cap / CONV_PANEL) + slot / CONV_PANEL) * c->hd + d) * CONV_PANEL +
                      slot % CONV_PANEL];
}

typedef struct mm_tfs {
    nn_pool *pool;            /* borrowed, for the linears; NULL = calling thread */
    int tmax;                 /* max steps per call */
    long pos;                 /* absolute position of the next step */
    mm_kvc kv[MM_MAX_LAYERS]; /* per layer, keys RoPE-rotated */
    float *h, *qkv, *q, *k, *v, *att, *o, *f, *sc; /* scratch; sc [tmax, cap + 16] */
} mm_tfs;

static void tfs_free(mm_tfs *s)
{
    for (int l = 0; l < MM_MAX_LAYERS; l++) kvc_free(&s->kv[l]);
    free(s->h);
    free(s->qkv);
    free(s->q);
    free(s->k);
    free(s->v);
    free(s->att);
    free(s->o);
    free(s->f);
    free(s->sc);
    memset(s, 0, sizeof *s);
}

static int tfs_init(const mm_tf *tf, mm_tfs *s, int tmax)
{
    memset(s, 0, sizeof *s);
    s->tmax = tmax;
    for (int l = 0; l < tf->nl; l++)
        if (kvc_init(&s->kv[l], tmax, tf->heads, tf->hd, tf->context)) return ERR_NOMEM;
    int cap = s->kv[0].cap;
    size_t td = (size_t)tmax * tf->d;
    s->h = malloc(td * sizeof(float));
    s->qkv = malloc(3 * td * sizeof(float));
    s->q = malloc(td * sizeof(float));
    s->k = malloc(td * sizeof(float));
    s->v = malloc(td * sizeof(float));
    s->att = malloc(td * sizeof(float));
    s->o = malloc(td * sizeof(float));
    s->f = malloc((size_t)tmax * tf->ff * sizeof(float));
    s->sc = malloc((size_t)tmax * (cap + CONV_PANEL) * sizeof(float));
    if (!s->h || !s->qkv || !s->q || !s->k || !s->v || !s->att || !s->o || !s->f || !s->sc)
        return ERR_NOMEM;
    return 0;
}

static void tfs_reset(const mm_tf *tf, mm_tfs *s)
{
    for (int l = 0; l < tf->nl; l++) {
        mm_kvc *c = &s->kv[l];
        memset(c->kp, 0, (size_t)c->cap * c->heads * c->hd * sizeof(float));
        memset(c->vp, 0, kvc_vfloats(c) * sizeof(float));
        c->len = 0;
    }
    s->pos = 0;
}

/* y [T, W->rows] = x [T, W->cols] W^T (PyTorch Linear, no bias), through nn's dispatched
 * GEMM/GEMV kernels (AVX2/AVX-512 when available; F32, BF16 or NN_Q8 weights). */
static void linear(nn_pool *pool, const float *x, int T, const nn_mat *W, const void *wp, int bf16, float *y)
{
    if (wp && bf16)
        conv_gemm_pool_bf16(pool, y, W->rows, x, (size_t)W->cols, T, wp, W->rows, W->cols, NULL, CONV_GEMM_STORE);
    else if (wp)
        conv_gemm_pool(pool, y, W->rows, x, (size_t)W->cols, T, wp, W->rows, W->cols, NULL, CONV_GEMM_STORE);
    else
        nn_linear(pool, y, x, T, W, NULL);
}

/* nn_attend's contract (append k, v [T, heads, hd] to the ring at positions len..; out [T,
 * heads*hd] = softmax(q k^T / sqrt(hd)) v over each query's causal context window), for a
 * block of T queries. Per head: the scores of all T queries against the panels holding
 * the union of their windows are one or two conv_gemm calls (two when the ring wraps);
 * then per query conv_softmax over its window (a contiguous run of score columns), and
 * the outputs as one or two conv_gemm per head over the value panels (continued exactly
 * across the wrap). Every score is the same
 * fixed-order dot product whatever T is and wherever the ring wraps, so a query's result
 * does not depend on the block it came in: decoding n frames per call gives the bits of
 * n single-frame calls. sc: [T, cap + 16] floats. */
static int mm_attend(mm_kvc *c, float *out, const float *q, const float *k, const float *v, int T, float *sc)
{
    int H = c->heads, hd = c->hd, row = H * hd, cap = c->cap, npan = cap / CONV_PANEL;
    int64_t p0 = c->len;
    if (c->context == 0 ? p0 + T > cap : cap < c->context + T - 1) return ERR_TOOBIG;
    for (int t = 0; t < T; t++) {
        int sl = (int)((p0 + t) % cap);
        float *kb = c->kp + (size_t)(sl / CONV_PANEL) * hd * CONV_PANEL + sl % CONV_PANEL;
        for (int h = 0; h < H; h++) {
            const float *kr = k + (size_t)t * row + (size_t)h * hd;
            float *kh = kb + (size_t)h * npan * hd * CONV_PANEL;
            const float *vr = v + (size_t)t * row + (size_t)h * hd;
            for (int d = 0; d < hd; d++) kh[(size_t)d * CONV_PANEL] = kr[d];
            for (int d = 0; d < hd; d += CONV_PANEL)
                memcpy(kvc_v(c, h, sl, d), vr + d, (size_t)(hd - d < CONV_PANEL ? hd - d : CONV_PANEL) * sizeof(float));
        }
    }
    c->len = p0 + T;
    float scale = 1.0f / sqrtf((float)hd);
    int64_t lo_u = c->context && p0 - c->context + 1 > 0 ? p0 - c->context + 1 : 0;
    int fs = (int)(lo_u % cap), ls = (int)((p0 + T - 1) % cap);
    int pa = fs / CONV_PANEL, f16 = pa * CONV_PANEL;          /* first panel of the union */
    int wrap = ls < fs;                                        /* the union runs past slot cap-1 */
    int na = wrap ? npan - pa : ls / CONV_PANEL - pa + 1;      /* panels in run A */
    int nb = wrap ? ls / CONV_PANEL + 1 : 0;                   /* panels in run B (from slot 0) */
    int lds = (na + nb) * CONV_PANEL;
    for (int h = 0; h < H; h++) {
        const float *kh = c->kp + (size_t)h * npan * hd * CONV_PANEL;
        const float *qh = q + (size_t)h * hd;
        conv_gemm(sc, lds, qh, (size_t)row, T, kh + (size_t)pa * hd * CONV_PANEL, na * CONV_PANEL, hd, NULL, 0);
        if (nb) conv_gemm(sc + na * CONV_PANEL, lds, qh, (size_t)row, T, kh, nb * CONV_PANEL, hd, NULL, 0);
        for (int t = 0; t < T; t++) { /* scores -> softmax weights, in place, 0 off the window */
            int64_t p = p0 + t, lo = c->context && p - c->context + 1 > 0 ? p - c->context + 1 : 0;
            int n = (int)(p - lo + 1), s0 = (int)(lo % cap);
            /* the window is one run of columns: run B's columns follow run A's */
            int c0 = s0 >= f16 ? s0 - f16 : cap - f16 + s0;
            float *st = sc + (size_t)t * lds;
            conv_softmax(st + c0, n, scale);
            memset(st, 0, (size_t)c0 * sizeof(float));
            memset(st + c0 + n, 0, (size_t)(lds - c0 - n) * sizeof(float));
        }
        /* out [T, hd] of head h = weights [T, slots] V^T: the slots in position order (run A
         * from f16, then run B from 0, continuing the same sums); the zero weights of slots
         * outside a query's window add exact zeros */
        float *oh = out + (size_t)h * hd;
        const float *vh = kvc_v(c, h, 0, 0);
        size_t vps = (size_t)cap * CONV_PANEL;
        conv_gemm_ps(oh, row, sc, (size_t)lds, T, vh + (size_t)f16 * CONV_PANEL, vps, hd, na * CONV_PANEL, NULL,
                     CONV_GEMM_STORE);
        if (nb)
            conv_gemm_ps(oh, row, sc + na * CONV_PANEL, (size_t)lds, T, vh, vps, hd, nb * CONV_PANEL, NULL,
                         CONV_GEMM_CONT);
    }
    return 0;
}

/* x [T, d] in/out, T <= s->tmax, at positions s->pos .. s->pos+T-1. Pre-norm layers:
 * x += ls1 * out_proj(attn(LN1 x)); x += ls2 * linear2(gelu(linear1(LN2 x))). */
static void tf_run(const mm_tf *tf, mm_tfs *s, float *x, int T, mimi_tap_fn tap, void *user,
                   long t0)
{
    int d = tf->d;
    char name[128];
    CORE_ASSERT(T >= 1 && T <= s->tmax);
    for (int l = 0; l < tf->nl; l++) {
        const mm_tlayer *L = &tf->L[l];
        nn_layernorm(s->h, x, T, d, L->n1w, L->n1b, 1e-5f);
        linear(s->pool, s->h, T, &L->w_in, L->p_in, L->p_bf16, s->qkv);
        for (int t = 0; t < T; t++) { /* [T, 3, heads, hd] -> q, k, v [T, heads, hd] */
            const float *r = s->qkv + (size_t)t * 3 * d;
            memcpy(s->q + (size_t)t * d, r, (size_t)d * sizeof(float));
            memcpy(s->k + (size_t)t * d, r + d, (size_t)d * sizeof(float));
            memcpy(s->v + (size_t)t * d, r + 2 * d, (size_t)d * sizeof(float));
        }
        nn_rope(s->q, T, tf->heads, tf->hd, s->pos, tf->max_period);
        nn_rope(s->k, T, tf->heads, tf->hd, s->pos, tf->max_period);
        int rc = mm_attend(&s->kv[l], s->att, s->q, s->k, s->v, T, s->sc);
        CORE_ASSERT(rc == 0); /* capacity context + tmax is sized in tfs_init */
        linear(s->pool, s->att, T, &L->w_out, L->p_out, L->p_bf16, s->o);
        for (int t = 0; t < T; t++)
            for (int i = 0; i < d; i++)
                x[(size_t)t * d + i] += (L->ls1 ? L->ls1[i] : 1.0f) * s->o[(size_t)t * d + i];
        nn_layernorm(s->h, x, T, d, L->n2w, L->n2b, 1e-5f);
        linear(s->pool, s->h, T, &L->w_1, L->p_1, L->p_bf16, s->f);
        nn_gelu_erf(s->f, (size_t)T * tf->ff);
        linear(s->pool, s->f, T, &L->w_2, L->p_2, L->p_bf16, s->o);
        for (int t = 0; t < T; t++)
            for (int i = 0; i < d; i++)
                x[(size_t)t * d + i] += (L->ls2 ? L->ls2[i] : 1.0f) * s->o[(size_t)t * d + i];
        if (tap) {
            snprintf(name, sizeof name, "%s.transformer.layers.%d.out", tf->name, l);
            tap(user, name, x, T, d, 1, (int)t0);
        }
    }
    s->pos += T;
}

/* ---- decoder --------------------------------------------------------------------------- */

struct mimi_dec {
    const mimi *m;
    int maxf;        /* max frames per mimi_dec_frames call */
    mimi_tap_fn tap;
    void *user;
    float *up_tail;  /* [steps, dimension] upsample tail (time-major raw sums) */
    mm_tfs tfs;
    mm_sns sns;      /* time-major SEANet state (conv.h "_tm") */
    float *q;        /* [maxf, outer] */
    float *x;        /* [steps*maxf, d] upsample output = transformer in/out */
    float *work;     /* upsample work */
    float *tapbuf;   /* [frame*maxf*n_filters] channel-major copies for the tap */
    nn_pool *pool;   /* borrowed (mimi_dec_set_pool); NULL = calling thread */
};

int mimi_dec_new_batch(mimi_dec **out, const mimi *m, int max_frames, char *err, size_t errlen)
{
    *out = NULL;
    if (!(m->parts & MIMI_DECODER))
        return err_set(err, errlen, ERR_INVAL, "mimi: decoder not loaded");
    if (max_frames < 1 || max_frames > MIMI_ONESHOT_MAX_FRAMES)
        return err_set(err, errlen, ERR_TOOBIG, "mimi: %d frames per call (1..%d)", max_frames,
                       MIMI_ONESHOT_MAX_FRAMES);
    mimi_dec *d = calloc(1, sizeof *d);
    if (!d) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    d->m = m;
    d->maxf = max_frames;
    int S = m->steps * max_frames, D = m->cfg.dimension;
    d->up_tail = calloc((size_t)D * convtr1d_hist(&m->up) + 1, sizeof(float));
    d->q = malloc((size_t)m->cfg.outer_dim * max_frames * sizeof(float));
    d->x = malloc((size_t)D * S * sizeof(float));
    d->work = malloc(convtr1d_tm_work(&m->up, max_frames) * sizeof(float));
    size_t tb = zmax((size_t)D * S, (size_t)m->frame * max_frames * (size_t)m->cfg.n_filters);
    d->tapbuf = malloc(zmax(tb, (size_t)m->cfg.outer_dim * max_frames) * sizeof(float));
    int rc = (!d->up_tail || !d->q || !d->x || !d->work || !d->tapbuf) ? ERR_NOMEM : 0;
    if (!rc) rc = tfs_init(&m->dtf, &d->tfs, S);
    if (!rc) rc = sns_init(&m->dec, &d->sns, S);
    if (rc) {
        mimi_dec_free(d);
        return err_set(err, errlen, rc, "out of memory for the Mimi decoder state");
    }
    *out = d;
    return 0;
}

int mimi_dec_new(mimi_dec **out, const mimi *m, char *err, size_t errlen)
{
    return mimi_dec_new_batch(out, m, 1, err, errlen);
}

void mimi_dec_free(mimi_dec *d)
{
    if (!d) return;
    free(d->up_tail);
    free(d->q);
    free(d->x);
    free(d->work);
    free(d->tapbuf);
    tfs_free(&d->tfs);
    sns_free(&d->sns);
    free(d);
}

void mimi_dec_reset(mimi_dec *d)
{
    const mimi *m = d->m;
    memset(d->up_tail, 0, (size_t)m->cfg.dimension * convtr1d_hist(&m->up) * sizeof(float));
    tfs_reset(&m->dtf, &d->tfs);
    sns_reset(&m->dec, &d->sns);
}

void mimi_dec_set_pool(mimi_dec *d, nn_pool *pool)
{
    d->pool = pool;
    d->tfs.pool = pool;
}

void mimi_dec_set_tap(mimi_dec *d, mimi_tap_fn tap, void *user)
{
    d->tap = tap;
    d->user = user;
}

int mimi_dec_frames(mimi_dec *d, const float *z, int n, float *pcm, char *err, size_t errlen)
{
    const mimi *m = d->m;
    int D = m->cfg.dimension, O = m->cfg.outer_dim, S = m->steps * n, T;
    if (n < 1 || n > d->maxf)
        return err_set(err, errlen, ERR_INVAL, "mimi: %d frames in one call (decoder sized for %d)",
                       n, d->maxf);
    for (size_t i = 0; i < (size_t)n * m->ldim; i++)
        if (!isfinite(z[i])) return err_set(err, errlen, ERR_INVAL, "mimi: non-finite latent");
    if (d->tap && n == 1) d->tap(d->user, "quantizer.in", z, m->ldim, 1, 0, 0);
    /* quantizer.output_proj: q [n, outer] = z [n, ldim] Wq^T, plain loops in a fixed order
     * (the same bits whatever n is) */
    for (int t = 0; t < n; t++)
        for (int o = 0; o < O; o++) {
            const float *w = m->q_proj + (size_t)o * m->ldim, *zt = z + (size_t)t * m->ldim;
            float acc = 0.0f;
            for (int i = 0; i < m->ldim; i++) acc = fmaf(zt[i], w[i], acc);
            d->q[(size_t)t * O + o] = acc;
        }
    if (d->tap) tap_tm(d->tap, d->user, "quantizer.out", d->q, n, O, d->tapbuf);
    convtr1d_tm_run(&m->up, NULL, d->q, n, d->up_tail, d->x, d->work, NULL);
    if (d->tap) tap_tm(d->tap, d->user, "upsample.out", d->x, S, D, d->tapbuf);
    tf_run(&m->dtf, &d->tfs, d->x, S, d->tap, d->user, 0);
    if (d->tap) tap_tm(d->tap, d->user, "decoder_transformer.out", d->x, S, D, d->tapbuf);
    const float *y = sns_run_tm(&m->dec, &d->sns, d->x, S, &T, d->tap, d->user, d->tapbuf, d->pool, 0);
    CORE_ASSERT((size_t)T * m->dec.cout == (size_t)n * m->frame);
    if (d->tap) d->tap(d->user, "decoder.out", y, m->dec.cout, T, 0, 0);
    memcpy(pcm, y, (size_t)n * m->frame * sizeof(float));
    return 0;
}

int mimi_dec_frame(mimi_dec *d, const float *z, float *pcm, char *err, size_t errlen)
{
    return mimi_dec_frames(d, z, 1, pcm, err, errlen);
}

void mimi_dec_dump_state(const mimi_dec *d)
{
    if (!d->tap) return;
    const mimi *m = d->m;
    char name[160];
    /* the state is time-major [steps, channels]; upstream's is channel-major */
    tap_tm(d->tap, d->user, "upsample.convtr.partial", d->up_tail, convtr1d_hist(&m->up), m->cfg.dimension,
           d->tapbuf);
    const mm_tf *tf = &m->dtf;
    for (int l = 0; l < tf->nl; l++) {
        const mm_kvc *c = &d->tfs.kv[l];
        long n = c->len < c->cap ? (long)c->len : c->cap;
        float *kv = malloc((size_t)(2 * n + 1) * tf->d * sizeof(float));
        if (!kv) break;
        for (long j = 0; j < n; j++) {
            int slot = (int)((c->len - n + j) % c->cap);
            kvc_key(c, slot, kv + (size_t)j * tf->d);
            for (int h = 0; h < c->heads; h++)
                for (int e = 0; e < c->hd; e++)
                    kv[(size_t)(n + j) * tf->d + (size_t)h * c->hd + e] = *kvc_v(c, h, slot, e);
        }
        snprintf(name, sizeof name, "%s.transformer.layers.%d.self_attn.cache", tf->name, l);
        d->tap(d->user, name, kv, (int)(2 * n), tf->d, 1, 0);
        free(kv);
    }
    const mm_seanet *sn = &m->dec;
    for (int i = 0; i < sn->nops; i++) {
        const mm_op *op = &sn->ops[i];
        if (op->kind == OP_CONV) {
            snprintf(name, sizeof name, "%s.model.%d.previous", sn->name, op->idx);
            tap_tm(d->tap, d->user, name, d->sns.s1[i], conv1d_hist(&op->c), op->c.cin, d->tapbuf);
        } else if (op->kind == OP_CONVTR) {
            snprintf(name, sizeof name, "%s.model.%d.partial", sn->name, op->idx);
            tap_tm(d->tap, d->user, name, d->sns.s1[i], convtr1d_hist(&op->t), op->t.cout, d->tapbuf);
        } else if (op->kind == OP_RES) {
            snprintf(name, sizeof name, "%s.model.%d.block.1.previous", sn->name, op->idx);
            tap_tm(d->tap, d->user, name, d->sns.s1[i], conv1d_hist(&op->c), op->c.cin, d->tapbuf);
            snprintf(name, sizeof name, "%s.model.%d.block.3.previous", sn->name, op->idx);
            tap_tm(d->tap, d->user, name, d->sns.s2[i], conv1d_hist(&op->c2), op->c2.cin, d->tapbuf);
        }
    }
}

int mimi_decode_oneshot(const mimi *m, const float *z, int F, float *pcm, char *err, size_t errlen)
{
    mimi_dec *d;
    int rc = mimi_dec_new_batch(&d, m, F, err, errlen);
    if (rc) return rc;
    rc = mimi_dec_frames(d, z, F, pcm, err, errlen);
    mimi_dec_free(d);
    return rc;
}

/* ---- encoder --------------------------------------------------------------------------- */


int mimi_encode(const mimi *m, const float *pcm, size_t n, float **out, int *nframes,
                mimi_tap_fn tap, void *user, char *err, size_t errlen)
{
    *out = NULL;
    *nframes = 0;
    if (!(m->parts & MIMI_ENCODER)) return err_set(err, errlen, ERR_INVAL, "mimi: encoder not loaded");
    if (n == 0) return err_set(err, errlen, ERR_INVAL, "mimi: empty audio prompt");
    if (n > MIMI_MAX_ENCODE_SAMPLES)
        return err_set(err, errlen, ERR_TOOBIG, "mimi: audio prompt of %zu samples is over the cap", n);
    int S = m->steps, D = m->cfg.dimension, FS = m->frame, C = m->enc.cin, L = m->ldim;
    if (C != 1) return err_set(err, errlen, ERR_INVAL, "mimi: encoder expects mono (channels=%d)", C);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(pcm[i]))
            return err_set(err, errlen, ERR_INVAL, "mimi: audio prompt sample %zu is not finite", i);
    int F = (int)((n + (size_t)FS - 1) / (size_t)FS);
    int EC = F < MM_ENC_CHUNK ? F : MM_ENC_CHUNK; /* frames per internal step */
    mm_sns sns;
    mm_tfs tfs;
    float *lat = malloc((size_t)F * L * sizeof(float));
    float *chunk = malloc((size_t)EC * FS * sizeof(float));
    float *x = malloc((size_t)D * S * EC * sizeof(float));
    float *dprev = calloc((size_t)D * conv1d_hist(&m->down) + 1, sizeof(float));
    float *dwork = malloc(conv1d_tm_work(&m->down, S * EC) * sizeof(float));
    float *lv = malloc((size_t)L * EC * sizeof(float));
    /* channel-major copies for the tap: the widest SEANet stage is n_filters x FS*EC */
    size_t tb = tap ? zmax((size_t)m->cfg.n_filters * FS * EC, (size_t)D * S * EC) : 1;
    float *tapbuf = malloc(tb * sizeof(float));
    int rc = sns_init(&m->enc, &sns, FS * EC);
    int rc2 = tfs_init(&m->etf, &tfs, S * EC);
    if (rc || rc2 || !lat || !chunk || !x || !dprev || !dwork || !lv || !tapbuf) {
        rc = err_set(err, errlen, ERR_NOMEM, "out of memory for the Mimi encoder");
        goto done;
    }
    int dfirst = 1;
    for (int f0 = 0; f0 < F; f0 += EC) {
        int nf = F - f0 < EC ? F - f0 : EC, Tin = nf * FS, T = nf * S, To;
        size_t off = (size_t)f0 * FS, k = n - off < (size_t)Tin ? n - off : (size_t)Tin;
        memcpy(chunk, pcm + off, k * sizeof(float));
        for (size_t i = k; i < (size_t)Tin; i++) chunk[i] = 0.0f; /* end padding */
        if (tap) tap(user, "encoder.in", chunk, 1, Tin, 0, (int)off);
        /* time-major all the way: [Tin, 1] -> [T, D] -> transformer -> [nf, L] latents */
        const float *e = sns_run_tm(&m->enc, &sns, chunk, Tin, &To, tap, user, tapbuf, NULL, (long)off);
        CORE_ASSERT(To == T);
        memcpy(x, e, (size_t)T * D * sizeof(float));
        if (tap) tap_tm_at(tap, user, "encoder.out", x, T, D, tapbuf, (long)f0 * S);
        tf_run(&m->etf, &tfs, x, T, tap, user, (long)f0 * S);
        if (tap) tap_tm_at(tap, user, "encoder_transformer.out", x, T, D, tapbuf, (long)f0 * S);
        conv1d_tm_run(&m->down, m->down_wp, x, T, dprev, &dfirst, lv, dwork, 0, NULL); /* lv [nf, L] */
        if (tap) tap_tm_at(tap, user, "downsample.out", lv, nf, L, tapbuf, f0);
        memcpy(lat + (size_t)f0 * L, lv, (size_t)nf * L * sizeof(float));
    }
    *out = lat;
    lat = NULL;
    *nframes = F;
    rc = 0;
done:
    sns_free(&sns);
    tfs_free(&tfs);
    free(lat);
    free(chunk);
    free(x);
    free(dprev);
    free(dwork);
    free(lv);
    free(tapbuf);
    return rc;
}

/* ---- voice-prompt front end -------------------------------------------------------------- */

int mimi_prompt_pcm(const float *pcm, size_t nframes, int channels, int rate, int out_rate,
                    double max_seconds, float **out, size_t *nout, char *err, size_t errlen)
{
    *out = NULL;
    *nout = 0;
    if (channels < 1 || channels > 16)
        return err_set(err, errlen, ERR_INVAL, "voice prompt: %d channels (1..16)", channels);
    if (rate < 8000 || rate > 384000 || out_rate < 8000 || out_rate > 384000)
        return err_set(err, errlen, ERR_INVAL, "voice prompt: sample rate %d Hz unsupported", rate);
    if (max_seconds > 0) {
        double cap = floor(max_seconds * rate);
        if ((double)nframes > cap) nframes = (size_t)cap;
    }
    if (nframes == 0) return err_set(err, errlen, ERR_INVAL, "voice prompt: no audio");
    if (nframes > MIMI_MAX_ENCODE_SAMPLES / 24000 * (size_t)rate)
        return err_set(err, errlen, ERR_TOOBIG, "voice prompt: %zu frames at %d Hz is over the cap",
                       nframes, rate);
    float *mono = malloc(nframes * sizeof(float));
    if (!mono) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < nframes; i++) {
        float acc = 0;
        for (int c = 0; c < channels; c++) acc += pcm[i * channels + c];
        mono[i] = channels == 1 ? acc : acc / (float)channels;
    }
    if (rate == out_rate) {
        *out = mono;
        *nout = nframes;
        return 0;
    }
    int rc = ars_oneshot(mono, nframes, rate, out_rate, out, nout, err, errlen);
    free(mono);
    return rc;
}
