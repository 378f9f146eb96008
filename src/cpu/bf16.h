/* bf16 → f32 inside the CPU kernels: the bf16 bits are the top half of the float's, so the
 * conversion is a shift (exact), which loops vectorise. Internal to the CPU backend. */
#ifndef OSP_CPU_BF16_H
#define OSP_CPU_BF16_H

#include <stdint.h>
#include <string.h>

static inline void osp_cpu_bf16_to_f32(const uint16_t *src, float *dst, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const uint32_t bits = (uint32_t)src[i] << 16;
    memcpy(dst + i, &bits, sizeof bits);
  }
}

#endif
