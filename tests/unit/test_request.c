/* test_request.c — every error path of POST /v1/audio/speech parsing returns the right
 * status, code and param; defaults and accepted forms; the pipeline's SSE framing and
 * base64; the worker pool refuses work beyond workers + queue. Uses the built-in beep
 * engine so no real engine is needed. */
#include "ut.h"
#include "api/catalog.h"
#include "api/pipeline.h"
#include "api/request.h"
#include "core/buf.h"
#include "core/err.h"
#include "engine/registry.h"
#include "core/config.h"
#include "core/log.h"
#include "server/pool.h"
#include "server/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static reg_registry *mkreg(ut_ctx *t)
{
    reg_registry *r;
    engine *e;
    char err[128];
    UT_EQ_INT(t, 0, reg_new(&r, err, sizeof err));
    UT_EQ_INT(t, 0, reg_beep_new(&e, err, sizeof err));
    UT_EQ_INT(t, 0, reg_add(r, e, 1, err, sizeof err));
    return r;
}

typedef struct {
    const char *body;
    int status;
    const char *code;  /* NULL = expect null */
    const char *param; /* NULL = expect null */
} ecase;

static void t_errors(ut_ctx *t)
{
    static const ecase cases[] = {
        {"", 400, "invalid_json", NULL},
        {"{", 400, "invalid_json", NULL},
        {"{\"input\":\"x\"} trailing", 400, "invalid_json", NULL},
        {"[1,2]", 400, "invalid_json", NULL},
        {"\"str\"", 400, "invalid_json", NULL},
        {"{}", 400, "missing_required_parameter", "input"},
        {"{\"input\":null}", 400, "invalid_type", "input"},
        {"{\"input\":42}", 400, "invalid_type", "input"},
        {"{\"input\":\"\"}", 400, "empty_input", "input"},
        {"{\"input\":\"  \\n\\t \"}", 400, "empty_input", "input"},
        {"{\"input\":\"\xc3\x28\"}", 400, "invalid_encoding", "input"},
        {"{\"input\":\"\xed\xa0\x80\"}", 400, "invalid_encoding", "input"},
        {"{\"input\":\"0123456789A\"}", 413, "string_above_max_length", "input"},
        {"{\"input\":\"hi\",\"model\":\"tts-9\"}", 404, "model_not_found", "model"},
        {"{\"input\":\"hi\",\"model\":7}", 400, "invalid_type", "model"},
        {"{\"input\":\"hi\",\"voice\":\"nobody\"}", 400, "voice_not_found", "voice"},
        {"{\"input\":\"hi\",\"voice\":3}", 400, "invalid_type", "voice"},
        {"{\"input\":\"hi\",\"voice\":{\"name\":\"alloy\"}}", 400, "invalid_type", "voice"},
        {"{\"input\":\"hi\",\"voice\":{\"id\":\"nobody\"}}", 400, "voice_not_found", "voice"},
        {"{\"input\":\"hi\",\"voice\":\"\"}", 400, "invalid_value", "voice"},
        {"{\"input\":\"hi\",\"response_format\":\"ogg\"}", 400, "invalid_value", "response_format"},
        {"{\"input\":\"hi\",\"response_format\":1}", 400, "invalid_type", "response_format"},
        {"{\"input\":\"hi\",\"speed\":0.2}", 400, "invalid_value", "speed"},
        {"{\"input\":\"hi\",\"speed\":4.01}", 400, "invalid_value", "speed"},
        {"{\"input\":\"hi\",\"speed\":\"fast\"}", 400, "invalid_type", "speed"},
        {"{\"input\":\"hi\",\"stream\":1}", 400, "invalid_type", "stream"},
        {"{\"input\":\"hi\",\"stream_format\":\"ws\"}", 400, "invalid_value", "stream_format"},
        {"{\"input\":\"hi\",\"stream_format\":false}", 400, "invalid_type", "stream_format"},
        {"{\"input\":\"hi\",\"instructions\":[]}", 400, "invalid_type", "instructions"},
        {"{\"input\":\"hi\\u0000there\"}", 400, "invalid_value", "input"},
        {"{\"input\":\"\xc2\xa0\xe3\x80\x80\\u2003\"}", 400, "empty_input", "input"},
        {"{\"input\":\"hi\",\"seed\":\"1\"}", 400, "invalid_type", "seed"},
        {"{\"input\":\"hi\",\"seed\":1.5}", 400, "invalid_value", "seed"},
        {"{\"input\":\"hi\",\"seed\":-1}", 400, "invalid_value", "seed"},
        {"{\"input\":\"hi\",\"instructions\":\"0123456789ABC\"}", 413, "string_above_max_length",
         "instructions"},
    };
    reg_registry *r = mkreg(t);
    oai_limits lim = {.max_input_chars = 10, .stream_default = 1};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        oai_speech s;
        oai_error e;
        int rc = oai_speech_parse(cases[i].body, strlen(cases[i].body), r, &lim, &s, &e);
        const char *code = e.code ? e.code : "(null)", *param = e.param ? e.param : "(null)";
        const char *xcode = cases[i].code ? cases[i].code : "(null)";
        const char *xparam = cases[i].param ? cases[i].param : "(null)";
        if (rc == 0 || e.status != cases[i].status || strcmp(code, xcode) || strcmp(param, xparam))
            ut_fail(t, __FILE__, __LINE__,
                    "case %zu %s: expected %d/%s/%s, got rc=%d %d/%s/%s (%s)", i, cases[i].body,
                    cases[i].status, xcode, xparam, rc, e.status, code, param, e.message);
        UT_CHECK(t, s.input == NULL && s.instructions == NULL);
        /* the JSON form of the error is OpenAI's shape */
        char *j = oai_error_json(&e);
        UT_CHECK(t, j != NULL);
        UT_CHECK(t, !strncmp(j, "{\"error\":{\"message\":", 20));
        UT_CHECK(t, strstr(j, "\"type\":\"invalid_request_error\"") != NULL);
        UT_CHECK(t, strstr(j, "\"param\":") != NULL && strstr(j, "\"code\":") != NULL);
        free(j);
    }
    reg_free(r);
}

