/* osp_cuda_attention against (a) the CPU backend's osp_cpu_attention and (b) a float64
 * reference written here, both on the same bf16-rounded inputs, on small shapes: head_dim 32, 64
 * and 128, 1-3 heads, Nq and Nk in {1, 7, 64, 129, 300} (none a multiple of the kernels' tiles but
 * 64), a key/value batch smaller than the query batch, key masks with some batch rows entirely
 * masked (their outputs must be exactly 0), more key tiles than the kernels' pipeline stages, and
 * negative and zero scales. Each case runs on the default path (the wgmma kernel for head_dim 128 on
 * an sm_90a GPU) and again with OSP_FLASH_PATH=fa2 (the mma.sync kernel).
 *
 * Tolerance. The kernel rounds each softmax weight p to bf16 before P·V (relative error ≤ 2^-8
 * each, so at most 2^-8·max|v| on an output) and rounds each output to bf16 (≤ 2^-8·|out| ≤
 * 2^-8·max|v|); f32 accumulation and ex2.approx add orders of magnitude less. So, for every case:
 *   max |out − ref| ≤ 2^-7 · max|v| + 1e-6   (a bound that holds for any input), and
 *   ‖out − ref‖₂ / ‖ref‖₂ ≤ 5e-3              (bf16 output rounding alone gives ~2e-3),
 * with ref the float64 reference and, separately, the CPU backend's f32 result.
 *
 * Exits 77 (skip) when osp_cuda_init finds no usable GPU. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/rng.h"
#include "core/status.h"
#include "cpu/cpu.h"
#include "cuda/cuda.h"
#include "gpu_test.h"

const char gpu_test_name[] = "test_cuda_attention";

typedef struct {
  int64_t batch, kv_batch, queries, keys, heads, head_dim;
  int mask_mode; /* 0 none; 1 ~30% of keys masked at random, batch row 0 all masked; 2 a tail of
                  * keys masked, its length depending on the batch row, the last row all masked */
  float scale;
} attention_case;

/* One query row in float64: q [D]; key j's row of k and v at k + j·stride; mask row or NULL. */
static void reference_row(const float *q, const float *k, const float *v, int64_t stride,
                          const uint8_t *mask, int64_t keys, int64_t D, double scale,
                          double *scores, double *out) {
  double best = -INFINITY;
  for (int64_t j = 0; j < keys; j++) {
    if (mask && !mask[j]) {
      scores[j] = -INFINITY;
      continue;
    }
    double dot = 0.0;
    for (int64_t d = 0; d < D; d++) dot += (double)q[d] * k[j * stride + d];
    scores[j] = dot * scale;
    if (scores[j] > best) best = scores[j];
  }
  for (int64_t d = 0; d < D; d++) out[d] = 0.0;
  if (best == -INFINITY) return; /* every key masked: 0 */
  double sum = 0.0;
  for (int64_t j = 0; j < keys; j++) {
    if (scores[j] == -INFINITY) continue;
    const double p = exp(scores[j] - best);
    sum += p;
    for (int64_t d = 0; d < D; d++) out[d] += p * v[j * stride + d];
  }
  for (int64_t d = 0; d < D; d++) out[d] /= sum;
}

/* n standard normals rounded to bf16: the bf16 bits and their exact f32 values. */
static void random_bf16(uint64_t seed, uint32_t stream, size_t n, uint16_t *bits, float *values) {
  osp_randn(seed, stream, 0, values, n);
  for (size_t i = 0; i < n; i++) {
    bits[i] = osp_f32_to_bf16(values[i]);
    values[i] = osp_bf16_to_f32(bits[i]);
  }
}

typedef struct {
  double max_error, sq_error, sq_ref;
  int nonfinite;
} error_stats;

static void add_error(error_stats *stats, double got, double want) {
  if (!isfinite(got)) stats->nonfinite++;
  const double e = fabs(got - want);
  if (e > stats->max_error) stats->max_error = e;
  stats->sq_error += e * e;
  stats->sq_ref += want * want;
}

static double relative_l2(const error_stats *stats) {
  return stats->sq_ref > 0.0 ? sqrt(stats->sq_error / stats->sq_ref) : sqrt(stats->sq_error);
}

