/* osp bench --vae (bench_vae.h). bench/torch_vae.py times diffusers' AutoencoderKLWan on the same
 * shapes and counts the FLOPs of its decode. */
#include "bench_vae.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/clock.h"
#include "core/rng.h"
#include "core/status.h"
#include "model/vae.h"
#include "ops/ops.h"

/* Host f32 latents N(0, 1) of `frames` latent frames. */
static osp_status random_latents(const osp_vae *vae, int64_t frames, const int64_t latent[3], osp_tensor *t) {
  const int64_t shape[5] = {1, vae->config.z_dim, frames, latent[1], latent[2]};
  *t = osp_tensor_make(NULL, OSP_F32, OSP_CPU, 5, shape);
  t->data = malloc(osp_tensor_bytes(t));
  if (!t->data) return osp_fail(OSP_ERR_MEMORY, "bench --vae: out of memory for the latents");
  osp_randn(7, 1, 0, t->data, (size_t)osp_tensor_numel(t));
  return OSP_OK;
}

/* Decodes `frames` latent frames into host memory; seconds it took. */
static osp_status decode(const osp_vae *vae, int64_t frames, const int64_t latent[3], double *seconds) {
  osp_tensor latents, video = {0};
  OSP_TRY(random_latents(vae, frames, latent, &latents));
  int64_t shape[5];
  osp_status status = osp_vae_decoded_shape(vae, &latents, shape);
  if (status == OSP_OK) {
    video = osp_tensor_make(NULL, OSP_F32, OSP_CPU, 5, shape);
    video.data = malloc(osp_tensor_bytes(&video));
    if (!video.data) status = osp_fail(OSP_ERR_MEMORY, "bench --vae: out of memory for the video");
  }
  const double start = osp_seconds();
  if (status == OSP_OK) status = osp_vae_decode(vae, &latents, &video, NULL);
  if (status == OSP_OK) status = osp_device_synchronize(vae->device);
  *seconds = osp_seconds() - start;
  free(latents.data);
  free(video.data);
  return status;
}

osp_status bench_vae(osp_device device, const char *name, const int64_t latent[3], json_t *results) {
  osp_vae_config config;
  osp_vae_config_wan21(&config);
  osp_vae vae;
  OSP_TRY(osp_vae_init_random(&config, 1, device, &vae));
  const int64_t frames = 1 + 4 * (latent[0] - 1);
  double warm, seconds = 0;
  osp_status status = decode(&vae, latent[0] < 2 ? latent[0] : 2, latent, &warm);
  if (status == OSP_OK) status = decode(&vae, latent[0], latent, &seconds);
  const double peak = (double)osp_device_peak_bytes(device);
  if (status == OSP_OK) {
    printf("vae       decode %s: %lld frames of %lldx%lld %11.3f ms  %7.1f frames/s  peak device memory %.2f GiB\n",
           name, (long long)frames, (long long)latent[1] * 8, (long long)latent[2] * 8, seconds * 1e3,
           frames / seconds, peak / 1073741824.0);
    json_array_append_new(results, json_pack("{s:s, s:s, s:I, s:I, s:I, s:f, s:f}", "section", "vae", "name", name,
                                             "frames", (json_int_t)frames, "height", (json_int_t)latent[1] * 8,
                                             "width", (json_int_t)latent[2] * 8, "ms", seconds * 1e3,
                                             "peak_bytes", peak));
  }
  osp_vae_free(&vae);
  return status;
}
