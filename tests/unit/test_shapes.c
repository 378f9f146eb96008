/* The shapes world and ShapesBench (src/pipeline/shapes_world.h, shapes_bench.h):
 *   - caption ↔ attributes round trip for every combination; words outside the grammar get an error
 *     naming the word;
 *   - every ground-truth video (every combination × 3 seeds at 8 × 32 × 32 and 8 × 48 × 64, × 1 seed
 *     at 3 × 32 × 40 and 16 × 64 × 48; frames × height × width) scores 100% on its own caption,
 *     with consistency 1;
 *   - a video with exactly one attribute changed (every combination × every attribute, the other
 *     allowed values taken in turn) loses exactly that attribute;
 *   - ground truth plus Gaussian pixel noise (σ = 10/255 of the range), or blurred by a Gaussian
 *     of σ = 0.8 pixel (a generator's soft edges), still scores 100%;
 *   - the held-out rule: 14 triples, the training sampler never emits one over 200000 draws, and
 *     samples every training triple, size and background about equally often (±15%);
 *   - the fixed prompt sets follow their split, cover every held-out triple, and equal the files
 *     models/shapes/prompts-{train,heldout}.txt;
 *   - determinism: the same (seed, index) gives the same bytes (pinned by a checksum), and the
 *     same video the same score;
 *   - a video without an object scores 1/6 (the background) with a reason; bad sizes are errors.
 * Prints the range of the shape moments over the ground truth, and ShapesBench's time per video
 * (8 frames of 32 × 32 and 48 × 64). */
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/rng.h"
#include "core/status.h"
#include "harness.h"
#include "pipeline/shapes_bench.h"
#include "pipeline/shapes_world.h"

typedef struct {
  int64_t frames, height, width;
} geometry;

static const geometry GEOMETRIES[] = {{8, 32, 32}, {8, 48, 64}, {3, 40, 32}, {16, 64, 48}};
enum { GEOMETRY_COUNT = sizeof GEOMETRIES / sizeof GEOMETRIES[0], SEEDS = 3, SHOWN_FAILURES = 5 };

/* Calls visit(attributes) for every valid combination of the five attributes; returns the count. */
static int for_each_combination(void (*visit)(const osp_shapes_attributes *, void *), void *context) {
  int values[OSP_SHAPES_ATTRIBUTES][OSP_SHAPES_MAX_VALUES], counts[OSP_SHAPES_ATTRIBUTES];
  int total = 1, visited = 0;
  for (int a = 0; a < OSP_SHAPES_ATTRIBUTES; a++) {
    counts[a] = osp_shapes_values((osp_shapes_attribute)a, values[a]);
    total *= counts[a];
  }
  for (int k = 0; k < total; k++) {
    osp_shapes_attributes attributes;
    for (int a = 0, rest = k; a < OSP_SHAPES_ATTRIBUTES; rest /= counts[a], a++)
      attributes.value[a] = values[a][rest % counts[a]];
    if (osp_shapes_check(&attributes) != OSP_OK) continue;
    visit(&attributes, context);
    visited++;
  }
  return visited;
}

static bool same_attributes(const osp_shapes_attributes *a, const osp_shapes_attributes *b) {
  return memcmp(a->value, b->value, sizeof a->value) == 0;
}

/* ---- captions ---- */

static void check_round_trip(const osp_shapes_attributes *attributes, void *context) {
  char caption[OSP_SHAPES_CAPTION_MAX];
  osp_shapes_attributes parsed;
  bool ok = osp_shapes_caption(attributes, caption, sizeof caption) == OSP_OK &&
            osp_shapes_parse(caption, &parsed) == OSP_OK && same_attributes(&parsed, attributes);
  if (!ok) fprintf(stderr, "round trip failed: \"%s\" (%s)\n", caption, osp_last_error());
  *(int *)context += !ok;
}

