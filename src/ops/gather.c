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
 * the values (on CUDA, a host copy of them). */
static osp_status check_index_values(const ops_call *call, const osp_tensor *index,
                                     int64_t src_rows) {
  osp_tensor host;
  OSP_TRY(ops_host_copy(call, "index", index, &host));
  const int32_t *values = host.data;
  osp_status status = OSP_OK;
  for (int64_t i = 0; i < index->shape[0] && status == OSP_OK; i++)
    if (values[i] >= src_rows)
      status = osp_fail(OSP_ERR_ARGUMENT,
                        "%s: index: expected values below %lld (the rows of src), found %d at "
                        "position %lld",
                        call->op, (long long)src_rows, values[i], (long long)i);
  ops_release_host_copy(index, &host);
  return status;
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
