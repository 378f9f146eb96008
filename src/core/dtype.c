#include "core/dtype.h"

#include <math.h>
#include <string.h>

size_t osp_dtype_size(osp_dtype dtype) {
  switch (dtype) {
    case OSP_F32: return 4;
    case OSP_BF16:
    case OSP_F16: return 2;
    case OSP_F8E4M3:
    case OSP_F8E5M2:
    case OSP_U8: return 1;
    case OSP_I32: return 4;
  }
  return 0;
}

const char *osp_dtype_name(osp_dtype dtype) {
  switch (dtype) {
    case OSP_F32: return "f32";
    case OSP_BF16: return "bf16";
    case OSP_F16: return "f16";
    case OSP_F8E4M3: return "f8e4m3";
    case OSP_F8E5M2: return "f8e5m2";
    case OSP_U8: return "u8";
    case OSP_I32: return "i32";
  }
  return "?";
}

static uint32_t bits_of(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static float float_of(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

float osp_bf16_to_f32(uint16_t h) { return float_of((uint32_t)h << 16); }

uint16_t osp_f32_to_bf16(float f) {
  uint32_t u = bits_of(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
  u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even on the 16 dropped bits */
  return (uint16_t)(u >> 16);
}

/* A small float with `exp_bits` exponent and `man_bits` mantissa bits (IEEE-style bias and
 * subnormals) decoded to float32. */
static float small_float_to_f32(uint32_t bits, int exp_bits, int man_bits, int has_inf) {
  uint32_t sign = bits >> (exp_bits + man_bits);
  uint32_t exp = (bits >> man_bits) & ((1u << exp_bits) - 1u);
  uint32_t man = bits & ((1u << man_bits) - 1u);
  int bias = (1 << (exp_bits - 1)) - 1;
  float v;
  if (exp == (1u << exp_bits) - 1u && (has_inf || man == (1u << man_bits) - 1u)) {
    v = (has_inf && man == 0) ? INFINITY : NAN;
  } else if (exp == 0) {
    v = ldexpf((float)man, 1 - bias - man_bits);
  } else {
    v = ldexpf((float)((1u << man_bits) | man), (int)exp - bias - man_bits);
  }
  return sign ? -v : v;
}

/* float32 to a small float, round to nearest even. Overflow gives infinity, or NaN when the format
 * has no infinity (has_inf = 0). */
static uint32_t f32_to_small_float(float f, int exp_bits, int man_bits, int has_inf) {
  uint32_t sign = (bits_of(f) >> 31) << (exp_bits + man_bits);
  uint32_t exp_all = (1u << exp_bits) - 1u;
  uint32_t nan_code = has_inf ? ((exp_all << man_bits) | (1u << (man_bits - 1)))
                              : ((exp_all << man_bits) | ((1u << man_bits) - 1u));
  if (isnan(f)) return sign | nan_code;
  int bias = (1 << (exp_bits - 1)) - 1;
  float a = fabsf(f);
  /* Largest finite: all-ones exponent is reserved when has_inf; E4M3FN reserves only S.1111.111. */
  uint32_t max_code = has_inf ? (((exp_all - 1u) << man_bits) | ((1u << man_bits) - 1u))
                              : ((exp_all << man_bits) | ((1u << man_bits) - 2u));
  if (isinf(f)) return has_inf ? (sign | (exp_all << man_bits)) : (sign | nan_code);
  if (a == 0.0f) return sign;
  /* Quantise: r = a / q rounded to even, where q is the step of a's binade, or the subnormal step
   * below the smallest normal binade (exact: q is a power of two). r counts steps including the
   * implicit leading bit, so adding it to (biased exponent - 1) << man_bits gives the code, and a
   * significand that rounds up to 2^(man_bits+1) carries into the next exponent by itself. */
  int e;
  frexpf(a, &e); /* a = m * 2^e, m in [0.5, 1) */
  int unbiased = e - 1;
  int min_normal = 1 - bias;
  if (unbiased < min_normal) unbiased = min_normal;
  uint32_t r = (uint32_t)nearbyintf(ldexpf(a, man_bits - unbiased)); /* to nearest, ties to even */
  uint32_t code = ((uint32_t)(unbiased + bias - 1) << man_bits) + r;
  if (code > max_code) return sign | (has_inf ? (exp_all << man_bits) : nan_code);
  return sign | code;
}

float osp_f16_to_f32(uint16_t h) { return small_float_to_f32(h, 5, 10, 1); }
uint16_t osp_f32_to_f16(float f) { return (uint16_t)f32_to_small_float(f, 5, 10, 1); }
float osp_f8e4m3_to_f32(uint8_t b) { return small_float_to_f32(b, 4, 3, 0); }
uint8_t osp_f32_to_f8e4m3(float f) { return (uint8_t)f32_to_small_float(f, 4, 3, 0); }
float osp_f8e5m2_to_f32(uint8_t b) { return small_float_to_f32(b, 5, 2, 1); }
uint8_t osp_f32_to_f8e5m2(float f) { return (uint8_t)f32_to_small_float(f, 5, 2, 1); }

void osp_convert_to_f32(osp_dtype dtype, const void *src, float *dst, size_t n) {
  const uint16_t *h = src;
  const uint8_t *b = src;
  switch (dtype) {
    case OSP_F32: memcpy(dst, src, n * 4); return;
    case OSP_BF16: for (size_t i = 0; i < n; i++) dst[i] = osp_bf16_to_f32(h[i]); return;
    case OSP_F16: for (size_t i = 0; i < n; i++) dst[i] = osp_f16_to_f32(h[i]); return;
    case OSP_F8E4M3: for (size_t i = 0; i < n; i++) dst[i] = osp_f8e4m3_to_f32(b[i]); return;
    case OSP_F8E5M2: for (size_t i = 0; i < n; i++) dst[i] = osp_f8e5m2_to_f32(b[i]); return;
    case OSP_U8: for (size_t i = 0; i < n; i++) dst[i] = b[i]; return;
    case OSP_I32: for (size_t i = 0; i < n; i++) dst[i] = (float)((const int32_t *)src)[i]; return;
  }
}

void osp_convert_from_f32(osp_dtype dtype, const float *src, void *dst, size_t n) {
  uint16_t *h = dst;
  uint8_t *b = dst;
  switch (dtype) {
    case OSP_F32: memcpy(dst, src, n * 4); return;
    case OSP_BF16: for (size_t i = 0; i < n; i++) h[i] = osp_f32_to_bf16(src[i]); return;
    case OSP_F16: for (size_t i = 0; i < n; i++) h[i] = osp_f32_to_f16(src[i]); return;
    case OSP_F8E4M3: for (size_t i = 0; i < n; i++) b[i] = osp_f32_to_f8e4m3(src[i]); return;
    case OSP_F8E5M2: for (size_t i = 0; i < n; i++) b[i] = osp_f32_to_f8e5m2(src[i]); return;
    case OSP_U8: for (size_t i = 0; i < n; i++) b[i] = (uint8_t)src[i]; return;
    case OSP_I32: for (size_t i = 0; i < n; i++) ((int32_t *)dst)[i] = (int32_t)src[i]; return;
  }
}
