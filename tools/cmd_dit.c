/* osp dit: one forward pass of the DiT on inputs from a safetensors file, the velocity to another.
 * This is the contract anyone uses to check OSP against their own stack: keep it stable. */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_ranks.h"
#include "commands.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "core/status.h"
#include "model/dit.h"
#include "model/dit_train.h"
#include "ops/ops.h"

typedef struct {
  const char *weights, *config, *preset, *random_seed, *inputs, *random_inputs, *output;
  const char *schedule, *sparse_ratio, *quant, *device, *grad_output, *sp;
  int verbose, checkpoint, cfg_parallel;
} dit_arguments;

typedef struct {
  osp_tensor latents, timestep, context;
} dit_inputs;

/* The config: --config, else --preset, else config.json beside the weights; then the --quant,
 * --schedule and --sparse-ratio overrides (the ratio is checked against the schedule). */
static osp_status choose_config(const dit_arguments *a, osp_model_config *config) {
  OSP_TRY(cli_dit_config(a->config, a->preset, a->weights, config));
  if (a->quant) OSP_TRY(osp_config_set_quant("--quant", a->quant, config));
  if (a->schedule) OSP_TRY(osp_config_set_schedule("--schedule", a->schedule, config));
  if (!a->sparse_ratio) return OSP_OK;
  char *end;
  long ratio = strtol(a->sparse_ratio, &end, 10);
  if (*end || end == a->sparse_ratio || ratio < 1 || ratio > 64)
    return osp_fail(OSP_ERR_ARGUMENT, "--sparse-ratio expects an integer from 1 to 64, found '%s'", a->sparse_ratio);
  return osp_config_set_sparse_ratio("--sparse-ratio", (int)ratio, config);
}

/* Reads one input tensor of any float dtype as float32 (malloc'd; freed by free_inputs). */
static osp_status read_input(const osp_st_file *file, const char *name, osp_tensor *out) {
  const osp_st_entry *e = osp_st_find(file, name);
  if (!e) return osp_fail(OSP_ERR_MISSING, "%s: missing tensor '%s'", file->path, name);
  float *data = malloc((size_t)osp_st_numel(e) * sizeof(float) + 1);
  if (!data) return osp_fail(OSP_ERR_MEMORY, "%s: cannot allocate tensor '%s'", file->path, name);
  osp_st_to_f32(e, data);
  *out = osp_tensor_make(data, OSP_F32, OSP_CPU, e->ndim, e->shape);
  return OSP_OK;
}

static void free_inputs(dit_inputs *in) {
  free(in->latents.data);
  free(in->timestep.data);
  free(in->context.data);
}

static osp_status read_inputs(const char *path, dit_inputs *in) {
  osp_st_file file;
  OSP_TRY(osp_st_open(path, &file));
  osp_status status = read_input(&file, "latents", &in->latents);
  if (status == OSP_OK) status = read_input(&file, "timestep", &in->timestep);
  if (status == OSP_OK) status = read_input(&file, "context", &in->context);
  osp_st_close(&file);
  return status;
}

/* A float32 tensor of n·N(0, 1) Philox samples (stream `stream` of seed 0), malloc'd. */
static osp_status random_tensor(int ndim, const int64_t *shape, uint32_t stream, osp_tensor *out) {
  *out = osp_tensor_make(NULL, OSP_F32, OSP_CPU, ndim, shape);
  out->data = malloc(osp_tensor_bytes(out) + 1);
  if (!out->data) return osp_fail(OSP_ERR_MEMORY, "cannot allocate random inputs");
  osp_randn(0, stream, 0, out->data, (size_t)osp_tensor_numel(out));
  return OSP_OK;
}

/* --random-inputs B,F,H,W,L: latents N(0, 1) [B, in, F, H, W], context N(0, 1) [B, L, text_dim],
 * timesteps spread over (0, 1000). */
