/* Reading config.json: diffusers' spelling (WanTransformer3DModel), the original Wan2.1 one, and
 * OSP-Next's Skiparse keys, at the top level or nested under model_config.
 *
 * There is no global "style" switch: each quantity has its spellings (diffusers' first, then
 * the original's or the nested OSP-Next one), and a file may use any of them, or several if
 * they agree. So a diffusers file, an original file and a mixed one all read the same way.
 *
 * Each key is read with its JSON type checked, and the range of the integers (one table holds
 * the integer keys, which osp_config_validate checks again on the whole config). Resolving what
 * the file left out, and validating the result, are config.c's. Top down: describing values in
 * messages, finding a key under its spellings, the integer keys, the other keys, the keys of
 * models this engine does not run, then reading a document. */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/config_internal.h"
#include "core/status.h"

#define NESTED_PREFIX "model_config."

enum { KEY_SPELLINGS = 2 }; /* names one quantity may have in a file */

/* ---- describing JSON values in one-line messages ---- */

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

/* "text" in a message: at most SHOWN_STRING bytes of it, on one line. */
description osp_config_quote(const char *text, size_t length) {
  description d;
  char shown[SHOWN_STRING + 1];
  copy_printable(shown, sizeof shown, text, length);
  snprintf(d.text, sizeof d.text, "\"%s%s\"", shown, length > SHOWN_STRING ? "..." : "");
  return d;
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
    case JSON_STRING:
      d = osp_config_quote(json_string_value(value), json_string_length(value));
      break;
  }
  return d;
}

/* The name of an array element in messages: "patch_size[1]", "model_config.skiparse_schedule[29]".
 */
typedef struct {
  char text[48];
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
  OSP_TRY(osp_config_check_range(r->label, f.key, value, key->minimum, key->maximum));
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
    OSP_TRY(osp_config_check_range(r->label, key.text, json_integer_value(element), 1, MAX_PATCH));
    cfg->patch_size[i] = (int)json_integer_value(element);
  }
  return OSP_OK;
}

