/* registry.c — see registry.h.
 *
 * The beep engine: for each whitespace-separated word of the input it emits one chunk of
 * 40 ms per character of a sine tone (pitch picked by the voice), followed by 60 ms of
 * silence, so output length grows with the text, chunks arrive one by one, and
 * cancellation can be observed between chunks. It honours speed natively
 * (ENG_CAP_SPEED) by shortening every chunk.
 */
#include "engine/registry.h"
#include "core/err.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#if defined(__has_include)
#if __has_include("engine/espeak/espeak.h")
#include "engine/espeak/espeak.h"
#define REG_HAVE_ESPEAK 1
#endif
#if __has_include("engine/kokoro/kkengine.h")
#include "engine/kokoro/kkengine.h"
#define REG_HAVE_KOKORO 1
#endif
#if __has_include("engine/pocket/pocket.h")
#include "engine/pocket/pocket.h"
#define REG_HAVE_POCKET 1
#endif
#endif

#if defined(REG_HAVE_KOKORO) && defined(REG_HAVE_ESPEAK) && defined(ESP_USE_LOCK)
/* Kokoro's G2P calls libespeak-ng for unknown words: it takes the espeak engine's turn. */
static void reg_esp_lock(void *ud) { esp_use_begin((engine *)ud); }
static void reg_esp_unlock(void *ud) { esp_use_end((engine *)ud); }
#endif

struct reg_registry {
    engine *eng[REG_MAX_ENGINES];
    size_t n;
    size_t def;
    char reason[256];
};

int reg_new(reg_registry **out, char *err, size_t errlen)
{
    reg_registry *r = calloc(1, sizeof *r);
    if (!r) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    *out = r;
    return 0;
}

void reg_free(reg_registry *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n; i++) eng_free(r->eng[i]);
    free(r);
}

int reg_add(reg_registry *r, engine *e, int make_default, char *err, size_t errlen)
{
    if (r->n >= REG_MAX_ENGINES) {
        eng_free(e);
        return err_set(err, errlen, ERR_TOOBIG, "too many engines (max %d)", REG_MAX_ENGINES);
    }
    for (size_t i = 0; i < r->n; i++) {
        if (!strcmp(r->eng[i]->id, e->id)) {
            int rc = err_set(err, errlen, ERR_INVAL, "engine id '%s' added twice", e->id);
            eng_free(e);
            return rc;
        }
    }
    if (make_default) r->def = r->n;
    r->eng[r->n++] = e;
    return 0;
}

size_t reg_count(const reg_registry *r) { return r ? r->n : 0; }
engine *reg_get(const reg_registry *r, size_t i) { return i < r->n ? r->eng[i] : NULL; }
engine *reg_default(const reg_registry *r) { return r && r->n ? r->eng[r->def] : NULL; }
const char *reg_default_reason(const reg_registry *r) { return r ? r->reason : ""; }

/* "pocket-tts-<config>": the config name is the word after "pocket-tts " in e->desc. */
static int matches_config_id(const engine *e, const char *m)
{
    size_t idn = strlen(e->id);
    if (strncasecmp(m, e->id, idn) || m[idn] != '-' || !m[idn + 1] || !e->desc) return 0;
    const char *d = e->desc;
    if (strncmp(d, e->id, idn) || d[idn] != ' ') return 0;
    d += idn + 1;
    size_t k = strcspn(d, " ,;:()");
    return k > 0 && strlen(m + idn + 1) == k && !strncasecmp(m + idn + 1, d, k);
}

int reg_is_openai_model(const char *m)
{
    return m && (!strcmp(m, "tts-1") || !strcmp(m, "tts-1-hd") || !strcmp(m, "tts-1-1106") ||
                 !strcmp(m, "tts-1-hd-1106") || !strncmp(m, "gpt-4o-mini-tts", 15));
}

engine *reg_find_model(const reg_registry *r, const char *m)
{
    if (!m || !*m || reg_is_openai_model(m)) return reg_default(r);
    for (size_t i = 0; i < r->n; i++)
        if (!strcasecmp(r->eng[i]->id, m)) return r->eng[i];
    for (size_t i = 0; i < r->n; i++)
        if (matches_config_id(r->eng[i], m)) return r->eng[i];
    return NULL;
}

/* ---- beep ---------------------------------------------------------------------------- */

typedef struct beep {
    engine base;
} beep;

