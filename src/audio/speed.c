/* speed.c — pitch-preserving time-stretch between an engine and an encoder (libsonic).
 *
 * speed == 1.0 is an exact passthrough: samples go to the sink untouched, no sonic
 * stream is created. Otherwise samples are fed to a sonic stream in bounded steps
 * (ASPEED_STEP) and whatever it has ready is drained to the sink after every step, so
 * latency stays at sonic's own analysis window (a few pitch periods) and memory stays
 * flat whatever the chunk size. aspeed_close() flushes sonic's tail. libsonic works in
 * 16-bit internally; its float API clips to [-1, 1], which the encoders do anyway.
 * A non-zero sink return latches ERR_CANCEL like the encoders.
 */
#include "audio/speed.h"
#include "core/err.h"

#include <math.h>
#include <sonic.h>
#include <stdlib.h>

#define ASPEED_STEP 4096 /* samples fed to sonic per call; also the drain buffer size */

struct aspeed {
    sonicStream st;     /* NULL when passthrough */
    aspeed_sink_fn sink; /* borrowed */
    void *user;          /* borrowed */
    int dead;
    int closed;
    float out[ASPEED_STEP * 4];
};

int aspeed_open(aspeed **out, int sample_rate, float speed, aspeed_sink_fn sink, void *user,
                char *err, size_t errlen)
{
    *out = NULL;
    if (!(speed >= 0.25f && speed <= 4.0f))
        return err_set(err, errlen, ERR_INVAL, "speed %g out of range 0.25..4.0", (double)speed);
    if (sample_rate < 8000 || sample_rate > 192000)
        return err_set(err, errlen, ERR_INVAL, "sample rate %d out of range", sample_rate);
    if (!sink) return err_set(err, errlen, ERR_INVAL, "aspeed_open: no sink");
    aspeed *s = calloc(1, sizeof *s);
    if (!s) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    s->sink = sink;
    s->user = user;
    if (speed != 1.0f) {
        s->st = sonicCreateStream(sample_rate, 1);
        if (!s->st) {
            free(s);
            return err_set(err, errlen, ERR_NOMEM, "sonic: cannot create stream");
        }
        sonicSetSpeed(s->st, speed);
    }
    *out = s;
    return 0;
}

static int deliver(aspeed *s, const float *pcm, size_t n, char *err, size_t errlen)
{
    if (!n) return 0;
    if (s->sink(s->user, pcm, n)) {
        s->dead = 1;
        return err_set(err, errlen, ERR_CANCEL, "speed: output refused by the sink");
    }
    return 0;
}

static int drain(aspeed *s, char *err, size_t errlen)
{
    int got;
    while ((got = sonicReadFloatFromStream(s->st, s->out, (int)(sizeof s->out / sizeof s->out[0]))) > 0) {
        int rc = deliver(s, s->out, (size_t)got, err, errlen);
        if (rc) return rc;
    }
    return 0;
}

int aspeed_write(aspeed *s, const float *pcm, size_t n, char *err, size_t errlen)
{
    if (!s) return err_set(err, errlen, ERR_INVAL, "aspeed_write: no filter");
    if (s->dead) return err_set(err, errlen, ERR_CANCEL, "speed filter stopped");
    if (s->closed) return err_set(err, errlen, ERR_INVAL, "aspeed_write after close");
    if (!n) return 0;
    if (!pcm) return err_set(err, errlen, ERR_INVAL, "aspeed_write: NULL samples");
    if (!s->st) return deliver(s, pcm, n, err, errlen);
    while (n) {
        size_t k = n < ASPEED_STEP ? n : ASPEED_STEP;
        /* sonic copies the samples; its prototype just lacks const. */
        if (!sonicWriteFloatToStream(s->st, (float *)pcm, (int)k)) {
            s->dead = 1;
            return err_set(err, errlen, ERR_NOMEM, "sonic: out of memory");
        }
        int rc = drain(s, err, errlen);
        if (rc) return rc;
        pcm += k;
        n -= k;
    }
    return 0;
}

int aspeed_close(aspeed *s, char *err, size_t errlen)
{
    if (!s) return err_set(err, errlen, ERR_INVAL, "aspeed_close: no filter");
    if (s->dead) return err_set(err, errlen, ERR_CANCEL, "speed filter stopped");
    if (s->closed) return 0;
    s->closed = 1;
    if (!s->st) return 0;
    if (!sonicFlushStream(s->st)) {
        s->dead = 1;
        return err_set(err, errlen, ERR_NOMEM, "sonic: out of memory");
    }
    return drain(s, err, errlen);
}

void aspeed_free(aspeed *s)
{
    if (!s) return;
    if (s->st) sonicDestroyStream(s->st);
    free(s);
}
