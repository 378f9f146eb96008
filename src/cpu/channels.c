/* Per-channel kernels over channel-first tensors [B, C, S]: the Wan-VAE's RMS norm, the latent
 * (de)normalisation, and the clamp. */
#include <math.h>

#include "cpu/conv.h"

enum { NORM_BLOCK = 256 }; /* positions normed together: their sums stay in registers and L1 */

void osp_cpu_channel_rmsnorm(const float *x, const float *gamma, const float *bias, float *y,
                             int64_t B, int64_t C, int64_t S) {
  const int64_t blocks = (S + NORM_BLOCK - 1) / NORM_BLOCK;
  const float root_c = sqrtf((float)C);
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; b++)
    for (int64_t block = 0; block < blocks; block++) {
      const int64_t s0 = block * NORM_BLOCK, n = S - s0 < NORM_BLOCK ? S - s0 : NORM_BLOCK;
      float sum[NORM_BLOCK] = {0}, factor[NORM_BLOCK];
      for (int64_t c = 0; c < C; c++) {
        const float *p = x + (b * C + c) * S + s0;
        for (int64_t i = 0; i < n; i++) sum[i] += p[i] * p[i];
      }
      for (int64_t i = 0; i < n; i++) factor[i] = root_c / fmaxf(sqrtf(sum[i]), 1e-12f);
      for (int64_t c = 0; c < C; c++) {
        const float *p = x + (b * C + c) * S + s0;
        float *q = y + (b * C + c) * S + s0;
        const float g = gamma[c], shift = bias ? bias[c] : 0.0f;
        for (int64_t i = 0; i < n; i++) q[i] = p[i] * factor[i] * g + shift;
      }
    }
}

void osp_cpu_channel_normalize(const float *x, const float *mean, const float *inv_std, float *y,
                               int64_t B, int64_t C, int64_t S) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; b++)
    for (int64_t c = 0; c < C; c++) {
      const float *p = x + (b * C + c) * S;
      float *q = y + (b * C + c) * S;
      for (int64_t i = 0; i < S; i++) q[i] = (p[i] - mean[c]) * inv_std[c];
    }
}

void osp_cpu_channel_denormalize(const float *x, const float *mean, const float *inv_std, float *y,
                                 int64_t B, int64_t C, int64_t S) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; b++)
    for (int64_t c = 0; c < C; c++) {
      const float *p = x + (b * C + c) * S;
      float *q = y + (b * C + c) * S;
      for (int64_t i = 0; i < S; i++) q[i] = p[i] / inv_std[c] + mean[c];
    }
}

void osp_cpu_clamp(const float *x, float lo, float hi, float *y, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) y[i] = x[i] < lo ? lo : x[i] > hi ? hi : x[i];
}
