/* kkengine.c — see kkengine.h.
 *
 * Load: resolve every file (local path, or hf_fetch for hf:// / https://), kk_open, the
 * vocab from config.json, the US lexicons, and the voice list (scan of the voices folder,
 * or the Kokoro v1.0 names when packs are fetched on demand). Nothing here logs.
 * Synth: the request text is cut into newline segments (KPipeline's split_pattern \n+), each
 * segment through kg2p_run, its tokens into chunks (kg2p_chunk), each chunk through
 * kk_forward and straight into the sink. The pack row is read per chunk (1 KiB pread), so
 * voices cost no memory.
 */
#include "engine/kokoro/kkengine.h"

#include "core/err.h"
#include "engine/kokoro/g2p.h"
#include "engine/kokoro/kkpth.h"
#include "engine/kokoro/kokoro.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#define KKE_PATH 1024
#define KKE_MAX_VOICES 256
#define KKE_MAX_MIX 4
#define KKE_HF_CONFIG "hf://hexgrad/Kokoro-82M/config.json"
#define KKE_HF_WEIGHTS "hf://hexgrad/Kokoro-82M/kokoro-v1_0.pth"
#define KKE_HF_VOICES "hf://onnx-community/Kokoro-82M-v1.0-ONNX/voices/"
#define KKE_LEXICON_URL "https://raw.githubusercontent.com/hexgrad/misaki/fba1236/misaki/data/"

/* Kokoro v1.0's English voices (hexgrad/Kokoro-82M VOICES.md; voices-kokoro-v1_0.json). */
static const char *const kke_known[] = {
    "af_heart", "af_alloy", "af_aoede", "af_bella", "af_jessica", "af_kore", "af_nicole", "af_nova",
    "af_river", "af_sarah", "af_sky", "am_adam", "am_echo", "am_eric", "am_fenrir", "am_liam",
    "am_michael", "am_onyx", "am_puck", "am_santa", "bf_alice", "bf_emma", "bf_isabella", "bf_lily",
    "bm_daniel", "bm_fable", "bm_george", "bm_lewis", "ef_dora", "em_alex", "em_santa", "ff_siwis",
    "hf_alpha", "hf_beta", "hm_omega", "hm_psi", "if_sara", "im_nicola", "pf_dora", "pm_alex", "pm_santa",
};

/* Voice name's first letter -> espeak language for misaki's EspeakG2P (upstream LANG_CODES);
 * NULL = English (misaki en) or unsupported. */
static const char *espeak_lang(const char *name)
{
    if (strlen(name) < 4 || name[2] != '_' || (name[1] != 'f' && name[1] != 'm')) return NULL;
    switch (name[0]) {
    case 'e': return "es";
    case 'f': return "fr-fr";
    case 'h': return "hi";
    case 'i': return "it";
    case 'p': return "pt-br";
    default: return NULL;
    }
}
#define KKE_NKNOWN (sizeof kke_known / sizeof kke_known[0])

/* OpenAI voice names -> distinct Kokoro voices (same-named ones where Kokoro has them). */
static const char *const kke_alias[][2] = {
    {"alloy", "af_alloy"},   {"ash", "am_adam"},     {"ballad", "bm_george"}, {"coral", "af_jessica"},
    {"echo", "am_echo"},     {"fable", "bm_fable"},  {"nova", "af_nova"},     {"onyx", "am_onyx"},
    {"sage", "af_sarah"},    {"shimmer", "af_bella"}, {"verse", "am_michael"}, {"marin", "af_nicole"},
    {"cedar", "am_liam"},
};
#define KKE_NALIAS (sizeof kke_alias / sizeof kke_alias[0])

typedef struct kke {
    engine base;
    kk_model *m;
    kg2p_vocab vocab;
    kg2p *us, *gb;
    pthread_mutex_t gb_mu;
    int gb_failed;
    char voices_dir[KKE_PATH]; /* local folder, or "" when voices are fetched */
    char lexicon_dir[KKE_PATH]; /* "" = fetch */
    char (*voices)[64];        /* [nvoices] names with a pack (or fetchable) */
    size_t nvoices;
    char default_voice[64];
    char desc[160];
    char id[64];
    int first_chunk;
    kg2p_espeak_hooks hooks;
    hf_options hf;
    char hf_cache[KKE_PATH];
    int have_hf;
} kke;

