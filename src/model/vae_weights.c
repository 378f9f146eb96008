/* The VAE's parameters: building the encoder and decoder lists one table of every parameter with
 * its original Wan2.1 name (wan/modules/vae.py), its diffusers name (AutoencoderKLWan) and its
 * shape; loading walks that table (PAPER.md 3, "VAE names"). */
#include <libgen.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/status.h"
#include "model/vae.h"
#include "ops/ops.h"

enum { NAME_BYTES = 112, ORIGINAL = 0, DIFFUSERS = 1 };

/* One name in each style. */
typedef struct {
  char s[2][NAME_BYTES];
} names;

typedef struct {
  osp_tensor *slot;
  names name;
  int ndim, use_ndim;                 /* in the file; as the model uses it */
  int64_t shape[5], use_shape[5];
} parameter;

typedef struct {
  parameter *items;
  int count, capacity;
} parameter_list;

static names named(const char *original, const char *diffusers) {
  names n;
  snprintf(n.s[ORIGINAL], NAME_BYTES, "%s", original);
  snprintf(n.s[DIFFUSERS], NAME_BYTES, "%s", diffusers);
  return n;
}

/* "<parent>.<suffix>" in each style, with each style's suffix. */
static names child(const names *parent, const char *original, const char *diffusers) {
  names n;
  snprintf(n.s[ORIGINAL], NAME_BYTES, "%.80s.%s", parent->s[ORIGINAL], original);
  snprintf(n.s[DIFFUSERS], NAME_BYTES, "%.80s.%s", parent->s[DIFFUSERS], diffusers);
  return n;
}

static osp_status add(parameter_list *list, osp_tensor *slot, names name, int ndim, const int64_t *shape,
                      int use_ndim, const int64_t *use_shape) {
  if (list->count == list->capacity) {
    int capacity = list->capacity ? 2 * list->capacity : 256;
    parameter *items = realloc(list->items, (size_t)capacity * sizeof *items);
    if (!items) return osp_fail(OSP_ERR_MEMORY, "cannot grow the VAE's parameter table to %d", capacity);
    list->items = items;
    list->capacity = capacity;
  }
  parameter *p = &list->items[list->count++];
  *p = (parameter){.slot = slot, .name = name, .ndim = ndim, .use_ndim = use_ndim};
  memcpy(p->shape, shape, (size_t)ndim * sizeof *shape);
  memcpy(p->use_shape, use_shape, (size_t)use_ndim * sizeof *use_shape);
  return OSP_OK;
}

static osp_status add_vector(parameter_list *list, osp_tensor *slot, names name, int64_t n) {
  return add(list, slot, name, 1, (int64_t[]){n}, 1, (int64_t[]){n});
}

/* An RMS norm's gamma: [C, 1, 1, 1] over videos, [C, 1, 1] over frames (the attention's). */
static osp_status add_gamma(parameter_list *list, osp_tensor *slot, names name, int64_t C, int ndim) {
  return add(list, slot, name, ndim, (int64_t[]){C, 1, 1, 1}, 1, (int64_t[]){C});
}

/* A Conv3d [Cout, Cin, k, k, k] (kt = 0: a Conv2d [Cout, Cin, k, k], used with kt = 1) and its bias.
 * Causal convolutions with kt > 1 get the tower's next feature cache. */
static osp_status add_conv(parameter_list *list, osp_vae_tower *tower, osp_vae_conv *conv, names name,
                           int64_t cout, int64_t cin, int64_t kt, int64_t kh, int64_t kw) {
  const names weight = child(&name, "weight", "weight"), bias = child(&name, "bias", "bias");
  const int64_t use[5] = {cout, cin, kt ? kt : 1, kh, kw};
  conv->cache = kt > 1 ? tower->cache_count++ : -1;
  if (kt)
    OSP_TRY(add(list, &conv->weight, weight, 5, use, 5, use));
  else
    OSP_TRY(add(list, &conv->weight, weight, 4, (int64_t[]){cout, cin, kh, kw}, 5, use));
  return add_vector(list, &conv->bias, bias, cout);
}

