#include "core/status.h"
#include "cpu/cpu.h"
#include "ops/check.h"
#include "ops/grad.h"

osp_status osp_linear_backward(const osp_tensor *x, const osp_tensor *w, const osp_tensor *dy,
                               osp_tensor *dx, osp_tensor *dw, osp_tensor *dbias) {
  ops_call call = OPS_CALL("osp_linear_backward");
  OSP_TRY(ops_check_float(&call, "x", x, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_float(&call, "weight", w, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_float(&call, "dy", dy, OPS_CONTIGUOUS));
  const int64_t M = osp_tensor_rows(x), K = x->shape[x->ndim - 1];
  OSP_TRY(ops_check_shape(&call, "weight", w, 2, (const int64_t[]){-1, K}));
  const int64_t N = w->shape[0];
  OSP_TRY(ops_check_shape_as(&call, "dy", dy, x, N));
  OSP_TRY(ops_check_gradient(&call, "dx", dx, x->ndim, x->shape, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_param_gradient(&call, "dweight", dw, 2, w->shape, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_param_gradient(&call, "dbias", dbias, 1, (const int64_t[]){N}, OPS_CONTIGUOUS));
  /* cuBLASLt multiplies matrices of one dtype: the weight is in the activations' */
  const ops_operand activations[] = {{"x", x}, {"weight", w}, {"dy", dy}, {"dx", dx}};
  OSP_TRY(ops_check_same_dtype(&call, activations, OPS_COUNT(activations)));
  const ops_operand inputs[] = {{"x", x}, {"weight", w}, {"dy", dy}};
  const ops_operand grads[] = {{"dx", dx}, {"dweight", dw}, {"dbias", dbias}};
  OSP_TRY(ops_check_gradients_apart(&call, grads, OPS_COUNT(grads), inputs, OPS_COUNT(inputs)));

  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_linear_backward(x->data, w->data, dy->data, x->dtype, ops_data_or_null(dx),
                                    ops_data_or_null(dw), ops_data_or_null(dbias), M, N, K);
#endif
  OSP_TRY(ops_check_blas_size(&call, "the row count of x", M));
  OSP_TRY(ops_check_blas_size(&call, "the row count of weight", N));
  OSP_TRY(ops_check_blas_size(&call, "the row width of x", K));
  osp_cpu_linear_backward(x->data, w->data, dy->data, ops_data_or_null(dx), ops_data_or_null(dw),
                          ops_data_or_null(dbias), M, N, K);
  return OSP_OK;
}
