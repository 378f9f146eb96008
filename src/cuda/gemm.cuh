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
 * align_a, align_b, align_d: the bytes A's, B's and D's (= C's) columns are aligned to (a power of
 * two up to 256, osp_gemm_alignment), or 0 for cuBLASLt's default assumption of 256. */
struct osp_gemm_product {
  cublasOperation_t trans_a, trans_b;
  int64_t m, n, k;
  int64_t lda, ldb, ldd;
  osp_dtype ab_dtype, d_dtype;
  bool bias, gelu;
  unsigned align_a, align_b, align_d;
};

/* The alignment of the columns of a matrix at p with leading dimension ld of `elem_bytes` each:
 * the largest power of two up to 256 dividing both p and the bytes between columns. */
static inline unsigned osp_gemm_alignment(const void *p, int64_t ld, size_t elem_bytes) {
  const uintptr_t bits = (uintptr_t)p | (uintptr_t)ld * elem_bytes | 256u;
  return (unsigned)(bits & (~bits + 1));
}

/* d (+)= a · b as `of` describes them: beta 0 writes d, beta 1 adds onto it. op names the caller
 * in messages. */
osp_status osp_gemm(const char *op, const osp_gemm_product &of, const void *a, const void *b,
                    const void *bias, void *d, float beta);

#endif
