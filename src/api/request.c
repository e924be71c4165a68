/* request.c — see request.h. Field checks are written out one by one, in the order the
 * header documents, because each has its own status/code/param and tests pin them. */
#include "api/request.h"
#include "core/err.h"
#include "core/utf8.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T_INVALID "invalid_request_error"

int oai_error_set(oai_error *e, int status, const char *type, const char *code, const char *param,
                  const char *fmt, ...)
{
    e->status = status;
    e->type = type;
    e->code = code;
    e->param = param;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    if (status == 429 || status == 503) return ERR_BUSY;
    return status >= 500 ? ERR_INTERNAL : ERR_INVAL;
}

char *oai_error_json(const oai_error *e)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *o = cJSON_AddObjectToObject(root, "error");
    char *s = NULL;
    if (o) {
        cJSON_AddStringToObject(o, "message", e->message);
        cJSON_AddStringToObject(o, "type", e->type ? e->type : T_INVALID);
        if (e->param) cJSON_AddStringToObject(o, "param", e->param);
        else cJSON_AddNullToObject(o, "param");
        if (e->code) cJSON_AddStringToObject(o, "code", e->code);
        else cJSON_AddNullToObject(o, "code");
        s = cJSON_PrintUnformatted(root);
    }
    cJSON_Delete(root);
    return s;
}

/* Validates a JSON string field as UTF-8 and copies it; code points in *ncp. */
static int get_str(const cJSON *it, const char *param, size_t max_cp, char **out, size_t *ncp,
                   oai_error *e)
{
    const char *s = it->valuestring;
    size_t n = strlen(s), cp = 0, bad = 0;
    if (utf8_validate(s, n, &cp, &bad))
        return oai_error_set(e, 400, T_INVALID, "invalid_encoding", param,
                             "'%s' is not valid UTF-8 (bad byte at offset %zu)", param, bad);
    if (cp > max_cp)
        return oai_error_set(e, 413, T_INVALID, "string_above_max_length", param,
                             "'%s' is too long: %zu characters, the maximum is %zu", param, cp,
                             max_cp);
    char *c = malloc(n + 1);
    if (!c) return oai_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    memcpy(c, s, n + 1);
    *out = c;
    if (ncp) *ncp = cp;
    return 0;
}

/* Copies a short identifier-like string (model, voice) into a fixed buffer. */
static int get_short(const char *s, const char *param, char *dst, size_t dstlen, oai_error *e)
{
    size_t n = strlen(s);
    if (utf8_validate(s, n, NULL, NULL))
        return oai_error_set(e, 400, T_INVALID, "invalid_encoding", param,
                             "'%s' is not valid UTF-8", param);
    if (n >= dstlen)
        return oai_error_set(e, 400, T_INVALID, "invalid_value", param,
                             "'%s' is too long (max %zu bytes)", param, dstlen - 1);
    memcpy(dst, s, n + 1);
    return 0;
}

/* Only whitespace (ASCII or Unicode: NBSP, ideographic space, zero-width, BOM, ...)? */
static int only_space(const char *s)
{
    size_t n = strlen(s), i = 0;
    while (i < n) {
        uint32_t cp;
        int k = utf8_decode(s + i, n - i, &cp);
        if (k <= 0) return 0;
        i += (size_t)k;
        if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || cp == 0x85 || cp == 0xA0 ||
            cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200D) || cp == 0x2028 || cp == 0x2029 ||
            cp == 0x202F || cp == 0x205F || cp == 0x2060 || cp == 0x3000 || cp == 0xFEFF)
            continue;
        return 0;
    }
    return 1;
}

static const char *jtype(const cJSON *it)
{
    if (cJSON_IsString(it)) return "a string";
    if (cJSON_IsNumber(it)) return "a number";
    if (cJSON_IsBool(it)) return "a boolean";
    if (cJSON_IsNull(it)) return "null";
    if (cJSON_IsArray(it)) return "an array";
    if (cJSON_IsObject(it)) return "an object";
    return "invalid";
}