/* Original "<p>.residual.{0,2,3,6}", "<p>.shortcut"; diffusers "<p>.{norm1,conv1,norm2,conv2,conv_shortcut}". */
static osp_status add_residual(parameter_list *list, osp_vae_tower *t, osp_vae_layer *l, names p, int cin,
                               int cout) {
  *l = (osp_vae_layer){.kind = OSP_VAE_RESIDUAL, .in_channels = cin, .out_channels = cout, .has_shortcut = cin != cout};
  OSP_TRY(add_gamma(list, &l->norm1, child(&p, "residual.0.gamma", "norm1.gamma"), cin, 4));
  OSP_TRY(add_conv(list, t, &l->conv1, child(&p, "residual.2", "conv1"), cout, cin, 3, 3, 3));
  OSP_TRY(add_gamma(list, &l->norm2, child(&p, "residual.3.gamma", "norm2.gamma"), cout, 4));
  OSP_TRY(add_conv(list, t, &l->conv2, child(&p, "residual.6", "conv2"), cout, cout, 3, 3, 3));
  if (l->has_shortcut) OSP_TRY(add_conv(list, t, &l->shortcut, child(&p, "shortcut", "conv_shortcut"), cout, cin, 1, 1, 1));
  return OSP_OK;
}

/* "<p>.{norm.gamma, to_qkv, proj}" in both styles; the 1×1 Conv2d weights are used as matrices. */
static osp_status add_attention(parameter_list *list, osp_vae_layer *l, names p, int C) {
  *l = (osp_vae_layer){.kind = OSP_VAE_ATTENTION, .in_channels = C, .out_channels = C};
  OSP_TRY(add_gamma(list, &l->norm1, child(&p, "norm.gamma", "norm.gamma"), C, 3));
  OSP_TRY(add(list, &l->qkv_weight, child(&p, "to_qkv.weight", "to_qkv.weight"), 4, (int64_t[]){3 * C, C, 1, 1}, 2,
              (int64_t[]){3 * C, C}));
  OSP_TRY(add_vector(list, &l->qkv_bias, child(&p, "to_qkv.bias", "to_qkv.bias"), 3 * C));
  OSP_TRY(add(list, &l->proj_weight, child(&p, "proj.weight", "proj.weight"), 4, (int64_t[]){C, C, 1, 1}, 2,
              (int64_t[]){C, C}));
  return add_vector(list, &l->proj_bias, child(&p, "proj.bias", "proj.bias"), C);
}

/* "<p>.resample.1" (the 2D conv) and "<p>.time_conv" in both styles. */
static osp_status add_resample(parameter_list *list, osp_vae_tower *t, osp_vae_layer *l, names p, int C,
                               osp_vae_resample_mode mode) {
  const bool up = mode == OSP_VAE_UPSAMPLE_2D || mode == OSP_VAE_UPSAMPLE_3D;
  const int out = up ? C / 2 : C;
  *l = (osp_vae_layer){.kind = OSP_VAE_RESAMPLE, .in_channels = C, .out_channels = out, .mode = mode};
  OSP_TRY(add_conv(list, t, &l->resample, child(&p, "resample.1", "resample.1"), out, C, 0, 3, 3));
  if (mode == OSP_VAE_UPSAMPLE_3D) OSP_TRY(add_conv(list, t, &l->time_conv, child(&p, "time_conv", "time_conv"), 2 * C, C, 3, 1, 1));
  if (mode == OSP_VAE_DOWNSAMPLE_3D) OSP_TRY(add_conv(list, t, &l->time_conv, child(&p, "time_conv", "time_conv"), C, C, 3, 1, 1));
  return OSP_OK;
}

/* The middle block: residual, attention, residual at C channels. */
static osp_status add_middle(parameter_list *list, osp_vae_tower *t, osp_vae_layer *l, const char *side, int C) {
  char o[NAME_BYTES], d[NAME_BYTES];
  for (int i = 0; i < 3; i++) {
    snprintf(o, sizeof o, "%s.middle.%d", side, i);
    if (i == 1) snprintf(d, sizeof d, "%s.mid_block.attentions.0", side);
    else snprintf(d, sizeof d, "%s.mid_block.resnets.%d", side, i / 2);
    OSP_TRY(i == 1 ? add_attention(list, &l[i], named(o, d), C) : add_residual(list, t, &l[i], named(o, d), C, C));
  }
  return OSP_OK;
}

