/* Skiparse schedules (PAPER.md 5.9): which block is full, token-wise or group-wise.
 *
 * A schedule is a named type with its parameter (full; dual_end and uniform with num_full_blocks
 * F; every_k with k) or an explicit list, and the block patterns derived from it. Every path that
 * changes it (a file, a preset, the overrides --schedule and --sparse-ratio) ends in
 * settle_schedule, which derives the blocks and the fields that follow from them.
 *
 * Top down: the names of patterns and types, the rule of each type, settling and checking a
 * schedule, then the overrides and the schedule string. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/config_internal.h"
#include "core/status.h"

enum { MAX_NUMBER_DIGITS = 9 }; /* of the N in a --schedule "name:N": fits an int */

/* ---- names ---- */

static const char *const skiparse_names[] = {[OSP_SKIPARSE_FULL] = "full",
                                             [OSP_SKIPARSE_DUAL_END] = "dual_end",
                                             [OSP_SKIPARSE_UNIFORM] = "uniform",
                                             [OSP_SKIPARSE_EVERY_K] = "every_k",
                                             [OSP_SKIPARSE_LIST] = "list"};

static const char *const pattern_names[] = {
    [OSP_PATTERN_FULL] = "full", [OSP_PATTERN_TOKEN] = "token", [OSP_PATTERN_GROUP] = "group"};
static const char pattern_letters[] =
    "FTG"; /* indexed by osp_pattern, as schedule strings show them */
enum { PATTERN_COUNT = ARRAY_LENGTH(pattern_names) };
const char osp_config_pattern_expected[] =
    "\"full\", \"token\" or \"group\" (or \"F\", \"T\", \"G\")";

/* The pattern spelled by `length` bytes of `text`, its name or its letter; -1 when none. */
int osp_config_pattern_named(const char *text, size_t length) {
  for (int p = 0; p < PATTERN_COUNT; p++) {
    bool name = strlen(pattern_names[p]) == length && strncmp(text, pattern_names[p], length) == 0;
    bool letter = length == 1 && text[0] == pattern_letters[p];
    if (name || letter) return p;
  }
  return -1;
}

/* The skiparse type named by `length` bytes of `text`; -1 when none. */
int osp_config_skiparse_type_named(const char *text, size_t length) {
  for (size_t i = 0; i < ARRAY_LENGTH(skiparse_names); i++) {
    if (strlen(skiparse_names[i]) == length && strncmp(text, skiparse_names[i], length) == 0)
      return (int)i;
  }
  return -1;
}

const char *osp_config_skiparse_name(osp_skiparse_type type) { return skiparse_names[type]; }

/* ---- the rule of each type ---- */

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
  return osp_config_check_range(label, "every_k", cfg->every_k, 1, MAX_LAYERS);
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

/* ---- settling a schedule: its blocks and the fields that follow from them ---- */

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

/* ---- a schedule read from a file or a preset ---- */

static osp_status fail_missing_for_type(const char *label, const char *key,
                                        osp_skiparse_type type) {
  return osp_fail(OSP_ERR_MISSING, "%s: missing '%s', required by skiparse_model_type \"%s\"",
                  label, key, skiparse_names[type]);
}

/* A file names the parameter of its type (OSP-Next: num_full_blocks even for "uniform"), and the
 * ratio of a schedule with sparse blocks; "full" forces ratio 1 and F = L, whatever it says. */
osp_status osp_config_resolve_skiparse(const char *label, osp_model_config *cfg) {
  osp_skiparse_type type = cfg->skiparse_model_type;
  const char *parameter = skiparse_kinds[type].parameter;
  if (parameter && osp_config_int_field(cfg, skiparse_kinds[type].field) == UNSET)
    return fail_missing_for_type(label, parameter, type);
  OSP_TRY(settle_schedule(label, cfg));
  if (cfg->sparse_ratio == UNSET) return fail_missing_for_type(label, "sparse_ratio", type);
  return OSP_OK;
}

/* ---- validation ---- */

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
osp_status osp_config_validate_skiparse(const char *label, const osp_model_config *cfg) {
  OSP_TRY(check_skiparse_type(label, cfg->skiparse_model_type));
  OSP_TRY(skiparse_kinds[cfg->skiparse_model_type].check(label, cfg));
  OSP_TRY(validate_blocks(label, cfg));
  OSP_TRY(validate_full_block_count(label, cfg));
  return check_sparse_ratio(label, cfg);
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
    return osp_fail(
        OSP_ERR_ARGUMENT, "%s: schedule %s: expected a whole number after ':', found %s", label,
        osp_config_quote(spec, strlen(spec)).text, osp_config_quote(text, strlen(text)).text);
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
                        osp_config_quote(spec, strlen(spec)).text, skiparse_names[type]);
      if (type == OSP_SKIPARSE_UNIFORM) cfg->num_full_blocks = 0;
      return OSP_OK;
  }
}

/* "full", "dual_end", "dual_end:F", "uniform" or "every_k:K". */
static osp_status read_named_spec(const char *label, const char *spec, osp_model_config *cfg) {
  size_t name_length = strcspn(spec, ":");
  const char *number = spec[name_length] ? spec + name_length + 1 : NULL;
  int type = osp_config_skiparse_type_named(spec, name_length);
  if (type < 0 || type == OSP_SKIPARSE_LIST)
    return osp_fail(OSP_ERR_ARGUMENT,
                    "%s: unknown schedule %s: expected full, dual_end, dual_end:F, uniform, "
                    "every_k:K, or one pattern per block (\"full,token,group,...\" or \"FTG...\")",
                    label, osp_config_quote(spec, strlen(spec)).text);
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
    int pattern = osp_config_pattern_named(entry, length);
    if (pattern < 0)
      return osp_fail(OSP_ERR_ARGUMENT, "%s: block %d: unknown pattern %s: expected %s", label, i,
                      osp_config_quote(entry, length).text, osp_config_pattern_expected);
    cfg->schedule[i] = (unsigned char)pattern;
    entry += letters ? 1 : length + 1;
  }
  cfg->skiparse_model_type = OSP_SKIPARSE_LIST;
  return OSP_OK;
}

/* "token" or "group" alone: every block in that pattern (a list of one repeated pattern). */
static bool read_uniform_pattern(const char *spec, osp_model_config *cfg) {
  int pattern = osp_config_pattern_named(spec, strlen(spec));
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
  label = osp_config_label(label);
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
  label = osp_config_label(label);
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
