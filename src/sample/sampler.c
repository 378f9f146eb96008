/* The sampler's life: names, config checks, creation (every allocation), the step's checks and
 * its dispatch to euler.c or unipc.c. */
#include "sample/sampler.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "sample/sampler_internal.h"

enum { UNIPC_DEFAULT_ORDER = 2, UNIPC_MAX_ORDER = 2 };
static const int64_t MAX_ELEMENTS = INT64_C(1) << 40; /* keeps every byte count far from overflow */

static const char *const KIND_NAMES[] = {[OSP_SAMPLER_EULER] = "euler",
                                         [OSP_SAMPLER_UNIPC] = "unipc"};
enum { KIND_COUNT = sizeof KIND_NAMES / sizeof KIND_NAMES[0] };

osp_status osp_sampler_kind_parse(const char *name, osp_sampler_kind *kind) {
  for (int k = 0; name && k < KIND_COUNT; k++) {
    if (strcmp(name, KIND_NAMES[k]) == 0) {
      *kind = (osp_sampler_kind)k;
      return OSP_OK;
    }
  }
  return osp_fail(OSP_ERR_ARGUMENT, "sampler: kind: expected euler or unipc, found '%s'",
                  name ? name : "(null)");
}

const char *osp_sampler_kind_name(osp_sampler_kind kind) {
  return (int)kind >= 0 && (int)kind < KIND_COUNT ? KIND_NAMES[kind] : "unknown";
}

osp_status osp_sampler_config_check(const osp_sampler_config *config) {
  if (!config) return osp_fail(OSP_ERR_ARGUMENT, "sampler config: missing (NULL)");
  if ((int)config->kind < 0 || (int)config->kind >= KIND_COUNT)
    return osp_fail(OSP_ERR_ARGUMENT, "sampler config: kind: expected euler or unipc, found %d",
                    (int)config->kind);
  if (config->steps < 1 || config->steps > OSP_SAMPLER_MAX_STEPS)
    return osp_fail(OSP_ERR_ARGUMENT, "sampler config: steps: expected 1..%d, found %d",
                    OSP_SAMPLER_MAX_STEPS, config->steps);
  if (!(config->shift > 0.0 && isfinite(config->shift)))
    return osp_fail(OSP_ERR_ARGUMENT, "sampler config: shift: expected a finite value > 0, found %g",
                    config->shift);
  if (config->kind == OSP_SAMPLER_UNIPC && (config->order < 0 || config->order > UNIPC_MAX_ORDER))
    return osp_fail(OSP_ERR_ARGUMENT,
                    "sampler config (unipc): order: expected 1 or 2 (0: the default, 2), found %d",
                    config->order);
  return OSP_OK;
}

/* *numel of a sample shape: 1..OSP_MAX_DIMS sizes, each ≥ 1, at most MAX_ELEMENTS in all. */
static osp_status sample_numel(int ndim, const int64_t *shape, int64_t *numel) {
  if (ndim < 1 || ndim > OSP_MAX_DIMS || !shape)
    return osp_fail(OSP_ERR_SHAPE,
                    "sampler create: sample shape: expected 1..%d dimensions, found %d%s",
                    OSP_MAX_DIMS, ndim, shape ? "" : " (shape NULL)");
  *numel = 1;
  for (int k = 0; k < ndim; k++) {
    if (shape[k] < 1 || shape[k] > MAX_ELEMENTS / *numel) {
      const osp_tensor t = osp_tensor_make(NULL, OSP_F32, OSP_CPU, ndim, shape);
      char found[160];
      return osp_fail(OSP_ERR_SHAPE,
                      "sampler create: sample shape: expected sizes >= 1 and at most 2^40 "
                      "elements, found %s",
                      osp_shape_string(&t, found, sizeof found));
    }
    *numel *= shape[k];
  }
  return OSP_OK;
}

/* *out ← count zeroed elements of `size` bytes, or an error naming what they are for. */
static osp_status allocate(size_t count, size_t size, const char *what, void **out) {
  *out = calloc(count, size);
  if (!*out)
    return osp_fail(OSP_ERR_MEMORY, "sampler create: %s: cannot allocate %zu bytes", what,
                    count * size);
  return OSP_OK;
}

