/* What an MPI launcher tells a process through its environment: that it was launched, how many
 * ranks there are, and its place on its node. Read before (and without) MPI itself, so that a
 * plain `osp` run never starts MPI, and a build without MPI can notice that it was launched as
 * one of several. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include "parallel/comm_internal.h"

/* The first of `names` that is set to a non-negative int, else -1. */
static int env_int(const char *const *names, int n) {
  for (int i = 0; i < n; i++) {
    const char *text = getenv(names[i]);
    if (!text || !*text) continue;
    char *end = NULL;
    errno = 0;
    const long value = strtol(text, &end, 10);
    if (errno == 0 && *end == '\0' && value >= 0 && value <= INT_MAX) return (int)value;
  }
  return -1;
}

int osp_comm_launch_size(void) {
  /* Open MPI's mpirun; MPICH's hydra, Intel MPI and Slurm's PMI; PMIx launchers (prterun). */
  static const char *const size_names[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
  static const char *const rank_names[] = {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"};
  const int size = env_int(size_names, 3), rank = env_int(rank_names, 3);
  if (size > 0) return size;
  return rank >= 0 ? rank + 1 : 0;
}

int osp_comm_local_rank(int rank) {
  static const char *const names[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID",
                                      "LOCAL_RANK"};
  const int local = env_int(names, 4);
  return local >= 0 ? local : rank;
}