/* Parsing `caption` fails with a message containing every one of `words` (NULL-terminated). */
static void check_parse_error(const char *caption, const char *const *words) {
  osp_shapes_attributes parsed;
  bool failed = osp_shapes_parse(caption, &parsed) == OSP_ERR_ARGUMENT;
  CHECK(failed);
  for (int i = 0; failed && words[i]; i++) {
    bool named = strstr(osp_last_error(), words[i]) != NULL;
    if (!named) fprintf(stderr, "error for \"%s\" lacks \"%s\": %s\n", caption, words[i], osp_last_error());
    CHECK(named);
  }
}

static void test_captions(void) {
  int failures = 0;
  const int combinations = for_each_combination(check_round_trip, &failures);
  CHECK(combinations == 2 * 3 * 8 * (3 * 5 + 3 * 4)); /* green, blue and white objects have 4 backgrounds */
  CHECK(failures == 0);

  osp_shapes_attributes a;
  CHECK(osp_shapes_parse("a small red circle moving right on a blue background", &a) == OSP_OK);
  CHECK(a.value[OSP_SHAPES_SIZE] == OSP_SHAPES_SMALL && a.value[OSP_SHAPES_COLOUR] == OSP_SHAPES_RED &&
        a.value[OSP_SHAPES_SHAPE] == OSP_SHAPES_CIRCLE && a.value[OSP_SHAPES_MOTION] == OSP_SHAPES_RIGHT &&
        a.value[OSP_SHAPES_BACKGROUND] == OSP_SHAPES_BLUE);
  CHECK(osp_shapes_parse("  A Large WHITE square\tstaying still on a black background ", &a) == OSP_OK);
  char caption[OSP_SHAPES_CAPTION_MAX];
  CHECK(osp_shapes_caption(&a, caption, sizeof caption) == OSP_OK &&
        !strcmp(caption, "a large white square staying still on a black background"));
  CHECK(osp_shapes_caption(&a, caption, 20) == OSP_ERR_ARGUMENT);

  check_parse_error("a small reed circle moving right on a blue background",
                    (const char *[]){"reed", "word 3", "colour", NULL});
  check_parse_error("a small red circle moving sideways on a blue background",
                    (const char *[]){"sideways", "word 6", "motion", NULL});
  check_parse_error("a small red hexagon bouncing on a blue background", (const char *[]){"hexagon", "shape", NULL});
  check_parse_error("a tiny red circle bouncing on a blue background", (const char *[]){"tiny", "size", NULL});
  check_parse_error("a small red circle bouncing on a pink background", (const char *[]){"pink", "background", NULL});
  check_parse_error("a small red circle bouncing on a blue",
                    (const char *[]){"ends after word 8", "\"background\"", NULL});
  check_parse_error("a small red circle bouncing on a blue background please",
                    (const char *[]){"please", "word 10", NULL});
  check_parse_error("a small blue circle bouncing on a blue background", (const char *[]){"object's colour", NULL});
  check_parse_error("", (const char *[]){"ends after word 0", NULL});
  check_parse_error("the small red circle bouncing on a blue background", (const char *[]){"the", "word 1", NULL});
  a.value[OSP_SHAPES_MOTION] = 8;
  CHECK(osp_shapes_check(&a) == OSP_ERR_ARGUMENT && strstr(osp_last_error(), "motion"));
}

/* ---- ground truth, changed attributes, noise ---- */

typedef struct {
  geometry g;
  uint64_t seed;
  float noise; /* σ of the Gaussian pixel noise, in 0..255 units; 0 for none */
  double blur; /* σ of a Gaussian blur, in pixels; 0 for none */
  int videos, failures, combinations;
  double bench_seconds;
  double moment_range[OSP_SHAPES_SHAPES][2][2]; /* [true shape][triangle, square][min, max] */
} scoring;

