/* The backward ops of src/ops/grad.h (all but attention's) on CUDA against the same ops on the CPU,
 * through the ops layer, on the same random inputs, with activations in f32 and in bf16.
 *
 * Each case draws its operands on the host, rounds those the GPU holds in bf16 through bf16 (so
 * both sides see the same numbers), and starts every gradient from nonzero random values (rounded
 * through its GPU dtype too). Both sides then run the op twice, so each gradient accumulates two
 * contributions onto its start: a kernel that overwrote instead of adding, or added once, fails
 * the comparison. The GPU runs the two calls again from the same start, and the gradients must be
 * the first runs' bit for bit (determinism: no atomics in the sums).
 *
 * An output passes when max|gpu − cpu| ≤ tolerance · max|cpu| over the whole tensor (for a table
 * row, its whole [Bm, 6, C] table, so the other rows must be left alone):
 *   f32 activations                     1e-5  (f32 arithmetic against the CPU's, sums in another
 *                                               order; the CPU's norms run in double)
 *   bf16 activation gradients           1e-2  (each run rounds the gradient to bf16 once, at most
 *                                               2⁻⁸ of its largest value: 2⁻⁷ after two runs, and
 *                                               some room for the f32 arithmetic)
 *   f32 gradients of bf16 activations   1e-4  (dweight, dbias, table rows: the same bf16 inputs on
 *                                               both sides and f32 sums, in another order, and the
 *                                               tensor cores' f32 accumulation for dweight)
 *   pure movement (gather's, patchify's and unpatchify's backwards): exact, the CPU's result
 *   rounded through the gradient's dtype after each run, as the GPU stores it.
 * Shapes: odd sizes, rows not a multiple of 8 wide (the kernels' value-by-value paths), operands
 * one element off the 16-byte grid, table rows as strided views of [Bm, 6, C] tables, Skiparse's
 * B = P²·Bm batch rows over Bm table rows, row counts that need several partial sums (and, for
 * LayerNorm, several batches of row statistics), and Wan2.1-1.3B's sizes (32760 tokens of 1536).
 *
 * Prints a line per gradient, then the worst error of each op and dtype, then
 * "test_cuda_backward: N passed, N failed". Exits 77 (skip) where there is no GPU. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "cuda/cuda.h"
#include "gpu_test.h"
#include "ops/grad.h"
#include "ops/ops.h"

const char gpu_test_name[] = "test_cuda_backward";

enum { MAX_OPERANDS = 8, RUNS = 2, MAX_SUMMARY = 64 };

static const double F32_TOLERANCE = 1e-5, BF16_GRAD_TOLERANCE = 1e-2, BF16_PARAM_TOLERANCE = 1e-4;
static const float EPS = 1e-6f;
static const uint64_t SEED = 7; /* of the operands' Philox streams */

/* ---- Cases: operands, a call, and the run that judges them ---------------------------------- */

typedef struct {
  const char *name;
  osp_dtype dtype;      /* on the GPU */
  bool gradient, exact, misaligned;
  osp_tensor cpu;       /* host f32: the reference's operand; a gradient's start, then its result */
  osp_tensor gpu;
  void *gpu_base;       /* the allocation (data one element in where misaligned) */
  void *start;          /* a gradient's start as the GPU holds it (dtype) */
} operand;

/* Runs the op on the operands' tensors (in the order the case added them). */
typedef osp_status (*op_call)(osp_tensor *t, int variant);

typedef struct {
  const char *op;
  char what[200];
  osp_dtype dtype; /* of the activations */
  op_call call;
  int variant;
  int count;
  operand o[MAX_OPERANDS];
} op_case;

/* The worst error of each op, activation dtype and gradient dtype, relative to the largest
 * magnitude. */
typedef struct {
  const char *op;
  osp_dtype dtype, grad_dtype;
  double worst, tolerance;
  int outputs;
} summary_row;
static summary_row summary[MAX_SUMMARY];
static int summary_count;

