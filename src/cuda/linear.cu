/* y = x·wᵀ + bias, and GELU(x·wᵀ + bias), through cuBLASLt, and the backward of the product.
 * cuBLASLt sees column-major matrices; a row-major [R, C] array is a column-major C × R one, so
 * each product is written on the transposes, with no copies:
 *   forward  yᵀ [N × M] = w (stored K × N, transposed) · xᵀ (K × M)
 *   dx       dxᵀ [K × M] += w (K × N) · dyᵀ (N × M)
 *   dw       dwᵀ [K × N] += xᵀ (K × M) · dy (stored N × M, transposed)
 * The forward's bias (length N) runs along D's rows as the epilogue expects. A plan (descriptors
 * and the heuristic's algorithm) is made once per product and kept. GELU rides in the epilogue
 * (CUBLASLT_EPILOGUE_GELU[_BIAS], the tanh approximation, as PyTorch's addmm(..., use_gelu)
 * relies on) when y is bf16. The backward adds onto the gradients (beta = 1); dbias is a sum over
 * rows (reduce.cuh). cuBLASLt's split-K reductions keep their order fixed (in place with counters
 * that sequence the pieces, or a separate pass), so the same inputs give the same bits. */
#include <cublasLt.h>
#include <stdio.h>
#include <string.h>

#include "cuda/gemm.cuh"
#include "cuda/reduce.cuh"

enum { MAX_PLANS = 512 }; /* the DiT's products and the VAE's convolution bands */
static const size_t WORKSPACE_BYTES = 64u << 20; /* cuBLASLt's recommended ceiling on Hopper */

/* One product as cuBLASLt takes it (gemm.cuh). */
typedef osp_gemm_product product;

/* A product of packed matrices: each stored with its rows as leading dimension. */
static product packed(cublasOperation_t trans_a, cublasOperation_t trans_b, int64_t m, int64_t n,
                      int64_t k, osp_dtype ab_dtype, osp_dtype d_dtype, bool bias, bool gelu) {
  const int64_t lda = trans_a == CUBLAS_OP_N ? m : k, ldb = trans_b == CUBLAS_OP_N ? k : n;
  return product{trans_a, trans_b, m, n, k, lda, ldb, m, ab_dtype, d_dtype, bias, gelu, 0, 0, 0};
}

typedef struct {
  product of;
  cublasLtMatmulDesc_t desc;
  cublasLtMatrixLayout_t a, b, d;
  cublasLtMatmulAlgo_t algo;
} plan;

static struct {
  cublasLtHandle_t handle;
  void *workspace;
  plan plans[MAX_PLANS];
  int count;
} lt;

static osp_status lt_fail(const char *op, const char *what, cublasStatus_t status) {
  return osp_fail(OSP_ERR_UNSUPPORTED, "%s: %s: cuBLASLt status %d", op, what, (int)status);
}

/* Returns the failure of a cuBLASLt call as a status naming `op` (in scope) and the step. */
#define LT_TRY(what, expr)                                   \
  do {                                                       \
    cublasStatus_t lt_status_ = (expr);                      \
    if (lt_status_ != CUBLAS_STATUS_SUCCESS) return lt_fail(op, (what), lt_status_); \
  } while (0)

static osp_status lt_init(const char *op) {
  if (lt.handle) return OSP_OK;
  OSP_TRY(osp_cuda_init());
  LT_TRY("creating the handle", cublasLtCreate(&lt.handle));
  return osp_cuda_malloc(WORKSPACE_BYTES, &lt.workspace);
}

static cudaDataType_t cuda_type(osp_dtype dtype) { return dtype == OSP_BF16 ? CUDA_R_16BF : CUDA_R_32F; }

/* The bias rides in cuBLASLt's epilogue when y is bf16; an f32 y (the small time-embedding
 * products) gets it from a separate add, which keeps the epilogue to the one well-trodden type. */
static bool epilogue_bias(const product *p) { return p->bias && p->d_dtype == OSP_BF16; }
static bool epilogue_gelu(const product *p) { return p->gelu && p->d_dtype == OSP_BF16; }

static cublasLtEpilogue_t epilogue_of(const product *p) {
  if (epilogue_gelu(p)) return epilogue_bias(p) ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
  return epilogue_bias(p) ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
}

