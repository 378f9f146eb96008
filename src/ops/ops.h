/* Ops: one function per operation. Each checks its tensors (dtype, device, shapes; the message
 * names the op and the operand) and dispatches to the backend of the tensors' device. All
 * operands of one call live on one device. Tensors are contiguous unless an op says otherwise.
 * The CPU backend computes in float32 (src/cpu/); the CUDA backend (src/cuda/) in bf16 or f32
 * storage with f32 arithmetic. Gradients of these ops: grad.h. */
#ifndef OSP_OPS_OPS_H
#define OSP_OPS_OPS_H

#include "core/arena.h"
#include "core/tensor.h"

/* y[M, N] = x[M, K] · w[N, K]ᵀ + bias[N]. x and y may have any leading dimensions (M = their
 * product); bias may be NULL. On the CPU the weight may also be bf16 (x, y, bias f32): it stays
 * bf16 in memory, each tile of its rows converted to f32 right before its product (in a scratch
 * of a few MiB allocated for the call), so the result is the f32 product with the bf16 values. */
osp_status osp_linear(const osp_tensor *x, const osp_tensor *w, const osp_tensor *bias, osp_tensor *y);

/* LayerNorm over the last dimension: y = (x − mean) / sqrt(var + eps) · weight + bias, the variance
 * biased (divided by C). weight and bias are both NULL (no affine) or both [C]. y may be x. */
osp_status osp_layernorm(const osp_tensor *x, const osp_tensor *weight, const osp_tensor *bias,
                         float eps, osp_tensor *y);

/* RMSNorm over the last dimension: y = x / sqrt(mean(x²) + eps) · weight (weight [C]). y may be x. */
osp_status osp_rmsnorm(const osp_tensor *x, const osp_tensor *weight, float eps, osp_tensor *y);

/* GELU, tanh approximation: y = ½x(1 + tanh(√(2/π)(x + 0.044715x³))). y may be x. */
osp_status osp_gelu_tanh(const osp_tensor *x, osp_tensor *y);
/* SiLU: y = x · sigmoid(x). y may be x. */
osp_status osp_silu(const osp_tensor *x, osp_tensor *y);

/* Row gather: dst[i, :] = src[index[i], :], or a row of zeros where index[i] < 0. On the CPU src
 * may be a bf16 table with f32 dst (an embedding kept as stored; the rows are converted). src and dst
 * are seen as rows of their last dimension C: a [B, N, C] tensor is B·N rows, row b·N + n.
 * index i32 [Rd] with every value below src's row count Rs (checked before any write; the message
 * names the first bad position and its value); dst has Rd rows of C, in any shape. dst must not
 * overlap src or index. Every Skiparse permutation is one gather: padding on entering the sparse
 * span, the switch between token-wise and group-wise, the crop on leaving it. */
osp_status osp_gather_rows(const osp_tensor *src, const osp_tensor *index, osp_tensor *dst);

/* Adaptive modulation: y[b, n, c] = x[b, n, c] · (1 + scale[b mod Bm, c]) + shift[b mod Bm, c].
 * x, y [B, N, C]; shift and scale [Bm, C] with Bm dividing B, either may be a strided view (a row
 * of a [Bm, 6, C] table has stride [6C, 1]). Bm = B gives each batch row its own; a Skiparse
 * layout of S samples has B = P²·S rows, row s·S + b holding subsequence s of sample b, and
 * Bm = S gives every subsequence its sample's row. y may be x. */
osp_status osp_modulate(const osp_tensor *x, const osp_tensor *shift, const osp_tensor *scale,
                        osp_tensor *y);

/* Gated residual: x[b, n, c] += y[b, n, c] · gate[b mod Bm, c]; gate NULL means a plain add.
 * x, y [B, N, C]; gate [Bm, C] with Bm dividing B (as in osp_modulate), may be a strided view. */
osp_status osp_gated_add(osp_tensor *x, const osp_tensor *y, const osp_tensor *gate);

/* y = a + b with broadcasting: a, b and y have the same number of dimensions, and a dimension of
 * size 1 in a or b stretches to y's size (the [1, 6, C] modulation table plus e0 [B, 6, C]).
 * a and b may be strided views; y is contiguous and may be a or b when shapes match. */
osp_status osp_add(const osp_tensor *a, const osp_tensor *b, osp_tensor *y);

/* Wan's 3D RoPE tables for a (T, H, W) grid of tokens (after patchify) and a head width D:
 * cos, sin [T·H·W, D/2], token n = (t·H + h)·W + w. Pair i < dt/2 rotates by t·ω, then h, then w,
 * with dt = D − 4⌊D/6⌋ and dh = dw = 2⌊D/6⌋ real dims per axis and ω_j = 10000^(−2j/d_axis)
 * for the axis of width d_axis. Angles are computed in float64. */
osp_status osp_rope_tables(int T, int H, int W, int head_dim, osp_tensor *cos, osp_tensor *sin);

