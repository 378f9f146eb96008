/* The training forward: the same steps as inference (dit_block.c), with every tensor the backward
 * needs in its own buffer on a tape planned up front. With checkpointing the tape keeps only
 * each block's input, and one record that every block writes (the backward runs the block again). */
#include <stdlib.h>

#include "core/status.h"
#include "model/dit_tape.h"
#include "ops/grad.h"
#include "ops/ops.h"

typedef struct {
  osp_arena *a;
  osp_status status;
} planner;

/* One tensor from the arena; after the first failure, nothing (the status says why). */
static void take(planner *p, osp_tensor *t, osp_dtype dtype, int ndim, const int64_t *shape) {
  if (p->status == OSP_OK) p->status = osp_arena_tensor(p->a, dtype, ndim, shape, t);
}

/* A per-token buffer [slots, width] in the tape's dtype. */
static void tokens(planner *p, const osp_dit_tape *tape, osp_tensor *t, int64_t width) {
  take(p, t, tape->dtype, 2, (int64_t[]){tape->plan.max_slots, width});
}

/* A [B, L, C] buffer in the tape's dtype. */
static void context_sized(planner *p, const osp_dit_tape *tape, const osp_model_config *c, osp_tensor *t) {
  take(p, t, tape->dtype, 3, (int64_t[]){tape->options.batch, tape->options.text_rows, c->dim});
}

/* Ulysses' gathered q, k, v, output and lse of one block, flat, as large as the largest band-split
 * layout needs (the block's layout views them). */
static void plan_ulysses_record(planner *p, const osp_dit_tape *tape, dit_block_record *r) {
  int64_t values = 0, lse = 0;
  for (int k = 0; k < OSP_PATTERN_COUNT; k++) {
    const osp_ulysses *u = &tape->sp.ulysses[k];
    if (!tape->sp.band_split[k]) continue;
    if (u->rows * u->gathered * u->head_width > values) values = u->rows * u->gathered * u->head_width;
    if (u->rows * u->gathered * (u->heads / u->ranks) > lse) lse = u->rows * u->gathered * (u->heads / u->ranks);
  }
  osp_tensor *gathered[4] = {&r->uq, &r->uk, &r->uv, &r->ua};
  for (int i = 0; i < 4 && values; i++) take(p, gathered[i], tape->dtype, 1, &values);
  if (lse) take(p, &r->ulse, OSP_F32, 1, &lse);
}

static void plan_record(planner *p, const osp_dit_tape *tape, const osp_model_config *c, dit_block_record *r) {
  osp_tensor *per_token[] = {&r->n1, &r->q_pre, &r->k_pre, &r->q, &r->k, &r->v, &r->a1, &r->o1, &r->x1,
                             &r->n2, &r->cq_pre, &r->cq, &r->a2, &r->o2, &r->x2, &r->n3, &r->o3};
  for (size_t i = 0; i < sizeof per_token / sizeof per_token[0]; i++) tokens(p, tape, per_token[i], c->dim);
  tokens(p, tape, &r->h_pre, c->ffn_dim);
  tokens(p, tape, &r->h, c->ffn_dim);
  const int64_t lse = tape->plan.max_slots * c->num_heads;
  take(p, &r->lse1, OSP_F32, 1, &lse);
  take(p, &r->lse2, OSP_F32, 1, &lse);
  context_sized(p, tape, c, &r->ck_pre);
  context_sized(p, tape, c, &r->ck);
  context_sized(p, tape, c, &r->cv);
  if (c->quant == OSP_QUANT_HIF8) {
    tokens(p, tape, &r->a1q, c->dim);
    tokens(p, tape, &r->a2q, c->dim);
  }
  if (tape->comm) plan_ulysses_record(p, tape, r);
}

