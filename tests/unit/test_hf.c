/* test_hf.c — hf:// parsing, cache layout and real downloads against a loopback server.
 *
 * The server below is a tiny HTTP/1.1 responder on 127.0.0.1 (port 0) in a pthread, one
 * connection at a time, "Connection: close" always. Each test scripts it with routes (path ->
 * status, extra headers, body, Range/If-Range support, truncation, 503s, required token,
 * delay, ETag) and then reads back its request log (path, Range, If-Range, Authorization,
 * Host) to assert what hf_fetch() actually sent. Every test uses a fresh cache under /tmp
 * and removes it at the end (a failing test leaves it for inspection). Everything is
 * explicit in hf_options with no_env = 1 and retries = -1, except the tests of the
 * environment variables and of retrying themselves (HF_TOKEN_PATH then points nowhere so a
 * real token on the machine is never read). "localhost" and "127.0.0.1" reach the same
 * server but count as two hosts, which is how the CDN redirects are played.
 */
#include "ut.h"

#include "core/err.h"
#include "model/hf.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- the loopback server -------------------------------------------------------- */

typedef struct route {
    char path[256];
    int status;
    char headers[512];           /* extra header lines, each ending in \r\n */
    const unsigned char *body;   /* borrowed */
    size_t body_len;
    int honor_range;             /* 200 route: "Range: bytes=N-" gets 206 (or 416) */
    int truncate_first;          /* the first N hits announce the full length, send less */
    size_t truncate_at;          /* ... this many body bytes */
    const char *need_token;      /* non-NULL: 401 unless "Bearer <need_token>" */
    int delay_ms;                /* wait before answering */
    int bogus_range;             /* answer any Range with a 206 that starts at byte 0 */
    int no_length;               /* 200 without Content-Length: the body ends at close */
    const char *etag;            /* sent on 200/206; If-Range must match it to get a 206 */
    int fail_first;              /* the first N hits get 503 */
    int hits;
} route;

typedef struct req_log {
    char path[512];
    char range[64];
    char auth[256];
    char host[128];
    char if_range[128];
} req_log;

typedef struct tsrv {
    int lfd, port;
    pthread_t th;
    atomic_int stop;
    pthread_mutex_t mu;
    route routes[32];
    int nroutes;
    req_log log[64];
    int nlog;
} tsrv;

static void hdr_copy(const char *req, const char *name, char *out, size_t n)
{
    out[0] = 0;
    size_t k = strlen(name);
    for (const char *p = req; (p = strchr(p, '\n')); ) {
        p++;
        if (!strncasecmp(p, name, k) && p[k] == ':') {
            p += k + 1;
            while (*p == ' ') p++;
            size_t l = strcspn(p, "\r\n");
            if (l >= n) l = n - 1;
            memcpy(out, p, l);
            out[l] = 0;
            return;
        }
    }
}

static void send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0) return;
        c += w, n -= (size_t)w;
    }
}

static void serve_one(tsrv *s, int cfd)
{
    char req[8192];
    size_t len = 0;
    struct timeval tv = {2, 0};
    setsockopt(cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (len < sizeof req - 1) {
        ssize_t r = recv(cfd, req + len, sizeof req - 1 - len, 0);
        if (r <= 0) return;
        len += (size_t)r;
        req[len] = 0;
        if (strstr(req, "\r\n\r\n")) break;
    }
    req_log lg;
    memset(&lg, 0, sizeof lg);
    char method[16];
    if (sscanf(req, "%15s %511s", method, lg.path) != 2) return;
    hdr_copy(req, "Range", lg.range, sizeof lg.range);
    hdr_copy(req, "Authorization", lg.auth, sizeof lg.auth);
    hdr_copy(req, "Host", lg.host, sizeof lg.host);
    hdr_copy(req, "If-Range", lg.if_range, sizeof lg.if_range);

    pthread_mutex_lock(&s->mu);
    if (s->nlog < 64) s->log[s->nlog++] = lg;
    route *rt = NULL;
    for (int i = 0; i < s->nroutes; i++)
        if (!strcmp(s->routes[i].path, lg.path)) rt = &s->routes[i];
    route r;
    if (rt) r = *rt, r.hits = ++rt->hits;
    pthread_mutex_unlock(&s->mu);

    char head[2048];
    const unsigned char *body = NULL;
    size_t blen = 0, send_len = 0;
    int n;
    if (!rt) {
        static const char nf[] = "Entry not found";
        n = snprintf(head, sizeof head,
                     "HTTP/1.1 404 Not Found\r\nX-Error-Code: EntryNotFound\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n", sizeof nf - 1);
        body = (const unsigned char *)nf, blen = send_len = sizeof nf - 1;
    } else if (r.hits <= r.fail_first) {
        n = snprintf(head, sizeof head,
                     "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    } else if (r.need_token && strncmp(lg.auth, "Bearer ", 7)) {
        n = snprintf(head, sizeof head,
                     "HTTP/1.1 401 Unauthorized\r\nX-Error-Code: GatedRepo\r\n"
                     "X-Error-Message: Access to model o/r is restricted. You must have access "
                     "to it and be authenticated to access it. Please log in.\r\n"
                     "Content-Length: 0\r\nConnection: close\r\n\r\n");
    } else if (r.need_token && strcmp(lg.auth + 7, r.need_token)) {
        n = snprintf(head, sizeof head,
                     "HTTP/1.1 401 Unauthorized\r\n"
                     "X-Error-Message: Invalid credentials in Authorization header\r\n"
                     "Content-Length: 0\r\nConnection: close\r\n\r\n");
    } else if (r.status == 200) {
        unsigned long long from = 0;
        int ranged = r.honor_range && sscanf(lg.range, "bytes=%llu-", &from) == 1;
        if (r.bogus_range && lg.range[0]) ranged = 1, from = 0;
        if (lg.if_range[0] && (!r.etag || strcmp(lg.if_range, r.etag))) ranged = 0;
        char hx[640];
        snprintf(hx, sizeof hx, "%s%s%s%s", r.headers, r.etag ? "ETag: " : "", r.etag ? r.etag : "",
                 r.etag ? "\r\n" : "");
        memcpy(r.headers, hx, sizeof r.headers - 1);
        r.headers[sizeof r.headers - 1] = 0;
        if (ranged && from >= r.body_len) {
            n = snprintf(head, sizeof head,
                         "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */%zu\r\n"
                         "Content-Length: 0\r\nConnection: close\r\n\r\n", r.body_len);
        } else if (ranged) {
            body = r.body + from, blen = r.body_len - from;
            n = snprintf(head, sizeof head,
                         "HTTP/1.1 206 Partial Content\r\n%sContent-Range: bytes %llu-%zu/%zu\r\n"
                         "Content-Length: %zu\r\nConnection: close\r\n\r\n", r.headers, from,
                         r.body_len - 1, r.body_len, blen);
        } else {
            body = r.body, blen = r.body_len;
            if (r.no_length)
                n = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\n%sConnection: close\r\n\r\n",
                             r.headers);
            else
                n = snprintf(head, sizeof head,
                             "HTTP/1.1 200 OK\r\n%sContent-Length: %zu\r\nConnection: close\r\n\r\n",
                             r.headers, blen);
        }
        send_len = blen;
        if (r.hits <= r.truncate_first && r.truncate_at < blen) send_len = r.truncate_at;
    } else {
        body = r.body, blen = send_len = r.body_len;
        n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d Scripted\r\n%sContent-Length: %zu\r\nConnection: close\r\n\r\n",
                     r.status, r.headers, blen);
    }
    if (rt && r.delay_ms) {
        struct timespec ts = {r.delay_ms / 1000, (r.delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    send_all(cfd, head, (size_t)n);
    if (send_len) send_all(cfd, body, send_len);
}

static void *serve(void *arg)
{
    tsrv *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd p = {s->lfd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) continue;
        int cfd = accept(s->lfd, NULL, NULL);
        if (cfd < 0) continue;
        serve_one(s, cfd);
        shutdown(cfd, SHUT_RDWR);
        close(cfd);
    }
    return NULL;
}

static int srv_start(tsrv *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&a, sizeof a) || listen(s->lfd, 16) ||
        getsockname(s->lfd, (struct sockaddr *)&a, &al))
        return -1;
    s->port = ntohs(a.sin_port);
    return pthread_create(&s->th, NULL, serve, s) ? -1 : 0;
}

