#include "core/status.h"
#include "cpu/cpu.h"
#include "ops/check.h"
#include "ops/ops.h"

/* A video operand [B, C, F, H, W] whose F, H, W are multiples of a positive patch. */
static osp_status check_video(ops_call *call, const char *name, const osp_tensor *video,
                              const int patch[3]) {
  OSP_TRY(ops_check_float(call, name, video, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_shape(call, name, video, 5, (const int64_t[]){-1, -1, -1, -1, -1}));
  if (patch[0] < 1 || patch[1] < 1 || patch[2] < 1)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: patch: expected positive sizes, found %dx%dx%d",
                    call->op, patch[0], patch[1], patch[2]);
  if (video->shape[2] % patch[0] || video->shape[3] % patch[1] || video->shape[4] % patch[2])
    return osp_fail(OSP_ERR_SHAPE,
                    "%s: %s: expected frames x height x width in multiples of the patch %dx%dx%d, "
                    "found %lldx%lldx%lld",
                    call->op, name, patch[0], patch[1], patch[2], (long long)video->shape[2],
                    (long long)video->shape[3], (long long)video->shape[4]);
  return OSP_OK;
}

static osp_cpu_video cpu_video(const osp_tensor *video, const int patch[3]) {
  return (osp_cpu_video){
      .batch = video->shape[0],
      .channels = video->shape[1],
      .frames = video->shape[2],
      .height = video->shape[3],
      .width = video->shape[4],
      .patch = {patch[0], patch[1], patch[2]},
  };
}

#ifdef OSP_HAVE_CUDA
static osp_cuda_video cuda_video(const osp_cpu_video *v) {
  return (osp_cuda_video){
      .batch = v->batch,
      .channels = v->channels,
      .frames = v->frames,
      .height = v->height,
      .width = v->width,
      .patch = {v->patch[0], v->patch[1], v->patch[2]},
  };
}
#endif

/* The patch tokens of a video: [B, N, C·pt·ph·pw]. */
static osp_status check_tokens(ops_call *call, const char *name, const osp_tensor *tokens,
                               const osp_cpu_video *video) {
  const int64_t *p = video->patch;
  const int64_t count = video->frames / p[0] * (video->height / p[1]) * (video->width / p[2]);
  OSP_TRY(ops_check_float(call, name, tokens, OPS_CONTIGUOUS));
  const int64_t features = video->channels * p[0] * p[1] * p[2];
  return ops_check_shape(call, name, tokens, 3, (const int64_t[]){video->batch, count, features});
}

osp_status osp_patchify(const osp_tensor *latents, const int patch[3], osp_tensor *patches) {
  ops_call call = OPS_CALL("osp_patchify");
  OSP_TRY(check_video(&call, "latents", latents, patch));
  const osp_cpu_video video = cpu_video(latents, patch);
  OSP_TRY(check_tokens(&call, "patches", patches, &video));
  OSP_TRY(ops_check_disjoint(&call, "patches", patches, "latents", latents));

  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_patchify(latents->data, latents->dtype, cuda_video(&video), patches->data,
                             patches->dtype);
#endif
  osp_cpu_patchify(latents->data, video, patches->data);
  return OSP_OK;
}

osp_status osp_unpatchify(const osp_tensor *tokens, const int patch[3], osp_tensor *out) {
  ops_call call = OPS_CALL("osp_unpatchify");
  OSP_TRY(check_video(&call, "out", out, patch));
  const osp_cpu_video video = cpu_video(out, patch);
  OSP_TRY(check_tokens(&call, "tokens", tokens, &video));
  OSP_TRY(ops_check_disjoint(&call, "out", out, "tokens", tokens));

  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA)
    return osp_cuda_unpatchify(tokens->data, tokens->dtype, cuda_video(&video), out->data, out->dtype);
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
