/* Running the VAE chunk by chunk (PAPER.md 3). A chunk goes through the tower step by step: each
 * step reads its input from one activation arena and writes its output into the other (emptied
 * first), with its temporaries in a scratch arena emptied after it; the feature caches and the
 * whole-sequence tensors live in a state arena. The arenas are sized by running the same code once
 * with arenas that only count (no op runs) over the first two chunks, whose shapes every later
 * chunk repeats.
 *
 * The arenas live on the VAE's device. Activations and caches are in its dtype (f32 on the CPU;
 * bf16 on CUDA, every op computing in f32: convolutions accumulate in f32 on tensor cores); the
 * last convolution of a tower writes f32 (the decoded pixels, the encoder's moments), and so do
 * the latent statistics. Inputs and outputs are host f32 tensors on every device: on CUDA each
 * chunk's frames pass through a host staging arena (the input's converted on upload, the decoded
 * frames on download). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/log.h"
#include "core/status.h"
#include "model/vae.h"
#include "model/vae_internal.h"
#include "ops/conv.h"
#include "ops/ops.h"

enum { CAUSAL_HISTORY = 2, DOWNSAMPLE_HISTORY = 1 };

static const int64_t origin[5] = {0};

/* A 3×3×3 causal conv: time comes from the cache in front, H and W padded by 1. */
static const osp_conv3d_geometry causal_geometry = {{1, 1, 1}, {{0, 0}, {1, 1}, {1, 1}}, 1};
/* 1×1×1 convs, and the (3, 1, 1) time convs behind their caches. */
static const osp_conv3d_geometry plain_geometry = {{1, 1, 1}, {{0, 0}, {0, 0}, {0, 0}}, 1};
/* Nearest ×2, then a 3×3 conv padded by 1. */
static const osp_conv3d_geometry upsample_geometry = {{1, 1, 1}, {{0, 0}, {1, 1}, {1, 1}}, 2};
/* Zeros right and bottom, then a 3×3 conv of stride 2. */
static const osp_conv3d_geometry downsample_geometry = {{1, 2, 2}, {{0, 0}, {0, 1}, {0, 1}}, 1};
/* The downsample's time conv: stride 2 over the cached frame and the chunk. */
static const osp_conv3d_geometry downsample_time_geometry = {{2, 1, 1}, {{0, 0}, {0, 0}, {0, 0}}, 1};

typedef struct {
  const osp_vae *vae;
  const osp_vae_tower *tower;
  bool measuring;       /* the arenas only count: no op runs */
  bool first_chunk;
  osp_arena state;      /* feature caches and whole-sequence tensors, kept across chunks */
  osp_arena act[2];     /* a step's input and its output */
  int current;          /* the arena holding the current activation */
  osp_arena scratch;    /* a step's temporaries */
  osp_arena host;       /* host staging of a chunk's input or output (a device other than the CPU) */
  osp_dtype dtype;      /* the activations' */
  osp_tensor *caches;   /* [tower->cache_count]; no dimensions until first used */
} vae_run;

/* An activation: in the device's dtype (f32 on the CPU, bf16 on CUDA). */
static osp_status new_tensor(const vae_run *r, osp_arena *arena, int ndim, const int64_t *shape, osp_tensor *t) {
  return osp_arena_tensor(arena, r->dtype, ndim, shape, t);
}

/* ---- Steps and their parts ---- */

/* The arena the next step writes its output to (emptied: it held the previous step's input),
 * with the scratch emptied too. */
static osp_arena *begin_step(vae_run *r) {
  osp_arena *out = &r->act[1 - r->current];
  osp_arena_reset(out, 0);
  osp_arena_reset(&r->scratch, 0);
  return out;
}

static void end_step(vae_run *r) { r->current = 1 - r->current; }