static void srv_stop(tsrv *s)
{
    if (s->lfd <= 0) return;
    atomic_store(&s->stop, 1);
    pthread_join(s->th, NULL);
    close(s->lfd);
    s->lfd = -1;
    pthread_mutex_destroy(&s->mu);
}

static route *srv_route(tsrv *s, const char *path, int status)
{
    CORE_ASSERT(s->nroutes < 32);
    route *r = &s->routes[s->nroutes++];
    memset(r, 0, sizeof *r);
    snprintf(r->path, sizeof r->path, "%s", path);
    r->status = status;
    return r;
}

static int srv_nlog(tsrv *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->nlog;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* ---- fixtures -------------------------------------------------------------------- */

#define BODY_LEN 200000
static unsigned char *make_body(size_t n, unsigned seed)
{
    unsigned char *b = malloc(n);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) x = x * 1664525u + 1013904223u, b[i] = (unsigned char)(x >> 24);
    return b;
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

typedef struct fx {
    tsrv srv;
    char cache[64];
    char endpoint[64];
    hf_options opt;
    unsigned char *body;
} fx;

static void fx_open(ut_ctx *t, fx *f)
{
    memset(f, 0, sizeof *f);
    UT_EQ_INT(t, 0, curl_global_init(CURL_GLOBAL_DEFAULT));
    strcpy(f->cache, "/tmp/hf-ut-XXXXXX");
    UT_CHECK(t, mkdtemp(f->cache) != NULL);
    UT_EQ_INT(t, 0, srv_start(&f->srv));
    snprintf(f->endpoint, sizeof f->endpoint, "http://127.0.0.1:%d", f->srv.port);
    f->opt.cache_dir = f->cache;
    f->opt.endpoint = f->endpoint;
    f->opt.no_env = 1;
    f->opt.connect_timeout_s = 5;
    f->opt.low_speed_time_s = 5;
    f->opt.retries = -1; /* each test scripts failures one call at a time; t_retries retries */
    f->body = make_body(BODY_LEN, 1);
}

static void fx_close(fx *f)
{
    srv_stop(&f->srv);
    nftw(f->cache, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(f->body);
    curl_global_cleanup();
}

static int file_equals(const char *path, const unsigned char *want, size_t n)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    unsigned char *got = malloc(n + 1);
    size_t r = fread(got, 1, n + 1, fp);
    fclose(fp);
    int ok = r == n && !memcmp(got, want, n);
    free(got);
    return ok;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) ? -1 : (long)st.st_size;
}

/* Number of ".hf-incomplete" / ".hf-lock" sidecars anywhere under dir. */
static int sidecars(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        size_t l = strlen(e->d_name);
        if ((l > 14 && !strcmp(e->d_name + l - 14, ".hf-incomplete")) ||
            (l > 8 && !strcmp(e->d_name + l - 8, ".hf-lock")) ||
            (l > 8 && !strcmp(e->d_name + l - 8, ".hf-etag")))
            n++;
        char sub[1024];
        snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
        struct stat st;
        if (!lstat(sub, &st) && S_ISDIR(st.st_mode)) n += sidecars(sub);
    }
    closedir(d);
    return n;
}

static void temp_path(char *out, size_t n, const char *final)
{
    const char *sl = strrchr(final, '/');
    snprintf(out, n, "%.*s/.%s.hf-incomplete", (int)(sl - final), final, sl + 1);
}

static void write_file(const char *path, const void *p, size_t n)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s", path);
    for (char *s = dir + 1; *s; s++)
        if (*s == '/') *s = 0, mkdir(dir, 0755), *s = '/';
    FILE *fp = fopen(path, "wb");
    CORE_ASSERT(fp);
    fwrite(p, 1, n, fp);
    fclose(fp);
}

#define URI "hf://o/r/dir/model.safetensors@0123456789abcdef0123456789abcdef01234567"
#define RPATH "/o/r/resolve/0123456789abcdef0123456789abcdef01234567/dir/model.safetensors"

/* ---- parsing and layout ---------------------------------------------------------- */

static void t_parse_ok(ut_ctx *t)
{
    static const struct { const char *uri, *repo, *path, *rev; } cases[] = {
        {"hf://kyutai/pocket-tts/languages/english_2026-04/model.safetensors@19f95fe2df36e79fbd9f10008595cc4c977a0fcc",
         "kyutai/pocket-tts", "languages/english_2026-04/model.safetensors",
         "19f95fe2df36e79fbd9f10008595cc4c977a0fcc"},
        {"hf://kyutai/tts-voices/alba-mackenna/casual.wav", "kyutai/tts-voices",
         "alba-mackenna/casual.wav", "main"},
        {"hf://a/b/c@refs/pr/1", "a/b", "c", "refs/pr/1"},
        {"hf://a.b/c_d/.gitattributes@v1.0", "a.b/c_d", ".gitattributes", "v1.0"},
        {"hf://a/b/with space/é.bin", "a/b", "with space/é.bin", "main"},
    };
    char err[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hf_ref r;
        int rc = hf_parse(cases[i].uri, &r, err, sizeof err);
        if (rc) ut_fail(t, __FILE__, __LINE__, "%s: expected 0, got %d (%s)", cases[i].uri, rc, err);
        UT_EQ_STR(t, cases[i].repo, r.repo);
        UT_EQ_STR(t, cases[i].path, r.path);
        UT_EQ_STR(t, cases[i].rev, r.rev);
    }
    hf_ref r;
    char url[HF_URL_MAX];
    UT_EQ_INT(t, 0, hf_parse("hf://a/b/x y/z%.bin@refs/pr/1", &r, err, sizeof err));
    UT_EQ_INT(t, 0, hf_resolve_url(&r, NULL, url, sizeof url, err, sizeof err));
    UT_EQ_STR(t, "https://huggingface.co/a/b/resolve/refs%2Fpr%2F1/x%20y/z%25.bin", url);
    UT_EQ_INT(t, 0, hf_resolve_url(&r, "http://127.0.0.1:9/", url, sizeof url, err, sizeof err));
    UT_EQ_STR(t, "http://127.0.0.1:9/a/b/resolve/refs%2Fpr%2F1/x%20y/z%25.bin", url);
    UT_EQ_INT(t, ERR_TOOBIG, hf_resolve_url(&r, NULL, url, 20, err, sizeof err));
}

