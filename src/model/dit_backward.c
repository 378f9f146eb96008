/* The DiT's backward: the forward's steps (dit_internal.h) in reverse, each through the backward
 * of its ops (ops/grad.h), reading the tape the training forward left. dx carries ∂loss/∂x of the
 * residual stream from the head down to the patch embedding; every residual step adds its
 * branch's gradient to it. Parameter gradients accumulate into `grads`, a DiT of f32 zeros. */
#include <math.h>
#include <stdlib.h>

#include "core/status.h"
#include "model/dit_tape.h"
#include "ops/grad.h"
#include "ops/ops.h"

/* dy = x·wᵀ + b: dx (+=, NULL: not wanted), and the parameters' gradients. */
static osp_status linear_backward(const osp_tensor *x, const osp_linear_params *p, const osp_tensor *dy,
                                  osp_tensor *dx, osp_linear_params *g) {
  return osp_linear_backward(x, &p->weight, dy, dx, &g->weight, &g->bias);
}

/* One of a block's ten linears under HiF8: the output gradient dy quantized in place, then the
 * backward through the quantized weight and the (saved, quantized) input x; the weight's gradient
 * reaches the weight unchanged (straight-through). */
static osp_status block_linear_backward(const dit_block_tensors *t, const osp_tensor *x, const osp_linear_params *p,
                                        osp_tensor *dy, osp_tensor *dx, osp_linear_params *g) {
  osp_linear_params used;
  OSP_TRY(dit_quant_linear_gradient(t->quant, dy));
  OSP_TRY(dit_quant_weight(t->quant, p, &used));
  return linear_backward(x, &used, dy, dx, g);
}

/* dq, dk, dv quantized in place as they leave the attention's backward. */
static osp_status quantize_attention_gradients(const dit_block_tensors *t, osp_tensor *dq, osp_tensor *dk,
                                               osp_tensor *dv) {
  OSP_TRY(dit_quant_attention_gradient(t->quant, dq));
  OSP_TRY(dit_quant_attention_gradient(t->quant, dk));
  return dit_quant_attention_gradient(t->quant, dv);
}

/* A buffer's gradient starts at zero: `d` viewed like `like` (the first elements of d's buffer). */
static osp_status zeroed(const osp_tensor *buffer, const osp_tensor *like, osp_tensor *d) {
  *d = osp_tensor_make(buffer->data, buffer->dtype, buffer->device, like->ndim, like->shape);
  return osp_zero(d);
}

/* normed = LN(x)·(1 + scale) + shift (no affine): dx += ∂/∂x, dshift, dscale += theirs. LN(x)
 * is recomputed into ln. */
static osp_status layernorm_modulate_backward(osp_dit_tape *tape, float eps, const osp_tensor *x,
                                              const osp_tensor *scale, const osp_tensor *dnormed,
                                              osp_tensor *dx, osp_tensor *dshift, osp_tensor *dscale) {
  osp_tensor ln = osp_tensor_make(tape->ln.data, tape->dtype, tape->device, x->ndim, x->shape), dln;
  OSP_TRY(osp_layernorm(x, NULL, NULL, eps, &ln));
  OSP_TRY(zeroed(&tape->dln, x, &dln));
  OSP_TRY(osp_modulate_backward(&ln, scale, dnormed, &dln, dshift, dscale));
  return osp_layernorm_backward(x, NULL, eps, &dln, dx, NULL, NULL);
}

/* out = Attn(q, k, v): dq, dk, dv (zeroed here) from dout, over [rows, tokens, C] views. */
static osp_status attention_backward(const osp_dit_tape *tape, const osp_model_config *c, const osp_tensor *q,
                                     const osp_tensor *k, const osp_tensor *v, const osp_tensor *key_mask,
                                     const osp_tensor *out, const osp_tensor *lse, const osp_tensor *dout,
                                     osp_tensor *dq, osp_tensor *dk, osp_tensor *dv) {
  OSP_TRY(osp_zero(dq));
  OSP_TRY(osp_zero(dk));
  OSP_TRY(osp_zero(dv));
  const int h = c->num_heads;
  osp_tensor qh = dit_split_heads(q, h), kh = dit_split_heads(k, h), vh = dit_split_heads(v, h);
  osp_tensor oh = dit_split_heads(out, h), doh = dit_split_heads(dout, h);
  osp_tensor dqh = dit_split_heads(dq, h), dkh = dit_split_heads(dk, h), dvh = dit_split_heads(dv, h);
  const osp_tensor *scratch = tape->backward_scratch.data ? &tape->backward_scratch : NULL;
  return osp_attention_backward(&qh, &kh, &vh, key_mask, 1.0f / sqrtf((float)c->head_dim), &oh, lse, &doh,
                                scratch, &dqh, &dkh, &dvh);
}

