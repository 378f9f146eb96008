/* The DiT forward (PAPER.md 1.2–1.7). Per block, with mod = modulation + e0 (rows: shift, scale,
 * gate of attention; shift, scale, gate of the FFN):
 *   x += SelfAttn(LN(x)·(1 + mod[1]) + mod[0]) · mod[2]
 *   x += CrossAttn(LN_affine(x), context)
 *   x += FFN(LN(x)·(1 + mod[4]) + mod[3]) · mod[5]                                            */
#include <math.h>
#include <string.h>

#include "core/clock.h"
#include "core/status.h"
#include "model/dit.h"
#include "ops/ops.h"
#include "sparse/plan.h"

/* Every activation of one forward, allocated from one arena on the DiT's device sized up front (the
 * plan's tables are made in a host arena and copied there). Per-token buffers hold max_slots
 * tokens (the largest layout of the schedule, padding included) and are viewed as
 * [rows, tokens, ·] in the layout of the block that runs. They are in the device's dtype; the
 * time embedding and the modulation tables (e, e0, mod, head_mod) are f32 everywhere. */
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
  osp_tensor normed;             /* [rows, tokens, C] */
  osp_tensor q, k, v, attended;  /* [rows, tokens, C] each */
  osp_tensor projected;          /* [rows, tokens, C]: output of o / ffn_out before the residual add */
  osp_tensor hidden;             /* [rows, tokens, ffn_dim] */
  osp_tensor sinusoid;           /* [B, freq_dim] */
  osp_tensor e, e_hidden;        /* [B, C] */
  osp_tensor e0;                 /* [B, 6, C] */
  osp_tensor mod;                /* [B, 6, C]: modulation + e0 of the current block */
  osp_tensor head_mod;           /* [B, 2, C] */
  osp_tensor context, text_hidden; /* [B, L, C] */
  osp_tensor context_k, context_v; /* [B, L, C] */
  osp_tensor rope_cos[OSP_PATTERN_COUNT], rope_sin[OSP_PATTERN_COUNT]; /* [rows, tokens, D/2] */
  osp_tensor out_tokens;           /* [B, N, out·pt·ph·pw] */
  osp_tensor attention_scratch;    /* u8 [osp_attention_scratch_bytes] */
  osp_dit_timing *timing;          /* NULL: not timed */
} activations;

/* A tensor of the plan moved into the device's arena (copied once the arena is real); a table the
 * plan does not use (no dimensions) stays as it is. */
static osp_status upload(osp_arena *a, osp_tensor *table) {
  if (table->ndim == 0) return OSP_OK;
  osp_tensor on_device;
  OSP_TRY(osp_arena_tensor(a, table->dtype, table->ndim, table->shape, &on_device));
  if (a->base) OSP_TRY(osp_copy(table, &on_device));
  *table = on_device;
  return OSP_OK;
}

static osp_status upload_plan(osp_arena *a, osp_sparse_plan *plan) {
  for (int k = 0; k < OSP_PATTERN_COUNT; k++) {
    OSP_TRY(upload(a, &plan->positions[k]));
    OSP_TRY(upload(a, &plan->key_mask[k]));
    for (int to = 0; to < OSP_PATTERN_COUNT; to++) OSP_TRY(upload(a, &plan->gather[k][to]));
  }
  return OSP_OK;
}

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

