/* The training loop (train.h): one trainer holds the model, its gradients, AdamW's moments, the
 * data and the step's buffers, all made before the first step. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/status.h"
#include "model/dit_train.h"
#include "ops/ops.h"
#include "ops/optim.h"
#include "pipeline/checkpoint.h"
#include "pipeline/dataset.h"
#include "pipeline/flow_matching.h"
#include "pipeline/train.h"

typedef struct {
  const osp_train_config *config;
  osp_dit weights, grads, m, v, ema; /* f32 on the CPU: the weights are the master copy */
  osp_dit_parameter *params[5]; /* the DiTs' parameters, in one order (ema: where kept) */
  osp_tensor **grad_list;       /* the gradients, for clipping */
  int count;
  osp_dit_tape *tape;
  osp_dataset *data;
  osp_arena buffers;
  osp_tensor noise, x_t, target, sigma, timestep, velocity, dvelocity;
  osp_train_state state;
} trainer;

static osp_status load_weights(const osp_train_config *c, osp_dit *weights) {
  if (!c->weights[0]) return osp_dit_init_random(&c->model, c->random_weights_seed, OSP_CPU, weights);
  osp_dit file; /* mapped: its f32 tensors point into the file, which training must not write */
  OSP_TRY(osp_dit_load(&c->model, c->weights, &file));
  osp_status status = osp_dit_to_device(&file, OSP_CPU, weights);
  osp_dit_free(&file);
  return status;
}

/* The EMA of the weights starts as the weights. */
static osp_status start_ema(trainer *t) {
  OSP_TRY(osp_dit_init_zeros(&t->weights, OSP_CPU, &t->ema));
  OSP_TRY(osp_dit_parameters(&t->ema, &t->params[4], &t->count));
  for (int i = 0; i < t->count; i++) OSP_TRY(osp_copy(&t->params[0][i].tensor, &t->params[4][i].tensor));
  return OSP_OK;
}

static osp_status list_parameters(trainer *t) {
  osp_dit *dits[4] = {&t->weights, &t->grads, &t->m, &t->v};
  for (int i = 0; i < 4; i++) OSP_TRY(osp_dit_parameters(dits[i], &t->params[i], &t->count));
  const size_t count = (size_t)(t->count > 0 ? t->count : 0);
  t->grad_list = calloc(count + 1, sizeof *t->grad_list);
  if (!t->grad_list) return osp_fail(OSP_ERR_MEMORY, "out of memory");
  for (int i = 0; i < t->count; i++) t->grad_list[i] = &t->params[1][i].tensor;
  return t->config->ema_decay > 0 ? start_ema(t) : OSP_OK;
}

static osp_status open_data(trainer *t) {
  const osp_train_config *c = t->config;
  const osp_dataset_options options = {.batch_size = c->batch_size, .seed = c->seed, .shuffle = true,
                                       .replica = 0, .replicas = 1};
  if (c->data_dir[0]) return osp_dataset_open(c->data_dir, &options, &t->data);
  const int64_t *s = c->synthetic_shape;
  const osp_dataset_shape shape = {.samples = c->synthetic_samples, .frames = s[0], .height = s[1], .width = s[2],
                                   .context_tokens = s[3], .text_dim = c->model.text_dim};
  return osp_dataset_open_synthetic(&shape, c->seed, &options, &t->data);
}

/* The data must fit the model: its channels and text width, latents the patch divides. */
static osp_status check_data(const trainer *t) {
  const osp_dataset_shape *s = osp_dataset_shape_of(t->data);
  const osp_model_config *m = &t->config->model;
  if (m->in_channels != OSP_DATASET_LATENT_CHANNELS || m->out_channels != OSP_DATASET_LATENT_CHANNELS)
    return osp_fail(OSP_ERR_SHAPE, "training data: latents have %d channels, the model takes %d in and %d out",
                    OSP_DATASET_LATENT_CHANNELS, m->in_channels, m->out_channels);
  if (s->text_dim != m->text_dim)
    return osp_fail(OSP_ERR_SHAPE, "training data: context has %lld columns, the model's text_dim is %d",
                    (long long)s->text_dim, m->text_dim);
  return OSP_OK;
}