/* The views of one block's backward buffers in its layout. */
typedef struct {
  osp_tensor dx, d_o, dh, dh_pre, dn, da, dq, dk, dv, dpre;
} block_gradients;

static block_gradients block_gradient_views(const osp_dit_tape *tape, const osp_layout *l) {
  block_gradients g = {
      .dx = dit_in_layout(&tape->dx, l), .d_o = dit_in_layout(&tape->d_o, l), .dh = dit_in_layout(&tape->dh, l),
      .dh_pre = dit_in_layout(&tape->dh_pre, l), .dn = dit_in_layout(&tape->dn, l),
      .da = dit_in_layout(&tape->da, l), .dq = dit_in_layout(&tape->dq, l), .dk = dit_in_layout(&tape->dk, l),
      .dv = dit_in_layout(&tape->dv, l), .dpre = dit_in_layout(&tape->dpre, l),
  };
  return g;
}

/* x_out = gather(x2 + o3·gate), o3 = GELU(n3·W_in)·W_out, n3 = LN(x2)·(1 + mod4) + mod3:
 * dx holds ∂/∂x2 afterwards. */
static osp_status feed_forward_backward(osp_dit_tape *tape, const osp_dit *dit, const osp_dit_block *b,
                                        osp_dit_block *gb, const dit_block_tensors *t, block_gradients *g) {
  osp_tensor gate = dit_table_row(&t->mod, 5), dgate = dit_table_row(&tape->dmod, 5);
  OSP_TRY(osp_zero(&g->d_o));
  OSP_TRY(osp_gated_add_backward(&g->dx, &t->o3, &gate, &g->d_o, &dgate));
  OSP_TRY(osp_zero(&g->dh));
  OSP_TRY(block_linear_backward(t, &t->h, &b->ffn_out, &g->d_o, &g->dh, &gb->ffn_out));
  OSP_TRY(osp_zero(&g->dh_pre));
  OSP_TRY(osp_gelu_tanh_backward(&t->h_pre, &g->dh, &g->dh_pre));
  OSP_TRY(osp_zero(&g->dn));
  OSP_TRY(block_linear_backward(t, &t->n3, &b->ffn_in, &g->dh_pre, &g->dn, &gb->ffn_in));
  osp_tensor scale = dit_table_row(&t->mod, 4);
  osp_tensor dshift = dit_table_row(&tape->dmod, 3), dscale = dit_table_row(&tape->dmod, 4);
  return layernorm_modulate_backward(tape, dit->config.eps, &t->x2, &scale, &g->dn, &g->dx, &dshift, &dscale);
}

/* q (or k) = RMSNorm(pre) (qk_norm): ∂/∂pre into dpre; without the norm, dpre is dq itself. */
static osp_status unnorm(const osp_model_config *c, const osp_tensor *pre, const osp_tensor *norm,
                         osp_tensor *dnorm, osp_tensor *dq, osp_tensor *dpre, osp_tensor **dpre_out) {
  if (!c->qk_norm) {
    *dpre_out = dq;
    return OSP_OK;
  }
  OSP_TRY(osp_zero(dpre));
  *dpre_out = dpre;
  return osp_rmsnorm_backward(pre, norm, c->eps, dq, dpre, dnorm);
}

/* How many copies of the context the reference's cross-attention sees: under Skiparse a block's
 * rows are the S = rows/B subsequences of the batch, and OSP-Next repeats the context S times
 * before the k and v projections (PAPER.md 5.1). Under HiF8 their gradients are quantized over
 * all S copies [S·B, L, C] before they add up, so the backward keeps each copy's; unquantized, the
 * attention's backward sums them at once (1 copy). */
static int64_t context_copies(const dit_block_tensors *t) {
  return t->quant ? t->cq.shape[0] / t->ck.shape[0] : 1;
}

