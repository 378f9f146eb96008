/* The part of every communicator that does not depend on how bytes travel: the accessors, the
 * argument checks (made before any rank communicates, so that a bad call fails alike on every rank
 * that makes it instead of leaving the others waiting), and the counters around each collective. */
#include <stdint.h>
#include <stdlib.h>

#include "core/clock.h"
#include "core/status.h"
#include "ops/ops.h"
#include "parallel/comm_internal.h"

osp_status osp_comm_create(const osp_comm_vtable *vtable, void *impl, osp_comm_kind kind, int rank,
                           int size, osp_device device, osp_comm **out) {
  osp_comm *comm = calloc(1, sizeof *comm);
  if (!comm) {
    if (vtable->release) vtable->release(impl);
    return osp_fail(OSP_ERR_MEMORY, "communicator: no memory for its state");
  }
  *comm = (osp_comm){.vtable = vtable, .impl = impl, .kind = kind, .rank = rank, .size = size,
                     .device = device};
  *out = comm;
  return OSP_OK;
}

void osp_comm_parts_all_to_all(int size, const void *send, const int64_t *send_bytes, const int64_t *send_offset,
                               void *recv, const int64_t *recv_bytes, const int64_t *recv_offset,
                               osp_comm_part *parts) {
  for (int q = 0; q < size; q++) {
    parts[q] = osp_comm_part_at(send, send_offset[q], send_bytes[q]);
    parts[size + q] = osp_comm_part_at(recv, recv_offset[q], recv_bytes[q]);
  }
}

void osp_comm_parts_all_gather(int size, const void *send, int64_t bytes, void *recv, const int64_t *recv_bytes,
                               const int64_t *recv_offset, osp_comm_part *parts) {
  for (int q = 0; q < size; q++) {
    parts[q] = osp_comm_part_at(send, 0, bytes);
    parts[size + q] = osp_comm_part_at(recv, recv_offset[q], recv_bytes[q]);
  }
}

void osp_comm_destroy(osp_comm *comm) {
  if (!comm) return;
  if (comm->vtable->release) comm->vtable->release(comm->impl);
  free(comm);
}

void osp_comm_free(osp_comm *comm) {
  if (comm && !comm->is_world) osp_comm_destroy(comm);
}

int osp_comm_rank(const osp_comm *comm) { return comm->rank; }
int osp_comm_size(const osp_comm *comm) { return comm->size; }
osp_comm_kind osp_comm_kind_of(const osp_comm *comm) { return comm->kind; }
osp_device osp_comm_device(const osp_comm *comm) { return comm->device; }

const char *osp_collective_name(osp_collective collective) {
  switch (collective) {
    case OSP_COLLECTIVE_ALL_TO_ALL: return "all_to_all";
    case OSP_COLLECTIVE_ALL_GATHER: return "all_gather";
    case OSP_COLLECTIVE_ALL_REDUCE: return "all_reduce";
    case OSP_COLLECTIVE_BROADCAST: return "broadcast";
    case OSP_COLLECTIVE_COUNT: break;
  }
  return "unknown collective";
}

osp_comm_counter osp_comm_counter_of(const osp_comm *comm, osp_collective collective) {
  if (collective < 0 || collective >= OSP_COLLECTIVE_COUNT) return (osp_comm_counter){0};
  return comm->counters[collective];
}

osp_comm_counter osp_comm_total(const osp_comm *comm) {
  osp_comm_counter total = {0};
  for (int i = 0; i < OSP_COLLECTIVE_COUNT; i++) {
    total.calls += comm->counters[i].calls;
    total.bytes_sent += comm->counters[i].bytes_sent;
    total.seconds += comm->counters[i].seconds;
  }
  return total;
}

void osp_comm_reset_counters(osp_comm *comm) {
  for (int i = 0; i < OSP_COLLECTIVE_COUNT; i++) comm->counters[i] = (osp_comm_counter){0};
}

void osp_comm_set_timing(osp_comm *comm, bool on) { comm->timing = on; }

/* ---- Checks --------------------------------------------------------------------------------- */

static osp_status check_comm(const char *op, const osp_comm *comm) {
  return comm ? OSP_OK : osp_fail(OSP_ERR_ARGUMENT, "%s: no communicator (NULL)", op);
}

/* One side ("send" or "recv") of a collective's parts: `n` byte counts and offsets, none negative,
 * and a buffer wherever some bytes are due. *extent: the end of the last part, in bytes. */
