/* The DiT's parameters: one table lists each with its original Wan2.1 name, its diffusers name
 * and its shape (PAPER.md 1.9); loading, checking and random init all walk that table. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "model/dit.h"
#include "ops/ops.h"

enum { NAME_BYTES = 96 };

typedef struct {
  osp_tensor *slot;
  char names[2][NAME_BYTES]; /* indexed by osp_dit_names */
  int ndim;
  int64_t shape[5];
} parameter;

typedef struct {
  parameter *items;
  int count;
} parameter_list;

static void add_parameter(parameter_list *list, osp_tensor *slot, const char *original,
                          const char *diffusers, int ndim, const int64_t *shape) {
  parameter *p = &list->items[list->count++];
  p->slot = slot;
  snprintf(p->names[OSP_NAMES_ORIGINAL], NAME_BYTES, "%s", original);
  snprintf(p->names[OSP_NAMES_DIFFUSERS], NAME_BYTES, "%s", diffusers);
  p->ndim = ndim;
  memcpy(p->shape, shape, (size_t)ndim * sizeof *shape);
}

static void add_vector(parameter_list *list, osp_tensor *slot, const char *original,
                       const char *diffusers, int64_t n) {
  add_parameter(list, slot, original, diffusers, 1, (int64_t[]){n});
}

/* A Linear: "<name>.weight" [out, in] and "<name>.bias" [out]. */
static void add_linear(parameter_list *list, osp_linear_params *p, const char *original,
                       const char *diffusers, int64_t out, int64_t in) {
  char o[NAME_BYTES], d[NAME_BYTES];
  snprintf(o, sizeof o, "%s.weight", original);
  snprintf(d, sizeof d, "%s.weight", diffusers);
  add_parameter(list, &p->weight, o, d, 2, (int64_t[]){out, in});
  snprintf(o, sizeof o, "%s.bias", original);
  snprintf(d, sizeof d, "%s.bias", diffusers);
  add_vector(list, &p->bias, o, d, out);
}

/* Original "blocks.N.self_attn.{q,k,v,o,norm_q,norm_k}", diffusers
 * "blocks.N.attn1.{to_q,to_k,to_v,to_out.0,norm_q,norm_k}" (attn2 for cross-attention). */
static void add_attention(parameter_list *list, const osp_model_config *c, osp_attention_params *a,
                          int block, const char *original, const char *diffusers) {
  static const char *const original_proj[4] = {"q", "k", "v", "o"};
  static const char *const diffusers_proj[4] = {"to_q", "to_k", "to_v", "to_out.0"};
  char o[NAME_BYTES], d[NAME_BYTES];
  for (int i = OSP_Q; i <= OSP_O; i++) {
    snprintf(o, sizeof o, "blocks.%d.%s.%s", block, original, original_proj[i]);
    snprintf(d, sizeof d, "blocks.%d.%s.%s", block, diffusers, diffusers_proj[i]);
    add_linear(list, &a->proj[i], o, d, c->dim, c->dim);
  }
  if (!c->qk_norm) return;
  osp_tensor *norms[2] = {&a->norm_q, &a->norm_k};
  for (int i = 0; i < 2; i++) {
    snprintf(o, sizeof o, "blocks.%d.%s.norm_%c.weight", block, original, "qk"[i]);
    snprintf(d, sizeof d, "blocks.%d.%s.norm_%c.weight", block, diffusers, "qk"[i]);
    add_vector(list, norms[i], o, d, c->dim);
  }
}

