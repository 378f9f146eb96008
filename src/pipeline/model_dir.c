/* Model folders (model_dir.h): OSP's manifest and diffusers' WanPipeline layout. */
#include "pipeline/model_dir.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/config.h"
#include "core/safetensors.h"
#include "core/status.h"

/* What WanPipeline's __call__ defaults to (diffusers 0.42): 81 frames of 480 × 832 at 16 fps,
 * 50 steps, guidance 5; the shift comes from the scheduler's config. */
static const osp_t2v_settings wan_pipeline_defaults = {
    .sampler = OSP_SAMPLER_UNIPC, .steps = 50, .shift = 3.0, .guidance = 5.0,
    .frames = 81, .height = 480, .width = 832, .fps = 16};
enum { WAN_TEXT_ROWS = 512 }; /* the tokenizer's padded length, the DiT's context rows */

const char *osp_model_layout_name(osp_model_layout layout) {
  if (layout == OSP_LAYOUT_DIFFUSERS) return "diffusers (model_index.json)";
  if (layout == OSP_LAYOUT_ORIGINAL) return "the original Wan2.1 release (config.json, .pth files)";
  return "OSP manifest (model.json)";
}

/* "<dir>/<name>" */
static osp_status in_folder(const char *dir, const char *name, char *out) {
  if (snprintf(out, OSP_PATH_BYTES, "%s/%s", dir, name) >= OSP_PATH_BYTES)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: path too long", dir);
  return OSP_OK;
}

static bool is_file(const char *path) {
  struct stat info;
  return stat(path, &info) == 0 && S_ISREG(info.st_mode);
}

static bool is_folder(const char *path) {
  struct stat info;
  return stat(path, &info) == 0 && S_ISDIR(info.st_mode);
}

static osp_status require_file(const char *path, const char *what) {
  if (!is_file(path)) return osp_fail(OSP_ERR_MISSING, "%s: missing (expected %s)", path, what);
  return OSP_OK;
}

static osp_status load_json(const char *path, json_t **root) {
  json_error_t error;
  if (!(*root = json_load_file(path, 0, &error)))
    return osp_fail(OSP_ERR_FORMAT, "%s: line %d: %s", path, error.line, error.text);
  if (!json_is_object(*root)) {
    json_decref(*root);
    *root = NULL;
    return osp_fail(OSP_ERR_FORMAT, "%s: expected a JSON object", path);
  }
  return OSP_OK;
}

/* ---- OSP's manifest ----------------------------------------------------------------------- */

/* The manifest's values, as json_unpack hands them out. */
typedef struct {
  const char *config, *weights, *text_kind, *vocab, *space, *sampler;
  json_int_t rows, text_seed, frames, height, width, steps;
  double fps, shift, guidance;
} manifest;

static osp_status unpack_manifest(const char *path, json_t *root, manifest *m) {
  json_error_t error;
  if (json_unpack_ex(root, &error, JSON_STRICT,
                     "{s:{s:s, s:s}, s:{s:s, s:s, s:I, s:I}, s:{s:s, s:I, s:I, s:I, s:F}, s:{s:s, s:I, s:F, s:F}}",
                     "dit", "config", &m->config, "weights", &m->weights,
                     "text", "kind", &m->text_kind, "vocab", &m->vocab, "rows", &m->rows, "seed", &m->text_seed,
                     "video", "space", &m->space, "frames", &m->frames, "height", &m->height, "width", &m->width,
                     "fps", &m->fps,
                     "sampling", "sampler", &m->sampler, "steps", &m->steps, "shift", &m->shift, "guidance",
                     &m->guidance) != 0)
    return osp_fail(OSP_ERR_FORMAT, "%s: %s (the keys: t2v.h)", path, error.text);
  if (strcmp(m->text_kind, "words"))
    return osp_fail(OSP_ERR_UNSUPPORTED, "%s: text.kind: \"%s\": a manifest knows \"words\" (umT5 models come in "
                    "diffusers' layout, model_index.json)", path, m->text_kind);
  if (strcmp(m->space, "pixels"))
    return osp_fail(OSP_ERR_UNSUPPORTED, "%s: video.space: \"%s\": a manifest knows \"pixels\" (Wan-VAE models come "
                    "in diffusers' layout, model_index.json)", path, m->space);
  return OSP_OK;
}

