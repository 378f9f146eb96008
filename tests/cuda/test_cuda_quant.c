/* HiF8 quantize-dequantize on CUDA (osp_hif8_quantize) against the CPU op, bit for bit: f32 and
 * bf16 tensors, with and without the per-tensor scale, sizes that are and are not multiples of the
 * vector width, and inputs that hit every branch of the rule (zeros, subnormals, values flushed,
 * saturated, infinities, NaN, ties). Needs a GPU: without one it exits with 77 (skipped). */
#include <math.h>
#include <string.h>

#include "gpu_test.h"

const char gpu_test_name[] = "test_cuda_quant";

/* Random values over many binades, with the rule's edge cases mixed in. */
static void fill(float *x, int64_t n, uint32_t stream) {
  osp_randn(11, stream, 0, x, (size_t)n);
  const float specials[] = {0.0f, -0.0f, 1e-40f, 1e-8f, 1.1920929e-07f, 1.0625f, -1.0625f, 40960.0f, -40960.0f,
                            32767.0f, INFINITY, -INFINITY, NAN, 15.5f, 2.625f};
  for (int64_t i = 0; i < n; i++) {
    x[i] = ldexpf(x[i], (int)(i % 50) - 25);
    if (i % 7 == 0) x[i] = specials[(i / 7) % (sizeof specials / sizeof specials[0])];
  }
}

static void check_case(osp_dtype dtype, int64_t n, float scale_max) {
  float *x = xmalloc((size_t)n * sizeof(float));
  fill(x, n, (uint32_t)n);
  const size_t element = osp_dtype_size(dtype), bytes = (size_t)n * element;
  void *host = xmalloc(bytes), *want = xmalloc(bytes), *got = xmalloc(bytes);
  osp_convert_from_f32(dtype, x, host, (size_t)n);
  osp_tensor cpu = osp_tensor_make(want, dtype, OSP_CPU, 1, &n);
  memcpy(want, host, bytes);
  must(osp_hif8_quantize(&cpu, scale_max, &cpu), "CPU hif8");
  osp_arena arena = {0};
  must(osp_device_arena(&arena, "hif8 test", OSP_CUDA, bytes + 256), "device arena");
  osp_tensor device;
  must(osp_arena_tensor(&arena, dtype, 1, &n, &device), "device tensor");
  osp_tensor source = osp_tensor_make(host, dtype, OSP_CPU, 1, &n), back = osp_tensor_make(got, dtype, OSP_CPU, 1, &n);
  must(osp_copy(&source, &device), "upload");
  char what[96];
  snprintf(what, sizeof what, "hif8 %s n=%lld scale_max=%g", osp_dtype_name(dtype), (long long)n, (double)scale_max);
  if (ran(osp_hif8_quantize(&device, scale_max, &device), what)) {
    must(osp_copy(&device, &back), "download");
    int64_t differ = 0, first = -1;
    for (int64_t i = 0; i < n; i++) {
      float a = dtype == OSP_BF16 ? osp_bf16_to_f32(((uint16_t *)got)[i]) : ((float *)got)[i];
      float b = dtype == OSP_BF16 ? osp_bf16_to_f32(((uint16_t *)want)[i]) : ((float *)want)[i];
      const bool same = memcmp((char *)got + i * element, (char *)want + i * element, element) == 0 ||
                        (isnan(a) && isnan(b));
      if (!same && first < 0) first = i;
      differ += !same;
    }
    if (differ)
      fprintf(stderr, "%s: %lld of %lld differ, first at %lld (x = %g)\n", what, (long long)differ, (long long)n,
              (long long)first, (double)x[first]);
    CHECK(differ == 0);
  }
  osp_arena_free(&arena);
  free(x);
  free(host);
  free(want);
  free(got);
}

int main(void) {
  if (osp_cuda_init() != OSP_OK) {
    fprintf(stderr, "test_cuda_quant: no GPU (%s): skipped\n", osp_last_error());
    return 77;
  }
  const osp_dtype dtypes[2] = {OSP_F32, OSP_BF16};
  const int64_t sizes[3] = {1, 1037, 1 << 20};
  const float scales[3] = {0.0f, 15.0f, 224.0f};
  for (int d = 0; d < 2; d++)
    for (int s = 0; s < 3; s++)
      for (int k = 0; k < 3; k++) check_case(dtypes[d], sizes[s], scales[k]);
  return test_summary(gpu_test_name);
}
