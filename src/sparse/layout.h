/* Token layouts (PAPER.md 5.2–5.5). A sequence of video tokens is either in natural order
 * (t h w) or in a Skiparse layout with sparse ratio P: the (T, H, W) grid padded at the bottom and
 * right to H′, W′ (multiples of P²), cut into P² subsequences that become rows of the batch,
 * subsequence-major (row = s·B + b).
 *   token-wise: y = hi·P + p, x = wi·P + q;             s = p·P + q,   pos = (t·H′/P + hi)·W′/P + wi
 *   group-wise: y = hh·P² + p1·P + p2, x = ww·P² + q1·P + q2;
 *               s = p1·P + q1,  pos = (((t·H′/P² + hh)·P + p2)·W′/P² + ww)·P + q2
 * A layout is a bijection between its slots (row, pos) and the coordinates (b, t, y, x) of its
 * grid (padded for Skiparse layouts); every permutation between layouts is derived from that. */
#ifndef OSP_SPARSE_LAYOUT_H
#define OSP_SPARSE_LAYOUT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"

typedef struct {
  osp_pattern pattern;
  int ratio;                   /* P; 1 in natural order */
  int64_t batch;               /* B samples */
  int64_t T, H, W;             /* the natural token grid (after patchify) */
  int64_t padded_h, padded_w;  /* H′, W′: H, W rounded up to multiples of P² (H, W when natural) */
  int64_t rows;                /* P²·B, or B when natural */
  int64_t tokens;              /* per row: T·H′·W′/P², or T·H·W when natural */
} osp_layout;

typedef struct {
  int64_t b, t, y, x;
} osp_grid_point;

osp_layout osp_layout_make(osp_pattern pattern, int ratio, int64_t batch, const int64_t grid[3]);

/* The grid point held by slot `slot` = row·tokens + pos. */
osp_grid_point osp_layout_point(const osp_layout *layout, int64_t slot);
/* The slot holding a grid point (y < padded_h, x < padded_w). */
int64_t osp_layout_slot(const osp_layout *layout, osp_grid_point p);
/* A point of the padding (outside the natural H × W). */
bool osp_layout_is_padding(const osp_layout *layout, osp_grid_point p);

#endif
