/* The flow-matching objective (src/pipeline/flow_matching.h) beyond its PyTorch references
 * (test_flow_ref.c): the statistics of the σ draws, the resolution shift's values, the Philox
 * layout and determinism of σ and ε (the same key gives the same bits, however the batch is split
 * and whatever the number of threads), the loss's gradient in place, and every error message. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "pipeline/flow_matching.h"
#include "ref_case.h"

static osp_tensor f32_tensor(float *data, int ndim, const int64_t *shape) {
  return osp_tensor_make(data, OSP_F32, OSP_CPU, ndim, shape);
}

static osp_tensor vector(float *data, int64_t n) { return f32_tensor(data, 1, &n); }

static bool same_bits(const float *a, const float *b, int64_t n) {
  return memcmp(a, b, (size_t)n * sizeof *a) == 0;
}

/* ---- Statistics of the draws ---------------------------------------------------------------- */

enum { DRAWS = 200000 };

/* Mean and standard deviation of x[0..n) (in double). */
static void moments(const double *x, int64_t n, double *mean, double *std) {
  double sum = 0.0, squares = 0.0;
  for (int64_t i = 0; i < n; i++) sum += x[i];
  *mean = sum / (double)n;
  for (int64_t i = 0; i < n; i++) squares += (x[i] - *mean) * (x[i] - *mean);
  *std = sqrt(squares / (double)(n - 1));
}

/* σ of DRAWS samples (no shift) under the config, as doubles; each must lie in (0, 1). */
static void draw_unshifted(osp_flow_config config, double *out) {
  static float sigma[DRAWS];
  osp_tensor t = vector(sigma, DRAWS);
  config.shift_kind = OSP_FLOW_SHIFT_NONE;
  const osp_flow_key key = {.seed = 1234, .step = 17, .first_sample = 0};
  expect_status(osp_flow_draw_sigmas(&config, &key, 1, 1, &t, NULL), OSP_OK, "");
  bool inside = true;
  for (int i = 0; i < DRAWS; i++) {
    inside = inside && sigma[i] > 0.0f && sigma[i] < 1.0f;
    out[i] = sigma[i];
  }
  CHECK(inside);
}

/* logit(σ) ~ N(m, d): its mean and std within 4.5 standard errors (d/√n and d/√(2n)), and the
 * share within one d of m near 68.27%. */
static void test_logit_normal_moments(double mean, double std) {
  static double logits[DRAWS];
  osp_flow_config config = osp_flow_config_osp_next();
  config.logit_mean = mean;
  config.logit_std = std;
  draw_unshifted(config, logits);
  int64_t within_one_std = 0;
  for (int i = 0; i < DRAWS; i++) {
    logits[i] = log(logits[i] / (1.0 - logits[i]));
    within_one_std += fabs(logits[i] - mean) < std;
  }
  double got_mean, got_std;
  moments(logits, DRAWS, &got_mean, &got_std);
  CHECK(fabs(got_mean - mean) < 4.5 * std / sqrt(DRAWS));
  CHECK(fabs(got_std - std) < 4.5 * std / sqrt(2.0 * DRAWS));
  CHECK(fabs((double)within_one_std / DRAWS - 0.682689) < 0.005);
}

/* Uniform on (0, 1): mean ½, std 1/√12, a tenth of the draws in each tenth. */
static void test_uniform_moments(void) {
  static double sigma[DRAWS];
  const osp_flow_config config = {.distribution = OSP_FLOW_UNIFORM};
  draw_unshifted(config, sigma);
  int64_t tenths[10] = {0};
  for (int i = 0; i < DRAWS; i++) tenths[(int)(sigma[i] * 10.0)]++;
  double mean, std;
  moments(sigma, DRAWS, &mean, &std);
  CHECK(fabs(mean - 0.5) < 0.003);
  CHECK(fabs(std - 1.0 / sqrt(12.0)) < 0.003);
  for (int k = 0; k < 10; k++) CHECK(fabs((double)tenths[k] / DRAWS - 0.1) < 0.003);
}

/* ---- The shift ------------------------------------------------------------------------------ */

