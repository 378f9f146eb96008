/* ShapesBench (shapes_bench.h): the background from the border, the object in each frame as the
 * largest connected group of pixels far from it, then one verdict per attribute. Top down in
 * reading order: palette helpers, the background, one frame's object, the video's attributes,
 * the score. */
#include "pipeline/shapes_bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"

/* Thresholds (shapes_bench.h says where each sits between the world's values). */
static const int64_t OBJECT_DISTANCE = 80;  /* RGB distance from the background */
static const double MIN_OBJECT_AREA = 0.01; /* of m², and at least MIN_OBJECT_PIXELS */
static const int64_t MIN_OBJECT_PIXELS = 4;
static const double SOFT_MARGIN = 0.1;          /* coverage cut at each end (noise) */
static const int64_t MOMENT_MARGIN = 2;         /* pixels around the box the moments cover */
static const double TRIANGLE_MOMENT = 0.034;    /* half the triangle's 0.068 */
static const double SQUARE_MOMENT = -1.0 / 120; /* half the square's −1/60 */
static const double GROWTH_RATIO = 1.6;
static const double BOUNCE_LEG = 0.08;    /* of the side */
static const double MOVE_DISTANCE = 0.12; /* of the side */
static const double STILL_RANGE = 0.05;   /* of the side */
static const double CONNECTED_SHARE = 0.95;
static const double CONSISTENT_SCORE = 0.9;
static const int64_t MIN_SIDE = 8;

enum { UNVISITED = -1, NONE = -1 };

/* ---- palette helpers ---- */

typedef struct {
  int64_t count[3][256];
} colour_histogram;

static int64_t distance2(const uint8_t *a, const uint8_t *b) {
  int64_t d = 0;
  for (int c = 0; c < 3; c++) d += ((int64_t)a[c] - b[c]) * ((int64_t)a[c] - b[c]);
  return d;
}

static int nearest_palette(const uint8_t *rgb) {
  int best = 0;
  int64_t best_distance2 = distance2(rgb, osp_shapes_rgb((osp_shapes_colour)0));
  for (int p = 1; p < OSP_SHAPES_PALETTE; p++) {
    const int64_t d = distance2(rgb, osp_shapes_rgb((osp_shapes_colour)p));
    if (d < best_distance2) {
      best = p;
      best_distance2 = d;
    }
  }
  return best;
}

static void histogram_add(colour_histogram *h, const uint8_t *rgb) {
  for (int c = 0; c < 3; c++) h->count[c][rgb[c]]++;
}

/* The per-channel (lower) median of the pixels counted: the first value whose cumulative count
 * reaches ⌈n/2⌉ (0 for none). */
static void histogram_median(const colour_histogram *h, uint8_t median[3]) {
  for (int c = 0; c < 3; c++) {
    int64_t n = 0, seen = 0;
    for (int v = 0; v < 256; v++) n += h->count[c][v];
    int v = 0;
    while (v < 255 && (seen += h->count[c][v]) < (n + 1) / 2) v++;
    median[c] = (uint8_t)v;
  }
}

/* An object's pixels, counted twice: all of them, and its interior (the pixels whose 8 neighbours
 * all belong to it), whose colour no edge blur or anti-aliasing has mixed with the background. */
typedef struct {
  colour_histogram all, interior;
  int64_t interior_pixels;
} object_colours;

/* The per-channel median of the interior, or of all the pixels when there is no interior. */
static void object_median(const object_colours *c, uint8_t median[3]) {
  histogram_median(c->interior_pixels > 0 ? &c->interior : &c->all, median);
}

/* ---- the background ---- */

static int64_t border_pixels(const osp_frames *v) { return 2 * v->width + 2 * (v->height - 2); }

/* Border pixel i of frame f: the top row, the bottom row, then the left and right columns. */
static const uint8_t *border_pixel(const osp_frames *v, int64_t f, int64_t i) {
  if (i < v->width) return osp_frames_pixel(v, f, 0, i);
  if (i < 2 * v->width) return osp_frames_pixel(v, f, v->height - 1, i - v->width);
  const int64_t j = i - 2 * v->width;
  return osp_frames_pixel(v, f, 1 + j / 2, j % 2 ? v->width - 1 : 0);
}

