#include <math.h>

#include "core/status.h"
#include "cpu/cpu.h"
#include "ops/check.h"
#include "ops/ops.h"

osp_status osp_layernorm(const osp_tensor *x, const osp_tensor *weight, const osp_tensor *bias,
                         float eps, osp_tensor *y) {
  ops_call call = OPS_CALL("osp_layernorm");
  OSP_TRY(ops_check_in_out(&call, x, y));
  OSP_TRY(ops_check_both_or_neither(&call, "weight", weight, "bias", bias));
  if (weight) {
    OSP_TRY(ops_check_channel_vector(&call, "weight", weight, x));
    OSP_TRY(ops_check_channel_vector(&call, "bias", bias, x));
  }
  OSP_TRY(ops_check_eps(&call, eps));
  if (weight && weight->dtype != bias->dtype)
    return osp_fail(OSP_ERR_SHAPE, "%s: bias: expected weight's dtype %s, found %s", call.op,
                    osp_dtype_name(weight->dtype), osp_dtype_name(bias->dtype));

  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_layernorm(x->data, x->dtype, weight ? weight->data : NULL,
                              bias ? bias->data : NULL, weight ? weight->dtype : OSP_F32, eps,
                              y->data, y->dtype, osp_tensor_rows(x), x->shape[x->ndim - 1]);
#endif
  osp_cpu_layernorm(x->data, weight ? weight->data : NULL, bias ? bias->data : NULL, eps, y->data,
                    osp_tensor_rows(x), x->shape[x->ndim - 1]);
  return OSP_OK;
}

osp_status osp_rmsnorm(const osp_tensor *x, const osp_tensor *weight, float eps, osp_tensor *y) {
  ops_call call = OPS_CALL("osp_rmsnorm");
  OSP_TRY(ops_check_in_out(&call, x, y));
  OSP_TRY(ops_check_channel_vector(&call, "weight", weight, x));
  OSP_TRY(ops_check_eps(&call, eps));

  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_rmsnorm(x->data, x->dtype, weight->data, weight->dtype, eps, y->data, y->dtype,
                            osp_tensor_rows(x), x->shape[x->ndim - 1]);
#endif
  osp_cpu_rmsnorm(x->data, weight->data, eps, y->data, osp_tensor_rows(x), x->shape[x->ndim - 1]);
  return OSP_OK;
}
