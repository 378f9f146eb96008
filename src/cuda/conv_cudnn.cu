/* The bf16 3D convolution through cuDNN's graph API (conv_cudnn.cuh): one forward-convolution
 * operation y = conv(x, w) over NCDHW tensors, f32 accumulation, planned once per shape with
 * cuDNN's heuristics (mode A, the first engine that builds) and kept; a workspace the plans share,
 * grown when one needs more. Built only where CMake finds cuDNN (OSP_HAVE_CUDNN). */
#ifdef OSP_HAVE_CUDNN
#include <cudnn.h>

#include "cuda/common.cuh"
#include "cuda/conv_cudnn.cuh"

#include <string.h>

namespace {

enum { MAX_PLANS = 256, X_UID = 1, W_UID = 2, Y_UID = 3 };

struct plan_key {
  int64_t x[5], w[5], y[5], stride[3], pad_before[3], pad_after[3], alignment[3];
};

struct cached_plan {
  plan_key key;
  cudnnBackendDescriptor_t config, plan; /* the engine configuration lives as long as its plan */
  int64_t workspace_bytes;
};

struct cudnn_state {
  cudnnHandle_t handle;
  cached_plan plans[MAX_PLANS];
  int count;
  void *workspace;
  int64_t workspace_bytes;
} state;

osp_status cudnn_check(cudnnStatus_t status, const char *what) {
  if (status == CUDNN_STATUS_SUCCESS) return OSP_OK;
  return osp_fail(OSP_ERR_UNSUPPORTED, "osp_cuda_conv3d (cuDNN %zu): %s: %s", cudnnGetVersion(), what,
                  cudnnGetErrorString(status));
}

#define CUDNN_TRY(what, expr) OSP_TRY(cudnn_check((expr), (what)))

/* A backend descriptor that destroys itself. */
struct descriptor {
  cudnnBackendDescriptor_t d = nullptr;
  ~descriptor() {
    if (d) cudnnBackendDestroyDescriptor(d);
  }
  osp_status create(cudnnBackendDescriptorType_t type) {
    return cudnn_check(cudnnBackendCreateDescriptor(type, &d), "create a descriptor");
  }
  osp_status set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, int64_t count,
                 const void *values) {
    return cudnn_check(cudnnBackendSetAttribute(d, name, type, count, values), "set an attribute");
  }
  osp_status finalize(const char *what) { return cudnn_check(cudnnBackendFinalize(d), what); }
};

osp_status start(void) {
  if (state.handle) return OSP_OK;
  CUDNN_TRY("create the handle", cudnnCreate(&state.handle));
  return cudnn_check(cudnnSetStream(state.handle, osp_cuda_stream()), "set the stream");
}

/* A contiguous bf16 NCDHW tensor of these dimensions. */
osp_status tensor(int64_t uid, const int64_t dims[5], int64_t alignment, descriptor *t) {
  int64_t strides[5];
  strides[4] = 1;
  for (int d = 3; d >= 0; d--) strides[d] = strides[d + 1] * dims[d + 1];
  const cudnnDataType_t type = CUDNN_DATA_BFLOAT16;
  OSP_TRY(t->create(CUDNN_BACKEND_TENSOR_DESCRIPTOR));
  OSP_TRY(t->set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type));
  OSP_TRY(t->set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 5, dims));
  OSP_TRY(t->set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 5, strides));
  OSP_TRY(t->set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid));
  OSP_TRY(t->set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment));
  return t->finalize("a tensor descriptor");
}

/* Cross-correlation with f32 accumulation, no dilation. */
osp_status convolution(const plan_key &k, descriptor *c) {
  const cudnnDataType_t accumulate = CUDNN_DATA_FLOAT;
  const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  const int64_t spatial = 3, dilation[3] = {1, 1, 1};
  OSP_TRY(c->create(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR));
  OSP_TRY(c->set(CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &accumulate));
  OSP_TRY(c->set(CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode));
  OSP_TRY(c->set(CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &spatial));
  OSP_TRY(c->set(CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 3, dilation));
  OSP_TRY(c->set(CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 3, k.stride));
  OSP_TRY(c->set(CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 3, k.pad_before));
  OSP_TRY(c->set(CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 3, k.pad_after));
  return c->finalize("the convolution descriptor");
}

/* The operation graph of y = conv(x, w). */
osp_status graph(const plan_key &k, descriptor *g) {
  descriptor x, w, y, conv, op;
  OSP_TRY(tensor(X_UID, k.x, k.alignment[0], &x));
  OSP_TRY(tensor(W_UID, k.w, k.alignment[1], &w));
  OSP_TRY(tensor(Y_UID, k.y, k.alignment[2], &y));
  OSP_TRY(convolution(k, &conv));
  const float alpha = 1.0f, beta = 0.0f;
  OSP_TRY(op.create(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR));
  OSP_TRY(op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x.d));
  OSP_TRY(op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &w.d));
  OSP_TRY(op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y.d));
  OSP_TRY(op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &conv.d));
  OSP_TRY(op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1, &alpha));
  OSP_TRY(op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 1, &beta));
  OSP_TRY(op.finalize("the convolution operation"));
  OSP_TRY(g->create(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR));
  OSP_TRY(g->set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &op.d));
  OSP_TRY(g->set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &state.handle));
  return g->finalize("the operation graph");
}

enum { MAX_CONFIGS = 16 };

