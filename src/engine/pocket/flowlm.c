/* flowlm.c — the pocket-tts FlowLM forward pass, flow head, LSD sampling and EOS rule
 * (see flowlm.h and ../shared/reference/pocket-tts/ARCHITECTURE.md §3–6).
 *
 * One forward call takes L input vectors [L, d] at absolute positions pos..pos+L-1:
 * pre-norm transformer layers (LN eps 1e-5 → in_proj q|k|v → interleaved RoPE →
 * causal attention over the whole cache → out_proj, residual; LN → linear1 → exact GELU
 * → linear2, residual), then out_norm on every position; the last position is the
 * condition for EOS and the flow head. Long prompts are processed in chunks of
 * PK_CHUNK positions (causal attention makes this exact), unless a trace hook wants
 * whole tensors. Flow head: two timestep embedders (cos|sin of t·freqs → MLP → the
 * unbiased-variance "RMSNorm"), cond_embed, input_proj, AdaLN residual blocks (LN eps
 * 1e-6), AdaLN final layer. All shapes come from the config and are checked against the
 * checkpoint at load with messages naming the tensor. With opts.dtype NN_Q8 the big
 * linears are int8 (NN_Q8, quantized here at load from F32/BF16/F16); nothing else in the
 * forward pass changes (nn_linear dispatches on the matrix dtype).
 */
#include "engine/pocket/flowlm.h"

#include "core/err.h"

#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PK_CHUNK 64

typedef struct pk_layer {
    float *n1w, *n1b, *n2w, *n2b; /* [d] */
    nn_mat in_proj;               /* [3d, d] rows q | k | v */
    nn_mat out_proj;              /* [d, d] */
    nn_mat lin1;                  /* [ffn, d] */
    nn_mat lin2;                  /* [d, ffn] */
} pk_layer;

typedef struct pk_temb {
    float *freqs;     /* [half] */
    int half;         /* frequency_embedding_size / 2 (128) */
    nn_mat l0;        /* [fd, 2*half] */
    float *b0;        /* [fd] */
    nn_mat l2;        /* [fd, fd] */
    float *b2;        /* [fd] */
    float *alpha;     /* [fd] */
} pk_temb;

typedef struct pk_resblock {
    float *ln_w, *ln_b; /* [fd] */
    nn_mat mlp0, mlp2;  /* [fd, fd] */
    float *b0, *b2;     /* [fd] */
    nn_mat ada;         /* [3fd, fd] → shift | scale | gate */
    float *ada_b;       /* [3fd] */
} pk_resblock;

struct pk_flowlm {
    pk_config cfg;
    nn_pool *pool;
    void *arena;            /* huge-page block holding the big matrices (opts.hugepages) */
    size_t arena_size;
    int d, H, hd, ffn, ld, fd, nl, depth, nbins;
    float *bos_emb;         /* [ld] */
    float *bos_before_voice; /* [d] or NULL */
    nn_mat speaker_proj;    /* [d, ld] (may be absent: rows 0) */
    float *emb_std, *emb_mean; /* [ld] */
    nn_mat embed;           /* [nbins+1, d] f32 */
    nn_mat input_linear;    /* [d, ld] */
    pk_layer *layers;       /* [nl] */
    float *onw, *onb;       /* out_norm [d] */
    nn_mat out_eos;         /* [1, d] */
    float out_eos_b;
    pk_temb temb[2];
    nn_mat cond_embed;      /* [fd, d] */
    float *cond_b;          /* [fd] */
    nn_mat input_proj;      /* [fd, ld] */
    float *inproj_b;        /* [fd] */
    pk_resblock *blocks;    /* [depth] */
    nn_mat fin_ada;         /* [2fd, fd] → shift | scale */
    float *fin_ada_b;       /* [2fd] */
    nn_mat fin_lin;         /* [ld, fd] */
    float *fin_b;           /* [ld] */
};

struct pk_fstate {
    const pk_flowlm *m;
    nn_kv *kv;      /* [nl] */
    int cap;
    int lmax;       /* scratch rows */
    float *x, *h, *qkv, *q, *k, *v, *att, *ff; /* scratch [lmax, ...] */
    float *scores;  /* [cap] */
    float *cond;    /* [d] */
    float *fh;      /* flow head scratch: 8 * max(fd*3, d, 2*half) */
    /* timestep embeddings depend only on (s, t): cached for up to 8 (s, t) pairs: te [8][2][fd] */
    float te_s[8], te_t[8];
    int te_n;
    float *te;
    pk_trace_fn trace;
    void *trace_ud;
    nn_pool *pool;  /* borrowed; NULL = the model's pool (pk_fstate_set_pool) */
    pk_share *share; /* borrowed; steps' M == 1 linears shared with helpers (pk_fstate_set_share) */
};

/* Work sharing for M == 1 linears (pk_share_*): the posting thread publishes one linear at
 * a time; row chunks are claimed from `next`. `open` and `busy` form a Dekker pair
 * (seq_cst): a helper counts itself in `busy`, then checks `open` and `gen`; the poster
 * closes `open`, then waits for `busy` to drain before it rewrites the job. So a helper
 * either sees the job it checked or leaves, and the poster never returns while a helper
 * still writes into y. */
struct pk_share {
    atomic_uint gen;  /* bumped per posted job */
    atomic_int open;  /* 1 while chunks may be claimed */
    atomic_int busy;  /* helpers inside the job */
    atomic_int next;  /* next chunk to claim */
    atomic_int stepping; /* a step is running: helpers should poll (pk_share_stepping) */
    int nch, chr;     /* chunks, rows per chunk */
    size_t min_w;     /* linears with fewer weights run unshared */
    int wait_helper;  /* tests: the poster lets a helper claim first (pk_share_test_wait) */
    atomic_int helped; /* chunks of the current job claimed by helpers */
    float *y;
    const float *x, *b;
    const nn_mat *W;
};

/* ---- loading ------------------------------------------------------------------------------ */

typedef struct loader {
    const st_file *f;
    const char *prefix;
    nn_dtype dtype;
    nn_dtype tdt, fdt;    /* transformer / flow-head big matrices: opts.dtype, NN_Q8 included */
    unsigned char *arena; /* huge-page arena for the big matrices, or NULL */
    size_t used, size;
    char *err;
    size_t errlen;
} loader;

/* st_expect with the prefix: ERR_NOTFOUND or ERR_FORMAT naming the full tensor name */
static int need(loader *ld, const st_tensor **t, const char *name, int nd, const int64_t *dims)
{
    char full[256];
    snprintf(full, sizeof full, "%s%s", ld->prefix, name);
    return st_expect(ld->f, full, nd, dims, t, ld->err, ld->errlen);
}

static int vec(loader *ld, float **dst, const char *name, int64_t n)
{
    const st_tensor *t = NULL;
    int rc = need(ld, &t, name, 1, (int64_t[]){n});
    if (rc) return rc;
    *dst = nn_vec_from_st(t, (size_t)n, ld->err, ld->errlen);
    return *dst ? 0 : ERR_NOMEM;
}

