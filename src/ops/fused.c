/* The fused ops of ops.h: each checks its operands as the ops it combines do, then runs one CUDA
 * kernel, or on the CPU the composition itself (the reference the CUDA kernels are tested
 * against). */
#include "core/status.h"
#include "cpu/cpu.h"
#include "ops/check.h"
#include "ops/ops.h"

/* shift and scale: both or neither, each a table row of x's. */
static osp_status check_modulation(ops_call *call, const osp_tensor *shift, const osp_tensor *scale,
                                   const osp_tensor *x) {
  OSP_TRY(ops_check_both_or_neither(call, "shift", shift, "scale", scale));
  if (!shift) return OSP_OK;
  OSP_TRY(ops_check_table_row(call, "shift", shift, x));
  return ops_check_table_row(call, "scale", scale, x);
}

/* LayerNorm's weight and bias: both or neither, [C] each, of one dtype. */
static osp_status check_affine(ops_call *call, const osp_tensor *weight, const osp_tensor *bias,
                               const osp_tensor *x) {
  OSP_TRY(ops_check_both_or_neither(call, "weight", weight, "bias", bias));
  if (!weight) return OSP_OK;
  OSP_TRY(ops_check_channel_vector(call, "weight", weight, x));
  OSP_TRY(ops_check_channel_vector(call, "bias", bias, x));
  if (weight->dtype != bias->dtype)
    return osp_fail(OSP_ERR_SHAPE, "%s: bias: expected weight's dtype %s, found %s", call->op,
                    osp_dtype_name(weight->dtype), osp_dtype_name(bias->dtype));
  return OSP_OK;
}

/* y is x's twin: same shape and dtype, x itself or apart from it. */
static osp_status check_same_dtype(const ops_call *call, const char *name, const osp_tensor *t,
                                   const osp_tensor *x) {
  if (t->dtype == x->dtype) return OSP_OK;
  return osp_fail(OSP_ERR_SHAPE, "%s: %s: expected x's dtype %s, found %s", call->op, name,
                  osp_dtype_name(x->dtype), osp_dtype_name(t->dtype));
}

osp_status osp_layernorm_modulate(const osp_tensor *x, const osp_tensor *shift,
                                  const osp_tensor *scale, float eps, osp_tensor *y) {
  ops_call call = OPS_CALL("osp_layernorm_modulate");
  OSP_TRY(ops_check_tokens(&call, "x", x));
  OSP_TRY(ops_check_in_out(&call, x, y));
  OSP_TRY(check_same_dtype(&call, "y", y, x));
  OSP_TRY(ops_check_table_row(&call, "shift", shift, x));
  OSP_TRY(ops_check_table_row(&call, "scale", scale, x));
  OSP_TRY(ops_check_eps(&call, eps));

  OSP_TRY(ops_check_backend(&call));
  const int64_t B = x->shape[0], N = x->shape[1], C = x->shape[2];
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_layernorm_modulate(x->data, ops_cuda_rows(shift), ops_cuda_rows(scale), eps,
                                       y->data, x->dtype, B, N, C);
#endif
  osp_cpu_layernorm(x->data, NULL, NULL, eps, y->data, B * N, C);
  osp_cpu_modulate(y->data, ops_cpu_rows(shift), ops_cpu_rows(scale), y->data, B, N, C);
  return OSP_OK;
}

