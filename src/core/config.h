/* The model configuration of a Wan2.1-style DiT: read from diffusers' config.json
 * (WanTransformer3DModel), from the original Wan2.1 config.json, or a built-in preset.
 * OSP-Next's Skiparse keys (skiparse_model_type, sparse_ratio, num_full_blocks) may appear in
 * either. */
#ifndef OSP_CORE_CONFIG_H
#define OSP_CORE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "osp.h"

/* How a block's self-attention sees the tokens (PAPER.md 5): all of them, or only its own
 * Skiparse subsequence, token-wise (stride P) or group-wise (P×P blocks strided by P). */
typedef enum { OSP_PATTERN_FULL, OSP_PATTERN_TOKEN, OSP_PATTERN_GROUP } osp_pattern;

/* Named schedules. OSP-Next's skiparse_model_type values: full (Wan2.1), dual_end (full blocks
 * {0..F/2−1} ∪ {L−F/2..L−1}, others token-wise if the index is even, group-wise if odd), uniform
 * (F = 0: every block sparse, the same parity rule). OSP's own: every_k (block i is full when
 * i mod k = 0; in each run of sparse blocks the first is token-wise, then they alternate) and list
 * (one pattern per block, given explicitly). */
typedef enum {
  OSP_SKIPARSE_FULL,
  OSP_SKIPARSE_DUAL_END,
  OSP_SKIPARSE_UNIFORM,
  OSP_SKIPARSE_EVERY_K,
  OSP_SKIPARSE_LIST
} osp_skiparse_type;

enum { OSP_MAX_LAYERS = 1024 };

/* A quantization of OSP-Next's config keys `quant` and `quant_attn` (PAPER.md 7): none, or HiF8
 * simulated as quantize-dequantize with per-tensor absmax scaling. */
typedef enum { OSP_QUANT_NONE, OSP_QUANT_HIF8 } osp_quant;

typedef struct {
  int dim;        /* C = num_heads * head_dim */
  int num_heads;
  int head_dim;
  int num_layers;
  int ffn_dim;
  int in_channels;  /* latent channels in (16) */
  int out_channels; /* latent channels out (16) */
  int text_dim;     /* width of the text encoder's output (4096) */
  int freq_dim;     /* width of the timestep sinusoid (256) */
  int text_len;     /* rows of context the pipeline pads to (512) */
  int patch_size[3]; /* (t, h, w) = (1, 2, 2) */
  float eps;         /* of every LayerNorm and RMSNorm */
  int cross_attn_norm; /* 1: the cross-attention LayerNorm (norm3) has weight and bias */
  int qk_norm;         /* 1: RMSNorm over all heads on q and k */
  int rope_max_seq_len;
  osp_skiparse_type skiparse_model_type;
  int sparse_ratio;    /* P */
  int num_full_blocks; /* F; num_layers when skiparse_model_type is full */
  int every_k;         /* k of every_k */
  unsigned char schedule[OSP_MAX_LAYERS]; /* osp_pattern of each block, derived from the keys above
                                             (or given, for list) whenever they change */
  osp_quant quant;          /* "quant": the input and weight of each block's ten linears */
  osp_quant quant_attn;     /* "quant_attn": q, k and v entering self- and cross-attention */
  float scale_max_forward;  /* smax of activations and weights (15) */
  float scale_max_backward; /* smax of gradients in training (224) */
} osp_model_config;

/* Parses a config.json image. Keys of both styles are accepted; unknown keys are ignored;
 * a key with the wrong type, an unsupported value (image conditioning, another qk_norm) or
 * inconsistent sizes (dim != heads x head_dim) is an error naming `label` and the key. */
osp_status osp_config_parse(const char *label, const char *text, size_t length, osp_model_config *cfg);
osp_status osp_config_load(const char *path, osp_model_config *cfg);

/* "wan2.1-t2v-1.3b", "wan2.1-t2v-14b", and "osp-next-1.3b", "osp-next-14b": the same networks
 * with the released Skiparse schedule (dual_end, sparse_ratio 2, num_full_blocks 8). */
osp_status osp_config_preset(const char *name, osp_model_config *cfg);
extern const char *const osp_config_preset_names[]; /* NULL-terminated */

/* Checks that the sizes are positive and consistent; called by parse and by the model. */
osp_status osp_config_validate(const char *label, const osp_model_config *cfg);

/* Overrides from the command line, re-deriving and re-checking the schedule.
 * `spec`: "full", "dual_end" (F of a dual_end config, else the released 8) or "dual_end:F",
 * "uniform", "every_k:K", "token" or "group" (every block in that pattern), or one pattern per
 * block: a comma-separated list ("full,token,group,...") or letters ("FFTG...").
 * Set the schedule before the sparse ratio: the ratio is checked against it.
 * `label` names the source in messages ("--schedule"). */
osp_status osp_config_set_schedule(const char *label, const char *spec, osp_model_config *cfg);
osp_status osp_config_set_sparse_ratio(const char *label, int ratio, osp_model_config *cfg);

/* Overrides both quantizations from the command line: "hif8" or "none". */
osp_status osp_config_set_quant(const char *label, const char *spec, osp_model_config *cfg);
/* "hif8" or "none". */
const char *osp_quant_name(osp_quant quant);

/* One letter per block (F, T, G), e.g. "FFFFTGTGTG...FFFF", into buf. */
const char *osp_config_schedule_string(const osp_model_config *cfg, char *buf, size_t size);

/* Number of parameters of the DiT this config describes. */
int64_t osp_config_param_count(const osp_model_config *cfg);

#endif
