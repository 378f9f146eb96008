/* HiF8 quantize-dequantize on the CPU (cpu.h): the element rule of quant/hif8.h over f32 or bf16
 * storage, with or without the per-tensor absmax scale (ops.h, osp_hif8_quantize). */
#include <math.h>

#include "core/dtype.h"
#include "cpu/cpu.h"
#include "quant/hif8.h"

static const float AMAX_FLOOR = 1e-8f;
enum { PARALLEL_MIN = 1 << 16 };

static float element(const void *x, osp_dtype dtype, int64_t i) {
  return dtype == OSP_BF16 ? osp_bf16_to_f32(((const uint16_t *)x)[i]) : ((const float *)x)[i];
}

/* Stores v, rounded to bf16 in a bf16 tensor. */
static void store(void *y, osp_dtype dtype, int64_t i, float v) {
  if (dtype == OSP_BF16) ((uint16_t *)y)[i] = osp_f32_to_bf16(v);
  else ((float *)y)[i] = v;
}

/* An intermediate as the tensor's dtype stores it: rounded to bf16 for bf16. */
static float as_stored(osp_dtype dtype, float v) {
  return dtype == OSP_BF16 ? osp_bf16_to_f32(osp_f32_to_bf16(v)) : v;
}

void osp_cpu_hif8_quantize(const void *x, osp_dtype dtype, void *y, int64_t n, float scale_max) {
  if (scale_max == 0.0f) {
#pragma omp parallel for if (n > PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) store(y, dtype, i, osp_hif8(element(x, dtype, i)));
    return;
  }
  float amax = 0.0f;
#pragma omp parallel for reduction(max : amax) if (n > PARALLEL_MIN)
  for (int64_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(element(x, dtype, i)));
  const float s = scale_max / fmaxf(amax, AMAX_FLOOR);
#pragma omp parallel for if (n > PARALLEL_MIN)
  for (int64_t i = 0; i < n; i++) store(y, dtype, i, osp_hif8(as_stored(dtype, element(x, dtype, i) * s)) / s);
}
