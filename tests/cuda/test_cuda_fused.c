/* The fused ops (ops.h: osp_layernorm_modulate, osp_gated_add_layernorm, osp_rmsnorm_rope,
 * osp_linear_gelu_tanh, osp_gated_add_gather) on CUDA in bf16 against the same ops on the CPU in
 * f32, which run the unfused composition. Inputs are rounded to bf16 first, so both sides see the
 * same numbers; an output passes within 1/256 of its largest magnitude (bf16 keeps 8 significant
 * bits; twice that where the unfused fallback rounds twice), except where a case says otherwise.
 * Each op runs on rows that take the fused kernel (width a multiple of 8) and on rows that take the
 * unfused fallback (width 28, or 32776; head width 12).
 * Exits 77 (skip) where there is no GPU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "cuda/cuda.h"
#include "gpu_test.h"
#include "ops/ops.h"

const char gpu_test_name[] = "test_cuda_fused";

static const double BF16_TOLERANCE = 1.0 / 256;
static const float EPS = 1e-6f;
static const uint64_t SEED = 99; /* of the inputs' Philox streams */

/* The GPU's result against the CPU's: max|gpu − cpu| ≤ tolerance · max|cpu|. */
static void check_close(const char *what, const osp_tensor *gpu, const osp_tensor *cpu, double tolerance) {
  osp_tensor got = to_host(gpu);
  const float *g = got.data, *w = cpu->data;
  double worst = 0.0, largest = 0.0;
  for (int64_t i = 0; i < osp_tensor_numel(cpu); i++) {
    const double error = isnan(g[i]) ? INFINITY : fabs((double)g[i] - w[i]);
    worst = fmax(worst, error);
    largest = fmax(largest, fabs((double)w[i]));
  }
  const bool ok = worst <= tolerance * largest;
  printf("%-64s error %.2e of max %.2e  %s\n", what, worst, largest, ok ? "ok" : "FAILED");
  CHECK(ok);
  free_host(&got);
}

/* One bf16 rounding of the output where the fused kernel runs (rows of whole chunks of 8, up to
 * 32768 wide); two where the unfused fallback stores the norm's output and then modulates it. */
static double tolerance_for(int64_t C) {
  return C % 8 == 0 && C <= 32768 ? BF16_TOLERANCE : 2 * BF16_TOLERANCE;
}

/* ---- LayerNorm + modulation, and the residual step before a norm ---------------------------- */

typedef struct {
  int64_t B, N, C, Bm;
  float mean;      /* of x: a large one tests the centring */
  bool gate, affine, modulate;
} norm_case;

static void run_layernorm_modulate(norm_case c) {
  char what[160];
  snprintf(what, sizeof what, "layernorm_modulate B %lld N %lld C %lld Bm %lld mean %g", (long long)c.B,
           (long long)c.N, (long long)c.C, (long long)c.Bm, (double)c.mean);
  osp_tensor x = host_random(SEED, 3, (int64_t[]){c.B, c.N, c.C}, c.mean, 1.0f, true);
  osp_tensor table = host_random(SEED, 3, (int64_t[]){c.Bm, 6, c.C}, 0.0f, 0.5f, true);
  osp_tensor y = host_random(SEED, 3, x.shape, 0.0f, 1.0f, true);
  osp_tensor gx = on_gpu(&x, OSP_BF16), gtable = on_gpu(&table, OSP_F32), gy = on_gpu(&y, OSP_BF16);
  const osp_tensor shift = table_row(&table, 0), scale = table_row(&table, 1);
  const osp_tensor gshift = table_row(&gtable, 0), gscale = table_row(&gtable, 1);
  must(osp_layernorm_modulate(&x, &shift, &scale, EPS, &y), "cpu layernorm_modulate");
  ran(osp_layernorm_modulate(&gx, &gshift, &gscale, EPS, &gy), what);
  check_close(what, &gy, &y, tolerance_for(c.C));
  free_host(&x), free_host(&table), free_host(&y), free_gpu(&gx), free_gpu(&gtable), free_gpu(&gy);
}

