/* pocket-randckpt — writes a random pocket-tts checkpoint with exactly the tensor names
 * and shapes of a layout JSON (../shared/reference/pocket-tts/layout-*.json), for load
 * checks and full-size benchmarks without the real weights. Never committed; generated at
 * test/bench time.
 *
 *   pocket-randckpt LAYOUT.json OUT.safetensors [f32|bf16|f16] [SEED]
 *
 * Values keep activations O(1) so a forward pass is numerically meaningful: matrices
 * (ndim >= 2) uniform with variance 1/fan_in (fan_in = product of all but the first dim),
 * except embedding tables and BOS vectors (variance 1); norm gains and `alpha` 1 ± 0.1;
 * biases ± 0.05; `emb_std` in [0.5, 1.5]; layer scales in [0.01, 0.02]; `freqs` buffers
 * are upstream's exact exp(-ln(10000)·k/half). The header is padded so the data block
 * starts 8-byte aligned (F32 tensors can then be used in place after mmap).
 *
 * The generator is also used by the unit tests (they #include this file with
 * PK_RANDCKPT_NO_MAIN defined), hence the library-style function pkr_write().
 */
#include "core/err.h"
#include "nn/nn.h"

#include <cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pkr_rng {
    uint64_t s;
} pkr_rng;

static uint64_t pkr_next(pkr_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float pkr_unif(pkr_rng *r) /* [-1, 1) */
{
    return (float)((double)(pkr_next(r) >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static int ends(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* value i of tensor `name` with shape dims */
typedef struct pkr_gen {
    int kind; /* 0 uniform(a), 1 around 1, 2 bias, 3 emb_std, 4 layer scale, 5 freqs */
    float a;
    int half;
} pkr_gen;

static pkr_gen pkr_kind(const char *name, int nd, const int64_t *dims)
{
    pkr_gen g = {0, 1.0f, 0};
    if (ends(name, "freqs")) g.kind = 5, g.half = (int)dims[nd - 1];
    else if (ends(name, "emb_std")) g.kind = 3;
    else if (ends(name, "emb_mean")) g.kind = 2, g.a = 0.2f;
    else if (strstr(name, "layer_scale")) g.kind = 4;
    else if (ends(name, "alpha") || (nd == 1 && ends(name, "weight"))) g.kind = 1;
    else if (ends(name, "bias")) g.kind = 2, g.a = 0.05f * 1.7320508f;
    else if (strstr(name, "embed.weight") || strstr(name, "bos")) g.a = 1.7320508f;
    else if (nd >= 2) {
        double fan = 1;
        for (int i = 1; i < nd; i++) fan *= (double)dims[i];
        /* conv-transpose weights are [in, out/groups, k]: fan_in = in/groups·k/stride, but
         * 1/(dims[1]·k) keeps the same order of magnitude, which is all we need */
        g.a = (float)sqrt(3.0 / (fan > 0 ? fan : 1));
    } else g.a = 1.7320508f;
    return g;
}

static float pkr_value(const pkr_gen *g, pkr_rng *r, int64_t i)
{
    switch (g->kind) {
    case 1: return 1.0f + 0.1f * pkr_unif(r);
    case 2: return g->a * pkr_unif(r);
    case 3: return 1.0f + 0.5f * pkr_unif(r);
    case 4: return 0.015f + 0.005f * pkr_unif(r);
    case 5: return expf(-logf(10000.0f) * (float)(i % g->half) / (float)g->half);
    default: return g->a * pkr_unif(r);
    }
}

static uint16_t pkr_f16(float f) /* round to nearest even, no NaN inputs here */
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t s = (u >> 16) & 0x8000;
    int e = (int)((u >> 23) & 0xff) - 127 + 15;
    uint32_t m = u & 0x7fffff;
    if (e >= 31) return (uint16_t)(s | 0x7c00);
    if (e <= 0) {
        if (e < -10) return (uint16_t)s;
        m |= 0x800000;
        int sh = 14 - e;
        uint32_t h = m >> sh, rem = m & ((1u << sh) - 1), half = 1u << (sh - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return (uint16_t)(s | h);
    }
    uint32_t h = ((uint32_t)e << 10) | (m >> 13), rem = m & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)(s | h);
}

/* Writes a random checkpoint for every tensor of the layout JSON file. dtype: "F32",
 * "BF16" or "F16". */
static int pkr_write(const char *layout_path, const char *out_path, const char *dtype, uint64_t seed, char *err,
                     size_t errlen)
{
    size_t es = !strcmp(dtype, "F32") ? 4 : (!strcmp(dtype, "BF16") || !strcmp(dtype, "F16")) ? 2 : 0;
    if (!es) return err_set(err, errlen, ERR_INVAL, "dtype must be F32, BF16 or F16");
    FILE *lf = fopen(layout_path, "rb");
    if (!lf) return err_set(err, errlen, ERR_NOTFOUND, "%s: cannot open", layout_path);
    enum { CAP = 8 << 20 };
    char *txt = malloc(CAP + 1);
    size_t n = txt ? fread(txt, 1, CAP + 1, lf) : 0;
    fclose(lf);
    if (!txt || n > CAP) {
        free(txt);
        return err_set(err, errlen, ERR_TOOBIG, "%s: layout missing or over 8 MiB", layout_path);
    }
    cJSON *root = cJSON_ParseWithLength(txt, n);
    free(txt);
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(root, "tensors");
    if (!cJSON_IsObject(ts)) {
        cJSON_Delete(root);
        return err_set(err, errlen, ERR_FORMAT, "%s: no \"tensors\" object", layout_path);
    }
    /* header */
    cJSON *hdr = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(hdr, "__metadata__");
    cJSON_AddStringToObject(meta, "format", "pt");
    cJSON_AddStringToObject(meta, "generator", "pocket-randckpt");
    uint64_t off = 0;
    for (const cJSON *t = ts->child; t; t = t->next) {
        if (!cJSON_IsArray(t) || cJSON_GetArraySize(t) > ST_MAX_DIMS) {
            cJSON_Delete(hdr), cJSON_Delete(root);
            return err_set(err, errlen, ERR_FORMAT, "layout: tensor '%s' has no shape list", t->string);
        }
        uint64_t numel = 1;
        for (const cJSON *d = t->child; d; d = d->next) numel *= (uint64_t)d->valuedouble;
        cJSON *e = cJSON_AddObjectToObject(hdr, t->string);
        cJSON_AddStringToObject(e, "dtype", dtype);
        cJSON_AddItemToObject(e, "shape", cJSON_Duplicate(t, 1));
        cJSON *o = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)(off + numel * es)));
        off += numel * es;
    }
    char *hs = cJSON_PrintUnformatted(hdr);
    cJSON_Delete(hdr);
    FILE *f = fopen(out_path, "wb");
    if (!hs || !f) {
        free(hs);
        if (f) fclose(f);
        cJSON_Delete(root);
        return err_set(err, errlen, ERR_IO, "%s: cannot write", out_path);
    }
    size_t hl = strlen(hs), pad = (8 - (8 + hl) % 8) % 8;
    uint64_t L = hl + pad;
    unsigned char lb[8];
    for (int i = 0; i < 8; i++) lb[i] = (unsigned char)(L >> (8 * i));
    int ok = fwrite(lb, 1, 8, f) == 8 && fwrite(hs, 1, hl, f) == hl && fwrite("        ", 1, pad, f) == pad;
    free(hs);
    enum { BLK = 1 << 16 };
    unsigned char *buf = malloc(BLK * 4);
    ok = ok && buf;
    uint64_t ti = 0;
    for (const cJSON *t = ts->child; ok && t; t = t->next, ti++) {
        int64_t dims[ST_MAX_DIMS];
        int nd = 0;
        for (const cJSON *d = t->child; d; d = d->next) dims[nd++] = (int64_t)d->valuedouble;
        int64_t numel = 1;
        for (int i = 0; i < nd; i++) numel *= dims[i];
        pkr_gen g = pkr_kind(t->string, nd, dims);
        pkr_rng r = {seed * 0x100000001b3ull + ti * 0x9e3779b97f4a7c15ull};
        for (int64_t i0 = 0; ok && i0 < numel; i0 += BLK) {
            int64_t m = numel - i0 < BLK ? numel - i0 : BLK;
            for (int64_t i = 0; i < m; i++) {
                float v = pkr_value(&g, &r, i0 + i);
                if (es == 4) memcpy(buf + 4 * i, &v, 4);
                else {
                    uint16_t h = dtype[0] == 'B' ? nn_f32_to_bf16(v) : pkr_f16(v);
                    memcpy(buf + 2 * i, &h, 2);
                }
            }
            ok = fwrite(buf, es, (size_t)m, f) == (size_t)m;
        }
    }
    free(buf);
    cJSON_Delete(root);
    if (fclose(f) != 0) ok = 0;
    if (!ok) return err_set(err, errlen, ERR_IO, "%s: write failed", out_path);
    return 0;
}

#ifndef PK_RANDCKPT_NO_MAIN
int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s LAYOUT.json OUT.safetensors [f32|bf16|f16] [SEED]\n", argv[0]);
        return 2;
    }
    const char *dt = argc > 3 ? argv[3] : "f32";
    const char *DT = !strcmp(dt, "bf16") ? "BF16" : !strcmp(dt, "f16") ? "F16" : !strcmp(dt, "f32") ? "F32" : "?";
    uint64_t seed = argc > 4 ? strtoull(argv[4], NULL, 10) : 1;
    char err[256];
    if (pkr_write(argv[1], argv[2], DT, seed, err, sizeof err)) {
        fprintf(stderr, "pocket-randckpt: %s\n", err);
        return 1;
    }
    return 0;
}
#endif
