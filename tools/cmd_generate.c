/* osp generate: text to video with a model folder (the built-in shapes model by default). */
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_ranks.h"
#include "commands.h"
#include "generate_plan.h"
#include "core/safetensors.h"
#include "core/status.h"
#include "ops/ops.h"
#include "pipeline/t2v.h"
#include "video/video.h"

#ifndef OSP_BUILTIN_MODEL_DIR
#define OSP_BUILTIN_MODEL_DIR "models/shapes"
#endif

typedef struct {
  const char *prompt, *negative, *output, *format, *model, *device, *seed, *steps, *guidance, *shift, *sampler,
      *frames, *height, *width, *fps, *schedule, *quant, *sp, *noise, *latents_out, *preset;
  int quiet, cfg_parallel, dry_run;
  cli_list loras;
} generate_arguments;

/* The built-in model: beside the binary (<bin>/../models/shapes, as a build folder sits in the
 * source tree), else where the source tree was when this binary was built. */
static void builtin_model(char *out, size_t size) {
  char exe[4096];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = '\0';
    snprintf(out, size, "%s/../models/shapes", dirname(exe));
    if (access(out, R_OK) == 0) return;
  }
  snprintf(out, size, "%s", OSP_BUILTIN_MODEL_DIR);
}

/* A finite number option, or a usage error naming it. */
static int parse_number(const cli_command *command, const char *option, const char *text, double *out) {
  if (!text) return CLI_EXIT_OK;
  char *end;
  errno = 0;
  const double value = strtod(text, &end);
  if (end == text || *end || errno || !isfinite(value))
    return cli_usage_error(command, "%s expects a number, found '%s'", option, text);
  *out = value;
  return CLI_EXIT_OK;
}

static int parse_integer(const cli_command *command, const char *option, const char *text, int64_t *out) {
  long long value;
  if (!text) return CLI_EXIT_OK;
  const int rc = cli_parse_count(command, option, text, &value);
  if (rc == CLI_EXIT_OK) *out = value;
  return rc;
}

/* The model's defaults overridden by the flags given. */
static int read_settings(const cli_command *command, const generate_arguments *a, osp_t2v_settings *s, uint64_t *seed) {
  int64_t steps = s->steps, value = 0;
  int rc = parse_integer(command, "--steps", a->steps, &steps);
  if (!rc && a->steps && (steps < 1 || steps > 1000)) rc = cli_usage_error(command, "--steps: expected 1 to 1000, found %s", a->steps);
  s->steps = (int)steps;
  if (!rc) rc = parse_integer(command, "--frames", a->frames, &s->frames);
  if (!rc) rc = parse_integer(command, "--height", a->height, &s->height);
  if (!rc) rc = parse_integer(command, "--width", a->width, &s->width);
  if (!rc) rc = parse_number(command, "--guidance", a->guidance, &s->guidance);
  if (!rc) rc = parse_number(command, "--shift", a->shift, &s->shift);
  if (!rc) rc = parse_number(command, "--fps", a->fps, &s->fps);
  if (!rc) rc = parse_integer(command, "--seed", a->seed, &value);
  *seed = (uint64_t)value;
  if (!rc && a->sampler && osp_sampler_kind_parse(a->sampler, &s->sampler) != OSP_OK)
    rc = cli_usage_error(command, "--sampler: %s", osp_last_error());
  return rc;
}

/* The progress line: step, iterations per second, time left. */
static void show_progress(int step, int steps, double seconds, void *user) {
  const int *quiet = user;
  if (*quiet) return;
  const double rate = step / seconds;
  fprintf(stderr, "\rstep %d/%d  %.2f it/s  ETA %.0fs   %s", step, steps, rate, (steps - step) / rate,
          step == steps ? "\n" : "");
}

/* The decoder's line: latent frames decoded. */
static void show_decode(int done, int total, void *user) {
  const int *quiet = user;
  if (!*quiet) fprintf(stderr, "\rdecode: latent frame %d/%d   %s", done, total, done == total ? "\n" : "");
}