static void add_noise(osp_frames *video, float sigma, uint64_t seed) {
  const int64_t n = video->frames * video->height * video->width * 3;
  float *z = malloc(sizeof(float) * (size_t)n);
  osp_randn(seed, 0, 0, z, (size_t)n);
  for (int64_t i = 0; i < n; i++) {
    const float v = (float)video->rgb[i] + sigma * z[i];
    video->rgb[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v + 0.5f);
  }
  free(z);
}

/* Blurs each frame by a Gaussian of σ pixels (radius ⌈3σ⌉, edges clamped), rounding to bytes. */
static void add_blur(osp_frames *video, double sigma) {
  enum { MAX_RADIUS = 8 };
  const int radius = (int)ceil(3 * sigma);
  double kernel[2 * MAX_RADIUS + 1], sum = 0;
  for (int i = -radius; i <= radius; i++) sum += kernel[i + radius] = exp(-0.5 * i * i / (sigma * sigma));
  const int64_t h = video->height, w = video->width;
  float *rows = malloc(sizeof(float) * (size_t)(h * w * 3));
  for (int64_t f = 0; f < video->frames; f++) {
    for (int pass = 0; pass < 2; pass++) /* along x into rows, then along y back into the frame */
      for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++)
          for (int c = 0; c < 3; c++) {
            double total = 0;
            for (int i = -radius; i <= radius; i++) {
              const int64_t xi = pass ? x : x + i < 0 ? 0 : x + i >= w ? w - 1 : x + i;
              const int64_t yi = !pass ? y : y + i < 0 ? 0 : y + i >= h ? h - 1 : y + i;
              total +=
                  kernel[i + radius] * (pass ? rows[(yi * w + xi) * 3 + c] : osp_frames_pixel(video, f, yi, xi)[c]);
            }
            if (pass)
              osp_frames_pixel(video, f, y, x)[c] = (uint8_t)(total / sum + 0.5);
            else
              rows[(y * w + x) * 3 + c] = (float)(total / sum);
          }
  }
  free(rows);
}

static void note_moments(scoring *s, int shape, const osp_shapes_score *score) {
  const double moments[2] = {score->triangle_moment, score->square_moment};
  for (int k = 0; k < 2; k++) {
    double *range = s->moment_range[shape][k];
    if (moments[k] < range[0]) range[0] = moments[k];
    if (moments[k] > range[1]) range[1] = moments[k];
  }
}

/* Renders `shown`, scores it against `caption_of`; reports when the set of wrong attributes is not
 * exactly `want_wrong` (-1: none). */
static void score_video(scoring *s, const osp_shapes_attributes *shown, const osp_shapes_attributes *caption_of,
                        int want_wrong) {
  osp_frames video;
  osp_shapes_score score;
  bool ok =
      osp_shapes_render(shown, s->seed, (uint64_t)s->videos, s->g.frames, s->g.height, s->g.width, &video) == OSP_OK;
  if (ok && s->noise > 0) add_noise(&video, s->noise, s->seed * 1000003u + (uint64_t)s->videos);
  if (ok && s->blur > 0) add_blur(&video, s->blur);
  const double start = osp_seconds();
  ok = ok && osp_shapes_bench_attributes(&video, caption_of, &score) == OSP_OK;
  s->bench_seconds += osp_seconds() - start;
  for (int a = 0; ok && a < OSP_SHAPES_SCORED; a++) ok = score.correct[a] == (a != want_wrong);
  if (ok && want_wrong < 0) ok = score.consistency == 1.0 && score.overall == 1.0;
  if (ok && want_wrong < 0) note_moments(s, shown->value[OSP_SHAPES_SHAPE], &score);
  if (!ok && s->failures++ < SHOWN_FAILURES) {
    char shown_caption[OSP_SHAPES_CAPTION_MAX], expected_caption[OSP_SHAPES_CAPTION_MAX];
    osp_shapes_caption(shown, shown_caption, sizeof shown_caption);
    osp_shapes_caption(caption_of, expected_caption, sizeof expected_caption);
    fprintf(stderr,
            "%lldx%lldx%lld seed %llu video %d: \"%s\" scored as \"%s\": %s (area %.3f triangle %.4f "
            "square %.4f growth %.2f dx %.3f dy %.3f consistency %.3f)\n",
            (long long)s->g.frames, (long long)s->g.width, (long long)s->g.height, (unsigned long long)s->seed,
            s->videos, shown_caption, expected_caption, score.reason, score.area, score.triangle_moment,
            score.square_moment, score.growth, score.dx, score.dy, score.consistency);
  }
  s->videos++;
  osp_frames_free(&video);
}

