/* Deterministic sums over rows, the reductions of the backward ops: the gradient of a broadcast
 * operand (a bias, a norm's weight, a row of a modulation table, osp_add's smaller operand) is
 * the sum of per-element terms over the dimensions it was broadcast along. Internal to src/cuda/.
 *
 * The source is a contiguous array [shape]; the gradient has size 1 along the summed dimensions
 * and the source's size along the kept ones, at strides of its own. Its elements are
 * (group g, column c): g numbers the kept leading coordinates, c runs along the source's last
 * dimension (kept: the source's adjacent values, read in chunks of 8 where they allow; summed: a
 * single column, the last dimension joining the summed ones). Each gradient element gets the sum
 * of `terms` source rows, s numbering the summed coordinates.
 *
 * Two stages, with no atomics, so every run gives the same bits:
 *   1. blocks of 32 column lanes × 8 row lanes: block (column tile, group, slice) adds the terms of
 *      one slice of the rows, each row lane every 8th row in order, then the 8 lanes' sums in lane
 *      order, and stores the block's sum in the scratch (or, with a single slice, adds it to the
 *      gradient at once);
 *   2. one thread per gradient element adds the slices' sums in slice order onto the gradient.
 * The number of slices follows from the shape alone (about OSP_SUM_ROWS_PER_SLICE rows each, as
 * many as the scratch holds), so the order of every addition is fixed by the shape. */
#ifndef OSP_CUDA_REDUCE_CUH
#define OSP_CUDA_REDUCE_CUH

#include "cuda/kernels.cuh"

enum {
  OSP_SUM_MAX_DIMS = 8,
  OSP_SUM_MAX_OUTPUTS = 2,  /* sums of the same rows taken in one pass (dshift and dscale) */
  OSP_SUM_COLUMN_LANES = 32,
  OSP_SUM_ROW_LANES = OSP_ROW_BLOCK / OSP_SUM_COLUMN_LANES,
  OSP_SUM_ROWS_PER_SLICE = 256,
};

/* The geometry of a sum (see the top of this file). Offsets and strides count elements. */
struct osp_sum_plan {
  int64_t width;          /* columns */
  int64_t groups, terms;  /* gradient rows, and the source rows summed into each */
  int kept, summed;       /* leading dimensions of each kind */
  int64_t kept_size[OSP_SUM_MAX_DIMS], kept_source[OSP_SUM_MAX_DIMS];
  int64_t kept_grad[OSP_SUM_MAX_OUTPUTS][OSP_SUM_MAX_DIMS]; /* each output's strides */
  int64_t summed_size[OSP_SUM_MAX_DIMS], summed_source[OSP_SUM_MAX_DIMS];
};

/* A gradient output: f32, or bf16 where nothing is summed (an activation's gradient). */
struct osp_sum_grad {
  void *data;             /* NULL: not wanted */
  osp_dtype dtype;
  const int64_t *stride;  /* one per dimension of the source (the last is 1 where kept) */
};

/* The plan of a sum of a contiguous [shape] (ndim ≤ OSP_SUM_MAX_DIMS) onto grad_shape (each 1 or
 * shape's), for `outputs` gradients of that shape at their own strides. */
osp_sum_plan osp_plan_sum(int ndim, const int64_t *shape, const int64_t *grad_shape, int outputs,
                          const osp_sum_grad *grads);

/* Σ_d coordinate_d · strides[d] for the row-major coordinates of `index` over sizes[0 .. count). */
__host__ __device__ __forceinline__ int64_t osp_sum_offset(int64_t index, int count,
                                                           const int64_t *sizes,
                                                           const int64_t *strides) {
  int64_t offset = 0;
  for (int d = count - 1; d >= 0; d--) {
    offset += index % sizes[d] * strides[d];
    index /= sizes[d];
  }
  return offset;
}

/* The outputs of one launch: K gradients of one dtype. */
template <int K>
struct osp_sum_outputs {
  void *data[K];
  osp_dtype dtype;
};

/* Gradient k's element (g, c) += total, in f32. */
template <int K>
__device__ __forceinline__ void osp_sum_add(const osp_sum_plan &p, const osp_sum_outputs<K> &out,
                                            int k, int64_t g, int64_t c, float total) {
  const int64_t at = osp_sum_offset(g, p.kept, p.kept_size, p.kept_grad[k]) + c;
  osp_put(out.data[k], out.dtype, at, osp_load(out.data[k], out.dtype, at) + total);
}

/* Stage 1. Term: a functor with
 *   template <int W, int K> __device__ void add(int64_t row, int64_t column, float (&acc)[K][W])
 * adding the K terms of the W columns from `column` of the source row starting at element `row`. */
