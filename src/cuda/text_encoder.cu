/* The umT5 text encoder's own kernels (cuda.h, "Text encoder"): T5's relative position bias and
 * attention with an additive bias per head. bf16 at the flash kernels' head sizes goes to them
 * (attention.cu, with the bias added per tile); anything else, such as the tests' tiny encoders,
 * to a plain kernel for short sequences: a block per few query rows of one head, every score of
 * those rows in shared memory, an exact softmax in f32, then P·V. */
#include "cuda/kernels.cuh"
#include "cuda/reduce.cuh"

namespace {

/* bias[h, i, j] = table[bucket(j − i), h]; bucket(n) for |n| < exact is |n|, else exact plus the
 * number of thresholds ≤ |n|, plus half where n > 0 (osp_cuda_bucket_rule). */
__global__ void relative_bias_kernel(const float *table, int64_t heads, int64_t queries, int64_t keys,
                                     const osp_cuda_bucket_rule rule, float *bias) {
  const int64_t n = heads * queries * keys;
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
    const int64_t j = e % keys, i = e / keys % queries, h = e / (keys * queries);
    const int64_t rel = j - i, distance = rel < 0 ? -rel : rel;
    int64_t bucket = distance;
    if (distance >= rule.exact) {
      bucket = rule.exact;
      for (int t = 0; t < rule.thresholds; t++) bucket += distance >= rule.threshold[t];
    }
    bias[e] = table[(bucket + (rel > 0 ? rule.half : 0)) * heads + h];
  }
}

constexpr int ROWS = 4, THREADS = 128, WARPS = THREADS / 32;

/* The block's maximum (is_max) or sum of one value per thread, returned to every thread; `spare`
 * holds a value per warp. Ends with the block synchronised, so spare may be reused. */
__device__ float block_reduce(float value, bool is_max, float *spare) {
  for (int offset = 16; offset > 0; offset /= 2) {
    const float other = __shfl_xor_sync(0xffffffffu, value, offset);
    value = is_max ? fmaxf(value, other) : value + other;
  }
  if (threadIdx.x % 32 == 0) spare[threadIdx.x / 32] = value;
  __syncthreads();
  float total = spare[0];
  for (int w = 1; w < WARPS; w++) total = is_max ? fmaxf(total, spare[w]) : total + spare[w];
  __syncthreads();
  return total;
}

/* Shared memory of one block: ROWS query rows (f32) and their scores over every key. */
size_t shared_bytes(int64_t keys, int64_t D) { return (size_t)ROWS * (size_t)(D + keys) * sizeof(float); }

struct biased_args {
  const void *q, *k, *v;
  const uint8_t *key_mask; /* [B, Nk], 1 = a real key; NULL: all real */
  const float *bias;       /* [H, Nq, Nk] */
  void *out;
  osp_dtype dtype;
  int64_t Nq, Nk, H, D;
  float scale;
};

/* Block (row tile, h, b): scores s[r, j] = q_r·k_j·scale + bias[h, i_r, j] (−∞ for masked keys),
 * p = softmax(s) with the row maximum subtracted, out_r = Σ_j p[r, j]·v_j. */
