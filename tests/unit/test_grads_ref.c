/* The backward ops of src/ops/grad.h (all but attention's) against the PyTorch references of
 * tests/ref/make_grad_cases.py, then their operand errors:
 *
 *   ~/.cache/osp-venv/bin/python tests/ref/make_grad_cases.py build/ref/grads
 *   build/test_grads_ref build/ref/grads
 *
 * A case asks the op for the gradients it has a ref_<name> of (the others are passed as NULL),
 * each starting from the case's <name>_prefill or from zeros, since the ops accumulate. The op
 * runs three times from that start: the gradients of the second run (on as many threads) and of
 * the third (on one thread) must be the first's bit for bit, and the first's are compared with the
 * references. How a case is read and judged: ref_case.h. */
#include <omp.h>
#include <stdlib.h>

#include "ops/grad.h"
#include "ref_case.h"

enum { MAX_GRADIENTS = 3, RUNS = 3 };

/* The gradients of one case, one set per run, each known by its reference's name ref_<name>;
 * wanted[i] says whether the case has that reference. */
typedef struct {
  int count;
  const char *refs[MAX_GRADIENTS]; /* string literals: compare() keeps the worst one's name */
  bool wanted[MAX_GRADIENTS];
  osp_tensor runs[RUNS][MAX_GRADIENTS];
} gradients;

static const char *name_of(const char *ref) { return ref + strlen("ref_"); }

/* Every run's copy of gradient i as the op must find it: the case's <name>_prefill, or zeros. */
static osp_status start_gradient(test_case *c, gradients *g, int i) {
  g->wanted[i] = has_tensor(c, g->refs[i]);
  if (!g->wanted[i]) return OSP_OK;
  osp_tensor ref, prefill;
  OSP_TRY(load_f32(c, g->refs[i], &ref));
  char name[64];
  snprintf(name, sizeof name, "%s_prefill", name_of(g->refs[i]));
  const bool prefilled = has_tensor(c, name);
  if (prefilled) OSP_TRY(load_f32(c, name, &prefill));
  for (int run = 0; run < RUNS; run++) {
    osp_tensor *t = &g->runs[run][i];
    OSP_TRY(new_output(c, ref.ndim, ref.shape, t));
    if (prefilled)
      memcpy(t->data, prefill.data, osp_tensor_bytes(t));
    else
      memset(t->data, 0, osp_tensor_bytes(t));
  }
  return OSP_OK;
}

/* The case's gradients by their references' names, in the order the op takes them. */
static osp_status start_gradients(test_case *c, gradients *g, int count, const char *const *refs) {
  g->count = count;
  for (int i = 0; i < count; i++) {
    g->refs[i] = refs[i];
    OSP_TRY(start_gradient(c, g, i));
  }
  return OSP_OK;
}

/* Gradient i of a run, or NULL where the case does not want it. */
static osp_tensor *gradient(gradients *g, int run, int i) {
  return g->wanted[i] ? &g->runs[run][i] : NULL;
}

static int default_threads; /* OpenMP's, read in main */

/* The threads of run `run`: the default count, but one for the last run. */
static int threads_of_run(int run) { return run == RUNS - 1 ? 1 : default_threads; }

static void start_run(int run) { omp_set_num_threads(threads_of_run(run)); }

/* Every later run gave the first run's bits; the first run's gradients against the references. */
static osp_status judge_gradients(test_case *c, gradients *g) {
  for (int i = 0; i < g->count; i++) {
    if (!g->wanted[i]) continue;
    for (int run = 1; run < RUNS; run++)
      if (memcmp(g->runs[0][i].data, g->runs[run][i].data, osp_tensor_bytes(&g->runs[0][i])))
        return osp_fail(OSP_ERR_NUMERIC, "%s: %s of run %d (%d threads) differs from run 0's bits",
                        c->file.path, name_of(g->refs[i]), run, threads_of_run(run));
    OSP_TRY(compare(c, g->refs[i], &g->runs[0][i]));
  }
  return OSP_OK;
}

