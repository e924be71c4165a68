/* test_spm.c — the SentencePiece tokenizer gives the Python library's ids.
 *
 * Ground truth:
 *   - $POCKETTTS_SHARED/reference/pocket-tts/text_goldens.json (upstream pocket-tts run);
 *   - tests/data/spm_tricky.json: 96 tricky strings (whitespace runs, NFKC-changing
 *     characters, emoji, control bytes, mixed scripts, empty string, ...) tokenised with
 *     the tiny model by Debian 12's python3-sentencepiece 0.1.97, ONLY on the dev machine:
 *       sp = SentencePieceProcessor(model_file="tiny_tokenizer.model")
 *       for each text: ids = sp.encode(t, out_type=int); pieces = sp.encode(t, out_type=str);
 *       decoded = sp.decode(ids)    (texts/decoded stored hex-encoded UTF-8 too, for NULs)
 *   - tests/data/spm_bytefallback.{model,json}: a 400-piece unigram model trained the same
 *     way on the Debian licence texts with byte_fallback=True, user_defined_symbols
 *     ["<br>", "Caf\u00e9", "foo bar", "##"], control_symbols ["<ctl>"] and the identity
 *     normaliser, with 58 strings tokenised by the same library (covers byte pieces,
 *     user-defined symbols that bypass the normaliser, no charsmap).
 *   - tests/data/spm_denorm.{model,json}: 300 pieces, normalization_rule_tsv "x -> y",
 *     denormalization_rule_tsv "a -> A, bc -> B", user-defined symbol "xyz" (which the
 *     x -> y rule must not touch); 43 strings, same library.
 *   - tests/data/spm_selftest.model: 300 pieces, identity normaliser, user-defined "GNU",
 *     trained with self_test_sample_size=12, so the file carries the trainer's own
 *     input -> expected pieces samples.
 *     CI does not need Python. Set SPM_CORPUS=/path/to/other.json (same layout) and
 *     optionally SPM_CORPUS_MODEL=/path/to/x.model to check a larger generated corpus or
 *     another model locally.
 *   - hostile model files: truncations and byte flips of the real model never crash.
 */
#include "ut.h"
#include "core/err.h"
#include "engine/pocket/spm.h"

#include <cJSON.h>
#include <stdint.h>

static spm_model *load_tiny(ut_ctx *t)
{
    char path[1024], err[256] = "";
    spm_model *m = NULL;
    int rc = spm_load_file(&m, ut_path(path, sizeof path, "reference/pocket-tts/tiny_tokenizer.model"), err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "load %s: %s", path, err);
    return m;
}

/* Compares encode(text) with a JSON int array; prints both on mismatch. */
static void expect_ids(ut_ctx *t, const spm_model *m, const char *text, size_t len, const cJSON *exp,
                       const char *what)
{
    int32_t *ids = NULL;
    size_t n = 0;
    char err[256] = "";
    int rc = spm_encode(m, text, len, &ids, &n, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "%s: encode failed: %s", what, err);
    int ne = cJSON_GetArraySize(exp);
    int ok = (size_t)ne == n;
    for (int i = 0; ok && i < ne; i++) ok = cJSON_GetArrayItem(exp, i)->valueint == ids[i];
    if (!ok) {
        char e[4096] = "", a[4096] = "";
        size_t el = 0, al = 0;
        for (int i = 0; i < ne && el < sizeof e - 16; i++)
            el += (size_t)snprintf(e + el, sizeof e - el, "%d ", cJSON_GetArrayItem(exp, i)->valueint);
        for (size_t i = 0; i < n && al < sizeof a - 16; i++)
            al += (size_t)snprintf(a + al, sizeof a - al, "%d ", (int)ids[i]);
        free(ids);
        ut_fail(t, __FILE__, __LINE__, "%s [%.*s]: expected ids [%s], got [%s]", what, (int)len, text, e, a);
    }
    free(ids);
}

