/* The model configuration's public entry points: parsing a config.json image and loading a file,
 * the built-in presets, validation and the parameter count.
 *
 * Reading a file is three steps: read every key (config_json.c, checking its JSON type, and the
 * range of the integers), resolve what the file left out or gave two ways (dim from heads x
 * head_dim, out from in, the Skiparse fields of a dense model), then validate the result as a
 * whole. A preset is the defaults with its sizes, resolved and validated the same way.
 *
 * The Skiparse schedule, its derivation, checks and overrides, is config_schedule.c's. */
#include "core/config.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config_internal.h"
#include "core/status.h"

enum { MAX_CONFIG_BYTES = 1 << 20 }; /* of a config file; the published ones are under 1 KB */

static const double EPS_MIN = FLT_MIN; /* the smallest normal float: eps is stored as a float */
static const double EPS_MAX = 1.0;

/* The released Wan2.1 T2V models all use 128-wide heads. */
enum { WAN_HEAD_DIM = 128 };

/* ---- the checks that reading and validating share ---- */

osp_status osp_config_check_range(const char *label, const char *key, long long value,
                                  long long minimum, long long maximum) {
  if (value >= minimum && value <= maximum) return OSP_OK;
  return osp_fail(OSP_ERR_FORMAT, "%s: '%s': expected an integer in [%lld, %lld], found %lld",
                  label, key, minimum, maximum, value);
}

osp_status osp_config_check_eps(const char *label, double eps) {
  if (eps >= EPS_MIN && eps < EPS_MAX) return OSP_OK;
  return osp_fail(OSP_ERR_FORMAT, "%s: 'eps': expected a number in [%g, %g), found %g", label,
                  EPS_MIN, EPS_MAX, eps);
}

/* ---- defaults and resolution ---- */

static osp_model_config default_config(void) {
  return (osp_model_config){
      .dim = UNSET,
      .num_heads = UNSET,
      .head_dim = UNSET,
      .num_layers = UNSET,
      .ffn_dim = UNSET,
      .in_channels = 16,
      .out_channels = UNSET,
      .text_dim = 4096,
      .freq_dim = 256,
      .text_len = 512,
      .patch_size = {1, 2, 2},
      .eps = 1e-6f,
      .cross_attn_norm = 1,
      .qk_norm = 1,
      .rope_max_seq_len = 1024,
      .skiparse_model_type = OSP_SKIPARSE_FULL,
      .sparse_ratio = UNSET,
      .num_full_blocks = UNSET,
      .every_k = UNSET,
      .quant = OSP_QUANT_NONE,
      .quant_attn = OSP_QUANT_NONE,
      .scale_max_forward = 15.0f,
      .scale_max_backward = 224.0f,
  };
}

/* diffusers gives head_dim, the original gives dim; either yields the other. */
static osp_status resolve_dims(const char *label, osp_model_config *cfg) {
  if (cfg->head_dim == UNSET && cfg->dim == UNSET)
    return osp_fail(OSP_ERR_MISSING, "%s: missing 'attention_head_dim' (or 'dim')", label);
  if (cfg->head_dim == UNSET) {
    if (cfg->dim % cfg->num_heads != 0)
      return osp_fail(OSP_ERR_FORMAT,
                      "%s: 'dim' = %d is not a multiple of the number of heads (%d)", label,
                      cfg->dim, cfg->num_heads);
    cfg->head_dim = cfg->dim / cfg->num_heads;
  }
  int64_t product = (int64_t)cfg->num_heads * cfg->head_dim;
  if (cfg->dim == UNSET) {
    if (product > MAX_WIDTH)
      return osp_fail(OSP_ERR_FORMAT,
                      "%s: 'attention_head_dim' = %d x %d heads = %lld exceeds the largest dim %d",
                      label, cfg->head_dim, cfg->num_heads, (long long)product, MAX_WIDTH);
    cfg->dim = (int)product;
  }
  return OSP_OK; /* a dim given beside head_dim is checked against it by osp_config_validate */
}

static osp_status resolve(const char *label, osp_model_config *cfg) {
  OSP_TRY(resolve_dims(label, cfg));
  if (cfg->out_channels == UNSET) cfg->out_channels = cfg->in_channels; /* as diffusers does */
  OSP_TRY(osp_config_resolve_skiparse(label, cfg));
  return osp_config_validate(label, cfg);
}

/* ---- parsing and loading ---- */

osp_status osp_config_parse(const char *label, const char *text, size_t length,
                            osp_model_config *cfg) {
  label = osp_config_label(label);
  if (!text || !cfg)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: osp_config_parse needs a text and a config", label);
  osp_model_config read = default_config();
  OSP_TRY(osp_config_read_json(label, text, length, &read));
  OSP_TRY(resolve(label, &read));
  *cfg = read; /* only when the whole document is valid */
  return OSP_OK;
}

