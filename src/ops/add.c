#include <stdio.h>

#include "core/status.h"
#include "cpu/add.h"
#include "ops/check.h"
#include "ops/ops.h"

/* Broadcast strides: a dimension of size 1 where y is larger is read with stride 0. */
static osp_status broadcast_strides(const char *what, const osp_tensor *t, const osp_tensor *y,
                                    int64_t *strides) {
  for (int i = 0; i < y->ndim; i++) {
    if (t->shape[i] == y->shape[i]) {
      strides[i] = t->stride[i];
    } else if (t->shape[i] == 1) {
      strides[i] = 0;
    } else {
      char a[160], b[160];
      return osp_fail(OSP_ERR_SHAPE, "osp_add: %s %s does not broadcast to %s", what,
                      osp_shape_string(t, a, sizeof a), osp_shape_string(y, b, sizeof b));
    }
  }
  return OSP_OK;
}

osp_status osp_add(const osp_tensor *a, const osp_tensor *b, osp_tensor *y) {
  ops_call call = OPS_CALL("osp_add");
  OSP_TRY(ops_check_float(&call, "a", a, OPS_STRIDED_ROWS));
  OSP_TRY(ops_check_float(&call, "b", b, OPS_STRIDED_ROWS));
  OSP_TRY(ops_check_float(&call, "y", y, OPS_CONTIGUOUS));
  if (a->ndim != y->ndim || b->ndim != y->ndim)
    return osp_fail(OSP_ERR_SHAPE, "osp_add: operands have %d and %d dimensions, output %d", a->ndim,
                    b->ndim, y->ndim);
  if (!osp_tensor_is_contiguous(y)) return osp_fail(OSP_ERR_SHAPE, "osp_add: y must be contiguous");
  int64_t sa[OSP_MAX_DIMS], sb[OSP_MAX_DIMS];
  OSP_TRY(broadcast_strides("a", a, y, sa));
  OSP_TRY(broadcast_strides("b", b, y, sb));
  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_add(a->data, a->dtype, sa, b->data, b->dtype, sb, y->data, y->dtype, y->ndim, y->shape);
#endif
  cpu_add_broadcast(y->ndim, y->shape, a->data, sa, b->data, sb, y->data);
  return OSP_OK;
}
