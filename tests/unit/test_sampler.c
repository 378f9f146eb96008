/* The samplers (src/sample/sampler.h) beyond diffusers' references (test_sampler_ref.c): a
 * straight flow is integrated exactly, a run restarted at step 0 or continued after a refused step
 * repeats a fresh sampler's bits, the timesteps' shape, guidance's values, and every error
 * message. */
#include <string.h>

#include "core/rng.h"
#include "ref_case.h"
#include "sample/sampler.h"

enum { NUMEL = 2 * 4 * 3 };
static const int64_t SHAPE[] = {2, 4, 3};

static osp_tensor tensor_of(float *data) { return osp_tensor_make(data, OSP_F32, OSP_CPU, 3, SHAPE); }

static osp_sampler *make(osp_sampler_kind kind, int steps, double shift) {
  const osp_sampler_config config = {.kind = kind, .steps = steps, .shift = shift};
  osp_sampler *s = NULL;
  expect_status(osp_sampler_create(&config, 3, SHAPE, &s), OSP_OK, "");
  return s;
}

/* Runs all steps from `start` with velocity stream `velocity_seed` (one draw per step), into x. */
static void run(osp_sampler *s, const float *start, uint64_t velocity_seed, float *x) {
  float v[NUMEL];
  osp_tensor x_t = tensor_of(x), v_t = tensor_of(v);
  memcpy(x, start, sizeof v);
  for (int i = 0; i < osp_sampler_steps(s); i++) {
    osp_randn(velocity_seed, (uint32_t)i, 0, v, NUMEL);
    expect_status(osp_sampler_step(s, i, &v_t, &x_t), OSP_OK, "");
  }
}

/* ---- What the samplers compute ------------------------------------------------------------ */

/* On the straight path x_σ = (1 − σ)·x0 + σ·ε the velocity ε − x0 is constant and the model's
 * x0 = x − σ·v exact: Euler and UniPC both end on x0, starting from ε (UniPC's σ_0 = 1 − 1e-6 is
 * 1e-6·|v| off the path) to float32 rounding over the steps: 1e-5. */
static void test_straight_flow_lands_on_x0(osp_sampler_kind kind, int steps, double shift) {
  float x0[NUMEL], noise[NUMEL], v[NUMEL], x[NUMEL];
  osp_randn(7, 0, 0, x0, NUMEL);
  osp_randn(7, 1, 0, noise, NUMEL);
  osp_sampler *s = make(kind, steps, shift);
  for (int j = 0; j < NUMEL; j++) {
    v[j] = noise[j] - x0[j];
    x[j] = noise[j];
  }
  osp_tensor x_t = tensor_of(x), v_t = tensor_of(v);
  for (int i = 0; i < steps; i++) expect_status(osp_sampler_step(s, i, &v_t, &x_t), OSP_OK, "");
  for (int j = 0; j < NUMEL; j++) CHECK_NEAR(x[j], x0[j], 1e-5);
  osp_sampler_free(s);
}

/* A second run on the same sampler (step 0 starts over) gives a fresh sampler's bits; so does
 * a run in which a step was refused (a refused step changes nothing). */
static void test_runs_repeat(osp_sampler_kind kind) {
  float start[NUMEL], first[NUMEL], second[NUMEL], fresh[NUMEL], x[NUMEL], v[NUMEL];
  osp_randn(11, 0, 0, start, NUMEL);
  osp_sampler *s = make(kind, 6, 3.0), *other = make(kind, 6, 3.0);
  run(s, start, 21, first);
  run(s, start, 21, second);
  run(other, start, 21, fresh);
  CHECK(memcmp(first, second, sizeof first) == 0);
  CHECK(memcmp(first, fresh, sizeof first) == 0);

  memcpy(x, start, sizeof x);
  osp_tensor x_t = tensor_of(x), v_t = tensor_of(v);
  osp_tensor short_v = osp_tensor_make(v, OSP_F32, OSP_CPU, 3, (const int64_t[]){2, 4, 2});
  for (int i = 0; i < 6; i++) {
    osp_randn(21, (uint32_t)i, 0, v, NUMEL);
    if (i == 3) {
      CHECK(osp_sampler_step(s, i, &short_v, &x_t) == OSP_ERR_SHAPE);
      CHECK(osp_sampler_step(s, i + 1, &v_t, &x_t) == OSP_ERR_ARGUMENT);
    }
    expect_status(osp_sampler_step(s, i, &v_t, &x_t), OSP_OK, "");
  }
  CHECK(memcmp(first, x, sizeof x) == 0);
  osp_sampler_free(s);
  osp_sampler_free(other);
}

