/* Fused row kernels: what the DiT block does to each token between two matrix products, in one
 * pass over the row instead of two or three (osp_cuda_layernorm_modulate,
 * osp_cuda_gated_add_layernorm, osp_cuda_rmsnorm_rope, osp_cuda_gated_add_gather).
 *
 * One block owns one row at a time and keeps it in registers: each thread loads its chunks of 8
 * values once (adding the residual where there is one, and writing the sum back), the block sums
 * them for the mean and then the squared deviations from it (two exact passes over registers, no
 * cancellation), and the normalized row leaves after the affine, modulation and rotation steps.
 * DRAM sees each operand read once and each result written once. Rows that do not fit (width
 * not a multiple of 8, more than 32768 values, f32 activations, misaligned operands) take the
 * unfused kernels in sequence, with the same results. */
#include "cuda/kernels.cuh"

namespace {

constexpr int MAX_CHUNKS = 8;    /* chunks of 8 values per thread */
constexpr int MAX_THREADS = 512; /* per row: rows up to MAX_CHUNKS · 512 · 8 = 32768 values */

/* One row kernel's operands. Every optional operand is absent when its pointer is NULL. */
struct fused_row {
  void *x;                 /* [rows, C]; the residual stream when y is given (then updated) */
  osp_dtype x_dtype;
  const void *y;           /* x += y · gate before the norm */
  osp_dtype y_dtype;
  osp_cuda_rows gate;      /* [Bm, C] rows, row b mod Bm for batch row b = row / N */
  bool rms;                /* RMSNorm (no centring) instead of LayerNorm */
  const void *weight;      /* [C] affine weight, and bias [C] (LayerNorm only) */
  const void *bias;
  osp_dtype param_dtype;
  osp_cuda_rows shift, scale; /* modulation: · (1 + scale) + shift */
  const float *cos_table;  /* RoPE over heads of head_dim: [Bt, N, head_dim/2] tables */
  const float *sin_table;
  int64_t table_batch_stride; /* 0 (one table for every batch row) or N·head_dim/2 */
  int64_t head_dim;
  void *out;               /* [rows, C] */
  osp_dtype out_dtype;
  float eps;
  int64_t rows, N, C;
};

/* The sum of one value per thread over the block, the same in every thread (a fixed order:
 * warps by shuffles, then the warps' sums in warp order). */
__device__ float block_sum(float value) {
  __shared__ float partial[32];
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
  const int warp = threadIdx.x / 32, warps = blockDim.x / 32;
  if (threadIdx.x % 32 == 0) partial[warp] = value;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < warps; w++) total += partial[w];
  __syncthreads(); /* the next call writes partial again */
  return total;
}

/* A chunk of 8 bf16 values (one 16-byte access) as floats, and back. */
__device__ __forceinline__ void unpack(const uint4 &raw, float (&v)[OSP_VEC]) {
  osp_unpack_bf16x2(raw.x, v), osp_unpack_bf16x2(raw.y, v + 2);
  osp_unpack_bf16x2(raw.z, v + 4), osp_unpack_bf16x2(raw.w, v + 6);
}
__device__ __forceinline__ uint4 pack(const float (&v)[OSP_VEC]) {
  return make_uint4(osp_pack_bf16x2(v), osp_pack_bf16x2(v + 2), osp_pack_bf16x2(v + 4),
                    osp_pack_bf16x2(v + 6));
}

/* Loads this thread's chunks of the row (chunk c = threadIdx.x + k·blockDim.x) as bf16, adds the
 * gated residual and stores the sum back to x where there is one (the row keeps the bf16 sum,
 * which is what the unfused kernels would read back); chunks past the row read as 0. */
