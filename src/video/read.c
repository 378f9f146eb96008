/* osp_video_read: demuxes and decodes a video file (or a PNG folder, through FFmpeg's image2
 * demuxer) and converts every picture to RGB24. */
#include <errno.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/status.h"
#include "video/video_internal.h"

enum { SOURCE_BYTES = 8448 };

typedef struct {
  const char *path;
  AVFormatContext *demuxer;
  AVCodecContext *decoder;
  int stream;
  AVPacket *packet;
  AVFrame *picture;
  struct SwsContext *to_rgb;
  osp_frames video; /* the frames so far; rgb holds room for `capacity` */
  int64_t capacity;
} reader;

static osp_status ffmpeg_fail(const reader *r, osp_status status, const char *step, int error) {
  return osp_fail(status, "%s: %s: %s", r->path, step, av_err2str(error));
}

static void close_reader(reader *r) {
  sws_freeContext(r->to_rgb);
  av_frame_free(&r->picture);
  av_packet_free(&r->packet);
  avcodec_free_context(&r->decoder);
  avformat_close_input(&r->demuxer);
  free(r->video.rgb);
}

/* What FFmpeg opens: the file itself, or the frame pattern of a PNG folder (which must hold
 * frame_0000.png). */
static osp_status name_source(const char *path, osp_video_format format, char *source) {
  if (format != OSP_VIDEO_PNG) {
    if (snprintf(source, SOURCE_BYTES, "%s", path) >= SOURCE_BYTES)
      return osp_fail(OSP_ERR_ARGUMENT, "%s: path too long", path);
    return OSP_OK;
  }
  char first[SOURCE_BYTES];
  struct stat st;
  if (stat(path, &st) != 0) return osp_fail(OSP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  snprintf(first, sizeof first, "%s/" VIDEO_PNG_FRAME_NAME, path, 0);
  if (!S_ISDIR(st.st_mode) || stat(first, &st) != 0)
    return osp_fail(OSP_ERR_MISSING, "%s: expected a folder of PNG frames " VIDEO_PNG_FRAME_NAME ", " VIDEO_PNG_FRAME_NAME
                    ", ..., found no %s", path, 0, 1, first);
  return video_png_pattern(path, source, SOURCE_BYTES);
}

static osp_status open_source(reader *r, osp_video_format format, const char *source) {
  AVDictionary *options = NULL;
  if (format == OSP_VIDEO_PNG) av_dict_set(&options, "pattern_type", "sequence", 0);
  const AVInputFormat *image2 = format == OSP_VIDEO_PNG ? av_find_input_format("image2") : NULL;
  int error = avformat_open_input(&r->demuxer, source, image2, &options);
  av_dict_free(&options);
  if (error < 0) return ffmpeg_fail(r, error == AVERROR_INVALIDDATA ? OSP_ERR_FORMAT : OSP_ERR_IO, "cannot open", error);
  error = avformat_find_stream_info(r->demuxer, NULL);
  if (error < 0) return ffmpeg_fail(r, OSP_ERR_FORMAT, "cannot read the streams", error);
  const AVCodec *codec = NULL;
  r->stream = av_find_best_stream(r->demuxer, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
  if (r->stream < 0) return ffmpeg_fail(r, OSP_ERR_FORMAT, "no video stream that this FFmpeg can decode", r->stream);
  r->decoder = avcodec_alloc_context3(codec);
  r->packet = av_packet_alloc();
  r->picture = av_frame_alloc();
  if (!r->decoder || !r->packet || !r->picture) return osp_fail(OSP_ERR_MEMORY, "%s: out of memory", r->path);
  error = avcodec_parameters_to_context(r->decoder, r->demuxer->streams[r->stream]->codecpar);
  if (error >= 0) error = avcodec_open2(r->decoder, codec, NULL);
  if (error < 0) return ffmpeg_fail(r, OSP_ERR_UNSUPPORTED, "cannot open the decoder", error);
  return OSP_OK;
}

/* Room for one more frame of the first frame's size (the buffer doubles when full). */
static osp_status make_room(reader *r) {
  osp_frames *v = &r->video;
  if (v->frames < r->capacity) return OSP_OK;
  const int64_t frame_bytes = v->height * v->width * 3, capacity = r->capacity ? 2 * r->capacity : 16;
  uint8_t *rgb = capacity <= (INT64_C(1) << 40) / frame_bytes ? realloc(v->rgb, (size_t)(capacity * frame_bytes)) : NULL;
  if (!rgb)
    return osp_fail(OSP_ERR_MEMORY, "%s: cannot hold %lld frames of %lld x %lld pixels", r->path, (long long)capacity,
                    (long long)v->width, (long long)v->height);
  v->rgb = rgb;
  r->capacity = capacity;
  return OSP_OK;
}

static bool is_yuv(enum AVPixelFormat format) {
  const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(format);
  return d && !(d->flags & (AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL)) && d->nb_components >= 3;
}

/* Converts the decoded picture to RGB24 and appends it to the frames. A YUV picture is read with
 * the matrix and range its stream is tagged with (untagged: BT.601, FFmpeg's default). */
static osp_status append_picture(reader *r) {
  const AVFrame *p = r->picture;
  osp_frames *v = &r->video;
  if (v->frames == 0) {
    v->width = p->width;
    v->height = p->height;
  } else if (p->width != v->width || p->height != v->height) {
    return osp_fail(OSP_ERR_FORMAT, "%s: frame %lld is %d x %d pixels, expected %lld x %lld like the first", r->path,
                    (long long)v->frames, p->width, p->height, (long long)v->width, (long long)v->height);
  }
  OSP_TRY(make_room(r));
  r->to_rgb = sws_getCachedContext(r->to_rgb, p->width, p->height, p->format, p->width, p->height, AV_PIX_FMT_RGB24,
                                   SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, NULL, NULL, NULL);
  if (!r->to_rgb)
    return osp_fail(OSP_ERR_UNSUPPORTED, "%s: cannot convert pixel format %s to RGB24", r->path,
                    av_get_pix_fmt_name(p->format));
  if (is_yuv(p->format))
    sws_setColorspaceDetails(r->to_rgb, sws_getCoefficients(p->colorspace), p->color_range == AVCOL_RANGE_JPEG,
                             sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16);
  uint8_t *rgb[1] = {osp_frames_pixel(v, v->frames, 0, 0)};
  const int stride[1] = {(int)v->width * 3};
  sws_scale(r->to_rgb, (const uint8_t *const *)p->data, p->linesize, 0, p->height, rgb, stride);
  v->frames++;
  return OSP_OK;
}

/* Sends a packet (NULL: the end) to the decoder and appends every picture it has ready. */
static osp_status decode(reader *r, const AVPacket *packet) {
  int error = avcodec_send_packet(r->decoder, packet);
  if (error < 0) return ffmpeg_fail(r, OSP_ERR_FORMAT, "cannot decode", error);
  while ((error = avcodec_receive_frame(r->decoder, r->picture)) == 0) {
    osp_status status = append_picture(r);
    av_frame_unref(r->picture);
    OSP_TRY(status);
  }
  if (error != AVERROR(EAGAIN) && error != AVERROR_EOF) return ffmpeg_fail(r, OSP_ERR_FORMAT, "cannot decode", error);
  return OSP_OK;
}

static osp_status decode_all(reader *r) {
  int error;
  while ((error = av_read_frame(r->demuxer, r->packet)) >= 0) {
    osp_status status = r->packet->stream_index == r->stream ? decode(r, r->packet) : OSP_OK;
    av_packet_unref(r->packet);
    OSP_TRY(status);
  }
  if (error != AVERROR_EOF) return ffmpeg_fail(r, OSP_ERR_FORMAT, "cannot read", error);
  OSP_TRY(decode(r, NULL));
  if (r->video.frames == 0) return osp_fail(OSP_ERR_FORMAT, "%s: holds no frames", r->path);
  return OSP_OK;
}

/* The stream's frame rate: its average, else FFmpeg's guess of the base rate. */
static double stream_fps(const AVStream *stream) {
  AVRational rate = stream->avg_frame_rate;
  if (rate.num <= 0 || rate.den <= 0) rate = stream->r_frame_rate;
  return rate.num > 0 && rate.den > 0 ? av_q2d(rate) : 0.0;
}

osp_status osp_video_read(const char *path, osp_frames *out, double *fps) {
  av_log_set_level(AV_LOG_QUIET); /* errors come back as messages; FFmpeg prints nothing */
  *out = (osp_frames){0};
  if (fps) *fps = 0.0;
  osp_video_format format;
  char source[SOURCE_BYTES];
  OSP_TRY(osp_video_format_guess(path, &format));
  if (format == OSP_VIDEO_SAFETENSORS) return video_read_tensor(path, out, fps);
  OSP_TRY(name_source(path, format, source));
  reader r = {.path = path};
  osp_status status = open_source(&r, format, source);
  if (status == OSP_OK) status = decode_all(&r);
  if (status == OSP_OK) {
    if (fps && format != OSP_VIDEO_PNG) *fps = stream_fps(r.demuxer->streams[r.stream]);
    *out = r.video;
    r.video.rgb = NULL; /* now the caller's */
  }
  close_reader(&r);
  return status;
}
