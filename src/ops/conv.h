/* Ops on channel-first videos [B, C, T, H, W], the layout of the Wan-VAE: the 3D convolution, the
 * norm over channels, the latent normalisation, region copies, transposes and the clamp. They
 * check their operands as the ops of ops.h do and run on the tensors' device: the CPU in f32
 * (src/cpu/conv.h), CUDA in bf16 or f32 storage with f32 arithmetic (src/cuda/conv.cu,
 * channels.cu); each operand keeps its own dtype there unless an op says otherwise. */
#ifndef OSP_OPS_CONV_H
#define OSP_OPS_CONV_H

#include "core/tensor.h"

/* How a convolution walks its input, per axis (t, h, w): `pad` zeros before and after, then a
 * stride. With upsample 2 the input is read as if nearest-neighbour upsampled ×2 in H and W
 * (x[.., h/2, w/2] at (h, w)) without that tensor being made; 1 reads it as it is. */
typedef struct {
  int stride[3];
  int pad[3][2];
  int upsample;
} osp_conv3d_geometry;

/* y[b, o, t', h', w'] = bias[o] + Σ_{c, i, j, k} w[o, c, i, j, k] · in[b, c, t'·st + i − pt,
 * h'·sh + j − ph, w'·sw + k − pw], zero outside the input, where the input is x [B, Cin, T, H, W]
 * with the frames of `history` [B, Cin, Th, H, W] (NULL: none) in front of its own: a causal
 * convolution's cache of the previous chunk's last frames. w [Cout, Cin, kt, kh, kw]; bias [Cout]
 * or NULL; y [B, Cout, T', H', W'] as osp_conv3d_output_shape gives it. scratch: u8 of at least
 * osp_conv3d_scratch_bytes (NULL where that is 0). y must not overlap the inputs. history has x's
 * dtype. On CUDA the product runs on tensor cores in w's dtype (x is converted as it is
 * unfolded), f32 accumulation, through cuBLASLt. */
osp_status osp_conv3d(const osp_tensor *x, const osp_tensor *history, const osp_tensor *w,
                      const osp_tensor *bias, const osp_conv3d_geometry *geometry,
                      const osp_tensor *scratch, osp_tensor *y);

/* y's shape for osp_conv3d: per axis n' = (n·up + pad_before + pad_after − k) / stride + 1, with
 * n = Th + T for time and up = 1 there. Fails where an axis has no output. */
osp_status osp_conv3d_output_shape(const osp_tensor *x, const osp_tensor *history,
                                   const osp_tensor *w, const osp_conv3d_geometry *geometry,
                                   int64_t shape[5]);

/* The scratch osp_conv3d needs for these operands: one band of output rows unfolded (im2col),
 * about 16 MiB (CPU, f32) or 24 MiB (CUDA, in w's dtype) and at least one row; 0 for a 1×1×1
 * convolution that reads its input directly (on CUDA where x has w's dtype). */
size_t osp_conv3d_scratch_bytes(const osp_tensor *x, const osp_tensor *history, const osp_tensor *w,
                                const osp_conv3d_geometry *geometry);

/* The RMS norm of the Wan-VAE over the channels of x [B, C, ...]:
 * y = x / max(‖x[b, :, s]‖₂, 1e-12) · √C · gamma[c] + bias[c] (F.normalize over dim 1, then the
 * scale). gamma [C]; bias [C] (gamma's dtype) or NULL. y may be x. */
osp_status osp_channel_rmsnorm(const osp_tensor *x, const osp_tensor *gamma, const osp_tensor *bias,
                               osp_tensor *y);

/* osp_channel_rmsnorm without a bias, then SiLU (y = v / (1 + e^(−v))): every residual block of
 * the Wan-VAE runs the two in turn. y may be x. */
osp_status osp_channel_rmsnorm_silu(const osp_tensor *x, const osp_tensor *gamma, osp_tensor *y);

/* Latent normalisation per channel of x [B, C, ...] with mean and inv_std [C] (inv_std = 1/std, as
 * Wan2.1 and diffusers keep it): normalize y = (x − mean) · inv_std, denormalize
 * y = x / inv_std + mean (not x·std + mean, which rounds differently). mean and inv_std share a
 * dtype. y may be x. */
osp_status osp_channel_normalize(const osp_tensor *x, const osp_tensor *mean,
                                 const osp_tensor *inv_std, osp_tensor *y);
osp_status osp_channel_denormalize(const osp_tensor *x, const osp_tensor *mean,
                                   const osp_tensor *inv_std, osp_tensor *y);

/* y = min(max(x, lo), hi) element by element, NaN kept (torch.clamp). y may be x. */
osp_status osp_clamp(const osp_tensor *x, float lo, float hi, osp_tensor *y);

/* Copies a box of `size` elements from src at src_offset to dst at dst_offset, per dimension;
 * src and dst have one number of dimensions (at most OSP_MAX_DIMS) and the box fits in both.
 * src and dst may be one tensor when the two boxes do not intersect. */
osp_status osp_copy_region(const osp_tensor *src, const int64_t *src_offset, osp_tensor *dst,
                           const int64_t *dst_offset, const int64_t *size);

/* y[b, n, m] = x[b, m, n]: x [B, M, N], y [B, N, M]; y apart from x. Channel-first to
 * channel-last and back ([B, C, S] ↔ [B, S, C]). */
osp_status osp_transpose(const osp_tensor *x, osp_tensor *y);

#endif