template <int K>
__device__ void load_row(const fused_row &p, int64_t row, uint4 (&raw)[K]) {
  const int64_t chunks = p.C / OSP_VEC, start = row * p.C;
  const uint4 *x = reinterpret_cast<const uint4 *>((const uint16_t *)p.x + start);
#pragma unroll
  for (int k = 0; k < K; k++) {
    const int64_t c = threadIdx.x + (int64_t)k * blockDim.x;
    raw[k] = c < chunks ? x[c] : make_uint4(0, 0, 0, 0);
  }
  if (!p.y) return;
  const uint4 *y = reinterpret_cast<const uint4 *>((const uint16_t *)p.y + start);
  const int64_t gate_start = osp_batch_row_start(p.gate, row / p.N);
#pragma unroll
  for (int k = 0; k < K; k++) {
    const int64_t c = threadIdx.x + (int64_t)k * blockDim.x;
    if (c >= chunks) continue;
    float v[OSP_VEC], u[OSP_VEC], gate[OSP_VEC];
    unpack(raw[k], v);
    unpack(y[c], u);
    osp_load_chunk_or_zero<OSP_VEC>(p.gate.data, p.gate.dtype, gate_start + c * OSP_VEC, gate);
#pragma unroll
    for (int e = 0; e < OSP_VEC; e++) v[e] += u[e] * (p.gate.data ? gate[e] : 1.0f);
    raw[k] = pack(v);
    reinterpret_cast<uint4 *>((uint16_t *)p.x + start)[c] = raw[k];
  }
}

/* out = norm(v) [· weight + bias] [· (1 + scale) + shift] [rotated], chunk by chunk. */
template <int K>
__device__ void store_normalized(const fused_row &p, int64_t row, const uint4 (&raw)[K],
                                 float mean, float inv) {
  constexpr int PAIRS = OSP_VEC / 2;
  const int64_t chunks = p.C / OSP_VEC, start = row * p.C, b = row / p.N;
  const int64_t shift_start = osp_batch_row_start(p.shift, b), scale_start = osp_batch_row_start(p.scale, b);
  const int64_t table_row = b * p.table_batch_stride + row % p.N * (p.head_dim / 2);
  uint4 *out = reinterpret_cast<uint4 *>((uint16_t *)p.out + start);
#pragma unroll
  for (int k = 0; k < K; k++) {
    const int64_t c = threadIdx.x + (int64_t)k * blockDim.x;
    if (c >= chunks) continue;
    const int64_t first = c * OSP_VEC;
    float v[OSP_VEC];
    unpack(raw[k], v);
#pragma unroll
    for (int e = 0; e < OSP_VEC; e++) v[e] = (v[e] - mean) * inv;
    if (p.weight) {
      float w[OSP_VEC], bias[OSP_VEC];
      osp_load_chunk<OSP_VEC>(p.weight, p.param_dtype, first, w);
      osp_load_chunk_or_zero<OSP_VEC>(p.bias, p.param_dtype, first, bias);
#pragma unroll
      for (int e = 0; e < OSP_VEC; e++) v[e] = v[e] * w[e] + bias[e];
    }
    if (p.scale.data) {
      float shift[OSP_VEC], scale[OSP_VEC];
      osp_load_chunk<OSP_VEC>(p.shift.data, p.shift.dtype, shift_start + first, shift);
      osp_load_chunk<OSP_VEC>(p.scale.data, p.scale.dtype, scale_start + first, scale);
#pragma unroll
      for (int e = 0; e < OSP_VEC; e++) v[e] = v[e] * (1.0f + scale[e]) + shift[e];
    }
    if (p.cos_table) {
      const int64_t pair = first % p.head_dim / 2;
      float cosines[PAIRS], sines[PAIRS];
      osp_load_chunk<PAIRS>(p.cos_table, OSP_F32, table_row + pair, cosines);
      osp_load_chunk<PAIRS>(p.sin_table, OSP_F32, table_row + pair, sines);
      osp_rotate_pairs<PAIRS>(v, cosines, sines);
    }
    out[c] = pack(v);
  }
}

/* Σ over this thread's chunks of f(value), f applied to every value of a real chunk. */
template <int K, class F>
__device__ float sum_over_row(const fused_row &p, const uint4 (&raw)[K], F f) {
  const int64_t chunks = p.C / OSP_VEC;
  float sum = 0.0f;
#pragma unroll
  for (int k = 0; k < K; k++) {
    if (threadIdx.x + (int64_t)k * blockDim.x >= chunks) continue;
    float v[OSP_VEC];
    unpack(raw[k], v);
#pragma unroll
    for (int e = 0; e < OSP_VEC; e++) sum += f(v[e]);
  }
  return block_sum(sum);
}

/* LayerNorm: mean = Σv/C, var = Σ(v − mean)²/C, inv = 1/√(var + eps).
 * RMSNorm: mean taken as 0, inv = 1/√(Σv²/C + eps).
 * The row stays in registers as bf16 (4 registers per chunk of 8), which leaves room for several
 * rows per multiprocessor, each with its loads in flight. */