static int mat(loader *ld, nn_mat *dst, const char *name, int rows, int cols, nn_dtype dt)
{
    const st_tensor *t = NULL;
    int rc = need(ld, &t, name, 2, (int64_t[]){rows, cols});
    if (rc) return rc;
    return nn_mat_from_st(dst, t, rows, cols, dt, ld->err, ld->errlen);
}

/* int8 needs cols % 32 == 0 (groups of 32 along the input); other matrices (tiny test
 * models) keep the base dtype */
static nn_dtype eff_dtype(nn_dtype want, int cols, nn_dtype base)
{
    return want == NN_Q8 && cols % NN_Q8_GROUP ? base : want;
}

/* The large matrices (transformer and flow-head linears): dtype from the options (int8
 * with opts.dtype NN_Q8), placed in the huge-page arena when there is one. */
static int bigmat(loader *ld, nn_mat *dst, const char *name, int rows, int cols, nn_dtype dt)
{
    const st_tensor *t = NULL;
    int rc = need(ld, &t, name, 2, (int64_t[]){rows, cols});
    if (rc) return rc;
    dt = eff_dtype(dt, cols, ld->dtype);
    if (!ld->arena) {
        rc = nn_mat_from_st(dst, t, rows, cols, dt, ld->err, ld->errlen);
    } else {
        size_t nb = (nn_mat_bytes(rows, cols, dt) + 63) & ~(size_t)63;
        if (ld->used + nb > ld->size) return err_set(ld->err, ld->errlen, ERR_INTERNAL, "flowlm: weight arena too small");
        rc = nn_mat_into(dst, t, rows, cols, dt, ld->arena + ld->used, ld->err, ld->errlen);
        ld->used += nb;
    }
    /* copied or converted: the mapped source pages are dead weight, drop them now so the
     * load-time peak stays at one matrix above the final footprint */
    if (!rc && dst->w != t->data) nn_drop_source(t);
    return rc;
}

/* bytes of every bigmat() (each rounded up to 64), same shapes and order as the loader */
static size_t arena_bytes(const pk_config *c, nn_dtype base, nn_dtype tdt, nn_dtype fdt)
{
    int d = c->d_model, ffn = pk_ffn_dim(c), fd = c->flow_dim;
#define MB(r, cc, dt) ((nn_mat_bytes((r), (cc), eff_dtype((dt), (cc), base)) + 63) & ~(size_t)63)
    size_t n = (size_t)c->num_layers *
               (MB(3 * d, d, tdt) + MB(d, d, tdt) + MB(ffn, d, tdt) + MB(d, ffn, tdt));
    n += MB(fd, d, fdt) + (size_t)c->flow_depth * (2 * MB(fd, fd, fdt) + MB(3 * fd, fd, fdt)) + MB(2 * fd, fd, fdt);
#undef MB
    return n;
}

#define CK(x)                                                                                                         \
    do {                                                                                                              \
        int rc_ = (x);                                                                                                \
        if (rc_) {                                                                                                    \
            pk_flowlm_free(m);                                                                                        \
            return rc_;                                                                                               \
        }                                                                                                             \
    } while (0)

