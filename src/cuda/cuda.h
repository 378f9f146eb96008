/* The CUDA backend: kernels on device pointers, launched in order on the backend's one stream.
 * Like the CPU backend they trust their caller (src/ops/ checks every operand first); unlike it
 * they can fail (a launch or a library call), and then return a status whose message names the
 * kernel and CUDA's error. Floating operands are bf16 or f32, each with its own dtype argument;
 * arithmetic is f32 whatever the storage. Arrays are contiguous and row-major unless a parameter
 * names a stride (counted in elements). Compiled only when CMake finds CUDA (OSP_HAVE_CUDA). */
#ifndef OSP_CUDA_CUDA_H
#define OSP_CUDA_CUDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "core/dtype.h"
#include "cpu/optim.h" /* AdamW's per-step scalars, one struct for both backends */
#include "osp.h"

/* ---- Runtime (runtime.cu) ------------------------------------------------------------------ */

/* Selects the device, creates the stream and the library handles; later calls return at once.
 * Fails with OSP_ERR_UNSUPPORTED when there is no usable GPU. */
osp_status osp_cuda_init(void);
/* The GPU osp_cuda_init will use (device 0 unless chosen), for one process per GPU: call it
 * before anything initialises the backend. Choosing another one afterwards fails. */
osp_status osp_cuda_select_device(int ordinal);
/* The backend's one stream, as a cudaStream_t, for libraries that take one (NCCL), after
 * osp_cuda_init. */
void *osp_cuda_stream_handle(void);
/* The GPU's name, multiprocessor count and memory (bytes), after osp_cuda_init. */
typedef struct {
  char name[128];
  int multiprocessors;
  int compute_major, compute_minor;
  size_t total_memory, free_memory;
} osp_cuda_device_info;
osp_status osp_cuda_device(osp_cuda_device_info *info);

osp_status osp_cuda_malloc(size_t bytes, void **out);
void osp_cuda_free(void *ptr);
/* Copies in stream order; a copy to the host waits for it to land. */
osp_status osp_cuda_copy_to_device(void *dst, const void *src, size_t bytes);
osp_status osp_cuda_copy_to_host(void *dst, const void *src, size_t bytes);
osp_status osp_cuda_copy_on_device(void *dst, const void *src, size_t bytes);
osp_status osp_cuda_memset_zero(void *dst, size_t bytes);
/* Waits for every kernel launched so far; reports an asynchronous error as its status. */
osp_status osp_cuda_synchronize(void);
/* The most device memory this process has had from osp_cuda_malloc at once, in bytes. */
size_t osp_cuda_peak_allocated(void);

/* Event timing on the stream, for benchmarks: seconds between two recorded points. */
typedef struct osp_cuda_timer osp_cuda_timer;
osp_status osp_cuda_timer_start(osp_cuda_timer **timer);
osp_status osp_cuda_timer_stop(osp_cuda_timer *timer, double *seconds); /* also frees it */

/* ---- Dense algebra (linear.cu) ---------------------------------------------------------- */

/* y[M, N] = x[M, K] · w[N, K]ᵀ + bias[N] through cuBLASLt, f32 accumulation. x and w bf16;
 * bias NULL or bf16; y bf16 or f32 (y_dtype). y must not overlap the inputs. */
osp_status osp_cuda_linear(const void *x, const void *w, const void *bias, void *y,
                           osp_dtype y_dtype, int64_t M, int64_t N, int64_t K);
/* y = GELU_tanh(x·wᵀ + bias), as osp_cuda_linear then osp_cuda_gelu_tanh (in cuBLASLt's epilogue
 * when y is bf16). */
osp_status osp_cuda_linear_gelu_tanh(const void *x, const void *w, const void *bias, void *y,
                                     osp_dtype y_dtype, int64_t M, int64_t N, int64_t K);

/* ---- Element-wise and row-wise kernels (elementwise.cu, norm.cu, rope.cu, video.cu) -------- */

