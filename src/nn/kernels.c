/* kernels.c — plain C references, the public kernel entry points, weight views and the
 * KV-cache attention (see nn.h).
 *
 * The references are written for clarity and serve as ground truth in tests; public
 * entry points call the version chosen by dispatch.h. Elementwise ops (norms, RoPE,
 * activations) stay in plain C: they touch O(D) data per position and cost nothing next
 * to the weight streams of the linears. Accumulation of norms is in double so the result
 * does not depend on the summation order.
 */
#include "nn/nn.h"

#include "core/err.h"
#include "nn/dispatch.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

/* ---- references ---------------------------------------------------------------------- */

float nn_ref_dot(const float *a, const float *b, int n)
{
    float s = 0;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

void nn_ref_gemv_f32(float *y, const float *x, const float *W, int rows, int cols)
{
    for (int r = 0; r < rows; r++) y[r] = nn_ref_dot(W + (size_t)r * cols, x, cols);
}

void nn_ref_gemv_bf16(float *y, const float *x, const uint16_t *W, int rows, int cols)
{
    for (int r = 0; r < rows; r++) {
        const uint16_t *w = W + (size_t)r * cols;
        float s = 0;
        for (int i = 0; i < cols; i++) s += nn_bf16_to_f32(w[i]) * x[i];
        y[r] = s;
    }
}

/* ---- int8 quantization and reference GEMM (layout and formula in nn.h) ---------------- */

/* round half away from zero, clamp to [-127, 127]; plain arithmetic (no libm calls: the
 * loader quantizes ~80 M weights at startup) */
static inline int8_t q8_round(float v)
{
    float r = v + (v >= 0 ? 0.5f : -0.5f);
    r = r > 127.0f ? 127.0f : r < -127.0f ? -127.0f : r;
    return r == r ? (int8_t)(int)r : 0; /* NaN -> 0 */
}

static inline float q8_absmax(const float *x, int n)
{
    float mx = 0;
    for (int i = 0; i < n; i++) {
        float a = x[i] < 0 ? -x[i] : x[i];
        mx = a > mx ? a : mx;
    }
    return mx;
}

void nn_ref_q8_quant_weights(int8_t *q, float *s, const float *W, int rows, int cols)
{
    for (int r = 0; r < rows; r++) {
        const float *w = W + (size_t)r * cols;
        float mx = q8_absmax(w, cols);
        float sc = mx / 127.0f, inv = mx > 0 ? 127.0f / mx : 0.0f;
        for (int i = 0; i < cols; i++) q[(size_t)r * cols + i] = q8_round(w[i] * inv);
        s[r] = sc;
    }
}

void nn_ref_q8_quant_act(int8_t *q, float *s, int32_t *c, const float *x, int M, int cols)
{
    CORE_ASSERT(cols % NN_Q8_GROUP == 0);
    for (size_t g = 0; g < (size_t)M * cols / NN_Q8_GROUP; g++) {
        const float *xg = x + g * NN_Q8_GROUP;
        int8_t *qg = q + g * NN_Q8_GROUP;
        float mx = q8_absmax(xg, NN_Q8_GROUP);
        float inv = mx > 0 ? 127.0f / mx : 0.0f;
        for (int i = 0; i < NN_Q8_GROUP; i++) qg[i] = q8_round(xg[i] * inv);
        s[g] = mx / 127.0f;
        for (int j = 0; j < NN_Q8_GROUP / 4; j++)
            c[g * (NN_Q8_GROUP / 4) + j] = -128 * (qg[4 * j] + qg[4 * j + 1] + qg[4 * j + 2] + qg[4 * j + 3]);
    }
}

void nn_q8_quant_weights(int8_t *q, float *s, const float *W, int rows, int cols)
{
    if (nn_cpu_avx512()) nn_avx512_q8_quant_weights(q, s, W, rows, cols);
    else nn_ref_q8_quant_weights(q, s, W, rows, cols);
}

void nn_q8_quant_act(int8_t *q, float *s, int32_t *c, const float *x, int M, int cols)
{
    CORE_ASSERT(cols % NN_Q8_GROUP == 0);
    if (nn_cpu_avx512()) nn_avx512_q8_quant_act(q, s, c, x, M, cols);
    else nn_ref_q8_quant_act(q, s, c, x, M, cols);
}

void nn_ref_gemm_q8(float *y, int ldy, const nn_q8x *x, int M, const int8_t *W, const float *ws, int rows, int cols)
{
    int ng = cols / NN_Q8_GROUP;
    for (int m = 0; m < M; m++) {
        const int8_t *xq = x->q + (size_t)m * cols;
        const float *xs = x->s + (size_t)m * ng;
        for (int r = 0; r < rows; r++) {
            const int8_t *w = W + (size_t)r * cols;
            float acc = 0;
            for (int g = 0; g < ng; g++) {
                int32_t d = 0;
                for (int i = g * NN_Q8_GROUP; i < (g + 1) * NN_Q8_GROUP; i++) d += (int32_t)w[i] * xq[i];
                acc += xs[g] * (float)d;
            }
            y[(size_t)m * ldy + r] = acc * ws[r];
        }
    }
}

uint16_t nn_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

void nn_f32_to_bf16_n(uint16_t *dst, const float *src, size_t n)
{
    if (nn_cpu_avx512()) {
        nn_avx512_f32_to_bf16(dst, src, n);
        return;
    }
    for (size_t i = 0; i < n; i++) dst[i] = nn_f32_to_bf16(src[i]);
}

/* ---- dispatch ------------------------------------------------------------------------- */

nn_gemv_f32_fn nn_pick_gemv_f32(void)
{
    if (nn_cpu_avx512()) return nn_avx512_gemv_f32;
    if (nn_cpu_avx2()) return nn_avx2_gemv_f32;
    return nn_ref_gemv_f32;
}

nn_gemv_bf16_fn nn_pick_gemv_bf16(void)
{
    if (nn_cpu_avx512()) return nn_avx512_gemv_bf16;
    if (nn_cpu_avx2()) return nn_avx2_gemv_bf16;
    return nn_ref_gemv_bf16;
}

nn_dot_fn nn_pick_dot(void)
{
    if (nn_cpu_avx2()) return nn_avx2_dot;
    return nn_ref_dot;
}

nn_gemm_f32_fn nn_pick_gemm_f32(void)
{
    if (nn_cpu_avx512()) return nn_avx512_gemm_f32;
    if (nn_cpu_avx2()) return nn_avx2_gemm_f32;
    return nn_ref_gemm_f32;
}

nn_gemm_bf16_fn nn_pick_gemm_bf16(void)
{
    if (nn_cpu_avx512()) return nn_avx512_gemm_bf16;
    if (nn_cpu_avx2()) return nn_avx2_gemm_bf16;
    return nn_ref_gemm_bf16;
}

int nn_gemm_fast(void) { return nn_cpu_avx2() || nn_cpu_avx512(); }

nn_gemm_q8_fn nn_pick_gemm_q8(void)
{
    if (nn_cpu_avx512vnni()) return nn_avx512vnni_gemm_q8;
    if (nn_cpu_avx2()) return nn_avx2_gemm_q8;
    return nn_ref_gemm_q8;
}

void nn_ref_axpy(float *y, float a, const float *x, int n)
{
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

void nn_ref_dot4(const float *const q[4], const float *k, int n, float out[4])
{
    for (int i = 0; i < 4; i++) out[i] = nn_ref_dot(q[i], k, n);
}

void nn_ref_axpy4(float *const o[4], const float w[4], const float *v, int n)
{
    for (int i = 0; i < 4; i++) nn_ref_axpy(o[i], w[i], v, n);
}

void nn_ref_dotn(float *out, const float *q, const float *K, size_t ld, int n, int hd)
{
    for (int j = 0; j < n; j++) out[j] = nn_ref_dot(q, K + (size_t)j * ld, hd);
}

void nn_ref_axpyn(float *o, const float *w, const float *V, size_t ld, int n, int hd)
{
    for (int j = 0; j < n; j++) nn_ref_axpy(o, w[j], V + (size_t)j * ld, hd);
}

void nn_ref_dot4n(float *out, size_t ldo, const float *const q[4], const float *K, size_t ld, int n, int hd)
{
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < n; j++) out[(size_t)i * ldo + j] = nn_ref_dot(q[i], K + (size_t)j * ld, hd);
}

void nn_ref_axpy4n(float *const o[4], const float *w, size_t ldw, const float *V, size_t ld, int n, int hd)
{
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < n; j++) nn_ref_axpy(o[i], w[(size_t)i * ldw + j], V + (size_t)j * ld, hd);
}