static void t_raw_nul(ut_ctx *t)
{
    reg_registry *r = mkreg(t);
    oai_limits lim = {.max_input_chars = 4096, .stream_default = 1};
    oai_speech s;
    oai_error e;
    static const char body[] = "{\"input\":\"hi\0there\"}";
    UT_EQ_INT(t, ERR_INVAL, oai_speech_parse(body, sizeof body - 1, r, &lim, &s, &e));
    UT_EQ_INT(t, 400, e.status);
    UT_EQ_STR(t, "invalid_json", e.code);
    reg_free(r);
}

static void t_accepts(ut_ctx *t)
{
    reg_registry *r = mkreg(t);
    oai_limits lim = {.max_input_chars = 4096, .stream_default = 1};
    oai_speech s;
    oai_error e;
    /* minimal body: defaults */
    const char *b1 = "{\"input\":\"h\xc3\xa9llo\"}";
    UT_EQ_INT(t, 0, oai_speech_parse(b1, strlen(b1), r, &lim, &s, &e));
    UT_EQ_STR(t, "beep", s.model);
    UT_EQ_STR(t, "beep", s.voice);
    UT_EQ_INT(t, AENC_MP3, s.format);
    UT_EQ_INT(t, 5, s.input_chars);
    UT_EQ_INT(t, 1, s.stream);
    UT_EQ_INT(t, 0, s.sse);
    UT_NEAR(t, 1.0, s.speed, 1e-6);
    oai_speech_free(&s);
    /* OpenAI model ids, voice object, unknown fields ignored, stream_format sse implies stream */
    const char *b2 = "{\"model\":\"gpt-4o-mini-tts\",\"input\":\"hi\",\"voice\":{\"id\":\"Nova\"},"
                     "\"response_format\":\"wav\",\"speed\":0.25,\"stream\":false,"
                     "\"stream_format\":\"sse\",\"instructions\":\"calm\",\"extra\":{\"a\":1}}";
    UT_EQ_INT(t, 0, oai_speech_parse(b2, strlen(b2), r, &lim, &s, &e));
    UT_EQ_STR(t, "gpt-4o-mini-tts", s.model);
    UT_CHECK(t, s.eng == reg_default(r));
    UT_EQ_STR(t, "Nova", s.voice);
    UT_EQ_INT(t, AENC_WAV, s.format);
    UT_EQ_INT(t, 1, s.sse);
    UT_EQ_INT(t, 1, s.stream);
    UT_EQ_STR(t, "calm", s.instructions);
    UT_EQ_INT(t, 0, s.has_seed);
    oai_speech_free(&s);
    /* an escaped backslash followed by u0000 is text, not a NUL */
    const char *b5 = "{\"input\":\"C:\\\\u0000 path\"}";
    UT_EQ_INT(t, 0, oai_speech_parse(b5, strlen(b5), r, &lim, &s, &e));
    UT_EQ_STR(t, "C:\\u0000 path", s.input);
    oai_speech_free(&s);
    const char *b3 = "{\"model\":\"tts-1-hd\",\"input\":\"hi\",\"stream\":false,\"speed\":4}";
    lim.stream_default = 0;
    UT_EQ_INT(t, 0, oai_speech_parse(b3, strlen(b3), r, &lim, &s, &e));
    UT_EQ_INT(t, 0, s.stream);
    oai_speech_free(&s);
    const char *b4 = "{\"model\":\"tts-1\",\"input\":\"hi\",\"seed\":42}";
    UT_EQ_INT(t, 0, oai_speech_parse(b4, strlen(b4), r, &lim, &s, &e));
    UT_EQ_INT(t, 0, s.stream); /* from stream_default */
    UT_EQ_INT(t, 1, s.has_seed);
    UT_EQ_INT(t, 42, s.seed);
    oai_speech_free(&s);
    reg_free(r);
}

