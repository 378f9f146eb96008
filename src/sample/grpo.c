/* Mix-GRPO's per-step arithmetic (grpo.h). Sums over elements in double; tensors f32. */
#include "sample/grpo.h"

#include <math.h>
#include <stdio.h>

#include "core/status.h"
#include "sample/sampler_internal.h"

static const double HALF_LOG_2PI = 0.91893853320467274178; /* ½·log 2π */

double osp_sde_diffusion(const osp_sde *sde, double sigma) {
  if (sde->kind == OSP_SDE_OSP_NEXT) return sigma;
  const double below = sigma == 1.0 ? sde->sigma_cap : sigma; /* Flow-GRPO's stand-in where 1 − σ = 0 */
  return sde->eta * sqrt(sigma / (1.0 - below));
}

double osp_sde_mean_velocity_factor(const osp_sde *sde, double sigma, double sigma_next) {
  const double g = osp_sde_diffusion(sde, sigma);
  return (1.0 + g * g * (1.0 - sigma) / (2.0 * sigma)) * (sigma_next - sigma);
}

static osp_status check_sde(const osp_sde *sde, double sigma, double sigma_next) {
  if (!sde) return osp_fail(OSP_ERR_ARGUMENT, "sde step: the SDE: missing (NULL)");
  if (!(sigma > 0.0 && sigma <= 1.0 && sigma_next >= 0.0 && sigma_next < sigma))
    return osp_fail(OSP_ERR_ARGUMENT, "sde step: expected 0 <= sigma_next < sigma <= 1, found sigma %g, sigma_next %g",
                    sigma, sigma_next);
  if (sde->kind == OSP_SDE_FLOW_GRPO && !(sde->eta >= 0.0 && sde->sigma_cap >= 0.0 && sde->sigma_cap < 1.0))
    return osp_fail(OSP_ERR_ARGUMENT, "sde step: Flow-GRPO's eta %g and sigma_cap %g: expected eta >= 0 and a "
                    "sigma_cap in [0, 1)", sde->eta, sde->sigma_cap);
  return OSP_OK;
}

osp_status osp_sde_step(const osp_sde *sde, double sigma, double sigma_next, const osp_tensor *x,
                        const osp_tensor *v, const osp_tensor *z, osp_tensor *mean, osp_tensor *x_next,
                        double *std) {
  OSP_TRY(check_sde(sde, sigma, sigma_next));
  OSP_TRY(osp_sample_check_operand("sde step: x", x, NULL));
  OSP_TRY(osp_sample_check_operand("sde step: v", v, x));
  OSP_TRY(osp_sample_check_operand("sde step: mean", mean, x));
  if (z) OSP_TRY(osp_sample_check_operand("sde step: z", z, x));
  if (x_next) OSP_TRY(osp_sample_check_operand("sde step: x_next", x_next, x));
  const double g = osp_sde_diffusion(sde, sigma), dt = sigma_next - sigma;
  const double drift = g * g / (2.0 * sigma); /* μ = x + [v + drift·(x + (1 − σ)·v)]·dt */
  *std = g * sqrt(-dt);
  const float *xs = x->data, *vs = v->data, *zs = z ? z->data : NULL;
  float *m = mean->data, *out = x_next ? x_next->data : NULL;
  const int64_t n = osp_tensor_numel(x);
  for (int64_t j = 0; j < n; j++) {
    const double mu = xs[j] + (vs[j] + drift * (xs[j] + (1.0 - sigma) * vs[j])) * dt;
    m[j] = (float)mu;
    if (out) out[j] = (float)(zs ? mu + *std * zs[j] : mu);
  }
  return OSP_OK;
}

