/* test_pocket.c — the pocket-tts engine on the tiny reference model, and voices.c.
 *
 * The tiny model (reference/pocket-tts/tiny_*) has an EOS head that fires at the first
 * step, so every chunk yields frames_after_eos frames (5 for <= 4 words, else 3): short
 * tests. Voices are files copied into a fresh temp folder per test: voice_state_A (the
 * state upstream exported for voice_prompt_24k.wav) and the WAV itself, so cloning from
 * the WAV must give (almost) the audio the exported state gives.
 */
#include "ut.h"

#include "audio/aenc.h"
#include "core/buf.h"
#include "core/err.h"
#include "engine/pocket/pocket.h"
#include "engine/pocket/voices.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct cap {
    float *v;
    size_t n, cap;
    int calls, bad_sizes, stop_after; /* stop_after > 0: return 1 at that call */
} cap;

static int cap_sink(void *u, const float *pcm, size_t n)
{
    cap *c = u;
    c->calls++;
    if (n != 1920) c->bad_sizes++;
    if (c->n + n > c->cap) {
        size_t nc = (c->n + n) * 2;
        float *nv = realloc(c->v, nc * sizeof *nv);
        if (!nv) return 1;
        c->v = nv, c->cap = nc;
    }
    memcpy(c->v + c->n, pcm, n * sizeof *pcm);
    c->n += n;
    return c->stop_after > 0 && c->calls >= c->stop_after;
}

static int copy_file(const char *src, const char *dst)
{
    FILE *a = fopen(src, "rb"), *b = a ? fopen(dst, "wb") : NULL;
    char bb[65536];
    size_t k;
    int ok = a && b;
    while (ok && (k = fread(bb, 1, sizeof bb, a)) > 0) ok = fwrite(bb, 1, k, b) == k;
    if (a) fclose(a);
    if (b && fclose(b)) ok = 0;
    return ok ? 0 : -1;
}

typedef struct fx {
    char dir[256], voices[300], states[300], outside[300];
    engine *e;
} fx;

static int rm_rf(const char *p)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
    return system(cmd);
}

/* Temp folder with voices/{a.safetensors, clone.wav}, states/, outside.wav; engine loaded. */
static int fx_open(ut_ctx *t, fx *f, int pipeline, const char *state_dir_override)
{
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/ut-pocket-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->voices, sizeof f->voices, "%s/voices", f->dir);
    snprintf(f->states, sizeof f->states, "%s/states", f->dir);
    snprintf(f->outside, sizeof f->outside, "%s/outside.wav", f->dir);
    mkdir(f->voices, 0755);
    char src[512], dst[600];
    ut_path(src, sizeof src, "reference/pocket-tts/voice_state_A.safetensors");
    snprintf(dst, sizeof dst, "%s/a.safetensors", f->voices);
    if (copy_file(src, dst)) return -1;
    ut_path(src, sizeof src, "reference/pocket-tts/voice_prompt_24k.wav");
    snprintf(dst, sizeof dst, "%s/clone.wav", f->voices);
    if (copy_file(src, dst) || copy_file(src, f->outside)) return -1;
    char model[512], err[512];
    ut_path(model, sizeof model, "reference/pocket-tts");
    pke_options o = {0};
    o.model_dir = model;
    o.voices_dir = f->voices;
    o.state_cache_dir = state_dir_override ? state_dir_override : f->states;
    o.pipeline = pipeline;
    o.threads = 1;
    int rc = pke_new(&f->e, &o, err, sizeof err);
    if (rc) printf("    pke_new: %s\n", err);
    UT_EQ_INT(t, 0, rc);
    return rc;
}

static void fx_close(fx *f)
{
    eng_free(f->e);
    rm_rf(f->dir);
}

static int say(engine *e, const char *text, const char *voice, int has_seed, uint64_t seed, cap *c, char *err,
               size_t errlen)
{
    eng_synth_req r = {0};
    r.text = text;
    r.voice = voice;
    r.speed = 1.0f;
    r.has_seed = has_seed;
    r.seed = seed;
    return eng_synth(e, &r, cap_sink, c, err, errlen);
}

