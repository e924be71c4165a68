/* test_kokoro_engine.c — the Kokoro engine (engine/kokoro/kkengine.h) on the tiny random
 * reference model: audio comes out, length follows speed, the seed makes it reproducible,
 * cancellation stops it between chunks, voices and errors. */
#include "ut.h"

#include "core/err.h"
#include "engine/kokoro/kkengine.h"
#include "engine/kokoro/kkpth.h"
#include "model/safetensors.h"

#include "engine/registry.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static engine *tiny_engine(ut_ctx *t, int first_chunk)
{
    static char w[1024], c[1024], v[1024], l[1024];
    ut_path(w, sizeof w, "reference/kokoro/kokoro-tiny-random.safetensors");
    ut_path(c, sizeof c, "reference/kokoro/config-tiny.json");
    ut_path(v, sizeof v, "reference/kokoro");
    ut_path(l, sizeof l, "reference/kokoro/lexicon");
    kke_options o = {.weights = w, .config = c, .voices_dir = v, .lexicon_dir = l, .first_chunk = first_chunk};
    hf_options ho = {.offline = 1, .no_env = 1};
    o.hf = &ho;
    engine *e = NULL;
    char err[256] = "";
    if (kke_new(&e, &o, err, sizeof err)) ut_fail(t, __FILE__, __LINE__, "kke_new: %s", err);
    return e;
}

typedef struct {
    size_t calls, samples, stop_after;
    int finite;
    float first[64];
    size_t nfirst;
} sinkst;

static int sink(void *u, const float *pcm, size_t n)
{
    sinkst *s = u;
    s->calls++;
    for (size_t i = 0; i < n; i++) {
        if (!(pcm[i] == pcm[i]) || pcm[i] > 1e6f || pcm[i] < -1e6f) s->finite = 0;
        if (s->nfirst < 64) s->first[s->nfirst++] = pcm[i];
    }
    s->samples += n;
    return s->stop_after && s->calls >= s->stop_after;
}

static int say(engine *e, const char *text, float speed, uint64_t seed, const atomic_int *cancel, sinkst *s)
{
    memset(s, 0, sizeof *s);
    s->finite = 1;
    eng_synth_req r = {.text = text, .voice = NULL, .speed = speed, .seed = seed, .has_seed = 1, .cancel = cancel};
    char err[256];
    return eng_synth(e, &r, sink, s, err, sizeof err);
}

static int say_voice(engine *e, const char *voice, const char *text, sinkst *s)
{
    memset(s, 0, sizeof *s);
    s->finite = 1;
    eng_synth_req r = {.text = text, .voice = voice, .speed = 1.0f, .seed = 3, .has_seed = 1};
    char err[256];
    return eng_synth(e, &r, sink, s, err, sizeof err);
}

static void t_audio_speed_seed(ut_ctx *t)
{
    engine *e = tiny_engine(t, -1);
    sinkst a, b, c;
    const char *txt = "Hello world, again!";
    int rc1 = say(e, txt, 1.0f, 7, NULL, &a);
    int rc2 = say(e, txt, 2.0f, 7, NULL, &b);
    int rc3 = say(e, txt, 1.0f, 7, NULL, &c);
    eng_free(e);
    UT_EQ_INT(t, 0, rc1);
    UT_EQ_INT(t, 0, rc2);
    UT_EQ_INT(t, 0, rc3);
    UT_CHECK(t, a.samples > 24000 / 2); /* at least half a second */
    UT_EQ_INT(t, 0, (long long)(a.samples % 600)); /* 600 samples per frame */
    UT_CHECK(t, a.finite && b.finite);
    /* durations / 2: about half as long (rounding + the >= 1 frame floor: < 0.75) */
    if (!(b.samples < a.samples * 3 / 4))
        ut_fail(t, __FILE__, __LINE__, "speed 2: %zu samples vs %zu at speed 1", b.samples, a.samples);
    UT_EQ_INT(t, (long long)a.samples, (long long)c.samples);
    UT_CHECK(t, !memcmp(a.first, c.first, sizeof a.first)); /* same seed, same audio */
}

typedef struct {
    engine *e;
    sinkst s;
    int rc;
} par_job;

static void *par_run(void *u)
{
    par_job *j = u;
    j->rc = say(j->e, "Two at once.", 1.0f, 11, NULL, &j->s);
    return NULL;
}

