#include <cblas.h>
#include <omp.h>
#include <stdbool.h>

#include "cpu/cpu.h"
#include "cpu/fast_exp.h"

/* The attention backward in the FlashAttention-2 style. The softmax weights of a block of queries
 * and a block of keys are recomputed from q, k and the forward's log-sum-exp,
 *   s = scale·q·kᵀ,  P = e^(s − lse)  (0 for a masked key, and for a query with every key masked),
 * and with δ_i = Σ_d dout_id·out_id (= Σ_j P_ij·dP_ij, as out = P·v) the gradient of the scores is
 *   dP = dout·vᵀ,  dS = P ∘ (dP − δ),
 * so that dv += Pᵀ·dout, dk += scale·dSᵀ·q and dq += scale·dS·k, block pair by block pair.
 *
 * Deterministic without atomics: every gradient row has one owner that adds its terms in a fixed
 * order, the same whichever schedule below runs, so the bits depend on no thread count.
 *   One pass: a task per (key row, head) owns the dk, dv rows of its head and key row and the dq
 *   rows of its head in every query row b ≡ key row mod Bk, and makes 5 block products a pair.
 *   Two passes, where those tasks are too few for the threads: one parallel over key blocks
 *   (dk, dv), one parallel over query blocks (dq), which recomputes P and dS: 7 products a pair.
 * Each thread keeps P and dS of one block pair in its part of the caller's scratch; the blocks are
 * the forward's (src/cpu/attention.c). */
enum { QUERY_BLOCK = 256, KEY_BLOCK = 512 };
enum { BLOCK_FLOATS = QUERY_BLOCK * KEY_BLOCK };

/* The operands of one call, as osp_cpu_attention_backward takes them. */
typedef struct {
  const float *q, *k, *v, *out, *lse, *dout;
  const uint8_t *key_mask;
  float *dq, *dk, *dv;
  float scale;
  osp_cpu_attention_shape shape;
} backward_call;

/* One (query batch row, head) pair: row i of q, out, dout, dq (query i) or of k, v, dk, dv (key i)
 * starts at base + i·row_stride, row_stride = heads·D, so the sgemms read a head's slices of the
 * [B, N, heads, D] rows in place. A gradient not wanted is NULL. */
typedef struct {
  const float *q, *k, *v, *out, *dout;
  const float *lse;        /* the Nq log-sum-exps of this (batch, head) */
  const uint8_t *key_mask; /* the Nk flags of this query batch row, or NULL */
  float *dq, *dk, *dv;
  int64_t row_stride, head_dim;
  float scale;
} backward_head;

/* The weights P and the score gradients dS of one block pair, QUERY_BLOCK × KEY_BLOCK each. */
typedef struct {
  float *weights, *score_grads;
} block_pair;

static float *offset_or_null(float *base, int64_t offset) { return base ? base + offset : NULL; }

static backward_head head_of(const backward_call *call, int64_t b, int64_t h) {
  const osp_cpu_attention_shape *shape = &call->shape;
  const int64_t row_stride = shape->heads * shape->head_dim;
  const int64_t q_offset = b * shape->queries * row_stride + h * shape->head_dim;
  const int64_t kv_offset = (b % shape->kv_batch) * shape->keys * row_stride + h * shape->head_dim;
  return (backward_head){
      .q = call->q + q_offset,
      .k = call->k + kv_offset,
      .v = call->v + kv_offset,
      .out = call->out + q_offset,
      .dout = call->dout + q_offset,
      .lse = call->lse + (b * shape->heads + h) * shape->queries,
      .key_mask = call->key_mask ? call->key_mask + b * shape->keys : NULL,
      .dq = offset_or_null(call->dq, q_offset),
      .dk = offset_or_null(call->dk, kv_offset),
      .dv = offset_or_null(call->dv, kv_offset),
      .row_stride = row_stride,
      .head_dim = shape->head_dim,
      .scale = call->scale,
  };
}

/* δ_i = Σ_d dout_id·out_id for queries [q0, q0 + qn), summed in double: dS subtracts it from dP. */
static void query_deltas(const backward_head *head, int64_t q0, int64_t qn, float *delta) {
  for (int64_t i = 0; i < qn; i++) {
    const float *dout = head->dout + (q0 + i) * head->row_stride;
    const float *out = head->out + (q0 + i) * head->row_stride;
    double sum = 0.0;
    for (int64_t d = 0; d < head->head_dim; d++) sum += (double)dout[d] * out[d];
    delta[i] = (float)sum;
  }
}

