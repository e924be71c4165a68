/* pkconfig.h — pocket-tts model configuration (upstream's YAML config, resolved).
 *
 * Two sources: a `*.resolved.json` file (upstream config after default filling, as in
 * ../shared/reference/pocket-tts/) read with cJSON, or a built-in table of the upstream
 * configs by name so a bare checkpoint loads without any config file. Every model
 * dimension the FlowLM and Mimi code use comes from here; nothing is hard-coded elsewhere.
 * pk_config is plain data (fixed-size strings), copied freely.
 */
#ifndef ENGINE_POCKET_PKCONFIG_H
#define ENGINE_POCKET_PKCONFIG_H

#include <stddef.h>

#define PK_MAX_RATIOS 8

typedef struct pk_config {
    char name[64]; /* "english_2026-04", "tiny", ... */

    /* flow_lm */
    int d_model;       /* transformer width (1024) */
    int num_heads;     /* 16 */
    int num_layers;    /* 6 or 24 */
    int hidden_scale;  /* FFN = d_model * hidden_scale (4) */
    float max_period;  /* RoPE period (10000) */
    int n_bins;        /* text vocab (4000); embedding rows = n_bins + 1 */
    int lut_dim;       /* embedding width, must equal d_model */
    int flow_dim;      /* flow head width (512) */
    int flow_depth;    /* flow head residual blocks (6) */
    int insert_bos_before_voice;

    /* mimi */
    int sample_rate;   /* 24000 */
    float frame_rate;  /* 12.5 */
    int ldim;          /* latent dim = quantizer.dimension = inner_dim (32) */
    int outer_dim;     /* 512 */
    int quant_out_dim; /* quantizer.output_dimension (512) */
    int seanet_dimension, n_filters, n_residual_layers, kernel_size, residual_kernel_size, last_kernel_size;
    int dilation_base, compress;
    int ratios[PK_MAX_RATIOS], nratios;
    int mt_d_model, mt_num_heads, mt_num_layers, mt_dim_feedforward, mt_context;
    float mt_layer_scale, mt_max_period;

    /* text front end */
    int pad_with_spaces_for_short_inputs;
    int remove_semicolons;
    int frames_after_eos; /* model_recommended_frames_after_eos, -1 = unset */

    char weights_path[512];   /* as written in the config ("" if null); hf://… or a path */
    char weights_path_without_voice_cloning[512]; /* upstream's fallback when the gated
                                                   * weights cannot be fetched ("" if none) */
    char tokenizer_path[512];
} pk_config;

/* Parses a resolved config JSON (text of n bytes). Missing keys keep english_2026-04
 * defaults; wrong types or impossible values are errors naming the key. */
int pk_config_parse_json(pk_config *c, const char *text, size_t n, char *err, size_t errlen);
/* Reads and parses a file (capped at 1 MiB). */
int pk_config_load_json(pk_config *c, const char *path, char *err, size_t errlen);
/* Built-in upstream configs: english, english_2026-01, english_2026-04, french(_24l),
 * german(_24l), italian(_24l), portuguese(_24l), spanish(_24l), including their hf://
 * weights (gated and public fallback) and tokenizer locations. ERR_NOTFOUND otherwise. */
int pk_config_builtin(pk_config *c, const char *name, char *err, size_t errlen);
/* Name of the i-th built-in config or NULL past the end. */
const char *pk_config_builtin_name(int i);

/* Derived numbers. */
static inline int pk_head_dim(const pk_config *c) { return c->d_model / c->num_heads; }
static inline int pk_ffn_dim(const pk_config *c) { return c->d_model * c->hidden_scale; }
int pk_hop(const pk_config *c);              /* prod(ratios) (120) */
int pk_samples_per_frame(const pk_config *c); /* sample_rate / frame_rate (1920) */

#endif
