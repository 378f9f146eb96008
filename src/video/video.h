/* Video files: writing frames (core/frames.h) as MP4, GIF or a folder of PNG frames, and reading
 * any of the three back, through FFmpeg's libraries (libavcodec, libavformat, libavutil,
 * libswscale). Place in the layers: beside src/core, it calls only core and FFmpeg; pipelines,
 * tools and ShapesBench call it.
 *
 *   MP4: H.264 (libx264, crf 18, preset medium), yuv420p, BT.709 limited range (tagged so).
 *        yuv420p needs an even width and height: an odd one is padded by repeating the last
 *        column (row) once, so such a video reads back one pixel wider (taller).
 *   GIF: every pixel rounded to the nearest colour of the 6×6×6 "web" palette, levels
 *        0, 51, ..., 255 (so each channel is off by at most 25); no dithering. GIF counts time in
 *        hundredths of a second: 10, 20, 25, 50 fps are exact, other rates approximated.
 *   PNG: a folder of frame_0000.png, frame_0001.png, ... (RGB24, lossless). PNG carries no rate.
 *        FFmpeg's image2 muxer and demuxer, which write and read them, take frame paths of at most
 *        1023 bytes.
 *   safetensors: one tensor, "frames", U8 [frames, height, width, 3] (RGB): the pixels as they
 *        are, for comparing with another stack in numpy; no FFmpeg needed, so a build without it
 *        (-DOSP_VIDEO=OFF) writes and reads this format alone. It carries no rate.
 *
 * Writes never leave a torn file: the output goes to "<dir>/.<name>.partial" and is renamed into
 * place when complete; on any error the partial output is removed and an existing file at the path
 * is left as it was. An existing PNG folder is replaced only if it holds nothing but frame_*.png
 * files. FFmpeg's own logging is silenced: errors come back as osp_status with a message naming
 * the path and the cause. */
#ifndef OSP_VIDEO_VIDEO_H
#define OSP_VIDEO_VIDEO_H

#include "core/frames.h"
#include "osp.h"

typedef enum { OSP_VIDEO_MP4, OSP_VIDEO_GIF, OSP_VIDEO_PNG, OSP_VIDEO_SAFETENSORS } osp_video_format;

/* "mp4", "gif", "png" or "safetensors" → its format; any other name is an error naming the accepted ones. */
osp_status osp_video_format_parse(const char *name, osp_video_format *format);
const char *osp_video_format_name(osp_video_format format);

/* The format a path asks for, by its extension (case ignored): ".mp4" → MP4, ".gif" → GIF,
 * ".safetensors" → SAFETENSORS, no
 * extension or a trailing "/" → PNG (a folder of frames); any other extension is an error. */
osp_status osp_video_format_guess(const char *path, osp_video_format *format);

/* Writes the video (≥ 1 frame of ≥ 1 × 1 pixels, each side ≤ 16384) at `fps` frames per second
 * (0.001 to 1000) to `path` in `format`, replacing what was there (see above). */
osp_status osp_video_write(const char *path, osp_video_format format, double fps, const osp_frames *video);

/* Reads the video at `path` (format guessed from the path, as osp_video_format_guess) into *out
 * (RGB24; free it with osp_frames_free) and, where fps is not NULL, its rate into *fps (0 for a
 * PNG folder or a safetensors file, which have none). */
osp_status osp_video_read(const char *path, osp_frames *out, double *fps);

#endif