/* What sequence parallelism adds (dit_tape.h). */
static void plan_parallel(planner *p, osp_dit_tape *tape, const osp_model_config *c) {
  const int64_t B = tape->options.batch, N = tape->grid[0] * tape->grid[1] * tape->grid[2];
  const int64_t n = tape->plan.layout[OSP_PATTERN_FULL].tokens;
  const int64_t patch = (int64_t)c->patch_size[0] * c->patch_size[1] * c->patch_size[2];
  const int64_t in = c->in_channels * patch, out = c->out_channels * patch;
  if (p->status == OSP_OK) p->status = osp_sp_allocate(&tape->sp, tape->dtype, c->dim, tape->device != OSP_CPU, p->a);
  take(p, &tape->patches_local, tape->dtype, 3, (int64_t[]){B, n, in});
  take(p, &tape->dpatches_local, tape->dtype, 3, (int64_t[]){B, n, in});
  take(p, &tape->dtokens_local, tape->dtype, 3, (int64_t[]){B, n, out});
  take(p, &tape->tokens_all, tape->dtype, 3, (int64_t[]){B, N, out});
  take(p, &tape->gathered, tape->dtype, 2, (int64_t[]){B * N, in > out ? in : out});
  tokens(p, tape, &tape->x_moving, c->dim);
}

static void plan_forward(planner *p, osp_dit_tape *tape, const osp_model_config *c) {
  const int64_t B = tape->options.batch, N = tape->grid[0] * tape->grid[1] * tape->grid[2], C = c->dim;
  const int64_t patch = (int64_t)c->patch_size[0] * c->patch_size[1] * c->patch_size[2];
  const osp_dtype D = tape->dtype;
  take(p, &tape->latents, D, 5, (int64_t[]){B, c->in_channels, tape->options.frames, tape->options.height, tape->options.width});
  take(p, &tape->timestep, OSP_F32, 1, &B);
  take(p, &tape->text, D, 3, (int64_t[]){B, tape->options.text_rows, c->text_dim});
  take(p, &tape->velocity, OSP_F32, 5, (int64_t[]){B, c->out_channels, tape->options.frames, tape->options.height, tape->options.width});
  take(p, &tape->patches, D, 3, (int64_t[]){B, N, c->in_channels * patch});
  if (c->schedule[0] != OSP_PATTERN_FULL) tokens(p, tape, &tape->embedded, C);
  for (int i = 0; i <= c->num_layers; i++) tokens(p, tape, &tape->inputs[i], C);
  for (int i = 0; i < (tape->options.checkpoint ? 1 : c->num_layers); i++) plan_record(p, tape, c, &tape->records[i]);
  dit_time_tensors *t = &tape->time;
  take(p, &t->sinusoid, D, 2, (int64_t[]){B, c->freq_dim});
  take(p, &t->t_pre, D, 2, (int64_t[]){B, C});
  take(p, &t->t_act, D, 2, (int64_t[]){B, C});
  take(p, &t->e, OSP_F32, 2, (int64_t[]){B, C});
  take(p, &t->e_act, D, 2, (int64_t[]){B, C});
  take(p, &t->e0, OSP_F32, 3, (int64_t[]){B, 6, C});
  context_sized(p, tape, c, &tape->text_embed.c_pre);
  context_sized(p, tape, c, &tape->text_embed.c_act);
  context_sized(p, tape, c, &tape->text_embed.context);
  const int64_t n = tape->plan.layout[OSP_PATTERN_FULL].tokens; /* this rank's natural tokens per sample */
  take(p, &tape->head.head_mod, OSP_F32, 3, (int64_t[]){B, 2, C});
  take(p, &tape->head.normed, D, 3, (int64_t[]){B, n, C});
  tape->head.x = dit_in_layout(&tape->inputs[c->num_layers], &tape->plan.layout[OSP_PATTERN_FULL]);
  take(p, &tape->head.tokens, D, 3, (int64_t[]){B, n, c->out_channels * patch});
  if (tape->comm) plan_parallel(p, tape, c);
  take(p, &tape->mod, OSP_F32, 3, (int64_t[]){B, 6, C});
  if (p->status == OSP_OK) p->status = dit_allocate_rope(p->a, c, &tape->plan, tape->rope_cos, tape->rope_sin);
  const int64_t scratch = (int64_t)osp_attention_scratch_bytes(tape->device);
  if (scratch) take(p, &tape->attention_scratch, OSP_U8, 1, &scratch);
  if (p->status == OSP_OK) p->status = dit_quant_plan(c, tape->dtype, p->a, &tape->quant, &tape->quantized);
}

