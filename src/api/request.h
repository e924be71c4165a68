/* request.h — OpenAI-shaped errors and strict parsing of POST /v1/audio/speech bodies.
 *
 * oai_speech_parse() turns a JSON body into a validated oai_speech or an oai_error
 * carrying the HTTP status, OpenAI's error type, a code and the offending `param`.
 * It is pure (no I/O, no logging) so every error path is unit-tested
 * (tests/unit/test_request.c). Rules, in the order they are checked:
 *   body not JSON / not an object            400 invalid_json
 *   input missing / not a string / empty     400 missing_required_parameter / invalid_type / empty_input
 *   input not valid UTF-8                    400 invalid_encoding
 *   input longer than max_input_chars        413 string_above_max_length (code points)
 *   model not a string / unknown             400 invalid_type / 404 model_not_found
 *   voice not a string or {"id": string}     400 invalid_type; unknown 400 voice_not_found
 *   response_format unknown / not built      400 invalid_value / unsupported_format
 *   speed not a number / outside 0.25..4     400 invalid_type / invalid_value
 *   stream not a bool; stream_format unknown 400 invalid_type / invalid_value
 *   instructions not a string / too long     400 invalid_type / 413 string_above_max_length
 *   seed (extension) not an integer 0..2^53  400 invalid_type / invalid_value
 * Unknown fields are ignored. Missing model = default engine, missing voice = the
 * engine's default voice, missing response_format = mp3 (OpenAI's default).
 *
 * Ownership: oai_speech owns `input` and `instructions` (malloc'd); oai_speech_free()
 * releases them. `eng` is borrowed from the registry.
 */
#ifndef API_REQUEST_H
#define API_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "audio/aenc.h"
#include "engine/engine.h"
#include "engine/registry.h"

typedef struct oai_error {
    int status;          /* HTTP status */
    const char *type;    /* static: "invalid_request_error", "server_error", ... */
    const char *code;    /* static or NULL */
    const char *param;   /* static or NULL */
    char message[400];
} oai_error;

/* Fills e and returns ERR_INVAL (status < 500) or ERR_INTERNAL/ERR_BUSY (>= 500). */
int oai_error_set(oai_error *e, int status, const char *type, const char *code, const char *param,
                  const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* {"error":{"message","type","param","code"}} as a malloc'd string; caller frees.
 * NULL only when out of memory. */
char *oai_error_json(const oai_error *e);

typedef struct oai_limits {
    size_t max_input_chars; /* code points */
    int stream_default;     /* value of `stream` when the body has none */
    int kbps[AENC_NFORMATS]; /* encoder bit rate per format, 0 = format default */
} oai_limits;

typedef struct oai_speech {
    engine *eng;           /* borrowed */
    char model[64];        /* as sent, or the engine id */
    char voice[128];       /* as sent, or the engine default ("" if none) */
    char *input;           /* owned, NUL-terminated, valid UTF-8 */
    size_t input_chars;    /* code points */
    char *instructions;    /* owned or NULL */
    aenc_format format;
    float speed;
    int stream;            /* chunked response, streaming encoder */
    int sse;               /* stream_format "sse" (implies stream) */
    int bitrate_kbps;      /* from oai_limits.kbps[format]; 0 = format default */
    uint64_t seed;         /* extension: reproducible output for engines with ENG_CAP_SEED */
    int has_seed;
} oai_speech;

/* body need not be NUL-terminated. Returns 0, or a negative code with e filled. */
int oai_speech_parse(const char *body, size_t len, const reg_registry *reg,
                     const oai_limits *lim, oai_speech *out, oai_error *e);
void oai_speech_free(oai_speech *s);

#endif