/* A [copies·B, L, C] view of a context-gradient buffer, `like` [B, L, C]. */
static osp_tensor copies_view(const osp_tensor *buffer, int64_t copies, const osp_tensor *like) {
  const int64_t shape[3] = {copies * like->shape[0], like->shape[1], like->shape[2]};
  return osp_tensor_make(buffer->data, buffer->dtype, buffer->device, 3, shape);
}

/* k or v = context·Wᵀ + b over `copies` copies of the context: dy [copies·B, L, C] quantized as
 * one tensor, then each copy's backward adds into dcontext and the parameters' gradients. */
static osp_status context_linear_backward(const dit_block_tensors *t, const osp_linear_params *p, osp_tensor *dy,
                                          int64_t copies, osp_tensor *dcontext, osp_linear_params *g) {
  const int64_t B = t->context->shape[0];
  osp_linear_params used;
  OSP_TRY(dit_quant_linear_gradient(t->quant, dy));
  OSP_TRY(dit_quant_weight(t->quant, p, &used));
  for (int64_t s = 0; s < copies; s++) {
    osp_tensor dy_s = osp_tensor_slice(dy, s * B, B);
    OSP_TRY(linear_backward(t->context, &used, &dy_s, dcontext, g));
  }
  return OSP_OK;
}

/* The cross-attention's backward, copy by copy of the context: dq (its rows), dk, dv
 * [copies·B, L, C] from da. */
static osp_status cross_attend_backward(const osp_dit_tape *tape, const osp_model_config *c,
                                        const dit_block_tensors *t, int64_t copies, const osp_tensor *da,
                                        osp_tensor *dq, osp_tensor *dk, osp_tensor *dv) {
  const int64_t rows = t->cq.shape[0] / copies, B = t->ck.shape[0];
  for (int64_t s = 0; s < copies; s++) {
    const osp_tensor cq = osp_tensor_slice(&t->cq, s * rows, rows), a2 = osp_tensor_slice(&t->a2, s * rows, rows);
    const osp_tensor lse = osp_tensor_slice(&t->lse2, s * rows, rows), da_s = osp_tensor_slice(da, s * rows, rows);
    osp_tensor dq_s = osp_tensor_slice(dq, s * rows, rows), dk_s = osp_tensor_slice(dk, s * B, B), dv_s = osp_tensor_slice(dv, s * B, B);
    OSP_TRY(attention_backward(tape, c, &cq, &t->ck, &t->cv, NULL, &a2, &lse, &da_s, &dq_s, &dk_s, &dv_s));
  }
  return quantize_attention_gradients(t, dq, dk, dv);
}

/* x2 = x1 + CrossAttn(n2, context), n2 = LN_affine(x1): dx += ∂/∂x1 (it holds ∂/∂x2, which
 * passes unchanged), dcontext += ∂/∂context. */
static osp_status cross_attention_backward(osp_dit_tape *tape, const osp_dit *dit, const osp_dit_block *b,
                                           osp_dit_block *gb, const dit_block_tensors *t, block_gradients *g) {
  const osp_model_config *c = &dit->config;
  const osp_attention_params *a = &b->cross_attn;
  osp_attention_params *ga = &gb->cross_attn;
  OSP_TRY(osp_zero(&g->d_o));
  OSP_TRY(osp_gated_add_backward(&g->dx, &t->o2, NULL, &g->d_o, NULL));
  OSP_TRY(osp_zero(&g->da));
  OSP_TRY(block_linear_backward(t, &t->a2q, &a->proj[OSP_O], &g->d_o, &g->da, &ga->proj[OSP_O]));
  const int64_t copies = context_copies(t), B = t->ck.shape[0];
  osp_tensor dck = copies_view(&tape->dck, copies, &t->ck), dcv = copies_view(&tape->dcv, copies, &t->cv);
  osp_tensor dck_pre = copies_view(&tape->dck_pre, copies, &t->ck);
  OSP_TRY(cross_attend_backward(tape, c, t, copies, &g->da, &g->dq, &dck, &dcv));
  osp_tensor *dpre;
  OSP_TRY(unnorm(c, &t->cq_pre, &a->norm_q, &ga->norm_q, &g->dq, &g->dpre, &dpre));
  if (c->cross_attn_norm) {
    OSP_TRY(osp_zero(&g->dn));
    OSP_TRY(block_linear_backward(t, &t->n2, &a->proj[OSP_Q], dpre, &g->dn, &ga->proj[OSP_Q]));
    OSP_TRY(osp_layernorm_backward(&t->x1, &b->cross_norm_weight, c->eps, &g->dn, &g->dx,
                                   &gb->cross_norm_weight, &gb->cross_norm_bias));
  } else {
    OSP_TRY(block_linear_backward(t, &t->x1, &a->proj[OSP_Q], dpre, &g->dx, &ga->proj[OSP_Q]));
  }
  osp_tensor *dk_pre = &dck; /* ∂/∂(context·Wkᵀ + b): through the norm when there is one */
  for (int64_t s = 0; s < copies && c->qk_norm; s++) {
    osp_tensor dck_s = osp_tensor_slice(&dck, s * B, B), dck_pre_s = osp_tensor_slice(&dck_pre, s * B, B), *out;
    OSP_TRY(unnorm(c, &t->ck_pre, &a->norm_k, &ga->norm_k, &dck_s, &dck_pre_s, &out));
    dk_pre = &dck_pre;
  }
  OSP_TRY(context_linear_backward(t, &a->proj[OSP_K], dk_pre, copies, &tape->dcontext, &ga->proj[OSP_K]));
  return context_linear_backward(t, &a->proj[OSP_V], &dcv, copies, &tape->dcontext, &ga->proj[OSP_V]);
}

