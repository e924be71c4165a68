/* config.c — see config.h.
 *
 * Every setting is one row of `opts[]`: flag name, env name (or NULL), kind, where it
 * lands in struct cfg, its range, and which commands accept it. Env is applied first,
 * then argv, so flags win. The usage text below is kept in step with the table by hand
 * (tests/unit/test_config.c checks that every flag in the table appears in it).
 */
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { K_STR, K_INT, K_SIZE, K_BOOL, K_LEVEL, K_DOUBLE, K_BORROW, K_FLAG, K_ENUM, K_LIST };
/* K_LIST: a string that each use extends ("a,b" then ",c"); values are not echoed in
 * errors (they may be secrets) */

/* command masks */
#define M_SERVE (1u << CFG_CMD_SERVE)
#define M_SAY (1u << CFG_CMD_SAY)
#define M_VOICES (1u << CFG_CMD_VOICES)
#define M_EXPORT (1u << CFG_CMD_EXPORT_VOICE)
#define M_ALL (M_SERVE | M_SAY | M_VOICES | M_EXPORT)

typedef struct opt {
    const char *flag;  /* long name without "--" */
    char short_name;   /* 0 = none */
    const char *env;   /* NULL = flag only */
    int kind;
    size_t off;        /* offset in cfg */
    size_t size;       /* K_STR: array size */
    double lo, hi;     /* numeric range */
    unsigned cmds;     /* M_* */
    const char *choices; /* K_ENUM: space-separated allowed values */
} opt;

#define OFF(f) offsetof(cfg, f)
#define SZ(f) sizeof(((cfg *)0)->f)