static int parse_fields(const cJSON *root, const reg_registry *reg, const oai_limits *lim,
                        oai_speech *s, oai_error *e)
{
    int rc;
    /* input */
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, "input");
    if (!it)
        return oai_error_set(e, 400, T_INVALID, "missing_required_parameter", "input",
                             "Missing required parameter: 'input'.");
    if (!cJSON_IsString(it))
        return oai_error_set(e, 400, T_INVALID, "invalid_type", "input",
                             "Invalid type for 'input': expected a string, but got %s.",
                             jtype(it));
    if ((rc = get_str(it, "input", lim->max_input_chars, &s->input, &s->input_chars, e)))
        return rc;
    if (only_space(s->input))
        return oai_error_set(e, 400, T_INVALID, "empty_input", "input",
                             "'input' is empty: there is nothing to say.");

    /* model */
    it = cJSON_GetObjectItemCaseSensitive(root, "model");
    const char *model = NULL;
    if (it && !cJSON_IsNull(it)) {
        if (!cJSON_IsString(it))
            return oai_error_set(e, 400, T_INVALID, "invalid_type", "model",
                                 "Invalid type for 'model': expected a string, but got %s.",
                                 jtype(it));
        if ((rc = get_short(it->valuestring, "model", s->model, sizeof s->model, e))) return rc;
        model = s->model;
    }
    s->eng = reg_find_model(reg, model);
    if (!s->eng) {
        if (model)
            return oai_error_set(e, 404, T_INVALID, "model_not_found", "model",
                                 "The model '%s' does not exist.", model);
        return oai_error_set(e, 503, "server_error", "no_engine", NULL, "no engine is loaded");
    }
    if (!model) snprintf(s->model, sizeof s->model, "%s", s->eng->id);

    /* voice: "name" or {"id": "name"} */
    it = cJSON_GetObjectItemCaseSensitive(root, "voice");
    if (it && cJSON_IsObject(it)) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        if (!cJSON_IsString(id))
            return oai_error_set(e, 400, T_INVALID, "invalid_type", "voice",
                                 "'voice' as an object needs a string 'id'.");
        it = id;
    }
    if (it && !cJSON_IsNull(it)) {
        if (!cJSON_IsString(it))
            return oai_error_set(e, 400, T_INVALID, "invalid_type", "voice",
                                 "Invalid type for 'voice': expected a string or an object with "
                                 "'id', but got %s.", jtype(it));
        if ((rc = get_short(it->valuestring, "voice", s->voice, sizeof s->voice, e))) return rc;
        if (!s->voice[0])
            return oai_error_set(e, 400, T_INVALID, "invalid_value", "voice", "'voice' is empty.");
        char why[200] = "";
        if (eng_check_voice(s->eng, s->voice, why, sizeof why))
            return oai_error_set(e, 400, T_INVALID, "voice_not_found", "voice",
                                 "Voice '%.100s' is not available for model '%s': %.160s",
                                 s->voice, s->eng->id,
                                 why[0] ? why : "unknown voice (see GET /v1/voices)");
    } else {
        snprintf(s->voice, sizeof s->voice, "%s",
                 s->eng->default_voice ? s->eng->default_voice : "");
    }

    /* response_format */
    it = cJSON_GetObjectItemCaseSensitive(root, "response_format");
    s->format = AENC_MP3;
    if (it && !cJSON_IsNull(it)) {
        if (!cJSON_IsString(it))
            return oai_error_set(e, 400, T_INVALID, "invalid_type", "response_format",
                                 "Invalid type for 'response_format': expected a string, but got "
                                 "%s.", jtype(it));
        int f = aenc_format_from_name(it->valuestring);
        if (f < 0 || f >= AENC_NFORMATS)
            return oai_error_set(e, 400, T_INVALID, "invalid_value", "response_format",
                                 "Invalid value for 'response_format': '%.40s'. Supported values "
                                 "are: 'mp3', 'opus', 'aac', 'flac', 'wav', and 'pcm'.",
                                 it->valuestring);
        s->format = (aenc_format)f;
    }
    s->bitrate_kbps = lim->kbps[s->format];
    if (!aenc_available(s->format))
        return oai_error_set(e, 400, T_INVALID, "unsupported_format", "response_format",
                             "response_format '%s' is not available in this build yet; use "
                             "'wav' or 'pcm'.", aenc_format_name(s->format));

    /* speed */
    it = cJSON_GetObjectItemCaseSensitive(root, "speed");
    s->speed = 1.0f;
    if (it && !cJSON_IsNull(it)) {
        if (!cJSON_IsNumber(it))
            return oai_error_set(e, 400, T_INVALID, "invalid_type", "speed",
                                 "Invalid type for 'speed': expected a number, but got %s.",
                                 jtype(it));
        double v = it->valuedouble;
        if (!(v >= 0.25 && v <= 4.0))
            return oai_error_set(e, 400, T_INVALID, "invalid_value", "speed",
                                 "Invalid value for 'speed': %g. It must be between 0.25 and 4.0.",
                                 v);
        s->speed = (float)v;
    }

    /* stream, stream_format */
    it = cJSON_GetObjectItemCaseSensitive(root, "stream");
    s->stream = lim->stream_default ? 1 : 0;
    if (it && !cJSON_IsNull(it)) {
        if (!cJSON_IsBool(it))
            return oai_error_set(e, 400, T_INVALID, "invalid_type", "stream",
                                 "Invalid type for 'stream': expected a boolean, but got %s.",
                                 jtype(it));
        s->stream = cJSON_IsTrue(it) ? 1 : 0;
    }
    it = cJSON_GetObjectItemCaseSensitive(root, "stream_format");
    s->sse = 0;
    if (it && !cJSON_IsNull(it)) {
        if (!cJSON_IsString(it))
            return oai_error_set(e, 400, T_INVALID, "invalid_type", "stream_format",
                                 "Invalid type for 'stream_format': expected a string, but got "
                                 "%s.", jtype(it));
        if (!strcmp(it->valuestring, "sse"))
            s->sse = 1;
        else if (strcmp(it->valuestring, "audio") != 0)
            return oai_error_set(e, 400, T_INVALID, "invalid_value", "stream_format",
                                 "Invalid value for 'stream_format': '%.40s'. Supported values "
                                 "are: 'sse' and 'audio'.", it->valuestring);
    }
    if (s->sse) s->stream = 1;

    /* instructions */
    it = cJSON_GetObjectItemCaseSensitive(root, "instructions");
    if (it && !cJSON_IsNull(it)) {
        if (!cJSON_IsString(it))
            return oai_error_set(e, 400, T_INVALID, "invalid_type", "instructions",
                                 "Invalid type for 'instructions': expected a string, but got "
                                 "%s.", jtype(it));
        if ((rc = get_str(it, "instructions", lim->max_input_chars, &s->instructions, NULL, e)))
            return rc;
    }

    /* seed (extension) */
    it = cJSON_GetObjectItemCaseSensitive(root, "seed");
    if (it && !cJSON_IsNull(it)) {
        if (!cJSON_IsNumber(it))
            return oai_error_set(e, 400, T_INVALID, "invalid_type", "seed",
                                 "Invalid type for 'seed': expected an integer, but got %s.",
                                 jtype(it));
        double v = it->valuedouble;
        if (!(v >= 0 && v <= 9007199254740992.0) || v != floor(v))
            return oai_error_set(e, 400, T_INVALID, "invalid_value", "seed",
                                 "Invalid value for 'seed': it must be an integer from 0 to 2^53.");
        s->seed = (uint64_t)v;
        s->has_seed = 1;
    }
    return 0;
}