/* A column-major layout of `rows` × `cols` with leading dimension ld, or of its transpose as
 * stored when the product reads it transposed. */
static cublasStatus_t layout(cublasLtMatrixLayout_t *out, osp_dtype dtype, cublasOperation_t op,
                             int64_t rows, int64_t cols, int64_t ld) {
  const bool kept = op == CUBLAS_OP_N;
  const int64_t stored_rows = kept ? rows : cols, stored_cols = kept ? cols : rows;
  return cublasLtMatrixLayoutCreate(out, cuda_type(dtype), (uint64_t)stored_rows,
                                    (uint64_t)stored_cols, ld);
}

static osp_status make_plan(const char *op, plan *p) {
  const product *of = &p->of;
  LT_TRY("creating the matmul descriptor", cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  LT_TRY("setting transa", cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &of->trans_a, sizeof of->trans_a));
  LT_TRY("setting transb", cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &of->trans_b, sizeof of->trans_b));
  const cublasLtEpilogue_t epilogue = epilogue_of(of);
  LT_TRY("setting the epilogue", cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue));
  if (epilogue_bias(of)) {
    const cudaDataType_t bias_type = CUDA_R_16BF;
    LT_TRY("setting the bias type", cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof bias_type));
  }
  LT_TRY("creating layout A", layout(&p->a, of->ab_dtype, of->trans_a, of->m, of->k, of->lda));
  LT_TRY("creating layout B", layout(&p->b, of->ab_dtype, of->trans_b, of->k, of->n, of->ldb));
  LT_TRY("creating layout D", layout(&p->d, of->d_dtype, CUBLAS_OP_N, of->m, of->n, of->ldd));
  cublasLtMatmulPreference_t preference;
  LT_TRY("creating the preference", cublasLtMatmulPreferenceCreate(&preference));
  cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                       &WORKSPACE_BYTES, sizeof WORKSPACE_BYTES);
  /* matrices less aligned than the default 256 bytes rule out some kernels */
  const uint32_t aligns[4] = {of->align_a, of->align_b, of->align_d, of->align_d};
  const cublasLtMatmulPreferenceAttributes_t attributes[4] = {
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
  for (int i = 0; i < 4; i++)
    if (aligns[i]) cublasLtMatmulPreferenceSetAttribute(preference, attributes[i], &aligns[i], sizeof aligns[i]);
  cublasLtMatmulHeuristicResult_t result;
  int found = 0;
  cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(lt.handle, p->desc, p->a, p->b, p->d, p->d,
                                                         preference, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(preference);
  if (status != CUBLAS_STATUS_SUCCESS || found == 0)
    return osp_fail(OSP_ERR_UNSUPPORTED,
                    "%s: cuBLASLt has no algorithm for m=%lld n=%lld k=%lld (ld %lld, %lld, %lld; "
                    "aligned %u, %u, %u bytes; 0: 256), %s · %s into %s (status %d)",
                    op, (long long)of->m, (long long)of->n, (long long)of->k, (long long)of->lda,
                    (long long)of->ldb, (long long)of->ldd, of->align_a, of->align_b, of->align_d,
                    osp_dtype_name(of->ab_dtype), osp_dtype_name(of->ab_dtype),
                    osp_dtype_name(of->d_dtype), (int)status);
  p->algo = result.algo;
  return OSP_OK;
}

static bool same_product(const product *a, const product *b) {
  return a->trans_a == b->trans_a && a->trans_b == b->trans_b && a->m == b->m && a->n == b->n &&
         a->k == b->k && a->lda == b->lda && a->ldb == b->ldb && a->ldd == b->ldd &&
         a->ab_dtype == b->ab_dtype && a->d_dtype == b->d_dtype && a->bias == b->bias &&
         a->gelu == b->gelu && a->align_a == b->align_a && a->align_b == b->align_b &&
         a->align_d == b->align_d;
}

static osp_status find_plan(const char *op, const product *of, plan **out) {
  for (int i = 0; i < lt.count; i++) {
    if (same_product(&lt.plans[i].of, of)) {
      *out = &lt.plans[i];
      return OSP_OK;
    }
  }
  if (lt.count == MAX_PLANS)
    return osp_fail(OSP_ERR_MEMORY, "%s: more than %d matmul shapes", op, MAX_PLANS);
  plan *p = &lt.plans[lt.count];
  memset(p, 0, sizeof *p);
  p->of = *of;
  OSP_TRY(make_plan(op, p));
  lt.count++;
  *out = p;
  return OSP_OK;
}

/* d (+)= a · b as `of` describes them: beta 0 writes d, beta 1 adds onto it. */
static osp_status matmul(const char *op, const product *of, const void *a, const void *b,
                         const void *bias, void *d, float beta, plan **used) {
  OSP_TRY(lt_init(op));
  plan *p = NULL;
  OSP_TRY(find_plan(op, of, &p));
  if (epilogue_bias(of))
    LT_TRY("setting the bias pointer", cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
  const float one = 1.0f;
  LT_TRY("running the matmul", cublasLtMatmul(lt.handle, p->desc, &one, a, p->a, b, p->b, &beta, d, p->d, d,
                                              p->d, &p->algo, lt.workspace, WORKSPACE_BYTES, osp_cuda_stream()));
  if (used) *used = p;
  return OSP_OK;
}

osp_status osp_gemm(const char *op, const osp_gemm_product &of, const void *a, const void *b,
                    const void *bias, void *d, float beta) {
  return matmul(op, &of, a, b, bias, d, beta, NULL);
}

/* y[m, n] += bias[n] for an f32 y. */
__global__ void add_bias_kernel(float *y, const __nv_bfloat16 *bias, int64_t M, int64_t N) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < M * N; i += (int64_t)gridDim.x * blockDim.x)
    y[i] += __bfloat162float(bias[i % N]);
}

