/* hf.c — Hugging Face / http(s) downloads into the local cache (see hf.h for the rules).
 *
 * One hf_fetch() call is a small state machine over a heap-allocated job:
 *   locate (parse the URI, build the URL and the cache path) -> cache hit? -> offline? ->
 *   mkdir -p -> flock the ".hf-lock" sidecar -> cache hit again (another fetcher won) ->
 *   download into ".hf-incomplete" (resuming with Range) -> fsync, rename, fsync dir -> unlock.
 *
 * Invariants:
 *  - Only a complete, size-checked body is ever renamed to the final name.
 *  - Only the lock holder opens the temp file, so two fetchers never write it together.
 *  - Redirects are followed by hand, one request per hop: every hop is checked against the
 *    scheme policy (https, or http to loopback) and gets the token only when it is the
 *    endpoint's own scheme://host:port. Bodies of non-2xx responses never reach the file.
 *  - The token is never written into an error message; neither are redirect targets (a
 *    CDN URL carries a signature in its query).
 *  - Everything the server sends is bounded: file size (max_bytes), error bodies (kept up to
 *    512 bytes, aborted past 1 MiB), header values (truncated into fixed arrays), hops.
 *  - The body is SHA-256'd as it is written (j->hash covers exactly bytes [0, j->hashed) of
 *    the temp file; a resume re-hashes the kept prefix first), so checking an LFS file
 *    against the hub's X-Linked-Etag costs no second pass over hundreds of MB. The SHA-NI
 *    kernel is picked per hash by cpuid; the plain C reference is always there.
 *  - Lookups try, in order: our cache, huggingface_hub's cache (read-only), the network.
 */
#include "model/hf.h"

#include "core/buf.h"
#include "core/err.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HF_DEFAULT_ENDPOINT "https://huggingface.co"
#define HF_PATH_MAX 4096
#define HF_TOKEN_MAX 512
#define HF_SEG_MAX 240 /* leaves room for ".<seg>.hf-incomplete" within NAME_MAX */
#define HF_NAME_MAX 96 /* owner or repo name on huggingface.co */
#define HF_ERRBODY_KEEP 512
#define HF_ERRBODY_ABORT (1u << 20)

static const char SUF_TMP[] = ".hf-incomplete";
static const char SUF_LOCK[] = ".hf-lock";
static const char SUF_ETAG[] = ".hf-etag"; /* the partial's validator, for If-Range */

/* ---- small helpers --------------------------------------------------------------- */

static int cpy(char *dst, size_t n, const char *src)
{
    size_t l = strlen(src);
    if (l >= n) return -1;
    memcpy(dst, src, l + 1);
    return 0;
}

static int ends_with(const char *s, size_t len, const char *suf)
{
    size_t k = strlen(suf);
    return len >= k && !memcmp(s + len - k, suf, k);
}

static const char *env_get(const hf_options *opt, const char *name)
{
    if (opt && opt->no_env) return NULL;
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static int truthy(const char *v)
{
    return v && (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") ||
                 !strcasecmp(v, "on"));
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ASCII only: the server may run under any locale. */
static int alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---- parsing --------------------------------------------------------------------- */

static int seg_check(const char *s, size_t len, const char *what, char *err, size_t errlen)
{
    if (len == 0) return err_set(err, errlen, ERR_INVAL, "empty segment in %s", what);
    if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
        return err_set(err, errlen, ERR_INVAL, "'.' or '..' segment in %s", what);
    if (len > HF_SEG_MAX)
        return err_set(err, errlen, ERR_INVAL, "a segment of %s is longer than %d bytes", what,
                       HF_SEG_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return err_set(err, errlen, ERR_INVAL, "control character in %s", what);
        if (c == '\\') return err_set(err, errlen, ERR_INVAL, "backslash in %s", what);
    }
    if (ends_with(s, len, SUF_TMP) || ends_with(s, len, SUF_LOCK) || ends_with(s, len, SUF_ETAG))
        return err_set(err, errlen, ERR_INVAL, "%s ends with a reserved suffix (%s, %s, %s)",
                       what, SUF_TMP, SUF_LOCK, SUF_ETAG);
    return 0;
}

/* Checks every '/'-separated segment of s[0..len). */
static int segs_check(const char *s, size_t len, const char *what, char *err, size_t errlen)
{
    if (len == 0) return err_set(err, errlen, ERR_INVAL, "empty %s", what);
    if (s[0] == '/') return err_set(err, errlen, ERR_INVAL, "absolute %s", what);
    size_t a = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '/') {
            int rc = seg_check(s + a, i - a, what, err, errlen);
            if (rc) return rc;
            a = i + 1;
        }
    }
    return 0;
}

static int name_check(const char *s, size_t len, const char *what, char *err, size_t errlen)
{
    if (len == 0) return err_set(err, errlen, ERR_INVAL, "missing %s", what);
    if (len > HF_NAME_MAX)
        return err_set(err, errlen, ERR_INVAL, "%s longer than %d bytes", what, HF_NAME_MAX);
    if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
        return err_set(err, errlen, ERR_INVAL, "'.' or '..' as %s", what);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!alnum(c) && c != '-' && c != '_' && c != '.')
            return err_set(err, errlen, ERR_INVAL,
                           "%s may only hold letters, digits, '-', '_', '.'", what);
    }
    return 0;
}

int hf_parse(const char *uri, hf_ref *out, char *err, size_t errlen)
{
    CORE_ASSERT(uri && out);
    memset(out, 0, sizeof *out);
    if (strncmp(uri, "hf://", 5))
        return err_set(err, errlen, ERR_INVAL, "not an hf:// URI");
    const char *s = uri + 5;
    size_t len = strlen(s);
    if (len >= HF_REPO_MAX + HF_RPATH_MAX + HF_REV_MAX)
        return err_set(err, errlen, ERR_INVAL, "hf:// URI too long");
    if (s[0] == '/') return err_set(err, errlen, ERR_INVAL, "absolute path in hf:// URI");

    const char *at = memrchr(s, '@', len);
    size_t body = at ? (size_t)(at - s) : len;
    if (at) {
        size_t rl = len - body - 1;
        if (rl == 0) return err_set(err, errlen, ERR_INVAL, "empty revision after '@'");
        if (rl >= HF_REV_MAX) return err_set(err, errlen, ERR_INVAL, "revision too long");
        for (size_t i = 0; i < rl; i++) {
            unsigned char c = (unsigned char)at[1 + i];
            if (!alnum(c) && c != '-' && c != '_' && c != '.' && c != '/')
                return err_set(err, errlen, ERR_INVAL,
                               "revision may only hold letters, digits, '-', '_', '.', '/'");
        }
        int rc = segs_check(at + 1, rl, "revision", err, errlen);
        if (rc) return rc;
        memcpy(out->rev, at + 1, rl);
    } else {
        strcpy(out->rev, "main");
    }

    const char *slash1 = memchr(s, '/', body);
    if (!slash1) return err_set(err, errlen, ERR_INVAL, "hf:// URI needs owner/repo/path");
    const char *name = slash1 + 1;
    const char *slash2 = memchr(name, '/', body - (size_t)(name - s));
    if (!slash2) return err_set(err, errlen, ERR_INVAL, "hf:// URI has no path inside the repo");
    int rc = name_check(s, (size_t)(slash1 - s), "repo owner", err, errlen);
    if (!rc) rc = name_check(name, (size_t)(slash2 - name), "repo name", err, errlen);
    if (rc) return rc;
    const char *path = slash2 + 1;
    size_t plen = body - (size_t)(path - s);
    if (plen >= HF_RPATH_MAX) return err_set(err, errlen, ERR_INVAL, "path in repo too long");
    rc = segs_check(path, plen, "path in repo", err, errlen);
    if (rc) return rc;
    memcpy(out->repo, s, (size_t)(slash2 - s));
    memcpy(out->path, path, plen);
    return 0;
}

