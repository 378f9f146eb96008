/* The backend's state: one device, one stream, the reduction scratch, and a record of what
 * osp_cuda_malloc handed out (for the peak-memory report). */
#include <stdio.h>
#include <string.h>

#include "cuda/common.cuh"

enum { MAX_ALLOCATIONS = 1024 };

static struct {
  bool ready;
  int ordinal; /* the device osp_cuda_init selects */
  cudaStream_t stream;
  float *scratch; /* OSP_CUDA_SCRATCH_FLOATS floats (common.cuh) */
  struct {
    void *ptr;
    size_t bytes;
  } allocations[MAX_ALLOCATIONS];
  size_t allocated, peak;
} state;

osp_status osp_cuda_fail(const char *what, cudaError_t error) {
  const osp_status status = error == cudaErrorMemoryAllocation ? OSP_ERR_MEMORY : OSP_ERR_UNSUPPORTED;
  return osp_fail(status, "%s: CUDA error %s: %s", what, cudaGetErrorName(error),
                  cudaGetErrorString(error));
}

cudaStream_t osp_cuda_stream(void) { return state.stream; }

void *osp_cuda_stream_handle(void) { return (void *)state.stream; }

float *osp_cuda_scratch(void) { return state.scratch; }

osp_status osp_cuda_select_device(int ordinal) {
  if (state.ready && ordinal != state.ordinal)
    return osp_fail(OSP_ERR_ARGUMENT,
                    "cuda: selecting device %d: the backend already runs on device %d (select the "
                    "device before the first CUDA call)", ordinal, state.ordinal);
  int count = 0;
  OSP_CUDA_TRY("cuda: counting devices", cudaGetDeviceCount(&count));
  if (ordinal < 0 || ordinal >= count)
    return osp_fail(OSP_ERR_ARGUMENT, "cuda: selecting device %d: this machine has devices 0 to %d",
                    ordinal, count - 1);
  state.ordinal = ordinal;
  return OSP_OK;
}

osp_status osp_cuda_init(void) {
  if (state.ready) return OSP_OK;
  int count = 0;
  cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess || count == 0)
    return osp_fail(OSP_ERR_UNSUPPORTED, "cuda: no usable GPU (%s)",
                    error != cudaSuccess ? cudaGetErrorString(error) : "no device found");
  OSP_CUDA_TRY("cuda: selecting the device", cudaSetDevice(state.ordinal));
  OSP_CUDA_TRY("cuda: creating the stream", cudaStreamCreateWithFlags(&state.stream, cudaStreamNonBlocking));
  state.ready = true; /* osp_cuda_malloc calls back here */
  const osp_status status =
      osp_cuda_malloc((size_t)OSP_CUDA_SCRATCH_FLOATS * sizeof(float), (void **)&state.scratch);
  if (status != OSP_OK) {
    cudaStreamDestroy(state.stream);
    state.ready = false;
  }
  return status;
}

osp_status osp_cuda_device(osp_cuda_device_info *info) {
  OSP_TRY(osp_cuda_init());
  cudaDeviceProp prop;
  OSP_CUDA_TRY("cuda: reading the device's properties", cudaGetDeviceProperties(&prop, state.ordinal));
  memset(info, 0, sizeof *info);
  memcpy(info->name, prop.name, sizeof info->name - 1);
  info->multiprocessors = prop.multiProcessorCount;
  info->compute_major = prop.major;
  info->compute_minor = prop.minor;
  OSP_CUDA_TRY("cuda: reading free memory", cudaMemGetInfo(&info->free_memory, &info->total_memory));
  return OSP_OK;
}