static const opt opts[] = {
    {"host", 0, "POCKET_TTS_HOST", K_STR, OFF(host), SZ(host), 0, 0, M_SERVE, NULL},
    {"port", 'p', "POCKET_TTS_PORT", K_INT, OFF(port), 0, 0, 65535, M_SERVE, NULL},
    {"voices-dir", 0, "POCKET_TTS_VOICES_DIR", K_STR, OFF(voices_dir), SZ(voices_dir), 0, 0, M_ALL, NULL},
    {"stream-default", 0, "POCKET_TTS_STREAM_DEFAULT", K_BOOL, OFF(stream_default), 0, 0, 1, M_ALL, NULL},
    {"log-level", 0, "POCKET_TTS_LOG_LEVEL", K_LEVEL, OFF(log_level), 0, 0, 0, M_ALL, NULL},
    {"max-input-chars", 0, "POCKET_TTS_MAX_INPUT_CHARS", K_SIZE, OFF(max_input_chars), 0, 1, 1000000, M_ALL, NULL},
    {"max-body-bytes", 0, "POCKET_TTS_MAX_BODY_BYTES", K_SIZE, OFF(max_body_bytes), 0, 1024, 64 << 20, M_SERVE, NULL},
    {"workers", 0, "POCKET_TTS_WORKERS", K_INT, OFF(workers), 0, 1, 64, M_SERVE, NULL},
    {"queue", 0, "POCKET_TTS_QUEUE", K_INT, OFF(queue_len), 0, 0, 4096, M_SERVE, NULL},
    {"http-threads", 0, "POCKET_TTS_HTTP_THREADS", K_INT, OFF(http_threads), 0, 1, 64, M_SERVE, NULL},
    {"max-connections", 0, "POCKET_TTS_MAX_CONNECTIONS", K_INT, OFF(max_connections), 0, 1, 100000, M_SERVE, NULL},
    {"max-conns-per-ip", 0, "POCKET_TTS_MAX_CONNS_PER_IP", K_INT, OFF(max_conns_per_ip), 0, 0, 100000, M_SERVE, NULL},
    {"drain-seconds", 0, "POCKET_TTS_DRAIN_SECONDS", K_INT, OFF(drain_s), 0, 0, 3600, M_SERVE, NULL},
    {"espeak-data", 0, "POCKET_TTS_ESPEAK_DATA", K_STR, OFF(espeak_data), SZ(espeak_data), 0, 0, M_ALL, NULL},
    {"cache-dir", 0, "POCKET_TTS_CACHE_DIR", K_STR, OFF(cache_dir), SZ(cache_dir), 0, 0, M_ALL, NULL},
    {"offline", 0, NULL, K_BOOL, OFF(offline), 0, 0, 1, M_ALL, NULL},
    {"language", 0, "POCKET_TTS_LANGUAGE", K_STR, OFF(language), SZ(language), 0, 0, M_ALL, NULL},
    {"model-dir", 0, "POCKET_TTS_MODEL_DIR", K_STR, OFF(model_dir), SZ(model_dir), 0, 0, M_ALL, NULL},
    {"allow-url-voices", 0, "POCKET_TTS_ALLOW_URL_VOICES", K_BOOL, OFF(allow_url_voices), 0, 0, 1, M_ALL, NULL},
    {"allow-abs-voice-paths", 0, "POCKET_TTS_ALLOW_ABS_VOICE_PATHS", K_BOOL, OFF(allow_abs_voice_paths), 0, 0, 1, M_ALL, NULL},
    {"quantize", 0, "POCKET_TTS_QUANTIZE", K_BOOL, OFF(quantize), 0, 0, 1, M_ALL, NULL},
    {"kokoro-dir", 0, "POCKET_TTS_KOKORO_DIR", K_STR, OFF(kokoro_dir), SZ(kokoro_dir), 0, 0, M_ALL, NULL},
    {"kokoro-weights", 0, "POCKET_TTS_KOKORO_WEIGHTS", K_STR, OFF(kokoro_weights), SZ(kokoro_weights), 0, 0, M_ALL, NULL},
    {"threads", 0, "POCKET_TTS_THREADS", K_INT, OFF(threads), 0, 1, 64, M_ALL, NULL},
    {"mp3-kbps", 0, "POCKET_TTS_MP3_KBPS", K_INT, OFF(mp3_kbps), 0, 0, 320, M_SERVE | M_SAY, NULL},
    {"opus-kbps", 0, "POCKET_TTS_OPUS_KBPS", K_INT, OFF(opus_kbps), 0, 0, 512, M_SERVE | M_SAY, NULL},
    {"aac-kbps", 0, "POCKET_TTS_AAC_KBPS", K_INT, OFF(aac_kbps), 0, 0, 512, M_SERVE | M_SAY, NULL},
    {"api-key", 0, "POCKET_TTS_API_KEYS", K_LIST, OFF(api_keys), SZ(api_keys), 0, 0, M_SERVE, NULL},
    {"api-keys-file", 0, "POCKET_TTS_API_KEYS_FILE", K_STR, OFF(api_keys_file), SZ(api_keys_file), 0, 0, M_SERVE, NULL},
    {"metrics-auth", 0, "POCKET_TTS_METRICS_AUTH", K_BOOL, OFF(metrics_auth), 0, 0, 1, M_SERVE, NULL},
    {"test-engine", 0, NULL, K_FLAG, OFF(test_engine), 0, 0, 0, M_ALL, NULL},
    {"model", 'm', NULL, K_STR, OFF(model), SZ(model), 0, 0, M_SAY | M_VOICES, NULL},
    {"voice", 'v', NULL, K_STR, OFF(voice), SZ(voice), 0, 0, M_SAY, NULL},
    {"format", 'f', NULL, K_ENUM, OFF(format), SZ(format), 0, 0, M_SAY, "mp3 opus aac flac wav pcm"},
    {"response-format", 0, NULL, K_ENUM, OFF(format), SZ(format), 0, 0, M_SAY, "mp3 opus aac flac wav pcm"},
    {"speed", 's', NULL, K_DOUBLE, OFF(speed), 0, 0.25, 4.0, M_SAY, NULL},
    {"stream", 0, NULL, K_BOOL, OFF(stream), 0, 0, 1, M_SAY, NULL},
    {"stream-format", 0, NULL, K_ENUM, OFF(stream_format), SZ(stream_format), 0, 0, M_SAY, "audio sse"},
    {"seed", 0, NULL, K_DOUBLE, OFF(seed), 0, 0, 9007199254740992.0, M_SAY, NULL},
    {"instructions", 0, NULL, K_BORROW, OFF(instructions), 0, 0, 0, M_SAY, NULL},
    {"output", 'o', NULL, K_BORROW, OFF(output), 0, 0, 0, M_SAY, NULL},
    {"json", 0, NULL, K_FLAG, OFF(json), 0, 0, 0, M_VOICES, NULL},
};
#define NOPTS (sizeof opts / sizeof opts[0])

