/* Helpers the GPU tests (tests/cuda/test_cuda_*.c) share, on top of tests/unit/harness.h: stopping
 * on a failure of the runtime itself, random host tensors drawn from Philox streams, tensors moved
 * to the GPU and back, and table rows as strided views.
 *
 * Each program defines the name its messages start with:
 *   const char gpu_test_name[] = "test_cuda_fused"; */
#ifndef OSP_GPU_TEST_H
#define OSP_GPU_TEST_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/dtype.h"
#include "core/rng.h"
#include "core/status.h"
#include "cuda/cuda.h"
#include "harness.h"
#include "ops/ops.h"

extern const char gpu_test_name[];

/* A failure of the runtime itself (allocation, copy), not of the code under test: stop. */
static inline void must(osp_status status, const char *what) {
  if (status == OSP_OK) return;
  fprintf(stderr, "%s: %s: %s\n", gpu_test_name, what, osp_last_error());
  exit(1);
}

static inline void *xmalloc(size_t bytes) {
  void *p = malloc(bytes ? bytes : 1);
  if (!p) {
    fprintf(stderr, "%s: out of host memory (%zu bytes)\n", gpu_test_name, bytes);
    exit(1);
  }
  return p;
}

/* A call's status, with any asynchronous error it raised on the GPU: a failure is printed after
 * `what`; either way it is counted (CHECK). */
static inline bool ran(osp_status status, const char *what) {
  if (status == OSP_OK) status = osp_device_synchronize(OSP_CUDA);
  if (status != OSP_OK) fprintf(stderr, "%s: %s\n", what, osp_last_error());
  CHECK(status == OSP_OK);
  return status == OSP_OK;
}

/* ---- Random host values ---------------------------------------------------------------------- */

/* Every random tensor draws from a Philox stream of its own: host_random takes the next. */
static uint32_t next_stream;

/* x rounded through dtype in place: what the GPU reads once x is stored as dtype. */
static inline void round_through(osp_dtype dtype, float *x, size_t n) {
  if (dtype == OSP_BF16)
    for (size_t i = 0; i < n; i++) x[i] = osp_bf16_to_f32(osp_f32_to_bf16(x[i]));
}

/* n samples of N(mean, std²) from stream `stream` of Philox seed `seed`, rounded to bf16 where
 * round_to_bf16 says (so that a GPU holding them in bf16 sees the same numbers). */
static inline void random_fill(float *x, size_t n, uint64_t seed, uint32_t stream, float mean,
                               float std, bool round_to_bf16) {
  osp_randn(seed, stream, 0, x, n);
  for (size_t i = 0; i < n; i++) x[i] = x[i] * std + mean;
  if (round_to_bf16) round_through(OSP_BF16, x, n);
}

/* A host f32 tensor of zeros. */
static inline osp_tensor host_zeros(int ndim, const int64_t *shape) {
  osp_tensor t = osp_tensor_make(NULL, OSP_F32, OSP_CPU, ndim, shape);
  const size_t bytes = osp_tensor_bytes(&t);
  t.data = calloc(1, bytes ? bytes : 1);
  if (!t.data) must(OSP_ERR_MEMORY, "a host tensor");
  return t;
}

/* A host f32 tensor of zeros shaped like `like`. */
static inline osp_tensor host_like(const osp_tensor *like) { return host_zeros(like->ndim, like->shape); }

/* A host f32 tensor of random_fill's samples from the given stream. */
static inline osp_tensor host_random_stream(uint64_t seed, uint32_t stream, int ndim,
                                            const int64_t *shape, float mean, float std,
                                            bool round_to_bf16) {
  osp_tensor t = osp_tensor_make(NULL, OSP_F32, OSP_CPU, ndim, shape);
  t.data = xmalloc(osp_tensor_bytes(&t));
  random_fill(t.data, (size_t)osp_tensor_numel(&t), seed, stream, mean, std, round_to_bf16);
  return t;
}

/* The same from the next stream (next_stream). */
static inline osp_tensor host_random(uint64_t seed, int ndim, const int64_t *shape, float mean,
                                     float std, bool round_to_bf16) {
  return host_random_stream(seed, next_stream++, ndim, shape, mean, std, round_to_bf16);
}

/* ---- Tensors on the GPU ---------------------------------------------------------------------- */

/* A copy of a host tensor on the GPU, stored as dtype. */
static inline osp_tensor on_gpu(const osp_tensor *host, osp_dtype dtype) {
  osp_tensor t = osp_tensor_make(NULL, dtype, OSP_CUDA, host->ndim, host->shape);
  must(osp_cuda_malloc(osp_tensor_bytes(&t), &t.data), "osp_cuda_malloc");
  must(osp_copy(host, &t), "upload");
  return t;
}

/* A GPU tensor brought back as host f32. */
static inline osp_tensor to_host(const osp_tensor *gpu) {
  osp_tensor t = host_like(gpu);
  must(osp_copy(gpu, &t), "download");
  return t;
}

static inline void free_host(osp_tensor *t) { free(t->data); }
static inline void free_gpu(osp_tensor *t) { osp_cuda_free(t->data); }

/* Row k of a [Bm, 6, C] table as a strided [Bm, C] view (as the DiT reads its modulation). */
static inline osp_tensor table_row(const osp_tensor *table, int k) {
  osp_tensor row = *table;
  const int64_t elem = (int64_t)osp_dtype_size(table->dtype);
  row.data = (char *)table->data + (int64_t)k * table->shape[2] * elem;
  row.ndim = 2;
  row.shape[1] = table->shape[2];
  row.stride[0] = table->stride[0];
  row.stride[1] = 1;
  return row;
}

/* ---- Attention ------------------------------------------------------------------------------- */

/* A [B, Nk] key mask (1: attended) drawn with stream `stream` of seed `seed`. mode 1 masks ~30% of
 * the keys at random, and batch row 0 entirely; mode 2 a tail of keys whose length depends on the
 * batch row, and the last row entirely (a single batch row is never masked entirely). */
static inline uint8_t *key_mask(int mode, uint64_t seed, uint32_t stream, int64_t B, int64_t Nk) {
  uint8_t *mask = xmalloc((size_t)(B * Nk));
  float *u = xmalloc((size_t)(B * Nk) * sizeof *u);
  osp_randn(seed, stream, 0, u, (size_t)(B * Nk));
  for (int64_t b = 0; b < B; b++)
    for (int64_t j = 0; j < Nk; j++) {
      uint8_t keep = 1;
      if (mode == 1) keep = (b == 0 && B > 1) ? 0 : u[b * Nk + j] > -0.5f;
      if (mode == 2) keep = (b == B - 1 && B > 1) ? 0 : j < Nk - (b * 37 + 5) % (Nk + 1);
      mask[b * Nk + j] = keep;
    }
  free(u);
  return mask;
}

#endif
