#include "core/status.h"
#include "cpu/cpu.h"
#include "ops/check.h"
#include "ops/grad.h"

/* A video gradient and the gradient of its patch tokens, apart, on a device with the kernels. On
 * CUDA each side has its own dtype, as in the forwards: pure movement (the DiT's velocity gradient
 * is f32, its tokens' bf16). */
static osp_status check_video_gradients(ops_call *call, const char *video_name,
                                        const osp_tensor *video, const char *tokens_name,
                                        const osp_tensor *tokens, const int patch[3]) {
  OSP_TRY(ops_check_video(call, video_name, video, patch));
  const osp_cpu_video described = ops_cpu_video(video, patch);
  OSP_TRY(ops_check_patch_tokens(call, tokens_name, tokens, &described));
  OSP_TRY(ops_check_disjoint(call, video_name, video, tokens_name, tokens));
  return ops_check_backend(call);
}

osp_status osp_patchify_backward(const osp_tensor *dpatches, const int patch[3],
                                 osp_tensor *dlatents) {
  ops_call call = OPS_CALL("osp_patchify_backward");
  OSP_TRY(check_video_gradients(&call, "dlatents", dlatents, "dpatches", dpatches, patch));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_patchify_backward(dpatches->data, dpatches->dtype,
                                      ops_cuda_video(dlatents, patch), dlatents->data,
                                      dlatents->dtype);
#endif
  osp_cpu_patchify_backward(dpatches->data, ops_cpu_video(dlatents, patch), dlatents->data);
  return OSP_OK;
}

osp_status osp_unpatchify_backward(const osp_tensor *dout, const int patch[3],
                                   osp_tensor *dtokens) {
  ops_call call = OPS_CALL("osp_unpatchify_backward");
  OSP_TRY(check_video_gradients(&call, "dout", dout, "dtokens", dtokens, patch));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_unpatchify_backward(dout->data, dout->dtype, ops_cuda_video(dout, patch),
                                        dtokens->data, dtokens->dtype);
#endif
  osp_cpu_unpatchify_backward(dout->data, ops_cpu_video(dout, patch), dtokens->data);
  return OSP_OK;
}
