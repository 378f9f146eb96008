/* y = x·wᵀ + bias, and GELU(x·wᵀ + bias), through cuBLASLt. Row-major y[M, N] is column-major yᵀ[N, M] = w·xᵀ, so cuBLASLt
 * multiplies A = w (stored as column-major K × N, transposed) by B = xᵀ (column-major K × M) into
 * D = yᵀ (N × M): no copies, and the bias (length N) runs along D's rows as its epilogue expects.
 * A plan (descriptors and the heuristic's algorithm) is made once per shape and kept. GELU rides
 * in the epilogue (CUBLASLT_EPILOGUE_GELU[_BIAS], the tanh approximation, as PyTorch's
 * addmm(..., use_gelu) relies on) when y is bf16. */
#include <cublasLt.h>
#include <stdio.h>
#include <string.h>

#include "cuda/common.cuh"

enum { MAX_PLANS = 128 };
static const size_t WORKSPACE_BYTES = 64u << 20; /* cuBLASLt's recommended ceiling on Hopper */

typedef struct {
  int64_t M, N, K;
  osp_dtype y_dtype;
  bool bias, gelu;
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

static osp_status lt_fail(const char *what, cublasStatus_t status) {
  return osp_fail(OSP_ERR_UNSUPPORTED, "osp_cuda_linear: %s: cuBLASLt status %d", what, (int)status);
}

#define LT_TRY(what, expr)                                   \
  do {                                                       \
    cublasStatus_t lt_status_ = (expr);                      \
    if (lt_status_ != CUBLAS_STATUS_SUCCESS) return lt_fail((what), lt_status_); \
  } while (0)

static osp_status lt_init(void) {
  if (lt.handle) return OSP_OK;
  OSP_TRY(osp_cuda_init());
  LT_TRY("creating the handle", cublasLtCreate(&lt.handle));
  return osp_cuda_malloc(WORKSPACE_BYTES, &lt.workspace);
}

static cudaDataType_t cuda_type(osp_dtype dtype) { return dtype == OSP_BF16 ? CUDA_R_16BF : CUDA_R_32F; }

/* The bias rides in cuBLASLt's epilogue when y is bf16; an f32 y (the small time-embedding
 * products) gets it from a separate add, which keeps the epilogue to the one well-trodden type. */
static bool epilogue_bias(const plan *p) { return p->bias && p->y_dtype == OSP_BF16; }
static bool epilogue_gelu(const plan *p) { return p->gelu && p->y_dtype == OSP_BF16; }

static cublasLtEpilogue_t epilogue_of(const plan *p) {
  if (epilogue_gelu(p)) return epilogue_bias(p) ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
  return epilogue_bias(p) ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
}

static osp_status make_plan(plan *p) {
  LT_TRY("creating the matmul descriptor", cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t transpose = CUBLAS_OP_T, keep = CUBLAS_OP_N;
  LT_TRY("setting transa", cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &transpose, sizeof transpose));
  LT_TRY("setting transb", cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &keep, sizeof keep));
  const cublasLtEpilogue_t epilogue = epilogue_of(p);
  LT_TRY("setting the epilogue", cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue));
  if (epilogue_bias(p)) {
    const cudaDataType_t bias_type = CUDA_R_16BF;
    LT_TRY("setting the bias type", cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof bias_type));
  }
  LT_TRY("creating layout A", cublasLtMatrixLayoutCreate(&p->a, CUDA_R_16BF, (uint64_t)p->K, (uint64_t)p->N, p->K));
  LT_TRY("creating layout B", cublasLtMatrixLayoutCreate(&p->b, CUDA_R_16BF, (uint64_t)p->K, (uint64_t)p->M, p->K));
  LT_TRY("creating layout D", cublasLtMatrixLayoutCreate(&p->d, cuda_type(p->y_dtype), (uint64_t)p->N, (uint64_t)p->M, p->N));
  cublasLtMatmulPreference_t preference;
  LT_TRY("creating the preference", cublasLtMatmulPreferenceCreate(&preference));
  cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                       &WORKSPACE_BYTES, sizeof WORKSPACE_BYTES);
  cublasLtMatmulHeuristicResult_t result;
  int found = 0;
  cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(lt.handle, p->desc, p->a, p->b, p->d, p->d,
                                                         preference, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(preference);
  if (status != CUBLAS_STATUS_SUCCESS || found == 0)
    return osp_fail(OSP_ERR_UNSUPPORTED,
                    "osp_cuda_linear: cuBLASLt has no algorithm for M=%lld N=%lld K=%lld (status %d)",
                    (long long)p->M, (long long)p->N, (long long)p->K, (int)status);
  p->algo = result.algo;
  return OSP_OK;
}

static osp_status find_plan(int64_t M, int64_t N, int64_t K, osp_dtype y_dtype, bool bias, bool gelu,
                            plan **out) {
  for (int i = 0; i < lt.count; i++) {
    plan *p = &lt.plans[i];
    if (p->M == M && p->N == N && p->K == K && p->y_dtype == y_dtype && p->bias == bias && p->gelu == gelu) {
      *out = p;
      return OSP_OK;
    }
  }
  if (lt.count == MAX_PLANS)
    return osp_fail(OSP_ERR_MEMORY, "osp_cuda_linear: more than %d matmul shapes", MAX_PLANS);
  plan *p = &lt.plans[lt.count];
  memset(p, 0, sizeof *p);
  p->M = M, p->N = N, p->K = K, p->y_dtype = y_dtype, p->bias = bias, p->gelu = gelu;
  OSP_TRY(make_plan(p));
  lt.count++;
  *out = p;
  return OSP_OK;
}

/* y[m, n] += bias[n] for an f32 y. */
__global__ void add_bias_kernel(float *y, const __nv_bfloat16 *bias, int64_t M, int64_t N) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < M * N; i += (int64_t)gridDim.x * blockDim.x)
    y[i] += __bfloat162float(bias[i % N]);
}

static osp_status linear(const void *x, const void *w, const void *bias, void *y, osp_dtype y_dtype,
                         int64_t M, int64_t N, int64_t K, bool gelu) {
  OSP_TRY(lt_init());
  plan *p = NULL;
  OSP_TRY(find_plan(M, N, K, y_dtype, bias != NULL, gelu, &p));
  if (epilogue_bias(p))
    LT_TRY("setting the bias pointer", cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
  const float one = 1.0f, zero = 0.0f;
  LT_TRY("running the matmul", cublasLtMatmul(lt.handle, p->desc, &one, w, p->a, x, p->b, &zero, y, p->d, y,
                                              p->d, &p->algo, lt.workspace, WORKSPACE_BYTES, osp_cuda_stream()));
  if (bias && !epilogue_bias(p)) {
    add_bias_kernel<<<osp_cuda_blocks(M * N, 256), 256, 0, osp_cuda_stream()>>>((float *)y, (const __nv_bfloat16 *)bias, M, N);
    OSP_TRY(osp_cuda_launched("add_bias_kernel"));
  }
  return gelu && !epilogue_gelu(p) ? osp_cuda_gelu_tanh(y, y_dtype, y, y_dtype, M * N) : OSP_OK;
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
