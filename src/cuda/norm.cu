/* LayerNorm and RMSNorm over the rows of [rows, C] (osp_cuda_layernorm, osp_cuda_rmsnorm), and
 * their backwards (osp_cuda_layernorm_backward, osp_cuda_rmsnorm_backward).
 *
 * Each row belongs to one group of threads (osp_tile_rows, a warp up to a whole block), which
 * reads the row in chunks of 8 values where alignment allows, once per pass: the passes after
 * the first find the row in L1 or L2, so DRAM sees the row read once and written once. f32 math
 * throughout; to match the CPU's float64 LayerNorm within f32 rounding, the mean is taken in two
 * steps (see layernorm_kernel). */
#include "cuda/reduce.cuh"

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

/* Where this thread works on a row: the row, its first element, its chunks (none when the row is
 * past the end: the thread still joins its block's reductions), its first chunk and the step. */
struct row_share {
  int64_t row, start, chunks, first, step;
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

/* A row's statistics: x̂ = ((x − shift) − correction) · inv (RMSNorm: shift = correction = 0). */
struct norm_stats {
  float shift, correction, inv;
};

__device__ __forceinline__ float normalized(float v, const norm_stats &s) {
  return (v - s.shift - s.correction) * s.inv;
}

/* y = x̂ · weight + bias over the row (no affine where weight is NULL, no bias where bias is). */
template <int W>
__device__ void normalize_row(const void *x, osp_dtype x_dtype, const void *weight,
                              const void *bias, osp_dtype param_dtype, void *y, osp_dtype y_dtype,
                              const row_share &share, const norm_stats &s) {
  each_chunk<W>(x, x_dtype, share, [&](int64_t c, float (&v)[W]) {
    float w[W], b[W];
    osp_load_chunk_or_zero<W>(weight, param_dtype, c, w);
    osp_load_chunk_or_zero<W>(bias, param_dtype, c, b);
#pragma unroll
    for (int k = 0; k < W; k++) {
      v[k] = normalized(v[k], s);
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
    f(row_share{row, row * C, row < rows ? C / W : 0, osp_tile_lane(tile), tile.threads_per_row});
  }
}

/* Sums of K values over this thread's row, the same in every thread of its group: add(c, v, s)
 * adds the terms of the W values v from column c to s, chunk by chunk, then the group's sums are
 * taken (every thread of the block must call it, as row_group_sum). */
template <int W, int K, class F>
__device__ void sum_row(const void *x, osp_dtype dtype, const row_share &share,
                        const osp_row_tiling &tile, float (&s)[K], F add) {
#pragma unroll
  for (int k = 0; k < K; k++) s[k] = 0.0f;
  each_chunk<W>(x, dtype, share, [&](int64_t c, float (&v)[W]) { add(c, v, s); });
  row_group_sum(s, tile.threads_per_row);
}

/* LayerNorm's statistics in two passes over the row (the output is the third): a first mean
 * m₀ = Σx/C; then d = x − m₀, exact for values near m₀, with Σd/C the small correction that makes
 * the mean accurate and Σd²/C − (Σd/C)² the biased variance (no cancellation: Σd is tiny next to
 * Σd²). A row with |mean| = 1000 and unit spread loses nothing to the first mean's rounding. */
template <int W>
__device__ norm_stats layernorm_stats(const void *x, osp_dtype x_dtype, float eps, int64_t C,
                                      const row_share &share, const osp_row_tiling &tile) {
  float sum[1], moments[2];
  sum_row<W>(x, x_dtype, share, tile, sum, [](int64_t, auto &v, auto &s) {
#pragma unroll
    for (int k = 0; k < W; k++) s[0] += v[k];
  });
  const float shift = sum[0] / (float)C;
  sum_row<W>(x, x_dtype, share, tile, moments, [shift](int64_t, auto &v, auto &s) {
#pragma unroll
    for (int k = 0; k < W; k++) {
      const float d = v[k] - shift;
      s[0] += d;
      s[1] += d * d;
    }
  });
  const float correction = moments[0] / (float)C;
  const float variance = fmaxf(moments[1] / (float)C - correction * correction, 0.0f);
  return norm_stats{shift, correction, 1.0f / sqrtf(variance + eps)};
}

/* RMSNorm's: Σx² over the row, inv = 1/√(Σx²/C + eps). */
template <int W>
__device__ norm_stats rmsnorm_stats(const void *x, osp_dtype x_dtype, float eps, int64_t C,
                                    const row_share &share, const osp_row_tiling &tile) {
  float squares[1];
  sum_row<W>(x, x_dtype, share, tile, squares, [](int64_t, auto &v, auto &s) {
#pragma unroll
    for (int k = 0; k < W; k++) s[0] += v[k] * v[k];
  });
  return norm_stats{0.0f, 0.0f, 1.0f / sqrtf(squares[0] / (float)C + eps)};
}

template <int W>
__global__ void layernorm_kernel(const void *x, osp_dtype x_dtype, const void *weight,
                                 const void *bias, osp_dtype param_dtype, float eps, void *y,
                                 osp_dtype y_dtype, int64_t rows, int64_t C, osp_row_tiling tile) {
  each_row(rows, C, W, tile, [&](const row_share &share) {
    const norm_stats s = layernorm_stats<W>(x, x_dtype, eps, C, share, tile);
    normalize_row<W>(x, x_dtype, weight, bias, param_dtype, y, y_dtype, share, s);
  });
}

template <int W>
__global__ void rmsnorm_kernel(const void *x, osp_dtype x_dtype, const void *weight,
                               osp_dtype param_dtype, float eps, void *y, osp_dtype y_dtype,
                               int64_t rows, int64_t C, osp_row_tiling tile) {
  each_row(rows, C, W, tile, [&](const row_share &share) {
    const norm_stats s = rmsnorm_stats<W>(x, x_dtype, eps, C, share, tile);
    normalize_row<W>(x, x_dtype, weight, nullptr, param_dtype, y, y_dtype, share, s);
  });
}

/* ---- Backward ------------------------------------------------------------------------------ */

/* The operands of a norm's backward (x, dy, dx of dtype; weight of param_dtype, NULL without
 * affine), and where the row kernel keeps each row's statistics for the weight's gradient (NULL:
 * not kept). */
struct norm_backward_args {
  const void *x, *dy;
  void *dx;
  osp_dtype dtype;
  const void *weight;
  osp_dtype param_dtype;
  bool centered; /* LayerNorm; RMSNorm has no mean and no mean(g) */
  float eps;
  int64_t C;
  norm_stats *stats;
};

/* g = dy · weight (dy without affine) for the W values from column c of the row. */
template <int W>
__device__ void output_gradient(const norm_backward_args &a, const row_share &share, int64_t c,
                                float (&g)[W]) {
  osp_load_chunk<W>(a.dy, a.dtype, share.start + c, g);
  if (!a.weight) return;
  float w[W];
  osp_load_chunk<W>(a.weight, a.param_dtype, c, w);
#pragma unroll
  for (int k = 0; k < W; k++) g[k] *= w[k];
}

/* Per row: the statistics as the forward takes them (kept where asked), then, where dx is wanted,
 * Σg and Σg·x̂ in one pass and dx += inv · (g − mean(g) − x̂·mean(g·x̂)) in another (RMSNorm
 * without mean(g)). */
template <int W>
__global__ void norm_backward_kernel(norm_backward_args a, int64_t rows, osp_row_tiling tile) {
  each_row(rows, a.C, W, tile, [&](const row_share &share) {
    const norm_stats s = a.centered ? layernorm_stats<W>(a.x, a.dtype, a.eps, a.C, share, tile)
                                    : rmsnorm_stats<W>(a.x, a.dtype, a.eps, a.C, share, tile);
    if (a.stats && share.chunks > 0 && share.first == 0) a.stats[share.row] = s;
    if (!a.dx) return;
    float sums[2]; /* Σg, Σg·x̂ */
    sum_row<W>(a.x, a.dtype, share, tile, sums, [&](int64_t c, auto &v, auto &total) {
      float g[W];
      output_gradient<W>(a, share, c, g);
#pragma unroll
      for (int k = 0; k < W; k++) {
        total[0] += g[k];
        total[1] += g[k] * normalized(v[k], s);
      }
    });
    const float mean_g = a.centered ? sums[0] / (float)a.C : 0.0f, mean_gx = sums[1] / (float)a.C;
    each_chunk<W>(a.x, a.dtype, share, [&](int64_t c, float (&v)[W]) {
      float g[W], d[W];
      output_gradient<W>(a, share, c, g);
      osp_load_chunk<W>(a.dx, a.dtype, share.start + c, d);
#pragma unroll
      for (int k = 0; k < W; k++) d[k] += s.inv * (g[k] - mean_g - normalized(v[k], s) * mean_gx);
      osp_store_chunk<W>(a.dx, a.dtype, share.start + c, d);
    });
  });
}

/* The terms of dweight += Σ dy·x̂ (and, with K = 2, dbias += Σ dy) over rows whose statistics the
 * row kernel kept: row r of the source (starting at element `row`) has stats[row / C]. */
struct norm_weight_terms {
  const void *x, *dy;
  osp_dtype dtype;
  const norm_stats *stats;
  int64_t C;

  template <int W, int K>
  __device__ void add(int64_t row, int64_t column, float (&acc)[K][W]) const {
    const norm_stats s = stats[row / C];
    float v[W], d[W];
    osp_load_chunk<W>(x, dtype, row + column, v);
    osp_load_chunk<W>(dy, dtype, row + column, d);
#pragma unroll
    for (int j = 0; j < W; j++) {
      acc[0][j] += d[j] * normalized(v[j], s);
      if (K == 2) acc[K - 1][j] += d[j];
    }
  }
};

/* The scratch holds the statistics of STATS_ROWS rows in its first half and the partial sums of
 * the weight's gradient in the other: rows beyond go in further batches, each adding its sums to
 * the gradient in turn (an order fixed by the row count). */
constexpr int64_t STATS_FLOATS = OSP_CUDA_SCRATCH_FLOATS / 2;
constexpr int64_t STATS_ROWS = STATS_FLOATS / (int64_t)(sizeof(norm_stats) / sizeof(float));

/* Byte offset of `elements` values of dtype from p (NULL stays NULL). */
template <class T>
T *advance(T *p, osp_dtype dtype, int64_t elements) {
  return p ? (T *)((const char *)p + elements * (dtype == OSP_BF16 ? 2 : 4)) : p;
}

osp_status norm_backward(const char *kernel, const norm_backward_args &a, float *dweight,
                         float *dbias, int64_t rows) {
  const int64_t C = a.C, shape[2] = {rows, C}, grad_shape[2] = {1, C}, stride[2] = {0, 1};
  if (dbias && !dweight) /* Σ dy alone needs no statistics */
    OSP_TRY(osp_sum_products(kernel, 2, shape, grad_shape, a.dy, nullptr, a.dtype,
                             osp_sum_grad{dbias, OSP_F32, stride}, osp_sum_grad{}));
  if (!a.dx && !dweight) return OSP_OK;
  const bool vectors = C % OSP_VEC == 0 && osp_aligned16(a.x) && osp_aligned16(a.dy) &&
                       osp_aligned16(a.dx) && osp_aligned16(a.weight);
  float *scratch = osp_cuda_scratch();
  const int64_t batch = dweight && rows > STATS_ROWS ? STATS_ROWS : rows;
  for (int64_t first = 0; first < rows; first += batch) {
    const int64_t count = rows - first < batch ? rows - first : batch;
    norm_backward_args part = a;
    part.x = advance(a.x, a.dtype, first * C), part.dy = advance(a.dy, a.dtype, first * C);
    part.dx = advance(a.dx, a.dtype, first * C);
    part.stats = dweight ? (norm_stats *)scratch : nullptr;
    osp_pick_width<OSP_VEC, 1>(vectors, [&](auto width) {
      const osp_row_tiling tile = osp_tile_rows(count, C / width.value, false);
      norm_backward_kernel<width.value><<<tile.grid, OSP_ROW_BLOCK, 0, osp_cuda_stream()>>>(
          part, count, tile);
    });
    OSP_TRY(osp_cuda_launched(kernel));
    if (!dweight) continue;
    const int64_t part_shape[2] = {count, C};
    const osp_sum_grad grads[2] = {{dweight, OSP_F32, stride}, {dbias, OSP_F32, stride}};
    const osp_sum_plan p = osp_plan_sum(2, part_shape, grad_shape, dbias ? 2 : 1, grads);
    const norm_weight_terms term = {part.x, part.dy, a.dtype, part.stats, C};
    float *partial = scratch + STATS_FLOATS;
    const int64_t room = OSP_CUDA_SCRATCH_FLOATS - STATS_FLOATS;
    if (dbias)
      OSP_TRY(osp_sum(kernel, p, osp_sum_outputs<2>{{dweight, dbias}, OSP_F32}, vectors, term,
                      partial, room));
    else
      OSP_TRY(osp_sum(kernel, p, osp_sum_outputs<1>{{dweight}, OSP_F32}, vectors, term, partial,
                      room));
  }
  return OSP_OK;
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

extern "C" osp_status osp_cuda_layernorm_backward(const void *x, const void *weight,
                                                  osp_dtype param_dtype, float eps, const void *dy,
                                                  void *dx, osp_dtype dtype, float *dweight,
                                                  float *dbias, int64_t rows, int64_t C) {
  const norm_backward_args a = {x, dy, dx, dtype, weight, param_dtype, true, eps, C, nullptr};
  return norm_backward("osp_cuda_layernorm_backward", a, dweight, dbias, rows);
}

extern "C" osp_status osp_cuda_rmsnorm_backward(const void *x, const void *weight,
                                                osp_dtype param_dtype, float eps, const void *dy,
                                                void *dx, osp_dtype dtype, float *dweight,
                                                int64_t rows, int64_t C) {
  const norm_backward_args a = {x, dy, dx, dtype, weight, param_dtype, false, eps, C, nullptr};
  return norm_backward("osp_cuda_rmsnorm_backward", a, dweight, nullptr, rows);
}
