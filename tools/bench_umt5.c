/* osp bench --umt5 (bench_umt5.h). bench/torch_umt5.py times transformers' UMT5EncoderModel on
 * the same work. */
#include "bench_umt5.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/clock.h"
#include "core/status.h"
#include "model/umt5.h"
#include "ops/ops.h"

/* Multiply-adds ×2 of one encode of L tokens. */
static double encode_flops(const osp_umt5_config *c, int64_t L) {
  const double d = c->d_model, inner = (double)c->num_heads * c->d_kv, ff = c->d_ff;
  return c->num_layers * (2.0 * L * (4.0 * d * inner + 3.0 * d * ff) + 4.0 * (double)L * L * inner);
}

static osp_status encode(const osp_umt5 *m, const int32_t *ids, int64_t tokens, osp_tensor *context,
                         double *seconds) {
  const double start = osp_seconds();
  OSP_TRY(osp_umt5_encode(m, ids, tokens, context));
  OSP_TRY(osp_device_synchronize(m->device));
  *seconds = osp_seconds() - start;
  return OSP_OK;
}

osp_status bench_umt5(osp_device device, int64_t tokens, json_t *results) {
  osp_umt5_config config;
  osp_umt5_config_xxl(&config);
  osp_umt5 m;
  const double start = osp_seconds();
  OSP_TRY(osp_umt5_init_random(&config, 1, device, &m));
  printf("random umT5-XXL weights on the device in %.1f s (%.2f GiB)\n", osp_seconds() - start,
         m.weight_bytes / 1073741824.0);
  int32_t *ids = malloc((size_t)tokens * sizeof *ids);
  osp_tensor context = osp_tensor_make(NULL, OSP_F32, OSP_CPU, 3, (const int64_t[]){1, tokens, config.d_model});
  context.data = malloc(osp_tensor_bytes(&context));
  osp_status status = ids && context.data ? OSP_OK : osp_fail(OSP_ERR_MEMORY, "bench --umt5: out of memory");
  for (int64_t i = 0; status == OSP_OK && i < tokens; i++) ids[i] = (int32_t)((i * 7919 + 1) % config.vocab_size);
  double warm = 0, seconds = 0;
  if (status == OSP_OK) status = encode(&m, ids, tokens, &context, &warm);
  if (status == OSP_OK) status = encode(&m, ids, tokens, &context, &seconds);
  if (status == OSP_OK) {
    const double flops = encode_flops(&config, tokens);
    printf("umt5      encode %lld tokens %11.3f ms %9.1f TFLOP/s  peak device memory %.2f GiB\n", (long long)tokens,
           seconds * 1e3, flops / seconds * 1e-12, osp_device_peak_bytes(device) / 1073741824.0);
    json_array_append_new(results, json_pack("{s:s, s:I, s:f, s:f}", "section", "umt5", "tokens", (json_int_t)tokens,
                                             "ms", seconds * 1e3, "flops", flops));
  }
  free(ids);
  free(context.data);
  osp_umt5_free(&m);
  return status;
}
