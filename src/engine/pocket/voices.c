/* voices.c — voice resolution with safe path handling, the voice-state LRU cache, and
 * the audio readers for voice prompts (WAV by hand, FLAC with libFLAC, MP3 with libavcodec).
 *
 * Safety: a folder voice id is validated as a plain name before it touches the file
 * system, looked up with fstatat(AT_SYMLINK_NOFOLLOW) relative to the folder, and a
 * symlink is accepted only if its realpath() lies inside the folder's realpath. The
 * returned location is always the canonical path, and the opener (pkv_read_audio or the
 * engine) opens it with O_NOFOLLOW, so a link swapped in later is refused too.
 *
 * The LRU is a doubly linked list under one mutex (a handful of entries: no hash table
 * needed). Entries carry a reference count; an evicted entry that is still held leaves
 * the list at once and is freed by the last pkv_cache_release().
 */
#include "engine/pocket/voices.h"

#include "core/err.h"
#include "model/hf.h"

#include <FLAC/stream_decoder.h>
#include <libavcodec/avcodec.h>
#include <libavutil/channel_layout.h>
#include <libavutil/frame.h>
#include <libavutil/samplefmt.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PKV_BUILTIN_REV "e041936c75475d350b405bc870bcf7c22da4e9e6"
#define PKV_MAX_SECONDS 600 /* decoded prompt cap: 10 minutes */

static const char *const builtin_names[] = {
    "alba",  "marius", "javert", "jean",        "fantine",        "cosette",     "eponine",   "azelma", "anna",
    "vera",  "charles", "paul",  "george",      "mary",           "jane",        "michael",   "eve",    "bill_boerst",
    "peter_yearsley", "stuart_bell", "caro_davy", "giovanni", "lola", "juergen", "rafael",   "estelle", NULL};
static const char builtin_gender[] = "fmmmffffffmmmffmfmmmfmfmmf"; /* best guess from names; "" unknown */

/* OpenAI voice -> built-in voice, by the voices' usual gender (all targets distinct) */
static const char *const alias_tab[][2] = {
    {"alloy", "alba"},    {"ash", "marius"},  {"ballad", "javert"}, {"coral", "fantine"}, {"echo", "jean"},
    {"fable", "charles"}, {"nova", "cosette"}, {"onyx", "george"},  {"sage", "eponine"},  {"shimmer", "azelma"},
    {"verse", "paul"},    {"marin", "mary"},  {"cedar", "michael"},
};

const char *pkv_alias(const char *voice)
{
    for (size_t i = 0; voice && i < sizeof alias_tab / sizeof *alias_tab; i++)
        if (!strcmp(voice, alias_tab[i][0])) return alias_tab[i][1];
    return NULL;
}

struct pkv_entry {
    pkv_entry *prev, *next; /* LRU list (head = most recent); both NULL when detached */
    int listed;
    int refs;
    char *key;
    void *value;
    size_t bytes;
    pkv_free_fn fr;
};

struct pkv_store {
    char dir[PATH_MAX]; /* realpath of the voices folder, "" = none */
    char lang[64];      /* "" = no built-ins */
    int allow_urls, allow_abs;
    size_t max_entries, max_bytes;
    pthread_mutex_t mu;
    pkv_entry *head, *tail;
    size_t n, bytes;
};

const char *pkv_builtin_name(int i)
{
    if (i < 0 || i >= (int)(sizeof builtin_names / sizeof *builtin_names) - 1) return NULL;
    return builtin_names[i];
}

int pkv_has_builtins(const pkv_store *s) { return s && s->lang[0]; }

int pkv_builtin_uri(const char *lang, const char *name, char *out, size_t n, char *err, size_t errlen)
{
    int k = snprintf(out, n, "hf://kyutai/pocket-tts-without-voice-cloning/languages/%s/embeddings/%s.safetensors@%s",
                     lang, name, PKV_BUILTIN_REV);
    if (k < 0 || (size_t)k >= n) return err_set(err, errlen, ERR_TOOBIG, "voice URI too long");
    return 0;
}

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcasecmp(s + a - b, suf) == 0;
}

int pkv_fmt_from_name(const char *name)
{
    const char *q = strchr(name, '?'); /* URLs: ignore a query */
    char tmp[PKV_LOC_MAX];
    if (q && (size_t)(q - name) < sizeof tmp) {
        memcpy(tmp, name, (size_t)(q - name));
        tmp[q - name] = 0;
        name = tmp;
    }
    const char *at = strrchr(name, '@'); /* hf:// revision */
    char tmp2[PKV_LOC_MAX];
    if (at && strncmp(name, "hf://", 5) == 0 && (size_t)(at - name) < sizeof tmp2) {
        memcpy(tmp2, name, (size_t)(at - name));
        tmp2[at - name] = 0;
        name = tmp2;
    }
    if (ends_with(name, ".safetensors")) return PKV_STATE;
    if (ends_with(name, ".wav")) return PKV_WAV;
    if (ends_with(name, ".mp3")) return PKV_MP3;
    if (ends_with(name, ".flac")) return PKV_FLAC;
    return PKV_UNKNOWN;
}

