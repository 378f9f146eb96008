/* The ops reject bad operands with a status and a one-line message naming the op and the operand:
 * wrong shape, wrong dtype, a CUDA or mixed device, a non-contiguous tensor, overlapping memory,
 * bad parameters, bad index or position values. The accepted cases next to them (in place, strided
 * table rows, broadcast modulation rows) must pass. */
#include <stdbool.h>
#include <string.h>

#include "core/status.h"
#include "harness.h"
#include "ops/ops.h"

/* Plenty for every small tensor below; the ops never read it when they reject a call. */
static float buffer_a[4096], buffer_b[4096], buffer_c[4096], buffer_d[4096];
static uint8_t mask_buffer[64];
static int32_t index_buffer[64];
static osp_tensor scratch; /* for osp_attention, allocated in main */

/* A contiguous f32 CPU tensor over `data` with the dims listed: f32_tensor(buffer_a, 2, 8). */
#define f32_tensor(data, ...)                                                                   \
  osp_tensor_make((data), OSP_F32, OSP_CPU,                                                     \
                  (int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),              \
                  (const int64_t[]){__VA_ARGS__})

#define EXPECT_FAIL(call, want_status, want_message)                                          \
  do {                                                                                        \
    const osp_status got_ = (call);                                                           \
    CHECK(got_ == (want_status));                                                             \
    if (strcmp(osp_last_error(), (want_message)) == 0) {                                      \
      test_checks_passed++;                                                                   \
    } else {                                                                                  \
      test_checks_failed++;                                                                   \
      fprintf(stderr, "%s:%d: message\n  got:      %s\n  expected: %s\n", __FILE__, __LINE__, \
              osp_last_error(), (want_message));                                              \
    }                                                                                         \
  } while (0)

#define EXPECT_OK(call)                                                                     \
  do {                                                                                      \
    const osp_status got_ = (call);                                                         \
    if (got_ != OSP_OK) fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, osp_last_error()); \
    CHECK(got_ == OSP_OK);                                                                  \
  } while (0)

static osp_tensor on_device(osp_tensor t, osp_device device) {
  t.device = device;
  return t;
}

static osp_tensor with_dtype(osp_tensor t, osp_dtype dtype) {
  t.dtype = dtype;
  return t;
}

/* An i32 CPU tensor over index_buffer holding `values`, with the dims listed. */
static osp_tensor i32_tensor(const int32_t *values, int ndim, const int64_t *shape) {
  osp_tensor t = osp_tensor_make(index_buffer, OSP_I32, OSP_CPU, ndim, shape);
  memcpy(index_buffer, values, (size_t)osp_tensor_numel(&t) * sizeof(int32_t));
  return t;
}

/* A marker in every value of an output, to see that an op which rejects its operands after
 * reading their values (an index, positions) has written nothing. */
static const float UNWRITTEN = 12345.0f;

static void mark_unwritten(float *data, int64_t n) {
  for (int64_t i = 0; i < n; i++) data[i] = UNWRITTEN;
}

static bool still_unwritten(const float *data, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    if (data[i] != UNWRITTEN) return false;
  return true;
}

static void test_linear(void) {
  osp_tensor x = f32_tensor(buffer_a, 2, 8), w = f32_tensor(buffer_b, 4, 8);
  osp_tensor bias = f32_tensor(buffer_c, 4), y = f32_tensor(buffer_d, 2, 4);
  EXPECT_OK(osp_linear(&x, &w, &bias, &y));

  osp_tensor narrow_w = f32_tensor(buffer_b, 4, 6);
  EXPECT_FAIL(osp_linear(&x, &narrow_w, &bias, &y), OSP_ERR_SHAPE,
              "osp_linear: weight: expected shape [*, 8], found [4, 6]");
  osp_tensor wide_y = f32_tensor(buffer_d, 2, 5);
  EXPECT_FAIL(osp_linear(&x, &w, &bias, &wide_y), OSP_ERR_SHAPE,
              "osp_linear: y: expected shape [2, 4], found [2, 5]");
  osp_tensor long_bias = f32_tensor(buffer_c, 5);
  EXPECT_FAIL(osp_linear(&x, &w, &long_bias, &y), OSP_ERR_SHAPE,
              "osp_linear: bias: expected shape [4], found [5]");
  osp_tensor cuda_w = on_device(w, OSP_CUDA);
  EXPECT_FAIL(osp_linear(&x, &cuda_w, &bias, &y), OSP_ERR_ARGUMENT,
              "osp_linear: weight: expected a cpu tensor like x, found cuda");
  osp_tensor y_over_x = f32_tensor(buffer_a + 4, 2, 4);
  EXPECT_FAIL(osp_linear(&x, &w, &bias, &y_over_x), OSP_ERR_ARGUMENT,
              "osp_linear: y: expected memory apart from x, found them overlapping");
  EXPECT_FAIL(osp_linear(NULL, &w, &bias, &y), OSP_ERR_ARGUMENT, "osp_linear: x: missing (NULL)");
  osp_tensor empty_x = f32_tensor(buffer_a, 0, 8);
  EXPECT_FAIL(osp_linear(&empty_x, &w, &bias, &y), OSP_ERR_SHAPE,
              "osp_linear: x: expected no empty dimension, found shape [0, 8]");
}

