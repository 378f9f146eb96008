#include "core/status.h"
#include "cpu/cpu.h"
#include "ops/check.h"
#include "ops/ops.h"

osp_status osp_linear(const osp_tensor *x, const osp_tensor *w, const osp_tensor *bias,
                      osp_tensor *y) {
  ops_call call = OPS_CALL("osp_linear");
  OSP_TRY(ops_check_operand(&call, "x", x, OSP_F32, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_operand(&call, "weight", w, OSP_F32, OPS_CONTIGUOUS));
  if (bias) OSP_TRY(ops_check_operand(&call, "bias", bias, OSP_F32, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_operand(&call, "y", y, OSP_F32, OPS_CONTIGUOUS));

  const int64_t M = osp_tensor_rows(x), K = x->shape[x->ndim - 1];
  OSP_TRY(ops_check_shape(&call, "weight", w, 2, (const int64_t[]){-1, K}));
  const int64_t N = w->shape[0];
  if (bias) OSP_TRY(ops_check_shape(&call, "bias", bias, 1, (const int64_t[]){N}));
  OSP_TRY(ops_check_shape_as(&call, "y", y, x, N));
  OSP_TRY(ops_check_disjoint(&call, "y", y, "x", x));
  OSP_TRY(ops_check_disjoint(&call, "y", y, "weight", w));
  if (bias) OSP_TRY(ops_check_disjoint(&call, "y", y, "bias", bias));

  OSP_TRY(ops_check_backend(&call));
  OSP_TRY(ops_check_blas_size(&call, "the row count of x", M));
  OSP_TRY(ops_check_blas_size(&call, "the row count of weight", N));
  OSP_TRY(ops_check_blas_size(&call, "the row width of x", K));
  osp_cpu_linear(x->data, w->data, bias ? bias->data : NULL, y->data, M, N, K);
  return OSP_OK;
}
