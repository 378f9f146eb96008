#include "core/status.h"
#include "cpu/cpu.h"
#include "ops/check.h"
#include "ops/ops.h"

osp_status osp_patchify(const osp_tensor *latents, const int patch[3], osp_tensor *patches) {
  ops_call call = OPS_CALL("osp_patchify");
  OSP_TRY(ops_check_video(&call, "latents", latents, patch));
  const osp_cpu_video video = ops_cpu_video(latents, patch);
  OSP_TRY(ops_check_patch_tokens(&call, "patches", patches, &video));
  OSP_TRY(ops_check_disjoint(&call, "patches", patches, "latents", latents));

  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_patchify(latents->data, latents->dtype, ops_cuda_video(latents, patch),
                             patches->data, patches->dtype);
#endif
  osp_cpu_patchify(latents->data, video, patches->data);
  return OSP_OK;
}

osp_status osp_unpatchify(const osp_tensor *tokens, const int patch[3], osp_tensor *out) {
  ops_call call = OPS_CALL("osp_unpatchify");
  OSP_TRY(ops_check_video(&call, "out", out, patch));
  const osp_cpu_video video = ops_cpu_video(out, patch);
  OSP_TRY(ops_check_patch_tokens(&call, "tokens", tokens, &video));
  OSP_TRY(ops_check_disjoint(&call, "out", out, "tokens", tokens));

  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_unpatchify(tokens->data, tokens->dtype, ops_cuda_video(out, patch), out->data,
                               out->dtype);
#endif
  osp_cpu_unpatchify(tokens->data, video, out->data);
  return OSP_OK;
}

osp_status osp_timestep_embedding(const osp_tensor *t, osp_tensor *out) {
  ops_call call = OPS_CALL("osp_timestep_embedding");
  OSP_TRY(ops_check_operand(&call, "t", t, OSP_F32, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_float(&call, "out", out, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_shape(&call, "t", t, 1, (const int64_t[]){-1}));
  OSP_TRY(ops_check_shape(&call, "out", out, 2, (const int64_t[]){t->shape[0], -1}));
  if (out->shape[1] % 2)
    return osp_fail(OSP_ERR_SHAPE, "%s: out: expected an even width, found %lld", call.op,
                    (long long)out->shape[1]);
  OSP_TRY(ops_check_disjoint(&call, "out", out, "t", t));

  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_timestep_embedding(t->data, out->data, out->dtype, out->shape[0], out->shape[1]);
#endif
  osp_cpu_timestep_embedding(t->data, out->data, out->shape[0], out->shape[1]);
  return OSP_OK;
}
