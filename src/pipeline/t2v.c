/* Text to video (t2v.h). */
#include "pipeline/t2v.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/rng.h"
#include "core/status.h"
#include "model/pixels.h"
#include "ops/ops.h"

static const uint32_t noise_stream = 0x4E4F4953u; /* "NOIS" */

/* ---- The model folder ------------------------------------------------------------------------- */

/* The manifest's values, as json_unpack hands them out. */
typedef struct {
  const char *config, *weights, *text_kind, *vocab, *space, *sampler;
  json_int_t rows, text_seed, frames, height, width, steps;
  double fps, shift, guidance;
} manifest;

static osp_status read_manifest(const char *path, json_t **root, manifest *m) {
  json_error_t error;
  if (!(*root = json_load_file(path, 0, &error)))
    return osp_fail(OSP_ERR_FORMAT, "%s: line %d: %s", path, error.line, error.text);
  if (json_unpack_ex(*root, &error, JSON_STRICT,
                     "{s:{s:s, s:s}, s:{s:s, s:s, s:I, s:I}, s:{s:s, s:I, s:I, s:I, s:F}, s:{s:s, s:I, s:F, s:F}}",
                     "dit", "config", &m->config, "weights", &m->weights,
                     "text", "kind", &m->text_kind, "vocab", &m->vocab, "rows", &m->rows, "seed", &m->text_seed,
                     "video", "space", &m->space, "frames", &m->frames, "height", &m->height, "width", &m->width,
                     "fps", &m->fps,
                     "sampling", "sampler", &m->sampler, "steps", &m->steps, "shift", &m->shift, "guidance",
                     &m->guidance) != 0)
    return osp_fail(OSP_ERR_FORMAT, "%s: %s (the keys: t2v.h)", path, error.text);
  if (strcmp(m->text_kind, "words"))
    return osp_fail(OSP_ERR_UNSUPPORTED, "%s: text.kind: \"%s\": this build knows \"words\" (umT5 is issue 11's)",
                    path, m->text_kind);
  if (strcmp(m->space, "pixels"))
    return osp_fail(OSP_ERR_UNSUPPORTED, "%s: video.space: \"%s\": this build knows \"pixels\" (the Wan-VAE is issue 11's)",
                    path, m->space);
  return OSP_OK;
}

/* "<dir>/<name>" */
static osp_status in_folder(const char *dir, const char *name, char *out, size_t size) {
  if (snprintf(out, size, "%s/%s", dir, name) >= (int)size) return osp_fail(OSP_ERR_ARGUMENT, "%s: path too long", dir);
  return OSP_OK;
}

static osp_status load_dit(const char *dir, const manifest *m, osp_device device, const char *schedule, osp_dit *dit) {
  char path[4200];
  osp_model_config config;
  OSP_TRY(in_folder(dir, m->config, path, sizeof path));
  OSP_TRY(osp_config_load(path, &config));
  if (schedule) OSP_TRY(osp_config_set_schedule("--schedule", schedule, &config));
  OSP_TRY(in_folder(dir, m->weights, path, sizeof path));
  if (device == OSP_CPU) return osp_dit_load(&config, path, dit); /* converted to f32 on load */
  osp_dit host;
  OSP_TRY(osp_dit_load(&config, path, &host));
  const osp_status status = osp_dit_to_device(&host, device, dit); /* bf16 on CUDA */
  osp_dit_free(&host);
  return status;
}

