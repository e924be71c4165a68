/* server.c — see server.h.
 *
 * Per connection we keep a conn_ctx (MHD's con_cls): request id, route, body buffer
 * (capped at max_body_bytes), timing and what the log line needs. A speech request
 * adds a job, shared by three owners through a reference count: the connection, the
 * worker, and (when streaming) the MHD response. The job's mutex guards its byte ring,
 * its state and `conn`/`suspended`, which is what makes suspend/resume race-free:
 *   - the HTTP side suspends only while holding job->mu and only if nothing is ready;
 *   - the worker resumes only while holding job->mu and only if `suspended` is set;
 *   - the completion callback clears job->conn under job->mu, so the worker never
 *     touches a finished connection.
 * The access handler is re-entered by MHD after a resume (no response queued yet);
 * it then answers with an error (job failed before any byte), a chunked stream
 * (stream: true) or the whole buffer with Content-Length (stream: false).
 */
#include "server/server.h"
#include "api/catalog.h"
#include "api/pipeline.h"
#include "api/request.h"
#include "core/buf.h"
#include "core/err.h"
#include "server/auth.h"
#include "server/metrics.h"
#include "server/pool.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RING_BYTES (256u << 10)        /* per streaming request */
#define WHOLE_MAX_BYTES (256u << 20)   /* cap for a non-streamed response body */
#define WHOLE_BUDGET ((size_t)768 << 20) /* all non-streamed bodies held at once (allocated,
                                            being built or waiting for slow readers); over
                                            it: 503. Buffering encoders (wav/mp3/flac when
                                            not streaming) hold their own copy on top, up
                                            to their cap, per running worker. */
#define BODY_DISCARD_MAX (4u << 20)    /* bytes past max_body_bytes read before answering 413 */
#define STALL_NEVER_READ_MS 2000.0     /* same, for a client that never read a byte */
#define IDLE_TIMEOUT_S 30              /* MHD idle timeout outside speech responses */
#define RESPONSE_TIMEOUT_S 3600       /* idle timeout once a speech response is queued */
#define KEYS_WATCH_MS 2000          /* how often a keyed request looks at the keys file */
#define HUP_CHECK_MS 50.0              /* how often the worker polls the client socket */
#define STALL_MS 8000.0                /* ring full and no byte left the socket for this long:
                                          give up, so a client that stops reading cannot hold
                                          a worker */

typedef struct job job;

struct srv_server {
    const cfg *c;
    _Atomic(reg_registry *) reg; /* NULL while engines load ("starting": 503) */
    lg_logger *lg;
    srv_pool *pool;
    struct MHD_Daemon *d;
    int port;
    atomic_int stopping;
    atomic_int nsusp;   /* connections suspended and not yet re-entered */
    atomic_int njobs;   /* jobs accepted and not yet finished by a worker */
    atomic_size_t whole_bytes; /* bytes of non-streamed bodies alive now, <= WHOLE_BUDGET */
    atomic_ullong next_id;
    unsigned long long id_salt;
    double t_start;
    double t_start_unix;
    met_set *met;       /* counters for GET /metrics */
    pthread_rwlock_t keys_mu; /* guards the `keys` pointer (the set itself is immutable) */
    auth_keys *keys;    /* API keys; empty = open server */
    pthread_mutex_t reload_mu; /* one keys reload at a time; guards keys_sig */
    char keys_sig[96];  /* the keys file's inode/size/mtime at the last load */
    atomic_llong keys_checked_ms; /* last look at the keys file (KEYS_WATCH_MS apart) */
    pthread_mutex_t mu; /* guards the live-job list */
    job *live;          /* jobs whose worker has not finished, for cancel on shutdown */
};

struct job {
    atomic_int refs;
    atomic_int cancel;
    srv_server *s;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct MHD_Connection *conn; /* NULL once the connection is finished */
    int fd;                      /* client socket, valid while conn != NULL */
    int suspended;               /* we suspended conn and nobody resumed it yet */
    int reentry_pending;         /* counted in s->nsusp */
    oai_speech sp;
    /* output */
    char *ring;
    size_t rhead, rlen;
    buf whole;                   /* non-streaming body */
    int ready;                   /* headers can go: first byte (stream) or done */
    int too_big;                 /* non-streamed output hit WHOLE_MAX_BYTES: 413, not retryable */
    int over_budget;             /* WHOLE_BUDGET exhausted: 503, retryable */
    size_t whole_accounted;      /* our share of s->whole_bytes */
    int last_outq;               /* bytes in the socket's send queue at the last look */
    int client_read;             /* the send queue was seen draining: the client reads */
    int done, rc;
    char err[256];
    oai_stats st;
    double t0, t_first_byte, last_hup_check, last_read;
    uint64_t sent;
    job *next, *prev;            /* s->live, under s->mu */
    /* for the log line, written by the completion callback; logged by the last owner */
    int completed, status, aborted;
    int model;                   /* registry index of sp.eng, for metrics */
    double t_end;
    char id[72], method[8];
};

typedef struct conn_ctx {
    srv_server *s;
    char id[72];
    const char *route;  /* static name for the log */
    int route_id;       /* R_* (== MET_ROUTE_*) */
    char method[8];
    double t0;
    buf body;
    int body_too_big;
    size_t discarded;   /* body bytes dropped past the cap */
    int long_timeout;   /* RESPONSE_TIMEOUT_S set on the connection */
    int form_ct;        /* curl's default form content type: accepted if the body is JSON */
    int status;         /* status of the response we queued */
    job *j;
    char note[160];     /* extra log detail (error code, ...) */
} conn_ctx;

static void keys_watch(srv_server *s);
static void keys_file_sig(const cfg *c, char *sig, size_t n);

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- jobs -------------------------------------------------------------------------- */

