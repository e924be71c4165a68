/* pkparity.c — golden-tensor comparison rows and their tally (see pkparity.h).
 * Prints only to the FILE the caller put into the report. */
#include "engine/pocket/pkparity.h"

#include "core/err.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

pkp_err pkp_diff(const float *ref, const float *ours, size_t n)
{
    pkp_err e = {0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        double a = ref[i], b = ours[i];
        if (isnan(a) && isnan(b)) continue;
        if (!isfinite(a) || !isfinite(b)) {
            if (a == b) continue; /* same infinity */
            e.max_abs = INFINITY;
            continue;
        }
        double d = fabs(a - b);
        if (d > e.max_abs) e.max_abs = d;
        if (fabs(a) > e.max_ref) e.max_ref = fabs(a);
    }
    e.rel = e.max_abs / (e.max_ref > PKP_REL_FLOOR ? e.max_ref : PKP_REL_FLOOR);
    return e;
}

static void record(pkp_report *r, const char *name, double rel, int ok)
{
    r->rows++;
    if (!ok) r->fails++;
    if (rel > r->worst_rel || (isnan(rel) && !isnan(r->worst_rel))) {
        r->worst_rel = rel;
        snprintf(r->worst, sizeof r->worst, "%s", name);
    }
}

int pkp_row(pkp_report *r, const char *name, const float *ref, const float *ours, size_t n, double tol)
{
    pkp_err e = pkp_diff(ref, ours, n);
    int ok = e.rel <= tol;
    record(r, name, e.rel, ok);
    if (r->out)
        fprintf(r->out, "%-64s abs %9.3e  rel %9.3e  tol %7.1e  %s\n", name, e.max_abs, e.rel, tol, ok ? "ok" : "FAIL");
    return ok;
}

int pkp_load(const st_file *golden, const char *name, float **out, size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    const st_tensor *t = st_find(golden, name);
    if (!t) return err_set(err, errlen, ERR_NOTFOUND, "golden tensor '%s' missing", name);
    float *v = malloc(((size_t)t->numel + 1) * sizeof *v);
    if (!v) return err_set(err, errlen, ERR_NOMEM, "out of memory for '%s'", name);
    int rc = st_to_f32(t, v, (size_t)t->numel, err, errlen);
    if (rc) {
        free(v);
        return rc;
    }
    *out = v;
    *n = (size_t)t->numel;
    return 0;
}

int pkp_check(pkp_report *r, const st_file *golden, const char *name, const float *ours, size_t n, double tol)
{
    float *ref;
    size_t rn;
    char err[256];
    if (pkp_load(golden, name, &ref, &rn, err, sizeof err)) {
        record(r, name, INFINITY, 0);
        if (r->out) fprintf(r->out, "%-64s FAIL (%s)\n", name, err);
        return 0;
    }
    if (rn != n) {
        free(ref);
        record(r, name, INFINITY, 0);
        if (r->out) fprintf(r->out, "%-64s FAIL (golden has %zu values, ours %zu)\n", name, rn, n);
        return 0;
    }
    int ok = pkp_row(r, name, ref, ours, n, tol);
    free(ref);
    return ok;
}

void pkp_note(pkp_report *r, const char *fmt, ...)
{
    if (!r->out) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(r->out, fmt, ap);
    va_end(ap);
    fputc('\n', r->out);
}

int pkp_summary(pkp_report *r)
{
    if (r->out)
        fprintf(r->out, "parity: %d rows, %d failed, worst rel %.3e (%s)\n", r->rows, r->fails, r->worst_rel,
                r->worst[0] ? r->worst : "-");
    return r->fails ? 1 : 0;
}