/* n values converted between dtypes (f32 ↔ bf16, or a copy): round to nearest even. */
osp_status osp_cuda_convert(const void *src, osp_dtype src_dtype, void *dst, osp_dtype dst_dtype,
                            int64_t n);

/* Standard normal samples, the same numbers osp_randn (core/rng.h) gives for (seed, stream,
 * offset), times `scale`, stored as dtype. */
osp_status osp_cuda_randn(uint64_t seed, uint32_t stream, uint64_t offset, float scale, void *out,
                          osp_dtype dtype, int64_t n);

/* Row-wise over [rows, C]; y may be x. LayerNorm's weight and bias both NULL or both [C] (param
 * dtype); RMSNorm's weight [C]. Same formulas as the CPU backend (cpu/cpu.h). */
osp_status osp_cuda_layernorm(const void *x, osp_dtype x_dtype, const void *weight,
                              const void *bias, osp_dtype param_dtype, float eps, void *y,
                              osp_dtype y_dtype, int64_t rows, int64_t C);
osp_status osp_cuda_rmsnorm(const void *x, osp_dtype x_dtype, const void *weight,
                            osp_dtype param_dtype, float eps, void *y, osp_dtype y_dtype,
                            int64_t rows, int64_t C);

/* Element-wise over n values; y may be x. */
osp_status osp_cuda_gelu_tanh(const void *x, osp_dtype x_dtype, void *y, osp_dtype y_dtype,
                              int64_t n);
osp_status osp_cuda_silu(const void *x, osp_dtype x_dtype, void *y, osp_dtype y_dtype, int64_t n);

/* HiF8 quantize-dequantize of n f32 or bf16 elements (quant.cu), as osp_cpu_hif8_quantize: the
 * same bits. y may be x. */
osp_status osp_cuda_hif8_quantize(const void *x, osp_dtype dtype, void *y, int64_t n, float scale_max);

/* dst[i, :] = src[index[i], :] for rows of C elements of elem_bytes each, zeros where
 * index[i] < 0; every index is below src's row count. dst must not overlap src. */
osp_status osp_cuda_gather_rows(const void *src, const int32_t *index, void *dst, int64_t rows,
                                int64_t C, size_t elem_bytes);

/* A [Bm, C] operand that may be a view into a larger table (as osp_cpu_rows). */
typedef struct {
  const void *data;
  osp_dtype dtype;
  int64_t row_stride;
  int64_t rows; /* Bm */
} osp_cuda_rows;

/* x, y [B, N, C] (x_dtype each): y = x · (1 + scale[b mod Bm]) + shift[b mod Bm]. y may be x. */
osp_status osp_cuda_modulate(const void *x, osp_cuda_rows shift, osp_cuda_rows scale, void *y,
                             osp_dtype x_dtype, int64_t B, int64_t N, int64_t C);
/* x [B, N, C] (x_dtype), y [B, N, C] (y_dtype): x += y · gate[b mod Bm]; gate.data NULL: x += y. */
osp_status osp_cuda_gated_add(void *x, osp_dtype x_dtype, const void *y, osp_dtype y_dtype,
                              osp_cuda_rows gate, int64_t B, int64_t N, int64_t C);

/* y = a + b with broadcasting, over `ndim` ≤ 8 dimensions: y contiguous of `shape`; a and b read
 * at strides a_stride, b_stride (0 along a broadcast dimension). y may be a or b. */
osp_status osp_cuda_add(const void *a, osp_dtype a_dtype, const int64_t *a_stride, const void *b,
                        osp_dtype b_dtype, const int64_t *b_stride, void *y, osp_dtype y_dtype,
                        int ndim, const int64_t *shape);

/* RoPE tables (f32) at listed coordinates, as osp_cpu_rope_tables_at: positions i32 [tokens, 3]. */
osp_status osp_cuda_rope_tables_at(const int32_t *positions, int64_t tokens, int head_dim,
                                   float *cos_table, float *sin_table);
