/* The per-channel and data-movement kernels of channel-first videos [B, C, S] (the ops of
 * src/ops/conv.h beside the convolution): the Wan-VAE's RMS norm over channels (with the SiLU that
 * follows it in every residual block), the latent (de)normalisation, the clamp, box copies and
 * per-batch transposes. Same formulas as src/cpu/channels.c and region.c, f32 arithmetic. */
#include "cuda/kernels.cuh"

extern "C" {
#include "core/tensor.h" /* OSP_MAX_DIMS */
}

namespace {

/* One thread per position (b, s): its C values lie S apart, so a warp reads 32 adjacent positions
 * of one channel at a time. Σ over the channels first, then each value scaled:
 * y = x · √C / max(√Σx², 1e-12) · gamma[c] + bias[c], then v / (1 + e^(−v)) with silu. */
template <bool SILU>
__global__ void channel_rmsnorm_kernel(const void *x, osp_dtype x_dtype, const void *gamma,
                                       const void *bias, osp_dtype param_dtype, void *y,
                                       osp_dtype y_dtype, int64_t B, int64_t C, int64_t S) {
  const float root_c = sqrtf((float)C);
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < B * S;
       i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t first = i / S * C * S + i % S;
    float sum = 0.0f;
    for (int64_t c = 0; c < C; c++) {
      const float v = osp_load(x, x_dtype, first + c * S);
      sum += v * v;
    }
    const float factor = root_c / fmaxf(sqrtf(sum), 1e-12f);
    for (int64_t c = 0; c < C; c++) {
      const float shift = bias ? osp_load(bias, param_dtype, c) : 0.0f;
      float v = osp_load(x, x_dtype, first + c * S) * factor * osp_load(gamma, param_dtype, c) + shift;
      if (SILU) v = v / (1.0f + expf(-v));
      osp_put(y, y_dtype, first + c * S, v);
    }
  }
}

/* y = (x − mean[c]) · inv_std[c], or with inverse y = x / inv_std[c] + mean[c]. */
__global__ void channel_normalize_kernel(const void *x, osp_dtype x_dtype, const void *mean,
                                         const void *inv_std, osp_dtype param_dtype, bool inverse,
                                         void *y, osp_dtype y_dtype, int64_t C, int64_t S,
                                         int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t c = i / S % C;
    const float v = osp_load(x, x_dtype, i), m = osp_load(mean, param_dtype, c);
    const float inv = osp_load(inv_std, param_dtype, c);
    osp_put(y, y_dtype, i, inverse ? v / inv + m : (v - m) * inv);
  }
}

/* min(max(v, lo), hi) with NaN kept, as the CPU writes it. */
struct clamp_op {
  float lo, hi;
  __device__ float operator()(float v) const { return v < lo ? lo : v > hi ? hi : v; }
};

/* A box copy: element i of the box (row-major over size) from src to dst, each at its offset
 * within its own contiguous array. */
struct region {
  int ndim;
  int64_t size[OSP_MAX_DIMS], src_stride[OSP_MAX_DIMS], dst_stride[OSP_MAX_DIMS];
  int64_t src_first, dst_first, count;
};

template <class T>
__global__ void copy_region_kernel(const T *src, T *dst, const region r) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < r.count;
       i += (int64_t)gridDim.x * blockDim.x) {
    int64_t rest = i, from = r.src_first, to = r.dst_first;
    for (int d = r.ndim - 1; d >= 0; d--) {
      const int64_t at = rest % r.size[d];
      rest /= r.size[d];
      from += at * r.src_stride[d];
      to += at * r.dst_stride[d];
    }
    dst[to] = src[from];
  }
}

/* Row-major strides of a contiguous array, and the element an offset points at. */
int64_t place(const int64_t *shape, const int64_t *offset, int ndim, int64_t *stride) {
  int64_t first = 0, step = 1;
  for (int d = ndim - 1; d >= 0; d--) {
    stride[d] = step;
    first += offset[d] * step;
    step *= shape[d];
  }
  return first;
}

/* y[b, n, m] = x[b, m, n] through a 32 × 33 tile of shared memory (the extra column keeps the
 * transposed reads off one bank): block (n0 / 32, m0 / 32, b) reads rows m0.., columns n0.. of x
 * with adjacent threads on adjacent columns, and writes them as rows of y the same way. */
enum { TILE = 32, TILE_ROWS = 8 };

