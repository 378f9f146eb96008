#include "core/status.h"
#include "cpu/cpu.h"
#include "ops/check.h"
#include "ops/ops.h"

osp_status osp_linear(const osp_tensor *x, const osp_tensor *w, const osp_tensor *bias,
                      osp_tensor *y) {
  ops_call call = OPS_CALL("osp_linear");
  OSP_TRY(ops_check_float(&call, "x", x, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_float(&call, "weight", w, OPS_CONTIGUOUS));
  if (bias) OSP_TRY(ops_check_float(&call, "bias", bias, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_float(&call, "y", y, OPS_CONTIGUOUS));
  /* cuBLASLt multiplies bf16 matrices (f32 accumulation) into bf16 or f32. */
  OSP_TRY(ops_check_cuda_dtype(&call, "x", x, OSP_BF16));
  OSP_TRY(ops_check_cuda_dtype(&call, "weight", w, OSP_BF16));
  if (bias) OSP_TRY(ops_check_cuda_dtype(&call, "bias", bias, OSP_BF16));

  const int64_t M = osp_tensor_rows(x), K = x->shape[x->ndim - 1];
  OSP_TRY(ops_check_shape(&call, "weight", w, 2, (const int64_t[]){-1, K}));
  const int64_t N = w->shape[0];
  if (bias) OSP_TRY(ops_check_shape(&call, "bias", bias, 1, (const int64_t[]){N}));
  OSP_TRY(ops_check_shape_as(&call, "y", y, x, N));
  OSP_TRY(ops_check_disjoint(&call, "y", y, "x", x));
  OSP_TRY(ops_check_disjoint(&call, "y", y, "weight", w));
  if (bias) OSP_TRY(ops_check_disjoint(&call, "y", y, "bias", bias));

  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_linear(x->data, w->data, bias ? bias->data : NULL, y->data, y->dtype, M, N, K);
#endif
  OSP_TRY(ops_check_blas_size(&call, "the row count of x", M));
  OSP_TRY(ops_check_blas_size(&call, "the row count of weight", N));
  OSP_TRY(ops_check_blas_size(&call, "the row width of x", K));
  osp_cpu_linear(x->data, w->data, bias ? bias->data : NULL, y->data, M, N, K);
  return OSP_OK;
}