static void t_basics(ut_ctx *t)
{
    spm_model *m = load_tiny(t);
    UT_EQ_INT(t, 512, spm_vocab_size(m));
    UT_EQ_INT(t, 0, spm_unk_id(m));
    UT_EQ_STR(t, "<unk>", spm_id_to_piece(m, 0, NULL));
    UT_EQ_STR(t, "<s>", spm_id_to_piece(m, 1, NULL));
    UT_EQ_STR(t, "</s>", spm_id_to_piece(m, 2, NULL));
    UT_EQ_STR(t, "\xe2\x96\x81", spm_id_to_piece(m, 3, NULL));
    UT_CHECK(t, spm_id_to_piece(m, 512, NULL) == NULL);
    UT_CHECK(t, spm_id_to_piece(m, -1, NULL) == NULL);
    UT_EQ_INT(t, SPM_UNKNOWN, spm_piece_type(m, 0));
    UT_EQ_INT(t, SPM_CONTROL, spm_piece_type(m, 1));
    UT_EQ_INT(t, SPM_NORMAL, spm_piece_type(m, 3));
    UT_EQ_INT(t, 1, spm_piece_to_id(m, "<s>", 3));
    UT_EQ_INT(t, 157, spm_piece_to_id(m, "\xe2\x96\x81this", 7));
    UT_EQ_INT(t, 0, spm_piece_to_id(m, "notapiece", 9));
    /* empty text: no ids, no allocation needed */
    int32_t *ids = (int32_t *)1;
    size_t n = 99;
    UT_EQ_INT(t, 0, spm_encode(m, "", 0, &ids, &n, NULL, 0));
    UT_EQ_INT(t, 0, n);
    free(ids);
    /* normaliser alone: dummy prefix, whitespace collapse, NFKC */
    char *norm = NULL;
    size_t nl = 0;
    UT_EQ_INT(t, 0, spm_normalize(m, "  a  \xef\xbd\x82\t c ", 12, &norm, &nl, NULL, 0));
    UT_EQ_STR(t, "\xe2\x96\x81" "a\xe2\x96\x81" "b\xe2\x96\x81" "c", norm);
    UT_EQ_INT(t, strlen(norm), nl);
    free(norm);
    spm_free(m);
    spm_free(NULL);
}

/* Every id list of text_goldens.json (upstream pocket-tts with the tiny tokenizer). */
static void t_goldens(ut_ctx *t)
{
    char path[1024];
    spm_model *m = load_tiny(t);
    cJSON *j = ut_json(t, ut_path(path, sizeof path, "reference/pocket-tts/text_goldens.json"));
    expect_ids(t, m, ".!...?", 6, cJSON_GetObjectItem(j, "encode_raw_of_'.!...?'"), "eos string");
    expect_ids(t, m, ",;:", 3, cJSON_GetObjectItem(j, "encode_raw_of_',;:'"), "fallback string");
    const cJSON *c;
    int count = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "cases"))
    {
        const char *in = cJSON_GetObjectItem(c, "input")->valuestring;
        const char *prep = cJSON_GetObjectItem(c, "prepared")->valuestring;
        expect_ids(t, m, in, strlen(in), cJSON_GetObjectItem(c, "ids_of_raw_input"), "raw input");
        expect_ids(t, m, prep, strlen(prep), cJSON_GetObjectItem(c, "ids"), "prepared");
        /* pieces too */
        spm_tokens tk;
        char err[256] = "";
        UT_EQ_INT(t, 0, spm_encode_pieces(m, prep, strlen(prep), &tk, err, sizeof err));
        const cJSON *pcs = cJSON_GetObjectItem(c, "pieces");
        UT_EQ_INT(t, cJSON_GetArraySize(pcs), tk.n);
        for (size_t i = 0; i < tk.n; i++) UT_EQ_STR(t, cJSON_GetArrayItem(pcs, (int)i)->valuestring, tk.pieces[i]);
        spm_tokens_free(&tk);
        count++;
    }
    UT_EQ_INT(t, 7, count);
    cJSON_Delete(j);
    spm_free(m);
}

