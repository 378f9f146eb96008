/* osp_video_write: checks the request, encodes into "<dir>/.<name>.partial" and renames it into
 * place; on any error the partial output is removed. */
#include <dirent.h>
#include <errno.h>
#include <libavutil/log.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/files.h"
#include "core/status.h"
#include "video/video_internal.h"

enum { PATH_BYTES = 4352, MAX_SIDE = 16384 };
static const double MIN_FPS = 0.001, MAX_FPS = 1000; /* the rate becomes a fraction n/d, n, d ≤ 65536 (av_d2q) */

static osp_status check_request(const char *path, osp_video_format format, double fps, const osp_frames *video) {
  if (!path || !path[0]) return osp_fail(OSP_ERR_ARGUMENT, "video path: empty");
  if ((int)format < OSP_VIDEO_MP4 || (int)format > OSP_VIDEO_SAFETENSORS)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: video format: expected mp4, gif, png or safetensors, found %d", path,
                    (int)format);
  if (!(fps >= MIN_FPS && fps <= MAX_FPS))
    return osp_fail(OSP_ERR_ARGUMENT, "%s: fps: expected a rate in [%g, %g], found %g", path, MIN_FPS, MAX_FPS, fps);
  if (!video || !video->rgb || video->frames < 1 || video->height < 1 || video->width < 1)
    return osp_fail(OSP_ERR_SHAPE, "%s: expected a video of at least 1 frame of 1 x 1 pixels, found %lld frames of "
                    "%lld x %lld", path, video ? (long long)video->frames : 0LL, video ? (long long)video->width : 0LL,
                    video ? (long long)video->height : 0LL);
  if (video->width > MAX_SIDE || video->height > MAX_SIDE)
    return osp_fail(OSP_ERR_SHAPE, "%s: expected at most %d x %d pixels, found %lld x %lld", path, MAX_SIDE, MAX_SIDE,
                    (long long)video->width, (long long)video->height);
  return OSP_OK;
}

/* target = the path without trailing slashes ("frames/" → "frames"); partial and aside = its
 * siblings "<dir>/.<name>.partial" and "<dir>/.<name>.old". */
static osp_status name_outputs(const char *path, char *target, char *partial, char *aside) {
  size_t n = strlen(path);
  while (n > 1 && path[n - 1] == '/') n--;
  if (n >= PATH_BYTES) return osp_fail(OSP_ERR_ARGUMENT, "%s: path too long", path);
  memcpy(target, path, n);
  target[n] = '\0';
  const char *slash = strrchr(target, '/');
  const int dir_length = slash ? (int)(slash - target + 1) : 0;
  const char *name = target + dir_length;
  if (!name[0] || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: expected a file or folder name to write, found none", path);
  if (snprintf(partial, PATH_BYTES, "%.*s.%s.partial", dir_length, target, name) >= PATH_BYTES ||
      snprintf(aside, PATH_BYTES, "%.*s.%s.old", dir_length, target, name) >= PATH_BYTES)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: path too long", path);
  return OSP_OK;
}

/* What is at the path may be replaced: nothing, a file for MP4 and GIF, a folder holding only
 * frame_*.png files for PNG. Checked before encoding, so that a refusal costs nothing. */
static osp_status check_replaceable(const char *target, osp_video_format format) {
  struct stat st;
  if (stat(target, &st) != 0) return OSP_OK;
  if (format != OSP_VIDEO_PNG)
    return S_ISDIR(st.st_mode) ? osp_fail(OSP_ERR_IO, "%s: is a folder: expected a file to write the %s video to",
                                          target, osp_video_format_name(format))
                               : OSP_OK;
  if (!S_ISDIR(st.st_mode))
    return osp_fail(OSP_ERR_IO, "%s: exists and is not a folder: expected a folder for the PNG frames", target);
  DIR *dir = opendir(target);
  if (!dir) return osp_fail(OSP_ERR_IO, "%s: cannot read the folder: %s", target, strerror(errno));
  osp_status status = OSP_OK;
  for (struct dirent *e; status == OSP_OK && (e = readdir(dir));)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && !video_is_png_frame_name(e->d_name))
      status = osp_fail(OSP_ERR_IO, "%s: holds '%s', which is not a PNG frame: not replacing this folder", target,
                        e->d_name);
  closedir(dir);
  return status;
}

/* A fresh, empty partial folder for the PNG frames. */
static osp_status make_partial_folder(const char *partial, const char *path) {
  osp_remove_folder(partial); /* left by a crash */
  if (mkdir(partial, 0777) != 0)
    return osp_fail(OSP_ERR_IO, "%s: cannot create the folder %s: %s", path, partial, strerror(errno));
  return OSP_OK;
}

/* Renames the complete partial output to target. An existing folder (PNG) cannot be renamed over:
 * it is first moved aside, put back if the rename fails, and removed once the new one is in place. */
static osp_status put_in_place(const char *partial, const char *target, const char *aside, osp_video_format format) {
  struct stat st;
  const bool replace_folder = format == OSP_VIDEO_PNG && stat(target, &st) == 0;
  if (replace_folder) {
    osp_remove_folder(aside); /* left by a crash */
    if (rename(target, aside) != 0)
      return osp_fail(OSP_ERR_IO, "%s: cannot move the old frames aside to %s: %s", target, aside, strerror(errno));
  }
  if (rename(partial, target) != 0) {
    const int error = errno;
    if (replace_folder) rename(aside, target);
    return osp_fail(OSP_ERR_IO, "%s: cannot rename %s to it: %s", target, partial, strerror(error));
  }
  if (replace_folder) osp_remove_folder(aside);
  return OSP_OK;
}

osp_status osp_video_write(const char *path, osp_video_format format, double fps, const osp_frames *video) {
  av_log_set_level(AV_LOG_QUIET); /* errors come back as messages; FFmpeg prints nothing */
  OSP_TRY(check_request(path, format, fps, video));
  if (format == OSP_VIDEO_SAFETENSORS) return video_write_tensor(path, video);
  char target[PATH_BYTES], partial[PATH_BYTES], aside[PATH_BYTES];
  OSP_TRY(name_outputs(path, target, partial, aside));
  OSP_TRY(check_replaceable(target, format));
  osp_status status = format == OSP_VIDEO_PNG ? make_partial_folder(partial, path) : OSP_OK;
  if (status == OSP_OK) status = video_encode(partial, path, format, fps, video);
  if (status == OSP_OK) status = put_in_place(partial, target, aside, format);
  if (status != OSP_OK && format == OSP_VIDEO_PNG) osp_remove_folder(partial);
  if (status != OSP_OK && format != OSP_VIDEO_PNG) unlink(partial);
  return status;
}