static osp_status random_inputs(const char *spec, const osp_model_config *c, dit_inputs *in) {
  long long b, f, h, w, l;
  char end;
  if (sscanf(spec, "%lld,%lld,%lld,%lld,%lld%c", &b, &f, &h, &w, &l, &end) != 5 || b < 1 || f < 1 ||
      h < 1 || w < 1 || l < 1)
    return osp_fail(OSP_ERR_ARGUMENT, "--random-inputs expects B,F,H,W,L (positive integers), found '%s'", spec);
  OSP_TRY(random_tensor(5, (int64_t[]){b, c->in_channels, f, h, w}, 1, &in->latents));
  OSP_TRY(random_tensor(3, (int64_t[]){b, l, c->text_dim}, 2, &in->context));
  OSP_TRY(random_tensor(1, (int64_t[]){b}, 3, &in->timestep));
  float *t = in->timestep.data;
  for (long long i = 0; i < b; i++) t[i] = 1000.0f * (float)(i + 1) / (float)(b + 1);
  return OSP_OK;
}

/* Fails early, before a long forward, when the output cannot be written where asked. */
static osp_status check_output_directory(const char *output) {
  char *copy = strdup(output);
  if (!copy) return osp_fail(OSP_ERR_MEMORY, "out of memory");
  const char *dir = dirname(copy);
  struct stat st;
  osp_status status = OSP_OK;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
    status = osp_fail(OSP_ERR_IO, "%s: output directory '%s' does not exist", output, dir);
  else if (access(dir, W_OK) != 0)
    status = osp_fail(OSP_ERR_IO, "%s: output directory '%s' is not writable", output, dir);
  free(copy);
  return status;
}

/* The model on its device: random weights are drawn there; a file is read on the host and its
 * weights copied over (bf16 on CUDA). */
static osp_status load_model(const dit_arguments *a, const osp_model_config *config, osp_dit *dit) {
  osp_device device;
  OSP_TRY(cli_parse_device(a->device, OSP_CPU, &device));
  if (a->random_seed) {
    char *end;
    unsigned long long seed = strtoull(a->random_seed, &end, 10);
    if (*end || end == a->random_seed)
      return osp_fail(OSP_ERR_ARGUMENT, "--random-weights expects an integer seed, found '%s'", a->random_seed);
    return osp_dit_init_random(config, seed, device, dit);
  }
  if (device == OSP_CPU) return osp_dit_load(config, a->weights, dit);
  osp_dit host;
  OSP_TRY(osp_dit_load(config, a->weights, &host));
  osp_status status = osp_dit_to_device(&host, device, dit);
  osp_dit_free(&host);
  return status;
}

/* The FLOPs each block should cost, and the whole forward against the same model all full. */
static void print_flops(const osp_model_config *config, const dit_inputs *in, const int64_t grid[3]) {
  osp_model_config dense = *config;
  memset(dense.schedule, OSP_PATTERN_FULL, sizeof dense.schedule);
  const int64_t B = in->latents.shape[0], L = in->context.shape[1];
  double attention = 0, rest = 0, dense_attention = 0, dense_rest = 0;
  char letters[OSP_MAX_LAYERS + 1];
  printf("schedule %s, sparse ratio %d, token grid %lld x %lld x %lld, batch %lld\n",
         osp_config_schedule_string(config, letters, sizeof letters), config->sparse_ratio, (long long)grid[0],
         (long long)grid[1], (long long)grid[2], (long long)B);
  printf("%5s %-7s %16s %16s\n", "block", "pattern", "self-attn GFLOP", "rest GFLOP");
  for (int i = 0; i < config->num_layers; i++) {
    const osp_dit_flops f = osp_dit_block_flops(config, i, B, grid, L), d = osp_dit_block_flops(&dense, i, B, grid, L);
    printf("%5d %-7s %16.3f %16.3f\n", i, (const char *[]){"full", "token", "group"}[config->schedule[i]],
           f.self_attention * 1e-9, f.rest * 1e-9);
    attention += f.self_attention;
    rest += f.rest;
    dense_attention += d.self_attention;
    dense_rest += d.rest;
  }
  printf("blocks: self-attention %.3f GFLOP (%.3f of all-full), rest %.3f GFLOP, total %.3f GFLOP "
         "(%.3f of all-full: predicted speed-up %.2fx)\n",
         attention * 1e-9, attention / dense_attention, rest * 1e-9, (attention + rest) * 1e-9,
         (attention + rest) / (dense_attention + dense_rest), (dense_attention + dense_rest) / (attention + rest));
}

/* What each block sent to other ranks, summed over all of them, and each collective's totals:
 * every rank's counters (int64, exact) gathered, then added up. */