static void t_parse_refused(ut_ctx *t)
{
    static const char *bad[] = {
        "hf://", "hf:///a/b/c", "hf://a", "hf://a/b", "hf://a/b/", "hf://a//c", "hf://a/b//c",
        "hf://a/b/../c", "hf://a/b/c/..", "hf://a/b/./c", "hf://../b/c", "hf://a/../c",
        "hf://a/b/c@", "hf://a/b/c@..", "hf://a/b/c@x/../y", "hf://a/b/c@/x", "hf://a/b/c@a b",
        "hf://a/b/c\\d", "hf://a/b/c\x01", "hf://a/b/c\nd", "hf://a/b/c\x7f", "hf://a b/c/d",
        "hf://a/b/c.hf-incomplete", "hf://a/b/x.hf-lock", "hf://a/b/y.hf-etag", "https://x/y", "a/b/c", "/etc/passwd",
        "hf://a/b/c@main@x y",
    };
    char err[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hf_ref r;
        err[0] = 0;
        int rc = hf_parse(bad[i], &r, err, sizeof err);
        if (rc != ERR_INVAL)
            ut_fail(t, __FILE__, __LINE__, "case %zu: expected ERR_INVAL (%d), got %d", i, ERR_INVAL, rc);
        UT_CHECK(t, err[0] != 0);
    }
    char longp[3000];
    memset(longp, 'a', sizeof longp - 1);
    longp[sizeof longp - 1] = 0;
    memcpy(longp, "hf://a/b/", 9);
    hf_ref r;
    UT_EQ_INT(t, ERR_INVAL, hf_parse(longp, &r, err, sizeof err));
}

static void t_cache_layout(ut_ctx *t)
{
    hf_options o = {.cache_dir = "/c/", .no_env = 1};
    char p[1024], q[1024], err[256];
    UT_EQ_INT(t, 0, hf_cache_path("hf://a/b/x/y.bin@v1", &o, p, sizeof p, err, sizeof err));
    UT_EQ_STR(t, "/c/hf/a/b/v1/x/y.bin", p);
    UT_EQ_INT(t, 0, hf_cache_path("hf://a/b/x/y.bin", &o, p, sizeof p, err, sizeof err));
    UT_EQ_STR(t, "/c/hf/a/b/main/x/y.bin", p);
    /* a revision with '/' stays one segment: no collision with rev "refs" + path "pr/1/y" */
    UT_EQ_INT(t, 0, hf_cache_path("hf://a/b/y@refs/pr/1", &o, p, sizeof p, err, sizeof err));
    UT_EQ_STR(t, "/c/hf/a/b/refs%2Fpr%2F1/y", p);
    UT_EQ_INT(t, 0, hf_cache_path("hf://a/b/pr/1/y@refs", &o, q, sizeof q, err, sizeof err));
    UT_CHECK(t, strcmp(p, q) != 0);
    UT_EQ_INT(t, 0, hf_cache_path("https://h.example/d/voice.wav?sig=1", &o, p, sizeof p, err, sizeof err));
    UT_CHECK(t, !strncmp(p, "/c/url/", 7));
    UT_EQ_STR(t, "voice.wav", strrchr(p, '/') + 1);
    UT_EQ_INT(t, 0, hf_cache_path("https://h.example/d/voice.wav?sig=2", &o, q, sizeof q, err, sizeof err));
    UT_CHECK(t, strcmp(p, q) != 0);
    UT_EQ_INT(t, ERR_TOOBIG, hf_cache_path("hf://a/b/x/y.bin", &o, p, 10, err, sizeof err));
    UT_EQ_INT(t, ERR_INVAL, hf_cache_path("ftp://h/x", &o, p, sizeof p, err, sizeof err));

    /* environment precedence: POCKET_TTS_CACHE_DIR > XDG_CACHE_HOME/pockettts > HOME/.cache */
    hf_options e = {0};
    setenv("HOME", getenv("HOME") ? getenv("HOME") : "/home/x", 1);
    char *home = strdup(getenv("HOME"));
    setenv("POCKET_TTS_CACHE_DIR", "/p", 1);
    setenv("XDG_CACHE_HOME", "/x", 1);
    UT_EQ_INT(t, 0, hf_cache_root(&e, p, sizeof p, err, sizeof err));
    UT_EQ_STR(t, "/p", p);
    unsetenv("POCKET_TTS_CACHE_DIR");
    UT_EQ_INT(t, 0, hf_cache_root(NULL, p, sizeof p, err, sizeof err));
    UT_EQ_STR(t, "/x/pockettts", p);
    unsetenv("XDG_CACHE_HOME");
    setenv("HOME", "/h", 1);
    UT_EQ_INT(t, 0, hf_cache_root(&e, p, sizeof p, err, sizeof err));
    UT_EQ_STR(t, "/h/.cache/pockettts", p);
    e.no_env = 1;
    UT_EQ_INT(t, ERR_INVAL, hf_cache_root(&e, p, sizeof p, err, sizeof err));
    setenv("HOME", home, 1);
    free(home);
}

/* ---- downloads ------------------------------------------------------------------- */

typedef struct prog {
    int calls;
    uint64_t last_done, last_total;
    int cancel_after; /* > 0: return 1 once done >= this */
} prog;

static int on_progress(void *user, const char *what, uint64_t done, uint64_t total)
{
    prog *p = user;
    p->calls++;
    p->last_done = done, p->last_total = total;
    return p->cancel_after > 0 && done >= (uint64_t)p->cancel_after;
}

static void t_fresh_and_cache_hit(ut_ctx *t)
{
    fx f;
    fx_open(t, &f);
    route *r = srv_route(&f.srv, RPATH, 200);
    r->body = f.body, r->body_len = BODY_LEN;
    prog pg = {0};
    f.opt.progress = on_progress, f.opt.progress_user = &pg;
    char path[1024], want[1024], err[256] = "";
    int rc = hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "fetch: expected 0, got %d (%s)", rc, err);
    UT_EQ_INT(t, 0, hf_cache_path(URI, &f.opt, want, sizeof want, err, sizeof err));
    UT_EQ_STR(t, want, path);
    UT_CHECK(t, file_equals(path, f.body, BODY_LEN));
    UT_EQ_INT(t, 1, srv_nlog(&f.srv));
    UT_EQ_STR(t, "", f.srv.log[0].range);
    UT_EQ_STR(t, "", f.srv.log[0].auth);
    UT_CHECK(t, pg.calls >= 1);
    UT_EQ_INT(t, BODY_LEN, pg.last_done);
    UT_EQ_INT(t, BODY_LEN, pg.last_total);
    UT_EQ_INT(t, 0, sidecars(f.cache));

    /* cache hit: the server is gone, so any network access would fail */
    srv_stop(&f.srv);
    char again[1024];
    pg.calls = 0;
    rc = hf_fetch(URI, &f.opt, again, sizeof again, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "cache hit: expected 0, got %d (%s)", rc, err);
    UT_EQ_STR(t, path, again);
    UT_EQ_INT(t, 0, pg.calls);
    f.opt.offline = 1; /* offline with the file cached also works */
    UT_EQ_INT(t, 0, hf_fetch(URI, &f.opt, again, sizeof again, err, sizeof err));
    UT_EQ_INT(t, 1, f.srv.nlog);
    fx_close(&f);
}

static void t_truncated_then_resume(ut_ctx *t)
{
    fx f;
    fx_open(t, &f);
    route *r = srv_route(&f.srv, RPATH, 200);
    r->body = f.body, r->body_len = BODY_LEN, r->honor_range = 1;
    r->truncate_first = 1, r->truncate_at = 70000;
    char path[1024], fin[1024], tmp[1100], err[256] = "";
    UT_EQ_INT(t, 0, hf_cache_path(URI, &f.opt, fin, sizeof fin, err, sizeof err));
    temp_path(tmp, sizeof tmp, fin);

    int rc = hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err);
    UT_EQ_INT(t, ERR_IO, rc);
    UT_CHECK(t, strstr(err, "truncated") != NULL);
    UT_EQ_INT(t, -1, file_size(fin));     /* nothing published */
    UT_EQ_INT(t, 70000, file_size(tmp));  /* partial kept for resuming */

    rc = hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "resume: expected 0, got %d (%s)", rc, err);
    UT_EQ_INT(t, 2, srv_nlog(&f.srv));
    UT_EQ_STR(t, "bytes=70000-", f.srv.log[1].range);
    UT_CHECK(t, file_equals(path, f.body, BODY_LEN));
    UT_EQ_INT(t, 0, sidecars(f.cache));
    fx_close(&f);
}