/* The checks that need no model: a prompt, and an output path whose folder can be written. */
static osp_status check_request(const generate_arguments *a, osp_video_format *format) {
  if (!a->prompt[0] || strspn(a->prompt, " \t\r\n") == strlen(a->prompt))
    return osp_fail(OSP_ERR_ARGUMENT, "--prompt is empty: say what the video should show");
  OSP_TRY(a->format ? osp_video_format_parse(a->format, format) : osp_video_format_guess(a->output, format));
  char copy[4096];
  snprintf(copy, sizeof copy, "%s", a->output);
  const size_t n = strlen(copy);
  if (n > 1 && copy[n - 1] == '/') copy[n - 1] = '\0';
  const char *folder = dirname(copy);
  if (access(folder, W_OK) != 0)
    return osp_fail(OSP_ERR_IO, "%s: cannot write into the folder '%s': %s", a->output, folder, strerror(errno));
  return OSP_OK;
}

/* The --noise file's tensor ("noise", or the file's only tensor), as f32 [1, C, f, h, w]; *data
 * malloc'd. */
static osp_status read_noise(const char *path, osp_tensor *noise, float **data) {
  osp_st_file file;
  OSP_TRY(osp_st_open(path, &file));
  const osp_st_entry *e = osp_st_find(&file, "noise");
  if (!e && file.count == 1) e = &file.entries[0];
  osp_status status = OSP_OK;
  if (!e)
    status = osp_fail(OSP_ERR_MISSING, "%s: no tensor 'noise' (and %d tensors, not one)", path, file.count);
  else if (e->ndim != 5 && e->ndim != 4)
    status = osp_fail(OSP_ERR_SHAPE, "%s: tensor '%s': expected [1, C, F, H, W] or [C, F, H, W], found %d dimensions",
                      path, e->name, e->ndim);
  if (status == OSP_OK && !(*data = malloc((size_t)osp_st_numel(e) * sizeof(float))))
    status = osp_fail(OSP_ERR_MEMORY, "%s: out of memory", path);
  if (status == OSP_OK) {
    int64_t shape[5] = {1, 0, 0, 0, 0};
    for (int d = 0; d < e->ndim; d++) shape[5 - e->ndim + d] = e->shape[d];
    osp_st_to_f32(e, *data);
    *noise = osp_tensor_make(*data, OSP_F32, OSP_CPU, 5, shape);
  }
  osp_st_close(&file);
  return status;
}

/* With --noise, the video's sizes follow the noise unless flags set them. */
static osp_status sizes_from_noise(const osp_t2v_model *model, const generate_arguments *a, const osp_tensor *noise,
                                   osp_t2v_settings *s) {
  int64_t frames, height, width;
  OSP_TRY(osp_t2v_video_size_of(&model->video, noise->shape, &frames, &height, &width));
  if (!a->frames) s->frames = frames;
  if (!a->height) s->height = height;
  if (!a->width) s->width = width;
  return OSP_OK;
}

static osp_status write_latents(const char *path, const osp_tensor *latents) {
  const osp_st_write_entry entry = {"latents", OSP_ST_F32, latents->ndim, latents->shape, latents->data};
  return osp_st_write(path, &entry, 1);
}

