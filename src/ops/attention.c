#include <math.h>
#include <stdbool.h>

#include "core/status.h"
#include "cpu/cpu.h"
#include "ops/check.h"
#include "ops/grad.h"
#include "ops/ops.h"

static osp_status check_operands(ops_call *call, const osp_tensor *q, const osp_tensor *k,
                                 const osp_tensor *v, const osp_tensor *key_mask,
                                 const osp_tensor *out) {
  const char *names[4] = {"q", "k", "v", "out"};
  const osp_tensor *operands[4] = {q, k, v, out};
  for (int i = 0; i < 4; i++) {
    OSP_TRY(ops_check_float(call, names[i], operands[i], OPS_CONTIGUOUS));
    OSP_TRY(ops_check_cuda_dtype(call, names[i], operands[i], OSP_BF16)); /* bf16 tensor cores */
  }
  if (key_mask) OSP_TRY(ops_check_operand(call, "key_mask", key_mask, OSP_U8, OPS_CONTIGUOUS));
  return OSP_OK;
}

/* q, out [B, Nq, heads, D]; k, v [Bk, Nk, heads, D] with Bk dividing B; key_mask [B, Nk]. */
static osp_status check_shapes(const ops_call *call, const osp_tensor *q, const osp_tensor *k,
                               const osp_tensor *v, const osp_tensor *key_mask,
                               const osp_tensor *out) {
  OSP_TRY(ops_check_shape(call, "q", q, 4, (const int64_t[]){-1, -1, -1, -1}));
  const int64_t B = q->shape[0], heads = q->shape[2], D = q->shape[3];
  OSP_TRY(ops_check_shape(call, "k", k, 4, (const int64_t[]){-1, -1, heads, D}));
  OSP_TRY(ops_check_shape_as(call, "v", v, k, D));
  if (B % k->shape[0])
    return osp_fail(OSP_ERR_SHAPE,
                    "%s: k: expected a batch dividing the query batch %lld, found %lld", call->op,
                    (long long)B, (long long)k->shape[0]);
  if (key_mask)
    OSP_TRY(ops_check_shape(call, "key_mask", key_mask, 2, (const int64_t[]){B, k->shape[1]}));
  return ops_check_shape_as(call, "out", out, q, D);
}

size_t osp_attention_scratch_bytes(osp_device device) {
  return device == OSP_CPU ? osp_cpu_attention_scratch_bytes() : 0;
}

/* On the CPU one pair of score blocks per thread, whatever the shape; on CUDA δ and the scaled
 * lse of every query (attention_backward.cu). */
size_t osp_attention_backward_scratch_bytes(osp_device device, const int64_t q_shape[4]) {
  if (device == OSP_CPU) return osp_cpu_attention_backward_scratch_bytes();
#ifdef OSP_HAVE_CUDA
  return osp_cuda_attention_backward_scratch_bytes(q_shape[0], q_shape[1], q_shape[2]);
#else
  return 0;
#endif
}

/* scratch: a u8 tensor of at least `need` bytes on the call's device, or NULL where need is 0. */
static osp_status check_scratch(ops_call *call, const osp_tensor *scratch, size_t need) {
  if (!scratch && need == 0) return OSP_OK;
  OSP_TRY(ops_check_operand(call, "scratch", scratch, OSP_U8, OPS_CONTIGUOUS));
  if (osp_tensor_bytes(scratch) < need)
    return osp_fail(OSP_ERR_SHAPE, "%s: scratch: expected at least %zu bytes, found %zu", call->op,
                    need, osp_tensor_bytes(scratch));
  return OSP_OK;
}

/* What every attention op checks: q, k, v, key_mask and out as osp_attention takes them, the
 * op's scratch (osp_attention_scratch_bytes, or with `backward` osp_attention_backward_scratch_bytes)
 * and a finite scale. */
static osp_status check_attention(ops_call *call, const osp_tensor *q, const osp_tensor *k,
                                  const osp_tensor *v, const osp_tensor *key_mask, float scale,
                                  const osp_tensor *scratch, bool backward, const osp_tensor *out) {
  OSP_TRY(check_operands(call, q, k, v, key_mask, out));
  OSP_TRY(check_shapes(call, q, k, v, key_mask, out));
  OSP_TRY(check_scratch(call, scratch,
                        backward ? osp_attention_backward_scratch_bytes(call->device, q->shape)
                                 : osp_attention_scratch_bytes(call->device)));
  if (!isfinite(scale))
    return osp_fail(OSP_ERR_ARGUMENT, "%s: scale: expected a finite value, found %g", call->op,
                    (double)scale);
  return OSP_OK;
}

