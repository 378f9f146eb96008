#include "core/status.h"
#include "cpu/cpu.h"
#include "ops/check.h"
#include "ops/grad.h"

/* A checked gradient table row (or NULL: not wanted) as the kernels take it. */
static osp_cpu_grad_rows cpu_grad_rows(osp_tensor *t) {
  if (!t) return (osp_cpu_grad_rows){.data = NULL};
  return (osp_cpu_grad_rows){.data = t->data, .row_stride = t->stride[0], .rows = t->shape[0]};
}

#ifdef OSP_HAVE_CUDA
static osp_cuda_grad_rows cuda_grad_rows(osp_tensor *t) {
  if (!t) return (osp_cuda_grad_rows){.data = NULL};
  return (osp_cuda_grad_rows){.data = t->data, .row_stride = t->stride[0], .rows = t->shape[0]};
}
#endif

osp_status osp_modulate_backward(const osp_tensor *x, const osp_tensor *scale, const osp_tensor *dy,
                                 osp_tensor *dx, osp_tensor *dshift, osp_tensor *dscale) {
  ops_call call = OPS_CALL("osp_modulate_backward");
  OSP_TRY(ops_check_tokens(&call, "x", x));
  OSP_TRY(ops_check_table_row(&call, "scale", scale, x));
  OSP_TRY(ops_check_tokens(&call, "dy", dy));
  OSP_TRY(ops_check_shape(&call, "dy", dy, 3, x->shape));
  OSP_TRY(ops_check_gradient(&call, "dx", dx, 3, x->shape, OPS_CONTIGUOUS));
  if (dshift) {
    OSP_TRY(ops_check_table_row(&call, "dshift", dshift, x));
    OSP_TRY(ops_check_cuda_dtype(&call, "dshift", dshift, OSP_F32));
  }
  OSP_TRY(ops_check_param_gradient(&call, "dscale", dscale, 2, scale->shape, OPS_STRIDED_ROWS));
  const ops_operand activations[] = {{"x", x}, {"dy", dy}, {"dx", dx}};
  OSP_TRY(ops_check_same_dtype(&call, activations, OPS_COUNT(activations)));
  const ops_operand inputs[] = {{"x", x}, {"scale", scale}, {"dy", dy}};
  const ops_operand grads[] = {{"dx", dx}, {"dshift", dshift}, {"dscale", dscale}};
  OSP_TRY(ops_check_gradients_apart(&call, grads, OPS_COUNT(grads), inputs, OPS_COUNT(inputs)));

  OSP_TRY(ops_check_backend(&call));
  const int64_t B = x->shape[0], N = x->shape[1], C = x->shape[2];
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_modulate_backward(x->data, ops_cuda_rows(scale), dy->data,
                                      ops_data_or_null(dx), x->dtype, cuda_grad_rows(dshift),
                                      cuda_grad_rows(dscale), B, N, C);
#endif
  osp_cpu_modulate_backward(x->data, ops_cpu_rows(scale), dy->data, ops_data_or_null(dx),
                            cpu_grad_rows(dshift), cpu_grad_rows(dscale), B, N, C);
  return OSP_OK;
}

osp_status osp_gated_add_backward(const osp_tensor *dx, const osp_tensor *y, const osp_tensor *gate,
                                  osp_tensor *dy, osp_tensor *dgate) {
  ops_call call = OPS_CALL("osp_gated_add_backward");
  OSP_TRY(ops_check_tokens(&call, "dx", dx));
  OSP_TRY(ops_check_tokens(&call, "y", y));
  OSP_TRY(ops_check_shape(&call, "y", y, 3, dx->shape));
  if (gate)
    OSP_TRY(ops_check_table_row(&call, "gate", gate, dx));
  else
    OSP_TRY(ops_check_absent(&call, "dgate", dgate, "no gate: a plain add"));
  OSP_TRY(ops_check_gradient(&call, "dy", dy, 3, dx->shape, OPS_CONTIGUOUS));
  if (dgate)
    OSP_TRY(ops_check_param_gradient(&call, "dgate", dgate, 2, gate->shape, OPS_STRIDED_ROWS));
  const ops_operand activations[] = {{"dx", dx}, {"y", y}, {"dy", dy}};
  OSP_TRY(ops_check_same_dtype(&call, activations, OPS_COUNT(activations)));
  const ops_operand inputs[] = {{"dx", dx}, {"y", y}, {"gate", gate}};
  const ops_operand grads[] = {{"dy", dy}, {"dgate", dgate}};
  OSP_TRY(ops_check_gradients_apart(&call, grads, OPS_COUNT(grads), inputs, OPS_COUNT(inputs)));

  OSP_TRY(ops_check_backend(&call));
  const int64_t B = dx->shape[0], N = dx->shape[1], C = dx->shape[2];
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_gated_add_backward(dx->data, y->data, ops_cuda_rows(gate), ops_data_or_null(dy),
                                       dx->dtype, cuda_grad_rows(dgate), B, N, C);
#endif
  osp_cpu_gated_add_backward(dx->data, y->data, ops_cpu_rows(gate), ops_data_or_null(dy),
                             cpu_grad_rows(dgate), B, N, C);
  return OSP_OK;
}