/* without AVX-512: one dot4 / axpy4 call per cache row (AVX2 or the references) */
static void dot4n_rows(float *out, size_t ldo, const float *const q[4], const float *K, size_t ld, int n, int hd)
{
    nn_dot4_fn dot4 = nn_pick_dot4();
    float d[4];
    for (int j = 0; j < n; j++) {
        dot4(q, K + (size_t)j * ld, hd, d);
        for (int i = 0; i < 4; i++) out[(size_t)i * ldo + j] = d[i];
    }
}

static void axpy4n_rows(float *const o[4], const float *w, size_t ldw, const float *V, size_t ld, int n, int hd)
{
    nn_axpy4_fn axpy4 = nn_pick_axpy4();
    float w4[4];
    for (int j = 0; j < n; j++) {
        for (int i = 0; i < 4; i++) w4[i] = w[(size_t)i * ldw + j];
        axpy4(o, w4, V + (size_t)j * ld, hd);
    }
}

nn_dot4n_fn nn_pick_dot4n(int hd)
{
    return nn_cpu_avx512() && hd % 16 == 0 && hd <= 64 ? nn_avx512_dot4n : dot4n_rows;
}

nn_axpy4n_fn nn_pick_axpy4n(int hd)
{
    return nn_cpu_avx512() && hd % 16 == 0 && hd <= 64 ? nn_avx512_axpy4n : axpy4n_rows;
}

nn_dotn_fn nn_pick_dotn(int hd)
{
    return nn_cpu_avx512() && hd % 16 == 0 && hd <= 128 ? nn_avx512_dotn : nn_ref_dotn;
}

nn_axpyn_fn nn_pick_axpyn(int hd)
{
    return nn_cpu_avx512() && hd % 16 == 0 && hd <= 128 ? nn_avx512_axpyn : nn_ref_axpyn;
}

nn_gelu_fn nn_pick_gelu(void) { return nn_cpu_avx2() ? nn_avx2_gelu : nn_ref_gelu_erf; }