static void run_corpus(ut_ctx *t, const char *path, const char *model_path)
{
    spm_model *m = NULL;
    char err0[256] = "";
    if (!model_path) m = load_tiny(t);
    else if (spm_load_file(&m, model_path, err0, sizeof err0))
        ut_fail(t, __FILE__, __LINE__, "load %s: %s", model_path, err0);
    cJSON *j = ut_json(t, path);
    const cJSON *c;
    int count = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "cases"))
    {
        const char *hx = cJSON_GetObjectItem(c, "text_hex")->valuestring;
        char *text = malloc(strlen(hx) / 2 + 1);
        size_t len = ut_unhex(hx, text);
        char what[64];
        snprintf(what, sizeof what, "case %d", count);
        expect_ids(t, m, text, len, cJSON_GetObjectItem(c, "ids"), what);
        spm_tokens tk;
        char err[256] = "";
        UT_EQ_INT(t, 0, spm_encode_pieces(m, text, len, &tk, err, sizeof err));
        const cJSON *pcs = cJSON_GetObjectItem(c, "pieces");
        UT_EQ_INT(t, cJSON_GetArraySize(pcs), tk.n);
        for (size_t i = 0; i < tk.n; i++) UT_EQ_STR(t, cJSON_GetArrayItem(pcs, (int)i)->valuestring, tk.pieces[i]);
        const char *dh = cJSON_GetObjectItem(c, "decoded_hex")->valuestring;
        char *dexp = malloc(strlen(dh) / 2 + 1);
        dexp[ut_unhex(dh, dexp)] = 0;
        char *dec = NULL;
        size_t dl = 0;
        UT_EQ_INT(t, 0, spm_decode(m, tk.ids, tk.n, &dec, &dl, err, sizeof err));
        if (strcmp(dexp, dec)) ut_fail(t, __FILE__, __LINE__, "%s decode: expected \"%s\", got \"%s\"", what, dexp, dec);
        free(dec);
        free(dexp);
        spm_tokens_free(&tk);
        free(text);
        count++;
    }
    UT_CHECK(t, count > 0);
    cJSON_Delete(j);
    spm_free(m);
}

static void t_tricky(ut_ctx *t)
{
    run_corpus(t, "tests/data/spm_tricky.json", NULL);
    run_corpus(t, "tests/data/spm_bytefallback.json", "tests/data/spm_bytefallback.model");
    run_corpus(t, "tests/data/spm_denorm.json", "tests/data/spm_denorm.model");
    const char *extra = getenv("SPM_CORPUS"), *model = getenv("SPM_CORPUS_MODEL");
    if (extra && *extra) run_corpus(t, extra, model && *model ? model : NULL);
}

static void t_decode(ut_ctx *t)
{
    spm_model *m = load_tiny(t);
    int32_t ids[] = {3, 138, 227, 16, 1, 2, 102, 29, 38, 12, 0, 6};
    char *s = NULL;
    size_t n;
    UT_EQ_INT(t, 0, spm_decode(m, ids, 12, &s, &n, NULL, 0));
    UT_EQ_STR(t, "Hello world \xe2\x81\x87 .", s);
    free(s);
    UT_EQ_INT(t, 0, spm_decode(m, ids, 0, &s, &n, NULL, 0));
    UT_EQ_STR(t, "", s);
    free(s);
    int32_t bad[] = {3, 512};
    char err[128] = "";
    UT_EQ_INT(t, ERR_INVAL, spm_decode(m, bad, 2, &s, &n, err, sizeof err));
    UT_CHECK(t, s == NULL && strstr(err, "512"));
    spm_free(m);
}

static void t_caps(ut_ctx *t)
{
    spm_model *m = load_tiny(t);
    size_t big = SPM_MAX_TEXT_BYTES + 1;
    char *s = malloc(big);
    memset(s, 'a', big);
    int32_t *ids = NULL;
    size_t n = 0;
    char err[128] = "";
    UT_EQ_INT(t, ERR_TOOBIG, spm_encode(m, s, big, &ids, &n, err, sizeof err));
    UT_CHECK(t, ids == NULL);
    /* a long (200 kB) text still works and takes linear time */
    UT_EQ_INT(t, 0, spm_encode(m, s, 200000, &ids, &n, err, sizeof err));
    UT_CHECK(t, n > 0);
    free(ids);
    free(s);
    spm_free(m);
}

/* Hostile model files: each truncation and single-byte corruption of the real file
 * either loads or fails cleanly (ASan/UBSan make crashes and overreads visible). */
