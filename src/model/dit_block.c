/* The steps of the DiT forward (PAPER.md 1.2–1.7), written once for inference and training:
 * each works on the tensors dit_internal.h describes, which the caller lays out. */
#include <math.h>

#include "core/status.h"
#include "model/dit_internal.h"
#include "ops/grad.h"
#include "ops/ops.h"

osp_tensor dit_in_layout(const osp_tensor *buffer, const osp_layout *l) {
  const int64_t shape[3] = {l->rows, l->tokens, buffer->shape[buffer->ndim - 1]};
  return osp_tensor_make(buffer->data, buffer->dtype, buffer->device, 3, shape);
}

osp_tensor dit_table_row(const osp_tensor *table, int k) {
  osp_tensor row = *table;
  row.data = (char *)table->data + (int64_t)k * table->shape[2] * (int64_t)osp_dtype_size(table->dtype);
  row.ndim = 2;
  row.shape[0] = table->shape[0];
  row.shape[1] = table->shape[2];
  row.stride[0] = table->stride[0];
  row.stride[1] = 1;
  return row;
}

osp_tensor dit_split_heads(const osp_tensor *t, int heads) {
  int64_t shape[4] = {t->shape[0], t->shape[1], heads, t->shape[2] / heads};
  return osp_tensor_make(t->data, t->dtype, t->device, 4, shape);
}

osp_status dit_e0_flat(const osp_tensor *e0, osp_tensor *flat) {
  return osp_tensor_reshape(e0, 2, (int64_t[]){e0->shape[0], e0->shape[1] * e0->shape[2]}, flat);
}

osp_pattern dit_pattern_after(const osp_model_config *c, int index) {
  return index + 1 < c->num_layers ? (osp_pattern)c->schedule[index + 1] : OSP_PATTERN_FULL;
}

osp_status dit_change_layout(const osp_sparse_plan *plan, const osp_sp_plan *sp, osp_pattern from, osp_pattern to,
                             const osp_tensor *x, osp_tensor *x_next) {
  if (plan->gather[from][to].ndim) return osp_gather_rows(x, &plan->gather[from][to], x_next);
  return osp_sp_change_layout(sp, from, to, x, x_next);
}

osp_status dit_upload_plan(osp_arena *a, osp_sparse_plan *plan) {
  for (int k = 0; k < OSP_PATTERN_COUNT; k++) {
    OSP_TRY(osp_arena_upload(a, &plan->positions[k]));
    OSP_TRY(osp_arena_upload(a, &plan->key_mask[k]));
    for (int to = 0; to < OSP_PATTERN_COUNT; to++) OSP_TRY(osp_arena_upload(a, &plan->gather[k][to]));
  }
  return OSP_OK;
}

osp_status dit_allocate_rope(osp_arena *a, const osp_model_config *c, const osp_sparse_plan *plan,
                             osp_tensor *cos, osp_tensor *sin) {
  for (int k = 0; k < OSP_PATTERN_COUNT; k++) {
    if (!plan->used[k]) continue;
    const osp_layout *l = &plan->layout[k];
    const int64_t shape[3] = {l->rows, l->tokens, c->head_dim / 2};
    OSP_TRY(osp_arena_tensor(a, OSP_F32, 3, shape, &cos[k]));
    OSP_TRY(osp_arena_tensor(a, OSP_F32, 3, shape, &sin[k]));
  }
  return OSP_OK;
}

osp_status dit_rope_tables(const osp_dit *dit, const osp_sparse_plan *plan, osp_tensor *cos,
                           osp_tensor *sin) {
  for (int k = 0; k < OSP_PATTERN_COUNT; k++) {
    if (!plan->used[k]) continue;
    osp_tensor c, s;
    const int64_t flat[2] = {cos[k].shape[0] * cos[k].shape[1], cos[k].shape[2]};
    OSP_TRY(osp_tensor_reshape(&cos[k], 2, flat, &c));
    OSP_TRY(osp_tensor_reshape(&sin[k], 2, flat, &s));
    OSP_TRY(osp_rope_tables_at(&plan->positions[k], dit->config.head_dim, &c, &s));
  }
  return OSP_OK;
}

