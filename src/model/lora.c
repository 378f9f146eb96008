/* LoRA adapters merged into the DiT's weights (lora.h). */
#include "model/lora.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/status.h"
#include "ops/ops.h"

/* ---- Names ------------------------------------------------------------------------------------ */

enum { DOWN, UP, ALPHA, BIAS, PARTS };
static const char *const part_names[PARTS] = {"lora_A (lora_down)", "lora_B (lora_up)", "alpha", "diff_b (lora_B.bias)"};

static const struct {
  const char *suffix;
  int part;
} suffixes[] = {
    {".lora_A.weight", DOWN}, {".lora_down.weight", DOWN}, {".lora_B.weight", UP}, {".lora_up.weight", UP},
    {".alpha", ALPHA},        {".diff_b", BIAS},           {".lora_B.bias", BIAS},
};

/* The prefixes of diffusers, the original Wan code (ComfyUI) and ComfyUI's checkpoints; the
 * empty prefix last. musubi-tuner's "lora_unet_" is kohya_prefix. */
static const char *const prefixes[] = {"transformer.", "diffusion_model.", "model.diffusion_model.", ""};
static const char kohya_prefix[] = "lora_unet_";

enum { MODULE_BYTES = 192 };

/* One tensor name taken apart: the module it adapts and which part of the adapter it is. */
typedef struct {
  char module[MODULE_BYTES];
  bool underscored; /* kohya: the module's dots written as '_' */
  int part;
} lora_name;

static bool ends_with(const char *s, const char *suffix) {
  const size_t n = strlen(s), k = strlen(suffix);
  return n >= k && !strcmp(s + n - k, suffix);
}

/* What diffusers drops (with a warning, or a debug line) before loading: whole weight
 * differences, the norms' differences, and DoRA's scales. */
static bool skipped_by_diffusers(const char *name) {
  return ends_with(name, ".diff") || ends_with(name, ".dora_scale") ||
         (ends_with(name, ".diff_b") && strstr(name, "norm"));
}

/* Splits `name` into its module and part; false where no suffix fits. */
static bool split_name(const char *name, lora_name *out) {
  const char *rest = name;
  out->underscored = !strncmp(name, kohya_prefix, sizeof kohya_prefix - 1);
  if (out->underscored) rest += sizeof kohya_prefix - 1;
  for (size_t i = 0; !out->underscored && i < sizeof prefixes / sizeof *prefixes; i++)
    if (!strncmp(rest, prefixes[i], strlen(prefixes[i]))) {
      rest += strlen(prefixes[i]);
      break;
    }
  for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
    const size_t n = strlen(rest), k = strlen(suffixes[i].suffix);
    if (!ends_with(rest, suffixes[i].suffix) || n - k >= MODULE_BYTES) continue;
    snprintf(out->module, sizeof out->module, "%.*s", (int)(n - k), rest);
    out->part = suffixes[i].part;
    return true;
  }
  return false;
}

/* Whether the parameter name `full` is <module><suffix> (with '_' for every '.' of the module's
 * part where underscored). */
static bool names_module(const char *full, const lora_name *n, const char *suffix) {
  const size_t k = strlen(n->module);
  if (strlen(full) != k + strlen(suffix) || strcmp(full + k, suffix)) return false;
  for (size_t i = 0; i < k; i++)
    if ((n->underscored && full[i] == '.' ? '_' : full[i]) != n->module[i]) return false;
  return true;
}

/* The DiT parameter <module><suffix> in either name style, or −1. */
static int find_parameter(const osp_dit_parameter *params, int count, const lora_name *n, const char *suffix) {
  for (int i = 0; i < count; i++)
    for (int style = OSP_NAMES_ORIGINAL; style <= OSP_NAMES_DIFFUSERS; style++)
      if (names_module(params[i].names[style], n, suffix)) return i;
  return -1;
}

/* ---- One file --------------------------------------------------------------------------------- */

/* The tensors adapting one Linear, by part, and the index of its bias parameter. */
typedef struct {
  const osp_st_entry *part[PARTS];
  int bias;
} adapter;

static bool is_used(const adapter *a) {
  return a->part[DOWN] || a->part[UP] || a->part[ALPHA] || a->part[BIAS];
}