static void run_gated_add_layernorm(norm_case c) {
  char what[160];
  snprintf(what, sizeof what, "gated_add_layernorm C %lld Bm %lld%s%s%s", (long long)c.C, (long long)c.Bm,
           c.gate ? " gate" : "", c.affine ? " affine" : "", c.modulate ? " modulate" : "");
  const int64_t shape[3] = {c.B, c.N, c.C};
  osp_tensor x = host_random(SEED, 3, shape, c.mean, 1.0f, true);
  osp_tensor add = host_random(SEED, 3, shape, 0.0f, 2.0f, true);
  osp_tensor table = host_random(SEED, 3, (int64_t[]){c.Bm, 6, c.C}, 0.0f, 0.5f, true);
  osp_tensor weight = host_random(SEED, 1, &c.C, 1.0f, 0.2f, true);
  osp_tensor bias = host_random(SEED, 1, &c.C, 0.0f, 0.2f, true);
  osp_tensor normed = host_random(SEED, 3, shape, 0.0f, 1.0f, true);
  osp_tensor gx = on_gpu(&x, OSP_BF16), gadd = on_gpu(&add, OSP_BF16), gtable = on_gpu(&table, OSP_F32);
  osp_tensor gweight = on_gpu(&weight, OSP_BF16), gbias = on_gpu(&bias, OSP_BF16), gnormed = on_gpu(&normed, OSP_BF16);
  const osp_tensor gate = table_row(&table, 2), shift = table_row(&table, 3), scale = table_row(&table, 4);
  const osp_tensor ggate = table_row(&gtable, 2), gshift = table_row(&gtable, 3), gscale = table_row(&gtable, 4);
  must(osp_gated_add_layernorm(&x, &add, c.gate ? &gate : NULL, c.affine ? &weight : NULL,
                               c.affine ? &bias : NULL, c.modulate ? &shift : NULL,
                               c.modulate ? &scale : NULL, EPS, &normed),
       "cpu gated_add_layernorm");
  ran(osp_gated_add_layernorm(&gx, &gadd, c.gate ? &ggate : NULL, c.affine ? &gweight : NULL,
                              c.affine ? &gbias : NULL, c.modulate ? &gshift : NULL,
                              c.modulate ? &gscale : NULL, EPS, &gnormed),
      what);
  char part[200];
  snprintf(part, sizeof part, "%s: x", what);
  check_close(part, &gx, &x, BF16_TOLERANCE);
  /* normed is the norm of x as the GPU stores it (bf16): the reference starts from that x */
  osp_tensor stored_x = to_host(&gx);
  must(osp_layernorm(&stored_x, c.affine ? &weight : NULL, c.affine ? &bias : NULL, EPS, &normed), "cpu layernorm");
  if (c.modulate) must(osp_modulate(&normed, &shift, &scale, &normed), "cpu modulate");
  snprintf(part, sizeof part, "%s: normed", what);
  check_close(part, &gnormed, &normed, tolerance_for(c.C));
  free_host(&stored_x);
  osp_tensor *all[] = {&x, &add, &table, &weight, &bias, &normed};
  osp_tensor *gall[] = {&gx, &gadd, &gtable, &gweight, &gbias, &gnormed};
  for (int i = 0; i < 6; i++) free_host(all[i]), free_gpu(gall[i]);
}

static void test_norms(void) {
  const int64_t widths[] = {5120, 1536, 28}; /* 28: not whole chunks of 8, the unfused path */
  for (int w = 0; w < 3; w++) {
    for (int64_t Bm = 1; Bm <= 2; Bm++) {
      run_layernorm_modulate((norm_case){.B = 4, .N = 37, .C = widths[w], .Bm = Bm});
      for (int k = 0; k < 4; k++)
        run_gated_add_layernorm((norm_case){.B = 4, .N = 37, .C = widths[w], .Bm = Bm, .gate = k & 1,
                                            .affine = k == 1 || k == 2, .modulate = k >= 2});
    }
  }
  run_layernorm_modulate((norm_case){.B = 1, .N = 64, .C = 5120, .Bm = 1, .mean = 300.0f});
  run_layernorm_modulate((norm_case){.B = 1, .N = 3, .C = 32768 + 8, .Bm = 1}); /* too wide: unfused */
}

/* ---- RMSNorm + RoPE ----------------------------------------------------------------------- */