/* Reads a whole file of at most MAX_CONFIG_BYTES into *text, which the caller frees. */
static osp_status read_config_file(const char *path, char **text, size_t *length) {
  FILE *file = fopen(path, "rb");
  if (!file) return osp_fail(OSP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  char *buffer = malloc(MAX_CONFIG_BYTES + 1); /* one byte more tells a too-large file */
  if (!buffer) {
    fclose(file);
    return osp_fail(OSP_ERR_MEMORY, "%s: cannot allocate %d bytes to read it", path,
                    MAX_CONFIG_BYTES);
  }
  size_t n = fread(buffer, 1, MAX_CONFIG_BYTES + 1, file);
  bool read_failed = ferror(file);
  int read_errno = errno; /* before fclose can change it */
  fclose(file);
  if (read_failed || n > MAX_CONFIG_BYTES) {
    free(buffer);
    if (read_failed) return osp_fail(OSP_ERR_IO, "%s: cannot read: %s", path, strerror(read_errno));
    return osp_fail(OSP_ERR_FORMAT, "%s: larger than %d bytes, too large for a config", path,
                    MAX_CONFIG_BYTES);
  }
  *text = buffer;
  *length = n;
  return OSP_OK;
}

osp_status osp_config_load(const char *path, osp_model_config *cfg) {
  if (!path || !cfg) return osp_fail(OSP_ERR_ARGUMENT, "osp_config_load needs a path and a config");
  char *text = NULL;
  size_t length = 0;
  OSP_TRY(read_config_file(path, &text, &length));
  osp_status status = osp_config_parse(path, text, length, cfg);
  free(text);
  return status;
}

/* ---- presets ---- */

enum { WAN_1_3B, WAN_14B, OSP_NEXT_1_3B, OSP_NEXT_14B, PRESET_COUNT };

const char *const osp_config_preset_names[] = {
    [WAN_1_3B] = "wan2.1-t2v-1.3b",
    [WAN_14B] = "wan2.1-t2v-14b",
    [OSP_NEXT_1_3B] = "osp-next-1.3b",
    [OSP_NEXT_14B] = "osp-next-14b",
    [PRESET_COUNT] = NULL,
};

/* PAPER.md 1.1 (the Wan2.1 T2V sizes) and 5.9 (OSP-Next: the same network with the released
 * schedule dual_end, P = 2, F = 8). Everything else is the default. */
static const struct {
  int num_heads, num_layers, ffn_dim;
  osp_skiparse_type skiparse;
} presets[PRESET_COUNT] = {
    [WAN_1_3B] = {12, 30, 8960, OSP_SKIPARSE_FULL},
    [WAN_14B] = {40, 40, 13824, OSP_SKIPARSE_FULL},
    [OSP_NEXT_1_3B] = {12, 30, 8960, OSP_SKIPARSE_DUAL_END},
    [OSP_NEXT_14B] = {40, 40, 13824, OSP_SKIPARSE_DUAL_END},
};

static osp_status fail_unknown_preset(const char *name) {
  char names[256] = "";
  for (int i = 0; i < PRESET_COUNT; i++) {
    size_t used = strlen(names);
    snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "", osp_config_preset_names[i]);
  }
  return osp_fail(OSP_ERR_ARGUMENT, "unknown preset '%s': expected one of %s", name, names);
}

osp_status osp_config_preset(const char *name, osp_model_config *cfg) {
  if (!name || !cfg)
    return osp_fail(OSP_ERR_ARGUMENT, "osp_config_preset needs a name and a config");
  int i = 0;
  while (i < PRESET_COUNT && strcmp(name, osp_config_preset_names[i]) != 0) i++;
  if (i == PRESET_COUNT) return fail_unknown_preset(name);
  osp_model_config preset = default_config();
  preset.num_heads = presets[i].num_heads;
  preset.head_dim = WAN_HEAD_DIM;
  preset.num_layers = presets[i].num_layers;
  preset.ffn_dim = presets[i].ffn_dim;
  preset.skiparse_model_type = presets[i].skiparse;
  preset.sparse_ratio = RELEASED_SPARSE_RATIO; /* both replaced by resolve() for "full" */
  preset.num_full_blocks = RELEASED_FULL_BLOCKS;
  OSP_TRY(resolve(name, &preset));
  *cfg = preset;
  return OSP_OK;
}

/* ---- quantization ---- */

const char *osp_quant_name(osp_quant quant) { return quant == OSP_QUANT_HIF8 ? "hif8" : "none"; }

osp_status osp_config_set_quant(const char *label, const char *spec, osp_model_config *cfg) {
  osp_quant quant;
  if (spec && strcmp(spec, "hif8") == 0) quant = OSP_QUANT_HIF8;
  else if (spec && strcmp(spec, "none") == 0) quant = OSP_QUANT_NONE;
  else return osp_fail(OSP_ERR_ARGUMENT, "%s: expected hif8 or none, found '%s'", label, spec ? spec : "");
  cfg->quant = cfg->quant_attn = quant;
  return OSP_OK;
}

/* ---- validation ---- */

