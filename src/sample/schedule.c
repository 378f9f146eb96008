/* The σ and t of each step, computed as diffusers' set_timesteps computes them: which values are
 * float32 and which float64 decides the last bits of σ, and so of every sample. */
#include <math.h>

#include "sample/sampler_internal.h"

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

static const double TRAIN_TIMESTEPS = 1000.0;
static const double FIRST_SIGMA_MARGIN = 1e-6; /* UniPC keeps σ_0 below 1: log(1 − σ_0) finite */

/* σ′ = S·σ / (1 + (S − 1)·σ) in float64, as numpy evaluates it. */
static double shifted_f64(double sigma, double shift) {
  return shift * sigma / (1.0 + (shift - 1.0) * sigma);
}

/* The same in float32, as torch evaluates it on a float32 tensor (Python floats become float32). */
static float shifted_f32(float sigma, double shift) {
  return (float)shift * sigma / (1.0f + (float)(shift - 1.0) * sigma);
}

/* numpy.linspace(start, stop, count)[k]: k·step + start with step = (stop − start)/(count − 1),
 * and the last value exactly stop. */
static double linspace_at(double start, double stop, int count, int k) {
  if (count > 1 && k == count - 1) return stop;
  const double step = count > 1 ? (stop - start) / (count - 1) : 0.0;
  return k * step + start;
}

/* FlowMatchEulerDiscreteScheduler shifts its 1000 training σ = k/1000 in float32 when it is made
 * and keeps σ_max = σ′(1) and σ_min = σ′(1/1000). set_timesteps then spaces N values evenly
 * from 1000·σ_max to 1000·σ_min in float64, divides by 1000 and shifts them again (so σ is
 * shifted twice), rounds to float32, and t_i = 1000·σ_i in float32. */
void osp_sampler_schedule_euler(double shift, int steps, float *sigmas, double *timesteps) {
  const float sigma_max = shifted_f32(1.0f, shift);
  const float sigma_min = shifted_f32(1.0f / 1000.0f, shift);
  const double start = (double)sigma_max * TRAIN_TIMESTEPS;
  const double stop = (double)sigma_min * TRAIN_TIMESTEPS;
  for (int i = 0; i < steps; i++) {
    const double sigma = linspace_at(start, stop, steps, i) / TRAIN_TIMESTEPS;
    sigmas[i] = (float)shifted_f64(sigma, shift);
    timesteps[i] = sigmas[i] * 1000.0f;
  }
  sigmas[steps] = 0.0f;
}

/* UniPCMultistepScheduler with use_flow_sigmas: σ = linspace(1, 1/1000, N + 1)[:N] shifted once
 * in float64; σ_0 (1 after the shift) lowered by 1e-6; t_i = 1000·σ_i in float64 truncated to an
 * integer (diffusers keeps int64 timesteps); σ rounded to float32; final σ_N = 0. */
void osp_sampler_schedule_unipc(double shift, int steps, float *sigmas, double *timesteps) {
  for (int i = 0; i < steps; i++) {
    double sigma = shifted_f64(linspace_at(1.0, 1.0 / TRAIN_TIMESTEPS, steps + 1, i), shift);
    if (i == 0 && fabs(sigma - 1.0) < FIRST_SIGMA_MARGIN) sigma -= FIRST_SIGMA_MARGIN;
    timesteps[i] = trunc(sigma * TRAIN_TIMESTEPS);
    sigmas[i] = (float)sigma;
  }
  sigmas[steps] = 0.0f;
}
