#include "cpu/cpu.h"
#include "cpu/fast_exp.h"

/* gelu(x) = ½x(1 + tanh u) with u = √(2/π)(x + 0.044715x³). Since ½(1 + tanh u) =
 * 1 / (1 + e^(−2u)), this is x / (1 + e^(−2u)): one exponential, no cancellation for negative x. */
static inline float gelu_tanh(float v) {
  const float sqrt_2_over_pi = 0.7978845608028654f;
  const float u = sqrt_2_over_pi * (v + 0.044715f * v * v * v);
  return v / (1.0f + osp_cpu_exp(-2.0f * u));
}

void osp_cpu_gelu_tanh(const float *x, float *y, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) y[i] = gelu_tanh(x[i]);
}

void osp_cpu_gelu_tanh_mul(const float *a, const float *b, float *y, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) y[i] = gelu_tanh(a[i]) * b[i];
}

/* silu(x) = x · sigmoid(x) = x / (1 + e^(−x)) */
void osp_cpu_silu(const float *x, float *y, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + osp_cpu_exp(-x[i]));
}
