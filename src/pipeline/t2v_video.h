/* The video side of a text-to-video model: the space the sampler works in, and the decoder back
 * to frames. Pixel space (model/pixels.h: the sample is the video) for the built-in model; the
 * Wan-VAE's latent space (model/vae.h) for Wan2.1's models: 1 + (F − 1)/4 latent frames of
 * H/8 × W/8 with z channels for a video of F frames of H × W. */
#ifndef OSP_PIPELINE_T2V_VIDEO_H
#define OSP_PIPELINE_T2V_VIDEO_H

#include "core/frames.h"
#include "core/tensor.h"
#include "model/vae.h"
#include "pipeline/model_dir.h"

typedef struct {
  osp_space_kind kind;
  int64_t channels; /* of the sample: 3 for pixels, the VAE's z */
  osp_vae vae;
} osp_t2v_video;

/* Loads the folder's decoder; the DiT works on `channels` (in_channels), which must be the space's.
 * The VAE decodes on `device`. */
osp_status osp_t2v_video_load(const osp_model_dir *files, int64_t channels, osp_device device, osp_t2v_video *out);

/* The sample's shape [1, C, f, h, w] for a video of frames × height × width (each checked: a VAE
 * needs 1 + 4k frames and sizes that are multiples of 8); `patch` the DiT's, which f, h, w must
 * be multiples of. */
osp_status osp_t2v_video_sample_shape(const osp_t2v_video *video, int64_t frames, int64_t height, int64_t width,
                                      const int patch[3], int64_t shape[5]);

/* The video size a sample shape [1, C, f, h, w] stands for (the inverse of the above). */
osp_status osp_t2v_video_size_of(const osp_t2v_video *video, const int64_t shape[5], int64_t *frames, int64_t *height,
                                 int64_t *width);

/* The frames of a final sample (f32 CPU [1, C, f, h, w]); *frames allocated here. on_frame (may
 * be NULL) hears of each decoded latent frame. */
osp_status osp_t2v_video_decode(const osp_t2v_video *video, const osp_tensor *sample,
                                void (*on_frame)(void *user, int done, int total), void *user, osp_frames *frames);

void osp_t2v_video_free(osp_t2v_video *video);

#endif
