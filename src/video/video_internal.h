/* What the files of src/video share (video.h is the module's interface). */
#ifndef OSP_VIDEO_INTERNAL_H
#define OSP_VIDEO_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "video/video.h"

/* PNG folders: the frames are frame_0000.png, frame_0001.png, ... */
#define VIDEO_PNG_FRAME_NAME "frame_%04d.png"

/* pattern = "<folder>/frame_%04d.png" for FFmpeg's image2 muxer and demuxer, with every '%' of
 * the folder doubled so that FFmpeg reads it literally. */
osp_status video_png_pattern(const char *folder, char *pattern, size_t size);

/* The name is one of a PNG folder's frames (frame_ and 4 or more digits, then .png). */
bool video_is_png_frame_name(const char *name);

/* Encodes the video to `target` (the file, or for PNG the folder, which must exist); messages
 * name `shown` (the path the caller asked for) rather than the temporary target. */
osp_status video_encode(const char *target, const char *shown, osp_video_format format, double fps,
                        const osp_frames *video);

/* The safetensors format (tensor_file.c, built with or without FFmpeg): one tensor, "frames",
 * U8 [frames, height, width, 3], written through a temporary file and a rename. */
#define VIDEO_TENSOR_NAME "frames"
osp_status video_write_tensor(const char *path, const osp_frames *video);
osp_status video_read_tensor(const char *path, osp_frames *out, double *fps);

struct AVFrame; /* FFmpeg's (libavutil/frame.h): format.c builds without FFmpeg's headers */

/* Encoder input pictures made from frame f of a video (picture.c). The picture's own width and
 * height may exceed the video's by one (MP4's even size): the last column and row then repeat. */
void video_fill_rgb24(struct AVFrame *picture, const osp_frames *video, int64_t f);
void video_fill_web_palette(struct AVFrame *picture, const osp_frames *video, int64_t f);

#endif