int pk_flowlm_load(pk_flowlm **out, const pk_config *cfg, const st_file *f, const pk_flowlm_opts *opt, char *err,
                   size_t errlen)
{
    *out = NULL;
    pk_flowlm *m = calloc(1, sizeof *m);
    if (!m) return err_set(err, errlen, ERR_NOMEM, "flowlm: out of memory");
    m->cfg = *cfg;
    m->pool = opt ? opt->pool : NULL;
    nn_dtype dt = opt ? opt->dtype : NN_F32;
    /* NN_Q8 applies to the big linears; matrices int8 cannot take (cols % 32) stay F32 */
    nn_dtype base = dt == NN_Q8 ? NN_F32 : dt, tdt = dt, fdt = dt;
    loader L = {f, opt && opt->prefix ? opt->prefix : "flow_lm.", base, tdt, fdt, NULL, 0, 0, err, errlen};
    if (opt && opt->hugepages) {
        m->arena_size = arena_bytes(cfg, base, tdt, fdt);
        m->arena = nn_huge_alloc(m->arena_size);
        if (!m->arena) CK(err_set(err, errlen, ERR_NOMEM, "flowlm: cannot map %zu bytes for weights", m->arena_size));
        L.arena = m->arena;
        L.size = m->arena_size;
    }
    m->d = cfg->d_model, m->H = cfg->num_heads, m->hd = pk_head_dim(cfg), m->ffn = pk_ffn_dim(cfg);
    m->ld = cfg->ldim, m->fd = cfg->flow_dim, m->nl = cfg->num_layers, m->depth = cfg->flow_depth;
    m->nbins = cfg->n_bins;
    int d = m->d, ld = m->ld, fd = m->fd;
    if (d % m->H || m->hd % 2) CK(err_set(err, errlen, ERR_FORMAT, "flowlm: bad head geometry"));

    CK(vec(&L, &m->bos_emb, "bos_emb", ld));
    if (cfg->insert_bos_before_voice) {
        const st_tensor *t = NULL;
        CK(need(&L, &t, "bos_before_voice", 3, (int64_t[]){1, 1, d}));
        m->bos_before_voice = nn_vec_from_st(t, (size_t)d, err, errlen);
        if (!m->bos_before_voice) CK(ERR_NOMEM);
    }
    CK(mat(&L, &m->speaker_proj, "speaker_proj_weight", d, ld, NN_F32));
    CK(vec(&L, &m->emb_std, "emb_std", ld));
    CK(vec(&L, &m->emb_mean, "emb_mean", ld));
    CK(mat(&L, &m->embed, "conditioner.embed.weight", m->nbins + 1, d, NN_F32));
    CK(mat(&L, &m->input_linear, "input_linear.weight", d, ld, NN_F32));
    m->layers = calloc((size_t)m->nl, sizeof *m->layers);
    if (!m->layers) CK(err_set(err, errlen, ERR_NOMEM, "flowlm: out of memory"));
    for (int i = 0; i < m->nl; i++) {
        pk_layer *y = &m->layers[i];
        char n[128];
#define NM(s) (snprintf(n, sizeof n, "transformer.layers.%d.%s", i, s), n)
        CK(bigmat(&L, &y->in_proj, NM("self_attn.in_proj.weight"), 3 * d, d, tdt));
        CK(bigmat(&L, &y->out_proj, NM("self_attn.out_proj.weight"), d, d, tdt));
        CK(bigmat(&L, &y->lin1, NM("linear1.weight"), m->ffn, d, tdt));
        CK(bigmat(&L, &y->lin2, NM("linear2.weight"), d, m->ffn, tdt));
        CK(vec(&L, &y->n1w, NM("norm1.weight"), d));
        CK(vec(&L, &y->n1b, NM("norm1.bias"), d));
        CK(vec(&L, &y->n2w, NM("norm2.weight"), d));
        CK(vec(&L, &y->n2b, NM("norm2.bias"), d));
#undef NM
    }
    CK(vec(&L, &m->onw, "out_norm.weight", d));
    CK(vec(&L, &m->onb, "out_norm.bias", d));
    CK(mat(&L, &m->out_eos, "out_eos.weight", 1, d, NN_F32));
    {
        float *b = NULL;
        CK(vec(&L, &b, "out_eos.bias", 1));
        m->out_eos_b = b[0];
        free(b);
    }
    for (int j = 0; j < 2; j++) {
        pk_temb *te = &m->temb[j];
        char n[128];
#define NM(s) (snprintf(n, sizeof n, "flow_net.time_embed.%d.%s", j, s), n)
        char full[160];
        snprintf(full, sizeof full, "%s%s", L.prefix, NM("freqs"));
        const st_tensor *ft = st_find(f, full);
        if (!ft || ft->ndim != 1 || ft->shape[0] < 1 || ft->shape[0] > 4096)
            CK(err_set(err, errlen, ERR_FORMAT, "tensor '%s': missing or not 1-D", full));
        te->half = (int)ft->shape[0];
        CK(vec(&L, &te->freqs, NM("freqs"), te->half));
        CK(mat(&L, &te->l0, NM("mlp.0.weight"), fd, 2 * te->half, NN_F32));
        CK(vec(&L, &te->b0, NM("mlp.0.bias"), fd));
        CK(mat(&L, &te->l2, NM("mlp.2.weight"), fd, fd, NN_F32));
        CK(vec(&L, &te->b2, NM("mlp.2.bias"), fd));
        CK(vec(&L, &te->alpha, NM("mlp.3.alpha"), fd));
#undef NM
    }
    CK(bigmat(&L, &m->cond_embed, "flow_net.cond_embed.weight", fd, d, fdt));
    CK(vec(&L, &m->cond_b, "flow_net.cond_embed.bias", fd));
    CK(mat(&L, &m->input_proj, "flow_net.input_proj.weight", fd, ld, NN_F32));
    CK(vec(&L, &m->inproj_b, "flow_net.input_proj.bias", fd));
    m->blocks = calloc((size_t)m->depth, sizeof *m->blocks);
    if (!m->blocks) CK(err_set(err, errlen, ERR_NOMEM, "flowlm: out of memory"));
    for (int i = 0; i < m->depth; i++) {
        pk_resblock *b = &m->blocks[i];
        char n[128];
#define NM(s) (snprintf(n, sizeof n, "flow_net.res_blocks.%d.%s", i, s), n)
        CK(vec(&L, &b->ln_w, NM("in_ln.weight"), fd));
        CK(vec(&L, &b->ln_b, NM("in_ln.bias"), fd));
        CK(bigmat(&L, &b->mlp0, NM("mlp.0.weight"), fd, fd, fdt));
        CK(vec(&L, &b->b0, NM("mlp.0.bias"), fd));
        CK(bigmat(&L, &b->mlp2, NM("mlp.2.weight"), fd, fd, fdt));
        CK(vec(&L, &b->b2, NM("mlp.2.bias"), fd));
        CK(bigmat(&L, &b->ada, NM("adaLN_modulation.1.weight"), 3 * fd, fd, fdt));
        CK(vec(&L, &b->ada_b, NM("adaLN_modulation.1.bias"), 3 * fd));
#undef NM
    }
    CK(bigmat(&L, &m->fin_ada, "flow_net.final_layer.adaLN_modulation.1.weight", 2 * fd, fd, fdt));
    CK(vec(&L, &m->fin_ada_b, "flow_net.final_layer.adaLN_modulation.1.bias", 2 * fd));
    CK(mat(&L, &m->fin_lin, "flow_net.final_layer.linear.weight", ld, fd, NN_F32));
    CK(vec(&L, &m->fin_b, "flow_net.final_layer.linear.bias", ld));
    *out = m;
    return 0;
}

void pk_flowlm_free(pk_flowlm *m)
{
    if (!m) return;
    free(m->bos_emb), free(m->bos_before_voice), free(m->emb_std), free(m->emb_mean);
    nn_mat_free(&m->speaker_proj), nn_mat_free(&m->embed), nn_mat_free(&m->input_linear);
    if (m->layers)
        for (int i = 0; i < m->nl; i++) {
            pk_layer *y = &m->layers[i];
            nn_mat_free(&y->in_proj), nn_mat_free(&y->out_proj), nn_mat_free(&y->lin1), nn_mat_free(&y->lin2);
            free(y->n1w), free(y->n1b), free(y->n2w), free(y->n2b);
        }
    free(m->layers);
    free(m->onw), free(m->onb);
    nn_mat_free(&m->out_eos);
    for (int j = 0; j < 2; j++) {
        pk_temb *te = &m->temb[j];
        free(te->freqs), free(te->b0), free(te->b2), free(te->alpha);
        nn_mat_free(&te->l0), nn_mat_free(&te->l2);
    }
    nn_mat_free(&m->cond_embed), free(m->cond_b);
    nn_mat_free(&m->input_proj), free(m->inproj_b);
    if (m->blocks)
        for (int i = 0; i < m->depth; i++) {
            pk_resblock *b = &m->blocks[i];
            free(b->ln_w), free(b->ln_b), free(b->b0), free(b->b2), free(b->ada_b);
            nn_mat_free(&b->mlp0), nn_mat_free(&b->mlp2), nn_mat_free(&b->ada);
        }
    free(m->blocks);
    nn_mat_free(&m->fin_ada), free(m->fin_ada_b), nn_mat_free(&m->fin_lin), free(m->fin_b);
    nn_huge_free(m->arena, m->arena_size);
    free(m);
}

const pk_config *pk_flowlm_config(const pk_flowlm *m) { return &m->cfg; }

/* ---- state -------------------------------------------------------------------------------- */

static void free_scratch(pk_fstate *s)
{
    free(s->x), free(s->h), free(s->qkv), free(s->q), free(s->k), free(s->v), free(s->att), free(s->ff);
    s->x = s->h = s->qkv = s->q = s->k = s->v = s->att = s->ff = NULL;
    s->lmax = 0;
}

static int ensure_scratch(pk_fstate *s, int L)
{
    if (L <= s->lmax) return 0;
    const pk_flowlm *m = s->m;
    free_scratch(s);
    size_t d = (size_t)m->d, n = (size_t)L;
    s->x = malloc(n * d * sizeof(float));
    s->h = malloc(n * d * sizeof(float));
    s->qkv = malloc(n * 3 * d * sizeof(float));
    s->q = malloc(n * d * sizeof(float));
    s->k = malloc(n * d * sizeof(float));
    s->v = malloc(n * d * sizeof(float));
    s->att = malloc(n * d * sizeof(float));
    s->ff = malloc(n * (size_t)m->ffn * sizeof(float));
    if (!s->x || !s->h || !s->qkv || !s->q || !s->k || !s->v || !s->att || !s->ff) {
        free_scratch(s);
        return ERR_NOMEM;
    }
    s->lmax = L;
    return 0;
}

