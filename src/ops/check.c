#include "ops/check.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/status.h"

static const char *device_name(osp_device device) { return device == OSP_CUDA ? "cuda" : "cpu"; }

static const char *stride_string(const osp_tensor *t, char *buf, size_t size) {
  osp_tensor strides = *t;
  for (int i = 0; i < t->ndim; i++) strides.shape[i] = t->stride[i];
  return osp_shape_string(&strides, buf, size);
}

static osp_status check_layout(const ops_call *call, const char *name, const osp_tensor *t,
                               ops_layout layout) {
  char buf[160];
  const int last = t->ndim - 1;
  if (layout == OPS_CONTIGUOUS && !osp_tensor_is_contiguous(t))
    return osp_fail(OSP_ERR_SHAPE, "%s: %s: expected a contiguous tensor, found strides %s",
                    call->op, name, stride_string(t, buf, sizeof buf));
  if (layout == OPS_STRIDED_ROWS && t->shape[last] != 1 && t->stride[last] != 1)
    return osp_fail(OSP_ERR_SHAPE,
                    "%s: %s: expected adjacent elements along the last dimension, found strides %s",
                    call->op, name, stride_string(t, buf, sizeof buf));
  return OSP_OK;
}

/* Present, on the call's device (the first operand fixes it), with no empty dimension and the
 * layout; the dtype is the caller's to check. */
osp_status ops_check_present(ops_call *call, const char *name, const osp_tensor *t,
                             ops_layout layout) {
  char buf[160];
  if (!t) return osp_fail(OSP_ERR_ARGUMENT, "%s: %s: missing (NULL)", call->op, name);
  if (!call->device_owner) {
    call->device_owner = name;
    call->device = t->device;
  } else if (t->device != call->device) {
    return osp_fail(OSP_ERR_ARGUMENT, "%s: %s: expected a %s tensor like %s, found %s", call->op,
                    name, device_name(call->device), call->device_owner, device_name(t->device));
  }
  if (t->ndim < 1)
    return osp_fail(OSP_ERR_SHAPE, "%s: %s: expected at least one dimension, found a scalar",
                    call->op, name);
  for (int i = 0; i < t->ndim; i++)
    if (t->shape[i] < 1)
      return osp_fail(OSP_ERR_SHAPE, "%s: %s: expected no empty dimension, found shape %s",
                      call->op, name, osp_shape_string(t, buf, sizeof buf));
  return check_layout(call, name, t, layout);
}

osp_status ops_check_operand(ops_call *call, const char *name, const osp_tensor *t, osp_dtype dtype,
                             ops_layout layout) {
  if (t && t->dtype != dtype)
    return osp_fail(OSP_ERR_SHAPE, "%s: %s: expected dtype %s, found %s", call->op, name,
                    osp_dtype_name(dtype), osp_dtype_name(t->dtype));
  return ops_check_present(call, name, t, layout);
}

osp_status ops_check_float(ops_call *call, const char *name, const osp_tensor *t, ops_layout layout) {
  OSP_TRY(ops_check_present(call, name, t, layout));
  if (t->dtype == OSP_F32 || (t->device == OSP_CUDA && t->dtype == OSP_BF16)) return OSP_OK;
  return osp_fail(OSP_ERR_SHAPE, "%s: %s: expected dtype %s on the %s, found %s", call->op, name,
                  t->device == OSP_CUDA ? "bf16 or f32" : "f32", device_name(t->device),
                  osp_dtype_name(t->dtype));
}

osp_status ops_check_cuda_dtype(const ops_call *call, const char *name, const osp_tensor *t,
                                osp_dtype dtype) {
  if (t->device != OSP_CUDA || t->dtype == dtype) return OSP_OK;
  return osp_fail(OSP_ERR_SHAPE, "%s: %s: expected dtype %s on cuda, found %s", call->op, name,
                  osp_dtype_name(dtype), osp_dtype_name(t->dtype));
}

osp_status ops_check_shape(const ops_call *call, const char *name, const osp_tensor *t, int ndim,
                           const int64_t *shape) {
  char what[160];
  snprintf(what, sizeof what, "%s: %s", call->op, name);
  return osp_check_shape(what, t, ndim, shape);
}

osp_status ops_check_shape_as(const ops_call *call, const char *name, const osp_tensor *t,
                              const osp_tensor *like, int64_t last) {
  int64_t shape[OSP_MAX_DIMS];
  for (int i = 0; i < like->ndim; i++) shape[i] = like->shape[i];
  shape[like->ndim - 1] = last;
  return ops_check_shape(call, name, t, like->ndim, shape);
}

/* The bytes from the first to one past the last element a tensor can reach (strides ≥ 0). */
static void byte_span(const osp_tensor *t, uintptr_t *begin, uintptr_t *end) {
  int64_t last = 0;
  for (int i = 0; i < t->ndim; i++) last += (t->shape[i] - 1) * t->stride[i];
  *begin = (uintptr_t)t->data;
  *end = *begin + (uintptr_t)(last + 1) * osp_dtype_size(t->dtype);
}