nn_dot4_fn nn_pick_dot4(void) { return nn_cpu_avx2() ? nn_avx2_dot4 : nn_ref_dot4; }
nn_axpy4_fn nn_pick_axpy4(void) { return nn_cpu_avx2() ? nn_avx2_axpy4 : nn_ref_axpy4; }

nn_axpy_fn nn_pick_axpy(void)
{
    if (nn_cpu_avx2()) return nn_avx2_axpy;
    return nn_ref_axpy;
}

const char *nn_kernel_name(void)
{
    return nn_cpu_avx512() ? "avx512" : nn_cpu_avx2() ? "avx2" : "generic";
}

void nn_set_threads(int n) { openblas_set_num_threads(n < 1 ? 1 : n); }
int nn_get_threads(void) { return openblas_get_num_threads(); }

/* ---- pool ------------------------------------------------------------------------------
 * Fork-join with a short spin before sleeping: a FlowLM step issues ~40 splits a few
 * hundred microseconds apart, and a condition-variable wake-up costs tens of
 * microseconds each time. Workers and the caller spin on atomics for up to NN_SPIN polls
 * (`pause` first, then sched_yield so an oversubscribed box is not fought), then fall back to the condition variables (so an idle pool sleeps). Lost wake-ups are
 * impossible: `gen` is bumped and broadcast under `mu`, and sleepers re-check it under
 * `mu`; likewise for `pending`/`done`. */

#define NN_SPIN (NN_SPIN_PAUSE + 128)

struct nn_pool {
    int n;                 /* parts = threads incl. caller */
    pthread_t *th;         /* [n-1] */
    pthread_mutex_t run;   /* serialises nn_pool_run callers */
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    unsigned long gen;     /* bumped per job (atomic) */
    int pending;           /* workers still busy with the current job (atomic) */
    int quit;              /* atomic */
    nn_task_fn fn;
    void *arg;
};

typedef struct worker_arg {
    nn_pool *p;
    int id;
} worker_arg;

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* One poll of a spin-wait: the first NN_SPIN_PAUSE polls are `pause`, the rest give the
 * core away (sched_yield). When the machine is oversubscribed both pool threads can share
 * one core; a pure pause-spin then burns the time slice the thread it waits for needs. */
#define NN_SPIN_PAUSE 512
static inline void spin_poll(int spins)
{
    if (spins < NN_SPIN_PAUSE) cpu_relax();
    else sched_yield();
}

