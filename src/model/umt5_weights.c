/* The umT5 encoder's parameters: one table lists each with its transformers name, its original
 * Wan2.1 name (wan/modules/t5.py, T5Encoder) and its shape; loading and checking walk it. */
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/status.h"
#include "model/umt5.h"
#include "ops/ops.h"

enum { NAME_BYTES = 96, PATH_BYTES = 4096 };

typedef struct {
  osp_tensor *slot;
  char names[2][NAME_BYTES]; /* indexed by osp_umt5_names */
  int ndim;
  int64_t shape[2];
  bool matrix; /* the embedding and the linears stay f32 or bf16 as stored; the rest become f32 */
} parameter;

typedef struct {
  parameter *items;
  int count;
} parameter_list;

/* transformers ties the encoder's embedding to shared.weight; a file may hold it under either. */
static const char transformers_embedding_alias[] = "encoder.embed_tokens.weight";

static void add(parameter_list *list, osp_tensor *slot, bool matrix, const char *transformers,
                const char *wan, int64_t rows, int64_t columns) {
  parameter *p = &list->items[list->count++];
  p->slot = slot;
  snprintf(p->names[OSP_UMT5_NAMES_TRANSFORMERS], NAME_BYTES, "%s", transformers);
  snprintf(p->names[OSP_UMT5_NAMES_WAN], NAME_BYTES, "%s", wan);
  p->matrix = matrix;
  p->ndim = columns ? 2 : 1;
  p->shape[0] = rows;
  p->shape[1] = columns;
}

/* A parameter of layer i: transformers "encoder.block.i.layer.<t>", Wan "blocks.i.<w>". */
static void add_to_layer(parameter_list *list, osp_tensor *slot, bool matrix, int i, const char *t,
                         const char *w, int64_t rows, int64_t columns) {
  char transformers[NAME_BYTES], wan[NAME_BYTES];
  snprintf(transformers, sizeof transformers, "encoder.block.%d.layer.%s", i, t);
  snprintf(wan, sizeof wan, "blocks.%d.%s", i, w);
  add(list, slot, matrix, transformers, wan, rows, columns);
}

/* Layer 0 of transformers' block is the attention, layer 1 the FFN. Wan's gate.0 is the Linear
 * under the GELU (wi_0), fc1 the other (wi_1), fc2 the output (wo). */
static void add_layer(parameter_list *list, const osp_umt5_config *c, osp_umt5_layer *l, int i) {
  const int64_t d = c->d_model, inner = (int64_t)c->num_heads * c->d_kv, ff = c->d_ff;
  add_to_layer(list, &l->attention_norm, false, i, "0.layer_norm.weight", "norm1.weight", d, 0);
  add_to_layer(list, &l->q, true, i, "0.SelfAttention.q.weight", "attn.q.weight", inner, d);
  add_to_layer(list, &l->k, true, i, "0.SelfAttention.k.weight", "attn.k.weight", inner, d);
  add_to_layer(list, &l->v, true, i, "0.SelfAttention.v.weight", "attn.v.weight", inner, d);
  add_to_layer(list, &l->o, true, i, "0.SelfAttention.o.weight", "attn.o.weight", d, inner);
  add_to_layer(list, &l->position_table, false, i, "0.SelfAttention.relative_attention_bias.weight",
               "pos_embedding.embedding.weight", c->num_buckets, c->num_heads);
  add_to_layer(list, &l->ffn_norm, false, i, "1.layer_norm.weight", "norm2.weight", d, 0);
  add_to_layer(list, &l->gate, true, i, "1.DenseReluDense.wi_0.weight", "ffn.gate.0.weight", ff, d);
  add_to_layer(list, &l->up, true, i, "1.DenseReluDense.wi_1.weight", "ffn.fc1.weight", ff, d);
  add_to_layer(list, &l->down, true, i, "1.DenseReluDense.wo.weight", "ffn.fc2.weight", d, ff);
}

enum { TOP_LEVEL_PARAMETERS = 2, PARAMETERS_PER_LAYER = 10 };

static osp_status allocate_layers(osp_umt5 *m) {
  m->layers = calloc((size_t)m->config.num_layers, sizeof *m->layers);
  if (!m->layers) return osp_fail(OSP_ERR_MEMORY, "cannot allocate %d layers", m->config.num_layers);
  return OSP_OK;
}