/* q or k of self-attention: RoPE undone on dq in place, the norm's backward, the projection's:
 * dn1 += ∂/∂n1. */
static osp_status project_rotated_backward(const osp_model_config *c, const dit_block_tensors *t,
                                           const osp_linear_params *p, const osp_tensor *norm,
                                           const osp_tensor *pre, osp_tensor *dq, osp_linear_params *gp,
                                           osp_tensor *dnorm, block_gradients *g) {
  osp_tensor heads = dit_split_heads(dq, c->num_heads);
  OSP_TRY(osp_rope_apply_backward(&heads, t->rope_cos, t->rope_sin));
  osp_tensor *dpre;
  OSP_TRY(unnorm(c, pre, norm, dnorm, dq, &g->dpre, &dpre));
  return block_linear_backward(t, &t->n1, p, dpre, &g->dn, gp);
}

/* Self-attention over every rank's tokens (Ulysses): dq, dk, dv (written) from da. */
static osp_status ulysses_backward(const osp_dit_tape *tape, const osp_model_config *c, const dit_block_tensors *t,
                                   const block_gradients *g) {
  const int h = c->num_heads;
  osp_tensor dah = dit_split_heads(&g->da, h), dqh = dit_split_heads(&g->dq, h);
  osp_tensor dkh = dit_split_heads(&g->dk, h), dvh = dit_split_heads(&g->dv, h);
  const osp_tensor *scratch = tape->backward_scratch.data ? &tape->backward_scratch : NULL;
  const float hif8_max = t->quant && t->quant->attention ? t->quant->backward_max : 0.0f;
  return osp_ulysses_attention_backward(t->comm, t->ulysses, t->ulysses_kept, &dah, 1.0f / sqrtf((float)c->head_dim),
                                        hif8_max, scratch, &dqh, &dkh, &dvh);
}

/* x1 = x_in + SelfAttn(n1)·gate, n1 = LN(x_in)·(1 + mod1) + mod0: dx += ∂/∂x_in. */
static osp_status self_attention_backward(osp_dit_tape *tape, const osp_dit *dit, const osp_dit_block *b,
                                          osp_dit_block *gb, const dit_block_tensors *t, block_gradients *g) {
  const osp_model_config *c = &dit->config;
  const osp_attention_params *a = &b->self_attn;
  osp_attention_params *ga = &gb->self_attn;
  osp_tensor gate = dit_table_row(&t->mod, 2), dgate = dit_table_row(&tape->dmod, 2);
  OSP_TRY(osp_zero(&g->d_o));
  OSP_TRY(osp_gated_add_backward(&g->dx, &t->o1, &gate, &g->d_o, &dgate));
  OSP_TRY(osp_zero(&g->da));
  OSP_TRY(block_linear_backward(t, &t->a1q, &a->proj[OSP_O], &g->d_o, &g->da, &ga->proj[OSP_O]));
  if (t->ulysses) {
    OSP_TRY(ulysses_backward(tape, c, t, g)); /* quantizes dq, dk, dv before they go back */
  } else {
    OSP_TRY(attention_backward(tape, c, &t->q, &t->k, &t->v, t->key_mask, &t->a1, &t->lse1, &g->da, &g->dq, &g->dk, &g->dv));
    OSP_TRY(quantize_attention_gradients(t, &g->dq, &g->dk, &g->dv));
  }
  OSP_TRY(osp_zero(&g->dn));
  OSP_TRY(project_rotated_backward(c, t, &a->proj[OSP_Q], &a->norm_q, &t->q_pre, &g->dq, &ga->proj[OSP_Q], &ga->norm_q, g));
  OSP_TRY(project_rotated_backward(c, t, &a->proj[OSP_K], &a->norm_k, &t->k_pre, &g->dk, &ga->proj[OSP_K], &ga->norm_k, g));
  OSP_TRY(block_linear_backward(t, &t->n1, &a->proj[OSP_V], &g->dv, &g->dn, &ga->proj[OSP_V]));
  osp_tensor scale = dit_table_row(&t->mod, 1);
  osp_tensor dshift = dit_table_row(&tape->dmod, 0), dscale = dit_table_row(&tape->dmod, 1);
  return layernorm_modulate_backward(tape, c->eps, &t->x_in, &scale, &g->dn, &g->dx, &dshift, &dscale);
}

