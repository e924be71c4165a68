/* pocket.c — the pocket-tts engine: model loading (local folder or hf:// assets), voice
 * states (resolved by voices.c, cached in memory and on disk), and per-request streaming
 * generation: chunks -> FlowLM steps -> Mimi frames -> sink, one 1920-sample frame at a
 * time, optionally with Mimi on a second thread.
 *
 * Invariants: the loaded model (weights mapping, FlowLM, Mimi, tokenizer) is immutable
 * after pke_new, so any number of synth() calls share it; everything mutable lives in a
 * request (KV state, Mimi decoder, noise generator, pipeline queue) or behind the voice
 * cache's mutex. A voice state in the cache is never written: each chunk copies it into
 * the request's own state (pk_fstate_copy), as upstream deep-copies it.
 *
 * Why the disk cache is keyed by content: users drop a WAV into the voices folder and may
 * replace it under the same name; hashing the bytes (cheap next to encoding) makes a
 * stale state impossible, and the model key (a hash of the checkpoint's header and size)
 * keeps states of different models apart.
 */
#include "engine/pocket/pocket.h"

#include "core/err.h"
#include "engine/pocket/flowlm.h"
#include "engine/pocket/mimi.h"
#include "engine/pocket/pkconfig.h"
#include "engine/pocket/spm.h"
#include "engine/pocket/textprep.h"
#include "engine/pocket/voices.h"
#include "model/safetensors.h"
#include "nn/nn.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PKE_MAX_VOICE_POSITIONS 4096 /* a voice state longer than this (~5 min) is refused */
#define PKE_PROMPT_SECONDS 30.0      /* audio prompts are cut to their first 30 s, as upstream */
#define PKE_QUEUE 4                  /* pipeline: latents in flight between FlowLM and Mimi */
#define PKE_SPARES 2                 /* finished requests' KV state + Mimi decoder kept for reuse */
#define PKE_SPARE_MAX_POS 1024       /* a bigger KV state (~48 MB at full size) is freed, not kept */

/* Upstream asset revisions (reference ARCHITECTURE.md §1); other languages use "main". */
#define PKE_REPO_GATED "kyutai/pocket-tts"
#define PKE_REPO_PUBLIC "kyutai/pocket-tts-without-voice-cloning"

typedef struct pke {
    engine base; /* first member */
    char id[64], desc[320], default_voice[PKV_ID_MAX + 1], lang[64];
    pk_config cfg;
    st_file *wf;
    pk_flowlm *fl;
    mimi *mm;
    spm_model *sp;
    nn_pool *pool;  /* FlowLM steps (threads) */
    nn_pool *ppool; /* text prompts and steps while the decoder thread is idle (prompt_threads), or NULL */
    pke_mark_fn mark;
    void *mark_ud;
    pkv_store *vs;
    int can_clone;
    int pipeline;
    int frames_after_eos;
    int first_chunk_tokens; /* 0 = upstream chunking only */
    int step_apart;         /* text prompt and step 0 as two passes (pke_options.first_step_apart) */
    int mimi_batch;         /* frames per Mimi call when behind, 1..PKE_QUEUE; negative = forced */
    int step_share;         /* the decoder thread helps with steps when idle (pke_options.step_share) */
    atomic_int active;      /* synth() calls running now */
    int bf16, q8, huge;     /* FlowLM weights as loaded */
    pk_gen_params gp;
    tp_opts tpo;
    char model_key[33];
    char state_dir[PATH_MAX]; /* "" = no disk cache */
    char model_dir[PATH_MAX]; /* realpath of a local model folder, else "" */
    /* hf options, copied */
    hf_options hfo;
    char hf_cache[1024], hf_endpoint[512], hf_token[512], hf_hub[1024];
    pke_load_stats ls;
    size_t kv_bytes_per_pos;
    /* request states kept for the next request: a fresh KV cache costs page faults on the
     * first-audio path (the voice copy touches ~6 MB), a fresh decoder its allocations */
    pthread_mutex_t spare_mu;
    int nspares;
    struct {
        pk_fstate *st;
        mimi_dec *dec;
        int batch; /* frames per call the decoder was made for */
    } spares[PKE_SPARES];
} pke;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---- model files --------------------------------------------------------------------- */

/* Joins dir and a relative name into out[n]; absolute names are taken as they are. */
static int join(char *out, size_t n, const char *dir, const char *name)
{
    int k = name[0] == '/' ? snprintf(out, n, "%s", name) : snprintf(out, n, "%s/%s", dir, name);
    return k < 0 || (size_t)k >= n ? ERR_TOOBIG : 0;
}

/* Finds config, weights and tokenizer in a local folder. */
static int find_local(const char *dir, const char *lang, pk_config *cfg, char *wpath, char *tpath, size_t n,
                      int *packaged, char *err, size_t errlen)
{
    *packaged = 0;
    DIR *d = opendir(dir);
    if (!d) return err_set(err, errlen, ERR_NOTFOUND, "model folder %s: %s", dir, strerror(errno));
    /* candidates: *.resolved.json sorted by name; the first whose weights file exists wins */
    char names[32][256];
    int nn_ = 0;
    struct dirent *de;
    while ((de = readdir(d)) && nn_ < 32) {
        size_t l = strlen(de->d_name);
        if (l > 14 && l < 256 && !strcmp(de->d_name + l - 14, ".resolved.json")) {
            memcpy(names[nn_], de->d_name, l + 1);
            nn_++;
        }
    }
    closedir(d);
    for (int i = 0; i < nn_; i++)
        for (int j = i + 1; j < nn_; j++)
            if (strcmp(names[j], names[i]) < 0) {
                char t[256];
                memcpy(t, names[i], 256);
                memcpy(names[i], names[j], 256);
                memcpy(names[j], t, 256);
            }
    char p[PATH_MAX], e2[256];
    for (int i = 0; i < nn_; i++) {
        pk_config c;
        if (join(p, sizeof p, dir, names[i]) || pk_config_load_json(&c, p, e2, sizeof e2)) continue;
        if (!c.weights_path[0] || strstr(c.weights_path, "://")) continue;
        if (join(wpath, n, dir, c.weights_path) || !file_exists(wpath)) continue;
        const char *tok = c.tokenizer_path[0] && !strstr(c.tokenizer_path, "://") ? c.tokenizer_path : "tokenizer.model";
        if (join(tpath, n, dir, tok) || !file_exists(tpath))
            return err_set(err, errlen, ERR_NOTFOUND, "%s: tokenizer %s not found", names[i], tok);
        char stem[64];
        snprintf(stem, sizeof stem, "%.*s", (int)(strlen(names[i]) - 14), names[i]);
        *cfg = c;
        snprintf(cfg->name, sizeof cfg->name, "%s", stem);
        return 0;
    }
    /* no usable config file: model.safetensors + tokenizer.model with a built-in config */
    if (join(wpath, n, dir, "model.safetensors") == 0 && file_exists(wpath) &&
        join(tpath, n, dir, "tokenizer.model") == 0 && file_exists(tpath)) {
        int rc = pk_config_builtin(cfg, lang, err, errlen);
        *packaged = rc == 0; /* an upstream language folder: built-in voices apply */
        return rc;
    }
    return err_set(err, errlen, ERR_NOTFOUND,
                   "model folder %s: no *.resolved.json naming a weights file in it, and no "
                   "model.safetensors + tokenizer.model",
                   dir);
}

