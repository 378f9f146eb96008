/* Tensors: a view of memory with a dtype, a device, a shape and strides (in elements).
 * A tensor never owns its memory; arenas and mapped files do. */
#ifndef OSP_CORE_TENSOR_H
#define OSP_CORE_TENSOR_H

#include <stdbool.h>
#include <stdint.h>

#include "core/dtype.h"
#include "osp.h"

#define OSP_MAX_DIMS 8

typedef enum { OSP_CPU = 0, OSP_CUDA = 1 } osp_device;

typedef struct {
  void *data;
  osp_dtype dtype;
  osp_device device;
  int ndim;
  int64_t shape[OSP_MAX_DIMS];
  int64_t stride[OSP_MAX_DIMS];
} osp_tensor;

/* A contiguous (row-major) tensor over `data`. */
osp_tensor osp_tensor_make(void *data, osp_dtype dtype, osp_device device, int ndim,
                           const int64_t *shape);

int64_t osp_tensor_numel(const osp_tensor *t);
size_t osp_tensor_bytes(const osp_tensor *t);
bool osp_tensor_is_contiguous(const osp_tensor *t);
bool osp_tensor_same_shape(const osp_tensor *a, const osp_tensor *b);
/* Product of all but the last dimension: the "rows" of a row-wise op. */
int64_t osp_tensor_rows(const osp_tensor *t);
/* Entries [first, first + count) of t along its first dimension (samples of a batch), a view. */
osp_tensor osp_tensor_slice(const osp_tensor *t, int64_t first, int64_t count);
/* Writes "[2, 16, 3, 6, 10]" into buf. */
const char *osp_shape_string(const osp_tensor *t, char *buf, size_t size);

/* Reshape a contiguous tensor (same element count); fails with a message otherwise. */
osp_status osp_tensor_reshape(const osp_tensor *t, int ndim, const int64_t *shape, osp_tensor *out);

/* Checks used by ops and models: each fails with a message naming `what`. */
osp_status osp_check_shape(const char *what, const osp_tensor *t, int ndim, const int64_t *shape);
osp_status osp_check_f32_cpu(const char *what, const osp_tensor *t);
osp_status osp_check_finite(const char *what, const osp_tensor *t);

#endif
