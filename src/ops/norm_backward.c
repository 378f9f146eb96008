#include "core/status.h"
#include "cpu/cpu.h"
#include "ops/check.h"
#include "ops/grad.h"

/* What both norms' backwards check: x, dy and dx of one shape and dtype, eps, and the weight [C]
 * (its own dtype) with its f32 gradient (RMSNorm's weight is required; LayerNorm's may be NULL,
 * and then dweight too). */
static osp_status check_norm_backward(ops_call *call, const osp_tensor *x, const osp_tensor *weight,
                                      bool weight_required, float eps, const osp_tensor *dy,
                                      const osp_tensor *dx, const osp_tensor *dweight) {
  OSP_TRY(ops_check_float(call, "x", x, OPS_CONTIGUOUS));
  if (weight || weight_required)
    OSP_TRY(ops_check_channel_vector(call, "weight", weight, x));
  else
    OSP_TRY(ops_check_absent(call, "dweight", dweight, "no weight: no affine"));
  OSP_TRY(ops_check_eps(call, eps));
  OSP_TRY(ops_check_float(call, "dy", dy, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_shape(call, "dy", dy, x->ndim, x->shape));
  OSP_TRY(ops_check_gradient(call, "dx", dx, x->ndim, x->shape, OPS_CONTIGUOUS));
  const ops_operand activations[] = {{"x", x}, {"dy", dy}, {"dx", dx}};
  OSP_TRY(ops_check_same_dtype(call, activations, OPS_COUNT(activations)));
  return ops_check_param_gradient(call, "dweight", dweight, 1, &x->shape[x->ndim - 1],
                                  OPS_CONTIGUOUS);
}

osp_status osp_layernorm_backward(const osp_tensor *x, const osp_tensor *weight, float eps,
                                  const osp_tensor *dy, osp_tensor *dx, osp_tensor *dweight,
                                  osp_tensor *dbias) {
  ops_call call = OPS_CALL("osp_layernorm_backward");
  OSP_TRY(check_norm_backward(&call, x, weight, false, eps, dy, dx, dweight));
  const int64_t C = x->shape[x->ndim - 1];
  if (!weight) OSP_TRY(ops_check_absent(&call, "dbias", dbias, "no weight: no affine"));
  OSP_TRY(ops_check_param_gradient(&call, "dbias", dbias, 1, &C, OPS_CONTIGUOUS));
  const ops_operand inputs[] = {{"x", x}, {"weight", weight}, {"dy", dy}};
  const ops_operand grads[] = {{"dx", dx}, {"dweight", dweight}, {"dbias", dbias}};
  OSP_TRY(ops_check_gradients_apart(&call, grads, OPS_COUNT(grads), inputs, OPS_COUNT(inputs)));

  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_layernorm_backward(x->data, ops_data_or_null(weight),
                                       weight ? weight->dtype : OSP_F32, eps, dy->data,
                                       ops_data_or_null(dx), x->dtype, ops_data_or_null(dweight),
                                       ops_data_or_null(dbias), osp_tensor_rows(x), C);
#endif
  osp_cpu_layernorm_backward(x->data, ops_data_or_null(weight), eps, dy->data,
                             ops_data_or_null(dx), ops_data_or_null(dweight),
                             ops_data_or_null(dbias), osp_tensor_rows(x), C);
  return OSP_OK;
}

osp_status osp_rmsnorm_backward(const osp_tensor *x, const osp_tensor *weight, float eps,
                                const osp_tensor *dy, osp_tensor *dx, osp_tensor *dweight) {
  ops_call call = OPS_CALL("osp_rmsnorm_backward");
  OSP_TRY(check_norm_backward(&call, x, weight, true, eps, dy, dx, dweight));
  const ops_operand inputs[] = {{"x", x}, {"weight", weight}, {"dy", dy}};
  const ops_operand grads[] = {{"dx", dx}, {"dweight", dweight}};
  OSP_TRY(ops_check_gradients_apart(&call, grads, OPS_COUNT(grads), inputs, OPS_COUNT(inputs)));

  OSP_TRY(ops_check_backend(&call));
  const int64_t C = x->shape[x->ndim - 1];
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_rmsnorm_backward(x->data, weight->data, weight->dtype, eps, dy->data,
                                     ops_data_or_null(dx), x->dtype, ops_data_or_null(dweight),
                                     osp_tensor_rows(x), C);
#endif
  osp_cpu_rmsnorm_backward(x->data, weight->data, eps, dy->data, ops_data_or_null(dx),
                           ops_data_or_null(dweight), osp_tensor_rows(x), C);
  return OSP_OK;
}
