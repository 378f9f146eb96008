/* Every op of src/ops/ops.h against the PyTorch references of tests/ref/make_op_cases.py:
 *
 *   ~/.cache/osp-venv/bin/python tests/ref/make_op_cases.py build/ref/ops
 *   build/test_ops_ref build/ref/ops
 *
 * How a case is read and judged: ref_case.h. */
#include <stdlib.h>

#include "ops/ops.h"
#include "ref_case.h"

static osp_tensor attention_scratch; /* planned once in main, as a model would */

static osp_status run_linear(test_case *c) {
  osp_tensor x, w, bias, ref, y;
  const bool with_bias = has_tensor(c, "bias");
  OSP_TRY(load_f32(c, "x", &x));
  OSP_TRY(load_f32(c, "weight", &w));
  if (with_bias) OSP_TRY(load_f32(c, "bias", &bias));
  OSP_TRY(load_f32(c, "ref", &ref));
  OSP_TRY(new_output(c, ref.ndim, ref.shape, &y));
  OSP_TRY(osp_linear(&x, &w, with_bias ? &bias : NULL, &y));
  return compare(c, "ref", &y);
}

static osp_status run_layernorm(test_case *c) {
  osp_tensor x, weight, bias, y;
  float eps = 0.0f;
  const bool affine = has_tensor(c, "weight");
  OSP_TRY(load_f32(c, "x", &x));
  OSP_TRY(load_scalar(c, "eps", &eps));
  if (affine) {
    OSP_TRY(load_f32(c, "weight", &weight));
    OSP_TRY(load_f32(c, "bias", &bias));
  }
  OSP_TRY(new_output(c, x.ndim, x.shape, &y));
  OSP_TRY(osp_layernorm(&x, affine ? &weight : NULL, affine ? &bias : NULL, eps, &y));
  return compare(c, "ref", &y);
}

static osp_status run_rmsnorm(test_case *c) {
  osp_tensor x, weight;
  float eps = 0.0f;
  OSP_TRY(load_f32(c, "x", &x));
  OSP_TRY(load_f32(c, "weight", &weight));
  OSP_TRY(load_scalar(c, "eps", &eps));
  OSP_TRY(osp_rmsnorm(&x, &weight, eps, &x)); /* in place, as the model uses it */
  return compare(c, "ref", &x);
}

static osp_status run_elementwise(test_case *c,
                                  osp_status (*op)(const osp_tensor *, osp_tensor *)) {
  osp_tensor x, y;
  OSP_TRY(load_f32(c, "x", &x));
  OSP_TRY(new_output(c, x.ndim, x.shape, &y));
  OSP_TRY(op(&x, &y));
  return compare(c, "ref", &y);
}

static osp_status run_gelu_tanh(test_case *c) { return run_elementwise(c, osp_gelu_tanh); }
static osp_status run_silu(test_case *c) { return run_elementwise(c, osp_silu); }

static osp_status run_modulate(test_case *c) {
  osp_tensor x, table, y;
  int rows[2] = {0, 0};
  OSP_TRY(load_f32(c, "x", &x));
  OSP_TRY(load_f32(c, "table", &table));
  OSP_TRY(load_ints(c, "rows", 2, rows));
  const osp_tensor shift = table_row(&table, rows[0]), scale = table_row(&table, rows[1]);
  OSP_TRY(new_output(c, x.ndim, x.shape, &y));
  OSP_TRY(osp_modulate(&x, &shift, &scale, &y));
  return compare(c, "ref", &y);
}

static osp_status run_gated_add(test_case *c) {
  osp_tensor x, y, table, gate;
  const bool gated = has_tensor(c, "table");
  OSP_TRY(load_f32(c, "x", &x));
  OSP_TRY(load_f32(c, "y", &y));
  if (gated) {
    int row = 0;
    OSP_TRY(load_f32(c, "table", &table));
    OSP_TRY(load_ints(c, "rows", 1, &row));
    gate = table_row(&table, row);
  }
  OSP_TRY(osp_gated_add(&x, &y, gated ? &gate : NULL));
  return compare(c, "ref", &x);
}

static osp_status run_gather_rows(test_case *c) {
  osp_tensor src, index, ref, dst;
  OSP_TRY(load_f32(c, "src", &src));
  OSP_TRY(load_as_stored(c, "index", OSP_ST_I32, OSP_I32, &index));
  OSP_TRY(load_f32(c, "ref", &ref));
  OSP_TRY(new_output(c, ref.ndim, ref.shape, &dst));
  OSP_TRY(osp_gather_rows(&src, &index, &dst));
  return compare(c, "ref", &dst);
}