static osp_status validate_norms(const char *label, const osp_model_config *cfg) {
  OSP_TRY(osp_config_check_eps(label, cfg->eps));
  OSP_TRY(osp_config_check_range(label, "cross_attn_norm", cfg->cross_attn_norm, 0, 1));
  if (cfg->qk_norm != 1)
    return osp_fail(OSP_ERR_UNSUPPORTED,
                    "%s: 'qk_norm': expected 1, found %d: only RMSNorm across heads is supported",
                    label, cfg->qk_norm);
  return OSP_OK;
}

/* 3D RoPE splits a head of D dims into t, h, w parts of D - 4*floor(D/6), 2*floor(D/6) and
 * 2*floor(D/6) dims (PAPER.md 1.6), rotated in (even, odd) pairs: D must be even, and at least 6
 * so that h and w get a pair each (t then always does). The time sinusoid is [cos | sin] of
 * freq_dim/2 frequencies, so freq_dim must be even too. */
static osp_status validate_widths(const char *label, const osp_model_config *cfg) {
  int64_t product = (int64_t)cfg->num_heads * cfg->head_dim;
  if (product != cfg->dim)
    return osp_fail(OSP_ERR_FORMAT,
                    "%s: 'dim' = %d and 'attention_head_dim' = %d disagree: %d heads x %d = %lld",
                    label, cfg->dim, cfg->head_dim, cfg->num_heads, cfg->head_dim,
                    (long long)product);
  if (cfg->head_dim % 2 != 0 || cfg->head_dim < 6)
    return osp_fail(OSP_ERR_FORMAT,
                    "%s: 'attention_head_dim': expected an even number >= 6 (3D RoPE), found %d",
                    label, cfg->head_dim);
  if (cfg->freq_dim % 2 != 0)
    return osp_fail(OSP_ERR_FORMAT,
                    "%s: 'freq_dim': expected an even number (cos and sin halves), found %d", label,
                    cfg->freq_dim);
  return OSP_OK;
}

osp_status osp_config_validate(const char *label, const osp_model_config *cfg) {
  label = osp_config_label(label);
  if (!cfg) return osp_fail(OSP_ERR_ARGUMENT, "%s: osp_config_validate needs a config", label);
  OSP_TRY(osp_config_check_key_ranges(label, cfg));
  OSP_TRY(validate_norms(label, cfg));
  OSP_TRY(validate_widths(label, cfg));
  if (!(cfg->scale_max_forward > 0 && cfg->scale_max_backward > 0 && isfinite(cfg->scale_max_forward) &&
        isfinite(cfg->scale_max_backward)))
    return osp_fail(OSP_ERR_FORMAT, "%s: 'scale_max_forward' and 'scale_max_backward' must be positive, found %g and %g",
                    label, (double)cfg->scale_max_forward, (double)cfg->scale_max_backward);
  return osp_config_validate_skiparse(label, cfg);
}

/* ---- parameter count ---- */

/* From the tensor shapes of PAPER.md 1.9 (C = dim, f = ffn_dim, p = pt*ph*pw; Linear = weight +
 * bias):
 *   per block = 6C                                  modulation [1,6,C]
 *             + 2 (4 (C*C + C) + 2C*qk_norm)        self_attn and cross_attn: q, k, v, o and
 *                                                   the RMSNorm weights norm_q, norm_k [C]
 *             + 2C*cross_attn_norm                  norm3 weight and bias
 *             + (f*C + f) + (C*f + C)               ffn.0, ffn.2
 *   outside   = (C*in*p + C)                        patch_embedding
 *             + (C*text_dim + C) + (C*C + C)        text_embedding.0, .2
 *             + (C*freq_dim + C) + (C*C + C)        time_embedding.0, .2
 *             + (6C*C + 6C)                         time_projection.1
 *             + 2C                                  head.modulation [1,2,C]
 *             + (out*p*C + out*p)                   head.head
 *   total     = num_layers * per block + outside.
 * 1.3B: 30 x 46,440,704 + 25,775,680 = 1,418,996,800; 14B: 40 x 351,394,304 + 232,719,424 =
 * 14,288,491,584 (PAPER.md 1.1). The bounds above keep it exact for any valid cfg. */
int64_t osp_config_param_count(const osp_model_config *cfg) {
  int64_t c = cfg->dim, f = cfg->ffn_dim;
  int64_t patch = (int64_t)cfg->patch_size[0] * cfg->patch_size[1] * cfg->patch_size[2];
  int64_t linear_c_c = c * c + c;
  int64_t attention = 4 * linear_c_c + 2 * c * cfg->qk_norm;
  int64_t block = 6 * c + 2 * attention + 2 * c * cfg->cross_attn_norm + (f * c + f) + (c * f + c);
  int64_t outside = (c * cfg->in_channels * patch + c) + (c * cfg->text_dim + c) + linear_c_c +
                    (c * cfg->freq_dim + c) + linear_c_c + (6 * c * c + 6 * c) + 2 * c +
                    (cfg->out_channels * patch * c + cfg->out_channels * patch);
  return cfg->num_layers * block + outside;
}