/* y = conv(x behind history) into `arena` as dtype, its im2col scratch released after. */
static osp_status conv(vae_run *r, const osp_vae_conv *c, const osp_tensor *x, const osp_tensor *history,
                       const osp_conv3d_geometry *g, osp_arena *arena, osp_dtype dtype, osp_tensor *y) {
  int64_t shape[5];
  OSP_TRY(osp_conv3d_output_shape(x, history, &c->weight, g, shape));
  OSP_TRY(osp_arena_tensor(arena, dtype, 5, shape, y));
  const size_t mark = osp_arena_mark(&r->scratch), bytes = osp_conv3d_scratch_bytes(x, history, &c->weight, g);
  osp_tensor scratch = {0};
  if (bytes) OSP_TRY(osp_arena_tensor(&r->scratch, OSP_U8, 1, (int64_t[]){(int64_t)bytes}, &scratch));
  osp_status status = r->measuring ? OSP_OK : osp_conv3d(x, history, &c->weight, &c->bias, g, bytes ? &scratch : NULL, y);
  osp_arena_reset(&r->scratch, mark);
  return status;
}

/* The feature cache `index` for input x: [B, C, frames, H, W] from the state arena, zeros, made
 * on first use (before the first chunk every causal conv sees zero frames). */
static osp_status cache_of(vae_run *r, int index, const osp_tensor *x, int64_t frames, osp_tensor **cache) {
  *cache = &r->caches[index];
  if ((*cache)->ndim) return OSP_OK;
  OSP_TRY(new_tensor(r, &r->state, 5, (int64_t[]){x->shape[0], x->shape[1], frames, x->shape[3], x->shape[4]}, *cache));
  return r->measuring ? OSP_OK : osp_zero(*cache);
}

/* The cache moves on to the last frames of [cache, x]: x's own where it has enough, else the
 * cache's newest frames shifted to the front and x behind them. */
static osp_status advance_cache(const vae_run *r, osp_tensor *cache, const osp_tensor *x) {
  if (r->measuring) return OSP_OK;
  const int64_t n = cache->shape[2], T = x->shape[2];
  int64_t size[5] = {x->shape[0], x->shape[1], n < T ? n : T, x->shape[3], x->shape[4]};
  if (T < n) {
    int64_t keep[5] = {size[0], size[1], n - T, size[3], size[4]};
    OSP_TRY(osp_copy_region(cache, (int64_t[]){0, 0, T, 0, 0}, cache, (int64_t[]){0, 0, 0, 0, 0}, keep));
  }
  return osp_copy_region(x, (int64_t[]){0, 0, T - size[2], 0, 0}, cache, (int64_t[]){0, 0, n - size[2], 0, 0}, size);
}

/* A causal conv over the chunk x behind its cache of the previous chunks' last input frames. */
static osp_status causal_conv(vae_run *r, const osp_vae_conv *c, const osp_tensor *x, int64_t history,
                              const osp_conv3d_geometry *g, osp_arena *arena, osp_dtype dtype, osp_tensor *y) {
  osp_tensor *cache;
  OSP_TRY(cache_of(r, c->cache, x, history, &cache));
  OSP_TRY(conv(r, c, x, cache, g, arena, dtype, y));
  return advance_cache(r, cache, x);
}

/* y = SiLU(RMS_norm(x)) over channels; y may be x. */
static osp_status norm_silu(const vae_run *r, const osp_tensor *x, const osp_tensor *gamma, osp_tensor *y) {
  return r->measuring ? OSP_OK : osp_channel_rmsnorm_silu(x, gamma, y);
}

static osp_status add_in_place(const vae_run *r, osp_tensor *y, const osp_tensor *x) {
  return r->measuring ? OSP_OK : osp_add(y, x, y);
}

/* y = conv2(SiLU(norm2(conv1(SiLU(norm1(x)))))) + shortcut(x) (the identity where in = out). */
static osp_status residual(vae_run *r, const osp_vae_layer *l, const osp_tensor *x, osp_arena *out, osp_tensor *y) {
  osp_tensor a, h, s;
  OSP_TRY(new_tensor(r, &r->scratch, 5, x->shape, &a));
  OSP_TRY(norm_silu(r, x, &l->norm1, &a));
  OSP_TRY(causal_conv(r, &l->conv1, &a, CAUSAL_HISTORY, &causal_geometry, &r->scratch, r->dtype, &h));
  OSP_TRY(norm_silu(r, &h, &l->norm2, &h));
  OSP_TRY(causal_conv(r, &l->conv2, &h, CAUSAL_HISTORY, &causal_geometry, out, r->dtype, y));
  if (!l->has_shortcut) return add_in_place(r, y, x);
  OSP_TRY(conv(r, &l->shortcut, x, NULL, &plain_geometry, &r->scratch, r->dtype, &s));
  return add_in_place(r, y, &s);
}

