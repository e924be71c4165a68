/* test_config.c — defaults, env, flags winning over env, unknown flags and bad values
 * refused with a message naming the culprit, command detection, say text joining. */
#include "ut.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"

/* a fake environment: NULL-terminated name/value pairs */
static const char *const *fake_env;
static const char *env_get(const char *name)
{
    for (size_t i = 0; fake_env && fake_env[i]; i += 2)
        if (!strcmp(fake_env[i], name)) return fake_env[i + 1];
    return NULL;
}

static int parse(cfg *c, const char *const *env, int argc, const char *const *argv, char *err, size_t n)
{
    fake_env = env;
    cfg_defaults(c);
    err[0] = 0;
    return cfg_parse(c, argc, (char **)argv, env_get, err, n);
}

static void t_defaults(ut_ctx *t)
{
    cfg c;
    char err[256];
    const char *argv[] = {"pockettts"};
    UT_EQ_INT(t, 0, parse(&c, NULL, 1, argv, err, sizeof err));
    UT_EQ_INT(t, CFG_CMD_SERVE, c.cmd);
    UT_EQ_STR(t, "0.0.0.0", c.host);
    UT_EQ_INT(t, 49112, c.port);
    UT_EQ_INT(t, 1, c.stream_default);
    UT_EQ_INT(t, LG_INFO, c.log_level);
    UT_EQ_INT(t, 4096, c.max_input_chars);
    UT_EQ_STR(t, "", c.voices_dir);
}

static void t_env_then_flags(ut_ctx *t)
{
    cfg c;
    char err[256];
    static const char *const env[] = {"POCKET_TTS_HOST", "127.0.0.1", "POCKET_TTS_PORT", "5000",
                                      "POCKET_TTS_STREAM_DEFAULT", "false",
                                      "POCKET_TTS_LOG_LEVEL", "debug",
                                      "POCKET_TTS_VOICES_DIR", "/tmp/v",
                                      "POCKET_TTS_WORKERS", "3", NULL};
    const char *argv1[] = {"pockettts", "serve"};
    UT_EQ_INT(t, 0, parse(&c, env, 2, argv1, err, sizeof err));
    UT_EQ_STR(t, "127.0.0.1", c.host);
    UT_EQ_INT(t, 5000, c.port);
    UT_EQ_INT(t, 0, c.stream_default);
    UT_EQ_INT(t, LG_DEBUG, c.log_level);
    UT_EQ_STR(t, "/tmp/v", c.voices_dir);
    UT_EQ_INT(t, 3, c.workers);
    /* flags win, in both spellings */
    const char *argv2[] = {"pockettts", "serve", "--port", "6000", "--host=::1",
                           "--stream-default", "true", "--workers=5", "--log-level", "ERROR"};
    UT_EQ_INT(t, 0, parse(&c, env, 10, argv2, err, sizeof err));
    UT_EQ_INT(t, 6000, c.port);
    UT_EQ_STR(t, "::1", c.host);
    UT_EQ_INT(t, 1, c.stream_default);
    UT_EQ_INT(t, 5, c.workers);
    UT_EQ_INT(t, LG_ERROR, c.log_level);
    const char *argv4[] = {"pockettts", "--offline", "serve", "--stream-default", "off"};
    UT_EQ_INT(t, 0, parse(&c, NULL, 5, argv4, err, sizeof err));
    UT_EQ_INT(t, CFG_CMD_SERVE, c.cmd);
    UT_EQ_INT(t, 1, c.offline);
    UT_EQ_INT(t, 0, c.stream_default);
    const char *argv3[] = {"pockettts", "--no-stream-default"};
    UT_EQ_INT(t, 0, parse(&c, NULL, 2, argv3, err, sizeof err));
    UT_EQ_INT(t, 0, c.stream_default);
}

typedef struct {
    const char *argv[6];
    const char *env_name, *env_val;
    const char *msg_part; /* must appear in err */
} bad_case;

