#include "core/tensor.h"
#include "cpu/cpu.h"

/* The backward of a broadcast is a sum over the broadcast dimensions. Each element of grad is
 * owned by one thread, which adds its terms in double, in row-major order of the summed
 * dimensions, and rounds once onto grad: no atomics, and the same bits on every run whatever the
 * thread count. A thread takes a cell of up to CHUNK adjacent elements of one row of grad, so each
 * term it reads is a run of CHUNK adjacent floats of a. */
enum { CHUNK = 64 };

/* Σ coord_d · strides[d] for the row-major coordinates of `index` over `sizes[0 .. count)`. */
static int64_t offset_of(int64_t index, int count, const int64_t *sizes, const int64_t *strides) {
  int64_t offset = 0;
  for (int d = count - 1; d >= 0; d--) {
    offset += index % sizes[d] * strides[d];
    index /= sizes[d];
  }
  return offset;
}

/* The sum as the cells see it: the dimensions before the last, split into grad's rows and the
 * summed ones, and the last dimension, which is either summed whole into each grad element or
 * kept and cut into cells of CHUNK columns. */
typedef struct {
  const float *a, *b;
  float *grad;
  int leading;                        /* the dimensions before the last */
  int64_t grad_sizes[OSP_MAX_DIMS];   /* grad's leading sizes (1 where summed) */
  int64_t a_strides[OSP_MAX_DIMS];    /* a's and b's strides (contiguous) */
  int64_t grad_strides[OSP_MAX_DIMS]; /* grad's strides, the last one included */
  int summed;                         /* leading dimensions that are summed */
  int64_t summed_sizes[OSP_MAX_DIMS], summed_strides[OSP_MAX_DIMS];
  int64_t terms;                      /* Π summed_sizes: the terms of each grad element */
  int64_t width;                      /* the last size of a */
  bool last_summed;                   /* the last dimension is summed whole too */
} broadcast_sum;

static broadcast_sum plan(int ndim, const int64_t *shape, const float *a, const float *b,
                          float *grad, const int64_t *grad_shape, const int64_t *grad_stride) {
  broadcast_sum s = {.a = a, .b = b, .grad = grad, .leading = ndim - 1, .terms = 1};
  s.width = shape[ndim - 1];
  s.last_summed = grad_shape[ndim - 1] == 1 && s.width > 1;
  int64_t stride = s.width;
  for (int d = ndim - 2; d >= 0; d--) {
    s.a_strides[d] = stride;
    stride *= shape[d];
  }
  for (int d = 0; d < ndim; d++) s.grad_strides[d] = grad_stride[d];
  for (int d = 0; d < s.leading; d++) {
    s.grad_sizes[d] = grad_shape[d];
    if (grad_shape[d] == 1 && shape[d] > 1) {
      s.summed_sizes[s.summed] = shape[d];
      s.summed_strides[s.summed] = s.a_strides[d];
      s.summed++;
      s.terms *= shape[d];
    }
  }
  return s;
}

/* Σ over n values of a (· b), in double: the products of two floats are exact there. */
static double sum_run(const float *a, const float *b, int64_t n) {
  double sum = 0.0;
  if (b) {
    for (int64_t i = 0; i < n; i++) sum += (double)a[i] * b[i];
  } else {
    for (int64_t i = 0; i < n; i++) sum += a[i];
  }
  return sum;
}

/* acc[i] += a[i] (· b[i]) for i < n. */
static void add_run(double *acc, const float *a, const float *b, int64_t n) {
  if (b) {
    for (int64_t i = 0; i < n; i++) acc[i] += (double)a[i] * b[i];
  } else {
    for (int64_t i = 0; i < n; i++) acc[i] += a[i];
  }
}

/* Grad row `row`, columns [first, first + count) (one column where the last dimension is summed):
 * each element gets its terms summed in double, then added to it with one rounding. */
static void sum_cell(const broadcast_sum *s, int64_t row, int64_t first, int64_t count) {
  const int64_t a_row = offset_of(row, s->leading, s->grad_sizes, s->a_strides);
  float *grad = s->grad + offset_of(row, s->leading, s->grad_sizes, s->grad_strides);
  const int64_t last_stride = s->grad_strides[s->leading];
  double acc[CHUNK] = {0.0};
  for (int64_t term = 0; term < s->terms; term++) {
    const int64_t at = a_row + offset_of(term, s->summed, s->summed_sizes, s->summed_strides);
    const float *b = s->b ? s->b + at : NULL;
    if (s->last_summed)
      acc[0] += sum_run(s->a + at, b, s->width);
    else
      add_run(acc, s->a + at + first, b ? b + first : NULL, count);
  }
  for (int64_t i = 0; i < count; i++) {
    float *element = grad + (first + i) * last_stride;
    *element = (float)(*element + acc[i]);
  }
}

void osp_cpu_broadcast_backward(int ndim, const int64_t *shape, const float *a, const float *b,
                                float *grad, const int64_t *grad_shape,
                                const int64_t *grad_stride) {
  const broadcast_sum s = plan(ndim, shape, a, b, grad, grad_shape, grad_stride);
  int64_t rows = 1;
  for (int d = 0; d < s.leading; d++) rows *= s.grad_sizes[d];
  const int64_t columns = s.last_summed ? 1 : s.width;
  const int64_t chunks = (columns + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static)
  for (int64_t cell = 0; cell < rows * chunks; cell++) {
    const int64_t first = cell % chunks * CHUNK;
    const int64_t count = columns - first < CHUNK ? columns - first : CHUNK;
    sum_cell(&s, cell / chunks, first, count);
  }
}
