/* HiF8's element rule and per-tensor scaling (src/quant/hif8.h) on PAPER.md 7.2's worked examples
 * and the properties the rule implies: 126 positive finite outputs, idempotence, monotonicity,
 * saturation, flushing, NaN; and 7.3's bf16 scaling example. The independent reference over every
 * bf16 value and millions of f32 ones is tests/ref/hif8_parity.py. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/rng.h"
#include "harness.h"
#include "ops/ops.h"
#include "quant/hif8.h"

static float from_bits(uint32_t b) {
  float f;
  memcpy(&f, &b, sizeof f);
  return f;
}

static void test_worked_examples(void) {
  const struct { float x, y; } cases[] = {
      {1.3f, 1.25f}, {1.0625f, 1.125f}, {-1.0625f, -1.125f}, {0.07f, 0.0625f}, {0.2f, 0.203125f},
      {100.0f, 96.0f}, {300.0f, 256.0f}, {32767.0f, 32768.0f}, {40000.0f, 32768.0f}, {5e-6f, 3.814697265625e-6f},
      {1.2e-7f, 2.384185791015625e-7f}, {1e-8f, 0.0f}, {15.9f, 16.0f}, {15.0f, 15.0f}, {224.0f, 224.0f},
      {40959.996f, 32768.0f},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) CHECK(osp_hif8(cases[i].x) == cases[i].y);
  CHECK(isinf(osp_hif8(40960.0f)) && osp_hif8(40960.0f) > 0);
  CHECK(isinf(osp_hif8(-40960.0f)) && osp_hif8(-40960.0f) < 0);
  CHECK(isinf(osp_hif8(INFINITY)) && isnan(osp_hif8(NAN)));
  CHECK(osp_hif8(ldexpf(1.0f, -23)) == ldexpf(1.0f, -22));          /* 2^−23: the clamp at −22 rounds it up */
  CHECK(osp_hif8(nextafterf(ldexpf(1.0f, -23), 0.0f)) == 0.0f);     /* just below: flushed */
  CHECK(signbit(osp_hif8(-1e-9f)) && osp_hif8(-1e-9f) == 0.0f);     /* a flushed negative keeps its sign */
}

/* Every positive finite output over a dense sweep of the inputs: all mantissas of the binades near
 * the edges of each regime, 4096 spread ones elsewhere. */
static void test_output_set(void) {
  float seen[256];
  int count = 0;
  float previous_in = 0.0f, previous_out = 0.0f;
  int monotone = 1, idempotent = 1;
  for (uint32_t e = 100; e < 145; e++) {
    const bool dense = e == 104 || e == 142;
    const uint32_t step = dense ? 1 : 2048;
    for (uint32_t m = 0; m < (1u << 23); m += step) {
      const float x = from_bits(e << 23 | m), y = osp_hif8(x);
      if (x < previous_in || y < previous_out) monotone = 0;
      const bool changed = y != previous_out;
      previous_in = x;
      previous_out = y;
      if (!changed) continue; /* the same output as the input before: nothing new to learn */
      if (osp_hif8(y) != y && !isinf(y)) idempotent = 0;
      if (y > 0 && isfinite(y)) {
        int known = 0;
        for (int i = 0; i < count && !known; i++) known = seen[i] == y;
        if (!known && count < 256) seen[count++] = y;
      }
    }
  }
  CHECK(count == 126);
  CHECK(monotone);
  CHECK(idempotent);
  float largest = 0, smallest = INFINITY;
  for (int i = 0; i < count; i++) largest = fmaxf(largest, seen[i]), smallest = fminf(smallest, seen[i]);
  CHECK(largest == 32768.0f && smallest == ldexpf(1.0f, -22));
}

static void test_scaling(void) {
  /* 7.3: amax 2.5 (s = 6): 0.4375 → 2.625 → 2.75 (a tie, away from zero) → 0.4583 → bf16 0.458984375. */
  uint16_t data[2] = {osp_f32_to_bf16(0.4375f), osp_f32_to_bf16(-2.5f)};
  osp_tensor t = osp_tensor_make(data, OSP_BF16, OSP_CPU, 1, (int64_t[]){2});
  CHECK(osp_hif8_quantize(&t, 15.0f, &t) == OSP_OK);
  CHECK(osp_bf16_to_f32(data[0]) == 0.458984375f);
  CHECK(osp_bf16_to_f32(data[1]) == -2.5f); /* −15 is exact */
  float f[3] = {0.4375f, 2.5f, 1e-3f};
  osp_tensor tf = osp_tensor_make(f, OSP_F32, OSP_CPU, 1, (int64_t[]){3});
  CHECK(osp_hif8_quantize(&tf, 15.0f, &tf) == OSP_OK);
  CHECK(f[0] == 2.75f / 6.0f && f[1] == 2.5f);
  CHECK(f[2] == osp_hif8(1e-3f * 6.0f) / 6.0f);
  float zeros[2] = {0, 0}; /* amax floored at 1e−8: no division by zero */
  osp_tensor tz = osp_tensor_make(zeros, OSP_F32, OSP_CPU, 1, (int64_t[]){2});
  CHECK(osp_hif8_quantize(&tz, 15.0f, &tz) == OSP_OK && zeros[0] == 0.0f);
  CHECK(osp_hif8_quantize(&tz, -1.0f, &tz) == OSP_ERR_ARGUMENT);
  int32_t ints[2] = {1, 2};
  osp_tensor ti = osp_tensor_make(ints, OSP_I32, OSP_CPU, 1, (int64_t[]){2});
  CHECK(osp_hif8_quantize(&ti, 0.0f, &ti) == OSP_ERR_SHAPE);
}

int main(void) {
  test_worked_examples();
  test_output_set();
  test_scaling();
  return test_summary("test_hif8");
}