/* Original "<side>.head.{0.gamma, 2}", diffusers "<side>.{norm_out.gamma, conv_out}". */
static osp_status add_head(parameter_list *list, osp_vae_tower *t, const char *side, int C, int out) {
  const names p = named(side, side);
  OSP_TRY(add_gamma(list, &t->norm_out, child(&p, "head.0.gamma", "norm_out.gamma"), C, 4));
  return add_conv(list, t, &t->conv_out, child(&p, "head.2", "conv_out"), out, C, 3, 3, 3);
}

static osp_status allocate_layers(osp_vae_tower *t, int count) {
  t->layers = calloc((size_t)count, sizeof *t->layers);
  t->layer_count = count;
  return t->layers ? OSP_OK : osp_fail(OSP_ERR_MEMORY, "cannot allocate %d VAE layers", count);
}

/* Encoder: conv_in, per level num_res_blocks residuals and (but the last) a downsample, all
 * numbered in one sequence ("encoder.downsamples.N" / "encoder.down_blocks.N"), the middle, the head. */
static osp_status build_encoder(const osp_vae_config *c, osp_vae_tower *t, parameter_list *list) {
  const int L = c->levels, nrb = c->num_res_blocks;
  OSP_TRY(allocate_layers(t, L * nrb + (L - 1) + 3));
  t->temporal_factor = 4;
  t->spatial_factor = 1 << (L - 1);
  OSP_TRY(add_conv(list, t, &t->conv_in, named("encoder.conv1", "encoder.conv_in"), c->base_dim, c->in_channels, 3, 3, 3));
  int n = 0, in = c->base_dim, out = in;
  char o[NAME_BYTES], d[NAME_BYTES];
  for (int i = 0; i < L; i++) {
    out = c->base_dim * c->dim_mult[i];
    for (int j = 0; j <= nrb - (i == L - 1 ? 1 : 0); j++, n++) {
      snprintf(o, sizeof o, "encoder.downsamples.%d", n);
      snprintf(d, sizeof d, "encoder.down_blocks.%d", n);
      if (j < nrb) {
        OSP_TRY(add_residual(list, t, &t->layers[n], named(o, d), in, out));
        in = out;
      } else {
        const osp_vae_resample_mode m = c->temporal_downsample[i] ? OSP_VAE_DOWNSAMPLE_3D : OSP_VAE_DOWNSAMPLE_2D;
        OSP_TRY(add_resample(list, t, &t->layers[n], named(o, d), out, m));
      }
    }
  }
  OSP_TRY(add_middle(list, t, &t->layers[n], "encoder", out));
  return add_head(list, t, "encoder", out, 2 * c->z_dim);
}

/* Decoder: conv_in, the middle, per level num_res_blocks + 1 residuals and (but the last) an
 * upsample, numbered "decoder.upsamples.N" in the original and "decoder.up_blocks.I.{resnets.J,
 * upsamplers.0}" in diffusers; the head. Each level after the first starts at half the width the
 * previous upsample left (Wan2.1's in_dim // 2). */
static osp_status build_decoder(const osp_vae_config *c, osp_vae_tower *t, parameter_list *list) {
  const int L = c->levels, nrb = c->num_res_blocks;
  OSP_TRY(allocate_layers(t, 3 + L * (nrb + 1) + (L - 1)));
  t->temporal_factor = 4;
  t->spatial_factor = 1 << (L - 1);
  const int top = c->base_dim * c->dim_mult[L - 1];
  OSP_TRY(add_conv(list, t, &t->conv_in, named("decoder.conv1", "decoder.conv_in"), top, c->z_dim, 3, 3, 3));
  OSP_TRY(add_middle(list, t, t->layers, "decoder", top));
  int n = 0, in = top, out = top;
  osp_vae_layer *l = t->layers + 3;
  char o[NAME_BYTES], d[NAME_BYTES];
  for (int i = 0; i < L; i++) {
    out = c->base_dim * c->dim_mult[L - 1 - i];
    if (i > 0) in /= 2;
    for (int j = 0; j <= nrb; j++, n++, l++) {
      snprintf(o, sizeof o, "decoder.upsamples.%d", n);
      snprintf(d, sizeof d, "decoder.up_blocks.%d.resnets.%d", i, j);
      OSP_TRY(add_residual(list, t, l, named(o, d), in, out));
      in = out;
    }
    if (i == L - 1) break;
    snprintf(o, sizeof o, "decoder.upsamples.%d", n++);
    snprintf(d, sizeof d, "decoder.up_blocks.%d.upsamplers.0", i);
    const bool temporal = c->temporal_downsample[L - 2 - i]; /* the decoder's is reversed */
    OSP_TRY(add_resample(list, t, l++, named(o, d), out, temporal ? OSP_VAE_UPSAMPLE_3D : OSP_VAE_UPSAMPLE_2D));
  }
  return add_head(list, t, "decoder", out, c->out_channels);
}