/* Appends s[0..len) percent-encoded (RFC 3986 unreserved kept, '/' kept when keep_slash). */
static int pct_append(buf *b, const char *s, size_t len, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        int rc;
        if (alnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/')) {
            rc = buf_append(b, &s[i], 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            rc = buf_append(b, e, 3);
        }
        if (rc) return rc;
    }
    return 0;
}

static size_t endpoint_len(const char *ep)
{
    size_t l = strlen(ep);
    while (l > 0 && ep[l - 1] == '/') l--;
    return l;
}

int hf_resolve_url(const hf_ref *ref, const char *endpoint, char *out, size_t n, char *err,
                   size_t errlen)
{
    if (!endpoint || !*endpoint) endpoint = HF_DEFAULT_ENDPOINT;
    buf b;
    buf_init(&b, HF_URL_MAX - 1);
    int rc = buf_append(&b, endpoint, endpoint_len(endpoint));
    if (!rc) rc = buf_printf(&b, "/%s/resolve/", ref->repo);
    if (!rc) rc = pct_append(&b, ref->rev, strlen(ref->rev), 0);
    if (!rc) rc = buf_append(&b, "/", 1);
    if (!rc) rc = pct_append(&b, ref->path, strlen(ref->path), 1);
    if (!rc && cpy(out, n, buf_cstr(&b))) rc = ERR_TOOBIG;
    buf_free(&b);
    if (rc == ERR_NOMEM) return err_set(err, errlen, rc, "out of memory building a URL");
    if (rc) return err_set(err, errlen, ERR_TOOBIG, "URL for %s too long", ref->path);
    return 0;
}

/* ---- cache layout ---------------------------------------------------------------- */

int hf_cache_root(const hf_options *opt, char *out, size_t n, char *err, size_t errlen)
{
    const char *v;
    int w;
    if (opt && opt->cache_dir && *opt->cache_dir)
        w = snprintf(out, n, "%s", opt->cache_dir);
    else if ((v = env_get(opt, "POCKET_TTS_CACHE_DIR")))
        w = snprintf(out, n, "%s", v);
    else if ((v = env_get(opt, "XDG_CACHE_HOME")) && v[0] == '/')
        w = snprintf(out, n, "%s/pockettts", v);
    else if ((v = env_get(opt, "HOME")))
        w = snprintf(out, n, "%s/.cache/pockettts", v);
    else
        return err_set(err, errlen, ERR_INVAL,
                       "no cache directory: set POCKET_TTS_CACHE_DIR (or HOME)");
    if (w < 0 || (size_t)w >= n || (size_t)w >= HF_PATH_MAX / 2)
        return err_set(err, errlen, ERR_TOOBIG, "cache directory path too long");
    size_t l = (size_t)w;
    while (l > 1 && out[l - 1] == '/') out[--l] = 0;
    return 0;
}

static uint64_t fnv1a64(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

/* A job: everything one hf_fetch() needs, on the heap (paths are big). */
typedef struct hf_job {
    const hf_options *opt; /* may be NULL */
    int is_hf;
    hf_ref ref;
    char what[HF_URL_MAX];  /* the URI as given: used in messages and progress */
    char url[HF_URL_MAX];   /* first hop */
    char root[HF_PATH_MAX];
    char final[HF_PATH_MAX];
    char tmp[HF_PATH_MAX];
    char lock[HF_PATH_MAX];
    char etagp[HF_PATH_MAX];
    char validator[128];    /* strong ETag of the partial body in tmp, or "" */
    char dir[HF_PATH_MAX];
    char endpoint[HF_URL_MAX];
    char token[HF_TOKEN_MAX];
    int has_token;
    char sha256[65];        /* expected content hash (X-Linked-Etag of an LFS file) or "" */
    struct sha256_ctx *hash; /* running hash of the temp file's bytes [0, hashed) */
    uint64_t hashed;
} hf_job;

static int url_check(const char *u, char *err, size_t errlen)
{
    if (strncmp(u, "https://", 8) && strncmp(u, "http://", 7))
        return err_set(err, errlen, ERR_INVAL, "not an http(s) URL");
    if (strlen(u) >= HF_URL_MAX) return err_set(err, errlen, ERR_INVAL, "URL too long");
    for (const unsigned char *p = (const unsigned char *)u; *p; p++)
        if (*p <= 0x20 || *p == 0x7f)
            return err_set(err, errlen, ERR_INVAL, "space or control character in URL");
    CURLU *cu = curl_url();
    if (!cu) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    CURLUcode uc = curl_url_set(cu, CURLUPART_URL, u, 0);
    curl_url_cleanup(cu);
    if (uc) return err_set(err, errlen, ERR_INVAL, "malformed URL");
    return 0;
}

/* Sanitised last path segment of a URL (no query or fragment) into out[n]. */
static void url_basename(const char *u, char *out, size_t n)
{
    const char *p = strstr(u, "://");
    p = p ? p + 3 : u;
    size_t end = strcspn(p, "?#");
    const char *last = p;
    for (size_t i = 0; i < end; i++)
        if (p[i] == '/') last = p + i + 1;
    size_t len = (size_t)(p + end - last), k = 0;
    for (size_t i = 0; i < len && k + 2 < n && k < 100; i++) {
        unsigned char c = (unsigned char)last[i];
        out[k++] = (alnum(c) || c == '-' || c == '_' || c == '.') ? (char)c : '_';
    }
    out[k] = 0;
    if (!k || !strcmp(out, ".") || !strcmp(out, "..") || (last - p) == 0) cpy(out, n, "file");
    if (ends_with(out, strlen(out), SUF_TMP) || ends_with(out, strlen(out), SUF_LOCK) ||
        ends_with(out, strlen(out), SUF_ETAG))
        strcat(out, "_");
}

static int job_locate(hf_job *j, const char *uri, char *err, size_t errlen)
{
    int rc = hf_cache_root(j->opt, j->root, sizeof j->root, err, errlen);
    if (rc) return rc;
    if (cpy(j->what, sizeof j->what, uri)) return err_set(err, errlen, ERR_INVAL, "URI too long");
    const char *ep = j->opt && j->opt->endpoint && *j->opt->endpoint ? j->opt->endpoint : NULL;
    if (!ep) ep = env_get(j->opt, "HF_ENDPOINT");
    if (!ep) ep = HF_DEFAULT_ENDPOINT;
    if (endpoint_len(ep) >= sizeof j->endpoint / 2)
        return err_set(err, errlen, ERR_INVAL, "HF endpoint too long");
    memcpy(j->endpoint, ep, endpoint_len(ep));
    j->endpoint[endpoint_len(ep)] = 0;

    int w;
    if (!strncmp(uri, "hf://", 5)) {
        j->is_hf = 1;
        rc = hf_parse(uri, &j->ref, err, errlen);
        if (!rc && url_check(j->endpoint, NULL, 0))
            rc = err_set(err, errlen, ERR_INVAL, "the HF endpoint is not a valid http(s) URL");
        if (!rc) rc = hf_resolve_url(&j->ref, j->endpoint, j->url, sizeof j->url, err, errlen);
        if (rc) return rc;
        /* <root>/hf/<owner>/<repo>/<rev with '/' as %2F>/<path> */
        buf b;
        buf_init(&b, HF_PATH_MAX - 1);
        rc = buf_printf(&b, "%s/hf/%s/", j->root, j->ref.repo);
        for (const char *r = j->ref.rev; !rc && *r; r++)
            rc = *r == '/' ? buf_append(&b, "%2F", 3) : buf_append(&b, r, 1);
        if (!rc) rc = buf_printf(&b, "/%s", j->ref.path);
        if (!rc && cpy(j->final, sizeof j->final, buf_cstr(&b))) rc = ERR_TOOBIG;
        buf_free(&b);
        if (rc) return err_set(err, errlen, ERR_TOOBIG, "cache path for %s too long", uri);
    } else {
        rc = url_check(uri, err, errlen);
        if (rc) return rc;
        cpy(j->url, sizeof j->url, uri);
        char base[128];
        url_basename(uri, base, sizeof base);
        w = snprintf(j->final, sizeof j->final, "%s/url/%016llx/%s", j->root,
                     (unsigned long long)fnv1a64(uri), base);
        if (w < 0 || (size_t)w >= sizeof j->final)
            return err_set(err, errlen, ERR_TOOBIG, "cache path too long");
    }
    /* dir, and the two sidecars ".<base>.hf-incomplete" / ".<base>.hf-lock" beside it */
    const char *slash = strrchr(j->final, '/');
    size_t dl = (size_t)(slash - j->final);
    memcpy(j->dir, j->final, dl);
    j->dir[dl] = 0;
    w = snprintf(j->tmp, sizeof j->tmp, "%s/.%s%s", j->dir, slash + 1, SUF_TMP);
    if (w < 0 || (size_t)w >= sizeof j->tmp)
        return err_set(err, errlen, ERR_TOOBIG, "cache path too long");
    w = snprintf(j->lock, sizeof j->lock, "%s/.%s%s", j->dir, slash + 1, SUF_LOCK);
    if (w < 0 || (size_t)w >= sizeof j->lock)
        return err_set(err, errlen, ERR_TOOBIG, "cache path too long");
    w = snprintf(j->etagp, sizeof j->etagp, "%s/.%s%s", j->dir, slash + 1, SUF_ETAG);
    if (w < 0 || (size_t)w >= sizeof j->etagp)
        return err_set(err, errlen, ERR_TOOBIG, "cache path too long");
    return 0;
}

int hf_cache_path(const char *uri, const hf_options *opt, char *out, size_t n, char *err,
                  size_t errlen)
{
    CORE_ASSERT(uri && out);
    hf_job *j = calloc(1, sizeof *j);
    if (!j) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    j->opt = opt;
    int rc = job_locate(j, uri, err, errlen);
    if (!rc && cpy(out, n, j->final))
        rc = err_set(err, errlen, ERR_TOOBIG, "output buffer too small for the cache path");
    free(j);
    return rc;
}

/* ---- reuse of huggingface_hub's cache ------------------------------------------- */

static int is_commit(const char *s, size_t n)
{
    if (n != 40) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i])) return 0;
    return 1;
}

