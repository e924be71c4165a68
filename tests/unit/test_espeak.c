/* test_espeak.c — the espeak-ng engine through engine.h: voices (real ids, distinct
 * aliases), voice checks, non-silent 24 kHz audio of plausible length, speed, cancellation
 * by sink and by flag, one engine per process, and sentence-by-sentence interleaving of
 * concurrent requests. Each test creates and frees its own engine. */
#include "ut.h"
#include "core/err.h"
#include "engine/espeak/espeak.h"
#include "engine/espeak/espeak.c" /* to reach esp_clean() */

#include <pthread.h>
#include <stdatomic.h>

static engine *es_open(ut_ctx *t)
{
    engine *e = NULL;
    char err[256] = "";
    int rc = esp_engine_new(&e, NULL, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "esp_engine_new: %d %s", rc, err);
    return e;
}

typedef struct es_rec {
    float *pcm;
    size_t n, cap, calls, stop_after;
    int empty;
    atomic_int *set_cancel_after_first;
    uint64_t hash;
} es_rec;

static int es_sink(void *user, const float *pcm, size_t n)
{
    es_rec *r = user;
    if (n == 0) r->empty = 1;
    if (r->n + n > r->cap) {
        size_t nc = (r->cap ? r->cap * 2 : 65536);
        while (nc < r->n + n) nc *= 2;
        r->pcm = realloc(r->pcm, nc * sizeof *r->pcm);
        r->cap = nc;
    }
    memcpy(r->pcm + r->n, pcm, n * sizeof *pcm);
    r->n += n;
    r->calls++;
    if (r->set_cancel_after_first) atomic_store(r->set_cancel_after_first, 1);
    return r->stop_after && r->calls >= r->stop_after;
}

static int es_say(engine *e, const char *text, const char *voice, float speed, es_rec *r,
                  const atomic_int *cancel, char *err, size_t errlen)
{
    eng_synth_req q = {.text = text, .voice = voice, .speed = speed, .cancel = cancel};
    return eng_synth(e, &q, es_sink, r, err, errlen);
}

static double es_rms(const es_rec *r)
{
    double s = 0;
    for (size_t i = 0; i < r->n; i++) s += (double)r->pcm[i] * r->pcm[i];
    return r->n ? sqrt(s / (double)r->n) : 0;
}

/* Longest run of near-silence (|x| < 0.01) inside pcm[a..b), in seconds. */
static double es_longest_gap(const es_rec *r, size_t a, size_t b)
{
    size_t best = 0, run = 0;
    for (size_t i = a; i < b && i < r->n; i++) {
        run = fabsf(r->pcm[i]) < 0.01f ? run + 1 : 0;
        if (run > best) best = run;
    }
    return (double)best / ENG_SAMPLE_RATE;
}

static uint64_t es_hash(const es_rec *r)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < r->n; i++) {
        int16_t s = (int16_t)lrintf(r->pcm[i] * 32767.0f);
        h = (h ^ (uint16_t)s) * 1099511628211ull;
    }
    return h ^ r->n;
}

static const char *const es_openai[] = {"alloy", "ash",   "ballad",  "coral", "echo",
                                        "fable", "nova",  "onyx",    "sage",  "shimmer",
                                        "verse", "marin", "cedar"};
#define ES_NOPENAI (sizeof es_openai / sizeof es_openai[0])

static void t_voices(ut_ctx *t)
{
    engine *e = es_open(t);
    char err[256];
    UT_EQ_STR(t, "espeak", e->id);
    UT_EQ_STR(t, "alloy", e->default_voice);
    UT_CHECK(t, e->caps & ENG_CAP_SPEED);
    UT_EQ_INT(t, 1, e->max_parallel);
    eng_voice *v = NULL;
    size_t n = 0;
    UT_EQ_INT(t, 0, eng_list_voices(e, &v, &n, err, sizeof err));
    UT_CHECK(t, n > 60);
    int have_enus = 0, have_frfr = 0;
    size_t naliases = 0;
    for (size_t i = 0; i < n; i++) {
        UT_CHECK(t, v[i].id[0] != 0);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(v[i].id, v[j].id)) ut_fail(t, __FILE__, __LINE__, "duplicate id %s", v[i].id);
        if (!strcmp(v[i].id, "en-us")) {
            have_enus = 1;
            UT_EQ_STR(t, "en-US", v[i].lang);
            UT_EQ_STR(t, "builtin", v[i].type);
        }
        if (!strcmp(v[i].id, "fr-fr")) have_frfr = 1;
        if (!strcmp(v[i].type, "alias")) {
            naliases++;
            UT_CHECK(t, !strncmp(v[i].lang, "en-", 3));
            UT_CHECK(t, !strcmp(v[i].gender, "male") || !strcmp(v[i].gender, "female"));
            /* names carry the espeak target, so distinct names mean distinct targets */
            for (size_t j = 0; j < i; j++)
                if (!strcmp(v[j].type, "alias") && !strcmp(v[i].name, v[j].name))
                    ut_fail(t, __FILE__, __LINE__, "aliases %s and %s share \"%s\"", v[i].id, v[j].id, v[i].name);
        }
    }
    UT_CHECK(t, have_enus && have_frfr);
    UT_EQ_INT(t, ES_NOPENAI, naliases);
    for (size_t k = 0; k < ES_NOPENAI; k++) {
        int found = 0;
        for (size_t i = 0; i < n; i++) found |= !strcmp(v[i].id, es_openai[k]);
        if (!found) ut_fail(t, __FILE__, __LINE__, "alias %s missing", es_openai[k]);
    }
    free(v);
    eng_free(e);
}