/* Rotates the interleaved pairs of x [B, N, heads, D] (x_dtype) in place, tables f32 [Bt, N, D/2]
 * with table_batch_stride 0 (shared) or N·D/2, as osp_cpu_rope_apply. */
osp_status osp_cuda_rope_apply(void *x, osp_dtype x_dtype, const float *cos_table,
                               const float *sin_table, int64_t table_batch_stride, int64_t B,
                               int64_t N, int64_t heads, int64_t D);

/* A batch of videos, as osp_cpu_video. */
typedef struct {
  int64_t batch, channels, frames, height, width;
  int64_t patch[3];
} osp_cuda_video;
/* As osp_cpu_patchify / osp_cpu_unpatchify, each side with its own dtype. */
osp_status osp_cuda_patchify(const void *latents, osp_dtype latents_dtype, osp_cuda_video video,
                             void *patches, osp_dtype patches_dtype);
osp_status osp_cuda_unpatchify(const void *tokens, osp_dtype tokens_dtype, osp_cuda_video video,
                               void *out, osp_dtype out_dtype);

/* t [B] (f32) → out [B, D] (out_dtype), as osp_cpu_timestep_embedding (angles in float64). */
osp_status osp_cuda_timestep_embedding(const float *t, void *out, osp_dtype out_dtype, int64_t B,
                                       int64_t D);

/* ---- Fused row kernels (fused.cu): one pass where the block had two or three ------------- */

/* x, y [B, N, C] (x_dtype): y = LayerNorm(x) (no affine) · (1 + scale[b mod Bm]) + shift[b mod Bm],
 * as osp_cuda_layernorm then osp_cuda_modulate. y may be x. */
osp_status osp_cuda_layernorm_modulate(const void *x, osp_cuda_rows shift, osp_cuda_rows scale,
                                       float eps, void *y, osp_dtype x_dtype, int64_t B, int64_t N,
                                       int64_t C);
/* x, y, normed [B, N, C] (dtype): x += y · gate (gate.data NULL: x += y), then normed =
 * LayerNorm(x; weight, bias) (both NULL: no affine), then, where scale.data is given,
 * normed = normed · (1 + scale) + shift; as osp_cuda_gated_add, osp_cuda_layernorm,
 * osp_cuda_modulate. normed must not overlap x or y. */
osp_status osp_cuda_gated_add_layernorm(void *x, const void *y, osp_cuda_rows gate,
                                        const void *weight, const void *bias,
                                        osp_dtype param_dtype, osp_cuda_rows shift,
                                        osp_cuda_rows scale, float eps, void *normed,
                                        osp_dtype dtype, int64_t B, int64_t N, int64_t C);
/* x [B, N, heads, D] in place: RMSNorm over heads·D with weight, then RoPE as
 * osp_cuda_rope_apply. */
osp_status osp_cuda_rmsnorm_rope(void *x, osp_dtype x_dtype, const void *weight,
                                 osp_dtype param_dtype, float eps, const float *cos_table,
                                 const float *sin_table, int64_t table_batch_stride, int64_t B,
                                 int64_t N, int64_t heads, int64_t D);
/* dst row i = x + y · gate at source row r = index[i] (gate row (r / N) mod Bm; zeros where
 * index[i] < 0), for `rows` destination rows of C values of dtype; x is left as it was: the
 * gated residual add and the row gather of a layout change in one pass. */
osp_status osp_cuda_gated_add_gather(const void *x, const void *y, osp_cuda_rows gate, int64_t N,
                                     const int32_t *index, void *dst, osp_dtype dtype,
                                     int64_t rows, int64_t C);

/* ---- Channel-first videos (conv.cu, channels.cu): the ops of src/ops/conv.h ----------------- */