/* 1 when huggingface_hub's cache holds the file; j->final is then replaced by its path. */
static int hub_lookup(hf_job *j)
{
    char root[HF_PATH_MAX], p[HF_PATH_MAX], commit[48];
    const char *v, *hc = j->opt ? j->opt->hub_cache : NULL;
    int w;
    if (hc) {
        if (!*hc) return 0;
        w = snprintf(root, sizeof root, "%s", hc);
    } else if ((v = env_get(j->opt, "HF_HUB_CACHE"))) {
        w = snprintf(root, sizeof root, "%s", v);
    } else if ((v = env_get(j->opt, "HF_HOME"))) {
        w = snprintf(root, sizeof root, "%s/hub", v);
    } else if ((v = env_get(j->opt, "XDG_CACHE_HOME")) && v[0] == '/') {
        w = snprintf(root, sizeof root, "%s/huggingface/hub", v);
    } else if ((v = env_get(j->opt, "HOME"))) {
        w = snprintf(root, sizeof root, "%s/.cache/huggingface/hub", v);
    } else {
        return 0;
    }
    if (w < 0 || (size_t)w >= sizeof root / 2) return 0;
    char model[2 * HF_NAME_MAX + 16];
    const char *slash = strchr(j->ref.repo, '/');
    snprintf(model, sizeof model, "models--%.*s--%s", (int)(slash - j->ref.repo), j->ref.repo,
             slash + 1);
    size_t rl = strlen(j->ref.rev);
    if (is_commit(j->ref.rev, rl)) {
        memcpy(commit, j->ref.rev, rl + 1);
    } else {
        w = snprintf(p, sizeof p, "%s/%s/refs/%s", root, model, j->ref.rev);
        if (w < 0 || (size_t)w >= sizeof p) return 0;
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return 0;
        ssize_t r = read(fd, commit, sizeof commit - 1);
        close(fd);
        if (r < 40) return 0;
        commit[r] = 0;
        size_t n = strcspn(commit, " \t\r\n");
        if (!is_commit(commit, n)) return 0;
        commit[n] = 0;
    }
    w = snprintf(p, sizeof p, "%s/%s/snapshots/%s/%s", root, model, commit, j->ref.path);
    if (w < 0 || (size_t)w >= sizeof p || !is_file(p)) return 0;
    memcpy(j->final, p, (size_t)w + 1);
    return 1;
}

/* ---- token ----------------------------------------------------------------------- */

static int token_ok(const char *t)
{
    for (; *t; t++)
        if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f) return 0;
    return 1;
}

/* Reads the token file written by `hf auth login`; 0 when found. Trims whitespace. */
static int token_file(hf_job *j)
{
    char path[HF_PATH_MAX];
    const char *v;
    int w;
    if ((v = env_get(j->opt, "HF_TOKEN_PATH"))) w = snprintf(path, sizeof path, "%s", v);
    else if ((v = env_get(j->opt, "HF_HOME"))) w = snprintf(path, sizeof path, "%s/token", v);
    else if ((v = env_get(j->opt, "XDG_CACHE_HOME")) && v[0] == '/')
        w = snprintf(path, sizeof path, "%s/huggingface/token", v);
    else if ((v = env_get(j->opt, "HOME")))
        w = snprintf(path, sizeof path, "%s/.cache/huggingface/token", v);
    else return -1;
    if (w < 0 || (size_t)w >= sizeof path) return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t r = read(fd, j->token, sizeof j->token - 1);
    close(fd);
    if (r <= 0) return -1;
    j->token[r] = 0;
    char *s = j->token;
    while (*s && isspace((unsigned char)*s)) s++;
    size_t l = strlen(s);
    while (l && isspace((unsigned char)s[l - 1])) l--;
    memmove(j->token, s, l);
    j->token[l] = 0;
    return l ? 0 : -1;
}

static int job_token(hf_job *j, char *err, size_t errlen)
{
    const char *t = j->opt ? j->opt->token : NULL, *src = "the token option";
    if (!t && (t = env_get(j->opt, "HF_TOKEN"))) src = "HF_TOKEN";
    if (!t && (t = env_get(j->opt, "HUGGING_FACE_HUB_TOKEN"))) src = "HUGGING_FACE_HUB_TOKEN";
    if (t) {
        if (!*t) return 0;
        if (cpy(j->token, sizeof j->token, t))
            return err_set(err, errlen, ERR_INVAL, "%s is too long", src);
    } else if (token_file(j)) {
        return 0;
    } else {
        src = "the Hugging Face token file";
    }
    if (!token_ok(j->token))
        return err_set(err, errlen, ERR_INVAL, "%s holds spaces or control characters", src);
    j->has_token = 1;
    return 0;
}