static void *worker(void *a)
{
    worker_arg wa = *(worker_arg *)a;
    free(a);
    nn_pool *p = wa.p;
    unsigned long seen = 0;
    for (;;) {
        int spins = 0;
        while (__atomic_load_n(&p->gen, __ATOMIC_ACQUIRE) == seen && !__atomic_load_n(&p->quit, __ATOMIC_ACQUIRE) &&
               spins < NN_SPIN)
            spin_poll(spins++);
        pthread_mutex_lock(&p->mu);
        while (__atomic_load_n(&p->gen, __ATOMIC_ACQUIRE) == seen && !p->quit) pthread_cond_wait(&p->go, &p->mu);
        if (p->quit) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        seen = p->gen;
        nn_task_fn fn = p->fn;
        void *arg = p->arg;
        pthread_mutex_unlock(&p->mu);
        fn(arg, wa.id, p->n);
        if (__atomic_sub_fetch(&p->pending, 1, __ATOMIC_ACQ_REL) == 0) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

int nn_pool_new(nn_pool **out, int nthreads, char *err, size_t errlen)
{
    *out = NULL;
    if (nthreads < 1 || nthreads > 256) return err_set(err, errlen, ERR_INVAL, "nn: %d threads out of range", nthreads);
    nn_pool *p = calloc(1, sizeof *p);
    if (!p) return err_set(err, errlen, ERR_NOMEM, "nn: out of memory");
    p->n = nthreads;
    pthread_mutex_init(&p->run, NULL);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    if (nthreads > 1) {
        p->th = calloc((size_t)nthreads - 1, sizeof *p->th);
        if (!p->th) {
            nn_pool_free(p);
            return err_set(err, errlen, ERR_NOMEM, "nn: out of memory");
        }
        for (int i = 1; i < nthreads; i++) {
            worker_arg *wa = malloc(sizeof *wa);
            if (!wa || pthread_create(&p->th[i - 1], NULL, worker, (*wa = (worker_arg){p, i}, wa))) {
                free(wa);
                p->n = i; /* join only the ones started */
                nn_pool_free(p);
                return err_set(err, errlen, ERR_NOMEM, "nn: cannot start thread %d", i);
            }
        }
    }
    *out = p;
    return 0;
}

void nn_pool_free(nn_pool *p)
{
    if (!p) return;
    if (p->th) {
        pthread_mutex_lock(&p->mu);
        __atomic_store_n(&p->quit, 1, __ATOMIC_RELEASE);
        pthread_cond_broadcast(&p->go);
        pthread_mutex_unlock(&p->mu);
        for (int i = 1; i < p->n; i++) pthread_join(p->th[i - 1], NULL);
        free(p->th);
    }
    pthread_mutex_destroy(&p->run);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    free(p);
}

int nn_pool_threads(const nn_pool *p) { return p ? p->n : 1; }

void nn_pool_run(nn_pool *p, nn_task_fn fn, void *arg)
{
    if (!p || p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    pthread_mutex_lock(&p->run);
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    __atomic_store_n(&p->pending, p->n - 1, __ATOMIC_RELEASE);
    __atomic_add_fetch(&p->gen, 1, __ATOMIC_ACQ_REL);
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    fn(arg, 0, p->n);
    int spins = 0;
    while (__atomic_load_n(&p->pending, __ATOMIC_ACQUIRE) && spins < NN_SPIN) spin_poll(spins++);
    pthread_mutex_lock(&p->mu);
    while (__atomic_load_n(&p->pending, __ATOMIC_ACQUIRE)) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&p->run);
}

/* ---- weights --------------------------------------------------------------------------- */

/* Quantizes tensor t [rows, cols] into dst (nn_mat_bytes(rows, cols, NN_Q8) bytes):
 * F32 aligned data is read in place, anything else converted to a temporary F32 copy. */
static int q8_fill(void *dst, const st_tensor *t, int rows, int cols, char *err, size_t errlen)
{
    if (cols % NN_Q8_GROUP || cols > NN_Q8_MAXCOLS)
        return err_set(err, errlen, ERR_FORMAT, "tensor '%s': int8 needs cols %% %d == 0 and <= %d (got %d)", t->name,
                       NN_Q8_GROUP, NN_Q8_MAXCOLS, cols);
    size_t n = (size_t)rows * cols;
    const float *src = NULL;
    float *tmp = NULL;
    if (t->dtype == ST_F32 && ((uintptr_t)t->data & 3) == 0) {
        src = t->data;
    } else {
        tmp = malloc(n * sizeof *tmp);
        int rc = tmp ? st_to_f32(t, tmp, n, err, errlen) : err_set(err, errlen, ERR_NOMEM, "out of memory");
        if (rc) {
            free(tmp);
            return rc;
        }
        src = tmp;
    }
    nn_mat v = {.w = dst, .dtype = NN_Q8, .rows = rows, .cols = cols, .owned = NULL};
    nn_q8_quant_weights(dst, (float *)nn_q8_scales(&v), src, rows, cols);
    free(tmp);
    return 0;
}

int nn_mat_from_st(nn_mat *m, const st_tensor *t, int rows, int cols, nn_dtype want, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    if (!t || rows < 1 || cols < 1 || t->numel != (int64_t)rows * cols)
        return err_set(err, errlen, ERR_FORMAT, "tensor '%s': %lld values, expected [%d, %d]", t ? t->name : "?",
                       t ? (long long)t->numel : 0LL, rows, cols);
    size_t n = (size_t)rows * cols;
    m->rows = rows;
    m->cols = cols;
    if (want == NN_Q8) {
        void *o = malloc(nn_mat_bytes(rows, cols, NN_Q8));
        if (!o) return err_set(err, errlen, ERR_NOMEM, "tensor '%s': out of memory", t->name);
        int rc = q8_fill(o, t, rows, cols, err, errlen);
        if (rc) {
            free(o);
            memset(m, 0, sizeof *m);
            return rc;
        }
        m->dtype = NN_Q8;
        m->w = m->owned = o;
        return 0;
    }
    if (want == NN_BF16) {
        m->dtype = NN_BF16;
        if (t->dtype == ST_BF16 && ((uintptr_t)t->data & 1) == 0) {
            m->w = t->data;
            return 0;
        }
        uint16_t *o = malloc(n * sizeof *o);
        if (!o) return err_set(err, errlen, ERR_NOMEM, "tensor '%s': out of memory", t->name);
        if (t->dtype == ST_BF16) memcpy(o, t->data, n * 2);
        else if (t->dtype == ST_F32 && ((uintptr_t)t->data & 3) == 0) nn_f32_to_bf16_n(o, t->data, n);
        else {
            float *tmp = malloc(n * sizeof *tmp);
            int rc = tmp ? st_to_f32(t, tmp, n, err, errlen) : err_set(err, errlen, ERR_NOMEM, "out of memory");
            if (rc) {
                free(tmp);
                free(o);
                return rc;
            }
            nn_f32_to_bf16_n(o, tmp, n);
            free(tmp);
        }
        m->w = m->owned = o;
        return 0;
    }
    m->dtype = NN_F32;
    if (t->dtype == ST_F32 && ((uintptr_t)t->data & 3) == 0) {
        m->w = t->data;
        return 0;
    }
    float *o = malloc(n * sizeof *o);
    if (!o) return err_set(err, errlen, ERR_NOMEM, "tensor '%s': out of memory", t->name);
    int rc = st_to_f32(t, o, n, err, errlen);
    if (rc) {
        free(o);
        return rc;
    }
    m->w = m->owned = o;
    return 0;
}

size_t nn_mat_bytes(int rows, int cols, nn_dtype dt)
{
    size_t n = (size_t)rows * (size_t)cols;
    if (dt == NN_Q8) return ((n + 63) & ~(size_t)63) + (size_t)rows * sizeof(float);
    return n * (dt == NN_BF16 ? 2 : 4);
}

int nn_mat_into(nn_mat *m, const st_tensor *t, int rows, int cols, nn_dtype want, void *dst, char *err, size_t errlen)
{
    if (want == NN_Q8) {
        if (!t || rows < 1 || cols < 1 || t->numel != (int64_t)rows * cols)
            return err_set(err, errlen, ERR_FORMAT, "tensor '%s': %lld values, expected [%d, %d]", t ? t->name : "?",
                           t ? (long long)t->numel : 0LL, rows, cols);
        int rc = q8_fill(dst, t, rows, cols, err, errlen);
        if (!rc) *m = (nn_mat){.w = dst, .dtype = NN_Q8, .rows = rows, .cols = cols, .owned = NULL};
        return rc;
    }
    /* the common cases straight into dst (one pass, no temporary) */
    if (t && rows > 0 && cols > 0 && t->numel == (int64_t)rows * cols && ((uintptr_t)t->data & 3) == 0 &&
        (want == NN_F32 || want == NN_BF16) && (t->dtype == ST_F32 || (t->dtype == ST_BF16 && want == NN_BF16))) {
        size_t n = (size_t)rows * cols;
        if (want == NN_F32) memcpy(dst, t->data, n * 4);
        else if (t->dtype == ST_BF16) memcpy(dst, t->data, n * 2);
        else nn_f32_to_bf16_n(dst, t->data, n);
        *m = (nn_mat){dst, want, rows, cols, NULL};
        return 0;
    }
    nn_mat tmp;
    int rc = nn_mat_from_st(&tmp, t, rows, cols, want, err, errlen);
    if (rc) return rc;
    memcpy(dst, tmp.w, nn_mat_bytes(rows, cols, tmp.dtype));
    nn_mat_free(&tmp);
    *m = (nn_mat){dst, want, rows, cols, NULL};
    return 0;
}

void nn_drop_source(const st_tensor *t)
{
    if (!t || !t->nbytes) return;
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)t->data + pg - 1) & ~(pg - 1), b = ((uintptr_t)t->data + t->nbytes) & ~(pg - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

#define NN_HUGE (2u << 20)

void *nn_huge_alloc(size_t n)
{
    size_t len = n + NN_HUGE;
    unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    uintptr_t a = ((uintptr_t)p + NN_HUGE - 1) & ~(uintptr_t)(NN_HUGE - 1);
    /* trim the unaligned head and the tail so only [a, a + n) stays mapped */
    size_t head = (size_t)(a - (uintptr_t)p);
    if (head) munmap(p, head);
    size_t tail = len - head - n;
    if (tail) munmap((unsigned char *)a + n, tail);
#ifdef MADV_HUGEPAGE
    madvise((void *)a, n, MADV_HUGEPAGE);
#endif
    return (void *)a;
}

void nn_huge_free(void *p, size_t n)
{
    if (p) munmap(p, n);
}

void nn_mat_free(nn_mat *m)
{
    if (!m) return;
    free(m->owned);
    memset(m, 0, sizeof *m);
}

float *nn_vec_from_st(const st_tensor *t, size_t n, char *err, size_t errlen)
{
    if (!t || (size_t)t->numel != n) {
        err_set(err, errlen, ERR_FORMAT, "tensor '%s': %lld values, expected %zu", t ? t->name : "?",
                t ? (long long)t->numel : 0LL, n);
        return NULL;
    }
    float *v = malloc((n ? n : 1) * sizeof *v);
    if (!v) {
        err_set(err, errlen, ERR_NOMEM, "tensor '%s': out of memory", t->name);
        return NULL;
    }
    if (st_to_f32(t, v, n, err, errlen)) {
        free(v);
        return NULL;
    }
    return v;
}

/* ---- linear ---------------------------------------------------------------------------- */

typedef struct gemv_job {
    float *y;
    const float *x;
    int M;
    const nn_mat *W;
    int chunk_rows; /* rows per chunk, multiple of 16 (parts never share a cache line of y) */
    int nchunks;
    int next;       /* next chunk to take (atomic) */
    int blas;       /* M > 1 through OpenBLAS sgemm (single-threaded) instead of our GEMM */
    const nn_q8x *qx; /* NN_Q8: x quantized once per call */
    const float *b;   /* [rows]: added by the GEMM kernels themselves (else NULL: added after) */
} gemv_job;

/* OpenBLAS for rows [r0, r1): F32 in place; BF16 widened 64 rows at a time */
static void blas_rows(const gemv_job *j, int r0, int r1)
{
    int rows = j->W->rows, cols = j->W->cols, M = j->M;
    if (j->W->dtype == NN_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, r1 - r0, cols, 1.0f, j->x, cols,
                    (const float *)j->W->w + (size_t)r0 * cols, cols, 0.0f, j->y + r0, rows);
        return;
    }
    enum { BR = 64 };
    float *blk = malloc((size_t)BR * cols * sizeof *blk);
    CORE_ASSERT(blk != NULL);
    const uint16_t *w = j->W->w;
    for (int a = r0; a < r1; a += BR) {
        int nr = r1 - a < BR ? r1 - a : BR;
        for (size_t i = 0; i < (size_t)nr * cols; i++) blk[i] = nn_bf16_to_f32(w[(size_t)a * cols + i]);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, nr, cols, 1.0f, j->x, cols, blk, cols, 0.0f, j->y + a,
                    rows);
    }
    free(blk);
}