/* The palette colour most border pixels are nearest to, and the median RGB of those pixels. */
static int measure_background(const osp_frames *v, uint8_t rgb[3]) {
  int64_t votes[OSP_SHAPES_PALETTE] = {0};
  for (int64_t f = 0; f < v->frames; f++)
    for (int64_t i = 0; i < border_pixels(v); i++) votes[nearest_palette(border_pixel(v, f, i))]++;
  int winner = 0;
  for (int p = 1; p < OSP_SHAPES_PALETTE; p++)
    if (votes[p] > votes[winner]) winner = p;
  colour_histogram h = {{{0}}};
  for (int64_t f = 0; f < v->frames; f++)
    for (int64_t i = 0; i < border_pixels(v); i++)
      if (nearest_palette(border_pixel(v, f, i)) == winner) histogram_add(&h, border_pixel(v, f, i));
  histogram_median(&h, rgb);
  return winner;
}

/* ---- one frame's object ---- */

typedef struct {
  bool present;
  int64_t area;           /* pixels of the largest far group */
  int64_t far_pixels;     /* all pixels far from the background */
  double cx, cy;          /* the group's centroid, in pixels */
  int64_t x0, y0, x1, y1; /* its bounding box, inclusive */
  uint8_t median[3];      /* its per-channel median pixel */
  int colour;             /* the palette colour nearest that */
  double mass, z4, z3;    /* soft moments: Σα, Re Σα·z⁴, Im Σα·z³ (shape_moments) */
} frame_object;

typedef struct {
  int32_t *labels; /* per pixel: 0 near the background, UNVISITED or a group number */
  int32_t *stack;
} scratch;

/* Labels frame f's far pixels by 8-connected group (flood fill); returns the largest group's
 * label (0 if none) and sets its area and the count of all far pixels. */
static int32_t label_groups(const osp_frames *v, int64_t f, const uint8_t background[3], scratch *s,
                            int64_t *largest_area, int64_t *far_pixels) {
  const int64_t h = v->height, w = v->width;
  *far_pixels = 0;
  for (int64_t i = 0; i < h * w; i++) {
    const bool far = distance2(v->rgb + (f * h * w + i) * 3, background) > OBJECT_DISTANCE * OBJECT_DISTANCE;
    s->labels[i] = far ? UNVISITED : 0;
    *far_pixels += far;
  }
  int32_t next = 1, largest = 0;
  *largest_area = 0;
  for (int64_t seed = 0; seed < h * w; seed++) {
    if (s->labels[seed] != UNVISITED) continue;
    int64_t top = 0, area = 0;
    s->labels[seed] = next;
    s->stack[top++] = (int32_t)seed;
    while (top > 0) {
      const int64_t p = s->stack[--top], y = p / w, x = p % w;
      area++;
      for (int64_t ny = y - 1; ny <= y + 1; ny++)
        for (int64_t nx = x - 1; nx <= x + 1; nx++)
          if (ny >= 0 && ny < h && nx >= 0 && nx < w && s->labels[ny * w + nx] == UNVISITED) {
            s->labels[ny * w + nx] = next;
            s->stack[top++] = (int32_t)(ny * w + nx);
          }
    }
    if (area > *largest_area) {
      *largest_area = area;
      largest = next;
    }
    next++;
  }
  return largest;
}

/* Centroid and bounding box of the pixels labelled `label`. */
static void locate(const osp_frames *v, const scratch *s, int32_t label, frame_object *o) {
  double sum_x = 0, sum_y = 0;
  o->x0 = v->width;
  o->y0 = v->height;
  o->x1 = o->y1 = -1;
  for (int64_t y = 0; y < v->height; y++)
    for (int64_t x = 0; x < v->width; x++) {
      if (s->labels[y * v->width + x] != label) continue;
      sum_x += (double)x + 0.5; /* pixel centres */
      sum_y += (double)y + 0.5;
      if (x < o->x0) o->x0 = x;
      if (x > o->x1) o->x1 = x;
      if (y < o->y0) o->y0 = y;
      if (y > o->y1) o->y1 = y;
    }
  o->cx = sum_x / (double)o->area;
  o->cy = sum_y / (double)o->area;
}

/* Pixel (x, y) and its 8 neighbours all carry `label` (pixels on the frame's edge never do). */
static bool interior(const osp_frames *v, const scratch *s, int32_t label, int64_t x, int64_t y) {
  if (x == 0 || y == 0 || x == v->width - 1 || y == v->height - 1) return false;
  for (int64_t ny = y - 1; ny <= y + 1; ny++)
    for (int64_t nx = x - 1; nx <= x + 1; nx++)
      if (s->labels[ny * v->width + nx] != label) return false;
  return true;
}