static void add_block(parameter_list *list, const osp_model_config *c, osp_dit_block *b, int i) {
  char o[NAME_BYTES], d[NAME_BYTES];
  snprintf(o, sizeof o, "blocks.%d.modulation", i);
  snprintf(d, sizeof d, "blocks.%d.scale_shift_table", i);
  add_parameter(list, &b->modulation, o, d, 3, (int64_t[]){1, 6, c->dim});
  add_attention(list, c, &b->self_attn, i, "self_attn", "attn1");
  if (c->cross_attn_norm) {
    const char *part[2] = {"weight", "bias"};
    osp_tensor *slot[2] = {&b->cross_norm_weight, &b->cross_norm_bias};
    for (int k = 0; k < 2; k++) {
      snprintf(o, sizeof o, "blocks.%d.norm3.%s", i, part[k]);
      snprintf(d, sizeof d, "blocks.%d.norm2.%s", i, part[k]);
      add_vector(list, slot[k], o, d, c->dim);
    }
  }
  add_attention(list, c, &b->cross_attn, i, "cross_attn", "attn2");
  snprintf(o, sizeof o, "blocks.%d.ffn.0", i);
  snprintf(d, sizeof d, "blocks.%d.ffn.net.0.proj", i);
  add_linear(list, &b->ffn_in, o, d, c->ffn_dim, c->dim);
  snprintf(o, sizeof o, "blocks.%d.ffn.2", i);
  snprintf(d, sizeof d, "blocks.%d.ffn.net.2", i);
  add_linear(list, &b->ffn_out, o, d, c->dim, c->ffn_dim);
}

enum { TOP_LEVEL_PARAMETERS = 15, PARAMETERS_PER_BLOCK = 27 };

/* Lists every parameter of `dit`, whose blocks are allocated already. */
static osp_status list_parameters(osp_dit *dit, parameter_list *list) {
  const osp_model_config *c = &dit->config;
  int64_t patch_out = (int64_t)c->out_channels * c->patch_size[0] * c->patch_size[1] * c->patch_size[2];
  list->items = calloc(TOP_LEVEL_PARAMETERS + (size_t)PARAMETERS_PER_BLOCK * c->num_layers, sizeof *list->items);
  list->count = 0;
  if (!list->items)
    return osp_fail(OSP_ERR_MEMORY, "cannot allocate the parameter table of %d blocks", c->num_layers);
  add_parameter(list, &dit->patch_embedding.weight, "patch_embedding.weight", "patch_embedding.weight", 5,
                (int64_t[]){c->dim, c->in_channels, c->patch_size[0], c->patch_size[1], c->patch_size[2]});
  add_vector(list, &dit->patch_embedding.bias, "patch_embedding.bias", "patch_embedding.bias", c->dim);
  add_linear(list, &dit->text_in, "text_embedding.0", "condition_embedder.text_embedder.linear_1", c->dim, c->text_dim);
  add_linear(list, &dit->text_out, "text_embedding.2", "condition_embedder.text_embedder.linear_2", c->dim, c->dim);
  add_linear(list, &dit->time_in, "time_embedding.0", "condition_embedder.time_embedder.linear_1", c->dim, c->freq_dim);
  add_linear(list, &dit->time_out, "time_embedding.2", "condition_embedder.time_embedder.linear_2", c->dim, c->dim);
  add_linear(list, &dit->time_projection, "time_projection.1", "condition_embedder.time_proj", 6 * (int64_t)c->dim, c->dim);
  for (int i = 0; i < c->num_layers; i++) add_block(list, c, &dit->blocks[i], i);
  add_parameter(list, &dit->head_modulation, "head.modulation", "scale_shift_table", 3, (int64_t[]){1, 2, c->dim});
  add_linear(list, &dit->head, "head.head", "proj_out", patch_out, c->dim);
  return OSP_OK;
}

/* A DiT with no weights yet: its config, its device and its (empty) blocks; and its parameters. */
static osp_status start_dit(const osp_model_config *config, osp_device device, osp_dit *dit,
                            parameter_list *list) {
  *dit = (osp_dit){.config = *config, .device = device, .names = OSP_NAMES_ORIGINAL, .name_prefix = ""};
  *list = (parameter_list){0};
  dit->blocks = calloc((size_t)config->num_layers, sizeof *dit->blocks);
  if (!dit->blocks)
    return osp_fail(OSP_ERR_MEMORY, "cannot allocate %d blocks", config->num_layers);
  return list_parameters(dit, list);
}

/* The bytes of every parameter in `dtype`, each aligned as the arena hands it out. */
static size_t parameter_bytes(const parameter_list *list, osp_dtype dtype) {
  size_t bytes = 0;
  for (int i = 0; i < list->count; i++) {
    int64_t n = 1;
    for (int d = 0; d < list->items[i].ndim; d++) n *= list->items[i].shape[d];
    bytes += osp_arena_align((size_t)n * osp_dtype_size(dtype));
  }
  return bytes;
}