static osp_status allocate(osp_arena *host, osp_arena *a, const osp_dit *dit, const forward_io *io,
                           activations *act) {
  const osp_model_config *c = &dit->config;
  OSP_TRY(osp_sparse_plan_make(c, act->batch, act->grid, host, &act->plan));
  if (act->device != OSP_CPU) OSP_TRY(upload_plan(a, &act->plan));
  OSP_TRY(stage(a, io->latents, act, act->dtype, &act->latents));
  OSP_TRY(stage(a, io->timestep, act, OSP_F32, &act->timestep));
  OSP_TRY(stage(a, io->text, act, act->dtype, &act->text));
  OSP_TRY(stage(a, io->velocity, act, OSP_F32, &act->velocity));
  const int64_t B = act->batch, N = act->grid[0] * act->grid[1] * act->grid[2], L = act->text_rows, C = c->dim;
  const int64_t S = act->plan.max_slots;
  const int64_t patch = (int64_t)c->patch_size[0] * c->patch_size[1] * c->patch_size[2];
  const osp_dtype D = act->dtype;
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
      {&act->sinusoid, D, 2, {B, c->freq_dim}},
      {&act->e, OSP_F32, 2, {B, C}},
      {&act->e_hidden, D, 2, {B, C}},
      {&act->e0, OSP_F32, 3, {B, 6, C}},
      {&act->mod, OSP_F32, 3, {B, 6, C}},
      {&act->head_mod, OSP_F32, 3, {B, 2, C}},
      {&act->context, D, 3, {B, L, C}},
      {&act->text_hidden, D, 3, {B, L, C}},
      {&act->context_k, D, 3, {B, L, C}},
      {&act->context_v, D, 3, {B, L, C}},
      {&act->out_tokens, D, 3, {B, N, c->out_channels * patch}},
  };
  for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++)
    OSP_TRY(osp_arena_tensor(a, plan[i].dtype, plan[i].ndim, plan[i].shape, plan[i].t));
  for (int k = 0; k < OSP_PATTERN_COUNT; k++) {
    if (!act->plan.used[k]) continue;
    const osp_layout *l = &act->plan.layout[k];
    const int64_t shape[3] = {l->rows, l->tokens, c->head_dim / 2};
    OSP_TRY(osp_arena_tensor(a, OSP_F32, 3, shape, &act->rope_cos[k]));
    OSP_TRY(osp_arena_tensor(a, OSP_F32, 3, shape, &act->rope_sin[k]));
  }
  const int64_t scratch = (int64_t)osp_attention_scratch_bytes(act->device);
  return scratch ? osp_arena_tensor(a, OSP_U8, 1, &scratch, &act->attention_scratch) : OSP_OK;
}

/* The clock, once the device has finished what was queued (timed runs only). */
static osp_status timed_now(const activations *act, double *now) {
  OSP_TRY(osp_device_synchronize(act->device));
  *now = osp_seconds();
  return OSP_OK;
}

/* The scratch of osp_attention: NULL where the device needs none. */
static const osp_tensor *attention_scratch(const activations *act) {
  return act->attention_scratch.data ? &act->attention_scratch : NULL;
}

/* The first rows·tokens tokens of a per-token buffer, as [rows, tokens, width]. */
static osp_tensor in_layout(const osp_tensor *buffer, const osp_layout *l) {
  const int64_t shape[3] = {l->rows, l->tokens, buffer->shape[buffer->ndim - 1]};
  return osp_tensor_make(buffer->data, buffer->dtype, buffer->device, 3, shape);
}

/* RoPE tables of every layout the schedule visits, from each slot's natural (t, y, x). */
static osp_status build_rope_tables(const osp_dit *dit, activations *act) {
  for (int k = 0; k < OSP_PATTERN_COUNT; k++) {
    if (!act->plan.used[k]) continue;
    osp_tensor cos, sin;
    const int64_t flat[2] = {act->rope_cos[k].shape[0] * act->rope_cos[k].shape[1], act->rope_cos[k].shape[2]};
    OSP_TRY(osp_tensor_reshape(&act->rope_cos[k], 2, flat, &cos));
    OSP_TRY(osp_tensor_reshape(&act->rope_sin[k], 2, flat, &sin));
    OSP_TRY(osp_rope_tables_at(&act->plan.positions[k], dit->config.head_dim, &cos, &sin));
  }
  return OSP_OK;
}

/* The spare buffer, which holds the residual stream in layout `to` now, becomes x. */
static void take_spare(activations *act, osp_pattern to) {
  const osp_tensor spent = act->x;
  act->x = act->x_spare;
  act->x_spare = spent;
  act->layout = act->plan.layout[to];
}

/* Moves the residual stream into another layout with one gather of its own (pad on entry to the
 * sparse span, switch, crop on exit), into the spare buffer. Only where no block's residual step
 * did it (before the first block, when that one is sparse): see finish_block. */
static osp_status change_layout(activations *act, osp_pattern to) {
  const osp_pattern from = act->layout.pattern;
  if (from == to) return OSP_OK;
  osp_tensor src = in_layout(&act->x, &act->layout), dst = in_layout(&act->x_spare, &act->plan.layout[to]);
  double start = 0, end = 0;
  if (act->timing) OSP_TRY(timed_now(act, &start));
  OSP_TRY(osp_gather_rows(&src, &act->plan.gather[from][to], &dst));
  if (act->timing) OSP_TRY(timed_now(act, &end));
  if (act->timing) act->timing->layout_seconds += end - start;
  take_spare(act, to);
  return OSP_OK;
}

