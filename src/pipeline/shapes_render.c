/* Rendering the shapes world (osp_shapes_render in shapes_world.h): placement of the object in
 * every frame from (seed, index), then anti-aliased rasterization. The geometry is documented in
 * shapes_world.h. */
#include <math.h>
#include <string.h>

#include "core/rng.h"
#include "core/status.h"
#include "pipeline/shapes_world.h"

static const uint32_t PLACEMENT_STREAM = 0x504c4143u; /* "PLAC" */
static const double PI = 3.14159265358979323846;
static const int64_t MIN_SIDE = 32, MAX_SIDE = 4096, MIN_FRAMES = 3;

/* The uniform draws of a placement, by slot: each motion uses the slots it needs. */
enum { SLOT_X, SLOT_Y, SLOT_SPEED, SLOT_AXIS, SLOT_DIRECTION, SLOT_TURN, SLOTS };

/* Where the object is in one frame: its centroid and its scale (1 but when growing or shrinking). */
typedef struct {
  double cx, cy, scale;
} pose;

/* The shape's size parameter (circle: r, square: h, triangle: a; shapes_world.h) at scale 1, and
 * the distances from the centroid to the edges of its bounding box, in units of that parameter. */
typedef struct {
  double size;
  double left, right, up, down;
} shape_extent;

static shape_extent extent_of(const osp_shapes_attributes *a, int64_t height, int64_t width) {
  const double m = (double)(height < width ? height : width);
  const double area =
      (a->value[OSP_SHAPES_SIZE] == OSP_SHAPES_LARGE ? OSP_SHAPES_LARGE_AREA : OSP_SHAPES_SMALL_AREA) * m * m;
  switch (a->value[OSP_SHAPES_SHAPE]) {
    case OSP_SHAPES_CIRCLE:
      return (shape_extent){sqrt(area / PI), 1, 1, 1, 1};
    case OSP_SHAPES_SQUARE:
      return (shape_extent){sqrt(area) / 2, 1, 1, 1, 1};
    default:
      return (shape_extent){sqrt(area / 2), 1, 1, 4.0 / 3.0, 2.0 / 3.0}; /* triangle */
  }
}

/* The centroid positions along one axis that keep the box inside [0, side) at the largest scale. */
typedef struct {
  double lo, hi, side;
} axis_range;

static axis_range range_of(double before, double after, double size, double scale, int64_t side) {
  return (axis_range){before * size * scale, (double)side - after * size * scale, (double)side};
}

/* Uniform in [0, 1) for each slot: the words of Philox blocks {index low, index high, PLAC, block}. */
static void draw_slots(uint64_t seed, uint64_t index, double u[SLOTS]) {
  osp_philox_key key = {{(uint32_t)seed, (uint32_t)(seed >> 32)}};
  for (int block = 0; block * 4 < SLOTS; block++) {
    osp_philox_ctr counter = {{(uint32_t)index, (uint32_t)(index >> 32), PLACEMENT_STREAM, (uint32_t)block}};
    osp_philox_ctr bits = osp_philox4x32_10(counter, key);
    for (int w = 0; w < 4 && block * 4 + w < SLOTS; w++) u[block * 4 + w] = bits.v[w] * 0x1p-32;
  }
}

static double uniform_in(const axis_range *r, double u) { return r->lo + u * (r->hi - r->lo); }

/* Straight motion along one axis by D = U[0.25, 0.40]·side (u_speed), toward +side when `forward`,
 * from a start (u_start) that keeps the whole path in the range. */
static double straight(const axis_range *r, double u_start, double u_speed, bool forward, double progress) {
  const double distance = (0.25 + 0.15 * u_speed) * r->side;
  const double start = r->lo + (forward ? 0.0 : distance) + u_start * (r->hi - r->lo - distance);
  return start + (forward ? distance : -distance) * progress;
}

/* Bouncing along one axis: at speed v = U[0.55, 0.65]·side per clip toward one wall, touching it
 * at progress τ = k/(F − 1): p(u) = wall ∓ v·|u − τ|. v is capped so both legs fit the range. */
static double bounce(const axis_range *r, const double u[SLOTS], int64_t frames, double progress) {
  const int64_t last = frames - 1;
  const int64_t first_turn = (last + 2) / 3, last_turn = 2 * last / 3; /* ⌈(F−1)/3⌉, ⌊2(F−1)/3⌋ */
  const int64_t turn = first_turn + (int64_t)(u[SLOT_TURN] * (double)(last_turn - first_turn + 1));
  const double tau = (double)turn / (double)last;
  const double speed = fmin((0.55 + 0.10 * u[SLOT_SPEED]) * r->side, (r->hi - r->lo) / fmax(tau, 1.0 - tau));
  const double leg = speed * fabs(progress - tau);
  return u[SLOT_DIRECTION] < 0.5 ? r->hi - leg : r->lo + leg;
}

