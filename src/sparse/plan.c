#include "sparse/plan.h"

#include "core/status.h"

/* Which transitions the schedule makes: entering each block's layout from the previous one, and
 * back to natural order after the last block (the head runs on natural tokens). */
static void mark_transitions(const osp_model_config *cfg, bool needed[OSP_PATTERN_COUNT][OSP_PATTERN_COUNT],
                             bool used[OSP_PATTERN_COUNT]) {
  osp_pattern current = OSP_PATTERN_FULL;
  used[OSP_PATTERN_FULL] = true;
  for (int i = 0; i < cfg->num_layers; i++) {
    const osp_pattern next = (osp_pattern)cfg->schedule[i];
    used[next] = true;
    if (next != current) needed[current][next] = true;
    current = next;
  }
  if (current != OSP_PATTERN_FULL) needed[current][OSP_PATTERN_FULL] = true;
}

static osp_status fill_positions(osp_arena *arena, const osp_layout *l, osp_tensor *positions,
                                 osp_tensor *key_mask) {
  const int64_t slots = l->rows * l->tokens;
  OSP_TRY(osp_arena_tensor(arena, OSP_I32, 2, (int64_t[]){slots, 3}, positions));
  const bool padded = l->padded_h != l->H || l->padded_w != l->W;
  *key_mask = (osp_tensor){0};
  if (padded) OSP_TRY(osp_arena_tensor(arena, OSP_U8, 2, (int64_t[]){l->rows, l->tokens}, key_mask));
  if (!positions->data) return OSP_OK; /* measuring */
  int32_t *pos = positions->data;
  uint8_t *mask = key_mask->data;
  for (int64_t i = 0; i < slots; i++) {
    const osp_grid_point p = osp_layout_point(l, i);
    const bool pad = osp_layout_is_padding(l, p);
    pos[3 * i] = pad ? -1 : (int32_t)p.t;
    pos[3 * i + 1] = pad ? -1 : (int32_t)p.y;
    pos[3 * i + 2] = pad ? -1 : (int32_t)p.x;
    if (mask) mask[i] = !pad;
  }
  return OSP_OK;
}

/* gather[i] = the slot of `from` holding the grid point of slot i of `to`; −1 for a padding point
 * that `from` (natural order) does not have. */
static osp_status fill_gather(osp_arena *arena, const osp_layout *from, const osp_layout *to, osp_tensor *gather) {
  const int64_t slots = to->rows * to->tokens;
  OSP_TRY(osp_arena_tensor(arena, OSP_I32, 1, &slots, gather));
  if (!gather->data) return OSP_OK;
  int32_t *index = gather->data;
  for (int64_t i = 0; i < slots; i++) {
    const osp_grid_point p = osp_layout_point(to, i);
    index[i] = from->pattern == OSP_PATTERN_FULL && osp_layout_is_padding(to, p)
                   ? -1
                   : (int32_t)osp_layout_slot(from, p);
  }
  return OSP_OK;
}

static osp_status check_grid(const osp_model_config *cfg, const int64_t grid[3]) {
  if (grid[1] < cfg->sparse_ratio || grid[2] < cfg->sparse_ratio)
    return osp_fail(OSP_ERR_SHAPE,
                    "sparse ratio %d is larger than the token grid %lld x %lld (height x width after "
                    "patchify): Skiparse needs at least P tokens along each axis",
                    cfg->sparse_ratio, (long long)grid[1], (long long)grid[2]);
  return OSP_OK;
}

osp_status osp_sparse_plan_make(const osp_model_config *cfg, int64_t batch, const int64_t grid[3],
                                osp_arena *arena, osp_sparse_plan *plan) {
  *plan = (osp_sparse_plan){0};
  bool needed[OSP_PATTERN_COUNT][OSP_PATTERN_COUNT] = {{false}};
  mark_transitions(cfg, needed, plan->used);
  if (plan->used[OSP_PATTERN_TOKEN] || plan->used[OSP_PATTERN_GROUP]) OSP_TRY(check_grid(cfg, grid));
  for (int k = 0; k < OSP_PATTERN_COUNT; k++) {
    plan->layout[k] = osp_layout_make((osp_pattern)k, cfg->sparse_ratio, batch, grid);
    if (!plan->used[k]) continue;
    OSP_TRY(fill_positions(arena, &plan->layout[k], &plan->positions[k], &plan->key_mask[k]));
    const int64_t slots = plan->layout[k].rows * plan->layout[k].tokens;
    if (slots > plan->max_slots) plan->max_slots = slots;
  }
  for (int from = 0; from < OSP_PATTERN_COUNT; from++)
    for (int to = 0; to < OSP_PATTERN_COUNT; to++)
      if (needed[from][to])
        OSP_TRY(fill_gather(arena, &plan->layout[from], &plan->layout[to], &plan->gather[from][to]));
  return OSP_OK;
}