static void run_case(const attention_case *c, uint64_t seed, const char *path) {
  const int64_t B = c->batch, Bk = c->kv_batch, Nq = c->queries, Nk = c->keys, H = c->heads;
  const int64_t D = c->head_dim, row = H * D;
  const size_t nq = (size_t)(B * Nq * row), nkv = (size_t)(Bk * Nk * row);
  uint16_t *q_bits = malloc(nq * 2), *k_bits = malloc(nkv * 2), *v_bits = malloc(nkv * 2);
  uint16_t *out_bits = malloc(nq * 2);
  float *q = malloc(nq * 4), *k = malloc(nkv * 4), *v = malloc(nkv * 4), *cpu_out = malloc(nq * 4);
  uint8_t *mask = c->mask_mode ? key_mask(c->mask_mode, seed, 3, B, Nk) : NULL;
  double *scores = malloc((size_t)Nk * sizeof(double)), *ref = malloc((size_t)D * sizeof(double));
  float *scratch = malloc(osp_cpu_attention_scratch_bytes());
  random_bf16(seed, 0, nq, q_bits, q);
  random_bf16(seed, 1, nkv, k_bits, k);
  random_bf16(seed, 2, nkv, v_bits, v);
  for (size_t i = 0; i < nq; i++) out_bits[i] = 0xFFFF; /* NaN: every output must be written */

  void *dq = NULL, *dk = NULL, *dv = NULL, *dout = NULL, *dmask = NULL;
  osp_status st = osp_cuda_malloc(nq * 2, &dq);
  if (st == OSP_OK) st = osp_cuda_malloc(nkv * 2, &dk);
  if (st == OSP_OK) st = osp_cuda_malloc(nkv * 2, &dv);
  if (st == OSP_OK) st = osp_cuda_malloc(nq * 2, &dout);
  if (st == OSP_OK && mask) st = osp_cuda_malloc((size_t)(B * Nk), &dmask);
  if (st == OSP_OK) st = osp_cuda_copy_to_device(dq, q_bits, nq * 2);
  if (st == OSP_OK) st = osp_cuda_copy_to_device(dk, k_bits, nkv * 2);
  if (st == OSP_OK) st = osp_cuda_copy_to_device(dv, v_bits, nkv * 2);
  if (st == OSP_OK) st = osp_cuda_copy_to_device(dout, out_bits, nq * 2);
  if (st == OSP_OK && mask) st = osp_cuda_copy_to_device(dmask, mask, (size_t)(B * Nk));
  const osp_cuda_attention_shape shape = {B, Bk, Nq, Nk, H, D};
  if (st == OSP_OK) st = osp_cuda_attention(dq, dk, dv, dmask, c->scale, dout, NULL, shape);
  if (st == OSP_OK) st = osp_cuda_synchronize();
  if (st == OSP_OK) st = osp_cuda_copy_to_host(out_bits, dout, nq * 2);
  void *device[] = {dq, dk, dv, dout, dmask};
  for (size_t i = 0; i < sizeof device / sizeof device[0]; i++)
    if (device[i]) osp_cuda_free(device[i]);

  char name[160];
  snprintf(name, sizeof name, "[%s] B=%lld Bk=%lld Nq=%lld Nk=%lld heads=%lld D=%lld mask=%d scale=%g",
           path, (long long)B, (long long)Bk, (long long)Nq, (long long)Nk, (long long)H, (long long)D,
           c->mask_mode, c->scale);
  if (st != OSP_OK) {
    fprintf(stderr, "%s: %s: %s\n", name, osp_status_name(st), osp_last_error());
    CHECK(st == OSP_OK);
  } else {
    const osp_cpu_attention_shape cpu_shape = {B, Bk, Nq, Nk, H, D};
    osp_cpu_attention(q, k, v, mask, c->scale, cpu_out, NULL, cpu_shape, scratch);
    double v_max = 0.0;
    for (size_t i = 0; i < nkv; i++) v_max = fmax(v_max, fabs(v[i]));
    const double bound = v_max / 128.0 + 1e-6;
    error_stats vs_f64 = {0}, vs_cpu = {0};
    int masked_rows_nonzero = 0;
    for (int64_t b = 0; b < B; b++)
      for (int64_t h = 0; h < H; h++) {
        const int64_t kv_base = (b % Bk) * Nk * row + h * D;
        const uint8_t *mask_row = mask ? mask + b * Nk : NULL;
        int all_masked = mask_row != NULL;
        for (int64_t j = 0; mask_row && j < Nk; j++) all_masked = all_masked && !mask_row[j];
        for (int64_t n = 0; n < Nq; n++) {
          const int64_t at = (b * Nq + n) * row + h * D;
          reference_row(q + at, k + kv_base, v + kv_base, row, mask_row, Nk, D, c->scale, scores, ref);
          for (int64_t d = 0; d < D; d++) {
            const float got = osp_bf16_to_f32(out_bits[at + d]);
            add_error(&vs_f64, got, ref[d]);
            add_error(&vs_cpu, got, cpu_out[at + d]);
            if (all_masked && got != 0.0f) masked_rows_nonzero++;
          }
        }
      }
    const int ok_f64 = vs_f64.nonfinite == 0 && vs_f64.max_error <= bound && relative_l2(&vs_f64) <= 5e-3;
    const int ok_cpu = vs_cpu.nonfinite == 0 && vs_cpu.max_error <= bound && relative_l2(&vs_cpu) <= 5e-3;
    if (!ok_f64 || !ok_cpu || masked_rows_nonzero)
      fprintf(stderr,
              "%s: vs float64 max %.3g rel %.3g, vs CPU max %.3g rel %.3g (bound %.3g), non-finite %d, "
              "masked rows nonzero %d\n",
              name, vs_f64.max_error, relative_l2(&vs_f64), vs_cpu.max_error, relative_l2(&vs_cpu), bound,
              vs_f64.nonfinite, masked_rows_nonzero);
    CHECK(ok_f64);
    CHECK(ok_cpu);
    CHECK(masked_rows_nonzero == 0);
  }
  free(q_bits), free(k_bits), free(v_bits), free(out_bits);
  free(q), free(k), free(v), free(cpu_out), free(mask), free(scores), free(ref), free(scratch);
}

