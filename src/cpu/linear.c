#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "cpu/bf16.h"
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

size_t osp_cpu_linear_bf16_scratch_floats(int64_t K) {
  return (size_t)omp_get_max_threads() * OSP_CPU_BF16_TILE_ROWS * (size_t)K;
}

/* Parallel over tiles of the weight's rows (the outputs): a thread converts its tile of w to f32,
 * then y[:, n0 : n0 + rows] = x · tileᵀ (+ bias) as one sgemm on its own thread. */
void osp_cpu_linear_bf16(const float *x, const uint16_t *w, const float *bias, float *y, int64_t M,
                         int64_t N, int64_t K, float *scratch) {
  const int64_t tiles = (N + OSP_CPU_BF16_TILE_ROWS - 1) / OSP_CPU_BF16_TILE_ROWS;
#pragma omp parallel
  {
    float *tile = scratch + (size_t)omp_get_thread_num() * OSP_CPU_BF16_TILE_ROWS * (size_t)K;
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tiles; t++) {
      const int64_t n0 = t * OSP_CPU_BF16_TILE_ROWS;
      const int64_t rows = N - n0 < OSP_CPU_BF16_TILE_ROWS ? N - n0 : OSP_CPU_BF16_TILE_ROWS;
      osp_cpu_bf16_to_f32(w + n0 * K, tile, rows * K);
      for (int64_t m = 0; bias && m < M; m++)
        memcpy(y + m * N + n0, bias + n0, (size_t)rows * sizeof *y);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)M, (blasint)rows, (blasint)K,
                  1.0f, x, (blasint)K, tile, (blasint)K, bias ? 1.0f : 0.0f, y + n0, (blasint)N);
    }
  }
}