/* Each run function below loads its inputs, starts its gradients, runs the op RUNS times and
 * judges the gradients. */

static osp_status run_linear(test_case *c) {
  osp_tensor x, w, dy;
  gradients g;
  OSP_TRY(load_f32(c, "x", &x));
  OSP_TRY(load_f32(c, "weight", &w));
  OSP_TRY(load_f32(c, "dy", &dy));
  OSP_TRY(start_gradients(c, &g, 3, (const char *const[]){"ref_dx", "ref_dweight", "ref_dbias"}));
  for (int run = 0; run < RUNS; run++) {
    start_run(run);
    OSP_TRY(osp_linear_backward(&x, &w, &dy, gradient(&g, run, 0), gradient(&g, run, 1),
                                gradient(&g, run, 2)));
  }
  return judge_gradients(c, &g);
}

static osp_status run_layernorm(test_case *c) {
  osp_tensor x, weight, dy;
  float eps = 0.0f;
  gradients g;
  const bool affine = has_tensor(c, "weight");
  OSP_TRY(load_f32(c, "x", &x));
  if (affine) OSP_TRY(load_f32(c, "weight", &weight));
  OSP_TRY(load_scalar(c, "eps", &eps));
  OSP_TRY(load_f32(c, "dy", &dy));
  OSP_TRY(start_gradients(c, &g, 3, (const char *const[]){"ref_dx", "ref_dweight", "ref_dbias"}));
  for (int run = 0; run < RUNS; run++) {
    start_run(run);
    OSP_TRY(osp_layernorm_backward(&x, affine ? &weight : NULL, eps, &dy, gradient(&g, run, 0),
                                   gradient(&g, run, 1), gradient(&g, run, 2)));
  }
  return judge_gradients(c, &g);
}

static osp_status run_rmsnorm(test_case *c) {
  osp_tensor x, weight, dy;
  float eps = 0.0f;
  gradients g;
  OSP_TRY(load_f32(c, "x", &x));
  OSP_TRY(load_f32(c, "weight", &weight));
  OSP_TRY(load_scalar(c, "eps", &eps));
  OSP_TRY(load_f32(c, "dy", &dy));
  OSP_TRY(start_gradients(c, &g, 2, (const char *const[]){"ref_dx", "ref_dweight"}));
  for (int run = 0; run < RUNS; run++) {
    start_run(run);
    OSP_TRY(osp_rmsnorm_backward(&x, &weight, eps, &dy, gradient(&g, run, 0),
                                 gradient(&g, run, 1)));
  }
  return judge_gradients(c, &g);
}

static osp_status run_elementwise(test_case *c,
                                  osp_status (*op)(const osp_tensor *, const osp_tensor *,
                                                   osp_tensor *)) {
  osp_tensor x, dy;
  gradients g;
  OSP_TRY(load_f32(c, "x", &x));
  OSP_TRY(load_f32(c, "dy", &dy));
  OSP_TRY(start_gradients(c, &g, 1, (const char *const[]){"ref_dx"}));
  for (int run = 0; run < RUNS; run++) {
    start_run(run);
    OSP_TRY(op(&x, &dy, gradient(&g, run, 0)));
  }
  return judge_gradients(c, &g);
}

static osp_status run_gelu_tanh(test_case *c) { return run_elementwise(c, osp_gelu_tanh_backward); }
static osp_status run_silu(test_case *c) { return run_elementwise(c, osp_silu_backward); }

/* Rows rows[0 .. count) of gradient `table` of the case (a [Bm, 6, C] table) as strided [Bm, C]
 * views, or NULLs where the case does not want the table. */
static void table_rows(gradients *g, int run, int table, const int *rows, int count,
                       osp_tensor *views, osp_tensor **pointers) {
  for (int i = 0; i < count; i++) {
    if (g->wanted[table]) views[i] = table_row(&g->runs[run][table], rows[i]);
    pointers[i] = g->wanted[table] ? &views[i] : NULL;
  }
}