static osp_status print_traffic(const osp_model_config *config, const cli_ranks *r, const osp_dit_timing *t) {
  enum { WIDTH = OSP_MAX_LAYERS + 2 * OSP_COLLECTIVE_COUNT };
  int64_t mine[WIDTH] = {0}, *all = calloc((size_t)r->size * WIDTH, sizeof *all), total[WIDTH] = {0};
  if (!all) return osp_fail(OSP_ERR_MEMORY, "out of memory");
  const int layers = config->num_layers;
  memcpy(mine, t->block_bytes, sizeof t->block_bytes);
  osp_comm *groups[2] = {r->split.sequence, r->split.batch};
  for (int k = 0; k < OSP_COLLECTIVE_COUNT; k++)
    for (int g = 0; g < 2 && groups[g]; g++) {
      const osp_comm_counter c = osp_comm_counter_of(groups[g], (osp_collective)k);
      mine[OSP_MAX_LAYERS + 2 * k] += c.bytes_sent;
      mine[OSP_MAX_LAYERS + 2 * k + 1] += c.calls;
    }
  int64_t bytes[OSP_MAX_RANKS], offset[OSP_MAX_RANKS];
  for (int q = 0; q < r->size; q++) {
    bytes[q] = (int64_t)sizeof mine;
    offset[q] = q * (int64_t)sizeof mine;
  }
  osp_status status = osp_comm_all_gather(r->world, mine, sizeof mine, all, bytes, offset);
  for (int q = 0; status == OSP_OK && q < r->size; q++)
    for (int i = 0; i < WIDTH; i++) total[i] += all[q * WIDTH + i];
  free(all);
  if (status != OSP_OK || r->rank != 0) return status;
  printf("%5s %-7s %16s\n", "block", "pattern", "bytes sent");
  for (int i = 0; i < layers; i++)
    printf("%5d %-7s %16lld\n", i, (const char *[]){"full", "token", "group"}[config->schedule[i]],
           (long long)total[i]);
  for (int k = 0; k < OSP_COLLECTIVE_COUNT; k++)
    printf("%-10s %6lld calls per rank %16lld bytes sent (all %d ranks)\n", osp_collective_name((osp_collective)k),
           (long long)(total[OSP_MAX_LAYERS + 2 * k + 1] / r->size), (long long)total[OSP_MAX_LAYERS + 2 * k], r->size);
  return OSP_OK;
}

static void print_timing(const osp_model_config *config, const dit_inputs *in, const int64_t grid[3],
                         const osp_dit_timing *t) {
  const int64_t B = in->latents.shape[0], L = in->context.shape[1];
  double blocks = 0;
  printf("%5s %-7s %10s %10s\n", "block", "pattern", "seconds", "GFLOP/s");
  for (int i = 0; i < config->num_layers; i++) {
    const osp_dit_flops f = osp_dit_block_flops(config, i, B, grid, L);
    printf("%5d %-7s %10.3f %10.1f\n", i, (const char *[]){"full", "token", "group"}[config->schedule[i]],
           t->block_seconds[i], (f.self_attention + f.rest) * 1e-9 / t->block_seconds[i]);
    blocks += t->block_seconds[i];
  }
  printf("forward %.3f s: blocks %.3f s, layout changes %.4f s (%.2f%% of the blocks), rest %.3f s\n",
         t->total_seconds, blocks, t->layout_seconds, 100.0 * t->layout_seconds / blocks,
         t->total_seconds - blocks - t->layout_seconds);
}

static osp_status write_velocity(const char *path, const osp_tensor *velocity) {
  osp_st_write_entry entry = {"velocity", OSP_ST_F32, velocity->ndim, velocity->shape, velocity->data};
  return osp_st_write(path, &entry, 1);
}

/* The gradient of the loss with respect to the velocity: tensor `velocity` of the --grad-output
 * file, in the velocity's shape. */
static osp_status read_grad_output(const char *path, const osp_tensor *velocity, osp_tensor *dvelocity) {
  osp_st_file file;
  OSP_TRY(osp_st_open(path, &file));
  osp_status status = read_input(&file, "velocity", dvelocity);
  if (status == OSP_OK) {
    status = osp_check_shape("velocity", dvelocity, velocity->ndim, velocity->shape);
    if (status != OSP_OK) osp_fail_context(status, "%s (the gradient of the velocity)", path);
  }
  osp_st_close(&file);
  return status;
}