static const char usage[] =
    "Usage: pockettts [serve] [options]        run the HTTP server (default)\n"
    "       pockettts say [options] [TEXT...]   speak TEXT (or stdin) to a file or stdout\n"
    "       pockettts voices [options]          list voices\n"
    "       pockettts export-voice IN OUT       voice state of IN (audio file or voice id)\n"
    "                                           to OUT (.safetensors), for pocket-tts\n"
    "       pockettts --help | --version\n"
    "\n"
    "Server options (flags win over environment):\n"
    "  --host ADDR             listen address [POCKET_TTS_HOST, default 0.0.0.0]\n"
    "  -p, --port N            listen port, 0 = any free port [POCKET_TTS_PORT, default 49112]\n"
    "  --voices-dir DIR        extra voices folder [POCKET_TTS_VOICES_DIR]\n"
    "  --stream-default BOOL   stream responses unless the request says otherwise\n"
    "                          [POCKET_TTS_STREAM_DEFAULT, default true]\n"
    "  --log-level LEVEL       DEBUG, INFO, WARNING, ERROR, OFF [POCKET_TTS_LOG_LEVEL, default INFO]\n"
    "  --max-input-chars N     max characters of input per request, 1..1000000\n"
    "                          [POCKET_TTS_MAX_INPUT_CHARS, default 4096]\n"
    "  --max-body-bytes N      max request body size, 1024..67108864\n"
    "                          [POCKET_TTS_MAX_BODY_BYTES, default 262144]\n"
    "  --workers N             synthesis workers, 1..64 [POCKET_TTS_WORKERS, default 2]\n"
    "  --queue N               requests waiting for a worker before 429, 0..4096\n"
    "                          [POCKET_TTS_QUEUE, default 16]\n"
    "  --http-threads N        HTTP thread pool size, 1..64 [POCKET_TTS_HTTP_THREADS, default 2]\n"
    "  --max-connections N     open HTTP connections [POCKET_TTS_MAX_CONNECTIONS, default 1000]\n"
    "  --max-conns-per-ip N    per client address, 0 = unlimited (behind a reverse proxy)\n"
    "                          [POCKET_TTS_MAX_CONNS_PER_IP, default 64]\n"
    "  --drain-seconds N       on SIGINT/SIGTERM, time running requests get to finish before\n"
    "                          they are cancelled, 0..3600 [POCKET_TTS_DRAIN_SECONDS, default 5]\n"
    "  --espeak-data DIR       espeak-ng data directory [POCKET_TTS_ESPEAK_DATA]\n"
    "  --mp3-kbps N            mp3 bit rate, 0 = default (160) [POCKET_TTS_MP3_KBPS]\n"
    "  --opus-kbps N           opus bit rate, 0 = default (48) [POCKET_TTS_OPUS_KBPS]\n"
    "  --aac-kbps N            aac bit rate, 0 = default (64) [POCKET_TTS_AAC_KBPS]\n"
    "  --cache-dir DIR         where downloaded model weights live\n"
    "                          [POCKET_TTS_CACHE_DIR, default ~/.cache/pockettts]\n"
    "  --offline               never download weights (also HF_HUB_OFFLINE=1)\n"
    "  --api-key KEY           require 'Authorization: Bearer KEY' on /v1/*; repeatable\n"
    "                          [POCKET_TTS_API_KEYS, comma-separated]\n"
    "  --api-keys-file PATH    more keys, one per line, # comments; re-read on SIGHUP\n"
    "                          [POCKET_TTS_API_KEYS_FILE]\n"
    "  --metrics-auth [BOOL]   /metrics needs a key too [POCKET_TTS_METRICS_AUTH, default false]\n"
    "\n"
    "pocket-tts engine (default when its weights load; else espeak):\n"
    "  --model-dir DIR         local model folder [POCKET_TTS_MODEL_DIR, default: upstream\n"
    "                          weights from Hugging Face, cached]\n"
    "  --language NAME         packaged config, e.g. english, french_24l\n"
    "                          [POCKET_TTS_LANGUAGE, default english]\n"
    "  --allow-url-voices [BOOL]      voices from http(s):// and hf:// URLs\n"
    "                          [POCKET_TTS_ALLOW_URL_VOICES, default false]\n"
    "  --allow-abs-voice-paths [BOOL] voices from absolute file paths\n"
    "                          [POCKET_TTS_ALLOW_ABS_VOICE_PATHS, default false]\n"
    "  --threads N             FlowLM threads, 1..64 [POCKET_TTS_THREADS, default: cores\n"
    "                          - 1 beside the Mimi thread; prompts use every core]\n"
    "  --quantize [BOOL]       int8 FlowLM weights: fastest, slightly approximate\n"
    "                          [POCKET_TTS_QUANTIZE, default false]\n"
    "\n"
    "Kokoro-82M engine (model \"kokoro\"; default only when pocket-tts is missing):\n"
    "  --kokoro-dir DIR        folder with config.json, the kokoro-v1_0 weights as\n"
    "                          .safetensors, voices/NAME.bin (af_heart, ...) and optionally\n"
    "                          lexicon/us_gold.json ... (else fetched from GitHub, cached)\n"
    "                          [POCKET_TTS_KOKORO_DIR, default: off]\n"
    "  --kokoro-weights PATH   weights file or hf:// URI (config from hexgrad/Kokoro-82M,\n"
    "                          voices from onnx-community/Kokoro-82M-v1.0-ONNX)\n"
    "                          [POCKET_TTS_KOKORO_WEIGHTS]\n"
    "\n"
    "say options (same meaning as the API's request fields):\n"
    "  -m, --model ID          tts-1, tts-1-hd, gpt-4o-mini-tts or an engine id (espeak, ...)\n"
    "  -v, --voice ID          voice id or OpenAI voice name (alloy, ash, ...)\n"
    "  -f, --format FMT        mp3, opus, aac, flac, wav, pcm (also --response-format);\n"
    "                          default from the output file's extension, else mp3 (wav if\n"
    "                          mp3 is not available)\n"
    "  -s, --speed X           0.25 .. 4.0, default 1.0\n"
    "  --instructions TEXT     accepted; engines may ignore it\n"
    "  --seed N                reproducible output (engines that sample), 0 .. 2^53\n"
    "  --stream, --no-stream   streamed encoding (WAV with open-ended header), default from\n"
    "                          --stream-default\n"
    "  --stream-format FMT     audio (default) or sse (OpenAI speech.audio.* events)\n"
    "  -o, --output FILE       write audio to FILE; default or '-' is stdout\n"
    "  TEXT...                 words to speak; without them stdin is read\n"
    "\n"
    "voices options:\n"
    "  -m, --model ID          only this engine's voices\n"
    "  --json                  print JSON (the /v1/voices body)\n"
    "\n"
    "Flags take a value as '--flag VALUE' or '--flag=VALUE'; booleans accept\n"
    "true/false/1/0/yes/no/on/off and '--no-FLAG'.\n";