static void t_refused(ut_ctx *t)
{
    static const bad_case cases[] = {
        {{"pockettts", "--bogus"}, NULL, NULL, "unknown flag '--bogus'"},
        {{"pockettts", "serve", "-x"}, NULL, NULL, "unknown flag '-x'"},
        {{"pockettts", "--port", "abc"}, NULL, NULL, "--port"},
        {{"pockettts", "--port", "70000"}, NULL, NULL, "--port"},
        {{"pockettts", "--port", "12x"}, NULL, NULL, "--port"},
        {{"pockettts", "--port"}, NULL, NULL, "needs a value"},
        {{"pockettts", "--workers", "0"}, NULL, NULL, "--workers"},
        {{"pockettts", "--log-level", "LOUD"}, NULL, NULL, "log level"},
        {{"pockettts", "--stream-default=maybe"}, NULL, NULL, "boolean"},
        {{"pockettts", "serve", "--stream-default", "maybe"}, NULL, NULL, "--stream-default"},
        {{"pockettts", "--max-input-chars", "-5"}, NULL, NULL, "--max-input-chars"},
        {{"pockettts", "frobnicate"}, NULL, NULL, "unknown command 'frobnicate'"},
        {{"pockettts", "serve", "extra"}, NULL, NULL, "unexpected argument"},
        {{"pockettts", "serve", "--voice", "x"}, NULL, NULL, "does not apply"},
        {{"pockettts", "say", "--speed", "5", "hi"}, NULL, NULL, "--speed"},
        {{"pockettts", "say", "--format", "ogg", "hi"}, NULL, NULL, "--format"},
        {{"pockettts", "say", "--stream-format", "x", "hi"}, NULL, NULL, "--stream-format"},
        {{"pockettts"}, "POCKET_TTS_PORT", "http", "POCKET_TTS_PORT"},
        {{"pockettts"}, "POCKET_TTS_STREAM_DEFAULT", "nah", "POCKET_TTS_STREAM_DEFAULT"},
        {{"pockettts"}, "POCKET_TTS_LOG_LEVEL", "verbose", "POCKET_TTS_LOG_LEVEL"},
        {{"pockettts"}, "POCKET_TTS_MAX_INPUT_CHARS", "0", "POCKET_TTS_MAX_INPUT_CHARS"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int argc = 0;
        while (argc < 6 && cases[i].argv[argc]) argc++;
        const char *env[3] = {cases[i].env_name, cases[i].env_val, NULL};
        cfg c;
        char err[256];
        int rc = parse(&c, cases[i].env_name ? env : NULL, argc, cases[i].argv, err, sizeof err);
        if (rc != ERR_INVAL)
            ut_fail(t, __FILE__, __LINE__, "case %zu: expected ERR_INVAL, got %d", i, rc);
        if (!strstr(err, cases[i].msg_part))
            ut_fail(t, __FILE__, __LINE__, "case %zu: expected message containing \"%s\", got \"%s\"",
                    i, cases[i].msg_part, err);
    }
}

static void t_say(ut_ctx *t)
{
    cfg c;
    char err[256];
    const char *argv[] = {"pockettts", "say", "-v", "alloy", "--format=WAV", "Hello", "world",
                          "-s", "1.5", "-o", "x.wav", "--stream=false"};
    UT_EQ_INT(t, 0, parse(&c, NULL, 12, argv, err, sizeof err));
    UT_EQ_INT(t, CFG_CMD_SAY, c.cmd);
    UT_EQ_STR(t, "alloy", c.voice);
    UT_EQ_STR(t, "wav", c.format);
    UT_EQ_STR(t, "Hello world", c.text);
    UT_NEAR(t, 1.5, c.speed, 1e-9);
    UT_EQ_STR(t, "x.wav", c.output);
    UT_EQ_INT(t, 0, c.stream);
    const char *argv2[] = {"pockettts", "say", "--", "--not-a-flag"};
    UT_EQ_INT(t, 0, parse(&c, NULL, 4, argv2, err, sizeof err));
    UT_EQ_STR(t, "--not-a-flag", c.text);
    const char *argv3[] = {"pockettts", "say"};
    UT_EQ_INT(t, 0, parse(&c, NULL, 2, argv3, err, sizeof err));
    UT_CHECK(t, c.text == NULL);
    UT_EQ_INT(t, -1, c.stream);
}

static void t_help_version(ut_ctx *t)
{
    cfg c;
    char err[256];
    const char *a1[] = {"pockettts", "--help"};
    UT_EQ_INT(t, 0, parse(&c, NULL, 2, a1, err, sizeof err));
    UT_EQ_INT(t, CFG_CMD_HELP, c.cmd);
    const char *a2[] = {"pockettts", "say", "--version"};
    UT_EQ_INT(t, 0, parse(&c, NULL, 3, a2, err, sizeof err));
    UT_EQ_INT(t, CFG_CMD_VERSION, c.cmd);
    const char *a3[] = {"pockettts", "voices", "--json"};
    UT_EQ_INT(t, 0, parse(&c, NULL, 3, a3, err, sizeof err));
    UT_EQ_INT(t, CFG_CMD_VOICES, c.cmd);
    UT_EQ_INT(t, 1, c.json);
}

/* every documented flag appears in --help */
static void t_usage_lists_flags(ut_ctx *t)
{
    static const char *flags[] = {"--host", "--port", "--voices-dir", "--stream-default",
                                  "--log-level", "--max-input-chars", "--max-body-bytes",
                                  "--workers", "--queue", "--http-threads", "--model", "--voice",
                                  "--format", "--speed", "--instructions", "--stream",
                                  "--stream-format", "--output", "--json", "--model-dir",
                                  "--language", "--allow-url-voices", "--allow-abs-voice-paths",
                                  "--threads", "--cache-dir", "--offline", "--seed", "export-voice",
                                  "POCKET_TTS_HOST", "POCKET_TTS_PORT", "POCKET_TTS_VOICES_DIR",
                                  "POCKET_TTS_STREAM_DEFAULT", "POCKET_TTS_LOG_LEVEL"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if (!strstr(cfg_usage(), flags[i]))
            ut_fail(t, __FILE__, __LINE__, "usage text lacks %s", flags[i]);
}

static void t_pocket_and_export(ut_ctx *t)
{
    cfg c;
    char err[256];
    static const char *const env[] = {"POCKET_TTS_LANGUAGE", "french_24l", "POCKET_TTS_THREADS", "3", NULL};
    const char *a1[] = {"pockettts", "serve", "--model-dir", "/m", "--allow-url-voices",
                        "--allow-abs-voice-paths", "true", "--threads", "4"};
    UT_EQ_INT(t, 0, parse(&c, env, 9, a1, err, sizeof err));
    UT_EQ_STR(t, "/m", c.model_dir);
    UT_EQ_STR(t, "french_24l", c.language);
    UT_EQ_INT(t, 1, c.allow_url_voices);
    UT_EQ_INT(t, 1, c.allow_abs_voice_paths);
    UT_EQ_INT(t, 4, c.threads);
    const char *a2[] = {"pockettts", "export-voice", "in.wav", "out.safetensors", "--model-dir=/m"};
    UT_EQ_INT(t, 0, parse(&c, NULL, 5, a2, err, sizeof err));
    UT_EQ_INT(t, CFG_CMD_EXPORT_VOICE, c.cmd);
    UT_EQ_STR(t, "in.wav", c.text);
    UT_EQ_STR(t, "out.safetensors", c.output);
    const char *a3[] = {"pockettts", "export-voice", "in.wav"};
    UT_EQ_INT(t, ERR_INVAL, parse(&c, NULL, 3, a3, err, sizeof err));
    UT_CHECK(t, strstr(err, "export-voice needs") != NULL);
    const char *a4[] = {"pockettts", "export-voice", "a", "b", "c"};
    UT_EQ_INT(t, ERR_INVAL, parse(&c, NULL, 5, a4, err, sizeof err));
    const char *a5[] = {"pockettts", "--threads", "0"};
    UT_EQ_INT(t, ERR_INVAL, parse(&c, NULL, 3, a5, err, sizeof err));
}

static const ut_case cases[] = {
    {"pocket_and_export", t_pocket_and_export},
    {"defaults", t_defaults},   {"env_then_flags", t_env_then_flags},
    {"refused", t_refused},     {"say", t_say},
    {"help_version", t_help_version}, {"usage_lists_flags", t_usage_lists_flags},
};
UT_SUITE(config, cases)
