/* osp eval: ShapesBench (src/pipeline/shapes_bench.h) on a video file, or on the shapes world's own
 * videos of a fixed prompt set (a self-check that should read 100%). Prints a table and writes JSON. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "core/clock.h"
#include "core/status.h"
#include "pipeline/shapes_bench.h"
#include "pipeline/shapes_world.h"
#include "pipeline/t2v.h"
#include "video/video.h"

/* The scores of a run, and what the table and the JSON say about it. */
typedef struct {
  const char *mode; /* "ground-truth" or "video" */
  int count;
  osp_shapes_score scores[OSP_SHAPES_PROMPTS];
  double bench_seconds;
} evaluation;

/* ---- the summary ---- */

typedef struct {
  double accuracy[OSP_SHAPES_SCORED]; /* the share of videos with the attribute correct */
  double consistency, overall;        /* means over the videos */
} summary;

static summary summarize(const evaluation *e) {
  summary m = {{0}, 0, 0};
  for (int i = 0; i < e->count; i++) {
    for (int a = 0; a < OSP_SHAPES_SCORED; a++) m.accuracy[a] += e->scores[i].correct[a];
    m.consistency += e->scores[i].consistency;
    m.overall += e->scores[i].overall;
  }
  for (int a = 0; a < OSP_SHAPES_SCORED; a++) m.accuracy[a] /= e->count;
  m.consistency /= e->count;
  m.overall /= e->count;
  return m;
}

static void print_accuracy(const summary *m) {
  printf("%-12s %s\n", "attribute", "accuracy");
  for (int a = 0; a < OSP_SHAPES_SCORED; a++)
    printf("%-12s %6.1f%%\n", osp_shapes_scored_name(a), 100 * m->accuracy[a]);
}

/* Consistency, overall, what went wrong in each imperfect video, and the time per video. */
static void print_summary(const evaluation *e, const summary *m) {
  printf("%-12s %7.3f\n", "consistency", m->consistency);
  printf("%-12s %6.1f%%  (correct attributes / 6%s)\n", "overall", 100 * m->overall,
         e->count > 1 ? ", mean over the videos" : "");
  for (int i = 0; i < e->count; i++) {
    if (e->scores[i].overall == 1.0) continue;
    char caption[OSP_SHAPES_CAPTION_MAX];
    osp_shapes_caption(&e->scores[i].expected, caption, sizeof caption);
    printf("  \"%s\": %s\n", caption, e->scores[i].reason);
  }
  printf("ShapesBench: %.3f ms per video\n", 1e3 * e->bench_seconds / e->count);
}

/* ---- the JSON ---- */

static json_t *result_json(const osp_shapes_score *s) {
  char caption[OSP_SHAPES_CAPTION_MAX];
  osp_shapes_caption(&s->expected, caption, sizeof caption);
  json_t *measured = json_object(), *correct = json_object();
  for (int a = 0; a < OSP_SHAPES_SCORED; a++) {
    json_object_set_new(measured, osp_shapes_scored_name(a), json_string(osp_shapes_measured_name(s, a)));
    json_object_set_new(correct, osp_shapes_scored_name(a), json_boolean(s->correct[a]));
  }
  return json_pack("{s:s, s:f, s:f, s:o, s:o, s:i, s:{s:f, s:f, s:f, s:f, s:f, s:f}, s:s}", "prompt", caption,
                   "overall", s->overall, "consistency", s->consistency, "measured", measured, "correct", correct,
                   "frames_with_object", s->frames_with_object, "measurements", "area", s->area, "triangle_moment",
                   s->triangle_moment, "square_moment", s->square_moment, "growth", s->growth, "dx", s->dx, "dy", s->dy,
                   "reason", s->reason);
}