/* The step's host buffers: noise, x_t, target, velocity and its gradient [B, 16, F, H, W];
 * sigma and timestep [B]. */
static osp_status allocate_step(trainer *t) {
  const osp_dataset_shape *s = osp_dataset_shape_of(t->data);
  const int64_t B = t->config->batch_size;
  const int64_t video[5] = {B, OSP_DATASET_LATENT_CHANNELS, s->frames, s->height, s->width};
  osp_tensor *videos[] = {&t->noise, &t->x_t, &t->target, &t->velocity, &t->dvelocity};
  const size_t n = sizeof videos / sizeof videos[0];
  const osp_tensor one = osp_tensor_make(NULL, OSP_F32, OSP_CPU, 5, video);
  OSP_TRY(osp_arena_init(&t->buffers, "training step", n * osp_arena_align(osp_tensor_bytes(&one)) +
                                                            2 * osp_arena_align((size_t)B * sizeof(float))));
  for (size_t i = 0; i < n; i++) OSP_TRY(osp_arena_tensor(&t->buffers, OSP_F32, 5, video, videos[i]));
  OSP_TRY(osp_arena_tensor(&t->buffers, OSP_F32, 1, &B, &t->sigma));
  return osp_arena_tensor(&t->buffers, OSP_F32, 1, &B, &t->timestep);
}

static osp_status make_tape(trainer *t) {
  const osp_dataset_shape *s = osp_dataset_shape_of(t->data);
  const osp_dit_tape_options options = {.batch = t->config->batch_size, .frames = s->frames, .height = s->height,
                                        .width = s->width, .text_rows = s->context_tokens,
                                        .checkpoint = t->config->activation_checkpointing};
  return osp_dit_tape_create(&t->weights, &options, &t->tape);
}

/* Picks up a checkpoint: the tensors, the step, the data position. */
static osp_status resume_from(trainer *t, const char *resume) {
  char path[4096];
  if (!resume) return OSP_OK;
  if (strcmp(resume, "latest")) snprintf(path, sizeof path, "%s", resume);
  else OSP_TRY(osp_checkpoint_latest(t->config->output, path, sizeof path));
  if (!path[0]) return OSP_OK;
  osp_train_tensors tensors = {&t->weights, &t->m, &t->v, t->params[4] ? &t->ema : NULL};
  OSP_TRY(osp_checkpoint_load(path, &tensors, &t->state));
  return osp_dataset_seek(t->data, t->state.position);
}

static osp_status start(trainer *t, const char *resume) {
  const osp_train_config *c = t->config;
  if (c->device != OSP_CPU)
    return osp_fail(OSP_ERR_UNSUPPORTED, "training on cuda is not available yet: the CUDA backward and "
                    "optimizer kernels are being written; train with \"device\": \"cpu\"");
  OSP_TRY(load_weights(c, &t->weights));
  OSP_TRY(osp_dit_init_zeros(&t->weights, OSP_CPU, &t->grads));
  OSP_TRY(osp_dit_init_zeros(&t->weights, OSP_CPU, &t->m));
  OSP_TRY(osp_dit_init_zeros(&t->weights, OSP_CPU, &t->v));
  OSP_TRY(list_parameters(t));
  OSP_TRY(open_data(t));
  OSP_TRY(check_data(t));
  OSP_TRY(allocate_step(t));
  OSP_TRY(make_tape(t));
  return resume_from(t, resume);
}

static void finish(trainer *t) {
  osp_dit_tape_free(t->tape);
  if (t->data) osp_dataset_close(t->data);
  osp_arena_free(&t->buffers);
  for (int i = 0; i < 5; i++) free(t->params[i]);
  free(t->grad_list);
  osp_dit *dits[5] = {&t->weights, &t->grads, &t->m, &t->v, &t->ema};
  for (int i = 0; i < 5; i++) osp_dit_free(dits[i]);
}

/* x_t, target and the timestep of step `step` for the batch's clean latents x0. */
static osp_status noisy_batch(trainer *t, int64_t step, const osp_tensor *x0) {
  const osp_dataset_shape *s = osp_dataset_shape_of(t->data);
  const osp_flow_key key = {.seed = t->config->seed, .step = step, .first_sample = 0};
  OSP_TRY(osp_flow_draw_sigmas(&t->config->flow, &key, s->height, s->width, &t->sigma, &t->timestep));
  OSP_TRY(osp_flow_draw_noise(&key, &t->noise));
  return osp_flow_noisy_input(x0, &t->noise, &t->sigma, &t->x_t, &t->target);
}