int pkv_new(pkv_store **out, const pkv_options *o, char *err, size_t errlen)
{
    pkv_store *s = calloc(1, sizeof *s);
    if (!s) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    if (o && o->voices_dir && *o->voices_dir) {
        if (!realpath(o->voices_dir, s->dir)) {
            int e = errno;
            free(s);
            return err_set(err, errlen, ERR_NOTFOUND, "voices folder %s: %s", o->voices_dir, strerror(e));
        }
        struct stat st;
        if (stat(s->dir, &st) || !S_ISDIR(st.st_mode)) {
            free(s);
            return err_set(err, errlen, ERR_INVAL, "voices folder %s is not a directory", o->voices_dir);
        }
    }
    if (o && o->builtin_lang && *o->builtin_lang) {
        if (strlen(o->builtin_lang) >= sizeof s->lang || strchr(o->builtin_lang, '/')) {
            free(s);
            return err_set(err, errlen, ERR_INVAL, "bad language name");
        }
        snprintf(s->lang, sizeof s->lang, "%s", o->builtin_lang);
    }
    s->allow_urls = o ? o->allow_urls : 0;
    s->allow_abs = o ? o->allow_abs_paths : 0;
    s->max_entries = o && o->cache_entries ? o->cache_entries : 16;
    s->max_bytes = o && o->cache_bytes ? o->cache_bytes : (size_t)512 << 20;
    pthread_mutex_init(&s->mu, NULL);
    *out = s;
    return 0;
}

static void entry_destroy(pkv_entry *e)
{
    if (e->fr && e->value) e->fr(e->value);
    free(e->key);
    free(e);
}

void pkv_free(pkv_store *s)
{
    if (!s) return;
    pkv_entry *e = s->head;
    while (e) {
        pkv_entry *nx = e->next;
        if (e->refs == 0) entry_destroy(e);
        else e->listed = 0; /* a holder will free it on release (misuse, but no crash) */
        e = nx;
    }
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* ---- resolution ------------------------------------------------------------------------ */

static int valid_id(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n > PKV_ID_MAX || v[0] == '.') return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
              c == '.'))
            return 0;
    }
    return strstr(v, "..") == NULL;
}

static void file_key(pkv_source *out, const struct stat *st)
{
    snprintf(out->key, sizeof out->key, "%s|%llu:%llu|%lld|%lld.%09ld", out->loc, (unsigned long long)st->st_dev,
             (unsigned long long)st->st_ino, (long long)st->st_size, (long long)st->st_mtim.tv_sec,
             st->st_mtim.tv_nsec);
}

/* Looks `name` up in the folder. 0 found, ERR_NOTFOUND absent, ERR_INVAL refused. */
static int dir_lookup(const pkv_store *s, const char *name, pkv_source *out, char *err, size_t errlen)
{
    int dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return err_set(err, errlen, ERR_IO, "voices folder: %s", strerror(errno));
    struct stat st;
    int rc = ERR_NOTFOUND;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        char full[PATH_MAX + PKV_ID_MAX + 2];
        snprintf(full, sizeof full, "%s/%s", s->dir, name);
        if (S_ISLNK(st.st_mode)) {
            char real[PATH_MAX];
            size_t dl = strlen(s->dir);
            if (!realpath(full, real)) {
                rc = err_set(err, errlen, ERR_INVAL, "voice '%s': broken link", name);
            } else if (strncmp(real, s->dir, dl) != 0 || real[dl] != '/') {
                rc = err_set(err, errlen, ERR_INVAL, "voice '%s': link points outside the voices folder", name);
            } else if (stat(real, &st) || !S_ISREG(st.st_mode)) {
                rc = err_set(err, errlen, ERR_INVAL, "voice '%s': not a regular file", name);
            } else {
                snprintf(out->loc, sizeof out->loc, "%s", real);
                rc = 0;
            }
        } else if (S_ISREG(st.st_mode)) {
            if (strlen(full) >= sizeof out->loc) {
                rc = err_set(err, errlen, ERR_INVAL, "voice path too long");
            } else {
                memcpy(out->loc, full, strlen(full) + 1);
                rc = 0;
            }
        } else {
            rc = err_set(err, errlen, ERR_INVAL, "voice '%s': not a regular file", name);
        }
        if (rc == 0) {
            out->kind = PKV_DIR;
            out->fmt = pkv_fmt_from_name(name);
            file_key(out, &st);
        }
    }
    close(dfd);
    return rc;
}

