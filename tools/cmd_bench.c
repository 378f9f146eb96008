/* osp bench: how fast each op, each block and the whole DiT forward run on a device, next to what
 * the device can do. First the measured peak (a large bf16/f32 matmul; a device-to-device copy),
 * then every op of a block at the shapes of a resolution, then whole forwards of the model with
 * random weights, per schedule. A table on stdout, and the same numbers as JSON with --json. */
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_ranks.h"
#include "bench_traffic.h"
#include "bench_umt5.h"
#include "bench_vae.h"
#include "commands.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/rng.h"
#include "core/status.h"
#include "model/dit.h"
#include "model/dit_train.h"
#include "ops/grad.h"
#include "ops/ops.h"
#include "sparse/plan.h"

typedef struct {
  const char *device, *preset, *resolutions, *schedules, *json, *repeat, *sp, *ranks, *config;
  long long repeat_count, rank_count; /* --repeat, --ranks, parsed */
  int skip_ops, skip_forward, train, cfg_parallel, dry_run, vae, umt5;
} bench_arguments;

typedef struct {
  const cli_ranks *ranks; /* the forwards run over them; rank 0 alone reports */
  osp_device device;
  int repeat;
  double peak_flops, peak_bytes; /* measured: per second */
  json_t *results;               /* array of result objects */
} bench;

/* One row of the report: time per call, and what it achieved against the measured peak. */
static void report(bench *b, const char *section, const char *name, double seconds, double flops,
                   double bytes) {
  if (b->ranks->rank != 0) return;
  const double tflops = flops / seconds * 1e-12, gbs = bytes / seconds * 1e-9;
  /* communication moves bytes between devices: no device peak to hold it against */
  const bool has_peak = strcmp(section, "comm") != 0;
  const double fraction = flops > 0 ? flops / seconds / b->peak_flops : bytes > 0 ? bytes / seconds / b->peak_bytes : 0;
  printf("%-9s %-48s %11.3f ms", section, name, seconds * 1e3);
  if (flops > 0)
    printf(" %9.1f TFLOP/s %6.1f%% of peak", tflops, 100 * fraction);
  else if (bytes > 0 && has_peak)
    printf(" %9.1f GB/s    %6.1f%% of peak", gbs, 100 * fraction);
  else if (bytes > 0)
    printf(" %9.1f GB/s sent, %.1f MB", gbs, bytes * 1e-6);
  printf("\n");
  fflush(stdout);
  json_array_append_new(b->results,
                        json_pack("{s:s, s:s, s:f, s:f, s:f, s:f, s:f, s:f}", "section", section, "name", name,
                                  "ms", seconds * 1e3, "flops", flops, "bytes", bytes, "tflops", tflops,
                                  "gbs", gbs, "peak_fraction", fraction));
}

/* ---- Timing ------------------------------------------------------------------------------ */

typedef osp_status (*bench_call)(void *context);

/* Seconds per call: one warm-up call, then `repeat` calls between two synchronisations. */
static osp_status time_call(const bench *b, bench_call call, void *context, double *seconds) {
  OSP_TRY(call(context));
  OSP_TRY(osp_device_synchronize(b->device));
  const double start = osp_seconds();
  for (int i = 0; i < b->repeat; i++) OSP_TRY(call(context));
  OSP_TRY(osp_device_synchronize(b->device));
  *seconds = (osp_seconds() - start) / b->repeat;
  return OSP_OK;
}

/* ---- Op contexts ------------------------------------------------------------------------- */

typedef struct {
  const osp_tensor *x, *w, *bias;
  osp_tensor *y;
} linear_call;
static osp_status run_linear(void *p) {
  linear_call *c = p;
  return osp_linear(c->x, c->w, c->bias, c->y);
}

typedef struct {
  const osp_tensor *q, *k, *v, *mask, *scratch;
  osp_tensor *out;
  float scale;
} attention_call;
static osp_status run_attention(void *p) {
  attention_call *c = p;
  return osp_attention(c->q, c->k, c->v, c->mask, c->scale, c->scratch, c->out);
}

/* Training's attention: the forward that keeps lse, and the backward (dq, dk, dv += ...). */
typedef struct {
  attention_call forward;
  osp_tensor *lse, *dout, *dq, *dk, *dv;
  const osp_tensor *backward_scratch;
} attention_grad_call;
static osp_status run_attention_lse(void *p) {
  attention_grad_call *c = p;
  const attention_call *f = &c->forward;
  return osp_attention_forward_lse(f->q, f->k, f->v, f->mask, f->scale, f->scratch, f->out, c->lse);
}
static osp_status run_attention_backward(void *p) {
  attention_grad_call *c = p;
  const attention_call *f = &c->forward;
  return osp_attention_backward(f->q, f->k, f->v, f->mask, f->scale, f->out, c->lse, c->dout,
                                c->backward_scratch, c->dq, c->dk, c->dv);
}