static void test_resolution_shift(void) {
  double shift = 0.0;
  expect_status(osp_flow_resolution_shift(60, 104, &shift), OSP_OK, ""); /* 480P: L = 1560 */
  CHECK_NEAR(shift, exp(0.5 + 0.65 * (1560.0 - 256.0) / 3840.0), 1e-15);
  CHECK(fabs(shift - 2.06) < 0.005);
  expect_status(osp_flow_resolution_shift(90, 160, &shift), OSP_OK, ""); /* 720P: L = 3600 */
  CHECK_NEAR(shift, exp(0.5 + 0.65 * (3600.0 - 256.0) / 3840.0), 1e-15);
  CHECK(fabs(shift - 2.90) < 0.005);
  expect_status(osp_flow_resolution_shift(32, 32, &shift), OSP_OK, ""); /* L = 256: μ = 0.5 */
  CHECK_NEAR(shift, exp(0.5), 1e-15);

  osp_flow_config config = osp_flow_config_osp_next();
  expect_status(osp_flow_shift_of(&config, 90, 160, &shift), OSP_OK, "");
  CHECK(fabs(shift - 2.90) < 0.005);
  config.shift_kind = OSP_FLOW_SHIFT_FIXED;
  config.shift = 7.0;
  expect_status(osp_flow_shift_of(&config, 0, 0, &shift), OSP_OK, ""); /* sizes unused */
  CHECK(shift == 7.0);
  config.shift_kind = OSP_FLOW_SHIFT_NONE;
  expect_status(osp_flow_shift_of(&config, 0, 0, &shift), OSP_OK, "");
  CHECK(shift == 1.0);

  CHECK(osp_flow_shift_sigma(0.25, 1.0) == 0.25);
  CHECK(osp_flow_shift_sigma(0.0, 5.0) == 0.0 && osp_flow_shift_sigma(1.0, 5.0) == 1.0);
  CHECK_NEAR(osp_flow_shift_sigma(0.5, 3.0), 0.75, 1e-15); /* 1.5 / 2 */
}

/* The drawn σ′ is the shift of the unshifted draw of the same key, and t = 1000·σ′. */
static void test_draw_is_shifted(void) {
  enum { B = 64 };
  float plain[B], shifted[B], timestep[B];
  osp_tensor plain_t = vector(plain, B), shifted_t = vector(shifted, B);
  osp_tensor timestep_t = vector(timestep, B);
  const osp_flow_key key = {.seed = 99, .step = 3, .first_sample = 8};
  osp_flow_config config = osp_flow_config_osp_next();
  config.shift_kind = OSP_FLOW_SHIFT_NONE;
  expect_status(osp_flow_draw_sigmas(&config, &key, 90, 160, &plain_t, NULL), OSP_OK, "");
  config.shift_kind = OSP_FLOW_SHIFT_RESOLUTION;
  expect_status(osp_flow_draw_sigmas(&config, &key, 90, 160, &shifted_t, &timestep_t), OSP_OK,
                "");
  double shift = 0.0;
  expect_status(osp_flow_resolution_shift(90, 160, &shift), OSP_OK, "");
  bool agree = true;
  for (int b = 0; b < B; b++) {
    agree = agree && fabs(shifted[b] - osp_flow_shift_sigma(plain[b], shift)) <= 1e-6;
    agree = agree && timestep[b] == 1000.0f * shifted[b] && shifted[b] > plain[b];
  }
  CHECK(agree);
}

/* ---- The Philox layout and determinism ------------------------------------------------------ */

/* Uniform σ of sample g is (k + ½)·2^-52, k = w0·2^20 + (w1 >> 12) of the block
 * {g, 0, step, "SIGM"} (flow_matching.h). */
static void test_sigma_layout(void) {
  const osp_flow_key key = {.seed = 0x0123456789ABCDEFull, .step = 41, .first_sample = 5};
  const osp_flow_config config = {.distribution = OSP_FLOW_UNIFORM};
  float sigma[3];
  osp_tensor t = vector(sigma, 3);
  expect_status(osp_flow_draw_sigmas(&config, &key, 1, 1, &t, NULL), OSP_OK, "");
  for (uint32_t b = 0; b < 3; b++) {
    const osp_philox_ctr counter = {{5 + b, 0, 41, 0x5349474Du}};
    const osp_philox_key philox = {{0x89ABCDEFu, 0x01234567u}};
    const osp_philox_ctr bits = osp_philox4x32_10(counter, philox);
    const uint64_t k = ((uint64_t)bits.v[0] << 20) | (bits.v[1] >> 12);
    CHECK(sigma[b] == (float)(((double)k + 0.5) * 0x1p-52));
  }
}