static void record(const char *op, osp_dtype dtype, osp_dtype grad_dtype, double error,
                   double tolerance) {
  int i = 0;
  while (i < summary_count && !(strcmp(summary[i].op, op) == 0 && summary[i].dtype == dtype &&
                                summary[i].grad_dtype == grad_dtype))
    i++;
  if (i == summary_count) {
    if (summary_count == MAX_SUMMARY) return;
    summary[summary_count++] = (summary_row){.op = op, .dtype = dtype, .grad_dtype = grad_dtype};
  }
  if (error > summary[i].worst || isnan(error)) summary[i].worst = error;
  if (tolerance > summary[i].tolerance) summary[i].tolerance = tolerance;
  summary[i].outputs++;
}

__attribute__((format(printf, 5, 6))) static op_case *begin(const char *op, osp_dtype dtype,
                                                            op_call call, int variant,
                                                            const char *fmt, ...) {
  op_case *c = calloc(1, sizeof *c);
  if (!c) must(OSP_ERR_MEMORY, "a case");
  c->op = op, c->dtype = dtype, c->call = call, c->variant = variant;
  va_list args;
  va_start(args, fmt);
  int n = snprintf(c->what, sizeof c->what, "%s %s ", op, osp_dtype_name(dtype));
  vsnprintf(c->what + n, sizeof c->what - (size_t)n, fmt, args);
  va_end(args);
  return c;
}

/* An operand of N(mean, std²) samples, stored on the GPU as dtype. */
static operand *add(op_case *c, const char *name, osp_dtype dtype, bool gradient, int ndim,
                    const int64_t *shape, float mean, float std) {
  operand *o = &c->o[c->count++];
  o->name = name, o->dtype = dtype, o->gradient = gradient;
  o->cpu = host_random(SEED, ndim, shape, mean, std, dtype == OSP_BF16);
  return o;
}

#define SHAPE(...) \
  (int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[]) { __VA_ARGS__ }

/* An input, or a gradient (starting from N(0, 1)). */
#define INPUT(c, name, dtype, mean, std, ...) \
  add(c, name, dtype, false, SHAPE(__VA_ARGS__), mean, std)
#define GRAD(c, name, dtype, ...) add(c, name, dtype, true, SHAPE(__VA_ARGS__), 0.0f, 1.0f)

/* An i32 operand (an index) with the given values. */
static operand *add_index(op_case *c, const char *name, const int32_t *values, int64_t n) {
  operand *o = &c->o[c->count++];
  o->name = name, o->dtype = OSP_I32;
  o->cpu = osp_tensor_make(xmalloc((size_t)n * sizeof(int32_t)), OSP_I32, OSP_CPU, 1, &n);
  memcpy(o->cpu.data, values, (size_t)n * sizeof(int32_t));
  return o;
}

static void upload(operand *o) {
  const size_t elem = osp_dtype_size(o->dtype), offset = o->misaligned ? elem : 0;
  o->gpu = osp_tensor_make(NULL, o->dtype, OSP_CUDA, o->cpu.ndim, o->cpu.shape);
  must(osp_cuda_malloc(osp_tensor_bytes(&o->gpu) + offset, &o->gpu_base), "osp_cuda_malloc");
  o->gpu.data = (char *)o->gpu_base + offset;
  must(osp_copy(&o->cpu, &o->gpu), "upload");
}

/* The GPU tensor's bytes as it holds them. */
static void *download_raw(const operand *o) {
  osp_tensor host = osp_tensor_make(xmalloc(osp_tensor_bytes(&o->gpu)), o->dtype, OSP_CPU,
                                    o->gpu.ndim, o->gpu.shape);
  must(osp_copy(&o->gpu, &host), "download");
  return host.data;
}

static void put_start(operand *o) {
  must(osp_cuda_copy_to_device(o->gpu.data, o->start, osp_tensor_bytes(&o->gpu)), "restart");
}

