/* The CPU kernels against OpenBLAS's own sgemm on the same shapes: every linear layer of a DiT
 * block (default: the 1.3B preset on the 7,800 tokens of a 5×60×104 latent) and attention against
 * its two products per head. Prints seconds, GFLOP/s and the fraction of sgemm's rate; each timing
 * is the fastest of REPEATS runs. Built by CMake: build/bench_cpu_ops [tokens dim ffn heads].
 * A linear [M, K]·[N, K]ᵀ counts 2·M·N·K flops; attention 4·heads·N²·D. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/clock.h"
#include "core/status.h"
#include "cpu/blas.h"
#include "ops/ops.h"

enum { REPEATS = 3 };

static float *random_floats(int64_t n) {
  float *p = malloc((size_t)n * sizeof *p);
  for (int64_t i = 0; p && i < n; i++) p[i] = (float)rand() / (float)RAND_MAX - 0.5f;
  return p;
}

static osp_tensor f32(float *data, int64_t rows, int64_t cols) {
  return osp_tensor_make(data, OSP_F32, OSP_CPU, 2, (const int64_t[]){rows, cols});
}

/* Fastest of REPEATS: osp_linear y = x·wᵀ + b, and the bare sgemm of the same product. */
static void bench_linear(const char *name, int64_t M, int64_t K, int64_t N) {
  float *x = random_floats(M * K), *w = random_floats(N * K), *b = random_floats(N), *y = random_floats(M * N);
  if (!x || !w || !b || !y) {
    fprintf(stderr, "bench_cpu_ops: out of memory\n");
    exit(1);
  }
  osp_tensor tx = f32(x, M, K), tw = f32(w, N, K), ty = f32(y, M, N);
  osp_tensor tb = osp_tensor_make(b, OSP_F32, OSP_CPU, 1, &N);
  double t_osp = INFINITY, t_blas = INFINITY;
  for (int r = 0; r < REPEATS; r++) {
    double start = osp_seconds();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)M, (blasint)N, (blasint)K, 1.0f, x,
                (blasint)K, w, (blasint)K, 0.0f, y, (blasint)N);
    t_blas = fmin(t_blas, osp_seconds() - start);
    start = osp_seconds();
    if (osp_linear(&tx, &tw, &tb, &ty) != OSP_OK) fprintf(stderr, "bench_cpu_ops: %s\n", osp_last_error());
    t_osp = fmin(t_osp, osp_seconds() - start);
  }
  const double flops = 2.0 * (double)M * (double)N * (double)K;
  printf("%-22s [%6lld, %5lld]x[%5lld, %5lld]^T %9.4f s %7.1f GFLOP/s | sgemm %9.4f s %7.1f GFLOP/s | %5.1f%%\n", name,
         (long long)M, (long long)K, (long long)N, (long long)K, t_osp, flops / t_osp * 1e-9, t_blas,
         flops / t_blas * 1e-9, 100.0 * t_blas / t_osp);
  free(x), free(w), free(b), free(y);
}

/* osp_attention on [1, N, heads, D] against the two sgemms of one head (q·kᵀ, then P·v) times heads. */
static void bench_attention(int64_t N, int64_t heads, int64_t D) {
  const int64_t n = N * heads * D, shape[4] = {1, N, heads, D};
  const int64_t scratch_bytes = (int64_t)osp_attention_scratch_bytes(OSP_CPU);
  float *q = random_floats(n), *k = random_floats(n), *v = random_floats(n), *out = random_floats(n);
  float *scores = random_floats(N * N);
  void *scratch_data = malloc((size_t)scratch_bytes);
  if (!q || !k || !v || !out || !scores || !scratch_data) {
    fprintf(stderr, "bench_cpu_ops: out of memory\n");
    exit(1);
  }
  osp_tensor tq = osp_tensor_make(q, OSP_F32, OSP_CPU, 4, shape), tk = osp_tensor_make(k, OSP_F32, OSP_CPU, 4, shape);
  osp_tensor tv = osp_tensor_make(v, OSP_F32, OSP_CPU, 4, shape), to = osp_tensor_make(out, OSP_F32, OSP_CPU, 4, shape);
  osp_tensor scratch = osp_tensor_make(scratch_data, OSP_U8, OSP_CPU, 1, &scratch_bytes);
  double t_osp = INFINITY, t_blas = INFINITY;
  for (int r = 0; r < REPEATS; r++) {
    double start = osp_seconds();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)N, (blasint)N, (blasint)D, 1.0f, q, (blasint)D, k,
                (blasint)D, 0.0f, scores, (blasint)N);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)N, (blasint)D, (blasint)N, 1.0f, scores,
                (blasint)N, v, (blasint)D, 0.0f, out, (blasint)D);
    t_blas = fmin(t_blas, (osp_seconds() - start) * (double)heads);
    start = osp_seconds();
    if (osp_attention(&tq, &tk, &tv, NULL, 1.0f / sqrtf((float)D), &scratch, &to) != OSP_OK)
      fprintf(stderr, "bench_cpu_ops: %s\n", osp_last_error());
    t_osp = fmin(t_osp, osp_seconds() - start);
  }
  const double flops = 4.0 * (double)heads * (double)N * (double)N * (double)D;
  printf("%-22s N %6lld, %3lld heads x %3lld %13s %9.4f s %7.1f GFLOP/s | sgemm %9.4f s %7.1f GFLOP/s | %5.1f%%\n",
         "attention", (long long)N, (long long)heads, (long long)D, "", t_osp, flops / t_osp * 1e-9, t_blas,
         flops / t_blas * 1e-9, 100.0 * t_blas / t_osp);
  free(q), free(k), free(v), free(out), free(scores), free(scratch_data);
}

int main(int argc, char **argv) {
  osp_cpu_blas_use_best_kernels(argv);
  int64_t tokens = 7800, dim = 1536, ffn = 8960, heads = 12, text = 512, text_dim = 4096;
  if (argc == 5) {
    tokens = atoll(argv[1]), dim = atoll(argv[2]), ffn = atoll(argv[3]), heads = atoll(argv[4]);
  } else if (argc != 1) {
    fprintf(stderr, "usage: %s [tokens dim ffn heads]   (default: 7800 1536 8960 12)\n", argv[0]);
    return 2;
  }
  printf("OpenBLAS kernels: %s\n", osp_cpu_blas_core());
  bench_linear("q, k, v, o (x6/block)", tokens, dim, dim);
  bench_linear("ffn in", tokens, dim, ffn);
  bench_linear("ffn out", tokens, ffn, dim);
  bench_linear("cross k, v (x2/block)", text, dim, dim);
  bench_linear("text embedding", text, text_dim, dim);
  bench_attention(tokens, heads, dim / heads);
  return 0;
}
