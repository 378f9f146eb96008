/* Video formats by name and by a path's extension; the naming of a PNG folder's frames. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/status.h"
#include "video/video_internal.h"

static const char *const FORMAT_NAMES[] = {[OSP_VIDEO_MP4] = "mp4", [OSP_VIDEO_GIF] = "gif",
                                           [OSP_VIDEO_PNG] = "png", [OSP_VIDEO_SAFETENSORS] = "safetensors"};
enum { FORMAT_COUNT = sizeof FORMAT_NAMES / sizeof FORMAT_NAMES[0] };

osp_status osp_video_format_parse(const char *name, osp_video_format *format) {
  for (int k = 0; name && k < FORMAT_COUNT; k++) {
    if (strcmp(name, FORMAT_NAMES[k]) == 0) {
      *format = (osp_video_format)k;
      return OSP_OK;
    }
  }
  return osp_fail(OSP_ERR_ARGUMENT, "video format: expected mp4, gif, png or safetensors, found '%s'",
                  name ? name : "(null)");
}

const char *osp_video_format_name(osp_video_format format) {
  return (int)format >= 0 && (int)format < FORMAT_COUNT ? FORMAT_NAMES[format] : "unknown";
}

osp_status osp_video_format_guess(const char *path, osp_video_format *format) {
  if (!path || !path[0]) return osp_fail(OSP_ERR_ARGUMENT, "video path: empty");
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  const char *dot = strrchr(base, '.');
  if (!dot || dot == base) { /* no extension (a leading dot names a hidden file), or "dir/" */
    *format = OSP_VIDEO_PNG;
    return OSP_OK;
  }
  if (strcasecmp(dot, ".mp4") == 0) *format = OSP_VIDEO_MP4;
  else if (strcasecmp(dot, ".gif") == 0) *format = OSP_VIDEO_GIF;
  else if (strcasecmp(dot, ".safetensors") == 0) *format = OSP_VIDEO_SAFETENSORS;
  else
    return osp_fail(OSP_ERR_ARGUMENT,
                    "%s: unknown video extension '%s': expected .mp4, .gif, .safetensors, or none (a folder of PNG "
                    "frames)", path, dot);
  return OSP_OK;
}

osp_status video_png_pattern(const char *folder, char *pattern, size_t size) {
  size_t n = 0;
  for (const char *c = folder; *c && n + 2 < size; c++) {
    if (*c == '%') pattern[n++] = '%';
    pattern[n++] = *c;
  }
  if (n + 2 >= size || snprintf(pattern + n, size - n, "/%s", VIDEO_PNG_FRAME_NAME) >= (int)(size - n))
    return osp_fail(OSP_ERR_ARGUMENT, "%s: path too long", folder);
  return OSP_OK;
}

bool video_is_png_frame_name(const char *name) {
  if (strncmp(name, "frame_", 6) != 0) return false;
  const char *c = name + 6;
  while (isdigit((unsigned char)*c)) c++;
  return c - (name + 6) >= 4 && strcmp(c, ".png") == 0;
}
