/* The umT5 text encoder on CUDA against the CPU: its three kernels (gelu_tanh_mul, T5's relative
 * position bias, attention with a bias per head) on random inputs, then a tiny random umT5 (a
 * safetensors file and config.json written here, as transformers names them) encoded on both.
 * Tolerances: f32 element-wise within 1e-6 relative; the bias exactly (its buckets are the CPU's,
 * found on the host); bf16 outputs within one bf16 step (2^-8) of the largest value; the whole
 * encoder with bf16 activations within 3% of the largest output and 2% on average: each of the ~16
 * ops a token passes through rounds its output to bf16 (2^-9 relative), which adds up to ~1%
 * (measured on an H100: 77 tokens, max 1.6%, mean 1.06%). Exits 77 (skip) where there is no GPU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/safetensors.h"
#include "gpu_test.h"
#include "model/umt5.h"

const char gpu_test_name[] = "test_cuda_text_encoder";

/* max|got − want| ≤ tol · max|want|, printed when not. */
static void check_close(const char *what, const osp_tensor *got, const osp_tensor *want, double tol) {
  const float *g = got->data, *w = want->data;
  double worst = 0, largest = 0;
  for (int64_t i = 0; i < osp_tensor_numel(want); i++) {
    const double e = fabs((double)g[i] - w[i]);
    worst = fmax(worst, isnan(e) ? INFINITY : e);
    largest = fmax(largest, fabs(w[i]));
  }
  const bool ok = worst <= tol * largest;
  if (!ok) fprintf(stderr, "%s: max error %.3g, %.3g of max |want| %.3g (tolerance %.3g)\n", what, worst,
                   worst / largest, largest, tol);
  CHECK(ok);
}

static void test_gelu_tanh_mul(osp_dtype dtype, int64_t n) {
  const int64_t shape[1] = {n};
  const bool bf16 = dtype == OSP_BF16;
  osp_tensor a = host_random(3, 1, shape, 0.0f, 2.0f, bf16), b = host_random(3, 1, shape, 0.0f, 1.0f, bf16);
  osp_tensor want = host_zeros(1, shape);
  CHECK(osp_gelu_tanh_mul(&a, &b, &want) == OSP_OK);
  osp_tensor ga = on_gpu(&a, dtype), gb = on_gpu(&b, dtype);
  char what[64];
  snprintf(what, sizeof what, "gelu_tanh_mul %s n %lld (y = a)", dtype == OSP_BF16 ? "bf16" : "f32", (long long)n);
  if (ran(osp_gelu_tanh_mul(&ga, &gb, &ga), what)) {
    osp_tensor got = to_host(&ga);
    check_close(what, &got, &want, bf16 ? 1.0 / 256 : 1e-6);
    free_host(&got);
  }
  free_gpu(&ga), free_gpu(&gb), free_host(&a), free_host(&b), free_host(&want);
}

static void test_relative_bias(int64_t buckets, int max_distance, int64_t heads, int64_t queries, int64_t keys) {
  const int64_t table_shape[2] = {buckets, heads}, bias_shape[3] = {heads, queries, keys};
  osp_tensor table = host_random(5, 2, table_shape, 0.0f, 1.0f, false), want = host_zeros(3, bias_shape);
  CHECK(osp_relative_position_bias(&table, max_distance, &want) == OSP_OK);
  osp_tensor gtable = on_gpu(&table, OSP_F32), gbias = osp_tensor_make(NULL, OSP_F32, OSP_CUDA, 3, bias_shape);
  must(osp_cuda_malloc(osp_tensor_bytes(&gbias), &gbias.data), "osp_cuda_malloc");
  char what[96];
  snprintf(what, sizeof what, "relative position bias, %lld buckets, max distance %d, %lldx%lld", (long long)buckets,
           max_distance, (long long)queries, (long long)keys);
  if (ran(osp_relative_position_bias(&gtable, max_distance, &gbias), what)) {
    osp_tensor got = to_host(&gbias);
    const bool same = memcmp(got.data, want.data, osp_tensor_bytes(&want)) == 0;
    if (!same) fprintf(stderr, "%s: differs from the CPU\n", what);
    CHECK(same);
    free_host(&got);
  }
  free_gpu(&gtable), free_gpu(&gbias), free_host(&table), free_host(&want);
}

