/* Video files in a build without FFmpeg (cmake -DOSP_VIDEO=OFF, e.g. for a GPU machine that lacks
 * FFmpeg's libraries): the formats are still named and guessed (format.c) and the safetensors
 * format works (tensor_file.c), but writing and reading the others say that this build cannot.
 * CMake compiles this file instead of encode.c, picture.c, read.c and write.c. */
#include "core/status.h"
#include "video/video_internal.h"

osp_status osp_video_write(const char *path, osp_video_format format, double fps, const osp_frames *video) {
  (void)fps;
  if (format == OSP_VIDEO_SAFETENSORS) return video_write_tensor(path, video);
  return osp_fail(OSP_ERR_UNSUPPORTED,
                  "%s: this osp was built without FFmpeg (-DOSP_VIDEO=OFF) and writes only .safetensors frames; "
                  "rebuild with FFmpeg's libraries (scripts/setup.sh) for mp4, gif and png", path);
}

osp_status osp_video_read(const char *path, osp_frames *out, double *fps) {
  osp_video_format format;
  OSP_TRY(osp_video_format_guess(path, &format));
  if (format == OSP_VIDEO_SAFETENSORS) return video_read_tensor(path, out, fps);
  return osp_fail(OSP_ERR_UNSUPPORTED,
                  "%s: this osp was built without FFmpeg (-DOSP_VIDEO=OFF) and reads only .safetensors frames; "
                  "rebuild with FFmpeg's libraries (scripts/setup.sh) for mp4, gif and png", path);
}
