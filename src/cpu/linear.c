#include <cblas.h>
#include <string.h>

#include "cpu/cpu.h"

/* y = x·wᵀ + bias as one sgemm: y starts as the bias broadcast over rows, then beta = 1 adds the
 * product onto it. OpenBLAS threads the sgemm itself. */
void osp_cpu_linear(const float *x, const float *w, const float *bias, float *y, int64_t M,
                    int64_t N, int64_t K) {
  if (bias) {
#pragma omp parallel for schedule(static)
    for (int64_t row = 0; row < M; row++) memcpy(y + row * N, bias, (size_t)N * sizeof *y);
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)M, (blasint)N, (blasint)K, 1.0f, x,
              (blasint)K, w, (blasint)K, bias ? 1.0f : 0.0f, y, (blasint)N);
}