static void job_log(job *j)
{
    double audio_s = (double)j->st.samples / ENG_SAMPLE_RATE;
    double ttfb = j->sent ? j->t_first_byte - j->t0 : -1;
    int failed = j->done && j->rc != 0;
    lg_log(j->s->lg, LG_INFO,
           "req id=%s %s /v1/audio/speech status=%d model=%s voice=%s format=%s%s chars=%zu "
           "audio_s=%.2f ttfb_ms=%.0f rtf=%.3f bytes=%llu ms=%.0f%s%s%.100s%s",
           j->id, j->method, j->status, j->sp.eng ? j->sp.eng->id : "-",
           j->sp.voice[0] ? j->sp.voice : "-", aenc_format_name(j->sp.format),
           j->sp.sse ? "/sse" : j->sp.stream ? "/stream" : "", j->sp.input_chars, audio_s, ttfb,
           audio_s > 0 ? j->st.synth_ms / (audio_s * 1000.0) : 0.0, (unsigned long long)j->sent,
           j->t_end - j->t0, j->aborted ? " aborted=1" : "", failed ? " error=\"" : "",
           failed ? j->err : "", failed ? "\"" : "");
}

/* The last owner (connection, worker or response) logs the request and frees the job,
 * so the log line has the audio actually produced even when the client hung up early. */
static void job_unref(job *j)
{
    if (atomic_fetch_sub(&j->refs, 1) != 1) return;
    if (j->completed) job_log(j);
    if (j->whole_accounted) atomic_fetch_sub(&j->s->whole_bytes, j->whole_accounted);
    oai_speech_free(&j->sp);
    free(j->ring);
    buf_free(&j->whole);
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

/* Under j->mu: something changed that the HTTP side may want (bytes, done). */
static void job_wake_locked(job *j)
{
    if (j->suspended && j->conn) {
        j->suspended = 0;
        MHD_resume_connection(j->conn);
    }
    pthread_cond_broadcast(&j->cv);
}

/* Under j->mu: suspend the connection until the worker wakes it. */
static void job_suspend_locked(job *j, struct MHD_Connection *c)
{
    j->suspended = 1;
    if (!j->reentry_pending) {
        j->reentry_pending = 1;
        atomic_fetch_add(&j->s->nsusp, 1);
    }
    MHD_suspend_connection(c);
}

/* Under j->mu: the HTTP side runs again for this job. */
static void job_reentered_locked(job *j)
{
    if (j->reentry_pending) {
        j->reentry_pending = 0;
        atomic_fetch_sub(&j->s->nsusp, 1);
    }
}

/* Under j->mu: has the client hung up? (checked from the worker, rate-limited). MHD does
 * not watch suspended connections, so we poll the socket ourselves. Trade-off: a client
 * that half-closes its sending side after the request (shutdown(SHUT_WR); rare, none of
 * the SDKs or browsers do it) reads as gone too. */
static int client_gone_locked(job *j)
{
    if (!j->conn) return 1;
    double t = now_ms();
    if (t - j->last_hup_check < HUP_CHECK_MS || j->fd < 0) return 0;
    j->last_hup_check = t;
    struct pollfd p = {.fd = j->fd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) return 1;
    return 0;
}

/* pipeline output -> ring (stream) or whole buffer */
static int job_out(void *user, const void *bytes, size_t n)
{
    job *j = user;
    const char *p = bytes;
    pthread_mutex_lock(&j->mu);
    if (client_gone_locked(j)) atomic_store(&j->cancel, 1);
    if (!j->sp.stream) {
        int rc = atomic_load(&j->cancel) ? 1 : buf_append(&j->whole, p, n);
        if (!rc && j->whole.cap > j->whole_accounted) {
            /* count what is allocated (the buffer grows by doubling), not just what is used */
            size_t grow = j->whole.cap - j->whole_accounted;
            size_t was = atomic_fetch_add(&j->s->whole_bytes, grow);
            j->whole_accounted += grow; /* given back when the job is freed */
            if (was + grow > WHOLE_BUDGET) {
                j->over_budget = 1;
                snprintf(j->err, sizeof j->err, "too much buffered audio in flight; retry, or "
                         "use \"stream\": true");
                pthread_mutex_unlock(&j->mu);
                return 1;
            }
        }
        if (rc && !atomic_load(&j->cancel)) {
            j->too_big = 1;
            snprintf(j->err, sizeof j->err, "audio too large for a non-streamed response (max %u "
                     "MiB); use \"stream\": true", WHOLE_MAX_BYTES >> 20);
        }
        pthread_mutex_unlock(&j->mu);
        return rc ? 1 : 0;
    }
    while (n > 0) {
        double wait_start = now_ms();
        while (j->rlen == RING_BYTES && !atomic_load(&j->cancel)) {
            /* a reader at real-time speed drains the kernel's send queue steadily while MHD
             * only refills it in big steps: bytes leaving the socket count as progress */
            int q;
            if (j->conn && j->fd >= 0 && ioctl(j->fd, SIOCOUTQ, &q) == 0) {
                if (q < j->last_outq) {
                    j->last_read = now_ms();
                    j->client_read = 1;
                }
                j->last_outq = q;
            }
            /* a client never seen reading gets a short leash, so a few sockets that never
             * read cannot keep every worker busy */
            double limit = j->client_read ? STALL_MS : STALL_NEVER_READ_MS;
            double last = j->last_read > wait_start ? j->last_read : wait_start;
            if (now_ms() - last > limit) {
                snprintf(j->err, sizeof j->err, "client stopped reading for %.0f s", limit / 1000);
                atomic_store(&j->cancel, 1);
                break;
            }
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&j->cv, &j->mu, &ts);
            j->last_hup_check = 0;
            if (client_gone_locked(j)) atomic_store(&j->cancel, 1);
        }
        if (atomic_load(&j->cancel)) {
            pthread_mutex_unlock(&j->mu);
            return 1;
        }
        size_t tail = (j->rhead + j->rlen) % RING_BYTES;
        size_t room = RING_BYTES - j->rlen;
        size_t k = n < room ? n : room;
        if (k > RING_BYTES - tail) k = RING_BYTES - tail;
        memcpy(j->ring + tail, p, k);
        j->rlen += k;
        p += k;
        n -= k;
        j->ready = 1;
        job_wake_locked(j);
    }
    pthread_mutex_unlock(&j->mu);
    return 0;
}

/* per engine chunk: notice a client that hung up even while the encoder holds bytes back */
static int job_tick(void *user)
{
    job *j = user;
    pthread_mutex_lock(&j->mu);
    if (client_gone_locked(j)) atomic_store(&j->cancel, 1);
    int stop = atomic_load(&j->cancel);
    pthread_mutex_unlock(&j->mu);
    return stop;
}

