/* Tiled spatial decoding (vae.h), as diffusers' AutoencoderKLWan.tiled_decode does it: the latent
 * plane is cut into tiles of tile/8 latents every stride/8 (the edge tiles smaller), each tile is
 * decoded alone over all frames, and the video is assembled in tile order (row i, column j): tile
 * (i, j) first blends its top `tile − stride` rows with the bottom rows of tile (i − 1, j) and then
 * its left columns with the right columns of tile (i, j − 1), each already blended, as
 *   b[y] = a[end − e + y]·(1 − y/e) + b[y]·(y/e),  e = min(a's extent, b's extent, tile − stride),
 * then gives its first stride × stride pixels to the video; finally the video is clamped. Memory
 * for activations is that of one tile instead of the whole frame. */
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "model/vae_internal.h"
#include "ops/conv.h"

typedef struct {
  osp_tensor video; /* [B, 3, F, h, w] of this tile, unclamped, blended in place */
  float *data;
} tile_video;

/* Decodes the latent tile rows [y, y + h) and columns [x, x + w). */
static osp_status decode_tile(const osp_vae *vae, const osp_tensor *latents, int64_t y, int64_t x, int64_t h,
                              int64_t w, tile_video *t) {
  const int64_t *s = latents->shape;
  const int64_t part_shape[5] = {s[0], s[1], s[2], h, w};
  float *part_data = malloc((size_t)(s[0] * s[1] * s[2] * h * w) * sizeof(float));
  if (!part_data) return osp_fail(OSP_ERR_MEMORY, "tiled decode: out of memory");
  osp_tensor part = osp_tensor_make(part_data, OSP_F32, OSP_CPU, 5, part_shape);
  int64_t shape[5];
  osp_status status = osp_copy_region(latents, (int64_t[]){0, 0, 0, y, x}, &part, (int64_t[]){0, 0, 0, 0, 0}, part_shape);
  if (status == OSP_OK) status = osp_vae_decoded_shape(vae, &part, shape);
  if (status == OSP_OK && !(t->data = malloc((size_t)(shape[0] * shape[1] * shape[2] * shape[3] * shape[4]) * sizeof(float))))
    status = osp_fail(OSP_ERR_MEMORY, "tiled decode: out of memory");
  if (status == OSP_OK) {
    t->video = osp_tensor_make(t->data, OSP_F32, OSP_CPU, 5, shape);
    status = vae_decode_unclamped(vae, &part, &t->video, NULL);
  }
  free(part_data);
  return status;
}

/* b's first rows (vertical) or columns blended with a's last ones, in place, in float32 as torch
 * computes a·(1 − y/e) + b·(y/e) with Python-float weights. */
static void blend(const osp_tensor *a, osp_tensor *b, int64_t extent, bool vertical) {
  const int64_t ah = a->shape[3], aw = a->shape[4], bh = b->shape[3], bw = b->shape[4];
  const int64_t planes = b->shape[0] * b->shape[1] * b->shape[2];
  const int64_t e = vertical ? (extent < ah ? (extent < bh ? extent : bh) : (ah < bh ? ah : bh))
                             : (extent < aw ? (extent < bw ? extent : bw) : (aw < bw ? aw : bw));
  const float *pa = a->data;
  float *pb = b->data;
  for (int64_t p = 0; p < planes; p++)
    for (int64_t k = 0; k < e; k++) {
      const float keep = (float)(1.0 - (double)k / (double)e), take = (float)((double)k / (double)e);
      const int64_t lines = vertical ? bw : bh;
      for (int64_t l = 0; l < lines; l++) {
        const int64_t ia = vertical ? (p * ah + ah - e + k) * aw + l : (p * ah + l) * aw + aw - e + k;
        const int64_t ib = vertical ? (p * bh + k) * bw + l : (p * bh + l) * bw + k;
        pb[ib] = pa[ia] * keep + pb[ib] * take;
      }
    }
}

osp_status osp_vae_decode_tiled(const osp_vae *vae, const osp_tensor *latents, int tile, int stride, osp_tensor *video,
                                osp_vae_progress *progress) {
  const int64_t f = vae->decoder.spatial_factor;
  int64_t shape[5];
  OSP_TRY(osp_vae_decoded_shape(vae, latents, shape));
  OSP_TRY(osp_check_shape("video", video, 5, shape));
  if (tile < f || stride < f || stride > tile || tile % f || stride % f)
    return osp_fail(OSP_ERR_ARGUMENT, "tiled decode: tile %d and stride %d pixels: expected multiples of %lld with "
                    "stride <= tile", tile, stride, (long long)f);
  const int64_t H = latents->shape[3], W = latents->shape[4], tl = tile / f, sl = stride / f;
  const int64_t rows = (H + sl - 1) / sl, cols = (W + sl - 1) / sl;
  tile_video *tiles = calloc((size_t)(rows * cols), sizeof *tiles);
  osp_status status = tiles ? OSP_OK : osp_fail(OSP_ERR_MEMORY, "tiled decode: out of memory");
  for (int64_t i = 0; status == OSP_OK && i < rows; i++)
    for (int64_t j = 0; status == OSP_OK && j < cols; j++) {
      const int64_t y = i * sl, x = j * sl, h = H - y < tl ? H - y : tl, w = W - x < tl ? W - x : tl;
      tile_video *t = &tiles[i * cols + j];
      status = decode_tile(vae, latents, y, x, h, w, t);
      if (status == OSP_OK && i > 0) blend(&tiles[(i - 1) * cols + j].video, &t->video, tile - stride, true);
      if (status == OSP_OK && j > 0) blend(&tiles[i * cols + j - 1].video, &t->video, tile - stride, false);
      const int64_t keep_h = t->video.shape[3] < stride ? t->video.shape[3] : stride;
      const int64_t keep_w = t->video.shape[4] < stride ? t->video.shape[4] : stride;
      const int64_t at[5] = {0, 0, 0, i * stride, j * stride};
      const int64_t size[5] = {shape[0], shape[1], shape[2], keep_h, keep_w};
      if (status == OSP_OK) status = osp_copy_region(&t->video, (int64_t[]){0, 0, 0, 0, 0}, video, at, size);
      if (status == OSP_OK && progress && progress->on_frame) progress->on_frame(progress->user, (int)(i * cols + j + 1), (int)(rows * cols));
    }
  for (int64_t k = 0; tiles && k < rows * cols; k++) free(tiles[k].data);
  free(tiles);
  if (status == OSP_OK) status = osp_clamp(video, -1.0f, 1.0f, video);
  return status;
}