static void gemv_rows(const gemv_job *j, int r0, int r1)
{
    int rows = j->W->rows, cols = j->W->cols;
    if (j->blas) {
        blas_rows(j, r0, r1);
    } else if (j->W->dtype == NN_Q8) {
        nn_pick_gemm_q8()(j->y + r0, rows, j->qx, j->M, (const int8_t *)j->W->w + (size_t)r0 * cols,
                          nn_q8_scales(j->W) + r0, r1 - r0, cols);
    } else if (j->W->dtype == NN_F32) {
        const float *w = (const float *)j->W->w + (size_t)r0 * cols;
        if (j->M == 1) nn_pick_gemv_f32()(j->y + r0, j->x, w, r1 - r0, cols);
        else nn_pick_gemm_f32()(j->y + r0, rows, j->x, j->M, w, r1 - r0, cols, j->b ? j->b + r0 : NULL);
    } else {
        const uint16_t *w = (const uint16_t *)j->W->w + (size_t)r0 * cols;
        if (j->M == 1) nn_pick_gemv_bf16()(j->y + r0, j->x, w, r1 - r0, cols);
        else nn_pick_gemm_bf16()(j->y + r0, rows, j->x, j->M, w, r1 - r0, cols, j->b ? j->b + r0 : NULL);
    }
}