static void run_rmsnorm_rope(int64_t B, int64_t N, int64_t heads, int64_t D, bool per_row_tables) {
  char what[160];
  snprintf(what, sizeof what, "rmsnorm_rope B %lld N %lld heads %lld D %lld %s tables", (long long)B,
           (long long)N, (long long)heads, (long long)D, per_row_tables ? "per-row" : "shared");
  osp_tensor x = host_random(SEED, 4, (int64_t[]){B, N, heads, D}, 0.0f, 3.0f, true);
  const int64_t C = heads * D;
  osp_tensor weight = host_random(SEED, 1, &C, 1.0f, 0.3f, true);
  const int64_t table_shape[3] = {B, N, D / 2};
  osp_tensor angles = host_random(SEED, per_row_tables ? 3 : 2, per_row_tables ? table_shape : table_shape + 1,
                                  0.0f, 2.0f, true);
  osp_tensor cos = host_random(SEED, angles.ndim, angles.shape, 0.0f, 1.0f, true);
  osp_tensor sin = host_random(SEED, angles.ndim, angles.shape, 0.0f, 1.0f, true);
  for (int64_t i = 0; i < osp_tensor_numel(&angles); i++) {
    ((float *)cos.data)[i] = cosf(((float *)angles.data)[i]);
    ((float *)sin.data)[i] = sinf(((float *)angles.data)[i]);
  }
  osp_tensor gx = on_gpu(&x, OSP_BF16), gweight = on_gpu(&weight, OSP_BF16);
  osp_tensor gcos = on_gpu(&cos, OSP_F32), gsin = on_gpu(&sin, OSP_F32);
  must(osp_rmsnorm_rope(&x, &weight, EPS, &cos, &sin), "cpu rmsnorm_rope");
  ran(osp_rmsnorm_rope(&gx, &gweight, EPS, &gcos, &gsin), what);
  check_close(what, &gx, &x, tolerance_for(D)); /* D % 8: four pairs per chunk */
  osp_tensor *all[] = {&x, &weight, &cos, &sin};
  osp_tensor *gall[] = {&gx, &gweight, &gcos, &gsin};
  for (int i = 0; i < 4; i++) free_host(all[i]), free_gpu(gall[i]);
  free_host(&angles);
}

static void test_rmsnorm_rope(void) {
  const int64_t head_dims[] = {128, 64, 12}; /* 12: four pairs per chunk do not fit, unfused */
  for (int d = 0; d < 3; d++) {
    run_rmsnorm_rope(4, 33, 3, head_dims[d], false);
    run_rmsnorm_rope(4, 33, 3, head_dims[d], true);
  }
  run_rmsnorm_rope(1, 50, 40, 128, true); /* Wan-14B's heads */
}

/* ---- Linear + GELU ------------------------------------------------------------------------ */

static void run_linear_gelu(int64_t M, int64_t K, int64_t N, osp_dtype y_dtype) {
  char what[160];
  snprintf(what, sizeof what, "linear_gelu_tanh %lldx%lld -> %lld, y %s", (long long)M, (long long)K,
           (long long)N, osp_dtype_name(y_dtype));
  osp_tensor x = host_random(SEED, 2, (int64_t[]){M, K}, 0.0f, 1.0f, true);
  osp_tensor w = host_random(SEED, 2, (int64_t[]){N, K}, 0.0f, 1.0f / sqrtf((float)K), true);
  osp_tensor bias = host_random(SEED, 1, &N, 0.0f, 0.5f, true);
  osp_tensor y = host_random(SEED, 2, (int64_t[]){M, N}, 0.0f, 1.0f, true);
  osp_tensor gx = on_gpu(&x, OSP_BF16), gw = on_gpu(&w, OSP_BF16), gbias = on_gpu(&bias, OSP_BF16);
  osp_tensor gy = on_gpu(&y, y_dtype);
  must(osp_linear_gelu_tanh(&x, &w, &bias, &y), "cpu linear_gelu_tanh");
  ran(osp_linear_gelu_tanh(&gx, &gw, &gbias, &gy), what);
  check_close(what, &gy, &y, y_dtype == OSP_F32 ? 1e-5 : BF16_TOLERANCE);
  osp_tensor *all[] = {&x, &w, &bias, &y};
  osp_tensor *gall[] = {&gx, &gw, &gbias, &gy};
  for (int i = 0; i < 4; i++) free_host(all[i]), free_gpu(gall[i]);
}

/* Which GELU the matmul's epilogue computes: pre-activations from −6 to 6 (x one-hot, one weight
 * per output), each output compared on its own within 2⁻⁷ of its value. The tanh form and the erf
 * form differ by 10% at −3, so an epilogue with the wrong one fails here, where a comparison
 * against the largest value would not see it. */
