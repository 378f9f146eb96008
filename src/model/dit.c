/* The DiT forward (PAPER.md 1.2–1.7). Per block, with mod = modulation + e0 (rows: shift, scale,
 * gate of attention; shift, scale, gate of the FFN):
 *   x += SelfAttn(LN(x)·(1 + mod[1]) + mod[0]) · mod[2]
 *   x += CrossAttn(LN_affine(x), context)
 *   x += FFN(LN(x)·(1 + mod[4]) + mod[3]) · mod[5]                                            */
#include <math.h>
#include <string.h>

#include "core/clock.h"
#include "core/status.h"
#include "model/dit_internal.h"
#include "ops/ops.h"
#include "parallel/sequence_parallel.h"
#include "sparse/plan.h"

/* Every activation of one forward, allocated from one arena on the DiT's device sized up front (the
 * plan's tables are made in a host arena and copied there). Per-token buffers hold max_slots
 * tokens (the largest layout of the schedule, padding included) and are viewed as
 * [rows, tokens, ·] in the layout of the block that runs; the steps share buffers wherever the
 * forward alone runs (dit_internal.h). They are in the device's dtype; the time embedding and the
 * modulation tables (e, e0, mod, head_mod) are f32 everywhere. */
typedef struct {
  int64_t batch, text_rows, grid[3];
  osp_device device;
  osp_dtype dtype;               /* of the per-token activations */
  osp_sparse_plan plan;
  osp_tensor latents, timestep, text; /* the inputs on the device (the caller's where they are) */
  osp_tensor velocity;           /* the output on the device, f32 */
  osp_layout layout;             /* of the tokens in x now */
  osp_tensor patches;            /* [B, N, in·pt·ph·pw] */
  osp_tensor x, x_spare;         /* the residual stream, and the target of a layout change */
  osp_tensor normed;             /* [slots, C] */
  osp_tensor q, k, v, attended;  /* [slots, C] each */
  osp_tensor projected;          /* [slots, C]: output of o / ffn_out before the residual add */
  osp_tensor hidden;             /* [slots, ffn_dim] */
  dit_time_tensors time;         /* e_hidden serves t_pre, t_act and e_act */
  osp_tensor mod;                /* [B, 6, C]: modulation + e0 of the current block */
  osp_tensor head_mod;           /* [B, 2, C] */
  dit_text_tensors text_embed;   /* c_pre = c_act */
  osp_tensor context_k, context_v; /* [B, L, C] */
  osp_tensor context_part;          /* the context of the samples this rank holds in the block's layout */
  osp_tensor rope_cos[OSP_PATTERN_COUNT], rope_sin[OSP_PATTERN_COUNT]; /* [rows, tokens, D/2] */
  osp_tensor out_tokens;           /* [B, N, out·pt·ph·pw] */
  osp_tensor attention_scratch;    /* u8 [osp_attention_scratch_bytes] */
  osp_dit_timing *timing;          /* NULL: not timed */
  osp_comm *comm;                  /* the sequence-parallel group; NULL: this rank alone */
  osp_sp_mode sp_mode;
  osp_sp_plan sp;                  /* this rank's part (plan = sp.local) when comm is set */
  osp_tensor local_patches;        /* [B·tokens, in·pt·ph·pw]: the patches of this rank's tokens */
  osp_tensor gathered_tokens;      /* [B·N, out·pt·ph·pw]: every rank's head output */
  dit_quant quant;                 /* HiF8, with its weight scratch */
  bool quantized;                  /* whether the config quantizes anything */
} activations;

/* An input or output as the forward uses it: the caller's tensor where it already sits on the
 * device in the dtype wanted, else one from the arena that it is copied into (or out of). */
static osp_status stage(osp_arena *a, const osp_tensor *t, const activations *act, osp_dtype dtype,
                        osp_tensor *staged) {
  if (t->device == act->device && t->dtype == dtype) {
    *staged = *t;
    return OSP_OK;
  }
  return osp_arena_tensor(a, dtype, t->ndim, t->shape, staged);
}

typedef struct {
  const osp_tensor *latents, *timestep, *text;
  osp_tensor *velocity;
} forward_io;

/* What a forward spread over ranks adds: its plan's buffers, the patches of this rank's tokens and
 * the gathered head output. */
