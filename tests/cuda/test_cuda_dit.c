/* The whole DiT forward on CUDA (bf16 weights and activations, f32 accumulation) against the CPU
 * forward (f32) of the same model: random weights drawn on the GPU, copied to the host (so both
 * sides hold the same bf16-rounded numbers), inputs rounded to bf16 likewise. What is left is the
 * rounding of activations to bf16 between ops (8 significant bits), which compounds over layers:
 * the velocity must agree within 3% of its largest magnitude, and on average within 1%.
 * Cases: the tiny configs of the parity suite (head_dim 32/64/128, dense and Skiparse schedules)
 * and one block shaped like Wan2.1-1.3B. Exits 77 (skip) where there is no GPU.
 *
 * Under HiF8 (quant and quant_attn) bf16 rounding moves some values across HiF8's rounding
 * boundaries (a whole step, 1/8 to 1/2 of a value), and in these tiny random models HiF8 moves the
 * velocity by about as much as bf16 does (~2%), so the two forwards cannot agree as closely as the
 * quantizer's bits do (test_cuda_quant: bit for bit). Checked: the CUDA HiF8 velocity is nearer
 * the CPU's HiF8 velocity than the CPU's unquantized one (CUDA quantizes, and as the CPU does),
 * and within 5% of it on average. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "gpu_test.h"
#include "model/dit.h"
#include "ops/ops.h"

const char gpu_test_name[] = "test_cuda_dit";

typedef struct {
  const char *name;
  int layers, heads, head_dim, ffn_dim, text_dim, freq_dim;
  const char *schedule; /* NULL: all full */
  int64_t latents[5];   /* B, 16, F, H, W */
  int64_t text_rows;
} dit_case;

static osp_model_config tiny_config(const dit_case *c) {
  osp_model_config config;
  osp_config_preset("wan2.1-t2v-1.3b", &config);
  config.num_layers = c->layers;
  config.num_heads = c->heads;
  config.head_dim = c->head_dim;
  config.dim = c->heads * c->head_dim;
  config.ffn_dim = c->ffn_dim;
  config.text_dim = c->text_dim;
  config.freq_dim = c->freq_dim;
  memset(config.schedule, OSP_PATTERN_FULL, sizeof config.schedule);
  config.num_full_blocks = c->layers; /* all full until a case sets its schedule */
  return config;
}

/* max|a − b| / max|b| and mean|a − b| / mean|b|. */
static void compare(const osp_tensor *got, const osp_tensor *want, double *max_rel, double *mean_rel) {
  const float *g = got->data, *w = want->data;
  double max_diff = 0, max_ref = 0, sum_diff = 0, sum_ref = 0;
  for (int64_t i = 0; i < osp_tensor_numel(want); i++) {
    const double d = fabs((double)g[i] - w[i]);
    max_diff = fmax(max_diff, isnan(d) ? INFINITY : d);
    max_ref = fmax(max_ref, fabs(w[i]));
    sum_diff += d;
    sum_ref += fabs(w[i]);
  }
  *max_rel = max_diff / max_ref;
  *mean_rel = sum_diff / sum_ref;
}

/* The CUDA and CPU velocities of one case (want: the CPU's); false where a forward failed. */
static bool forward_both(const dit_case *c, const osp_dit *gpu, const osp_dit *cpu, const osp_tensor *latents,
                         const osp_tensor *timestep, const osp_tensor *context, osp_tensor *got, osp_tensor *want) {
  osp_status status = osp_dit_forward(cpu, latents, timestep, context, want);
  if (status == OSP_OK) status = osp_dit_forward(gpu, latents, timestep, context, got);
  CHECK(status == OSP_OK);
  if (status != OSP_OK) fprintf(stderr, "%s: %s\n", c->name, osp_last_error());
  return status == OSP_OK;
}

/* Both DiTs again with HiF8 on (the weights are the same: quantization happens in the forward). */
static void run_quantized(const dit_case *c, osp_dit *gpu, osp_dit *cpu, const osp_tensor *latents,
                          const osp_tensor *timestep, const osp_tensor *context, const osp_tensor *plain) {
  osp_tensor got = host_zeros(5, plain->shape), want = host_zeros(5, plain->shape);
  gpu->config.quant = gpu->config.quant_attn = cpu->config.quant = cpu->config.quant_attn = OSP_QUANT_HIF8;
  if (forward_both(c, gpu, cpu, latents, timestep, context, &got, &want)) {
    double max_rel, mean_rel, plain_max, plain_mean;
    compare(&got, &want, &max_rel, &mean_rel);
    compare(&got, plain, &plain_max, &plain_mean);
    printf("%-28s HiF8 velocity vs CPU HiF8: max %.2e, mean %.2e; vs CPU unquantized: mean %.2e\n", c->name,
           max_rel, mean_rel, plain_mean);
    CHECK(mean_rel < plain_mean);
    CHECK(mean_rel <= 5e-2);
  }
  gpu->config.quant = gpu->config.quant_attn = cpu->config.quant = cpu->config.quant_attn = OSP_QUANT_NONE;
  free(got.data);
  free(want.data);
}

