/* Moving a sharded per-token tensor into another layout or another sharding with one all-to-all
 * (PAPER.md 6.2: entering the sparse span, each token ↔ group switch, leaving it). The serial
 * layout change is a gather table (sparse/plan.h); spread over ranks it becomes, on each rank:
 * pack the local rows the others need (one gather, destination-major), one all-to-all, and unpack
 * the received rows into the new local order (one gather; −1 rows are the padding, zero). Where
 * no rank needs a token from another (Ulysses' bands, PAPER.md 6.4), it is one local gather. */
#ifndef OSP_PARALLEL_REDISTRIBUTE_H
#define OSP_PARALLEL_REDISTRIBUTE_H

#include <stdbool.h>

#include "parallel/comm.h"
#include "parallel/shard.h"

typedef struct {
  int me, ranks;
  bool local_only;       /* no token moves between ranks: `local_gather` alone does it */
  osp_tensor local_gather; /* i32 [destination rows]: source row on this rank, −1: zero */
  osp_tensor pack;       /* i32 [sent rows]: local source rows, grouped by destination rank */
  osp_tensor unpack;     /* i32 [destination rows]: each one's row in the received buffer, −1: zero */
  int64_t send_rows[OSP_MAX_RANKS], recv_rows[OSP_MAX_RANKS];
  int64_t total_send, total_recv;
} osp_redistribution;

/* The plan for rank `me` from `from` to `to`; `gather` is the serial table between their layouts
 * (slot i of `to` takes slot gather[i] of `from`, −1: zero), or NULL when the layouts are the same.
 * Tables come from `arena` (host). */
osp_status osp_redistribution_plan(const osp_shard *from, const osp_shard *to, const osp_tensor *gather,
                                   int me, osp_arena *arena, osp_redistribution *r);

/* dst = src moved by the plan: src and dst are the local tensors (rows of C values); send and recv
 * are scratch with at least total_send and total_recv rows of C (unused when local_only). */
osp_status osp_redistribute(osp_comm *comm, const osp_redistribution *r, const osp_tensor *src,
                            osp_tensor *send, osp_tensor *recv, osp_tensor *dst);

/* The backward of osp_redistribute: dsrc (written) from ddst, the same exchange run in reverse
 * (every token moved once, so each gradient row goes back to where its token came from; padding
 * rows have none). send and recv as osp_redistribute's. */
osp_status osp_redistribute_backward(osp_comm *comm, const osp_redistribution *r, const osp_tensor *ddst,
                                     osp_tensor *send, osp_tensor *recv, osp_tensor *dsrc);

/* An all-to-all of whole rows (row_bytes each), packed rank after rank: out_rows[q] rows of `out`
 * go to rank q, in_rows[q] rows from rank q land in `in`. */
osp_status osp_all_to_all_rows(osp_comm *comm, int64_t row_bytes, const osp_tensor *out, const int64_t *out_rows,
                               osp_tensor *in, const int64_t *in_rows);

/* rows of C values starting at row `first` of a contiguous tensor, as [rows, C]. */
osp_tensor osp_rows_view(const osp_tensor *t, int64_t first, int64_t rows);

#endif
