/* kokoro.c — Kokoro-82M forward pass, plain C reference kernels, one function per stage.
 *
 * Weights live in a flat table of f32 copies named `<component>.<key>` (module. stripped,
 * weight norm folded: `X.weight` = v * (g / ||v||), norm over all axes but 0, computed in
 * double). Stages look weights up by name and check their sizes, so a checkpoint with a
 * missing or misshapen tensor fails the stage with its name instead of reading garbage.
 *
 * Kernels here are static plain loops (conv1d, transposed conv, LSTM, norms, DFT); they are
 * the reference for any later SIMD/BLAS path. Summation orders differ from PyTorch's, so
 * results agree to float32 noise (~1e-6 relative), not bit for bit, except where the
 * architecture notes demand exactness (rounding half-even of durations, cumsum in double,
 * torch's linear-interpolation recipe, +0 imaginary parts of DC/Nyquist bins).
 */
#include "engine/kokoro/kokoro.h"

#include "engine/kokoro/kkconv.h"

#include "core/err.h"
#include "model/safetensors.h"

#include <cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KK_HARM 9 /* SineGen: fundamental + 8 harmonics (upstream harmonic_num = 8) */
#define KK_MAX_NAME 192
#define KK_MAX_CONFIG (1 << 20)

typedef struct kk_w {
    char name[KK_MAX_NAME];
    float *w; /* owned */
    size_t n;
    int ndim;
    int64_t shape[4];
} kk_w;

struct kk_model {
    kk_dims d;
    kk_w *w; /* [nw] */
    size_t nw;
};

/* ---- weight table ------------------------------------------------------------------ */

static const kk_w *find(const kk_model *m, const char *name)
{
    for (size_t i = 0; i < m->nw; i++)
        if (!strcmp(m->w[i].name, name)) return &m->w[i];
    return NULL;
}

/* "bert.module.x.y" -> "bert.x.y"; returns 0, or -1 if too long. */
static int strip_name(char *dst, const char *src)
{
    const char *dot = strchr(src, '.');
    if (dot && !strncmp(dot + 1, "module.", 7)) {
        size_t a = (size_t)(dot - src) + 1;
        if (a + strlen(dot + 8) + 1 > KK_MAX_NAME) return -1;
        memcpy(dst, src, a);
        strcpy(dst + a, dot + 8);
        return 0;
    }
    if (strlen(src) + 1 > KK_MAX_NAME) return -1;
    strcpy(dst, src);
    return 0;
}

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static int load_weights(kk_model *m, const char *path, char *err, size_t errlen)
{
    st_file *f = NULL;
    int rc = st_open(&f, path, err, errlen);
    if (rc) return rc;
    size_t n = st_count(f);
    m->w = calloc(n ? n : 1, sizeof *m->w);
    if (!m->w) { st_close(f); return err_set(err, errlen, ERR_NOMEM, "kokoro: weight table"); }
    for (size_t i = 0; i < n && !rc; i++) {
        const st_tensor *t = st_at(f, i);
        if (ends_with(t->name, ".weight_g")) continue; /* folded with its weight_v */
        if (t->ndim > 4) { rc = err_set(err, errlen, ERR_FORMAT, "kokoro: %s has %d dims", t->name, t->ndim); break; }
        kk_w *w = &m->w[m->nw];
        if (strip_name(w->name, t->name)) { rc = err_set(err, errlen, ERR_FORMAT, "kokoro: name too long: %s", t->name); break; }
        w->ndim = t->ndim;
        for (int k = 0; k < t->ndim; k++) w->shape[k] = t->shape[k];
        w->n = (size_t)t->numel;
        w->w = malloc((w->n ? w->n : 1) * sizeof(float));
        if (!w->w) { rc = err_set(err, errlen, ERR_NOMEM, "kokoro: %s", t->name); break; }
        m->nw++;
        if ((rc = st_to_f32(t, w->w, w->n, err, errlen))) break;
        if (ends_with(t->name, ".weight_v")) {
            char gname[KK_MAX_NAME + 8];
            size_t L = strlen(t->name);
            snprintf(gname, sizeof gname, "%.*s_g", (int)(L - 2), t->name);
            const st_tensor *g = st_find(f, gname);
            size_t rows = (size_t)t->shape[0];
            if (!g || (size_t)g->numel != rows || rows == 0) {
                rc = err_set(err, errlen, ERR_FORMAT, "kokoro: %s without a matching %s", t->name, gname);
                break;
            }
            float *gv = malloc(rows * sizeof(float));
            if (!gv) { rc = err_set(err, errlen, ERR_NOMEM, "kokoro: %s", gname); break; }
            if ((rc = st_to_f32(g, gv, rows, err, errlen))) { free(gv); break; }
            size_t per = w->n / rows;
            for (size_t r = 0; r < rows; r++) {
                double ss = 0;
                for (size_t j = 0; j < per; j++) ss += (double)w->w[r * per + j] * w->w[r * per + j];
                float sc = gv[r] / (float)sqrt(ss);
                for (size_t j = 0; j < per; j++) w->w[r * per + j] *= sc;
            }
            free(gv);
            w->name[strlen(w->name) - 2] = 0; /* "...weight_v" -> "...weight" */
        }
    }
    st_close(f);
    return rc;
}

/* ---- config ------------------------------------------------------------------------ */

static int jint(const cJSON *o, const char *k, int def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valueint : def;
}

static int jarr(const cJSON *o, const char *k, int *dst, int cap)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsArray(a)) return -1;
    int n = cJSON_GetArraySize(a);
    if (n < 1 || n > cap) return -1;
    for (int i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsNumber(v)) return -1;
        dst[i] = v->valueint;
    }
    return n;
}

static int load_config(kk_model *m, const char *path, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return err_set(err, errlen, ERR_NOTFOUND, "kokoro: cannot open config %s", path);
    char *buf = malloc(KK_MAX_CONFIG + 1);
    if (!buf) { fclose(fp); return err_set(err, errlen, ERR_NOMEM, "kokoro: config"); }
    size_t n = fread(buf, 1, KK_MAX_CONFIG + 1, fp);
    fclose(fp);
    if (n > KK_MAX_CONFIG) { free(buf); return err_set(err, errlen, ERR_TOOBIG, "kokoro: config over 1 MiB"); }
    buf[n] = 0;
    cJSON *root = cJSON_Parse(buf);
    free(buf);
    if (!root) return err_set(err, errlen, ERR_FORMAT, "kokoro: config %s is not JSON", path);
    kk_dims *d = &m->d;
    int rc = 0;
    const cJSON *pb = cJSON_GetObjectItemCaseSensitive(root, "plbert");
    const cJSON *is = cJSON_GetObjectItemCaseSensitive(root, "istftnet");
    d->bert_heads = jint(pb, "num_attention_heads", 0);
    d->bert_layers = jint(pb, "num_hidden_layers", 0);
    d->style = jint(root, "style_dim", 128);
    d->max_dur = jint(root, "max_dur", 50);
    d->text_k = jint(root, "text_encoder_kernel_size", 5);
    d->n_fft = jint(is, "gen_istft_n_fft", 0);
    d->hop = jint(is, "gen_istft_hop_size", 0);
    d->sample_rate = 24000;
    int nr = jarr(is, "upsample_rates", d->ups_rate, KK_MAX_UPS);
    int nk = jarr(is, "upsample_kernel_sizes", d->ups_k, KK_MAX_UPS);
    int nb = jarr(is, "resblock_kernel_sizes", d->rb_k, KK_MAX_KERNELS);
    const cJSON *dl = cJSON_GetObjectItemCaseSensitive(is, "resblock_dilation_sizes");
    if (nr < 1 || nr != nk || nb < 1 || !cJSON_IsArray(dl) || cJSON_GetArraySize(dl) != nb || d->bert_heads < 1 ||
        d->bert_layers < 1 || d->n_fft < 2 || d->n_fft % 2 || d->hop < 1)
        rc = err_set(err, errlen, ERR_FORMAT, "kokoro: config %s lacks plbert/istftnet fields", path);
    for (int i = 0; !rc && i < nb; i++) {
        const cJSON *ai = cJSON_GetArrayItem(dl, i);
        if (!cJSON_IsArray(ai) || cJSON_GetArraySize(ai) != 3) {
            rc = err_set(err, errlen, ERR_FORMAT, "kokoro: resblock_dilation_sizes[%d] must have 3 entries", i);
            break;
        }
        for (int j = 0; j < 3; j++) d->rb_dil[i][j] = cJSON_GetArrayItem(ai, j)->valueint;
    }
    d->n_ups = nr;
    d->n_kernels = nb;
    cJSON_Delete(root);
    return rc;
}