/* P = e^(scale·q·kᵀ − lse) for queries [q0, q0 + qn) and keys [k0, k0 + kn), and 0 for a masked
 * key. A query with every key masked (lse = −inf) thus gets no weight either. */
static void softmax_weights(const backward_head *head, int64_t q0, int64_t qn, int64_t k0,
                            int64_t kn, float *weights) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)qn, (blasint)kn,
              (blasint)head->head_dim, head->scale, head->q + q0 * head->row_stride,
              (blasint)head->row_stride, head->k + k0 * head->row_stride, (blasint)head->row_stride,
              0.0f, weights, KEY_BLOCK);
  for (int64_t i = 0; i < qn; i++) {
    float *row = weights + i * KEY_BLOCK;
    const float lse = head->lse[q0 + i];
    for (int64_t j = 0; j < kn; j++) row[j] = osp_cpu_exp(row[j] - lse);
    if (!head->key_mask) continue;
    const uint8_t *key_flags = head->key_mask + k0;
    for (int64_t j = 0; j < kn; j++) row[j] = key_flags[j] ? row[j] : 0.0f;
  }
}

/* dS = P ∘ (dout·vᵀ − δ) for the block pair, P from softmax_weights. */
static void score_gradients(const backward_head *head, int64_t q0, int64_t qn, int64_t k0,
                            int64_t kn, const float *delta, const float *weights,
                            float *score_grads) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)qn, (blasint)kn,
              (blasint)head->head_dim, 1.0f, head->dout + q0 * head->row_stride,
              (blasint)head->row_stride, head->v + k0 * head->row_stride, (blasint)head->row_stride,
              0.0f, score_grads, KEY_BLOCK);
  for (int64_t i = 0; i < qn; i++) {
    const float *p = weights + i * KEY_BLOCK;
    float *ds = score_grads + i * KEY_BLOCK;
    for (int64_t j = 0; j < kn; j++) ds[j] = p[j] * (ds[j] - delta[i]);
  }
}

static void block_pair_gradients(const backward_head *head, int64_t q0, int64_t qn, int64_t k0,
                                 int64_t kn, const float *delta, block_pair pair) {
  softmax_weights(head, q0, qn, k0, kn, pair.weights);
  score_gradients(head, q0, qn, k0, kn, delta, pair.weights, pair.score_grads);
}

/* Keys [k0, k0 + kn) take the pair's terms: dv += Pᵀ·dout, dk += scale·dSᵀ·q. */
static void add_key_gradients(const backward_head *head, int64_t q0, int64_t qn, int64_t k0,
                              int64_t kn, block_pair pair) {
  const blasint stride = (blasint)head->row_stride;
  if (head->dv)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)kn, (blasint)head->head_dim,
                (blasint)qn, 1.0f, pair.weights, KEY_BLOCK, head->dout + q0 * head->row_stride,
                stride, 1.0f, head->dv + k0 * head->row_stride, stride);
  if (head->dk)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)kn, (blasint)head->head_dim,
                (blasint)qn, head->scale, pair.score_grads, KEY_BLOCK,
                head->q + q0 * head->row_stride, stride, 1.0f, head->dk + k0 * head->row_stride,
                stride);
}

/* Queries [q0, q0 + qn) take the pair's terms: dq += scale·dS·k. */
static void add_query_gradients(const backward_head *head, int64_t q0, int64_t qn, int64_t k0,
                                int64_t kn, block_pair pair) {
  const blasint stride = (blasint)head->row_stride;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)qn, (blasint)head->head_dim,
              (blasint)kn, head->scale, pair.score_grads, KEY_BLOCK,
              head->k + k0 * head->row_stride, stride, 1.0f, head->dq + q0 * head->row_stride,
              stride);
}

static int64_t block_size(int64_t start, int64_t count, int64_t block) {
  return count - start < block ? count - start : block;
}

/* dk, dv of keys [k0, k0 + kn) of key row kv_row, head h, and these keys' terms of dq where the
 * call wants it: every query block of every query row b ≡ kv_row mod Bk, in order. */
static void key_block_gradients(const backward_call *call, int64_t kv_row, int64_t h, int64_t k0,
                                block_pair pair) {
  const osp_cpu_attention_shape *shape = &call->shape;
  const int64_t kn = block_size(k0, shape->keys, KEY_BLOCK);
  float delta[QUERY_BLOCK];
  for (int64_t b = kv_row; b < shape->batch; b += shape->kv_batch) {
    const backward_head head = head_of(call, b, h);
    for (int64_t q0 = 0; q0 < shape->queries; q0 += QUERY_BLOCK) {
      const int64_t qn = block_size(q0, shape->queries, QUERY_BLOCK);
      query_deltas(&head, q0, qn, delta);
      block_pair_gradients(&head, q0, qn, k0, kn, delta, pair);
      add_key_gradients(&head, q0, qn, k0, kn, pair);
      if (head.dq) add_query_gradients(&head, q0, qn, k0, kn, pair);
    }
  }
}

