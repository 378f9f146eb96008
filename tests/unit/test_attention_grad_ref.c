/* osp_attention_forward_lse and osp_attention_backward (src/ops/grad.h) against the PyTorch
 * references of tests/ref/make_attention_grad_cases.py, then their operand errors:
 *
 *   ~/.cache/osp-venv/bin/python tests/ref/make_attention_grad_cases.py build/ref/attn_grad
 *   build/test_attention_grad_ref build/ref/attn_grad
 *
 * A backward case runs the forward with lse, then the backward as training does, starting each
 * gradient from the case's prefill (or zero); the dq of a query row with every key masked must keep
 * its start bits. Its gradients must then come back bit for bit from a second run, a run on one
 * thread, and runs that want only dq or only dk and dv.
 * How a case is read and judged: ref_case.h. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops/grad.h"
#include "ops/ops.h"
#include "ref_case.h"

static osp_tensor forward_scratch, backward_scratch; /* planned once in main, as a model would */

typedef struct {
  osp_tensor q, k, v, key_mask;
  bool masked;
  float scale;
} attention_inputs;

static osp_status load_inputs(test_case *c, attention_inputs *in) {
  in->masked = has_tensor(c, "key_mask");
  OSP_TRY(load_f32(c, "q", &in->q));
  OSP_TRY(load_f32(c, "k", &in->k));
  OSP_TRY(load_f32(c, "v", &in->v));
  if (in->masked) OSP_TRY(load_as_stored(c, "key_mask", OSP_ST_U8, OSP_U8, &in->key_mask));
  return load_scalar(c, "scale", &in->scale);
}

/* As compare(), for an lse whose reference is −inf for a query with every key masked: there OSP's
 * lse must be −inf too, and these entries leave the error (their difference is NaN). */
static osp_status compare_lse(test_case *c, const osp_tensor *lse) {
  osp_tensor ref, finite;
  OSP_TRY(load_f32(c, "ref_lse", &ref));
  OSP_TRY(new_output(c, lse->ndim, lse->shape, &finite));
  if (!osp_tensor_same_shape(lse, &ref))
    return osp_fail(OSP_ERR_SHAPE, "%s: ref_lse and lse differ in shape", c->file.path);
  float *want = ref.data, *got = finite.data;
  for (int64_t i = 0; i < osp_tensor_numel(&ref); i++) {
    got[i] = ((const float *)lse->data)[i];
    if (want[i] != -INFINITY) continue;
    if (got[i] != -INFINITY)
      return osp_fail(OSP_ERR_NUMERIC, "%s: lse[%lld] is %g, expected -inf (every key masked)",
                      c->file.path, (long long)i, (double)got[i]);
    want[i] = got[i] = 0.0f;
  }
  const double error = relative_error(got, want, osp_tensor_numel(&ref));
  if (isnan(error) || error > c->error) {
    c->error = error;
    c->worst_output = "ref_lse";
  }
  return OSP_OK;
}

static osp_status forward_with_lse(test_case *c, const attention_inputs *in, osp_tensor *out,
                                   osp_tensor *lse) {
  const int64_t *s = in->q.shape; /* [B, Nq, heads, D] */
  OSP_TRY(new_output(c, 4, s, out));
  OSP_TRY(new_output(c, 3, (const int64_t[]){s[0], s[2], s[1]}, lse));
  OSP_TRY(osp_attention_forward_lse(&in->q, &in->k, &in->v, in->masked ? &in->key_mask : NULL,
                                    in->scale, &forward_scratch, out, lse));
  OSP_TRY(compare(c, "ref_out", out));
  return compare_lse(c, lse);
}

static osp_status run_attention_lse(test_case *c) {
  attention_inputs in;
  osp_tensor out, lse;
  OSP_TRY(load_inputs(c, &in));
  return forward_with_lse(c, &in, &out, &lse);
}

enum { DQ, DK, DV, GRADIENTS };
static const char *const GRADIENT_NAMES[GRADIENTS] = {"dq", "dk", "dv"};

/* The inputs of a backward case, its forward's out and lse, and what each gradient starts from:
 * the case's <name>_prefill, or zero. */
typedef struct {
  attention_inputs in;
  osp_tensor out, lse, dout;
  osp_tensor start[GRADIENTS];
} backward_case;