/* ---- files and locks ------------------------------------------------------------- */

static int mkdirs(const char *dir, char *err, size_t errlen)
{
    char p[HF_PATH_MAX];
    if (cpy(p, sizeof p, dir)) return err_set(err, errlen, ERR_TOOBIG, "path too long");
    for (char *s = p + 1;; s++) {
        if (*s == '/' || !*s) {
            char c = *s;
            *s = 0;
            if (mkdir(p, 0755) && errno != EEXIST)
                return err_set(err, errlen, ERR_IO, "cannot create %s: %s", p, strerror(errno));
            if (!c) break;
            *s = c;
        }
    }
    struct stat st;
    if (stat(dir, &st) || !S_ISDIR(st.st_mode))
        return err_set(err, errlen, ERR_IO, "%s is not a directory", dir);
    return 0;
}

static void fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Takes an exclusive flock on `path`, creating it; retries when the file we locked was
 * unlinked by the previous holder (so lock files can be deleted on release). */
static int lock_take(const char *path, const atomic_int *cancel, int *out, char *err,
                     size_t errlen)
{
    for (;;) {
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            return err_set(err, errlen, ERR_IO, "cannot create lock %s: %s", path,
                           strerror(errno));
        while (flock(fd, LOCK_EX | LOCK_NB)) {
            if (errno != EWOULDBLOCK && errno != EINTR) {
                int e = errno;
                close(fd);
                return err_set(err, errlen, ERR_IO, "cannot lock %s: %s", path, strerror(e));
            }
            if (cancel && atomic_load(cancel)) {
                close(fd);
                return err_set(err, errlen, ERR_CANCEL, "cancelled while waiting for %s", path);
            }
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        struct stat a, b;
        if (!fstat(fd, &a) && !stat(path, &b) && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
            *out = fd;
            return 0;
        }
        close(fd);
    }
}

static void lock_drop(const char *path, int fd)
{
    unlink(path); /* while still holding it: a waiter then sees a stale inode and retries */
    close(fd);
}

/* ---- SHA-256 (FIPS 180-4), to check LFS files against the hub's X-Linked-Etag ------ */

/* Compresses n 64-byte blocks of p into the state h. */
typedef void (*sha256_blocks_fn)(uint32_t h[8], const unsigned char *p, size_t n);

typedef struct sha256_ctx {
    uint32_t h[8];
    uint64_t len; /* bytes hashed */
    unsigned char blk[64];
    size_t nblk;
    sha256_blocks_fn blocks; /* the plain C reference or the SHA-NI kernel */
} sha256_ctx;

static const uint32_t SHA_K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t ror32(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha256_block_ref(uint32_t hs[8], const unsigned char *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror32(w[i - 15], 7) ^ ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror32(w[i - 2], 17) ^ ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = hs[0], b = hs[1], cc = hs[2], d = hs[3];
    uint32_t e = hs[4], f = hs[5], g = hs[6], h = hs[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (ror32(e, 6) ^ ror32(e, 11) ^ ror32(e, 25)) + ((e & f) ^ (~e & g)) +
                      SHA_K[i] + w[i];
        uint32_t t2 = (ror32(a, 2) ^ ror32(a, 13) ^ ror32(a, 22)) + ((a & b) ^ (a & cc) ^ (b & cc));
        h = g, g = f, f = e, e = d + t1, d = cc, cc = b, b = a, a = t1 + t2;
    }
    hs[0] += a, hs[1] += b, hs[2] += cc, hs[3] += d;
    hs[4] += e, hs[5] += f, hs[6] += g, hs[7] += h;
}

/* The plain C reference. */
static void sha256_blocks_ref(uint32_t h[8], const unsigned char *p, size_t n)
{
    for (; n; n--, p += 64) sha256_block_ref(h, p);
}

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

/* SHA-NI: four rounds per pair of sha256rnds2, the schedule with sha256msg1/msg2. The state
 * lives as ABEF / CDGH halves, which is the order the instructions want. Checked against
 * the reference by the unit tests (same vectors through both, see hf_options.hash_generic). */
__attribute__((target("sha,sse4.1,ssse3"))) static void
sha256_blocks_ni(uint32_t h[8], const unsigned char *p, size_t n)
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i t = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[0]), 0xB1); /* CDAB */
    __m128i s1 = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[4]), 0x1B); /* EFGH */
    __m128i s0 = _mm_alignr_epi8(t, s1, 8);       /* ABEF */
    s1 = _mm_blend_epi16(s1, t, 0xF0);            /* CDGH */
    for (; n; n--, p += 64) {
        __m128i abef = s0, cdgh = s1, w[4];
        for (int i = 0; i < 16; i++) {
            __m128i m;
            if (i < 4) {
                m = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), bswap);
            } else { /* W[t] = s1(W[t-2]) + W[t-7] + s0(W[t-15]) + W[t-16], 4 at a time */
                m = _mm_sha256msg1_epu32(w[i & 3], w[(i - 3) & 3]);
                m = _mm_add_epi32(m, _mm_alignr_epi8(w[(i - 1) & 3], w[(i - 2) & 3], 4));
                m = _mm_sha256msg2_epu32(m, w[(i - 1) & 3]);
            }
            w[i & 3] = m;
            __m128i k = _mm_add_epi32(m, _mm_loadu_si128((const __m128i *)&SHA_K[4 * i]));
            s1 = _mm_sha256rnds2_epu32(s1, s0, k);
            s0 = _mm_sha256rnds2_epu32(s0, s1, _mm_shuffle_epi32(k, 0x0E));
        }
        s0 = _mm_add_epi32(s0, abef);
        s1 = _mm_add_epi32(s1, cdgh);
    }
    t = _mm_shuffle_epi32(s0, 0x1B);              /* FEBA */
    s1 = _mm_shuffle_epi32(s1, 0xB1);             /* DCHG */
    s0 = _mm_blend_epi16(t, s1, 0xF0);            /* DCBA */
    s1 = _mm_alignr_epi8(s1, t, 8);               /* HGFE */
    _mm_storeu_si128((__m128i *)&h[0], s0);
    _mm_storeu_si128((__m128i *)&h[4], s1);
}

static sha256_blocks_fn sha256_pick(int generic)
{
    unsigned a, b, c, d;
    if (!generic && __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 29)) &&
        __get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSE4_1) && (c & bit_SSSE3))
        return sha256_blocks_ni;
    return sha256_blocks_ref;
}
#else
static sha256_blocks_fn sha256_pick(int generic)
{
    (void)generic;
    return sha256_blocks_ref;
}
#endif

static void sha256_init(sha256_ctx *c, int generic)
{
    c->blocks = sha256_pick(generic);
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, h0, sizeof h0);
    c->len = 0, c->nblk = 0;
}

static void sha256_update(sha256_ctx *c, const unsigned char *p, size_t n)
{
    c->len += n;
    if (c->nblk) {
        size_t k = 64 - c->nblk < n ? 64 - c->nblk : n;
        memcpy(c->blk + c->nblk, p, k);
        c->nblk += k, p += k, n -= k;
        if (c->nblk < 64) return;
        c->blocks(c->h, c->blk, 1);
        c->nblk = 0;
    }
    if (n >= 64) {
        c->blocks(c->h, p, n / 64);
        p += n / 64 * 64;
        n %= 64;
    }
    memcpy(c->blk, p, n);
    c->nblk = n;
}

