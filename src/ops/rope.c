#include <stdbool.h>

#include "core/status.h"
#include "cpu/cpu.h"
#include "ops/check.h"
#include "ops/ops.h"

osp_status osp_rope_tables(int T, int H, int W, int head_dim, osp_tensor *cos, osp_tensor *sin) {
  ops_call call = OPS_CALL("osp_rope_tables");
  if (T < 1 || H < 1 || W < 1)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: grid: expected positive sizes, found %dx%dx%d", call.op,
                    T, H, W);
  if (head_dim < 2 || head_dim % 2)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: head_dim: expected a positive even number, found %d",
                    call.op, head_dim);
  const int64_t table_shape[2] = {(int64_t)T * H * W, head_dim / 2};
  OSP_TRY(ops_check_operand(&call, "cos", cos, OSP_F32, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_operand(&call, "sin", sin, OSP_F32, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_shape(&call, "cos", cos, 2, table_shape));
  OSP_TRY(ops_check_shape(&call, "sin", sin, 2, table_shape));
  OSP_TRY(ops_check_disjoint(&call, "sin", sin, "cos", cos));

  OSP_TRY(ops_check_backend(&call));
  osp_cpu_rope_tables(T, H, W, head_dim, cos->data, sin->data);
  return OSP_OK;
}

osp_status osp_rope_apply(osp_tensor *x, const osp_tensor *cos, const osp_tensor *sin) {
  ops_call call = OPS_CALL("osp_rope_apply");
  OSP_TRY(ops_check_operand(&call, "x", x, OSP_F32, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_operand(&call, "cos", cos, OSP_F32, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_operand(&call, "sin", sin, OSP_F32, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_shape(&call, "x", x, 4, (const int64_t[]){-1, -1, -1, -1}));
  const int64_t B = x->shape[0], N = x->shape[1], heads = x->shape[2], D = x->shape[3];
  if (D % 2)
    return osp_fail(OSP_ERR_SHAPE, "%s: x: expected an even head width, found %lld", call.op,
                    (long long)D);
  const bool shared = cos->ndim == 2;
  if (shared)
    OSP_TRY(ops_check_shape(&call, "cos", cos, 2, (const int64_t[]){N, D / 2}));
  else
    OSP_TRY(ops_check_shape(&call, "cos", cos, 3, (const int64_t[]){-1, N, D / 2}));
  OSP_TRY(ops_check_shape_as(&call, "sin", sin, cos, D / 2));
  const int64_t tables = shared ? 1 : cos->shape[0];
  if (tables != 1 && tables != B)
    return osp_fail(OSP_ERR_SHAPE,
                    "%s: cos: expected 1 table or %lld (one per batch row of x), found %lld",
                    call.op, (long long)B, (long long)tables);
  OSP_TRY(ops_check_disjoint(&call, "x", x, "cos", cos));
  OSP_TRY(ops_check_disjoint(&call, "x", x, "sin", sin));

  OSP_TRY(ops_check_backend(&call));
  osp_cpu_rope_apply(x->data, cos->data, sin->data, tables == 1 ? 0 : N * D / 2, B, N, heads, D);
  return OSP_OK;
}