static int dims_from_weights(kk_model *m, char *err, size_t errlen)
{
    kk_dims *d = &m->d;
    const kk_w *we = find(m, "bert.embeddings.word_embeddings.weight");
    const kk_w *pe = find(m, "bert.embeddings.position_embeddings.weight");
    const kk_w *hm = find(m, "bert.encoder.embedding_hidden_mapping_in.weight");
    const kk_w *te = find(m, "text_encoder.embedding.weight");
    const kk_w *en = find(m, "decoder.encode.conv1.weight");
    const kk_w *ar = find(m, "decoder.asr_res.0.weight");
    const kk_w *up = find(m, "decoder.generator.ups.0.weight");
    if (!we || !pe || !hm || !te || !en || !ar || !up || we->ndim != 2 || te->ndim != 2 || hm->ndim != 2)
        return err_set(err, errlen, ERR_FORMAT, "kokoro: weights lack the Kokoro layout (embeddings/decoder)");
    d->n_token = (int)we->shape[0];
    d->bert_emb = (int)we->shape[1];
    d->bert_maxpos = (int)pe->shape[0];
    d->bert_hidden = (int)hm->shape[0];
    d->hidden = (int)te->shape[1];
    d->dec_hidden = (int)en->shape[0];
    d->asr_res = (int)ar->shape[0];
    d->up_init = (int)up->shape[0];
    if (d->bert_hidden % d->bert_heads)
        return err_set(err, errlen, ERR_FORMAT, "kokoro: hidden %d not divisible by %d heads", d->bert_hidden,
                       d->bert_heads);
    return 0;
}

int kk_open(kk_model **out, const char *weights_path, const char *config_path, char *err, size_t errlen)
{
    *out = NULL;
    kk_model *m = calloc(1, sizeof *m);
    if (!m) return err_set(err, errlen, ERR_NOMEM, "kokoro: model");
    int rc = load_config(m, config_path, err, errlen);
    if (!rc) rc = load_weights(m, weights_path, err, errlen);
    if (!rc) rc = dims_from_weights(m, err, errlen);
    if (rc) { kk_free(m); return rc; }
    *out = m;
    return 0;
}

void kk_free(kk_model *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->nw; i++) free(m->w[i].w);
    free(m->w);
    free(m);
}

const kk_dims *kk_get_dims(const kk_model *m) { return &m->d; }

size_t kk_samples(const kk_model *m, int F)
{
    size_t s = (size_t)F * 2 * (size_t)m->d.hop;
    for (int i = 0; i < m->d.n_ups; i++) s *= (size_t)m->d.ups_rate[i];
    return s;
}

/* ---- stage context: weight lookup with size checks, taps ---------------------------- */

typedef struct kc {
    const kk_model *m;
    const kk_tap *tap;
    char *err;
    size_t errlen;
    int rc;
} kc;

static const kk_w *vfindw(kc *c, const char *fmt, va_list ap)
{
    char name[KK_MAX_NAME];
    vsnprintf(name, sizeof name, fmt, ap);
    const kk_w *w = find(c->m, name);
    if (!w && !c->rc) c->rc = err_set(c->err, c->errlen, ERR_NOTFOUND, "kokoro: missing weight %s", name);
    return w;
}