osp_status osp_gated_add_layernorm(osp_tensor *x, const osp_tensor *y, const osp_tensor *gate,
                                   const osp_tensor *weight, const osp_tensor *bias,
                                   const osp_tensor *shift, const osp_tensor *scale, float eps,
                                   osp_tensor *normed) {
  ops_call call = OPS_CALL("osp_gated_add_layernorm");
  OSP_TRY(ops_check_tokens(&call, "x", x));
  OSP_TRY(ops_check_in_out(&call, x, y));
  OSP_TRY(check_same_dtype(&call, "y", y, x));
  if (gate) OSP_TRY(ops_check_table_row(&call, "gate", gate, x));
  OSP_TRY(check_affine(&call, weight, bias, x));
  OSP_TRY(check_modulation(&call, shift, scale, x));
  OSP_TRY(ops_check_eps(&call, eps));
  OSP_TRY(ops_check_float(&call, "normed", normed, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_shape_as(&call, "normed", normed, x, x->shape[2]));
  OSP_TRY(check_same_dtype(&call, "normed", normed, x));
  OSP_TRY(ops_check_disjoint(&call, "normed", normed, "x", x));
  OSP_TRY(ops_check_disjoint(&call, "normed", normed, "y", y));

  OSP_TRY(ops_check_backend(&call));
  const int64_t B = x->shape[0], N = x->shape[1], C = x->shape[2];
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_gated_add_layernorm(
        x->data, y->data, ops_cuda_rows(gate), weight ? weight->data : NULL,
        bias ? bias->data : NULL, weight ? weight->dtype : OSP_F32, ops_cuda_rows(shift),
        ops_cuda_rows(scale), eps, normed->data, x->dtype, B, N, C);
#endif
  osp_cpu_gated_add(x->data, y->data, ops_cpu_rows(gate), B, N, C);
  osp_cpu_layernorm(x->data, weight ? weight->data : NULL, bias ? bias->data : NULL, eps,
                    normed->data, B * N, C);
  if (scale) osp_cpu_modulate(normed->data, ops_cpu_rows(shift), ops_cpu_rows(scale), normed->data, B, N, C);
  return OSP_OK;
}

osp_status osp_rmsnorm_rope(osp_tensor *x, const osp_tensor *weight, float eps,
                            const osp_tensor *cos, const osp_tensor *sin) {
  ops_call call = OPS_CALL("osp_rmsnorm_rope");
  int64_t table_batch_stride = 0;
  OSP_TRY(ops_check_rope_operands(&call, "x", x, cos, sin, &table_batch_stride));
  const int64_t B = x->shape[0], N = x->shape[1], heads = x->shape[2], D = x->shape[3];
  OSP_TRY(ops_check_float(&call, "weight", weight, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_shape(&call, "weight", weight, 1, (const int64_t[]){heads * D}));
  OSP_TRY(ops_check_eps(&call, eps));

  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_rmsnorm_rope(x->data, x->dtype, weight->data, weight->dtype, eps, cos->data,
                                 sin->data, table_batch_stride, B, N, heads, D);
#endif
  osp_cpu_rmsnorm(x->data, weight->data, eps, x->data, B * N, heads * D);
  osp_cpu_rope_apply(x->data, cos->data, sin->data, table_batch_stride, B, N, heads, D);
  return OSP_OK;
}

osp_status osp_gated_add_gather(const osp_tensor *x, const osp_tensor *y, const osp_tensor *gate,
                                const osp_tensor *index, osp_tensor *dst) {
  ops_call call = OPS_CALL("osp_gated_add_gather");
  OSP_TRY(ops_check_tokens(&call, "x", x));
  OSP_TRY(ops_check_in_out(&call, x, y));
  OSP_TRY(check_same_dtype(&call, "y", y, x));
  if (gate) OSP_TRY(ops_check_table_row(&call, "gate", gate, x));
  OSP_TRY(ops_check_gather_operands(&call, x, index, x->dtype, dst));
  OSP_TRY(ops_check_disjoint(&call, "dst", dst, "y", y));

  OSP_TRY(ops_check_backend(&call));
  OSP_TRY(ops_check_gather_index_values(&call, index, osp_tensor_rows(x)));
  const int64_t N = x->shape[1], rows = index->shape[0], C = x->shape[2];
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_gated_add_gather(x->data, y->data, ops_cuda_rows(gate), N, index->data,
                                     dst->data, x->dtype, rows, C);
#endif
  osp_cpu_gated_add_gather(x->data, y->data, ops_cpu_rows(gate), N, index->data, dst->data, rows, C);
  return OSP_OK;
}
