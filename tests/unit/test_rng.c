/* Philox4x32-10 against the published known answers, and the normal sampler built on it. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "harness.h"

static const double PI = 3.14159265358979323846;

/* Known-answer vectors for philox4x32 with 10 rounds, from kat_vectors in the Random123
 * distribution (counter, key, expected output). */
static const struct {
  osp_philox_ctr counter;
  osp_philox_key key;
  osp_philox_ctr expected;
} kat[] = {
    {{{0x00000000, 0x00000000, 0x00000000, 0x00000000}},
     {{0x00000000, 0x00000000}},
     {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}}},
    {{{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}},
     {{0xffffffff, 0xffffffff}},
     {{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}}},
    {{{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}},
     {{0xa4093822, 0x299f31d0}},
     {{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}}},
};

static void test_known_answers(void) {
  for (size_t i = 0; i < sizeof kat / sizeof kat[0]; i++) {
    osp_philox_ctr got = osp_philox4x32_10(kat[i].counter, kat[i].key);
    for (int w = 0; w < 4; w++) CHECK(got.v[w] == kat[i].expected.v[w]);
  }
}

static void test_uniform_from_bits(void) {
  CHECK(osp_uniform_from_bits(0) == 0x1p-25f);    /* never 0 */
  CHECK(osp_uniform_from_bits(0xFF) == 0x1p-25f); /* the low 8 bits are dropped */
  CHECK(osp_uniform_from_bits(0x100) == 3 * 0x1p-25f);
  CHECK(osp_uniform_from_bits(0x7FFFFF00u) == 0.5f - 0x1p-25f); /* exact below 1/2 */
  CHECK(osp_uniform_from_bits(0xFFFFFFFFu) == 1.0f); /* 1 - 2^-25 rounds to 1 in float32 */
}

/* Block `block` of (seed, stream) by hand: counter {block low, block high, stream, 0}, key = seed,
 * then Box-Muller on (w0, w1) and (w2, w3). */
static void expected_block(uint64_t seed, uint32_t stream, uint64_t block, double z[4]) {
  osp_philox_ctr counter = {{(uint32_t)block, (uint32_t)(block >> 32), stream, 0}};
  osp_philox_key key = {{(uint32_t)seed, (uint32_t)(seed >> 32)}};
  osp_philox_ctr bits = osp_philox4x32_10(counter, key);
  for (int pair = 0; pair < 2; pair++) {
    double radius = sqrt(-2.0 * log(osp_uniform_from_bits(bits.v[2 * pair])));
    double angle = 2.0 * PI * osp_uniform_from_bits(bits.v[2 * pair + 1]);
    z[2 * pair] = radius * cos(angle);
    z[2 * pair + 1] = radius * sin(angle);
  }
}

static void test_counter_layout(void) {
  const uint64_t seed = 0x0123456789ABCDEFull, block = (1ull << 32) + 5;
  const uint32_t stream = 7;
  double want[4];
  expected_block(seed, stream, block, want);
  float got[4];
  osp_randn(seed, stream, block * 4, got, 4);
  for (int i = 0; i < 4; i++) CHECK_NEAR(got[i], want[i], 1e-5);
}

/* Starting at an offset gives the same elements as a run from 0; so does filling in pieces. */
static void test_offsets(void) {
  enum { N = 1000 };
  float whole[N], part[N];
  osp_randn(42, 3, 0, whole, N);
  osp_randn(42, 3, 5, part, N - 5);
  CHECK(memcmp(part, whole + 5, (N - 5) * sizeof(float)) == 0);
  osp_randn(42, 3, 0, part, 3);
  osp_randn(42, 3, 3, part + 3, 6);
  osp_randn(42, 3, 9, part + 9, N - 9);
  CHECK(memcmp(part, whole, sizeof whole) == 0);
}

static int count_equal(const float *a, const float *b, size_t n) {
  int equal = 0;
  for (size_t i = 0; i < n; i++) equal += a[i] == b[i];
  return equal;
}

static void test_streams_and_seeds_differ(void) {
  enum { N = 256 };
  float a[N], b[N], c[N];
  osp_randn(42, 0, 0, a, N);
  osp_randn(42, 1, 0, b, N);
  osp_randn(43, 0, 0, c, N);
  CHECK(count_equal(a, b, N) == 0);
  CHECK(count_equal(a, c, N) == 0);
  osp_randn(42, 0, 0, b, N);
  CHECK(memcmp(a, b, sizeof a) == 0); /* and the same arguments give the same numbers */
}

/* Over 1e6 samples (large enough for the parallel path): mean, variance and the one-sigma mass
 * within five standard errors of N(0, 1)'s 0, 1 and 0.682689. */
static void test_normal_statistics(void) {
  const size_t n = 1000000;
  float *z = malloc(n * sizeof *z);
  CHECK(z != NULL);
  if (!z) return;
  osp_randn(2024, 11, 0, z, n);
  double sum = 0, sum_squares = 0, within_one = 0;
  for (size_t i = 0; i < n; i++) {
    sum += z[i];
    sum_squares += (double)z[i] * z[i];
    within_one += fabsf(z[i]) < 1.0f;
  }
  double mean = sum / n, variance = sum_squares / n - mean * mean, fraction = within_one / n;
  const double one_sigma = 0.682689492137;
  CHECK(fabs(mean) < 5.0 / sqrt((double)n));
  CHECK(fabs(variance - 1.0) < 5.0 * sqrt(2.0 / n));
  CHECK(fabs(fraction - one_sigma) < 5.0 * sqrt(one_sigma * (1 - one_sigma) / n));
  free(z);
}

int main(void) {
  test_known_answers();
  test_uniform_from_bits();
  test_counter_layout();
  test_offsets();
  test_streams_and_seeds_differ();
  test_normal_statistics();
  return test_summary("test_rng");
}
