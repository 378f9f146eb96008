/* The model configuration: config.json in diffusers' or the original Wan2.1 spelling (plus
 * OSP-Next's Skiparse keys), the built-in presets, validation and the parameter count.
 *
 * Reading a file is three steps: read every key (checking its JSON type, and the range of the
 * integers), resolve what the file left out or gave two ways (dim from heads x head_dim, out
 * from in, the Skiparse fields of a dense model), then validate the result as a whole.
 *
 * There is no global "style" switch: each quantity has its spellings (diffusers' first, then
 * the original's or the nested OSP-Next one), and a file may use any of them, or several if
 * they agree. So a diffusers file, an original file and a mixed one all read the same way. */
#include "core/config.h"

#include <errno.h>
#include <float.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"

/* Bounds on sizes: far above any released model, and small enough that every product of two
 * widths, and the parameter count, stay exact in int64. */
enum {
  MAX_WIDTH = 1 << 17, /* dim, ffn_dim, text_dim, freq_dim, heads, head_dim */
  MAX_LAYERS = 1024,
  MAX_CHANNELS = 1024,
  MAX_PATCH = 16,
  MAX_SEQUENCE = 1 << 20,     /* text_len, rope_max_seq_len */
  MAX_RATIO = 16,             /* sparse_ratio */
  MAX_CONFIG_BYTES = 1 << 20, /* of a config file; the published ones are under 1 KB */
};

enum {
  UNSET = -1,        /* an optional size the file did not give; resolved after reading */
  KEY_SPELLINGS = 2, /* names one quantity may have in a file */
  SHOWN_STRING = 32, /* bytes of a string value quoted in a message */
  DESCRIPTION_BYTES = SHOWN_STRING + 16,
};

static const double EPS_MIN = FLT_MIN; /* the smallest normal float: eps is stored as a float */
static const double EPS_MAX = 1.0;

/* The released Wan2.1 T2V models all use 128-wide heads; OSP-Next releases one schedule. */
enum { WAN_HEAD_DIM = 128, RELEASED_SPARSE_RATIO = 2, RELEASED_FULL_BLOCKS = 8 };

#define NESTED_PREFIX "model_config."
#define ARRAY_LENGTH(a) (sizeof(a) / sizeof((a)[0]))

static const char *const skiparse_names[] = {[OSP_SKIPARSE_FULL] = "full",
                                             [OSP_SKIPARSE_DUAL_END] = "dual_end",
                                             [OSP_SKIPARSE_UNIFORM] = "uniform"};

/* ---- describing JSON values in one-line messages ---- */

typedef struct {
  char text[DESCRIPTION_BYTES];
} description;

/* Copies `length` bytes of `source` (at most size - 1), replacing control bytes, so that a
 * message built from file content stays on one line. */
static void copy_printable(char *destination, size_t size, const char *source, size_t length) {
  size_t n = length < size - 1 ? length : size - 1;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)source[i];
    destination[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
  }
  destination[n] = '\0';
}

static description describe(const json_t *value) {
  description d = {""};
  switch (json_typeof(value)) {
    case JSON_OBJECT: snprintf(d.text, sizeof d.text, "an object"); break;
    case JSON_ARRAY:
      snprintf(d.text, sizeof d.text, "an array of %zu", json_array_size(value));
      break;
    case JSON_INTEGER:
      snprintf(d.text, sizeof d.text, "%" JSON_INTEGER_FORMAT, json_integer_value(value));
      break;
    case JSON_REAL:
      snprintf(d.text, sizeof d.text, "%.15g", json_real_value(value));
      if (!strpbrk(d.text, ".e")) strcat(d.text, ".0"); /* 1e12 reads as a real, not an integer */
      break;
    case JSON_TRUE: snprintf(d.text, sizeof d.text, "true"); break;
    case JSON_FALSE: snprintf(d.text, sizeof d.text, "false"); break;
    case JSON_NULL: snprintf(d.text, sizeof d.text, "null"); break;
    case JSON_STRING: {
      char shown[SHOWN_STRING + 1];
      size_t length = json_string_length(value);
      copy_printable(shown, sizeof shown, json_string_value(value), length);
      snprintf(d.text, sizeof d.text, "\"%s%s\"", shown, length > SHOWN_STRING ? "..." : "");
      break;
    }
  }
  return d;
}

