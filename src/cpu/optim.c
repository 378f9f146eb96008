#include <stdbool.h>
#include "cpu/optim.h"

#include <math.h>

/* torch's CPU kernels (AVX-512, as its release build compiles them) fuse a multiply and an add in
 * lerp and addcmul, and round each step elsewhere (mul, div, addcdiv): fmaf where they fuse, and no
 * contraction of a·b + c anywhere else. GCC's -std=c11 contracts nothing; clang's default does. */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

/* torch's lerp (its vectorised CPU kernel): start + w·(end − start), from the nearer end. */
static inline float lerp(float start, float end, float weight) {
  return fabsf(weight) < 0.5f ? fmaf(weight, end - start, start)
                              : fmaf(weight - 1.0f, end - start, end);
}

void osp_cpu_adamw_step(float *param, const float *grad, float *m, float *v, int64_t n,
                        osp_cpu_adamw_factors f) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) {
    const float g = grad[i];
    m[i] = lerp(m[i], g, f.beta1_weight);
    v[i] = fmaf(f.beta2_weight * g, g, v[i] * f.beta2);
    const float denom = sqrtf(v[i]) / f.bias_correction2_sqrt + f.eps;
    param[i] = param[i] * f.decay + f.neg_step_size * m[i] / denom;
  }
}

/* Chunks of at least MIN_CHUNK values, and at most MAX_CHUNKS of them: the partial sums fit on the
 * stack, and the chunks depend on n only. */
enum { MIN_CHUNK = 4096, MAX_CHUNKS = 256 };

double osp_cpu_sum_of_squares(const float *x, int64_t n) {
  const int64_t even_split = (n + MAX_CHUNKS - 1) / MAX_CHUNKS;
  const int64_t chunk = even_split > MIN_CHUNK ? even_split : MIN_CHUNK;
  const int64_t chunks = (n + chunk - 1) / chunk;
  double partial[MAX_CHUNKS];
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; c++) {
    const int64_t end = (c + 1) * chunk < n ? (c + 1) * chunk : n;
    double sum = 0.0;
    for (int64_t i = c * chunk; i < end; i++) sum += (double)x[i] * x[i];
    partial[c] = sum;
  }
  double total = 0.0;
  for (int64_t c = 0; c < chunks; c++) total += partial[c];
  return total;
}

void osp_cpu_scale(float *x, float factor, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) x[i] *= factor;
}

void osp_cpu_lerp(float *x, const float *end, float weight, int64_t n) {
  const bool small = fabsf(weight) < 0.5f;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++)
    x[i] = small ? x[i] + weight * (end[i] - x[i]) : end[i] - (end[i] - x[i]) * (1.0f - weight);
}
