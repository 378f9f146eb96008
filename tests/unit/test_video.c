/* Video files (src/video/video.h), written and read back in a fresh temporary folder:
 *   - a moving square, 9 frames of 64 × 48, as MP4, GIF and PNG: frame count and size exact;
 *     PNG bit-exact; GIF bit-exact to the web-palette rounding of every channel (so within 25);
 *     MP4 (H.264, crf 18) with a mean absolute error ≤ MP4_MEAN_ERROR of 255 and the square's
 *     centroid within 1 px in every frame; the rate read back as written (MP4, GIF);
 *   - safetensors: bit-exact, the tensor "frames" U8 [9, 48, 64, 3]; a file of another tensor or
 *     dtype is refused naming what was expected;
 *   - an odd size (63 × 47) in MP4 reads back as 64 × 48, the last column and row repeated;
 *   - an existing PNG folder of frames is replaced whole; one holding other files is refused;
 *   - bad input (unknown format or extension, unwritable path, empty video, bad fps, a folder in
 *     the way, unreadable files) fails with a message naming the path, and never leaves a file or
 *     a partial output behind. */
#include <dirent.h>
#include <libavcodec/avcodec.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/safetensors.h"
#include "core/status.h"
#include "harness.h"
#include "video/video.h"

/* Measured on the test video: 2.13 (Debian 12, FFmpeg 5.1, x264 164; 1.58 with lossless H.264, crf 0),
 * most of it yuv420p's one colour per 2 × 2 pixels along the square's edges, which are a large
 * part of so small a video; far from the square it is under 1.4 in every channel. */
static const double MP4_MEAN_ERROR = 3.0;

static char temp_dir[] = "/tmp/osp_test_video_XXXXXX";

static const char *in_temp(const char *name) {
  static char path[4][512];
  static int next;
  char *p = path[next++ % 4];
  snprintf(p, sizeof path[0], "%s/%s", temp_dir, name);
  return p;
}

static bool exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* The square: SIDE × SIDE pixels of SQUARE_RGB at (4 + 5f, 6 + 3f) in frame f, over a gradient
 * whose red channel stays at 20, so a pixel belongs to the square when its red is above 125. */
enum { SIDE = 12 };
static const uint8_t SQUARE_RGB[3] = {230, 190, 50};
static double square_x(int64_t f) { return 4 + 5 * f; }
static double square_y(int64_t f) { return 6 + 3 * f; }

static osp_frames moving_square(int64_t frames, int64_t height, int64_t width) {
  osp_frames v;
  if (osp_frames_alloc(frames, height, width, &v) != OSP_OK) return v;
  for (int64_t f = 0; f < frames; f++)
    for (int64_t y = 0; y < height; y++)
      for (int64_t x = 0; x < width; x++) {
        uint8_t *p = osp_frames_pixel(&v, f, y, x);
        const bool in_square = x >= square_x(f) && x < square_x(f) + SIDE && y >= square_y(f) && y < square_y(f) + SIDE;
        const uint8_t background[3] = {20, (uint8_t)(40 + 2 * x), (uint8_t)(60 + 3 * y)};
        memcpy(p, in_square ? SQUARE_RGB : background, 3);
      }
  return v;
}

/* Mean |a − b| over every channel of a's frames, compared where both have pixels. */
static double mean_error(const osp_frames *a, const osp_frames *b) {
  double sum = 0;
  for (int64_t f = 0; f < a->frames; f++)
    for (int64_t y = 0; y < a->height; y++)
      for (int64_t x = 0; x < a->width; x++)
        for (int c = 0; c < 3; c++) sum += abs(osp_frames_pixel(a, f, y, x)[c] - osp_frames_pixel(b, f, y, x)[c]);
  return sum / (double)(a->frames * a->height * a->width * 3);
}

