/* Checks that several ops share: token tensors and their per-batch-row tables, norm parameters,
 * RoPE operands, gather operands (declared in check.h). */
#include <math.h>

#include "core/status.h"
#include "ops/check.h"

osp_status ops_check_tokens(ops_call *call, const char *name, const osp_tensor *x) {
  OSP_TRY(ops_check_float(call, name, x, OPS_CONTIGUOUS));
  return ops_check_shape(call, name, x, 3, (const int64_t[]){-1, -1, -1});
}

osp_status ops_check_table_row(ops_call *call, const char *name, const osp_tensor *t,
                               const osp_tensor *x) {
  OSP_TRY(ops_check_float(call, name, t, OPS_STRIDED_ROWS));
  OSP_TRY(ops_check_shape(call, name, t, 2, (const int64_t[]){-1, x->shape[2]}));
  if (x->shape[0] % t->shape[0])
    return osp_fail(OSP_ERR_SHAPE, "%s: %s: expected a batch dividing x's batch %lld, found %lld",
                    call->op, name, (long long)x->shape[0], (long long)t->shape[0]);
  return OSP_OK;
}

osp_cpu_rows ops_cpu_rows(const osp_tensor *t) {
  if (!t) return (osp_cpu_rows){.data = NULL};
  return (osp_cpu_rows){.data = t->data, .row_stride = t->stride[0], .rows = t->shape[0]};
}

#ifdef OSP_HAVE_CUDA
osp_cuda_rows ops_cuda_rows(const osp_tensor *t) {
  if (!t) return (osp_cuda_rows){.data = NULL};
  return (osp_cuda_rows){.data = t->data, .dtype = t->dtype, .row_stride = t->stride[0], .rows = t->shape[0]};
}
#endif

osp_status ops_check_eps(const ops_call *call, float eps) {
  if (!(eps >= 0.0f && isfinite(eps)))
    return osp_fail(OSP_ERR_ARGUMENT, "%s: eps: expected a finite value >= 0, found %g", call->op,
                    (double)eps);
  return OSP_OK;
}

osp_status ops_check_channel_vector(ops_call *call, const char *name, const osp_tensor *t,
                                    const osp_tensor *x) {
  OSP_TRY(ops_check_float(call, name, t, OPS_CONTIGUOUS));
  return ops_check_shape(call, name, t, 1, (const int64_t[]){x->shape[x->ndim - 1]});
}

osp_status ops_check_rope_operands(ops_call *call, const char *x_name, const osp_tensor *x,
                                   const osp_tensor *cos, const osp_tensor *sin,
                                   int64_t *table_batch_stride) {
  OSP_TRY(ops_check_float(call, x_name, x, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_operand(call, "cos", cos, OSP_F32, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_operand(call, "sin", sin, OSP_F32, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_shape(call, x_name, x, 4, (const int64_t[]){-1, -1, -1, -1}));
  const int64_t B = x->shape[0], N = x->shape[1], D = x->shape[3];
  if (D % 2)
    return osp_fail(OSP_ERR_SHAPE, "%s: %s: expected an even head width, found %lld", call->op,
                    x_name, (long long)D);
  const bool shared = cos->ndim == 2;
  if (shared)
    OSP_TRY(ops_check_shape(call, "cos", cos, 2, (const int64_t[]){N, D / 2}));
  else
    OSP_TRY(ops_check_shape(call, "cos", cos, 3, (const int64_t[]){-1, N, D / 2}));
  OSP_TRY(ops_check_shape_as(call, "sin", sin, cos, D / 2));
  const int64_t tables = shared ? 1 : cos->shape[0];
  if (tables != 1 && tables != B)
    return osp_fail(OSP_ERR_SHAPE,
                    "%s: cos: expected 1 table or %lld (one per batch row of %s), found %lld",
                    call->op, (long long)B, x_name, (long long)tables);
  OSP_TRY(ops_check_disjoint(call, x_name, x, "cos", cos));
  OSP_TRY(ops_check_disjoint(call, x_name, x, "sin", sin));
  *table_batch_stride = tables == 1 ? 0 : N * D / 2;
  return OSP_OK;
}

osp_status ops_check_gather_operands(ops_call *call, const osp_tensor *src,
                                     const osp_tensor *index, osp_dtype dst_dtype,
                                     const osp_tensor *dst) {
  OSP_TRY(ops_check_operand(call, "index", index, OSP_I32, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_operand(call, "dst", dst, dst_dtype, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_shape(call, "index", index, 1, (const int64_t[]){-1}));
  OSP_TRY(ops_check_row_per_index(call, "dst", dst, index, "src", src));
  OSP_TRY(ops_check_disjoint(call, "dst", dst, "src", src));
  return ops_check_disjoint(call, "dst", dst, "index", index);
}

osp_status ops_check_gather_index_values(const ops_call *call, const osp_tensor *index,
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

osp_status ops_check_row_per_index(const ops_call *call, const char *name, const osp_tensor *t,
                                   const osp_tensor *index, const char *like_name,
                                   const osp_tensor *like) {
  const int64_t rows = index->shape[0], width = like->shape[like->ndim - 1];
  if (osp_tensor_rows(t) == rows && t->shape[t->ndim - 1] == width) return OSP_OK;
  char buf[160];
  return osp_fail(OSP_ERR_SHAPE,
                  "%s: %s: expected %lld rows of %lld values (one per index entry, as wide as "
                  "%s's), found shape %s",
                  call->op, name, (long long)rows, (long long)width, like_name,
                  osp_shape_string(t, buf, sizeof buf));
}

osp_status ops_check_both_or_neither(const ops_call *call, const char *a_name, const osp_tensor *a,
                                     const char *b_name, const osp_tensor *b) {
  if (!a == !b) return OSP_OK;
  return osp_fail(OSP_ERR_ARGUMENT, "%s: %s, %s: expected both or neither, found only %s",
                  call->op, a_name, b_name, a ? a_name : b_name);
}