__global__ void biased_attention_kernel(const biased_args a) {
  extern __shared__ float shared[];
  const int64_t b = blockIdx.z, h = blockIdx.y, first = (int64_t)blockIdx.x * ROWS;
  const int64_t rows = a.Nq - first < ROWS ? a.Nq - first : ROWS, D = a.D, Nk = a.Nk;
  float *query = shared, *score = shared + ROWS * D;
  for (int64_t e = threadIdx.x; e < rows * D; e += blockDim.x) {
    const int64_t r = e / D, d = e % D;
    query[e] = osp_load(a.q, a.dtype, ((b * a.Nq + first + r) * a.H + h) * D + d);
  }
  __syncthreads();
  for (int64_t j = threadIdx.x; j < Nk; j += blockDim.x) {
    const bool real = !a.key_mask || a.key_mask[b * Nk + j];
    const int64_t key_at = ((b * Nk + j) * a.H + h) * D;
    for (int64_t r = 0; r < rows; r++) {
      float dot = 0.0f;
      for (int64_t d = 0; d < D; d++) dot += query[r * D + d] * osp_load(a.k, a.dtype, key_at + d);
      score[r * Nk + j] = real ? dot * a.scale + a.bias[(h * a.Nq + first + r) * Nk + j] : -INFINITY;
    }
  }
  __syncthreads();
  __shared__ float spare[WARPS];
  for (int64_t r = 0; r < rows; r++) {
    float *s = score + r * Nk;
    float high = -INFINITY;
    for (int64_t j = threadIdx.x; j < Nk; j += blockDim.x) high = fmaxf(high, s[j]);
    high = block_reduce(high, true, spare);
    float sum = 0.0f;
    for (int64_t j = threadIdx.x; j < Nk; j += blockDim.x) {
      s[j] = high == -INFINITY ? 0.0f : expf(s[j] - high);
      sum += s[j];
    }
    sum = block_reduce(sum, false, spare);
    const float inverse = sum > 0.0f ? 1.0f / sum : 0.0f;
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
      float acc = 0.0f;
      for (int64_t j = 0; j < Nk; j++) acc += s[j] * osp_load(a.v, a.dtype, ((b * Nk + j) * a.H + h) * D + d);
      osp_put(a.out, a.dtype, ((b * a.Nq + first + r) * a.H + h) * D + d, acc * inverse);
    }
    __syncthreads();
  }
}

}  // namespace

extern "C" osp_status osp_cuda_relative_position_bias(const float *table, int64_t heads, int64_t queries,
                                                      int64_t keys, const osp_cuda_bucket_rule *rule, float *bias) {
  const int64_t n = heads * queries * keys;
  relative_bias_kernel<<<osp_cuda_blocks(n, 256), 256, 0, osp_cuda_stream()>>>(table, heads, queries, keys, *rule,
                                                                              bias);
  return osp_cuda_launched("osp_cuda_relative_position_bias");
}

extern "C" osp_status osp_cuda_attention_biased(const void *q, const void *k, const void *v, const uint8_t *key_mask,
                                                const float *bias, float scale, void *out, osp_dtype dtype, int64_t B,
                                                int64_t Nq, int64_t Nk, int64_t H, int64_t D) {
  const bool aligned = (((uintptr_t)q | (uintptr_t)k | (uintptr_t)v | (uintptr_t)out) % 16) == 0;
  if (dtype == OSP_BF16 && (D == 32 || D == 64 || D == 128) && aligned) {
    const osp_cuda_attention_shape shape = {.batch = B, .kv_batch = B, .queries = Nq, .keys = Nk, .heads = H,
                                            .head_dim = D};
    return osp_cuda_flash_attention_biased(q, k, v, key_mask, bias, scale, out, shape);
  }
  const size_t shared = shared_bytes(Nk, D);
  if (shared > 96 * 1024)
    return osp_fail(OSP_ERR_UNSUPPORTED, "osp_cuda_attention_biased: %lld keys of %lld dims need %zu bytes of shared "
                    "memory per block, more than the 96 KiB this kernel asks for", (long long)Nk, (long long)D, shared);
  if (shared > 48 * 1024)
    OSP_CUDA_TRY("osp_cuda_attention_biased (shared memory)",
                 cudaFuncSetAttribute(biased_attention_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      (int)shared));
  const dim3 grid((unsigned)((Nq + ROWS - 1) / ROWS), (unsigned)H, (unsigned)B);
  biased_attention_kernel<<<grid, THREADS, shared, osp_cuda_stream()>>>(
      biased_args{q, k, v, key_mask, bias, out, dtype, Nq, Nk, H, D, scale});
  return osp_cuda_launched("osp_cuda_attention_biased");
}