typedef struct {
  const osp_tensor *a, *b, *c;
  osp_tensor *y, *z;
  const osp_tensor *index;
  float eps;
} rows_call;
static osp_status run_layernorm(void *p) {
  rows_call *c = p;
  return osp_layernorm(c->a, NULL, NULL, c->eps, c->y);
}
static osp_status run_rmsnorm(void *p) {
  rows_call *c = p;
  return osp_rmsnorm(c->a, c->b, c->eps, c->y);
}
static osp_status run_modulate(void *p) {
  rows_call *c = p;
  return osp_modulate(c->a, c->b, c->c, c->y);
}
static osp_status run_gated_add(void *p) {
  rows_call *c = p;
  return osp_gated_add(c->y, c->a, c->b);
}
static osp_status run_gelu(void *p) {
  rows_call *c = p;
  return osp_gelu_tanh(c->a, c->y);
}
static osp_status run_rope(void *p) {
  rows_call *c = p;
  return osp_rope_apply(c->y, c->a, c->b);
}
static osp_status run_gather(void *p) {
  rows_call *c = p;
  return osp_gather_rows(c->a, c->index, c->y);
}
static osp_status run_layernorm_modulate(void *p) {
  rows_call *c = p;
  return osp_layernorm_modulate(c->a, c->b, c->c, c->eps, c->y);
}
static osp_status run_gated_add_layernorm(void *p) {
  rows_call *c = p;
  return osp_gated_add_layernorm(c->y, c->a, c->b, NULL, NULL, c->b, c->c, c->eps, c->z);
}
static osp_status run_rmsnorm_rope(void *p) {
  rows_call *c = p;
  return osp_rmsnorm_rope(c->y, c->c, c->eps, c->a, c->b);
}
static osp_status run_gated_add_gather(void *p) {
  rows_call *c = p;
  return osp_gated_add_gather(c->a, c->b, c->c, c->index, c->y);
}
static osp_status run_linear_gelu(void *p) {
  linear_call *c = p;
  return osp_linear_gelu_tanh(c->x, c->w, c->bias, c->y);
}
static osp_status run_copy(void *p) {
  rows_call *c = p;
  return osp_copy(c->a, c->y);
}

/* ---- Peak -------------------------------------------------------------------------------- */

/* The device's own ceiling for this run: an 8192³ matmul and a 1 GiB device-to-device copy. */
static osp_status measure_peak(bench *b) {
  const osp_dtype dtype = osp_device_dtype(b->device);
  const int64_t n = b->device == OSP_CPU ? 2048 : 8192, bytes = 1 << 30;
  const int64_t copy_elements = bytes / (int64_t)osp_dtype_size(dtype);
  osp_arena arena;
  size_t need = 3 * osp_arena_align((size_t)(n * n) * osp_dtype_size(dtype)) + 2 * osp_arena_align((size_t)bytes);
  OSP_TRY(osp_device_arena(&arena, "bench peak", b->device, need));
  osp_tensor x, w, y, src, dst;
  osp_status status = OSP_OK;
  const int64_t square[2] = {n, n};
  osp_tensor *squares[3] = {&x, &w, &y};
  for (int i = 0; i < 3 && status == OSP_OK; i++) status = osp_arena_tensor(&arena, dtype, 2, square, squares[i]);
  if (status == OSP_OK) status = osp_arena_tensor(&arena, dtype, 1, &copy_elements, &src);
  if (status == OSP_OK) status = osp_arena_tensor(&arena, dtype, 1, &copy_elements, &dst);
  if (status == OSP_OK) status = osp_randn_fill(1, 0, 1.0f, &x);
  if (status == OSP_OK) status = osp_randn_fill(1, 1, 1.0f, &w);
  if (status == OSP_OK) status = osp_randn_fill(1, 2, 1.0f, &src);
  double seconds = 0;
  linear_call matmul = {&x, &w, NULL, &y};
  if (status == OSP_OK) status = time_call(b, run_linear, &matmul, &seconds);
  if (status == OSP_OK) b->peak_flops = 2.0 * n * n * n / seconds;
  rows_call copy = {.a = &src, .y = &dst};
  if (status == OSP_OK) status = time_call(b, run_copy, &copy, &seconds);
  if (status == OSP_OK) b->peak_bytes = 2.0 * bytes / seconds;
  osp_arena_free(&arena);
  if (status == OSP_OK) {
    report(b, "peak", "matmul (the ceiling for FLOP rates)", 2.0 * n * n * n / b->peak_flops, 2.0 * n * n * n, 0);
    report(b, "peak", "copy (the ceiling for byte rates)", 2.0 * bytes / b->peak_bytes, 0, 2.0 * bytes);
  }
  return status;
}

/* ---- Ops of one block -------------------------------------------------------------------- */

/* A resolution as latent frames × height × width (Wan's VAE: 4× in time, 8× in space). */
typedef struct {
  const char *name;
  int64_t latent[3];
} resolution;

static const resolution resolutions[] = {
    {"480p", {21, 60, 104}}, {"720p", {21, 90, 160}}, {"768p", {21, 96, 160}},
};

static osp_status find_resolution(const char *name, resolution *out) {
  for (size_t i = 0; i < sizeof resolutions / sizeof resolutions[0]; i++)
    if (!strcmp(name, resolutions[i].name)) {
      *out = resolutions[i];
      return OSP_OK;
    }
  long long f, h, w;
  char end;
  if (sscanf(name, "%lldx%lldx%lld%c", &f, &h, &w, &end) == 3 && f > 0 && h > 0 && w > 0) {
    *out = (resolution){name, {f, h, w}};
    return OSP_OK;
  }
  return osp_fail(OSP_ERR_ARGUMENT, "--res: expected 480p, 720p, 768p or latent FxHxW, found '%s'", name);
}

typedef struct {
  osp_tensor x, y, spare, hidden, q, k, v, out, w_c, w_ffn_in, w_ffn_out, bias_c, bias_ffn, norm_w, shift, scale;
  osp_tensor context_k, context_v, rope_cos, rope_sin, index, mask, sparse_q, sparse_k, sparse_v, sparse_out;
  osp_tensor scratch; /* of osp_attention, where the device needs one */
  osp_tensor lse, dout, dq, dk, dv, backward_scratch; /* the attention backward's */
} op_tensors;