static void score_ground_truth(const osp_shapes_attributes *attributes, void *context) {
  score_video(context, attributes, attributes, -1);
}

/* The video of `attributes` with one attribute changed loses exactly that attribute, for each
 * attribute. Combination k changes each attribute to alternative k mod n of its n allowed other
 * values, so every value is tried; the combinations take the first two geometries in turn. */
static void score_changed(const osp_shapes_attributes *attributes, void *context) {
  scoring *s = context;
  const int k = s->combinations++;
  s->g = GEOMETRIES[k % 2];
  for (int a = 0; a < OSP_SHAPES_ATTRIBUTES; a++) {
    int values[OSP_SHAPES_MAX_VALUES], n = 0;
    osp_shapes_attributes alternatives[OSP_SHAPES_MAX_VALUES];
    const int count = osp_shapes_values((osp_shapes_attribute)a, values);
    for (int i = 0; i < count; i++) {
      alternatives[n] = *attributes;
      alternatives[n].value[a] = values[i];
      n += values[i] != attributes->value[a] && osp_shapes_check(&alternatives[n]) == OSP_OK;
    }
    score_video(s, &alternatives[k % n], attributes, a);
  }
}

static void print_moments(const char *what, const double range[OSP_SHAPES_SHAPES][2][2]) {
  printf(
      "%s: moments (triangle; square) circle [%+.4f, %+.4f; %+.4f, %+.4f] square [%+.4f, %+.4f; %+.4f, %+.4f] "
      "triangle [%+.4f, %+.4f; %+.4f, %+.4f]\n",
      what, range[0][0][0], range[0][0][1], range[0][1][0], range[0][1][1], range[1][0][0], range[1][0][1],
      range[1][1][0], range[1][1][1], range[2][0][0], range[2][0][1], range[2][1][0], range[2][1][1]);
}

/* An empty range: min +1, max −1. */
static void reset_moments(double range[OSP_SHAPES_SHAPES][2][2]) {
  for (int shape = 0; shape < OSP_SHAPES_SHAPES; shape++)
    for (int k = 0; k < 2; k++) {
      range[shape][k][0] = 1;
      range[shape][k][1] = -1;
    }
}

static void test_ground_truth(void) {
  double range[OSP_SHAPES_SHAPES][2][2];
  reset_moments(range);
  for (int g = 0; g < GEOMETRY_COUNT; g++) {
    for (uint64_t seed = 1; seed <= (g < 2 ? SEEDS : 1); seed++) {
      scoring s = {.g = GEOMETRIES[g], .seed = seed};
      memcpy(s.moment_range, range, sizeof range);
      for_each_combination(score_ground_truth, &s);
      memcpy(range, s.moment_range, sizeof range);
      CHECK(s.failures == 0);
      if (s.failures)
        fprintf(stderr, "ground truth %lldx%lldx%lld seed %llu: %d of %d videos failed\n", (long long)s.g.frames,
                (long long)s.g.width, (long long)s.g.height, (unsigned long long)seed, s.failures, s.videos);
    }
  }
  print_moments("ground truth", range);
}

static void test_changed_attributes(void) {
  scoring s = {.seed = 11};
  for_each_combination(score_changed, &s);
  CHECK(s.failures == 0);
  printf("one attribute changed (8x32x32 and 8x64x48): %d videos, %d did not lose exactly that attribute\n", s.videos,
         s.failures);
}