int pkv_resolve(const pkv_store *s, const char *voice, pkv_source *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!voice || !*voice) return err_set(err, errlen, ERR_NOTFOUND, "empty voice");
    size_t vl = strlen(voice);
    if (vl >= PKV_LOC_MAX) return err_set(err, errlen, ERR_INVAL, "voice name too long");
    for (size_t i = 0; i < vl; i++)
        if ((unsigned char)voice[i] < 0x20 || voice[i] == 0x7f)
            return err_set(err, errlen, ERR_INVAL, "voice name has control characters");
    /* 1. URLs */
    if (!strncmp(voice, "http://", 7) || !strncmp(voice, "https://", 8) || !strncmp(voice, "hf://", 5)) {
        if (!s->allow_urls) return err_set(err, errlen, ERR_INVAL, "voice URLs are not allowed (--allow-url-voices)");
        if (!strncmp(voice, "hf://", 5)) {
            hf_ref *ref = malloc(sizeof *ref);
            char e2[200];
            int rc = ref ? hf_parse(voice, ref, e2, sizeof e2) : ERR_NOMEM;
            free(ref);
            if (rc) return err_set(err, errlen, rc == ERR_NOMEM ? rc : ERR_INVAL, "voice URI: %s", ref ? e2 : "no memory");
        }
        out->kind = PKV_URL;
        out->fmt = pkv_fmt_from_name(voice);
        if (out->fmt == PKV_UNKNOWN)
            return err_set(err, errlen, ERR_INVAL, "voice URL must end in .safetensors, .wav, .mp3 or .flac");
        snprintf(out->loc, sizeof out->loc, "%s", voice);
        snprintf(out->key, sizeof out->key, "%s", voice);
        return 0;
    }
    /* 2. built-ins */
    if (s->lang[0])
        for (int i = 0; builtin_names[i]; i++)
            if (!strcmp(voice, builtin_names[i])) {
                out->kind = PKV_BUILTIN;
                out->fmt = PKV_STATE;
                int rc = pkv_builtin_uri(s->lang, voice, out->loc, sizeof out->loc, err, errlen);
                if (rc) return rc;
                snprintf(out->key, sizeof out->key, "%s", out->loc);
                return 0;
            }
    /* 4 (checked early only to give the right error). absolute paths */
    if (voice[0] == '/') {
        if (!s->allow_abs) return err_set(err, errlen, ERR_INVAL, "absolute voice paths are not allowed");
        char real[PATH_MAX];
        struct stat st;
        if (!realpath(voice, real)) return err_set(err, errlen, ERR_NOTFOUND, "voice file %s not found", voice);
        if (stat(real, &st) || !S_ISREG(st.st_mode))
            return err_set(err, errlen, ERR_INVAL, "voice %s is not a regular file", voice);
        out->kind = PKV_ABS;
        out->fmt = pkv_fmt_from_name(real);
        if (out->fmt == PKV_UNKNOWN)
            return err_set(err, errlen, ERR_INVAL, "voice file must end in .safetensors, .wav, .mp3 or .flac");
        snprintf(out->loc, sizeof out->loc, "%s", real);
        file_key(out, &st);
        return 0;
    }
    /* 3. the voices folder */
    if (strchr(voice, '/') || strchr(voice, '\\') || strstr(voice, ".."))
        return err_set(err, errlen, ERR_INVAL, "voice '%.64s': path components are not allowed", voice);
    if (!valid_id(voice)) return err_set(err, errlen, ERR_INVAL, "voice '%.64s': invalid name", voice);
    if (!s->dir[0]) return err_set(err, errlen, ERR_NOTFOUND, "unknown voice '%s'", voice);
    int rc;
    if (pkv_fmt_from_name(voice) != PKV_UNKNOWN) {
        rc = dir_lookup(s, voice, out, err, errlen);
        if (rc != ERR_NOTFOUND) return rc;
    }
    static const char *const exts[] = {".safetensors", ".wav", ".mp3", ".flac"};
    for (int i = 0; i < 4; i++) {
        char name[PKV_ID_MAX + 16];
        snprintf(name, sizeof name, "%s%s", voice, exts[i]);
        rc = dir_lookup(s, name, out, err, errlen);
        if (rc != ERR_NOTFOUND) return rc;
    }
    return err_set(err, errlen, ERR_NOTFOUND, "unknown voice '%s'", voice);
}