/* Third i of the qkv weight [3C, C] (rows [i·C, (i + 1)·C)) or of its bias [3C]. */
static osp_tensor qkv_part(const osp_tensor *t, int i, int64_t C) {
  const int64_t shape[2] = {C, C};
  const size_t offset = (size_t)(i * osp_tensor_numel(t) / 3) * osp_dtype_size(t->dtype);
  return osp_tensor_make((char *)t->data + offset, t->dtype, t->device, t->ndim, shape);
}

/* Single-head attention within each frame over its H·W pixels: x normed, turned channel-last,
 * q, k, v from one 1×1 conv (rows of its weight), softmax(q·kᵀ/√C)·v, projected, turned back,
 * plus x. */
static osp_status attention(vae_run *r, const osp_vae_layer *l, const osp_tensor *x, osp_arena *out, osp_tensor *y) {
  const int64_t B = x->shape[0], C = x->shape[1], T = x->shape[2], HW = x->shape[3] * x->shape[4];
  const int64_t first[3] = {B, C, T * HW}, last[3] = {B, T * HW, C}, rows[4] = {B * T, HW, 1, C};
  osp_tensor normed, tokens, qkv[3], o, projected, scratch = {0};
  OSP_TRY(new_tensor(r, &r->scratch, 3, first, &normed));
  OSP_TRY(new_tensor(r, &r->scratch, 3, last, &tokens));
  for (int i = 0; i < 3; i++) OSP_TRY(new_tensor(r, &r->scratch, 4, rows, &qkv[i]));
  OSP_TRY(new_tensor(r, &r->scratch, 4, rows, &o));
  OSP_TRY(new_tensor(r, &r->scratch, 3, last, &projected));
  const int64_t scratch_bytes = (int64_t)osp_attention_scratch_bytes(r->vae->device);
  if (scratch_bytes) OSP_TRY(osp_arena_tensor(&r->scratch, OSP_U8, 1, &scratch_bytes, &scratch));
  OSP_TRY(new_tensor(r, out, 5, x->shape, y));
  if (r->measuring) return OSP_OK;
  osp_tensor x3, y3, o_rows, q_rows;
  OSP_TRY(osp_tensor_reshape(x, 3, first, &x3));
  OSP_TRY(osp_tensor_reshape(y, 3, first, &y3));
  OSP_TRY(osp_channel_rmsnorm(&x3, &l->norm1, NULL, &normed));
  OSP_TRY(osp_transpose(&normed, &tokens));
  for (int i = 0; i < 3; i++) {
    const osp_tensor w = qkv_part(&l->qkv_weight, i, C), b = qkv_part(&l->qkv_bias, i, C);
    OSP_TRY(osp_tensor_reshape(&qkv[i], 3, last, &q_rows));
    OSP_TRY(osp_linear(&tokens, &w, &b, &q_rows));
  }
  OSP_TRY(osp_attention(&qkv[0], &qkv[1], &qkv[2], NULL, 1.0f / sqrtf((float)C), scratch_bytes ? &scratch : NULL,
                        &o));
  OSP_TRY(osp_tensor_reshape(&o, 3, last, &o_rows));
  OSP_TRY(osp_linear(&o_rows, &l->proj_weight, &l->proj_bias, &projected));
  OSP_TRY(osp_transpose(&projected, &y3));
  return osp_add(y, x, y);
}

