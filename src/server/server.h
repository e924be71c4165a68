/* server.h — the HTTP server: libmicrohttpd glue, routing, streaming, shutdown.
 *
 * Threads: libmicrohttpd runs an internal epoll thread pool (http_threads) that parses
 * requests and writes responses; synthesis runs on our own bounded worker pool
 * (server/pool.h). Audio flows worker -> per-request bounded byte ring -> MHD content
 * reader. When the ring is empty the reader suspends the connection (no spinning, no
 * blocked MHD thread) and the worker resumes it when it produces bytes; when the ring is
 * full the worker waits (backpressure). A request's atomic cancel flag is set when its
 * connection ends (MHD completion callback) or when the worker sees the client's socket
 * hang up, and the engine stops at its next chunk.
 *
 * Routes: /v1/... (OpenAI API; needs "Authorization: Bearer KEY" when keys are set),
 * GET / (page), /health (200 ready, 503 starting/draining), /health/live (200 while HTTP
 * is served), /metrics (Prometheus text, server/metrics.h; keyed only with metrics_auth).
 *
 * Shutdown (srv_stop): /health turns 503 "draining" at once, stop accepting, refuse new requests with 503, let running jobs
 * finish for up to drain_ms, cancel the rest, wait until no connection is suspended,
 * stop MHD, join workers.
 *
 * Ownership: srv_start() creates a running server that borrows cfg, registry and logger
 * (they must outlive it); srv_stop() stops and frees it.
 */
#ifndef SERVER_SERVER_H
#define SERVER_SERVER_H

#include <stddef.h>

#include "core/config.h"
#include "core/log.h"
#include "engine/registry.h"

typedef struct srv_server srv_server;

/* reg may be NULL: the server then listens at once and answers 503 ("starting", with
 * Retry-After) until srv_set_registry() hands it the loaded engines, so a slow model load
 * (weights download) never delays the first /health answer. */
int srv_start(srv_server **out, const cfg *c, reg_registry *reg, lg_logger *lg, char *err,
              size_t errlen);
void srv_set_registry(srv_server *s, reg_registry *reg); /* borrowed; set once */
int srv_port(const srv_server *s); /* the bound port (useful with --port 0) */
/* API keys (server/auth.h): the set is built from cfg at start (a bad key, an unreadable
 * keys file or one with no keys fails srv_start). srv_reload_keys() (SIGHUP) re-reads cfg's
 * list and keys file and swaps the set in atomically; on error the old keys stay and err
 * says why (never a key). Keyed requests also notice a changed keys file by themselves
 * (stat at most every 2 s), so a rotated Kubernetes Secret needs no signal. */
int srv_reload_keys(srv_server *s, char *err, size_t errlen);
size_t srv_key_count(srv_server *s);
void srv_stop(srv_server *s, int drain_ms);

#endif