static osp_status run_modulate(test_case *c) {
  osp_tensor x, table, dy, views[2], *shift_scale[2];
  int rows[2] = {0, 0};
  gradients g;
  OSP_TRY(load_f32(c, "x", &x));
  OSP_TRY(load_f32(c, "table", &table));
  OSP_TRY(load_ints(c, "rows", 2, rows));
  OSP_TRY(load_f32(c, "dy", &dy));
  const osp_tensor scale = table_row(&table, rows[1]);
  OSP_TRY(start_gradients(c, &g, 2, (const char *const[]){"ref_dx", "ref_dtable"}));
  for (int run = 0; run < RUNS; run++) {
    start_run(run);
    table_rows(&g, run, 1, rows, 2, views, shift_scale);
    OSP_TRY(osp_modulate_backward(&x, &scale, &dy, gradient(&g, run, 0), shift_scale[0],
                                  shift_scale[1]));
  }
  return judge_gradients(c, &g);
}

static osp_status run_gated_add(test_case *c) {
  osp_tensor dx, y, table, gate, view, *dgate;
  int row = 0;
  gradients g;
  const bool gated = has_tensor(c, "table");
  OSP_TRY(load_f32(c, "dx", &dx));
  OSP_TRY(load_f32(c, "y", &y));
  if (gated) {
    OSP_TRY(load_f32(c, "table", &table));
    OSP_TRY(load_ints(c, "rows", 1, &row));
    gate = table_row(&table, row);
  }
  OSP_TRY(start_gradients(c, &g, 2, (const char *const[]){"ref_dy", "ref_dtable"}));
  for (int run = 0; run < RUNS; run++) {
    start_run(run);
    table_rows(&g, run, 1, &row, 1, &view, &dgate);
    OSP_TRY(osp_gated_add_backward(&dx, &y, gated ? &gate : NULL, gradient(&g, run, 0), dgate));
  }
  return judge_gradients(c, &g);
}

/* da is the case's own tensor, or a strided row of its gradient table. */
static osp_status run_add(test_case *c) {
  osp_tensor dy, view, *row_view;
  int row = 0;
  gradients g;
  const bool table = has_tensor(c, "rows");
  OSP_TRY(load_f32(c, "dy", &dy));
  if (table) OSP_TRY(load_ints(c, "rows", 1, &row));
  OSP_TRY(start_gradients(c, &g, 1, (const char *const[]){table ? "ref_dtable" : "ref_da"}));
  for (int run = 0; run < RUNS; run++) {
    start_run(run);
    table_rows(&g, run, 0, &row, 1, &view, &row_view);
    OSP_TRY(osp_add_backward(&dy, table ? row_view : gradient(&g, run, 0)));
  }
  return judge_gradients(c, &g);
}

static osp_status run_gather_rows(test_case *c) {
  osp_tensor ddst, index;
  gradients g;
  OSP_TRY(load_f32(c, "ddst", &ddst));
  OSP_TRY(load_as_stored(c, "index", OSP_ST_I32, OSP_I32, &index));
  OSP_TRY(start_gradients(c, &g, 1, (const char *const[]){"ref_dsrc"}));
  for (int run = 0; run < RUNS; run++) {
    start_run(run);
    OSP_TRY(osp_gather_rows_backward(&ddst, &index, gradient(&g, run, 0)));
  }
  return judge_gradients(c, &g);
}

/* In place: dx starts as the incoming gradient (dx_prefill) and ends rotated back. */
static osp_status run_rope_apply(test_case *c) {
  osp_tensor cos, sin;
  gradients g;
  OSP_TRY(load_f32(c, "cos", &cos));
  OSP_TRY(load_f32(c, "sin", &sin));
  OSP_TRY(start_gradients(c, &g, 1, (const char *const[]){"ref_dx"}));
  for (int run = 0; run < RUNS; run++) {
    start_run(run);
    OSP_TRY(osp_rope_apply_backward(gradient(&g, run, 0), &cos, &sin));
  }
  return judge_gradients(c, &g);
}

