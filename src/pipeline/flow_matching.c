#include "pipeline/flow_matching.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/rng.h"
#include "core/status.h"
#include "ops/optim.h"

/* x_t = (1 − s)·x0 + s·ε is three roundings and an add in torch: no fused multiply-add here either.
 * GCC's -std=c11 contracts nothing; clang's default does. */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

static const double PI = 3.14159265358979323846;

/* OSP-Next's resolution shift: μ = 0.5 + 0.65·(L − 256)/3840, i.e. μ rises linearly from 0.5 at
 * L = 256 tokens to 1.15 at L = 4096 (FLUX's calculate_shift), and s = exp(μ). */
static const double SHIFT_BASE_MU = 0.5, SHIFT_MU_RANGE = 0.65;
static const double SHIFT_BASE_TOKENS = 256.0, SHIFT_TOKEN_RANGE = 3840.0;
enum { TOKENS_PER_PATCH = 4 }; /* the DiT's 2×2 patch of a latent frame */

/* The counter layout (flow_matching.h): σ's blocks carry this tag in their last word. */
static const uint32_t SIGMA_TAG = 0x5349474Du; /* "SIGM" */
static const int64_t STEP_LIMIT = INT64_C(1) << 31;
static const int64_t SAMPLE_LIMIT = INT64_C(1) << 24;
enum { SAMPLE_OFFSET_BITS = 40 }; /* ε of sample g starts at element g·2^40 of its stream */

/* ---- Names -------------------------------------------------------------------------------- */

static const char *const DISTRIBUTION_NAMES[] = {[OSP_FLOW_UNIFORM] = "uniform",
                                                 [OSP_FLOW_LOGIT_NORMAL] = "logit_normal"};
static const char *const SHIFT_NAMES[] = {[OSP_FLOW_SHIFT_NONE] = "none",
                                          [OSP_FLOW_SHIFT_FIXED] = "fixed",
                                          [OSP_FLOW_SHIFT_RESOLUTION] = "resolution"};

#define COUNT_OF(array) ((int)(sizeof(array) / sizeof((array)[0])))

/* The names of an enum's values 0..count − 1, what they name, and the choices in words. */
typedef struct {
  const char *what, *choices;
  const char *const *names;
  int count;
} name_set;

static const name_set DISTRIBUTIONS = {"distribution", "uniform or logit_normal",
                                       DISTRIBUTION_NAMES, COUNT_OF(DISTRIBUTION_NAMES)};
static const name_set SHIFTS = {"shift", "none, fixed or resolution", SHIFT_NAMES,
                                COUNT_OF(SHIFT_NAMES)};

/* *value ← the index of `name` in the set; another name is an error naming the choices. */
static osp_status parse_name(const name_set *set, const char *name, int *value) {
  for (int k = 0; name && k < set->count; k++) {
    if (strcmp(name, set->names[k]) == 0) {
      *value = k;
      return OSP_OK;
    }
  }
  return osp_fail(OSP_ERR_ARGUMENT, "flow matching: %s: expected %s, found '%s'", set->what,
                  set->choices, name ? name : "(null)");
}

/* The value is one of the set's (an error naming the choices otherwise). */
static osp_status check_known(const name_set *set, int value) {
  if (value >= 0 && value < set->count) return OSP_OK;
  return osp_fail(OSP_ERR_ARGUMENT, "flow matching: %s: expected %s, found %d", set->what,
                  set->choices, value);
}

static const char *name_in(const name_set *set, int value) {
  return value >= 0 && value < set->count ? set->names[value] : "unknown";
}

osp_status osp_flow_distribution_parse(const char *name, osp_flow_distribution *distribution) {
  int k = 0;
  OSP_TRY(parse_name(&DISTRIBUTIONS, name, &k));
  *distribution = (osp_flow_distribution)k;
  return OSP_OK;
}

const char *osp_flow_distribution_name(osp_flow_distribution distribution) {
  return name_in(&DISTRIBUTIONS, (int)distribution);
}

osp_status osp_flow_shift_kind_parse(const char *name, osp_flow_shift_kind *kind) {
  int k = 0;
  OSP_TRY(parse_name(&SHIFTS, name, &k));
  *kind = (osp_flow_shift_kind)k;
  return OSP_OK;
}

