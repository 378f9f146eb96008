/* The synthetic world of moving shapes that the built-in text-to-video model learns: one object
 * (a circle, square or triangle, small or large, in one of six colours) moving on a plain
 * background, each video with its caption
 *
 *   "a {size} {colour} {shape} {motion} on a {background} background"
 *   e.g. "a small red circle moving right on a blue background".
 *
 * Everything is a pure function of (seed, index): sample k of seed s is always the same video.
 *
 * Geometry (m = min(height, width); lengths are continuous pixel units, pixel (x, y) covers
 * [x, x+1) × [y, y+1)). Anti-aliased: a pixel takes background + (object − background)·k/16,
 * rounded, where k of its 4 × 4 sub-pixel centres (x + (j + ½)/4, y + (i + ½)/4) lie inside the
 * shape (a blur-like edge, which ShapesBench's moments measure faithfully, and a smoother target to
 * learn than aliased steps). The object's position is its centroid (cx, cy); its area at scale 1 is
 * OSP_SHAPES_SMALL_AREA·m² or OSP_SHAPES_LARGE_AREA·m², the same for every shape:
 *   circle    radius r = √(A/π)
 *   square    half side h = √A / 2
 *   triangle  apex up, base 2a, height 2a, a = √(A/2): apex (cx, cy − 4a/3), base corners
 *             (cx ± a, cy + 2a/3)
 * Motion over the clip, u = t/(frames − 1) for frame t; every position keeps the whole shape
 * inside the frame:
 *   moving left/right/up/down  a straight line of length D = U[0.25, 0.40] × the frame's side
 *                              along that axis; the other coordinate fixed
 *   staying still              fixed position
 *   bouncing                   along x or y (even odds), toward one wall at speed
 *                              v = U[0.55, 0.65] × the side per clip, touching the wall exactly
 *                              at frame k ∈ [⌈(F−1)/3⌉, ⌊2(F−1)/3⌋] and coming back at the same
 *                              speed: p(u) = wall − v·|u − k/(F−1)|
 *   growing / shrinking        fixed position, scale 0.75 → 1.25 (or 1.25 → 0.75) linear in u
 *                              (about the centroid)
 * Frames ≥ 3 and 32 ≤ height, width ≤ 4096 (below 32 pixels the small shapes lose their form).
 *
 * Palette (RGB, chosen far apart: every object colour is ≥ 190 from every other palette colour):
 *   red 255,0,0  green 0,255,0  blue 0,0,255  yellow 255,255,0  white 255,255,255
 *   purple 192,0,255  black 0,0,0  gray 128,128,128
 * Object colours: red green blue yellow white purple. Backgrounds: black white gray blue green,
 * never the object's colour.
 *
 * Held-out split: the (colour, shape, motion) triple with indices (c, s, m) in the orders of the
 * enums below is held out iff (c + 2s + 3m) mod 10 = 0: 14 of the 144 triples (9.7%), at most one
 * motion for each (colour, shape), so every pair of a held-out triple is seen in training. The
 * training sampler never emits a held-out triple.
 *
 * Fixed prompt sets (OSP_SHAPES_PROMPTS per split, written to models/shapes/prompts-*.txt): the
 * split's triples in index order (c-major, then s, then m) t_0 .. t_{N−1}; prompt i uses triple
 * t_⌊i·N/P⌋, size i mod 2, and background number ⌊i/2⌋ mod n of the colour's allowed
 * backgrounds (in the order black white gray blue green). Its video for seed S is
 * osp_shapes_render(prompt, S, i). */
#ifndef OSP_PIPELINE_SHAPES_WORLD_H
#define OSP_PIPELINE_SHAPES_WORLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/frames.h"
#include "osp.h"

/* The attributes of a video, in caption order. */
typedef enum {
  OSP_SHAPES_SIZE,
  OSP_SHAPES_COLOUR,
  OSP_SHAPES_SHAPE,
  OSP_SHAPES_MOTION,
  OSP_SHAPES_BACKGROUND,
  OSP_SHAPES_ATTRIBUTES
} osp_shapes_attribute;

typedef enum { OSP_SHAPES_SMALL, OSP_SHAPES_LARGE } osp_shapes_size;
/* The palette: the first six are the object colours; colour and background values index it. */
typedef enum {
  OSP_SHAPES_RED,
  OSP_SHAPES_GREEN,
  OSP_SHAPES_BLUE,
  OSP_SHAPES_YELLOW,
  OSP_SHAPES_WHITE,
  OSP_SHAPES_PURPLE,
  OSP_SHAPES_BLACK,
  OSP_SHAPES_GRAY,
  OSP_SHAPES_PALETTE
} osp_shapes_colour;
typedef enum { OSP_SHAPES_CIRCLE, OSP_SHAPES_SQUARE, OSP_SHAPES_TRIANGLE } osp_shapes_shape;
typedef enum {
  OSP_SHAPES_LEFT,
  OSP_SHAPES_RIGHT,
  OSP_SHAPES_UP,
  OSP_SHAPES_DOWN,
  OSP_SHAPES_STILL,
  OSP_SHAPES_BOUNCING,
  OSP_SHAPES_GROWING,
  OSP_SHAPES_SHRINKING
} osp_shapes_motion;

