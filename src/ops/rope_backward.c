#include "core/status.h"
#include "cpu/cpu.h"
#include "ops/check.h"
#include "ops/grad.h"

/* The operands are osp_rope_apply's (its messages name dx "x"). */
osp_status osp_rope_apply_backward(osp_tensor *dx, const osp_tensor *cos, const osp_tensor *sin) {
  ops_call call = OPS_CALL("osp_rope_apply_backward");
  int64_t table_batch_stride = 0;
  OSP_TRY(ops_check_rope_operands(&call, "dx", dx, cos, sin, &table_batch_stride));

  OSP_TRY(ops_check_backend(&call));
  const int64_t B = dx->shape[0], N = dx->shape[1], heads = dx->shape[2], D = dx->shape[3];
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_rope_apply_backward(dx->data, dx->dtype, cos->data, sin->data,
                                        table_batch_stride, B, N, heads, D);
#endif
  osp_cpu_rope_apply_backward(dx->data, cos->data, sin->data, table_batch_stride, B, N, heads, D);
  return OSP_OK;
}