/* Every frame's square (red > 125) has its centroid within 1 px of where it was drawn. */
static void check_centroids(const osp_frames *v) {
  for (int64_t f = 0; f < v->frames; f++) {
    double sx = 0, sy = 0, n = 0;
    for (int64_t y = 0; y < v->height; y++)
      for (int64_t x = 0; x < v->width; x++)
        if (osp_frames_pixel(v, f, y, x)[0] > 125) sx += (double)x, sy += (double)y, n++;
    CHECK(n > 0);
    CHECK(fabs(sx / fmax(n, 1) - (square_x(f) + (SIDE - 1) / 2.0)) <= 1.0);
    CHECK(fabs(sy / fmax(n, 1) - (square_y(f) + (SIDE - 1) / 2.0)) <= 1.0);
  }
}

static bool same_size(const osp_frames *a, const osp_frames *b) {
  return a->frames == b->frames && a->height == b->height && a->width == b->width;
}

/* The temporary folder holds no partial output (".<name>.partial", ".<name>.old"). */
static void check_no_partial_output(void) {
  DIR *dir = opendir(temp_dir);
  CHECK(dir != NULL);
  for (struct dirent *e; dir && (e = readdir(dir));) {
    const bool partial = strstr(e->d_name, ".partial") || strstr(e->d_name, ".old");
    if (partial) fprintf(stderr, "left behind: %s\n", e->d_name);
    CHECK(!partial);
  }
  if (dir) closedir(dir);
}

/* The call failed with `status` and a message naming `path`. */
static void check_fails(osp_status got, osp_status status, const char *path) {
  CHECK(got == status);
  CHECK(strstr(osp_last_error(), path) != NULL);
  if (got != status || !strstr(osp_last_error(), path)) fprintf(stderr, "  message: %s\n", osp_last_error());
}

static void test_formats(void) {
  osp_video_format f = OSP_VIDEO_PNG;
  CHECK(osp_video_format_parse("mp4", &f) == OSP_OK && f == OSP_VIDEO_MP4);
  CHECK(osp_video_format_parse("gif", &f) == OSP_OK && f == OSP_VIDEO_GIF);
  CHECK(osp_video_format_parse("png", &f) == OSP_OK && f == OSP_VIDEO_PNG);
  CHECK(osp_video_format_parse("safetensors", &f) == OSP_OK && f == OSP_VIDEO_SAFETENSORS);
  CHECK(osp_video_format_parse("avi", &f) == OSP_ERR_ARGUMENT);
  CHECK(strstr(osp_last_error(), "'avi'") && strstr(osp_last_error(), "mp4, gif, png or safetensors"));
  CHECK(strcmp(osp_video_format_name(OSP_VIDEO_GIF), "gif") == 0);
  CHECK(osp_video_format_guess("out/a.mp4", &f) == OSP_OK && f == OSP_VIDEO_MP4);
  CHECK(osp_video_format_guess("A.GIF", &f) == OSP_OK && f == OSP_VIDEO_GIF);
  CHECK(osp_video_format_guess("frames", &f) == OSP_OK && f == OSP_VIDEO_PNG);
  CHECK(osp_video_format_guess("v.safetensors", &f) == OSP_OK && f == OSP_VIDEO_SAFETENSORS);
  CHECK(osp_video_format_guess("out.d/frames/", &f) == OSP_OK && f == OSP_VIDEO_PNG);
  CHECK(osp_video_format_guess("out.d/frames", &f) == OSP_OK && f == OSP_VIDEO_PNG);
  check_fails(osp_video_format_guess("clip.avi", &f), OSP_ERR_ARGUMENT, "clip.avi");
  CHECK(strstr(osp_last_error(), "'.avi'") && strstr(osp_last_error(), ".mp4"));
}

static void test_mp4(const osp_frames *video) {
  CHECK(avcodec_find_encoder_by_name("libx264") != NULL); /* the H.264 encoder, found at run time */
  const char *path = in_temp("square.mp4");
  osp_frames back = {0};
  double fps = 0;
  CHECK(osp_video_write(path, OSP_VIDEO_MP4, 24, video) == OSP_OK);
  CHECK(osp_video_read(path, &back, &fps) == OSP_OK);
  CHECK(same_size(&back, video));
  CHECK_NEAR(fps, 24.0, 1e-12);
  if (same_size(&back, video)) {
    const double error = mean_error(video, &back);
    printf("mp4: mean absolute error %.3f of 255 (bound %.1f)\n", error, MP4_MEAN_ERROR);
    CHECK(error <= MP4_MEAN_ERROR);
    check_centroids(&back);
  }
  osp_frames_free(&back);
  CHECK(osp_video_write(path, OSP_VIDEO_MP4, 24, video) == OSP_OK); /* replaces the file */
  CHECK(osp_video_read(path, &back, NULL) == OSP_OK && same_size(&back, video));
  osp_frames_free(&back);
}