/* Every participant takes chunks from a shared counter until none are left, so a thread
 * that starts late (busy machine, descheduled worker) simply does fewer chunks instead of
 * making the others wait for its fixed share. M == 1 runs the GEMV kernel, M > 1 GEMM. */
static void gemv_part(void *arg, int part, int nparts)
{
    gemv_job *j = arg;
    (void)part, (void)nparts;
    for (;;) {
        int c = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
        if (c >= j->nchunks) return;
        int r0 = c * j->chunk_rows, r1 = r0 + j->chunk_rows;
        if (r1 > j->W->rows) r1 = j->W->rows;
        gemv_rows(j, r0, r1);
    }
}

/* The GEMM chain (nn.h "GEMM invariance"): fmaf, k ascending from 0, then + b. */
void nn_ref_gemm_f32(float *y, int ldy, const float *x, int M, const float *W, int rows, int cols, const float *b)
{
    for (int m = 0; m < M; m++)
        for (int r = 0; r < rows; r++) {
            const float *xr = x + (size_t)m * cols, *w = W + (size_t)r * cols;
            float acc = 0.0f;
            for (int k = 0; k < cols; k++) acc = fmaf(xr[k], w[k], acc);
            y[(size_t)m * ldy + r] = b ? acc + b[r] : acc;
        }
}

void nn_ref_gemm_bf16(float *y, int ldy, const float *x, int M, const uint16_t *W, int rows, int cols, const float *b)
{
    for (int m = 0; m < M; m++)
        for (int r = 0; r < rows; r++) {
            const float *xr = x + (size_t)m * cols;
            const uint16_t *w = W + (size_t)r * cols;
            float acc = 0.0f;
            for (int k = 0; k < cols; k++) acc = fmaf(xr[k], nn_bf16_to_f32(w[k]), acc);
            y[(size_t)m * ldy + r] = b ? acc + b[r] : acc;
        }
}

void nn_linear(nn_pool *pool, float *y, const float *x, int M, const nn_mat *W, const float *b)
{
    int rows = W->rows, cols = W->cols;
    if (M <= 0) return;
    /* M == 1: our GEMV. M > 1, F32/BF16: our packed GEMM (gemm_x86.c) on AVX2/AVX-512
     * CPUs, OpenBLAS sgemm elsewhere. NN_Q8: the int8 kernels. */
    int gemm = M > 1 && W->dtype != NN_Q8;
    int blas = gemm && !nn_gemm_fast();
    /* NN_Q8: the activations are quantized once here (on the stack for one position, else
     * one heap block: prompt passes only) and shared by every row chunk */
    enum { QSTK = 4096 };
    int8_t qs_q[QSTK];
    float qs_s[QSTK / NN_Q8_GROUP];
    int32_t qs_c[QSTK / 4];
    void *qheap = NULL;
    nn_q8x qx = {0};
    if (W->dtype == NN_Q8) {
        size_t n = (size_t)M * cols;
        int8_t *q = qs_q;
        float *s = qs_s;
        int32_t *c = qs_c;
        if (n > QSTK) {
            qheap = malloc(n + n / NN_Q8_GROUP * sizeof(float) + n / 4 * sizeof(int32_t));
            CORE_ASSERT(qheap != NULL);
            s = qheap;
            c = (int32_t *)(s + n / NN_Q8_GROUP);
            q = (int8_t *)(c + n / 4);
        }
        nn_q8_quant_act(q, s, c, x, M, cols);
        qx = (nn_q8x){q, s, c};
    }
    /* Either way the rows are split across our pool (OpenBLAS itself is meant to run with
     * one thread: its own threads spin and fight ours on a busy machine). Small matrices
     * are not worth waking threads for. */
    int n = (size_t)rows * cols * M < 65536 ? 1 : nn_pool_threads(pool);
    /* ~8 chunks per thread, multiples of 16 rows (GEMM: 32, one AVX-512 panel; parts never
     * share a cache line of y); a row's result does not depend on the split. A fixed 128 rows for
     * OpenBLAS, whose results do depend on the call's shape, so the output stays
     * bit-identical for any thread count. */
    int al = gemm ? 32 : 16;
    int cr = blas ? 128 : n == 1 ? rows : ((rows + 8 * n - 1) / (8 * n) + al - 1) / al * al;
    if (cr < al) cr = al;
    gemv_job j = {y, x, M, W, cr, (rows + cr - 1) / cr, 0, blas, &qx, gemm && !blas ? b : NULL};
    if (n == 1) gemv_part(&j, 0, 1);
    else nn_pool_run(pool, gemv_part, &j);
    free(qheap);
    if (b && !j.b)
        for (int m = 0; m < M; m++)
            for (int r = 0; r < rows; r++) y[(size_t)m * rows + r] += b[r];
}

