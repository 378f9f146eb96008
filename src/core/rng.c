#include "core/rng.h"

#include <math.h>

/* Philox4x32's round multipliers and the Weyl sequence that bumps the key between rounds
 * (the golden ratio and sqrt(3) - 1, as 32-bit fractions). */
static const uint32_t PHILOX_M0 = 0xD2511F53u, PHILOX_M1 = 0xCD9E8D57u;
static const uint32_t PHILOX_W0 = 0x9E3779B9u, PHILOX_W1 = 0xBB67AE85u;
enum { PHILOX_ROUNDS = 10, WORDS_PER_BLOCK = 4 };

static const float TWO_PI = 6.28318530717958647692f;
/* Fills of more blocks than this run on several threads. */
static const int64_t PARALLEL_MIN_BLOCKS = 1 << 14;

/* One round: two 32x32 -> 64-bit products, their halves crossed with the other words and the key.
 */
static osp_philox_ctr philox_round(osp_philox_ctr x, osp_philox_key key) {
  uint64_t product0 = (uint64_t)PHILOX_M0 * x.v[0];
  uint64_t product1 = (uint64_t)PHILOX_M1 * x.v[2];
  osp_philox_ctr y = {{
      (uint32_t)(product1 >> 32) ^ x.v[1] ^ key.v[0],
      (uint32_t)product1,
      (uint32_t)(product0 >> 32) ^ x.v[3] ^ key.v[1],
      (uint32_t)product0,
  }};
  return y;
}

osp_philox_ctr osp_philox4x32_10(osp_philox_ctr counter, osp_philox_key key) {
  for (int round = 0; round < PHILOX_ROUNDS; round++) {
    if (round > 0) {
      key.v[0] += PHILOX_W0;
      key.v[1] += PHILOX_W1;
    }
    counter = philox_round(counter, key);
  }
  return counter;
}

float osp_uniform_from_bits(uint32_t bits) { return (float)(bits >> 8) * 0x1p-24f + 0x1p-25f; }

/* Box-Muller: two uniforms in (0, 1] give two independent standard normals. log, cos and sin are
 * taken in double and rounded to float: that is the correctly rounded float for every one of the
 * 2^24 uniforms (libm's float versions differ in the last bit on some), so the CUDA kernel
 * (cuda/convert.cu), doing the same, gives the same numbers bit for bit. */
static void box_muller(uint32_t bits1, uint32_t bits2, float *z0, float *z1) {
  float radius = sqrtf(-2.0f * (float)log((double)osp_uniform_from_bits(bits1)));
  float angle = TWO_PI * osp_uniform_from_bits(bits2);
  *z0 = radius * (float)cos((double)angle);
  *z1 = radius * (float)sin((double)angle);
}

/* The four normals of counter block `block` of (key, stream). */
static void normal_block(osp_philox_key key, uint32_t stream, uint64_t block,
                         float z[WORDS_PER_BLOCK]) {
  osp_philox_ctr counter = {{(uint32_t)block, (uint32_t)(block >> 32), stream, 0}};
  osp_philox_ctr bits = osp_philox4x32_10(counter, key);
  box_muller(bits.v[0], bits.v[1], &z[0], &z[1]);
  box_muller(bits.v[2], bits.v[3], &z[2], &z[3]);
}

void osp_randn(uint64_t seed, uint32_t stream, uint64_t offset, float *out, size_t n) {
  if (n == 0) return;
  osp_philox_key key = {{(uint32_t)seed, (uint32_t)(seed >> 32)}};
  uint64_t first_block = offset / WORDS_PER_BLOCK;
  uint64_t last_block = (offset + n - 1) / WORDS_PER_BLOCK;
  int64_t blocks = (int64_t)(last_block - first_block + 1);
#pragma omp parallel for if (blocks >= PARALLEL_MIN_BLOCKS) schedule(static)
  for (int64_t j = 0; j < blocks; j++) {
    uint64_t block = first_block + (uint64_t)j;
    float z[WORDS_PER_BLOCK];
    normal_block(key, stream, block, z);
    /* The first and last blocks may hold elements outside [offset, offset + n). */
    for (int lane = 0; lane < WORDS_PER_BLOCK; lane++) {
      uint64_t element = block * WORDS_PER_BLOCK + (uint64_t)lane;
      if (element >= offset && element - offset < n) out[element - offset] = z[lane];
    }
  }
}