template <int K>
__global__ void __launch_bounds__(MAX_THREADS) fused_row_kernel(const fused_row p) {
  for (int64_t row = blockIdx.x; row < p.rows; row += gridDim.x) {
    uint4 raw[K];
    load_row<K>(p, row, raw);
    const float mean = p.rms ? 0.0f : sum_over_row<K>(p, raw, [](float v) { return v; }) / (float)p.C;
    const float squares = sum_over_row<K>(p, raw, [mean](float v) { return (v - mean) * (v - mean); });
    store_normalized<K>(p, row, raw, mean, 1.0f / sqrtf(squares / (float)p.C + p.eps));
  }
}

/* Threads per row: a power of two from 32 to MAX_THREADS, the fewest that leave each thread at
 * most 3 chunks; rows of more than 1536 chunks give each thread up to MAX_CHUNKS. Measured on an
 * H200 at 75,600 × 5120 (osp bench): at most 3 chunks a thread was the best of 2, 3, 4, 6 and 8
 * for the residual step + LayerNorm (1.26 ms against 1.33–2.00), within 3% of the best for the
 * others. */
int threads_for(int64_t chunks) {
  int threads = 32;
  while (threads < MAX_THREADS && threads * 3 < chunks) threads *= 2;
  return threads;
}

template <int K>
void launch_rows(const fused_row &p, int threads, int64_t chunks_per_thread) {
  if constexpr (K < MAX_CHUNKS) {
    if (chunks_per_thread > K) return launch_rows<K + 1>(p, threads, chunks_per_thread);
  }
  const int64_t grid = p.rows < (1LL << 30) ? p.rows : (1LL << 30);
  fused_row_kernel<K><<<(unsigned)grid, threads, 0, osp_cuda_stream()>>>(p);
}

/* Whether the fused kernel takes these operands: rows of whole 16-byte chunks, short enough for
 * the registers, every table row aligned. */
bool fits(const fused_row &p) {
  if (p.C % OSP_VEC || p.C / OSP_VEC > (int64_t)MAX_CHUNKS * MAX_THREADS) return false;
  if (p.x_dtype != OSP_BF16 || (p.y && p.y_dtype != OSP_BF16) || p.out_dtype != OSP_BF16) return false;
  if (!osp_aligned16(p.x) || !osp_aligned16(p.y) || !osp_aligned16(p.out)) return false;
  if (!osp_aligned16(p.weight) || !osp_aligned16(p.bias)) return false;
  if (!osp_rows_allow_vectors(p.gate) || !osp_rows_allow_vectors(p.shift) || !osp_rows_allow_vectors(p.scale))
    return false;
  if (p.cos_table)
    return p.head_dim % OSP_VEC == 0 && p.table_batch_stride % 4 == 0 &&
           osp_aligned16(p.cos_table) && osp_aligned16(p.sin_table);
  return true;
}

/* A norm over the rows of x [B, N, C] into out, both of dtype, with nothing else yet. */
fused_row token_rows(void *x, void *out, osp_dtype dtype, float eps, int64_t B, int64_t N, int64_t C) {
  fused_row p = {};
  p.x = x, p.x_dtype = dtype, p.out = out, p.out_dtype = dtype;
  p.eps = eps, p.rows = B * N, p.N = N, p.C = C;
  return p;
}

osp_status run_fused(const char *kernel, const fused_row &p) {
  if (p.rows == 0) return OSP_OK;
  const int64_t chunks = p.C / OSP_VEC;
  const int threads = threads_for(chunks);
  launch_rows<1>(p, threads, (chunks + threads - 1) / threads);
  return osp_cuda_launched(kernel);
}

/* dst row i = (x + y · gate) at source row index[i] (zeros for a negative index), source row r
 * of batch row r / N; x is not written. Chunks of W values over a tiling of the destination
 * rows. */
template <int W>
__global__ void gated_add_gather_kernel(const void *x, const void *y, osp_cuda_rows gate,
                                        const int32_t *index, void *dst, osp_dtype dtype,
                                        int64_t rows, int64_t N, int64_t C, osp_row_tiling tile) {
  const int64_t chunks = C / W;
  for (int64_t row = osp_tile_first_row(tile); row < rows; row += osp_tile_row_step(tile)) {
    const int32_t from = index[row];
    const int64_t gate_start = from < 0 ? 0 : osp_batch_row_start(gate, from / N);
    for (int64_t c = osp_tile_first_chunk(tile); c < chunks; c += osp_tile_chunk_step(tile)) {
      float v[W] = {}, u[W], g[W];
      if (from >= 0) {
        osp_load_chunk<W>(x, dtype, from * C + c * W, v);
        osp_load_chunk<W>(y, dtype, from * C + c * W, u);
        osp_load_chunk_or_zero<W>(gate.data, gate.dtype, gate_start + c * W, g);
#pragma unroll
        for (int k = 0; k < W; k++) v[k] += u[k] * (gate.data ? g[k] : 1.0f);
      }
      osp_store_chunk<W>(dst, dtype, row * C + c * W, v);
    }
  }
}

}  // namespace

