/* The CPU backend: float32 kernels on raw pointers and sizes. They trust their caller (src/ops/
 * checks every operand first) and never fail; row-wise kernels are OpenMP-parallel over rows and
 * matrix products go through OpenBLAS. Arrays are contiguous and row-major unless a parameter
 * names a stride (counted in elements). */
#ifndef OSP_CPU_CPU_H
#define OSP_CPU_CPU_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"

/* y[M, N] = x[M, K] · w[N, K]ᵀ + bias[N]; bias may be NULL. y must not overlap the inputs. */
void osp_cpu_linear(const float *x, const float *w, const float *bias, float *y, int64_t M,
                    int64_t N, int64_t K);

/* Row-wise over [rows, C]; y may be x. LayerNorm's weight and bias are both NULL (no affine) or
 * both [C]; RMSNorm's weight is [C].
 * LayerNorm: y = (x − mean) / sqrt(var + eps) · weight + bias, biased variance.
 * RMSNorm:   y = x / sqrt(mean(x²) + eps) · weight. */
void osp_cpu_layernorm(const float *x, const float *weight, const float *bias, float eps, float *y,
                       int64_t rows, int64_t C);
void osp_cpu_rmsnorm(const float *x, const float *weight, float eps, float *y, int64_t rows,
                     int64_t C);

/* Element-wise over n values; y may be x. */
void osp_cpu_gelu_tanh(const float *x, float *y, int64_t n);
void osp_cpu_silu(const float *x, float *y, int64_t n);
/* HiF8 QDQ of n elements of f32 or bf16 storage (ops.h, osp_hif8_quantize). */
void osp_cpu_hif8_quantize(const void *x, osp_dtype dtype, void *y, int64_t n, float scale_max);

/* dst[i, :] = src[index[i], :] for rows of C values, or zeros where index[i] < 0; every index is
 * below src's row count. dst must not overlap src. With AVX-512, dst is written around the cache
 * (non-temporal stores): the kernel is meant for tensors larger than the cache. */
void osp_cpu_gather_rows(const float *src, const int32_t *index, float *dst, int64_t rows,
                         int64_t C);

/* A [Bm, C] operand that may be a view into a larger table: row b starts at data + b·row_stride
 * and its C values are adjacent. Batch row b of x [B, N, C] uses row b mod Bm (Bm divides B). */
typedef struct {
  const float *data;
  int64_t row_stride;
  int64_t rows; /* Bm */
} osp_cpu_rows;

/* x, y [B, N, C]: y = x · (1 + scale[b mod Bm]) + shift[b mod Bm]. y may be x. */
void osp_cpu_modulate(const float *x, osp_cpu_rows shift, osp_cpu_rows scale, float *y, int64_t B,
                      int64_t N, int64_t C);
/* x, y [B, N, C]: x += y · gate[b mod Bm]; gate.data NULL means x += y. */
void osp_cpu_gated_add(float *x, const float *y, osp_cpu_rows gate, int64_t B, int64_t N,
                       int64_t C);
/* dst row i = x + y · gate at source row r = index[i] of x, y [B, N, C] (gate row (r / N) mod Bm;
 * zeros where index[i] < 0), for `rows` destination rows: osp_cpu_gated_add and
 * osp_cpu_gather_rows in one pass, x left as it was. dst must not overlap x or y. */
void osp_cpu_gated_add_gather(const float *x, const float *y, osp_cpu_rows gate, int64_t N,
                              const int32_t *index, float *dst, int64_t rows, int64_t C);

/* Wan's 3D RoPE tables (see osp_rope_tables in ops.h): cos, sin [T·H·W, head_dim/2]. */
void osp_cpu_rope_tables(int T, int H, int W, int head_dim, float *cos_table, float *sin_table);
/* The same tables at listed coordinates: positions [tokens, 3] holds each token's (t, h, w); a row
 * with t < 0 is padding, and its angles are 0 (cos 1, sin 0). */
void osp_cpu_rope_tables_at(const int32_t *positions, int64_t tokens, int head_dim,
                            float *cos_table, float *sin_table);
/* Rotates the interleaved pairs of x [B, N, heads, D] in place by the angles of cos, sin
 * [Bt, N, D/2]; table_batch_stride is 0 when every batch row shares one table, N·D/2 when Bt = B. */
void osp_cpu_rope_apply(float *x, const float *cos_table, const float *sin_table,
                        int64_t table_batch_stride, int64_t B, int64_t N, int64_t heads, int64_t D);

typedef struct {
  int64_t batch;     /* B: query batch */
  int64_t kv_batch;  /* Bk: key/value batch, divides B; query row b uses key row b mod Bk */
  int64_t queries;   /* Nq */
  int64_t keys;      /* Nk */
  int64_t heads;
  int64_t head_dim;  /* D */
} osp_cpu_attention_shape;

