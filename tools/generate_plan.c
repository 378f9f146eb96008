/* The memory plan of a generation (generate_plan.h). Each component reports what it would hold:
 * weights (as the engine keeps them: on the CPU the text encoder's as stored, the DiT and the VAE
 * in f32; on CUDA all three in bf16) and its working memory (the activation arenas the DiT and
 * the VAE plan for these shapes, the encoder's for 512 tokens). Every component runs on the chosen
 * device and they are held together, so its peak is every weight plus the largest working set of
 * the three phases (encode, sample, decode). */
#include "generate_plan.h"

#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "core/safetensors.h"
#include "core/status.h"
#include "model/dit.h"
#include "model/umt5.h"
#include "model/vae.h"
#include "ops/ops.h"

typedef struct {
  osp_model_config dit;
  osp_umt5_config text;
  osp_vae_config vae;
  size_t text_weights; /* as stored (a bf16 file stays bf16) */
  const char *label;
} plan_model;

static double gib(size_t bytes) { return (double)bytes / (1024.0 * 1024.0 * 1024.0); }

/* "5.68 B", "127.0 M", "8.3 K" parameters, in a buffer of the caller's. */
static const char *count_text(double count, char *buf, size_t size) {
  if (count >= 1e9) snprintf(buf, size, "%.2f B", count / 1e9);
  else if (count >= 1e6) snprintf(buf, size, "%.1f M", count / 1e6);
  else snprintf(buf, size, "%.1f K", count / 1e3);
  return buf;
}

/* The bytes of every tensor in a weights file, from its header. */
static osp_status file_bytes(const char *path, size_t *bytes) {
  osp_st_file file;
  OSP_TRY(osp_st_open(path, &file));
  *bytes = 0;
  for (int i = 0; i < file.count; i++) *bytes += (size_t)(file.entries[i].end - file.entries[i].begin);
  osp_st_close(&file);
  return OSP_OK;
}

static osp_status read_folder(const char *dir, plan_model *m) {
  osp_model_dir files;
  OSP_TRY(osp_model_dir_read(dir, &files));
  if (files.layout == OSP_LAYOUT_MANIFEST)
    return osp_fail(OSP_ERR_UNSUPPORTED, "%s: --dry-run plans Wan2.1 models; this is %s", dir,
                    osp_model_layout_name(files.layout));
  OSP_TRY(osp_config_load(files.dit_config, &m->dit));
  if (files.layout == OSP_LAYOUT_ORIGINAL) { /* the release's built-in configs, its converted files */
    osp_umt5_config_xxl(&m->text);
    osp_vae_config_wan21(&m->vae);
    OSP_TRY(file_bytes(files.text_encoder, &m->text_weights));
    m->label = dir;
    return OSP_OK;
  }
  char path[OSP_PATH_BYTES + 32];
  const char *const stems[] = {"model", NULL};
  snprintf(path, sizeof path, "%s/config.json", files.text_encoder);
  OSP_TRY(osp_umt5_config_load(path, &m->text));
  OSP_TRY(osp_st_locate(files.text_encoder, stems, path, sizeof path));
  OSP_TRY(file_bytes(path, &m->text_weights));
  snprintf(path, sizeof path, "%s/config.json", files.vae);
  OSP_TRY(osp_vae_config_load(path, &m->vae));
  m->label = dir;
  return OSP_OK;
}

static osp_status read_preset(const char *preset, plan_model *m) {
  OSP_TRY(osp_config_preset(preset, &m->dit));
  osp_umt5_config_xxl(&m->text);
  m->text_weights = (size_t)osp_umt5_parameter_count(&m->text) * 2; /* bf16, as Wan2.1 ships it */
  osp_vae_config_wan21(&m->vae);
  m->label = preset;
  return OSP_OK;
}

