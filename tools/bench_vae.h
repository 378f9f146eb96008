/* osp bench --vae: the Wan2.1 VAE's decode on a device, random weights and latents. */
#ifndef OSP_TOOLS_BENCH_VAE_H
#define OSP_TOOLS_BENCH_VAE_H

#include <jansson.h>

#include <stdint.h>

#include "core/tensor.h"

/* Decodes random latents [1, 16, F, H, W] (`latent`, named `name`, e.g. "720p") with a random
 * Wan2.1 VAE on `device`: one warm-up decode of the first two latent frames, then the whole
 * video, timed. Prints seconds, video frames per second and the peak device memory; appends them
 * to `results`. */
osp_status bench_vae(osp_device device, const char *name, const int64_t latent[3], json_t *results);

#endif