/* out = softmax(q·kᵀ·scale + mask) · v per (batch, head): q, out [B, Nq, heads, D];
 * k, v [Bk, Nk, heads, D]; key_mask NULL or [B, Nk] (1 = attend). A query with every key masked
 * gets 0. lse NULL or [B, heads, Nq]: log Σ_j e^(s_j) over the unmasked keys, −inf where every key
 * is masked. out and lse must not overlap the inputs. scratch holds
 * osp_cpu_attention_scratch_bytes(), asked for by the calling thread (it depends on the OpenMP
 * thread count). */
size_t osp_cpu_attention_scratch_bytes(void);
void osp_cpu_attention(const float *q, const float *k, const float *v, const uint8_t *key_mask,
                       float scale, float *out, float *lse, osp_cpu_attention_shape shape,
                       float *scratch);

/* osp_cpu_attention with an additive bias: softmax(q·kᵀ·scale + bias[h] + mask)·v, bias
 * [heads, Nq, Nk] shared by every batch row (T5's relative position bias). No lse. */
void osp_cpu_attention_biased(const float *q, const float *k, const float *v,
                              const uint8_t *key_mask, const float *bias, float scale, float *out,
                              osp_cpu_attention_shape shape, float *scratch);

/* The gradients of osp_cpu_attention, given its out and lse and dout = ∂loss/∂out [B, Nq, heads,
 * D], recomputing P = e^(s − lse) block by block: dq += dS·k·scale [B, Nq, heads, D];
 * dk += dSᵀ·q·scale and dv += Pᵀ·dout [Bk, Nk, heads, D], summed over the query rows b ≡ their row
 * mod Bk; dS = P ∘ (dout·vᵀ − δ), δ = Σ_d dout·out. A NULL gradient is skipped. Deterministic:
 * the same bits on every run and thread count. The gradients must not overlap the inputs or each
 * other. scratch holds osp_cpu_attention_backward_scratch_bytes(), asked for by the calling
 * thread. */
size_t osp_cpu_attention_backward_scratch_bytes(void);
void osp_cpu_attention_backward(const float *q, const float *k, const float *v,
                                const uint8_t *key_mask, float scale, const float *out,
                                const float *lse, const float *dout, float *dq, float *dk,
                                float *dv, osp_cpu_attention_shape shape, float *scratch);

/* A batch of videos [B, channels, frames, height, width] cut into patches of
 * patch[0] × patch[1] × patch[2] (frames × height × width); each size is a multiple of its
 * patch. */
typedef struct {
  int64_t batch, channels, frames, height, width;
  int64_t patch[3];
} osp_cpu_video;

/* latents [B, C, F, H, W] → patches [B, N, C·pt·ph·pw], feature ((c·pt + kt)·ph + kh)·pw + kw. */
void osp_cpu_patchify(const float *latents, osp_cpu_video video, float *patches);
/* tokens [B, N, pt·ph·pw·C], feature ((kt·ph + kh)·pw + kw)·C + c → out [B, C, F, H, W]. */
void osp_cpu_unpatchify(const float *tokens, osp_cpu_video video, float *out);

/* t [B] → out [B, D]: [cos(t·f_j), sin(t·f_j)] for j < D/2, f_j = 10000^(−j/(D/2)), in float64. */
void osp_cpu_timestep_embedding(const float *t, float *out, int64_t B, int64_t D);

/* ---- Backward kernels (src/ops/grad.h): each ADDS its contribution to the gradients it is given
 * (grad += ...), and a NULL gradient is skipped. Deterministic without atomics, the same bits on
 * every run and thread count: sums over rows (dweight, dbias, dshift, dscale, dgate, a broadcast)
 * have one owner per element, which adds its terms in double in a fixed order, and the linear's
 * products are sgemms over tiles fixed by the sizes. Gradients must not overlap the inputs or
 * each other. */

/* A [Bm, C] gradient that may be a view into a larger table, laid out as osp_cpu_rows. */
typedef struct {
  float *data;
  int64_t row_stride;
  int64_t rows; /* Bm */
} osp_cpu_grad_rows;

/* grad += a·b summed over every dimension where grad has size 1 and a does not (b NULL: a alone).
 * a, b contiguous [shape] of ndim dimensions; grad [grad_shape], each size 1 or shape's, at
 * strides grad_stride. The backward of any broadcast, and the row sums of the kernels below. */
void osp_cpu_broadcast_backward(int ndim, const int64_t *shape, const float *a, const float *b,
                                float *grad, const int64_t *grad_shape, const int64_t *grad_stride);

/* y[M, N] = x[M, K]·w[N, K]ᵀ + bias: dx += dy·w [M, K]; dw += dyᵀ·x [N, K]; dbias += Σ_rows dy. */
void osp_cpu_linear_backward(const float *x, const float *w, const float *dy, float *dx, float *dw,
                             float *dbias, int64_t M, int64_t N, int64_t K);

/* Row-wise over [rows, C], as the forwards: x̂ = (x − mean)·rstd (RMSNorm: x·r), g = dy·weight
 * (LayerNorm without affine: weight NULL, g = dy, dweight and dbias NULL).
 * LayerNorm: dx += rstd·(g − mean(g) − x̂·mean(g·x̂)); dweight += Σ_rows dy·x̂; dbias += Σ_rows dy.
 * RMSNorm:   dx += r·(g − x̂·mean(g·x̂)); dweight += Σ_rows dy·x̂. */