/* Runs the op RUNS times on the GPU; false (and a failure counted) if a call fails. */
static bool run_gpu(op_case *c) {
  osp_tensor t[MAX_OPERANDS];
  for (int i = 0; i < c->count; i++) t[i] = c->o[i].gpu;
  for (int run = 0; run < RUNS; run++) {
    osp_status status = c->call(t, c->variant);
    if (status == OSP_OK) status = osp_device_synchronize(OSP_CUDA);
    if (status != OSP_OK) {
      fprintf(stderr, "%s: %s\n", c->what, osp_last_error());
      CHECK(status == OSP_OK);
      return false;
    }
  }
  return true;
}

/* max|got − want| ≤ tolerance · max|want| (exact: want rounded through dtype, then equal). */
static void compare(const op_case *c, const operand *o, const float *got) {
  const int64_t n = osp_tensor_numel(&o->cpu);
  const float *want = o->cpu.data;
  const double tolerance = o->exact                 ? 0.0
                           : o->dtype == OSP_BF16   ? BF16_GRAD_TOLERANCE
                           : c->dtype == OSP_BF16   ? BF16_PARAM_TOLERANCE
                                                    : F32_TOLERANCE;
  double worst = 0.0, largest = 0.0;
  int64_t at = 0;
  for (int64_t i = 0; i < n; i++) {
    const double error = isnan(got[i]) ? INFINITY : fabs((double)got[i] - want[i]);
    if (error > worst) worst = error, at = i;
    largest = fmax(largest, fabs((double)want[i]));
  }
  const bool ok = worst <= tolerance * largest && largest > 0.0;
  const double relative = largest > 0.0 ? worst / largest : INFINITY;
  printf("%-78s %-7s %s %.2e of max %.2e  %s\n", c->what, o->name, o->exact ? "exact" : "error",
         relative, largest, ok ? "ok" : "FAILED");
  if (!ok)
    fprintf(stderr, "%s: %s: worst at %lld: got %.9g, want %.9g (tolerance %.1e)\n", c->what,
            o->name, (long long)at, got[at], want[at], tolerance);
  CHECK(ok);
  record(c->op, c->dtype, o->dtype, relative, tolerance);
}

static void run_case(op_case *c) {
  void *first[MAX_OPERANDS] = {0};
  for (int i = 0; i < c->count; i++) {
    operand *o = &c->o[i];
    upload(o);
    if (o->gradient) o->start = download_raw(o);
  }
  bool ran = run_gpu(c);
  for (int i = 0; i < c->count && ran; i++)
    if (c->o[i].gradient) first[i] = download_raw(&c->o[i]);
  /* the same calls from the same start: the same bits */
  for (int i = 0; i < c->count && ran; i++)
    if (c->o[i].gradient) put_start(&c->o[i]);
  if (ran && run_gpu(c)) {
    for (int i = 0; i < c->count; i++) {
      const operand *o = &c->o[i];
      if (!o->gradient) continue;
      void *again = download_raw(o);
      const bool same = memcmp(again, first[i], osp_tensor_bytes(&o->gpu)) == 0;
      if (!same)
        printf("%-78s %-7s NOT DETERMINISTIC: a second run gave other bits\n", c->what, o->name);
      CHECK(same);
      free(again);
    }
  }
  /* the reference */
  osp_tensor t[MAX_OPERANDS];
  for (int i = 0; i < c->count; i++) t[i] = c->o[i].cpu;
  for (int run = 0; run < RUNS; run++) {
    must(c->call(t, c->variant), c->what);
    for (int i = 0; i < c->count; i++)
      if (c->o[i].gradient && c->o[i].exact)
        round_through(c->o[i].dtype, c->o[i].cpu.data, (size_t)osp_tensor_numel(&c->o[i].cpu));
  }
  for (int i = 0; i < c->count && ran; i++) {
    const operand *o = &c->o[i];
    if (!o->gradient) continue;
    const int64_t n = osp_tensor_numel(&o->cpu);
    float *got = xmalloc((size_t)n * sizeof(float));
    osp_convert_to_f32(o->dtype, first[i], got, (size_t)n);
    compare(c, o, got);
    free(got);
  }
  for (int i = 0; i < c->count; i++) {
    free(c->o[i].cpu.data), free(c->o[i].start), free(first[i]);
    osp_cuda_free(c->o[i].gpu_base);
  }
  free(c);
}