static int is_uri(const char *p) { return !strncmp(p, "hf://", 5) || !strncmp(p, "https://", 8) || !strncmp(p, "http://", 7); }

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Local path or fetched URI -> local path in out[KKE_PATH]. */
static int resolve(kke *k, const char *p, char *out, char *err, size_t errlen)
{
    if (is_uri(p)) return hf_fetch(p, k->have_hf ? &k->hf : NULL, out, KKE_PATH, err, errlen);
    if (!file_exists(p)) return err_set(err, errlen, ERR_NOTFOUND, "kokoro: %s not found", p);
    snprintf(out, KKE_PATH, "%s", p);
    return 0;
}

static int safe_name(const char *v)
{
    size_t n = strlen(v);
    if (!n || n >= 60) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static int voice_known(const char *v)
{
    for (size_t i = 0; i < KKE_NKNOWN; i++)
        if (!strcmp(kke_known[i], v)) return 1;
    return 0;
}

static int voice_index(const kke *k, const char *v)
{
    for (size_t i = 0; i < k->nvoices; i++)
        if (!strcasecmp(k->voices[i], v)) return (int)i;
    return -1;
}

static int add_voice(kke *k, const char *name)
{
    if (k->nvoices >= KKE_MAX_VOICES || voice_index(k, name) >= 0) return 0;
    snprintf(k->voices[k->nvoices++], 64, "%s", name);
    return 0;
}

static int cmp_name(const void *a, const void *b) { return strcmp((const char *)a, (const char *)b); }

static int scan_voices(kke *k, char *err, size_t errlen)
{
    DIR *d = opendir(k->voices_dir);
    if (!d) return err_set(err, errlen, ERR_NOTFOUND, "kokoro: no voices folder %s", k->voices_dir);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".bin")) continue;
        char name[64];
        if (n - 4 >= sizeof name) continue;
        memcpy(name, e->d_name, n - 4);
        name[n - 4] = 0;
        if (!safe_name(name)) continue;
        /* Japanese and Chinese packs need misaki ja/zh: not offered */
        if (strlen(name) > 3 && name[2] == '_' && (name[1] == 'f' || name[1] == 'm') && (name[0] == 'j' || name[0] == 'z'))
            continue;
        add_voice(k, name);
    }
    closedir(d);
    qsort(k->voices, k->nvoices, sizeof *k->voices, cmp_name);
    if (!k->nvoices) return err_set(err, errlen, ERR_NOTFOUND, "kokoro: no English voice packs (*.bin) in %s", k->voices_dir);
    return 0;
}

/* Voice (one name, alias resolved) -> pack path. */
static int pack_path(kke *k, const char *name, char *out, char *err, size_t errlen)
{
    if (*k->voices_dir) {
        if (snprintf(out, KKE_PATH, "%.900s/%.60s.bin", k->voices_dir, name) >= KKE_PATH)
            return err_set(err, errlen, ERR_TOOBIG, "voice path too long");
        return file_exists(out) ? 0 : err_set(err, errlen, ERR_NOTFOUND, "voice '%s' not found", name);
    }
    char uri[KKE_PATH];
    snprintf(uri, sizeof uri, KKE_HF_VOICES "%s.bin", name);
    return hf_fetch(uri, k->have_hf ? &k->hf : NULL, out, KKE_PATH, err, errlen);
}

static const char *alias_target(const char *v)
{
    for (size_t i = 0; i < KKE_NALIAS; i++)
        if (!strcasecmp(kke_alias[i][0], v)) return kke_alias[i][1];
    return NULL;
}

