/* What the CUDA backend's .cu files share: the stream, error reporting, and loads and stores that
 * turn bf16 or f32 storage into f32 arithmetic. Internal to src/cuda/. */
#ifndef OSP_CUDA_COMMON_CUH
#define OSP_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "cuda/cuda.h"

extern "C" {
#include "core/status.h"
}

/* The one stream every kernel and copy of the backend runs on (created by osp_cuda_init). */
cudaStream_t osp_cuda_stream(void);

/* The backend's reduction scratch: OSP_CUDA_SCRATCH_FLOATS floats of device memory that
 * osp_cuda_init allocates once, for the partial sums of the deterministic reductions over rows
 * (reduce.cuh) and the row statistics the norm backwards keep between two kernels. Kernels run in
 * order on the one stream, so each launch that uses it has it to itself; a reduction sizes its
 * work to fit (no allocation inside a step, and nothing for the caller to plan). */
constexpr int64_t OSP_CUDA_SCRATCH_FLOATS = (int64_t)4 << 20; /* 16 MiB */
float *osp_cuda_scratch(void);

/* A status for a CUDA error: "<what>: CUDA error <name>: <description>". */
osp_status osp_cuda_fail(const char *what, cudaError_t error);

/* After a launch: the launch's error, if any, as a status naming the kernel. */
static inline osp_status osp_cuda_launched(const char *kernel) {
  cudaError_t error = cudaGetLastError();
  return error == cudaSuccess ? OSP_OK : osp_cuda_fail(kernel, error);
}

#define OSP_CUDA_TRY(what, expr)                                      \
  do {                                                                \
    cudaError_t osp_cuda_error_ = (expr);                             \
    if (osp_cuda_error_ != cudaSuccess) return osp_cuda_fail((what), osp_cuda_error_); \
  } while (0)

/* Element i of an array stored as bf16 or f32, as a float; and the other way. */
__device__ __forceinline__ float osp_load(const void *p, osp_dtype dtype, int64_t i) {
  return dtype == OSP_BF16 ? __bfloat162float(((const __nv_bfloat16 *)p)[i]) : ((const float *)p)[i];
}
__device__ __forceinline__ void osp_store(void *p, osp_dtype dtype, int64_t i, float value) {
  if (dtype == OSP_BF16)
    ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(value);
  else
    ((float *)p)[i] = value;
}

/* Blocks for n threads of `threads` each, capped where a grid-stride loop covers the rest. */
static inline unsigned osp_cuda_blocks(int64_t n, int threads) {
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks > 65535LL * 32) blocks = 65535LL * 32;
  return (unsigned)(blocks < 1 ? 1 : blocks);
}

#endif