/* A 3D convolution's sizes, as osp_cpu_conv3d_shape (cpu/conv.h): x [B, Cin, T, H, W] behind
 * history [B, Cin, Th, H, W], weights [Cout, Cin, kt, kh, kw], y [B, Cout, To, Ho, Wo]. */
typedef struct {
  int64_t batch, in_channels, out_channels;
  int64_t history_frames, frames, height, width;
  int64_t kernel[3], stride[3], pad_before[3];
  int64_t upsample;
  int64_t out_frames, out_height, out_width;
} osp_cuda_conv3d_shape;

/* y = conv(x behind history) + bias, as osp_cpu_conv3d computes it. Two ways:
 *   cuDNN (where the build found it: osp_cuda_conv3d_uses_cudnn): x, w and y bf16 (cuDNN 9 has
 *     no engine for an f32 y from bf16 operands) and a kernel larger than 1×1×1; x behind history, read ×2 upsampled, is staged contiguous into scratch
 *     (osp_cuda_conv3d_staged_bytes; none where x is that input already), convolved by cuDNN with
 *     f32 accumulation, then the bias added;
 *   else per output frame, bands of whole output rows are unfolded into scratch (im2col, in w's
 *     dtype; as many rows as scratch_bytes holds, at least one) and multiplied by the weights
 *     [Cout, K] through cuBLASLt with f32 accumulation, straight into y (channel-first). scratch
 *     NULL: x is read in place as the columns (a pointwise convolution with x in w's dtype).
 * x and history share x_dtype; w, bias (or NULL) and y each have their own. y must not overlap
 * the inputs. */
osp_status osp_cuda_conv3d(const void *x, const void *history, osp_dtype x_dtype, const void *w,
                           osp_dtype w_dtype, const void *bias, osp_dtype bias_dtype, void *y,
                           osp_dtype y_dtype, const osp_cuda_conv3d_shape *s, void *scratch,
                           size_t scratch_bytes);
bool osp_cuda_conv3d_uses_cudnn(osp_dtype x_dtype, osp_dtype w_dtype, osp_dtype y_dtype,
                                const osp_cuda_conv3d_shape *s);
size_t osp_cuda_conv3d_staged_bytes(const osp_cuda_conv3d_shape *s);

/* Over x [B, C, S] (y may be x; per-channel vectors of param_dtype), as cpu/conv.h:
 * rmsnorm:     y = x / max(‖x[b, :, s]‖₂, 1e-12) · √C · gamma[c] + bias[c] (bias may be NULL),
 *              then SiLU where silu is set (y = v / (1 + e^(−v)));
 * normalize:   y = (x − mean[c]) · inv_std[c];
 * denormalize: y = x / inv_std[c] + mean[c]. */
osp_status osp_cuda_channel_rmsnorm(const void *x, osp_dtype x_dtype, const void *gamma,
                                    const void *bias, osp_dtype param_dtype, bool silu, void *y,
                                    osp_dtype y_dtype, int64_t B, int64_t C, int64_t S);
osp_status osp_cuda_channel_normalize(const void *x, osp_dtype x_dtype, const void *mean,
                                      const void *inv_std, osp_dtype param_dtype, bool inverse,
                                      void *y, osp_dtype y_dtype, int64_t B, int64_t C, int64_t S);

/* y = clamp(x, lo, hi) over n values, NaN kept; y may be x. */
osp_status osp_cuda_clamp(const void *x, osp_dtype x_dtype, float lo, float hi, void *y,
                          osp_dtype y_dtype, int64_t n);

/* A box copy between two contiguous arrays of one dtype (elem_bytes 2 or 4) and `ndim` ≤ 8
 * dimensions, as osp_cpu_copy_region. */
osp_status osp_cuda_copy_region(const void *src, const int64_t *src_shape,
                                const int64_t *src_offset, void *dst, const int64_t *dst_shape,
                                const int64_t *dst_offset, const int64_t *size, int ndim,
                                size_t elem_bytes);