static void t_load(ut_ctx *t)
{
    fx f;
    if (fx_open(t, &f, 1, NULL)) return;
    UT_EQ_STR(t, "pocket-tts", f.e->id);
    UT_CHECK(t, f.e->caps & ENG_CAP_SEED);
    UT_CHECK(t, f.e->caps & ENG_CAP_CLONE);
    UT_CHECK(t, !(f.e->caps & ENG_CAP_SPEED));
    UT_CHECK(t, strstr(f.e->desc, "tiny_config") != NULL);
    /* default voice: first folder voice (no built-ins with a local folder) */
    UT_CHECK(t, !strcmp(f.e->default_voice, "a") || !strcmp(f.e->default_voice, "clone"));
    eng_voice *v = NULL;
    size_t n = 0;
    char err[256];
    UT_EQ_INT(t, 0, eng_list_voices(f.e, &v, &n, err, sizeof err));
    UT_EQ_INT(t, 2, n);
    int seen = 0;
    for (size_t i = 0; i < n; i++) seen |= (!strcmp(v[i].id, "a") ? 1 : 0) | (!strcmp(v[i].id, "clone") ? 2 : 0);
    UT_EQ_INT(t, 3, seen);
    free(v);
    fx_close(&f);
}

static void t_stream_frames(ut_ctx *t)
{
    fx f;
    if (fx_open(t, &f, 1, NULL)) return;
    cap c = {0};
    char err[256];
    int rc = say(f.e, "Hello world.", "a", 1, 7, &c, err, sizeof err);
    if (rc) printf("    synth: %s\n", err);
    UT_EQ_INT(t, 0, rc);
    UT_EQ_INT(t, 0, c.bad_sizes);
    /* tiny model: EOS at step 0, 2 words -> frames_after_eos 5 -> 5 frames */
    UT_EQ_INT(t, 5, c.calls);
    float peak = 0;
    for (size_t i = 0; i < c.n; i++) peak = fabsf(c.v[i]) > peak ? fabsf(c.v[i]) : peak;
    UT_CHECK(t, peak > 1e-4f && isfinite(peak));
    free(c.v);
    fx_close(&f);
}

static void t_seed(ut_ctx *t)
{
    fx f, g;
    if (fx_open(t, &f, 1, NULL)) return;
    if (fx_open(t, &g, 0, NULL)) {
        fx_close(&f);
        return;
    }
    cap a = {0}, b = {0}, c = {0}, d = {0};
    char err[256];
    UT_EQ_INT(t, 0, say(f.e, "Seeded words here, again and again.", "a", 1, 42, &a, err, sizeof err));
    UT_EQ_INT(t, 0, say(f.e, "Seeded words here, again and again.", "a", 1, 42, &b, err, sizeof err));
    UT_EQ_INT(t, 0, say(f.e, "Seeded words here, again and again.", "a", 1, 43, &c, err, sizeof err));
    UT_EQ_INT(t, 0, say(g.e, "Seeded words here, again and again.", "a", 1, 42, &d, err, sizeof err));
    UT_EQ_INT(t, a.n, b.n);
    UT_CHECK(t, a.n == b.n && !memcmp(a.v, b.v, a.n * sizeof *a.v));
    UT_CHECK(t, a.n != c.n || memcmp(a.v, c.v, a.n * sizeof *a.v)); /* another seed, other audio */
    /* the Mimi pipeline thread changes nothing */
    UT_EQ_INT(t, a.n, d.n);
    UT_CHECK(t, a.n == d.n && !memcmp(a.v, d.v, a.n * sizeof *a.v));
    free(a.v), free(b.v), free(c.v), free(d.v);
    fx_close(&f);
    fx_close(&g);
}

static double max_abs_diff(const cap *a, const cap *b)
{
    double m = 0;
    for (size_t i = 0; i < a->n && i < b->n; i++) {
        double d = fabs((double)a->v[i] - b->v[i]);
        if (d > m) m = d;
    }
    return m;
}

