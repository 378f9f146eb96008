/* The flow-matching objective (src/pipeline/flow_matching.h) against the PyTorch references of
 * tests/ref/make_flow_cases.py: the shift (fixed and by resolution, as diffusers computes it), and
 * a training step's σ′, timestep, x_t, target, loss and dL/dv:
 *
 *   ~/.cache/osp-venv/bin/python tests/ref/make_flow_cases.py build/ref/flow
 *   build/test_flow_ref build/ref/flow
 *
 * How a case is read and judged: ref_case.h. The checks that need no reference (statistics of the
 * draws, determinism, error messages) are tests/unit/test_flow.c's. */
#include "pipeline/flow_matching.h"
#include "ref_case.h"

/* σ′ of the case's sigma grid under `shift`, compared with ref_name. */
static osp_status compare_shifted(test_case *c, double shift, const char *ref_name) {
  osp_tensor sigma, shifted;
  OSP_TRY(load_f32(c, "sigma", &sigma));
  OSP_TRY(new_output(c, 1, sigma.shape, &shifted));
  OSP_TRY(osp_flow_shift_sigmas(&sigma, shift, &shifted, NULL));
  return compare(c, ref_name, &shifted);
}

static osp_status run_shift(test_case *c) {
  float shift = 0.0f;
  OSP_TRY(load_scalar(c, "shift", &shift));
  return compare_shifted(c, shift, "ref");
}

static osp_status run_resolution_shift(test_case *c) {
  int latent[2] = {0, 0};
  double shift = 0.0;
  OSP_TRY(load_ints(c, "latent", 2, latent));
  OSP_TRY(osp_flow_resolution_shift(latent[0], latent[1], &shift));
  float shift_f32 = (float)shift;
  const osp_tensor got = osp_tensor_make(&shift_f32, OSP_F32, OSP_CPU, 1, (const int64_t[]){1});
  OSP_TRY(compare(c, "ref_shift", &got));
  return compare_shifted(c, shift, "ref_sigma");
}

/* σ → σ′ and t; x0, noise, σ′ → x_t, target; v, target → loss, dL/dv. */
static osp_status run_training_step(test_case *c) {
  osp_tensor x0, noise, sigma, v, shifted, timestep, x_t, target, grad_v;
  float shift = 0.0f;
  OSP_TRY(load_f32(c, "x0", &x0));
  OSP_TRY(load_f32(c, "noise", &noise));
  OSP_TRY(load_f32(c, "sigma", &sigma));
  OSP_TRY(load_f32(c, "v", &v));
  OSP_TRY(load_scalar(c, "shift", &shift));
  OSP_TRY(new_output(c, 1, sigma.shape, &shifted));
  OSP_TRY(new_output(c, 1, sigma.shape, &timestep));
  OSP_TRY(new_output(c, x0.ndim, x0.shape, &x_t));
  OSP_TRY(new_output(c, x0.ndim, x0.shape, &target));
  OSP_TRY(new_output(c, x0.ndim, x0.shape, &grad_v));

  OSP_TRY(osp_flow_shift_sigmas(&sigma, shift, &shifted, &timestep));
  OSP_TRY(osp_flow_noisy_input(&x0, &noise, &shifted, &x_t, &target));
  double loss = 0.0;
  OSP_TRY(osp_flow_loss(&v, &target, &loss, &grad_v));
  float loss_f32 = (float)loss;
  const osp_tensor loss_tensor =
      osp_tensor_make(&loss_f32, OSP_F32, OSP_CPU, 1, (const int64_t[]){1});

  OSP_TRY(compare(c, "ref_sigma", &shifted));
  OSP_TRY(compare(c, "ref_timestep", &timestep));
  OSP_TRY(compare(c, "ref_x_t", &x_t));
  OSP_TRY(compare(c, "ref_target", &target));
  OSP_TRY(compare(c, "ref_loss", &loss_tensor));
  return compare(c, "ref_grad_v", &grad_v);
}

/* The shift from double to float: an ulp (6e-8) or so; a step's float32 ops as torch rounds them,
 * and its loss summed in double where torch sums in float32: 1e-6. */
static op_entry OPS[] = {
    {"shift", run_shift, 1e-7, 0},
    {"resolution_shift", run_resolution_shift, 1e-7, 0},
    {"training_step", run_training_step, 1e-6, 0},
};
enum { OP_COUNT = sizeof OPS / sizeof OPS[0] };

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CASE_DIR   (written by tests/ref/make_flow_cases.py)\n", argv[0]);
    return 2;
  }
  return ref_cases_main("test_flow_ref", "tests/ref/make_flow_cases.py", argv[1], OPS, OP_COUNT);
}
