/* osp quant hif8: the HiF8 rule (src/quant/hif8.h) applied to every tensor of a file, so anyone can
 * check it against their own implementation. A contract like osp dit's: keep it stable. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "core/safetensors.h"
#include "core/status.h"
#include "ops/ops.h"

/* A tensor quantized as its dtype says: f32 and bf16 in place of themselves, other floats (f16,
 * f64, f8) through f32 and written as f32; integers and bool copied unchanged. */
static osp_status quantize_entry(const osp_st_entry *e, float scale_max, osp_st_write_entry *out, void **owned) {
  const int64_t n = osp_st_numel(e);
  const bool bf16 = e->dtype == OSP_ST_BF16;
  const bool floating = e->dtype == OSP_ST_F32 || bf16 || e->dtype == OSP_ST_F16 || e->dtype == OSP_ST_F64 ||
                        e->dtype == OSP_ST_F8_E4M3 || e->dtype == OSP_ST_F8_E5M2;
  *out = (osp_st_write_entry){e->name, e->dtype, e->ndim, e->shape, e->data};
  if (!floating) return OSP_OK;
  *owned = malloc((size_t)n * (bf16 ? 2 : 4) + 1);
  if (!*owned) return osp_fail(OSP_ERR_MEMORY, "tensor '%s': out of memory", e->name);
  osp_tensor t = osp_tensor_make(*owned, bf16 ? OSP_BF16 : OSP_F32, OSP_CPU, e->ndim, e->shape);
  if (bf16) memcpy(*owned, e->data, (size_t)n * 2);
  else osp_st_to_f32(e, *owned);
  out->dtype = bf16 ? OSP_ST_BF16 : OSP_ST_F32;
  out->data = *owned;
  const osp_status status = osp_hif8_quantize(&t, scale_max, &t);
  return status == OSP_OK ? OSP_OK : osp_fail_context(status, "tensor '%s'", e->name);
}

static osp_status quantize_file(const char *input, const char *output, float scale_max) {
  osp_st_file file;
  OSP_TRY(osp_st_open(input, &file));
  osp_st_write_entry *entries = calloc((size_t)file.count + 1, sizeof *entries);
  void **owned = calloc((size_t)file.count + 1, sizeof *owned);
  osp_status status = entries && owned ? OSP_OK : osp_fail(OSP_ERR_MEMORY, "out of memory");
  for (int i = 0; status == OSP_OK && i < file.count; i++)
    status = quantize_entry(&file.entries[i], scale_max, &entries[i], &owned[i]);
  if (status == OSP_OK) status = osp_st_write(output, entries, file.count);
  for (int i = 0; owned && i < file.count; i++) free(owned[i]);
  free(owned);
  free(entries);
  osp_st_close(&file);
  return status;
}

int cmd_quant(int argc, char **argv) {
  const char *format = NULL, *inputs = NULL, *output = NULL, *scale = NULL;
  cli_option options[] = {
      {"--inputs", NULL, "I.safetensors", "the tensors to quantize", &inputs, NULL},
      {"--output", "-o", "O.safetensors", "where to write them (a temporary name, then renamed)", &output, NULL},
      {"--scale-max", NULL, "S", "per-tensor absmax scaling: x·s quantized, then divided by s, s = S / max|x| "
                                 "(15 in the forward pass, 224 for gradients); without it the element rule alone",
       &scale, NULL},
      {0},
  };
  cli_command command = {
      .name = "quant",
      .usage = "osp quant hif8 --inputs I.safetensors -o O.safetensors [--scale-max S]",
      .summary = "Applies HiF8 quantize-dequantize to every tensor of a file.",
      .details = "The element rule of OSP-Next's HiF8 (PAPER.md 7.2; src/quant/hif8.h) on each floating\n"
                 "tensor, in float32: f32 tensors stay f32; bf16 ones stay bf16, through the reference's\n"
                 "sequence bf16(hif8(bf16(x*s))/s); other floats are written as f32. Integer and bool\n"
                 "tensors are copied unchanged. Names and shapes are kept.",
      .options = options,
      .operand = &format,
  };
  int rc = cli_parse(&command, argc, argv);
  if (rc) return rc < 0 ? CLI_EXIT_OK : rc;
  if (!format || strcmp(format, "hif8")) return cli_usage_error(&command, "expected the format 'hif8' (osp quant hif8 ...)");
  if (!inputs || !output) return cli_usage_error(&command, "give --inputs I.safetensors and -o O.safetensors");
  char *end = NULL;
  const float scale_max = scale ? strtof(scale, &end) : 0.0f;
  if (scale && (end == scale || *end || !(scale_max > 0.0f) || !isfinite(scale_max)))
    return cli_usage_error(&command, "--scale-max: expected a number > 0, found '%s'", scale);
  const osp_status status = quantize_file(inputs, output, scale_max);
  return status == OSP_OK ? CLI_EXIT_OK : cli_failure(status);
}