static void t_clone(ut_ctx *t)
{
    fx f;
    if (fx_open(t, &f, 1, NULL)) return;
    cap a = {0}, b = {0}, c = {0};
    char err[256];
    /* the WAV encoded by us vs the state upstream exported from the same WAV */
    int rc = say(f.e, "A cloned voice.", "clone", 1, 5, &b, err, sizeof err);
    if (rc) printf("    clone: %s\n", err);
    UT_EQ_INT(t, 0, rc);
    UT_EQ_INT(t, 0, say(f.e, "A cloned voice.", "a", 1, 5, &a, err, sizeof err));
    UT_EQ_INT(t, a.n, b.n);
    double d = max_abs_diff(&a, &b);
    printf("    clone vs upstream state: max |diff| %.3g over %zu samples\n", d, a.n);
    UT_CHECK(t, d < 2e-2);
    UT_EQ_INT(t, 2, pke_cached_voices(f.e));
    /* encoded once: the disk cache holds one state file for the model */
    char cmd[700], line[64] = "";
    snprintf(cmd, sizeof cmd, "find '%s' -name '*.safetensors' | wc -l", f.states);
    FILE *p = popen(cmd, "r");
    if (p && fgets(line, sizeof line, p)) UT_EQ_INT(t, 1, atoi(line));
    if (p) pclose(p);
    /* a second engine (fresh memory cache) uses the disk state: same samples */
    char model[512];
    ut_path(model, sizeof model, "reference/pocket-tts");
    pke_options o = {0};
    o.model_dir = model;
    o.voices_dir = f.voices;
    o.state_cache_dir = f.states;
    engine *e2 = NULL;
    UT_EQ_INT(t, 0, pke_new(&e2, &o, err, sizeof err));
    if (e2) {
        UT_EQ_INT(t, 0, say(e2, "A cloned voice.", "clone", 1, 5, &c, err, sizeof err));
        UT_CHECK(t, c.n == b.n && !memcmp(c.v, b.v, b.n * sizeof *b.v));
        eng_free(e2);
    }
    /* export-voice writes a state that speaks like the source */
    char out[400];
    snprintf(out, sizeof out, "%s/exported.safetensors", f.voices);
    UT_EQ_INT(t, 0, pke_export_voice(f.e, f.outside, out, err, sizeof err));
    /* `pockettts export-voice in.wav out.safetensors`: a bare file name in the working dir */
    char cwd[512], out2[400];
    UT_CHECK(t, getcwd(cwd, sizeof cwd) != NULL);
    UT_EQ_INT(t, 0, chdir(f.dir));
    snprintf(out2, sizeof out2, "%s/exported2.safetensors", f.voices);
    UT_EQ_INT(t, 0, pke_export_voice(f.e, "outside.wav", out2, err, sizeof err));
    UT_EQ_INT(t, 0, chdir(cwd));
    cap x = {0};
    UT_EQ_INT(t, 0, say(f.e, "A cloned voice.", "exported2", 1, 5, &x, err, sizeof err));
    UT_CHECK(t, x.n == b.n && max_abs_diff(&x, &b) < 1e-5);
    free(x.v);
    memset(&x, 0, sizeof x);
    UT_EQ_INT(t, 0, say(f.e, "A cloned voice.", "exported", 1, 5, &x, err, sizeof err));
    UT_CHECK(t, x.n == b.n && max_abs_diff(&x, &b) < 1e-5);
    free(a.v), free(b.v), free(c.v), free(x.v);
    fx_close(&f);
}