/* The schedule, and for UniPC its λ and history. */
static osp_status allocate_state(osp_sampler *s) {
  const size_t steps = (size_t)s->config.steps, numel = (size_t)s->numel;
  OSP_TRY(allocate(steps + 1, sizeof(float), "sigmas", (void **)&s->sigmas));
  OSP_TRY(allocate(steps, sizeof(double), "timesteps", (void **)&s->timesteps));
  if (s->config.kind == OSP_SAMPLER_EULER) {
    osp_sampler_schedule_euler(s->config.shift, s->config.steps, s->sigmas, s->timesteps);
    return OSP_OK;
  }
  OSP_TRY(allocate(steps + 1, sizeof(float), "lambdas", (void **)&s->lambdas));
  OSP_TRY(allocate(numel, sizeof(float), "UniPC history (x0)", (void **)&s->x0_prev));
  OSP_TRY(allocate(numel, sizeof(float), "UniPC history (x0)", (void **)&s->x0_prev2));
  OSP_TRY(allocate(numel, sizeof(float), "UniPC history (sample)", (void **)&s->last_sample));
  osp_sampler_schedule_unipc(s->config.shift, s->config.steps, s->sigmas, s->timesteps);
  osp_sampler_unipc_lambdas(s->sigmas, s->config.steps, s->lambdas);
  return OSP_OK;
}

osp_status osp_sampler_create(const osp_sampler_config *config, int ndim,
                              const int64_t *sample_shape, osp_sampler **out) {
  if (!out) return osp_fail(OSP_ERR_ARGUMENT, "sampler create: out: missing (NULL)");
  *out = NULL;
  OSP_TRY(osp_sampler_config_check(config));
  int64_t numel = 0;
  OSP_TRY(sample_numel(ndim, sample_shape, &numel));
  osp_sampler *s = NULL;
  OSP_TRY(allocate(1, sizeof *s, "sampler", (void **)&s));
  s->config = *config;
  if (s->config.kind == OSP_SAMPLER_UNIPC && s->config.order == 0)
    s->config.order = UNIPC_DEFAULT_ORDER;
  s->ndim = ndim;
  memcpy(s->shape, sample_shape, (size_t)ndim * sizeof *sample_shape);
  s->numel = numel;
  const osp_status status = allocate_state(s);
  if (status != OSP_OK) {
    osp_sampler_free(s);
    return status;
  }
  *out = s;
  return OSP_OK;
}

void osp_sampler_free(osp_sampler *sampler) {
  if (!sampler) return;
  free(sampler->sigmas);
  free(sampler->timesteps);
  free(sampler->lambdas);
  free(sampler->x0_prev);
  free(sampler->x0_prev2);
  free(sampler->last_sample);
  free(sampler);
}

int osp_sampler_steps(const osp_sampler *sampler) { return sampler ? sampler->config.steps : 0; }

double osp_sampler_timestep(const osp_sampler *sampler, int i) {
  if (!sampler || i < 0 || i >= sampler->config.steps) return NAN;
  return sampler->timesteps[i];
}

/* A contiguous float32 CPU tensor of the sampler's sample shape. */
static osp_status check_operand(const osp_sampler *s, const char *what, const osp_tensor *t) {
  if (!t) return osp_fail(OSP_ERR_ARGUMENT, "%s: missing (NULL)", what);
  OSP_TRY(osp_check_f32_cpu(what, t));
  OSP_TRY(osp_check_shape(what, t, s->ndim, s->shape));
  if (!osp_tensor_is_contiguous(t))
    return osp_fail(OSP_ERR_SHAPE, "%s: expected a contiguous tensor", what);
  return OSP_OK;
}

osp_status osp_sampler_step(osp_sampler *sampler, int i, const osp_tensor *velocity,
                            osp_tensor *sample) {
  if (!sampler) return osp_fail(OSP_ERR_ARGUMENT, "sampler step: sampler: missing (NULL)");
  const int steps = sampler->config.steps;
  if (i < 0 || i >= steps)
    return osp_fail(OSP_ERR_ARGUMENT, "sampler step: step index: expected 0..%d, found %d",
                    steps - 1, i);
  const bool run_over = sampler->next_step == 0 || sampler->next_step == steps;
  if (i != 0 && run_over)
    return osp_fail(OSP_ERR_ARGUMENT, "sampler step: step index: expected 0 (a new run), found %d",
                    i);
  if (i != 0 && i != sampler->next_step)
    return osp_fail(OSP_ERR_ARGUMENT,
                    "sampler step: step index: expected %d (the next step) or 0 (a new run), "
                    "found %d",
                    sampler->next_step, i);
  OSP_TRY(check_operand(sampler, "sampler step: velocity", velocity));
  OSP_TRY(check_operand(sampler, "sampler step: sample", sample));
  if (sampler->config.kind == OSP_SAMPLER_EULER)
    osp_sampler_euler_step(sampler, i, velocity->data, sample->data);
  else
    osp_sampler_unipc_step(sampler, i, velocity->data, sample->data);
  sampler->next_step = i + 1;
  return OSP_OK;
}
