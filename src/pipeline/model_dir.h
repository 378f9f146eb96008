/* A model folder, in the layouts OSP reads, described before anything is loaded: where each
 * component's config and weights are, and the model's sampling defaults.
 *
 *   manifest   OSP's own: model.json (keys in t2v.h), the built-in shapes model's layout.
 *   diffusers  model_index.json of a WanPipeline, with transformer/ (WanTransformer3DModel),
 *              text_encoder/ (UMT5EncoderModel), tokenizer/, vae/ (AutoencoderKLWan) and
 *              scheduler/ (UniPCMultistepScheduler or FlowMatchEulerDiscreteScheduler); weights as
 *              one safetensors file or shards with their index JSON. The layout of the
 *              Wan-AI/Wan2.1-T2V-*-Diffusers repositories.
 *   original   the Wan-AI/Wan2.1-T2V-* release: config.json ("WanModel", model_type t2v) and the
 *              DiT's diffusion_pytorch_model*.safetensors, the T5 and the VAE as PyTorch files
 *              (models_t5_umt5-xxl-enc-bf16.pth, Wan2.1_VAE.pth) that `osp convert` turns into
 *              .safetensors beside them, and the tokenizer in google/umt5-xxl/. Their configs
 *              are umT5-XXL's and Wan2.1's VAE's, built in.
 *
 * Every file is checked to exist before the first is read: a missing component, config or
 * weights file is an error naming it. */
#ifndef OSP_PIPELINE_MODEL_DIR_H
#define OSP_PIPELINE_MODEL_DIR_H

#include <stdint.h>

#include "osp.h"
#include "sample/sampler.h"

enum { OSP_PATH_BYTES = 4352 };

typedef enum { OSP_LAYOUT_MANIFEST, OSP_LAYOUT_DIFFUSERS, OSP_LAYOUT_ORIGINAL } osp_model_layout;
typedef enum { OSP_TEXT_WORDS, OSP_TEXT_UMT5 } osp_text_kind;
typedef enum { OSP_SPACE_PIXELS, OSP_SPACE_WAN_VAE } osp_space_kind;

/* How to sample: the model's defaults, each overridable. frames, height and width are the
 * video's (pixels); a VAE model samples latents of 1 + (frames − 1)/4 frames of height/8 × width/8. */
typedef struct {
  osp_sampler_kind sampler;
  int steps;
  double shift, guidance; /* guidance 1: no unconditional pass */
  int64_t frames, height, width;
  double fps;
} osp_t2v_settings;

typedef struct {
  char dir[OSP_PATH_BYTES];
  osp_model_layout layout;
  char dit_config[OSP_PATH_BYTES], dit_weights[OSP_PATH_BYTES];
  osp_text_kind text;
  char vocab[OSP_PATH_BYTES];      /* words: the vocabulary file */
  int64_t text_rows;               /* words: the context's rows; umT5: the tokenizer's length (512) */
  uint64_t text_seed;              /* words: the tables' seed */
  char text_encoder[OSP_PATH_BYTES]; /* umT5: the text_encoder folder (original layout: the weights file) */
  char tokenizer[OSP_PATH_BYTES];    /* umT5: the tokenizer folder */
  osp_space_kind space;
  char vae[OSP_PATH_BYTES];          /* the vae folder (original layout: the weights file) */
  osp_t2v_settings defaults;
} osp_model_dir;

/* Reads the folder's manifest or model_index.json (and scheduler config) and checks that every
 * file the model needs is there. */
osp_status osp_model_dir_read(const char *dir, osp_model_dir *out);

const char *osp_model_layout_name(osp_model_layout layout);

#endif
