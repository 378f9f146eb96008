/* The 3D convolution op: operands and geometry checked, then the CPU kernel (src/cpu/conv.c) or
 * the CUDA one (src/cuda/conv.cu). */
#include <stdbool.h>
#include <stdio.h>

#include "core/status.h"
#include "cpu/conv.h"
#include "ops/check.h"
#include "ops/conv.h"

/* One band of im2col columns: on the CPU f32, on CUDA in the weights' dtype and small enough that
 * the product finds the band just written still in L2 (50 MiB on an H100). */
enum { CPU_BAND_BYTES = 16 << 20, CUDA_BAND_BYTES = 24 << 20 };

static const char axis_names[3] = {'t', 'h', 'w'};

static osp_status check_geometry(const char *op, const osp_conv3d_geometry *g) {
  if (!g) return osp_fail(OSP_ERR_ARGUMENT, "%s: geometry: missing (NULL)", op);
  for (int d = 0; d < 3; d++) {
    if (g->stride[d] < 1)
      return osp_fail(OSP_ERR_ARGUMENT, "%s: geometry: stride along %c must be at least 1, found %d", op,
                      axis_names[d], g->stride[d]);
    if (g->pad[d][0] < 0 || g->pad[d][1] < 0)
      return osp_fail(OSP_ERR_ARGUMENT, "%s: geometry: padding along %c must be >= 0, found (%d, %d)", op,
                      axis_names[d], g->pad[d][0], g->pad[d][1]);
  }
  if (g->upsample != 1 && g->upsample != 2)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: geometry: upsample must be 1 or 2, found %d", op, g->upsample);
  return OSP_OK;
}

/* The kernel's view of the operands (shapes only: the tensors may have no data yet). */
static osp_cpu_conv3d_shape kernel_shape(const osp_tensor *x, const osp_tensor *history,
                                         const osp_tensor *w, const osp_conv3d_geometry *g) {
  osp_cpu_conv3d_shape s = {
      .batch = x->shape[0], .in_channels = x->shape[1], .out_channels = w->shape[0],
      .history_frames = history ? history->shape[2] : 0, .frames = x->shape[2],
      .height = x->shape[3], .width = x->shape[4], .upsample = g->upsample};
  const int64_t extent[3] = {s.history_frames + s.frames, s.height * g->upsample, s.width * g->upsample};
  int64_t *out[3] = {&s.out_frames, &s.out_height, &s.out_width};
  for (int d = 0; d < 3; d++) {
    s.kernel[d] = w->shape[2 + d];
    s.stride[d] = g->stride[d];
    s.pad_before[d] = g->pad[d][0];
    const int64_t span = extent[d] + g->pad[d][0] + g->pad[d][1] - s.kernel[d];
    *out[d] = span < 0 ? 0 : span / s.stride[d] + 1;
  }
  return s;
}

osp_status osp_conv3d_output_shape(const osp_tensor *x, const osp_tensor *history,
                                   const osp_tensor *w, const osp_conv3d_geometry *g,
                                   int64_t shape[5]) {
  static const char op[] = "osp_conv3d";
  OSP_TRY(check_geometry(op, g));
  char xs[160], ws[160];
  if (!x || !w || x->ndim != 5 || w->ndim != 5 || w->shape[1] != x->shape[1])
    return osp_fail(OSP_ERR_SHAPE, "%s: expected x [B, Cin, T, H, W] and w [Cout, Cin, kt, kh, kw], found x %s, w %s",
                    op, x ? osp_shape_string(x, xs, sizeof xs) : "NULL", w ? osp_shape_string(w, ws, sizeof ws) : "NULL");
  const osp_cpu_conv3d_shape s = kernel_shape(x, history, w, g);
  const int64_t out[3] = {s.out_frames, s.out_height, s.out_width};
  for (int d = 0; d < 3; d++)
    if (out[d] < 1)
      return osp_fail(OSP_ERR_SHAPE, "%s: the input %s%s is smaller along %c than the kernel %s with its padding",
                      op, osp_shape_string(x, xs, sizeof xs), history ? " (with its history)" : "",
                      axis_names[d], osp_shape_string(w, ws, sizeof ws));
  const int64_t result[5] = {s.batch, s.out_channels, s.out_frames, s.out_height, s.out_width};
  for (int d = 0; d < 5; d++) shape[d] = result[d];
  return OSP_OK;
}

#ifdef OSP_HAVE_CUDA
static osp_cuda_conv3d_shape cuda_shape(const osp_cpu_conv3d_shape *s) {
  osp_cuda_conv3d_shape c = {
      .batch = s->batch, .in_channels = s->in_channels, .out_channels = s->out_channels,
      .history_frames = s->history_frames, .frames = s->frames, .height = s->height, .width = s->width,
      .upsample = s->upsample, .out_frames = s->out_frames, .out_height = s->out_height,
      .out_width = s->out_width};
  for (int d = 0; d < 3; d++) {
    c.kernel[d] = s->kernel[d];
    c.stride[d] = s->stride[d];
    c.pad_before[d] = s->pad_before[d];
  }
  return c;
}
#endif

/* Bytes of one im2col band: as many whole output rows as fit in the device's target, at least
 * one, each of K·Wo columns in the dtype the product reads (f32 on the CPU, w's on CUDA); 0 where
 * the input frames are the columns themselves (pointwise, x already in that dtype). */
