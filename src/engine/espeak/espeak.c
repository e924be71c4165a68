/* espeak.c — libespeak-ng behind engine.h (see espeak.h for what clients see).
 *
 * Pipeline per request: text -> textsplit chunks (<= ESP_CHUNK_MAX bytes) -> for each
 * chunk, under the engine's turn lock: select voice, set rate, espeak_Synth() in
 * synchronous mode whose callback copies int16 PCM into a per-request buffer -> turn lock
 * released -> int16 -> float -> soxr 22050 -> 24000 (flushed at the chunk's end) ->
 * time-stretch correcting the length to exactly 1/speed -> the caller's sink.
 *
 * Speed: espeak's words-per-minute rate is neither proportional (350 wpm is 2.2x faster
 * than 175 for en-us but 2.0x for en-us+f3) nor reaches 0.25x. So for speed != 1 each
 * chunk is rendered twice under one turn: at the normal rate (only its length is kept)
 * and at 175*speed clamped to 80..450 wpm; libsonic then stretches the second rendering
 * to (normal length) / speed. Natural-sounding rate change from espeak, exact duration
 * from sonic; the extra rendering costs ~1% of real time.
 *
 * Why buffer a whole chunk before sending: the sink may block on a slow client, and
 * libespeak-ng is one process-wide instance; sending from inside espeak's callback would
 * let one slow client stall every other request. A chunk is a sentence (or a piece of a
 * long one), espeak renders it 100-300x faster than real time, so the first audio still
 * leaves within milliseconds and the buffer is bounded (ESP_MAX_CHUNK_SEC of audio).
 *
 * Fairness: the turn lock is a ticket lock (FIFO), so concurrent requests alternate
 * sentence by sentence instead of whoever re-locks first winning.
 *
 * Not bit-reproducible within a process: libespeak-ng 1.51 keeps pitch-flutter phase in a
 * function-static (wavegen.c AdvanceParameters: static Flutter_ix) and other wavegen state
 * across calls, with no API to reset it, and draws breath noise from libc rand(). The same
 * request gives the same words and length (+-0.1%) but not the same bytes; the first
 * request of a fresh process is reproducible. Compare espeak audio by length and ASR.
 *
 * Invariants: every libespeak-ng call and cur_voice are touched only by the ticket
 * holder; the callback reaches per-request state only through espeak's user_data; the
 * voice table is built once in esp_engine_new() and read-only afterwards.
 */
#include "engine/espeak/espeak.h"

#include <espeak-ng/speak_lib.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "audio/resample.h"
#include "audio/speed.h"
#include "core/err.h"
#include "core/textsplit.h"

#define ESP_CHUNK_MAX 300      /* text bytes per espeak_Synth() call */
#define ESP_MAX_CHUNK_SEC 300  /* hard cap on the audio of one chunk (digits spelt out, ...) */
#define ESP_RATE_NORMAL 175    /* espeak's default words per minute = speed 1.0 */
#define ESP_RATE_MIN 80        /* espeakRATE_MINIMUM */
#define ESP_RATE_MAX 450       /* espeakRATE_MAXIMUM; beyond it espeak itself uses sonic */
#define ESP_STRETCH_MIN 0.005f /* speed corrections below 0.5% are not worth a filter */
#define ESP_VOICE_MAX 128      /* longest voice string accepted from a client */
#define ESP_NAME_MAX 192       /* espeak voice name "identifier+variant" */
#define ESP_CONV_BLOCK 2048    /* int16 -> float conversion block */
#define ESP_DEFAULT_VOICE "alloy"
/* UTF-8 text, no SSML, no [[phonemes]]; ENDPAUSE keeps espeak's sentence pause (~0.3 s)
 * at the end of each chunk, without it consecutive sentences run into each other. */
#define ESP_SYNTH_FLAGS (espeakCHARS_UTF8 | espeakENDPAUSE)

