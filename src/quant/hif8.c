/* HiF8 on tensors (hif8.h): the element rule over f32 or bf16 storage, with or without the
 * per-tensor absmax scale. */
#include "quant/hif8.h"

#include "core/dtype.h"
#include "core/status.h"

static const float AMAX_FLOOR = 1e-8f;

static float element(const osp_tensor *t, int64_t i) {
  return t->dtype == OSP_BF16 ? osp_bf16_to_f32(((const uint16_t *)t->data)[i]) : ((const float *)t->data)[i];
}

/* Stores v, rounded to bf16 for a bf16 tensor. */
static void store(osp_tensor *t, int64_t i, float v) {
  if (t->dtype == OSP_BF16) ((uint16_t *)t->data)[i] = osp_f32_to_bf16(v);
  else ((float *)t->data)[i] = v;
}

/* The rounding of a stored intermediate: bf16 for a bf16 tensor. */
static float as_stored(const osp_tensor *t, float v) {
  return t->dtype == OSP_BF16 ? osp_bf16_to_f32(osp_f32_to_bf16(v)) : v;
}

static float absmax(const osp_tensor *x, int64_t n) {
  float amax = 0.0f;
#pragma omp parallel for reduction(max : amax) if (n > (1 << 16))
  for (int64_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(element(x, i)));
  return amax;
}

osp_status osp_hif8_quantize(const osp_tensor *x, float scale_max, osp_tensor *y) {
  if (x->device != OSP_CPU || y->device != OSP_CPU)
    return osp_fail(OSP_ERR_UNSUPPORTED, "hif8: CPU tensors only for now (the CUDA kernel is to come)");
  if ((x->dtype != OSP_F32 && x->dtype != OSP_BF16) || y->dtype != x->dtype)
    return osp_fail(OSP_ERR_SHAPE, "hif8: x and y must both be f32 or both bf16, found %s and %s",
                    osp_dtype_name(x->dtype), osp_dtype_name(y->dtype));
  if (!osp_tensor_is_contiguous(x) || !osp_tensor_is_contiguous(y) || !osp_tensor_same_shape(x, y))
    return osp_fail(OSP_ERR_SHAPE, "hif8: x and y must be contiguous tensors of one shape");
  if (!(scale_max >= 0.0f && isfinite(scale_max)))
    return osp_fail(OSP_ERR_ARGUMENT, "hif8: scale_max: expected a finite value >= 0 (0: no scaling), found %g",
                    (double)scale_max);
  const int64_t n = osp_tensor_numel(x);
  if (scale_max == 0.0f) {
#pragma omp parallel for if (n > (1 << 16))
    for (int64_t i = 0; i < n; i++) store(y, i, osp_hif8(element(x, i)));
    return OSP_OK;
  }
  const float amax = fmaxf(absmax(x, n), AMAX_FLOOR), s = scale_max / amax;
#pragma omp parallel for if (n > (1 << 16))
  for (int64_t i = 0; i < n; i++) store(y, i, osp_hif8(as_stored(x, element(x, i) * s)) / s);
  return OSP_OK;
}
