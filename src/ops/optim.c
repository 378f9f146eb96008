#include "ops/optim.h"

#include <math.h>
#include <stdio.h>

#include "core/status.h"
#include "cpu/optim.h"
#include "ops/check.h"

static osp_status check_non_negative(const ops_call *call, const char *name, double value) {
  if (!(value >= 0.0 && isfinite(value)))
    return osp_fail(OSP_ERR_ARGUMENT, "%s: %s: expected a finite value >= 0, found %g", call->op,
                    name, value);
  return OSP_OK;
}

static osp_status check_beta(const ops_call *call, const char *name, double value) {
  if (!(value >= 0.0 && value < 1.0))
    return osp_fail(OSP_ERR_ARGUMENT, "%s: %s: expected a value in [0, 1), found %g", call->op,
                    name, value);
  return OSP_OK;
}

/* torch.optim.AdamW's own checks on its hyperparameters, and t ≥ 1. */
static osp_status check_adamw_config(const ops_call *call, const osp_adamw_config *config) {
  if (!config) return osp_fail(OSP_ERR_ARGUMENT, "%s: config: missing (NULL)", call->op);
  OSP_TRY(check_non_negative(call, "lr", config->lr));
  OSP_TRY(check_beta(call, "beta1", config->beta1));
  OSP_TRY(check_beta(call, "beta2", config->beta2));
  OSP_TRY(check_non_negative(call, "eps", config->eps));
  OSP_TRY(check_non_negative(call, "weight_decay", config->weight_decay));
  if (config->step < 1)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: step: expected t >= 1, found %lld", call->op,
                    (long long)config->step);
  return OSP_OK;
}

/* param, grad, m, v: f32, contiguous, param's shape, no two overlapping. */
static osp_status check_adamw_operands(ops_call *call, const osp_tensor *param,
                                       const osp_tensor *grad, const osp_tensor *m,
                                       const osp_tensor *v) {
  const char *names[] = {"param", "grad", "m", "v"};
  const osp_tensor *tensors[] = {param, grad, m, v};
  for (int i = 0; i < 4; i++) {
    OSP_TRY(ops_check_operand(call, names[i], tensors[i], OSP_F32, OPS_CONTIGUOUS));
    OSP_TRY(ops_check_shape(call, names[i], tensors[i], param->ndim, param->shape));
    for (int j = 0; j < i; j++)
      OSP_TRY(ops_check_disjoint(call, names[i], tensors[i], names[j], tensors[j]));
  }
  return OSP_OK;
}

/* The step's scalars as torch computes them: bias corrections and step size in double, then each
 * rounded to float where its tensor op takes it. */
static osp_cpu_adamw_factors adamw_factors(const osp_adamw_config *config) {
  const double t = (double)config->step;
  const double bias_correction1 = 1.0 - pow(config->beta1, t);
  const double bias_correction2 = 1.0 - pow(config->beta2, t);
  return (osp_cpu_adamw_factors){
      .decay = (float)(1.0 - config->lr * config->weight_decay),
      .beta1_weight = (float)(1.0 - config->beta1),
      .beta2 = (float)config->beta2,
      .beta2_weight = (float)(1.0 - config->beta2),
      .bias_correction2_sqrt = (float)sqrt(bias_correction2),
      .eps = (float)config->eps,
      .neg_step_size = (float)-(config->lr / bias_correction1),
  };
}

osp_status osp_adamw_step(osp_tensor *param, const osp_tensor *grad, osp_tensor *m, osp_tensor *v,
                          const osp_adamw_config *config) {
  ops_call call = OPS_CALL("osp_adamw_step");
  OSP_TRY(check_adamw_operands(&call, param, grad, m, v));
  OSP_TRY(check_adamw_config(&call, config));

  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_adamw_step(param->data, grad->data, m->data, v->data, osp_tensor_numel(param),
                               adamw_factors(config));
#endif
  osp_cpu_adamw_step(param->data, grad->data, m->data, v->data, osp_tensor_numel(param),
                     adamw_factors(config));
  return OSP_OK;
}

