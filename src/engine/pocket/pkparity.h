/* pkparity.h — compare our float32 tensors against golden ones and keep a tally.
 *
 * Used by the pocket-parity tool (FlowLM rows by "nn", Mimi rows by "mimi"). A row is one
 * module boundary: name, max absolute error, max relative error, tolerance, ok/FAIL.
 * Relative error is max|ours - ref| / max(max|ref|, PKP_REL_FLOOR) over the tensor (the
 * README's "relative to the tensor's max"); per-element relative error is meaningless near
 * zero, and so is a tensor-relative one for a near-zero scalar (an EOS logit of 0.018 with
 * float32 noise of 7e-7 would read 4e-5), hence the floor: model activations are O(1), so
 * it only matters for such near-zero tensors. NaN in both at
 * the same index counts as equal; NaN/Inf in only one makes the error infinite. A row fails
 * when rel > tol (tolerances are relative). Rows print to the FILE in the report (borrowed;
 * may be NULL to stay silent).
 *
 * Ownership: pkp_report is caller-owned plain data (zero-init + set `out`).
 * pkp_load() returns a malloc'd copy the caller frees.
 */
#ifndef ENGINE_POCKET_PKPARITY_H
#define ENGINE_POCKET_PKPARITY_H

#include <stddef.h>
#include <stdio.h>

#include "model/safetensors.h"

#define PKP_REL_FLOOR 0.1

typedef struct pkp_report {
    FILE *out;        /* borrowed; NULL = no printing */
    int rows;         /* rows compared */
    int fails;        /* rows past tolerance or missing */
    double worst_rel; /* largest relative error seen */
    char worst[128];  /* name of that row */
} pkp_report;

typedef struct pkp_err {
    double max_abs; /* max |ours - ref| */
    double max_ref; /* max |ref| */
    double rel;     /* max_abs / max(max_ref, PKP_REL_FLOOR) */
} pkp_err;

/* Pure comparison, no tally. */
pkp_err pkp_diff(const float *ref, const float *ours, size_t n);

/* Compares and records one row; returns 1 if ok, 0 if FAIL. */
int pkp_row(pkp_report *r, const char *name, const float *ref, const float *ours, size_t n, double tol);

/* Looks up `name` in the golden file, checks it has n values, compares, records the row.
 * A missing tensor or a size mismatch is a FAIL row (printed with the reason). */
int pkp_check(pkp_report *r, const st_file *golden, const char *name, const float *ours, size_t n, double tol);

/* Prints a free-form note row (e.g. "skipped: mimi not built"). */
void pkp_note(pkp_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Loads a golden tensor as f32. *out is malloc'd (caller frees); *n = number of values. */
int pkp_load(const st_file *golden, const char *name, float **out, size_t *n, char *err, size_t errlen);

/* Prints the summary line; returns 0 if no row failed, 1 otherwise. */
int pkp_summary(pkp_report *r);

#endif