/* Does the JSON text contain the escape \u0000? cJSON decodes it into a C string that then
 * ends early, which would silently drop the rest of the text. */
static int has_nul_escape(const char *b, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (b[i] != '\\') continue;
        if (b[i + 1] == 'u' && i + 5 < n && !memcmp(b + i + 2, "0000", 4)) return 1;
        i++; /* skip the escaped character (handles \\) */
    }
    return 0;
}

int oai_speech_parse(const char *body, size_t len, const reg_registry *reg,
                     const oai_limits *lim, oai_speech *s, oai_error *e)
{
    memset(s, 0, sizeof *s);
    memset(e, 0, sizeof *e);
    if (!body || len == 0)
        return oai_error_set(e, 400, T_INVALID, "invalid_json", NULL,
                             "The request body is empty; expected a JSON object.");
    if (memchr(body, 0, len))
        return oai_error_set(e, 400, T_INVALID, "invalid_json", NULL,
                             "The request body contains a NUL byte, which JSON does not allow.");
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!root)
        return oai_error_set(e, 400, T_INVALID, "invalid_json", NULL,
                             "We could not parse the JSON body of your request (near byte %ld).",
                             end ? (long)(end - body) : 0L);
    for (const char *p = end; p && p < body + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != 0) {
            cJSON_Delete(root);
            return oai_error_set(e, 400, T_INVALID, "invalid_json", NULL,
                                 "Unexpected data after the JSON object (at byte %ld).",
                                 (long)(p - body));
        }
    }
    if (has_nul_escape(body, len)) {
        cJSON_Delete(root);
        return oai_error_set(e, 400, T_INVALID, "invalid_value", "input",
                             "NUL characters (\\u0000) are not allowed in the request.");
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return oai_error_set(e, 400, T_INVALID, "invalid_json", NULL,
                             "The request body must be a JSON object.");
    }
    int rc = parse_fields(root, reg, lim, s, e);
    cJSON_Delete(root);
    if (rc) oai_speech_free(s);
    return rc;
}

void oai_speech_free(oai_speech *s)
{
    if (!s) return;
    free(s->input);
    free(s->instructions);
    s->input = NULL;
    s->instructions = NULL;
}