static osp_status linear(const void *x, const void *w, const void *bias, void *y, osp_dtype y_dtype,
                         int64_t M, int64_t N, int64_t K, bool gelu) {
  const product forward = packed(CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, OSP_BF16, y_dtype, bias != NULL,
                                gelu);
  plan *p = NULL;
  OSP_TRY(matmul("osp_cuda_linear", &forward, w, x, bias, y, 0.0f, &p));
  if (bias && !epilogue_bias(&p->of)) {
    add_bias_kernel<<<osp_cuda_blocks(M * N, 256), 256, 0, osp_cuda_stream()>>>((float *)y, (const __nv_bfloat16 *)bias, M, N);
    OSP_TRY(osp_cuda_launched("add_bias_kernel"));
  }
  return gelu && !epilogue_gelu(&p->of) ? osp_cuda_gelu_tanh(y, y_dtype, y, y_dtype, M * N) : OSP_OK;
}

extern "C" osp_status osp_cuda_linear(const void *x, const void *w, const void *bias, void *y,
                                      osp_dtype y_dtype, int64_t M, int64_t N, int64_t K) {
  return linear(x, w, bias, y, y_dtype, M, N, K, false);
}

extern "C" osp_status osp_cuda_linear_gelu_tanh(const void *x, const void *w, const void *bias,
                                                void *y, osp_dtype y_dtype, int64_t M, int64_t N,
                                                int64_t K) {
  return linear(x, w, bias, y, y_dtype, M, N, K, true);
}

extern "C" osp_status osp_cuda_linear_backward(const void *x, const void *w, const void *dy,
                                               osp_dtype dtype, void *dx, float *dw, float *dbias,
                                               int64_t M, int64_t N, int64_t K) {
  const char *op = "osp_cuda_linear_backward";
  if (dx) { /* dxᵀ [K × M] += w (K × N) · dyᵀ (N × M) */
    const product of = packed(CUBLAS_OP_N, CUBLAS_OP_N, K, M, N, dtype, dtype, false, false);
    OSP_TRY(matmul(op, &of, w, dy, NULL, dx, 1.0f, NULL));
  }
  if (dw) { /* dwᵀ [K × N] += xᵀ (K × M) · dy (stored N × M) transposed */
    const product of = packed(CUBLAS_OP_N, CUBLAS_OP_T, K, N, M, dtype, OSP_F32, false, false);
    OSP_TRY(matmul(op, &of, x, dy, NULL, dw, 1.0f, NULL));
  }
  const int64_t shape[2] = {M, N}, grad_shape[2] = {1, N}, stride[2] = {0, 1};
  return osp_sum_products(op, 2, shape, grad_shape, dy, NULL, dtype,
                          osp_sum_grad{dbias, OSP_F32, stride}, osp_sum_grad{});
}
