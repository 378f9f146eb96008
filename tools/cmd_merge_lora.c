/* osp merge-lora: LoRAs merged into a DiT's weights file (model/lora.h), written in the base file's
 * own names and dtypes, every tensor no LoRA changed copied byte for byte. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "core/clock.h"
#include "core/status.h"
#include "model/dit.h"
#include "model/lora.h"

typedef struct {
  const char *weights, *config, *preset, *output;
  cli_list loras;
} merge_arguments;

/* The compute dtype of a stored float dtype a merge can write back (f32, bf16, f16). */
static osp_status merged_dtype(const osp_st_entry *e, osp_dtype *dtype) {
  switch (e->dtype) {
    case OSP_ST_F32: *dtype = OSP_F32; return OSP_OK;
    case OSP_ST_BF16: *dtype = OSP_BF16; return OSP_OK;
    case OSP_ST_F16: *dtype = OSP_F16; return OSP_OK;
    default:
      return osp_fail(OSP_ERR_UNSUPPORTED, "%s: tensor '%s' is %s: a LoRA merges into F32, BF16 or F16 tensors", e->file,
                      e->name, osp_st_dtype_name(e->dtype));
  }
}

/* A changed parameter in its entry's dtype (rounded to nearest even from the f32 sum); *owned
 * malloc'd. */
static osp_status encode(const osp_st_entry *e, const osp_tensor *merged, osp_st_write_entry *out, void **owned) {
  osp_dtype dtype = OSP_F32;
  OSP_TRY(merged_dtype(e, &dtype));
  const size_t n = (size_t)osp_tensor_numel(merged);
  if (!(*owned = malloc(n * osp_dtype_size(dtype) + 1)))
    return osp_fail(OSP_ERR_MEMORY, "tensor '%s': out of memory", e->name);
  osp_convert_from_f32(dtype, merged->data, *owned, n);
  out->data = *owned;
  return OSP_OK;
}

/* The changed parameter named `name`, or −1. */
static int find_changed(const osp_dit_parameter *params, int count, const bool *changed, const char *name) {
  for (int k = 0; k < count; k++)
    if (changed[k] && !strcmp(params[k].name, name)) return k;
  return -1;
}

/* The file's entries in their order, each changed parameter's data from the merged DiT; *merged
 * counts those. */
static osp_status write_merged(const osp_dit *dit, const bool *changed, const char *output, int *merged) {
  const osp_st_file *file = &dit->file;
  osp_dit_parameter *params;
  int count;
  OSP_TRY(osp_dit_parameters(dit, &params, &count));
  osp_st_write_entry *entries = calloc((size_t)file->count + 1, sizeof *entries);
  void **owned = calloc((size_t)file->count + 1, sizeof *owned);
  osp_status status = entries && owned ? OSP_OK : osp_fail(OSP_ERR_MEMORY, "out of memory");
  *merged = 0;
  for (int i = 0; status == OSP_OK && i < file->count; i++) {
    const osp_st_entry *e = &file->entries[i];
    entries[i] = (osp_st_write_entry){e->name, e->dtype, e->ndim, e->shape, e->data};
    const int k = find_changed(params, count, changed, e->name);
    if (k < 0) continue;
    status = encode(e, &params[k].tensor, &entries[i], &owned[i]);
    ++*merged;
  }
  if (status == OSP_OK) status = osp_st_write(output, entries, file->count);
  for (int i = 0; owned && i < file->count; i++) free(owned[i]);
  free(owned);
  free(entries);
  free(params);
  return status;
}

static osp_status merge(const merge_arguments *a) {
  const double start = osp_seconds();
  osp_model_config config;
  osp_lora_spec loras[CLI_LIST_MAX];
  OSP_TRY(cli_lora_specs(&a->loras, loras));
  OSP_TRY(cli_dit_config(a->config, a->preset, a->weights, &config));
  osp_dit dit;
  OSP_TRY(osp_dit_load(&config, a->weights, &dit));
  osp_dit_parameter *params = NULL; /* only counted: osp_lora_apply moves weights */
  int count = 0;
  osp_status status = osp_dit_parameters(&dit, &params, &count);
  free(params);
  bool *changed = status == OSP_OK ? calloc((size_t)count, sizeof *changed) : NULL;
  if (status == OSP_OK && !changed) status = osp_fail(OSP_ERR_MEMORY, "out of memory");
  if (status == OSP_OK) status = osp_lora_apply(loras, a->loras.count, &dit, changed);
  int merged = 0;
  if (status == OSP_OK) status = write_merged(&dit, changed, a->output, &merged);
  if (status == OSP_OK)
    printf("wrote %s: %d tensors, %d of them changed by %d LoRA%s, in %.1f s\n", a->output, dit.file.count, merged,
           a->loras.count, a->loras.count > 1 ? "s" : "", osp_seconds() - start);
  free(changed);
  osp_dit_free(&dit);
  return status;
}

int cmd_merge_lora(int argc, char **argv) {
  merge_arguments a = {0};
  cli_option options[] = {
      {"--weights", NULL, "BASE.safetensors", "the DiT's weights (original Wan2.1 or diffusers names, a .json "
                                              "index of shards too)", &a.weights, NULL},
      {"--output", "-o", "OUT.safetensors", "where to write (one file; a temporary name, then renamed)", &a.output, NULL},
      {"--config", NULL, "C.json", "the DiT's config (default: config.json beside the weights)", &a.config, NULL},
      {"--preset", NULL, "NAME", "a built-in config instead: wan2.1-t2v-1.3b, wan2.1-t2v-14b, ...", &a.preset, NULL},
      {0},
  };
  cli_command command = {
      .name = "merge-lora",
      .usage = "osp merge-lora --weights BASE.safetensors --lora FILE[:SCALE] [--lora ...] -o OUT.safetensors "
               "[--config C.json]",
      .summary = "Merges LoRAs into a DiT's weights file.",
      .details = "Each adapted Linear becomes W + SCALE·(α/r)·B·A (and b + SCALE·Δb where the LoRA has bias\n"
                 "differences; α as diffusers' Wan loader takes it), summed in float32 on the CPU and rounded\n"
                 "to the base tensor's dtype (F32, BF16 or F16). The output keeps the base file's tensor names, dtypes and order; every tensor no LoRA\n"
                 "changes is copied byte for byte (the base's __metadata__ is not). A LoRA tensor the DiT has no\n"
                 "place for, or of the wrong shape, is an error naming the file and the tensor. Names, α and the\n"
                 "tensors diffusers skips: src/model/lora.h.",
      .options = options,
      .lists = (cli_list_option[]){{"--lora", CLI_LORA_METAVAR, CLI_LORA_HELP " (at least one)", &a.loras}, {0}},
  };
  int rc = cli_parse(&command, argc, argv);
  if (rc) return rc < 0 ? CLI_EXIT_OK : rc;
  if (!a.weights) return cli_usage_error(&command, "missing --weights BASE.safetensors");
  if (!a.loras.count) return cli_usage_error(&command, "missing --lora FILE[:SCALE]");
  if (!a.output) return cli_usage_error(&command, "missing -o OUT.safetensors");
  if (a.config && a.preset) return cli_usage_error(&command, "give --config or --preset, not both");
  const osp_status status = merge(&a);
  return status == OSP_OK ? CLI_EXIT_OK : cli_failure(status);
}
