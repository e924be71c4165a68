/* main.c — the pockettts program: flags + env, signals, and the three commands.
 *
 *   serve   (default) start the HTTP server; SIGINT/SIGTERM stop it gracefully (exit 0);
 *           SIGHUP re-reads the API keys (--api-keys-file).
 *   say     speak text from arguments or stdin into a file or stdout. The options are
 *           turned into the same JSON body the API takes and go through the same parser
 *           and pipeline (api/request.h, api/pipeline.h), so the bytes are the API's.
 *   voices  list voices (a table, or --json for the /v1/voices body).
 *
 * stdout carries nothing but audio (say) or the requested listing (voices, --help,
 * --version); logs and errors go to stderr. Exit codes: 0 ok, 1 failure, 2 bad usage.
 */
#include "api/catalog.h"
#include "api/pipeline.h"
#include "api/request.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/cpuenv.h"
#include "core/err.h"
#include "core/log.h"
#include "engine/registry.h"
#include "server/server.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define SAY_MAX_STDIN (4u << 20)

static const char *env_get(const char *name) { return getenv(name); }

/* SIGINT/SIGTERM -> one byte (the signal number) into a self-pipe that `serve` waits on.
 * A handler, not a blocked mask + sigwait: libraries start threads before main (OpenBLAS's
 * pool), and a process-directed signal may land on any thread that does not block it,
 * where the default action would kill the process. The handler runs on whichever thread
 * gets it and only calls write(2). The pipe is the one piece of global state, set once
 * first thing in main (say and voices go back to the default: Ctrl-C stops them at once). */
static int stop_pipe[2] = {-1, -1};

static void on_stop_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    if (write(stop_pipe[1], &b, 1) < 0) {
        /* pipe full: a stop is already pending */
    }
    errno = saved;
}

static int install_stop_handler(void)
{
    if (pipe2(stop_pipe, O_CLOEXEC) != 0) return -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGINT, &sa, NULL) || sigaction(SIGTERM, &sa, NULL) ||
        sigaction(SIGHUP, &sa, NULL))
        return -1;
    return 0;
}

static int load_engines(const cfg *c, lg_logger *lg, reg_registry **reg)
{
    reg_options ro = {.espeak_data = c->espeak_data, .voices_dir = c->voices_dir,
                      .cache_dir = c->cache_dir, .offline = c->offline,
                      .language = c->language, .model_dir = c->model_dir,
                      .allow_url_voices = c->allow_url_voices,
                      .allow_abs_voice_paths = c->allow_abs_voice_paths, .threads = c->threads,
                      .quantize = c->quantize,
                      .kokoro_dir = c->kokoro_dir, .kokoro_weights = c->kokoro_weights,
                      .test_engine = c->test_engine};
    char warn[1024], err[1024];
    int rc = reg_load(reg, &ro, warn, sizeof warn, err, sizeof err);
    if (rc) {
        fprintf(stderr, "pockettts: %s\n", err);
        return rc;
    }
    /* say/voices keep stderr quiet at the default level: these are INFO only for serve */
    int lvl = c->cmd == CFG_CMD_SERVE ? LG_INFO : LG_DEBUG;
    engine *def = reg_default(*reg);
    lg_log(lg, lvl, "default engine %s (%s)", def->id, reg_default_reason(*reg));
    if (warn[0]) lg_log(lg, lvl, "engines skipped: %s", warn);
    return 0;
}

/* ---- serve ------------------------------------------------------------------------- */

