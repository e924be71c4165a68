/* test_textprep.c — pocket-tts text preparation and chunking match upstream exactly.
 *
 * Ground truth:
 *   - $POCKETTTS_SHARED/reference/pocket-tts/text_goldens.json (upstream run);
 *   - tests/data/textprep_tricky.json: 128 inputs (Python case-mapping corner cases such
 *     as "ß", "ǅ", "ﬁ", Unicode whitespace, digits of other scripts, unknown characters
 *     that come back from decode as " \u2047 ", pad / remove_semicolons flags, random
 *     punctuation-heavy paragraphs with budgets 5..50) run ONLY on the dev machine
 *     through upstream pocket-tts 2.1.0's own prepare_text_prompt and
 *     split_into_best_sentences (source exec'd from the upstream file) with Debian 12's
 *     python3-sentencepiece 0.1.97 and the tiny tokenizer. Strings are hex UTF-8.
 *     CI does not need Python. TP_CORPUS=/path/to/other.json (same layout) checks a
 *     larger generated corpus locally, TP_CORPUS_MODEL=/path/x.model with another model.
 */
#include "ut.h"
#include "core/err.h"
#include "engine/pocket/spm.h"
#include "engine/pocket/textprep.h"

#include <cJSON.h>

static spm_model *tp_tiny(ut_ctx *t)
{
    char path[1024], err[256] = "";
    spm_model *m = NULL;
    if (spm_load_file(&m, ut_path(path, sizeof path, "reference/pocket-tts/tiny_tokenizer.model"), err, sizeof err))
        ut_fail(t, __FILE__, __LINE__, "load %s: %s", path, err);
    return m;
}

static void prep_is(ut_ctx *t, const char *in, const tp_opts *o, const char *exp, int exp_guess)
{
    char *out = NULL, err[128] = "";
    size_t n = 0;
    int g = -1;
    int rc = tp_prepare(in, strlen(in), o, &out, &n, &g, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "prepare [%s]: %s", in, err);
    if (strcmp(exp, out)) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", out);
        free(out);
        ut_fail(t, __FILE__, __LINE__, "prepare [%s]: expected [%s], got [%s]", in, exp, msg);
    }
    UT_EQ_INT(t, strlen(exp), n);
    free(out);
    if (exp_guess) UT_EQ_INT(t, exp_guess, g);
}

static void t_prepare_goldens(ut_ctx *t)
{
    char path[1024];
    spm_model *m = tp_tiny(t);
    cJSON *j = ut_json(t, ut_path(path, sizeof path, "reference/pocket-tts/text_goldens.json"));
    const cJSON *c;
    int count = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "cases"))
    {
        const char *in = cJSON_GetObjectItem(c, "input")->valuestring;
        prep_is(t, in, NULL, cJSON_GetObjectItem(c, "prepared")->valuestring,
                cJSON_GetObjectItem(c, "frames_after_eos_guess")->valueint);
        /* effective default (guess + 2) and the max-length estimate from the prepared ids */
        const char *prep = cJSON_GetObjectItem(c, "prepared")->valuestring;
        char *p2 = NULL;
        int g = 0;
        UT_EQ_INT(t, 0, tp_prepare(in, strlen(in), NULL, &p2, NULL, &g, NULL, 0));
        free(p2);
        UT_EQ_INT(t, cJSON_GetObjectItem(c, "frames_after_eos_effective_default")->valueint, g + 2);
        int32_t *ids;
        size_t n;
        UT_EQ_INT(t, 0, spm_encode(m, prep, strlen(prep), &ids, &n, NULL, 0));
        free(ids);
        UT_EQ_INT(t, cJSON_GetArraySize(cJSON_GetObjectItem(c, "ids")), n);
        UT_EQ_INT(t, cJSON_GetObjectItem(c, "max_gen_len_estimate")->valueint, tp_max_gen_len(n, 12.5));
        /* short single-sentence inputs come out of tp_split as that one chunk */
        tp_chunks ch;
        char err[256] = "";
        UT_EQ_INT(t, 0, tp_split(m, in, strlen(in), TP_MAX_TOKENS_PER_CHUNK, NULL, &ch, err, sizeof err));
        UT_CHECK(t, ch.n >= 1);
        if (ch.n == 1 && !strcmp(ch.v[0].text, prep)) {
            UT_EQ_INT(t, g + 2, ch.v[0].frames_after_eos);
            UT_EQ_INT(t, tp_max_gen_len(n, 12.5), ch.v[0].max_gen_len);
        }
        tp_chunks_free(&ch);
        count++;
    }
    UT_EQ_INT(t, 7, count);
    /* README scenario B: 11 tokens -> 71 frames */
    UT_EQ_INT(t, 71, tp_max_gen_len(11, 12.5));
    UT_EQ_INT(t, 134, tp_max_gen_len(26, 12.5));
    UT_EQ_INT(t, 25, tp_max_gen_len(0, 12.5));
    cJSON_Delete(j);
    spm_free(m);
}