osp_status osp_t2v_model_load(const char *dir, osp_device device, const char *schedule, osp_t2v_model *out) {
  *out = (osp_t2v_model){0};
  char path[4200];
  snprintf(out->dir, sizeof out->dir, "%s", dir);
  OSP_TRY(in_folder(dir, "model.json", path, sizeof path));
  json_t *root = NULL;
  manifest m = {0};
  osp_status status = read_manifest(path, &root, &m);
  if (status == OSP_OK)
    status = osp_sampler_kind_parse(m.sampler, &out->defaults.sampler);
  if (status == OSP_OK) {
    out->defaults = (osp_t2v_settings){.sampler = out->defaults.sampler, .steps = (int)m.steps, .shift = m.shift,
                                       .guidance = m.guidance, .frames = m.frames, .height = m.height,
                                       .width = m.width, .fps = m.fps};
    status = load_dit(dir, &m, device, schedule, &out->dit);
  }
  if (status == OSP_OK) status = in_folder(dir, m.vocab, path, sizeof path);
  if (status == OSP_OK)
    status = osp_word_encoder_load(path, out->dit.config.text_dim, m.rows, (uint64_t)m.text_seed, &out->text);
  json_decref(root);
  if (status != OSP_OK) {
    osp_fail_context(status, "model %s", dir);
    osp_t2v_model_free(out);
  }
  return status;
}

void osp_t2v_model_free(osp_t2v_model *model) {
  osp_dit_free(&model->dit);
  osp_word_encoder_free(&model->text);
}

/* ---- Generation ------------------------------------------------------------------------------- */

/* The buffers of one generation: the sample x [1, C, F, H, W]; the DiT's batch (x twice, the
 * timestep twice, the conditional and unconditional contexts) and its velocity; the guided
 * velocity. One allocation, freed at the end. */
typedef struct {
  float *memory;
  osp_tensor x, batch, timestep, context, velocity, guided;
  int passes; /* 2 with guidance, 1 without */
} buffers;

static osp_status allocate(const osp_t2v_model *model, const osp_t2v_settings *s, buffers *b) {
  const osp_model_config *c = &model->dit.config;
  b->passes = s->guidance == 1.0 ? 1 : 2;
  const int64_t P = b->passes, C = c->in_channels, n = C * s->frames * s->height * s->width;
  const int64_t context = model->text.rows * model->text.dim;
  const size_t floats = (size_t)(n + P * n + P + P * context + P * n + n);
  if (!(b->memory = calloc(floats, sizeof(float)))) return osp_fail(OSP_ERR_MEMORY, "generate: cannot allocate %zu floats", floats);
  float *at = b->memory;
  const int64_t one[5] = {1, C, s->frames, s->height, s->width}, many[5] = {P, C, s->frames, s->height, s->width};
  b->x = osp_tensor_make(at, OSP_F32, OSP_CPU, 5, one), at += n;
  b->batch = osp_tensor_make(at, OSP_F32, OSP_CPU, 5, many), at += P * n;
  b->timestep = osp_tensor_make(at, OSP_F32, OSP_CPU, 1, (int64_t[]){P}), at += P;
  b->context = osp_tensor_make(at, OSP_F32, OSP_CPU, 3, (int64_t[]){P, model->text.rows, model->text.dim}), at += P * context;
  b->velocity = osp_tensor_make(at, OSP_F32, OSP_CPU, 5, many), at += P * n;
  b->guided = osp_tensor_make(at, OSP_F32, OSP_CPU, 5, one);
  return OSP_OK;
}

/* The conditional context, then the unconditional one. */
static osp_status encode_prompts(const osp_t2v_model *model, const char *prompt, const char *negative, buffers *b) {
  const int64_t rows = model->text.rows, dim = model->text.dim;
  for (int p = 0; p < b->passes; p++) {
    osp_tensor one = osp_tensor_make((float *)b->context.data + p * rows * dim, OSP_F32, OSP_CPU, 2, (int64_t[]){rows, dim});
    OSP_TRY(osp_word_encoder_encode(&model->text, p == 0 ? prompt : negative, &one, NULL));
  }
  return OSP_OK;
}

