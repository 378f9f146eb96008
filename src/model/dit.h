/* The Wan2.1 text-to-video DiT (PAPER.md section 1): patch embedding, time and text embeddings,
 * N blocks of modulated self-attention, cross-attention and FFN, and the modulated head.
 * Written once for every backend: it only calls ops. */
#ifndef OSP_MODEL_DIT_H
#define OSP_MODEL_DIT_H

#include <stdint.h>

#include "core/arena.h"
#include "core/config.h"
#include "core/safetensors.h"
#include "parallel/sequence_parallel.h"

typedef struct {
  osp_tensor weight; /* [out, in] */
  osp_tensor bias;   /* [out] */
} osp_linear_params;

enum { OSP_Q, OSP_K, OSP_V, OSP_O };

typedef struct {
  osp_linear_params proj[4];  /* indexed by OSP_Q, OSP_K, OSP_V, OSP_O; all C → C */
  osp_tensor norm_q, norm_k;  /* [C]: RMSNorm over all heads (when qk_norm) */
} osp_attention_params;

typedef struct {
  osp_tensor modulation; /* [1, 6, C]: shift, scale, gate of attention; shift, scale, gate of FFN */
  osp_attention_params self_attn;
  osp_tensor cross_norm_weight, cross_norm_bias; /* [C], "norm3": LayerNorm before cross-attention */
  osp_attention_params cross_attn;
  osp_linear_params ffn_in, ffn_out; /* C → ffn_dim → C */
} osp_dit_block;

/* Which tensor names a weights file uses. */
typedef enum { OSP_NAMES_ORIGINAL, OSP_NAMES_DIFFUSERS } osp_dit_names;

typedef struct {
  osp_model_config config;
  osp_device device; /* where the weights live: f32 on the CPU, bf16 on CUDA */
  osp_dit_names names;     /* the names of the file the weights came from (original: random) */
  const char *name_prefix; /* "model.diffusion_model." where that file had ComfyUI's prefix */
  osp_linear_params patch_embedding; /* weight viewed as [C, in·pt·ph·pw] */
  osp_linear_params text_in, text_out;  /* text_dim → C → C, GELU(tanh) between */
  osp_linear_params time_in, time_out;  /* freq_dim → C → C, SiLU between: e */
  osp_linear_params time_projection;    /* SiLU(e) → 6C: e0 */
  osp_dit_block *blocks;
  osp_tensor head_modulation; /* [1, 2, C]: shift, scale */
  osp_linear_params head;     /* C → out·pt·ph·pw */
  osp_st_file file;     /* the mapped weights: float32 tensors are used in place */
  osp_arena converted;  /* weights not used in place: converted, random or on a device */
  osp_arena owned;      /* copies of the in-place ones, made by osp_dit_own_weights */
} osp_dit;

/* Loads weights from a safetensors file (original Wan2.1 or diffusers names, optionally behind
 * ComfyUI's "model.diffusion_model." prefix). Every tensor is checked against the config; a
 * missing, misshapen, unexpected or mixed-style name is an error naming the file and tensor. */
osp_status osp_dit_load(const osp_model_config *config, const char *path, osp_dit *dit);

/* Fills a DiT on `device` with random weights (Philox, seeded; the same numbers on every device,
 * rounded to its weight dtype): for benchmarks and tests. */
osp_status osp_dit_init_random(const osp_model_config *config, uint64_t seed, osp_device device,
                               osp_dit *dit);

/* Makes every host weight of a loaded DiT writable: those used in place from the (read-only)
 * mapped file get a copy of their own; converted ones already are. For changing the weights after
 * loading (LoRA); a no-op where nothing is used in place. */
osp_status osp_dit_own_weights(osp_dit *dit);

/* A copy of a DiT's weights on `device`, in its weight dtype (bf16 on CUDA). */
osp_status osp_dit_to_device(const osp_dit *src, osp_device device, osp_dit *dit);

/* A DiT-shaped set of f32 zeros on `device`, with `like`'s config and names: gradients, and the
 * optimizer's moments. */
osp_status osp_dit_init_zeros(const osp_dit *like, osp_device device, osp_dit *dit);