/* OpenAI voice names -> distinct English espeak voice/variant pairs. Each was checked to
 * be recognised 7/7 by pocketsphinx on the speech-test sentences (see tests/e2e). */
typedef struct esp_alias {
    const char *name;
    const char *target; /* "<builtin id>[+<variant>]" */
    const char *gender;
} esp_alias;

static const esp_alias esp_aliases[] = {
    {"alloy", "en-us+f3", "female"},      {"ash", "en-us+m3", "male"},
    {"ballad", "en-gb+m2", "male"},       {"coral", "en-us+f4", "female"},
    {"echo", "en-us", "male"},            {"fable", "en-gb-x-rp", "male"},
    {"nova", "en-us+f5", "female"},       {"onyx", "en-us+m7", "male"},
    {"sage", "en-gb+f3", "female"},       {"shimmer", "en-us+f2", "female"},
    {"verse", "en-gb-scotland", "male"},  {"marin", "en-gb+f4", "female"},
    {"cedar", "en-us+m1", "male"},
};
#define ESP_NALIASES (sizeof esp_aliases / sizeof esp_aliases[0])

typedef struct esp_engine {
    engine base;              /* first member: engine * <-> esp_engine * */
    pthread_mutex_t mu;       /* guards next_ticket / serving only */
    pthread_cond_t cv;
    unsigned long next_ticket, serving;
    int in_rate;              /* espeak's output rate (22050) */
    eng_voice *voices;        /* [nvoices]: aliases first, then builtins; read-only */
    char (*target)[ESP_NAME_MAX]; /* [nvoices]: espeak name to load for voices[i] */
    size_t nvoices;
    char (*variants)[48];     /* [nvariants]: variant file names ("f3", "m7", "Mr serious") */
    size_t nvariants;
    char cur_voice[ESP_NAME_MAX]; /* voice loaded in espeak now; ticket holder only */
    char desc[96];
} esp_engine;

/* Process state, because libespeak-ng itself is a process-wide singleton: whether an
 * engine exists, and whether (with which data path) espeak was initialised. espeak is
 * initialised once and never terminated: espeak_Terminate() in 1.51 can deadlock joining
 * its event thread (seen here right after espeak_Initialize()), and the OS frees it all
 * at exit. esp_init_path is written once, by the thread that won esp_live. */
static atomic_int esp_live;
static int esp_inited;
static char esp_init_path[512];

/* ---- small string helpers ----------------------------------------------------------- */

static void esp_copy(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

static void esp_lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z') *s = (char)(*s + 32);
}

/* "en-us" -> "en-US", "en-gb-x-rp" -> "en-GB-x-rp", "cmn-latn-pinyin" -> "cmn-Latn-pinyin". */
static void esp_bcp47(char *dst, size_t cap, const char *lang)
{
    esp_copy(dst, cap, lang);
    esp_lower(dst);
    char *seg = dst;
    int first = 1, priv = 0;
    for (;;) {
        char *end = strchr(seg, '-');
        size_t n = end ? (size_t)(end - seg) : strlen(seg);
        if (n == 1 && seg[0] == 'x') priv = 1;
        if (!first && !priv) {
            int alpha = 1;
            for (size_t k = 0; k < n; k++) alpha &= (seg[k] >= 'a' && seg[k] <= 'z');
            if (alpha && n == 2) {
                seg[0] = (char)(seg[0] - 32);
                seg[1] = (char)(seg[1] - 32);
            } else if (alpha && n == 4) {
                seg[0] = (char)(seg[0] - 32);
            }
        }
        first = 0;
        if (!end) break;
        seg = end + 1;
    }
}

/* ---- turn lock (FIFO ticket lock) ---------------------------------------------------- */

static void esp_turn_acquire(esp_engine *e)
{
    pthread_mutex_lock(&e->mu);
    unsigned long me = e->next_ticket++;
    while (me != e->serving) pthread_cond_wait(&e->cv, &e->mu);
    pthread_mutex_unlock(&e->mu);
}