/* Row k of a [B, R, C] table as a strided [B, C] view. */
static osp_tensor table_row(const osp_tensor *table, int k) {
  osp_tensor row = *table;
  row.data = (char *)table->data + (int64_t)k * table->shape[2] * (int64_t)osp_dtype_size(table->dtype);
  row.ndim = 2;
  row.shape[0] = table->shape[0];
  row.shape[1] = table->shape[2];
  row.stride[0] = table->stride[0];
  row.stride[1] = 1;
  return row;
}

/* A [rows, N, C] tensor seen as [rows, N, heads, head_dim]. */
static osp_tensor split_heads(const osp_tensor *t, int heads) {
  int64_t shape[4] = {t->shape[0], t->shape[1], heads, t->shape[2] / heads};
  return osp_tensor_make(t->data, t->dtype, t->device, 4, shape);
}

static osp_status linear(const osp_tensor *x, const osp_linear_params *p, osp_tensor *y) {
  return osp_linear(x, &p->weight, &p->bias, y);
}

/* q or k: projection, then RMSNorm over all heads when the model has qk_norm. */
static osp_status project_normed(const osp_model_config *c, const osp_tensor *x,
                                 const osp_linear_params *p, const osp_tensor *norm, osp_tensor *y) {
  OSP_TRY(linear(x, p, y));
  return c->qk_norm ? osp_rmsnorm(y, norm, c->eps, y) : OSP_OK;
}

/* e = time_out(SiLU(time_in(sinusoid(t)))), e0 = time_projection(SiLU(e)). */
static osp_status embed_time(const osp_dit *dit, const osp_tensor *timestep, activations *act) {
  OSP_TRY(osp_timestep_embedding(timestep, &act->sinusoid));
  OSP_TRY(linear(&act->sinusoid, &dit->time_in, &act->e_hidden));
  OSP_TRY(osp_silu(&act->e_hidden, &act->e_hidden));
  OSP_TRY(linear(&act->e_hidden, &dit->time_out, &act->e));
  OSP_TRY(osp_silu(&act->e, &act->e_hidden));
  osp_tensor e0_flat;
  OSP_TRY(osp_tensor_reshape(&act->e0, 2, (int64_t[]){act->batch, 6 * (int64_t)dit->config.dim}, &e0_flat));
  return linear(&act->e_hidden, &dit->time_projection, &e0_flat);
}

/* context = text_out(GELU_tanh(text_in(text))). */
static osp_status embed_text(const osp_dit *dit, const osp_tensor *text, activations *act) {
  OSP_TRY(linear(text, &dit->text_in, &act->text_hidden));
  OSP_TRY(osp_gelu_tanh(&act->text_hidden, &act->text_hidden));
  return linear(&act->text_hidden, &dit->text_out, &act->context);
}

/* The per-token tensors of one block, viewed in the block's layout: [rows, tokens, ·]. Under
 * Skiparse, rows = P²·B subsequence-major, so the [B, ·] modulation and the [B, L, C] context are
 * shared by the P² rows of each sample without copies (row r belongs to sample r mod B). */
typedef struct {
  osp_tensor x, normed, q, k, v, attended, projected, hidden;
  const osp_tensor *rope_cos, *rope_sin;
  const osp_tensor *key_mask; /* NULL: every key is a real token */
} block_tensors;

static block_tensors block_views(activations *act) {
  const osp_layout *l = &act->layout;
  const osp_pattern k = l->pattern;
  block_tensors t = {
      .x = in_layout(&act->x, l), .normed = in_layout(&act->normed, l), .q = in_layout(&act->q, l),
      .k = in_layout(&act->k, l), .v = in_layout(&act->v, l), .attended = in_layout(&act->attended, l),
      .projected = in_layout(&act->projected, l), .hidden = in_layout(&act->hidden, l),
      .rope_cos = &act->rope_cos[k], .rope_sin = &act->rope_sin[k],
      .key_mask = act->plan.key_mask[k].data ? &act->plan.key_mask[k] : NULL,
  };
  return t;
}

/* q or k of self-attention: projection, RMSNorm over all heads when the model has qk_norm, and
 * RoPE at each token's position (one pass for the last two). */