typedef struct {
  const osp_lora_spec *spec;
  osp_st_file file;
  const osp_dit_parameter *params;
  int count;
  adapter *adapters;  /* one per parameter, used at the Linears' weights */
  double peft_alpha;  /* the metadata's lora_alpha; 0: none (α = r) */
  double peft_rank;   /* the metadata's r */
} lora_file;

/* Sorts each tensor of the file into the adapter of its Linear. */
static osp_status sort_tensors(lora_file *f) {
  const char *path = f->file.path;
  for (int i = 0; i < f->file.count; i++) {
    const osp_st_entry *e = &f->file.entries[i];
    lora_name n;
    if (skipped_by_diffusers(e->name)) {
      osp_warn("%s: tensor '%s' skipped, as diffusers skips it", path, e->name);
      continue;
    }
    if (!split_name(e->name, &n))
      return osp_fail(OSP_ERR_FORMAT, "%s: tensor '%s' is no part of a LoRA (expected a name ending in .lora_A.weight, "
                      ".lora_B.weight, .lora_down.weight, .lora_up.weight, .alpha, .diff_b or .lora_B.bias)", path, e->name);
    const int w = find_parameter(f->params, f->count, &n, ".weight");
    if (w < 0 || f->params[w].tensor.ndim != 2)
      return osp_fail(OSP_ERR_FORMAT, "%s: tensor '%s': the DiT has no Linear layer '%s' (a LoRA of another model?)",
                      path, e->name, n.module);
    adapter *a = &f->adapters[w];
    if (a->part[n.part])
      return osp_fail(OSP_ERR_FORMAT, "%s: tensors '%s' and '%s' are both the %s of '%s'", path, a->part[n.part]->name,
                      e->name, part_names[n.part], n.module);
    a->part[n.part] = e;
  }
  return OSP_OK;
}

/* A value of the metadata object, by its key with diffusers' "transformer." prefix or without. */
static json_t *metadata_value(json_t *metadata, const char *key) {
  char prefixed[64];
  snprintf(prefixed, sizeof prefixed, "transformer.%s", key);
  json_t *value = json_object_get(metadata, prefixed);
  return value ? value : json_object_get(metadata, key);
}

/* What would change the factor per module beyond lora_alpha / r is refused, not ignored. */
static osp_status check_peft_options(const char *path, json_t *metadata) {
  static const char *const flags[] = {"use_rslora", "use_dora"};
  for (int i = 0; i < 2; i++)
    if (json_is_true(metadata_value(metadata, flags[i])))
      return osp_fail(OSP_ERR_UNSUPPORTED, "%s: lora_adapter_metadata: %s is not supported", path, flags[i]);
  json_t *pattern = metadata_value(metadata, "alpha_pattern");
  if (pattern && json_object_size(pattern))
    return osp_fail(OSP_ERR_UNSUPPORTED, "%s: lora_adapter_metadata: a per-module alpha_pattern is not supported", path);
  return OSP_OK;
}

/* A positive number of the metadata, or an error naming it. */
static osp_status positive_number(const char *path, json_t *metadata, const char *key, double *out) {
  json_t *value = metadata_value(metadata, key);
  if (!json_is_number(value) || !(json_number_value(value) > 0))
    return osp_fail(OSP_ERR_FORMAT, "%s: lora_adapter_metadata: expected a positive number '%s'", path, key);
  *out = json_number_value(value);
  return OSP_OK;
}

/* diffusers' "lora_adapter_metadata" (PEFT's LoraConfig as JSON): its lora_alpha and r, or 0. */
static osp_status read_peft_alpha(lora_file *f) {
  const char *path = f->file.path, *text = osp_st_metadata(&f->file, "lora_adapter_metadata");
  f->peft_alpha = 0;
  if (!text) return OSP_OK;
  json_error_t error;
  json_t *metadata = json_loads(text, 0, &error);
  if (!json_is_object(metadata)) {
    json_decref(metadata);
    return osp_fail(OSP_ERR_FORMAT, "%s: lora_adapter_metadata is not a JSON object (%s)", path, error.text);
  }
  osp_status status = check_peft_options(path, metadata);
  if (status == OSP_OK) status = positive_number(path, metadata, "lora_alpha", &f->peft_alpha);
  if (status == OSP_OK) status = positive_number(path, metadata, "r", &f->peft_rank);
  json_decref(metadata);
  return status;
}