enum {
  OSP_SHAPES_OBJECT_COLOURS = 6,
  OSP_SHAPES_SHAPES = 3,
  OSP_SHAPES_MOTIONS = 8,
  OSP_SHAPES_TRIPLES = OSP_SHAPES_OBJECT_COLOURS * OSP_SHAPES_SHAPES * OSP_SHAPES_MOTIONS,
  OSP_SHAPES_MAX_VALUES = 8,  /* the most values one attribute has */
  OSP_SHAPES_PROMPTS = 48,    /* prompts in each fixed prompt set */
  OSP_SHAPES_CAPTION_MAX = 96 /* bytes of the longest caption, with its terminating zero */
};

/* The built-in model's videos: 8 frames of 32 × 32 (macros, so the CLI can quote them). */
#define OSP_SHAPES_DEFAULT_FRAMES 8
#define OSP_SHAPES_DEFAULT_SIDE 32

/* The object's area at scale 1, as a fraction of min(height, width)². */
#define OSP_SHAPES_SMALL_AREA 0.06
#define OSP_SHAPES_LARGE_AREA 0.16
/* Growing and shrinking run between these scales (of the side lengths). */
#define OSP_SHAPES_SCALE_MIN 0.75
#define OSP_SHAPES_SCALE_MAX 1.25

/* value[attribute]: an osp_shapes_size, _colour, _shape, _motion, and a colour for the background. */
typedef struct {
  int value[OSP_SHAPES_ATTRIBUTES];
} osp_shapes_attributes;

typedef enum { OSP_SHAPES_TRAIN, OSP_SHAPES_HELDOUT } osp_shapes_split;

/* "size", "colour", "shape", "motion", "background". */
const char *osp_shapes_attribute_name(osp_shapes_attribute attribute);
/* The caption's words for a value ("small", "red", "moving left", ...); "?" outside the range. */
const char *osp_shapes_value_name(osp_shapes_attribute attribute, int value);
/* The values an attribute may take, in canonical order, into values[0..n); returns n. */
int osp_shapes_values(osp_shapes_attribute attribute, int values[OSP_SHAPES_MAX_VALUES]);
/* The RGB of a palette colour. */
const uint8_t *osp_shapes_rgb(osp_shapes_colour colour);

/* Every value is in its attribute's set and the background is not the object's colour. */
osp_status osp_shapes_check(const osp_shapes_attributes *attributes);

/* Reads a caption of the grammar above (words separated by any whitespace, case ignored). An error
 * names the word that does not fit, its position, and what was expected there. */
osp_status osp_shapes_parse(const char *caption, osp_shapes_attributes *out);
/* Writes the caption of valid attributes into out[0..size) (OSP_SHAPES_CAPTION_MAX is enough). */
osp_status osp_shapes_caption(const osp_shapes_attributes *attributes, char *out, size_t size);

/* The held-out rule above, on (colour, shape, motion) indices. */
bool osp_shapes_is_heldout(int colour, int shape, int motion);
/* The split of a (valid) attribute set, by its triple. */
osp_shapes_split osp_shapes_split_of(const osp_shapes_attributes *attributes);
osp_status osp_shapes_split_parse(const char *name, osp_shapes_split *split);
const char *osp_shapes_split_name(osp_shapes_split split);

/* Attributes of sample `index` of `seed`: a uniform triple of the split, a uniform size and a
 * uniform allowed background (Philox4x32-10, key = seed, counter {index low, index high,
 * 0x41545452 "ATTR", 0}). */
void osp_shapes_sample(uint64_t seed, uint64_t index, osp_shapes_split split, osp_shapes_attributes *out);
/* Prompt `index` ∈ [0, OSP_SHAPES_PROMPTS) of a split's fixed prompt set (rule above). */
osp_status osp_shapes_prompt(osp_shapes_split split, int index, osp_shapes_attributes *out);

/* Renders the video of valid attributes into *out (allocated here; free with osp_frames_free).
 * Position, speed, bounce axis and turn are drawn from (seed, index) (Philox, key = seed, counter
 * {index low, index high, 0x504c4143 "PLAC", block}), so the same arguments give the same bytes. */
osp_status osp_shapes_render(const osp_shapes_attributes *attributes, uint64_t seed, uint64_t index, int64_t frames,
                             int64_t height, int64_t width, osp_frames *out);

#endif