static osp_status build(osp_vae *vae, parameter_list *list) {
  const int z = vae->config.z_dim;
  OSP_TRY(build_encoder(&vae->config, &vae->encoder, list));
  osp_vae_tower none = {0}; /* the quant convs are 1×1×1: no caches to count */
  OSP_TRY(add_conv(list, &none, &vae->quant_conv, named("conv1", "quant_conv"), 2 * z, 2 * z, 1, 1, 1));
  OSP_TRY(add_conv(list, &none, &vae->post_quant_conv, named("conv2", "post_quant_conv"), z, z, 1, 1, 1));
  return build_decoder(&vae->config, &vae->decoder, list);
}

/* ---- Finding the files and the tensors ---- */

static bool is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* config.json and the weights: DIR/vae/, DIR itself, or a weights file with config.json beside it. */
static osp_status locate(const char *path, char *config, char *weights, size_t size) {
  if (is_file(path)) {
    char *copy = strdup(path);
    if (!copy) return osp_fail(OSP_ERR_MEMORY, "out of memory");
    snprintf(config, size, "%s/config.json", dirname(copy));
    free(copy);
    snprintf(weights, size, "%s", path);
  } else if (is_dir(path)) {
    char vae_dir[4096];
    snprintf(vae_dir, sizeof vae_dir, "%s/vae", path);
    const char *dir = is_dir(vae_dir) ? vae_dir : path;
    snprintf(config, size, "%s/config.json", dir);
    snprintf(weights, size, "%s/diffusion_pytorch_model.safetensors", dir);
  } else {
    return osp_fail(OSP_ERR_IO, "%s: no such file or directory (expected a model directory with vae/, "
                    "a vae directory, or a VAE safetensors file)", path);
  }
  if (!is_file(config))
    return osp_fail(OSP_ERR_IO, "%s: missing: the VAE's config.json (for %s)", config, path);
  if (!is_file(weights)) return osp_fail(OSP_ERR_IO, "%s: missing: the VAE's weights (for %s)", weights, path);
  return OSP_OK;
}

/* The one place tensors are looked up (a sharded set later): name, shape checked, with a message
 * naming the file, the tensor, what was expected and what was found. */
static osp_status find_tensor(const osp_st_file *file, const char *name, int ndim, const int64_t *shape,
                              const osp_st_entry **out) {
  return osp_st_expect(file, name, ndim, shape, out);
}

/* Which style the file uses: its decoder's first conv tells. */
static osp_status detect_style(const osp_st_file *file, int *style) {
  if (osp_st_find(file, "decoder.conv_in.weight")) *style = DIFFUSERS;
  else if (osp_st_find(file, "decoder.conv1.weight")) *style = ORIGINAL;
  else
    return osp_fail(OSP_ERR_FORMAT, "%s: not a Wan2.1 VAE: no 'decoder.conv_in.weight' (diffusers) or "
                    "'decoder.conv1.weight' (original Wan2.1) tensor", file->path);
  return OSP_OK;
}

static osp_status reject_unexpected(const osp_st_file *file, const osp_st_entry **found, int count) {
  const int i = osp_st_next_unused(file, found, count, 0);
  if (i < 0) return OSP_OK;
  return osp_fail(OSP_ERR_FORMAT, "%s: unexpected tensor '%s' for this VAE config (another model or config?)",
                  file->path, file->entries[i].name);
}

/* The bytes of the normalisation vectors (f32 [z] each) in an arena. */
static size_t statistics_bytes(const osp_vae *vae) { return 2 * osp_arena_align((size_t)vae->config.z_dim * sizeof(float)); }

/* The normalisation vectors from the config into the arena: the mean, and inv_std = 1/std in
 * float32 (as torch's 1.0 / tensor(std)), f32 on every device. */
