/* Video files in a build without FFmpeg (cmake -DOSP_VIDEO=OFF, e.g. for a GPU machine that lacks
 * FFmpeg's libraries): the formats are still named and guessed (format.c), but writing and reading
 * say that this build cannot. CMake compiles this file instead of encode.c, picture.c, read.c and
 * write.c. */
#include "core/status.h"
#include "video/video.h"

osp_status osp_video_write(const char *path, osp_video_format format, double fps, const osp_frames *video) {
  return osp_fail(OSP_ERR_UNSUPPORTED, "%s: this osp was built without FFmpeg (-DOSP_VIDEO=OFF) and writes no video "
                  "files; rebuild with FFmpeg's libraries (scripts/setup.sh)", path);
}

osp_status osp_video_read(const char *path, osp_frames *out, double *fps) {
  return osp_fail(OSP_ERR_UNSUPPORTED, "%s: this osp was built without FFmpeg (-DOSP_VIDEO=OFF) and reads no video "
                  "files; rebuild with FFmpeg's libraries (scripts/setup.sh)", path);
}
