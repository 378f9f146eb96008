/* The training loop (train.h): one trainer holds the model, its gradients, AdamW's moments, the
 * data and the step's buffers, all made before the first step. */
#include <stdbool.h>
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
#include "pipeline/shapes_data.h"
#include "pipeline/train.h"

/* The parameters of the DiTs a trainer holds, listed in one order (osp_dit_parameters). */
enum { WEIGHTS, GRADS, M, V, EMA, COMPUTE, DITS };

typedef struct {
  const osp_train_config *config;
  osp_train_ranks ranks;
  /* On the training device, f32: the master weights, their gradients, AdamW's moments and the
   * weights' EMA (where kept). On CUDA the forward and backward read `compute`, a bf16 copy of the
   * weights made after every update; on the CPU they read the weights themselves. */
  osp_dit dits[DITS];
  osp_dit_parameter *params[DITS]; /* NULL where the DiT is not kept */
  /* On CUDA, host copies of the weights, moments and EMA, which checkpoints are written from and
   * read into; on the CPU checkpoints use the training tensors themselves. */
  osp_dit host[4];
  osp_tensor **grad_list; /* the gradients, for clipping */
  int count;
  osp_dit_tape *tape;
  osp_word_encoder text;   /* where the data is the world of shapes */
  osp_shapes_data shapes;
  osp_dataset *data;
  osp_arena buffers;
  osp_tensor noise, x_t, target, sigma, timestep, velocity, dvelocity;
  osp_train_state state;
} trainer;

static bool on_cpu(const trainer *t) { return t->config->device == OSP_CPU; }

/* The DiT the forward and backward run. */
static const osp_dit *model(const trainer *t) { return &t->dits[on_cpu(t) ? WEIGHTS : COMPUTE]; }

/* The weights as f32 on the host: the config's file, or random ones. */
static osp_status load_weights(const osp_train_config *c, osp_dit *weights) {
  if (!c->weights[0]) return osp_dit_init_random(&c->model, c->random_weights_seed, OSP_CPU, weights);
  osp_dit file; /* mapped: its f32 tensors point into the file, which training must not write */
  OSP_TRY(osp_dit_load(&c->model, c->weights, &file));
  osp_status status = osp_dit_to_device(&file, OSP_CPU, weights);
  osp_dit_free(&file);
  return status;
}

/* dst's parameters ← src's (any devices, f32 or bf16). */
static osp_status copy_parameters(const osp_dit *src, osp_dit *dst) {
  osp_dit_parameter *from = NULL, *to = NULL;
  int count = 0;
  osp_status status = osp_dit_parameters(src, &from, &count);
  if (status == OSP_OK) status = osp_dit_parameters(dst, &to, &count);
  for (int i = 0; status == OSP_OK && i < count; i++) status = osp_copy(&from[i].tensor, &to[i].tensor);
  free(from);
  free(to);
  return status;
}

/* The DiTs of the training device: the CPU trains the loaded weights in place; CUDA gets f32
 * master weights and their bf16 copy, and keeps the loaded weights as the host copy. */
static osp_status make_dits(trainer *t) {
  const osp_device device = t->config->device;
  const bool ema = t->config->ema_decay > 0;
  osp_dit loaded;
  OSP_TRY(load_weights(t->config, &loaded));
  if (device == OSP_CPU) {
    t->dits[WEIGHTS] = loaded;
  } else {
    t->host[0] = loaded;
    for (int k = 1; k < (ema ? 4 : 3); k++) OSP_TRY(osp_dit_init_zeros(&loaded, OSP_CPU, &t->host[k]));
    OSP_TRY(osp_dit_init_zeros(&loaded, device, &t->dits[WEIGHTS]));
    OSP_TRY(copy_parameters(&loaded, &t->dits[WEIGHTS]));
    OSP_TRY(osp_dit_to_device(&loaded, device, &t->dits[COMPUTE]));
  }
  for (int k = GRADS; k <= V; k++) OSP_TRY(osp_dit_init_zeros(&t->dits[WEIGHTS], device, &t->dits[k]));
  if (!ema) return OSP_OK;
  OSP_TRY(osp_dit_init_zeros(&t->dits[WEIGHTS], device, &t->dits[EMA])); /* the EMA starts as the weights */
  return copy_parameters(&t->dits[WEIGHTS], &t->dits[EMA]);
}

