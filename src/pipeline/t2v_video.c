/* The video side of text to video (t2v_video.h). */
#include "pipeline/t2v_video.h"

#include "core/status.h"
#include "model/pixels.h"

osp_status osp_t2v_video_load(const osp_model_dir *files, int64_t channels, osp_t2v_video *out) {
  *out = (osp_t2v_video){.kind = files->space, .channels = 3};
  if (files->space == OSP_SPACE_WAN_VAE)
    return osp_fail(OSP_ERR_UNSUPPORTED, "%s: the Wan-VAE: not in this build yet", files->dir);
  if (channels != out->channels)
    return osp_fail(OSP_ERR_SHAPE, "%s: the DiT works on %lld channels, pixel space has 3 (RGB)", files->dir,
                    (long long)channels);
  return OSP_OK;
}

osp_status osp_t2v_video_sample_shape(const osp_t2v_video *video, int64_t frames, int64_t height, int64_t width,
                                      const int patch[3], int64_t shape[5]) {
  const int64_t f = frames, h = height, w = width;
  if (f < 1 || h < 1 || w < 1 || f % patch[0] || h % patch[1] || w % patch[2] || f > 4096 || h > 4096 || w > 4096)
    return osp_fail(OSP_ERR_ARGUMENT,
                    "generate: %lld frames of %lld x %lld pixels: expected 1 to 4096 of each, multiples of the model's "
                    "patch (%d frames, %d x %d pixels)",
                    (long long)frames, (long long)width, (long long)height, patch[0], patch[2], patch[1]);
  const int64_t s[5] = {1, video->channels, f, h, w};
  for (int d = 0; d < 5; d++) shape[d] = s[d];
  return OSP_OK;
}

osp_status osp_t2v_video_size_of(const osp_t2v_video *video, const int64_t shape[5], int64_t *frames, int64_t *height,
                                 int64_t *width) {
  if (shape[0] != 1 || shape[1] != video->channels)
    return osp_fail(OSP_ERR_SHAPE, "a sample of %lld x %lld channels: expected 1 x %lld", (long long)shape[0],
                    (long long)shape[1], (long long)video->channels);
  *frames = shape[2];
  *height = shape[3];
  *width = shape[4];
  return OSP_OK;
}

osp_status osp_t2v_video_decode(const osp_t2v_video *video, const osp_tensor *sample, osp_frames *frames) {
  return osp_latents_to_pixels(sample, frames);
}

size_t osp_t2v_video_bytes(const osp_t2v_video *video) { return 0; }

void osp_t2v_video_free(osp_t2v_video *video) { *video = (osp_t2v_video){0}; }