static void esp_turn_release(esp_engine *e)
{
    pthread_mutex_lock(&e->mu);
    e->serving++;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

/* ---- voices ---------------------------------------------------------------------------- */

static const eng_voice *esp_find(const esp_engine *e, const char *id, const char *type, size_t *idx)
{
    for (size_t i = 0; i < e->nvoices; i++) {
        if (type && strcmp(e->voices[i].type, type)) continue;
        if (!strcasecmp(e->voices[i].id, id)) {
            if (idx) *idx = i;
            return &e->voices[i];
        }
    }
    return NULL;
}

static const char *esp_find_variant(const esp_engine *e, const char *v)
{
    for (size_t i = 0; i < e->nvariants; i++)
        if (!strcasecmp(e->variants[i], v)) return e->variants[i];
    return NULL;
}

/* "<builtin id>[+<variant>]" -> espeak name "identifier[+variant]". 0 or ERR_NOTFOUND. */
static int esp_resolve_plain(const esp_engine *e, const char *voice, char *name, size_t cap)
{
    char base[ESP_VOICE_MAX + 1];
    esp_copy(base, sizeof base, voice);
    char *plus = strchr(base, '+');
    const char *var = NULL;
    if (plus) {
        *plus = 0;
        var = esp_find_variant(e, plus + 1);
        if (!var) return ERR_NOTFOUND;
    }
    size_t idx;
    if (!esp_find(e, base, "builtin", &idx)) return ERR_NOTFOUND;
    if (strlen(e->target[idx]) + (var ? strlen(var) + 1 : 0) >= cap) return ERR_NOTFOUND;
    strcpy(name, e->target[idx]);
    if (var) {
        strcat(name, "+");
        strcat(name, var);
    }
    return 0;
}

/* Client voice (id, alias or id+variant; NULL = default) -> espeak name. */
static int esp_resolve(const esp_engine *e, const char *voice, char *name, size_t cap, char *err,
                       size_t errlen)
{
    if (!voice || !*voice) voice = ESP_DEFAULT_VOICE;
    if (strlen(voice) > ESP_VOICE_MAX)
        return err_set(err, errlen, ERR_NOTFOUND, "voice name too long (%zu bytes)", strlen(voice));
    size_t idx;
    if (esp_find(e, voice, NULL, &idx)) {
        esp_copy(name, cap, e->target[idx]);
        return 0;
    }
    if (esp_resolve_plain(e, voice, name, cap) == 0) return 0;
    return err_set(err, errlen, ERR_NOTFOUND,
                   "unknown voice '%.64s' for espeak (see GET /v1/audio/voices)", voice);
}

static int esp_list_voices(engine *eng, eng_voice **out, size_t *n, char *err, size_t errlen)
{
    esp_engine *e = (esp_engine *)eng;
    *out = malloc((e->nvoices ? e->nvoices : 1) * sizeof **out);
    if (!*out) return err_set(err, errlen, ERR_NOMEM, "voice list");
    memcpy(*out, e->voices, e->nvoices * sizeof **out);
    *n = e->nvoices;
    return 0;
}

static int esp_check_voice(engine *eng, const char *voice, char *err, size_t errlen)
{
    char name[ESP_NAME_MAX];
    return esp_resolve((esp_engine *)eng, voice, name, sizeof name, err, errlen);
}

/* Builds voices[] (aliases then builtins), target[] and variants[] from espeak's tables.
 * Runs once, before the engine is shared. */
static int esp_build_voices(esp_engine *e, char *err, size_t errlen)
{
    const espeak_VOICE **vl = espeak_ListVoices(NULL);
    size_t nb = 0;
    while (vl && vl[nb]) nb++;
    if (nb == 0) return err_set(err, errlen, ERR_IO, "espeak-ng lists no voices (missing data?)");
    size_t cap = nb + ESP_NALIASES;
    e->voices = calloc(cap, sizeof *e->voices);
    e->target = calloc(cap, sizeof *e->target);
    if (!e->voices || !e->target) return err_set(err, errlen, ERR_NOMEM, "voice table");

    /* Builtins go after the alias slots; aliases are filled in below once resolvable. */
    eng_voice *bv = e->voices + ESP_NALIASES;
    char (*bt)[ESP_NAME_MAX] = e->target + ESP_NALIASES;
    size_t k = 0;
    for (size_t i = 0; i < nb; i++) {
        const espeak_VOICE *v = vl[i];
        if (!v->identifier || !strncmp(v->identifier, "mb/", 3) ||
            !strncmp(v->identifier, "!v/", 3))
            continue; /* mbrola needs an extra program; variants are listed separately */
        const char *lang = v->languages ? v->languages + 1 : "";
        const char *base = strrchr(v->identifier, '/');
        base = base ? base + 1 : v->identifier;
        char id[64];
        esp_copy(id, sizeof id, *lang ? lang : base);
        esp_lower(id);
        int dup = 0;
        for (size_t j = 0; j < k; j++) dup |= !strcmp(bv[j].id, id);
        if (dup) { /* e.g. two "yue" voices: the second goes by its file name */
            esp_copy(id, sizeof id, base);
            esp_lower(id);
            dup = 0;
            for (size_t j = 0; j < k; j++) dup |= !strcmp(bv[j].id, id);
            if (dup) continue;
        }
        if (strlen(v->identifier) >= 64) continue;
        eng_voice *o = &bv[k];
        esp_copy(o->id, sizeof o->id, id);
        esp_copy(o->name, sizeof o->name, v->name ? v->name : id);
        esp_bcp47(o->lang, sizeof o->lang, lang);
        esp_copy(o->gender, sizeof o->gender, v->gender == 1 ? "male" : v->gender == 2 ? "female" : "");
        esp_copy(o->type, sizeof o->type, "builtin");
        esp_copy(bt[k], ESP_NAME_MAX, v->identifier);
        k++;
    }

    /* Variants: espeak lists them for the pseudo-language "variant". */
    espeak_VOICE spec;
    memset(&spec, 0, sizeof spec);
    spec.languages = "variant";
    const espeak_VOICE **vv = espeak_ListVoices(&spec);
    size_t nv = 0;
    while (vv && vv[nv]) nv++;
    e->variants = calloc(nv ? nv : 1, sizeof *e->variants);
    if (!e->variants) return err_set(err, errlen, ERR_NOMEM, "variant table");
    for (size_t i = 0; i < nv; i++) {
        const char *id = vv[i]->identifier;
        if (!id || strncmp(id, "!v/", 3) || strlen(id + 3) >= sizeof e->variants[0]) continue;
        esp_copy(e->variants[e->nvariants++], sizeof e->variants[0], id + 3);
    }

    /* Aliases: resolve against the builtins (a data dir missing the target skips it). Move
     * the builtins down over any skipped alias slots afterwards. */
    e->nvoices = ESP_NALIASES + k; /* so esp_resolve_plain can see the builtins */
    size_t na = 0;
    for (size_t i = 0; i < ESP_NALIASES; i++) {
        const esp_alias *a = &esp_aliases[i];
        char name[ESP_NAME_MAX];
        if (esp_resolve_plain(e, a->target, name, sizeof name)) continue;
        size_t bidx;
        char base[64];
        esp_copy(base, sizeof base, a->target);
        char *plus = strchr(base, '+');
        if (plus) *plus = 0;
        const eng_voice *b = esp_find(e, base, "builtin", &bidx);
        eng_voice *o = &e->voices[na];
        esp_copy(o->id, sizeof o->id, a->name);
        snprintf(o->name, sizeof o->name, "%c%s (espeak %s)", a->name[0] - 32, a->name + 1,
                 a->target);
        esp_copy(o->lang, sizeof o->lang, b ? b->lang : "");
        esp_copy(o->gender, sizeof o->gender, a->gender);
        esp_copy(o->type, sizeof o->type, "alias");
        esp_copy(e->target[na], ESP_NAME_MAX, name);
        na++;
    }
    if (na < ESP_NALIASES) {
        memmove(e->voices + na, e->voices + ESP_NALIASES, k * sizeof *e->voices);
        memmove(e->target + na, e->target + ESP_NALIASES, k * sizeof *e->target);
    }
    e->nvoices = na + k;
    return 0;
}

/* ---- synthesis ------------------------------------------------------------------------- */

/* Per-chunk state reached from espeak's callback through user_data. */
typedef struct esp_job {
    int16_t *pcm;             /* [n] this chunk's audio at in_rate; grows up to limit */
    size_t n, cap, limit;
    const atomic_int *cancel;
    int stop;                 /* 0 running, 1 cancelled, 2 over limit, 3 no memory */
} esp_job;

static int esp_cb(short *wav, int n, espeak_EVENT *ev)
{
    esp_job *j = ev ? ev->user_data : NULL;
    if (!j) return 1; /* not ours: cannot happen, but never write through NULL */
    if (j->cancel && atomic_load(j->cancel)) {
        j->stop = 1;
        return 1;
    }
    if (!wav || n <= 0) return 0;
    size_t need = j->n + (size_t)n;
    if (need > j->limit) {
        j->stop = 2;
        return 1;
    }
    if (need > j->cap) {
        size_t nc = j->cap ? j->cap * 2 : 16384;
        while (nc < need) nc *= 2;
        if (nc > j->limit) nc = j->limit;
        int16_t *p = realloc(j->pcm, nc * sizeof *p);
        if (!p) {
            j->stop = 3;
            return 1;
        }
        j->pcm = p;
        j->cap = nc;
    }
    memcpy(j->pcm + j->n, wav, (size_t)n * sizeof *wav);
    j->n = need;
    return 0;
}

/* Renders one NUL-terminated chunk into job (job->n = 0 first) while holding the turn.
 * With ref_n != NULL it first renders the chunk at the normal rate and stores only that
 * length in *ref_n (the yardstick for the speed correction), then renders it at `rate`. */
static int esp_render(esp_engine *e, const char *name, int rate, const char *text, size_t len,
                      esp_job *job, size_t *ref_n, char *err, size_t errlen)
{
    int rc = 0;
    espeak_ERROR er;
    job->n = 0;
    job->stop = 0;
    esp_turn_acquire(e);
    if (strcmp(e->cur_voice, name)) {
        if (espeak_SetVoiceByName(name) != EE_OK) {
            e->cur_voice[0] = 0;
            rc = err_set(err, errlen, ERR_INTERNAL, "espeak-ng cannot load voice '%s'", name);
            goto out;
        }
        esp_copy(e->cur_voice, sizeof e->cur_voice, name);
    }
    if (ref_n) {
        espeak_SetParameter(espeakRATE, ESP_RATE_NORMAL, 0);
        er = espeak_Synth(text, len + 1, 0, POS_CHARACTER, 0, ESP_SYNTH_FLAGS, NULL, job);
        if (er != EE_OK) {
            rc = err_set(err, errlen, ERR_INTERNAL, "espeak_Synth failed (%d)", (int)er);
            goto out;
        }
        *ref_n = job->n;
        job->n = 0;
        if (job->stop) goto out;
    }
    espeak_SetParameter(espeakRATE, rate, 0);
    er = espeak_Synth(text, len + 1, 0, POS_CHARACTER, 0, ESP_SYNTH_FLAGS, NULL, job);
    if (er != EE_OK) rc = err_set(err, errlen, ERR_INTERNAL, "espeak_Synth failed (%d)", (int)er);
out:
    esp_turn_release(e);
    if (rc) return rc;
    switch (job->stop) {
    case 1: return err_set(err, errlen, ERR_CANCEL, "cancelled");
    case 2: return err_set(err, errlen, ERR_TOOBIG, "one sentence gives more than %d s of audio",
                           ESP_MAX_CHUNK_SEC);
    case 3: return err_set(err, errlen, ERR_NOMEM, "sentence audio buffer");
    default: return 0;
    }
}

/* Output stage after the resampler: optional time-stretch, then the caller's sink. */
typedef struct esp_out {
    eng_sink_fn sink;
    void *user;
    aspeed *stretch;          /* this chunk's speed correction, NULL when none is needed */
    const atomic_int *cancel;
    int rc;                   /* first error of this stage (ERR_CANCEL when the sink stopped) */
    char err[160];
} esp_out;

/* Last stage: the caller's sink, never with an empty chunk (whatever a filter hands us). */
static int esp_final(void *u, const float *pcm, size_t n)
{
    esp_out *o = u;
    if (n == 0) return 0;
    if (o->sink(o->user, pcm, n)) {
        o->rc = ERR_CANCEL;
        return 1;
    }
    return 0;
}

static int esp_emit(void *u, const float *pcm, size_t n)
{
    esp_out *o = u;
    if (o->cancel && atomic_load(o->cancel)) {
        o->rc = ERR_CANCEL;
        return 1;
    }
    if (o->stretch) {
        int rc = aspeed_write(o->stretch, pcm, n, o->err, sizeof o->err);
        if (rc) {
            if (!o->rc) o->rc = rc; /* esp_final may have set ERR_CANCEL already */
            return 1;
        }
        return 0;
    }
    return esp_final(o, pcm, n);
}

static int esp_is_word(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z') || c >= 0x80;
}

/* Copies chunk src[0..n) to dst (n + 1 bytes) in the form espeak should read, same length:
 *  - control characters become spaces: espeak starts an embedded command at CTRL-A
 *    ("\x01" "0A" mutes the rest), which clients must not be able to send;
 *  - Markdown marks that LLM replies are full of become spaces, else espeak reads them
 *    out ("asterisk asterisk Hello"): a heading's leading #s, a leading "* " bullet,
 *    backticks, and * or _ runs that open or close a word (*em*, **bold**, __bold__).
 *    A * between spaces or digits ("5 * 3", "2*3") stays. Chunks start at a line start
 *    (textsplit breaks at newlines), so "leading" means the chunk's start. */
static void esp_clean(char *dst, const char *src, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        unsigned char ch = (unsigned char)src[k];
        dst[k] = (ch < 0x20 || ch == 0x7F || ch == '`') ? ' ' : (char)ch;
    }
    dst[n] = 0;
    size_t i = 0;
    while (i < n && dst[i] == '#') i++;
    if (i > 0 && i < n && dst[i] == ' ') memset(dst, ' ', i);
    if (n >= 2 && dst[0] == '*' && dst[1] == ' ') dst[0] = ' ';
    for (i = 0; i < n;) {
        if (dst[i] != '*' && dst[i] != '_') {
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && dst[j] == dst[i]) j++;
        unsigned char before = i > 0 ? (unsigned char)dst[i - 1] : ' ';
        unsigned char after = j < n ? (unsigned char)dst[j] : ' ';
        int digits = (before >= '0' && before <= '9') || (after >= '0' && after <= '9');
        int emph = esp_is_word(before) != esp_is_word(after); /* opens or closes a word */
        if (dst[i] == '_' && esp_is_word(before) && esp_is_word(after)) emph = 0; /* snake_case */
        if (emph && !(dst[i] == '*' && digits && j - i == 1)) memset(dst + i, ' ', j - i);
        i = j;
    }
}

