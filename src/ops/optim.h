/* The optimizer's ops: AdamW, the sum of squares behind a gradient's norm, scaling, and clipping
 * the gradients by their global norm. Operands are contiguous float tensors; the checks and their
 * messages are those of ops.h ("op: operand: expected ..., found ..."). On the CPU and on CUDA; AdamW
 * and the EMA give the same bits on both. */
#ifndef OSP_OPS_OPTIM_H
#define OSP_OPS_OPTIM_H

#include <stdint.h>

#include "core/tensor.h"

/* AdamW's hyperparameters and the number of the step being taken, as torch.optim.AdamW takes them
 * (Python floats: double). */
typedef struct {
  double lr;           /* ≥ 0 */
  double beta1, beta2; /* each in [0, 1) */
  double eps;          /* ≥ 0 */
  double weight_decay; /* ≥ 0, decoupled from the gradient */
  int64_t step;        /* t ≥ 1: 1 for the first update of the parameter */
} osp_adamw_config;

/* One AdamW update of one parameter tensor, torch.optim.AdamW's (not amsgrad, not maximize), with
 * m and v its first and second moments (zero before step 1):
 *   p ← p·(1 − lr·weight_decay)
 *   m ← β1·m + (1 − β1)·g
 *   v ← β2·v + (1 − β2)·g²
 *   p ← p − lr/(1 − β1^t) · m / (sqrt(v)/sqrt(1 − β2^t) + eps)
 * which is p − lr·m̂/(sqrt(v̂) + eps) with m̂ = m/(1 − β1^t), v̂ = v/(1 − β2^t), computed in
 * torch's order (its _single_tensor_adam) so that float32 results agree to about an ulp. param
 * (f32 master weights), grad, m and v are f32 tensors of one shape on one device, no two sharing
 * memory. */
osp_status osp_adamw_step(osp_tensor *param, const osp_tensor *grad, osp_tensor *m, osp_tensor *v,
                          const osp_adamw_config *config);

/* *sum = Σ x², accumulated in double in an order that depends on x's size and device alone: the
 * same bits whatever the number of threads. x: f32 (or bf16 on CUDA). */
osp_status osp_sum_of_squares(const osp_tensor *x, double *sum);

/* An exponential moving average of weights, as torch.optim.swa_utils.get_ema_multi_avg_fn updates
 * it: ema ← ema.lerp(param, 1 − decay) = ema + (1 − decay)·(param − ema), in float32. decay in
 * [0, 1]; ema and param f32 of one shape, apart. */
osp_status osp_ema_update(osp_tensor *ema, const osp_tensor *param, double decay);

/* x ← x·factor */
osp_status osp_scale_in_place(osp_tensor *x, float factor);

/* torch.nn.utils.clip_grad_norm_ (2-norm) over `count` gradients:
 *   total_norm = sqrt(Σ_i ‖grads[i]‖²), computed in double;
 *   clip_coef = max_norm / (total_norm + 1e-6); where clip_coef < 1, every gradient ← ·clip_coef.
 * *total_norm is the norm before clipping. max_norm must be finite and > 0. A total norm that is
 * not finite (a NaN or Inf in a gradient) is an error (OSP_ERR_NUMERIC) that leaves the gradients
 * as they are, so the caller can skip the step. Every operand is checked before any is written. */
osp_status osp_clip_grad_norm(osp_tensor *const *grads, int count, double max_norm,
                              double *total_norm);

#endif
