/* The bf16 3D convolution through cuDNN (conv_cudnn.cu), for osp_cuda_conv3d (conv.cu): where
 * cuDNN is found (OSP_HAVE_CUDNN), every bf16 convolution larger than 1×1×1 runs here. Internal to
 * src/cuda/. */
#ifndef OSP_CUDA_CONV_CUDNN_CUH
#define OSP_CUDA_CONV_CUDNN_CUH

#include <stdint.h>

extern "C" {
#include "core/status.h"
}

/* y = conv(x, w), cross-correlation, f32 accumulation, no bias: contiguous bf16 NCDHW tensors x
 * [B, Cin, T, H, W], w [Cout, Cin, kt, kh, kw], y [B, Cout, T', H', W'] (cuDNN 9 has no engine on
 * Hopper for an f32 y from bf16 operands), with zero padding of pad_before and pad_after per axis
 * (t, h, w) and the strides. Plans are made once per shape. */
osp_status osp_cudnn_conv3d_bf16(const void *x, const int64_t x_dims[5], const void *w, const int64_t w_dims[5],
                                 void *y, const int64_t y_dims[5], const int64_t stride[3],
                                 const int64_t pad_before[3], const int64_t pad_after[3]);

#endif