static osp_status list_parameters(trainer *t) {
  for (int k = 0; k < DITS; k++)
    if (t->dits[k].config.num_layers) OSP_TRY(osp_dit_parameters(&t->dits[k], &t->params[k], &t->count));
  const size_t count = (size_t)(t->count > 0 ? t->count : 0);
  t->grad_list = calloc(count + 1, sizeof *t->grad_list);
  if (!t->grad_list) return osp_fail(OSP_ERR_MEMORY, "out of memory");
  for (int i = 0; i < t->count; i++) t->grad_list[i] = &t->params[GRADS][i].tensor;
  return OSP_OK;
}

/* What a checkpoint holds, where checkpoints are written from and read into. */
static osp_train_tensors saved_tensors(trainer *t) {
  osp_dit *ema = t->params[EMA] ? &t->dits[EMA] : NULL;
  if (on_cpu(t)) return (osp_train_tensors){&t->dits[WEIGHTS], &t->dits[M], &t->dits[V], ema};
  return (osp_train_tensors){&t->host[0], &t->host[1], &t->host[2], ema ? &t->host[3] : NULL};
}

/* CUDA: the host copies ← the training tensors (to_host), or the other way and the bf16 copy. */
static osp_status sync_host(trainer *t, bool to_host) {
  if (on_cpu(t)) return OSP_OK;
  const int kept[4] = {WEIGHTS, M, V, EMA};
  for (int k = 0; k < 4; k++) {
    if (!t->params[kept[k]]) continue;
    OSP_TRY(to_host ? copy_parameters(&t->dits[kept[k]], &t->host[k]) : copy_parameters(&t->host[k], &t->dits[kept[k]]));
  }
  return to_host ? OSP_OK : copy_parameters(&t->dits[WEIGHTS], &t->dits[COMPUTE]);
}

static osp_status open_data(trainer *t) {
  const osp_train_config *c = t->config;
  const osp_dataset_options options = {.batch_size = c->batch_size, .seed = c->seed, .shuffle = true,
                                       .replica = 0, .replicas = 1};
  if (c->data_dir[0]) return osp_dataset_open(c->data_dir, &options, &t->data);
  if (c->shapes_samples) {
    OSP_TRY(osp_word_encoder_load(c->vocab, c->model.text_dim, c->text_rows, c->text_seed, &t->text));
    const int64_t *v = c->shapes_shape;
    t->shapes = (osp_shapes_data){.seed = c->seed, .samples = c->shapes_samples, .frames = v[0], .height = v[1],
                                  .width = v[2], .text_dropout = c->text_dropout, .text = &t->text};
    return osp_shapes_data_open(&t->shapes, &options, &t->data);
  }
  const int64_t *s = c->synthetic_shape;
  const osp_dataset_shape shape = {.samples = c->synthetic_samples, .channels = c->model.in_channels, .frames = s[0], .height = s[1], .width = s[2],
                                   .context_tokens = s[3], .text_dim = c->model.text_dim};
  return osp_dataset_open_synthetic(&shape, c->seed, &options, &t->data);
}