/* t_0 near 1000, falling at every step, integers for UniPC; NaN outside [0, N). */
static void test_timesteps(void) {
  osp_sampler *euler = make(OSP_SAMPLER_EULER, 50, 5.0), *unipc = make(OSP_SAMPLER_UNIPC, 50, 5.0);
  CHECK(osp_sampler_timestep(euler, 0) == 1000.0);
  CHECK(osp_sampler_timestep(unipc, 0) == 999.0); /* σ_0 = 1 − 1e-6, truncated */
  bool falling = true, integers = true;
  for (int i = 1; i < 50; i++) {
    falling = falling && osp_sampler_timestep(euler, i) < osp_sampler_timestep(euler, i - 1);
    falling = falling && osp_sampler_timestep(unipc, i) < osp_sampler_timestep(unipc, i - 1);
    integers = integers && osp_sampler_timestep(unipc, i) == floor(osp_sampler_timestep(unipc, i));
  }
  CHECK(falling);
  CHECK(integers);
  CHECK(isnan(osp_sampler_timestep(euler, -1)));
  CHECK(isnan(osp_sampler_timestep(unipc, 50)));
  CHECK(isnan(osp_sampler_timestep(NULL, 0)));
  CHECK(osp_sampler_steps(unipc) == 50);
  osp_sampler_free(euler);
  osp_sampler_free(unipc);
}

/* uncond + s·(cond − uncond): s = 1 gives cond (to an ulp), s = 0 uncond, s = 5 extrapolates;
 * out may be cond itself. */
static void test_guidance(void) {
  float cond[NUMEL], uncond[NUMEL], out[NUMEL];
  osp_randn(3, 0, 0, cond, NUMEL);
  osp_randn(3, 1, 0, uncond, NUMEL);
  osp_tensor c = tensor_of(cond), u = tensor_of(uncond), o = tensor_of(out);
  expect_status(osp_guidance_combine(&c, &u, 1.0, &o), OSP_OK, "");
  for (int j = 0; j < NUMEL; j++) CHECK_NEAR(out[j], cond[j], 1e-6); /* (c − u) + u: an ulp */
  expect_status(osp_guidance_combine(&c, &u, 0.0, &o), OSP_OK, "");
  CHECK(memcmp(out, uncond, sizeof out) == 0);
  cond[0] = 3.0f;
  uncond[0] = 1.0f;
  expect_status(osp_guidance_combine(&c, &u, 5.0, &o), OSP_OK, "");
  CHECK(out[0] == 11.0f);
  expect_status(osp_guidance_combine(&c, &u, 5.0, &c), OSP_OK, ""); /* out = cond */
  CHECK(memcmp(out, cond, sizeof out) == 0);
}

/* ---- Errors --------------------------------------------------------------------------------- */

static void test_names(void) {
  osp_sampler_kind kind = OSP_SAMPLER_EULER;
  expect_status(osp_sampler_kind_parse("unipc", &kind), OSP_OK, "");
  CHECK(kind == OSP_SAMPLER_UNIPC);
  expect_status(osp_sampler_kind_parse("euler", &kind), OSP_OK, "");
  CHECK(kind == OSP_SAMPLER_EULER);
  expect_status(osp_sampler_kind_parse("ddim", &kind), OSP_ERR_ARGUMENT,
                "sampler: kind: expected euler or unipc, found 'ddim'");
  expect_status(osp_sampler_kind_parse(NULL, &kind), OSP_ERR_ARGUMENT,
                "sampler: kind: expected euler or unipc, found '(null)'");
  CHECK(strcmp(osp_sampler_kind_name(OSP_SAMPLER_UNIPC), "unipc") == 0);
  CHECK(strcmp(osp_sampler_kind_name((osp_sampler_kind)5), "unknown") == 0);
}

