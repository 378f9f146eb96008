/* osp vae-decode and osp vae-encode: the Wan2.1 VAE on tensors from a safetensors file. The
 * contract anyone uses to check the VAE against their own stack: keep it stable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/safetensors.h"
#include "core/status.h"
#include "model/vae.h"

typedef struct {
  const char *model, *inputs, *output, *tile, *tile_stride, *device;
  long long tile_pixels, stride_pixels; /* 0: not tiled */
} vae_arguments;

/* One direction of the command: what it reads, what it writes, and the call between. */
typedef struct {
  const char *name, *input, *output;
  osp_status (*shape)(const osp_vae *vae, const osp_tensor *in, int64_t shape[5]);
  osp_status (*run)(const osp_vae *vae, const osp_tensor *in, osp_tensor *out, osp_vae_progress *progress);
} vae_command;

static osp_status read_input(const char *path, const char *name, osp_tensor *out) {
  osp_st_file file;
  OSP_TRY(osp_st_open(path, &file));
  const osp_st_entry *e = osp_st_find(&file, name);
  osp_status status = e ? OSP_OK : osp_fail(OSP_ERR_MISSING, "%s: missing tensor '%s'", path, name);
  if (status == OSP_OK && e->ndim != 5) {
    status = osp_fail(OSP_ERR_SHAPE, "%s: tensor '%s' must have 5 dimensions [B, C, F, H, W], found %d", path, name, e->ndim);
  }
  if (status == OSP_OK) {
    *out = osp_tensor_make(malloc((size_t)osp_st_numel(e) * sizeof(float) + 1), OSP_F32, OSP_CPU, e->ndim, e->shape);
    if (!out->data) status = osp_fail(OSP_ERR_MEMORY, "%s: cannot allocate tensor '%s'", path, name);
    else osp_st_to_f32(e, out->data);
  }
  osp_st_close(&file);
  return status;
}

typedef struct {
  const char *name;
  double start;
} progress_state;

static void log_frame(void *user, int done, int total) {
  const progress_state *p = user;
  osp_info("%s: latent frame %d/%d, %.2f s", p->name, done, total, osp_seconds() - p->start);
}

/* The VAE on its device: read on the host, then, for another device, copied there. */
static osp_status load(const vae_arguments *a, osp_vae *vae) {
  osp_device device;
  OSP_TRY(cli_parse_device(a->device, OSP_CPU, &device));
  OSP_TRY(osp_vae_load(a->model, vae));
  if (device == OSP_CPU) return OSP_OK;
  osp_vae host = *vae;
  const osp_status status = osp_vae_to_device(&host, device, vae);
  osp_vae_free(&host);
  return status;
}

static osp_status run(const vae_command *c, const vae_arguments *a) {
  osp_vae vae = {0};
  osp_tensor in = {0}, out = {0};
  int64_t shape[5];
  osp_status status = load(a, &vae);
  if (status == OSP_OK) status = read_input(a->inputs, c->input, &in);
  if (status == OSP_OK && (status = c->shape(&vae, &in, shape)) != OSP_OK) osp_fail_context(status, "%s", a->inputs);
  if (status == OSP_OK) {
    out = osp_tensor_make(NULL, OSP_F32, OSP_CPU, 5, shape);
    if (!(out.data = malloc(osp_tensor_bytes(&out) + 1))) status = osp_fail(OSP_ERR_MEMORY, "cannot allocate the output");
  }
  progress_state state = {c->name, osp_seconds()};
  osp_vae_progress progress = {log_frame, &state, 0};
  if (status == OSP_OK && a->tile_pixels)
    status = osp_vae_decode_tiled(&vae, &in, (int)a->tile_pixels, (int)a->stride_pixels, &out, &progress);
  else if (status == OSP_OK)
    status = c->run(&vae, &in, &out, &progress);
  if (status == OSP_OK)
    osp_info("%s: [%lld, %lld, %lld, %lld, %lld] -> [%lld, %lld, %lld, %lld, %lld] in %.3f s, %.1f MiB planned "
             "(caches, activations, scratch; weights apart)", c->name, (long long)in.shape[0], (long long)in.shape[1],
             (long long)in.shape[2], (long long)in.shape[3], (long long)in.shape[4], (long long)shape[0],
             (long long)shape[1], (long long)shape[2], (long long)shape[3], (long long)shape[4],
             osp_seconds() - state.start, progress.planned_bytes / 1048576.0);
  if (status == OSP_OK) {
    osp_st_write_entry entry = {c->output, OSP_ST_F32, 5, shape, out.data};
    status = osp_st_write(a->output, &entry, 1);
  }
  free(in.data);
  free(out.data);
  osp_vae_free(&vae);
  return status;
}