int pkv_list(const pkv_store *s, eng_voice **out, size_t *n, char *err, size_t errlen)
{
    enum { CAP = 4096 };
    size_t cap = 64, k = 0;
    eng_voice *v = calloc(cap, sizeof *v);
    if (!v) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    if (s->lang[0])
        for (int i = 0; builtin_names[i]; i++, k++) {
            snprintf(v[k].id, sizeof v[k].id, "%s", builtin_names[i]);
            snprintf(v[k].name, sizeof v[k].name, "%c%s", builtin_names[i][0] - 32, builtin_names[i] + 1);
            for (char *p = v[k].name; *p; p++)
                if (*p == '_') *p = ' ';
            snprintf(v[k].lang, sizeof v[k].lang, "%s", !strncmp(s->lang, "english", 7) ? "en" : "");
            snprintf(v[k].gender, sizeof v[k].gender, "%s", builtin_gender[i] == 'f' ? "female" : "male");
            snprintf(v[k].type, sizeof v[k].type, "builtin");
        }
    size_t nbuiltin = k;
    DIR *d = s->dir[0] ? opendir(s->dir) : NULL;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL && k < CAP) {
        const char *nm = de->d_name;
        int fmt = pkv_fmt_from_name(nm);
        if (nm[0] == '.' || fmt == PKV_UNKNOWN) continue;
        char id[PKV_ID_MAX + 1];
        size_t stem = strlen(nm) - strlen(strrchr(nm, '.'));
        if (stem == 0 || stem >= sizeof id || stem >= sizeof v->id) continue;
        memcpy(id, nm, stem);
        id[stem] = 0;
        if (!valid_id(id)) continue;
        pkv_source src;
        char e2[64];
        if (pkv_resolve(s, id, &src, e2, sizeof e2) || src.kind != PKV_DIR) continue; /* refused or shadowed */
        int dup = 0;
        for (size_t j = nbuiltin; j < k && !dup; j++) dup = !strcmp(v[j].id, id);
        if (dup) continue;
        if (k == cap) {
            eng_voice *nv = realloc(v, 2 * cap * sizeof *v);
            if (!nv) {
                closedir(d);
                free(v);
                return err_set(err, errlen, ERR_NOMEM, "out of memory");
            }
            v = nv;
            cap *= 2;
        }
        memset(&v[k], 0, sizeof v[k]);
        memcpy(v[k].id, id, stem + 1);
        memcpy(v[k].name, id, stem + 1 < sizeof v[k].name ? stem + 1 : sizeof v[k].name);
        v[k].name[sizeof v[k].name - 1] = 0;
        snprintf(v[k].type, sizeof v[k].type, "cloned");
        k++;
    }
    if (d) closedir(d);
    for (size_t a = 0; s->lang[0] && a < sizeof alias_tab / sizeof *alias_tab; a++) {
        int dup = 0;
        for (size_t j = 0; j < k && !dup; j++) dup = !strcmp(v[j].id, alias_tab[a][0]);
        if (dup) continue; /* a file of that name is what the name means */
        if (k == cap) {
            eng_voice *nv = realloc(v, 2 * cap * sizeof *v);
            if (!nv) {
                free(v);
                return err_set(err, errlen, ERR_NOMEM, "out of memory");
            }
            v = nv;
            cap *= 2;
        }
        int bi = 0;
        while (builtin_names[bi] && strcmp(builtin_names[bi], alias_tab[a][1])) bi++;
        memset(&v[k], 0, sizeof v[k]);
        snprintf(v[k].id, sizeof v[k].id, "%s", alias_tab[a][0]);
        snprintf(v[k].name, sizeof v[k].name, "%c%s (%c%s)", alias_tab[a][0][0] - 32, alias_tab[a][0] + 1,
                 alias_tab[a][1][0] - 32, alias_tab[a][1] + 1);
        snprintf(v[k].lang, sizeof v[k].lang, "%s", !strncmp(s->lang, "english", 7) ? "en" : "");
        snprintf(v[k].gender, sizeof v[k].gender, "%s", builtin_gender[bi] == 'f' ? "female" : "male");
        snprintf(v[k].type, sizeof v[k].type, "alias");
        k++;
    }
    *out = v;
    *n = k;
    return 0;
}

/* ---- cache ----------------------------------------------------------------------------- */

static void lru_unlink(pkv_store *s, pkv_entry *e)
{
    if (!e->listed) return;
    if (e->prev) e->prev->next = e->next;
    else s->head = e->next;
    if (e->next) e->next->prev = e->prev;
    else s->tail = e->prev;
    e->prev = e->next = NULL;
    e->listed = 0;
    s->n--;
    s->bytes -= e->bytes;
}

static void lru_push_front(pkv_store *s, pkv_entry *e)
{
    e->prev = NULL;
    e->next = s->head;
    if (s->head) s->head->prev = e;
    s->head = e;
    if (!s->tail) s->tail = e;
    e->listed = 1;
    s->n++;
    s->bytes += e->bytes;
}

