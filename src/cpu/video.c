#include <math.h>

#include "cpu/cpu.h"

/* Offset of element [b, c, f, h, w] of the video tensor. */
static int64_t video_offset(const osp_cpu_video *v, int64_t b, int64_t c, int64_t f, int64_t h,
                            int64_t w) {
  return (((b * v->channels + c) * v->frames + f) * v->height + h) * v->width + w;
}

static int64_t video_tokens(const osp_cpu_video *v) {
  return (v->frames / v->patch[0]) * (v->height / v->patch[1]) * (v->width / v->patch[2]);
}

static int64_t patch_features(const osp_cpu_video *v) {
  return v->channels * v->patch[0] * v->patch[1] * v->patch[2];
}

/* First frame, row and column of token n = (f·H' + h)·W' + w, in video coordinates. */
static void patch_origin(const osp_cpu_video *v, int64_t n, int64_t origin[3]) {
  const int64_t grid_h = v->height / v->patch[1], grid_w = v->width / v->patch[2];
  origin[0] = n / (grid_h * grid_w) * v->patch[0];
  origin[1] = n / grid_w % grid_h * v->patch[1];
  origin[2] = n % grid_w * v->patch[2];
}

void osp_cpu_patchify(const float *latents, osp_cpu_video v, float *patches) {
  const int64_t tokens = video_tokens(&v), features = patch_features(&v);
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < v.batch; b++) {
    for (int64_t n = 0; n < tokens; n++) {
      int64_t o[3];
      patch_origin(&v, n, o);
      float *patch = patches + (b * tokens + n) * features;
      for (int64_t c = 0; c < v.channels; c++)
        for (int64_t kt = 0; kt < v.patch[0]; kt++)
          for (int64_t kh = 0; kh < v.patch[1]; kh++)
            for (int64_t kw = 0; kw < v.patch[2]; kw++)
              *patch++ = latents[video_offset(&v, b, c, o[0] + kt, o[1] + kh, o[2] + kw)];
    }
  }
}

void osp_cpu_unpatchify(const float *tokens, osp_cpu_video v, float *out) {
  const int64_t count = video_tokens(&v), features = patch_features(&v);
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < v.batch; b++) {
    for (int64_t n = 0; n < count; n++) {
      int64_t o[3];
      patch_origin(&v, n, o);
      const float *token = tokens + (b * count + n) * features;
      for (int64_t kt = 0; kt < v.patch[0]; kt++)
        for (int64_t kh = 0; kh < v.patch[1]; kh++)
          for (int64_t kw = 0; kw < v.patch[2]; kw++)
            for (int64_t c = 0; c < v.channels; c++)
              out[video_offset(&v, b, c, o[0] + kt, o[1] + kh, o[2] + kw)] = *token++;
    }
  }
}

/* Wan2.1's sinusoid: angle_j = t · 10000^(−j/half) in float64, cos block first, then sin. */
void osp_cpu_timestep_embedding(const float *t, float *out, int64_t B, int64_t D) {
  const int64_t half = D / 2;
  for (int64_t b = 0; b < B; b++) {
    for (int64_t j = 0; j < half; j++) {
      const double angle = (double)t[b] * pow(10000.0, -(double)j / (double)half);
      out[b * D + j] = (float)cos(angle);
      out[b * D + half + j] = (float)sin(angle);
    }
  }
}
