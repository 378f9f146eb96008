/* Wan's 3D RoPE: tables at listed coordinates and the rotation (osp_cuda_rope_tables_at,
 * osp_cuda_rope_apply), as src/cpu/rope.c, and the rotation's backward, the rotation by −θ
 * (osp_cuda_rope_apply_backward). */
#include "cuda/kernels.cuh"

namespace {

/* Table entry i = n·pairs + pair of token n: pairs [0, dt/2) turn with the frame index, the next
 * dh/2 with the row, the last dw/2 with the column (dh = dw = 2⌊D/6⌋, dt = D − dh − dw), pair j of
 * an axis of d real dims at ω_j = 1 / 10000^(2j/d). Angles and their cos and sin in float64, as on
 * the CPU, stored as float; a padding token (t < 0) sits at the origin: angle 0. */
__global__ void rope_tables_kernel(const int32_t *positions, int64_t tokens, int head_dim,
                                   float *cos_table, float *sin_table) {
  const int pairs = head_dim / 2, spatial_dims = 2 * (head_dim / 6);
  const int axis_dims[3] = {head_dim - 2 * spatial_dims, spatial_dims, spatial_dims};
  const int64_t step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < tokens * pairs; i += step) {
    const int64_t n = i / pairs;
    int axis = 0, j = (int)(i % pairs);
    while (j >= axis_dims[axis] / 2) j -= axis_dims[axis++] / 2;
    const int32_t *position = positions + 3 * n;
    const int64_t coordinate = position[0] < 0 ? 0 : position[axis];
    const double angle = (double)coordinate * (1.0 / pow(10000.0, 2.0 * j / axis_dims[axis]));
    double sin_angle, cos_angle;
    sincos(angle, &sin_angle, &cos_angle);
    cos_table[i] = (float)cos_angle;
    sin_table[i] = (float)sin_angle;
  }
}

/* (x₀, x₁) ← (x₀·cos − x₁·sin, x₀·sin + x₁·cos) over the interleaved pairs of token rows of
 * heads·D values (row = b·N + n), in chunks of W values: W = 8 takes four pairs of one head and
 * their four table entries in vector loads, W = 2 one pair. `inverse` rotates by −θ (sin negated,
 * exactly): the backward. */
template <int W>
__global__ void rope_apply_kernel(void *x, osp_dtype x_dtype, const float *cos_table,
                                  const float *sin_table, int64_t table_batch_stride, int64_t N,
                                  int64_t rows, int64_t D, int64_t width, bool inverse,
                                  osp_row_tiling tile) {
  constexpr int P = W / 2;
  const int64_t chunks = width / W;
  for (int64_t row = osp_tile_first_row(tile); row < rows; row += osp_tile_row_step(tile)) {
    const int64_t table_row = row / N * table_batch_stride + row % N * (D / 2);
    for (int64_t c = osp_tile_first_chunk(tile); c < chunks; c += osp_tile_chunk_step(tile)) {
      const int64_t first = c * W, pair = first % D / 2;
      float v[W], cosines[P], sines[P];
      osp_load_chunk<W>(x, x_dtype, row * width + first, v);
      osp_load_chunk<P>(cos_table, OSP_F32, table_row + pair, cosines);
      osp_load_chunk<P>(sin_table, OSP_F32, table_row + pair, sines);
      if (inverse) {
#pragma unroll
        for (int p = 0; p < P; p++) sines[p] = -sines[p];
      }
      osp_rotate_pairs<P>(v, cosines, sines);
      osp_store_chunk<W>(x, x_dtype, row * width + first, v);
    }
  }
}

osp_status rope_apply(const char *kernel, void *x, osp_dtype x_dtype, const float *cos_table,
                      const float *sin_table, int64_t table_batch_stride, int64_t B, int64_t N,
                      int64_t heads, int64_t D, bool inverse) {
  /* four pairs per chunk need D a multiple of 8 (a chunk stays in one head, and every table row
   * starts on a 16-byte boundary) and aligned arrays */
  const bool vectors = D % OSP_VEC == 0 && table_batch_stride % 4 == 0 && osp_aligned16(x) &&
                       osp_aligned16(cos_table) && osp_aligned16(sin_table);
  osp_pick_width<OSP_VEC, 2>(vectors, [&](auto w) {
    const osp_row_tiling tile = osp_tile_rows(B * N, heads * D / w.value, true);
    rope_apply_kernel<w.value><<<tile.grid, OSP_ROW_BLOCK, 0, osp_cuda_stream()>>>(
        x, x_dtype, cos_table, sin_table, table_batch_stride, N, B * N, D, heads * D, inverse,
        tile);
  });
  return osp_cuda_launched(kernel);
}

}  // namespace

extern "C" osp_status osp_cuda_rope_tables_at(const int32_t *positions, int64_t tokens,
                                              int head_dim, float *cos_table, float *sin_table) {
  const int threads = 256;
  rope_tables_kernel<<<osp_cuda_blocks(tokens * (head_dim / 2), threads), threads, 0,
                       osp_cuda_stream()>>>(positions, tokens, head_dim, cos_table, sin_table);
  return osp_cuda_launched("osp_cuda_rope_tables_at");
}

extern "C" osp_status osp_cuda_rope_apply(void *x, osp_dtype x_dtype, const float *cos_table,
                                          const float *sin_table, int64_t table_batch_stride,
                                          int64_t B, int64_t N, int64_t heads, int64_t D) {
  return rope_apply("osp_cuda_rope_apply", x, x_dtype, cos_table, sin_table, table_batch_stride, B,
                    N, heads, D, false);
}

extern "C" osp_status osp_cuda_rope_apply_backward(void *dx, osp_dtype dtype,
                                                   const float *cos_table, const float *sin_table,
                                                   int64_t table_batch_stride, int64_t B, int64_t N,
                                                   int64_t heads, int64_t D) {
  return rope_apply("osp_cuda_rope_apply_backward", dx, dtype, cos_table, sin_table,
                    table_batch_stride, B, N, heads, D, true);
}