static void expect_create(osp_sampler_config config, int ndim, const int64_t *shape,
                          osp_status want, const char *message) {
  osp_sampler *s = (osp_sampler *)&s; /* not NULL: a failed create must set it to NULL */
  expect_status(osp_sampler_create(&config, ndim, shape, &s), want, message);
  CHECK(s == NULL);
}

static void test_config_errors(void) {
  const osp_sampler_config good = {.kind = OSP_SAMPLER_UNIPC, .steps = 50, .shift = 5.0};
  osp_sampler_config bad = good;
  bad.steps = 0;
  expect_create(bad, 3, SHAPE, OSP_ERR_ARGUMENT, "sampler config: steps: expected 1..1000, found 0");
  bad.steps = 1001;
  expect_create(bad, 3, SHAPE, OSP_ERR_ARGUMENT,
                "sampler config: steps: expected 1..1000, found 1001");
  bad = good;
  bad.shift = -3.0;
  expect_create(bad, 3, SHAPE, OSP_ERR_ARGUMENT,
                "sampler config: shift: expected a finite value > 0, found -3");
  bad.shift = 0.0;
  expect_create(bad, 3, SHAPE, OSP_ERR_ARGUMENT,
                "sampler config: shift: expected a finite value > 0, found 0");
  bad.shift = INFINITY;
  expect_create(bad, 3, SHAPE, OSP_ERR_ARGUMENT,
                "sampler config: shift: expected a finite value > 0, found inf");
  bad = good;
  bad.order = 3;
  expect_create(bad, 3, SHAPE, OSP_ERR_ARGUMENT,
                "sampler config (unipc): order: expected 1 or 2 (0: the default, 2), found 3");
  bad = good;
  bad.kind = (osp_sampler_kind)4;
  expect_create(bad, 3, SHAPE, OSP_ERR_ARGUMENT,
                "sampler config: kind: expected euler or unipc, found 4");
  expect_status(osp_sampler_config_check(NULL), OSP_ERR_ARGUMENT, "sampler config: missing (NULL)");
  expect_create(good, 0, SHAPE, OSP_ERR_SHAPE,
                "sampler create: sample shape: expected 1..8 dimensions, found 0");
  expect_create(good, 3, (const int64_t[]){2, 0, 3}, OSP_ERR_SHAPE,
                "sampler create: sample shape: expected sizes >= 1 and at most 2^40 elements, "
                "found [2, 0, 3]");
  expect_create(good, 2, (const int64_t[]){INT64_C(1) << 30, INT64_C(1) << 30}, OSP_ERR_SHAPE,
                "sampler create: sample shape: expected sizes >= 1 and at most 2^40 elements, "
                "found [1073741824, 1073741824]");
  expect_status(osp_sampler_create(&good, 3, SHAPE, NULL), OSP_ERR_ARGUMENT,
                "sampler create: out: missing (NULL)");
}

