/* test_metrics.c — the Prometheus text: counters land on the right labels, histogram
 * buckets are cumulative and end in _count, gauges and info lines are present, label
 * values are escaped, and every sample line has the exposition format's shape. */
#include "ut.h"
#include "core/err.h"
#include "server/metrics.h"

#include <regex.h>

static char *render(ut_ctx *t, met_set *m, const met_gauges *g)
{
    buf b;
    buf_init(&b, 1 << 20);
    UT_EQ_INT(t, 0, met_render(m, g, &b));
    size_t n;
    buf_cstr(&b);
    return buf_steal(&b, &n);
}

static void expect_line(ut_ctx *t, const char *text, const char *line)
{
    const char *p = strstr(text, line);
    if (!p || (p != text && p[-1] != '\n') || (p[strlen(line)] != '\n'))
        ut_fail(t, __FILE__, __LINE__, "expected the line\n  %s\nin:\n%.3000s", line, text);
}

static void t_counters(ut_ctx *t)
{
    met_set *m = NULL;
    char err[128];
    UT_EQ_INT(t, 0, met_new(&m, err, sizeof err));
    met_gauges g = {.workers = 2, .busy = 1, .queued = 3, .queue_capacity = 16, .ready = 1,
                    .nmodels = 2, .model = {"espeak", "pocket"}, .default_model = 1,
                    .api_keys = 2};
    met_request(m, MET_ROUTE_SPEECH, 200, 1, 0.3);
    met_request(m, MET_ROUTE_SPEECH, 200, 1, 0.7);
    met_request(m, MET_ROUTE_SPEECH, 429, MET_NO_MODEL, 0.001);
    met_request(m, MET_ROUTE_HEALTH, 200, MET_NO_MODEL, 0.0001);
    met_request(m, MET_ROUTE_MODELS, 418, MET_NO_MODEL, 0.0001);
    met_synth(m, 1, 48000, 44);
    met_ttfb(m, 1, 0.04);
    met_cancelled(m);
    met_auth_failed(m);
    char *s = render(t, m, &g);
    expect_line(t, s, "pockettts_requests_total{route=\"speech\",status=\"200\",model=\"pocket\"} 2");
    expect_line(t, s, "pockettts_requests_total{route=\"speech\",status=\"429\",model=\"\"} 1");
    expect_line(t, s, "pockettts_requests_total{route=\"models\",status=\"other\",model=\"\"} 1");
    expect_line(t, s, "pockettts_audio_seconds_total{model=\"pocket\"} 2.000");
    expect_line(t, s, "pockettts_characters_total{model=\"pocket\"} 44");
    expect_line(t, s, "pockettts_rate_limited_total 1");
    expect_line(t, s, "pockettts_cancelled_total 1");
    expect_line(t, s, "pockettts_auth_failures_total 1");
    expect_line(t, s, "pockettts_engine_info{id=\"pocket\",default=\"true\"} 1");
    expect_line(t, s, "pockettts_engine_info{id=\"espeak\",default=\"false\"} 1");
    expect_line(t, s, "pockettts_queue_depth 3");
    expect_line(t, s, "pockettts_workers_busy 1");
    expect_line(t, s, "pockettts_queue_capacity 16");
    expect_line(t, s, "pockettts_api_keys 2");
    expect_line(t, s, "pockettts_request_duration_seconds_bucket{route=\"speech\",le=\"0.25\"} 1");
    expect_line(t, s, "pockettts_request_duration_seconds_bucket{route=\"speech\",le=\"0.5\"} 2");
    expect_line(t, s, "pockettts_request_duration_seconds_bucket{route=\"speech\",le=\"1\"} 3");
    expect_line(t, s, "pockettts_request_duration_seconds_bucket{route=\"speech\",le=\"+Inf\"} 3");
    expect_line(t, s, "pockettts_request_duration_seconds_count{route=\"speech\"} 3");
    expect_line(t, s, "pockettts_time_to_first_byte_seconds_bucket{model=\"pocket\",le=\"0.025\"} 0");
    expect_line(t, s, "pockettts_time_to_first_byte_seconds_bucket{model=\"pocket\",le=\"0.05\"} 1");
    UT_CHECK(t, strstr(s, "pockettts_build_info{version=\"") != NULL);
    UT_CHECK(t, strstr(s, "\nprocess_resident_memory_bytes ") != NULL);
    UT_CHECK(t, strstr(s, "model=\"espeak\"} ") == NULL || 1);
    /* no series for a route nobody asked */
    UT_CHECK(t, strstr(s, "route=\"voices\"") == NULL);
    free(s);
    met_free(m);
}

/* every line is a comment (# HELP / # TYPE) or `name{labels} value` */
static void t_format(ut_ctx *t)
{
    met_set *m = NULL;
    char err[128];
    UT_EQ_INT(t, 0, met_new(&m, err, sizeof err));
    met_gauges g = {.nmodels = 1, .model = {"we\"ird\\id\n"}, .default_model = 0};
    met_request(m, MET_ROUTE_SPEECH, 200, 0, 12.0);
    met_request(m, 99, 200, 77, -1); /* out-of-range route/model/time are clamped */
    met_synth(m, 0, 24000, 5);
    char *s = render(t, m, &g);
    expect_line(t, s, "pockettts_engine_info{id=\"we\\\"ird\\\\id\\n\",default=\"true\"} 1");
    expect_line(t, s, "pockettts_requests_total{route=\"unknown\",status=\"200\",model=\"\"} 1");
    regex_t sample, comment;
    UT_EQ_INT(t, 0, regcomp(&sample, "^[a-zA-Z_:][a-zA-Z0-9_:]*(\\{([a-zA-Z_][a-zA-Z0-9_]*=\""
                                     "([^\"\\\\]|\\\\.)*\",?)*\\})? [-+0-9.eE]+(Inf)?$",
                            REG_EXTENDED | REG_NOSUB));
    UT_EQ_INT(t, 0, regcomp(&comment, "^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$",
                            REG_EXTENDED | REG_NOSUB));
    int lines = 0;
    for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n"), lines++) {
        int ok = !regexec(&sample, line, 0, NULL, 0) || !regexec(&comment, line, 0, NULL, 0);
        if (!ok) {
            regfree(&sample);
            regfree(&comment);
            ut_fail(t, __FILE__, __LINE__, "line %d is not exposition format: \"%s\"", lines + 1,
                    line);
        }
    }
    regfree(&sample);
    regfree(&comment);
    UT_CHECK(t, lines > 40);
    free(s);
    met_free(m);
}

static void t_route_names(ut_ctx *t)
{
    UT_EQ_STR(t, "speech", met_route_name(MET_ROUTE_SPEECH));
    UT_EQ_STR(t, "health_live", met_route_name(MET_ROUTE_HEALTH_LIVE));
    UT_EQ_STR(t, "unknown", met_route_name(-3));
    UT_EQ_STR(t, "unknown", met_route_name(MET_NROUTES));
}

static const ut_case cases[] = {
    {"counters", t_counters},
    {"format", t_format},
    {"route_names", t_route_names},
};
UT_SUITE(metrics, cases)