/* Every operand of one block's ops at N tokens (S slots in the Skiparse layout), from one arena. */
static osp_status allocate_op_tensors(osp_arena *a, const osp_model_config *c, const osp_sparse_plan *plan,
                                      int64_t N, op_tensors *t) {
  const osp_dtype D = osp_device_dtype(a->device);
  const int64_t C = c->dim, F = c->ffn_dim, H = c->num_heads, Dh = c->head_dim, L = 512;
  const osp_layout *sparse = &plan->layout[OSP_PATTERN_TOKEN];
  const int64_t S = sparse->rows * sparse->tokens;
  struct {
    osp_tensor *t;
    osp_dtype dtype;
    int ndim;
    int64_t shape[4];
  } list[] = {
      {&t->x, D, 2, {S, C}}, {&t->y, D, 2, {S, C}}, {&t->spare, D, 2, {S, C}}, {&t->hidden, D, 2, {N, F}},
      {&t->q, D, 4, {1, N, H, Dh}}, {&t->k, D, 4, {1, N, H, Dh}}, {&t->v, D, 4, {1, N, H, Dh}},
      {&t->out, D, 4, {1, N, H, Dh}}, {&t->w_c, D, 2, {C, C}}, {&t->w_ffn_in, D, 2, {F, C}},
      {&t->w_ffn_out, D, 2, {C, F}}, {&t->bias_c, D, 1, {C}}, {&t->bias_ffn, D, 1, {F}},
      {&t->norm_w, D, 1, {C}}, {&t->shift, OSP_F32, 2, {1, C}}, {&t->scale, OSP_F32, 2, {1, C}},
      {&t->context_k, D, 4, {1, L, H, Dh}}, {&t->context_v, D, 4, {1, L, H, Dh}},
      {&t->rope_cos, OSP_F32, 2, {N, Dh / 2}}, {&t->rope_sin, OSP_F32, 2, {N, Dh / 2}},
      {&t->index, OSP_I32, 1, {S}}, {&t->mask, OSP_U8, 2, {sparse->rows, sparse->tokens}},
      {&t->sparse_q, D, 4, {sparse->rows, sparse->tokens, H, Dh}},
      {&t->sparse_k, D, 4, {sparse->rows, sparse->tokens, H, Dh}},
      {&t->sparse_v, D, 4, {sparse->rows, sparse->tokens, H, Dh}},
      {&t->sparse_out, D, 4, {sparse->rows, sparse->tokens, H, Dh}},
      {&t->lse, OSP_F32, 3, {1, H, N}}, {&t->dout, D, 4, {1, N, H, Dh}}, {&t->dq, D, 4, {1, N, H, Dh}},
      {&t->dk, D, 4, {1, N, H, Dh}}, {&t->dv, D, 4, {1, N, H, Dh}},
  };
  for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
    OSP_TRY(osp_arena_tensor(a, list[i].dtype, list[i].ndim, list[i].shape, list[i].t));
  const int64_t backward_scratch = (int64_t)osp_attention_backward_scratch_bytes(a->device, t->q.shape);
  if (backward_scratch) OSP_TRY(osp_arena_tensor(a, OSP_U8, 1, &backward_scratch, &t->backward_scratch));
  const int64_t scratch = (int64_t)osp_attention_scratch_bytes(a->device);
  return scratch ? osp_arena_tensor(a, OSP_U8, 1, &scratch, &t->scratch) : OSP_OK;
}

/* Fills the operands: random values, the plan's switch table and key mask. */
static osp_status fill_op_tensors(const osp_sparse_plan *plan, op_tensors *t) {
  osp_tensor *random[] = {&t->x, &t->y, &t->hidden, &t->q, &t->k, &t->v, &t->w_c, &t->w_ffn_in,
                          &t->w_ffn_out, &t->bias_c, &t->bias_ffn, &t->norm_w, &t->shift, &t->scale,
                          &t->context_k, &t->context_v, &t->rope_cos, &t->rope_sin, &t->sparse_q,
                          &t->sparse_k, &t->sparse_v, &t->dout, &t->dq, &t->dk, &t->dv};
  for (size_t i = 0; i < sizeof random / sizeof random[0]; i++)
    OSP_TRY(osp_randn_fill(3, (uint32_t)i, 0.1f, random[i]));
  OSP_TRY(osp_copy(&plan->gather[OSP_PATTERN_TOKEN][OSP_PATTERN_GROUP], &t->index));
  const osp_tensor *mask = &plan->key_mask[OSP_PATTERN_TOKEN];
  return mask->data ? osp_copy(mask, &t->mask) : OSP_OK; /* no padding, no mask */
}