void pk_fstate_free(pk_fstate *s)
{
    if (!s) return;
    if (s->kv)
        for (int i = 0; i < s->m->nl; i++) nn_kv_free(&s->kv[i]);
    free(s->kv);
    free_scratch(s);
    free(s->scores), free(s->cond), free(s->fh), free(s->te);
    free(s);
}

int pk_fstate_new(pk_fstate **out, const pk_flowlm *m, int max_positions, char *err, size_t errlen)
{
    *out = NULL;
    if (max_positions < 1 || max_positions > 1000000)
        return err_set(err, errlen, ERR_INVAL, "flowlm: %d positions out of range", max_positions);
    pk_fstate *s = calloc(1, sizeof *s);
    if (!s) return err_set(err, errlen, ERR_NOMEM, "flowlm: out of memory");
    s->m = m;
    s->cap = max_positions;
    s->kv = calloc((size_t)m->nl, sizeof *s->kv);
    int big = 3 * m->fd;
    if (big < m->d) big = m->d;
    if (big < 2 * m->temb[0].half) big = 2 * m->temb[0].half;
    s->scores = malloc((size_t)max_positions * sizeof(float));
    s->cond = malloc((size_t)m->d * sizeof(float));
    s->fh = malloc((size_t)8 * big * sizeof(float));
    s->te = malloc((size_t)8 * 2 * m->fd * sizeof(float));
    if (!s->kv || !s->scores || !s->cond || !s->fh || !s->te || ensure_scratch(s, PK_CHUNK)) {
        pk_fstate_free(s);
        return err_set(err, errlen, ERR_NOMEM, "flowlm: out of memory");
    }
    for (int i = 0; i < m->nl; i++) {
        int rc = nn_kv_init(&s->kv[i], max_positions, m->H, m->hd, 0, err, errlen);
        if (rc) {
            pk_fstate_free(s);
            return rc;
        }
    }
    *out = s;
    return 0;
}

void pk_fstate_set_trace(pk_fstate *s, pk_trace_fn fn, void *ud)
{
    s->trace = fn;
    s->trace_ud = ud;
}

void pk_fstate_set_pool(pk_fstate *s, nn_pool *pool) { s->pool = pool; }

/* The pool a state's work runs on: its own when set, else the model's. */
static nn_pool *pool_of(const pk_flowlm *m, const pk_fstate *s) { return s->pool ? s->pool : m->pool; }

void pk_fstate_set_share(pk_fstate *s, pk_share *sh) { s->share = sh; }

int pk_share_new(pk_share **out, size_t min_weights)
{
    *out = calloc(1, sizeof **out);
    if (!*out) return ERR_NOMEM;
    (*out)->min_w = min_weights ? min_weights : 65536;
    return 0;
}

void pk_share_free(pk_share *sh) { free(sh); }

int pk_share_stepping(const pk_share *sh) { return atomic_load(&sh->stepping); }

void pk_share_set_stepping(pk_share *sh, int on) { atomic_store(&sh->stepping, on); }

void pk_share_test_wait(pk_share *sh, int on) { sh->wait_helper = on; }

/* Rows [c * chr, ...) of the posted linear: a row's value never depends on the split. */
static void share_chunk(pk_share *sh, int c)
{
    const nn_mat *W = sh->W;
    int r0 = c * sh->chr, n = W->rows - r0 < sh->chr ? W->rows - r0 : sh->chr;
    size_t es = W->dtype == NN_BF16 ? 2 : 4;
    nn_mat sub = *W;
    sub.w = (const char *)W->w + (size_t)r0 * W->cols * es;
    sub.rows = n;
    sub.owned = NULL;
    nn_linear(NULL, sh->y + r0, sh->x, 1, &sub, sh->b ? sh->b + r0 : NULL);
}

int pk_share_help(pk_share *sh)
{
    unsigned g = atomic_load(&sh->gen);
    if (!atomic_load(&sh->open)) return 0;
    atomic_fetch_add(&sh->busy, 1);
    int done = 0;
    if (atomic_load(&sh->open) && atomic_load(&sh->gen) == g)
        for (int c; (c = atomic_fetch_add(&sh->next, 1)) < sh->nch; done++) {
            atomic_fetch_add(&sh->helped, 1);
            share_chunk(sh, c);
        }
    atomic_fetch_sub(&sh->busy, 1);
    return done;
}

/* y [W.rows] = W x + b for one position, shared with helpers when a share is attached and
 * W is big; else on the state's pool. Bit-identical either way. */
static void linear1(const pk_flowlm *m, pk_fstate *s, float *y, const float *x, const nn_mat *W, const float *b)
{
    pk_share *sh = s->share;
    if (!sh || W->dtype == NN_Q8 || (size_t)W->rows * W->cols < sh->min_w || W->rows < 32) {
        nn_linear(pool_of(m, s), y, x, 1, W, b);
        return;
    }
    int chr = (W->rows / 16 + 15) / 16 * 16; /* ~16 chunks, multiples of 16 rows */
    sh->y = y, sh->x = x, sh->b = b, sh->W = W;
    sh->chr = chr < 16 ? 16 : chr;
    sh->nch = (W->rows + sh->chr - 1) / sh->chr;
    atomic_store(&sh->next, 0);
    atomic_store(&sh->helped, 0);
    atomic_fetch_add(&sh->gen, 1);
    atomic_store(&sh->open, 1);
    for (int i = 0; sh->wait_helper && i < 100000 && !atomic_load(&sh->helped); i++) sched_yield();
    for (int c; (c = atomic_fetch_add(&sh->next, 1)) < sh->nch;) share_chunk(sh, c);
    atomic_store(&sh->open, 0);
    while (atomic_load(&sh->busy)) sched_yield(); /* a helper finishing its last chunk */
}


int64_t pk_fstate_pos(const pk_fstate *s) { return s->kv[0].len; }

int pk_fstate_cap(const pk_fstate *s) { return s->cap; }

void pk_fstate_reset(pk_fstate *s)
{
    for (int i = 0; i < s->m->nl; i++) s->kv[i].len = 0;
}

const nn_kv *pk_fstate_kv(const pk_fstate *s, int layer)
{
    return layer >= 0 && layer < s->m->nl ? &s->kv[layer] : NULL;
}

int pk_fstate_copy(pk_fstate *dst, const pk_fstate *src, char *err, size_t errlen)
{
    if (dst->m != src->m) return err_set(err, errlen, ERR_INVAL, "flowlm: states of different models");
    int64_t n = pk_fstate_pos(src);
    if (n > dst->cap) return err_set(err, errlen, ERR_TOOBIG, "flowlm: %lld cached positions exceed capacity %d", (long long)n, dst->cap);
    size_t row = (size_t)src->m->H * src->m->hd;
    for (int i = 0; i < src->m->nl; i++) {
        memcpy(dst->kv[i].k, src->kv[i].k, (size_t)n * row * sizeof(float));
        memcpy(dst->kv[i].v, src->kv[i].v, (size_t)n * row * sizeof(float));
        dst->kv[i].len = n;
    }
    return 0;
}

