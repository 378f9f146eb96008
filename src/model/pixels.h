/* Pixel space, the "latent space" of a model without a VAE (the built-in shapes model): a video of
 * RGB frames is the tensor [3, F, H, W] of x = rgb/127.5 − 1 ∈ [−1, 1], and back
 * rgb = (clamp(x, −1, 1) + 1)·127.5 rounded to the nearest integer. */
#ifndef OSP_MODEL_PIXELS_H
#define OSP_MODEL_PIXELS_H

#include "core/frames.h"
#include "core/tensor.h"

/* latents: f32 CPU [3, F, H, W] or [1, 3, F, H, W] of the video's sizes. */
osp_status osp_pixels_to_latents(const osp_frames *video, osp_tensor *latents);

/* *video (allocated here) from latents f32 CPU [1, 3, F, H, W] or [3, F, H, W]. */
osp_status osp_latents_to_pixels(const osp_tensor *latents, osp_frames *video);

#endif
