/* Reading the umT5 encoder's config.json (transformers' UMT5Config). */
#include <jansson.h>
#include <stddef.h>
#include <string.h>

#include "core/status.h"
#include "model/umt5.h"

/* Far above umT5-XXL (d_ff 10240, vocab 256384), and small enough that products of two stay
 * exact in int64 and fit OpenBLAS's int sizes. */
enum { MAX_WIDTH = 1 << 17, MAX_LAYERS = 1024, MAX_VOCAB = 1 << 24, MAX_DISTANCE = 1 << 20 };

typedef struct {
  const char *key;
  size_t field; /* offsetof the int in osp_umt5_config */
  int minimum, maximum;
  int fallback; /* UMT5Config's default; 0: the key is required */
} int_key;

#define FIELD(name) offsetof(osp_umt5_config, name)

/* clang-format off */
static const int_key int_keys[] = {
    {"d_model",                         FIELD(d_model),      1, MAX_WIDTH,    0},
    {"d_kv",                            FIELD(d_kv),         1, MAX_WIDTH,    0},
    {"d_ff",                            FIELD(d_ff),         1, MAX_WIDTH,    0},
    {"num_layers",                      FIELD(num_layers),   1, MAX_LAYERS,   0},
    {"num_heads",                       FIELD(num_heads),    1, MAX_WIDTH,    0},
    {"vocab_size",                      FIELD(vocab_size),   1, MAX_VOCAB,    0},
    {"relative_attention_num_buckets",  FIELD(num_buckets),  4, MAX_WIDTH,    32},
    {"relative_attention_max_distance", FIELD(max_distance), 1, MAX_DISTANCE, 128},
};
/* clang-format on */

static osp_status read_int(const char *path, const json_t *root, const int_key *key,
                           osp_umt5_config *config) {
  const json_t *value = json_object_get(root, key->key);
  int *field = (int *)((char *)config + key->field);
  if (!value && key->fallback) {
    *field = key->fallback;
    return OSP_OK;
  }
  if (!value) return osp_fail(OSP_ERR_MISSING, "%s: missing '%s'", path, key->key);
  if (!json_is_integer(value))
    return osp_fail(OSP_ERR_FORMAT, "%s: '%s': expected an integer", path, key->key);
  const json_int_t n = json_integer_value(value);
  if (n < key->minimum || n > key->maximum)
    return osp_fail(OSP_ERR_FORMAT, "%s: '%s': expected %d to %d, found %lld", path, key->key,
                    key->minimum, key->maximum, (long long)n);
  *field = (int)n;
  return OSP_OK;
}

static osp_status read_eps(const char *path, const json_t *root, osp_umt5_config *config) {
  const json_t *value = json_object_get(root, "layer_norm_epsilon");
  config->eps = 1e-6f;
  if (!value) return OSP_OK;
  if (!json_is_number(value) || json_number_value(value) < 0 || json_number_value(value) > 1)
    return osp_fail(OSP_ERR_FORMAT, "%s: 'layer_norm_epsilon': expected a number in [0, 1]", path);
  config->eps = (float)json_number_value(value);
  return OSP_OK;
}

/* umT5 is gated-GELU with the tanh approximation (transformers maps "gated-gelu" to gelu_new). */
static osp_status check_feed_forward(const char *path, const json_t *root) {
  const json_t *value = json_object_get(root, "feed_forward_proj");
  if (!value) return OSP_OK;
  if (!json_is_string(value))
    return osp_fail(OSP_ERR_FORMAT, "%s: 'feed_forward_proj': expected a string", path);
  if (!strcmp(json_string_value(value), "gated-gelu")) return OSP_OK;
  return osp_fail(OSP_ERR_UNSUPPORTED,
                  "%s: 'feed_forward_proj': expected \"gated-gelu\" (umT5's FFN), found \"%.32s\": "
                  "other feed-forward layers are not supported",
                  path, json_string_value(value));
}

/* Sizes the buckets and the attention need: an even bucket count (half per direction) and a
 * max_distance past the exact buckets. */
static osp_status check_positions(const char *path, const osp_umt5_config *c) {
  if (c->num_buckets % 2)
    return osp_fail(OSP_ERR_FORMAT, "%s: 'relative_attention_num_buckets': expected an even count, found %d",
                    path, c->num_buckets);
  if (c->max_distance <= c->num_buckets / 4)
    return osp_fail(OSP_ERR_FORMAT,
                    "%s: 'relative_attention_max_distance': expected more than %d (a quarter of the "
                    "buckets), found %d",
                    path, c->num_buckets / 4, c->max_distance);
  return OSP_OK;
}

static osp_status read_config(const char *path, const json_t *root, osp_umt5_config *config) {
  if (!json_is_object(root)) return osp_fail(OSP_ERR_FORMAT, "%s: expected a JSON object", path);
  for (size_t i = 0; i < sizeof int_keys / sizeof int_keys[0]; i++)
    OSP_TRY(read_int(path, root, &int_keys[i], config));
  OSP_TRY(read_eps(path, root, config));
  OSP_TRY(check_feed_forward(path, root));
  return check_positions(path, config);
}

osp_status osp_umt5_config_load(const char *path, osp_umt5_config *config) {
  json_error_t error;
  json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &error);
  if (!root)
    return osp_fail(OSP_ERR_FORMAT, "%s: line %d: %s", path, error.line, error.text);
  *config = (osp_umt5_config){0};
  const osp_status status = read_config(path, root, config);
  json_decref(root);
  return status;
}

void osp_umt5_config_xxl(osp_umt5_config *config) {
  *config = (osp_umt5_config){.d_model = 4096, .d_kv = 64, .d_ff = 10240, .num_layers = 24, .num_heads = 64,
                              .num_buckets = 32, .max_distance = 128, .vocab_size = 256384, .eps = 1e-6f};
}

int64_t osp_umt5_parameter_count(const osp_umt5_config *c) {
  const int64_t d = c->d_model, inner = (int64_t)c->num_heads * c->d_kv, ff = c->d_ff;
  const int64_t layer = 4 * d * inner + (int64_t)c->num_buckets * c->num_heads + 2 * d + 3 * d * ff;
  return (int64_t)c->vocab_size * d + c->num_layers * layer + d;
}
