/* osp info FILE.safetensors: what a weights file holds. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
  const char *path = NULL;
  cli_option options[] = {{0}};
  cli_command command = {
      .name = "info",
      .usage = "osp info FILE.safetensors",
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
  return CLI_EXIT_OK;
}