/* Gives every parameter its own tensor of `dtype` from one arena on the DiT's device. */
static osp_status allocate_parameters(osp_dit *dit, const parameter_list *list, osp_dtype dtype) {
  OSP_TRY(osp_device_arena(&dit->converted, "weights", dit->device, parameter_bytes(list, dtype)));
  for (int i = 0; i < list->count; i++) {
    const parameter *p = &list->items[i];
    OSP_TRY(osp_arena_tensor(&dit->converted, dtype, p->ndim, p->shape, p->slot));
  }
  return OSP_OK;
}

osp_status osp_dit_weight_bytes(const osp_model_config *config, osp_dtype dtype, size_t *bytes) {
  osp_dit dit;
  parameter_list list;
  const osp_status status = start_dit(config, OSP_CPU, &dit, &list);
  if (status == OSP_OK) *bytes = parameter_bytes(&list, dtype);
  free(list.items);
  free(dit.blocks);
  return status;
}

static const char comfyui_prefix[] = "model.diffusion_model.";

/* Names that exist in only one style tell the styles apart. */
static bool is_original_only(const char *name) {
  return strstr(name, "time_projection.") || strstr(name, "text_embedding.") ||
         strstr(name, "self_attn.") || strstr(name, "cross_attn.") || !strncmp(name, "head.", 5);
}

static bool is_diffusers_only(const char *name) {
  return strstr(name, "condition_embedder.") || strstr(name, ".attn1.") || strstr(name, ".attn2.") ||
         strstr(name, "scale_shift_table") || !strncmp(name, "proj_out.", 9);
}

osp_status osp_dit_detect_names(const osp_st_file *file, osp_dit_names *names, const char **prefix) {
  const char *original = NULL, *diffusers = NULL;
  *prefix = "";
  for (int i = 0; i < file->count; i++) {
    const char *name = file->entries[i].name;
    if (!strncmp(name, comfyui_prefix, sizeof comfyui_prefix - 1)) {
      *prefix = comfyui_prefix;
      name += sizeof comfyui_prefix - 1;
    }
    if (!original && is_original_only(name)) original = file->entries[i].name;
    if (!diffusers && is_diffusers_only(name)) diffusers = file->entries[i].name;
  }
  if (original && diffusers)
    return osp_fail(OSP_ERR_FORMAT,
                    "%s: mixes original Wan2.1 tensor names ('%s') with diffusers names ('%s')",
                    file->path, original, diffusers);
  if (!original && !diffusers)
    return osp_fail(OSP_ERR_FORMAT, "%s: not a Wan2.1 DiT: no tensor has a Wan2.1 or diffusers name",
                    file->path);
  *names = original ? OSP_NAMES_ORIGINAL : OSP_NAMES_DIFFUSERS;
  return OSP_OK;
}

/* Finds every parameter in the file and checks its shape; records the entries in `found`. */
static osp_status find_parameters(const osp_st_file *file, const parameter_list *list,
                                  osp_dit_names names, const char *prefix, const osp_st_entry **found) {
  char name[NAME_BYTES + sizeof comfyui_prefix];
  for (int i = 0; i < list->count; i++) {
    const parameter *p = &list->items[i];
    snprintf(name, sizeof name, "%s%s", prefix, p->names[names]);
    OSP_TRY(osp_st_expect(file, name, p->ndim, p->shape, &found[i]));
  }
  return OSP_OK;
}

/* A tensor the model has no place for means the file is another model (or another config). */
static osp_status reject_unexpected(const osp_st_file *file, const osp_st_entry **found, int count,
                                    const osp_model_config *c) {
  const int i = osp_st_next_unused(file, found, count, 0);
  if (i < 0) return OSP_OK;
  return osp_fail(OSP_ERR_FORMAT, "%s: unexpected tensor '%s' for a Wan2.1 T2V DiT with %d layers (another model or "
                  "config?)", file->path, file->entries[i].name, c->num_layers);
}

