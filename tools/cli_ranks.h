/* The ranks of an MPI launch (mpirun -np N osp ...) as a command splits them: a sequence-parallel
 * group (--sp ulysses|ssp) and, with --cfg-parallel, two batch groups (the conditional and the
 * unconditional pass on different ranks). Rank 0 alone writes files and logs progress; a failure
 * on any rank stops every rank with its message. */
#ifndef OSP_TOOLS_CLI_RANKS_H
#define OSP_TOOLS_CLI_RANKS_H

#include <stdbool.h>

#include "model/dit.h"
#include "parallel/comm.h"

typedef struct {
  osp_comm *world;
  osp_comm *host_sequence; /* the sequence group over MPI (split.sequence is its NCCL twin on GPUs) */
  osp_dit_parallel split;  /* sequence and batch groups, and the mode of the sequence split; the
                            * batch group stays on the host, where the velocity is gathered */
  int rank, size;
} cli_ranks;

/* Joins the launch (one rank without mpirun) and splits it: `sp` NULL means ssp on more than one
 * rank; `cfg_parallel` asks for two batch groups. On CUDA each rank takes one GPU and the
 * sequence group talks through NCCL. Call it before anything initialises the GPU. */
osp_status cli_ranks_start(const char *sp, bool cfg_parallel, osp_device device, cli_ranks *ranks);
void cli_ranks_finish(cli_ranks *ranks);
/* cli_failure, and on more than one rank the message names the rank and every rank stops. */
int cli_ranks_failure(const cli_ranks *ranks, osp_status status);

#endif