static osp_status bench_ops(bench *b, const osp_model_config *config, const resolution *r) {
  osp_model_config c = *config; /* a plan that holds both Skiparse layouts and the switch between them */
  c.num_layers = 2;
  c.schedule[0] = OSP_PATTERN_TOKEN;
  c.schedule[1] = OSP_PATTERN_GROUP;
  c.sparse_ratio = 2;
  const int64_t grid[3] = {r->latent[0] / c.patch_size[0], r->latent[1] / c.patch_size[1], r->latent[2] / c.patch_size[2]};
  const int64_t N = grid[0] * grid[1] * grid[2], C = c.dim, F = c.ffn_dim, H = c.num_heads, Dh = c.head_dim;
  osp_arena measure_host = osp_arena_measuring("plan"), host, measure = osp_arena_measuring("bench ops"), arena;
  osp_sparse_plan plan;
  op_tensors t = {0};
  OSP_TRY(osp_sparse_plan_make(&c, 1, grid, &measure_host, &plan));
  measure.device = b->device;
  OSP_TRY(allocate_op_tensors(&measure, &c, &plan, N, &t));
  OSP_TRY(osp_arena_init(&host, "plan", measure_host.peak));
  osp_status status = osp_sparse_plan_make(&c, 1, grid, &host, &plan);
  if (status == OSP_OK) status = osp_device_arena(&arena, "bench ops", b->device, measure.peak);
  if (status != OSP_OK) {
    osp_arena_free(&host);
    return status;
  }
  status = allocate_op_tensors(&arena, &c, &plan, N, &t);
  if (status == OSP_OK) status = fill_op_tensors(&plan, &t);
  const osp_layout *sparse = &plan.layout[OSP_PATTERN_TOKEN];
  const int64_t S = sparse->rows * sparse->tokens;
  const double e = (double)osp_dtype_size(t.x.dtype), n_c = (double)N * C;
  char name[96];
  double s = 0;
#define BENCH(fn, ctx, label, flops, bytes)                                          \
  if (status == OSP_OK) {                                                            \
    status = time_call(b, fn, ctx, &s);                                              \
    snprintf(name, sizeof name, "%s %s", r->name, label);                            \
    if (status == OSP_OK) report(b, "op", name, s, flops, bytes);                    \
  }
  osp_tensor x = t.x, y = t.y;
  x.shape[0] = y.shape[0] = N; /* natural order: the first N slots */
  linear_call proj = {&x, &t.w_c, &t.bias_c, &y};
  BENCH(run_linear, &proj, "linear q/k/v/o (N x C x C)", 2.0 * N * C * C, 0);
  linear_call ffn_in = {&x, &t.w_ffn_in, &t.bias_ffn, &t.hidden};
  BENCH(run_linear, &ffn_in, "linear ffn in (N x C -> F)", 2.0 * N * C * F, 0);
  linear_call ffn_out = {&t.hidden, &t.w_ffn_out, &t.bias_c, &x};
  BENCH(run_linear, &ffn_out, "linear ffn out (N x F -> C)", 2.0 * N * C * F, 0);
  const float scale = 1.0f / sqrtf((float)Dh);
  const osp_tensor *scratch = t.scratch.data ? &t.scratch : NULL;
  attention_call full = {&t.q, &t.k, &t.v, NULL, scratch, &t.out, scale};
  BENCH(run_attention, &full, "attention full", 4.0 * N * N * H * Dh, 0);
  const bool padded = plan.key_mask[OSP_PATTERN_TOKEN].data != NULL;
  attention_call skip = {&t.sparse_q, &t.sparse_k, &t.sparse_v, padded ? &t.mask : NULL, scratch, &t.sparse_out, scale};
  const double rows = (double)sparse->rows, per_row = (double)sparse->tokens;
  BENCH(run_attention, &skip, padded ? "attention skiparse (P=2, key mask)" : "attention skiparse (P=2)", 4.0 * rows * per_row * per_row * H * Dh, 0);
  attention_call cross = {&t.q, &t.context_k, &t.context_v, NULL, scratch, &t.out, scale};
  BENCH(run_attention, &cross, "attention cross (512 keys)", 4.0 * N * 512 * H * Dh, 0);
  /* training: the forward that keeps lse, then the backward on its out and lse (FLOPs counted as
   * FlashAttention counts them: 2.5 forwards, the five block products) */
  attention_grad_call grad = {full, &t.lse, &t.dout, &t.dq, &t.dk, &t.dv,
                              t.backward_scratch.data ? &t.backward_scratch : NULL};
  BENCH(run_attention_lse, &grad, "attention full, forward keeping lse", 4.0 * N * N * H * Dh, 0);
  BENCH(run_attention_backward, &grad, "attention full, backward (dq, dk, dv)", 10.0 * N * N * H * Dh, 0);
  osp_tensor x3 = x, y3 = y;
  x3.ndim = y3.ndim = 3;
  x3.shape[0] = y3.shape[0] = 1, x3.shape[1] = y3.shape[1] = N, x3.shape[2] = y3.shape[2] = C;
  x3.stride[2] = y3.stride[2] = 1, x3.stride[1] = y3.stride[1] = C, x3.stride[0] = y3.stride[0] = N * C;
  rows_call norm = {.a = &x, .b = &t.norm_w, .y = &y, .eps = 1e-6f};
  BENCH(run_layernorm, &norm, "layernorm", 0, 2 * n_c * e);
  BENCH(run_rmsnorm, &norm, "rmsnorm", 0, 2 * n_c * e);
  rows_call modulate = {.a = &x3, .b = &t.shift, .c = &t.scale, .y = &y3};
  BENCH(run_modulate, &modulate, "modulate", 0, 2 * n_c * e);
  rows_call gated = {.a = &x3, .b = &t.shift, .y = &y3};
  BENCH(run_gated_add, &gated, "gated residual add", 0, 3 * n_c * e);
  rows_call gelu = {.a = &t.hidden, .y = &t.hidden};
  BENCH(run_gelu, &gelu, "gelu (N x F)", 0, 2.0 * N * F * e);
  rows_call rope = {.a = &t.rope_cos, .b = &t.rope_sin, .y = &t.q};
  BENCH(run_rope, &rope, "rope on q", 0, 2 * n_c * e + 2.0 * N * Dh / 2 * 4);
  rows_call gather = {.a = &t.x, .index = &t.index, .y = &t.y};
  BENCH(run_gather, &gather, "skiparse switch token -> group (gather)", 0, 2.0 * S * C * e);
  /* the fused ops the block runs instead of the ones above */
  BENCH(run_linear_gelu, &ffn_in, "fused: linear ffn in + gelu", 2.0 * N * C * F, 0);
  rows_call norm_modulate = {.a = &x3, .b = &t.shift, .c = &t.scale, .y = &y3, .eps = 1e-6f};
  BENCH(run_layernorm_modulate, &norm_modulate, "fused: layernorm + modulate", 0, 2 * n_c * e);
  osp_tensor normed3 = y3;
  normed3.data = t.out.data;
  rows_call add_norm = {.a = &x3, .b = &t.shift, .c = &t.scale, .y = &y3, .z = &normed3, .eps = 1e-6f};
  BENCH(run_gated_add_layernorm, &add_norm, "fused: gated add + layernorm + modulate", 0, 4 * n_c * e);
  rows_call norm_rope = {.a = &t.rope_cos, .b = &t.rope_sin, .c = &t.norm_w, .y = &t.q, .eps = 1e-6f};
  BENCH(run_rmsnorm_rope, &norm_rope, "fused: rmsnorm + rope on q", 0, 2 * n_c * e + 2.0 * N * Dh / 2 * 4);
  osp_tensor sparse_x = t.x, sparse_y = t.y;
  sparse_x.ndim = sparse_y.ndim = 3;
  sparse_x.shape[0] = sparse_y.shape[0] = sparse->rows, sparse_x.shape[1] = sparse_y.shape[1] = sparse->tokens;
  sparse_x.shape[2] = sparse_y.shape[2] = C;
  sparse_x.stride[0] = sparse_y.stride[0] = sparse->tokens * C, sparse_x.stride[1] = sparse_y.stride[1] = C;
  sparse_x.stride[2] = sparse_y.stride[2] = 1;
  rows_call add_switch = {.a = &sparse_x, .b = &sparse_y, .c = &t.shift, .index = &t.index, .y = &t.spare};
  BENCH(run_gated_add_gather, &add_switch, "fused: gated add + switch token -> group", 0, 3.0 * S * C * e);
#undef BENCH
  osp_arena_free(&arena);
  osp_arena_free(&host);
  return status;
}

