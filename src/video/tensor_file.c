/* Videos as a safetensors file (video_internal.h): the frames as they are, with no FFmpeg, so a
 * build without it still writes what it generates and anyone can read the pixels with numpy. */
#include <string.h>

#include "core/safetensors.h"
#include "core/status.h"
#include "video/video_internal.h"

osp_status video_write_tensor(const char *path, const osp_frames *video) {
  const int64_t shape[4] = {video->frames, video->height, video->width, 3};
  const osp_st_write_entry entry = {VIDEO_TENSOR_NAME, OSP_ST_U8, 4, shape, video->rgb};
  return osp_st_write(path, &entry, 1);
}

osp_status video_read_tensor(const char *path, osp_frames *out, double *fps) {
  osp_st_file file;
  OSP_TRY(osp_st_open(path, &file));
  const osp_st_entry *e;
  osp_status status = osp_st_expect(&file, VIDEO_TENSOR_NAME, 4, (const int64_t[]){-1, -1, -1, 3}, &e);
  if (status == OSP_OK && e->dtype != OSP_ST_U8)
    status = osp_fail(OSP_ERR_FORMAT, "%s: tensor '%s': expected dtype U8, found %s", path, VIDEO_TENSOR_NAME,
                      osp_st_dtype_name(e->dtype));
  if (status == OSP_OK) status = osp_frames_alloc(e->shape[0], e->shape[1], e->shape[2], out);
  if (status == OSP_OK) memcpy(out->rgb, e->data, (size_t)osp_st_numel(e));
  if (fps) *fps = 0; /* the file carries no rate */
  osp_st_close(&file);
  return status;
}
