/* Element-wise kernels: activations, the row gather, modulation, gated residuals and the
 * broadcasting add (osp_cuda_gelu_tanh, osp_cuda_silu, osp_cuda_gather_rows, osp_cuda_modulate,
 * osp_cuda_gated_add, osp_cuda_add), and the backwards of all but the add (whose backward is a sum:
 * reduce.cu). All are memory-bound: they move 16 bytes per access where pointers and sizes allow,
 * and fall back to value-by-value access where they do not. */
#include "cuda/reduce.cuh"

namespace {

/* ---- Activations --------------------------------------------------------------------------- */

/* gelu(x) = ½x(1 + tanh u), u = √(2/π)(x + 0.044715x³), written as x / (1 + e^(−2u)) like the
 * CPU: one exponential, no cancellation for negative x. */
struct gelu_tanh_op {
  __device__ float operator()(float x) const {
    const float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
    return x / (1.0f + expf(-2.0f * u));
  }
};

/* silu(x) = x / (1 + e^(−x)) */
struct silu_op {
  __device__ float operator()(float x) const { return x / (1.0f + expf(-x)); }
};

/* σ(z) and 1 − σ(z), neither by a subtraction (as the CPU backward): with e = e^(−|z|) ≤ 1, the
 * larger one is 1/(1 + e) and the smaller e/(1 + e). */
__device__ __forceinline__ void sigmoid_pair(float z, float &sigmoid, float &complement) {
  const float e = expf(-fabsf(z));
  const float large = 1.0f / (1.0f + e), small = e * large;
  sigmoid = z >= 0.0f ? large : small;
  complement = z >= 0.0f ? small : large;
}

/* gelu(x) = x·σ(2u), so gelu'(x) = s·(1 + 2x(1 − s)·u') with s = σ(2u),
 * u' = √(2/π)(1 + 3·0.044715x²). */
struct gelu_tanh_derivative {
  __device__ float operator()(float x) const {
    const float sqrt_2_over_pi = 0.7978845608028654f, cubic = 0.044715f;
    float s, complement;
    sigmoid_pair(2.0f * sqrt_2_over_pi * (x + cubic * x * x * x), s, complement);
    const float du = sqrt_2_over_pi * (1.0f + 3.0f * cubic * x * x);
    return s * (1.0f + 2.0f * x * complement * du);
  }
};

/* silu'(x) = σ·(1 + x(1 − σ)) */
struct silu_derivative {
  __device__ float operator()(float x) const {
    float s, complement;
    sigmoid_pair(x, s, complement);
    return s * (1.0f + x * complement);
  }
};

/* dx[i] += dy[i] · f'(x[i]) */
template <class Derivative>
struct activation_grad_chunk {
  const void *x, *dy;
  void *dx;
  osp_dtype dtype;
  Derivative derivative;