static void job_run(void *arg)
{
    job *j = arg;
    srv_server *s = j->s;
    char err[256] = "";
    oai_stats st;
    memset(&st, 0, sizeof st);
    int rc = ERR_CANCEL;
    if (!atomic_load(&j->cancel))
        rc = oai_run(&j->sp, &j->cancel, job_out, job_tick, j, &st, err, sizeof err);
    else
        snprintf(err, sizeof err, "cancelled before start");
    met_synth(s->met, j->model, st.samples, j->sp.input_chars);
    /* the slot is free before the client can see the end: its next request must not
     * meet a 429 from this finishing worker (--queue 0) */
    srv_pool_release(s->pool);
    pthread_mutex_lock(&j->mu);
    j->st = st;
    j->rc = rc;
    if (rc && !j->err[0]) snprintf(j->err, sizeof j->err, "%s", err);
    j->done = 1;
    j->ready = 1;
    job_wake_locked(j);
    pthread_mutex_unlock(&j->mu);

    pthread_mutex_lock(&s->mu);
    if (j->prev) j->prev->next = j->next;
    else s->live = j->next;
    if (j->next) j->next->prev = j->prev;
    j->next = j->prev = NULL;
    pthread_mutex_unlock(&s->mu);
    atomic_fetch_sub(&s->njobs, 1);
    job_unref(j);
}