/* The object's median pixel (object_median) and its palette colour; counts the pixels into the
 * video's colours too. */
static void colour_of(const osp_frames *v, int64_t f, const scratch *s, int32_t label, frame_object *o,
                      object_colours *video_colours) {
  object_colours frame_colours = {0};
  object_colours *both[2] = {&frame_colours, video_colours};
  for (int64_t y = o->y0; y <= o->y1; y++)
    for (int64_t x = o->x0; x <= o->x1; x++) {
      if (s->labels[y * v->width + x] != label) continue;
      const bool inner = interior(v, s, label, x, y);
      for (int k = 0; k < 2; k++) {
        histogram_add(&both[k]->all, osp_frames_pixel(v, f, y, x));
        if (!inner) continue;
        histogram_add(&both[k]->interior, osp_frames_pixel(v, f, y, x));
        both[k]->interior_pixels++;
      }
    }
  object_median(&frame_colours, o->median);
  o->colour = nearest_palette(o->median);
}

/* The line from the background b to the object's median o in colour space. */
typedef struct {
  double background[3], step[3]; /* b, and (o − b) / |o − b|² */
} colour_line;

static colour_line line_between(const uint8_t *b, const uint8_t *o) {
  colour_line line;
  double length2 = 0;
  for (int c = 0; c < 3; c++) length2 += ((double)o[c] - b[c]) * ((double)o[c] - b[c]);
  for (int c = 0; c < 3; c++) {
    line.background[c] = b[c];
    line.step[c] = length2 > 0 ? ((double)o[c] - b[c]) / length2 : 0;
  }
  return line;
}

/* How much of pixel p the object covers, judged by colour: t = (p − b)·(o − b) / |o − b|², the
 * position of p on the line from b to o, then α = clamp((t − SOFT_MARGIN) / (1 − 2·SOFT_MARGIN),
 * 0, 1), which ignores noise near either end. A blurred or anti-aliased edge pixel gets its share,
 * so the moments below barely change under blur. */
static double coverage(const uint8_t *p, const colour_line *line) {
  double t = 0;
  for (int c = 0; c < 3; c++) t += ((double)p[c] - line->background[c]) * line->step[c];
  return fmin(1.0, fmax(0.0, (t - SOFT_MARGIN) / (1.0 - 2.0 * SOFT_MARGIN)));
}

/* The soft moments of frame f's object over its box grown by MOMENT_MARGIN pixels: the mass
 * M = Σα and the centroid, then with z = (x − cx) + i·(y − cy) at the pixel centres (y down)
 * Re Σα·z⁴ = Σα·(dx⁴ − 6dx²dy² + dy⁴) and Im Σα·z³ = Σα·(3dx²dy − dy³). Divided by M³ and M^2.5
 * they are shape constants that an isotropic blur leaves as they are (blur keeps M and adds
 * nothing to these moments): circle 0 and 0, square −1/60 and 0, apex-up triangle 0.0019 and 0.068. */
static void shape_moments(const osp_frames *v, int64_t f, const uint8_t background[3], frame_object *o) {
  const int64_t x0 = o->x0 > MOMENT_MARGIN ? o->x0 - MOMENT_MARGIN : 0;
  const int64_t y0 = o->y0 > MOMENT_MARGIN ? o->y0 - MOMENT_MARGIN : 0;
  const int64_t x1 = o->x1 + MOMENT_MARGIN < v->width ? o->x1 + MOMENT_MARGIN : v->width - 1;
  const int64_t y1 = o->y1 + MOMENT_MARGIN < v->height ? o->y1 + MOMENT_MARGIN : v->height - 1;
  const colour_line line = line_between(background, o->median);
  double mass = 0, sum_x = 0, sum_y = 0;
  for (int64_t y = y0; y <= y1; y++)
    for (int64_t x = x0; x <= x1; x++) {
      const double alpha = coverage(osp_frames_pixel(v, f, y, x), &line);
      mass += alpha;
      sum_x += alpha * ((double)x + 0.5);
      sum_y += alpha * ((double)y + 0.5);
    }
  o->mass = mass;
  if (mass <= 0) return;
  const double cx = sum_x / mass, cy = sum_y / mass;
  for (int64_t y = y0; y <= y1; y++)
    for (int64_t x = x0; x <= x1; x++) {
      const double alpha = coverage(osp_frames_pixel(v, f, y, x), &line);
      const double dx = (double)x + 0.5 - cx, dy = (double)y + 0.5 - cy;
      o->z4 += alpha * (dx * dx * dx * dx - 6 * dx * dx * dy * dy + dy * dy * dy * dy);
      o->z3 += alpha * (3 * dx * dx * dy - dy * dy * dy);
    }
}

