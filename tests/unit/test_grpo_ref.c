/* Mix-GRPO's per-step arithmetic (src/sample/grpo.h) against the PyTorch formulas of
 * tests/ref/make_grpo_cases.py (float64, gradients by autograd):
 *
 *   ~/.cache/osp-venv/bin/python tests/ref/make_grpo_cases.py build/ref/grpo
 *   build/test_grpo_ref build/ref/grpo
 *
 * Tolerance 1e-6: the float32 outputs (the step's mean and x_next, the gradients) relative to their
 * largest (one float32 rounding of a float64 result), the float64 scalars (std, log-prob, KL, clip
 * loss and its gradient, advantages) relative to their own size (measured ~1e-15). Exact: which
 * samples the clip took, and the log-prob recomputed from the same mean (the ratio of 1 before the
 * first update). */
#include <string.h>

#include "ref_case.h"
#include "sample/grpo.h"

/* A float64 tensor of the case, copied out (the mapped bytes need not be 8-byte aligned). */
static osp_status load_doubles(test_case *c, const char *name, int64_t *count, double **values) {
  const osp_st_entry *entry;
  OSP_TRY(find_tensor(c, name, &entry));
  if (entry->dtype != OSP_ST_F64)
    return osp_fail(OSP_ERR_FORMAT, "%s: tensor '%s' is %s, expected F64", c->file.path, name,
                    osp_st_dtype_name(entry->dtype));
  *count = osp_st_numel(entry);
  OSP_TRY(case_alloc(c, (size_t)*count * sizeof(double), (void **)values));
  memcpy(*values, entry->data, (size_t)*count * sizeof(double));
  return OSP_OK;
}

/* Keeps `error` as the case's when it is its worst (NaN is worst). */
static void keep_worst(test_case *c, const char *what, double error) {
  if (isnan(error) || error > c->error) {
    c->error = error;
    c->worst_output = what;
  }
}

/* |got − ref| relative to |ref| (to 1 below 1). */
static void judge_scalar(test_case *c, const char *what, double got, double ref) {
  keep_worst(c, what, fabs(got - ref) / fmax(fabs(ref), 1.0));
}

/* The SDE step: mean, x_next, std, logp and its gradients (to the mean, and to v by the chain). */
static osp_status run_sde(test_case *c) {
  osp_tensor x, v, z, mean, x_next, grad_mean, grad_v;
  double sigma, sigma_next, eta, sigma_cap, ref_std, ref_logp;
  int kind = 0, noisy = 0;
  OSP_TRY(load_f32(c, "x", &x));
  OSP_TRY(load_f32(c, "v", &v));
  OSP_TRY(load_f32(c, "z", &z));
  OSP_TRY(load_f64(c, "sigma", &sigma));
  OSP_TRY(load_f64(c, "sigma_next", &sigma_next));
  OSP_TRY(load_f64(c, "eta", &eta));
  OSP_TRY(load_f64(c, "sigma_cap", &sigma_cap));
  OSP_TRY(load_f64(c, "ref_std", &ref_std));
  OSP_TRY(load_ints(c, "kind", 1, &kind));
  OSP_TRY(load_ints(c, "noisy", 1, &noisy));
  OSP_TRY(new_output(c, x.ndim, x.shape, &mean));
  OSP_TRY(new_output(c, x.ndim, x.shape, &x_next));
  OSP_TRY(new_output(c, x.ndim, x.shape, &grad_mean));
  OSP_TRY(new_output(c, x.ndim, x.shape, &grad_v));
  const osp_sde sde = {.kind = kind ? OSP_SDE_OSP_NEXT : OSP_SDE_FLOW_GRPO, .eta = eta, .sigma_cap = sigma_cap};
  double std, logp;
  OSP_TRY(osp_sde_step(&sde, sigma, sigma_next, &x, &v, noisy ? &z : NULL, &mean, &x_next, &std));
  OSP_TRY(compare(c, "ref_mean", &mean));
  OSP_TRY(compare(c, "ref_x_next", &x_next));
  judge_scalar(c, "ref_std", std, ref_std);
  if (!noisy) return OSP_OK; /* no density to train */
  OSP_TRY(load_f64(c, "ref_logp", &ref_logp));
  OSP_TRY(osp_sde_log_prob(&x_next, &mean, std, &logp, &grad_mean));
  judge_scalar(c, "ref_logp", logp, ref_logp);
  OSP_TRY(compare(c, "ref_grad_mean", &grad_mean));
  const double factor = osp_sde_mean_velocity_factor(&sde, sigma, sigma_next);
  for (int64_t j = 0; j < osp_tensor_numel(&x); j++)
    ((float *)grad_v.data)[j] = (float)(((const float *)grad_mean.data)[j] * factor);
  OSP_TRY(compare(c, "ref_grad_v", &grad_v));
  double again; /* the rollout's logp recomputed from the same mean: a ratio of exactly 1 */
  OSP_TRY(osp_sde_log_prob(&x_next, &mean, std, &again, NULL));
  if (again != logp) keep_worst(c, "logp recomputed (not bit-equal)", INFINITY);
  return OSP_OK;
}

