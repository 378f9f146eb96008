/* Moving data between layouts: box copies and per-batch transposes. */
#include <string.h>

#include "core/tensor.h"
#include "cpu/conv.h"

static void contiguous_strides(const int64_t *shape, int ndim, int64_t *stride) {
  stride[ndim - 1] = 1;
  for (int d = ndim - 2; d >= 0; d--) stride[d] = stride[d + 1] * shape[d + 1];
}

/* Every run of the box along the last dimension is one memcpy; runs are numbered over the box's
 * other dimensions, row-major. */
void osp_cpu_copy_region(const float *src, const int64_t *src_shape, const int64_t *src_offset,
                         float *dst, const int64_t *dst_shape, const int64_t *dst_offset,
                         const int64_t *size, int ndim) {
  int64_t src_stride[OSP_MAX_DIMS], dst_stride[OSP_MAX_DIMS], runs = 1;
  contiguous_strides(src_shape, ndim, src_stride);
  contiguous_strides(dst_shape, ndim, dst_stride);
  for (int d = 0; d < ndim - 1; d++) runs *= size[d];
  const size_t run_bytes = (size_t)size[ndim - 1] * sizeof *src;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < runs; r++) {
    int64_t s = src_offset[ndim - 1], t = dst_offset[ndim - 1], rest = r;
    for (int d = ndim - 2; d >= 0; d--) {
      const int64_t i = rest % size[d];
      rest /= size[d];
      s += (src_offset[d] + i) * src_stride[d];
      t += (dst_offset[d] + i) * dst_stride[d];
    }
    memcpy(dst + t, src + s, run_bytes);
  }
}

enum { TILE = 32 }; /* a 32×32 tile of floats reads and writes whole cache lines */

void osp_cpu_transpose(const float *x, float *y, int64_t B, int64_t M, int64_t N) {
#pragma omp parallel for collapse(3) schedule(static)
  for (int64_t b = 0; b < B; b++)
    for (int64_t m0 = 0; m0 < M; m0 += TILE)
      for (int64_t n0 = 0; n0 < N; n0 += TILE) {
        const float *in = x + b * M * N;
        float *out = y + b * M * N;
        const int64_t m1 = m0 + TILE < M ? m0 + TILE : M, n1 = n0 + TILE < N ? n0 + TILE : N;
        for (int64_t n = n0; n < n1; n++)
          for (int64_t m = m0; m < m1; m++) out[n * M + m] = in[m * N + n];
      }
}
