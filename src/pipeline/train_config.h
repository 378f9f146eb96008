/* A training run's settings, read from train.json (docs/training.md lists every key):
 *
 *   {"model": {"preset": "wan2.1-t2v-1.3b"} | {"config": "C.json"}, "weights": "W.safetensors",
 *    "schedule": "dual_end", "sparse_ratio": 2, "random_weights_seed": 0,
 *    "text": {"vocab": "vocab.txt", "rows": 16, "seed": 0}},
 *    "data": {"dir": "shards/"} | {"synthetic": {"samples": 4, "frames": 1, "height": 8, "width": 8,
 *                                                 "text_rows": 8}}
 *            | {"shapes": {"samples": 16777216, "frames": 8, "height": 32, "width": 32,
 *                          "text_dropout": 0.1}},
 *    "batch_size": 1, "steps": 100, "seed": 0, "device": "cpu", "output": "runs/first",
 *    "optimizer": {"lr": 1e-4, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0,
 *                  "clip_grad_norm": 1.0},
 *    "lr_schedule": {"kind": "constant", "warmup_steps": 0, "min_lr": 0},
 *    "timesteps": {"distribution": "logit_normal", "logit_mean": 0, "logit_std": 1,
 *                  "shift": "resolution" | 3.0 | "none"},
 *    "checkpoint_every": 50, "activation_checkpointing": false, "ema_decay": 0}
 *
 * Every key but "model" and "data" has a default; an unknown key is an error (a typo must not
 * train with a default silently). Relative paths are relative to the config file's folder. */
#ifndef OSP_PIPELINE_TRAIN_CONFIG_H
#define OSP_PIPELINE_TRAIN_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "core/tensor.h"
#include "ops/optim.h"
#include "pipeline/flow_matching.h"
#include "pipeline/lr_schedule.h"

enum { OSP_PATH_BYTES = 4096 };

typedef struct {
  /* model */
  osp_model_config model;
  char weights[OSP_PATH_BYTES];   /* empty: random weights from random_weights_seed */
  uint64_t random_weights_seed;
  /* the word encoder of a closed-vocabulary model (model/word_encoder.h; vocab empty: none) */
  char vocab[OSP_PATH_BYTES];
  int64_t text_rows;
  uint64_t text_seed;
  /* data: a folder of shards, synthetic samples (synthetic_samples > 0) or the world of shapes
   * (shapes_samples > 0, pipeline/shapes_data.h) */
  char data_dir[OSP_PATH_BYTES];
  int64_t synthetic_samples, synthetic_shape[4]; /* frames, height, width, text_rows */
  int64_t shapes_samples, shapes_shape[3];       /* frames, height, width */
  double text_dropout;
  /* the run */
  int64_t batch_size, steps, checkpoint_every;
  uint64_t seed;
  osp_device device;
  char output[OSP_PATH_BYTES];
  bool activation_checkpointing;
  /* optimisation */
  osp_adamw_config adamw;   /* lr is the schedule's; step is set per step */
  double clip_grad_norm;    /* 0: no clipping */
  double ema_decay;         /* 0: no EMA of the weights; else ema ← ema.lerp(θ, 1 − decay) per step */
  osp_lr_schedule lr;
  osp_flow_config flow;     /* how σ is drawn and shifted */
} osp_train_config;

/* Reads and checks a train.json; messages name the file and the key. */
osp_status osp_train_config_load(const char *path, osp_train_config *config);

#endif