static int cmd_serve(const cfg *c, lg_logger *lg)
{
    char err[512];
    srv_server *s = NULL;
    if (srv_start(&s, c, NULL, lg, err, sizeof err)) {
        fprintf(stderr, "pockettts: %s\n", err);
        return 1;
    }
    lg_log(lg, LG_INFO, "pockettts %s listening on http://%s%s%s:%d, loading engines", PT_VERSION,
           strchr(c->host, ':') ? "[" : "", c->host, strchr(c->host, ':') ? "]" : "",
           srv_port(s));
    reg_registry *reg = NULL;
    if (load_engines(c, lg, &reg)) {
        srv_stop(s, 0);
        return 1;
    }
    srv_set_registry(s, reg);
    size_t nkeys = srv_key_count(s);
    if (nkeys) lg_log(lg, LG_INFO, "API keys: %zu (required on /v1/*)", nkeys);
    engine *def = reg_default(reg);
    lg_log(lg, LG_INFO,
           "ready: engines: %zu, default model: %s, workers: %d, queue: %d, stream default: %s",
           reg_count(reg), def->id, c->workers, c->queue_len, c->stream_default ? "true" : "false");
    unsigned char sig = 0;
    for (;;) {
        ssize_t n = read(stop_pipe[0], &sig, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n == 1 && sig == SIGHUP) { /* re-read the API keys (list + keys file) */
            if (srv_reload_keys(s, err, sizeof err))
                lg_log(lg, LG_ERROR, "SIGHUP: API keys not reloaded, old keys stay: %s", err);
            else
                lg_log(lg, LG_INFO, "SIGHUP: API keys reloaded: %zu", srv_key_count(s));
            continue;
        }
        break;
    }
    lg_log(lg, LG_INFO, "received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    srv_stop(s, c->drain_s * 1000);
    reg_free(reg);
    lg_log(lg, LG_INFO, "bye");
    return 0;
}

/* ---- say --------------------------------------------------------------------------- */

static const char *format_from_ext(const char *path)
{
    const char *dot = path ? strrchr(path, '.') : NULL;
    if (!dot) return NULL;
    static const char *exts[][2] = {{".mp3", "mp3"}, {".opus", "opus"}, {".ogg", "opus"},
                                    {".aac", "aac"}, {".flac", "flac"}, {".wav", "wav"},
                                    {".pcm", "pcm"}, {".raw", "pcm"}};
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
        if (!strcasecmp(dot, exts[i][0])) return exts[i][1];
    return NULL;
}

static int read_stdin(buf *b)
{
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) {
        if (buf_append(b, chunk, n)) {
            fprintf(stderr, "pockettts: stdin text is larger than %u bytes\n", SAY_MAX_STDIN);
            return ERR_TOOBIG;
        }
    }
    if (ferror(stdin)) {
        fprintf(stderr, "pockettts: cannot read stdin: %s\n", strerror(errno));
        return ERR_IO;
    }
    return 0;
}

typedef struct say_out {
    FILE *f;
    int failed;
} say_out;

static int say_write(void *user, const void *bytes, size_t n)
{
    say_out *o = user;
    if (fwrite(bytes, 1, n, o->f) != n || fflush(o->f)) {
        o->failed = errno ? errno : EIO;
        return 1;
    }
    return 0;
}

