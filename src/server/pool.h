/* pool.h — the bounded synthesis worker pool.
 *
 * N worker threads take jobs from a FIFO of at most Q waiting jobs. Submission never
 * blocks: when every worker is busy and Q jobs already wait, srv_pool_submit() returns
 * ERR_BUSY at once and the HTTP layer answers 429 with Retry-After. This keeps
 * synthesis off the HTTP threads and turns overload into a clean refusal instead of a
 * pile-up. Jobs are opaque (fn, arg); cancellation is the job's own business.
 *
 * Ownership: srv_pool_new() creates a pool; srv_pool_free() refuses new work, lets the
 * workers finish every job already accepted (running and queued), joins them, frees.
 */
#ifndef SERVER_POOL_H
#define SERVER_POOL_H

#include <stddef.h>

typedef void (*srv_job_fn)(void *arg);
typedef struct srv_pool srv_pool;

int srv_pool_new(srv_pool **out, int workers, int queue_len, char *err, size_t errlen);
/* 0, ERR_BUSY (full) or ERR_CANCEL (shutting down). On error fn is not called. */
int srv_pool_submit(srv_pool *p, srv_job_fn fn, void *arg);
/* Called by a job on its worker thread: its slot is free from now on (it only tidies up
 * before returning), so work that its result unblocks can be submitted at once instead of
 * meeting a 429 from a slot that is about to free itself. At most once per job; a no-op
 * elsewhere. */
void srv_pool_release(srv_pool *p);
void srv_pool_stats(srv_pool *p, int *workers, int *running, int *queued, int *capacity);
void srv_pool_free(srv_pool *p);

#endif
