/* How the tokens of one layout are spread over the ranks of a sequence-parallel group (PAPER.md
 * section 6). Two ways:
 *   bands (Ulysses): each rank owns, in every row, the tokens whose (frame, band of `band_height`
 *     grid lines) falls in its contiguous share of the T·⌈H/band_height⌉ units. With bands of P²
 *     lines a Skiparse layout change moves no token between ranks, since a band holds the same
 *     grid points in every layout;
 *   rows (SSP): each rank owns a contiguous share of whole rows, so the attention of a Skiparse
 *     block (one subsequence per row) needs no communication.
 * A rank's tokens form a [rows, tokens] tensor of their own: the slots it owns in serial order. */
#ifndef OSP_PARALLEL_SHARD_H
#define OSP_PARALLEL_SHARD_H

#include "core/arena.h"
#include "sparse/layout.h"

typedef enum { OSP_SHARD_BANDS, OSP_SHARD_ROWS } osp_shard_kind;

enum { OSP_MAX_RANKS = 64 };

typedef struct {
  osp_shard_kind kind;
  osp_layout layout; /* the serial layout it splits */
  int ranks;
  int64_t rows[OSP_MAX_RANKS], tokens[OSP_MAX_RANKS]; /* rank q holds [rows[q], tokens[q]] */
  int64_t start[OSP_MAX_RANKS];                       /* rank q's slots begin at order[start[q]] */
  osp_tensor order;  /* i32 [slots]: rank 0's slots in its local order, then rank 1's, ... */
  osp_tensor owner;  /* i32 [slots]: the rank holding each serial slot */
  osp_tensor local;  /* i32 [slots]: its index in that rank's tensor */
} osp_shard;

/* Bands of `band_height` grid lines (Ulysses). Fails clearly when a rank would own no unit. */
osp_status osp_shard_bands(const osp_layout *layout, int ranks, int64_t band_height, osp_arena *arena,
                           osp_shard *shard);
/* Whole rows (SSP). Fails clearly unless the ranks divide the rows. */
osp_status osp_shard_rows(const osp_layout *layout, int ranks, osp_arena *arena, osp_shard *shard);

/* Rank q's slice of a per-slot table (i32 or u8 with `width` values per slot: positions [·, 3], a
 * key mask [·, 1]) in q's local order, into `out` (host memory, [rows[q]·tokens[q], width]). */
void osp_shard_take(const osp_shard *shard, int q, const void *table, int elem_size, int width, void *out);

#endif
