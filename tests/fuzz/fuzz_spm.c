/* fuzz_spm.c — libFuzzer entry for the SentencePiece loader, encoder, decoder and the
 * pocket-tts text preparation.
 *
 * The first input byte picks what the rest is:
 *   even  -> a tokenizer.model file: it must load or be refused with an error; when it
 *            loads, a few fixed strings are encoded and decoded with it and its own
 *            self-test samples are run;
 *   odd   -> UTF-8-ish text: encoded with the tiny model (nmt_nfkc charsmap, from
 *            $POCKETTTS_SHARED or ../shared) and with tests/data/spm_bytefallback.model
 *            (byte fallback, user-defined symbols); ids must be in range, the pieces
 *            variant must agree, decode must succeed; valid UTF-8 also goes through
 *            tp_split with a budget taken from the second byte.
 * Models are loaded once per process (harness state, not library state).
 */
#include "core/err.h"
#include "engine/pocket/spm.h"
#include "engine/pocket/textprep.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static spm_model *g_models[2];
static int g_loaded;

static void load_models(void)
{
    char path[1024], err[256];
    const char *shared = getenv("POCKETTTS_SHARED");
    snprintf(path, sizeof path, "%s/reference/pocket-tts/tiny_tokenizer.model", shared && *shared ? shared : "../shared");
    if (spm_load_file(&g_models[0], path, err, sizeof err)) g_models[0] = NULL;
    if (spm_load_file(&g_models[1], "tests/data/spm_bytefallback.model", err, sizeof err)) g_models[1] = NULL;
    g_loaded = 1;
}

static void check_encode(const spm_model *m, const char *text, size_t len)
{
    char err[256];
    int32_t *ids = NULL;
    size_t n = 0;
    if (spm_encode(m, text, len, &ids, &n, err, sizeof err)) return;
    int vs = spm_vocab_size(m);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vs) abort();
    spm_tokens tk;
    if (spm_encode_pieces(m, text, len, &tk, err, sizeof err) == 0) {
        if (tk.n != n) abort();
        for (size_t i = 0; i < n; i++)
            if (tk.ids[i] != ids[i] || !tk.pieces[i]) abort();
        spm_tokens_free(&tk);
    }
    char *dec = NULL;
    size_t dl = 0;
    if (spm_decode(m, ids, n, &dec, &dl, err, sizeof err) == 0) {
        if (strlen(dec) > dl) abort();
        free(dec);
    }
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const uint8_t mode = data[0];
    data++;
    size--;
    if (!(mode & 1)) {
        char err[256];
        spm_model *m = NULL;
        if (spm_load_mem(&m, data, size, err, sizeof err) != 0) {
            if (m) abort();
            return 0;
        }
        static const char *texts[] = {"Hello, world!", "  caf\xc3\xa9\t\xef\xbd\x81\xef\xac\x81 \xf0\x9f\x98\x80 ",
                                      "\xff\xfe bad utf8 \xc3", ""};
        for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) check_encode(m, texts[i], strlen(texts[i]));
        int ns = 0, nf = 0;
        if (spm_self_test(m, &ns, &nf, err, sizeof err) == 0 && (nf < 0 || nf > ns)) abort();
        int vs = spm_vocab_size(m);
        for (int id = 0; id < vs && id < 64; id++) {
            size_t pl;
            const char *p = spm_id_to_piece(m, id, &pl);
            if (!p) abort();
            int back = spm_piece_to_id(m, p, pl);
            if (back < 0 || back >= vs) abort();
        }
        spm_free(m);
        return 0;
    }
    if (!g_loaded) load_models();
    const char *text = (const char *)data;
    for (int k = 0; k < 2; k++)
        if (g_models[k]) check_encode(g_models[k], text, size);
    if (g_models[0] && size >= 1) {
        int maxt = 1 + data[0] % 64;
        tp_chunks ch;
        char err[256];
        if (tp_split(g_models[0], text + 1, size - 1, maxt, NULL, &ch, err, sizeof err) == 0) {
            for (size_t i = 0; i < ch.n; i++)
                if (!ch.v[i].text || ch.v[i].frames_after_eos < 3 || ch.v[i].max_gen_len < 25) abort();
            tp_chunks_free(&ch);
        }
    }
    return 0;
}
