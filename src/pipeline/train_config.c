/* Reading train.json (train_config.h): each key with its JSON type and range checked, defaults for
 * the keys left out, unknown keys refused. */
#include <jansson.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "pipeline/train_config.h"

typedef struct {
  const char *path;  /* the file, for messages */
  char section[64];  /* "" at the top, "optimizer." inside an object */
  const json_t *object;
  char folder[OSP_PATH_BYTES]; /* relative paths start here */
} reader;

static osp_status fail_key(const reader *r, const char *key, const char *expected) {
  return osp_fail(OSP_ERR_FORMAT, "%s: key \"%s%s\": expected %s", r->path, r->section, key, expected);
}

/* Keys of an object that the reader does not know are typos or settings this build lacks. */
static osp_status reject_unknown(const reader *r, const char *const *known) {
  const char *key;
  const json_t *value;
  json_object_foreach((json_t *)r->object, key, value) {
    bool found = false;
    for (int i = 0; known[i] && !found; i++) found = !strcmp(known[i], key);
    if (!found) return osp_fail(OSP_ERR_FORMAT, "%s: unknown key \"%s%s\"", r->path, r->section, key);
  }
  return OSP_OK;
}

static osp_status read_number(const reader *r, const char *key, double low, double high, double *out) {
  const json_t *v = json_object_get(r->object, key);
  if (!v) return OSP_OK;
  if (!json_is_number(v) || !(json_number_value(v) >= low && json_number_value(v) <= high)) {
    char expected[96];
    snprintf(expected, sizeof expected, "a number in [%g, %g]", low, high);
    return fail_key(r, key, expected);
  }
  *out = json_number_value(v);
  return OSP_OK;
}

static osp_status read_integer(const reader *r, const char *key, int64_t low, int64_t *out) {
  const json_t *v = json_object_get(r->object, key);
  if (!v) return OSP_OK;
  if (!json_is_integer(v) || json_integer_value(v) < low) {
    char expected[64];
    snprintf(expected, sizeof expected, "an integer >= %lld", (long long)low);
    return fail_key(r, key, expected);
  }
  *out = json_integer_value(v);
  return OSP_OK;
}

static osp_status read_bool(const reader *r, const char *key, bool *out) {
  const json_t *v = json_object_get(r->object, key);
  if (!v) return OSP_OK;
  if (!json_is_boolean(v)) return fail_key(r, key, "true or false");
  *out = json_is_true(v);
  return OSP_OK;
}

/* A string key (NULL out: absent). */
static osp_status read_string(const reader *r, const char *key, const char **out) {
  const json_t *v = json_object_get(r->object, key);
  *out = NULL;
  if (!v) return OSP_OK;
  if (!json_is_string(v) || !json_string_length(v)) return fail_key(r, key, "a non-empty string");
  *out = json_string_value(v);
  return OSP_OK;
}

/* A path key, made relative to the config file's folder unless absolute. */
static osp_status read_path(const reader *r, const char *key, char *out) {
  const char *text;
  OSP_TRY(read_string(r, key, &text));
  if (!text) return OSP_OK;
  int n = text[0] == '/' ? snprintf(out, OSP_PATH_BYTES, "%s", text)
                         : snprintf(out, OSP_PATH_BYTES, "%s/%s", r->folder, text);
  if (n >= OSP_PATH_BYTES) return fail_key(r, key, "a shorter path");
  return OSP_OK;
}

/* The reader of the object under `key` (present: *found), whose keys must be among `known`. */
static osp_status enter(const reader *r, const char *key, const char *const *known, reader *inner, bool *found) {
  const json_t *v = json_object_get(r->object, key);
  *found = v != NULL;
  if (!v) return OSP_OK;
  if (!json_is_object(v)) return fail_key(r, key, "an object");
  *inner = *r;
  if (snprintf(inner->section, sizeof inner->section, "%s%s.", r->section, key) >= (int)sizeof inner->section)
    return fail_key(r, key, "a shorter key");
  inner->object = v;
  return reject_unknown(inner, known);
}