static void t_range_ignored_restarts(ut_ctx *t)
{
    fx f;
    fx_open(t, &f);
    route *r = srv_route(&f.srv, RPATH, 200); /* ignores Range: always 200 */
    r->body = f.body, r->body_len = BODY_LEN;
    char path[1024], fin[1024], tmp[1100], err[256] = "";
    UT_EQ_INT(t, 0, hf_cache_path(URI, &f.opt, fin, sizeof fin, err, sizeof err));
    temp_path(tmp, sizeof tmp, fin);
    unsigned char *junk = make_body(5000, 7); /* a stale partial of something else */
    write_file(tmp, junk, 5000);
    free(junk);
    int rc = hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "expected 0, got %d (%s)", rc, err);
    UT_EQ_STR(t, "bytes=5000-", f.srv.log[0].range);
    UT_EQ_INT(t, 1, srv_nlog(&f.srv));
    UT_CHECK(t, file_equals(path, f.body, BODY_LEN));
    UT_EQ_INT(t, 0, sidecars(f.cache));
    fx_close(&f);
}

static void t_complete_partial_416(ut_ctx *t)
{
    /* a crash after the last byte but before the rename: Range past the end gets 416 with
     * the total, which equals what we have, so no byte is downloaded again */
    fx f;
    fx_open(t, &f);
    route *r = srv_route(&f.srv, RPATH, 200);
    r->body = f.body, r->body_len = BODY_LEN, r->honor_range = 1;
    char path[1024], fin[1024], tmp[1100], err[256] = "";
    UT_EQ_INT(t, 0, hf_cache_path(URI, &f.opt, fin, sizeof fin, err, sizeof err));
    temp_path(tmp, sizeof tmp, fin);
    write_file(tmp, f.body, BODY_LEN);
    int rc = hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "expected 0, got %d (%s)", rc, err);
    UT_EQ_INT(t, 1, srv_nlog(&f.srv));
    UT_CHECK(t, file_equals(path, f.body, BODY_LEN));
    UT_EQ_INT(t, 0, sidecars(f.cache));
    fx_close(&f);
}

static void t_bogus_206_restarts(ut_ctx *t)
{
    /* a 206 whose Content-Range does not start where we asked must not be appended */
    fx f;
    fx_open(t, &f);
    route *r = srv_route(&f.srv, RPATH, 200);
    r->body = f.body, r->body_len = BODY_LEN, r->bogus_range = 1;
    char path[1024], fin[1024], tmp[1100], err[256] = "";
    UT_EQ_INT(t, 0, hf_cache_path(URI, &f.opt, fin, sizeof fin, err, sizeof err));
    temp_path(tmp, sizeof tmp, fin);
    write_file(tmp, f.body, 3000);
    int rc = hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "expected 0, got %d (%s)", rc, err);
    UT_EQ_INT(t, 2, srv_nlog(&f.srv));
    UT_EQ_STR(t, "bytes=3000-", f.srv.log[0].range);
    UT_EQ_STR(t, "", f.srv.log[1].range); /* restarted from byte 0 */
    UT_CHECK(t, file_equals(path, f.body, BODY_LEN));
    UT_EQ_INT(t, 0, sidecars(f.cache));
    fx_close(&f);
}

static void t_gated_401(ut_ctx *t)
{
    fx f;
    fx_open(t, &f);
    route *r = srv_route(&f.srv, RPATH, 200);
    r->body = f.body, r->body_len = BODY_LEN, r->need_token = "hf_good";
    char path[1024], err[512] = "";

    int rc = hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err); /* no token */
    UT_EQ_INT(t, HF_ERR_GATED, rc);
    UT_CHECK(t, strstr(err, "gated") && strstr(err, "HF_TOKEN") && strstr(err, "huggingface.co/o/r"));
    UT_EQ_STR(t, "", f.srv.log[0].auth);
    UT_EQ_INT(t, 0, sidecars(f.cache));

    f.opt.token = "hf_wrong_secret";
    rc = hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err);
    UT_EQ_INT(t, HF_ERR_GATED, rc);
    UT_CHECK(t, strstr(err, "rejected") != NULL);
    UT_CHECK(t, strstr(err, "hf_wrong_secret") == NULL); /* never in messages */
    UT_EQ_STR(t, "Bearer hf_wrong_secret", f.srv.log[1].auth);
    UT_EQ_INT(t, 0, sidecars(f.cache));

    f.opt.token = "hf_good";
    rc = hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "good token: expected 0, got %d (%s)", rc, err);
    UT_EQ_STR(t, "Bearer hf_good", f.srv.log[2].auth);
    UT_CHECK(t, file_equals(path, f.body, BODY_LEN));

    f.opt.token = "bad token\r\nX-Evil: 1"; /* header injection refused before any request */
    UT_EQ_INT(t, 0, unlink(path));
    UT_EQ_INT(t, ERR_INVAL, hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err));
    UT_EQ_INT(t, 3, srv_nlog(&f.srv));
    fx_close(&f);
}

static void t_token_from_env(ut_ctx *t)
{
    fx f;
    fx_open(t, &f);
    route *r = srv_route(&f.srv, RPATH, 200);
    r->body = f.body, r->body_len = BODY_LEN, r->need_token = "hf_env";
    f.opt.no_env = 0;
    setenv("HF_TOKEN_PATH", "/nonexistent/hf-token", 1);
    unsetenv("HF_TOKEN");
    setenv("HUGGING_FACE_HUB_TOKEN", "hf_env", 1);
    char path[1024], err[512] = "";
    int rc = hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "HUGGING_FACE_HUB_TOKEN: expected 0, got %d (%s)", rc, err);
    UT_EQ_STR(t, "Bearer hf_env", f.srv.log[0].auth);
    UT_EQ_INT(t, 0, unlink(path));
    setenv("HF_TOKEN", "hf_env", 1); /* HF_TOKEN wins */
    setenv("HUGGING_FACE_HUB_TOKEN", "hf_other", 1);
    rc = hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "HF_TOKEN: expected 0, got %d (%s)", rc, err);
    UT_EQ_STR(t, "Bearer hf_env", f.srv.log[1].auth);
    UT_EQ_INT(t, 0, unlink(path));
    f.opt.no_env = 1; /* no_env: no token at all */
    UT_EQ_INT(t, HF_ERR_GATED, hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err));
    UT_EQ_STR(t, "", f.srv.log[2].auth);
    unsetenv("HF_TOKEN");
    unsetenv("HUGGING_FACE_HUB_TOKEN");

    /* the token file of `hf auth login` */
    char tokpath[128];
    snprintf(tokpath, sizeof tokpath, "%s/token", f.cache);
    write_file(tokpath, "  hf_env\n", 9);
    setenv("HF_TOKEN_PATH", tokpath, 1);
    f.opt.no_env = 0;
    rc = hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "token file: expected 0, got %d (%s)", rc, err);
    UT_EQ_STR(t, "Bearer hf_env", f.srv.log[3].auth);
    unsetenv("HF_TOKEN_PATH");
    fx_close(&f);
}

static void t_not_found_404(ut_ctx *t)
{
    fx f;
    fx_open(t, &f);
    char path[1024], fin[1024], err[512] = "";
    int rc = hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err);
    UT_EQ_INT(t, ERR_NOTFOUND, rc);
    UT_CHECK(t, strstr(err, "404") && strstr(err, "EntryNotFound"));
    UT_EQ_INT(t, 0, hf_cache_path(URI, &f.opt, fin, sizeof fin, err, sizeof err));
    UT_EQ_INT(t, -1, file_size(fin));
    UT_EQ_INT(t, 0, sidecars(f.cache));
    fx_close(&f);
}