static void hf_uris(const char *lang, int gated, char *w, char *t, size_t n)
{
    const char *rev_w = "main", *rev_t = "main";
    if (!strcmp(lang, "english_2026-04")) {
        rev_w = gated ? "19f95fe2df36e79fbd9f10008595cc4c977a0fcc" : "d29db7978e464fb90cb3359ee0c69a273b9142cc";
        rev_t = "d29db7978e464fb90cb3359ee0c69a273b9142cc";
    } else if (!strcmp(lang, "english")) {
        rev_w = gated ? "39592ff23c9ef80098bb74895d104c26275fe2c9" : "main";
        rev_t = "d29db7978e464fb90cb3359ee0c69a273b9142cc";
    }
    snprintf(w, n, "hf://%s/languages/%s/model.safetensors@%s", gated ? PKE_REPO_GATED : PKE_REPO_PUBLIC, lang, rev_w);
    snprintf(t, n, "hf://%s/languages/%s/tokenizer.model@%s", PKE_REPO_PUBLIC, lang, rev_t);
}

/* Model key: FNV over the safetensors header bytes and the file size (fast, content-based
 * enough: a different checkpoint has different offsets/metadata or sizes). */
static int model_key(const char *path, char out[33], char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return err_set(err, errlen, ERR_IO, "%s: %s", path, strerror(errno));
    unsigned char hb[8];
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) || read(fd, hb, 8) != 8) rc = err_set(err, errlen, ERR_FORMAT, "%s: too short", path);
    uint64_t hl = 0;
    for (int i = 7; !rc && i >= 0; i--) hl = hl << 8 | hb[i];
    if (!rc && (hl > (100u << 20) || hl + 8 > (uint64_t)st.st_size)) rc = err_set(err, errlen, ERR_FORMAT, "%s: bad header", path);
    unsigned char *h = rc ? NULL : malloc(hl + 16);
    if (!rc && !h) rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
    if (!rc && pread(fd, h, hl, 8) != (ssize_t)hl) rc = err_set(err, errlen, ERR_IO, "%s: short read", path);
    if (!rc) {
        uint64_t sz = (uint64_t)st.st_size;
        memcpy(h + hl, &sz, 8);
        pkv_hash_mem(h, hl + 8, out);
    }
    free(h);
    close(fd);
    return rc;
}

/* ---- voice states ---------------------------------------------------------------------- */

static void fstate_free_v(void *v) { pk_fstate_free(v); }