/* ---- The ops' calls -------------------------------------------------------------------------- */

/* t itself where bit `bit` of the variant asks for it, else NULL (not wanted). */
static osp_tensor *want(osp_tensor *t, int variant, int bit) { return variant & bit ? t : NULL; }

enum { WANT_A = 1, WANT_B = 2, WANT_C = 4, AFFINE = 8, GATE = 8, ROW_VIEW = 16 };

/* x, weight, dy, dx, dweight, dbias */
static osp_status call_linear(osp_tensor *t, int v) {
  return osp_linear_backward(&t[0], &t[1], &t[2], want(&t[3], v, WANT_A), want(&t[4], v, WANT_B),
                             want(&t[5], v, WANT_C));
}

/* x, weight, dy, dx, dweight, dbias; the weight where AFFINE */
static osp_status call_layernorm(osp_tensor *t, int v) {
  return osp_layernorm_backward(&t[0], want(&t[1], v, AFFINE), EPS, &t[2], want(&t[3], v, WANT_A),
                                want(&t[4], v, WANT_B), want(&t[5], v, WANT_C));
}

/* x, weight, dy, dx, dweight */
static osp_status call_rmsnorm(osp_tensor *t, int v) {
  return osp_rmsnorm_backward(&t[0], &t[1], EPS, &t[2], want(&t[3], v, WANT_A),
                              want(&t[4], v, WANT_B));
}

/* x, dy, dx; variant 0 GELU, 1 SiLU */
static osp_status call_activation(osp_tensor *t, int v) {
  return v ? osp_silu_backward(&t[0], &t[1], &t[2]) : osp_gelu_tanh_backward(&t[0], &t[1], &t[2]);
}

/* x, table (scale: row 1), dy, dx, dtable (dshift: row 0, dscale: row 1) */
static osp_status call_modulate(osp_tensor *t, int v) {
  const osp_tensor scale = table_row(&t[1], 1);
  osp_tensor dshift = table_row(&t[4], 0), dscale = table_row(&t[4], 1);
  return osp_modulate_backward(&t[0], &scale, &t[2], want(&t[3], v, WANT_A),
                               want(&dshift, v, WANT_B), want(&dscale, v, WANT_C));
}

/* dx, y, table (gate: row 2), dy, dtable (dgate: row 2); the gate where GATE */
static osp_status call_gated_add(osp_tensor *t, int v) {
  osp_tensor gate = table_row(&t[2], 2), dgate = table_row(&t[4], 2);
  return osp_gated_add_backward(&t[0], &t[1], want(&gate, v, GATE),
                                want(&t[3], v, WANT_A), want(&dgate, v, WANT_B));
}

/* dy, da; with ROW_VIEW da is row 1 of a [B, 2, C] table, as a [B, 1, C] view */
static osp_status call_add(osp_tensor *t, int v) {
  if (!(v & ROW_VIEW)) return osp_add_backward(&t[0], &t[1]);
  osp_tensor row = t[1];
  row.shape[1] = 1;
  row.data = (char *)t[1].data + t[1].shape[2] * (int64_t)osp_dtype_size(t[1].dtype);
  return osp_add_backward(&t[0], &row);
}

/* ddst, index, dsrc */
static osp_status call_gather(osp_tensor *t, int v) {
  return osp_gather_rows_backward(&t[0], &t[1], &t[2]);
}

/* dx, cos, sin */
static osp_status call_rope(osp_tensor *t, int v) {
  return osp_rope_apply_backward(&t[0], &t[1], &t[2]);
}

/* the tokens' gradient, the video's; the patch pt·100 + ph·10 + pw */
static void patch_of(int v, int patch[3]) {
  patch[0] = v / 100, patch[1] = v / 10 % 10, patch[2] = v % 10;
}
static osp_status call_patchify(osp_tensor *t, int v) {
  int patch[3];
  patch_of(v, patch);
  return osp_patchify_backward(&t[0], patch, &t[1]);
}
static osp_status call_unpatchify(osp_tensor *t, int v) {
  int patch[3];
  patch_of(v, patch);
  return osp_unpatchify_backward(&t[1], patch, &t[0]);
}

