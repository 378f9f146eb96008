#include "core/status.h"
#include "cpu/cpu.h"
#include "ops/check.h"
#include "ops/ops.h"

/* x [B, N, C], contiguous. */
static osp_status check_tokens(ops_call *call, const char *name, const osp_tensor *x) {
  OSP_TRY(ops_check_float(call, name, x, OPS_CONTIGUOUS));
  return ops_check_shape(call, name, x, 3, (const int64_t[]){-1, -1, -1});
}

/* A per-(batch, channel) operand [Bm, C] of x [B, N, C] with Bm dividing B: a row of a [Bm, k, C]
 * table is fine. */
static osp_status check_table_row(ops_call *call, const char *name, const osp_tensor *t,
                                  const osp_tensor *x) {
  OSP_TRY(ops_check_float(call, name, t, OPS_STRIDED_ROWS));
  OSP_TRY(ops_check_shape(call, name, t, 2, (const int64_t[]){-1, x->shape[2]}));
  if (x->shape[0] % t->shape[0])
    return osp_fail(OSP_ERR_SHAPE, "%s: %s: expected a batch dividing x's batch %lld, found %lld",
                    call->op, name, (long long)x->shape[0], (long long)t->shape[0]);
  return OSP_OK;
}

static osp_cpu_rows cpu_rows(const osp_tensor *t) {
  if (!t) return (osp_cpu_rows){.data = NULL};
  return (osp_cpu_rows){.data = t->data, .row_stride = t->stride[0], .rows = t->shape[0]};
}

#ifdef OSP_HAVE_CUDA
static osp_cuda_rows cuda_rows(const osp_tensor *t) {
  if (!t) return (osp_cuda_rows){.data = NULL};
  return (osp_cuda_rows){.data = t->data, .dtype = t->dtype, .row_stride = t->stride[0], .rows = t->shape[0]};
}
#endif

osp_status osp_modulate(const osp_tensor *x, const osp_tensor *shift, const osp_tensor *scale,
                        osp_tensor *y) {
  ops_call call = OPS_CALL("osp_modulate");
  OSP_TRY(check_tokens(&call, "x", x));
  OSP_TRY(check_table_row(&call, "shift", shift, x));
  OSP_TRY(check_table_row(&call, "scale", scale, x));
  OSP_TRY(ops_check_in_out(&call, x, y));

  if (y->dtype != x->dtype)
    return osp_fail(OSP_ERR_SHAPE, "%s: y: expected x's dtype %s, found %s", call.op,
                    osp_dtype_name(x->dtype), osp_dtype_name(y->dtype));

  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_modulate(x->data, cuda_rows(shift), cuda_rows(scale), y->data, x->dtype,
                             x->shape[0], x->shape[1], x->shape[2]);
#endif
  osp_cpu_modulate(x->data, cpu_rows(shift), cpu_rows(scale), y->data, x->shape[0], x->shape[1],
                   x->shape[2]);
  return OSP_OK;
}

osp_status osp_gated_add(osp_tensor *x, const osp_tensor *y, const osp_tensor *gate) {
  ops_call call = OPS_CALL("osp_gated_add");
  OSP_TRY(check_tokens(&call, "x", x));
  OSP_TRY(ops_check_in_out(&call, x, y));
  if (gate) OSP_TRY(check_table_row(&call, "gate", gate, x));

  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_gated_add(x->data, x->dtype, y->data, y->dtype, cuda_rows(gate), x->shape[0],
                              x->shape[1], x->shape[2]);
#endif
  osp_cpu_gated_add(x->data, y->data, cpu_rows(gate), x->shape[0], x->shape[1], x->shape[2]);
  return OSP_OK;
}