static void test_noise_and_blur(void) {
  for (int g = 0; g < 2; g++) {
    scoring s = {.g = GEOMETRIES[g], .seed = 5, .noise = 10.0f};
    reset_moments(s.moment_range);
    for_each_combination(score_ground_truth, &s);
    CHECK(s.failures == 0);
    printf("ground truth + noise sigma 10, %lldx%lldx%lld: %d videos, %d below 100%%; ShapesBench %.3f ms per video\n",
           (long long)s.g.frames, (long long)s.g.width, (long long)s.g.height, s.videos, s.failures,
           1e3 * s.bench_seconds / s.videos);
    print_moments("  with noise", s.moment_range);
    scoring blurred = {.g = GEOMETRIES[g], .seed = 6, .blur = 0.8};
    reset_moments(blurred.moment_range);
    for_each_combination(score_ground_truth, &blurred);
    CHECK(blurred.failures == 0);
    printf("ground truth blurred (sigma 0.8 px), %lldx%lldx%lld: %d videos, %d below 100%%\n", (long long)s.g.frames,
           (long long)s.g.width, (long long)s.g.height, blurred.videos, blurred.failures);
    print_moments("  blurred", blurred.moment_range);
  }
}

/* ---- splits and prompt sets ---- */

static int triple_of(const osp_shapes_attributes *a) {
  return (a->value[OSP_SHAPES_COLOUR] * OSP_SHAPES_SHAPES + a->value[OSP_SHAPES_SHAPE]) * OSP_SHAPES_MOTIONS +
         a->value[OSP_SHAPES_MOTION];
}

static void test_heldout_rule(void) {
  int heldout = 0, motions_held[OSP_SHAPES_MOTIONS] = {0};
  for (int t = 0; t < OSP_SHAPES_TRIPLES; t++) {
    const int c = t / 24, s = t / 8 % 3, m = t % 8;
    if (osp_shapes_is_heldout(c, s, m)) {
      heldout++;
      motions_held[m]++;
    }
  }
  CHECK(heldout == 14);
  for (int m = 0; m < OSP_SHAPES_MOTIONS; m++) CHECK(motions_held[m] >= 1); /* every motion is tested */

  enum { DRAWS = 200000 };
  static int triple_count[OSP_SHAPES_TRIPLES];
  int size_count[2] = {0}, background_count[OSP_SHAPES_PALETTE] = {0}, bad = 0;
  for (int i = 0; i < DRAWS; i++) {
    osp_shapes_attributes a;
    osp_shapes_sample(42, (uint64_t)i, OSP_SHAPES_TRAIN, &a);
    bad += osp_shapes_check(&a) != OSP_OK || osp_shapes_split_of(&a) != OSP_SHAPES_TRAIN;
    triple_count[triple_of(&a)]++;
    size_count[a.value[OSP_SHAPES_SIZE]]++;
    background_count[a.value[OSP_SHAPES_BACKGROUND]]++;
  }
  CHECK(bad == 0);
  int off = 0;
  for (int t = 0; t < OSP_SHAPES_TRIPLES; t++) {
    const bool held = osp_shapes_is_heldout(t / 24, t / 8 % 3, t % 8);
    const double want = held ? 0.0 : DRAWS / 130.0;
    off += held ? triple_count[t] != 0 : fabs(triple_count[t] - want) > 0.15 * want;
  }
  CHECK(off == 0);
  CHECK(fabs(size_count[0] - DRAWS / 2.0) < 0.02 * DRAWS);
  /* Each background is allowed for 6 or 5 of the 6 colours (the colour's own is excluded). */
  CHECK(background_count[OSP_SHAPES_RED] == 0 && background_count[OSP_SHAPES_PURPLE] == 0);
  for (int b = OSP_SHAPES_BLACK; b <= OSP_SHAPES_GRAY; b++) CHECK(background_count[b] > 0.2 * DRAWS);

  int held_bad = 0;
  for (int i = 0; i < 20000; i++) {
    osp_shapes_attributes a;
    osp_shapes_sample(42, (uint64_t)i, OSP_SHAPES_HELDOUT, &a);
    held_bad += osp_shapes_check(&a) != OSP_OK || osp_shapes_split_of(&a) != OSP_SHAPES_HELDOUT;
  }
  CHECK(held_bad == 0);
  osp_shapes_attributes first, again;
  osp_shapes_sample(9, 12345, OSP_SHAPES_TRAIN, &first);
  osp_shapes_sample(9, 12345, OSP_SHAPES_TRAIN, &again);
  CHECK(same_attributes(&first, &again));
}