static void t_boundary_ids(ut_ctx *t)
{
    char path[1024];
    spm_model *m = tp_tiny(t);
    cJSON *j = ut_json(t, ut_path(path, sizeof path, "reference/pocket-tts/text_goldens.json"));
    int32_t *ids;
    size_t n;
    const cJSON *e = cJSON_GetObjectItem(j, "end_of_sentence_ids");
    UT_EQ_INT(t, 0, tp_end_of_sentence_ids(m, &ids, &n, NULL, 0));
    UT_EQ_INT(t, cJSON_GetArraySize(e), n);
    for (size_t i = 0; i < n; i++) UT_EQ_INT(t, cJSON_GetArrayItem(e, (int)i)->valueint, ids[i]);
    free(ids);
    e = cJSON_GetObjectItem(j, "fallback_split_ids");
    UT_EQ_INT(t, 0, tp_fallback_split_ids(m, &ids, &n, NULL, 0));
    UT_EQ_INT(t, cJSON_GetArraySize(e), n);
    for (size_t i = 0; i < n; i++) UT_EQ_INT(t, cJSON_GetArrayItem(e, (int)i)->valueint, ids[i]);
    free(ids);
    cJSON_Delete(j);
    spm_free(m);
}

static void t_chunk_goldens(ut_ctx *t)
{
    char path[1024];
    spm_model *m = tp_tiny(t);
    cJSON *j = ut_json(t, ut_path(path, sizeof path, "reference/pocket-tts/text_goldens.json"));
    const cJSON *c;
    int count = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "chunking"))
    {
        const char *in = cJSON_GetObjectItem(c, "input")->valuestring;
        int maxt = cJSON_GetObjectItem(c, "max_tokens")->valueint;
        const cJSON *exp = cJSON_GetObjectItem(c, "chunks");
        const cJSON *cnt = cJSON_GetObjectItem(c, "chunk_token_counts");
        tp_chunks ch;
        char err[256] = "";
        UT_EQ_INT(t, 0, tp_split(m, in, strlen(in), maxt, NULL, &ch, err, sizeof err));
        UT_EQ_INT(t, cJSON_GetArraySize(exp), ch.n);
        for (size_t i = 0; i < ch.n; i++) {
            UT_EQ_STR(t, cJSON_GetArrayItem(exp, (int)i)->valuestring, ch.v[i].text);
            UT_EQ_INT(t, cJSON_GetArrayItem(cnt, (int)i)->valueint, ch.v[i].seg_tokens);
            int32_t *ids;
            size_t n;
            UT_EQ_INT(t, 0, spm_encode(m, ch.v[i].text, ch.v[i].len, &ids, &n, NULL, 0));
            UT_EQ_INT(t, n, ch.v[i].n_ids);
            for (size_t k = 0; k < n; k++) UT_EQ_INT(t, ids[k], ch.v[i].ids[k]);
            free(ids);
        }
        tp_chunks_free(&ch);
        count++;
    }
    UT_EQ_INT(t, 3, count);
    cJSON_Delete(j);
    spm_free(m);
}