/* Writes the summary and every result to `path` (through a temporary file renamed into place). */
static osp_status write_json(const evaluation *e, const summary *m, json_t *about, const char *path) {
  json_t *accuracies = json_object(), *results = json_array();
  for (int a = 0; a < OSP_SHAPES_SCORED; a++)
    json_object_set_new(accuracies, osp_shapes_scored_name(a), json_real(m->accuracy[a]));
  for (int i = 0; i < e->count; i++) json_array_append_new(results, result_json(&e->scores[i]));
  json_object_set_new(about, "mode", json_string(e->mode));
  json_object_set_new(about, "videos", json_integer(e->count));
  json_object_set_new(about, "accuracy", accuracies);
  json_object_set_new(about, "consistency", json_real(m->consistency));
  json_object_set_new(about, "overall", json_real(m->overall));
  json_object_set_new(about, "ms_per_video", json_real(1e3 * e->bench_seconds / e->count));
  json_object_set_new(about, "results", results);
  char partial[4096];
  snprintf(partial, sizeof partial, "%s.partial", path);
  const int rc = json_dump_file(about, partial, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
  if (rc != 0 || rename(partial, path) != 0) {
    remove(partial);
    return osp_fail(OSP_ERR_IO, "%s: cannot write the JSON results", path);
  }
  return OSP_OK;
}

/* ---- the two modes ---- */

/* The world's default size (shapes_world.h) as text: the options' defaults and their help. */
#define QUOTE(x) #x
#define TEXT_OF(x) QUOTE(x)
#define DEFAULT_FRAMES TEXT_OF(OSP_SHAPES_DEFAULT_FRAMES)
#define DEFAULT_SIDE TEXT_OF(OSP_SHAPES_DEFAULT_SIDE)

typedef struct {
  const char *split, *seed, *frames, *height, *width, *video, *prompt, *json, *model, *device, *steps, *schedule, *quant, *count;
  int ground_truth, list_prompts;
  cli_list loras;
} eval_args;

static osp_status score_timed(evaluation *e, const osp_frames *video, const osp_shapes_attributes *expected) {
  const double start = osp_seconds();
  osp_status status = osp_shapes_bench_attributes(video, expected, &e->scores[e->count]);
  e->bench_seconds += osp_seconds() - start;
  if (status == OSP_OK) e->count++;
  return status;
}

/* Renders each prompt of the split (seed, prompt number) and scores it against its own caption. */
static osp_status eval_ground_truth(osp_shapes_split split, uint64_t seed, const long long size[3], evaluation *e) {
  for (int i = 0; i < OSP_SHAPES_PROMPTS; i++) {
    osp_shapes_attributes prompt;
    osp_frames video;
    OSP_TRY(osp_shapes_prompt(split, i, &prompt));
    OSP_TRY(osp_shapes_render(&prompt, seed, (uint64_t)i, size[0], size[1], size[2], &video));
    osp_status status = score_timed(e, &video, &prompt);
    osp_frames_free(&video);
    OSP_TRY(status);
  }
  return OSP_OK;
}

static osp_status eval_video(const char *path, const char *prompt, evaluation *e, json_t *about) {
  osp_shapes_attributes expected;
  OSP_TRY(osp_shapes_parse(prompt, &expected));
  osp_frames video;
  double fps = 0;
  OSP_TRY(osp_video_read(path, &video, &fps));
  printf("ShapesBench: %s (%lld frames of %lldx%lld) against \"%s\"\n", path, (long long)video.frames,
         (long long)video.width, (long long)video.height, prompt);
  json_object_set_new(about, "video", json_string(path));
  json_object_set_new(about, "fps", json_real(fps));
  osp_status status = score_timed(e, &video, &expected);
  osp_frames_free(&video);
  if (status != OSP_OK) return status;
  const osp_shapes_score *s = &e->scores[0];
  printf("%-12s %-14s %-14s %s\n", "attribute", "expected", "measured", "correct");
  for (int a = 0; a < OSP_SHAPES_SCORED; a++)
    printf("%-12s %-14s %-14s %s\n", osp_shapes_scored_name(a),
           a == OSP_SHAPES_CONSISTENT ? "yes" : osp_shapes_value_name((osp_shapes_attribute)a, expected.value[a]),
           osp_shapes_measured_name(s, a), s->correct[a] ? "yes" : "no");
  return OSP_OK;
}

/* Generates the video of each of the split's first `count` prompts with the model (prompt i with
 * seed + i, the model's sampling defaults but `steps` where > 0) and scores it. */
static osp_status eval_model(const eval_args *a, osp_shapes_split split, uint64_t seed, int steps, int count,
                             evaluation *e, json_t *about) {
  osp_device device;
  OSP_TRY(cli_parse_device(a->device, OSP_CPU, &device));
  osp_t2v_model model;
  osp_lora_spec loras[CLI_LIST_MAX];
  const osp_t2v_overrides overrides = {.schedule = a->schedule, .quant = a->quant, .loras = loras,
                                       .lora_count = a->loras.count};
  OSP_TRY(cli_lora_specs(&a->loras, loras));
  OSP_TRY(osp_t2v_model_load(a->model, device, &overrides, &model));
  osp_t2v_settings settings = model.defaults;
  if (steps > 0) settings.steps = steps;
  json_object_set_new(about, "model", json_string(a->model));
  json_object_set_new(about, "steps", json_integer(settings.steps));
  json_object_set_new(about, "schedule", json_string(a->schedule ? a->schedule : "the model's"));
  json_object_set_new(about, "quant", json_string(a->quant ? a->quant : "the model's"));
  json_t *applied = json_array();
  for (int i = 0; i < a->loras.count; i++) json_array_append_new(applied, json_string(a->loras.items[i]));
  json_object_set_new(about, "loras", applied);
  double seconds = 0;
  osp_status status = OSP_OK;
  for (int i = 0; status == OSP_OK && i < count; i++) {
    osp_shapes_attributes prompt;
    char caption[OSP_SHAPES_CAPTION_MAX];
    osp_t2v_result result = {0};
    status = osp_shapes_prompt(split, i, &prompt);
    if (status == OSP_OK) status = osp_shapes_caption(&prompt, caption, sizeof caption);
    const osp_t2v_request request = {.prompt = caption, .settings = settings, .seed = seed + (uint64_t)i};
    if (status == OSP_OK) status = osp_t2v_generate(&model, &request, &result);
    if (status == OSP_OK) status = score_timed(e, &result.video, &prompt);
    seconds += result.timing.total_seconds;
    if (status == OSP_OK)
      fprintf(stderr, "\r%d/%d videos, %.2f s each", i + 1, count, seconds / (i + 1));
    osp_t2v_result_free(&result);
  }
  fprintf(stderr, "\n");
  printf("ShapesBench: %s on the %s prompts (%d videos, %d steps, seed %llu + prompt number): %.2f s per video\n",
         a->model, osp_shapes_split_name(split), count, settings.steps, (unsigned long long)seed, seconds / count);
  json_object_set_new(about, "seconds_per_video", json_real(seconds / count));
  osp_t2v_model_free(&model);
  return status;
}

static int list_prompts(osp_shapes_split split) {
  for (int i = 0; i < OSP_SHAPES_PROMPTS; i++) {
    osp_shapes_attributes a;
    char caption[OSP_SHAPES_CAPTION_MAX];
    osp_status status = osp_shapes_prompt(split, i, &a);
    if (status == OSP_OK) status = osp_shapes_caption(&a, caption, sizeof caption);
    if (status != OSP_OK) return cli_failure(status);
    printf("%s\n", caption);
  }
  return CLI_EXIT_OK;
}

int cmd_eval(int argc, char **argv) {
  eval_args a = {
      .split = "heldout", .seed = "0", .frames = DEFAULT_FRAMES, .height = DEFAULT_SIDE, .width = DEFAULT_SIDE};
  cli_option options[] = {
      {"--ground-truth", NULL, NULL, "score the shapes world's own video of each prompt of --split (a self-check)",
       NULL, &a.ground_truth},
      {"--video", NULL, "FILE", "score this video (.mp4, .gif, .safetensors, or a folder of PNG frames) against --prompt", &a.video,
       NULL},
      {"--prompt", "-p", "TEXT", "the video's prompt: \"a {size} {colour} {shape} {motion} on a {background} background\"",
       &a.prompt, NULL},
      {"--split", NULL, "train|heldout", "the fixed prompt set (default heldout)", &a.split, NULL},
      {"--seed", NULL, "S", "--ground-truth: the videos' seed (default 0)", &a.seed, NULL},
      {"--frames", NULL, "N", "--ground-truth: frames per video (default " DEFAULT_FRAMES ", at least 3)", &a.frames,
       NULL},
      {"--height", NULL, "H", "--ground-truth: pixels (default " DEFAULT_SIDE ", 32..4096)", &a.height, NULL},
      {"--width", NULL, "W", "--ground-truth: pixels (default " DEFAULT_SIDE ", 32..4096)", &a.width, NULL},
      {"--json", NULL, "OUT.json", "also write the summary and every video's measures as JSON", &a.json, NULL},
      {"--list-prompts", NULL, NULL, "print the prompts of --split, one a line, and exit", NULL, &a.list_prompts},
      {"--model", NULL, "DIR", "generate each prompt of --split with this model folder (e.g. models/shapes) and "
                               "score it", &a.model, NULL},
      {"--device", NULL, "cpu|cuda", "--model: where the model runs (default cpu; cuda: bf16 weights and activations)", &a.device, NULL},
      {"--steps", NULL, "N", "--model: sampling steps (default: the model's)", &a.steps, NULL},
      {"--schedule", NULL, "SPEC", "--model: the attention schedule (default: the model's), e.g. full", &a.schedule,
       NULL},
      {"--quant", NULL, "hif8|none", "--model: HiF8 quantization of the DiT (default: the model config's)", &a.quant,
       NULL},
      {"--count", NULL, "N", "--model: only the split's first N prompts (default all 48)", &a.count, NULL},
      {0},
  };
  cli_command command = {
      .name = "eval",
      .usage =
          "osp eval --ground-truth [--split train|heldout] [--seed S] [--frames N] [--height H] [--width W]\n"
          "                [--json OUT.json]\n"
          "       osp eval --video FILE -p PROMPT [--json OUT.json]\n"
          "       osp eval --model DIR [--split train|heldout] [--device cpu|cuda] [--steps N] [--schedule SPEC]\n"
          "                [--quant hif8|none] [--lora FILE[:SCALE]]... [--count N] [--seed S] [--json OUT.json]\n"
          "       osp eval --list-prompts [--split train|heldout]",
      .summary =
          "ShapesBench: measures a shapes-world video (background, object colour, shape, size, motion and "
          "temporal consistency) and scores it against its prompt, with no learned model.",
      .details =
          "Prints each attribute's accuracy, the mean consistency and the overall score (correct attributes / "
          "6), then ShapesBench's time per video. The prompt sets hold 48 prompts each; heldout's (colour, "
          "shape, motion) triples never occur in training (src/pipeline/shapes_world.h gives the rules).",
      .options = options,
      .lists = (cli_list_option[]){{"--lora", CLI_LORA_METAVAR, "--model: " CLI_LORA_HELP, &a.loras}, {0}},
  };
  int rc = cli_parse(&command, argc, argv);
  if (rc) return rc < 0 ? CLI_EXIT_OK : rc;
  osp_shapes_split split;
  osp_status status = osp_shapes_split_parse(a.split, &split);
  if (status != OSP_OK) return cli_usage_error(&command, "--split expects train or heldout, found '%s'", a.split);
  if (a.list_prompts) return list_prompts(split);
  if (a.ground_truth + (a.video != NULL) + (a.model != NULL) != 1)
    return cli_usage_error(&command, "give one of --ground-truth, --video FILE and --model DIR");
  if (a.video && !a.prompt) return cli_usage_error(&command, "--video needs the video's prompt (-p)");
  if (a.ground_truth && a.prompt)
    return cli_usage_error(&command, "-p goes with --video; --ground-truth uses --split's prompts");
  static evaluation e; /* the largest run's scores: too big for the stack */
  json_t *about = json_object();
  if (a.ground_truth) {
    long long seed, size[3];
    if ((rc = cli_parse_count(&command, "--seed", a.seed, &seed)) ||
        (rc = cli_parse_count(&command, "--frames", a.frames, &size[0])) ||
        (rc = cli_parse_count(&command, "--height", a.height, &size[1])) ||
        (rc = cli_parse_count(&command, "--width", a.width, &size[2]))) {
      json_decref(about);
      return rc;
    }
    e.mode = "ground-truth";
    printf("ShapesBench: the %s prompts' ground-truth videos (seed %lld, %lld frames of %lldx%lld)\n",
           osp_shapes_split_name(split), seed, size[0], size[2], size[1]);
    json_object_set_new(about, "split", json_string(osp_shapes_split_name(split)));
    json_object_set_new(about, "seed", json_integer(seed));
    json_object_set_new(about, "frames", json_integer(size[0]));
    json_object_set_new(about, "height", json_integer(size[1]));
    json_object_set_new(about, "width", json_integer(size[2]));
    status = eval_ground_truth(split, (uint64_t)seed, size, &e);
  } else if (a.model) {
    long long seed, steps = 0, count = OSP_SHAPES_PROMPTS;
    if ((rc = cli_parse_count(&command, "--seed", a.seed, &seed)) ||
        (a.steps && (rc = cli_parse_count(&command, "--steps", a.steps, &steps))) ||
        (a.count && (rc = cli_parse_count(&command, "--count", a.count, &count)))) {
      json_decref(about);
      return rc;
    }
    if (count < 1 || count > OSP_SHAPES_PROMPTS) {
      json_decref(about);
      return cli_usage_error(&command, "--count: expected 1 to %d, found %lld", OSP_SHAPES_PROMPTS, count);
    }
    e.mode = "model";
    json_object_set_new(about, "split", json_string(osp_shapes_split_name(split)));
    status = eval_model(&a, split, (uint64_t)seed, (int)steps, (int)count, &e, about);
  } else {
    e.mode = "video";
    status = eval_video(a.video, a.prompt, &e, about);
  }
  const summary m = status == OSP_OK ? summarize(&e) : (summary){{0}, 0, 0};
  if (status == OSP_OK && !a.video) print_accuracy(&m);
  if (status == OSP_OK) print_summary(&e, &m);
  if (status == OSP_OK && a.json) status = write_json(&e, &m, about, a.json);
  if (status == OSP_OK && a.json) printf("wrote %s\n", a.json);
  json_decref(about);
  return status == OSP_OK ? CLI_EXIT_OK : cli_failure(status);
}