int pk_fstate_import_voice(pk_fstate *s, const st_file *voice, char *err, size_t errlen)
{
    const pk_flowlm *m = s->m;
    if (pk_fstate_pos(s) != 0) return err_set(err, errlen, ERR_INVAL, "flowlm: voice import into a non-empty state");
    size_t row = (size_t)m->H * m->hd;
    int64_t T = -1;
    {
        char n[128];
        snprintf(n, sizeof n, "transformer.layers.%d.self_attn/cache", m->nl);
        if (st_find(voice, n))
            return err_set(err, errlen, ERR_FORMAT, "voice state: has tensor '%s' but the model has %d layers (voice made for another model)", n, m->nl);
    }
    for (int i = 0; i < m->nl; i++) {
        char n[128];
        snprintf(n, sizeof n, "transformer.layers.%d.self_attn/cache", i);
        const st_tensor *c = st_find(voice, n);
        if (!c) return err_set(err, errlen, ERR_FORMAT, "voice state: missing tensor '%s'", n);
        if (c->ndim != 5 || c->shape[0] != 2 || c->shape[1] != 1 || c->shape[3] != m->H || c->shape[4] != m->hd)
            return err_set(err, errlen, ERR_FORMAT, "voice state: tensor '%s' is not [2, 1, T, %d, %d]", n, m->H, m->hd);
        int64_t t = c->shape[2];
        snprintf(n, sizeof n, "transformer.layers.%d.self_attn/offset", i);
        const st_tensor *o = st_find(voice, n);
        if (!o) {
            snprintf(n, sizeof n, "transformer.layers.%d.self_attn/current_end", i);
            o = st_find(voice, n);
            if (!o) return err_set(err, errlen, ERR_FORMAT, "voice state: layer %d has no offset", i);
            t = o->numel < t ? o->numel : t;
        } else {
            float ov;
            if (o->numel != 1 || st_to_f32(o, &ov, 1, err, errlen))
                return err_set(err, errlen, ERR_FORMAT, "voice state: tensor '%s' is not a scalar", n);
            if (ov < 0 || ov > (float)t)
                return err_set(err, errlen, ERR_FORMAT, "voice state: offset %g outside cache of %lld", ov, (long long)t);
            t = (int64_t)ov;
        }
        if (T >= 0 && t != T) return err_set(err, errlen, ERR_FORMAT, "voice state: layers disagree on length");
        T = t;
        if (T > s->cap) return err_set(err, errlen, ERR_TOOBIG, "voice state: %lld positions exceed capacity %d", (long long)T, s->cap);
        float *buf = malloc((size_t)c->numel * sizeof(float) + 1);
        if (!buf) return err_set(err, errlen, ERR_NOMEM, "voice state: out of memory");
        int rc = st_to_f32(c, buf, (size_t)c->numel, err, errlen);
        if (rc) {
            free(buf);
            return rc;
        }
        size_t plane = (size_t)c->shape[2] * row;
        memcpy(s->kv[i].k, buf, (size_t)T * row * sizeof(float));
        memcpy(s->kv[i].v, buf + plane, (size_t)T * row * sizeof(float));
        s->kv[i].len = T;
        free(buf);
    }
    return 0;
}

nn_dtype pk_flowlm_native_dtype(const st_file *f, const char *prefix)
{
    char n[160];
    snprintf(n, sizeof n, "%stransformer.layers.0.linear1.weight", prefix ? prefix : "flow_lm.");
    const st_tensor *t = st_find(f, n);
    return t && t->dtype == ST_BF16 ? NN_BF16 : NN_F32;
}

static int put(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n ? 0 : -1; }

int pk_fstate_export_voice(const pk_fstate *s, const char *path, char *err, size_t errlen)
{
    const pk_flowlm *m = s->m;
    int64_t T = pk_fstate_pos(s);
    size_t row = (size_t)m->H * m->hd, cache_bytes = 2 * (size_t)T * row * sizeof(float);
    /* header: per layer a cache then an offset, contiguous */
    char *h = malloc((size_t)m->nl * 256 + 64);
    if (!h) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    size_t o = 0, off = 0;
    o += (size_t)sprintf(h + o, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < m->nl; i++) {
        o += (size_t)sprintf(h + o,
                             ",\"transformer.layers.%d.self_attn/cache\":{\"dtype\":\"F32\",\"shape\":[2,1,%lld,%d,%d],"
                             "\"data_offsets\":[%zu,%zu]}",
                             i, (long long)T, m->H, m->hd, off, off + cache_bytes);
        off += cache_bytes;
        o += (size_t)sprintf(h + o,
                             ",\"transformer.layers.%d.self_attn/offset\":{\"dtype\":\"I64\",\"shape\":[1],"
                             "\"data_offsets\":[%zu,%zu]}",
                             i, off, off + 8);
        off += 8;
    }
    o += (size_t)sprintf(h + o, "}");
    while ((8 + o) % 8) h[o++] = ' ';
    char tmp[1024];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        free(h);
        return err_set(err, errlen, ERR_INVAL, "path too long");
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(h);
        return err_set(err, errlen, ERR_IO, "%s: cannot create", tmp);
    }
    uint64_t hl = o;
    int rc = put(f, &hl, 8) | put(f, h, o);
    free(h);
    for (int i = 0; !rc && i < m->nl; i++) {
        rc |= put(f, s->kv[i].k, (size_t)T * row * sizeof(float));
        rc |= put(f, s->kv[i].v, (size_t)T * row * sizeof(float));
        rc |= put(f, &T, 8);
    }
    if (fclose(f) != 0) rc = -1;
    if (rc || rename(tmp, path) != 0) {
        remove(tmp);
        return err_set(err, errlen, ERR_IO, "%s: write failed", path);
    }
    return 0;
}

/* ---- forward ------------------------------------------------------------------------------ */

static void tr(pk_fstate *s, const char *name, const float *x, size_t n)
{
    if (s->trace) s->trace(s->trace_ud, name, x, n);
}

static void trf(pk_fstate *s, const float *x, size_t n, const char *fmt, int a, const char *b)
{
    if (!s->trace) return;
    char name[160];
    snprintf(name, sizeof name, fmt, a, b);
    s->trace(s->trace_ud, name, x, n);
}

/* Runs the transformer on x [L, d] (in s->x) at the current position; leaves the out_norm
 * output of the last position in s->cond. */