  template <int W>
  __device__ void at(int64_t first) const {
    float v[W], d[W], g[W];
    osp_load_chunk<W>(x, dtype, first, v);
    osp_load_chunk<W>(dy, dtype, first, d);
    osp_load_chunk<W>(dx, dtype, first, g);
#pragma unroll
    for (int k = 0; k < W; k++) g[k] += d[k] * derivative(v[k]);
    osp_store_chunk<W>(dx, dtype, first, g);
  }
};

template <class Derivative>
osp_status activation_backward(const char *kernel, const void *x, const void *dy, void *dx,
                               osp_dtype dtype, int64_t n, Derivative derivative) {
  return osp_each_chunk(kernel, osp_aligned16(x) && osp_aligned16(dy) && osp_aligned16(dx), n,
                        activation_grad_chunk<Derivative>{x, dy, dx, dtype, derivative});
}

/* ---- Row gather ---------------------------------------------------------------------------- */

/* dst row i = src row index[i], zeros for a negative index, in units of U (16, 8, 4, 2 or 1
 * bytes: the widest that the row size and both pointers allow). A thread loads UNROLL units
 * before storing any, so several loads are in flight; loads and stores stream (evict first):
 * each row moves once, and a gather's tensors are far larger than L2. */
template <typename U>
__global__ void gather_rows_kernel(const U *__restrict__ src, const int32_t *__restrict__ index,
                                   U *__restrict__ dst, int64_t rows, int64_t units,
                                   osp_row_tiling tile) {
  constexpr int UNROLL = 4;
  const int64_t step = osp_tile_chunk_step(tile);
  for (int64_t row = osp_tile_first_row(tile); row < rows; row += osp_tile_row_step(tile)) {
    const int32_t from = index[row];
    const U *in = src + (int64_t)(from < 0 ? 0 : from) * units; /* not read when from < 0 */
    U *out = dst + row * units;
    for (int64_t first = osp_tile_first_chunk(tile); first < units; first += UNROLL * step) {
      U v[UNROLL];
#pragma unroll
      for (int k = 0; k < UNROLL; k++) {
        const int64_t u = first + k * step;
        v[k] = from >= 0 && u < units ? __ldcs(in + u) : U{};
      }
#pragma unroll
      for (int k = 0; k < UNROLL; k++)
        if (first + k * step < units) __stcs(out + first + k * step, v[k]);
    }
  }
}

template <typename U>
osp_status gather_rows(const void *src, const int32_t *index, void *dst, int64_t rows,
                       size_t row_bytes) {
  const int64_t units = (int64_t)(row_bytes / sizeof(U));
  const osp_row_tiling tile = osp_tile_rows(rows, units, true);
  gather_rows_kernel<U><<<tile.grid, OSP_ROW_BLOCK, 0, osp_cuda_stream()>>>(
      (const U *)src, index, (U *)dst, rows, units, tile);
  return osp_cuda_launched("osp_cuda_gather_rows");
}

/* dsrc row index[i] += ddst row i, nothing for a negative index: the gather's backward, a scatter
 * whose targets are distinct, so each row has one writer. Chunks of W values over a tiling of
 * ddst's rows. */
template <int W>
__global__ void scatter_add_rows_kernel(const void *ddst, const int32_t *index, void *dsrc,
                                        osp_dtype dtype, int64_t rows, int64_t C,
                                        osp_row_tiling tile) {
  const int64_t chunks = C / W;
  for (int64_t row = osp_tile_first_row(tile); row < rows; row += osp_tile_row_step(tile)) {
    const int32_t to = index[row];
    if (to < 0) continue;
    for (int64_t c = osp_tile_first_chunk(tile); c < chunks; c += osp_tile_chunk_step(tile)) {
      float d[W], s[W];
      osp_load_chunk<W>(ddst, dtype, row * C + c * W, d);
      osp_load_chunk<W>(dsrc, dtype, (int64_t)to * C + c * W, s);
#pragma unroll
      for (int k = 0; k < W; k++) s[k] += d[k];
      osp_store_chunk<W>(dsrc, dtype, (int64_t)to * C + c * W, s);
    }
  }
}

/* ---- Per-batch-row operands: modulate, gated add ------------------------------------------- */

/* out[b, n, :] = op(u[b, n, :], v[b, n, :], r0[b mod Bm, :], r1[b mod Bm, :]) over [B, N, C]
 * (rows = B·N), in chunks of W. v, r0 and r1 may be absent (data NULL): they read as zeros.
 * out may be u. */
template <int W, class Op>
__global__ void per_batch_kernel(const void *u, osp_dtype u_dtype, const void *v, osp_dtype v_dtype,
                                 osp_cuda_rows r0, osp_cuda_rows r1, void *out,
                                 osp_dtype out_dtype, int64_t rows, int64_t N, int64_t C,
                                 osp_row_tiling tile, Op op) {
  const int64_t chunks = C / W;
  for (int64_t row = osp_tile_first_row(tile); row < rows; row += osp_tile_row_step(tile)) {
    const int64_t b = row / N, start = row * C;
    const int64_t start0 = osp_batch_row_start(r0, b), start1 = osp_batch_row_start(r1, b);
    for (int64_t c = osp_tile_first_chunk(tile); c < chunks; c += osp_tile_chunk_step(tile)) {
      float x[W], y[W], p[W], q[W];
      osp_load_chunk<W>(u, u_dtype, start + c * W, x);
      osp_load_chunk_or_zero<W>(v, v_dtype, start + c * W, y);
      osp_load_chunk_or_zero<W>(r0.data, r0.dtype, start0 + c * W, p);
      osp_load_chunk_or_zero<W>(r1.data, r1.dtype, start1 + c * W, q);
#pragma unroll
      for (int k = 0; k < W; k++) x[k] = op(x[k], y[k], p[k], q[k]);
      osp_store_chunk<W>(out, out_dtype, start + c * W, x);
    }
  }
}

template <class Op>
osp_status per_batch(const char *kernel, const void *u, osp_dtype u_dtype, const void *v,
                     osp_dtype v_dtype, osp_cuda_rows r0, osp_cuda_rows r1, void *out,
                     osp_dtype out_dtype, int64_t B, int64_t N, int64_t C, Op op) {
  const bool vectors = C % OSP_VEC == 0 && osp_aligned16(u) && osp_aligned16(v) &&
                       osp_aligned16(out) && osp_rows_allow_vectors(r0) && osp_rows_allow_vectors(r1);
  osp_pick_width<OSP_VEC, 1>(vectors, [&](auto width) {
    const osp_row_tiling tile = osp_tile_rows(B * N, C / width.value, true);
    per_batch_kernel<width.value><<<tile.grid, OSP_ROW_BLOCK, 0, osp_cuda_stream()>>>(
        u, u_dtype, v, v_dtype, r0, r1, out, out_dtype, B * N, N, C, tile, op);
  });
  return osp_cuda_launched(kernel);
}

/* y = x · (1 + scale) + shift, with r0 = scale and r1 = shift */
struct modulate_op {
  __device__ float operator()(float x, float, float scale, float shift) const {
    return x * (1.0f + scale) + shift;
  }
};

/* modulate's dx + dy · (1 + scale), with u = dx, v = dy, r0 = scale */
struct modulate_grad_op {
  __device__ float operator()(float dx, float dy, float scale, float) const {
    return dx + dy * (1.0f + scale);
  }
};

/* x + y · gate, with r0 = gate; x + y without one */
struct gated_add_op {
  __device__ float operator()(float x, float y, float gate, float) const { return x + y * gate; }
};
struct plain_add_op {
  __device__ float operator()(float x, float y, float, float) const { return x + y; }
};

/* ---- Broadcasting add ---------------------------------------------------------------------- */

enum { MAX_DIMS = 8 };

/* The add's dimensions after merging (merge_dims); the last one is the row the kernel walks. */
struct add_dims {
  int ndim;
  int64_t shape[MAX_DIMS], a_stride[MAX_DIMS], b_stride[MAX_DIMS];
};

/* Size-1 dimensions dropped, and each dimension folded into the one before it where both
 * operands step through the pair as through one dimension (outer stride = inner stride · inner
 * size), so that [1, 6, C] + [B, 6, C] walks rows of 6C: fewer index divisions and longer rows. */
add_dims merge_dims(int ndim, const int64_t *shape, const int64_t *a_stride,
                    const int64_t *b_stride) {
  add_dims d = {};
  for (int k = 0; k < ndim; k++) {
    if (shape[k] == 1) continue;
    const int last = d.ndim - 1;
    if (d.ndim > 0 && d.a_stride[last] == a_stride[k] * shape[k] &&
        d.b_stride[last] == b_stride[k] * shape[k]) {
      d.shape[last] *= shape[k];
      d.a_stride[last] = a_stride[k];
      d.b_stride[last] = b_stride[k];
    } else {
      d.shape[d.ndim] = shape[k];
      d.a_stride[d.ndim] = a_stride[k];
      d.b_stride[d.ndim] = b_stride[k];
      d.ndim++;
    }
  }
  if (d.ndim == 0) d.shape[d.ndim++] = 1; /* a single value */
  return d;
}

/* Chunks of 8 need both operands contiguous along the row and every row on a 16-byte boundary. */
bool add_allows_vectors(const add_dims &d, const void *a, const void *b, const void *y) {
  const int inner = d.ndim - 1;
  if (d.shape[inner] % OSP_VEC || d.a_stride[inner] != 1 || d.b_stride[inner] != 1) return false;
  for (int k = 0; k < inner; k++)
    if (d.a_stride[k] % OSP_VEC || d.b_stride[k] % OSP_VEC) return false;
  return osp_aligned16(a) && osp_aligned16(b) && osp_aligned16(y);
}

/* y[row, :] = a[row, :] + b[row, :] over the merged dimensions, y contiguous. */
template <int W>
__global__ void add_kernel(const void *a, osp_dtype a_dtype, const void *b, osp_dtype b_dtype,
                           void *y, osp_dtype y_dtype, add_dims d, int64_t rows,
                           osp_row_tiling tile) {
  const int inner = d.ndim - 1;
  const int64_t width = d.shape[inner], chunks = width / W;
  for (int64_t row = osp_tile_first_row(tile); row < rows; row += osp_tile_row_step(tile)) {
    /* the row's first element in a and b: row as a mixed-radix number over the outer dimensions */
    int64_t rest = row, at_a = 0, at_b = 0;
    for (int k = inner - 1; k >= 0; k--) {
      const int64_t coordinate = rest % d.shape[k];
      rest /= d.shape[k];
      at_a += coordinate * d.a_stride[k];
      at_b += coordinate * d.b_stride[k];
    }
    for (int64_t c = osp_tile_first_chunk(tile); c < chunks; c += osp_tile_chunk_step(tile)) {
      float va[W], vb[W];
      osp_load_chunk<W>(a, a_dtype, at_a + c * W * d.a_stride[inner], va);
      osp_load_chunk<W>(b, b_dtype, at_b + c * W * d.b_stride[inner], vb);
#pragma unroll
      for (int k = 0; k < W; k++) va[k] += vb[k];
      osp_store_chunk<W>(y, y_dtype, row * width + c * W, va);
    }
  }
}

/* y = gelu_tanh(a) ⊙ b, chunk by chunk (umT5's gated FFN). */
struct gelu_tanh_mul_chunk {
  const void *a, *b;
  void *y;
  osp_dtype dtype;

