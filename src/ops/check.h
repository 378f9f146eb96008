/* What every op does before its kernel runs: check each operand (present, dtype, device, layout,
 * shape, overlap) with a message "op: operand: what was expected, what was found", then pick the
 * backend of the operands' device. Internal to src/ops/. */
#ifndef OSP_OPS_CHECK_H
#define OSP_OPS_CHECK_H

#include <stdint.h>

#include "core/tensor.h"
#ifdef OSP_HAVE_CUDA
#include "cuda/cuda.h"
#endif

/* One op call being checked. The first operand checked fixes the device of the call; every
 * later one must be on it too. Start one with OPS_CALL("osp_linear"). */
typedef struct {
  const char *op;
  const char *device_owner; /* the operand that fixed the device; NULL before the first */
  osp_device device;
} ops_call;

#define OPS_CALL(op_name) ((ops_call){.op = (op_name)})

typedef enum {
  OPS_CONTIGUOUS,  /* row-major, no gaps */
  OPS_STRIDED_ROWS /* each row's elements adjacent (last stride 1), rows anywhere: a table's rows */
} ops_layout;

/* The operand is present, has `dtype`, sits on the call's device, has at least one dimension,
 * none of them empty, and the given layout. */
osp_status ops_check_operand(ops_call *call, const char *name, const osp_tensor *t, osp_dtype dtype,
                             ops_layout layout);

/* As ops_check_operand for an operand of any dtype. */
osp_status ops_check_present(ops_call *call, const char *name, const osp_tensor *t, ops_layout layout);

/* As ops_check_operand for a floating operand in the dtype its device computes in: f32 on the CPU,
 * bf16 or f32 on CUDA. */
osp_status ops_check_float(ops_call *call, const char *name, const osp_tensor *t, ops_layout layout);

/* On CUDA, the operand has exactly `dtype` (for kernels that take only one, like cuBLASLt's bf16
 * matrices); on the CPU nothing more to check. */
osp_status ops_check_cuda_dtype(const ops_call *call, const char *name, const osp_tensor *t,
                                osp_dtype dtype);

/* osp_check_shape with the message prefixed by the op: a −1 in `shape` matches any size. */
osp_status ops_check_shape(const ops_call *call, const char *name, const osp_tensor *t, int ndim,
                           const int64_t *shape);

/* t has the shape of `like` except for its last dimension, which is `last`. */
osp_status ops_check_shape_as(const ops_call *call, const char *name, const osp_tensor *t,
                              const osp_tensor *like, int64_t last);

/* The two operands share no byte of memory. */
osp_status ops_check_disjoint(const ops_call *call, const char *name, const osp_tensor *t,
                              const char *other_name, const osp_tensor *other);
/* Either t is `other` itself (an in-place call) or the two share no memory. */
osp_status ops_check_in_place_or_disjoint(const ops_call *call, const char *name,
                                          const osp_tensor *t, const char *other_name,
                                          const osp_tensor *other);

/* The operands x and y of a row-wise or element-wise op: both contiguous floats of one shape (their
 * dtypes may differ on CUDA), y either x itself (in place) or apart from it. */
osp_status ops_check_in_out(ops_call *call, const osp_tensor *x, const osp_tensor *y);

/* The operand as a host tensor, for checks that read its values (index tables, positions): t
 * itself on the CPU; on CUDA a copy in host memory (a small table beside the rows it governs).
 * Give it back with ops_release_host_copy. */
osp_status ops_host_copy(const ops_call *call, const char *name, const osp_tensor *t, osp_tensor *host);
void ops_release_host_copy(const osp_tensor *t, osp_tensor *host);

/* A size the CPU backend passes to OpenBLAS, whose sizes are 32-bit ints. */
osp_status ops_check_blas_size(const ops_call *call, const char *what, int64_t size);

/* The backend of the call's device is there: always the CPU; CUDA where this build has the CUDA
 * backend and the machine a GPU (it is initialised on first use). Otherwise OSP_ERR_UNSUPPORTED.
 * After it, an op runs `if (call.device == OSP_CUDA) return osp_cuda_...;` under OSP_HAVE_CUDA,
 * then its CPU kernel. */
osp_status ops_check_backend(const ops_call *call);

#endif
