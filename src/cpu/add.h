/* CPU kernel of osp_add. */
#ifndef OSP_CPU_ADD_H
#define OSP_CPU_ADD_H

#include <stdint.h>

/* y[i] = a[i·sa] + b[i·sb] over a row-major index i of `shape`; strides in elements, 0 to broadcast. */
void cpu_add_broadcast(int ndim, const int64_t *shape, const float *a, const int64_t *sa,
                       const float *b, const int64_t *sb, float *y);

#endif