/* The name of an array element in messages: "patch_size[1]". */
typedef struct {
  char text[32];
} element_name;

static element_name element_key(const char *array, size_t index) {
  element_name name;
  snprintf(name.text, sizeof name.text, "%s[%zu]", array, index);
  return name;
}

static osp_status fail_type(const char *label, const char *key, const char *expected,
                            const json_t *found) {
  return osp_fail(OSP_ERR_FORMAT, "%s: '%s': expected %s, found %s", label, key, expected,
                  describe(found).text);
}

static osp_status fail_unsupported(const char *label, const char *key, const char *expected,
                                   const json_t *found, const char *feature) {
  return osp_fail(OSP_ERR_UNSUPPORTED, "%s: '%s': expected %s, found %s: %s is not supported",
                  label, key, expected, describe(found).text, feature);
}

static osp_status check_range(const char *label, const char *key, long long value,
                              long long minimum, long long maximum) {
  if (value >= minimum && value <= maximum) return OSP_OK;
  return osp_fail(OSP_ERR_FORMAT, "%s: '%s': expected an integer in [%lld, %lld], found %lld",
                  label, key, minimum, maximum, value);
}

static osp_status check_eps(const char *label, double eps) {
  if (eps >= EPS_MIN && eps < EPS_MAX) return OSP_OK;
  return osp_fail(OSP_ERR_FORMAT, "%s: 'eps': expected a number in [%g, %g), found %g", label,
                  EPS_MIN, EPS_MAX, eps);
}

/* ---- finding a quantity under its spellings ---- */

typedef struct {
  const char *label;
  const json_t *root;
  const json_t *model_config; /* OSP-Next nests its Skiparse keys here; NULL when absent */
} reader;

typedef struct {
  const json_t *value; /* NULL when no spelling is present */
  const char *key;     /* the spelling that held it, for messages */
} found;

static const json_t *lookup(const reader *r, const char *key) {
  size_t prefix = strlen(NESTED_PREFIX);
  if (strncmp(key, NESTED_PREFIX, prefix) == 0)
    return r->model_config ? json_object_get(r->model_config, key + prefix) : NULL;
  return json_object_get(r->root, key);
}

/* Several spellings may be present (a file mixing diffusers and original keys, or a Skiparse
 * key both at the top level and under model_config) as long as they hold the same value. */
static osp_status find(const reader *r, const char *const keys[KEY_SPELLINGS], found *out) {
  *out = (found){NULL, keys[0]};
  for (int i = 0; i < KEY_SPELLINGS && keys[i]; i++) {
    const json_t *value = lookup(r, keys[i]);
    if (!value) continue;
    if (!out->value) {
      *out = (found){value, keys[i]};
    } else if (!json_equal(out->value, value)) {
      return osp_fail(OSP_ERR_FORMAT, "%s: '%s' = %s and '%s' = %s disagree", r->label, out->key,
                      describe(out->value).text, keys[i], describe(value).text);
    }
  }
  return OSP_OK;
}

static osp_status find_one(const reader *r, const char *key, found *out) {
  const char *const keys[KEY_SPELLINGS] = {key, NULL};
  return find(r, keys, out);
}

/* ---- integer keys, one table ---- */

typedef enum {
  KEY_OPTIONAL, /* absent: the field keeps its default (or UNSET) */
  KEY_REQUIRED, /* absent: an error */
  KEY_NULLABLE, /* absent or null: the field keeps UNSET (diffusers' out_channels = null) */
} key_presence;

typedef struct {
  const char *keys[KEY_SPELLINGS];
  size_t field; /* offsetof the int in osp_model_config */
  int minimum, maximum;
  key_presence presence;
} int_key;

#define FIELD(name) offsetof(osp_model_config, name)