osp_status ops_check_disjoint(const ops_call *call, const char *name, const osp_tensor *t,
                              const char *other_name, const osp_tensor *other) {
  uintptr_t t_begin, t_end, other_begin, other_end;
  byte_span(t, &t_begin, &t_end);
  byte_span(other, &other_begin, &other_end);
  if (t_begin < other_end && other_begin < t_end)
    return osp_fail(OSP_ERR_ARGUMENT,
                    "%s: %s: expected memory apart from %s, found them overlapping", call->op, name,
                    other_name);
  return OSP_OK;
}

osp_status ops_check_in_place_or_disjoint(const ops_call *call, const char *name,
                                          const osp_tensor *t, const char *other_name,
                                          const osp_tensor *other) {
  if (t->data == other->data) return OSP_OK;
  return ops_check_disjoint(call, name, t, other_name, other);
}

osp_status ops_check_in_out(ops_call *call, const osp_tensor *x, const osp_tensor *y) {
  OSP_TRY(ops_check_float(call, "x", x, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_float(call, "y", y, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_shape_as(call, "y", y, x, x->shape[x->ndim - 1]));
  if (x->data == y->data && x->dtype != y->dtype)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: y: in place, but its dtype %s differs from x's %s",
                    call->op, osp_dtype_name(y->dtype), osp_dtype_name(x->dtype));
  return ops_check_in_place_or_disjoint(call, "y", y, "x", x);
}

osp_status ops_host_copy(const ops_call *call, const char *name, const osp_tensor *t, osp_tensor *host) {
  *host = *t;
  if (t->device == OSP_CPU) return OSP_OK;
  host->device = OSP_CPU;
  host->data = malloc(osp_tensor_bytes(t));
  if (!host->data) return osp_fail(OSP_ERR_MEMORY, "%s: %s: no host memory for a copy", call->op, name);
#ifdef OSP_HAVE_CUDA
  const osp_status status = osp_cuda_copy_to_host(host->data, t->data, osp_tensor_bytes(t));
#else
  const osp_status status = osp_fail(OSP_ERR_UNSUPPORTED, "%s: this build has no CUDA backend", call->op);
#endif
  if (status != OSP_OK) ops_release_host_copy(t, host);
  return status;
}

void ops_release_host_copy(const osp_tensor *t, osp_tensor *host) {
  if (host->data != t->data) free(host->data);
  host->data = NULL;
}

osp_status ops_check_blas_size(const ops_call *call, const char *what, int64_t size) {
  if (size > INT_MAX)
    return osp_fail(OSP_ERR_UNSUPPORTED, "%s: %s is %lld, more than OpenBLAS's int sizes allow",
                    call->op, what, (long long)size);
  return OSP_OK;
}

osp_status ops_check_backend(const ops_call *call) {
  if (call->device != OSP_CUDA) return OSP_OK;
#ifdef OSP_HAVE_CUDA
  return osp_cuda_init() == OSP_OK ? OSP_OK : osp_fail_context(OSP_ERR_UNSUPPORTED, "%s", call->op);
#else
  return osp_fail(OSP_ERR_UNSUPPORTED, "%s: this build has no CUDA backend", call->op);
#endif
}

osp_status ops_require_cpu(const ops_call *call) {
  if (call->device == OSP_CPU) return OSP_OK;
  return osp_fail(OSP_ERR_UNSUPPORTED, "%s: only CPU tensors for now; this op has no %s kernel yet",
                  call->op, device_name(call->device));
}

/* ---- Videos and their patch tokens ----------------------------------------------------------- */

osp_status ops_check_video(ops_call *call, const char *name, const osp_tensor *video,
                           const int patch[3]) {
  OSP_TRY(ops_check_float(call, name, video, OPS_CONTIGUOUS));
  OSP_TRY(ops_check_shape(call, name, video, 5, (const int64_t[]){-1, -1, -1, -1, -1}));
  if (patch[0] < 1 || patch[1] < 1 || patch[2] < 1)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: patch: expected positive sizes, found %dx%dx%d",
                    call->op, patch[0], patch[1], patch[2]);
  if (video->shape[2] % patch[0] || video->shape[3] % patch[1] || video->shape[4] % patch[2])
    return osp_fail(OSP_ERR_SHAPE,
                    "%s: %s: expected frames x height x width in multiples of the patch %dx%dx%d, "
                    "found %lldx%lldx%lld",
                    call->op, name, patch[0], patch[1], patch[2], (long long)video->shape[2],
                    (long long)video->shape[3], (long long)video->shape[4]);
  return OSP_OK;
}

osp_cpu_video ops_cpu_video(const osp_tensor *video, const int patch[3]) {
  return (osp_cpu_video){
      .batch = video->shape[0],
      .channels = video->shape[1],
      .frames = video->shape[2],
      .height = video->shape[3],
      .width = video->shape[4],
      .patch = {patch[0], patch[1], patch[2]},
  };
}