const char *cfg_usage(void) { return usage; }

void cfg_defaults(cfg *c)
{
    memset(c, 0, sizeof *c);
    c->cmd = CFG_CMD_SERVE;
    snprintf(c->host, sizeof c->host, "0.0.0.0");
    c->port = 49112;
    c->stream_default = 1;
    c->log_level = LG_INFO;
    c->max_input_chars = 4096;
    c->max_body_bytes = 256 * 1024;
    c->workers = 2;
    c->queue_len = 16;
    c->http_threads = 2;
    c->drain_s = 5;
    c->max_connections = 1000;
    c->max_conns_per_ip = 64;
    c->speed = 1.0;
    c->seed = -1;
    c->stream = -1;
    snprintf(c->stream_format, sizeof c->stream_format, "audio");
}

int cfg_parse_bool(const char *s)
{
    if (!s) return -1;
    static const char *yes[] = {"true", "1", "yes", "on"};
    static const char *no[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(s, yes[i])) return 1;
        if (!strcasecmp(s, no[i])) return 0;
    }
    return -1;
}

/* Strict integer: optional sign, digits only, no trailing junk, fits in long long. */
static int parse_ll(const char *s, long long *out)
{
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s) return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double *out)
{
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

/* Applies one value to one option. `who` names the source for messages
 * ("--port" or "POCKET_TTS_PORT"). */
static int apply(cfg *c, const opt *o, const char *val, const char *who, char *err, size_t errlen)
{
    char *base = (char *)c;
    switch (o->kind) {
    case K_STR:
    case K_ENUM: {
        size_t n = strlen(val);
        if (n >= o->size)
            return err_set(err, errlen, ERR_INVAL, "%s: value too long (max %zu bytes)", who,
                           o->size - 1);
        if (o->kind == K_ENUM) {
            const char *p = o->choices;
            int found = 0;
            while (*p && !found) {
                size_t k = strcspn(p, " ");
                if (k == n && !strncasecmp(p, val, n)) found = 1;
                p += k;
                while (*p == ' ') p++;
            }
            if (!found)
                return err_set(err, errlen, ERR_INVAL, "%s: '%s' is not one of: %s", who, val,
                               o->choices);
            char *dst = base + o->off;
            for (size_t i = 0; i <= n; i++)
                dst[i] = (char)((val[i] >= 'A' && val[i] <= 'Z') ? val[i] + 32 : val[i]);
            return 0;
        }
        memcpy(base + o->off, val, n + 1);
        return 0;
    }
    case K_INT:
    case K_SIZE: {
        long long v;
        if (parse_ll(val, &v) || v < (long long)o->lo || v > (long long)o->hi)
            return err_set(err, errlen, ERR_INVAL, "%s: '%s' is not an integer in %.0f..%.0f",
                           who, val, o->lo, o->hi);
        if (o->kind == K_INT)
            *(int *)(base + o->off) = (int)v;
        else
            *(size_t *)(base + o->off) = (size_t)v;
        return 0;
    }
    case K_BOOL: {
        int b = cfg_parse_bool(val);
        if (b < 0)
            return err_set(err, errlen, ERR_INVAL, "%s: '%s' is not a boolean (true/false)", who,
                           val);
        *(int *)(base + o->off) = b;
        return 0;
    }
    case K_LEVEL: {
        int l = lg_level_from_name(val);
        if (l < 0)
            return err_set(err, errlen, ERR_INVAL,
                           "%s: '%s' is not a log level (DEBUG, INFO, WARNING, ERROR, OFF)", who,
                           val);
        *(int *)(base + o->off) = l;
        return 0;
    }
    case K_DOUBLE: {
        double d;
        if (parse_double(val, &d) || d < o->lo || d > o->hi)
            return err_set(err, errlen, ERR_INVAL, "%s: '%s' is not a number in %g..%g", who, val,
                           o->lo, o->hi);
        *(double *)(base + o->off) = d;
        return 0;
    }
    case K_LIST: {
        char *dst = base + o->off;
        size_t have = strlen(dst), n = strlen(val);
        if (have + (have ? 1 : 0) + n >= o->size)
            return err_set(err, errlen, ERR_INVAL, "%s: values too long together (max %zu bytes)",
                           who, o->size - 1);
        if (have && n) dst[have++] = ',';
        memcpy(dst + have, val, n + 1);
        return 0;
    }
    case K_BORROW:
        *(const char **)(base + o->off) = val;
        return 0;
    case K_FLAG:
        *(int *)(base + o->off) = 1;
        return 0;
    }
    return err_set(err, errlen, ERR_INTERNAL, "%s: bad option kind", who);
}

static const opt *find_long(const char *name, size_t n)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (strlen(opts[i].flag) == n && !strncmp(opts[i].flag, name, n)) return &opts[i];
    return NULL;
}

