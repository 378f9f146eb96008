#include <stdlib.h>

#include "core/status.h"
#include "cpu/cpu.h"
#include "ops/check.h"
#include "ops/grad.h"

/* No non-negative index value appears twice, so each row of dsrc gets at most one row of ddst.
 * The values are already known to lie below src_rows. */
static osp_status check_index_distinct(const ops_call *call, const osp_tensor *index,
                                       int64_t src_rows) {
  osp_tensor host;
  OSP_TRY(ops_host_copy(call, "index", index, &host));
  const int32_t *values = host.data;
  bool *taken = calloc((size_t)src_rows, sizeof *taken);
  osp_status status = taken ? OSP_OK
                            : osp_fail(OSP_ERR_MEMORY, "%s: index: no host memory to check it",
                                       call->op);
  for (int64_t i = 0; i < index->shape[0] && status == OSP_OK; i++) {
    if (values[i] < 0) continue;
    if (taken[values[i]])
      status = osp_fail(OSP_ERR_ARGUMENT,
                        "%s: index: expected distinct values (a permutation with padding), found "
                        "%d again at position %lld",
                        call->op, values[i], (long long)i);
    taken[values[i]] = true;
  }
  free(taken);
  ops_release_host_copy(index, &host);
  return status;
}

osp_status osp_gather_rows_backward(const osp_tensor *ddst, const osp_tensor *index,
                                    osp_tensor *dsrc) {
  ops_call call = OPS_CALL("osp_gather_rows_backward");
  OSP_TRY(ops_check_float(&call, "ddst", ddst, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_operand(&call, "index", index, OSP_I32, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_shape(&call, "index", index, 1, (const int64_t[]){-1}));
  OSP_TRY(ops_check_operand(&call, "dsrc", dsrc, ddst->dtype, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_row_per_index(&call, "ddst", ddst, index, "dsrc", dsrc));
  OSP_TRY(ops_check_disjoint(&call, "dsrc", dsrc, "ddst", ddst));
  OSP_TRY(ops_check_disjoint(&call, "dsrc", dsrc, "index", index));

  OSP_TRY(ops_check_backend(&call));
  const int64_t src_rows = osp_tensor_rows(dsrc), C = ddst->shape[ddst->ndim - 1];
  OSP_TRY(ops_check_gather_index_values(&call, index, src_rows));
  OSP_TRY(check_index_distinct(&call, index, src_rows));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_gather_rows_backward(ddst->data, index->data, dsrc->data, ddst->dtype,
                                         osp_tensor_rows(ddst), C);
#endif
  osp_cpu_gather_rows_backward(ddst->data, index->data, dsrc->data, osp_tensor_rows(ddst), C);
  return OSP_OK;
}