/* The data must fit the model: its channels and text width, latents the patch divides. */
static osp_status check_data(const trainer *t) {
  const osp_dataset_shape *s = osp_dataset_shape_of(t->data);
  const osp_model_config *m = &t->config->model;
  if (m->in_channels != s->channels || m->out_channels != s->channels)
    return osp_fail(OSP_ERR_SHAPE, "training data: latents have %lld channels, the model takes %d in and %d out",
                    (long long)s->channels, m->in_channels, m->out_channels);
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
  const int64_t video[5] = {B, s->channels, s->frames, s->height, s->width};
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
                                        .checkpoint = t->config->activation_checkpointing,
                                        .sequence = t->ranks.sequence, .mode = t->ranks.mode};
  return osp_dit_tape_create(model(t), &options, &t->tape);
}

/* Picks up a checkpoint: the tensors, the step, the data position. */
static osp_status resume_from(trainer *t, const char *resume) {
  char path[4096];
  if (!resume) return OSP_OK;
  if (strcmp(resume, "latest")) snprintf(path, sizeof path, "%s", resume);
  else OSP_TRY(osp_checkpoint_latest(t->config->output, path, sizeof path));
  if (!path[0]) return OSP_OK;
  osp_train_tensors tensors = saved_tensors(t);
  OSP_TRY(osp_checkpoint_load(path, &tensors, &t->state));
  OSP_TRY(sync_host(t, false));
  return osp_dataset_seek(t->data, t->state.position);
}

static osp_status start(trainer *t, const char *resume) {
  OSP_TRY(make_dits(t));
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
  osp_word_encoder_free(&t->text);
  osp_arena_free(&t->buffers);
  for (int k = 0; k < DITS; k++) {
    free(t->params[k]);
    osp_dit_free(&t->dits[k]);
  }
  for (int k = 0; k < 4; k++) osp_dit_free(&t->host[k]);
  free(t->grad_list);
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
  OSP_TRY(osp_dit_forward_train(model(t), t->tape, &t->x_t, &t->timestep, &batch.context, &t->velocity));
  OSP_TRY(osp_flow_loss(&t->velocity, &t->target, loss, &t->dvelocity));
  for (int i = 0; i < t->count; i++) OSP_TRY(osp_zero(t->grad_list[i]));
  OSP_TRY(osp_dit_backward(model(t), t->tape, &t->dvelocity, &t->dits[GRADS], NULL));
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
    OSP_TRY(osp_adamw_step(&t->params[WEIGHTS][i].tensor, &t->params[GRADS][i].tensor, &t->params[M][i].tensor,
                           &t->params[V][i].tensor, &adamw));
  for (int i = 0; t->params[EMA] && i < t->count; i++)
    OSP_TRY(osp_ema_update(&t->params[EMA][i].tensor, &t->params[WEIGHTS][i].tensor, t->config->ema_decay));
  for (int i = 0; t->params[COMPUTE] && i < t->count; i++) /* the bf16 copy the next forward reads */
    OSP_TRY(osp_copy(&t->params[WEIGHTS][i].tensor, &t->params[COMPUTE][i].tensor));
  return OSP_OK;
}

static osp_status take_step(trainer *t, int64_t step, osp_train_metrics *metrics, char *checkpoint, size_t size) {
  const double begin = osp_seconds();
  *metrics = (osp_train_metrics){.step = step, .steps = t->config->steps};
  OSP_TRY(gradients(t, step, &metrics->loss, &metrics->grad_norm));
  OSP_TRY(update(t, step, &metrics->lr));
  t->state = (osp_train_state){.step = step, .position = osp_dataset_tell(t->data), .loss = metrics->loss};
  const int64_t every = t->config->checkpoint_every;
  if (t->ranks.writes && ((every && step % every == 0) || step == t->config->steps)) {
    osp_train_tensors tensors = saved_tensors(t);
    OSP_TRY(sync_host(t, true));
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
  const osp_train_ranks alone = {.writes = true};
  return osp_train_over(config, &alone, resume, observe, user);
}

osp_status osp_train_over(const osp_train_config *config, const osp_train_ranks *ranks, const char *resume,
                          osp_train_observer observe, void *user) {
  trainer t = {.config = config, .ranks = *ranks};
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
