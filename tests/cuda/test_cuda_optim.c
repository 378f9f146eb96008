/* The optimizer's ops (src/ops/optim.h) on CUDA against the same ops on the CPU, on the same random
 * values:
 *   AdamW, three steps with weight decay:     the same bits (one float32 recipe on both backends)
 *   the EMA's lerp (decay 0.9 and 0.2, both   the same bits
 *     of torch's branches)
 *   x·factor (f32):                           the same bits
 *   Σx² (f32, and bf16 on CUDA against the    |gpu − cpu| ≤ 1e-12·cpu (double sums in two orders)
 *     CPU's sum of the same rounded values)
 *   clip_grad_norm over several tensors:      the norm as Σx²; the clipped gradients within
 *                                             1e-6 relative (the clip factor comes from a norm
 *                                             summed in another order)
 * Sizes: odd (the grid-stride tails), one element, and 3·10⁶ (many values per thread).
 * Exits 77 (skip) where there is no GPU. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gpu_test.h"
#include "ops/optim.h"

const char gpu_test_name[] = "test_cuda_optim";

static const int64_t sizes[] = {1, 1237, 3000001};

static bool same_bits(const osp_tensor *gpu, const osp_tensor *cpu) {
  osp_tensor back = to_host(gpu);
  const bool same = memcmp(back.data, cpu->data, osp_tensor_bytes(cpu)) == 0;
  free_host(&back);
  return same;
}

static void test_adamw(int64_t n) {
  osp_tensor host[4] = {host_random(1, 1, &n, 0.0f, 1.0f, false), host_random(1, 1, &n, 0.0f, 0.1f, false),
                        host_random(1, 1, &n, 0.0f, 0.01f, false), host_zeros(1, &n)};
  for (int64_t i = 0; i < n; i++) ((float *)host[3].data)[i] = fabsf(((float *)host[2].data)[i]); /* v ≥ 0 */
  osp_tensor gpu[4];
  for (int k = 0; k < 4; k++) gpu[k] = on_gpu(&host[k], OSP_F32);
  for (int64_t step = 1; step <= 3; step++) {
    const osp_adamw_config config = {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                                     .weight_decay = 0.01, .step = step};
    CHECK(osp_adamw_step(&host[0], &host[1], &host[2], &host[3], &config) == OSP_OK);
    CHECK(ran(osp_adamw_step(&gpu[0], &gpu[1], &gpu[2], &gpu[3], &config), "osp_adamw_step"));
  }
  const char *names[] = {"param", "grad", "m", "v"};
  for (int k = 0; k < 4; k++) {
    const bool same = same_bits(&gpu[k], &host[k]);
    if (!same) fprintf(stderr, "adamw n=%lld: %s differs from the CPU's\n", (long long)n, names[k]);
    CHECK(same);
    free_gpu(&gpu[k]);
    free_host(&host[k]);
  }
}

static void test_lerp_and_scale(int64_t n) {
  osp_tensor ema = host_random(2, 1, &n, 0.0f, 1.0f, false), param = host_random(2, 1, &n, 0.5f, 1.0f, false);
  osp_tensor gpu_ema = on_gpu(&ema, OSP_F32), gpu_param = on_gpu(&param, OSP_F32);
  const double decays[] = {0.9, 0.2};
  for (int d = 0; d < 2; d++) {
    CHECK(osp_ema_update(&ema, &param, decays[d]) == OSP_OK);
    CHECK(ran(osp_ema_update(&gpu_ema, &gpu_param, decays[d]), "osp_ema_update"));
    CHECK(same_bits(&gpu_ema, &ema));
  }
  CHECK(osp_scale_in_place(&ema, 0.37f) == OSP_OK);
  CHECK(ran(osp_scale_in_place(&gpu_ema, 0.37f), "osp_scale_in_place"));
  CHECK(same_bits(&gpu_ema, &ema));
  free_gpu(&gpu_ema);
  free_gpu(&gpu_param);
  free_host(&ema);
  free_host(&param);
}

static void test_sum_of_squares(int64_t n, osp_dtype dtype) {
  osp_tensor x = host_random(3, 1, &n, 0.1f, 2.0f, dtype == OSP_BF16);
  osp_tensor gpu = on_gpu(&x, dtype);
  double want = 0, got = 0;
  CHECK(osp_sum_of_squares(&x, &want) == OSP_OK);
  CHECK(ran(osp_sum_of_squares(&gpu, &got), "osp_sum_of_squares"));
  CHECK(fabs(got - want) <= 1e-12 * want);
  free_gpu(&gpu);
  free_host(&x);
}

static void test_clip(void) {
  enum { COUNT = 3 };
  osp_tensor host[COUNT], gpu[COUNT];
  osp_tensor *host_list[COUNT], *gpu_list[COUNT];
  for (int k = 0; k < COUNT; k++) {
    host[k] = host_random(4, 1, &sizes[k], 0.0f, 3.0f, false);
    gpu[k] = on_gpu(&host[k], OSP_F32);
    host_list[k] = &host[k];
    gpu_list[k] = &gpu[k];
  }
  double want = 0, got = 0;
  CHECK(osp_clip_grad_norm(host_list, COUNT, 1.0, &want) == OSP_OK);
  CHECK(ran(osp_clip_grad_norm(gpu_list, COUNT, 1.0, &got), "osp_clip_grad_norm"));
  CHECK(want > 1.0 && fabs(got - want) <= 1e-12 * want); /* > max_norm: the gradients were clipped */
  for (int k = 0; k < COUNT; k++) {
    osp_tensor back = to_host(&gpu[k]);
    double worst = 0, largest = 0;
    for (int64_t i = 0; i < sizes[k]; i++) {
      const double w = ((float *)host[k].data)[i], g = ((float *)back.data)[i];
      worst = fmax(worst, fabs(g - w));
      largest = fmax(largest, fabs(w));
    }
    CHECK(worst <= 1e-6 * largest);
    free_host(&back);
    free_gpu(&gpu[k]);
    free_host(&host[k]);
  }
}

int main(void) {
  if (osp_cuda_init() != OSP_OK) {
    fprintf(stderr, "test_cuda_optim: no GPU (%s): skipped\n", osp_last_error());
    return 77;
  }
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    test_adamw(sizes[s]);
    test_lerp_and_scale(sizes[s]);
    test_sum_of_squares(sizes[s], OSP_F32);
    test_sum_of_squares(sizes[s], OSP_BF16);
  }
  test_clip();
  return test_summary("cuda optimizer");
}