static osp_status allocate_parallel(osp_arena *a, const osp_model_config *c, activations *act) {
  const int64_t patch = (int64_t)c->patch_size[0] * c->patch_size[1] * c->patch_size[2];
  const osp_layout *natural = &act->plan.layout[OSP_PATTERN_FULL];
  const int64_t N = act->grid[0] * act->grid[1] * act->grid[2];
  OSP_TRY(osp_sp_allocate(&act->sp, act->dtype, c->dim, act->device != OSP_CPU, a));
  OSP_TRY(osp_arena_tensor(a, act->dtype, 2, (int64_t[]){natural->rows * natural->tokens, c->in_channels * patch},
                           &act->local_patches));
  return osp_arena_tensor(a, act->dtype, 2, (int64_t[]){act->batch * N, c->out_channels * patch},
                          &act->gathered_tokens);
}

static osp_status allocate(osp_arena *host, osp_arena *a, const osp_dit *dit, const forward_io *io,
                           activations *act) {
  const osp_model_config *c = &dit->config;
  OSP_TRY(osp_sparse_plan_make(c, act->batch, act->grid, host, &act->plan));
  if (act->comm) {
    OSP_TRY(osp_sp_plan_make(act->comm, act->sp_mode, c, &act->plan, host, &act->sp));
    act->plan = act->sp.local;
  }
  if (act->device != OSP_CPU) OSP_TRY(dit_upload_plan(a, &act->plan));
  OSP_TRY(stage(a, io->latents, act, act->dtype, &act->latents));
  OSP_TRY(stage(a, io->timestep, act, OSP_F32, &act->timestep));
  OSP_TRY(stage(a, io->text, act, act->dtype, &act->text));
  OSP_TRY(stage(a, io->velocity, act, OSP_F32, &act->velocity));
  const int64_t B = act->batch, N = act->grid[0] * act->grid[1] * act->grid[2], L = act->text_rows, C = c->dim;
  const int64_t S = act->plan.max_slots;
  const int64_t patch = (int64_t)c->patch_size[0] * c->patch_size[1] * c->patch_size[2];
  const osp_dtype D = act->dtype;
  osp_tensor e_hidden;
  struct {
    osp_tensor *t;
    osp_dtype dtype;
    int ndim;
    int64_t shape[3];
  } plan[] = {
      {&act->patches, D, 3, {B, N, c->in_channels * patch}},
      {&act->x, D, 2, {S, C}},
      {&act->x_spare, D, 2, {S, C}},
      {&act->normed, D, 2, {S, C}},
      {&act->q, D, 2, {S, C}},
      {&act->k, D, 2, {S, C}},
      {&act->v, D, 2, {S, C}},
      {&act->attended, D, 2, {S, C}},
      {&act->projected, D, 2, {S, C}},
      {&act->hidden, D, 2, {S, c->ffn_dim}},
      {&act->time.sinusoid, D, 2, {B, c->freq_dim}},
      {&act->time.e, OSP_F32, 2, {B, C}},
      {&e_hidden, D, 2, {B, C}},
      {&act->time.e0, OSP_F32, 3, {B, 6, C}},
      {&act->mod, OSP_F32, 3, {B, 6, C}},
      {&act->head_mod, OSP_F32, 3, {B, 2, C}},
      {&act->text_embed.context, D, 3, {B, L, C}},
      {&act->text_embed.c_act, D, 3, {B, L, C}},
      {&act->context_k, D, 3, {B, L, C}},
      {&act->context_v, D, 3, {B, L, C}},
      {&act->out_tokens, D, 3, {B, N, c->out_channels * patch}},
  };
  for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++)
    OSP_TRY(osp_arena_tensor(a, plan[i].dtype, plan[i].ndim, plan[i].shape, plan[i].t));
  act->time.t_pre = act->time.t_act = act->time.e_act = e_hidden;
  act->text_embed.c_pre = act->text_embed.c_act;
  OSP_TRY(dit_allocate_rope(a, c, &act->plan, act->rope_cos, act->rope_sin));
  if (act->comm) OSP_TRY(allocate_parallel(a, c, act));
  OSP_TRY(dit_quant_plan(c, osp_device_dtype(act->device), a, &act->quant, &act->quantized));
  const int64_t scratch = (int64_t)osp_attention_scratch_bytes(act->device);
  return scratch ? osp_arena_tensor(a, OSP_U8, 1, &scratch, &act->attention_scratch) : OSP_OK;
}

/* A per-sample tensor [B, ...] cut to the samples whose tokens this rank holds in layout k: all of
 * them, but under SSP over more ranks than subsequences. */
