/* ShapesBench: scores a video against its shapes-world prompt (shapes_world.h) by measuring it, with
 * no learned model. Deterministic (fixed thresholds, sums in a fixed order: the same bytes give the
 * same score) and fast (a few passes over the pixels); it is also the reward of RL post-training.
 *
 * Measurement (m = min(height, width); distances in RGB units 0..255):
 *   background  each border pixel of every frame votes for its nearest palette colour; the winner
 *               is the background, and the per-channel median of its voters is the background's
 *               RGB as rendered.
 *   object      in each frame, the pixels farther than 80 from the background's RGB, and of them
 *               the largest 8-connected group; a frame holds the object when that group has at
 *               least max(4, 0.01·m²) pixels. Per frame: area, centroid, bounding box.
 *   colour      the nearest palette colour of the object's median: the per-channel median of its
 *               interior pixels (those whose 8 neighbours all belong to it: no edge blur mixes
 *               them with the background), all frames together; of all its pixels if none is
 *               interior.
 *   shape       from soft moments, which an isotropic blur leaves unchanged: each pixel within 2 of
 *               the group's box gets a coverage α ∈ [0, 1] from its colour (its position between
 *               the background and the frame's object median, the outer 10% at each end cut as
 *               noise); about the soft centroid, z = dx + i·dy (y down),
 *                 triangle moment = Σ Im(α·z³) / Σ M^2.5   (apex-up triangle 0.068, others 0)
 *                 square moment   = Σ Re(α·z⁴) / Σ M³     (square −1/60, circle 0, triangle 0.002)
 *               with M = Σα in each frame, summed over the frames.
 *               Triangle if the triangle moment ≥ 0.034, else square if the square moment
 *               ≤ −1/120, else circle (each threshold halfway to the ideal value).
 *   size        large if the mean area ≥ √(small·large) of the world's areas = 0.098·m², else small.
 *   motion      over the frames holding the object, with q = max(1, ⌊n/4⌋):
 *               growth = mean area of the last q frames / of the first q: growing if ≥ 1.6,
 *               shrinking if ≤ 1/1.6; else bouncing if along x or y (centroid / width, height)
 *               an interior frame is an extreme at least 0.08 beyond both the first and the last
 *               frame; else moving left/right/up/down by the larger of the net displacements dx,
 *               dy when it is ≥ 0.12; else staying still if the centroid's range is ≤ 0.05 on both
 *               axes; else unclear (wrong).
 *   consistency the mean over all frames of a frame's score: 0 without the object, else
 *               (1 + [one connected object: the group holds ≥ 95% of the frame's far pixels]
 *                  + [its median's colour is the video's colour] + [its shape is the video's]) / 4.
 *               The sixth attribute, "consistent", is correct when consistency ≥ 0.9.
 *
 * overall = (number of correct attributes among background, colour, shape, size, motion and
 * consistent) / 6. Without an object every attribute but the background is wrong (and the reason
 * says why). */
#ifndef OSP_PIPELINE_SHAPES_BENCH_H
#define OSP_PIPELINE_SHAPES_BENCH_H

#include <stdbool.h>

#include "core/frames.h"
#include "osp.h"
#include "pipeline/shapes_world.h"

/* The scored attributes: the caption's five (osp_shapes_attribute), then temporal consistency. */
enum { OSP_SHAPES_CONSISTENT = OSP_SHAPES_ATTRIBUTES, OSP_SHAPES_SCORED };

typedef struct {
  osp_shapes_attributes expected;
  /* What was measured, in the attribute's values (colours: palette indices; consistent: 1 or 0);
   * -1 where nothing could be measured (no object, unclear motion). */
  int measured[OSP_SHAPES_SCORED];
  bool correct[OSP_SHAPES_SCORED];
  double overall;     /* correct attributes / 6 */
  double consistency; /* in [0, 1], see above */
  int frames_with_object;
  /* The measurements behind the verdicts (0 without an object). */
  double area;            /* mean object area / m² */
  double triangle_moment; /* apex-up triangle 0.068, circle and square 0 */
  double square_moment;   /* square −1/60, circle 0 */
  double growth;          /* area of the last frames / the first */
  double dx, dy;          /* net centroid displacement / width, / height */
  char reason[320];       /* "" when all is correct; else each wrong attribute, what was expected and found */
} osp_shapes_score;

/* Scores the video (≥ 1 frame of ≥ 8 × 8 pixels) against the prompt, which must parse
 * (osp_shapes_parse: an error names the word that does not). */
osp_status osp_shapes_bench(const osp_frames *video, const char *prompt, osp_shapes_score *out);
/* The same against valid attributes. */
osp_status osp_shapes_bench_attributes(const osp_frames *video, const osp_shapes_attributes *expected,
                                       osp_shapes_score *out);

/* "size", ..., "background", "consistent". */
const char *osp_shapes_scored_name(int attribute);
/* The measured value's words ("red", "moving left", "yes"), or "none". */
const char *osp_shapes_measured_name(const osp_shapes_score *score, int attribute);

#endif
