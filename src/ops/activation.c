#include "core/status.h"
#include "cpu/cpu.h"
#include "ops/check.h"
#include "ops/ops.h"

typedef void (*cpu_elementwise_kernel)(const float *x, float *y, int64_t n);
typedef osp_status (*cuda_elementwise_kernel)(const void *x, osp_dtype x_dtype, void *y,
                                              osp_dtype y_dtype, int64_t n);

/* y = f(x) element by element. */
static osp_status elementwise(const char *op, const osp_tensor *x, osp_tensor *y,
                              cpu_elementwise_kernel cpu_kernel, cuda_elementwise_kernel cuda_kernel) {
  ops_call call = OPS_CALL(op);
  OSP_TRY(ops_check_in_out(&call, x, y));

  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA) return cuda_kernel(x->data, x->dtype, y->data, y->dtype, osp_tensor_numel(x));
#endif
  cpu_kernel(x->data, y->data, osp_tensor_numel(x));
  return OSP_OK;
}

osp_status osp_gelu_tanh(const osp_tensor *x, osp_tensor *y) {
  return elementwise("osp_gelu_tanh", x, y, osp_cpu_gelu_tanh,
                     OPS_CUDA_KERNEL(osp_cuda_gelu_tanh));
}

osp_status osp_silu(const osp_tensor *x, osp_tensor *y) {
  return elementwise("osp_silu", x, y, osp_cpu_silu, OPS_CUDA_KERNEL(osp_cuda_silu));
}
