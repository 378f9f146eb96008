/* Sums over broadcast dimensions (reduce.cuh): the plan, the sums of one operand or of a product
 * of two, and the gradient of osp_add's broadcast operand (osp_cuda_broadcast_backward). */
#include "cuda/reduce.cuh"

namespace {

/* Σ a and Σ a·b over the rows: with K = 2 both (in that order), with K = 1 the one wanted. */
struct product_terms {
  const void *a, *b;
  osp_dtype dtype;
  bool with_a;

  template <int W, int K>
  __device__ void add(int64_t row, int64_t column, float (&acc)[K][W]) const {
    const bool product = K == 2 || !with_a;
    float va[W], vb[W];
    osp_load_chunk<W>(a, dtype, row + column, va);
    if (product) osp_load_chunk<W>(b, dtype, row + column, vb);
#pragma unroll
    for (int j = 0; j < W; j++) {
      if (with_a) acc[0][j] += va[j];
      if (product) acc[K - 1][j] += va[j] * vb[j];
    }
  }
};

}  // namespace

osp_sum_plan osp_plan_sum(int ndim, const int64_t *shape, const int64_t *grad_shape, int outputs,
                          const osp_sum_grad *grads) {
  osp_sum_plan p = {};
  const int last = ndim - 1;
  const bool last_kept = grad_shape[last] == shape[last];
  p.width = last_kept ? shape[last] : 1;
  p.groups = p.terms = 1;
  int64_t source_stride[OSP_SUM_MAX_DIMS];
  source_stride[last] = 1;
  for (int d = last - 1; d >= 0; d--) source_stride[d] = source_stride[d + 1] * shape[d + 1];
  for (int d = 0; d < last; d++) {
    if (shape[d] == 1) continue;
    if (grad_shape[d] == shape[d]) {
      p.kept_size[p.kept] = shape[d];
      p.kept_source[p.kept] = source_stride[d];
      for (int k = 0; k < outputs; k++) p.kept_grad[k][p.kept] = grads[k].stride[d];
      p.kept++;
      p.groups *= shape[d];
    } else {
      p.summed_size[p.summed] = shape[d];
      p.summed_source[p.summed] = source_stride[d];
      p.summed++;
      p.terms *= shape[d];
    }
  }
  if (!last_kept) { /* a single column: the last dimension is summed too, innermost */
    p.summed_size[p.summed] = shape[last];
    p.summed_source[p.summed] = 1;
    p.summed++;
    p.terms *= shape[last];
  }
  return p;
}

osp_status osp_sum_products(const char *kernel, int ndim, const int64_t *shape,
                            const int64_t *grad_shape, const void *a, const void *b,
                            osp_dtype dtype, osp_sum_grad sum_a, osp_sum_grad sum_ab) {
  osp_sum_grad grads[OSP_SUM_MAX_OUTPUTS];
  int count = 0;
  if (sum_a.data) grads[count++] = sum_a;
  if (sum_ab.data) grads[count++] = sum_ab;
  if (count == 0) return OSP_OK;
  const osp_sum_plan p = osp_plan_sum(ndim, shape, grad_shape, count, grads);
  const product_terms term = {a, b, dtype, sum_a.data != nullptr};
  const bool vectors = osp_aligned16(a) && osp_aligned16(b);
  float *scratch = osp_cuda_scratch();
  if (count == 2)
    return osp_sum(kernel, p, osp_sum_outputs<2>{{grads[0].data, grads[1].data}, grads[0].dtype},
                   vectors, term, scratch, OSP_CUDA_SCRATCH_FLOATS);
  return osp_sum(kernel, p, osp_sum_outputs<1>{{grads[0].data}, grads[0].dtype}, vectors, term,
                 scratch, OSP_CUDA_SCRATCH_FLOATS);
}

osp_status osp_sum_per_table_row(const char *kernel, const void *a, const void *b, osp_dtype dtype,
                                 osp_cuda_grad_rows sum_a, osp_cuda_grad_rows sum_ab, int64_t B,
                                 int64_t N, int64_t C) {
  if (!sum_a.data && !sum_ab.data) return OSP_OK;
  const int64_t Bm = sum_a.data ? sum_a.rows : sum_ab.rows;
  /* [B, N, C] as [B/Bm, Bm, N, C]: batch row b = q·Bm + r uses table row r */
  const int64_t shape[4] = {B / Bm, Bm, N, C}, grad_shape[4] = {1, Bm, 1, C};
  const int64_t a_stride[4] = {0, sum_a.row_stride, 0, 1};
  const int64_t ab_stride[4] = {0, sum_ab.row_stride, 0, 1};
  return osp_sum_products(kernel, 4, shape, grad_shape, a, b, dtype,
                          osp_sum_grad{sum_a.data, OSP_F32, a_stride},
                          osp_sum_grad{sum_ab.data, OSP_F32, ab_stride});
}

extern "C" osp_status osp_cuda_broadcast_backward(const void *dy, osp_dtype dy_dtype, int ndim,
                                                  const int64_t *shape, void *grad,
                                                  osp_dtype grad_dtype, const int64_t *grad_shape,
                                                  const int64_t *grad_stride) {
  return osp_sum_products("osp_cuda_broadcast_backward", ndim, shape, grad_shape, dy, nullptr,
                          dy_dtype, osp_sum_grad{grad, grad_dtype, grad_stride}, osp_sum_grad{});
}
