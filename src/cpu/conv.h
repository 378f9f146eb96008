/* CPU kernels of the channel-first video ops (src/ops/conv.h), float32, trusting their caller as
 * the kernels of cpu.h do. */
#ifndef OSP_CPU_CONV_H
#define OSP_CPU_CONV_H

#include <stdint.h>

/* A 3D convolution's sizes: x [B, Cin, T, H, W] behind history [B, Cin, Th, H, W], weights
 * [Cout, Cin, kt, kh, kw], y [B, Cout, To, Ho, Wo]; per axis (t, h, w) a kernel size, a stride and
 * the zeros before; upsample 1 or 2 reads H and W as if nearest-upsampled that many times. */
typedef struct {
  int64_t batch, in_channels, out_channels;
  int64_t history_frames, frames, height, width;
  int64_t kernel[3], stride[3], pad_before[3];
  int64_t upsample;
  int64_t out_frames, out_height, out_width;
} osp_cpu_conv3d_shape;

/* The im2col columns of one output row (floats): kernel volume · Cin · Wo. */
int64_t osp_cpu_conv3d_row_floats(const osp_cpu_conv3d_shape *s);
/* True when the convolution is 1×1×1 with stride 1, no padding and no upsampling: its input
 * frames are the columns themselves, and it needs no scratch. */
int osp_cpu_conv3d_is_pointwise(const osp_cpu_conv3d_shape *s);

/* y = conv(x behind history) + bias (bias may be NULL; history may be NULL when Th = 0). Per
 * output frame, bands of output rows are unfolded into scratch (scratch_floats of them, at least
 * one row's worth unless pointwise) and multiplied by the weights in one sgemm each. */
void osp_cpu_conv3d(const float *x, const float *history, const float *w, const float *bias,
                    float *y, const osp_cpu_conv3d_shape *s, float *scratch,
                    int64_t scratch_floats);

/* Over x [B, C, S] (y may be x):
 * rmsnorm:     y = x / max(‖x[b, :, s]‖₂, 1e-12) · √C · gamma[c] + bias[c] (bias may be NULL);
 * normalize:   y = (x − mean[c]) · inv_std[c];
 * denormalize: y = x / inv_std[c] + mean[c]. */
void osp_cpu_channel_rmsnorm(const float *x, const float *gamma, const float *bias, float *y,
                             int64_t B, int64_t C, int64_t S);
void osp_cpu_channel_normalize(const float *x, const float *mean, const float *inv_std, float *y,
                               int64_t B, int64_t C, int64_t S);
void osp_cpu_channel_denormalize(const float *x, const float *mean, const float *inv_std, float *y,
                                 int64_t B, int64_t C, int64_t S);

/* y = clamp(x, lo, hi) over n values, NaN kept; y may be x. */
void osp_cpu_clamp(const float *x, float lo, float hi, float *y, int64_t n);

/* Box copy between two contiguous tensors of `ndim` dimensions (shapes src_shape, dst_shape). */
void osp_cpu_copy_region(const float *src, const int64_t *src_shape, const int64_t *src_offset,
                         float *dst, const int64_t *dst_shape, const int64_t *dst_offset,
                         const int64_t *size, int ndim);

/* y [B, N, M] = x [B, M, N] transposed per batch row. */
void osp_cpu_transpose(const float *x, float *y, int64_t B, int64_t M, int64_t N);

#endif