static osp_status set_statistics(osp_vae *vae) {
  const int64_t z = vae->config.z_dim;
  float mean[OSP_VAE_MAX_Z], inv[OSP_VAE_MAX_Z];
  for (int64_t i = 0; i < z; i++) {
    mean[i] = vae->config.latents_mean[i];
    inv[i] = 1.0f / vae->config.latents_std[i];
  }
  const osp_tensor host_mean = osp_tensor_make(mean, OSP_F32, OSP_CPU, 1, &z);
  const osp_tensor host_inv = osp_tensor_make(inv, OSP_F32, OSP_CPU, 1, &z);
  OSP_TRY(osp_arena_tensor(&vae->converted, OSP_F32, 1, &z, &vae->latents_mean));
  OSP_TRY(osp_arena_tensor(&vae->converted, OSP_F32, 1, &z, &vae->inv_std));
  OSP_TRY(osp_copy(&host_mean, &vae->latents_mean));
  return osp_copy(&host_inv, &vae->inv_std);
}

/* Every slot points at its data, in the shape the model uses: aligned float32 in place, anything
 * else converted into the arena; then the normalisation vectors. */
static osp_status bind(osp_vae *vae, const parameter_list *list, const osp_st_entry **found) {
  size_t bytes = statistics_bytes(vae);
  for (int i = 0; i < list->count; i++) bytes += osp_st_f32_copy_bytes(found[i]);
  OSP_TRY(osp_arena_init(&vae->converted, "VAE weights", bytes));
  for (int i = 0; i < list->count; i++) {
    const parameter *p = &list->items[i];
    OSP_TRY(osp_st_view_f32(found[i], &vae->converted, p->use_ndim, p->use_shape, p->slot));
  }
  return set_statistics(vae);
}

static osp_status load_weights(osp_vae *vae, const parameter_list *list) {
  int style = DIFFUSERS;
  OSP_TRY(detect_style(&vae->file, &style));
  const osp_st_entry **found = calloc((size_t)list->count, sizeof *found);
  if (!found) return osp_fail(OSP_ERR_MEMORY, "out of memory");
  osp_status status = OSP_OK;
  for (int i = 0; status == OSP_OK && i < list->count; i++) {
    const parameter *p = &list->items[i];
    status = find_tensor(&vae->file, p->name.s[style], p->ndim, p->shape, &found[i]);
  }
  if (status == OSP_OK) status = reject_unexpected(&vae->file, found, list->count);
  if (status == OSP_OK) status = bind(vae, list, found);
  free(found);
  return status;
}

/* The network of vae->config, its weights from the file at `weights`. */
static osp_status load_network(const char *weights, osp_vae *vae) {
  parameter_list list = {0};
  osp_status status = build(vae, &list);
  if (status == OSP_OK) status = osp_st_open(weights, &vae->file);
  if (status == OSP_OK) status = load_weights(vae, &list);
  for (int i = 0; status == OSP_OK && i < list.count; i++) vae->parameter_count += osp_tensor_numel(list.items[i].slot);
  free(list.items);
  return status;
}

osp_status osp_vae_load(const char *dir_or_file, osp_vae *vae) {
  *vae = (osp_vae){.device = OSP_CPU};
  char config[4200], weights[4200];
  osp_status status = locate(dir_or_file, config, weights, sizeof config);
  if (status == OSP_OK) status = osp_vae_config_load(config, &vae->config);
  if (status == OSP_OK) status = load_network(weights, vae);
  if (status != OSP_OK) osp_vae_free(vae);
  return status;
}

osp_status osp_vae_load_file(const osp_vae_config *config, const char *weights, osp_vae *vae) {
  *vae = (osp_vae){.config = *config, .device = OSP_CPU};
  const osp_status status = load_network(weights, vae);
  if (status != OSP_OK) osp_vae_free(vae);
  return status;
}

osp_status osp_vae_shapes(const osp_vae_config *config, osp_vae *vae) {
  *vae = (osp_vae){.config = *config, .device = OSP_CPU};
  parameter_list list = {0};
  osp_status status = build(vae, &list);
  for (int i = 0; status == OSP_OK && i < list.count; i++) {
    const parameter *p = &list.items[i];
    *p->slot = osp_tensor_make(NULL, OSP_F32, OSP_CPU, p->use_ndim, p->use_shape);
    vae->parameter_count += osp_tensor_numel(p->slot);
  }
  free(list.items);
  if (status != OSP_OK) osp_vae_free(vae);
  return status;
}

