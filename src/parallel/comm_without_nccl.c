/* osp_comm_gpu in a build without NCCL (no CUDA backend, or NCCL not found beside it): one GPU
 * rank, which needs no NCCL, and a clear refusal of more. CMake compiles this file instead of
 * comm_nccl.c. */
#include "core/status.h"
#include "ops/ops.h"
#include "parallel/comm_internal.h"

osp_status osp_comm_gpu(osp_comm *host_comm, osp_comm **out) {
  OSP_TRY(osp_comm_gpu_check(host_comm, out));
  if (host_comm->size > 1)
    return osp_fail(OSP_ERR_UNSUPPORTED,
                    "osp_comm_gpu: %d GPU ranks need NCCL, and this osp was built without it (no CUDA "
                    "backend, or no NCCL beside it); rebuild with NCCL (its nccl.h and libnccl under "
                    "the CUDA toolkit or $NCCL_ROOT)", host_comm->size);
  /* A byte of device memory: fails here, with the reason, where the CUDA backend cannot run. */
  osp_arena probe;
  if (osp_device_arena(&probe, "osp_comm_gpu", OSP_CUDA, 1) != OSP_OK)
    return osp_fail_context(OSP_ERR_UNSUPPORTED, "osp_comm_gpu: no GPU for this rank");
  osp_arena_free(&probe);
  return osp_comm_single(OSP_CUDA, out);
}
