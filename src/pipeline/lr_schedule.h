/* The learning rate of each training step: a linear warm-up, then constant or a cosine decay.
 *
 * For AdamW step t = 1, 2, ... (the t of osp_adamw_config), with W = warmup_steps, T = total_steps:
 *   t ≤ W:              lr · t/W                         (step 1 gets lr/W, step W the full lr)
 *   t > W, constant:    lr
 *   t > W, cosine:      min_lr + (lr − min_lr) · ½(1 + cos(π·p)),  p = min(1, (t − W)/(T − W))
 *                       (the full lr at t = W, min_lr from t = T on)
 * This is the lr torch's LambdaLR(optimizer, λ) gives the t-th optimizer.step() (scheduler.step()
 * after each) with λ(e) = lr(e + 1)/lr, its epoch e counting from 0; after the warm-up the cosine
 * is CosineAnnealingLR's with T_max = T − W and eta_min = min_lr. */
#ifndef OSP_PIPELINE_LR_SCHEDULE_H
#define OSP_PIPELINE_LR_SCHEDULE_H

#include <stdint.h>

#include "osp.h"

typedef enum { OSP_LR_CONSTANT, OSP_LR_COSINE } osp_lr_kind;

typedef struct {
  osp_lr_kind kind;
  double lr;             /* the peak: finite, ≥ 0 */
  double min_lr;         /* cosine's floor, in [0, lr]; unused by constant */
  int64_t warmup_steps;  /* W ≥ 0; 0: no warm-up */
  int64_t total_steps;   /* cosine: T > W, where the decay reaches min_lr; unused by constant */
} osp_lr_schedule;

/* "constant" or "cosine" → its kind; any other name is an error naming the known ones. */
osp_status osp_lr_kind_parse(const char *name, osp_lr_kind *kind);
const char *osp_lr_kind_name(osp_lr_kind kind);

/* The schedule's parameters make sense for its kind (each error names the parameter, what was
 * expected and what was found). */
osp_status osp_lr_schedule_check(const osp_lr_schedule *schedule);

/* *lr = the learning rate of step t ≥ 1 (formula above); checks the schedule and t first. */
osp_status osp_lr_at(const osp_lr_schedule *schedule, int64_t step, double *lr);

#endif