static const opt *find_short(char ch)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (opts[i].short_name && opts[i].short_name == ch) return &opts[i];
    return NULL;
}

static int takes_value(const opt *o) { return o->kind != K_FLAG && o->kind != K_BOOL; }

static int parse_cmd(const char *s, cfg_cmd *out)
{
    if (!strcmp(s, "serve")) *out = CFG_CMD_SERVE;
    else if (!strcmp(s, "say")) *out = CFG_CMD_SAY;
    else if (!strcmp(s, "voices")) *out = CFG_CMD_VOICES;
    else if (!strcmp(s, "export-voice")) *out = CFG_CMD_EXPORT_VOICE;
    else if (!strcmp(s, "help")) *out = CFG_CMD_HELP;
    else if (!strcmp(s, "version")) *out = CFG_CMD_VERSION;
    else return -1;
    return 0;
}

/* Does `next` read as the value of boolean flag o? A bool literal always does; any other
 * non-flag word does for flags of commands without positional arguments (so that
 * "--stream-default maybe" is refused as a bad value), but not for say's own --stream,
 * where the next word may be text to speak. */
static int bool_value_follows(const opt *o, const char *next)
{
    cfg_cmd ignored;
    if (cfg_parse_bool(next) >= 0) return 1;
    if (next[0] == '-' || (o->cmds & M_SAY && !(o->cmds & M_SERVE))) return 0;
    return parse_cmd(next, &ignored) != 0; /* "--offline serve": serve is the command */
}