static void test_norms(void) {
  osp_tensor x = f32_tensor(buffer_a, 3, 16), y = f32_tensor(buffer_b, 3, 16);
  osp_tensor weight = f32_tensor(buffer_c, 16), bias = f32_tensor(buffer_d, 16);
  EXPECT_OK(osp_layernorm(&x, &weight, &bias, 1e-6f, &x)); /* in place */

#ifndef OSP_HAVE_CUDA /* with the backend, tests/cuda/ runs these calls */
  osp_tensor cx = on_device(x, OSP_CUDA), cy = on_device(y, OSP_CUDA);
  EXPECT_FAIL(osp_layernorm(&cx, NULL, NULL, 1e-6f, &cy), OSP_ERR_UNSUPPORTED,
              "osp_layernorm: this build has no CUDA backend");
#endif
  EXPECT_FAIL(osp_layernorm(&x, &weight, NULL, 1e-6f, &y), OSP_ERR_ARGUMENT,
              "osp_layernorm: weight, bias: expected both or neither, found only weight");
  osp_tensor short_bias = f32_tensor(buffer_d, 15);
  EXPECT_FAIL(osp_layernorm(&x, &weight, &short_bias, 1e-6f, &y), OSP_ERR_SHAPE,
              "osp_layernorm: bias: expected shape [16], found [15]");
  EXPECT_FAIL(osp_layernorm(&x, NULL, NULL, -1.0f, &y), OSP_ERR_ARGUMENT,
              "osp_layernorm: eps: expected a finite value >= 0, found -1");
  EXPECT_FAIL(osp_rmsnorm(&x, NULL, 1e-6f, &y), OSP_ERR_ARGUMENT,
              "osp_rmsnorm: weight: missing (NULL)");
  osp_tensor bf16_weight = with_dtype(weight, OSP_BF16);
  EXPECT_FAIL(osp_rmsnorm(&x, &bf16_weight, 1e-6f, &y), OSP_ERR_SHAPE,
              "osp_rmsnorm: weight: expected dtype f32 on the cpu, found bf16");
}

static void test_activations(void) {
  osp_tensor x = f32_tensor(buffer_a, 4, 4), y = f32_tensor(buffer_b, 4, 4);
  EXPECT_OK(osp_silu(&x, &x)); /* in place */

  osp_tensor bf16_x = with_dtype(x, OSP_BF16);
  EXPECT_FAIL(osp_gelu_tanh(&bf16_x, &y), OSP_ERR_SHAPE,
              "osp_gelu_tanh: x: expected dtype f32 on the cpu, found bf16");
  osp_tensor transposed = x;
  transposed.stride[0] = 1;
  transposed.stride[1] = 4;
  EXPECT_FAIL(osp_silu(&transposed, &y), OSP_ERR_SHAPE,
              "osp_silu: x: expected a contiguous tensor, found strides [1, 4]");
  osp_tensor shifted_y = f32_tensor(buffer_a + 1, 4, 4);
  EXPECT_FAIL(osp_silu(&x, &shifted_y), OSP_ERR_ARGUMENT,
              "osp_silu: y: expected memory apart from x, found them overlapping");
  osp_tensor flat_y = f32_tensor(buffer_b, 16);
  EXPECT_FAIL(osp_gelu_tanh(&x, &flat_y), OSP_ERR_SHAPE,
              "osp_gelu_tanh: y: expected shape [4, 4], found [16]");
}