extern "C" osp_status osp_cuda_layernorm_modulate(const void *x, osp_cuda_rows shift,
                                                  osp_cuda_rows scale, float eps, void *y,
                                                  osp_dtype x_dtype, int64_t B, int64_t N,
                                                  int64_t C) {
  fused_row p = token_rows((void *)x, y, x_dtype, eps, B, N, C);
  p.shift = shift, p.scale = scale;
  if (fits(p)) return run_fused("osp_cuda_layernorm_modulate", p);
  OSP_TRY(osp_cuda_layernorm(x, x_dtype, nullptr, nullptr, OSP_F32, eps, y, x_dtype, B * N, C));
  return osp_cuda_modulate(y, shift, scale, y, x_dtype, B, N, C);
}

extern "C" osp_status osp_cuda_gated_add_layernorm(void *x, const void *y, osp_cuda_rows gate,
                                                   const void *weight, const void *bias,
                                                   osp_dtype param_dtype, osp_cuda_rows shift,
                                                   osp_cuda_rows scale, float eps, void *normed,
                                                   osp_dtype dtype, int64_t B, int64_t N,
                                                   int64_t C) {
  fused_row p = token_rows(x, normed, dtype, eps, B, N, C);
  p.y = y, p.y_dtype = dtype, p.gate = gate;
  p.weight = weight, p.bias = bias, p.param_dtype = param_dtype;
  p.shift = shift, p.scale = scale;
  if (fits(p)) return run_fused("osp_cuda_gated_add_layernorm", p);
  OSP_TRY(osp_cuda_gated_add(x, dtype, y, dtype, gate, B, N, C));
  OSP_TRY(osp_cuda_layernorm(x, dtype, weight, bias, param_dtype, eps, normed, dtype, B * N, C));
  return scale.data ? osp_cuda_modulate(normed, shift, scale, normed, dtype, B, N, C) : OSP_OK;
}

extern "C" osp_status osp_cuda_rmsnorm_rope(void *x, osp_dtype x_dtype, const void *weight,
                                            osp_dtype param_dtype, float eps,
                                            const float *cos_table, const float *sin_table,
                                            int64_t table_batch_stride, int64_t B, int64_t N,
                                            int64_t heads, int64_t D) {
  fused_row p = token_rows(x, x, x_dtype, eps, B, N, heads * D);
  p.rms = true, p.weight = weight, p.param_dtype = param_dtype;
  p.cos_table = cos_table, p.sin_table = sin_table;
  p.table_batch_stride = table_batch_stride, p.head_dim = D;
  if (fits(p)) return run_fused("osp_cuda_rmsnorm_rope", p);
  OSP_TRY(osp_cuda_rmsnorm(x, x_dtype, weight, param_dtype, eps, x, x_dtype, B * N, heads * D));
  return osp_cuda_rope_apply(x, x_dtype, cos_table, sin_table, table_batch_stride, B, N, heads, D);
}

extern "C" osp_status osp_cuda_gated_add_gather(const void *x, const void *y, osp_cuda_rows gate,
                                                int64_t N, const int32_t *index, void *dst,
                                                osp_dtype dtype, int64_t rows, int64_t C) {
  const bool vectors = C % OSP_VEC == 0 && osp_aligned16(x) && osp_aligned16(y) &&
                       osp_aligned16(dst) && osp_rows_allow_vectors(gate);
  osp_pick_width<OSP_VEC, 1>(vectors, [&](auto width) {
    const osp_row_tiling tile = osp_tile_rows(rows, C / width.value, true);
    gated_add_gather_kernel<width.value><<<tile.grid, OSP_ROW_BLOCK, 0, osp_cuda_stream()>>>(
        x, y, gate, index, dst, dtype, rows, N, C, tile);
  });
  return osp_cuda_launched("osp_cuda_gated_add_gather");
}