/* dq of queries [q0, q0 + qn) of query row b, head h: every key block, in order. */
static void query_block_gradients(const backward_call *call, int64_t b, int64_t h, int64_t q0,
                                  block_pair pair) {
  const osp_cpu_attention_shape *shape = &call->shape;
  const int64_t qn = block_size(q0, shape->queries, QUERY_BLOCK);
  const backward_head head = head_of(call, b, h);
  float delta[QUERY_BLOCK];
  query_deltas(&head, q0, qn, delta);
  for (int64_t k0 = 0; k0 < shape->keys; k0 += KEY_BLOCK) {
    const int64_t kn = block_size(k0, shape->keys, KEY_BLOCK);
    block_pair_gradients(&head, q0, qn, k0, kn, delta, pair);
    add_query_gradients(&head, q0, qn, k0, kn, pair);
  }
}

/* The work of a call in (key row, head) tasks: 5·ceil(tasks / threads) pair-rows of products on
 * the busiest thread, against about 7·tasks / threads for two passes split finer. */
static bool one_pass_keeps_threads_busy(const osp_cpu_attention_shape *shape, int64_t threads) {
  const int64_t tasks = shape->kv_batch * shape->heads;
  return 5 * ((tasks + threads - 1) / threads) * threads <= 7 * tasks;
}

/* Called by every thread of a parallel region. */
static void gradients_in_one_pass(const backward_call *call, block_pair pair) {
  const osp_cpu_attention_shape *shape = &call->shape;
#pragma omp for schedule(static)
  for (int64_t task = 0; task < shape->kv_batch * shape->heads; task++)
    for (int64_t k0 = 0; k0 < shape->keys; k0 += KEY_BLOCK)
      key_block_gradients(call, task / shape->heads, task % shape->heads, k0, pair);
}

/* Called by every thread of a parallel region: (key row, head, key block) tasks for dk and dv,
 * then (query row, head, query block) tasks for dq. */
static void gradients_in_two_passes(const backward_call *call, block_pair pair) {
  const osp_cpu_attention_shape *shape = &call->shape;
  backward_call keys_only = *call;
  keys_only.dq = NULL;
  const int64_t key_blocks = (shape->keys + KEY_BLOCK - 1) / KEY_BLOCK;
  const int64_t query_blocks = (shape->queries + QUERY_BLOCK - 1) / QUERY_BLOCK;
  const int64_t key_tasks = call->dk || call->dv ? shape->kv_batch * shape->heads * key_blocks : 0;
  const int64_t query_tasks = call->dq ? shape->batch * shape->heads * query_blocks : 0;
#pragma omp for schedule(static)
  for (int64_t task = 0; task < key_tasks; task++) {
    const int64_t kv_row = task / (shape->heads * key_blocks);
    const int64_t h = task / key_blocks % shape->heads;
    key_block_gradients(&keys_only, kv_row, h, task % key_blocks * KEY_BLOCK, pair);
  }
#pragma omp for schedule(static)
  for (int64_t task = 0; task < query_tasks; task++) {
    const int64_t b = task / (shape->heads * query_blocks);
    const int64_t h = task / query_blocks % shape->heads;
    query_block_gradients(call, b, h, task % query_blocks * QUERY_BLOCK, pair);
  }
}

size_t osp_cpu_attention_backward_scratch_bytes(void) {
  return (size_t)omp_get_max_threads() * 2 * BLOCK_FLOATS * sizeof(float);
}

/* The sgemms run on their caller's thread. */
void osp_cpu_attention_backward(const float *q, const float *k, const float *v,
                                const uint8_t *key_mask, float scale, const float *out,
                                const float *lse, const float *dout, float *dq, float *dk,
                                float *dv, osp_cpu_attention_shape shape, float *scratch) {
  const backward_call call = {q, k, v, out, lse, dout, key_mask, dq, dk, dv, scale, shape};
#pragma omp parallel
  {
    float *own = scratch + (size_t)omp_get_thread_num() * 2 * BLOCK_FLOATS;
    const block_pair pair = {.weights = own, .score_grads = own + BLOCK_FLOATS};
    if (one_pass_keeps_threads_busy(&shape, omp_get_num_threads()))
      gradients_in_one_pass(&call, pair);
    else
      gradients_in_two_passes(&call, pair);
  }
}