/* Swaps dx and its spare: the spare holds ∂loss/∂x in the layout the residual stream has now. */
static void take_spare(osp_dit_tape *tape) {
  const osp_tensor spent = tape->dx;
  tape->dx = tape->dx_spare;
  tape->dx_spare = spent;
}

/* ∂loss/∂x in the layout `from` (in dx), brought back through the gather that made it from the
 * layout `to`: a scatter into the spare, which becomes dx. */
static osp_status ungather(osp_dit_tape *tape, osp_pattern to, osp_pattern from) {
  if (to == from) return OSP_OK;
  osp_tensor ddst = dit_in_layout(&tape->dx, &tape->plan.layout[from]);
  osp_tensor dsrc = dit_in_layout(&tape->dx_spare, &tape->plan.layout[to]);
  if (tape->plan.gather[to][from].ndim) {
    OSP_TRY(osp_zero(&dsrc));
    OSP_TRY(osp_gather_rows_backward(&ddst, &tape->plan.gather[to][from], &dsrc));
  } else {
    OSP_TRY(osp_sp_change_layout_backward(&tape->sp, to, from, &ddst, &dsrc)); /* between ranks */
  }
  take_spare(tape);
  return OSP_OK;
}

/* Block `index`: dx holds ∂loss/∂x_out (the next block's layout); afterwards ∂loss/∂x_in. */
static osp_status block_backward(osp_dit_tape *tape, const osp_dit *dit, int index, osp_dit *grads) {
  const osp_model_config *c = &dit->config;
  const osp_pattern k = (osp_pattern)c->schedule[index];
  const osp_dit_block *b = &dit->blocks[index];
  osp_dit_block *gb = &grads->blocks[index];
  dit_block_tensors t = dit_tape_block(tape, dit, index);
  if (tape->options.checkpoint) OSP_TRY(dit_block_forward(dit, index, &tape->time.e0, &t));
  else OSP_TRY(osp_add(&b->modulation, &tape->time.e0, &tape->mod));
  OSP_TRY(ungather(tape, k, dit_pattern_after(c, index)));
  block_gradients g = block_gradient_views(tape, &tape->plan.layout[k]);
  OSP_TRY(osp_zero(&tape->dmod));
  OSP_TRY(feed_forward_backward(tape, dit, b, gb, &t, &g));
  OSP_TRY(cross_attention_backward(tape, dit, b, gb, &t, &g));
  OSP_TRY(self_attention_backward(tape, dit, b, gb, &t, &g));
  OSP_TRY(osp_add_backward(&tape->dmod, &gb->modulation)); /* mod = modulation + e0 */
  return osp_add_backward(&tape->dmod, &tape->de0);
}

/* tokens = (LN(x)·(1 + m1) + m0)·W_head, m = head_modulation + e: dx = ∂loss/∂x (natural layout),
 * de += ∂/∂e. */
