#include "core/status.h"
#include "cpu/cpu.h"
#include "ops/check.h"
#include "ops/ops.h"

osp_status osp_modulate(const osp_tensor *x, const osp_tensor *shift, const osp_tensor *scale,
                        osp_tensor *y) {
  ops_call call = OPS_CALL("osp_modulate");
  OSP_TRY(ops_check_tokens(&call, "x", x));
  OSP_TRY(ops_check_table_row(&call, "shift", shift, x));
  OSP_TRY(ops_check_table_row(&call, "scale", scale, x));
  OSP_TRY(ops_check_in_out(&call, x, y));

  if (y->dtype != x->dtype)
    return osp_fail(OSP_ERR_SHAPE, "%s: y: expected x's dtype %s, found %s", call.op,
                    osp_dtype_name(x->dtype), osp_dtype_name(y->dtype));

  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_modulate(x->data, ops_cuda_rows(shift), ops_cuda_rows(scale), y->data, x->dtype,
                             x->shape[0], x->shape[1], x->shape[2]);
#endif
  osp_cpu_modulate(x->data, ops_cpu_rows(shift), ops_cpu_rows(scale), y->data, x->shape[0], x->shape[1],
                   x->shape[2]);
  return OSP_OK;
}

osp_status osp_gated_add(osp_tensor *x, const osp_tensor *y, const osp_tensor *gate) {
  ops_call call = OPS_CALL("osp_gated_add");
  OSP_TRY(ops_check_tokens(&call, "x", x));
  OSP_TRY(ops_check_in_out(&call, x, y));
  if (gate) OSP_TRY(ops_check_table_row(&call, "gate", gate, x));

  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_gated_add(x->data, x->dtype, y->data, y->dtype, ops_cuda_rows(gate), x->shape[0],
                              x->shape[1], x->shape[2]);
#endif
  osp_cpu_gated_add(x->data, y->data, ops_cpu_rows(gate), x->shape[0], x->shape[1], x->shape[2]);
  return OSP_OK;
}