/* clang-format off */
static const int_key int_keys[] = {
    /* spellings                         field                    min maximum       presence */
    {{"num_layers"},                       FIELD(num_layers),       1, MAX_LAYERS,   KEY_REQUIRED},
    {{"num_attention_heads", "num_heads"}, FIELD(num_heads),        1, MAX_WIDTH,    KEY_REQUIRED},
    {{"attention_head_dim"},               FIELD(head_dim),         1, MAX_WIDTH,    KEY_OPTIONAL},
    {{"dim"},                              FIELD(dim),              1, MAX_WIDTH,    KEY_OPTIONAL},
    {{"ffn_dim"},                          FIELD(ffn_dim),          1, MAX_WIDTH,    KEY_REQUIRED},
    {{"in_channels", "in_dim"},            FIELD(in_channels),      1, MAX_CHANNELS, KEY_OPTIONAL},
    {{"out_channels", "out_dim"},          FIELD(out_channels),     1, MAX_CHANNELS, KEY_NULLABLE},
    {{"text_dim"},                         FIELD(text_dim),         1, MAX_WIDTH,    KEY_OPTIONAL},
    {{"freq_dim"},                         FIELD(freq_dim),         1, MAX_WIDTH,    KEY_OPTIONAL},
    {{"text_len"},                         FIELD(text_len),         1, MAX_SEQUENCE, KEY_OPTIONAL},
    {{"rope_max_seq_len"},                 FIELD(rope_max_seq_len), 1, MAX_SEQUENCE, KEY_OPTIONAL},
    {{"sparse_ratio",
      "model_config.sparse_ratio"},        FIELD(sparse_ratio),     1, MAX_RATIO,    KEY_OPTIONAL},
    {{"num_full_blocks",
      "model_config.num_full_blocks"},     FIELD(num_full_blocks),  0, MAX_LAYERS,   KEY_OPTIONAL},
};
/* clang-format on */

static int get_int_field(const osp_model_config *cfg, size_t field) {
  return *(const int *)((const char *)cfg + field);
}

static void set_int_field(osp_model_config *cfg, size_t field, int value) {
  *(int *)((char *)cfg + field) = value;
}

static osp_status read_int_key(const reader *r, const int_key *key, osp_model_config *cfg) {
  found f;
  OSP_TRY(find(r, key->keys, &f));
  bool absent = !f.value || (key->presence == KEY_NULLABLE && json_is_null(f.value));
  if (absent && key->presence == KEY_REQUIRED) {
    if (key->keys[1])
      return osp_fail(OSP_ERR_MISSING, "%s: missing '%s' (or '%s')", r->label, key->keys[0],
                      key->keys[1]);
    return osp_fail(OSP_ERR_MISSING, "%s: missing '%s'", r->label, key->keys[0]);
  }
  if (absent) return OSP_OK;
  if (!json_is_integer(f.value)) return fail_type(r->label, f.key, "an integer", f.value);
  json_int_t value = json_integer_value(f.value);
  OSP_TRY(check_range(r->label, f.key, value, key->minimum, key->maximum));
  set_int_field(cfg, key->field, (int)value);
  return OSP_OK;
}

static osp_status read_int_keys(const reader *r, osp_model_config *cfg) {
  for (size_t i = 0; i < ARRAY_LENGTH(int_keys); i++) OSP_TRY(read_int_key(r, &int_keys[i], cfg));
  return OSP_OK;
}

/* ---- the other keys ---- */

static osp_status read_patch_size(const reader *r, osp_model_config *cfg) {
  found f;
  OSP_TRY(find_one(r, "patch_size", &f));
  if (!f.value) return OSP_OK;
  size_t n = ARRAY_LENGTH(cfg->patch_size);
  if (!json_is_array(f.value) || json_array_size(f.value) != n)
    return fail_type(r->label, f.key, "an array of 3 integers (t, h, w)", f.value);
  for (size_t i = 0; i < n; i++) {
    const json_t *element = json_array_get(f.value, i);
    element_name key = element_key(f.key, i);
    if (!json_is_integer(element)) return fail_type(r->label, key.text, "an integer", element);
    OSP_TRY(check_range(r->label, key.text, json_integer_value(element), 1, MAX_PATCH));
    cfg->patch_size[i] = (int)json_integer_value(element);
  }
  return OSP_OK;
}