/* σ and ε of (seed, step, samples first .. first + B − 1): sigma [B], noise [B, 16, 3, 5]. */
enum { SAMPLE = 16 * 3 * 5 };
static void draw_step(uint64_t seed, int64_t step, int64_t first, int64_t batch, float *sigma,
                      float *noise) {
  const osp_flow_config config = osp_flow_config_osp_next();
  const osp_flow_key key = {.seed = seed, .step = step, .first_sample = first};
  osp_tensor sigma_t = vector(sigma, batch);
  osp_tensor noise_t = f32_tensor(noise, 4, (const int64_t[]){batch, 16, 3, 5});
  expect_status(osp_flow_draw_sigmas(&config, &key, 4, 6, &sigma_t, NULL), OSP_OK, "");
  expect_status(osp_flow_draw_noise(&key, &noise_t), OSP_OK, "");
}

static void test_determinism(void) {
  enum { B = 4 };
  float sigma[B], again_sigma[B], other_sigma[B], noise[B * SAMPLE], again_noise[B * SAMPLE],
      other_noise[B * SAMPLE];
  draw_step(7, 100, 0, B, sigma, noise);
  draw_step(7, 100, 0, B, again_sigma, again_noise); /* a resumed run at the same step */
  CHECK(same_bits(sigma, again_sigma, B) && same_bits(noise, again_noise, B * SAMPLE));

  /* Samples 2 and 3 drawn as replica 1's batch of two: the same as in the batch of four. */
  draw_step(7, 100, 2, 2, again_sigma, again_noise);
  CHECK(same_bits(sigma + 2, again_sigma, 2));
  CHECK(same_bits(noise + 2 * SAMPLE, again_noise, 2 * SAMPLE));

  /* ε of sample g is osp_randn(seed, step, g·2^40). */
  osp_randn(7, 100, UINT64_C(3) << 40, again_noise, SAMPLE);
  CHECK(same_bits(noise + 3 * SAMPLE, again_noise, SAMPLE));

  draw_step(7, 101, 0, B, other_sigma, other_noise); /* the next step */
  CHECK(!same_bits(sigma, other_sigma, B) && !same_bits(noise, other_noise, B * SAMPLE));
  draw_step(8, 100, 0, B, other_sigma, other_noise); /* another seed */
  CHECK(!same_bits(sigma, other_sigma, B) && !same_bits(noise, other_noise, B * SAMPLE));
  CHECK(sigma[0] != sigma[1] && noise[0] != noise[SAMPLE]); /* samples differ */
}

/* The noise, and the loss's bits, are the same for 1 to 4 threads (sizes past the parallel
 * thresholds). */
static void test_threads(void) {
  const int64_t shape[2] = {3, 1000003};
  const int64_t n = shape[0] * shape[1];
  float *one = malloc((size_t)n * sizeof *one), *many = malloc((size_t)n * sizeof *many);
  float *target = malloc((size_t)n * sizeof *target), *grad = malloc((size_t)n * sizeof *grad);
  CHECK(one && many && target && grad);
  if (!one || !many || !target || !grad) return;
  const osp_flow_key key = {.seed = 5, .step = 9, .first_sample = 0};
  const int threads = omp_get_max_threads();
  osp_tensor one_t = f32_tensor(one, 2, shape), many_t = f32_tensor(many, 2, shape);
  osp_tensor target_t = f32_tensor(target, 2, shape), grad_t = f32_tensor(grad, 2, shape);
  omp_set_num_threads(1);
  expect_status(osp_flow_draw_noise(&key, &one_t), OSP_OK, "");
  osp_randn(6, 0, 0, target, (size_t)n);
  double loss_one = 0.0, loss_many = 0.0;
  expect_status(osp_flow_loss(&one_t, &target_t, &loss_one, &grad_t), OSP_OK, "");
  for (int t = 2; t <= 4; t++) {
    omp_set_num_threads(t);
    expect_status(osp_flow_draw_noise(&key, &many_t), OSP_OK, "");
    CHECK(same_bits(one, many, n));
    expect_status(osp_flow_loss(&one_t, &target_t, &loss_many, &grad_t), OSP_OK, "");
    CHECK(memcmp(&loss_one, &loss_many, sizeof loss_one) == 0);
  }
  omp_set_num_threads(threads);
  CHECK_NEAR(loss_one, 2.0, 0.01); /* E (ε − ε′)² = 2 */
  free(one);
  free(many);
  free(target);
  free(grad);
}