/* shift, scale and gate are rows of a [B, 6, C] table: strided [B, C] views. */
static void test_modulation(void) {
  enum { B = 2, N = 3, C = 8 };
  osp_tensor x = f32_tensor(buffer_a, B, N, C), y = f32_tensor(buffer_b, B, N, C);
  osp_tensor table = f32_tensor(buffer_c, B, 6, C);
  osp_tensor shift = f32_tensor(buffer_c, B, C), scale = shift;
  shift.stride[0] = scale.stride[0] = table.stride[0];
  scale.data = buffer_c + C;
  EXPECT_OK(osp_modulate(&x, &shift, &scale, &y));
  EXPECT_OK(osp_gated_add(&x, &y, &scale));

  osp_tensor every_other = shift;
  every_other.stride[1] = 2;
  EXPECT_FAIL(osp_modulate(&x, &every_other, &scale, &y), OSP_ERR_SHAPE,
              "osp_modulate: shift: expected adjacent elements along the last dimension, found "
              "strides [48, 2]");
  osp_tensor table_3d = table;
  EXPECT_FAIL(osp_gated_add(&x, &y, &table_3d), OSP_ERR_SHAPE,
              "osp_gated_add: gate: expected shape [*, 8], found [2, 6, 8]");
  osp_tensor flat_x = f32_tensor(buffer_a, B * N, C);
  EXPECT_FAIL(osp_modulate(&flat_x, &shift, &scale, &y), OSP_ERR_SHAPE,
              "osp_modulate: x: expected shape [*, *, *], found [6, 8]");
}

/* shift, scale and gate [Bm, C] serve x [B, N, C] when Bm divides B (row b uses row b mod Bm). */
static void test_modulation_batch_broadcast(void) {
  enum { B = 4, N = 3, C = 8 };
  osp_tensor x = f32_tensor(buffer_a, B, N, C), y = f32_tensor(buffer_b, B, N, C);
  osp_tensor one_row = f32_tensor(buffer_c, 1, C), two_rows = f32_tensor(buffer_c, 2, C);
  osp_tensor three_rows = f32_tensor(buffer_d, 3, C);
  EXPECT_OK(osp_modulate(&x, &one_row, &two_rows, &y));
  EXPECT_OK(osp_gated_add(&x, &y, &two_rows));

  EXPECT_FAIL(osp_modulate(&x, &three_rows, &two_rows, &y), OSP_ERR_SHAPE,
              "osp_modulate: shift: expected a batch dividing x's batch 4, found 3");
  EXPECT_FAIL(osp_modulate(&x, &two_rows, &three_rows, &y), OSP_ERR_SHAPE,
              "osp_modulate: scale: expected a batch dividing x's batch 4, found 3");
  EXPECT_FAIL(osp_gated_add(&x, &y, &three_rows), OSP_ERR_SHAPE,
              "osp_gated_add: gate: expected a batch dividing x's batch 4, found 3");
}

