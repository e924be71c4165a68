/* hf.h — Hugging Face (and plain http/https) downloads into a local cache, with libcurl.
 *
 * Weights, tokenizers and voices are named the way upstream pocket-tts names them:
 *
 *   hf://<owner>/<repo>/<path/in/repo>[@<revision>]      revision defaults to "main"
 *
 * which resolves, as huggingface_hub does, to <endpoint>/<owner>/<repo>/resolve/<rev>/<path>
 * (endpoint: HF_ENDPOINT, default https://huggingface.co; the revision is percent-encoded as
 * one segment, so "refs/pr/1" works). Plain http:// and https:// URLs are accepted too.
 *
 * hf_fetch() returns the path of a complete local copy, downloading it on first use:
 *  - Cache root: opts.cache_dir, else $POCKET_TTS_CACHE_DIR, else $XDG_CACHE_HOME/pockettts,
 *    else $HOME/.cache/pockettts. Layout (cannot collide: owner, repo and the encoded
 *    revision are one path segment each, '/' in a revision becomes "%2F"):
 *      <root>/hf/<owner>/<repo>/<rev>/<path>
 *      <root>/url/<16 hex digits of FNV-1a-64(url)>/<sanitised basename>
 *  - Only complete files ever appear under their final name: the body goes to a temp file
 *    ".<name>.hf-incomplete" in the same directory, is fsync'd, renamed, and the directory
 *    fsync'd. Path segments ending in ".hf-incomplete", ".hf-lock" or ".hf-etag" are refused,
 *    so a sidecar name can never be a real file's name.
 *  - Concurrent fetches of one file (threads or processes) serialise on flock() of
 *    ".<name>.hf-lock"; the loser finds the finished file and downloads nothing.
 *  - A temp file left by an interrupted download is resumed with "Range: bytes=N-" (plus
 *    "If-Range: <ETag>" when the first response had a strong ETag, kept in ".<name>.hf-etag",
 *    so a file that changed on the server comes back whole instead of spliced): a 206
 *    whose Content-Range starts at N is appended, a 200 restarts from byte 0, a 416 whose
 *    total equals N means the temp file was already complete. The final size must equal
 *    Content-Length (or the Content-Range total). A connection lost mid-body, a short body,
 *    408/429/5xx are retried (resuming) opts.retries times with growing pauses; after that
 *    the call returns ERR_IO and the partial file is resumed by the next call. A host that
 *    cannot be resolved or connected to is not retried (an offline machine fails at once).
 *    Definitive HTTP errors (4xx) delete the temp file.
 *  - Integrity: when the endpoint names the file's SHA-256 (huggingface.co sends
 *    X-Linked-Etag: "<sha256>" for LFS files, i.e. weights), the whole file is checked
 *    before the rename (hashed while it streams in, SHA-NI where the CPU has it); a mismatch
 *    is ERR_FORMAT and the temp file is deleted. The same header from any other host (the
 *    CDN) is not believed.
 *  - Files that huggingface_hub (e.g. upstream pocket-tts) already downloaded are used in
 *    place, read-only: <hub cache>/models--<owner>--<repo>/snapshots/<commit>/<path>, where
 *    a branch or tag is mapped to its commit through refs/<rev>. So a user who ran the Python
 *    version does not download 400 MB again, and that works offline too.
 *  - A cached file is used without any network access, even for a branch revision such as
 *    "main" (pinned commit hashes are the normal case; delete the file to refresh).
 *  - Token: opts.token, else $HF_TOKEN, else $HUGGING_FACE_HUB_TOKEN, else the file written by
 *    `hf auth login` ($HF_TOKEN_PATH, $HF_HOME/token, ~/.cache/huggingface/token). It is sent
 *    as "Authorization: Bearer ..." only to the endpoint's own scheme://host:port — never to a
 *    redirect target elsewhere (HF redirects large files to a CDN) — and never appears in any
 *    error message. Redirects are followed by hand for that reason (max opts.max_redirects).
 *  - HTTP 401/403 return HF_ERR_GATED with a message saying what to do ("gated: accept the
 *    terms on huggingface.co/<repo> and set HF_TOKEN", or "HF_TOKEN was rejected"), so the
 *    pocket engine can fall back to the ungated weights without voice cloning.
 *    404 returns ERR_NOTFOUND. Other failures ERR_IO; cap hits ERR_TOOBIG.
 *  - Offline (opts.offline, or $HF_HUB_OFFLINE = 1/true/yes/on): never touches the network;
 *    a cached file or ERR_NOTFOUND naming the file and the cache path it looked at.
 *  - Remote URLs must be https unless opts.allow_http; plain http is always allowed to a
 *    loopback host (127.0.0.0/8, ::1, localhost), which is what the tests use.
 *
 * Threads: hf_fetch() keeps no global state and may be called from several threads at once.
 * The CALLER owns libcurl's global state: call curl_global_init(CURL_GLOBAL_DEFAULT) once in
 * main() before any thread calls hf_fetch(), and curl_global_cleanup() at exit (tests call
 * them around each test). Environment variables are read with getenv() on every call
 * (set opts.no_env to ignore them); nobody may setenv() while fetches run.
 *
 * Library code never prints. hf_progress_tty() is the one printing helper, meant to be
 * passed in by a command-line program as opts.progress. The progress callback runs on the
 * thread that called hf_fetch().
 *
 * Ownership: nothing is allocated for the caller; results go into caller buffers (out[n],
 * err[errlen]). hf_options and everything it points to are borrowed for the call only.
 */