/* An odd size is padded by one repeated column and row; a non-integer rate round-trips. */
static void test_mp4_odd_size(void) {
  osp_frames video = moving_square(5, 47, 63), back = {0};
  const char *path = in_temp("odd.mp4");
  double fps = 0;
  CHECK(osp_video_write(path, OSP_VIDEO_MP4, 12.5, &video) == OSP_OK);
  CHECK(osp_video_read(path, &back, &fps) == OSP_OK);
  CHECK(back.frames == 5 && back.height == 48 && back.width == 64);
  CHECK_NEAR(fps, 12.5, 1e-12);
  if (back.frames == 5 && back.height == 48 && back.width == 64) {
    CHECK(mean_error(&video, &back) <= MP4_MEAN_ERROR); /* over the 63 × 47 that were written */
    double repeat = 0;                                  /* the padding against its neighbour */
    for (int64_t f = 0; f < 5; f++)
      for (int c = 0; c < 3; c++) {
        for (int64_t y = 0; y < 48; y++)
          repeat += abs(osp_frames_pixel(&back, f, y, 63)[c] - osp_frames_pixel(&back, f, y, 62)[c]);
        for (int64_t x = 0; x < 64; x++)
          repeat += abs(osp_frames_pixel(&back, f, 47, x)[c] - osp_frames_pixel(&back, f, 46, x)[c]);
      }
    CHECK(repeat / (5 * 3 * (48 + 64)) <= MP4_MEAN_ERROR);
  }
  osp_frames_free(&back);
  osp_frames_free(&video);
}

static void test_gif(const osp_frames *video) {
  const char *path = in_temp("square.gif");
  osp_frames back = {0};
  double fps = 0;
  CHECK(osp_video_write(path, OSP_VIDEO_GIF, 10, video) == OSP_OK);
  CHECK(osp_video_read(path, &back, &fps) == OSP_OK);
  CHECK(same_size(&back, video));
  CHECK_NEAR(fps, 10.0, 1e-12);
  if (!same_size(&back, video)) {
    osp_frames_free(&back);
    return;
  }
  int64_t off_palette = 0, worst = 0;
  for (int64_t i = 0; i < video->frames * video->height * video->width * 3; i++) {
    const int want = 51 * ((video->rgb[i] + 25) / 51); /* the nearest of 0, 51, ..., 255 */
    off_palette += back.rgb[i] != want;
    const int64_t error = labs((long)back.rgb[i] - video->rgb[i]);
    worst = error > worst ? error : worst;
  }
  printf("gif: %lld channels off the palette rounding, largest error %lld of 255 (bound 25)\n",
         (long long)off_palette, (long long)worst);
  CHECK(off_palette == 0);
  CHECK(worst <= 25);
  osp_frames_free(&back);
}

static void test_png(const osp_frames *video) {
  const char *path = in_temp("frames/");
  osp_frames back = {0};
  double fps = -1;
  CHECK(osp_video_write(path, OSP_VIDEO_PNG, 16, video) == OSP_OK);
  CHECK(exists(in_temp("frames/frame_0000.png")) && exists(in_temp("frames/frame_0008.png")));
  CHECK(!exists(in_temp("frames/frame_0009.png")));
  CHECK(osp_video_read(path, &back, &fps) == OSP_OK);
  CHECK(same_size(&back, video));
  CHECK(fps == 0.0); /* PNG frames carry no rate */
  CHECK(same_size(&back, video) && memcmp(back.rgb, video->rgb, (size_t)(video->frames * video->height * video->width * 3)) == 0);
  osp_frames_free(&back);

  /* Written again with 3 frames: the old folder is replaced whole (no frame_0003.png ... left). */
  osp_frames shorter = *video;
  shorter.frames = 3;
  CHECK(osp_video_write(in_temp("frames"), OSP_VIDEO_PNG, 16, &shorter) == OSP_OK);
  CHECK(osp_video_read(in_temp("frames"), &back, NULL) == OSP_OK && back.frames == 3);
  CHECK(!exists(in_temp("frames/frame_0003.png")));
  osp_frames_free(&back);

  /* A folder holding anything but frames is not replaced. */
  const char *keep = in_temp("keep");
  mkdir(keep, 0777);
  FILE *notes = fopen(in_temp("keep/notes.txt"), "w");
  if (notes) fclose(notes);
  check_fails(osp_video_write(keep, OSP_VIDEO_PNG, 16, video), OSP_ERR_IO, "notes.txt");
  CHECK(exists(in_temp("keep/notes.txt")) && !exists(in_temp("keep/frame_0000.png")));
}

