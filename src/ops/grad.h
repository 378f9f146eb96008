/* Gradients of the ops in ops.h: for each forward op, its backward. Given the forward's inputs (the
 * backward recomputes what it needs from them, as llm.c does) and dy = ∂loss/∂y, each adds its
 * contribution to the gradients of the inputs:
 *
 *   every gradient output is ACCUMULATED (d += contribution), as autograd accumulates .grad;
 *   the caller zeroes a gradient before its first contribution. A gradient output passed as NULL
 *   is not wanted and not computed.
 *
 * The one exception is osp_rope_apply_backward, whose forward works in place: it rotates the
 * gradient in place. Operands follow their forward op's rules (ops.h): same devices and shapes,
 * and a gradient has its tensor's shape (a strided [Bm, C] table row included).
 *
 * Dtypes. On the CPU everything is f32. On CUDA the backwards train in mixed precision, as
 * PyTorch's autocast does (osp_attention_backward states its own operands' dtypes below):
 *   - activations and their gradients (x, dy, dx, y, ...) are bf16 or f32, one dtype for all of
 *     them in one call; linear's weight has that dtype too (cuBLASLt multiplies matrices of one
 *     dtype), while the other weights and tables read (a norm's weight, scale, gate, cos, sin) keep
 *     their own;
 *   - gradients of parameters and of modulation tables (dweight, dbias, dshift, dscale, dgate, and
 *     osp_add_backward's da wherever it sums over a broadcast dimension) are always f32 and
 *     accumulate in f32; a da of dy's own shape (an activation's gradient) may have dy's dtype;
 *   - patchify's and unpatchify's backwards only move values, and each side may have its own
 *     dtype, as in their forwards.
 * Kernels compute in f32 and round once into a bf16 gradient. Sums over rows (dweight, dbias,
 * dshift, dscale, dgate, da) are deterministic on both devices, the same bits on every run: on
 * CUDA a fixed two-stage reduction (per-block partial sums, then a fixed-order sum) in a scratch
 * buffer the backend allocates once at initialisation, so these ops take no scratch argument. */
#ifndef OSP_OPS_GRAD_H
#define OSP_OPS_GRAD_H

#include "core/tensor.h"

/* y = x·wᵀ + bias: dx += dy·w [M, K]; dw += dyᵀ·x [N, K]; dbias += Σ_rows dy [N]. */
osp_status osp_linear_backward(const osp_tensor *x, const osp_tensor *w, const osp_tensor *dy,
                               osp_tensor *dx, osp_tensor *dw, osp_tensor *dbias);

/* y = x̂·weight + bias with x̂ = (x − mean)·rstd, rstd = 1/sqrt(var + eps), per row of C:
 *   dx += rstd · (g − mean(g) − x̂·mean(g·x̂)) with g = dy·weight (g = dy without affine);
 *   dweight += Σ_rows dy·x̂; dbias += Σ_rows dy. weight NULL: no affine (dweight, dbias NULL). */
osp_status osp_layernorm_backward(const osp_tensor *x, const osp_tensor *weight, float eps,
                                  const osp_tensor *dy, osp_tensor *dx, osp_tensor *dweight,
                                  osp_tensor *dbias);

/* y = x·r·weight with r = 1/sqrt(mean(x²) + eps), per row of C:
 *   dx += r · (g − x·r²·mean(g·x)) with g = dy·weight; dweight += Σ_rows dy·x·r. */
osp_status osp_rmsnorm_backward(const osp_tensor *x, const osp_tensor *weight, float eps,
                                const osp_tensor *dy, osp_tensor *dx, osp_tensor *dweight);

/* dx += dy · gelu_tanh'(x); dx += dy · silu'(x). dx must not overlap x or dy. */
osp_status osp_gelu_tanh_backward(const osp_tensor *x, const osp_tensor *dy, osp_tensor *dx);
osp_status osp_silu_backward(const osp_tensor *x, const osp_tensor *dy, osp_tensor *dx);

/* y = x·(1 + scale[b mod Bm]) + shift[b mod Bm]: dx += dy·(1 + scale);
 * dshift[r] += Σ_{b ≡ r mod Bm, n} dy[b, n]; dscale[r] += Σ_{b ≡ r, n} dy[b, n]·x[b, n].
 * dshift, dscale [Bm, C] may be strided views (rows of a [Bm, 6, C] gradient table). */