/* The time conv's [B, 2C, T, H, W] into [B, C, 2T, H, W]: frame 2t + i is channel half i of t. */
static osp_status interleave(const vae_run *r, const osp_tensor *doubled, osp_tensor *frames) {
  if (r->measuring) return OSP_OK;
  const int64_t B = frames->shape[0], C = frames->shape[1], T = doubled->shape[2];
  const int64_t size[5] = {B, C, 1, frames->shape[3], frames->shape[4]};
  for (int64_t t = 0; t < T; t++)
    for (int64_t i = 0; i < 2; i++)
      OSP_TRY(osp_copy_region(doubled, (int64_t[]){0, i * C, t, 0, 0}, frames, (int64_t[]){0, 0, 2 * t + i, 0, 0}, size));
  return OSP_OK;
}

/* up3d: on every chunk but the first, the causal time conv doubles the frames; then, as up2d,
 * nearest ×2 and the 3×3 conv. */
static osp_status upsample(vae_run *r, const osp_vae_layer *l, const osp_tensor *x, osp_arena *out, osp_tensor *y) {
  if (l->mode == OSP_VAE_UPSAMPLE_2D || r->first_chunk) return conv(r, &l->resample, x, NULL, &upsample_geometry, out, r->dtype, y);
  osp_tensor doubled, frames;
  OSP_TRY(causal_conv(r, &l->time_conv, x, CAUSAL_HISTORY, &plain_geometry, &r->scratch, r->dtype, &doubled));
  OSP_TRY(new_tensor(r, &r->scratch, 5, (int64_t[]){x->shape[0], x->shape[1], 2 * x->shape[2], x->shape[3], x->shape[4]},
                     &frames));
  OSP_TRY(interleave(r, &doubled, &frames));
  return conv(r, &l->resample, &frames, NULL, &upsample_geometry, out, r->dtype, y);
}

/* down2d: zero pad right and bottom, 3×3 stride 2. down3d then, on every chunk but the first
 * (which only fills the cache), the time conv of stride 2 over the cached last frame and the chunk. */
static osp_status downsample(vae_run *r, const osp_vae_layer *l, const osp_tensor *x, osp_arena *out, osp_tensor *y) {
  if (l->mode == OSP_VAE_DOWNSAMPLE_2D) return conv(r, &l->resample, x, NULL, &downsample_geometry, out, r->dtype, y);
  if (!r->first_chunk) {
    osp_tensor s;
    OSP_TRY(conv(r, &l->resample, x, NULL, &downsample_geometry, &r->scratch, r->dtype, &s));
    return causal_conv(r, &l->time_conv, &s, DOWNSAMPLE_HISTORY, &downsample_time_geometry, out, r->dtype, y);
  }
  osp_tensor *cache;
  OSP_TRY(conv(r, &l->resample, x, NULL, &downsample_geometry, out, r->dtype, y));
  OSP_TRY(cache_of(r, l->time_conv.cache, y, DOWNSAMPLE_HISTORY, &cache));
  return advance_cache(r, cache, y);
}

static osp_status layer(vae_run *r, const osp_vae_layer *l, const osp_tensor *x, osp_arena *out, osp_tensor *y) {
  switch (l->kind) {
    case OSP_VAE_RESIDUAL: return residual(r, l, x, out, y);
    case OSP_VAE_ATTENTION: return attention(r, l, x, out, y);
    case OSP_VAE_RESAMPLE:
      return l->mode == OSP_VAE_UPSAMPLE_2D || l->mode == OSP_VAE_UPSAMPLE_3D ? upsample(r, l, x, out, y)
                                                                              : downsample(r, l, x, out, y);
  }
  return osp_fail(OSP_ERR_ARGUMENT, "VAE: unknown layer kind %d", (int)l->kind);
}

/* One chunk through the tower: conv_in, the layers, the head (norm, SiLU, conv_out). x lives in
 * act[current]; so does the result, in f32. */
