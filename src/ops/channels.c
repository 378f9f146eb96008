/* Per-channel ops on channel-first tensors [B, C, ...]: the VAE's RMS norm (alone, and followed
 * by SiLU), the latent (de)normalisation, and the clamp. */
#include <stdbool.h>

#include "core/status.h"
#include "cpu/conv.h"
#include "ops/check.h"
#include "ops/conv.h"

/* x, y [B, C, ...] (at least two dimensions), one shape, y x itself or apart from it. */
static osp_status check_channel_first(ops_call *call, const osp_tensor *x, const osp_tensor *y) {
  OSP_TRY(ops_check_in_out(call, x, y));
  if (x->ndim < 2)
    return osp_fail(OSP_ERR_SHAPE, "%s: x: expected [B, C, ...], found %d dimension(s)", call->op, x->ndim);
  return OSP_OK;
}

/* A per-channel vector [C] of x [B, C, ...]. */
static osp_status check_per_channel(ops_call *call, const char *name, const osp_tensor *t,
                                    const osp_tensor *x) {
  OSP_TRY(ops_check_float(call, name, t, OPS_CONTIGUOUS));
  return ops_check_shape(call, name, t, 1, (const int64_t[]){x->shape[1]});
}

/* Two per-channel vectors of one op share a dtype (the CUDA kernels take one for both). */
static osp_status check_same_dtype(const ops_call *call, const char *name, const osp_tensor *t,
                                   const char *like_name, const osp_tensor *like) {
  if (t->dtype == like->dtype) return OSP_OK;
  return osp_fail(OSP_ERR_SHAPE, "%s: %s: expected %s's dtype %s, found %s", call->op, name, like_name,
                  osp_dtype_name(like->dtype), osp_dtype_name(t->dtype));
}

/* The positions per channel: the product of x's dimensions after the first two. */
static int64_t positions(const osp_tensor *x) { return osp_tensor_numel(x) / (x->shape[0] * x->shape[1]); }

/* The RMS norm, followed by SiLU where silu is set (on the CPU the two kernels in turn). */
static osp_status channel_rmsnorm(const char *op, const osp_tensor *x, const osp_tensor *gamma,
                                  const osp_tensor *bias, bool silu, osp_tensor *y) {
  ops_call call = OPS_CALL(op);
  OSP_TRY(check_channel_first(&call, x, y));
  OSP_TRY(check_per_channel(&call, "gamma", gamma, x));
  if (bias) {
    OSP_TRY(check_per_channel(&call, "bias", bias, x));
    OSP_TRY(check_same_dtype(&call, "bias", bias, "gamma", gamma));
  }
  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_channel_rmsnorm(x->data, x->dtype, gamma->data, bias ? bias->data : NULL, gamma->dtype,
                                    silu, y->data, y->dtype, x->shape[0], x->shape[1], positions(x));
#endif
  osp_cpu_channel_rmsnorm(x->data, gamma->data, bias ? bias->data : NULL, y->data, x->shape[0], x->shape[1],
                          positions(x));
  if (silu) osp_cpu_silu(y->data, y->data, osp_tensor_numel(y));
  return OSP_OK;
}

osp_status osp_channel_rmsnorm(const osp_tensor *x, const osp_tensor *gamma, const osp_tensor *bias,
                               osp_tensor *y) {
  return channel_rmsnorm("osp_channel_rmsnorm", x, gamma, bias, false, y);
}

osp_status osp_channel_rmsnorm_silu(const osp_tensor *x, const osp_tensor *gamma, osp_tensor *y) {
  return channel_rmsnorm("osp_channel_rmsnorm_silu", x, gamma, NULL, true, y);
}

typedef void (*affine_kernel)(const float *x, const float *mean, const float *inv_std, float *y,
                              int64_t B, int64_t C, int64_t S);

/* normalize, or with inverse denormalize (its CPU kernel given). */
static osp_status channel_affine(const char *op, const osp_tensor *x, const osp_tensor *mean,
                                 const osp_tensor *inv_std, osp_tensor *y, bool inverse,
                                 affine_kernel kernel) {
  ops_call call = OPS_CALL(op);
  OSP_TRY(check_channel_first(&call, x, y));
  OSP_TRY(check_per_channel(&call, "mean", mean, x));
  OSP_TRY(check_per_channel(&call, "inv_std", inv_std, x));
  OSP_TRY(check_same_dtype(&call, "inv_std", inv_std, "mean", mean));
  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_channel_normalize(x->data, x->dtype, mean->data, inv_std->data, mean->dtype, inverse,
                                      y->data, y->dtype, x->shape[0], x->shape[1], positions(x));
#endif
  kernel(x->data, mean->data, inv_std->data, y->data, x->shape[0], x->shape[1], positions(x));
  return OSP_OK;
}

osp_status osp_channel_normalize(const osp_tensor *x, const osp_tensor *mean,
                                 const osp_tensor *inv_std, osp_tensor *y) {
  return channel_affine("osp_channel_normalize", x, mean, inv_std, y, false, osp_cpu_channel_normalize);
}

osp_status osp_channel_denormalize(const osp_tensor *x, const osp_tensor *mean,
                                   const osp_tensor *inv_std, osp_tensor *y) {
  return channel_affine("osp_channel_denormalize", x, mean, inv_std, y, true, osp_cpu_channel_denormalize);
}

osp_status osp_clamp(const osp_tensor *x, float lo, float hi, osp_tensor *y) {
  ops_call call = OPS_CALL("osp_clamp");
  OSP_TRY(ops_check_in_out(&call, x, y));
  if (!(lo <= hi))
    return osp_fail(OSP_ERR_ARGUMENT, "osp_clamp: expected lo <= hi, found lo %g, hi %g", (double)lo, (double)hi);
  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_clamp(x->data, x->dtype, lo, hi, y->data, y->dtype, osp_tensor_numel(x));
#endif
  osp_cpu_clamp(x->data, lo, hi, y->data, osp_tensor_numel(x));
  return OSP_OK;
}