/* The bias beside a Linear's weight "<module>.weight": "<module>.bias". */
static int bias_of(const lora_file *f, int w) {
  const char *weight = f->params[w].names[OSP_NAMES_ORIGINAL];
  lora_name n = {.part = BIAS};
  snprintf(n.module, sizeof n.module, "%.*s", (int)(strlen(weight) - strlen(".weight")), weight);
  return find_parameter(f->params, f->count, &n, ".bias");
}

/* The shapes of one adapter against its Linear W [out, in]: A [r, in], B [out, r], one alpha,
 * Δb [out]; A and B come together. */
static osp_status check_adapter(lora_file *f, int w) {
  adapter *a = &f->adapters[w];
  const osp_tensor *weight = &f->params[w].tensor;
  const int64_t out = weight->shape[0], in = weight->shape[1];
  const char *path = f->file.path;
  const osp_st_entry *found;
  const osp_st_entry *any = a->part[DOWN] ? a->part[DOWN] : a->part[UP] ? a->part[UP] : a->part[ALPHA];
  if (any && (!a->part[DOWN] || !a->part[UP]))
    return osp_fail(OSP_ERR_FORMAT, "%s: tensor '%s' has no %s beside it (the DiT's '%s')", path, any->name,
                    part_names[a->part[DOWN] ? UP : DOWN], f->params[w].name);
  if (a->part[DOWN]) {
    OSP_TRY(osp_st_expect(&f->file, a->part[DOWN]->name, 2, (int64_t[]){-1, in}, &found));
    const int64_t r = found->shape[0];
    if (r < 1) return osp_fail(OSP_ERR_SHAPE, "%s: tensor '%s' has rank 0", path, found->name);
    OSP_TRY(osp_st_expect(&f->file, a->part[UP]->name, 2, (int64_t[]){out, r}, &found));
  }
  if (a->part[ALPHA] && osp_st_numel(a->part[ALPHA]) != 1)
    return osp_fail(OSP_ERR_SHAPE, "%s: tensor '%s': expected one number, found %lld", path, a->part[ALPHA]->name,
                    (long long)osp_st_numel(a->part[ALPHA]));
  if (a->part[BIAS]) OSP_TRY(osp_st_expect(&f->file, a->part[BIAS]->name, 1, (int64_t[]){out}, &found));
  a->bias = bias_of(f, w);
  return OSP_OK;
}

/* ---- Merging ---------------------------------------------------------------------------------- */

static float read_scalar(const osp_st_entry *e) {
  float value;
  osp_st_to_f32(e, &value);
  return value;
}

/* W += f·B·A: f·B [out, r] and Aᵀ [in, r] in f32, their product by osp_linear (x·wᵀ), added to W. */
static osp_status add_low_rank(const osp_st_entry *down, const osp_st_entry *up, float f, osp_tensor *weight) {
  const int64_t r = down->shape[0], in = down->shape[1], out = up->shape[0];
  float *a = malloc((size_t)(r * in + in * r + out * r + out * in) * sizeof(float));
  if (!a) return osp_fail(OSP_ERR_MEMORY, "%s: cannot allocate the product of '%s' and '%s'", up->file, up->name, down->name);
  float *at = a + r * in, *b = at + in * r, *delta = b + out * r;
  osp_st_to_f32(down, a);
  for (int64_t k = 0; k < r; k++)
    for (int64_t i = 0; i < in; i++) at[i * r + k] = a[k * in + i];
  osp_st_to_f32(up, b);
  for (int64_t i = 0; i < out * r; i++) b[i] *= f;
  const osp_tensor x = osp_tensor_make(b, OSP_F32, OSP_CPU, 2, (int64_t[]){out, r});
  const osp_tensor w = osp_tensor_make(at, OSP_F32, OSP_CPU, 2, (int64_t[]){in, r});
  osp_tensor y = osp_tensor_make(delta, OSP_F32, OSP_CPU, 2, (int64_t[]){out, in});
  osp_status status = osp_linear(&x, &w, NULL, &y);
  if (status == OSP_OK) status = osp_add(weight, &y, weight);
  free(a);
  return status;
}

