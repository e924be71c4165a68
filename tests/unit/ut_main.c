/* ut_main.c — runs the suites listed by the generated ut_all[] (see ut.h). */
#include "ut.h"

#include <cJSON.h>

#include <stdarg.h>
#include <stdlib.h>
#include <time.h>

extern const ut_suite *const ut_all[];

void ut_fail(ut_ctx *t, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "  FAIL %s (%s:%d): ", t->name, file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    t->failed = 1;
    longjmp(t->jb, 1);
}

const char *ut_shared(void)
{
    const char *s = getenv("POCKETTTS_SHARED");
    return s && *s ? s : "../shared";
}

const char *ut_path(char *buf, size_t n, const char *rel)
{
    snprintf(buf, n, "%s/%s", ut_shared(), rel);
    return buf;
}

char *ut_slurp(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    char *s = NULL;
    long len = -1;
    if (!fseek(fp, 0, SEEK_END)) len = ftell(fp);
    if (len >= 0 && !fseek(fp, 0, SEEK_SET) && (s = malloc((size_t)len + 1))) {
        if (fread(s, 1, (size_t)len, fp) != (size_t)len) {
            free(s);
            s = NULL;
        } else {
            s[len] = 0;
            if (n) *n = (size_t)len;
        }
    }
    fclose(fp);
    return s;
}

struct cJSON *ut_json(ut_ctx *t, const char *path)
{
    char *s = ut_slurp(path, NULL);
    if (!s) ut_fail(t, __FILE__, __LINE__, "cannot read %s", path);
    cJSON *j = cJSON_Parse(s);
    free(s);
    if (!j) ut_fail(t, __FILE__, __LINE__, "bad JSON in %s", path);
    return j;
}

size_t ut_unhex(const char *hex, char *out)
{
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (char)v;
    }
    out[n] = 0;
    return n;
}

static int selected(const char *name, int argc, char **argv)
{
    if (argc < 2) return 1;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], name)) return 1;
    return 0;
}

static int run_one(const ut_case *c)
{
    ut_ctx t = {.failed = 0, .name = c->name};
    if (!setjmp(t.jb)) c->fn(&t);
    return t.failed;
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (size_t s = 0; ut_all[s]; s++) {
        const ut_suite *su = ut_all[s];
        if (!selected(su->name, argc, argv)) continue;
        for (size_t k = 0; k < su->n; k++) {
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            int bad = run_one(&su->cases[k]);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
            if (bad) {
                failed++;
                printf("not ok %s.%s (%.0f ms)\n", su->name, su->cases[k].name, ms);
            } else {
                passed++;
                printf("ok %s.%s (%.0f ms)\n", su->name, su->cases[k].name, ms);
            }
        }
    }
    printf("unit: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