/* Checks a, b (of a's shape), grad (of a's shape, or NULL) and a positive std. */
static osp_status check_pair(const char *fn, const osp_tensor *a, const char *a_name, const osp_tensor *b,
                             const char *b_name, double std, const osp_tensor *grad) {
  char what[96];
  snprintf(what, sizeof what, "%s: %s", fn, a_name);
  OSP_TRY(osp_sample_check_operand(what, a, NULL));
  snprintf(what, sizeof what, "%s: %s", fn, b_name);
  OSP_TRY(osp_sample_check_operand(what, b, a));
  snprintf(what, sizeof what, "%s: grad_mean", fn);
  if (grad) OSP_TRY(osp_sample_check_operand(what, grad, a));
  if (!(std > 0.0 && isfinite(std)))
    return osp_fail(OSP_ERR_ARGUMENT, "%s: std: expected a positive finite value, found %g", fn, std);
  return OSP_OK;
}

/* Σ (a − b)² over n elements, and, where grad is not NULL, grad = (a − b)/(variance·n): the
 * gradient to a of Σ (a − b)²/(2·variance·n). */
static double squared_distance(const float *a, const float *b, int64_t n, double variance, float *grad) {
  double squares = 0.0;
  for (int64_t j = 0; j < n; j++) {
    const double d = (double)a[j] - b[j];
    squares += d * d;
    if (grad) grad[j] = (float)(d / (variance * (double)n));
  }
  return squares;
}

osp_status osp_sde_log_prob(const osp_tensor *x_next, const osp_tensor *mean, double std, double *logp,
                            osp_tensor *grad_mean) {
  OSP_TRY(check_pair("sde log-prob", x_next, "x_next", mean, "mean", std, grad_mean));
  const int64_t n = osp_tensor_numel(mean);
  const double variance = std * std;
  /* ∂/∂μ of −(x′ − μ)²/(2s²·n) is (x′ − μ)/(s²·n): the distance taken from x′ to μ. */
  const double squares = squared_distance(x_next->data, mean->data, n, variance, grad_mean ? grad_mean->data : NULL);
  *logp = -squares / (2.0 * variance * (double)n) - log(std) - HALF_LOG_2PI;
  return OSP_OK;
}

osp_status osp_sde_kl(const osp_tensor *mean, const osp_tensor *ref_mean, double std, double *kl,
                      osp_tensor *grad_mean) {
  OSP_TRY(check_pair("sde kl", mean, "mean", ref_mean, "ref_mean", std, grad_mean));
  const int64_t n = osp_tensor_numel(mean);
  const double variance = std * std;
  const double squares = squared_distance(mean->data, ref_mean->data, n, variance, grad_mean ? grad_mean->data : NULL);
  *kl = squares / (2.0 * variance * (double)n);
  return OSP_OK;
}

double osp_grpo_clip_loss(double logp, double logp_old, double advantage, double eps, double *grad_logp,
                          bool *clipped) {
  const double ratio = exp(logp - logp_old);
  const double bounded = fmin(fmax(ratio, 1.0 - eps), 1.0 + eps);
  const double unclipped_loss = -advantage * ratio, clipped_loss = -advantage * bounded;
  const bool take_clipped = clipped_loss > unclipped_loss;
  *grad_logp = take_clipped ? 0.0 : -advantage * ratio; /* ∂(−A·e^(logp − old))/∂logp */
  *clipped = take_clipped;
  return take_clipped ? clipped_loss : unclipped_loss;
}

osp_status osp_grpo_advantages(const double *rewards, int count, double clip, double *advantages) {
  if (count < 2) return osp_fail(OSP_ERR_ARGUMENT, "grpo advantages: a group of %d: expected at least 2", count);
  if (!(clip > 0.0)) return osp_fail(OSP_ERR_ARGUMENT, "grpo advantages: clip: expected > 0, found %g", clip);
  double sum = 0.0;
  for (int i = 0; i < count; i++) {
    if (!isfinite(rewards[i]))
      return osp_fail(OSP_ERR_ARGUMENT, "grpo advantages: reward %d is %g: expected a finite value", i, rewards[i]);
    sum += rewards[i];
  }
  const double mean = sum / count;
  double squares = 0.0;
  for (int i = 0; i < count; i++) squares += (rewards[i] - mean) * (rewards[i] - mean);
  const double std = sqrt(squares / (count - 1));
  for (int i = 0; i < count; i++) advantages[i] = fmin(fmax((rewards[i] - mean) / (std + 1e-8), -clip), clip);
  return OSP_OK;
}