template <int W, int K, class Term>
__global__ void __launch_bounds__(OSP_ROW_BLOCK)
    osp_sum_kernel(osp_sum_plan p, Term term, osp_sum_outputs<K> out, float *partial,
                   int64_t slices) {
  constexpr int TILE = OSP_SUM_COLUMN_LANES * W;
  __shared__ float lanes[OSP_SUM_ROW_LANES][K][TILE];
  const int column_lane = threadIdx.x % OSP_SUM_COLUMN_LANES;
  const int row_lane = threadIdx.x / OSP_SUM_COLUMN_LANES;
  const int64_t tile = (int64_t)blockIdx.x * TILE, column = tile + column_lane * W;
  const int64_t per_slice = (p.terms + slices - 1) / slices, first = blockIdx.z * per_slice;
  const int64_t end = first + per_slice < p.terms ? first + per_slice : p.terms;
  for (int64_t g = blockIdx.y; g < p.groups; g += gridDim.y) {
    const int64_t group_start = osp_sum_offset(g, p.kept, p.kept_size, p.kept_source);
    float acc[K][W] = {};
    if (column < p.width)
      for (int64_t s = first + row_lane; s < end; s += OSP_SUM_ROW_LANES) {
        const int64_t row = group_start + osp_sum_offset(s, p.summed, p.summed_size, p.summed_source);
        term.template add<W, K>(row, column, acc);
      }
#pragma unroll
    for (int k = 0; k < K; k++)
#pragma unroll
      for (int j = 0; j < W; j++) lanes[row_lane][k][column_lane * W + j] = acc[k][j];
    __syncthreads();
    for (int i = threadIdx.x; i < K * TILE; i += blockDim.x) {
      const int k = i / TILE, at = i % TILE;
      if (tile + at >= p.width) continue;
      float total = 0.0f;
      for (int r = 0; r < OSP_SUM_ROW_LANES; r++) total += lanes[r][k][at];
      if (slices == 1)
        osp_sum_add(p, out, k, g, tile + at, total);
      else
        partial[((k * p.groups + g) * slices + blockIdx.z) * p.width + tile + at] = total;
    }
    __syncthreads(); /* the next group writes `lanes` again */
  }
}

/* Stage 2: one thread per output element, the slices in order. */
template <int K>
__global__ void osp_sum_finish_kernel(osp_sum_plan p, osp_sum_outputs<K> out, const float *partial,
                                      int64_t slices) {
  const int64_t n = K * p.groups * p.width, step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
    const int64_t c = i % p.width, g = i / p.width % p.groups;
    const int k = (int)(i / (p.width * p.groups));
    const float *sums = partial + (k * p.groups + g) * slices * p.width + c;
    float total = 0.0f;
    for (int64_t s = 0; s < slices; s++) total += sums[s * p.width];
    osp_sum_add(p, out, k, g, c, total);
  }
}

/* Runs the sum on the stream, the partial sums in scratch[0 .. scratch_floats). `vectors`: the
 * term's arrays allow chunks of 8 (16-byte aligned); the width must allow them too. */
template <int K, class Term>
osp_status osp_sum(const char *kernel, const osp_sum_plan &p, const osp_sum_outputs<K> &out,
                   bool vectors, const Term &term, float *scratch, int64_t scratch_floats) {
  int64_t slices = (p.terms + OSP_SUM_ROWS_PER_SLICE - 1) / OSP_SUM_ROWS_PER_SLICE;
  const int64_t room = scratch_floats / (K * p.groups * p.width);
  if (slices > room) slices = room;
  if (slices > 65535) slices = 65535;
  if (slices < 1) slices = 1;
  const unsigned groups = (unsigned)(p.groups < 65535 ? p.groups : 65535);
  osp_pick_width<OSP_VEC, 1>(vectors && p.width % OSP_VEC == 0, [&](auto w) {
    const int64_t tile = OSP_SUM_COLUMN_LANES * w.value;
    const dim3 grid((unsigned)((p.width + tile - 1) / tile), groups, (unsigned)slices);
    osp_sum_kernel<w.value, K><<<grid, OSP_ROW_BLOCK, 0, osp_cuda_stream()>>>(p, term, out, scratch,
                                                                             slices);
  });
  OSP_TRY(osp_cuda_launched(kernel));
  if (slices == 1) return OSP_OK;
  osp_sum_finish_kernel<K><<<osp_cuda_blocks(K * p.groups * p.width, 256), 256, 0,
                             osp_cuda_stream()>>>(p, out, scratch, slices);
  return osp_cuda_launched(kernel);
}

/* The sums most backwards take, over a contiguous a [shape] (and b, its shape, where a product is
 * summed), both of dtype, onto grads of grad_shape (either may be absent):
 *   sum_a  += Σ a        (a bias, a shift, osp_add's operand)
 *   sum_ab += Σ a · b    (a scale, a gate)
 * in one pass over the rows when both are wanted. */
osp_status osp_sum_products(const char *kernel, int ndim, const int64_t *shape,
                            const int64_t *grad_shape, const void *a, const void *b,
                            osp_dtype dtype, osp_sum_grad sum_a, osp_sum_grad sum_ab);

/* grad[r, :] += Σ_{b ≡ r mod Bm, n} a[b, n, :] (· b[b, n, :]) for [B, N, C] sources and [Bm, C]
 * gradient rows: the sums of the modulation and gate tables. */
osp_status osp_sum_per_table_row(const char *kernel, const void *a, const void *b, osp_dtype dtype,
                                 osp_cuda_grad_rows sum_a, osp_cuda_grad_rows sum_ab, int64_t B,
                                 int64_t N, int64_t C);

#endif