const char *osp_flow_shift_kind_name(osp_flow_shift_kind kind) {
  return name_in(&SHIFTS, (int)kind);
}

/* ---- Config and shift --------------------------------------------------------------------- */

osp_flow_config osp_flow_config_osp_next(void) {
  return (osp_flow_config){.distribution = OSP_FLOW_LOGIT_NORMAL,
                           .logit_mean = 0.0,
                           .logit_std = 1.0,
                           .shift_kind = OSP_FLOW_SHIFT_RESOLUTION};
}

osp_status osp_flow_config_check(const osp_flow_config *config) {
  if (!config) return osp_fail(OSP_ERR_ARGUMENT, "flow matching: config: missing (NULL)");
  OSP_TRY(check_known(&DISTRIBUTIONS, (int)config->distribution));
  OSP_TRY(check_known(&SHIFTS, (int)config->shift_kind));
  if (config->distribution == OSP_FLOW_LOGIT_NORMAL && !isfinite(config->logit_mean))
    return osp_fail(OSP_ERR_ARGUMENT,
                    "flow matching (logit_normal): logit_mean: expected a finite value, found %g",
                    config->logit_mean);
  if (config->distribution == OSP_FLOW_LOGIT_NORMAL &&
      !(config->logit_std >= 0.0 && isfinite(config->logit_std)))
    return osp_fail(OSP_ERR_ARGUMENT,
                    "flow matching (logit_normal): logit_std: expected a finite value >= 0, "
                    "found %g",
                    config->logit_std);
  if (config->shift_kind == OSP_FLOW_SHIFT_FIXED &&
      !(config->shift > 0.0 && isfinite(config->shift)))
    return osp_fail(OSP_ERR_ARGUMENT,
                    "flow matching (fixed shift): shift: expected a finite value > 0, found %g",
                    config->shift);
  return OSP_OK;
}

osp_status osp_flow_resolution_shift(int64_t latent_height, int64_t latent_width, double *shift) {
  if (latent_height < 1 || latent_width < 1)
    return osp_fail(OSP_ERR_ARGUMENT,
                    "flow matching (resolution shift): latent size: expected height and width "
                    ">= 1, found %lld x %lld",
                    (long long)latent_height, (long long)latent_width);
  const double tokens = (double)latent_height * (double)latent_width / TOKENS_PER_PATCH;
  const double mu =
      SHIFT_BASE_MU + SHIFT_MU_RANGE * (tokens - SHIFT_BASE_TOKENS) / SHIFT_TOKEN_RANGE;
  *shift = exp(mu);
  return OSP_OK;
}

osp_status osp_flow_shift_of(const osp_flow_config *config, int64_t latent_height,
                             int64_t latent_width, double *shift) {
  OSP_TRY(osp_flow_config_check(config));
  if (config->shift_kind == OSP_FLOW_SHIFT_RESOLUTION)
    return osp_flow_resolution_shift(latent_height, latent_width, shift);
  *shift = config->shift_kind == OSP_FLOW_SHIFT_FIXED ? config->shift : 1.0;
  return OSP_OK;
}

double osp_flow_shift_sigma(double sigma, double shift) {
  return shift * sigma / (1.0 + (shift - 1.0) * sigma);
}

/* ---- Operands ----------------------------------------------------------------------------- */

/* "op: name", the `what` of core/tensor.h's checks. */
typedef struct {
  char text[96];
} operand_name;

static operand_name name_of(const char *op, const char *name) {
  operand_name what;
  snprintf(what.text, sizeof what.text, "%s: %s", op, name);
  return what;
}

/* A contiguous float32 CPU tensor of at least one dimension, none empty, with `ndim` dimensions
 * matching `shape` (−1: any size) where shape is given. A CUDA tensor is refused first. */