static osp_status run_tower(vae_run *r, const osp_tensor *x, osp_tensor *result) {
  const osp_vae_tower *t = r->tower;
  osp_tensor in = *x, out;
  OSP_TRY(causal_conv(r, &t->conv_in, &in, CAUSAL_HISTORY, &causal_geometry, begin_step(r), r->dtype, &out));
  end_step(r);
  for (int i = 0; i < t->layer_count; i++) {
    in = out;
    OSP_TRY(layer(r, &t->layers[i], &in, begin_step(r), &out));
    end_step(r);
  }
  in = out;
  osp_arena *arena = begin_step(r);
  osp_tensor a;
  OSP_TRY(new_tensor(r, &r->scratch, 5, in.shape, &a));
  OSP_TRY(norm_silu(r, &in, &t->norm_out, &a));
  OSP_TRY(causal_conv(r, &t->conv_out, &a, CAUSAL_HISTORY, &causal_geometry, arena, OSP_F32, result));
  end_step(r);
  return OSP_OK;
}

/* ---- Whole videos: a direction is its tower and what it does before, per chunk and after ---- */

typedef struct {
  const osp_tensor *in;
  osp_tensor *out;
  int chunks;
  bool unclamped; /* decode: leave the video unclamped (tiles, which are clamped once blended) */
  osp_tensor sequence; /* decode: the post-quant latents; encode: every chunk's encoder output */
} job;

typedef struct {
  const char *name;
  osp_status (*begin)(vae_run *r, job *j);
  osp_status (*chunk)(vae_run *r, job *j, int i);
  osp_status (*end)(vae_run *r, job *j);
} direction;

/* A host f32 tensor of `shape` in the staging arena (emptied first). */
static osp_status staging(vae_run *r, const int64_t shape[5], osp_tensor *t) {
  osp_arena_reset(&r->host, 0);
  return osp_arena_tensor(&r->host, OSP_F32, 5, shape, t);
}

/* Frames [first, first + count) of `source` (the VAE's device, or the host) into a new tensor of
 * `dtype` in `arena`: a region copy on one device, else through the staging arena. */
static osp_status take_frames(vae_run *r, const osp_tensor *source, int64_t first, int64_t count, osp_arena *arena,
                              osp_dtype dtype, osp_tensor *x) {
  const int64_t *s = source->shape, shape[5] = {s[0], s[1], count, s[3], s[4]}, at[5] = {0, 0, first, 0, 0};
  OSP_TRY(osp_arena_tensor(arena, dtype, 5, shape, x));
  if (source->device == x->device) return r->measuring ? OSP_OK : osp_copy_region(source, at, x, origin, shape);
  osp_tensor host;
  OSP_TRY(staging(r, shape, &host));
  if (r->measuring) return OSP_OK;
  OSP_TRY(osp_copy_region(source, at, &host, origin, shape));
  return osp_copy(&host, x);
}

/* y (the VAE's device) into `dest` (host f32) from frame `first` on: a region copy on one device,
 * else through the staging arena. */
static osp_status give_frames(vae_run *r, const osp_tensor *y, osp_tensor *dest, int64_t first) {
  const int64_t at[5] = {0, 0, first, 0, 0};
  if (y->device == dest->device) return r->measuring ? OSP_OK : osp_copy_region(y, origin, dest, at, y->shape);
  osp_tensor host;
  OSP_TRY(staging(r, y->shape, &host));
  if (r->measuring) return OSP_OK;
  OSP_TRY(osp_copy(y, &host));
  return osp_copy_region(&host, origin, dest, at, y->shape);
}

/* A chunk's input: frames [first, first + count) of `source`, as activations in act[current]. */
static osp_status chunk_input(vae_run *r, const osp_tensor *source, int64_t first, int64_t count, osp_tensor *x) {
  osp_arena_reset(&r->act[r->current], 0);
  return take_frames(r, source, first, count, &r->act[r->current], r->dtype, x);
}

/* z_raw = z / inv_std + mean (from the latents in f32 on the device), then post_quant_conv, for
 * every latent frame at once. */
static osp_status decode_begin(vae_run *r, job *j) {
  osp_tensor latents, raw;
  OSP_TRY(take_frames(r, j->in, 0, j->in->shape[2], &r->scratch, OSP_F32, &latents));
  OSP_TRY(new_tensor(r, &r->scratch, 5, j->in->shape, &raw));
  if (!r->measuring) OSP_TRY(osp_channel_denormalize(&latents, &r->vae->latents_mean, &r->vae->inv_std, &raw));
  return conv(r, &r->vae->post_quant_conv, &raw, NULL, &plain_geometry, &r->state, r->dtype, &j->sequence);
}

