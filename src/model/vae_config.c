/* vae/config.json of a diffusers model directory (AutoencoderKLWan's keys), read with its JSON
 * types and ranges checked; Wan2.2's VAE and attention scales are refused by name. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/status.h"
#include "model/vae.h"

enum { MAX_CHANNELS = 4096, MAX_RES_BLOCKS = 16, REFERENCE_TEMPORAL_STEPS = 2 };

static osp_status read_int(const char *path, const json_t *root, const char *key, int fallback, int lo,
                           int hi, int *out) {
  const json_t *v = json_object_get(root, key);
  if (!v) {
    if (fallback < 0) return osp_fail(OSP_ERR_FORMAT, "%s: missing key '%s'", path, key);
    *out = fallback;
    return OSP_OK;
  }
  if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
    return osp_fail(OSP_ERR_FORMAT, "%s: '%s' must be an integer from %d to %d", path, key, lo, hi);
  *out = (int)json_integer_value(v);
  return OSP_OK;
}

/* An array of `key` with length in [1, max]; its length goes to *count. */
static osp_status read_array(const char *path, const json_t *root, const char *key, size_t max,
                             const json_t **array, int *count) {
  *array = json_object_get(root, key);
  if (!*array) return osp_fail(OSP_ERR_FORMAT, "%s: missing key '%s'", path, key);
  if (!json_is_array(*array) || json_array_size(*array) < 1 || json_array_size(*array) > max)
    return osp_fail(OSP_ERR_FORMAT, "%s: '%s' must be an array of 1 to %zu values", path, key, max);
  *count = (int)json_array_size(*array);
  return OSP_OK;
}

static osp_status read_floats(const char *path, const json_t *root, const char *key, int expected,
                              float *out) {
  const json_t *array;
  int count = 0;
  OSP_TRY(read_array(path, root, key, OSP_VAE_MAX_Z, &array, &count));
  if (count != expected)
    return osp_fail(OSP_ERR_FORMAT, "%s: '%s' must have z_dim = %d values, found %d", path, key, expected, count);
  for (int i = 0; i < count; i++) {
    const json_t *v = json_array_get(array, (size_t)i);
    if (!json_is_number(v) || !isfinite(json_number_value(v)))
      return osp_fail(OSP_ERR_FORMAT, "%s: %s[%d] must be a finite number", path, key, i);
    out[i] = (float)json_number_value(v);
  }
  return OSP_OK;
}

/* Keys that only other VAEs set: Wan2.2's residual blocks and patchify, a separate decoder width,
 * and attention outside the middle block (diffusers and Wan2.1 place it differently there). */
static osp_status refuse_other_vaes(const char *path, const json_t *root, int base_dim) {
  const json_t *v = json_object_get(root, "is_residual");
  if (v && !json_is_false(v))
    return osp_fail(OSP_ERR_UNSUPPORTED, "%s: is_residual is set: this is a Wan2.2 VAE (AvgDown3D/DupUp3D); "
                    "only the Wan2.1 VAE is supported", path);
  v = json_object_get(root, "patch_size");
  if (v && !json_is_null(v))
    return osp_fail(OSP_ERR_UNSUPPORTED, "%s: patch_size is set: this is a Wan2.2 VAE (patchified input); "
                    "only the Wan2.1 VAE is supported", path);
  v = json_object_get(root, "decoder_base_dim");
  if (v && !json_is_null(v) && !(json_is_integer(v) && json_integer_value(v) == base_dim))
    return osp_fail(OSP_ERR_UNSUPPORTED, "%s: decoder_base_dim differs from base_dim %d (a Wan2.2 VAE?); "
                    "only the Wan2.1 VAE is supported", path, base_dim);
  v = json_object_get(root, "attn_scales");
  if (v && !(json_is_array(v) && json_array_size(v) == 0))
    return osp_fail(OSP_ERR_UNSUPPORTED, "%s: attn_scales must be [] (Wan2.1 has attention only in the middle "
                    "block)", path);
  return OSP_OK;
}

