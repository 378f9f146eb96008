/* Text to video: prompt → text encoder → sampler loop over the DiT (classifier-free guidance with
 * the conditional and unconditional passes batched into one forward) → decoder → frames.
 *
 * A model is a folder with a manifest, model.json:
 *   {"dit":      {"config": "config.json", "weights": "dit.safetensors"},
 *    "text":     {"kind": "words", "vocab": "vocab.txt", "rows": 16, "seed": 0},
 *    "video":    {"space": "pixels", "frames": 8, "height": 32, "width": 32, "fps": 8},
 *    "sampling": {"sampler": "unipc", "steps": 25, "shift": 3.0, "guidance": 5.0}}
 * (paths relative to the folder). "words" is the frozen word encoder (model/word_encoder.h) and
 * "pixels" the pixel space (model/pixels.h) of the built-in shapes model; umT5 and the Wan-VAE,
 * for the published Wan2.1 models, are issue 11's. The noise of a seed is osp_randn(seed, stream
 * "NOIS"), the same numbers on every device. */
#ifndef OSP_PIPELINE_T2V_H
#define OSP_PIPELINE_T2V_H

#include <stdint.h>

#include "core/frames.h"
#include "model/dit.h"
#include "model/word_encoder.h"
#include "sample/sampler.h"

/* How to sample: the manifest's defaults, each overridable. */
typedef struct {
  osp_sampler_kind sampler;
  int steps;
  double shift, guidance; /* guidance 1: no unconditional pass */
  int64_t frames, height, width;
  double fps;
} osp_t2v_settings;

typedef struct {
  char dir[4096];
  osp_dit dit;
  osp_word_encoder text;
  osp_t2v_settings defaults;
  osp_dit_parallel parallel; /* how its forwards spread over ranks (all zero: this rank alone) */
} osp_t2v_model;

/* Loads the model folder's manifest, DiT (on `device`, with `schedule` overriding the config's
 * when not NULL) and text encoder. Errors name the file and the key. */
osp_status osp_t2v_model_load(const char *dir, osp_device device, const char *schedule, osp_t2v_model *out);
void osp_t2v_model_free(osp_t2v_model *model);

/* Hears of each finished sampling step (i from 1 to steps) and the seconds since the start. */
typedef void (*osp_t2v_progress)(int step, int steps, double seconds, void *user);

/* What a generation spent. */
typedef struct {
  double text_seconds, sampling_seconds, decode_seconds, total_seconds;
} osp_t2v_timing;

/* Generates the video of `prompt` (negative_prompt: the unconditional pass's; "" is the empty
 * prompt) into *video (allocated here). The sizes must be multiples of the model's patch
 * (and fit its sparse schedule); every check runs before the first step. */
osp_status osp_t2v_generate(const osp_t2v_model *model, const char *prompt, const char *negative_prompt,
                            const osp_t2v_settings *settings, uint64_t seed, osp_t2v_progress progress,
                            void *user, osp_frames *video, osp_t2v_timing *timing);

#endif
