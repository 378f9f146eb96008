/* Classifier-free guidance: out = uncond + s·(cond − uncond), in float32 as WanPipeline computes
 * noise_uncond + guidance_scale * (noise_pred - noise_uncond) (torch makes the Python float s a
 * float32; the difference, the product and the sum are each rounded). */
#include <math.h>

#include "core/status.h"
#include "sample/sampler_internal.h"

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

osp_status osp_sample_check_operand(const char *what, const osp_tensor *t, const osp_tensor *like) {
  if (!t) return osp_fail(OSP_ERR_ARGUMENT, "%s: missing (NULL)", what);
  OSP_TRY(osp_check_f32_cpu(what, t));
  if (!osp_tensor_is_contiguous(t))
    return osp_fail(OSP_ERR_SHAPE, "%s: expected a contiguous tensor", what);
  return like ? osp_check_shape(what, t, like->ndim, like->shape) : OSP_OK;
}

osp_status osp_guidance_combine(const osp_tensor *cond, const osp_tensor *uncond, double scale,
                                osp_tensor *out) {
  OSP_TRY(osp_sample_check_operand("guidance: cond", cond, NULL));
  OSP_TRY(osp_sample_check_operand("guidance: uncond", uncond, cond));
  OSP_TRY(osp_sample_check_operand("guidance: out", out, cond));
  if (!isfinite(scale))
    return osp_fail(OSP_ERR_ARGUMENT, "guidance: scale: expected a finite value, found %g", scale);
  const float s = (float)scale;
  const float *c = cond->data, *u = uncond->data;
  float *o = out->data;
  const int64_t n = osp_tensor_numel(cond);
  for (int64_t j = 0; j < n; j++) o[j] = u[j] + s * (c[j] - u[j]);
  return OSP_OK;
}
