/* pipeline.c — see pipeline.h. One stack-allocated context threads the stages
 * together; nothing here allocates per chunk except the SSE framing buffer, which is
 * capped by the largest encoder write. */
#include "api/pipeline.h"
#include "audio/speed.h"
#include "core/buf.h"
#include "core/err.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define SSE_MAX_EVENT (8u << 20) /* cap for one framed event (encoder writes are small) */

typedef struct run {
    const oai_speech *s;
    const atomic_int *cancel;
    oai_out_fn out;
    oai_tick_fn tick;
    void *user;
    oai_stats *st;
    aenc *enc;
    aspeed *spd;
    buf sse;          /* SSE framing scratch */
    int stopped;      /* out() asked to stop */
    int failed;       /* an inner stage failed; reason in ierr, code in irc */
    int irc;
    char ierr[256];
} run;

size_t oai_base64(const unsigned char *in, size_t n, char *dst)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        dst[o++] = tab[v >> 18];
        dst[o++] = tab[(v >> 12) & 63];
        dst[o++] = tab[(v >> 6) & 63];
        dst[o++] = tab[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)in[i] << 16;
        dst[o++] = tab[v >> 18];
        dst[o++] = tab[(v >> 12) & 63];
        dst[o++] = '=';
        dst[o++] = '=';
    } else if (n - i == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        dst[o++] = tab[v >> 18];
        dst[o++] = tab[(v >> 12) & 63];
        dst[o++] = tab[(v >> 6) & 63];
        dst[o++] = '=';
    }
    dst[o] = 0;
    return o;
}

static int emit(run *r, const void *p, size_t n)
{
    if (r->stopped) return 1;
    if (r->out(r->user, p, n)) {
        r->stopped = 1;
        return 1;
    }
    r->st->bytes += n;
    return 0;
}

/* encoder output -> framing -> out */
static int on_encoded(void *user, const void *bytes, size_t n)
{
    run *r = user;
    if (n == 0) return 0;
    if (!r->s->sse) return emit(r, bytes, n);
    static const char pre[] = "data: {\"type\":\"speech.audio.delta\",\"audio\":\"";
    static const char post[] = "\"}\n\n";
    buf_reset(&r->sse);
    int bad = buf_append(&r->sse, pre, sizeof pre - 1);
    const unsigned char *p = bytes;
    char b64[4 * 1024 + 1];
    for (size_t i = 0; i < n && !bad; i += 3 * 1024) {
        size_t k = n - i < 3 * 1024 ? n - i : 3 * 1024;
        bad = buf_append(&r->sse, b64, oai_base64(p + i, k, b64));
    }
    if (!bad) bad = buf_append(&r->sse, post, sizeof post - 1);
    if (bad) {
        r->failed = 1;
        r->irc = ERR_NOMEM;
        snprintf(r->ierr, sizeof r->ierr, "SSE event too large or out of memory (%zu bytes)", n);
        return 1;
    }
    return emit(r, r->sse.data, r->sse.len);
}

/* (speed-filtered) PCM -> encoder */
static int to_encoder(void *user, const float *pcm, size_t n)
{
    run *r = user;
    if (r->stopped || r->failed) return 1;
    r->st->samples += n;
    int rc = aenc_write(r->enc, pcm, n, r->ierr, sizeof r->ierr);
    if (rc) {
        if (!r->stopped) {
            r->failed = 1;
            r->irc = rc;
        }
        return 1;
    }
    return 0;
}