static osp_status check_operand(const char *op, const char *name, const osp_tensor *t, int ndim,
                                const int64_t *shape) {
  const operand_name what = name_of(op, name);
  if (!t) return osp_fail(OSP_ERR_ARGUMENT, "%s: missing (NULL)", what.text);
  if (t->device != OSP_CPU)
    return osp_fail(OSP_ERR_UNSUPPORTED,
                    "%s: expected a CPU tensor, found one on cuda (flow matching has no CUDA path "
                    "yet)",
                    what.text);
  OSP_TRY(osp_check_f32_cpu(what.text, t));
  char found[160];
  if (t->ndim < 1 || osp_tensor_numel(t) < 1)
    return osp_fail(OSP_ERR_SHAPE, "%s: expected at least one dimension and no empty one, found %s",
                    what.text, osp_shape_string(t, found, sizeof found));
  if (!osp_tensor_is_contiguous(t))
    return osp_fail(OSP_ERR_SHAPE, "%s: expected a contiguous tensor", what.text);
  return shape ? osp_check_shape(what.text, t, ndim, shape) : OSP_OK;
}

/* The byte ranges of two contiguous tensors overlap. */
static bool overlapping(const osp_tensor *a, const osp_tensor *b) {
  const uintptr_t a_begin = (uintptr_t)a->data, b_begin = (uintptr_t)b->data;
  return a_begin < b_begin + osp_tensor_bytes(b) && b_begin < a_begin + osp_tensor_bytes(a);
}

/* Output t shares no memory with `other`, unless in_place_ok and t is `other` itself (same data,
 * same shape: an element-wise op may write where it reads). */
static osp_status check_apart(const char *op, const char *name, const osp_tensor *t,
                              const char *other_name, const osp_tensor *other, bool in_place_ok) {
  if (in_place_ok && t->data == other->data && osp_tensor_same_shape(t, other)) return OSP_OK;
  if (!overlapping(t, other)) return OSP_OK;
  return osp_fail(OSP_ERR_ARGUMENT,
                  "%s: %s: expected memory apart from %s%s, found them overlapping", op, name,
                  other_name, in_place_ok ? " (or that tensor itself)" : "");
}

/* The key's step and samples g = first_sample .. first_sample + batch − 1 are in range. */
static osp_status check_key(const char *op, const osp_flow_key *key, int64_t batch) {
  if (!key) return osp_fail(OSP_ERR_ARGUMENT, "%s: key: missing (NULL)", op);
  if (key->step < 0 || key->step >= STEP_LIMIT)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: key: step: expected a value in [0, 2^31), found %lld",
                    op, (long long)key->step);
  if (key->first_sample < 0 || key->first_sample > SAMPLE_LIMIT - batch)
    return osp_fail(OSP_ERR_ARGUMENT,
                    "%s: key: first_sample: expected first_sample >= 0 and first_sample + %lld "
                    "samples <= 2^24, found %lld",
                    op, (long long)batch, (long long)key->first_sample);
  return OSP_OK;
}

/* ---- Draws -------------------------------------------------------------------------------- */

static osp_philox_key philox_key(uint64_t seed) {
  return (osp_philox_key){{(uint32_t)seed, (uint32_t)(seed >> 32)}};
}

/* The block of σ of sample g: counter {g low, g high, step, "SIGM"}. */
static osp_philox_ctr sigma_block(const osp_flow_key *key, int64_t g) {
  const osp_philox_ctr counter = {
      {(uint32_t)g, (uint32_t)((uint64_t)g >> 32), (uint32_t)key->step, SIGMA_TAG}};
  return osp_philox4x32_10(counter, philox_key(key->seed));
}

/* (k + ½)·2^-52 for the 52 bits k = high·2^20 + (low >> 12): uniform in (0, 1), exact in double,
 * from 2^-53 to 1 − 2^-53. */
static double open_uniform(uint32_t high, uint32_t low) {
  const uint64_t k = ((uint64_t)high << 20) | (low >> 12);
  return ((double)k + 0.5) * 0x1p-52;
}

/* σ of sample g, before the shift: u1, or sigmoid(m + d·z) with z = sqrt(−2 ln u1)·cos(2π·u2). */
static double draw_sigma(const osp_flow_config *config, const osp_flow_key *key, int64_t g) {
  const osp_philox_ctr bits = sigma_block(key, g);
  const double u1 = open_uniform(bits.v[0], bits.v[1]);
  if (config->distribution == OSP_FLOW_UNIFORM) return u1;
  const double u2 = open_uniform(bits.v[2], bits.v[3]);
  const double z = sqrt(-2.0 * log(u1)) * cos(2.0 * PI * u2);
  return 1.0 / (1.0 + exp(-(config->logit_mean + config->logit_std * z)));
}

