/* HiF8 quantize-dequantize on CUDA (cuda.h), the element rule of quant/hif8.h (the same inline
 * function the CPU runs): with scaling, a pass for max|x| (each warp's maximum into one word of the
 * backend's scratch by atomicMax on the bits, which order as the values do for x ≥ 0, so the result
 * does not depend on the order), then the element-wise pass. */
#include "cuda/kernels.cuh"
#include "quant/hif8.h"

namespace {

const float AMAX_FLOOR = 1e-8f;

struct hif8_op {
  __device__ float operator()(float x) const { return osp_hif8(x); }
};

/* y = hif8(x·s)/s, s = scale_max / max(amax, 1e−8), x·s rounded to bf16 first for bf16 tensors. */
struct scaled_hif8_op {
  const unsigned *amax_bits;
  float scale_max;
  bool bf16;
  __device__ float operator()(float x) const {
    const float s = scale_max / fmaxf(__uint_as_float(*amax_bits), AMAX_FLOOR);
    float v = x * s;
    if (bf16) v = __bfloat162float(__float2bfloat16_rn(v));
    return osp_hif8(v) / s;
  }
};

__global__ void absmax_kernel(const void *x, osp_dtype dtype, int64_t n, unsigned *amax_bits) {
  float m = 0.0f;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float v[1];
    osp_load_chunk<1>(x, dtype, i, v);
    m = fmaxf(m, fabsf(v[0]));
  }
  for (int offset = 16; offset > 0; offset >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, offset));
  if ((threadIdx.x & 31) == 0) atomicMax(amax_bits, __float_as_uint(m));
}

}  // namespace

extern "C" osp_status osp_cuda_hif8_quantize(const void *x, osp_dtype dtype, void *y, int64_t n, float scale_max) {
  if (scale_max == 0.0f) return osp_map("osp_cuda_hif8_quantize", x, dtype, y, dtype, n, hif8_op{});
  unsigned *amax_bits = (unsigned *)osp_cuda_scratch();
  if (cudaMemsetAsync(amax_bits, 0, sizeof *amax_bits, osp_cuda_stream()) != cudaSuccess)
    return osp_cuda_launched("osp_cuda_hif8_quantize (absmax)");
  const int threads = 256;
  absmax_kernel<<<osp_cuda_blocks(n, threads), threads, 0, osp_cuda_stream()>>>(x, dtype, n, amax_bits);
  OSP_TRY(osp_cuda_launched("osp_cuda_hif8_quantize (absmax)"));
  return osp_map("osp_cuda_hif8_quantize", x, dtype, y, dtype, n, scaled_hif8_op{amax_bits, scale_max, dtype == OSP_BF16});
}
