/* What the DiT's forward (dit.c), its training record and backward (dit_train.c, dit_backward.c)
 * share: the steps of the forward written once (dit_block.c), over tensors the caller lays out.
 * Inference points many of them at one buffer (the residual stream is updated in place, one
 * `normed` serves three norms); training gives each its own, so the backward finds every input. */
#ifndef OSP_MODEL_DIT_INTERNAL_H
#define OSP_MODEL_DIT_INTERNAL_H

#include "model/dit.h"
#include "parallel/ulysses.h"
#include "sparse/plan.h"

/* HiF8 in the blocks (PAPER.md 7.4) as OSP-Next simulates it: quantize-dequantize with one
 * absmax scale per tensor, here the whole tensor this rank holds. The forward quantizes the
 * input and the weight of each of the ten linears (quant) and q, k, v entering attention
 * (quant_attn) with smax forward_max; the backward quantizes each linear's output gradient and
 * dq, dk, dv with backward_max, and passes gradients through the quantizers unchanged
 * (straight-through). A step's tensors hold NULL where the config quantizes nothing. */
typedef struct {
  bool linears, attention;
  float forward_max, backward_max;
  osp_tensor weight; /* scratch as large as the largest block weight, in the weights' dtype */
} dit_quant;

/* One block's tensors. Per-token ones are [rows, tokens, ·] views in the block's layout (x_out in
 * the next block's); context ones [B, L, C]. With mod = modulation + e0 (rows: shift, scale, gate
 * of attention; shift, scale, gate of the FFN), the block computes:
 *   n1 = LN(x_in)·(1 + mod1) + mod0; q_pre, k_pre, v = n1·W; q, k = RoPE(RMSNorm(q_pre, k_pre))
 *   a1 = Attn(q, k, v; key_mask); o1 = a1·Wo; x1 = x_in + o1·mod2
 *   n2 = LN_affine(x1) (x1 itself without cross_attn_norm); cq = RMSNorm(cq_pre = n2·Wq)
 *   ck = RMSNorm(ck_pre = context·Wk); cv = context·Wv; a2 = Attn(cq, ck, cv); o2 = a2·Wo
 *   x2 = x1 + o2; n3 = LN(x2)·(1 + mod4) + mod3; h = GELU_tanh(h_pre = n3·W_in); o3 = h·W_out
 *   x_out = gather_to_next(x2 + o3·mod5)
 * Tensors may share memory where the forward alone runs: x_in = x1 = x2 (= x_out without a layout
 * change) is updated in place; q_pre = q (the norm and RoPE work in place); h_pre = h (GELU in the
 * matmul's epilogue). lse1, lse2 f32 [rows, heads, tokens] are kept when their data is not NULL.
 * Under HiF8 the linears' inputs n1, n2 (x1 without cross_attn_norm), n3 and h, and q, k, v, cq,
 * ck, cv, are quantized in place (they are what the backward needs); a1q, a2q are the inputs of
 * the o projections: a1 and a2 quantized, in place where only the forward runs (training keeps a1
 * and a2 for the attention's backward). The context is quantized once, before the blocks. */
typedef struct {
  osp_tensor x_in, n1, q_pre, k_pre, q, k, v, a1, a1q, lse1, o1, x1, n2, cq_pre, cq, a2, a2q, lse2, o2, x2,
      n3, h_pre, h, o3, x_out;
  osp_tensor ck_pre, ck, cv; /* [B, L, C] */
  osp_tensor mod;            /* f32 [B, 6, C] */
  const osp_tensor *context; /* [B, L, C] */
  const osp_tensor *rope_cos, *rope_sin; /* [rows, tokens, head_dim/2] */
  const osp_tensor *key_mask;  /* NULL: every key is a real token */
  const osp_tensor *to_next;   /* gather index into the next block's layout; NULL: the same layout */
  const osp_tensor *scratch;   /* of osp_attention; NULL where the device needs none */
  const osp_ulysses *ulysses;  /* NULL: self-attention on this rank's rows; else Ulysses over comm */
  const osp_ulysses_gathered *ulysses_kept; /* training: where Ulysses keeps its gathered tensors */
  osp_comm *comm;
  const dit_quant *quant;      /* NULL: no quantization */
} dit_block_tensors;