/* ---- Whole forwards ---------------------------------------------------------------------- */

static osp_status random_host(int ndim, const int64_t *shape, uint32_t stream, osp_tensor *t) {
  *t = osp_tensor_make(NULL, OSP_F32, OSP_CPU, ndim, shape);
  t->data = malloc(osp_tensor_bytes(t));
  if (!t->data) return osp_fail(OSP_ERR_MEMORY, "bench: no host memory for inputs");
  osp_randn(5, stream, 0, t->data, (size_t)osp_tensor_numel(t));
  return OSP_OK;
}

/* The time rank 0 spent in the sequence group's collectives during the timed forward, and the
 * bytes it sent (GB/s: sent bytes over that time). */
static void report_communication(bench *b, const resolution *r, const char *schedule) {
  const osp_comm_counter total = osp_comm_total(b->ranks->split.sequence);
  const double seconds = total.seconds, bytes = (double)total.bytes_sent;
  char name[160];
  snprintf(name, sizeof name, "%s %s: communication, rank 0 of %d (%s%s)", r->name, schedule, b->ranks->size,
           b->ranks->split.mode == OSP_SP_SSP ? "ssp" : "ulysses", b->ranks->split.batch ? ", cfg" : "");
  if (seconds > 0) report(b, "comm", name, seconds, 0, bytes);
}

static osp_status bench_forward(bench *b, const osp_dit *dit, const resolution *r, const char *schedule) {
  osp_dit scheduled = *dit;
  OSP_TRY(osp_config_set_schedule("--schedule", schedule, &scheduled.config));
  const osp_model_config *c = &scheduled.config;
  const int64_t B = b->ranks->split.batch ? 2 : 1; /* CFG parallelism: the guided pair */
  const int64_t latent[5] = {B, c->in_channels, r->latent[0], r->latent[1], r->latent[2]};
  const int64_t out[5] = {B, c->out_channels, r->latent[0], r->latent[1], r->latent[2]};
  const int64_t grid[3] = {r->latent[0] / c->patch_size[0], r->latent[1] / c->patch_size[1], r->latent[2] / c->patch_size[2]};
  osp_tensor latents = {0}, context = {0}, timestep = {0}, velocity = {0};
  osp_status status = random_host(5, latent, 1, &latents);
  if (status == OSP_OK) status = random_host(3, (int64_t[]){B, 512, c->text_dim}, 2, &context);
  if (status == OSP_OK) status = random_host(1, (int64_t[]){B}, 3, &timestep);
  if (status == OSP_OK) status = random_host(5, out, 4, &velocity);
  for (int64_t i = 0; status == OSP_OK && i < B; i++) ((float *)timestep.data)[i] = 500.0f;
  osp_dit_timing *timing = calloc(1, sizeof *timing);
  if (!timing && status == OSP_OK) status = osp_fail(OSP_ERR_MEMORY, "bench: no memory for timings");
  /* a warm-up forward (plans, library handles), then the timed one, its communication timed alone */
  const osp_dit_parallel *split = &b->ranks->split;
  osp_comm *sequence = split->sequence;
  if (status == OSP_OK) status = osp_dit_forward_parallel(&scheduled, split, &latents, &timestep, &context, &velocity, NULL);
  osp_comm_reset_counters(sequence);
  osp_comm_set_timing(sequence, true);
  if (status == OSP_OK) status = osp_dit_forward_parallel(&scheduled, split, &latents, &timestep, &context, &velocity, timing);
  osp_comm_set_timing(sequence, false);
  if (status == OSP_OK) {
    double by_pattern[OSP_PATTERN_COUNT] = {0}, flops_by_pattern[OSP_PATTERN_COUNT] = {0}, flops = 0;
    int count[OSP_PATTERN_COUNT] = {0};
    for (int i = 0; i < c->num_layers; i++) {
      const osp_dit_flops f = osp_dit_block_flops(c, i, B, grid, 512);
      by_pattern[c->schedule[i]] += timing->block_seconds[i];
      flops_by_pattern[c->schedule[i]] += f.self_attention + f.rest;
      count[c->schedule[i]]++;
      flops += f.self_attention + f.rest;
    }
    char name[128];
    const char *pattern_names[OSP_PATTERN_COUNT] = {"full", "token", "group"};
    for (int k = 0; k < OSP_PATTERN_COUNT; k++) {
      if (!count[k]) continue;
      snprintf(name, sizeof name, "%s %s: one %s block (mean of %d)", r->name, schedule, pattern_names[k], count[k]);
      report(b, "block", name, by_pattern[k] / count[k], flops_by_pattern[k] / count[k] / b->ranks->size, 0);
    }
    snprintf(name, sizeof name, "%s %s: layout changes", r->name, schedule);
    report(b, "forward", name, timing->layout_seconds, 0, 0);
    if (b->ranks->size > 1) report_communication(b, r, schedule);
    snprintf(name, sizeof name, "%s %s: %d-block forward", r->name, schedule, c->num_layers);
    report(b, "forward", name, timing->total_seconds, flops / b->ranks->size, 0);
  }
  free(timing);
  free(latents.data);
  free(context.data);
  free(timestep.data);
  free(velocity.data);
  return status;
}

/* ---- Training: one block's forward + backward ----------------------------------------------- */

typedef struct {
  const osp_dit *dit;
  osp_dit *grads;
  osp_dit_tape *tape;
  osp_tensor latents, timestep, context, velocity, dvelocity;
} train_step;