pkv_entry *pkv_cache_get(pkv_store *s, const char *key)
{
    pthread_mutex_lock(&s->mu);
    pkv_entry *e = s->head;
    while (e && strcmp(e->key, key)) e = e->next;
    if (e) {
        lru_unlink(s, e);
        lru_push_front(s, e);
        e->refs++;
    }
    pthread_mutex_unlock(&s->mu);
    return e;
}

pkv_entry *pkv_cache_put(pkv_store *s, const char *key, void *value, size_t bytes, pkv_free_fn fr)
{
    pkv_entry *ne = calloc(1, sizeof *ne);
    char *k = strdup(key);
    if (!ne || !k) {
        free(ne);
        free(k);
        if (fr && value) fr(value);
        return NULL;
    }
    ne->key = k;
    ne->value = value;
    ne->bytes = bytes;
    ne->fr = fr;
    ne->refs = 1;
    pkv_entry *dead = NULL; /* chain of entries to free outside the lock */
    pthread_mutex_lock(&s->mu);
    pkv_entry *e = s->head;
    while (e && strcmp(e->key, key)) e = e->next;
    if (e) { /* somebody encoded it meanwhile: keep theirs */
        lru_unlink(s, e);
        lru_push_front(s, e);
        e->refs++;
        ne->next = NULL;
        dead = ne;
        ne->refs = 0;
    } else {
        lru_push_front(s, ne);
        e = ne;
        /* evict from the tail, never the new entry */
        while ((s->n > s->max_entries || s->bytes > s->max_bytes) && s->tail && s->tail != ne) {
            pkv_entry *t = s->tail;
            lru_unlink(s, t);
            if (t->refs == 0) {
                t->next = dead;
                dead = t;
            }
        }
    }
    pthread_mutex_unlock(&s->mu);
    while (dead) {
        pkv_entry *nx = dead->next;
        entry_destroy(dead);
        dead = nx;
    }
    return e;
}

void *pkv_entry_value(const pkv_entry *e) { return e ? e->value : NULL; }

void pkv_cache_release(pkv_store *s, pkv_entry *e)
{
    if (!e) return;
    pthread_mutex_lock(&s->mu);
    int gone = --e->refs == 0 && !e->listed;
    pthread_mutex_unlock(&s->mu);
    if (gone) entry_destroy(e);
}

