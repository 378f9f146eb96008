/* What the VAE's files share beyond vae.h. */
#ifndef OSP_MODEL_VAE_INTERNAL_H
#define OSP_MODEL_VAE_INTERNAL_H

#include "model/vae.h"

/* osp_vae_decode without the final clamp: the tiles of a tiled decode are blended first. */
osp_status vae_decode_unclamped(const osp_vae *vae, const osp_tensor *latents, osp_tensor *video,
                                osp_vae_progress *progress);

#endif
