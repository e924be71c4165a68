/* metrics.c — see metrics.h.
 *
 * Histograms keep per-bucket (non-cumulative) counts, the count and the sum in
 * microseconds; render turns them cumulative, so `le` buckets are monotonic by
 * construction and the +Inf bucket equals _count. Series whose counters are all zero
 * are left out (Prometheus treats a missing series as "no data yet"), except the
 * gauges and info metrics, which are always there.
 */
#include "server/metrics.h"
#include "core/config.h"
#include "core/err.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const double bucket_le[MET_NBUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                               2.5,   5,    10,    30,    60,  120,  300};

static const int status_code[] = {0, 200, 204, 400, 401, 404, 405, 413, 415, 429, 500, 503};
#define NSTATUS (sizeof status_code / sizeof status_code[0] + 1) /* + "other" */
#define NMODEL (MET_MAX_MODELS + 1)

static const char *const route_name[MET_NROUTES] = {
    "unknown", "index", "health", "health_live", "metrics", "models", "model",
    "audio_models", "voices", "audio_voices", "speech"};

typedef struct hist {
    atomic_ullong bucket[MET_NBUCKETS + 1]; /* last = above every finite bound */
    atomic_ullong count;
    atomic_ullong sum_us;
} hist;

struct met_set {
    atomic_ullong req[MET_NROUTES][NSTATUS][NMODEL];
    hist dur[MET_NROUTES];
    hist ttfb[NMODEL];
    atomic_ullong samples[NMODEL];
    atomic_ullong chars[NMODEL];
    atomic_ullong synth_requests[NMODEL];
    atomic_ullong rate_limited;
    atomic_ullong cancelled;
    atomic_ullong auth_failed;
};

int met_new(met_set **out, char *err, size_t errlen)
{
    met_set *m = calloc(1, sizeof *m); /* all-zero bytes is a valid zero for atomic_ullong */
    if (!m) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    *out = m;
    return 0;
}

void met_free(met_set *m) { free(m); }

const char *met_route_name(int route)
{
    return route >= 0 && route < MET_NROUTES ? route_name[route] : "unknown";
}

static int clamp_route(int r) { return r >= 0 && r < MET_NROUTES ? r : MET_ROUTE_UNKNOWN; }
static int clamp_model(int k) { return k >= 0 && k < MET_MAX_MODELS ? k : MET_NO_MODEL; }

static size_t status_index(int status)
{
    for (size_t i = 0; i < NSTATUS - 1; i++)
        if (status_code[i] == status) return i;
    return NSTATUS - 1;
}

