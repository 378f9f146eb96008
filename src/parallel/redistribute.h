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

/* rows of C values starting at row `first` of a contiguous tensor, as [rows, C]. */
osp_tensor osp_rows_view(const osp_tensor *t, int64_t first, int64_t rows);

#endif