/* model.text: the word encoder of a closed-vocabulary model; its dim is the model's text_dim. */
static osp_status read_text(const reader *model, osp_train_config *c) {
  static const char *const known[] = {"vocab", "rows", "seed", NULL};
  reader r;
  bool found;
  OSP_TRY(enter(model, "text", known, &r, &found));
  if (!found) return OSP_OK;
  OSP_TRY(read_path(&r, "vocab", c->vocab));
  if (!c->vocab[0]) return fail_key(&r, "vocab", "the path of the vocabulary (one word a line)");
  c->text_rows = 16;
  int64_t seed = 0;
  OSP_TRY(read_integer(&r, "rows", 1, &c->text_rows));
  OSP_TRY(read_integer(&r, "seed", 0, &seed));
  c->text_seed = (uint64_t)seed;
  return OSP_OK;
}

static osp_status read_model(const reader *top, osp_train_config *c) {
  static const char *const known[] = {"preset", "config", "weights", "schedule", "sparse_ratio", "quant",
                                      "random_weights_seed", "text", NULL};
  reader r;
  bool found;
  OSP_TRY(enter(top, "model", known, &r, &found));
  if (!found) return fail_key(top, "model", "an object with \"preset\" or \"config\"");
  const char *preset, *schedule, *quant;
  char config[OSP_PATH_BYTES] = "";
  OSP_TRY(read_string(&r, "preset", &preset));
  OSP_TRY(read_path(&r, "config", config));
  if (!preset == !config[0]) return fail_key(&r, "preset", "exactly one of \"preset\" and \"config\"");
  OSP_TRY(preset ? osp_config_preset(preset, &c->model) : osp_config_load(config, &c->model));
  OSP_TRY(read_path(&r, "weights", c->weights));
  int64_t seed = 0, ratio = 0;
  OSP_TRY(read_integer(&r, "random_weights_seed", 0, &seed));
  c->random_weights_seed = (uint64_t)seed;
  OSP_TRY(read_string(&r, "schedule", &schedule));
  if (schedule) OSP_TRY(osp_config_set_schedule(r.path, schedule, &c->model));
  OSP_TRY(read_integer(&r, "sparse_ratio", 1, &ratio));
  if (ratio) OSP_TRY(osp_config_set_sparse_ratio(r.path, (int)ratio, &c->model));
  OSP_TRY(read_string(&r, "quant", &quant));
  if (quant) OSP_TRY(osp_config_set_quant(r.path, quant, &c->model));
  return read_text(&r, c);
}

static osp_status read_synthetic(const reader *data, osp_train_config *c) {
  static const char *const known[] = {"samples", "frames", "height", "width", "text_rows", NULL};
  reader r;
  bool found;
  OSP_TRY(enter(data, "synthetic", known, &r, &found));
  if (!found) return OSP_OK;
  int64_t *shape = c->synthetic_shape;
  shape[0] = c->model.patch_size[0];
  shape[1] = 4 * (int64_t)c->model.patch_size[1];
  shape[2] = 4 * (int64_t)c->model.patch_size[2];
  shape[3] = 8;
  c->synthetic_samples = 4;
  OSP_TRY(read_integer(&r, "samples", 1, &c->synthetic_samples));
  const char *names[4] = {"frames", "height", "width", "text_rows"};
  for (int i = 0; i < 4; i++) OSP_TRY(read_integer(&r, names[i], 1, &shape[i]));
  return OSP_OK;
}

/* data.shapes: the world of shapes, which needs the model's word encoder (model.text). */
static osp_status read_shapes(const reader *data, osp_train_config *c) {
  static const char *const known[] = {"samples", "frames", "height", "width", "text_dropout", NULL};
  reader r;
  bool found;
  OSP_TRY(enter(data, "shapes", known, &r, &found));
  if (!found) return OSP_OK;
  if (!c->vocab[0]) return fail_key(&r, "samples", "a model with a word encoder (\"model\": {\"text\": ...})");
  int64_t *shape = c->shapes_shape;
  shape[0] = 8;
  shape[1] = shape[2] = 32;
  c->shapes_samples = (int64_t)1 << 24;
  c->text_dropout = 0.1;
  OSP_TRY(read_integer(&r, "samples", 1, &c->shapes_samples));
  const char *names[3] = {"frames", "height", "width"};
  for (int i = 0; i < 3; i++) OSP_TRY(read_integer(&r, names[i], 1, &shape[i]));
  return read_number(&r, "text_dropout", 0, 1, &c->text_dropout);
}