static void t_base64(ut_ctx *t)
{
    char out[64];
    static const struct { const char *in, *out; } v[] = {
        {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        oai_base64((const unsigned char *)v[i].in, strlen(v[i].in), out);
        UT_EQ_STR(t, v[i].out, out);
    }
}

static int collect(void *user, const void *bytes, size_t n) { return buf_append(user, bytes, n); }

static void t_pipeline_sse(ut_ctx *t)
{
    reg_registry *r = mkreg(t);
    oai_limits lim = {.max_input_chars = 4096, .stream_default = 1};
    oai_speech s;
    oai_error e;
    const char *b = "{\"input\":\"one two\",\"response_format\":\"pcm\",\"stream_format\":\"sse\"}";
    UT_EQ_INT(t, 0, oai_speech_parse(b, strlen(b), r, &lim, &s, &e));
    buf out;
    buf_init(&out, 16 << 20);
    oai_stats st;
    char err[256];
    UT_EQ_INT(t, 0, oai_run(&s, NULL, collect, NULL, &out, &st, err, sizeof err));
    const char *txt = buf_cstr(&out);
    UT_CHECK(t, !strncmp(txt, "data: {\"type\":\"speech.audio.delta\",\"audio\":\"", 44));
    UT_CHECK(t, strstr(txt, "data: {\"type\":\"speech.audio.done\",\"usage\":{\"input_tokens\":7,") != NULL);
    UT_CHECK(t, out.len >= 2 && !strcmp(txt + out.len - 2, "\n\n"));
    /* beep: (3+3)*40ms tones + 2*60ms gaps = 0.36 s */
    UT_EQ_INT(t, (uint64_t)(0.12 * 24000) * 2 + (uint64_t)(0.06 * 24000) * 2, st.samples);
    buf_free(&out);
    oai_speech_free(&s);
    reg_free(r);
}

static int stop_after_first(void *user, const void *bytes, size_t n)
{
    int *calls = user;
    return ++*calls >= 1;
}

static int tick_stop(void *user) { return 1; }

static void t_pipeline_cancel(ut_ctx *t)
{
    reg_registry *r = mkreg(t);
    oai_limits lim = {.max_input_chars = 4096, .stream_default = 1};
    oai_speech s;
    oai_error e;
    const char *b = "{\"input\":\"a b c d e f g h\",\"response_format\":\"pcm\"}";
    UT_EQ_INT(t, 0, oai_speech_parse(b, strlen(b), r, &lim, &s, &e));
    int calls = 0;
    oai_stats st;
    char err[256];
    UT_EQ_INT(t, ERR_CANCEL, oai_run(&s, NULL, stop_after_first, NULL, &calls, &st, err, sizeof err));
    UT_EQ_INT(t, 1, calls);
    atomic_int cancel = 1;
    calls = 0;
    UT_EQ_INT(t, ERR_CANCEL, oai_run(&s, &cancel, stop_after_first, NULL, &calls, &st, err, sizeof err));
    UT_EQ_INT(t, 0, calls);
    /* tick stops it even when no bytes flow */
    calls = 0;
    UT_EQ_INT(t, ERR_CANCEL, oai_run(&s, NULL, stop_after_first, tick_stop, &calls, &st, err, sizeof err));
    UT_EQ_INT(t, 0, calls);
    oai_speech_free(&s);
    reg_free(r);
}

/* an engine that speaks one chunk and then fails */
static int fail_list(engine *e, eng_voice **out, size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    return 0;
}
static int fail_check(engine *e, const char *v, char *err, size_t errlen) { return 0; }
static int fail_synth(engine *e, const eng_synth_req *req, eng_sink_fn sink, void *user,
                      char *err, size_t errlen)
{
    float pcm[480] = {0};
    if (sink(user, pcm, 480)) return ERR_CANCEL;
    return err_set(err, errlen, ERR_IO, "disk \"on fire\"");
}
static void fail_destroy(engine *e) {}
static const eng_ops fail_ops = {fail_list, fail_check, fail_synth, fail_destroy};

static void t_pipeline_sse_error(ut_ctx *t)
{
    engine fe = {&fail_ops, "fail", "fails", ENG_CAP_SPEED, 1, NULL};
    oai_speech s;
    memset(&s, 0, sizeof s);
    s.eng = &fe;
    s.input = (char *)"x";
    s.input_chars = 1;
    s.format = AENC_PCM;
    s.speed = 1.0f;
    s.stream = s.sse = 1;
    buf out;
    buf_init(&out, 1 << 20);
    oai_stats st;
    char err[256];
    UT_EQ_INT(t, ERR_IO, oai_run(&s, NULL, collect, NULL, &out, &st, err, sizeof err));
    const char *txt = buf_cstr(&out);
    UT_CHECK(t, !strncmp(txt, "data: {\"type\":\"speech.audio.delta\"", 33));
    const char *ev = strstr(txt, "data: {\"type\":\"error\",\"error\":{\"message\":\"disk  on fire \"");
    if (!ev) ut_fail(t, __FILE__, __LINE__, "no error event in: %.300s", txt);
    UT_CHECK(t, strstr(txt, "speech.audio.done") == NULL);
    buf_free(&out);
}

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int release, ran;
} gate;

