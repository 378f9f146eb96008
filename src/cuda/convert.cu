/* Dtype conversion and normal samples (osp_cuda_convert, osp_cuda_randn). */
#include "cuda/kernels.cuh"

namespace {

struct identity_op {
  __device__ float operator()(float v) const { return v; }
};

/* ---- Philox4x32-10 and Box-Muller, as core/rng.c -------------------------------------------- */

constexpr uint32_t PHILOX_M0 = 0xD2511F53u, PHILOX_M1 = 0xCD9E8D57u;
constexpr uint32_t PHILOX_W0 = 0x9E3779B9u, PHILOX_W1 = 0xBB67AE85u;
constexpr int PHILOX_ROUNDS = 10, WORDS_PER_BLOCK = 4;
constexpr float TWO_PI = 6.28318530717958647692f;

/* Ten rounds on counter {x, y, z, w}: each crosses the halves of two 32×32 → 64-bit products with
 * the other words and the key, which steps by the Weyl constants between rounds. */
__device__ uint4 philox4x32_10(uint4 counter, uint2 key) {
#pragma unroll
  for (int round = 0; round < PHILOX_ROUNDS; round++) {
    if (round > 0) {
      key.x += PHILOX_W0;
      key.y += PHILOX_W1;
    }
    const uint32_t high0 = __umulhi(PHILOX_M0, counter.x), low0 = PHILOX_M0 * counter.x;
    const uint32_t high1 = __umulhi(PHILOX_M1, counter.z), low1 = PHILOX_M1 * counter.z;
    counter = make_uint4(high1 ^ counter.y ^ key.x, low1, high0 ^ counter.w ^ key.y, low0);
  }
  return counter;
}

/* (bits >> 8)·2⁻²⁴ + 2⁻²⁵ in float, never 0. Here and below the _rn intrinsics keep nvcc from
 * fusing a multiply and an add into one FMA, which the CPU (C11, no contraction) never does. */
__device__ float uniform_from_bits(uint32_t bits) {
  return __fadd_rn(__fmul_rn(__uint2float_rn(bits >> 8), 0x1p-24f), 0x1p-25f);
}

/* Box-Muller on two words, in core/rng.c's operations: radius √(−2 log u₁), angle 2π·u₂, each
 * f32 step rounded alike, and log, cos and sin taken in double and rounded to float. That gives
 * the correctly rounded float for every one of the 2²⁴ uniforms (checked exhaustively on the
 * host: the double results lie at least 9 double ulps from a float rounding boundary, and CUDA's
 * double log, sin and cos err by at most 2), so CPU and GPU agree bit for bit whatever their
 * libm's last-bit choices. */
__device__ float2 box_muller(uint32_t bits1, uint32_t bits2) {
  const float log_u = (float)log((double)uniform_from_bits(bits1));
  const float radius = __fsqrt_rn(__fmul_rn(-2.0f, log_u));
  const float angle = __fmul_rn(TWO_PI, uniform_from_bits(bits2));
  double sin_angle, cos_angle;
  sincos((double)angle, &sin_angle, &cos_angle);
  return make_float2(__fmul_rn(radius, (float)cos_angle), __fmul_rn(radius, (float)sin_angle));
}

/* One thread per counter block: block j of (seed, stream) gives elements 4j .. 4j + 3, of which
 * those in [offset, offset + n) land in out, times scale. */
__global__ void randn_kernel(uint2 key, uint32_t stream, uint64_t offset, float scale, void *out,
                             osp_dtype dtype, uint64_t n, uint64_t first_block, uint64_t blocks) {
  const uint64_t step = (uint64_t)gridDim.x * blockDim.x;
  for (uint64_t j = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; j < blocks; j += step) {
    const uint64_t block = first_block + j;
    const uint4 bits = philox4x32_10(
        make_uint4((uint32_t)block, (uint32_t)(block >> 32), stream, 0), key);
    const float2 z01 = box_muller(bits.x, bits.y), z23 = box_muller(bits.z, bits.w);
    const float z[WORDS_PER_BLOCK] = {z01.x, z01.y, z23.x, z23.y};
#pragma unroll
    for (int lane = 0; lane < WORDS_PER_BLOCK; lane++) {
      const uint64_t element = block * WORDS_PER_BLOCK + lane;
      if (element >= offset && element - offset < n)
        osp_put(out, dtype, (int64_t)(element - offset), __fmul_rn(z[lane], scale));
    }
  }
}

}  // namespace

extern "C" osp_status osp_cuda_convert(const void *src, osp_dtype src_dtype, void *dst,
                                       osp_dtype dst_dtype, int64_t n) {
  /* a copy moves the bits as they are (NaN payloads too); floating dtypes here are bf16 or f32 */
  if (src_dtype == dst_dtype)
    return osp_cuda_copy_on_device(dst, src, (size_t)n * (src_dtype == OSP_BF16 ? 2 : 4));
  return osp_map("osp_cuda_convert", src, src_dtype, dst, dst_dtype, n, identity_op{});
}

extern "C" osp_status osp_cuda_randn(uint64_t seed, uint32_t stream, uint64_t offset, float scale,
                                     void *out, osp_dtype dtype, int64_t n) {
  if (n <= 0) return OSP_OK;
  const uint64_t first_block = offset / WORDS_PER_BLOCK;
  const uint64_t blocks = (offset + (uint64_t)n - 1) / WORDS_PER_BLOCK - first_block + 1;
  const int threads = 256;
  randn_kernel<<<osp_cuda_blocks((int64_t)blocks, threads), threads, 0, osp_cuda_stream()>>>(
      make_uint2((uint32_t)seed, (uint32_t)(seed >> 32)), stream, offset, scale, out, dtype,
      (uint64_t)n, first_block, blocks);
  return osp_cuda_launched("osp_cuda_randn");
}