/* lse: f32 [B, heads, Nq] for q [B, Nq, heads, D]. */
static osp_status check_lse(ops_call *call, const osp_tensor *lse, const osp_tensor *q) {
  OSP_TRY(ops_check_operand(call, "lse", lse, OSP_F32, OPS_CONTIGUOUS));
  return ops_check_shape(call, "lse", lse, 3,
                         (const int64_t[]){q->shape[0], q->shape[2], q->shape[1]});
}

/* The CPU kernels' view of the sizes: B, Bk, Nq, Nk, heads, D, within OpenBLAS's int sizes. */
static osp_status cpu_shape(const ops_call *call, const osp_tensor *q, const osp_tensor *k,
                            osp_cpu_attention_shape *shape) {
  *shape = (osp_cpu_attention_shape){q->shape[0], k->shape[0], q->shape[1],
                                     k->shape[1], q->shape[2], q->shape[3]};
  return ops_check_blas_size(call, "heads x head_dim", shape->heads * shape->head_dim);
}

#ifdef OSP_HAVE_CUDA
static osp_cuda_attention_shape cuda_shape(const osp_tensor *q, const osp_tensor *k) {
  return (osp_cuda_attention_shape){
      .batch = q->shape[0],
      .kv_batch = k->shape[0],
      .queries = q->shape[1],
      .keys = k->shape[1],
      .heads = q->shape[2],
      .head_dim = q->shape[3],
  };
}
#endif

/* The forward on the call's device, with the lse where wanted (lse NULL: not kept). */
static osp_status forward(const ops_call *call, const osp_tensor *q, const osp_tensor *k,
                          const osp_tensor *v, const osp_tensor *key_mask, float scale,
                          const osp_tensor *scratch, osp_tensor *out, osp_tensor *lse) {
#ifdef OSP_HAVE_CUDA
  if (call->device == OSP_CUDA)
    return osp_cuda_attention(q->data, k->data, v->data, ops_data_or_null(key_mask), scale,
                              out->data, ops_data_or_null(lse), cuda_shape(q, k));
#endif
  osp_cpu_attention_shape shape;
  OSP_TRY(cpu_shape(call, q, k, &shape));
  osp_cpu_attention(q->data, k->data, v->data, ops_data_or_null(key_mask), scale, out->data,
                    ops_data_or_null(lse), shape, scratch->data);
  return OSP_OK;
}

osp_status osp_attention(const osp_tensor *q, const osp_tensor *k, const osp_tensor *v,
                         const osp_tensor *key_mask, float scale, const osp_tensor *scratch,
                         osp_tensor *out) {
  ops_call call = OPS_CALL("osp_attention");
  OSP_TRY(check_attention(&call, q, k, v, key_mask, scale, scratch, false, out));
  OSP_TRY(ops_check_disjoint(&call, "out", out, "q", q));
  OSP_TRY(ops_check_disjoint(&call, "out", out, "k", k));
  OSP_TRY(ops_check_disjoint(&call, "out", out, "v", v));
  OSP_TRY(ops_check_backend(&call));
  return forward(&call, q, k, v, key_mask, scale, scratch, out, NULL);
}

osp_status osp_attention_forward_lse(const osp_tensor *q, const osp_tensor *k, const osp_tensor *v,
                                     const osp_tensor *key_mask, float scale,
                                     const osp_tensor *scratch, osp_tensor *out, osp_tensor *lse) {
  ops_call call = OPS_CALL("osp_attention_forward_lse");
  OSP_TRY(check_attention(&call, q, k, v, key_mask, scale, scratch, false, out));
  OSP_TRY(check_lse(&call, lse, q));
  const ops_operand inputs[] = {{"q", q}, {"k", k}, {"v", v}};
  const ops_operand outputs[] = {{"out", out}, {"lse", lse}}; /* apart, as gradients are */
  OSP_TRY(ops_check_gradients_apart(&call, outputs, 2, inputs, OPS_COUNT(inputs)));
  OSP_TRY(ops_check_backend(&call));
  return forward(&call, q, k, v, key_mask, scale, scratch, out, lse);
}