static int run_tp_corpus(ut_ctx *t, const char *path, const char *model_path)
{
    spm_model *m = NULL;
    char err0[256] = "";
    if (!model_path) m = tp_tiny(t);
    else if (spm_load_file(&m, model_path, err0, sizeof err0))
        ut_fail(t, __FILE__, __LINE__, "load %s: %s", model_path, err0);
    cJSON *j = ut_json(t, path);
    const cJSON *c;
    int count = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "cases"))
    {
        const char *hx = cJSON_GetObjectItem(c, "input_hex")->valuestring;
        char *in = malloc(strlen(hx) / 2 + 1);
        size_t len = ut_unhex(hx, in);
        tp_opts o = {cJSON_IsTrue(cJSON_GetObjectItem(c, "pad")), cJSON_IsTrue(cJSON_GetObjectItem(c, "remove_semicolons"))};
        int maxt = cJSON_GetObjectItem(c, "max_tokens")->valueint;
        char *out = NULL, err[256] = "";
        size_t n;
        int g = 0;
        int rc = tp_prepare(in, len, &o, &out, &n, &g, err, sizeof err);
        if (cJSON_GetObjectItem(c, "error")) {
            UT_EQ_INT(t, ERR_INVAL, rc);
            UT_EQ_STR(t, "Text prompt cannot be empty", err);
            free(in);
            count++;
            continue;
        }
        if (rc) ut_fail(t, __FILE__, __LINE__, "case %d: prepare failed: %s", count, err);
        const char *ph = cJSON_GetObjectItem(c, "prepared_hex")->valuestring;
        char *exp = malloc(strlen(ph) / 2 + 1);
        ut_unhex(ph, exp);
        if (strcmp(exp, out)) ut_fail(t, __FILE__, __LINE__, "case %d [%s]: prepared expected [%s], got [%s]", count, in, exp, out);
        UT_EQ_INT(t, cJSON_GetObjectItem(c, "guess")->valueint, g);
        free(exp);
        free(out);
        tp_chunks ch;
        UT_EQ_INT(t, 0, tp_split(m, in, len, maxt, &o, &ch, err, sizeof err));
        const cJSON *ec = cJSON_GetObjectItem(c, "chunks_hex");
        if ((size_t)cJSON_GetArraySize(ec) != ch.n)
            ut_fail(t, __FILE__, __LINE__, "case %d [%s] max %d: expected %d chunks, got %zu", count, in, maxt,
                    cJSON_GetArraySize(ec), ch.n);
        for (size_t i = 0; i < ch.n; i++) {
            const char *h = cJSON_GetArrayItem(ec, (int)i)->valuestring;
            char *e = malloc(strlen(h) / 2 + 1);
            ut_unhex(h, e);
            if (strcmp(e, ch.v[i].text))
                ut_fail(t, __FILE__, __LINE__, "case %d chunk %zu: expected [%s], got [%s]", count, i, e, ch.v[i].text);
            free(e);
        }
        tp_chunks_free(&ch);
        free(in);
        count++;
    }
    cJSON_Delete(j);
    spm_free(m);
    return count;
}

static void t_tricky(ut_ctx *t)
{
    UT_EQ_INT(t, 128, run_tp_corpus(t, "tests/data/textprep_tricky.json", NULL));
    const char *extra = getenv("TP_CORPUS"), *model = getenv("TP_CORPUS_MODEL");
    if (extra && *extra) UT_CHECK(t, run_tp_corpus(t, extra, model && *model ? model : NULL) > 0);
}

/* Python str semantics, spelled out. */
static void t_python_semantics(ut_ctx *t)
{
    prep_is(t, "\xc3\x9f", NULL, "SS.", 3);                       /* "ß".upper() == "SS" */
    prep_is(t, "\xef\xac\x81ne day", NULL, "FIne day.", 3);        /* "ﬁ" -> "FI" */
    prep_is(t, "\xc7\x85ungla", NULL, "\xc7\x84ungla.", 3);        /* titlecase ǅ is not isupper -> Ǆ */
    prep_is(t, "\xc3\xa9" "clair", NULL, "\xc3\x89" "clair.", 3);
    prep_is(t, "1st place", NULL, "1st place.", 3);
    prep_is(t, "x\xc2\xb2", NULL, "X\xc2\xb2.", 3);                /* "²".isalnum() (numeric) */
    prep_is(t, "a \xe2\x80\x94", NULL, "A \xe2\x80\x94", 3);       /* em dash: no '.' */
    prep_is(t, "\xe3\x80\x80hi\xe3\x80\x80", NULL, "Hi.", 3);      /* U+3000 is stripped */
    prep_is(t, "a  b   c    d", NULL, "A b  c  d.", 3);            /* one pass of "  " -> " " */
    prep_is(t, "x\r\n\r\ny", NULL, "X  y.", 3);
    prep_is(t, "one two three four five", NULL, "One two three four five.", 1);
    tp_opts semi = {0, 1}, pad = {1, 0};
    prep_is(t, "a; b", &semi, "A, b.", 3);
    prep_is(t, "hi there", &pad, "        Hi there.", 3);
    prep_is(t, "one two three four five", &pad, "One two three four five.", 1);
    UT_CHECK(t, tp_py_isspace(0x85) && tp_py_isspace(0x1F) && !tp_py_isspace(0x200B));
    UT_CHECK(t, tp_py_isalnum(0xBD) && tp_py_isalnum(0x663) && !tp_py_isalnum(0x2014) && !tp_py_isalnum('_'));
    uint32_t up[3];
    UT_EQ_INT(t, 3, tp_py_upper_first(0x390, up)); /* ΐ -> Ϊ́ (3 code points) */
    UT_EQ_INT(t, 1, tp_py_upper_first('A', up));
    UT_EQ_INT(t, 'A', up[0]);
}