  template <int W>
  __device__ void at(int64_t first) const {
    float va[W], vb[W];
    osp_load_chunk<W>(a, dtype, first, va);
    osp_load_chunk<W>(b, dtype, first, vb);
#pragma unroll
    for (int k = 0; k < W; k++) va[k] = gelu_tanh_op{}(va[k]) * vb[k];
    osp_store_chunk<W>(y, dtype, first, va);
  }
};

}  // namespace

extern "C" osp_status osp_cuda_gelu_tanh(const void *x, osp_dtype x_dtype, void *y,
                                         osp_dtype y_dtype, int64_t n) {
  return osp_map("osp_cuda_gelu_tanh", x, x_dtype, y, y_dtype, n, gelu_tanh_op{});
}

extern "C" osp_status osp_cuda_gelu_tanh_mul(const void *a, const void *b, void *y, osp_dtype dtype, int64_t n) {
  return osp_each_chunk("osp_cuda_gelu_tanh_mul", osp_aligned16(a) && osp_aligned16(b) && osp_aligned16(y), n,
                        gelu_tanh_mul_chunk{a, b, y, dtype});
}

extern "C" osp_status osp_cuda_silu(const void *x, osp_dtype x_dtype, void *y, osp_dtype y_dtype,
                                    int64_t n) {
  return osp_map("osp_cuda_silu", x, x_dtype, y, y_dtype, n, silu_op{});
}