/* The training forward and the backward (the gradients accumulate; their values do not matter). */
static osp_status run_train_step(void *p) {
  train_step *t = p;
  OSP_TRY(osp_dit_forward_train(t->dit, t->tape, &t->latents, &t->timestep, &t->context, &t->velocity));
  return osp_dit_backward(t->dit, t->tape, &t->dvelocity, t->grads, NULL);
}

/* A one-block model of the preset in `pattern` (its embeddings and head included: a few percent
 * of the block), timed over forward + backward; model FLOPs = 3 × the block's forward (MFU). The
 * tape's bytes with and without checkpointing say what a block's activations cost. */
static osp_status bench_train_block(bench *b, const osp_model_config *preset, const resolution *r,
                                    const char *pattern, bool checkpoint) {
  osp_model_config c = *preset;
  c.num_layers = c.num_full_blocks = 1; /* one block, all-full before the pattern is set */
  OSP_TRY(osp_config_set_schedule("--train", pattern, &c));
  const int64_t latent[5] = {1, c.in_channels, r->latent[0], r->latent[1], r->latent[2]};
  const int64_t grid[3] = {r->latent[0] / c.patch_size[0], r->latent[1] / c.patch_size[1], r->latent[2] / c.patch_size[2]};
  osp_dit dit = {0}, grads = {0};
  train_step t = {.dit = &dit, .grads = &grads};
  const osp_dit_tape_options options = {.batch = 1, .frames = r->latent[0], .height = r->latent[1],
                                        .width = r->latent[2], .text_rows = 512, .checkpoint = checkpoint};
  osp_status status = osp_dit_init_random(&c, 1, b->device, &dit);
  if (status == OSP_OK) status = osp_dit_init_zeros(&dit, b->device, &grads);
  if (status == OSP_OK) status = osp_dit_tape_create(&dit, &options, &t.tape);
  if (status == OSP_OK) status = random_host(5, latent, 1, &t.latents);
  if (status == OSP_OK) status = random_host(3, (int64_t[]){1, 512, c.text_dim}, 2, &t.context);
  if (status == OSP_OK) status = random_host(1, (int64_t[]){1}, 3, &t.timestep);
  if (status == OSP_OK) status = random_host(5, latent, 4, &t.velocity);
  if (status == OSP_OK) status = random_host(5, latent, 5, &t.dvelocity);
  if (status == OSP_OK) ((float *)t.timestep.data)[0] = 500.0f;
  double seconds = 0;
  if (status == OSP_OK) status = time_call(b, run_train_step, &t, &seconds);
  if (status == OSP_OK) {
    const osp_dit_flops f = osp_dit_block_flops(&c, 0, 1, grid, 512);
    char name[128];
    snprintf(name, sizeof name, "%s %s block, forward + backward%s", r->name, pattern,
             checkpoint ? ", checkpointed" : "");
    report(b, "train", name, seconds, 3 * (f.self_attention + f.rest), 0);
    printf("train     %s: activations and gradient buffers of the step %.2f GiB\n", name,
           osp_dit_tape_bytes(t.tape) / 1073741824.0);
  }
  osp_dit_tape_free(t.tape);
  osp_dit_free(&grads);
  osp_dit_free(&dit);
  osp_tensor *host[] = {&t.latents, &t.context, &t.timestep, &t.velocity, &t.dvelocity};
  for (size_t i = 0; i < sizeof host / sizeof host[0]; i++) free(host[i]->data);
  return status;
}

/* ---- The command ------------------------------------------------------------------------- */

/* Calls fn(b, item) for each comma-separated item of a list. */
static osp_status for_each_item(const char *list, osp_status (*fn)(void *, const char *), void *context) {
  char *copy = strdup(list), *save = NULL;
  if (!copy) return osp_fail(OSP_ERR_MEMORY, "out of memory");
  osp_status status = OSP_OK;
  for (char *item = strtok_r(copy, ",", &save); item && status == OSP_OK; item = strtok_r(NULL, ",", &save))
    status = fn(context, item);
  free(copy);
  return status;
}

typedef struct {
  bench *b;
  const bench_arguments *a;
  const osp_model_config *config;
  const osp_dit *dit;
  resolution res;
} run_context;

static osp_status ops_at(void *p, const char *name) {
  run_context *r = p;
  OSP_TRY(find_resolution(name, &r->res));
  return bench_ops(r->b, r->config, &r->res);
}

static osp_status forward_with(void *p, const char *schedule) {
  run_context *r = p;
  return bench_forward(r->b, r->dit, &r->res, schedule);
}

/* The activation memory of a whole training step of the preset, with and without checkpointing
 * (planned, not allocated), next to the weights, gradients and AdamW's moments it trains. */
static osp_status training_memory_at(const bench *b, const osp_model_config *c, const resolution *r) {
  const osp_dit shape_only = {.config = *c, .device = b->device};
  const double weights = (double)osp_config_param_count(c) * osp_dtype_size(osp_device_dtype(b->device));
  const double f32_state = 3.0 * (double)osp_config_param_count(c) * 4; /* grads, m, v */
  for (int checkpoint = 0; checkpoint <= 1; checkpoint++) {
    const osp_dit_tape_options options = {.batch = 1, .frames = r->latent[0], .height = r->latent[1],
                                          .width = r->latent[2], .text_rows = 512, .checkpoint = checkpoint};
    size_t bytes;
    OSP_TRY(osp_dit_tape_measure(&shape_only, &options, &bytes));
    printf("train     %s %d-block step%s: activations %.2f GiB + weights %.2f GiB + f32 gradients and "
           "AdamW moments %.2f GiB = %.2f GiB\n", r->name, c->num_layers, checkpoint ? ", checkpointed" : "",
           bytes / 1073741824.0, weights / 1073741824.0, f32_state / 1073741824.0,
           (bytes + weights + f32_state) / 1073741824.0);
  }
  return OSP_OK;
}