static void sha256_hex(sha256_ctx *c, char out[65])
{
    uint64_t bits = c->len * 8;
    unsigned char pad[72] = {0x80};
    size_t np = (c->nblk < 56 ? 56 : 120) - c->nblk;
    for (int i = 0; i < 8; i++) pad[np + i] = (unsigned char)(bits >> (56 - 8 * i));
    sha256_update(c, pad, np + 8);
    for (int i = 0; i < 8; i++) snprintf(out + 8 * i, 9, "%08x", c->h[i]);
}

/* SHA-256 of a whole file (reads it back; the page cache usually still holds it). */
static int sha256_fd(int fd, int generic, char out[65])
{
    enum { CHUNK = 1 << 20 };
    unsigned char *b = malloc(CHUNK);
    if (!b) return ERR_NOMEM;
    sha256_ctx c;
    sha256_init(&c, generic);
    off_t pos = 0;
    for (;;) {
        ssize_t r = pread(fd, b, CHUNK, pos);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            free(b);
            return ERR_IO;
        }
        if (r == 0) break;
        sha256_update(&c, b, (size_t)r);
        pos += r;
    }
    free(b);
    sha256_hex(&c, out);
    return 0;
}

/* Restarts j's running hash over the first `n` bytes already in fd. */
static int hash_prefix(hf_job *j, int fd, uint64_t n)
{
    enum { CHUNK = 1 << 20 };
    sha256_init(j->hash, j->opt && j->opt->hash_generic);
    j->hashed = 0;
    if (!n) return 0;
    unsigned char *b = malloc(CHUNK);
    if (!b) return ERR_NOMEM;
    while (j->hashed < n) {
        size_t want = n - j->hashed < CHUNK ? (size_t)(n - j->hashed) : CHUNK;
        ssize_t r = pread(fd, b, want, (off_t)j->hashed);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            free(b);
            return ERR_IO;
        }
        sha256_update(j->hash, b, (size_t)r);
        j->hashed += (uint64_t)r;
    }
    free(b);
    return 0;
}

/* An etag header value that is a SHA-256 ("W/" and quotes stripped, 64 hex) into out[65],
 * lower-cased; leaves out alone otherwise. */
static void etag_sha256(const char *v, char out[65])
{
    if (!strncmp(v, "W/", 2)) v += 2;
    if (*v == '"') v++;
    size_t n = 0;
    while (n < 64 && isxdigit((unsigned char)v[n])) n++;
    if (n != 64 || (v[64] && v[64] != '"')) return;
    for (int i = 0; i < 64; i++) out[i] = (char)tolower((unsigned char)v[i]);
    out[64] = 0;
}

/* ---- one HTTP exchange ----------------------------------------------------------- */

enum { MODE_UNDECIDED = 0, MODE_WRITE, MODE_DISCARD };
enum { XF_RESTART = 1 }; /* internal: drop the temp file and try once more without Range */

typedef struct hf_xfer {
    hf_job *j;
    int fd;
    uint64_t offset;     /* bytes of the file before this response's body */
    uint64_t written;    /* body bytes written by this response */
    uint64_t total;      /* expected final size when have_total */
    int have_total;
    uint64_t max_bytes;
    long status;
    int mode;
    int64_t content_length; /* -1 = absent */
    char content_range[96];
    char x_error_code[64];
    char x_error_msg[256];
    char x_linked_etag[96];
    char etag[128];
    char errbody[HF_ERRBODY_KEEP + 1];
    size_t errbody_len, discarded;
    int werr;        /* errno of a failed write / truncate */
    int toobig, badrange, cancelled;
    uint64_t last_reported;
    int reported;
} hf_xfer;

static void hdr_value(const char *v, size_t len, char *dst, size_t n)
{
    while (len && (*v == ' ' || *v == '\t')) v++, len--;
    while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' ')) len--;
    if (len >= n) len = n - 1;
    memcpy(dst, v, len);
    dst[len] = 0;
}

static int hdr_is(const char *line, size_t len, const char *name, const char **val, size_t *vlen)
{
    size_t k = strlen(name);
    if (len <= k || strncasecmp(line, name, k) || line[k] != ':') return 0;
    *val = line + k + 1;
    *vlen = len - k - 1;
    return 1;
}

/* Parses "bytes A-B/T" (or "bytes STAR/T", STAR = "*", when want_star) from Content-Range. */
static int parse_range(const char *v, int want_star, uint64_t *a, uint64_t *b, uint64_t *t)
{
    unsigned long long x = 0, y = 0, z = 0;
    int used = 0;
    if (want_star) {
        if (sscanf(v, "bytes */%llu%n", &z, &used) != 1 || v[used]) return -1;
    } else {
        if (sscanf(v, "bytes %llu-%llu/%llu%n", &x, &y, &z, &used) != 3 || v[used]) return -1;
        if (y < x || y >= z) return -1;
    }
    *a = x, *b = y, *t = z;
    return 0;
}

/* A strong ETag we can send back in If-Range: "..." of printable ASCII, no "W/". */
static int etag_strong(const char *e)
{
    size_t n = strlen(e);
    if (n < 2 || n >= 128 || e[0] != '"' || e[n - 1] != '"') return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)e[i] <= 0x20 || (unsigned char)e[i] >= 0x7f) return 0;
    return 1;
}

/* Remembers (or forgets) the validator of the body now starting at byte 0 of tmp. Best
 * effort: without it a later resume is sent without If-Range. */