size_t pkv_cache_count(pkv_store *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->n;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* ---- hashing --------------------------------------------------------------------------- */

typedef struct fnv2 {
    uint64_t a, b;
} fnv2;

static void fnv2_init(fnv2 *h)
{
    h->a = 0xcbf29ce484222325ull;
    h->b = 0x84222325cbf29ce4ull ^ 0x9e3779b97f4a7c15ull;
}

static void fnv2_add(fnv2 *h, const unsigned char *p, size_t n)
{
    uint64_t a = h->a, b = h->b;
    for (size_t i = 0; i < n; i++) {
        a = (a ^ p[i]) * 0x100000001b3ull;
        b = (b ^ (p[i] + 0x5bu)) * 0x100000001b3ull;
        b ^= b >> 29;
    }
    h->a = a, h->b = b;
}

static void fnv2_hex(const fnv2 *h, char hex[33])
{
    snprintf(hex, 33, "%016llx%016llx", (unsigned long long)h->a, (unsigned long long)h->b);
}

void pkv_hash_mem(const void *p, size_t n, char hex[33])
{
    fnv2 h;
    fnv2_init(&h);
    fnv2_add(&h, p, n);
    fnv2_hex(&h, hex);
}

int pkv_hash_file(const char *path, char hex[33], char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return err_set(err, errlen, ERR_IO, "%s: %s", path, strerror(errno));
    fnv2 h;
    fnv2_init(&h);
    unsigned char b[65536];
    ssize_t r;
    while ((r = read(fd, b, sizeof b)) > 0) fnv2_add(&h, b, (size_t)r);
    int e = errno;
    close(fd);
    if (r < 0) return err_set(err, errlen, ERR_IO, "%s: %s", path, strerror(e));
    fnv2_hex(&h, hex);
    return 0;
}

/* ---- audio ----------------------------------------------------------------------------- */

static uint32_t rd32(const unsigned char *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }

static int decode_wav(const unsigned char *d, size_t n, float **pcm, size_t *nframes, int *channels, int *rate,
                      char *err, size_t errlen)
{
    if (n < 12 || memcmp(d, "RIFF", 4) || memcmp(d + 8, "WAVE", 4))
        return err_set(err, errlen, ERR_FORMAT, "not a RIFF/WAVE file");
    size_t off = 12;
    int fmt_ok = 0, tag = 0, ch = 0, bits = 0, sr = 0, align = 0;
    while (off + 8 <= n) {
        uint32_t clen = rd32(d + off + 4);
        const unsigned char *c = d + off + 8;
        size_t avail = n - off - 8;
        if (!memcmp(d + off, "fmt ", 4)) {
            if (clen < 16 || clen > avail) return err_set(err, errlen, ERR_FORMAT, "wav: bad fmt chunk");
            tag = rd16(c);
            ch = rd16(c + 2);
            sr = (int)rd32(c + 4);
            align = rd16(c + 12);
            bits = rd16(c + 14);
            if (tag == 0xFFFE && clen >= 40) tag = rd16(c + 24); /* extensible: sub-format GUID */
            fmt_ok = 1;
        } else if (!memcmp(d + off, "data", 4)) {
            if (!fmt_ok) return err_set(err, errlen, ERR_FORMAT, "wav: data before fmt");
            if (clen > avail) clen = (uint32_t)avail; /* streamed WAVs: open-ended length */
            if (ch < 1 || ch > 16 || sr < 1000 || sr > 384000)
                return err_set(err, errlen, ERR_FORMAT, "wav: %d channels at %d Hz unsupported", ch, sr);
            int bps = bits / 8;
            if (!((tag == 1 && (bits == 8 || bits == 16 || bits == 24 || bits == 32)) ||
                  (tag == 3 && (bits == 32 || bits == 64))))
                return err_set(err, errlen, ERR_FORMAT, "wav: format %d with %d bits unsupported", tag, bits);
            if (align != bps * ch) return err_set(err, errlen, ERR_FORMAT, "wav: bad block align");
            size_t nf = clen / (size_t)align;
            if (nf == 0) return err_set(err, errlen, ERR_FORMAT, "wav: no samples");
            if (nf / (size_t)sr > PKV_MAX_SECONDS) return err_set(err, errlen, ERR_TOOBIG, "wav: longer than 10 min");
            float *o = malloc(nf * (size_t)ch * sizeof *o);
            if (!o) return err_set(err, errlen, ERR_NOMEM, "out of memory");
            for (size_t i = 0; i < nf * (size_t)ch; i++) {
                const unsigned char *p = c + i * (size_t)bps;
                float v;
                if (tag == 3 && bits == 32) {
                    uint32_t u = rd32(p);
                    memcpy(&v, &u, 4);
                } else if (tag == 3) {
                    uint64_t u = rd32(p) | (uint64_t)rd32(p + 4) << 32;
                    double dv;
                    memcpy(&dv, &u, 8);
                    v = (float)dv;
                } else if (bits == 8) {
                    v = ((int)p[0] - 128) / 128.f;
                } else if (bits == 16) {
                    v = (int16_t)rd16(p) / 32768.f;
                } else if (bits == 24) {
                    int32_t x = (int32_t)((uint32_t)p[0] << 8 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 24) >> 8;
                    v = (float)x / 8388608.f;
                } else {
                    v = (float)((double)(int32_t)rd32(p) / 2147483648.0);
                }
                o[i] = v != v ? 0.f : v;
            }
            *pcm = o;
            *nframes = nf;
            *channels = ch;
            *rate = sr;
            return 0;
        }
        size_t step = 8 + (size_t)clen + (clen & 1);
        if (step > n - off) break;
        off += step;
    }
    return err_set(err, errlen, ERR_FORMAT, "wav: no data chunk");
}

/* growable float output shared by the FLAC and MP3 decoders */
typedef struct fout {
    float *v;
    size_t n, cap; /* samples (interleaved) */
    int ch, rate, fail;
} fout;

static int fout_add(fout *o, size_t k)
{
    if (o->n + k <= o->cap) return 0;
    size_t nc = o->cap ? o->cap : 1 << 16;
    while (nc < o->n + k) nc *= 2;
    if (o->rate > 0 && o->ch > 0 && nc / (size_t)o->ch / (size_t)o->rate > 2 * PKV_MAX_SECONDS) return ERR_TOOBIG;
    float *nv = realloc(o->v, nc * sizeof *nv);
    if (!nv) return ERR_NOMEM;
    o->v = nv;
    o->cap = nc;
    return 0;
}

typedef struct flac_src {
    const unsigned char *d;
    size_t n, off;
    fout o;
} flac_src;

static FLAC__StreamDecoderReadStatus flac_read(const FLAC__StreamDecoder *dec, FLAC__byte b[], size_t *bytes, void *u)
{
    flac_src *s = u;
    size_t k = s->n - s->off < *bytes ? s->n - s->off : *bytes;
    memcpy(b, s->d + s->off, k);
    s->off += k;
    *bytes = k;
    return k ? FLAC__STREAM_DECODER_READ_STATUS_CONTINUE : FLAC__STREAM_DECODER_READ_STATUS_END_OF_STREAM;
}

static FLAC__StreamDecoderWriteStatus flac_write(const FLAC__StreamDecoder *dec, const FLAC__Frame *fr,
                                                 const FLAC__int32 *const buf[], void *u)
{
    flac_src *s = u;
    int ch = (int)fr->header.channels, bits = (int)fr->header.bits_per_sample;
    if (s->o.ch == 0) s->o.ch = ch, s->o.rate = (int)fr->header.sample_rate;
    if (ch != s->o.ch || bits < 4 || bits > 32) {
        s->o.fail = ERR_FORMAT;
        return FLAC__STREAM_DECODER_WRITE_STATUS_ABORT;
    }
    size_t bs = fr->header.blocksize;
    int rc = fout_add(&s->o, bs * (size_t)ch);
    if (rc) {
        s->o.fail = rc;
        return FLAC__STREAM_DECODER_WRITE_STATUS_ABORT;
    }
    double scale = 1.0 / (double)(1u << (bits - 1));
    for (size_t i = 0; i < bs; i++)
        for (int c = 0; c < ch; c++) s->o.v[s->o.n++] = (float)(buf[c][i] * scale);
    return FLAC__STREAM_DECODER_WRITE_STATUS_CONTINUE;
}

static void flac_error(const FLAC__StreamDecoder *dec, FLAC__StreamDecoderErrorStatus st, void *u)
{
    flac_src *s = u;
    if (!s->o.fail) s->o.fail = ERR_FORMAT;
}

static int decode_flac(const unsigned char *d, size_t n, fout *o, char *err, size_t errlen)
{
    FLAC__StreamDecoder *dec = FLAC__stream_decoder_new();
    if (!dec) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    flac_src s = {d, n, 0, {0}};
    int rc = 0;
    if (FLAC__stream_decoder_init_stream(dec, flac_read, NULL, NULL, NULL, NULL, flac_write, NULL, flac_error, &s) !=
        FLAC__STREAM_DECODER_INIT_STATUS_OK)
        rc = err_set(err, errlen, ERR_FORMAT, "flac: cannot start decoder");
    else if (!FLAC__stream_decoder_process_until_end_of_stream(dec) || s.o.fail)
        rc = err_set(err, errlen, s.o.fail ? s.o.fail : ERR_FORMAT, "flac: cannot decode (%s)",
                     s.o.fail == ERR_TOOBIG ? "too long" : "corrupt or unsupported");
    FLAC__stream_decoder_delete(dec);
    if (rc) free(s.o.v);
    else *o = s.o;
    return rc;
}

static int mp3_take(AVCodecContext *cx, AVFrame *fr, fout *o)
{
    int r;
    while ((r = avcodec_receive_frame(cx, fr)) == 0) {
        int ch = fr->ch_layout.nb_channels;
        if (ch < 1 || ch > 16) return ERR_FORMAT;
        if (o->ch == 0) o->ch = ch, o->rate = fr->sample_rate;
        if (ch != o->ch) return ERR_FORMAT;
        size_t ns = (size_t)fr->nb_samples;
        int rc = fout_add(o, ns * (size_t)ch);
        if (rc) return rc;
        for (size_t i = 0; i < ns; i++)
            for (int c = 0; c < ch; c++) {
                float v;
                switch (fr->format) {
                case AV_SAMPLE_FMT_FLTP: v = ((const float *)fr->extended_data[c])[i]; break;
                case AV_SAMPLE_FMT_FLT: v = ((const float *)fr->extended_data[0])[i * (size_t)ch + (size_t)c]; break;
                case AV_SAMPLE_FMT_S16P: v = ((const int16_t *)fr->extended_data[c])[i] / 32768.f; break;
                case AV_SAMPLE_FMT_S16:
                    v = ((const int16_t *)fr->extended_data[0])[i * (size_t)ch + (size_t)c] / 32768.f;
                    break;
                default: return ERR_FORMAT;
                }
                o->v[o->n++] = v;
            }
        av_frame_unref(fr);
    }
    return r == AVERROR(EAGAIN) || r == AVERROR_EOF ? 0 : ERR_FORMAT;
}

static int decode_mp3(const unsigned char *d, size_t n, fout *o, char *err, size_t errlen)
{
    const AVCodec *codec = avcodec_find_decoder(AV_CODEC_ID_MP3);
    if (!codec) return err_set(err, errlen, ERR_FORMAT, "mp3: no decoder in libavcodec");
    AVCodecParserContext *pc = av_parser_init(AV_CODEC_ID_MP3);
    AVCodecContext *cx = avcodec_alloc_context3(codec);
    AVPacket *pkt = av_packet_alloc();
    AVFrame *fr = av_frame_alloc();
    int rc = 0;
    fout out = {0};
    if (!pc || !cx || !pkt || !fr) rc = ERR_NOMEM;
    else cx->log_level_offset = 100; /* library code never prints: drop libav log lines */
    if (!rc && avcodec_open2(cx, codec, NULL) < 0) rc = ERR_FORMAT;
    /* skip an ID3v2 tag */
    size_t off = 0;
    if (!rc && n >= 10 && !memcmp(d, "ID3", 3))
        off = 10 + ((size_t)(d[6] & 0x7f) << 21 | (size_t)(d[7] & 0x7f) << 14 | (size_t)(d[8] & 0x7f) << 7 |
                    (size_t)(d[9] & 0x7f));
    /* the parser reads up to AV_INPUT_BUFFER_PADDING_SIZE past the input: feed padded copies */
    uint8_t inb[4096 + AV_INPUT_BUFFER_PADDING_SIZE];
    int flushing = 0;
    while (!rc && (off < n || !flushing)) {
        size_t k = n > off ? (n - off < 4096 ? n - off : 4096) : 0;
        if (k == 0) flushing = 1;
        memcpy(inb, d + off, k);
        memset(inb + k, 0, AV_INPUT_BUFFER_PADDING_SIZE);
        uint8_t *p = inb;
        int left = (int)k;
        do {
            uint8_t *po = NULL;
            int ps = 0;
            int used = av_parser_parse2(pc, cx, &po, &ps, p, left, AV_NOPTS_VALUE, AV_NOPTS_VALUE, 0);
            if (used < 0) {
                rc = ERR_FORMAT;
                break;
            }
            p += used;
            left -= used;
            if (ps > 0) {
                pkt->data = po;
                pkt->size = ps;
                int s = avcodec_send_packet(cx, pkt);
                if (s < 0 && s != AVERROR_INVALIDDATA) rc = ERR_FORMAT;
                if (!rc) rc = mp3_take(cx, fr, &out);
            }
        } while (!rc && left > 0);
        off += k;
        if (flushing) break;
    }
    if (!rc && cx) {
        avcodec_send_packet(cx, NULL);
        rc = mp3_take(cx, fr, &out);
    }
    av_frame_free(&fr);
    av_packet_free(&pkt);
    avcodec_free_context(&cx);
    if (pc) av_parser_close(pc);
    if (!rc && out.n == 0) rc = ERR_FORMAT;
    if (rc) {
        free(out.v);
        return err_set(err, errlen, rc, "mp3: cannot decode (%s)", rc == ERR_TOOBIG ? "too long" : "corrupt");
    }
    *o = out;
    return 0;
}

int pkv_decode_audio(const unsigned char *data, size_t n, int fmt, float **pcm, size_t *nframes, int *channels,
                     int *rate, char *err, size_t errlen)
{
    if (fmt == PKV_WAV) return decode_wav(data, n, pcm, nframes, channels, rate, err, errlen);
    fout o = {0};
    int rc;
    if (fmt == PKV_FLAC) rc = decode_flac(data, n, &o, err, errlen);
    else if (fmt == PKV_MP3) rc = decode_mp3(data, n, &o, err, errlen);
    else return err_set(err, errlen, ERR_FORMAT, "not an audio format");
    if (rc) return rc;
    if (o.ch < 1 || o.rate < 1000 || o.rate > 384000 || o.n < (size_t)o.ch) {
        free(o.v);
        return err_set(err, errlen, ERR_FORMAT, "audio: no usable samples");
    }
    *pcm = o.v;
    *nframes = o.n / (size_t)o.ch;
    *channels = o.ch;
    *rate = o.rate;
    return 0;
}

int pkv_read_audio(const char *path, int fmt, float **pcm, size_t *nframes, int *channels, int *rate, char *err,
                   size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return err_set(err, errlen, ERR_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        return err_set(err, errlen, ERR_INVAL, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > PKV_AUDIO_MAX_BYTES) {
        close(fd);
        return err_set(err, errlen, ERR_TOOBIG, "%s: voice file over %u MiB", path, PKV_AUDIO_MAX_BYTES >> 20);
    }
    size_t n = (size_t)st.st_size, got = 0;
    unsigned char *d = malloc(n ? n : 1);
    if (!d) {
        close(fd);
        return err_set(err, errlen, ERR_NOMEM, "out of memory");
    }
    while (got < n) {
        ssize_t r = read(fd, d + got, n - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    int rc = pkv_decode_audio(d, got, fmt, pcm, nframes, channels, rate, err, errlen);
    free(d);
    return rc;
}
