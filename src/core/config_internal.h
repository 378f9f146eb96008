/* What the files of the model configuration share, and nothing else; the public API is
 * core/config.h. Three files, each with one job:
 *   config.c           the public entry points: parse and load, presets, validation, param count
 *   config_json.c      config.json's keys: the key tables, their readers, quoting values
 *   config_schedule.c  Skiparse schedules: names, deriving the blocks, the overrides, the string */
#ifndef OSP_CORE_CONFIG_INTERNAL_H
#define OSP_CORE_CONFIG_INTERNAL_H

#include <stddef.h>

#include "core/config.h"

/* Bounds on sizes: far above any released model, and small enough that every product of two
 * widths, and the parameter count, stay exact in int64. */
enum {
  MAX_WIDTH = 1 << 17,         /* dim, ffn_dim, text_dim, freq_dim, heads, head_dim */
  MAX_LAYERS = OSP_MAX_LAYERS, /* the capacity of the schedule */
  MAX_CHANNELS = 1024,
  MAX_PATCH = 16,
  MAX_SEQUENCE = 1 << 20, /* text_len, rope_max_seq_len */
  MIN_SPARSE_RATIO = 2,   /* sparse_ratio of a schedule with sparse blocks */
  MAX_RATIO = 16,         /* sparse_ratio */
};

enum {
  UNSET = -1,        /* an optional size the file did not give; resolved after reading */
  SHOWN_STRING = 32, /* bytes of a string value quoted in a message */
  DESCRIPTION_BYTES = SHOWN_STRING + 16,
};

/* OSP-Next releases one schedule. */
enum { RELEASED_SPARSE_RATIO = 2, RELEASED_FULL_BLOCKS = 8 };

#define ARRAY_LENGTH(a) (sizeof(a) / sizeof((a)[0]))
#define FIELD(name) offsetof(osp_model_config, name)

/* The int at offset `field` (a FIELD()) of cfg. */
static inline int osp_config_int_field(const osp_model_config *cfg, size_t field) {
  return *(const int *)((const char *)cfg + field);
}

static inline const char *osp_config_label(const char *label) { return label ? label : "config"; }

/* ---- config.c: the checks that reading and validating share ---- */

/* value in [minimum, maximum], else an error naming `key`. */
osp_status osp_config_check_range(const char *label, const char *key, long long value,
                                  long long minimum, long long maximum);
osp_status osp_config_check_eps(const char *label, double eps);

/* ---- config_json.c ---- */

/* Reads the keys of a config.json image into *cfg, which holds the defaults (UNSET where a size
 * is resolved later); *cfg is partly written when it fails. */
osp_status osp_config_read_json(const char *label, const char *text, size_t length,
                                osp_model_config *cfg);

/* Every integer field in the range its key allows, and the patch size. */
osp_status osp_config_check_key_ranges(const char *label, const osp_model_config *cfg);

/* "text" in a message: at most SHOWN_STRING bytes of it, on one line. */
typedef struct {
  char text[DESCRIPTION_BYTES];
} description;
description osp_config_quote(const char *text, size_t length);

/* ---- config_schedule.c ---- */

/* The names of patterns and of skiparse types: the pattern or type spelled by `length` bytes of
 * `text` (a pattern by its name or its letter), -1 when none. */
int osp_config_pattern_named(const char *text, size_t length);
int osp_config_skiparse_type_named(const char *text, size_t length);
const char *osp_config_skiparse_name(osp_skiparse_type type);
extern const char osp_config_pattern_expected[]; /* the spellings of a pattern, for messages */

/* After reading a file or a preset: the parameter of its type and the sparse ratio must be given
 * (UNSET is missing), then the schedule is settled. */
osp_status osp_config_resolve_skiparse(const char *label, osp_model_config *cfg);

/* PAPER.md 5.9: the type's rules on its parameter, the blocks it derives, the fields that follow
 * from them and the sparse ratio. */
osp_status osp_config_validate_skiparse(const char *label, const osp_model_config *cfg);

#endif