/* ---- In place ----------------------------------------------------------------------------- */

static void test_loss_in_place(void) {
  float v[4] = {1, 2, 3, 4}, target[4] = {0, 0, 0, 0};
  osp_tensor v_t = vector(v, 4), target_t = vector(target, 4);
  double loss = 0.0;
  expect_status(osp_flow_loss(&v_t, &target_t, &loss, &v_t), OSP_OK, ""); /* dL/dv over v */
  CHECK(loss == 7.5);                                                         /* 30 / 4 */
  CHECK(v[0] == 0.5f && v[1] == 1.0f && v[2] == 1.5f && v[3] == 2.0f);        /* 2·v/4 */
}

static void test_noisy_input_in_place(void) {
  float x0[6] = {1, 2, 3, 4, 5, 6}, noise[6] = {-1, 0, 1, 2, 2, 2}, sigma[2] = {0.25f, 1.0f};
  float x_t[6], target[6];
  const int64_t shape[2] = {2, 3};
  osp_tensor x0_t = f32_tensor(x0, 2, shape), noise_t = f32_tensor(noise, 2, shape);
  osp_tensor sigma_t = vector(sigma, 2);
  osp_tensor x_t_t = f32_tensor(x_t, 2, shape), target_t = f32_tensor(target, 2, shape);
  expect_status(osp_flow_noisy_input(&x0_t, &noise_t, &sigma_t, &x_t_t, &target_t), OSP_OK, "");
  CHECK(x_t[0] == 0.5f && x_t[2] == 2.5f && x_t[3] == 2.0f && target[0] == -2.0f);
  /* x_t over noise, target over x0: the same numbers. */
  expect_status(osp_flow_noisy_input(&x0_t, &noise_t, &sigma_t, &noise_t, &x0_t), OSP_OK, "");
  CHECK(same_bits(noise, x_t, 6) && same_bits(x0, target, 6));
}

/* ---- Errors ------------------------------------------------------------------------------- */

static void test_config_errors(void) {
  osp_flow_distribution distribution;
  osp_flow_shift_kind kind;
  expect_status(osp_flow_distribution_parse("normal", &distribution), OSP_ERR_ARGUMENT,
                "flow matching: distribution: expected uniform or logit_normal, found 'normal'");
  expect_status(osp_flow_shift_kind_parse("dynamic", &kind), OSP_ERR_ARGUMENT,
                "flow matching: shift: expected none, fixed or resolution, found 'dynamic'");
  expect_status(osp_flow_distribution_parse("logit_normal", &distribution), OSP_OK, "");
  CHECK(distribution == OSP_FLOW_LOGIT_NORMAL);
  expect_status(osp_flow_shift_kind_parse("resolution", &kind), OSP_OK, "");
  CHECK(kind == OSP_FLOW_SHIFT_RESOLUTION);
  CHECK(strcmp(osp_flow_distribution_name(OSP_FLOW_UNIFORM), "uniform") == 0);
  CHECK(strcmp(osp_flow_shift_kind_name(OSP_FLOW_SHIFT_FIXED), "fixed") == 0);
  CHECK(strcmp(osp_flow_shift_kind_name((osp_flow_shift_kind)9), "unknown") == 0);

  expect_status(osp_flow_config_check(NULL), OSP_ERR_ARGUMENT,
                "flow matching: config: missing (NULL)");
  osp_flow_config bad = osp_flow_config_osp_next();
  bad.logit_std = -1.0;
  expect_status(osp_flow_config_check(&bad), OSP_ERR_ARGUMENT,
                "flow matching (logit_normal): logit_std: expected a finite value >= 0, found -1");
  bad = osp_flow_config_osp_next();
  bad.logit_mean = NAN;
  expect_status(osp_flow_config_check(&bad), OSP_ERR_ARGUMENT,
                "flow matching (logit_normal): logit_mean: expected a finite value, found nan");
  bad = (osp_flow_config){.distribution = OSP_FLOW_UNIFORM, .shift_kind = OSP_FLOW_SHIFT_FIXED};
  expect_status(osp_flow_config_check(&bad), OSP_ERR_ARGUMENT,
                "flow matching (fixed shift): shift: expected a finite value > 0, found 0");
  bad.distribution = (osp_flow_distribution)7;
  expect_status(osp_flow_config_check(&bad), OSP_ERR_ARGUMENT,
                "flow matching: distribution: expected uniform or logit_normal, found 7");
  double shift = 0.0;
  expect_status(osp_flow_resolution_shift(0, 160, &shift), OSP_ERR_ARGUMENT,
                "flow matching (resolution shift): latent size: expected height and width >= 1, "
                "found 0 x 160");
}