/* ---- The cases ----------------------------------------------------------------------------- */

static void test_linear(osp_dtype D) {
  const struct {
    int64_t M, K, N;
    int want;
  } shapes[] = {
      {77, 256, 320, WANT_A | WANT_B | WANT_C},
      {75, 36, 20, WANT_A | WANT_B | WANT_C}, /* rows not a multiple of 8 wide */
      {4096, 64, 96, WANT_A | WANT_B | WANT_C}, /* a long reduction for dweight and dbias */
      {33, 40, 24, WANT_B | WANT_C},
      {50, 128, 1536, WANT_A},
      {32760, 1536, 1536, WANT_A | WANT_B | WANT_C}, /* Wan2.1-1.3B's tokens at 480p */
  };
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    const int64_t M = shapes[s].M, K = shapes[s].K, N = shapes[s].N;
    op_case *c = begin("linear_backward", D, call_linear, shapes[s].want,
                       "M %lld K %lld N %lld want %d", (long long)M, (long long)K, (long long)N,
                       shapes[s].want);
    INPUT(c, "x", D, 0.0f, 1.0f, M, K);
    INPUT(c, "weight", D, 0.0f, 1.0f / sqrtf((float)K), N, K);
    INPUT(c, "dy", D, 0.0f, 1.0f, M, N);
    GRAD(c, "dx", D, M, K);
    GRAD(c, "dweight", OSP_F32, N, K);
    GRAD(c, "dbias", OSP_F32, N);
    run_case(c);
  }
}

/* LayerNorm's operands on R rows of C (x of the given mean), and the case run. */
static void run_layernorm(op_case *c, int64_t R, int64_t C, float mean) {
  const osp_dtype D = c->dtype;
  INPUT(c, "x", D, mean, 1.0f, R, C);
  INPUT(c, "weight", D, 1.0f, 0.2f, C);
  INPUT(c, "dy", D, 0.0f, 1.0f, R, C);
  GRAD(c, "dx", D, R, C);
  GRAD(c, "dweight", OSP_F32, C);
  GRAD(c, "dbias", OSP_F32, C);
  run_case(c);
}

static void test_norms(osp_dtype D) {
  const int ALL = WANT_A | WANT_B | WANT_C;
  const struct {
    int64_t rows, C;
    float mean;
    int variant;
  } shapes[] = {
      {300, 1536, 0.0f, ALL | AFFINE},
      {4 * 37, 5120, 0.0f, WANT_A}, /* no affine: the DiT's modulated norms */
      {77, 37, 0.0f, ALL | AFFINE},
      {64, 5120, 300.0f, ALL | AFFINE}, /* a mean large next to the spread */
      {200, 96, 0.0f, WANT_B | WANT_C | AFFINE},
      {200, 96, 0.0f, WANT_A | WANT_C | AFFINE},
      {1000, 40, 0.0f, WANT_C | AFFINE},
      {32760, 1536, 0.0f, ALL | AFFINE}, /* Wan2.1-1.3B's tokens at 480p */
  };
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    const int64_t R = shapes[s].rows, C = shapes[s].C;
    op_case *c = begin("layernorm_backward", D, call_layernorm, shapes[s].variant,
                       "rows %lld C %lld mean %g variant %d", (long long)R, (long long)C,
                       (double)shapes[s].mean, shapes[s].variant);
    run_layernorm(c, R, C, shapes[s].mean);
  }
  if (D == OSP_F32) { /* more rows than one batch of row statistics holds (699050) */
    const int64_t R = 800000, C = 8;
    op_case *c = begin("layernorm_backward", D, call_layernorm, ALL | AFFINE,
                       "rows %lld C %lld (two batches of statistics)", (long long)R, (long long)C);
    run_layernorm(c, R, C, 0.0f);
  }
  const struct {
    int64_t rows, C;
    int variant;
  } rms[] = {{4 * 33, 384, WANT_A | WANT_B}, {50, 5120, WANT_A | WANT_B}, {77, 37, WANT_A | WANT_B},
             {600, 128, WANT_B}};
  for (size_t s = 0; s < sizeof rms / sizeof rms[0]; s++) {
    const int64_t R = rms[s].rows, C = rms[s].C;
    op_case *c = begin("rmsnorm_backward", D, call_rmsnorm, rms[s].variant,
                       "rows %lld C %lld variant %d", (long long)R, (long long)C, rms[s].variant);
    INPUT(c, "x", D, 0.0f, 3.0f, R, C);
    INPUT(c, "weight", D, 1.0f, 0.3f, C);
    INPUT(c, "dy", D, 0.0f, 1.0f, R, C);
    GRAD(c, "dx", D, R, C);
    GRAD(c, "dweight", OSP_F32, C);
    run_case(c);
  }
}

