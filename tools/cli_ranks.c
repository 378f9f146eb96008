#include "cli_ranks.h"

#include <stdio.h>

#include "cli.h"
#include "core/log.h"
#include "core/status.h"

static osp_status split_world(bool cfg_parallel, cli_ranks *r) {
  if (!cfg_parallel) {
    r->host_sequence = r->world;
    return OSP_OK;
  }
  if (r->size % 2 != 0)
    return osp_fail(OSP_ERR_ARGUMENT, "--cfg-parallel splits the ranks into two groups: launch an even number, found %d",
                    r->size);
  /* Ranks [0, size/2) run the first half of the batch, [size/2, size) the second; rank i of one
   * group and rank i of the other form a batch group. */
  const int half = r->size / 2, group = r->rank / half;
  OSP_TRY(osp_comm_split(r->world, group, r->rank, &r->host_sequence));
  return osp_comm_split(r->world, r->rank % half, group, &r->split.batch);
}

osp_status cli_ranks_start(const char *sp, bool cfg_parallel, osp_device device, cli_ranks *r) {
  *r = (cli_ranks){.split.mode = OSP_SP_SSP};
  OSP_TRY(osp_comm_world(&r->world));
  r->rank = osp_comm_rank(r->world);
  r->size = osp_comm_size(r->world);
  if (r->rank != 0) osp_log_set_level(OSP_LOG_WARN);
  if (sp) OSP_TRY(osp_sp_mode_parse("--sp", sp, &r->split.mode));
  OSP_TRY(split_world(cfg_parallel, r));
  r->split.sequence = r->host_sequence;
  if (device == OSP_CUDA && r->size > 1) /* each rank its own GPU, even in a sequence group of one */
    OSP_TRY(osp_comm_gpu(r->host_sequence, &r->split.sequence));
  if (r->size > 1)
    osp_info("%d ranks: %s%s", r->size, r->split.mode == OSP_SP_SSP ? "SSP (Ulysses in full blocks)" : "Ulysses",
             cfg_parallel ? ", CFG parallel (2 batch groups)" : "");
  return OSP_OK;
}

void cli_ranks_finish(cli_ranks *r) {
  if (r->split.sequence && r->split.sequence != r->host_sequence) osp_comm_free(r->split.sequence);
  if (r->host_sequence && r->host_sequence != r->world) osp_comm_free(r->host_sequence);
  if (r->split.batch) osp_comm_free(r->split.batch);
  *r = (cli_ranks){0};
  osp_comm_finalize();
}

int cli_ranks_failure(const cli_ranks *r, osp_status status) {
  if (r->size <= 1) return cli_failure(status);
  fprintf(stderr, "osp: error (rank %d of %d): %s\n", r->rank, r->size, osp_last_error());
  fflush(stderr);
  osp_comm_abort(CLI_EXIT_FAILURE);
  return CLI_EXIT_FAILURE;
}