static void plan_backward(planner *p, osp_dit_tape *tape, const osp_model_config *c) {
  const int64_t B = tape->options.batch, C = c->dim;
  const osp_dtype D = tape->dtype;
  take(p, &tape->dvelocity, OSP_F32, tape->velocity.ndim, tape->velocity.shape);
  take(p, &tape->dlatents, OSP_F32, tape->latents.ndim, tape->latents.shape);
  const int64_t N = tape->grid[0] * tape->grid[1] * tape->grid[2], out = tape->head.tokens.shape[2];
  take(p, &tape->dtokens, D, 3, (int64_t[]){B, N, out}); /* every token's: the inverse of unpatchify */
  take(p, &tape->dpatches, D, 3, tape->patches.shape);
  osp_tensor *per_token[] = {&tape->dx, &tape->dx_spare, &tape->d_o, &tape->dn, &tape->dln, &tape->ln,
                             &tape->da, &tape->dq, &tape->dk, &tape->dv, &tape->dpre};
  for (size_t i = 0; i < sizeof per_token / sizeof per_token[0]; i++) tokens(p, tape, per_token[i], C);
  tokens(p, tape, &tape->dh, c->ffn_dim);
  tokens(p, tape, &tape->dh_pre, c->ffn_dim);
  /* the cross-attention's k and v gradients: per copy of the context under HiF8 (dit_backward.c) */
  int64_t copies = 1;
  for (int k = 0; k < OSP_PATTERN_COUNT && tape->quantized; k++)
    if (tape->plan.used[k] && tape->plan.layout[k].rows / B > copies) copies = tape->plan.layout[k].rows / B;
  const int64_t kv_shape[3] = {copies * B, tape->options.text_rows, C};
  take(p, &tape->dck, D, 3, kv_shape);
  take(p, &tape->dcv, D, 3, kv_shape);
  take(p, &tape->dck_pre, D, 3, kv_shape);
  osp_tensor *context[] = {&tape->dcontext, &tape->dc_act, &tape->dc_pre};
  for (size_t i = 0; i < sizeof context / sizeof context[0]; i++) context_sized(p, tape, c, context[i]);
  take(p, &tape->dmod, OSP_F32, 3, (int64_t[]){B, 6, C});
  take(p, &tape->de0, OSP_F32, 3, (int64_t[]){B, 6, C});
  take(p, &tape->dhead_mod, OSP_F32, 3, (int64_t[]){B, 2, C});
  take(p, &tape->de, OSP_F32, 2, (int64_t[]){B, C});
  take(p, &tape->de_act, D, 2, (int64_t[]){B, C});
  take(p, &tape->dt_act, D, 2, (int64_t[]){B, C});
  take(p, &tape->dt_pre, D, 2, (int64_t[]){B, C});
  take(p, &tape->dtime_cast, OSP_F32, 2, (int64_t[]){B, 6 * C});
  int64_t scratch = 0; /* the most any layout's attentions need (cross-attention has its queries) */
  for (int k = 0; k < OSP_PATTERN_COUNT; k++) {
    const osp_layout *l = &tape->plan.layout[k];
    const int64_t q_shape[4] = {l->rows, l->tokens, c->num_heads, c->head_dim};
    const int64_t bytes = tape->plan.used[k] ? (int64_t)osp_attention_backward_scratch_bytes(tape->device, q_shape) : 0;
    if (bytes > scratch) scratch = bytes;
  }
  if (scratch) take(p, &tape->backward_scratch, OSP_U8, 1, &scratch);
}

/* Makes the plan and every buffer: against measuring arenas first, then against real ones. */
static osp_status plan_tape(const osp_dit *dit, osp_arena *host, osp_arena *a, osp_dit_tape *tape) {
  OSP_TRY(osp_sparse_plan_make(&dit->config, tape->options.batch, tape->grid, host, &tape->plan));
  if (tape->comm) {
    OSP_TRY(osp_sp_plan_make(tape->comm, tape->options.mode, &dit->config, &tape->plan, host, &tape->sp));
    tape->plan = tape->sp.local;
    for (int k = 0; k < OSP_PATTERN_COUNT; k++)
      if (tape->plan.used[k] && tape->sp.samples[k] != tape->options.batch)
        return osp_fail(OSP_ERR_UNSUPPORTED,
                        "training over %d ranks: SSP gives each rank fewer subsequence rows than the batch has "
                        "samples; the backward needs every sample on every rank (use at most P^2 = %d ranks "
                        "for SSP, or --sp ulysses)",
                        tape->sp.ranks, dit->config.sparse_ratio * dit->config.sparse_ratio);
  }
  planner p = {a, OSP_OK};
  if (tape->device != OSP_CPU) p.status = dit_upload_plan(a, &tape->plan);
  plan_forward(&p, tape, &dit->config);
  plan_backward(&p, tape, &dit->config);
  return p.status;
}