static void test_activations(osp_dtype D) {
  for (int silu = 0; silu < 2; silu++) {
    for (int misaligned = 0; misaligned < 2; misaligned++) {
      const int64_t n = 37 * 1001; /* not a multiple of 8: the last values one by one */
      op_case *c = begin(silu ? "silu_backward" : "gelu_tanh_backward", D, call_activation, silu,
                         "n %lld%s", (long long)n, misaligned ? " off the 16-byte grid" : "");
      INPUT(c, "x", D, 0.0f, 3.0f, n);
      INPUT(c, "dy", D, 0.0f, 1.0f, n);
      GRAD(c, "dx", D, n);
      for (int i = 0; i < c->count; i++) c->o[i].misaligned = misaligned;
      run_case(c);
    }
  }
}

/* x [B, N, C] with Bm table rows: B = P²·Bm where Skiparse runs P² subsequences per sample. */
typedef struct {
  int64_t B, N, C, Bm;
  int variant;
} token_shape;

static const token_shape TOKEN_SHAPES[] = {
    {4, 37, 1536, 1, WANT_A | WANT_B | WANT_C | GATE},
    {8, 45, 40, 2, WANT_A | WANT_B | WANT_C | GATE}, /* Skiparse P = 2: B = 4·Bm */
    {8, 9, 37, 2, WANT_A | WANT_B | WANT_C | GATE},  /* rows not a multiple of 8 wide */
    {2, 600, 128, 2, WANT_A | WANT_B | WANT_C | GATE}, /* several partial sums per table row */
    {18, 20, 64, 2, WANT_B | GATE},                  /* P = 3; a table gradient alone */
    {4, 30, 64, 1, WANT_C | GATE},
    {4, 30, 64, 2, WANT_A},                          /* gated add: no gate */
    {2, 16380, 1536, 2, WANT_A | WANT_B | WANT_C | GATE}, /* Wan2.1-1.3B-sized, two samples */
};

static void test_modulation(osp_dtype D) {
  for (size_t s = 0; s < sizeof TOKEN_SHAPES / sizeof TOKEN_SHAPES[0]; s++) {
    const token_shape t = TOKEN_SHAPES[s];
    op_case *c = begin("modulate_backward", D, call_modulate, t.variant & ~GATE,
                       "B %lld N %lld C %lld Bm %lld variant %d", (long long)t.B, (long long)t.N,
                       (long long)t.C, (long long)t.Bm, t.variant & ~GATE);
    INPUT(c, "x", D, 0.0f, 1.0f, t.B, t.N, t.C);
    INPUT(c, "table", OSP_F32, 0.0f, 0.5f, t.Bm, 6, t.C);
    INPUT(c, "dy", D, 0.0f, 1.0f, t.B, t.N, t.C);
    GRAD(c, "dx", D, t.B, t.N, t.C);
    GRAD(c, "dtable", OSP_F32, t.Bm, 6, t.C);
    if (s == 1)
      for (int i = 0; i < c->count; i++) c->o[i].misaligned = true;
    run_case(c);

    const int gated = t.variant & GATE ? t.variant : t.variant & WANT_A;
    c = begin("gated_add_backward", D, call_gated_add, gated,
              "B %lld N %lld C %lld Bm %lld variant %d", (long long)t.B, (long long)t.N,
              (long long)t.C, (long long)t.Bm, gated);
    INPUT(c, "dx", D, 0.0f, 1.0f, t.B, t.N, t.C);
    INPUT(c, "y", D, 0.0f, 1.0f, t.B, t.N, t.C);
    INPUT(c, "table", OSP_F32, 0.0f, 0.5f, t.Bm, 6, t.C);
    GRAD(c, "dy", D, t.B, t.N, t.C);
    GRAD(c, "dtable", OSP_F32, t.Bm, 6, t.C);
    run_case(c);
  }
}

