#include "cpu/cpu.h"

void osp_cpu_modulate(const float *x, osp_cpu_rows shift, osp_cpu_rows scale, float *y, int64_t B,
                      int64_t N, int64_t C) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; b++) {
    for (int64_t n = 0; n < N; n++) {
      const float *sh = shift.data + b * shift.row_stride;
      const float *sc = scale.data + b * scale.row_stride;
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
        const float *g = gate.data + b * gate.row_stride;
        for (int64_t c = 0; c < C; c++) acc[c] += add[c] * g[c];
      } else {
        for (int64_t c = 0; c < C; c++) acc[c] += add[c];
      }
    }
  }
}
