/* LayerNorm and RMSNorm over the rows of [rows, C] (osp_cuda_layernorm, osp_cuda_rmsnorm).
 *
 * Each row belongs to one group of threads (osp_tile_rows, a warp up to a whole block), which
 * reads the row in chunks of 8 values where alignment allows, once per pass: the passes after
 * the first find the row in L1 or L2, so DRAM sees the row read once and written once. f32 math
 * throughout; to match the CPU's float64 LayerNorm within f32 rounding, the mean is taken in two
 * steps (see layernorm_kernel). */
#include "cuda/kernels.cuh"

namespace {

/* Sums of K values over the threads of one row group (threads_per_row, a power of two from 32 to
 * OSP_ROW_BLOCK): shuffles within each warp, then shared memory across the group's warps, in the
 * same order for every thread, so each gets the same sums. Every thread of the block must call
 * it: it waits at __syncthreads. */
template <int K>
__device__ void row_group_sum(float (&s)[K], int threads_per_row) {
  __shared__ float partial[OSP_ROW_BLOCK / 32][K];
  const int warp = threadIdx.x / 32, warps = threads_per_row / 32, first = warp - warp % warps;
#pragma unroll
  for (int k = 0; k < K; k++) {
    for (int offset = 16; offset > 0; offset /= 2) s[k] += __shfl_xor_sync(0xffffffffu, s[k], offset);
    if (threadIdx.x % 32 == 0) partial[warp][k] = s[k];
  }
  __syncthreads();
#pragma unroll
  for (int k = 0; k < K; k++) {
    s[k] = 0.0f;
    for (int w = first; w < first + warps; w++) s[k] += partial[w][k];
  }
  __syncthreads(); /* the next call writes partial again */
}

/* Where this thread works on a row: the row's first element, its chunks (none when the row is
 * past the end: the thread still joins its block's reductions), its first chunk and the step. */
struct row_share {
  int64_t start, chunks, first, step;
};

/* Calls f(element offset in the row, values) on each chunk of W values of the row this thread
 * has; unrolled so that several loads are in flight at once. */
template <int W, class F>
__device__ void each_chunk(const void *x, osp_dtype dtype, const row_share &share, F f) {
#pragma unroll 4
  for (int64_t c = share.first; c < share.chunks; c += share.step) {
    float v[W];
    osp_load_chunk<W>(x, dtype, share.start + c * W, v);
    f(c * W, v);
  }
}

/* y = ((x − shift) − correction) · inv · weight + bias over the row (no affine when weight is
 * NULL, no bias when bias is NULL). */
template <int W>
__device__ void normalize_row(const void *x, osp_dtype x_dtype, const void *weight,
                              const void *bias, osp_dtype param_dtype, void *y, osp_dtype y_dtype,
                              const row_share &share, float shift, float correction, float inv) {
  each_chunk<W>(x, x_dtype, share, [&](int64_t c, float (&v)[W]) {
    float w[W], b[W];
    osp_load_chunk_or_zero<W>(weight, param_dtype, c, w);
    osp_load_chunk_or_zero<W>(bias, param_dtype, c, b);
#pragma unroll
    for (int k = 0; k < W; k++) {
      v[k] = (v[k] - shift - correction) * inv;
      if (weight) v[k] = v[k] * w[k] + b[k];
    }
    osp_store_chunk<W>(y, y_dtype, share.start + c, v);
  });
}

/* The loop every norm kernel runs: blocks step over groups of rows together (the reductions need
 * every thread of the block), and each thread learns its share of its own row. */
template <class F>
__device__ void each_row(int64_t rows, int64_t C, int W, const osp_row_tiling &tile, F f) {
  const int group = threadIdx.x / tile.threads_per_row;
  for (int64_t base = (int64_t)blockIdx.x * tile.rows_per_block; base < rows;
       base += (int64_t)gridDim.x * tile.rows_per_block) {
    const int64_t row = base + group;
    f(row_share{row * C, row < rows ? C / W : 0, osp_tile_lane(tile), tile.threads_per_row});
  }
}

/* LayerNorm in three passes over the row: a first mean m₀ = Σx/C; then d = x − m₀, exact for
 * values near m₀, with Σd/C the small correction that makes the mean accurate and
 * Σd²/C − (Σd/C)² the biased variance (no cancellation: Σd is tiny next to Σd²); then the
 * output. A row with |mean| = 1000 and unit spread loses nothing to the first mean's rounding. */
template <int W>
__global__ void layernorm_kernel(const void *x, osp_dtype x_dtype, const void *weight,
                                 const void *bias, osp_dtype param_dtype, float eps, void *y,
                                 osp_dtype y_dtype, int64_t rows, int64_t C, osp_row_tiling tile) {
  each_row(rows, C, W, tile, [&](const row_share &share) {
    float sum[1] = {0.0f};
    each_chunk<W>(x, x_dtype, share, [&](int64_t, float (&v)[W]) {
#pragma unroll
      for (int k = 0; k < W; k++) sum[0] += v[k];
    });
    row_group_sum(sum, tile.threads_per_row);
    const float shift = sum[0] / (float)C;

    float moments[2] = {0.0f, 0.0f};
    each_chunk<W>(x, x_dtype, share, [&](int64_t, float (&v)[W]) {
#pragma unroll
      for (int k = 0; k < W; k++) {
        const float d = v[k] - shift;
        moments[0] += d;
        moments[1] += d * d;
      }
    });
    row_group_sum(moments, tile.threads_per_row);
    const float correction = moments[0] / (float)C;
    const float variance = fmaxf(moments[1] / (float)C - correction * correction, 0.0f);
    const float inv_std = 1.0f / sqrtf(variance + eps);
    normalize_row<W>(x, x_dtype, weight, bias, param_dtype, y, y_dtype, share, shift, correction,
                     inv_std);
  });
}

/* RMSNorm: Σx² over the row, then y = x · (1/√(Σx²/C + eps)) · weight. */
template <int W>
__global__ void rmsnorm_kernel(const void *x, osp_dtype x_dtype, const void *weight,
                               osp_dtype param_dtype, float eps, void *y, osp_dtype y_dtype,
                               int64_t rows, int64_t C, osp_row_tiling tile) {
  each_row(rows, C, W, tile, [&](const row_share &share) {
    float squares[1] = {0.0f};
    each_chunk<W>(x, x_dtype, share, [&](int64_t, float (&v)[W]) {
#pragma unroll
      for (int k = 0; k < W; k++) squares[0] += v[k] * v[k];
    });
    row_group_sum(squares, tile.threads_per_row);
    const float inv_rms = 1.0f / sqrtf(squares[0] / (float)C + eps);
    normalize_row<W>(x, x_dtype, weight, nullptr, param_dtype, y, y_dtype, share, 0.0f, 0.0f,
                     inv_rms);
  });
}

/* Chunks of 8 need every row and parameter to start on a 16-byte boundary. */
bool vector_rows(int64_t C, const void *x, const void *weight, const void *bias, const void *y) {
  return C % OSP_VEC == 0 && osp_aligned16(x) && osp_aligned16(weight) && osp_aligned16(bias) &&
         osp_aligned16(y);
}

}  // namespace

