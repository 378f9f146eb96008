/* The model configuration: config.json in diffusers' or the original Wan2.1 spelling (plus
 * OSP-Next's Skiparse keys), the built-in presets, validation and the parameter count.
 *
 * Reading a file is three steps: read every key (checking its JSON type, and the range of the
 * integers), resolve what the file left out or gave two ways (dim from heads x head_dim, out
 * from in, the Skiparse fields of a dense model), then validate the result as a whole.
 *
 * There is no global "style" switch: each quantity has its spellings (diffusers' first, then
 * the original's or the nested OSP-Next one), and a file may use any of them, or several if
 * they agree. So a diffusers file, an original file and a mixed one all read the same way.
 *
 * The Skiparse schedule (PAPER.md 5.9) is a named type with its parameter (full; dual_end and
 * uniform with num_full_blocks F; every_k with k) or an explicit list, and the block patterns
 * derived from it. Every path that changes it (a file, a preset, the overrides) ends in
 * settle_schedule, which derives the blocks and the fields that follow from them. */
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
  MAX_WIDTH = 1 << 17,         /* dim, ffn_dim, text_dim, freq_dim, heads, head_dim */
  MAX_LAYERS = OSP_MAX_LAYERS, /* the capacity of the schedule */
  MAX_CHANNELS = 1024,
  MAX_PATCH = 16,
  MAX_SEQUENCE = 1 << 20,     /* text_len, rope_max_seq_len */
  MIN_SPARSE_RATIO = 2,       /* sparse_ratio of a schedule with sparse blocks */
  MAX_RATIO = 16,             /* sparse_ratio */
  MAX_CONFIG_BYTES = 1 << 20, /* of a config file; the published ones are under 1 KB */
};

enum {
  UNSET = -1,        /* an optional size the file did not give; resolved after reading */
  KEY_SPELLINGS = 2, /* names one quantity may have in a file */
  SHOWN_STRING = 32, /* bytes of a string value quoted in a message */
  DESCRIPTION_BYTES = SHOWN_STRING + 16,
  MAX_NUMBER_DIGITS = 9, /* of the N in a --schedule "name:N": fits an int */
};

static const double EPS_MIN = FLT_MIN; /* the smallest normal float: eps is stored as a float */
static const double EPS_MAX = 1.0;

/* The released Wan2.1 T2V models all use 128-wide heads; OSP-Next releases one schedule. */
enum { WAN_HEAD_DIM = 128, RELEASED_SPARSE_RATIO = 2, RELEASED_FULL_BLOCKS = 8 };

#define NESTED_PREFIX "model_config."
#define ARRAY_LENGTH(a) (sizeof(a) / sizeof((a)[0]))
#define FIELD(name) offsetof(osp_model_config, name)

static const char *const skiparse_names[] = {[OSP_SKIPARSE_FULL] = "full",
                                             [OSP_SKIPARSE_DUAL_END] = "dual_end",
                                             [OSP_SKIPARSE_UNIFORM] = "uniform",
                                             [OSP_SKIPARSE_EVERY_K] = "every_k",
                                             [OSP_SKIPARSE_LIST] = "list"};

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