static osp_status read_manifest(const char *path, osp_model_dir *out) {
  json_t *root = NULL;
  manifest m = {0};
  osp_status status = load_json(path, &root);
  if (status == OSP_OK) status = unpack_manifest(path, root, &m);
  if (status == OSP_OK) status = osp_sampler_kind_parse(m.sampler, &out->defaults.sampler);
  if (status == OSP_OK) {
    out->layout = OSP_LAYOUT_MANIFEST;
    out->text = OSP_TEXT_WORDS;
    out->space = OSP_SPACE_PIXELS;
    out->text_rows = m.rows;
    out->text_seed = (uint64_t)m.text_seed;
    out->defaults = (osp_t2v_settings){.sampler = out->defaults.sampler, .steps = (int)m.steps, .shift = m.shift,
                                       .guidance = m.guidance, .frames = m.frames, .height = m.height,
                                       .width = m.width, .fps = m.fps};
    status = in_folder(out->dir, m.config, out->dit_config);
  }
  if (status == OSP_OK) status = in_folder(out->dir, m.weights, out->dit_weights);
  if (status == OSP_OK) status = in_folder(out->dir, m.vocab, out->vocab);
  if (status == OSP_OK) status = require_file(out->dit_config, "the DiT's config.json");
  if (status == OSP_OK) status = require_file(out->dit_weights, "the DiT's weights");
  if (status == OSP_OK) status = require_file(out->vocab, "the vocabulary");
  json_decref(root);
  return status;
}

/* ---- diffusers' layout -------------------------------------------------------------------- */

/* model_index.json's entry for a component: ["library", "Class"], the class one of `classes`
 * (NULL-terminated). */
static osp_status expect_component(const char *path, json_t *index, const char *name, const char *const *classes) {
  json_t *entry = json_object_get(index, name);
  const char *found = json_is_array(entry) && json_array_size(entry) == 2 ? json_string_value(json_array_get(entry, 1))
                                                                           : NULL;
  if (!found)
    return osp_fail(OSP_ERR_FORMAT, "%s: component \"%s\": expected [\"library\", \"%s\"], found %s", path, name,
                    classes[0], entry ? "another value" : "nothing");
  for (int i = 0; classes[i]; i++)
    if (!strcmp(found, classes[i])) return OSP_OK;
  return osp_fail(OSP_ERR_UNSUPPORTED, "%s: component \"%s\" is a %s: OSP runs a %s there", path, name, found, classes[0]);
}

static osp_status check_model_index(const char *path, json_t *index) {
  static const char *const pipeline[] = {"WanPipeline", NULL}, *const transformer[] = {"WanTransformer3DModel", NULL},
                           *const text[] = {"UMT5EncoderModel", NULL},
                           *const tokenizer[] = {"T5TokenizerFast", "T5Tokenizer", "AutoTokenizer", NULL},
                           *const vae[] = {"AutoencoderKLWan", NULL},
                           *const scheduler[] = {"UniPCMultistepScheduler", "FlowMatchEulerDiscreteScheduler", NULL};
  const char *name = json_string_value(json_object_get(index, "_class_name"));
  if (!name || strcmp(name, pipeline[0]))
    return osp_fail(OSP_ERR_UNSUPPORTED, "%s: _class_name: expected \"WanPipeline\" (text to video), found %s%s%s",
                    path, name ? "\"" : "", name ? name : "none", name ? "\"" : "");
  json_t *second = json_object_get(index, "transformer_2");
  if (second && !json_is_null(second) && !(json_is_array(second) && json_is_null(json_array_get(second, 0))))
    return osp_fail(OSP_ERR_UNSUPPORTED, "%s: a second transformer (Wan2.2's two experts): OSP runs Wan2.1's one", path);
  if (json_is_true(json_object_get(index, "expand_timesteps")))
    return osp_fail(OSP_ERR_UNSUPPORTED, "%s: expand_timesteps (Wan2.2's per-token timesteps): OSP runs Wan2.1's "
                    "one timestep per sample", path);
  OSP_TRY(expect_component(path, index, "transformer", transformer));
  OSP_TRY(expect_component(path, index, "text_encoder", text));
  OSP_TRY(expect_component(path, index, "tokenizer", tokenizer));
  OSP_TRY(expect_component(path, index, "vae", vae));
  return expect_component(path, index, "scheduler", scheduler);
}