static void test_gelu_epilogue_form(void) {
  const int64_t M = 8, K = 16, N = 192;
  osp_tensor x = host_random(SEED, 2, (int64_t[]){M, K}, 0.0f, 1.0f, true);
  osp_tensor w = host_random(SEED, 2, (int64_t[]){N, K}, 0.0f, 1.0f, true);
  osp_tensor bias = host_random(SEED, 1, &N, 0.0f, 1.0f, true);
  osp_tensor y = host_random(SEED, 2, (int64_t[]){M, N}, 0.0f, 1.0f, true);
  memset(x.data, 0, osp_tensor_bytes(&x));
  memset(w.data, 0, osp_tensor_bytes(&w));
  memset(bias.data, 0, osp_tensor_bytes(&bias));
  for (int64_t m = 0; m < M; m++) ((float *)x.data)[m * K] = 1.0f;
  for (int64_t n = 0; n < N; n++)
    ((float *)w.data)[n * K] = osp_bf16_to_f32(osp_f32_to_bf16(-6.0f + 12.0f * (float)n / (float)(N - 1)));
  osp_tensor gx = on_gpu(&x, OSP_BF16), gw = on_gpu(&w, OSP_BF16), gbias = on_gpu(&bias, OSP_BF16);
  osp_tensor gy = on_gpu(&y, OSP_BF16);
  must(osp_linear_gelu_tanh(&x, &w, &bias, &y), "cpu linear_gelu_tanh");
  ran(osp_linear_gelu_tanh(&gx, &gw, &gbias, &gy), "linear_gelu_tanh epilogue");
  osp_tensor got = to_host(&gy);
  int wrong = 0;
  for (int64_t i = 0; i < M * N; i++) {
    const float g = ((float *)got.data)[i], want = ((float *)y.data)[i];
    if (fabsf(g - want) > ldexpf(fabsf(want), -7) + 1e-6f && wrong++ == 0)
      fprintf(stderr, "gelu epilogue: output %lld is %.6g, the tanh form gives %.6g\n", (long long)i,
              (double)g, (double)want);
  }
  printf("%-64s %d of %lld outputs off  %s\n", "linear_gelu_tanh epilogue is the tanh form", wrong,
         (long long)(M * N), wrong ? "FAILED" : "ok");
  CHECK(wrong == 0);
  osp_tensor *all[] = {&x, &w, &bias, &y, &got};
  for (int i = 0; i < 5; i++) free_host(all[i]);
  free_gpu(&gx), free_gpu(&gw), free_gpu(&gbias), free_gpu(&gy);
}

/* ---- Residual add into another layout ----------------------------------------------------- */

static void run_gated_add_gather(int64_t C, bool gate) {
  char what[160];
  snprintf(what, sizeof what, "gated_add_gather C %lld%s", (long long)C, gate ? " gate" : "");
  const int64_t B = 4, N = 45, rows = 200, Bm = 2;
  const int64_t shape[3] = {B, N, C};
  osp_tensor x = host_random(SEED, 3, shape, 0.0f, 1.0f, true);
  osp_tensor add = host_random(SEED, 3, shape, 0.0f, 1.0f, true);
  osp_tensor table = host_random(SEED, 3, (int64_t[]){Bm, 6, C}, 0.0f, 0.5f, true);
  osp_tensor dst = host_random(SEED, 2, (int64_t[]){rows, C}, 0.0f, 1.0f, true);
  const int64_t index_shape[1] = {rows};
  osp_tensor index = osp_tensor_make(malloc(rows * sizeof(int32_t)), OSP_I32, OSP_CPU, 1, index_shape);
  for (int64_t i = 0; i < rows; i++) /* a stride through the source, every seventh row padding */
    ((int32_t *)index.data)[i] = i % 7 == 3 ? -1 : (int32_t)((i * 37) % (B * N));
  osp_tensor gx = on_gpu(&x, OSP_BF16), gadd = on_gpu(&add, OSP_BF16), gtable = on_gpu(&table, OSP_F32);
  osp_tensor gdst = on_gpu(&dst, OSP_BF16), gindex = on_gpu(&index, OSP_I32);
  const osp_tensor g = table_row(&table, 5), gg = table_row(&gtable, 5);
  must(osp_gated_add_gather(&x, &add, gate ? &g : NULL, &index, &dst), "cpu gated_add_gather");
  ran(osp_gated_add_gather(&gx, &gadd, gate ? &gg : NULL, &gindex, &gdst), what);
  check_close(what, &gdst, &dst, BF16_TOLERANCE);
  char part[200];
  snprintf(part, sizeof part, "%s: x left as it was", what);
  check_close(part, &gx, &x, 0.0);
  osp_tensor *all[] = {&x, &add, &table, &dst, &index};
  osp_tensor *gall[] = {&gx, &gadd, &gtable, &gdst, &gindex};
  for (int i = 0; i < 5; i++) free_host(all[i]), free_gpu(gall[i]);
}

static void test_gated_add_gather(void) {
  const int64_t widths[] = {5120, 40, 21};
  for (int w = 0; w < 3; w++) {
    run_gated_add_gather(widths[w], true);
    run_gated_add_gather(widths[w], false);
  }
}

int main(void) {
  if (osp_cuda_init() != OSP_OK) {
    fprintf(stderr, "test_cuda_fused: no GPU (%s): skipped\n", osp_last_error());
    return 77;
  }
  test_norms();
  test_rmsnorm_rope();
  run_linear_gelu(77, 256, 320, OSP_BF16);
  run_linear_gelu(75, 1536, 8960, OSP_BF16);
  run_linear_gelu(33, 64, 40, OSP_F32);
  test_gelu_epilogue_form();
  test_gated_add_gather();
  return test_summary("test_cuda_fused");
}
