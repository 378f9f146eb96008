#include "cpu/cpu.h"

/* grad[r, c] += Σ_{b ≡ r mod Bm, n} a[b, n, c] · w[b, n, c] (w NULL: a alone): a [B, N, C] seen as
 * [B/Bm, Bm, N, C] summed onto grad seen as [1, Bm, 1, C], the broadcast that row b mod Bm is. */
static void sum_per_table_row(const float *a, const float *w, osp_cpu_grad_rows grad, int64_t B,
                              int64_t N, int64_t C) {
  const int64_t Bm = grad.rows;
  osp_cpu_broadcast_backward(4, (const int64_t[]){B / Bm, Bm, N, C}, a, w, grad.data,
                             (const int64_t[]){1, Bm, 1, C},
                             (const int64_t[]){0, grad.row_stride, 0, 1});
}

/* y = x·(1 + scale) + shift: dx += dy·(1 + scale), as two gated adds (dx += dy, then
 * dx += dy·scale); dshift += Σ dy; dscale += Σ dy·x. */
void osp_cpu_modulate_backward(const float *x, osp_cpu_rows scale, const float *dy, float *dx,
                               osp_cpu_grad_rows dshift, osp_cpu_grad_rows dscale, int64_t B,
                               int64_t N, int64_t C) {
  if (dx) {
    osp_cpu_gated_add(dx, dy, (osp_cpu_rows){.data = NULL}, B, N, C);
    osp_cpu_gated_add(dx, dy, scale, B, N, C);
  }
  if (dshift.data) sum_per_table_row(dy, NULL, dshift, B, N, C);
  if (dscale.data) sum_per_table_row(dy, x, dscale, B, N, C);
}

/* x_out = x + y·gate: dy += dx·gate, itself a gated add (dy += dx without a gate);
 * dgate += Σ dx·y. */
void osp_cpu_gated_add_backward(const float *dx, const float *y, osp_cpu_rows gate, float *dy,
                                osp_cpu_grad_rows dgate, int64_t B, int64_t N, int64_t C) {
  if (dy) osp_cpu_gated_add(dy, dx, gate, B, N, C);
  if (dgate.data) sum_per_table_row(dx, y, dgate, B, N, C);
}