static void run_case(const dit_case *c, osp_model_config config, bool quantized) {
  if (c->schedule) {
    CHECK(osp_config_set_schedule(c->name, c->schedule, &config) == OSP_OK);
    CHECK(osp_config_set_sparse_ratio(c->name, 2, &config) == OSP_OK);
  }
  osp_dit gpu, cpu;
  osp_status status = osp_dit_init_random(&config, 11, OSP_CUDA, &gpu);
  CHECK(status == OSP_OK);
  if (status != OSP_OK) {
    fprintf(stderr, "%s: %s\n", c->name, osp_last_error());
    return;
  }
  CHECK(osp_dit_to_device(&gpu, OSP_CPU, &cpu) == OSP_OK);
  const int64_t *l = c->latents;
  /* N(0, 1) inputs rounded to bf16, so the GPU sees exactly what the CPU sees: streams 1 and 2 of
   * seed 7 in every case */
  const int64_t context_shape[3] = {l[0], c->text_rows, config.text_dim};
  osp_tensor latents = host_random_stream(7, 1, 5, l, 0.0f, 1.0f, true);
  osp_tensor context = host_random_stream(7, 2, 3, context_shape, 0.0f, 1.0f, true);
  osp_tensor timestep = host_zeros(1, (int64_t[]){l[0]});
  for (int64_t b = 0; b < l[0]; b++) ((float *)timestep.data)[b] = 999.0f * (float)(b + 1) / (float)(l[0] + 1);
  osp_tensor want = host_zeros(5, l), got = host_zeros(5, l);
  if (forward_both(c, &gpu, &cpu, &latents, &timestep, &context, &got, &want)) {
    double max_rel = 0, mean_rel = 0;
    compare(&got, &want, &max_rel, &mean_rel);
    printf("%-28s velocity vs CPU: max %.2e, mean %.2e (relative)\n", c->name, max_rel, mean_rel);
    CHECK(max_rel <= 3e-2);
    CHECK(mean_rel <= 1e-2);
    if (quantized) run_quantized(c, &gpu, &cpu, &latents, &timestep, &context, &want);
  }
  free(latents.data);
  free(context.data);
  free(timestep.data);
  free(want.data);
  free(got.data);
  osp_dit_free(&gpu);
  osp_dit_free(&cpu);
}

int main(void) {
  osp_arena probe;
  if (osp_device_arena(&probe, "probe", OSP_CUDA, 64) != OSP_OK) {
    printf("test_cuda_dit: skipped, no GPU: %s\n", osp_last_error());
    return 77;
  }
  osp_arena_free(&probe);
  static const dit_case cases[] = {
      {"c1 1x32 dense", 1, 1, 32, 64, 16, 256, NULL, {1, 16, 1, 4, 4}, 5},
      {"c2 2x64 dense", 2, 2, 64, 256, 32, 256, NULL, {2, 16, 3, 12, 20}, 7},
      {"c3 3x128 dense", 3, 3, 128, 512, 16, 256, NULL, {1, 16, 5, 8, 28}, 9},
      {"c2 2x64 token,group", 2, 2, 64, 256, 32, 256, "token,group", {2, 16, 3, 12, 20}, 7},
      {"c3 3x128 full,token,group", 3, 3, 128, 512, 16, 256, "full,token,group", {1, 16, 5, 10, 26}, 9},
      {"c5 3x32 full,token,full", 3, 3, 32, 160, 16, 256, "full,token,full", {1, 16, 3, 14, 18}, 4},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i], tiny_config(&cases[i]), true);

  /* One block of Wan2.1-1.3B (dim 1536, 12 heads x 128, FFN 8960, text 4096) on 2 x 8 x 8 tokens,
   * dense and token-wise. */
  osp_model_config wan;
  CHECK(osp_config_preset("wan2.1-t2v-1.3b", &wan) == OSP_OK);
  wan.num_layers = 1;
  wan.num_full_blocks = 1;
  run_case(&(dit_case){"wan2.1-1.3b block", .latents = {1, 16, 2, 16, 16}, .text_rows = 32}, wan, true);
  run_case(&(dit_case){"wan2.1-1.3b block token", .schedule = "token", .latents = {1, 16, 2, 18, 22},
                       .text_rows = 32}, wan, false);
  return test_summary("test_cuda_dit");
}