/* patchify and unpatchify: the gradient of one layout moved into the other's. */
static osp_status run_patch_layout(test_case *c, const char *input, const char *ref,
                                   osp_status (*op)(const osp_tensor *, const int[3],
                                                    osp_tensor *)) {
  osp_tensor moved;
  int patch[3] = {0, 0, 0};
  gradients g;
  OSP_TRY(load_f32(c, input, &moved));
  OSP_TRY(load_ints(c, "patch", 3, patch));
  OSP_TRY(start_gradients(c, &g, 1, &ref));
  for (int run = 0; run < RUNS; run++) {
    start_run(run);
    OSP_TRY(op(&moved, patch, gradient(&g, run, 0)));
  }
  return judge_gradients(c, &g);
}

static osp_status run_patchify(test_case *c) {
  return run_patch_layout(c, "dpatches", "ref_dlatents", osp_patchify_backward);
}

static osp_status run_unpatchify(test_case *c) {
  return run_patch_layout(c, "dout", "ref_dtokens", osp_unpatchify_backward);
}

/* 1e-5 of max|ref| where the gradient is rounded float32 arithmetic on values of order 1 (sgemm
 * sums of up to 300 terms, norms and row sums in double, a polynomial e^x within 2 ulp); exactly
 * 0 where it is a move of values (gather, patchify, unpatchify), even onto a prefill: prefill +
 * gradient is one float addition in the reference and in OSP alike. */
static op_entry OPS[] = {
    {"linear_backward", run_linear, 1e-5, 0},
    {"layernorm_backward", run_layernorm, 1e-5, 0},
    {"rmsnorm_backward", run_rmsnorm, 1e-5, 0},
    {"gelu_tanh_backward", run_gelu_tanh, 1e-5, 0},
    {"silu_backward", run_silu, 1e-5, 0},
    {"modulate_backward", run_modulate, 1e-5, 0},
    {"gated_add_backward", run_gated_add, 1e-5, 0},
    {"add_backward", run_add, 1e-5, 0},
    {"gather_rows_backward", run_gather_rows, 0.0, 0},
    {"rope_apply_backward", run_rope_apply, 1e-5, 0},
    {"patchify_backward", run_patchify, 0.0, 0},
    {"unpatchify_backward", run_unpatchify, 0.0, 0},
};
enum { OP_COUNT = sizeof OPS / sizeof OPS[0] };

/* ---- Operand errors: the status and the exact message, which names the op and the operand ---- */

static float buffer_a[512], buffer_b[512], buffer_c[512], buffer_d[512], buffer_e[512];

/* A contiguous f32 CPU tensor over `data` with the dims listed: f32(buffer_a, 2, 8). */
#define f32(data, ...)                                                                  \
  osp_tensor_make((data), OSP_F32, OSP_CPU,                                             \
                  (int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),      \
                  (const int64_t[]){__VA_ARGS__})