/* The fewest pixels an object has: max(MIN_OBJECT_PIXELS, ⌈MIN_OBJECT_AREA·m²⌉). */
static int64_t min_object_pixels(const osp_frames *v) {
  const double m = (double)(v->height < v->width ? v->height : v->width);
  const int64_t pixels = (int64_t)ceil(MIN_OBJECT_AREA * m * m);
  return pixels > MIN_OBJECT_PIXELS ? pixels : MIN_OBJECT_PIXELS;
}

static frame_object measure_frame(const osp_frames *v, int64_t f, const uint8_t background[3], scratch *s,
                                  object_colours *video_colours) {
  frame_object o = {0};
  const int32_t label = label_groups(v, f, background, s, &o.area, &o.far_pixels);
  o.present = o.area >= min_object_pixels(v);
  if (!o.present) return o;
  locate(v, s, label, &o);
  colour_of(v, f, s, label, &o, video_colours);
  shape_moments(v, f, background, &o);
  return o;
}

/* ---- the video's attributes ---- */

/* From the normalized moments (shape_moments): the thresholds sit halfway to the ideal values. */
static int classify_shape(double triangle_moment, double square_moment) {
  if (triangle_moment >= TRIANGLE_MOMENT) return OSP_SHAPES_TRIANGLE;
  return square_moment <= SQUARE_MOMENT ? OSP_SHAPES_SQUARE : OSP_SHAPES_CIRCLE;
}

/* Re Σα·z⁴ / M³ and Im Σα·z³ / M^2.5 summed over frames: numerators and denominators. */
typedef struct {
  double z4, z3, z4_scale, z3_scale;
} moment_sums;

static void add_moments(moment_sums *sums, const frame_object *o) {
  sums->z4 += o->z4;
  sums->z3 += o->z3;
  sums->z4_scale += o->mass * o->mass * o->mass;
  sums->z3_scale += o->mass * o->mass * sqrt(o->mass);
}

/* The shape the sums say, and the two normalized moments. */
static int shape_of(const moment_sums *sums, double *triangle_moment, double *square_moment) {
  *triangle_moment = sums->z3_scale > 0 ? sums->z3 / sums->z3_scale : 0;
  *square_moment = sums->z4_scale > 0 ? sums->z4 / sums->z4_scale : 0;
  return classify_shape(*triangle_moment, *square_moment);
}

static int frame_shape(const frame_object *o) {
  moment_sums sums = {0};
  double triangle_moment, square_moment;
  add_moments(&sums, o);
  return shape_of(&sums, &triangle_moment, &square_moment);
}

/* The object's path: centroid (as fractions of the width and height) and area of the frames that
 * hold it, in order. */
typedef struct {
  double *x, *y, *area;
  int64_t n;
} path;

/* An interior point lies at least BOUNCE_LEG beyond both ends, on the same side. */
static bool turns_back(const double *p, int64_t n) {
  for (int64_t k = 1; k + 1 < n; k++) {
    const double from_first = p[k] - p[0], from_last = p[k] - p[n - 1];
    if ((from_first >= BOUNCE_LEG && from_last >= BOUNCE_LEG) ||
        (from_first <= -BOUNCE_LEG && from_last <= -BOUNCE_LEG))
      return true;
  }
  return false;
}

static double range_of(const double *p, int64_t n) {
  double lo = p[0], hi = p[0];
  for (int64_t i = 1; i < n; i++) {
    lo = fmin(lo, p[i]);
    hi = fmax(hi, p[i]);
  }
  return hi - lo;
}

/* growth = mean area of the last q points / of the first q, q = max(1, ⌊n/4⌋). */
static double growth_of(const path *p) {
  const int64_t q = p->n / 4 > 1 ? p->n / 4 : 1;
  double first = 0, last = 0;
  for (int64_t i = 0; i < q; i++) {
    first += p->area[i];
    last += p->area[p->n - 1 - i];
  }
  return last / first;
}