static void test_draw_errors(void) {
  static float data[6];
  const osp_flow_config config = osp_flow_config_osp_next();
  osp_flow_key key = {.seed = 1, .step = 0, .first_sample = 0};
  osp_tensor sigma = vector(data, 2), timestep = vector(data + 2, 2);
  osp_tensor matrix = f32_tensor(data, 2, (const int64_t[]){2, 3});
  expect_status(osp_flow_draw_sigmas(&config, &key, 90, 160, &matrix, NULL), OSP_ERR_SHAPE,
                "osp_flow_draw_sigmas: sigma: expected shape [*], found [2, 3]");
  osp_tensor short_timestep = vector(data + 2, 1);
  expect_status(osp_flow_draw_sigmas(&config, &key, 90, 160, &sigma, &short_timestep),
                OSP_ERR_SHAPE, "osp_flow_draw_sigmas: timestep: expected shape [2], found [1]");
  osp_tensor overlapping = vector(data + 1, 2);
  expect_status(osp_flow_draw_sigmas(&config, &key, 90, 160, &sigma, &overlapping),
                OSP_ERR_ARGUMENT,
                "osp_flow_draw_sigmas: timestep: expected memory apart from sigma, found them "
                "overlapping");
  expect_status(osp_flow_draw_sigmas(&config, &key, 0, 160, &sigma, &timestep), OSP_ERR_ARGUMENT,
                "flow matching (resolution shift): latent size: expected height and width >= 1, "
                "found 0 x 160");
  osp_tensor bf16 = sigma;
  bf16.dtype = OSP_BF16;
  expect_status(osp_flow_draw_sigmas(&config, &key, 90, 160, &bf16, NULL), OSP_ERR_SHAPE,
                "osp_flow_draw_sigmas: sigma: expected dtype f32, found bf16");
  osp_tensor cuda = sigma;
  cuda.device = OSP_CUDA;
  expect_status(osp_flow_draw_sigmas(&config, &key, 90, 160, &cuda, NULL), OSP_ERR_UNSUPPORTED,
                "osp_flow_draw_sigmas: sigma: expected a CPU tensor, found one on cuda (flow "
                "matching has no CUDA path yet)");

  key.step = INT64_C(1) << 31;
  expect_status(osp_flow_draw_sigmas(&config, &key, 90, 160, &sigma, NULL), OSP_ERR_ARGUMENT,
                "osp_flow_draw_sigmas: key: step: expected a value in [0, 2^31), found 2147483648");
  key.step = 0;
  key.first_sample = (INT64_C(1) << 24) - 1;
  expect_status(osp_flow_draw_noise(&key, &matrix), OSP_ERR_ARGUMENT,
                "osp_flow_draw_noise: key: first_sample: expected first_sample >= 0 and "
                "first_sample + 2 samples <= 2^24, found 16777215");
  expect_status(osp_flow_draw_noise(NULL, &matrix), OSP_ERR_ARGUMENT,
                "osp_flow_draw_noise: key: missing (NULL)");
  key.first_sample = 0;
  /* Checked before anything is written: the data is never touched. */
  osp_tensor huge = f32_tensor(data, 2, (const int64_t[]){1, INT64_C(1) << 40});
  expect_status(osp_flow_draw_noise(&key, &huge), OSP_ERR_ARGUMENT,
                "osp_flow_draw_noise: noise: expected fewer than 2^40 elements per sample, found "
                "1099511627776");
  osp_tensor empty = f32_tensor(data, 2, (const int64_t[]){2, 0});
  expect_status(osp_flow_draw_noise(&key, &empty), OSP_ERR_SHAPE,
                "osp_flow_draw_noise: noise: expected at least one dimension and no empty one, "
                "found [2, 0]");

  float out[2];
  osp_tensor shifted = vector(out, 2);
  data[0] = 0.5f;
  data[1] = 1.5f;
  expect_status(osp_flow_shift_sigmas(&sigma, 3.0, &shifted, NULL), OSP_ERR_ARGUMENT,
                "osp_flow_shift_sigmas: sigma[1]: expected a value in [0, 1], found 1.5");
  data[1] = 0.5f;
  expect_status(osp_flow_shift_sigmas(&sigma, -3.0, &shifted, NULL), OSP_ERR_ARGUMENT,
                "osp_flow_shift_sigmas: shift: expected a finite value > 0, found -3");
  expect_status(osp_flow_shift_sigmas(&sigma, 3.0, &sigma, NULL), OSP_OK, ""); /* in place */
  CHECK(data[0] == 0.75f);
}