/* A parameter's gradient on the host as f32 (malloc'd: a copy where it lives on a device). */
static osp_status gradient_on_host(const osp_tensor *g, void **data) {
  *data = NULL;
  if (g->device == OSP_CPU) {
    *data = g->data;
    return OSP_OK;
  }
  osp_tensor host = osp_tensor_make(NULL, OSP_F32, OSP_CPU, g->ndim, g->shape);
  if (!(host.data = malloc(osp_tensor_bytes(&host) + 1))) return osp_fail(OSP_ERR_MEMORY, "out of memory");
  *data = host.data;
  return osp_copy(g, &host);
}

/* velocity, ∂loss/∂latents as `latents`, and every parameter's gradient under its weight name. */
static osp_status write_gradients(const char *path, const osp_tensor *velocity, const osp_tensor *dlatents,
                                  const osp_dit *grads) {
  osp_dit_parameter *params;
  int count;
  OSP_TRY(osp_dit_parameters(grads, &params, &count));
  osp_st_write_entry *entries = calloc((size_t)count + 2, sizeof *entries);
  void **host = calloc((size_t)count + 1, sizeof *host);
  osp_status status = entries && host ? OSP_OK : osp_fail(OSP_ERR_MEMORY, "out of memory");
  if (status == OSP_OK) {
    entries[0] = (osp_st_write_entry){"velocity", OSP_ST_F32, velocity->ndim, velocity->shape, velocity->data};
    entries[1] = (osp_st_write_entry){"latents", OSP_ST_F32, dlatents->ndim, dlatents->shape, dlatents->data};
  }
  for (int i = 0; status == OSP_OK && i < count; i++) {
    const osp_tensor *g = &params[i].tensor;
    status = gradient_on_host(g, &host[i]);
    entries[i + 2] = (osp_st_write_entry){params[i].name, OSP_ST_F32, g->ndim, g->shape, host[i]};
  }
  if (status == OSP_OK) status = osp_st_write(path, entries, count + 2);
  for (int i = 0; host && i < count; i++)
    if (host[i] != params[i].tensor.data) free(host[i]);
  free(host);
  free(entries);
  free(params);
  return status;
}

/* --grad-output: the training forward and the backward of the loss whose gradient with respect
 * to the velocity the file holds. */
static osp_status run_backward(const dit_arguments *a, const cli_ranks *ranks, const osp_dit *dit,
                               const dit_inputs *in, osp_tensor *velocity) {
  osp_tensor dvelocity = {0}, dlatents = in->latents;
  osp_dit grads = {0};
  osp_dit_tape *tape = NULL;
  const osp_dit_tape_options options = {
      .batch = in->latents.shape[0], .frames = in->latents.shape[2], .height = in->latents.shape[3],
      .width = in->latents.shape[4], .text_rows = in->context.shape[1], .checkpoint = a->checkpoint,
      .sequence = ranks->split.sequence, .mode = ranks->split.mode};
  dlatents.data = malloc(osp_tensor_bytes(&dlatents) + 1);
  osp_status status = dlatents.data ? OSP_OK : osp_fail(OSP_ERR_MEMORY, "cannot allocate the latents' gradient");
  if (status == OSP_OK) status = read_grad_output(a->grad_output, velocity, &dvelocity);
  if (status == OSP_OK) status = osp_dit_tape_create(dit, &options, &tape);
  if (status == OSP_OK) status = osp_dit_init_zeros(dit, dit->device, &grads);
  const double start = osp_seconds();
  if (status == OSP_OK) status = osp_dit_forward_train(dit, tape, &in->latents, &in->timestep, &in->context, velocity);
  if (status == OSP_OK) status = osp_dit_backward(dit, tape, &dvelocity, &grads, &dlatents);
  if (status == OSP_OK)
    osp_info("dit forward + backward: %d layers, %.3f s, tape %.1f MiB%s", dit->config.num_layers,
             osp_seconds() - start, osp_dit_tape_bytes(tape) / 1048576.0, a->checkpoint ? " (checkpointed)" : "");
  if (status == OSP_OK && ranks->rank == 0) status = write_gradients(a->output, velocity, &dlatents, &grads);
  osp_dit_free(&grads);
  osp_dit_tape_free(tape);
  free(dvelocity.data);
  free(dlatents.data);
  return status;
}