static osp_tensor held_samples(const activations *act, const osp_tensor *t, osp_pattern k) {
  return act->comm ? osp_tensor_slice(t, act->sp.first_sample[k], act->sp.samples[k]) : *t;
}

/* The clock, once the device has finished what was queued (timed runs only). */
static osp_status timed_now(const activations *act, double *now) {
  OSP_TRY(osp_device_synchronize(act->device));
  *now = osp_seconds();
  return OSP_OK;
}

/* The spare buffer, which holds the residual stream in layout `to` now, becomes x. */
static void take_spare(activations *act, osp_pattern to) {
  const osp_tensor spent = act->x;
  act->x = act->x_spare;
  act->x_spare = spent;
  act->layout = act->plan.layout[to];
}

/* Moves the residual stream into another layout with one gather of its own (entering the sparse
 * span before the first block, when that one is sparse): every later change happens inside the
 * residual step of the block before. */
static osp_status change_layout(activations *act, osp_pattern to) {
  const osp_pattern from = act->layout.pattern;
  if (from == to) return OSP_OK;
  osp_tensor src = dit_in_layout(&act->x, &act->layout), dst = dit_in_layout(&act->x_spare, &act->plan.layout[to]);
  double start = 0, end = 0;
  if (act->timing) OSP_TRY(timed_now(act, &start));
  OSP_TRY(dit_change_layout(&act->plan, &act->sp, from, to, &src, &dst));
  if (act->timing) OSP_TRY(timed_now(act, &end));
  if (act->timing) act->timing->layout_seconds += end - start;
  take_spare(act, to);
  return OSP_OK;
}

/* The block's tensors for inference: the residual stream is updated in place (into the spare
 * buffer, in the next layout, when the pattern changes), and buffers serve several steps. */
static dit_block_tensors block_views(const osp_dit *dit, int index, activations *act) {
  const osp_layout *l = &act->layout;
  const osp_pattern k = l->pattern, next = dit_pattern_after(&dit->config, index);
  const osp_tensor x = dit_in_layout(&act->x, l), normed = dit_in_layout(&act->normed, l);
  const osp_tensor q = dit_in_layout(&act->q, l), attended = dit_in_layout(&act->attended, l);
  const osp_tensor projected = dit_in_layout(&act->projected, l), hidden = dit_in_layout(&act->hidden, l);
  const osp_tensor ck = held_samples(act, &act->context_k, k), cv = held_samples(act, &act->context_v, k);
  act->context_part = held_samples(act, &act->text_embed.context, k);
  /* A layout change is the residual step's gather where it stays on this rank; else it follows. */
  const bool moves_here = next != k && act->plan.gather[k][next].ndim;
  dit_block_tensors t = {
      .x_in = x, .x1 = x, .x2 = x, .n1 = normed, .n2 = normed, .n3 = normed,
      .q_pre = q, .q = q, .k_pre = dit_in_layout(&act->k, l), .k = dit_in_layout(&act->k, l),
      .v = dit_in_layout(&act->v, l), .a1 = attended, .a1q = attended, .a2 = attended, .a2q = attended,
      .cq_pre = q, .cq = q,
      .o1 = projected, .o2 = projected, .o3 = projected, .h_pre = hidden, .h = hidden,
      .x_out = moves_here ? dit_in_layout(&act->x_spare, &act->plan.layout[next]) : x,
      .ck_pre = ck, .ck = ck, .cv = cv, .mod = held_samples(act, &act->mod, k),
      .context = &act->context_part, .rope_cos = &act->rope_cos[k], .rope_sin = &act->rope_sin[k],
      .key_mask = act->plan.key_mask[k].data ? &act->plan.key_mask[k] : NULL,
      .to_next = moves_here ? &act->plan.gather[k][next] : NULL,
      .ulysses = act->comm && act->sp.band_split[k] ? &act->sp.ulysses[k] : NULL, .comm = act->comm,
      .scratch = act->attention_scratch.data ? &act->attention_scratch : NULL,
      .quant = act->quantized ? &act->quant : NULL,
  };
  return t;
}

/* One block in its scheduled layout: the tokens move only when the pattern changes, inside the
 * residual step of the block before (or right after it, where they move between ranks). */