/* "a", "alloy", "a,b", "a+b" -> up to KKE_MAX_MIX voice names. */
static int parse_voice(const kke *k, const char *v, char names[KKE_MAX_MIX][64], int *nn, char *err, size_t errlen)
{
    if (!v || !*v) v = k->default_voice;
    if (strlen(v) > 255) return err_set(err, errlen, ERR_NOTFOUND, "voice name too long");
    char buf[256];
    snprintf(buf, sizeof buf, "%s", v);
    *nn = 0;
    char *save = NULL;
    for (char *p = strtok_r(buf, ",+", &save); p; p = strtok_r(NULL, ",+", &save)) {
        while (*p == ' ') p++;
        size_t l = strlen(p);
        while (l && p[l - 1] == ' ') p[--l] = 0;
        if (!*p) continue;
        if (*nn >= KKE_MAX_MIX) return err_set(err, errlen, ERR_NOTFOUND, "voice '%s': at most %d voices mixed", v, KKE_MAX_MIX);
        const char *t = alias_target(p);
        int i = voice_index(k, p); /* a pack of that very name wins */
        if (i < 0 && t) i = voice_index(k, t);
        if (i < 0 && t) i = voice_index(k, k->default_voice); /* OpenAI name, its voice absent */
        if (i < 0) return err_set(err, errlen, ERR_NOTFOUND, "voice '%s' not found", p);
        snprintf(names[(*nn)++], 64, "%s", k->voices[i]);
    }
    if (!*nn) return err_set(err, errlen, ERR_NOTFOUND, "voice '%s' not found", v);
    return 0;
}

/* ---- engine ops ------------------------------------------------------------------------ */

static void lang_of(const char *name, char *lang, size_t n, char *gender, size_t gn)
{
    int std = strlen(name) > 3 && name[2] == '_';
    const char *el = espeak_lang(name);
    static const char *const tag[][2] = {{"es", "es"}, {"fr-fr", "fr-FR"}, {"hi", "hi"}, {"it", "it"}, {"pt-br", "pt-BR"}};
    const char *t = std && name[0] == 'b' ? "en-GB" : "en-US";
    for (size_t i = 0; el && i < sizeof tag / sizeof *tag; i++)
        if (!strcmp(tag[i][0], el)) t = tag[i][1];
    snprintf(lang, n, "%s", t);
    snprintf(gender, gn, "%s", !std ? "" : name[1] == 'f' ? "female" : name[1] == 'm' ? "male" : "");
}

static int kke_list(engine *e, eng_voice **out, size_t *n, char *err, size_t errlen)
{
    kke *k = (kke *)e;
    eng_voice *v = calloc(k->nvoices + KKE_NALIAS + 1, sizeof *v);
    if (!v) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    size_t o = 0;
    for (size_t i = 0; i < KKE_NALIAS; i++) {
        const char *to = voice_index(k, kke_alias[i][1]) >= 0 ? kke_alias[i][1] : k->default_voice;
        snprintf(v[o].id, sizeof v[o].id, "%s", kke_alias[i][0]);
        snprintf(v[o].name, sizeof v[o].name, "%s (kokoro %s)", kke_alias[i][0], to);
        lang_of(to, v[o].lang, sizeof v[o].lang, v[o].gender, sizeof v[o].gender);
        snprintf(v[o].type, sizeof v[o].type, "alias");
        o++;
    }
    for (size_t i = 0; i < k->nvoices; i++) {
        snprintf(v[o].id, sizeof v[o].id, "%s", k->voices[i]);
        snprintf(v[o].name, sizeof v[o].name, "%s", k->voices[i]);
        lang_of(k->voices[i], v[o].lang, sizeof v[o].lang, v[o].gender, sizeof v[o].gender);
        snprintf(v[o].type, sizeof v[o].type, "%s", voice_known(k->voices[i]) ? "builtin" : "custom");
        o++;
    }
    *out = v;
    *n = o;
    return 0;
}

static int kke_check(engine *e, const char *voice, char *err, size_t errlen)
{
    char names[KKE_MAX_MIX][64];
    int nn;
    return parse_voice((kke *)e, voice, names, &nn, err, errlen);
}

static int load_lexicon(kke *k, int british, kg2p **out, char *err, size_t errlen)
{
    const char *pre = british ? "gb" : "us";
    char gold[KKE_PATH], silver[KKE_PATH], p[KKE_PATH * 2];
    int rc;
    if (*k->lexicon_dir) {
        snprintf(p, sizeof p, "%s/%s_gold.json", k->lexicon_dir, pre);
        if ((rc = resolve(k, p, gold, err, errlen))) return rc;
        snprintf(p, sizeof p, "%s/%s_silver.json", k->lexicon_dir, pre);
        if ((rc = resolve(k, p, silver, err, errlen))) return rc;
    } else {
        snprintf(p, sizeof p, KKE_LEXICON_URL "%s_gold.json", pre);
        if ((rc = resolve(k, p, gold, err, errlen))) return rc;
        snprintf(p, sizeof p, KKE_LEXICON_URL "%s_silver.json", pre);
        if ((rc = resolve(k, p, silver, err, errlen))) return rc;
    }
    kg2p_options go = {.gold_path = gold, .silver_path = silver, .british = british,
                       .fallback = kg2p_espeak_fallback, .fallback_user = &k->hooks};
    return kg2p_open(out, &go, err, errlen);
}