/* Points each slot at its data: in place for aligned float32, else converted into an arena. */
static osp_status bind_parameters(osp_dit *dit, const parameter_list *list, const osp_st_entry **found) {
  size_t convert_bytes = 0;
  for (int i = 0; i < list->count; i++) convert_bytes += osp_st_f32_copy_bytes(found[i]);
  OSP_TRY(osp_arena_init(&dit->converted, "converted weights", convert_bytes));
  for (int i = 0; i < list->count; i++) {
    const parameter *p = &list->items[i];
    OSP_TRY(osp_st_view_f32(found[i], &dit->converted, p->ndim, p->shape, p->slot));
  }
  return OSP_OK;
}

/* The Conv3d patch embedding [C, in, pt, ph, pw] is used as a Linear [C, in·pt·ph·pw]. */
static osp_status view_patch_embedding_as_linear(osp_dit *dit) {
  osp_tensor *w = &dit->patch_embedding.weight;
  int64_t shape[2] = {w->shape[0], osp_tensor_numel(w) / w->shape[0]};
  return osp_tensor_reshape(w, 2, shape, w);
}

static osp_status load_from_file(osp_dit *dit, parameter_list *list) {
  OSP_TRY(osp_dit_detect_names(&dit->file, &dit->names, &dit->name_prefix));
  const osp_dit_names names = dit->names;
  const char *prefix = dit->name_prefix;
  const osp_st_entry **found = calloc((size_t)list->count, sizeof *found);
  if (!found) return osp_fail(OSP_ERR_MEMORY, "out of memory");
  osp_status status = find_parameters(&dit->file, list, names, prefix, found);
  if (status == OSP_OK) status = reject_unexpected(&dit->file, found, list->count, &dit->config);
  if (status == OSP_OK) status = bind_parameters(dit, list, found);
  free(found);
  return status;
}

osp_status osp_dit_load(const osp_model_config *config, const char *path, osp_dit *dit) {
  parameter_list list;
  OSP_TRY(osp_config_validate(path, config));
  osp_status status = start_dit(config, OSP_CPU, dit, &list);
  if (status == OSP_OK) status = osp_st_open(path, &dit->file);
  if (status == OSP_OK) status = load_from_file(dit, &list);
  if (status == OSP_OK) status = view_patch_embedding_as_linear(dit);
  free(list.items);
  if (status != OSP_OK) osp_dit_free(dit);
  return status;
}

/* Random weights: matrices N(0, 1/fan_in), vectors and tables N(0, 0.1²). Parameter i of the
 * table draws from Philox stream i of the seed, so every device gets the same numbers (rounded to
 * its weight dtype). */
static osp_status fill_random(const parameter *p, uint64_t seed, uint32_t stream) {
  const int64_t n = osp_tensor_numel(p->slot);
  const bool matrix = p->ndim >= 2 && p->shape[0] > 1;
  const float std = matrix ? 1.0f / sqrtf((float)(n / p->shape[0])) : 0.1f;
  return osp_randn_fill(seed, stream, std, p->slot);
}

osp_status osp_dit_init_random(const osp_model_config *config, uint64_t seed, osp_device device,
                               osp_dit *dit) {
  parameter_list list;
  OSP_TRY(osp_config_validate("random weights", config));
  osp_status status = start_dit(config, device, dit, &list);
  if (status == OSP_OK) status = allocate_parameters(dit, &list, osp_device_dtype(device));
  for (int i = 0; status == OSP_OK && i < list.count; i++)
    status = fill_random(&list.items[i], seed, (uint32_t)i);
  if (status == OSP_OK) status = view_patch_embedding_as_linear(dit);
  free(list.items);
  if (status != OSP_OK) osp_dit_free(dit);
  return status;
}

osp_status osp_dit_to_device(const osp_dit *src, osp_device device, osp_dit *dit) {
  parameter_list list, from = {0};
  osp_dit source = *src; /* listing reads its slots; the blocks are src's own */
  osp_status status = start_dit(&src->config, device, dit, &list);
  dit->names = src->names;
  dit->name_prefix = src->name_prefix;
  if (status == OSP_OK) status = list_parameters(&source, &from);
  if (status == OSP_OK) status = allocate_parameters(dit, &list, osp_device_dtype(device));
  for (int i = 0; status == OSP_OK && i < list.count; i++) {
    osp_tensor original; /* the patch embedding is viewed as a Linear: back to its own shape */
    status = osp_tensor_reshape(from.items[i].slot, list.items[i].ndim, list.items[i].shape, &original);
    if (status == OSP_OK) status = osp_copy(&original, list.items[i].slot);
  }
  if (status == OSP_OK) status = view_patch_embedding_as_linear(dit);
  free(list.items);
  free(from.items);
  if (status != OSP_OK) osp_dit_free(dit);
  return status;
}