/* src [2, 3, 4] is 6 rows of 4; dst takes one row per index entry. */
static void test_gather(void) {
  osp_tensor src = f32_tensor(buffer_a, 2, 3, 4), dst = f32_tensor(buffer_b, 5, 4);
  osp_tensor index = i32_tensor((const int32_t[]){5, -1, 0, 3, 2}, 1, (const int64_t[]){5});
  EXPECT_OK(osp_gather_rows(&src, &index, &dst));
  osp_tensor dst_3d = f32_tensor(buffer_b, 1, 5, 4);
  EXPECT_OK(osp_gather_rows(&src, &index, &dst_3d));

  index_buffer[3] = 6;
  mark_unwritten(buffer_b, 20);
  EXPECT_FAIL(osp_gather_rows(&src, &index, &dst), OSP_ERR_ARGUMENT,
              "osp_gather_rows: index: expected values below 6 (the rows of src), found 6 at "
              "position 3");
  CHECK(still_unwritten(buffer_b, 20));
#ifndef OSP_HAVE_CUDA /* with the backend, tests/cuda/ runs these calls */
  osp_tensor cuda_src = on_device(src, OSP_CUDA), cuda_index = on_device(index, OSP_CUDA);
  osp_tensor cuda_dst = on_device(dst, OSP_CUDA);
  EXPECT_FAIL(osp_gather_rows(&cuda_src, &cuda_index, &cuda_dst), OSP_ERR_UNSUPPORTED,
              "osp_gather_rows: this build has no CUDA backend");
#endif
  index_buffer[3] = 3;

  osp_tensor float_index = with_dtype(index, OSP_F32);
  EXPECT_FAIL(osp_gather_rows(&src, &float_index, &dst), OSP_ERR_SHAPE,
              "osp_gather_rows: index: expected dtype i32, found f32");
  osp_tensor f16_src = with_dtype(src, OSP_F16);
  EXPECT_FAIL(osp_gather_rows(&f16_src, &index, &dst), OSP_ERR_SHAPE,
              "osp_gather_rows: src: expected dtype f32 on the cpu, found f16");
  osp_tensor bf16_src = with_dtype(src, OSP_BF16), bf16_dst = with_dtype(dst, OSP_BF16);
  EXPECT_FAIL(osp_gather_rows(&bf16_src, &index, &bf16_dst), OSP_ERR_SHAPE, /* a bf16 table gives f32 rows */
              "osp_gather_rows: dst: expected dtype f32, found bf16");
  osp_tensor column_index = index;
  column_index.ndim = 2;
  column_index.shape[1] = column_index.stride[1] = 1;
  EXPECT_FAIL(osp_gather_rows(&src, &column_index, &dst), OSP_ERR_SHAPE,
              "osp_gather_rows: index: expected shape [*], found [5, 1]");
  osp_tensor narrow_dst = f32_tensor(buffer_b, 5, 3);
  EXPECT_FAIL(osp_gather_rows(&src, &index, &narrow_dst), OSP_ERR_SHAPE,
              "osp_gather_rows: dst: expected 5 rows of 4 values (one per index entry, as wide as "
              "src's), found shape [5, 3]");
  osp_tensor six_rows = f32_tensor(buffer_b, 2, 3, 4);
  EXPECT_FAIL(osp_gather_rows(&src, &index, &six_rows), OSP_ERR_SHAPE,
              "osp_gather_rows: dst: expected 5 rows of 4 values (one per index entry, as wide as "
              "src's), found shape [2, 3, 4]");
  osp_tensor dst_over_src = f32_tensor(buffer_a + 20, 5, 4);
  EXPECT_FAIL(osp_gather_rows(&src, &index, &dst_over_src), OSP_ERR_ARGUMENT,
              "osp_gather_rows: dst: expected memory apart from src, found them overlapping");
}

static void test_rope(void) {
  osp_tensor cos = f32_tensor(buffer_a, 24, 6), sin = f32_tensor(buffer_b, 24, 6);
  EXPECT_OK(osp_rope_tables(2, 3, 4, 12, &cos, &sin));
  EXPECT_FAIL(osp_rope_tables(2, 3, 4, 7, &cos, &sin), OSP_ERR_ARGUMENT,
              "osp_rope_tables: head_dim: expected a positive even number, found 7");
  EXPECT_FAIL(osp_rope_tables(2, 0, 4, 12, &cos, &sin), OSP_ERR_ARGUMENT,
              "osp_rope_tables: grid: expected positive sizes, found 2x0x4");
  EXPECT_FAIL(osp_rope_tables(2, 3, 5, 12, &cos, &sin), OSP_ERR_SHAPE,
              "osp_rope_tables: cos: expected shape [30, 6], found [24, 6]");

  osp_tensor x = f32_tensor(buffer_c, 2, 24, 1, 12);
  EXPECT_OK(osp_rope_apply(&x, &cos, &sin));
  osp_tensor three_cos = f32_tensor(buffer_a, 3, 24, 6);
  osp_tensor three_sin = f32_tensor(buffer_b, 3, 24, 6);
  EXPECT_FAIL(osp_rope_apply(&x, &three_cos, &three_sin), OSP_ERR_SHAPE,
              "osp_rope_apply: cos: expected 1 table or 2 (one per batch row of x), found 3");
  osp_tensor odd_x = f32_tensor(buffer_c, 2, 24, 1, 11);
  EXPECT_FAIL(osp_rope_apply(&odd_x, &cos, &sin), OSP_ERR_SHAPE,
              "osp_rope_apply: x: expected an even head width, found 11");
}

