/* GPU ranks through NCCL, one process per GPU, on the CUDA backend's stream: the collectives queue
 * behind the kernels launched before them and return without waiting (osp_comm_set_timing waits).
 * Buffers are device memory. The NCCL unique id travels from rank 0 over the host communicator.
 *
 * Determinism: NCCL's all-reduce (ring or tree, picked from the size, the rank count and the
 * topology, the same for every call of a given size on a given communicator) sums each value once,
 * in an order fixed by the ring or the tree, and then copies the sum to every rank: every rank gets
 * the same bits, and a rerun on the same machines the same bits again. */
#include <cuda_runtime.h>
#include <nccl.h>
#include <stdlib.h>

#include "core/status.h"
#include "cuda/cuda.h"
#include "parallel/comm_internal.h"

typedef struct {
  ncclComm_t comm;
  float *flag;             /* one device float, all-reduced by the barrier */
  osp_comm_part *parts;    /* one exchange's parts: [0, size) sent to each rank, [size, 2·size) received */
} nccl_state;

static osp_status nccl_check(ncclResult_t result, const char *what) {
  if (result == ncclSuccess) return OSP_OK;
  const osp_status status =
      result == ncclInvalidArgument || result == ncclInvalidUsage ? OSP_ERR_ARGUMENT : OSP_ERR_IO;
  return osp_fail(status, "nccl: %s: %s (%s)", what, ncclGetErrorString(result), ncclGetLastError(NULL));
}

static cudaStream_t stream(void) { return (cudaStream_t)osp_cuda_stream_handle(); }

static nccl_state *state_of(osp_comm *comm) { return comm->impl; }

/* Sends s->parts[q] to rank q and receives s->parts[size + q] from it, for every q (itself too),
 * as one group of point-to-point calls. */
static osp_status exchange(nccl_state *s, int size, const char *what) {
  ncclResult_t result = ncclGroupStart();
  for (int q = 0; q < size && result == ncclSuccess; q++) {
    const osp_comm_part send = s->parts[q], recv = s->parts[size + q];
    if (send.bytes > 0) result = ncclSend(send.at, (size_t)send.bytes, ncclInt8, q, s->comm, stream());
    if (result == ncclSuccess && recv.bytes > 0)
      result = ncclRecv((void *)recv.at, (size_t)recv.bytes, ncclInt8, q, s->comm, stream());
  }
  const ncclResult_t ended = ncclGroupEnd(); /* closes the group even after a failed call in it */
  return nccl_check(result != ncclSuccess ? result : ended, what);
}

static osp_status nccl_all_to_all(osp_comm *comm, const void *send, const int64_t *send_bytes,
                                  const int64_t *send_offset, void *recv, const int64_t *recv_bytes,
                                  const int64_t *recv_offset) {
  nccl_state *s = state_of(comm);
  osp_comm_parts_all_to_all(comm->size, send, send_bytes, send_offset, recv, recv_bytes, recv_offset, s->parts);
  return exchange(s, comm->size, "all-to-all");
}

static osp_status nccl_all_gather(osp_comm *comm, const void *send, int64_t bytes, void *recv,
                                  const int64_t *recv_bytes, const int64_t *recv_offset) {
  nccl_state *s = state_of(comm);
  osp_comm_parts_all_gather(comm->size, send, bytes, recv, recv_bytes, recv_offset, s->parts);
  return exchange(s, comm->size, "all-gather");
}

static osp_status nccl_all_reduce_sum(osp_comm *comm, float *data, int64_t count, int64_t *bytes_sent) {
  OSP_TRY(nccl_check(ncclAllReduce(data, data, (size_t)count, ncclFloat32, ncclSum, state_of(comm)->comm,
                                   stream()),
                     "all-reduce"));
  /* What each rank sends in NCCL's ring, 2·(size − 1)/size of the buffer (its tree, about as much). */
  *bytes_sent = 2 * count * 4 * (comm->size - 1) / comm->size;
  return OSP_OK;
}