/* The motion (shapes_bench.h), or NONE; sets the growth and the net displacement. */
static int classify_motion(const path *p, osp_shapes_score *score) {
  if (p->n < 2) return NONE;
  score->growth = growth_of(p);
  score->dx = p->x[p->n - 1] - p->x[0];
  score->dy = p->y[p->n - 1] - p->y[0];
  if (score->growth >= GROWTH_RATIO) return OSP_SHAPES_GROWING;
  if (score->growth <= 1.0 / GROWTH_RATIO) return OSP_SHAPES_SHRINKING;
  if (turns_back(p->x, p->n) || turns_back(p->y, p->n)) return OSP_SHAPES_BOUNCING;
  if (fmax(fabs(score->dx), fabs(score->dy)) >= MOVE_DISTANCE) {
    if (fabs(score->dx) >= fabs(score->dy)) return score->dx > 0 ? OSP_SHAPES_RIGHT : OSP_SHAPES_LEFT;
    return score->dy > 0 ? OSP_SHAPES_DOWN : OSP_SHAPES_UP; /* y grows downward */
  }
  if (range_of(p->x, p->n) <= STILL_RANGE && range_of(p->y, p->n) <= STILL_RANGE) return OSP_SHAPES_STILL;
  return NONE;
}

/* Colour, shape, size, motion and consistency from the frames' objects. */
static osp_status judge_object(const osp_frames *v, const frame_object *objects, const object_colours *colours,
                               osp_shapes_score *score) {
  path p = {.x = malloc(3 * sizeof(double) * (size_t)v->frames)};
  if (!p.x)
    return osp_fail(OSP_ERR_MEMORY, "shapes bench: cannot allocate the path of %lld frames", (long long)v->frames);
  p.y = p.x + v->frames;
  p.area = p.y + v->frames;
  int64_t area = 0;
  moment_sums moments = {0};
  const double m = (double)(v->height < v->width ? v->height : v->width);
  for (int64_t f = 0; f < v->frames; f++) {
    const frame_object *o = &objects[f];
    if (!o->present) continue;
    area += o->area;
    add_moments(&moments, o);
    p.x[p.n] = o->cx / (double)v->width;
    p.y[p.n] = o->cy / (double)v->height;
    p.area[p.n] = (double)o->area;
    p.n++;
  }
  uint8_t median[3];
  object_median(colours, median);
  score->measured[OSP_SHAPES_COLOUR] = nearest_palette(median);
  score->measured[OSP_SHAPES_SHAPE] = shape_of(&moments, &score->triangle_moment, &score->square_moment);
  score->area = (double)area / (double)p.n / (m * m);
  score->measured[OSP_SHAPES_SIZE] =
      score->area >= sqrt(OSP_SHAPES_SMALL_AREA * OSP_SHAPES_LARGE_AREA) ? OSP_SHAPES_LARGE : OSP_SHAPES_SMALL;
  score->measured[OSP_SHAPES_MOTION] = classify_motion(&p, score);
  free(p.x);
  double total = 0;
  for (int64_t f = 0; f < v->frames; f++) {
    const frame_object *o = &objects[f];
    if (!o->present) continue;
    total +=
        (1.0 + ((double)o->area >= CONNECTED_SHARE * (double)o->far_pixels) +
         (o->colour == score->measured[OSP_SHAPES_COLOUR]) + (frame_shape(o) == score->measured[OSP_SHAPES_SHAPE])) /
        4.0;
  }
  score->consistency = total / (double)v->frames;
  score->measured[OSP_SHAPES_CONSISTENT] = score->consistency >= CONSISTENT_SCORE;
  return OSP_OK;
}

/* ---- the score ---- */

const char *osp_shapes_scored_name(int attribute) {
  return attribute == OSP_SHAPES_CONSISTENT ? "consistent" : osp_shapes_attribute_name((osp_shapes_attribute)attribute);
}

const char *osp_shapes_measured_name(const osp_shapes_score *score, int attribute) {
  const int value = attribute >= 0 && attribute < OSP_SHAPES_SCORED ? score->measured[attribute] : NONE;
  if (value == NONE) return "none";
  if (attribute == OSP_SHAPES_CONSISTENT) return value ? "yes" : "no";
  return osp_shapes_value_name((osp_shapes_attribute)attribute, value);
}

