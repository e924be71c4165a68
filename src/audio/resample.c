/* resample.c — libsoxr behind resample.h: one-shot and streaming mono float conversion.
 *
 * Quality is SOXR_HQ (20-bit, steep low-pass), plenty for speech and cheap: espeak's
 * 22050 -> 24000 Hz costs well under 1% of a core at real time. The streaming form keeps
 * one soxr_t and a fixed output block; each ars_write() drains everything soxr can produce
 * for the input so far (soxr holds back a filter-length tail, ~1 ms, until ars_close()).
 * Output reaches the sink in blocks of at most ARS_BLOCK samples, never empty.
 *
 * Invariant: once the sink has asked to stop or soxr has failed, every later call returns
 * an error without calling the sink again. Equal rates pass samples straight through.
 */
#include "audio/resample.h"

#include <soxr.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

#define ARS_BLOCK 4096     /* output samples per sink call at most */
#define ARS_MAX_RATE 768000 /* sanity cap on rates from the outside world */

struct ars {
    soxr_t sx;            /* NULL when in_rate == out_rate (pass-through) */
    ars_sink_fn sink;
    void *user;
    int state;            /* 0 ok, ERR_CANCEL after the sink stopped us, other < 0 after failure */
    float out[ARS_BLOCK]; /* soxr writes here, the sink reads from here */
};

static int ars_check_rates(int in_rate, int out_rate, char *err, size_t errlen)
{
    if (in_rate <= 0 || out_rate <= 0 || in_rate > ARS_MAX_RATE || out_rate > ARS_MAX_RATE)
        return err_set(err, errlen, ERR_INVAL, "resample: bad rates %d -> %d", in_rate, out_rate);
    return 0;
}

static soxr_t ars_create(int in_rate, int out_rate, char *err, size_t errlen, int *rc)
{
    soxr_error_t e = NULL;
    soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
    soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);
    soxr_runtime_spec_t rt = soxr_runtime_spec(1); /* one thread: the server has its own pool */
    soxr_t sx = soxr_create((double)in_rate, (double)out_rate, 1, &e, &io, &q, &rt);
    if (!sx || e) {
        soxr_delete(sx);
        *rc = err_set(err, errlen, ERR_INTERNAL, "soxr_create(%d -> %d): %s", in_rate, out_rate,
                      e ? e : "failed");
        return NULL;
    }
    *rc = 0;
    return sx;
}

int ars_oneshot(const float *in, size_t n, int in_rate, int out_rate, float **out, size_t *nout,
                char *err, size_t errlen)
{
    *out = NULL;
    *nout = 0;
    int rc = ars_check_rates(in_rate, out_rate, err, errlen);
    if (rc) return rc;
    /* Expected length plus slack; soxr never produces more than ceil(n * ratio). */
    double ratio = (double)out_rate / (double)in_rate;
    size_t cap = (size_t)((double)n * ratio) + 16;
    float *o = malloc((cap ? cap : 1) * sizeof *o);
    if (!o) return err_set(err, errlen, ERR_NOMEM, "resample: %zu samples", cap);
    if (in_rate == out_rate) {
        if (n) memcpy(o, in, n * sizeof *o);
        *out = o;
        *nout = n;
        return 0;
    }
    soxr_t sx = ars_create(in_rate, out_rate, err, errlen, &rc);
    if (!sx) {
        free(o);
        return rc;
    }
    size_t idone = 0, total = 0;
    while (idone < n) {
        size_t i1 = 0, o1 = 0;
        soxr_error_t e = soxr_process(sx, in + idone, n - idone, &i1, o + total, cap - total, &o1);
        if (e) goto fail_soxr;
        idone += i1;
        total += o1;
        if (total == cap) break; /* cannot happen with the slack above; stay safe */
    }
    for (;;) { /* flush the filter tail */
        size_t o1 = 0;
        if (total == cap) break;
        soxr_error_t e = soxr_process(sx, NULL, 0, NULL, o + total, cap - total, &o1);
        if (e) goto fail_soxr;
        if (o1 == 0) break;
        total += o1;
    }
    soxr_delete(sx);
    *out = o;
    *nout = total;
    return 0;
fail_soxr:
    soxr_delete(sx);
    free(o);
    return err_set(err, errlen, ERR_INTERNAL, "soxr_process failed");
}

int ars_open(ars **out, int in_rate, int out_rate, ars_sink_fn sink, void *user, char *err,
             size_t errlen)
{
    *out = NULL;
    int rc = ars_check_rates(in_rate, out_rate, err, errlen);
    if (rc) return rc;
    ars *r = calloc(1, sizeof *r);
    if (!r) return err_set(err, errlen, ERR_NOMEM, "resample: no memory");
    r->sink = sink;
    r->user = user;
    if (in_rate != out_rate) {
        r->sx = ars_create(in_rate, out_rate, err, errlen, &rc);
        if (!r->sx) {
            free(r);
            return rc;
        }
    }
    *out = r;
    return 0;
}

static int ars_emit(ars *r, const float *pcm, size_t n, char *err, size_t errlen)
{
    if (n == 0) return 0;
    if (r->sink(r->user, pcm, n)) {
        r->state = ERR_CANCEL;
        return err_set(err, errlen, ERR_CANCEL, "resample: sink stopped");
    }
    return 0;
}

static int ars_state_err(const ars *r, char *err, size_t errlen)
{
    return err_set(err, errlen, r->state, "resample: stream already %s",
                   r->state == ERR_CANCEL ? "stopped" : "failed");
}

/* One soxr call; in == NULL flushes. Emits whatever came out. *odone gets the count. */
static int ars_step(ars *r, const float *in, size_t n, size_t *idone, size_t *odone, char *err,
                    size_t errlen)
{
    soxr_error_t e = soxr_process(r->sx, in, n, idone, r->out, ARS_BLOCK, odone);
    if (e) {
        r->state = ERR_INTERNAL;
        return err_set(err, errlen, ERR_INTERNAL, "soxr_process: %s", e);
    }
    return ars_emit(r, r->out, *odone, err, errlen);
}

int ars_write(ars *r, const float *pcm, size_t n, char *err, size_t errlen)
{
    if (r->state) return ars_state_err(r, err, errlen);
    if (!r->sx) {
        for (size_t i = 0; i < n; i += ARS_BLOCK) {
            size_t k = n - i < ARS_BLOCK ? n - i : ARS_BLOCK;
            int rc = ars_emit(r, pcm + i, k, err, errlen);
            if (rc) return rc;
        }
        return 0;
    }
    if (n == 0) return 0;
    size_t used = 0, odone;
    do {
        size_t idone = 0;
        /* pcm + used stays non-NULL even when all input is consumed: that drains, not flushes. */
        int rc = ars_step(r, pcm + used, n - used, &idone, &odone, err, errlen);
        if (rc) return rc;
        used += idone;
    } while (used < n || odone == ARS_BLOCK);
    return 0;
}

int ars_close(ars *r, char *err, size_t errlen)
{
    if (r->state) return ars_state_err(r, err, errlen);
    if (!r->sx) return 0;
    size_t odone;
    do {
        int rc = ars_step(r, NULL, 0, NULL, &odone, err, errlen);
        if (rc) return rc;
    } while (odone > 0);
    return 0;
}

void ars_free(ars *r)
{
    if (!r) return;
    soxr_delete(r->sx);
    free(r);
}