static const kg2p *g2p_for(kke *k, const char *voice, char *err, size_t errlen, int *rc)
{
    *rc = 0;
    int british = strlen(voice) > 3 && voice[0] == 'b' && voice[2] == '_';
    if (!british) return k->us;
    pthread_mutex_lock(&k->gb_mu);
    if (!k->gb && !k->gb_failed) {
        if ((*rc = load_lexicon(k, 1, &k->gb, err, errlen))) k->gb_failed = 1;
    } else if (!k->gb) {
        *rc = err_set(err, errlen, ERR_NOTFOUND, "kokoro: British lexicon unavailable");
    }
    const kg2p *g = k->gb;
    pthread_mutex_unlock(&k->gb_mu);
    return g;
}

static int cancelled(const eng_synth_req *req) { return req->cancel && atomic_load(req->cancel); }

/* One chunk of phonemes -> audio into the sink. */
static int speak_chunk(kke *k, const char *ps, const char names[KKE_MAX_MIX][64], int nn, const eng_synth_req *req,
                       uint64_t seed, eng_sink_fn sink, void *user, char *err, size_t errlen)
{
    const kk_dims *d = kk_get_dims(k->m);
    size_t S2 = 2 * (size_t)d->style;
    int64_t ids[KG2P_MAX_PHONEMES + 2];
    size_t n = 0;
    /* truncate to 510 code points, as upstream */
    char buf[KG2P_MAX_PHONEMES * 4 + 1];
    size_t bl = 0, cps = 0;
    for (const char *p = ps; *p && cps <= KG2P_MAX_PHONEMES; p++) {
        if (((unsigned char)*p & 0xC0) != 0x80 && ++cps > KG2P_MAX_PHONEMES) break;
        if (bl + 1 < sizeof buf) buf[bl++] = *p;
    }
    buf[bl] = 0;
    int rc = kg2p_ids(&k->vocab, buf, ids + 1, KG2P_MAX_PHONEMES, &n, err, errlen);
    if (rc) return rc;
    if (!n) return 0;
    ids[0] = 0;
    ids[n + 1] = 0;
    int row = (int)kg2p_cplen(buf) - 1;
    if (row < 0) row = 0;
    if (row > 509) row = 509;
    float *ref = calloc(S2 * 2, sizeof *ref);
    if (!ref) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    float *tmp = ref + S2;
    for (int i = 0; i < nn && !rc; i++) {
        char path[KKE_PATH];
        if ((rc = pack_path(k, names[i], path, err, errlen))) break;
        if ((rc = kk_voice_row(k->m, path, row, tmp, err, errlen))) break;
        for (size_t j = 0; j < S2; j++) ref[j] += tmp[j] / (float)nn;
    }
    float *audio = NULL;
    size_t na = 0;
    float speed = req->speed > 0 ? req->speed : 1.0f;
    if (!rc) rc = kk_forward(k->m, ids, (int)n + 2, ref, speed, NULL, 0, seed, &audio, &na, NULL, err, errlen);
    free(ref);
    if (rc) return rc;
    if (na && !cancelled(req) && sink(user, audio, na)) rc = err_set(err, errlen, ERR_CANCEL, "cancelled by sink");
    free(audio);
    return rc;
}

