/* e^x in float without branches, so that loops calling it vectorise (glibc's expf only does under
 * -ffast-math). Internal to the CPU backend. */
#ifndef OSP_CPU_FAST_EXP_H
#define OSP_CPU_FAST_EXP_H

#include <stdint.h>

/* Cephes' expf: x = n·ln2 + r with n = round(x·log₂e) and |r| ≤ ln2/2 (ln2 split in two parts so
 * that r is exact), e^r by a degree-7 polynomial, and 2ⁿ written straight
 * into a float's exponent bits. Relative error ≤ 2 ulp. x is clamped to [−87.34, 88]: below −87.34
 * (where e^x leaves the normal floats, −inf included) the result is 0, above 88 it stays e^88;
 * NaN gives NaN. */
static inline float osp_cpu_exp(float x) {
  const float lowest = -87.33654f, highest = 88.0f;
  const float shifter = 0x1.8p23f; /* adding 1.5·2²³ rounds to an integer kept in the low bits */
  const float clamped = x < lowest ? lowest : (x > highest ? highest : x);
  union {
    float f;
    uint32_t u;
  } rounded = {clamped * 1.44269504088896341f + shifter}, two_to_n;
  const float n = rounded.f - shifter;
  const float r = clamped - n * 0.693359375f - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  /* the low mantissa bits of `rounded` hold n (two's complement): n + 127 is the biased exponent */
  two_to_n.u = (rounded.u + 127u) << 23;
  return x < lowest ? 0.0f : p * two_to_n.f;
}

#endif
