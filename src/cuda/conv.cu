/* The 3D convolution (osp_cuda_conv3d), as the CPU computes it (src/cpu/conv.c): for each output
 * frame, bands of whole output rows are unfolded into columns (im2col: one row per tap (c, i, j, k)
 * of the kernel, one column per output pixel, in the weights' dtype) and multiplied by the
 * weights W [Cout, K] in one cuBLASLt product per band, f32 accumulation, written straight into
 * the channel-first y. In cuBLASLt's column-major terms, with P the band's pixels:
 *   D [P × Cout] (ld = To·Ho·Wo, y's channel stride) = cols [P × K] (ld P) · W [K × Cout] (ld K)
 * so no operand is transposed or copied. A bias is written into y first and the products add onto
 * it (beta = 1). A pointwise convolution (1×1×1, stride 1, no padding or upsampling) with x in the
 * weights' dtype reads its input frames in place as the columns. */
#include "cuda/gemm.cuh"
#include "cuda/kernels.cuh"
#ifdef OSP_HAVE_CUDNN
#include "cuda/conv_cudnn.cuh"
#endif

namespace {

/* Where input frame ti (counted over history, then x) of channel 0 of batch row b starts, and the
 * stride between its channels; false outside [0, Th + T) (zeros). */
__host__ __device__ __forceinline__ bool input_frame(const void *x, const void *history,
                                                     const osp_cuda_conv3d_shape &s, int64_t b,
                                                     int64_t ti, const void **base, int64_t *first,
                                                     int64_t *channel_stride) {
  const int64_t plane = s.height * s.width, Th = s.history_frames;
  if (ti < 0 || ti >= Th + s.frames) return false;
  const bool past = ti < Th;
  const int64_t frames = past ? Th : s.frames;
  *base = past ? history : x;
  *channel_stride = frames * plane;
  *first = (b * s.in_channels * frames + (past ? ti : ti - Th)) * plane;
  return true;
}

/* cols [K, rows·Wo] for output rows [r0, r0 + rows) of output frame `to` of batch row b:
 * cols[k, r·Wo + w'] = in[c, to·st + i − pt, (r0 + r)·sh + j − ph, w'·sw + k' − pw] for tap
 * k = ((c·kt + i)·kh + j)·kw + k', read through the upsampling (pixel (h, w) of the ×2 image is
 * (h/2, w/2)), zero outside. Grid: y steps over taps, x over the band's pixels. */
struct unfold_args {
  const void *x, *history;
  osp_dtype x_dtype;
  void *cols;
  osp_dtype cols_dtype;
  osp_cuda_conv3d_shape s;
  int64_t b, to, r0, rows;
};

__global__ void unfold_kernel(const unfold_args a) {
  const osp_cuda_conv3d_shape &s = a.s;
  const int64_t kt = s.kernel[0], kh = s.kernel[1], kw = s.kernel[2];
  const int64_t K = s.in_channels * kt * kh * kw, Wo = s.out_width, N = a.rows * Wo;
  const int shift = s.upsample == 2;
  const int64_t height = s.height << shift, width = s.width << shift;
  for (int64_t k = blockIdx.y; k < K; k += gridDim.y) {
    const int64_t dw = k % kw, dh = k / kw % kh, dt = k / (kw * kh) % kt, c = k / (kw * kh * kt);
    const void *base = nullptr;
    int64_t first = 0, channel_stride = 0;
    const bool present = input_frame(a.x, a.history, s, a.b, a.to * s.stride[0] + dt - s.pad_before[0],
                                     &base, &first, &channel_stride);
    first += c * channel_stride;
    for (int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; p < N;
         p += (int64_t)gridDim.x * blockDim.x) {
      const int64_t r = p / Wo, wo = p - r * Wo;
      const int64_t hi = (a.r0 + r) * s.stride[1] + dh - s.pad_before[1];
      const int64_t wi = wo * s.stride[2] + dw - s.pad_before[2];
      float v = 0.0f;
      if (present && hi >= 0 && hi < height && wi >= 0 && wi < width)
        v = osp_load(base, a.x_dtype, first + (hi >> shift) * s.width + (wi >> shift));
      osp_put(a.cols, a.cols_dtype, k * N + p, v);
    }
  }
}

/* y[b, o, ...] = bias[o] over y [B, Cout, plane] (plane = To·Ho·Wo). */
__global__ void fill_bias_kernel(void *y, osp_dtype y_dtype, const void *bias, osp_dtype bias_dtype,
                                 int64_t Cout, int64_t plane, int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    osp_put(y, y_dtype, i, osp_load(bias, bias_dtype, i / plane % Cout));
}

size_t dtype_bytes(osp_dtype dtype) { return dtype == OSP_BF16 ? 2 : 4; }

/* D (+)= cols · W for `pixels` output pixels of one output frame: cols column-major [pixels × K]
 * with leading dimension ld_cols (its columns align_cols-byte aligned), D at y_at with y's channel
 * stride as its leading dimension (its columns align_y-byte aligned). */
osp_status multiply(const void *cols, int64_t ld_cols, unsigned align_cols, const void *w, osp_dtype w_dtype,
                    void *y_at, osp_dtype y_dtype, unsigned align_y, const osp_cuda_conv3d_shape &s,
                    int64_t pixels, float beta) {
  const int64_t K = s.in_channels * s.kernel[0] * s.kernel[1] * s.kernel[2];
  const int64_t ldy = s.out_frames * s.out_height * s.out_width;
  const osp_gemm_product of = {CUBLAS_OP_N, CUBLAS_OP_N, pixels, s.out_channels, K, ld_cols, K, ldy,
                               w_dtype, y_dtype, false, false, align_cols,
                               osp_gemm_alignment(w, K, dtype_bytes(w_dtype)), align_y};
  return osp_gemm("osp_cuda_conv3d", of, cols, w, nullptr, y_at, beta);
}

osp_status unfold(const void *x, const void *history, osp_dtype x_dtype, void *cols,
                  osp_dtype cols_dtype, const osp_cuda_conv3d_shape &s, int64_t b, int64_t to,
                  int64_t r0, int64_t rows) {
  const int threads = 256;
  const int64_t K = s.in_channels * s.kernel[0] * s.kernel[1] * s.kernel[2];
  const int64_t pixel_blocks = (rows * s.out_width + threads - 1) / threads;
  const dim3 grid((unsigned)(pixel_blocks < 64 ? pixel_blocks : 64), (unsigned)(K < 65535 ? K : 65535));
  unfold_kernel<<<grid, threads, 0, osp_cuda_stream()>>>(
      unfold_args{x, history, x_dtype, cols, cols_dtype, s, b, to, r0, rows});
  return osp_cuda_launched("osp_cuda_conv3d (unfold)");
}

/* The bytes of one unfolded output row: K taps of Wo pixels. */
size_t row_bytes(const osp_cuda_conv3d_shape &s, osp_dtype cols_dtype) {
  const int64_t K = s.in_channels * s.kernel[0] * s.kernel[1] * s.kernel[2];
  return (size_t)(K * s.out_width) * dtype_bytes(cols_dtype);
}

#ifdef OSP_HAVE_CUDNN
/* staged [B, Cin, Th + T, H·up, W·up] = x behind history, read ×up: the one contiguous input cuDNN
 * takes. */
__global__ void stage_kernel(const void *x, const void *history, osp_dtype dtype, void *staged,
                             const osp_cuda_conv3d_shape s, int64_t n) {
  const int shift = s.upsample == 2;
  const int64_t width = s.width << shift, height = s.height << shift, frames = s.history_frames + s.frames;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t w = i % width, h = i / width % height, t = i / (width * height) % frames;
    const int64_t c = i / (width * height * frames) % s.in_channels, b = i / (width * height * frames * s.in_channels);
    const void *base = nullptr;
    int64_t first = 0, channel_stride = 0;
    input_frame(x, history, s, b, t, &base, &first, &channel_stride);
    osp_put(staged, dtype, i, osp_load(base, dtype, first + c * channel_stride + (h >> shift) * s.width + (w >> shift)));
  }
}