static osp_status run_block(const osp_dit *dit, int index, activations *act) {
  OSP_TRY(change_layout(act, (osp_pattern)dit->config.schedule[index]));
  dit_block_tensors t = block_views(dit, index, act);
  const osp_tensor e0 = held_samples(act, &act->time.e0, act->layout.pattern);
  OSP_TRY(dit_block_forward(dit, index, &e0, &t));
  const osp_pattern now = act->layout.pattern, next = dit_pattern_after(&dit->config, index);
  if (next == now) return OSP_OK;
  if (act->plan.gather[now][next].ndim) take_spare(act, next);
  else OSP_TRY(change_layout(act, next));
  return OSP_OK;
}

/* x = the patch embedding of this rank's tokens (all of them on one rank). */
static osp_status embed_patches(const osp_dit *dit, activations *act) {
  osp_tensor x = dit_in_layout(&act->x, &act->layout);
  OSP_TRY(osp_patchify(&act->latents, dit->config.patch_size, &act->patches));
  osp_tensor patches = act->patches;
  if (act->comm) {
    OSP_TRY(osp_gather_rows(&act->patches, &act->sp.natural_order, &act->local_patches));
    patches = dit_in_layout(&act->local_patches, &act->layout);
  }
  return osp_linear(&patches, &dit->patch_embedding.weight, &dit->patch_embedding.bias, &x);
}

/* out_tokens [B, N, ·] = the head on the tokens in natural order: on every rank's own, then
 * gathered from all of them. */
static osp_status run_head(const osp_dit *dit, activations *act) {
  dit_head_tensors head = {.x = dit_in_layout(&act->x, &act->layout), .head_mod = act->head_mod,
                           .normed = dit_in_layout(&act->normed, &act->layout),
                           .tokens = act->comm ? dit_in_layout(&act->out_tokens, &act->layout) : act->out_tokens};
  OSP_TRY(dit_head_forward(dit, &act->time.e, &head));
  if (!act->comm) return OSP_OK;
  return osp_sp_gather_natural(&act->sp, &head.tokens, &act->gathered_tokens, &act->out_tokens);
}

/* Bytes this rank has sent to others so far (0 on one rank). */
static int64_t bytes_sent(const activations *act) { return act->comm ? osp_comm_total(act->comm).bytes_sent : 0; }

/* Copies an input onto the device where it was staged apart from the caller's tensor. */
static osp_status bring(const osp_tensor *from, osp_tensor *staged) {
  return staged->data == from->data ? OSP_OK : osp_copy(from, staged);
}

static osp_status forward(const osp_dit *dit, const forward_io *io, activations *act) {
  const osp_model_config *c = &dit->config;
  OSP_TRY(bring(io->latents, &act->latents));
  OSP_TRY(bring(io->timestep, &act->timestep));
  OSP_TRY(bring(io->text, &act->text));
  act->layout = act->plan.layout[OSP_PATTERN_FULL];
  OSP_TRY(embed_patches(dit, act));
  OSP_TRY(dit_embed_time(dit, &act->timestep, &act->time));
  OSP_TRY(dit_embed_text(dit, &act->text, &act->text_embed));
  /* the cross-attention's k and v of every block read the context: quantized once */
  OSP_TRY(dit_quant_linear_input(act->quantized ? &act->quant : NULL, &act->text_embed.context));
  OSP_TRY(dit_rope_tables(dit, &act->plan, act->rope_cos, act->rope_sin));
  for (int i = 0; i < c->num_layers; i++) {
    double start = 0, end = 0;
    const int64_t sent_before = bytes_sent(act);
    if (act->timing) OSP_TRY(timed_now(act, &start));
    OSP_TRY(run_block(dit, i, act));
    if (act->timing) OSP_TRY(timed_now(act, &end));
    if (act->timing) act->timing->block_seconds[i] = end - start;
    if (act->timing) act->timing->block_bytes[i] = bytes_sent(act) - sent_before;
  }
  OSP_TRY(run_head(dit, act));
  OSP_TRY(osp_unpatchify(&act->out_tokens, c->patch_size, &act->velocity));
  if (act->velocity.data != io->velocity->data) OSP_TRY(osp_copy(&act->velocity, io->velocity));
  return osp_device_synchronize(act->device);
}