/* MHD content reader for streamed responses. */
static ssize_t job_read(void *cls, uint64_t pos, char *out, size_t max)
{
    job *j = cls;
    pthread_mutex_lock(&j->mu);
    job_reentered_locked(j);
    if (j->rlen > 0) {
        size_t k = j->rlen < max ? j->rlen : max;
        size_t first = RING_BYTES - j->rhead;
        if (first > k) first = k;
        memcpy(out, j->ring + j->rhead, first);
        if (k > first) memcpy(out + first, j->ring, k - first);
        j->rhead = (j->rhead + k) % RING_BYTES;
        j->rlen -= k;
        j->last_read = now_ms();
        if (!j->sent) j->t_first_byte = j->last_read;
        j->sent += k;
        pthread_cond_broadcast(&j->cv); /* room for the worker */
        pthread_mutex_unlock(&j->mu);
        return (ssize_t)k;
    }
    if (j->done) {
        int rc = j->rc;
        pthread_mutex_unlock(&j->mu);
        return rc == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
    }
    if (atomic_load(&j->cancel) || !j->conn) {
        pthread_mutex_unlock(&j->mu);
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    job_suspend_locked(j, j->conn);
    pthread_mutex_unlock(&j->mu);
    return 0;
}

static void job_read_free(void *cls) { job_unref(cls); }

/* ---- responses ---------------------------------------------------------------------- */

static void add_common_headers(conn_ctx *x, struct MHD_Response *r)
{
    MHD_add_response_header(r, "X-Request-Id", x->id);
    MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
    MHD_add_response_header(r, "Server", "pockettts/" PT_VERSION);
}

static enum MHD_Result send_buf(conn_ctx *x, struct MHD_Connection *c, int status,
                                const char *ctype, char *data, size_t n, int must_free)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        n, data, must_free ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        if (must_free) free(data);
        return MHD_NO;
    }
    if (ctype) MHD_add_response_header(r, "Content-Type", ctype);
    add_common_headers(x, r);
    if (status == 429 || status == 503) MHD_add_response_header(r, "Retry-After", "1");
    if (status == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    if (status == 405) {
        MHD_add_response_header(r, "Allow",
                                x->route && !strcmp(x->route, "speech") ? "POST, OPTIONS"
                                                                         : "GET, HEAD, OPTIONS");
    }
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    if (ret == MHD_YES) x->status = status;
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(conn_ctx *x, struct MHD_Connection *c, int status, char *json)
{
    if (!json) {
        static char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
                            "\"param\":null,\"code\":null}}";
        return send_buf(x, c, 500, "application/json", oom, sizeof oom - 1, 0);
    }
    return send_buf(x, c, status, "application/json", json, strlen(json), 1);
}

static enum MHD_Result send_error(conn_ctx *x, struct MHD_Connection *c, const oai_error *e)
{
    snprintf(x->note, sizeof x->note, "error=%s", e->code ? e->code : e->type);
    return send_json(x, c, e->status, oai_error_json(e));
}

static enum MHD_Result send_err(conn_ctx *x, struct MHD_Connection *c, int status,
                                const char *type, const char *code, const char *param,
                                const char *msg)
{
    oai_error e;
    oai_error_set(&e, status, type, code, param, "%s", msg);
    return send_error(x, c, &e);
}

/* ---- routes ------------------------------------------------------------------------- */

/* A minimal page: try a voice in the browser. Plain HTML + a few lines of JS; no assets. */
static const char index_html[] =
    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
    "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
    "<title>pockettts</title><style>body{font:16px system-ui,sans-serif;max-width:42em;"
    "margin:2em auto;padding:0 1em}textarea{width:100%;height:6em}select,button{margin:.3em "
    ".3em .3em 0}</style></head><body>\n"
    "<h1>pockettts " PT_VERSION "</h1>\n"
    "<p>A local text-to-speech server speaking OpenAI's API: POST <code>/v1/audio/speech</code>, "
    "GET <a href=\"/v1/voices\">/v1/voices</a>, <a href=\"/v1/models\">/v1/models</a>, "
    "<a href=\"/health\">/health</a>.</p>\n"
    "<textarea id=\"t\">Hello! This is pockettts speaking.</textarea><br>\n"
    "<select id=\"m\"></select><select id=\"v\"></select><select id=\"f\">"
    "<option>mp3</option><option>wav</option><option>opus</option><option>aac</option>"
    "<option>flac</option></select><button id=\"b\">Speak</button>\n"
    "<p id=\"s\"></p><audio id=\"a\" controls></audio>\n<script>\n"
    "const $=i=>document.getElementById(i);\n"
    "async function voices(){const r=await fetch('/v1/voices?model='+encodeURIComponent($('m')."
    "value));const j=await r.json();$('v').innerHTML='';for(const x of j.data||[]){const o="
    "document.createElement('option');o.value=x.id;o.textContent=x.id+(x.name&&x.name!==x.id?"
    "' \\u2014 '+x.name:'');$('v').appendChild(o);}}\n"
    "fetch('/v1/models').then(r=>r.json()).then(j=>{for(const x of j.data||[]){if(x.id.startsWith"
    "('tts-')||x.id.startsWith('gpt-'))continue;const o=document.createElement('option');o.value="
    "o.textContent=x.id;$('m').appendChild(o);}voices();});\n"
    "$('m').onchange=voices;\n"
    "$('b').onclick=async()=>{$('s').textContent='\\u2026';const t0=performance.now();"
    "const r=await fetch('/v1/audio/speech',{method:'POST',headers:{'Content-Type':"
    "'application/json'},body:JSON.stringify({model:$('m').value,voice:$('v').value,input:"
    "$('t').value,response_format:$('f').value,stream:false})});if(!r.ok){const e=await r.json()"
    ".catch(()=>({}));$('s').textContent='Error '+r.status+': '+((e.error||{}).message||'');"
    "return;}const b=await r.blob();$('s').textContent='Done in '+Math.round(performance.now()-t0)"
    "+' ms, '+b.size+' bytes';$('a').src=URL.createObjectURL(b);$('a').play();};\n"
    "</script></body></html>\n";

/* route ids are the metrics' route labels */
enum { R_NONE = MET_ROUTE_UNKNOWN, R_INDEX = MET_ROUTE_INDEX, R_HEALTH = MET_ROUTE_HEALTH,
       R_HEALTH_LIVE = MET_ROUTE_HEALTH_LIVE, R_METRICS = MET_ROUTE_METRICS,
       R_MODELS = MET_ROUTE_MODELS, R_MODEL_ONE = MET_ROUTE_MODEL,
       R_AUDIO_MODELS = MET_ROUTE_AUDIO_MODELS, R_VOICES = MET_ROUTE_VOICES,
       R_AUDIO_VOICES = MET_ROUTE_AUDIO_VOICES, R_SPEECH = MET_ROUTE_SPEECH };

static int route_of(const char *url, const char **name, const char **model_id)
{
    char u[256];
    size_t n = strlen(url);
    if (n >= sizeof u) {
        *name = "unknown";
        return R_NONE;
    }
    memcpy(u, url, n + 1);
    while (n > 1 && u[n - 1] == '/') u[--n] = 0;
    static const struct { const char *path, *name; int r; } tab[] = {
        {"/", "index", R_INDEX},
        {"/health", "health", R_HEALTH},
        {"/health/live", "health_live", R_HEALTH_LIVE},
        {"/metrics", "metrics", R_METRICS},
        {"/v1/models", "models", R_MODELS},
        {"/v1/audio/models", "audio_models", R_AUDIO_MODELS},
        {"/v1/voices", "voices", R_VOICES},
        {"/v1/audio/voices", "audio_voices", R_AUDIO_VOICES},
        {"/v1/audio/speech", "speech", R_SPEECH},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
        if (!strcmp(u, tab[i].path)) {
            *name = tab[i].name;
            return tab[i].r;
        }
    }
    if (!strncmp(url, "/v1/models/", 11) && url[11] && !strchr(url + 11, '/')) {
        *name = "model";
        *model_id = url + 11;
        return R_MODEL_ONE;
    }
    *name = "unknown";
    return R_NONE;
}

static void health_of(srv_server *s, oai_health *h)
{
    memset(h, 0, sizeof *h);
    h->status = atomic_load(&s->stopping) ? "draining" : atomic_load(&s->reg) ? "ok" : "starting";
    h->uptime_s = (now_ms() - s->t_start) / 1000.0;
    srv_pool_stats(s->pool, &h->workers, &h->running, &h->queued, &h->queue_capacity);
}

#define METRICS_MAX_BYTES (1u << 20)

static enum MHD_Result serve_metrics(conn_ctx *x, struct MHD_Connection *c)
{
    srv_server *s = x->s;
    met_gauges g;
    memset(&g, 0, sizeof g);
    g.default_model = -1;
    srv_pool_stats(s->pool, &g.workers, &g.busy, &g.queued, &g.queue_capacity);
    g.in_flight = atomic_load(&s->njobs);
    const union MHD_DaemonInfo *di =
        MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    g.connections = di ? (int)di->num_connections : 0;
    reg_registry *reg = atomic_load(&s->reg);
    g.ready = reg != NULL;
    g.draining = atomic_load(&s->stopping);
    g.uptime_s = (now_ms() - s->t_start) / 1000.0;
    g.start_time_s = s->t_start_unix;
    if (reg) {
        engine *def = reg_default(reg);
        for (size_t i = 0; i < reg_count(reg) && g.nmodels < MET_MAX_MODELS; i++) {
            engine *e = reg_get(reg, i);
            if (e == def) g.default_model = (int)g.nmodels;
            g.model[g.nmodels++] = e->id;
        }
    }
    pthread_rwlock_rdlock(&s->keys_mu);
    g.api_keys = auth_count(s->keys);
    pthread_rwlock_unlock(&s->keys_mu);
    buf b;
    buf_init(&b, METRICS_MAX_BYTES);
    if (met_render(s->met, &g, &b)) {
        buf_free(&b);
        return send_err(x, c, 500, "server_error", NULL, NULL, "cannot render metrics");
    }
    size_t n = b.len;
    char *data = buf_steal(&b, &n);
    if (!data) data = strdup("");
    return send_buf(x, c, 200, "text/plain; version=0.0.4; charset=utf-8", data, n, 1);
}

static enum MHD_Result serve_get(conn_ctx *x, struct MHD_Connection *c, int route,
                                 const char *model_id)
{
    srv_server *s = x->s;
    char err[256];
    char *out = NULL;
    int rc = 0;
    const char *model = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "model");
    reg_registry *reg = atomic_load(&s->reg);
    if (!reg && route != R_INDEX && route != R_HEALTH && route != R_HEALTH_LIVE &&
        route != R_METRICS)
        return send_err(x, c, 503, "server_error", "model_loading", NULL,
                        "The server is starting (loading models); retry shortly.");
    switch (route) {
    case R_INDEX:
        return send_buf(x, c, 200, "text/html; charset=utf-8", (char *)index_html,
                        sizeof index_html - 1, 0);
    case R_HEALTH: {
        oai_health h;
        health_of(s, &h);
        rc = oai_health_json(reg, &h, &out, err, sizeof err);
        if (rc) break;
        return send_json(x, c, atomic_load(&s->stopping) || !reg ? 503 : 200, out);
    }
    case R_HEALTH_LIVE: {
        static char live[] = "{\"status\":\"alive\"}";
        return send_buf(x, c, 200, "application/json", live, sizeof live - 1, 0);
    }
    case R_METRICS:
        return serve_metrics(x, c);
    case R_MODELS:
    case R_AUDIO_MODELS:
        rc = oai_models_json(reg, route == R_AUDIO_MODELS, &out, err, sizeof err);
        break;
    case R_MODEL_ONE:
        rc = oai_model_json(reg, model_id, &out, err, sizeof err);
        if (rc == ERR_NOTFOUND) return send_err(x, c, 404, "invalid_request_error", "model_not_found", "model", err);
        break;
    case R_VOICES:
    case R_AUDIO_VOICES:
        rc = oai_voices_json(reg, model, route == R_VOICES ? OAI_VOICES_OPENAI : OAI_VOICES_WEBUI,
                             &out, err, sizeof err);
        if (rc == ERR_NOTFOUND) return send_err(x, c, 404, "invalid_request_error", "model_not_found", "model", err);
        break;
    }
    if (rc) return send_err(x, c, 500, "server_error", NULL, NULL, err);
    return send_json(x, c, 200, out);
}