static const struct {
    const char *id, *name, *gender, *type;
    float hz;
} beep_voices[] = {
    {"beep", "Beep (440 Hz)", "", "builtin", 440.f},
    {"beep-low", "Beep low (220 Hz)", "male", "builtin", 220.f},
    {"beep-high", "Beep high (880 Hz)", "female", "builtin", 880.f},
    {"alloy", "alloy (beep)", "", "alias", 440.f},
    {"ash", "ash (beep)", "male", "alias", 247.f},
    {"ballad", "ballad (beep)", "male", "alias", 262.f},
    {"coral", "coral (beep)", "female", "alias", 523.f},
    {"echo", "echo (beep)", "male", "alias", 196.f},
    {"fable", "fable (beep)", "", "alias", 330.f},
    {"nova", "nova (beep)", "female", "alias", 587.f},
    {"onyx", "onyx (beep)", "male", "alias", 165.f},
    {"sage", "sage (beep)", "female", "alias", 494.f},
    {"shimmer", "shimmer (beep)", "female", "alias", 659.f},
    {"verse", "verse (beep)", "male", "alias", 294.f},
    {"marin", "marin (beep)", "female", "alias", 698.f},
    {"cedar", "cedar (beep)", "male", "alias", 185.f},
};
#define BEEP_NVOICES (sizeof beep_voices / sizeof beep_voices[0])

static int beep_find(const char *v)
{
    if (!v || !*v) return 0;
    for (size_t i = 0; i < BEEP_NVOICES; i++)
        if (!strcasecmp(beep_voices[i].id, v)) return (int)i;
    return -1;
}

static int beep_list(engine *e, eng_voice **out, size_t *n, char *err, size_t errlen)
{
    eng_voice *v = calloc(BEEP_NVOICES, sizeof *v);
    if (!v) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < BEEP_NVOICES; i++) {
        snprintf(v[i].id, sizeof v[i].id, "%s", beep_voices[i].id);
        snprintf(v[i].name, sizeof v[i].name, "%s", beep_voices[i].name);
        snprintf(v[i].lang, sizeof v[i].lang, "en-US");
        snprintf(v[i].gender, sizeof v[i].gender, "%s", beep_voices[i].gender);
        snprintf(v[i].type, sizeof v[i].type, "%s", beep_voices[i].type);
    }
    *out = v;
    *n = BEEP_NVOICES;
    return 0;
}

static int beep_check(engine *e, const char *voice, char *err, size_t errlen)
{
    if (beep_find(voice) < 0)
        return err_set(err, errlen, ERR_NOTFOUND, "voice '%s' not found", voice);
    return 0;
}

static int beep_synth(engine *e, const eng_synth_req *req, eng_sink_fn sink, void *user,
                      char *err, size_t errlen)
{
    int vi = beep_find(req->voice);
    if (vi < 0) return err_set(err, errlen, ERR_NOTFOUND, "voice '%s' not found", req->voice);
    float speed = req->speed > 0 ? req->speed : 1.0f;
    float hz = beep_voices[vi].hz;
    const char *p = req->text;
    float buf[4096];
    double phase = 0;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
        if (!*p) break;
        size_t wl = 0;
        while (p[wl] && p[wl] != ' ' && p[wl] != '\t' && p[wl] != '\n' && p[wl] != '\r') wl++;
        size_t chars = 0;
        for (size_t i = 0; i < wl; i++) chars += ((unsigned char)p[i] & 0xC0) != 0x80;
        p += wl;
        size_t tone = (size_t)(0.040 * ENG_SAMPLE_RATE * (double)chars / speed);
        size_t gap = (size_t)(0.060 * ENG_SAMPLE_RATE / speed);
        size_t total = tone + gap, done = 0;
        while (done < total) {
            if (req->cancel && atomic_load(req->cancel)) return err_set(err, errlen, ERR_CANCEL, "cancelled");
            size_t n = total - done < 4096 ? total - done : 4096;
            for (size_t i = 0; i < n; i++) {
                size_t k = done + i;
                if (k < tone) {
                    buf[i] = (float)(0.3 * sin(phase));
                    phase += 2.0 * M_PI * hz / ENG_SAMPLE_RATE;
                } else {
                    buf[i] = 0.f;
                }
            }
            if (sink(user, buf, n)) return err_set(err, errlen, ERR_CANCEL, "cancelled by sink");
            done += n;
        }
    }
    return 0;
}

static void beep_destroy(engine *e) { free(e); }

static const eng_ops beep_ops = {beep_list, beep_check, beep_synth, beep_destroy};

int reg_beep_new(engine **out, char *err, size_t errlen)
{
    beep *b = calloc(1, sizeof *b);
    if (!b) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    b->base.ops = &beep_ops;
    b->base.id = "beep";
    b->base.desc = "beep: built-in test tones (not speech)";
    b->base.caps = ENG_CAP_SPEED;
    b->base.max_parallel = 64;
    b->base.default_voice = "beep";
    *out = &b->base;
    return 0;
}

/* ---- loading ------------------------------------------------------------------------- */

static void warn_add(char *warn, size_t warnlen, const char *id, const char *why)
{
    if (!warn || !warnlen) return;
    size_t have = strnlen(warn, warnlen);
    if (have + 1 >= warnlen) return;
    snprintf(warn + have, warnlen - have, "%s%s: %s", have ? "; " : "", id, why);
}

