/* One rank's part of a DiT forward spread over a sequence-parallel group (PAPER.md section 6):
 * full blocks run Ulysses over bands of tokens; Skiparse blocks run Ulysses too (bands of P² lines,
 * so their layout changes stay local: PAPER.md 6.4) or SSP (whole subsequences per rank, so their
 * attention is local and a token ↔ group switch is one all-to-all of the hidden states). Built
 * from the serial Skiparse plan: `local` is that plan cut to this rank's tokens (its layouts,
 * RoPE positions, key masks, and the layout changes that stay on the rank), so the forward runs
 * its blocks as it does on one rank; the rest is the communication around them. */
#ifndef OSP_PARALLEL_SEQUENCE_PARALLEL_H
#define OSP_PARALLEL_SEQUENCE_PARALLEL_H

#include "parallel/comm.h"
#include "parallel/redistribute.h"
#include "parallel/shard.h"
#include "parallel/ulysses.h"
#include "sparse/plan.h"

typedef enum { OSP_SP_ULYSSES, OSP_SP_SSP } osp_sp_mode;

/* "ulysses" or "ssp"; `what` names the flag in the message. */
osp_status osp_sp_mode_parse(const char *what, const char *text, osp_sp_mode *mode);

typedef struct {
  osp_comm *comm;
  osp_sp_mode mode;
  int me, ranks;
  osp_shard shard[OSP_PATTERN_COUNT];
  osp_sparse_plan local;
  osp_redistribution change[OSP_PATTERN_COUNT][OSP_PATTERN_COUNT]; /* where the serial plan changes layout */
  osp_ulysses ulysses[OSP_PATTERN_COUNT];  /* for layouts split in bands */
  bool band_split[OSP_PATTERN_COUNT];
  /* The samples whose tokens this rank holds in each layout: all B, except where SSP gives each
   * rank fewer rows than samples (S > P², as 8 ranks on a CFG pair): then samples
   * [first_sample, first_sample + samples) in row order, and the per-sample tensors (modulation,
   * context) are sliced to them. */
  int64_t first_sample[OSP_PATTERN_COUNT], samples[OSP_PATTERN_COUNT];
  osp_tensor natural_order; /* i32 [B·tokens]: the natural slots this rank embeds (patch rows) */
  osp_tensor head_unpack;   /* i32 [B·N]: natural slot i's row in the all-gathered head output */
  osp_tensor send, recv;    /* scratch of the layout changes [rows, C] */
} osp_sp_plan;

/* Cuts `serial` (for `cfg`) into rank osp_comm_rank(comm)'s part; tables from `host`. */
osp_status osp_sp_plan_make(osp_comm *comm, osp_sp_mode mode, const osp_model_config *cfg,
                            const osp_sparse_plan *serial, osp_arena *host, osp_sp_plan *sp);
/* The same plan for rank `me` of `ranks` with no communicator: to count what it would send. */
osp_status osp_sp_plan_for(int me, int ranks, osp_sp_mode mode, const osp_model_config *cfg,
                           const osp_sparse_plan *serial, osp_arena *host, osp_sp_plan *sp);
/* Bytes this rank sends the others in block `index` of cfg's schedule, `value_bytes` a value: its
 * Ulysses attention (q, k, v out, the output back) and the layout change after it (before it too
 * for block 0), as the forward's counters count them. */
int64_t osp_sp_block_bytes(const osp_sp_plan *sp, const osp_model_config *cfg, int index, int64_t value_bytes);

/* Buffers on the forward's device (`dtype`, C = model dim) from `device_arena`, with the tables
 * moved there where `move_tables`. */
osp_status osp_sp_allocate(osp_sp_plan *sp, osp_dtype dtype, int64_t C, bool move_tables,
                           osp_arena *device_arena);

/* x_next = x moved into layout `to` (this rank's tensors) where the change needs communication. */
osp_status osp_sp_change_layout(const osp_sp_plan *sp, osp_pattern from, osp_pattern to,
                                const osp_tensor *x, osp_tensor *x_next);
/* Its backward: dx (written, layout `from`) from dx_next (layout `to`). */
osp_status osp_sp_change_layout_backward(const osp_sp_plan *sp, osp_pattern from, osp_pattern to,
                                         const osp_tensor *dx_next, osp_tensor *dx);
/* full [B·N, W] on every rank = the natural-order rows of every rank's `mine` [B·tokens, W]
 * (the head's output), through `gathered` ([B·N, W] scratch). */
osp_status osp_sp_gather_natural(const osp_sp_plan *sp, const osp_tensor *mine, osp_tensor *gathered,
                                 osp_tensor *full);

#endif