/* The file's lines equal the split's prompts, one per line. */
static void check_prompt_file(osp_shapes_split split) {
  /* The repository root from this file's path (CMake compiles it by its absolute path). */
  const char *self = __FILE__, *tail = strstr(self, "tests/unit/test_shapes.c");
  char path[1024];
  snprintf(path, sizeof path, "%.*smodels/shapes/prompts-%s.txt", (int)(tail ? tail - self : 0), self,
           osp_shapes_split_name(split));
  FILE *file = fopen(path, "r");
  CHECK(file != NULL);
  if (!file) {
    fprintf(stderr, "cannot open %s\n", path);
    return;
  }
  char line[256];
  int i = 0, mismatched = 0;
  for (; fgets(line, sizeof line, file); i++) {
    line[strcspn(line, "\n")] = '\0';
    osp_shapes_attributes a;
    char caption[OSP_SHAPES_CAPTION_MAX] = "";
    if (i < OSP_SHAPES_PROMPTS && osp_shapes_prompt(split, i, &a) == OSP_OK)
      osp_shapes_caption(&a, caption, sizeof caption);
    mismatched += strcmp(line, caption) != 0;
  }
  fclose(file);
  CHECK(i == OSP_SHAPES_PROMPTS && mismatched == 0);
}

static void test_prompt_sets(void) {
  for (int split = OSP_SHAPES_TRAIN; split <= OSP_SHAPES_HELDOUT; split++) {
    bool covered[OSP_SHAPES_TRIPLES] = {false};
    char captions[OSP_SHAPES_PROMPTS][OSP_SHAPES_CAPTION_MAX];
    int wrong_split = 0, duplicates = 0, sizes[2] = {0};
    for (int i = 0; i < OSP_SHAPES_PROMPTS; i++) {
      osp_shapes_attributes a;
      CHECK(osp_shapes_prompt((osp_shapes_split)split, i, &a) == OSP_OK);
      CHECK(osp_shapes_caption(&a, captions[i], sizeof captions[i]) == OSP_OK);
      wrong_split += osp_shapes_split_of(&a) != (osp_shapes_split)split;
      covered[triple_of(&a)] = true;
      sizes[a.value[OSP_SHAPES_SIZE]]++;
      for (int j = 0; j < i; j++) duplicates += !strcmp(captions[i], captions[j]);
    }
    CHECK(wrong_split == 0 && duplicates == 0 && sizes[0] == sizes[1]);
    int missing = 0;
    for (int t = 0; t < OSP_SHAPES_TRIPLES; t++)
      missing += split == OSP_SHAPES_HELDOUT && osp_shapes_is_heldout(t / 24, t / 8 % 3, t % 8) && !covered[t];
    CHECK(missing == 0);
    check_prompt_file((osp_shapes_split)split);
  }
  osp_shapes_attributes a;
  CHECK(osp_shapes_prompt(OSP_SHAPES_TRAIN, OSP_SHAPES_PROMPTS, &a) == OSP_ERR_ARGUMENT);
}

/* ---- determinism, empty videos, bad sizes ---- */