static void test_safetensors(const osp_frames *video) {
  const char *path = in_temp("square.safetensors");
  osp_frames back = {0};
  double fps = -1;
  CHECK(osp_video_write(path, OSP_VIDEO_SAFETENSORS, 16, video) == OSP_OK);
  CHECK(osp_video_read(path, &back, &fps) == OSP_OK);
  CHECK(fps == 0.0);
  const size_t bytes = (size_t)(video->frames * video->height * video->width * 3);
  CHECK(same_size(&back, video) && memcmp(back.rgb, video->rgb, bytes) == 0);
  osp_frames_free(&back);
  osp_st_file file; /* the layout other stacks read */
  CHECK(osp_st_open(path, &file) == OSP_OK);
  const osp_st_entry *e = osp_st_find(&file, "frames");
  CHECK(file.count == 1 && e && e->dtype == OSP_ST_U8 && e->ndim == 4 && e->shape[0] == 9 && e->shape[1] == 48 &&
        e->shape[2] == 64 && e->shape[3] == 3);
  osp_st_close(&file);

  const char *other = in_temp("other.safetensors"); /* a velocity, not frames */
  const float value = 1;
  const osp_st_write_entry velocity = {"velocity", OSP_ST_F32, 4, (const int64_t[]){1, 1, 1, 1}, &value};
  CHECK(osp_st_write(other, &velocity, 1) == OSP_OK);
  check_fails(osp_video_read(other, &back, NULL), OSP_ERR_MISSING, "frames");
  const osp_st_write_entry floats = {"frames", OSP_ST_F32, 4, (const int64_t[]){1, 1, 1, 3}, (float[3]){0}};
  CHECK(osp_st_write(other, &floats, 1) == OSP_OK);
  check_fails(osp_video_read(other, &back, NULL), OSP_ERR_FORMAT, "other.safetensors");
  CHECK(strstr(osp_last_error(), "expected dtype U8, found F32") != NULL);
  CHECK(back.rgb == NULL);
}

/* A failure after the partial output exists removes it: a partial PNG folder whose path (4090
 * bytes) the system takes but whose frames' paths (4105) it does not (nor FFmpeg 5.1's image2
 * muxer, which takes 1023). */
static void test_failure_midway(const osp_frames *video) {
  static const char long_name[] = "squares_squares_squares_squares_squares_squares_squares_squares_squares_squares_"
                                  "squares_squares_squares_squares_squares_squares_squares_squares_squares_squares_"
                                  "squares_squares_squares_squares_squares_squares_squares_squares_squares_squares_";
  char dir[4096], target[8192], partial[8192];
  size_t n = (size_t)snprintf(dir, sizeof dir, "%s", temp_dir);
  for (int depth = 0; n < 3840; depth++) { /* nested folders of 200-character names */
    n += (size_t)snprintf(dir + n, sizeof dir - n, "/%0200d", depth);
    mkdir(dir, 0777);
  }
  const int name_length = (int)(4090 - n - 10); /* the partial folder: 4090 bytes, its frames 4105 */
  snprintf(target, sizeof target, "%s/%.*s", dir, name_length, long_name);
  snprintf(partial, sizeof partial, "%s/.%s.partial", dir, target + n + 1);
  CHECK(strlen(partial) == 4090);
  CHECK(osp_video_write(target, OSP_VIDEO_PNG, 16, video) != OSP_OK);
  CHECK(!exists(partial) && !exists(target));
}