/* Generates and writes the video; every rank samples, rank 0 alone reports and writes. */
static int generate(const cli_command *command, const generate_arguments *a, const cli_ranks *ranks,
                    osp_device device, osp_video_format format) {
  char builtin[4200];
  builtin_model(builtin, sizeof builtin);
  osp_t2v_model model;
  osp_lora_spec loras[CLI_LIST_MAX];
  const osp_t2v_overrides overrides = {.schedule = a->schedule, .quant = a->quant, .loras = loras,
                                       .lora_count = a->loras.count};
  osp_status status = cli_lora_specs(&a->loras, loras);
  if (status == OSP_OK) status = osp_t2v_model_load(a->model ? a->model : builtin, device, &overrides, &model);
  if (status != OSP_OK) return cli_ranks_failure(ranks, status);
  model.parallel = ranks->split;
  osp_t2v_settings settings = model.defaults;
  uint64_t seed = 0;
  int rc = read_settings(command, a, &settings, &seed);
  osp_tensor noise;
  float *noise_data = NULL;
  if (!rc && a->noise) status = read_noise(a->noise, &noise, &noise_data);
  if (!rc && a->noise && status == OSP_OK) status = sizes_from_noise(&model, a, &noise, &settings);
  const int quiet = a->quiet || ranks->rank != 0, speak = ranks->rank == 0;
  const osp_t2v_request request = {.prompt = a->prompt, .negative_prompt = a->negative, .settings = settings,
                                   .seed = seed, .noise = a->noise ? &noise : NULL, .progress = show_progress,
                                   .decode_progress = show_decode, .user = (void *)&quiet};
  osp_t2v_result result = {0};
  const osp_t2v_timing *timing = &result.timing;
  if (!rc && status == OSP_OK) status = osp_t2v_generate(&model, &request, &result);
  if (!rc && status == OSP_OK && speak && a->latents_out) status = write_latents(a->latents_out, &result.latents);
  if (!rc && status == OSP_OK && speak) status = osp_video_write(a->output, format, settings.fps, &result.video);
  char start[160], peak[64] = "";
  if (device != OSP_CPU)
    snprintf(peak, sizeof peak, "; peak GPU memory %.2f GiB", osp_device_peak_bytes(device) / 1073741824.0);
  snprintf(start, sizeof start, a->noise ? "noise from %s" : "seed %s", a->noise ? a->noise : (a->seed ? a->seed : "0"));
  if (!rc && status == OSP_OK && speak)
    printf("wrote %s: %lld frames of %lld x %lld at %g fps (%s, %s) in %.2f s: %d steps of %.3f s, "
           "text %.3f s, decode %.3f s%s\n",
           a->output, (long long)result.video.frames, (long long)result.video.width, (long long)result.video.height,
           settings.fps, osp_video_format_name(format), start,
           timing->total_seconds, settings.steps, timing->sampling_seconds / settings.steps, timing->text_seconds,
           timing->decode_seconds, peak);
  osp_t2v_result_free(&result);
  free(noise_data);
  osp_t2v_model_free(&model);
  if (rc) return rc;
  return status == OSP_OK ? CLI_EXIT_OK : cli_ranks_failure(ranks, status);
}

static int run(const cli_command *command, const generate_arguments *a) {
  osp_video_format format;
  osp_device device;
  cli_ranks ranks = {0};
  osp_status status = check_request(a, &format);
  if (status == OSP_OK) status = cli_parse_device(a->device, OSP_CPU, &device);
  if (status == OSP_OK) status = cli_ranks_start(a->sp, a->cfg_parallel, device, &ranks);
  const int rc = status == OSP_OK ? generate(command, a, &ranks, device, format) : cli_ranks_failure(&ranks, status);
  cli_ranks_finish(&ranks);
  return rc;
}

/* --dry-run: the memory plan, from the folder's configs or a preset's, at the sizes asked for. */
static int dry_run(const cli_command *command, const generate_arguments *a) {
  osp_device device;
  osp_t2v_settings settings = {.frames = 81, .height = 480, .width = 832, .guidance = 5.0};
  osp_model_dir files;
  osp_status status = cli_parse_device(a->device, OSP_CPU, &device);
  if (status == OSP_OK && a->model) status = osp_model_dir_read(a->model, &files);
  if (status == OSP_OK && a->model) settings = files.defaults;
  if (status == OSP_OK && !a->model && strstr(a->preset, "14b")) settings.height = 720, settings.width = 1280;
  if (status != OSP_OK) return cli_failure(status);
  uint64_t seed;
  const int rc = read_settings(command, a, &settings, &seed);
  if (rc) return rc;
  status = generate_plan_print(a->model, a->preset, device, &settings);
  return status == OSP_OK ? CLI_EXIT_OK : cli_failure(status);
}

