/* HiF8, the 8-bit float of OSP-Next's quantization (PAPER.md 7), as its released code simulates
 * it: quantize, then dequantize (QDQ), in float32. The element rule (7.2), for x with biased
 * exponent field e:
 *   e < 104 (|x| < 2^−23, zero and subnormals included)   → 0 (with x's sign)
 *   x ≥ 40960 (1.25·2^15) → +∞;  x ≤ −40960 → −∞
 *   otherwise E = e − 127, m = 3 mantissa bits if |E| ≤ 3, 2 if |E| ≤ 7, 1 if |E| ≤ 15, else 0;
 *   q = 2^(max(E, −22) − m);  y = sign(x)·⌊|x|/q + ½⌋·q   (round half away from zero; it may
 *   carry into the next binade: 15.9 → 16)
 * NaN stays NaN (the sources do not define it). The largest finite output is 2^15 = 32768, the
 * smallest nonzero 2^−22; there are 126 positive finite outputs.
 *
 * Tensors: osp_hif8_quantize (ops/ops.h), with the per-tensor scaling. Written once, for the
 * CPU and for CUDA device code (OSP_HIF8_DEVICE marks it __host__
 * __device__ under nvcc): integer operations on the bits and exact float products with powers
 * of two, no pow or log. */
#ifndef OSP_QUANT_HIF8_H
#define OSP_QUANT_HIF8_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define OSP_HIF8_DEVICE __host__ __device__
#else
#define OSP_HIF8_DEVICE
#endif

enum { OSP_HIF8_FLUSH_EXPONENT = 104, OSP_HIF8_MIN_EXPONENT = -22 };
#define OSP_HIF8_SATURATION 40960.0f

/* 2^k as a float, for k in [−126, 127]. */
static inline OSP_HIF8_DEVICE float osp_hif8_power_of_two(int k) {
  const uint32_t bits = (uint32_t)(k + 127) << 23;
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

static inline OSP_HIF8_DEVICE float osp_hif8(float x) {
  uint32_t bits;
  memcpy(&bits, &x, sizeof bits);
  const int e = (int)((bits >> 23) & 0xFF);
  if (e == 0xFF && (bits & 0x7FFFFF)) return x;                  /* NaN */
  const float sign = (bits >> 31) ? -1.0f : 1.0f;
  if (e < OSP_HIF8_FLUSH_EXPONENT) return sign * 0.0f;            /* |x| < 2^−23 */
  const float magnitude = fabsf(x);
  if (magnitude >= OSP_HIF8_SATURATION) return sign * INFINITY;
  const int E = e - 127, a = E < 0 ? -E : E;
  const int m = a <= 3 ? 3 : a <= 7 ? 2 : a <= 15 ? 1 : 0;
  const int k = (E > OSP_HIF8_MIN_EXPONENT ? E : OSP_HIF8_MIN_EXPONENT) - m;
  /* |x|/q and back are exact (q a power of two); |x|/q < 16, so + ½ is exact too. */
  return sign * floorf(magnitude * osp_hif8_power_of_two(-k) + 0.5f) * osp_hif8_power_of_two(k);
}

#endif