static osp_status read_data(const reader *top, osp_train_config *c) {
  static const char *const known[] = {"dir", "synthetic", "shapes", NULL};
  reader r;
  bool found;
  OSP_TRY(enter(top, "data", known, &r, &found));
  if (!found) return fail_key(top, "data", "an object with \"dir\", \"synthetic\" or \"shapes\"");
  OSP_TRY(read_path(&r, "dir", c->data_dir));
  OSP_TRY(read_synthetic(&r, c));
  OSP_TRY(read_shapes(&r, c));
  if ((c->data_dir[0] != 0) + (c->synthetic_samples > 0) + (c->shapes_samples > 0) != 1)
    return fail_key(&r, "dir", "exactly one of \"dir\", \"synthetic\" and \"shapes\"");
  return OSP_OK;
}

static osp_status read_optimizer(const reader *top, osp_train_config *c) {
  static const char *const known[] = {"lr", "betas", "eps", "weight_decay", "clip_grad_norm", NULL};
  reader r;
  bool found;
  OSP_TRY(enter(top, "optimizer", known, &r, &found));
  if (!found) return OSP_OK;
  OSP_TRY(read_number(&r, "lr", 0, INFINITY, &c->lr.lr));
  OSP_TRY(read_number(&r, "eps", 0, INFINITY, &c->adamw.eps));
  OSP_TRY(read_number(&r, "weight_decay", 0, INFINITY, &c->adamw.weight_decay));
  OSP_TRY(read_number(&r, "clip_grad_norm", 0, INFINITY, &c->clip_grad_norm));
  const json_t *betas = json_object_get(r.object, "betas");
  if (!betas) return OSP_OK;
  bool ok = json_is_array(betas) && json_array_size(betas) == 2;
  for (size_t i = 0; ok && i < 2; i++) {
    const json_t *b = json_array_get(betas, i);
    ok = json_is_number(b) && json_number_value(b) >= 0 && json_number_value(b) < 1;
  }
  if (!ok) return fail_key(&r, "betas", "two numbers in [0, 1)");
  c->adamw.beta1 = json_number_value(json_array_get(betas, 0));
  c->adamw.beta2 = json_number_value(json_array_get(betas, 1));
  return OSP_OK;
}

static osp_status read_lr_schedule(const reader *top, osp_train_config *c) {
  static const char *const known[] = {"kind", "warmup_steps", "min_lr", NULL};
  reader r;
  bool found;
  OSP_TRY(enter(top, "lr_schedule", known, &r, &found));
  if (!found) return OSP_OK;
  const char *kind;
  OSP_TRY(read_string(&r, "kind", &kind));
  if (kind) {
    osp_status status = osp_lr_kind_parse(kind, &c->lr.kind);
    if (status != OSP_OK) return osp_fail_context(status, "%s: key \"%skind\"", r.path, r.section);
  }
  OSP_TRY(read_integer(&r, "warmup_steps", 0, &c->lr.warmup_steps));
  return read_number(&r, "min_lr", 0, INFINITY, &c->lr.min_lr);
}

static osp_status read_timesteps(const reader *top, osp_train_config *c) {
  static const char *const known[] = {"distribution", "logit_mean", "logit_std", "shift", NULL};
  reader r;
  bool found;
  OSP_TRY(enter(top, "timesteps", known, &r, &found));
  if (!found) return OSP_OK;
  const char *distribution;
  OSP_TRY(read_string(&r, "distribution", &distribution));
  if (distribution) {
    osp_status status = osp_flow_distribution_parse(distribution, &c->flow.distribution);
    if (status != OSP_OK) return osp_fail_context(status, "%s: key \"%sdistribution\"", r.path, r.section);
  }
  OSP_TRY(read_number(&r, "logit_mean", -INFINITY, INFINITY, &c->flow.logit_mean));
  OSP_TRY(read_number(&r, "logit_std", 0, INFINITY, &c->flow.logit_std));
  const json_t *shift = json_object_get(r.object, "shift");
  if (!shift) return OSP_OK;
  if (json_is_number(shift) && json_number_value(shift) > 0) {
    c->flow.shift_kind = OSP_FLOW_SHIFT_FIXED;
    c->flow.shift = json_number_value(shift);
  } else if (!json_is_string(shift) || !strcmp(json_string_value(shift), "fixed") ||
             osp_flow_shift_kind_parse(json_string_value(shift), &c->flow.shift_kind) != OSP_OK) {
    return fail_key(&r, "shift", "a number > 0, \"resolution\" or \"none\"");
  }
  return OSP_OK;
}