/* Speed -> espeak rate (words per minute), clamped to the range where espeak's own rate
 * change sounds natural; the per-chunk correction (esp_send_chunk) does the rest. */
static int esp_rate_for(float speed)
{
    long r = lround(ESP_RATE_NORMAL * (double)speed);
    return (int)(r < ESP_RATE_MIN ? ESP_RATE_MIN : r > ESP_RATE_MAX ? ESP_RATE_MAX : r);
}

/* Resamples one rendered chunk, time-stretches it by `stretch` (1 = not at all) and pushes
 * it out; resampler and stretch filter are flushed at the chunk's end. */
static int esp_send_chunk(esp_engine *e, const esp_job *job, float stretch, esp_out *out,
                          char *err, size_t errlen)
{
    ars *r = NULL;
    int rc = 0;
    out->stretch = NULL;
    if (stretch != 1.0f) {
        rc = aspeed_open(&out->stretch, ENG_SAMPLE_RATE, stretch, esp_final, out, err, errlen);
        if (rc) return rc;
    }
    rc = ars_open(&r, e->in_rate, ENG_SAMPLE_RATE, esp_emit, out, err, errlen);
    if (rc) goto done;
    float f[ESP_CONV_BLOCK];
    for (size_t i = 0; i < job->n && !rc; i += ESP_CONV_BLOCK) {
        size_t k = job->n - i < ESP_CONV_BLOCK ? job->n - i : ESP_CONV_BLOCK;
        for (size_t s = 0; s < k; s++) f[s] = (float)job->pcm[i + s] * (1.0f / 32768.0f);
        rc = ars_write(r, f, k, err, errlen);
    }
    if (!rc) rc = ars_close(r, err, errlen);
    if (!rc && out->stretch) {
        rc = aspeed_close(out->stretch, out->err, sizeof out->err);
        if (rc && !out->rc) out->rc = rc;
    }
    if (rc && out->rc) { /* the stage after the resampler stopped it: report its reason */
        if (out->rc == ERR_CANCEL) rc = err_set(err, errlen, ERR_CANCEL, "cancelled");
        else rc = err_set(err, errlen, out->rc, "%s", out->err);
    }
done:
    ars_free(r);
    aspeed_free(out->stretch);
    out->stretch = NULL;
    return rc;
}