/* FNV-1a, 64 bits. */
static uint64_t checksum(const osp_frames *v) {
  uint64_t h = 14695981039346656037ull;
  for (int64_t i = 0; i < v->frames * v->height * v->width * 3; i++) h = (h ^ v->rgb[i]) * 1099511628211ull;
  return h;
}

static void test_determinism(void) {
  osp_shapes_attributes a;
  CHECK(osp_shapes_parse("a small yellow triangle bouncing on a gray background", &a) == OSP_OK);
  osp_frames one, two, other;
  CHECK(osp_shapes_render(&a, 7, 3, 8, 32, 32, &one) == OSP_OK);
  CHECK(osp_shapes_render(&a, 7, 3, 8, 32, 32, &two) == OSP_OK);
  CHECK(osp_shapes_render(&a, 7, 4, 8, 32, 32, &other) == OSP_OK);
  CHECK(memcmp(one.rgb, two.rgb, 8 * 32 * 32 * 3) == 0);
  CHECK(memcmp(one.rgb, other.rgb, 8 * 32 * 32 * 3) != 0);
  const uint64_t pinned =
      3114014304528706355ull; /* the world's bytes for this video: changes only when the world does */
  if (checksum(&one) != pinned) fprintf(stderr, "checksum %llu\n", (unsigned long long)checksum(&one));
  CHECK(checksum(&one) == pinned);
  osp_shapes_score first, second;
  CHECK(osp_shapes_bench_attributes(&one, &a, &first) == OSP_OK);
  CHECK(osp_shapes_bench_attributes(&two, &a, &second) == OSP_OK);
  CHECK(memcmp(&first, &second, sizeof first) == 0);
  osp_frames_free(&one);
  osp_frames_free(&two);
  osp_frames_free(&other);
}

static void test_empty_and_bad(void) {
  osp_frames plain;
  CHECK(osp_frames_alloc(8, 32, 32, &plain) == OSP_OK); /* all black */
  osp_shapes_score score;
  CHECK(osp_shapes_bench(&plain, "a large red square moving up on a black background", &score) == OSP_OK);
  CHECK(score.frames_with_object == 0 && score.correct[OSP_SHAPES_BACKGROUND]);
  CHECK_NEAR(score.overall, 1.0 / 6.0, 1e-12);
  CHECK(strstr(score.reason, "no object") != NULL);
  for (int a = 0; a < OSP_SHAPES_SCORED; a++)
    CHECK(a == OSP_SHAPES_BACKGROUND || (!score.correct[a] && score.measured[a] == -1));
  CHECK(osp_shapes_bench(&plain, "a large red squar moving up on a black background", &score) == OSP_ERR_ARGUMENT &&
        strstr(osp_last_error(), "squar"));
  osp_frames_free(&plain);

  osp_frames tiny, out;
  CHECK(osp_frames_alloc(2, 4, 4, &tiny) == OSP_OK);
  CHECK(osp_shapes_bench(&tiny, "a large red square moving up on a black background", &score) == OSP_ERR_SHAPE);
  osp_frames_free(&tiny);
  osp_shapes_attributes a;
  CHECK(osp_shapes_parse("a large red square moving up on a black background", &a) == OSP_OK);
  CHECK(osp_shapes_render(&a, 1, 0, 2, 32, 32, &out) == OSP_ERR_SHAPE && out.rgb == NULL);
  CHECK(osp_shapes_render(&a, 1, 0, 8, 16, 32, &out) == OSP_ERR_SHAPE && strstr(osp_last_error(), "16"));
  a.value[OSP_SHAPES_BACKGROUND] = OSP_SHAPES_RED;
  CHECK(osp_shapes_render(&a, 1, 0, 8, 32, 32, &out) == OSP_ERR_ARGUMENT);
}

int main(void) {
  test_captions();
  test_heldout_rule();
  test_prompt_sets();
  test_determinism();
  test_empty_and_bad();
  test_ground_truth();
  test_changed_attributes();
  test_noise_and_blur();
  return test_summary("test_shapes");
}