extern "C" osp_status osp_cuda_gather_rows(const void *src, const int32_t *index, void *dst,
                                           int64_t rows, int64_t C, size_t elem_bytes) {
  const size_t row_bytes = (size_t)C * elem_bytes;
  size_t unit = 16;
  while (unit > 1 && (row_bytes % unit || (uintptr_t)src % unit || (uintptr_t)dst % unit)) unit /= 2;
  switch (unit) {
    case 16: return gather_rows<uint4>(src, index, dst, rows, row_bytes);
    case 8: return gather_rows<uint2>(src, index, dst, rows, row_bytes);
    case 4: return gather_rows<uint32_t>(src, index, dst, rows, row_bytes);
    case 2: return gather_rows<uint16_t>(src, index, dst, rows, row_bytes);
    default: return gather_rows<uint8_t>(src, index, dst, rows, row_bytes);
  }
}

extern "C" osp_status osp_cuda_modulate(const void *x, osp_cuda_rows shift, osp_cuda_rows scale,
                                        void *y, osp_dtype x_dtype, int64_t B, int64_t N,
                                        int64_t C) {
  return per_batch("osp_cuda_modulate", x, x_dtype, nullptr, x_dtype, scale, shift, y, x_dtype, B,
                   N, C, modulate_op{});
}