/* 1 = JSON (or none), 2 = application/x-www-form-urlencoded (what `curl -d` sends without
 * -H; accepted when the body parses as a JSON object), 0 = refused (415). */
static int ctype_ok(const char *ct)
{
    if (!ct || !*ct) return 1;
    size_t n = strcspn(ct, ";");
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t')) n--;
    if (n == 33 && !strncasecmp(ct, "application/x-www-form-urlencoded", 33)) return 2;
    if (n == 16 && !strncasecmp(ct, "application/json", 16)) return 1;
    if (n > 5 && !strncasecmp(ct + n - 5, "+json", 5) && !strncasecmp(ct, "application/", 12))
        return 1;
    return 0;
}

/* Maps a failed job (nothing sent yet) to an OpenAI error. */
static enum MHD_Result send_job_error(conn_ctx *x, struct MHD_Connection *c, job *j)
{
    oai_error e;
    if (j->over_budget) {
        oai_error_set(&e, 503, "server_error", "server_busy", NULL, "%s", j->err);
        return send_error(x, c, &e);
    }
    if (j->too_big || j->rc == ERR_TOOBIG) {
        oai_error_set(&e, 413, "invalid_request_error", "output_too_large", NULL,
                      "%s%s", j->err, j->too_big ? "" : "; use \"stream\": true");
        return send_error(x, c, &e);
    }
    switch (j->rc) {
    case ERR_NOTFOUND:
        oai_error_set(&e, 400, "invalid_request_error", "voice_not_found", "voice", "%s", j->err);
        break;
    case ERR_INVAL:
    case ERR_FORMAT:
        if (!strncmp(j->err, "voice", 5) || strstr(j->err, "audio prompt"))
            oai_error_set(&e, 400, "invalid_request_error", "invalid_voice", "voice",
                          "The voice cannot be used: %s", j->err);
        else
            oai_error_set(&e, 400, "invalid_request_error", "invalid_value", "input",
                          "The engine cannot speak this input: %s", j->err);
        break;
    case ERR_CANCEL:
    case ERR_BUSY:
        oai_error_set(&e, 503, "server_error", "service_unavailable", NULL,
                      "The request was cancelled (server shutting down or client gone).");
        break;
    default:
        oai_error_set(&e, 500, "server_error", NULL, NULL, "Synthesis failed: %s", j->err);
    }
    return send_error(x, c, &e);
}

static enum MHD_Result answer_job(conn_ctx *x, struct MHD_Connection *c)
{
    job *j = x->j;
    pthread_mutex_lock(&j->mu);
    job_reentered_locked(j);
    if (!j->ready) {
        job_suspend_locked(j, c);
        pthread_mutex_unlock(&j->mu);
        return MHD_YES;
    }
    int failed_early = j->done && j->rc != 0 && (j->sp.stream ? j->rlen == 0 : 1);
    pthread_mutex_unlock(&j->mu);
    if (failed_early) return send_job_error(x, c, j);