/* Every parameter of m (whose layers exist), in one fixed order. */
static osp_status list_parameters(osp_umt5 *m, parameter_list *list) {
  const osp_umt5_config *c = &m->config;
  list->count = 0;
  list->items = calloc(TOP_LEVEL_PARAMETERS + (size_t)PARAMETERS_PER_LAYER * c->num_layers, sizeof *list->items);
  if (!list->items) return osp_fail(OSP_ERR_MEMORY, "cannot allocate the parameter table of %d layers", c->num_layers);
  add(list, &m->embedding, true, "shared.weight", "token_embedding.weight", c->vocab_size, c->d_model);
  for (int i = 0; i < c->num_layers; i++) add_layer(list, c, &m->layers[i], i);
  add(list, &m->final_norm, false, "encoder.final_layer_norm.weight", "norm.weight", c->d_model, 0);
  return OSP_OK;
}

/* ---- where the tensors come from ---- */

/* The one place a tensor is looked up by name (a sharded model's index answers for its shards). */
static const osp_st_entry *find_tensor(const osp_umt5 *m, const char *name) {
  return osp_st_find(&m->file, name);
}

static bool is_wan_name(const char *name) {
  return !strcmp(name, "token_embedding.weight") || !strncmp(name, "blocks.", 7) ||
         !strcmp(name, "norm.weight");
}

static bool is_transformers_name(const char *name) {
  return !strcmp(name, "shared.weight") || !strncmp(name, "encoder.", 8);
}

static osp_status detect_names(osp_umt5 *m) {
  const char *wan = NULL, *transformers = NULL;
  for (int i = 0; i < m->file.count; i++) {
    const char *name = m->file.entries[i].name;
    if (!wan && is_wan_name(name)) wan = name;
    if (!transformers && is_transformers_name(name)) transformers = name;
  }
  if (wan && transformers)
    return osp_fail(OSP_ERR_FORMAT, "%s: mixes Wan2.1 tensor names ('%s') with transformers names ('%s')",
                    m->file.path, wan, transformers);
  if (!wan && !transformers)
    return osp_fail(OSP_ERR_FORMAT, "%s: not a umT5 encoder: no tensor has a transformers or Wan2.1 name",
                    m->file.path);
  m->names = wan ? OSP_UMT5_NAMES_WAN : OSP_UMT5_NAMES_TRANSFORMERS;
  return OSP_OK;
}

/* Finds a parameter under the file's names (transformers' embedding under either name) and checks
 * its shape. */
static osp_status expect_parameter(const osp_umt5 *m, const parameter *p, const osp_st_entry **out) {
  const char *name = p->names[m->names];
  const osp_st_entry *e = find_tensor(m, name);
  if (!e && p->slot == &m->embedding && m->names == OSP_UMT5_NAMES_TRANSFORMERS)
    e = find_tensor(m, transformers_embedding_alias);
  if (!e)
    return osp_fail(OSP_ERR_MISSING, "%s: tensor '%s' not found (a umT5 encoder of %d layers needs it)",
                    m->file.path, name, m->config.num_layers);
  osp_tensor found = {.ndim = e->ndim};
  memcpy(found.shape, e->shape, sizeof found.shape);
  char what[PATH_BYTES + NAME_BYTES];
  snprintf(what, sizeof what, "%s: tensor '%s'", e->file, e->name);
  OSP_TRY(osp_check_shape(what, &found, p->ndim, p->shape));
  *out = e;
  return OSP_OK;
}

/* A tensor the encoder has no place for means another model or another config. transformers'
 * second name of the embedding is no surprise. */
static osp_status reject_unexpected(const osp_umt5 *m, const osp_st_entry **found, int count) {
  const osp_st_file *file = &m->file;
  for (int i = osp_st_next_unused(file, found, count, 0); i >= 0; i = osp_st_next_unused(file, found, count, i + 1)) {
    const char *name = m->file.entries[i].name;
    const bool alias = m->names == OSP_UMT5_NAMES_TRANSFORMERS &&
                       (!strcmp(name, transformers_embedding_alias) || !strcmp(name, "shared.weight"));
    if (!alias)
      return osp_fail(OSP_ERR_FORMAT,
                      "%s: unexpected tensor '%s' for a umT5 encoder of %d layers (another model or config?)",
                      m->file.entries[i].file, name, m->config.num_layers);
  }
  return OSP_OK;
}