static void gated(void *arg)
{
    gate *g = arg;
    pthread_mutex_lock(&g->mu);
    while (!g->release) pthread_cond_wait(&g->cv, &g->mu);
    g->ran++;
    pthread_mutex_unlock(&g->mu);
}

static void t_pool_bounds(ut_ctx *t)
{
    srv_pool *p;
    char err[128];
    gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    UT_EQ_INT(t, 0, srv_pool_new(&p, 2, 1, err, sizeof err));
    UT_EQ_INT(t, 0, srv_pool_submit(p, gated, &g));
    UT_EQ_INT(t, 0, srv_pool_submit(p, gated, &g));
    UT_EQ_INT(t, 0, srv_pool_submit(p, gated, &g)); /* waits in the queue */
    UT_EQ_INT(t, ERR_BUSY, srv_pool_submit(p, gated, &g));
    int w, run, q, cap;
    srv_pool_stats(p, &w, &run, &q, &cap);
    UT_EQ_INT(t, 2, w);
    UT_EQ_INT(t, 3, run + q);
    UT_EQ_INT(t, 1, cap);
    pthread_mutex_lock(&g.mu);
    g.release = 1;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    srv_pool_free(p); /* runs everything accepted */
    UT_EQ_INT(t, 3, g.ran);
}

