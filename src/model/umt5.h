/* The umT5 text encoder of Wan2.1 (PAPER.md 2), any size its config.json gives (umT5-XXL: 24
 * layers, d_model 4096, 64 heads × 64, d_ff 10240). Per layer, with T5's RMS LayerNorm
 * N(x) = x / sqrt(mean(x²) + eps) · w:
 *
 *   x = E[ids]                                         (no scaling)
 *   x += O · Attn(N₁(x)),  Attn = softmax(q·kᵀ + bias[h, i, j]) · v   (no 1/√d; each layer its
 *                          own relative position bias table [buckets, heads], bidirectional)
 *   x += W_o · (gelu_tanh(W_wi0 · N₂(x)) ⊙ W_wi1 · N₂(x))            (gated-GELU)
 *   context = N_final(x)
 *
 * Computed in f32 on the CPU on the prompt's tokens only: with the padding masked out, that is
 * what transformers' UMT5EncoderModel computes for the valid rows of a padded batch. Matrices
 * stored in bf16 stay bf16 in memory (the embedding and every linear, read in place from the
 * mapped file) and are converted tile by tile inside the products, so umT5-XXL holds 11.4 GB;
 * f32 files stay f32. Written once for every backend: it only calls ops. */
#ifndef OSP_MODEL_UMT5_H
#define OSP_MODEL_UMT5_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/safetensors.h"
#include "core/tensor.h"

/* The keys of transformers' UMT5Config that the encoder reads (its config.json). */
typedef struct {
  int d_model, d_kv, d_ff, num_layers, num_heads;
  int num_buckets;  /* relative_attention_num_buckets */
  int max_distance; /* relative_attention_max_distance */
  int vocab_size;
  float eps;        /* layer_norm_epsilon */
} osp_umt5_config;

/* Reads a config.json. d_model, d_kv, d_ff, num_layers, num_heads and vocab_size are required;
 * the rest default as UMT5Config does (32 buckets, max distance 128, eps 1e-6, "gated-gelu").
 * feed_forward_proj must be "gated-gelu" (GELU, tanh approximation): any other is refused with a
 * message naming the file and the key. */
osp_status osp_umt5_config_load(const char *path, osp_umt5_config *config);

/* Wan2.1's text encoder, google/umt5-xxl (PAPER.md 2): for model folders without its config. */
void osp_umt5_config_xxl(osp_umt5_config *config);

/* Parameters of an encoder of this config (umT5-XXL: 5,680,910,336). */
int64_t osp_umt5_parameter_count(const osp_umt5_config *config);

/* Which tensor names a weights file uses: transformers' UMT5EncoderModel ("shared.weight",
 * "encoder.block.N.layer.0.SelfAttention.q.weight", ...) or the original Wan2.1 T5Encoder
 * ("token_embedding.weight", "blocks.N.attn.q.weight", ...). */
typedef enum { OSP_UMT5_NAMES_TRANSFORMERS, OSP_UMT5_NAMES_WAN } osp_umt5_names;

typedef struct {
  osp_tensor attention_norm;  /* [d_model] f32 */
  osp_tensor q, k, v;         /* [heads·d_kv, d_model] */
  osp_tensor o;               /* [d_model, heads·d_kv] */
  osp_tensor position_table;  /* [buckets, heads] f32: relative_attention_bias */
  osp_tensor ffn_norm;        /* [d_model] f32 */
  osp_tensor gate, up;        /* wi_0 (through the GELU) and wi_1: [d_ff, d_model] */
  osp_tensor down;            /* wo: [d_model, d_ff] */
} osp_umt5_layer;

typedef struct {
  osp_umt5_config config;
  osp_umt5_names names;
  osp_device device;      /* where the weights live (osp_umt5_to_device) */
  osp_tensor embedding;   /* [vocab, d_model] */
  osp_umt5_layer *layers;
  osp_tensor final_norm;  /* [d_model] f32 */
  osp_st_file file;       /* the mapped weights: f32 and bf16 matrices are used in place */
  osp_arena converted;    /* what is not used in place, as f32; on a device, every weight */
  size_t weight_bytes;    /* every weight as held: in place in the file or converted */
} osp_umt5;

/* Loads the encoder from a folder (config.json and model.safetensors, as save_pretrained writes
 * them: a diffusers model's text_encoder/) or from a safetensors file with config.json beside it.
 * Every tensor is checked against the config: a missing, misshapen or unexpected tensor, or a
 * file mixing both name styles, is an error naming the file and the tensor. */
osp_status osp_umt5_load(const char *dir_or_file, osp_umt5 *m);

/* The same from a weights file (or shard index) and a config given here: the original Wan2.1
 * release ships its T5 without a config.json (osp_umt5_config_xxl is its config). */
osp_status osp_umt5_load_file(const osp_umt5_config *config, const char *weights, osp_umt5 *m);

/* A copy of the encoder on `device`: its matrices in the device's dtype (bf16 on CUDA), the norms
 * and position tables f32. src is left as it was (free it if it is not wanted). */
osp_status osp_umt5_to_device(const osp_umt5 *src, osp_device device, osp_umt5 *dst);

/* An encoder of `config` on `device` with random weights (Philox, seeded; matrices N(0, 1/in),
 * the rest N(0, 1)): for benchmarks. */
osp_status osp_umt5_init_random(const osp_umt5_config *config, uint64_t seed, osp_device device, osp_umt5 *m);

/* The memory one encode of `count` tokens on `device` plans for its activations, in bytes. */
size_t osp_umt5_activation_bytes(const osp_umt5_config *config, osp_device device, int64_t count);

/* The context of a prompt's token ids (EOS included, no padding): context f32 CPU [rows, d_model]
 * or [1, rows, d_model] with rows ≥ count; row i < count is token i's output, rows past count are
 * zero (the padding Wan2.1's pipelines give the DiT). Every id must be in [0, vocab_size). On
 * CUDA the activations are bf16 (f32 arithmetic, the attention bias f32), as transformers runs the
 * encoder in WanPipeline. */
osp_status osp_umt5_encode(const osp_umt5 *m, const int32_t *ids, int64_t count,
                           osp_tensor *context);

void osp_umt5_free(osp_umt5 *m);

#endif