/* g ← ∂L/∂θ of the batch; *loss, *grad_norm (before clipping). */
static osp_status gradients(trainer *t, int64_t step, double *loss, double *grad_norm) {
  osp_dataset_batch batch;
  OSP_TRY(osp_dataset_next(t->data, &batch));
  OSP_TRY(noisy_batch(t, step, &batch.latents));
  OSP_TRY(osp_dit_forward_train(&t->weights, t->tape, &t->x_t, &t->timestep, &batch.context, &t->velocity));
  OSP_TRY(osp_flow_loss(&t->velocity, &t->target, loss, &t->dvelocity));
  for (int i = 0; i < t->count; i++) OSP_TRY(osp_zero(t->grad_list[i]));
  OSP_TRY(osp_dit_backward(&t->weights, t->tape, &t->dvelocity, &t->grads, NULL));
  if (t->config->clip_grad_norm > 0)
    return osp_clip_grad_norm(t->grad_list, t->count, t->config->clip_grad_norm, grad_norm);
  double sum = 0;
  for (int i = 0; i < t->count; i++) {
    double part;
    OSP_TRY(osp_sum_of_squares(t->grad_list[i], &part));
    sum += part;
  }
  *grad_norm = sqrt(sum);
  return OSP_OK;
}

static osp_status update(trainer *t, int64_t step, double *lr) {
  OSP_TRY(osp_lr_at(&t->config->lr, step, lr));
  osp_adamw_config adamw = t->config->adamw;
  adamw.lr = *lr;
  adamw.step = step;
  for (int i = 0; i < t->count; i++)
    OSP_TRY(osp_adamw_step(&t->params[0][i].tensor, &t->params[1][i].tensor, &t->params[2][i].tensor,
                           &t->params[3][i].tensor, &adamw));
  for (int i = 0; t->params[4] && i < t->count; i++)
    OSP_TRY(osp_ema_update(&t->params[4][i].tensor, &t->params[0][i].tensor, t->config->ema_decay));
  return OSP_OK;
}

static osp_status take_step(trainer *t, int64_t step, osp_train_metrics *metrics, char *checkpoint, size_t size) {
  const double begin = osp_seconds();
  *metrics = (osp_train_metrics){.step = step, .steps = t->config->steps};
  OSP_TRY(gradients(t, step, &metrics->loss, &metrics->grad_norm));
  OSP_TRY(update(t, step, &metrics->lr));
  t->state = (osp_train_state){.step = step, .position = osp_dataset_tell(t->data), .loss = metrics->loss};
  const int64_t every = t->config->checkpoint_every;
  if ((every && step % every == 0) || step == t->config->steps) {
    osp_train_tensors tensors = {&t->weights, &t->m, &t->v, t->params[4] ? &t->ema : NULL};
    OSP_TRY(osp_checkpoint_save(t->config->output, &tensors, &t->state, checkpoint, size));
    metrics->checkpoint = checkpoint;
  }
  const osp_dataset_shape *s = osp_dataset_shape_of(t->data);
  const int *patch = t->config->model.patch_size;
  const double tokens = (double)t->config->batch_size * (double)(s->frames / patch[0]) *
                        (double)(s->height / patch[1]) * (double)(s->width / patch[2]);
  metrics->seconds = osp_seconds() - begin;
  metrics->tokens_per_second = tokens / metrics->seconds;
  return OSP_OK;
}

osp_status osp_train(const osp_train_config *config, const char *resume, osp_train_observer observe, void *user) {
  trainer t = {.config = config};
  osp_status status = start(&t, resume);
  char checkpoint[4096 + 64];
  for (int64_t step = t.state.step + 1; status == OSP_OK && step <= config->steps; step++) {
    osp_train_metrics metrics;
    status = take_step(&t, step, &metrics, checkpoint, sizeof checkpoint);
    if (status == OSP_OK && observe) observe(&metrics, user);
  }
  finish(&t);
  return status;
}