/* σ′ of σ, rounded once to float, and its timestep 1000·σ′ in float32 (where wanted). */
static void store_shifted(double sigma, double shift, float *shifted, float *timestep) {
  *shifted = (float)osp_flow_shift_sigma(sigma, shift);
  if (timestep) *timestep = 1000.0f * *shifted;
}

/* sigma [B] and its outputs shifted [B] (sigma itself or apart) and timestep [B] (NULL, or apart
 * from both). */
static osp_status check_sigma_outputs(const char *op, const osp_tensor *sigma,
                                      const osp_tensor *shifted, const osp_tensor *timestep) {
  OSP_TRY(check_operand(op, "sigma", sigma, 1, (const int64_t[]){-1}));
  OSP_TRY(check_operand(op, "shifted", shifted, 1, sigma->shape));
  OSP_TRY(check_apart(op, "shifted", shifted, "sigma", sigma, true));
  if (!timestep) return OSP_OK;
  OSP_TRY(check_operand(op, "timestep", timestep, 1, sigma->shape));
  OSP_TRY(check_apart(op, "timestep", timestep, "sigma", sigma, false));
  return check_apart(op, "timestep", timestep, "shifted", shifted, false);
}

osp_status osp_flow_shift_sigmas(const osp_tensor *sigma, double shift, osp_tensor *shifted,
                                 osp_tensor *timestep) {
  const char *op = "osp_flow_shift_sigmas";
  OSP_TRY(check_sigma_outputs(op, sigma, shifted, timestep));
  if (!(shift > 0.0 && isfinite(shift)))
    return osp_fail(OSP_ERR_ARGUMENT, "%s: shift: expected a finite value > 0, found %g", op,
                    shift);
  const float *sigmas = sigma->data;
  for (int64_t b = 0; b < sigma->shape[0]; b++)
    if (!(sigmas[b] >= 0.0f && sigmas[b] <= 1.0f))
      return osp_fail(OSP_ERR_ARGUMENT, "%s: sigma[%lld]: expected a value in [0, 1], found %g",
                      op, (long long)b, (double)sigmas[b]);
  float *timesteps = timestep ? timestep->data : NULL;
  for (int64_t b = 0; b < sigma->shape[0]; b++)
    store_shifted(sigmas[b], shift, (float *)shifted->data + b, timesteps ? timesteps + b : NULL);
  return OSP_OK;
}

osp_status osp_flow_draw_sigmas(const osp_flow_config *config, const osp_flow_key *key,
                                int64_t latent_height, int64_t latent_width, osp_tensor *sigma,
                                osp_tensor *timestep) {
  const char *op = "osp_flow_draw_sigmas";
  double shift = 1.0;
  OSP_TRY(osp_flow_shift_of(config, latent_height, latent_width, &shift));
  OSP_TRY(check_sigma_outputs(op, sigma, sigma, timestep));
  const int64_t batch = sigma->shape[0];
  OSP_TRY(check_key(op, key, batch));
  float *sigmas = sigma->data, *timesteps = timestep ? timestep->data : NULL;
  for (int64_t b = 0; b < batch; b++)
    store_shifted(draw_sigma(config, key, key->first_sample + b), shift, sigmas + b,
                  timesteps ? timesteps + b : NULL);
  return OSP_OK;
}

osp_status osp_flow_draw_noise(const osp_flow_key *key, osp_tensor *noise) {
  const char *op = "osp_flow_draw_noise";
  OSP_TRY(check_operand(op, "noise", noise, 0, NULL));
  const int64_t batch = noise->shape[0], per_sample = osp_tensor_numel(noise) / batch;
  OSP_TRY(check_key(op, key, batch));
  if (per_sample >= INT64_C(1) << SAMPLE_OFFSET_BITS)
    return osp_fail(OSP_ERR_ARGUMENT,
                    "%s: noise: expected fewer than 2^%d elements per sample, found %lld", op,
                    SAMPLE_OFFSET_BITS, (long long)per_sample);
  float *data = noise->data;
  for (int64_t b = 0; b < batch; b++) {
    const uint64_t g = (uint64_t)(key->first_sample + b);
    osp_randn(key->seed, (uint32_t)key->step, g << SAMPLE_OFFSET_BITS, data + b * per_sample,
              (size_t)per_sample);
  }
  return OSP_OK;
}

