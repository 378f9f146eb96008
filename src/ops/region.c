/* Moving data between layouts: box copies and transposes. */
#include <stdbool.h>

#include "core/status.h"
#include "cpu/conv.h"
#include "ops/check.h"
#include "ops/conv.h"

/* The box [offset, offset + size) lies inside t along every dimension. */
static osp_status check_box(const ops_call *call, const char *name, const osp_tensor *t,
                            const int64_t *offset, const int64_t *size) {
  for (int d = 0; d < t->ndim; d++)
    if (offset[d] < 0 || size[d] < 1 || offset[d] + size[d] > t->shape[d])
      return osp_fail(OSP_ERR_SHAPE, "%s: %s: dimension %d: the box [%lld, %lld) is not inside [0, %lld)",
                      call->op, name, d, (long long)offset[d], (long long)(offset[d] + size[d]),
                      (long long)t->shape[d]);
  return OSP_OK;
}

/* Two boxes of one tensor intersect where their ranges overlap along every dimension. */
static bool boxes_intersect(int ndim, const int64_t *a, const int64_t *b, const int64_t *size) {
  for (int d = 0; d < ndim; d++)
    if (a[d] + size[d] <= b[d] || b[d] + size[d] <= a[d]) return false;
  return true;
}

osp_status osp_copy_region(const osp_tensor *src, const int64_t *src_offset, osp_tensor *dst,
                           const int64_t *dst_offset, const int64_t *size) {
  ops_call call = OPS_CALL("osp_copy_region");
  OSP_TRY(ops_check_float(&call, "src", src, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_float(&call, "dst", dst, OPS_CONTIGUOUS));
  if (dst->ndim != src->ndim || dst->dtype != src->dtype)
    return osp_fail(OSP_ERR_SHAPE, "osp_copy_region: dst: expected src's %d dimensions and dtype %s, found %d and %s",
                    src->ndim, osp_dtype_name(src->dtype), dst->ndim, osp_dtype_name(dst->dtype));
  if (!src_offset || !dst_offset || !size)
    return osp_fail(OSP_ERR_ARGUMENT, "osp_copy_region: offsets and size must be given");
  OSP_TRY(check_box(&call, "src", src, src_offset, size));
  OSP_TRY(check_box(&call, "dst", dst, dst_offset, size));
  if (src->data == dst->data && src->ndim == dst->ndim) {
    if (boxes_intersect(src->ndim, src_offset, dst_offset, size))
      return osp_fail(OSP_ERR_ARGUMENT, "osp_copy_region: the boxes of src and dst (one tensor) intersect");
  } else {
    OSP_TRY(ops_check_disjoint(&call, "dst", dst, "src", src));
  }
  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_copy_region(src->data, src->shape, src_offset, dst->data, dst->shape, dst_offset, size,
                                src->ndim, osp_dtype_size(src->dtype));
#endif
  osp_cpu_copy_region(src->data, src->shape, src_offset, dst->data, dst->shape, dst_offset, size, src->ndim);
  return OSP_OK;
}

osp_status osp_transpose(const osp_tensor *x, osp_tensor *y) {
  ops_call call = OPS_CALL("osp_transpose");
  OSP_TRY(ops_check_float(&call, "x", x, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_shape(&call, "x", x, 3, (const int64_t[]){-1, -1, -1}));
  OSP_TRY(ops_check_float(&call, "y", y, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_shape(&call, "y", y, 3, (const int64_t[]){x->shape[0], x->shape[2], x->shape[1]}));
  OSP_TRY(ops_check_disjoint(&call, "y", y, "x", x));
  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_transpose(x->data, x->dtype, y->data, y->dtype, x->shape[0], x->shape[1], x->shape[2]);
#endif
  osp_cpu_transpose(x->data, y->data, x->shape[0], x->shape[1], x->shape[2]);
  return OSP_OK;
}
