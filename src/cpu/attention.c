#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "cpu/cpu.h"
#include "cpu/fast_exp.h"

/* FlashAttention on the CPU: a block of queries meets the keys one block at a time, with an online
 * softmax, so the Nq × Nk score matrix never exists. Each thread keeps the scores of one block pair
 * (QUERY_BLOCK × KEY_BLOCK floats, 512 KiB) in its part of the caller's scratch. Blocks this large
 * keep OpenBLAS's packing of q, k, P and v small next to the products: with them attention runs at
 * the speed of one large sgemm (bench/bench_cpu_ops.c); 128 × 256 blocks lose 10-25%. */
enum { QUERY_BLOCK = 256, KEY_BLOCK = 512 };
enum { SCORE_BLOCK_FLOATS = QUERY_BLOCK * KEY_BLOCK };

/* One (batch, head) pair: row i of q, out, k or v starts at base + i·row_stride, row_stride =
 * heads·D, so the sgemms read a head's slices of the [B, N, heads, D] rows in place. */
typedef struct {
  const float *q, *k, *v;
  const uint8_t *key_mask; /* the Nk flags of this query batch row, or NULL */
  const float *bias;       /* this head's [Nq, Nk] additive scores, or NULL */
  float *out;
  float *lse; /* the Nq log-sum-exps of this (batch, head), or NULL */
  int64_t row_stride, keys, head_dim;
  float scale;
} attention_head;

/* Online softmax of a block of queries, per query: the largest score seen so far (m) and the sum
 * of e^(s − m) over the keys seen so far (l). The output rows hold Σ e^(s − m)·v, unnormalised. */
typedef struct {
  int64_t queries;
  float max[QUERY_BLOCK];
  float sum[QUERY_BLOCK];
} online_softmax;

/* scores[i, j] = scale · q_i · k_j for the block's queries and keys [k0, k0 + kn). */
static void score_block(const attention_head *head, const float *queries, int64_t qn, int64_t k0,
                        int64_t kn, float *scores) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)qn, (blasint)kn,
              (blasint)head->head_dim, head->scale, queries, (blasint)head->row_stride,
              head->k + k0 * head->row_stride, (blasint)head->row_stride, 0.0f, scores, KEY_BLOCK);
}

/* scores[i, j] += bias[q0 + i, k0 + j]: the block's part of the head's [Nq, Nk] bias. */
static void add_bias(const attention_head *head, int64_t q0, int64_t qn, int64_t k0, int64_t kn,
                     float *scores) {
  for (int64_t i = 0; i < qn; i++) {
    const float *bias_row = head->bias + (q0 + i) * head->keys + k0;
    float *row = scores + i * KEY_BLOCK;
    for (int64_t j = 0; j < kn; j++) row[j] += bias_row[j];
  }
}

/* A masked key scores −inf, so e^(s − m) = 0 for it. */
static void mask_scores(const uint8_t *key_flags, int64_t qn, int64_t kn, float *scores) {
  for (int64_t i = 0; i < qn; i++) {
    float *row = scores + i * KEY_BLOCK;
    for (int64_t j = 0; j < kn; j++) row[j] = key_flags[j] ? row[j] : -INFINITY;
  }
}

/* The reductions below keep LANES running values and combine them at the end: GCC and Clang
 * vectorise that form on their own (two AVX-512 registers of lanes), but not a float reduction in
 * one variable, which they may not reorder. */
enum { LANES = 32 };

static float row_max(const float *row, int64_t n) {
  float lane[LANES];
  for (int l = 0; l < LANES; l++) lane[l] = -INFINITY;
  int64_t j = 0;
  for (; j + LANES <= n; j += LANES)
    for (int l = 0; l < LANES; l++) lane[l] = row[j + l] > lane[l] ? row[j + l] : lane[l];
  float best = -INFINITY;
  for (; j < n; j++) best = row[j] > best ? row[j] : best;
  for (int l = 0; l < LANES; l++) best = lane[l] > best ? lane[l] : best;
  return best;
}

/* row[j] ← e^(row[j] − shift); returns the sum of the new values. */
static float exp_shifted_sum(float *row, int64_t n, float shift) {
  float lane[LANES] = {0};
  int64_t j = 0;
  for (; j + LANES <= n; j += LANES) {
    for (int l = 0; l < LANES; l++) {
      row[j + l] = osp_cpu_exp(row[j + l] - shift);
      lane[l] += row[j + l];
    }
  }
  float sum = 0.0f;
  for (; j < n; j++) {
    row[j] = osp_cpu_exp(row[j] - shift);
    sum += row[j];
  }
  for (int l = 0; l < LANES; l++) sum += lane[l];
  return sum;
}

/* Folds a block of scores into the softmax state and turns them into the weights P of this block.
 * With m' = max(m, max_j s_j): P_j = e^(s_j − m'), l ← l·e^(m − m') + Σ_j P_j, and the output row
 * must be rescaled by correction = e^(m − m') before P·V is added. A query whose keys so far are
 * all masked (m' = −inf) keeps l = 0 and gets P = 0. */
static void update_softmax(online_softmax *state, float *scores, int64_t kn, float *correction) {
  for (int64_t i = 0; i < state->queries; i++) {
    float *row = scores + i * KEY_BLOCK;
    const float block_max = row_max(row, kn);
    const float new_max = block_max > state->max[i] ? block_max : state->max[i];
    if (new_max == -INFINITY) {
      memset(row, 0, (size_t)kn * sizeof *row);
      correction[i] = 1.0f;
      continue;
    }
    correction[i] = osp_cpu_exp(state->max[i] - new_max);
    state->sum[i] = state->sum[i] * correction[i] + exp_shifted_sum(row, kn, new_max);
    state->max[i] = new_max;
  }
}