/* The time embedding: sinusoid(t) → time_in → t_pre; t_act = SiLU(t_pre) → time_out → e;
 * e_act = SiLU(e) → time_projection → e0 [B, 6C]. Inference may let t_act and e_act share one
 * buffer (and t_pre = t_act). */
typedef struct {
  osp_tensor sinusoid, t_pre, t_act, e, e_act, e0;
} dit_time_tensors;

/* The text embedding: text → text_in → c_pre; c_act = GELU_tanh(c_pre) → text_out → context.
 * c_pre = c_act where only the forward runs. */
typedef struct {
  osp_tensor c_pre, c_act, context;
} dit_text_tensors;

/* The head: head_mod = head_modulation + e (rows shift, scale); normed = LN(x)·(1 + scale) + shift;
 * tokens = normed·W_head. */
typedef struct {
  osp_tensor x, head_mod, normed, tokens;
} dit_head_tensors;

/* HiF8 (dit_quant.c). The quantization a config asks for, its weight scratch taken from `a` in
 * `weight_dtype`; *on is false (and nothing taken) when it asks for none. */
osp_status dit_quant_plan(const osp_model_config *c, osp_dtype weight_dtype, osp_arena *a, dit_quant *q, bool *on);
/* x quantized in place with the forward's smax: a linear's input (quant), or q, k, v (quant_attn);
 * nothing where q is NULL or that part is off. */
osp_status dit_quant_linear_input(const dit_quant *q, osp_tensor *x);
osp_status dit_quant_attention_input(const dit_quant *q, osp_tensor *x);
/* The parameters a linear computes with: p itself, or its weight quantized into the scratch. */
osp_status dit_quant_weight(const dit_quant *q, const osp_linear_params *p, osp_linear_params *used);
/* A gradient quantized in place with the backward's smax: a linear's output gradient, or dq, dk,
 * dv. */
osp_status dit_quant_linear_gradient(const dit_quant *q, osp_tensor *g);
osp_status dit_quant_attention_gradient(const dit_quant *q, osp_tensor *g);

/* Steps of the forward (dit_block.c). */
osp_status dit_embed_time(const osp_dit *dit, const osp_tensor *timestep, dit_time_tensors *t);
osp_status dit_embed_text(const osp_dit *dit, const osp_tensor *text, dit_text_tensors *t);
/* mod = modulation + e0, then the block. */
osp_status dit_block_forward(const osp_dit *dit, int index, const osp_tensor *e0, dit_block_tensors *t);
osp_status dit_head_forward(const osp_dit *dit, const osp_tensor *e, dit_head_tensors *t);

/* Views shared by the forward and the backward. */
/* The first rows·tokens tokens of a per-token buffer [slots, width], as [rows, tokens, width]. */
osp_tensor dit_in_layout(const osp_tensor *buffer, const osp_layout *l);
/* Row k of a [B, R, C] table as a strided [B, C] view. */
osp_tensor dit_table_row(const osp_tensor *table, int k);
/* A [rows, N, C] tensor seen as [rows, N, heads, head_dim]. */
osp_tensor dit_split_heads(const osp_tensor *t, int heads);
/* e0 [B, 6, C] seen as the [B, 6C] output of time_projection. */
osp_status dit_e0_flat(const osp_tensor *e0, osp_tensor *flat);
/* The layout block `index` leaves the residual stream in: the next block's, or the natural one. */
osp_pattern dit_pattern_after(const osp_model_config *c, int index);
/* x_next = x moved from layout `from` into `to`: the plan's gather where the tokens stay on this
 * rank (always on one rank), else an exchange between the ranks of `sp`. */
osp_status dit_change_layout(const osp_sparse_plan *plan, const osp_sp_plan *sp, osp_pattern from, osp_pattern to,
                             const osp_tensor *x, osp_tensor *x_next);
/* The sparse plan's tables moved into a device arena (copied once the arena is real). */
osp_status dit_upload_plan(osp_arena *a, osp_sparse_plan *plan);
/* RoPE tables [rows, tokens, D/2] of every layout the plan uses, from each slot's position. */
osp_status dit_rope_tables(const osp_dit *dit, const osp_sparse_plan *plan, osp_tensor *cos,
                           osp_tensor *sin);
/* Allocates the RoPE tables of every layout the plan uses. */
osp_status dit_allocate_rope(osp_arena *a, const osp_model_config *c, const osp_sparse_plan *plan,
                             osp_tensor *cos, osp_tensor *sin);

#endif