/* The velocity at step i: one forward of x for each pass, combined by the guidance scale. */
static osp_status guided_velocity(const osp_t2v_model *model, const osp_t2v_settings *s, const osp_sampler *sampler,
                                  int i, buffers *b) {
  const size_t n = (size_t)osp_tensor_numel(&b->x);
  for (int p = 0; p < b->passes; p++) {
    memcpy((float *)b->batch.data + p * n, b->x.data, n * sizeof(float));
    ((float *)b->timestep.data)[p] = (float)osp_sampler_timestep(sampler, i);
  }
  OSP_TRY(osp_dit_forward_parallel(&model->dit, &model->parallel, &b->batch, &b->timestep, &b->context,
                                   &b->velocity, NULL));
  if (b->passes == 1) return osp_copy(&b->velocity, &b->guided);
  const osp_tensor cond = osp_tensor_make(b->velocity.data, OSP_F32, OSP_CPU, 5, b->x.shape);
  const osp_tensor uncond = osp_tensor_make((float *)b->velocity.data + n, OSP_F32, OSP_CPU, 5, b->x.shape);
  return osp_guidance_combine(&cond, &uncond, s->guidance, &b->guided);
}

static osp_status check_settings(const osp_t2v_model *model, const osp_t2v_settings *s) {
  const int *patch = model->dit.config.patch_size;
  if (s->frames < 1 || s->height < 1 || s->width < 1 || s->frames % patch[0] || s->height % patch[1] ||
      s->width % patch[2] || s->frames > 4096 || s->height > 4096 || s->width > 4096)
    return osp_fail(OSP_ERR_ARGUMENT,
                    "generate: %lld frames of %lld x %lld pixels: expected 1 to 4096 of each, multiples of the model's "
                    "patch (%d frames, %d x %d pixels)",
                    (long long)s->frames, (long long)s->width, (long long)s->height, patch[0], patch[2], patch[1]);
  if (!(s->guidance >= 1.0 && isfinite(s->guidance)))
    return osp_fail(OSP_ERR_ARGUMENT, "generate: guidance: expected a finite scale >= 1, found %g", s->guidance);
  return OSP_OK;
}

osp_status osp_t2v_generate(const osp_t2v_model *model, const char *prompt, const char *negative_prompt,
                            const osp_t2v_settings *settings, uint64_t seed, osp_t2v_progress progress,
                            void *user, osp_frames *video, osp_t2v_timing *timing) {
  const double start = osp_seconds();
  *video = (osp_frames){0};
  *timing = (osp_t2v_timing){0};
  OSP_TRY(check_settings(model, settings));
  const osp_sampler_config sampler_config = {.kind = settings->sampler, .steps = settings->steps, .shift = settings->shift};
  buffers b = {0};
  osp_sampler *sampler = NULL;
  osp_status status = allocate(model, settings, &b);
  if (status == OSP_OK) status = osp_sampler_create(&sampler_config, 5, b.x.shape, &sampler);
  if (status == OSP_OK) status = osp_dit_check_inputs(&model->dit, &b.batch, &b.timestep, &b.context);
  if (status == OSP_OK) status = encode_prompts(model, prompt, negative_prompt ? negative_prompt : "", &b);
  timing->text_seconds = osp_seconds() - start;
  if (status == OSP_OK) osp_randn(seed, noise_stream, 0, b.x.data, (size_t)osp_tensor_numel(&b.x));
  for (int i = 0; status == OSP_OK && i < settings->steps; i++) {
    status = guided_velocity(model, settings, sampler, i, &b);
    if (status == OSP_OK) status = osp_sampler_step(sampler, i, &b.guided, &b.x);
    if (status == OSP_OK && progress) progress(i + 1, settings->steps, osp_seconds() - start, user);
  }
  timing->sampling_seconds = osp_seconds() - start - timing->text_seconds;
  if (status == OSP_OK) status = osp_latents_to_pixels(&b.x, video);
  osp_sampler_free(sampler);
  free(b.memory);
  timing->total_seconds = osp_seconds() - start;
  timing->decode_seconds = timing->total_seconds - timing->text_seconds - timing->sampling_seconds;
  return status;
}
