#include "sparse/layout.h"

static int64_t round_up(int64_t n, int64_t multiple) { return (n + multiple - 1) / multiple * multiple; }

osp_layout osp_layout_make(osp_pattern pattern, int ratio, int64_t batch, const int64_t grid[3]) {
  osp_layout l = {.pattern = pattern, .ratio = pattern == OSP_PATTERN_FULL ? 1 : ratio, .batch = batch,
                  .T = grid[0], .H = grid[1], .W = grid[2]};
  const int64_t P2 = (int64_t)l.ratio * l.ratio;
  l.padded_h = round_up(l.H, P2);
  l.padded_w = round_up(l.W, P2);
  l.rows = P2 * batch;
  l.tokens = l.T * l.padded_h * l.padded_w / P2;
  return l;
}

osp_grid_point osp_layout_point(const osp_layout *l, int64_t slot) {
  const int64_t P = l->ratio, row = slot / l->tokens, pos = slot % l->tokens;
  const int64_t s = row / l->batch, b = row % l->batch;
  osp_grid_point p = {.b = b};
  if (l->pattern == OSP_PATTERN_FULL) {
    p.x = pos % l->W;
    p.y = pos / l->W % l->H;
    p.t = pos / (l->W * l->H);
  } else if (l->pattern == OSP_PATTERN_TOKEN) {
    const int64_t w = l->padded_w / P, h = l->padded_h / P;
    const int64_t wi = pos % w, hi = pos / w % h;
    p.t = pos / (w * h);
    p.y = hi * P + s / P;
    p.x = wi * P + s % P;
  } else {
    const int64_t w = l->padded_w / (P * P), h = l->padded_h / (P * P);
    const int64_t q2 = pos % P, ww = pos / P % w, p2 = pos / (P * w) % P, hh = pos / (P * w * P) % h;
    p.t = pos / (P * w * P * h);
    p.y = hh * P * P + (s / P) * P + p2;
    p.x = ww * P * P + (s % P) * P + q2;
  }
  return p;
}

int64_t osp_layout_slot(const osp_layout *l, osp_grid_point p) {
  const int64_t P = l->ratio;
  if (l->pattern == OSP_PATTERN_FULL) return p.b * l->tokens + (p.t * l->H + p.y) * l->W + p.x;
  int64_t s, pos;
  if (l->pattern == OSP_PATTERN_TOKEN) {
    const int64_t w = l->padded_w / P, h = l->padded_h / P;
    s = (p.y % P) * P + p.x % P;
    pos = (p.t * h + p.y / P) * w + p.x / P;
  } else {
    const int64_t w = l->padded_w / (P * P), h = l->padded_h / (P * P);
    const int64_t hh = p.y / (P * P), p1 = p.y / P % P, p2 = p.y % P;
    const int64_t ww = p.x / (P * P), q1 = p.x / P % P, q2 = p.x % P;
    s = p1 * P + q1;
    pos = (((p.t * h + hh) * P + p2) * w + ww) * P + q2;
  }
  return (s * l->batch + p.b) * l->tokens + pos;
}

bool osp_layout_is_padding(const osp_layout *l, osp_grid_point p) { return p.y >= l->H || p.x >= l->W; }