/* A component folder with its config.json and weights (the first stem found). */
static osp_status locate_component(const char *dir, const char *name, const char *stem, char *config, char *weights) {
  char folder[OSP_PATH_BYTES];
  OSP_TRY(in_folder(dir, name, folder));
  if (!is_folder(folder))
    return osp_fail(OSP_ERR_MISSING, "%s: missing (model_index.json names the component \"%s\")", folder, name);
  OSP_TRY(in_folder(folder, "config.json", config));
  OSP_TRY(require_file(config, "the component's config"));
  const char *const stems[] = {stem, NULL};
  if (weights) OSP_TRY(osp_st_locate(folder, stems, weights, OSP_PATH_BYTES));
  return OSP_OK;
}

static osp_status locate_tokenizer(const char *dir, char *folder) {
  char file[OSP_PATH_BYTES];
  OSP_TRY(in_folder(dir, "tokenizer", folder));
  OSP_TRY(in_folder(folder, "tokenizer.json", file));
  return require_file(file, "the tokenizer (tokenizer.json)");
}

/* The sampler and shift of scheduler/scheduler_config.json: UniPC must predict flow with flow
 * sigmas (the only UniPC OSP runs, and the one Wan2.1's pipelines configure). */
static osp_status read_scheduler(const char *dir, osp_t2v_settings *s) {
  char path[OSP_PATH_BYTES];
  json_t *root = NULL;
  OSP_TRY(in_folder(dir, "scheduler/scheduler_config.json", path));
  OSP_TRY(require_file(path, "the scheduler's config"));
  OSP_TRY(load_json(path, &root));
  const char *name = json_string_value(json_object_get(root, "_class_name"));
  const bool unipc = name && !strcmp(name, "UniPCMultistepScheduler");
  json_t *shift = json_object_get(root, unipc ? "flow_shift" : "shift");
  const char *prediction = json_string_value(json_object_get(root, "prediction_type"));
  osp_status status = OSP_OK;
  if (!name || (!unipc && strcmp(name, "FlowMatchEulerDiscreteScheduler")))
    status = osp_fail(OSP_ERR_UNSUPPORTED, "%s: _class_name: expected UniPCMultistepScheduler or "
                      "FlowMatchEulerDiscreteScheduler, found %s", path, name ? name : "none");
  else if (unipc && (!json_is_true(json_object_get(root, "use_flow_sigmas")) || !prediction ||
                     strcmp(prediction, "flow_prediction")))
    status = osp_fail(OSP_ERR_UNSUPPORTED, "%s: OSP's UniPC samples flow (prediction_type \"flow_prediction\" with "
                      "use_flow_sigmas true), as Wan2.1's pipelines configure it", path);
  else if (shift && !(json_is_number(shift) && json_number_value(shift) > 0))
    status = osp_fail(OSP_ERR_FORMAT, "%s: %s: expected a number > 0", path, unipc ? "flow_shift" : "shift");
  if (status == OSP_OK) {
    s->sampler = unipc ? OSP_SAMPLER_UNIPC : OSP_SAMPLER_EULER;
    if (shift) s->shift = json_number_value(shift);
  }
  json_decref(root);
  return status;
}

static osp_status read_diffusers(const char *path, osp_model_dir *out) {
  json_t *index = NULL;
  char config[OSP_PATH_BYTES];
  out->layout = OSP_LAYOUT_DIFFUSERS;
  out->text = OSP_TEXT_UMT5;
  out->space = OSP_SPACE_WAN_VAE;
  out->text_rows = WAN_TEXT_ROWS;
  out->defaults = wan_pipeline_defaults;
  osp_status status = load_json(path, &index);
  if (status == OSP_OK) status = check_model_index(path, index);
  if (status == OSP_OK)
    status = locate_component(out->dir, "transformer", "diffusion_pytorch_model", out->dit_config, out->dit_weights);
  if (status == OSP_OK) status = locate_component(out->dir, "text_encoder", "model", config, NULL);
  if (status == OSP_OK) status = in_folder(out->dir, "text_encoder", out->text_encoder);
  if (status == OSP_OK) status = locate_tokenizer(out->dir, out->tokenizer);
  if (status == OSP_OK) status = locate_component(out->dir, "vae", "diffusion_pytorch_model", config, NULL);
  if (status == OSP_OK) status = in_folder(out->dir, "vae", out->vae);
  if (status == OSP_OK) status = read_scheduler(out->dir, &out->defaults);
  json_decref(index);
  return status;
}