static osp_status check_parts(const char *op, const char *side, const void *buffer,
                              const int64_t *bytes, const int64_t *offset, int n, int64_t *extent) {
  if (!bytes || !offset)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: %s_bytes and %s_offset must be arrays of %d entries, found NULL",
                    op, side, side, n);
  *extent = 0;
  for (int q = 0; q < n; q++) {
    if (bytes[q] < 0 || offset[q] < 0)
      return osp_fail(OSP_ERR_ARGUMENT, "%s: %s_bytes[%d] = %lld, %s_offset[%d] = %lld: neither may be negative",
                      op, side, q, (long long)bytes[q], side, q, (long long)offset[q]);
    if (offset[q] > INT64_MAX - bytes[q])
      return osp_fail(OSP_ERR_ARGUMENT, "%s: %s_offset[%d] + %s_bytes[%d] overflows 64 bits", op, side, q,
                      side, q);
    if (bytes[q] > 0 && offset[q] + bytes[q] > *extent) *extent = offset[q] + bytes[q];
  }
  if (*extent > 0 && !buffer)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: %s buffer is NULL but %lld bytes are due there", op, side,
                    (long long)*extent);
  return OSP_OK;
}

/* The bytes a collective reads and the bytes it writes share no address. */
static osp_status check_apart(const char *op, const void *send, int64_t send_extent, const void *recv,
                              int64_t recv_extent) {
  if (send_extent == 0 || recv_extent == 0) return OSP_OK;
  const uintptr_t s = (uintptr_t)send, r = (uintptr_t)recv;
  if (s < r + (uint64_t)recv_extent && r < s + (uint64_t)send_extent)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: the send buffer (%lld bytes) and the recv buffer (%lld bytes) overlap",
                    op, (long long)send_extent, (long long)recv_extent);
  return OSP_OK;
}

/* ---- Counting ------------------------------------------------------------------------------- */

/* Starts a counted call. With timing on, first waits for the device's queued work, uncounted. */
static osp_status start(const osp_comm *comm, double *started) {
  if (comm->timing) OSP_TRY(osp_device_synchronize(comm->device));
  *started = osp_seconds();
  return OSP_OK;
}

/* Ends a counted call that returned `status`; with timing on, waits for the device to finish it. */
static osp_status finish(osp_comm *comm, osp_collective which, osp_status status, double started,
                         int64_t bytes_sent) {
  if (status == OSP_OK && comm->timing) status = osp_device_synchronize(comm->device);
  if (status != OSP_OK) return status;
  osp_comm_counter *counter = &comm->counters[which];
  counter->calls++;
  counter->bytes_sent += bytes_sent;
  counter->seconds += osp_seconds() - started;
  return OSP_OK;
}

/* ---- Collectives ---------------------------------------------------------------------------- */

osp_status osp_comm_all_to_all(osp_comm *comm, const void *send, const int64_t *send_bytes,
                               const int64_t *send_offset, void *recv, const int64_t *recv_bytes,
                               const int64_t *recv_offset) {
  static const char op[] = "osp_comm_all_to_all";
  OSP_TRY(check_comm(op, comm));
  int64_t send_extent = 0, recv_extent = 0;
  OSP_TRY(check_parts(op, "send", send, send_bytes, send_offset, comm->size, &send_extent));
  OSP_TRY(check_parts(op, "recv", recv, recv_bytes, recv_offset, comm->size, &recv_extent));
  OSP_TRY(check_apart(op, send, send_extent, recv, recv_extent));
  const int me = comm->rank;
  if (send_bytes[me] != recv_bytes[me])
    return osp_fail(OSP_ERR_ARGUMENT, "%s: rank %d sends itself %lld bytes (send_bytes[%d]) but expects %lld (recv_bytes[%d])",
                    op, me, (long long)send_bytes[me], me, (long long)recv_bytes[me], me);
  int64_t to_others = 0;
  for (int q = 0; q < comm->size; q++)
    if (q != me) to_others += send_bytes[q];
  double started;
  OSP_TRY(start(comm, &started));
  const osp_status status =
      comm->vtable->all_to_all(comm, send, send_bytes, send_offset, recv, recv_bytes, recv_offset);
  return finish(comm, OSP_COLLECTIVE_ALL_TO_ALL, status, started, to_others);
}