static void t_refusals(ut_ctx *t)
{
    fx f;
    if (fx_open(t, &f, 0, NULL)) return;
    char err[256], link[400];
    snprintf(link, sizeof link, "%s/escape.wav", f.voices);
    UT_EQ_INT(t, 0, symlink(f.outside, link));
    snprintf(link, sizeof link, "%s/inside.wav", f.voices);
    UT_EQ_INT(t, 0, symlink("clone.wav", link));
    static const struct {
        const char *v;
        int want;
    } cases[] = {
        {"../outside", ERR_INVAL},        {"../outside.wav", ERR_INVAL}, {"voices/../a", ERR_INVAL},
        {"a/b", ERR_INVAL},               {".hidden", ERR_INVAL},        {"escape", ERR_INVAL},
        {"escape.wav", ERR_INVAL},        {"nobody", ERR_NOTFOUND},      {"alba", ERR_NOTFOUND},
        {"https://x.y/z.wav", ERR_INVAL}, {"hf://a/b/c.wav", ERR_INVAL}, {"/etc/passwd", ERR_INVAL},
        {"a\\b", ERR_INVAL},              {"inside", 0},                 {"a", 0},
        {"clone.wav", 0},                 {"a.safetensors", 0},          {"alloy", 0},
        {"shimmer", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int rc = eng_check_voice(f.e, cases[i].v, err, sizeof err);
        if (rc != cases[i].want) printf("    voice '%s': %s\n", cases[i].v, err);
        UT_EQ_INT(t, cases[i].want, rc);
    }
    /* synth refuses the same way (400s), and speaks through the in-folder link */
    cap c = {0};
    UT_EQ_INT(t, ERR_INVAL, say(f.e, "Hi.", "escape", 0, 0, &c, err, sizeof err));
    UT_EQ_INT(t, ERR_NOTFOUND, say(f.e, "Hi.", "nobody", 0, 0, &c, err, sizeof err));
    UT_EQ_INT(t, 0, c.calls);
    UT_EQ_INT(t, 0, say(f.e, "Hi.", "inside", 0, 0, &c, err, sizeof err));
    UT_CHECK(t, c.calls > 0);
    free(c.v);
    /* OpenAI names without built-ins speak with the default voice, same samples (seeded) */
    cap d1 = {0}, d2 = {0};
    UT_EQ_INT(t, 0, say(f.e, "Hi.", "alloy", 1, 7, &d1, err, sizeof err));
    UT_EQ_INT(t, 0, say(f.e, "Hi.", NULL, 1, 7, &d2, err, sizeof err));
    UT_CHECK(t, d1.calls > 0 && d1.n == d2.n && d1.n > 0 && !memcmp(d1.v, d2.v, d1.n * sizeof(float)));
    free(d1.v);
    free(d2.v);
    fx_close(&f);
}

static void t_cancel(ut_ctx *t)
{
    for (int piped = 0; piped < 2; piped++) {
        fx f;
        if (fx_open(t, &f, piped, NULL)) return;
        char err[256];
        cap c = {0};
        c.stop_after = 2;
        int rc = say(f.e, "One sentence here. Another sentence there. And a third one too.", "a", 1, 1, &c, err,
                     sizeof err);
        UT_EQ_INT(t, ERR_CANCEL, rc);
        UT_EQ_INT(t, 2, c.calls);
        /* the cancel flag stops before the first frame */
        atomic_int flag = 1;
        cap d = {0};
        eng_synth_req r = {0};
        r.text = "Never spoken.";
        r.voice = "a";
        r.speed = 1;
        r.cancel = &flag;
        UT_EQ_INT(t, ERR_CANCEL, eng_synth(f.e, &r, cap_sink, &d, err, sizeof err));
        UT_EQ_INT(t, 0, d.calls);
        free(c.v), free(d.v);
        fx_close(&f);
    }
}

static void t_chunks(ut_ctx *t)
{
    fx f;
    if (fx_open(t, &f, 1, NULL)) return;
    /* > 50 tokens: several chunks, each a fresh decoder; every frame 1920 samples */
    char text[2048] = "";
    for (int i = 0; i < 12; i++)
        strcat(text, "The quick brown fox jumps over the lazy dog near the river bank. ");
    cap c = {0};
    char err[256];
    int rc = say(f.e, text, "a", 1, 3, &c, err, sizeof err);
    if (rc) printf("    synth: %s\n", err);
    UT_EQ_INT(t, 0, rc);
    UT_EQ_INT(t, 0, c.bad_sizes);
    printf("    %d frames for %zu bytes of text\n", c.calls, strlen(text));
    UT_CHECK(t, c.calls >= 3 * 4); /* at least 4 chunks of >= 3 frames */
    free(c.v);
    /* text that speaks nothing is the client's fault */
    cap d = {0};
    UT_EQ_INT(t, ERR_INVAL, say(f.e, "   ", "a", 0, 0, &d, err, sizeof err));
    fx_close(&f);
}

static void t_first_chunk(ut_ctx *t)
{
    /* two 6-word sentences (> 16 tiny tokens, < 50): upstream makes one chunk (3 frames on
     * the tiny model); the latency split makes two (3 + 3) */
    const char *text = "The fox jumps over the dog. The cat sleeps in the sun.";
    char model[512], err[256];
    ut_path(model, sizeof model, "reference/pocket-tts");
    int want[2] = {6, 3};
    for (int k = 0; k < 2; k++) {
        pke_options o = {0};
        o.model_dir = model;
        o.state_cache_dir = "";
        o.first_chunk_tokens = k ? -1 : 0;
        engine *e = NULL;
        UT_EQ_INT(t, 0, pke_new(&e, &o, err, sizeof err));
        if (!e) return;
        cap c = {0};
        UT_EQ_INT(t, 0, say(e, text, "none", 1, 1, &c, err, sizeof err));
        UT_EQ_INT(t, want[k], c.calls);
        free(c.v);
        eng_free(e);
    }
}

static void t_offline(ut_ctx *t)
{
    /* no local folder, offline, empty caches: fails at once, saying why (the registry then
     * falls back to espeak and reports the reason) */
    char dir[] = "/tmp/ut-pocket-off-XXXXXX", err[1024];
    if (!mkdtemp(dir)) return;
    hf_options ho = {0};
    ho.cache_dir = dir;
    ho.offline = 1;
    ho.hub_cache = "";
    ho.no_env = 1;
    pke_options o = {0};
    o.language = "english_2026-04";
    o.hf = &ho;
    engine *e = NULL;
    int rc = pke_new(&e, &o, err, sizeof err);
    UT_EQ_INT(t, ERR_NOTFOUND, rc);
    UT_CHECK(t, e == NULL);
    UT_CHECK(t, strstr(err, "weights") != NULL);
    o.language = "klingon";
    UT_EQ_INT(t, ERR_NOTFOUND, pke_new(&e, &o, err, sizeof err));
    UT_CHECK(t, strstr(err, "klingon") != NULL);
    rm_rf(dir);
}

typedef struct par_job {
    engine *e;
    const char *voice;
    uint64_t seed;
    cap out;
    int rc;
} par_job;

static void *par_main(void *u)
{
    par_job *j = u;
    char err[256];
    j->rc = say(j->e, "Two requests at once, both exact.", j->voice, 1, j->seed, &j->out, err, sizeof err);
    return NULL;
}

static void t_parallel(ut_ctx *t)
{
    /* concurrent requests on one engine (shared model, voice cache, pool) give exactly the
     * audio each gives alone; the first use of 'clone' is encoded by two threads at once */
    fx f;
    if (fx_open(t, &f, 1, NULL)) return;
    par_job j[4] = {{f.e, "a", 1, {0}, 0}, {f.e, "clone", 2, {0}, 0}, {f.e, "clone", 3, {0}, 0}, {f.e, "a", 4, {0}, 0}};
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, par_main, &j[i]);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) {
        UT_EQ_INT(t, 0, j[i].rc);
        cap alone = {0};
        char err[256];
        UT_EQ_INT(t, 0, say(f.e, "Two requests at once, both exact.", j[i].voice, 1, j[i].seed, &alone, err, sizeof err));
        UT_CHECK(t, alone.n == j[i].out.n && !memcmp(alone.v, j[i].out.v, alone.n * sizeof *alone.v));
        free(alone.v);
        free(j[i].out.v);
    }
    UT_EQ_INT(t, 2, pke_cached_voices(f.e));
    fx_close(&f);
}