static osp_status run(const dit_arguments *a, const cli_ranks *ranks) {
  osp_model_config config;
  OSP_TRY(choose_config(a, &config));
  OSP_TRY(check_output_directory(a->output));
  dit_inputs in = {0};
  osp_dit dit = {0};
  osp_tensor velocity = {0};
  osp_status status = a->inputs ? read_inputs(a->inputs, &in) : random_inputs(a->random_inputs, &config, &in);
  if (status == OSP_OK) status = load_model(a, &config, &dit);
  if (status == OSP_OK) {
    status = osp_dit_check_inputs(&dit, &in.latents, &in.timestep, &in.context);
    if (status != OSP_OK) osp_fail_context(status, "%s", a->inputs ? a->inputs : "--random-inputs");
  }
  if (status == OSP_OK) {
    velocity = in.latents;
    velocity.shape[1] = config.out_channels;
    velocity = osp_tensor_make(NULL, OSP_F32, OSP_CPU, 5, velocity.shape);
    velocity.data = malloc(osp_tensor_bytes(&velocity));
    if (!velocity.data) status = osp_fail(OSP_ERR_MEMORY, "cannot allocate the velocity");
  }
  int64_t grid[3] = {0};
  for (int d = 0; status == OSP_OK && d < 3; d++) grid[d] = in.latents.shape[2 + d] / config.patch_size[d];
  if (status == OSP_OK && a->verbose && ranks->rank == 0) print_flops(&config, &in, grid);
  if (status == OSP_OK && a->grad_output) {
    status = run_backward(a, ranks, &dit, &in, &velocity);
  } else if (status == OSP_OK) {
    osp_dit_timing timing;
    status = osp_dit_forward_parallel(&dit, &ranks->split, &in.latents, &in.timestep, &in.context, &velocity, &timing);
    if (status == OSP_OK)
      osp_info("dit forward: %d layers, latents [%lld, %lld, %lld, %lld, %lld], %.3f s", config.num_layers,
             (long long)in.latents.shape[0], (long long)in.latents.shape[1], (long long)in.latents.shape[2],
             (long long)in.latents.shape[3], (long long)in.latents.shape[4], timing.total_seconds);
    if (status == OSP_OK && a->verbose && ranks->rank == 0) print_timing(&config, &in, grid, &timing);
    if (status == OSP_OK && a->verbose && ranks->size > 1) status = print_traffic(&config, ranks, &timing);
  }
  if (status == OSP_OK && !a->grad_output && ranks->rank == 0) status = write_velocity(a->output, &velocity);
  free(velocity.data);
  osp_dit_free(&dit);
  free_inputs(&in);
  return status;
}

