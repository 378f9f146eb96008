#include "parallel/shard.h"

#include <string.h>

#include "core/status.h"

static int64_t slots_of(const osp_layout *l) { return l->rows * l->tokens; }

static osp_status allocate(osp_arena *arena, const osp_layout *l, int ranks, osp_shard *shard) {
  if (ranks < 1 || ranks > OSP_MAX_RANKS)
    return osp_fail(OSP_ERR_ARGUMENT, "sequence parallelism over %d ranks: from 1 to %d are supported",
                    ranks, OSP_MAX_RANKS);
  shard->layout = *l;
  shard->ranks = ranks;
  const int64_t slots = slots_of(l);
  OSP_TRY(osp_arena_tensor(arena, OSP_I32, 1, &slots, &shard->order));
  OSP_TRY(osp_arena_tensor(arena, OSP_I32, 1, &slots, &shard->owner));
  return osp_arena_tensor(arena, OSP_I32, 1, &slots, &shard->local);
}

/* Fills order and local from owner: each rank's slots in serial order, so row-major [rows, tokens]. */
static void place_slots(osp_shard *shard) {
  const int64_t slots = slots_of(&shard->layout);
  const int32_t *owner = shard->owner.data;
  int32_t *order = shard->order.data, *local = shard->local.data;
  int64_t cursor[OSP_MAX_RANKS];
  memcpy(cursor, shard->start, sizeof cursor);
  for (int64_t i = 0; i < slots; i++) {
    const int q = owner[i];
    local[i] = (int32_t)(cursor[q] - shard->start[q]);
    order[cursor[q]++] = (int32_t)i;
  }
}

static void set_starts(osp_shard *shard) {
  int64_t start = 0;
  for (int q = 0; q < shard->ranks; q++) {
    shard->start[q] = start;
    start += shard->rows[q] * shard->tokens[q];
  }
}

osp_status osp_shard_bands(const osp_layout *l, int ranks, int64_t band_height, osp_arena *arena,
                           osp_shard *shard) {
  *shard = (osp_shard){.kind = OSP_SHARD_BANDS};
  OSP_TRY(allocate(arena, l, ranks, shard));
  const int64_t height = l->pattern == OSP_PATTERN_FULL ? l->H : l->padded_h;
  if (l->pattern != OSP_PATTERN_FULL && band_height % (l->rows / l->batch) != 0)
    return osp_fail(OSP_ERR_ARGUMENT, "bands of a Skiparse layout must be a multiple of P^2 = %lld lines",
                    (long long)(l->rows / l->batch));
  const int64_t bands = (height + band_height - 1) / band_height, units = l->T * bands;
  if (units < ranks)
    return osp_fail(OSP_ERR_SHAPE,
                    "Ulysses over %d ranks splits the tokens by (frame, band of %lld grid lines): the "
                    "grid (%lld frames x %lld lines) has only %lld such units; use fewer ranks or a "
                    "larger video",
                    ranks, (long long)band_height, (long long)l->T, (long long)height, (long long)units);
  /* Unit u = t·bands + y/band_height goes to the rank q with q·units/ranks ≤ u < (q+1)·units/ranks;
   * a row holds lines·width/P² of a unit's points (the last band of the natural grid is short). */
  const int64_t width = l->pattern == OSP_PATTERN_FULL ? l->W : l->padded_w, P2 = l->rows / l->batch;
  for (int q = 0; q < ranks; q++) {
    shard->rows[q] = l->rows;
    for (int64_t u = q * units / ranks; u < (q + 1) * units / ranks; u++) {
      const int64_t band = u % bands, lines = band_height < height - band * band_height
                                                  ? band_height : height - band * band_height;
      shard->tokens[q] += lines * width / P2;
    }
  }
  set_starts(shard);
  if (!shard->order.data) return OSP_OK; /* measuring */
  int32_t *owner = shard->owner.data;
  for (int64_t i = 0; i < slots_of(l); i++) {
    const osp_grid_point p = osp_layout_point(l, i);
    const int64_t unit = p.t * bands + p.y / band_height;
    int q = 0;
    while ((q + 1) * units / ranks <= unit) q++;
    owner[i] = q;
  }
  place_slots(shard);
  return OSP_OK;
}

osp_status osp_shard_rows(const osp_layout *l, int ranks, osp_arena *arena, osp_shard *shard) {
  *shard = (osp_shard){.kind = OSP_SHARD_ROWS};
  OSP_TRY(allocate(arena, l, ranks, shard));
  if (l->rows % ranks != 0)
    return osp_fail(OSP_ERR_SHAPE,
                    "SSP over %d ranks gives each rank whole subsequences, but this layout has %lld "
                    "(P^2 = %d subsequences x batch %lld): the ranks must divide them (1, 2 or 4 for "
                    "P = 2, or 8 with batch 2)",
                    ranks, (long long)l->rows, l->ratio * l->ratio, (long long)l->batch);
  const int64_t per_rank = l->rows / ranks;
  for (int q = 0; q < ranks; q++) {
    shard->rows[q] = per_rank;
    shard->tokens[q] = l->tokens;
  }
  set_starts(shard);
  if (!shard->order.data) return OSP_OK;
  int32_t *owner = shard->owner.data;
  for (int64_t i = 0; i < slots_of(l); i++) owner[i] = (int32_t)(i / l->tokens / per_rank);
  place_slots(shard);
  return OSP_OK;
}

void osp_shard_take(const osp_shard *shard, int q, const void *table, int elem_size, int width, void *out) {
  const int32_t *order = (const int32_t *)shard->order.data + shard->start[q];
  const int64_t n = shard->rows[q] * shard->tokens[q], row_bytes = (int64_t)elem_size * width;
  for (int64_t j = 0; j < n; j++)
    memcpy((char *)out + j * row_bytes, (const char *)table + order[j] * row_bytes, (size_t)row_bytes);
}