static int esp_synth(engine *eng, const eng_synth_req *req, eng_sink_fn sink, void *user,
                     char *err, size_t errlen)
{
    esp_engine *e = (esp_engine *)eng;
    if (!req || !req->text || !sink) return err_set(err, errlen, ERR_INTERNAL, "espeak: bad request");
    char name[ESP_NAME_MAX];
    int rc = esp_resolve(e, req->voice, name, sizeof name, err, errlen);
    if (rc) return rc;
    float speed = req->speed == 0.0f ? 1.0f : req->speed;
    if (!(speed >= 0.25f && speed <= 4.0f))
        return err_set(err, errlen, ERR_INVAL, "speed %g outside 0.25 .. 4.0", (double)speed);
    int rate = esp_rate_for(speed);
    esp_out out = {.sink = sink, .user = user, .cancel = req->cancel};
    esp_job job = {.limit = (size_t)e->in_rate * ESP_MAX_CHUNK_SEC, .cancel = req->cancel};
    char chunk[ESP_CHUNK_MAX + 1];
    size_t len = strlen(req->text), pos = 0;
    ts_span sp;
    while (ts_next(req->text, len, &pos, ESP_CHUNK_MAX, &sp)) {
        if (req->cancel && atomic_load(req->cancel)) {
            rc = err_set(err, errlen, ERR_CANCEL, "cancelled");
            break;
        }
        esp_clean(chunk, req->text + sp.off, sp.len);
        size_t ref_n = 0;
        rc = esp_render(e, name, rate, chunk, sp.len, &job, speed != 1.0f ? &ref_n : NULL, err,
                        errlen);
        if (rc) break;
        if (job.n == 0) continue; /* punctuation only: nothing to say */
        /* espeak's rate is not proportional to its wpm number (and differs per voice):
         * stretch what it made to exactly (normal-rate length) / speed. */
        float stretch = 1.0f;
        if (speed != 1.0f && ref_n > 0) {
            double want = (double)ref_n / speed;
            stretch = (float)((double)job.n / want);
            if (fabsf(stretch - 1.0f) < ESP_STRETCH_MIN) stretch = 1.0f;
        }
        rc = esp_send_chunk(e, &job, stretch, &out, err, errlen);
        if (rc) break;
    }
    free(job.pcm);
    return rc;
}