static osp_status check_options(const osp_dit *dit, const osp_dit_tape_options *o, int64_t grid[3]) {
  const int64_t sizes[3] = {o->frames, o->height, o->width};
  for (int d = 0; d < 3; d++) {
    if (sizes[d] <= 0 || sizes[d] % dit->config.patch_size[d] != 0)
      return osp_fail(OSP_ERR_SHAPE, "training tape: latent %s %lld is not a positive multiple of the patch size %d",
                      (const char *[]){"frames", "height", "width"}[d], (long long)sizes[d], dit->config.patch_size[d]);
    grid[d] = sizes[d] / dit->config.patch_size[d];
  }
  if (o->batch <= 0 || o->text_rows <= 0)
    return osp_fail(OSP_ERR_SHAPE, "training tape: batch %lld and text rows %lld must be positive",
                    (long long)o->batch, (long long)o->text_rows);
  return OSP_OK;
}

/* Plans the tape against measuring arenas: their peaks are the bytes it needs. */
static osp_status measure_tape(const osp_dit *dit, osp_dit_tape *tape, osp_arena *host, osp_arena *device) {
  const int layers = dit->config.num_layers;
  tape->inputs = calloc((size_t)layers + 1, sizeof *tape->inputs);
  tape->records = calloc((size_t)layers, sizeof *tape->records);
  if (!tape->inputs || !tape->records) return osp_fail(OSP_ERR_MEMORY, "training tape: out of memory");
  *host = osp_arena_measuring("sparse plan");
  *device = osp_arena_measuring("training tape");
  return plan_tape(dit, host, device, tape);
}

static osp_status create(const osp_dit *dit, osp_dit_tape *tape) {
  osp_arena measure_host, measure;
  OSP_TRY(measure_tape(dit, tape, &measure_host, &measure));
  OSP_TRY(osp_arena_init(&tape->host, "sparse plan", measure_host.peak));
  OSP_TRY(osp_device_arena(&tape->arena, "training tape", tape->device, measure.peak));
  return plan_tape(dit, &tape->host, &tape->arena, tape);
}

/* An empty tape for these options (nothing allocated but its tables of blocks). */
static osp_status start_tape(const osp_dit *dit, const osp_dit_tape_options *options, osp_dit_tape **out) {
  *out = NULL;
  int64_t grid[3];
  OSP_TRY(check_options(dit, options, grid));
  osp_dit_tape *tape = calloc(1, sizeof *tape);
  if (!tape) return osp_fail(OSP_ERR_MEMORY, "training tape: out of memory");
  *tape = (osp_dit_tape){.options = *options, .device = dit->device, .dtype = osp_device_dtype(dit->device),
                         .comm = options->sequence && osp_comm_size(options->sequence) > 1 ? options->sequence : NULL};
  for (int d = 0; d < 3; d++) tape->grid[d] = grid[d];
  *out = tape;
  return OSP_OK;
}

osp_status osp_dit_tape_create(const osp_dit *dit, const osp_dit_tape_options *options, osp_dit_tape **out) {
  osp_dit_tape *tape;
  OSP_TRY(start_tape(dit, options, &tape));
  osp_status status = create(dit, tape);
  if (status != OSP_OK) {
    osp_dit_tape_free(tape);
    return status;
  }
  *out = tape;
  return OSP_OK;
}

osp_status osp_dit_tape_measure(const osp_dit *dit, const osp_dit_tape_options *options, size_t *bytes) {
  osp_dit_tape *tape;
  osp_arena host, device;
  OSP_TRY(start_tape(dit, options, &tape));
  osp_status status = measure_tape(dit, tape, &host, &device);
  *bytes = status == OSP_OK ? osp_arena_align(device.peak) : 0;
  osp_dit_tape_free(tape);
  return status;
}

