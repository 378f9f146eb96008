/* FLOP accounting of the DiT forward, from the config and the shapes alone. */
#include "model/dit.h"
#include "sparse/layout.h"

osp_dit_flops osp_dit_block_flops(const osp_model_config *c, int block, int64_t batch,
                                  const int64_t grid[3], int64_t text_rows) {
  const osp_layout l = osp_layout_make((osp_pattern)c->schedule[block], c->sparse_ratio, batch, grid);
  const double C = c->dim, S = (double)l.rows * (double)l.tokens, L = (double)text_rows;
  const double self_projections = 4 * 2 * S * C * C;       /* q, k, v, o */
  const double cross_projections = 2 * 2 * S * C * C       /* q, o on the video tokens */
                                   + 2 * 2 * batch * L * C * C; /* k, v on the context */
  const double cross_attention = 4 * S * L * C;
  const double ffn = 2 * 2 * S * C * c->ffn_dim;
  return (osp_dit_flops){
      .self_attention = 4.0 * (double)l.rows * (double)l.tokens * (double)l.tokens * C,
      .rest = self_projections + cross_projections + cross_attention + ffn,
  };
}