    const char *ctype = j->sp.sse ? "text/event-stream" : aenc_content_type(j->sp.format);
    /* libmicrohttpd 0.9.75 counts only received bytes as activity, so the idle timeout
     * would cut a long response to a client that just listens: give the response phase an
     * hour. Clients that stop reading are still caught by STALL_MS (streams) and bounded
     * by WHOLE_BUDGET (buffered bodies) and the connection limits. */
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned int)RESPONSE_TIMEOUT_S);
    x->long_timeout = 1;
    if (!j->sp.stream) {
        /* the worker is done: MHD sends j->whole in place; the job (and its share of the
         * buffered-bytes budget) lives until MHD frees the response */
        j->t_first_byte = now_ms();
        j->sent = j->whole.len;
        atomic_fetch_add(&j->refs, 1);
        struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback_cls(
            j->whole.len, j->whole.len ? j->whole.data : (void *)"", job_read_free, j);
        if (!r) {
            job_unref(j);
            return MHD_NO;
        }
        MHD_add_response_header(r, "Content-Type", ctype);
        add_common_headers(x, r);
        x->status = 200;
        enum MHD_Result ret = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return ret;
    }
    atomic_fetch_add(&j->refs, 1);
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024, job_read, j, job_read_free);
    if (!r) {
        job_unref(j);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    add_common_headers(x, r);
    x->status = 200;
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result start_speech(conn_ctx *x, struct MHD_Connection *c)
{
    srv_server *s = x->s;
    if (x->body_too_big) {
        char m[160];
        snprintf(m, sizeof m, "The request body is larger than %zu bytes.", s->c->max_body_bytes);
        return send_err(x, c, 413, "invalid_request_error", "request_too_large", NULL, m);
    }
    if (atomic_load(&s->stopping))
        return send_err(x, c, 503, "server_error", "service_unavailable", NULL,
                        "The server is shutting down.");
    oai_limits lim = {.max_input_chars = s->c->max_input_chars,
                      .stream_default = s->c->stream_default};
    lim.kbps[AENC_MP3] = s->c->mp3_kbps;
    lim.kbps[AENC_OPUS] = s->c->opus_kbps;
    lim.kbps[AENC_AAC] = s->c->aac_kbps;
    oai_error e;
    job *j = calloc(1, sizeof *j);
    if (!j) return send_err(x, c, 500, "server_error", NULL, NULL, "out of memory");
    reg_registry *reg = atomic_load(&s->reg);
    if (!reg) {
        free(j);
        return send_err(x, c, 503, "server_error", "model_loading", NULL,
                        "The server is starting (loading models); retry shortly.");
    }
    if (oai_speech_parse(x->body.data, x->body.len, reg, &lim, &j->sp, &e)) {
        free(j);
        if (x->form_ct && e.code && !strcmp(e.code, "invalid_json"))
            return send_err(x, c, 415, "invalid_request_error", "unsupported_media_type", NULL,
                            "Unsupported Content-Type 'application/x-www-form-urlencoded' with a "
                            "body that is not JSON; send application/json.");
        return send_error(x, c, &e);
    }
    buf_free(&x->body);
    j->model = MET_NO_MODEL;
    for (size_t i = 0; i < reg_count(reg) && i < MET_MAX_MODELS; i++)
        if (reg_get(reg, i) == j->sp.eng) j->model = (int)i;
    atomic_init(&j->refs, 2); /* connection + worker */
    atomic_init(&j->cancel, 0);
    j->s = s;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->conn = c;
    j->fd = -1;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci) j->fd = ci->connect_fd;
    j->t0 = x->t0;
    buf_init(&j->whole, WHOLE_MAX_BYTES);
    if (j->sp.stream && !(j->ring = malloc(RING_BYTES))) {
        atomic_store(&j->refs, 1);
        job_unref(j);
        return send_err(x, c, 500, "server_error", NULL, NULL, "out of memory");
    }
    x->j = j;
    pthread_mutex_lock(&s->mu);
    j->next = s->live;
    if (s->live) s->live->prev = j;
    s->live = j;
    pthread_mutex_unlock(&s->mu);
    atomic_fetch_add(&s->njobs, 1);
    int rc = srv_pool_submit(s->pool, job_run, j);
    if (rc) {
        pthread_mutex_lock(&s->mu);
        if (j->prev) j->prev->next = j->next;
        else s->live = j->next;
        if (j->next) j->next->prev = j->prev;
        pthread_mutex_unlock(&s->mu);
        atomic_fetch_sub(&s->njobs, 1);
        atomic_fetch_sub(&j->refs, 1); /* the worker's */
        if (rc == ERR_BUSY)
            return send_err(x, c, 429, "rate_limit_error", "rate_limit_exceeded", NULL,
                            "All synthesis workers are busy and the queue is full; retry "
                            "shortly.");
        return send_err(x, c, 503, "server_error", "service_unavailable", NULL,
                        "The server is shutting down.");
    }
    return answer_job(x, c);
}

/* ---- MHD callbacks ------------------------------------------------------------------ */

static int id_ok(const char *v)
{
    size_t n = v ? strlen(v) : 0;
    if (n == 0 || n > 64) return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = v[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.' || ch == ':'))
            return 0;
    }
    return 1;
}