/* ---- the original Wan2.1 release ------------------------------------------------------------ */

/* What Wan2.1's generate.py samples a T2V model with: UniPC, 50 steps, shift 5, guidance 5, 81
 * frames at 16 fps; 1280 × 720 for the 14B model, 832 × 480 for the 1.3B one. */
static const osp_t2v_settings wan_release_defaults = {
    .sampler = OSP_SAMPLER_UNIPC, .steps = 50, .shift = 5.0, .guidance = 5.0,
    .frames = 81, .height = 480, .width = 832, .fps = 16};

static bool is_original_config(const char *path) {
  json_t *root = NULL;
  if (!is_file(path) || load_json(path, &root) != OSP_OK) return false;
  const char *name = json_string_value(json_object_get(root, "_class_name"));
  const bool original = name && !strcmp(name, "WanModel");
  json_decref(root);
  return original;
}

/* "<dir>/<stem>.safetensors", or an error that says how to make it from "<stem>.pth". */
static osp_status converted_file(const char *dir, const char *stem, char *out) {
  char name[256], pth[OSP_PATH_BYTES];
  snprintf(name, sizeof name, "%s.safetensors", stem);
  OSP_TRY(in_folder(dir, name, out));
  if (is_file(out)) return OSP_OK;
  snprintf(name, sizeof name, "%s.pth", stem);
  OSP_TRY(in_folder(dir, name, pth));
  if (is_file(pth))
    return osp_fail(OSP_ERR_MISSING, "%s: missing: convert the release's PyTorch file first: osp convert %s -o %s", out,
                    pth, out);
  return osp_fail(OSP_ERR_MISSING, "%s: missing (and no %s to convert)", out, pth);
}

static osp_status read_original(const char *config, osp_model_dir *out) {
  const char *const stems[] = {"diffusion_pytorch_model", NULL};
  out->layout = OSP_LAYOUT_ORIGINAL;
  out->text = OSP_TEXT_UMT5;
  out->space = OSP_SPACE_WAN_VAE;
  out->text_rows = WAN_TEXT_ROWS;
  out->defaults = wan_release_defaults;
  snprintf(out->dit_config, sizeof out->dit_config, "%s", config);
  osp_model_config c;
  OSP_TRY(osp_config_load(config, &c));
  if (c.dim >= 5120) out->defaults.height = 720, out->defaults.width = 1280;
  OSP_TRY(osp_st_locate(out->dir, stems, out->dit_weights, sizeof out->dit_weights));
  OSP_TRY(converted_file(out->dir, "models_t5_umt5-xxl-enc-bf16", out->text_encoder));
  OSP_TRY(converted_file(out->dir, "Wan2.1_VAE", out->vae));
  OSP_TRY(in_folder(out->dir, "google/umt5-xxl", out->tokenizer));
  char file[OSP_PATH_BYTES];
  OSP_TRY(in_folder(out->tokenizer, "tokenizer.json", file));
  return require_file(file, "the tokenizer (google/umt5-xxl/tokenizer.json)");
}

osp_status osp_model_dir_read(const char *dir, osp_model_dir *out) {
  *out = (osp_model_dir){0};
  char path[OSP_PATH_BYTES];
  if (snprintf(out->dir, sizeof out->dir, "%s", dir) >= (int)sizeof out->dir)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: path too long", dir);
  if (!is_folder(dir)) return osp_fail(OSP_ERR_MISSING, "%s: not a model folder (no such directory)", dir);
  OSP_TRY(in_folder(dir, "model_index.json", path));
  if (is_file(path)) return read_diffusers(path, out);
  OSP_TRY(in_folder(dir, "model.json", path));
  if (is_file(path)) return read_manifest(path, out);
  OSP_TRY(in_folder(dir, "config.json", path));
  if (is_original_config(path)) return read_original(path, out);
  return osp_fail(OSP_ERR_MISSING, "%s: not a model folder: no model_index.json (diffusers' layout), model.json "
                  "(OSP's manifest) or config.json of a WanModel (the original Wan2.1 release)", dir);
}