int cmd_dit(int argc, char **argv) {
  dit_arguments a = {0};
  cli_option options[] = {
      {"--weights", NULL, "W.safetensors", "DiT weights (original Wan2.1 or diffusers names)", &a.weights, NULL},
      {"--config", NULL, "C.json", "model config.json (diffusers or original Wan2.1 keys; "
                                   "default: config.json beside the weights)", &a.config, NULL},
      {"--preset", NULL, "NAME", "a built-in config instead: wan2.1-t2v-1.3b, wan2.1-t2v-14b, ...", &a.preset, NULL},
      {"--random-weights", NULL, "SEED", "random weights instead of --weights (benchmarks)", &a.random_seed, NULL},
      {"--inputs", NULL, "I.safetensors", "latents [B,16,F,H,W], timestep [B], context [B,L,text_dim]", &a.inputs, NULL},
      {"--random-inputs", NULL, "B,F,H,W,L", "random latents [B,16,F,H,W] and context [B,L,text_dim] instead "
                                             "of --inputs (benchmarks)", &a.random_inputs, NULL},
      {"--schedule", NULL, "SPEC", "override the Skiparse schedule: full, dual_end[:F], uniform, every_k:K, "
                                   "or one pattern per block: full,token,group,...", &a.schedule, NULL},
      {"--sparse-ratio", NULL, "P", "override the Skiparse sparse ratio P (2 in OSP-Next)", &a.sparse_ratio, NULL},
      {"--quant", NULL, "hif8|none", "override the config's quant and quant_attn: HiF8 on the blocks' linears "
                                     "and attention inputs, as OSP-Next simulates it (PAPER.md 7), or none",
       &a.quant, NULL},
      {"--device", NULL, "cpu|cuda", "where the forward runs (default cpu; cuda computes in bf16 with f32 "
                                     "accumulation)", &a.device, NULL},
      {"--grad-output", NULL, "G.safetensors", "also run the backward: G holds `velocity`, the gradient of a loss "
                                               "with respect to the velocity; the output then also gets `latents` "
                                               "and every parameter's gradient, under the weights' own names", &a.grad_output, NULL},
      {"--checkpoint", NULL, NULL, "with --grad-output: keep only each block's input and recompute the block in the "
                                   "backward (activation checkpointing)", NULL, &a.checkpoint},
      {"--sp", NULL, "ulysses|ssp", "under mpirun -np N: how Skiparse blocks split the sequence over the ranks "
                                    "(default ssp; full blocks always run Ulysses)", &a.sp, NULL},
      {"--cfg-parallel", NULL, NULL, "under mpirun: split the batch over two halves of the ranks (the conditional "
                                     "and unconditional passes of classifier-free guidance)", NULL, &a.cfg_parallel},
      {"--verbose", "-v", NULL, "print the schedule, the FLOPs of each block, where the time went and, over "
                                "several ranks, the bytes each block sent", NULL, &a.verbose},
      {"--output", "-o", "O.safetensors", "where to write velocity [B,16,F,H,W] (float32)", &a.output, NULL},
      {0},
  };
  cli_command command = {
      .name = "dit",
      .usage = "osp dit --weights W.safetensors [--config C.json] --inputs I.safetensors [--grad-output G.safetensors] "
               "-o O.safetensors",
      .summary = "Runs one forward pass of the DiT and writes the predicted velocity (with --grad-output, "
                 "the backward too, and the gradients).",
      .details = "The context is used as given: no mask, cross-attention sees every row (pipelines pad\n"
                 "prompts to 512 rows with zeros, as Wan2.1 and diffusers do). Inputs may be any float\n"
                 "dtype; they are computed in float32 on the CPU, in bf16 on CUDA (--device cuda). The\n"
                 "output is float32, written to a temporary\n"
                 "file and renamed, so a failed run leaves no output behind.\n"
                 "With --grad-output, the output holds `velocity`, `latents` (the gradient of the loss with\n"
                 "respect to the latents) and the gradient of every parameter under the weight file's own\n"
                 "tensor names (original Wan2.1 names with --random-weights), all float32; no gradient is\n"
                 "computed for the timestep or the context.\n"
                 "Under mpirun -np N every rank reads the inputs and the weights, the forward is spread\n"
                 "over the ranks (--sp, --cfg-parallel) and rank 0 writes the output.",
      .options = options,
  };
  int rc = cli_parse(&command, argc, argv);
  if (rc) return rc < 0 ? CLI_EXIT_OK : rc;
  if (!a.weights == !a.random_seed) return cli_usage_error(&command, "give exactly one of --weights and --random-weights");
  if (a.random_seed && !a.config && !a.preset)
    return cli_usage_error(&command, "--random-weights needs --config or --preset");
  if (a.config && a.preset) return cli_usage_error(&command, "give --config or --preset, not both");
  if (!a.inputs == !a.random_inputs) return cli_usage_error(&command, "give exactly one of --inputs and --random-inputs");
  if (!a.output) return cli_usage_error(&command, "missing -o O.safetensors");
  if (a.checkpoint && !a.grad_output) return cli_usage_error(&command, "--checkpoint needs --grad-output");
  cli_ranks ranks = {0};
  osp_device device;
  osp_status status = cli_parse_device(a.device, OSP_CPU, &device);
  if (status == OSP_OK) status = cli_ranks_start(a.sp, a.cfg_parallel, device, &ranks);
  if (status == OSP_OK && ranks.split.batch && a.grad_output)
    status = osp_fail(OSP_ERR_UNSUPPORTED, "--grad-output runs over one sequence-parallel group: --cfg-parallel "
                                           "splits only the forward");
  if (status == OSP_OK) status = run(&a, &ranks);
  rc = status == OSP_OK ? CLI_EXIT_OK : cli_ranks_failure(&ranks, status);
  cli_ranks_finish(&ranks);
  return rc;
}