static osp_status read_device(const reader *r, osp_train_config *c) {
  const char *device;
  OSP_TRY(read_string(r, "device", &device));
  if (!device || !strcmp(device, "cpu")) c->device = OSP_CPU;
  else if (!strcmp(device, "cuda")) c->device = OSP_CUDA;
  else return fail_key(r, "device", "\"cpu\" or \"cuda\"");
  return OSP_OK;
}

static osp_status read_run(const reader *r, osp_train_config *c) {
  static const char *const known[] = {"model", "data", "batch_size", "steps", "seed", "device", "output",
                                      "optimizer", "lr_schedule", "timesteps", "checkpoint_every",
                                      "activation_checkpointing", "ema_decay", NULL};
  OSP_TRY(reject_unknown(r, known));
  int64_t seed = 0;
  OSP_TRY(read_integer(r, "batch_size", 1, &c->batch_size));
  OSP_TRY(read_integer(r, "steps", 1, &c->steps));
  OSP_TRY(read_integer(r, "checkpoint_every", 0, &c->checkpoint_every));
  OSP_TRY(read_integer(r, "seed", 0, &seed));
  c->seed = (uint64_t)seed;
  OSP_TRY(read_bool(r, "activation_checkpointing", &c->activation_checkpointing));
  OSP_TRY(read_number(r, "ema_decay", 0, 0.999999999, &c->ema_decay));
  OSP_TRY(read_device(r, c));
  OSP_TRY(read_path(r, "output", c->output));
  if (!c->output[0]) return fail_key(r, "output", "the folder for checkpoints and the metrics log");
  return OSP_OK;
}

/* Defaults: OSP-Next's supervised fine-tune (PAPER.md 9) where it states one, torch's otherwise. */
static void set_defaults(osp_train_config *c) {
  *c = (osp_train_config){
      .batch_size = 1, .steps = 100, .checkpoint_every = 0,
      .adamw = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0},
      .clip_grad_norm = 1.0,
      .lr = {.kind = OSP_LR_CONSTANT, .lr = 2e-5},
      .flow = osp_flow_config_osp_next(),
  };
}

static osp_status read_all(const reader *r, osp_train_config *c) {
  OSP_TRY(read_run(r, c));
  OSP_TRY(read_model(r, c));
  OSP_TRY(read_data(r, c));
  OSP_TRY(read_optimizer(r, c));
  OSP_TRY(read_lr_schedule(r, c));
  OSP_TRY(read_timesteps(r, c));
  c->lr.total_steps = c->steps;
  osp_status status = osp_flow_config_check(&c->flow);
  if (status != OSP_OK) return osp_fail_context(status, "%s: \"timesteps\"", r->path);
  status = osp_lr_schedule_check(&c->lr);
  return status == OSP_OK ? OSP_OK : osp_fail_context(status, "%s: \"lr_schedule\"", r->path);
}

osp_status osp_train_config_load(const char *path, osp_train_config *config) {
  set_defaults(config);
  json_error_t error;
  json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &error);
  if (!root) return osp_fail(OSP_ERR_FORMAT, "%s: line %d: %s", path, error.line, error.text);
  reader r = {.path = path, .object = root};
  char *copy = strdup(path);
  osp_status status = copy ? OSP_OK : osp_fail(OSP_ERR_MEMORY, "out of memory");
  if (status == OSP_OK) snprintf(r.folder, sizeof r.folder, "%s", dirname(copy));
  free(copy);
  if (status == OSP_OK && !json_is_object(root)) status = osp_fail(OSP_ERR_FORMAT, "%s: expected a JSON object", path);
  if (status == OSP_OK) status = read_all(&r, config);
  json_decref(root);
  return status;
}
