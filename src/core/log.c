/* log.c — see log.h. One mutex per logger serialises whole lines. */
#include "core/log.h"
#include "core/err.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

struct lg_logger {
    FILE *f;
    int level;
    pthread_mutex_t mu;
};

int lg_new(lg_logger **out, FILE *f, int level)
{
    lg_logger *lg = calloc(1, sizeof *lg);
    if (!lg) return ERR_NOMEM;
    lg->f = f;
    lg->level = level;
    pthread_mutex_init(&lg->mu, NULL);
    *out = lg;
    return 0;
}

void lg_free(lg_logger *lg)
{
    if (!lg) return;
    pthread_mutex_destroy(&lg->mu);
    free(lg);
}

int lg_level_from_name(const char *s)
{
    if (!s) return -1;
    if (!strcasecmp(s, "DEBUG")) return LG_DEBUG;
    if (!strcasecmp(s, "INFO")) return LG_INFO;
    if (!strcasecmp(s, "WARNING") || !strcasecmp(s, "WARN")) return LG_WARN;
    if (!strcasecmp(s, "ERROR") || !strcasecmp(s, "CRITICAL")) return LG_ERROR;
    if (!strcasecmp(s, "OFF") || !strcasecmp(s, "NONE")) return LG_OFF;
    return -1;
}

int lg_enabled(const lg_logger *lg, int level)
{
    return lg && lg->f && level >= lg->level && level < LG_OFF;
}

void lg_log(lg_logger *lg, int level, const char *fmt, ...)
{
    static const char *names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    if (!lg_enabled(lg, level)) return;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    pthread_mutex_lock(&lg->mu);
    fprintf(lg->f, "%s.%03dZ %-5s ", ts, (int)(tv.tv_usec / 1000), names[level]);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(lg->f, fmt, ap);
    va_end(ap);
    fputc('\n', lg->f);
    fflush(lg->f);
    pthread_mutex_unlock(&lg->mu);
}