static size_t band_bytes(const osp_cpu_conv3d_shape *s, osp_device device, osp_dtype x_dtype,
                         osp_dtype w_dtype) {
  if (osp_cpu_conv3d_is_pointwise(s) && x_dtype == w_dtype) return 0;
  const bool cuda = device == OSP_CUDA;
  const size_t row = (size_t)osp_cpu_conv3d_row_floats(s) * (cuda ? osp_dtype_size(w_dtype) : sizeof(float));
  size_t rows = (cuda ? CUDA_BAND_BYTES : CPU_BAND_BYTES) / row;
  if (rows < 1) rows = 1;
  if (rows > (size_t)s->out_height) rows = (size_t)s->out_height;
  return rows * row;
}

/* The scratch of a convolution, decided here alone: the im2col band, and on CUDA with bf16 x and w
 * the input cuDNN needs staged if that is more (y's dtype, not known here, picks the way: cuDNN
 * for a bf16 y where the build has it, osp_cuda_conv3d_uses_cudnn). */
static size_t scratch_need(const osp_cpu_conv3d_shape *s, osp_device device, osp_dtype x_dtype, osp_dtype w_dtype) {
  size_t need = band_bytes(s, device, x_dtype, w_dtype);
#ifdef OSP_HAVE_CUDA
  const osp_cuda_conv3d_shape c = cuda_shape(s);
  if (device == OSP_CUDA && osp_cuda_conv3d_uses_cudnn(x_dtype, w_dtype, OSP_BF16, &c)) {
    const size_t staged = osp_cuda_conv3d_staged_bytes(&c);
    if (staged > need) need = staged;
  }
#endif
  return need;
}

size_t osp_conv3d_scratch_bytes(const osp_tensor *x, const osp_tensor *history, const osp_tensor *w,
                                const osp_conv3d_geometry *geometry) {
  const osp_cpu_conv3d_shape s = kernel_shape(x, history, w, geometry);
  return scratch_need(&s, x->device, x->dtype, w->dtype);
}


static osp_status check_operands(ops_call *call, const osp_tensor *x, const osp_tensor *history,
                                 const osp_tensor *w, const osp_tensor *bias, const osp_tensor *y) {
  OSP_TRY(ops_check_float(call, "x", x, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_shape(call, "x", x, 5, (const int64_t[]){-1, -1, -1, -1, -1}));
  OSP_TRY(ops_check_float(call, "w", w, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_shape(call, "w", w, 5, (const int64_t[]){-1, x->shape[1], -1, -1, -1}));
  if (history) {
    OSP_TRY(ops_check_float(call, "history", history, OPS_CONTIGUOUS));
    if (history->dtype != x->dtype)
      return osp_fail(OSP_ERR_SHAPE, "%s: history: expected x's dtype %s, found %s", call->op,
                      osp_dtype_name(x->dtype), osp_dtype_name(history->dtype));
    OSP_TRY(ops_check_shape(call, "history", history, 5,
                            (const int64_t[]){x->shape[0], x->shape[1], -1, x->shape[3], x->shape[4]}));
  }
  if (bias) {
    OSP_TRY(ops_check_float(call, "bias", bias, OPS_CONTIGUOUS));
    OSP_TRY(ops_check_shape(call, "bias", bias, 1, (const int64_t[]){w->shape[0]}));
  }
  OSP_TRY(ops_check_float(call, "y", y, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_disjoint(call, "y", y, "x", x));
  OSP_TRY(ops_check_disjoint(call, "y", y, "w", w));
  if (history) OSP_TRY(ops_check_disjoint(call, "y", y, "history", history));
  return OSP_OK;
}

osp_status osp_conv3d(const osp_tensor *x, const osp_tensor *history, const osp_tensor *w,
                      const osp_tensor *bias, const osp_conv3d_geometry *geometry,
                      const osp_tensor *scratch, osp_tensor *y) {
  ops_call call = OPS_CALL("osp_conv3d");
  OSP_TRY(check_operands(&call, x, history, w, bias, y));
  int64_t shape[5];
  OSP_TRY(osp_conv3d_output_shape(x, history, w, geometry, shape));
  OSP_TRY(ops_check_shape(&call, "y", y, 5, shape));
  const osp_cpu_conv3d_shape s = kernel_shape(x, history, w, geometry);
  const size_t need = scratch_need(&s, x->device, x->dtype, w->dtype);
  if (need) {
    OSP_TRY(ops_check_operand(&call, "scratch", scratch, OSP_U8, OPS_CONTIGUOUS));
    if (osp_tensor_bytes(scratch) < need)
      return osp_fail(OSP_ERR_SHAPE, "osp_conv3d: scratch: expected at least %zu bytes (osp_conv3d_scratch_bytes), found %zu",
                      need, osp_tensor_bytes(scratch));
  }
  OSP_TRY(ops_check_backend(&call));
#ifdef OSP_HAVE_CUDA
  if (call.device == OSP_CUDA) {
    const osp_cuda_conv3d_shape c = cuda_shape(&s);
    return osp_cuda_conv3d(x->data, history ? history->data : NULL, x->dtype, w->data, w->dtype,
                           bias ? bias->data : NULL, bias ? bias->dtype : OSP_F32, y->data, y->dtype, &c,
                           need ? scratch->data : NULL, need ? osp_tensor_bytes(scratch) : 0);
  }
#endif
  OSP_TRY(ops_check_blas_size(&call, "the kernel volume times Cin", w->shape[1] * w->shape[2] * w->shape[3] * w->shape[4]));
  OSP_TRY(ops_check_blas_size(&call, "y's row stride", s.out_frames * s.out_height * s.out_width));
  OSP_TRY(ops_check_blas_size(&call, "x's channel stride", (s.frames + s.history_frames) * s.height * s.width));
  osp_cpu_conv3d(x->data, history ? history->data : NULL, w->data, bias ? bias->data : NULL, y->data, &s,
                 need ? scratch->data : NULL, (int64_t)(need ? osp_tensor_bytes(scratch) / sizeof(float) : 0));
  return OSP_OK;
}
