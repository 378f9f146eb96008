#include <stdbool.h>

#include "cpu/cpu.h"

/* osp_patchify and osp_unpatchify move each element of a video to one element of its patch tokens
 * [B, N, features], so each backward moves the gradient back along the same map, adding it on.
 * They differ in the order of a token's features:
 *   osp_patchify   ((c·pt + kt)·ph + kh)·pw + kw   (Conv3d weight order)
 *   osp_unpatchify ((kt·ph + kh)·pw + kw)·C + c */
typedef enum { CHANNEL_OUTERMOST, CHANNEL_INNERMOST } feature_order;

/* Where element (b, c, f, h, w) of the video sits in the tokens: token n = (f'·H' + h')·W' + w' of
 * the patch grid, at offset (kt, kh, kw) inside its patch. */
static int64_t token_element(const osp_cpu_video *v, feature_order order, int64_t b, int64_t c,
                             int64_t f, int64_t h, int64_t w) {
  const int64_t *p = v->patch;
  const int64_t grid_f = v->frames / p[0], grid_h = v->height / p[1], grid_w = v->width / p[2];
  const int64_t n = (f / p[0] * grid_h + h / p[1]) * grid_w + w / p[2];
  const int64_t kt = f % p[0], kh = h % p[1], kw = w % p[2];
  const int64_t features = v->channels * p[0] * p[1] * p[2];
  const int64_t feature = order == CHANNEL_OUTERMOST
                              ? ((c * p[0] + kt) * p[1] + kh) * p[2] + kw
                              : ((kt * p[1] + kh) * p[2] + kw) * v->channels + c;
  return (b * grid_f * grid_h * grid_w + n) * features + feature;
}

/* For every element e of the video, the gradient moves from one side of the map to the other:
 * video[e] += tokens[token element of e] (into_video) or tokens[token element of e] += video[e].
 * Parallel over rows (b, c, f, h) of the video; the map is one to one, so no element of `to` has
 * two writers. */
static void accumulate_along_patches(const osp_cpu_video *v, feature_order order, const float *from,
                                     float *to, bool into_video) {
  const int64_t rows = v->batch * v->channels * v->frames * v->height;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < rows; row++) {
    const int64_t h = row % v->height, f = row / v->height % v->frames;
    const int64_t c = row / (v->height * v->frames) % v->channels;
    const int64_t b = row / (v->height * v->frames * v->channels);
    for (int64_t w = 0; w < v->width; w++) {
      const int64_t in_video = row * v->width + w;
      const int64_t in_tokens = token_element(v, order, b, c, f, h, w);
      if (into_video)
        to[in_video] += from[in_tokens];
      else
        to[in_tokens] += from[in_video];
    }
  }
}

void osp_cpu_patchify_backward(const float *dpatches, osp_cpu_video v, float *dlatents) {
  accumulate_along_patches(&v, CHANNEL_OUTERMOST, dpatches, dlatents, true);
}

void osp_cpu_unpatchify_backward(const float *dout, osp_cpu_video v, float *dtokens) {
  accumulate_along_patches(&v, CHANNEL_INNERMOST, dout, dtokens, false);
}
