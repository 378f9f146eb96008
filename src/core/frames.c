/* Frames in memory (frames.h). */
#include "core/frames.h"

#include <stdlib.h>

#include "core/status.h"

osp_status osp_frames_alloc(int64_t frames, int64_t height, int64_t width, osp_frames *out) {
  *out = (osp_frames){0};
  if (frames < 1 || height < 1 || width < 1)
    return osp_fail(OSP_ERR_SHAPE, "video: %lld frames of %lld x %lld pixels: every size must be at least 1",
                    (long long)frames, (long long)width, (long long)height);
  const int64_t limit = INT64_C(1) << 40; /* 1 TiB: far beyond any video this engine makes */
  if (frames > limit / height / width / 3)
    return osp_fail(OSP_ERR_SHAPE, "video: %lld frames of %lld x %lld pixels is too large",
                    (long long)frames, (long long)width, (long long)height);
  uint8_t *rgb = calloc((size_t)(frames * height * width * 3), 1);
  if (!rgb)
    return osp_fail(OSP_ERR_MEMORY, "video: cannot allocate %lld frames of %lld x %lld pixels",
                    (long long)frames, (long long)width, (long long)height);
  *out = (osp_frames){.frames = frames, .height = height, .width = width, .rgb = rgb};
  return OSP_OK;
}

void osp_frames_free(osp_frames *v) {
  free(v->rgb);
  *v = (osp_frames){0};
}
