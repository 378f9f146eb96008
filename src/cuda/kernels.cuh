/* What the element-wise and row-wise kernels share (convert.cu, elementwise.cu, norm.cu, rope.cu,
 * video.cu): chunks of adjacent values moved between bf16 or f32 storage and f32 registers, a
 * tiling that gives each row of a [rows, width] array its own group of threads, and an
 * element-wise map. Internal to src/cuda/. */
#ifndef OSP_CUDA_KERNELS_CUH
#define OSP_CUDA_KERNELS_CUH

#include <type_traits>

#include "cuda/common.cuh"

/* The vector chunk: 8 adjacent values, one 16-byte access in bf16 and two in f32. */
enum { OSP_VEC = 8 };

/* Whether p (NULL included) may be accessed in 16-byte pieces. */
static inline bool osp_aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

/* f32 → bf16 bits exactly as the CPU's osp_f32_to_bf16 (core/dtype.c): round to nearest even,
 * NaN kept quiet with the top of its payload, so both backends store the same bits. */
__device__ __forceinline__ uint32_t osp_bf16_bits(float f) {
  const uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u;
  return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

/* Element i of p (bf16 or f32) set to value, bf16 rounded as osp_bf16_bits. */
__device__ __forceinline__ void osp_put(void *p, osp_dtype dtype, int64_t i, float value) {
  if (dtype == OSP_BF16)
    ((uint16_t *)p)[i] = (uint16_t)osp_bf16_bits(value);
  else
    ((float *)p)[i] = value;
}

/* Two bf16 values packed in a word (the lower address in the low half) as floats, and back. */
__device__ __forceinline__ void osp_unpack_bf16x2(uint32_t word, float *v) {
  v[0] = __uint_as_float(word << 16);
  v[1] = __uint_as_float(word & 0xffff0000u);
}
__device__ __forceinline__ uint32_t osp_pack_bf16x2(const float *v) {
  return osp_bf16_bits(v[0]) | osp_bf16_bits(v[1]) << 16;
}

/* Values first .. first + W − 1 of p (bf16 or f32) as floats, and stored back: in 16-byte pieces
 * where W allows (bf16: W a multiple of 8; f32: of 4), and then p + first must be 16-byte aligned;
 * value by value otherwise. */
template <int W>
__device__ __forceinline__ void osp_load_chunk(const void *p, osp_dtype dtype, int64_t first,
                                               float (&v)[W]) {
  const bool bf16 = dtype == OSP_BF16;
  if (bf16 ? W % 8 == 0 : W % 4 == 0) {
    if (bf16) {
      const uint4 *at = reinterpret_cast<const uint4 *>((const uint16_t *)p + first);
#pragma unroll
      for (int k = 0; k < W / 8; k++) {
        const uint4 raw = at[k];
        osp_unpack_bf16x2(raw.x, v + 8 * k);
        osp_unpack_bf16x2(raw.y, v + 8 * k + 2);
        osp_unpack_bf16x2(raw.z, v + 8 * k + 4);
        osp_unpack_bf16x2(raw.w, v + 8 * k + 6);
      }
    } else {
      const float4 *at = reinterpret_cast<const float4 *>((const float *)p + first);
#pragma unroll
      for (int k = 0; k < W / 4; k++) {
        const float4 q = at[k];
        v[4 * k] = q.x, v[4 * k + 1] = q.y, v[4 * k + 2] = q.z, v[4 * k + 3] = q.w;
      }
    }
  } else {
#pragma unroll
    for (int k = 0; k < W; k++) v[k] = osp_load(p, dtype, first + k);
  }
}

template <int W>
__device__ __forceinline__ void osp_store_chunk(void *p, osp_dtype dtype, int64_t first,
                                                const float (&v)[W]) {
  const bool bf16 = dtype == OSP_BF16;
  if (bf16 ? W % 8 == 0 : W % 4 == 0) {
    if (bf16) {
      uint4 *at = reinterpret_cast<uint4 *>((uint16_t *)p + first);
#pragma unroll
      for (int k = 0; k < W / 8; k++)
        at[k] = make_uint4(osp_pack_bf16x2(v + 8 * k), osp_pack_bf16x2(v + 8 * k + 2),
                           osp_pack_bf16x2(v + 8 * k + 4), osp_pack_bf16x2(v + 8 * k + 6));
    } else {
      float4 *at = reinterpret_cast<float4 *>((float *)p + first);
#pragma unroll
      for (int k = 0; k < W / 4; k++)
        at[k] = make_float4(v[4 * k], v[4 * k + 1], v[4 * k + 2], v[4 * k + 3]);
    }
  } else {
#pragma unroll
    for (int k = 0; k < W; k++) osp_put(p, dtype, first + k, v[k]);
  }
}

/* As osp_load_chunk, or zeros where p is NULL (an operand the caller may leave out). */
template <int W>
__device__ __forceinline__ void osp_load_chunk_or_zero(const void *p, osp_dtype dtype,
                                                       int64_t first, float (&v)[W]) {
  if (p) {
    osp_load_chunk<W>(p, dtype, first, v);
  } else {
#pragma unroll
    for (int k = 0; k < W; k++) v[k] = 0.0f;
  }
}

/* Runs launch(width) with width a std::integral_constant: WIDE where `wide` holds, else NARROW.
 * The launch code is written once for both chunk widths:
 *   osp_pick_width<OSP_VEC, 1>(aligned, [&](auto width) { kernel<width.value><<<...>>>(...); }); */
template <int WIDE, int NARROW, class F>
static void osp_pick_width(bool wide, F launch) {
  if (wide)
    launch(std::integral_constant<int, WIDE>());
  else
    launch(std::integral_constant<int, NARROW>());
}

/* ---- Row tiling -------------------------------------------------------------------------- */

/* Work over [rows, chunks]: each row gets a group of threads_per_row threads, a power of two from
 * 32 to OSP_ROW_BLOCK chosen for about four chunks per thread (several loads in flight each);
 * a block of OSP_ROW_BLOCK threads holds rows_per_block groups. grid.x counts blocks of rows
 * (capped: kernels step over rows by the whole grid); grid.y cuts each row into pieces when rows
 * are few and long, so that a single row of 10⁹ values still fills the GPU. */
enum { OSP_ROW_BLOCK = 256 };
typedef struct {
  int threads_per_row, rows_per_block;
  dim3 grid;
} osp_row_tiling;

/* split_rows false keeps each row in one group (for kernels that reduce over a row). */
static inline osp_row_tiling osp_tile_rows(int64_t rows, int64_t chunks, bool split_rows) {
  const int64_t chunks_per_thread = 4, max_blocks = 65535LL * 32, max_pieces = 65535;
  int threads = 32;
  while (threads < OSP_ROW_BLOCK && threads * chunks_per_thread < chunks) threads *= 2;
  osp_row_tiling tile = {threads, OSP_ROW_BLOCK / threads, dim3(1, 1, 1)};
  int64_t pieces = 1;
  if (split_rows) {
    pieces = (chunks + threads * chunks_per_thread - 1) / (threads * chunks_per_thread);
    pieces = pieces < 1 ? 1 : pieces > max_pieces ? max_pieces : pieces;
  }
  int64_t row_blocks = (rows + tile.rows_per_block - 1) / tile.rows_per_block;
  const int64_t row_block_cap = max_blocks / pieces < 1 ? 1 : max_blocks / pieces;
  row_blocks = row_blocks < 1 ? 1 : row_blocks > row_block_cap ? row_block_cap : row_blocks;
  tile.grid = dim3((unsigned)row_blocks, (unsigned)pieces, 1);
  return tile;
}

/* This thread's place in the tiling: the first row it serves and the step to its next one; its
 * lane in the row group; its first chunk of a row and the step to the next. */
__device__ __forceinline__ int64_t osp_tile_first_row(const osp_row_tiling &tile) {
  return (int64_t)blockIdx.x * tile.rows_per_block + threadIdx.x / tile.threads_per_row;
}
__device__ __forceinline__ int64_t osp_tile_row_step(const osp_row_tiling &tile) {
  return (int64_t)gridDim.x * tile.rows_per_block;
}
__device__ __forceinline__ int osp_tile_lane(const osp_row_tiling &tile) {
  return threadIdx.x % tile.threads_per_row;
}
__device__ __forceinline__ int64_t osp_tile_first_chunk(const osp_row_tiling &tile) {
  return (int64_t)blockIdx.y * tile.threads_per_row + osp_tile_lane(tile);
}
__device__ __forceinline__ int64_t osp_tile_chunk_step(const osp_row_tiling &tile) {
  return (int64_t)gridDim.y * tile.threads_per_row;
}

/* ---- Per-batch-row operands (osp_cuda_rows: modulation and gate tables) --------------------- */

/* Where row b mod Bm of r starts (0 for an absent operand). */
__device__ __forceinline__ int64_t osp_batch_row_start(const osp_cuda_rows &r, int64_t b) {
  return r.data ? b % r.rows * r.row_stride : 0;
}

/* Chunks of 8 need every row of r to start on a 16-byte boundary. */
static inline bool osp_rows_allow_vectors(const osp_cuda_rows &r) {
  return !r.data || (osp_aligned16(r.data) && (r.rows == 1 || r.row_stride % OSP_VEC == 0));
}

/* ---- RoPE ------------------------------------------------------------------------------------ */

/* Rotates the P interleaved pairs of v by their angles:
 * (x₀, x₁) ← (x₀·cos − x₁·sin, x₀·sin + x₁·cos). */
template <int P>
__device__ __forceinline__ void osp_rotate_pairs(float (&v)[2 * P], const float (&cosines)[P],
                                                 const float (&sines)[P]) {
#pragma unroll
  for (int p = 0; p < P; p++) {
    const float x0 = v[2 * p], x1 = v[2 * p + 1];
    v[2 * p] = x0 * cosines[p] - x1 * sines[p];
    v[2 * p + 1] = x0 * sines[p] + x1 * cosines[p];
  }
}

/* ---- Element-wise map -------------------------------------------------------------------- */

/* chunk.template at<W>(first) on values first .. first + W − 1 of n: whole chunks of W values,
 * then the last n mod W values one by one (at<1>). */
template <int W, class Chunk>
__global__ void osp_chunks_kernel(int64_t n, Chunk chunk) {
  const int64_t start = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  const int64_t step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = start; i < n / W; i += step) chunk.template at<W>(i * W);
  for (int64_t i = n / W * W + start; i < n; i += step) chunk.template at<1>(i);
}