/* q [B, Nq, H, D], k and v [B, Nk, H, D] bf16, bias [H, Nq, Nk], mask mode as gpu_test.h's key_mask
 * (0: none). */
static void test_attention_biased(int64_t B, int64_t Nq, int64_t Nk, int64_t H, int64_t D, int mask_mode) {
  const int64_t qs[4] = {B, Nq, H, D}, ks[4] = {B, Nk, H, D}, bs[3] = {H, Nq, Nk};
  osp_tensor q = host_random(9, 4, qs, 0.0f, 0.5f, true), k = host_random(9, 4, ks, 0.0f, 0.5f, true);
  osp_tensor v = host_random(9, 4, ks, 0.0f, 1.0f, true), bias = host_random(9, 3, bs, 0.0f, 1.0f, false);
  osp_tensor want = host_zeros(4, qs), mask = {0};
  uint8_t *flags = mask_mode ? key_mask(mask_mode, 9, 99, B, Nk) : NULL;
  if (flags) mask = osp_tensor_make(flags, OSP_U8, OSP_CPU, 2, (const int64_t[]){B, Nk});
  osp_tensor scratch = osp_tensor_make(NULL, OSP_U8, OSP_CPU, 1, (const int64_t[]){(int64_t)osp_attention_scratch_bytes(OSP_CPU)});
  scratch.data = xmalloc(osp_tensor_bytes(&scratch));
  CHECK(osp_attention_biased(&q, &k, &v, flags ? &mask : NULL, &bias, 1.0f, &scratch, &want) == OSP_OK);
  osp_tensor gq = on_gpu(&q, OSP_BF16), gk = on_gpu(&k, OSP_BF16), gv = on_gpu(&v, OSP_BF16);
  osp_tensor gbias = on_gpu(&bias, OSP_F32), gmask = {0}, go = osp_tensor_make(NULL, OSP_BF16, OSP_CUDA, 4, qs);
  if (flags) {
    gmask = osp_tensor_make(NULL, OSP_U8, OSP_CUDA, 2, mask.shape);
    must(osp_cuda_malloc(osp_tensor_bytes(&gmask), &gmask.data), "osp_cuda_malloc");
    must(osp_copy(&mask, &gmask), "upload");
  }
  must(osp_cuda_malloc(osp_tensor_bytes(&go), &go.data), "osp_cuda_malloc");
  char what[96];
  snprintf(what, sizeof what, "attention biased B %lld, Nq %lld, Nk %lld, %lld heads x %lld, mask %d", (long long)B,
           (long long)Nq, (long long)Nk, (long long)H, (long long)D, mask_mode);
  if (ran(osp_attention_biased(&gq, &gk, &gv, flags ? &gmask : NULL, &gbias, 1.0f, NULL, &go), what)) {
    osp_tensor got = to_host(&go);
    check_close(what, &got, &want, 1.0 / 256);
    free_host(&got);
  }
  if (flags) free_gpu(&gmask);
  free(flags), free(scratch.data);
  free_gpu(&gq), free_gpu(&gk), free_gpu(&gv), free_gpu(&gbias), free_gpu(&go);
  free_host(&q), free_host(&k), free_host(&v), free_host(&bias), free_host(&want);
}

/* ---- A tiny random umT5 on both devices ----------------------------------------------------- */

enum { D_MODEL = 64, D_KV = 32, HEADS = 4, D_FF = 96, LAYERS = 2, VOCAB = 100, BUCKETS = 32 };

