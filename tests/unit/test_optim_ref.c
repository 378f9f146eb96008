/* The optimizer (src/ops/optim.h: AdamW, clipping, the weights' EMA) and the lr schedule
 * (src/pipeline/lr_schedule.h) against the PyTorch references of tests/ref/make_optim_cases.py, then their error messages and the sum of
 * squares' independence of the thread count:
 *
 *   ~/.cache/osp-venv/bin/python tests/ref/make_optim_cases.py build/ref/optim
 *   build/test_optim_ref build/ref/optim
 *
 * How a case is read and judged: ref_case.h. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "ops/optim.h"
#include "pipeline/lr_schedule.h"
#include "ref_case.h"

/* ---- Reference cases ---------------------------------------------------------------------- */

/* The names of tensor i of a case. Static: the runner prints the worst output's name after the
 * case is closed. */
typedef struct {
  const char *param, *grads, *ref_params, *ref_m, *ref_v, *ref;
} tensor_names;
#define TENSOR_NAMES(i) \
  {"param." #i, "grads." #i, "ref_params." #i, "ref_m." #i, "ref_v." #i, "ref." #i}
static const tensor_names NAMES[] = {TENSOR_NAMES(0), TENSOR_NAMES(1), TENSOR_NAMES(2)};
enum { MAX_TENSORS = sizeof NAMES / sizeof NAMES[0] };

static osp_status new_zeros(test_case *c, const osp_tensor *like, osp_tensor *out) {
  OSP_TRY(new_output(c, like->ndim, like->shape, out));
  memset(out->data, 0, osp_tensor_bytes(out));
  return OSP_OK;
}

/* Entry s of a contiguous stack [S, ...], as a tensor of the other dimensions. */
static osp_tensor stack_entry(const osp_tensor *stack, int64_t s) {
  return osp_tensor_make((float *)stack->data + s * stack->stride[0], stack->dtype, stack->device,
                         stack->ndim - 1, stack->shape + 1);
}

/* One AdamW step per gradient of grads [S, ...] from zero moments, the parameter after every
 * step compared with torch's, and the moments after the last. */
static osp_status run_adamw_tensor(test_case *c, const tensor_names *names,
                                   osp_adamw_config config) {
  osp_tensor param, grads, history, m, v;
  OSP_TRY(load_f32(c, names->param, &param));
  OSP_TRY(load_f32(c, names->grads, &grads));
  OSP_TRY(new_output(c, grads.ndim, grads.shape, &history));
  OSP_TRY(new_zeros(c, &param, &m));
  OSP_TRY(new_zeros(c, &param, &v));
  for (int64_t s = 0; s < grads.shape[0]; s++) {
    const osp_tensor grad = stack_entry(&grads, s);
    config.step = s + 1;
    OSP_TRY(osp_adamw_step(&param, &grad, &m, &v, &config));
    memcpy(stack_entry(&history, s).data, param.data, osp_tensor_bytes(&param));
  }
  OSP_TRY(compare(c, names->ref_params, &history));
  OSP_TRY(compare(c, names->ref_m, &m));
  return compare(c, names->ref_v, &v);
}

static osp_status run_adamw(test_case *c) {
  osp_adamw_config config = {0};
  OSP_TRY(load_f64(c, "lr", &config.lr));
  OSP_TRY(load_f64(c, "beta1", &config.beta1));
  OSP_TRY(load_f64(c, "beta2", &config.beta2));
  OSP_TRY(load_f64(c, "eps", &config.eps));
  OSP_TRY(load_f64(c, "weight_decay", &config.weight_decay));
  if (!has_tensor(c, NAMES[0].param))
    return osp_fail(OSP_ERR_MISSING, "%s: no tensor '%s'", c->file.path, NAMES[0].param);
  for (int i = 0; i < MAX_TENSORS && has_tensor(c, NAMES[i].param); i++)
    OSP_TRY(run_adamw_tensor(c, &NAMES[i], config));
  return OSP_OK;
}

static osp_status run_clip_grad_norm(test_case *c) {
  osp_tensor grads[MAX_TENSORS], *list[MAX_TENSORS];
  int count = 0;
  for (; count < MAX_TENSORS && has_tensor(c, NAMES[count].grads); count++) {
    OSP_TRY(load_f32(c, NAMES[count].grads, &grads[count]));
    list[count] = &grads[count];
  }
  double max_norm = 0.0, total_norm = 0.0;
  OSP_TRY(load_f64(c, "max_norm", &max_norm));
  OSP_TRY(osp_clip_grad_norm(list, count, max_norm, &total_norm));
  for (int i = 0; i < count; i++) OSP_TRY(compare(c, NAMES[i].ref, &grads[i]));
  float norm = (float)total_norm;
  const osp_tensor norm_tensor = osp_tensor_make(&norm, OSP_F32, OSP_CPU, 1, (const int64_t[]){1});
  return compare(c, "ref_total_norm", &norm_tensor);
}

/* The schedule's kind, stored as the ASCII bytes of its name. */
static osp_status load_lr_kind(test_case *c, osp_lr_kind *kind) {
  osp_tensor bytes;
  char name[32] = {0};
  OSP_TRY(load_as_stored(c, "kind", OSP_ST_U8, OSP_U8, &bytes));
  const size_t length = (size_t)osp_tensor_numel(&bytes);
  memcpy(name, bytes.data, length < sizeof name - 1 ? length : sizeof name - 1);
  return osp_lr_kind_parse(name, kind);
}

static osp_status run_lr_schedule(test_case *c) {
  osp_lr_schedule schedule = {0};
  int warmup_steps = 0, total_steps = 0;
  OSP_TRY(load_lr_kind(c, &schedule.kind));
  OSP_TRY(load_f64(c, "lr", &schedule.lr));
  OSP_TRY(load_f64(c, "min_lr", &schedule.min_lr));
  OSP_TRY(load_ints(c, "warmup_steps", 1, &warmup_steps));
  OSP_TRY(load_ints(c, "total_steps", 1, &total_steps));
  schedule.warmup_steps = warmup_steps;
  schedule.total_steps = total_steps;
  osp_tensor ref, lrs;
  OSP_TRY(load_f32(c, "ref_lr", &ref));
  OSP_TRY(new_output(c, 1, ref.shape, &lrs));
  for (int64_t t = 1; t <= ref.shape[0]; t++) {
    double lr = 0.0;
    OSP_TRY(osp_lr_at(&schedule, t, &lr));
    ((float *)lrs.data)[t - 1] = (float)lr;
  }
  return compare(c, "ref_lr", &lrs);
}

/* AdamW and clipping as torch computes them in float32: 1e-6 (AdamW agrees to an ulp or so); the
 * lr in double, compared in float32: 1e-7. */
/* The EMA from param.0 over the parameters stacked in grads.0 [S, ...], against ref.0. */
static osp_status run_ema(test_case *c) {
  osp_tensor ema, params;
  double decay;
  OSP_TRY(load_f64(c, "decay", &decay));
  OSP_TRY(load_f32(c, NAMES[0].param, &ema));
  OSP_TRY(load_f32(c, NAMES[0].grads, &params));
  for (int64_t s = 0; s < params.shape[0]; s++) {
    const osp_tensor p = stack_entry(&params, s);
    OSP_TRY(osp_ema_update(&ema, &p, decay));
  }
  return compare(c, NAMES[0].ref, &ema);
}

static op_entry OPS[] = {
    {"adamw", run_adamw, 1e-6, 0},
    {"clip_grad_norm", run_clip_grad_norm, 1e-6, 0},
    {"ema", run_ema, 1e-6, 0},
    {"lr_schedule", run_lr_schedule, 1e-7, 0},
};
enum { OP_COUNT = sizeof OPS / sizeof OPS[0] };

/* ---- Errors ------------------------------------------------------------------------------- */

static osp_tensor f32_tensor(float *data, int ndim, const int64_t *shape) {
  return osp_tensor_make(data, OSP_F32, OSP_CPU, ndim, shape);
}

static osp_tensor with_dtype(osp_tensor t, osp_dtype dtype) {
  t.dtype = dtype;
  return t;
}

static void test_adamw_errors(void) {
  static float param_data[32], grad_data[32], m_data[32], v_data[32];
  const int64_t shape[2] = {4, 8}, narrow[2] = {4, 7}, flat[1] = {32};
  osp_tensor param = f32_tensor(param_data, 2, shape), grad = f32_tensor(grad_data, 2, shape);
  osp_tensor m = f32_tensor(m_data, 2, shape), v = f32_tensor(v_data, 2, shape);
  const osp_adamw_config good = {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                                 .weight_decay = 0.1, .step = 1};
  expect_status(osp_adamw_step(&param, &grad, &m, &v, &good), OSP_OK, "");

  const osp_tensor narrow_grad = f32_tensor(grad_data, 2, narrow);
  osp_tensor flat_m = f32_tensor(m_data, 1, flat), narrow_v = f32_tensor(v_data, 2, narrow);
  osp_tensor v_over_m = f32_tensor(m_data, 2, shape);
  expect_status(osp_adamw_step(&param, &narrow_grad, &m, &v, &good), OSP_ERR_SHAPE,
              "osp_adamw_step: grad: expected shape [4, 8], found [4, 7]");
  expect_status(osp_adamw_step(&param, &grad, &flat_m, &v, &good), OSP_ERR_SHAPE,
              "osp_adamw_step: m: expected shape [4, 8], found [32]");
  expect_status(osp_adamw_step(&param, &grad, &m, &narrow_v, &good), OSP_ERR_SHAPE,
              "osp_adamw_step: v: expected shape [4, 8], found [4, 7]");
  expect_status(osp_adamw_step(&param, &grad, &m, &v_over_m, &good), OSP_ERR_ARGUMENT,
              "osp_adamw_step: v: expected memory apart from m, found them overlapping");
  const osp_tensor bf16_grad = with_dtype(grad, OSP_BF16);
  expect_status(osp_adamw_step(&param, &bf16_grad, &m, &v, &good), OSP_ERR_SHAPE,
              "osp_adamw_step: grad: expected dtype f32, found bf16");

  osp_adamw_config bad = good;
  bad.step = 0;
  expect_status(osp_adamw_step(&param, &grad, &m, &v, &bad), OSP_ERR_ARGUMENT,
              "osp_adamw_step: step: expected t >= 1, found 0");
  bad = good;
  bad.lr = -1e-3;
  expect_status(osp_adamw_step(&param, &grad, &m, &v, &bad), OSP_ERR_ARGUMENT,
              "osp_adamw_step: lr: expected a finite value >= 0, found -0.001");
  bad = good;
  bad.beta2 = 1.0;
  expect_status(osp_adamw_step(&param, &grad, &m, &v, &bad), OSP_ERR_ARGUMENT,
              "osp_adamw_step: beta2: expected a value in [0, 1), found 1");
  expect_status(osp_adamw_step(&param, &grad, &m, &v, NULL), OSP_ERR_ARGUMENT,
              "osp_adamw_step: config: missing (NULL)");

  /* CUDA tensors are refused (no CUDA kernel yet, or no CUDA in this build) before any is read. */
  osp_tensor cuda[4] = {param, grad, m, v};
  for (int i = 0; i < 4; i++) cuda[i].device = OSP_CUDA;
  CHECK(osp_adamw_step(&cuda[0], &cuda[1], &cuda[2], &cuda[3], &good) == OSP_ERR_UNSUPPORTED);
  CHECK(strncmp(osp_last_error(), "osp_adamw_step: ", 16) == 0);
}

static void test_norm_errors(void) {
  static float a[12], b[12];
  const int64_t shape[2] = {3, 4};
  osp_tensor x = f32_tensor(a, 2, shape), y = f32_tensor(b, 2, shape);
  double sum = 0.0, total_norm = 0.0;
  osp_tensor strided = x;
  strided.stride[0] = 6;
  expect_status(osp_sum_of_squares(&strided, &sum), OSP_ERR_SHAPE,
              "osp_sum_of_squares: x: expected a contiguous tensor, found strides [6, 1]");
  osp_tensor i32 = with_dtype(x, OSP_I32);
  expect_status(osp_scale_in_place(&i32, 2.0f), OSP_ERR_SHAPE,
              "osp_scale_in_place: x: expected dtype f32 on the cpu, found i32");

  osp_tensor *grads[2] = {&x, &y};
  expect_status(osp_clip_grad_norm(grads, 0, 1.0, &total_norm), OSP_ERR_ARGUMENT,
              "osp_clip_grad_norm: grads: expected at least one tensor, found 0");
  expect_status(osp_clip_grad_norm(grads, 2, 0.0, &total_norm), OSP_ERR_ARGUMENT,
              "osp_clip_grad_norm: max_norm: expected a finite value > 0, found 0");
  osp_tensor bf16_y = with_dtype(y, OSP_BF16);
  osp_tensor *mixed[2] = {&x, &bf16_y};
  expect_status(osp_clip_grad_norm(mixed, 2, 1.0, &total_norm), OSP_ERR_SHAPE,
              "osp_clip_grad_norm: grads[1]: expected dtype f32 on the cpu, found bf16");

  osp_tensor cuda_x = x;
  cuda_x.device = OSP_CUDA;
  osp_tensor *on_cuda[1] = {&cuda_x};
  CHECK(osp_clip_grad_norm(on_cuda, 1, 1.0, &total_norm) == OSP_ERR_UNSUPPORTED);
  CHECK(strncmp(osp_last_error(), "osp_clip_grad_norm: ", 20) == 0);

  /* A NaN anywhere: an error, and no gradient is scaled (the caller skips the step). */
  for (int i = 0; i < 12; i++) a[i] = b[i] = 10.0f;
  b[5] = NAN;
  expect_status(osp_clip_grad_norm(grads, 2, 1.0, &total_norm), OSP_ERR_NUMERIC,
              "osp_clip_grad_norm: grads: expected a finite total norm, found nan; no gradient "
              "was scaled");
  CHECK(a[0] == 10.0f && b[0] == 10.0f);
}

static void test_lr_schedule_errors(void) {
  osp_lr_kind kind = OSP_LR_CONSTANT;
  double lr = 0.0;
  expect_status(osp_lr_kind_parse("linear", &kind), OSP_ERR_ARGUMENT,
              "lr schedule: kind: expected constant or cosine, found 'linear'");
  expect_status(osp_lr_kind_parse("cosine", &kind), OSP_OK, "");
  CHECK(kind == OSP_LR_COSINE);

  const osp_lr_schedule cosine = {OSP_LR_COSINE, 1e-4, 1e-5, 10, 100};
  expect_status(osp_lr_at(&cosine, 100, &lr), OSP_OK, "");
  CHECK(lr == 1e-5);
  osp_lr_schedule bad = cosine;
  bad.min_lr = 1e-3;
  expect_status(osp_lr_at(&bad, 1, &lr), OSP_ERR_ARGUMENT,
              "lr schedule (cosine): min_lr: expected a value in [0, lr = 0.0001], found 0.001");
  bad = cosine;
  bad.total_steps = 10;
  expect_status(osp_lr_schedule_check(&bad), OSP_ERR_ARGUMENT,
              "lr schedule (cosine): total_steps: expected more than warmup_steps = 10, found 10");
  bad = cosine;
  bad.warmup_steps = -1;
  expect_status(osp_lr_schedule_check(&bad), OSP_ERR_ARGUMENT,
              "lr schedule (cosine): warmup_steps: expected >= 0, found -1");
  bad = cosine;
  bad.lr = -1.0;
  expect_status(osp_lr_schedule_check(&bad), OSP_ERR_ARGUMENT,
              "lr schedule (cosine): lr: expected a finite value >= 0, found -1");
  expect_status(osp_lr_at(&cosine, 0, &lr), OSP_ERR_ARGUMENT,
              "lr schedule (cosine): step: expected t >= 1, found 0");
}

/* ---- Determinism -------------------------------------------------------------------------- */

/* The same bits from 1, 2, 3 and 4 threads, over sizes below, at and above the chunking's
 * boundaries; and within rounding of a plain sum in long double. */
static void test_sum_of_squares_threads(void) {
  const int64_t sizes[] = {1, 4095, 4096, 4097, 3 * 4096, 1 << 20, (1 << 20) + 12345, 3000017};
  const int64_t largest = sizes[sizeof sizes / sizeof sizes[0] - 1];
  float *x = malloc((size_t)largest * sizeof *x);
  CHECK(x != NULL);
  if (!x) return;
  osp_randn(7, 0, 0, x, (size_t)largest);
  const int threads = omp_get_max_threads();
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    const osp_tensor t = f32_tensor(x, 1, &sizes[s]);
    double one = 0.0, many = 0.0;
    omp_set_num_threads(1);
    expect_status(osp_sum_of_squares(&t, &one), OSP_OK, "");
    for (int n = 2; n <= 4; n++) {
      omp_set_num_threads(n);
      expect_status(osp_sum_of_squares(&t, &many), OSP_OK, "");
      CHECK(memcmp(&one, &many, sizeof one) == 0);
    }
    long double plain = 0.0L;
    for (int64_t i = 0; i < sizes[s]; i++) plain += (long double)x[i] * x[i];
    CHECK_NEAR(one, (double)plain, 1e-13);
  }
  omp_set_num_threads(threads);
  free(x);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CASE_DIR   (written by tests/ref/make_optim_cases.py)\n", argv[0]);
    return 2;
  }
  test_adamw_errors();
  test_norm_errors();
  test_lr_schedule_errors();
  test_sum_of_squares_threads();
  return ref_cases_main("test_optim_ref", "tests/ref/make_optim_cases.py", argv[1], OPS, OP_COUNT);
}
