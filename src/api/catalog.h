/* catalog.h — JSON bodies of the read-only routes: voices, models, health.
 *
 * Shapes:
 *   GET /v1/voices        {"object":"list","data":[{"id","name","object":"voice","type",
 *                          "language","gender","model"}]}
 *   GET /v1/audio/voices  {"voices":[{"id","name","type","language","gender","model"}]}
 *                          (the shape Open WebUI reads)
 *   GET /v1/models        {"object":"list","data":[{"id","object":"model","created","owned_by"}]}
 *   GET /v1/audio/models  {"models":[{"id"}]}
 *   GET /health           {"status","version","uptime_s","engines":[...],"voices_loaded",
 *                          "default_model","queue":{...}}
 * Voices come from every engine (or only `model`'s engine when given); OpenAI model
 * ids are listed first, then each engine's own id.
 *
 * Ownership: every function returns a malloc'd NUL-terminated string in *out the
 * caller frees.
 */
#ifndef API_CATALOG_H
#define API_CATALOG_H

#include <stddef.h>

#include "engine/registry.h"

enum { OAI_VOICES_OPENAI = 0, OAI_VOICES_WEBUI = 1 };

/* model NULL = all engines; an unknown model gives ERR_NOTFOUND. */
int oai_voices_json(const reg_registry *r, const char *model, int shape, char **out, char *err,
                    size_t errlen);
int oai_models_json(const reg_registry *r, int audio_shape, char **out, char *err, size_t errlen);
/* One model object for GET /v1/models/{id}; ERR_NOTFOUND if unknown. */
int oai_model_json(const reg_registry *r, const char *id, char **out, char *err, size_t errlen);

typedef struct oai_health {
    const char *status;      /* "ok", "starting", "draining" */
    double uptime_s;
    int workers, running, queued, queue_capacity;
} oai_health;

int oai_health_json(const reg_registry *r, const oai_health *h, char **out, char *err,
                    size_t errlen);

#endif
