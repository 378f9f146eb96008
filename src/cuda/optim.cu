/* The optimizer's kernels (cuda.h): AdamW on f32 master weights, the sum of squares behind the
 * gradients' global norm, scaling, and the weights' moving average. Each does per element what the
 * CPU kernel (cpu/optim.c) does, in the same float32 operations, so an update gives the same bits
 * on both backends; the sum of squares adds in its own fixed order (not the CPU's), in double. */
#include "cuda/common.cuh"

/* torch's CPU lerp, as cpu/optim.c computes it: start + w·(end − start), from the nearer end. */
__device__ __forceinline__ float adamw_lerp(float start, float end, float weight) {
  return fabsf(weight) < 0.5f ? __fmaf_rn(weight, end - start, start)
                              : __fmaf_rn(weight - 1.0f, end - start, end);
}

/* Per element, in the CPU kernel's order of operations; the products and quotients that the CPU
 * rounds one by one are written with the _rn intrinsics, so nvcc cannot contract them into FMAs. */
__global__ void adamw_kernel(float *param, const float *grad, float *m, float *v, int64_t n,
                             osp_cpu_adamw_factors f) {
  const int64_t step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
    const float g = grad[i];
    const float mi = adamw_lerp(m[i], g, f.beta1_weight);
    const float vi = __fmaf_rn(__fmul_rn(f.beta2_weight, g), g, __fmul_rn(v[i], f.beta2));
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), f.bias_correction2_sqrt), f.eps);
    param[i] = __fadd_rn(__fmul_rn(param[i], f.decay), __fdiv_rn(__fmul_rn(f.neg_step_size, mi), denom));
    m[i] = mi;
    v[i] = vi;
  }
}

extern "C" osp_status osp_cuda_adamw_step(float *param, const float *grad, float *m, float *v,
                                          int64_t n, osp_cpu_adamw_factors factors) {
  adamw_kernel<<<osp_cuda_blocks(n, 256), 256, 0, osp_cuda_stream()>>>(param, grad, m, v, n, factors);
  return osp_cuda_launched("osp_cuda_adamw_step");
}

/* Σ x² in double: SUM_BLOCKS blocks of SUM_THREADS threads, thread t of block b adding every
 * (SUM_BLOCKS·SUM_THREADS)-th value from b·SUM_THREADS + t, then each block's threads pairwise in
 * a fixed tree; the host adds the blocks' sums in block order. The order depends on n alone. */
enum { SUM_BLOCKS = 256, SUM_THREADS = 256 };

__global__ void __launch_bounds__(SUM_THREADS)
    sum_of_squares_kernel(const void *x, osp_dtype dtype, int64_t n, double *block_sums) {
  __shared__ double sums[SUM_THREADS];
  double sum = 0.0;
  for (int64_t i = (int64_t)blockIdx.x * SUM_THREADS + threadIdx.x; i < n; i += SUM_BLOCKS * SUM_THREADS) {
    const double value = osp_load(x, dtype, i);
    sum += value * value;
  }
  sums[threadIdx.x] = sum;
  __syncthreads();
  for (int half = SUM_THREADS / 2; half > 0; half /= 2) {
    if ((int)threadIdx.x < half) sums[threadIdx.x] += sums[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) block_sums[blockIdx.x] = sums[0];
}

extern "C" osp_status osp_cuda_sum_of_squares(const void *x, osp_dtype dtype, int64_t n, double *sum) {
  static_assert(SUM_BLOCKS * sizeof(double) <= OSP_CUDA_SCRATCH_FLOATS * sizeof(float), "scratch");
  double *block_sums = (double *)osp_cuda_scratch();
  sum_of_squares_kernel<<<SUM_BLOCKS, SUM_THREADS, 0, osp_cuda_stream()>>>(x, dtype, n, block_sums);
  OSP_TRY(osp_cuda_launched("osp_cuda_sum_of_squares"));
  double host[SUM_BLOCKS];
  OSP_TRY(osp_cuda_copy_to_host(host, block_sums, sizeof host));
  *sum = 0.0;
  for (int b = 0; b < SUM_BLOCKS; b++) *sum += host[b];
  return OSP_OK;
}

__global__ void scale_kernel(void *x, osp_dtype dtype, float factor, int64_t n) {
  const int64_t step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step)
    osp_store(x, dtype, i, __fmul_rn(osp_load(x, dtype, i), factor));
}

extern "C" osp_status osp_cuda_scale(void *x, osp_dtype dtype, float factor, int64_t n) {
  scale_kernel<<<osp_cuda_blocks(n, 256), 256, 0, osp_cuda_stream()>>>(x, dtype, factor, n);
  return osp_cuda_launched("osp_cuda_scale");
}

/* cpu/optim.c's osp_cpu_lerp, operation for operation. */
__global__ void lerp_kernel(float *x, const float *end, float weight, int64_t n) {
  const bool small = fabsf(weight) < 0.5f;
  const int64_t step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step)
    x[i] = small ? __fadd_rn(x[i], __fmul_rn(weight, __fsub_rn(end[i], x[i])))
                 : __fsub_rn(end[i], __fmul_rn(__fsub_rn(end[i], x[i]), 1.0f - weight));
}

extern "C" osp_status osp_cuda_lerp(float *x, const float *end, float weight, int64_t n) {
  lerp_kernel<<<osp_cuda_blocks(n, 256), 256, 0, osp_cuda_stream()>>>(x, end, weight, n);
  return osp_cuda_launched("osp_cuda_lerp");
}