static void test_linear_and_norm_errors(void) {
  osp_tensor x = f32(buffer_a, 2, 8), w = f32(buffer_b, 4, 8), dy = f32(buffer_c, 2, 4);
  osp_tensor dx = f32(buffer_d, 2, 8), dw = f32(buffer_e, 4, 8);
  expect_status(osp_linear_backward(&x, &w, &dy, &dx, &dw, NULL), OSP_OK, "");
  osp_tensor narrow_dw = f32(buffer_e, 4, 6);
  expect_status(osp_linear_backward(&x, &w, &dy, &dx, &narrow_dw, NULL), OSP_ERR_SHAPE,
         "osp_linear_backward: dweight: expected shape [4, 8], found [4, 6]");
  expect_status(osp_linear_backward(&x, &w, NULL, &dx, &dw, NULL), OSP_ERR_ARGUMENT,
         "osp_linear_backward: dy: missing (NULL)");
  osp_tensor dx_on_dy = f32(buffer_c + 4, 2, 8);
  expect_status(osp_linear_backward(&x, &w, &dy, &dx_on_dy, NULL, NULL), OSP_ERR_ARGUMENT,
         "osp_linear_backward: dx: expected memory apart from dy, found them overlapping");
#ifndef OSP_HAVE_CUDA /* with the backend, CUDA operands reach the CUDA kernels instead */
  osp_tensor cuda_x = x;
  cuda_x.device = OSP_CUDA;
  osp_tensor cuda_w = w, cuda_dy = dy;
  cuda_w.device = cuda_dy.device = OSP_CUDA;
  expect_status(osp_linear_backward(&cuda_x, &cuda_w, &cuda_dy, NULL, NULL, NULL), OSP_ERR_UNSUPPORTED,
         "osp_linear_backward: this build has no CUDA backend");
#endif

  osp_tensor rows = f32(buffer_a, 3, 16), drows = f32(buffer_c, 3, 16);
  osp_tensor weight = f32(buffer_b, 16), dweight = f32(buffer_e, 16);
  expect_status(osp_layernorm_backward(&rows, NULL, 1e-6f, &drows, &dx, &dweight, NULL),
         OSP_ERR_ARGUMENT,
         "osp_layernorm_backward: dweight: expected NULL (no weight: no affine), found a tensor");
  osp_tensor dx_rows = f32(buffer_d, 3, 16);
  expect_status(osp_layernorm_backward(&rows, &weight, 1e-6f, &drows, &dx_rows, &dweight, NULL), OSP_OK,
         "");
  expect_status(osp_rmsnorm_backward(&rows, NULL, 1e-6f, &drows, &dx_rows, NULL), OSP_ERR_ARGUMENT,
         "osp_rmsnorm_backward: weight: missing (NULL)");
  expect_status(osp_rmsnorm_backward(&rows, &weight, -1.0f, &drows, &dx_rows, NULL), OSP_ERR_ARGUMENT,
         "osp_rmsnorm_backward: eps: expected a finite value >= 0, found -1");
  osp_tensor short_dy = f32(buffer_c, 3, 15);
  expect_status(osp_gelu_tanh_backward(&rows, &short_dy, &dx_rows), OSP_ERR_SHAPE,
         "osp_gelu_tanh_backward: dy: expected shape [3, 16], found [3, 15]");
  expect_status(osp_silu_backward(&rows, &drows, &drows), OSP_ERR_ARGUMENT,
         "osp_silu_backward: dx: expected memory apart from dy, found them overlapping");
}

/* Gradient rows of one [2, 6, 16] table may interleave (dshift row 0, dscale row 1); the same row
 * twice may not. */
