/* Text to video (t2v.h). */
#include "pipeline/t2v.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/rng.h"
#include "core/status.h"
#include "ops/ops.h"

static const uint32_t noise_stream = 0x4E4F4953u; /* "NOIS" */

/* ---- The model folder ------------------------------------------------------------------------- */

static osp_status load_dit(const osp_model_dir *files, osp_device device, const osp_t2v_overrides *overrides,
                           osp_dit *dit) {
  osp_model_config config;
  OSP_TRY(osp_config_load(files->dit_config, &config));
  if (overrides && overrides->schedule) OSP_TRY(osp_config_set_schedule("--schedule", overrides->schedule, &config));
  if (overrides && overrides->quant) OSP_TRY(osp_config_set_quant("--quant", overrides->quant, &config));
  const int loras = overrides ? overrides->lora_count : 0;
  osp_dit host;
  OSP_TRY(osp_dit_load(&config, files->dit_weights, &host)); /* f32 on the host */
  osp_status status = osp_lora_apply(loras ? overrides->loras : NULL, loras, &host, NULL);
  if (status == OSP_OK && device == OSP_CPU) {
    *dit = host;
    return OSP_OK;
  }
  if (status == OSP_OK) status = osp_dit_to_device(&host, device, dit); /* bf16 on CUDA */
  osp_dit_free(&host);
  return status;
}

osp_status osp_t2v_model_load(const char *dir, osp_device device, const osp_t2v_overrides *overrides,
                              osp_t2v_model *out) {
  *out = (osp_t2v_model){0};
  osp_model_dir *files = &out->files;
  osp_status status = osp_model_dir_read(dir, files);
  if (status == OSP_OK) out->defaults = files->defaults;
  if (status == OSP_OK) status = load_dit(files, device, overrides, &out->dit);
  if (status == OSP_OK) status = osp_t2v_text_load(files, out->dit.config.text_dim, device, &out->text);
  if (status == OSP_OK) status = osp_t2v_video_load(files, out->dit.config.in_channels, device, &out->video);
  if (status != OSP_OK) {
    osp_fail_context(status, "model %s", dir);
    osp_t2v_model_free(out);
  }
  return status;
}

void osp_t2v_model_free(osp_t2v_model *model) {
  osp_dit_free(&model->dit);
  osp_t2v_text_free(&model->text);
  osp_t2v_video_free(&model->video);
}

/* ---- Generation ------------------------------------------------------------------------------- */

/* The buffers of one generation: the sample x [1, C, f, h, w]; the DiT's batch (x twice, the
 * timestep twice, the conditional and unconditional contexts) and its velocity; the guided
 * velocity. One allocation, freed at the end; x moves to the result. */
typedef struct {
  float *memory, *sample;
  osp_tensor x, batch, timestep, context, velocity, guided;
  int passes; /* 2 with guidance, 1 without */
} buffers;

static osp_status allocate(const osp_t2v_model *model, const osp_t2v_settings *s, const int64_t shape[5], buffers *b) {
  b->passes = s->guidance == 1.0 ? 1 : 2;
  const int64_t P = b->passes, n = shape[1] * shape[2] * shape[3] * shape[4];
  const int64_t context = model->text.rows * model->text.dim;
  const size_t floats = (size_t)(P * n + P + P * context + P * n + n);
  b->sample = calloc((size_t)n, sizeof(float));
  b->x = osp_tensor_make(b->sample, OSP_F32, OSP_CPU, 5, shape);
  b->memory = calloc(floats, sizeof(float));
  if (!b->memory || !b->sample) return osp_fail(OSP_ERR_MEMORY, "generate: cannot allocate %zu floats", floats + n);
  float *at = b->memory;
  int64_t many[5] = {P, shape[1], shape[2], shape[3], shape[4]};
  b->batch = osp_tensor_make(at, OSP_F32, OSP_CPU, 5, many), at += P * n;
  b->timestep = osp_tensor_make(at, OSP_F32, OSP_CPU, 1, (int64_t[]){P}), at += P;
  b->context = osp_tensor_make(at, OSP_F32, OSP_CPU, 3, (int64_t[]){P, model->text.rows, model->text.dim}), at += P * context;
  b->velocity = osp_tensor_make(at, OSP_F32, OSP_CPU, 5, many), at += P * n;
  b->guided = osp_tensor_make(at, OSP_F32, OSP_CPU, 5, shape);
  return OSP_OK;
}

/* The conditional context, then the unconditional one. */
static osp_status encode_prompts(const osp_t2v_model *model, const char *prompt, const char *negative, buffers *b) {
  const int64_t rows = model->text.rows, dim = model->text.dim;
  for (int p = 0; p < b->passes; p++) {
    osp_tensor one = osp_tensor_make((float *)b->context.data + p * rows * dim, OSP_F32, OSP_CPU, 2, (int64_t[]){rows, dim});
    OSP_TRY(osp_t2v_text_encode(&model->text, p == 0 ? prompt : negative, &one));
  }
  return OSP_OK;
}

/* The start of the sampling: the request's noise (checked against the sample's shape), or the
 * seed's. */
static osp_status start_noise(const osp_t2v_request *r, buffers *b) {
  if (!r->noise) {
    osp_randn(r->seed, noise_stream, 0, b->x.data, (size_t)osp_tensor_numel(&b->x));
    return OSP_OK;
  }
  OSP_TRY(osp_check_f32_cpu("generate: noise", r->noise));
  OSP_TRY(osp_check_shape("generate: noise", r->noise, 5, b->x.shape));
  OSP_TRY(osp_check_finite("generate: noise", r->noise));
  return osp_copy(r->noise, &b->x);
}

