/* Encoding frames through an FFmpeg encoder and muxer: libx264 into MP4, gif into GIF, png into
 * numbered files (the image2 muxer). One recipe per format; the steps are the same for all. */
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>

#include "core/status.h"
#include "video/video_internal.h"

typedef struct {
  const char *muxer, *encoder;     /* FFmpeg's names */
  enum AVPixelFormat pixel_format; /* the encoder's input */
  const char *encoder_options;     /* "key=value:key=value" */
  const char *muxer_options;
  bool even_size;                  /* pad an odd width or height by one */
  bool folder;                     /* the target is a folder the muxer fills with numbered files */
} recipe;

static const recipe RECIPES[] = {
    [OSP_VIDEO_MP4] = {"mp4", "libx264", AV_PIX_FMT_YUV420P, "crf=18:preset=medium", "", true, false},
    [OSP_VIDEO_GIF] = {"gif", "gif", AV_PIX_FMT_PAL8, "", "", false, false},
    [OSP_VIDEO_PNG] = {"image2", "png", AV_PIX_FMT_RGB24, "", "start_number=0", false, true},
};

enum { PATTERN_BYTES = 8448 };

typedef struct {
  const char *shown; /* the caller's path, for messages */
  const recipe *recipe;
  AVFormatContext *muxer;
  AVCodecContext *encoder;
  AVStream *stream;
  AVFrame *picture;          /* the encoder's input */
  AVFrame *rgb;              /* MP4: the RGB24 picture that becomes `picture` in yuv420p */
  struct SwsContext *to_yuv; /* MP4: RGB24 → yuv420p */
  AVPacket *packet;
} session;

/* An error naming the path, the step and FFmpeg's reason. */
static osp_status ffmpeg_fail(const session *s, osp_status status, const char *step, int error) {
  return osp_fail(status, "%s: %s: %s", s->shown, step, av_err2str(error));
}

static void close_session(session *s) {
  sws_freeContext(s->to_yuv);
  av_frame_free(&s->rgb);
  av_frame_free(&s->picture);
  av_packet_free(&s->packet);
  avcodec_free_context(&s->encoder);
  if (s->muxer && !(s->muxer->oformat->flags & AVFMT_NOFILE)) avio_closep(&s->muxer->pb);
  avformat_free_context(s->muxer);
}

static osp_status open_muxer(session *s, const char *target) {
  char pattern[PATTERN_BYTES];
  if (s->recipe->folder) {
    OSP_TRY(video_png_pattern(target, pattern, sizeof pattern));
    target = pattern;
  }
  int error = avformat_alloc_output_context2(&s->muxer, NULL, s->recipe->muxer, target);
  if (error < 0) return ffmpeg_fail(s, OSP_ERR_UNSUPPORTED, "this FFmpeg build has no muxer for it", error);
  return OSP_OK;
}

/* The encoder for `width` × `height` pictures at `fps`, its options applied. */
static osp_status open_encoder(session *s, double fps, int width, int height) {
  const AVCodec *codec = avcodec_find_encoder_by_name(s->recipe->encoder);
  if (!codec)
    return osp_fail(OSP_ERR_UNSUPPORTED, "%s: this FFmpeg build has no '%s' encoder (needed for %s): install an "
                    "FFmpeg built with it (Debian's libavcodec is), or write another format",
                    s->shown, s->recipe->encoder, s->recipe->muxer);
  s->encoder = avcodec_alloc_context3(codec);
  if (!s->encoder) return osp_fail(OSP_ERR_MEMORY, "%s: out of memory", s->shown);
  AVCodecContext *e = s->encoder;
  e->width = width;
  e->height = height;
  e->pix_fmt = s->recipe->pixel_format;
  e->framerate = av_d2q(fps, 1 << 16);
  e->time_base = av_inv_q(e->framerate);
  if (e->pix_fmt == AV_PIX_FMT_YUV420P) { /* what to_yuv makes: BT.709, limited range */
    e->color_range = AVCOL_RANGE_MPEG;
    e->colorspace = AVCOL_SPC_BT709;
    e->color_primaries = AVCOL_PRI_BT709;
    e->color_trc = AVCOL_TRC_BT709;
  }
  if (s->muxer->oformat->flags & AVFMT_GLOBALHEADER) e->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  AVDictionary *options = NULL;
  int error = av_dict_parse_string(&options, s->recipe->encoder_options, "=", ":", 0);
  if (error >= 0) error = avcodec_open2(e, codec, &options);
  av_dict_free(&options);
  if (error < 0) return ffmpeg_fail(s, OSP_ERR_UNSUPPORTED, "cannot open the encoder", error);
  return OSP_OK;
}

/* The stream, the file (unless the muxer writes its own files) and the header. */
static osp_status start_output(session *s, const char *target) {
  s->stream = avformat_new_stream(s->muxer, NULL);
  if (!s->stream) return osp_fail(OSP_ERR_MEMORY, "%s: out of memory", s->shown);
  s->stream->time_base = s->encoder->time_base;
  s->stream->avg_frame_rate = s->encoder->framerate;
  int error = avcodec_parameters_from_context(s->stream->codecpar, s->encoder);
  if (error < 0) return ffmpeg_fail(s, OSP_ERR_MEMORY, "cannot set the stream's parameters", error);
  if (!(s->muxer->oformat->flags & AVFMT_NOFILE)) {
    error = avio_open(&s->muxer->pb, target, AVIO_FLAG_WRITE);
    if (error < 0) return ffmpeg_fail(s, OSP_ERR_IO, "cannot create the file", error);
  }
  AVDictionary *options = NULL;
  error = av_dict_parse_string(&options, s->recipe->muxer_options, "=", ":", 0);
  if (error >= 0) error = avformat_write_header(s->muxer, &options);
  av_dict_free(&options);
  if (error < 0) return ffmpeg_fail(s, OSP_ERR_IO, "cannot write the header", error);
  return OSP_OK;
}