static int transformer(const pk_flowlm *m, pk_fstate *s, int L, char *err, size_t errlen)
{
    int d = m->d, H = m->H, hd = m->hd;
    int64_t pos = pk_fstate_pos(s);
    size_t Ld = (size_t)L * d;
    float *x = s->x, *h = s->h;
    for (int i = 0; i < m->nl; i++) {
        const pk_layer *y = &m->layers[i];
        nn_layernorm(h, x, L, d, y->n1w, y->n1b, 1e-5f);
        if (L == 1) linear1(m, s, s->qkv, h, &y->in_proj, NULL);
        else nn_linear(pool_of(m, s), s->qkv, h, L, &y->in_proj, NULL);
        for (int t = 0; t < L; t++) {
            const float *r = s->qkv + (size_t)t * 3 * d;
            memcpy(s->q + (size_t)t * d, r, (size_t)d * sizeof(float));
            memcpy(s->k + (size_t)t * d, r + d, (size_t)d * sizeof(float));
            memcpy(s->v + (size_t)t * d, r + 2 * d, (size_t)d * sizeof(float));
        }
        trf(s, s->q, Ld, "flow.transformer.layers.%d.rope.q_in%s", i, "");
        trf(s, s->k, Ld, "flow.transformer.layers.%d.rope.k_in%s", i, "");
        nn_rope(s->q, L, H, hd, pos, m->cfg.max_period);
        nn_rope(s->k, L, H, hd, pos, m->cfg.max_period);
        trf(s, s->q, Ld, "flow.transformer.layers.%d.rope.q_out%s", i, "");
        trf(s, s->k, Ld, "flow.transformer.layers.%d.rope.k_out%s", i, "");
        if (nn_attend(&s->kv[i], s->att, s->q, s->k, s->v, L, s->scores))
            return err_set(err, errlen, ERR_TOOBIG, "flowlm: KV cache full (%d positions)", s->cap);
        if (L == 1) linear1(m, s, h, s->att, &y->out_proj, NULL);
        else nn_linear(pool_of(m, s), h, s->att, L, &y->out_proj, NULL);
        trf(s, h, Ld, "flow.transformer.layers.%d.self_attn.out%s", i, "");
        for (size_t j = 0; j < Ld; j++) x[j] += h[j];
        nn_layernorm(h, x, L, d, y->n2w, y->n2b, 1e-5f);
        if (L == 1) linear1(m, s, s->ff, h, &y->lin1, NULL);
        else nn_linear(pool_of(m, s), s->ff, h, L, &y->lin1, NULL);
        nn_gelu_erf(s->ff, (size_t)L * m->ffn);
        if (L == 1) linear1(m, s, h, s->ff, &y->lin2, NULL);
        else nn_linear(pool_of(m, s), h, s->ff, L, &y->lin2, NULL);
        for (size_t j = 0; j < Ld; j++) x[j] += h[j];
        trf(s, x, Ld, "flow.transformer.layers.%d.out%s", i, "");
    }
    tr(s, "flow.transformer.out", x, Ld);
    nn_layernorm(h, x, L, d, m->onw, m->onb, 1e-5f);
    tr(s, "flow.out_norm.out", h, Ld);
    memcpy(s->cond, h + (size_t)(L - 1) * d, (size_t)d * sizeof(float));
    return 0;
}

static float eos_logit(const pk_flowlm *m, pk_fstate *s)
{
    float e;
    tr(s, "flow.out_eos.in", s->cond, (size_t)m->d);
    nn_linear(NULL, &e, s->cond, 1, &m->out_eos, &m->out_eos_b);
    tr(s, "flow.out_eos.out", &e, 1);
    return e;
}

static void time_embed(const pk_flowlm *m, const pk_temb *te, float t, float *out, float *tmp)
{
    nn_time_embed(tmp, t, te->freqs, te->half);
    nn_linear(NULL, out, tmp, 1, &te->l0, te->b0);
    nn_silu(out, (size_t)m->fd);
    nn_linear(NULL, tmp, out, 1, &te->l2, te->b2);
    nn_rmsnorm_var(out, tmp, 1, m->fd, te->alpha, 1e-5f);
}

/* dir [ld] = flow_net(c, s, t, x), traced as flow_net.call{k}.* */
static void flow_head(const pk_flowlm *m, pk_fstate *s, int call, float ts, float tt, const float *x, float *dir)
{
    int fd = m->fd, big = 3 * fd;
    if (big < m->d) big = m->d;
    if (big < 2 * m->temb[0].half) big = 2 * m->temb[0].half;
    float *y = s->fh, *a = y + big, *b = a + big, *hh = b + big, *u = hh + big, *mod = u + big, *tmp = mod + big;
    char nm[96];
#define T(name, p, n) (s->trace ? (snprintf(nm, sizeof nm, "flow_net.call%d.%s", call, name), tr(s, nm, p, n)) : (void)0)
    T("c", s->cond, (size_t)m->d);
    T("s", &ts, 1);
    T("t", &tt, 1);
    T("x", x, (size_t)m->ld);
    int ci = 0;
    while (ci < s->te_n && (s->te_s[ci] != ts || s->te_t[ci] != tt)) ci++;
    if (ci < s->te_n) {
        memcpy(a, s->te + (size_t)ci * 2 * fd, (size_t)fd * sizeof(float));
        memcpy(b, s->te + ((size_t)ci * 2 + 1) * fd, (size_t)fd * sizeof(float));
    } else {
        time_embed(m, &m->temb[0], ts, a, tmp);
        time_embed(m, &m->temb[1], tt, b, tmp);
        if (s->te_n < 8) {
            memcpy(s->te + (size_t)s->te_n * 2 * fd, a, (size_t)fd * sizeof(float));
            memcpy(s->te + ((size_t)s->te_n * 2 + 1) * fd, b, (size_t)fd * sizeof(float));
            s->te_s[s->te_n] = ts, s->te_t[s->te_n] = tt, s->te_n++;
        }
    }
    T("time_embed.0.out", a, (size_t)fd);
    T("time_embed.1.out", b, (size_t)fd);
    linear1(m, s, y, s->cond, &m->cond_embed, m->cond_b);
    T("cond_embed.out", y, (size_t)fd);
    for (int i = 0; i < fd; i++) y[i] += (a[i] + b[i]) / 2;
    nn_linear(NULL, hh, x, 1, &m->input_proj, m->inproj_b);
    T("input_proj.out", hh, (size_t)fd);
    /* silu(y) is the input of every adaLN modulation */
    memcpy(a, y, (size_t)fd * sizeof(float));
    nn_silu(a, (size_t)fd);
    for (int i = 0; i < m->depth; i++) {
        const pk_resblock *r = &m->blocks[i];
        linear1(m, s, mod, a, &r->ada, r->ada_b);
        const float *shift = mod, *scale = mod + fd, *gate = mod + 2 * fd;
        nn_layernorm(u, hh, 1, fd, r->ln_w, r->ln_b, 1e-6f);
        for (int j = 0; j < fd; j++) u[j] = u[j] * (1 + scale[j]) + shift[j];
        linear1(m, s, tmp, u, &r->mlp0, r->b0);
        nn_silu(tmp, (size_t)fd);
        linear1(m, s, u, tmp, &r->mlp2, r->b2);
        for (int j = 0; j < fd; j++) hh[j] += gate[j] * u[j];
        if (s->trace) {
            snprintf(nm, sizeof nm, "flow_net.call%d.res_blocks.%d.out", call, i);
            tr(s, nm, hh, (size_t)fd);
        }
    }
    linear1(m, s, mod, a, &m->fin_ada, m->fin_ada_b);
    nn_layernorm(u, hh, 1, fd, NULL, NULL, 1e-6f);
    for (int j = 0; j < fd; j++) u[j] = u[j] * (1 + mod[fd + j]) + mod[j];
    nn_linear(NULL, dir, u, 1, &m->fin_lin, m->fin_b);
    T("final_layer.out", dir, (size_t)m->ld);
    T("out", dir, (size_t)m->ld);
#undef T
}