static osp_status read_levels(const char *path, const json_t *root, osp_vae_config *c) {
  const json_t *mult, *temporal;
  OSP_TRY(read_array(path, root, "dim_mult", OSP_VAE_MAX_LEVELS, &mult, &c->levels));
  if (c->levels < 2) return osp_fail(OSP_ERR_FORMAT, "%s: dim_mult needs at least 2 levels", path);
  for (int i = 0; i < c->levels; i++) {
    const json_t *v = json_array_get(mult, (size_t)i);
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) * c->base_dim > MAX_CHANNELS)
      return osp_fail(OSP_ERR_FORMAT, "%s: dim_mult[%d] must be a positive integer (times base_dim at most %d)",
                      path, i, MAX_CHANNELS);
    c->dim_mult[i] = (int)json_integer_value(v);
  }
  int count = 0, steps = 0;
  OSP_TRY(read_array(path, root, "temperal_downsample", OSP_VAE_MAX_LEVELS, &temporal, &count));
  if (count != c->levels - 1)
    return osp_fail(OSP_ERR_FORMAT, "%s: temperal_downsample must have len(dim_mult) - 1 = %d values, found %d",
                    path, c->levels - 1, count);
  for (int i = 0; i < count; i++) {
    const json_t *v = json_array_get(temporal, (size_t)i);
    if (!json_is_boolean(v)) return osp_fail(OSP_ERR_FORMAT, "%s: temperal_downsample[%d] must be a boolean", path, i);
    c->temporal_downsample[i] = json_is_true(v);
    steps += c->temporal_downsample[i];
  }
  if (steps != REFERENCE_TEMPORAL_STEPS)
    return osp_fail(OSP_ERR_UNSUPPORTED, "%s: temperal_downsample has %d temporal steps; the Wan2.1 VAE has %d "
                    "(4x in time, which its chunks of 4 frames assume)", path, steps, REFERENCE_TEMPORAL_STEPS);
  return OSP_OK;
}

static osp_status read_config(const char *path, const json_t *root, osp_vae_config *c) {
  if (!json_is_object(root)) return osp_fail(OSP_ERR_FORMAT, "%s: expected a JSON object", path);
  OSP_TRY(read_int(path, root, "base_dim", -1, 1, MAX_CHANNELS, &c->base_dim));
  OSP_TRY(refuse_other_vaes(path, root, c->base_dim));
  OSP_TRY(read_int(path, root, "z_dim", -1, 1, OSP_VAE_MAX_Z, &c->z_dim));
  OSP_TRY(read_int(path, root, "num_res_blocks", -1, 1, MAX_RES_BLOCKS, &c->num_res_blocks));
  OSP_TRY(read_int(path, root, "in_channels", 3, 1, MAX_CHANNELS, &c->in_channels));
  OSP_TRY(read_int(path, root, "out_channels", 3, 1, MAX_CHANNELS, &c->out_channels));
  OSP_TRY(read_levels(path, root, c));
  OSP_TRY(read_floats(path, root, "latents_mean", c->z_dim, c->latents_mean));
  OSP_TRY(read_floats(path, root, "latents_std", c->z_dim, c->latents_std));
  for (int i = 0; i < c->z_dim; i++)
    if (!(c->latents_std[i] > 0))
      return osp_fail(OSP_ERR_FORMAT, "%s: latents_std[%d] must be positive, found %g", path, i,
                      (double)c->latents_std[i]);
  return OSP_OK;
}

osp_status osp_vae_config_load(const char *path, osp_vae_config *config) {
  *config = (osp_vae_config){0};
  json_error_t error;
  json_t *root = json_load_file(path, 0, &error);
  if (!root) return osp_fail(OSP_ERR_IO, "%s: cannot read the VAE config: %s (line %d)", path, error.text, error.line);
  osp_status status = read_config(path, root, config);
  json_decref(root);
  return status;
}

void osp_vae_config_wan21(osp_vae_config *c) {
  static const float mean[16] = {-0.7571f, -0.7089f, -0.9113f, 0.1075f, -0.1745f, 0.9653f, -0.1517f, 1.5508f,
                                 0.4134f,  -0.0715f, 0.5517f,  -0.3632f, -0.1922f, -0.9497f, 0.2503f, -0.2921f};
  static const float std[16] = {2.8184f, 1.4541f, 2.3275f, 2.6558f, 1.2196f, 1.7708f, 2.6052f, 2.0743f,
                                3.2687f, 2.1526f, 2.8652f, 1.5579f, 1.6382f, 1.1253f, 2.8251f, 1.9160f};
  *c = (osp_vae_config){.base_dim = 96, .z_dim = 16, .levels = 4, .dim_mult = {1, 2, 4, 4}, .num_res_blocks = 2,
                        .temporal_downsample = {false, true, true}, .in_channels = 3, .out_channels = 3};
  for (int i = 0; i < 16; i++) {
    c->latents_mean[i] = mean[i];
    c->latents_std[i] = std[i];
  }
}