static AVFrame *new_picture(enum AVPixelFormat format, int width, int height) {
  AVFrame *p = av_frame_alloc();
  if (!p) return NULL;
  p->format = format;
  p->width = width;
  p->height = height;
  if (av_frame_get_buffer(p, 0) < 0) av_frame_free(&p);
  return p;
}

/* The encoder's input picture and, for yuv420p, the RGB24 picture and its converter
 * (sRGB full range → BT.709 limited range, matching the tags open_encoder sets). */
static osp_status make_pictures(session *s) {
  const AVCodecContext *e = s->encoder;
  s->picture = new_picture(e->pix_fmt, e->width, e->height);
  s->packet = av_packet_alloc();
  if (!s->picture || !s->packet) return osp_fail(OSP_ERR_MEMORY, "%s: out of memory", s->shown);
  if (e->pix_fmt != AV_PIX_FMT_YUV420P) return OSP_OK;
  s->rgb = new_picture(AV_PIX_FMT_RGB24, e->width, e->height);
  s->to_yuv = sws_getContext(e->width, e->height, AV_PIX_FMT_RGB24, e->width, e->height, e->pix_fmt,
                             SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INP, NULL, NULL, NULL);
  if (!s->rgb || !s->to_yuv) return osp_fail(OSP_ERR_MEMORY, "%s: cannot set up the RGB to yuv420p conversion", s->shown);
  const int *bt709 = sws_getCoefficients(SWS_CS_ITU709);
  sws_setColorspaceDetails(s->to_yuv, bt709, 1, bt709, 0, 0, 1 << 16, 1 << 16);
  return OSP_OK;
}

/* Frame f of the video as the encoder's input picture. */
static osp_status fill_picture(session *s, const osp_frames *video, int64_t f) {
  int error = av_frame_make_writable(s->picture);
  if (error < 0) return ffmpeg_fail(s, OSP_ERR_MEMORY, "cannot get a picture", error);
  if (s->picture->format == AV_PIX_FMT_PAL8) {
    video_fill_web_palette(s->picture, video, f);
  } else if (s->picture->format == AV_PIX_FMT_RGB24) {
    video_fill_rgb24(s->picture, video, f);
  } else {
    video_fill_rgb24(s->rgb, video, f);
    sws_scale(s->to_yuv, (const uint8_t *const *)s->rgb->data, s->rgb->linesize, 0, s->rgb->height,
              s->picture->data, s->picture->linesize);
  }
  s->picture->pts = f;
  return OSP_OK;
}

/* Writes every packet the encoder has ready. */
static osp_status write_packets(session *s) {
  int error;
  while ((error = avcodec_receive_packet(s->encoder, s->packet)) == 0) {
    if (s->packet->duration == 0) s->packet->duration = 1; /* one frame, in the encoder's time base */
    av_packet_rescale_ts(s->packet, s->encoder->time_base, s->stream->time_base);
    s->packet->stream_index = s->stream->index;
    error = av_interleaved_write_frame(s->muxer, s->packet);
    if (error < 0) return ffmpeg_fail(s, OSP_ERR_IO, "cannot write", error);
  }
  if (error != AVERROR(EAGAIN) && error != AVERROR_EOF) return ffmpeg_fail(s, OSP_ERR_UNSUPPORTED, "cannot encode", error);
  return OSP_OK;
}

static osp_status encode_frames(session *s, const osp_frames *video) {
  for (int64_t f = 0; f <= video->frames; f++) { /* f = frames: flush the encoder */
    if (f < video->frames) OSP_TRY(fill_picture(s, video, f));
    int error = avcodec_send_frame(s->encoder, f < video->frames ? s->picture : NULL);
    if (error < 0) return ffmpeg_fail(s, OSP_ERR_UNSUPPORTED, "cannot encode", error);
    OSP_TRY(write_packets(s));
  }
  int error = av_write_trailer(s->muxer);
  if (error >= 0 && !(s->muxer->oformat->flags & AVFMT_NOFILE)) error = avio_closep(&s->muxer->pb);
  if (error < 0) return ffmpeg_fail(s, OSP_ERR_IO, "cannot finish writing", error);
  return OSP_OK;
}

osp_status video_encode(const char *target, const char *shown, osp_video_format format, double fps,
                        const osp_frames *video) {
  session s = {.shown = shown, .recipe = &RECIPES[format]};
  const bool pad = s.recipe->even_size;
  const int width = (int)(video->width + (pad && video->width % 2)), height = (int)(video->height + (pad && video->height % 2));
  osp_status status = open_muxer(&s, target);
  if (status == OSP_OK) status = open_encoder(&s, fps, width, height);
  if (status == OSP_OK) status = start_output(&s, target);
  if (status == OSP_OK) status = make_pictures(&s);
  if (status == OSP_OK) status = encode_frames(&s, video);
  close_session(&s);
  return status;
}