static void run_all(const char *path) {
  static const int64_t sizes[] = {1, 7, 64, 129, 300};
  static const int64_t dims[] = {32, 64, 128};
  uint64_t seed = 1;
  for (size_t di = 0; di < 3; di++) {
    const int64_t D = dims[di];
    const float scale = 1.0f / sqrtf((float)D);
    for (size_t i = 0; i < 5; i++)
      for (size_t j = 0; j < 5; j++) {
        const attention_case c = {1, 1, sizes[i], sizes[j], 1 + (int64_t)(i + j) % 3, D, 0, scale};
        run_case(&c, seed++, path);
      }
    const attention_case more[] = {
        {3, 1, 129, 300, 2, D, 1, scale},  /* Bk < B; batch row 0 all masked */
        {4, 2, 300, 129, 3, D, 2, 0.3f},   /* Bk < B; tails masked, one row entirely */
        {2, 2, 200, 1000, 2, D, 2, scale}, /* eight key tiles: the stages wrap several times */
        {2, 1, 7, 1037, 1, D, 1, 0.2f},
        {1, 1, 64, 513, 2, D, 0, 1.0f},
        {2, 1, 100, 300, 2, D, 1, -0.125f}, /* negative scale */
        {2, 1, 100, 300, 2, D, 2, 0.0f},    /* scale 0: the mean of the unmasked values */
    };
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) run_case(&more[i], seed++, path);
  }
}

int main(void) {
  if (osp_cuda_init() != OSP_OK) {
    printf("test_cuda_attention: skipped: no usable GPU (%s)\n", osp_last_error());
    return 77;
  }

  /* A head dim the kernels do not cover is refused, and the message lists those they do. */
  const osp_cuda_attention_shape odd = {1, 1, 8, 8, 1, 96};
  const osp_status st = osp_cuda_attention(NULL, NULL, NULL, NULL, 1.0f, NULL, NULL, odd);
  CHECK(st == OSP_ERR_UNSUPPORTED);
  CHECK(strstr(osp_last_error(), "32, 64, 128") != NULL);

  run_all("default");
  setenv("OSP_FLASH_PATH", "fa2", 1);
  run_all("fa2");
  unsetenv("OSP_FLASH_PATH");
  return test_summary("test_cuda_attention");
}
