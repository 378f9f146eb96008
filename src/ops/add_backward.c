#include "core/status.h"
#include "cpu/cpu.h"
#include "ops/check.h"
#include "ops/grad.h"

/* da has dy's dimensions, each of dy's size or 1 (where osp_add broadcast it). */
static osp_status check_broadcast_of(const ops_call *call, const osp_tensor *da,
                                     const osp_tensor *dy) {
  bool broadcasts = da->ndim == dy->ndim;
  for (int d = 0; d < da->ndim && broadcasts; d++)
    broadcasts = da->shape[d] == dy->shape[d] || da->shape[d] == 1;
  if (broadcasts) return OSP_OK;
  char a[160], b[160];
  return osp_fail(OSP_ERR_SHAPE, "%s: da: expected a shape that broadcasts to dy's %s, found %s",
                  call->op, osp_shape_string(dy, b, sizeof b), osp_shape_string(da, a, sizeof a));
}

osp_status osp_add_backward(const osp_tensor *dy, osp_tensor *da) {
  ops_call call = OPS_CALL("osp_add_backward");
  OSP_TRY(ops_check_float(&call, "dy", dy, OPS_CONTIGUOUS));
  if (!da) return OSP_OK;
  OSP_TRY(ops_check_float(&call, "da", da, OPS_STRIDED_ROWS));
  OSP_TRY(check_broadcast_of(&call, da, dy));
  OSP_TRY(ops_check_disjoint(&call, "da", da, "dy", dy));

  OSP_TRY(ops_check_backend(&call));
  OSP_TRY(ops_require_cpu(&call));
  osp_cpu_broadcast_backward(dy->ndim, dy->shape, dy->data, NULL, da->data, da->shape, da->stride);
  return OSP_OK;
}