static osp_status training_at(void *p, const char *name) {
  run_context *r = p;
  OSP_TRY(find_resolution(name, &r->res));
  OSP_TRY(bench_train_block(r->b, r->config, &r->res, "full", false));
  OSP_TRY(bench_train_block(r->b, r->config, &r->res, "full", true));
  OSP_TRY(bench_train_block(r->b, r->config, &r->res, "token", false));
  return training_memory_at(r->b, r->config, &r->res);
}

static osp_status forwards_at(void *p, const char *name) {
  run_context *r = p;
  OSP_TRY(find_resolution(name, &r->res));
  return for_each_item(r->a->schedules, forward_with, r);
}

static osp_status vae_at(void *p, const char *name) {
  run_context *r = p;
  OSP_TRY(find_resolution(name, &r->res));
  return bench_vae(r->b->device, r->res.name, r->res.latent, r->b->results);
}

static osp_status write_json(const char *path, const bench *b, const char *model) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  json_t *root = json_pack("{s:s, s:s, s:f, s:f, s:O}", "device", b->device == OSP_CUDA ? "cuda" : "cpu",
                           "model", model, "peak_tflops", b->peak_flops * 1e-12, "peak_gbs",
                           b->peak_bytes * 1e-9, "results", b->results);
  int rc = json_dump_file(root, tmp, JSON_INDENT(1));
  json_decref(root);
  if (rc != 0 || rename(tmp, path) != 0) return osp_fail(OSP_ERR_IO, "%s: cannot write the JSON report", path);
  return OSP_OK;
}

/* The model: --config's file, else --preset (default wan2.1-t2v-14b); *name says which. */
static osp_status choose_model(const bench_arguments *a, osp_model_config *config, const char **name) {
  *name = a->config ? a->config : a->preset ? a->preset : "wan2.1-t2v-14b";
  return a->config ? osp_config_load(a->config, config) : osp_config_preset(*name, config);
}

/* --dry-run: the traffic of every resolution and schedule from the plans alone. */
typedef struct {
  const bench_arguments *a;
  const osp_model_config *config;
  resolution res;
  int value_bytes;
  json_t *results;
} dry_run_context;

static osp_status traffic_with(void *p, const char *schedule) {
  dry_run_context *d = p;
  osp_model_config c = *d->config;
  OSP_TRY(osp_config_set_schedule("--schedule", schedule, &c));
  const bench_traffic_shape shape = {d->res.name, {d->res.latent[0], d->res.latent[1], d->res.latent[2]}};
  return bench_traffic(&c, &shape, (int)d->a->rank_count, d->a->cfg_parallel, d->value_bytes, d->results);
}

static osp_status traffic_at(void *p, const char *name) {
  dry_run_context *d = p;
  OSP_TRY(find_resolution(name, &d->res));
  return for_each_item(d->a->schedules, traffic_with, d);
}

static osp_status dry_run(const bench_arguments *a, osp_device device) {
  osp_model_config config;
  const char *model;
  OSP_TRY(choose_model(a, &config, &model));
  printf("osp bench --dry-run: %s, %lld ranks, no device\n", model, a->rank_count);
  dry_run_context d = {.a = a, .config = &config, .value_bytes = (int)osp_dtype_size(osp_device_dtype(device)),
                       .results = json_array()};
  osp_status status = for_each_item(a->resolutions, traffic_at, &d);
  bench b = {.device = device, .results = d.results};
  if (status == OSP_OK && a->json) status = write_json(a->json, &b, model);
  json_decref(d.results);
  return status;
}

/* --umt5: the text encoder on a prompt of 512 tokens (Wan2.1's text length) and one of 77. */
static osp_status run_umt5(const bench_arguments *a, osp_device device) {
  bench b = {.device = device, .results = json_array()};
  printf("osp bench: umT5-XXL (random weights) on %s\n", device == OSP_CUDA ? "cuda" : "cpu");
  osp_status status = bench_umt5(device, 512, b.results);
  if (status == OSP_OK) status = bench_umt5(device, 77, b.results);
  if (status == OSP_OK && a->json) status = write_json(a->json, &b, "umt5-xxl");
  json_decref(b.results);
  return status;
}

/* --vae: the VAE's decode per resolution, nothing else. */
static osp_status run_vae(const bench_arguments *a, osp_device device) {
  bench b = {.device = device, .results = json_array()};
  run_context r = {.b = &b, .a = a};
  printf("osp bench: the Wan2.1 VAE (random weights) on %s\n", device == OSP_CUDA ? "cuda" : "cpu");
  osp_status status = for_each_item(a->resolutions, vae_at, &r);
  if (status == OSP_OK && a->json) status = write_json(a->json, &b, "wan2.1-vae");
  json_decref(b.results);
  return status;
}

static osp_status run(const bench_arguments *a, const cli_ranks *ranks, osp_device device) {
  bench b = {.repeat = (int)a->repeat_count, .ranks = ranks, .device = device};
  const bool alone = ranks->size == 1, speak = ranks->rank == 0;
  osp_model_config config;
  const char *model;
  OSP_TRY(choose_model(a, &config, &model));
  b.results = json_array();
  if (speak) printf("osp bench: %s on %s, %d calls per op\n", model, b.device == OSP_CUDA ? "cuda" : "cpu", b.repeat);
  if (speak && !alone)
    printf("%d ranks: forwards only (the ops and training sections run on one rank); TFLOP/s and the "
           "fraction of the peak are per GPU\n", ranks->size);
  osp_status status = measure_peak(&b);
  run_context r = {.b = &b, .a = a, .config = &config};
  if (status == OSP_OK && !a->skip_ops && alone) status = for_each_item(a->resolutions, ops_at, &r);
  if (status == OSP_OK && a->train && alone) status = for_each_item(a->resolutions, training_at, &r);
  osp_dit dit = {0};
  if (status == OSP_OK && !a->skip_forward) {
    const double start = osp_seconds();
    status = osp_dit_init_random(&config, 1, b.device, &dit);
    if (status == OSP_OK && speak) printf("random %s weights on the device in %.1f s\n", model, osp_seconds() - start);
    r.dit = &dit;
    if (status == OSP_OK) status = for_each_item(a->resolutions, forwards_at, &r);
    if (speak) printf("peak device memory: %.2f GiB\n", osp_device_peak_bytes(b.device) / 1073741824.0);
  }
  if (status == OSP_OK && a->json && speak) status = write_json(a->json, &b, model);
  osp_dit_free(&dit);
  json_decref(b.results);
  return status;
}