osp_status generate_plan_print(const char *dir, const char *preset, osp_device device, const osp_t2v_settings *s) {
  plan_model m = {0};
  OSP_TRY(dir ? read_folder(dir, &m) : read_preset(preset, &m));
  if (s->frames < 1 || (s->frames - 1) % 4 || s->height % 16 || s->width % 16 || s->height < 16 || s->width < 16)
    return osp_fail(OSP_ERR_ARGUMENT, "--dry-run: %lld frames of %lld x %lld: expected 1 + 4k frames and sides that "
                    "are multiples of 16", (long long)s->frames, (long long)s->width, (long long)s->height);
  const int64_t passes = s->guidance == 1.0 ? 1 : 2, z = m.vae.z_dim, rows = 512;
  const int64_t latent[5] = {1, z, (s->frames - 1) / 4 + 1, s->height / 8, s->width / 8};
  const int64_t n = z * latent[2] * latent[3] * latent[4];
  size_t dit_weights, dit_activations, vae_plan;
  OSP_TRY(osp_dit_weight_bytes(&m.dit, osp_device_dtype(device), &dit_weights));
  OSP_TRY(osp_dit_activation_bytes(&m.dit, device, passes, latent + 2, rows, &dit_activations));
  const bool on_host = device == OSP_CPU;
  osp_vae vae;
  OSP_TRY(osp_vae_shapes(&m.vae, &vae));
  vae.device = device; /* the plan in the device's dtype */
  osp_status status = osp_vae_decode_plan(&vae, latent, &vae_plan);
  const size_t vae_weights = (size_t)vae.parameter_count * osp_dtype_size(osp_device_dtype(device));
  osp_vae_free(&vae);
  OSP_TRY(status);
  /* umT5 on the host keeps its file's dtype; on CUDA its matrices are bf16 (its norms' f32 is a
   * rounding error of this). */
  const size_t text_weights = on_host ? m.text_weights : (size_t)osp_umt5_parameter_count(&m.text) * 2;
  const size_t text_activations = osp_umt5_activation_bytes(&m.text, device, rows);
  /* The sampler's buffers (t2v.c): the sample, the batch, timesteps, contexts, velocities, the
   * guided velocity, and UniPC's three history tensors. */
  const size_t sampler = (size_t)((1 + passes + passes + 1 + 3) * n + passes * (1 + rows * m.dit.text_dim)) * 4;
  const size_t video = (size_t)(3 * s->frames * s->height * s->width) * (4 + 1); /* f32 decoded, then 8-bit frames */
  const char *where = on_host ? "cpu" : "cuda";
  printf("osp generate --dry-run: %s, %lld frames of %lld x %lld, %s, on %s\n", m.label, (long long)s->frames,
         (long long)s->width, (long long)s->height, passes == 2 ? "guidance (2 passes a step)" : "no guidance",
         on_host ? "the CPU" : "CUDA");
  char text_count[32], dit_count[32], vae_count[32];
  count_text((double)osp_umt5_parameter_count(&m.text), text_count, sizeof text_count);
  count_text(dit_weights / (on_host ? 4.0 : 2.0), dit_count, sizeof dit_count);
  count_text((double)vae_weights / osp_dtype_size(osp_device_dtype(device)), vae_count, sizeof vae_count);
  printf("  %-13s %-6s %-11s %-24s %s\n", "component", "device", "parameters", "weights", "working memory");
  printf("  %-13s %-6s %-11s %7.2f GiB %-12s %7.2f GiB activations (%lld tokens)\n", "text encoder", where, text_count,
         gib(text_weights), on_host ? "as stored" : "bf16", gib(text_activations), (long long)rows);
  printf("  %-13s %-6s %-11s %7.2f GiB %-12s %7.2f GiB activations (%lld x %lldx%lldx%lld latents)\n", "DiT", where,
         dit_count, gib(dit_weights), on_host ? "f32" : "bf16", gib(dit_activations), (long long)passes,
         (long long)latent[2], (long long)latent[3], (long long)latent[4]);
  printf("  %-13s %-6s %-11s %7.2f GiB %-12s %7.2f GiB planned decode\n", "VAE", where, vae_count, gib(vae_weights),
         on_host ? "f32" : "bf16", gib(vae_plan));
  printf("  %-13s %-6s %-11s %-24s %7.2f GiB samples, contexts, history; %.2f GiB video\n", "sampler", "cpu", "", "",
         gib(sampler), gib(video));
  /* The components are held together; the phases (encode, sample, decode) run one after another. */
  const size_t weights = text_weights + dit_weights + vae_weights;
  size_t phase = text_activations;
  if (dit_activations > phase) phase = dit_activations;
  if (vae_plan > phase) phase = vae_plan;
  if (on_host) {
    if (vae_plan + video > phase) phase = vae_plan + video;
    printf("  peak on the host: %.2f GiB (weights %.2f GiB + sampler %.2f GiB + the largest phase %.2f GiB)\n",
           gib(weights + sampler + phase), gib(weights), gib(sampler), gib(phase));
    return OSP_OK;
  }
  printf("  peak on the host: %.2f GiB (sampler and video; loading holds each component's f32 copy there once)\n",
         gib(sampler + video));
  printf("  peak on the GPU: %.2f GiB (weights %.2f GiB + the largest phase %.2f GiB)\n", gib(weights + phase),
         gib(weights), gib(phase));
  return OSP_OK;
}
