/* test_auth.c — API key parsing (list, file) and the Bearer check: the scheme in any
 * case, exact key match only (no prefix, no longer token), empty set = open, bad keys and
 * caps refused with a message that never contains the key, and the config rows
 * (--api-key repeatable and joined with POCKET_TTS_API_KEYS). */
#include "ut.h"
#include "core/config.h"
#include "core/err.h"
#include "server/auth.h"

#include <unistd.h>

static void t_empty_is_open(ut_ctx *t)
{
    auth_keys *k = NULL;
    char err[256];
    UT_EQ_INT(t, 0, auth_new(&k, err, sizeof err));
    UT_EQ_INT(t, 0, auth_count(k));
    UT_EQ_INT(t, AUTH_OK, auth_check(k, NULL));
    UT_EQ_INT(t, AUTH_OK, auth_check(k, "Bearer anything"));
    UT_EQ_INT(t, AUTH_OK, auth_check(NULL, "Basic xyz"));
    auth_free(k);
    auth_free(NULL);
}

static void t_list_and_check(ut_ctx *t)
{
    auth_keys *k = NULL;
    char err[256];
    UT_EQ_INT(t, 0, auth_new(&k, err, sizeof err));
    UT_EQ_INT(t, 0, auth_add_list(k, " sk-one , sk-two,,sk-one", "--api-key", err, sizeof err));
    UT_EQ_INT(t, 2, auth_count(k)); /* trimmed, empty skipped, duplicate folded */
    UT_EQ_INT(t, AUTH_OK, auth_check(k, "Bearer sk-one"));
    UT_EQ_INT(t, AUTH_OK, auth_check(k, "bearer  sk-two "));
    UT_EQ_INT(t, AUTH_OK, auth_check(k, "BEARER\tsk-two"));
    UT_EQ_INT(t, AUTH_BAD, auth_check(k, "Bearer sk-on"));     /* prefix */
    UT_EQ_INT(t, AUTH_BAD, auth_check(k, "Bearer sk-one1"));   /* longer */
    UT_EQ_INT(t, AUTH_BAD, auth_check(k, "Bearer SK-ONE"));    /* keys are case-sensitive */
    UT_EQ_INT(t, AUTH_BAD, auth_check(k, "Bearer sk-one sk-two"));
    UT_EQ_INT(t, AUTH_MISSING, auth_check(k, NULL));
    UT_EQ_INT(t, AUTH_MISSING, auth_check(k, ""));
    UT_EQ_INT(t, AUTH_MISSING, auth_check(k, "Bearer"));
    UT_EQ_INT(t, AUTH_MISSING, auth_check(k, "Bearer   "));
    UT_EQ_INT(t, AUTH_MISSING, auth_check(k, "Basic c2stb25lOg=="));
    UT_EQ_INT(t, AUTH_MISSING, auth_check(k, "Bearersk-one"));
    /* a token longer than any slot matches nothing */
    char big[600];
    memset(big, 'a', sizeof big);
    memcpy(big, "Bearer ", 7);
    big[sizeof big - 1] = 0;
    UT_EQ_INT(t, AUTH_BAD, auth_check(k, big));
    auth_free(k);
}

static void t_bad_keys(ut_ctx *t)
{
    auth_keys *k = NULL;
    char err[256];
    UT_EQ_INT(t, 0, auth_new(&k, err, sizeof err));
    err[0] = 0;
    UT_EQ_INT(t, ERR_INVAL, auth_add_list(k, "good,sécret", "--api-key", err, sizeof err));
    if (!strstr(err, "--api-key (item 2)") || strstr(err, "cret"))
        ut_fail(t, __FILE__, __LINE__, "message should name the item, not the key: \"%s\"", err);
    char longkey[AUTH_MAX_KEY_LEN + 2];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = 0;
    UT_EQ_INT(t, ERR_INVAL, auth_add_list(k, longkey, "X", err, sizeof err));
    UT_CHECK(t, !strstr(err, "kkkk"));
    longkey[AUTH_MAX_KEY_LEN] = 0; /* exactly the maximum length is fine */
    UT_EQ_INT(t, 0, auth_add_list(k, longkey, "X", err, sizeof err));
    char tok[AUTH_MAX_KEY_LEN + 16];
    snprintf(tok, sizeof tok, "Bearer %s", longkey);
    UT_EQ_INT(t, AUTH_OK, auth_check(k, tok));
    auth_free(k);
    /* the count cap */
    UT_EQ_INT(t, 0, auth_new(&k, err, sizeof err));
    int rc = 0;
    for (int i = 0; i <= AUTH_MAX_KEYS && !rc; i++) {
        char one[32];
        snprintf(one, sizeof one, "key%d", i);
        rc = auth_add_list(k, one, "X", err, sizeof err);
    }
    UT_EQ_INT(t, ERR_TOOBIG, rc);
    UT_EQ_INT(t, AUTH_MAX_KEYS, auth_count(k));
    auth_free(k);
}