/* synth() from two threads at once (max_parallel 2): same seed, same samples as alone. */
static void t_parallel(ut_ctx *t)
{
    engine *e = tiny_engine(t, 0);
    sinkst alone;
    int rc0 = say(e, "Two at once.", 1.0f, 11, NULL, &alone);
    par_job j[2] = {{.e = e}, {.e = e}};
    pthread_t th[2];
    int started = 0;
    for (int i = 0; i < 2; i++) started += pthread_create(&th[i], NULL, par_run, &j[i]) == 0;
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    eng_free(e);
    UT_EQ_INT(t, 2, started);
    UT_EQ_INT(t, 0, rc0);
    for (int i = 0; i < 2; i++) {
        UT_EQ_INT(t, 0, j[i].rc);
        UT_EQ_INT(t, (long long)alone.samples, (long long)j[i].s.samples);
        UT_CHECK(t, !memcmp(alone.first, j[i].s.first, sizeof alone.first));
    }
}

static void t_chunks_cancel(ut_ctx *t)
{
    engine *e = tiny_engine(t, 0); /* first chunk = first clause: several chunks */
    sinkst s;
    const char *txt = "Hello world. This is a test, with a clause. And one more sentence here.";
    int rc = say(e, txt, 1.0f, 1, NULL, &s);
    size_t all = s.calls;
    UT_EQ_INT(t, 0, rc);
    UT_CHECK(t, all >= 2);
    /* the sink stops it after the first chunk */
    sinkst s2;
    memset(&s2, 0, sizeof s2);
    s2.finite = 1;
    s2.stop_after = 1;
    eng_synth_req r = {.text = txt, .speed = 1.0f, .seed = 1, .has_seed = 1};
    char err[256];
    int rc2 = eng_synth(e, &r, sink, &s2, err, sizeof err);
    /* cancel flag already set: no audio at all */
    atomic_int cancel = 1;
    sinkst s3;
    int rc3 = say(e, txt, 1.0f, 1, &cancel, &s3);
    eng_free(e);
    UT_EQ_INT(t, ERR_CANCEL, rc2);
    UT_EQ_INT(t, 1, (long long)s2.calls);
    UT_EQ_INT(t, ERR_CANCEL, rc3);
    UT_EQ_INT(t, 0, (long long)s3.calls);
}

static void t_voices_errors(ut_ctx *t)
{
    engine *e = tiny_engine(t, 0);
    char err[256];
    eng_voice *v = NULL;
    size_t n = 0;
    UT_EQ_INT(t, 0, eng_list_voices(e, &v, &n, err, sizeof err));
    int found = 0;
    for (size_t i = 0; i < n; i++) found |= !strcmp(v[i].id, "voice-tiny-random");
    free(v);
    UT_CHECK(t, found);
    UT_EQ_STR(t, "kokoro", e->id);
    UT_EQ_STR(t, "voice-tiny-random", e->default_voice);
    UT_EQ_INT(t, 0, eng_check_voice(e, "voice-tiny-random", err, sizeof err));
    UT_EQ_INT(t, 0, eng_check_voice(e, "voice-tiny-random,voice-tiny-random", err, sizeof err));
    UT_EQ_INT(t, ERR_NOTFOUND, eng_check_voice(e, "af_nobody", err, sizeof err));
    UT_EQ_INT(t, 0, eng_check_voice(e, "alloy", err, sizeof err)); /* af_alloy absent: the default voice */
    UT_EQ_INT(t, ERR_NOTFOUND, eng_check_voice(e, "../etc/passwd", err, sizeof err));
    sinkst s;
    UT_EQ_INT(t, ERR_INVAL, say(e, "***", 1.0f, 1, NULL, &s)); /* nothing speakable */
    eng_free(e);
    kke_options o = {.dir = "/nonexistent-kokoro"};
    engine *e2 = NULL;
    UT_EQ_INT(t, ERR_NOTFOUND, kke_new(&e2, &o, err, sizeof err));
    kke_options none = {0};
    UT_EQ_INT(t, ERR_NOTFOUND, kke_new(&e2, &none, err, sizeof err));
    UT_CHECK(t, strstr(err, "--kokoro-dir") != NULL);
}

