/* A Skiparse plan: for one schedule and one input shape, everything the forward needs to run blocks
 * in their layouts, computed once before the first block. Per layout in use: the RoPE position of
 * each slot (padding marked) and the key mask (NULL data when nothing is padded). Per layout change
 * in the schedule: one gather table. Between blocks of the same pattern nothing moves. */
#ifndef OSP_SPARSE_PLAN_H
#define OSP_SPARSE_PLAN_H

#include "core/arena.h"
#include "core/config.h"
#include "sparse/layout.h"

enum { OSP_PATTERN_COUNT = 3 };

typedef struct {
  osp_layout layout[OSP_PATTERN_COUNT];    /* indexed by osp_pattern */
  bool used[OSP_PATTERN_COUNT];            /* which layouts the schedule visits (natural always) */
  osp_tensor positions[OSP_PATTERN_COUNT]; /* i32 [rows·tokens, 3]: (t, y, x), t = −1 for padding */
  osp_tensor key_mask[OSP_PATTERN_COUNT];  /* u8 [rows, tokens], 1 = real token; data NULL: none */
  /* gather[from][to]: i32 [rows_to·tokens_to]; slot i of `to` takes slot gather[i] of `from`, or
   * zero where it is −1 (padding entering the sparse span). data NULL where unused. */
  osp_tensor gather[OSP_PATTERN_COUNT][OSP_PATTERN_COUNT];
  int64_t max_slots; /* the most rows·tokens any used layout has: the size of activation buffers */
} osp_sparse_plan;

/* Plans a schedule (cfg->schedule, cfg->sparse_ratio) for B samples on a (T, H, W) token grid.
 * Tables come from `arena` (run it against a measuring arena first to size it). Fails clearly when
 * the sparse ratio exceeds the grid (P > H or P > W). */
osp_status osp_sparse_plan_make(const osp_model_config *cfg, int64_t batch, const int64_t grid[3],
                                osp_arena *arena, osp_sparse_plan *plan);

#endif