/* positions [4, 3]: two tokens, then two padding rows (t < 0; h, w are then free). */
static void test_rope_tables_at(void) {
  osp_tensor positions = i32_tensor((const int32_t[]){0, 0, 0, 1, 2, 3, -1, -1, -1, -1, 5, 7}, 2,
                                    (const int64_t[]){4, 3});
  osp_tensor cos = f32_tensor(buffer_a, 4, 6), sin = f32_tensor(buffer_b, 4, 6);
  EXPECT_OK(osp_rope_tables_at(&positions, 12, &cos, &sin));

  index_buffer[4] = -2; /* row 1: (1, −2, 3) */
  mark_unwritten(buffer_a, 24);
  EXPECT_FAIL(osp_rope_tables_at(&positions, 12, &cos, &sin), OSP_ERR_ARGUMENT,
              "osp_rope_tables_at: positions: expected h, w >= 0 where t >= 0, found (1, -2, 3) at "
              "row 1");
  CHECK(still_unwritten(buffer_a, 24));
  index_buffer[4] = 2;

  osp_tensor float_positions = with_dtype(positions, OSP_F32);
  EXPECT_FAIL(osp_rope_tables_at(&float_positions, 12, &cos, &sin), OSP_ERR_SHAPE,
              "osp_rope_tables_at: positions: expected dtype i32, found f32");
  osp_tensor two_columns = positions;
  two_columns.shape[1] = two_columns.stride[0] = 2;
  EXPECT_FAIL(osp_rope_tables_at(&two_columns, 12, &cos, &sin), OSP_ERR_SHAPE,
              "osp_rope_tables_at: positions: expected shape [*, 3], found [4, 2]");
  EXPECT_FAIL(osp_rope_tables_at(&positions, 7, &cos, &sin), OSP_ERR_ARGUMENT,
              "osp_rope_tables_at: head_dim: expected a positive even number, found 7");
  osp_tensor long_cos = f32_tensor(buffer_a, 5, 6);
  EXPECT_FAIL(osp_rope_tables_at(&positions, 12, &long_cos, &sin), OSP_ERR_SHAPE,
              "osp_rope_tables_at: cos: expected shape [4, 6], found [5, 6]");
  osp_tensor cuda_sin = on_device(sin, OSP_CUDA);
  EXPECT_FAIL(osp_rope_tables_at(&positions, 12, &cos, &cuda_sin), OSP_ERR_ARGUMENT,
              "osp_rope_tables_at: sin: expected a cpu tensor like positions, found cuda");
}