/* Weight `fmt...` with exactly n values (n == 0: any size); NULL + c->rc on failure. */
static const float *wt(kc *c, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static const float *wt(kc *c, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const kk_w *w = vfindw(c, fmt, ap);
    va_end(ap);
    if (!w) return NULL;
    if (n && w->n != n) {
        if (!c->rc) c->rc = err_set(c->err, c->errlen, ERR_FORMAT, "kokoro: %s has %zu values, expected %zu", w->name, w->n, n);
        return NULL;
    }
    return w->w;
}

/* Dimension k of weight `fmt...`, or -1 (+ c->rc). */
static int dimw(kc *c, int k, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int dimw(kc *c, int k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const kk_w *w = vfindw(c, fmt, ap);
    va_end(ap);
    if (!w || k >= w->ndim) return -1;
    return (int)w->shape[k];
}

static int hasw(const kk_model *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int hasw(const kk_model *m, const char *fmt, ...)
{
    char name[KK_MAX_NAME];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return find(m, name) != NULL;
}

static void tap(kc *c, const float *x, size_t n, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void tap(kc *c, const float *x, size_t n, const char *fmt, ...)
{
    if (!c->tap || !c->tap->fn) return;
    char name[KK_MAX_NAME];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    c->tap->fn(c->tap->ud, name, x, n);
}

static float *falloc(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

#define NEED(p)                                         \
    do {                                                \
        if (!(p)) {                                     \
            if (!c->rc) c->rc = err_set(c->err, c->errlen, ERR_NOMEM, "kokoro: out of memory"); \
            goto out;                                   \
        }                                               \
    } while (0)

/* ---- plain kernels ------------------------------------------------------------------ */

#define linear kk_linear

/* Row LayerNorm over D (biased var), affine if w/b; in place allowed. */
static void layernorm(float *y, const float *x, int M, int D, const float *w, const float *b, float eps)
{
    for (int i = 0; i < M; i++) {
        const float *xi = x + (size_t)i * D;
        float *yi = y + (size_t)i * D;
        double mu = 0, var = 0;
        for (int k = 0; k < D; k++) mu += xi[k];
        mu /= D;
        for (int k = 0; k < D; k++) var += (xi[k] - mu) * (xi[k] - mu);
        var /= D;
        float r = (float)(1.0 / sqrt(var + eps));
        for (int k = 0; k < D; k++) {
            float v = (float)(xi[k] - mu) * r;
            yi[k] = w ? v * w[k] + b[k] : v;
        }
    }
}

static void leaky(float *x, size_t n, float slope)
{
    for (size_t i = 0; i < n; i++)
        if (x[i] < 0) x[i] *= slope;
}

/* Conv1d / ConvTranspose1d: kkconv.h (BLAS fast paths with plain references) */
#define conv_out kk_conv_out
#define conv1d kk_conv1d
#define convtr1d kk_convtr1d

static float sigm(float x) { return 1.f / (1.f + expf(-x)); }

/* Bidirectional single-layer LSTM `prefix` (PyTorch gate order i, f, g, o):
 * x [T, in] -> out [T, 2H] = [h_fwd ; h_bwd]. */
static int bilstm(kc *c, const char *prefix, const float *x, int T, int in, float *out, int *Hout)
{
    int H4 = dimw(c, 0, "%s.weight_hh_l0", prefix);
    if (H4 < 4) return c->rc ? c->rc : (c->rc = err_set(c->err, c->errlen, ERR_FORMAT, "kokoro: %s bad LSTM", prefix));
    int H = H4 / 4;
    if (Hout) *Hout = H;
    float *pre = NULL, *hc = NULL;
    for (int dir = 0; dir < 2; dir++) {
        const char *sfx = dir ? "_reverse" : "";
        const float *wih = wt(c, (size_t)H4 * in, "%s.weight_ih_l0%s", prefix, sfx);
        const float *whh = wt(c, (size_t)H4 * H, "%s.weight_hh_l0%s", prefix, sfx);
        const float *bih = wt(c, (size_t)H4, "%s.bias_ih_l0%s", prefix, sfx);
        const float *bhh = wt(c, (size_t)H4, "%s.bias_hh_l0%s", prefix, sfx);
        if (c->rc) goto out;
        if (!pre) {
            pre = falloc((size_t)T * H4);
            hc = falloc((size_t)H4 + 2 * (size_t)H);
            NEED(pre && hc);
        }
        linear(pre, x, T, in, H4, wih, bih);
        float *g = hc, *h = hc + H4, *cc = h + H;
        memset(h, 0, 2 * (size_t)H * sizeof(float));
        for (int s = 0; s < T; s++) {
            int t = dir ? T - 1 - s : s;
            for (int r = 0; r < H4; r++) {
                const float *wr = whh + (size_t)r * H;
                float a = 0;
                for (int k = 0; k < H; k++) a += wr[k] * h[k];
                g[r] = pre[(size_t)t * H4 + r] + bhh[r] + a;
            }
            for (int j = 0; j < H; j++) {
                float ig = sigm(g[j]), fg = sigm(g[H + j]), gg = tanhf(g[2 * H + j]), og = sigm(g[3 * H + j]);
                cc[j] = fg * cc[j] + ig * gg;
                h[j] = og * tanhf(cc[j]);
                out[(size_t)t * 2 * H + (size_t)dir * H + j] = h[j];
            }
        }
    }
out:
    free(pre);
    free(hc);
    return c->rc;
}

/* [gamma ; beta] = fc(s) for a norm `prefix` with C channels: gb [2C]. */
static int style_fc(kc *c, const char *prefix, const float *s, int C, float *gb)
{
    int S = c->m->d.style;
    const float *w = wt(c, (size_t)2 * C * S, "%s.fc.weight", prefix);
    const float *b = wt(c, (size_t)2 * C, "%s.fc.bias", prefix);
    if (c->rc) return c->rc;
    linear(gb, s, 1, S, 2 * C, w, b);
    return 0;
}

/* AdaIN1d: x [C, T] instance-normalised per channel (biased var, eps 1e-5), then
 * (1 + gamma) x + beta. y may equal x. */
static int adain(kc *c, const char *prefix, const float *x, int C, int T, const float *s, float *y)
{
    float *gb = falloc(2 * (size_t)C);
    NEED(gb);
    if (style_fc(c, prefix, s, C, gb)) goto out;
    for (int ch = 0; ch < C; ch++) {
        const float *xr = x + (size_t)ch * T;
        float *yr = y + (size_t)ch * T;
        double mu = 0, var = 0;
        for (int t = 0; t < T; t++) mu += xr[t];
        mu /= T;
        for (int t = 0; t < T; t++) var += (xr[t] - mu) * (xr[t] - mu);
        var /= T;
        float r = (float)(1.0 / sqrt(var + 1e-5)), g1 = 1.f + gb[ch], be = gb[C + ch];
        for (int t = 0; t < T; t++) yr[t] = g1 * ((float)(xr[t] - mu) * r) + be;
    }
out:
    free(gb);
    return c->rc;
}

/* AdainResBlk1d `prefix`: x [Cin, T] -> y [Cout, T * (upsample ? 2 : 1)] (caller sizes y
 * with kk's dims; *Cout_out / *To_out receive the shape). Upsampling iff `prefix.pool.weight`
 * exists; learned shortcut iff `prefix.conv1x1.weight` exists. Taps prefix.{norm1, pool,
 * conv1, norm2, conv2, upsample, conv1x1} and prefix. */
static int adain_resblk(kc *c, const char *prefix, const float *x, int Cin, int T, const float *s, float *y,
                        int *Cout_out, int *To_out)
{
    char nm[KK_MAX_NAME];
    int Cout = dimw(c, 0, "%s.conv1.weight", prefix);
    if (Cout < 1) return c->rc;
    int up = hasw(c->m, "%s.pool.weight", prefix), sc = hasw(c->m, "%s.conv1x1.weight", prefix);
    int To = up ? 2 * T : T;
    float *a = falloc((size_t)Cin * To), *b = falloc((size_t)Cin * To), *r = falloc((size_t)Cout * To);
    float *r2 = falloc((size_t)Cout * To);
    NEED(a && b && r && r2);
    const float *w1 = wt(c, (size_t)Cout * Cin * 3, "%s.conv1.weight", prefix);
    const float *b1 = wt(c, (size_t)Cout, "%s.conv1.bias", prefix);
    const float *w2 = wt(c, (size_t)Cout * Cout * 3, "%s.conv2.weight", prefix);
    const float *b2 = wt(c, (size_t)Cout, "%s.conv2.bias", prefix);
    const float *wp = up ? wt(c, (size_t)Cin * 3, "%s.pool.weight", prefix) : NULL;
    const float *bp = up ? wt(c, (size_t)Cin, "%s.pool.bias", prefix) : NULL;
    const float *ws = sc ? wt(c, (size_t)Cout * Cin, "%s.conv1x1.weight", prefix) : NULL;
    if (c->rc) goto out;
    if (!sc && Cin != Cout) {
        c->rc = err_set(c->err, c->errlen, ERR_FORMAT, "kokoro: %s changes width without conv1x1", prefix);
        goto out;
    }
    /* residual: norm1 -> leaky 0.2 -> [pool] -> conv1 -> norm2 -> leaky 0.2 -> conv2 */
    snprintf(nm, sizeof nm, "%s.norm1", prefix);
    if (adain(c, nm, x, Cin, T, s, a)) goto out;
    tap(c, a, (size_t)Cin * T, "%s.norm1", prefix);
    leaky(a, (size_t)Cin * T, 0.2f);
    const float *cur = a;
    if (up) {
        convtr1d(b, a, Cin, T, wp, bp, Cin, 3, 2, 1, 1, 1);
        tap(c, b, (size_t)Cin * To, "%s.pool", prefix);
        cur = b;
    }
    conv1d(r, cur, Cin, To, w1, b1, Cout, 3, 1, 1, 1);
    tap(c, r, (size_t)Cout * To, "%s.conv1", prefix);
    snprintf(nm, sizeof nm, "%s.norm2", prefix);
    if (adain(c, nm, r, Cout, To, s, r)) goto out;
    tap(c, r, (size_t)Cout * To, "%s.norm2", prefix);
    leaky(r, (size_t)Cout * To, 0.2f);
    conv1d(r2, r, Cout, To, w2, b2, Cout, 3, 1, 1, 1);
    tap(c, r2, (size_t)Cout * To, "%s.conv2", prefix);
    /* shortcut: [nearest x2] -> [conv1x1] */
    const float *sx = x;
    if (up) {
        for (int ch = 0; ch < Cin; ch++)
            for (int t = 0; t < To; t++) b[(size_t)ch * To + t] = x[(size_t)ch * T + t / 2];
        tap(c, b, (size_t)Cin * To, "%s.upsample", prefix);
        sx = b;
    }
    if (sc) {
        conv1d(y, sx, Cin, To, ws, NULL, Cout, 1, 1, 0, 1);
        tap(c, y, (size_t)Cout * To, "%s.conv1x1", prefix);
    } else {
        memcpy(y, sx, (size_t)Cout * To * sizeof(float));
    }
    const float rs2 = 0.70710677f; /* torch.rsqrt(tensor(2.)) */
    for (size_t i = 0; i < (size_t)Cout * To; i++) y[i] = (r2[i] + y[i]) * rs2;
    tap(c, y, (size_t)Cout * To, "%s", prefix);
    if (Cout_out) *Cout_out = Cout;
    if (To_out) *To_out = To;
out:
    free(a);
    free(b);
    free(r);
    free(r2);
    return c->rc;
}

/* ---- ALBERT ------------------------------------------------------------------------- */

static float gelu_new(float x)
{
    return 0.5f * x * (1.f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}

int kk_bert(const kk_model *m, const int64_t *ids, int T, float *out, const kk_tap *tp, char *err, size_t errlen)
{
    kc cc = {m, tp, err, errlen, 0}, *c = &cc;
    const kk_dims *d = &m->d;
    int E = d->bert_emb, H = d->bert_hidden, nh = d->bert_heads, hd = H / nh, I = 0;
    if (T < 1 || T > d->bert_maxpos) return err_set(err, errlen, ERR_TOOBIG, "kokoro: %d tokens (max %d)", T, d->bert_maxpos);
    for (int t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= d->n_token) return err_set(err, errlen, ERR_INVAL, "kokoro: token id %lld", (long long)ids[t]);
    const char *L = "bert.encoder.albert_layer_groups.0.albert_layers.0";
    I = dimw(c, 0, "%s.ffn.weight", L);
    const float *we = wt(c, (size_t)d->n_token * E, "bert.embeddings.word_embeddings.weight");
    const float *pe = wt(c, (size_t)d->bert_maxpos * E, "bert.embeddings.position_embeddings.weight");
    const float *ty = wt(c, 0, "bert.embeddings.token_type_embeddings.weight");
    const float *lnw = wt(c, (size_t)E, "bert.embeddings.LayerNorm.weight");
    const float *lnb = wt(c, (size_t)E, "bert.embeddings.LayerNorm.bias");
    const float *mw = wt(c, (size_t)H * E, "bert.encoder.embedding_hidden_mapping_in.weight");
    const float *mb = wt(c, (size_t)H, "bert.encoder.embedding_hidden_mapping_in.bias");
    const float *qw = wt(c, (size_t)H * H, "%s.attention.query.weight", L), *qb = wt(c, (size_t)H, "%s.attention.query.bias", L);
    const float *kw = wt(c, (size_t)H * H, "%s.attention.key.weight", L), *kb = wt(c, (size_t)H, "%s.attention.key.bias", L);
    const float *vw = wt(c, (size_t)H * H, "%s.attention.value.weight", L), *vb = wt(c, (size_t)H, "%s.attention.value.bias", L);
    const float *dw = wt(c, (size_t)H * H, "%s.attention.dense.weight", L), *db = wt(c, (size_t)H, "%s.attention.dense.bias", L);
    const float *aw = wt(c, (size_t)H, "%s.attention.LayerNorm.weight", L), *ab = wt(c, (size_t)H, "%s.attention.LayerNorm.bias", L);
    const float *fw = I > 0 ? wt(c, (size_t)I * H, "%s.ffn.weight", L) : NULL, *fb = I > 0 ? wt(c, (size_t)I, "%s.ffn.bias", L) : NULL;
    const float *ow = I > 0 ? wt(c, (size_t)H * I, "%s.ffn_output.weight", L) : NULL, *ob = wt(c, (size_t)H, "%s.ffn_output.bias", L);
    const float *fnw = wt(c, (size_t)H, "%s.full_layer_layer_norm.weight", L), *fnb = wt(c, (size_t)H, "%s.full_layer_layer_norm.bias", L);
    if (c->rc) return c->rc;
    float *e = falloc((size_t)T * E), *q = falloc((size_t)T * H), *k = falloc((size_t)T * H), *v = falloc((size_t)T * H);
    float *ctx = falloc((size_t)T * H), *a = falloc((size_t)T * H), *f = falloc((size_t)T * I), *p = falloc((size_t)T);
    NEED(e && q && k && v && ctx && a && f && p);
    for (int t = 0; t < T; t++)
        for (int j = 0; j < E; j++)
            e[(size_t)t * E + j] = we[(size_t)ids[t] * E + j] + ty[j] + pe[(size_t)t * E + j];
    layernorm(e, e, T, E, lnw, lnb, 1e-12f);
    tap(c, e, (size_t)T * E, "bert.embeddings");
    linear(out, e, T, E, H, mw, mb);
    float scale = 1.f / sqrtf((float)hd);
    for (int l = 0; l < d->bert_layers; l++) {
        linear(q, out, T, H, H, qw, qb);
        linear(k, out, T, H, H, kw, kb);
        linear(v, out, T, H, H, vw, vb);
        for (int h = 0; h < nh; h++)
            for (int i = 0; i < T; i++) {
                const float *qi = q + (size_t)i * H + h * hd;
                float mx = -INFINITY;
                for (int j = 0; j < T; j++) {
                    const float *kj = k + (size_t)j * H + h * hd;
                    float sc = 0;
                    for (int x = 0; x < hd; x++) sc += qi[x] * kj[x];
                    p[j] = sc * scale;
                    if (p[j] > mx) mx = p[j];
                }
                double sum = 0;
                for (int j = 0; j < T; j++) sum += (p[j] = expf(p[j] - mx));
                float inv = (float)(1.0 / sum);
                float *ci = ctx + (size_t)i * H + h * hd;
                for (int x = 0; x < hd; x++) ci[x] = 0;
                for (int j = 0; j < T; j++) {
                    const float *vj = v + (size_t)j * H + h * hd;
                    float pj = p[j] * inv;
                    for (int x = 0; x < hd; x++) ci[x] += pj * vj[x];
                }
            }
        linear(a, ctx, T, H, H, dw, db);
        for (size_t i = 0; i < (size_t)T * H; i++) a[i] += out[i];
        layernorm(a, a, T, H, aw, ab, 1e-12f);
        linear(f, a, T, H, I, fw, fb);
        for (size_t i = 0; i < (size_t)T * I; i++) f[i] = gelu_new(f[i]);
        linear(out, f, T, I, H, ow, ob);
        for (size_t i = 0; i < (size_t)T * H; i++) out[i] += a[i];
        layernorm(out, out, T, H, fnw, fnb, 1e-12f);
        tap(c, out, (size_t)T * H, "bert.layer#%d", l);
    }
    tap(c, out, (size_t)T * H, "bert.last_hidden_state");
out:
    free(e); free(q); free(k); free(v); free(ctx); free(a); free(f); free(p);
    return c->rc;
}

int kk_bert_encoder(const kk_model *m, const float *bert, int T, float *out, const kk_tap *tp, char *err, size_t errlen)
{
    kc cc = {m, tp, err, errlen, 0}, *c = &cc;
    int H = m->d.bert_hidden, C = m->d.hidden;
    const float *w = wt(c, (size_t)C * H, "bert_encoder.weight"), *b = wt(c, (size_t)C, "bert_encoder.bias");
    if (c->rc) return c->rc;
    linear(out, bert, T, H, C, w, b);
    tap(c, out, (size_t)T * C, "bert_encoder.out");
    return 0;
}

/* ---- prosody predictor ---------------------------------------------------------------- */

int kk_dur_encoder(const kk_model *m, const float *d_en, int T, const float *s, float *d, const kk_tap *tp,
                   char *err, size_t errlen)
{
    kc cc = {m, tp, err, errlen, 0}, *c = &cc;
    int C = m->d.hidden, S = m->d.style, W = C + S;
    float *l = falloc((size_t)T * C), *gb = falloc(2 * (size_t)C);
    NEED(l && gb);
    for (int t = 0; t < T; t++) {
        memcpy(d + (size_t)t * W, d_en + (size_t)t * C, (size_t)C * sizeof(float));
        memcpy(d + (size_t)t * W + C, s, (size_t)S * sizeof(float));
    }
    for (int i = 0; hasw(m, "predictor.text_encoder.lstms.%d.weight_ih_l0", i); i += 2) {
        char nm[KK_MAX_NAME];
        int H = 0;
        snprintf(nm, sizeof nm, "predictor.text_encoder.lstms.%d", i);
        if (dimw(c, 0, "%s.weight_hh_l0", nm) != 2 * C) {
            if (!c->rc) c->rc = err_set(err, errlen, ERR_FORMAT, "kokoro: %s width is not %d", nm, C);
            goto out;
        }
        if (bilstm(c, nm, d, T, W, l, &H)) goto out;
        tap(c, l, (size_t)T * C, "%s", nm);
        /* AdaLayerNorm lstms.i+1: per time step over C, eps 1e-5, (1+g) x + b */
        snprintf(nm, sizeof nm, "predictor.text_encoder.lstms.%d", i + 1);
        if (style_fc(c, nm, s, C, gb)) goto out;
        layernorm(l, l, T, C, NULL, NULL, 1e-5f);
        for (int t = 0; t < T; t++)
            for (int j = 0; j < C; j++) l[(size_t)t * C + j] = (1.f + gb[j]) * l[(size_t)t * C + j] + gb[C + j];
        tap(c, l, (size_t)T * C, "%s", nm);
        for (int t = 0; t < T; t++) memcpy(d + (size_t)t * W, l + (size_t)t * C, (size_t)C * sizeof(float));
    }
    tap(c, d, (size_t)T * W, "predictor.text_encoder.out(d)");
out:
    free(l);
    free(gb);
    return c->rc;
}

int kk_durations(const kk_model *m, const float *d, int T, float speed, float *sig, int64_t *dur,
                 const kk_tap *tp, char *err, size_t errlen)
{
    kc cc = {m, tp, err, errlen, 0}, *c = &cc;
    int C = m->d.hidden, W = C + m->d.style, nd = m->d.max_dur;
    float *x = falloc((size_t)T * C), *lg = falloc((size_t)T * nd);
    NEED(x && lg);
    if (!(speed > 0)) { c->rc = err_set(err, errlen, ERR_INVAL, "kokoro: speed %g", (double)speed); goto out; }
    if (bilstm(c, "predictor.lstm", d, T, W, x, NULL)) goto out;
    tap(c, x, (size_t)T * C, "predictor.lstm");
    const float *pw = wt(c, (size_t)nd * C, "predictor.duration_proj.linear_layer.weight");
    const float *pb = wt(c, (size_t)nd, "predictor.duration_proj.linear_layer.bias");
    if (c->rc) goto out;
    linear(lg, x, T, C, nd, pw, pb);
    tap(c, lg, (size_t)T * nd, "predictor.duration_proj");
    for (int t = 0; t < T; t++) {
        float sum = 0;
        for (int j = 0; j < nd; j++) sum += sigm(lg[(size_t)t * nd + j]);
        sig[t] = sum / speed;
        float r = rintf(sig[t]); /* torch.round: half to even */
        dur[t] = r < 1.f ? 1 : (int64_t)r;
    }
    tap(c, sig, (size_t)T, "durations.sigmoid_sum");
out:
    free(x);
    free(lg);
    return c->rc;
}

void kk_align(const float *x, int C, int T, const int64_t *dur, float *y)
{
    int64_t F = 0;
    for (int t = 0; t < T; t++) F += dur[t];
    for (int ch = 0; ch < C; ch++) {
        int64_t j = 0;
        for (int t = 0; t < T; t++)
            for (int64_t k = 0; k < dur[t]; k++) y[(size_t)ch * F + j++] = x[(size_t)ch * T + t];
    }
}

static void transpose(float *y, const float *x, int R, int Cn) /* x [R, Cn] -> y [Cn, R] */
{
    for (int r = 0; r < R; r++)
        for (int k = 0; k < Cn; k++) y[(size_t)k * R + r] = x[(size_t)r * Cn + k];
}

/* One F0/N branch `name` ("F0" / "N") on x [C, F] -> out [2F]. */
static int f0n_branch(kc *c, const char *name, const float *x, int C, int F, const float *s, float *outv)
{
    size_t cap = (size_t)C * 2 * F;
    float *a = falloc(cap), *b = falloc(cap);
    NEED(a && b);
    memcpy(a, x, (size_t)C * F * sizeof(float));
    int Cc = C, Tc = F;
    for (int i = 0; hasw(c->m, "predictor.%s.%d.conv1.weight", name, i); i++) {
        char nm[KK_MAX_NAME];
        snprintf(nm, sizeof nm, "predictor.%s.%d", name, i);
        int Co = dimw(c, 0, "%s.conv1.weight", nm);
        int up = hasw(c->m, "%s.pool.weight", nm);
        if (Co < 1 || Co > C || (up && Tc * 2 > 2 * F)) {
            if (!c->rc) c->rc = err_set(c->err, c->errlen, ERR_FORMAT, "kokoro: %s shape", nm);
            goto out;
        }
        if (adain_resblk(c, nm, a, Cc, Tc, s, b, &Cc, &Tc)) goto out;
        float *t = a; a = b; b = t;
    }
    if (Tc != 2 * F) { c->rc = err_set(c->err, c->errlen, ERR_FORMAT, "kokoro: %s does not upsample x2", name); goto out; }
    const float *pw = wt(c, (size_t)Cc, "predictor.%s_proj.weight", name);
    const float *pb = wt(c, 1, "predictor.%s_proj.bias", name);
    if (c->rc) goto out;
    conv1d(outv, a, Cc, Tc, pw, pb, 1, 1, 1, 0, 1);
    tap(c, outv, (size_t)Tc, "predictor.%s_proj", name);
out:
    free(a);
    free(b);
    return c->rc;
}

int kk_f0n(const kk_model *m, const float *en, int F, const float *s, float *f0, float *n, const kk_tap *tp,
           char *err, size_t errlen)
{
    kc cc = {m, tp, err, errlen, 0}, *c = &cc;
    int C = m->d.hidden, W = C + m->d.style;
    float *xt = falloc((size_t)F * W), *y = falloc((size_t)F * C), *yc = falloc((size_t)F * C);
    NEED(xt && y && yc);
    transpose(xt, en, W, F);
    tap(c, xt, (size_t)F * W, "predictor.shared.in.x");
    if (bilstm(c, "predictor.shared", xt, F, W, y, NULL)) goto out;
    tap(c, y, (size_t)F * C, "predictor.shared");
    transpose(yc, y, F, C);
    if (f0n_branch(c, "F0", yc, C, F, s, f0)) goto out;
    f0n_branch(c, "N", yc, C, F, s, n);
out:
    free(xt);
    free(y);
    free(yc);
    return c->rc;
}

/* ---- text encoder ---------------------------------------------------------------------- */

int kk_text_encoder(const kk_model *m, const int64_t *ids, int T, float *t_en, const kk_tap *tp, char *err,
                    size_t errlen)
{
    kc cc = {m, tp, err, errlen, 0}, *c = &cc;
    int C = m->d.hidden, K = m->d.text_k;
    const float *emb = wt(c, (size_t)m->d.n_token * C, "text_encoder.embedding.weight");
    if (c->rc) return c->rc;
    for (int t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= m->d.n_token) return err_set(err, errlen, ERR_INVAL, "kokoro: token id %lld", (long long)ids[t]);
    float *a = falloc((size_t)T * C), *b = falloc((size_t)T * C), *l = falloc((size_t)T * C);
    NEED(a && b && l);
    for (int t = 0; t < T; t++) memcpy(a + (size_t)t * C, emb + (size_t)ids[t] * C, (size_t)C * sizeof(float));
    tap(c, a, (size_t)T * C, "text_encoder.embedding");
    transpose(b, a, T, C); /* b [C, T] */
    for (int i = 0; hasw(m, "text_encoder.cnn.%d.0.weight", i); i++) {
        const float *w = wt(c, (size_t)C * C * K, "text_encoder.cnn.%d.0.weight", i);
        const float *bb = wt(c, (size_t)C, "text_encoder.cnn.%d.0.bias", i);
        const float *g = wt(c, (size_t)C, "text_encoder.cnn.%d.1.gamma", i);
        const float *be = wt(c, (size_t)C, "text_encoder.cnn.%d.1.beta", i);
        if (c->rc) goto out;
        conv1d(a, b, C, T, w, bb, C, K, 1, (K - 1) / 2, 1);
        transpose(l, a, C, T); /* [T, C] */
        layernorm(l, l, T, C, g, be, 1e-5f);
        leaky(l, (size_t)T * C, 0.2f);
        transpose(b, l, T, C);
        tap(c, b, (size_t)T * C, "text_encoder.cnn.%d", i);
    }
    transpose(a, b, C, T); /* [T, C] */
    if (bilstm(c, "text_encoder.lstm", a, T, C, l, NULL)) goto out;
    tap(c, l, (size_t)T * C, "text_encoder.lstm");
    transpose(t_en, l, T, C);
    tap(c, t_en, (size_t)T * C, "text_encoder.out(t_en)");
out:
    free(a);
    free(b);
    free(l);
    return c->rc;
}

/* ---- decoder front ---------------------------------------------------------------------- */

int kk_decoder(const kk_model *m, const float *asr, int F, const float *f0, const float *n, const float *s,
               float *x, const kk_tap *tp, char *err, size_t errlen)
{
    kc cc = {m, tp, err, errlen, 0}, *c = &cc;
    int C = m->d.hidden, D = m->d.dec_hidden, R = m->d.asr_res;
    int Wmax = D + R + 2 > C + 2 ? D + R + 2 : C + 2;
    float *f0d = falloc((size_t)F), *nd = falloc((size_t)F), *r = falloc((size_t)R * F);
    float *in = falloc((size_t)Wmax * 2 * F), *a = falloc((size_t)Wmax * 2 * F);
    NEED(f0d && nd && r && in && a);
    const float *fw = wt(c, 3, "decoder.F0_conv.weight"), *fb = wt(c, 1, "decoder.F0_conv.bias");
    const float *nw = wt(c, 3, "decoder.N_conv.weight"), *nb = wt(c, 1, "decoder.N_conv.bias");
    const float *rw = wt(c, (size_t)R * C, "decoder.asr_res.0.weight"), *rb = wt(c, (size_t)R, "decoder.asr_res.0.bias");
    if (c->rc) goto out;
    conv1d(f0d, f0, 1, 2 * F, fw, fb, 1, 3, 2, 1, 1);
    conv1d(nd, n, 1, 2 * F, nw, nb, 1, 3, 2, 1, 1);
    tap(c, f0d, (size_t)F, "decoder.F0_conv");
    tap(c, nd, (size_t)F, "decoder.N_conv");
    memcpy(in, asr, (size_t)C * F * sizeof(float));
    memcpy(in + (size_t)C * F, f0d, (size_t)F * sizeof(float));
    memcpy(in + (size_t)(C + 1) * F, nd, (size_t)F * sizeof(float));
    int Cc = 0, Tc = 0;
    if (dimw(c, 1, "decoder.encode.conv1.weight") != C + 2) {
        if (!c->rc) c->rc = err_set(err, errlen, ERR_FORMAT, "kokoro: decoder.encode input is not %d wide", C + 2);
        goto out;
    }
    if (adain_resblk(c, "decoder.encode", in, C + 2, F, s, a, &Cc, &Tc)) goto out;
    conv1d(r, asr, C, F, rw, rb, R, 1, 1, 0, 1);
    tap(c, r, (size_t)R * F, "decoder.asr_res");
    int res = 1;
    for (int i = 0; hasw(m, "decoder.decode.%d.conv1.weight", i); i++) {
        char nm[KK_MAX_NAME];
        snprintf(nm, sizeof nm, "decoder.decode.%d", i);
        int Cin = Cc;
        memcpy(in, a, (size_t)Cc * Tc * sizeof(float));
        if (res) {
            if (Tc != F || Cc + R + 2 > Wmax) { c->rc = err_set(err, errlen, ERR_FORMAT, "kokoro: %s input shape", nm); goto out; }
            memcpy(in + (size_t)Cc * F, r, (size_t)R * F * sizeof(float));
            memcpy(in + (size_t)(Cc + R) * F, f0d, (size_t)F * sizeof(float));
            memcpy(in + (size_t)(Cc + R + 1) * F, nd, (size_t)F * sizeof(float));
            Cin = Cc + R + 2;
        }
        int up = hasw(m, "%s.pool.weight", nm);
        int Co = dimw(c, 0, "%s.conv1.weight", nm);
        if (Co < 1 || Co > Wmax || (up && Tc * 2 > 2 * F) || dimw(c, 1, "%s.conv1.weight", nm) != Cin) {
            if (!c->rc) c->rc = err_set(err, errlen, ERR_FORMAT, "kokoro: %s shape", nm);
            goto out;
        }
        if (adain_resblk(c, nm, in, Cin, Tc, s, a, &Cc, &Tc)) goto out;
        if (up) res = 0;
    }
    if (Tc != 2 * F || Cc != m->d.up_init) {
        c->rc = err_set(err, errlen, ERR_FORMAT, "kokoro: decoder output [%d, %d], expected [%d, %d]", Cc, Tc, m->d.up_init, 2 * F);
        goto out;
    }
    memcpy(x, a, (size_t)Cc * Tc * sizeof(float));
out:
    free(f0d); free(nd); free(r); free(in); free(a);
    return c->rc;
}

/* ---- generator ------------------------------------------------------------------------- */

/* torch 1.13 CPU F.interpolate(mode="linear", align_corners=False, scale_factor=sc):
 * x [n] -> y [nout] (ARCHITECTURE.md §8 recipe; bit-exact with upstream). */
static void interp_linear(float *y, int nout, const float *x, int n, double sc, size_t xs, size_t ys)
{
    double step = (double)(float)(1.0 / sc);
    for (int i = 0; i < nout; i++) {
        double src = step * (i + 0.5) - 0.5;
        if (src < 0) src = 0;
        int i0 = (int)floor(src);
        if (i0 > n - 1) i0 = n - 1;
        int i1 = i0 < n - 1 ? i0 + 1 : i0;
        float l1 = (float)(src - i0), l0 = (float)(1.0 - l1);
        y[(size_t)i * ys] = fmaf(x[(size_t)i0 * xs], l0, (float)(x[(size_t)i1 * xs] * l1));
    }
}

/* Source: f0 [F2] -> har_source [L] (L = F2 * up), with sine_waves [L, 9] scratch. */
static int sine_source(kc *c, const float *f0, int F2, int up, const float *randn, float *hs)
{
    size_t L = (size_t)F2 * up;
    int H = KK_HARM, sr = c->m->d.sample_rate;
    float *f0u = falloc(L), *rad = falloc(L * H), *rd = falloc((size_t)F2 * H), *ph = falloc((size_t)F2 * H);
    float *sw = falloc(L * H), *uv = falloc(L);
    NEED(f0u && rad && rd && ph && sw && uv);
    const float *lw = wt(c, (size_t)H, "decoder.generator.m_source.l_linear.weight");
    const float *lb = wt(c, 1, "decoder.generator.m_source.l_linear.bias");
    if (c->rc) goto out;
    for (size_t t = 0; t < L; t++) f0u[t] = f0[t / up];
    tap(c, f0u, L, "decoder.generator.f0_upsamp");
    for (size_t t = 0; t < L; t++)
        for (int h = 0; h < H; h++) {
            float r = f0u[t] * (float)(h + 1) / (float)sr;
            rad[t * H + h] = r - floorf(r); /* Python-style mod 1 */
        }
    /* rand_ini (added to t = 0 only) never reaches the output: the /up interpolation
     * reads positions up*j + up/2 - 1 and up*j + up/2 only (ARCHITECTURE.md §7). */
    for (int h = 0; h < H; h++) {
        interp_linear(rd + h, F2, rad + h, (int)L, 1.0 / up, H, H);
        double acc = 0;
        for (int j = 0; j < F2; j++) {
            acc += rd[(size_t)j * H + h];
            float cs = (float)acc; /* torch cumsum: double accumulator, float outputs */
            ph[(size_t)j * H + h] = cs * 2.f * (float)M_PI * (float)up;
        }
        interp_linear(sw + h, (int)L, ph + h, F2, (double)up, H, H);
    }
    const float namp_uv = 0.003f, namp_un = 0.1f / 3.f;
    for (size_t t = 0; t < L; t++) {
        uv[t] = f0u[t] > 10.f ? 1.f : 0.f;
        float na = uv[t] * namp_uv + (1.f - uv[t]) * namp_un;
        for (int h = 0; h < H; h++) {
            float sn = sinf(sw[t * H + h]) * 0.1f;
            sw[t * H + h] = sn * uv[t] + na * randn[t * H + h];
        }
    }
    tap(c, sw, L * H, "decoder.generator.m_source.l_sin_gen.sine_waves");
    tap(c, uv, L, "decoder.generator.m_source.l_sin_gen.uv");
    for (size_t t = 0; t < L; t++) {
        float a = 0;
        for (int h = 0; h < H; h++) a += sw[t * H + h] * lw[h];
        hs[t] = tanhf(a + lb[0]);
    }
    tap(c, hs, L, "decoder.generator.m_source.har_source");
out:
    free(f0u); free(rad); free(rd); free(ph); free(sw); free(uv);
    return c->rc;
}

static void hann(double *w, int n)
{
    for (int i = 0; i < n; i++) w[i] = (double)(float)(0.5 - 0.5 * cos(2 * M_PI * i / n));
}

/* torch.stft(center, reflect, periodic Hann, onesided): x [L] -> har [2 nb, nF],
 * rows 0..nb-1 magnitude, nb..2nb-1 phase (atan2; DC/Nyquist imag forced to +0). */
static int stft(const float *x, size_t L, int N, int hop, float *har, size_t nF)
{
    int nb = N / 2 + 1, p = N / 2;
    if ((size_t)p >= L) return -1;
    double w[64], cs[64], sn[64]; /* twiddles e^{-2 pi i m / N}, m = k n mod N */
    hann(w, N);
    for (int i = 0; i < N; i++) {
        cs[i] = cos(2 * M_PI * i / N);
        sn[i] = sin(2 * M_PI * i / N);
    }
    for (size_t f = 0; f < nF; f++) {
        double fr[64];
        for (int n = 0; n < N; n++) {
            long i = (long)(f * hop) + n - p;
            if (i < 0) i = -i;
            if (i >= (long)L) i = 2 * ((long)L - 1) - i;
            fr[n] = w[n] * x[i];
        }
        for (int k = 0; k < nb; k++) {
            double re = 0, im = 0;
            for (int n = 0; n < N; n++) {
                re += fr[n] * cs[(k * n) % N];
                im -= fr[n] * sn[(k * n) % N];
            }
            /* +0 imag where it is exactly zero analytically: DC, Nyquist, and every bin of
             * frame 0 (even about the window centre) */
            float fre = (float)re, fim = (k == 0 || k == N / 2 || f == 0) ? 0.f : (float)im;
            har[(size_t)k * nF + f] = hypotf(fre, fim);
            har[(size_t)(nb + k) * nF + f] = atan2f(fim, fre);
        }
    }
    return 0;
}

/* torch.istft(spec * exp(i phase), center, periodic Hann): [nb, nF] each -> y [hop (nF-1)]. */
static int istft(const float *spec, const float *phase, size_t nF, int N, int hop, float *y)
{
    int nb = N / 2 + 1, p = N / 2;
    size_t Lp = (size_t)N + (size_t)hop * (nF - 1);
    double *acc = calloc(Lp, sizeof(double)), *env = calloc(Lp, sizeof(double));
    if (!acc || !env) { free(acc); free(env); return ERR_NOMEM; }
    double w[64], cs[64], sn[64];
    hann(w, N);
    for (int i = 0; i < N; i++) {
        cs[i] = cos(2 * M_PI * i / N);
        sn[i] = sin(2 * M_PI * i / N);
    }
    for (size_t f = 0; f < nF; f++) {
        float re[33], im[33];
        for (int k = 0; k < nb; k++) {
            float mg = spec[(size_t)k * nF + f], ph = phase[(size_t)k * nF + f];
            re[k] = mg * cosf(ph);
            im[k] = mg * sinf(ph);
        }
        for (int n = 0; n < N; n++) {
            double s = re[0] + ((n & 1) ? -re[N / 2] : re[N / 2]);
            for (int k = 1; k < N / 2; k++) s += 2 * (re[k] * cs[(k * n) % N] - im[k] * sn[(k * n) % N]);
            acc[f * hop + n] += (float)(s / N) * w[n];
            env[f * hop + n] += w[n] * w[n];
        }
    }
    for (size_t i = 0; i < (size_t)hop * (nF - 1); i++) {
        double e = env[i + p];
        y[i] = (float)(e > 1e-11 ? acc[i + p] / e : acc[i + p]);
    }
    free(acc);
    free(env);
    return 0;
}

static void snake(float *x, int C, int T, const float *alpha)
{
    for (int ch = 0; ch < C; ch++) {
        float a = alpha[ch], ia = 1.f / a;
        float *r = x + (size_t)ch * T;
        for (int t = 0; t < T; t++) {
            float sn = sinf(a * r[t]);
            r[t] = r[t] + ia * (sn * sn);
        }
    }
}

/* AdaINResBlock1 `prefix` with kernel k and dilations dil[3]: x [C, T] -> y [C, T]
 * (y may equal x). */
static int adain_resblock1(kc *c, const char *prefix, const float *x, int C, int T, int k, const int *dil,
                           const float *s, float *y)
{
    float *t1 = falloc((size_t)C * T), *t2 = falloc((size_t)C * T);
    NEED(t1 && t2);
    if (y != x) memcpy(y, x, (size_t)C * T * sizeof(float));
    for (int j = 0; j < 3; j++) {
        char nm[KK_MAX_NAME];
        const float *w1 = wt(c, (size_t)C * C * k, "%s.convs1.%d.weight", prefix, j);
        const float *b1 = wt(c, (size_t)C, "%s.convs1.%d.bias", prefix, j);
        const float *w2 = wt(c, (size_t)C * C * k, "%s.convs2.%d.weight", prefix, j);
        const float *b2 = wt(c, (size_t)C, "%s.convs2.%d.bias", prefix, j);
        const float *a1 = wt(c, (size_t)C, "%s.alpha1.%d", prefix, j);
        const float *a2 = wt(c, (size_t)C, "%s.alpha2.%d", prefix, j);
        if (c->rc) goto out;
        snprintf(nm, sizeof nm, "%s.adain1.%d", prefix, j);
        if (adain(c, nm, y, C, T, s, t1)) goto out;
        tap(c, t1, (size_t)C * T, "%s", nm);
        snake(t1, C, T, a1);
        conv1d(t2, t1, C, T, w1, b1, C, k, 1, dil[j] * (k - 1) / 2, dil[j]);
        tap(c, t2, (size_t)C * T, "%s.convs1.%d", prefix, j);
        snprintf(nm, sizeof nm, "%s.adain2.%d", prefix, j);
        if (adain(c, nm, t2, C, T, s, t2)) goto out;
        tap(c, t2, (size_t)C * T, "%s", nm);
        snake(t2, C, T, a2);
        conv1d(t1, t2, C, T, w2, b2, C, k, 1, (k - 1) / 2, 1);
        tap(c, t1, (size_t)C * T, "%s.convs2.%d", prefix, j);
        for (size_t i = 0; i < (size_t)C * T; i++) y[i] += t1[i];
    }
out:
    free(t1);
    free(t2);
    return c->rc;
}

int kk_harmonic(const kk_model *m, const float *f0, int F2, const float *randn, float *har, const kk_tap *tp,
                char *err, size_t errlen)
{
    kc cc = {m, tp, err, errlen, 0}, *c = &cc;
    const kk_dims *d = &m->d;
    int N = d->n_fft, hop = d->hop, nb = N / 2 + 1, prod = 1;
    if (N > 64) return err_set(err, errlen, ERR_FORMAT, "kokoro: n_fft %d over 64", N);
    for (int i = 0; i < d->n_ups; i++) prod *= d->ups_rate[i];
    size_t L = (size_t)F2 * prod * hop, nF = L / hop + 1;
    float *hs = falloc(L);
    NEED(hs);
    if (sine_source(c, f0, F2, prod * hop, randn, hs)) goto out;
    if (stft(hs, L, N, hop, har, nF)) { c->rc = err_set(err, errlen, ERR_INVAL, "kokoro: audio too short for the STFT"); goto out; }
    tap(c, har, 2 * (size_t)nb * nF, "decoder.generator.noise_convs.0.in.har");
out:
    free(hs);
    return c->rc;
}

int kk_generator(const kk_model *m, const float *x, int F2, const float *s, const float *f0, const float *randn,
                 const float *har_in, float *audio, const kk_tap *tp, char *err, size_t errlen)
{
    kc cc = {m, tp, err, errlen, 0}, *c = &cc;
    const kk_dims *d = &m->d;
    int N = d->n_fft, hop = d->hop, nb = N / 2 + 1, prod = 1;
    if (N > 64) return err_set(err, errlen, ERR_FORMAT, "kokoro: n_fft %d over 64", N);
    for (int i = 0; i < d->n_ups; i++) prod *= d->ups_rate[i];
    size_t L = (size_t)F2 * prod * hop, nF = L / hop + 1;
    size_t cap = (size_t)d->up_init * F2 * prod + (size_t)d->up_init; /* widest stage: C halves as T grows */
    float *har = falloc(2 * (size_t)nb * nF), *a = falloc(cap), *b = falloc(cap);
    float *xs = falloc(cap), *sum = falloc(cap), *rb = falloc(cap);
    NEED(har && a && b && xs && sum && rb);
    if (har_in) {
        memcpy(har, har_in, 2 * (size_t)nb * nF * sizeof(float));
    } else if (kk_harmonic(m, f0, F2, randn, har, tp, err, errlen)) {
        c->rc = c->rc ? c->rc : ERR_INVAL;
        goto out;
    }
    int C = d->up_init, T = F2;
    memcpy(a, x, (size_t)C * T * sizeof(float));
    for (int i = 0; i < d->n_ups; i++) {
        int u = d->ups_rate[i], k = d->ups_k[i], Co = C / 2;
        leaky(a, (size_t)C * T, 0.1f);
        if (i == 0) tap(c, a, (size_t)C * T, "decoder.generator.ups.0.in.x");
        else tap(c, a, (size_t)C * T, "decoder.generator.ups.%d.x", i);
        /* source branch */
        int sf = 1;
        for (int j = i + 1; j < d->n_ups; j++) sf *= d->ups_rate[j];
        int nk = i + 1 < d->n_ups ? 2 * sf : 1, npad = i + 1 < d->n_ups ? (sf + 1) / 2 : 0;
        const float *nw = wt(c, (size_t)Co * 2 * nb * nk, "decoder.generator.noise_convs.%d.weight", i);
        const float *nbi = wt(c, (size_t)Co, "decoder.generator.noise_convs.%d.bias", i);
        const float *uw = wt(c, (size_t)C * Co * k, "decoder.generator.ups.%d.weight", i);
        const float *ub = wt(c, (size_t)Co, "decoder.generator.ups.%d.bias", i);
        if (c->rc) goto out;
        int Tn = conv_out((int)nF, nk, sf, npad, 1);
        int Tu = (T - 1) * u - 2 * ((k - u) / 2) + k, last = i == d->n_ups - 1;
        if (Tu + last != Tn || (size_t)Co * Tn > cap) {
            c->rc = err_set(err, errlen, ERR_FORMAT, "kokoro: stage %d lengths %d (ups) vs %d (source)", i, Tu + last, Tn);
            goto out;
        }
        conv1d(xs, har, 2 * nb, (int)nF, nw, nbi, Co, nk, sf, npad, 1);
        tap(c, xs, (size_t)Co * Tn, "decoder.generator.noise_convs.%d", i);
        char nm[KK_MAX_NAME];
        int rk = dimw(c, 2, "decoder.generator.noise_res.%d.convs1.0.weight", i);
        if (rk < 1) goto out;
        snprintf(nm, sizeof nm, "decoder.generator.noise_res.%d", i);
        if (adain_resblock1(c, nm, xs, Co, Tn, rk, d->rb_dil[0], s, xs)) goto out;
        tap(c, xs, (size_t)Co * Tn, "%s", nm);
        convtr1d(b, a, C, T, uw, ub, Co, k, u, (k - u) / 2, 0, 0);
        if (last) { /* ReflectionPad1d((1, 0)) */
            for (int ch = Co - 1; ch >= 0; ch--) {
                float *dst = a + (size_t)ch * Tn;
                const float *src = b + (size_t)ch * Tu;
                memcpy(dst + 1, src, (size_t)Tu * sizeof(float));
                dst[0] = src[1];
            }
            tap(c, a, (size_t)Co * Tn, "decoder.generator.reflection_pad");
        } else {
            memcpy(a, b, (size_t)Co * Tu * sizeof(float));
            tap(c, a, (size_t)Co * Tn, "decoder.generator.ups.%d", i);
        }
        C = Co;
        T = Tn;
        for (size_t q = 0; q < (size_t)C * T; q++) a[q] += xs[q];
        tap(c, a, (size_t)C * T, "decoder.generator.resblocks.%d.in.x", i * d->n_kernels);
        for (int j = 0; j < d->n_kernels; j++) {
            int r = i * d->n_kernels + j;
            snprintf(nm, sizeof nm, "decoder.generator.resblocks.%d", r);
            if (adain_resblock1(c, nm, a, C, T, d->rb_k[j], d->rb_dil[j], s, rb)) goto out;
            tap(c, rb, (size_t)C * T, "%s", nm);
            for (size_t q = 0; q < (size_t)C * T; q++) sum[q] = j ? sum[q] + rb[q] : rb[q];
        }
        for (size_t q = 0; q < (size_t)C * T; q++) a[q] = sum[q] / (float)d->n_kernels;
    }
    if ((size_t)T != nF) { c->rc = err_set(err, errlen, ERR_FORMAT, "kokoro: generator ends at %d frames, not %zu", T, nF); goto out; }
    leaky(a, (size_t)C * T, 0.01f);
    tap(c, a, (size_t)C * T, "decoder.generator.conv_post.in.x");
    const float *pw = wt(c, (size_t)2 * nb * C * 7, "decoder.generator.conv_post.weight");
    const float *pb = wt(c, (size_t)2 * nb, "decoder.generator.conv_post.bias");
    if (c->rc) goto out;
    conv1d(b, a, C, T, pw, pb, 2 * nb, 7, 1, 3, 1);
    tap(c, b, (size_t)2 * nb * T, "decoder.generator.conv_post");
    for (size_t q = 0; q < (size_t)nb * T; q++) b[q] = expf(b[q]);
    for (size_t q = (size_t)nb * T; q < 2 * (size_t)nb * T; q++) b[q] = sinf(b[q]);
    tap(c, b, (size_t)nb * T, "decoder.generator.spec");
    tap(c, b + (size_t)nb * T, (size_t)nb * T, "decoder.generator.phase");
    if (istft(b, b + (size_t)nb * T, nF, N, hop, audio)) { c->rc = err_set(err, errlen, ERR_NOMEM, "kokoro: istft"); goto out; }
    tap(c, audio, L, "audio");
out:
    free(har); free(a); free(b); free(xs); free(sum); free(rb);
    return c->rc;
}

/* ---- whole forward ------------------------------------------------------------------------ */

/* splitmix64 -> Box-Muller: N(0, 1) floats (not torch's stream; only the statistics matter) */
static void gauss_fill(float *x, size_t n, uint64_t seed)
{
    uint64_t st = seed;
    for (size_t i = 0; i < n; i += 2) {
        double u[2];
        for (int j = 0; j < 2; j++) {
            uint64_t z = (st += 0x9E3779B97F4A7C15ull);
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
            z ^= z >> 31;
            u[j] = ((double)(z >> 11) + 0.5) / 9007199254740992.0;
        }
        double r = sqrt(-2 * log(u[0]));
        x[i] = (float)(r * cos(2 * M_PI * u[1]));
        if (i + 1 < n) x[i + 1] = (float)(r * sin(2 * M_PI * u[1]));
    }
}

int kk_forward(const kk_model *m, const int64_t *ids, int T, const float *ref_s, float speed, const float *randn,
               size_t randn_n, uint64_t seed, float **audio, size_t *n, int64_t *dur_out, char *err, size_t errlen)
{
    *audio = NULL;
    *n = 0;
    const kk_dims *d = &m->d;
    int C = d->hidden, S = d->style, W = C + S, rc = 0;
    if (T < 1 || T > d->bert_maxpos) return err_set(err, errlen, ERR_TOOBIG, "kokoro: %d tokens (max %d)", T, d->bert_maxpos);
    size_t tw = (size_t)T * (W > d->bert_hidden ? W : d->bert_hidden);
    float *a = falloc(tw), *b = falloc(tw), *sig = falloc((size_t)T), *en = NULL, *f0 = NULL, *nn = NULL, *asr = NULL;
    float *x = NULL, *rn = NULL, *au = NULL;
    int64_t *dur = calloc((size_t)T, sizeof *dur);
    if (!a || !b || !sig || !dur) { rc = err_set(err, errlen, ERR_NOMEM, "kokoro: forward"); goto out; }
    if ((rc = kk_bert(m, ids, T, a, NULL, err, errlen)) || (rc = kk_bert_encoder(m, a, T, b, NULL, err, errlen)) ||
        (rc = kk_dur_encoder(m, b, T, ref_s + S, a, NULL, err, errlen)) ||
        (rc = kk_durations(m, a, T, speed, sig, dur, NULL, err, errlen)))
        goto out;
    int64_t F = 0;
    for (int t = 0; t < T; t++) F += dur[t];
    if (F > KK_MAX_FRAMES) { rc = err_set(err, errlen, ERR_TOOBIG, "kokoro: %lld frames (max %d)", (long long)F, KK_MAX_FRAMES); goto out; }
    size_t L = kk_samples(m, (int)F);
    if (randn && randn_n < 9 * L) { rc = err_set(err, errlen, ERR_INVAL, "kokoro: %zu noise values, need %zu", randn_n, 9 * L); goto out; }
    en = falloc((size_t)W * F);
    f0 = falloc(2 * (size_t)F);
    nn = falloc(2 * (size_t)F);
    asr = falloc((size_t)C * F);
    x = falloc((size_t)d->up_init * 2 * F);
    au = falloc(L);
    rn = randn ? NULL : falloc(9 * L);
    if (!en || !f0 || !nn || !asr || !x || !au || (!randn && !rn)) { rc = err_set(err, errlen, ERR_NOMEM, "kokoro: forward"); goto out; }
    transpose(b, a, T, W); /* d^T [W, T] */
    kk_align(b, W, T, dur, en);
    if ((rc = kk_f0n(m, en, (int)F, ref_s + S, f0, nn, NULL, err, errlen)) ||
        (rc = kk_text_encoder(m, ids, T, b, NULL, err, errlen)))
        goto out;
    kk_align(b, C, T, dur, asr);
    if (rn) gauss_fill(rn, 9 * L, seed);
    if ((rc = kk_decoder(m, asr, (int)F, f0, nn, ref_s, x, NULL, err, errlen)) ||
        (rc = kk_generator(m, x, 2 * (int)F, ref_s, f0, randn ? randn : rn, NULL, au, NULL, err, errlen)))
        goto out;
    if (dur_out) memcpy(dur_out, dur, (size_t)T * sizeof *dur);
    *audio = au;
    *n = L;
    au = NULL;
out:
    free(a); free(b); free(sig); free(en); free(f0); free(nn); free(asr); free(x); free(rn); free(au); free(dur);
    return rc;
}

int kk_voice_row(const kk_model *m, const char *path, int row, float *out, char *err, size_t errlen)
{
    size_t w = 2 * (size_t)m->d.style;
    FILE *fp = fopen(path, "rb");
    if (!fp) return err_set(err, errlen, ERR_NOTFOUND, "kokoro: cannot open voice %s", path);
    int rc = 0;
    long sz = fseek(fp, 0, SEEK_END) ? -1 : ftell(fp);
    if (sz <= 0 || (size_t)sz % (w * sizeof(float)))
        rc = err_set(err, errlen, ERR_INVAL, "kokoro: voice %s is not a [rows, %zu] f32 pack", path, w);
    else if (row < 0 || (size_t)row >= (size_t)sz / (w * sizeof(float)))
        rc = err_set(err, errlen, ERR_INVAL, "kokoro: voice %s has %zu rows, row %d asked", path,
                     (size_t)sz / (w * sizeof(float)), row);
    else if (fseek(fp, (long)((size_t)row * w * sizeof(float)), SEEK_SET) || fread(out, sizeof(float), w, fp) != w)
        rc = err_set(err, errlen, ERR_IO, "kokoro: cannot read voice %s", path);
    fclose(fp);
    return rc; /* little-endian hosts only (x86-64, arm64), like every tensor here */
}