static void t_offline(ut_ctx *t)
{
    fx f;
    fx_open(t, &f);
    route *r = srv_route(&f.srv, RPATH, 200);
    r->body = f.body, r->body_len = BODY_LEN;
    char path[1024], err[512] = "";
    f.opt.offline = 1;
    UT_EQ_INT(t, ERR_NOTFOUND, hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err));
    UT_CHECK(t, strstr(err, "offline") && strstr(err, f.cache));
    f.opt.offline = 0, f.opt.no_env = 0;
    setenv("HF_HUB_OFFLINE", "1", 1);
    setenv("HF_TOKEN_PATH", "/nonexistent/hf-token", 1);
    UT_EQ_INT(t, ERR_NOTFOUND, hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err));
    UT_EQ_INT(t, 0, srv_nlog(&f.srv));
    setenv("HF_HUB_OFFLINE", "0", 1);
    int rc = hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "online: expected 0, got %d (%s)", rc, err);
    UT_EQ_INT(t, 1, srv_nlog(&f.srv));
    unsetenv("HF_HUB_OFFLINE");
    unsetenv("HF_TOKEN_PATH");
    UT_EQ_INT(t, 0, sidecars(f.cache));
    fx_close(&f);
}

static void t_redirects(ut_ctx *t)
{
    fx f;
    fx_open(t, &f);
    /* LFS-style: resolve -> 302 to a CDN on another host ("localhost" != "127.0.0.1") */
    route *r = srv_route(&f.srv, RPATH, 302);
    snprintf(r->headers, sizeof r->headers,
             "Location: http://localhost:%d/cdn/blob?sig=abc\r\nX-Linked-Size: %d\r\n",
             f.srv.port, BODY_LEN);
    r = srv_route(&f.srv, "/cdn/blob?sig=abc", 200);
    r->body = f.body, r->body_len = BODY_LEN;
    f.opt.token = "hf_secret";
    char path[1024], err[512] = "";
    int rc = hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "expected 0, got %d (%s)", rc, err);
    UT_EQ_INT(t, 2, srv_nlog(&f.srv));
    UT_EQ_STR(t, "Bearer hf_secret", f.srv.log[0].auth);
    UT_EQ_STR(t, "", f.srv.log[1].auth); /* not leaked to the other host */
    UT_CHECK(t, !strncmp(f.srv.log[1].host, "localhost:", 10));
    UT_CHECK(t, file_equals(path, f.body, BODY_LEN));

    /* relative redirect on the same host keeps the token */
    r = srv_route(&f.srv, "/o/r/resolve/main/renamed.bin", 307);
    snprintf(r->headers, sizeof r->headers, "Location: /o/r2/resolve/main/renamed.bin\r\n");
    r = srv_route(&f.srv, "/o/r2/resolve/main/renamed.bin", 200);
    r->body = f.body, r->body_len = 1000;
    rc = hf_fetch("hf://o/r/renamed.bin", &f.opt, path, sizeof path, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "relative: expected 0, got %d (%s)", rc, err);
    UT_EQ_INT(t, 4, srv_nlog(&f.srv));
    UT_EQ_STR(t, "Bearer hf_secret", f.srv.log[3].auth);
    UT_CHECK(t, file_equals(path, f.body, 1000));

    /* a loop ends after max_redirects */
    r = srv_route(&f.srv, "/o/r/resolve/main/loop", 302);
    snprintf(r->headers, sizeof r->headers, "Location: /o/r/resolve/main/loop\r\n");
    f.opt.max_redirects = 3;
    rc = hf_fetch("hf://o/r/loop", &f.opt, path, sizeof path, err, sizeof err);
    UT_EQ_INT(t, ERR_IO, rc);
    UT_CHECK(t, strstr(err, "redirects") != NULL);
    UT_EQ_INT(t, 4 + 4, srv_nlog(&f.srv));

    /* a redirect to plain http on a non-loopback host is refused (https only), also when the
     * name only looks like a loopback address */
    static const char *far[] = {"http://example.invalid/x", "http://127.0.0.1.example.invalid/x",
                                "http://[::2]/x", "ftp://127.0.0.1/x"};
    for (int i = 0; i < 4; i++) {
        char rp[64], uri[64];
        snprintf(rp, sizeof rp, "/o/r/resolve/main/plain%d", i);
        snprintf(uri, sizeof uri, "hf://o/r/plain%d", i);
        r = srv_route(&f.srv, rp, 302);
        snprintf(r->headers, sizeof r->headers, "Location: %s\r\n", far[i]);
        rc = hf_fetch(uri, &f.opt, path, sizeof path, err, sizeof err);
        if (rc != ERR_INVAL && rc != ERR_IO)
            ut_fail(t, __FILE__, __LINE__, "%s: expected ERR_INVAL/ERR_IO, got %d (%s)", far[i], rc, err);
        UT_CHECK(t, strstr(err, "hf_secret") == NULL);
        if (i < 3) UT_CHECK(t, strstr(err, "refusing") != NULL);
    }
    UT_EQ_INT(t, 0, sidecars(f.cache));
    fx_close(&f);
}

static void t_limits_and_cancel(ut_ctx *t)
{
    fx f;
    fx_open(t, &f);
    route *r = srv_route(&f.srv, RPATH, 200);
    r->body = f.body, r->body_len = BODY_LEN, r->honor_range = 1;
    char path[1024], err[512] = "";

    f.opt.max_bytes = 1000;
    UT_EQ_INT(t, ERR_TOOBIG, hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err));
    UT_EQ_INT(t, 0, sidecars(f.cache));
    /* without Content-Length the cap is enforced while writing; an empty temp is removed */
    r = srv_route(&f.srv, "/o/r/resolve/main/stream.bin", 200);
    r->body = f.body, r->body_len = BODY_LEN, r->no_length = 1;
    UT_EQ_INT(t, ERR_TOOBIG, hf_fetch("hf://o/r/stream.bin", &f.opt, path, sizeof path, err, sizeof err));
    f.opt.max_bytes = 0;
    int rc = hf_fetch("hf://o/r/stream.bin", &f.opt, path, sizeof path, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "no length: expected 0, got %d (%s)", rc, err);
    UT_CHECK(t, file_equals(path, f.body, BODY_LEN));
    UT_EQ_INT(t, 3, srv_nlog(&f.srv));

    /* https only for remote hosts: refused before any connection */
    hf_options o = f.opt;
    o.endpoint = "http://example.invalid";
    UT_EQ_INT(t, ERR_INVAL, hf_fetch("hf://o/r/x.bin", &o, path, sizeof path, err, sizeof err));
    UT_CHECK(t, strstr(err, "refusing") != NULL);
    UT_EQ_INT(t, ERR_INVAL, hf_fetch("http://example.invalid/x.bin", &o, path, sizeof path, err, sizeof err));

    atomic_int cancel = 1;
    f.opt.cancel = &cancel;
    UT_EQ_INT(t, ERR_CANCEL, hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err));
    UT_EQ_INT(t, 3, srv_nlog(&f.srv)); /* nothing more reached the server */
    atomic_store(&cancel, 0);

    /* the progress callback cancels half-way: partial kept, next fetch resumes */
    prog pg = {.cancel_after = 1};
    f.opt.progress = on_progress, f.opt.progress_user = &pg;
    rc = hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err);
    UT_EQ_INT(t, ERR_CANCEL, rc);
    pg.cancel_after = 0;
    rc = hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "after cancel: expected 0, got %d (%s)", rc, err);
    UT_EQ_INT(t, 5, srv_nlog(&f.srv));
    UT_CHECK(t, !strncmp(f.srv.log[4].range, "bytes=", 6)); /* resumed, not restarted */
    UT_CHECK(t, file_equals(path, f.body, BODY_LEN));
    UT_EQ_INT(t, BODY_LEN, pg.last_done);
    UT_EQ_INT(t, 0, sidecars(f.cache));
    fx_close(&f);
}

