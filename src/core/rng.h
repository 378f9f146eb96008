/* Randomness: Philox4x32-10, the counter-based generator of Salmon et al., "Parallel random
 * numbers: as easy as 1, 2, 3" (SC'11). Element i of a stream depends only on (key, counter),
 * so the CPU and the GPU produce the same numbers in any order. */
#ifndef OSP_CORE_RNG_H
#define OSP_CORE_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct { uint32_t v[4]; } osp_philox_ctr;
typedef struct { uint32_t v[2]; } osp_philox_key;

/* Ten rounds of Philox4x32 on one counter block. */
osp_philox_ctr osp_philox4x32_10(osp_philox_ctr counter, osp_philox_key key);

/* A uniform float in (0, 1] from 32 random bits: (u >> 8) * 2^-24 + 2^-25 in float32 arithmetic.
 * Never 0; the top 256 inputs give 1 - 2^-25, which rounds to exactly 1.0f. */
float osp_uniform_from_bits(uint32_t bits);

/* Fills out[0..n) with standard normal samples for (seed, stream), starting at element `offset`.
 * Element i uses counter block {(offset+i)/4 low, high, stream, 0} and the seed as key; the four
 * words of a block feed two Box-Muller pairs, giving elements 4j..4j+3. */
void osp_randn(uint64_t seed, uint32_t stream, uint64_t offset, float *out, size_t n);

#endif
