/* The Wan2.1 VAE (PAPER.md 3): a causal 3D convolutional autoencoder, 8× spatial and 4× causal
 * temporal compression. Videos run chunk by chunk as Wan2.1 and diffusers run them: the decoder
 * one latent frame at a time (1 video frame for the first, 4 for each next), the encoder 1 frame
 * then 4 at a time; every causal convolution keeps the last input frames of the previous chunk
 * (its feature cache), so memory does not grow with the number of frames.
 * Only Wan2.1's VAE: Wan2.2's (residual down/up blocks, patchified input) is refused. */
#ifndef OSP_MODEL_VAE_H
#define OSP_MODEL_VAE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/arena.h"
#include "core/safetensors.h"
#include "core/tensor.h"

enum { OSP_VAE_MAX_LEVELS = 8, OSP_VAE_MAX_Z = 64 };

/* diffusers' vae/config.json (AutoencoderKLWan); dropout is ignored. */
typedef struct {
  int base_dim;     /* 96 */
  int z_dim;        /* 16 latent channels */
  int levels;       /* length of dim_mult */
  int dim_mult[OSP_VAE_MAX_LEVELS];
  int num_res_blocks;
  bool temporal_downsample[OSP_VAE_MAX_LEVELS - 1]; /* per level but the last ("temperal_downsample") */
  int in_channels, out_channels; /* 3 */
  float latents_mean[OSP_VAE_MAX_Z], latents_std[OSP_VAE_MAX_Z];
} osp_vae_config;

/* Reads vae/config.json; refuses keys of VAEs this engine does not run (Wan2.2's is_residual,
 * patch_size, decoder_base_dim) and attention scales (Wan2.1 has attention only in the middle). */
osp_status osp_vae_config_load(const char *path, osp_vae_config *config);

/* Wan2.1's VAE (PAPER.md 3): base 96, z 16, dim_mult [1, 2, 4, 4], 2 residual blocks, temporal
 * down-sampling [no, yes, yes], and its latent mean and std. */
void osp_vae_config_wan21(osp_vae_config *config);

/* ---- The network, as the weight table fills it ---- */

typedef struct {
  osp_tensor weight; /* [Cout, Cin, kt, kh, kw]; a Conv2d's is viewed with kt = 1 */
  osp_tensor bias;   /* [Cout] */
  int cache;         /* its feature cache (causal convolutions with kt > 1), or -1 */
} osp_vae_conv;

typedef enum { OSP_VAE_RESIDUAL, OSP_VAE_ATTENTION, OSP_VAE_RESAMPLE } osp_vae_layer_kind;

typedef enum {
  OSP_VAE_UPSAMPLE_2D,   /* nearest ×2, 3×3 conv C → C/2 */
  OSP_VAE_UPSAMPLE_3D,   /* time conv C → 2C into twice the frames, then as 2D */
  OSP_VAE_DOWNSAMPLE_2D, /* zero pad right and bottom, 3×3 conv stride 2 */
  OSP_VAE_DOWNSAMPLE_3D  /* as 2D, then a time conv stride 2 over the cached frame and the chunk */
} osp_vae_resample_mode;

typedef struct {
  osp_vae_layer_kind kind;
  int in_channels, out_channels;
  osp_tensor norm1, norm2;          /* residual: RMS norm gammas [C]; attention: norm1 only */
  osp_vae_conv conv1, conv2;        /* residual: the two 3×3×3 causal convs */
  osp_vae_conv shortcut;            /* residual with in ≠ out: 1×1×1 */
  bool has_shortcut;
  osp_tensor qkv_weight, qkv_bias;  /* attention: [3C, C], [3C] */
  osp_tensor proj_weight, proj_bias;/* attention: [C, C], [C] */
  osp_vae_resample_mode mode;       /* resample */
  osp_vae_conv resample, time_conv; /* resample: the 2D conv; the time conv of the 3D modes */
} osp_vae_layer;

/* The encoder or the decoder: conv_in, the layers in the order they run (the middle block's
 * residual, attention, residual among them), the head's norm and conv_out. */
typedef struct {
  osp_vae_conv conv_in;
  osp_vae_layer *layers;
  int layer_count;
  osp_tensor norm_out;
  osp_vae_conv conv_out;
  int cache_count;
  int temporal_factor, spatial_factor; /* frames and pixels per latent one (4 and 8) */
} osp_vae_tower;