/* The same tables for tokens in any order: positions i32 [M, 3] holds each token's (t, h, w) grid
 * coordinate, and row m of cos, sin [M, D/2] gets exactly the angles osp_rope_tables gives that
 * coordinate. A row with t < 0 is a padding token: angle 0 (cos 1, sin 0). In other rows h and w
 * must be ≥ 0 too (checked before any write). */
osp_status osp_rope_tables_at(const osp_tensor *positions, int head_dim, osp_tensor *cos,
                              osp_tensor *sin);

/* Rotates interleaved pairs of x [B, N, heads, D] in place:
 * (x₀, x₁) ← (x₀·cos − x₁·sin, x₀·sin + x₁·cos). cos, sin are [Bt, N, D/2] with Bt = 1 (all rows
 * share one table) or Bt = B, or [N, D/2] as osp_rope_tables makes them (shared, like Bt = 1);
 * the same angles apply to every head. */
osp_status osp_rope_apply(osp_tensor *x, const osp_tensor *cos, const osp_tensor *sin);

/* Multi-head attention, non-causal: out = softmax(q·kᵀ·scale + mask) · v, per head.
 * q [B, Nq, heads, D]; k, v [Bk, Nk, heads, D] with B a multiple of Bk (query row b attends key
 * row b mod Bk, so P² subsequences can share one context); key_mask NULL or u8 [B, Nk]
 * (1 = attend, 0 = masked). A query whose keys are all masked gets 0. out [B, Nq, heads, D].
 * Never materialises the Nq × Nk matrix: blocked, with an online softmax. scratch: see below. */
osp_status osp_attention(const osp_tensor *q, const osp_tensor *k, const osp_tensor *v,
                         const osp_tensor *key_mask, float scale, const osp_tensor *scratch,
                         osp_tensor *out);

/* The scratch osp_attention needs on a device, in bytes: a u8 tensor of at least this size, planned
 * with the other activations (on the CPU, one block of scores per thread; on CUDA none, and
 * scratch may be NULL). */
size_t osp_attention_scratch_bytes(osp_device device);

/* Patch embedding input: latents [B, Cin, F, H, W] → patches [B, N, Cin·pt·ph·pw] with
 * N = (F/pt)(H/ph)(W/pw), token n = (f·H' + h)·W' + w, and the patch vector in Conv3d weight
 * order (c, kt, kh, kw). F, H, W must be multiples of the patch. */
osp_status osp_patchify(const osp_tensor *latents, const int patch[3], osp_tensor *patches);

/* Head output back to a video: tokens [B, N, pt·ph·pw·Cout] with feature
 * o = ((kt·ph + kh)·pw + kw)·Cout + c → out [B, Cout, F, H, W]
 * (`b (f h w) (pt ph pw c) -> b c (f pt) (h ph) (w pw)`). */
osp_status osp_unpatchify(const osp_tensor *tokens, const int patch[3], osp_tensor *out);

/* Timestep sinusoid: t [B] → out [B, D], out[b] = [cos(t·f_0..f_{D/2−1}), sin(t·f_0..)],
 * f_j = 10000^(−j/(D/2)), computed in float64 (as the original Wan2.1 code does). */
osp_status osp_timestep_embedding(const osp_tensor *t, osp_tensor *out);

/* ---- Fused ops: one pass over the tokens where the block has two or three ------------------
 * Each equals the composition it names (operands checked as those ops check them; the CPU runs
 * exactly that composition); on CUDA one kernel keeps each row in registers between the steps. */

/* y = LN(x)·(1 + scale[b mod Bm]) + shift[b mod Bm]: osp_layernorm (no affine), then osp_modulate.
 * x, y [B, N, C]; y may be x. */
osp_status osp_layernorm_modulate(const osp_tensor *x, const osp_tensor *shift,
                                  const osp_tensor *scale, float eps, osp_tensor *y);

/* The residual step and the next norm: x += y·gate (osp_gated_add; gate NULL: x += y), then
 * normed = LN(x; weight, bias) (osp_layernorm; weight and bias both NULL: no affine), then, where
 * shift and scale are given (both or neither), normed = normed·(1 + scale) + shift (osp_modulate).
 * x, y, normed [B, N, C]; normed apart from x and y. */
osp_status osp_gated_add_layernorm(osp_tensor *x, const osp_tensor *y, const osp_tensor *gate,
                                   const osp_tensor *weight, const osp_tensor *bias,
                                   const osp_tensor *shift, const osp_tensor *scale, float eps,
                                   osp_tensor *normed);

/* q or k after its projection, in place: x [B, N, heads, D] gets RMSNorm over heads·D
 * (osp_rmsnorm, weight [heads·D]), then RoPE (osp_rope_apply with its tables). */
osp_status osp_rmsnorm_rope(osp_tensor *x, const osp_tensor *weight, float eps,
                            const osp_tensor *cos, const osp_tensor *sin);

/* y = GELU_tanh(x·wᵀ + bias): osp_linear, then osp_gelu_tanh (on CUDA in the matmul's epilogue). */
osp_status osp_linear_gelu_tanh(const osp_tensor *x, const osp_tensor *w, const osp_tensor *bias,
                                osp_tensor *y);