/* ---- Weights on a device ---- */

/* Every parameter its own tensor in the device's dtype (bf16 on CUDA), in one arena on
 * vae->device, then the normalisation vectors; counts the parameters. */
static osp_status allocate_parameters(osp_vae *vae, const parameter_list *list) {
  const osp_dtype dtype = osp_device_dtype(vae->device);
  size_t bytes = statistics_bytes(vae);
  for (int i = 0; i < list->count; i++) {
    const osp_tensor shape = osp_tensor_make(NULL, dtype, vae->device, list->items[i].use_ndim, list->items[i].use_shape);
    bytes += osp_arena_align(osp_tensor_bytes(&shape));
  }
  OSP_TRY(osp_device_arena(&vae->converted, "VAE weights", vae->device, bytes));
  for (int i = 0; i < list->count; i++) {
    const parameter *p = &list->items[i];
    OSP_TRY(osp_arena_tensor(&vae->converted, dtype, p->use_ndim, p->use_shape, p->slot));
    vae->parameter_count += osp_tensor_numel(p->slot);
  }
  return set_statistics(vae);
}

/* A VAE of `config` on `device` with room for its weights (not yet set), and its parameter table. */
static osp_status start_on(const osp_vae_config *config, osp_device device, osp_vae *vae, parameter_list *list) {
  *vae = (osp_vae){.config = *config, .device = device};
  *list = (parameter_list){0};
  OSP_TRY(build(vae, list));
  return allocate_parameters(vae, list);
}

/* Random weights: convolution and attention matrices N(0, 1/fan_in), norm gammas N(0, 1), biases
 * N(0, 0.1²). Parameter i of the table draws from Philox stream i of the seed, so every device gets
 * the same numbers (rounded to its dtype). */
static osp_status fill_random(const parameter *p, uint64_t seed, uint32_t stream) {
  const int64_t n = osp_tensor_numel(p->slot);
  const bool matrix = p->use_ndim >= 2;
  const float std = matrix ? 1.0f / sqrtf((float)(n / p->use_shape[0]))
                  : strstr(p->name.s[DIFFUSERS], "gamma") ? 1.0f : 0.1f;
  return osp_randn_fill(seed, stream, std, p->slot);
}

osp_status osp_vae_init_random(const osp_vae_config *config, uint64_t seed, osp_device device, osp_vae *vae) {
  parameter_list list;
  osp_status status = start_on(config, device, vae, &list);
  for (int i = 0; status == OSP_OK && i < list.count; i++) status = fill_random(&list.items[i], seed, (uint32_t)i);
  free(list.items);
  if (status != OSP_OK) osp_vae_free(vae);
  return status;
}

/* The slot of `other` at the place `slot` has in `built` (two VAEs of one config, built alike): a
 * slot lies in one of the towers' layer arrays or in the VAE itself. */
static const osp_tensor *matching_slot(const osp_vae *built, const osp_tensor *slot, const osp_vae *other) {
  const uintptr_t at = (uintptr_t)slot;
  const osp_vae_tower *towers[2] = {&built->encoder, &built->decoder}, *others[2] = {&other->encoder, &other->decoder};
  for (int i = 0; i < 2; i++) {
    const uintptr_t first = (uintptr_t)towers[i]->layers;
    if (at >= first && at < first + (size_t)towers[i]->layer_count * sizeof *towers[i]->layers)
      return (const osp_tensor *)((const char *)others[i]->layers + (at - first));
  }
  return (const osp_tensor *)((const char *)other + (at - (uintptr_t)built));
}

osp_status osp_vae_to_device(const osp_vae *src, osp_device device, osp_vae *vae) {
  parameter_list list;
  osp_status status = start_on(&src->config, device, vae, &list);
  for (int i = 0; status == OSP_OK && i < list.count; i++)
    status = osp_copy(matching_slot(vae, list.items[i].slot, src), list.items[i].slot);
  free(list.items);
  if (status != OSP_OK) osp_vae_free(vae);
  return status;
}

void osp_vae_free(osp_vae *vae) {
  free(vae->encoder.layers);
  free(vae->decoder.layers);
  if (vae->file.entries || vae->file.map) osp_st_close(&vae->file);
  osp_arena_free(&vae->converted);
  *vae = (osp_vae){0};
}