/* "text" in a message: at most SHOWN_STRING bytes of it, on one line. */
static description quote(const char *text, size_t length) {
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
    case JSON_STRING: d = quote(json_string_value(value), json_string_length(value)); break;
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

/* ---- schedules (PAPER.md 5.9) ---- */

static const char *const pattern_names[] = {
    [OSP_PATTERN_FULL] = "full", [OSP_PATTERN_TOKEN] = "token", [OSP_PATTERN_GROUP] = "group"};
static const char pattern_letters[] =
    "FTG"; /* indexed by osp_pattern, as schedule strings show them */
enum { PATTERN_COUNT = ARRAY_LENGTH(pattern_names) };
static const char PATTERN_EXPECTED[] = "\"full\", \"token\" or \"group\" (or \"F\", \"T\", \"G\")";

/* The pattern spelled by `length` bytes of `text`, its name or its letter; -1 when none. */
static int pattern_named(const char *text, size_t length) {
  for (int p = 0; p < PATTERN_COUNT; p++) {
    bool name = strlen(pattern_names[p]) == length && strncmp(text, pattern_names[p], length) == 0;
    bool letter = length == 1 && text[0] == pattern_letters[p];
    if (name || letter) return p;
  }
  return -1;
}

/* The skiparse type named by `length` bytes of `text`; -1 when none. */
static int skiparse_type_named(const char *text, size_t length) {
  for (size_t i = 0; i < ARRAY_LENGTH(skiparse_names); i++) {
    if (strlen(skiparse_names[i]) == length && strncmp(text, skiparse_names[i], length) == 0)
      return (int)i;
  }
  return -1;
}

/* The pattern of one block under a schedule type, from the type's parameter. */
typedef osp_pattern block_rule(const osp_model_config *cfg, int block);

static osp_pattern full_block(const osp_model_config *cfg, int block) { return OSP_PATTERN_FULL; }

/* Sparse blocks alternate, token-wise at even positions. */
static osp_pattern alternating(int position) {
  return position % 2 == 0 ? OSP_PATTERN_TOKEN : OSP_PATTERN_GROUP;
}

/* dual_end (and uniform, its F = 0 case): F/2 full blocks at each end, the index's parity between.
 */
static osp_pattern dual_end_block(const osp_model_config *cfg, int block) {
  int end = cfg->num_full_blocks / 2;
  if (block < end || block >= cfg->num_layers - end) return OSP_PATTERN_FULL;
  return alternating(block);
}

/* every_k: full where the index is a multiple of k; each run of sparse blocks starts token-wise. */
static osp_pattern every_k_block(const osp_model_config *cfg, int block) {
  int position = block % cfg->every_k;
  return position == 0 ? OSP_PATTERN_FULL : alternating(position - 1);
}

static osp_pattern listed_block(const osp_model_config *cfg, int block) {
  return (osp_pattern)cfg->schedule[block];
}

/* The rules a type's parameter must follow before the blocks can be derived from it. */
typedef osp_status parameter_rule(const char *label, const osp_model_config *cfg);

static osp_status no_parameter(const char *label, const osp_model_config *cfg) { return OSP_OK; }

/* OSP-Next's rules for a sparse span between full ends: L and F even, F <= L/2. */
static osp_status check_sparse_span(const char *label, const osp_model_config *cfg) {
  int layers = cfg->num_layers, full = cfg->num_full_blocks;
  const char *name = skiparse_names[cfg->skiparse_model_type];
  if (layers % 2 != 0)
    return osp_fail(OSP_ERR_FORMAT,
                    "%s: 'num_layers': skiparse_model_type \"%s\" needs an even number, found %d",
                    label, name, layers);
  if (full % 2 != 0 || full > layers / 2)
    return osp_fail(OSP_ERR_FORMAT,
                    "%s: 'num_full_blocks': expected an even number <= num_layers/2 = %d, found %d",
                    label, layers / 2, full);
  return OSP_OK;
}

/* F mod 4 = 0 makes the first sparse block token-wise and the last group-wise. */
static osp_status check_dual_end(const char *label, const osp_model_config *cfg) {
  OSP_TRY(check_sparse_span(label, cfg));
  if (cfg->num_full_blocks % 4 == 0) return OSP_OK;
  return osp_fail(OSP_ERR_FORMAT,
                  "%s: 'num_full_blocks': skiparse_model_type \"dual_end\" needs a multiple of 4, "
                  "found %d",
                  label, cfg->num_full_blocks);
}

static osp_status check_uniform(const char *label, const osp_model_config *cfg) {
  OSP_TRY(check_sparse_span(label, cfg));
  if (cfg->num_full_blocks == 0) return OSP_OK;
  return osp_fail(OSP_ERR_FORMAT,
                  "%s: 'num_full_blocks': skiparse_model_type \"uniform\" needs 0, found %d", label,
                  cfg->num_full_blocks);
}

static osp_status check_every_k(const char *label, const osp_model_config *cfg) {
  return check_range(label, "every_k", cfg->every_k, 1, MAX_LAYERS);
}

/* Each type: how its blocks follow from the config, the rules on its parameter, and the key a
 * config file must give for it besides sparse_ratio (a list gives its blocks instead). */
static const struct {
  block_rule *pattern;
  parameter_rule *check;
  const char *parameter; /* NULL: none */
  size_t field;          /* offsetof the parameter's int */
} skiparse_kinds[] = {
    [OSP_SKIPARSE_FULL] = {full_block, no_parameter, NULL, 0},
    [OSP_SKIPARSE_DUAL_END] = {dual_end_block, check_dual_end, "num_full_blocks",
                               FIELD(num_full_blocks)},
    [OSP_SKIPARSE_UNIFORM] = {dual_end_block, check_uniform, "num_full_blocks",
                              FIELD(num_full_blocks)},
    [OSP_SKIPARSE_EVERY_K] = {every_k_block, check_every_k, "every_k", FIELD(every_k)},
    [OSP_SKIPARSE_LIST] = {listed_block, no_parameter, NULL, 0},
};

static osp_status check_skiparse_type(const char *label, osp_skiparse_type type) {
  if ((unsigned)type < ARRAY_LENGTH(skiparse_kinds)) return OSP_OK;
  return osp_fail(OSP_ERR_FORMAT, "%s: 'skiparse_model_type': unknown value %d", label, (int)type);
}

/* Blocks past num_layers are full, so that equal configs are equal byte for byte. */
static void derive_schedule(osp_model_config *cfg) {
  block_rule *pattern = skiparse_kinds[cfg->skiparse_model_type].pattern;
  for (int i = 0; i < MAX_LAYERS; i++)
    cfg->schedule[i] = (unsigned char)(i < cfg->num_layers ? pattern(cfg, i) : OSP_PATTERN_FULL);
}

static int count_full_blocks(const osp_model_config *cfg) {
  int full = 0;
  for (int i = 0; i < cfg->num_layers; i++) full += cfg->schedule[i] == OSP_PATTERN_FULL;
  return full;
}

static bool has_sparse_blocks(const osp_model_config *cfg) {
  return count_full_blocks(cfg) < cfg->num_layers;
}

/* After the type and its parameter (or the list) change: checks the parameter, derives the blocks
 * and what follows from them. num_full_blocks counts the full blocks (for dual_end and uniform,
 * the F given); a schedule without sparse blocks has sparse_ratio 1 (as OSP-Next forces for
 * "full"); every_k is 0 unless the type is every_k. The caller settles the ratio of a sparse one.
 */
static osp_status settle_schedule(const char *label, osp_model_config *cfg) {
  OSP_TRY(skiparse_kinds[cfg->skiparse_model_type].check(label, cfg));
  derive_schedule(cfg);
  cfg->num_full_blocks = count_full_blocks(cfg);
  if (cfg->skiparse_model_type != OSP_SKIPARSE_EVERY_K) cfg->every_k = 0;
  if (!has_sparse_blocks(cfg)) cfg->sparse_ratio = 1;
  return OSP_OK;
}

/* P is 1 exactly when no block is sparse: P^2 subsequences need P >= 2. */
static osp_status check_sparse_ratio(const char *label, const osp_model_config *cfg) {
  int ratio = cfg->sparse_ratio;
  if (!has_sparse_blocks(cfg)) {
    if (ratio == 1) return OSP_OK;
    return osp_fail(OSP_ERR_FORMAT,
                    "%s: 'sparse_ratio': expected 1 for a schedule without sparse blocks, found %d",
                    label, ratio);
  }
  if (ratio >= MIN_SPARSE_RATIO && ratio <= MAX_RATIO) return OSP_OK;
  return osp_fail(OSP_ERR_FORMAT,
                  "%s: 'sparse_ratio': expected an integer in [%d, %d] for a schedule with sparse "
                  "blocks, found %d%s",
                  label, MIN_SPARSE_RATIO, MAX_RATIO, ratio,
                  ratio < MIN_SPARSE_RATIO ? " (sparse ratio < 2)" : "");
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
  int type = json_is_string(f->value)
                 ? skiparse_type_named(json_string_value(f->value), json_string_length(f->value))
                 : -1;
  if (type < 0) return fail_type(r->label, f->key, expected, f->value);
  cfg->skiparse_model_type = (osp_skiparse_type)type;
  return OSP_OK;
}

static osp_status check_key_owner(const reader *r, const found *f, osp_skiparse_type owner,
                                  const osp_model_config *cfg) {
  if (!f->value || cfg->skiparse_model_type == owner) return OSP_OK;
  return osp_fail(OSP_ERR_FORMAT, "%s: '%s' needs skiparse_model_type \"%s\", found \"%s\"",
                  r->label, f->key, skiparse_names[owner],
                  skiparse_names[cfg->skiparse_model_type]);
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
    int pattern = json_is_string(element)
                      ? pattern_named(json_string_value(element), json_string_length(element))
                      : -1;
    if (pattern < 0)
      return fail_type(r->label, element_key(f->key, i).text, PATTERN_EXPECTED, element);
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
      .every_k = UNSET,
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

static osp_status fail_missing_for_type(const char *label, const char *key,
                                        osp_skiparse_type type) {
  return osp_fail(OSP_ERR_MISSING, "%s: missing '%s', required by skiparse_model_type \"%s\"",
                  label, key, skiparse_names[type]);
}

/* A file names the parameter of its type (OSP-Next: num_full_blocks even for "uniform"), and the
 * ratio of a schedule with sparse blocks; "full" forces ratio 1 and F = L, whatever it says. */
static osp_status resolve_skiparse(const char *label, osp_model_config *cfg) {
  osp_skiparse_type type = cfg->skiparse_model_type;
  const char *parameter = skiparse_kinds[type].parameter;
  if (parameter && get_int_field(cfg, skiparse_kinds[type].field) == UNSET)
    return fail_missing_for_type(label, parameter, type);
  OSP_TRY(settle_schedule(label, cfg));
  if (cfg->sparse_ratio == UNSET) return fail_missing_for_type(label, "sparse_ratio", type);
  return OSP_OK;
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
  return read_skiparse(r, cfg);
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

/* Every block holds a pattern, and the one its type derives (a list derives itself). */
static osp_status validate_blocks(const char *label, const osp_model_config *cfg) {
  block_rule *pattern = skiparse_kinds[cfg->skiparse_model_type].pattern;
  for (int i = 0; i < cfg->num_layers; i++) {
    int found_pattern = cfg->schedule[i];
    if (found_pattern >= PATTERN_COUNT)
      return osp_fail(OSP_ERR_FORMAT,
                      "%s: 'schedule[%d]': expected a pattern (0 full, 1 token, 2 group), found %d",
                      label, i, found_pattern);
    osp_pattern expected = pattern(cfg, i);
    if ((int)expected != found_pattern)
      return osp_fail(OSP_ERR_FORMAT,
                      "%s: 'schedule[%d]': expected %s, as skiparse_model_type \"%s\" makes it, "
                      "found %s",
                      label, i, pattern_names[expected], skiparse_names[cfg->skiparse_model_type],
                      pattern_names[found_pattern]);
  }
  return OSP_OK;
}

static osp_status validate_full_block_count(const char *label, const osp_model_config *cfg) {
  int full = count_full_blocks(cfg);
  if (cfg->num_full_blocks == full) return OSP_OK;
  return osp_fail(OSP_ERR_FORMAT,
                  "%s: 'num_full_blocks': expected %d, the full blocks of the schedule, found %d",
                  label, full, cfg->num_full_blocks);
}

/* PAPER.md 5.9: the type's rules on its parameter, the blocks it derives, and the fields that
 * follow from them (settle_schedule makes them so). */
static osp_status validate_skiparse(const char *label, const osp_model_config *cfg) {
  OSP_TRY(check_skiparse_type(label, cfg->skiparse_model_type));
  OSP_TRY(skiparse_kinds[cfg->skiparse_model_type].check(label, cfg));
  OSP_TRY(validate_blocks(label, cfg));
  OSP_TRY(validate_full_block_count(label, cfg));
  return check_sparse_ratio(label, cfg);
}

osp_status osp_config_validate(const char *label, const osp_model_config *cfg) {
  label = label_or_default(label);
  if (!cfg) return osp_fail(OSP_ERR_ARGUMENT, "%s: osp_config_validate needs a config", label);
  OSP_TRY(validate_ranges(label, cfg));
  OSP_TRY(validate_norms(label, cfg));
  OSP_TRY(validate_widths(label, cfg));
  return validate_skiparse(label, cfg);
}

/* ---- overrides (osp dit --schedule, --sparse-ratio) and the schedule string ---- */

/* An override changes a copy of a valid config and keeps it only when the result is valid too.
 * Its failures are the caller's argument (OSP_ERR_ARGUMENT), whichever check finds them. */
static osp_status as_argument_error(osp_status status) {
  return status == OSP_OK ? OSP_OK : OSP_ERR_ARGUMENT;
}

/* The N of "name:N": decimal digits only; the type's rules then check its range. */
static osp_status read_spec_number(const char *label, const char *spec, const char *text,
                                   int *value) {
  size_t digits = strspn(text, "0123456789");
  if (digits == 0 || digits > MAX_NUMBER_DIGITS || text[digits] != '\0')
    return osp_fail(OSP_ERR_ARGUMENT,
                    "%s: schedule %s: expected a whole number after ':', found %s", label,
                    quote(spec, strlen(spec)).text, quote(text, strlen(text)).text);
  *value = (int)strtol(text, NULL, 10);
  return OSP_OK;
}

/* "dual_end" alone keeps the F of a dual_end config. The other types have no F of their own
 * (full, every_k and list only count their full blocks; uniform's is 0), so it takes the
 * released 8 when that fits the model. */
static osp_status default_dual_end_blocks(const char *label, osp_model_config *cfg) {
  if (cfg->skiparse_model_type == OSP_SKIPARSE_DUAL_END) return OSP_OK;
  int most = cfg->num_layers / 2;
  if (RELEASED_FULL_BLOCKS > most)
    return osp_fail(OSP_ERR_ARGUMENT,
                    "%s: schedule \"dual_end\": expected dual_end:F, as the released "
                    "num_full_blocks %d exceeds num_layers/2 = %d",
                    label, RELEASED_FULL_BLOCKS, most);
  cfg->num_full_blocks = RELEASED_FULL_BLOCKS;
  return OSP_OK;
}

/* Sets the type's parameter from "name" or "name:N". */
static osp_status read_spec_parameter(const char *label, const char *spec, const char *number,
                                      osp_skiparse_type type, osp_model_config *cfg) {
  switch (type) {
    case OSP_SKIPARSE_DUAL_END:
      if (number) return read_spec_number(label, spec, number, &cfg->num_full_blocks);
      return default_dual_end_blocks(label, cfg);
    case OSP_SKIPARSE_EVERY_K:
      if (number) return read_spec_number(label, spec, number, &cfg->every_k);
      return osp_fail(OSP_ERR_ARGUMENT, "%s: schedule \"every_k\": expected every_k:K", label);
    default: /* full and uniform */
      if (number)
        return osp_fail(OSP_ERR_ARGUMENT, "%s: schedule %s: \"%s\" takes no number", label,
                        quote(spec, strlen(spec)).text, skiparse_names[type]);
      if (type == OSP_SKIPARSE_UNIFORM) cfg->num_full_blocks = 0;
      return OSP_OK;
  }
}

/* "full", "dual_end", "dual_end:F", "uniform" or "every_k:K". */
static osp_status read_named_spec(const char *label, const char *spec, osp_model_config *cfg) {
  size_t name_length = strcspn(spec, ":");
  const char *number = spec[name_length] ? spec + name_length + 1 : NULL;
  int type = skiparse_type_named(spec, name_length);
  if (type < 0 || type == OSP_SKIPARSE_LIST)
    return osp_fail(OSP_ERR_ARGUMENT,
                    "%s: unknown schedule %s: expected full, dual_end, dual_end:F, uniform, "
                    "every_k:K, or one pattern per block (\"full,token,group,...\" or \"FTG...\")",
                    label, quote(spec, strlen(spec)).text);
  OSP_TRY(read_spec_parameter(label, spec, number, (osp_skiparse_type)type, cfg));
  cfg->skiparse_model_type = (osp_skiparse_type)type;
  return OSP_OK;
}

/* A list is comma-separated, or a string of pattern letters (what osp_config_schedule_string
 * writes), so that a printed schedule can be edited and given back. */
static bool is_letter_list(const char *spec) {
  return spec[0] && strspn(spec, pattern_letters) == strlen(spec);
}

static size_t count_commas(const char *spec) {
  size_t commas = 0;
  for (const char *c = strchr(spec, ','); c; c = strchr(c + 1, ',')) commas++;
  return commas;
}

static osp_status read_listed_spec(const char *label, const char *spec, osp_model_config *cfg) {
  bool letters = is_letter_list(spec);
  size_t entries = letters ? strlen(spec) : count_commas(spec) + 1;
  if (entries != (size_t)cfg->num_layers)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: expected %d patterns, one per block, found %zu", label,
                    cfg->num_layers, entries);
  const char *entry = spec;
  for (int i = 0; i < cfg->num_layers; i++) {
    size_t length = letters ? 1 : strcspn(entry, ",");
    int pattern = pattern_named(entry, length);
    if (pattern < 0)
      return osp_fail(OSP_ERR_ARGUMENT, "%s: block %d: unknown pattern %s: expected %s", label, i,
                      quote(entry, length).text, PATTERN_EXPECTED);
    cfg->schedule[i] = (unsigned char)pattern;
    entry += letters ? 1 : length + 1;
  }
  cfg->skiparse_model_type = OSP_SKIPARSE_LIST;
  return OSP_OK;
}

/* "token" or "group" alone: every block in that pattern (a list of one repeated pattern). */
static bool read_uniform_pattern(const char *spec, osp_model_config *cfg) {
  int pattern = pattern_named(spec, strlen(spec));
  if (pattern != OSP_PATTERN_TOKEN && pattern != OSP_PATTERN_GROUP) return false;
  memset(cfg->schedule, pattern, (size_t)cfg->num_layers);
  cfg->skiparse_model_type = OSP_SKIPARSE_LIST;
  return true;
}

static osp_status override_schedule(const char *label, const char *spec, osp_model_config *cfg) {
  bool listed = strchr(spec, ',') || is_letter_list(spec);
  if (listed)
    OSP_TRY(read_listed_spec(label, spec, cfg));
  else if (!read_uniform_pattern(spec, cfg))
    OSP_TRY(read_named_spec(label, spec, cfg));
  OSP_TRY(settle_schedule(label, cfg));
  /* A dense config made sparse takes the paper's P. */
  if (has_sparse_blocks(cfg) && cfg->sparse_ratio == 1) cfg->sparse_ratio = RELEASED_SPARSE_RATIO;
  return osp_config_validate(label, cfg);
}

osp_status osp_config_set_schedule(const char *label, const char *spec, osp_model_config *cfg) {
  label = label_or_default(label);
  if (!spec || !cfg)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: osp_config_set_schedule needs a schedule and a config",
                    label);
  OSP_TRY(as_argument_error(osp_config_validate(label, cfg)));
  osp_model_config next = *cfg;
  OSP_TRY(as_argument_error(override_schedule(label, spec, &next)));
  *cfg = next;
  return OSP_OK;
}

/* The ratio belongs to the sparse blocks: a schedule with some needs 2..16, one without keeps 1
 * (so set the schedule first). */
osp_status osp_config_set_sparse_ratio(const char *label, int ratio, osp_model_config *cfg) {
  label = label_or_default(label);
  if (!cfg)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: osp_config_set_sparse_ratio needs a config", label);
  OSP_TRY(as_argument_error(osp_config_validate(label, cfg)));
  osp_model_config next = *cfg;
  next.sparse_ratio = ratio;
  OSP_TRY(as_argument_error(check_sparse_ratio(label, &next)));
  *cfg = next;
  return OSP_OK;
}

/* A buffer of num_layers + 1 bytes (OSP_MAX_LAYERS + 1 for any config) holds every letter; a
 * shorter one gets the first size - 1. A value that is no pattern shows as '?'. */
const char *osp_config_schedule_string(const osp_model_config *cfg, char *buf, size_t size) {
  if (!buf || size == 0) return buf;
  size_t blocks = cfg && cfg->num_layers > 0 ? (size_t)cfg->num_layers : 0;
  if (blocks > MAX_LAYERS) blocks = MAX_LAYERS;
  size_t shown = blocks < size - 1 ? blocks : size - 1;
  for (size_t i = 0; i < shown; i++) {
    unsigned char pattern = cfg->schedule[i];
    buf[i] = pattern < PATTERN_COUNT ? pattern_letters[pattern] : '?';
  }
  buf[shown] = '\0';
  return buf;
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