static osp_status run_kl(test_case *c) {
  osp_tensor mean, ref_mean, grad;
  double std, ref_kl, kl;
  OSP_TRY(load_f32(c, "mean", &mean));
  OSP_TRY(load_f32(c, "ref_mean", &ref_mean));
  OSP_TRY(load_f64(c, "std", &std));
  OSP_TRY(load_f64(c, "ref_kl", &ref_kl));
  OSP_TRY(new_output(c, mean.ndim, mean.shape, &grad));
  OSP_TRY(osp_sde_kl(&mean, &ref_mean, std, &kl, &grad));
  OSP_TRY(compare(c, "ref_grad", &grad));
  judge_scalar(c, "ref_kl", kl, ref_kl);
  return OSP_OK;
}

static osp_status run_clip(test_case *c) {
  int64_t n = 0, m = 0;
  double *logp = NULL, *logp_old, *advantage, *ref_loss, *ref_grad, *ref_clipped, eps;
  OSP_TRY(load_doubles(c, "logp", &n, &logp));
  OSP_TRY(load_doubles(c, "logp_old", &m, &logp_old));
  OSP_TRY(load_doubles(c, "advantage", &m, &advantage));
  OSP_TRY(load_doubles(c, "ref_loss", &m, &ref_loss));
  OSP_TRY(load_doubles(c, "ref_grad", &m, &ref_grad));
  OSP_TRY(load_doubles(c, "ref_clipped", &m, &ref_clipped));
  OSP_TRY(load_f64(c, "eps", &eps));
  for (int64_t i = 0; i < n; i++) {
    double grad;
    bool clipped;
    const double loss = osp_grpo_clip_loss(logp[i], logp_old[i], advantage[i], eps, &grad, &clipped);
    judge_scalar(c, "ref_loss", loss, ref_loss[i]);
    judge_scalar(c, "ref_grad", grad, ref_grad[i]);
    if (clipped != (ref_clipped[i] != 0.0)) keep_worst(c, "ref_clipped", INFINITY);
  }
  return OSP_OK;
}

static osp_status run_advantages(test_case *c) {
  int64_t n = 0, m = 0;
  double *rewards = NULL, *ref = NULL, clip, got[64];
  OSP_TRY(load_doubles(c, "rewards", &n, &rewards));
  OSP_TRY(load_doubles(c, "ref", &m, &ref));
  OSP_TRY(load_f64(c, "clip", &clip));
  if (n > 64) return osp_fail(OSP_ERR_FORMAT, "%s: more than 64 rewards", c->file.path);
  OSP_TRY(osp_grpo_advantages(rewards, (int)n, clip, got));
  for (int64_t i = 0; i < n; i++) judge_scalar(c, "ref", got[i], ref[i]);
  return OSP_OK;
}

/* Error paths: each a clear message. */
static void test_bad_input(void) {
  const osp_sde sde = {.kind = OSP_SDE_FLOW_GRPO, .eta = 0.7, .sigma_cap = 0.96};
  float a[4] = {0}, b[4] = {0};
  const int64_t shape[1] = {4}, other[1] = {3};
  osp_tensor x = osp_tensor_make(a, OSP_F32, OSP_CPU, 1, shape), y = osp_tensor_make(b, OSP_F32, OSP_CPU, 1, shape);
  osp_tensor short_one = osp_tensor_make(b, OSP_F32, OSP_CPU, 1, other);
  double std, value, advantages[2];
  expect_status(osp_sde_step(&sde, 0.5, 0.6, &x, &y, NULL, &y, NULL, &std), OSP_ERR_ARGUMENT,
                "sde step: expected 0 <= sigma_next < sigma <= 1, found sigma 0.5, sigma_next 0.6");
  expect_status(osp_sde_step(&sde, 0.5, 0.4, &x, &short_one, NULL, &y, NULL, &std), OSP_ERR_SHAPE,
                "sde step: v: expected shape [4], found [3]");
  expect_status(osp_sde_log_prob(&x, &y, 0.0, &value, NULL), OSP_ERR_ARGUMENT,
                "sde log-prob: std: expected a positive finite value, found 0");
  expect_status(osp_grpo_advantages((const double[]){1.0}, 1, 5.0, advantages), OSP_ERR_ARGUMENT,
                "grpo advantages: a group of 1: expected at least 2");
}

static op_entry OPS[] = {
    {"sde", run_sde, 1e-6, 0},
    {"kl", run_kl, 1e-6, 0},
    {"clip", run_clip, 1e-6, 0},
    {"advantages", run_advantages, 1e-6, 0},
};
enum { OP_COUNT = sizeof OPS / sizeof OPS[0] };

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CASE_DIR   (written by tests/ref/make_grpo_cases.py)\n", argv[0]);
    return 2;
  }
  test_bad_input();
  return ref_cases_main("test_grpo_ref", "tests/ref/make_grpo_cases.py", argv[1], OPS, OP_COUNT);
}
