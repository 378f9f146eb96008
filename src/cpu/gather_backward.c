#include "cpu/cpu.h"

/* dsrc[index[i]] += ddst[i] row by row. The non-negative indices are distinct (the caller checked),
 * so every row of dsrc has at most one writer: parallel without atomics, deterministic. */
void osp_cpu_gather_rows_backward(const float *ddst, const int32_t *index, float *dsrc,
                                  int64_t rows, int64_t C) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < rows; i++) {
    if (index[i] < 0) continue;
    float *out = dsrc + (int64_t)index[i] * C;
    const float *in = ddst + i * C;
    for (int64_t c = 0; c < C; c++) out[c] += in[c];
  }
}