/* ---- voices.c alone ---------------------------------------------------------------------- */

static void t_lru(ut_ctx *t)
{
    pkv_store *s = NULL;
    char err[128];
    pkv_options o = {0};
    o.cache_entries = 2;
    UT_EQ_INT(t, 0, pkv_new(&s, &o, err, sizeof err));
    int *v1 = malloc(sizeof *v1), *v2 = malloc(sizeof *v2), *v3 = malloc(sizeof *v3), *v4 = malloc(sizeof *v4);
    *v1 = 1, *v2 = 2, *v3 = 3, *v4 = 4;
    pkv_entry *e1 = pkv_cache_put(s, "k1", v1, 10, free);
    pkv_entry *e2 = pkv_cache_put(s, "k2", v2, 10, free);
    pkv_cache_release(s, e2);
    pkv_entry *e3 = pkv_cache_put(s, "k3", v3, 10, free); /* evicts k1 (held: stays alive) */
    UT_EQ_INT(t, 2, pkv_cache_count(s));
    UT_EQ_INT(t, 1, *(int *)pkv_entry_value(e1));
    UT_CHECK(t, pkv_cache_get(s, "k1") == NULL);
    pkv_cache_release(s, e1); /* freed now (ASan checks) */
    pkv_entry *g2 = pkv_cache_get(s, "k2");
    UT_CHECK(t, g2 && *(int *)pkv_entry_value(g2) == 2);
    pkv_cache_release(s, g2);
    /* same key again: the existing value wins, the new one is freed */
    pkv_entry *e3b = pkv_cache_put(s, "k3", v4, 10, free);
    UT_CHECK(t, e3b == e3);
    pkv_cache_release(s, e3);
    pkv_cache_release(s, e3b);
    pkv_free(s);
}

