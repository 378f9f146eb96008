/* Text to video: prompt → text encoder → sampler loop over the DiT (classifier-free guidance with
 * the conditional and unconditional passes batched into one forward) → decoder → frames.
 *
 * A model is a folder (model_dir.h): diffusers' WanPipeline layout, or OSP's manifest, model.json:
 *   {"dit":      {"config": "config.json", "weights": "dit.safetensors"},
 *    "text":     {"kind": "words", "vocab": "vocab.txt", "rows": 16, "seed": 0},
 *    "video":    {"space": "pixels", "frames": 8, "height": 32, "width": 32, "fps": 8},
 *    "sampling": {"sampler": "unipc", "steps": 25, "shift": 3.0, "guidance": 5.0}}
 * (paths relative to the folder). "words" is the frozen word encoder (model/word_encoder.h) and
 * "pixels" the pixel space (model/pixels.h) of the built-in shapes model; diffusers' layout
 * brings umT5 and the Wan-VAE (t2v_text.h, t2v_video.h). The noise of a seed is osp_randn(seed,
 * stream "NOIS"), the same numbers on every device; a request may bring its own. */
#ifndef OSP_PIPELINE_T2V_H
#define OSP_PIPELINE_T2V_H

#include <stdint.h>

#include "core/frames.h"
#include "model/dit.h"
#include "model/lora.h"
#include "pipeline/model_dir.h"
#include "pipeline/t2v_text.h"
#include "pipeline/t2v_video.h"
#include "sample/sampler.h"

typedef struct {
  osp_model_dir files;
  osp_dit dit;
  osp_t2v_text text;
  osp_t2v_video video;
  osp_t2v_settings defaults;
  osp_dit_parallel parallel; /* how its forwards spread over ranks (all zero: this rank alone) */
} osp_t2v_model;

/* What the command line overrides in the DiT's config (NULL: the config's own). */
typedef struct {
  const char *schedule; /* osp_config_set_schedule's spec */
  const char *quant;    /* osp_config_set_quant's: "hif8" or "none" */
  const osp_lora_spec *loras; /* merged into the DiT's weights on the CPU, in order, before they */
  int lora_count;             /* go to the device (model/lora.h) */
} osp_t2v_overrides;

/* Loads the model folder's DiT (on `device`, its config with the overrides), text side and video
 * side. Errors name the file and the key. */
osp_status osp_t2v_model_load(const char *dir, osp_device device, const osp_t2v_overrides *overrides,
                              osp_t2v_model *out);
void osp_t2v_model_free(osp_t2v_model *model);

/* Hears of each finished sampling step (i from 1 to steps) and the seconds since the start. */
typedef void (*osp_t2v_progress)(int step, int steps, double seconds, void *user);
/* Hears of each decoded latent frame (a VAE's; pixel space has none to report). */
typedef void (*osp_t2v_decode_progress)(int done, int total, void *user);

/* One generation. */
typedef struct {
  const char *prompt;
  const char *negative_prompt; /* the unconditional pass's; NULL or "" is the empty prompt */
  osp_t2v_settings settings;
  uint64_t seed;
  const osp_tensor *noise; /* NULL: osp_randn(seed, "NOIS"); else the start, f32 CPU of the sample's shape */
  osp_t2v_progress progress;
  osp_t2v_decode_progress decode_progress;
  void *user; /* for both */
} osp_t2v_request;

/* What a generation spent. */
typedef struct {
  double text_seconds, sampling_seconds, decode_seconds, total_seconds;
} osp_t2v_timing;

/* What a generation made: the frames and the final sample (the latents before decoding). */
typedef struct {
  osp_frames video;
  osp_tensor latents; /* f32 CPU [1, C, f, h, w], owned */
  osp_t2v_timing timing;
} osp_t2v_result;

/* Generates the video of the request into *result (free it with osp_t2v_result_free, also after
 * a failure). The sizes must suit the model (t2v_video.h) and its sparse schedule; every check
 * runs before the first step. */
osp_status osp_t2v_generate(const osp_t2v_model *model, const osp_t2v_request *request, osp_t2v_result *result);
void osp_t2v_result_free(osp_t2v_result *result);

#endif