static void t_aliases_sound_different(ut_ctx *t)
{
    engine *e = es_open(t);
    char err[256];
    uint64_t h[ES_NOPENAI];
    for (size_t k = 0; k < ES_NOPENAI; k++) {
        es_rec r = {0};
        UT_EQ_INT(t, 0, es_say(e, "Hello there.", es_openai[k], 1.0f, &r, NULL, err, sizeof err));
        UT_CHECK(t, r.n > 0);
        h[k] = es_hash(&r);
        for (size_t j = 0; j < k; j++)
            if (h[j] == h[k]) ut_fail(t, __FILE__, __LINE__, "%s sounds exactly like %s", es_openai[k], es_openai[j]);
        free(r.pcm);
    }
    eng_free(e);
}

static void t_check_voice(ut_ctx *t)
{
    engine *e = es_open(t);
    char err[256];
    static const char *const ok[] = {"alloy", "ALLOY", "Shimmer", "en-us", "EN-US", "en-us+f3",
                                     "fr-fr", "en-gb+M2", "de"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (eng_check_voice(e, ok[i], err, sizeof err))
            ut_fail(t, __FILE__, __LINE__, "voice %s rejected: %s", ok[i], err);
    UT_EQ_INT(t, 0, eng_check_voice(e, NULL, err, sizeof err));
    static const char *const bad[] = {"nosuch", "en-us+nosuch", "alloy+f3x", "+f3", "en-us+",
                                      "gmw/en-US", "../../etc/passwd"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (eng_check_voice(e, bad[i], err, sizeof err) != ERR_NOTFOUND)
            ut_fail(t, __FILE__, __LINE__, "voice %s: expected ERR_NOTFOUND", bad[i]);
    char longv[300];
    memset(longv, 'a', sizeof longv - 1);
    longv[sizeof longv - 1] = 0;
    UT_EQ_INT(t, ERR_NOTFOUND, eng_check_voice(e, longv, err, sizeof err));
    es_rec r = {0};
    UT_EQ_INT(t, ERR_NOTFOUND, es_say(e, "Hi.", "nosuch", 1.0f, &r, NULL, err, sizeof err));
    UT_EQ_INT(t, 0, r.calls);
    UT_EQ_INT(t, ERR_INVAL, es_say(e, "Hi.", NULL, 5.0f, &r, NULL, err, sizeof err));
    eng_free(e);
}

/* Markdown and control characters are cleaned before espeak sees them (esp_clean). */
static void t_clean(ut_ctx *t)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"**Hello** world.", "  Hello   world."},
        {"*Hello* __there__ _you_.", " Hello    there    you ."},
        {"## Heading here", "   Heading here"},
        {"* item one", "  item one"},
        {"Use `ls -l` now.", "Use  ls -l  now."},
        {"5 * 3 = 15 and 2*3 = 6", "5 * 3 = 15 and 2*3 = 6"},
        {"snake_case stays", "snake_case stays"},
        {"#hashtag", "#hashtag"},
        {"a\x01" "0Ab\tc", "a 0Ab c"},
    };
    char out[128];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        esp_clean(out, cases[i].in, strlen(cases[i].in));
        if (strcmp(out, cases[i].want))
            ut_fail(t, __FILE__, __LINE__, "clean(\"%s\"): expected \"%s\", got \"%s\"",
                    cases[i].in, cases[i].want, out);
    }
}