osp_status osp_modulate_backward(const osp_tensor *x, const osp_tensor *scale, const osp_tensor *dy,
                                 osp_tensor *dx, osp_tensor *dshift, osp_tensor *dscale);

/* x_out = x + y·gate[b mod Bm] (gate NULL: x + y). Given dx = ∂loss/∂x_out (which is also the
 * gradient of x, so nothing is written for x): dy += dx·gate; dgate[r] += Σ_{b ≡ r, n} dx·y. */
osp_status osp_gated_add_backward(const osp_tensor *dx, const osp_tensor *y, const osp_tensor *gate,
                                  osp_tensor *dy, osp_tensor *dgate);

/* y = a + b broadcast (osp_add): the gradient of one operand, da += dy summed over every dimension
 * where da has size 1 and dy does not. da may be a strided view. */
osp_status osp_add_backward(const osp_tensor *dy, osp_tensor *da);

/* dst[i] = src[index[i]]: dsrc[index[i]] += ddst[i] for every i with index[i] ≥ 0. The non-negative
 * entries of index must be distinct (every Skiparse table is a permutation with padding): checked
 * before any write, the message names the first repeated value. */
osp_status osp_gather_rows_backward(const osp_tensor *ddst, const osp_tensor *index,
                                    osp_tensor *dsrc);

/* osp_rope_apply rotates each pair by θ; its gradient rotates dx by −θ, in place:
 * (d₀, d₁) ← (d₀·cos + d₁·sin, −d₀·sin + d₁·cos). Same operands as osp_rope_apply. */
osp_status osp_rope_apply_backward(osp_tensor *dx, const osp_tensor *cos, const osp_tensor *sin);

/* osp_attention that also keeps, for the backward, the log-sum-exp of each query's scaled scores:
 * lse f32 [B, heads, Nq], lse = log Σ_j exp(s_j) over the unmasked keys (−inf where every key is
 * masked). Same operands, scratch and result as osp_attention (on CUDA the same kernel, which
 * then also stores one f32 per query). */
osp_status osp_attention_forward_lse(const osp_tensor *q, const osp_tensor *k, const osp_tensor *v,
                                     const osp_tensor *key_mask, float scale,
                                     const osp_tensor *scratch, osp_tensor *out, osp_tensor *lse);

/* The attention backward in the FlashAttention-2 style: the softmax is recomputed block by block
 * from q, k and lse (P = exp(s − lse)), never an Nq × Nk matrix. With δ_i = Σ_d dout·out:
 *   dv += Pᵀ·dout;  dS = P ∘ (dout·vᵀ − δ);  dq += dS·k·scale;  dk += dSᵀ·q·scale.
 * dk, dv [Bk, Nk, heads, D] sum over the query rows b ≡ their row mod Bk. Masked keys and fully
 * masked queries get no gradient. Deterministic on both devices: the same bits on every run.
 * On CUDA q, k, v, out and dout are bf16 (as the forward takes them) and lse f32; dq, dk and dv
 * may each be bf16 or f32: the kernels accumulate in f32 and round once, when they add to the
 * gradient (an f32 gradient keeps what a bf16 one would lose over many accumulations).
 * scratch: osp_attention_backward_scratch_bytes of q's shape (NULL if 0). */
osp_status osp_attention_backward(const osp_tensor *q, const osp_tensor *k, const osp_tensor *v,
                                  const osp_tensor *key_mask, float scale, const osp_tensor *out,
                                  const osp_tensor *lse, const osp_tensor *dout,
                                  const osp_tensor *scratch, osp_tensor *dq, osp_tensor *dk,
                                  osp_tensor *dv);
/* The bytes of scratch osp_attention_backward needs for q [B, Nq, heads, D] on a device: on the
 * CPU a pair of score blocks per thread (whatever the shape); on CUDA δ and lse·log2(e) of every
 * query, 8·B·heads·Nq bytes (Nq rounded up to 128). Planned with the other activations. */
size_t osp_attention_backward_scratch_bytes(osp_device device, const int64_t q_shape[4]);

/* The patch embedding's input layout: dlatents += the inverse of osp_patchify applied to dpatches;
 * the head's output layout: dtokens += osp_patchify-order gather of dout (the inverse of
 * osp_unpatchify). Both are permutations, so each is its forward's twin. */
osp_status osp_patchify_backward(const osp_tensor *dpatches, const int patch[3],
                                 osp_tensor *dlatents);
osp_status osp_unpatchify_backward(const osp_tensor *dout, const int patch[3], osp_tensor *dtokens);

#endif