/* ---- Noisy input, target and loss ---------------------------------------------------------- */

/* x0, noise, x_t, target: one shape [B, ...]; sigma [B]; each output apart from the other and
 * from every input, except an input of its own shape that it replaces in place. */
static osp_status check_noisy_input(const char *op, const osp_tensor *x0, const osp_tensor *noise,
                                    const osp_tensor *sigma, const osp_tensor *x_t,
                                    const osp_tensor *target) {
  OSP_TRY(check_operand(op, "x0", x0, 0, NULL));
  OSP_TRY(check_operand(op, "noise", noise, x0->ndim, x0->shape));
  OSP_TRY(check_operand(op, "sigma", sigma, 1, x0->shape));
  OSP_TRY(check_operand(op, "x_t", x_t, x0->ndim, x0->shape));
  OSP_TRY(check_operand(op, "target", target, x0->ndim, x0->shape));
  OSP_TRY(check_apart(op, "target", target, "x_t", x_t, false));
  const char *input_names[] = {"x0", "noise", "sigma"};
  const osp_tensor *inputs[] = {x0, noise, sigma};
  for (int i = 0; i < 3; i++) {
    const bool in_place_ok = inputs[i] != sigma;
    OSP_TRY(check_apart(op, "x_t", x_t, input_names[i], inputs[i], in_place_ok));
    OSP_TRY(check_apart(op, "target", target, input_names[i], inputs[i], in_place_ok));
  }
  return OSP_OK;
}

/* Element i of sample b = i / per_sample, s = sigma[b]: x_t = (1 − s)·x0 + s·ε, target = ε − x0
 * (both inputs read before either output is written: in place is fine). */
static void noisy_input(const float *x0, const float *noise, const float *sigma, int64_t n,
                        int64_t per_sample, float *x_t, float *target) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) {
    const float s = sigma[i / per_sample], x = x0[i], e = noise[i];
    x_t[i] = (1.0f - s) * x + s * e;
    target[i] = e - x;
  }
}

osp_status osp_flow_noisy_input(const osp_tensor *x0, const osp_tensor *noise,
                                const osp_tensor *sigma, osp_tensor *x_t, osp_tensor *target) {
  OSP_TRY(check_noisy_input("osp_flow_noisy_input", x0, noise, sigma, x_t, target));
  const int64_t n = osp_tensor_numel(x0);
  noisy_input(x0->data, noise->data, sigma->data, n, n / x0->shape[0], x_t->data, target->data);
  return OSP_OK;
}

/* diff ← v − target (diff may be either input itself). */
static void difference(const float *v, const float *target, int64_t n, float *diff) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) diff[i] = v[i] - target[i];
}

osp_status osp_flow_loss(const osp_tensor *v, const osp_tensor *target, double *loss,
                         osp_tensor *grad_v) {
  const char *op = "osp_flow_loss";
  OSP_TRY(check_operand(op, "v", v, 0, NULL));
  OSP_TRY(check_operand(op, "target", target, v->ndim, v->shape));
  OSP_TRY(check_operand(op, "grad_v", grad_v, v->ndim, v->shape));
  OSP_TRY(check_apart(op, "grad_v", grad_v, "v", v, true));
  OSP_TRY(check_apart(op, "grad_v", grad_v, "target", target, true));
  if (!loss) return osp_fail(OSP_ERR_ARGUMENT, "%s: loss: missing (NULL)", op);

  /* grad_v holds v − target; Σ of its squares (in double, fixed order) / n is the loss; then
   * grad_v·(2/n) is its gradient. */
  const int64_t n = osp_tensor_numel(v);
  difference(v->data, target->data, n, grad_v->data);
  double squares = 0.0;
  OSP_TRY(osp_sum_of_squares(grad_v, &squares));
  *loss = squares / (double)n;
  return osp_scale_in_place(grad_v, (float)(2.0 / (double)n));
}
