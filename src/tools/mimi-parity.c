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
 * Also reports our soxr resampler against golden_resample.safetensors (upstream's
 * scipy resample_poly 160/147): different filters, so only a loose bound is enforced.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "engine/pocket/mimi.h"
#include "engine/pocket/mimi_parity.h"
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

static void resample_rows(pkp_report *rep, const char *dir)
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
            pkp_note(rep, "resample soxr vs scipy, %zu edge samples excluded: abs %.3e rel %.3e (info)",
                     edge, e.max_abs, e.rel);
        }
    }
    free(in);
    free(ref);
    free(out);
    st_close(g);
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
    resample_rows(&rep, dir);
    int rc = pkp_summary(&rep);
    st_close(w);
    return bad ? 2 : rc;
}