static void validator_save(hf_job *j, const char *etag)
{
    j->validator[0] = 0;
    unlink(j->etagp);
    if (!etag_strong(etag)) return;
    int fd = open(j->etagp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;
    size_t n = strlen(etag);
    if (write(fd, etag, n) == (ssize_t)n) cpy(j->validator, sizeof j->validator, etag);
    close(fd);
}

static void validator_load(hf_job *j)
{
    j->validator[0] = 0;
    int fd = open(j->etagp, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char b[128];
    ssize_t r = read(fd, b, sizeof b - 1);
    close(fd);
    if (r <= 0) return;
    b[r] = 0;
    if (etag_strong(b)) cpy(j->validator, sizeof j->validator, b);
}

/* Called at the end of a final (non-1xx) header block: decides what the body is. */
static int xfer_decide(hf_xfer *x)
{
    uint64_t a, b, t;
    x->mode = MODE_DISCARD;
    if (x->status == 200) {
        if (x->offset > 0) { /* server ignored Range (or If-Range failed): restart */
            if (ftruncate(x->fd, 0)) {
                x->werr = errno;
                return -1;
            }
            x->offset = 0;
            sha256_init(x->j->hash, x->j->opt && x->j->opt->hash_generic);
            x->j->hashed = 0;
        }
        if (x->content_length >= 0) x->have_total = 1, x->total = (uint64_t)x->content_length;
        validator_save(x->j, x->etag);
        x->mode = MODE_WRITE;
    } else if (x->status == 206) {
        if (x->offset == 0 || parse_range(x->content_range, 0, &a, &b, &t) || a != x->offset ||
            b + 1 != t) {
            x->badrange = 1;
            return -1;
        }
        x->have_total = 1, x->total = t;
        x->mode = MODE_WRITE;
    }
    if (x->mode == MODE_WRITE && x->have_total && x->total > x->max_bytes) {
        x->toobig = 1;
        return -1;
    }
    return 0;
}

static size_t cb_header(char *line, size_t size, size_t nitems, void *user)
{
    hf_xfer *x = user;
    size_t len = size * nitems;
    const char *v;
    size_t vl;
    if (len >= 5 && !strncmp(line, "HTTP/", 5)) { /* a new response (1xx, 3xx, final) */
        const char *sp = memchr(line, ' ', len);
        x->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        x->content_length = -1;
        x->content_range[0] = x->x_error_code[0] = x->x_error_msg[0] = 0;
        x->x_linked_etag[0] = x->etag[0] = 0;
        x->mode = MODE_UNDECIDED;
    } else if (len <= 2 && (line[0] == '\r' || line[0] == '\n')) {
        if (x->status >= 200 && xfer_decide(x)) return 0; /* 0 != len aborts */
    } else if (hdr_is(line, len, "content-length", &v, &vl)) {
        char tmp[32];
        hdr_value(v, vl, tmp, sizeof tmp);
        char *end;
        errno = 0;
        long long cl = strtoll(tmp, &end, 10);
        if (!errno && *tmp && !*end && cl >= 0) x->content_length = cl;
    } else if (hdr_is(line, len, "content-range", &v, &vl)) {
        hdr_value(v, vl, x->content_range, sizeof x->content_range);
    } else if (hdr_is(line, len, "x-error-code", &v, &vl)) {
        hdr_value(v, vl, x->x_error_code, sizeof x->x_error_code);
    } else if (hdr_is(line, len, "etag", &v, &vl)) {
        hdr_value(v, vl, x->etag, sizeof x->etag);
    } else if (hdr_is(line, len, "x-linked-etag", &v, &vl)) {
        hdr_value(v, vl, x->x_linked_etag, sizeof x->x_linked_etag);
    } else if (hdr_is(line, len, "x-error-message", &v, &vl)) {
        hdr_value(v, vl, x->x_error_msg, sizeof x->x_error_msg);
    }
    return len;
}

static size_t cb_write(char *p, size_t size, size_t nmemb, void *user)
{
    hf_xfer *x = user;
    size_t n = size * nmemb;
    if (x->mode != MODE_WRITE) {
        size_t room = HF_ERRBODY_KEEP - x->errbody_len, k = n < room ? n : room;
        memcpy(x->errbody + x->errbody_len, p, k);
        x->errbody_len += k;
        x->errbody[x->errbody_len] = 0;
        x->discarded += n;
        return x->discarded > HF_ERRBODY_ABORT ? 0 : n;
    }
    uint64_t pos = x->offset + x->written;
    CORE_ASSERT(x->j->hashed == pos);
    if (pos + n > x->max_bytes) {
        x->toobig = 1;
        return 0;
    }
    for (size_t done = 0; done < n;) {
        ssize_t w = pwrite(x->fd, p + done, n - done, (off_t)(pos + done));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            x->werr = w < 0 ? errno : ENOSPC;
            return 0;
        }
        done += (size_t)w;
    }
    x->written += n;
    sha256_update(x->j->hash, (const unsigned char *)p, n); /* overlaps the network wait */
    x->j->hashed += n;
    return n;
}

static int cb_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    hf_xfer *x = user;
    const hf_options *o = x->j->opt;
    if (o && o->cancel && atomic_load(o->cancel)) return x->cancelled = 1;
    if (!o || !o->progress || x->mode != MODE_WRITE) return 0;
    uint64_t done = x->offset + (uint64_t)(dlnow > 0 ? dlnow : 0);
    uint64_t total = x->have_total ? x->total : dltotal > 0 ? x->offset + (uint64_t)dltotal : 0;
    if (x->reported && done == x->last_reported) return 0;
    x->reported = 1, x->last_reported = done;
    if (o->progress(o->progress_user, x->j->what, done, total)) return x->cancelled = 1;
    return 0;
}

typedef struct url_parts {
    char scheme[16];
    char host[256];
    long port;
} url_parts;

static int url_split(const char *u, url_parts *p)
{
    CURLU *cu = curl_url();
    if (!cu) return -1;
    char *s = NULL, *h = NULL, *po = NULL;
    int rc = -1;
    if (!curl_url_set(cu, CURLUPART_URL, u, 0) && !curl_url_get(cu, CURLUPART_SCHEME, &s, 0) &&
        !curl_url_get(cu, CURLUPART_HOST, &h, 0) &&
        !curl_url_get(cu, CURLUPART_PORT, &po, CURLU_DEFAULT_PORT) &&
        !cpy(p->scheme, sizeof p->scheme, s) &&
        !cpy(p->host, sizeof p->host, h)) {
        for (char *c = p->scheme; *c; c++) *c = (char)tolower((unsigned char)*c);
        for (char *c = p->host; *c; c++) *c = (char)tolower((unsigned char)*c);
        p->port = strtol(po, NULL, 10);
        rc = 0;
    }
    curl_free(s);
    curl_free(h);
    curl_free(po);
    curl_url_cleanup(cu);
    return rc;
}

/* localhost, an IPv4 literal in 127.0.0.0/8 or the IPv6 literal ::1
 * (not a name that merely starts with "127.", like "127.0.0.1.evil.example"). */
