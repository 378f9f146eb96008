/* The ops only the umT5 text encoder uses (ops.h, "Text encoder"): its gated FFN's product and
 * its relative position bias. The attention with that bias is in attention.c, beside the plain
 * one. */
#include "core/status.h"
#include "cpu/cpu.h"
#include "ops/check.h"
#include "ops/ops.h"

osp_status osp_gelu_tanh_mul(const osp_tensor *a, const osp_tensor *b, osp_tensor *y) {
  ops_call call = OPS_CALL("osp_gelu_tanh_mul");
  OSP_TRY(ops_check_float(&call, "a", a, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_float(&call, "b", b, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_float(&call, "y", y, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_shape_as(&call, "b", b, a, a->shape[a->ndim - 1]));
  OSP_TRY(ops_check_shape_as(&call, "y", y, a, a->shape[a->ndim - 1]));
  OSP_TRY(ops_check_in_place_or_disjoint(&call, "y", y, "a", a));
  OSP_TRY(ops_check_in_place_or_disjoint(&call, "y", y, "b", b));
  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA) {
    if (b->dtype != a->dtype || y->dtype != a->dtype)
      return osp_fail(OSP_ERR_SHAPE, "%s: on CUDA a, b and y share one dtype, found %s, %s and %s", call.op,
                      osp_dtype_name(a->dtype), osp_dtype_name(b->dtype), osp_dtype_name(y->dtype));
    return osp_cuda_gelu_tanh_mul(a->data, b->data, y->data, a->dtype, osp_tensor_numel(a));
  }
#endif
  osp_cpu_gelu_tanh_mul(a->data, b->data, y->data, osp_tensor_numel(a));
  return OSP_OK;
}

#ifdef OSP_HAVE_CUDA
/* The CPU's bucket rule as thresholds (osp_cuda_bucket_rule): for each bucket past the exact ones,
 * the least distance up to `longest` that the CPU puts in it or beyond. */
static osp_status bucket_rule(int64_t buckets, int64_t max_distance, int64_t longest, osp_cuda_bucket_rule *rule) {
  *rule = (osp_cuda_bucket_rule){.exact = buckets / 4, .half = buckets / 2};
  int64_t last = osp_cpu_relative_bucket(rule->exact, buckets, max_distance);
  for (int64_t n = rule->exact + 1; n <= longest; n++) {
    const int64_t bucket = osp_cpu_relative_bucket(n, buckets, max_distance);
    for (; last < bucket; last++) {
      if (rule->thresholds == OSP_CUDA_MAX_BUCKET_THRESHOLDS)
        return osp_fail(OSP_ERR_UNSUPPORTED, "osp_relative_position_bias: more than %d log-spaced buckets on CUDA",
                        OSP_CUDA_MAX_BUCKET_THRESHOLDS);
      rule->threshold[rule->thresholds++] = n;
    }
  }
  return OSP_OK;
}
#endif

osp_status osp_relative_position_bias(const osp_tensor *table, int max_distance, osp_tensor *bias) {
  ops_call call = OPS_CALL("osp_relative_position_bias");
  OSP_TRY(ops_check_float(&call, "table", table, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_float(&call, "bias", bias, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_shape(&call, "table", table, 2, (const int64_t[]){-1, -1}));
  const int64_t buckets = table->shape[0], heads = table->shape[1];
  OSP_TRY(ops_check_shape(&call, "bias", bias, 3, (const int64_t[]){heads, -1, -1}));
  if (buckets < 4 || buckets % 2)
    return osp_fail(OSP_ERR_SHAPE, "%s: table: expected an even number of buckets, at least 4, found %lld",
                    call.op, (long long)buckets);
  if (max_distance <= buckets / 4)
    return osp_fail(OSP_ERR_ARGUMENT,
                    "%s: max_distance: expected more than the %lld exact buckets, found %d", call.op,
                    (long long)(buckets / 4), max_distance);
  OSP_TRY(ops_check_disjoint(&call, "bias", bias, "table", table));
  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA) {
    if (table->dtype != OSP_F32 || bias->dtype != OSP_F32)
      return osp_fail(OSP_ERR_SHAPE, "%s: on CUDA table and bias are f32, found %s and %s", call.op,
                      osp_dtype_name(table->dtype), osp_dtype_name(bias->dtype));
    const int64_t queries = bias->shape[1], keys = bias->shape[2];
    osp_cuda_bucket_rule rule;
    OSP_TRY(bucket_rule(buckets, max_distance, queries > keys ? queries : keys, &rule));
    return osp_cuda_relative_position_bias(table->data, heads, queries, keys, &rule, bias->data);
  }
#endif
  osp_cpu_relative_position_bias(table->data, buckets, max_distance, bias->data, heads,
                                 bias->shape[1], bias->shape[2]);
  return OSP_OK;
}