static void test_add(osp_dtype D) {
  /* dy onto da (f32 unless in dy's dtype; with ROW_VIEW a row of a table: see call_add) */
  const struct {
    int ndim;
    int64_t dy[3], da[3];
    bool da_in_dy_dtype;
    int variant;
    const char *what;
  } shapes[] = {
      {3, {4, 6, 40}, {1, 6, 40}, false, 0, "[4, 6, 40] onto [1, 6, 40]"},
      {3, {4, 6, 40}, {4, 6, 40}, true, 0, "[4, 6, 40] onto its own shape, in dy's dtype"},
      {3, {3, 300, 37}, {1, 1, 37}, false, 0, "[3, 300, 37] onto [1, 1, 37]"},
      {3, {3, 300, 64}, {3, 2, 64}, false, ROW_VIEW, "[3, 300, 64] onto row 1 of [3, 2, 64]"},
      {3, {2, 50, 5}, {2, 50, 1}, false, 0, "[2, 50, 5] onto [2, 50, 1]"},
      {2, {700, 1536}, {1, 1536}, false, 0, "[700, 1536] onto [1, 1536]"},
  };
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    op_case *c = begin("add_backward", D, call_add, shapes[s].variant, "%s", shapes[s].what);
    add(c, "dy", D, false, shapes[s].ndim, shapes[s].dy, 0.0f, 1.0f);
    add(c, "da", shapes[s].da_in_dy_dtype ? D : OSP_F32, true, shapes[s].ndim, shapes[s].da, 0.0f, 1.0f);
    run_case(c);
  }
}

static void test_gather(osp_dtype D) {
  enum { SRC_ROWS = 180, ROWS = 200 };
  int32_t index[ROWS];
  /* a permutation of the source rows (37 is prime to 180) with padding at every tenth place */
  for (int i = 0, j = 0; i < ROWS; i++)
    index[i] = i % 10 == 3 ? -1 : (int32_t)(j++ * 37 % SRC_ROWS);
  const int64_t widths[] = {5120, 40, 21, 40};
  for (int w = 0; w < 4; w++) {
    const int64_t C = widths[w];
    const bool misaligned = w == 3;
    op_case *c = begin("gather_rows_backward", D, call_gather, 0, "C %lld%s", (long long)C,
                       misaligned ? " off the 16-byte grid" : "");
    INPUT(c, "ddst", D, 0.0f, 1.0f, ROWS, C)->misaligned = misaligned;
    add_index(c, "index", index, ROWS);
    operand *dsrc = GRAD(c, "dsrc", D, SRC_ROWS, C);
    dsrc->exact = true, dsrc->misaligned = misaligned;
    run_case(c);
  }
}