static osp_status load_backward_case(test_case *c, backward_case *bc) {
  OSP_TRY(load_inputs(c, &bc->in));
  OSP_TRY(load_f32(c, "dout", &bc->dout));
  OSP_TRY(forward_with_lse(c, &bc->in, &bc->out, &bc->lse));
  for (int i = 0; i < GRADIENTS; i++) {
    char prefill[32];
    snprintf(prefill, sizeof prefill, "%s_prefill", GRADIENT_NAMES[i]);
    if (has_tensor(c, prefill)) {
      OSP_TRY(load_f32(c, prefill, &bc->start[i]));
      continue;
    }
    const osp_tensor *like = i == DQ ? &bc->in.q : &bc->in.k;
    OSP_TRY(new_output(c, like->ndim, like->shape, &bc->start[i]));
    memset(bc->start[i].data, 0, osp_tensor_bytes(&bc->start[i]));
  }
  return OSP_OK;
}

/* A backward run: its OpenMP threads (0: the default) and the gradients it wants. */
typedef struct {
  const char *what;
  int threads;
  bool wanted[GRADIENTS];
} backward_run;

/* Runs that must give the first run's bits, gradient by gradient. On one thread the kernel takes
 * its one-pass schedule; on more, a case with a single (key row, head) pair takes two passes
 * (src/cpu/attention_backward.c), so the first run and the one-thread run compare the two. */
static const backward_run REPEATS[] = {
    {"a second run", 0, {true, true, true}},
    {"a run on one thread", 1, {true, true, true}},
    {"a run wanting only dq", 0, {true, false, false}},
    {"a run wanting only dk and dv", 0, {false, true, true}},
};

/* The gradients of one run, started from the case's start values; those not wanted are NULL. */
static osp_status run_backward(const backward_case *bc, const backward_run *run,
                               osp_tensor gradients[GRADIENTS]) {
  osp_tensor *wanted[GRADIENTS];
  for (int i = 0; i < GRADIENTS; i++) {
    wanted[i] = run->wanted[i] ? &gradients[i] : NULL;
    if (wanted[i]) memcpy(gradients[i].data, bc->start[i].data, osp_tensor_bytes(&bc->start[i]));
  }
  const int default_threads = omp_get_max_threads();
  omp_set_num_threads(run->threads ? run->threads : default_threads);
  const attention_inputs *in = &bc->in;
  const osp_status status = osp_attention_backward(
      &in->q, &in->k, &in->v, in->masked ? &in->key_mask : NULL, in->scale, &bc->out, &bc->lse,
      &bc->dout, &backward_scratch, wanted[DQ], wanted[DK], wanted[DV]);
  omp_set_num_threads(default_threads);
  return status;
}

/* A query row whose keys are all masked takes no gradient: its dq keeps its start bits. */
static osp_status check_masked_rows_untouched(test_case *c, const backward_case *bc,
                                              const osp_tensor *dq) {
  const int64_t batch = dq->shape[0], keys = bc->in.k.shape[1];
  const size_t row_bytes = osp_tensor_bytes(dq) / (size_t)batch;
  for (int64_t b = 0; bc->in.masked && b < batch; b++) {
    const uint8_t *flags = (const uint8_t *)bc->in.key_mask.data + b * keys;
    bool all_masked = true;
    for (int64_t j = 0; j < keys; j++) all_masked = all_masked && !flags[j];
    if (all_masked && memcmp((const char *)dq->data + b * row_bytes,
                             (const char *)bc->start[DQ].data + b * row_bytes, row_bytes) != 0)
      return osp_fail(OSP_ERR_NUMERIC, "%s: dq of query row %lld (every key masked) changed",
                      c->file.path, (long long)b);
  }
  return OSP_OK;
}

static osp_status run_attention_backward(test_case *c) {
  backward_case bc;
  OSP_TRY(load_backward_case(c, &bc));
  osp_tensor first[GRADIENTS], again[GRADIENTS];
  for (int i = 0; i < GRADIENTS; i++) {
    OSP_TRY(new_output(c, bc.start[i].ndim, bc.start[i].shape, &first[i]));
    OSP_TRY(new_output(c, bc.start[i].ndim, bc.start[i].shape, &again[i]));
  }
  const backward_run all = {"the first run", 0, {true, true, true}};
  OSP_TRY(run_backward(&bc, &all, first));
  OSP_TRY(compare(c, "ref_dq", &first[DQ]));
  OSP_TRY(compare(c, "ref_dk", &first[DK]));
  OSP_TRY(compare(c, "ref_dv", &first[DV]));
  OSP_TRY(check_masked_rows_untouched(c, &bc, &first[DQ]));
  for (size_t r = 0; r < sizeof REPEATS / sizeof REPEATS[0]; r++) {
    OSP_TRY(run_backward(&bc, &REPEATS[r], again));
    for (int i = 0; i < GRADIENTS; i++)
      if (REPEATS[r].wanted[i] &&
          memcmp(first[i].data, again[i].data, osp_tensor_bytes(&first[i])) != 0)
        return osp_fail(OSP_ERR_NUMERIC, "%s: %s of %s differs from the first run's bits",
                        c->file.path, GRADIENT_NAMES[i], REPEATS[r].what);
  }
  return OSP_OK;
}