static osp_status head_backward(osp_dit_tape *tape, const osp_dit *dit, osp_dit *grads) {
  const osp_model_config *c = &dit->config;
  const dit_head_tensors *h = &tape->head;
  osp_tensor dn, dx;
  OSP_TRY(osp_zero(&tape->dtokens));
  OSP_TRY(osp_unpatchify_backward(&tape->dvelocity, c->patch_size, &tape->dtokens));
  osp_tensor dtokens = tape->dtokens; /* this rank's tokens: all of them on one rank */
  if (tape->comm) {
    dtokens = tape->dtokens_local;
    OSP_TRY(osp_gather_rows(&tape->dtokens, &tape->sp.natural_order, &dtokens));
  }
  OSP_TRY(zeroed(&tape->dn, &h->normed, &dn));
  OSP_TRY(linear_backward(&h->normed, &dit->head, &dtokens, &dn, &grads->head));
  OSP_TRY(zeroed(&tape->dx, &h->x, &dx));
  OSP_TRY(osp_zero(&tape->dhead_mod));
  osp_tensor scale = dit_table_row(&h->head_mod, 1);
  osp_tensor dshift = dit_table_row(&tape->dhead_mod, 0), dscale = dit_table_row(&tape->dhead_mod, 1);
  OSP_TRY(layernorm_modulate_backward(tape, c->eps, &h->x, &scale, &dn, &dx, &dshift, &dscale));
  OSP_TRY(osp_add_backward(&tape->dhead_mod, &grads->head_modulation));
  osp_tensor de_row;
  OSP_TRY(osp_tensor_reshape(&tape->de, 3, (int64_t[]){tape->de.shape[0], 1, c->dim}, &de_row));
  return osp_add_backward(&tape->dhead_mod, &de_row);
}

/* t itself where it has the dtype of `like`, else a copy of it in `buffer` (a view of t's shape). */
static osp_status as_dtype_of(const osp_tensor *like, const osp_tensor *t, const osp_tensor *buffer,
                              osp_tensor *out) {
  if (t->dtype == like->dtype) {
    *out = *t;
    return OSP_OK;
  }
  *out = osp_tensor_make(buffer->data, like->dtype, buffer->device, t->ndim, t->shape);
  return osp_copy(t, out);
}

/* e0 = time_projection(SiLU(e)), e = time_out(SiLU(time_in(sinusoid))): from de0 and de. e, e0
 * and their gradients are f32 (they meet the f32 modulation tables); the linears' operands are in
 * the activations' dtype, so the gradients cross over where the two differ (on CUDA). */
static osp_status time_backward(osp_dit_tape *tape, const osp_dit *dit, osp_dit *grads) {
  const dit_time_tensors *t = &tape->time;
  osp_tensor de0_flat, dy, de_act, de;
  OSP_TRY(dit_e0_flat(&tape->de0, &de0_flat));
  OSP_TRY(as_dtype_of(&t->e_act, &de0_flat, &tape->dtime_cast, &dy));
  OSP_TRY(osp_zero(&tape->de_act));
  OSP_TRY(linear_backward(&t->e_act, &dit->time_projection, &dy, &tape->de_act, &grads->time_projection));
  OSP_TRY(as_dtype_of(&t->e, &tape->de_act, &tape->dtime_cast, &de_act));
  OSP_TRY(osp_silu_backward(&t->e, &de_act, &tape->de));
  OSP_TRY(as_dtype_of(&t->t_act, &tape->de, &tape->dtime_cast, &de));
  OSP_TRY(osp_zero(&tape->dt_act));
  OSP_TRY(linear_backward(&t->t_act, &dit->time_out, &de, &tape->dt_act, &grads->time_out));
  OSP_TRY(osp_zero(&tape->dt_pre));
  OSP_TRY(osp_silu_backward(&t->t_pre, &tape->dt_act, &tape->dt_pre));
  return linear_backward(&t->sinusoid, &dit->time_in, &tape->dt_pre, NULL, &grads->time_in);
}

/* context = text_out(GELU_tanh(text_in(text))): from dcontext. */
static osp_status text_backward(osp_dit_tape *tape, const osp_dit *dit, osp_dit *grads) {
  const dit_text_tensors *t = &tape->text_embed;
  OSP_TRY(osp_zero(&tape->dc_act));
  OSP_TRY(linear_backward(&t->c_act, &dit->text_out, &tape->dcontext, &tape->dc_act, &grads->text_out));
  OSP_TRY(osp_zero(&tape->dc_pre));
  OSP_TRY(osp_gelu_tanh_backward(&t->c_pre, &tape->dc_act, &tape->dc_pre));
  return linear_backward(&tape->text, &dit->text_in, &tape->dc_pre, NULL, &grads->text_in);
}