static void test_bad_input(const osp_frames *video) {
  check_fails(osp_video_write(in_temp("x.mp4"), (osp_video_format)7, 24, video), OSP_ERR_ARGUMENT, "x.mp4");
  CHECK(strstr(osp_last_error(), "mp4, gif, png or safetensors") != NULL);
  check_fails(osp_video_write(in_temp("x.mp4"), OSP_VIDEO_MP4, 0, video), OSP_ERR_ARGUMENT, "fps");
  check_fails(osp_video_write(in_temp("x.mp4"), OSP_VIDEO_MP4, NAN, video), OSP_ERR_ARGUMENT, "fps");
  const osp_frames empty = {0};
  check_fails(osp_video_write(in_temp("x.mp4"), OSP_VIDEO_MP4, 24, &empty), OSP_ERR_SHAPE, "x.mp4");
  check_fails(osp_video_write(in_temp("x.gif"), OSP_VIDEO_GIF, 24, &empty), OSP_ERR_SHAPE, "x.gif");
  CHECK(!exists(in_temp("x.mp4")) && !exists(in_temp("x.gif")));

  /* Under a regular file no directory can exist (the tests may run as root, who can write anywhere). */
  const char *unwritable[3] = {"/etc/passwd/x.mp4", "/etc/passwd/x.gif", "/etc/passwd/frames"};
  for (int k = 0; k < 3; k++) {
    check_fails(osp_video_write(unwritable[k], (osp_video_format)k, 24, video), OSP_ERR_IO, unwritable[k]);
    CHECK(strstr(osp_last_error(), "Not a directory") != NULL);
  }

  /* A folder where the MP4 should go: refused before encoding, the folder untouched. */
  const char *folder = in_temp("folder.mp4");
  mkdir(folder, 0777);
  check_fails(osp_video_write(folder, OSP_VIDEO_MP4, 24, video), OSP_ERR_IO, "folder.mp4");
  struct stat st;
  CHECK(stat(folder, &st) == 0 && S_ISDIR(st.st_mode));
  const char *file = in_temp("file");
  FILE *f = fopen(file, "w");
  if (f) fclose(f);
  check_fails(osp_video_write(file, OSP_VIDEO_PNG, 24, video), OSP_ERR_IO, "file");

  osp_frames back = {0};
  check_fails(osp_video_read(in_temp("absent.mp4"), &back, NULL), OSP_ERR_IO, "absent.mp4");
  f = fopen(in_temp("junk.mp4"), "w");
  if (f) {
    fputs("this is not a video\n", f);
    fclose(f);
  }
  check_fails(osp_video_read(in_temp("junk.mp4"), &back, NULL), OSP_ERR_FORMAT, "junk.mp4");
  check_fails(osp_video_read(in_temp("folder.mp4"), &back, NULL), OSP_ERR_IO, "folder.mp4");
  check_fails(osp_video_read(in_temp("keep"), &back, NULL), OSP_ERR_MISSING, "frame_0000.png");
  check_fails(osp_video_read(in_temp("clip.avi"), &back, NULL), OSP_ERR_ARGUMENT, "clip.avi");
  CHECK(back.rgb == NULL);
  check_no_partial_output();
}

int main(void) {
  if (!mkdtemp(temp_dir)) {
    perror("mkdtemp");
    return 1;
  }
  osp_frames video = moving_square(9, 48, 64);
  CHECK(video.rgb != NULL);
  test_formats();
  test_mp4(&video);
  test_mp4_odd_size();
  test_gif(&video);
  test_png(&video);
  test_safetensors(&video);
  test_failure_midway(&video);
  test_bad_input(&video);
  check_no_partial_output();
  osp_frames_free(&video);
  char command[600];
  snprintf(command, sizeof command, "rm -rf %s", temp_dir);
  if (system(command) != 0) fprintf(stderr, "could not remove %s\n", temp_dir);
  return test_summary("video");
}