/* y [B, N, M] = x [B, M, N] transposed per batch row, each side its own dtype. */
osp_status osp_cuda_transpose(const void *x, osp_dtype x_dtype, void *y, osp_dtype y_dtype,
                              int64_t B, int64_t M, int64_t N);

/* ---- Backward kernels (grad.h's ops; beside their forwards, the sums in reduce.cu) ---------- */

/* As the CPU backend's backwards (cpu/cpu.h), every gradient accumulated (d += contribution) and
 * absent where its pointer is NULL. Mixed precision, as autocast trains: the activations and their
 * gradients of one call share `dtype` (bf16 or f32), and so does linear's weight; the other
 * weights and tables keep their own dtype; the gradients of parameters and of table rows are f32.
 * f32 arithmetic throughout. Sums over rows are deterministic: a fixed two-stage reduction in the
 * backend's scratch (reduce.cuh), no atomics, the same bits on every run. */

/* y = x·wᵀ + bias through cuBLASLt (f32 accumulation, beta = 1 onto the gradients):
 * dx [M, K] += dy·w; dw [N, K] (f32) += dyᵀ·x; dbias [N] (f32) += Σ_rows dy. */
osp_status osp_cuda_linear_backward(const void *x, const void *w, const void *dy, osp_dtype dtype,
                                    void *dx, float *dw, float *dbias, int64_t M, int64_t N,
                                    int64_t K);

/* Row-wise over [rows, C], the formulas of grad.h: weight (param_dtype) NULL for a LayerNorm
 * without affine (then dweight and dbias NULL); dweight, dbias [C] f32. */
osp_status osp_cuda_layernorm_backward(const void *x, const void *weight, osp_dtype param_dtype,
                                       float eps, const void *dy, void *dx, osp_dtype dtype,
                                       float *dweight, float *dbias, int64_t rows, int64_t C);
osp_status osp_cuda_rmsnorm_backward(const void *x, const void *weight, osp_dtype param_dtype,
                                     float eps, const void *dy, void *dx, osp_dtype dtype,
                                     float *dweight, int64_t rows, int64_t C);

/* dx += dy · f'(x) over n values; dx apart from x and dy. */
osp_status osp_cuda_gelu_tanh_backward(const void *x, const void *dy, void *dx, osp_dtype dtype,
                                       int64_t n);
osp_status osp_cuda_silu_backward(const void *x, const void *dy, void *dx, osp_dtype dtype,
                                  int64_t n);

/* A [Bm, C] f32 gradient that may be a view into a larger table (as osp_cuda_rows). */
typedef struct {
  float *data;
  int64_t row_stride;
  int64_t rows; /* Bm */
} osp_cuda_grad_rows;

/* x, dy, dx [B, N, C] (dtype); batch row b uses table row b mod Bm:
 * modulate   dx += dy·(1 + scale); dshift += Σ_{b ≡ r, n} dy; dscale += Σ_{b ≡ r, n} dy·x.
 * gated add  (dx the gradient of x_out) dy += dx·gate (dx without a gate); dgate += Σ dx·y. */
osp_status osp_cuda_modulate_backward(const void *x, osp_cuda_rows scale, const void *dy, void *dx,
                                      osp_dtype dtype, osp_cuda_grad_rows dshift,
                                      osp_cuda_grad_rows dscale, int64_t B, int64_t N, int64_t C);
osp_status osp_cuda_gated_add_backward(const void *dx, const void *y, osp_cuda_rows gate, void *dy,
                                       osp_dtype dtype, osp_cuda_grad_rows dgate, int64_t B,
                                       int64_t N, int64_t C);

/* grad += dy summed over every dimension where grad_shape is 1 and shape is not: dy contiguous
 * [shape] (ndim ≤ 8), grad at grad_stride (the last stride 1 where its size is not 1); grad f32,
 * or dy's dtype where nothing is summed. */
