#include <math.h>
#include <stdbool.h>

#include "cpu/cpu.h"

/* LayerNorm and RMSNorm share one backward. Both normalise a row of C values to
 * x̂ = (x − mean)·rstd (RMSNorm with mean 0 and rstd = 1/sqrt(mean(x²) + eps)) and scale it,
 * y = x̂·weight (+ bias). With g = dy·weight (dy without affine):
 *   LayerNorm  dx = rstd · (g − mean(g) − x̂·mean(g·x̂))
 *   RMSNorm    dx = rstd · (g − x̂·mean(g·x̂))
 *   dweight = Σ_rows dy·x̂,  dbias = Σ_rows dy.
 * Everything is computed in double, x − mean included (as the forward does), so a row whose mean
 * is large next to its spread loses nothing to cancellation. */
typedef struct {
  bool centered;        /* LayerNorm: subtract the mean (and mean(g)); RMSNorm: not */
  float eps;
  const float *weight;  /* NULL: no affine */
  int64_t C;
} norm;

typedef struct {
  double mean, rstd;
} row_stats;

/* Rows are taken BLOCK_ROWS at a time: their statistics are kept (on the stack) between the pass
 * over rows (dx) and the pass over columns (dweight), in which each thread owns CHUNK columns and
 * adds the block's rows to them in order: the same bits on every run and any thread count. */
enum { BLOCK_ROWS = 256, CHUNK = 64 };

static row_stats stats_of(const norm *n, const float *x) {
  double mean = 0.0;
  if (n->centered) {
    for (int64_t c = 0; c < n->C; c++) mean += x[c];
    mean /= (double)n->C;
  }
  double squares = 0.0;
  for (int64_t c = 0; c < n->C; c++) squares += (x[c] - mean) * (x[c] - mean);
  return (row_stats){.mean = mean, .rstd = 1.0 / sqrt(squares / (double)n->C + n->eps)};
}

static double gradient_of_output(const norm *n, const float *dy, int64_t c) {
  return n->weight ? (double)dy[c] * n->weight[c] : dy[c];
}

static void add_row_dx(const norm *n, row_stats s, const float *x, const float *dy, float *dx) {
  double sum_g = 0.0, sum_g_xhat = 0.0;
  for (int64_t c = 0; c < n->C; c++) {
    const double g = gradient_of_output(n, dy, c);
    sum_g += g;
    sum_g_xhat += g * (x[c] - s.mean) * s.rstd;
  }
  const double mean_g = n->centered ? sum_g / (double)n->C : 0.0;
  const double mean_g_xhat = sum_g_xhat / (double)n->C;
  for (int64_t c = 0; c < n->C; c++) {
    const double xhat = (x[c] - s.mean) * s.rstd;
    dx[c] = (float)(dx[c] + s.rstd * (gradient_of_output(n, dy, c) - mean_g - xhat * mean_g_xhat));
  }
}

/* dweight[c] += Σ dy·x̂ over the block's rows, for the CHUNK columns from `first`. */
static void add_block_dweight(const norm *n, const row_stats *stats, int64_t count,
                              const float *x, const float *dy, float *dweight, int64_t first) {
  const int64_t width = n->C - first < CHUNK ? n->C - first : CHUNK;
  double acc[CHUNK] = {0.0};
  for (int64_t r = 0; r < count; r++) {
    const float *x_row = x + r * n->C + first, *dy_row = dy + r * n->C + first;
    for (int64_t i = 0; i < width; i++)
      acc[i] += dy_row[i] * (x_row[i] - stats[r].mean) * stats[r].rstd;
  }
  for (int64_t i = 0; i < width; i++) dweight[first + i] = (float)(dweight[first + i] + acc[i]);
}

static void norm_backward(norm n, const float *x, const float *dy, float *dx, float *dweight,
                          int64_t rows) {
  row_stats stats[BLOCK_ROWS];
  const int64_t chunks = (n.C + CHUNK - 1) / CHUNK;
#pragma omp parallel
  for (int64_t first = 0; first < rows; first += BLOCK_ROWS) {
    const int64_t count = rows - first < BLOCK_ROWS ? rows - first : BLOCK_ROWS;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < count; r++) {
      const int64_t row = (first + r) * n.C;
      stats[r] = stats_of(&n, x + row);
      if (dx) add_row_dx(&n, stats[r], x + row, dy + row, dx + row);
    }
    if (dweight) {
#pragma omp for schedule(static)
      for (int64_t chunk = 0; chunk < chunks; chunk++)
        add_block_dweight(&n, stats, count, x + first * n.C, dy + first * n.C, dweight,
                          chunk * CHUNK);
    }
  }
}

/* dbias += Σ_rows dy: the sum over the broadcast of bias. */
static void add_dbias(const float *dy, float *dbias, int64_t rows, int64_t C) {
  osp_cpu_broadcast_backward(2, (const int64_t[]){rows, C}, dy, NULL, dbias,
                             (const int64_t[]){1, C}, (const int64_t[]){C, 1});
}

void osp_cpu_layernorm_backward(const float *x, const float *weight, float eps, const float *dy,
                                float *dx, float *dweight, float *dbias, int64_t rows, int64_t C) {
  const norm n = {.centered = true, .eps = eps, .weight = weight, .C = C};
  if (dx || dweight) norm_backward(n, x, dy, dx, dweight, rows);
  if (dbias) add_dbias(dy, dbias, rows, C);
}

void osp_cpu_rmsnorm_backward(const float *x, const float *weight, float eps, const float *dy,
                              float *dx, float *dweight, int64_t rows, int64_t C) {
  const norm n = {.centered = false, .eps = eps, .weight = weight, .C = C};
  if (dx || dweight) norm_backward(n, x, dy, dx, dweight, rows);
}
