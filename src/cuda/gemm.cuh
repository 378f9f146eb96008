/* cuBLASLt products on the backend's stream, for the kernels beyond osp_cuda_linear that multiply
 * (the convolution's unfolded band by its weights): linear.cu keeps one plan per product shape.
 * Internal to src/cuda/. */
#ifndef OSP_CUDA_GEMM_CUH
#define OSP_CUDA_GEMM_CUH

#include <cublasLt.h>

#include "cuda/common.cuh"

/* D [m × n] (+)= op(A) · op(B), op(A) m × k and op(B) k × n, every matrix column-major as stored
 * with its leading dimension (elements between columns), A and B of one dtype, D bf16 or f32, f32
 * accumulation; bias (bf16, length m) and GELU in the epilogue where asked (the forward's).
 * align: the bytes every pointer is aligned to (a power of two up to 256), or 0 for cuBLASLt's
 * default assumption of 256. */
struct osp_gemm_product {
  cublasOperation_t trans_a, trans_b;
  int64_t m, n, k;
  int64_t lda, ldb, ldd;
  osp_dtype ab_dtype, d_dtype;
  bool bias, gelu;
  unsigned align;
};

/* d (+)= a · b as `of` describes them: beta 0 writes d, beta 1 adds onto it. op names the caller
 * in messages. */
osp_status osp_gemm(const char *op, const osp_gemm_product &of, const void *a, const void *b,
                    const void *bias, void *d, float beta);

#endif