osp_status osp_cuda_broadcast_backward(const void *dy, osp_dtype dy_dtype, int ndim,
                                       const int64_t *shape, void *grad, osp_dtype grad_dtype,
                                       const int64_t *grad_shape, const int64_t *grad_stride);

/* dsrc row index[i] += ddst row i for every index[i] ≥ 0 (rows of C values of dtype); the
 * non-negative indices are distinct, so no row has two writers. */
osp_status osp_cuda_gather_rows_backward(const void *ddst, const int32_t *index, void *dsrc,
                                         osp_dtype dtype, int64_t rows, int64_t C);

/* Rotates the interleaved pairs of dx [B, N, heads, D] in place by −θ, the tables as
 * osp_cuda_rope_apply. */
osp_status osp_cuda_rope_apply_backward(void *dx, osp_dtype dtype, const float *cos_table,
                                        const float *sin_table, int64_t table_batch_stride,
                                        int64_t B, int64_t N, int64_t heads, int64_t D);

/* dlatents += the inverse of osp_cuda_patchify applied to dpatches; dtokens += the inverse of
 * osp_cuda_unpatchify applied to dout. Pure movement, as their forwards: each side has its own
 * dtype (the DiT's velocity gradient is f32, its tokens' bf16). */
osp_status osp_cuda_patchify_backward(const void *dpatches, osp_dtype dpatches_dtype,
                                      osp_cuda_video video, void *dlatents,
                                      osp_dtype dlatents_dtype);
osp_status osp_cuda_unpatchify_backward(const void *dout, osp_dtype dout_dtype,
                                        osp_cuda_video video, void *dtokens,
                                        osp_dtype dtokens_dtype);

/* ---- Optimizer (optim.cu): the per-element work of ops/optim.h -------------------------------- */

/* One AdamW update of n f32 values, cpu/optim.h's osp_cpu_adamw_step in the same float32
 * operations (the same bits). */
osp_status osp_cuda_adamw_step(float *param, const float *grad, float *m, float *v, int64_t n,
                               osp_cpu_adamw_factors factors);
/* *sum = Σ x², in double, in an order fixed by n (not the CPU's order). */
osp_status osp_cuda_sum_of_squares(const void *x, osp_dtype dtype, int64_t n, double *sum);
/* x ← x·factor */
osp_status osp_cuda_scale(void *x, osp_dtype dtype, float factor, int64_t n);
/* x ← lerp(x, end, weight) as osp_cpu_lerp computes it (the same bits). */
osp_status osp_cuda_lerp(float *x, const float *end, float weight, int64_t n);

/* ---- Attention (attention.cu: a FlashAttention-3-style kernel of our own; its backward) ------ */

typedef struct {
  int64_t batch;     /* B: query batch */
  int64_t kv_batch;  /* Bk: key/value batch, divides B; query row b uses key row b mod Bk */
  int64_t queries;   /* Nq */
  int64_t keys;      /* Nk */
  int64_t heads;
  int64_t head_dim;  /* D */
} osp_cuda_attention_shape;

/* out = softmax(q·kᵀ·scale + mask) · v per (batch, head), bf16 in and out, f32 softmax and
 * accumulation: q, out [B, Nq, heads, D]; k, v [Bk, Nk, heads, D]; key_mask NULL or u8 [B, Nk]
 * (1 = attend). A query with every key masked gets 0. lse NULL, or f32 [B, heads, Nq] to keep
 * each query's log Σ_j e^(s_j) over its unmasked keys (−inf where every key is masked) for the
 * backward; asking for it costs one store per query. out and lse must not overlap the inputs.
 * Fails with OSP_ERR_UNSUPPORTED for a head_dim the kernels do not cover (the message says
 * which ones they do). */
osp_status osp_cuda_attention(const void *q, const void *k, const void *v,
                              const uint8_t *key_mask, float scale, void *out, float *lse,
                              osp_cuda_attention_shape shape);