static int is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    char h6[64];
    size_t l = strlen(host);
    if (!strcmp(host, "localhost")) return 1;
    if (inet_pton(AF_INET, host, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    if (l >= 2 && l < sizeof h6 && host[0] == '[' && host[l - 1] == ']') {
        memcpy(h6, host + 1, l - 2);
        h6[l - 2] = 0;
        host = h6;
    }
    return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

/* The body of a failed response as a short one-line hint (printable ASCII only). */
static void body_hint(const hf_xfer *x, char *out, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < x->errbody_len && k + 1 < n && k < 160; i++) {
        unsigned char c = (unsigned char)x->errbody[i];
        out[k++] = (c >= 0x20 && c < 0x7f) ? (char)c : ' ';
    }
    out[k] = 0;
}

/* Maps a final non-2xx status to an error. *definitive = the temp file is useless. */
static int status_error(hf_xfer *x, int sent_token, const char *host, int *definitive, char *err,
                        size_t errlen)
{
    hf_job *j = x->j;
    const char *what = j->what;
    char hint[200];
    body_hint(x, hint, sizeof hint);
    const char *detail = x->x_error_msg[0] ? x->x_error_msg : hint;
    long st = x->status;
    *definitive = st >= 400 && st < 500 && st != 408 && st != 429;
    if (st == 401 || st == 403) {
        const char *repo = j->is_hf ? j->ref.repo : host;
        int gated = !strcmp(x->x_error_code, "GatedRepo");
        if (sent_token && !gated &&
            (st == 401 || !strcmp(x->x_error_msg, "Invalid credentials in Authorization header")))
            return err_set(err, errlen, HF_ERR_GATED,
                           "%s: HTTP %ld: HF_TOKEN was rejected (invalid or expired token?); "
                           "create a read token at https://huggingface.co/settings/tokens%s%s",
                           what, st, *detail ? ": " : "", detail);
        if (sent_token)
            return err_set(err, errlen, HF_ERR_GATED,
                           "%s: HTTP %ld: gated: accept the terms on huggingface.co/%s with the "
                           "account of HF_TOKEN%s%s", what, st, repo, *detail ? ": " : "", detail);
        return err_set(err, errlen, HF_ERR_GATED,
                       "%s: HTTP %ld: gated: accept the terms on huggingface.co/%s and set "
                       "HF_TOKEN%s%s", what, st, repo, *detail ? ": " : "", detail);
    }
    if (st == 404 || st == 410)
        return err_set(err, errlen, ERR_NOTFOUND, "%s: HTTP %ld: not found%s%s%s", what, st,
                       x->x_error_code[0] ? " (" : "", x->x_error_code,
                       x->x_error_code[0] ? ")" : "");
    return err_set(err, errlen, ERR_IO, "%s: HTTP %ld from %s%s%s", what, st, host,
                   *detail ? ": " : "", detail);
}

/* Downloads j->url into fd, whose first `*offset` bytes are already there. */
static int xfer_run(hf_job *j, CURL *h, int fd, uint64_t *offset, int *definitive,
                    int *retryable, char *err, size_t errlen)
{
    const hf_options *o = j->opt;
    int max_redir = o && o->max_redirects > 0 ? o->max_redirects : 8;
    long conn_to = o && o->connect_timeout_s > 0 ? o->connect_timeout_s : 20;
    long low_to = o && o->low_speed_time_s > 0 ? o->low_speed_time_s : 60;
    uint64_t max_bytes = o && o->max_bytes ? o->max_bytes : (16ull << 30);
    int allow_http = o && o->allow_http;
    url_parts ep;
    if (url_split(j->endpoint, &ep))
        return err_set(err, errlen, ERR_INVAL, "malformed HF endpoint");

    char *url = malloc(HF_URL_MAX);
    hf_xfer *x = malloc(sizeof *x);
    if (!url || !x) {
        free(url);
        free(x);
        return err_set(err, errlen, ERR_NOMEM, "out of memory");
    }
    cpy(url, HF_URL_MAX, j->url);
    char cerr[CURL_ERROR_SIZE], noproxy[1024]; /* CURLOPT_NOPROXY replaces $no_proxy: merge */
    const char *np = env_get(o, "no_proxy");
    if (!np) np = env_get(o, "NO_PROXY");
    snprintf(noproxy, sizeof noproxy, "localhost,127.0.0.1,::1%s%s", np ? "," : "", np ? np : "");
    int rc = 0;
    for (int hop = 0;; hop++) {
        url_parts up;
        if (url_split(url, &up)) {
            rc = err_set(err, errlen, ERR_IO, "%s: malformed URL (hop %d)", j->what, hop);
            break;
        }
        if (strcmp(up.scheme, "https") &&
            !(!strcmp(up.scheme, "http") && (allow_http || is_loopback(up.host)))) {
            rc = err_set(err, errlen, ERR_INVAL,
                         "%s: refusing %s://%s (only https, or http to loopback, is allowed)",
                         j->what, up.scheme, up.host);
            break;
        }
        int send_token = j->has_token && !strcmp(up.scheme, ep.scheme) &&
                         !strcmp(up.host, ep.host) && up.port == ep.port;

        memset(x, 0, sizeof *x);
        x->j = j, x->fd = fd, x->offset = *offset, x->max_bytes = max_bytes;
        x->content_length = -1;

        struct curl_slist *hl = NULL, *t;
        char line[HF_TOKEN_MAX + 32];
        int ok = 1;
        if (send_token) {
            snprintf(line, sizeof line, "Authorization: Bearer %s", j->token);
            ok = ok && (t = curl_slist_append(hl, line)) && (hl = t);
        }
        if (*offset > 0) {
            snprintf(line, sizeof line, "Range: bytes=%llu-", (unsigned long long)*offset);
            ok = ok && (t = curl_slist_append(hl, line)) && (hl = t);
            if (j->validator[0]) { /* a changed file then comes back whole (200) */
                snprintf(line, sizeof line, "If-Range: %s", j->validator);
                ok = ok && (t = curl_slist_append(hl, line)) && (hl = t);
            }
        }
        explicit_bzero(line, sizeof line);
        if (!ok) {
            curl_slist_free_all(hl);
            rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
            break;
        }
        curl_easy_reset(h);
        cerr[0] = 0;
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        /* $https_proxy etc. are honoured (libcurl reads them), never for loopback */
        curl_easy_setopt(h, CURLOPT_NOPROXY, noproxy);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
        curl_easy_setopt(h, CURLOPT_USERAGENT, o && o->user_agent ? o->user_agent : "pockettts");
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, conn_to);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, low_to);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, cb_header);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, cb_write);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, cb_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
        CURLcode cc = curl_easy_perform(h);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
        curl_slist_free_all(hl);

        long st = x->status;
        /* huggingface.co names an LFS file's SHA-256 in X-Linked-Etag on the resolve
         * response (the redirect to the CDN); only the endpoint itself is believed */
        if (cc == CURLE_OK && !strcmp(up.scheme, ep.scheme) && !strcmp(up.host, ep.host) &&
            up.port == ep.port)
            etag_sha256(x->x_linked_etag, j->sha256);
        if (cc == CURLE_OK && (st == 301 || st == 302 || st == 303 || st == 307 || st == 308)) {
            char *loc = NULL;
            curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &loc);
            if (!loc || !*loc) {
                rc = err_set(err, errlen, ERR_IO, "%s: HTTP %ld without Location", j->what, st);
                break;
            }
            if (hop >= max_redir) {
                rc = err_set(err, errlen, ERR_IO, "%s: more than %d redirects", j->what, max_redir);
                break;
            }
            if (cpy(url, HF_URL_MAX, loc) || url_check(url, NULL, 0)) {
                rc = err_set(err, errlen, ERR_IO, "%s: redirect to an unusable URL", j->what);
                break;
            }
            continue;
        }
        /* final response (or failure) */
        *offset = x->offset; /* a 200 restarted from 0 */
        uint64_t have = x->offset + x->written;
        /* worth another try, resuming: the connection broke or the server is overloaded;
         * not when it cannot be reached at all (offline users should not wait) */
        *retryable = cc == CURLE_PARTIAL_FILE || cc == CURLE_RECV_ERROR ||
                     cc == CURLE_SEND_ERROR || cc == CURLE_OPERATION_TIMEDOUT ||
                     cc == CURLE_GOT_NOTHING || cc == CURLE_HTTP2 || cc == CURLE_HTTP2_STREAM ||
                     (cc == CURLE_OK && (st >= 500 || st == 429 || st == 408)) ||
                     (cc == CURLE_OK && x->mode == MODE_WRITE && x->have_total &&
                      have != x->total);
        if (x->werr)
            rc = err_set(err, errlen, ERR_IO, "writing %s: %s", j->tmp, strerror(x->werr));
        else if (x->toobig)
            rc = err_set(err, errlen, ERR_TOOBIG, "%s is larger than the limit of %llu bytes",
                         j->what, (unsigned long long)max_bytes);
        else if (x->badrange)
            rc = XF_RESTART;
        else if (x->cancelled || cc == CURLE_ABORTED_BY_CALLBACK)
            rc = err_set(err, errlen, ERR_CANCEL, "%s: download cancelled at %llu bytes", j->what,
                         (unsigned long long)have);
        else if (cc == CURLE_PARTIAL_FILE ||
                 (cc == CURLE_OK && x->mode == MODE_WRITE && x->have_total && have != x->total))
            rc = err_set(err, errlen, ERR_IO,
                         "%s: truncated download: got %llu of %llu bytes (kept; the next "
                         "fetch resumes)", j->what, (unsigned long long)have,
                         (unsigned long long)x->total);
        else if (cc != CURLE_OK && have > 0)
            rc = err_set(err, errlen, ERR_IO, "%s: %s%s%s (%llu bytes kept; the next fetch "
                         "resumes)", j->what, curl_easy_strerror(cc), cerr[0] ? ": " : "", cerr,
                         (unsigned long long)have);
        else if (cc != CURLE_OK)
            rc = err_set(err, errlen, ERR_IO, "%s: %s%s%s", j->what, curl_easy_strerror(cc),
                         cerr[0] ? ": " : "", cerr);
        else if (x->mode == MODE_WRITE)
            rc = 0;
        else if (st == 416) {
            uint64_t a, b, tot;
            rc = (!parse_range(x->content_range, 1, &a, &b, &tot) && tot == *offset && tot > 0)
                     ? 0 : XF_RESTART;
            if (!rc) x->have_total = 1, x->total = tot;
        } else
            rc = status_error(x, send_token, up.host, definitive, err, errlen);
        if (!rc && o && o->progress) /* always end on done == total */
            o->progress(o->progress_user, j->what, have, x->have_total ? x->total : have);
        break;
    }
    free(url);
    free(x);
    return rc;
}