static int kke_synth(engine *e, const eng_synth_req *req, eng_sink_fn sink, void *user, char *err, size_t errlen)
{
    kke *k = (kke *)e;
    char names[KKE_MAX_MIX][64];
    int nn, rc;
    if ((rc = parse_voice(k, req->voice, names, &nn, err, errlen))) return rc;
    const kg2p *g = g2p_for(k, names[0], err, errlen, &rc);
    if (rc) return rc;
    uint64_t seed = req->seed;
    if (!req->has_seed && getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
        seed = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)&seed;
    const char *text = req->text ? req->text : "";
    size_t L = strlen(text);
    if (L > KG2P_MAX_TEXT) return err_set(err, errlen, ERR_TOOBIG, "text over %u bytes", KG2P_MAX_TEXT);
    char *seg = malloc(L + 1);
    char *ps = malloc(KG2P_WORD_MAX * 8 + 8 * 1024);
    size_t pscap = KG2P_WORD_MAX * 8 + 8 * 1024;
    if (!seg || !ps) {
        free(seg);
        free(ps);
        return err_set(err, errlen, ERR_NOMEM, "out of memory");
    }
    int spoke = 0, chunk_no = 0;
    size_t last_len = 0;
    const char *elang = espeak_lang(names[0]);
    for (size_t i = 0; elang && i < L && !rc;) {
        /* upstream's non-English path: sentences ([.!?]+ kept) packed to <= 400 characters; the
         * first chunk is the first sentence alone (time to first audio) */
        while (i < L && (text[i] == '\n' || text[i] == '\r' || text[i] == ' ')) i++;
        size_t j = i, last_cut = 0;
        while (j < L && text[j] != '\n' && text[j] != '\r') {
            int end = text[j] == '.' || text[j] == '!' || text[j] == '?';
            j++;
            if (end) {
                while (j < L && (text[j] == '.' || text[j] == '!' || text[j] == '?')) j++;
                last_cut = j;
                if (!spoke || j - i >= 400) break;
            }
            if (j - i >= 400 && last_cut) {
                j = last_cut;
                break;
            }
            if (j - i >= 400) { /* no sentence end: cut at a space (upstream cuts characters) */
                size_t b = j;
                while (b > i + 1 && text[b - 1] != ' ') b--;
                if (b > i + 1) j = b;
                while (j < L && (text[j] & 0xC0) == 0x80) j++;
                break;
            }
        }
        if (j == i) break;
        if (cancelled(req)) {
            rc = err_set(err, errlen, ERR_CANCEL, "cancelled");
            break;
        }
        memcpy(seg, text + i, j - i);
        seg[j - i] = 0;
        i = j;
        if (kg2p_espeak_g2p(&k->hooks, elang, seg, ps, pscap)) {
            rc = err_set(err, errlen, ERR_INTERNAL, "kokoro: espeak-ng G2P (%s) failed", elang);
            break;
        }
        if (!*ps) continue;
        rc = speak_chunk(k, ps, (const char(*)[64])names, nn, req, seed + 0x9e3779b97f4a7c15ull * (uint64_t)chunk_no++,
                         sink, user, err, errlen);
        spoke = 1;
    }
    for (size_t i = 0; !elang && i < L && !rc;) {
        /* segments: split on runs of newlines */
        while (i < L && (text[i] == '\n' || text[i] == '\r')) i++;
        size_t j = i;
        while (j < L && text[j] != '\n' && text[j] != '\r') j++;
        if (j == i) break;
        memcpy(seg, text + i, j - i);
        seg[j - i] = 0;
        i = j;
        kg2p_doc d;
        if ((rc = kg2p_run(g, seg, &d, err, errlen))) break;
        size_t pos = 0, end;
        while (!rc) {
            if (cancelled(req)) {
                rc = err_set(err, errlen, ERR_CANCEL, "cancelled");
                break;
            }
            /* the request's first chunk is its first clause (time to first audio); then the
             * budget grows 1.5x per chunk (>= 60, <= 510) so a chunk is computed while the
             * previous one plays as long as RTF < 2/3 */
            size_t budget = last_len * 3 / 2;
            if (budget < 60) budget = 60;
            if (budget > KG2P_MAX_PHONEMES) budget = KG2P_MAX_PHONEMES;
            size_t start = pos;
            int more = !spoke && k->first_chunk >= 0 ? kg2p_first_clause(&d, (size_t)k->first_chunk, &pos, &end)
                                                      : kg2p_chunk(&d, budget, &pos, &end);
            if (!more) break;
            if ((rc = kg2p_join(&d, start, end, ps, pscap, err, errlen))) break;
            if (!*ps) continue;
            last_len = kg2p_cplen(ps);
            rc = speak_chunk(k, ps, (const char(*)[64])names, nn, req,
                             seed + 0x9e3779b97f4a7c15ull * (uint64_t)chunk_no++, sink, user, err, errlen);
            spoke = 1;
        }
        kg2p_doc_free(&d);
    }
    free(seg);
    free(ps);
    if (!rc && cancelled(req)) rc = err_set(err, errlen, ERR_CANCEL, "cancelled");
    if (!rc && !spoke) rc = err_set(err, errlen, ERR_INVAL, "nothing to speak in the text");
    return rc;
}