/* x0 = gather(patchify(latents)·W + b): from dx (block 0's layout), dlatents when wanted. Over
 * ranks each has the gradient of its own patches, gathered into the whole before the inverse of
 * patchify. */
static osp_status embedding_backward(osp_dit_tape *tape, const osp_dit *dit, osp_dit *grads, bool want_latents) {
  const osp_model_config *c = &dit->config;
  OSP_TRY(ungather(tape, OSP_PATTERN_FULL, (osp_pattern)c->schedule[0]));
  osp_tensor dembedded = dit_in_layout(&tape->dx, &tape->plan.layout[OSP_PATTERN_FULL]);
  const osp_tensor *patches = tape->comm ? &tape->patches_local : &tape->patches;
  osp_tensor *dpatches = tape->comm ? &tape->dpatches_local : &tape->dpatches;
  if (want_latents) OSP_TRY(osp_zero(dpatches));
  OSP_TRY(linear_backward(patches, &dit->patch_embedding, &dembedded, want_latents ? dpatches : NULL,
                          &grads->patch_embedding));
  if (!want_latents) return OSP_OK;
  if (tape->comm) OSP_TRY(osp_sp_gather_natural(&tape->sp, dpatches, &tape->gathered, &tape->dpatches));
  OSP_TRY(osp_zero(&tape->dlatents));
  return osp_patchify_backward(&tape->dpatches, c->patch_size, &tape->dlatents);
}

/* Over ranks, every parameter's gradient is the sum of the ranks' (each saw its own tokens), added
 * to what the gradients held before this backward: that part counts once, on rank 0 (the others
 * zero it before their backward: `zero_others`), then all-reduce. */
static osp_status sum_over_ranks(const osp_dit_tape *tape, osp_dit *grads, bool zero_others) {
  if (!tape->comm || (zero_others && osp_comm_rank(tape->comm) == 0)) return OSP_OK;
  osp_dit_parameter *params;
  int count;
  OSP_TRY(osp_dit_parameters(grads, &params, &count));
  osp_status status = OSP_OK;
  for (int i = 0; i < count && status == OSP_OK; i++) {
    osp_tensor *g = &params[i].tensor;
    status = zero_others ? osp_zero(g) : osp_comm_all_reduce_sum(tape->comm, g->data, OSP_F32, osp_tensor_numel(g));
  }
  free(params);
  return status;
}

/* dvelocity and dlatents have the tape's shapes; grads belong to this DiT, on its device. */
static osp_status check_backward(const osp_dit *dit, const osp_dit_tape *tape, const osp_tensor *dvelocity,
                                 const osp_dit *grads, const osp_tensor *dlatents) {
  OSP_TRY(osp_check_shape("dvelocity", dvelocity, tape->velocity.ndim, tape->velocity.shape));
  if (dlatents) OSP_TRY(osp_check_shape("dlatents", dlatents, tape->latents.ndim, tape->latents.shape));
  if (grads->device != dit->device || grads->config.num_layers != dit->config.num_layers)
    return osp_fail(OSP_ERR_ARGUMENT, "osp_dit_backward: grads must be osp_dit_init_zeros of this DiT, on its device");
  return OSP_OK;
}

osp_status osp_dit_backward(const osp_dit *dit, osp_dit_tape *tape, const osp_tensor *dvelocity, osp_dit *grads,
                            osp_tensor *dlatents) {
  const osp_model_config *c = &dit->config;
  OSP_TRY(check_backward(dit, tape, dvelocity, grads, dlatents));
  OSP_TRY(osp_copy(dvelocity, &tape->dvelocity));
  OSP_TRY(sum_over_ranks(tape, grads, true));
  OSP_TRY(osp_zero(&tape->dcontext));
  OSP_TRY(osp_zero(&tape->de0));
  OSP_TRY(osp_zero(&tape->de));
  OSP_TRY(head_backward(tape, dit, grads));
  for (int i = c->num_layers - 1; i >= 0; i--) OSP_TRY(block_backward(tape, dit, i, grads));
  OSP_TRY(embedding_backward(tape, dit, grads, dlatents != NULL));
  OSP_TRY(time_backward(tape, dit, grads));
  OSP_TRY(text_backward(tape, dit, grads));
  OSP_TRY(sum_over_ranks(tape, grads, false));
  if (dlatents) OSP_TRY(osp_copy(&tape->dlatents, dlatents));
  return osp_device_synchronize(tape->device);
}