extern "C" osp_status osp_cuda_gated_add(void *x, osp_dtype x_dtype, const void *y,
                                         osp_dtype y_dtype, osp_cuda_rows gate, int64_t B,
                                         int64_t N, int64_t C) {
  const osp_cuda_rows none = {};
  if (gate.data)
    return per_batch("osp_cuda_gated_add", x, x_dtype, y, y_dtype, gate, none, x, x_dtype, B, N,
                     C, gated_add_op{});
  return per_batch("osp_cuda_gated_add", x, x_dtype, y, y_dtype, none, none, x, x_dtype, B, N, C,
                   plain_add_op{});
}

extern "C" osp_status osp_cuda_add(const void *a, osp_dtype a_dtype, const int64_t *a_stride,
                                   const void *b, osp_dtype b_dtype, const int64_t *b_stride,
                                   void *y, osp_dtype y_dtype, int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int k = 0; k < ndim; k++) n *= shape[k];
  if (n == 0) return OSP_OK;
  const add_dims d = merge_dims(ndim, shape, a_stride, b_stride);
  const int64_t width = d.shape[d.ndim - 1];
  osp_pick_width<OSP_VEC, 1>(add_allows_vectors(d, a, b, y), [&](auto w) {
    const osp_row_tiling tile = osp_tile_rows(n / width, width / w.value, true);
    add_kernel<w.value><<<tile.grid, OSP_ROW_BLOCK, 0, osp_cuda_stream()>>>(
        a, a_dtype, b, b_dtype, y, y_dtype, d, n / width, tile);
  });
  return osp_cuda_launched("osp_cuda_add");
}

/* ---- Backward ---------------------------------------------------------------------------- */

extern "C" osp_status osp_cuda_gelu_tanh_backward(const void *x, const void *dy, void *dx,
                                                  osp_dtype dtype, int64_t n) {
  return activation_backward("osp_cuda_gelu_tanh_backward", x, dy, dx, dtype, n,
                             gelu_tanh_derivative{});
}

extern "C" osp_status osp_cuda_silu_backward(const void *x, const void *dy, void *dx,
                                             osp_dtype dtype, int64_t n) {
  return activation_backward("osp_cuda_silu_backward", x, dy, dx, dtype, n, silu_derivative{});
}

extern "C" osp_status osp_cuda_gather_rows_backward(const void *ddst, const int32_t *index,
                                                    void *dsrc, osp_dtype dtype, int64_t rows,
                                                    int64_t C) {
  const bool vectors = C % OSP_VEC == 0 && osp_aligned16(ddst) && osp_aligned16(dsrc);
  osp_pick_width<OSP_VEC, 1>(vectors, [&](auto width) {
    const osp_row_tiling tile = osp_tile_rows(rows, C / width.value, true);
    scatter_add_rows_kernel<width.value><<<tile.grid, OSP_ROW_BLOCK, 0, osp_cuda_stream()>>>(
        ddst, index, dsrc, dtype, rows, C, tile);
  });
  return osp_cuda_launched("osp_cuda_gather_rows_backward");
}

extern "C" osp_status osp_cuda_modulate_backward(const void *x, osp_cuda_rows scale,
                                                 const void *dy, void *dx, osp_dtype dtype,
                                                 osp_cuda_grad_rows dshift,
                                                 osp_cuda_grad_rows dscale, int64_t B, int64_t N,
                                                 int64_t C) {
  if (dx)
    OSP_TRY(per_batch("osp_cuda_modulate_backward", dx, dtype, dy, dtype, scale, osp_cuda_rows{},
                      dx, dtype, B, N, C, modulate_grad_op{}));
  /* dshift += Σ dy, dscale += Σ dy·x */
  return osp_sum_per_table_row("osp_cuda_modulate_backward", dy, x, dtype, dshift, dscale, B, N,
                               C);
}

extern "C" osp_status osp_cuda_gated_add_backward(const void *dx, const void *y,
                                                  osp_cuda_rows gate, void *dy, osp_dtype dtype,
                                                  osp_cuda_grad_rows dgate, int64_t B, int64_t N,
                                                  int64_t C) {
  if (dy) OSP_TRY(osp_cuda_gated_add(dy, dtype, dx, dtype, gate, B, N, C)); /* dy += dx·gate */
  /* dgate += Σ dx·y */
  return osp_sum_per_table_row("osp_cuda_gated_add_backward", dx, y, dtype, osp_cuda_grad_rows{},
                               dgate, B, N, C);
}