/* ---- norms and activations ------------------------------------------------------------- */

void nn_layernorm(float *y, const float *x, int M, int D, const float *w, const float *b, float eps)
{
    for (int m = 0; m < M; m++) {
        const float *xr = x + (size_t)m * D;
        float *yr = y + (size_t)m * D;
        double s = 0, ss = 0;
        for (int i = 0; i < D; i++) s += xr[i];
        double mean = s / D;
        for (int i = 0; i < D; i++) {
            double d = xr[i] - mean;
            ss += d * d;
        }
        float inv = (float)(1.0 / sqrt(ss / D + (double)eps));
        float mf = (float)mean;
        for (int i = 0; i < D; i++) {
            float v = (xr[i] - mf) * inv;
            if (w) v *= w[i];
            if (b) v += b[i];
            yr[i] = v;
        }
    }
}

void nn_rmsnorm_var(float *y, const float *x, int M, int D, const float *alpha, float eps)
{
    for (int m = 0; m < M; m++) {
        const float *xr = x + (size_t)m * D;
        float *yr = y + (size_t)m * D;
        double s = 0, ss = 0;
        for (int i = 0; i < D; i++) s += xr[i];
        double mean = s / D;
        for (int i = 0; i < D; i++) {
            double d = xr[i] - mean;
            ss += d * d;
        }
        double var = D > 1 ? ss / (D - 1) : 0.0;
        float inv = (float)(1.0 / sqrt((double)eps + var));
        for (int i = 0; i < D; i++) yr[i] = xr[i] * (alpha[i] * inv);
    }
}

void nn_ref_gelu_erf(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

void nn_gelu_erf(float *x, size_t n) { nn_pick_gelu()(x, n); }

void nn_silu(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-x[i]));
}

void nn_elu(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (x[i] <= 0) x[i] = expm1f(x[i]);
}

/* ---- RoPE and time embedding ----------------------------------------------------------- */

void nn_rope(float *x, int L, int heads, int hd, int64_t pos0, float max_period)
{
    int half = hd / 2;
    float c = (float)(-log((double)max_period) * 2.0 / hd);
    for (int t = 0; t < L; t++) {
        float pos = (float)(pos0 + t);
        for (int i = 0; i < half; i++) {
            float freq = expf((float)i * c);
            float ang = freq * pos;
            float cs = cosf(ang), sn = sinf(ang);
            for (int h = 0; h < heads; h++) {
                float *p = x + ((size_t)t * heads + h) * hd + 2 * i;
                float a = p[0], b = p[1];
                p[0] = a * cs - b * sn;
                p[1] = a * sn + b * cs;
            }
        }
    }
}

void nn_time_embed(float *out, float t, const float *freqs, int half)
{
    for (int i = 0; i < half; i++) {
        float a = t * freqs[i];
        out[i] = cosf(a);
        out[half + i] = sinf(a);
    }
}

/* ---- attention ------------------------------------------------------------------------- */

int nn_kv_init(nn_kv *c, int cap, int heads, int hd, int context, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    if (cap < 1 || heads < 1 || hd < 1 || context < 0)
        return err_set(err, errlen, ERR_INVAL, "nn: bad KV cache geometry %d x %d x %d", cap, heads, hd);
    size_t n = (size_t)cap * heads * hd;
    c->k = malloc(n * sizeof *c->k);
    c->v = malloc(n * sizeof *c->v);
    if (!c->k || !c->v) {
        nn_kv_free(c);
        return err_set(err, errlen, ERR_NOMEM, "nn: KV cache of %d positions: out of memory", cap);
    }
    c->cap = cap;
    c->heads = heads;
    c->hd = hd;
    c->context = context;
    return 0;
}

void nn_kv_free(nn_kv *c)
{
    if (!c) return;
    free(c->k);
    free(c->v);
    memset(c, 0, sizeof *c);
}

/* Queries in blocks of 4 (prompt passes, Mimi's 16-step frames): every cached key and
 * value row is loaded once per block instead of once per query. Scores of the block live
 * on the stack (4 x the union of the 4 windows, capped); returns how many queries it
 * handled (a multiple of 4; the caller does the rest one by one). Per query the window,
 * mask and softmax are those of the one-by-one path (the dot products and weighted sums
 * run in blocks, dot4n/axpy4n, so they may differ from it in the last bits). */
enum { NN_QB = 4, NN_QB_SCR = 4096 };