static osp_status read_eps(const reader *r, osp_model_config *cfg) {
  found f;
  OSP_TRY(find_one(r, "eps", &f));
  if (!f.value) return OSP_OK;
  if (!json_is_number(f.value)) return fail_type(r->label, f.key, "a number", f.value);
  OSP_TRY(check_eps(r->label, json_number_value(f.value))); /* before narrowing to float */
  cfg->eps = (float)json_number_value(f.value);
  return OSP_OK;
}

static osp_status read_cross_attn_norm(const reader *r, osp_model_config *cfg) {
  found f;
  OSP_TRY(find_one(r, "cross_attn_norm", &f));
  if (!f.value) return OSP_OK;
  if (!json_is_boolean(f.value)) return fail_type(r->label, f.key, "true or false", f.value);
  cfg->cross_attn_norm = json_is_true(f.value);
  return OSP_OK;
}

/* diffusers writes "rms_norm_across_heads", the original code a bool. Only that RMSNorm over all
 * heads is supported, so cfg->qk_norm keeps its default 1. A disabled one is refused rather
 * than guessed: diffusers builds the norm whatever qk_norm says, Wan2.1 leaves it out for false. */
static osp_status check_qk_norm(const reader *r) {
  static const char expected[] = "true or \"rms_norm_across_heads\"";
  found f;
  OSP_TRY(find_one(r, "qk_norm", &f));
  if (!f.value || json_is_true(f.value)) return OSP_OK;
  if (json_is_string(f.value) && strcmp(json_string_value(f.value), "rms_norm_across_heads") == 0)
    return OSP_OK;
  if (json_is_string(f.value) || json_is_false(f.value) || json_is_null(f.value))
    return fail_unsupported(r->label, f.key, expected, f.value,
                            "a model without RMSNorm across heads on q and k");
  return fail_type(r->label, f.key, expected, f.value);
}

static osp_status read_skiparse_type(const reader *r, osp_model_config *cfg) {
  static const char *const keys[KEY_SPELLINGS] = {"skiparse_model_type",
                                                  "model_config.skiparse_model_type"};
  static const char expected[] = "\"full\", \"dual_end\" or \"uniform\"";
  found f;
  OSP_TRY(find(r, keys, &f));
  if (!f.value) return OSP_OK;
  if (!json_is_string(f.value)) return fail_type(r->label, f.key, expected, f.value);
  for (size_t i = 0; i < ARRAY_LENGTH(skiparse_names); i++) {
    if (strcmp(json_string_value(f.value), skiparse_names[i]) == 0) {
      cfg->skiparse_model_type = (osp_skiparse_type)i;
      return OSP_OK;
    }
  }
  return fail_type(r->label, f.key, expected, f.value);
}

/* ---- keys that select a model this engine does not run ---- */

static osp_status reject_model_type(const reader *r) {
  found f;
  OSP_TRY(find_one(r, "model_type", &f));
  if (!f.value) return OSP_OK;
  if (!json_is_string(f.value)) return fail_type(r->label, f.key, "\"t2v\"", f.value);
  if (strcmp(json_string_value(f.value), "t2v") == 0) return OSP_OK;
  return fail_unsupported(r->label, f.key, "\"t2v\"", f.value, "a model other than text-to-video");
}

/* diffusers' image-conditioning keys: any value but null means an image-to-video model. */
static osp_status reject_image_conditioning(const reader *r) {
  static const struct {
    const char *key;
    const char *feature;
  } must_be_null[] = {
      {"image_dim", "image-to-video"},
      {"added_kv_proj_dim", "image-to-video"},
      {"pos_embed_seq_len", "first-last-frame-to-video"},
  };
  for (size_t i = 0; i < ARRAY_LENGTH(must_be_null); i++) {
    found f;
    OSP_TRY(find_one(r, must_be_null[i].key, &f));
    if (f.value && !json_is_null(f.value))
      return fail_unsupported(r->label, f.key, "null", f.value, must_be_null[i].feature);
  }
  return OSP_OK;
}