static void t_catalog(ut_ctx *t)
{
    reg_registry *r = mkreg(t);
    char *s = NULL, err[128];
    UT_EQ_INT(t, 0, oai_voices_json(r, NULL, OAI_VOICES_OPENAI, &s, err, sizeof err));
    UT_CHECK(t, !strncmp(s, "{\"object\":\"list\",\"data\":[{\"id\":\"beep\",\"name\":", 44));
    UT_CHECK(t, strstr(s, "\"object\":\"voice\"") != NULL);
    free(s);
    UT_EQ_INT(t, 0, oai_voices_json(r, "tts-1", OAI_VOICES_WEBUI, &s, err, sizeof err));
    UT_CHECK(t, !strncmp(s, "{\"voices\":[{\"id\":\"beep\"", 22));
    free(s);
    UT_EQ_INT(t, ERR_NOTFOUND, oai_voices_json(r, "nope", OAI_VOICES_WEBUI, &s, err, sizeof err));
    UT_EQ_INT(t, 0, oai_models_json(r, 1, &s, err, sizeof err));
    UT_EQ_STR(t, "{\"models\":[{\"id\":\"tts-1\"},{\"id\":\"tts-1-hd\"},{\"id\":\"gpt-4o-mini-tts\"},"
                 "{\"id\":\"beep\"}]}", s);
    free(s);
    UT_EQ_INT(t, 0, oai_model_json(r, "tts-1", &s, err, sizeof err));
    UT_EQ_STR(t, "{\"id\":\"tts-1\",\"object\":\"model\",\"created\":1700000000,\"owned_by\":\"pockettts\"}", s);
    free(s);
    UT_EQ_INT(t, ERR_NOTFOUND, oai_model_json(r, "whisper-1", &s, err, sizeof err));
    /* "<id>-<config>" names the config an engine loaded (pocket-tts-english_2026-04) */
    engine *e = reg_default(r);
    e->desc = "beep tiny_config (local folder)";
    UT_CHECK(t, reg_find_model(r, "beep-tiny_config") == e);
    UT_CHECK(t, reg_find_model(r, "beep-tiny") == NULL);
    UT_CHECK(t, reg_find_model(r, "beep-") == NULL);
    UT_CHECK(t, reg_find_model(r, "gpt-4o-mini-tts-2025-12-15") == e);
    UT_CHECK(t, reg_find_model(r, "tts-2") == NULL);
    reg_free(r);
}

/* One HTTP/1.0 exchange over loopback; returns the whole response (headers + body). */
static int http(int port, const char *req, size_t reqlen, buf *resp)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) || write(fd, req, reqlen) != (ssize_t)reqlen) {
        close(fd);
        return -1;
    }
    char chunk[4096];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof chunk)) > 0)
        if (buf_append(resp, chunk, (size_t)n)) break;
    close(fd);
    return 0;
}