/* y[b, o, ...] += bias[o] over y [B, Cout, plane]. */
__global__ void add_bias_kernel(void *y, osp_dtype y_dtype, const void *bias, osp_dtype bias_dtype, int64_t Cout,
                                int64_t plane, int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    osp_put(y, y_dtype, i, osp_load(y, y_dtype, i) + osp_load(bias, bias_dtype, i / plane % Cout));
}

/* The bytes of the input cuDNN needs staged: 0 where x is that input already. */
int64_t staged_bytes(const osp_cuda_conv3d_shape &s) {
  if (!s.history_frames && s.upsample == 1) return 0;
  return s.batch * s.in_channels * (s.history_frames + s.frames) * (s.height * s.upsample) * (s.width * s.upsample) * 2;
}

/* The bf16 convolution through cuDNN: input staged where it must be, then cuDNN with the padding
 * that gives y's size ((n' − 1)·stride + k − n − before after, at least 0), then the bias (a
 * second rounding where y is bf16, as PyTorch's convolutions add theirs). */
osp_status conv_cudnn(const void *x, const void *history, const void *w, const void *bias, osp_dtype bias_dtype,
                      void *y, const osp_cuda_conv3d_shape &s, void *scratch) {
  const void *input = x;
  if (staged_bytes(s)) {
    const int64_t n = staged_bytes(s) / 2;
    stage_kernel<<<osp_cuda_blocks(n, 256), 256, 0, osp_cuda_stream()>>>(x, history, OSP_BF16, scratch, s, n);
    OSP_TRY(osp_cuda_launched("osp_cuda_conv3d (staging for cuDNN)"));
    input = scratch;
  }
  const int64_t x_dims[5] = {s.batch, s.in_channels, s.history_frames + s.frames, s.height * s.upsample,
                             s.width * s.upsample};
  const int64_t w_dims[5] = {s.out_channels, s.in_channels, s.kernel[0], s.kernel[1], s.kernel[2]};
  const int64_t y_dims[5] = {s.batch, s.out_channels, s.out_frames, s.out_height, s.out_width};
  int64_t pad_after[3];
  for (int d = 0; d < 3; d++) {
    const int64_t after = (y_dims[2 + d] - 1) * s.stride[d] + s.kernel[d] - x_dims[2 + d] - s.pad_before[d];
    pad_after[d] = after > 0 ? after : 0;
  }
  OSP_TRY(osp_cudnn_conv3d_bf16(input, x_dims, w, w_dims, y, y_dims, s.stride, s.pad_before, pad_after));
  if (!bias) return OSP_OK;
  const int64_t plane = s.out_frames * s.out_height * s.out_width, n = s.batch * s.out_channels * plane;
  add_bias_kernel<<<osp_cuda_blocks(n, 256), 256, 0, osp_cuda_stream()>>>(y, OSP_BF16, bias, bias_dtype,
                                                                         s.out_channels, plane, n);
  return osp_cuda_launched("osp_cuda_conv3d (bias)");
}
#endif

}  // namespace