static int attend_blocks(const nn_kv *c, float *out, const float *q, int L, int64_t p0, float scale)
{
    int H = c->heads, hd = c->hd;
    size_t row = (size_t)H * hd;
    nn_dot4n_fn dot4n = nn_pick_dot4n(hd);
    nn_axpy4n_fn axpy4n = nn_pick_axpy4n(hd);
    float sbuf[NN_QB_SCR];
    int t = 0;
    for (; t + NN_QB <= L; t += NN_QB) {
        int64_t pf = p0 + t, pl = pf + NN_QB - 1;
        int64_t lo_u = c->context ? pf - c->context + 1 : 0;
        if (lo_u < 0) lo_u = 0;
        int nu = (int)(pl - lo_u + 1);
        if ((size_t)nu * NN_QB > NN_QB_SCR) break;
        for (int h = 0; h < H; h++) {
            const float *qs[NN_QB];
            float *sc[NN_QB], *os[NN_QB];
            for (int i = 0; i < NN_QB; i++) {
                qs[i] = q + (size_t)(t + i) * row + (size_t)h * hd;
                os[i] = out + (size_t)(t + i) * row + (size_t)h * hd;
                sc[i] = sbuf + (size_t)i * nu;
                memset(os[i], 0, (size_t)hd * sizeof(float));
            }
            /* keys lo_u .. lo_u+nu-1: slots s0.. (n0 of them), then from slot 0 (ring wrap) */
            int s0 = (int)(lo_u % c->cap), n0 = c->cap - s0 < nu ? c->cap - s0 : nu;
            const float *kh = c->k + (size_t)h * hd, *vh = c->v + (size_t)h * hd;
            dot4n(sbuf, (size_t)nu, qs, kh + (size_t)s0 * row, row, n0, hd);
            if (nu > n0) dot4n(sbuf + n0, (size_t)nu, qs, kh, row, nu - n0, hd);
            for (int i = 0; i < NN_QB; i++)
                for (int j = 0; j < nu; j++) sc[i][j] *= scale;
            for (int i = 0; i < NN_QB; i++) {
                int64_t p = pf + i, lo = c->context ? p - c->context + 1 : 0;
                if (lo < 0) lo = 0;
                int a = (int)(lo - lo_u), b = (int)(p - lo_u); /* valid j in [a, b] */
                float mx = -INFINITY, sum = 0;
                for (int j = a; j <= b; j++)
                    if (sc[i][j] > mx) mx = sc[i][j];
                for (int j = 0; j < nu; j++) {
                    sc[i][j] = j < a || j > b ? 0.0f : expf(sc[i][j] - mx);
                    sum += sc[i][j];
                }
                float inv = 1.0f / sum;
                for (int j = a; j <= b; j++) sc[i][j] *= inv;
            }
            axpy4n(os, sbuf, (size_t)nu, vh + (size_t)s0 * row, row, n0, hd);
            if (nu > n0) axpy4n(os, sbuf + n0, (size_t)nu, vh, row, nu - n0, hd);
        }
    }
    return t;
}

int nn_attend(nn_kv *c, float *out, const float *q, const float *k, const float *v, int L, float *scratch)
{
    int H = c->heads, hd = c->hd;
    size_t row = (size_t)H * hd;
    int64_t p0 = c->len;
    if (L <= 0) return 0;
    if (c->context == 0) {
        if (p0 + L > c->cap) return ERR_TOOBIG;
    } else if (c->cap < c->context + L - 1) {
        return ERR_TOOBIG;
    }
    for (int t = 0; t < L; t++) {
        size_t s = (size_t)((p0 + t) % c->cap);
        memcpy(c->k + s * row, k + (size_t)t * row, row * sizeof *k);
        memcpy(c->v + s * row, v + (size_t)t * row, row * sizeof *v);
    }
    c->len = p0 + L;
    float scale = 1.0f / sqrtf((float)hd);
    int t = attend_blocks(c, out, q, L, p0, scale);
    /* the rest (generation steps: L == 1) one query at a time; the window [lo, p] is at
     * most two contiguous runs of cache slots (the ring wraps once at most) */
    nn_dotn_fn dotn = nn_pick_dotn(hd);
    nn_axpyn_fn axpyn = nn_pick_axpyn(hd);
    for (; t < L; t++) {
        int64_t p = p0 + t;
        int64_t lo = c->context ? p - c->context + 1 : 0;
        if (lo < 0) lo = 0;
        int n = (int)(p - lo + 1);
        int s0 = (int)(lo % c->cap), n0 = c->cap - s0 < n ? c->cap - s0 : n; /* slots s0.., then 0.. */
        for (int h = 0; h < H; h++) {
            const float *qh = q + (size_t)t * row + (size_t)h * hd;
            dotn(scratch, qh, c->k + (size_t)s0 * row + (size_t)h * hd, row, n0, hd);
            if (n > n0) dotn(scratch + n0, qh, c->k + (size_t)h * hd, row, n - n0, hd);
            float mx = -INFINITY;
            for (int j = 0; j < n; j++) {
                scratch[j] *= scale;
                if (scratch[j] > mx) mx = scratch[j];
            }
            float sum = 0;
            for (int j = 0; j < n; j++) {
                scratch[j] = expf(scratch[j] - mx);
                sum += scratch[j];
            }
            float inv = 1.0f / sum;
            for (int j = 0; j < n; j++) scratch[j] *= inv;
            float *o = out + (size_t)t * row + (size_t)h * hd;
            memset(o, 0, (size_t)hd * sizeof *o);
            axpyn(o, scratch, c->v + (size_t)s0 * row + (size_t)h * hd, row, n0, hd);
            if (n > n0) axpyn(o, scratch + n0, c->v + (size_t)h * hd, row, n - n0, hd);
        }
    }
    return 0;
}