static void kke_destroy(engine *e)
{
    kke *k = (kke *)e;
    if (!k) return;
    kk_free(k->m);
    kg2p_free(k->us);
    kg2p_free(k->gb);
    pthread_mutex_destroy(&k->gb_mu);
    free(k->voices);
    free(k);
}

static const eng_ops kke_ops = {kke_list, kke_check, kke_synth, kke_destroy};

/* <dir>/kokoro-v1_0.safetensors, else the only *.safetensors in dir. */
static int find_weights(const char *dir, char *out, char *err, size_t errlen)
{
    snprintf(out, KKE_PATH, "%.900s/kokoro-v1_0.safetensors", dir);
    if (file_exists(out)) return 0;
    snprintf(out, KKE_PATH, "%.900s/kokoro-v1_0.pth", dir);
    if (file_exists(out)) return 0;
    DIR *d = opendir(dir);
    if (!d) return err_set(err, errlen, ERR_NOTFOUND, "kokoro: cannot open folder %s", dir);
    int found = 0, pth = 0;
    char pthp[KKE_PATH] = "";
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n > 12 && !strcmp(e->d_name + n - 12, ".safetensors")) {
            found++;
            snprintf(out, KKE_PATH, "%.700s/%.200s", dir, e->d_name);
        } else if (n > 4 && !strcmp(e->d_name + n - 4, ".pth")) {
            pth++;
            snprintf(pthp, sizeof pthp, "%.700s/%.200s", dir, e->d_name);
        }
    }
    closedir(d);
    if (found == 1) return 0;
    if (!found && pth == 1) { /* upstream's checkpoint: converted on load */
        snprintf(out, KKE_PATH, "%s", pthp);
        return 0;
    }
    return err_set(err, errlen, ERR_NOTFOUND,
                   found ? "kokoro: several *.safetensors in %s: name the weights file"
                         : "kokoro: no weights (kokoro-v1_0.pth or a .safetensors) in %s",
                   dir);
}

static int mkdirs(char *p)
{
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        int r = mkdir(p, 0755);
        *s = '/';
        if (r && errno != EEXIST) return -1;
    }
    return mkdir(p, 0755) && errno != EEXIST ? -1 : 0;
}

/* A .pth checkpoint -> its safetensors copy under <cache root>/kokoro/ (converted once;
 * the name carries the source size so a changed file is converted again). */
static int pth_converted(kke *k, char *path, char *err, size_t errlen)
{
    size_t n = strlen(path);
    if (n < 5 || strcmp(path + n - 4, ".pth")) return 0;
    struct stat st;
    if (stat(path, &st)) return err_set(err, errlen, ERR_NOTFOUND, "kokoro: %s not found", path);
    char root[KKE_PATH], dir[KKE_PATH + 16], out[KKE_PATH * 2];
    int rc = hf_cache_root(k->have_hf ? &k->hf : NULL, root, sizeof root, err, errlen);
    if (rc) return rc;
    snprintf(dir, sizeof dir, "%s/kokoro", root);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(out, sizeof out, "%s/%.*s-%lld.safetensors", dir, (int)(strlen(base) - 4), base, (long long)st.st_size);
    if (strlen(out) >= KKE_PATH - 1) return err_set(err, errlen, ERR_TOOBIG, "kokoro: cache path too long");
    if (!file_exists(out)) {
        if (mkdirs(dir)) return err_set(err, errlen, ERR_IO, "kokoro: cannot create %s", dir);
        if ((rc = kk_pth_to_safetensors(path, out, NULL, err, errlen))) return rc;
    }
    memcpy(path, out, strlen(out) + 1);
    return 0;
}