static int needs_key(const srv_server *s, const char *url, int route)
{
    if (!strncmp(url, "/v1/", 4) || !strcmp(url, "/v1")) return 1;
    return route == R_METRICS && s->c->metrics_auth;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    srv_server *s = cls;
    conn_ctx *x = *con_cls;
    const char *model_id = NULL;
    const char *rname;
    int route = route_of(url, &rname, &model_id);
    if (!x) {
        x = calloc(1, sizeof *x);
        if (!x) return MHD_NO;
        x->s = s;
        x->t0 = now_ms();
        x->route = rname;
        x->route_id = route;
        snprintf(x->method, sizeof x->method, "%s", method);
        const char *rid = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Id");
        if (id_ok(rid))
            snprintf(x->id, sizeof x->id, "%s", rid);
        else
            snprintf(x->id, sizeof x->id, "req_%08llx%06llx", s->id_salt & 0xffffffffull,
                     (unsigned long long)atomic_fetch_add(&s->next_id, 1) & 0xffffffull);
        buf_init(&x->body, s->c->max_body_bytes);
        *con_cls = x;
        /* API keys: every /v1 route (and /metrics with --metrics-auth); CORS preflights
         * carry no credentials and stay open */
        if (needs_key(s, url, route) && strcmp(method, "OPTIONS") != 0) {
            keys_watch(s);
            pthread_rwlock_rdlock(&s->keys_mu);
            int a = auth_check(s->keys, MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                                    "Authorization"));
            pthread_rwlock_unlock(&s->keys_mu);
            if (a != AUTH_OK) {
                met_auth_failed(s->met);
                return send_err(x, c, 401, "invalid_request_error", "invalid_api_key", NULL,
                                a == AUTH_MISSING
                                    ? "You didn't provide an API key. Send it in an "
                                      "Authorization header: 'Authorization: Bearer YOUR_KEY'."
                                    : "Incorrect API key provided. Use one of the keys this "
                                      "server was started with (--api-key, "
                                      "POCKET_TTS_API_KEYS or --api-keys-file).");
            }
        }
        /* early refusals, before reading any body */
        if (route == R_SPEECH && !strcmp(method, "POST")) {
            const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
            int ok = ctype_ok(ct);
            x->form_ct = ok == 2;
            if (!ok) {
                char m[200];
                snprintf(m, sizeof m, "Unsupported Content-Type '%.80s'; send application/json.",
                         ct);
                return send_err(x, c, 415, "invalid_request_error", "unsupported_media_type",
                                NULL, m);
            }
            const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
            if (cl && strtoull(cl, NULL, 10) > s->c->max_body_bytes) {
                char m[160];
                snprintf(m, sizeof m, "The request body is larger than %zu bytes.",
                         s->c->max_body_bytes);
                return send_err(x, c, 413, "invalid_request_error", "request_too_large", NULL, m);
            }
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (!x->body_too_big && buf_append(&x->body, upload_data, n)) x->body_too_big = 1;
        if (x->body_too_big) x->discarded += n;
        /* Past the cap we keep discarding for a while, so a client that sends a body a bit
         * too big reads a clean 413 at its end (answering mid-upload makes the kernel reset
         * the connection under the client's feet); an endless body is cut off at once. */
        if (x->body_too_big && x->discarded > BODY_DISCARD_MAX) {
            /* MHD 0.9.75 cannot answer while upload data is pending: just drop it */
            snprintf(x->note, sizeof x->note, "error=request_too_large(endless body, dropped)");
            return MHD_NO;
        }
        return MHD_YES;
    }
    if (x->j) return answer_job(x, c);

    int is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (!strcmp(method, "OPTIONS") && route != R_NONE) {
        struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (!r) return MHD_NO;
        add_common_headers(x, r);
        MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        MHD_add_response_header(r, "Access-Control-Allow-Headers",
                                "Authorization, Content-Type, X-Request-Id");
        MHD_add_response_header(r, "Access-Control-Max-Age", "600");
        x->status = 204;
        enum MHD_Result ret = MHD_queue_response(c, 204, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (route == R_NONE) {
        char m[300];
        snprintf(m, sizeof m, "Invalid URL (%s %.200s)", method, url);
        return send_err(x, c, 404, "invalid_request_error", "unknown_url", NULL, m);
    }
    if (route == R_SPEECH) {
        if (strcmp(method, "POST") != 0) {
            char m[120];
            snprintf(m, sizeof m, "Method %s is not allowed on %s; use POST.", method, url);
            return send_err(x, c, 405, "invalid_request_error", "method_not_allowed", NULL, m);
        }
        return start_speech(x, c);
    }
    if (!is_get) {
        char m[120];
        snprintf(m, sizeof m, "Method %s is not allowed on %.60s; use GET.", method, url);
        return send_err(x, c, 405, "invalid_request_error", "method_not_allowed", NULL, m);
    }
    return serve_get(x, c, route, model_id);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    srv_server *s = cls;
    conn_ctx *x = *con_cls;
    if (!x) return;
    *con_cls = NULL;
    double t_end = now_ms();
    int aborted = toe != MHD_REQUEST_TERMINATED_COMPLETED_OK;
    /* a keep-alive connection goes back to the short idle timeout after a long response */
    if (!aborted && x->long_timeout)
        MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned int)IDLE_TIMEOUT_S);
    if (x->j) {
        job *j = x->j;
        pthread_mutex_lock(&j->mu);
        job_reentered_locked(j);
        j->conn = NULL;
        j->suspended = 0;
        if (!j->done || aborted) atomic_store(&j->cancel, 1);
        pthread_cond_broadcast(&j->cv);
        j->completed = 1;
        j->status = x->status;
        j->aborted = aborted;
        j->t_end = t_end;
        met_request(s->met, x->route_id, x->status, j->model, (t_end - x->t0) / 1000.0);
        if (j->sent) met_ttfb(s->met, j->model, (j->t_first_byte - j->t0) / 1000.0);
        if (aborted || (j->done && j->rc == ERR_CANCEL)) met_cancelled(s->met);
        snprintf(j->id, sizeof j->id, "%s", x->id);
        snprintf(j->method, sizeof j->method, "%s", x->method);
        pthread_mutex_unlock(&j->mu);
        job_unref(j);
    } else {
        met_request(s->met, x->route_id, x->status, MET_NO_MODEL, (t_end - x->t0) / 1000.0);
        lg_log(s->lg, LG_INFO, "req id=%s %s %s status=%d ms=%.1f%s%s%s", x->id, x->method,
               x->route, x->status, t_end - x->t0, x->note[0] ? " " : "", x->note,
               aborted ? " aborted=1" : "");
    }
    buf_free(&x->body);
    free(x);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    srv_server *s = cls;
    char m[512];
    vsnprintf(m, sizeof m, fmt, ap);
    size_t n = strlen(m);
    while (n > 0 && (m[n - 1] == '\n' || m[n - 1] == '\r')) m[--n] = 0;
    lg_log(s->lg, LG_DEBUG, "mhd: %s", m);
}

/* ---- start / stop ------------------------------------------------------------------- */

/* The key set the config asks for: --api-key / POCKET_TTS_API_KEYS, then the keys file.
 * A keys file that yields no key at all is refused: an emptied (or half-written) file must
 * never turn a keyed server into an open one. */
static int load_keys(const cfg *c, auth_keys **out, char *err, size_t errlen)
{
    auth_keys *k = NULL;
    int rc = auth_new(&k, err, errlen);
    if (!rc) rc = auth_add_list(k, c->api_keys, "--api-key/POCKET_TTS_API_KEYS", err, errlen);
    if (!rc && c->api_keys_file[0]) {
        size_t before = auth_count(k);
        rc = auth_add_file(k, c->api_keys_file, err, errlen);
        if (!rc && auth_count(k) == before)
            rc = err_set(err, errlen, ERR_INVAL, "API keys file %s has no keys (refusing to run "
                         "open with a keys file configured)", c->api_keys_file);
    }
    if (rc) {
        auth_free(k);
        return rc;
    }
    *out = k;
    return 0;
}

