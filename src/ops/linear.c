#include <stdlib.h>

#include "core/status.h"
#include "cpu/cpu.h"
#include "ops/check.h"
#include "ops/ops.h"

/* The weight: as x is on CUDA; on the CPU f32, or bf16 kept as it is (osp_cpu_linear_bf16). */
static osp_status check_weight(ops_call *call, const osp_tensor *w) {
  if (w && w->device == OSP_CPU && w->dtype == OSP_BF16)
    return ops_check_operand(call, "weight", w, OSP_BF16, OPS_CONTIGUOUS);
  return ops_check_float(call, "weight", w, OPS_CONTIGUOUS);
}

/* x [.., K], weight [N, K], bias [N] or NULL, y [.., N]; bf16 matrices on CUDA; y apart from the
 * inputs. Sets M, N, K. */
static osp_status check_linear(ops_call *call, const osp_tensor *x, const osp_tensor *w,
                               const osp_tensor *bias, const osp_tensor *y, int64_t *M, int64_t *N,
                               int64_t *K) {
  OSP_TRY(ops_check_float(call, "x", x, OPS_CONTIGUOUS));
  OSP_TRY(check_weight(call, w));
  if (bias) OSP_TRY(ops_check_float(call, "bias", bias, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_float(call, "y", y, OPS_CONTIGUOUS));
  /* cuBLASLt multiplies bf16 matrices (f32 accumulation) into bf16 or f32. */
  OSP_TRY(ops_check_cuda_dtype(call, "x", x, OSP_BF16));
  OSP_TRY(ops_check_cuda_dtype(call, "weight", w, OSP_BF16));
  if (bias) OSP_TRY(ops_check_cuda_dtype(call, "bias", bias, OSP_BF16));

  *M = osp_tensor_rows(x), *K = x->shape[x->ndim - 1];
  OSP_TRY(ops_check_shape(call, "weight", w, 2, (const int64_t[]){-1, *K}));
  *N = w->shape[0];
  if (bias) OSP_TRY(ops_check_shape(call, "bias", bias, 1, (const int64_t[]){*N}));
  OSP_TRY(ops_check_shape_as(call, "y", y, x, *N));
  OSP_TRY(ops_check_disjoint(call, "y", y, "x", x));
  OSP_TRY(ops_check_disjoint(call, "y", y, "weight", w));
  if (bias) OSP_TRY(ops_check_disjoint(call, "y", y, "bias", bias));
  OSP_TRY(ops_check_backend(call));
  if (call->device != OSP_CPU) return OSP_OK;
  OSP_TRY(ops_check_blas_size(call, "the row count of x", *M));
  OSP_TRY(ops_check_blas_size(call, "the row count of weight", *N));
  return ops_check_blas_size(call, "the row width of x", *K);
}

/* The CPU product for either weight dtype; a bf16 weight's tiles are converted in a scratch of
 * one tile per thread, allocated for the call. */
static osp_status cpu_linear(const osp_tensor *x, const osp_tensor *w, const osp_tensor *bias,
                             osp_tensor *y, int64_t M, int64_t N, int64_t K) {
  const float *b = bias ? bias->data : NULL;
  if (w->dtype == OSP_F32) {
    osp_cpu_linear(x->data, w->data, b, y->data, M, N, K);
    return OSP_OK;
  }
  const size_t floats = osp_cpu_linear_bf16_scratch_floats(K);
  float *scratch = malloc(floats * sizeof *scratch);
  if (!scratch)
    return osp_fail(OSP_ERR_MEMORY, "osp_linear: no memory for the bf16 weight's tiles (%zu bytes)",
                    floats * sizeof *scratch);
  osp_cpu_linear_bf16(x->data, w->data, b, y->data, M, N, K, scratch);
  free(scratch);
  return OSP_OK;
}

osp_status osp_linear(const osp_tensor *x, const osp_tensor *w, const osp_tensor *bias,
                      osp_tensor *y) {
  ops_call call = OPS_CALL("osp_linear");
  int64_t M, N, K;
  OSP_TRY(check_linear(&call, x, w, bias, y, &M, &N, &K));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_linear(x->data, w->data, bias ? bias->data : NULL, y->data, y->dtype, M, N, K);
#endif
  return cpu_linear(x, w, bias, y, M, N, K);
}

osp_status osp_linear_gelu_tanh(const osp_tensor *x, const osp_tensor *w, const osp_tensor *bias,
                                osp_tensor *y) {
  ops_call call = OPS_CALL("osp_linear_gelu_tanh");
  int64_t M, N, K;
  OSP_TRY(check_linear(&call, x, w, bias, y, &M, &N, &K));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_linear_gelu_tanh(x->data, w->data, bias ? bias->data : NULL, y->data, y->dtype,
                                     M, N, K);
#endif
  OSP_TRY(cpu_linear(x, w, bias, y, M, N, K));
  osp_cpu_gelu_tanh(y->data, y->data, M * N);
  return OSP_OK;
}
