/* The tape of a training forward (dit_train.c) that its backward (dit_backward.c) reads: every
 * tensor the forward made, each in its own buffer, and the buffers of the backward. */
#ifndef OSP_MODEL_DIT_TAPE_H
#define OSP_MODEL_DIT_TAPE_H

#include "model/dit_internal.h"
#include "model/dit_train.h"

/* One block's tensors apart from its input and output: per-token ones [slots, ·] (viewed in the
 * block's layout), lse [slots·heads], context ones [B, L, C]. */
typedef struct {
  osp_tensor n1, q_pre, k_pre, q, k, v, a1, lse1, o1, x1, n2, cq_pre, cq, a2, lse2, o2, x2, n3, h_pre,
      h, o3;
  osp_tensor ck_pre, ck, cv;
  osp_tensor a1q, a2q; /* the o projections' quantized inputs (HiF8 only; else a1, a2 serve) */
  osp_tensor uq, uk, uv, ua, ulse; /* Ulysses' gathered q, k, v, output and lse, flat (sequence parallel) */
} dit_block_record;

struct osp_dit_tape {
  osp_dit_tape_options options;
  int64_t grid[3];
  osp_device device;
  osp_dtype dtype; /* of per-token activations and their gradients */
  osp_arena host, arena;
  osp_sparse_plan plan;
  /* Forward. Inputs on the device: latents and text in `dtype`, timestep f32; velocity f32. */
  osp_tensor latents, timestep, text, velocity;
  osp_tensor patches;  /* [B, N, in·pt·ph·pw] */
  osp_tensor embedded; /* [slots, C]: the patch embedding, natural layout (block 0 sparse only) */
  osp_tensor *inputs;  /* [num_layers + 1] of [slots, C]: each block's input; the last, the head's */
  dit_block_record *records; /* one per block; one in all with checkpointing */
  dit_time_tensors time;
  dit_text_tensors text_embed;
  dit_head_tensors head;
  osp_tensor mod; /* f32 [B, 6, C] */
  osp_tensor rope_cos[OSP_PATTERN_COUNT], rope_sin[OSP_PATTERN_COUNT];
  osp_tensor attention_scratch, backward_scratch; /* u8; data NULL where none is needed */
  dit_quant quant; /* HiF8, with its weight scratch */
  bool quantized;  /* whether the config quantizes anything */
  /* Backward: gradients of the tensors above, named d<tensor>. Per-token ones [slots, ·] are
   * reused block after block: dx and dx_spare carry ∂loss/∂(residual stream) between blocks, ln
   * holds a recomputed LN(x) without modulation. */
  osp_tensor dvelocity, dlatents, dtokens, dpatches;
  osp_tensor dx, dx_spare, d_o, dh, dh_pre, dn, dln, ln, da, dq, dk, dv, dpre;
  osp_tensor dck, dcv, dck_pre, dcontext, dc_act, dc_pre; /* [B, L, C] */
  osp_tensor dmod, de0;                                   /* f32 [B, 6, C] */
  osp_tensor dhead_mod;                                   /* f32 [B, 2, C] */
  osp_tensor de, de_act, dt_act, dt_pre;                  /* [B, C] (de f32) */
  osp_tensor dtime_cast; /* [B, 6C] f32 or bf16: a time gradient in the other dtype (CUDA) */
  /* Sequence parallelism: this rank's part of the plan (plan = sp.local), its patches and their
   * gradient [B·tokens, in·pt·ph·pw], its head output's gradient [B·tokens, out·pt·ph·pw], every
   * rank's head output in natural order [B, N, out·pt·ph·pw], scratch for the all-gathers, the
   * block output before a layout change that leaves the rank, and the views of the block's
   * Ulysses record (ulysses_kept points here). */
  osp_comm *comm; /* NULL: one rank */
  osp_sp_plan sp;
  osp_tensor patches_local, dpatches_local, dtokens_local, tokens_all, gathered, x_moving;
  osp_ulysses_gathered kept;
};

/* The block's tensors on the tape: its record in the block's layout, its input and output. */
dit_block_tensors dit_tape_block(osp_dit_tape *tape, const osp_dit *dit, int index);

#endif
