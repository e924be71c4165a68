/* voices.h — pocket-tts voices: what a client's "voice" string names, refused safely when
 * it names something it may not, plus the bounded in-memory cache of encoded voice states.
 *
 * Resolution order (pkv_resolve), first match wins:
 *   1. URLs: "http://", "https://", "hf://" — only when allow_urls; else ERR_INVAL.
 *   2. Built-in names (alba, marius, ... : the 26 upstream lists) when the store was made
 *      for a packaged language config: hf://kyutai/pocket-tts-without-voice-cloning/
 *      languages/<lang>/embeddings/<name>.safetensors@<rev> (fetched once by hf.h, cached).
 *   3. Files in the voices folder: "<id>.safetensors" (a voice state as upstream's
 *      export-voice writes it), then "<id>.wav", "<id>.mp3", "<id>.flac". An id may also
 *      carry its extension ("bob.wav"). Ids are plain names: [A-Za-z0-9_.-], not starting
 *      with '.', at most PKV_ID_MAX bytes; anything with '/', '\\', ".." or control bytes is
 *      refused (ERR_INVAL). A symlink in the folder is followed only when its target, after
 *      realpath(), still lies inside the folder's realpath; anything else is refused.
 *      Only regular files count.
 *   4. Absolute paths ("/x/y.wav") — only when allow_abs_paths; else ERR_INVAL.
 * Anything else is ERR_NOTFOUND. Both errors are the client's fault (HTTP 400).
 *
 * The cache maps a key (see pkv_source.key: location + identity of the file) to an opaque,
 * reference-counted value (the engine stores FlowLM voice states). It is bounded by entry
 * count and bytes; least recently used entries are dropped first, and a dropped entry that
 * a request still holds is freed when that request releases it. All functions are
 * thread-safe (one mutex; the callbacks that free values run outside it).
 *
 * Ownership: pkv_new() -> pkv_free() (NULL-safe; frees every cached value not held; held
 * values must be released before). pkv_list() returns a malloc'd array the caller frees.
 * pkv_read_audio() returns malloc'd PCM the caller frees.
 */
#ifndef ENGINE_POCKET_VOICES_H
#define ENGINE_POCKET_VOICES_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

#define PKV_ID_MAX 128
#define PKV_LOC_MAX 4096
#define PKV_KEY_MAX (PKV_LOC_MAX + 128)
#define PKV_AUDIO_MAX_BYTES (64u << 20) /* voice prompt files larger than this are refused */

enum { PKV_URL = 1, PKV_BUILTIN, PKV_DIR, PKV_ABS };             /* pkv_source.kind */
enum { PKV_STATE = 1, PKV_WAV, PKV_MP3, PKV_FLAC, PKV_UNKNOWN }; /* pkv_source.fmt */

typedef struct pkv_source {
    int kind;               /* PKV_URL .. PKV_ABS */
    int fmt;                /* PKV_STATE (.safetensors) or an audio format; URLs: by suffix */
    char loc[PKV_LOC_MAX];  /* URI (URL, BUILTIN) or canonical absolute path (DIR, ABS) */
    char key[PKV_KEY_MAX];  /* cache key: URI, or path + device/inode/size/mtime */
} pkv_source;

typedef struct pkv_options {
    const char *voices_dir;   /* NULL or "" = no folder */
    const char *builtin_lang; /* config stem for built-in voice URIs; NULL = no built-ins */
    int allow_urls;           /* http://, https://, hf:// voices */
    int allow_abs_paths;      /* "/abs/path.wav" voices */
    size_t cache_entries;     /* in-memory states kept; 0 = 16 */
    size_t cache_bytes;       /* bytes of states kept; 0 = 512 MiB */
} pkv_options;

typedef struct pkv_store pkv_store;

int pkv_new(pkv_store **out, const pkv_options *o, char *err, size_t errlen);
void pkv_free(pkv_store *s);

/* voice -> source (rules at the top). 0, ERR_NOTFOUND, ERR_INVAL (refused, reason in err). */
int pkv_resolve(const pkv_store *s, const char *voice, pkv_source *out, char *err, size_t errlen);

/* Built-in names (i-th, NULL past the end) and whether the store offers them. */
const char *pkv_builtin_name(int i);
int pkv_has_builtins(const pkv_store *s);
/* The built-in voice URI for name in language lang into out[n]. */
int pkv_builtin_uri(const char *lang, const char *name, char *out, size_t n, char *err, size_t errlen);

/* OpenAI's voice names (alloy ash ballad coral echo fable nova onyx sage shimmer verse marin
 * cedar): the built-in voice each stands for (13 distinct ones), or NULL when voice is not
 * one of them. pkv_resolve does not apply it: the engine does, only when the name is not
 * found otherwise (a user's alloy.wav wins), and falls back to its default voice when the
 * store has no built-ins. Static strings. */
const char *pkv_alias(const char *voice);

/* Every voice offered now: built-ins, then the folder's files (type "cloned"; a name that
 * exists with several extensions is listed once), then, with built-ins, the OpenAI aliases
 * not shadowed by a file (type "alias"). *out malloc'd, caller frees. */
int pkv_list(const pkv_store *s, eng_voice **out, size_t *n, char *err, size_t errlen);

/* ---- cache of encoded voices ----------------------------------------------------------- */
typedef struct pkv_entry pkv_entry;
typedef void (*pkv_free_fn)(void *value);

/* Looks key up; on a hit returns the entry (held: release it) and marks it recently used. */
pkv_entry *pkv_cache_get(pkv_store *s, const char *key);
/* Inserts value (ownership passes to the cache, also on failure, when it is freed with fr).
 * If key is already present the new value is freed and the existing entry returned. The
 * returned entry is held by the caller. NULL only when out of memory. */
pkv_entry *pkv_cache_put(pkv_store *s, const char *key, void *value, size_t bytes, pkv_free_fn fr);
void *pkv_entry_value(const pkv_entry *e);
void pkv_cache_release(pkv_store *s, pkv_entry *e); /* NULL-safe */
size_t pkv_cache_count(pkv_store *s);               /* entries cached now */

/* ---- helpers --------------------------------------------------------------------------- */

/* Reads an audio file: WAV (PCM 8/16/24/32-bit, IEEE float 32/64, WAVE_FORMAT_EXTENSIBLE),
 * FLAC and MP3 (libavcodec). *pcm: malloc'd interleaved floats [nframes * channels].
 * ERR_FORMAT for anything unreadable, ERR_TOOBIG over PKV_AUDIO_MAX_BYTES or 10 minutes. */
int pkv_read_audio(const char *path, int fmt, float **pcm, size_t *nframes, int *channels, int *rate,
                   char *err, size_t errlen);
/* Same from memory (fmt PKV_WAV, PKV_FLAC or PKV_MP3). */
int pkv_decode_audio(const unsigned char *data, size_t n, int fmt, float **pcm, size_t *nframes, int *channels,
                     int *rate, char *err, size_t errlen);

/* 128-bit content hash (two FNV-1a-64 lanes) of a file as 32 hex digits into hex[33]. */
int pkv_hash_file(const char *path, char hex[33], char *err, size_t errlen);
void pkv_hash_mem(const void *p, size_t n, char hex[33]);

/* Format from a file name's extension (PKV_STATE, PKV_WAV, ...; PKV_UNKNOWN otherwise). */
int pkv_fmt_from_name(const char *name);

#endif