/* Noise draw + LSD from the condition in s->cond; writes out [ld]. */
static int sample(const pk_flowlm *m, pk_fstate *s, const pk_gen_params *p, const pk_noise *nz, float *out, char *err,
                  size_t errlen)
{
    int ld = m->ld;
    float x[1024], dir[1024];
    if (ld > 1024) return err_set(err, errlen, ERR_INTERNAL, "flowlm: latent dim %d over 1024", ld);
    int rc = nz->fill(nz->ud, x, ld, p->temp, p->noise_clamp);
    if (rc) return err_set(err, errlen, rc, "flowlm: noise source failed");
    tr(s, "noise.x0", x, (size_t)ld);
    int N = p->lsd_steps < 1 ? 1 : p->lsd_steps;
    for (int i = 0; i < N; i++) {
        float ts = (float)i / (float)N, tt = (float)(i + 1) / (float)N;
        flow_head(m, s, i, ts, tt, x, dir);
        for (int j = 0; j < ld; j++) x[j] += dir[j] / (float)N;
    }
    memcpy(out, x, (size_t)ld * sizeof(float));
    tr(s, "latent", out, (size_t)ld);
    return 0;
}

/* Runs inputs in s->x-sized chunks; `fill` writes rows [t0, t0+n) of the input. */
typedef void (*fill_fn)(const pk_flowlm *m, float *dst, int t0, int n, const void *ctx);

static int run_prompt(const pk_flowlm *m, pk_fstate *s, int L, fill_fn fill, const void *ctx, const char *in_name,
                      const pk_gen_params *p, const pk_noise *nz, char *err, size_t errlen)
{
    if (L < 1) return err_set(err, errlen, ERR_INVAL, "flowlm: empty prompt");
    if (pk_fstate_pos(s) + L > s->cap)
        return err_set(err, errlen, ERR_TOOBIG, "flowlm: prompt of %d positions does not fit (%lld used of %d)", L,
                       (long long)pk_fstate_pos(s), s->cap);
    int chunk = s->trace ? L : PK_CHUNK;
    if (ensure_scratch(s, chunk)) return err_set(err, errlen, ERR_NOMEM, "flowlm: out of memory");
    for (int t0 = 0; t0 < L; t0 += chunk) {
        int n = L - t0 < chunk ? L - t0 : chunk;
        fill(m, s->x, t0, n, ctx);
        if (in_name) tr(s, in_name, s->x, (size_t)n * m->d);
        tr(s, "flow.transformer.in", s->x, (size_t)n * m->d);
        int rc = transformer(m, s, n, err, errlen);
        if (rc) return rc;
    }
    float e = eos_logit(m, s);
    (void)e;
    if (nz) {
        float lat[1024];
        return sample(m, s, p, nz, lat, err, errlen);
    }
    return 0;
}

typedef struct voice_ctx {
    const float *lat; /* [F, ld] */
    int F, bos;
} voice_ctx;

static void fill_voice(const pk_flowlm *m, float *dst, int t0, int n, const void *ctx)
{
    const voice_ctx *v = ctx;
    int d = m->d, ld = m->ld;
    float xin[1024];
    for (int t = t0; t < t0 + n; t++) {
        float *o = dst + (size_t)(t - t0) * d;
        int f = t - v->bos;
        if (f < 0) {
            memcpy(o, m->bos_before_voice, (size_t)d * sizeof(float));
            continue;
        }
        memcpy(xin, v->lat + (size_t)f * ld, (size_t)ld * sizeof(float));
        nn_linear(NULL, o, xin, 1, &m->speaker_proj, NULL);
    }
}

int pk_flowlm_prompt_voice(const pk_flowlm *m, pk_fstate *s, const float *lat, int F, const pk_gen_params *p,
                           const pk_noise *nz, char *err, size_t errlen)
{
    if (F < 1) return err_set(err, errlen, ERR_INVAL, "flowlm: empty voice prompt");
    if (m->ld > 1024) return err_set(err, errlen, ERR_INTERNAL, "flowlm: latent dim over 1024");
    voice_ctx v = {lat, F, m->bos_before_voice ? 1 : 0};
    return run_prompt(m, s, F + v.bos, fill_voice, &v, NULL, p, nz, err, errlen);
}

static void fill_text(const pk_flowlm *m, float *dst, int t0, int n, const void *ctx)
{
    const int *ids = ctx;
    const float *E = m->embed.w;
    for (int t = 0; t < n; t++)
        memcpy(dst + (size_t)t * m->d, E + (size_t)ids[t0 + t] * m->d, (size_t)m->d * sizeof(float));
}

int pk_flowlm_prompt_text(const pk_flowlm *m, pk_fstate *s, const int *ids, int T, const pk_gen_params *p,
                          const pk_noise *nz, char *err, size_t errlen)
{
    for (int t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] > m->nbins)
            return err_set(err, errlen, ERR_INVAL, "flowlm: token id %d out of range [0, %d]", ids[t], m->nbins);
    return run_prompt(m, s, T, fill_text, ids, "flow.conditioner.out", p, nz, err, errlen);
}

/* Text prompt rows, then (if bos) one more row: the first step's input, input_linear(BOS). */
typedef struct text_step_ctx {
    const int *ids;
    int T;
    const float *bos; /* [d] or NULL */
} text_step_ctx;

static void fill_text_step(const pk_flowlm *m, float *dst, int t0, int n, const void *ctx)
{
    const text_step_ctx *c = ctx;
    int nt = t0 + n <= c->T ? n : c->T > t0 ? c->T - t0 : 0;
    if (nt > 0) fill_text(m, dst, t0, nt, c->ids);
    for (int t = t0 + nt; t < t0 + n; t++) memcpy(dst + (size_t)(t - t0) * m->d, c->bos, (size_t)m->d * sizeof(float));
}