/* Builds the tables from the grid (compared with diffusers' WanRotaryPosEmbed), then rotates x
 * with them in their [N, D/2] form (compared with WanAttnProcessor). */
static osp_status run_rope(test_case *c) {
  osp_tensor x, cos, sin;
  int grid[3] = {0, 0, 0};
  OSP_TRY(load_ints(c, "grid", 3, grid));
  OSP_TRY(load_f32(c, "x", &x));
  const int head_dim = (int)x.shape[3];
  const int64_t table_shape[2] = {(int64_t)grid[0] * grid[1] * grid[2], head_dim / 2};
  OSP_TRY(new_output(c, 2, table_shape, &cos));
  OSP_TRY(new_output(c, 2, table_shape, &sin));
  OSP_TRY(osp_rope_tables(grid[0], grid[1], grid[2], head_dim, &cos, &sin));
  OSP_TRY(compare(c, "ref_cos", &cos));
  OSP_TRY(compare(c, "ref_sin", &sin));
  OSP_TRY(osp_rope_apply(&x, &cos, &sin));
  return compare(c, "ref", &x);
}

/* Row m of tables at listed positions, bit for bit: osp_rope_tables' row of the same (t, h, w) on
 * the grid, or exactly cos 1, sin 0 where row m is padding (t < 0). */
static osp_status check_rows_as_grid_tables(test_case *c, const osp_tensor *positions,
                                            const int grid[3], const osp_tensor *cos,
                                            const osp_tensor *sin) {
  const int64_t pairs = cos->shape[1];
  const int64_t grid_shape[2] = {(int64_t)grid[0] * grid[1] * grid[2], pairs};
  osp_tensor grid_cos, grid_sin;
  OSP_TRY(new_output(c, 2, grid_shape, &grid_cos));
  OSP_TRY(new_output(c, 2, grid_shape, &grid_sin));
  OSP_TRY(osp_rope_tables(grid[0], grid[1], grid[2], (int)(2 * pairs), &grid_cos, &grid_sin));
  for (int64_t m = 0; m < positions->shape[0]; m++) {
    const int32_t *p = (const int32_t *)positions->data + 3 * m;
    const bool padding = p[0] < 0;
    const int64_t token = ((int64_t)p[0] * grid[1] + p[1]) * grid[2] + p[2];
    for (int64_t i = 0; i < pairs; i++) {
      const float want_cos = padding ? 1.0f : ((const float *)grid_cos.data)[token * pairs + i];
      const float want_sin = padding ? 0.0f : ((const float *)grid_sin.data)[token * pairs + i];
      const float got_cos = ((const float *)cos->data)[m * pairs + i];
      const float got_sin = ((const float *)sin->data)[m * pairs + i];
      if (got_cos != want_cos || got_sin != want_sin)
        return osp_fail(OSP_ERR_NUMERIC,
                        "%s: row %lld at (%d, %d, %d), pair %lld: cos %.9g, sin %.9g, expected "
                        "exactly %.9g, %.9g",
                        c->file.path, (long long)m, p[0], p[1], p[2], (long long)i,
                        (double)got_cos, (double)got_sin, (double)want_cos, (double)want_sin);
    }
  }
  return OSP_OK;
}

/* Tables at listed coordinates, compared with diffusers' WanRotaryPosEmbed tables gathered at them
 * and, exactly, with osp_rope_tables' rows of the same coordinates. */
static osp_status run_rope_tables_at(test_case *c) {
  osp_tensor positions, cos, sin;
  int grid[3] = {0, 0, 0}, head_dim = 0;
  OSP_TRY(load_as_stored(c, "positions", OSP_ST_I32, OSP_I32, &positions));
  OSP_TRY(load_ints(c, "grid", 3, grid));
  OSP_TRY(load_ints(c, "head_dim", 1, &head_dim));
  const int64_t table_shape[2] = {positions.shape[0], head_dim / 2};
  OSP_TRY(new_output(c, 2, table_shape, &cos));
  OSP_TRY(new_output(c, 2, table_shape, &sin));
  OSP_TRY(osp_rope_tables_at(&positions, head_dim, &cos, &sin));
  OSP_TRY(compare(c, "ref_cos", &cos));
  OSP_TRY(compare(c, "ref_sin", &sin));
  return check_rows_as_grid_tables(c, &positions, grid, &cos, &sin);
}

