#include <string.h>

#include "cpu/cpu.h"

/* The row serving batch row b of x: b mod Bm, so the P² subsequences of sample b (rows s·B + b of
 * a Skiparse layout) share sample b's row. */
static const float *row_for_batch(osp_cpu_rows rows, int64_t b) {
  return rows.data + b % rows.rows * rows.row_stride;
}

void osp_cpu_modulate(const float *x, osp_cpu_rows shift, osp_cpu_rows scale, float *y, int64_t B,
                      int64_t N, int64_t C) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; b++) {
    for (int64_t n = 0; n < N; n++) {
      const float *sh = row_for_batch(shift, b);
      const float *sc = row_for_batch(scale, b);
      const float *in = x + (b * N + n) * C;
      float *out = y + (b * N + n) * C;
      for (int64_t c = 0; c < C; c++) out[c] = in[c] * (1.0f + sc[c]) + sh[c];
    }
  }
}

void osp_cpu_gated_add(float *x, const float *y, osp_cpu_rows gate, int64_t B, int64_t N,
                       int64_t C) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; b++) {
    for (int64_t n = 0; n < N; n++) {
      float *acc = x + (b * N + n) * C;
      const float *add = y + (b * N + n) * C;
      if (gate.data) {
        const float *g = row_for_batch(gate, b);
        for (int64_t c = 0; c < C; c++) acc[c] += add[c] * g[c];
      } else {
        for (int64_t c = 0; c < C; c++) acc[c] += add[c];
      }
    }
  }
}

void osp_cpu_gated_add_gather(const float *x, const float *y, osp_cpu_rows gate, int64_t N,
                              const int32_t *index, float *dst, int64_t rows, int64_t C) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < rows; i++) {
    float *out = dst + i * C;
    const int64_t from = index[i];
    if (from < 0) {
      memset(out, 0, (size_t)C * sizeof(float));
      continue;
    }
    const float *acc = x + from * C, *add = y + from * C;
    if (gate.data) {
      const float *g = row_for_batch(gate, from / N);
      for (int64_t c = 0; c < C; c++) out[c] = acc[c] + add[c] * g[c];
    } else {
      for (int64_t c = 0; c < C; c++) out[c] = acc[c] + add[c];
    }
  }
}
