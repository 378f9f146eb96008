/* The CPU backend: float32 kernels on raw pointers and sizes. They trust their caller (src/ops/
 * checks every operand first) and never fail; row-wise kernels are OpenMP-parallel over rows and
 * matrix products go through OpenBLAS. Arrays are contiguous and row-major unless a parameter
 * names a stride (counted in elements). */
#ifndef OSP_CPU_CPU_H
#define OSP_CPU_CPU_H

#include <stddef.h>
#include <stdint.h>

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
 * gets 0. out must not overlap the inputs. scratch holds osp_cpu_attention_scratch_bytes(), asked
 * for by the calling thread (it depends on the OpenMP thread count). */
size_t osp_cpu_attention_scratch_bytes(void);
void osp_cpu_attention(const float *q, const float *k, const float *v, const uint8_t *key_mask,
                       float scale, float *out, osp_cpu_attention_shape shape, float *scratch);

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

#endif
