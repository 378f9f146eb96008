#include "core/tensor.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/status.h"

osp_tensor osp_tensor_make(void *data, osp_dtype dtype, osp_device device, int ndim,
                           const int64_t *shape) {
  osp_tensor t = {.data = data, .dtype = dtype, .device = device, .ndim = ndim};
  int64_t stride = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    t.shape[i] = shape[i];
    t.stride[i] = stride;
    stride *= shape[i];
  }
  return t;
}

osp_tensor osp_tensor_slice(const osp_tensor *t, int64_t first, int64_t count) {
  osp_tensor part = *t;
  part.data = (char *)t->data + first * t->stride[0] * (int64_t)osp_dtype_size(t->dtype);
  part.shape[0] = count;
  return part;
}

int64_t osp_tensor_numel(const osp_tensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
  return n;
}

size_t osp_tensor_bytes(const osp_tensor *t) {
  return (size_t)osp_tensor_numel(t) * osp_dtype_size(t->dtype);
}

bool osp_tensor_is_contiguous(const osp_tensor *t) {
  int64_t stride = 1;
  for (int i = t->ndim - 1; i >= 0; i--) {
    if (t->shape[i] != 1 && t->stride[i] != stride) return false;
    stride *= t->shape[i];
  }
  return true;
}

bool osp_tensor_same_shape(const osp_tensor *a, const osp_tensor *b) {
  if (a->ndim != b->ndim) return false;
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i]) return false;
  return true;
}

int64_t osp_tensor_rows(const osp_tensor *t) {
  int64_t n = 1;
  for (int i = 0; i + 1 < t->ndim; i++) n *= t->shape[i];
  return n;
}

static const char *shape_string(int ndim, const int64_t *shape, char *buf, size_t size) {
  size_t at = 0;
  at += (size_t)snprintf(buf, size, "[");
  for (int i = 0; i < ndim && at < size; i++)
    at += (size_t)snprintf(buf + at, size - at, i ? ", %lld" : "%lld", (long long)shape[i]);
  if (at < size) snprintf(buf + at, size - at, "]");
  return buf;
}

const char *osp_shape_string(const osp_tensor *t, char *buf, size_t size) {
  return shape_string(t->ndim, t->shape, buf, size);
}

osp_status osp_tensor_reshape(const osp_tensor *t, int ndim, const int64_t *shape, osp_tensor *out) {
  char a[160], b[160];
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= shape[i];
  if (ndim > OSP_MAX_DIMS || n != osp_tensor_numel(t) || !osp_tensor_is_contiguous(t))
    return osp_fail(OSP_ERR_SHAPE, "cannot reshape %s to %s", osp_shape_string(t, a, sizeof a),
                    shape_string(ndim, shape, b, sizeof b));
  *out = osp_tensor_make(t->data, t->dtype, t->device, ndim, shape);
  return OSP_OK;
}

osp_status osp_check_shape(const char *what, const osp_tensor *t, int ndim, const int64_t *shape) {
  bool ok = t->ndim == ndim;
  for (int i = 0; ok && i < ndim; i++) ok = shape[i] < 0 || t->shape[i] == shape[i];
  if (ok) return OSP_OK;
  char want[160], got[160];
  size_t at = (size_t)snprintf(want, sizeof want, "[");
  for (int i = 0; i < ndim && at < sizeof want; i++) {
    if (shape[i] < 0)
      at += (size_t)snprintf(want + at, sizeof want - at, i ? ", *" : "*");
    else
      at += (size_t)snprintf(want + at, sizeof want - at, i ? ", %lld" : "%lld", (long long)shape[i]);
  }
  if (at < sizeof want) snprintf(want + at, sizeof want - at, "]");
  return osp_fail(OSP_ERR_SHAPE, "%s: expected shape %s, found %s", what, want,
                  osp_shape_string(t, got, sizeof got));
}

osp_status osp_check_f32_cpu(const char *what, const osp_tensor *t) {
  if (t->dtype != OSP_F32)
    return osp_fail(OSP_ERR_SHAPE, "%s: expected dtype f32, found %s", what, osp_dtype_name(t->dtype));
  if (t->device != OSP_CPU)
    return osp_fail(OSP_ERR_UNSUPPORTED, "%s: expected a CPU tensor", what);
  return OSP_OK;
}

osp_status osp_check_finite(const char *what, const osp_tensor *t) {
  OSP_TRY(osp_check_f32_cpu(what, t));
  const float *x = t->data;
  int64_t n = osp_tensor_numel(t);
  for (int64_t i = 0; i < n; i++)
    if (!isfinite(x[i]))
      return osp_fail(OSP_ERR_NUMERIC, "%s: element %lld is %s; expected finite values", what,
                      (long long)i, isnan(x[i]) ? "NaN" : "infinite");
  return OSP_OK;
}