/* b += f·Δb. */
static osp_status add_bias(const osp_st_entry *diff, float f, osp_tensor *bias) {
  float *d = malloc((size_t)osp_st_numel(diff) * sizeof(float));
  if (!d) return osp_fail(OSP_ERR_MEMORY, "%s: cannot allocate '%s'", diff->file, diff->name);
  osp_st_to_f32(diff, d);
  float *b = bias->data;
  for (int64_t i = 0; i < osp_st_numel(diff); i++) b[i] += f * d[i];
  free(d);
  return OSP_OK;
}

/* One adapter into its Linear: the factor of B·A is scale·(alpha/r)·(lora_alpha/r), each ratio 1
 * where the file lacks it (diffusers folds alpha into A and B; PEFT multiplies by lora_alpha/r);
 * Δb's is scale·(lora_alpha/r), r the metadata's where there are no A and B. */
static osp_status merge_adapter(const lora_file *f, int w, bool *changed) {
  const adapter *a = &f->adapters[w];
  const double r = a->part[DOWN] ? (double)a->part[DOWN]->shape[0] : f->peft_rank;
  const double peft = f->peft_alpha > 0 ? f->peft_alpha / r : 1;
  const double alpha = a->part[ALPHA] ? read_scalar(a->part[ALPHA]) / r : 1;
  osp_tensor *weight = (osp_tensor *)&f->params[w].tensor, *bias = (osp_tensor *)&f->params[a->bias].tensor;
  if (a->part[DOWN]) OSP_TRY(add_low_rank(a->part[DOWN], a->part[UP], (float)(f->spec->scale * alpha * peft), weight));
  if (a->part[BIAS]) OSP_TRY(add_bias(a->part[BIAS], (float)(f->spec->scale * peft), bias));
  if (changed && a->part[DOWN]) changed[w] = true;
  if (changed && a->part[BIAS]) changed[a->bias] = true;
  return OSP_OK;
}

/* Checks every adapter of the file, then merges them. */
static osp_status merge_file(lora_file *f, bool *changed) {
  osp_status status = sort_tensors(f);
  if (status == OSP_OK) status = read_peft_alpha(f);
  for (int w = 0; status == OSP_OK && w < f->count; w++)
    if (is_used(&f->adapters[w])) status = check_adapter(f, w);
  for (int w = 0; status == OSP_OK && w < f->count; w++)
    if (is_used(&f->adapters[w])) status = merge_adapter(f, w, changed);
  return status;
}

static osp_status apply_one(const osp_lora_spec *spec, const osp_dit_parameter *params, int count, bool *changed) {
  lora_file f = {.spec = spec, .params = params, .count = count};
  OSP_TRY(osp_st_open(spec->path, &f.file));
  f.adapters = calloc((size_t)count, sizeof *f.adapters);
  const osp_status status = f.adapters ? merge_file(&f, changed) : osp_fail(OSP_ERR_MEMORY, "%s: out of memory", spec->path);
  free(f.adapters);
  osp_st_close(&f.file);
  return status;
}

osp_status osp_lora_apply(const osp_lora_spec *loras, int count, osp_dit *dit, bool *changed) {
  if (count == 0) return OSP_OK;
  osp_dit_parameter *params;
  int n;
  OSP_TRY(osp_dit_own_weights(dit));
  OSP_TRY(osp_dit_parameters(dit, &params, &n));
  osp_status status = OSP_OK;
  for (int i = 0; status == OSP_OK && i < count; i++) status = apply_one(&loras[i], params, n, changed);
  free(params);
  return status;
}

osp_status osp_lora_spec_parse(const char *text, osp_lora_spec *spec) {
  const char *colon = strrchr(text, ':');
  char *end = NULL;
  errno = 0;
  const double scale = colon && colon[1] ? strtod(colon + 1, &end) : 1.0;
  const bool has_scale = end && !*end && !errno && isfinite(scale);
  const size_t length = has_scale ? (size_t)(colon - text) : strlen(text);
  if (length == 0 || length >= sizeof spec->path)
    return osp_fail(OSP_ERR_ARGUMENT, "--lora: expected FILE or FILE:SCALE, found '%s'", text);
  snprintf(spec->path, sizeof spec->path, "%.*s", (int)length, text);
  spec->scale = has_scale ? (float)scale : 1.0f;
  return OSP_OK;
}