static void put16(unsigned char *p, unsigned v) { p[0] = v & 255, p[1] = (v >> 8) & 255; }
static void put32(unsigned char *p, unsigned v) { put16(p, v & 0xffff), put16(p + 2, v >> 16); }

static void t_wav(ut_ctx *t)
{
    /* 16-bit stereo, 24-bit mono, float mono: known samples come back */
    unsigned char w[44 + 64];
    static const struct {
        int tag, bits, ch;
    } f[] = {{1, 16, 2}, {1, 24, 1}, {3, 32, 1}};
    for (int k = 0; k < 3; k++) {
        int bps = f[k].bits / 8, frames = 4, ch = f[k].ch, dl = frames * ch * bps;
        memset(w, 0, sizeof w);
        memcpy(w, "RIFF", 4), put32(w + 4, (unsigned)(36 + dl)), memcpy(w + 8, "WAVE", 4);
        memcpy(w + 12, "fmt ", 4), put32(w + 16, 16), put16(w + 20, (unsigned)f[k].tag), put16(w + 22, (unsigned)ch);
        put32(w + 24, 16000), put32(w + 28, (unsigned)(16000 * ch * bps)), put16(w + 32, (unsigned)(ch * bps));
        put16(w + 34, (unsigned)f[k].bits), memcpy(w + 36, "data", 4), put32(w + 40, (unsigned)dl);
        for (int i = 0; i < frames * ch; i++) {
            float x = (i % 2 ? -0.5f : 0.25f);
            unsigned char *p = w + 44 + i * bps;
            if (f[k].tag == 3) {
                unsigned u;
                memcpy(&u, &x, 4);
                put32(p, u);
            } else if (f[k].bits == 16) {
                put16(p, (unsigned)(int)(x * 32768) & 0xffff);
            } else {
                int v = (int)(x * 8388608);
                p[0] = v & 255, p[1] = (v >> 8) & 255, p[2] = (v >> 16) & 255;
            }
        }
        float *pcm = NULL;
        size_t n = 0;
        int chn = 0, rate = 0;
        char err[128];
        UT_EQ_INT(t, 0, pkv_decode_audio(w, 44 + (size_t)dl, PKV_WAV, &pcm, &n, &chn, &rate, err, sizeof err));
        UT_EQ_INT(t, frames, n);
        UT_EQ_INT(t, ch, chn);
        UT_EQ_INT(t, 16000, rate);
        for (int i = 0; pcm && i < frames * ch; i++) UT_NEAR(t, (i % 2 ? -0.5 : 0.25), pcm[i], 1e-6);
        free(pcm);
    }
    float *pcm = NULL;
    size_t n;
    int chn, rate;
    char err[128];
    UT_EQ_INT(t, ERR_FORMAT, pkv_decode_audio((const unsigned char *)"RIFFxxxxWAVE", 12, PKV_WAV, &pcm, &n, &chn, &rate,
                                              err, sizeof err));
    UT_EQ_INT(t, ERR_FORMAT, pkv_decode_audio((const unsigned char *)"not an mp3 at all", 17, PKV_MP3, &pcm, &n, &chn,
                                              &rate, err, sizeof err));
    UT_EQ_INT(t, ERR_FORMAT, pkv_decode_audio((const unsigned char *)"fLaC", 4, PKV_FLAC, &pcm, &n, &chn, &rate, err,
                                              sizeof err));
}

static int buf_sink(void *u, const void *p, size_t n) { return buf_append(u, p, n); }

