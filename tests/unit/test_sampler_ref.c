/* The samplers (src/sample/sampler.h) against diffusers' schedulers, run by
 * tests/ref/make_sampler_cases.py with random velocities (so no model is needed):
 *
 *   ~/.cache/osp-venv/bin/python tests/ref/make_sampler_cases.py build/ref/sampler
 *   build/test_sampler_ref build/ref/sampler
 *
 * A sampler case runs every step and compares the timestep of each step and the sample after it:
 * the error of step i is max|osp − ref| / max(1, max|ref|) over the step's sample (the timesteps
 * alike), and the case's error the worst over its steps. Tolerance 1e-6: float32 samples in
 * diffusers' order of operations, where only torch's log, expm1 and 2×2 solve can differ by an
 * ulp. The guidance cases compare out = uncond + s·(cond − uncond) with torch's float32 result. */
#include <string.h>

#include "ref_case.h"
#include "sample/sampler.h"

/* Row i of a [N, ...] stack as a tensor of the sample's shape. */
static osp_tensor row_of(const osp_tensor *stack, int i, const osp_tensor *sample) {
  return osp_tensor_make((float *)stack->data + (int64_t)i * osp_tensor_numel(sample), OSP_F32,
                         OSP_CPU, sample->ndim, sample->shape);
}

/* max|got − ref| / max(1, max|ref|), kept in the case when it is its worst (NaN is worst). */
static void judge(test_case *c, const char *what, const float *got, const float *ref, int64_t n) {
  double worst = 0.0, scale = 1.0;
  for (int64_t j = 0; j < n; j++) {
    worst = fmax(worst, fabs((double)got[j] - (double)ref[j]));
    if (isnan(got[j])) worst = NAN;
    scale = fmax(scale, fabs((double)ref[j]));
  }
  const double error = worst / scale;
  if (isnan(error) || error > c->error) {
    c->error = error;
    c->worst_output = what;
  }
}

static osp_status run_sampler(test_case *c, osp_sampler_kind kind) {
  int steps = 0, order = 0;
  double shift = 0.0;
  osp_tensor sample, velocity, ref_samples, ref_timesteps;
  OSP_TRY(load_ints(c, "steps", 1, &steps));
  if (kind == OSP_SAMPLER_UNIPC) OSP_TRY(load_ints(c, "order", 1, &order));
  OSP_TRY(load_f64(c, "shift", &shift));
  OSP_TRY(load_f32(c, "sample", &sample));
  OSP_TRY(load_f32(c, "velocity", &velocity));
  OSP_TRY(load_f32(c, "ref_samples", &ref_samples));
  OSP_TRY(load_f32(c, "ref_timesteps", &ref_timesteps));
  const int64_t per_step = osp_tensor_numel(&sample);
  if (osp_tensor_numel(&velocity) != steps * per_step ||
      osp_tensor_numel(&ref_samples) != steps * per_step || osp_tensor_numel(&ref_timesteps) != steps)
    return osp_fail(OSP_ERR_FORMAT,
                    "%s: velocity, ref_samples, ref_timesteps: expected %d steps of the sample",
                    c->file.path, steps);

  const osp_sampler_config config = {.kind = kind, .steps = steps, .shift = shift, .order = order};
  osp_sampler *sampler = NULL;
  OSP_TRY(osp_sampler_create(&config, sample.ndim, sample.shape, &sampler));
  osp_status status = OSP_OK;
  for (int i = 0; i < steps && status == OSP_OK; i++) {
    const float t = (float)osp_sampler_timestep(sampler, i);
    judge(c, "ref_timesteps", &t, (const float *)ref_timesteps.data + i, 1);
    const osp_tensor v = row_of(&velocity, i, &sample), ref = row_of(&ref_samples, i, &sample);
    status = osp_sampler_step(sampler, i, &v, &sample);
    judge(c, "ref_samples", sample.data, ref.data, osp_tensor_numel(&sample));
  }
  osp_sampler_free(sampler);
  return status;
}

static osp_status run_euler(test_case *c) { return run_sampler(c, OSP_SAMPLER_EULER); }
static osp_status run_unipc(test_case *c) { return run_sampler(c, OSP_SAMPLER_UNIPC); }

static osp_status run_guidance(test_case *c) {
  osp_tensor cond, uncond, out;
  double scale = 0.0;
  OSP_TRY(load_f32(c, "cond", &cond));
  OSP_TRY(load_f32(c, "uncond", &uncond));
  OSP_TRY(load_f64(c, "scale", &scale));
  OSP_TRY(new_output(c, cond.ndim, cond.shape, &out));
  OSP_TRY(osp_guidance_combine(&cond, &uncond, scale, &out));
  return compare(c, "ref", &out);
}

/* Guidance is three float32 roundings in torch's order: the same bits. */
static op_entry OPS[] = {
    {"euler", run_euler, 1e-6, 0},
    {"unipc", run_unipc, 1e-6, 0},
    {"guidance", run_guidance, 0.0, 0},
};
enum { OP_COUNT = sizeof OPS / sizeof OPS[0] };

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CASE_DIR   (written by tests/ref/make_sampler_cases.py)\n", argv[0]);
    return 2;
  }
  return ref_cases_main("test_sampler_ref", "tests/ref/make_sampler_cases.py", argv[1], OPS,
                        OP_COUNT);
}