static int cmd_say(const cfg *c, lg_logger *lg)
{
    buf text;
    buf_init(&text, SAY_MAX_STDIN);
    const char *input = c->text;
    if (!input) {
        if (isatty(STDIN_FILENO))
            fprintf(stderr, "pockettts: reading text from stdin (end with Ctrl-D)\n");
        if (read_stdin(&text)) {
            buf_free(&text);
            return 1;
        }
        input = buf_cstr(&text);
    }
    int to_stdout = !c->output || !strcmp(c->output, "-");
    if (to_stdout && isatty(STDOUT_FILENO)) {
        fprintf(stderr, "pockettts: refusing to write audio to a terminal; use -o FILE or a pipe\n");
        buf_free(&text);
        return 2;
    }

    reg_registry *reg = NULL;
    if (load_engines(c, lg, &reg)) {
        buf_free(&text);
        return 1;
    }
    const char *fmt = c->format[0] ? c->format : format_from_ext(to_stdout ? NULL : c->output);
    if (!fmt) fmt = aenc_available(AENC_MP3) ? "mp3" : "wav";

    /* the same JSON body a client would send */
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "input", input);
    if (c->model[0]) cJSON_AddStringToObject(o, "model", c->model);
    if (c->voice[0]) cJSON_AddStringToObject(o, "voice", c->voice);
    cJSON_AddStringToObject(o, "response_format", fmt);
    cJSON_AddNumberToObject(o, "speed", c->speed);
    if (c->stream >= 0) cJSON_AddBoolToObject(o, "stream", c->stream);
    cJSON_AddStringToObject(o, "stream_format", c->stream_format);
    if (c->instructions) cJSON_AddStringToObject(o, "instructions", c->instructions);
    if (c->seed >= 0) cJSON_AddNumberToObject(o, "seed", c->seed);
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    buf_free(&text);
    if (!body) {
        reg_free(reg);
        fprintf(stderr, "pockettts: out of memory\n");
        return 1;
    }

    oai_limits lim = {.max_input_chars = c->max_input_chars, .stream_default = c->stream_default};
    lim.kbps[AENC_MP3] = c->mp3_kbps;
    lim.kbps[AENC_OPUS] = c->opus_kbps;
    lim.kbps[AENC_AAC] = c->aac_kbps;
    oai_speech sp;
    oai_error e;
    int rc = oai_speech_parse(body, strlen(body), reg, &lim, &sp, &e);
    free(body);
    if (rc) {
        fprintf(stderr, "pockettts: %s\n", e.message);
        reg_free(reg);
        return e.status >= 500 ? 1 : 2;
    }

    say_out out = {.f = stdout, .failed = 0};
    /* remove the output on failure only if this run created it as a regular file: never
     * a device (/dev/full), a FIFO or a file the user already had */
    struct stat pre;
    int created = !to_stdout && stat(c->output, &pre) != 0 && errno == ENOENT;
    if (!to_stdout && !(out.f = fopen(c->output, "wb"))) {
        fprintf(stderr, "pockettts: cannot open %s: %s\n", c->output, strerror(errno));
        oai_speech_free(&sp);
        reg_free(reg);
        return 1;
    }
    oai_stats st;
    char err[512];
    rc = oai_run(&sp, NULL, say_write, NULL, &out, &st, err, sizeof err);
    if (!to_stdout && fclose(out.f) && !rc) {
        rc = ERR_IO;
        snprintf(err, sizeof err, "cannot write %s: %s", c->output, strerror(errno));
    }
    if (rc) {
        if (out.failed)
            fprintf(stderr, "pockettts: cannot write audio: %s\n", strerror(out.failed));
        else
            fprintf(stderr, "pockettts: %s\n", err);
        struct stat now;
        if (created && stat(c->output, &now) == 0 && S_ISREG(now.st_mode)) unlink(c->output);
    } else {
        double audio_s = (double)st.samples / ENG_SAMPLE_RATE;
        lg_log(lg, LG_DEBUG, "say: model=%s voice=%s format=%s chars=%zu audio_s=%.2f rtf=%.3f",
               sp.eng->id, sp.voice, aenc_format_name(sp.format), sp.input_chars, audio_s,
               audio_s > 0 ? st.synth_ms / (audio_s * 1000.0) : 0.0);
    }
    oai_speech_free(&sp);
    reg_free(reg);
    return rc ? (rc == ERR_NOTFOUND || rc == ERR_INVAL ? 2 : 1) : 0;
}

/* ---- export-voice ------------------------------------------------------------------ */

#if defined(__has_include)
#if __has_include("engine/pocket/pocket.h")
#include "engine/pocket/pocket.h"
#define MAIN_HAVE_POCKET 1
#endif
#endif

static int cmd_export_voice(const cfg *c, lg_logger *lg)
{
#ifdef MAIN_HAVE_POCKET
    hf_options ho;
    memset(&ho, 0, sizeof ho);
    ho.cache_dir = c->cache_dir[0] ? c->cache_dir : NULL;
    ho.offline = c->offline;
    pke_options po;
    memset(&po, 0, sizeof po);
    po.model_dir = c->model_dir[0] ? c->model_dir : NULL;
    po.language = c->language[0] ? c->language : NULL;
    po.voices_dir = c->voices_dir[0] ? c->voices_dir : NULL;
    po.allow_url_voices = c->allow_url_voices;
    po.allow_abs_voice_paths = 1; /* the operator runs it */
    po.threads = c->threads;
    po.quantize = c->quantize;
    po.pipeline = -1;
    po.hf = &ho;
    engine *e = NULL;
    char err[512];
    int rc = pke_new(&e, &po, err, sizeof err);
    if (!rc) rc = pke_export_voice(e, c->text, c->output, err, sizeof err);
    if (rc) fprintf(stderr, "pockettts: %s\n", err);
    else lg_log(lg, LG_DEBUG, "export-voice: %s -> %s", c->text, c->output);
    eng_free(e);
    return rc ? 1 : 0;
#else
    fprintf(stderr, "pockettts: export-voice needs the pocket-tts engine, not built in\n");
    return 1;
#endif
}