static osp_status linear(const osp_tensor *x, const osp_linear_params *p, osp_tensor *y) {
  return osp_linear(x, &p->weight, &p->bias, y);
}

/* `to` starts as a copy of `from`, unless they are one buffer (an in-place step of inference). */
static osp_status start_from(const osp_tensor *from, osp_tensor *to) {
  return from->data == to->data ? OSP_OK : osp_copy(from, to);
}

osp_status dit_embed_time(const osp_dit *dit, const osp_tensor *timestep, dit_time_tensors *t) {
  osp_tensor e0_flat;
  OSP_TRY(osp_timestep_embedding(timestep, &t->sinusoid));
  OSP_TRY(linear(&t->sinusoid, &dit->time_in, &t->t_pre));
  OSP_TRY(osp_silu(&t->t_pre, &t->t_act));
  OSP_TRY(linear(&t->t_act, &dit->time_out, &t->e));
  OSP_TRY(osp_silu(&t->e, &t->e_act));
  OSP_TRY(dit_e0_flat(&t->e0, &e0_flat));
  return linear(&t->e_act, &dit->time_projection, &e0_flat);
}

osp_status dit_embed_text(const osp_dit *dit, const osp_tensor *text, dit_text_tensors *t) {
  OSP_TRY(linear(text, &dit->text_in, &t->c_pre));
  OSP_TRY(osp_gelu_tanh(&t->c_pre, &t->c_act));
  return linear(&t->c_act, &dit->text_out, &t->context);
}

/* An attention over [rows, tokens, C] views split into heads, keeping the log-sum-exp where lse
 * has data. */
static osp_status attend(const osp_model_config *c, const osp_tensor *q, const osp_tensor *k,
                         const osp_tensor *v, const osp_tensor *key_mask, const osp_tensor *scratch,
                         osp_tensor *out, osp_tensor *lse) {
  osp_tensor qh = dit_split_heads(q, c->num_heads), kh = dit_split_heads(k, c->num_heads);
  osp_tensor vh = dit_split_heads(v, c->num_heads), oh = dit_split_heads(out, c->num_heads);
  const float scale = 1.0f / sqrtf((float)c->head_dim);
  if (!lse->data) return osp_attention(&qh, &kh, &vh, key_mask, scale, scratch, &oh);
  return osp_attention_forward_lse(&qh, &kh, &vh, key_mask, scale, scratch, &oh, lse);
}

/* Self-attention over every rank's tokens of this one's heads/ranks heads (Ulysses); training
 * keeps the gathered tensors and the log-sum-exp. */
static osp_status attend_ulysses(const osp_model_config *c, dit_block_tensors *t) {
  osp_tensor qh = dit_split_heads(&t->q, c->num_heads), kh = dit_split_heads(&t->k, c->num_heads);
  osp_tensor vh = dit_split_heads(&t->v, c->num_heads), oh = dit_split_heads(&t->a1, c->num_heads);
  const float hif8_max = t->quant && t->quant->attention ? t->quant->forward_max : 0.0f;
  return osp_ulysses_attention(t->comm, t->ulysses, &qh, &kh, &vh, 1.0f / sqrtf((float)c->head_dim), hif8_max, t->scratch,
                               t->ulysses_kept, &oh);
}

/* y = x·Wᵀ + b for one of a block's ten linears, with the weight quantized under HiF8 (the
 * input was quantized by the step that made it). */
static osp_status block_linear(const dit_block_tensors *t, const osp_tensor *x, const osp_linear_params *p,
                               osp_tensor *y) {
  osp_linear_params used;
  OSP_TRY(dit_quant_weight(t->quant, p, &used));
  return linear(x, &used, y);
}

/* q or k of self-attention: projection, RMSNorm over all heads when the model has qk_norm, and
 * RoPE at each token's position (one pass for the last two); then quantized for attention. */