typedef struct conc {
    const hf_options *opt;
    int rc;
    char path[1024], err[256];
} conc;

static void *conc_fetch(void *arg)
{
    conc *c = arg;
    c->rc = hf_fetch(URI, c->opt, c->path, sizeof c->path, c->err, sizeof c->err);
    return NULL;
}

static void t_concurrent_same_file(ut_ctx *t)
{
    fx f;
    fx_open(t, &f);
    route *r = srv_route(&f.srv, RPATH, 200);
    r->body = f.body, r->body_len = BODY_LEN, r->delay_ms = 300;
    conc c[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        memset(&c[i], 0, sizeof c[i]);
        c[i].opt = &f.opt;
        pthread_create(&th[i], NULL, conc_fetch, &c[i]);
    }
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 3; i++) {
        if (c[i].rc) ut_fail(t, __FILE__, __LINE__, "thread %d: expected 0, got %d (%s)", i, c[i].rc, c[i].err);
        UT_EQ_STR(t, c[0].path, c[i].path);
    }
    UT_EQ_INT(t, 1, srv_nlog(&f.srv)); /* one download; the others waited and reused it */
    UT_CHECK(t, file_equals(c[0].path, f.body, BODY_LEN));
    UT_EQ_INT(t, 0, sidecars(f.cache));
    fx_close(&f);
}

static void t_concurrent_processes(ut_ctx *t)
{
    /* the same, across processes: the flock is per open file, not per process */
    fx f;
    fx_open(t, &f);
    route *r = srv_route(&f.srv, RPATH, 200);
    r->body = f.body, r->body_len = BODY_LEN, r->delay_ms = 300;
    pid_t kids[2];
    for (int i = 0; i < 2; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            char p[1024], e[256];
            int rc = hf_fetch(URI, &f.opt, p, sizeof p, e, sizeof e);
            _exit(rc == 0 && file_equals(p, f.body, BODY_LEN) ? 0 : 1);
        }
        UT_CHECK(t, kids[i] > 0);
    }
    char path[1024], err[256] = "";
    int rc = hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err);
    for (int i = 0; i < 2; i++) {
        int st = -1;
        waitpid(kids[i], &st, 0);
        UT_CHECK(t, WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    if (rc) ut_fail(t, __FILE__, __LINE__, "parent: expected 0, got %d (%s)", rc, err);
    UT_CHECK(t, file_equals(path, f.body, BODY_LEN));
    UT_EQ_INT(t, 1, srv_nlog(&f.srv));
    UT_EQ_INT(t, 0, sidecars(f.cache));
    fx_close(&f);
}

static void t_plain_url(ut_ctx *t)
{
    fx f;
    fx_open(t, &f);
    route *r = srv_route(&f.srv, "/files/voice.wav?v=2", 200);
    r->body = f.body, r->body_len = 4321;
    char url[128], path[1024], err[512] = "";
    snprintf(url, sizeof url, "http://127.0.0.1:%d/files/voice.wav?v=2", f.srv.port);
    f.opt.token = "hf_secret"; /* same host as the endpoint: sent */
    int rc = hf_fetch(url, &f.opt, path, sizeof path, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "expected 0, got %d (%s)", rc, err);
    UT_EQ_STR(t, "voice.wav", strrchr(path, '/') + 1);
    UT_CHECK(t, strstr(path, "/url/") != NULL);
    UT_CHECK(t, file_equals(path, f.body, 4321));
    f.opt.endpoint = "https://huggingface.co"; /* another host: the token stays home */
    UT_EQ_INT(t, 0, unlink(path));
    rc = hf_fetch(url, &f.opt, path, sizeof path, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "expected 0, got %d (%s)", rc, err);
    UT_EQ_STR(t, "Bearer hf_secret", f.srv.log[0].auth);
    UT_EQ_STR(t, "", f.srv.log[1].auth);
    fx_close(&f);
}

static void t_server_error_keeps_partial(ut_ctx *t)
{
    /* 5xx is transient: a partial stays for the next try; HF_ENDPOINT from the environment */
    fx f;
    fx_open(t, &f);
    route *r = srv_route(&f.srv, RPATH, 503);
    r->body = (const unsigned char *)"busy", r->body_len = 4;
    char path[1024], fin[1024], tmp[1100], err[512] = "";
    f.opt.endpoint = NULL, f.opt.no_env = 0;
    setenv("HF_ENDPOINT", f.endpoint, 1);
    setenv("HF_TOKEN_PATH", "/nonexistent/hf-token", 1);
    UT_EQ_INT(t, 0, hf_cache_path(URI, &f.opt, fin, sizeof fin, err, sizeof err));
    temp_path(tmp, sizeof tmp, fin);
    write_file(tmp, f.body, 1000);
    int rc = hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err);
    unsetenv("HF_ENDPOINT");
    unsetenv("HF_TOKEN_PATH");
    UT_EQ_INT(t, ERR_IO, rc);
    UT_CHECK(t, strstr(err, "503") && strstr(err, "busy"));
    UT_EQ_INT(t, 1, srv_nlog(&f.srv));
    UT_EQ_STR(t, "bytes=1000-", f.srv.log[0].range);
    UT_EQ_INT(t, 1000, file_size(tmp));
    UT_EQ_INT(t, -1, file_size(fin));
    fx_close(&f);
}

static void sha256_round(ut_ctx *t, int generic)
{
    /* FIPS 180-4 test vectors served as LFS files whose hash the hub names in X-Linked-Etag */
    static const struct { const char *name, *sha; size_t reps; const char *unit; } v[] = {
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", 1, "abc"},
        {"empty", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", 0, "x"},
        {"two-blocks", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1", 1,
         "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"},
        {"million-a", "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", 1000000, "a"},
        /* padding edges (55, 64, 119 bytes), values from Python's hashlib */
        {"a55", "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318", 55, "a"},
        {"a64", "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb", 64, "a"},
        {"a119", "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb", 119, "a"},
    };
    enum { NV = sizeof v / sizeof v[0] };
    fx f;
    fx_open(t, &f);
    f.opt.hash_generic = generic;
    unsigned char *bodies[NV];
    char path[1024], err[512] = "";
    for (int i = 0; i < NV; i++) {
        size_t ul = strlen(v[i].unit), n = ul * v[i].reps;
        bodies[i] = malloc(n + 1);
        for (size_t k = 0; k < v[i].reps; k++) memcpy(bodies[i] + k * ul, v[i].unit, ul);
        char p1[128], p2[128], uri[128];
        snprintf(p1, sizeof p1, "/o/r/resolve/main/%s", v[i].name);
        snprintf(p2, sizeof p2, "/cdn/%s", v[i].name);
        snprintf(uri, sizeof uri, "hf://o/r/%s", v[i].name);
        route *r = srv_route(&f.srv, p1, 302);
        snprintf(r->headers, sizeof r->headers,
                 "Location: http://localhost:%d%s\r\nX-Linked-Etag: \"%s\"\r\n", f.srv.port, p2,
                 v[i].sha);
        r = srv_route(&f.srv, p2, 200);
        r->body = bodies[i], r->body_len = n;
        /* the CDN's own headers are not believed */
        snprintf(r->headers, sizeof r->headers, "X-Linked-Etag: \"%064d\"\r\n", 0);
        int rc = hf_fetch(uri, &f.opt, path, sizeof path, err, sizeof err);
        if (rc) ut_fail(t, __FILE__, __LINE__, "%s: expected 0, got %d (%s)", v[i].name, rc, err);
        UT_CHECK(t, file_equals(path, bodies[i], n));
    }
    /* a body that does not match the hub's hash is discarded */
    route *r = srv_route(&f.srv, RPATH, 200);
    r->body = f.body, r->body_len = BODY_LEN;
    snprintf(r->headers, sizeof r->headers, "X-Linked-Etag: \"%s\"\r\n", v[0].sha);
    int rc = hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err);
    UT_EQ_INT(t, ERR_FORMAT, rc);
    UT_CHECK(t, strstr(err, "checksum mismatch") != NULL);
    char fin[1024];
    UT_EQ_INT(t, 0, hf_cache_path(URI, &f.opt, fin, sizeof fin, err, sizeof err));
    UT_EQ_INT(t, -1, file_size(fin));
    UT_EQ_INT(t, 0, sidecars(f.cache));
    for (int i = 0; i < NV; i++) free(bodies[i]);
    fx_close(&f);
}