int kke_new(engine **out, const kke_options *o, char *err, size_t errlen)
{
    *out = NULL;
    kke_options def = {0};
    if (!o) o = &def;
    const char *dir = o->dir && *o->dir ? o->dir : NULL;
    if (!dir && !(o->weights && *o->weights))
        return err_set(err, errlen, ERR_NOTFOUND,
                       "kokoro: no model (--kokoro-dir DIR with config.json, kokoro-v1_0.pth or "
                       ".safetensors and voices/NAME.bin; or --kokoro-weights hf to download)");
    kke *k = calloc(1, sizeof *k);
    if (!k) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    pthread_mutex_init(&k->gb_mu, NULL);
    k->voices = calloc(KKE_MAX_VOICES, sizeof *k->voices);
    if (o->hf) {
        k->hf = *o->hf;
        if (o->hf->cache_dir) {
            snprintf(k->hf_cache, sizeof k->hf_cache, "%s", o->hf->cache_dir);
            k->hf.cache_dir = k->hf_cache;
        }
        k->hf.progress = NULL; /* borrowed pointers are not kept past kke_new */
        k->hf.progress_user = NULL;
        k->hf.cancel = NULL;
        k->hf.token = NULL;
        k->hf.endpoint = NULL;
        k->hf.user_agent = NULL;
        k->hf.hub_cache = NULL;
        k->have_hf = 1;
    }
    k->hooks = o->espeak_hooks;
    int rc = 0;
    char weights[KKE_PATH], config[KKE_PATH], p[KKE_PATH * 2];
    if (!k->voices) {
        rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
        goto fail;
    }
    /* weights + config */
    if (o->weights && *o->weights)
        rc = resolve(k, !strcmp(o->weights, "hf") ? KKE_HF_WEIGHTS : o->weights, weights, err, errlen);
    else
        rc = find_weights(dir, weights, err, errlen);
    if (!rc) rc = pth_converted(k, weights, err, errlen);
    if (rc) goto fail;
    if (o->config && *o->config) {
        rc = resolve(k, o->config, config, err, errlen);
    } else if (dir) {
        snprintf(p, sizeof p, "%s/config.json", dir);
        rc = resolve(k, p, config, err, errlen);
    } else {
        rc = resolve(k, KKE_HF_CONFIG, config, err, errlen);
    }
    if (rc) goto fail;
    if ((rc = kk_open(&k->m, weights, config, err, errlen))) goto fail;
    if ((rc = kg2p_vocab_load(&k->vocab, config, err, errlen))) goto fail;
    /* lexicons: local folder when it exists, else fetched */
    if (o->lexicon_dir && *o->lexicon_dir) {
        snprintf(k->lexicon_dir, sizeof k->lexicon_dir, "%s", o->lexicon_dir);
    } else if (dir) {
        snprintf(p, sizeof p, "%s/lexicon/us_gold.json", dir);
        if (file_exists(p)) snprintf(k->lexicon_dir, sizeof k->lexicon_dir, "%s/lexicon", dir);
    }
    if ((rc = kg2p_espeak_init(o->espeak_ready, o->espeak_data, err, errlen))) goto fail;
    if ((rc = load_lexicon(k, 0, &k->us, err, errlen))) goto fail;
    /* voices */
    if (o->voices_dir && *o->voices_dir)
        snprintf(k->voices_dir, sizeof k->voices_dir, "%s", o->voices_dir);
    else if (dir)
        snprintf(k->voices_dir, sizeof k->voices_dir, "%s/voices", dir);
    if (*k->voices_dir) {
        if ((rc = scan_voices(k, err, errlen))) goto fail;
    } else {
        for (size_t i = 0; i < KKE_NKNOWN; i++) add_voice(k, kke_known[i]);
    }
    snprintf(k->default_voice, sizeof k->default_voice, "%s", voice_index(k, "af_heart") >= 0 ? "af_heart" : k->voices[0]);
    k->first_chunk = o->first_chunk == 0 ? 12 : o->first_chunk < 0 ? -1 : o->first_chunk;
    const kk_dims *d = kk_get_dims(k->m);
    snprintf(k->desc, sizeof k->desc, "kokoro 82M-layout model (%d-wide, %d ALBERT layers), %zu voices, %zu-word lexicon",
             d->hidden, d->bert_layers, k->nvoices, kg2p_lexicon_size(k->us));
    k->base.ops = &kke_ops;
    snprintf(k->id, sizeof k->id, "%s", o->id && *o->id ? o->id : "kokoro");
    k->base.id = k->id;
    k->base.desc = k->desc;
    k->base.caps = ENG_CAP_SPEED | ENG_CAP_SEED;
    k->base.max_parallel = o->max_parallel > 0 ? o->max_parallel : 2;
    k->base.default_voice = k->default_voice;
    *out = &k->base;
    return 0;
fail:
    kke_destroy(&k->base);
    return rc;
}
