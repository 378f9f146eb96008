/* CPU attention against the sgemms it is built on. Not part of the CMake build; compile by hand
 * (the rpath makes the loader take the OpenMP OpenBLAS, not the system default pthread one):
 *
 *   gcc -std=c11 -D_POSIX_C_SOURCE=200809L -O3 -march=native -fopenmp -Iinclude -Isrc \
 *       -I/usr/include/x86_64-linux-gnu/openblas-openmp bench/bench_cpu_ops.c src/ops/[a-z]*.c \
 *       src/cpu/[a-z]*.c src/core/status.c src/core/tensor.c src/core/dtype.c \
 *       -L/usr/lib/x86_64-linux-gnu/openblas-openmp \
 *       -Wl,-rpath,/usr/lib/x86_64-linux-gnu/openblas-openmp -lopenblas -lm -o build-ops/bench_cpu_ops
 *   OPENBLAS_CORETYPE=Cooperlake build-ops/bench_cpu_ops [B heads N D]   (default: 1 12 7800 128)
 *
 * OpenBLAS 0.3.21 takes this Xeon (family 6, model 207) for a Prescott and runs SSE3 kernels;
 * OPENBLAS_CORETYPE=Cooperlake (or SkylakeX) selects its AVX-512 kernels. Attention counts
 * 4·B·heads·Nq·Nk·D flops (two matrix products per head); the references are those two products
 * of one head as single sgemms. Each is timed REPEATS times and the fastest run reported. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/status.h"
#include "ops/ops.h"

enum { REPEATS = 3 };

static double seconds_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *random_floats(int64_t n) {
  float *p = malloc((size_t)n * sizeof *p);
  if (!p) return NULL;
  for (int64_t i = 0; i < n; i++) p[i] = (float)rand() / (float)RAND_MAX - 0.5f;
  return p;
}

/* Times one osp_attention call into *seconds. */
static osp_status bench_attention(int64_t B, int64_t heads, int64_t N, int64_t D, float *q,
                                  float *k, float *v, float *out, double *seconds) {
  const int64_t shape[4] = {B, N, heads, D};
  osp_tensor tq = osp_tensor_make(q, OSP_F32, OSP_CPU, 4, shape), tk = osp_tensor_make(k, OSP_F32, OSP_CPU, 4, shape);
  osp_tensor tv = osp_tensor_make(v, OSP_F32, OSP_CPU, 4, shape), to = osp_tensor_make(out, OSP_F32, OSP_CPU, 4, shape);
  const int64_t scratch_bytes = (int64_t)osp_attention_scratch_bytes(OSP_CPU);
  osp_tensor scratch = osp_tensor_make(malloc((size_t)scratch_bytes), OSP_U8, OSP_CPU, 1, &scratch_bytes);
  if (!scratch.data) return osp_fail(OSP_ERR_MEMORY, "no memory for the attention scratch");
  const double start = seconds_now();
  osp_status status = osp_attention(&tq, &tk, &tv, NULL, 1.0f / sqrtf((float)D), &scratch, &to);
  *seconds = seconds_now() - start;
  free(scratch.data);
  return status;
}

/* The two products attention makes per head: scores = q·kᵀ ([N, D]·[D, N], N² outputs) and
 * out = P·v ([N, N]·[N, D]); each 2·N²·D flops. */
static double bench_scores_sgemm(int64_t N, int64_t D, const float *q, const float *k,
                                 float *scores) {
  const double start = seconds_now();
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)N, (blasint)N, (blasint)D, 1.0f, q,
              (blasint)D, k, (blasint)D, 0.0f, scores, (blasint)N);
  return seconds_now() - start;
}

static double bench_values_sgemm(int64_t N, int64_t D, const float *weights, const float *v,
                                 float *out) {
  const double start = seconds_now();
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)N, (blasint)D, (blasint)N, 1.0f,
              weights, (blasint)N, v, (blasint)D, 0.0f, out, (blasint)D);
  return seconds_now() - start;
}

int main(int argc, char **argv) {
  int64_t B = 1, heads = 12, N = 7800, D = 128;
  if (argc == 5) {
    B = atoll(argv[1]), heads = atoll(argv[2]), N = atoll(argv[3]), D = atoll(argv[4]);
  } else if (argc != 1) {
    fprintf(stderr, "usage: %s [B heads N D]\n", argv[0]);
    return 2;
  }
  const int64_t n = B * N * heads * D;
  float *q = random_floats(n), *k = random_floats(n), *v = random_floats(n);
  float *out = random_floats(n), *scores = random_floats(N * N);
  if (!q || !k || !v || !out || !scores) {
    fprintf(stderr, "bench_cpu_ops: out of memory\n");
    return 1;
  }
  const double attention_flops = 4.0 * (double)(B * heads) * (double)N * (double)N * (double)D;
  const double sgemm_flops = 2.0 * (double)N * (double)N * (double)D;
  bench_scores_sgemm(N, D, q, k, scores); /* warm-up: OpenBLAS starts its threads */
  double t_scores = INFINITY, t_values = INFINITY, t_attention = INFINITY, seconds = 0.0;
  osp_status status = OSP_OK;
  for (int r = 0; r < REPEATS && status == OSP_OK; r++) {
    t_scores = fmin(t_scores, bench_scores_sgemm(N, D, q, k, scores));
    t_values = fmin(t_values, bench_values_sgemm(N, D, scores, v, out));
    status = bench_attention(B, heads, N, D, q, k, v, out, &seconds);
    t_attention = fmin(t_attention, seconds);
  }
  free(q), free(k), free(v), free(out), free(scores);
  if (status != OSP_OK) {
    fprintf(stderr, "bench_cpu_ops: %s\n", osp_last_error());
    return 1;
  }
  printf("sgemm q·kᵀ [%lld, %lld]·[%lld, %lld]: %8.3f s  %7.1f GFLOP/s\n", (long long)N,
         (long long)D, (long long)D, (long long)N, t_scores, sgemm_flops / t_scores * 1e-9);
  printf("sgemm P·v  [%lld, %lld]·[%lld, %lld]: %8.3f s  %7.1f GFLOP/s\n", (long long)N,
         (long long)N, (long long)N, (long long)D, t_values, sgemm_flops / t_values * 1e-9);
  printf("attention B=%lld heads=%lld N=%lld D=%lld: %8.3f s  %7.1f GFLOP/s\n", (long long)B,
         (long long)heads, (long long)N, (long long)D, t_attention,
         attention_flops / t_attention * 1e-9);
  return 0;
}