/* The gradients of osp_cuda_attention (attention_backward.cu), as osp_cpu_attention_backward
 * defines them: dq += scale·dS·k; dk += scale·dSᵀ·q, dv += Pᵀ·dout, summed over the query rows
 * b ≡ their row mod Bk; P = e^(s − lse) recomputed block by block, dS = P ∘ (dout·vᵀ − δ),
 * δ = Σ_d dout·out. q, k, v, out, dout bf16; lse f32 [B, heads, Nq] from osp_cuda_attention;
 * dq, dk, dv bf16 or f32 each (its own dtype), or NULL where not wanted, accumulated in f32 and
 * rounded once when added. Deterministic (no atomics): the same bits on every run. Masked keys
 * and queries whose keys are all masked get no gradient. scratch: 16-byte aligned, at least
 * osp_cuda_attention_backward_scratch_bytes of the shape. Refuses a head_dim the kernels do not
 * cover as osp_cuda_attention does. */
size_t osp_cuda_attention_backward_scratch_bytes(int64_t batch, int64_t queries, int64_t heads);
osp_status osp_cuda_attention_backward(const void *q, const void *k, const void *v,
                                       const uint8_t *key_mask, float scale, const void *out,
                                       const float *lse, const void *dout, void *dq,
                                       osp_dtype dq_dtype, void *dk, osp_dtype dk_dtype, void *dv,
                                       osp_dtype dv_dtype, void *scratch,
                                       osp_cuda_attention_shape shape);

/* ---- Text encoder (umT5: elementwise.cu, text_encoder.cu) ------------------------------- */

/* y = gelu_tanh(a) ⊙ b over n values of one dtype; y may be a or b. */
osp_status osp_cuda_gelu_tanh_mul(const void *a, const void *b, void *y, osp_dtype dtype, int64_t n);

/* T5's bucket of a relative distance n = key − query, as the CPU computes it (its float32 logs
 * found once on the host, so both devices agree exactly): |n| itself below `exact`, else exact plus
 * the number of thresholds ≤ |n|; plus `half` where n > 0. */
enum { OSP_CUDA_MAX_BUCKET_THRESHOLDS = 64 };
typedef struct {
  int64_t exact, half;
  int thresholds;
  int64_t threshold[OSP_CUDA_MAX_BUCKET_THRESHOLDS];
} osp_cuda_bucket_rule;

/* bias [heads, queries, keys] f32 = table [buckets, heads] f32 at bucket(j − i). */
osp_status osp_cuda_relative_position_bias(const float *table, int64_t heads, int64_t queries, int64_t keys,
                                           const osp_cuda_bucket_rule *rule, float *bias);

/* osp_cuda_attention with an f32 bias [heads, Nq, Nk] added to the scaled scores (fa2_kernel with
 * the bias per tile; bf16, head_dim 32, 64 or 128, 16-byte aligned; no lse). */
osp_status osp_cuda_flash_attention_biased(const void *q, const void *k, const void *v, const uint8_t *key_mask,
                                           const float *bias, float scale, void *out, osp_cuda_attention_shape shape);

/* out = softmax(q·kᵀ·scale + bias[h] + mask)·v, q and out [B, Nq, H, D], k and v [B, Nk, H, D] in
 * `dtype`, bias f32 [H, Nq, Nk], key_mask u8 [B, Nk] (1 = a real key) or NULL; f32 arithmetic.
 * bf16 at head_dim 32, 64 or 128 (umT5-XXL's 64) runs osp_cuda_flash_attention_biased; any other
 * size or dtype a plain kernel for prompts: every score of a few query rows in shared memory
 * (fails clearly past ~96 KiB). */
osp_status osp_cuda_attention_biased(const void *q, const void *k, const void *v, const uint8_t *key_mask,
                                     const float *bias, float scale, void *out, osp_dtype dtype, int64_t B,
                                     int64_t Nq, int64_t Nk, int64_t H, int64_t D);

#ifdef __cplusplus
}
#endif
#endif