typedef struct {
  osp_vae_config config;
  osp_device device; /* where the weights live and the VAE runs (the loaders give the CPU) */
  osp_vae_tower encoder, decoder;
  osp_vae_conv quant_conv, post_quant_conv; /* 1×1×1: 2z → 2z, z → z */
  osp_tensor latents_mean, inv_std;         /* [z]; inv_std = 1/std as the references keep it */
  osp_st_file file;
  osp_arena converted; /* weights not usable in place, the normalisation vectors */
  int64_t parameter_count;
} osp_vae;

/* Loads DIR/vae/ or DIR itself (config.json + diffusion_pytorch_model.safetensors), or a
 * safetensors file with config.json beside it. Tensor names: diffusers' (AutoencoderKLWan) or the
 * original Wan2.1 ones (Wan2.1_VAE.pth converted to safetensors). */
osp_status osp_vae_load(const char *dir_or_file, osp_vae *vae);
void osp_vae_free(osp_vae *vae);

/* The same from a weights file and a config given here: the original Wan2.1 release ships its VAE
 * without a config.json (osp_vae_config_wan21 is its config). */
osp_status osp_vae_load_file(const osp_vae_config *config, const char *weights, osp_vae *vae);

/* The VAE on another device: its weights copied into one arena there, in the device's dtype
 * (bf16 on CUDA, osp_device_dtype; the latent statistics stay f32). src is left as it was; free
 * each with osp_vae_free. Weights of a VAE on CUDA take 2 bytes a parameter (254 MB for Wan2.1's
 * 126.9 M). */
osp_status osp_vae_to_device(const osp_vae *src, osp_device device, osp_vae *vae);

/* A VAE of `config` on `device` with random weights (tests): convolution and attention matrices
 * N(0, 1/fan_in), norm gammas N(0, 1), biases N(0, 0.1²), each parameter from its own Philox stream
 * of `seed`, so every device draws the same numbers (rounded to its dtype). */
osp_status osp_vae_init_random(const osp_vae_config *config, uint64_t seed, osp_device device, osp_vae *vae);

/* A VAE of `config` with shapes and no weights (every tensor's data NULL): for memory plans. */
osp_status osp_vae_shapes(const osp_vae_config *config, osp_vae *vae);

/* The bytes a decode of latents of `latent_shape` plans for (feature caches, activations,
 * scratch; weights not counted), without running it. */
osp_status osp_vae_decode_plan(const osp_vae *vae, const int64_t latent_shape[5], size_t *bytes);

/* Per latent frame decoded or encoded; `planned_bytes` is what the call's arenas hold at their
 * peak (feature caches, activations, scratch; weights not counted), set before the first frame. */
typedef struct {
  void (*on_frame)(void *user, int done, int total);
  void *user;
  size_t planned_bytes; /* out */
} osp_vae_progress;

/* The shape decode gives a latents [B, z, F, H, W]: [B, out, 1 + 4(F − 1), 8H, 8W]. */
osp_status osp_vae_decoded_shape(const osp_vae *vae, const osp_tensor *latents, int64_t shape[5]);
/* The shape encode gives a video [B, in, 1 + 4k, H, W]: [B, z, 1 + k, H/8, W/8] (each spatial
 * step maps n to ⌊(n − 2)/2⌋ + 1). */
osp_status osp_vae_encoded_shape(const osp_vae *vae, const osp_tensor *video, int64_t shape[5]);

/* latents: normalised (the DiT's space) → video in [−1, 1]: z / inv_std + mean, post_quant_conv,
 * the decoder chunk by chunk, clamped. progress may be NULL. Inputs and outputs of decode and
 * encode are host f32 tensors whatever the VAE's device: on CUDA each chunk is uploaded and its
 * frames downloaded, and the VAE computes with bf16 activations and f32 accumulation. */
osp_status osp_vae_decode(const osp_vae *vae, const osp_tensor *latents, osp_tensor *video,
                          osp_vae_progress *progress);
/* osp_vae_decode over spatial tiles of `tile` pixels every `stride` (multiples of 8; diffusers'
 * defaults 256 and 192), blended where they overlap as diffusers' tiled_decode blends them: the
 * activations of one tile instead of the whole frame. progress hears of tiles, not frames. */
osp_status osp_vae_decode_tiled(const osp_vae *vae, const osp_tensor *latents, int tile, int stride,
                                osp_tensor *video, osp_vae_progress *progress);

/* video [B, in, 1 + 4k, H, W] in [−1, 1] → the normalised posterior mean: the encoder chunk by
 * chunk, quant_conv, the first z channels μ, (μ − mean) · inv_std. */
osp_status osp_vae_encode(const osp_vae *vae, const osp_tensor *video, osp_tensor *latents,
                          osp_vae_progress *progress);

#endif
