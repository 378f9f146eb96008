#include "pipeline/lr_schedule.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/status.h"

static const double PI = 3.14159265358979323846;

static const char *const KIND_NAMES[] = {[OSP_LR_CONSTANT] = "constant",
                                         [OSP_LR_COSINE] = "cosine"};
enum { KIND_COUNT = sizeof KIND_NAMES / sizeof KIND_NAMES[0] };

static bool known_kind(osp_lr_kind kind) { return (int)kind >= 0 && (int)kind < KIND_COUNT; }

osp_status osp_lr_kind_parse(const char *name, osp_lr_kind *kind) {
  for (int k = 0; name && k < KIND_COUNT; k++) {
    if (strcmp(name, KIND_NAMES[k]) == 0) {
      *kind = (osp_lr_kind)k;
      return OSP_OK;
    }
  }
  return osp_fail(OSP_ERR_ARGUMENT, "lr schedule: kind: expected constant or cosine, found '%s'",
                  name ? name : "(null)");
}

const char *osp_lr_kind_name(osp_lr_kind kind) {
  return known_kind(kind) ? KIND_NAMES[kind] : "unknown";
}

/* An OSP_ERR_ARGUMENT whose message reads "lr schedule (<kind>): " and the formatted rest. */
__attribute__((format(printf, 2, 3))) static osp_status bad_schedule(
    const osp_lr_schedule *schedule, const char *fmt, ...) {
  char what[256];
  va_list args;
  va_start(args, fmt);
  vsnprintf(what, sizeof what, fmt, args);
  va_end(args);
  return osp_fail(OSP_ERR_ARGUMENT, "lr schedule (%s): %s", osp_lr_kind_name(schedule->kind), what);
}

osp_status osp_lr_schedule_check(const osp_lr_schedule *schedule) {
  if (!schedule) return osp_fail(OSP_ERR_ARGUMENT, "lr schedule: missing (NULL)");
  if (!known_kind(schedule->kind))
    return osp_fail(OSP_ERR_ARGUMENT, "lr schedule: kind: expected constant or cosine, found %d",
                    (int)schedule->kind);
  if (!(schedule->lr >= 0.0 && isfinite(schedule->lr)))
    return bad_schedule(schedule, "lr: expected a finite value >= 0, found %g", schedule->lr);
  if (schedule->warmup_steps < 0)
    return bad_schedule(schedule, "warmup_steps: expected >= 0, found %lld",
                        (long long)schedule->warmup_steps);
  if (schedule->kind == OSP_LR_CONSTANT) return OSP_OK;
  if (!(schedule->min_lr >= 0.0 && schedule->min_lr <= schedule->lr))
    return bad_schedule(schedule, "min_lr: expected a value in [0, lr = %g], found %g",
                        schedule->lr, schedule->min_lr);
  if (schedule->total_steps <= schedule->warmup_steps)
    return bad_schedule(schedule, "total_steps: expected more than warmup_steps = %lld, found %lld",
                        (long long)schedule->warmup_steps, (long long)schedule->total_steps);
  return OSP_OK;
}

/* ½(1 + cos(π·p)) at p = min(1, (t − W)/(T − W)) for t > W: from 1 down to 0. */
static double cosine_factor(const osp_lr_schedule *schedule, int64_t step) {
  const double progress = fmin(1.0, (double)(step - schedule->warmup_steps) /
                                        (double)(schedule->total_steps - schedule->warmup_steps));
  return 0.5 * (1.0 + cos(PI * progress));
}

osp_status osp_lr_at(const osp_lr_schedule *schedule, int64_t step, double *lr) {
  OSP_TRY(osp_lr_schedule_check(schedule));
  if (step < 1)
    return bad_schedule(schedule, "step: expected t >= 1, found %lld", (long long)step);
  if (step <= schedule->warmup_steps)
    *lr = schedule->lr * ((double)step / (double)schedule->warmup_steps);
  else if (schedule->kind == OSP_LR_CONSTANT)
    *lr = schedule->lr;
  else
    *lr = schedule->min_lr + (schedule->lr - schedule->min_lr) * cosine_factor(schedule, step);
  return OSP_OK;
}