#ifdef OSP_HAVE_CUDA
osp_cuda_video ops_cuda_video(const osp_tensor *video, const int patch[3]) {
  const osp_cpu_video v = ops_cpu_video(video, patch);
  return (osp_cuda_video){
      .batch = v.batch,
      .channels = v.channels,
      .frames = v.frames,
      .height = v.height,
      .width = v.width,
      .patch = {v.patch[0], v.patch[1], v.patch[2]},
  };
}
#endif

osp_status ops_check_patch_tokens(ops_call *call, const char *name, const osp_tensor *tokens,
                                  const osp_cpu_video *video) {
  const int64_t *p = video->patch;
  const int64_t count = video->frames / p[0] * (video->height / p[1]) * (video->width / p[2]);
  OSP_TRY(ops_check_float(call, name, tokens, OPS_CONTIGUOUS));
  const int64_t features = video->channels * p[0] * p[1] * p[2];
  return ops_check_shape(call, name, tokens, 3, (const int64_t[]){video->batch, count, features});
}

/* ---- Gradients ------------------------------------------------------------------------------ */

void *ops_data_or_null(const osp_tensor *t) { return t ? t->data : NULL; }

osp_status ops_check_gradient(ops_call *call, const char *name, const osp_tensor *grad, int ndim,
                              const int64_t *shape, ops_layout layout) {
  if (!grad) return OSP_OK;
  OSP_TRY(ops_check_float(call, name, grad, layout));
  return ops_check_shape(call, name, grad, ndim, shape);
}

osp_status ops_check_param_gradient(ops_call *call, const char *name, const osp_tensor *grad,
                                    int ndim, const int64_t *shape, ops_layout layout) {
  OSP_TRY(ops_check_gradient(call, name, grad, ndim, shape, layout));
  return grad ? ops_check_cuda_dtype(call, name, grad, OSP_F32) : OSP_OK;
}

osp_status ops_check_same_dtype(const ops_call *call, const ops_operand *operands, int count) {
  const ops_operand *first = NULL;
  for (int i = 0; i < count; i++) {
    if (!operands[i].t) continue;
    if (!first) {
      first = &operands[i];
    } else if (operands[i].t->dtype != first->t->dtype) {
      return osp_fail(OSP_ERR_SHAPE, "%s: %s: expected %s's dtype %s, found %s", call->op,
                      operands[i].name, first->name, osp_dtype_name(first->t->dtype),
                      osp_dtype_name(operands[i].t->dtype));
    }
  }
  return OSP_OK;
}

osp_status ops_check_absent(const ops_call *call, const char *name, const osp_tensor *t,
                            const char *because) {
  if (!t) return OSP_OK;
  return osp_fail(OSP_ERR_ARGUMENT, "%s: %s: expected NULL (%s), found a tensor", call->op, name,
                  because);
}

/* A [R, C] view whose rows lie apart from each other: the rows of a table, not a whole block. */
static bool is_row_view(const osp_tensor *t) {
  return t->ndim == 2 && t->stride[1] == 1 && !osp_tensor_is_contiguous(t);
}

/* Whether a row of one [R, C] view meets a row of the other. */
static bool rows_meet(const osp_tensor *a, const osp_tensor *b) {
  const int64_t a_bytes = a->shape[1] * (int64_t)osp_dtype_size(a->dtype);
  const int64_t b_bytes = b->shape[1] * (int64_t)osp_dtype_size(b->dtype);
  for (int64_t i = 0; i < a->shape[0]; i++) {
    const uintptr_t a_begin = (uintptr_t)a->data + i * a->stride[0] * osp_dtype_size(a->dtype);
    for (int64_t j = 0; j < b->shape[0]; j++) {
      const uintptr_t b_begin = (uintptr_t)b->data + j * b->stride[0] * osp_dtype_size(b->dtype);
      if (a_begin < b_begin + b_bytes && b_begin < a_begin + a_bytes) return true;
    }
  }
  return false;
}

static osp_status check_apart(const ops_call *call, ops_operand grad, ops_operand other) {
  if (!is_row_view(grad.t) || !is_row_view(other.t))
    return ops_check_disjoint(call, grad.name, grad.t, other.name, other.t);
  if (rows_meet(grad.t, other.t))
    return osp_fail(OSP_ERR_ARGUMENT,
                    "%s: %s: expected memory apart from %s, found rows of them overlapping",
                    call->op, grad.name, other.name);
  return OSP_OK;
}

osp_status ops_check_gradients_apart(const ops_call *call, const ops_operand *grads,
                                     int grad_count, const ops_operand *inputs, int input_count) {
  for (int g = 0; g < grad_count; g++) {
    if (!grads[g].t) continue;
    for (int i = 0; i < input_count; i++)
      if (inputs[i].t) OSP_TRY(check_apart(call, grads[g], inputs[i]));
    for (int other = 0; other < g; other++)
      if (grads[other].t) OSP_TRY(check_apart(call, grads[g], grads[other]));
  }
  return OSP_OK;
}