/* Same vectors through the plain C reference and through the SHA-NI kernel (when the CPU
 * has it; otherwise both rounds run the reference). */
static void t_sha256_checked(ut_ctx *t)
{
    sha256_round(t, 1);
    sha256_round(t, 0);
}

static void t_resume_checksum(ut_ctx *t)
{
    /* the hash covers the bytes kept from the first try too; a corrupted partial is caught */
    static const char sha[] = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
    fx f;
    fx_open(t, &f);
    f.opt.hash_generic = 1; /* the SHA-NI path runs in sha256_checked */
    unsigned char *ma = malloc(1000000);
    memset(ma, 'a', 1000000);
    route *r = srv_route(&f.srv, RPATH, 200);
    r->body = ma, r->body_len = 1000000, r->honor_range = 1;
    r->truncate_first = 2, r->truncate_at = 300001;
    snprintf(r->headers, sizeof r->headers, "X-Linked-Etag: \"%s\"\r\n", sha);
    char path[1024], fin[1024], tmp[1100], err[512] = "";
    UT_EQ_INT(t, 0, hf_cache_path(URI, &f.opt, fin, sizeof fin, err, sizeof err));
    temp_path(tmp, sizeof tmp, fin);

    UT_EQ_INT(t, ERR_IO, hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err));
    UT_EQ_INT(t, 300001, file_size(tmp));
    UT_EQ_INT(t, ERR_IO, hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err));
    UT_EQ_INT(t, 600002, file_size(tmp)); /* two partial runs */
    int rc = hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "resume: expected 0, got %d (%s)", rc, err);
    UT_EQ_STR(t, "bytes=300001-", f.srv.log[1].range);
    UT_EQ_STR(t, "bytes=600002-", f.srv.log[2].range);
    UT_CHECK(t, file_equals(path, ma, 1000000));

    /* now a partial with one wrong byte: the finished file must be refused */
    UT_EQ_INT(t, 0, unlink(path));
    ma[10] = 'b';
    write_file(tmp, ma, 500000);
    ma[10] = 'a';
    rc = hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err);
    UT_EQ_INT(t, ERR_FORMAT, rc);
    UT_EQ_INT(t, -1, file_size(fin));
    UT_EQ_INT(t, 0, sidecars(f.cache));
    rc = hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err); /* clean retry works */
    if (rc) ut_fail(t, __FILE__, __LINE__, "retry: expected 0, got %d (%s)", rc, err);
    UT_EQ_STR(t, "", f.srv.log[4].range);
    free(ma);
    fx_close(&f);
}

static void t_hub_cache_reused(ut_ctx *t)
{
    fx f;
    fx_open(t, &f);
    char hub[128], snap[512], ref[512], path[1024], err[512] = "";
    snprintf(hub, sizeof hub, "%s/hub", f.cache);
    snprintf(snap, sizeof snap,
             "%s/models--o--r/snapshots/0123456789abcdef0123456789abcdef01234567/dir/model.safetensors",
             hub);
    snprintf(ref, sizeof ref, "%s/models--o--r/refs/main", hub);
    write_file(snap, f.body, 1234);
    write_file(ref, "0123456789abcdef0123456789abcdef01234567", 40);
    f.opt.hub_cache = hub;
    f.opt.offline = 1; /* found without any network */
    int rc = hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "pinned: expected 0, got %d (%s)", rc, err);
    UT_EQ_STR(t, snap, path);
    rc = hf_fetch("hf://o/r/dir/model.safetensors", &f.opt, path, sizeof path, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "via refs/main: expected 0, got %d (%s)", rc, err);
    UT_EQ_STR(t, snap, path);
    UT_EQ_INT(t, ERR_NOTFOUND, hf_fetch("hf://o/r/dir/model.safetensors@v2", &f.opt, path,
                                        sizeof path, err, sizeof err)); /* no refs/v2 */
    f.opt.hub_cache = "";
    UT_EQ_INT(t, ERR_NOTFOUND, hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err));
    /* through the environment */
    f.opt.hub_cache = NULL, f.opt.no_env = 0;
    setenv("HF_HUB_CACHE", hub, 1);
    rc = hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err);
    unsetenv("HF_HUB_CACHE");
    if (rc) ut_fail(t, __FILE__, __LINE__, "HF_HUB_CACHE: expected 0, got %d (%s)", rc, err);
    UT_EQ_STR(t, snap, path);
    UT_EQ_INT(t, 0, srv_nlog(&f.srv));
    fx_close(&f);
}

static void t_if_range(ut_ctx *t)
{
    fx f;
    fx_open(t, &f);
    unsigned char *b2 = make_body(BODY_LEN, 2);
    route *r = srv_route(&f.srv, RPATH, 200);
    r->body = f.body, r->body_len = BODY_LEN, r->honor_range = 1, r->etag = "\"v1\"";
    r->truncate_first = 2, r->truncate_at = 50000;
    char path[1024], err[512] = "";
    /* same version: If-Range matches, the resume is a 206 */
    UT_EQ_INT(t, ERR_IO, hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err));
    UT_EQ_INT(t, 2, sidecars(f.cache)); /* .hf-incomplete and .hf-etag */
    UT_EQ_INT(t, ERR_IO, hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err));
    UT_EQ_STR(t, "bytes=50000-", f.srv.log[1].range);
    UT_EQ_STR(t, "\"v1\"", f.srv.log[1].if_range);
    /* the file changes on the server: If-Range fails, the server sends it whole */
    pthread_mutex_lock(&f.srv.mu);
    r->body = b2, r->etag = "\"v2\"";
    pthread_mutex_unlock(&f.srv.mu);
    int rc = hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "changed: expected 0, got %d (%s)", rc, err);
    UT_EQ_STR(t, "bytes=100000-", f.srv.log[2].range);
    UT_EQ_STR(t, "\"v1\"", f.srv.log[2].if_range);
    UT_CHECK(t, file_equals(path, b2, BODY_LEN)); /* v2 whole, not v1's head + v2's tail */
    UT_EQ_INT(t, 0, sidecars(f.cache));
    free(b2);
    fx_close(&f);
}

/* Reads what is waiting on fd (up to n-1 bytes, 200 ms at most) as a string. */
static size_t drain(int fd, char *out, size_t n)
{
    size_t k = 0;
    struct pollfd p = {fd, POLLIN, 0};
    while (k + 1 < n && poll(&p, 1, 200) > 0) {
        ssize_t r = read(fd, out + k, n - 1 - k);
        if (r <= 0) break;
        k += (size_t)r;
    }
    out[k] = 0;
    return k;
}

