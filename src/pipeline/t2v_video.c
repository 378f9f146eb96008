/* The video side of text to video (t2v_video.h). */
#include "pipeline/t2v_video.h"

#include <stdlib.h>

#include "core/status.h"
#include "model/pixels.h"

enum { MAX_SIDE = 8192, MAX_FRAMES = 4096 };

/* The VAE read on the host (f32), then, for another device, copied there (bf16). */
static osp_status read_vae(const osp_model_dir *files, osp_device device, osp_vae *vae) {
  osp_vae_config wan21;
  osp_vae_config_wan21(&wan21);
  OSP_TRY(files->layout == OSP_LAYOUT_ORIGINAL ? osp_vae_load_file(&wan21, files->vae, vae)
                                               : osp_vae_load(files->vae, vae));
  if (device == OSP_CPU) return OSP_OK;
  osp_vae host = *vae;
  const osp_status status = osp_vae_to_device(&host, device, vae);
  osp_vae_free(&host);
  return status;
}

osp_status osp_t2v_video_load(const osp_model_dir *files, int64_t channels, osp_device device, osp_t2v_video *out) {
  *out = (osp_t2v_video){.kind = files->space, .channels = 3};
  if (files->space == OSP_SPACE_WAN_VAE) {
    OSP_TRY(read_vae(files, device, &out->vae));
    out->channels = out->vae.config.z_dim;
  }
  if (channels != out->channels)
    return osp_fail(OSP_ERR_SHAPE, "%s: the DiT works on %lld channels, but %s has %lld latent channels", files->dir,
                    (long long)channels, files->space == OSP_SPACE_WAN_VAE ? files->vae : "pixel space (RGB)",
                    (long long)out->channels);
  return OSP_OK;
}

/* Frames and pixels per sample element along time and space: 1 and 1 in pixel space; the VAE's
 * 4 and 8, with one more frame at the start (1 + 4(f − 1) frames). */
static void factors(const osp_t2v_video *video, int64_t *temporal, int64_t *spatial) {
  const bool vae = video->kind == OSP_SPACE_WAN_VAE;
  *temporal = vae ? video->vae.decoder.temporal_factor : 1;
  *spatial = vae ? video->vae.decoder.spatial_factor : 1;
}

osp_status osp_t2v_video_sample_shape(const osp_t2v_video *video, int64_t frames, int64_t height, int64_t width,
                                      const int patch[3], int64_t shape[5]) {
  int64_t ft, fs;
  factors(video, &ft, &fs);
  const int64_t unit_h = fs * patch[1], unit_w = fs * patch[2];
  const bool sizes_ok = frames >= 1 && height >= 1 && width >= 1 && frames <= MAX_FRAMES && height <= MAX_SIDE &&
                        width <= MAX_SIDE && (frames - 1) % ft == 0 && height % unit_h == 0 && width % unit_w == 0 &&
                        ((frames - 1) / ft + 1) % patch[0] == 0;
  if (!sizes_ok)
    return osp_fail(OSP_ERR_ARGUMENT,
                    "generate: %lld frames of %lld x %lld pixels: expected %s1 to %d frames and sides of 1 to %d "
                    "pixels, multiples of %lld x %lld (the %smodel's patch)",
                    (long long)frames, (long long)width, (long long)height, ft > 1 ? "1 + 4k " : "", MAX_FRAMES,
                    MAX_SIDE, (long long)unit_w, (long long)unit_h, fs > 1 ? "VAE's 8 times the " : "");
  const int64_t s[5] = {1, video->channels, (frames - 1) / ft + 1, height / fs, width / fs};
  for (int d = 0; d < 5; d++) shape[d] = s[d];
  return OSP_OK;
}

osp_status osp_t2v_video_size_of(const osp_t2v_video *video, const int64_t shape[5], int64_t *frames, int64_t *height,
                                 int64_t *width) {
  if (shape[0] != 1 || shape[1] != video->channels)
    return osp_fail(OSP_ERR_SHAPE, "a sample of %lld x %lld channels: expected 1 x %lld", (long long)shape[0],
                    (long long)shape[1], (long long)video->channels);
  int64_t ft, fs;
  factors(video, &ft, &fs);
  *frames = 1 + (shape[2] - 1) * ft;
  *height = shape[3] * fs;
  *width = shape[4] * fs;
  return OSP_OK;
}

/* The VAE's video [1, 3, F, H, W] in [−1, 1]. */
static osp_status decode_vae(const osp_vae *vae, const osp_tensor *sample, osp_vae_progress *progress,
                             osp_frames *frames) {
  int64_t shape[5];
  OSP_TRY(osp_vae_decoded_shape(vae, sample, shape));
  float *data = malloc((size_t)(shape[0] * shape[1] * shape[2] * shape[3] * shape[4]) * sizeof(float));
  if (!data) return osp_fail(OSP_ERR_MEMORY, "decode: cannot allocate the video");
  osp_tensor video = osp_tensor_make(data, OSP_F32, OSP_CPU, 5, shape);
  osp_status status = osp_vae_decode(vae, sample, &video, progress);
  if (status == OSP_OK) status = osp_latents_to_pixels(&video, frames);
  free(data);
  return status;
}

osp_status osp_t2v_video_decode(const osp_t2v_video *video, const osp_tensor *sample,
                                void (*on_frame)(void *user, int done, int total), void *user, osp_frames *frames) {
  osp_vae_progress progress = {on_frame, user, 0};
  if (video->kind == OSP_SPACE_WAN_VAE) return decode_vae(&video->vae, sample, &progress, frames);
  return osp_latents_to_pixels(sample, frames);
}

void osp_t2v_video_free(osp_t2v_video *video) {
  if (video->kind == OSP_SPACE_WAN_VAE) osp_vae_free(&video->vae);
  *video = (osp_t2v_video){0};
}