static void t_hostile(ut_ctx *t)
{
    char path[1024], err[256];
    size_t n;
    char *blob = ut_slurp(ut_path(path, sizeof path, "reference/pocket-tts/tiny_tokenizer.model"), &n);
    UT_CHECK(t, blob != NULL);
    spm_model *m = NULL;
    UT_EQ_INT(t, 0, spm_load_mem(&m, blob, n, err, sizeof err));
    spm_free(m);
    UT_CHECK(t, spm_load_mem(&m, blob, 0, err, sizeof err) < 0 && m == NULL); /* no pieces */
    UT_CHECK(t, spm_load_mem(&m, "\xff\xff", 2, err, sizeof err) == ERR_FORMAT);
    UT_CHECK(t, spm_load_mem(&m, "\x0a\x05\x0a\x03", 4, err, sizeof err) == ERR_FORMAT);
    int loaded = 0, failed = 0;
    for (size_t cut = 0; cut < n; cut += 1 + cut / 7) {
        if (spm_load_mem(&m, blob, cut, err, sizeof err) == 0) {
            int32_t *ids;
            size_t k;
            if (spm_encode(m, "Hello, w\xc3\xb6rld \xf0\x9f\x98\x80!", 19, &ids, &k, err, sizeof err) == 0) free(ids);
            spm_free(m);
            loaded++;
        } else {
            UT_CHECK(t, m == NULL && err[0]);
            failed++;
        }
    }
    uint32_t seed = 12345;
    char *cp = malloc(n);
    for (int it = 0; it < 300; it++) {
        memcpy(cp, blob, n);
        for (int k = 0; k < 4; k++) {
            seed = seed * 1103515245u + 12345u;
            size_t pos = (seed >> 8) % n;
            seed = seed * 1103515245u + 12345u;
            cp[pos] = (char)(seed >> 16);
        }
        if (spm_load_mem(&m, cp, n, err, sizeof err) == 0) {
            int32_t *ids;
            size_t k;
            if (spm_encode(m, "Caf\xc3\xa9 \xef\xbd\x81\xef\xac\x81 1/2 \xe2\x80\x94 ok", 22, &ids, &k, err, sizeof err) == 0) {
                char *d;
                size_t dl;
                if (spm_decode(m, ids, k, &d, &dl, err, sizeof err) == 0) free(d);
                free(ids);
            }
            spm_free(m);
        }
    }
    free(cp);
    UT_CHECK(t, failed > 0);
    free(blob);
}

/* The model file's own self_test_data (12 samples written by the trainer) pass; an
 * appended wrong sample is reported. Protobuf merges repeated fields, so appending a
 * second self_test_data message adds to the samples. */
static void t_self_test(ut_ctx *t)
{
    char err[512] = "";
    spm_model *m = load_tiny(t);
    int n = -1, f = -1;
    UT_EQ_INT(t, 0, spm_self_test(m, &n, &f, err, sizeof err));
    UT_EQ_INT(t, 0, n);
    spm_free(m);
    size_t len;
    char *blob = ut_slurp("tests/data/spm_selftest.model", &len);
    UT_CHECK(t, blob != NULL);
    UT_EQ_INT(t, 0, spm_load_mem(&m, blob, len, err, sizeof err));
    UT_EQ_INT(t, 0, spm_self_test(m, &n, &f, err, sizeof err));
    UT_EQ_INT(t, 12, n);
    if (f) ut_fail(t, __FILE__, __LINE__, "self test: %d failed: %s", f, err);
    spm_free(m);
    static const char extra[] = "\x22\x0e\x0a\x0c\x0a\x03" "abc" "\x12\x05" "x y z";
    char *b2 = malloc(len + sizeof extra - 1);
    memcpy(b2, blob, len);
    memcpy(b2 + len, extra, sizeof extra - 1);
    UT_EQ_INT(t, 0, spm_load_mem(&m, b2, len + sizeof extra - 1, err, sizeof err));
    UT_EQ_INT(t, 0, spm_self_test(m, &n, &f, err, sizeof err));
    UT_EQ_INT(t, 13, n);
    UT_EQ_INT(t, 1, f);
    UT_CHECK(t, strstr(err, "x y z") != NULL);
    spm_free(m);
    free(b2);
    free(blob);
}

static const ut_case cases[] = {
    {"basics", t_basics}, {"goldens", t_goldens}, {"tricky", t_tricky},
    {"decode", t_decode}, {"caps", t_caps},       {"hostile", t_hostile},
    {"self_test", t_self_test},
};
UT_SUITE(spm, cases)