static void test_modulation_errors(void) {
  osp_tensor x = f32(buffer_a, 4, 3, 16), dy = f32(buffer_b, 4, 3, 16);
  osp_tensor table = f32(buffer_c, 2, 6, 16), dtable = f32(buffer_d, 2, 6, 16);
  const osp_tensor scale = table_row(&table, 1);
  osp_tensor dshift = table_row(&dtable, 0), dscale = table_row(&dtable, 1);
  expect_status(osp_modulate_backward(&x, &scale, &dy, NULL, &dshift, &dscale), OSP_OK, "");
  expect_status(osp_modulate_backward(&x, &scale, &dy, NULL, &dscale, &dscale), OSP_ERR_ARGUMENT,
         "osp_modulate_backward: dscale: expected memory apart from dshift, found rows of them "
         "overlapping");
  osp_tensor one_row = f32(buffer_e, 1, 16);
  expect_status(osp_modulate_backward(&x, &scale, &dy, NULL, NULL, &one_row), OSP_ERR_SHAPE,
         "osp_modulate_backward: dscale: expected shape [2, 16], found [1, 16]");
  expect_status(osp_gated_add_backward(&x, &dy, NULL, NULL, &dscale), OSP_ERR_ARGUMENT,
         "osp_gated_add_backward: dgate: expected NULL (no gate: a plain add), found a tensor");
  osp_tensor table3 = f32(buffer_c, 3, 6, 16), gate3 = table_row(&table3, 2);
  expect_status(osp_gated_add_backward(&x, &dy, &gate3, NULL, NULL), OSP_ERR_SHAPE,
         "osp_gated_add_backward: gate: expected a batch dividing x's batch 4, found 3");

  osp_tensor e0 = f32(buffer_a, 4, 6, 16), half = f32(buffer_e, 2, 6, 16);
  expect_status(osp_add_backward(&e0, &half), OSP_ERR_SHAPE,
         "osp_add_backward: da: expected a shape that broadcasts to dy's [4, 6, 16], found "
         "[2, 6, 16]");
}

/* A repeated index is refused before anything is written; the message names the first value that
 * comes again. */
static void test_gather_and_layout_errors(void) {
  static int32_t index_data[5] = {3, -1, 0, 3, 1};
  osp_tensor index = osp_tensor_make(index_data, OSP_I32, OSP_CPU, 1, (const int64_t[]){5});
  osp_tensor ddst = f32(buffer_a, 5, 8), dsrc = f32(buffer_b, 4, 8);
  for (int i = 0; i < 32; i++) buffer_b[i] = 7.0f;
  expect_status(osp_gather_rows_backward(&ddst, &index, &dsrc), OSP_ERR_ARGUMENT,
         "osp_gather_rows_backward: index: expected distinct values (a permutation with "
         "padding), found 3 again at position 3");
  bool untouched = true;
  for (int i = 0; i < 32; i++) untouched = untouched && buffer_b[i] == 7.0f;
  record(untouched);
  index_data[3] = 4;
  expect_status(osp_gather_rows_backward(&ddst, &index, &dsrc), OSP_ERR_ARGUMENT,
         "osp_gather_rows_backward: index: expected values below 4 (the rows of src), found 4 at "
         "position 3");
  index_data[3] = 2;
  expect_status(osp_gather_rows_backward(&ddst, &index, &dsrc), OSP_OK, "");
  expect_status(osp_gather_rows_backward(&ddst, NULL, &dsrc), OSP_ERR_ARGUMENT,
         "osp_gather_rows_backward: index: missing (NULL)");
  osp_tensor short_ddst = f32(buffer_a, 4, 8);
  expect_status(osp_gather_rows_backward(&short_ddst, &index, &dsrc), OSP_ERR_SHAPE,
         "osp_gather_rows_backward: ddst: expected 5 rows of 8 values (one per index entry, as "
         "wide as dsrc's), found shape [4, 8]");

  osp_tensor dx = f32(buffer_a, 1, 4, 2, 7), cos = f32(buffer_b, 4, 3), sin = f32(buffer_c, 4, 3);
  expect_status(osp_rope_apply_backward(&dx, &cos, &sin), OSP_ERR_SHAPE,
         "osp_rope_apply_backward: dx: expected an even head width, found 7");

  const int patch[3] = {1, 2, 2};
  osp_tensor dlatents = f32(buffer_a, 1, 4, 2, 4, 6), dpatches = f32(buffer_b, 1, 12, 16);
  expect_status(osp_patchify_backward(&dpatches, patch, &dlatents), OSP_OK, "");
  osp_tensor wide_dpatches = f32(buffer_b, 1, 12, 20);
  expect_status(osp_patchify_backward(&wide_dpatches, patch, &dlatents), OSP_ERR_SHAPE,
         "osp_patchify_backward: dpatches: expected shape [1, 12, 16], found [1, 12, 20]");
  expect_status(osp_unpatchify_backward(&dlatents, patch, NULL), OSP_ERR_ARGUMENT,
         "osp_unpatchify_backward: dtokens: missing (NULL)");
}

