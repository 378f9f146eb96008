/* Conversions between float32 and bf16, f16, f8e4m3 (E4M3FN) and f8e5m2: known values, and
 * exhaustive checks over every bit pattern of the narrow formats. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/dtype.h"
#include "harness.h"

static float float_of(uint32_t bits) {
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

/* Expected encodings of float32 inputs. Produced once with torch 2.15 on the CPU:
 *   t = torch.tensor([x]); t.to(dtype).view(int16 or uint8)
 * for dtype in bfloat16, float16, float8_e4m3fn, float8_e5m2. Exception, marked "OCP": torch 2.15
 * saturates E4M3FN overflow (and inf) to ±448 (0x7E/0xFE), while dtype.h, like older PyTorch and
 * the OCP non-saturating conversion, makes it NaN (0x7F/0xFF). */
static const struct {
  uint32_t f32;
  uint16_t bf16, f16;
  uint8_t e4m3, e5m2;
} reference[] = {
    {0x3F800000u, 0x3F80, 0x3C00, 0x38, 0x3C}, /* 1.0 */
    {0x80000000u, 0x8000, 0x8000, 0x80, 0x80}, /* -0.0 */
    {0x3F808000u, 0x3F80, 0x3C04, 0x38, 0x3C}, /* bf16 tie, rounds down to even */
    {0x3F818000u, 0x3F82, 0x3C0C, 0x38, 0x3C}, /* bf16 tie, rounds up to even */
    {0x3F808001u, 0x3F81, 0x3C04, 0x38, 0x3C}, /* just above a bf16 tie */
    {0x7F7FFFFFu, 0x7F80, 0x7C00, 0x7F, 0x7C}, /* FLT_MAX (e4m3: OCP) */
    {0xFF7FFFFFu, 0xFF80, 0xFC00, 0xFF, 0xFC}, /* -FLT_MAX (e4m3: OCP) */
    {0x7F800000u, 0x7F80, 0x7C00, 0x7F, 0x7C}, /* +inf (e4m3: OCP) */
    {0xFF800000u, 0xFF80, 0xFC00, 0xFF, 0xFC}, /* -inf (e4m3: OCP) */
    {0x00000001u, 0x0000, 0x0000, 0x00, 0x00}, /* smallest f32 subnormal */
    {0x477FE000u, 0x4780, 0x7BFF, 0x7F, 0x7C}, /* 65504, f16 max (e4m3: OCP) */
    {0x477FEF00u, 0x4780, 0x7BFF, 0x7F, 0x7C}, /* 65519 (e4m3: OCP) */
    {0x477FF000u, 0x4780, 0x7C00, 0x7F, 0x7C}, /* 65520, f16 tie to inf (e4m3: OCP) */
    {0x33800000u, 0x3380, 0x0001, 0x00, 0x00}, /* 2^-24, f16 min subnormal */
    {0x33000000u, 0x3300, 0x0000, 0x00, 0x00}, /* 2^-25, f16 tie to 0 */
    {0x33C00000u, 0x33C0, 0x0002, 0x00, 0x00}, /* 3*2^-25, f16 tie to 2 */
    {0x387FC000u, 0x3880, 0x03FF, 0x00, 0x04}, /* 1023*2^-24, f16 max subnormal */
    {0x38800000u, 0x3880, 0x0400, 0x00, 0x04}, /* 2^-14, f16 min normal */
    {0x43E00000u, 0x43E0, 0x5F00, 0x7E, 0x5F}, /* 448, e4m3 max */
    {0x43E80000u, 0x43E8, 0x5F40, 0x7E, 0x5F}, /* 464, e4m3 tie down to 448 */
    {0x43E88000u, 0x43E8, 0x5F44, 0x7F, 0x5F}, /* 465 (e4m3: OCP) */
    {0xC3FA0000u, 0xC3FA, 0xDFD0, 0xFF, 0xE0}, /* -500 (e4m3: OCP) */
    {0x3B000000u, 0x3B00, 0x1800, 0x01, 0x18}, /* 2^-9, e4m3 min subnormal */
    {0x3A800000u, 0x3A80, 0x1400, 0x00, 0x14}, /* 2^-10, e4m3 tie to 0 */
    {0x3C600000u, 0x3C60, 0x2300, 0x07, 0x23}, /* 7*2^-9, e4m3 max subnormal */
    {0x3C800000u, 0x3C80, 0x2400, 0x08, 0x24}, /* 2^-6, e4m3 min normal */
    {0x47600000u, 0x4760, 0x7B00, 0x7F, 0x7B}, /* 57344, e5m2 max (e4m3: OCP) */
    {0x476FFF00u, 0x4770, 0x7B80, 0x7F, 0x7B}, /* 61439 (e4m3: OCP) */
    {0x47700000u, 0x4770, 0x7B80, 0x7F, 0x7C}, /* 61440, e5m2 tie to inf (e4m3: OCP) */
    {0x37800000u, 0x3780, 0x0100, 0x00, 0x01}, /* 2^-16, e5m2 min subnormal */
    {0x3DCCCCCDu, 0x3DCD, 0x2E66, 0x1D, 0x2E}, /* 0.1 */
    {0xC0490FD0u, 0xC049, 0xC248, 0xC5, 0xC2}, /* -3.14159 */
    {0x3A83126Fu, 0x3A83, 0x1419, 0x01, 0x14}, /* 1e-3 */
};