static osp_status read_eps(const reader *r, osp_model_config *cfg) {
  found f;
  OSP_TRY(find_one(r, "eps", &f));
  if (!f.value) return OSP_OK;
  if (!json_is_number(f.value)) return fail_type(r->label, f.key, "a number", f.value);
  /* before narrowing to float */
  OSP_TRY(osp_config_check_eps(r->label, json_number_value(f.value)));
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

/* OSP-Next's type, and OSP's keys that each belong to one type: every_k to "every_k", and
 * skiparse_schedule to "list", which it implies when the file names no type. */
static const char *const skiparse_type_keys[KEY_SPELLINGS] = {"skiparse_model_type",
                                                              "model_config.skiparse_model_type"};
static const char *const schedule_list_keys[KEY_SPELLINGS] = {"skiparse_schedule",
                                                              "model_config.skiparse_schedule"};
static const int_key every_k_key = {
    {"every_k", "model_config.every_k"}, FIELD(every_k), 1, MAX_LAYERS, KEY_OPTIONAL};

static osp_status read_skiparse_type(const reader *r, const found *f, osp_model_config *cfg) {
  static const char expected[] = "\"full\", \"dual_end\", \"uniform\", \"every_k\" or \"list\"";
  int type = json_is_string(f->value) ? osp_config_skiparse_type_named(json_string_value(f->value),
                                                                       json_string_length(f->value))
                                      : -1;
  if (type < 0) return fail_type(r->label, f->key, expected, f->value);
  cfg->skiparse_model_type = (osp_skiparse_type)type;
  return OSP_OK;
}

static osp_status check_key_owner(const reader *r, const found *f, osp_skiparse_type owner,
                                  const osp_model_config *cfg) {
  if (!f->value || cfg->skiparse_model_type == owner) return OSP_OK;
  return osp_fail(OSP_ERR_FORMAT, "%s: '%s' needs skiparse_model_type \"%s\", found \"%s\"",
                  r->label, f->key, osp_config_skiparse_name(owner),
                  osp_config_skiparse_name(cfg->skiparse_model_type));
}

/* One pattern per block, in order; num_layers is already read. */
static osp_status read_schedule_list(const reader *r, const found *f, osp_model_config *cfg) {
  size_t blocks = (size_t)cfg->num_layers;
  if (!json_is_array(f->value) || json_array_size(f->value) != blocks) {
    char expected[64];
    snprintf(expected, sizeof expected, "an array of %zu patterns, one per block", blocks);
    return fail_type(r->label, f->key, expected, f->value);
  }
  for (size_t i = 0; i < blocks; i++) {
    const json_t *element = json_array_get(f->value, i);
    int pattern = json_is_string(element) ? osp_config_pattern_named(json_string_value(element),
                                                                     json_string_length(element))
                                          : -1;
    if (pattern < 0)
      return fail_type(r->label, element_key(f->key, i).text, osp_config_pattern_expected, element);
    cfg->schedule[i] = (unsigned char)pattern;
  }
  return OSP_OK;
}

static osp_status read_skiparse(const reader *r, osp_model_config *cfg) {
  found type, list, every_k;
  OSP_TRY(find(r, skiparse_type_keys, &type));
  OSP_TRY(find(r, schedule_list_keys, &list));
  OSP_TRY(find(r, every_k_key.keys, &every_k));
  if (type.value) {
    OSP_TRY(read_skiparse_type(r, &type, cfg));
  } else if (list.value) {
    cfg->skiparse_model_type = OSP_SKIPARSE_LIST;
  }
  OSP_TRY(check_key_owner(r, &list, OSP_SKIPARSE_LIST, cfg));
  OSP_TRY(check_key_owner(r, &every_k, OSP_SKIPARSE_EVERY_K, cfg));
  OSP_TRY(read_int_key(r, &every_k_key, cfg));
  if (cfg->skiparse_model_type != OSP_SKIPARSE_LIST) return OSP_OK;
  if (!list.value)
    return osp_fail(OSP_ERR_MISSING,
                    "%s: missing 'skiparse_schedule', required by skiparse_model_type \"list\"",
                    r->label);
  return read_schedule_list(r, &list, cfg);
}

/* ---- HiF8 (PAPER.md 7.5): quant and quant_attn, with their scales ---- */

/* `key` at the top level or under model_config. */
static osp_status find_top_or_nested(const reader *r, const char *key, found *out) {
  char nested[64];
  snprintf(nested, sizeof nested, NESTED_PREFIX "%s", key);
  const char *const keys[KEY_SPELLINGS] = {key, nested};
  return find(r, keys, out);
}

/* "hif8", or "none" / null / absent. */
static osp_status read_quant_key(const reader *r, const char *key, osp_quant *quant) {
  static const char expected[] = "\"hif8\", \"none\" or null";
  found f;
  OSP_TRY(find_top_or_nested(r, key, &f));
  if (!f.value || json_is_null(f.value)) return OSP_OK;
  if (!json_is_string(f.value)) return fail_type(r->label, f.key, expected, f.value);
  const char *name = json_string_value(f.value);
  if (strcmp(name, "hif8") == 0) *quant = OSP_QUANT_HIF8;
  else if (strcmp(name, "none") == 0) *quant = OSP_QUANT_NONE;
  else return fail_unsupported(r->label, f.key, expected, f.value, "another quantization");
  return OSP_OK;
}

/* A positive finite number. */
static osp_status read_scale_max(const reader *r, const char *key, float *value) {
  found f;
  OSP_TRY(find_top_or_nested(r, key, &f));
  if (!f.value) return OSP_OK;
  if (!json_is_number(f.value)) return fail_type(r->label, f.key, "a number", f.value);
  const double v = json_number_value(f.value);
  if (!(v > 0 && v <= 32768))
    return osp_fail(OSP_ERR_FORMAT, "%s: '%s': expected a number in (0, 32768], found %s", r->label, f.key,
                    describe(f.value).text);
  *value = (float)v;
  return OSP_OK;
}

static osp_status read_quant(const reader *r, osp_model_config *cfg) {
  OSP_TRY(read_quant_key(r, "quant", &cfg->quant));
  OSP_TRY(read_quant_key(r, "quant_attn", &cfg->quant_attn));
  OSP_TRY(read_scale_max(r, "scale_max_forward", &cfg->scale_max_forward));
  return read_scale_max(r, "scale_max_backward", &cfg->scale_max_backward);
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

/* ---- reading a document ---- */

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
  OSP_TRY(read_quant(r, cfg));
  return read_skiparse(r, cfg);
}

static osp_status read_root(const char *label, const json_t *root, osp_model_config *cfg) {
  if (!json_is_object(root))
    return osp_fail(OSP_ERR_FORMAT, "%s: expected a JSON object at the top level, found %s", label,
                    describe(root).text);
  reader r = {label, root, json_object_get(root, "model_config")};
  if (r.model_config && !json_is_object(r.model_config))
    return fail_type(label, "model_config", "an object", r.model_config);
  return read_config(&r, cfg);
}

osp_status osp_config_read_json(const char *label, const char *text, size_t length,
                                osp_model_config *cfg) {
  OSP_TRY(reject_nul_byte(label, text, length));
  json_error_t error;
  json_t *root = json_loadb(text, length, JSON_REJECT_DUPLICATES, &error);
  if (!root) return fail_json(label, &error);
  osp_status status = read_root(label, root, cfg);
  json_decref(root);
  return status;
}

/* ---- the ranges of the keys, checked again by osp_config_validate ---- */

osp_status osp_config_check_key_ranges(const char *label, const osp_model_config *cfg) {
  for (size_t i = 0; i < ARRAY_LENGTH(int_keys); i++) {
    const int_key *key = &int_keys[i];
    OSP_TRY(osp_config_check_range(label, key->keys[0], osp_config_int_field(cfg, key->field),
                                   key->minimum, key->maximum));
  }
  for (size_t i = 0; i < ARRAY_LENGTH(cfg->patch_size); i++) {
    OSP_TRY(osp_config_check_range(label, element_key("patch_size", i).text, cfg->patch_size[i], 1,
                                   MAX_PATCH));
  }
  return OSP_OK;
}
