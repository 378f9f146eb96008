/* Ulysses sequence parallelism for one attention (PAPER.md 6.2, full blocks): each rank holds a
 * band of every row's tokens with all heads; one all-to-all each for q, k and v gives it every
 * token of its heads/S heads, attention runs there, and one all-to-all brings the output back to
 * the tokens' owners: four per block. The gathered sequence of a row is the ranks' tokens in rank
 * order, which is the serial order (bands are contiguous), so the result is the serial one. */
#ifndef OSP_PARALLEL_ULYSSES_H
#define OSP_PARALLEL_ULYSSES_H

#include <stdbool.h>

#include "parallel/comm.h"
#include "parallel/shard.h"

typedef struct {
  int me, ranks, heads;
  int64_t rows, tokens, gathered; /* this rank's [rows, tokens]; every rank's tokens together */
  int64_t head_width;             /* heads/ranks · head_dim values: one unit of an all-to-all */
  /* Gathers over units of head_width values. Local unit (row·tokens + pos)·ranks + p is this
   * rank's token (row, pos) in head group p; a gathered unit (row, offset_q + pos) is rank q's. */
  osp_tensor scatter_pack;   /* i32: send buffer (p, row, pos) ← local units */
  osp_tensor scatter_unpack; /* i32: gathered (row, offset_q + pos) ← received (q, row, pos) */
  osp_tensor gather_pack;    /* i32: send buffer (q, row, pos) ← gathered (row, offset_q + pos) */
  osp_tensor gather_unpack;  /* i32: local units ← received (p, row, pos) */
  osp_tensor key_mask;       /* u8 [rows, gathered]; data NULL: every key is a real token */
  int64_t token_counts[OSP_MAX_RANKS];
  /* Buffers on the device: the gathered q, k, v and output [rows, gathered, heads/ranks, D], and
   * the all-to-all's send and receive space (rows·max(tokens·ranks, gathered) units each). */
  osp_tensor q, k, v, out, send, recv;
} osp_ulysses;

/* The plan for rank `me` over a band-split layout, its tables from `host` (the key mask from the
 * serial one, [rows, tokens] u8, or NULL). Fails clearly unless the ranks divide the heads. */
osp_status osp_ulysses_plan(const osp_shard *shard, int me, int heads, int head_dim,
                            const osp_tensor *serial_key_mask, osp_arena *host, osp_ulysses *u);
/* Its buffers in `dtype` from a device arena, and its tables moved there where `move_tables`
 * (a device other than the CPU). */
osp_status osp_ulysses_allocate(osp_ulysses *u, osp_dtype dtype, bool move_tables, osp_arena *device);
/* The gathered tensors of one attention: q, k, v and its output [rows, gathered, heads/ranks, D],
 * and the log-sum-exp f32 [rows, heads/ranks, gathered] (training keeps them for the backward). */
typedef struct {
  osp_tensor q, k, v, out, lse;
} osp_ulysses_gathered;

/* out = attention over every rank's tokens of q, k, v: all four [rows, tokens, heads, D] on this
 * rank; scratch as osp_attention's. `keep` NULL: the gathered tensors go to u's own buffers and
 * no log-sum-exp is kept; else into keep's (training). hif8_max > 0: the gathered q, k, v (this
 * rank's head group over the whole sequence) are HiF8-quantized with that smax first, where
 * OSP-Next quantizes them under Ulysses (PAPER.md 7.3); 0: not quantized. */
osp_status osp_ulysses_attention(osp_comm *comm, const osp_ulysses *u, const osp_tensor *q,
                                 const osp_tensor *k, const osp_tensor *v, float scale, float hif8_max,
                                 const osp_tensor *scratch, const osp_ulysses_gathered *keep,
                                 osp_tensor *out);
/* Its backward: dq, dk, dv (this rank's, written) from dout (this rank's), through the kept
 * gathered tensors: dout goes out as q did, attention's backward runs on the gathered heads (in u's
 * own buffers), and the gradients come back as the output did: four all-to-alls. hif8_max > 0:
 * the gathered gradients are HiF8-quantized with that smax before they go back. */
osp_status osp_ulysses_attention_backward(osp_comm *comm, const osp_ulysses *u, const osp_ulysses_gathered *kept,
                                          const osp_tensor *dout, float scale, float hif8_max,
                                          const osp_tensor *scratch, osp_tensor *dq, osp_tensor *dk, osp_tensor *dv);

#endif