size_t osp_dit_tape_bytes(const osp_dit_tape *tape) { return tape->arena.size; }

void osp_dit_tape_free(osp_dit_tape *tape) {
  if (!tape) return;
  osp_arena_free(&tape->arena);
  osp_arena_free(&tape->host);
  free(tape->inputs);
  free(tape->records);
  free(tape);
}

/* A [slots·heads] log-sum-exp buffer as [rows, heads, tokens] of a layout. */
static osp_tensor lse_in_layout(const osp_tensor *buffer, const osp_layout *l, int heads) {
  return osp_tensor_make(buffer->data, OSP_F32, buffer->device, 3, (int64_t[]){l->rows, heads, l->tokens});
}

/* The record's Ulysses buffers as the gathered tensors of this layout's attention. */
static const osp_ulysses_gathered *kept_views(osp_dit_tape *tape, const dit_block_record *r, const osp_ulysses *u) {
  const int64_t heads = u->heads / u->ranks, shape[4] = {u->rows, u->gathered, heads, u->head_width / heads};
  const osp_tensor *flat[4] = {&r->uq, &r->uk, &r->uv, &r->ua};
  osp_tensor *view[4] = {&tape->kept.q, &tape->kept.k, &tape->kept.v, &tape->kept.out};
  for (int i = 0; i < 4; i++) *view[i] = osp_tensor_make(flat[i]->data, flat[i]->dtype, flat[i]->device, 4, shape);
  tape->kept.lse = osp_tensor_make(r->ulse.data, OSP_F32, r->ulse.device, 3, (int64_t[]){u->rows, heads, u->gathered});
  return &tape->kept;
}

dit_block_tensors dit_tape_block(osp_dit_tape *tape, const osp_dit *dit, int index) {
  const osp_model_config *c = &dit->config;
  const osp_pattern k = (osp_pattern)c->schedule[index], next = dit_pattern_after(c, index);
  const osp_layout *l = &tape->plan.layout[k];
  dit_block_record *r = &tape->records[tape->options.checkpoint ? 0 : index];
  /* where the layout change after the block leaves the rank, the block writes x_moving first */
  const bool moves_between_ranks = next != k && !tape->plan.gather[k][next].ndim;
  dit_block_tensors t = {
      .x_in = dit_in_layout(&tape->inputs[index], l), .n1 = dit_in_layout(&r->n1, l),
      .q_pre = dit_in_layout(&r->q_pre, l), .k_pre = dit_in_layout(&r->k_pre, l), .q = dit_in_layout(&r->q, l),
      .k = dit_in_layout(&r->k, l), .v = dit_in_layout(&r->v, l), .a1 = dit_in_layout(&r->a1, l),
      .lse1 = lse_in_layout(&r->lse1, l, c->num_heads), .o1 = dit_in_layout(&r->o1, l),
      .a1q = dit_in_layout(r->a1q.data ? &r->a1q : &r->a1, l), .a2q = dit_in_layout(r->a2q.data ? &r->a2q : &r->a2, l),
      .x1 = dit_in_layout(&r->x1, l), .n2 = dit_in_layout(&r->n2, l), .cq_pre = dit_in_layout(&r->cq_pre, l),
      .cq = dit_in_layout(&r->cq, l), .a2 = dit_in_layout(&r->a2, l),
      .lse2 = lse_in_layout(&r->lse2, l, c->num_heads), .o2 = dit_in_layout(&r->o2, l),
      .x2 = dit_in_layout(&r->x2, l), .n3 = dit_in_layout(&r->n3, l), .h_pre = dit_in_layout(&r->h_pre, l),
      .h = dit_in_layout(&r->h, l), .o3 = dit_in_layout(&r->o3, l),
      .x_out = moves_between_ranks ? dit_in_layout(&tape->x_moving, l)
                                   : dit_in_layout(&tape->inputs[index + 1], &tape->plan.layout[next]),
      .ck_pre = r->ck_pre, .ck = r->ck, .cv = r->cv, .mod = tape->mod, .context = &tape->text_embed.context,
      .rope_cos = &tape->rope_cos[k], .rope_sin = &tape->rope_sin[k],
      .key_mask = tape->plan.key_mask[k].data ? &tape->plan.key_mask[k] : NULL,
      .to_next = next == k || moves_between_ranks ? NULL : &tape->plan.gather[k][next],
      .scratch = tape->attention_scratch.data ? &tape->attention_scratch : NULL,
      .quant = tape->quantized ? &tape->quant : NULL,
  };
  if (tape->comm && tape->sp.band_split[k]) {
    t.ulysses = &tape->sp.ulysses[k];
    t.comm = tape->comm;
    t.ulysses_kept = kept_views(tape, r, &tape->sp.ulysses[k]);
  }
  return t;
}