/* Fills correct[], overall and the reason from measured[] and expected. */
static void grade(osp_shapes_score *score) {
  int correct = 0;
  size_t used = strlen(score->reason);
  for (int a = 0; a < OSP_SHAPES_SCORED; a++) {
    const int expected = a == OSP_SHAPES_CONSISTENT ? 1 : score->expected.value[a];
    score->correct[a] = score->measured[a] == expected;
    correct += score->correct[a];
    if (score->correct[a] || used + 1 >= sizeof score->reason) continue;
    used +=
        (size_t)snprintf(score->reason + used, sizeof score->reason - used, "%s%s: expected %s, found %s",
                         used ? "; " : "", osp_shapes_scored_name(a),
                         a == OSP_SHAPES_CONSISTENT ? "yes" : osp_shapes_value_name((osp_shapes_attribute)a, expected),
                         osp_shapes_measured_name(score, a));
  }
  score->overall = correct / (double)OSP_SHAPES_SCORED;
}

static osp_status check_video(const osp_frames *v) {
  if (!v || !v->rgb || v->frames < 1 || v->height < MIN_SIDE || v->width < MIN_SIDE)
    return osp_fail(OSP_ERR_SHAPE,
                    "shapes bench: video: expected at least 1 frame of at least %lld x %lld pixels, "
                    "found %lld frames of %lld x %lld",
                    (long long)MIN_SIDE, (long long)MIN_SIDE, v ? (long long)v->frames : 0LL,
                    v ? (long long)v->width : 0LL, v ? (long long)v->height : 0LL);
  if (v->height * v->width > INT32_MAX)
    return osp_fail(OSP_ERR_SHAPE,
                    "shapes bench: video: frames of %lld x %lld pixels are too large (at most 2^31 pixels)",
                    (long long)v->width, (long long)v->height);
  return OSP_OK;
}

/* Measures every frame's object and counts the frames that hold one. */
static osp_status measure_objects(const osp_frames *v, const uint8_t background[3], frame_object *objects,
                                  object_colours *colours, osp_shapes_score *score) {
  const int64_t pixels = v->height * v->width;
  scratch s = {malloc(2 * sizeof(int32_t) * (size_t)pixels), NULL};
  if (!s.labels)
    return osp_fail(OSP_ERR_MEMORY, "shapes bench: cannot allocate the labels of %lld pixels", (long long)pixels);
  s.stack = s.labels + pixels;
  for (int64_t f = 0; f < v->frames; f++) {
    objects[f] = measure_frame(v, f, background, &s, colours);
    score->frames_with_object += objects[f].present;
  }
  free(s.labels);
  return OSP_OK;
}

osp_status osp_shapes_bench_attributes(const osp_frames *video, const osp_shapes_attributes *expected,
                                       osp_shapes_score *out) {
  OSP_TRY(check_video(video));
  OSP_TRY(osp_shapes_check(expected));
  osp_shapes_score score = {.expected = *expected};
  for (int a = 0; a < OSP_SHAPES_SCORED; a++) score.measured[a] = NONE;
  uint8_t background[3];
  score.measured[OSP_SHAPES_BACKGROUND] = measure_background(video, background);
  frame_object *objects = calloc((size_t)video->frames, sizeof *objects);
  object_colours *colours = calloc(1, sizeof *colours);
  osp_status status = objects && colours
                          ? OSP_OK
                          : osp_fail(OSP_ERR_MEMORY, "shapes bench: cannot allocate the measures of %lld frames",
                                     (long long)video->frames);
  if (status == OSP_OK) status = measure_objects(video, background, objects, colours, &score);
  if (status == OSP_OK && score.frames_with_object > 0)
    status = judge_object(video, objects, colours, &score);
  else if (status == OSP_OK)
    snprintf(score.reason, sizeof score.reason,
             "no object: no frame has a group of at least %lld pixels farther than "
             "%lld from the %s background",
             (long long)min_object_pixels(video), (long long)OBJECT_DISTANCE,
             osp_shapes_value_name(OSP_SHAPES_BACKGROUND, score.measured[OSP_SHAPES_BACKGROUND]));
  free(objects);
  free(colours);
  if (status != OSP_OK) return status;
  grade(&score);
  *out = score;
  return OSP_OK;
}

osp_status osp_shapes_bench(const osp_frames *video, const char *prompt, osp_shapes_score *out) {
  osp_shapes_attributes expected;
  OSP_TRY(osp_shapes_parse(prompt, &expected));
  return osp_shapes_bench_attributes(video, &expected, out);
}
