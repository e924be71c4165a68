/* pool.c — see pool.h. A mutex, one condition variable for workers, a ring of
 * queue_len + workers slots (so "accepted" work always fits), counters for /health. */
#include "server/pool.h"
#include "core/err.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct item {
    srv_job_fn fn;
    void *arg;
} item;

typedef struct wctx {
    struct srv_pool *p;
    int i;
} wctx;

struct srv_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t *th;
    wctx *wc;           /* per worker: pool + index */
    int *released;      /* per worker: its running job gave its slot back early */
    int nthreads;
    int queue_len;
    item *ring;
    int rcap, rhead, rlen;
    int running;
    int stopping;
};

static void *worker(void *arg)
{
    wctx *w = arg;
    srv_pool *p = w->p;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->rlen == 0 && !p->stopping) pthread_cond_wait(&p->cv, &p->mu);
        if (p->rlen == 0 && p->stopping) break;
        item it = p->ring[p->rhead];
        p->rhead = (p->rhead + 1) % p->rcap;
        p->rlen--;
        p->running++;
        pthread_mutex_unlock(&p->mu);
        it.fn(it.arg);
        pthread_mutex_lock(&p->mu);
        if (p->released[w->i]) p->released[w->i] = 0;
        else p->running--;
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int srv_pool_new(srv_pool **out, int workers, int queue_len, char *err, size_t errlen)
{
    if (workers < 1 || queue_len < 0)
        return err_set(err, errlen, ERR_INVAL, "bad pool size %d/%d", workers, queue_len);
    srv_pool *p = calloc(1, sizeof *p);
    if (!p) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    p->rcap = workers + queue_len;
    p->queue_len = queue_len;
    p->ring = calloc((size_t)p->rcap, sizeof *p->ring);
    p->th = calloc((size_t)workers, sizeof *p->th);
    p->wc = calloc((size_t)workers, sizeof *p->wc);
    p->released = calloc((size_t)workers, sizeof *p->released);
    if (!p->ring || !p->th || !p->wc || !p->released) {
        free(p->ring);
        free(p->th);
        free(p->wc);
        free(p->released);
        free(p);
        return err_set(err, errlen, ERR_NOMEM, "out of memory");
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    for (int i = 0; i < workers; i++) {
        p->wc[i] = (wctx){p, i};
        if (pthread_create(&p->th[i], NULL, worker, &p->wc[i])) {
            int rc = err_set(err, errlen, ERR_NOMEM, "cannot start worker thread %d", i);
            srv_pool_free(p);
            return rc;
        }
        p->nthreads++;
    }
    *out = p;
    return 0;
}

int srv_pool_submit(srv_pool *p, srv_job_fn fn, void *arg)
{
    pthread_mutex_lock(&p->mu);
    if (p->stopping) {
        pthread_mutex_unlock(&p->mu);
        return ERR_CANCEL;
    }
    /* accepted work = running + waiting; room for every worker plus queue_len waiting */
    if (p->running + p->rlen >= p->nthreads + p->queue_len || p->rlen >= p->rcap) {
        pthread_mutex_unlock(&p->mu);
        return ERR_BUSY;
    }
    p->ring[(p->rhead + p->rlen) % p->rcap] = (item){fn, arg};
    p->rlen++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

void srv_pool_stats(srv_pool *p, int *workers, int *running, int *queued, int *capacity)
{
    pthread_mutex_lock(&p->mu);
    if (workers) *workers = p->nthreads;
    if (running) *running = p->running;
    if (queued) *queued = p->rlen;
    if (capacity) *capacity = p->queue_len;
    pthread_mutex_unlock(&p->mu);
}

void srv_pool_free(srv_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++) pthread_join(p->th[i], NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->ring);
    free(p->th);
    free(p->wc);
    free(p->released);
    free(p);
}

void srv_pool_release(srv_pool *p)
{
    pthread_t self = pthread_self();
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->nthreads; i++) {
        if (pthread_equal(p->th[i], self) && !p->released[i]) {
            p->released[i] = 1;
            p->running--;
            break;
        }
    }
    pthread_mutex_unlock(&p->mu);
}
