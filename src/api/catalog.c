/* catalog.c — see catalog.h. Built with cJSON; no caching (voice folders may change). */
#include "api/catalog.h"
#include "core/config.h"
#include "core/err.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#define MODELS_CREATED 1700000000 /* fixed: clients only display it */

static const char *const openai_models[] = {"tts-1", "tts-1-hd", "gpt-4o-mini-tts"};

static int finish(cJSON *root, char **out, char *err, size_t errlen)
{
    char *s = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!s) return err_set(err, errlen, ERR_NOMEM, "out of memory building JSON");
    *out = s;
    return 0;
}

int oai_voices_json(const reg_registry *r, const char *model, int shape, char **out, char *err,
                    size_t errlen)
{
    engine *only = NULL;
    if (model && *model) {
        only = reg_find_model(r, model);
        if (!only) return err_set(err, errlen, ERR_NOTFOUND, "The model '%s' does not exist.", model);
    }
    cJSON *root = cJSON_CreateObject();
    cJSON *arr;
    if (shape == OAI_VOICES_OPENAI) {
        cJSON_AddStringToObject(root, "object", "list");
        arr = cJSON_AddArrayToObject(root, "data");
    } else {
        arr = cJSON_AddArrayToObject(root, "voices");
    }
    for (size_t i = 0; i < reg_count(r); i++) {
        engine *e = reg_get(r, i);
        if (only && e != only) continue;
        eng_voice *v = NULL;
        size_t n = 0;
        int rc = eng_list_voices(e, &v, &n, err, errlen);
        if (rc) {
            cJSON_Delete(root);
            return rc;
        }
        for (size_t k = 0; k < n; k++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "id", v[k].id);
            cJSON_AddStringToObject(o, "name", v[k].name[0] ? v[k].name : v[k].id);
            if (shape == OAI_VOICES_OPENAI) cJSON_AddStringToObject(o, "object", "voice");
            cJSON_AddStringToObject(o, "type", v[k].type[0] ? v[k].type : "builtin");
            cJSON_AddStringToObject(o, "language", v[k].lang);
            cJSON_AddStringToObject(o, "gender", v[k].gender);
            cJSON_AddStringToObject(o, "model", e->id);
            cJSON_AddItemToArray(arr, o);
        }
        free(v);
    }
    return finish(root, out, err, errlen);
}

static cJSON *model_obj(const char *id, const char *owner)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", "model");
    cJSON_AddNumberToObject(o, "created", MODELS_CREATED);
    cJSON_AddStringToObject(o, "owned_by", owner);
    return o;
}

int oai_models_json(const reg_registry *r, int audio_shape, char **out, char *err, size_t errlen)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *arr;
    if (audio_shape) {
        arr = cJSON_AddArrayToObject(root, "models");
    } else {
        cJSON_AddStringToObject(root, "object", "list");
        arr = cJSON_AddArrayToObject(root, "data");
    }
    size_t nm = sizeof openai_models / sizeof openai_models[0];
    for (size_t i = 0; i < nm + reg_count(r); i++) {
        const char *id = i < nm ? openai_models[i] : reg_get(r, i - nm)->id;
        if (audio_shape) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "id", id);
            cJSON_AddItemToArray(arr, o);
        } else {
            cJSON_AddItemToArray(arr, model_obj(id, "pockettts"));
        }
    }
    return finish(root, out, err, errlen);
}

int oai_model_json(const reg_registry *r, const char *id, char **out, char *err, size_t errlen)
{
    if (!reg_find_model(r, id) || !*id)
        return err_set(err, errlen, ERR_NOTFOUND, "The model '%s' does not exist.", id);
    return finish(model_obj(id, "pockettts"), out, err, errlen);
}

int oai_health_json(const reg_registry *r, const oai_health *h, char **out, char *err,
                    size_t errlen)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "status", h->status);
    cJSON_AddStringToObject(root, "version", PT_VERSION);
    cJSON_AddNumberToObject(root, "uptime_s", (double)(long long)(h->uptime_s * 1000) / 1000.0);
    cJSON *arr = cJSON_AddArrayToObject(root, "engines");
    size_t total = 0;
    engine *def = reg_default(r);
    for (size_t i = 0; i < reg_count(r); i++) {
        engine *e = reg_get(r, i);
        eng_voice *v = NULL;
        size_t n = 0;
        char why[128];
        if (eng_list_voices(e, &v, &n, why, sizeof why)) n = 0;
        free(v);
        total += n;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", e->id);
        cJSON_AddStringToObject(o, "description", e->desc ? e->desc : "");
        cJSON_AddNumberToObject(o, "voices", (double)n);
        cJSON_AddBoolToObject(o, "default", e == def);
        cJSON_AddItemToArray(arr, o);
    }
    cJSON_AddNumberToObject(root, "voices_loaded", (double)total);
    cJSON_AddStringToObject(root, "default_model", def ? def->id : "");
    cJSON_AddStringToObject(root, "default_reason", reg_default_reason(r));
    cJSON *q = cJSON_AddObjectToObject(root, "queue");
    cJSON_AddNumberToObject(q, "workers", h->workers);
    cJSON_AddNumberToObject(q, "running", h->running);
    cJSON_AddNumberToObject(q, "queued", h->queued);
    cJSON_AddNumberToObject(q, "capacity", h->queue_capacity);
    return finish(root, out, err, errlen);
}