static void t_mp3_flac(ut_ctx *t)
{
    /* 1 s of a 440 Hz tone at 24 kHz through our own encoders, then back */
    enum { N = 24000 };
    float *x = malloc(N * sizeof *x);
    for (int i = 0; i < N; i++) x[i] = 0.5f * sinf(2 * 3.14159265f * 440 * i / 24000.f);
    const aenc_format fm[2] = {AENC_MP3, AENC_FLAC};
    const int pf[2] = {PKV_MP3, PKV_FLAC};
    for (int k = 0; k < 2; k++) {
        buf b;
        buf_init(&b, 16 << 20);
        aenc *e = NULL;
        aenc_opts o = {24000, 0, 0};
        char err[256];
        UT_EQ_INT(t, 0, aenc_open(&e, fm[k], &o, buf_sink, &b, err, sizeof err));
        if (!e) continue;
        UT_EQ_INT(t, 0, aenc_write(e, x, N, err, sizeof err));
        UT_EQ_INT(t, 0, aenc_close(e, err, sizeof err));
        aenc_free(e);
        float *pcm = NULL;
        size_t n = 0;
        int ch = 0, rate = 0;
        int rc = pkv_decode_audio((const unsigned char *)b.data, b.len, pf[k], &pcm, &n, &ch, &rate, err, sizeof err);
        if (rc) printf("    %s: %s\n", k ? "flac" : "mp3", err);
        UT_EQ_INT(t, 0, rc);
        UT_EQ_INT(t, 1, ch);
        UT_EQ_INT(t, 24000, rate);
        UT_CHECK(t, n >= N && n < N + 4000); /* mp3 adds encoder delay/padding */
        double e2 = 0; /* the middle: mp3 has encoder delay and padding at the ends */
        for (size_t i = 4000; i < 20000 && i < n; i++) e2 += (double)pcm[i] * pcm[i];
        double rms = sqrt(e2 / 16000.0);
        UT_NEAR(t, 0.5 / sqrt(2.0), rms, 0.03);
        free(pcm);
        buf_free(&b);
    }
    free(x);
}

static void t_builtin_uri(ut_ctx *t)
{
    char u[512], err[64];
    UT_EQ_INT(t, 0, pkv_builtin_uri("english", "alba", u, sizeof u, err, sizeof err));
    UT_EQ_STR(t,
              "hf://kyutai/pocket-tts-without-voice-cloning/languages/english/embeddings/alba.safetensors@"
              "e041936c75475d350b405bc870bcf7c22da4e9e6",
              u);
    int n = 0;
    while (pkv_builtin_name(n)) n++;
    UT_EQ_INT(t, 26, n);
    /* a store with built-ins resolves them before the folder, and lists them */
    pkv_store *s = NULL;
    pkv_options o = {0};
    o.builtin_lang = "english_2026-04";
    UT_EQ_INT(t, 0, pkv_new(&s, &o, err, sizeof err));
    pkv_source src;
    UT_EQ_INT(t, 0, pkv_resolve(s, "javert", &src, err, sizeof err));
    UT_EQ_INT(t, PKV_BUILTIN, src.kind);
    UT_CHECK(t, strstr(src.loc, "/english_2026-04/embeddings/javert.safetensors@") != NULL);
    /* URLs refused unless allowed; malformed hf:// refused even then (400, not a fetch) */
    UT_EQ_INT(t, ERR_INVAL, pkv_resolve(s, "hf://a/b/v.wav", &src, err, sizeof err));
    pkv_free(s);
    o.allow_urls = 1;
    UT_EQ_INT(t, 0, pkv_new(&s, &o, err, sizeof err));
    UT_EQ_INT(t, 0, pkv_resolve(s, "hf://a/b/v.wav@main", &src, err, sizeof err));
    UT_EQ_INT(t, PKV_URL, src.kind);
    UT_EQ_INT(t, PKV_WAV, src.fmt);
    UT_EQ_INT(t, ERR_INVAL, pkv_resolve(s, "hf://a/b/../v.wav", &src, err, sizeof err));
    UT_EQ_INT(t, ERR_INVAL, pkv_resolve(s, "hf://a", &src, err, sizeof err));
    UT_EQ_INT(t, ERR_INVAL, pkv_resolve(s, "https://x.y/voice.txt", &src, err, sizeof err));
    eng_voice *v = NULL;
    size_t nv = 0;
    UT_EQ_INT(t, 0, pkv_list(s, &v, &nv, err, sizeof err));
    UT_EQ_INT(t, 26 + 13, nv); /* built-ins, then the 13 OpenAI aliases */
    UT_EQ_STR(t, "builtin", v[0].type);
    UT_EQ_STR(t, "alloy", v[26].id);
    UT_EQ_STR(t, "alias", v[26].type);
    UT_EQ_STR(t, "Alloy (Alba)", v[26].name);
    UT_EQ_STR(t, "cedar", v[38].id);
    free(v);
    pkv_free(s);
    /* every OpenAI name maps to a distinct built-in */
    static const char *const oai[] = {"alloy", "ash",  "ballad", "coral", "echo",  "fable", "nova",
                                      "onyx",  "sage", "shimmer", "verse", "marin", "cedar"};
    for (size_t i = 0; i < 13; i++) {
        const char *a = pkv_alias(oai[i]);
        UT_CHECK(t, a != NULL);
        int known = 0;
        for (int b = 0; a && pkv_builtin_name(b); b++) known |= !strcmp(a, pkv_builtin_name(b));
        UT_CHECK(t, known);
        for (size_t j = 0; j < i; j++) UT_CHECK(t, a && strcmp(a, pkv_alias(oai[j])) != 0);
    }
    UT_CHECK(t, pkv_alias("alba") == NULL && pkv_alias("Alloy") == NULL && pkv_alias(NULL) == NULL);
}

