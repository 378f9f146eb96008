/* osp convert: a PyTorch checkpoint (.pth, from torch.save) into safetensors, every tensor under
 * its own name in its own dtype, so the original Wan2.1 release's T5 and VAE files load. */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "commands.h"
#include "core/clock.h"
#include "core/status.h"
#include "core/torch_checkpoint.h"

static osp_status convert(const char *input, const char *output) {
  const double start = osp_seconds();
  osp_torch_checkpoint checkpoint;
  OSP_TRY(osp_torch_checkpoint_open(input, &checkpoint));
  osp_st_write_entry *entries = calloc((size_t)checkpoint.count + 1, sizeof *entries);
  osp_status status = entries ? OSP_OK : osp_fail(OSP_ERR_MEMORY, "out of memory");
  double bytes = 0;
  for (int i = 0; status == OSP_OK && i < checkpoint.count; i++) {
    const osp_torch_tensor *t = &checkpoint.tensors[i];
    entries[i] = (osp_st_write_entry){t->name, t->dtype, t->ndim, t->shape, t->data};
    double numel = 1;
    for (int d = 0; d < t->ndim; d++) numel *= (double)t->shape[d];
    bytes += numel * (double)osp_st_dtype_size(t->dtype);
  }
  if (status == OSP_OK && checkpoint.count == 0) status = osp_fail(OSP_ERR_FORMAT, "%s: the state dict holds no tensors", input);
  if (status == OSP_OK) status = osp_st_write(output, entries, checkpoint.count);
  if (status == OSP_OK) {
    const double seconds = osp_seconds() - start;
    printf("wrote %s: %d tensors, %.3f GB%s%s%s, in %.1f s (%.2f GB/s)\n", output, checkpoint.count, bytes / 1e9,
           checkpoint.unwrapped[0] ? " (from its '" : "", checkpoint.unwrapped, checkpoint.unwrapped[0] ? "' entry)" : "",
           seconds, bytes / 1e9 / (seconds > 0 ? seconds : 1e-9));
  }
  free(entries);
  osp_torch_checkpoint_close(&checkpoint);
  return status;
}

int cmd_convert(int argc, char **argv) {
  const char *input = NULL, *output = NULL;
  cli_option options[] = {
      {"--output", "-o", "OUT.safetensors", "where to write (a temporary name, then renamed)", &output, NULL},
      {0},
  };
  cli_command command = {
      .name = "convert",
      .usage = "osp convert IN.pth -o OUT.safetensors",
      .summary = "Converts a PyTorch checkpoint (.pth) into safetensors.",
      .details = "Reads torch.save's zip format without Python: the state dict's tensors keep their names\n"
                 "(nested dicts joined with '.'; a {'state_dict': ...} or {'model': ...} wrapper is\n"
                 "unwrapped) and their dtypes; non-tensor values are skipped. The pickle is not executed:\n"
                 "a checkpoint that names anything but tensors, dicts and numbers is refused. For the\n"
                 "original Wan2.1 release: models_t5_umt5-xxl-enc-bf16.pth and Wan2.1_VAE.pth.",
      .options = options,
      .operand = &input,
  };
  int rc = cli_parse(&command, argc, argv);
  if (rc) return rc < 0 ? CLI_EXIT_OK : rc;
  if (!input) return cli_usage_error(&command, "missing IN.pth");
  if (!output) return cli_usage_error(&command, "missing -o OUT.safetensors");
  const osp_status status = convert(input, output);
  return status == OSP_OK ? CLI_EXIT_OK : cli_failure(status);
}