static const char *cmd_name(cfg_cmd c)
{
    switch (c) {
    case CFG_CMD_SERVE: return "serve";
    case CFG_CMD_SAY: return "say";
    case CFG_CMD_VOICES: return "voices";
    case CFG_CMD_EXPORT_VOICE: return "export-voice";
    default: return "?";
    }
}

/* Finds the command word: the first positional argument (skipping flag values). */
static int find_command(int argc, char **argv, cfg_cmd *cmd, int *cmd_at, char *err, size_t errlen)
{
    *cmd = CFG_CMD_SERVE;
    *cmd_at = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) return 0;
        if (a[0] == '-' && a[1]) {
            const opt *o = NULL;
            if (a[1] == '-') {
                if (strchr(a, '=')) continue;
                o = find_long(a + 2, strlen(a + 2));
            } else if (!a[2]) {
                o = find_short(a[1]);
            }
            if (o && takes_value(o)) i++;
            else if (o && o->kind == K_BOOL && i + 1 < argc && bool_value_follows(o, argv[i + 1])) i++;
            continue;
        }
        if (parse_cmd(a, cmd))
            return err_set(err, errlen, ERR_INVAL,
                           "unknown command '%s' (expected serve, say or voices; see --help)", a);
        *cmd_at = i;
        return 0;
    }
    return 0;
}

static int append_text(cfg *c, const char *w, char *err, size_t errlen)
{
    size_t have = strlen(c->text_buf), n = strlen(w);
    if (have + (have ? 1 : 0) + n >= sizeof c->text_buf)
        return err_set(err, errlen, ERR_TOOBIG, "text arguments too long (max %zu bytes); use stdin",
                       sizeof c->text_buf - 1);
    if (have) c->text_buf[have++] = ' ';
    memcpy(c->text_buf + have, w, n + 1);
    c->text = c->text_buf;
    return 0;
}

