/* The samplers' state and the pieces sampler.c puts together: the schedules (schedule.c) and the
 * two steps (euler.c, unipc.c); the operand check guidance.c and grpo.c share. Internal to
 * src/sample/. */
#ifndef OSP_SAMPLE_SAMPLER_INTERNAL_H
#define OSP_SAMPLE_SAMPLER_INTERNAL_H

#include "sample/sampler.h"

struct osp_sampler {
  osp_sampler_config config; /* checked; UniPC's order resolved to 1 or 2 */
  int ndim;
  int64_t shape[OSP_MAX_DIMS];
  int64_t numel;
  float *sigmas;     /* [N + 1]: σ_0 > … > σ_{N−1} > σ_N = 0, float32 as diffusers keeps them */
  double *timesteps; /* [N]: t_i */
  int next_step;     /* the step a run continues with: 0..N */

  /* UniPC only (NULL for Euler): */
  float *lambdas;     /* [N + 1]: λ_i = log(1 − σ_i) − log σ_i, float32; λ_N = +∞ */
  float *x0_prev;     /* [numel]: x0 of step i − 1 */
  float *x0_prev2;    /* [numel]: x0 of step i − 2 */
  float *last_sample; /* [numel]: the (corrected) sample step i − 1 predicted from */
  int prev_order;     /* the predictor's order at step i − 1: the corrector's at step i */
};

/* sigmas [N + 1] and timesteps [N] of a schedule (N = steps ≥ 1, shift > 0). */
void osp_sampler_schedule_euler(double shift, int steps, float *sigmas, double *timesteps);
void osp_sampler_schedule_unipc(double shift, int steps, float *sigmas, double *timesteps);

/* λ of each σ of a UniPC schedule: lambdas [N + 1]. */
void osp_sampler_unipc_lambdas(const float *sigmas, int steps, float *lambdas);

/* Step i on numel elements; the caller has checked everything. */
void osp_sampler_euler_step(const osp_sampler *sampler, int i, const float *velocity,
                            float *sample);
void osp_sampler_unipc_step(osp_sampler *sampler, int i, const float *velocity, float *sample);

/* t is present, f32 on the host, contiguous and, where like is not NULL, of like's shape. */
osp_status osp_sample_check_operand(const char *what, const osp_tensor *t, const osp_tensor *like);

#endif
