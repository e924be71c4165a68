/* config.h — command line and environment: what to run and with which settings.
 *
 * One struct holds every setting of every command. Precedence: built-in defaults, then
 * POCKET_TTS_* environment variables, then flags (flags win). Parsing is table-driven
 * (config.c) so --help, the env names and the validation never drift apart. Unknown
 * flags, flags that do not apply to the chosen command, and out-of-range or malformed
 * values (from flags or env) are refused with a message naming the flag or variable.
 *
 * Ownership: cfg is caller-owned and has no heap memory. String fields are copied into
 * fixed arrays, except `text`, `instructions` and `output`, which borrow argv (valid for
 * the life of the process).
 */
#ifndef CORE_CONFIG_H
#define CORE_CONFIG_H

#include <stddef.h>

#define PT_VERSION "0.1.0"

typedef enum cfg_cmd {
    CFG_CMD_SERVE = 0,
    CFG_CMD_SAY,
    CFG_CMD_VOICES,
    CFG_CMD_EXPORT_VOICE,
    CFG_CMD_HELP,
    CFG_CMD_VERSION,
} cfg_cmd;

typedef struct cfg {
    cfg_cmd cmd;
    /* server */
    char host[256];          /* POCKET_TTS_HOST, default 0.0.0.0 */
    int port;                /* POCKET_TTS_PORT, default 49112; 0 = any free port */
    char voices_dir[1024];   /* POCKET_TTS_VOICES_DIR, "" = none */
    int stream_default;      /* POCKET_TTS_STREAM_DEFAULT, default 1 */
    int log_level;           /* POCKET_TTS_LOG_LEVEL, LG_* from core/log.h, default INFO */
    size_t max_input_chars;  /* code points per request input, default 4096 */
    size_t max_body_bytes;   /* HTTP request body cap, default 256 KiB */
    int workers;             /* synthesis worker threads, default 2 */
    int queue_len;           /* jobs waiting for a worker before 429, default 16 */
    int http_threads;        /* libmicrohttpd thread pool size, default 2 */
    int max_connections;     /* open HTTP connections, default 1000 */
    int max_conns_per_ip;    /* per client address, default 64; 0 = unlimited (reverse proxy) */
    int drain_s;             /* on SIGINT/SIGTERM: seconds running requests may finish, default 5 */
    char espeak_data[1024];  /* espeak-ng data dir, "" = library default */
    int test_engine;         /* hidden: add the built-in "beep" test engine */
    char cache_dir[1024];    /* model downloads; "" = hf default (POCKET_TTS_CACHE_DIR, ~/.cache) */
    int offline;             /* never download weights */
    char language[64];       /* pocket-tts packaged config, "" = english */
    char model_dir[1024];    /* local pocket-tts model folder, "" = upstream hf:// weights */
    int allow_url_voices;    /* http(s):// and hf:// voices */
    int allow_abs_voice_paths; /* "/abs/file.wav" voices */
    int threads;             /* pocket-tts FlowLM threads, 0 = engine default */
    int quantize;            /* pocket-tts FlowLM int8 weights (fastest, approximate) */
    char kokoro_dir[1024];   /* Kokoro model folder (config.json, weights .safetensors, voices/NAME.bin,
                              * optional lexicon/); "" = Kokoro off unless kokoro_weights */
    char kokoro_weights[1024]; /* Kokoro weights file or hf:// / https:// URI; "" = from kokoro_dir */
    int mp3_kbps, opus_kbps, aac_kbps; /* encoder bit rates, 0 = format default */
    char api_keys[8192];     /* --api-key (repeatable) and POCKET_TTS_API_KEYS, comma-joined;
                              * "" = no keys (open server). Secrets: never print. */
    char api_keys_file[1024]; /* POCKET_TTS_API_KEYS_FILE: one key per line, # comments */
    int metrics_auth;        /* /metrics needs a key too (when keys are set) */
    /* say / voices */
    char model[64];          /* "" = default engine */
    char voice[128];         /* "" = engine default */
    char format[16];         /* response_format; "" = "wav" for say */
    double speed;            /* 0.25 .. 4.0 */
    int stream;              /* -1 = stream_default */
    char stream_format[8];   /* "audio" or "sse" */
    const char *instructions; /* borrowed from argv or NULL */
    double seed;             /* -1 = none; else an integer 0 .. 2^53 */
    const char *output;      /* borrowed; NULL or "-" = stdout; export-voice: OUT */
    const char *text;        /* borrowed; joined positional words live in text_buf;
                                export-voice: IN (audio file or voice id) */
    char text_buf[8192];
    int json;                /* voices: print JSON */
} cfg;

/* Returns the value of an environment variable or NULL (getenv in main, a table in tests). */
typedef const char *(*cfg_getenv_fn)(const char *name);

void cfg_defaults(cfg *c);

/* Parses argv (argv[0] is the program) over the defaults and env. 0 or ERR_INVAL with
 * a one-line reason in err. */
int cfg_parse(cfg *c, int argc, char **argv, cfg_getenv_fn getenv_fn, char *err, size_t errlen);

/* The --help text (static). */
const char *cfg_usage(void);

/* "true/false/1/0/yes/no/on/off" (any case) -> 1/0; -1 if none of those. */
int cfg_parse_bool(const char *s);

#endif
