/* HiF8 quantize-dequantize (ops.h). */
#include <math.h>

#include "core/status.h"
#include "cpu/cpu.h"
#include "ops/check.h"
#include "ops/ops.h"

osp_status osp_hif8_quantize(const osp_tensor *x, float scale_max, osp_tensor *y) {
  ops_call call = OPS_CALL("osp_hif8_quantize");
  if ((x->dtype != OSP_F32 && x->dtype != OSP_BF16) || y->dtype != x->dtype)
    return osp_fail(OSP_ERR_SHAPE, "osp_hif8_quantize: x and y must both be f32 or both bf16, found %s and %s",
                    osp_dtype_name(x->dtype), osp_dtype_name(y->dtype));
  if (!osp_tensor_is_contiguous(x) || !osp_tensor_is_contiguous(y) || !osp_tensor_same_shape(x, y))
    return osp_fail(OSP_ERR_SHAPE, "osp_hif8_quantize: x and y must be contiguous tensors of one shape");
  if (!(scale_max >= 0.0f && isfinite(scale_max)))
    return osp_fail(OSP_ERR_ARGUMENT, "osp_hif8_quantize: scale_max: expected a finite value >= 0 (0: no scaling), "
                    "found %g", (double)scale_max);
  if (x->device != y->device) return osp_fail(OSP_ERR_ARGUMENT, "osp_hif8_quantize: x and y on different devices");
  call.device = x->device;
  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA) return osp_cuda_hif8_quantize(x->data, x->dtype, y->data, osp_tensor_numel(x), scale_max);
#endif
  osp_cpu_hif8_quantize(x->data, x->dtype, y->data, osp_tensor_numel(x), scale_max);
  return OSP_OK;
}