/* The pose of frame t (progress = t/(F − 1)). */
static pose pose_at(const osp_shapes_attributes *a, const shape_extent *e, const double u[SLOTS], int64_t frames,
                    int64_t height, int64_t width, double progress) {
  const int motion = a->value[OSP_SHAPES_MOTION];
  const bool scaling = motion == OSP_SHAPES_GROWING || motion == OSP_SHAPES_SHRINKING;
  const double largest = scaling ? OSP_SHAPES_SCALE_MAX : 1.0;
  const axis_range x = range_of(e->left, e->right, e->size, largest, width);
  const axis_range y = range_of(e->up, e->down, e->size, largest, height);
  pose p = {uniform_in(&x, u[SLOT_X]), uniform_in(&y, u[SLOT_Y]), 1.0};
  const double span = OSP_SHAPES_SCALE_MAX - OSP_SHAPES_SCALE_MIN;
  switch (motion) {
    case OSP_SHAPES_LEFT:
    case OSP_SHAPES_RIGHT:
      p.cx = straight(&x, u[SLOT_X], u[SLOT_SPEED], motion == OSP_SHAPES_RIGHT, progress);
      break;
    case OSP_SHAPES_UP:
    case OSP_SHAPES_DOWN:
      p.cy = straight(&y, u[SLOT_Y], u[SLOT_SPEED], motion == OSP_SHAPES_DOWN, progress);
      break;
    case OSP_SHAPES_BOUNCING:
      if (u[SLOT_AXIS] < 0.5)
        p.cx = bounce(&x, u, frames, progress);
      else
        p.cy = bounce(&y, u, frames, progress);
      break;
    case OSP_SHAPES_GROWING:
      p.scale = OSP_SHAPES_SCALE_MIN + span * progress;
      break;
    case OSP_SHAPES_SHRINKING:
      p.scale = OSP_SHAPES_SCALE_MAX - span * progress;
      break;
    default:
      break; /* staying still */
  }
  return p;
}

/* The point (px, py) lies inside the shape of size parameter s centred (centroid) at the origin. */
static bool inside(int shape, double s, double px, double py) {
  switch (shape) {
    case OSP_SHAPES_CIRCLE:
      return px * px + py * py <= s * s;
    case OSP_SHAPES_SQUARE:
      return fabs(px) <= s && fabs(py) <= s;
    default: { /* triangle: the half width grows from 0 at the apex (y = −4s/3) to s at the base (2s/3) */
      const double below_apex = py + 4.0 * s / 3.0;
      return below_apex >= 0 && py <= 2.0 * s / 3.0 && fabs(px) <= below_apex / 2.0;
    }
  }
}

static int64_t clamp(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Paints the object of frame f, anti-aliased: each pixel of its bounding box is blended toward the
 * object's colour by its coverage, the share of its SUBSAMPLES × SUBSAMPLES sub-pixel centres
 * inside the shape (rounded to the nearest byte). */
static void paint_object(osp_frames *video, int64_t f, const osp_shapes_attributes *a, const shape_extent *e, pose p) {
  enum { SUBSAMPLES = 4, SAMPLES = SUBSAMPLES * SUBSAMPLES };
  const double s = e->size * p.scale;
  const int64_t x0 = clamp((int64_t)floor(p.cx - e->left * s), 0, video->width - 1);
  const int64_t x1 = clamp((int64_t)ceil(p.cx + e->right * s), 0, video->width - 1);
  const int64_t y0 = clamp((int64_t)floor(p.cy - e->up * s), 0, video->height - 1);
  const int64_t y1 = clamp((int64_t)ceil(p.cy + e->down * s), 0, video->height - 1);
  const uint8_t *object = osp_shapes_rgb((osp_shapes_colour)a->value[OSP_SHAPES_COLOUR]);
  const uint8_t *background = osp_shapes_rgb((osp_shapes_colour)a->value[OSP_SHAPES_BACKGROUND]);
  for (int64_t y = y0; y <= y1; y++)
    for (int64_t x = x0; x <= x1; x++) {
      int covered = 0;
      for (int i = 0; i < SUBSAMPLES; i++)
        for (int j = 0; j < SUBSAMPLES; j++)
          covered += inside(a->value[OSP_SHAPES_SHAPE], s, (double)x + (j + 0.5) / SUBSAMPLES - p.cx,
                            (double)y + (i + 0.5) / SUBSAMPLES - p.cy);
      uint8_t *pixel = osp_frames_pixel(video, f, y, x);
      for (int c = 0; c < 3; c++)
        pixel[c] = (uint8_t)((background[c] * (SAMPLES - covered) + object[c] * covered + SAMPLES / 2) / SAMPLES);
    }
}

static void paint_background(osp_frames *video, const uint8_t rgb[3]) {
  const int64_t pixels = video->frames * video->height * video->width;
  for (int64_t i = 0; i < pixels; i++) memcpy(video->rgb + i * 3, rgb, 3);
}

osp_status osp_shapes_render(const osp_shapes_attributes *attributes, uint64_t seed, uint64_t index, int64_t frames,
                             int64_t height, int64_t width, osp_frames *out) {
  *out = (osp_frames){0};
  OSP_TRY(osp_shapes_check(attributes));
  if (frames < MIN_FRAMES || height < MIN_SIDE || width < MIN_SIDE || height > MAX_SIDE || width > MAX_SIDE)
    return osp_fail(OSP_ERR_SHAPE,
                    "shapes video: expected at least %lld frames of %lld..%lld pixels a side, "
                    "found %lld frames of %lld x %lld",
                    (long long)MIN_FRAMES, (long long)MIN_SIDE, (long long)MAX_SIDE, (long long)frames,
                    (long long)width, (long long)height);
  OSP_TRY(osp_frames_alloc(frames, height, width, out));
  paint_background(out, osp_shapes_rgb((osp_shapes_colour)attributes->value[OSP_SHAPES_BACKGROUND]));
  double u[SLOTS];
  draw_slots(seed, index, u);
  const shape_extent e = extent_of(attributes, height, width);
  for (int64_t f = 0; f < frames; f++) {
    const double progress = (double)f / (double)(frames - 1);
    paint_object(out, f, attributes, &e, pose_at(attributes, &e, u, frames, height, width, progress));
  }
  return OSP_OK;
}