static int state_from_file(pke *e, const char *path, pk_fstate **out, char *err, size_t errlen)
{
    st_file *f = NULL;
    char e2[256];
    int rc = st_open(&f, path, e2, sizeof e2);
    if (rc) return err_set(err, errlen, ERR_INVAL, "voice state file: %s", e2);
    const st_tensor *c = st_find(f, "transformer.layers.0.self_attn/cache");
    if (!c || c->ndim != 5 || c->shape[2] < 1 || c->shape[2] > PKE_MAX_VOICE_POSITIONS) {
        st_close(f);
        return err_set(err, errlen, ERR_INVAL, "voice state file: not a pocket-tts voice state (or over %d positions)",
                       PKE_MAX_VOICE_POSITIONS);
    }
    pk_fstate *s = NULL;
    rc = pk_fstate_new(&s, e->fl, (int)c->shape[2], err, errlen);
    if (!rc) {
        rc = pk_fstate_import_voice(s, f, e2, sizeof e2);
        if (rc) rc = err_set(err, errlen, ERR_INVAL, "voice state file does not fit this model: %s", e2);
    }
    st_close(f);
    if (rc) {
        pk_fstate_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

static int state_from_audio(pke *e, const char *path, int fmt, pk_fstate **out, char *err, size_t errlen)
{
    if (!e->can_clone)
        return err_set(err, errlen, ERR_INVAL,
                       "voice cloning is not available with the public weights (set HF_TOKEN after accepting the "
                       "terms of %s); use a built-in voice or a voice-state .safetensors",
                       PKE_REPO_GATED);
    char hex[33], cpath[PATH_MAX + 128];
    int rc;
    if (e->state_dir[0]) {
        if ((rc = pkv_hash_file(path, hex, err, errlen))) return rc;
        snprintf(cpath, sizeof cpath, "%s/%s/%s.safetensors", e->state_dir, e->model_key, hex);
        if (file_exists(cpath) && state_from_file(e, cpath, out, err, errlen) == 0) return 0;
    }
    float *pcm = NULL, *mono = NULL, *lat = NULL;
    size_t nf = 0, nm = 0;
    int ch = 0, rate = 0, F = 0;
    char e2[256];
    rc = pkv_read_audio(path, fmt, &pcm, &nf, &ch, &rate, e2, sizeof e2);
    if (rc) return err_set(err, errlen, rc == ERR_NOMEM ? rc : ERR_INVAL, "voice audio: %s", e2);
    rc = mimi_prompt_pcm(pcm, nf, ch, rate, e->cfg.sample_rate, PKE_PROMPT_SECONDS, &mono, &nm, e2, sizeof e2);
    free(pcm);
    if (rc) return err_set(err, errlen, rc == ERR_NOMEM ? rc : ERR_INVAL, "voice audio: %s", e2);
    rc = mimi_encode(e->mm, mono, nm, &lat, &F, NULL, NULL, err, errlen);
    free(mono);
    pk_fstate *s = NULL;
    if (!rc) rc = pk_fstate_new(&s, e->fl, F + 1, err, errlen);
    if (!rc) rc = pk_flowlm_prompt_voice(e->fl, s, lat, F, &e->gp, NULL, err, errlen);
    free(lat);
    if (rc) {
        pk_fstate_free(s);
        return rc;
    }
    if (e->state_dir[0]) { /* best effort: a read-only cache only costs re-encoding */
        char d1[PATH_MAX + 64];
        snprintf(d1, sizeof d1, "%s/%s", e->state_dir, e->model_key);
        mkdir(e->state_dir, 0755);
        mkdir(d1, 0755);
        pk_fstate_export_voice(s, cpath, e2, sizeof e2);
    }
    *out = s;
    return 0;
}

/* An OpenAI voice name that names nothing else (no file, no built-in of that name) stands
 * for its built-in voice (pkv_alias), or for the default voice when there are no built-ins;
 * any other name is returned as is. */
static const char *alias_of(pke *e, const char *voice)
{
    const char *tgt = pkv_alias(voice);
    if (!tgt) return voice;
    pkv_source *src = malloc(sizeof *src);
    char e2[64];
    int rc = src ? pkv_resolve(e->vs, voice, src, e2, sizeof e2) : ERR_NOMEM;
    free(src);
    if (rc != ERR_NOTFOUND) return voice;
    return pkv_has_builtins(e->vs) ? tgt : e->default_voice;
}

/* voice -> held cache entry (NULL entry = no voice: generate without a prefix). */
static int get_voice(pke *e, const char *voice, const atomic_int *cancel, pkv_entry **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!voice || !*voice) voice = e->default_voice;
    voice = alias_of(e, voice);
    if (!*voice || !strcmp(voice, "none")) return 0;
    pkv_source *src = malloc(sizeof *src);
    if (!src) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    int rc = pkv_resolve(e->vs, voice, src, err, errlen);
    if (rc) goto done;
    if ((*out = pkv_cache_get(e->vs, src->key))) goto done;
    char local[PKV_LOC_MAX];
    const char *path = src->loc;
    if (src->kind == PKV_BUILTIN && e->model_dir[0]) { /* a local upstream folder may carry them */
        int k = snprintf(local, sizeof local, "%s/embeddings/%s.safetensors", e->model_dir, voice);
        if (k > 0 && (size_t)k < sizeof local && file_exists(local)) path = local;
    }
    if (src->kind == PKV_URL || (src->kind == PKV_BUILTIN && path == src->loc)) {
        hf_options o = e->hfo;
        o.cancel = cancel;
        o.max_bytes = src->fmt == PKV_STATE ? (uint64_t)PKE_MAX_VOICE_POSITIONS * e->kv_bytes_per_pos + (1u << 20)
                                            : PKV_AUDIO_MAX_BYTES;
        char e2[512];
        rc = hf_fetch(src->loc, &o, local, sizeof local, e2, sizeof e2);
        if (rc) { /* what the client named is wrong (400) unless the network or disk failed */
            int code = rc == ERR_CANCEL || rc == ERR_NOTFOUND || rc == ERR_NOMEM ? rc
                       : rc == ERR_IO                                             ? ERR_IO
                                                                                  : ERR_INVAL;
            rc = err_set(err, errlen, code, "voice '%s': %s", voice, e2);
            goto done;
        }
        path = local;
    }
    pk_fstate *s = NULL;
    if (src->fmt == PKV_STATE) rc = state_from_file(e, path, &s, err, errlen);
    else if (src->fmt == PKV_UNKNOWN) rc = err_set(err, errlen, ERR_INVAL, "voice '%s': unknown file type", voice);
    else rc = state_from_audio(e, path, src->fmt, &s, err, errlen);
    if (rc) goto done;
    *out = pkv_cache_put(e->vs, src->key, s, (size_t)pk_fstate_pos(s) * e->kv_bytes_per_pos + 4096, fstate_free_v);
    if (!*out) rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
done:
    free(src);
    return rc;
}

/* ---- generation ------------------------------------------------------------------------ */

typedef struct gen {
    pke *e;
    const eng_synth_req *req;
    eng_sink_fn sink;
    void *user;
    pk_fstate *st;
    mimi_dec *dec;
    pk_gauss g;
    pk_noise nz;
    int spf; /* samples per frame */
    float *pcm;
    /* pipeline */
    int piped;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    float *lat_q;  /* [PKE_QUEUE, ldim] */
    float *pcm_q;  /* [PKE_QUEUE, spf] */
    int cmd_q[PKE_QUEUE]; /* 0 = frame, 1 = reset, 2 = stop */
    int head, tail_dec, tail_out; /* produced, decoded, delivered */
    int abort;                    /* stop delivering: the request failed or was cancelled */
    int emitted;                  /* frames handed to the decoder so far */
    int batch;                    /* most frames per Mimi call (1 = frame by frame) */
    int force_batch;              /* wait for `batch` frames (tests) unless flushing */
    int flush_upto;               /* drain(wait_all) wants everything before this decoded now */
    int batches;                  /* multi-frame calls made (tests) */
    float *zb, *pb;               /* batch scratch: [PKE_QUEUE, ldim], [PKE_QUEUE, spf] */
    pk_share *sh;                 /* steps' linears shared with the decoder thread when it is idle */
    int dec_rc;
    char dec_err[256];
} gen;

static int cancelled(const gen *g) { return g->req->cancel && atomic_load(g->req->cancel); }

static inline void cpu_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Marks a FlowLM step running (the decoder thread polls for chunks meanwhile) or done.
 * With another request running there is no idle core to lend: the helper stays asleep
 * rather than spin against the other request's threads. */
static void stepping(gen *g, int on)
{
    if (!g->sh || (on && atomic_load(&g->e->active) > 1)) return;
    pthread_mutex_lock(&g->mu);
    pk_share_set_stepping(g->sh, on);
    if (on) pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void mark(const pke *e, int stage)
{
    if (e->mark) e->mark(e->mark_ud, stage, now_ms());
}

/* Both cores are free for the FlowLM when the decoder thread has no frame queued: during
 * text prompts (each chunk's tail is drained first) and the first step(s) of a chunk
 * (the first frame of a request is decoded inline, so steps 0 and 1 there). Later steps
 * start right after a frame was queued and take the step pool, which leaves the other
 * core to Mimi. The pool does not change the samples (pk_fstate_set_pool). */
static nn_pool *flow_pool(gen *g)
{
    pke *e = g->e;
    if (!e->ppool || !g->piped) return NULL; /* decoding inline (no thread): the step pool */
    pthread_mutex_lock(&g->mu);
    int idle = 1; /* no frame waiting or being decoded (a queued reset costs nothing) */
    for (int i = g->tail_dec; i < g->head; i++) idle &= g->cmd_q[i % PKE_QUEUE] != 0;
    pthread_mutex_unlock(&g->mu);
    return idle ? e->ppool : NULL;
}

/* The decoder thread: takes commands in order. Frames are decoded in one mimi_dec_frames
 * call when several are queued (the decoder is behind the FlowLM): bigger GEMMs, less CPU
 * per frame, and the same samples as one by one (Mimi's kernels are batch-invariant), so
 * the timing still decides nothing. With a forced batch (pke_options.mimi_batch < 0) it
 * waits for that many frames unless the caller is draining (flush_upto) or a command
 * follows. */
static void *dec_main(void *arg)
{
    gen *g = arg;
    int ld = g->e->cfg.ldim;
    pthread_setname_np(pthread_self(), "pk-mimi"); /* top -H, the engine bench */
    pthread_mutex_lock(&g->mu);
    for (;;) {
        while (g->tail_dec == g->head) {
            if (!g->sh || !pk_share_stepping(g->sh)) {
                pthread_cond_wait(&g->cv, &g->mu);
                continue;
            }
            /* nothing to decode while the FlowLM steps: take row chunks of its linears (the
             * step ends, and its frame is queued, only after every claimed chunk is done) */
            pthread_mutex_unlock(&g->mu);
            for (int idle = 0; pk_share_stepping(g->sh);) {
                if (pk_share_help(g->sh)) idle = 0;
                else if (++idle < 4096) cpu_pause();
                else sched_yield();
            }
            pthread_mutex_lock(&g->mu);
        }
        int slot = g->tail_dec % PKE_QUEUE, cmd = g->cmd_q[slot], skip = g->abort || g->dec_rc, n = 1;
        if (cmd == 0) {
            while (n < g->batch && g->tail_dec + n < g->head && g->cmd_q[(g->tail_dec + n) % PKE_QUEUE] == 0) n++;
            int more_may_come = g->tail_dec + n == g->head; /* nothing but frames queued */
            if (g->force_batch && n < g->batch && more_may_come && g->tail_dec >= g->flush_upto && !skip) {
                pthread_cond_wait(&g->cv, &g->mu);
                continue;
            }
        }
        pthread_mutex_unlock(&g->mu);
        int rc = 0;
        if (cmd == 2) return NULL;
        if (cmd == 1) {
            mimi_dec_reset(g->dec);
        } else if (!skip && n == 1) {
            float z[1024];
            mimi_denorm(g->e->mm, g->lat_q + (size_t)slot * ld, z);
            rc = mimi_dec_frame(g->dec, z, g->pcm_q + (size_t)slot * g->spf, g->dec_err, sizeof g->dec_err);
        } else if (!skip) { /* n ring slots -> contiguous [n, ldim] -> [n, spf] -> slots */
            for (int i = 0; i < n; i++)
                mimi_denorm(g->e->mm, g->lat_q + (size_t)((g->tail_dec + i) % PKE_QUEUE) * ld, g->zb + (size_t)i * ld);
            rc = mimi_dec_frames(g->dec, g->zb, n, g->pb, g->dec_err, sizeof g->dec_err);
            for (int i = 0; !rc && i < n; i++)
                memcpy(g->pcm_q + (size_t)((g->tail_dec + i) % PKE_QUEUE) * g->spf, g->pb + (size_t)i * g->spf,
                       (size_t)g->spf * sizeof(float));
            g->batches++;
        }
        pthread_mutex_lock(&g->mu);
        if (rc && !g->dec_rc) g->dec_rc = rc;
        g->tail_dec += n; /* tail_dec is written only here, under the mutex */
        pthread_cond_broadcast(&g->cv);
    }
}

/* Delivers decoded frames to the sink (in order, from the caller's thread): all queued
 * ones if wait_all, else those ready (waiting for one when the queue is full). After an
 * abort frames are consumed without delivery. */
static int drain(gen *g, int wait_all, char *err, size_t errlen)
{
    int rc = 0;
    pthread_mutex_lock(&g->mu);
    if (wait_all || g->head - g->tail_out >= PKE_QUEUE) { /* waiting: a forced batch must not hold frames back */
        g->flush_upto = g->head;
        pthread_cond_broadcast(&g->cv);
    }
    for (;;) {
        while (!rc && g->tail_out < g->tail_dec) {
            int slot = g->tail_out % PKE_QUEUE, cmd = g->cmd_q[slot], deliver = cmd == 0 && !g->abort;
            if (deliver && g->dec_rc) {
                rc = err_set(err, errlen, g->dec_rc, "%s", g->dec_err);
                break;
            }
            pthread_mutex_unlock(&g->mu);
            if (deliver && g->sink(g->user, g->pcm_q + (size_t)slot * g->spf, (size_t)g->spf))
                rc = err_set(err, errlen, ERR_CANCEL, "cancelled by sink");
            pthread_mutex_lock(&g->mu);
            g->tail_out++;
            pthread_cond_broadcast(&g->cv);
        }
        if (rc) break;
        int full = g->head - g->tail_out >= PKE_QUEUE;
        if (g->tail_out == g->head || (!wait_all && !full)) break;
        pthread_cond_wait(&g->cv, &g->mu);
    }
    pthread_mutex_unlock(&g->mu);
    return rc;
}

/* Queues a command (0 = a frame's latent, 1 = decoder reset, 2 = stop) for the decoder. */
static int push(gen *g, int cmd, const float *lat, char *err, size_t errlen)
{
    for (;;) {
        pthread_mutex_lock(&g->mu);
        int full = g->head - g->tail_out >= PKE_QUEUE;
        pthread_mutex_unlock(&g->mu);
        if (!full) break;
        int rc = drain(g, 0, err, errlen);
        if (rc) return rc;
    }
    pthread_mutex_lock(&g->mu);
    int slot = g->head % PKE_QUEUE;
    g->cmd_q[slot] = cmd;
    if (lat) memcpy(g->lat_q + (size_t)slot * g->e->cfg.ldim, lat, (size_t)g->e->cfg.ldim * sizeof(float));
    g->head++;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    return 0;
}

static int emit_frame(gen *g, const float *lat, char *err, size_t errlen)
{
    /* The first frame of a request is decoded right here even when pipelined: it is what
     * the listener waits for, a hand-off to the decoder thread only adds a wake-up, and the
     * overlap pays off from the second frame on. Safe: nothing has been queued yet, so the
     * decoder thread has not touched g->dec (later hand-offs go through the mutex); if a
     * chunk reset was queued before (an empty first chunk) the first frame goes through
     * the queue too and is waited for. head is written only by this thread. */
    int first = g->emitted++ == 0;
    if (g->piped && !(first && g->head == 0)) {
        int rc = push(g, 0, lat, err, errlen);
        return rc ? rc : drain(g, first, err, errlen);
    }
    float z[1024];
    mimi_denorm(g->e->mm, lat, z);
    /* the first frame, pipelined: the decoder thread is idle, so both cores decode it */
    nn_pool *fp = first && g->piped ? g->e->ppool : NULL;
    if (fp) mimi_dec_set_pool(g->dec, fp);
    int rc = mimi_dec_frame(g->dec, z, g->pcm, err, errlen);
    if (fp) mimi_dec_set_pool(g->dec, NULL);
    if (rc) return rc;
    if (first) mark(g->e, PKE_MARK_DECODE);
    if (g->sink(g->user, g->pcm, (size_t)g->spf)) return err_set(err, errlen, ERR_CANCEL, "cancelled by sink");
    if (first) mark(g->e, PKE_MARK_SINK);
    return 0;
}

static int gen_chunk(gen *g, const pk_fstate *voice, const tp_chunk *c, char *err, size_t errlen)
{
    pke *e = g->e;
    pk_fstate_reset(g->st);
    int rc = 0, first = g->emitted == 0;
    if (voice && (rc = pk_fstate_copy(g->st, voice, err, errlen))) return rc;
    if (first) mark(e, PKE_MARK_COPY);
    if (c->n_ids == 0) return 0;
    if (cancelled(g)) return err_set(err, errlen, ERR_CANCEL, "cancelled");
    int *ids = malloc(c->n_ids * sizeof *ids);
    if (!ids) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < c->n_ids; i++) ids[i] = c->ids[i];
    float lat[1024], logit = 0;
    pk_fstate_set_pool(g->st, flow_pool(g));
    /* the text prompt and step 0 in one pass (weights streamed once) unless told apart */
    if (e->step_apart) rc = pk_flowlm_prompt_text(e->fl, g->st, ids, (int)c->n_ids, &e->gp, NULL, err, errlen);
    else rc = pk_flowlm_prompt_text_step(e->fl, g->st, ids, (int)c->n_ids, &e->gp, &g->nz, lat, &logit, err, errlen);
    free(ids);
    if (rc) return rc;
    if (first) mark(e, PKE_MARK_PROMPT);
    int fae = e->frames_after_eos > 0 ? e->frames_after_eos
              : e->cfg.frames_after_eos >= 0 ? e->cfg.frames_after_eos
                                              : c->frames_after_eos;
    pk_eos eos;
    pk_eos_init(&eos, fae, c->max_gen_len);
    for (int k = 0; !rc; k++) {
        if (k > 0 || e->step_apart) {
            if (cancelled(g)) return err_set(err, errlen, ERR_CANCEL, "cancelled");
            pk_fstate_set_pool(g->st, flow_pool(g));
            stepping(g, 1);
            rc = pk_flowlm_step(e->fl, g->st, k ? lat : NULL, &e->gp, &g->nz, lat, &logit, err, errlen);
            stepping(g, 0);
            if (rc) break;
        }
        if (k == 0 && g->emitted == 0) mark(e, PKE_MARK_STEP);
        if (!pk_eos_emit(&eos, k, logit, e->gp.eos_threshold)) break;
        rc = emit_frame(g, lat, err, errlen);
    }
    return rc;
}

/* Latency: the text prompt of the first chunk is what the listener waits for (its cost
 * grows with its token count), so a first chunk longer than first_chunk_tokens is split
 * again by upstream's own rule (sentences, then ",;:") under that smaller budget. Only the
 * first chunk changes; a single long clause stays whole. */
static int split_first(const pke *e, tp_chunks *ch, char *err, size_t errlen)
{
    if (e->first_chunk_tokens <= 0 || ch->n == 0 || ch->v[0].n_ids <= (size_t)e->first_chunk_tokens) return 0;
    tp_chunks sub = {0};
    char e2[128];
    if (tp_split(e->sp, ch->v[0].text, ch->v[0].len, e->first_chunk_tokens, &e->tpo, &sub, e2, sizeof e2) ||
        sub.n < 2) {
        tp_chunks_free(&sub);
        return 0; /* keep upstream's chunk */
    }
    tp_chunk *v = malloc((sub.n + ch->n - 1) * sizeof *v);
    if (!v) {
        tp_chunks_free(&sub);
        return err_set(err, errlen, ERR_NOMEM, "out of memory");
    }
    memcpy(v, sub.v, sub.n * sizeof *v);
    memcpy(v + sub.n, ch->v + 1, (ch->n - 1) * sizeof *v);
    free(ch->v[0].text);
    free(ch->v[0].ids);
    free(ch->v);
    free(sub.v);
    ch->v = v;
    ch->n = sub.n + ch->n - 1;
    return 0;
}

/* A KV state with room for `cap` positions and a decoder for `batch` frames per call:
 * the last spare when it fits (reset), else new ones. */
static int take_state(pke *e, int cap, int batch, pk_fstate **st, mimi_dec **dec, char *err, size_t errlen)
{
    *st = NULL, *dec = NULL;
    pthread_mutex_lock(&e->spare_mu);
    int b = 1;
    if (e->nspares > 0) {
        e->nspares--;
        *st = e->spares[e->nspares].st, *dec = e->spares[e->nspares].dec, b = e->spares[e->nspares].batch;
    }
    pthread_mutex_unlock(&e->spare_mu);
    if (*st && pk_fstate_cap(*st) < cap) pk_fstate_free(*st), *st = NULL;
    if (*dec && b != batch) mimi_dec_free(*dec), *dec = NULL;
    if (*st) pk_fstate_reset(*st);
    if (*dec) mimi_dec_reset(*dec);
    int rc = *st ? 0 : pk_fstate_new(st, e->fl, cap, err, errlen);
    if (!rc && !*dec)
        rc = batch > 1 ? mimi_dec_new_batch(dec, e->mm, batch, err, errlen) : mimi_dec_new(dec, e->mm, err, errlen);
    return rc;
}

static void put_state(pke *e, pk_fstate *st, mimi_dec *dec, int batch)
{
    if (st && dec && pk_fstate_cap(st) <= PKE_SPARE_MAX_POS) {
        pthread_mutex_lock(&e->spare_mu);
        int kept = e->nspares < PKE_SPARES;
        if (kept) {
            pk_fstate_set_pool(st, NULL);
            e->spares[e->nspares].st = st, e->spares[e->nspares].dec = dec, e->spares[e->nspares].batch = batch;
            e->nspares++;
        }
        pthread_mutex_unlock(&e->spare_mu);
        if (kept) return;
    }
    mimi_dec_free(dec);
    pk_fstate_free(st);
}

static int pke_synth_(pke *e, const eng_synth_req *req, eng_sink_fn sink, void *user, char *err, size_t errlen);

static int pke_synth(engine *base, const eng_synth_req *req, eng_sink_fn sink, void *user, char *err, size_t errlen)
{
    pke *e = (pke *)base;
    atomic_fetch_add(&e->active, 1);
    int rc = pke_synth_(e, req, sink, user, err, errlen);
    atomic_fetch_sub(&e->active, 1);
    return rc;
}

static int pke_synth_(pke *e, const eng_synth_req *req, eng_sink_fn sink, void *user, char *err, size_t errlen)
{
    gen g;
    memset(&g, 0, sizeof g);
    g.e = e, g.req = req, g.sink = sink, g.user = user;
    g.spf = pk_samples_per_frame(&e->cfg);
    if (!req->text || !*req->text) return err_set(err, errlen, ERR_INVAL, "empty input");
    pkv_entry *ve = NULL;
    int rc = get_voice(e, req->voice, req->cancel, &ve, err, errlen);
    if (rc) return rc;
    mark(e, PKE_MARK_VOICE);
    const pk_fstate *voice = pkv_entry_value(ve);
    tp_chunks ch = {0};
    rc = tp_split(e->sp, req->text, strlen(req->text), TP_MAX_TOKENS_PER_CHUNK, &e->tpo, &ch, err, errlen);
    if (!rc && ch.n == 0) rc = err_set(err, errlen, ERR_INVAL, "input has nothing to speak");
    if (!rc) rc = split_first(e, &ch, err, errlen);
    if (!rc) mark(e, PKE_MARK_TEXT);
    int need = 0;
    for (size_t i = 0; !rc && i < ch.n; i++) {
        int n = (int)ch.v[i].n_ids + ch.v[i].max_gen_len + 1;
        if (n > need) need = n;
    }
    g.batch = e->pipeline ? abs(e->mimi_batch) : 1;
    g.force_batch = e->mimi_batch < 0;
    if (!rc) rc = take_state(e, (voice ? (int)pk_fstate_pos(voice) : 0) + need, g.batch, &g.st, &g.dec, err, errlen);
    g.pcm = rc ? NULL : malloc((size_t)g.spf * sizeof(float));
    if (!rc && !g.pcm) rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
    uint64_t seed = req->seed;
    if (!req->has_seed && getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
        seed = (uint64_t)now_ms() * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)&g;
    pk_gauss_seed(&g.g, seed);
    g.nz.fill = pk_gauss_fill;
    g.nz.ud = &g.g;
    if (!rc && e->pipeline && ch.n > 0) {
        g.lat_q = malloc((size_t)PKE_QUEUE * e->cfg.ldim * sizeof(float));
        g.pcm_q = malloc((size_t)PKE_QUEUE * g.spf * sizeof(float));
        g.zb = malloc((size_t)PKE_QUEUE * e->cfg.ldim * sizeof(float));
        g.pb = malloc((size_t)PKE_QUEUE * g.spf * sizeof(float));
        if (!g.lat_q || !g.pcm_q || !g.zb || !g.pb) rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
        pthread_mutex_init(&g.mu, NULL);
        pthread_cond_init(&g.cv, NULL);
        if (!rc && e->step_share && nn_pool_threads(e->pool) == 1 && pk_share_new(&g.sh, 0) == 0)
            pk_fstate_set_share(g.st, g.sh);
        if (!rc && pthread_create(&g.th, NULL, dec_main, &g) == 0) g.piped = 1;
        if (!g.piped) pk_fstate_set_share(g.st, NULL); /* no helper: steps as usual */
        /* else: fall back to decoding inline */
    }
    if (!rc) mark(e, PKE_MARK_ALLOC);
    for (size_t i = 0; !rc && i < ch.n; i++) {
        if (i > 0) {
            if (g.piped) rc = push(&g, 1, NULL, err, errlen);
            else mimi_dec_reset(g.dec);
        }
        if (!rc) rc = gen_chunk(&g, voice, &ch.v[i], err, errlen);
        /* deliver the chunk's tail before the next text prompt runs: otherwise up to
         * PKE_QUEUE decoded frames would wait behind that prompt (a gap in the stream) */
        if (!rc && g.piped && i + 1 < ch.n) rc = drain(&g, 1, err, errlen);
    }
    if (g.piped) {
        if (!rc) rc = drain(&g, 1, err, errlen);
        if (rc) {
            pthread_mutex_lock(&g.mu);
            g.abort = 1;
            pthread_mutex_unlock(&g.mu);
        }
        char e2[256];
        push(&g, 2, NULL, e2, sizeof e2); /* cannot fail once aborted or drained */
        pthread_join(g.th, NULL);
    }
    if (g.lat_q || g.pcm_q) {
        pthread_mutex_destroy(&g.mu);
        pthread_cond_destroy(&g.cv);
    }
    free(g.lat_q);
    free(g.pcm_q);
    free(g.zb);
    free(g.pb);
    free(g.pcm);
    if (g.st) pk_fstate_set_share(g.st, NULL);
    pk_share_free(g.sh);
    put_state(e, g.st, g.dec, g.batch);
    tp_chunks_free(&ch);
    pkv_cache_release(e->vs, ve);
    return rc;
}

/* ---- engine ops ------------------------------------------------------------------------ */

static int pke_list(engine *base, eng_voice **out, size_t *n, char *err, size_t errlen)
{
    pke *e = (pke *)base;
    return pkv_list(e->vs, out, n, err, errlen);
}

static int pke_check(engine *base, const char *voice, char *err, size_t errlen)
{
    pke *e = (pke *)base;
    if (voice && *voice) voice = alias_of(e, voice);
    if (!voice || !*voice || !strcmp(voice, "none")) return 0;
    pkv_source *src = malloc(sizeof *src);
    if (!src) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    int rc = pkv_resolve(e->vs, voice, src, err, errlen);
    if (!rc && src->fmt != PKV_STATE && !e->can_clone)
        rc = err_set(err, errlen, ERR_INVAL, "voice cloning is not available with the public weights");
    free(src);
    return rc;
}

static void pke_destroy(engine *base)
{
    pke *e = (pke *)base;
    if (!e) return;
    for (int i = 0; i < e->nspares; i++) {
        mimi_dec_free(e->spares[i].dec);
        pk_fstate_free(e->spares[i].st);
    }
    pthread_mutex_destroy(&e->spare_mu);
    pkv_free(e->vs);
    pk_flowlm_free(e->fl);
    mimi_free(e->mm);
    spm_free(e->sp);
    nn_pool_free(e->pool);
    nn_pool_free(e->ppool);
    st_close(e->wf);
    free(e);
}

static const eng_ops pke_ops = {pke_list, pke_check, pke_synth, pke_destroy};

int pke_can_clone(const engine *base) { return ((const pke *)base)->can_clone; }

void pke_get_load_stats(const engine *base, pke_load_stats *st)
{
    const pke *e = (const pke *)base;
    *st = e->ls;
}

size_t pke_cached_voices(engine *base) { return pkv_cache_count(((pke *)base)->vs); }

static void copy_str(char *dst, size_t n, const char *src, const char **field)
{
    if (!src) {
        *field = NULL;
        return;
    }
    snprintf(dst, n, "%s", src);
    *field = dst;
}

int pke_new(engine **out, const pke_options *opt, char *err, size_t errlen)
{
    *out = NULL;
    pke_options dflt = {0};
    if (!opt) opt = &dflt;
    double t0 = now_ms();
    pke *e = calloc(1, sizeof *e);
    if (!e) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    e->base.ops = &pke_ops;
    pthread_mutex_init(&e->spare_mu, NULL);
    snprintf(e->id, sizeof e->id, "%s", opt->id && *opt->id ? opt->id : "pocket-tts");
    snprintf(e->lang, sizeof e->lang, "%s", opt->language && *opt->language ? opt->language : "english");
    if (opt->hf) e->hfo = *opt->hf;
    copy_str(e->hf_cache, sizeof e->hf_cache, e->hfo.cache_dir, &e->hfo.cache_dir);
    copy_str(e->hf_endpoint, sizeof e->hf_endpoint, e->hfo.endpoint, &e->hfo.endpoint);
    copy_str(e->hf_token, sizeof e->hf_token, e->hfo.token, &e->hfo.token);
    copy_str(e->hf_hub, sizeof e->hf_hub, e->hfo.hub_cache, &e->hfo.hub_cache);
    e->hfo.cancel = NULL;
    e->hfo.progress = NULL; /* only for the load below, if given */
    e->hfo.user_agent = NULL;

    char wpath[PATH_MAX], tpath[PATH_MAX], e2[512];
    int rc = 0, local = opt->model_dir && *opt->model_dir, packaged = 0;
    if (local) {
        rc = find_local(opt->model_dir, e->lang, &e->cfg, wpath, tpath, sizeof wpath, &packaged, err, errlen);
        if (!rc && !realpath(opt->model_dir, e->model_dir)) e->model_dir[0] = 0;
        e->can_clone = 1;
    } else {
        rc = pk_config_builtin(&e->cfg, e->lang, err, errlen);
        if (rc) rc = err_set(err, errlen, ERR_NOTFOUND, "unknown language '%s'", e->lang);
        char wu[1024], tu[1024];
        hf_options lo = e->hfo;
        if (opt->hf) lo.progress = opt->hf->progress, lo.progress_user = opt->hf->progress_user;
        if (!rc) {
            hf_uris(e->lang, 1, wu, tu, sizeof wu);
            rc = hf_fetch(wu, &lo, wpath, sizeof wpath, e2, sizeof e2);
            e->can_clone = rc == 0;
            if (rc) { /* any failure: the public weights, without voice cloning */
                char e3[512];
                hf_uris(e->lang, 0, wu, tu, sizeof wu);
                rc = hf_fetch(wu, &lo, wpath, sizeof wpath, e3, sizeof e3);
                if (rc) rc = err_set(err, errlen, rc == ERR_IO || rc == HF_ERR_GATED ? ERR_NOTFOUND : rc,
                                     "pocket-tts weights: %s; public weights: %s", e2, e3);
            }
        }
        if (!rc) {
            rc = hf_fetch(tu, &lo, tpath, sizeof tpath, e2, sizeof e2);
            if (rc) rc = err_set(err, errlen, rc == ERR_IO ? ERR_NOTFOUND : rc, "pocket-tts tokenizer: %s", e2);
        }
    }
    double t1 = now_ms();
    if (!rc) rc = st_open(&e->wf, wpath, err, errlen);
    if (!rc) rc = model_key(wpath, e->model_key, err, errlen);
    double t2 = now_ms();
    /* default threads: with Mimi on its own thread, FlowLM gets the other cores (upstream
     * runs one thread each); the pool spins briefly, so oversubscribing costs */
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1) ncpu = 1;
    int piped = opt->pipeline != 0;
    int threads = opt->threads > 0 ? opt->threads : (int)(piped ? (ncpu > 2 ? ncpu - 1 : 1) : ncpu);
    if (threads > 8 && opt->threads <= 0) threads = 8;
    /* pipelined, a step pool as large as the machine would fight the decoder thread for its
     * core (measured on 2 cores: 2 step threads + Mimi = 49 frames/s vs 67 with 1 + Mimi,
     * which lends itself to the steps when idle); so steps use at most cores - 1 and the
     * rest of `threads` goes to the prompt pool below */
    int asked = threads;
    if (piped && threads >= ncpu && ncpu > 1) threads = (int)ncpu - 1;
    if (!rc) rc = nn_pool_new(&e->pool, threads, err, errlen);
    /* pipelined, text prompts (and steps while the decoder is idle) get every core, the
     * decoder thread's included (see flow_pool); sequential runs use `threads` throughout */
    int pthreads = !piped ? threads : opt->prompt_threads > 0 ? opt->prompt_threads : opt->prompt_threads < 0 ? threads
                                                                                    : (int)(asked > ncpu ? asked : ncpu);
    if (pthreads > 8 && opt->prompt_threads <= 0) pthreads = 8;
    if (!rc && pthreads > threads) rc = nn_pool_new(&e->ppool, pthreads, err, errlen);
    e->mark = opt->mark;
    e->step_apart = opt->first_step_apart > 0;
    e->step_share = opt->step_share >= 0;
    {
        int b = opt->mimi_batch ? abs(opt->mimi_batch) : PKE_QUEUE;
        if (b > PKE_QUEUE) b = PKE_QUEUE;
        e->mimi_batch = opt->mimi_batch < 0 ? -b : b;
    }
    e->mark_ud = opt->mark_ud;
    if (!rc) {
        /* speed default for full-size models: BF16 matrices (half the bytes streamed per
         * frame); small models (the tiny reference) stay exact. The huge-page arena is
         * opt-in: it gains 6-8 % frames/s but costs 700-900 ms of startup on a box whose
         * memory is full of page cache (the kernel compacts to find 2 MiB pages), which
         * breaks the < 1 s startup target (SPEED.md, session 2) */
        int big = e->cfg.d_model >= 512;
        int bf = opt->bf16 > 0 || (opt->bf16 == 0 && big);
        int hp = opt->hugepages > 0;
        pk_flowlm_opts fo;
        memset(&fo, 0, sizeof fo);
        fo.dtype = opt->quantize > 0 ? NN_Q8 : bf ? NN_BF16 : pk_flowlm_native_dtype(e->wf, NULL);
        if (opt->quantize > 0) bf = 0;
        fo.pool = e->pool;
        fo.hugepages = hp;
        e->bf16 = bf;
        e->q8 = opt->quantize > 0;
        e->huge = hp;
        /* the loader hands the mapped F32 pages of copied matrices back as it goes, so the
         * load-time peak is the final footprint plus one matrix */
        rc = pk_flowlm_load(&e->fl, &e->cfg, e->wf, &fo, err, errlen);
    }
    double t3 = now_ms();
    if (!rc) {
        mimi_config mc;
        mimi_config_from_pk(&mc, &e->cfg);
        rc = mimi_open(&e->mm, e->wf, "mimi.", "flow_lm.", &mc, MIMI_DECODER | (e->can_clone ? MIMI_ENCODER : 0), err,
                       errlen);
        /* int8 Mimi decoder transformer with --quantize (fewer weight bytes per frame) */
        if (!rc && (opt->mimi_quantize > 0 || (opt->mimi_quantize == 0 && opt->quantize > 0)))
            rc = mimi_set_dec_dtype(e->mm, NN_Q8, err, errlen);
        /* BF16 Mimi decoder linears beside a BF16 FlowLM (full-size default; ~1.1e-4 relative
         * error, fewer bytes per frame); the tiny reference and parity stay exact */
        else if (!rc && (opt->mimi_bf16 > 0 || (opt->mimi_bf16 == 0 && e->bf16)))
            rc = mimi_set_dec_dtype(e->mm, NN_BF16, err, errlen);
    }
    double t4 = now_ms();
    if (!rc) rc = spm_load_file(&e->sp, tpath, err, errlen);
    /* upstream asserts equality; a smaller vocabulary only leaves rows unused (the engine
     * benchmark pairs the tiny tokenizer with a full-size checkpoint) */
    if (!rc && spm_vocab_size(e->sp) > e->cfg.n_bins)
        rc = err_set(err, errlen, ERR_FORMAT, "tokenizer has %d pieces, model only %d", spm_vocab_size(e->sp),
                     e->cfg.n_bins);
    double t5 = now_ms();
    if (!rc) {
        pkv_options vo = {0};
        vo.voices_dir = opt->voices_dir;
        vo.builtin_lang = local && !packaged ? NULL : e->lang;
        vo.allow_urls = opt->allow_url_voices;
        vo.allow_abs_paths = opt->allow_abs_voice_paths;
        rc = pkv_new(&e->vs, &vo, err, errlen);
    }
    if (!rc) {
        if (opt->state_cache_dir) {
            snprintf(e->state_dir, sizeof e->state_dir, "%s", opt->state_cache_dir);
        } else {
            char root[PATH_MAX - 16];
            if (hf_cache_root(&e->hfo, root, sizeof root, e2, sizeof e2) == 0) {
                snprintf(e->state_dir, sizeof e->state_dir, "%s/voices", root);
                mkdir(root, 0755);
            }
        }
        pk_gen_params_default(&e->gp);
        if (opt->temp > 0) e->gp.temp = opt->temp;
        if (opt->lsd_steps > 0) e->gp.lsd_steps = opt->lsd_steps;
        e->frames_after_eos = opt->frames_after_eos;
        e->first_chunk_tokens = opt->first_chunk_tokens < 0 ? 0 : opt->first_chunk_tokens ? opt->first_chunk_tokens : 16;
        e->pipeline = piped;
        /* OpenBLAS (Mimi's convolutions) at one thread when Mimi has its own thread: two
         * BLAS threads on top of the FlowLM pool doubled Mimi's wall time on 2 cores. This is
         * OpenBLAS's process-wide setting (nn.h); only this engine uses BLAS at run time. */
        if (piped) nn_set_threads(1);
        e->tpo.pad_with_spaces_for_short_inputs = e->cfg.pad_with_spaces_for_short_inputs;
        e->tpo.remove_semicolons = e->cfg.remove_semicolons;
        e->kv_bytes_per_pos = (size_t)e->cfg.num_layers * 2 * (size_t)e->cfg.d_model * sizeof(float);
        /* default voice */
        if (opt->default_voice && *opt->default_voice) {
            snprintf(e->default_voice, sizeof e->default_voice, "%s", opt->default_voice);
        } else if (pkv_has_builtins(e->vs)) {
            snprintf(e->default_voice, sizeof e->default_voice, "alba");
        } else {
            eng_voice *v = NULL;
            size_t nv = 0;
            if (pkv_list(e->vs, &v, &nv, e2, sizeof e2) == 0 && nv > 0)
                snprintf(e->default_voice, sizeof e->default_voice, "%s", v[0].id);
            free(v);
            if (!e->default_voice[0]) snprintf(e->default_voice, sizeof e->default_voice, "none");
        }
    }
    if (rc) {
        pke_destroy(&e->base);
        return rc;
    }
    e->ls.weights_ms = t2 - t1;
    e->ls.flowlm_ms = t3 - t2;
    e->ls.mimi_ms = t4 - t3;
    e->ls.tokenizer_ms = t5 - t4;
    e->ls.total_ms = now_ms() - t0;
    e->ls.state_bytes_per_position = e->kv_bytes_per_pos;
    char pt[32] = "";
    if (e->ppool) snprintf(pt, sizeof pt, " (prompts %d)", pthreads);
    snprintf(e->desc, sizeof e->desc, "pocket-tts %s (%s, %s %s%s, %d thread%s%s%s)", e->cfg.name,
             local ? "local folder" : e->can_clone ? "hf, voice cloning" : "hf public weights, no voice cloning",
             e->q8 ? "int8" : e->bf16 ? "bf16" : "f32", nn_kernel_name(), e->huge ? " huge pages" : "", threads, threads == 1 ? "" : "s",
             pt, e->pipeline ? " + Mimi thread" : "");
    e->base.id = e->id;
    e->base.desc = e->desc;
    e->base.caps = ENG_CAP_SEED | (e->can_clone ? ENG_CAP_CLONE : 0);
    e->base.max_parallel = opt->max_parallel > 0 ? opt->max_parallel : 2;
    e->base.default_voice = e->default_voice;
    *out = &e->base;
    return 0;
}

