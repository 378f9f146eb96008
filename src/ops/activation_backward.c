#include "core/status.h"
#include "cpu/cpu.h"
#include "ops/check.h"
#include "ops/grad.h"

typedef void (*cpu_backward_kernel)(const float *x, const float *dy, float *dx, int64_t n);
typedef osp_status (*cuda_backward_kernel)(const void *x, const void *dy, void *dx, osp_dtype dtype,
                                           int64_t n);

/* dx += dy·f'(x) element by element; x, dy and dx of one dtype, dx apart from x and dy. */
static osp_status elementwise_backward(const char *op, const osp_tensor *x, const osp_tensor *dy,
                                       osp_tensor *dx, cpu_backward_kernel cpu_kernel,
                                       cuda_backward_kernel cuda_kernel) {
  ops_call call = OPS_CALL(op);
  OSP_TRY(ops_check_float(&call, "x", x, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_float(&call, "dy", dy, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_shape(&call, "dy", dy, x->ndim, x->shape));
  OSP_TRY(ops_check_gradient(&call, "dx", dx, x->ndim, x->shape, OPS_CONTIGUOUS));
  const ops_operand activations[] = {{"x", x}, {"dy", dy}, {"dx", dx}};
  OSP_TRY(ops_check_same_dtype(&call, activations, OPS_COUNT(activations)));
  const ops_operand inputs[] = {{"x", x}, {"dy", dy}};
  const ops_operand grads[] = {{"dx", dx}};
  OSP_TRY(ops_check_gradients_apart(&call, grads, OPS_COUNT(grads), inputs, OPS_COUNT(inputs)));

  OSP_TRY(ops_check_backend(&call));
  if (!dx) return OSP_OK;
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return cuda_kernel(x->data, dy->data, dx->data, x->dtype, osp_tensor_numel(x));
#endif
  cpu_kernel(x->data, dy->data, dx->data, osp_tensor_numel(x));
  return OSP_OK;
}

osp_status osp_gelu_tanh_backward(const osp_tensor *x, const osp_tensor *dy, osp_tensor *dx) {
  return elementwise_backward("osp_gelu_tanh_backward", x, dy, dx, osp_cpu_gelu_tanh_backward,
                              OPS_CUDA_KERNEL(osp_cuda_gelu_tanh_backward));
}

osp_status osp_silu_backward(const osp_tensor *x, const osp_tensor *dy, osp_tensor *dx) {
  return elementwise_backward("osp_silu_backward", x, dy, dx, osp_cpu_silu_backward,
                              OPS_CUDA_KERNEL(osp_cuda_silu_backward));
}