/* Absolute path of a shared reference file into out[n]. */
static void ref_abs(ut_ctx *t, const char *rel, char *out, size_t n)
{
    char p[1024], cwd[512];
    ut_path(p, sizeof p, rel);
    if (p[0] == '/') {
        snprintf(out, n, "%s", p);
        return;
    }
    if (!getcwd(cwd, sizeof cwd)) ut_fail(t, __FILE__, __LINE__, "getcwd");
    if ((size_t)snprintf(out, n, "%.511s/%.1023s", cwd, p) >= n) ut_fail(t, __FILE__, __LINE__, "path too long");
}

/* A model folder as a user lays it out, made of links to the reference files. */
static void make_dir(ut_ctx *t, char *dir, size_t n)
{
    snprintf(dir, n, "/tmp/kokoro-ut-XXXXXX");
    if (!mkdtemp(dir)) ut_fail(t, __FILE__, __LINE__, "mkdtemp");
    char src[1600], dst[512];
    static const char *const links[][2] = {
        {"reference/kokoro/config-tiny.json", "config.json"},
        {"reference/kokoro/kokoro-tiny-random.safetensors", "kokoro-tiny.safetensors"},
        {"reference/kokoro/lexicon", "lexicon"},
        {"reference/kokoro/voice-tiny-random.bin", "voices/af_heart.bin"},
        {"reference/kokoro/voice-tiny-random.bin", "voices/ff_siwis.bin"},
        {"reference/kokoro/voice-tiny-random.bin", "voices/jf_alpha.bin"},
    };
    for (size_t i = 0; i < 6; i++) {
        if (i == 3) {
            snprintf(dst, sizeof dst, "%.200s/voices", dir);
            if (mkdir(dst, 0700)) ut_fail(t, __FILE__, __LINE__, "mkdir");
        }
        ref_abs(t, links[i][0], src, sizeof src);
        snprintf(dst, sizeof dst, "%.200s/%s", dir, links[i][1]);
        if (symlink(src, dst)) ut_fail(t, __FILE__, __LINE__, "symlink %s", dst);
    }
}

static void rm_dir(const char *dir)
{
    char p[1200];
    static const char *const f[] = {"config.json", "kokoro-tiny.safetensors", "lexicon", "voices/af_heart.bin",
                                    "voices/ff_siwis.bin", "voices/jf_alpha.bin", "voices", "cache"};
    for (size_t i = 0; i < 8; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, f[i]);
        if (unlink(p)) rmdir(p);
    }
    rmdir(dir);
}

static void t_registry(ut_ctx *t)
{
    char dir[256], cache[300];
    make_dir(t, dir, sizeof dir);
    snprintf(cache, sizeof cache, "%s/cache", dir);
    reg_options ro = {.kokoro_dir = dir, .offline = 1, .cache_dir = cache};
    reg_registry *r = NULL;
    char warn[1024], err[512];
    int rc = reg_load(&r, &ro, warn, sizeof warn, err, sizeof err);
    engine *k = rc ? NULL : reg_find_model(r, "kokoro");
    engine *p = rc ? NULL : reg_find_model(r, "pocket-tts");
    engine *def = rc ? NULL : reg_default(r);
    int voice_ok = k && eng_check_voice(k, "af_heart", err, sizeof err) == 0 &&
                   eng_check_voice(k, "coral", err, sizeof err) == 0 &&
                   eng_check_voice(k, "af_bella", err, sizeof err) == ERR_NOTFOUND &&
                   !strcmp(k->default_voice, "af_heart");
    /* French: misaki's EspeakG2P path; Japanese packs are not offered */
    sinkst fr;
    int rc_fr = k ? say_voice(k, "ff_siwis", "Bonjour le monde. Ça va?", &fr) : -1;
    int ja = k ? eng_check_voice(k, "jf_alpha", err, sizeof err) : 0;
    eng_voice *vl = NULL;
    size_t nv = 0;
    int fr_listed = 0;
    if (k && !eng_list_voices(k, &vl, &nv, err, sizeof err))
        for (size_t i = 0; i < nv; i++) fr_listed |= !strcmp(vl[i].id, "ff_siwis") && !strcmp(vl[i].lang, "fr-FR");
    free(vl);
    reg_free(r);
    UT_EQ_INT(t, 0, rc_fr);
    UT_CHECK(t, fr.samples > 0 && fr.finite);
    UT_EQ_INT(t, ERR_NOTFOUND, ja);
    UT_CHECK(t, fr_listed);
    /* without a folder there is no kokoro */
    reg_options ro2 = {.offline = 1, .cache_dir = cache};
    int rc2 = reg_load(&r, &ro2, warn, sizeof warn, err, sizeof err);
    engine *k2 = rc2 ? NULL : reg_find_model(r, "kokoro");
    reg_free(r);
    rm_dir(dir);
    UT_EQ_INT(t, 0, rc);
    UT_CHECK(t, k != NULL);
    UT_CHECK(t, voice_ok);
    /* never the default over pocket-tts; the default over espeak when pocket-tts is missing */
    UT_CHECK(t, p ? def == p : def == k);
    UT_EQ_INT(t, 0, rc2);
    UT_CHECK(t, k2 == NULL);
}

