/* osp info FILE.safetensors: what a weights file holds. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "core/config.h"
#include "core/safetensors.h"
#include "model/dit.h"

/* The number of DiT blocks: one more than the largest N of "blocks.N." in the names. */
static int count_blocks(const osp_st_file *file, const char *prefix) {
  size_t skip = strlen(prefix);
  int blocks = 0;
  for (int i = 0; i < file->count; i++) {
    const char *name = file->entries[i].name;
    int n;
    if (strlen(name) > skip && sscanf(name + skip, "blocks.%d.", &n) == 1 && n + 1 > blocks) blocks = n + 1;
  }
  return blocks;
}

/* The preset whose dim and depth match, or NULL. */
static const char *matching_preset(int64_t dim, int blocks) {
  for (int i = 0; osp_config_preset_names[i]; i++) {
    osp_model_config c;
    if (osp_config_preset(osp_config_preset_names[i], &c) == OSP_OK && c.dim == dim && c.num_layers == blocks &&
        c.skiparse_model_type == OSP_SKIPARSE_FULL)
      return osp_config_preset_names[i];
  }
  return NULL;
}

static void describe_model(const osp_st_file *file) {
  osp_dit_names names;
  const char *prefix;
  if (osp_dit_detect_names(file, &names, &prefix) != OSP_OK) {
    printf("model: not recognised (%s)\n", osp_last_error());
    return;
  }
  char patch_name[128];
  snprintf(patch_name, sizeof patch_name, "%spatch_embedding.weight", prefix);
  const osp_st_entry *patch = osp_st_find(file, patch_name);
  int blocks = count_blocks(file, prefix);
  int64_t dim = patch ? patch->shape[0] : 0;
  const char *preset = matching_preset(dim, blocks);
  printf("model: Wan2.1 T2V DiT, %s tensor names%s%s, dim %" PRId64 ", %d blocks%s%s%s\n",
         names == OSP_NAMES_ORIGINAL ? "original" : "diffusers", *prefix ? " behind prefix " : "", prefix, dim,
         blocks, preset ? " (shapes of " : "", preset ? preset : "", preset ? ")" : "");
}

/* The config (--config, --preset, or config.json beside the file) and its Skiparse schedule. */
static void describe_config(const char *label, const osp_model_config *c) {
  char schedule[OSP_MAX_LAYERS + 1];
  printf("config %s: dim %d (%d heads x %d), %d layers, ffn %d, text_dim %d, sparse ratio %d\n", label, c->dim,
         c->num_heads, c->head_dim, c->num_layers, c->ffn_dim, c->text_dim, c->sparse_ratio);
  printf("schedule: %s\n", osp_config_schedule_string(c, schedule, sizeof schedule));
}

static osp_status read_config(const char *config_path, const char *preset, const char *weights,
                              osp_model_config *config, const char **label) {
  if (preset) {
    *label = preset;
    return osp_config_preset(preset, config);
  }
  static char beside[4096];
  if (!config_path) {
    const char *slash = strrchr(weights, '/');
    snprintf(beside, sizeof beside, "%.*sconfig.json", slash ? (int)(slash - weights + 1) : 0, weights);
    if (access(beside, R_OK) != 0) return OSP_ERR_MISSING; /* nothing to describe */
    config_path = beside;
  }
  *label = config_path;
  return osp_config_load(config_path, config);
}

static void list_tensors(const osp_st_file *file) {
  int64_t parameters = 0;
  for (int i = 0; i < file->count; i++) {
    const osp_st_entry *e = &file->entries[i];
    char shape[160];
    osp_tensor view = osp_tensor_make(NULL, OSP_F32, OSP_CPU, e->ndim, e->shape);
    printf("%-60s %-8s %s\n", e->name, osp_st_dtype_name(e->dtype), osp_shape_string(&view, shape, sizeof shape));
    parameters += osp_st_numel(e);
  }
  printf("%d tensors, %" PRId64 " parameters, %zu bytes\n", file->count, parameters, file->map_size);
}

int cmd_info(int argc, char **argv) {
  const char *path = NULL, *config_path = NULL, *preset = NULL;
  cli_option options[] = {
      {"--config", NULL, "C.json", "also describe this config and its Skiparse schedule "
                                   "(default: config.json beside the file, if any)", &config_path, NULL},
      {"--preset", NULL, "NAME", "describe a built-in config instead", &preset, NULL},
      {0},
  };
  cli_command command = {
      .name = "info",
      .usage = "osp info FILE.safetensors [--config C.json | --preset NAME]",
      .summary = "Lists every tensor of a safetensors file (name, dtype, shape), the parameter count, "
                 "and which model the names belong to.",
      .options = options,
      .operand = &path,
  };
  int rc = cli_parse(&command, argc, argv);
  if (rc) return rc < 0 ? CLI_EXIT_OK : rc;
  if (!path) return cli_usage_error(&command, "missing FILE.safetensors");
  osp_st_file file;
  osp_status status = osp_st_open(path, &file);
  if (status != OSP_OK) return cli_failure(status);
  list_tensors(&file);
  describe_model(&file);
  osp_st_close(&file);
  osp_model_config config;
  const char *label = NULL;
  status = read_config(config_path, preset, path, &config, &label);
  if (status == OSP_OK) describe_config(label, &config);
  return status == OSP_OK || (status == OSP_ERR_MISSING && !config_path) ? CLI_EXIT_OK : cli_failure(status);
}