static void t_server_roundtrip(ut_ctx *t)
{
    cfg c;
    cfg_defaults(&c);
    snprintf(c.host, sizeof c.host, "127.0.0.1");
    c.port = 0;
    c.workers = 1;
    c.queue_len = 1;
    c.http_threads = 1;
    reg_registry *r = mkreg(t);
    lg_logger *lg;
    UT_EQ_INT(t, 0, lg_new(&lg, stderr, LG_OFF));
    srv_server *s;
    char err[256];
    UT_EQ_INT(t, 0, srv_start(&s, &c, NULL, lg, err, sizeof err));
    int port = srv_port(s);
    UT_CHECK(t, port > 0);
    buf b;
    buf_init(&b, 1 << 20);
    /* before the registry is set: starting */
    const char *h = "GET /health HTTP/1.0\r\n\r\n";
    UT_EQ_INT(t, 0, http(port, h, strlen(h), &b));
    UT_CHECK(t, !strncmp(buf_cstr(&b), "HTTP/1.0 503", 12) || !strncmp(buf_cstr(&b), "HTTP/1.1 503", 12));
    UT_CHECK(t, strstr(buf_cstr(&b), "\"status\":\"starting\"") != NULL);
    srv_set_registry(s, r);
    buf_reset(&b);
    UT_EQ_INT(t, 0, http(port, h, strlen(h), &b));
    UT_CHECK(t, strstr(buf_cstr(&b), " 200 ") != NULL);
    UT_CHECK(t, strstr(buf_cstr(&b), "X-Request-Id: req_") != NULL);
    /* a non-streamed WAV */
    const char *body = "{\"input\":\"hi there\",\"response_format\":\"wav\",\"stream\":false}";
    char req[512];
    int n = snprintf(req, sizeof req,
                     "POST /v1/audio/speech HTTP/1.0\r\nContent-Type: application/json\r\n"
                     "Authorization: Bearer x\r\nX-Request-Id: my-id-1\r\nContent-Length: %zu\r\n\r\n%s",
                     strlen(body), body);
    buf_reset(&b);
    UT_EQ_INT(t, 0, http(port, req, (size_t)n, &b));
    const char *txt = buf_cstr(&b);
    UT_CHECK(t, strstr(txt, " 200 ") != NULL);
    UT_CHECK(t, strstr(txt, "X-Request-Id: my-id-1") != NULL);
    UT_CHECK(t, strstr(txt, "Content-Type: audio/wav") != NULL);
    const char *riff = NULL;
    for (size_t i = 0; i + 4 <= b.len; i++)
        if (!memcmp(b.data + i, "RIFF", 4)) { riff = b.data + i; break; }
    UT_CHECK(t, riff != NULL);
    /* beep: (2+5)*40 ms + 2*60 ms = 0.4 s = 9600 samples = 19200 bytes of data */
    UT_EQ_INT(t, 44 + 19200, (long long)(b.data + b.len - riff));
    /* errors are OpenAI-shaped */
    buf_reset(&b);
    const char *nf = "GET /v1/nothing HTTP/1.0\r\n\r\n";
    UT_EQ_INT(t, 0, http(port, nf, strlen(nf), &b));
    UT_CHECK(t, strstr(buf_cstr(&b), " 404 ") != NULL);
    UT_CHECK(t, strstr(buf_cstr(&b), "{\"error\":{\"message\":") != NULL);
    buf_reset(&b);
    n = snprintf(req, sizeof req,
                 "POST /v1/audio/speech HTTP/1.0\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi");
    UT_EQ_INT(t, 0, http(port, req, (size_t)n, &b));
    UT_CHECK(t, strstr(buf_cstr(&b), " 415 ") != NULL);
    /* curl -d without -H: form content type, JSON body -> accepted; form body -> 415 */
    buf_reset(&b);
    n = snprintf(req, sizeof req,
                 "POST /v1/audio/speech HTTP/1.0\r\nContent-Type: application/x-www-form-urlencoded"
                 "\r\nContent-Length: %zu\r\n\r\n%s", strlen(body), body);
    UT_EQ_INT(t, 0, http(port, req, (size_t)n, &b));
    UT_CHECK(t, strstr(buf_cstr(&b), " 200 ") != NULL);
    buf_reset(&b);
    n = snprintf(req, sizeof req,
                 "POST /v1/audio/speech HTTP/1.0\r\nContent-Type: application/x-www-form-urlencoded"
                 "\r\nContent-Length: 9\r\n\r\ninput=abc");
    UT_EQ_INT(t, 0, http(port, req, (size_t)n, &b));
    UT_CHECK(t, strstr(buf_cstr(&b), " 415 ") != NULL);
    buf_reset(&b);
    n = snprintf(req, sizeof req,
                 "POST /v1/audio/speech HTTP/1.0\r\nContent-Type: multipart/form-data; boundary=x"
                 "\r\nContent-Length: 2\r\n\r\nhi");
    UT_EQ_INT(t, 0, http(port, req, (size_t)n, &b));
    UT_CHECK(t, strstr(buf_cstr(&b), " 415 ") != NULL);
    buf_free(&b);
    srv_stop(s, 1000);
    reg_free(r);
    lg_free(lg);
}

static const ut_case cases[] = {
    {"server_roundtrip", t_server_roundtrip},
    {"errors", t_errors},           {"raw_nul", t_raw_nul},           {"accepts", t_accepts},
    {"base64", t_base64},           {"pipeline_sse", t_pipeline_sse},
    {"pipeline_cancel", t_pipeline_cancel}, {"pipeline_sse_error", t_pipeline_sse_error}, {"pool_bounds", t_pool_bounds},
    {"catalog", t_catalog},
};
UT_SUITE(request, cases)