static bool in_arena(const osp_arena *arena, const void *data) {
  const unsigned char *p = data;
  return arena->base && p >= arena->base && p < arena->base + arena->size;
}

/* A weight that no arena of the DiT holds: a view of the mapped file. */
static bool used_in_place(const osp_dit *dit, const osp_tensor *t) {
  return !in_arena(&dit->converted, t->data) && !in_arena(&dit->owned, t->data);
}

osp_status osp_dit_own_weights(osp_dit *dit) {
  parameter_list list;
  if (dit->device != OSP_CPU) return osp_fail(OSP_ERR_ARGUMENT, "osp_dit_own_weights: the DiT is not on the CPU");
  OSP_TRY(list_parameters(dit, &list));
  size_t bytes = 0;
  for (int i = 0; i < list.count; i++)
    if (used_in_place(dit, list.items[i].slot)) bytes += osp_arena_align(osp_tensor_bytes(list.items[i].slot));
  osp_status status = bytes ? osp_arena_init(&dit->owned, "owned weights", bytes) : OSP_OK;
  for (int i = 0; bytes && status == OSP_OK && i < list.count; i++) {
    osp_tensor *slot = list.items[i].slot, copy;
    if (!used_in_place(dit, slot)) continue;
    status = osp_arena_tensor(&dit->owned, OSP_F32, slot->ndim, slot->shape, &copy); /* the slot's view shape */
    if (status == OSP_OK) memcpy(copy.data, slot->data, osp_tensor_bytes(slot));
    if (status == OSP_OK) *slot = copy;
  }
  free(list.items);
  return status;
}

osp_status osp_dit_init_zeros(const osp_dit *like, osp_device device, osp_dit *dit) {
  parameter_list list;
  osp_status status = start_dit(&like->config, device, dit, &list);
  if (status == OSP_OK) status = allocate_parameters(dit, &list, OSP_F32);
  for (int i = 0; status == OSP_OK && i < list.count; i++) status = osp_zero(list.items[i].slot);
  if (status == OSP_OK) status = view_patch_embedding_as_linear(dit);
  dit->names = like->names;
  dit->name_prefix = like->name_prefix;
  free(list.items);
  if (status != OSP_OK) osp_dit_free(dit);
  return status;
}

osp_status osp_dit_parameters(const osp_dit *dit, osp_dit_parameter **out, int *count) {
  parameter_list list;
  osp_dit view = *dit; /* listing reads its slots; the blocks are dit's own */
  *out = NULL;
  *count = 0;
  OSP_TRY(list_parameters(&view, &list));
  osp_dit_parameter *params = calloc((size_t)list.count, sizeof *params);
  osp_status status = params ? OSP_OK : osp_fail(OSP_ERR_MEMORY, "cannot list %d parameters", list.count);
  for (int i = 0; status == OSP_OK && i < list.count; i++) {
    const parameter *p = &list.items[i];
    snprintf(params[i].name, sizeof params[i].name, "%s%s", dit->name_prefix, p->names[dit->names]);
    memcpy(params[i].names, p->names, sizeof params[i].names);
    status = osp_tensor_reshape(p->slot, p->ndim, p->shape, &params[i].tensor);
  }
  free(list.items);
  if (status != OSP_OK) {
    free(params);
    return status;
  }
  *out = params;
  *count = list.count;
  return OSP_OK;
}

void osp_dit_free(osp_dit *dit) {
  free(dit->blocks);
  if (dit->file.entries || dit->file.map) osp_st_close(&dit->file);
  osp_arena_free(&dit->converted);
  osp_arena_free(&dit->owned);
  *dit = (osp_dit){0};
}