/* engine PCM -> speed or encoder; flush per engine chunk when streaming */
static int on_pcm(void *user, const float *pcm, size_t n)
{
    run *r = user;
    if (r->cancel && atomic_load(r->cancel)) return 1;
    if (r->tick && r->tick(r->user)) {
        r->stopped = 1;
        return 1;
    }
    int rc;
    if (r->spd) {
        int wrc = aspeed_write(r->spd, pcm, n, r->ierr, sizeof r->ierr);
        if (wrc) {
            if (!r->stopped && !r->failed) {
                r->failed = 1;
                r->irc = wrc;
            }
            return 1;
        }
        rc = (r->stopped || r->failed);
    } else {
        rc = to_encoder(r, pcm, n);
    }
    if (rc) return rc;
    if (r->s->stream && (rc = aenc_flush(r->enc, r->ierr, sizeof r->ierr))) {
        if (!r->stopped) {
            r->failed = 1;
            r->irc = rc;
        }
        return 1;
    }
    return (r->stopped || r->failed) ? 1 : 0;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int oai_run(const oai_speech *s, const atomic_int *cancel, oai_out_fn out, oai_tick_fn tick,
            void *user, oai_stats *st, char *err, size_t errlen)
{
    run r;
    memset(&r, 0, sizeof r);
    memset(st, 0, sizeof *st);
    r.s = s;
    r.cancel = cancel;
    r.out = out;
    r.tick = tick;
    r.user = user;
    r.st = st;
    buf_init(&r.sse, SSE_MAX_EVENT);
    double t0 = now_ms();
    int rc;

    aenc_opts eo = {.sample_rate = ENG_SAMPLE_RATE, .streaming = s->stream,
                    .bitrate_kbps = s->bitrate_kbps};
    if ((rc = aenc_open(&r.enc, s->format, &eo, on_encoded, &r, err, errlen))) goto done;
    int need_speed = !(s->eng->caps & ENG_CAP_SPEED) && s->speed != 1.0f;
    if (need_speed &&
        (rc = aspeed_open(&r.spd, ENG_SAMPLE_RATE, s->speed, to_encoder, &r, err, errlen)))
        goto done;

    eng_synth_req req = {0};
    req.text = s->input;
    req.voice = s->voice[0] ? s->voice : NULL;
    req.speed = s->speed;
    req.instructions = s->instructions;
    req.seed = s->seed;
    req.has_seed = s->has_seed;
    req.cancel = cancel;
    char eerr[256] = "";
    rc = eng_synth(s->eng, &req, on_pcm, &r, eerr, sizeof eerr);
    if (r.failed) {
        rc = err_set(err, errlen, r.irc ? r.irc : ERR_INTERNAL, "%s", r.ierr);
        goto done;
    }
    if (r.stopped || (cancel && atomic_load(cancel))) {
        rc = err_set(err, errlen, ERR_CANCEL, "cancelled");
        goto done;
    }
    if (rc) {
        err_set(err, errlen, rc, "%s", eerr);
        goto done;
    }
    if (r.spd && (rc = aspeed_close(r.spd, err, errlen))) goto done;
    if (r.failed || r.stopped) {
        rc = r.stopped ? err_set(err, errlen, ERR_CANCEL, "cancelled")
                       : err_set(err, errlen, r.irc ? r.irc : ERR_INTERNAL, "%s", r.ierr);
        goto done;
    }
    if ((rc = aenc_close(r.enc, err, errlen))) {
        if (r.stopped) rc = err_set(err, errlen, ERR_CANCEL, "cancelled");
        goto done;
    }
    if (r.failed || r.stopped) {
        rc = r.stopped ? err_set(err, errlen, ERR_CANCEL, "cancelled")
                       : err_set(err, errlen, r.irc ? r.irc : ERR_INTERNAL, "%s", r.ierr);
        goto done;
    }
    if (s->sse) {
        unsigned long long in_tok = s->input_chars;
        unsigned long long out_tok = (st->samples + 479) / 480; /* 20 ms frames */
        char ev[256];
        int n = snprintf(ev, sizeof ev,
                         "data: {\"type\":\"speech.audio.done\",\"usage\":{\"input_tokens\":%llu,"
                         "\"output_tokens\":%llu,\"total_tokens\":%llu}}\n\n",
                         in_tok, out_tok, in_tok + out_tok);
        if (emit(&r, ev, (size_t)n)) {
            rc = err_set(err, errlen, ERR_CANCEL, "cancelled");
            goto done;
        }
    }
    rc = 0;
done:
    if (rc && rc != ERR_CANCEL && s->sse && st->bytes > 0 && !r.stopped) {
        /* the stream already started (status 200): tell SSE clients why it ends early */
        char ev[512], msg[256];
        size_t k = 0;
        for (const char *p = err; p && *p && k + 2 < sizeof msg; p++) /* JSON-safe copy */
            msg[k++] = (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) ? ' ' : *p;
        msg[k] = 0;
        int n = snprintf(ev, sizeof ev,
                         "data: {\"type\":\"error\",\"error\":{\"message\":\"%s\","
                         "\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n", msg);
        if (n > 0 && (size_t)n < sizeof ev) emit(&r, ev, (size_t)n);
    }
    aspeed_free(r.spd);
    aenc_free(r.enc);
    buf_free(&r.sse);
    st->synth_ms = now_ms() - t0;
    return rc;
}