static osp_status run_rope_apply(test_case *c) {
  osp_tensor x, cos, sin;
  OSP_TRY(load_f32(c, "x", &x));
  OSP_TRY(load_f32(c, "cos", &cos));
  OSP_TRY(load_f32(c, "sin", &sin));
  OSP_TRY(osp_rope_apply(&x, &cos, &sin));
  return compare(c, "ref", &x);
}

static osp_status run_attention(test_case *c) {
  osp_tensor q, k, v, key_mask, out;
  float scale = 0.0f;
  const bool masked = has_tensor(c, "key_mask");
  OSP_TRY(load_f32(c, "q", &q));
  OSP_TRY(load_f32(c, "k", &k));
  OSP_TRY(load_f32(c, "v", &v));
  if (masked) OSP_TRY(load_as_stored(c, "key_mask", OSP_ST_U8, OSP_U8, &key_mask));
  OSP_TRY(load_scalar(c, "scale", &scale));
  OSP_TRY(new_output(c, q.ndim, q.shape, &out));
  OSP_TRY(osp_attention(&q, &k, &v, masked ? &key_mask : NULL, scale, &attention_scratch, &out));
  return compare(c, "ref", &out);
}

/* osp_patchify, then a matmul with the Conv3d weight viewed [C, Cin·pt·ph·pw]: the patch
 * embedding, compared with nn.Conv3d. */
static osp_status run_patchify(test_case *c) {
  osp_tensor latents, conv_weight, weight, bias, ref, patches, y;
  int patch[3] = {0, 0, 0};
  OSP_TRY(load_f32(c, "latents", &latents));
  OSP_TRY(load_ints(c, "patch", 3, patch));
  OSP_TRY(load_f32(c, "weight", &conv_weight));
  OSP_TRY(load_f32(c, "bias", &bias));
  OSP_TRY(load_f32(c, "ref", &ref));
  const int64_t features = osp_tensor_numel(&conv_weight) / conv_weight.shape[0];
  OSP_TRY(osp_tensor_reshape(&conv_weight, 2, (const int64_t[]){conv_weight.shape[0], features},
                             &weight));
  OSP_TRY(new_output(c, 3, (const int64_t[]){ref.shape[0], ref.shape[1], features}, &patches));
  OSP_TRY(new_output(c, ref.ndim, ref.shape, &y));
  OSP_TRY(osp_patchify(&latents, patch, &patches));
  OSP_TRY(osp_linear(&patches, &weight, &bias, &y));
  return compare(c, "ref", &y);
}

static osp_status run_unpatchify(test_case *c) {
  osp_tensor tokens, ref, out;
  int patch[3] = {0, 0, 0};
  OSP_TRY(load_f32(c, "tokens", &tokens));
  OSP_TRY(load_ints(c, "patch", 3, patch));
  OSP_TRY(load_f32(c, "ref", &ref));
  OSP_TRY(new_output(c, ref.ndim, ref.shape, &out));
  OSP_TRY(osp_unpatchify(&tokens, patch, &out));
  return compare(c, "ref", &out);
}

static osp_status run_timestep_embedding(test_case *c) {
  osp_tensor t, ref, out;
  OSP_TRY(load_f32(c, "t", &t));
  OSP_TRY(load_f32(c, "ref", &ref));
  OSP_TRY(new_output(c, ref.ndim, ref.shape, &out));
  OSP_TRY(osp_timestep_embedding(&t, &out));
  return compare(c, "ref", &out);
}

/* ---- Text encoder (umT5) ---- */

/* The weight as stored (bf16), x and bias f32. */
static osp_status run_linear_bf16(test_case *c) {
  osp_tensor x, w, bias, ref, y;
  const bool with_bias = has_tensor(c, "bias");
  OSP_TRY(load_f32(c, "x", &x));
  OSP_TRY(load_as_stored(c, "weight", OSP_ST_BF16, OSP_BF16, &w));
  if (with_bias) OSP_TRY(load_f32(c, "bias", &bias));
  OSP_TRY(load_f32(c, "ref", &ref));
  OSP_TRY(new_output(c, ref.ndim, ref.shape, &y));
  OSP_TRY(osp_linear(&x, &w, with_bias ? &bias : NULL, &y));
  return compare(c, "ref", &y);
}

