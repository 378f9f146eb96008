#include <stdlib.h>

#include "core/status.h"
#include "cpu/cpu.h"
#include "ops/check.h"
#include "ops/ops.h"

/* dst holds one row per index entry, each as wide as src's rows. */
static osp_status check_destination(const ops_call *call, const osp_tensor *src,
                                    const osp_tensor *index, const osp_tensor *dst) {
  const int64_t rows = index->shape[0], width = src->shape[src->ndim - 1];
  if (osp_tensor_rows(dst) != rows || dst->shape[dst->ndim - 1] != width) {
    char buf[160];
    return osp_fail(OSP_ERR_SHAPE,
                    "%s: dst: expected %lld rows of %lld values (one per index entry, as wide as "
                    "src's), found shape %s",
                    call->op, (long long)rows, (long long)width,
                    osp_shape_string(dst, buf, sizeof buf));
  }
  return OSP_OK;
}

/* Every index value is below src's row count (a negative one asks for a row of zeros). It reads
 * the values: on CUDA from a copy on the host (a table of one int per row, small beside the rows
 * it moves). */
static osp_status check_index_values(const ops_call *call, const osp_tensor *index,
                                     int64_t src_rows) {
#ifdef OSP_HAVE_CUDA
  if (index->device == OSP_CUDA) {
    int32_t *copy = malloc(osp_tensor_bytes(index));
    if (!copy) return osp_fail(OSP_ERR_MEMORY, "%s: index: no memory for a host copy", call->op);
    osp_tensor host = *index;
    host.data = copy;
    host.device = OSP_CPU;
    osp_status status = osp_cuda_copy_to_host(copy, index->data, osp_tensor_bytes(index));
    if (status == OSP_OK) status = check_index_values(call, &host, src_rows);
    free(copy);
    return status;
  }
#endif
  const int32_t *values = index->data;
  for (int64_t i = 0; i < index->shape[0]; i++)
    if (values[i] >= src_rows)
      return osp_fail(OSP_ERR_ARGUMENT,
                      "%s: index: expected values below %lld (the rows of src), found %d at "
                      "position %lld",
                      call->op, (long long)src_rows, values[i], (long long)i);
  return OSP_OK;
}

osp_status osp_gather_rows(const osp_tensor *src, const osp_tensor *index, osp_tensor *dst) {
  ops_call call = OPS_CALL("osp_gather_rows");
  OSP_TRY(ops_check_float(&call, "src", src, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_operand(&call, "index", index, OSP_I32, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_operand(&call, "dst", dst, src->dtype, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_shape(&call, "index", index, 1, (const int64_t[]){-1}));
  OSP_TRY(check_destination(&call, src, index, dst));
  OSP_TRY(ops_check_disjoint(&call, "dst", dst, "src", src));
  OSP_TRY(ops_check_disjoint(&call, "dst", dst, "index", index));

  OSP_TRY(ops_check_backend(&call));
  OSP_TRY(check_index_values(&call, index, osp_tensor_rows(src)));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_gather_rows(src->data, index->data, dst->data, osp_tensor_rows(dst),
                                src->shape[src->ndim - 1], osp_dtype_size(src->dtype));
#endif
  osp_cpu_gather_rows(src->data, index->data, dst->data, osp_tensor_rows(dst),
                      src->shape[src->ndim - 1]);
  return OSP_OK;
}
