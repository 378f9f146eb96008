#include <stdbool.h>

#include "core/status.h"
#include "cpu/cpu.h"
#include "ops/check.h"
#include "ops/ops.h"

/* head_dim is positive and even; cos and sin are contiguous f32 [tokens, head_dim/2], apart. */
static osp_status check_tables(ops_call *call, int64_t tokens, int head_dim, const osp_tensor *cos,
                               const osp_tensor *sin) {
  if (head_dim < 2 || head_dim % 2)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: head_dim: expected a positive even number, found %d",
                    call->op, head_dim);
  const int64_t table_shape[2] = {tokens, head_dim / 2};
  OSP_TRY(ops_check_operand(call, "cos", cos, OSP_F32, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_operand(call, "sin", sin, OSP_F32, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_shape(call, "cos", cos, 2, table_shape));
  OSP_TRY(ops_check_shape(call, "sin", sin, 2, table_shape));
  return ops_check_disjoint(call, "sin", sin, "cos", cos);
}

osp_status osp_rope_tables(int T, int H, int W, int head_dim, osp_tensor *cos, osp_tensor *sin) {
  ops_call call = OPS_CALL("osp_rope_tables");
  if (T < 1 || H < 1 || W < 1)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: grid: expected positive sizes, found %dx%dx%d", call.op,
                    T, H, W);
  OSP_TRY(check_tables(&call, (int64_t)T * H * W, head_dim, cos, sin));
  if (call.device == OSP_CUDA)
    return osp_fail(OSP_ERR_UNSUPPORTED,
                    "%s: runs on the CPU only; on cuda, osp_rope_tables_at makes the same tables",
                    call.op);
  osp_cpu_rope_tables(T, H, W, head_dim, cos->data, sin->data);
  return OSP_OK;
}

/* A token row (t ≥ 0) has h, w ≥ 0; a padding row (t < 0) may hold anything. It reads the
 * values (on CUDA, a host copy of them). */
static osp_status check_position_values(const ops_call *call, const osp_tensor *positions) {
  osp_tensor host;
  OSP_TRY(ops_host_copy(call, "positions", positions, &host));
  osp_status status = OSP_OK;
  for (int64_t m = 0; m < positions->shape[0] && status == OSP_OK; m++) {
    const int32_t *p = (const int32_t *)host.data + 3 * m;
    if (p[0] >= 0 && (p[1] < 0 || p[2] < 0))
      status = osp_fail(OSP_ERR_ARGUMENT,
                        "%s: positions: expected h, w >= 0 where t >= 0, found (%d, %d, %d) at "
                        "row %lld",
                        call->op, p[0], p[1], p[2], (long long)m);
  }
  ops_release_host_copy(positions, &host);
  return status;
}

osp_status osp_rope_tables_at(const osp_tensor *positions, int head_dim, osp_tensor *cos,
                              osp_tensor *sin) {
  ops_call call = OPS_CALL("osp_rope_tables_at");
  OSP_TRY(ops_check_operand(&call, "positions", positions, OSP_I32, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_shape(&call, "positions", positions, 2, (const int64_t[]){-1, 3}));
  const int64_t tokens = positions->shape[0];
  OSP_TRY(check_tables(&call, tokens, head_dim, cos, sin));
  OSP_TRY(ops_check_disjoint(&call, "cos", cos, "positions", positions));
  OSP_TRY(ops_check_disjoint(&call, "sin", sin, "positions", positions));

  OSP_TRY(ops_check_backend(&call));
  OSP_TRY(check_position_values(&call, positions));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_rope_tables_at(positions->data, tokens, head_dim, cos->data, sin->data);
#endif
  osp_cpu_rope_tables_at(positions->data, tokens, head_dim, cos->data, sin->data);
  return OSP_OK;
}

osp_status osp_rope_apply(osp_tensor *x, const osp_tensor *cos, const osp_tensor *sin) {
  ops_call call = OPS_CALL("osp_rope_apply");
  int64_t table_batch_stride = 0;
  OSP_TRY(ops_check_rope_operands(&call, "x", x, cos, sin, &table_batch_stride));
  const int64_t B = x->shape[0], N = x->shape[1], heads = x->shape[2], D = x->shape[3];

  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_rope_apply(x->data, x->dtype, cos->data, sin->data, table_batch_stride, B, N,
                               heads, D);
#endif
  osp_cpu_rope_apply(x->data, cos->data, sin->data, table_batch_stride, B, N, heads, D);
  return OSP_OK;
}