/* Latent frame i → 1 video frame (i = 0) or 4, clamped to [−1, 1], into the video behind the
 * frames before. */
static osp_status decode_chunk(vae_run *r, job *j, int i) {
  osp_tensor x, y;
  OSP_TRY(chunk_input(r, &j->sequence, i, 1, &x));
  OSP_TRY(run_tower(r, &x, &y));
  if (!j->unclamped && !r->measuring) OSP_TRY(osp_clamp(&y, -1.0f, 1.0f, &y));
  return give_frames(r, &y, j->out, i == 0 ? 0 : 1 + (int64_t)(i - 1) * r->tower->temporal_factor);
}

static osp_status decode_end(vae_run *r, job *j) {
  (void)r;
  (void)j;
  return OSP_OK;
}

/* The encoder's outputs (f32, as the tower gives them) for every latent frame. */
static osp_status encode_begin(vae_run *r, job *j) {
  const int64_t *o = j->out->shape, shape[5] = {o[0], 2 * o[1], o[2], o[3], o[4]};
  return osp_arena_tensor(&r->state, OSP_F32, 5, shape, &j->sequence);
}

/* Video frames 0 (i = 0) or 1 + 4(i − 1) .. 4i → latent frame i of the encoder's output. */
static osp_status encode_chunk(vae_run *r, job *j, int i) {
  const int64_t factor = r->tower->temporal_factor;
  osp_tensor x, y;
  OSP_TRY(chunk_input(r, j->in, i == 0 ? 0 : 1 + (i - 1) * factor, i == 0 ? 1 : factor, &x));
  OSP_TRY(run_tower(r, &x, &y));
  return r->measuring ? OSP_OK : osp_copy_region(&y, origin, &j->sequence, (int64_t[]){0, 0, i, 0, 0}, y.shape);
}

/* quant_conv, then the posterior mean (the first z channels), normalised: (μ − mean) · inv_std,
 * into the latents. */
static osp_status encode_end(vae_run *r, job *j) {
  osp_arena_reset(&r->scratch, 0);
  osp_tensor moments, mu;
  OSP_TRY(conv(r, &r->vae->quant_conv, &j->sequence, NULL, &plain_geometry, &r->scratch, OSP_F32, &moments));
  OSP_TRY(osp_arena_tensor(&r->scratch, OSP_F32, 5, j->out->shape, &mu));
  if (!r->measuring) {
    OSP_TRY(osp_copy_region(&moments, origin, &mu, origin, mu.shape));
    OSP_TRY(osp_channel_normalize(&mu, &r->vae->latents_mean, &r->vae->inv_std, &mu));
  }
  return give_frames(r, &mu, j->out, 0);
}

static const direction decoding = {"decode", decode_begin, decode_chunk, decode_end};
static const direction encoding = {"encode", encode_begin, encode_chunk, encode_end};

/* ---- Planning and running ---- */

enum { ARENAS = 5 }; /* state, two of activations, scratch (the device's), host staging */

static void arenas_of(vae_run *r, osp_arena *arenas[ARENAS]) {
  osp_arena *all[ARENAS] = {&r->state, &r->act[0], &r->act[1], &r->scratch, &r->host};
  for (int i = 0; i < ARENAS; i++) arenas[i] = all[i];
}

static const char *const arena_names[ARENAS] = {"VAE state", "VAE activations", "VAE activations", "VAE scratch",
                                                "VAE host staging"};

static void free_run(vae_run *r) {
  osp_arena *arenas[ARENAS];
  arenas_of(r, arenas);
  for (int i = 0; i < ARENAS; i++) osp_arena_free(arenas[i]);
  free(r->caches);
}

static osp_status start_run(const osp_vae *vae, const osp_vae_tower *tower, bool measuring, vae_run *r) {
  *r = (vae_run){.vae = vae, .tower = tower, .measuring = measuring, .dtype = osp_device_dtype(vae->device)};
  r->caches = calloc((size_t)tower->cache_count + 1, sizeof *r->caches);
  if (!r->caches) return osp_fail(OSP_ERR_MEMORY, "cannot allocate %d feature caches", tower->cache_count);
  return OSP_OK;
}