static void t_progress_tty(ut_ctx *t)
{
    char got[1024];
    int saved = dup(2), pp[2];
    UT_CHECK(t, saved >= 0 && pipe(pp) == 0);
    /* not a terminal: nothing is drawn */
    hf_tty tt = {0};
    dup2(pp[1], 2);
    int rc = hf_progress_tty(&tt, "hf://o/r/x.bin", 5, 10);
    dup2(saved, 2);
    close(pp[1]);
    UT_EQ_INT(t, 0, rc);
    UT_EQ_INT(t, 0, drain(pp[0], got, sizeof got));
    close(pp[0]);

    /* a pseudo-terminal: first call drawn, the next within 100 ms skipped, the end drawn
     * once with a newline */
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    UT_CHECK(t, m >= 0 && grantpt(m) == 0 && unlockpt(m) == 0);
    int sl = open(ptsname(m), O_RDWR | O_NOCTTY);
    UT_CHECK(t, sl >= 0);
    dup2(sl, 2);
    hf_progress_tty(&tt, "hf://o/r/x.bin", 0, 4000000);
    tt.last_s = 1e300; /* "just drawn", however slow this machine is right now */
    hf_progress_tty(&tt, "hf://o/r/x.bin", 1000000, 4000000);
    hf_progress_tty(&tt, "hf://o/r/x.bin", 4000000, 4000000);
    int drawn_after = tt.drawn;
    hf_progress_tty(&tt, "hf://o/r/x.bin", 4000000, 4000000);
    dup2(saved, 2);
    close(saved);
    close(sl);
    drain(m, got, sizeof got);
    close(m);
    UT_EQ_INT(t, 0, drawn_after);
    UT_CHECK(t, strstr(got, "hf://o/r/x.bin  0.0/4.0 MB    0%") != NULL);
    UT_CHECK(t, strstr(got, "1.0/4.0") == NULL); /* throttled */
    UT_CHECK(t, strstr(got, "4.0/4.0 MB  100%") != NULL);
    int lines = 0;
    for (char *c = got; *c; c++) lines += *c == '\n';
    if (lines != 1) ut_fail(t, __FILE__, __LINE__, "expected 1 newline, got %d in \"%s\"", lines, got);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void t_retries(ut_ctx *t)
{
    fx f;
    fx_open(t, &f);
    f.opt.retries = 4, f.opt.retry_pause_ms = 10;
    route *r = srv_route(&f.srv, RPATH, 200);
    r->body = f.body, r->body_len = BODY_LEN, r->honor_range = 1;
    r->fail_first = 1, r->truncate_first = 3, r->truncate_at = 40000;
    char path[1024], err[512] = "";
    int rc = hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "expected 0, got %d (%s)", rc, err);
    /* 503, then 40000 bytes twice (hits 2 and 3), then the rest */
    UT_EQ_INT(t, 4, srv_nlog(&f.srv));
    UT_EQ_STR(t, "", f.srv.log[1].range);
    UT_EQ_STR(t, "bytes=40000-", f.srv.log[2].range);
    UT_EQ_STR(t, "bytes=80000-", f.srv.log[3].range);
    UT_CHECK(t, file_equals(path, f.body, BODY_LEN));
    UT_EQ_INT(t, 0, sidecars(f.cache));

    /* retries run out: the error comes back and the partial stays */
    r = srv_route(&f.srv, "/o/r/resolve/main/flaky", 200);
    r->body = f.body, r->body_len = BODY_LEN, r->honor_range = 1;
    r->truncate_first = 10, r->truncate_at = 1000;
    f.opt.retries = 2;
    UT_EQ_INT(t, ERR_IO, hf_fetch("hf://o/r/flaky", &f.opt, path, sizeof path, err, sizeof err));
    UT_EQ_INT(t, 4 + 3, srv_nlog(&f.srv));
    UT_EQ_INT(t, 1, sidecars(f.cache));

    /* nobody listening: no retry, no waiting */
    srv_stop(&f.srv);
    f.opt.retry_pause_ms = 3000;
    double t0 = now_s();
    rc = hf_fetch("hf://o/r/other", &f.opt, path, sizeof path, err, sizeof err);
    double dt = now_s() - t0;
    UT_EQ_INT(t, ERR_IO, rc);
    if (dt > 2.0) ut_fail(t, __FILE__, __LINE__, "connection refused took %.2f s (retried?)", dt);
    fx_close(&f);
}

typedef struct later {
    atomic_int *flag;
    int ms;
} later;

static void *set_later(void *arg)
{
    later *l = arg;
    struct timespec ts = {l->ms / 1000, (l->ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    atomic_store(l->flag, 1);
    return NULL;
}

static void t_lock_wait_cancel(ut_ctx *t)
{
    /* another process holds the lock: we wait, and a cancel ends the wait */
    fx f;
    fx_open(t, &f);
    route *r = srv_route(&f.srv, RPATH, 200);
    r->body = f.body, r->body_len = BODY_LEN;
    char fin[1024], lockp[1100], path[1024], err[512] = "";
    UT_EQ_INT(t, 0, hf_cache_path(URI, &f.opt, fin, sizeof fin, err, sizeof err));
    const char *sl = strrchr(fin, '/');
    snprintf(lockp, sizeof lockp, "%.*s/.%s.hf-lock", (int)(sl - fin), fin, sl + 1);
    write_file(lockp, "", 0);
    int lfd = open(lockp, O_RDWR);
    UT_CHECK(t, lfd >= 0 && flock(lfd, LOCK_EX) == 0);
    atomic_int cancel = 0;
    f.opt.cancel = &cancel;
    later l = {&cancel, 200};
    pthread_t th;
    pthread_create(&th, NULL, set_later, &l);
    int rc = hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err);
    pthread_join(th, NULL);
    UT_EQ_INT(t, ERR_CANCEL, rc);
    UT_CHECK(t, strstr(err, "waiting") != NULL);
    UT_EQ_INT(t, 0, srv_nlog(&f.srv));
    /* the holder goes away without cleaning up: its lock file is simply reused */
    close(lfd);
    atomic_store(&cancel, 0);
    rc = hf_fetch(URI, &f.opt, path, sizeof path, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "after unlock: expected 0, got %d (%s)", rc, err);
    UT_CHECK(t, file_equals(path, f.body, BODY_LEN));
    UT_EQ_INT(t, 0, sidecars(f.cache));
    fx_close(&f);
}

static const ut_case cases[] = {
    {"parse_ok", t_parse_ok},
    {"parse_refused", t_parse_refused},
    {"cache_layout", t_cache_layout},
    {"fresh_and_cache_hit", t_fresh_and_cache_hit},
    {"truncated_then_resume", t_truncated_then_resume},
    {"range_ignored_restarts", t_range_ignored_restarts},
    {"complete_partial_416", t_complete_partial_416},
    {"bogus_206_restarts", t_bogus_206_restarts},
    {"gated_401", t_gated_401},
    {"token_from_env", t_token_from_env},
    {"not_found_404", t_not_found_404},
    {"offline", t_offline},
    {"redirects", t_redirects},
    {"limits_and_cancel", t_limits_and_cancel},
    {"concurrent_same_file", t_concurrent_same_file},
    {"concurrent_processes", t_concurrent_processes},
    {"plain_url", t_plain_url},
    {"server_error_keeps_partial", t_server_error_keeps_partial},
    {"sha256_checked", t_sha256_checked},
    {"resume_checksum", t_resume_checksum},
    {"hub_cache_reused", t_hub_cache_reused},
    {"if_range", t_if_range},
    {"progress_tty", t_progress_tty},
    {"retries", t_retries},
    {"lock_wait_cancel", t_lock_wait_cancel},
};
UT_SUITE(hf, cases)
