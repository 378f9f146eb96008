#include <math.h>

#include "cpu/cpu.h"
#include "cpu/fast_exp.h"

/* σ(z) and 1 − σ(z), neither by a subtraction: with e = e^(−|z|) ≤ 1, the larger one is
 * 1/(1 + e) and the smaller e/(1 + e), so both keep their relative precision at either tail. */
static void sigmoid_pair(float z, float *sigmoid, float *complement) {
  const float e = osp_cpu_exp(-fabsf(z));
  const float large = 1.0f / (1.0f + e), small = e * large;
  *sigmoid = z >= 0.0f ? large : small;
  *complement = z >= 0.0f ? small : large;
}

/* gelu(x) = x·σ(2u) with u = √(2/π)(x + 0.044715x³) (the forward's form), so
 * gelu'(x) = σ(2u) + x·σ(2u)(1 − σ(2u))·2u' = s·(1 + 2x(1 − s)·√(2/π)(1 + 3·0.044715x²)). */
void osp_cpu_gelu_tanh_backward(const float *x, const float *dy, float *dx, int64_t n) {
  const float sqrt_2_over_pi = 0.7978845608028654f, cubic = 0.044715f;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) {
    const float v = x[i];
    float s, complement;
    sigmoid_pair(2.0f * sqrt_2_over_pi * (v + cubic * v * v * v), &s, &complement);
    const float du = sqrt_2_over_pi * (1.0f + 3.0f * cubic * v * v);
    dx[i] += dy[i] * s * (1.0f + 2.0f * v * complement * du);
  }
}

/* silu(x) = x·σ(x), so silu'(x) = σ + x·σ(1 − σ) = σ·(1 + x(1 − σ)). */
void osp_cpu_silu_backward(const float *x, const float *dy, float *dx, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) {
    float s, complement;
    sigmoid_pair(x[i], &s, &complement);
    dx[i] += dy[i] * s * (1.0f + x[i] * complement);
  }
}
