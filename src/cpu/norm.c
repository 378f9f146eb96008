#include <math.h>

#include "cpu/cpu.h"

/* LayerNorm in double: two passes (the second sums (x − mean)²), and x − mean itself taken in
 * double, so a row whose mean is large next to its spread (|mean| = 1000, std = 1) loses nothing
 * to cancellation; only the final value is rounded to float. */
static void layernorm_row(const float *x, const float *weight, const float *bias, float eps,
                          float *y, int64_t C) {
  double sum = 0.0;
  for (int64_t c = 0; c < C; c++) sum += x[c];
  const double mean = sum / (double)C;
  double squares = 0.0;
  for (int64_t c = 0; c < C; c++) squares += (x[c] - mean) * (x[c] - mean);
  const double inv_std = 1.0 / sqrt(squares / (double)C + eps);
  if (weight) {
    for (int64_t c = 0; c < C; c++) y[c] = (float)((x[c] - mean) * inv_std) * weight[c] + bias[c];
  } else {
    for (int64_t c = 0; c < C; c++) y[c] = (float)((x[c] - mean) * inv_std);
  }
}

void osp_cpu_layernorm(const float *x, const float *weight, const float *bias, float eps, float *y,
                       int64_t rows, int64_t C) {
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < rows; row++)
    layernorm_row(x + row * C, weight, bias, eps, y + row * C, C);
}

/* RMSNorm: the sum of squares in double, the scaling in float (no cancellation to guard). */
void osp_cpu_rmsnorm(const float *x, const float *weight, float eps, float *y, int64_t rows,
                     int64_t C) {
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < rows; row++) {
    const float *in = x + row * C;
    float *out = y + row * C;
    double squares = 0.0;
    for (int64_t c = 0; c < C; c++) squares += (double)in[c] * in[c];
    const float inv_rms = (float)(1.0 / sqrt(squares / (double)C + eps));
    for (int64_t c = 0; c < C; c++) out[c] = in[c] * inv_rms * weight[c];
  }
}