int cfg_parse(cfg *c, int argc, char **argv, cfg_getenv_fn getenv_fn, char *err, size_t errlen)
{
    int rc, cmd_at;
    cfg_cmd cmd;
    if ((rc = find_command(argc, argv, &cmd, &cmd_at, err, errlen))) return rc;
    c->cmd = cmd;

    if (getenv_fn) {
        for (size_t i = 0; i < NOPTS; i++) {
            if (!opts[i].env) continue;
            const char *v = getenv_fn(opts[i].env);
            if (!v) continue;
            if ((rc = apply(c, &opts[i], v, opts[i].env, err, errlen))) return rc;
        }
    }

    int only_positional = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i == cmd_at) continue;
        if (!only_positional && !strcmp(a, "--")) {
            only_positional = 1;
            continue;
        }
        if (only_positional || a[0] != '-' || !a[1]) {
            if (c->cmd == CFG_CMD_SAY && strcmp(a, "-") != 0) {
                if ((rc = append_text(c, a, err, errlen))) return rc;
                continue;
            }
            if (c->cmd == CFG_CMD_SAY) continue; /* "-" = stdin, the default */
            if (c->cmd == CFG_CMD_EXPORT_VOICE && (!c->text || !c->output)) {
                if (!c->text) c->text = a;
                else c->output = a;
                continue;
            }
            return err_set(err, errlen, ERR_INVAL, "unexpected argument '%s' for '%s'", a,
                           cmd_name(c->cmd));
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            c->cmd = CFG_CMD_HELP;
            return 0;
        }
        if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
            c->cmd = CFG_CMD_VERSION;
            return 0;
        }
        const opt *o = NULL;
        const char *val = NULL;
        char who[80];
        int negated = 0;
        if (a[1] == '-') {
            const char *name = a + 2;
            const char *eq = strchr(name, '=');
            size_t n = eq ? (size_t)(eq - name) : strlen(name);
            o = find_long(name, n);
            if (!o && n > 3 && !strncmp(name, "no-", 3)) {
                o = find_long(name + 3, n - 3);
                if (o && o->kind != K_BOOL) o = NULL;
                negated = o != NULL;
            }
            if (!o)
                return err_set(err, errlen, ERR_INVAL, "unknown flag '%.*s' (see --help)",
                               (int)(n + 2), a);
            if (eq) val = eq + 1;
            snprintf(who, sizeof who, "--%s", o->flag);
            if (negated && val)
                return err_set(err, errlen, ERR_INVAL, "%s takes no value", a);
        } else {
            if (a[2]) return err_set(err, errlen, ERR_INVAL, "unknown flag '%s' (see --help)", a);
            o = find_short(a[1]);
            if (!o) return err_set(err, errlen, ERR_INVAL, "unknown flag '%s' (see --help)", a);
            snprintf(who, sizeof who, "-%c", a[1]);
        }
        if (!(o->cmds & (1u << c->cmd)))
            return err_set(err, errlen, ERR_INVAL, "%s does not apply to '%s' (see --help)", who,
                           cmd_name(c->cmd));
        if (o->kind == K_FLAG) {
            if (val) return err_set(err, errlen, ERR_INVAL, "%s takes no value", who);
            val = "1";
        } else if (o->kind == K_BOOL) {
            /* "--stream-default false" as well as "--stream-default=false" and "--stream" */
            if (!val && !negated && i + 1 < argc && bool_value_follows(o, argv[i + 1]))
                val = argv[++i];
            if (!val) val = negated ? "false" : "true";
        } else if (!val) {
            if (i + 1 >= argc)
                return err_set(err, errlen, ERR_INVAL, "%s needs a value (see --help)", who);
            val = argv[++i];
            if (val[0] == '-' && val[1] == '-')
                return err_set(err, errlen, ERR_INVAL, "%s needs a value, got the flag '%s'",
                               who, val);
        }
        if ((rc = apply(c, o, val, who, err, errlen))) return rc;
    }
    if (c->cmd == CFG_CMD_EXPORT_VOICE && (!c->text || !c->output))
        return err_set(err, errlen, ERR_INVAL,
                       "export-voice needs IN (audio file or voice id) and OUT (.safetensors)");
    return 0;
}