int pke_export_voice(engine *base, const char *voice, const char *out_path, char *err, size_t errlen)
{
    pke *e = (pke *)base;
    pkv_entry *ve = NULL;
    int rc;
    /* the operator's own file (any path, "in.wav" in the working directory too) is always
     * allowed here; anything else is a voice id as synth() takes it */
    if (voice[0] == '/' || strchr(voice, '/') || file_exists(voice)) {
        char real[PATH_MAX];
        if (!realpath(voice, real)) return err_set(err, errlen, ERR_NOTFOUND, "%s: %s", voice, strerror(errno));
        int fmt = pkv_fmt_from_name(real);
        pk_fstate *s = NULL;
        if (fmt == PKV_STATE) rc = state_from_file(e, real, &s, err, errlen);
        else if (fmt == PKV_UNKNOWN) rc = err_set(err, errlen, ERR_INVAL, "%s: not .wav/.mp3/.flac/.safetensors", voice);
        else rc = state_from_audio(e, real, fmt, &s, err, errlen);
        if (!rc) rc = pk_fstate_export_voice(s, out_path, err, errlen);
        pk_fstate_free(s);
        return rc;
    }
    rc = get_voice(e, voice, NULL, &ve, err, errlen);
    if (!rc && !ve) rc = err_set(err, errlen, ERR_INVAL, "no voice to export");
    if (!rc) rc = pk_fstate_export_voice(pkv_entry_value(ve), out_path, err, errlen);
    pkv_cache_release(e->vs, ve);
    return rc;
}
