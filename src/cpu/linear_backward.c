#include <cblas.h>

#include "cpu/cpu.h"

/* The products are cut into tiles fixed by the sizes alone, and each tile is one sgemm with
 * beta = 1 (adding onto the gradient) on the thread that owns it: inside a parallel region the
 * OpenMP build of OpenBLAS runs on its caller's thread. So every element is summed in an order
 * that does not depend on the thread count, where one threaded sgemm would split the work, and
 * its bits, by the count. */
enum { TILE = 256 };

/* c[rows, cols] += op(a)·b with op(a) [rows, inner] (a itself, or the transpose of a stored
 * [inner, rows]) and b [inner, cols]; leading dimensions as cblas takes them. */
static void tiled_sgemm_add(CBLAS_TRANSPOSE trans_a, int64_t rows, int64_t cols, int64_t inner,
                            const float *a, int64_t lda, const float *b, int64_t ldb, float *c,
                            int64_t ldc) {
  const int64_t row_tiles = (rows + TILE - 1) / TILE, col_tiles = (cols + TILE - 1) / TILE;
#pragma omp parallel for schedule(static)
  for (int64_t tile = 0; tile < row_tiles * col_tiles; tile++) {
    const int64_t row = tile / col_tiles * TILE, col = tile % col_tiles * TILE;
    const int64_t tile_rows = rows - row < TILE ? rows - row : TILE;
    const int64_t tile_cols = cols - col < TILE ? cols - col : TILE;
    const float *a_tile = trans_a == CblasNoTrans ? a + row * lda : a + row;
    cblas_sgemm(CblasRowMajor, trans_a, CblasNoTrans, (blasint)tile_rows, (blasint)tile_cols,
                (blasint)inner, 1.0f, a_tile, (blasint)lda, b + col, (blasint)ldb, 1.0f,
                c + row * ldc + col, (blasint)ldc);
  }
}

/* y = x·wᵀ + bias, so dx = dy·w, dw = dyᵀ·x and dbias = Σ_rows dy. */
void osp_cpu_linear_backward(const float *x, const float *w, const float *dy, float *dx, float *dw,
                             float *dbias, int64_t M, int64_t N, int64_t K) {
  if (dx) /* dx[M, K] += dy[M, N] · w[N, K] */
    tiled_sgemm_add(CblasNoTrans, M, K, N, dy, N, w, K, dx, K);
  if (dw) /* dw[N, K] += dy[M, N]ᵀ · x[M, K] */
    tiled_sgemm_add(CblasTrans, N, K, M, dy, N, x, K, dw, K);
  if (dbias)
    osp_cpu_broadcast_backward(2, (const int64_t[]){M, N}, dy, NULL, dbias,
                               (const int64_t[]){1, N}, (const int64_t[]){N, 1});
}