/* frees what srv_start built before MHD runs */
static void free_parts(srv_server *s)
{
    if (s->pool) srv_pool_free(s->pool);
    auth_free(s->keys);
    met_free(s->met);
    pthread_rwlock_destroy(&s->keys_mu);
    pthread_mutex_destroy(&s->reload_mu);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int srv_start(srv_server **out, const cfg *c, reg_registry *reg, lg_logger *lg, char *err,
              size_t errlen)
{
    srv_server *s = calloc(1, sizeof *s);
    if (!s) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    s->c = c;
    atomic_init(&s->reg, reg);
    s->lg = lg;
    s->t_start = now_ms();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s->t_start_unix = ts.tv_sec + ts.tv_nsec / 1e9;
    s->id_salt = ((unsigned long long)ts.tv_sec * 1000003ull) ^ (unsigned long long)ts.tv_nsec ^
                 ((unsigned long long)getpid() << 16);
    pthread_mutex_init(&s->mu, NULL);
    pthread_rwlock_init(&s->keys_mu, NULL);
    pthread_mutex_init(&s->reload_mu, NULL);
    atomic_init(&s->keys_checked_ms, (long long)s->t_start);
    keys_file_sig(c, s->keys_sig, sizeof s->keys_sig);
    int rc = met_new(&s->met, err, errlen);
    if (!rc) rc = load_keys(c, &s->keys, err, errlen);
    if (!rc) rc = srv_pool_new(&s->pool, c->workers, c->queue_len, err, errlen);
    if (rc) {
        free_parts(s);
        return rc;
    }

    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char port[16];
    snprintf(port, sizeof port, "%d", c->port);
    int gai = getaddrinfo(c->host[0] ? c->host : NULL, port, &hints, &ai);
    if (gai || !ai) {
        free_parts(s);
        return err_set(err, errlen, ERR_INVAL, "cannot resolve listen address '%s': %s", c->host,
                       gai_strerror(gai));
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    struct MHD_OptionItem ops[] = {
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, s}, /* first: catches every message */
        {MHD_OPTION_SOCK_ADDR, 0, ai->ai_addr},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, s},
        /* idle timeout; suspended (streaming, waiting) connections do not time out */
        {MHD_OPTION_CONNECTION_TIMEOUT, IDLE_TIMEOUT_S, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)c->max_connections, NULL},
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT, (intptr_t)c->max_conns_per_ip, NULL},
        {c->http_threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END,
         c->http_threads, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    s->d = MHD_start_daemon(flags, (uint16_t)c->port, NULL, NULL, on_request, s,
                            MHD_OPTION_ARRAY, ops, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->d) {
        free_parts(s);
        return err_set(err, errlen, ERR_IO, "cannot listen on %s:%d (address in use or not "
                       "available?)", c->host, c->port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : c->port;
    *out = s;
    return 0;
}

int srv_port(const srv_server *s) { return s->port; }

size_t srv_key_count(srv_server *s)
{
    pthread_rwlock_rdlock(&s->keys_mu);
    size_t n = auth_count(s->keys);
    pthread_rwlock_unlock(&s->keys_mu);
    return n;
}

/* "inode size mtime" of the keys file, "" if none or unreadable. */
static void keys_file_sig(const cfg *c, char *sig, size_t n)
{
    struct stat st;
    sig[0] = 0;
    if (c->api_keys_file[0] && stat(c->api_keys_file, &st) == 0)
        snprintf(sig, n, "%llu %lld %lld.%09ld", (unsigned long long)st.st_ino,
                 (long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

/* Under s->reload_mu. */
static int reload_keys_locked(srv_server *s, char *err, size_t errlen)
{
    keys_file_sig(s->c, s->keys_sig, sizeof s->keys_sig);
    auth_keys *k = NULL;
    int rc = load_keys(s->c, &k, err, errlen);
    if (rc) return rc;
    pthread_rwlock_wrlock(&s->keys_mu);
    auth_keys *old = s->keys;
    s->keys = k;
    pthread_rwlock_unlock(&s->keys_mu);
    auth_free(old);
    return 0;
}

int srv_reload_keys(srv_server *s, char *err, size_t errlen)
{
    pthread_mutex_lock(&s->reload_mu);
    int rc = reload_keys_locked(s, err, errlen);
    pthread_mutex_unlock(&s->reload_mu);
    return rc;
}

/* Called by keyed requests: at most every KEYS_WATCH_MS, one caller looks at the keys
 * file and reloads it when it changed (a rotated Kubernetes Secret, an edit), so rotation
 * needs no SIGHUP. A file that fails to load keeps the old keys until it changes again. */
static void keys_watch(srv_server *s)
{
    if (!s->c->api_keys_file[0]) return;
    long long t = (long long)now_ms();
    long long last = atomic_load(&s->keys_checked_ms);
    if (t - last < KEYS_WATCH_MS || !atomic_compare_exchange_strong(&s->keys_checked_ms, &last, t))
        return;
    char sig[sizeof s->keys_sig], err[512];
    keys_file_sig(s->c, sig, sizeof sig);
    pthread_mutex_lock(&s->reload_mu);
    if (strcmp(sig, s->keys_sig) != 0) {
        if (reload_keys_locked(s, err, sizeof err))
            lg_log(s->lg, LG_ERROR, "keys file changed: API keys not reloaded, old keys stay: %s",
                   err);
        else
            lg_log(s->lg, LG_INFO, "keys file changed: API keys reloaded: %zu",
                   auth_count(s->keys));
    }
    pthread_mutex_unlock(&s->reload_mu);
}

void srv_set_registry(srv_server *s, reg_registry *reg) { atomic_store(&s->reg, reg); }

static void cancel_all(srv_server *s)
{
    pthread_mutex_lock(&s->mu);
    for (job *j = s->live; j; j = j->next) {
        atomic_store(&j->cancel, 1);
        pthread_mutex_lock(&j->mu);
        pthread_cond_broadcast(&j->cv);
        pthread_mutex_unlock(&j->mu);
    }
    pthread_mutex_unlock(&s->mu);
}

void srv_stop(srv_server *s, int drain_ms)
{
    if (!s) return;
    atomic_store(&s->stopping, 1);
    MHD_socket ls = MHD_quiesce_daemon(s->d);
    if (ls != MHD_INVALID_SOCKET) close(ls);
    double t0 = now_ms();
    while (atomic_load(&s->njobs) > 0 && now_ms() - t0 < drain_ms) usleep(10 * 1000);
    if (atomic_load(&s->njobs) > 0) {
        lg_log(s->lg, LG_WARN, "shutdown: cancelling %d unfinished request(s)",
               atomic_load(&s->njobs));
        cancel_all(s);
    }
    t0 = now_ms();
    while (atomic_load(&s->njobs) > 0 && now_ms() - t0 < 10000) usleep(10 * 1000);
    /* every job is done and has resumed its connection; let MHD pick them up */
    t0 = now_ms();
    while (atomic_load(&s->nsusp) > 0 && now_ms() - t0 < 3000) usleep(5 * 1000);
    MHD_stop_daemon(s->d);
    free_parts(s);
}