int reg_load(reg_registry **out, const reg_options *o, char *warn, size_t warnlen, char *err,
             size_t errlen)
{
    reg_registry *r = NULL;
    int rc = reg_new(&r, err, errlen);
    if (rc) return rc;
    if (warn && warnlen) warn[0] = 0;
    char why[256];
    engine *e;
    int have_espeak = 0, have_pocket = 0;
    engine *esp = NULL;
    (void)esp;
    (void)have_espeak;
    (void)have_pocket;
#ifdef REG_HAVE_ESPEAK
    esp_options eo = {0};
    eo.data_path = (o && o->espeak_data && *o->espeak_data) ? o->espeak_data : NULL;
    if ((rc = esp_engine_new(&e, &eo, why, sizeof why)) == 0) {
        esp = e;
        if ((rc = reg_add(r, e, 0, why, sizeof why))) {
            warn_add(warn, warnlen, "espeak", why);
            esp = NULL;
        } else {
            have_espeak = 1;
        }
    } else {
        warn_add(warn, warnlen, "espeak", why);
    }
#else
    warn_add(warn, warnlen, "espeak", "not built in yet");
#endif
#ifdef REG_HAVE_POCKET
    {
        hf_options ho;
        memset(&ho, 0, sizeof ho);
        ho.cache_dir = o && o->cache_dir && *o->cache_dir ? o->cache_dir : NULL;
        ho.offline = o ? o->offline : 0;
        pke_options po;
        memset(&po, 0, sizeof po);
        po.model_dir = o && o->model_dir && *o->model_dir ? o->model_dir : NULL;
        po.language = o && o->language && *o->language ? o->language : NULL;
        po.voices_dir = o && o->voices_dir && *o->voices_dir ? o->voices_dir : NULL;
        po.allow_url_voices = o ? o->allow_url_voices : 0;
        po.allow_abs_voice_paths = o ? o->allow_abs_voice_paths : 0;
        po.threads = o ? o->threads : 0;
        po.quantize = o ? o->quantize : 0;
        po.pipeline = -1;
        po.hf = &ho;
        if ((rc = pke_new(&e, &po, why, sizeof why)) == 0) {
            if ((rc = reg_add(r, e, 1, why, sizeof why)))
                warn_add(warn, warnlen, "pocket-tts", why);
            else
                have_pocket = 1;
            if (have_pocket) snprintf(r->reason, sizeof r->reason, "pocket-tts weights loaded");
        } else {
            warn_add(warn, warnlen, "pocket-tts", why);
            snprintf(r->reason, sizeof r->reason, "pocket-tts unavailable: %.200s", why);
        }
    }
#else
    snprintf(r->reason, sizeof r->reason, "pocket-tts not built in");
#endif
#ifdef REG_HAVE_KOKORO
    if (o && ((o->kokoro_dir && *o->kokoro_dir) || (o->kokoro_weights && *o->kokoro_weights))) {
        hf_options kh;
        memset(&kh, 0, sizeof kh);
        kh.cache_dir = o->cache_dir && *o->cache_dir ? o->cache_dir : NULL;
        kh.offline = o->offline;
        kke_options ko;
        memset(&ko, 0, sizeof ko);
        ko.dir = o->kokoro_dir && *o->kokoro_dir ? o->kokoro_dir : NULL;
        ko.weights = o->kokoro_weights && *o->kokoro_weights ? o->kokoro_weights : NULL;
        ko.espeak_ready = have_espeak;
        ko.espeak_data = o->espeak_data && *o->espeak_data ? o->espeak_data : NULL;
#if defined(REG_HAVE_ESPEAK) && defined(ESP_USE_LOCK)
        if (esp) {
            ko.espeak_hooks.lock = reg_esp_lock;
            ko.espeak_hooks.unlock = reg_esp_unlock;
            ko.espeak_hooks.ud = esp;
        }
#endif
        ko.hf = &kh;
        if ((rc = kke_new(&e, &ko, why, sizeof why)) == 0) {
            /* never over pocket-tts; over espeak only when pocket-tts is missing */
            if ((rc = reg_add(r, e, !have_pocket, why, sizeof why)))
                warn_add(warn, warnlen, "kokoro", why);
            else if (!have_pocket) {
                char prev[256];
                snprintf(prev, sizeof prev, "%s", r->reason);
                snprintf(r->reason, sizeof r->reason, "kokoro weights loaded (%.200s)", prev);
            }
        } else {
            warn_add(warn, warnlen, "kokoro", why);
        }
    }
#endif
    if (o && o->test_engine) {
        if ((rc = reg_beep_new(&e, why, sizeof why)) == 0) rc = reg_add(r, e, 0, why, sizeof why);
        if (rc) warn_add(warn, warnlen, "beep", why);
    }
    if (r->n == 0) {
        reg_free(r);
        return err_set(err, errlen, ERR_NOTFOUND, "no speech engine could be loaded (%s)",
                       warn && *warn ? warn : "none built in");
    }
    *out = r;
    return 0;
}