/* Mimi batches: frames decoded several per call when the decoder is behind must give the
 * samples of frame-by-frame decoding. mimi_batch -3 forces batches (waits for 3 frames);
 * compared with the sequential engine and with batching off, over several chunks. */
static void t_mimi_batch(ut_ctx *t)
{
    char model[512], err[256];
    ut_path(model, sizeof model, "reference/pocket-tts");
    char text[1024] = "";
    for (int i = 0; i < 4; i++) strcat(text, "The quick brown fox jumps over the lazy dog near the river bank. ");
    const int pipe[3] = {0, 1, 1}, batch[3] = {1, 1, -3};
    cap c[3] = {{0}, {0}, {0}};
    for (int k = 0; k < 3; k++) {
        pke_options o = {0};
        o.model_dir = model;
        o.state_cache_dir = "";
        o.threads = 1;
        o.pipeline = pipe[k];
        o.mimi_batch = batch[k];
        engine *e = NULL;
        UT_EQ_INT(t, 0, pke_new(&e, &o, err, sizeof err));
        if (!e) return;
        int rc = say(e, text, "none", 1, 11, &c[k], err, sizeof err);
        if (rc) printf("    synth %d: %s\n", k, err);
        UT_EQ_INT(t, 0, rc);
        eng_free(e);
    }
    printf("    %d frames\n", c[0].calls);
    UT_CHECK(t, c[0].calls >= 8);
    for (int k = 1; k < 3; k++) {
        UT_EQ_INT(t, c[0].n, c[k].n);
        UT_EQ_INT(t, 0, c[k].bad_sizes);
        if (c[0].n == c[k].n && memcmp(c[0].v, c[k].v, c[0].n * sizeof(float)))
            ut_fail(t, __FILE__, __LINE__, "config %d: samples differ from sequential (max |diff| %g)", k,
                    max_abs_diff(&c[0], &c[k]));
    }
    for (int k = 0; k < 3; k++) free(c[k].v);
}

static const ut_case cases[] = {
    {"load", t_load},         {"stream_frames", t_stream_frames}, {"seed", t_seed},     {"clone", t_clone},
    {"refusals", t_refusals}, {"cancel", t_cancel},               {"chunks", t_chunks}, {"lru", t_lru},
    {"wav", t_wav},           {"builtin_uri", t_builtin_uri},     {"first_chunk", t_first_chunk},
    {"offline", t_offline},   {"mp3_flac", t_mp3_flac},          {"parallel", t_parallel},
    {"mimi_batch", t_mimi_batch},
};
UT_SUITE(pocket, cases)