/* ---- lifetime --------------------------------------------------------------------------- */

static void esp_destroy(engine *eng)
{
    esp_engine *e = (esp_engine *)eng;
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    free(e->voices);
    free(e->target);
    free(e->variants);
    free(e);
    atomic_store(&esp_live, 0);
}

static const eng_ops esp_ops = {
    .list_voices = esp_list_voices,
    .check_voice = esp_check_voice,
    .synth = esp_synth,
    .destroy = esp_destroy,
};

int esp_engine_new(engine **out, const esp_options *opt, char *err, size_t errlen)
{
    *out = NULL;
    int expect = 0;
    if (!atomic_compare_exchange_strong(&esp_live, &expect, 1))
        return err_set(err, errlen, ERR_BUSY, "an espeak-ng engine already exists in this process");
    esp_engine *e = calloc(1, sizeof *e);
    if (!e) {
        atomic_store(&esp_live, 0);
        return err_set(err, errlen, ERR_NOMEM, "espeak engine");
    }
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    const char *path = opt && opt->data_path && *opt->data_path ? opt->data_path : NULL;
    int rc, sr;
    if (esp_inited) {
        if (strcmp(esp_init_path, path ? path : "")) {
            rc = err_set(err, errlen, ERR_BUSY,
                         "espeak-ng was initialised with another data path in this process");
            goto fail;
        }
        sr = esp_inited;
    } else {
        if (path && strlen(path) >= sizeof esp_init_path) {
            rc = err_set(err, errlen, ERR_INVAL, "espeak data path too long");
            goto fail;
        }
        sr = espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 100, path, espeakINITIALIZE_DONT_EXIT);
        if (sr <= 0) {
            rc = err_set(err, errlen, ERR_IO, "espeak-ng failed to initialise (data path %s)",
                         path ? path : "default");
            goto fail;
        }
        esp_copy(esp_init_path, sizeof esp_init_path, path ? path : "");
        esp_inited = sr;
    }
    e->in_rate = sr;
    espeak_SetSynthCallback(esp_cb);
    rc = esp_build_voices(e, err, errlen);
    if (rc) goto fail;
    char name[ESP_NAME_MAX];
    if (esp_resolve(e, ESP_DEFAULT_VOICE, name, sizeof name, NULL, 0) ||
        espeak_SetVoiceByName(name) != EE_OK) {
        rc = err_set(err, errlen, ERR_IO, "espeak-ng data lacks the default English voice");
        goto fail;
    }
    esp_copy(e->cur_voice, sizeof e->cur_voice, name);
    const char *ver = espeak_Info(NULL);
    snprintf(e->desc, sizeof e->desc, "espeak-ng %.20s, %zu voices, %d Hz resampled to %d Hz",
             ver ? ver : "?", e->nvoices, sr, ENG_SAMPLE_RATE);
    e->base.ops = &esp_ops;
    e->base.id = "espeak";
    e->base.desc = e->desc;
    e->base.caps = ENG_CAP_SPEED;
    e->base.max_parallel = 1;
    e->base.default_voice = ESP_DEFAULT_VOICE;
    *out = &e->base;
    return 0;
fail:
    esp_destroy(&e->base);
    return rc;
}
