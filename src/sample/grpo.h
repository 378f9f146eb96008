/* The arithmetic of Mix-GRPO (PAPER.md 8): the stochastic step of a rollout's SDE window, its
 * log-probability, the KL to the reference model, the PPO-clip objective and the group-normalised
 * advantages. Everything here is per step and model-free: the sampler loop, the DiT's passes and
 * the optimizer use it (a rollout records x, the step's mean and x_next; training recomputes the
 * mean with the current weights and backpropagates through it).
 *
 * With σ the current noise level and σ′ < σ the next, dt = σ′ − σ < 0:
 *   ODE step:  x′ = x + v·dt
 *   SDE step:  μ  = x + [v + g²/(2σ)·(x + (1 − σ)·v)]·dt,   s = g·√(−dt),   x′ = μ + s·z
 * where g is the diffusion coefficient: Flow-GRPO's g = η·√(σ/(1 − σ)) (η = 0.7; where σ = 1,
 * 1 − σ would be 0, and Flow-GRPO's code takes the schedule's second σ in its place) or
 * OSP-Next's g = σ. Tensors are f32 on the host. */
#ifndef OSP_SAMPLE_GRPO_H
#define OSP_SAMPLE_GRPO_H

#include <stdbool.h>

#include "core/tensor.h"

typedef enum { OSP_SDE_FLOW_GRPO, OSP_SDE_OSP_NEXT } osp_sde_kind;

typedef struct {
  osp_sde_kind kind;
  double eta;       /* Flow-GRPO's noise level (0.7); unused by OSP-Next's */
  double sigma_cap; /* Flow-GRPO: the σ that stands in 1 − σ where σ = 1 (the schedule's second) */
} osp_sde;

/* g(σ), the diffusion coefficient. */
double osp_sde_diffusion(const osp_sde *sde, double sigma);

/* ∂μ/∂v = [1 + g²·(1 − σ)/(2σ)]·dt, the same for every element: the backward through μ. */
double osp_sde_mean_velocity_factor(const osp_sde *sde, double sigma, double sigma_next);

/* One SDE step from σ to σ_next (0 ≤ σ_next < σ ≤ 1): *mean = μ and *std = s as above, and, where
 * x_next is not NULL, x_next = μ + s·z (z NULL: x_next = μ, the noiseless last step). x, v, z,
 * mean and x_next share one shape; mean and x_next may be the same tensor. */
osp_status osp_sde_step(const osp_sde *sde, double sigma, double sigma_next, const osp_tensor *x,
                        const osp_tensor *v, const osp_tensor *z, osp_tensor *mean, osp_tensor *x_next,
                        double *std);

/* The Gaussian log-density of x_next under N(mean, std²), averaged over the elements:
 *   logp = (1/n)·Σ [−(x′ − μ)²/(2s²) − log s − ½·log 2π];
 * where grad_mean is not NULL, ∂logp/∂μ = (x′ − μ)/(s²·n) into it (x_next is data: no gradient). */
osp_status osp_sde_log_prob(const osp_tensor *x_next, const osp_tensor *mean, double std, double *logp,
                            osp_tensor *grad_mean);

/* The KL between N(mean, s²) and N(ref_mean, s²) per element, averaged (OSP-Next's regulariser):
 *   kl = (1/n)·Σ (μ − μ_ref)²/(2s²);   ∂kl/∂μ = (μ − μ_ref)/(s²·n) into grad_mean (NULL: none). */
osp_status osp_sde_kl(const osp_tensor *mean, const osp_tensor *ref_mean, double std, double *kl,
                      osp_tensor *grad_mean);

/* The PPO-clip loss of one sample's step: r = exp(logp − logp_old),
 *   loss = max(−A·r, −A·clip(r, 1 − ε, 1 + ε));
 * *grad_logp = ∂loss/∂logp (−A·r where the unclipped term is the larger or they tie, else 0) and
 * *clipped = whether the clipped term was taken with r outside [1 − ε, 1 + ε]. */
double osp_grpo_clip_loss(double logp, double logp_old, double advantage, double eps, double *grad_logp,
                          bool *clipped);

/* A group's advantages from its rewards: (r_i − mean)/(std + 1e−8) with the unbiased std
 * (n − 1), each clipped to [−clip, clip]. count ≥ 2. */
osp_status osp_grpo_advantages(const double *rewards, int count, double clip, double *advantages);

#endif