/* Used where it lies in the mapped file: f32, and a matrix's bf16, when aligned for their loads. */
static bool usable_in_place(const osp_st_entry *e, bool matrix) {
  if (e->dtype == OSP_ST_F32) return (uintptr_t)e->data % sizeof(float) == 0;
  return matrix && e->dtype == OSP_ST_BF16 && (uintptr_t)e->data % sizeof(uint16_t) == 0;
}

static osp_status bind_parameters(osp_umt5 *m, const parameter_list *list, const osp_st_entry **found) {
  size_t convert_bytes = 0, in_place_bytes = 0;
  for (int i = 0; i < list->count; i++) {
    const size_t n = (size_t)osp_st_numel(found[i]);
    if (usable_in_place(found[i], list->items[i].matrix))
      in_place_bytes += n * osp_st_dtype_size(found[i]->dtype);
    else
      convert_bytes += osp_arena_align(n * sizeof(float));
  }
  OSP_TRY(osp_arena_init(&m->converted, "umT5 converted weights", convert_bytes));
  for (int i = 0; i < list->count; i++) {
    const parameter *p = &list->items[i];
    if (usable_in_place(found[i], p->matrix)) {
      const osp_dtype dtype = found[i]->dtype == OSP_ST_BF16 ? OSP_BF16 : OSP_F32;
      *p->slot = osp_tensor_make((void *)found[i]->data, dtype, OSP_CPU, p->ndim, p->shape);
    } else {
      OSP_TRY(osp_arena_tensor(&m->converted, OSP_F32, p->ndim, p->shape, p->slot));
      osp_st_to_f32(found[i], p->slot->data);
    }
  }
  m->weight_bytes = in_place_bytes + convert_bytes;
  return OSP_OK;
}

static osp_status load_parameters(osp_umt5 *m) {
  parameter_list list = {0};
  const osp_st_entry **found = NULL;
  osp_status status = allocate_layers(m);
  if (status == OSP_OK) status = list_parameters(m, &list);
  if (status == OSP_OK) status = detect_names(m);
  if (status == OSP_OK && !(found = calloc((size_t)list.count, sizeof *found)))
    status = osp_fail(OSP_ERR_MEMORY, "out of memory");
  for (int i = 0; status == OSP_OK && i < list.count; i++)
    status = expect_parameter(m, &list.items[i], &found[i]);
  if (status == OSP_OK) status = reject_unexpected(m, found, list.count);
  if (status == OSP_OK) status = bind_parameters(m, &list, found);
  free(found);
  free(list.items);
  return status;
}

/* ---- the folder or file ---- */