static osp_status check_input(const char *what, const osp_tensor *given, const osp_tensor *planned) {
  return osp_check_shape(what, given, planned->ndim, planned->shape);
}

osp_status osp_dit_forward_train(const osp_dit *dit, osp_dit_tape *tape, const osp_tensor *latents,
                                 const osp_tensor *timestep, const osp_tensor *context, osp_tensor *velocity) {
  const osp_model_config *c = &dit->config;
  OSP_TRY(osp_dit_check_inputs(dit, latents, timestep, context));
  OSP_TRY(check_input("latents (the training tape's shape)", latents, &tape->latents));
  OSP_TRY(check_input("context (the training tape's shape)", context, &tape->text));
  OSP_TRY(check_input("velocity", velocity, &tape->velocity));
  OSP_TRY(osp_copy(latents, &tape->latents));
  OSP_TRY(osp_copy(timestep, &tape->timestep));
  OSP_TRY(osp_copy(context, &tape->text));
  const osp_pattern first = (osp_pattern)c->schedule[0];
  const osp_layout *natural = &tape->plan.layout[OSP_PATTERN_FULL];
  osp_tensor embedded = dit_in_layout(first == OSP_PATTERN_FULL ? &tape->inputs[0] : &tape->embedded, natural);
  OSP_TRY(osp_patchify(&tape->latents, c->patch_size, &tape->patches));
  osp_tensor patches = tape->patches; /* this rank's: all of them on one rank */
  if (tape->comm) {
    patches = tape->patches_local;
    OSP_TRY(osp_gather_rows(&tape->patches, &tape->sp.natural_order, &patches));
  }
  OSP_TRY(osp_linear(&patches, &dit->patch_embedding.weight, &dit->patch_embedding.bias, &embedded));
  if (first != OSP_PATTERN_FULL) {
    osp_tensor x0 = dit_in_layout(&tape->inputs[0], &tape->plan.layout[first]);
    OSP_TRY(dit_change_layout(&tape->plan, &tape->sp, OSP_PATTERN_FULL, first, &embedded, &x0));
  }
  OSP_TRY(dit_embed_time(dit, &tape->timestep, &tape->time));
  OSP_TRY(dit_embed_text(dit, &tape->text, &tape->text_embed));
  /* the cross-attention's k and v of every block read the context: quantized once */
  OSP_TRY(dit_quant_linear_input(tape->quantized ? &tape->quant : NULL, &tape->text_embed.context));
  OSP_TRY(dit_rope_tables(dit, &tape->plan, tape->rope_cos, tape->rope_sin));
  for (int i = 0; i < c->num_layers; i++) {
    dit_block_tensors t = dit_tape_block(tape, dit, i);
    OSP_TRY(dit_block_forward(dit, i, &tape->time.e0, &t));
    const osp_pattern k = (osp_pattern)c->schedule[i], next = dit_pattern_after(c, i);
    if (t.x_out.data == tape->x_moving.data) {
      osp_tensor x_next = dit_in_layout(&tape->inputs[i + 1], &tape->plan.layout[next]);
      OSP_TRY(dit_change_layout(&tape->plan, &tape->sp, k, next, &t.x_out, &x_next));
    }
  }
  OSP_TRY(dit_head_forward(dit, &tape->time.e, &tape->head));
  const osp_tensor *tokens = &tape->head.tokens;
  if (tape->comm) {
    OSP_TRY(osp_sp_gather_natural(&tape->sp, &tape->head.tokens, &tape->gathered, &tape->tokens_all));
    tokens = &tape->tokens_all;
  }
  OSP_TRY(osp_unpatchify(tokens, c->patch_size, &tape->velocity));
  OSP_TRY(osp_copy(&tape->velocity, velocity));
  return osp_device_synchronize(tape->device);
}