static osp_status project_rotated(const osp_model_config *c, const osp_tensor *x,
                                  const osp_linear_params *p, const osp_tensor *norm,
                                  const block_tensors *t, osp_tensor *y) {
  OSP_TRY(linear(x, p, y));
  osp_tensor heads = split_heads(y, c->num_heads);
  if (c->qk_norm) return osp_rmsnorm_rope(&heads, norm, c->eps, t->rope_cos, t->rope_sin);
  return osp_rope_apply(&heads, t->rope_cos, t->rope_sin);
}

/* x += SelfAttn(LN(x)·(1 + scale) + shift) · gate, with RoPE on q and k; under Skiparse the
 * attention runs inside each subsequence (a row) with padded keys masked. The residual step also
 * makes the cross-attention's query input, normed = LN_affine(x). */
static osp_status self_attention(const osp_dit *dit, const osp_dit_block *b, activations *act, block_tensors *t) {
  const osp_model_config *c = &dit->config;
  const osp_attention_params *a = &b->self_attn;
  osp_tensor shift = table_row(&act->mod, 0), scale = table_row(&act->mod, 1), gate = table_row(&act->mod, 2);
  OSP_TRY(osp_layernorm_modulate(&t->x, &shift, &scale, c->eps, &t->normed));
  OSP_TRY(project_rotated(c, &t->normed, &a->proj[OSP_Q], &a->norm_q, t, &t->q));
  OSP_TRY(project_rotated(c, &t->normed, &a->proj[OSP_K], &a->norm_k, t, &t->k));
  OSP_TRY(linear(&t->normed, &a->proj[OSP_V], &t->v));
  osp_tensor q = split_heads(&t->q, c->num_heads), k = split_heads(&t->k, c->num_heads);
  osp_tensor v = split_heads(&t->v, c->num_heads), o = split_heads(&t->attended, c->num_heads);
  OSP_TRY(osp_attention(&q, &k, &v, t->key_mask, 1.0f / sqrtf((float)c->head_dim), attention_scratch(act), &o));
  OSP_TRY(linear(&t->attended, &a->proj[OSP_O], &t->projected));
  if (!c->cross_attn_norm) return osp_gated_add(&t->x, &t->projected, &gate);
  return osp_gated_add_layernorm(&t->x, &t->projected, &gate, &b->cross_norm_weight,
                                 &b->cross_norm_bias, NULL, NULL, c->eps, &t->normed);
}

/* x += CrossAttn(LN_affine(x), context): no modulation, no gate, no RoPE, no mask. The residual
 * step also makes the FFN's input, normed = LN(x)·(1 + scale) + shift. */
static osp_status cross_attention(const osp_dit *dit, const osp_dit_block *b, activations *act, block_tensors *t) {
  const osp_model_config *c = &dit->config;
  const osp_attention_params *a = &b->cross_attn;
  const osp_tensor *query_input = c->cross_attn_norm ? &t->normed : &t->x;
  OSP_TRY(project_normed(c, query_input, &a->proj[OSP_Q], &a->norm_q, &t->q));
  OSP_TRY(project_normed(c, &act->context, &a->proj[OSP_K], &a->norm_k, &act->context_k));
  OSP_TRY(linear(&act->context, &a->proj[OSP_V], &act->context_v));
  osp_tensor q = split_heads(&t->q, c->num_heads), o = split_heads(&t->attended, c->num_heads);
  osp_tensor k = split_heads(&act->context_k, c->num_heads), v = split_heads(&act->context_v, c->num_heads);
  OSP_TRY(osp_attention(&q, &k, &v, NULL, 1.0f / sqrtf((float)c->head_dim), attention_scratch(act), &o));
  OSP_TRY(linear(&t->attended, &a->proj[OSP_O], &t->projected));
  osp_tensor shift = table_row(&act->mod, 3), scale = table_row(&act->mod, 4);
  return osp_gated_add_layernorm(&t->x, &t->projected, NULL, NULL, NULL, &shift, &scale, c->eps, &t->normed);
}

/* The block's last residual step, x += projected · gate. Where the next block runs in another
 * layout, the sum goes straight into that layout (the gather of the layout change and the add
 * in one pass), and the spare buffer becomes x. */
static osp_status finish_block(activations *act, block_tensors *t, const osp_tensor *gate, osp_pattern next) {
  const osp_pattern from = act->layout.pattern;
  if (next == from) return osp_gated_add(&t->x, &t->projected, gate);
  osp_tensor dst = in_layout(&act->x_spare, &act->plan.layout[next]);
  OSP_TRY(osp_gated_add_gather(&t->x, &t->projected, gate, &act->plan.gather[from][next], &dst));
  take_spare(act, next);
  return OSP_OK;
}