/* All 1,112,064 scalar values at once: FNV-1a 64 of the lines
 * "%X isalnum isspace n u1 .. un\n" (upper only when not isupper) equals the hash of the
 * same lines printed by Python 3.11.2 (unicodedata 14.0.0) on the dev machine:
 *   ch.isalnum(), ch.isspace(), u = ch if ch.isupper() else ch.upper() */
static void t_unicode_tables(ut_ctx *t)
{
    uint64_t h = 0xcbf29ce484222325ull;
    char line[96];
    for (uint32_t c = 0; c < 0x110000; c++) {
        if (c >= 0xD800 && c < 0xE000) continue;
        uint32_t u[3];
        int n = tp_py_upper_first(c, u);
        int l = snprintf(line, sizeof line, "%X %d %d %d", (unsigned)c, tp_py_isalnum(c), tp_py_isspace(c), n);
        for (int i = 0; i < n; i++) l += snprintf(line + l, sizeof line - (size_t)l, " %X", (unsigned)u[i]);
        line[l++] = '\n';
        for (int i = 0; i < l; i++) {
            h ^= (unsigned char)line[i];
            h *= 0x100000001b3ull;
        }
    }
    UT_EQ_INT(t, (long long)0x67bbc103cbcbc8deull, (long long)h);
}

static void t_errors(ut_ctx *t)
{
    char *out = (char *)1, err[128] = "";
    size_t n;
    int g;
    UT_EQ_INT(t, ERR_INVAL, tp_prepare("", 0, NULL, &out, &n, &g, err, sizeof err));
    UT_CHECK(t, out == NULL);
    UT_EQ_STR(t, "Text prompt cannot be empty", err);
    UT_EQ_INT(t, ERR_INVAL, tp_prepare(" \t\n\xe3\x80\x80", 6, NULL, &out, &n, &g, err, sizeof err));
    UT_EQ_INT(t, ERR_INVAL, tp_prepare("ab\xff", 3, NULL, &out, &n, &g, err, sizeof err));
    UT_EQ_INT(t, ERR_INVAL, tp_prepare("\xed\xa0\x80", 3, NULL, &out, &n, &g, err, sizeof err)); /* surrogate */
    char *big = malloc(TP_MAX_TEXT_BYTES + 1);
    memset(big, 'a', TP_MAX_TEXT_BYTES + 1);
    UT_EQ_INT(t, ERR_TOOBIG, tp_prepare(big, TP_MAX_TEXT_BYTES + 1, NULL, &out, &n, &g, err, sizeof err));
    free(big);
    spm_model *m = tp_tiny(t);
    tp_chunks ch;
    UT_EQ_INT(t, ERR_INVAL, tp_split(m, "hello", 5, 0, NULL, &ch, err, sizeof err));
    UT_EQ_INT(t, ERR_INVAL, tp_split(m, "   ", 3, 50, NULL, &ch, err, sizeof err));
    UT_CHECK(t, ch.n == 0 && ch.v == NULL);
    /* text the normaliser deletes entirely: no chunk, like upstream */
    UT_EQ_INT(t, 0, tp_split(m, "\x01", 1, 50, NULL, &ch, err, sizeof err));
    UT_EQ_INT(t, 0, ch.n);
    tp_chunks_free(&ch);
    tp_chunks_free(NULL);
    spm_free(m);
}

static const ut_case cases[] = {
    {"prepare_goldens", t_prepare_goldens}, {"boundary_ids", t_boundary_ids},
    {"chunk_goldens", t_chunk_goldens},     {"tricky", t_tricky},
    {"python_semantics", t_python_semantics}, {"unicode_tables", t_unicode_tables},
    {"errors", t_errors},
};
UT_SUITE(textprep, cases)