static int command_main(const vae_command *c, const char *usage, const char *summary, const char *details,
                        int argc, char **argv) {
  vae_arguments a = {0};
  char input_help[96], output_help[96];
  snprintf(input_help, sizeof input_help, "a safetensors file with tensor `%s`", c->input);
  snprintf(output_help, sizeof output_help, "where to write `%s` (float32)", c->output);
  cli_option options[] = {
      {"--model", NULL, "DIR", "a diffusers model directory (DIR/vae/config.json and "
                               "DIR/vae/diffusion_pytorch_model.safetensors) or its vae folder", &a.model, NULL},
      {"--inputs", NULL, "I.safetensors", input_help, &a.inputs, NULL},
      {"--output", "-o", "O.safetensors", output_help, &a.output, NULL},
      {"--tile", NULL, "PX", "vae-decode: decode spatial tiles of PX pixels (a multiple of 8; diffusers' default "
                             "256), blended where they overlap as diffusers' tiled decoding does", &a.tile, NULL},
      {"--tile-stride", NULL, "PX", "vae-decode with --tile: a tile every PX pixels (default 3/4 of the tile)",
       &a.tile_stride, NULL},
      {"--device", NULL, "cpu|cuda", "where the VAE runs (default cpu, in float32; cuda keeps weights and "
                                     "activations in bf16 and accumulates in float32)", &a.device, NULL},
      {0},
  };
  cli_command command = {.name = c->name, .usage = usage, .summary = summary, .details = details, .options = options};
  int rc = cli_parse(&command, argc, argv);
  if (rc) return rc < 0 ? CLI_EXIT_OK : rc;
  if (!a.model) return cli_usage_error(&command, "missing --model DIR");
  if (!a.inputs) return cli_usage_error(&command, "missing --inputs I.safetensors");
  if (!a.output) return cli_usage_error(&command, "missing -o O.safetensors");
  if ((a.tile || a.tile_stride) && strcmp(c->name, "vae-decode"))
    return cli_usage_error(&command, "--tile goes with vae-decode");
  if (a.tile_stride && !a.tile) return cli_usage_error(&command, "--tile-stride needs --tile");
  if (a.tile && (rc = cli_parse_count(&command, "--tile", a.tile, &a.tile_pixels))) return rc;
  a.stride_pixels = a.tile_pixels / 32 * 24; /* 3/4 of the tile, a multiple of 8 (256 → 192) */
  if (a.tile_stride && (rc = cli_parse_count(&command, "--tile-stride", a.tile_stride, &a.stride_pixels))) return rc;
  if (a.tile && (a.tile_pixels < 8 || a.tile_pixels > 1 << 16 || a.stride_pixels < 8))
    return cli_usage_error(&command, "--tile %s, stride %lld: expected at least 8 pixels each", a.tile, a.stride_pixels);
  osp_status status = run(c, &a);
  return status == OSP_OK ? CLI_EXIT_OK : cli_failure(status);
}

int cmd_vae_decode(int argc, char **argv) {
  static const vae_command c = {"vae-decode", "latents", "video", osp_vae_decoded_shape, osp_vae_decode};
  return command_main(&c, "osp vae-decode --model DIR --inputs I.safetensors -o O.safetensors",
                      "Decodes latents with the Wan2.1 VAE into a video in [-1, 1].",
                      "I holds `latents` [B, z, F, H, W] in the DiT's normalised space, as the sampler\n"
                      "produces them (any float dtype); the VAE's latents_mean and latents_std undo the\n"
                      "normalisation (z / (1/std) + mean), then the decoder runs one latent frame at a time.\n"
                      "O gets `video` [B, 3, 1 + 4(F - 1), 8H, 8W], clamped to [-1, 1], float32.",
                      argc, argv);
}

int cmd_vae_encode(int argc, char **argv) {
  static const vae_command c = {"vae-encode", "video", "latents", osp_vae_encoded_shape, osp_vae_encode};
  return command_main(&c, "osp vae-encode --model DIR --inputs I.safetensors -o O.safetensors",
                      "Encodes a video with the Wan2.1 VAE into normalised latents.",
                      "I holds `video` [B, 3, 1 + 4k, H, W] in [-1, 1] (any float dtype). The encoder takes\n"
                      "the first frame alone, then chunks of 4. O gets `latents` [B, z, 1 + k, H/8, W/8]: the\n"
                      "posterior mean, normalised as the DiT sees latents ((mean - latents_mean) / latents_std),\n"
                      "float32.",
                      argc, argv);
}