static void test_objective_errors(void) {
  static float a[8], b[8], c[8], d[8], s[3]; /* room for the shifted views below */
  const int64_t shape[2] = {2, 3}, transposed[2] = {3, 2};
  osp_tensor x0 = f32_tensor(a, 2, shape), noise = f32_tensor(b, 2, shape);
  osp_tensor x_t = f32_tensor(c, 2, shape), target = f32_tensor(d, 2, shape);
  osp_tensor sigma = vector(s, 2);
  osp_tensor noise_t = f32_tensor(b, 2, transposed);
  expect_status(osp_flow_noisy_input(&x0, &noise_t, &sigma, &x_t, &target), OSP_ERR_SHAPE,
                "osp_flow_noisy_input: noise: expected shape [2, 3], found [3, 2]");
  osp_tensor three_sigmas = vector(s, 3);
  expect_status(osp_flow_noisy_input(&x0, &noise, &three_sigmas, &x_t, &target), OSP_ERR_SHAPE,
                "osp_flow_noisy_input: sigma: expected shape [2], found [3]");
  expect_status(osp_flow_noisy_input(&x0, &noise, &sigma, &x_t, &x_t), OSP_ERR_ARGUMENT,
                "osp_flow_noisy_input: target: expected memory apart from x_t, found them "
                "overlapping");
  osp_tensor target_over_x0 = f32_tensor(a + 2, 2, shape);
  expect_status(osp_flow_noisy_input(&x0, &noise, &sigma, &x_t, &target_over_x0),
                OSP_ERR_ARGUMENT,
                "osp_flow_noisy_input: target: expected memory apart from x0 (or that tensor "
                "itself), found them overlapping");
  osp_tensor strided = x0;
  strided.stride[0] = 4;
  expect_status(osp_flow_noisy_input(&strided, &noise, &sigma, &x_t, &target), OSP_ERR_SHAPE,
                "osp_flow_noisy_input: x0: expected a contiguous tensor");
  expect_status(osp_flow_noisy_input(&x0, &noise, NULL, &x_t, &target), OSP_ERR_ARGUMENT,
                "osp_flow_noisy_input: sigma: missing (NULL)");

  double loss = 0.0;
  osp_tensor v = x_t, grad = f32_tensor(d, 2, shape);
  osp_tensor target_3x2 = f32_tensor(a, 2, transposed);
  expect_status(osp_flow_loss(&v, &target_3x2, &loss, &grad), OSP_ERR_SHAPE,
                "osp_flow_loss: target: expected shape [2, 3], found [3, 2]");
  osp_tensor grad_over_v = f32_tensor(c + 1, 2, shape);
  expect_status(osp_flow_loss(&v, &x0, &loss, &grad_over_v), OSP_ERR_ARGUMENT,
                "osp_flow_loss: grad_v: expected memory apart from v (or that tensor itself), "
                "found them overlapping");
  expect_status(osp_flow_loss(&v, &x0, NULL, &grad), OSP_ERR_ARGUMENT,
                "osp_flow_loss: loss: missing (NULL)");
  osp_tensor cuda_v = v;
  cuda_v.device = OSP_CUDA;
  expect_status(osp_flow_loss(&cuda_v, &x0, &loss, &grad), OSP_ERR_UNSUPPORTED,
                "osp_flow_loss: v: expected a CPU tensor, found one on cuda (flow matching has no "
                "CUDA path yet)");
}

int main(void) {
  test_logit_normal_moments(0.0, 1.0);
  test_logit_normal_moments(0.5, 0.8);
  test_uniform_moments();
  test_resolution_shift();
  test_draw_is_shifted();
  test_sigma_layout();
  test_determinism();
  test_threads();
  test_loss_in_place();
  test_noisy_input_in_place();
  test_config_errors();
  test_draw_errors();
  test_objective_errors();
  return test_summary("test_flow");
}
