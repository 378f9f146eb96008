#include "core/status.h"
#include "cpu/cpu.h"
#include "ops/check.h"
#include "ops/grad.h"

/* da has dy's dimensions, each of dy's size or 1 (where osp_add broadcast it). */
static osp_status check_broadcast_of(const ops_call *call, const osp_tensor *da,
                                     const osp_tensor *dy) {
  bool broadcasts = da->ndim == dy->ndim;
  for (int d = 0; d < da->ndim && broadcasts; d++)
    broadcasts = da->shape[d] == dy->shape[d] || da->shape[d] == 1;
  if (broadcasts) return OSP_OK;
  char a[160], b[160];
  return osp_fail(OSP_ERR_SHAPE, "%s: da: expected a shape that broadcasts to dy's %s, found %s",
                  call->op, osp_shape_string(dy, b, sizeof b), osp_shape_string(da, a, sizeof a));
}

/* da accumulates in f32; where it is dy's own shape (an activation's gradient: nothing summed) it
 * may have dy's dtype instead (on the CPU everything is f32). */
static osp_status check_gradient_dtype(const ops_call *call, const osp_tensor *da,
                                       const osp_tensor *dy) {
  if (da->dtype == OSP_F32) return OSP_OK;
  if (!osp_tensor_same_shape(da, dy))
    return osp_fail(OSP_ERR_SHAPE,
                    "%s: da: expected dtype f32 (a sum over broadcast dimensions), found %s",
                    call->op, osp_dtype_name(da->dtype));
  const ops_operand operands[] = {{"dy", dy}, {"da", da}};
  return ops_check_same_dtype(call, operands, OPS_COUNT(operands));
}

osp_status osp_add_backward(const osp_tensor *dy, osp_tensor *da) {
  ops_call call = OPS_CALL("osp_add_backward");
  OSP_TRY(ops_check_float(&call, "dy", dy, OPS_CONTIGUOUS));
  if (!da) return OSP_OK;
  OSP_TRY(ops_check_float(&call, "da", da, OPS_STRIDED_ROWS));
  OSP_TRY(check_broadcast_of(&call, da, dy));
  OSP_TRY(check_gradient_dtype(&call, da, dy));
  OSP_TRY(ops_check_disjoint(&call, "da", da, "dy", dy));

  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_broadcast_backward(dy->data, dy->dtype, dy->ndim, dy->shape, da->data,
                                       da->dtype, da->shape, da->stride);
#endif
  osp_cpu_broadcast_backward(dy->ndim, dy->shape, dy->data, NULL, da->data, da->shape, da->stride);
  return OSP_OK;
}