osp_status osp_comm_all_gather(osp_comm *comm, const void *send, int64_t bytes, void *recv,
                               const int64_t *recv_bytes, const int64_t *recv_offset) {
  static const char op[] = "osp_comm_all_gather";
  OSP_TRY(check_comm(op, comm));
  if (bytes < 0) return osp_fail(OSP_ERR_ARGUMENT, "%s: bytes = %lld must not be negative", op, (long long)bytes);
  if (bytes > 0 && !send)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: send buffer is NULL but %lld bytes are due there", op, (long long)bytes);
  int64_t recv_extent = 0;
  OSP_TRY(check_parts(op, "recv", recv, recv_bytes, recv_offset, comm->size, &recv_extent));
  OSP_TRY(check_apart(op, send, bytes, recv, recv_extent));
  const int me = comm->rank;
  if (recv_bytes[me] != bytes)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: rank %d contributes %lld bytes but recv_bytes[%d] = %lld", op, me,
                    (long long)bytes, me, (long long)recv_bytes[me]);
  double started;
  OSP_TRY(start(comm, &started));
  const osp_status status = comm->vtable->all_gather(comm, send, bytes, recv, recv_bytes, recv_offset);
  return finish(comm, OSP_COLLECTIVE_ALL_GATHER, status, started, bytes * (comm->size - 1));
}

osp_status osp_comm_all_reduce_sum(osp_comm *comm, void *data, osp_dtype dtype, int64_t count) {
  static const char op[] = "osp_comm_all_reduce_sum";
  OSP_TRY(check_comm(op, comm));
  if (dtype != OSP_F32)
    return osp_fail(OSP_ERR_UNSUPPORTED, "%s: dtype %s: only f32 sums are implemented", op,
                    osp_dtype_name(dtype));
  if (count < 0) return osp_fail(OSP_ERR_ARGUMENT, "%s: count = %lld must not be negative", op, (long long)count);
  if (count > 0 && !data)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: data is NULL but count = %lld", op, (long long)count);
  double started;
  OSP_TRY(start(comm, &started));
  int64_t bytes_sent = 0; /* count is the same on every rank: all skip an empty sum alike */
  const osp_status status = count == 0 ? OSP_OK : comm->vtable->all_reduce_sum(comm, data, count, &bytes_sent);
  return finish(comm, OSP_COLLECTIVE_ALL_REDUCE, status, started, bytes_sent);
}

osp_status osp_comm_broadcast(osp_comm *comm, void *data, int64_t bytes, int root) {
  static const char op[] = "osp_comm_broadcast";
  OSP_TRY(check_comm(op, comm));
  if (bytes < 0) return osp_fail(OSP_ERR_ARGUMENT, "%s: bytes = %lld must not be negative", op, (long long)bytes);
  if (root < 0 || root >= comm->size)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: root %d is not a rank of this communicator (0 to %d)", op, root,
                    comm->size - 1);
  if (bytes > 0 && !data)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: data is NULL but bytes = %lld", op, (long long)bytes);
  double started;
  OSP_TRY(start(comm, &started));
  const osp_status status = bytes == 0 ? OSP_OK : comm->vtable->broadcast(comm, data, bytes, root);
  /* Counted as the root handing every other rank its copy, (size − 1)·bytes: the least that
   * travels in all. MPI's trees and NCCL's rings relay it through other ranks instead. */
  const int64_t bytes_sent = comm->rank == root ? bytes * (comm->size - 1) : 0;
  return finish(comm, OSP_COLLECTIVE_BROADCAST, status, started, bytes_sent);
}

osp_status osp_comm_barrier(osp_comm *comm) {
  OSP_TRY(check_comm("osp_comm_barrier", comm));
  return comm->vtable->barrier(comm);
}

osp_status osp_comm_gpu_check(const osp_comm *host_comm, osp_comm **out) {
  if (!out) return osp_fail(OSP_ERR_ARGUMENT, "osp_comm_gpu: out is NULL");
  *out = NULL;
  OSP_TRY(check_comm("osp_comm_gpu", host_comm));
  if (host_comm->device != OSP_CPU)
    return osp_fail(OSP_ERR_ARGUMENT, "osp_comm_gpu: host_comm must keep its buffers in host memory "
                    "(a single or MPI communicator), not on the GPU");
  return OSP_OK;
}

osp_status osp_comm_split(osp_comm *comm, int color, int key, osp_comm **out) {
  static const char op[] = "osp_comm_split";
  OSP_TRY(check_comm(op, comm));
  if (!out) return osp_fail(OSP_ERR_ARGUMENT, "%s: out is NULL", op);
  *out = NULL;
  if (color < 0) return osp_fail(OSP_ERR_ARGUMENT, "%s: color %d must not be negative", op, color);
  return comm->vtable->split(comm, color, key, out);
}