extern "C" osp_status osp_cuda_layernorm(const void *x, osp_dtype x_dtype, const void *weight,
                                         const void *bias, osp_dtype param_dtype, float eps,
                                         void *y, osp_dtype y_dtype, int64_t rows, int64_t C) {
  osp_pick_width<OSP_VEC, 1>(vector_rows(C, x, weight, bias, y), [&](auto width) {
    const osp_row_tiling tile = osp_tile_rows(rows, C / width.value, false);
    layernorm_kernel<width.value><<<tile.grid, OSP_ROW_BLOCK, 0, osp_cuda_stream()>>>(
        x, x_dtype, weight, bias, param_dtype, eps, y, y_dtype, rows, C, tile);
  });
  return osp_cuda_launched("osp_cuda_layernorm");
}

extern "C" osp_status osp_cuda_rmsnorm(const void *x, osp_dtype x_dtype, const void *weight,
                                       osp_dtype param_dtype, float eps, void *y,
                                       osp_dtype y_dtype, int64_t rows, int64_t C) {
  osp_pick_width<OSP_VEC, 1>(vector_rows(C, x, weight, nullptr, y), [&](auto width) {
    const osp_row_tiling tile = osp_tile_rows(rows, C / width.value, false);
    rmsnorm_kernel<width.value><<<tile.grid, OSP_ROW_BLOCK, 0, osp_cuda_stream()>>>(
        x, x_dtype, weight, param_dtype, eps, y, y_dtype, rows, C, tile);
  });
  return osp_cuda_launched("osp_cuda_rmsnorm");
}