static osp_status project_rotated(const osp_model_config *c, const osp_tensor *x, const osp_linear_params *p,
                                  const osp_tensor *norm, const dit_block_tensors *t, osp_tensor *pre,
                                  osp_tensor *y) {
  OSP_TRY(block_linear(t, x, p, pre));
  OSP_TRY(start_from(pre, y));
  osp_tensor heads = dit_split_heads(y, c->num_heads);
  if (c->qk_norm) OSP_TRY(osp_rmsnorm_rope(&heads, norm, c->eps, t->rope_cos, t->rope_sin));
  else OSP_TRY(osp_rope_apply(&heads, t->rope_cos, t->rope_sin));
  return t->ulysses ? OSP_OK : dit_quant_attention_input(t->quant, y); /* Ulysses: after the exchange */
}

/* q or k of cross-attention: projection, then RMSNorm over all heads when the model has qk_norm;
 * then quantized for attention. */
static osp_status project_normed(const osp_model_config *c, const dit_block_tensors *t, const osp_tensor *x,
                                 const osp_linear_params *p, const osp_tensor *norm, osp_tensor *pre,
                                 osp_tensor *y) {
  OSP_TRY(block_linear(t, x, p, pre));
  if (c->qk_norm) OSP_TRY(osp_rmsnorm(pre, norm, c->eps, y));
  else OSP_TRY(start_from(pre, y));
  return dit_quant_attention_input(t->quant, y);
}

/* v: the projection, quantized for attention. */
static osp_status project_value(const dit_block_tensors *t, const osp_tensor *x, const osp_linear_params *p,
                                osp_tensor *v) {
  OSP_TRY(block_linear(t, x, p, v));
  return dit_quant_attention_input(t->quant, v);
}

/* The o projection of an attention's output: attended (quantized into `input` under HiF8; in place
 * where they are one buffer). */
static osp_status project_output(const dit_block_tensors *t, const osp_tensor *attended, osp_tensor *input,
                                 const osp_linear_params *p, osp_tensor *y) {
  OSP_TRY(start_from(attended, input));
  OSP_TRY(dit_quant_linear_input(t->quant, input));
  return block_linear(t, input, p, y);
}

/* x1 = x_in + SelfAttn(n1)·gate, n1 = LN(x_in)·(1 + scale) + shift, with RoPE on q and k; under
 * Skiparse the attention runs inside each subsequence (a row) with padded keys masked. The
 * residual step also makes n2 = LN_affine(x1), the cross-attention's query input. */
static osp_status self_attention(const osp_dit *dit, const osp_dit_block *b, dit_block_tensors *t) {
  const osp_model_config *c = &dit->config;
  const osp_attention_params *a = &b->self_attn;
  osp_tensor shift = dit_table_row(&t->mod, 0), scale = dit_table_row(&t->mod, 1), gate = dit_table_row(&t->mod, 2);
  OSP_TRY(osp_layernorm_modulate(&t->x_in, &shift, &scale, c->eps, &t->n1));
  OSP_TRY(dit_quant_linear_input(t->quant, &t->n1));
  OSP_TRY(project_rotated(c, &t->n1, &a->proj[OSP_Q], &a->norm_q, t, &t->q_pre, &t->q));
  OSP_TRY(project_rotated(c, &t->n1, &a->proj[OSP_K], &a->norm_k, t, &t->k_pre, &t->k));
  OSP_TRY(block_linear(t, &t->n1, &a->proj[OSP_V], &t->v));
  if (!t->ulysses) OSP_TRY(dit_quant_attention_input(t->quant, &t->v)); /* Ulysses: after the exchange */
  if (t->ulysses) OSP_TRY(attend_ulysses(c, t));
  else OSP_TRY(attend(c, &t->q, &t->k, &t->v, t->key_mask, t->scratch, &t->a1, &t->lse1));
  OSP_TRY(project_output(t, &t->a1, &t->a1q, &a->proj[OSP_O], &t->o1));
  OSP_TRY(start_from(&t->x_in, &t->x1));
  if (!c->cross_attn_norm) return osp_gated_add(&t->x1, &t->o1, &gate);
  OSP_TRY(osp_gated_add_layernorm(&t->x1, &t->o1, &gate, &b->cross_norm_weight, &b->cross_norm_bias, NULL,
                                 NULL, c->eps, &t->n2));
  return dit_quant_linear_input(t->quant, &t->n2);
}

