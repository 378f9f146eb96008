/* The training loop: flow matching on the DiT with AdamW (PAPER.md 4 and 9). Per step t:
 *   x0, context ← the next batch;  σ′, t ← drawn and shifted;  ε ← noise    (keyed by seed and t)
 *   x_t = (1 − σ′)·x0 + σ′·ε;  v = DiT(x_t, 1000σ′, context);  L = mean((v − (ε − x0))²)
 *   g = ∂L/∂θ (the hand-written backward), clipped by global norm;  θ ← AdamW(θ, g, lr(t))
 * and a checkpoint every `checkpoint_every` steps and at the end. Resuming from a checkpoint
 * gives the weights an uninterrupted run would have had, bit for bit (on the same device). */
#ifndef OSP_PIPELINE_TRAIN_H
#define OSP_PIPELINE_TRAIN_H

#include <stdbool.h>

#include "parallel/sequence_parallel.h"
#include "pipeline/train_config.h"

/* What a step did, for progress and the metrics log. */
typedef struct {
  int64_t step, steps;       /* the step just taken, of how many */
  double loss, lr, grad_norm; /* grad_norm before clipping */
  double seconds;            /* of this step */
  double tokens_per_second;  /* the DiT's tokens (after patchify) of the batch, per second */
  const char *checkpoint;    /* the folder written after this step, or NULL */
} osp_train_metrics;

typedef void (*osp_train_observer)(const osp_train_metrics *metrics, void *user);

/* Trains as the config says. resume: NULL (start afresh), "latest" (the newest checkpoint under
 * the output folder; afresh where there is none) or a checkpoint folder. `observe` (may be NULL)
 * hears of every step. */
osp_status osp_train(const osp_train_config *config, const char *resume, osp_train_observer observe,
                     void *user);

/* Training over the ranks of a sequence-parallel group (mpirun -np N osp train --sp ...): every
 * rank runs the same steps on the same data with its share of the tokens; the backward sums the
 * ranks' gradients, so every rank takes the same AdamW step. Only the rank that `writes` saves
 * checkpoints. */
typedef struct {
  osp_comm *sequence; /* NULL or one rank: alone */
  osp_sp_mode mode;
  bool writes;
} osp_train_ranks;

osp_status osp_train_over(const osp_train_config *config, const osp_train_ranks *ranks, const char *resume,
                          osp_train_observer observe, void *user);

#endif