static void t_synth(ut_ctx *t)
{
    engine *e = es_open(t);
    char err[256];
    es_rec r = {0};
    UT_EQ_INT(t, 0, es_say(e, "The quick brown fox jumps over the lazy dog.", NULL, 1.0f, &r,
                           NULL, err, sizeof err));
    double sec = (double)r.n / ENG_SAMPLE_RATE;
    if (!(sec > 1.5 && sec < 5.0)) ut_fail(t, __FILE__, __LINE__, "duration %.2f s not in 1.5 .. 5", sec);
    UT_EQ_INT(t, 0, r.empty);
    double rms = es_rms(&r), peak = 0;
    for (size_t i = 0; i < r.n; i++) peak = fmax(peak, fabs(r.pcm[i]));
    if (!(rms > 0.02)) ut_fail(t, __FILE__, __LINE__, "rms %.4f: silent?", rms);
    if (!(peak < 1.2)) ut_fail(t, __FILE__, __LINE__, "peak %.3f out of range", peak);
    /* Two sentences: each flushed separately, more audio than one. */
    es_rec r2 = {0};
    UT_EQ_INT(t, 0, es_say(e, "The quick brown fox jumps over the lazy dog. It ran away.", NULL,
                           1.0f, &r2, NULL, err, sizeof err));
    UT_CHECK(t, r2.n > r.n + ENG_SAMPLE_RATE / 2);
    /* A real sentence pause (espeak's ~0.3 s) between them, not words running together. */
    double gap = es_longest_gap(&r2, ENG_SAMPLE_RATE / 2, r.n + ENG_SAMPLE_RATE / 10);
    if (!(gap > 0.2)) ut_fail(t, __FILE__, __LINE__, "pause between sentences %.3f s, want > 0.2 s", gap);
    /* Control characters (espeak's embedded-command marker CTRL-A) are spoken as spaces:
     * "\x01" "0A" would otherwise set the amplitude to 0 and silence the rest. */
    es_rec rc1 = {0};
    UT_EQ_INT(t, 0, es_say(e, "The quick brown fox \x01" "0A jumps over the lazy dog.", NULL,
                           1.0f, &rc1, NULL, err, sizeof err));
    es_rec tail = {.pcm = rc1.pcm + rc1.n * 55 / 100, .n = rc1.n * 35 / 100};
    if (!(es_rms(&tail) > 0.02))
        ut_fail(t, __FILE__, __LINE__, "tail rms %.4f: embedded command silenced the speech", es_rms(&tail));
    free(rc1.pcm);
    /* A non-English voice by its real id. */
    es_rec fr = {0};
    UT_EQ_INT(t, 0, es_say(e, "Bonjour tout le monde.", "fr-fr", 1.0f, &fr, NULL, err, sizeof err));
    UT_CHECK(t, fr.n > ENG_SAMPLE_RATE / 2 && es_rms(&fr) > 0.02);
    free(fr.pcm);
    /* Punctuation only: no audio and no empty chunk, not an error. */
    es_rec r3 = {0};
    UT_EQ_INT(t, 0, es_say(e, "...", NULL, 1.0f, &r3, NULL, err, sizeof err));
    UT_EQ_INT(t, 0, r3.empty);
    free(r.pcm);
    free(r2.pcm);
    free(r3.pcm);
    eng_free(e);
}

static double es_dur(ut_ctx *t, engine *e, const char *text, float speed)
{
    char err[256];
    es_rec r = {0};
    int rc = es_say(e, text, "alloy", speed, &r, NULL, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "speed %.2f: %d %s", (double)speed, rc, err);
    free(r.pcm);
    return (double)r.n / ENG_SAMPLE_RATE;
}

static void t_speed(ut_ctx *t)
{
    engine *e = es_open(t);
    const char *text = "In the beginning there was nothing but darkness and silence across the "
                       "wide and empty land.";
    double d1 = es_dur(t, e, text, 1.0f);
    /* The issue asks for 1/speed within 5%; espeak's rate alone is up to 10% off. */
    static const float sp[] = {2.0f, 0.5f, 4.0f, 0.25f, 1.5f, 3.0f, 0.7f};
    for (size_t i = 0; i < sizeof sp / sizeof sp[0]; i++) {
        double d = es_dur(t, e, text, sp[i]), want = d1 / sp[i];
        if (fabs(d - want) > 0.03 * want)
            ut_fail(t, __FILE__, __LINE__, "speed %.2f: expected %.3f s (+-3%%), got %.3f s",
                    (double)sp[i], want, d);
    }
    eng_free(e);
}

static const char *es_long =
    "This is the first sentence of a long text. Here comes the second one. And a third. "
    "The fourth sentence follows. Then the fifth. The sixth is here. Seventh. Eighth sentence. "
    "Ninth sentence is long enough. Tenth and last.";