static osp_status run_gather_rows_bf16(test_case *c) {
  osp_tensor src, index, ref, dst;
  OSP_TRY(load_as_stored(c, "src", OSP_ST_BF16, OSP_BF16, &src));
  OSP_TRY(load_as_stored(c, "index", OSP_ST_I32, OSP_I32, &index));
  OSP_TRY(load_f32(c, "ref", &ref));
  OSP_TRY(new_output(c, ref.ndim, ref.shape, &dst));
  OSP_TRY(osp_gather_rows(&src, &index, &dst));
  return compare(c, "ref", &dst);
}

static osp_status run_gelu_tanh_mul(test_case *c) {
  osp_tensor a, b;
  OSP_TRY(load_f32(c, "a", &a));
  OSP_TRY(load_f32(c, "b", &b));
  OSP_TRY(osp_gelu_tanh_mul(&a, &b, &a)); /* in place, as the model uses it */
  return compare(c, "ref", &a);
}

static osp_status run_relative_position_bias(test_case *c) {
  osp_tensor table, ref, bias;
  int max_distance = 0;
  OSP_TRY(load_f32(c, "table", &table));
  OSP_TRY(load_ints(c, "max_distance", 1, &max_distance));
  OSP_TRY(load_f32(c, "ref", &ref));
  OSP_TRY(new_output(c, ref.ndim, ref.shape, &bias));
  OSP_TRY(osp_relative_position_bias(&table, max_distance, &bias));
  return compare(c, "ref", &bias);
}

static osp_status run_attention_biased(test_case *c) {
  osp_tensor q, k, v, bias, key_mask, out;
  float scale = 0.0f;
  const bool masked = has_tensor(c, "key_mask");
  OSP_TRY(load_f32(c, "q", &q));
  OSP_TRY(load_f32(c, "k", &k));
  OSP_TRY(load_f32(c, "v", &v));
  OSP_TRY(load_f32(c, "bias", &bias));
  if (masked) OSP_TRY(load_as_stored(c, "key_mask", OSP_ST_U8, OSP_U8, &key_mask));
  OSP_TRY(load_scalar(c, "scale", &scale));
  OSP_TRY(new_output(c, q.ndim, q.shape, &out));
  OSP_TRY(osp_attention_biased(&q, &k, &v, masked ? &key_mask : NULL, &bias, scale,
                               &attention_scratch, &out));
  return compare(c, "ref", &out);
}

/* 1e-5 everywhere the result is rounded float32 arithmetic; gather_rows (from f32 or bf16),
 * unpatchify and the relative position bias move values and must be exact. */
static op_entry OPS[] = {
    {"linear", run_linear, 1e-5, 0},
    {"layernorm", run_layernorm, 1e-5, 0},
    {"rmsnorm", run_rmsnorm, 1e-5, 0},
    {"gelu_tanh", run_gelu_tanh, 1e-5, 0},
    {"silu", run_silu, 1e-5, 0},
    {"modulate", run_modulate, 1e-5, 0},
    {"gated_add", run_gated_add, 1e-5, 0},
    {"gather_rows", run_gather_rows, 0.0, 0},
    {"rope", run_rope, 1e-5, 0},
    {"rope_tables_at", run_rope_tables_at, 1e-5, 0},
    {"rope_apply", run_rope_apply, 1e-5, 0},
    {"attention", run_attention, 1e-5, 0},
    {"patchify", run_patchify, 1e-5, 0},
    {"unpatchify", run_unpatchify, 0.0, 0},
    {"timestep_embedding", run_timestep_embedding, 1e-5, 0},
    {"linear_bf16", run_linear_bf16, 1e-5, 0},
    {"gather_rows_bf16", run_gather_rows_bf16, 0.0, 0},
    {"gelu_tanh_mul", run_gelu_tanh_mul, 1e-5, 0},
    {"relative_position_bias", run_relative_position_bias, 0.0, 0},
    {"attention_biased", run_attention_biased, 1e-5, 0},
};
enum { OP_COUNT = sizeof OPS / sizeof OPS[0] };

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CASE_DIR   (written by tests/ref/make_op_cases.py)\n", argv[0]);
    return 2;
  }
  const int64_t scratch_size = (int64_t)osp_attention_scratch_bytes(OSP_CPU);
  attention_scratch = osp_tensor_make(malloc((size_t)scratch_size), OSP_U8, OSP_CPU, 1, &scratch_size);
  const int rc = ref_cases_main("test_ops_ref", "tests/ref/make_op_cases.py", argv[1], OPS, OP_COUNT);
  free(attention_scratch.data);
  return rc;
}