static void test_rope(osp_dtype D) {
  const struct {
    int64_t B, N, heads, D;
    bool per_row;
  } shapes[] = {{4, 33, 3, 128, false}, {4, 33, 3, 64, true}, {2, 20, 2, 12, false}};
  for (int s = 0; s < 3; s++) {
    const int64_t B = shapes[s].B, N = shapes[s].N, half = shapes[s].D / 2;
    op_case *c = begin("rope_apply_backward", D, call_rope, 0, "B %lld N %lld heads %lld D %lld %s",
                       (long long)B, (long long)N, (long long)shapes[s].heads,
                       (long long)shapes[s].D, shapes[s].per_row ? "per-row tables" : "shared");
    GRAD(c, "dx", D, B, N, shapes[s].heads, shapes[s].D);
    operand *cos = shapes[s].per_row ? INPUT(c, "cos", OSP_F32, 0.0f, 2.0f, B, N, half)
                                     : INPUT(c, "cos", OSP_F32, 0.0f, 2.0f, N, half);
    operand *sin = shapes[s].per_row ? INPUT(c, "sin", OSP_F32, 0.0f, 2.0f, B, N, half)
                                     : INPUT(c, "sin", OSP_F32, 0.0f, 2.0f, N, half);
    float *cv = cos->cpu.data, *sv = sin->cpu.data; /* angles → their cosines and sines */
    for (int64_t i = 0; i < osp_tensor_numel(&cos->cpu); i++) {
      const float angle = cv[i];
      cv[i] = cosf(angle), sv[i] = sinf(angle);
    }
    run_case(c);
  }
}

/* The token side in D, the video side in f32 where D is bf16 (as the DiT: an f32 velocity). */
static void test_video(osp_dtype D) {
  const struct {
    int64_t B, C, F, H, W;
    int patch; /* pt·100 + ph·10 + pw */
  } videos[] = {{2, 16, 4, 6, 8, 122}, {1, 4, 4, 6, 9, 223}};
  for (int v = 0; v < 2; v++) {
    const int64_t B = videos[v].B, C = videos[v].C, F = videos[v].F;
    const int64_t H = videos[v].H, W = videos[v].W;
    int p[3];
    patch_of(videos[v].patch, p);
    const int64_t tokens = F / p[0] * (H / p[1]) * (W / p[2]), features = C * p[0] * p[1] * p[2];
    for (int un = 0; un < 2; un++) {
      op_case *c = begin(un ? "unpatchify_backward" : "patchify_backward", D,
                         un ? call_unpatchify : call_patchify, videos[v].patch,
                         "[%lld, %lld, %lld, %lld, %lld] patch %dx%dx%d", (long long)B,
                         (long long)C, (long long)F, (long long)H, (long long)W, p[0], p[1], p[2]);
      /* patchify's: dpatches in, dlatents out; unpatchify's: dout in, dtokens out */
      operand *token_side = add(c, un ? "dtokens" : "dpatches", D, un, SHAPE(B, tokens, features),
                                0.0f, 1.0f);
      operand *video_side = add(c, un ? "dout" : "dlatents", OSP_F32, !un, SHAPE(B, C, F, H, W),
                                0.0f, 1.0f);
      token_side->exact = video_side->exact = true;
      run_case(c);
    }
  }
}

int main(void) {
  if (osp_cuda_init() != OSP_OK) {
    fprintf(stderr, "test_cuda_backward: no GPU (%s): skipped\n", osp_last_error());
    return 77;
  }
  const osp_dtype dtypes[] = {OSP_F32, OSP_BF16};
  for (int d = 0; d < 2; d++) {
    test_linear(dtypes[d]);
    test_norms(dtypes[d]);
    test_activations(dtypes[d]);
    test_modulation(dtypes[d]);
    test_add(dtypes[d]);
    test_gather(dtypes[d]);
    test_rope(dtypes[d]);
    test_video(dtypes[d]);
  }
  printf("\nworst error of each op (max|gpu − cpu| / max|cpu|) by activation and gradient dtype; "
         "every gradient accumulated twice onto a nonzero start, and bit-identical on a second "
         "run:\n");
  for (int i = 0; i < summary_count; i++)
    printf("  %-22s %-5s grad %-5s %9.2e  (tolerance %.0e, %d outputs)\n", summary[i].op,
           osp_dtype_name(summary[i].dtype), osp_dtype_name(summary[i].grad_dtype),
           summary[i].worst, summary[i].tolerance, summary[i].outputs);
  return test_summary("cuda backward");
}