/* ---- voices ------------------------------------------------------------------------ */

static int cmd_voices(const cfg *c, lg_logger *lg)
{
    reg_registry *reg = NULL;
    if (load_engines(c, lg, &reg)) return 1;
    char err[512];
    int rc = 0;
    if (c->json) {
        char *json = NULL;
        rc = oai_voices_json(reg, c->model[0] ? c->model : NULL, OAI_VOICES_OPENAI, &json, err,
                             sizeof err);
        if (!rc) printf("%s\n", json);
        free(json);
    } else {
        engine *only = NULL;
        if (c->model[0] && !(only = reg_find_model(reg, c->model))) {
            snprintf(err, sizeof err, "unknown model '%s'", c->model);
            rc = ERR_NOTFOUND;
        }
        for (size_t i = 0; !rc && i < reg_count(reg); i++) {
            engine *e = reg_get(reg, i);
            if (only && e != only) continue;
            eng_voice *v = NULL;
            size_t n = 0;
            if ((rc = eng_list_voices(e, &v, &n, err, sizeof err))) break;
            for (size_t k = 0; k < n; k++)
                printf("%-24s %-10s %-8s %-8s %-10s %s\n", v[k].id, e->id,
                       v[k].lang[0] ? v[k].lang : "-", v[k].gender[0] ? v[k].gender : "-",
                       v[k].type[0] ? v[k].type : "-", v[k].name);
            free(v);
        }
    }
    if (rc) fprintf(stderr, "pockettts: %s\n", err);
    reg_free(reg);
    return rc ? (rc == ERR_NOTFOUND ? 2 : 1) : 0;
}

int main(int argc, char **argv)
{
    cpuenv_fix_openblas(argv); /* may re-exec once: OpenBLAS kernels (core/cpuenv.h) */
    signal(SIGPIPE, SIG_IGN);
    /* first thing, so a stop request during start-up (engine loading) still exits 0 */
    if (install_stop_handler()) {
        fprintf(stderr, "pockettts: cannot install signal handlers: %s\n", strerror(errno));
        return 1;
    }
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGHUP);
    sigprocmask(SIG_UNBLOCK, &stop, NULL); /* blocked across our re-exec; pending ones run now */
    curl_global_init(CURL_GLOBAL_DEFAULT); /* before any thread: model downloads use libcurl */
    cfg c;
    cfg_defaults(&c);
    char err[512];
    if (cfg_parse(&c, argc, argv, env_get, err, sizeof err)) {
        fprintf(stderr, "pockettts: %s\n", err);
        curl_global_cleanup();
        return 2;
    }
    if (c.cmd == CFG_CMD_HELP || c.cmd == CFG_CMD_VERSION) {
        if (c.cmd == CFG_CMD_HELP) fputs(cfg_usage(), stdout);
        else printf("pockettts %s\n", PT_VERSION);
        curl_global_cleanup();
        return 0;
    }
    lg_logger *lg = NULL;
    if (lg_new(&lg, stderr, c.log_level)) {
        fprintf(stderr, "pockettts: out of memory\n");
        return 1;
    }
    if (c.cmd != CFG_CMD_SERVE) { /* say / voices: Ctrl-C stops them at once */
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
    }
    int rc;
    switch (c.cmd) {
    case CFG_CMD_SAY: rc = cmd_say(&c, lg); break;
    case CFG_CMD_VOICES: rc = cmd_voices(&c, lg); break;
    case CFG_CMD_EXPORT_VOICE: rc = cmd_export_voice(&c, lg); break;
    default: rc = cmd_serve(&c, lg); break;
    }
    lg_free(lg);
    curl_global_cleanup();
    return rc;
}
