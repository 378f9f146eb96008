/* Device memory, copies between devices and dtypes, and random fills: the few things a model
 * needs to put its weights and activations on a device without knowing which. */
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/status.h"
#include "ops/check.h"
#include "ops/ops.h"

osp_status osp_device_arena(osp_arena *arena, const char *name, osp_device device, size_t bytes) {
  if (device == OSP_CPU) return osp_arena_init(arena, name, bytes);
#ifdef OSP_HAVE_CUDA
  void *base = NULL;
  const size_t size = osp_arena_align(bytes ? bytes : 1);
  if (osp_cuda_malloc(size, &base) != OSP_OK)
    return osp_fail_context(OSP_ERR_MEMORY, "arena '%s' on cuda", name);
  osp_arena_wrap(arena, name, OSP_CUDA, base, size, osp_cuda_free);
  return OSP_OK;
#else
  return osp_fail(OSP_ERR_UNSUPPORTED, "arena '%s': this build has no CUDA backend", name);
#endif
}

osp_status osp_arena_upload(osp_arena *arena, osp_tensor *table) {
  if (table->ndim == 0) return OSP_OK;
  osp_tensor on_device;
  OSP_TRY(osp_arena_tensor(arena, table->dtype, table->ndim, table->shape, &on_device));
  if (arena->base) OSP_TRY(osp_copy(table, &on_device));
  *table = on_device;
  return OSP_OK;
}

size_t osp_device_peak_bytes(osp_device device) {
#ifdef OSP_HAVE_CUDA
  if (device == OSP_CUDA) return osp_cuda_peak_allocated();
#endif
  return 0;
}

osp_status osp_device_synchronize(osp_device device) {
#ifdef OSP_HAVE_CUDA
  if (device == OSP_CUDA) return osp_cuda_synchronize();
#endif
  return OSP_OK;
}

#ifdef OSP_HAVE_CUDA
/* A copy that crosses between the host and the device: the dtype changes on the host side, so
 * only the device's own dtype travels. */
static osp_status copy_across(const osp_tensor *src, osp_tensor *dst) {
  const int64_t n = osp_tensor_numel(src);
  const osp_tensor *device_side = src->device == OSP_CUDA ? src : dst;
  const size_t bytes = (size_t)n * osp_dtype_size(device_side->dtype);
  void *staging = NULL;
  if (src->dtype != dst->dtype && !(staging = malloc(bytes)))
    return osp_fail(OSP_ERR_MEMORY, "osp_copy: no host memory for %zu bytes of staging", bytes);
  osp_status status;
  if (src->device == OSP_CPU) {
    const void *from = src->data;
    if (staging) { /* f32 host → staging in the device's dtype */
      osp_convert_from_f32(dst->dtype, src->data, staging, (size_t)n);
      from = staging;
    }
    status = osp_cuda_copy_to_device(dst->data, from, bytes);
  } else {
    status = osp_cuda_copy_to_host(staging ? staging : dst->data, src->data, bytes);
    if (status == OSP_OK && staging) osp_convert_to_f32(src->dtype, staging, dst->data, (size_t)n);
  }
  free(staging);
  return status;
}
#endif

osp_dtype osp_device_dtype(osp_device device) { return device == OSP_CUDA ? OSP_BF16 : OSP_F32; }

osp_status osp_copy(const osp_tensor *src, osp_tensor *dst) {
  ops_call call = OPS_CALL("osp_copy");
  /* The operands may sit on different devices: check each as the first of its own call. */
  ops_call dst_call = OPS_CALL("osp_copy");
  if (src && dst && src->dtype == dst->dtype) {
    OSP_TRY(ops_check_present(&call, "src", src, OPS_CONTIGUOUS));
    OSP_TRY(ops_check_present(&dst_call, "dst", dst, OPS_CONTIGUOUS));
  } else {
    OSP_TRY(ops_check_float(&call, "src", src, OPS_CONTIGUOUS));
    OSP_TRY(ops_check_float(&dst_call, "dst", dst, OPS_CONTIGUOUS));
  }
  if (!osp_tensor_same_shape(src, dst)) {
    char a[160], b[160];
    return osp_fail(OSP_ERR_SHAPE, "osp_copy: dst: expected src's shape %s, found %s",
                    osp_shape_string(src, a, sizeof a), osp_shape_string(dst, b, sizeof b));
  }
  if (src->device == dst->device) OSP_TRY(ops_check_disjoint(&call, "dst", dst, "src", src));
  OSP_TRY(ops_check_backend(&call));
  OSP_TRY(ops_check_backend(&dst_call));
  const int64_t n = osp_tensor_numel(src);
  if (src->device == OSP_CPU && dst->device == OSP_CPU) {
    if (src->dtype == dst->dtype)
      memcpy(dst->data, src->data, osp_tensor_bytes(src));
    else if (src->dtype == OSP_F32)
      osp_convert_from_f32(dst->dtype, src->data, dst->data, (size_t)n);
    else
      osp_convert_to_f32(src->dtype, src->data, dst->data, (size_t)n);
    return OSP_OK;
  }
#ifdef OSP_HAVE_CUDA
  if (src->device == OSP_CUDA && dst->device == OSP_CUDA)
    return src->dtype == dst->dtype
               ? osp_cuda_copy_on_device(dst->data, src->data, osp_tensor_bytes(src))
               : osp_cuda_convert(src->data, src->dtype, dst->data, dst->dtype, n);
  return copy_across(src, dst);
#else
  return OSP_OK; /* not reached: ops_check_backend refused the CUDA operand */
#endif
}

osp_status osp_zero(osp_tensor *dst) {
  ops_call call = OPS_CALL("osp_zero");
  OSP_TRY(ops_check_present(&call, "dst", dst, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA) return osp_cuda_memset_zero(dst->data, osp_tensor_bytes(dst));
#endif
  memset(dst->data, 0, osp_tensor_bytes(dst));
  return OSP_OK;
}

osp_status osp_randn_fill(uint64_t seed, uint32_t stream, float scale, osp_tensor *dst) {
  ops_call call = OPS_CALL("osp_randn_fill");
  OSP_TRY(ops_check_float(&call, "dst", dst, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_backend(&call));
  const int64_t n = osp_tensor_numel(dst);
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA) return osp_cuda_randn(seed, stream, 0, scale, dst->data, dst->dtype, n);
#endif
  float *x = dst->data;
  osp_randn(seed, stream, 0, x, (size_t)n);
  for (int64_t i = 0; i < n; i++) x[i] *= scale;
  return OSP_OK;
}
