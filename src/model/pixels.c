/* Pixel space (pixels.h). */
#include "model/pixels.h"

#include <math.h>

#include "core/status.h"

/* The [3, F, H, W] sizes of a 4- or 5-dimensional latent tensor (batch 1), or an error. */
static osp_status video_sizes(const char *what, const osp_tensor *latents, int64_t sizes[4]) {
  OSP_TRY(osp_check_f32_cpu(what, latents));
  const int skip = latents->ndim - 4;
  if ((skip != 0 && skip != 1) || (skip == 1 && latents->shape[0] != 1) || latents->shape[skip] != 3 ||
      !osp_tensor_is_contiguous(latents)) {
    char shape[160];
    return osp_fail(OSP_ERR_SHAPE, "%s: expected a contiguous [1, 3, F, H, W] or [3, F, H, W] tensor, found %s", what,
                    osp_shape_string(latents, shape, sizeof shape));
  }
  for (int d = 0; d < 4; d++) sizes[d] = latents->shape[skip + d];
  return OSP_OK;
}

osp_status osp_pixels_to_latents(const osp_frames *video, osp_tensor *latents) {
  int64_t s[4];
  OSP_TRY(video_sizes("pixels to latents: latents", latents, s));
  if (s[1] != video->frames || s[2] != video->height || s[3] != video->width)
    return osp_fail(OSP_ERR_SHAPE, "pixels to latents: the latents hold %lld frames of %lld x %lld, the video %lld of %lld x %lld",
                    (long long)s[1], (long long)s[3], (long long)s[2], (long long)video->frames,
                    (long long)video->width, (long long)video->height);
  float *x = latents->data;
  const int64_t plane = s[1] * s[2] * s[3];
  for (int64_t i = 0; i < plane; i++)
    for (int c = 0; c < 3; c++) x[c * plane + i] = (float)video->rgb[i * 3 + c] / 127.5f - 1.0f;
  return OSP_OK;
}

osp_status osp_latents_to_pixels(const osp_tensor *latents, osp_frames *video) {
  int64_t s[4];
  OSP_TRY(video_sizes("latents to pixels: latents", latents, s));
  OSP_TRY(osp_frames_alloc(s[1], s[2], s[3], video));
  const float *x = latents->data;
  const int64_t plane = s[1] * s[2] * s[3];
  for (int64_t i = 0; i < plane; i++)
    for (int c = 0; c < 3; c++) {
      const float value = fminf(fmaxf(x[c * plane + i], -1.0f), 1.0f); /* NaN becomes −1: fmaxf drops it */
      video->rgb[i * 3 + c] = (uint8_t)lrintf((value + 1.0f) * 127.5f);
    }
  return OSP_OK;
}