/* The original window_size: (-1, -1) is global attention, anything else a local window. */
static osp_status reject_local_window(const reader *r) {
  found f;
  OSP_TRY(find_one(r, "window_size", &f));
  if (!f.value) return OSP_OK;
  if (!json_is_array(f.value) || json_array_size(f.value) != 2)
    return fail_type(r->label, f.key, "[-1, -1]", f.value);
  for (size_t i = 0; i < 2; i++) {
    const json_t *element = json_array_get(f.value, i);
    element_name key = element_key(f.key, i);
    if (!json_is_integer(element)) return fail_type(r->label, key.text, "-1", element);
    if (json_integer_value(element) != -1)
      return fail_unsupported(r->label, key.text, "-1", element, "local-window attention");
  }
  return OSP_OK;
}

static osp_status reject_unsupported_models(const reader *r) {
  OSP_TRY(reject_model_type(r));
  OSP_TRY(reject_image_conditioning(r));
  return reject_local_window(r);
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

/* A dense model is one ratio-1 span of full blocks (OSP-Next forces the ratio to 1 for "full");
 * a sparse one must say its ratio and its number of full blocks. */
static osp_status resolve_skiparse(const char *label, osp_model_config *cfg) {
  if (cfg->skiparse_model_type == OSP_SKIPARSE_FULL) {
    cfg->sparse_ratio = 1;
    cfg->num_full_blocks = cfg->num_layers;
    return OSP_OK;
  }
  const char *missing = cfg->sparse_ratio == UNSET      ? "sparse_ratio"
                        : cfg->num_full_blocks == UNSET ? "num_full_blocks"
                                                        : NULL;
  if (!missing) return OSP_OK;
  return osp_fail(OSP_ERR_MISSING, "%s: missing '%s', required by skiparse_model_type \"%s\"",
                  label, missing, skiparse_names[cfg->skiparse_model_type]);
}

static osp_status resolve(const char *label, osp_model_config *cfg) {
  OSP_TRY(resolve_dims(label, cfg));
  if (cfg->out_channels == UNSET) cfg->out_channels = cfg->in_channels; /* as diffusers does */
  OSP_TRY(resolve_skiparse(label, cfg));
  return osp_config_validate(label, cfg);
}

/* ---- parsing ---- */

static osp_status fail_json(const char *label, const json_error_t *error) {
  if (json_error_code(error) == json_error_out_of_memory)
    return osp_fail(OSP_ERR_MEMORY, "%s: out of memory parsing JSON", label);
  char text[JSON_ERROR_TEXT_LENGTH];
  copy_printable(text, sizeof text, error->text, strlen(error->text));
  return osp_fail(OSP_ERR_FORMAT, "%s: invalid JSON at line %d, column %d: %s", label, error->line,
                  error->column, text);
}

/* jansson skips a NUL byte between tokens (and stops at one inside others), so refuse it first. */
static osp_status reject_nul_byte(const char *label, const char *text, size_t length) {
  const char *nul = memchr(text, '\0', length);
  if (!nul) return OSP_OK;
  return osp_fail(OSP_ERR_FORMAT, "%s: invalid JSON at byte %zu: a NUL byte", label,
                  (size_t)(nul - text));
}

static osp_status read_config(const reader *r, osp_model_config *cfg) {
  OSP_TRY(reject_unsupported_models(r));
  OSP_TRY(read_int_keys(r, cfg));
  OSP_TRY(read_patch_size(r, cfg));
  OSP_TRY(read_eps(r, cfg));
  OSP_TRY(read_cross_attn_norm(r, cfg));
  OSP_TRY(check_qk_norm(r));
  return read_skiparse_type(r, cfg);
}

/* Fills *cfg only when the whole document is valid. */
static osp_status config_from_root(const char *label, const json_t *root, osp_model_config *cfg) {
  if (!json_is_object(root))
    return osp_fail(OSP_ERR_FORMAT, "%s: expected a JSON object at the top level, found %s", label,
                    describe(root).text);
  reader r = {label, root, json_object_get(root, "model_config")};
  if (r.model_config && !json_is_object(r.model_config))
    return fail_type(label, "model_config", "an object", r.model_config);
  osp_model_config read = default_config();
  OSP_TRY(read_config(&r, &read));
  OSP_TRY(resolve(label, &read));
  *cfg = read;
  return OSP_OK;
}

static const char *label_or_default(const char *label) { return label ? label : "config"; }

osp_status osp_config_parse(const char *label, const char *text, size_t length,
                            osp_model_config *cfg) {
  label = label_or_default(label);
  if (!text || !cfg)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: osp_config_parse needs a text and a config", label);
  OSP_TRY(reject_nul_byte(label, text, length));
  json_error_t error;
  json_t *root = json_loadb(text, length, JSON_REJECT_DUPLICATES, &error);
  if (!root) return fail_json(label, &error);
  osp_status status = config_from_root(label, root, cfg);
  json_decref(root);
  return status;
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

/* ---- validation ---- */

static osp_status validate_ranges(const char *label, const osp_model_config *cfg) {
  for (size_t i = 0; i < ARRAY_LENGTH(int_keys); i++) {
    const int_key *key = &int_keys[i];
    OSP_TRY(check_range(label, key->keys[0], get_int_field(cfg, key->field), key->minimum,
                        key->maximum));
  }
  for (size_t i = 0; i < ARRAY_LENGTH(cfg->patch_size); i++) {
    OSP_TRY(
        check_range(label, element_key("patch_size", i).text, cfg->patch_size[i], 1, MAX_PATCH));
  }
  return OSP_OK;
}

static osp_status validate_norms(const char *label, const osp_model_config *cfg) {
  OSP_TRY(check_eps(label, cfg->eps));
  OSP_TRY(check_range(label, "cross_attn_norm", cfg->cross_attn_norm, 0, 1));
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

/* PAPER.md 5.9. dual_end keeps F/2 full blocks at each end and alternates token-wise (even
 * index) and group-wise (odd index) blocks between them; F mod 4 = 0 and an even L make the
 * first sparse block token-wise and the last group-wise. F = 0 means every block is sparse. */
static osp_status validate_skiparse(const char *label, const osp_model_config *cfg) {
  int layers = cfg->num_layers, full = cfg->num_full_blocks;
  osp_skiparse_type type = cfg->skiparse_model_type;
  if (type != OSP_SKIPARSE_FULL && type != OSP_SKIPARSE_DUAL_END && type != OSP_SKIPARSE_UNIFORM)
    return osp_fail(OSP_ERR_FORMAT, "%s: 'skiparse_model_type': unknown value %d", label,
                    (int)type);
  const char *name = skiparse_names[type];
  if (type == OSP_SKIPARSE_FULL) {
    if (cfg->sparse_ratio != 1 || full != layers)
      return osp_fail(OSP_ERR_FORMAT,
                      "%s: 'skiparse_model_type' \"full\": expected sparse_ratio 1 and "
                      "num_full_blocks %d, found %d and %d",
                      label, layers, cfg->sparse_ratio, full);
    return OSP_OK;
  }
  if (layers % 2 != 0)
    return osp_fail(OSP_ERR_FORMAT,
                    "%s: 'num_layers': skiparse_model_type \"%s\" needs an even number, found %d",
                    label, name, layers);
  if (full % 2 != 0 || full > layers / 2)
    return osp_fail(OSP_ERR_FORMAT,
                    "%s: 'num_full_blocks': expected an even number <= num_layers/2 = %d, found %d",
                    label, layers / 2, full);
  if (type == OSP_SKIPARSE_DUAL_END && full % 4 != 0)
    return osp_fail(
        OSP_ERR_FORMAT,
        "%s: 'num_full_blocks': skiparse_model_type \"%s\" needs a multiple of 4, found %d", label,
        name, full);
  if (type == OSP_SKIPARSE_UNIFORM && full != 0)
    return osp_fail(OSP_ERR_FORMAT,
                    "%s: 'num_full_blocks': skiparse_model_type \"%s\" needs 0, found %d", label,
                    name, full);
  return OSP_OK;
}

osp_status osp_config_validate(const char *label, const osp_model_config *cfg) {
  label = label_or_default(label);
  if (!cfg) return osp_fail(OSP_ERR_ARGUMENT, "%s: osp_config_validate needs a config", label);
  OSP_TRY(validate_ranges(label, cfg));
  OSP_TRY(validate_norms(label, cfg));
  OSP_TRY(validate_widths(label, cfg));
  return validate_skiparse(label, cfg);
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
