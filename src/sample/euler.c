/* The flow-matching Euler step, as FlowMatchEulerDiscreteScheduler.step computes it in float32:
 *   dt = σ_{i+1} − σ_i,   x ← x + dt·v   (the product rounded, then the sum: no fused multiply-add) */
#include "sample/sampler_internal.h"

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

void osp_sampler_euler_step(const osp_sampler *sampler, int i, const float *velocity,
                            float *sample) {
  const float dt = sampler->sigmas[i + 1] - sampler->sigmas[i];
  for (int64_t j = 0; j < sampler->numel; j++) sample[j] = sample[j] + dt * velocity[j];
}
