/* Ranks talk through this one small interface (ARCHITECTURE.md, Distributed). Three
 * implementations: a single rank (comm_single.c), MPI for CPU ranks (comm_mpi.c; mpirun is the
 * launcher everywhere) and NCCL for GPU ranks, one per GPU, its unique id broadcast over MPI
 * (comm_nccl.c). Buffers live where the communicator's device says: host memory for the single
 * CPU rank and MPI, device memory for NCCL. Every collective counts the bytes this rank sends to
 * the others (its own share, which stays, is not counted), so the traffic of a schedule is
 * measured, not quoted. */
#ifndef OSP_PARALLEL_COMM_H
#define OSP_PARALLEL_COMM_H

#include <stdbool.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/tensor.h"
#include "osp.h"

typedef struct osp_comm osp_comm;

typedef enum { OSP_COMM_SINGLE, OSP_COMM_MPI, OSP_COMM_NCCL } osp_comm_kind;

typedef enum {
  OSP_COLLECTIVE_ALL_TO_ALL,
  OSP_COLLECTIVE_ALL_GATHER,
  OSP_COLLECTIVE_ALL_REDUCE,
  OSP_COLLECTIVE_BROADCAST,
  OSP_COLLECTIVE_COUNT
} osp_collective;

/* What one kind of collective has cost this rank since the last reset. `seconds` is wall time
 * inside the calls; it includes waiting for the device before and after each call only while
 * timing is on (osp_comm_set_timing), so that device work queued earlier is not counted. */
typedef struct {
  int64_t calls;
  int64_t bytes_sent; /* to other ranks */
  double seconds;
} osp_comm_counter;

/* The world: every rank of an MPI launch (mpirun -np N osp ...), else one rank on its own.
 * Initializes MPI on first use when the process was started by an MPI launcher (mpirun's
 * environment), and never otherwise, so a plain `osp` run needs no MPI at all. Buffers are host
 * memory. The same communicator comes back on every call; osp_comm_finalize ends it. */
osp_status osp_comm_world(osp_comm **world);
/* A GPU communicator over the ranks of `host_comm` (one process per GPU), its NCCL unique id
 * broadcast from rank 0 over `host_comm`. Picks GPU (local rank mod GPUs on the node). Buffers are
 * device memory on the CUDA backend's stream. A single-rank `host_comm` gives a single CUDA rank. */
osp_status osp_comm_gpu(osp_comm *host_comm, osp_comm **out);
/* Ranks of `comm` with the same `color` form a new communicator, ordered by `key` (then rank). */
osp_status osp_comm_split(osp_comm *comm, int color, int key, osp_comm **out);
void osp_comm_free(osp_comm *comm);
/* Frees the world and ends MPI when it was started (a no-op otherwise). */
void osp_comm_finalize(void);
/* Stops every rank of the world at once (MPI_Abort) after a failure on this one, so that no rank
 * waits forever in a collective; returns only without MPI. */
void osp_comm_abort(int exit_code);

int osp_comm_rank(const osp_comm *comm);
int osp_comm_size(const osp_comm *comm);
osp_comm_kind osp_comm_kind_of(const osp_comm *comm);
/* Where the buffers of this communicator's collectives live. */
osp_device osp_comm_device(const osp_comm *comm);

/* All-to-all with uneven parts, in bytes: send_bytes[q] bytes at send + send_offset[q] go to
 * rank q, and recv_bytes[q] bytes from rank q land at recv + recv_offset[q]. Each array has
 * osp_comm_size entries; send and recv must not overlap. */
osp_status osp_comm_all_to_all(osp_comm *comm, const void *send, const int64_t *send_bytes,
                               const int64_t *send_offset, void *recv, const int64_t *recv_bytes,
                               const int64_t *recv_offset);
/* All-gather with uneven parts: this rank's `bytes` at send land at recv + recv_offset[rank] of
 * every rank; rank q contributes recv_bytes[q] (which must equal its own `bytes`). */
osp_status osp_comm_all_gather(osp_comm *comm, const void *send, int64_t bytes, void *recv,
                               const int64_t *recv_bytes, const int64_t *recv_offset);
/* In place: data[i] = the sum over ranks of data[i], for `count` values of dtype f32 (the only
 * one). The order of the sum is fixed for a given size and implementation, so every rank gets the
 * same bits. */
osp_status osp_comm_all_reduce_sum(osp_comm *comm, void *data, osp_dtype dtype, int64_t count);
osp_status osp_comm_broadcast(osp_comm *comm, void *data, int64_t bytes, int root);
osp_status osp_comm_barrier(osp_comm *comm);

/* Byte and time counters, per kind of collective, since the communicator was made or last reset. */
osp_comm_counter osp_comm_counter_of(const osp_comm *comm, osp_collective collective);
void osp_comm_reset_counters(osp_comm *comm);
/* Every kind of collective's counters added up. */
osp_comm_counter osp_comm_total(const osp_comm *comm);
/* With timing on, each collective waits for the device before it starts and after it ends, so
 * `seconds` is the time spent communicating alone (benchmarks; it costs overlap). */
void osp_comm_set_timing(osp_comm *comm, bool on);
const char *osp_collective_name(osp_collective collective);

#endif