static void t_cancel(ut_ctx *t)
{
    engine *e = es_open(t);
    char err[256];
    es_rec full = {0};
    UT_EQ_INT(t, 0, es_say(e, es_long, NULL, 1.0f, &full, NULL, err, sizeof err));
    UT_CHECK(t, full.calls >= 10); /* at least one chunk per sentence */
    /* Sink says stop on its first call. */
    es_rec r = {.stop_after = 1};
    UT_EQ_INT(t, ERR_CANCEL, es_say(e, es_long, NULL, 1.0f, &r, NULL, err, sizeof err));
    UT_EQ_INT(t, 1, r.calls);
    UT_CHECK(t, r.n < full.n / 4);
    /* Same through the time-stretch path (speed != 1). */
    es_rec rs = {.stop_after = 1};
    UT_EQ_INT(t, ERR_CANCEL, es_say(e, es_long, NULL, 2.0f, &rs, NULL, err, sizeof err));
    UT_EQ_INT(t, 1, rs.calls);
    UT_EQ_INT(t, 0, rs.empty);
    free(rs.pcm);
    /* Cancel flag raised by the first chunk. */
    atomic_int cancel = 0;
    es_rec r2 = {.set_cancel_after_first = &cancel};
    UT_EQ_INT(t, ERR_CANCEL, es_say(e, es_long, NULL, 1.0f, &r2, &cancel, err, sizeof err));
    UT_EQ_INT(t, 1, r2.calls);
    /* Flag already set: nothing at all. */
    es_rec r3 = {0};
    UT_EQ_INT(t, ERR_CANCEL, es_say(e, es_long, NULL, 1.0f, &r3, &cancel, err, sizeof err));
    UT_EQ_INT(t, 0, r3.calls);
    /* The engine still works afterwards and gives the same length (espeak 1.51 is not
     * bit-reproducible within a process: pitch-flutter phase carries over). */
    es_rec again = {0};
    UT_EQ_INT(t, 0, es_say(e, es_long, NULL, 1.0f, &again, NULL, err, sizeof err));
    UT_NEAR(t, (double)full.n, (double)again.n, 0.01 * (double)full.n);
    free(full.pcm);
    free(r.pcm);
    free(r2.pcm);
    free(r3.pcm);
    free(again.pcm);
    eng_free(e);
}

static void t_one_per_process(ut_ctx *t)
{
    engine *e = es_open(t), *e2 = NULL;
    char err[256];
    UT_EQ_INT(t, ERR_BUSY, esp_engine_new(&e2, NULL, err, sizeof err));
    UT_CHECK(t, e2 == NULL);
    eng_free(e);
    eng_free(NULL);
    e = es_open(t); /* usable again once freed */
    eng_free(e);
}

/* Two concurrent requests alternate sentence by sentence. */
typedef struct es_thr {
    engine *e;
    const char *text;
    atomic_int *seq;
    int first_seq, last_seq, rc;
    size_t calls;
} es_thr;

static int es_seq_sink(void *user, const float *pcm, size_t n)
{
    es_thr *a = user;
    int s = atomic_fetch_add(a->seq, 1);
    if (a->calls++ == 0) a->first_seq = s;
    a->last_seq = s;
    return 0;
}

static void *es_thr_main(void *p)
{
    es_thr *a = p;
    char err[256];
    eng_synth_req q = {.text = a->text, .voice = "echo", .speed = 1.0f};
    a->rc = eng_synth(a->e, &q, es_seq_sink, a, err, sizeof err);
    return NULL;
}

static void t_interleave(ut_ctx *t)
{
    engine *e = es_open(t);
    atomic_int seq = 0;
    es_thr a = {.e = e, .text = es_long, .seq = &seq}, b = a;
    pthread_t ta, tb;
    pthread_create(&ta, NULL, es_thr_main, &a);
    pthread_create(&tb, NULL, es_thr_main, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    UT_EQ_INT(t, 0, a.rc);
    UT_EQ_INT(t, 0, b.rc);
    /* Neither waited for the whole of the other: each one's first chunk came before the
     * other's last. */
    if (!(a.first_seq < b.last_seq && b.first_seq < a.last_seq))
        ut_fail(t, __FILE__, __LINE__, "no interleaving: a %d..%d, b %d..%d", a.first_seq,
                a.last_seq, b.first_seq, b.last_seq);
    eng_free(e);
}

static const ut_case cases[] = {
    {"voices", t_voices},
    {"aliases_sound_different", t_aliases_sound_different},
    {"check_voice", t_check_voice},
    {"clean", t_clean},
    {"synth", t_synth},
    {"speed", t_speed},
    {"cancel", t_cancel},
    {"one_per_process", t_one_per_process},
    {"interleave", t_interleave},
};
UT_SUITE(espeak, cases)