/* Each output is rounded float32 arithmetic on inputs of order 1 (sgemm sums of up to 1100 terms,
 * a polynomial e^x within 2 ulp): 1e-5 of max|ref| for out, lse, dq, dk and dv alike. */
static op_entry OPS[] = {
    {"attention_lse", run_attention_lse, 1e-5, 0},
    {"attention_backward", run_attention_backward, 1e-5, 0},
};
enum { OP_COUNT = sizeof OPS / sizeof OPS[0] };

/* ---- Operand errors: the status and the exact message, which names the op and the operand ---- */

static float buffer_q[160], buffer_k[96], buffer_v[96], buffer_out[160], buffer_lse[20],
    buffer_dout[160], buffer_dq[160], buffer_dk[96], buffer_dv[96];

/* The operands of a valid call, over the buffers above: q [2, 5, 2, 8], k, v [1, 6, 2, 8]. */
enum { ARG_Q, ARG_K, ARG_V, ARG_OUT, ARG_LSE, ARG_DOUT, ARG_DQ, ARG_DK, ARG_DV, ARG_SCRATCH, ARGS };
typedef struct {
  osp_tensor t[ARGS];
} operands;

static osp_tensor f32_tensor(float *data, int ndim, const int64_t *shape) {
  return osp_tensor_make(data, OSP_F32, OSP_CPU, ndim, shape);
}

static operands valid_operands(void) {
  const int64_t q_shape[4] = {2, 5, 2, 8}, kv_shape[4] = {1, 6, 2, 8};
  return (operands){{
      [ARG_Q] = f32_tensor(buffer_q, 4, q_shape),
      [ARG_K] = f32_tensor(buffer_k, 4, kv_shape),
      [ARG_V] = f32_tensor(buffer_v, 4, kv_shape),
      [ARG_OUT] = f32_tensor(buffer_out, 4, q_shape),
      [ARG_LSE] = f32_tensor(buffer_lse, 3, (const int64_t[]){2, 2, 5}),
      [ARG_DOUT] = f32_tensor(buffer_dout, 4, q_shape),
      [ARG_DQ] = f32_tensor(buffer_dq, 4, q_shape),
      [ARG_DK] = f32_tensor(buffer_dk, 4, kv_shape),
      [ARG_DV] = f32_tensor(buffer_dv, 4, kv_shape),
      [ARG_SCRATCH] = backward_scratch,
  }};
}

static osp_status forward_lse_of(operands *o) {
  osp_tensor *t = o->t;
  return osp_attention_forward_lse(&t[ARG_Q], &t[ARG_K], &t[ARG_V], NULL, 0.35f, &forward_scratch,
                                   &t[ARG_OUT], &t[ARG_LSE]);
}

static osp_status backward_of(operands *o) {
  osp_tensor *t = o->t;
  return osp_attention_backward(&t[ARG_Q], &t[ARG_K], &t[ARG_V], NULL, 0.35f, &t[ARG_OUT],
                                &t[ARG_LSE], &t[ARG_DOUT], &t[ARG_SCRATCH], &t[ARG_DQ], &t[ARG_DK],
                                &t[ARG_DV]);
}

static osp_tensor with_dtype(osp_tensor t, osp_dtype dtype) {
  t.dtype = dtype;
  return t;
}

static osp_tensor over(float *data, osp_tensor t) {
  t.data = data;
  return t;
}

/* A call with one operand of the valid ones replaced, and what it must return. */
typedef struct {
  osp_status (*call)(operands *o);
  int operand;
  osp_tensor replacement;
  osp_status status;
  const char *message;
} error_case;