/* The residual step of a block whose successor runs in another layout: dst = gather(x + y·gate)
 * (osp_gated_add, then osp_gather_rows with index) in one pass, with x itself left as it was.
 * x, y [B, N, C] (gate as in osp_gated_add, NULL: no gate); index and dst as osp_gather_rows's
 * (src = x), dst apart from x, y and index. */
osp_status osp_gated_add_gather(const osp_tensor *x, const osp_tensor *y, const osp_tensor *gate,
                                const osp_tensor *index, osp_tensor *dst);

/* ---- Quantization --------------------------------------------------------------------------- */

/* HiF8 quantize-dequantize (quant/hif8.h's element rule) of every element of x (f32 or bf16,
 * contiguous; y like x, may be x):
 *   scale_max 0: the element rule alone, y = hif8(x);
 *   scale_max > 0: per-tensor absmax scaling (PAPER.md 7.3): amax = max(max|x|, 1e−8),
 *   s = scale_max/amax in float32, y = hif8(x·s)/s; for bf16 tensors the reference's sequence
 *   y = bf16(hif8(bf16(x·s))/s). Forward passes use 15, gradients 224. CPU and CUDA give the same bits. */
osp_status osp_hif8_quantize(const osp_tensor *x, float scale_max, osp_tensor *y);

/* ---- Memory, transfers and randomness on any device -------------------------------------- */

/* An arena of `bytes` on a device (host memory for the CPU); osp_arena_free gives it back. */
osp_status osp_device_arena(osp_arena *arena, const char *name, osp_device device, size_t bytes);

/* A host table (an index, a mask) moved into a device's arena: `table` is re-pointed there, and
 * its bytes are copied once the arena is real (not while it only measures). A table without
 * dimensions (unused) stays as it is. */
osp_status osp_arena_upload(osp_arena *arena, osp_tensor *table);

/* The dtype a device's kernels keep weights and activations in: f32 on the CPU, bf16 on CUDA
 * (whose kernels compute in f32 all the same). */
osp_dtype osp_device_dtype(osp_device device);

/* dst = src across devices where theirs differ: bytes as they are when the dtypes match (any
 * dtype: index tables, masks), converted between f32 and bf16 where they differ. Same shape,
 * both contiguous; dst must not overlap src. */
osp_status osp_copy(const osp_tensor *src, osp_tensor *dst);

/* dst = 0 (every byte zero), on any device, in any dtype; dst contiguous. */
osp_status osp_zero(osp_tensor *dst);

/* dst = scale · N(0, 1) samples of Philox stream (seed, stream): element i is element i of
 * osp_randn (core/rng.h), so a seed gives the same numbers on every device. */
osp_status osp_randn_fill(uint64_t seed, uint32_t stream, float scale, osp_tensor *dst);

/* Waits for the device's queued work; reports an asynchronous failure. No-op on the CPU. */
osp_status osp_device_synchronize(osp_device device);

/* The most memory this process has held on the device at once through osp_device_arena, in
 * bytes (0 for the CPU, whose arenas are counted by their owners). */
size_t osp_device_peak_bytes(osp_device device);

/* ---- Text encoder (umT5, PAPER.md 2) -------------------------------------------------------
 * On the CPU and CUDA (there: the bias and its table f32, the key batch equal to the query
 * batch). The encoder also uses osp_linear with bf16 weights and osp_gather_rows from a bf16
 * embedding (see above). */

/* y = GELU_tanh(a) ⊙ b element-wise: the gated-GELU FFN, a = h·wi_0ᵀ, b = h·wi_1ᵀ. a, b and y of
 * one shape; y may be a or b. */
osp_status osp_gelu_tanh_mul(const osp_tensor *a, const osp_tensor *b, osp_tensor *y);

/* T5's bidirectional relative position bias: bias[h, i, j] = table[bucket(j − i), h] for
 * table [buckets, heads] and bias [heads, Nq, Nk]. With B buckets, E = B/4 and n = |j − i|: the
 * bucket is (j > i ? B/2 : 0) + (n < E ? n : min(B/2 − 1, E + ⌊ln(n/E) / ln(max_distance/E) ·
 * (B/2 − E)⌋)), in float32 as transformers computes it. B even, ≥ 4; max_distance > E. */
osp_status osp_relative_position_bias(const osp_tensor *table, int max_distance, osp_tensor *bias);

/* osp_attention with an additive bias per head: out = softmax(q·kᵀ·scale + bias[h] + mask)·v,
 * bias f32 [heads, Nq, Nk] shared by every batch row (umT5: scale 1, bias from
 * osp_relative_position_bias). Operands, mask and scratch as osp_attention's. */
osp_status osp_attention_biased(const osp_tensor *q, const osp_tensor *k, const osp_tensor *v,
                                const osp_tensor *key_mask, const osp_tensor *bias, float scale,
                                const osp_tensor *scratch, osp_tensor *out);

#endif