__global__ void transpose_kernel(const void *x, osp_dtype x_dtype, void *y, osp_dtype y_dtype,
                                 int64_t M, int64_t N) {
  __shared__ float tile[TILE][TILE + 1];
  const int64_t b = blockIdx.z, m0 = (int64_t)blockIdx.y * TILE, n0 = (int64_t)blockIdx.x * TILE;
  const int64_t batch = b * M * N;
  for (int r = threadIdx.y; r < TILE; r += TILE_ROWS) {
    const int64_t m = m0 + r, n = n0 + threadIdx.x;
    if (m < M && n < N) tile[r][threadIdx.x] = osp_load(x, x_dtype, batch + m * N + n);
  }
  __syncthreads();
  for (int r = threadIdx.y; r < TILE; r += TILE_ROWS) {
    const int64_t n = n0 + r, m = m0 + threadIdx.x;
    if (m < M && n < N) osp_put(y, y_dtype, batch + n * M + m, tile[threadIdx.x][r]);
  }
}

}  // namespace

extern "C" osp_status osp_cuda_channel_rmsnorm(const void *x, osp_dtype x_dtype, const void *gamma,
                                               const void *bias, osp_dtype param_dtype, bool silu,
                                               void *y, osp_dtype y_dtype, int64_t B, int64_t C,
                                               int64_t S) {
  const unsigned blocks = osp_cuda_blocks(B * S, 256);
  if (silu)
    channel_rmsnorm_kernel<true><<<blocks, 256, 0, osp_cuda_stream()>>>(x, x_dtype, gamma, bias, param_dtype,
                                                                      y, y_dtype, B, C, S);
  else
    channel_rmsnorm_kernel<false><<<blocks, 256, 0, osp_cuda_stream()>>>(x, x_dtype, gamma, bias, param_dtype,
                                                                       y, y_dtype, B, C, S);
  return osp_cuda_launched("osp_cuda_channel_rmsnorm");
}

extern "C" osp_status osp_cuda_channel_normalize(const void *x, osp_dtype x_dtype, const void *mean,
                                                 const void *inv_std, osp_dtype param_dtype,
                                                 bool inverse, void *y, osp_dtype y_dtype, int64_t B,
                                                 int64_t C, int64_t S) {
  const int64_t n = B * C * S;
  channel_normalize_kernel<<<osp_cuda_blocks(n, 256), 256, 0, osp_cuda_stream()>>>(
      x, x_dtype, mean, inv_std, param_dtype, inverse, y, y_dtype, C, S, n);
  return osp_cuda_launched("osp_cuda_channel_normalize");
}

extern "C" osp_status osp_cuda_clamp(const void *x, osp_dtype x_dtype, float lo, float hi, void *y,
                                     osp_dtype y_dtype, int64_t n) {
  return osp_map("osp_cuda_clamp", x, x_dtype, y, y_dtype, n, clamp_op{lo, hi});
}

extern "C" osp_status osp_cuda_copy_region(const void *src, const int64_t *src_shape,
                                           const int64_t *src_offset, void *dst,
                                           const int64_t *dst_shape, const int64_t *dst_offset,
                                           const int64_t *size, int ndim, size_t elem_bytes) {
  region r = {ndim, {0}, {0}, {0}, 0, 0, 1};
  r.src_first = place(src_shape, src_offset, ndim, r.src_stride);
  r.dst_first = place(dst_shape, dst_offset, ndim, r.dst_stride);
  for (int d = 0; d < ndim; d++) {
    r.size[d] = size[d];
    r.count *= size[d];
  }
  const unsigned blocks = osp_cuda_blocks(r.count, 256);
  if (elem_bytes == 2)
    copy_region_kernel<uint16_t><<<blocks, 256, 0, osp_cuda_stream()>>>((const uint16_t *)src, (uint16_t *)dst, r);
  else
    copy_region_kernel<uint32_t><<<blocks, 256, 0, osp_cuda_stream()>>>((const uint32_t *)src, (uint32_t *)dst, r);
  return osp_cuda_launched("osp_cuda_copy_region");
}

extern "C" osp_status osp_cuda_transpose(const void *x, osp_dtype x_dtype, void *y, osp_dtype y_dtype,
                                         int64_t B, int64_t M, int64_t N) {
  if (B > 65535 || (M + TILE - 1) / TILE > 65535)
    return osp_fail(OSP_ERR_UNSUPPORTED, "osp_cuda_transpose: [%lld, %lld, %lld] exceeds the kernel's grid",
                    (long long)B, (long long)M, (long long)N);
  const dim3 grid((unsigned)((N + TILE - 1) / TILE), (unsigned)((M + TILE - 1) / TILE), (unsigned)B);
  transpose_kernel<<<grid, dim3(TILE, TILE_ROWS), 0, osp_cuda_stream()>>>(x, x_dtype, y, y_dtype, M, N);
  return osp_cuda_launched("osp_cuda_transpose");
}
