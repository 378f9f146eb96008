#include <math.h>

#include "core/status.h"
#include "cpu/cpu.h"
#include "ops/check.h"
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

static osp_status check_scratch(ops_call *call, const osp_tensor *scratch) {
  if (!scratch && osp_attention_scratch_bytes(call->device) == 0) return OSP_OK;
  OSP_TRY(ops_check_operand(call, "scratch", scratch, OSP_U8, OPS_CONTIGUOUS));
  size_t need = osp_attention_scratch_bytes(scratch->device);
  if (osp_tensor_bytes(scratch) < need)
    return osp_fail(OSP_ERR_SHAPE, "%s: scratch: expected at least %zu bytes, found %zu", call->op,
                    need, osp_tensor_bytes(scratch));
  return OSP_OK;
}

osp_status osp_attention(const osp_tensor *q, const osp_tensor *k, const osp_tensor *v,
                         const osp_tensor *key_mask, float scale, const osp_tensor *scratch,
                         osp_tensor *out) {
  ops_call call = OPS_CALL("osp_attention");
  OSP_TRY(check_operands(&call, q, k, v, key_mask, out));
  OSP_TRY(check_shapes(&call, q, k, v, key_mask, out));
  OSP_TRY(check_scratch(&call, scratch));
  OSP_TRY(ops_check_disjoint(&call, "out", out, "q", q));
  OSP_TRY(ops_check_disjoint(&call, "out", out, "k", k));
  OSP_TRY(ops_check_disjoint(&call, "out", out, "v", v));
  if (!isfinite(scale))
    return osp_fail(OSP_ERR_ARGUMENT, "%s: scale: expected a finite value, found %g", call.op,
                    (double)scale);

  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA) {
    const osp_cuda_attention_shape cuda_shape = {
        .batch = q->shape[0],
        .kv_batch = k->shape[0],
        .queries = q->shape[1],
        .keys = k->shape[1],
        .heads = q->shape[2],
        .head_dim = q->shape[3],
    };
    return osp_cuda_attention(q->data, k->data, v->data, key_mask ? key_mask->data : NULL, scale,
                              out->data, cuda_shape);
  }
#endif
  const osp_cpu_attention_shape shape = {
      .batch = q->shape[0],
      .kv_batch = k->shape[0],
      .queries = q->shape[1],
      .keys = k->shape[1],
      .heads = q->shape[2],
      .head_dim = q->shape[3],
  };
  OSP_TRY(ops_check_blas_size(&call, "heads x head_dim", shape.heads * shape.head_dim));
  osp_cpu_attention(q->data, k->data, v->data, key_mask ? key_mask->data : NULL, scale, out->data,
                    shape, scratch->data);
  return OSP_OK;
}