/* Every parameter with its name in the DiT's own style (its file's, prefix included) and a view in
 * its own shape (patch_embedding.weight is [C, in, pt, ph, pw]), in one fixed order; *list is
 * malloc'd (free it). */
typedef struct {
  char name[128];
  char names[2][96]; /* its name in each style (indexed by osp_dit_names), without a prefix */
  osp_tensor tensor;
} osp_dit_parameter;
osp_status osp_dit_parameters(const osp_dit *dit, osp_dit_parameter **list, int *count);

void osp_dit_free(osp_dit *dit);

/* Which name style a file uses (for `osp info`), or an error if it is not a Wan DiT. */
osp_status osp_dit_detect_names(const osp_st_file *file, osp_dit_names *names, const char **prefix);

/* Checks the inputs of a forward against the config: latents [B, in, F, H, W] (F, H, W multiples
 * of the patch), timestep [B], context [B, L, text_dim], all finite (checked for host tensors) f32
 * (bf16 allowed for latents and context on CUDA). */
osp_status osp_dit_check_inputs(const osp_dit *dit, const osp_tensor *latents,
                                const osp_tensor *timestep, const osp_tensor *context);

/* One forward pass: velocity [B, out, F, H, W] from latents, timesteps and text context, on the
 * DiT's device. Inputs and output may live on any device (they are copied where they are not on
 * the DiT's). Activations live in an arena sized up front for these shapes, on the DiT's device,
 * in its dtype (bf16 on CUDA); the time embedding and modulation tables stay f32. */
osp_status osp_dit_forward(const osp_dit *dit, const osp_tensor *latents, const osp_tensor *timestep,
                           const osp_tensor *context, osp_tensor *velocity);


/* The bytes a DiT of this config holds in weights of `dtype` (the memory plan; nothing loaded). */
osp_status osp_dit_weight_bytes(const osp_model_config *config, osp_dtype dtype, size_t *bytes);

/* The bytes of the activation arena one forward of `batch` samples of a latent grid (F, H, W)
 * takes on `device` (the memory plan, without running anything). */
osp_status osp_dit_activation_bytes(const osp_model_config *config, osp_device device, int64_t batch,
                                    const int64_t latent_grid[3], int64_t text_rows, size_t *bytes);

/* Floating-point operations of one block's forward (multiply-add = 2), split into self-attention
 * (q·kᵀ and P·v: 4·rows·tokens²·C, the part Skiparse divides by about P²; padded keys count, as they
 * are computed) and the rest (the ten linear layers, cross-attention, norms excluded). */
typedef struct {
  double self_attention, rest;
} osp_dit_flops;

osp_dit_flops osp_dit_block_flops(const osp_model_config *config, int block, int64_t batch,
                                  const int64_t grid[3], int64_t text_rows);

/* Where a forward's time went, filled by osp_dit_forward_timed. */
typedef struct {
  double block_seconds[OSP_MAX_LAYERS];
  double layout_seconds; /* gathers entering, switching and leaving the sparse span */
  int64_t block_bytes[OSP_MAX_LAYERS]; /* sent to other ranks in block i and the layout change after it */
  double total_seconds;
} osp_dit_timing;

/* osp_dit_forward that also records where the time went. */
osp_status osp_dit_forward_timed(const osp_dit *dit, const osp_tensor *latents, const osp_tensor *timestep,
                                 const osp_tensor *context, osp_tensor *velocity, osp_dit_timing *timing);

/* How one forward is spread over ranks (PAPER.md section 6). Every rank passes the whole inputs
 * and gets the whole velocity. */
typedef struct {
  osp_comm *sequence; /* the sequence-parallel group; NULL or one rank: the whole sequence here */
  osp_sp_mode mode;   /* how its Skiparse blocks are split (full blocks always run Ulysses) */
  osp_comm *batch;    /* across batch groups (CFG parallelism): its rank g runs batch part g;
                       * NULL or one rank: no split */
} osp_dit_parallel;

osp_status osp_dit_forward_parallel(const osp_dit *dit, const osp_dit_parallel *parallel,
                                    const osp_tensor *latents, const osp_tensor *timestep,
                                    const osp_tensor *context, osp_tensor *velocity, osp_dit_timing *timing);

#endif
