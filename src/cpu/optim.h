/* CPU kernels of the optimizer (src/ops/optim.h): float32 arrays of n contiguous values, trusted
 * as cpu.h's kernels are, OpenMP-parallel over elements. */
#ifndef OSP_CPU_OPTIM_H
#define OSP_CPU_OPTIM_H

#include <stdint.h>

/* One AdamW step's scalars, computed in double from the hyperparameters and the step t, then
 * rounded to float, as torch rounds a Python scalar to its tensor's dtype. */
typedef struct {
  float decay;                 /* 1 − lr·weight_decay */
  float beta1_weight;          /* 1 − β1: the weight of g in m's running average (a lerp) */
  float beta2;                 /* β2 */
  float beta2_weight;          /* 1 − β2 */
  float bias_correction2_sqrt; /* sqrt(1 − β2^t) */
  float eps;
  float neg_step_size;         /* −lr / (1 − β1^t) */
} osp_cpu_adamw_factors;

/* Per element, in torch's order of operations (_single_tensor_adam, decoupled weight decay):
 *   p ← p·decay
 *   m ← lerp(m, g, 1 − β1)                    = β1·m + (1 − β1)·g
 *   v ← fma((1 − β2)·g, g, v·β2)              = β2·v + (1 − β2)·g²
 *   p ← p + (neg_step_size·m) / (sqrt(v) / sqrt(1 − β2^t) + eps) */
void osp_cpu_adamw_step(float *param, const float *grad, float *m, float *v, int64_t n,
                        osp_cpu_adamw_factors factors);

/* Σ x[i]², each square and every sum in double, in an order fixed by n alone (fixed chunks, each
 * summed in order, the partial sums added in chunk order): the same bits whatever the thread
 * count. */
double osp_cpu_sum_of_squares(const float *x, int64_t n);

/* x[i] ← x[i]·factor */
void osp_cpu_scale(float *x, float factor, int64_t n);

/* x[i] ← lerp(x[i], end[i], weight), in float32 as torch's CPU lerp computes it:
 * x + weight·(end − x) where |weight| < ½, else end − (end − x)·(1 − weight). */
void osp_cpu_lerp(float *x, const float *end, float weight, int64_t n);

#endif