static osp_status nccl_broadcast(osp_comm *comm, void *data, int64_t bytes, int root) {
  return nccl_check(ncclBroadcast(data, data, (size_t)bytes, ncclInt8, root, state_of(comm)->comm, stream()),
                    "broadcast");
}

static osp_status nccl_barrier(osp_comm *comm) {
  nccl_state *s = state_of(comm);
  OSP_TRY(nccl_check(ncclAllReduce(s->flag, s->flag, 1, ncclFloat32, ncclMax, s->comm, stream()), "barrier"));
  return osp_cuda_synchronize();
}

static osp_status wrap(ncclComm_t handle, osp_comm **out);

static osp_status nccl_split(osp_comm *comm, int color, int key, osp_comm **out) {
  ncclComm_t handle;
  OSP_TRY(nccl_check(ncclCommSplit(state_of(comm)->comm, color, key, &handle, NULL), "splitting a communicator"));
  return wrap(handle, out);
}

static void nccl_release(void *impl) {
  nccl_state *s = impl;
  ncclCommDestroy(s->comm);
  osp_cuda_free(s->flag);
  free(s->parts);
  free(s);
}

static const osp_comm_vtable nccl_vtable = {
    .all_to_all = nccl_all_to_all,
    .all_gather = nccl_all_gather,
    .all_reduce_sum = nccl_all_reduce_sum,
    .broadcast = nccl_broadcast,
    .barrier = nccl_barrier,
    .split = nccl_split,
    .release = nccl_release,
};

/* A communicator that owns `handle`. */
static osp_status wrap(ncclComm_t handle, osp_comm **out) {
  int rank = 0, size = 0;
  osp_status status = nccl_check(ncclCommUserRank(handle, &rank), "reading the rank");
  if (status == OSP_OK) status = nccl_check(ncclCommCount(handle, &size), "reading the size");
  nccl_state *s = status == OSP_OK ? calloc(1, sizeof *s) : NULL;
  if (status == OSP_OK && (!s || !(s->parts = calloc(2 * (size_t)size, sizeof *s->parts))))
    status = osp_fail(OSP_ERR_MEMORY, "nccl: no memory for a communicator of %d ranks", size);
  if (status == OSP_OK) status = osp_cuda_malloc(sizeof(float), (void **)&s->flag);
  if (status == OSP_OK) status = osp_cuda_memset_zero(s->flag, sizeof(float));
  if (status != OSP_OK) {
    ncclCommDestroy(handle);
    if (s) {
      osp_cuda_free(s->flag);
      free(s->parts);
      free(s);
    }
    return status;
  }
  s->comm = handle;
  return osp_comm_create(&nccl_vtable, s, OSP_COMM_NCCL, rank, size, OSP_CUDA, out);
}

osp_status osp_comm_gpu(osp_comm *host_comm, osp_comm **out) {
  OSP_TRY(osp_comm_gpu_check(host_comm, out));
  int devices = 0;
  const cudaError_t error = cudaGetDeviceCount(&devices);
  if (error != cudaSuccess || devices == 0)
    return osp_fail(OSP_ERR_UNSUPPORTED, "osp_comm_gpu: rank %d sees no usable GPU (%s)", host_comm->rank,
                    error != cudaSuccess ? cudaGetErrorString(error) : "no device found");
  /* One process per GPU: the i-th rank on a node takes the node's GPU i (mod their count). The
   * backend must not have started on another GPU before this. */
  OSP_TRY(osp_cuda_select_device(osp_comm_local_rank(host_comm->rank) % devices));
  OSP_TRY(osp_cuda_init());
  if (host_comm->size == 1) return osp_comm_single(OSP_CUDA, out);
  ncclUniqueId id = {0};
  if (host_comm->rank == 0) OSP_TRY(nccl_check(ncclGetUniqueId(&id), "making the communicator's unique id"));
  OSP_TRY(osp_comm_broadcast(host_comm, &id, sizeof id, 0));
  ncclComm_t handle;
  OSP_TRY(nccl_check(ncclCommInitRank(&handle, host_comm->size, id, host_comm->rank),
                     "joining the communicator (one GPU per rank: more ranks on a node than its GPUs fail here)"));
  return wrap(handle, out);
}
