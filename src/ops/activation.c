#include "core/status.h"
#include "cpu/cpu.h"
#include "ops/check.h"
#include "ops/ops.h"

typedef void (*cpu_elementwise_kernel)(const float *x, float *y, int64_t n);

/* y = f(x) element by element. */
static osp_status elementwise(const char *op, const osp_tensor *x, osp_tensor *y,
                              cpu_elementwise_kernel cpu_kernel) {
  ops_call call = OPS_CALL(op);
  OSP_TRY(ops_check_in_out(&call, x, y));

  OSP_TRY(ops_check_backend(&call));
  cpu_kernel(x->data, y->data, osp_tensor_numel(x));
  return OSP_OK;
}

osp_status osp_gelu_tanh(const osp_tensor *x, osp_tensor *y) {
  return elementwise("osp_gelu_tanh", x, y, osp_cpu_gelu_tanh);
}

osp_status osp_silu(const osp_tensor *x, osp_tensor *y) {
  return elementwise("osp_silu", x, y, osp_cpu_silu);
}