static void t_file(ut_ctx *t)
{
    char path[] = "/tmp/pockettts-keys-XXXXXX";
    int fd = mkstemp(path);
    UT_CHECK(t, fd >= 0);
    const char text[] = "# team keys\n\nsk-alpha\n   sk-beta  \r\n# sk-commented\n\tsk-gamma";
    UT_CHECK(t, write(fd, text, sizeof text - 1) == (ssize_t)(sizeof text - 1));
    close(fd);
    auth_keys *k = NULL;
    char err[512];
    UT_EQ_INT(t, 0, auth_new(&k, err, sizeof err));
    UT_EQ_INT(t, 0, auth_add_file(k, path, err, sizeof err));
    UT_EQ_INT(t, 3, auth_count(k));
    UT_EQ_INT(t, AUTH_OK, auth_check(k, "Bearer sk-beta"));
    UT_EQ_INT(t, AUTH_OK, auth_check(k, "Bearer sk-gamma"));
    UT_EQ_INT(t, AUTH_BAD, auth_check(k, "Bearer sk-commented"));
    UT_EQ_INT(t, AUTH_BAD, auth_check(k, "Bearer # team keys"));
    auth_free(k);
    /* a bad line is reported by line number, without the key */
    FILE *f = fopen(path, "w");
    UT_CHECK(t, f != NULL);
    fputs("ok-key\nbad key here\n", f);
    fclose(f);
    UT_EQ_INT(t, 0, auth_new(&k, err, sizeof err));
    UT_EQ_INT(t, ERR_INVAL, auth_add_file(k, path, err, sizeof err));
    if (!strstr(err, ":2:") || strstr(err, "here"))
        ut_fail(t, __FILE__, __LINE__, "expected the line number and no key text: \"%s\"", err);
    auth_free(k);
    unlink(path);
    UT_EQ_INT(t, 0, auth_new(&k, err, sizeof err));
    UT_EQ_INT(t, ERR_IO, auth_add_file(k, path, err, sizeof err));
    auth_free(k);
}

static const char *const *fake_env;
static const char *env_get(const char *name)
{
    for (size_t i = 0; fake_env && fake_env[i]; i += 2)
        if (!strcmp(fake_env[i], name)) return fake_env[i + 1];
    return NULL;
}

static void t_config_rows(ut_ctx *t)
{
    cfg c;
    char err[256];
    static const char *const env[] = {"POCKET_TTS_API_KEYS", "e1,e2", "POCKET_TTS_METRICS_AUTH",
                                      "true", NULL};
    fake_env = env;
    cfg_defaults(&c);
    const char *argv[] = {"pockettts", "serve", "--api-key", "f1", "--api-key=f2",
                          "--api-keys-file", "/etc/k"};
    UT_EQ_INT(t, 0, cfg_parse(&c, 7, (char **)argv, env_get, err, sizeof err));
    UT_EQ_STR(t, "e1,e2,f1,f2", c.api_keys);
    UT_EQ_STR(t, "/etc/k", c.api_keys_file);
    UT_EQ_INT(t, 1, c.metrics_auth);
    fake_env = NULL;
    cfg_defaults(&c);
    UT_EQ_STR(t, "", c.api_keys);
    UT_EQ_INT(t, 0, c.metrics_auth);
    const char *say[] = {"pockettts", "say", "--api-key", "x", "hi"};
    UT_EQ_INT(t, ERR_INVAL, cfg_parse(&c, 5, (char **)say, env_get, err, sizeof err));
    UT_CHECK(t, strstr(cfg_usage(), "--api-key") && strstr(cfg_usage(), "--api-keys-file") &&
                    strstr(cfg_usage(), "--metrics-auth"));
}

static const ut_case cases[] = {
    {"empty_is_open", t_empty_is_open},
    {"list_and_check", t_list_and_check},
    {"bad_keys", t_bad_keys},
    {"file", t_file},
    {"config_rows", t_config_rows},
};
UT_SUITE(auth, cases)