/* Holding the lock: download into the temp file, then publish it. */
static int job_download(hf_job *j, char *err, size_t errlen)
{
    int fd = open(j->tmp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return err_set(err, errlen, ERR_IO, "cannot create %s: %s", j->tmp, strerror(errno));
    struct stat st;
    uint64_t offset = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    CURL *h = curl_easy_init();
    if (!h) {
        close(fd);
        return err_set(err, errlen, ERR_NOMEM, "curl_easy_init failed (curl_global_init called?)");
    }
    sha256_ctx hash;
    j->hash = &hash;
    if (offset > 0) validator_load(j);
    else unlink(j->etagp);
    const hf_options *o = j->opt;
    int retries = !o || o->retries == 0 ? 3 : o->retries < 0 ? 0 : o->retries;
    long pause_ms = o && o->retry_pause_ms > 0 ? o->retry_pause_ms : 500;
    int rc, definitive = 0, hash_ready = 0, restarts = 0, tries = 0;
    for (;;) {
        if (!hash_ready || j->hashed != offset) {
            if (hash_prefix(j, fd, offset)) {
                rc = err_set(err, errlen, ERR_IO, "reading back %s: %s", j->tmp, strerror(errno));
                break;
            }
            hash_ready = 1;
        }
        int retryable = 0;
        rc = xfer_run(j, h, fd, &offset, &definitive, &retryable, err, errlen);
        if (rc && rc != XF_RESTART && retryable && tries < retries) {
            long ms = pause_ms << tries++;
            for (; ms > 0 && !(o && o->cancel && atomic_load(o->cancel)); ms -= 50) {
                struct timespec ts = {0, (ms < 50 ? ms : 50) * 1000000L};
                nanosleep(&ts, NULL);
            }
            if (o && o->cancel && atomic_load(o->cancel)) {
                rc = err_set(err, errlen, ERR_CANCEL, "%s: cancelled", j->what);
                break;
            }
            offset = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0; /* resume from here */
            definitive = 0;
            continue;
        }
        if (rc != XF_RESTART) break;
        if (restarts++ >= 1) {
            rc = err_set(err, errlen, ERR_IO, "%s: server sent an inconsistent byte range",
                         j->what);
            definitive = 1;
            break;
        }
        if (ftruncate(fd, 0)) {
            rc = err_set(err, errlen, ERR_IO, "truncating %s: %s", j->tmp, strerror(errno));
            break;
        }
        offset = 0;
        validator_save(j, "");
    }
    curl_easy_cleanup(h);
    j->hash = NULL;
    if (!rc && j->sha256[0]) {
        char got[65];
        int hrc = 0;
        if (fstat(fd, &st) == 0 && (uint64_t)st.st_size == j->hashed)
            sha256_hex(&hash, got); /* hashed while downloading: no second pass */
        else
            hrc = sha256_fd(fd, j->opt && j->opt->hash_generic, got);
        if (hrc) {
            rc = err_set(err, errlen, ERR_IO, "reading back %s: %s", j->tmp, strerror(errno));
        } else if (strcmp(got, j->sha256)) {
            rc = err_set(err, errlen, ERR_FORMAT,
                         "%s: checksum mismatch: the hub says sha256 %s, the download is %s "
                         "(discarded)", j->what, j->sha256, got);
            definitive = 1;
        }
    }
    if (!rc && fsync(fd))
        rc = err_set(err, errlen, ERR_IO, "fsync %s: %s", j->tmp, strerror(errno));
    int keep = !definitive && fstat(fd, &st) == 0 && st.st_size > 0;
    close(fd);
    if (!rc) {
        if (rename(j->tmp, j->final))
            rc = err_set(err, errlen, ERR_IO, "rename to %s: %s", j->final, strerror(errno));
        else
            fsync_dir(j->dir);
    }
    if (rc && !keep) unlink(j->tmp);
    if (!rc || !keep) unlink(j->etagp);
    return rc;
}

int hf_fetch(const char *uri, const hf_options *opt, char *out, size_t n, char *err,
             size_t errlen)
{
    CORE_ASSERT(uri && out);
    hf_job *j = calloc(1, sizeof *j);
    if (!j) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    j->opt = opt;
    int rc = job_locate(j, uri, err, errlen), lockfd = -1;
    if (rc) goto done;
    if (strlen(j->final) >= n) {
        rc = err_set(err, errlen, ERR_TOOBIG, "output buffer too small for the cache path");
        goto done;
    }
    if (is_file(j->final)) goto hit;
    if (j->is_hf && hub_lookup(j)) goto hit; /* j->final now points into the hub cache */
    if ((opt && opt->offline) || truthy(env_get(opt, "HF_HUB_OFFLINE"))) {
        rc = err_set(err, errlen, ERR_NOTFOUND,
                     "%s is not in the cache (%s) and offline mode is on (HF_HUB_OFFLINE)", uri,
                     j->final);
        goto done;
    }
    if (opt && opt->cancel && atomic_load(opt->cancel)) {
        rc = err_set(err, errlen, ERR_CANCEL, "%s: cancelled", uri);
        goto done;
    }
    rc = job_token(j, err, errlen);
    if (!rc) rc = mkdirs(j->dir, err, errlen);
    if (!rc) rc = lock_take(j->lock, opt ? opt->cancel : NULL, &lockfd, err, errlen);
    if (rc) goto done;
    if (!is_file(j->final)) rc = job_download(j, err, errlen);
    lock_drop(j->lock, lockfd);
    if (rc) goto done;
hit:
    if (cpy(out, n, j->final))
        rc = err_set(err, errlen, ERR_TOOBIG, "output buffer too small for %s", j->final);
done:
    explicit_bzero(j->token, sizeof j->token);
    free(j);
    return rc;
}

/* ---- terminal progress ----------------------------------------------------------- */

int hf_progress_tty(void *user, const char *what, uint64_t done, uint64_t total)
{
    hf_tty *t = user;
    if (!t || !isatty(STDERR_FILENO)) return 0;
    double now = mono_s();
    int finished = total > 0 && done >= total;
    if (t->finished && finished) return 0;
    if (!finished) t->finished = 0;
    if (t->start_s == 0) t->start_s = now, t->start_bytes = done;
    if (!finished && t->drawn && now - t->last_s < 0.1) return 0;
    t->last_s = now;
    size_t wl = strlen(what);
    const char *shown = wl > 48 ? what + wl - 45 : what;
    double dt = now - t->start_s, mb = 1e6;
    double rate = dt > 0.05 ? (double)(done - t->start_bytes) / dt / mb : 0;
    if (total)
        fprintf(stderr, "\r  %s%s  %.1f/%.1f MB  %3d%%  %.1f MB/s\033[K", wl > 48 ? "..." : "",
                shown, done / mb, total / mb, (int)(100.0 * (double)done / (double)total), rate);
    else
        fprintf(stderr, "\r  %s%s  %.1f MB  %.1f MB/s\033[K", wl > 48 ? "..." : "", shown,
                done / mb, rate);
    t->drawn = 1;
    if (finished) {
        fputc('\n', stderr);
        t->drawn = 0, t->finished = 1, t->start_s = 0;
    }
    return 0;
}