typedef struct {
  char names[2 + 10 * LAYERS][96];
  osp_st_write_entry entries[2 + 10 * LAYERS];
  int64_t shapes[2 + 10 * LAYERS][2];
  float *data[2 + 10 * LAYERS];
  int count;
} tiny_weights;

/* One tensor N(mean, std²), rounded to bf16 (the GPU's weights are bf16). */
static void add_tensor(tiny_weights *t, const char *name, int64_t rows, int64_t columns, float mean, float std) {
  const int i = t->count++;
  snprintf(t->names[i], sizeof t->names[i], "%s", name);
  t->shapes[i][0] = rows, t->shapes[i][1] = columns;
  const size_t n = (size_t)(rows * (columns ? columns : 1));
  t->data[i] = xmalloc(n * sizeof(float));
  random_fill(t->data[i], n, 21, (uint32_t)i, mean, std, true);
  t->entries[i] = (osp_st_write_entry){t->names[i], OSP_ST_F32, columns ? 2 : 1, t->shapes[i], t->data[i]};
}

static void add_layer(tiny_weights *t, int l) {
  const int64_t inner = HEADS * D_KV;
  const float wd = 1.0f / sqrtf(D_MODEL), wi = 1.0f / sqrtf((float)inner), wf = 1.0f / sqrtf(D_FF);
  char name[96];
  const struct {
    const char *suffix;
    int64_t rows, columns;
    float mean, std;
  } parts[10] = {
      {"0.layer_norm.weight", D_MODEL, 0, 1.0f, 0.1f}, {"0.SelfAttention.q.weight", inner, D_MODEL, 0, wd},
      {"0.SelfAttention.k.weight", inner, D_MODEL, 0, wd}, {"0.SelfAttention.v.weight", inner, D_MODEL, 0, wd},
      {"0.SelfAttention.o.weight", D_MODEL, inner, 0, wi},
      {"0.SelfAttention.relative_attention_bias.weight", BUCKETS, HEADS, 0, 1.0f},
      {"1.layer_norm.weight", D_MODEL, 0, 1.0f, 0.1f}, {"1.DenseReluDense.wi_0.weight", D_FF, D_MODEL, 0, wd},
      {"1.DenseReluDense.wi_1.weight", D_FF, D_MODEL, 0, wd}, {"1.DenseReluDense.wo.weight", D_MODEL, D_FF, 0, wf},
  };
  for (int p = 0; p < 10; p++) {
    snprintf(name, sizeof name, "encoder.block.%d.layer.%s", l, parts[p].suffix);
    add_tensor(t, name, parts[p].rows, parts[p].columns, parts[p].mean, parts[p].std);
  }
}

/* The tiny model's folder: config.json and model.safetensors. */
static void write_tiny_umt5(const char *dir) {
  tiny_weights t = {0};
  add_tensor(&t, "shared.weight", VOCAB, D_MODEL, 0, 1.0f);
  for (int l = 0; l < LAYERS; l++) add_layer(&t, l);
  add_tensor(&t, "encoder.final_layer_norm.weight", D_MODEL, 0, 1.0f, 0.1f);
  char path[512];
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  must(osp_st_write(path, t.entries, t.count), "write the tiny umT5");
  snprintf(path, sizeof path, "%s/config.json", dir);
  FILE *f = fopen(path, "w");
  if (!f) must(OSP_ERR_IO, "write the tiny umT5's config.json");
  fprintf(f, "{\"d_model\": %d, \"d_kv\": %d, \"d_ff\": %d, \"num_layers\": %d, \"num_heads\": %d, "
             "\"vocab_size\": %d, \"relative_attention_num_buckets\": %d, \"relative_attention_max_distance\": 128, "
             "\"feed_forward_proj\": \"gated-gelu\", \"layer_norm_epsilon\": 1e-6}\n",
          D_MODEL, D_KV, D_FF, LAYERS, HEADS, VOCAB, BUCKETS);
  fclose(f);
  for (int i = 0; i < t.count; i++) free(t.data[i]);
}

