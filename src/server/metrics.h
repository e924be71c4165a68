/* metrics.h — Prometheus counters, gauges and histograms for GET /metrics.
 *
 * One met_set lives inside the server (no globals). Every recorder is a handful of
 * relaxed atomic adds into fixed arrays, so HTTP threads and workers record without a
 * lock; met_render() reads them (a scrape may see one request half-recorded, which
 * Prometheus tolerates) and writes text exposition format 0.0.4.
 *
 * Label spaces are fixed and small: routes are the server's route table (MET_ROUTE_*),
 * statuses are a fixed list of codes plus "other", models are registry engine indexes
 * (0 .. MET_MAX_MODELS-1; MET_NO_MODEL for requests that did not pick an engine). The
 * model names are supplied at render time, so a scrape never allocates per request.
 *
 * Ownership: met_new() creates a zeroed set; met_free() (NULL ok) frees it. met_render()
 * appends to a caller-owned buf (caller frees).
 */
#ifndef SERVER_METRICS_H
#define SERVER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

enum {
    MET_ROUTE_UNKNOWN = 0,
    MET_ROUTE_INDEX,
    MET_ROUTE_HEALTH,
    MET_ROUTE_HEALTH_LIVE,
    MET_ROUTE_METRICS,
    MET_ROUTE_MODELS,
    MET_ROUTE_MODEL,
    MET_ROUTE_AUDIO_MODELS,
    MET_ROUTE_VOICES,
    MET_ROUTE_AUDIO_VOICES,
    MET_ROUTE_SPEECH,
    MET_NROUTES
};

#define MET_MAX_MODELS 15
#define MET_NO_MODEL MET_MAX_MODELS /* label model="" */
#define MET_NBUCKETS 15             /* finite histogram buckets (+Inf is implicit) */

typedef struct met_set met_set;

/* What render needs from outside the set (gauges are read, not counted). */
typedef struct met_gauges {
    int workers, busy, queued, queue_capacity, in_flight, connections;
    int ready, draining;     /* 0/1 */
    double uptime_s;
    double start_time_s;     /* unix seconds */
    size_t nmodels;          /* <= MET_MAX_MODELS */
    const char *model[MET_MAX_MODELS]; /* engine ids, borrowed */
    int default_model;       /* index into model[], -1 = none */
    size_t api_keys;         /* how many keys are configured (never the keys) */
} met_gauges;

int met_new(met_set **out, char *err, size_t errlen);
void met_free(met_set *m);

/* Request finished: route (MET_ROUTE_*), HTTP status (0 = no response), model index or
 * MET_NO_MODEL, wall duration in seconds. */
void met_request(met_set *m, int route, int status, int model, double seconds);
/* A speech response's first body byte left `seconds` after the request arrived. */
void met_ttfb(met_set *m, int model, double seconds);
/* Synthesis output: samples at 24 kHz and input characters (code points). */
void met_synth(met_set *m, int model, uint64_t samples, uint64_t chars);
void met_cancelled(met_set *m); /* a speech request stopped early (client gone, stall, shutdown) */
void met_auth_failed(met_set *m);

/* Appends the exposition text. 0, or ERR_TOOBIG / ERR_NOMEM from the buffer. */
int met_render(const met_set *m, const met_gauges *g, buf *out);

/* Label value of a route, for tests and logs ("speech", ...). */
const char *met_route_name(int route);

#endif
