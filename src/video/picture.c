/* Encoder input pictures made from a frame in memory: RGB24 (PNG, and MP4 before its conversion
 * to yuv420p) and PAL8 with the web palette (GIF). */
#include <libavutil/frame.h>
#include <string.h>

#include "video/video_internal.h"

/* The picture's (x, y) is the video's (min(x, width − 1), min(y, height − 1)): a picture larger
 * than the video repeats its last column and row. */
static const uint8_t *source_pixel(const osp_frames *video, int64_t f, int x, int y) {
  const int64_t sx = x < video->width ? x : video->width - 1, sy = y < video->height ? y : video->height - 1;
  return osp_frames_pixel(video, f, sy, sx);
}

void video_fill_rgb24(AVFrame *picture, const osp_frames *video, int64_t f) {
  for (int y = 0; y < picture->height; y++) {
    uint8_t *row = picture->data[0] + (ptrdiff_t)y * picture->linesize[0];
    const int copied = (int)(video->width < picture->width ? video->width : picture->width);
    memcpy(row, source_pixel(video, f, 0, y), (size_t)copied * 3);
    for (int x = copied; x < picture->width; x++) memcpy(row + 3 * x, source_pixel(video, f, x, y), 3);
  }
}

/* The web palette: index 36·r + 6·g + b holds the colour (51·r, 51·g, 51·b), r, g, b in 0..5; a
 * channel value v maps to the nearest level, round(v / 51) = (v + 25) / 51, at most 25 away. */
static int web_level(uint8_t v) { return (v + 25) / 51; }

void video_fill_web_palette(AVFrame *picture, const osp_frames *video, int64_t f) {
  uint32_t *palette = (uint32_t *)picture->data[1]; /* 256 entries 0xAARRGGBB; the 40 unused: opaque black */
  for (int i = 0; i < 256; i++) palette[i] = 0xFF000000u;
  for (uint32_t r = 0; r < 6; r++)
    for (uint32_t g = 0; g < 6; g++)
      for (uint32_t b = 0; b < 6; b++)
        palette[36 * r + 6 * g + b] = 0xFF000000u | (51 * r) << 16 | (51 * g) << 8 | 51 * b;
  for (int y = 0; y < picture->height; y++) {
    uint8_t *row = picture->data[0] + (ptrdiff_t)y * picture->linesize[0];
    for (int x = 0; x < picture->width; x++) {
      const uint8_t *rgb = source_pixel(video, f, x, y);
      row[x] = (uint8_t)(36 * web_level(rgb[0]) + 6 * web_level(rgb[1]) + web_level(rgb[2]));
    }
  }
}