static bool is_directory(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* out = a + b, refused when longer than PATH_BYTES. */
static osp_status join(char out[PATH_BYTES], const char *a, const char *b) {
  const int n = snprintf(out, PATH_BYTES, "%s%s", a, b);
  if (n < 0 || n >= PATH_BYTES)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: a path longer than %d bytes", a, PATH_BYTES - 1);
  return OSP_OK;
}

/* config.json and the weights of a folder (save_pretrained's model.safetensors, or its shards'
 * model.safetensors.index.json), or of a weights file or index (config.json beside it). */
static osp_status locate(const char *dir_or_file, char config[PATH_BYTES], char weights[PATH_BYTES]) {
  if (access(dir_or_file, R_OK) != 0)
    return osp_fail(OSP_ERR_IO, "%s: cannot read the umT5 encoder: %s", dir_or_file, strerror(errno));
  if (is_directory(dir_or_file)) {
    static const char *const stems[] = {"model", NULL};
    OSP_TRY(join(config, dir_or_file, "/config.json"));
    OSP_TRY(osp_st_locate(dir_or_file, stems, weights, PATH_BYTES));
  } else {
    char copy[PATH_BYTES];
    OSP_TRY(join(weights, dir_or_file, ""));
    OSP_TRY(join(copy, dir_or_file, ""));
    OSP_TRY(join(config, dirname(copy), "/config.json"));
  }
  if (access(config, R_OK) != 0)
    return osp_fail(OSP_ERR_MISSING, "%s: no config.json for the umT5 encoder (looked for %s)", dir_or_file, config);
  return OSP_OK;
}

osp_status osp_umt5_load(const char *dir_or_file, osp_umt5 *m) {
  *m = (osp_umt5){0};
  char config[PATH_BYTES], weights[PATH_BYTES];
  osp_status status = locate(dir_or_file, config, weights);
  if (status == OSP_OK) status = osp_umt5_config_load(config, &m->config);
  if (status == OSP_OK) status = osp_st_open(weights, &m->file);
  if (status == OSP_OK) status = load_parameters(m);
  if (status != OSP_OK) osp_umt5_free(m);
  return status;
}

osp_status osp_umt5_load_file(const osp_umt5_config *config, const char *weights, osp_umt5 *m) {
  *m = (osp_umt5){.config = *config};
  osp_status status = osp_st_open(weights, &m->file);
  if (status == OSP_OK) status = load_parameters(m);
  if (status != OSP_OK) osp_umt5_free(m);
  return status;
}

/* ---- on a device ---- */

/* The dtype a parameter has on `device`: the device's for the matrices (bf16 on CUDA), f32 for the
 * norms and the position tables. */
static osp_dtype device_dtype(const parameter *p, osp_device device) {
  return p->matrix ? osp_device_dtype(device) : OSP_F32;
}

/* The parameters of `list` (m's) in one arena on m->device, in device_dtype, not yet filled. */
static osp_status place_parameters(const parameter_list *list, osp_umt5 *m) {
  size_t bytes = 0;
  for (int i = 0; i < list->count; i++) {
    const parameter *p = &list->items[i];
    bytes += osp_arena_align((size_t)(p->shape[0] * (p->ndim == 2 ? p->shape[1] : 1)) *
                             osp_dtype_size(device_dtype(p, m->device)));
  }
  OSP_TRY(osp_device_arena(&m->converted, "umT5 weights", m->device, bytes));
  for (int i = 0; i < list->count; i++) {
    const parameter *p = &list->items[i];
    OSP_TRY(osp_arena_tensor(&m->converted, device_dtype(p, m->device), p->ndim, p->shape, p->slot));
  }
  m->weight_bytes = bytes;
  return OSP_OK;
}

/* An empty encoder of `config` on `device` and the list of its parameters (free list->items). */
static osp_status start_on(const osp_umt5_config *config, osp_device device, osp_umt5 *m, parameter_list *list) {
  *m = (osp_umt5){.config = *config, .device = device};
  *list = (parameter_list){0};
  OSP_TRY(allocate_layers(m));
  OSP_TRY(list_parameters(m, list));
  return place_parameters(list, m);
}

osp_status osp_umt5_to_device(const osp_umt5 *src, osp_device device, osp_umt5 *dst) {
  osp_umt5 view = *src; /* its slots are src's tensors */
  parameter_list from = {0}, to = {0};
  osp_status status = start_on(&src->config, device, dst, &to);
  dst->names = src->names;
  if (status == OSP_OK) status = list_parameters(&view, &from);
  for (int i = 0; status == OSP_OK && i < to.count; i++) status = osp_copy(from.items[i].slot, to.items[i].slot);
  free(from.items);
  free(to.items);
  if (status != OSP_OK) osp_umt5_free(dst);
  return status;
}

osp_status osp_umt5_init_random(const osp_umt5_config *config, uint64_t seed, osp_device device, osp_umt5 *m) {
  parameter_list list;
  osp_status status = start_on(config, device, m, &list);
  for (int i = 0; status == OSP_OK && i < list.count; i++) {
    const parameter *p = &list.items[i];
    const float scale = p->ndim == 2 && p->matrix ? 1.0f / sqrtf((float)p->shape[1]) : 1.0f;
    status = osp_randn_fill(seed, (uint32_t)i, scale, p->slot);
  }
  free(list.items);
  if (status != OSP_OK) osp_umt5_free(m);
  return status;
}

void osp_umt5_free(osp_umt5 *m) {
  free(m->layers);
  if (m->file.entries || m->file.map) osp_st_close(&m->file);
  osp_arena_free(&m->converted);
  *m = (osp_umt5){0};
}