static void test_attention(void) {
  osp_tensor q = f32_tensor(buffer_a, 4, 5, 2, 8), out = f32_tensor(buffer_d, 4, 5, 2, 8);
  osp_tensor k = f32_tensor(buffer_b, 2, 6, 2, 8), v = f32_tensor(buffer_c, 2, 6, 2, 8);
  osp_tensor mask = osp_tensor_make(mask_buffer, OSP_U8, OSP_CPU, 2, (const int64_t[]){4, 6});
  EXPECT_OK(osp_attention(&q, &k, &v, &mask, 0.35f, &scratch, &out));

  osp_tensor three_q = f32_tensor(buffer_a, 3, 5, 2, 8);
  osp_tensor three_out = f32_tensor(buffer_d, 3, 5, 2, 8);
  EXPECT_FAIL(osp_attention(&three_q, &k, &v, NULL, 0.35f, &scratch, &three_out), OSP_ERR_SHAPE,
              "osp_attention: k: expected a batch dividing the query batch 3, found 2");
  osp_tensor float_mask = with_dtype(mask, OSP_F32);
  EXPECT_FAIL(osp_attention(&q, &k, &v, &float_mask, 0.35f, &scratch, &out), OSP_ERR_SHAPE,
              "osp_attention: key_mask: expected dtype u8, found f32");
  osp_tensor narrow_k = f32_tensor(buffer_b, 2, 6, 2, 4);
  EXPECT_FAIL(osp_attention(&q, &narrow_k, &v, NULL, 0.35f, &scratch, &out), OSP_ERR_SHAPE,
              "osp_attention: k: expected shape [*, *, 2, 8], found [2, 6, 2, 4]");
  osp_tensor short_mask = osp_tensor_make(mask_buffer, OSP_U8, OSP_CPU, 2, (const int64_t[]){4, 5});
  EXPECT_FAIL(osp_attention(&q, &k, &v, &short_mask, 0.35f, &scratch, &out), OSP_ERR_SHAPE,
              "osp_attention: key_mask: expected shape [4, 6], found [4, 5]");
  osp_tensor cq = with_dtype(on_device(q, OSP_CUDA), OSP_BF16), ck = with_dtype(on_device(k, OSP_CUDA), OSP_BF16);
  osp_tensor cv = with_dtype(on_device(v, OSP_CUDA), OSP_BF16);
  osp_tensor f32_cout = on_device(out, OSP_CUDA);
  EXPECT_FAIL(osp_attention(&cq, &ck, &cv, NULL, 0.35f, NULL, &f32_cout), OSP_ERR_SHAPE,
              "osp_attention: out: expected dtype bf16 on cuda, found f32");
#ifndef OSP_HAVE_CUDA /* with the backend, tests/cuda/ runs these calls */
  osp_tensor cscratch = on_device(scratch, OSP_CUDA), cout = with_dtype(on_device(out, OSP_CUDA), OSP_BF16);
  EXPECT_FAIL(osp_attention(&cq, &ck, &cv, NULL, 0.35f, &cscratch, &cout), OSP_ERR_UNSUPPORTED,
              "osp_attention: this build has no CUDA backend");
#endif
  EXPECT_FAIL(osp_attention(&q, &k, &v, NULL, 0.35f, &scratch, &q), OSP_ERR_ARGUMENT,
              "osp_attention: out: expected memory apart from q, found them overlapping");
  osp_tensor small_scratch = scratch;
  small_scratch.shape[0] = 16;
  char message[128];
  snprintf(message, sizeof message, "osp_attention: scratch: expected at least %zu bytes, found 16",
           osp_attention_scratch_bytes(OSP_CPU));
  EXPECT_FAIL(osp_attention(&q, &k, &v, NULL, 0.35f, &small_scratch, &out), OSP_ERR_SHAPE, message);
}

static void test_video(void) {
  const int patch[3] = {1, 2, 2};
  osp_tensor latents = f32_tensor(buffer_a, 1, 2, 3, 4, 6);
  osp_tensor patches = f32_tensor(buffer_b, 1, 18, 8);
  EXPECT_OK(osp_patchify(&latents, patch, &patches));
  EXPECT_OK(osp_unpatchify(&patches, patch, &latents));

  osp_tensor odd_latents = f32_tensor(buffer_a, 1, 2, 3, 5, 6);
  EXPECT_FAIL(osp_patchify(&odd_latents, patch, &patches), OSP_ERR_SHAPE,
              "osp_patchify: latents: expected frames x height x width in multiples of the patch "
              "1x2x2, found 3x5x6");
  osp_tensor few_patches = f32_tensor(buffer_b, 1, 17, 8);
  EXPECT_FAIL(osp_patchify(&latents, patch, &few_patches), OSP_ERR_SHAPE,
              "osp_patchify: patches: expected shape [1, 18, 8], found [1, 17, 8]");
  const int zero_patch[3] = {1, 0, 2};
  EXPECT_FAIL(osp_unpatchify(&patches, zero_patch, &latents), OSP_ERR_ARGUMENT,
              "osp_unpatchify: patch: expected positive sizes, found 1x0x2");

  osp_tensor t = f32_tensor(buffer_c, 3), embedding = f32_tensor(buffer_d, 3, 16);
  EXPECT_OK(osp_timestep_embedding(&t, &embedding));
  osp_tensor odd_embedding = f32_tensor(buffer_d, 3, 15);
  EXPECT_FAIL(osp_timestep_embedding(&t, &odd_embedding), OSP_ERR_SHAPE,
              "osp_timestep_embedding: out: expected an even width, found 15");
  osp_tensor short_embedding = f32_tensor(buffer_d, 2, 16);
  EXPECT_FAIL(osp_timestep_embedding(&t, &short_embedding), OSP_ERR_SHAPE,
              "osp_timestep_embedding: out: expected shape [3, *], found [2, 16]");
}