/* x += FFN(normed) · gate, FFN = Linear → GELU(tanh) → Linear, with normed from cross_attention;
 * the sum lands in the layout of `next`. */
static osp_status feed_forward(const osp_dit *dit, const osp_dit_block *b, activations *act, block_tensors *t,
                               osp_pattern next) {
  osp_tensor gate = table_row(&act->mod, 5);
  OSP_TRY(osp_linear_gelu_tanh(&t->normed, &b->ffn_in.weight, &b->ffn_in.bias, &t->hidden));
  OSP_TRY(linear(&t->hidden, &b->ffn_out, &t->projected));
  return finish_block(act, t, &gate, next);
}

/* The layout block `index` leaves the residual stream in: the next block's, or the natural one
 * for the head. */
static osp_pattern pattern_after(const osp_dit *dit, int index) {
  const osp_model_config *c = &dit->config;
  return index + 1 < c->num_layers ? (osp_pattern)c->schedule[index + 1] : OSP_PATTERN_FULL;
}

/* One block in its scheduled layout: the tokens move only when the pattern changes, inside the
 * residual step of the block before. */
static osp_status run_block(const osp_dit *dit, int index, activations *act) {
  const osp_dit_block *b = &dit->blocks[index];
  OSP_TRY(change_layout(act, (osp_pattern)dit->config.schedule[index]));
  block_tensors t = block_views(act);
  OSP_TRY(osp_add(&b->modulation, &act->e0, &act->mod));
  OSP_TRY(self_attention(dit, b, act, &t));
  OSP_TRY(cross_attention(dit, b, act, &t));
  return feed_forward(dit, b, act, &t, pattern_after(dit, index));
}

/* Head: m = head_modulation + e (rows shift, scale); y = head(LN(x)·(1 + scale) + shift). */
static osp_status run_head(const osp_dit *dit, activations *act) {
  osp_tensor e_row;
  OSP_TRY(osp_tensor_reshape(&act->e, 3, (int64_t[]){act->batch, 1, dit->config.dim}, &e_row));
  OSP_TRY(osp_add(&dit->head_modulation, &e_row, &act->head_mod));
  osp_tensor shift = table_row(&act->head_mod, 0), scale = table_row(&act->head_mod, 1);
  osp_tensor x = in_layout(&act->x, &act->layout), normed = in_layout(&act->normed, &act->layout);
  OSP_TRY(osp_layernorm_modulate(&x, &shift, &scale, dit->config.eps, &normed));
  return linear(&normed, &dit->head, &act->out_tokens);
}

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
  osp_tensor x = in_layout(&act->x, &act->layout);
  OSP_TRY(osp_patchify(&act->latents, c->patch_size, &act->patches));
  OSP_TRY(linear(&act->patches, &dit->patch_embedding, &x));
  OSP_TRY(embed_time(dit, &act->timestep, act));
  OSP_TRY(embed_text(dit, &act->text, act));
  OSP_TRY(build_rope_tables(dit, act));
  for (int i = 0; i < c->num_layers; i++) {
    double start = 0, end = 0;
    if (act->timing) OSP_TRY(timed_now(act, &start));
    OSP_TRY(run_block(dit, i, act));
    if (act->timing) OSP_TRY(timed_now(act, &end));
    if (act->timing) act->timing->block_seconds[i] = end - start;
  }
  OSP_TRY(change_layout(act, OSP_PATTERN_FULL));
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

osp_status osp_dit_forward_timed(const osp_dit *dit, const osp_tensor *latents, const osp_tensor *timestep,
                                 const osp_tensor *context, osp_tensor *velocity, osp_dit_timing *timing) {
  const double start = osp_seconds();
  if (timing) *timing = (osp_dit_timing){0};
  const osp_model_config *c = &dit->config;
  OSP_TRY(osp_dit_check_inputs(dit, latents, timestep, context));
  OSP_TRY(osp_check_shape("velocity", velocity, 5,
                          (int64_t[]){latents->shape[0], c->out_channels, latents->shape[2],
                                      latents->shape[3], latents->shape[4]}));
  activations act = {.batch = latents->shape[0], .text_rows = context->shape[1], .timing = timing,
                     .device = dit->device, .dtype = osp_device_dtype(dit->device)};
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