static void test_reference_encodings(void) {
  for (size_t i = 0; i < sizeof reference / sizeof reference[0]; i++) {
    float x = float_of(reference[i].f32);
    CHECK(osp_f32_to_bf16(x) == reference[i].bf16);
    CHECK(osp_f32_to_f16(x) == reference[i].f16);
    CHECK(osp_f32_to_f8e4m3(x) == reference[i].e4m3);
    CHECK(osp_f32_to_f8e5m2(x) == reference[i].e5m2);
  }
}

/* A narrow format seen through uint32_t, so one loop checks all four. */
typedef struct {
  const char *name;
  uint32_t patterns; /* 2^bits */
  float (*decode)(uint32_t bits);
  uint32_t (*encode)(float f);
} format;

static float bf16_decode(uint32_t bits) { return osp_bf16_to_f32((uint16_t)bits); }
static uint32_t bf16_encode(float f) { return osp_f32_to_bf16(f); }
static float f16_decode(uint32_t bits) { return osp_f16_to_f32((uint16_t)bits); }
static uint32_t f16_encode(float f) { return osp_f32_to_f16(f); }
static float e4m3_decode(uint32_t bits) { return osp_f8e4m3_to_f32((uint8_t)bits); }
static uint32_t e4m3_encode(float f) { return osp_f32_to_f8e4m3(f); }
static float e5m2_decode(uint32_t bits) { return osp_f8e5m2_to_f32((uint8_t)bits); }
static uint32_t e5m2_encode(float f) { return osp_f32_to_f8e5m2(f); }

static const format formats[] = {
    {"bf16", 1u << 16, bf16_decode, bf16_encode},
    {"f16", 1u << 16, f16_decode, f16_encode},
    {"f8e4m3", 1u << 8, e4m3_decode, e4m3_encode},
    {"f8e5m2", 1u << 8, e5m2_decode, e5m2_encode},
};

/* Every pattern decodes and encodes back to itself; NaNs (any payload) stay NaN. */
static int count_round_trip_failures(const format *fmt) {
  int failures = 0;
  for (uint32_t bits = 0; bits < fmt->patterns; bits++) {
    float f = fmt->decode(bits);
    uint32_t back = fmt->encode(f);
    bool ok = isnan(f) ? isnan(fmt->decode(back)) : back == bits;
    if (!ok && failures++ == 0)
      fprintf(stderr, "%s: 0x%x decodes to %g, encodes to 0x%x\n", fmt->name, bits, f, back);
  }
  return failures;
}

/* Round to nearest, ties to even, between every pair of adjacent positive finite values lo < hi:
 * the midpoint goes to the even code, anything just below it to lo, just above it to hi. */
static int count_rounding_failures(const format *fmt) {
  int failures = 0;
  uint32_t sign_bit = fmt->patterns / 2;
  for (uint32_t code = 0; code + 1 < sign_bit; code++) {
    float lo = fmt->decode(code), hi = fmt->decode(code + 1);
    if (!isfinite(lo) || !isfinite(hi)) continue;
    float mid = lo + (hi - lo) / 2; /* exact: the formats have far fewer bits than float32 */
    uint32_t even = (code % 2 == 0) ? code : code + 1;
    bool ok = fmt->encode(mid) == even && fmt->encode(nextafterf(mid, 0.0f)) == code &&
              fmt->encode(nextafterf(mid, INFINITY)) == code + 1 &&
              fmt->encode(-mid) == (even | sign_bit);
    if (!ok && failures++ == 0)
      fprintf(stderr, "%s: rounding between codes 0x%x and 0x%x\n", fmt->name, code, code + 1);
  }
  return failures;
}