osp_status osp_dit_check_inputs(const osp_dit *dit, const osp_tensor *latents,
                                const osp_tensor *timestep, const osp_tensor *context) {
  const osp_model_config *c = &dit->config;
  OSP_TRY(osp_check_shape("latents", latents, 5, (int64_t[]){-1, c->in_channels, -1, -1, -1}));
  int64_t B = latents->shape[0];
  OSP_TRY(osp_check_shape("timestep", timestep, 1, (int64_t[]){B}));
  OSP_TRY(osp_check_shape("context", context, 3, (int64_t[]){B, -1, c->text_dim}));
  for (int d = 0; d < 3; d++)
    if (latents->shape[2 + d] % c->patch_size[d] != 0 || latents->shape[2 + d] == 0)
      return osp_fail(OSP_ERR_SHAPE,
                      "latents: %s size %lld is not a positive multiple of the patch size %d",
                      (const char *[]){"frame", "height", "width"}[d], (long long)latents->shape[2 + d],
                      c->patch_size[d]);
  if (B == 0 || context->shape[1] == 0)
    return osp_fail(OSP_ERR_SHAPE, "latents and context must not be empty");
  const osp_tensor *inputs[3] = {latents, timestep, context};
  const char *names[3] = {"latents", "timestep", "context"};
  for (int i = 0; i < 3; i++)
    if (inputs[i]->device == OSP_CPU) OSP_TRY(osp_check_finite(names[i], inputs[i]));
  return OSP_OK;
}

osp_status osp_dit_forward(const osp_dit *dit, const osp_tensor *latents, const osp_tensor *timestep,
                           const osp_tensor *context, osp_tensor *velocity) {
  return osp_dit_forward_timed(dit, latents, timestep, context, velocity, NULL);
}

/* The forward of this rank's part over `comm` (NULL: alone). */
static osp_status run_forward(const osp_dit *dit, osp_comm *comm, osp_sp_mode mode, const osp_tensor *latents,
                              const osp_tensor *timestep, const osp_tensor *context, osp_tensor *velocity,
                              osp_dit_timing *timing) {
  const double start = osp_seconds();
  if (timing) *timing = (osp_dit_timing){0};
  const osp_model_config *c = &dit->config;
  activations act = {.batch = latents->shape[0], .text_rows = context->shape[1], .timing = timing,
                     .device = dit->device, .dtype = osp_device_dtype(dit->device), .comm = comm, .sp_mode = mode};
  for (int d = 0; d < 3; d++) act.grid[d] = latents->shape[2 + d] / c->patch_size[d];
  const forward_io io = {latents, timestep, context, velocity};
  osp_arena measure_host = osp_arena_measuring("sparse plan"), host = {0};
  osp_arena measure = osp_arena_measuring("activations"), arena = {0};
  OSP_TRY(allocate(&measure_host, &measure, dit, &io, &act));
  osp_status status = osp_arena_init(&host, "sparse plan", measure_host.peak);
  if (status == OSP_OK) status = osp_device_arena(&arena, "activations", act.device, measure.peak);
  if (status == OSP_OK) status = allocate(&host, &arena, dit, &io, &act);
  if (status == OSP_OK) status = forward(dit, &io, &act);
  osp_arena_free(&arena);
  osp_arena_free(&host);
  if (timing) timing->total_seconds = osp_seconds() - start;
  return status;
}

osp_status osp_dit_activation_bytes(const osp_model_config *config, osp_device device, int64_t batch,
                                    const int64_t latent_grid[3], int64_t text_rows, size_t *bytes) {
  const osp_model_config *c = config;
  const osp_dit dit = {.config = *config, .device = device};
  activations act = {.batch = batch, .text_rows = text_rows, .device = device, .dtype = osp_device_dtype(device)};
  for (int d = 0; d < 3; d++) act.grid[d] = latent_grid[d] / c->patch_size[d];
  /* Shapes only: the inputs on the DiT's device in its dtype, as the pipelines hand them over. */
  const int64_t latents_shape[5] = {batch, c->in_channels, latent_grid[0], latent_grid[1], latent_grid[2]};
  const int64_t velocity_shape[5] = {batch, c->out_channels, latent_grid[0], latent_grid[1], latent_grid[2]};
  const osp_tensor latents = osp_tensor_make(NULL, act.dtype, device, 5, latents_shape);
  const osp_tensor timestep = osp_tensor_make(NULL, OSP_F32, device, 1, &batch);
  const osp_tensor context = osp_tensor_make(NULL, act.dtype, device, 3, (int64_t[]){batch, text_rows, c->text_dim});
  osp_tensor velocity = osp_tensor_make(NULL, OSP_F32, device, 5, velocity_shape);
  const forward_io io = {&latents, &timestep, &context, &velocity};
  osp_arena measure_host = osp_arena_measuring("sparse plan"), measure = osp_arena_measuring("activations");
  OSP_TRY(allocate(&measure_host, &measure, &dit, &io, &act));
  *bytes = measure.peak;
  return OSP_OK;
}

