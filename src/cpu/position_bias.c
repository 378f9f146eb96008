/* T5's relative position bias (the umT5 text encoder's attention bias). */
#include <math.h>

#include "cpu/cpu.h"

/* (cpu.h) In float32, step by step as transformers' _relative_position_bucket computes it, so that
 * the floor lands on the same side at the boundaries (n = 16, 32, 64 for B = 32, max_distance 128). */
int64_t osp_cpu_relative_bucket(int64_t rel, int64_t buckets, int64_t max_distance) {
  const int64_t half = buckets / 2, exact = half / 2;
  const int64_t base = rel > 0 ? half : 0;
  const int64_t n = rel < 0 ? -rel : rel;
  if (n < exact) return base + n;
  const float log_range = (float)log((double)max_distance / (double)exact);
  const float scaled = logf((float)n / (float)exact) / log_range * (float)(half - exact);
  const int64_t large = exact + (int64_t)scaled;
  return base + (large < half - 1 ? large : half - 1);
}

enum { KEY_CHUNK = 256 };

/* Parallel over query rows; the buckets of a chunk of keys are found once for every head. */
void osp_cpu_relative_position_bias(const float *table, int64_t buckets, int64_t max_distance,
                                    float *bias, int64_t heads, int64_t queries, int64_t keys) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < queries; i++) {
    int64_t bucket[KEY_CHUNK];
    for (int64_t j0 = 0; j0 < keys; j0 += KEY_CHUNK) {
      const int64_t count = keys - j0 < KEY_CHUNK ? keys - j0 : KEY_CHUNK;
      for (int64_t j = 0; j < count; j++)
        bucket[j] = osp_cpu_relative_bucket(j0 + j - i, buckets, max_distance);
      for (int64_t h = 0; h < heads; h++) {
        float *row = bias + (h * queries + i) * keys + j0;
        for (int64_t j = 0; j < count; j++) row[j] = table[bucket[j] * heads + h];
      }
    }
  }
}
