/* fuzz_request.c — libFuzzer entry for the speech request parser and UTF-8 validator.
 *
 * The input is a request body. It must parse into a valid oai_speech or be refused with an
 * OpenAI error whose status is 400, 404 or 413 (never a 5xx: a deterministic client error
 * must not look retryable) and whose JSON form is well-formed. Accepted requests must hold
 * valid UTF-8 within the limits. Runs against the built-in beep engine (no real engine).
 */
#include "api/request.h"
#include "core/err.h"
#include "core/utf8.h"
#include "engine/registry.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static reg_registry *g_reg; /* harness state, created once */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[128];
    if (!g_reg) {
        engine *e;
        if (reg_new(&g_reg, err, sizeof err) || reg_beep_new(&e, err, sizeof err) ||
            reg_add(g_reg, e, 1, err, sizeof err))
            abort();
    }
    size_t ncp = 0;
    (void)utf8_validate((const char *)data, size, &ncp, NULL);
    oai_limits lim = {.max_input_chars = 64, .stream_default = (size & 1)};
    oai_speech s;
    oai_error e;
    int rc = oai_speech_parse((const char *)data, size, g_reg, &lim, &s, &e);
    if (rc) {
        if (e.status != 400 && e.status != 404 && e.status != 413) abort();
        char *j = oai_error_json(&e);
        cJSON *back = j ? cJSON_Parse(j) : NULL;
        if (!back || !cJSON_GetObjectItem(back, "error")) abort();
        cJSON_Delete(back);
        free(j);
        return 0;
    }
    size_t n = 0;
    if (!s.input || utf8_validate(s.input, strlen(s.input), &n, NULL) || n != s.input_chars ||
        n > lim.max_input_chars || !s.eng || !(s.speed >= 0.25f && s.speed <= 4.0f))
        abort();
    oai_speech_free(&s);
    return 0;
}
