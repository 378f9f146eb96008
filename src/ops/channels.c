/* Per-channel ops on channel-first tensors [B, C, ...]: the VAE's RMS norm, the latent
 * (de)normalisation, and the clamp. */
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

/* The positions per channel: the product of x's dimensions after the first two. */
static int64_t positions(const osp_tensor *x) { return osp_tensor_numel(x) / (x->shape[0] * x->shape[1]); }

osp_status osp_channel_rmsnorm(const osp_tensor *x, const osp_tensor *gamma, const osp_tensor *bias,
                               osp_tensor *y) {
  ops_call call = OPS_CALL("osp_channel_rmsnorm");
  OSP_TRY(check_channel_first(&call, x, y));
  OSP_TRY(check_per_channel(&call, "gamma", gamma, x));
  if (bias) OSP_TRY(check_per_channel(&call, "bias", bias, x));
  OSP_TRY(ops_require_cpu(&call));
  osp_cpu_channel_rmsnorm(x->data, gamma->data, bias ? bias->data : NULL, y->data, x->shape[0], x->shape[1],
                          positions(x));
  return OSP_OK;
}

typedef void (*affine_kernel)(const float *x, const float *mean, const float *inv_std, float *y,
                              int64_t B, int64_t C, int64_t S);

static osp_status channel_affine(const char *op, const osp_tensor *x, const osp_tensor *mean,
                                 const osp_tensor *inv_std, osp_tensor *y, affine_kernel kernel) {
  ops_call call = OPS_CALL(op);
  OSP_TRY(check_channel_first(&call, x, y));
  OSP_TRY(check_per_channel(&call, "mean", mean, x));
  OSP_TRY(check_per_channel(&call, "inv_std", inv_std, x));
  OSP_TRY(ops_require_cpu(&call));
  kernel(x->data, mean->data, inv_std->data, y->data, x->shape[0], x->shape[1], positions(x));
  return OSP_OK;
}

osp_status osp_channel_normalize(const osp_tensor *x, const osp_tensor *mean,
                                 const osp_tensor *inv_std, osp_tensor *y) {
  return channel_affine("osp_channel_normalize", x, mean, inv_std, y, osp_cpu_channel_normalize);
}

osp_status osp_channel_denormalize(const osp_tensor *x, const osp_tensor *mean,
                                   const osp_tensor *inv_std, osp_tensor *y) {
  return channel_affine("osp_channel_denormalize", x, mean, inv_std, y, osp_cpu_channel_denormalize);
}

osp_status osp_clamp(const osp_tensor *x, float lo, float hi, osp_tensor *y) {
  ops_call call = OPS_CALL("osp_clamp");
  OSP_TRY(ops_check_in_out(&call, x, y));
  if (!(lo <= hi))
    return osp_fail(OSP_ERR_ARGUMENT, "osp_clamp: expected lo <= hi, found lo %g, hi %g", (double)lo, (double)hi);
  OSP_TRY(ops_require_cpu(&call));
  osp_cpu_clamp(x->data, lo, hi, y->data, osp_tensor_numel(x));
  return OSP_OK;
}