/* kokoro-tiny-random.pth converted == kokoro-tiny-random.safetensors, tensor for tensor. */
static void t_pth(ut_ctx *t)
{
    char pth[1024], ref[1024], out[256], err[256] = "";
    ut_path(pth, sizeof pth, "reference/kokoro/kokoro-tiny-random.pth");
    ut_path(ref, sizeof ref, "reference/kokoro/kokoro-tiny-random.safetensors");
    snprintf(out, sizeof out, "/tmp/kokoro-ut-pth-%d.safetensors", (int)getpid());
    size_t nt = 0;
    int rc = kk_pth_to_safetensors(pth, out, &nt, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "convert: %s", err);
    st_file *a = NULL, *b = NULL;
    int ra = st_open(&a, out, err, sizeof err), rb = st_open(&b, ref, err, sizeof err);
    size_t na = ra ? 0 : st_count(a), nb = rb ? 0 : st_count(b), same = 0;
    char bad[600] = "";
    for (size_t i = 0; !ra && !rb && i < nb; i++) {
        const st_tensor *y = st_at(b, i), *x = st_find(a, y->name);
        int ok = x && x->dtype == y->dtype && x->ndim == y->ndim && x->nbytes == y->nbytes &&
                 !memcmp(x->shape, y->shape, sizeof x->shape[0] * (size_t)x->ndim) && !memcmp(x->data, y->data, x->nbytes);
        if (ok)
            same++;
        else if (!*bad)
            snprintf(bad, sizeof bad, "%s", y->name);
    }
    st_close(a);
    st_close(b);
    unlink(out);
    UT_EQ_INT(t, 0, ra);
    UT_EQ_INT(t, 0, rb);
    UT_EQ_INT(t, 548, (long long)nt);
    UT_EQ_INT(t, (long long)nb, (long long)na);
    if (same != nb) ut_fail(t, __FILE__, __LINE__, "%zu of %zu tensors equal; first differing: %s", same, nb, bad);
    /* the engine takes the .pth directly: converted once into <cache>/kokoro/ */
    char cache[128], conv[300], c[1024], vd[1024], l[1024];
    snprintf(cache, sizeof cache, "/tmp/kokoro-ut-cache-%d", (int)getpid());
    ut_path(c, sizeof c, "reference/kokoro/config-tiny.json");
    ut_path(vd, sizeof vd, "reference/kokoro");
    ut_path(l, sizeof l, "reference/kokoro/lexicon");
    hf_options ho = {.offline = 1, .no_env = 1, .cache_dir = cache};
    kke_options o = {.weights = pth, .config = c, .voices_dir = vd, .lexicon_dir = l, .hf = &ho};
    engine *e = NULL;
    int re = kke_new(&e, &o, err, sizeof err);
    snprintf(conv, sizeof conv, "%s/kokoro/kokoro-tiny-random-5319003.safetensors", cache);
    int conv_ok = access(conv, R_OK) == 0;
    eng_free(e);
    unlink(conv);
    snprintf(conv, sizeof conv, "%s/kokoro", cache);
    rmdir(conv);
    rmdir(cache);
    if (re) ut_fail(t, __FILE__, __LINE__, "kke_new from .pth: %s", err);
    UT_CHECK(t, conv_ok);
    /* not a checkpoint */
    UT_EQ_INT(t, ERR_FORMAT, kk_pth_to_safetensors(ref, out, NULL, err, sizeof err));
    UT_EQ_INT(t, ERR_NOTFOUND, kk_pth_to_safetensors("/nonexistent.pth", out, NULL, err, sizeof err));
}

static const ut_case cases[] = {
    {"pth", t_pth},
    {"registry", t_registry},
    {"audio_speed_seed", t_audio_speed_seed},
    {"chunks_cancel", t_chunks_cancel},
    {"parallel", t_parallel},
    {"voices_errors", t_voices_errors},
};
UT_SUITE(kokoro_engine, cases)
