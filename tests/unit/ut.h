/* ut.h — the unit-test harness: named, table-driven suites in one binary.
 *
 * A test file defines static test functions, a table, and registers the suite with a
 * line that starts with UT_SUITE(name) (the Makefile's generator greps for it):
 *
 *   static void t_parse_ok(ut_ctx *t) { UT_EQ_INT(t, 3, parse("3")); }
 *   static const ut_case cases[] = { {"parse_ok", t_parse_ok}, };
 *   UT_SUITE(config, cases)
 *
 * Run all: ./build/unit_tests ; run some: ./build/unit_tests config json
 * Failures print file:line with expected and actual; a failed check ends that test.
 * ut_shared() gives the path of ../shared (POCKETTTS_SHARED overrides).
 */
#ifndef UT_H
#define UT_H

#include <math.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ut_ctx {
    jmp_buf jb;
    int failed;
    const char *name;
} ut_ctx;

typedef struct ut_case {
    const char *name;
    void (*fn)(ut_ctx *t);
} ut_case;

typedef struct ut_suite {
    const char *name;
    const ut_case *cases;
    size_t n;
} ut_suite;

#define UT_SUITE(nm, table) \
    const ut_suite ut_suite_##nm = {#nm, table, sizeof(table) / sizeof((table)[0])};

void ut_fail(ut_ctx *t, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5), noreturn));
const char *ut_shared(void);
/* Path under ut_shared(), in a static-per-call caller buffer. */
const char *ut_path(char *buf, size_t n, const char *rel);
/* Whole file, NUL-terminated, malloc'd (caller frees); NULL if unreadable. *n may be NULL. */
char *ut_slurp(const char *path, size_t *n);
/* Parsed JSON file (caller frees with cJSON_Delete); fails the test if unreadable or invalid. */
struct cJSON *ut_json(ut_ctx *t, const char *path);
/* Hex string -> bytes in out (room for strlen(hex)/2 + 1); NUL-terminates; returns the length. */
size_t ut_unhex(const char *hex, char *out);

#define UT_CHECK(t, c) \
    do { if (!(c)) ut_fail(t, __FILE__, __LINE__, "check failed: %s", #c); } while (0)
#define UT_EQ_INT(t, exp, act)                                                            \
    do { long long e_ = (long long)(exp), a_ = (long long)(act);                          \
         if (e_ != a_) ut_fail(t, __FILE__, __LINE__, "%s: expected %lld, got %lld", #act, e_, a_); \
    } while (0)
#define UT_EQ_STR(t, exp, act)                                                            \
    do { const char *e_ = (exp), *a_ = (act);                                             \
         if (!e_ || !a_ || strcmp(e_, a_))                                                \
             ut_fail(t, __FILE__, __LINE__, "%s: expected \"%s\", got \"%s\"", #act,      \
                     e_ ? e_ : "(null)", a_ ? a_ : "(null)");                              \
    } while (0)
#define UT_NEAR(t, exp, act, tol)                                                         \
    do { double e_ = (exp), a_ = (act);                                                   \
         if (!(fabs(e_ - a_) <= (tol)))                                                   \
             ut_fail(t, __FILE__, __LINE__, "%s: expected %.9g, got %.9g (tol %g)", #act, e_, a_, (double)(tol)); \
    } while (0)

#endif