/* lse = log Σ_j e^(s_j) = m + log l over the keys seen: −inf for a query whose keys are all masked
 * (l = 0). */
static void write_log_sum_exp(const online_softmax *state, float *lse) {
  for (int64_t i = 0; i < state->queries; i++)
    lse[i] = state->sum[i] > 0.0f ? state->max[i] + logf(state->sum[i]) : -INFINITY;
}

static void scale_rows(float *rows, int64_t row_stride, int64_t count, int64_t width,
                       const float *factor) {
  for (int64_t i = 0; i < count; i++) {
    if (factor[i] == 1.0f) continue;
    float *row = rows + i * row_stride;
    for (int64_t d = 0; d < width; d++) row[d] *= factor[i];
  }
}

/* out rows of the block += P · v rows [k0, k0 + kn). */
static void accumulate_values(const attention_head *head, const float *weights, int64_t qn,
                              int64_t k0, int64_t kn, float *out_rows) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)qn, (blasint)head->head_dim,
              (blasint)kn, 1.0f, weights, KEY_BLOCK, head->v + k0 * head->row_stride,
              (blasint)head->row_stride, 1.0f, out_rows, (blasint)head->row_stride);
}

/* Output rows [q0, q0 + qn) of one head: start from zero, fold in every key block, divide by l
 * (a query with every key masked has l = 0 and keeps its zero row); then their lse if wanted. */
static void attend_query_block(const attention_head *head, int64_t q0, int64_t qn, float *scores) {
  float factor[QUERY_BLOCK];
  online_softmax state = {.queries = qn};
  const float *queries = head->q + q0 * head->row_stride;
  float *out_rows = head->out + q0 * head->row_stride;
  for (int64_t i = 0; i < qn; i++) {
    state.max[i] = -INFINITY;
    state.sum[i] = 0.0f;
    memset(out_rows + i * head->row_stride, 0, (size_t)head->head_dim * sizeof *out_rows);
  }
  for (int64_t k0 = 0; k0 < head->keys; k0 += KEY_BLOCK) {
    const int64_t kn = head->keys - k0 < KEY_BLOCK ? head->keys - k0 : KEY_BLOCK;
    score_block(head, queries, qn, k0, kn, scores);
    if (head->bias) add_bias(head, q0, qn, k0, kn, scores);
    if (head->key_mask) mask_scores(head->key_mask + k0, qn, kn, scores);
    update_softmax(&state, scores, kn, factor);
    scale_rows(out_rows, head->row_stride, qn, head->head_dim, factor);
    accumulate_values(head, scores, qn, k0, kn, out_rows);
  }
  for (int64_t i = 0; i < qn; i++) factor[i] = state.sum[i] > 0.0f ? 1.0f / state.sum[i] : 1.0f;
  scale_rows(out_rows, head->row_stride, qn, head->head_dim, factor);
  if (head->lse) write_log_sum_exp(&state, head->lse + q0);
}

size_t osp_cpu_attention_scratch_bytes(void) {
  return (size_t)omp_get_max_threads() * SCORE_BLOCK_FLOATS * sizeof(float);
}

/* Parallel over (batch, head, query block); the sgemms inside run on their caller's thread (an
 * OpenBLAS built for OpenMP does not start threads of its own inside a parallel region). bias NULL
 * or [heads, Nq, Nk], shared by every batch row. */
static void attention(const float *q, const float *k, const float *v, const uint8_t *key_mask,
                      const float *bias, float scale, float *out, float *lse,
                      osp_cpu_attention_shape shape, float *scratch) {
  const int64_t row_stride = shape.heads * shape.head_dim;
  const int64_t query_blocks = (shape.queries + QUERY_BLOCK - 1) / QUERY_BLOCK;
  const int64_t tasks = shape.batch * shape.heads * query_blocks;
#pragma omp parallel
  {
    float *scores = scratch + (size_t)omp_get_thread_num() * SCORE_BLOCK_FLOATS;
#pragma omp for schedule(static)
    for (int64_t task = 0; task < tasks; task++) {
      const int64_t b = task / (shape.heads * query_blocks);
      const int64_t h = task / query_blocks % shape.heads;
      const int64_t q0 = task % query_blocks * QUERY_BLOCK;
      const int64_t kv_offset = (b % shape.kv_batch) * shape.keys * row_stride + h * shape.head_dim;
      const int64_t q_offset = b * shape.queries * row_stride + h * shape.head_dim;
      const attention_head head = {
          .q = q + q_offset,
          .k = k + kv_offset,
          .v = v + kv_offset,
          .key_mask = key_mask ? key_mask + b * shape.keys : NULL,
          .bias = bias ? bias + h * shape.queries * shape.keys : NULL,
          .out = out + q_offset,
          .lse = lse ? lse + (b * shape.heads + h) * shape.queries : NULL,
          .row_stride = row_stride,
          .keys = shape.keys,
          .head_dim = shape.head_dim,
          .scale = scale,
      };
      const int64_t qn = shape.queries - q0 < QUERY_BLOCK ? shape.queries - q0 : QUERY_BLOCK;
      attend_query_block(&head, q0, qn, scores);
    }
  }
}

void osp_cpu_attention(const float *q, const float *k, const float *v, const uint8_t *key_mask,
                       float scale, float *out, float *lse, osp_cpu_attention_shape shape,
                       float *scratch) {
  attention(q, k, v, key_mask, NULL, scale, out, lse, shape, scratch);
}

void osp_cpu_attention_biased(const float *q, const float *k, const float *v,
                              const uint8_t *key_mask, const float *bias, float scale, float *out,
                              osp_cpu_attention_shape shape, float *scratch) {
  attention(q, k, v, key_mask, bias, scale, out, NULL, shape, scratch);
}
