/* test_kokoro_g2p.c — misaki-style English G2P (engine/kokoro/g2p.h) against the golden
 * sentence of reference/kokoro/g2p-golden.json and hand-checked cases from misaki's rules.
 * The US lexicons load once (about a second under ASan) and are shared by the cases. */
#include "ut.h"

#include "core/err.h"
#include "engine/kokoro/g2p.h"

#include <cJSON.h>

static kg2p *us;

static kg2p *lex(ut_ctx *t)
{
    if (us) return us;
    char gp[1024], sp[1024], err[256] = "";
    ut_path(gp, sizeof gp, "reference/kokoro/lexicon/us_gold.json");
    ut_path(sp, sizeof sp, "reference/kokoro/lexicon/us_silver.json");
    kg2p_options o = {.gold_path = gp, .silver_path = sp, .fallback = kg2p_espeak_fallback};
    if (kg2p_espeak_init(0, NULL, err, sizeof err)) ut_fail(t, __FILE__, __LINE__, "espeak: %s", err);
    if (kg2p_open(&us, &o, err, sizeof err)) ut_fail(t, __FILE__, __LINE__, "open: %s", err);
    return us;
}

/* Whole text -> joined phonemes. */
static void ps_of(ut_ctx *t, const char *text, char *out, size_t cap)
{
    kg2p_doc d;
    char err[256] = "";
    if (kg2p_run(lex(t), text, &d, err, sizeof err)) ut_fail(t, __FILE__, __LINE__, "run: %s", err);
    int rc = kg2p_join(&d, 0, d.n, out, cap, err, sizeof err);
    kg2p_doc_free(&d);
    if (rc) ut_fail(t, __FILE__, __LINE__, "join: %s", err);
}

static void t_golden(ut_ctx *t)
{
    char p[1024];
    cJSON *j = ut_json(t, ut_path(p, sizeof p, "reference/kokoro/g2p-golden.json"));
    const char *sent = cJSON_GetObjectItem(j, "sentence")->valuestring;
    char want[1024];
    snprintf(want, sizeof want, "%s", cJSON_GetObjectItem(j, "misaki_phonemes")->valuestring);
    char ps[4096];
    ps_of(t, sent, ps, sizeof ps);
    kg2p_vocab v;
    char err[256];
    int rc = kg2p_vocab_load(&v, ut_path(p, sizeof p, "reference/kokoro/config-tiny.json"), err, sizeof err);
    const cJSON *ids = cJSON_GetObjectItem(j, "misaki_input_ids_no_pad");
    int64_t got[600];
    size_t n = 0;
    if (!rc) rc = kg2p_ids(&v, ps, got, 600, &n, err, sizeof err);
    int nw = cJSON_GetArraySize(ids), same = (int)n == nw;
    for (int i = 0; same && i < nw; i++) same = got[i] == cJSON_GetArrayItem(ids, i)->valueint;
    cJSON_Delete(j);
    UT_EQ_INT(t, 0, rc);
    UT_EQ_STR(t, want, ps);
    UT_EQ_INT(t, nw, (long long)n);
    UT_CHECK(t, same);
}

typedef struct {
    const char *in, *want;
} pair;

static void check_pairs(ut_ctx *t, const pair *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char ps[4096];
        ps_of(t, c[i].in, ps, sizeof ps);
        if (strcmp(ps, c[i].want))
            ut_fail(t, __FILE__, __LINE__, "\"%s\": expected \"%s\", got \"%s\"", c[i].in, c[i].want, ps);
    }
}

/* Expected strings worked out by hand from misaki's rules and the us_gold/us_silver entries. */
static void t_lexicon(ut_ctx *t)
{
    static const pair c[] = {
        {"hello", "həlˈO"},
        {"Hello", "həlˈO"},          /* capitalised: lower-case entry, stress 0.5 keeps it */
        {"the apple", "ði ˈæpᵊl"},   /* the before a vowel */
        {"the cat", "ðə kˈæt"},
        {"I am", "ˌI æm"},           /* I: ˌI; am at the end: gold */
        {"worlds", "wˈɜɹldz"},       /* -s after a voiced consonant */
        {"hello!", "həlˈO!"},
        {"Hello, world.", "həlˈO, wˈɜɹld."},
        /* misaki's Markdown links: phonemes override, the URL of a plain link is not read */
        {"Say [Kokoro](/kˈOkəɹO/), see [this page](https://x.y/z).", "sˈA kˈOkəɹO, sˈi ðɪs pˈAʤ."},
        {"[hello](-2) world", "həlO wˈɜɹld"}, /* stress -2 strips the marks */
    };
    check_pairs(t, c, sizeof c / sizeof *c);
}

static void t_numbers(ut_ctx *t)
{
    static const pair c[] = {
        {"42", "fˈɔɹTi tˈu"},
        {"1984", "nˌIntˈin ˈATi fˈɔɹ"},
        {"3rd", "θˈɜɹd"},
        {"$5", "fˈIv dˈɑləɹz"},
        {"50%", "fˈɪfti pəɹsˈɛnt"},
    };
    check_pairs(t, c, sizeof c / sizeof *c);
}

