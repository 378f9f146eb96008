#include <stdbool.h>

#include "core/status.h"
#include "cpu/cpu.h"
#include "ops/check.h"
#include "ops/ops.h"

osp_status osp_gather_rows(const osp_tensor *src, const osp_tensor *index, osp_tensor *dst) {
  ops_call call = OPS_CALL("osp_gather_rows");
  /* a bf16 table on the CPU (an embedding kept as stored) gives f32 rows */
  const bool bf16_table = src && src->device == OSP_CPU && src->dtype == OSP_BF16;
  if (bf16_table)
    OSP_TRY(ops_check_operand(&call, "src", src, OSP_BF16, OPS_CONTIGUOUS));
  else
    OSP_TRY(ops_check_float(&call, "src", src, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_gather_operands(&call, src, index, bf16_table ? OSP_F32 : src->dtype, dst));
  OSP_TRY(ops_check_backend(&call));
  OSP_TRY(ops_check_gather_index_values(&call, index, osp_tensor_rows(src)));
  if (bf16_table) {
    osp_cpu_gather_rows_bf16(src->data, index->data, dst->data, osp_tensor_rows(dst),
                             src->shape[src->ndim - 1]);
    return OSP_OK;
  }
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_gather_rows(src->data, index->data, dst->data, osp_tensor_rows(dst),
                                src->shape[src->ndim - 1], osp_dtype_size(src->dtype));
#endif
  osp_cpu_gather_rows(src->data, index->data, dst->data, osp_tensor_rows(dst),
                      src->shape[src->ndim - 1]);
  return OSP_OK;
}