int cmd_generate(int argc, char **argv) {
  generate_arguments a = {.negative = "", .output = "osp-video.mp4"};
  cli_option options[] = {
      {"--prompt", "-p", "TEXT", "what the video shows (required)", &a.prompt, NULL},
      {"--negative-prompt", "-n", "TEXT", "the unconditional pass's prompt (default: empty)", &a.negative, NULL},
      {"--output", "-o", "PATH",
       "where the video goes (default osp-video.mp4); .mp4, .gif, a folder of PNG frames, or .safetensors (the "
       "frames as U8 [F, H, W, 3])",
       &a.output, NULL},
      {"--format", NULL, "mp4|gif|png|safetensors", "the file format (default: from the output's extension)",
       &a.format, NULL},
      {"--model", NULL, "DIR", "a model folder: diffusers' layout (model_index.json) or OSP's model.json (default: "
                               "the built-in shapes model, models/shapes)",
       &a.model, NULL},
      {"--device", NULL, "cpu|cuda",
       "where the text encoder, the DiT and the VAE run (default cpu; cuda: bf16 weights and activations)", &a.device,
       NULL},
      {"--seed", NULL, "N", "the noise's seed (default 0): the same video on every device, up to bf16 rounding",
       &a.seed, NULL},
      {"--steps", NULL, "N", "sampling steps (default: the model's; built-in 25)", &a.steps, NULL},
      {"--sampler", NULL, "unipc|euler", "the flow-matching sampler (default: the model's; built-in unipc)", &a.sampler, NULL},
      {"--guidance", NULL, "G", "classifier-free guidance scale, 1 = none (default: the model's; built-in 5)",
       &a.guidance, NULL},
      {"--shift", NULL, "S", "the timestep shift (default: the model's; built-in 3)", &a.shift, NULL},
      {"--frames", NULL, "N", "frames (default: the model's; built-in 8)", &a.frames, NULL},
      {"--height", NULL, "PX", "height in pixels (default: the model's; built-in 32)", &a.height, NULL},
      {"--width", NULL, "PX", "width in pixels (default: the model's; built-in 32)", &a.width, NULL},
      {"--fps", NULL, "N", "frames per second of the file (default: the model's; built-in 8)", &a.fps, NULL},
      {"--schedule", NULL, "SPEC", "each block's attention, e.g. full or full,token,group,... (default: the "
                                   "model's; built-in full,token,group,token,group,full)", &a.schedule, NULL},
      {"--quant", NULL, "hif8|none", "HiF8 quantization of the DiT as OSP-Next simulates it (default: the model "
                                     "config's quant and quant_attn; none for the built-in model)", &a.quant, NULL},
      {"--sp", NULL, "ulysses|ssp", "under mpirun -np N: how the ranks split each forward's tokens in Skiparse "
                                    "blocks (default ssp; full blocks run Ulysses); rank 0 writes the video", &a.sp, NULL},
      {"--cfg-parallel", NULL, NULL, "under mpirun: the conditional and unconditional passes on two halves of the "
                                     "ranks", NULL, &a.cfg_parallel},
      {"--noise", NULL, "FILE", "start from this noise (safetensors: tensor 'noise' [1, C, f, h, w] in the sampler's "
                                "space) instead of the seed's; the video's sizes follow it unless given",
       &a.noise, NULL},
      {"--latents-out", NULL, "FILE", "also write the final latents (tensor 'latents', before decoding) to FILE",
       &a.latents_out, NULL},
      {"--dry-run", NULL, NULL, "print the memory plan (weights and working memory of each component, the peaks) "
                                "of a generation with --model DIR or --preset NAME, and stop", NULL, &a.dry_run},
      {"--preset", NULL, "NAME", "with --dry-run and no --model: wan2.1-t2v-1.3b, wan2.1-t2v-14b, osp-next-1.3b or "
                                 "osp-next-14b (with umT5-XXL and Wan2.1's VAE; 14B at 1280 x 720 by default)",
       &a.preset, NULL},
      {"--quiet", "-q", NULL, "no progress line", NULL, &a.quiet},
      {0},
  };
  cli_command command = {
      .name = "generate",
      .usage = "osp generate -p \"a red circle moving right on a blue background\" [-o out.mp4] [options]",
      .summary = "Generates a video from a prompt.",
      .details = "Encodes the prompt, samples the DiT's flow from seeded noise (classifier-free guidance with\n"
                 "the conditional and unconditional passes in one batch) and writes the frames. Progress\n"
                 "goes to stderr; a summary line with the time per step goes to stdout. The built-in model\n"
                 "knows the words of its captions (\"a small|large <colour> circle|square|triangle <motion> on\n"
                 "a <colour> background\"); other words get a warning and are ignored in meaning.",
      .options = options,
      .lists = (cli_list_option[]){{"--lora", CLI_LORA_METAVAR, CLI_LORA_HELP, &a.loras}, {0}},
  };
  int rc = cli_parse(&command, argc, argv);
  if (rc) return rc < 0 ? CLI_EXIT_OK : rc;
  if (a.dry_run && !a.model && !a.preset) return cli_usage_error(&command, "--dry-run needs --model DIR or --preset NAME");
  if (a.dry_run) return dry_run(&command, &a);
  if (a.preset) return cli_usage_error(&command, "--preset goes with --dry-run (generation needs a model's weights)");
  if (!a.prompt) return cli_usage_error(&command, "missing --prompt TEXT");
  return run(&command, &a);
}