/* begin, chunks [0, chunks), end. */
static osp_status run_chunks(vae_run *r, const direction *d, job *j, int chunks, osp_vae_progress *progress) {
  OSP_TRY(d->begin(r, j));
  for (int i = 0; i < chunks; i++) {
    r->first_chunk = i == 0;
    OSP_TRY(d->chunk(r, j, i));
    if (progress && progress->on_frame && !r->measuring) progress->on_frame(progress->user, i + 1, chunks);
  }
  return d->end(r, j);
}

/* The arenas' peaks over the first two chunks (every later one repeats the second's shapes). The
 * measuring arenas stand for the VAE's device (the staging one for the host). */
static osp_status measure(const osp_vae *vae, const osp_vae_tower *tower, const direction *d, job *j,
                          size_t peak[ARENAS]) {
  vae_run r;
  osp_arena *arenas[ARENAS];
  osp_status status = start_run(vae, tower, true, &r);
  arenas_of(&r, arenas);
  for (int i = 0; i < ARENAS; i++) {
    *arenas[i] = osp_arena_measuring(arena_names[i]);
    arenas[i]->device = i == ARENAS - 1 ? OSP_CPU : vae->device;
  }
  if (status == OSP_OK) status = run_chunks(&r, d, j, j->chunks < 2 ? j->chunks : 2, NULL);
  for (int i = 0; i < ARENAS; i++) peak[i] = arenas[i]->peak;
  free(r.caches);
  return status;
}

/* What the device holds at the peak: state, activations and scratch (not the host staging). */
static size_t device_bytes(const size_t peak[ARENAS]) { return peak[0] + peak[1] + peak[2] + peak[3]; }

static osp_status run_direction(const osp_vae *vae, const osp_vae_tower *tower, const direction *d, job *j,
                                osp_vae_progress *progress) {
  size_t peak[ARENAS];
  OSP_TRY(measure(vae, tower, d, j, peak));
  if (progress) progress->planned_bytes = device_bytes(peak);
  osp_debug("VAE %s plan: state %.1f MiB, activations 2 x %.1f MiB, scratch %.1f MiB; host staging %.1f MiB",
            d->name, peak[0] / 1048576.0, (peak[1] > peak[2] ? peak[1] : peak[2]) / 1048576.0, peak[3] / 1048576.0,
            peak[4] / 1048576.0);
  vae_run r;
  osp_arena *arenas[ARENAS];
  osp_status status = start_run(vae, tower, false, &r);
  arenas_of(&r, arenas);
  for (int i = 0; status == OSP_OK && i < ARENAS; i++)
    status = osp_device_arena(arenas[i], arena_names[i], i == ARENAS - 1 ? OSP_CPU : vae->device, peak[i]);
  if (status == OSP_OK) status = run_chunks(&r, d, j, j->chunks, progress);
  if (status != OSP_OK) osp_fail_context(status, "VAE %s", d->name);
  free_run(&r);
  return status;
}

/* ---- The entry points ---- */

osp_status osp_vae_decoded_shape(const osp_vae *vae, const osp_tensor *latents, int64_t shape[5]) {
  const osp_vae_config *c = &vae->config;
  char buf[160];
  if (!latents || latents->ndim != 5 || latents->shape[1] != c->z_dim)
    return osp_fail(OSP_ERR_SHAPE, "latents: expected [B, %d, F, H, W] (the VAE's z_dim channels), found %s", c->z_dim,
                    latents ? osp_shape_string(latents, buf, sizeof buf) : "NULL");
  const int64_t *s = latents->shape, f = vae->decoder.spatial_factor;
  const int64_t result[5] = {s[0], c->out_channels, 1 + (s[2] - 1) * vae->decoder.temporal_factor, s[3] * f, s[4] * f};
  for (int d = 0; d < 5; d++) shape[d] = result[d];
  return OSP_OK;
}