int cmd_bench(int argc, char **argv) {
  bench_arguments a = {.resolutions = "720p,768p", .schedules = "full,dual_end", .repeat_count = 5};
  cli_option options[] = {
      {"--device", NULL, "cpu|cuda", "where to run (default cuda)", &a.device, NULL},
      {"--preset", NULL, "NAME", "the model (default wan2.1-t2v-14b; random weights)", &a.preset, NULL},
      {"--res", NULL, "LIST", "resolutions: 480p, 720p, 768p or latent FxHxW (default 720p,768p)", &a.resolutions, NULL},
      {"--schedule", NULL, "LIST", "forward schedules, as osp dit --schedule (default full,dual_end)", &a.schedules, NULL},
      {"--repeat", NULL, "N", "timed calls per op (default 5)", &a.repeat, NULL},
      {"--no-ops", NULL, NULL, "skip the per-op section", NULL, &a.skip_ops},
      {"--no-forward", NULL, NULL, "skip the whole-forward section", NULL, &a.skip_forward},
      {"--train", NULL, NULL, "also time one block's training forward + backward (full, full checkpointed, "
                              "Skiparse) and report MFU and the step's activation memory", NULL, &a.train},
      {"--json", NULL, "FILE", "also write every number as JSON", &a.json, NULL},
      {"--sp", NULL, "ulysses|ssp", "under mpirun -np N (one rank per GPU): how Skiparse blocks split the sequence "
                                    "(default ssp; full blocks run Ulysses); forwards only", &a.sp, NULL},
      {"--cfg-parallel", NULL, NULL, "under mpirun: the batch over two halves of the ranks", NULL, &a.cfg_parallel},
      {"--dry-run", NULL, NULL, "no device, no weights: print the bytes each rank would send over --ranks N ranks, "
                                "Ulysses and SSP side by side, from the plans alone", NULL, &a.dry_run},
      {"--ranks", NULL, "N", "with --dry-run: how many ranks (with --cfg-parallel, two groups of N/2)", &a.ranks, NULL},
      {"--config", NULL, "C.json", "a model config.json instead of --preset", &a.config, NULL},
      {"--umt5", NULL, NULL, "time the umT5-XXL text encoder instead (random weights; 512 and 77 tokens; "
                             "bench/torch_umt5.py times transformers' on the same work)", NULL, &a.umt5},
      {"--vae", NULL, NULL, "time the Wan2.1 VAE's decode instead (random weights; 81 frames at 480p/720p, or "
                            "latent FxHxW; bench/torch_vae.py times diffusers' on the same shapes)", NULL, &a.vae},
      {0},
  };
  cli_command command = {
      .name = "bench",
      .usage = "osp bench [--device cuda] [--preset wan2.1-t2v-14b] [--res 720p,768p] [--json FILE]",
      .summary = "Times every op, block and the whole forward against the device's measured peak.",
      .details = "The peak is measured in the same run: an 8192^3 matmul for FLOP rates, a 1 GiB\n"
                 "device-to-device copy for byte rates. Ops run at the shapes of one block of the model\n"
                 "at each resolution (the Skiparse ones at sparse ratio 2); forwards use random\n"
                 "weights, one warm-up forward before the timed one. Times are wall-clock between\n"
                 "device synchronisations. bench/torch_wan.py times the same work in PyTorch.",
      .options = options,
  };
  int rc = cli_parse(&command, argc, argv);
  if (rc) return rc < 0 ? CLI_EXIT_OK : rc;
  if (a.repeat && (rc = cli_parse_count(&command, "--repeat", a.repeat, &a.repeat_count))) return rc;
  if (a.repeat_count < 1 || a.repeat_count > 1000000)
    return cli_usage_error(&command, "--repeat expects 1 to 1000000 calls, found %lld", a.repeat_count);
  if (a.ranks && (rc = cli_parse_count(&command, "--ranks", a.ranks, &a.rank_count))) return rc;
  if (a.dry_run != (a.ranks != NULL)) return cli_usage_error(&command, "--dry-run and --ranks N go together");
  if (a.dry_run && (a.rank_count < 2 || a.rank_count > OSP_MAX_RANKS))
    return cli_usage_error(&command, "--ranks expects 2 to %d ranks, found %lld", OSP_MAX_RANKS, a.rank_count);
  if (a.config && a.preset) return cli_usage_error(&command, "give --config or --preset, not both");
  cli_ranks ranks = {0};
  osp_device device;
  osp_status status = cli_parse_device(a.device, OSP_CUDA, &device);
  if (status == OSP_OK && a.dry_run) {
    status = dry_run(&a, device);
    return status == OSP_OK ? CLI_EXIT_OK : cli_failure(status);
  }
  if (status == OSP_OK && a.umt5) {
    status = run_umt5(&a, device);
    return status == OSP_OK ? CLI_EXIT_OK : cli_failure(status);
  }
  if (status == OSP_OK && a.vae) {
    status = run_vae(&a, device);
    return status == OSP_OK ? CLI_EXIT_OK : cli_failure(status);
  }
  if (status == OSP_OK) status = cli_ranks_start(a.sp, a.cfg_parallel, device, &ranks);
  if (status == OSP_OK) status = run(&a, &ranks, device);
  rc = status == OSP_OK ? CLI_EXIT_OK : cli_ranks_failure(&ranks, status);
  cli_ranks_finish(&ranks);
  return rc;
}
