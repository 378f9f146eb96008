/* Training checkpoints: everything a run needs to go on as if it had never stopped.
 *
 *   <output>/step-<k>/weights.safetensors    the f32 master weights, under the DiT's own names
 *                                            (loadable by `osp dit --weights`)
 *   <output>/step-<k>/optimizer.safetensors  AdamW's moments: "m.<name>" and "v.<name>"
 *   <output>/step-<k>/ema.safetensors        the EMA of the weights, where the run keeps one
 *   <output>/step-<k>/state.json             {"step": k, "epoch": e, "index": i, "loss": L}
 *
 * The folder is written as <output>/.step-<k>.partial and renamed once every file is complete, so
 * a crash (kill -9 included) leaves either the whole checkpoint or none of it: the previous one
 * stays the newest complete checkpoint. The randomness of a step is keyed by (seed, step), so the
 * step and the data position are all the state the random draws need. */
#ifndef OSP_PIPELINE_CHECKPOINT_H
#define OSP_PIPELINE_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "model/dit.h"
#include "pipeline/dataset.h"

typedef struct {
  int64_t step;                 /* optimizer steps taken */
  osp_dataset_position position; /* where the next batch starts */
  double loss;                  /* of the last step, for the record */
} osp_train_state;

/* The model's weights, AdamW's moments and the weights' EMA (NULL: none), all f32 on the host,
 * of one shape. */
typedef struct {
  osp_dit *weights, *m, *v, *ema;
} osp_train_tensors;

/* Writes step-<state.step> under `output` (made if missing); *path gets the folder. */
osp_status osp_checkpoint_save(const char *output, const osp_train_tensors *tensors,
                               const osp_train_state *state, char *path, size_t path_size);

/* Reads a checkpoint folder into tensors of the same model (every tensor checked by name and
 * shape; a missing or misshapen one is an error naming the file and tensor). */
osp_status osp_checkpoint_load(const char *path, osp_train_tensors *tensors, osp_train_state *state);

/* The folder of the newest complete checkpoint under `output`; *path = "" where there is none. */
osp_status osp_checkpoint_latest(const char *output, char *path, size_t path_size);

#endif
