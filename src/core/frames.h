/* A video in memory: `frames` pictures of height × width pixels, RGB with 8 bits per channel,
 * stored frame after frame, row after row (rgb[((f·height + y)·width + x)·3 + c]). The pipeline
 * turns the decoder's output into frames; the video writers, the readers and ShapesBench take them. */
#ifndef OSP_CORE_FRAMES_H
#define OSP_CORE_FRAMES_H

#include <stdint.h>

#include "osp.h"

typedef struct {
  int64_t frames, height, width;
  uint8_t *rgb; /* frames·height·width·3 bytes, owned */
} osp_frames;

/* Allocates zeroed frames; every size must be ≥ 1 (and the total fit in memory). */
osp_status osp_frames_alloc(int64_t frames, int64_t height, int64_t width, osp_frames *out);

/* The pixel (x, y) of frame f: three bytes, R G B. */
static inline uint8_t *osp_frames_pixel(const osp_frames *v, int64_t f, int64_t y, int64_t x) {
  return v->rgb + ((f * v->height + y) * v->width + x) * 3;
}

/* Frees the pixels and zeroes *v; a zeroed osp_frames is fine. */
void osp_frames_free(osp_frames *v);

#endif