int pk_flowlm_prompt_text_step(const pk_flowlm *m, pk_fstate *s, const int *ids, int T, const pk_gen_params *p,
                               const pk_noise *nz, float *out_lat, float *eos, char *err, size_t errlen)
{
    int ld = m->ld;
    if (ld > 1024) return err_set(err, errlen, ERR_INTERNAL, "flowlm: latent dim over 1024");
    if (T < 1) return err_set(err, errlen, ERR_INVAL, "flowlm: empty prompt");
    for (int t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] > m->nbins)
            return err_set(err, errlen, ERR_INVAL, "flowlm: token id %d out of range [0, %d]", ids[t], m->nbins);
    float *bos = malloc((size_t)m->d * sizeof(float));
    if (!bos) return err_set(err, errlen, ERR_NOMEM, "flowlm: out of memory");
    nn_linear(NULL, bos, m->bos_emb, 1, &m->input_linear, NULL); /* the step's input row */
    text_step_ctx c = {ids, T, bos};
    int rc = run_prompt(m, s, T + 1, fill_text_step, &c, NULL, p, NULL, err, errlen);
    free(bos);
    if (rc) return rc;
    *eos = eos_logit(m, s);
    return sample(m, s, p, nz, out_lat, err, errlen);
}

int pk_flowlm_step(const pk_flowlm *m, pk_fstate *s, const float *in_lat, const pk_gen_params *p, const pk_noise *nz,
                   float *out_lat, float *eos, char *err, size_t errlen)
{
    int ld = m->ld;
    if (ld > 1024) return err_set(err, errlen, ERR_INTERNAL, "flowlm: latent dim over 1024");
    if (pk_fstate_pos(s) + 1 > s->cap)
        return err_set(err, errlen, ERR_TOOBIG, "flowlm: KV cache full (%d positions)", s->cap);
    float xin[1024];
    for (int i = 0; i < ld; i++) xin[i] = !in_lat || isnan(in_lat[i]) ? m->bos_emb[i] : in_lat[i];
    tr(s, "flow.input_linear.in", xin, (size_t)ld);
    nn_linear(NULL, s->x, xin, 1, &m->input_linear, NULL);
    tr(s, "flow.input_linear.out", s->x, (size_t)m->d);
    tr(s, "flow.transformer.in", s->x, (size_t)m->d);
    int rc = transformer(m, s, 1, err, errlen);
    if (rc) return rc;
    *eos = eos_logit(m, s);
    return sample(m, s, p, nz, out_lat, err, errlen);
}

int pk_flowlm_generate(const pk_flowlm *m, pk_fstate *s, const int *ids, int T, const pk_gen_params *p,
                       const pk_noise *nz, int frames_after_eos, int max_frames, pk_latent_fn cb, void *ud,
                       int *n_frames, char *err, size_t errlen)
{
    *n_frames = 0;
    if (max_frames < 0 || frames_after_eos < 0) return err_set(err, errlen, ERR_INVAL, "flowlm: negative frame counts");
    if (pk_fstate_pos(s) + T + max_frames > s->cap)
        return err_set(err, errlen, ERR_TOOBIG, "flowlm: %lld cached + %d tokens + %d frames exceed capacity %d",
                       (long long)pk_fstate_pos(s), T, max_frames, s->cap);
    int rc = pk_flowlm_prompt_text(m, s, ids, T, p, NULL, err, errlen);
    if (rc) return rc;
    float prev[1024], cur[1024], logit;
    pk_eos e;
    pk_eos_init(&e, frames_after_eos, max_frames);
    for (int k = 0; k < max_frames; k++) {
        rc = pk_flowlm_step(m, s, k ? prev : NULL, p, nz, cur, &logit, err, errlen);
        if (rc) return rc;
        if (!pk_eos_emit(&e, k, logit, p->eos_threshold)) break;
        if (cb && cb(ud, k, cur)) return err_set(err, errlen, ERR_CANCEL, "flowlm: cancelled at frame %d", k);
        ++*n_frames;
        memcpy(prev, cur, (size_t)m->ld * sizeof(float));
    }
    return 0;
}

void pk_flowlm_denorm(const pk_flowlm *m, const float *lat, float *out)
{
    for (int i = 0; i < m->ld; i++) out[i] = lat[i] * m->emb_std[i] + m->emb_mean[i];
}

/* ---- sampling parameters, noise, EOS ------------------------------------------------------- */

void pk_gen_params_default(pk_gen_params *p)
{
    p->temp = 0.7f;
    p->lsd_steps = 1;
    p->noise_clamp = 0;
    p->eos_threshold = -4.0f;
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next_u64(pk_gauss *g)
{
    uint64_t *s = g->s, r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3], s[2] ^= t, s[3] = rotl(s[3], 45);
    return r;
}

void pk_gauss_seed(pk_gauss *g, uint64_t seed)
{
    uint64_t z = seed;
    for (int i = 0; i < 4; i++) { /* splitmix64 */
        z += 0x9e3779b97f4a7c15ull;
        uint64_t x = z;
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
        g->s[i] = x ^ (x >> 31);
    }
    g->has_spare = 0;
}

static double gauss(pk_gauss *g)
{
    if (g->has_spare) {
        g->has_spare = 0;
        return g->spare;
    }
    double u1 = ((double)(next_u64(g) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    double u2 = (double)(next_u64(g) >> 11) * (1.0 / 9007199254740992.0);
    double r = sqrt(-2.0 * log(u1)), a = 2.0 * M_PI * u2;
    g->spare = r * sin(a);
    g->has_spare = 1;
    return r * cos(a);
}

int pk_gauss_fill(void *ud, float *x0, int n, float temp, float clamp)
{
    pk_gauss *g = ud;
    double sd = sqrt(temp > 0 ? (double)temp : 0.0);
    for (int i = 0; i < n; i++) {
        double v = sd * gauss(g);
        if (clamp > 0 && sd > 0) {
            int tries = 0;
            while (fabs(v) > clamp) {
                if (++tries > 1000) { /* clamp far below std: fall back to uniform in range */
                    v = ((double)(next_u64(g) >> 11) / 9007199254740992.0 * 2 - 1) * clamp;
                    break;
                }
                v = sd * gauss(g);
            }
        }
        x0[i] = (float)v;
    }
    return 0;
}

void pk_eos_init(pk_eos *e, int frames_after_eos, int max_frames)
{
    e->eos_step = -1;
    e->frames_after_eos = frames_after_eos;
    e->max_frames = max_frames;
}

int pk_eos_emit(pk_eos *e, int k, float logit, float threshold)
{
    if (k >= e->max_frames) return 0;
    if (logit > threshold && e->eos_step < 0) e->eos_step = k;
    if (e->eos_step >= 0 && k >= e->eos_step + e->frames_after_eos) return 0;
    return 1;
}

int pk_default_frames_after_eos(int n_words) { return (n_words <= 4 ? 3 : 1) + 2; }

int pk_max_frames(int n_tokens, float frame_rate)
{
    return (int)ceil(((double)n_tokens / 3.0 + 2.0) * (double)frame_rate);
}