/* A tensor over the same buffer on CUDA in `dtype`: the dtype rules of CUDA's mixed precision
 * (grad.h) are checked before any kernel runs, so these calls fail the same way with or without
 * the backend, and never touch the (host) buffer. */
static osp_tensor on_cuda(osp_tensor t, osp_dtype dtype) {
  t.device = OSP_CUDA;
  t.dtype = dtype;
  return t;
}

static void test_cuda_dtype_errors(void) {
  const osp_tensor x = on_cuda(f32(buffer_a, 2, 8), OSP_BF16);
  const osp_tensor w = on_cuda(f32(buffer_b, 4, 8), OSP_BF16);
  const osp_tensor dy = on_cuda(f32(buffer_c, 2, 4), OSP_BF16);
  osp_tensor bf16_dw = on_cuda(f32(buffer_e, 4, 8), OSP_BF16);
  expect_status(osp_linear_backward(&x, &w, &dy, NULL, &bf16_dw, NULL), OSP_ERR_SHAPE,
                "osp_linear_backward: dweight: expected dtype f32 on cuda, found bf16");
  const osp_tensor f32_w = on_cuda(f32(buffer_b, 4, 8), OSP_F32);
  expect_status(osp_linear_backward(&x, &f32_w, &dy, NULL, NULL, NULL), OSP_ERR_SHAPE,
                "osp_linear_backward: weight: expected x's dtype bf16, found f32");

  const osp_tensor rows = on_cuda(f32(buffer_a, 3, 16), OSP_BF16);
  const osp_tensor f32_drows = on_cuda(f32(buffer_c, 3, 16), OSP_F32);
  expect_status(osp_layernorm_backward(&rows, NULL, 1e-6f, &f32_drows, NULL, NULL, NULL),
                OSP_ERR_SHAPE, "osp_layernorm_backward: dy: expected x's dtype bf16, found f32");

  const osp_tensor tokens = on_cuda(f32(buffer_a, 4, 3, 16), OSP_BF16);
  const osp_tensor dtokens = on_cuda(f32(buffer_b, 4, 3, 16), OSP_BF16);
  const osp_tensor table = on_cuda(f32(buffer_c, 2, 6, 16), OSP_F32), scale = table_row(&table, 1);
  const osp_tensor bf16_dtable = on_cuda(f32(buffer_d, 2, 6, 16), OSP_BF16);
  osp_tensor bf16_dshift = table_row(&bf16_dtable, 0);
  expect_status(osp_modulate_backward(&tokens, &scale, &dtokens, NULL, &bf16_dshift, NULL),
                OSP_ERR_SHAPE,
                "osp_modulate_backward: dshift: expected dtype f32 on cuda, found bf16");
  expect_status(osp_gated_add_backward(&dtokens, &tokens, &scale, NULL, &bf16_dshift),
                OSP_ERR_SHAPE, "osp_gated_add_backward: dgate: expected dtype f32 on cuda, found bf16");

  osp_tensor bf16_da = on_cuda(f32(buffer_e, 1, 3, 16), OSP_BF16);
  expect_status(osp_add_backward(&dtokens, &bf16_da), OSP_ERR_SHAPE,
                "osp_add_backward: da: expected dtype f32 (a sum over broadcast dimensions), found "
                "bf16");
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CASE_DIR   (written by tests/ref/make_grad_cases.py)\n", argv[0]);
    return 2;
  }
  default_threads = omp_get_max_threads();
  test_linear_and_norm_errors();
  test_modulation_errors();
  test_gather_and_layout_errors();
  test_cuda_dtype_errors();
  return ref_cases_main("test_grads_ref", "tests/ref/make_grad_cases.py", argv[1], OPS, OP_COUNT);
}