#ifndef MODEL_HF_H
#define MODEL_HF_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Access denied (HTTP 401/403): gated or private repo, missing or wrong token. Distinct from
 * every ERR_* in core/err.h so callers can fall back to ungated weights. */
#define HF_ERR_GATED ERR_DENIED

#define HF_REPO_MAX 200   /* "owner/name"; each part <= 96 chars on huggingface.co */
#define HF_RPATH_MAX 1024 /* path inside the repo */
#define HF_REV_MAX 128    /* branch, tag or 40-hex commit */
#define HF_URL_MAX 4096   /* any URL we build or follow */

typedef struct hf_ref {
    char repo[HF_REPO_MAX];   /* "owner/name" */
    char path[HF_RPATH_MAX];  /* "dir/file.ext": relative, no "." / ".." / empty segments */
    char rev[HF_REV_MAX];     /* "main" when the URI has no "@rev" */
} hf_ref;

/* Progress: done and total bytes of the whole file (total 0 = unknown); `what` is the repo
 * path or URL (borrowed for the call). Return non-zero to cancel the download. */
typedef int (*hf_progress_fn)(void *user, const char *what, uint64_t done, uint64_t total);

typedef struct hf_options {
    const char *cache_dir;     /* NULL: environment (see top), else ~/.cache/pockettts */
    const char *endpoint;      /* NULL: $HF_ENDPOINT or "https://huggingface.co" */
    const char *token;         /* NULL: environment / token file; "" = send no token */
    int offline;               /* never use the network (also $HF_HUB_OFFLINE) */
    int no_env;                /* ignore every environment variable and the token file */
    int allow_http;            /* allow plain http to non-loopback hosts */
    uint64_t max_bytes;        /* largest file accepted; 0 = 16 GiB */
    long connect_timeout_s;    /* 0 = 20 s */
    long low_speed_time_s;     /* abort when < 1 KiB/s for this long; 0 = 60 s */
    int max_redirects;         /* 0 = 8 */
    int retries;               /* transient failures (connection lost, short body, 408, 429,
                                  5xx) are retried, resuming, this many times; 0 = 3, -1 = no */
    long retry_pause_ms;       /* pause before the first retry, doubled each time; 0 = 500 */
    const atomic_int *cancel;  /* may be NULL; non-zero = stop (also while waiting for a lock) */
    hf_progress_fn progress;   /* may be NULL */
    void *progress_user;
    const char *user_agent;    /* NULL = "pockettts" */
    const char *hub_cache;     /* huggingface_hub's cache to reuse; NULL: $HF_HUB_CACHE,
                                  $HF_HOME/hub, ~/.cache/huggingface/hub; "" = don't look */
    int hash_generic;          /* tests/benchmarks: plain C SHA-256 even where SHA-NI exists */
} hf_options;

/* Parses and validates an hf:// URI into *out. Refuses (ERR_INVAL, saying why): a missing
 * owner, repo or path, empty, "." or ".." segments, absolute paths, backslashes, control
 * characters, reserved temp-file suffixes, over-long parts. */
int hf_parse(const char *uri, hf_ref *out, char *err, size_t errlen);

/* The resolve URL of a ref: <endpoint>/<repo>/resolve/<rev>/<path>, path segments and the
 * revision percent-encoded. endpoint NULL = "https://huggingface.co". Writes into out[n]. */
int hf_resolve_url(const hf_ref *ref, const char *endpoint, char *out, size_t n, char *err,
                   size_t errlen);

/* The cache root (see top) into out[n]; no directory is created. opt may be NULL. */
int hf_cache_root(const hf_options *opt, char *out, size_t n, char *err, size_t errlen);

/* Where `uri` (hf:// or http(s)://) lives in our cache, whether or not it is there yet.
 * (hf_fetch() may instead return a file it found in huggingface_hub's cache.) */
int hf_cache_path(const char *uri, const hf_options *opt, char *out, size_t n, char *err,
                  size_t errlen);

/* Makes `uri` available locally and writes the path of the complete file into out[n].
 * opt may be NULL (all defaults, environment honoured). Blocking; see the top for the rules.
 * Returns 0, HF_ERR_GATED, ERR_NOTFOUND, ERR_INVAL, ERR_IO, ERR_FORMAT (checksum),
 * ERR_TOOBIG, ERR_CANCEL, ERR_NOMEM. */
int hf_fetch(const char *uri, const hf_options *opt, char *out, size_t n, char *err,
             size_t errlen);

/* State for hf_progress_tty; zero-initialise it. One per concurrent download. */
typedef struct hf_tty {
    double start_s;       /* monotonic time of the first call (0 = not started) */
    uint64_t start_bytes; /* bytes already present then (a resumed download) */
    double last_s;        /* monotonic time of the last line drawn */
    int drawn;            /* a line is on screen without its newline yet */
    int finished;         /* the final line of this download was drawn */
} hf_tty;

/* An hf_progress_fn for command-line programs: user = hf_tty *. Draws
 * "  <what>  12.3/45.6 MB  27%  3.4 MB/s" on stderr with '\r', at most 10 times a second,
 * and a newline when done == total; draws nothing unless stderr is a terminal. Returns 0.
 * After a failed download the line has no newline yet: print one if t->drawn. */
int hf_progress_tty(void *user, const char *what, uint64_t done, uint64_t total);

#endif