static void test_tiny_umt5(int64_t count) {
  char dir[] = "/tmp/osp_umt5_XXXXXX";
  if (!mkdtemp(dir)) must(OSP_ERR_IO, "a temporary folder");
  write_tiny_umt5(dir);
  osp_umt5 cpu, gpu;
  must(osp_umt5_load(dir, &cpu), "load the tiny umT5");
  const osp_status moved = osp_umt5_to_device(&cpu, OSP_CUDA, &gpu);
  char what[64];
  snprintf(what, sizeof what, "tiny umT5, %lld tokens, to the GPU", (long long)count);
  if (ran(moved, what)) {
    int32_t *ids = xmalloc((size_t)count * sizeof *ids);
    for (int64_t i = 0; i < count; i++) ids[i] = (int32_t)((i * 37 + 11) % VOCAB);
    const int64_t shape[3] = {1, count + 3, D_MODEL};
    osp_tensor want = host_zeros(3, shape), got = host_zeros(3, shape);
    CHECK(osp_umt5_encode(&cpu, ids, count, &want) == OSP_OK);
    snprintf(what, sizeof what, "tiny umT5, %lld tokens, encoded on the GPU", (long long)count);
    if (ran(osp_umt5_encode(&gpu, ids, count, &got), what)) {
      double max_diff = 0, max_ref = 0, sum_diff = 0, sum_ref = 0;
      const float *g = got.data, *w = want.data;
      for (int64_t i = 0; i < osp_tensor_numel(&want); i++) {
        const double d = fabs((double)g[i] - w[i]);
        max_diff = fmax(max_diff, isnan(d) ? INFINITY : d), max_ref = fmax(max_ref, fabs(w[i]));
        sum_diff += d, sum_ref += fabs(w[i]);
      }
      printf("%-44s vs CPU: max %.2e, mean %.2e (relative)\n", what, max_diff / max_ref, sum_diff / sum_ref);
      CHECK(max_diff <= 3e-2 * max_ref);
      CHECK(sum_diff <= 2e-2 * sum_ref);
      const float *padding = g + count * D_MODEL;
      bool zeros = true;
      for (int64_t i = 0; i < 3 * D_MODEL; i++) zeros = zeros && padding[i] == 0.0f;
      CHECK(zeros);
    }
    free(ids), free_host(&want), free_host(&got);
    osp_umt5_free(&gpu);
  }
  osp_umt5_free(&cpu);
  char path[600];
  snprintf(path, sizeof path, "%s/model.safetensors", dir), unlink(path);
  snprintf(path, sizeof path, "%s/config.json", dir), unlink(path);
  rmdir(dir);
}

int main(void) {
  osp_arena probe;
  if (osp_device_arena(&probe, "probe", OSP_CUDA, 64) != OSP_OK) {
    printf("test_cuda_text_encoder: skipped, no GPU: %s\n", osp_last_error());
    return 77;
  }
  osp_arena_free(&probe);
  test_gelu_tanh_mul(OSP_F32, 1000);
  test_gelu_tanh_mul(OSP_BF16, 4099);
  test_relative_bias(32, 128, 4, 7, 7);
  test_relative_bias(32, 128, 64, 512, 512);
  test_relative_bias(8, 20, 3, 40, 33);
  test_attention_biased(1, 7, 7, 4, 64, 0);
  test_attention_biased(1, 512, 512, 64, 64, 0);
  test_attention_biased(2, 77, 77, 3, 32, 2);
  test_attention_biased(2, 37, 301, 8, 64, 1);
  test_attention_biased(2, 5, 130, 2, 48, 1); /* the plain kernel: no flash kernel for 48 */
  test_tiny_umt5(1);
  test_tiny_umt5(77);
  return test_summary("test_cuda_text_encoder");
}