osp_status osp_cuda_malloc(size_t bytes, void **out) {
  OSP_TRY(osp_cuda_init());
  *out = NULL;
  int slot = 0;
  while (slot < MAX_ALLOCATIONS && state.allocations[slot].ptr) slot++;
  if (slot == MAX_ALLOCATIONS)
    return osp_fail(OSP_ERR_MEMORY, "cuda: more than %d live allocations", MAX_ALLOCATIONS);
  cudaError_t error = cudaMalloc(out, bytes ? bytes : 1);
  if (error != cudaSuccess) {
    size_t free_bytes = 0, total = 0;
    cudaMemGetInfo(&free_bytes, &total);
    return osp_fail(OSP_ERR_MEMORY, "cuda: allocating %.3f GiB failed (%s); %.3f GiB of %.3f GiB free",
                    bytes / 1073741824.0, cudaGetErrorString(error), free_bytes / 1073741824.0,
                    total / 1073741824.0);
  }
  state.allocations[slot].ptr = *out;
  state.allocations[slot].bytes = bytes;
  state.allocated += bytes;
  if (state.allocated > state.peak) state.peak = state.allocated;
  return OSP_OK;
}

void osp_cuda_free(void *ptr) {
  if (!ptr) return;
  for (int i = 0; i < MAX_ALLOCATIONS; i++)
    if (state.allocations[i].ptr == ptr) {
      state.allocated -= state.allocations[i].bytes;
      state.allocations[i].ptr = NULL;
      break;
    }
  cudaFree(ptr);
}

size_t osp_cuda_peak_allocated(void) { return state.peak; }

osp_status osp_cuda_copy_to_device(void *dst, const void *src, size_t bytes) {
  OSP_CUDA_TRY("cuda: copy to the device",
               cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, state.stream));
  /* The host buffer may be reused as soon as we return. */
  OSP_CUDA_TRY("cuda: copy to the device", cudaStreamSynchronize(state.stream));
  return OSP_OK;
}

osp_status osp_cuda_copy_to_host(void *dst, const void *src, size_t bytes) {
  OSP_CUDA_TRY("cuda: copy to the host",
               cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, state.stream));
  OSP_CUDA_TRY("cuda: copy to the host", cudaStreamSynchronize(state.stream));
  return OSP_OK;
}

osp_status osp_cuda_copy_on_device(void *dst, const void *src, size_t bytes) {
  OSP_CUDA_TRY("cuda: copy on the device",
               cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, state.stream));
  return OSP_OK;
}

osp_status osp_cuda_memset_zero(void *dst, size_t bytes) {
  OSP_CUDA_TRY("cuda: zeroing memory", cudaMemsetAsync(dst, 0, bytes, state.stream));
  return OSP_OK;
}

osp_status osp_cuda_synchronize(void) {
  if (!state.ready) return OSP_OK;
  OSP_CUDA_TRY("cuda: a kernel failed", cudaStreamSynchronize(state.stream));
  return OSP_OK;
}

struct osp_cuda_timer {
  cudaEvent_t start, stop;
};

osp_status osp_cuda_timer_start(osp_cuda_timer **timer) {
  OSP_TRY(osp_cuda_init());
  osp_cuda_timer *t = new osp_cuda_timer;
  OSP_CUDA_TRY("cuda: creating an event", cudaEventCreate(&t->start));
  OSP_CUDA_TRY("cuda: creating an event", cudaEventCreate(&t->stop));
  OSP_CUDA_TRY("cuda: recording an event", cudaEventRecord(t->start, state.stream));
  *timer = t;
  return OSP_OK;
}

osp_status osp_cuda_timer_stop(osp_cuda_timer *timer, double *seconds) {
  float ms = 0;
  cudaError_t error = cudaEventRecord(timer->stop, state.stream);
  if (error == cudaSuccess) error = cudaEventSynchronize(timer->stop);
  if (error == cudaSuccess) error = cudaEventElapsedTime(&ms, timer->start, timer->stop);
  cudaEventDestroy(timer->start);
  cudaEventDestroy(timer->stop);
  delete timer;
  *seconds = ms * 1e-3;
  return error == cudaSuccess ? OSP_OK : osp_cuda_fail("cuda: timing", error);
}