static void test_step_errors(void) {
  float x[NUMEL] = {0}, v[NUMEL] = {0}, spread[2 * NUMEL] = {0};
  uint16_t half[NUMEL] = {0};
  osp_sampler *s = make(OSP_SAMPLER_UNIPC, 4, 3.0);
  osp_tensor x_t = tensor_of(x), v_t = tensor_of(v);
  osp_tensor wide = osp_tensor_make(v, OSP_F32, OSP_CPU, 3, (const int64_t[]){2, 4, 2});
  osp_tensor flat = osp_tensor_make(v, OSP_F32, OSP_CPU, 1, (const int64_t[]){NUMEL});
  osp_tensor bf16 = osp_tensor_make(half, OSP_BF16, OSP_CPU, 3, SHAPE);
  osp_tensor strided = osp_tensor_make(spread, OSP_F32, OSP_CPU, 3, SHAPE);
  for (int k = 0; k < 3; k++) strided.stride[k] *= 2; /* every other float */

  expect_status(osp_sampler_step(s, 0, &wide, &x_t), OSP_ERR_SHAPE,
                "sampler step: velocity: expected shape [2, 4, 3], found [2, 4, 2]");
  expect_status(osp_sampler_step(s, 0, &flat, &x_t), OSP_ERR_SHAPE,
                "sampler step: velocity: expected shape [2, 4, 3], found [24]");
  expect_status(osp_sampler_step(s, 0, &bf16, &x_t), OSP_ERR_SHAPE,
                "sampler step: velocity: expected dtype f32, found bf16");
  expect_status(osp_sampler_step(s, 0, NULL, &x_t), OSP_ERR_ARGUMENT,
                "sampler step: velocity: missing (NULL)");
  expect_status(osp_sampler_step(s, 0, &v_t, &wide), OSP_ERR_SHAPE,
                "sampler step: sample: expected shape [2, 4, 3], found [2, 4, 2]");
  expect_status(osp_sampler_step(s, 0, &v_t, &strided), OSP_ERR_SHAPE,
                "sampler step: sample: expected a contiguous tensor");
  expect_status(osp_sampler_step(NULL, 0, &v_t, &x_t), OSP_ERR_ARGUMENT,
                "sampler step: sampler: missing (NULL)");
  expect_status(osp_sampler_step(s, 4, &v_t, &x_t), OSP_ERR_ARGUMENT,
                "sampler step: step index: expected 0..3, found 4");
  expect_status(osp_sampler_step(s, -1, &v_t, &x_t), OSP_ERR_ARGUMENT,
                "sampler step: step index: expected 0..3, found -1");
  expect_status(osp_sampler_step(s, 1, &v_t, &x_t), OSP_ERR_ARGUMENT,
                "sampler step: step index: expected 0 (a new run), found 1");
  expect_status(osp_sampler_step(s, 0, &v_t, &x_t), OSP_OK, "");
  expect_status(osp_sampler_step(s, 2, &v_t, &x_t), OSP_ERR_ARGUMENT,
                "sampler step: step index: expected 1 (the next step) or 0 (a new run), found 2");
  expect_status(osp_sampler_step(s, 1, &v_t, &x_t), OSP_OK, "");
  expect_status(osp_sampler_step(s, 1, &v_t, &x_t), OSP_ERR_ARGUMENT,
                "sampler step: step index: expected 2 (the next step) or 0 (a new run), found 1");
  expect_status(osp_sampler_step(s, 2, &v_t, &x_t), OSP_OK, "");
  expect_status(osp_sampler_step(s, 3, &v_t, &x_t), OSP_OK, "");
  expect_status(osp_sampler_step(s, 3, &v_t, &x_t), OSP_ERR_ARGUMENT,
                "sampler step: step index: expected 0 (a new run), found 3");
  expect_status(osp_sampler_step(s, 0, &v_t, &x_t), OSP_OK, "");
  osp_sampler_free(s);
  osp_sampler_free(NULL);
}

static void test_guidance_errors(void) {
  float a[NUMEL] = {0}, b[NUMEL] = {0};
  osp_tensor c = tensor_of(a), u = tensor_of(b);
  osp_tensor wide = osp_tensor_make(b, OSP_F32, OSP_CPU, 3, (const int64_t[]){2, 4, 2});
  expect_status(osp_guidance_combine(&c, &wide, 5.0, &c), OSP_ERR_SHAPE,
                "guidance: uncond: expected shape [2, 4, 3], found [2, 4, 2]");
  expect_status(osp_guidance_combine(&c, &u, 5.0, &wide), OSP_ERR_SHAPE,
                "guidance: out: expected shape [2, 4, 3], found [2, 4, 2]");
  expect_status(osp_guidance_combine(NULL, &u, 5.0, &c), OSP_ERR_ARGUMENT,
                "guidance: cond: missing (NULL)");
  expect_status(osp_guidance_combine(&c, &u, NAN, &c), OSP_ERR_ARGUMENT,
                "guidance: scale: expected a finite value, found nan");
}

int main(void) {
  for (int kind = OSP_SAMPLER_EULER; kind <= OSP_SAMPLER_UNIPC; kind++) {
    test_straight_flow_lands_on_x0((osp_sampler_kind)kind, 1, 1.0);
    test_straight_flow_lands_on_x0((osp_sampler_kind)kind, 10, 3.0);
    test_straight_flow_lands_on_x0((osp_sampler_kind)kind, 50, 5.0);
    test_runs_repeat((osp_sampler_kind)kind);
  }
  test_timesteps();
  test_guidance();
  test_names();
  test_config_errors();
  test_step_errors();
  test_guidance_errors();
  return test_summary("test_sampler");
}