/* Whether the conditional and unconditional passes run as forwards of their own: under HiF8,
 * whose per-tensor scales OSP-Next takes per pass (PAPER.md 7.3), unless CFG parallelism already
 * gives each pass its own ranks. */
static bool separate_passes(const osp_t2v_model *model, const buffers *b) {
  const osp_model_config *c = &model->dit.config;
  const bool quantized = c->quant != OSP_QUANT_NONE || c->quant_attn != OSP_QUANT_NONE;
  const bool cfg_parallel = model->parallel.batch && osp_comm_size(model->parallel.batch) > 1;
  return quantized && b->passes > 1 && !cfg_parallel;
}

/* The DiT's velocity for the batch of passes: one forward, or one per pass. */
static osp_status forward_passes(const osp_t2v_model *model, buffers *b) {
  if (!separate_passes(model, b))
    return osp_dit_forward_parallel(&model->dit, &model->parallel, &b->batch, &b->timestep, &b->context,
                                    &b->velocity, NULL);
  for (int p = 0; p < b->passes; p++) {
    const osp_tensor x = osp_tensor_slice(&b->batch, p, 1), t = osp_tensor_slice(&b->timestep, p, 1);
    const osp_tensor context = osp_tensor_slice(&b->context, p, 1);
    osp_tensor velocity = osp_tensor_slice(&b->velocity, p, 1);
    OSP_TRY(osp_dit_forward_parallel(&model->dit, &model->parallel, &x, &t, &context, &velocity, NULL));
  }
  return OSP_OK;
}

/* The velocity at step i: a forward of x for each pass, combined by the guidance scale. */
static osp_status guided_velocity(const osp_t2v_model *model, const osp_t2v_settings *s, const osp_sampler *sampler,
                                  int i, buffers *b) {
  const size_t n = (size_t)osp_tensor_numel(&b->x);
  for (int p = 0; p < b->passes; p++) {
    memcpy((float *)b->batch.data + p * n, b->x.data, n * sizeof(float));
    ((float *)b->timestep.data)[p] = (float)osp_sampler_timestep(sampler, i);
  }
  OSP_TRY(forward_passes(model, b));
  if (b->passes == 1) return osp_copy(&b->velocity, &b->guided);
  const osp_tensor cond = osp_tensor_make(b->velocity.data, OSP_F32, OSP_CPU, 5, b->x.shape);
  const osp_tensor uncond = osp_tensor_make((float *)b->velocity.data + n, OSP_F32, OSP_CPU, 5, b->x.shape);
  return osp_guidance_combine(&cond, &uncond, s->guidance, &b->guided);
}

static osp_status check_guidance(const osp_t2v_settings *s) {
  if (!(s->guidance >= 1.0 && isfinite(s->guidance)))
    return osp_fail(OSP_ERR_ARGUMENT, "generate: guidance: expected a finite scale >= 1, found %g", s->guidance);
  return OSP_OK;
}

static osp_status sample(const osp_t2v_model *model, const osp_t2v_request *r, osp_sampler *sampler, buffers *b,
                         double start) {
  const osp_t2v_settings *s = &r->settings;
  osp_status status = OSP_OK;
  for (int i = 0; status == OSP_OK && i < s->steps; i++) {
    status = guided_velocity(model, s, sampler, i, b);
    if (status == OSP_OK) status = osp_sampler_step(sampler, i, &b->guided, &b->x);
    if (status == OSP_OK && r->progress) r->progress(i + 1, s->steps, osp_seconds() - start, r->user);
  }
  return status;
}

/* The VAE's per-frame report, passed on to the request's. */
static void decode_frame(void *user, int done, int total) {
  const osp_t2v_request *r = user;
  if (r->decode_progress) r->decode_progress(done, total, r->user);
}

osp_status osp_t2v_generate(const osp_t2v_model *model, const osp_t2v_request *r, osp_t2v_result *result) {
  const double start = osp_seconds();
  const osp_t2v_settings *s = &r->settings;
  osp_t2v_timing *timing = &result->timing;
  *result = (osp_t2v_result){0};
  int64_t shape[5];
  OSP_TRY(check_guidance(s));
  OSP_TRY(osp_t2v_video_sample_shape(&model->video, s->frames, s->height, s->width, model->dit.config.patch_size, shape));
  const osp_sampler_config sampler_config = {.kind = s->sampler, .steps = s->steps, .shift = s->shift};
  buffers b = {0};
  osp_sampler *sampler = NULL;
  osp_status status = allocate(model, s, shape, &b);
  if (status == OSP_OK) status = osp_sampler_create(&sampler_config, 5, b.x.shape, &sampler);
  if (status == OSP_OK) status = osp_dit_check_inputs(&model->dit, &b.batch, &b.timestep, &b.context);
  if (status == OSP_OK) status = start_noise(r, &b);
  if (status == OSP_OK)
    status = encode_prompts(model, r->prompt, r->negative_prompt ? r->negative_prompt : "", &b);
  timing->text_seconds = osp_seconds() - start;
  if (status == OSP_OK) status = sample(model, r, sampler, &b, start);
  timing->sampling_seconds = osp_seconds() - start - timing->text_seconds;
  if (status == OSP_OK) status = osp_t2v_video_decode(&model->video, &b.x, decode_frame, (void *)r, &result->video);
  result->latents = b.x; /* the result owns the sample from here */
  osp_sampler_free(sampler);
  free(b.memory);
  timing->total_seconds = osp_seconds() - start;
  timing->decode_seconds = timing->total_seconds - timing->text_seconds - timing->sampling_seconds;
  return status;
}

void osp_t2v_result_free(osp_t2v_result *result) {
  osp_frames_free(&result->video);
  free(result->latents.data);
  *result = (osp_t2v_result){0};
}