static void test_exhaustive(void) {
  for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
    CHECK(count_round_trip_failures(&formats[i]) == 0);
    CHECK(count_rounding_failures(&formats[i]) == 0);
  }
}

static void test_special_decodings(void) {
  CHECK(osp_bf16_to_f32(0x7F80) == INFINITY);
  CHECK(isnan(osp_bf16_to_f32(0x7FC0)));
  CHECK(osp_f16_to_f32(0x7BFF) == 65504.0f);
  CHECK(osp_f16_to_f32(0x0001) == 0x1p-24f);
  CHECK(osp_f16_to_f32(0xFC00) == -INFINITY);
  CHECK(isnan(osp_f16_to_f32(0x7E00)));
  CHECK(osp_f8e4m3_to_f32(0x7E) == 448.0f);
  CHECK(osp_f8e4m3_to_f32(0x01) == 0x1p-9f);
  CHECK(isnan(osp_f8e4m3_to_f32(0x7F)) && isnan(osp_f8e4m3_to_f32(0xFF)));
  CHECK(osp_f8e4m3_to_f32(0x78) == 256.0f); /* E4M3FN uses the all-ones exponent for numbers */
  CHECK(osp_f8e5m2_to_f32(0x7B) == 57344.0f);
  CHECK(osp_f8e5m2_to_f32(0x7C) == INFINITY);
  CHECK(isnan(osp_f8e5m2_to_f32(0x7D)) && isnan(osp_f8e5m2_to_f32(0x7F)));
  CHECK(osp_f8e5m2_to_f32(0x01) == 0x1p-16f);
}

static void test_nan_stays_nan(void) {
  float nan_values[] = {NAN, -NAN, float_of(0x7F800001u), float_of(0xFFC00000u)};
  for (size_t i = 0; i < sizeof nan_values / sizeof nan_values[0]; i++)
    for (size_t f = 0; f < sizeof formats / sizeof formats[0]; f++)
      CHECK(isnan(formats[f].decode(formats[f].encode(nan_values[i]))));
}

/* The array conversions agree with the scalar ones for every dtype. */
static void test_array_conversions(void) {
  const float values[] = {0.0f,   1.0f, 2.5f,   3.0f,
                          100.0f, 0.1f, 255.0f, 7.0f}; /* U8 holds them all */
  enum { N = sizeof values / sizeof values[0] };
  const osp_dtype dtypes[] = {OSP_F32, OSP_BF16, OSP_F16, OSP_F8E4M3, OSP_F8E5M2, OSP_U8, OSP_I32};
  for (size_t d = 0; d < sizeof dtypes / sizeof dtypes[0]; d++) {
    unsigned char packed[N * 4];
    float back[N];
    osp_convert_from_f32(dtypes[d], values, packed, N);
    osp_convert_to_f32(dtypes[d], packed, back, N);
    for (int i = 0; i < N; i++) {
      float expected = values[i];
      switch (dtypes[d]) {
        case OSP_BF16: expected = osp_bf16_to_f32(osp_f32_to_bf16(values[i])); break;
        case OSP_F16: expected = osp_f16_to_f32(osp_f32_to_f16(values[i])); break;
        case OSP_F8E4M3: expected = osp_f8e4m3_to_f32(osp_f32_to_f8e4m3(values[i])); break;
        case OSP_F8E5M2: expected = osp_f8e5m2_to_f32(osp_f32_to_f8e5m2(values[i])); break;
        case OSP_U8:
        case OSP_I32: expected = truncf(values[i]); break;
        case OSP_F32: break;
      }
      CHECK(back[i] == expected);
    }
  }
}

static void test_sizes_and_names(void) {
  CHECK(osp_dtype_size(OSP_F32) == 4 && osp_dtype_size(OSP_BF16) == 2 &&
        osp_dtype_size(OSP_F16) == 2);
  CHECK(osp_dtype_size(OSP_F8E4M3) == 1 && osp_dtype_size(OSP_F8E5M2) == 1);
  CHECK(osp_dtype_size(OSP_U8) == 1 && osp_dtype_size(OSP_I32) == 4);
  CHECK(strcmp(osp_dtype_name(OSP_BF16), "bf16") == 0);
  CHECK(strcmp(osp_dtype_name(OSP_F8E4M3), "f8e4m3") == 0);
}

int main(void) {
  test_reference_encodings();
  test_special_decodings();
  test_exhaustive();
  test_nan_stays_nan();
  test_array_conversions();
  test_sizes_and_names();
  return test_summary("test_dtype");
}
