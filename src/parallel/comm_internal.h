/* What the communicator's implementations share (comm.h is the interface): the struct every one
 * of them fills, the table of its collectives, and a few helpers. Internal to src/parallel/. */
#ifndef OSP_PARALLEL_COMM_INTERNAL_H
#define OSP_PARALLEL_COMM_INTERNAL_H

#include "parallel/comm.h"

/* An implementation's collectives. comm.c has checked the arguments (present, non-negative,
 * root in range, this rank's own share consistent) and counts calls, bytes and seconds around
 * each call, so these only move the data. */
typedef struct {
  osp_status (*all_to_all)(osp_comm *comm, const void *send, const int64_t *send_bytes,
                           const int64_t *send_offset, void *recv, const int64_t *recv_bytes,
                           const int64_t *recv_offset);
  osp_status (*all_gather)(osp_comm *comm, const void *send, int64_t bytes, void *recv,
                           const int64_t *recv_bytes, const int64_t *recv_offset);
  /* f32 only (comm.c refuses the rest); *bytes_sent: what left this rank for the others. */
  osp_status (*all_reduce_sum)(osp_comm *comm, float *data, int64_t count, int64_t *bytes_sent);
  osp_status (*broadcast)(osp_comm *comm, void *data, int64_t bytes, int root);
  osp_status (*barrier)(osp_comm *comm);
  osp_status (*split)(osp_comm *comm, int color, int key, osp_comm **out);
  void (*release)(void *impl); /* frees the implementation's state; NULL: nothing to free */
} osp_comm_vtable;

struct osp_comm {
  const osp_comm_vtable *vtable;
  void *impl; /* the implementation's own state (an MPI communicator, an NCCL one) */
  osp_comm_kind kind;
  int rank, size;
  osp_device device;
  bool is_world; /* osp_comm_free leaves the world alone: osp_comm_finalize ends it */
  bool timing;
  osp_comm_counter counters[OSP_COLLECTIVE_COUNT];
};

/* A communicator around an implementation's state; on failure `impl` is released. */
osp_status osp_comm_create(const osp_comm_vtable *vtable, void *impl, osp_comm_kind kind, int rank,
                           int size, osp_device device, osp_comm **out);
/* Frees any communicator, the world too (osp_comm_finalize's part). */
void osp_comm_destroy(osp_comm *comm);

/* osp_comm_gpu's arguments: out present (set to NULL), host_comm a host communicator. */
osp_status osp_comm_gpu_check(const osp_comm *host_comm, osp_comm **out);

/* A part of a collective: `bytes` bytes at `at`, to or from one rank. */
typedef struct {
  const void *at;
  int64_t bytes;
} osp_comm_part;

/* The part at base + offset; no address where it is empty (base may then be NULL). */
static inline osp_comm_part osp_comm_part_at(const void *base, int64_t offset, int64_t bytes) {
  return (osp_comm_part){bytes > 0 ? (const char *)base + offset : NULL, bytes};
}

/* The parts of one all-to-all or all-gather (comm.h's arguments) for an exchange: parts[q] goes to
 * rank q, parts[size + q] comes from it. */
void osp_comm_parts_all_to_all(int size, const void *send, const int64_t *send_bytes, const int64_t *send_offset,
                               void *recv, const int64_t *recv_bytes, const int64_t *recv_offset,
                               osp_comm_part *parts);
void osp_comm_parts_all_gather(int size, const void *send, int64_t bytes, void *recv, const int64_t *recv_bytes,
                               const int64_t *recv_offset, osp_comm_part *parts);

/* One rank on its own, its buffers on `device` (comm_single.c). */
osp_status osp_comm_single(osp_device device, osp_comm **out);

/* What an MPI launcher (mpirun, srun, hydra) put in this process's environment (comm_launch.c):
 * 0 when none started this process, else how many ranks it started (at least this rank's
 * number + 1 where it names only that). */
int osp_comm_launch_size(void);
/* This rank's place among the ranks on its node, as the launcher says, else `rank`. */
int osp_comm_local_rank(int rank);

#endif