/* bias: f32 [heads, Nq, Nk] for q [B, Nq, heads, D] and k [Bk, Nk, heads, D], apart from out. */
static osp_status check_bias(ops_call *call, const osp_tensor *bias, const osp_tensor *q,
                             const osp_tensor *k, const osp_tensor *out) {
  OSP_TRY(ops_check_float(call, "bias", bias, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_shape(call, "bias", bias, 3,
                          (const int64_t[]){q->shape[2], q->shape[1], k->shape[1]}));
  return ops_check_disjoint(call, "out", out, "bias", bias);
}

osp_status osp_attention_biased(const osp_tensor *q, const osp_tensor *k, const osp_tensor *v,
                                const osp_tensor *key_mask, const osp_tensor *bias, float scale,
                                const osp_tensor *scratch, osp_tensor *out) {
  ops_call call = OPS_CALL("osp_attention_biased");
  OSP_TRY(check_attention(&call, q, k, v, key_mask, scale, scratch, false, out));
  OSP_TRY(check_bias(&call, bias, q, k, out));
  OSP_TRY(ops_check_disjoint(&call, "out", out, "q", q));
  OSP_TRY(ops_check_disjoint(&call, "out", out, "k", k));
  OSP_TRY(ops_check_disjoint(&call, "out", out, "v", v));
  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA) {
    if (k->shape[0] != q->shape[0])
      return osp_fail(OSP_ERR_UNSUPPORTED, "%s: k: on CUDA the key batch must equal the query batch %lld, found %lld",
                      call.op, (long long)q->shape[0], (long long)k->shape[0]);
    return osp_cuda_attention_biased(q->data, k->data, v->data, ops_data_or_null(key_mask), bias->data, scale,
                                     out->data, q->dtype, q->shape[0], q->shape[1], k->shape[1], q->shape[2],
                                     q->shape[3]);
  }
#endif
  osp_cpu_attention_shape shape;
  OSP_TRY(cpu_shape(&call, q, k, &shape));
  osp_cpu_attention_biased(q->data, k->data, v->data, ops_data_or_null(key_mask), bias->data,
                           scale, out->data, shape, scratch->data);
  return OSP_OK;
}

/* dout as out; dq as q; dk and dv as k (each may be NULL). */
static osp_status check_gradients(ops_call *call, const osp_tensor *q, const osp_tensor *k,
                                  const osp_tensor *dout, const osp_tensor *dq,
                                  const osp_tensor *dk, const osp_tensor *dv) {
  OSP_TRY(ops_check_float(call, "dout", dout, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_cuda_dtype(call, "dout", dout, OSP_BF16));
  OSP_TRY(ops_check_shape_as(call, "dout", dout, q, q->shape[3]));
  OSP_TRY(ops_check_gradient(call, "dq", dq, 4, q->shape, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_gradient(call, "dk", dk, 4, k->shape, OPS_CONTIGUOUS));
  return ops_check_gradient(call, "dv", dv, 4, k->shape, OPS_CONTIGUOUS);
}

osp_status osp_attention_backward(const osp_tensor *q, const osp_tensor *k, const osp_tensor *v,
                                  const osp_tensor *key_mask, float scale, const osp_tensor *out,
                                  const osp_tensor *lse, const osp_tensor *dout,
                                  const osp_tensor *scratch, osp_tensor *dq, osp_tensor *dk,
                                  osp_tensor *dv) {
  ops_call call = OPS_CALL("osp_attention_backward");
  OSP_TRY(check_attention(&call, q, k, v, key_mask, scale, scratch, true, out));
  OSP_TRY(check_lse(&call, lse, q));
  OSP_TRY(check_gradients(&call, q, k, dout, dq, dk, dv));
  const ops_operand inputs[] = {{"q", q},
                                {"k", k},
                                {"v", v},
                                {"out", out},
                                {"lse", lse},
                                {"dout", dout},
                                {"key_mask", key_mask}};
  const ops_operand grads[] = {{"dq", dq}, {"dk", dk}, {"dv", dv}};
  OSP_TRY(ops_check_gradients_apart(&call, grads, OPS_COUNT(grads), inputs, OPS_COUNT(inputs)));
  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_attention_backward(
        q->data, k->data, v->data, ops_data_or_null(key_mask), scale, out->data, lse->data,
        dout->data, ops_data_or_null(dq), dq ? dq->dtype : OSP_F32, ops_data_or_null(dk),
        dk ? dk->dtype : OSP_F32, ops_data_or_null(dv), dv ? dv->dtype : OSP_F32,
        ops_data_or_null(scratch), cuda_shape(q, k));
#endif
  osp_cpu_attention_shape shape;
  OSP_TRY(cpu_shape(&call, q, k, &shape));
  osp_cpu_attention_backward(q->data, k->data, v->data, ops_data_or_null(key_mask), scale,
                             out->data, lse->data, dout->data, ops_data_or_null(dq),
                             ops_data_or_null(dk), ops_data_or_null(dv), shape, scratch->data);
  return OSP_OK;
}