/* x2 = x1 + CrossAttn(n2, context): no modulation, no gate, no RoPE, no mask. The residual step
 * also makes the FFN's input, n3 = LN(x2)·(1 + scale) + shift. */
static osp_status cross_attention(const osp_dit *dit, const osp_dit_block *b, dit_block_tensors *t) {
  const osp_model_config *c = &dit->config;
  const osp_attention_params *a = &b->cross_attn;
  const osp_tensor *query_input = c->cross_attn_norm ? &t->n2 : &t->x1;
  OSP_TRY(project_normed(c, t, query_input, &a->proj[OSP_Q], &a->norm_q, &t->cq_pre, &t->cq));
  OSP_TRY(project_normed(c, t, t->context, &a->proj[OSP_K], &a->norm_k, &t->ck_pre, &t->ck));
  OSP_TRY(project_value(t, t->context, &a->proj[OSP_V], &t->cv));
  OSP_TRY(attend(c, &t->cq, &t->ck, &t->cv, NULL, t->scratch, &t->a2, &t->lse2));
  OSP_TRY(project_output(t, &t->a2, &t->a2q, &a->proj[OSP_O], &t->o2));
  OSP_TRY(start_from(&t->x1, &t->x2));
  osp_tensor shift = dit_table_row(&t->mod, 3), scale = dit_table_row(&t->mod, 4);
  OSP_TRY(osp_gated_add_layernorm(&t->x2, &t->o2, NULL, NULL, NULL, &shift, &scale, c->eps, &t->n3));
  return dit_quant_linear_input(t->quant, &t->n3);
}

/* x_out = gather_to_next(x2 + FFN(n3)·gate), FFN = Linear → GELU(tanh) → Linear. Where the next
 * block runs in another layout, the add and the gather are one pass (x2 is left as it was). */
static osp_status feed_forward(const osp_dit *dit, const osp_dit_block *b, dit_block_tensors *t) {
  osp_tensor gate = dit_table_row(&t->mod, 5);
  osp_linear_params ffn_in;
  OSP_TRY(dit_quant_weight(t->quant, &b->ffn_in, &ffn_in));
  if (t->h_pre.data == t->h.data) {
    OSP_TRY(osp_linear_gelu_tanh(&t->n3, &ffn_in.weight, &ffn_in.bias, &t->h));
  } else {
    OSP_TRY(linear(&t->n3, &ffn_in, &t->h_pre));
    OSP_TRY(osp_gelu_tanh(&t->h_pre, &t->h));
  }
  OSP_TRY(dit_quant_linear_input(t->quant, &t->h));
  OSP_TRY(block_linear(t, &t->h, &b->ffn_out, &t->o3));
  if (t->to_next) return osp_gated_add_gather(&t->x2, &t->o3, &gate, t->to_next, &t->x_out);
  OSP_TRY(start_from(&t->x2, &t->x_out));
  return osp_gated_add(&t->x_out, &t->o3, &gate);
}

osp_status dit_block_forward(const osp_dit *dit, int index, const osp_tensor *e0, dit_block_tensors *t) {
  const osp_dit_block *b = &dit->blocks[index];
  OSP_TRY(osp_add(&b->modulation, e0, &t->mod));
  OSP_TRY(self_attention(dit, b, t));
  OSP_TRY(cross_attention(dit, b, t));
  return feed_forward(dit, b, t);
}

osp_status dit_head_forward(const osp_dit *dit, const osp_tensor *e, dit_head_tensors *t) {
  osp_tensor e_row;
  OSP_TRY(osp_tensor_reshape(e, 3, (int64_t[]){e->shape[0], 1, dit->config.dim}, &e_row));
  OSP_TRY(osp_add(&dit->head_modulation, &e_row, &t->head_mod));
  osp_tensor shift = dit_table_row(&t->head_mod, 0), scale = dit_table_row(&t->head_mod, 1);
  OSP_TRY(osp_layernorm_modulate(&t->x, &shift, &scale, dit->config.eps, &t->normed));
  return linear(&t->normed, &dit->head, &t->tokens);
}
