/* Flow-matching samplers: the loop that turns noise into latents with the DiT's velocity v, as
 * diffusers 0.42.1 runs it (float32 samples, the schedules rounded where diffusers rounds them):
 *
 *   Euler  FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=S), set_timesteps(N):
 *          σ_i (i < N) shifted twice as diffusers does (schedule.c), σ_N = 0, t_i = 1000·σ_i;
 *          step i: x ← x + (σ_{i+1} − σ_i)·v
 *   UniPC  UniPCMultistepScheduler as diffusers' WanPipeline configures it (Wan2.1-*-Diffusers'
 *          scheduler_config.json: flow_prediction, use_flow_sigmas, flow_shift=S, solver_order 2,
 *          predict_x0, bh2, lower_order_final, final_sigmas_type "zero"), set_timesteps(N):
 *          σ_i = S·s/(1 + (S − 1)·s) of s = linspace(1, 1/1000, N + 1)[i], σ_0 lowered by 1e-6
 *          from 1, σ_N = 0; t_i = ⌊1000·σ_i⌋ (diffusers' int64 timesteps);
 *          step i: x0 = x − σ_i·v, then UniC corrects x (from step 1 on), then UniP predicts x at
 *          σ_{i+1} with order min(order, i + 1, N − i) (the formulas: unipc.c).
 *
 * A run of N steps:
 *   for (int i = 0; i < N; i++) {
 *     v = DiT(x, osp_sampler_timestep(s, i))   (with CFG: osp_guidance_combine of two calls)
 *     osp_sampler_step(s, i, &v, &x)           (x updated in place)
 *   }
 * Steps come in order; step 0 starts a new run (the same sampler serves video after video).
 * Tensors are contiguous float32 CPU tensors of the shape given at creation; the sampler allocates
 * its schedule (and UniPC its three history tensors) once, at creation, never in a step. */
#ifndef OSP_SAMPLE_SAMPLER_H
#define OSP_SAMPLE_SAMPLER_H

#include <stdint.h>

#include "core/tensor.h"

typedef enum { OSP_SAMPLER_EULER, OSP_SAMPLER_UNIPC } osp_sampler_kind;

enum { OSP_SAMPLER_MAX_STEPS = 1000 }; /* the model knows 1000 training timesteps */

typedef struct {
  osp_sampler_kind kind;
  int steps;    /* N: 1..OSP_SAMPLER_MAX_STEPS */
  double shift; /* S: finite, > 0 (1: none). Wan2.1 samples with 3.0 at 480P, 5.0 at 720P */
  int order;    /* UniPC's solver order: 1 or 2, 0 picks 2 (Wan's); Euler has none, ignores it */
} osp_sampler_config;

typedef struct osp_sampler osp_sampler;

/* "euler" | "unipc" ↔ the kind; another name is an error naming the known ones. */
osp_status osp_sampler_kind_parse(const char *name, osp_sampler_kind *kind);
const char *osp_sampler_kind_name(osp_sampler_kind kind);

/* The config makes sense (each error names the field, what was expected and what was found). */
osp_status osp_sampler_config_check(const osp_sampler_config *config);

/* A sampler for samples of `sample_shape` (ndim 1..OSP_MAX_DIMS, every size ≥ 1). */
osp_status osp_sampler_create(const osp_sampler_config *config, int ndim,
                              const int64_t *sample_shape, osp_sampler **out);
void osp_sampler_free(osp_sampler *sampler);

int osp_sampler_steps(const osp_sampler *sampler);

/* The timestep t_i (0..1000) the model is called with at step i; NaN for i outside [0, N). */
double osp_sampler_timestep(const osp_sampler *sampler, int i);

/* Step i: sample ← the sample at σ_{i+1}, from the model's velocity at σ_i. i must be the step
 * after the previous one, or 0 (a new run). velocity and sample: the creation's shape. A failed
 * call changes nothing. */
osp_status osp_sampler_step(osp_sampler *sampler, int i, const osp_tensor *velocity,
                            osp_tensor *sample);

/* Classifier-free guidance as WanPipeline combines the predictions, in float32:
 *   out = uncond + s·(cond − uncond),  s = (float)scale
 * One shape; scale finite. out may be cond or uncond itself (in place); no other overlap. */
osp_status osp_guidance_combine(const osp_tensor *cond, const osp_tensor *uncond, double scale,
                                osp_tensor *out);

#endif