osp_status osp_vae_encoded_shape(const osp_vae *vae, const osp_tensor *video, int64_t shape[5]) {
  const osp_vae_config *c = &vae->config;
  const int64_t factor = vae->encoder.temporal_factor;
  char buf[160];
  if (!video || video->ndim != 5 || video->shape[1] != c->in_channels)
    return osp_fail(OSP_ERR_SHAPE, "video: expected [B, %d, F, H, W] (the VAE's in_channels), found %s", c->in_channels,
                    video ? osp_shape_string(video, buf, sizeof buf) : "NULL");
  if ((video->shape[2] - 1) % factor)
    return osp_fail(OSP_ERR_SHAPE, "video: expected 1 + %lld·k frames (the encoder takes 1 frame, then chunks of %lld), "
                    "found %lld", (long long)factor, (long long)factor, (long long)video->shape[2]);
  int64_t h = video->shape[3], w = video->shape[4];
  for (int i = 0; i < c->levels - 1; i++) {
    if (h < 2 || w < 2)
      return osp_fail(OSP_ERR_SHAPE, "video: %lld x %lld pixels is too small for %d downsamplings",
                      (long long)video->shape[3], (long long)video->shape[4], c->levels - 1);
    h = (h - 2) / 2 + 1;
    w = (w - 2) / 2 + 1;
  }
  const int64_t result[5] = {video->shape[0], c->z_dim, 1 + (video->shape[2] - 1) / factor, h, w};
  for (int d = 0; d < 5; d++) shape[d] = result[d];
  return OSP_OK;
}

/* input and output host f32 tensors (on every device), the output of `shape`. */
static osp_status check_io(const char *in_name, const osp_tensor *in, const char *out_name, const osp_tensor *out,
                           const int64_t shape[5]) {
  OSP_TRY(osp_check_f32_cpu(in_name, in));
  OSP_TRY(osp_check_f32_cpu(out_name, out));
  return osp_check_shape(out_name, out, 5, shape);
}

static osp_status decode(const osp_vae *vae, const osp_tensor *latents, osp_tensor *video, osp_vae_progress *progress,
                         bool clamp) {
  int64_t shape[5];
  OSP_TRY(osp_vae_decoded_shape(vae, latents, shape));
  OSP_TRY(check_io("latents", latents, "video", video, shape));
  job j = {.in = latents, .out = video, .chunks = (int)latents->shape[2], .unclamped = !clamp};
  return run_direction(vae, &vae->decoder, &decoding, &j, progress);
}

osp_status osp_vae_decode(const osp_vae *vae, const osp_tensor *latents, osp_tensor *video,
                          osp_vae_progress *progress) {
  return decode(vae, latents, video, progress, true);
}

osp_status vae_decode_unclamped(const osp_vae *vae, const osp_tensor *latents, osp_tensor *video,
                                osp_vae_progress *progress) {
  return decode(vae, latents, video, progress, false);
}

osp_status osp_vae_decode_plan(const osp_vae *vae, const int64_t latent_shape[5], size_t *bytes) {
  const osp_tensor latents = osp_tensor_make(NULL, OSP_F32, vae->device, 5, latent_shape);
  int64_t shape[5];
  OSP_TRY(osp_vae_decoded_shape(vae, &latents, shape));
  osp_tensor video = osp_tensor_make(NULL, OSP_F32, vae->device, 5, shape);
  job j = {.in = &latents, .out = &video, .chunks = (int)latent_shape[2]};
  size_t peak[ARENAS];
  OSP_TRY(measure(vae, &vae->decoder, &decoding, &j, peak));
  *bytes = device_bytes(peak);
  return OSP_OK;
}

osp_status osp_vae_encode(const osp_vae *vae, const osp_tensor *video, osp_tensor *latents,
                          osp_vae_progress *progress) {
  int64_t shape[5];
  OSP_TRY(osp_vae_encoded_shape(vae, video, shape));
  OSP_TRY(check_io("video", video, "latents", latents, shape));
  job j = {.in = video, .out = latents, .chunks = (int)shape[2]};
  return run_direction(vae, &vae->encoder, &encoding, &j, progress);
}