static osp_status check_forward(const osp_dit *dit, const osp_tensor *latents, const osp_tensor *timestep,
                                const osp_tensor *context, const osp_tensor *velocity) {
  const osp_model_config *c = &dit->config;
  OSP_TRY(osp_dit_check_inputs(dit, latents, timestep, context));
  return osp_check_shape("velocity", velocity, 5,
                         (int64_t[]){latents->shape[0], c->out_channels, latents->shape[2],
                                     latents->shape[3], latents->shape[4]});
}

osp_status osp_dit_forward_timed(const osp_dit *dit, const osp_tensor *latents, const osp_tensor *timestep,
                                 const osp_tensor *context, osp_tensor *velocity, osp_dit_timing *timing) {
  OSP_TRY(check_forward(dit, latents, timestep, context, velocity));
  return run_forward(dit, NULL, OSP_SP_ULYSSES, latents, timestep, context, velocity, timing);
}

/* Every batch group's velocity on every rank: this group's part (in `velocity` already) gathered
 * with the others' over `batch`, through a copy of its own part. */
static osp_status gather_batch(osp_comm *batch, int64_t per_group, osp_tensor *velocity) {
  const int groups = osp_comm_size(batch), me = osp_comm_rank(batch);
  if (velocity->device != osp_comm_device(batch))
    return osp_fail(OSP_ERR_ARGUMENT, "batch parallelism: the velocity must be on the communicator's device");
  const osp_tensor mine = osp_tensor_slice(velocity, me * per_group, per_group);
  osp_arena copy = {0};
  osp_tensor own;
  OSP_TRY(osp_device_arena(&copy, "own velocity", velocity->device, osp_tensor_bytes(&mine)));
  osp_status status = osp_arena_tensor(&copy, mine.dtype, mine.ndim, mine.shape, &own);
  if (status == OSP_OK) status = osp_copy(&mine, &own);
  int64_t bytes[OSP_MAX_RANKS], offset[OSP_MAX_RANKS];
  for (int g = 0; g < groups; g++) {
    bytes[g] = (int64_t)osp_tensor_bytes(&mine);
    offset[g] = g * bytes[g];
  }
  if (status == OSP_OK) status = osp_comm_all_gather(batch, own.data, bytes[me], velocity->data, bytes, offset);
  osp_arena_free(&copy);
  return status;
}

osp_status osp_dit_forward_parallel(const osp_dit *dit, const osp_dit_parallel *parallel,
                                    const osp_tensor *latents, const osp_tensor *timestep,
                                    const osp_tensor *context, osp_tensor *velocity, osp_dit_timing *timing) {
  OSP_TRY(check_forward(dit, latents, timestep, context, velocity));
  osp_comm *sequence = parallel->sequence && osp_comm_size(parallel->sequence) > 1 ? parallel->sequence : NULL;
  osp_comm *batch = parallel->batch && osp_comm_size(parallel->batch) > 1 ? parallel->batch : NULL;
  if (!batch) return run_forward(dit, sequence, parallel->mode, latents, timestep, context, velocity, timing);
  const int64_t B = latents->shape[0], groups = osp_comm_size(batch), g = osp_comm_rank(batch);
  if (B % groups != 0 || groups > OSP_MAX_RANKS)
    return osp_fail(OSP_ERR_SHAPE,
                    "batch (CFG) parallelism over %lld groups needs a batch they divide, found batch %lld "
                    "(classifier-free guidance gives 2: the conditional and unconditional passes)",
                    (long long)groups, (long long)B);
  const int64_t per_group = B / groups;
  const osp_tensor my_latents = osp_tensor_slice(latents, g * per_group, per_group);
  const osp_tensor my_timestep = osp_tensor_slice(timestep, g * per_group, per_group);
  const osp_tensor my_context = osp_tensor_slice(context, g * per_group, per_group);
  osp_tensor my_velocity = osp_tensor_slice(velocity, g * per_group, per_group);
  OSP_TRY(run_forward(dit, sequence, parallel->mode, &my_latents, &my_timestep, &my_context, &my_velocity, timing));
  return gather_batch(batch, per_group, velocity);
}
