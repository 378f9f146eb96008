/* One rank on its own: all-to-all and all-gather copy this rank's share to where it lands (on the
 * communicator's device), the rest has nothing to do. */
#include "core/status.h"
#include "ops/ops.h"
#include "parallel/comm_internal.h"

/* One part to another on `device`, as U8 tensors so that osp_copy moves the bytes as they are. */
static osp_status copy_part(osp_device device, osp_comm_part src, osp_comm_part dst) {
  if (src.bytes == 0) return OSP_OK; /* a tensor has no empty dimension */
  const osp_tensor from = osp_tensor_make((void *)src.at, OSP_U8, device, 1, &src.bytes);
  osp_tensor to = osp_tensor_make((void *)dst.at, OSP_U8, device, 1, &dst.bytes);
  return osp_copy(&from, &to);
}

static osp_status single_all_to_all(osp_comm *comm, const void *send, const int64_t *send_bytes,
                                    const int64_t *send_offset, void *recv, const int64_t *recv_bytes,
                                    const int64_t *recv_offset) {
  return copy_part(comm->device, osp_comm_part_at(send, send_offset[0], send_bytes[0]),
                   osp_comm_part_at(recv, recv_offset[0], recv_bytes[0]));
}

static osp_status single_all_gather(osp_comm *comm, const void *send, int64_t bytes, void *recv,
                                    const int64_t *recv_bytes, const int64_t *recv_offset) {
  return copy_part(comm->device, osp_comm_part_at(send, 0, bytes),
                   osp_comm_part_at(recv, recv_offset[0], recv_bytes[0]));
}

static osp_status single_all_reduce_sum(osp_comm *comm, float *data, int64_t count, int64_t *bytes_sent) {
  *bytes_sent = 0;
  return OSP_OK;
}

static osp_status single_broadcast(osp_comm *comm, void *data, int64_t bytes, int root) { return OSP_OK; }

static osp_status single_barrier(osp_comm *comm) { return OSP_OK; }

static osp_status single_split(osp_comm *comm, int color, int key, osp_comm **out) {
  return osp_comm_single(comm->device, out);
}

static const osp_comm_vtable single_vtable = {
    .all_to_all = single_all_to_all,
    .all_gather = single_all_gather,
    .all_reduce_sum = single_all_reduce_sum,
    .broadcast = single_broadcast,
    .barrier = single_barrier,
    .split = single_split,
};

osp_status osp_comm_single(osp_device device, osp_comm **out) {
  return osp_comm_create(&single_vtable, NULL, OSP_COMM_SINGLE, 0, 1, device, out);
}