/* The text encoder's ops (umT5), and osp_linear with a bf16 weight on the CPU. */
static void test_text_encoder_ops(void) {
  osp_tensor x = f32_tensor(buffer_a, 2, 8), w = f32_tensor(buffer_b, 4, 8), y = f32_tensor(buffer_d, 2, 4);
  osp_tensor bf16_w = with_dtype(w, OSP_BF16), f16_w = with_dtype(w, OSP_F16);
  EXPECT_OK(osp_linear(&x, &bf16_w, NULL, &y));
  EXPECT_FAIL(osp_linear(&x, &f16_w, NULL, &y), OSP_ERR_SHAPE,
              "osp_linear: weight: expected dtype f32 on the cpu, found f16");

  osp_tensor a = f32_tensor(buffer_a, 3, 4), b = f32_tensor(buffer_b, 3, 4);
  EXPECT_OK(osp_gelu_tanh_mul(&a, &b, &a));
  osp_tensor long_b = f32_tensor(buffer_b, 3, 5);
  EXPECT_FAIL(osp_gelu_tanh_mul(&a, &long_b, &a), OSP_ERR_SHAPE,
              "osp_gelu_tanh_mul: b: expected shape [3, 4], found [3, 5]");
#ifndef OSP_HAVE_CUDA
  osp_tensor ca = on_device(a, OSP_CUDA), cb = on_device(b, OSP_CUDA);
  EXPECT_FAIL(osp_gelu_tanh_mul(&ca, &cb, &ca), OSP_ERR_UNSUPPORTED,
              "osp_gelu_tanh_mul: this build has no CUDA backend");
#endif

  osp_tensor table = f32_tensor(buffer_c, 8, 2), bias = f32_tensor(buffer_d, 2, 5, 6);
  EXPECT_OK(osp_relative_position_bias(&table, 16, &bias));
  osp_tensor odd_table = f32_tensor(buffer_c, 7, 2);
  EXPECT_FAIL(osp_relative_position_bias(&odd_table, 16, &bias), OSP_ERR_SHAPE,
              "osp_relative_position_bias: table: expected an even number of buckets, at least 4, found 7");
  EXPECT_FAIL(osp_relative_position_bias(&table, 2, &bias), OSP_ERR_ARGUMENT,
              "osp_relative_position_bias: max_distance: expected more than the 2 exact buckets, found 2");
  osp_tensor three_heads = f32_tensor(buffer_d, 3, 5, 6);
  EXPECT_FAIL(osp_relative_position_bias(&table, 16, &three_heads), OSP_ERR_SHAPE,
              "osp_relative_position_bias: bias: expected shape [2, *, *], found [3, 5, 6]");

  osp_tensor q = f32_tensor(buffer_a, 4, 5, 2, 8), out = f32_tensor(buffer_b, 4, 5, 2, 8);
  osp_tensor k = f32_tensor(buffer_c, 2, 6, 2, 8), v = f32_tensor(buffer_c + 192, 2, 6, 2, 8);
  EXPECT_OK(osp_attention_biased(&q, &k, &v, NULL, &bias, 1.0f, &scratch, &out));
  osp_tensor square_bias = f32_tensor(buffer_d, 2, 5, 5);
  EXPECT_FAIL(osp_attention_biased(&q, &k, &v, NULL, &square_bias, 1.0f, &scratch, &out), OSP_ERR_SHAPE,
              "osp_attention_biased: bias: expected shape [2, 5, 6], found [2, 5, 5]");
  osp_tensor bias_over_out = f32_tensor(buffer_b, 2, 5, 6);
  EXPECT_FAIL(osp_attention_biased(&q, &k, &v, NULL, &bias_over_out, 1.0f, &scratch, &out),
              OSP_ERR_ARGUMENT, "osp_attention_biased: out: expected memory apart from bias, found them overlapping");
}

int main(void) {
  static uint8_t scratch_bytes[1 << 24];
  const int64_t size = (int64_t)osp_attention_scratch_bytes(OSP_CPU);
  if (size > (int64_t)sizeof scratch_bytes) return fprintf(stderr, "attention scratch too large\n"), 1;
  scratch = osp_tensor_make(scratch_bytes, OSP_U8, OSP_CPU, 1, &size);
  test_linear();
  test_norms();
  test_activations();
  test_modulation();
  test_modulation_batch_broadcast();
  test_gather();
  test_rope();
  test_rope_tables_at();
  test_attention();
  test_video();
  test_text_encoder_ops();
  return test_summary("test_ops_errors");
}
