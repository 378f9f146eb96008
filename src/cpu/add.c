#include "cpu/add.h"

void cpu_add_broadcast(int ndim, const int64_t *shape, const float *a, const int64_t *sa,
                       const float *b, const int64_t *sb, float *y) {
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) n *= shape[d];
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; i++) {
    int64_t rest = i, ia = 0, ib = 0;
    for (int d = ndim - 1; d >= 0; d--) {
      int64_t coord = rest % shape[d];
      rest /= shape[d];
      ia += coord * sa[d];
      ib += coord * sb[d];
    }
    y[i] = a[ia] + b[ib];
  }
}
