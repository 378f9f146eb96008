#include <math.h>
#include <stdbool.h>

#include "cpu/cpu.h"

/* Frequency of pair j on an axis of `axis_dims` real dims: ω_j = 1 / 10000^(2j/axis_dims),
 * written as Wan2.1 and diffusers write it. */
static double rope_frequency(int j, int axis_dims) {
  return 1.0 / pow(10000.0, 2.0 * j / axis_dims);
}

/* Writes token n's (t, h, w) coordinate; `layout` says where the tokens sit. */
typedef void (*token_position)(const void *layout, int64_t n, int64_t position[3]);

/* Token n = (t·H + h)·W + w of the natural grid; layout is {T, H, W}. */
static void grid_position(const void *layout, int64_t n, int64_t position[3]) {
  const int64_t *grid = layout;
  position[0] = n / (grid[1] * grid[2]);
  position[1] = n / grid[2] % grid[1];
  position[2] = n % grid[2];
}

/* Row n of a positions table [tokens, 3]. A padding row (t < 0) sits at the origin, where every
 * angle is 0. */
static void listed_position(const void *layout, int64_t n, int64_t position[3]) {
  const int32_t *row = (const int32_t *)layout + 3 * n;
  const bool padding = row[0] < 0;
  for (int axis = 0; axis < 3; axis++) position[axis] = padding ? 0 : row[axis];
}

/* Pairs [0, dt/2) rotate with the frame index, the next dh/2 with the row, the last dw/2 with the
 * column: dh = dw = 2⌊D/6⌋, dt = D − dh − dw. Angles and their cos/sin in float64, stored as
 * float. */
static void rope_tables(token_position position_of, const void *layout, int64_t tokens,
                        int head_dim, float *cos_table, float *sin_table) {
  const int64_t pairs = head_dim / 2;
  const int spatial_dims = 2 * (head_dim / 6);
  const int axis_dims[3] = {head_dim - 2 * spatial_dims, spatial_dims, spatial_dims};
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < tokens; n++) {
    int64_t position[3];
    position_of(layout, n, position);
    float *cos_row = cos_table + n * pairs;
    float *sin_row = sin_table + n * pairs;
    for (int axis = 0, pair = 0; axis < 3; axis++) {
      for (int j = 0; j < axis_dims[axis] / 2; j++, pair++) {
        const double angle = (double)position[axis] * rope_frequency(j, axis_dims[axis]);
        cos_row[pair] = (float)cos(angle);
        sin_row[pair] = (float)sin(angle);
      }
    }
  }
}

void osp_cpu_rope_tables(int T, int H, int W, int head_dim, float *cos_table, float *sin_table) {
  const int64_t grid[3] = {T, H, W};
  rope_tables(grid_position, grid, (int64_t)T * H * W, head_dim, cos_table, sin_table);
}

void osp_cpu_rope_tables_at(const int32_t *positions, int64_t tokens, int head_dim,
                            float *cos_table, float *sin_table) {
  rope_tables(listed_position, positions, tokens, head_dim, cos_table, sin_table);
}

/* (x₀, x₁) ← (x₀·cos − x₁·sin', x₀·sin' + x₁·cos) with sin' = sin_sign·sin, for every interleaved
 * pair of every head: the rotation by θ (sin_sign 1), or by −θ (sin_sign −1), its transpose.
 * Multiplying by ±1 is exact, so each is bit for bit its plain formula. */
static void rotate_pairs(float *x, const float *cos_table, const float *sin_table, float sin_sign,
                         int64_t table_batch_stride, int64_t B, int64_t N, int64_t heads,
                         int64_t D) {
  const int64_t pairs = D / 2;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; b++) {
    for (int64_t n = 0; n < N; n++) {
      const float *cos_row = cos_table + b * table_batch_stride + n * pairs;
      const float *sin_row = sin_table + b * table_batch_stride + n * pairs;
      float *token = x + (b * N + n) * heads * D;
      for (int64_t h = 0; h < heads; h++) {
        float *head = token + h * D;
        for (int64_t i = 0; i < pairs; i++) {
          const float x0 = head[2 * i], x1 = head[2 * i + 1], sine = sin_sign * sin_row[i];
          head[2 * i] = x0 * cos_row[i] - x1 * sine;
          head[2 * i + 1] = x0 * sine + x1 * cos_row[i];
        }
      }
    }
  }
}

void osp_cpu_rope_apply(float *x, const float *cos_table, const float *sin_table,
                        int64_t table_batch_stride, int64_t B, int64_t N, int64_t heads,
                        int64_t D) {
  rotate_pairs(x, cos_table, sin_table, 1.0f, table_batch_stride, B, N, heads, D);
}

/* The gradient of a rotation by θ is the rotation by −θ:
 * (d₀, d₁) ← (d₀·cos + d₁·sin, d₁·cos − d₀·sin). */
void osp_cpu_rope_apply_backward(float *dx, const float *cos_table, const float *sin_table,
                                 int64_t table_batch_stride, int64_t B, int64_t N, int64_t heads,
                                 int64_t D) {
  rotate_pairs(dx, cos_table, sin_table, -1.0f, table_batch_stride, B, N, heads, D);
}