extern "C" size_t osp_cuda_conv3d_staged_bytes(const osp_cuda_conv3d_shape *s) {
#ifdef OSP_HAVE_CUDNN
  return (size_t)staged_bytes(*s);
#else
  (void)s;
  return 0;
#endif
}

extern "C" bool osp_cuda_conv3d_uses_cudnn(osp_dtype x_dtype, osp_dtype w_dtype, osp_dtype y_dtype,
                                           const osp_cuda_conv3d_shape *s) {
#ifdef OSP_HAVE_CUDNN
  const bool pointwise = s->kernel[0] * s->kernel[1] * s->kernel[2] == 1;
  return x_dtype == OSP_BF16 && w_dtype == OSP_BF16 && y_dtype == OSP_BF16 && !pointwise;
#else
  (void)x_dtype, (void)w_dtype, (void)y_dtype, (void)s;
  return false;
#endif
}

extern "C" osp_status osp_cuda_conv3d(const void *x, const void *history, osp_dtype x_dtype,
                                      const void *w, osp_dtype w_dtype, const void *bias,
                                      osp_dtype bias_dtype, void *y, osp_dtype y_dtype,
                                      const osp_cuda_conv3d_shape *shape, void *scratch,
                                      size_t scratch_bytes) {
  const osp_cuda_conv3d_shape &s = *shape;
#ifdef OSP_HAVE_CUDNN
  if (osp_cuda_conv3d_uses_cudnn(x_dtype, w_dtype, y_dtype, shape))
    return conv_cudnn(x, history, w, bias, bias_dtype, y, s, scratch);
#endif
  const int64_t M = s.out_channels, Ho = s.out_height, Wo = s.out_width, To = s.out_frames;
  const int64_t plane = To * Ho * Wo, ysize = dtype_bytes(y_dtype);
  if (bias) {
    const int64_t n = s.batch * M * plane;
    fill_bias_kernel<<<osp_cuda_blocks(n, 256), 256, 0, osp_cuda_stream()>>>(y, y_dtype, bias, bias_dtype,
                                                                           M, plane, n);
    OSP_TRY(osp_cuda_launched("osp_cuda_conv3d (bias)"));
  }
  const float beta = bias ? 1.0f : 0.0f;
  int64_t band = scratch ? (int64_t)(scratch_bytes / row_bytes(s, w_dtype)) : Ho;
  band = band < 1 ? 1 : band > Ho ? Ho : band;
  /* Every D of the call starts at y plus whole frames (Ho·Wo), channels (plane) and bands
   * (band·Wo): one alignment for all, so the call needs a plan per band height, not per offset
   * (the lowest set bit of an OR is the least of the lowest bits). */
  const unsigned align_y = osp_gemm_alignment(y, plane | Ho * Wo | band * Wo, ysize);
  for (int64_t b = 0; b < s.batch; b++)
    for (int64_t to = 0; to < To; to++) {
      char *y_frame = (char *)y + ((b * M * To + to) * Ho * Wo) * ysize;
      if (!scratch) { /* pointwise: input frame `to` is the columns, its channels ld apart */
        const void *base = nullptr;
        int64_t first = 0, ld = 0;
        input_frame(x, history, s, b, to, &base, &first, &ld);
        const size_t xsize = dtype_bytes(x_dtype);
        const char *cols = (const char *)base + first * (int64_t)xsize;
        const unsigned align_x = osp_gemm_alignment(base, ld | s.height * s.width, xsize); /* first: whole planes */
        OSP_TRY(multiply(cols, ld, align_x, w, w_dtype, y_frame, y_dtype, align_y, s, Ho * Wo, beta));
        continue;
      }
      for (int64_t r0 = 0; r0 < Ho; r0 += band) {
        const int64_t rows = Ho - r0 < band ? Ho - r0 : band;
        const unsigned align_cols = osp_gemm_alignment(scratch, rows * Wo, dtype_bytes(w_dtype));
        OSP_TRY(unfold(x, history, x_dtype, scratch, w_dtype, s, b, to, r0, rows));
        OSP_TRY(multiply(scratch, rows * Wo, align_cols, w, w_dtype, y_frame + r0 * Wo * ysize, y_dtype, align_y, s,
                         rows * Wo, beta));
      }
    }
  return OSP_OK;
}