static void hist_add(hist *h, double seconds)
{
    if (!(seconds >= 0)) seconds = 0; /* also NaN */
    size_t b = 0;
    while (b < MET_NBUCKETS && seconds > bucket_le[b]) b++;
    atomic_fetch_add_explicit(&h->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, (unsigned long long)(seconds * 1e6 + 0.5),
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

void met_request(met_set *m, int route, int status, int model, double seconds)
{
    route = clamp_route(route);
    atomic_fetch_add_explicit(&m->req[route][status_index(status)][clamp_model(model)], 1,
                              memory_order_relaxed);
    hist_add(&m->dur[route], seconds);
    if (status == 429) atomic_fetch_add_explicit(&m->rate_limited, 1, memory_order_relaxed);
}

void met_ttfb(met_set *m, int model, double seconds) { hist_add(&m->ttfb[clamp_model(model)], seconds); }

void met_synth(met_set *m, int model, uint64_t samples, uint64_t chars)
{
    int k = clamp_model(model);
    atomic_fetch_add_explicit(&m->samples[k], samples, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->chars[k], chars, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->synth_requests[k], 1, memory_order_relaxed);
}

void met_cancelled(met_set *m) { atomic_fetch_add_explicit(&m->cancelled, 1, memory_order_relaxed); }

void met_auth_failed(met_set *m)
{
    atomic_fetch_add_explicit(&m->auth_failed, 1, memory_order_relaxed);
}

static unsigned long long ld(const atomic_ullong *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

/* A label value with \, " and newline escaped (exposition format rules). */
static void esc(char *dst, size_t n, const char *s)
{
    size_t o = 0;
    for (; s && *s && o + 3 < n; s++) {
        if (*s == '\\' || *s == '"') {
            dst[o++] = '\\';
            dst[o++] = *s;
        } else if (*s == '\n') {
            dst[o++] = '\\';
            dst[o++] = 'n';
        } else {
            dst[o++] = *s;
        }
    }
    dst[o] = 0;
}

static const char *model_label(const met_gauges *g, int k, char *tmp, size_t n)
{
    if (k >= 0 && (size_t)k < g->nmodels && g->model[k]) esc(tmp, n, g->model[k]);
    else tmp[0] = 0;
    return tmp;
}

static int hist_render(buf *o, const char *name, const char *label, const hist *h)
{
    unsigned long long cum = 0;
    int rc = 0;
    for (size_t b = 0; b < MET_NBUCKETS && !rc; b++) {
        cum += ld(&h->bucket[b]);
        rc = buf_printf(o, "%s_bucket{%s,le=\"%g\"} %llu\n", name, label, bucket_le[b], cum);
    }
    cum += ld(&h->bucket[MET_NBUCKETS]);
    if (!rc) rc = buf_printf(o, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, label, cum);
    /* _count is the +Inf bucket: the same number even while a record is half written */
    if (!rc) rc = buf_printf(o, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", name, label,
                             (double)ld(&h->sum_us) / 1e6, name, label, cum);
    return rc;
}

static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long size = 0, res = 0;
    int ok = fscanf(f, "%lu %lu", &size, &res) == 2;
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return ok && page > 0 ? (size_t)res * (size_t)page : 0;
}

#define P(...)                                       \
    do {                                             \
        if ((rc = buf_printf(out, __VA_ARGS__))) return rc; \
    } while (0)

int met_render(const met_set *m, const met_gauges *g, buf *out)
{
    int rc;
    char ml[160];

    P("# HELP pockettts_build_info Version of the running server.\n"
      "# TYPE pockettts_build_info gauge\n"
      "pockettts_build_info{version=\"%s\"} 1\n", PT_VERSION);
    P("# HELP pockettts_engine_info Loaded engines; default=\"true\" marks the default model.\n"
      "# TYPE pockettts_engine_info gauge\n");
    for (size_t k = 0; k < g->nmodels && k < MET_MAX_MODELS; k++)
        P("pockettts_engine_info{id=\"%s\",default=\"%s\"} 1\n", model_label(g, (int)k, ml, sizeof ml),
          (int)k == g->default_model ? "true" : "false");
    P("# HELP pockettts_ready 1 when engines are loaded and the server is not draining.\n"
      "# TYPE pockettts_ready gauge\npockettts_ready %d\n", g->ready && !g->draining);
    P("# HELP pockettts_draining 1 while shutting down.\n"
      "# TYPE pockettts_draining gauge\npockettts_draining %d\n", g->draining);
    P("# HELP pockettts_api_keys Number of API keys configured (0 = open server).\n"
      "# TYPE pockettts_api_keys gauge\npockettts_api_keys %zu\n", g->api_keys);

    P("# HELP pockettts_requests_total HTTP requests by route, status and model.\n"
      "# TYPE pockettts_requests_total counter\n");
    for (int r = 0; r < MET_NROUTES; r++)
        for (size_t s = 0; s < NSTATUS; s++)
            for (int k = 0; k < NMODEL; k++) {
                unsigned long long v = ld(&m->req[r][s][k]);
                if (!v) continue;
                char st[16];
                if (s == NSTATUS - 1) snprintf(st, sizeof st, "other");
                else snprintf(st, sizeof st, "%d", status_code[s]);
                P("pockettts_requests_total{route=\"%s\",status=\"%s\",model=\"%s\"} %llu\n",
                  route_name[r], st, model_label(g, k, ml, sizeof ml), v);
            }

    P("# HELP pockettts_request_duration_seconds Time from request headers to the last byte "
      "handed to the socket.\n# TYPE pockettts_request_duration_seconds histogram\n");
    for (int r = 0; r < MET_NROUTES; r++) {
        if (!ld(&m->dur[r].count)) continue;
        char label[64];
        snprintf(label, sizeof label, "route=\"%s\"", route_name[r]);
        if ((rc = hist_render(out, "pockettts_request_duration_seconds", label, &m->dur[r])))
            return rc;
    }
    P("# HELP pockettts_time_to_first_byte_seconds Speech requests: time from request headers "
      "to the first audio byte.\n# TYPE pockettts_time_to_first_byte_seconds histogram\n");
    for (int k = 0; k < NMODEL; k++) {
        if (!ld(&m->ttfb[k].count)) continue;
        char label[200];
        snprintf(label, sizeof label, "model=\"%s\"", model_label(g, k, ml, sizeof ml));
        if ((rc = hist_render(out, "pockettts_time_to_first_byte_seconds", label, &m->ttfb[k])))
            return rc;
    }

    P("# HELP pockettts_audio_seconds_total Seconds of audio synthesised.\n"
      "# TYPE pockettts_audio_seconds_total counter\n");
    for (int k = 0; k < NMODEL; k++)
        if (ld(&m->synth_requests[k]))
            P("pockettts_audio_seconds_total{model=\"%s\"} %.3f\n", model_label(g, k, ml, sizeof ml),
              (double)ld(&m->samples[k]) / 24000.0);
    P("# HELP pockettts_characters_total Input characters (code points) of speech requests run.\n"
      "# TYPE pockettts_characters_total counter\n");
    for (int k = 0; k < NMODEL; k++)
        if (ld(&m->synth_requests[k]))
            P("pockettts_characters_total{model=\"%s\"} %llu\n", model_label(g, k, ml, sizeof ml),
              ld(&m->chars[k]));
    P("# HELP pockettts_synthesis_runs_total Speech requests that reached a worker.\n"
      "# TYPE pockettts_synthesis_runs_total counter\n");
    for (int k = 0; k < NMODEL; k++)
        if (ld(&m->synth_requests[k]))
            P("pockettts_synthesis_runs_total{model=\"%s\"} %llu\n", model_label(g, k, ml, sizeof ml),
              ld(&m->synth_requests[k]));

    P("# HELP pockettts_rate_limited_total Requests refused with 429 (workers busy, queue full).\n"
      "# TYPE pockettts_rate_limited_total counter\npockettts_rate_limited_total %llu\n",
      ld(&m->rate_limited));
    P("# HELP pockettts_cancelled_total Speech requests stopped early (client gone, client "
      "stopped reading, shutdown).\n# TYPE pockettts_cancelled_total counter\n"
      "pockettts_cancelled_total %llu\n", ld(&m->cancelled));
    P("# HELP pockettts_auth_failures_total Requests refused with 401.\n"
      "# TYPE pockettts_auth_failures_total counter\npockettts_auth_failures_total %llu\n",
      ld(&m->auth_failed));

    P("# HELP pockettts_workers Synthesis worker threads.\n# TYPE pockettts_workers gauge\n"
      "pockettts_workers %d\n", g->workers);
    P("# HELP pockettts_workers_busy Workers running a synthesis now.\n"
      "# TYPE pockettts_workers_busy gauge\npockettts_workers_busy %d\n", g->busy);
    P("# HELP pockettts_queue_depth Speech requests waiting for a worker.\n"
      "# TYPE pockettts_queue_depth gauge\npockettts_queue_depth %d\n", g->queued);
    P("# HELP pockettts_queue_capacity Waiting requests allowed before 429.\n"
      "# TYPE pockettts_queue_capacity gauge\npockettts_queue_capacity %d\n", g->queue_capacity);
    P("# HELP pockettts_in_flight_requests Speech requests accepted and not finished.\n"
      "# TYPE pockettts_in_flight_requests gauge\npockettts_in_flight_requests %d\n",
      g->in_flight);
    P("# HELP pockettts_http_connections Open HTTP connections.\n"
      "# TYPE pockettts_http_connections gauge\npockettts_http_connections %d\n", g->connections);

    P("# HELP pockettts_uptime_seconds Seconds since the server started.\n"
      "# TYPE pockettts_uptime_seconds gauge\npockettts_uptime_seconds %.3f\n", g->uptime_s);
    P("# HELP process_start_time_seconds Start time of the process since the Unix epoch.\n"
      "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.3f\n",
      g->start_time_s);
    P("# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
      "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %zu\n",
      rss_bytes());
    struct timespec cpu;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
    P("# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
      "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.3f\n",
      cpu.tv_sec + cpu.tv_nsec / 1e9);
    return 0;
}