static void test_operand_errors(void) {
  operands o = valid_operands();
  const osp_tensor *valid = o.t;
  expect_status(forward_lse_of(&o), OSP_OK, "");
  expect_status(backward_of(&o), OSP_OK, "");
  char small_scratch[160];
  snprintf(small_scratch, sizeof small_scratch,
           "osp_attention_backward: scratch: expected at least %zu bytes, found %zu",
           osp_attention_backward_scratch_bytes(OSP_CPU, valid[ARG_Q].shape),
           osp_tensor_bytes(&forward_scratch));
  const error_case cases[] = {
      {forward_lse_of, ARG_LSE, f32_tensor(buffer_lse, 3, (const int64_t[]){2, 5, 2}),
       OSP_ERR_SHAPE, "osp_attention_forward_lse: lse: expected shape [2, 2, 5], found [2, 5, 2]"},
      {forward_lse_of, ARG_LSE, with_dtype(valid[ARG_LSE], OSP_U8), OSP_ERR_SHAPE,
       "osp_attention_forward_lse: lse: expected dtype f32, found u8"},
      {forward_lse_of, ARG_LSE, over(buffer_out, valid[ARG_LSE]), OSP_ERR_ARGUMENT,
       "osp_attention_forward_lse: lse: expected memory apart from out, found them overlapping"},
      {backward_of, ARG_DOUT, f32_tensor(buffer_dout, 4, (const int64_t[]){2, 5, 2, 4}),
       OSP_ERR_SHAPE,
       "osp_attention_backward: dout: expected shape [2, 5, 2, 8], found [2, 5, 2, 4]"},
      {backward_of, ARG_DK, valid[ARG_DQ], OSP_ERR_SHAPE,
       "osp_attention_backward: dk: expected shape [1, 6, 2, 8], found [2, 5, 2, 8]"},
      {backward_of, ARG_DV, with_dtype(valid[ARG_DV], OSP_U8), OSP_ERR_SHAPE,
       "osp_attention_backward: dv: expected dtype f32 on the cpu, found u8"},
      {backward_of, ARG_DQ, over(buffer_dout, valid[ARG_DQ]), OSP_ERR_ARGUMENT,
       "osp_attention_backward: dq: expected memory apart from dout, found them overlapping"},
      {backward_of, ARG_DV, over(buffer_dk, valid[ARG_DV]), OSP_ERR_ARGUMENT,
       "osp_attention_backward: dv: expected memory apart from dk, found them overlapping"},
      {backward_of, ARG_SCRATCH, forward_scratch, OSP_ERR_SHAPE, small_scratch}, /* the forward's */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    operands changed = valid_operands();
    changed.t[cases[i].operand] = cases[i].replacement;
    expect_status(cases[i].call(&changed), cases[i].status, cases[i].message);
  }
  osp_tensor *t = o.t;
  expect_status(
      osp_attention_backward(&t[ARG_Q], &t[ARG_K], &t[ARG_V], NULL, 0.35f, &t[ARG_OUT], NULL,
                             &t[ARG_DOUT], &t[ARG_SCRATCH], NULL, &t[ARG_DK], &t[ARG_DV]),
      OSP_ERR_ARGUMENT, "osp_attention_backward: lse: missing (NULL)");
#ifndef OSP_HAVE_CUDA /* with the backend, CUDA operands reach ops_require_cpu instead */
  for (int i = 0; i < ARGS; i++) t[i].device = OSP_CUDA;
  for (int i = ARG_Q; i <= ARG_DOUT; i++) /* as CUDA takes them: bf16, but an f32 lse */
    t[i].dtype = i == ARG_LSE ? OSP_F32 : OSP_BF16;
  expect_status(backward_of(&o), OSP_ERR_UNSUPPORTED,
                "osp_attention_backward: this build has no CUDA backend");
#endif
}

static osp_tensor new_scratch(size_t bytes) {
  const int64_t size = (int64_t)bytes;
  return osp_tensor_make(malloc(bytes), OSP_U8, OSP_CPU, 1, &size);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CASE_DIR   (written by tests/ref/make_attention_grad_cases.py)\n",
            argv[0]);
    return 2;
  }
  forward_scratch = new_scratch(osp_attention_scratch_bytes(OSP_CPU));
  /* the CPU's need does not depend on the shape, so one scratch serves every case */
  backward_scratch =
      new_scratch(osp_attention_backward_scratch_bytes(OSP_CPU, (const int64_t[]){1, 1, 1, 1}));
  test_operand_errors();
  const int rc = ref_cases_main("test_attention_grad_ref", "tests/ref/make_attention_grad_cases.py",
                                argv[1], OPS, OP_COUNT);
  free(forward_scratch.data);
  free(backward_scratch.data);
  return rc;
}
