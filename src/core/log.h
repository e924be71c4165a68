/* log.h — leveled, line-oriented logging to a FILE (stderr by default).
 *
 * A logger is an object created in main and passed down to the layers that log
 * (server, api). Deep modules (engines, codecs, nn) never log: they return errors.
 * Each call writes one whole line under a mutex, prefixed with an ISO-8601 UTC time
 * and the level, so lines from many threads never interleave.
 *
 * Ownership: lg_new() returns a logger the caller frees with lg_free(); the FILE is
 * borrowed and must outlive the logger.
 */
#ifndef CORE_LOG_H
#define CORE_LOG_H

#include <stdio.h>

enum { LG_DEBUG = 0, LG_INFO = 1, LG_WARN = 2, LG_ERROR = 3, LG_OFF = 4 };

typedef struct lg_logger lg_logger;

int lg_new(lg_logger **out, FILE *f, int level);
void lg_free(lg_logger *lg);
/* Parses "DEBUG", "INFO", "WARNING"/"WARN", "ERROR", "OFF" (any case); -1 if unknown. */
int lg_level_from_name(const char *name);
int lg_enabled(const lg_logger *lg, int level); /* NULL logger: nothing enabled */
void lg_log(lg_logger *lg, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
