/* The 3D convolution on the CPU: for each output frame, bands of output rows are unfolded into
 * columns (im2col: one row per (c, i, j, k) of the kernel, one column per output pixel) and
 * multiplied by the weights [Cout, Cin·kt·kh·kw] in one sgemm that writes straight into y. */
#include <cblas.h>
#include <string.h>

#include "cpu/conv.h"

int64_t osp_cpu_conv3d_row_floats(const osp_cpu_conv3d_shape *s) {
  return s->in_channels * s->kernel[0] * s->kernel[1] * s->kernel[2] * s->out_width;
}

int osp_cpu_conv3d_is_pointwise(const osp_cpu_conv3d_shape *s) {
  for (int d = 0; d < 3; d++)
    if (s->kernel[d] != 1 || s->stride[d] != 1 || s->pad_before[d] != 0) return 0;
  return s->upsample == 1 && s->out_height == s->height && s->out_width == s->width;
}

/* Channel c of input frame ti, counted over history then x; NULL outside (zeros). The channel
 * stride of the tensor it lies in goes to *channel_stride. */
static const float *input_frame(const float *x, const float *history, const osp_cpu_conv3d_shape *s,
                                int64_t b, int64_t c, int64_t ti, int64_t *channel_stride) {
  const int64_t plane = s->height * s->width, Th = s->history_frames;
  if (ti < 0 || ti >= Th + s->frames) return NULL;
  if (ti < Th) {
    *channel_stride = Th * plane;
    return history + ((b * s->in_channels + c) * Th + ti) * plane;
  }
  *channel_stride = s->frames * plane;
  return x + ((b * s->in_channels + c) * s->frames + ti - Th) * plane;
}

/* One output row's taps of kernel column dw from input row `src` (in input pixels): out[w'] =
 * in[w'·sw + dw − pw], in read through the upsampling, zero outside. */
static void unfold_row(const float *src, float *out, const osp_cpu_conv3d_shape *s, int64_t dw) {
  const int64_t Wo = s->out_width, sw = s->stride[2], shift = s->upsample == 2;
  const int64_t first = dw - s->pad_before[2], width = s->width << shift;
  if (sw == 1 && !shift) { /* a shifted copy of the row, zeros at the edges */
    const int64_t lo = first < 0 ? -first : 0;
    int64_t hi = width - first;
    hi = hi > Wo ? Wo : hi < lo ? lo : hi;
    memset(out, 0, (size_t)lo * sizeof *out);
    memcpy(out + lo, src + lo + first, (size_t)(hi - lo) * sizeof *out);
    memset(out + hi, 0, (size_t)(Wo - hi) * sizeof *out);
    return;
  }
  for (int64_t wo = 0; wo < Wo; wo++) {
    const int64_t wi = wo * sw + first;
    out[wo] = wi >= 0 && wi < width ? src[wi >> shift] : 0.0f;
  }
}

/* cols [K, rows·Wo]: the taps of output rows [r0, r0 + rows) of output frame `to` of batch b. */
static void unfold_band(const float *x, const float *history, const osp_cpu_conv3d_shape *s,
                        int64_t b, int64_t to, int64_t r0, int64_t rows, float *cols) {
  const int64_t kt = s->kernel[0], kh = s->kernel[1], kw = s->kernel[2];
  const int64_t K = s->in_channels * kt * kh * kw, N = rows * s->out_width;
  const int64_t shift = s->upsample == 2, height = s->height << shift;
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < K; k++) {
    const int64_t dw = k % kw, dh = k / kw % kh, dt = k / (kw * kh) % kt, c = k / (kw * kh * kt);
    float *row = cols + k * N;
    int64_t unused;
    const float *frame = input_frame(x, history, s, b, c, to * s->stride[0] + dt - s->pad_before[0], &unused);
    if (!frame) {
      memset(row, 0, (size_t)N * sizeof *row);
      continue;
    }
    for (int64_t r = 0; r < rows; r++) {
      float *out = row + r * s->out_width;
      const int64_t hi = (r0 + r) * s->stride[1] + dh - s->pad_before[1];
      if (hi < 0 || hi >= height)
        memset(out, 0, (size_t)s->out_width * sizeof *out);
      else
        unfold_row(frame + (hi >> shift) * s->width, out, s, dw);
    }
  }
}

/* Y[o, p] = bias[o] for the N pixels of each output channel (rows ldy apart). */
static void fill_bias(float *y, const float *bias, int64_t M, int64_t N, int64_t ldy) {
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < M; o++)
    for (int64_t p = 0; p < N; p++) y[o * ldy + p] = bias[o];
}

/* Y[M, N] (rows ldy apart) = W[M, K] · cols[K, N] (rows ldc apart) + bias. */
static void multiply(const float *w, const float *cols, int64_t ldc, const float *bias, float *y,
                     int64_t ldy, int64_t M, int64_t N, int64_t K) {
  if (bias) fill_bias(y, bias, M, N, ldy);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)M, (blasint)N, (blasint)K, 1.0f,
              w, (blasint)K, cols, (blasint)ldc, bias ? 1.0f : 0.0f, y, (blasint)ldy);
}

void osp_cpu_conv3d(const float *x, const float *history, const float *w, const float *bias,
                    float *y, const osp_cpu_conv3d_shape *s, float *scratch,
                    int64_t scratch_floats) {
  const int64_t M = s->out_channels, K = s->in_channels * s->kernel[0] * s->kernel[1] * s->kernel[2];
  const int64_t Ho = s->out_height, Wo = s->out_width, ldy = s->out_frames * Ho * Wo;
  const int pointwise = osp_cpu_conv3d_is_pointwise(s);
  int64_t band = pointwise ? Ho : scratch_floats / osp_cpu_conv3d_row_floats(s);
  if (band > Ho) band = Ho;
  for (int64_t b = 0; b < s->batch; b++)
    for (int64_t to = 0; to < s->out_frames; to++) {
      float *y_frame = y + (b * M * s->out_frames + to) * Ho * Wo;
      if (pointwise) {
        int64_t ld = 0;
        const float *cols = input_frame(x, history, s, b, 0, to, &ld);
        multiply(w, cols, ld, bias, y_frame, ldy, M, Ho * Wo, K);
        continue;
      }
      for (int64_t r0 = 0; r0 < Ho; r0 += band) {
        const int64_t rows = Ho - r0 < band ? Ho - r0 : band;
        unfold_band(x, history, s, b, to, r0, rows, scratch);
        multiply(w, scratch, rows * Wo, bias, y_frame + r0 * Wo, ldy, M, rows * Wo, K);
      }
    }
}
