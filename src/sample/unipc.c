/* UniPC (Zhao et al. 2023) for flow matching, as diffusers' UniPCMultistepScheduler.step runs it
 * with prediction_type "flow_prediction", predict_x0, solver_type "bh2" and lower_order_final.
 *
 * With α = 1 − σ and λ = log α − log σ, one update from σ_s0 to σ_t (h = λ_t − λ_s0) reads
 *   x_t = (σ_t/σ_s0)·x − α_t·(e^{−h} − 1)·m0 − α_t·B(h)·res,   B(h) = e^{−h} − 1 (bh2)
 * where m0 is the x0 predicted at s0, and res a weighted difference of x0 predictions:
 *   UniP (predictor, s0 = i, t = i + 1): res = 0 (order 1), or ½·D with D = (m1 − m0)/r,
 *     m1 the x0 of step i − 1 and r = (λ_{i−1} − λ_i)/h (order 2);
 *   UniC (corrector, at step i, of step i − 1's update: s0 = i − 1, t = i, x the sample step i − 1
 *     predicted from):
 *     res = ½·(m_t − m0) (order 1), or ρ_1·D + ρ_t·(m_t − m0) (order 2), m_t the x0 of step i,
 *     D as above from the x0 of step i − 2, and (ρ_1, ρ_t) solving [[1, 1], [r, 1]]·ρ = (b_1, b_2):
 *       b_k = k!·φ_k / B(h),   φ_1 = (e^{−h} − 1)/(−h) − 1,   φ_2 = φ_1/(−h) − ½.
 * Every scalar is float32 like diffusers' 0-dim tensors, every product and sum of tensors rounded
 * to float32 in diffusers' order. torch's float32 log and expm1 are correctly rounded nearly always
 * (glibc's logf and expm1f less often), so they are computed here in double and rounded once;
 * torch solves for ρ with LAPACK in float32, and here in double, rounded once: an ulp apart. */
#include <math.h>
#include <stdbool.h>

#include "sample/sampler_internal.h"

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

/* The scalars of one update (see the top of the file). */
typedef struct {
  float sample_scale; /* σ_t / σ_s0 */
  float x0_scale;     /* α_t·(e^{−h} − 1), which is also α_t·B(h) (bh2) */
  float r;            /* (λ_s1 − λ_s0)/h: where the older x0 lies (order 2) */
  float rho_older;    /* UniC's weight of D (order 2) */
  float rho_new;      /* UniC's weight of m_t − m0: ½ (order 1) or ρ_t (order 2) */
} update;

void osp_sampler_unipc_lambdas(const float *sigmas, int steps, float *lambdas) {
  for (int i = 0; i <= steps; i++) {
    const float alpha = 1.0f - sigmas[i];
    lambdas[i] = (float)log(alpha) - (float)log(sigmas[i]); /* σ_N = 0: λ_N = +∞ */
  }
}

/* UniC's order-2 weights: b_1, b_2 as diffusers builds them in float32, then the 2×2 system
 *   ρ_1 + ρ_t = b_1,  r·ρ_1 + ρ_t = b_2   →   ρ_1 = (b_1 − b_2)/(1 − r),  ρ_t = (b_2 − r·b_1)/(1 − r)
 * (r < 0: the λ rise along the run). */
static void corrector_weights(float minus_h, float b_h, update *u) {
  float phi = b_h / minus_h - 1.0f;
  const float b1 = phi / b_h;
  phi = phi / minus_h - 0.5f;
  const float b2 = phi * 2.0f / b_h;
  const double det = 1.0 - (double)u->r;
  u->rho_older = (float)(((double)b1 - (double)b2) / det);
  u->rho_new = (float)(((double)b2 - (double)u->r * (double)b1) / det);
}

/* The update from σ_s0 to σ_t; s1 ≥ 0 names the older x0's step (order 2), −1 none. */
static update update_of(const osp_sampler *s, int t, int s0, int s1, bool corrector) {
  const float *sigma = s->sigmas, *lambda = s->lambdas;
  const float h = lambda[t] - lambda[s0];
  const float minus_h = -h; /* predict_x0 */
  const float b_h = (float)expm1(minus_h); /* e^{−h} − 1: both h·φ_1(h) and bh2's B(h) */
  const float alpha_t = 1.0f - sigma[t];
  update u = {.sample_scale = sigma[t] / sigma[s0],
              .x0_scale = alpha_t * b_h,
              .r = s1 >= 0 ? (lambda[s1] - lambda[s0]) / h : 1.0f,
              .rho_new = 0.5f};
  if (corrector && s1 >= 0) corrector_weights(minus_h, b_h, &u);
  return u;
}

/* (σ_t/σ_s0)·x − α_t·(e^{−h} − 1)·m0: the first-order part of every update. */
static inline float first_order(const update *u, float x, float m0) {
  return u->sample_scale * x - u->x0_scale * m0;
}

/* D = (m1 − m0)/r */
static inline float older_difference(const update *u, float m1, float m0) {
  return (m1 - m0) / u->r;
}

/* UniC: the sample of step i, corrected with its new x0 m_t (m0, m1: the x0 of steps i − 1, i − 2;
 * last: the sample step i − 1 predicted from). */
static inline float corrected(const update *u, int order, float last, float m0, float m1,
                              float m_t) {
  float res = u->rho_new * (m_t - m0);
  if (order == 2) res = u->rho_older * older_difference(u, m1, m0) + res;
  return first_order(u, last, m0) - u->x0_scale * res;
}

/* UniP: the sample at σ_{i+1} from x and the x0 m0 of step i (m1: that of step i − 1). */
static inline float predicted(const update *u, int order, float x, float m0, float m1) {
  const float start = first_order(u, x, m0);
  if (order == 1) return start;
  return start - u->x0_scale * (0.5f * older_difference(u, m1, m0));
}

static int min_int(int a, int b) { return a < b ? a : b; }

/* diffusers' step: x0 = x − σ_i·v from the sample as given; the corrector (order of the previous
 * predictor) from step 1 on; the predictor of order min(order, i + 1, N − i) from the corrected
 * sample; then the history moves on: x0 of i − 1 becomes that of i − 2, the new x0 that of i − 1,
 * and the corrected sample the last one. All of it is elementwise, so one pass does it. */
void osp_sampler_unipc_step(osp_sampler *s, int i, const float *velocity, float *sample) {
  const int steps = s->config.steps;
  const bool correct = i > 0;
  const int corrector_order = s->prev_order;
  const int predictor_order = min_int(min_int(s->config.order, i + 1), steps - i);
  const update c = correct ? update_of(s, i, i - 1, corrector_order == 2 ? i - 2 : -1, true)
                           : (update){0};
  const update p = update_of(s, i + 1, i, predictor_order == 2 ? i - 1 : -1, false);
  const float sigma = s->sigmas[i];
  float *x0_prev = s->x0_prev, *x0_prev2 = s->x0_prev2, *last = s->last_sample;
  for (int64_t j = 0; j < s->numel; j++) {
    const float x0 = sample[j] - sigma * velocity[j];
    const float x = correct ? corrected(&c, corrector_order, last[j], x0_prev[j], x0_prev2[j], x0)
                            : sample[j];
    sample[j] = predicted(&p, predictor_order, x, x0, x0_prev[j]);
    last[j] = x;
    x0_prev2[j] = x0; /* the slot of step i − 2, free now: it holds step i's x0 … */
  }
  s->x0_prev = x0_prev2; /* … which is the previous x0 of step i + 1 */
  s->x0_prev2 = x0_prev;
  s->prev_order = predictor_order;
}