static void t_unknown(ut_ctx *t)
{
    char ps[1024];
    /* out of vocabulary: the espeak fallback with misaki's mapping (golden: Kokoro) */
    ps_of(t, "Kokoro", ps, sizeof ps);
    UT_EQ_STR(t, "kəkˈɔɹO", ps);
    /* mapping alone */
    char m[256];
    UT_EQ_INT(t, 0, kg2p_map_espeak("bˈɑːɾə^l", 0, m, sizeof m));
    UT_EQ_STR(t, "bˈɑTᵊl", m);
    UT_EQ_INT(t, 0, kg2p_map_espeak("kæfˈe^ɪ", 0, m, sizeof m));
    UT_EQ_STR(t, "kæfˈA", m);
    /* nothing speakable, and empty text */
    ps_of(t, "*** ", ps, sizeof ps);
    UT_EQ_STR(t, "", ps);
    ps_of(t, "", ps, sizeof ps);
    UT_EQ_STR(t, "", ps);
    kg2p_doc d;
    char err[128];
    UT_EQ_INT(t, ERR_INVAL, kg2p_run(lex(t), "bad \xff utf8", &d, err, sizeof err));
}

/* misaki EspeakG2P for the e/f/h/i/p voices (espeak-ng 1.51 data of this machine) */
static void t_espeak_g2p(ut_ctx *t)
{
    char out[1024];
    lex(t); /* espeak initialised */
    UT_EQ_INT(t, 0, kg2p_espeak_g2p(NULL, "fr-fr", "Bonjour, le monde. C'est joli (très)!", out, sizeof out));
    UT_EQ_STR(t, "bɔ̃ʒˈuʁ, lə mˈɔ̃d. sɛ ʒolˈi (tʁˈɛ)!", out); /* "lə-" liaison dash dropped */
    UT_EQ_INT(t, 0, kg2p_espeak_g2p(NULL, "it", "Ciao mondo.", out, sizeof out));
    UT_EQ_STR(t, "ʧˈao mˈondo.", out); /* t^ʃ -> ʧ */
    UT_EQ_INT(t, 0, kg2p_espeak_g2p(NULL, "es", "¿Qué tal?", out, sizeof out));
    UT_EQ_STR(t, "¿kˈe tˈal?", out);
    UT_EQ_INT(t, -1, kg2p_espeak_g2p(NULL, "es", "Hola mundo", out, 4)); /* does not fit */
}

static void t_chunks(ut_ctx *t)
{
    /* 60 sentences of "hello world." -> ~780 phonemes: must split after a full stop */
    char text[4096] = "";
    for (int i = 0; i < 60; i++) strcat(text, "Hello world. ");
    kg2p_doc d;
    char err[256];
    UT_EQ_INT(t, 0, kg2p_run(lex(t), text, &d, err, sizeof err));
    size_t pos = 0, end, nch = 0, total = 0;
    char ps[4096];
    while (kg2p_chunk(&d, 0, &pos, &end)) {
        size_t start = pos;
        (void)start;
        UT_EQ_INT(t, 0, kg2p_join(&d, total, end, ps, sizeof ps, err, sizeof err));
        size_t n = kg2p_cplen(ps);
        if (n > KG2P_MAX_PHONEMES) ut_fail(t, __FILE__, __LINE__, "chunk %zu has %zu phonemes", nch, n);
        if (ps[strlen(ps) - 1] != '.') ut_fail(t, __FILE__, __LINE__, "chunk %zu ends \"%s\"", nch, ps + strlen(ps) - 3);
        total = end;
        nch++;
    }
    UT_EQ_INT(t, (long long)d.n, (long long)total);
    UT_EQ_INT(t, 2, (long long)nch);
    kg2p_doc_free(&d);
}

static void t_first_clause(ut_ctx *t)
{
    static const struct {
        const char *text, *first;
    } c[] = {
        {"Kokoro is a small model, and it sounds great.", "kəkˈɔɹO ɪz ɐ smˈɔl mˈɑdᵊl,"},
        {"Hi, there is a cat. And a dog.", "hˈI, ðɛɹ ɪz ɐ kˈæt."},      /* "Hi," is under 12 phonemes */
        {"No marks at all in this one", "nˈO mˈɑɹks æt ˈɔl ɪn ðɪs wˈʌn"}, /* never cut between words */
    };
    char err[128], ps[2048];
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        kg2p_doc d;
        UT_EQ_INT(t, 0, kg2p_run(lex(t), c[i].text, &d, err, sizeof err));
        size_t pos = 0, end = 0;
        int got = kg2p_first_clause(&d, 12, &pos, &end);
        int rc = kg2p_join(&d, 0, end, ps, sizeof ps, err, sizeof err);
        kg2p_doc_free(&d);
        UT_EQ_INT(t, 1, got);
        UT_EQ_INT(t, 0, rc);
        UT_EQ_STR(t, c[i].first, ps);
    }
}

static void t_cleanup(ut_ctx *t)
{
    (void)t;
    kg2p_free(us);
    us = NULL;
}

static const ut_case cases[] = {
    {"golden", t_golden}, {"lexicon", t_lexicon}, {"numbers", t_numbers},
    {"unknown", t_unknown}, {"espeak_g2p", t_espeak_g2p}, {"chunks", t_chunks}, {"first_clause", t_first_clause}, {"cleanup", t_cleanup},
};
UT_SUITE(kokoro_g2p, cases)