/* The first of the heuristics' engine configurations (best first) that makes an execution plan. */
osp_status build_plan(const plan_key &k, cached_plan *out) {
  descriptor g, heuristics;
  OSP_TRY(graph(k, &g));
  const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
  OSP_TRY(heuristics.create(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR));
  OSP_TRY(heuristics.set(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &g.d));
  OSP_TRY(heuristics.set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode));
  OSP_TRY(heuristics.finalize("the engine heuristics"));
  descriptor configs[MAX_CONFIGS];
  cudnnBackendDescriptor_t handles[MAX_CONFIGS];
  for (int i = 0; i < MAX_CONFIGS; i++) {
    OSP_TRY(configs[i].create(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR));
    handles[i] = configs[i].d;
  }
  int64_t found = 0;
  CUDNN_TRY("the heuristics' results", cudnnBackendGetAttribute(heuristics.d, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                                                CUDNN_TYPE_BACKEND_DESCRIPTOR, MAX_CONFIGS, &found,
                                                                handles));
  for (int64_t i = 0; i < found; i++) {
    cudnnBackendDescriptor_t plan;
    if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &plan) != CUDNN_STATUS_SUCCESS) continue;
    int64_t workspace = 0;
    const bool built =
        cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &state.handle) ==
            CUDNN_STATUS_SUCCESS &&
        cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                 &handles[i]) == CUDNN_STATUS_SUCCESS &&
        cudnnBackendFinalize(plan) == CUDNN_STATUS_SUCCESS &&
        cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, nullptr,
                                 &workspace) == CUDNN_STATUS_SUCCESS;
    if (built) {
      *out = cached_plan{k, handles[i], plan, workspace};
      configs[i].d = nullptr; /* kept with the plan */
      return OSP_OK;
    }
    cudnnBackendDestroyDescriptor(plan);
  }
  return osp_fail(OSP_ERR_UNSUPPORTED, "osp_cuda_conv3d (cuDNN %zu): no engine for x [%lld, %lld, %lld, %lld, %lld] "
                  "and w [%lld, %lld, %lld, %lld, %lld] (%lld configurations tried)", cudnnGetVersion(),
                  (long long)k.x[0], (long long)k.x[1], (long long)k.x[2], (long long)k.x[3], (long long)k.x[4],
                  (long long)k.w[0], (long long)k.w[1], (long long)k.w[2], (long long)k.w[3], (long long)k.w[4],
                  (long long)found);
}

bool same_key(const plan_key &a, const plan_key &b) { return memcmp(&a, &b, sizeof a) == 0; }

osp_status find_plan(const plan_key &k, const cached_plan **out) {
  for (int i = 0; i < state.count; i++)
    if (same_key(state.plans[i].key, k)) {
      *out = &state.plans[i];
      return OSP_OK;
    }
  if (state.count == MAX_PLANS)
    return osp_fail(OSP_ERR_UNSUPPORTED, "osp_cuda_conv3d (cuDNN): more than %d convolution shapes", MAX_PLANS);
  OSP_TRY(build_plan(k, &state.plans[state.count]));
  *out = &state.plans[state.count++];
  return OSP_OK;
}

osp_status ensure_workspace(int64_t bytes) {
  if (bytes <= state.workspace_bytes) return OSP_OK;
  osp_cuda_free(state.workspace);
  state.workspace = nullptr;
  state.workspace_bytes = 0;
  OSP_TRY(osp_cuda_malloc((size_t)bytes, &state.workspace));
  state.workspace_bytes = bytes;
  return OSP_OK;
}

/* The largest power of two up to 16 that divides the address. */
int64_t alignment_of(const void *p) {
  const uintptr_t a = (uintptr_t)p;
  int64_t alignment = 16;
  while (alignment > 2 && a % (uintptr_t)alignment) alignment /= 2;
  return alignment;
}

}  // namespace

osp_status osp_cudnn_conv3d_bf16(const void *x, const int64_t x_dims[5], const void *w, const int64_t w_dims[5],
                                 void *y, const int64_t y_dims[5], const int64_t stride[3],
                                 const int64_t pad_before[3], const int64_t pad_after[3]) {
  OSP_TRY(start());
  plan_key k = {};
  for (int d = 0; d < 5; d++) k.x[d] = x_dims[d], k.w[d] = w_dims[d], k.y[d] = y_dims[d];
  for (int d = 0; d < 3; d++) k.stride[d] = stride[d], k.pad_before[d] = pad_before[d], k.pad_after[d] = pad_after[d];
  k.alignment[0] = alignment_of(x), k.alignment[1] = alignment_of(w), k.alignment[2] = alignment_of(y);
  const cached_plan *p = nullptr;
  OSP_TRY(find_plan(k, &p));
  OSP_TRY(ensure_workspace(p->workspace_bytes));
  void *pointers[3] = {(void *)x, (void *)w, y};
  const int64_t uids[3] = {X_UID, W_UID, Y_UID};
  descriptor pack;
  OSP_TRY(pack.create(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR));
  OSP_TRY(pack.set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, 3, pointers));
  OSP_TRY(pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, 3, uids));
  OSP_TRY(pack.set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &state.workspace));
  OSP_TRY(pack.finalize("the variant pack"));
  return cudnn_check(cudnnBackendExecute(state.handle, p->plan, pack.d), "execute");
}
#endif