osp_status osp_sum_of_squares(const osp_tensor *x, double *sum) {
  ops_call call = OPS_CALL("osp_sum_of_squares");
  OSP_TRY(ops_check_float(&call, "x", x, OPS_CONTIGUOUS));

  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA) return osp_cuda_sum_of_squares(x->data, x->dtype, osp_tensor_numel(x), sum);
#endif
  *sum = osp_cpu_sum_of_squares(x->data, osp_tensor_numel(x));
  return OSP_OK;
}

osp_status osp_scale_in_place(osp_tensor *x, float factor) {
  ops_call call = OPS_CALL("osp_scale_in_place");
  OSP_TRY(ops_check_float(&call, "x", x, OPS_CONTIGUOUS));

  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA) return osp_cuda_scale(x->data, x->dtype, factor, osp_tensor_numel(x));
#endif
  osp_cpu_scale(x->data, factor, osp_tensor_numel(x));
  return OSP_OK;
}

osp_status osp_ema_update(osp_tensor *ema, const osp_tensor *param, double decay) {
  ops_call call = OPS_CALL("osp_ema_update");
  OSP_TRY(ops_check_operand(&call, "ema", ema, OSP_F32, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_operand(&call, "param", param, OSP_F32, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_shape(&call, "param", param, ema->ndim, ema->shape));
  OSP_TRY(ops_check_disjoint(&call, "param", param, "ema", ema));
  if (!(decay >= 0 && decay <= 1))
    return osp_fail(OSP_ERR_ARGUMENT, "osp_ema_update: decay: expected a number in [0, 1], found %g", decay);
  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_lerp(ema->data, param->data, (float)(1.0 - decay), osp_tensor_numel(ema));
#endif
  osp_cpu_lerp(ema->data, param->data, (float)(1.0 - decay), osp_tensor_numel(ema));
  return OSP_OK;
}

/* At least one gradient, each a contiguous float tensor on one device, and a usable max_norm. */
static osp_status check_clip_operands(ops_call *call, osp_tensor *const *grads, int count,
                                      double max_norm) {
  if (!grads || count < 1)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: grads: expected at least one tensor, found %d",
                    call->op, grads ? count : 0);
  for (int i = 0; i < count; i++) {
    char name[32];
    snprintf(name, sizeof name, "grads[%d]", i);
    OSP_TRY(ops_check_float(call, name, grads[i], OPS_CONTIGUOUS));
  }
  if (!(max_norm > 0.0 && isfinite(max_norm)))
    return osp_fail(OSP_ERR_ARGUMENT, "%s: max_norm: expected a finite value > 0, found %g",
                    call->op, max_norm);
  return OSP_OK;
}

osp_status osp_clip_grad_norm(osp_tensor *const *grads, int count, double max_norm,
                              double *total_norm) {
  ops_call call = OPS_CALL("osp_clip_grad_norm");
  OSP_TRY(check_clip_operands(&call, grads, count, max_norm));
  OSP_TRY(ops_check_backend(&call)); /* a device this build has no kernels for */

  double squares = 0.0;
  for (int i = 0; i < count; i++) {
    double tensor_squares;
    OSP_TRY(osp_sum_of_squares(grads[i], &tensor_squares));
    squares += tensor_squares;
  }
  *total_norm = sqrt(squares);
  if (!isfinite(*total_norm))
    return osp_fail(OSP_ERR_NUMERIC,
                    "%s: grads: expected a finite total norm, found %g; no gradient was scaled",
                    call.op, *total_norm);

  const double clip_coef = max_norm / (*total_norm + 1e-6);
  if (clip_coef >= 1.0) return OSP_OK;
  for (int i = 0; i < count; i++) OSP_TRY(osp_scale_in_place(grads[i], (float)clip_coef));
  return OSP_OK;
}