void osp_cpu_layernorm_backward(const float *x, const float *weight, float eps, const float *dy,
                                float *dx, float *dweight, float *dbias, int64_t rows, int64_t C);
void osp_cpu_rmsnorm_backward(const float *x, const float *weight, float eps, const float *dy,
                              float *dx, float *dweight, int64_t rows, int64_t C);

/* Element-wise over n values: dx += dy·f'(x). dx must not overlap x or dy. */
void osp_cpu_gelu_tanh_backward(const float *x, const float *dy, float *dx, int64_t n);
void osp_cpu_silu_backward(const float *x, const float *dy, float *dx, int64_t n);

/* x, dy, dx [B, N, C]; batch row b uses table row b mod Bm, as the forwards.
 * modulate:  dx += dy·(1 + scale); dshift += Σ_{b ≡ r, n} dy; dscale += Σ_{b ≡ r, n} dy·x.
 * gated add: given dx = ∂loss/∂x_out, dy += dx·gate (gate.data NULL: dy += dx);
 *            dgate += Σ_{b ≡ r, n} dx·y. */
void osp_cpu_modulate_backward(const float *x, osp_cpu_rows scale, const float *dy, float *dx,
                               osp_cpu_grad_rows dshift, osp_cpu_grad_rows dscale, int64_t B,
                               int64_t N, int64_t C);
void osp_cpu_gated_add_backward(const float *dx, const float *y, osp_cpu_rows gate, float *dy,
                                osp_cpu_grad_rows dgate, int64_t B, int64_t N, int64_t C);

/* dsrc[index[i], :] += ddst[i, :] for every i with index[i] ≥ 0; those indices are distinct. */
void osp_cpu_gather_rows_backward(const float *ddst, const int32_t *index, float *dsrc,
                                  int64_t rows, int64_t C);

/* Rotates the interleaved pairs of dx [B, N, heads, D] in place by −θ, the tables as
 * osp_cpu_rope_apply's: (d₀, d₁) ← (d₀·cos + d₁·sin, d₁·cos − d₀·sin). */
void osp_cpu_rope_apply_backward(float *dx, const float *cos_table, const float *sin_table,
                                 int64_t table_batch_stride, int64_t B, int64_t N, int64_t heads,
                                 int64_t D);

/* The inverse maps of osp_cpu_patchify and osp_cpu_unpatchify, adding on:
 * dlatents [B, C, F, H, W] += dpatches moved back from patchify's layout;
 * dtokens [B, N, pt·ph·pw·C] += dout [B, C, F, H, W] moved into unpatchify's token layout. */
void osp_cpu_patchify_backward(const float *dpatches, osp_cpu_video video, float *dlatents);
void osp_cpu_unpatchify_backward(const float *dout, osp_cpu_video video, float *dtokens);

/* ---- Text encoder (umT5): bf16 weights read in place, the gated FFN, relative positions ---- */

/* osp_cpu_linear with a bf16 weight w [N, K] (raw bf16 bits): each thread converts a tile of
 * OSP_CPU_BF16_TILE_ROWS rows of w into its part of scratch right before that tile's sgemm, so
 * the weight stays bf16 in memory. scratch holds osp_cpu_linear_bf16_scratch_floats(K) floats,
 * asked for by the calling thread. */
enum { OSP_CPU_BF16_TILE_ROWS = 64 };
size_t osp_cpu_linear_bf16_scratch_floats(int64_t K);
void osp_cpu_linear_bf16(const float *x, const uint16_t *w, const float *bias, float *y, int64_t M,
                         int64_t N, int64_t K, float *scratch);

/* osp_cpu_gather_rows from a bf16 table (raw bf16 bits) into f32 rows. */
void osp_cpu_gather_rows_bf16(const uint16_t *src, const int32_t *index, float *dst, int64_t rows,
                              int64_t C);

/* y = gelu_tanh(a) · b over n values; y may be a or b. */
void osp_cpu_gelu_tanh_mul(const float *a, const float *b, float *y, int64_t n);

/* bias[h, i, j] = table[bucket(j − i), h], table [buckets, heads], bias [heads, Nq, Nk], with T5's
 * bidirectional bucket of a relative position (see src/cpu/position_bias.c). */
/* The bucket of a relative position rel = key − query, bidirectional: half the buckets (B/2) for
 * rel > 0, half for rel ≤ 0. Within a half, with E = B/4 exact buckets and n = |rel|: n itself for
 * n < E, else E + ⌊ln(n/E) / ln(max_distance/E) · (B/2 − E)⌋, at most B/2 − 1. */
int64_t osp_cpu_relative_bucket(int64_t rel, int64_t buckets, int64_t max_distance);
void osp_cpu_relative_position_bias(const float *table, int64_t buckets, int64_t max_distance,
                                    float *bias, int64_t heads, int64_t queries, int64_t keys);

#endif