/* Launches osp_chunks_kernel on the stream, in chunks of OSP_VEC where `vectors` (every array the
 * chunk touches allows 16-byte access). */
template <class Chunk>
static osp_status osp_each_chunk(const char *kernel, bool vectors, int64_t n, const Chunk &chunk) {
  const int threads = 256;
  osp_pick_width<OSP_VEC, 1>(vectors, [&](auto width) {
    osp_chunks_kernel<width.value><<<osp_cuda_blocks(n / width.value + 1, threads), threads, 0,
                                     osp_cuda_stream()>>>(n, chunk);
  });
  return osp_cuda_launched(kernel);
}

/* y[i] = op(x[i]) (y may be x). */
template <class Op>
struct osp_map_chunk {
  const void *x;
  osp_dtype x_dtype;
  void *y;
  osp_dtype y_dtype;
  Op op;

  template <int W>
  __device__ void at(int64_t first) const {
    float v[W];
    osp_load_chunk<W>(x, x_dtype, first, v);
#pragma unroll
    for (int k = 0; k < W; k++) v[k] = op(v[k]);
    osp_store_chunk<W>(y, y_dtype, first, v);
  }
};

/* y[i] = op(x[i]) for i < n (y may be x). */
template <class Op>
static osp_status osp_map(const char *kernel, const void *x, osp_dtype x_dtype, void *y,
                          osp_dtype y_dtype, int64_t n, Op op) {
  return osp_each_chunk(kernel, osp_aligned16(x) && osp_aligned16(y), n,
                        osp_map_chunk<Op>{x, x_dtype, y, y_dtype, op});
}

#endif
